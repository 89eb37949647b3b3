"""Redaction on the recorder's hot path: the cost of redacting one recorded
exchange and one failure's traceback, for testmem's redactor (names by their
words, patterns, known values), the redactor it replaced (a fixed list of
names, one free-text regex), and detect-secrets' scanner over the same text,
the well-kept detector a user might reach for.

    python -m bench.redaction --rounds 2000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bench import ROOT, median, table

HEADERS = [
    ("Host", "api.internal:8080"), ("User-Agent", "python-httpx/0.28.1"),
    ("Accept", "application/json"), ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"), ("Content-Type", "application/json"),
    ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"),
    ("X-Request-Id", "8f14e45f-ceea-467f-a0e6-0b7a7e8c1b2d"),
]  # fmt: skip
URL = "http://api.internal:8080/v1/orders/42/items?page=2&per_page=50&sort=-created_at"
BODY = json.dumps(
    {"order": {"id": 42, "customer": {"name": "Ada", "email": "ada@example.org"},
               "items": [{"sku": f"sku-{i}", "qty": i, "price": 9.5 * i} for i in range(20)],
               "note": "leave at the door; ring twice"}}
).encode()  # fmt: skip
TRACEBACK = (
    "    def test_order_total(api_client):\n"
    "        response = api_client.get('/v1/orders/42')\n"
    ">       assert response.json()['total'] == 190.0\n"
    "E       AssertionError: assert 171.0 == 190.0\n"
    "E        +  where 171.0 = <function Response.json at 0x7f>()['total']\n\n"
    "tests/test_orders.py:31: AssertionError\n"
) * 4


def old_redactor() -> ModuleType:
    """memory/redact.py as it was before this change (git: main's parent of it)."""
    source = subprocess.run(
        ["git", "show", "1c0266e:memory/redact.py"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader("old_redact", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_redact"] = module  # dataclasses look their module up
    exec(compile(source, "old_redact.py", "exec"), module.__dict__)
    return module


def exchange_with(redactor: Any) -> Callable[[], object]:
    def redact() -> object:
        return (
            redactor.url(URL),
            redactor.headers_json(HEADERS),
            redactor.body(BODY, "application/json"),
            redactor.headers_json(HEADERS[:6]),
            redactor.text(TRACEBACK),
        )

    return redact


def detect_secrets() -> Callable[[], object]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    lines = [URL, *(f"{k}: {v}" for k, v in HEADERS), BODY.decode(), *TRACEBACK.splitlines()]

    def scan() -> object:
        with default_settings():
            return [list(scan_line(line)) for line in lines]

    return scan


def per_call_us(work: Callable[[], object], rounds: int) -> float:
    work()
    samples = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds):
            work()
        samples.append((time.process_time() - started) / rounds * 1e6)
    return median(samples)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    from testmem.memory.redact import Redactor

    known = Redactor()
    known.headers_json([("X-Api-Key", "k-3f9a8b7c6d5e"), ("Cookie", "sid=abc123def456")])
    variants = {
        "redactor before (fixed names, one regex)": exchange_with(old_redactor().Redactor()),
        "testmem redactor (words, patterns)": exchange_with(Redactor()),
        "testmem redactor, 3 known secrets": exchange_with(known),
        "detect-secrets scan_line, same text": detect_secrets(),
    }
    costs = {
        # detect-secrets is three orders of magnitude slower: fewer rounds
        name: per_call_us(work, args.rounds // 100 if "detect" in name else args.rounds)
        for name, work in variants.items()
    }
    base = costs["redactor before (fixed names, one regex)"]
    rows = [(name, f"{us:,.0f}", f"{us / base:.2f}") for name, us in costs.items()]
    text = (
        "Redacting one exchange (URL, request and response headers, a 1.5 kB JSON body)"
        " and one failure's traceback, CPU time, median of 5 batches:\n\n"
        + table(["variant", "µs per exchange", "ratio to before"], rows)
    )
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
