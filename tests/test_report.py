"""Weekly reports and terminal trends, specified over a real store whose
events are written at chosen instants, then read back through DuckDB."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.agents.cli import cli
from testmem.memory.events import (
    Event,
    Fact,
    FailureObserved,
    HttpExchanged,
    RunFinished,
    RunStarted,
)
from testmem.memory.events import TestFinished as Finished
from testmem.memory.query import History
from testmem.memory.report import Report, ReportError, render, render_trends, weekly_report
from testmem.memory.store import Store

# Two ISO weeks: 2026-W46 starts Monday 2026-11-09, 2026-W47 on 2026-11-16.
W46, W47 = date(2026, 11, 9), date(2026, 11, 16)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


class History_:
    """Writes runs into a store the way the recorder and the agents would."""

    def __init__(self, root: Path) -> None:
        self.store = Store(root)
        self.events: list[Event] = []
        self.serial = 0

    def run(self, when: datetime, outcomes: dict[str, str], rescued: tuple[str, ...] = ()) -> str:
        self.serial += 1
        run_id = f"run-{self.serial}"
        self.events.append(RunStarted(run_id=run_id, occurred_at=when))
        for i, (nodeid, outcome) in enumerate(outcomes.items()):
            moment = when + timedelta(seconds=i + 1)
            self.events.append(
                Finished(
                    run_id=run_id,
                    occurred_at=moment,
                    nodeid=nodeid,
                    outcome=outcome,
                    duration_s=2.0 if "slow" in nodeid else 0.1,
                )
            )
            if nodeid in rescued:
                self.events.append(
                    Finished(run_id=run_id, occurred_at=moment, nodeid=nodeid, attempt=2)
                )
        self.events.append(RunFinished(run_id=run_id, occurred_at=when + timedelta(minutes=5)))
        return run_id

    def failure(
        self, run_id: str, when: datetime, nodeid: str, incident: str, category: str | None
    ) -> None:
        failure_id = f"{run_id}-{nodeid}"
        self.events.append(
            FailureObserved(run_id=run_id, occurred_at=when, failure_id=failure_id, nodeid=nodeid)
        )
        self.fact(
            "FailureLinked",
            run_id,
            when,
            failure_id=failure_id,
            nodeid=nodeid,
            incident_id=incident,
        )
        if category:
            self.fact("DecisionMade", run_id, when, failure_id=failure_id, category=category)

    def fact(self, kind: str, run_id: str, when: datetime, **detail: object) -> None:
        self.events.append(dataclasses.replace(Fact.of(kind, run_id, **detail), occurred_at=when))

    def exchange(
        self, run_id: str, when: datetime, route: str, ms: float, body: str, status: int = 200
    ) -> None:
        from testmem.memory.events import Blob

        self.serial += 1
        self.events.append(
            HttpExchanged(
                run_id=run_id,
                occurred_at=when,
                exchange_id=f"x{self.serial}",
                route=route,
                status=status,
                duration_s=ms / 1000,
                response_body=Blob.of(body),
            )
        )

    def save(self) -> History:
        self.store.events.append(self.events)
        return History(self.store)


@pytest.fixture
def two_weeks(tmp_path: Path) -> Iterator[History]:
    """W46: 3 runs, a regression on test_b; W47: 2 runs, test_b fixed, test_c flaky."""
    h = History_(tmp_path / "store")
    for day in range(3):
        when = at(W46 + timedelta(days=day))
        run = h.run(when, {"t::test_a": "passed", "t::test_b": "failed", "t::test_slow": "passed"})
        h.failure(run, when, "t::test_b", "inc-b", "regression" if day else None)
        h.exchange(run, when, "/users/{id}", 10 + day, '{"id": 1, "name": "x"}')
    h.fact("DefectFiled", "run-1", at(W46), incident_id="inc-b", defect_id="D-1")
    for day, c in ((0, "failed"), (1, "passed")):
        when = at(W47 + timedelta(days=day))
        tests = {
            "t::test_a": "passed",
            "t::test_b": "passed",
            "t::test_c": c,
            "t::test_slow": "passed",
        }
        run = h.run(when, tests, rescued=("t::test_c",) if c == "failed" else ())
        if c == "failed":
            h.failure(run, when, "t::test_c", "inc-c", "flaky")
            h.fact("RetryAttempted", run, when, nodeid="t::test_c", attempt=2, wait_s=1.5)
        h.exchange(
            run, when, "/users/{id}", 100, '{"id": 1, "full_name": "x"}', status=503 if day else 200
        )
    h.fact("TestsGenerated", "run-4", at(W47), route="/users", tests=["t1", "t2", "t3"])
    h.fact("HealProposed", "run-4", at(W47), incident_id="inc-b", heal_id="h1")
    yield h.save()


def two_week_report(history: History, tz: str = "UTC") -> Report:
    return weekly_report(history, weeks=2, until=W47 + timedelta(days=3), tz=tz)


def test_weeks_are_iso_weeks_ending_with_the_one_holding_until(two_weeks: History) -> None:
    report = two_week_report(two_weeks)
    assert report.labels == ["2026-W46", "2026-W47"]


def test_runs_tests_and_pass_rate_per_week_with_change(two_weeks: History) -> None:
    w46, w47 = two_week_report(two_weeks).weeks
    assert (w46.values["runs"], w46.values["tests"]) == (3, 9)
    assert w46.values["pass_rate"] == pytest.approx(6 / 9)
    assert (w47.values["runs"], w47.values["tests"]) == (2, 8)
    assert w47.values["pass_rate"] == pytest.approx(7 / 8)
    assert w47.change["runs"] == -1
    assert w47.change["pass_rate"] == pytest.approx(7 / 8 - 6 / 9, abs=1e-5)


def test_failures_without_a_decision_count_as_unknown(two_weeks: History) -> None:
    w46, w47 = two_week_report(two_weeks).weeks
    assert (w46.values["failures_regression"], w46.values["failures_unknown"]) == (2, 1)
    assert (w47.values["failures_flaky"], w47.values["failures"]) == (1, 1)


def test_retries_rescued_and_time_waiting(two_weeks: History) -> None:
    w47 = two_week_report(two_weeks).weeks[1]
    assert (w47.values["retries_rescued"], w47.values["retry_wait_s"]) == (1, 1.5)


def test_incidents_new_open_and_resolved_after_clean_runs(two_weeks: History) -> None:
    w46, w47 = two_week_report(two_weeks).weeks
    assert (w46.values["incidents_new"], w46.values["incidents_open"]) == (1, 1)
    # inc-b's test passed in W47's first run, inc-c's in the run after its failure
    assert w47.values["incidents_resolved"] == 2
    assert (w47.values["incidents_new"], w47.values["incidents_open"]) == (1, 0)


def test_resolution_takes_the_runs_the_definition_asks(
    two_weeks: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testmem.memory.report import figures

    monkeypatch.setattr(figures, "RESOLVED_AFTER_RUNS", 2)
    w47 = two_week_report(two_weeks).weeks[1]
    # inc-b's test passed in both W47 runs; inc-c's only in the one after its failure
    assert (w47.values["incidents_resolved"], w47.values["incidents_open"]) == (1, 1)


def test_the_report_resolves_incidents_as_the_incidents_projection(tmp_path: Path) -> None:
    """inc-x: test_x failed, then passed in the next run; inc-y: test_y failed,
    then was only skipped. Runs that did not run an incident's tests, or skipped
    them, do not resolve it."""
    from testmem.memory.incidents import Incidents

    h = History_(tmp_path / "store")
    outcomes = [
        {"t::test_x": "failed", "t::test_y": "passed"},
        {"t::test_x": "passed", "t::test_y": "failed"},
        {"t::test_x": "passed", "t::test_y": "skipped"},
    ]
    for day, tests in enumerate(outcomes):
        when = at(W47 + timedelta(days=day))
        run = h.run(when, tests)
        for nodeid in (n for n, o in tests.items() if o == "failed"):
            failure_id = f"{run}-{nodeid}"
            h.events.append(
                FailureObserved(run_id=run, occurred_at=when, failure_id=failure_id, nodeid=nodeid)
            )
            incident = f"inc-{nodeid[-1]}"
            h.fact("FailureLinked", run, when, failure_id=failure_id, nodeid=nodeid,
                   incident_id=incident, signature=f"sig-{incident}")  # fmt: skip
    history = h.save()
    projection = {i.incident_id: i.status for i in Incidents(history.store).list()}
    week = weekly_report(history, weeks=1, until=W47 + timedelta(days=6), tz="UTC").weeks[-1]
    assert projection == {"inc-x": "resolved", "inc-y": "open"}
    assert (week.values["incidents_resolved"], week.values["incidents_open"]) == (1, 1)


def test_an_incident_resolves_when_its_test_fails_for_another_incident_only(
    tmp_path: Path,
) -> None:
    """A test that met a regression and also expects something else still fails
    once the regression is fixed: a failure joined to another incident resolves
    the first one; a failure not linked yet (no triage) may be it, and does not."""
    from testmem.memory.incidents import Incidents

    h = History_(tmp_path / "store")
    runs = [  # nodeid -> the incident its failure joined ("" : not linked)
        {"t::test_x": "inc-x", "t::test_y": "inc-y"},
        {"t::test_x": "inc-z", "t::test_y": ""},
    ]
    for day, linked in enumerate(runs):
        when = at(W47 + timedelta(days=day))
        run = h.run(when, dict.fromkeys(linked, "failed"))
        for nodeid, incident in linked.items():
            failure_id = f"{run}-{nodeid}"
            h.events.append(
                FailureObserved(run_id=run, occurred_at=when, failure_id=failure_id, nodeid=nodeid)
            )
            if incident:
                h.fact("FailureLinked", run, when, failure_id=failure_id, nodeid=nodeid,
                       incident_id=incident, signature=f"sig-{incident}")  # fmt: skip
    history = h.save()
    projection = {i.incident_id: i.status for i in Incidents(history.store).list()}
    week = weekly_report(history, weeks=1, until=W47 + timedelta(days=6), tz="UTC").weeks[-1]
    assert projection == {"inc-x": "resolved", "inc-y": "open", "inc-z": "open"}
    assert (week.values["incidents_resolved"], week.values["incidents_open"]) == (1, 2)


def test_defects_heals_and_generated_tests_are_counted(two_weeks: History) -> None:
    w46, w47 = two_week_report(two_weeks).weeks
    assert w46.values["defects_filed"] == 1
    assert (w47.values["heals_proposed"], w47.values["tests_generated"]) == (1, 3)


def test_flaky_lists_name_newly_flaky_tests(two_weeks: History) -> None:
    flaky = two_week_report(two_weeks).flaky
    assert [t["nodeid"] for t in flaky["top"]] == ["t::test_c"]
    assert [t["nodeid"] for t in flaky["newly"]] == ["t::test_c"]
    assert flaky["top"][0]["flakiness"] == 0.5


def test_slowest_tests_come_first_with_their_weekly_means(two_weeks: History) -> None:
    slowest = two_week_report(two_weeks).slowest
    assert slowest[0]["nodeid"] == "t::test_slow"
    assert slowest[0]["weekly_mean_s"] == [2.0, 2.0]


def test_routes_show_errors_latency_and_schema_changes(two_weeks: History) -> None:
    (route,) = two_week_report(two_weeks).routes
    assert route["weekly_requests"] == [3, 2]
    assert route["weekly_error_rate"] == [0.0, 0.5]
    assert route["weekly_p50_ms"][0] == pytest.approx(11, abs=1)
    assert route["schema_changes"] == [
        {"week": "2026-W47", "added": ["full_name"], "removed": ["name"]}
    ]


def test_time_zone_moves_an_event_into_the_next_week(tmp_path: Path) -> None:
    h = History_(tmp_path / "store")
    h.run(datetime(2026, 11, 15, 23, 30, tzinfo=UTC), {"t::a": "passed"})  # Sunday, UTC
    history = h.save()
    utc = weekly_report(history, weeks=2, until=W47, tz="UTC")
    paris = weekly_report(history, weeks=2, until=W47, tz="Europe/Paris")
    assert (utc.series("runs"), utc.series("tests")) == ([1, 0], [1, 0])
    assert (paris.series("runs"), paris.series("tests")) == ([0, 1], [0, 1])


def test_week_bounds_follow_daylight_saving_time(tmp_path: Path) -> None:
    h = History_(tmp_path / "store")
    # Paris left winter time on Sunday 2026-03-29: Monday 00:30 local is 22:30 UTC Sunday
    h.run(datetime(2026, 3, 29, 22, 30, tzinfo=UTC), {"t::a": "passed"})
    h.run(datetime(2026, 3, 29, 21, 30, tzinfo=UTC), {"t::a": "passed"})  # 23:30 Sunday local
    report = weekly_report(h.save(), weeks=2, until=date(2026, 3, 30), tz="Europe/Paris")
    assert report.labels == ["2026-W13", "2026-W14"]
    assert (report.series("runs"), report.series("tests")) == ([1, 1], [1, 1])


def test_incident_resolves_at_the_first_run_its_tests_pass(tmp_path: Path) -> None:
    h = History_(tmp_path / "store")
    run = h.run(at(W46), {"t::a": "failed"})
    h.failure(run, at(W46), "t::a", "inc-a", "regression")
    h.run(at(W47), {"t::other": "passed"})  # W47 Monday: a run without its test
    for day in (1, 2):  # then two runs where it passes
        h.run(at(W47 + timedelta(days=day)), {"t::a": "passed"})
    w46, w47 = weekly_report(h.save(), weeks=2, until=W47, tz="UTC").weeks
    assert (w46.values["incidents_open"], w47.values["incidents_open"]) == (1, 0)
    assert w47.values["incidents_resolved"] == 1
    assert w47.values["mttr_hours"] == pytest.approx(8 * 24)  # W46 Monday noon to W47 Tuesday


def test_unknown_time_zone_is_a_report_error(two_weeks: History) -> None:
    with pytest.raises(ReportError, match="unknown time zone"):
        two_week_report(two_weeks, tz="Mars/Olympus")


def test_empty_store_gives_a_report_that_says_so(tmp_path: Path) -> None:
    report = weekly_report(History(Store(tmp_path / "nothing")), weeks=4)
    assert report.empty and len(report.weeks) == 4
    assert all(w.values["pass_rate"] is None for w in report.weeks)
    assert "No data yet" in render(report, "html")
    assert "No data yet" in render(report, "md")
    assert json.loads(render(report, "json"))["weeks"][0]["runs"] == 0


def test_json_carries_the_same_figures(two_weeks: History) -> None:
    report = two_week_report(two_weeks)
    data = json.loads(render(report, "json"))
    assert [w["runs"] for w in data["weeks"]] == report.series("runs")
    assert data["weeks"][1]["change"]["runs"] == -1
    assert data["routes"][0]["route"] == "/users/{id}"


def test_markdown_has_tables_and_no_html(two_weeks: History) -> None:
    text = render(two_week_report(two_weeks), "md")
    assert "| 2026-W47 | 2 | 8 | 87.5% |" in text
    assert not re.search(r"<[a-z/][^>]*>", text)


def test_html_is_self_contained_with_a_chart_per_trend(two_weeks: History) -> None:
    page = render(two_week_report(two_weeks), "html")
    assert page.count('<svg class="chart"') == 5
    assert not re.search(r"<script|<link|@import|url\(|src=", page)
    assert "t::test_c" in page


def test_a_year_of_weekly_html_stays_small(two_weeks: History) -> None:
    page = render(weekly_report(two_weeks, weeks=52, until=W47), "html")
    assert page.count("2026-W") >= 52
    assert len(page.encode()) < 2_000_000


def test_trends_prints_sparklines_per_figure(two_weeks: History) -> None:
    text = render_trends(two_week_report(two_weeks))
    runs = next(line for line in text.splitlines() if line.startswith("Runs"))
    assert runs.split()[1:] == ["█▁", "2", "\u22121"]


def test_report_command_writes_the_chosen_format(two_weeks: History, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["--dir", str(two_weeks.store.root), "report", "--weeks", "2", "--until", "2026-11-19"]
    result = CliRunner().invoke(cli, [*args, "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [w["week"] for w in json.loads(out.read_text())["weeks"]] == ["2026-W46", "2026-W47"]


def test_trends_command_reads_the_time_zone_from_the_environment(two_weeks: History) -> None:
    args = ["--dir", str(two_weeks.store.root), "trends", "--until", "2026-11-19"]
    result = CliRunner(env={"TESTMEM_TZ": "Asia/Tokyo"}).invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Asia/Tokyo" in result.output.splitlines()[0]


def test_bad_time_zone_on_the_command_line_is_one_line_and_exit_2(two_weeks: History) -> None:
    args = ["--dir", str(two_weeks.store.root), "report", "--tz", "Nowhere/Land"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.strip().startswith("testmem: error: unknown time zone")
    assert len(result.output.strip().splitlines()) == 1


def test_report_out_creates_missing_parent_directories(two_weeks: History, tmp_path: Path) -> None:
    out = tmp_path / "ci" / "artifacts" / "weekly.md"
    args = ["--dir", str(two_weeks.store.root), "report", "--weeks", "2", "--until", "2026-11-19"]
    result = CliRunner().invoke(cli, [*args, "--format", "md", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2026-W47" in out.read_text()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    result = CliRunner().invoke(cli, [*args, "--out", str(blocked / "weekly.html")])
    assert result.exit_code == 2  # a parent that is a file is a clean one-line error
    assert len(result.output.strip().splitlines()) == 1, result.output
