"""Matching each failure to past ones: signature, then template, then embedding.

A failure is linked to an incident in three stages. Its signature (see
`testmem.memory.fingerprint`) was seen before → the same incident, no model involved.
Else its template (`testmem.memory.templates`, mined across the failures of one
structure: exception type, status, request, kind of check and names) already
belongs to an incident → that incident: the failure differs from it only in
values. Else, if it is a failure whose wording a model can judge (an exception,
a status, a request), candidates are scored: its embedding's nearest
signatures in the Chroma index, and the signatures that failed with the same
error status on the same route, each by cosine similarity, plus agreement of
structure (same test, route, status, exception type, kind of check, keys),
minus a decay for candidates not seen for a long time. At or above ``same``
it joins the best candidate's incident; at or above ``related`` it opens a
new incident that records the related one; below, a new incident. A
candidate of the same template shape whose constant words differ is never
the same cause (``VM Started`` / ``VM Paused``), however close it reads.

Between the signature and the template stage, a failure whose caller named
its cause (`Matcher.link_run`: triage names an API change or a server error
behind it) joins the incident that cause's first failure got, however it is
worded (link method ``cause``). A server error is named by what its body
says (`testmem.memory.causes`), and a failure of one server error never joins
an incident of another: one test's ``assert 500 == 200`` on one route can be
two regressions, so a known signature whose incident is another server
error's gets a signature of its own for this one (`Matcher._apart`).

Every link is a ``FailureLinked`` fact with its template and candidates, and
every template that generalises a ``TemplateGeneralised`` fact, so any match
can be explained. A template's incident is the one its first failure was
linked to, so a template that generalises moves no incident: past failures
keep their links, later ones join the oldest template's incident.

Humans outweigh the model: a merged incident's signatures resolve to the one
it was merged into.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from testmem.memory.causes import is_server_error_cause
from testmem.memory.errors import NotFoundError, TestmemError
from testmem.memory.events import Fact
from testmem.memory.failure_templates import Placed, Templates, is_failure
from testmem.memory.fingerprint import Fingerprint, fingerprint, structure_score
from testmem.memory.index import IndexUnavailable, SignatureIndex, SignatureRecord
from testmem.memory.query import History
from testmem.memory.store import Store
from testmem.memory.templates import Generalised

if TYPE_CHECKING:
    import numpy as np

    from testmem.memory.embed import Embedder

DEFAULT_SAME = 0.83  # inside the 0.80-0.85 plateau of bench/eval_matching.py (BENCHMARKS.md)
DEFAULT_RELATED = 0.70  # a new incident still worth pointing at
INCIDENT_ID = re.compile(r"^INC-[0-9a-f]{8,16}$")
CauseOf = Callable[[dict[str, Any]], "str | None"]  # a failure row -> its cause's name, if known


class IncidentError(TestmemError):
    """A label or merge that cannot be applied."""


class IndexWarning(UserWarning):
    """Similarity matching is off until `testmem reindex` repairs the index."""


def is_incident_id(text: str) -> bool:
    """Whether ``text`` has the shape of an incident id (safe in a file name)."""
    return bool(INCIDENT_ID.match(text))


# -- links -------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A past incident considered for a failure, and why it scored as it did."""

    incident_id: str
    signature: str
    score: float
    cosine: float
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "signature": self.signature,
            "score": round(self.score, 4),
            "cosine": round(self.cosine, 4),
            "why": self.why,
        }


@dataclass(frozen=True)
class Link:
    """The decision for one failure: which incident, by which method, how sure."""

    failure_id: str
    incident_id: str
    signature: str
    method: str  # signature | cause | template | similar | new | label (a human merge decided)
    score: float
    is_new: bool
    related_incident: str | None
    candidates: list[Candidate]
    template_id: str | None = None  # the template the failure first joined or created
    cause: str | None = None  # what the caller named the failure's cause (`Matcher.link_run`)

    def fact(self, run_id: str, nodeid: str | None, fp: Fingerprint) -> Fact:
        """The ``FailureLinked`` fact, with the structure the match compared."""
        return Fact.of(
            "FailureLinked",
            run_id,
            failure_id=self.failure_id,
            incident_id=self.incident_id,
            signature=self.signature,
            nodeid=nodeid,
            method=self.method,
            score=round(self.score, 4),
            is_new=self.is_new,
            related_incident=self.related_incident,
            candidates=[c.as_dict() for c in self.candidates],
            template_id=self.template_id,
            cause=self.cause,
            route=fp.route,
            status=fp.status,
            http_method=fp.method,
            exception_type=fp.exception_type,
            keys=list(fp.keys),
            kind=fp.kind,
        )


# A candidate not seen for a long time loses up to this much, half of it after
# HALF_LIFE_DAYS: an old incident is less likely to be today's cause.
MAX_DECAY = 0.05
HALF_LIFE_DAYS = 30.0


def score(cosine: float, new: Fingerprint, old: SignatureRecord, at: datetime) -> tuple[float, str]:
    """A candidate's score and the reasons, for a failure seen at ``at``: cosine,
    plus what structure says (`testmem.memory.fingerprint.structure_score`), minus age."""
    theirs = _as_fingerprint(old, new.test)
    value = cosine + structure_score(new, theirs)
    why = [f"cosine {cosine:.3f}", *_agreements(new, theirs)]
    age_days = max((at - old.last_seen).total_seconds() / 86400, 0.0)
    decay = MAX_DECAY * (1 - 0.5 ** (age_days / HALF_LIFE_DAYS))
    if decay >= 0.005:
        value, why = value - decay, [*why, f"last seen {age_days:.0f} days ago"]
    return max(value, 0.0), "; ".join(why)


def _as_fingerprint(record: SignatureRecord, test: str | None) -> Fingerprint:
    tests = _tests(record)
    return Fingerprint(
        signature=record.signature,
        text="",
        exception_type=record.exception_type,
        status=record.status,
        method=record.method or None,
        route=record.route or None,
        test=test if test in tests else (tests[0] if tests else None),
        frames=(),
        keys=record.keys,
        kind=record.kind,
    )


def _agreements(new: Fingerprint, old: Fingerprint) -> list[str]:
    """Which known parts agree, for a person reading why a candidate scored so."""
    parts = []
    for what in ("status", "method", "route", "exception_type", "kind", "test"):
        mine, theirs = getattr(new, what), getattr(old, what)
        if mine and theirs:
            parts.append(f"{'same' if mine == theirs else 'other'} {what.replace('_', ' ')}")
    if new.keys and old.keys and set(new.keys) != set(old.keys):
        parts.append("other keys")
    return parts


def _tests(record: SignatureRecord) -> tuple[str, ...]:
    return tuple(t.split("[", 1)[0] for t in record.tests)


# -- what the log knows --------------------------------------------------------

# Structure comes from the fingerprint each link recorded, so the index and
# the matcher compare like with like whatever the failure's exchanges were.
_SIGNATURES_SQL = """
    SELECT l.signature, arg_min(l.incident_id, l.occurred_at) AS incident_id,
           list(DISTINCT l.nodeid ORDER BY l.nodeid) AS tests,
           arg_min(coalesce(l.detail->>'$.route', ''), l.occurred_at) AS route,
           arg_min(TRY_CAST(l.detail->>'$.status' AS INTEGER), l.occurred_at) AS status,
           arg_min(coalesce(l.detail->>'$.exception_type', ''), l.occurred_at)
               AS exception_type,
           arg_min(coalesce(l.detail->>'$.http_method', ''), l.occurred_at) AS method,
           min(coalesce(f.occurred_at, l.occurred_at)) AS first_seen,
           max(coalesce(f.occurred_at, l.occurred_at)) AS last_seen,
           count(*) AS count,
           arg_min(coalesce(l.detail->>'$.keys', '[]'), l.occurred_at) AS keys,
           arg_min(coalesce(l.detail->>'$.kind', ''), l.occurred_at) AS kind
    FROM facts l LEFT JOIN failures f ON f.failure_id = l.failure_id
    WHERE l.type = 'FailureLinked'
    GROUP BY l.signature"""


# Each cause and the incidents its failures joined, the first one first.
_CAUSES_SQL = """
    SELECT detail->>'$.cause', incident_id FROM facts
    WHERE type = 'FailureLinked' AND detail->>'$.cause' IS NOT NULL
    GROUP BY ALL ORDER BY min(occurred_at), min(event_id)"""


@dataclass
class Known:
    """Signatures, merges and labels as the log records them."""

    signatures: dict[str, SignatureRecord] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    incident_ids: set[str] = field(default_factory=set)
    # (route, error status) -> its signatures, first seen first; built when first
    # needed (see `failed_alike`), then kept up to date by `remember`
    _failed_requests: dict[tuple[str, int], list[str]] | None = field(default=None, repr=False)
    # templates of the signatures' first failures, mined when first needed (`templates`)
    _templates: Templates | None = field(default=None, repr=False)
    # cause -> the incident its first failure was linked to, read when first needed,
    # and live incident -> the server errors (`memory/causes.py`) its failures named
    _causes: dict[str, str] | None = field(default=None, repr=False)
    _server_errors: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _history: History | None = field(default=None, repr=False)

    @classmethod
    def load(cls, history: History) -> Known:
        known = cls(_history=history)
        for row in history.sql(_SIGNATURES_SQL).dicts():
            row["tests"] = tuple(t for t in row["tests"] if t)
            row["status"] = row["status"] or None
            row["keys"] = tuple(json.loads(row["keys"] or "[]"))
            known.signatures[row["signature"]] = SignatureRecord(**row)
        order = "ORDER BY occurred_at, event_id"
        for incident, into in history.sql(
            f"SELECT incident_id, detail->>'$.into' FROM facts "
            f"WHERE type = 'IncidentsMerged' {order}"
        ).rows:
            known.merged_into[incident] = into
        for incident, label in history.sql(
            f"SELECT incident_id, detail->>'$.label' FROM facts "
            f"WHERE type = 'IncidentLabelled' {order}"
        ).rows:
            known.labels[incident] = label
        known.incident_ids = {r.incident_id for r in known.signatures.values()}
        known.incident_ids |= set(known.merged_into) | set(known.merged_into.values())
        return known

    def resolve(self, incident_id: str) -> str:
        """The live incident: merges followed (a cycle stops where it began)."""
        seen = {incident_id}
        while incident_id in self.merged_into and self.merged_into[incident_id] not in seen:
            incident_id = self.merged_into[incident_id]
            seen.add(incident_id)
        return incident_id

    def label_of(self, incident_id: str) -> str | None:
        """A live incident's label: its own, else one an incident merged into it
        carried (a label is never lost)."""
        if incident_id in self.labels:
            return self.labels[incident_id]
        merged = sorted(
            i for i in self.merged_into if i != incident_id and self.resolve(i) == incident_id
        )
        inherited = [self.labels[i] for i in merged if i in self.labels]
        return inherited[-1] if inherited else None

    def failed_alike(self, fp: Fingerprint, limit: int) -> list[str]:
        """The latest signatures that failed with ``fp``'s error status on its route.

        One error status from one request is one cause however it is worded
        (`testmem.memory.fingerprint.structure_score`), but two wordings of it can share
        too little text to be among the nearest embeddings (``raise_for_status``
        vs ``assert 503 == 200``): the matcher scores these as candidates too.
        """
        if not (fp.route and fp.status and fp.status >= 400):
            return []
        if self._failed_requests is None:
            self._failed_requests = {}
            for record in sorted(self.signatures.values(), key=lambda r: r.first_seen):
                self._note_request(record)
        return self._failed_requests.get((fp.route, fp.status), [])[-limit:]

    def _note_request(self, record: SignatureRecord) -> None:
        if self._failed_requests is None or not (record.status and record.status >= 400):
            return
        if record.route:
            key = (record.route, record.status)
            self._failed_requests.setdefault(key, []).append(record.signature)

    @property
    def templates(self) -> Templates:
        """The templates, mined afresh from the log the first time they are needed."""
        if self._templates is None:
            self._templates = Templates()
            if self._history is not None and self.signatures:
                incidents = {s: r.incident_id for s, r in self.signatures.items()}
                self._templates.replay(self._history, incidents)
        return self._templates

    def incident_of_cause(self, cause: str) -> str | None:
        """The live incident a cause's failures joined, if one was linked before."""
        first = self._cause_incidents().get(cause)
        return self.resolve(first) if first else None

    def claimed_by_other(self, incident_id: str, cause: str | None) -> bool:
        """Whether ``incident_id`` is another server error's than ``cause``: two
        server errors that say different things are two causes, however alike
        their failures read (``assert 500 == 200`` on one route)."""
        if not is_server_error_cause(cause):
            return False
        self._cause_incidents()
        named = self._server_errors.get(self.resolve(incident_id), set())
        return bool(named) and cause not in named

    def _cause_incidents(self) -> dict[str, str]:
        if self._causes is None:
            self._causes = {}
            rows = self._history.sql(_CAUSES_SQL).rows if self._history is not None else []
            for cause, incident_id in rows:
                self._note_cause(cause, incident_id)
        return self._causes

    def _note_cause(self, cause: str, incident_id: str) -> None:
        assert self._causes is not None
        self._causes.setdefault(cause, incident_id)
        if is_server_error_cause(cause):
            self._server_errors.setdefault(self.resolve(incident_id), set()).add(cause)

    def live_record(self, signature: str) -> SignatureRecord:
        record = self.signatures[signature]
        return replace(record, incident_id=self.resolve(record.incident_id))

    def new_incident_id(self, signature: str) -> str:
        """Derived from the signature, so two processes meeting the same new
        failure at once open the same incident."""
        for length in range(8, len(signature) + 1):
            candidate = f"INC-{signature[:length]}"
            if candidate not in self.incident_ids:
                return candidate
        raise IncidentError(f"no free incident id for signature {signature}")

    def remember(self, link: Link, fp: Fingerprint, nodeid: str, at: datetime) -> SignatureRecord:
        """Fold one link into what is known; returns the signature's new record."""
        old = self.signatures.get(link.signature)
        if old is None:
            record = SignatureRecord(
                link.signature,
                link.incident_id,
                (nodeid,) if nodeid else (),
                fp.route or "",
                fp.status,
                fp.exception_type,
                fp.method or "",
                at,
                at,
                1,
                fp.keys,
                fp.kind,
            )
            self._note_request(record)
        else:
            record = replace(
                old,
                tests=tuple(sorted({*old.tests, nodeid} - {""})),
                first_seen=min(old.first_seen, at),
                last_seen=max(old.last_seen, at),
                count=old.count + 1,
            )
        self.signatures[link.signature] = record
        self.incident_ids.add(link.incident_id)
        if link.cause:
            self._cause_incidents()
            self._note_cause(link.cause, link.incident_id)
        return record


# -- failures as the matcher reads them ---------------------------------------

_FAILURES_SQL = """
    SELECT f.run_id, f.failure_id, f.nodeid, f.occurred_at, f.exception_type, f.message,
           f.traceback, f.traceback_encoding, x.method, x.route, x.status, x.url,
           x.response_body, x.response_body_encoding
    FROM events f LEFT JOIN explaining e ON e.failure_id = f.failure_id
    LEFT JOIN exchanges x ON x.exchange_id = e.exchange_id
    WHERE f.type = 'FailureObserved' AND {where}
    ORDER BY f.occurred_at, f.failure_id"""


def failure_rows(history: History, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Failures with their explaining exchange's method, route, status, URL and body."""
    return history.sql(_FAILURES_SQL.format(where=where), params).dicts()


def find_failure(history: History, failure_id: str) -> dict[str, Any]:
    """One failure by id or unique prefix."""
    rows = failure_rows(history, "starts_with(f.failure_id, ?)", [failure_id])
    if len(rows) != 1:
        problem = "is ambiguous" if rows else "is unknown"
        raise NotFoundError(f"failure {failure_id!r} {problem}")
    return rows[0]


def fingerprint_of(failure: dict[str, Any]) -> Fingerprint:
    traceback = failure.get("traceback") or ""
    if failure.get("traceback_encoding", "utf-8") not in (None, "utf-8"):
        traceback = ""  # base64 of binary bytes: no frames to find there
    return fingerprint(
        failure.get("message") or "",
        exception_type=failure.get("exception_type") or "",
        traceback=traceback,
        nodeid=failure.get("nodeid"),
        method=failure.get("method"),
        route=failure.get("route"),
        status=failure.get("status"),
    )


# -- matching -----------------------------------------------------------------


class _SessionVectors:
    """Embeddings of signatures first met by this matcher, searched exactly:
    they may not be in the index yet (a batch not written, or no index)."""

    def __init__(self, dimensions: int = 384) -> None:
        import numpy as np

        self.signatures: list[str] = []
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((64, dimensions), dtype=np.float32)

    def add(self, signature: str, vector: np.ndarray) -> None:
        import numpy as np

        if len(self.signatures) == len(self.matrix):
            self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        self.rows[signature] = len(self.signatures)
        self.matrix[len(self.signatures)] = vector
        self.signatures.append(signature)

    def vectors(self, signatures: list[str]) -> dict[str, np.ndarray]:
        return {s: self.matrix[self.rows[s]] for s in signatures if s in self.rows}

    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        import numpy as np

        n = len(self.signatures)
        if not n:
            return []
        cosines = self.matrix[:n] @ vector
        top = np.argsort(-cosines)[:k]
        return [(self.signatures[i], float(cosines[i])) for i in top]


class Matcher:
    """Links failures to incidents; appends a ``FailureLinked`` fact per link.

    With ``store=None`` it matches in memory only (what `cluster_messages` uses).
    """

    def __init__(
        self,
        store: Store | None,
        *,
        same: float = DEFAULT_SAME,
        related: float = DEFAULT_RELATED,
        k: int = 25,
        embedder: Embedder | None = None,
        chroma_url: str | None = None,
    ) -> None:
        if not 0 <= related <= same <= 1:
            raise IncidentError(f"thresholds need 0 <= related <= same <= 1 ({related}, {same})")
        self.store, self.same, self.related, self.k = store, same, related, k
        self._embedder = embedder
        self.index = SignatureIndex(store, chroma_url) if store else None
        self._index_ok: bool | None = None if store else False
        self.session = _SessionVectors()
        self._known: Known | None = None if store else Known()

    @property
    def known(self) -> Known:
        """What the log knows, read when first needed."""
        if self._known is None:
            assert self.store is not None
            self._known = Known.load(History(self.store))
        return self._known

    @known.setter
    def known(self, known: Known) -> None:
        self._known = known

    # -- public --------------------------------------------------------------

    def link_run(self, run_id: str, cause: CauseOf | None = None) -> list[Link]:
        """Link every failure of the run not linked yet (so calling it twice adds nothing).

        ``cause`` names a failure's cause when its caller knows one (an API
        change behind its answer, a server error on its route): failures of one
        named cause join one incident however they are worded; the first one
        of a cause is matched as any other.

        One process links at a time per store, reading the log afresh under a
        file lock: runs triaged at once would otherwise each open an incident
        for the regression they share, named after whichever of its signatures
        each met first. Embedding, the slow part, comes before the lock; the
        index is opened under it, because an embedded Chroma opened earlier does
        not see what other processes wrote since. The log is read again under
        the lock only if it changed since the first read.
        """
        assert self.store is not None, "link_run needs a store"
        version = self.store.events.version()
        unlinked = self._unlinked(run_id)
        self._vectors([fingerprint_of(f) for f in unlinked])
        with self.store.lock("link", LINK_LOCK_TIMEOUT, "cannot link failures"):
            if self.store.events.version() != version:  # another process wrote meanwhile
                unlinked = self._unlinked(run_id)
            return self.link_all(unlinked, cause)

    def _unlinked(self, run_id: str) -> list[dict[str, Any]]:
        """The run's failures without a link, as of now; refreshes what is known."""
        assert self.store is not None
        history = History(self.store)
        self.known = Known.load(history)
        return failure_rows(
            history,
            "f.run_id = ? AND f.failure_id NOT IN "
            "(SELECT failure_id FROM facts WHERE type = 'FailureLinked' AND run_id = ?)",
            [run_id, run_id],
        )

    def link(self, failure: dict[str, Any]) -> Link:
        """Link one failure row (``failures`` view + method/route/status)."""
        return self.link_all([failure])[0]

    def link_all(self, failures: list[dict[str, Any]], cause: CauseOf | None = None) -> list[Link]:
        """Link failures in order, then write the index and the facts once.

        A batch whose signatures are all known opens neither the index nor the
        model: each failure joins its signature's incident. The index's copy of
        those signatures' counts and tests then waits for `testmem reindex`.
        """
        prints = [fingerprint_of(f) for f in failures]
        if any(fp.signature not in self.known.signatures for fp in prints):
            self._use_index()  # checked against what is known before this batch adds to it
        # without a store, no index wants every signature: only failures are embedded
        vectors = self._vectors([p for p in prints if self.store or is_failure(p)])
        links, changed = [], {}
        changes: list[Generalised] = []
        for n, failure in enumerate(failures):
            at = _when(failure.get("occurred_at"))
            named = cause(failure) if cause else None
            fp = prints[n] = self._apart(prints[n], named, vectors)
            placed = None
            if fp.signature not in self.known.signatures:
                placed = self.known.templates.place(fp, failure.get("message") or "")
                changes += placed.changes
            link = self._decide(
                str(failure["failure_id"]), fp, vectors.get(fp.signature), at, placed, named
            )
            if placed is not None:
                self.known.templates.settle(placed.first, link.incident_id)
            if fp.signature in vectors and fp.signature not in self.known.signatures:
                self.session.add(fp.signature, vectors[fp.signature])
            record = self.known.remember(link, fp, str(failure.get("nodeid") or ""), at)
            changed[link.signature] = replace(record, incident_id=link.incident_id)
            links.append(link)
        self._persist(failures, prints, links, list(changed.values()), vectors, changes)
        return links

    def _apart(self, fp: Fingerprint, cause: str | None, vectors: dict[str, Any]) -> Fingerprint:
        """``fp``, or, when its signature's incident is another server error's
        (`Known.claimed_by_other`), a signature of its own for this cause: one
        wording, two causes, two signatures, so each incident keeps its own."""
        known = self.known
        if fp.signature not in known.signatures or not cause:
            return fp
        if not known.claimed_by_other(known.live_record(fp.signature).incident_id, cause):
            return fp
        identity = f"{fp.signature}\x1f{cause}".encode("utf-8", "replace")
        apart = replace(fp, signature=hashlib.sha256(identity).hexdigest()[: len(fp.signature)])
        if apart.signature not in known.signatures:
            self._use_index()  # a new signature for the index, as any other
            vectors |= self._vectors([apart])
        return apart

    def decide(self, failure: dict[str, Any]) -> Link:
        """The link this failure would get, without remembering or writing it."""
        fp = fingerprint_of(failure)
        vector = self._vectors([fp]).get(fp.signature)
        found = None
        if fp.signature not in self.known.signatures:
            found = self.known.templates.find(fp, failure.get("message") or "")
        placed = Placed(found, found, self.known.templates.incident(found), ()) if found else None
        return self._decide(str(failure.get("failure_id", "")), fp, vector, _when(None), placed)

    def similar(self, text: str, k: int = 5) -> list[Candidate]:
        """Past incidents nearest to a failure message, best first."""
        return self.candidates(fingerprint(text), k)

    def similar_to_failure(self, failure: dict[str, Any], k: int = 5) -> list[Candidate]:
        return self.candidates(fingerprint_of(failure), k, _when(failure.get("occurred_at")))

    def candidates(
        self, fp: Fingerprint, k: int | None = None, at: datetime | None = None
    ) -> list[Candidate]:
        """The best-scored signature of each nearby incident, best first."""
        if fp.signature in self.known.signatures and not self._use_index():
            record = self.known.live_record(fp.signature)
            return [Candidate(record.incident_id, fp.signature, 1.0, 1.0, "same signature")]
        vector = self._vectors([fp], known_too=True).get(fp.signature)
        return self._candidates(fp, vector, at or _when(None))[: k or self.k]

    # -- deciding ------------------------------------------------------------

    def _decide(
        self,
        failure_id: str,
        fp: Fingerprint,
        vector: np.ndarray | None,
        at: datetime,
        placed: Placed | None = None,
        cause: str | None = None,
    ) -> Link:
        link = self._match(failure_id, fp, vector, at, placed, cause)
        return replace(link, cause=cause)

    def _match(
        self,
        failure_id: str,
        fp: Fingerprint,
        vector: np.ndarray | None,
        at: datetime,
        placed: Placed | None,
        cause: str | None,
    ) -> Link:
        known = self.known
        if fp.signature in known.signatures:
            first = known.signatures[fp.signature].incident_id
            live = known.resolve(first)
            method = "signature" if live == first else "label"
            return Link(failure_id, live, fp.signature, method, 1.0, False, None, [])
        template = placed.first if placed else None
        joined = known.incident_of_cause(cause) if cause else None
        if joined:
            return Link(failure_id, joined, fp.signature, "cause", 1.0, False, None, [], template)
        shaped = known.resolve(placed.incident_id) if placed and placed.incident_id else None
        if shaped and not known.claimed_by_other(shaped, cause):
            return Link(
                failure_id, shaped, fp.signature, "template", 1.0, False, None, [], template
            )
        candidates: list[Candidate] = []  # a bare log line is never judged by its embedding
        if is_failure(fp):
            shape = placed.template_id if placed else None
            candidates = self._candidates(fp, vector, at, enough=self.same, template=shape)
            candidates = [c for c in candidates if not known.claimed_by_other(c.incident_id, cause)]
        best = candidates[0] if candidates else None
        if best and best.score >= self.same:
            return Link(
                failure_id, best.incident_id, fp.signature, "similar", best.score, False,
                None, candidates, template,
            )  # fmt: skip
        related = best.incident_id if best and best.score >= self.related else None
        return Link(
            failure_id, known.new_incident_id(fp.signature), fp.signature, "new",
            best.score if best else 0.0, True, related, candidates, template,
        )  # fmt: skip

    def _candidates(
        self,
        fp: Fingerprint,
        vector: np.ndarray | None,
        at: datetime,
        enough: float = float("inf"),
        template: str | None = None,
    ) -> list[Candidate]:
        """The k nearest signatures by embedding, each incident scored by its best
        signature; unless one scores ``enough``, also the signatures that failed
        alike (`Known.failed_alike`), whose vectors may cost an index read. None
        whose template has ``template``'s shape with other constant words
        (`Templates.apart`)."""
        import numpy as np

        if vector is None:
            return []
        cosines = dict(self.session.nearest(vector, self.k))
        index = self.index if self._use_index() else None
        if index is not None:
            try:
                for n in index.nearest(vector, self.k):
                    cosines[n.signature] = max(n.cosine, cosines.get(n.signature, -1.0))
            except IndexUnavailable as exc:
                self._fall_back(exc)
        if template is not None:
            apart = self.known.templates.apart
            cosines = {s: c for s, c in cosines.items() if not apart(template, s)}
        best: dict[str, Candidate] = {}
        self._score_into(best, fp, cosines, at)
        if max((c.score for c in best.values()), default=0.0) < enough:
            alike = [s for s in self.known.failed_alike(fp, self.k) if s not in cosines]
            if template is not None:
                alike = [s for s in alike if not self.known.templates.apart(template, s)]
            vectors = self._stored_vectors(alike)
            more = {s: float(np.asarray(v, dtype=np.float32) @ vector) for s, v in vectors.items()}
            self._score_into(best, fp, more, at)
        return sorted(best.values(), key=lambda c: (-c.score, -c.cosine, c.incident_id))

    def _score_into(
        self, best: dict[str, Candidate], fp: Fingerprint, cosines: dict[str, float], at: datetime
    ) -> None:
        """Score each signature; keep each incident's best-scored one in ``best``."""
        for signature, cosine in cosines.items():
            if signature not in self.known.signatures:
                continue  # indexed by a process whose facts this snapshot predates
            record = self.known.live_record(signature)
            value, why = score(cosine, fp, record, at)
            if record.incident_id not in best or value > best[record.incident_id].score:
                best[record.incident_id] = Candidate(
                    record.incident_id, signature, value, cosine, why
                )

    # -- vectors, index and log ------------------------------------------------

    def _stored_vectors(self, signatures: list[str]) -> dict[str, Any]:
        """Embeddings of known signatures: this session's, else the index's."""
        found: dict[str, Any] = self.session.vectors(signatures)
        missing = [s for s in signatures if s not in found]
        if missing and self.index is not None and self._use_index():
            try:
                found |= self.index.vectors(missing)
            except IndexUnavailable as exc:
                self._fall_back(exc)
        return found

    def _vectors(self, prints: list[Fingerprint], known_too: bool = False) -> dict[str, Any]:
        """Embeddings of the unknown signatures (of all, with ``known_too``):
        from the index when it has them, else from the embedder."""
        import numpy as np

        if self._index_ok is False and self.store is not None:
            return {}  # falling back to signatures: no model, no index
        wanted = {
            fp.signature: fp.text
            for fp in prints
            if known_too or fp.signature not in self.known.signatures
        }
        if not wanted:
            return {}
        found: dict[str, Any] = {}
        if known_too and self._use_index() and self.index is not None:
            try:
                found = self.index.vectors(list(wanted))
            except IndexUnavailable as exc:
                self._fall_back(exc)
        missing = {s: t for s, t in wanted.items() if s not in found}
        if missing:
            found |= self.embedder.embed(missing)
        return {s: np.asarray(v, dtype=np.float32) for s, v in found.items()}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from testmem.memory.embed import Embedder

            cache = self.store.subdir("embeddings") if self.store else None
            self._embedder = Embedder(cache_dir=cache)
        return self._embedder

    def _use_index(self) -> bool:
        """Checked once: a missing, damaged or stale index turns similarity off."""
        if self._index_ok is None and self.index is not None:
            try:
                if not self.index.exists() and self.known.signatures:
                    raise IndexUnavailable("the Chroma index is missing")
                indexed = self.index.count()
                if indexed < len(self.known.signatures):
                    raise IndexUnavailable(
                        f"the Chroma index is stale ({indexed} of "
                        f"{len(self.known.signatures)} signatures)"
                    )
                self._index_ok = True
            except IndexUnavailable as exc:
                self._fall_back(exc)
        return bool(self._index_ok)

    def _fall_back(self, exc: IndexUnavailable) -> None:
        if self._index_ok is not False:
            warnings.warn(
                f"testmem: {exc}; matching by signature only until `testmem reindex`",
                IndexWarning,
                stacklevel=4,
            )
        self._index_ok = False

    def _persist(
        self,
        failures: list[dict[str, Any]],
        prints: list[Fingerprint],
        links: list[Link],
        records: list[SignatureRecord],
        vectors: dict[str, Any],
        changes: Iterable[Generalised] = (),
    ) -> None:
        """Index first, then the log: the index never lacks a signature the log has."""
        if self.store is None or not links:
            return
        if self.index is not None and self._index_ok:
            try:
                new = {r.signature: vectors[r.signature] for r in records if r.signature in vectors}
                self.index.upsert(records, new, {fp.signature: fp.text for fp in prints})
            except IndexUnavailable as exc:
                self._fall_back(exc)
        facts = [
            link.fact(str(f.get("run_id") or ""), f.get("nodeid"), fp)
            for f, fp, link in zip(failures, prints, links, strict=True)
        ]
        run_id = str(failures[0].get("run_id") or "")
        facts += [Fact.of("TemplateGeneralised", run_id, **c.as_detail()) for c in changes]
        self.store.events.append(facts)


LINK_LOCK_TIMEOUT = 300.0  # seconds; linking one run takes a few


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)
