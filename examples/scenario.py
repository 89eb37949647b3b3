"""Play the shop API's builds, one real recorded pytest run each, and judge the memory.

For every build: switch the live API to it, run a fresh copy of the example
suite with ``pytest --memory`` (in-run retries happen in that session), triage
the run as ``testmem triage`` would, apply and verify the heals it proposed,
and generate tests for what the API started answering. The judge knows each build's faults — the
memory does not — and says, for every decision, whether it was right.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testmem.agents.triage import decisions
from testmem.examples.builds import BUILDS
from testmem.examples.shop_api import Build, ShopServer, serve
from testmem.memory.query import History
from testmem.memory.store import Store

SUITE = Path(__file__).parent / "suite"
REPO = Path(__file__).resolve().parent.parent


def import_path() -> str:
    """PYTHONPATH for a played run: the caller's own first, so a checkout put on
    PYTHONPATH plays its own testmem rather than the installed one."""
    return os.pathsep.join(filter(None, (os.environ.get("PYTHONPATH"), str(REPO))))


# Tests that fail on purpose in every build: wrong tests, not API faults.
BROKEN_TESTS = frozenset(
    {
        "test_users.py::test_get_user_phone_number",
        "test_orders.py::test_order_total_is_as_invoiced",
        "test_orders.py::test_create_order_with_unknown_sku_returns_404",
    }
)
# The (action, category) pairs a careful engineer would accept for each cause.
RIGHT = {
    "rate-limit": {("retry", "transient")},
    "random-503": {("retry", "transient")},
    "regression-order-total": {("escalate", "regression")},
    "regression-warehouse": {("escalate", "regression")},
    # healed once the change held in two runs; "outdated, wait" before that
    "renamed-field": {("heal", "outdated"), ("none", "outdated")},
    "changed-status": {("heal", "outdated"), ("none", "outdated")},
    # reproducible and unexplained from the API's side: escalate, or wait at first sight
    "broken-test": {("escalate", "regression"), ("none", "unknown")},
}
REGRESSIONS = ("regression-order-total", "regression-warehouse")


@dataclass
class Judged:
    nodeid: str
    action: str
    category: str
    reason: str
    incident_id: str | None
    incident_is_new: bool
    attempts: int
    final_outcome: str
    cause: str
    right: bool


@dataclass
class BuildResult:
    build: Build
    run_id: str
    exit_code: int
    tests: int
    seconds: float
    decisions: list[Judged] = field(default_factory=list)
    heals: list[dict[str, Any]] = field(default_factory=list)  # heal_id, nodeid, diff, status
    defects: list[dict[str, Any]] = field(default_factory=list)  # filed or updated in this build
    generated: list[dict[str, Any]] = field(default_factory=list)  # path, tests
    output: str = ""


class Scenario:
    """A fresh store and a fresh copy of the suite under ``workdir``."""

    def __init__(self, workdir: Path, builds: list[Build] = BUILDS) -> None:
        self.workdir = workdir
        self.builds = builds
        self.store_dir = workdir / "store"
        self.suite_dir = workdir / "suite"

    def play(self, on_build: Callable[[BuildResult], None] = lambda r: None) -> list[BuildResult]:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        shutil.copytree(SUITE, self.suite_dir, ignore=shutil.ignore_patterns("__pycache__"))
        results = []
        with serve(self.builds[0]) as server:
            for build in self.builds:
                server.set_build(build)
                results.append(self.play_build(server, build))
                on_build(results[-1])
        return results

    def play_build(self, server: ShopServer, build: Build) -> BuildResult:
        from testmem.agents.triage import Triage

        started = time.monotonic()
        done = self._pytest(server.url, build.label)
        store = Store.open(self.store_dir)
        run_id = History(store).resolve_run("latest")
        # What `testmem triage` does, in this process: the model loads once, not once per build.
        Triage(store).run(run_id)
        history = History(store)
        result = BuildResult(
            build, run_id, done.returncode, _tests(history, run_id), 0.0, output=done.stdout
        )
        result.decisions = judge(history, run_id, build)
        result.heals = self._apply_heals(store, history, run_id, server.url)
        result.defects = _defects(History(store), run_id)
        result.generated = self._generate(store, server.url)
        result.seconds = time.monotonic() - started
        return result

    def _pytest(self, url: str, label: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable, "-m", "pytest", str(self.suite_dir), "--memory",
            f"--memory-dir={self.store_dir}", f"--memory-build={label}", f"--api-base-url={url}",
            "--no-memory-triage", "-q", "-p", "no:cacheprovider", f"--rootdir={self.suite_dir}",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": import_path(), "HF_HUB_OFFLINE": "1"}
        return subprocess.run(
            command, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=600
        )

    def _apply_heals(
        self, store: Store, history: History, run_id: str, url: str
    ) -> list[dict[str, Any]]:
        from testmem.agents.healer import apply_heal

        proposed = history.sql(
            """SELECT detail->>'$.heal_id' AS heal_id, nodeid, detail->>'$.path' AS path
               FROM facts WHERE type = 'HealProposed' AND run_id = ?""",
            [run_id],
        ).dicts()
        heals = []
        for heal in proposed:
            outcome = apply_heal(store, History(store), heal["heal_id"], api_base_url=url)
            diff = Path(heal["path"]).read_text() if heal["path"] else ""
            heals.append({**heal, "diff": diff, "status": outcome.status})
        return heals

    def _generate(self, store: Store, url: str) -> list[dict[str, Any]]:
        from testmem.agents.generator import generate_tests

        made = generate_tests(
            store, History(store), out=self.suite_dir / "generated", api_base_url=url
        )
        return [{"path": g.path, "tests": g.tests, "route": g.route} for g in made if g.path]


def _tests(history: History, run_id: str) -> int:
    return int(
        history.sql("SELECT count(DISTINCT nodeid) FROM results WHERE run_id = ?", [run_id]).rows[
            0
        ][0]
    )


def _defects(history: History, run_id: str) -> list[dict[str, Any]]:
    return history.sql(
        """SELECT type, incident_id, detail->>'$.defect_id' AS defect_id,
                  detail->>'$.title' AS title, detail->>'$.reference' AS reference,
                  CAST(detail->>'$.occurrences' AS INTEGER) AS occurrences
           FROM facts WHERE type IN ('DefectFiled', 'DefectUpdated') AND run_id = ?""",
        [run_id],
    ).dicts()


_EVIDENCE = """
    SELECT f.failure_id, f.message,
           list(x.status) FILTER (WHERE x.status IS NOT NULL) AS statuses,
           string_agg(x.response_body, ' ') AS bodies
    FROM failures f
    LEFT JOIN exchanges x ON x.run_id = f.run_id AND list_contains(f.exchange_ids, x.exchange_id)
    WHERE f.run_id = ?
    GROUP BY ALL"""


def judge(history: History, run_id: str, build: Build) -> list[Judged]:
    """Every decision of the run, with its true cause and whether it was right.

    The cause is read from the attempt the decision was about (the last one):
    a test that met a 503, was retried and then met a regression's 500 is
    failing because of the regression."""
    evidence = {row["failure_id"]: row for row in history.sql(_EVIDENCE, [run_id]).dicts()}
    judged = []
    for row in decisions(history, run_id).dicts():
        seen = evidence.get(row["failure_id"], {})
        text = f"{seen.get('message')} {seen.get('bodies')}"
        cause = cause_of(build, row["nodeid"], seen.get("statuses") or [], text)
        right = (row["action"], row["category"]) in RIGHT.get(cause, set())
        judged.append(
            Judged(
                row["nodeid"], row["action"], row["category"], row["reason"], row["incident_id"],
                row["incident_is_new"], row["attempts"], row["final_outcome"], cause, right,
            )
        )  # fmt: skip
    return judged


def cause_of(build: Build, nodeid: str, statuses: list[int], text: str) -> str:
    """The true cause of a failure, from the build's known faults and what the API answered.

    A wrong test that meets a fault's answer fails because of the fault: its
    own wrong check is never reached."""
    if 429 in statuses:
        return "rate-limit"
    if 503 in statuses:
        return "random-503"
    if build.regression_order_total and "OrderTotalMismatch" in text:
        return "regression-order-total"
    if nodeid in BROKEN_TESTS:
        return "broken-test"
    if build.regression_inventory_warehouse and "warehouse" in text:
        return "regression-warehouse"
    if build.rename_user_name_to and "'name'" in text:
        return "renamed-field"
    if build.create_user_status != 201 and "201" in text:
        return "changed-status"
    return "unexplained"


def incidents_per_cause(results: list[BuildResult]) -> dict[str, set[str]]:
    """For each cause, the incidents its decisions went to over all builds.

    A broken test is a cause of its own: three wrong tests are three causes."""
    found: dict[str, set[str]] = {}
    for result in results:
        for d in result.decisions:
            cause = f"{d.cause} {d.nodeid}" if d.cause == "broken-test" else d.cause
            if d.incident_id and cause != "unexplained":
                found.setdefault(cause, set()).add(d.incident_id)
    return found


def defects_per_regression(results: list[BuildResult]) -> dict[str, set[str]]:
    """For each regression, the defects filed for the incidents its failures went to."""
    incidents: dict[str, set[str]] = {cause: set() for cause in REGRESSIONS}
    for result in results:
        for d in result.decisions:
            if d.cause in incidents and d.incident_id:
                incidents[d.cause].add(d.incident_id)
    filed = {
        d["incident_id"]: d["defect_id"]
        for r in results
        for d in r.defects
        if d["type"] == "DefectFiled"
    }
    return {cause: {filed[i] for i in ids if i in filed} for cause, ids in incidents.items()}
