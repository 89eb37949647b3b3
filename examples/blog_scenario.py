"""Play the blog API's releases, one real recorded pytest run each, and score the memory.

The second scenario, in another style than the shop's: the app runs
in-process (FastAPI under Starlette's `TestClient`), every test logs in
first, and several causes meet in one build. For each release: run a copy of
`examples/blog_suite` with ``pytest --memory`` (in-run retries happen in that
session), triage it, apply and verify the heals it proposed.

The ground truth is not written by hand: each change of a release is played
alone against the untouched suite (`Release.alone`, transient faults at full
rate), and a test's causes in a build are the changes that break it alone.
The cause of a decision is the one that explains the test's *final* attempt:
a transient one when a retry passed, else the most lasting of its causes
(a regression before an intended change before an added field before a
transient fault), since a retry clears a transient fault and a heal an
intended change.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from testmem.agents.triage import decisions
from testmem.examples.blog_api import Release
from testmem.examples.blog_builds import RELEASES
from testmem.examples.scenario import import_path
from testmem.memory.query import History
from testmem.memory.store import Store

SUITE = Path(__file__).parent / "blog_suite"

KINDS = {
    "rename_profile_image_to": "intended",
    "register_status": "intended",
    "article_reading_time": "additive",
    "article_503_rate": "transient",
    "tags_rate_limit_every": "transient",
    "dragon_articles_fail": "regression",
    "author_filter_fails": "regression",
}
LASTING = ("regression", "intended", "additive", "transient")  # which cause a final attempt shows
RIGHT = {
    "transient": {("retry", "transient")},
    "regression": {("escalate", "regression")},
    # healed, or "outdated, waiting" while the change has been seen once
    "intended": {("heal", "outdated"), ("none", "outdated")},
    "additive": {("heal", "outdated"), ("none", "outdated")},
}
_FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$")


@dataclass
class Scored:
    nodeid: str
    action: str
    category: str
    reason: str
    incident_id: str | None
    attempts: int
    final_outcome: str
    causes: list[str]  # every change of the build that breaks the test alone
    cause: str | None  # the one its final attempt shows
    right: bool


@dataclass
class Played:
    release: Release
    run_id: str
    exit_code: int
    pytest_s: float  # the recorded run, in-run retries and their waits included
    triage_s: float
    decisions: list[Scored] = field(default_factory=list)
    heals: list[dict[str, Any]] = field(default_factory=list)
    defects: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""


class BlogScenario:
    """A fresh store, a copy of the suite to heal, and one untouched for the truth."""

    def __init__(self, workdir: Path, releases: list[Release] = RELEASES) -> None:
        self.workdir = workdir
        self.releases = releases
        self.store_dir = workdir / "store"
        self.suite_dir = workdir / "suite"
        self.pristine_dir = workdir / "pristine"
        self._alone: dict[Release, frozenset[str]] = {}

    def play(self, on_build: Callable[[Played], None] = lambda p: None) -> list[Played]:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        for copy in (self.suite_dir, self.pristine_dir):
            shutil.copytree(SUITE, copy, ignore=shutil.ignore_patterns("__pycache__"))
        played = []
        for number, release in enumerate(self.releases):
            played.append(self.play_build(number, release))
            on_build(played[-1])
        return played

    def play_build(self, number: int, release: Release) -> Played:
        from testmem.agents.triage import Triage

        started = time.monotonic()
        done = _pytest(self.suite_dir, number, None, "--memory", f"--memory-dir={self.store_dir}",
                       f"--memory-build={release.label}", "--no-memory-triage")  # fmt: skip
        pytest_s, started = time.monotonic() - started, time.monotonic()
        store = Store.open(self.store_dir)
        run_id = History(store).resolve_run("latest")
        Triage(store).run(run_id)
        triage_s = time.monotonic() - started
        history = History(store)
        played = Played(release, run_id, done.returncode, pytest_s, triage_s, output=done.stdout)
        truth = {c: self.broken_by(number, c) for c in release.changes()}
        played.decisions = score(history, run_id, truth)
        played.heals = _apply_heals(store, history, run_id, number)
        played.defects = defects_filed(History(store), run_id)
        return played

    def broken_by(self, number: int, change: str) -> frozenset[str]:
        """The tests that fail when ``change`` of release ``number`` is played alone
        (once per change: a change alone is the same in every release that keeps it)."""
        alone = replace(self.releases[number].alone(change), label="")
        if alone not in self._alone:
            done = _pytest(self.pristine_dir, number, change, "-rfE")
            failed = (_FAILED_LINE.match(line) for line in done.stdout.splitlines())
            self._alone[alone] = frozenset(m[1] for m in failed if m)
        return self._alone[alone]


def _pytest(
    suite: Path, release: int, change: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
               f"--rootdir={suite}", *args]  # fmt: skip
    return subprocess.run(
        command, cwd=suite, env=_env(release, change), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def _env(release: int, change: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": import_path(), "HF_HUB_OFFLINE": "1"}
    env |= {"BLOG_RELEASE": str(release), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("BLOG_CHANGE", None)
    return env | ({"BLOG_CHANGE": change} if change else {})


def cause_of(causes: list[str], final_outcome: str, kinds_of: dict[str, str] = KINDS) -> str | None:
    """The change a test's final attempt shows, of those that break it alone."""
    kinds = {c: kinds_of[c] for c in causes}
    if final_outcome == "passed":  # a retry passed: only a transient cause goes away by itself
        transient = [c for c in causes if kinds[c] == "transient"]
        return transient[0] if transient else None
    return min(causes, key=lambda c: LASTING.index(kinds[c]), default=None)


def score(
    history: History,
    run_id: str,
    truth: dict[str, frozenset[str]],
    kinds: dict[str, str] = KINDS,
) -> list[Scored]:
    """Every decision of the run, with the cause the truth gives it (of the
    changes ``kinds`` names, each intended, additive, transient or a
    regression) and whether it was right."""
    scored = []
    for row in decisions(history, run_id).dicts():
        causes = sorted(c for c, broken in truth.items() if row["nodeid"] in broken)
        cause = cause_of(causes, row["final_outcome"], kinds)
        right = cause is not None and (row["action"], row["category"]) in RIGHT[kinds[cause]]
        scored.append(
            Scored(
                row["nodeid"], row["action"], row["category"], row["reason"], row["incident_id"],
                row["attempts"], row["final_outcome"], causes, cause, right,
            )
        )  # fmt: skip
    return scored


def _apply_heals(store: Store, history: History, run_id: str, release: int) -> list[dict[str, Any]]:
    from testmem.agents.healer import HealError, apply_heal

    proposed = history.sql(
        """SELECT detail->>'$.heal_id' AS heal_id, nodeid FROM facts
           WHERE type = 'HealProposed' AND run_id = ?""",
        [run_id],
    ).dicts()
    heals = []
    saved = dict(os.environ)
    os.environ.update(_env(release))  # the heal's re-run meets the same release in-process
    try:
        for heal in proposed:
            try:
                status = apply_heal(store, History(store), heal["heal_id"]).status
            except HealError as exc:  # e.g. a sibling's identical patch applied it already
                status = f"not applied: {exc}"
            heals.append({**heal, "status": status})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return heals


def defects_filed(history: History, run_id: str) -> list[dict[str, Any]]:
    """The defects the run filed or updated."""
    return history.sql(
        """SELECT type, incident_id, detail->>'$.defect_id' AS defect_id,
                  detail->>'$.title' AS title
           FROM facts WHERE type IN ('DefectFiled', 'DefectUpdated') AND run_id = ?""",
        [run_id],
    ).dicts()


def incidents_per_cause(played: list[Played]) -> dict[str, set[str]]:
    """For each change, the incidents its failures went to over all builds."""
    found: dict[str, set[str]] = {}
    for build in played:
        for d in build.decisions:
            if d.cause and d.incident_id:
                found.setdefault(d.cause, set()).add(d.incident_id)
    return found


def defects_per_cause(played: list[Played]) -> dict[str, set[str]]:
    """For each change, the defects filed for the incidents its failures went to."""
    filed = {d["incident_id"]: d["defect_id"] for b in played for d in b.defects
             if d["type"] == "DefectFiled"}  # fmt: skip
    return {
        cause: {filed[i] for i in incidents if i in filed}
        for cause, incidents in incidents_per_cause(played).items()
    }


def summary(played: list[Played]) -> dict[str, Any]:
    """The scenario's figures, as docs/BENCHMARKS.md reports them."""
    scored = [d for b in played for d in b.decisions]
    heals = [h for b in played for h in b.heals]
    return {
        "decisions": len(scored),
        "right": sum(d.right for d in scored),
        "incidents_per_cause": {c: len(i) for c, i in incidents_per_cause(played).items()},
        "defects_per_cause": {c: len(d) for c, d in defects_per_cause(played).items()},
        "heals": len(heals),
        "heals_verified": sum(h["status"] == "verified" for h in heals),
        "pytest_s": [round(b.pytest_s, 2) for b in played],
        "triage_s": [round(b.triage_s, 2) for b in played],
    }


def main() -> None:
    """``python -m testmem.examples.blog_scenario [WORKDIR]``: play, print each build,
    then the figures."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "blog"
        played = BlogScenario(workdir).play(on_build=print_build)
        print(json.dumps(summary(played), indent=2))


def print_build(build: Played) -> None:
    """A build's decisions, right or wrong, its heals and its defects."""
    print(f"== {build.release.label} ({', '.join(build.release.changes()) or 'baseline'})",
          f"pytest {build.pytest_s:.0f} s, triage {build.triage_s:.0f} s", flush=True)  # fmt: skip
    for d in build.decisions:
        mark = "ok " if d.right else "BAD"
        print(f"  {mark} {d.action:<8} {d.category:<10} {d.nodeid} [{d.cause}] {d.reason}")
    for h in build.heals:
        print(f"  heal {h['heal_id']} {h['nodeid']}: {h['status']}")
    for x in build.defects:
        print(f"  {x['type']} {x['defect_id']} {x['title'] or ''}")


if __name__ == "__main__":
    main()
