"""The generator: new tests for what the API started answering.

When a GET route gains a field, or a new GET route appears (`testmem.agents.schema`),
it writes pytest tests in the suite's style — one request through the suite's
own client (``api_client`` for a live API, else the fixture the recorded tests
used: `testmem.agents.client_fixture`), the status, then presence, type and format checks (ISO
timestamps, e-mail addresses), and for routes with ids an unknown id → 404 —
runs them where they will live, as the suite runs (its configuration and
conftest files), keeps the ones that pass, writes them under ``tests/generated/``
and appends ``TestsGenerated``. The source is a syntax tree (`testmem.agents.source`):
no key or label from the API can become code. A file that exists is never
overwritten.
"""

from __future__ import annotations

import ast
import json
import secrets
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from testmem.agents.client_fixture import client_fixture
from testmem.agents.schema import (
    ADDED,
    NEW_ROUTE,
    ApiChange,
    Snapshot,
    detect_changes,
    snapshots,
    value_format,
)
from testmem.agents.source import (
    DEFAULT_FIXTURE,
    PY_TYPES,
    TestCase,
    expression,
    identifier,
    is_identifier,
    module,
    statements,
)
from testmem.memory.events import Fact
from testmem.memory.query import History
from testmem.memory.store import Store

DEFAULT_OUT = Path("tests/generated")
VERIFY_TIMEOUT_S = 300
_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"

Verifier = Callable[[Path, str | None], set[str]]  # (test file, API URL) -> names that passed


@dataclass
class Generated:
    """What came of one route: a file of tests that passed, or why none."""

    route: str
    method: str
    fields: list[str]
    path: Path | None = None
    tests: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True)
class Suite:
    """Where generated tests go and how they reach the API: through ``fixture``
    (testmem's ``api_client`` at ``url`` for a live API, or the suite's own client)."""

    out: Path
    fixture: str
    url: str | None
    verify: Verifier

    @property
    def live(self) -> bool:
        return self.fixture == DEFAULT_FIXTURE


def generate_tests(
    store: Store,
    history: History,
    out: Path = DEFAULT_OUT,
    api_base_url: str | None = None,
    min_observations: int = 1,
    verify: Verifier | None = None,
    fixture: str | None = None,
) -> list[Generated]:
    """Write tests for every new GET field or route not covered before, through
    ``fixture`` (default: the one the recorded tests of the route used)."""
    series = snapshots(history, method="GET")
    changes = [
        c
        for c in detect_changes(history, method="GET", min_observations=min_observations)
        if c.kind in (ADDED, NEW_ROUTE)
    ]
    done = _already_generated(history)
    results = []
    for route, route_changes in _by_route(changes).items():
        latest = series[(route, "GET")][-1]
        fields = sorted(str(c.path) for c in route_changes if c.kind == ADDED)
        if (route, tuple(fields)) in done:
            continue
        client = fixture or client_fixture(history, route, "GET")
        url = (api_base_url or _base_url(latest)) if client == DEFAULT_FIXTURE else None
        suite = Suite(out, client, url, verify or run_tests)
        result = _generate_route(route, fields, route_changes, latest, suite)
        if result.path:
            _record(store, latest, route_changes, result, suite)
        results.append(result)
    return results


def _by_route(changes: list[ApiChange]) -> dict[str, list[ApiChange]]:
    grouped: dict[str, list[ApiChange]] = {}
    for change in changes:
        grouped.setdefault(change.route, []).append(change)
    return grouped


def _already_generated(history: History) -> set[tuple[str, tuple[str, ...]]]:
    rows = history.sql(
        "SELECT detail FROM facts WHERE type = 'TestsGenerated'",
    ).rows
    done = set()
    for (detail,) in rows:
        data = json.loads(detail)
        done.add((str(data.get("route")), tuple(data.get("fields") or [])))
    return done


def _generate_route(
    route: str, fields: list[str], changes: list[ApiChange], latest: Snapshot, suite: Suite
) -> Generated:
    result = Generated(route, "GET", fields)
    is_new_route = any(c.kind == NEW_ROUTE for c in changes)
    cases = test_cases(route, latest, None if is_new_route else fields)
    target = suite.out / _file_name(route, fields)
    if not cases:
        result.reason = "nothing to check in its answers"
    elif target.exists():
        result.reason = f"{target} exists (never overwritten)"
    elif suite.live and not suite.url:
        result.reason = "no API base URL: pass --api-base-url (or name the suite's client fixture)"
    else:
        docstring = _docstring(route, fields, changes, latest, suite.url)
        created = not suite.out.exists()
        suite.out.mkdir(parents=True, exist_ok=True)
        passed = _keep_passing(cases, docstring, suite)
        if created and not passed:
            suite.out.rmdir()  # nothing kept: no empty folder left behind
        if passed:
            target.write_text(module(docstring, passed, suite.fixture), encoding="utf-8")
            result.path, result.tests = target, [c.name for c in passed]
        else:
            where = f"against {suite.url}" if suite.url else f"through fixture {suite.fixture!r}"
            result.reason = f"no generated test passed {where}"
    return result


def _keep_passing(cases: list[TestCase], docstring: str, suite: Suite) -> list[TestCase]:
    """The cases that pass where they will live (beside the suite's conftest
    files), checked again once together."""
    candidate = suite.out / f"test_testmem_candidate_{secrets.token_hex(6)}.py"
    try:
        candidate.write_text(module(docstring, cases, suite.fixture), encoding="utf-8")
        passed = suite.verify(candidate, suite.url)
        kept = [c for c in cases if c.name in passed]
        if kept and len(kept) < len(cases):
            candidate.write_text(module(docstring, kept, suite.fixture), encoding="utf-8")
            if suite.verify(candidate, suite.url) != {c.name for c in kept}:
                return []
        return kept
    finally:
        candidate.unlink(missing_ok=True)


# -- test cases ---------------------------------------------------------------------


def test_cases(route: str, latest: Snapshot, fields: list[str] | None) -> list[TestCase]:
    """One test per new field in ``fields``; for a new route (``fields`` None),
    one test of all its top-level fields and, with ids, a not-found check."""
    slug = identifier(route)
    request = statements("response = CLIENT.get(TARGET)", TARGET=_request_target(latest))
    if len(latest.statuses) == 1:
        status = next(iter(latest.statuses))
        request += statements("assert response.status_code == STATUS", STATUS=status)
    request += statements("body = response.json()")
    if fields is None:
        checks = [s for path in _top_level(latest) for s in field_checks(path, latest)]
        named = [(f"test_get_{slug}_answers_with_its_fields", checks)]
    else:
        named = [(f"test_get_{slug}_has_{identifier(p)}", field_checks(p, latest)) for p in fields]
    cases = _unique([TestCase(name, tuple(request + checks)) for name, checks in named if checks])
    if fields is None and "{id}" in route:
        cases.append(_not_found_case(route, _request_target(latest), slug))
    return cases


def _unique(cases: list[TestCase]) -> list[TestCase]:
    """Keys that spell alike (``a-b``, ``a_b``) get numbered names; a name that is
    still no identifier is dropped."""
    seen: dict[str, int] = {}
    kept = []
    for case in cases:
        seen[case.name] = seen.get(case.name, 0) + 1
        name = case.name if seen[case.name] == 1 else f"{case.name}_{seen[case.name]}"
        if is_identifier(name):
            kept.append(TestCase(name, case.body))
    return kept


def field_checks(path: str, latest: Snapshot) -> list[ast.stmt]:
    """Presence, type and format assertions for one key path (at most one array level)."""
    located = _locate(path)
    if located is None:
        return []
    items, container, key = located
    value = expression("OBJECT[KEY]", OBJECT=container, KEY=key)
    checks = statements("assert KEY in OBJECT", KEY=key, OBJECT=container)
    kind = _isinstance_types(latest.types.get(path, set()))
    if kind:
        checks += statements(f"assert isinstance(VALUE, {kind})", VALUE=value)
    fmt = value_format(latest.samples.get(path, set()))
    if fmt == "date-time":
        checks += statements("assert datetime.fromisoformat(VALUE).tzinfo is not None", VALUE=value)
    elif fmt == "email":
        checks += statements(
            "assert re.fullmatch(PATTERN, VALUE)", PATTERN=_EMAIL_PATTERN, VALUE=value
        )
    if items is None:
        return checks
    (loop,) = statements("for item in ITEMS: pass", ITEMS=items)
    assert isinstance(loop, ast.For)
    loop.body = checks
    return [loop]


def _locate(path: str) -> tuple[ast.expr | None, ast.expr, str] | None:
    """(list to loop over or None, expression of the object, key) for a key path."""
    head, sep, tail = path.rpartition(".")
    key = tail.removesuffix("[]")
    if not key or tail.endswith("[]") or path.count("[]") > 1:
        return None
    parts = head.split(".") if sep else []
    if "[]" not in head:
        return None, _subscripts("body", parts), key
    index = next((i for i, p in enumerate(parts) if p.endswith("[]")), None)
    if index is None:  # a key that itself holds "[]": the key path cannot address it
        return None
    outer = [*parts[:index], parts[index].removesuffix("[]")]
    items = _subscripts("body", [p for p in outer if p])
    return items, _subscripts("item", parts[index + 1 :]), key


def _subscripts(root: str, keys: list[str]) -> ast.expr:
    """``root["a"]["b"]`` for keys a, b, each key a string literal."""
    node: ast.expr = ast.Name(root, ast.Load())
    for key in keys:
        node = expression("OBJECT[KEY]", OBJECT=node, KEY=key)
    return node


def _isinstance_types(types: set[str]) -> str | None:
    """The type (or tuple of types) an isinstance check takes, as our own source text."""
    names = sorted({PY_TYPES[t] for t in types if t in PY_TYPES})
    if "float" in names and "int" not in names:
        names.append("int")  # 20.0 may come back as 20
    if not names:
        return None
    if "null" in types:
        names.append("type(None)")
    return names[0] if len(names) == 1 else "(" + ", ".join(sorted(names)) + ")"


def _top_level(latest: Snapshot) -> list[str]:
    return sorted(p for p in latest.types if "." not in p and "[]" not in p)


def _not_found_case(route: str, target: str, slug: str) -> TestCase:
    path = urlsplit(target).path
    segments = path.split("/")
    template = route.split("/")
    missing = [
        ("999999999" if s.isdigit() else "zz-999999-missing") if t == "{id}" else s
        for s, t in zip(segments, template, strict=False)
    ]
    body = statements(
        "response = CLIENT.get(TARGET)\nassert response.status_code == 404",
        TARGET="/".join(missing),
    )
    return TestCase(f"test_get_{slug}_unknown_id_returns_404", tuple(body))


def _request_target(latest: Snapshot) -> str:
    """The recorded request to repeat: the simplest one (fewest query parameters)."""
    urls = sorted(latest.urls, key=lambda u: (len(urlsplit(u).query), len(u)))
    url = urlsplit(urls[0])
    return url.path + (f"?{url.query}" if url.query else "")


# -- rendering ------------------------------------------------------------------------


def _docstring(
    route: str, fields: list[str], changes: list[ApiChange], latest: Snapshot, url: str | None
) -> str:
    runs = sorted({c.since_run for c in changes} | {latest.run_id})
    builds = sorted({c.since_build for c in changes} | {latest.build} - {""})
    what = f"new field(s) {', '.join(fields)}" if fields else "a new route"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    where = f"against {url}" if url else "in this suite"
    return (
        f"Generated by testmem on {day} from runs {', '.join(runs)}"
        f"{' (builds ' + ', '.join(builds) + ')' if builds else ''}.\n\n"
        f"GET {route}: {what}. Every test here passed {where} when generated.\n"
        "Edit freely: `testmem generate` never overwrites this file.\n"
    )


def _file_name(route: str, fields: list[str]) -> str:
    name = f"test_get_{identifier(route)}"
    if fields:
        name += "_" + "_".join(identifier(f) for f in fields)[:60].rstrip("_")
    return name + ".py"


def _base_url(latest: Snapshot) -> str | None:
    for raw in latest.urls:
        url = urlsplit(raw)
        if url.scheme and url.netloc:
            return f"{url.scheme}://{url.netloc}"
    return None


# -- verifying and recording --------------------------------------------------------


def run_tests(test_file: Path, api_base_url: str | None) -> set[str]:
    """Run a test file with pytest in a subprocess, as the suite runs it (its
    configuration and conftest files): the names of the tests that passed."""
    with tempfile.TemporaryDirectory(prefix="testmem-generate-") as tmp:
        report = Path(tmp) / "report.xml"
        command = [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider"]
        command += [f"--junitxml={report}"]
        command += ["--api-base-url", api_base_url] if api_base_url else []
        try:
            subprocess.run(command, capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S)
            cases = list(ET.parse(report).getroot().iter("testcase"))
        except (OSError, subprocess.TimeoutExpired, ET.ParseError):
            return set()
    return {
        str(case.get("name"))
        for case in cases
        if not any(child.tag in ("failure", "error", "skipped") for child in case)
    }


def _record(
    store: Store, latest: Snapshot, changes: list[ApiChange], result: Generated, suite: Suite
) -> None:
    store.events.append(
        [
            Fact.of(
                "TestsGenerated",
                latest.run_id,
                route=result.route,
                method=result.method,
                path=str(result.path),
                tests=result.tests,
                fields=result.fields,
                changes=[c.describe() for c in changes],
                runs=sorted({c.since_run for c in changes} | {latest.run_id}),
                api_base_url=suite.url,
                fixture=suite.fixture,
            )
        ]
    )
