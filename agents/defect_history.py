"""What the log says about a defect's incident, for the report a person reads.

The exchange that explains a failure (view ``explaining``), the same request
answered in the last good build (for "what changed"), and how often the
incident was seen, per build and lately.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from testmem.memory.query import History

if TYPE_CHECKING:
    from testmem.memory.incidents import Incident

DIFF_LINES = 20  # lines of a body diff a report shows
RECENT = 3  # occurrences an update names

_LINKED = """
    SELECT l.failure_id, l.nodeid, l.occurred_at, r.build
    FROM facts l LEFT JOIN runs r USING (run_id)
    WHERE l.type = 'FailureLinked'
      AND (l.incident_id = $incident OR list_contains($signatures::VARCHAR[], l.signature))"""


def explaining_exchange(history: History, failure_id: str) -> dict[str, Any] | None:
    """The one exchange that explains the failure, if it made any request."""
    found = history.sql(
        """SELECT x.*, e.exchange_rule FROM explaining e JOIN exchanges x USING (exchange_id)
           WHERE e.failure_id = ?""",
        [failure_id],
    ).dicts()
    return found[0] if found else None


def first_failure(history: History, incident: Incident) -> str | None:
    """The incident's earliest failure: the one that shows what the first bad build did."""
    rows = history.sql(
        f"SELECT failure_id FROM ({_LINKED}) ORDER BY occurred_at LIMIT 1", _params(incident)
    ).rows
    return rows[0][0] if rows else None


def same_request_in(
    history: History, exchange: Mapping[str, Any], build: str | None
) -> dict[str, Any] | None:
    """The latest answer to the same request (method and URL) in a run of ``build``."""
    if not build:
        return None
    found = history.sql(
        """SELECT x.* FROM exchanges x JOIN runs r USING (run_id)
           WHERE r.build = ? AND x.method = ? AND x.url = ?
           ORDER BY x.occurred_at DESC LIMIT 1""",
        [build, exchange.get("method"), exchange.get("url")],
    ).dicts()
    return found[0] if found else None


def occurrences_per_build(history: History, incident: Incident) -> list[tuple[str, int]]:
    rows = history.sql(
        f"""SELECT coalesce(nullif(build, ''), '(no build)'), count(*) FROM ({_LINKED})
            GROUP BY 1 ORDER BY min(occurred_at)""",
        _params(incident),
    ).rows
    return [(str(build), int(n)) for build, n in rows]


def recent_occurrences(history: History, incident: Incident) -> list[dict[str, Any]]:
    return history.sql(
        f"SELECT nodeid, build, occurred_at FROM ({_LINKED}) "
        f"ORDER BY occurred_at DESC LIMIT {RECENT}",
        _params(incident),
    ).dicts()


def body_diff(before: str | None, after: str | None, limit: int = DIFF_LINES) -> list[str]:
    """The JSON bodies' differences, one line per key path (``-`` gone, ``+`` new,
    ``~`` changed), capped; bodies that are not JSON compare as one value."""
    old, new = _flat(before), _flat(after)
    lines = [f"- {k}: {old[k]}" for k in old if k not in new]
    lines += [f"+ {k}: {new[k]}" for k in new if k not in old]
    lines += [f"~ {k}: {old[k]} -> {new[k]}" for k in old if k in new and old[k] != new[k]]
    if len(lines) > limit:
        lines = [*lines[:limit], f"… {len(lines) - limit} more"]
    return lines


def _flat(body: str | None) -> dict[str, str]:
    try:
        value = json.loads(body) if body else None
    except ValueError:
        return {"(body)": _short(body)}
    flat: dict[str, str] = {}
    _walk(value, "", flat)
    return flat


def _walk(value: Any, path: str, flat: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else str(key), flat)
    elif isinstance(value, list) and value and len(flat) < 200:
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", flat)
    elif value is not None or path:
        flat[path or "(body)"] = _short(json.dumps(value))


def _short(text: str | None, width: int = 80) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _params(incident: Incident) -> dict[str, Any]:
    return {"incident": incident.incident_id, "signatures": list(incident.signatures)}
