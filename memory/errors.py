"""One exception root for testmem; foreign errors are translated at the boundary."""


class TestmemError(Exception):
    """Base of every error testmem raises on purpose."""

    __test__ = False  # not a pytest test class, despite the name
    transient = False


class StoreError(TestmemError):
    """The store is missing, unreadable or cannot be written."""


class TransientStoreError(StoreError):
    """A write that may succeed if tried again (a commit conflict, a busy file)."""

    transient = True


class QueryError(TestmemError):
    """A query was refused or failed."""


class NotFoundError(TestmemError):
    """A run, test, incident or other named thing does not exist."""


class DamagedFileWarning(UserWarning):
    """A reader left out a file of the log that does not read."""
