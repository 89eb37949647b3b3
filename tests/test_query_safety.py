"""`testmem query` reads the store and nothing else; every other command binds
user values as parameters.

A real store, the real CLI (click's runner, in process), real DuckDB.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from testmem.memory.cli import cli
from testmem.memory.events import FailureObserved, RunFinished, RunStarted, TestFinished, uuid7
from testmem.memory.store import Store

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "'; DROP TABLE events; --"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store")
    run_id = uuid7()
    nodeid = "tests/test_users.py::test_get_user"
    store.events.append(
        [
            RunStarted(run_id=run_id),
            TestFinished(run_id=run_id, nodeid=nodeid, outcome="failed"),
            FailureObserved(run_id=run_id, failure_id=uuid7(), nodeid=nodeid, message="boom"),
            RunFinished(run_id=run_id, failed=1),
        ]
    )
    return store


def invoke(store: Store, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--dir", str(store.root), *args])


def snapshot(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size: what a command must leave as it was."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


REFUSED = [
    "COPY events TO '{outside}/leak.csv'",
    "COPY (SELECT * FROM events) TO '{outside}/leak.parquet' (FORMAT parquet)",
    "ATTACH '{outside}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_parquet('{outside}/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM glob('{outside}/*')",
    "CREATE TABLE stolen AS SELECT * FROM events",
    "DROP VIEW events",
    "CREATE OR REPLACE VIEW runs AS SELECT 1",
    "INSERT INTO events SELECT * FROM events",
    "PRAGMA enable_external_access",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET enable_external_access",
    "SELECT 1; DROP VIEW events",
    "EXPORT DATABASE '{outside}/dump'",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "WITH x AS (SELECT * FROM read_csv_auto('/etc/passwd')) SELECT * FROM x",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_query_refuses_what_would_escape_or_modify_the_store(
    store: Store, tmp_path: Path, sql: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.parquet").write_bytes(
        Path(store.events.files()[0].removeprefix("file://")).read_bytes()
    )
    before, before_outside = snapshot(store.root), snapshot(outside)
    result = invoke(store, "query", sql.format(outside=outside))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("testmem: error:") and "Traceback" not in result.output
    assert snapshot(store.root) == before and snapshot(outside) == before_outside
    assert "root:" not in result.output  # nothing of /etc/passwd was shown


def test_query_still_reads_the_views(store: Store) -> None:
    result = invoke(store, "query", "SELECT count(*) AS n FROM failures", "--json")
    assert result.exit_code == 0, result.output
    assert '"n": 1' in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["history", HOSTILE],
        ["failures", "--run", HOSTILE],
        ["failures", "--run", "' OR '1'='1"],
        ["incident", HOSTILE],
        ["label", HOSTILE, "--as", "flaky"],
        ["merge", HOSTILE, "INC-" + "0" * 8],
        ["similar", "--failure", HOSTILE],
    ],
)
def test_hostile_ids_are_values_not_sql(store: Store, args: list[str]) -> None:
    before = snapshot(store.root)
    result = invoke(store, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert snapshot(store.root) == before
    assert invoke(store, "query", "SELECT count(*) FROM events").exit_code == 0


# What may be formatted into SQL text: constants (UPPER_CASE names) and these
# reviewed expressions, assembled in code from constants, placeholders or escaped
# file paths. Anything else in a `.sql(`/`.execute(` call fails the test.
REVIEWED = {
    ("memory/query.py", "select"),  # the events SELECT: declared columns over escaped file paths
    ("memory/query.py", "name"),  # view names from _VIEWS
    ("memory/query.py", "sql"),  # view bodies from _VIEWS
    ("memory/query.py", "root"),  # the store's path, quotes escaped
    ("memory/query.py", "source"),  # read_parquet of escaped file paths
    ("memory/query.py", "per_file"),  # parquet_schema of escaped file paths
    ("memory/matching.py", "where"),  # WHERE clauses written in code, values bound
    ("memory/matching.py", "order"),  # a constant ORDER BY
    ("memory/embed.py", "marks"),  # "?,?,?" placeholders
    ("memory/report/figures.py", "name"),  # table names: the keys of SCANS
    ("memory/report/figures.py", "scan"),  # SCANS' partial SQL, written in code
    ("memory/report/figures.py", "merge"),  # SCANS' merge SQL, written in code
}
_CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")


def formatted_sql_values() -> set[tuple[str, str]]:
    """(file, expression) for every value formatted into the SQL text of a call."""
    found = set()
    for path in sorted([*ROOT.glob("memory/**/*.py"), *ROOT.glob("agents/**/*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("sql", "execute", "query")
                and node.args
            ):
                name = str(path.relative_to(ROOT))
                found |= {(name, value) for value in formatted_values(node.args[0])}
    return found


def formatted_values(arg: ast.expr) -> list[str]:
    """The expressions an f-string, ``%`` or ``.format()`` puts into the text."""
    if isinstance(arg, ast.JoinedStr):
        values = [v.value for v in arg.values if isinstance(v, ast.FormattedValue)]
    elif isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod | ast.Add):
        values = [arg.right]
    elif isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute):
        values = [*arg.args, *(k.value for k in arg.keywords)] if arg.func.attr == "format" else []
    else:
        values = []
    return [ast.unparse(v) for v in values if not _CONSTANT.fullmatch(ast.unparse(v))]


def test_no_sql_call_formats_values_into_its_text() -> None:
    unreviewed = formatted_sql_values() - REVIEWED
    assert not unreviewed, f"bind user values as parameters instead: {sorted(unreviewed)}"


@pytest.mark.parametrize(
    "code",
    [
        "h.sql(f\"SELECT * FROM runs WHERE run_id = '{run}'\")",
        "h.sql(\"SELECT * FROM runs WHERE run_id = '%s'\" % run)",
        "db.execute(\"SELECT * FROM runs WHERE run_id = '{}'\".format(run))",
    ],
)
def test_the_sql_check_catches_a_formatted_user_value(code: str) -> None:
    call = next(n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call))
    assert formatted_values(call.args[0]) == ["run"]
