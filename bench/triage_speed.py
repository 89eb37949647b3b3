"""Triage speed: a run with 1,000 failures over known signatures, and the
in-run retry decision per failure.

    python -m bench.triage_speed --failures 1000 --causes 20

A first run has the same tests fail for the same causes (the model loads and
embeds them); the measured run repeats them with fresh volatile ids (request
ids, serials), so every one matches by signature. Side by side:

- `testmem triage` of that run in a cold process (link, decide, file the
  defects — the model must not load);
- the approach without signatures: embed every failure text and query
  Chroma for its nearest neighbour (what an embedding-only matcher does).

The retry decision is `RetryAdvisor.advise` on each failure, after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench import PYTHON, Timing, table, timed
from testmem.memory.events import (
    Blob,
    FailureObserved,
    HttpExchanged,
    RunFinished,
    RunStarted,
    TestFinished,
    uuid7,
)
from testmem.memory.store import Store

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
ROUTES = ["/users/{id}", "/orders/{id}", "/inventory/{id}", "/carts/{id}", "/payments/{id}"]


def cause(n: int, serial: int) -> tuple[str, str, int, str]:
    """(message, exception type, status, route) of cause ``n``, with volatile parts."""
    route = ROUTES[n % len(ROUTES)]
    if n % 3 == 0:
        return f"assert {500 + n % 4} == 200", "AssertionError", 500 + n % 4, route
    field = f"field_{n}"
    return f"KeyError: '{field}' in request req-{serial:08x}", "KeyError", 200, route


def run_events(failures: int, causes: int, build: str, salt: int) -> list:
    run_id = uuid7()
    events: list = [RunStarted(run_id=run_id, build=build)]
    for i in range(failures):
        n = i % causes
        message, exception, status, route = cause(n, i * 7919 + salt)
        nodeid = f"tests/test_api_{n:02d}.py::test_case_{i}"
        exchange = HttpExchanged(
            run_id=run_id, exchange_id=uuid7(), nodeid=nodeid, phase="call", method="GET",
            url=f"http://127.0.0.1:8000{route.replace('{id}', str(1000 + i))}", route=route,
            status=status, response_body=Blob.of(json.dumps({"error": message})),
        )  # fmt: skip
        events += [
            exchange,
            FailureObserved(
                run_id=run_id, failure_id=uuid7(), nodeid=nodeid, exception_type=exception,
                message=message, traceback=Blob.of(f"{nodeid}:12: in test\n    {message}"),
                exchange_ids=[exchange.exchange_id],
            ),
            TestFinished(run_id=run_id, nodeid=nodeid, outcome="failed"),
        ]  # fmt: skip
    events.append(RunFinished(run_id=run_id, failed=failures, exit_status=1))
    return events


def build_store(root: Path, failures: int, causes: int) -> str:
    from testmem.agents.triage import Triage

    store = Store(root)
    store.events.append(run_events(failures, causes, "b1", salt=1))
    Triage(store).run("latest")  # the same tests failed the same way before: known signatures
    measured = run_events(failures, causes, "b2", salt=2)
    store.events.append(measured)
    return str(measured[0].run_id)


def embed_everything(root: Path, run_id: str) -> Timing:
    """The alternative: embed every failure text (no cache), ask Chroma for its neighbour."""
    script = f"""
import sys
from testmem.memory.embed import Embedder
from testmem.memory.index import SignatureIndex
from testmem.memory.query import History
from testmem.memory.store import Store
store = Store.open({str(root)!r})
sql = "SELECT failure_id, message FROM failures WHERE run_id = ?"
rows = History(store).sql(sql, [{run_id!r}]).rows
vectors = Embedder().embed({{fid: msg for fid, msg in rows}})
index = SignatureIndex(store)
for vector in vectors.values():
    index.nearest(vector, 5)
"""
    return timed([PYTHON, "-c", script], env=ENV)


def advice_latency(root: Path, failures: int) -> list[float]:
    """Milliseconds per in-run retry decision, after the first (warm-up) one."""
    from types import SimpleNamespace

    from testmem.agents.plugin import RetryAdvisor

    advisor = RetryAdvisor(Store.open(root))
    timings = []
    for i in range(failures + 1):
        message, exception, status, route = cause(i % 20, i)
        report = SimpleNamespace(
            failed=True, when="call",
            testmem_failure={"exception_type": exception, "message": message},
        )  # fmt: skip
        item = SimpleNamespace(nodeid=f"tests/test_api.py::test_{i}")
        headers = json.dumps({"retry-after": "1"} if i % 2 else {})
        exchange = {"method": "GET", "route": route, "status": status, "error": None,
                    "response_headers": headers}  # fmt: skip
        started = time.perf_counter()
        advisor.advise(item, [report], [exchange])  # type: ignore[arg-type]
        timings.append((time.perf_counter() - started) * 1000)
    return timings[1:]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=1000)
    parser.add_argument("--causes", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        run_id = build_store(root, args.failures, args.causes)
        cli = "from testmem.agents.cli import main; main()"
        triage = timed([PYTHON, "-c", cli, "--dir", str(root), "triage", "--run", run_id], env=ENV)
        naive = embed_everything(root, run_id)
        latency = advice_latency(root, args.failures)
    rows = [
        ["`testmem triage` (cold process)", f"{triage.wall_s:.2f}", f"{triage.cpu_s:.2f}", "1.0x"],
        ["embed every failure + Chroma query (cold process)", f"{naive.wall_s:.2f}",
         f"{naive.cpu_s:.2f}", f"{naive.wall_s / triage.wall_s:.1f}x"],
    ]  # fmt: skip
    p50, p95 = statistics.median(latency), statistics.quantiles(latency, n=20)[18]
    text = table(["triage of a run with 1,000 failures", "wall s", "CPU s", "vs testmem"], rows)
    text += (
        f"\n\nin-run retry decision: p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {max(latency):.2f} ms"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
