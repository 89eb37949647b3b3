"""No value of any field loses an event: text that is not valid UTF-8 (lone
surrogates, undecodable bytes) is escaped when the event becomes a row, and
every event of the batch is written to the real log and read back."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testmem.memory.events import EVENT_TYPES, Blob, Event, Fact, escaped, from_row
from testmem.memory.store import Store

# Any code point, surrogates included, and strings decoded from any bytes.
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),
    st.binary(max_size=30).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
ENVELOPE = {"event_id", "run_id", "producer"}


def _value(kind: str) -> st.SearchStrategy[Any] | None:
    if kind in ("str", "str | None"):
        return TEXT
    if kind == "list[str]":
        return st.lists(TEXT, max_size=3)
    if kind == "Blob":
        return st.one_of(st.binary(max_size=40), TEXT).map(Blob.of)
    return None  # numbers and instants keep their defaults


@st.composite
def any_event(draw: st.DrawFn, cls: type[Event]) -> Event:
    values: dict[str, Any] = {"run_id": draw(TEXT)}
    for f in dataclasses.fields(cls):
        strategy = _value(str(f.type))
        if strategy is not None and f.name not in ENVELOPE:
            values[f.name] = draw(strategy)
    return cls(**values)


EVERY_TYPE = st.tuples(*(any_event(cls) for cls in [*EVENT_TYPES.values(), Fact]))


@given(events=EVERY_TYPE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_event_with_any_text_in_any_field_is_written_and_read_back(
    events: tuple[Event, ...],
) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = Store(Path(root))
        store.events.append(list(events))
        rows = DeltaTable(str(store.events.path)).to_pyarrow_table().to_pylist()
    read = {e.event_id: e for e in map(from_row, rows)}
    assert sorted(read) == sorted(e.event_id for e in events)
    for event in events:
        assert _texts(read[event.event_id]) == _texts(event, escape=True)


def _texts(event: Event, escape: bool = False) -> dict[str, Any]:
    """The event's strings (escaped as the log escapes them) and its blobs' digests."""
    texts: dict[str, Any] = {}
    for name, value in vars(event).items():
        if isinstance(value, str):
            texts[name] = escaped(value) if escape else value
        elif isinstance(value, list):
            texts[name] = [escaped(v) if escape else v for v in value]
        elif isinstance(value, Blob):
            texts[name] = (value.size, value.sha256, value.encoding)
    return texts


def test_a_lone_surrogate_is_kept_as_its_escape() -> None:
    assert escaped("\ud800x") == "\\ud800x" and escaped("plain ü") == "plain ü"
    assert Blob.of("assert '\udcff' == 'x'").text is not None


SURROGATE_SUITE = """
import pytest

@pytest.mark.parametrize("value", ["\\ud800x", "ok"])
def test_param(value):
    pass

def test_diff():
    assert "\\udcff" == "x"
"""


def test_a_run_with_lone_surrogates_loses_no_event(pytester, store_dir) -> None:
    pytester.makepyfile(test_surrogates=SURROGATE_SUITE)
    result = pytester.runpytest(
        "--memory", f"--memory-dir={store_dir}", "--memory-retries=0", "--no-memory-triage"
    )
    result.assert_outcomes(passed=2, failed=1)
    assert "could not be written" not in result.stdout.str()
    log = Store(store_dir).events
    log.settle()  # the run's batches, from the spool into the Delta table
    rows = DeltaTable(str(log.path)).to_pyarrow_table().to_pylist()
    nodeids = {r["nodeid"] for r in rows if r["type"] == "TestFinished"}
    assert "test_surrogates.py::test_param[\\ud800x]" in nodeids and len(nodeids) == 3
    failure = next(r for r in rows if r["type"] == "FailureObserved")
    assert "\\udcff" in failure["message"]
