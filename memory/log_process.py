"""The recorder's appends, made by a child process on the other core.

Writing the log needs pyarrow and deltalake, whose imports hold the GIL for
~0.2 s, and every flush holds it again to turn events into Arrow columns. In
the test process that time comes out of the tests' own, however the work is
threaded. `ProcessLog` hands it to a child process instead: the recorder's
writer thread sends each batch, pickled, over a pipe and waits for the child's
answer, so a flush is still one atomic commit, and a failed one still reaches
the run as a `StoreError`. The child ignores the terminal's Ctrl-C (its own
session) and exits when its input closes, after its last commit, so a killed
run loses at most the batch in flight, as with an in-process writer. If no
child can be started, appends happen in this process.

    python -m memory.log_process DIR/events   # the child: batches on stdin
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import memory
from memory.errors import StoreError
from memory.events import Event
from memory.log import EventLog

_OK = b"ok\n"
_HEADER = 8  # bytes of a batch's length, big-endian


class ProcessLog:
    """Appends to the log at ``path`` through a child process (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._child: subprocess.Popen[bytes] | None = None
        self._local: EventLog | None = None  # when no child could start
        self._lock = threading.Lock()  # one batch on the pipe at a time

    def warm_up(self) -> None:
        """Start the child, which imports the writing libraries meanwhile."""
        with self._lock:
            self._start()

    def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._lock:
            child = self._start()
            if child is None:
                assert self._local is not None
                self._local.append(events)
                return
            assert child.stdin is not None and child.stdout is not None
            payload = pickle.dumps(list(events), protocol=pickle.HIGHEST_PROTOCOL)
            try:
                child.stdin.write(len(payload).to_bytes(_HEADER, "big") + payload)
                child.stdin.flush()
                answer = child.stdout.readline()
            except OSError:  # the child is gone: a broken pipe
                answer = b""
        if answer == _OK:
            return
        if not answer:
            raise StoreError(
                f"cannot append to {self.path}: the writer process ended (exit {child.poll()})"
            )
        raise StoreError(answer.decode("utf-8", "replace").strip())

    def close(self) -> None:
        """Let the child finish (it exits once its input closes)."""
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None and child.stdout is not None
        with contextlib.suppress(OSError):  # a broken pipe: it is gone already
            child.stdin.close()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()

    def _start(self) -> subprocess.Popen[bytes] | None:
        if self._child is None and self._local is None:
            # The child imports `memory` from where this process found it.
            package_root = str(Path(memory.__file__).resolve().parents[1])
            paths = [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]
            try:
                self._child = subprocess.Popen(
                    [sys.executable, "-m", "memory.log_process", str(self.path)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
                    start_new_session=True,
                )
            except OSError:
                self._local = EventLog(self.path)
        return self._child


def serve(log: EventLog, batches: IO[bytes], answers: IO[bytes]) -> None:
    """Append each batch read from ``batches``; answer ``ok`` or the error."""
    while header := batches.read(_HEADER):
        events = pickle.loads(batches.read(int.from_bytes(header, "big")))
        try:
            log.append(events)
            answer = _OK
        except StoreError as error:
            answer = (" ".join(str(error).split()) + "\n").encode()
        answers.write(answer)
        answers.flush()


if __name__ == "__main__":
    target = EventLog(Path(sys.argv[1]))
    target.warm_up()
    serve(target, sys.stdin.buffer, sys.stdout.buffer)
    # Every batch is committed and answered: skip the interpreter's teardown
    # (~0.1 s with pyarrow loaded), which the closing run would wait for.
    os._exit(0)
