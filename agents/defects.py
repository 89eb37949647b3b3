"""The defect agent: one structured defect per incident, ever.

`DefectAgent.escalate` turns an incident into a `DefectReport` (a title that
names what broke, severity, summary, a reproduction — ``pytest NODEID``, and
curl of the request that explains the failure when there is one — expected
vs actual, what changed since the last good build, builds, occurrences,
tests and routes) and hands it to a sink. The first escalation of an
incident files the defect (a ``DefectFiled`` fact, which keeps its title and
builds for good); later ones add a comment when the incident was seen again
(``DefectUpdated``), summarised as occurrences per build and the last few.

"Already filed?" is read from the event log, inside a lock file under
``DIR/defects``, so concurrent triage processes never file twice. A triage
files all its defects in one `DefectAgent.session`: one lock and one read
of the log for all of them, what the session files remembered as it goes.

Nothing is lost: every action is written to the outbox (``DIR/defects/outbox``,
one file per pending action) *before* it is sent, and removed only after its
fact is in the log. A sink that fails leaves the action there with a warning;
`DefectAgent.flush` (``testmem defects flush``, and every later escalation of
the same incident) retries it. A create whose reference came back is never
sent again; a create that was sent but not acknowledged (timeout, crash) is
retried only after asking the sink for an issue carrying the defect's label.
The residual window: a tracker that acted but dropped the label (GitHub
drops labels the token may not create) and whose answer was lost can get a
second issue; and an update comment whose answer was lost may appear twice.

Severity rule: a 5xx answer counts 2 points, more than one test 1, more than
one route 1, and five or more tests or three or more routes 1 more; 0 points
is ``low``, 1 ``medium``, 2-3 ``high``, 4 or more ``critical``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testmem.agents.defect_history import (
    body_diff,
    explaining_exchange,
    first_failure,
    occurrences_per_build,
    recent_occurrences,
    same_request_in,
)
from testmem.agents.sinks import Sink, SinkError, checked_id, sink_from_config, write_atomically
from testmem.memory.errors import StoreError
from testmem.memory.events import Fact
from testmem.memory.markup import md_code, md_fence, md_text
from testmem.memory.query import History
from testmem.memory.redact import DEFAULT_REDACTOR, MASK, Redactor
from testmem.memory.store import Store

if TYPE_CHECKING:
    from testmem.memory.incidents import Incident

# Filing waits this long for another agent filing on the same store (a sink may be slow).
DEFECTS_LOCK_S = 300.0
SEVERITIES = ("low", "medium", "high", "critical")
_SEVERITY_BY_POINTS = ("low", "medium", "high", "high", "critical")
_ASSERTION = re.compile(r"^assert (?P<left>.+?) (?P<op>==|!=|<=|>=|<|>|not in|in) (?P<right>.+)$")
# Headers curl sets by itself, or that would only confuse a reproduction.
_CURL_SKIP = frozenset({"host", "content-length", "accept-encoding", "connection", "user-agent"})
_ENTRY = re.compile(r"^(create|update)-def-[0-9a-f]{12}\.json$")
# What a defect is, settled when it is filed (kept in ``DefectFiled``).
_FIXED_AT_FILING = ("title", "first_bad_build", "last_good_build")


class DefectWarning(UserWarning):
    """A defect could not be delivered now; it waits in the outbox."""


@dataclass(frozen=True)
class DefectReport:
    defect_id: str
    incident_id: str
    title: str
    severity: str
    summary: str
    reproduction: str | None
    expected: str
    actual: str
    response: str | None
    first_bad_build: str | None
    last_good_build: str | None
    occurrences: int
    first_seen: str
    last_seen: str
    tests: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    changed: str | None = None  # the same request in the last good build beside the first bad

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DefectReport:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_markdown(self) -> str:
        """Every value escaped for Markdown (`testmem.memory.markup`): text, code, fences."""
        lines = [
            f"# {md_text(self.title)}",
            "",
            f"**Defect** {md_text(self.defect_id)} · **incident** {md_text(self.incident_id)} · "
            f"**severity** {md_text(self.severity)} · **occurrences** {self.occurrences}",
            "",
            md_text(self.summary),
            "",
            "## Reproduction",
            "",
            md_fence(self.reproduction, "sh") if self.reproduction else "(no recorded request)",
            "",
            "## Expected vs actual",
            "",
            f"- expected: {md_code(self.expected)}",
            f"- actual: {md_code(self.actual)}",
        ]
        if self.response:
            lines += ["", md_fence(self.response)]
        if self.changed:
            lines += ["", "## What changed", "", md_fence(self.changed)]
        lines += [
            "",
            "## Builds",
            "",
            f"- first bad build: {md_text(self.first_bad_build or 'unknown')}",
            f"- last good build: {md_text(self.last_good_build or 'unknown')}",
            f"- first seen {md_text(self.first_seen)}, last seen {md_text(self.last_seen)}",
            "",
            "## Affected",
            "",
            *[f"- test {md_code(t)}" for t in self.tests],
            *[f"- route {md_code(r)}" for r in self.routes],
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DefectResult:
    defect_id: str
    reference: str | None
    created: bool
    pending: bool = False  # waiting in the outbox: the sink failed
    error: str | None = None


@dataclass(frozen=True)
class FlushResult:
    delivered: list[str]
    pending: int
    errors: list[str]


def defect_id_for(incident_id: str) -> str:
    """The defect id of an incident: derived, so every process agrees on it."""
    return "def-" + hashlib.sha256(incident_id.encode()).hexdigest()[:12]


def severity_of(incident: Incident) -> str:
    """Apply the severity rule of the module docstring."""
    tests, routes = len(set(incident.tests)), len(set(incident.routes))
    points = 2 if any(s >= 500 for s in incident.statuses if s) else 0
    points += (tests > 1) + (routes > 1) + (tests >= 5 or routes >= 3)
    return _SEVERITY_BY_POINTS[min(points, 4)]


def curl_command(exchange: Mapping[str, Any], redactor: Redactor = DEFAULT_REDACTOR) -> str:
    """The recorded request as a curl command line, secrets masked (again)."""
    headers = _headers(exchange.get("request_headers"))
    parts = ["curl", "-X", str(exchange.get("method") or "GET"), redactor.url(exchange["url"])]
    for name, value in headers.items():
        if name.lower() not in _CURL_SKIP:
            parts += ["-H", f"{name}: {MASK if redactor.secret_header(name) else value}"]
    body = exchange.get("request_body")
    note = ""
    if body and exchange.get("request_body_encoding", "utf-8") == "utf-8":
        content_type = headers.get("content-type", "")
        parts += ["--data-raw", redactor.body(body.encode(), content_type).decode()]
        if exchange.get("request_body_truncated"):
            note = f"  # body cut at {len(body)} of {exchange.get('request_body_size')} bytes"
    elif body:
        note = f"  # binary body of {exchange.get('request_body_size')} bytes not shown"
    return redactor.text(" ".join(shlex.quote(p) for p in parts)) + note


def _headers(raw: Any) -> dict[str, str]:
    try:
        headers = json.loads(raw or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}


class Outbox:
    """Pending sink actions, one JSON file each, written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, entry: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self._path(entry), json.dumps(entry, indent=2, default=str))

    def get(self, action: str, defect_id: str) -> dict[str, Any] | None:
        return self._read(self.directory / f"{action}-{checked_id(defect_id)}.json")

    def remove(self, entry: dict[str, Any]) -> None:
        self._path(entry).unlink(missing_ok=True)

    def entries(self) -> list[dict[str, Any]]:
        """Creates before updates, so a flush files a defect before commenting on it."""
        if not self.directory.is_dir():
            return []
        names = sorted(p.name for p in self.directory.iterdir() if _ENTRY.match(p.name))
        found = [self._read(self.directory / name) for name in names]
        return [entry for entry in found if entry is not None]

    def set_aside_damaged(self) -> list[str]:
        """Move every entry that is no action (unreadable, not JSON, no action or
        defect id: what `testmem doctor` calls damaged) to outbox/damaged/, kept
        for a person to look at; their names."""
        if not self.directory.is_dir():
            return []
        damaged = [p for p in sorted(self.directory.glob("*.json")) if not _is_entry(p)]
        if damaged:
            (self.directory / "damaged").mkdir(exist_ok=True)
        for path in damaged:
            path.replace(self.directory / "damaged" / path.name)
        return [p.name for p in damaged]

    def _path(self, entry: Mapping[str, Any]) -> Path:
        if entry["action"] not in ("create", "update"):
            raise SinkError(f"unknown outbox action {entry['action']!r}")
        return self.directory / f"{entry['action']}-{checked_id(entry['defect_id'])}.json"

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            warnings.warn(DefectWarning(f"unreadable outbox entry {path}: {exc}"), stacklevel=2)
            return None


def _is_entry(path: Path) -> bool:
    try:
        entry = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return (
        _ENTRY.match(path.name) is not None
        and isinstance(entry, dict)
        and entry.get("action") in ("create", "update")
        and isinstance(entry.get("defect_id"), str)
        and isinstance(entry.get("report"), dict)
    )


class DefectAgent:
    """Files one defect per incident through a sink, with an outbox for failures."""

    def __init__(
        self, store: Store, sink: Sink | None = None, redactor: Redactor = DEFAULT_REDACTOR
    ) -> None:
        self.store = store
        self.directory = store.subdir("defects")
        self.sink = sink or sink_from_config(self.directory)
        self.redactor = redactor
        self.outbox = Outbox(self.directory / "outbox")
        self._history: History | None = None  # the session's read of the log
        self._filed_now: dict[str, dict[str, Any]] = {}  # incident id -> what the session filed

    @contextmanager
    def session(self) -> Iterator[None]:
        """Escalations under one lock and one read of the log (a triage's
        defects): what the session files it remembers itself, and no other
        agent files meanwhile."""
        with self._locked():
            self._history, self._filed_now = History(self.store), {}
            try:
                yield
            finally:
                self._history.close()
                self._history, self._filed_now = None, {}

    def escalate(
        self, incident: Incident, evidence: Mapping[str, Any] | None = None
    ) -> DefectResult:
        """File the incident's defect, or comment on it if it recurred since."""
        evidence = dict(evidence or {})
        with self._reading() as history:
            filed = self._filed_now.get(incident.incident_id) or _filed(
                history, incident.incident_id
            )
            report = build_report(incident, history, evidence, self.redactor)
            if filed:
                return self._update(filed, report, evidence, _seen(history, incident))
            entry = self.outbox.get("create", report.defect_id) or _entry("create", report)
            entry.update(report=report.to_dict(), run_id=evidence.get("run_id", ""))
            self.outbox.put(entry)
            return self._deliver_create(entry)

    def flush(self) -> FlushResult:
        """Retry every pending action of the outbox."""
        delivered: list[str] = []
        errors: list[str] = []
        with self._locked():
            for name in self.outbox.set_aside_damaged():
                errors.append(f"{name}: damaged, moved to {self.outbox.directory / 'damaged'}")
            entries = self.outbox.entries()
            if not entries:  # nothing waits: no need to read the log
                return FlushResult(delivered, 0, errors)
            history = History(self.store)
            for entry in entries:
                result = self._retry(entry, history)
                if result is None:
                    continue
                if result.pending:
                    errors.append(f"{result.defect_id}: {result.error}")
                else:
                    delivered.append(result.defect_id)
        return FlushResult(delivered, len(self.outbox.entries()), errors)

    def _retry(self, entry: dict[str, Any], history: History) -> DefectResult | None:
        if entry["action"] == "create":
            if _filed(history, entry["incident_id"]):  # filed, but the entry outlived it
                self.outbox.remove(entry)
                return None
            return self._deliver_create(entry)
        if self.outbox.get("create", entry["defect_id"]):
            return None  # its defect is not filed yet
        return self._deliver_update(entry)

    def _update(
        self, filed: dict[str, Any], report: DefectReport, evidence: Mapping[str, Any], seen: str
    ) -> DefectResult:
        if report.occurrences <= filed["occurrences"]:
            pending = self.outbox.get("update", filed["defect_id"])
            if pending:
                return self._deliver_update(pending)
            return DefectResult(filed["defect_id"], filed["reference"], created=False)
        # What the defect is was settled at filing: a later failure of the
        # incident updates its counts, never its title, route or first bad build.
        report = replace(
            report, **{k: filed[k] for k in _FIXED_AT_FILING if filed.get(k) is not None}
        )
        entry = _entry("update", report)
        entry.update(
            defect_id=filed["defect_id"],
            reference=filed["reference"],
            run_id=evidence.get("run_id", ""),
            text=f"Seen again: {report.occurrences} occurrences in total. {seen}",
        )
        self.outbox.put(entry)  # a newer update replaces a pending older one
        return self._deliver_update(entry)

    def _deliver_create(self, entry: dict[str, Any]) -> DefectResult:
        report = DefectReport.from_dict(entry["report"])
        try:
            if not entry.get("reference"):
                sent_before = entry["attempts"] > 0
                entry["attempts"] += 1
                self.outbox.put(entry)  # an unanswered send is known on retry
                found = self.sink.find(report.defect_id) if sent_before else None
                entry["reference"] = found or self.sink.create(report)
                self.outbox.put(entry)  # acknowledged: never sent again
            self._append(entry, "DefectFiled", report, entry["reference"])
        except (SinkError, StoreError, OSError) as exc:
            return self._postponed(entry, exc)
        self.outbox.remove(entry)
        return DefectResult(report.defect_id, entry["reference"], created=True)

    def _deliver_update(self, entry: dict[str, Any]) -> DefectResult:
        report = DefectReport.from_dict(entry["report"])
        try:
            if not entry.get("sent"):
                entry["attempts"] += 1
                self.outbox.put(entry)
                self.sink.comment(entry["reference"], report, entry["text"])
                entry["sent"] = True
                self.outbox.put(entry)
            self._append(entry, "DefectUpdated", report, entry["reference"])
        except (SinkError, StoreError, OSError) as exc:
            return self._postponed(entry, exc)
        self.outbox.remove(entry)
        return DefectResult(entry["defect_id"], entry["reference"], created=False)

    def _append(
        self, entry: Mapping[str, Any], kind: str, report: DefectReport, reference: str
    ) -> None:
        detail: dict[str, Any] = {
            "defect_id": entry["defect_id"],
            "occurrences": report.occurrences,
        }
        if kind == "DefectFiled":
            detail |= {"sink": self.sink.name, "reference": reference}
            detail |= {"severity": report.severity}
            detail |= {k: getattr(report, k) for k in _FIXED_AT_FILING}
        fact = Fact.of(kind, entry.get("run_id", ""), incident_id=report.incident_id, **detail)
        self.store.events.append([fact])
        if self._history is not None:  # in a session: known without reading the log again
            before = self._filed_now.get(report.incident_id, {})
            self._filed_now[report.incident_id] = {**before, **detail}

    def _postponed(self, entry: dict[str, Any], exc: Exception) -> DefectResult:
        entry["last_error"] = str(exc)
        with suppress(OSError):  # the entry written before the send still holds the action
            self.outbox.put(entry)
        message = (
            f"defect {entry['defect_id']} waits in the outbox for `testmem defects flush` "
            f"or the next triage: {exc}"
        )
        warnings.warn(DefectWarning(message), stacklevel=3)
        return DefectResult(
            entry["defect_id"], entry.get("reference"), entry["action"] == "create", True, str(exc)
        )

    @contextmanager
    def _reading(self) -> Iterator[History]:
        """The log, read under the lock: the session's, else a read of its own."""
        if self._history is not None:
            yield self._history
            return
        with self._locked():
            history = History(self.store)
            try:
                yield history
            finally:
                history.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One defect agent at a time per store, across processes (and, for
        a store on object storage, across machines: a lease)."""
        with self.store.lock("defects", DEFECTS_LOCK_S, "cannot file defects"):
            yield


def _entry(action: str, report: DefectReport) -> dict[str, Any]:
    return {
        "action": action,
        "defect_id": report.defect_id,
        "incident_id": report.incident_id,
        "attempts": 0,
        "reference": None,
        "report": report.to_dict(),
    }


def _seen(history: History, incident: Incident) -> str:
    """Occurrences per build and the last few, for an update a person can read."""
    builds = ", ".join(
        f"{md_text(build)} {n}" for build, n in occurrences_per_build(history, incident)
    )
    recent = "; ".join(
        f"{md_code(r['nodeid'])} in {md_text(r['build'] or '(no build)')} "
        f"at {_when(r['occurred_at'])}"
        for r in recent_occurrences(history, incident)
    )
    return f"Per build: {builds}. Latest: {recent}."


# -- reading the log -----------------------------------------------------------


def _filed(history: History, incident_id: str) -> dict[str, Any] | None:
    """The incident's defect as the log knows it, with its latest occurrence count."""
    rows = history.sql(
        """SELECT detail->>'$.defect_id' AS defect_id, detail->>'$.reference' AS reference,
                  type, CAST(detail->>'$.occurrences' AS INTEGER) AS occurrences,
                  detail->>'$.title' AS title, detail->>'$.first_bad_build' AS first_bad_build,
                  detail->>'$.last_good_build' AS last_good_build
           FROM facts WHERE type IN ('DefectFiled', 'DefectUpdated') AND incident_id = ?
           ORDER BY occurred_at""",
        [incident_id],
    ).dicts()
    filed = [r for r in rows if r["type"] == "DefectFiled"]
    if not filed:
        return None
    occurrences = max((r["occurrences"] or 0) for r in rows)
    return {**filed[0], "occurrences": occurrences}


def defects(store: Store) -> list[dict[str, Any]]:
    """Every defect: filed ones from the log, then those still in the outbox."""
    rows = (
        History(store)
        .sql(
            """WITH filed AS (
               SELECT detail->>'$.defect_id' AS defect_id, arg_min(incident_id, occurred_at)
                      AS incident_id, arg_min(detail, occurred_at) AS detail,
                      min(occurred_at) AS filed_at
               FROM facts WHERE type = 'DefectFiled' GROUP BY 1
           ), counts AS (
               SELECT detail->>'$.defect_id' AS defect_id,
                      max(CAST(detail->>'$.occurrences' AS INTEGER)) AS occurrences
               FROM facts WHERE type IN ('DefectFiled', 'DefectUpdated') GROUP BY 1
           )
           SELECT defect_id, incident_id, detail->>'$.title' AS title,
                  detail->>'$.severity' AS severity, detail->>'$.sink' AS sink,
                  detail->>'$.reference' AS reference, occurrences, 'filed' AS status, filed_at
           FROM filed LEFT JOIN counts USING (defect_id) ORDER BY filed_at"""
        )
        .dicts()
    )
    filed = {row["defect_id"] for row in rows}
    return rows + [_pending_row(e) for e in _outbox_of(store) if e["defect_id"] not in filed]


def _outbox_of(store: Store) -> list[dict[str, Any]]:
    return [
        e for e in Outbox(store.root / "defects" / "outbox").entries() if e["action"] == "create"
    ]


def _pending_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    report = entry["report"]
    return {
        "defect_id": entry["defect_id"],
        "incident_id": entry["incident_id"],
        "title": report["title"],
        "severity": report["severity"],
        "sink": None,
        "reference": entry.get("reference"),
        "occurrences": report["occurrences"],
        "status": "pending",
        "filed_at": None,
    }


def _failure(history: History, incident: Incident, failure_id: str | None) -> dict[str, Any] | None:
    """The failure to report: the one named by the evidence, else the incident's latest."""
    if failure_id is None:  # by signature too: merged incidents keep their links
        linked = history.sql(
            """SELECT failure_id FROM facts WHERE type = 'FailureLinked'
                   AND (incident_id = ? OR list_contains(?::VARCHAR[], signature))
               ORDER BY occurred_at DESC LIMIT 1""",
            [incident.incident_id, list(incident.signatures)],
        ).rows
        failure_id = linked[0][0] if linked else None
    if failure_id is None:
        return None
    found = history.sql("SELECT * FROM failures WHERE failure_id = ?", [failure_id]).dicts()
    return found[0] if found else None


def _exchange(history: History, failure: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The exchange that explains the failure (view ``explaining``); for a log
    without that, its last error answer, else its last request."""
    explained = explaining_exchange(history, failure["failure_id"]) if failure else None
    if explained:
        return explained
    ids = list((failure or {}).get("exchange_ids") or [])
    if not ids:
        return None
    found = history.sql(
        "SELECT * FROM exchanges WHERE list_contains(?, exchange_id) ORDER BY occurred_at",
        [ids],
    ).dicts()
    failing = [x for x in found if (x["status"] or 0) >= 400 or x["error"]]
    chosen = failing or found
    return chosen[-1] if chosen else None


# -- building the report -------------------------------------------------------


def build_report(
    incident: Incident,
    history: History,
    evidence: Mapping[str, Any],
    redactor: Redactor = DEFAULT_REDACTOR,
) -> DefectReport:
    """The defect report of an incident, from its latest (or given) failure."""
    failure = _failure(history, incident, evidence.get("failure_id"))
    exchange = _exchange(history, failure)
    expected, actual = _expected_actual(failure, exchange, incident)
    clean = redactor.text
    return DefectReport(
        defect_id=defect_id_for(incident.incident_id),
        incident_id=incident.incident_id,
        title=clean(_title(incident, failure, exchange, expected, actual)),
        severity=severity_of(incident),
        summary=clean(_summary(incident, evidence)),
        reproduction=_reproduction(failure, exchange, redactor),
        expected=clean(expected),
        actual=clean(actual),
        response=clean(_response(exchange, redactor) or "") if exchange else None,
        first_bad_build=incident.first_bad_build,
        last_good_build=incident.last_good_build,
        occurrences=int(incident.occurrences),
        first_seen=_when(incident.first_seen),
        last_seen=_when(incident.last_seen),
        tests=sorted(set(incident.tests)),
        routes=sorted(set(incident.routes)),
        signatures=sorted(set(incident.signatures)),
        changed=clean(_what_changed(history, incident, redactor) or "") or None,
    )


def _expected_actual(
    failure: Mapping[str, Any] | None, exchange: Mapping[str, Any] | None, incident: Incident
) -> tuple[str, str]:
    """From the assertion ``assert <actual> == <expected>`` (pytest's usual order)."""
    text = (failure or {}).get("assertion") or (failure or {}).get("message") or ""
    text = text or incident.sample_message or ""
    first = text.splitlines()[0] if text else ""
    match = _ASSERTION.match(first)
    status = f"HTTP {exchange['status']}" if exchange and exchange.get("status") else None
    if match and match["op"] == "==":
        return match["right"], match["left"] + (f" ({status})" if status else "")
    expected = first if first.startswith("assert ") else "the test passes"
    exception = (failure or {}).get("exception_type") or incident.exception_type
    actual = status or f"{exception}: {first}".strip(": ")
    return expected, actual


def _title(
    incident: Incident,
    failure: Mapping[str, Any] | None,
    exchange: Mapping[str, Any] | None,
    expected: str,
    actual: str,
) -> str:
    """What broke, in a line: ``GET /orders/{id} answers 500 since v1.6.0``,
    ``GET /users/{id}: field 'phone' missing``, ``GET /users answers 200, expected 201``."""
    if exchange:
        title = _request_title(incident, failure, exchange, expected)
    else:
        first = (incident.sample_message or "").splitlines()[:1]
        title = f"{incident.exception_type or 'Failure'}: {first[0] if first else actual}"
    return title if len(title) <= 120 else title[:119] + "…"


def _request_title(
    incident: Incident,
    failure: Mapping[str, Any] | None,
    exchange: Mapping[str, Any],
    expected: str,
) -> str:
    where = f"{exchange.get('method')} {exchange.get('route') or exchange.get('url')}"
    status = exchange.get("status")
    since = f" since {incident.first_bad_build}" if incident.first_bad_build else ""
    if exchange.get("error"):
        return f"{where} fails: {exchange['error']}{since}"
    if status and status >= 500:
        return f"{where} answers {status}{since}"
    missing = _missing_key(failure)
    if missing:
        return f"{where}: field {missing!r} missing{since}"
    if expected.isdigit() and str(status) != expected:
        return f"{where} answers {status}, expected {expected}{since}"
    return f"{where} answers {status}: {_first_line(failure, incident)}"


def _missing_key(failure: Mapping[str, Any] | None) -> str | None:
    """The key of a ``KeyError`` the test met reading a body."""
    if not failure or failure.get("exception_type") != "KeyError":
        return None
    match = re.match(r"^(?:KeyError: )?'([^']{1,80})'$", _first_line(failure, None))
    return match[1] if match else None


def _first_line(failure: Mapping[str, Any] | None, incident: Incident | None) -> str:
    text = (failure or {}).get("message") or (incident.sample_message if incident else "") or ""
    return text.splitlines()[0] if text else ""


def _reproduction(
    failure: Mapping[str, Any] | None, exchange: Mapping[str, Any] | None, redactor: Redactor
) -> str | None:
    """The test to run, and the request to send by hand when there was one."""
    lines = (
        [f"pytest {shlex.quote(failure['nodeid'])}"] if failure and failure.get("nodeid") else []
    )
    if exchange:
        lines.append(curl_command(exchange, redactor))
    return "\n".join(lines) or None


def _what_changed(history: History, incident: Incident, redactor: Redactor) -> str | None:
    """The first bad build's answer beside the same request's in the last good build."""
    first = first_failure(history, incident)
    bad = explaining_exchange(history, first) if first else None
    good = same_request_in(history, bad, incident.last_good_build) if bad else None
    if not (bad and good):
        return None
    lines = [
        f"{bad.get('method')} {redactor.url(bad['url'])}",
        f"last good build {incident.last_good_build}: HTTP {good.get('status')}",
        f"first bad build {incident.first_bad_build}: HTTP {bad.get('status')}",
    ]
    diff = body_diff(_body_text(good, redactor), _body_text(bad, redactor))
    return "\n".join(lines + (["body:", *diff] if diff else ["body: the same"]))


def _body_text(exchange: Mapping[str, Any], redactor: Redactor) -> str | None:
    if exchange.get("response_body_encoding") == "base64" or not exchange.get("response_body"):
        return None
    content_type = _headers(exchange.get("response_headers")).get("content-type", "")
    body = str(exchange["response_body"]).encode()
    return redactor.body(body, content_type).decode(errors="replace")


def _summary(incident: Incident, evidence: Mapping[str, Any]) -> str:
    tests, routes = len(set(incident.tests)), len(set(incident.routes))
    since = f" since build {incident.first_bad_build}" if incident.first_bad_build else ""
    text = (
        f"{incident.occurrences} occurrence(s) of {incident.exception_type or 'a failure'} in "
        f"{tests} test(s) over {routes} route(s){since}, first seen {_when(incident.first_seen)}."
    )
    reason = evidence.get("reason")
    return f"{text} Triage: {reason}" if reason else text


def _response(exchange: Mapping[str, Any], redactor: Redactor) -> str | None:
    """The answer's status and the head of its body, secrets masked."""
    if exchange.get("error"):
        return str(exchange["error"])
    body = exchange.get("response_body") or ""
    if exchange.get("response_body_encoding") == "base64":
        body = f"({exchange.get('response_body_size')} bytes of binary)"
    else:
        content_type = _headers(exchange.get("response_headers")).get("content-type", "")
        body = redactor.body(body.encode(), content_type).decode(errors="replace")
    return f"HTTP {exchange.get('status')}\n{body[:1000]}"


def _when(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")
