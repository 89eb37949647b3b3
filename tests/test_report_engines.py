"""The same log read by other engines gives testmem's figures.

- Ray (``testmem report --engine ray``): tasks on a two-node cluster
  (127.0.0.2 and .3, `tests.servers.ray_cluster`) scan slices of the S3
  store's files with testmem's own SQL; the report must equal the DuckDB one.
- Polars (``pl.read_delta``), a reader nobody on the project wrote, counts
  the same table: its figures must be those `History` gives.

The log is a synthetic history (`bench.history`) of 10 weeks of a 150-test suite.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.history import generate
from testmem.memory.query import History
from testmem.memory.report import weekly_report
from testmem.memory.store import Store
from tests.servers import S3, ray_cluster

WEEKS = 10


def synthetic(location: str | Path) -> int:
    args = argparse.Namespace(tests=150, days=7 * WEEKS, runs_per_day=3, exchange_share=0.5, seed=3)
    return generate(location, args)


@pytest.fixture
def s3_store(s3: S3, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    url = f"s3://testmem/engines-{request.node.name}"
    if not Store(url).events.exists():
        synthetic(url)
    return url


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'testmem[ray]')")
    with ray_cluster(tmp_path_factory.mktemp("ray")) as address:
        yield address
        import ray

        ray.shutdown()


def report_of(location: str, engine: str) -> dict:
    report = weekly_report(History(Store.open(location)), weeks=WEEKS, tz="UTC", engine=engine)
    figures = report.to_dict()
    figures.pop("generated_at")
    return json.loads(json.dumps(figures, default=str))


def test_the_ray_engine_gives_the_duckdb_report(
    s3_store: str, ray_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", ray_address)
    here, on_ray = report_of(s3_store, "duckdb"), report_of(s3_store, "ray")
    assert sum(w["tests"] for w in here["weeks"]) > 10_000  # a report with something in it
    assert disagreements(on_ray, here) == []


def test_slices_merged_give_the_report_of_one_scan(tmp_path: Path) -> None:
    """The Ray engine's work, done in this process: three slices of the files
    scanned apart and merged give the report one scan of them all gives."""
    from testmem.memory.report import figures
    from testmem.memory.report.model import Period
    from testmem.memory.report.ray_engine import merged, scan_slice

    location = str(tmp_path / "store")
    synthetic(location)
    store = Store.open(location)
    period = Period.of(WEEKS, None, None, "UTC")

    def sliced(names: list[str], given: dict[str, Any]) -> dict[str, Any]:
        version = store.events.version()
        return merged([scan_slice(location, version, i, 3, period, names, given) for i in range(3)])

    def plain(engine: Any) -> dict:
        figures_ = figures.build_report(History(store), period, engine).to_dict()
        figures_.pop("generated_at")
        return json.loads(json.dumps(figures_, default=str))

    one_scan = plain(None)
    assert any(r["schema_changes"] for r in one_scan["routes"])  # the API grew a field
    assert disagreements(plain(sliced), one_scan) == []


def test_a_slice_without_the_decision_still_leaves_an_explained_failure_out_of_flaky(
    tmp_path: Path,
) -> None:
    """Triage commits its decisions after the run, so a slice may hold a
    failing result without the regression decision that explains it: the
    merged report must still not call the test flaky."""
    from datetime import UTC, datetime

    from testmem.memory.events import Fact, RunStarted, TestFinished
    from testmem.memory.report import figures
    from testmem.memory.report.model import Period
    from testmem.memory.report.ray_engine import merged, scan_slice

    when, test = datetime(2026, 11, 18, 12, tzinfo=UTC), "t.py::test_order"
    store = Store(tmp_path / "store")
    store.events.append(
        [
            *(RunStarted(run_id=r, occurred_at=when) for r in ("passed", "failed")),
            TestFinished(run_id="passed", occurred_at=when, nodeid=test),
            TestFinished(run_id="failed", occurred_at=when, nodeid=test, outcome="failed"),
        ]
    )
    decision = Fact(run_id="failed", occurred_at=when, type="DecisionMade", nodeid=test,
                    detail='{"category": "regression"}')  # fmt: skip
    store.events.append([decision])  # a file of its own: the other slice
    period = Period.of(1, None, when.date(), "UTC")
    version = store.events.version()

    def sliced(names: list[str], given: dict[str, Any]) -> dict[str, Any]:
        location = store.location
        return merged([scan_slice(location, version, i, 2, period, names, given) for i in (0, 1)])

    for engine in (None, sliced):
        report = figures.build_report(History(Store.open(store.location)), period, engine)
        assert report.weeks[-1].values["flaky_tests"] == 0, engine


def test_bodies_without_a_digest_each_count_in_the_schema(tmp_path: Path) -> None:
    """Responses recorded without their sha256 (another tool's events) are told
    apart by their own hash: a week's keys are those of all its bodies."""
    from datetime import UTC, datetime

    from testmem.memory.events import Blob, HttpExchanged

    weeks = [datetime(2026, 11, 9, 12, tzinfo=UTC), datetime(2026, 11, 16, 12, tzinfo=UTC)]
    bodies = [['{"id": 1}'], ['{"id": 1, "a": 2}', '{"id": 1, "b": 3}']]
    events = [
        HttpExchanged(run_id="r", occurred_at=when, exchange_id=f"x{i}{j}", route="/things",
                      status=200, duration_s=0.01, response_body=Blob(body, len(body)))
        for i, (when, texts) in enumerate(zip(weeks, bodies, strict=True))
        for j, body in enumerate(texts)
    ]  # fmt: skip
    Store(tmp_path).events.append(events)
    report = weekly_report(History(Store.open(tmp_path)), weeks=2, until=weeks[1].date(), tz="UTC")
    (route,) = report.routes
    assert [(c["added"], c["removed"]) for c in route["schema_changes"]] == [(["a", "b"], [])]


def disagreements(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two reports differ: counts and names exactly, measured values
    (rates, quantiles, means: floats summed in another order) within 1 %."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in disagreements(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items against {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in disagreements(x, y, f"{where}[{i}]")
        ]
    if isinstance(a, float) or isinstance(b, float):
        close = isinstance(a, int | float) and isinstance(b, int | float)
        return (
            [] if close and b == pytest.approx(a, rel=0.01, abs=1e-9) else [f"{where}: {a} != {b}"]
        )
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_the_ray_engine_without_a_cluster_is_a_clean_error(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from testmem.memory.cli import cli

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    Store(tmp_path).events.append([])
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path), "report", "--engine", "ray"])
    assert result.exit_code == 2 and "RAY_ADDRESS" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["local", "s3"])
def test_polars_reads_the_figures_testmem_reads(where: str, tmp_path: Path, request) -> None:
    pl = pytest.importorskip("polars")
    location = str(tmp_path / "store") if where == "local" else request.getfixturevalue("s3_store")
    if where == "local":
        synthetic(location)
    store = Store.open(location)
    frame = pl.read_delta(store.events.uri, columns=["type", "outcome", "attempt", "event_id"])
    by_type = dict(frame.group_by("type").len().iter_rows())
    first = frame.filter((pl.col("type") == "TestFinished") & (pl.col("attempt") == 1))
    history = History(store)
    assert by_type == dict(history.sql("SELECT type, count(*) FROM events GROUP BY 1").rows)
    assert frame["event_id"].n_unique() == frame.height
    assert dict(first.group_by("outcome").len().iter_rows()) == dict(
        history.sql("SELECT outcome, count(*) FROM results WHERE attempt = 1 GROUP BY 1").rows
    )
