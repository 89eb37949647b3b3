"""Retention: `testmem purge` forgets old events or old bodies, atomically, and
what remains still answers questions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from testmem.memory.cli import cli
from testmem.memory.events import (
    Blob,
    Event,
    Fact,
    FailureObserved,
    HttpExchanged,
    RunStarted,
    uuid7,
)
from testmem.memory.query import History
from testmem.memory.retention import (
    RetentionError,
    drop_bodies,
    parse_age,
    parse_date,
    purge_before,
)
from testmem.memory.store import Store

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=90)
BODY = b'{"id": 1, "email": "a@example.com"}' * 200


def run_at(when: datetime) -> list[Event]:
    """A run with one exchange (bodies both ways) and one failure."""
    run_id = uuid7()
    body = Blob.of(BODY)
    failure = FailureObserved(
        run_id=run_id,
        occurred_at=when,
        failure_id=uuid7(),
        nodeid="tests/test_users.py::test_get_user",
        exception_type="AssertionError",
        message="AssertionError: no key 'email'",
    )
    return [
        RunStarted(run_id=run_id, occurred_at=when),
        HttpExchanged(
            run_id=run_id,
            occurred_at=when,
            exchange_id=uuid7(),
            url="http://127.0.0.1/users/1",
            route="/users/{id}",
            status=200,
            request_body=body,
            response_body=body,
        ),
        failure,
        replace(
            Fact.of(
                "FailureLinked",
                run_id,
                failure_id=failure.failure_id,
                incident_id="INC-0000abcd",
                signature="sig-email",
                nodeid=failure.nodeid,
                method="new",
            ),
            occurred_at=when,
        ),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store")
    store.events.append(run_at(OLD))
    store.events.append(run_at(NOW))
    return store


def parquet_bytes(store: Store) -> int:
    return sum(p.stat().st_size for p in store.events.path.rglob("*.parquet"))


def invoke(store: Store, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--dir", str(store.root), *args])


def test_purge_before_deletes_only_older_events_and_their_files(store: Store) -> None:
    before = parquet_bytes(store)
    purged = purge_before(store, NOW - timedelta(days=30))
    rows = History(Store.open(store.root)).sql("SELECT min(occurred_at), count(*) FROM events")
    assert purged.events == 4
    assert rows.rows[0][1] == 4 and rows.rows[0][0] >= NOW - timedelta(seconds=1)
    assert parquet_bytes(store) < before  # the old files are gone, not only unreferenced


def test_purge_rewrites_the_data_in_one_commit(store: Store) -> None:
    from deltalake import DeltaTable

    version = store.events.version() or 0
    purge_before(store, NOW - timedelta(days=30))
    history = DeltaTable(str(store.events.path)).history()
    operations = [h["operation"] for h in history if h["version"] > version]
    assert sorted(operations) == ["DELETE", "VACUUM END", "VACUUM START"]


def test_dropping_bodies_keeps_events_size_and_hash(store: Store) -> None:
    dropped = drop_bodies(store, timedelta(days=30))
    rows = (
        History(Store.open(store.root))
        .sql(
            """SELECT occurred_at < ? AS old, response_body IS NULL, request_body IS NULL,
                  response_body_size, response_body_sha256
           FROM exchanges ORDER BY occurred_at""",
            [NOW - timedelta(days=30)],
        )
        .rows
    )
    assert dropped.events == 1
    assert rows[0][:3] == (True, True, True) and rows[0][3] == len(BODY) and rows[0][4]
    assert rows[1][:3] == (False, False, False)
    assert History(Store.open(store.root)).sql("SELECT count(*) FROM events").rows[0][0] == 8


def test_dropping_bodies_twice_changes_nothing_more(store: Store) -> None:
    drop_bodies(store, timedelta(days=30))
    assert drop_bodies(store, timedelta(days=30)).events == 0


def test_incidents_and_reports_still_work_after_purge(store: Store) -> None:
    purge_before(store, NOW - timedelta(days=30))
    drop_bodies(store, timedelta(days=0))
    incidents = invoke(store, "incidents", "--json")
    assert incidents.exit_code == 0, incidents.output
    assert '"occurrences": 1' in incidents.output  # the old occurrence is forgotten
    report = invoke(store, "report", "--format", "json")
    assert report.exit_code == 0, report.output


def test_failures_still_answer_after_purge(store: Store) -> None:
    purge_before(store, NOW - timedelta(days=30))
    drop_bodies(store, timedelta(days=0))
    failures = History(Store.open(store.root)).failures()
    assert [row[1] for row in failures.rows] == ["tests/test_users.py::test_get_user"]


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-01-01'; DROP TABLE --"])
def test_a_bad_date_is_refused(text: str) -> None:
    with pytest.raises(RetentionError):
        parse_date(text)


@pytest.mark.parametrize("text", ["30", "d", "-3d", "30 days", "1y", "3d' OR 1=1 --"])
def test_a_bad_age_is_refused(text: str) -> None:
    with pytest.raises(RetentionError):
        parse_age(text)


def test_ages_and_dates_parse() -> None:
    assert parse_age("30d") == timedelta(days=30) and parse_age("2w") == timedelta(days=14)
    assert parse_date("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)


def test_cli_purge_reports_what_it_did(store: Store) -> None:
    result = invoke(store, "purge", "--before", OLD.date().isoformat(), "--json")
    assert result.exit_code == 0, result.output
    assert '"events_deleted": 0' in result.output
    result = invoke(store, "purge", "--bodies-older-than", "30d", "--json")
    assert '"bodies_dropped": 1' in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["purge"],
        ["purge", "--before", "2026-01-01' OR true --"],
        ["purge", "--bodies-older-than", "forever"],
    ],
)
def test_cli_purge_refuses_bad_input_with_exit_2(store: Store, args: list[str]) -> None:
    version = store.events.version()
    result = invoke(store, *args)
    assert result.exit_code == 2 and "testmem: error:" in result.output
    assert "Traceback" not in result.output
    assert store.events.version() == version


def test_purge_of_a_missing_store_is_a_clean_error(tmp_path: Path) -> None:
    result = invoke(Store(tmp_path / "nothing"), "purge", "--before", "2026-01-01")
    assert result.exit_code == 2 and "no testmem store" in result.output
