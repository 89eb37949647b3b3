"""``make demo``: watch the memory learn across twelve builds of the shop API.

Each build is a real ``pytest --memory`` run of the example suite against the
example API on 127.0.0.1; the view below shows, build by build, what the
memory did with each failure. Run it as often as you like: it starts from a
fresh store under ``data/demo`` every time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from testmem.examples.scenario import (
    REPO,
    BuildResult,
    Scenario,
    defects_per_regression,
    incidents_per_cause,
)

WIDTH = 100
ACTION_WORDS = {"retry": "retried", "heal": "healing", "escalate": "escalated", "none": "waiting"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO / "data" / "demo", help="Where to play.")
    parser.add_argument("--builds", type=int, default=None, help="Play only the first N builds.")
    args = parser.parse_args(argv)
    scenario = Scenario(args.dir.resolve())
    if args.builds:
        scenario.builds = scenario.builds[: args.builds]
    builds = len(scenario.builds)
    print(f"testmem demo: {builds} builds of the shop API, each a real `pytest --memory` run")
    print(f"store: {scenario.store_dir}\n")
    started = time.monotonic()
    total = len(scenario.builds)
    results = scenario.play(lambda r: show_build(r, total))
    problems = ending(scenario, results)
    print(f"\nplayed {total} builds in {time.monotonic() - started:.0f}s")
    for problem in problems:
        print(f"demo: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def show_build(result: BuildResult, total: int) -> None:
    b = result.build
    failed = sum(1 for d in result.decisions if d.final_outcome != "passed")
    head = f"[{b.number + 1:>2}/{total}] {b.label:<7} {b.note}"
    tail = f"{result.tests} tests · {failed} failed · {result.seconds:.1f}s"
    print(f"{head:<{WIDTH - len(tail)}}{tail}")
    for d in result.decisions:
        seen = "new " if d.incident_is_new else "seen"
        rescued = " → passed on retry" if d.final_outcome == "passed" else ""
        print(f"    {seen} {d.incident_id or '-':<12} {ACTION_WORDS[d.action]:<9} {d.category:<10} "
              f"{_short(d.nodeid, 52)}{rescued}")  # fmt: skip
        print(f"         {'':<12} {'':<9} {_short(d.reason, 80)}")
    for heal in result.heals:
        mark = "✓ verified" if heal["status"] == "verified" else f"✗ {heal['status']}"
        print(f"    healed {heal['nodeid']} ({mark}), patch:")
        for line in heal["diff"].splitlines()[2:]:
            if line.startswith(("+", "-")):
                print(f"         {line}")
    for defect in result.defects:
        what = f"{defect['occurrences'] or '?'} occurrences"
        if defect["type"] == "DefectFiled":
            what = f"{_short(defect['title'], 60)} → {defect['reference']}"
        verb = "filed" if defect["type"] == "DefectFiled" else "updated"
        print(f"    defect {verb}: {defect['defect_id']} for {defect['incident_id']}: {what}")
    for made in result.generated:
        print(f"    generated {len(made['tests'])} tests for {made['route']}: {made['path']}")


def ending(scenario: Scenario, results: list[BuildResult]) -> list[str]:
    """The closing tables; returns what went wrong, if anything."""
    from testmem.agents.defects import defects
    from testmem.memory.incidents import Incidents
    from testmem.memory.query import History
    from testmem.memory.report import render, weekly_report
    from testmem.memory.store import Store

    store = Store.open(scenario.store_dir)
    _section("incidents")
    for i in Incidents(store).list():
        label = f" [{i.label}]" if i.label else ""
        message = _short(i.sample_message, 64)
        print(f"  {i.incident_id:<12} {i.status:<8} {i.occurrences:>3} seen  {message}{label}")
    _section("defects filed")
    for d in defects(store):
        title = _short(d["title"], 50)
        print(f"  {d['defect_id']}  {d['severity']:<8} {d['occurrences']:>3} seen  {title}")
    heals = [h for r in results for h in r.heals]
    _section("heals")
    for h in heals:
        print(f"  {h['heal_id']}  {h['status']:<9} {h['nodeid']}")
    decisions = [d for r in results for d in r.decisions]
    right = sum(d.right for d in decisions)
    _section("how the memory did")
    print(f"  decisions right: {right}/{len(decisions)} ({right / max(len(decisions), 1):.0%})")
    per_regression = defects_per_regression(results)
    for cause, filed in per_regression.items():
        print(f"  {cause}: {len(filed)} defect(s)")
    per_cause = incidents_per_cause(results)
    for cause, found in sorted(per_cause.items()):
        print(f"  {cause}: {len(found)} incident(s)")
    report = weekly_report(History(store), weeks=1)
    html = store.subdir("reports") / "weekly.html"
    html.write_text(render(report, "html"))
    _section(f"weekly report: {html}")
    print(render(report, "md"))
    problems = [
        f"build {r.build.label}: pytest exited {r.exit_code}"
        for r in results
        if r.exit_code not in (0, 1)
    ]
    problems += [f"heal {h['heal_id']} {h['status']}" for h in heals if h["status"] != "verified"]
    problems += [
        f"{c}: {len(f)} defects, expected 1" for c, f in per_regression.items() if len(f) != 1
    ]
    problems += [
        f"{c}: {len(i)} incidents, expected 1" for c, i in per_cause.items() if len(i) != 1
    ]
    return problems


def _section(title: str) -> None:
    print(f"\n── {title} " + "─" * max(0, WIDTH - len(title) - 4))


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
