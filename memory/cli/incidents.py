"""Commands over failure memory: similar, incidents, incident, cluster, label, merge, reindex."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from testmem.memory.answers import answer
from testmem.memory.cli import (
    CliError,
    cli,
    emit,
    emit_object,
    json_option,
    open_store,
    output_options,
)

if TYPE_CHECKING:
    from testmem.memory.query import Rows
    from testmem.memory.store import Store

_LABELS = ("product-bug", "flaky", "test-outdated", "infra")  # testmem.memory.incidents.LABELS


@cli.command()
@click.argument("text", required=False)
@click.option("--failure", "failure_id", help="A recorded failure's id (or unique prefix).")
@click.option("-k", default=5, show_default=True, help="How many incidents.")
@output_options
def similar(text: str | None, failure_id: str | None, k: int, fmt: str, as_json: bool) -> None:
    """Past incidents nearest to a failure message (or a recorded failure), with scores and why.

    Example: testmem similar "KeyError: 'email'" -k 3
    """
    if (text is None) == (failure_id is None):
        raise CliError("give either TEXT or --failure ID")
    if k < 1:
        raise CliError("-k must be at least 1")
    store = open_store()
    asked = {"text": text, "failure": failure_id, "k": k, **_settings_of_similar()}
    result = answer(store, "similar", asked, lambda: _similar(store, text, failure_id, k))
    emit(result.columns, result.rows, fmt, as_json)


def _settings_of_similar() -> dict[str, str | None]:
    """What else `similar` depends on: the index and the model it is told to use."""
    names = ("TESTMEM_CHROMA_URL", "TESTMEM_MODEL", "TESTMEM_EMBED_BACKEND")
    return {name: os.environ.get(name) for name in names}


def _similar(store: Store, text: str | None, failure_id: str | None, k: int) -> Rows:
    from testmem.memory.incidents import Matcher, find_failure
    from testmem.memory.index import import_chroma
    from testmem.memory.query import History, Rows

    import_chroma()  # the cheap way for a process that ends after one answer
    matcher = Matcher(store)
    if failure_id is not None:
        found = matcher.similar_to_failure(find_failure(History(store), failure_id), k)
    else:
        found = matcher.similar(text or "", k)
    rows = [(c.incident_id, round(c.score, 3), round(c.cosine, 3), c.why) for c in found]
    return Rows(["incident_id", "score", "cosine", "why"], rows)


@cli.command()
@click.option("--open", "open_only", is_flag=True, help="Only incidents not resolved.")
@click.option("--resolve-after", default=1, show_default=True, help="Passing runs that resolve.")
@output_options
def incidents(open_only: bool, resolve_after: int, fmt: str, as_json: bool) -> None:
    """Incidents, most recently seen first.

    Example: testmem incidents --open --json
    """
    store = open_store()
    asked = {"open": open_only, "resolve_after": resolve_after}
    result = answer(store, "incidents", asked, lambda: _incidents(store, open_only, resolve_after))
    emit(result.columns, result.rows, fmt, as_json)


def _incidents(store: Store, open_only: bool, resolve_after: int) -> Rows:
    from testmem.memory.incidents import Incidents
    from testmem.memory.query import Rows

    found = Incidents(store, resolve_after).list(open_only)
    columns = ["incident_id", "status", "label", "occurrences", "tests", "last_seen", "message"]
    rows = [
        (i.incident_id, i.status, i.label, i.occurrences, len(i.tests), i.last_seen,
         i.sample_message)
        for i in found
    ]  # fmt: skip
    return Rows(columns, rows)


@cli.command()
@click.argument("incident_id")
@click.option("--resolve-after", default=1, show_default=True, help="Passing runs that resolve.")
@json_option
def incident(incident_id: str, resolve_after: int, as_json: bool) -> None:
    """One incident: status, label, tests, builds, occurrences and its timeline of runs.

    Example: testmem incident INC-3f2a
    """
    from dataclasses import asdict

    from testmem.memory.incidents import Incidents

    found = asdict(Incidents(open_store(), resolve_after).get(incident_id))
    timeline = found.pop("timeline")
    if as_json:
        emit_object({**found, "timeline": timeline}, True)
        return
    emit_object(found, False)
    click.echo("")
    emit(
        ["at", "run_id", "build", "outcome"],
        [(t["at"], t["run_id"], t["build"], t["outcome"]) for t in timeline],
        "table",
        False,
    )


@cli.command()
@click.argument("file", type=click.File("rb"))
@click.option("--same", type=click.FloatRange(0, 2), default=None, help="Link threshold.")
def cluster(file: Any, same: float | None) -> None:
    """Group failure messages into incidents: one message per line, or JSON lines
    with a "message" field (and optionally exception_type, nodeid, method, route,
    status). Prints JSON: each input's cluster, and a summary. Use "-" for stdin.

    Example: testmem cluster ci-failures.jsonl
    """
    from testmem.memory.clustering import cluster_failures
    from testmem.memory.matching import DEFAULT_SAME

    failures = [_failure(line) for line in _lines(file) if line.strip()]
    threshold = DEFAULT_SAME if same is None else same
    result = cluster_failures(failures, same=threshold, related=min(threshold, 0.70))
    assignments = [
        {
            "line": n,
            "cluster": link.incident_id,
            "method": link.method,
            "score": round(link.score, 3),
        }
        for n, link in enumerate(result.links, start=1)
    ]
    emit_object({"inputs": assignments, "summary": result.summary()}, True)


# The most `cluster` reads; a longer line is clustered by its head.
CLUSTER_MAX_BYTES, CLUSTER_MAX_LINES, CLUSTER_MAX_LINE = 64 << 20, 100_000, 64 << 10


def _lines(file: Any) -> list[bytes]:
    content = file.read(CLUSTER_MAX_BYTES + 1)  # /dev/zero ends here too
    name = getattr(file, "name", "the input")
    if len(content) > CLUSTER_MAX_BYTES:
        raise CliError(f"{name}: more than {CLUSTER_MAX_BYTES >> 20} MiB; split it up")
    if content.count(b"\n") > CLUSTER_MAX_LINES:
        raise CliError(f"{name}: more than {CLUSTER_MAX_LINES:,} lines; split it up")
    return [line[:CLUSTER_MAX_LINE] for line in content.splitlines()]


def _failure(line: bytes) -> dict[str, Any]:
    """A JSON object with a "message" field, else the line itself as the message."""
    text = line.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return {"message": text}
        if isinstance(record, dict) and isinstance(record.get("message"), str):
            keys = ("message", "exception_type", "nodeid", "method", "route", "status")
            return {k: record[k] for k in keys if k in record}
    return {"message": text}


@cli.command()
@click.argument("incident_id")
@click.option("--as", "as_label", type=click.Choice(_LABELS), required=True, help="The label.")
@click.option("--by", default="cli", show_default=True, help="Who labels.")
def label(incident_id: str, as_label: str, by: str) -> None:
    """Label an incident; later matching and triage honour it over the model.

    Example: testmem label INC-3f2a --as flaky
    """
    from testmem.memory.incidents import label as apply_label

    found = apply_label(open_store(), incident_id, as_label, by)
    click.echo(f"{found.incident_id} labelled {as_label}")


@cli.command()
@click.argument("incident_id")
@click.argument("into")
def merge(incident_id: str, into: str) -> None:
    """Merge INCIDENT_ID into INTO: its failures, past and future, belong to INTO.

    Example: testmem merge INC-3f2a INC-9b1c
    """
    from testmem.memory.incidents import merge as apply_merge

    found = apply_merge(open_store(), incident_id, into)
    click.echo(f"merged into {found.incident_id} ({found.occurrences} occurrences)")


@cli.command()
def reindex() -> None:
    """Rebuild the Chroma index of failure signatures from the event log, then link
    any failure never linked. Repairs a missing or damaged index; running it
    twice gives the same index.

    Example: testmem reindex
    """
    from testmem.memory.incidents import reindex as rebuild
    from testmem.memory.index import SignatureIndex

    store = open_store()
    with click.progressbar(length=1, label="reindexing signatures") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        result = rebuild(store, progress=progress)
    click.echo(
        f"indexed {result.signatures} signatures of {result.incidents} incidents "
        f"({result.linked} failures newly linked) in {SignatureIndex(store).where}"
    )
