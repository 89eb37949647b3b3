"""Four CI runners share one memory: the log on S3, the index on a Chroma server.

Four `pytest -n 2 --memory --memory-dir=s3://...` runs of the example suite
start at once, two through each S3 gateway of one SeaweedFS, each runner with
a HOME and a cache directory of its own (as separate machines have) and an
example shop API of its own that plays the order-total regression. All of
them read and write one Chroma server. Afterwards the bucket must hold
exactly what the runs recorded, each event once; the regression must be one
incident with one defect however the four triages interleaved across
"machines" (their locks are leases in the bucket); the shared index must
agree with the log, and `testmem doctor` must find the store healthy.

Heavy (some twenty processes for a minute or two on two cores), so it is one
test over one scenario.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.concurrency import (
    BUILD,
    FAILING,
    REGRESSION,
    TESTMEM,
    TESTS,
    CountingShop,
    index_problems,
    pytest_command,
    write_suite,
)
from testmem.memory.query import History
from testmem.memory.store import Store
from tests.servers import S3, chroma_server

RUNNERS = 4
PYTEST_TESTS_FAILED = 1
# Batches of a size a real run flushes (the local scenario's 10 make every
# runner commit some fifty times: minutes on a loaded machine's S3).
INI = """
[pytest]
memory_flush_events = 200
memory_flush_seconds = 1
"""


@pytest.fixture(scope="module")
def shared(s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3, str]]:
    with chroma_server(tmp_path_factory.mktemp("shared") / "chroma") as chroma:
        yield s3, chroma


def runner_env(s3: S3, chroma: str, home: Path, gateway: int) -> dict[str, str]:
    home.mkdir(parents=True)
    own = {"HOME": str(home), "TESTMEM_CACHE_DIR": str(home / "cache")}
    quiet = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return {**os.environ, **s3.env(gateway), **own, "TESTMEM_CHROMA_URL": chroma, **quiet}


def test_four_runners_through_two_gateways_leave_an_exact_shared_store(
    shared: tuple[S3, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, chroma = shared
    url = f"s3://testmem/team-{time.time_ns()}"
    write_suite(tmp_path)
    (tmp_path / "pytest.ini").write_text(INI)
    apis = [CountingShop(BUILD) for _ in range(RUNNERS)]
    envs = [runner_env(s3, chroma, tmp_path / f"runner-{n}", n % 2) for n in range(RUNNERS)]
    try:
        logs = [(tmp_path / f"runner-{n}.log").open("w") for n in range(RUNNERS)]
        runs = [  # output to files: a pipe nobody reads yet would stall its run
            subprocess.Popen(
                pytest_command(tmp_path, url, api.url, workers=2),  # type: ignore[arg-type]
                cwd=tmp_path,
                env=envs[n],
                stdout=logs[n],
                stderr=subprocess.STDOUT,
            )
            for n, api in enumerate(apis)
        ]
        for run, log in zip(runs, logs, strict=True):
            run.wait(timeout=600)
            log.close()
        outputs = [(tmp_path / f"runner-{n}.log").read_text() for n in range(RUNNERS)]
    finally:
        for api in apis:
            api.server.stop()
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == PYTEST_TESTS_FAILED, output[-3000:]
        assert f"{len(FAILING)} failed, {TESTS - len(FAILING)} passed" in output, output[-3000:]
        assert re.findall(r"^(?:  warning: |testmem: WARNING).{0,300}", output, re.M) == []
    for name, value in {**s3.env(), "TESTMEM_CHROMA_URL": chroma}.items():
        monkeypatch.setenv(name, value)
    history = History(Store.open(url))
    check_every_event_once(history, outputs, served=sum(api.served for api in apis))
    check_one_incident_and_one_defect(history)
    assert index_problems(url, history) == []  # type: ignore[arg-type]
    doctor = subprocess.run(
        [*TESTMEM, "--dir", url, "doctor", "--json"], env=envs[1], capture_output=True, text=True
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert [c["problems"] for c in json.loads(doctor.stdout)["checks"]] == [[]] * 4
    assert not list(tmp_path.glob("store*")) and not (tmp_path / "data").exists()  # all in S3


def check_every_event_once(history: History, outputs: list[str], served: int) -> None:
    def one(sql: str) -> int:
        return int(history.sql(sql).rows[0][0])

    by_type = dict(history.sql("SELECT type, count(*) FROM events GROUP BY 1").rows)
    assert one("SELECT count(*) - count(DISTINCT event_id) FROM events") == 0
    assert by_type["RunStarted"] == by_type["RunFinished"] == RUNNERS
    assert by_type["TestFinished"] == TESTS * RUNNERS
    assert by_type["FailureObserved"] == len(FAILING) * RUNNERS
    assert by_type["HttpExchanged"] == one("SELECT count(DISTINCT exchange_id) FROM exchanges")
    assert by_type["HttpExchanged"] == served  # every answered request once, none invented
    said = [re.search(r"recorded run (\S+) \((\d+) events\)", out) for out in outputs]
    recorded = dict(
        history.sql(
            "SELECT run_id, count(*) FROM events WHERE type IN ('RunStarted', 'TestFinished',"
            " 'HttpExchanged', 'FailureObserved', 'RunFinished', 'RetryAttempted') GROUP BY 1"
        ).rows
    )
    assert {m[1]: int(m[2]) for m in said if m} == recorded
    assert by_type["FailureLinked"] == len(FAILING) * RUNNERS
    assert one("SELECT count(DISTINCT failure_id) FROM facts WHERE type = 'FailureLinked'") == (
        len(FAILING) * RUNNERS
    )


def check_one_incident_and_one_defect(history: History) -> None:
    regression = history.sql(
        "SELECT DISTINCT incident_id FROM facts WHERE type = 'FailureLinked'"
        " AND list_contains(?, nodeid)",
        [list(REGRESSION)],
    ).rows
    assert len(regression) == 1, regression
    filed = history.sql(
        "SELECT incident_id, count(*) FROM facts WHERE type = 'DefectFiled' GROUP BY 1"
    ).rows
    assert filed and {count for _, count in filed} == {1}, filed
    assert regression[0][0] in {incident for incident, _ in filed}
