"""The routes the memory knows: ``testmem routes``."""

from __future__ import annotations

from dataclasses import astuple

from testmem.memory.cli import cli, emit, open_store, output_options


@cli.command()
@output_options
def routes(fmt: str, as_json: bool) -> None:
    """List each route template, where it came from (framework: the in-process
    app's router; openapi: the memory_openapi document; pattern: id-like
    segments; history: a position that has seen many values) and how many
    distinct paths and exchanges it has seen.

    Example: testmem routes --format csv
    """
    from testmem.memory.query import History
    from testmem.memory.routes import catalogue

    rows = (
        History(open_store())
        .sql(
            "SELECT method, regexp_extract(url, '^[a-z]+://[^/]*([^?#]*)', 1), route, route_source"
            " FROM exchanges"
        )
        .rows
    )
    known = catalogue((m, p or "/", r, s) for m, p, r, s in rows)
    emit(
        ["method", "template", "source", "values", "exchanges"],
        [astuple(k) for k in known],
        fmt,
        as_json,
    )
