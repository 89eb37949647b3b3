"""The recorder's store work, done by a child process on the other core.

Reading the tests' history needs DuckDB and deltalake, and writing a remote
log pyarrow too: their imports hold the GIL for ~0.2 s each. In the test
process that time comes out of the tests' own, however the work is
threaded, and deltalake's runtime would break a test that forks. A
`StoreProcess` hands it to a child process instead, started when first
needed (a local store's runs go to its spool, `testmem.memory.spool`):

- **appends** (a remote store): the recorder's writer thread sends each
  batch, pickled, over a pipe and waits for the answer, so a flush is still
  one atomic commit and a failed one still reaches the run as a `StoreError`;
- **history**: the child reads the records of the tests that ever did
  anything but pass (`History.test_records`), all the advisor can use, when
  asked, or with ``prefetch`` as soon as it starts, from the runs before
  this one, so the retry advisor has it at the first failure without loading
  DuckDB here. Only a run on a remote store that retries in this process
  prefetches: with retries off nobody asks, xdist's workers read their own,
  and a local store's run starts the child at its first failure (a run that
  passes never reads history).

The child ignores the terminal's Ctrl-C (its own session) and exits when its
input closes, after its last commit, so a killed run loses at most the batch
in flight, as with an in-process writer. If no child can be started, the
work happens in this process.

    python -m testmem.memory.store_process DIR [--prefetch]   # the child: requests on stdin
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import IO, TYPE_CHECKING, Any

from testmem.memory.errors import StoreError
from testmem.memory.events import Event
from testmem.memory.store import Store

if TYPE_CHECKING:
    from testmem.memory.query import Rows

_HEADER = 8  # bytes of a message's length, big-endian


class StoreProcess:
    """Appends to a store's log, and reads its tests' history, through a child process."""

    def __init__(self, store: Store, *, prefetch: bool = False) -> None:
        self.store = store
        self.prefetch = prefetch
        self._child: subprocess.Popen[bytes] | None = None
        self._local: _Work | None = None  # when no child could start
        self._lock = threading.Lock()  # one request on the pipe at a time

    def warm_up(self) -> None:
        """Start the child, which imports the libraries (and prefetches) meanwhile."""
        with self._lock:
            self._start()

    def append(self, events: Sequence[Event]) -> None:
        if events:
            self._ask("append", list(events))

    def test_records(self, exclude_run: str | None = None) -> list[dict[str, Any]]:
        """The records of the tests that ever did anything but pass (see
        `History.test_records`): before this run when prefetched, else as the
        log stands when first asked, ``exclude_run`` left out."""
        records: list[dict[str, Any]] = self._ask("test_records", exclude_run)
        return records

    def close(self) -> None:
        """Let the child finish (it exits once its input closes)."""
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None and child.stdout is not None
        with contextlib.suppress(OSError):  # a broken pipe: it is gone already
            child.stdin.close()
        # Every request was answered, so it exits at once: the end of its
        # output says when (`Popen.wait` with a timeout polls, up to 50 ms late).
        exited, _, _ = select.select([child.stdout], [], [], 60)
        if not exited:
            child.kill()
        child.wait()
        child.stdout.close()

    def _ask(self, request: str, argument: Any) -> Any:
        with self._lock:
            child = self._start()
            if child is None:
                assert self._local is not None
                return self._local.do(request, argument)
            assert child.stdin is not None and child.stdout is not None
            try:
                _send(child.stdin, (request, argument))
                answer = _receive(child.stdout)
            except (OSError, EOFError, pickle.UnpicklingError):  # the child is gone
                answer = None
        if answer is None:
            raise StoreError(
                f"cannot use the store at {self.store.location}: "
                f"the store process ended (exit {child.poll()})"
            )
        ok, value = answer
        if not ok:
            raise StoreError(value)
        return value

    def _start(self) -> subprocess.Popen[bytes] | None:
        if self._child is None and self._local is None:
            try:
                self._child = subprocess.Popen(
                    [sys.executable, "-m", "testmem.memory.store_process", self.store.location]
                    + (["--prefetch"] if self.prefetch else []),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                self._local = _Work(self.store, self.prefetch)
        return self._child


class _Work:
    """What the child does (or this process, when there is no child)."""

    def __init__(self, store: Store, prefetch: bool) -> None:
        self.store = store
        self._records: Future[list[dict[str, Any]]] | None = None
        if prefetch:
            self._start_reading()

    def do(self, request: str, argument: Any) -> Any:
        if request == "append":
            self.store.events.append(argument)
            return None
        if request == "test_records":
            return self._start_reading(argument).result()
        raise ValueError(f"unknown request {request!r}")

    def _start_reading(self, exclude_run: str | None = None) -> Future[list[dict[str, Any]]]:
        """The history, read once, on a thread so that appends go on meanwhile."""
        if self._records is None:
            self._records = Future()
            reading = (self._records, exclude_run)
            threading.Thread(target=self._read_records, args=reading, daemon=True).start()
        return self._records

    def _read_records(self, records: Future[list[dict[str, Any]]], exclude_run: str | None) -> None:
        try:
            records.set_result(advisor_records(self.store, exclude_run))
        except Exception as exc:  # history is advice: say why it is missing
            records.set_exception(StoreError(f"cannot read the tests' history: {exc}"))


def advisor_records(store: Store, exclude_run: str | None = None) -> list[dict[str, Any]]:
    """What the retry advisor reads: the records of the tests that ever did
    anything but pass (`History.test_records`), all that can change its
    advice, ``exclude_run`` (the asking run) left out."""
    return _advisor_rows(store, exclude_run).dicts() if store.events.exists() else []


def _advisor_rows(store: Store, exclude_run: str | None) -> Rows:
    from testmem.memory.query import History

    return History(store).test_records(exclude_run=exclude_run, skip_always_passed=True)


# The advisor's records, kept (`testmem.memory.answers`) by the triage of a
# run once all of it is in the log: the next run's first failure reads them
# with the standard library, unless a commit landed since. Runs recorded
# since but not yet settled (passing runs, in the spool) are not in them:
# history is advice, and its last passes change little of it.
_ADVISOR = "advisor_records"


def kept_advisor_records(store: Store) -> list[dict[str, Any]] | None:
    """The advisor's records as kept for the log's newest version, if they are."""
    from testmem.memory.answers import kept

    rows = kept(store, _ADVISOR, {})
    return rows.dicts() if rows is not None else None


def keep_advisor_records(store: Store) -> None:
    """Compute the advisor's records from the whole log and keep them."""
    from testmem.memory.answers import answer

    if store.events.exists():
        answer(store, _ADVISOR, {}, lambda: _advisor_rows(store, None))


def serve(work: _Work, requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer each request read from ``requests`` with ``(True, value)`` or
    ``(False, error message)``, until the input ends."""
    while True:
        try:
            request, argument = _receive(requests)
        except EOFError:
            return
        try:
            answer = (True, work.do(request, argument))
        except Exception as error:  # said to the run, which names it in its warning
            answer = (False, " ".join(_cause(error).split()))
        _send(answers, answer)


def _cause(error: Exception) -> str:
    return str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}"


def _send(stream: IO[bytes], message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(payload).to_bytes(_HEADER, "big") + payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER)
    if len(header) < _HEADER:
        raise EOFError
    payload = stream.read(int.from_bytes(header, "big"))
    return pickle.loads(payload)


if __name__ == "__main__":
    store = Store(sys.argv[1])  # a directory or a URL
    work = _Work(store, prefetch="--prefetch" in sys.argv[2:])  # reading the history starts
    store.events.warm_up()
    serve(work, sys.stdin.buffer, sys.stdout.buffer)
    # Everything is committed and answered: skip the interpreter's teardown
    # (~0.1 s with pyarrow loaded), which the closing run would wait for.
    os._exit(0)
