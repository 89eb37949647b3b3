"""The healer: update a test the API outgrew, by editing its syntax tree.

When a route changed on purpose — a field renamed, a success status or a
field's type changed, consistently over several runs (`testmem.agents.schema`) — and
a test's failing assertion is about exactly that, the healer writes a unified
diff that updates the test with libcst (formatting and comments survive) to
``DIR/heals/<heal_id>.patch`` and appends ``HealProposed``. `apply_heal` applies
it, re-runs the test in a pytest subprocess against the API, and appends
``HealVerified`` or ``HealFailed`` (restoring the file when the test still fails).

It never heals what an answer of 5xx explains, nor a removed field (deleting
the assertion would hide a regression): those get a `NoHeal` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from testmem.agents.patches import (
    PatchError,
    applies,
    apply_patch,
    changed_lines,
    reverse,
    unified_diff,
)
from testmem.agents.schema import (
    ADDED,
    REMOVED,
    RENAMED,
    STATUS_CHANGED,
    TYPE_CHANGED,
    ApiChange,
    detect_changes,
)
from testmem.memory.errors import NotFoundError, TestmemError
from testmem.memory.events import Fact
from testmem.memory.query import History, Rows
from testmem.memory.store import Store

if TYPE_CHECKING:
    from testmem.agents.edits import Edited

DEFAULT_MIN_OBSERVATIONS = 2
MAX_CHANGED_LINES = 40  # a heal is a small edit; anything larger is for a human
VERIFY_TIMEOUT_S = 300
_HEAL_ID = re.compile(r"^[0-9a-f]{4,32}$")


class HealError(TestmemError):
    """A heal cannot be applied (unknown id, the test file changed since...)."""


@dataclass(frozen=True)
class Heal:
    """A proposed patch to one test, and what it answers."""

    heal_id: str
    nodeid: str
    incident_id: str | None
    path: Path  # the patch file
    test_file: Path
    change: ApiChange
    diff: str
    how: str = ""  # for an added field: expected dict updated, or a tolerant comparison


@dataclass(frozen=True)
class NoHeal:
    """Why no patch was proposed."""

    reason: str


@dataclass(frozen=True)
class HealOutcome:
    heal_id: str
    status: str  # verified | failed
    exit_code: int
    output: str


# -- proposing ------------------------------------------------------------------


def load_failure(history: History, failure_id: str) -> dict[str, Any]:
    """A row of the ``failures`` view, as `propose_heal` takes it."""
    rows = history.sql("SELECT * FROM failures WHERE failure_id = ?", [failure_id]).dicts()
    if not rows:
        raise NotFoundError(f"unknown failure {failure_id!r}")
    return rows[0]


def propose_heal_for(
    store: Store,
    history: History,
    run_id: str,
    nodeid: str,
    incident_id: str | None = None,
    min_observations: int = DEFAULT_MIN_OBSERVATIONS,
) -> Heal | NoHeal:
    """`propose_heal` for the last failure of ``nodeid`` in run ``run_id``."""
    rows = history.sql(
        """SELECT * FROM failures WHERE run_id = ? AND nodeid = ?
           ORDER BY attempt DESC, occurred_at DESC LIMIT 1""",
        [run_id, nodeid],
    ).dicts()
    if not rows:
        return NoHeal(f"no failure of {nodeid} in run {run_id}")
    return propose_heal(
        store, history, rows[0], incident_id=incident_id, min_observations=min_observations
    )


def propose_heal(
    store: Store,
    history: History,
    failure: Mapping[str, Any],
    change: ApiChange | None = None,
    *,
    incident_id: str | None = None,
    min_observations: int = DEFAULT_MIN_OBSERVATIONS,
) -> Heal | NoHeal:
    """A patch for the failed test ``failure`` (a ``failures`` row), or why not.

    With no ``change`` given, the consistent changes of the routes the test
    called are looked up; the first one its failing assertion is about wins.
    Proposing the same patch twice returns the first proposal.
    """
    try:
        return _propose(store, history, failure, change, incident_id, min_observations)
    except TestmemError as exc:
        return NoHeal(str(exc))


def _propose(
    store: Store,
    history: History,
    failure: Mapping[str, Any],
    change: ApiChange | None,
    incident_id: str | None,
    min_observations: int,
) -> Heal | NoHeal:
    exchanges = _exchanges(history, failure)
    refusal = _refuse_exchanges(exchanges)
    if refusal:
        return refusal
    started, rootdir = _run_started(history, failure["run_id"])
    test = _locate_test(failure, Path(rootdir or Path.cwd()))
    if isinstance(test, NoHeal):
        return test
    # Changes seen fewer times still count here: the refusal then says so.
    candidates = [change] if change else changes_for(history, failure, exchanges, 1, started)
    edited = _first_edit(test, failure, exchanges, candidates, min_observations)
    if isinstance(edited, NoHeal):
        return edited
    chosen, new = edited
    diff = unified_diff(test.source, new.source, test.relpath)
    if changed_lines(diff) > MAX_CHANGED_LINES:
        return NoHeal(f"the patch would change {changed_lines(diff)} lines: too large to heal")
    incident_id = incident_id or _incident_of(history, failure)
    # The id is a digest of test function and patch: the same heal is proposed
    # once, for all the cases of a parametrised test.
    heal_id = _sha(f"{test_function(str(failure['nodeid']))}\n{diff}")[:12]
    heal = Heal(
        heal_id=heal_id,
        nodeid=str(failure["nodeid"]),
        incident_id=incident_id,
        path=store.subdir("heals") / f"{heal_id}.patch",
        test_file=test.path,
        change=chosen,
        diff=f"heal: {new.how}\n{diff}" if new.how else diff,
        how=new.how,
    )
    if not heal.path.exists():
        _record(store, failure, heal, test, exchanges)
    return heal


def test_function(nodeid: str) -> str:
    """The nodeid of the test function: ``f.py::test_x[1-a]`` -> ``f.py::test_x``."""
    head, sep, last = nodeid.rpartition("::")
    return f"{head}{sep}{last.split('[', 1)[0]}"


def changes_for(
    history: History,
    failure: Mapping[str, Any],
    exchanges: list[dict[str, Any]] | None = None,
    min_observations: int = DEFAULT_MIN_OBSERVATIONS,
    until: datetime | None = None,
) -> list[ApiChange]:
    """The consistent changes, as of the failure's run (or ``until``), of the
    routes and methods the failed test called."""
    if exchanges is None:
        exchanges = _exchanges(history, failure)
    until = until or _run_started(history, failure["run_id"])[0]
    found: list[ApiChange] = []
    for route, method in dict.fromkeys((x["route"], x["method"]) for x in exchanges):
        found += detect_changes(history, route, method, min_observations, until)
    return found


def _run_started(history: History, run_id: str) -> tuple[datetime | None, str | None]:
    """When the run started, and its rootdir."""
    found = history.sql(
        "SELECT occurred_at, rootdir FROM events WHERE type = 'RunStarted' AND run_id = ?",
        [run_id],
    ).rows
    return (found[0][0], found[0][1]) if found else (None, None)


def _exchanges(history: History, failure: Mapping[str, Any]) -> list[dict[str, Any]]:
    ids = list(failure.get("exchange_ids") or [])
    if not ids:
        return []
    return history.sql(
        "SELECT * FROM exchanges WHERE list_contains(?, exchange_id) ORDER BY occurred_at",
        [ids],
    ).dicts()


def _refuse_exchanges(exchanges: list[dict[str, Any]]) -> NoHeal | None:
    if not exchanges:
        return NoHeal("the failure has no HTTP exchange: nothing shows the API changed")
    if any(x["status"] is None or x["status"] >= 500 for x in exchanges):
        return NoHeal("the API answered 5xx or not at all: a server fault is not healed")
    return None


def _first_edit(
    test: HealTarget,
    failure: Mapping[str, Any],
    exchanges: list[dict[str, Any]],
    candidates: list[ApiChange],
    min_observations: int,
) -> tuple[ApiChange, Edited] | NoHeal:
    reasons = []
    for change in candidates:
        reason = _unhealable(change, exchanges, min_observations)
        if reason:
            reasons.append(reason)
            continue
        # The failing statement must be about the change; the edit then covers the
        # whole test for a rename (later lines use the field too), else that statement.
        line = test.crash_line(failure)
        if not _edit(test, change, line).edits:
            reasons.append(f"the failing assertion is not about it ({change.describe()})")
            continue
        scope = None if change.kind == RENAMED else line
        return change, _edit(test, change, scope)
    if not reasons:
        return NoHeal("no consistent API change on the routes this test called")
    return NoHeal("; ".join(dict.fromkeys(reasons)))


def _unhealable(
    change: ApiChange, exchanges: list[dict[str, Any]], min_observations: int
) -> str | None:
    if change.kind == REMOVED:
        return f"{change.describe()}: removing the assertion would hide a regression"
    if change.kind not in (RENAMED, STATUS_CHANGED, TYPE_CHANGED, ADDED):
        return f"{change.describe()}: nothing to heal"
    if not change.settled(min_observations):
        return (
            f"{change.describe()}: seen in {change.observations} run(s), {min_observations} needed"
            " (or several answers of one run all showing it)"
        )
    if change.kind == STATUS_CHANGED and not any(str(x["status"]) == change.new for x in exchanges):
        return f"{change.describe()}: this test did not get {change.new}"
    return None


# -- the test's source ---------------------------------------------------------------


@dataclass(frozen=True)
class HealTarget:
    """The failed test's function and the file it lives in."""

    rootdir: Path
    relpath: str  # as in the nodeid
    path: Path
    source: str
    qualname: list[str]  # [Class, ..., function]

    def crash_line(self, failure: Mapping[str, Any]) -> int:
        """The failing line; 0 (no line) when the failure happened in another file."""
        crash = failure.get("crash_path")
        if crash and Path(crash).resolve() == self.path.resolve():
            return int(failure.get("crash_line") or 0)
        return 0


def _locate_test(failure: Mapping[str, Any], rootdir: Path) -> HealTarget | NoHeal:
    nodeid = str(failure["nodeid"])
    relpath, _, rest = nodeid.partition("::")
    if not rest:
        return NoHeal(f"{nodeid} is not a test function")
    path = rootdir / relpath
    if not path.is_file():
        return NoHeal(f"test file {path} is gone (moved or deleted)")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return NoHeal(f"test file {path} cannot be read: {exc}")
    qualname = [part.split("[", 1)[0] for part in rest.split("::")]
    return HealTarget(rootdir, relpath, path, source, qualname)


def _edit(test: HealTarget, change: ApiChange, line: int | None) -> Edited:
    from testmem.agents.edits import edit_source  # libcst is heavy: only when healing

    return edit_source(test.source, test.qualname, change, line)


# -- recording ----------------------------------------------------------------------


def _incident_of(history: History, failure: Mapping[str, Any]) -> str | None:
    found = history.sql(
        """SELECT incident_id FROM facts WHERE type = 'FailureLinked' AND failure_id = ?
           ORDER BY occurred_at DESC LIMIT 1""",
        [failure.get("failure_id")],
    ).rows
    return str(found[0][0]) if found and found[0][0] else None


def _record(
    store: Store,
    failure: Mapping[str, Any],
    heal: Heal,
    test: HealTarget,
    exchanges: list[dict[str, Any]],
) -> None:
    heal.path.write_text(heal.diff, encoding="utf-8")
    fact = Fact.of(
        "HealProposed",
        str(failure.get("run_id") or ""),
        nodeid=heal.nodeid,
        failure_id=failure.get("failure_id"),
        incident_id=heal.incident_id,
        heal_id=heal.heal_id,
        test=test_function(heal.nodeid),
        path=str(heal.path),
        change=heal.change.describe(),
        how=heal.how or None,
        api_change=heal.change.as_dict(),
        test_file=str(test.path),
        rootdir=str(test.rootdir),
        api_base_url=_base_url(exchanges),
    )
    try:
        store.events.append([fact])
    except TestmemError:
        heal.path.unlink(missing_ok=True)  # no patch file without its event
        raise


def _base_url(exchanges: list[dict[str, Any]]) -> str | None:
    for exchange in exchanges:
        url = urlsplit(str(exchange.get("url") or ""))
        if url.scheme and url.netloc:
            return f"{url.scheme}://{url.netloc}"
    return None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- applying and verifying ---------------------------------------------------------


def proposal(history: History, heal_id: str) -> dict[str, Any]:
    """The ``HealProposed`` fact of a heal id (or a unique prefix of one)."""
    if not _HEAL_ID.match(heal_id):
        raise HealError(f"{heal_id!r} is not a heal id (see `testmem heals`)")
    rows = history.sql(
        """SELECT run_id, nodeid, incident_id, failure_id, detail FROM facts
           WHERE type = 'HealProposed' AND starts_with(detail->>'$.heal_id', ?)""",
        [heal_id],
    ).dicts()
    if len(rows) != 1:
        raise NotFoundError(
            f"no heal {heal_id!r}" if not rows else f"heal id prefix {heal_id!r} is ambiguous"
        )
    return {**rows[0], **json.loads(rows[0].pop("detail"))}


def apply_heal(
    store: Store,
    history: History,
    heal_id: str,
    api_base_url: str | None = None,
) -> HealOutcome:
    """Apply a proposed patch, re-run its test, record ``HealVerified``/``HealFailed``.

    A test that still fails gets its file back as it was.
    """
    heal = proposal(history, heal_id)
    test_file = Path(heal["test_file"])
    patch = _patch_file(store, heal)
    try:
        original = test_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise HealError(f"cannot read {test_file}: {exc.strerror}") from exc
    test_file.write_text(_patched(original, patch, heal), encoding="utf-8")
    url = api_base_url or heal.get("api_base_url")
    exit_code, output = rerun_test(heal, url)
    status = "verified" if exit_code == 0 else "failed"
    if status == "failed":
        test_file.write_text(original, encoding="utf-8")
    store.events.append([_verdict(heal, status, exit_code, output, url)])
    return HealOutcome(heal["heal_id"], status, exit_code, output)


def _patched(original: str, patch: str, heal: dict[str, Any]) -> str:
    try:
        return apply_patch(original, patch)
    except PatchError as exc:
        if not applies(original, reverse(patch)):
            raise HealError(f"{exc} ({heal['test_file']})") from None
    raise HealError(f"heal {heal['heal_id']} is already applied to {heal['test_file']}")


def _patch_file(store: Store, heal: dict[str, Any]) -> str:
    path = store.subdir("heals") / f"{heal['heal_id']}.patch"  # never a path from the log
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HealError(f"patch {path} is missing: {exc.strerror}") from exc


def rerun_test(heal: dict[str, Any], api_base_url: str | None) -> tuple[int, str]:
    """Run the healed test function (every case of it) with pytest in a
    subprocess; (exit code, output).

    Recorded into a scratch store, so a 429 or a 503 on the way is retried as
    in the recorded run (a heal is judged on the change, not on the noise)
    and the verification leaves no run in the memory.
    """
    import tempfile

    test = heal.get("test") or test_function(heal["nodeid"])
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="testmem-verify-") as scratch:
        command = [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider",
                   "--memory", f"--memory-dir={scratch}", "--no-memory-triage"]  # fmt: skip
        if api_base_url:
            command += ["--api-base-url", api_base_url]
            env["API_BASE_URL"] = api_base_url
        try:
            done = subprocess.run(
                command, cwd=heal.get("rootdir") or None, env=env, capture_output=True,
                text=True, timeout=VERIFY_TIMEOUT_S,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 1, f"could not run pytest: {exc}"
    return done.returncode, (done.stdout + done.stderr)[-4000:]


def _verdict(
    heal: dict[str, Any], status: str, exit_code: int, output: str, url: str | None
) -> Fact:
    return Fact.of(
        "HealVerified" if status == "verified" else "HealFailed",
        str(heal.get("run_id") or ""),
        nodeid=heal["nodeid"],
        incident_id=heal.get("incident_id"),
        failure_id=heal.get("failure_id"),
        heal_id=heal["heal_id"],
        exit_code=exit_code,
        api_base_url=url,
        output=output.strip().splitlines()[-1] if output.strip() else "",
    )


# -- listing ------------------------------------------------------------------------


def heals(history: History) -> Rows:
    """Every proposed heal with its latest status: proposed, verified or failed."""
    return history.sql(
        """WITH proposed AS (
               SELECT detail->>'$.heal_id' AS heal_id, incident_id, nodeid,
                      detail->>'$.path' AS path, detail->>'$.change' AS change, occurred_at
               FROM facts WHERE type = 'HealProposed'
               QUALIFY row_number() OVER (PARTITION BY heal_id ORDER BY occurred_at) = 1
           ), verdicts AS (
               SELECT detail->>'$.heal_id' AS heal_id,
                      arg_max(CASE type WHEN 'HealVerified' THEN 'verified' ELSE 'failed' END,
                              occurred_at) AS status
               FROM facts WHERE type IN ('HealVerified', 'HealFailed') GROUP BY 1
           )
           SELECT p.heal_id, p.incident_id, p.nodeid, p.path,
                  coalesce(v.status, 'proposed') AS status, p.change
           FROM proposed p LEFT JOIN verdicts v USING (heal_id)
           ORDER BY p.occurred_at"""
    )
