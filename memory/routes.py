"""Route templates: ``/users/42/orders`` → ``/users/{id}/orders``.

Four sources, the first that knows wins:

- ``framework``: the app ran in-process and said which route matched
  (Starlette and FastAPI put it in the ASGI scope: `scope_template`);
- ``openapi``: the path matches a path of the configured OpenAPI document
  (`OpenApiRoutes`, ini ``memory_openapi``);
- ``pattern``: id-like segments (numbers, uuids, hex, ULIDs, ``sku-123``,
  opaque tokens) become ``{id}`` (`route_template`);
- ``history``: where one method and prefix has seen many distinct values at
  one segment position (``/profiles/joe``, ``/profiles/ross``...), the position
  becomes ``{param}`` (`infer_templates`), provided the values lead on alike.
  More values never change a template once it has formed, so templates are
  stable across runs. A prefix serving five or more resources that are all
  leaves (``/api/users``, ``/api/orders``...) looks like a parameter too: the
  framework or an OpenAPI document is what tells them apart.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ID_SEGMENT = re.compile(
    r"""^(
        \d+                                             # 42
      | [0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}  # uuid
      | [0-9a-fA-F]{12,}                                # hex digests, object ids
      | [0-9A-HJKMNP-TV-Z]{26}                          # ULID
      | [A-Za-z]+[-_][0-9][\w-]*                        # sku-123, ord_9f8e
      | (?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}  # opaque tokens
    )$""",
    re.VERBOSE,
)
_PLACEHOLDER = re.compile(r"^\{[^/{}]*\}$")

# Distinct values one segment position must see before it becomes ``{param}``.
MIN_VALUES = 5


def route_template(path: str) -> str:
    """Replace the id-like segments of a URL path with ``{id}``."""
    segments = path.split("?", 1)[0].split("/")
    return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in segments) or "/"


def scope_template(scope: dict[str, Any] | None) -> str | None:
    """The matched route's path as Starlette/FastAPI left it in the scope,
    without its convertors (``{id:int}`` is the parameter ``{id}``)."""
    route = (scope or {}).get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    path = _CONVERTOR.sub(r"{\1}", path)
    return str(scope.get("root_path") or "") + path if scope else path


_CONVERTOR = re.compile(r"\{(\w+):[^}]*\}")


def url_rule_template(app: Any, method: str, path: str, script_name: str = "") -> str | None:
    """The rule a Flask (or any werkzeug ``url_map``) app matches for this
    request, as a template: ``/users/<int:id>`` is ``/users/{id}``."""
    url_map = getattr(app, "url_map", None)
    if url_map is None:
        return None
    try:
        rule, _ = url_map.bind("localhost", script_name=script_name or None).match(
            path, method, return_rule=True
        )
    except Exception:  # not found, wrong method, a redirect: no rule to name
        return None
    return script_name.rstrip("/") + _WERKZEUG_PARAMETER.sub(r"{\1}", rule.rule)


_WERKZEUG_PARAMETER = re.compile(r"<(?:[^:<>]+:)?(\w+)>")


class OpenApiRoutes:
    """The paths of an OpenAPI document, matched segment by segment."""

    def __init__(self, templates: Iterable[str]) -> None:
        # Most literal segments first: ``/users/me`` before ``/users/{id}``.
        parsed = [(t, t.strip("/").split("/")) for t in templates]
        self._templates = sorted(
            parsed, key=lambda p: -sum(not _PLACEHOLDER.match(s) for s in p[1])
        )

    @classmethod
    def load(cls, source: str) -> OpenApiRoutes:
        """From a JSON (or, with PyYAML installed, YAML) file, or an http(s) URL."""
        if source.startswith(("http://", "https://")):
            import httpx

            text = httpx.get(source, timeout=10).raise_for_status().text
        else:
            text = Path(source).read_text(encoding="utf-8")
        try:
            document = json.loads(text)
        except ValueError:
            import yaml

            document = yaml.safe_load(text)
        return cls(str(p) for p in (document.get("paths") or {}))

    def match(self, path: str) -> str | None:
        segments = path.split("?", 1)[0].strip("/").split("/")
        for template, parts in self._templates:
            if len(parts) == len(segments) and all(
                p == s or _PLACEHOLDER.match(p) for p, s in zip(parts, segments, strict=True)
            ):
                return template
        return None


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)  # the concrete paths ending here


def infer_templates(exchanges: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """For ``(method, route)`` pairs (routes as `route_template` made them),
    the template history gives each: ``{param}`` where a position has seen at
    least `MIN_VALUES` distinct values after one method and prefix."""
    roots: dict[str, _Node] = defaultdict(_Node)
    for method, route in exchanges:
        node = roots[method]
        for segment in route.strip("/").split("/"):
            node = node.children.setdefault(segment, _Node())
        node.paths.add(route)
    templates: dict[tuple[str, str], str] = {}
    for method, root in roots.items():
        for template, routes in _collapse(root, ""):
            templates.update({(method, r): template for r in routes})
    return templates


def _collapse(node: _Node, prefix: str) -> Iterable[tuple[str, set[str]]]:
    if node.paths:
        yield prefix or "/", set(node.paths)
    variable = [s for s in node.children if not _PLACEHOLDER.match(s)]
    if len(variable) >= MIN_VALUES and _alike(node.children[s] for s in variable):
        merged = _Node()
        for segment in variable:
            _merge(merged, node.children.pop(segment))
        _merge(node.children.setdefault("{param}", _Node()), merged)
    for segment, child in node.children.items():
        yield from _collapse(child, f"{prefix}/{segment}")


def _alike(nodes: Iterable[_Node]) -> bool:
    """Values of one parameter mostly lead on alike (``/profiles/joe``,
    ``/profiles/ross``, a few with ``/posts``); a collection's resources
    (``/api/users/{id}``, ``/api/health``...) each lead somewhere of their own."""
    shapes = Counter((bool(n.paths), frozenset(n.children)) for n in nodes)
    return shapes.most_common(1)[0][1] >= 0.75 * sum(shapes.values())


def _merge(into: _Node, other: _Node) -> None:
    into.paths |= other.paths
    for segment, child in other.children.items():
        _merge(into.children.setdefault(segment, _Node()), child)


@dataclass(frozen=True)
class KnownRoute:
    """A route as `testmem routes` lists it."""

    method: str
    template: str
    source: str  # framework|openapi|pattern|history
    values: int  # distinct concrete paths seen for it
    exchanges: int


def catalogue(exchanges: Iterable[tuple[str, str, str, str | None]]) -> list[KnownRoute]:
    """Every route of ``(method, path, route, route_source)`` exchanges, with
    where its template came from; ``pattern`` routes are templated further by
    history (`infer_templates`)."""
    rows = list(exchanges)
    inferred = infer_templates((m, r) for m, _, r, s in rows if (s or "pattern") == "pattern")
    paths: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    counts: Counter[tuple[str, str, str]] = Counter()
    for method, path, route, source in rows:
        source = source or "pattern"
        template = inferred.get((method, route), route) if source == "pattern" else route
        if template != route:
            source = "history"
        paths[method, template, source].add(path)
        counts[method, template, source] += 1
    return [
        KnownRoute(m, t, s, len(paths[m, t, s]), counts[m, t, s])
        for m, t, s in sorted(paths, key=lambda k: (k[1], k[0]))
    ]
