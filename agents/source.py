"""Python source of generated tests, built as a syntax tree and parsed back.

Statements come from templates the generator itself writes; every value that
came from an API, a store or a user (a key, a URL, a build label) enters the
tree as an `ast.Constant` in place of a placeholder name, so it can only ever
be a string or number literal. Names (test functions, the client fixture) must
be identifiers, checked here. A module is kept only when its text parses back
to the very tree it was rendered from.
"""

from __future__ import annotations

import ast
import copy
import keyword
import re
from dataclasses import dataclass

from testmem.memory.errors import TestmemError

DEFAULT_FIXTURE = "api_client"  # testmem's own client fixture, for a live API
PY_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "object": "dict",
    "array": "list",
}  # JSON types as Python names them
_STDLIB = {"datetime": "from datetime import datetime", "re": "import re"}


class SourceError(TestmemError):
    """A generated module or name is not what it must be."""


@dataclass(frozen=True)
class TestCase:
    """One generated test function: its name and body, with the client as ``CLIENT``."""

    __test__ = False
    name: str
    body: tuple[ast.stmt, ...]


def statements(
    template: str, **values: ast.expr | str | int | float | bool | None
) -> list[ast.stmt]:
    """The statements of ``template``, each placeholder name in ``values`` replaced
    by its node (a plain value becomes an `ast.Constant`)."""
    nodes = {k: v if isinstance(v, ast.expr) else ast.Constant(v) for k, v in values.items()}
    return list(_Substitute(nodes).visit(ast.parse(template)).body)


def expression(template: str, **values: ast.expr | str | int | None) -> ast.expr:
    (statement,) = statements(template, **values)
    assert isinstance(statement, ast.Expr)
    return statement.value


class _Substitute(ast.NodeTransformer):
    def __init__(self, values: dict[str, ast.expr]) -> None:
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.values.get(node.id, node)


def is_identifier(name: str) -> bool:
    return name.isidentifier() and name.isascii() and not keyword.iskeyword(name)


def identifier(text: str) -> str:
    """A lower-case ASCII identifier part made of ``text`` (``/users/{id}`` -> ``users_id``)."""
    return re.sub(r"[^0-9a-z]+", "_", text.replace("{id}", "id").lower()).strip("_")


def module(docstring: str, cases: list[TestCase], fixture: str = DEFAULT_FIXTURE) -> str:
    """The text of a test module: the docstring, imports, one function per case."""
    if not is_identifier(fixture):
        raise SourceError(f"the client fixture {fixture!r} is not a Python identifier")
    tree = ast.Module(body=[ast.Expr(ast.Constant(_printable(docstring)))], type_ignores=[])
    tree.body += statements("from __future__ import annotations")
    used = {
        n.id for case in cases for s in case.body for n in ast.walk(s) if isinstance(n, ast.Name)
    }
    for name, line in sorted(_STDLIB.items(), key=lambda item: item[1]):
        tree.body += statements(line) if name in used else []
    if fixture == DEFAULT_FIXTURE:
        tree.body += statements("import httpx")
    tree.body += [_function(case, fixture) for case in cases]
    return checked(ast.fix_missing_locations(tree))


def _function(case: TestCase, fixture: str) -> ast.FunctionDef:
    if not is_identifier(case.name) or not case.name.startswith("test_"):
        raise SourceError(f"{case.name!r} is not a test function name")
    template = "def NAME(CLIENT: httpx.Client) -> None: pass"
    (function,) = statements(
        template if fixture == DEFAULT_FIXTURE else template.replace(": httpx.Client", "")
    )
    assert isinstance(function, ast.FunctionDef)
    function.name = case.name
    function.args.args[0].arg = fixture
    client = ast.Name(fixture, ast.Load())
    function.body = [_Substitute({"CLIENT": client}).visit(copy.deepcopy(s)) for s in case.body]
    return function


def checked(tree: ast.Module) -> str:
    """``tree`` as text, once the text parses back to the same tree."""
    text = ast.unparse(tree) + "\n"
    try:
        same = ast.dump(ast.parse(text)) == ast.dump(tree)
    except (SyntaxError, ValueError) as exc:
        raise SourceError(f"generated source does not parse: {exc}") from None
    if not same:
        raise SourceError("generated source does not parse back to the tree it came from")
    return text


def _printable(text: str) -> str:
    """Lone surrogates (from JSON ``\\ud800``) cannot be written as UTF-8: escape them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
