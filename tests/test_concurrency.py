"""Four recorded runs, a compaction and a report on one store at once (issue 7).

Four `pytest -n 2 --memory` runs of the example suite start together, each
against an example shop API of its own on 127.0.0.1 that plays the order-total
regression: four tests of every run fail with it, two more fail on purpose,
and every run's triage wants to file the regression's defect (file sink).
Midway through recording, `testmem compact` and `testmem report --out` start
beside them (see `bench.concurrency`, which runs more rounds for
docs/RELIABILITY.md). Afterwards the store must hold exactly what the runs
recorded, each event once; the regression must be one incident with one
defect however the four triages interleaved; the index must agree with the log.

Heavy: some fifteen processes for 40 to 90 s on a busy 2-core machine. So it
is one test over one scenario: a module fixture shared by several tests would
run once per xdist worker that picks one of them up.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

from bench.concurrency import (
    FAILING,
    REGRESSION,
    TESTMEM,
    TESTS,
    Scenario,
    Tally,
    env,
    run_scenario,
    tally,
)

RUNS = 4
PYTEST_TESTS_FAILED = 1  # pytest's exit status when tests failed


def test_four_runs_a_compaction_and_a_report_at_once_leave_an_exact_store(
    tmp_path: Path,
) -> None:
    scenario = run_scenario(tmp_path, runs=RUNS, workers=2)
    counted = tally(scenario.store)
    check_each_run_kept_the_suites_outcome(scenario, counted)
    check_compact_and_report_ran_beside_the_runs(scenario)
    check_every_event_is_stored_exactly_once(scenario, counted)
    check_one_incident_and_one_defect_per_regression(counted)
    check_the_index_and_the_incidents_agree_with_the_log(scenario, counted)


def check_each_run_kept_the_suites_outcome(scenario: Scenario, counted: Tally) -> None:
    summary = f"{len(FAILING)} failed, {TESTS - len(FAILING)} passed"
    for run in scenario.runs:
        assert run.returncode == PYTEST_TESTS_FAILED, run.output[-3000:]
        assert summary in run.output, run.output[-3000:]
        assert "testmem: recorded run" in run.output, run.output[-3000:]
        # Triage reports its problems (a defect not filed, an unknown incident)
        # as warning lines; the recorder its lost events and failed triage.
        warnings = re.findall(r"^(?:  warning: |testmem: WARNING).{0,300}", run.output, re.M)
        assert warnings == [], run.name
    assert len(counted.outcomes) == RUNS
    for outcomes in counted.outcomes.values():
        assert len(outcomes) == TESTS
        assert {t for t, o in outcomes.items() if o == "failed"} == FAILING
        assert Counter(outcomes.values()) == {
            "failed": len(FAILING),
            "passed": TESTS - len(FAILING),
        }


def check_compact_and_report_ran_beside_the_runs(scenario: Scenario) -> None:
    compact, report = scenario.compact, scenario.report_command
    assert compact.returncode == 0, compact.output
    assert report.returncode == 0, report.output
    assert scenario.runs_running_at_launch == RUNS
    assert compact.started_s < min(r.ended_s for r in scenario.runs)
    compacted = json.loads(compact.stdout)
    assert compacted["files_after"] < compacted["files_before"]
    html = scenario.report.read_text()  # its folder did not exist before
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html


def check_every_event_is_stored_exactly_once(scenario: Scenario, counted: Tally) -> None:
    assert counted.event_ids == counted.events
    assert counted.counts["RunStarted"] == counted.counts["RunFinished"] == RUNS
    assert counted.counts["TestFinished"] == TESTS * RUNS
    assert counted.counts["FailureObserved"] == len(FAILING) * RUNS
    # Every request an API answered is in the log once; none is invented.
    assert counted.counts["HttpExchanged"] == counted.exchange_ids == scenario.served
    # What each run said it recorded is what the log holds for it.
    said = [re.search(r"recorded run (\S+) \((\d+) events\)", r.output) for r in scenario.runs]
    assert all(said)
    assert {m[1]: int(m[2]) for m in said if m} == counted.recorded
    # Triage: each failure linked once, each failed test decided once per run.
    assert counted.counts["FailureLinked"] == counted.linked_failures == len(FAILING) * RUNS
    assert counted.counts["DecisionMade"] == len(FAILING) * RUNS


def check_one_incident_and_one_defect_per_regression(counted: Tally) -> None:
    assert len(counted.regression_incidents) == 1, counted.regression_incidents
    (regression,) = counted.regression_incidents
    per_incident = counted.defects_per_incident
    assert per_incident[regression] == 1, counted.filed
    assert set(per_incident.values()) == {1}, counted.filed
    filed = {defect for _, defect in counted.filed}
    assert len(filed) == len(counted.filed)
    assert counted.sink_defects == filed
    assert counted.sink_files == {".md": len(filed), ".json": len(filed)}
    assert counted.outbox == 0


def check_the_index_and_the_incidents_agree_with_the_log(
    scenario: Scenario, counted: Tally
) -> None:
    assert counted.index_problems == []
    doctor = cli(scenario.store, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert [c["problems"] for c in json.loads(doctor.stdout)["checks"]] == [[]] * 4
    listed = cli(scenario.store, "incidents", "--json")
    assert listed.returncode == 0, listed.stderr
    incidents = {i["incident_id"]: i for i in json.loads(listed.stdout)}
    assert len(incidents) == len(json.loads(listed.stdout))
    assert {i for i, _ in counted.filed} <= set(incidents)
    (regression,) = counted.regression_incidents
    assert incidents[regression]["tests"] == len(REGRESSION)
    assert incidents[regression]["occurrences"] == len(REGRESSION) * RUNS
    assert sum(i["occurrences"] for i in incidents.values()) == len(FAILING) * RUNS


def cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*TESTMEM, "--dir", str(store), *args]
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=300)
