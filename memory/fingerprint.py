"""Fingerprints of failures: what identifies a cause, with what varies masked.

Two occurrences of the same cause differ in ids, numbers, timestamps, ports,
temp paths and memory addresses; `normalise` masks those and keeps what
identifies the cause (exception type, assertion operator and shape, HTTP
method, status code, route template, JSON key names). `fingerprint` adds the
structure around the message (status, method, route, the test and its own
frames) and hashes it into a `signature`: same signature → same incident,
with no model involved. `Fingerprint.text` is what gets embedded when the
signature is new; `kind` (what was checked: a missing key, a type, a status, a
timeout...) and `keys` (the names the failure is about) let `structure_score`
tell one cause in two wordings from two causes in one wording.

Every input is capped and cleaned first and every pattern is linear, so a
10 MB traceback or binary garbage costs milliseconds, never a crash.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from testmem.memory.routes import route_template

MESSAGE_CAP = 16 * 1024  # characters of a message that are normalised and hashed
TRACEBACK_CAP = 512 * 1024  # characters of a traceback searched for frames (head and tail)
TEXT_CAP = 1000  # characters embedded: MiniLM reads ~256 word pieces anyway
SIGNATURE_CHARS = 16

_METHODS = "GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS"


@dataclass(frozen=True)
class Fingerprint:
    """The identifying parts of one failure.

    ``test`` is the node id without its parametrisation (``test_get[user-42]``
    → ``test_get``): parameter ids often carry volatile values, and one cause
    usually fails every parametrisation of a test alike.
    """

    signature: str
    text: str
    exception_type: str
    status: int | None
    method: str | None
    route: str | None
    test: str | None
    frames: tuple[str, ...]
    keys: tuple[str, ...] = ()  # the quoted names the failure is about: JSON keys, fields
    kind: str = ""  # what was checked and failed: missing, type, status, timeout... (`_kind`)
    wording: str = ""  # the message as masked, without tools' boilerplate lines (what is mined)


def fingerprint(
    message: str | bytes,
    *,
    exception_type: str = "",
    traceback: str | bytes = "",
    nodeid: str | None = None,
    method: str | None = None,
    route: str | None = None,
    status: int | None = None,
) -> Fingerprint:
    """Fingerprint one failure; values not given are parsed from the message."""
    message = _clean(message, MESSAGE_CAP)
    trace = _capped_traceback(traceback)
    exception_type = _clean(exception_type, 200).strip() or _exception_type(message)
    status = status if _is_status(status) else _status(message)
    parsed_method, parsed_path = _request(message, trace)
    method = (method or parsed_method or "").upper() or None
    route = _route(route or parsed_path)
    test = _test(nodeid)
    frames = own_frames(trace)
    masked = _mask(message, status)
    parts = (exception_type, str(status or ""), method or "", route or "", test or "")
    identity = "\x1f".join((*parts, "\x1e".join(frames), masked))
    signature = hashlib.sha256(identity.encode("utf-8", "replace")).hexdigest()
    return Fingerprint(
        signature=signature[:SIGNATURE_CHARS],
        text=_text(exception_type, masked, method, route, status),
        exception_type=exception_type,
        status=status,
        method=method,
        route=route,
        test=test,
        frames=frames,
        keys=subject_keys(masked),
        kind=_kind(exception_type, masked),
        wording=_BOILERPLATE.sub("", masked).strip()[:MESSAGE_CAP],
    )


def normalise(text: str | bytes) -> str:
    """Mask the volatile parts of any text (ids, numbers, timestamps, ports...)."""
    text = _clean(text, MESSAGE_CAP)
    return _mask(text, _status(text))


def structure_score(a: Fingerprint, b: Fingerprint) -> float:
    """What structure says about two failures sharing a cause: added to their cosine
    similarity before the threshold (tuned on bench/failures, see docs/BENCHMARKS.md).

    Two responses with one error status from one request are one cause however
    the tests word it (``assert 500 == 200`` or ``raise_for_status``); a 2xx says
    nothing by itself (the body is at fault). Without a response (timeouts,
    refused connections) the resource matters, not the exact route. Then the kind
    of check decides (`_kind_agreement`), and a quoted name that differs
    (KeyError 'name' vs 'email') speaks against.
    """
    adjust = _agreement(a.test, b.test, 0.03, 0.0) + _agreement(a.status, b.status, 0.0, -0.30)
    if a.status and b.status:
        if _differs(a.method, b.method) or _differs(a.route, b.route):
            adjust -= 0.20
        elif a.status == b.status and a.status >= 400:
            return adjust + 0.25 + _key_conflict(a, b)
    elif _differs(_resource(a.route), _resource(b.route)):
        adjust -= 0.20
    return adjust + _kind_agreement(a, b) + _key_conflict(a, b)


# Kinds whose message is the transport library's wording, not the cause's.
_TRANSPORT_KINDS = ("timeout", "connection")


def _kind_agreement(a: Fingerprint, b: Fingerprint) -> float:
    """The kind of check that failed, a finer exception type: ``KeyError: 'total'``
    and ``assert 'total' in body`` are one kind (missing) in two wordings, while
    ``assert isinstance(body.get('total'), float)`` is another (type) that merely
    names the same field, so at most related.

    One kind about the same names on the same request is one cause however it is
    worded: a missing field on one route. A timeout or a refused connection on one
    service is one cause whichever client words it (requests, httpx, aiohttp and
    urllib3 share no words), as one error status is. Failures without a kind (a custom
    message, an exception of the code under test) compare exception types.
    """
    if not (a.kind and b.kind):
        return _agreement(a.exception_type, b.exception_type, 0.03, -0.08)
    if a.kind != b.kind:
        return -0.15
    if a.kind in _TRANSPORT_KINDS:  # one service unreachable, whichever client says so
        return 0.25 if _same(_resource(a.route), _resource(b.route)) else 0.03
    same = bool(a.keys) and set(a.keys) == set(b.keys) and _same_request(a, b)
    return 0.10 if same else 0.03


def _same_request(a: Fingerprint, b: Fingerprint) -> bool:
    return _same(a.route, b.route) and not _differs(a.method, b.method)


def _same(mine: object, theirs: object) -> bool:
    return bool(mine and theirs and mine == theirs)


def _key_conflict(a: Fingerprint, b: Fingerprint) -> float:
    if not (a.keys and b.keys):
        return 0.0
    shared = len(set(a.keys) & set(b.keys)) / min(len(a.keys), len(b.keys))
    return 0.0 if shared == 1 else -0.15 if shared else -0.30


def _resource(route: str | None) -> str | None:
    return route.strip("/").split("/")[0] if route else None


def _differs(mine: object, theirs: object) -> bool:
    return bool(mine and theirs and mine != theirs)


def _agreement(mine: object, theirs: object, bonus: float, conflict: float) -> float:
    if not mine or not theirs:
        return 0.0
    return bonus if mine == theirs else conflict


# --- what a failure is about ---------------------------------------------------

_ASSERTION = re.compile(r"^assert (.*)$", re.MULTILINE)
_STATUS_ASSERTION = re.compile(r"^[1-5]\d\d [!=]= [1-5]\d\d\b")
_MEMBERSHIP = re.compile(r"""^(?:'[^'\n]*'|"[^"\n]*") (not )?in\b""")
_CONNECTION_ERROR = re.compile(r"Connect|Network|Protocol|Proxy|ReadError|WriteError|SSL")
_COMPARISONS = (
    (" == ", "equal"),
    (" != ", "unequal"),
    (" is ", "identity"),
    (" in ", "membership"),
)
_ORDER = re.compile(r" (?:<|>|<=|>=) ")


def _kind(exception_type: str, masked: str) -> str:
    """What was checked and failed, whatever the wording (see `_kind_agreement`).

    From the exception type when it says it (timeouts, refused connections, a
    KeyError, an HTTP status error), else from the expression pytest shows for
    a failed ``assert`` and its ``where`` lines. ``""`` when neither says.
    """
    name = exception_type.rsplit(".", 1)[-1]
    if _CONNECTION_ERROR.search(name):
        return "connection"
    if "Timeout" in name or name == "timeout":
        return "timeout"
    if name == "KeyError":
        return "missing"
    if name.endswith(("StatusError", "HTTPError")):
        return "status"
    assertion = _ASSERTION.search(masked) if name == "AssertionError" else None
    if assertion is None:
        return ""
    expression, block = assertion.group(1), masked[assertion.start() :]
    if _STATUS_ASSERTION.match(expression):
        return "status"
    if membership := _MEMBERSHIP.match(expression):
        return "present" if membership.group(1) else "missing"
    if "isinstance(" in block:
        return "type"
    if "len(" in block:
        return "length"
    if ".status_code" in block:
        return "status"
    if _ORDER.search(expression):
        return "order"
    return next((kind for op, kind in _COMPARISONS if op in expression), "truth")


_DIFF_END = re.compile(r"^\s*Full diff:", re.MULTILINE)


def subject_keys(masked: str) -> tuple[str, ...]:
    """The quoted names a failure is about, in order: those outside any literal
    dict or list (``KeyError: 'total'``, ``assert 'total' in {...}``, ``.get('total')``)
    and those of the items pytest lists as differing (``{'status': ...} != {...}``),
    not every key of a body the message prints. All quoted names when none is."""
    lines = _DIFF_END.split(masked, 1)[0].splitlines()
    found: list[str] = []
    for number, line in enumerate(lines):
        itemised = number > 0 and line.lstrip().startswith(("{", "["))
        found += _KEY.findall(line if itemised else _outside_literals(line))
    return tuple(dict.fromkeys(found or _KEY.findall(masked)))


def _outside_literals(line: str) -> str:
    """The text of a line outside ``{...}`` and ``[...]``."""
    depth, kept = 0, []
    for char in line:
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth = max(depth - 1, 0)
        elif not depth:
            kept.append(char)
    return "".join(kept)


# --- cleaning -----------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(value: str | bytes | None, cap: int) -> str:
    """Text that is safe to regex and hash: capped, decoded, no control or format chars."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: cap * 4]).decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = str(value)
    value = value[:cap].replace("\r\n", "\n").replace("\r", "\n")
    # Lone surrogates (from surrogateescape) cannot be encoded: replace them.
    value = value.encode("utf-8", "replace").decode("utf-8")
    value = _CONTROL.sub("", value)
    if value.isascii():
        return value
    # Zero-width and direction marks (category Cf) make equal texts differ invisibly.
    return "".join(c for c in value if c.isascii() or unicodedata.category(c) != "Cf")


# --- structure parsed from the message ----------------------------------------

_EXCEPTION_HEAD = re.compile(
    r"^\s*(?:E\s+)?((?:[A-Za-z_]\w*\.){0,6}[A-Z]\w*(?:Error|Exception|Timeout|Warning|Exit|Interrupt|Failed|Failure))\b:?"
)
_STATUS_HINT = re.compile(
    r"<Response \[([1-5]\d\d)\b"  # httpx / requests response repr
    r"|\b(?:Server|Client|Informational|Redirect) (?:error|response) '([1-5]\d\d) "  # httpx
    r"|\bHTTP(?:/\d(?:\.\d)?)? ([1-5]\d\d)\b"
    r"|\bstatus(?:[ _]?code)?['\"]?\s*[:=]?\s*([1-5]\d\d)\b"
    r"|\b(?:returned|responded|answered|got)(?: status| with)? ([1-5]\d\d)\b"
    r"|\bassert ([1-5]\d\d) [!=]= [1-5]\d\d\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(rf"\b({_METHODS})\s+(?:'|\")?((?:https?://[^\s'\"/]+)?/[^\s'\"]*)")
_URL_PATH = re.compile(r"\bhttps?://[^\s'\"/<>]+(/[^\s'\"<>]*)")
_DATA_VALUE_BEFORE = re.compile(r"""['"]\s?:\s?['"]$""")  # 'key': 'http://...'
# The request in the test's source lines: `client.get(f"/users/{uid}")`, `request("GET", "/x")`.
_SOURCE_REQUEST = re.compile(
    rf"\.({_METHODS.lower()})\(\s*f?[\"'](/[^\"'\s]*)[\"']|[\"']({_METHODS})[\"'],\s*f?[\"'](/[^\"'\s]*)[\"']"
)
_PLACEHOLDER = re.compile(r"\{[^}/]*\}")
_KEY = re.compile(r"""['"]([A-Za-z_][\w.-]{0,63})['"]""")


def _is_status(value: object) -> bool:
    return isinstance(value, int) and 100 <= value <= 599


def _status(message: str) -> int | None:
    match = _STATUS_HINT.search(message)
    return int(next(g for g in match.groups() if g)) if match else None


def exception_type_of(message: str | bytes | None) -> str:
    """The exception type a message starts with (``AssertionError`` for ``assert ...``)."""
    return _exception_type(_clean(message, 2000))


def _exception_type(message: str) -> str:
    match = _EXCEPTION_HEAD.match(message)
    if match:
        return match.group(1)
    return "AssertionError" if message.lstrip().startswith("assert ") else ""


def _request(message: str, traceback: str) -> tuple[str | None, str | None]:
    """The HTTP method and URL path a message (else the test's source) names, if any.

    A URL that is a value in the message's data (``'avatar_url': 'https://cdn/a.png'``)
    is what the response said, not the request. A message that names only the URL
    (httpx's ``for url '...'``) takes its method from the source when both name one route.
    """
    if match := _REQUEST.search(message):
        return match.group(1), urlsplit(match.group(2).rstrip(":;,.)")).path or "/"
    source = "\n".join(line for line in traceback.splitlines() if not line.startswith("E "))
    method, path = None, None
    if match := _SOURCE_REQUEST.search(source):
        method, path = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
        method = method.upper()
    for url in _URL_PATH.finditer(message):
        if not _DATA_VALUE_BEFORE.search(message, max(url.start() - 40, 0), url.start()):
            same_route = path is not None and _route(path) == _route(url.group(1))
            return (method if same_route else None), url.group(1)
    return method, path


def _route(path: str | None) -> str | None:
    """The route template of a path; f-string fields (`{user_id}`) count as ids too."""
    path = _clean(path, 2000).strip()
    return _PLACEHOLDER.sub("{id}", route_template(path)) if path else None


def _test(nodeid: str | None) -> str | None:
    nodeid = _clean(nodeid, 1000).strip()
    return nodeid.split("[", 1)[0] or None


# --- the test's own frames -----------------------------------------------------

# `tests/test_users.py:12: in test_get_user` (short and auto styles) and
# `tests/test_users.py:12: AssertionError` (the location line closing a long-style entry).
_LOCATION = re.compile(r"^([^\s:][^:\n]{0,500}\.py):\d+:(?: in ([\w.<>]+))?")
_DEF = re.compile(r"^\s{0,8}(?:async\s+)?def (\w+)\(")
_PY_FRAME = re.compile(r'^\s*File "([^"\n]{1,500})", line \d+, in ([\w.<>]+)')
_FOREIGN = re.compile(r"site-packages|dist-packages|[/\\]lib[/\\]python|<frozen|^<")


def _capped_traceback(traceback: str | bytes) -> str:
    text = _clean(traceback, 2 * TRACEBACK_CAP)
    if len(text) > TRACEBACK_CAP:  # keep the head (the test) and the tail (the crash)
        text = text[: TRACEBACK_CAP // 2] + "\n" + text[-TRACEBACK_CAP // 2 :]
    return text


def own_frames(traceback: str | bytes) -> tuple[str, ...]:
    """The ``file::function`` frames of the test's own code in a pytest or Python traceback."""
    text = _capped_traceback(traceback)
    frames: list[str] = []
    last_def: str | None = None
    for line in text.splitlines():
        if found := _DEF.match(line):
            last_def = found.group(1)
        elif (loc := _LOCATION.match(line)) and (function := loc.group(2) or last_def):
            frames.append(_frame(loc.group(1), function))
            last_def = None
        elif py := _PY_FRAME.match(line):
            frames.append(_frame(py.group(1), py.group(2)))
    own = [f for f in frames if not _FOREIGN.search(f)]
    return tuple(dict.fromkeys(own))  # in order, each frame once (recursion, retries)


def _frame(path: str, function: str) -> str:
    return f"{_TEMP_DIR.sub('<tmp>/', path.replace(chr(92), '/'))}::{function}"


# --- masking -----------------------------------------------------------------

_URL = re.compile(r"\b([a-z][a-z0-9+.-]{1,15})://([^\s'\"/<>)\]]{1,300})([^\s'\"<>)\]]{0,2000})")
_EMAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}\b")
_TEMP_DIR = re.compile(
    r"(?:/private)?(?:/tmp|/var/tmp|/var/folders|/dev/shm)(?:/[^\s/'\":]{1,255}){0,30}/"
    r"|\b[A-Za-z]:\\(?:[^\s\\'\":]{1,255}\\){0,30}?Temp\\(?:[^\s\\'\":]{1,255}\\){0,30}"
    r"|\bpytest-of-[^\s/]{1,64}/pytest-\d+/(?:[^\s/'\":]{1,255}/){0,30}"
)
_PATH = re.compile(r"(?<![\w/.<>:~-])(?:/[\w.~{}%@+-]{1,255}){1,40}/?")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
)
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}|\b)"
    r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}(?: GMT)?"
)
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{4}\b")
_TIME = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?\b")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{1,16}\b")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"\[[0-9a-fA-F:]{2,39}\]|(?<![\w:])::1\b")
_PORT = re.compile(r"(?:(?<=<ip>)|(?<=localhost)):\d{1,5}\b")
_PORT_WORD = re.compile(r"(?<=port )\d{1,5}\b", re.IGNORECASE)
_QUOTED_VALUE = re.compile(r"""(?<=[=])(\s*)(?:'[^'\n]{0,500}'|"[^"\n]{0,500}")""")
_JSON_VALUE = re.compile(r"""(?<=['"]):(\s*)(?:'[^'\n]{0,500}'|"[^"\n]{0,500}")""")
_HEX = re.compile(r"\b(?=[0-9a-fA-F]{0,64}\d)[0-9a-fA-F]{8,64}\b")
_PREFIXED_ID = re.compile(
    r"\b(?!utf-|iso-|ucs-)[A-Za-z]{1,20}[-_](?=[A-Za-z]{0,40}\d)[A-Za-z0-9]{1,40}\b", re.IGNORECASE
)
_TOKEN = re.compile(r"\b(?=[A-Za-z]{0,64}\d)(?=\d{0,64}[A-Za-z])[A-Za-z0-9]{10,64}\b")
_DURATION = re.compile(
    r"\b\d+(?:\.\d+)?\s?(?:ms|us|µs|ns|s|secs?|seconds?|mins?|minutes?|h|hours?)\b"
)
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b")
# A three-digit code is a status in these contexts, a volatile number elsewhere.
_STATUS_CONTEXT = re.compile(
    r"\b[1-5]\d\d(?= (?:[A-Z][a-z]+|OK\b|[A-Z]{2,}))"  # 404 Not Found, 200 OK
    r"|(?<=assert )[1-5]\d\d(?= [!=]= [1-5]\d\d\b)|(?<=[!=]= )[1-5]\d\d\b"  # assert 404 == 200
    r"|(?<=returned )[1-5]\d\d\b|(?<=got )[1-5]\d\d\b|(?<=with )[1-5]\d\d\b"
    r"|(?<=\[)[1-5]\d\d\b|(?<=HTTP )[1-5]\d\d\b|(?<=/)[1-5]\d\d\b"
    r"|(?<=status)(?:[ _]?code)?['\"]?\s*[:=]?\s*[1-5]\d\d\b",
    re.IGNORECASE,
)
_SPACES = re.compile(r"[ \t]+")
# Lines that tools add to every failure of a kind (httpx, pytest's assertion diffs).
_BOILERPLATE = re.compile(
    r"^(?:For more information check: \S*|Omitting <n> identical items, use -vv to show"
    r"|Use -v to get more diff|Full diff:)\s*$\n?",
    re.MULTILINE,
)

_Step = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]


def _url(match: re.Match[str]) -> str:
    """A URL with its host and port masked (unless a named host) and ids in its path."""
    scheme, host, rest = match.groups()
    name = host.rsplit("@", 1)[-1].rsplit(":", 1)[0]
    if _IPV4.fullmatch(name) or name in ("localhost", "[::1]", "testserver") or not name:
        name = "<host>"
    parts = urlsplit(f"{scheme}://x{rest}")
    query = "&".join(f"{k.split('=')[0]}=<v>" for k in parts.query.split("&") if k)
    return f"{scheme}://{name}{route_template(parts.path) if parts.path else ''}" + (
        f"?{query}" if query else ""
    )


_STEPS: tuple[_Step, ...] = (
    (_URL, _url),
    (_EMAIL, "<email>"),
    (_TEMP_DIR, "<tmp>/"),
    (_PATH, lambda m: route_template(m.group())),
    (_UUID, "<uuid>"),
    (_TIMESTAMP, "<ts>"),
    (_DATE, "<date>"),
    (_TIME, "<time>"),
    (_ADDRESS, "<addr>"),
    (_IPV4, "<ip>"),
    (_IPV6, "<ip>"),
    (_PORT, ":<port>"),
    (_PORT_WORD, "<port>"),
    (_QUOTED_VALUE, r"\1'<v>'"),
    (_JSON_VALUE, r":\1'<v>'"),
    (_PREFIXED_ID, "<id>"),
    (_HEX, "<hex>"),
    (_TOKEN, "<id>"),
    (_DURATION, "<duration>"),
)


def _mask(text: str, status: int | None) -> str:
    for pattern, replacement in _STEPS:
        text = pattern.sub(replacement, text)
    text = _mask_numbers(text, status)
    return "\n".join(_SPACES.sub(" ", line).rstrip() for line in text.splitlines()).strip()


def _mask_numbers(text: str, status: int | None) -> str:
    """Numbers become ``<n>``, except HTTP status codes."""
    kept = {m.end() for m in _STATUS_CONTEXT.finditer(text)}
    known = str(status) if status else None

    def number(match: re.Match[str]) -> str:
        value = match.group()
        return value if match.end() in kept or value == known else "<n>"

    return _NUMBER.sub(number, text)


def _text(
    exception_type: str, masked: str, method: str | None, route: str | None, status: int | None
) -> str:
    """The cause in words, for the embedding: no test names, which vary across one cause,
    and no boilerplate lines, which make different causes look alike."""
    masked = _BOILERPLATE.sub("", masked).strip()
    named = not exception_type or masked.startswith(exception_type.rsplit(".", 1)[-1])
    head = masked if named or exception_type in masked[:200] else f"{exception_type}: {masked}"
    where = " ".join(p for p in (method, route) if p)
    context = " | ".join(p for p in (where, f"status {status}" if status else "") if p)
    return (f"{context} | {head}" if context else head)[:TEXT_CAP]
