"""Post-run triage in a child process that gets ready while the tests run.

Triage reads the log with DuckDB and writes its decisions with pyarrow and
deltalake: their imports, and their first use, take a second or more of one
core. The test process never loads them (the recorder's store process writes
the log), so triage in the test process added that second to the end of
every run with a failure. Instead, at a run's first failed test the agents'
plugin starts this child: it imports and warms up on the other core while
the remaining tests run, then waits for the run id, committing the run's
spooled batches as they pile up (`settle_while_waiting`), so that what is
left to commit at the end is small. Once the whole run is in the store it
triages (`testmem.agents.triage.Triage`, the same code as
`testmem triage`) and answers with the result and the warnings triage gave.

A run without failures starts nothing. If the child cannot start or ends
early, triage happens in the test process, as before. Like the store
process, it ignores the terminal's Ctrl-C (its own session) and exits when
its input closes.

    python -m testmem.agents.triage_process DIR   # the child: a run id on stdin
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

from testmem.memory.store_process import _receive, _send  # the same framing

if TYPE_CHECKING:
    from testmem.agents.decision import TriageResult
    from testmem.memory.store import Store

# While waiting, the spool is looked at this often, and settled once it holds
# this much, or half of what was settled before (few files per run, each
# bigger than the last, and at most a third of the run left for the end).
SETTLE_POLL_S = 0.5
SETTLE_MIN_BYTES = 256 * 1024


class TriageProcess:
    """A child that triages one run of the store at ``location``, when asked."""

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

    def triage(self, run_id: str) -> TriageResult | None:
        """The child's triage of ``run_id`` (its warnings re-issued here);
        None when there is no child to ask, and the caller triages itself."""
        child, self._child = self._child, None
        if child is None:
            return None
        assert child.stdin is not None and child.stdout is not None
        try:
            _send(child.stdin, run_id)
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


def warm_up(location: str) -> Any:
    """Import what triage uses, and use each once, before the run id comes."""
    import duckdb

    from testmem.agents import triage  # noqa: F401  (the analyzer, context, defects ...)
    from testmem.memory.events import Fact, to_table
    from testmem.memory.store import Store

    store = Store(location)
    store.events.warm_up()
    to_table([Fact.of("Warm", "")])  # pyarrow's first conversion imports more
    duckdb.connect(":memory:").close()
    return store


def settle_while_waiting(store: Store, requests: IO[bytes]) -> None:
    """Commit the run's spooled segments while its tests still run, until the
    run id (or the end of input) arrives."""
    spool, settled = store.events.spool, 0
    while spool is not None and not select.select([requests], [], [], SETTLE_POLL_S)[0]:
        waiting = spool.size()
        if waiting >= max(SETTLE_MIN_BYTES, settled // 2):
            store.events.settle()
            settled += waiting


def serve(location: str, requests: IO[bytes], answers: IO[bytes]) -> None:
    """Warm up, then triage the one run asked for; answer ``(ok, result or
    exception, [(warning category, message), ...])``."""
    store = warm_up(location)
    settle_while_waiting(store, requests)
    try:
        run_id = _receive(requests)
    except EOFError:
        return  # the run ended without asking
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
