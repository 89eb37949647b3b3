"""Matching failures to incidents, the incidents projection and human feedback.

Stores are written through `EventLog.append` with the events the recorder
writes; matching uses the real embedding model and embedded Chroma.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from testmem.memory.embed import Embedder
from testmem.memory.errors import NotFoundError
from testmem.memory.events import (
    FailureObserved,
    HttpExchanged,
    RunFinished,
    RunStarted,
    TestFinished,
    uuid7,
)
from testmem.memory.incidents import (
    IncidentError,
    Incidents,
    Matcher,
    cluster_messages,
    is_incident_id,
    label,
    merge,
)
from testmem.memory.store import Store

GET_USER = "tests/test_users.py::test_get_user"
MISSING_EMAIL = "AssertionError: expected key 'email' in the response body of user {n}"
NO_EMAIL = "AssertionError: the response body of user {n} has no key 'email'"
MISSING_ADDRESS = "AssertionError: expected key 'email_address' in the response body of user {n}"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def record_run(
    store: Store,
    results: dict[str, str | None],
    build: str = "",
    at: datetime | None = None,
    status: int = 200,
) -> str:
    """One run as the recorder writes it: ``nodeid -> failure message`` (None = passed),
    each test's exchange answered ``status``."""
    at = at or datetime.now(UTC)
    run_id = uuid7()
    events: list = [RunStarted(run_id=run_id, build=build, occurred_at=at)]
    for nodeid, message in results.items():
        outcome = "passed" if message is None else "failed"
        exchange = HttpExchanged(
            run_id=run_id,
            exchange_id=uuid7(),
            nodeid=nodeid,
            method="GET",
            url="http://127.0.0.1:1/users/42",
            route="/users/{id}",
            status=status,
            occurred_at=at,
        )
        events += [
            exchange,
            TestFinished(run_id=run_id, nodeid=nodeid, outcome=outcome, occurred_at=at),
        ]
        if message is not None:
            events.append(
                FailureObserved(
                    run_id=run_id,
                    failure_id=uuid7(),
                    nodeid=nodeid,
                    occurred_at=at,
                    exception_type=message.split(":", 1)[0],
                    message=message,
                    exchange_ids=[exchange.exchange_id],
                )
            )
    events.append(RunFinished(run_id=run_id, occurred_at=at))
    store.events.append(events)
    return run_id


def link(store: Store, embedder: Embedder, run_id: str) -> list:
    return Matcher(store, embedder=embedder).link_run(run_id)


def test_a_repeated_signature_links_to_the_same_incident(store: Store, embedder: Embedder):
    first = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=42)}))
    again = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=77)}))

    assert first[0].is_new and first[0].method == "new"
    assert again[0].method == "signature" and not again[0].is_new
    assert again[0].incident_id == first[0].incident_id
    assert is_incident_id(first[0].incident_id)


def test_linking_a_run_twice_adds_nothing(store: Store, embedder: Embedder):
    run_id = record_run(store, {GET_USER: MISSING_EMAIL.format(n=42)})
    assert len(link(store, embedder, run_id)) == 1

    assert link(store, embedder, run_id) == []
    assert Incidents(store).list()[0].occurrences == 1


def test_a_paraphrase_is_linked_by_similarity(store: Store, embedder: Embedder):
    first = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=42)}))
    paraphrase = link(store, embedder, record_run(store, {GET_USER: NO_EMAIL.format(n=7)}))[0]

    assert paraphrase.method == "similar"
    assert paraphrase.incident_id == first[0].incident_id
    assert paraphrase.candidates[0].signature == first[0].signature
    assert "same route" in paraphrase.candidates[0].why


def test_a_near_miss_opens_a_new_incident_that_records_the_related_one(
    store: Store, embedder: Embedder
):
    first = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=42)}))[0]
    other_field = link(store, embedder, record_run(store, {GET_USER: MISSING_ADDRESS.format(n=3)}))

    assert other_field[0].is_new
    assert other_field[0].incident_id != first.incident_id
    assert other_field[0].related_incident == first.incident_id
    assert Incidents(store).get(other_field[0].incident_id).related == [first.incident_id]


def test_a_rewording_of_one_error_status_is_found_beyond_the_nearest_texts(
    store: Store, embedder: Embedder
):
    """``raise_for_status`` and ``assert 503 == 200`` share little text: other
    statuses' asserts are nearer, yet one status on one route is one cause."""
    raised = "httpx.HTTPStatusError: Server error '503 Service Unavailable' for url '{url}'"
    asserted = "AssertionError: assert {s} == 200\n +  where {s} = <Response [{s} {r}]>.status_code"
    url = "http://127.0.0.1:1/users/42"
    first = link(store, embedder, record_run(store, {GET_USER: raised.format(url=url)}, status=503))
    for code, reason in ((500, "Internal Server Error"), (502, "Bad Gateway")):
        other = {f"{GET_USER}_{code}": asserted.format(s=code, r=reason)}
        link(store, embedder, record_run(store, other, status=code))

    run_id = record_run(
        store, {f"{GET_USER}_again": asserted.format(s=503, r="Service Unavailable")}, status=503
    )
    linked = Matcher(store, embedder=embedder, k=1).link_run(run_id)[0]

    assert linked.method == "similar" and linked.incident_id == first[0].incident_id
    decided = {c.incident_id: c for c in linked.candidates}[first[0].incident_id]
    assert decided.cosine < 0.83  # not found by text alone (the other statuses read closer)
    assert "same status" in decided.why


def test_each_link_is_a_fact_that_explains_it(store: Store, embedder: Embedder):
    link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=42)}))
    link(store, embedder, record_run(store, {GET_USER: NO_EMAIL.format(n=7)}))
    from testmem.memory.query import History

    rows = (
        History(store)
        .sql(
            "SELECT detail->>'$.method', detail->'$.candidates'->0->>'$.why' FROM facts "
            "WHERE type = 'FailureLinked' ORDER BY occurred_at"
        )
        .rows
    )

    assert [r[0] for r in rows] == ["new", "similar"]
    assert rows[1][1].startswith("cosine ")


def test_a_human_label_is_kept_by_later_matching(store: Store, embedder: Embedder):
    first = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=42)}))[0]
    label(store, first.incident_id[:7], "flaky", by="alice")
    later = link(store, embedder, record_run(store, {GET_USER: NO_EMAIL.format(n=9)}))[0]

    assert later.incident_id == first.incident_id
    incident = Incidents(store).get(first.incident_id)
    assert incident.label == "flaky" and incident.occurrences == 2


def test_an_unknown_label_is_refused(store: Store, embedder: Embedder):
    first = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=42)}))[0]

    with pytest.raises(IncidentError, match="unknown label"):
        label(store, first.incident_id, "cosmic-rays")


def test_a_merged_incident_resolves_to_the_one_it_joined(store: Store, embedder: Embedder):
    email = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=1)}))[0]
    address = link(store, embedder, record_run(store, {GET_USER: MISSING_ADDRESS.format(n=2)}))[0]
    merge(store, address.incident_id, email.incident_id)
    later = link(store, embedder, record_run(store, {GET_USER: MISSING_ADDRESS.format(n=5)}))[0]

    assert later.incident_id == email.incident_id and later.method == "label"
    merged = Incidents(store).get(address.incident_id)
    assert merged.incident_id == email.incident_id
    assert merged.occurrences == 3 and address.incident_id in merged.merged
    assert [i.incident_id for i in Incidents(store).list()] == [email.incident_id]


def test_merging_an_incident_into_itself_is_refused(store: Store, embedder: Embedder):
    first = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=1)}))[0]

    with pytest.raises(IncidentError, match="already one incident"):
        merge(store, first.incident_id, first.incident_id)


def test_an_incident_resolves_after_passing_runs_and_reopens_on_recurrence(
    store: Store, embedder: Embedder
):
    start = datetime.now(UTC) - timedelta(hours=1)
    builds = iter(range(100))

    def run(message: str | None) -> str:
        n = next(builds)
        at = start + timedelta(minutes=n)
        return record_run(store, {GET_USER: message}, build=f"b{n}", at=at)

    run(None)  # b0: the last good build
    incident_id = link(store, embedder, run(MISSING_EMAIL.format(n=1)))[0].incident_id  # b1
    run(None), run(None)
    assert Incidents(store, resolve_after=3).get(incident_id).status == "open"
    run(None)
    resolved = Incidents(store, resolve_after=3).get(incident_id)
    link(store, embedder, run(MISSING_EMAIL.format(n=2)))

    reopened = Incidents(store, resolve_after=3).get(incident_id)
    assert resolved.status == "resolved"
    assert reopened.status == "reopened"
    assert (reopened.first_bad_build, reopened.last_good_build) == ("b1", "b0")
    assert [t["outcome"] for t in reopened.timeline] == ["failed"] + ["passed"] * 3 + ["failed"]
    assert [i.incident_id for i in Incidents(store).list(open_only=True)] == [incident_id]


def test_an_unknown_incident_is_not_found(store: Store, embedder: Embedder):
    link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=1)}))

    with pytest.raises(NotFoundError, match="'INC-ffff' is unknown"):
        Incidents(store).get("INC-ffff")


def test_similar_ranks_the_incident_a_text_resembles_first(store: Store, embedder: Embedder):
    email = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=1)}))[0]
    link(store, embedder, record_run(store, {GET_USER: "TimeoutError: read timed out after 30s"}))

    found = Matcher(store, embedder=embedder).similar("KeyError: 'email' in user 12", k=2)

    assert found[0].incident_id == email.incident_id
    assert found[0].score > found[1].score


def test_clustering_groups_messages_and_survives_bad_input(embedder: Embedder):
    messages = [
        MISSING_EMAIL.format(n=1),
        NO_EMAIL.format(n=2),
        "ConnectionRefusedError: [Errno 111] Connection refused to 127.0.0.1:8123",
        "ConnectionRefusedError: [Errno 111] Connection refused to 127.0.0.1:9001",
        "",
        b"\xff\xfe\x00binary\x80",
        "E" * (10 * 1024 * 1024),
        "Zalgo t\u0337e\u0336x\u0335t \U0001f4a5 \u202e",
    ]

    result = cluster_messages(messages, embedder=embedder)

    assert result.clusters[0] == result.clusters[1]
    assert result.clusters[2] == result.clusters[3]
    assert result.clusters[0] != result.clusters[2]
    assert len(result.clusters) == len(messages)
    assert result.summary()["messages"] == len(messages)


def test_matching_never_loads_the_model_for_a_known_signature(store: Store):
    if "TESTMEM_MODEL" in os.environ:
        pytest.skip("a custom model is configured")
    fresh = Embedder(model_path="/nonexistent/model")  # would fail if it were ever used
    run_id = record_run(store, {GET_USER: MISSING_EMAIL.format(n=1)})
    seeded = Embedder(cache_dir=store.subdir("embeddings"))
    Matcher(store, embedder=seeded).link_run(run_id)

    again = Matcher(store, embedder=fresh).link_run(
        record_run(store, {GET_USER: MISSING_EMAIL.format(n=2)})
    )

    assert again[0].method == "signature"


# -- the template stage --------------------------------------------------------

LOCKED = "AssertionError: account {u} is locked for user 42"
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank"]


def test_a_failure_of_a_known_template_in_another_test_joins_its_incident(
    store: Store, embedder: Embedder
):
    first = link(store, embedder, record_run(store, {GET_USER: MISSING_EMAIL.format(n=1)}))[0]
    other_test = "tests/test_users.py::test_update_user"
    again = link(store, embedder, record_run(store, {other_test: MISSING_EMAIL.format(n=2)}))[0]

    assert again.signature != first.signature
    assert again.method == "template" and again.incident_id == first.incident_id
    assert again.template_id == first.template_id


def test_one_shape_with_another_constant_word_is_another_cause_however_close(
    store: Store, embedder: Embedder
):
    shipped = link(
        store, embedder, record_run(store, {GET_USER: "AssertionError: order state is Shipped"})
    )
    cancelled = link(
        store, embedder, record_run(store, {GET_USER: "AssertionError: order state is Cancelled"})
    )

    assert cancelled[0].is_new and cancelled[0].incident_id != shipped[0].incident_id
    assert shipped[0].signature not in {c.signature for c in cancelled[0].candidates}


def test_a_template_that_generalises_moves_no_incident_and_is_recorded(
    store: Store, embedder: Embedder
):
    links = [
        link(store, embedder, record_run(store, {GET_USER: LOCKED.format(u=u)}))[0] for u in NAMES
    ]
    before = {x.failure_id: x.incident_id for x in links[:4]}

    assert len(set(before.values())) == 4  # four words, four causes so far
    assert links[4].method == "template" and links[5].method == "template"
    assert links[4].incident_id == links[5].incident_id == links[0].incident_id
    incidents = Incidents(store)
    assert {i.incident_id for i in incidents.list()} == set(before.values())
    from testmem.memory.query import History

    history = History(store)
    change = history.sql(
        "SELECT detail->>'$.template_id', detail->>'$.merged' FROM facts "
        "WHERE type = 'TemplateGeneralised'"
    ).rows
    assert [c[0] for c in change] == [links[0].template_id]
    merged = set(json.loads(change[0][1]))
    assert merged == {x.template_id for x in links[1:5]} - {links[0].template_id}


def test_a_replay_of_the_log_rebuilds_the_templates_the_links_recorded(
    store: Store, embedder: Embedder
):
    links = [
        link(store, embedder, record_run(store, {GET_USER: LOCKED.format(u=u)}))[0] for u in NAMES
    ]
    from testmem.memory.matching import Known
    from testmem.memory.query import History

    replayed = Known.load(History(store)).templates

    assert [replayed.of[x.signature] for x in links] == [x.template_id for x in links]
    assert {replayed.miner.resolve(x.template_id) for x in links} == {links[0].template_id}
    assert replayed.incident(links[5].template_id) == links[0].incident_id


def test_two_server_errors_behind_one_wording_are_two_incidents(store: Store, embedder: Embedder):
    """One test's ``assert 500 == 200`` on one route, first for one server error,
    then for another: the same signature, two causes (`memory/causes.py`)."""
    failed = "AssertionError: assert 500 == 200\n +  where 500 = <Response [500]>.status_code"
    reworded = "httpx.HTTPStatusError: Server error '500 Internal Server Error' for url '/users/42'"
    mismatch, timeout = "server error 500: OrderTotalMismatch", "server error 500: LedgerTimeout"

    def linked(results: dict[str, str | None], cause: str) -> list:
        run_id = record_run(store, results, status=500)
        return Matcher(store, embedder=embedder).link_run(run_id, lambda failure: cause)

    first = linked({GET_USER: failed}, mismatch)[0]
    other, paraphrase = linked({GET_USER: failed, f"{GET_USER}_raised": reworded}, timeout)
    again = linked({GET_USER: failed}, mismatch)[0]
    # a test of its own, worded as one before, for a third error: close, but not that
    third = linked({f"{GET_USER}_later": reworded}, "server error 500: PoolExhausted")[0]

    assert other.incident_id != first.incident_id and other.is_new
    assert paraphrase.incident_id == other.incident_id and paraphrase.method == "cause"
    assert again.incident_id == first.incident_id and again.method == "signature"
    assert third.is_new and third.incident_id not in {first.incident_id, other.incident_id}
    # each is an incident of its own in the projection, with its own occurrences
    listed = {i.incident_id: i.occurrences for i in Incidents(store).list()}
    assert {first.incident_id: 2, other.incident_id: 2, third.incident_id: 1}.items() <= (
        listed.items()
    )
