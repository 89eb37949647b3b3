"""The Chroma index is a projection: rebuilt from the log, the same every time,
and never needed for matching by signature."""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from test_incidents import (
    GET_USER,
    MISSING_ADDRESS,
    MISSING_EMAIL,
    NO_EMAIL,
    record_run,
)

from testmem.memory.embed import Embedder
from testmem.memory.incidents import IndexWarning, Matcher, reindex
from testmem.memory.index import SignatureIndex
from testmem.memory.store import Store

LIST_ORDERS = "tests/test_orders.py::test_list_orders"


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> Store:
    """A store with three incidents, linked and indexed."""
    store = Store(tmp_path / "store")
    for results in (
        {GET_USER: MISSING_EMAIL.format(n=1), LIST_ORDERS: "TimeoutError: read timed out"},
        {GET_USER: NO_EMAIL.format(n=2), LIST_ORDERS: None},
        {GET_USER: MISSING_ADDRESS.format(n=3), LIST_ORDERS: "TimeoutError: read timed out"},
    ):
        Matcher(store, embedder=embedder).link_run(record_run(store, results))
    return store


def test_the_index_holds_one_record_per_signature_with_its_incident(store: Store):
    records = SignatureIndex(store).records()

    assert len(records) == 4  # email, its paraphrase, email_address, timeout
    email = [r for r in records.values() if "'email'" in r["text"]]
    assert len({r["incident_id"] for r in email}) == 1
    assert {r["count"] for r in records.values() if "Timeout" in r["text"]} == {2}


def test_reindexing_twice_gives_the_same_index(store: Store, embedder: Embedder):
    reindex(store, embedder=embedder)
    first = SignatureIndex(store).records()
    reindex(store, embedder=embedder)

    assert SignatureIndex(store).records() == first
    assert len(first) == 4


def test_a_deleted_index_falls_back_to_signatures_with_one_warning(
    store: Store, embedder: Embedder
):
    shutil.rmtree(store.root / "chroma")

    with pytest.warns(IndexWarning, match="missing") as caught:
        matcher = Matcher(store, embedder=embedder)
        repeat = matcher.link_run(record_run(store, {GET_USER: MISSING_EMAIL.format(n=9)}))
        paraphrase = matcher.link_run(record_run(store, {GET_USER: NO_EMAIL.format(n=8) + "!"}))

    assert len([w for w in caught if w.category is IndexWarning]) == 1
    assert repeat[0].method == "signature"
    assert paraphrase[0].method == "new" and paraphrase[0].candidates == []


def test_reindex_repairs_a_deleted_index(store: Store, embedder: Embedder):
    before = SignatureIndex(store).records()
    shutil.rmtree(store.root / "chroma")

    reindex(store, embedder=embedder)

    assert SignatureIndex(store).records() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexWarning)
        found = Matcher(store, embedder=embedder).similar(NO_EMAIL.format(n=5) + " again")
    email = {r["incident_id"] for r in before.values() if "'email'" in r["text"]}
    assert [c.incident_id for c in found][:1] == list(email)


def test_a_damaged_index_falls_back_and_reindex_repairs_it(store: Store, embedder: Embedder):
    (store.root / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)

    refused = "ConnectionRefusedError: connection refused"
    with pytest.warns(IndexWarning):  # a new signature needs the index
        found = Matcher(store, embedder=embedder).link_run(
            record_run(store, {GET_USER: MISSING_EMAIL.format(n=4), LIST_ORDERS: refused})
        )
    reindex(store, embedder=embedder)

    assert sorted(link.method for link in found) == ["new", "signature"]
    assert len(SignatureIndex(store).records()) == 5


def test_known_signatures_alone_never_open_the_index(store: Store, embedder: Embedder):
    (store.root / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)

    with warnings.catch_warnings():
        warnings.simplefilter("error", IndexWarning)  # a damaged index goes unnoticed
        found = Matcher(store, embedder=embedder).link_run(
            record_run(store, {GET_USER: MISSING_EMAIL.format(n=4)})
        )

    assert [link.method for link in found] == ["signature"]


def test_reindex_links_failures_never_linked(store: Store, embedder: Embedder):
    record_run(store, {LIST_ORDERS: "ConnectionRefusedError: connection refused"})

    result = reindex(store, embedder=embedder)

    assert result.linked == 1 and result.signatures == 5
    assert len(SignatureIndex(store).records()) == 5


def _link_in_another_process(root: str, message: str) -> None:
    from test_incidents import GET_USER, record_run

    store = Store(Path(root))
    Matcher(store).link_run(record_run(store, {GET_USER: message}))


def test_processes_linking_at_once_keep_the_index_whole(store: Store):
    context = multiprocessing.get_context("spawn")  # deltalake must not be forked
    messages = [f"ValueError: field 'f{n}' has the wrong type in user 1" for n in range(2)]
    workers = [
        context.Process(target=_link_in_another_process, args=(str(store.root), m))
        for m in messages
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)

    assert [w.exitcode for w in workers] == [0, 0]
    records = SignatureIndex(store).records()
    assert sum("'f" in r["text"] for r in records.values()) == 2


def test_importing_chroma_for_a_command_leaves_garbage_collection_on() -> None:
    script = (
        "import gc, sys\n"
        "from testmem.memory.index import import_chroma\n"
        "import_chroma()\n"
        "print('chromadb' in sys.modules, gc.isenabled(), gc.get_freeze_count() > 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True", "True"]
