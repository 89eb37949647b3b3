"""Incidents: the projection of the log's failures, links and human decisions.

Incidents are a projection of the log: ``FailureObserved`` + ``FailureLinked``
(written by `testmem.memory.matching`) + ``IncidentLabelled`` + ``IncidentsMerged`` +
``TestFinished`` (for resolution). Humans outweigh the model: a merged
incident's signatures resolve to the one it was merged into, and an incident
keeps the label a human gave it.

Matching lives in `testmem.memory.matching`, clustering in `testmem.memory.clustering`,
rebuilding the index in `testmem.memory.reindexing`; their names are re-exported
here for the callers that import them from this module.
"""

from __future__ import annotations

import builtins
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from testmem.memory.clustering import (
    Clustering,
    cluster_failures,
    cluster_messages,
    evaluation_clusters,
)
from testmem.memory.errors import NotFoundError
from testmem.memory.events import Fact
from testmem.memory.index import IndexUnavailable, SignatureIndex, SignatureRecord
from testmem.memory.matching import (
    DEFAULT_RELATED,
    DEFAULT_SAME,
    Candidate,
    IncidentError,
    IndexWarning,
    Known,
    Link,
    Matcher,
    failure_rows,
    find_failure,
    fingerprint_of,
    is_incident_id,
)
from testmem.memory.query import History
from testmem.memory.reindexing import Reindexed, reindex
from testmem.memory.store import Store

LABELS = ("product-bug", "flaky", "test-outdated", "infra")
# When an incident is resolved: after its last sighting, this many runs in
# which its tests ran and each passed, or failed for another incident (a test
# that met a regression and also expects something else still fails once the
# regression is fixed). The one definition: the weekly report reads it.
RESOLVED_AFTER_RUNS = 1


@dataclass
class Incident:
    incident_id: str
    status: str  # open | resolved | reopened
    label: str | None
    signatures: list[str]
    tests: list[str]
    routes: list[str]
    statuses: list[int]
    exception_type: str
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    first_bad_build: str | None
    last_good_build: str | None
    sample_message: str
    merged: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "status": self.status,
            "label": self.label,
            "occurrences": self.occurrences,
            "tests": len(self.tests),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "sample_message": self.sample_message,
        }


_OCCURRENCES_SQL = """
    SELECT l.signature, f.run_id, min(f.occurred_at) AS at, count(*) AS n,
           any_value(l.detail->>'$.related_incident') AS related
    FROM facts l JOIN failures f ON f.failure_id = l.failure_id
    WHERE l.type = 'FailureLinked' GROUP BY ALL"""
_SAMPLES_SQL = """
    SELECT l.signature, arg_min(split_part(f.message, chr(10), 1), f.occurred_at)
    FROM facts l JOIN failures f ON f.failure_id = l.failure_id
    WHERE l.type = 'FailureLinked' GROUP BY l.signature"""
_OUTCOMES_SQL = """
    SELECT r.nodeid, r.run_id, arg_max(r.outcome, r.attempt) AS outcome
    FROM results r WHERE r.nodeid IN (SELECT unnest(?::VARCHAR[]))
    GROUP BY ALL"""
_LINKED_SQL = """
    SELECT DISTINCT nodeid, run_id, signature FROM facts
    WHERE type = 'FailureLinked' AND nodeid IN (SELECT unnest(?::VARCHAR[]))"""
_PASSED = ("passed", "xfailed")


class Incidents:
    """The incidents projection, built from the log on demand."""

    def __init__(
        self,
        store: Store,
        resolve_after: int = RESOLVED_AFTER_RUNS,
        history: History | None = None,
    ) -> None:
        self.history = history or History(store)  # a caller's snapshot, e.g. triage's
        self.known = Known.load(self.history)
        self.resolve_after = resolve_after
        self._all: dict[str, Incident] | None = None

    def list(self, open_only: bool = False) -> builtins.list[Incident]:
        found = sorted(self._incidents().values(), key=lambda i: (i.last_seen, i.incident_id))
        found.reverse()
        return [i for i in found if not open_only or i.status != "resolved"]

    def get(self, incident_id: str) -> Incident:
        """An incident by id or unique prefix; a merged id gives the incident it joined."""
        wanted = incident_id.strip()
        matches = {i for i in self.known.incident_ids if i.startswith(wanted)} if wanted else set()
        exact = wanted if wanted in self.known.incident_ids else None
        if not exact and len(matches) != 1:
            problem = "is ambiguous" if matches else "is unknown"
            raise NotFoundError(f"incident {incident_id!r} {problem}")
        live = self.known.resolve(exact or matches.pop())
        return self._incidents()[live]

    def _incidents(self) -> dict[str, Incident]:
        if self._all is None:
            self._all = self._build()
        return self._all

    def _build(self) -> dict[str, Incident]:
        groups: dict[str, builtins.list[SignatureRecord]] = {}
        for signature in self.known.signatures:
            record = self.known.live_record(signature)
            groups.setdefault(record.incident_id, []).append(record)
        samples = dict(self.history.sql(_SAMPLES_SQL).rows)
        tests = [t for g in groups.values() for r in g for t in r.tests]
        runs = _Runs(self.history, tests, lambda s: self.known.live_record(s).incident_id)
        occurrences = self.history.sql(_OCCURRENCES_SQL).dicts()
        by_incident: dict[str, builtins.list[dict[str, Any]]] = {}
        for row in occurrences:
            live = self.known.live_record(row["signature"]).incident_id
            by_incident.setdefault(live, []).append(row)
        return {
            incident_id: self._incident(
                incident_id, records, by_incident.get(incident_id, []), samples, runs
            )
            for incident_id, records in groups.items()
        }

    def _incident(
        self,
        incident_id: str,
        records: builtins.list[SignatureRecord],
        occurrences: builtins.list[dict[str, Any]],
        samples: dict[str, str],
        runs: _Runs,
    ) -> Incident:
        records.sort(key=lambda r: (r.first_seen, r.signature))
        tests = sorted({t for r in records for t in r.tests})
        failed_runs = {o["run_id"] for o in occurrences}
        status, first_bad, last_good, timeline = runs.walk(
            incident_id, tests, failed_runs, self.resolve_after
        )
        merged = sorted(
            i
            for i in self.known.merged_into
            if self.known.resolve(i) == incident_id and i != incident_id
        )
        return Incident(
            incident_id=incident_id,
            status=status,
            label=self.known.label_of(incident_id),
            signatures=[r.signature for r in records],
            tests=tests,
            routes=sorted({r.route for r in records if r.route}),
            statuses=sorted({r.status for r in records if r.status}),
            exception_type=Counter(r.exception_type for r in records).most_common(1)[0][0],
            first_seen=min(r.first_seen for r in records),
            last_seen=max(r.last_seen for r in records),
            occurrences=sum(r.count for r in records),
            first_bad_build=first_bad,
            last_good_build=last_good,
            sample_message=(samples.get(records[0].signature) or "")[:300],
            merged=merged,
            related=sorted({o["related"] for o in occurrences if o["related"]}),
            timeline=timeline,
        )


class _Runs:
    """Runs in order with each test's final outcome, to tell when incidents resolve."""

    def __init__(self, history: History, tests: list[str], live: Callable[[str], str]) -> None:
        self.order: dict[str, tuple[int, datetime, str | None]] = {
            run_id: (i, started_at, build)
            for i, (run_id, started_at, build) in enumerate(
                history.sql(
                    "SELECT run_id, started_at, nullif(build, '') FROM runs ORDER BY started_at"
                ).rows
            )
        }
        self.outcomes: dict[str, dict[str, str]] = {}  # nodeid -> run_id -> outcome
        for nodeid, run_id, outcome in history.sql(_OUTCOMES_SQL, [sorted(set(tests))]).rows:
            self.outcomes.setdefault(nodeid, {})[run_id] = outcome
        self.joined: dict[tuple[str, str], set[str]] = {}  # (test, run) -> incidents it joined
        for nodeid, run_id, signature in history.sql(_LINKED_SQL, [sorted(set(tests))]).rows:
            self.joined.setdefault((nodeid, run_id), set()).add(live(signature))

    def walk(
        self, incident_id: str, tests: list[str], failed_runs: set[str], resolve_after: int
    ) -> tuple[str, str | None, str | None, list[dict[str, Any]]]:
        """Status, first bad and last good build, and the timeline of runs that matter."""
        status, streak = "open", 0
        first_bad = last_good = None
        timeline: list[dict[str, Any]] = []
        relevant = set(failed_runs).union(*(self.outcomes.get(t, {}) for t in tests))
        for run_id in sorted(relevant & self.order.keys(), key=lambda r: self.order[r][0]):
            _, started_at, build = self.order[run_id]
            ran = [(t, self.outcomes.get(t, {}).get(run_id)) for t in tests]
            ran = [(t, o) for t, o in ran if o not in (None, "skipped")]
            clean = bool(ran) and all(o in _PASSED for _, o in ran)
            gone = bool(ran) and all(
                o in _PASSED or self._elsewhere(t, run_id, incident_id) for t, o in ran
            )
            if run_id in failed_runs:
                first_bad = build if not timeline else first_bad
                status, streak = ("reopened" if status == "resolved" else status), 0
            elif clean and not timeline:  # before the first failure
                last_good = build
                continue
            elif gone and timeline:  # after a sighting: not seen again
                streak += 1
                status = "resolved" if streak >= resolve_after else status
            else:
                continue
            outcome = "failed" if run_id in failed_runs else "passed" if clean else "elsewhere"
            timeline.append(
                {"run_id": run_id, "at": started_at, "build": build, "outcome": outcome}
            )
        return status, first_bad, last_good, timeline

    def _elsewhere(self, nodeid: str, run_id: str, incident_id: str) -> bool:
        """Whether the test's failure in the run joined another incident (a
        failure not linked yet tells nothing: it may be this one)."""
        return bool(self.joined.get((nodeid, run_id), set()) - {incident_id})


# -- human feedback ------------------------------------------------------------


def label(store: Store, incident_id: str, label: str, by: str = "cli") -> Incident:
    """Label an incident (appends ``IncidentLabelled``); a label outweighs the model."""
    if label not in LABELS:
        raise IncidentError(f"unknown label {label!r} (choose from {', '.join(LABELS)})")
    incident = Incidents(store).get(incident_id)
    store.events.append(
        [Fact.of("IncidentLabelled", incident_id=incident.incident_id, label=label, by=by)]
    )
    incident.label = label
    return incident


def merge(store: Store, incident_id: str, into: str, by: str = "cli") -> Incident:
    """Merge one incident into another (appends ``IncidentsMerged``)."""
    incidents = Incidents(store)
    source, target = incidents.get(incident_id), incidents.get(into)
    if source.incident_id == target.incident_id:
        raise IncidentError(f"{incident_id} and {into} are already one incident")
    store.events.append(
        [Fact.of("IncidentsMerged", incident_id=source.incident_id, into=target.incident_id, by=by)]
    )
    _reindex_signatures(store, source.signatures)
    return Incidents(store).get(target.incident_id)


def _reindex_signatures(store: Store, signatures: list[str]) -> None:
    """Best effort: point the merged signatures' index records at their new incident."""
    index = SignatureIndex(store)
    if not index.exists():
        return
    known = Known.load(History(store))
    try:
        index.upsert([known.live_record(s) for s in signatures], {})
    except IndexUnavailable as exc:
        warnings.warn(f"testmem: {exc}; run `testmem reindex`", IndexWarning, stacklevel=3)


__all__ = [
    "DEFAULT_RELATED",
    "DEFAULT_SAME",
    "LABELS",
    "Candidate",
    "Clustering",
    "Incident",
    "IncidentError",
    "Incidents",
    "IndexWarning",
    "Known",
    "Link",
    "Matcher",
    "Reindexed",
    "cluster_failures",
    "cluster_messages",
    "evaluation_clusters",
    "failure_rows",
    "find_failure",
    "fingerprint_of",
    "is_incident_id",
    "label",
    "merge",
    "reindex",
]
