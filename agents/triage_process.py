"""Post-run triage in a child process that gets ready while the tests run.

Triage reads the log with DuckDB and writes its decisions with pyarrow and
deltalake: their imports, and their first use, take a second or more of one
core. The test process never loads them, so triage in the test process added
that second to the end of every run with a failure. Instead, at a run's
first failed test the agents' plugin starts this child: it imports and warms
up on the other core while the remaining tests run. Meanwhile it answers the
retry advisor's question for the tests' history (the same child: one process
loads DuckDB for both, not this and the recorder's store process), and
commits the run's spooled batches as they pile up (`next_request`), so that
what is left to commit at the end is small. Once the whole run is in the
store it triages (`testmem.agents.triage.Triage`, the same code as
`testmem triage`) and answers with the result and the warnings triage gave.

A run without failures starts nothing. If the child cannot start or ends
early, triage happens in the test process, as before. Like the store
process, it ignores the terminal's Ctrl-C (its own session) and exits when
its input closes.

    python -m testmem.agents.triage_process DIR   # the child: requests on stdin
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import subprocess
import sys
import warnings
from typing import IO, TYPE_CHECKING, Any

from testmem.memory.store import Store
from testmem.memory.store_process import (  # the same framing
    _receive,
    _send,
    advisor_records,
    keep_advisor_records,
)

if TYPE_CHECKING:
    from testmem.agents.decision import TriageResult

# While waiting, the spool is looked at this often, and settled once it holds
# this much, or half of what was settled before (few files per run, each
# bigger than the last, and at most a third of the run left for the end).
SETTLE_POLL_S = 0.5
SETTLE_MIN_BYTES = 256 * 1024


class TriageProcess:
    """A child that reads the tests' history for the retry advisor and
    triages one run of the store at ``location``, when asked."""

    def __init__(self, location: str) -> None:
        try:
            self._child: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "testmem.agents.triage_process", location],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._child = None

    def test_records(self, exclude_run: str) -> list[dict[str, Any]] | None:
        """The tests' history for the retry advisor, read by the child (one
        process loads DuckDB for both); None if it cannot answer."""
        child = self._child
        if child is None:
            return None
        assert child.stdin is not None and child.stdout is not None
        try:
            _send(child.stdin, ("records", exclude_run))
            ok, value = _receive(child.stdout)
        except (OSError, EOFError, pickle.UnpicklingError):  # it is gone
            return None
        return value if ok else None

    def triage(self, run_id: str) -> TriageResult | None:
        """The child's triage of ``run_id`` (its warnings re-issued here);
        None when there is no child to ask, and the caller triages itself."""
        child, self._child = self._child, None
        if child is None:
            return None
        assert child.stdin is not None and child.stdout is not None
        try:
            _send(child.stdin, ("triage", run_id))
            child.stdin.close()
            ok, value, caught = _receive(child.stdout)
        except (OSError, EOFError, pickle.UnpicklingError):  # it is gone
            return None
        finally:
            _reap(child)
        for category, message in caught:
            warnings.warn(message, category, stacklevel=2)
        if not ok:
            raise value
        result: TriageResult = value
        return result

    def close(self) -> None:
        """Let a child never asked go (it exits once its input closes)."""
        child, self._child = self._child, None
        if child is not None:
            with contextlib.suppress(OSError):
                assert child.stdin is not None
                child.stdin.close()
            _reap(child)


def _reap(child: subprocess.Popen[bytes]) -> None:
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()


def warm_up(store: Store) -> None:
    """Import what triage uses, and use each once, before the run id comes."""
    import duckdb

    from testmem.agents import triage  # noqa: F401  (the analyzer, context, defects ...)
    from testmem.memory.events import Fact, to_table

    store.events.warm_up()
    to_table([Fact.of("Warm", "")])  # pyarrow's first conversion imports more
    duckdb.connect(":memory:").close()


class _Idle:
    """What the child does between requests: warm up, once (a first question,
    the advisor's, is answered before), then commit the run's spooled
    segments while its tests still run."""

    def __init__(self, store: Store) -> None:
        self.store, self.warm, self.settled = store, False, 0

    def now_and_then(self) -> None:
        if not self.warm:
            warm_up(self.store)
            self.warm = True
            return
        spool = self.store.events.spool
        waiting = spool.size() if spool is not None else 0
        if waiting and waiting >= max(SETTLE_MIN_BYTES, self.settled // 2):
            self.store.events.settle()
            self.settled += waiting


def next_request(requests: IO[bytes], idle: _Idle) -> Any | None:
    """The next request, the child busy with ``idle`` until it comes; None
    once the input ends (the run ended without asking)."""
    while True:
        timeout = SETTLE_POLL_S if idle.warm else 0  # not warm yet: a question comes first
        if select.select([requests], [], [], timeout)[0]:
            break
        idle.now_and_then()
    try:
        return _receive(requests)
    except EOFError:
        return None


def serve(location: str, requests: IO[bytes], answers: IO[bytes]) -> None:
    """Warm up, then answer: ``("records", run)`` with the tests' history for
    the retry advisor, ``(ok, rows or error)``, as often as asked; then
    ``("triage", run)``, the last request, with ``(ok, result or exception,
    [(warning category, message), ...])``."""
    store = Store(location)
    idle = _Idle(store)
    while (request := next_request(requests, idle)) is not None:
        kind, argument = request
        if kind == "records":
            _send(answers, _records(store, argument))
            continue
        _send_triage(store, argument, answers)
        with contextlib.suppress(Exception):  # for the next run's first failure: advice only
            keep_advisor_records(store)
        return


def _records(store: Store, exclude_run: str) -> tuple[bool, Any]:
    try:
        return True, advisor_records(store, exclude_run)
    except Exception as exc:  # history is advice: the run reads it itself instead
        return False, f"{type(exc).__name__}: {exc}"


def _send_triage(store: Store, run_id: str, answers: IO[bytes]) -> None:
    from testmem.agents.triage import Triage

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            answer: tuple[bool, Any] = (True, Triage(store).run(run_id))
        except Exception as exc:
            answer = (False, exc)
    said = [(w.category, str(w.message)) for w in caught]
    try:
        _send(answers, (*answer, said))
    except (pickle.PicklingError, TypeError, AttributeError):
        _send(answers, (False, RuntimeError(f"{answer[1]!r}"), said))


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
    sys.stdout.flush()
    os._exit(0)  # answered and committed: skip the interpreter's teardown
