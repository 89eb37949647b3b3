"""Four CI runners share one memory: the log on S3, the index on a Chroma
server, the heavy report on a Ray cluster.

Four runners play three builds of the example shop API, each against an API
of its own (the suite creates orders and users): a clean build, then the
order-total regression, then a hotfix that does not fix it. Every build is a
`pytest -n 2 --memory --memory-dir=s3://...` run of the example suite; two
runners go through each S3 gateway of one SeaweedFS, each with a HOME and a
cache directory of its own (as separate machines have), and all of them read
and write one Chroma server. Afterwards the bucket must hold exactly what the
twelve runs recorded, each event once; every cause must be one incident
across runners and builds (the regression's, seen in builds 2 and 3, and each
failure the suite makes on purpose, seen in all three), with one defect
each however the triages interleaved across "machines" (their locks are
leases in the bucket); the shared index must agree with the log, `testmem
doctor` must find the store healthy, and `testmem report --engine ray` on a
two-node cluster must give the report DuckDB gives.

Heavy (some twenty processes for a few minutes on two cores), so it is one
test over one scenario.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.concurrency import (
    FAILING,
    PYTHON,
    REGRESSION,
    TESTMEM,
    TESTS,
    CountingShop,
    index_problems,
    write_suite,
)
from testmem.examples.shop_api import Build
from testmem.memory.embed import default_model_path
from testmem.memory.onnx_encoder import exported
from testmem.memory.query import History
from testmem.memory.store import Store
from tests.servers import S3, chroma_server, ray_cluster
from tests.test_report_engines import disagreements

RUNNERS = 4
BUILDS = (
    Build(label="v1.0.0", note="clean"),
    Build(label="v1.6.0", note="order total mismatch", regression_order_total=True),
    Build(label="v1.6.1", note="the mismatch persists", regression_order_total=True),
)
# Fail in every build, for reasons of their own (the API is right).
ON_PURPOSE = frozenset(
    {
        "suite/test_orders.py::test_create_order_with_unknown_sku_returns_404",
        "suite/test_orders.py::test_order_total_is_as_invoiced",  # an outdated invoice
        "suite/test_users.py::test_get_user_phone_number",
    }
)
REGRESSED = {b.label for b in BUILDS if b.regression_order_total}
PYTEST_TESTS_FAILED = 1
# Batches of a size a real run flushes (the local scenario's 10 make every
# runner commit some fifty times: minutes on a loaded machine's S3).
INI = """
[pytest]
memory_flush_events = 200
memory_flush_seconds = 1
"""


@dataclass(frozen=True)
class Stack:
    s3: S3
    chroma: str
    ray: str  # RAY_ADDRESS
    model: Path  # the embedding model's ONNX export, in this machine's cache


@pytest.fixture(scope="module")
def stack(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'testmem[ray]')")
    model = exported(Path(default_model_path()))
    root = tmp_path_factory.mktemp("shared")
    with chroma_server(root / "chroma") as chroma, ray_cluster(root / "ray") as ray:
        yield Stack(s3, chroma, ray, model)


def runner_env(stack: Stack, home: Path, gateway: int) -> dict[str, str]:
    """A machine of its own, whose CI restored its cache of the model's
    ONNX export (four exports at once would take minutes on two cores)."""
    cache = home / ".cache"
    shutil.copytree(stack.model.parent, cache / "testmem" / "onnx" / stack.model.parent.name)
    own = {"HOME": str(home), "XDG_CACHE_HOME": str(cache),
           "TESTMEM_CACHE_DIR": str(home / "cache")}  # fmt: skip
    quiet = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return {**os.environ, **stack.s3.env(gateway), **own, "TESTMEM_CHROMA_URL": stack.chroma,
            **quiet}  # fmt: skip


def pytest_command(root: Path, store: str, api: str, build: Build) -> list[str]:
    return [
        PYTHON, "-m", "pytest", str(root / "suite"), f"--rootdir={root}", "-n", "2",
        "-p", "no:cacheprovider", "-p", "no:randomly", "--memory", f"--memory-dir={store}",
        f"--memory-build={build.label}", f"--api-base-url={api}",
    ]  # fmt: skip


@dataclass(frozen=True)
class Played:
    runner: int
    build: Build
    returncode: int
    output: str


def play(
    root: Path, store: str, runner: int, env: dict[str, str], api: CountingShop
) -> list[Played]:
    """One runner's CI: the builds one after another, deployed to its own API."""
    played = []
    for number, build in enumerate(BUILDS):
        api.server.set_build(build)
        log = root / f"runner-{runner}-build-{number}.log"
        with log.open("w") as out:  # a file: a pipe nobody reads yet would stall the run
            run = subprocess.run(
                pytest_command(root, store, api.url, build), cwd=root, env=env,
                stdout=out, stderr=subprocess.STDOUT, timeout=600,
            )  # fmt: skip
        played.append(Played(runner, build, run.returncode, log.read_text()))
    return played


def test_four_runners_through_two_gateways_leave_an_exact_shared_store(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://testmem/team-{time.time_ns()}"
    write_suite(tmp_path)
    (tmp_path / "pytest.ini").write_text(INI)
    apis = [CountingShop(BUILDS[0]) for _ in range(RUNNERS)]
    envs = [runner_env(stack, tmp_path / f"runner-{n}", n % 2) for n in range(RUNNERS)]
    try:
        with ThreadPoolExecutor(RUNNERS) as pool:
            runners = [
                pool.submit(play, tmp_path, url, n, envs[n], apis[n]) for n in range(RUNNERS)
            ]
            played = [run for runner in runners for run in runner.result()]
    finally:
        for api in apis:
            api.server.stop()
    check_each_run_kept_its_builds_outcome(played)
    for name, value in {**stack.s3.env(), "TESTMEM_CHROMA_URL": stack.chroma}.items():
        monkeypatch.setenv(name, value)
    history = History(Store.open(url))
    check_every_event_once(history, played, served=sum(api.served for api in apis))
    check_one_incident_per_cause_and_one_defect_per_incident(history)
    assert index_problems(url, history) == []  # type: ignore[arg-type]
    doctor = subprocess.run(
        [*TESTMEM, "--dir", url, "doctor", "--json"], env=envs[1], capture_output=True, text=True
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert [c["problems"] for c in json.loads(doctor.stdout)["checks"]] == [[]] * 4
    check_the_ray_report_is_the_duckdb_report(url, {**envs[2], "RAY_ADDRESS": stack.ray})
    assert not list(tmp_path.glob("store*")) and not (tmp_path / "data").exists()  # all in S3


def failing(build: Build) -> frozenset[str]:
    return FAILING if build.regression_order_total else ON_PURPOSE  # FAILING: with a regression


def check_each_run_kept_its_builds_outcome(played: list[Played]) -> None:
    for run in played:
        failed = len(failing(run.build))
        where = f"runner {run.runner}, {run.build.label}: {run.output[-3000:]}"
        assert run.returncode == PYTEST_TESTS_FAILED, where
        assert f"{failed} failed, {TESTS - failed} passed" in run.output, where
        assert re.findall(r"^(?:  warning: |testmem: WARNING).{0,300}", run.output, re.M) == []


def check_every_event_once(history: History, played: list[Played], served: int) -> None:
    def one(sql: str) -> int:
        return int(history.sql(sql).rows[0][0])

    runs, failures = len(played), sum(len(failing(run.build)) for run in played)
    by_type = dict(history.sql("SELECT type, count(*) FROM events GROUP BY 1").rows)
    assert one("SELECT count(*) - count(DISTINCT event_id) FROM events") == 0
    assert by_type["RunStarted"] == by_type["RunFinished"] == runs
    assert by_type["TestFinished"] == TESTS * runs
    assert by_type["FailureObserved"] == failures
    assert by_type["HttpExchanged"] == one("SELECT count(DISTINCT exchange_id) FROM exchanges")
    assert by_type["HttpExchanged"] == served  # every answered request once, none invented
    said = [re.search(r"recorded run (\S+) \((\d+) events\)", run.output) for run in played]
    recorded = dict(
        history.sql(
            "SELECT run_id, count(*) FROM events WHERE type IN ('RunStarted', 'TestFinished',"
            " 'HttpExchanged', 'FailureObserved', 'RunFinished', 'RetryAttempted') GROUP BY 1"
        ).rows
    )
    assert {m[1]: int(m[2]) for m in said if m} == recorded and len(recorded) == runs
    assert by_type["FailureLinked"] == failures
    linked = "SELECT count(DISTINCT failure_id) FROM facts WHERE type = 'FailureLinked'"
    assert one(linked) == failures


_LINKED_SQL = """
    SELECT f.nodeid, r.build, f.incident_id FROM facts f JOIN runs r USING (run_id)
    WHERE f.type = 'FailureLinked'"""


def cause(nodeid: str, build: str) -> str:
    """Why a test fails in a build: the regression, or what it does on purpose."""
    return "order total mismatch" if build in REGRESSED and nodeid in REGRESSION else nodeid


def check_one_incident_per_cause_and_one_defect_per_incident(history: History) -> None:
    linked = history.sql(_LINKED_SQL).rows
    assert {(nodeid, build) for nodeid, build, _ in linked} == {
        (nodeid, b.label) for b in BUILDS for nodeid in failing(b)
    }
    incidents: dict[str, set[str]] = {}
    for nodeid, build, incident in linked:
        incidents.setdefault(cause(nodeid, build), set()).add(incident)
    # Four causes (the regression, and three failures on purpose, one of them
    # by a test the regression breaks otherwise in builds 2 and 3).
    assert len(incidents) == 4 and all(len(i) == 1 for i in incidents.values()), incidents
    assert len(set.union(*incidents.values())) == len(incidents), incidents  # none shared
    filed = dict(
        history.sql(
            "SELECT incident_id, count(*) FROM facts WHERE type = 'DefectFiled' GROUP BY 1"
        ).rows
    )
    assert set(filed.values()) == {1}, filed
    assert incidents["order total mismatch"] <= filed.keys(), filed  # the regression's defect


def check_the_ray_report_is_the_duckdb_report(url: str, env: dict[str, str]) -> None:
    """Both engines over the same snapshot of the bucket: counts exact,
    measured values within 1 % (`disagreements`)."""
    today = datetime.now(UTC).date().isoformat()

    def report(engine: str) -> dict:
        command = [*TESTMEM, "--dir", url, "report", "--format", "json", "--engine", engine,
                   "--weeks", "2", "--until", today, "--tz", "UTC"]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        figures = json.loads(done.stdout)
        figures.pop("generated_at")
        return figures

    here, on_ray = report("duckdb"), report("ray")
    assert sum(w["tests"] for w in here["weeks"]) == TESTS * RUNNERS * len(BUILDS), here["weeks"]
    assert disagreements(on_ray, here) == []
