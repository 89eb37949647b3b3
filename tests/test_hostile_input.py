"""Hostile and odd input never crashes the recorder, stays bounded in memory,
and never makes it write outside the store.

A real server on loopback, real `pytest --memory` sessions (pytester), the
real transport and redactor; property-based where the input space is large.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testmem.memory.query import History
from testmem.memory.redact import MASK, Redactor
from testmem.memory.store import Store
from testmem.memory.tap import Tap

MB = 1024 * 1024

PROBE = """
import sys
import httpx
from testmem.memory.transport import RecordingTransport, Tap, activate

def peak_mb():  # VmHWM: ru_maxrss of a child starts at its parent's peak on Linux
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024

url, recorded = sys.argv[1], sys.argv[2] == "recorded"
tap = Tap()
if recorded:
    activate(tap)
transport = RecordingTransport() if recorded else httpx.HTTPTransport()
before = peak_mb()
with httpx.Client(transport=transport, timeout=60) as client:
    size = len(client.get(url).content)
kept = [len(x["response_body"]["text"]) for x in tap.take()]
print(peak_mb() - before, size, kept)
"""


def peak_growth(url: str, mode: str, tmp_path: Path) -> tuple[int, int, list[int]]:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(probe), url, mode],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grew, size, kept = done.stdout.split(maxsplit=2)
    return int(grew), int(size), json.loads(kept)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[" + b'{"token": "abc", "n": 1},' * (100 * MB // 25) + b"1]"),
        ("text/plain", b"Bearer abcdefghijklmnop " * (100 * MB // 24)),
    ],
    ids=["json", "text"],
)
def test_a_100_mb_body_costs_no_more_memory_recorded_than_not(
    stub_api, tmp_path: Path, content_type: str, body: bytes
) -> None:
    stub_api.answer("/huge", body=body, Content_Type=content_type)
    plain, size, _ = peak_growth(stub_api.url + "/huge", "plain", tmp_path)
    recorded, _, kept = peak_growth(stub_api.url + "/huge", "recorded", tmp_path)
    assert size == len(body) and kept and kept[0] <= 64 * 1024
    assert recorded - plain < 32, f"recording added {recorded - plain} MB to {plain} MB"


def nested(depth: int, innermost: object) -> bytes:
    return ('{"a": ' * depth + json.dumps(innermost) + "}" * depth).encode()


def test_deeply_nested_json_is_redacted_without_recursion_error() -> None:
    body = nested(10_000, {"password": "hunter2-deep-secret"})
    redacted = Redactor().body(body, "application/json")
    assert b"hunter2-deep-secret" not in redacted and MASK.encode() in redacted


@given(content=st.binary(max_size=2048), kind=st.sampled_from(["application/json", "text/plain",
       "application/x-www-form-urlencoded", "application/octet-stream", ""]))  # fmt: skip
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_body_is_captured_or_noted_never_raised(content: bytes, kind: str) -> None:
    tap = Tap(cap=256)
    request = httpx.Request("POST", "http://127.0.0.1/x", content=content)
    response = httpx.Response(200, content=content, headers={"content-type": kind})
    tap.capture(request, response, None, _now(), 0.01)
    captured = tap.take()
    assert len(captured) + len(tap.dropped) == 1
    if captured and captured[0]["response_body"]:
        assert captured[0]["response_body"]["size"] >= 0


@given(
    path=st.text(max_size=60),
    header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=3000),
)
@settings(max_examples=150, deadline=None)
def test_odd_urls_and_huge_headers_never_raise(path: str, header: str) -> None:
    tap = Tap()
    try:
        request = httpx.Request("GET", "http://127.0.0.1/" + path, headers={"x-odd": header})
    except Exception:  # httpx itself refuses the URL: nothing to record
        return
    tap.capture(request, httpx.Response(204), None, _now(), 0.0)
    assert len(tap.take()) + len(tap.dropped) == 1


@given(st.text(max_size=500))
@settings(max_examples=200, deadline=None)
def test_free_text_redaction_never_raises(text: str) -> None:
    assert isinstance(Redactor().text(text), str)


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


ODD_SUITE = """
import pytest

IDS = ["ünïcødé-☃", "br[ack]ets", "sl/ash/es", "../../escape", "..", "nul\\x00l", "\\u202eRTL"]

@pytest.mark.parametrize("name", IDS, ids=IDS)
def test_odd_ids(api_client, name):
    api_client.get("/ok")

def test_control_characters_in_message(api_client):
    api_client.get("/ok")
    assert False, "bell\\x07 escape\\x1b[31m nul\\x00 backspace\\x08 \\r\\n end"

@pytest.mark.parametrize("path", ["/binary", "/latin1", "/nested", "/big-header"])
def test_odd_responses(api_client, path):
    api_client.get(path)
"""


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_a_run_full_of_odd_input_records_and_writes_only_into_the_store(
    pytester: pytest.Pytester, stub_api
) -> None:
    stub_api.answer("/ok", body=b"{}", Content_Type="application/json")
    stub_api.answer("/binary", body=bytes(range(256)) * 64, Content_Type="image/png")
    stub_api.answer("/latin1", body="café ñ".encode("latin-1"), Content_Type="text/plain")
    stub_api.answer("/nested", body=nested(10_000, 1), Content_Type="application/json")
    stub_api.answer("/big-header", body=b"x", X_Big="v" * 12_000)
    pytester.makepyfile(test_odd=textwrap.dedent(ODD_SUITE))
    store = pytester.path / "store"
    before = files_under(pytester.path)
    result = pytester.runpytest(
        "--memory", "--memory-dir", str(store), "--api-base-url", stub_api.url,
        "--no-memory-triage", "-p", "no:randomly", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=11, failed=1)
    written = files_under(pytester.path) - before
    assert written and all(store in p.parents for p in written)
    nodeids = {r[0] for r in History(Store.open(store)).sql("SELECT nodeid FROM results").rows}
    assert "test_odd.py::test_odd_ids[../../escape]" in nodeids
    assert "test_odd.py::test_odd_ids[sl/ash/es]" in nodeids and len(nodeids) == 12
    message = History(Store.open(store)).sql("SELECT message FROM failures").rows[0][0]
    assert "bell" in message and "end" in message
