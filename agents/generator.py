"""The generator: new tests for what the API started answering.

When a GET route gains a field, or a new GET route appears (`agents.schema`),
it writes pytest tests in the suite's style — one request through
``api_client``, the status, then presence, type and format checks (ISO
timestamps, e-mail addresses), and for routes with ids an unknown id → 404 —
runs them against the live API in a pytest subprocess, keeps the ones that
pass, writes them under ``tests/generated/`` and appends ``TestsGenerated``.
A file that exists is never overwritten.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from agents.schema import (
    ADDED,
    NEW_ROUTE,
    ApiChange,
    Snapshot,
    detect_changes,
    snapshots,
    value_format,
)
from memory.events import Fact
from memory.query import History
from memory.store import Store

DEFAULT_OUT = Path("tests/generated")
VERIFY_TIMEOUT_S = 300
_PY_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "object": "dict",
    "array": "list",
}
_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"

Verifier = Callable[[Path, str], set[str]]  # (test file, API URL) -> names that passed


@dataclass(frozen=True)
class TestCase:
    __test__ = False
    name: str
    body: list[str]  # lines of the function body, unindented
    imports: frozenset[str] = frozenset()


@dataclass
class Generated:
    """What came of one route: a file of tests that passed, or why none."""

    route: str
    method: str
    fields: list[str]
    path: Path | None = None
    tests: list[str] = field(default_factory=list)
    reason: str = ""


def generate_tests(
    store: Store,
    history: History,
    out: Path = DEFAULT_OUT,
    api_base_url: str | None = None,
    min_observations: int = 1,
    verify: Verifier | None = None,
) -> list[Generated]:
    """Write tests for every new GET field or route not covered before."""
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
        url = api_base_url or _base_url(latest)
        result = _generate_route(route, fields, route_changes, latest, out, url, verify)
        if result.path:
            _record(store, latest, route_changes, result, url)
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
    route: str,
    fields: list[str],
    changes: list[ApiChange],
    latest: Snapshot,
    out: Path,
    url: str | None,
    verify: Verifier | None,
) -> Generated:
    result = Generated(route, "GET", fields)
    is_new_route = any(c.kind == NEW_ROUTE for c in changes)
    cases = test_cases(route, latest, None if is_new_route else fields)
    target = out / _file_name(route, fields)
    if not cases:
        result.reason = "nothing to check in its answers"
    elif target.exists():
        result.reason = f"{target} exists (never overwritten)"
    elif not url:
        result.reason = "no API base URL: pass --api-base-url"
    else:
        header = _header(route, fields, changes, latest, url)
        passed = _keep_passing(cases, header, url, verify or run_tests)
        if passed:
            out.mkdir(parents=True, exist_ok=True)
            target.write_text(render(header, passed), encoding="utf-8")
            result.path, result.tests = target, [c.name for c in passed]
        else:
            result.reason = f"no generated test passed against {url}"
    return result


def _keep_passing(cases: list[TestCase], header: str, url: str, verify: Verifier) -> list[TestCase]:
    """The cases that pass against the live API, checked again once together."""
    with tempfile.TemporaryDirectory(prefix="testmem-generate-") as tmp:
        candidate = Path(tmp) / "test_candidate.py"
        candidate.write_text(render(header, cases), encoding="utf-8")
        passed = verify(candidate, url)
        kept = [c for c in cases if c.name in passed]
        if kept and len(kept) < len(cases):
            candidate.write_text(render(header, kept), encoding="utf-8")
            if verify(candidate, url) != {c.name for c in kept}:
                return []
        return kept


# -- test cases ---------------------------------------------------------------------


def test_cases(route: str, latest: Snapshot, fields: list[str] | None) -> list[TestCase]:
    """One test per new field in ``fields``; for a new route (``fields`` None),
    one test of all its top-level fields and, with ids, a not-found check."""
    target = _request_target(latest)
    slug = _identifier(route)
    request = [f"response = api_client.get({json.dumps(target)})"]
    if len(latest.statuses) == 1:
        request.append(f"assert response.status_code == {next(iter(latest.statuses))}")
    request.append("body = response.json()")
    if fields is None:
        checks = [line for path in _top_level(latest) for line in field_checks(path, latest)]
        named = [(f"test_get_{slug}_answers_with_its_fields", checks)] if checks else []
    else:
        named = [(f"test_get_{slug}_has_{_identifier(p)}", field_checks(p, latest)) for p in fields]
    cases = [TestCase(name, request + checks, _imports(checks)) for name, checks in named if checks]
    if fields is None and "{id}" in route:
        cases.append(_not_found_case(route, target, slug))
    return cases


def field_checks(path: str, latest: Snapshot) -> list[str]:
    """Presence, type and format assertions for one key path (at most one array level)."""
    located = _locate(path)
    if located is None:
        return []
    items, container, key = located
    value = f"{container}[{json.dumps(key)}]"
    lines = [f"assert {json.dumps(key)} in {container}"]
    kind = _isinstance_types(latest.types.get(path, set()))
    if kind:
        lines.append(f"assert isinstance({value}, {kind})")
    fmt = value_format(latest.samples.get(path, set()))
    if fmt == "date-time":
        lines.append(f"assert datetime.fromisoformat({value}).tzinfo is not None")
    elif fmt == "email":
        lines.append(f"assert re.fullmatch(r{json.dumps(_EMAIL_PATTERN)}, {value})")
    if items is None:
        return lines
    return [f"for item in {items}:", *(f"    {line}" for line in lines)]


def _locate(path: str) -> tuple[str | None, str, str] | None:
    """(list to loop over or None, expression of the object, key) for a key path."""
    head, sep, tail = path.rpartition(".")
    key = tail.removesuffix("[]")
    if not key or tail.endswith("[]") or path.count("[]") > 1:
        return None
    parts = head.split(".") if sep else []
    if "[]" not in head:
        return None, _expression("body", parts), key
    index = next(i for i, p in enumerate(parts) if p.endswith("[]"))
    outer = [*parts[:index], parts[index].removesuffix("[]")]
    items = _expression("body", [p for p in outer if p])
    return items, _expression("item", parts[index + 1 :]), key


def _expression(root: str, keys: list[str]) -> str:
    return root + "".join(f"[{json.dumps(k)}]" for k in keys)


def _isinstance_types(types: set[str]) -> str | None:
    names = sorted({_PY_TYPES[t] for t in types if t in _PY_TYPES})
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
    body = [
        f"response = api_client.get({json.dumps('/'.join(missing))})",
        "assert response.status_code == 404",
    ]
    return TestCase(f"test_get_{slug}_unknown_id_returns_404", body)


def _request_target(latest: Snapshot) -> str:
    """The recorded request to repeat: the simplest one (fewest query parameters)."""
    urls = sorted(latest.urls, key=lambda u: (len(urlsplit(u).query), len(u)))
    url = urlsplit(urls[0])
    return url.path + (f"?{url.query}" if url.query else "")


def _identifier(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"\W", "_", text.replace("{id}", "id"))).strip("_").lower()


def _imports(lines: list[str]) -> frozenset[str]:
    return frozenset(m for m in ("datetime", "re") if any(f"{m}." in line for line in lines))


# -- rendering ------------------------------------------------------------------------


def render(header: str, cases: list[TestCase]) -> str:
    imports = set().union(*(c.imports for c in cases))
    stdlib = (["import re"] if "re" in imports else []) + (
        ["from datetime import datetime"] if "datetime" in imports else []
    )
    lines = [header, "", "from __future__ import annotations", ""]
    lines += [*stdlib, ""] if stdlib else []
    lines += ["import httpx", ""]
    for case in cases:
        lines += ["", f"def {case.name}(api_client: httpx.Client) -> None:"]
        lines += [f"    {line}" for line in case.body]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _header(
    route: str, fields: list[str], changes: list[ApiChange], latest: Snapshot, url: str
) -> str:
    runs = sorted({c.since_run for c in changes} | {latest.run_id})
    builds = sorted({c.since_build for c in changes} | {latest.build} - {""})
    what = f"new field(s) {', '.join(fields)}" if fields else "a new route"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return (
        f'"""Generated by testmem on {day} from runs {", ".join(runs)}'
        f"{' (builds ' + ', '.join(builds) + ')' if builds else ''}.\n\n"
        f"GET {route}: {what}. Every test here passed against {url} when generated.\n"
        'Edit freely: `testmem generate` never overwrites this file.\n"""'
    )


def _file_name(route: str, fields: list[str]) -> str:
    name = f"test_get_{_identifier(route)}"
    if fields:
        name += "_" + "_".join(_identifier(f) for f in fields)[:60].rstrip("_")
    return name + ".py"


def _base_url(latest: Snapshot) -> str | None:
    for raw in latest.urls:
        url = urlsplit(raw)
        if url.scheme and url.netloc:
            return f"{url.scheme}://{url.netloc}"
    return None


# -- verifying and recording --------------------------------------------------------


def run_tests(test_file: Path, api_base_url: str) -> set[str]:
    """Run a test file with pytest in a subprocess: the names of the tests that passed."""
    folder = test_file.parent
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # no outer config
    report = folder / "report.xml"
    command = [sys.executable, "-m", "pytest", test_file.name, "-q", "-p", "no:cacheprovider"]
    command += ["--api-base-url", api_base_url, f"--junitxml={report}"]
    try:
        subprocess.run(
            command, cwd=folder, capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S
        )
        cases = ET.parse(report).getroot().iter("testcase")
    except (OSError, subprocess.TimeoutExpired, ET.ParseError):
        return set()
    return {
        str(case.get("name"))
        for case in cases
        if not any(child.tag in ("failure", "error", "skipped") for child in case)
    }


def _record(
    store: Store, latest: Snapshot, changes: list[ApiChange], result: Generated, url: str | None
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
                api_base_url=url,
            )
        ]
    )
