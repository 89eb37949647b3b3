"""A lease on object storage: the cross-machine twin of a file lock.

A lease is one small object, ``PREFIX/locks/NAME.lease``, written by
conditional put: ``If-None-Match: *`` creates it only if nobody holds it, and
``If-Match: ETAG`` renews or takes over exactly the version that was read, so
two machines never both believe they hold it. The holder renews it every
third of its time to live from a background thread; a lease whose holder
died expires after ``ttl_s`` and the next writer takes it over. The guarantee
rests on the clocks of the machines agreeing to well within ``ttl_s``, and on
the store's conditional puts (S3, and SeaweedFS, honour both headers).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from testmem.memory.errors import StoreError

if TYPE_CHECKING:
    from obstore import UpdateVersion

TTL_S = 30.0
_POLL_S = 0.2


class Lease:
    """Hold ``key`` in ``store`` (an obstore store) while the block runs."""

    def __init__(self, store: Any, key: str, ttl_s: float = TTL_S) -> None:
        self.store = store
        self.key = key
        self.ttl_s = ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self, timeout_s: float) -> bool:
        """Take the lease, waiting up to ``timeout_s`` for its holder; False if not."""
        deadline = time.monotonic() + timeout_s
        while not self._try_take():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="testmem-lease", daemon=True)
        self._renewer.start()
        return True

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        import obstore

        self._stop.set()
        if self._renewer:
            self._renewer.join()
        holder = self._read()
        if holder and holder[0].get("owner") == self.owner:
            with contextlib.suppress(FileNotFoundError):
                obstore.delete(self.store, self.key)
        self._etag = None

    def _try_take(self) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            self._etag = obstore.put(self.store, self.key, self._body(), mode="create")["e_tag"]
            return True
        except AlreadyExistsError:
            pass
        holder = self._read()
        if holder is None or holder[0].get("expires_at", 0) > time.time():
            return False  # gone meanwhile (retry at once next round) or still held
        try:  # expired: take over exactly the version read, or lose to whoever did
            mode: UpdateVersion = {"e_tag": holder[1]}
            self._etag = obstore.put(self.store, self.key, self._body(), mode=mode)["e_tag"]
            return True
        except (PreconditionError, AlreadyExistsError):
            return False

    def _renew(self) -> None:
        import obstore

        while not self._stop.wait(self.ttl_s / 3):
            try:
                mode: UpdateVersion = {"e_tag": self._etag or ""}
                self._etag = obstore.put(self.store, self.key, self._body(), mode=mode)["e_tag"]
            except Exception:  # lost it (expired and taken) or the store is away
                return

    def _read(self) -> tuple[dict[str, Any], str] | None:
        import obstore

        try:
            found = obstore.get(self.store, self.key)
            body = bytes(found.bytes())
        except FileNotFoundError:  # released meanwhile (obstore raises the builtin)
            return None
        try:
            holder = json.loads(body)
        except ValueError:
            holder = {}  # unreadable: treat as expired
        return (holder if isinstance(holder, dict) else {}), str(found.meta["e_tag"])

    def _body(self) -> bytes:
        holder = {"owner": self.owner, "expires_at": time.time() + self.ttl_s}
        return json.dumps(holder).encode()


def object_store(url: str) -> Any:
    """An obstore store for ``url`` configured like deltalake's: from ``AWS_*``."""
    from obstore.store import from_url

    try:
        return from_url(url)
    except Exception as exc:  # obstore raises its own types for bad URLs and options
        raise StoreError(f"cannot use the store at {url}: {exc}") from exc
