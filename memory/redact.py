"""Redaction: secrets are removed before an event exists, never after.

A secret is found three ways, in this order:

- by name: a header, query parameter, JSON or form field, ``name=value`` or
  ``"name": "value"`` in text, whose *words* (split at ``_ - .``, case changes
  and digits) include a secret word (`SECRET_WORDS`). Words, not substrings:
  ``X-Amz-Security-Token``, ``clientSecret`` and ``MY_SERVICE_PASSWORD`` are
  secrets; ``keyboard``, ``monkey`` and ``author`` are not. A name whose last
  word describes the secret rather than holding it (``token_type``,
  ``key_count``) or whose first is a quantity (``max_tokens``) is kept, and so
  is ``key`` qualified as a data key (``sort_key``, ``public_key``).
- by pattern, in any text: credentials in URLs (``user:pw@``, ``TOKEN@``),
  ``Bearer``/``Basic`` credentials, PEM private keys and token shapes taken from
  the `detect-secrets` plugins (AWS, JWT, GitHub, GitLab, Slack, Stripe, ...),
  and a high-entropy token right after a secret word.
- by value: whatever was masked either way is remembered for the redactor's
  life (a recording session) and masked wherever it turns up later: an echoing
  response, an assertion message, a traceback, pytest's ``-l`` locals.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "[REDACTED]"

SECRET_WORDS = frozenset(
    {
        "token", "tokens", "secret", "secrets", "password", "passwords", "passwd",
        "passphrase", "pwd", "key", "apikey", "auth", "authorization",
        "authentication", "oauth", "credential", "credentials", "creds", "session",
        "sessionid", "signature", "sig", "otp", "totp", "pin", "cookie", "cookies",
        "csrf", "xsrf", "jwt", "bearer",
    }
)  # fmt: skip
# A word in the middle of a name that glues a secret word on (``accesstoken``).
_GLUED_SUFFIXES = ("token", "secret", "password", "passwd", "cookie", "credential", "signature")
_GLUED_KEYS = frozenset(
    {"api", "secret", "access", "private", "master", "signing", "hmac", "auth", "client"}
    | {"encryption", "subscription", "license", "app", "consumer"}
)
# Last words that say something *about* a secret (its type, size, place): kept.
_DESCRIPTORS = frozenset(
    {"type", "types", "count", "length", "len", "size", "name", "names", "format", "path"}
    | {"url", "uri", "endpoint", "expires", "expiry", "expiration", "ttl", "timeout"}
    | {"field", "column", "usage", "limit", "required", "enabled", "hint", "scope", "scopes"}
    # an error's name (``KeyError: 'warehouse'``, ``TokenExpired``) names what went wrong
    | {"error", "errors", "exception", "warning", "expired", "invalid", "missing", "status"}
)
_QUANTITIES = frozenset({"max", "min", "num", "total", "n"})
# ``key`` after one of these is a data key, not a credential.
_DATA_KEYS = frozenset(
    {"public", "primary", "foreign", "sort", "partition", "idempotency", "cache", "routing"}
    | {"object", "composite", "unique", "lookup", "row", "dedup", "dedupe", "group", "map"}
)
# Query parameters only: an OAuth redirect's ``code``; a JSON ``code`` is an error code.
_PARAM_WORDS = frozenset({"code"})
_NAME_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SCHEMES = frozenset({"bearer", "basic", "digest", "token"})
_KEPT_VALUES = frozenset({"", "true", "false", "null", "none", MASK.lower()})


@lru_cache(maxsize=4096)
def is_secret_name(name: str, param: bool = False) -> bool:
    """Whether a header, field or parameter called ``name`` holds a secret."""
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    if not words or words[-1] in _DESCRIPTORS or (len(words) > 1 and words[0] in _QUANTITIES):
        return False
    extra = _PARAM_WORDS if param else frozenset()
    return any(_secret_word(w, words[i - 1] if i else "", extra) for i, w in enumerate(words))


def _secret_word(word: str, before: str, extra: frozenset[str]) -> bool:
    if word == "key":
        return before not in _DATA_KEYS
    if word in SECRET_WORDS or word in extra:
        return True
    if word.endswith("key") and word[:-3] in _GLUED_KEYS:
        return True
    return len(word) > 6 and word.endswith(_GLUED_SUFFIXES)


def _still_a_url(url: str) -> str:
    """A masked URL that still parses: brackets in a host mean an IPv6
    address, so a mask that landed there loses them."""
    try:
        urlsplit(url)
    except ValueError:
        return url.replace(MASK, MASK.strip("[]"))
    return url


# -- patterns in free text ---------------------------------------------------------

_QUOTED = r"\"(?:[^\"\\\n]|\\.){0,4096}\"|'(?:[^'\\\n]|\\.){0,4096}'"
_ASSIGNMENT = re.compile(
    r"(?<!\w)(?P<name>[A-Za-z_][\w.-]{0,80})(?P<sep>['\"]?\s{0,40}[=:]\s{0,8})"
    rf"(?:(?P<quoted>{_QUOTED})|(?P<bare>[^\s\"'&,;}}\[\])=<>(][^\s\"'&,;}}\])<>]*))"
)
_URL_CREDENTIAL = re.compile(
    r"(?P<scheme>[A-Za-z][\w+.-]{0,30}://)(?P<user>[^\s:/?#@'\"<>]+)(?::(?P<pw>[^\s/?#@'\"<>]*))?@"
)
_SCHEME = re.compile(
    r"(?i)\b(?P<scheme>bearer|basic|digest|token)\s+(?P<cred>[A-Za-z0-9._~+/=-]{8,})"
)
_NEAR_WORD = re.compile(
    r"(?i)(?<![a-z])(?:token|secret|password|passwd|pwd|key|credential|signature)s?(?![a-z])"
    r"[^\w\n]{1,4}(?:(?:is|was|of)[^\w\n]{1,3})?(?P<token>[A-Za-z0-9+/_.~=-]{16,})"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY[A-Z ]{0,10}-----.*?"
    r"(?:-----END[A-Z ]{0,20} PRIVATE KEY[A-Z ]{0,10}-----|\Z)",
    re.DOTALL,
)
# Token shapes from the detect-secrets plugins (1.5: aws, jwt, github, gitlab,
# slack, stripe, sendgrid, pypi, openai), each behind a substring that must be
# there first: a substring test costs far less than a regex scan of the text.
_TOKEN_SHAPES = (
    (("AKIA", "ASIA", "ABIA", "ACCA", "A3T"), r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"),
    (("eyJ",), r"eyJ[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.?[A-Za-z0-9_.+/=-]*"),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}"),
    (("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941"),
     r"(?:glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_-]{20,50}|GR1348941[A-Za-z0-9_-]{20,50}"),
    (("xox",), r"xox[aboprs]-(?:\d+-)+[a-z0-9]+"),
    (("k_live_",), r"[rs]k_live_[0-9a-zA-Z]{24}"),
    (("SG.",), r"SG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}"),
    (("pypi-",), r"pypi-AgE[A-Za-z0-9_-]{70,}"),
    (("T3BlbkFJ",), r"sk-[A-Za-z0-9_-]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"),
    (("AIza",), r"AIza[0-9A-Za-z_-]{35}"),
    (("aws", "AWS"), r"(?i)aws.{0,20}?(?:key|pwd|pw|pass|token).{0,20}?['\"]?([0-9a-zA-Z/+]{40})"),
)  # fmt: skip
_SHAPES = tuple((triggers, re.compile(pattern)) for triggers, pattern in _TOKEN_SHAPES)
_SHAPE_TRIGGERS = re.compile(
    "|".join(re.escape(t) for triggers, _ in _TOKEN_SHAPES for t in triggers)
)
_HINTS = re.compile("bearer|basic|digest|token|secret|passw|pwd|key|credential|signature")
_SHORTEST_SECRET = 4  # shorter text holds no secret this redactor could tell
_KNOWN_LIMIT = 1024  # values remembered at once; the oldest are forgotten first


def _high_entropy(token: str) -> bool:
    if not (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)):
        return False
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return entropy >= 3.0


def _normalise(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.strip().lower() for name in names if name.strip())


class Redactor:
    """Masks secrets and remembers what it masked (see the module's docstring).

    ``headers``, ``fields`` and ``params`` are extra names (case-insensitive)
    to mask beside those whose words say they are secrets.
    """

    def __init__(
        self,
        headers: Iterable[str] = (),
        fields: Iterable[str] = (),
        params: Iterable[str] = (),
    ) -> None:
        self.headers = _normalise(headers)
        self.fields = _normalise(fields)
        self.params = _normalise(params) | self.fields
        self._known: dict[str, None] = {}  # an ordered set
        self._known_longest_first: tuple[str, ...] = ()

    @classmethod
    def with_extra(
        cls, headers: Iterable[str] = (), fields: Iterable[str] = (), params: Iterable[str] = ()
    ) -> Redactor:
        return cls(headers, fields, params)

    # -- by name --------------------------------------------------------------

    def secret_header(self, name: str) -> bool:
        return name.lower() in self.headers or is_secret_name(name)

    def secret_field(self, name: str) -> bool:
        return name.lower() in self.fields or is_secret_name(name)

    def secret_param(self, name: str) -> bool:
        return name.lower() in self.params or is_secret_name(name, param=True)

    def headers_json(self, headers: Iterable[tuple[str, str]]) -> str:
        """Headers as a JSON object (repeated names joined), secrets masked."""
        merged: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            if self.secret_header(key):
                self._remember_header(key, value)
                value = MASK
            else:
                value = self.text(value)
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return json.dumps(merged, ensure_ascii=False)

    def url(self, url: str) -> str:
        try:
            parts = urlsplit(url)
        except ValueError:  # not a URL after all: text it is
            return self.text(url)
        query = self._query(parts.query)
        if query != parts.query:  # re-encoded only when masked: the recorded URL is the one sent
            url = urlunsplit(parts._replace(query=query))
        needs_text = "@" in url or _SHAPE_TRIGGERS.search(url)
        return _still_a_url(self.text(url) if needs_text else self.scrub(url))

    def _query(self, query: str) -> str:
        pairs = parse_qsl(query, True)
        secret = [self.secret_param(name) for name, _ in pairs]
        if not any(secret):
            return query
        for (_, value), masked in zip(pairs, secret, strict=True):
            if masked:
                self.remember(value)
        kept = [(k, MASK if s else v) for (k, v), s in zip(pairs, secret, strict=True)]
        return urlencode(kept, safe="[]")

    def args(self, args: Iterable[str]) -> list[str]:
        """Command-line arguments: ``--password X`` masks X, as ``--password=X`` does."""
        masked: list[str] = []
        for arg in args:
            option = masked[-1] if masked else ""
            secret_option = option.startswith("-") and "=" not in option
            if secret_option and is_secret_name(option.lstrip("-")) and not arg.startswith("-"):
                self.remember(arg)
                masked.append(MASK)
            else:
                masked.append(self.text(arg))
        return masked

    def body(self, content: bytes, content_type: str) -> bytes:
        """Mask secrets in a JSON or form body; other bodies get text masking."""
        kind = content_type.lower()
        try:
            if "json" in kind or content.lstrip()[:1] in (b"{", b"["):
                data = json.loads(content)
                masked = self.value(data)
                # Unchanged bodies keep their bytes, so size and sha256 are the real ones.
                return (
                    content if masked == data else json.dumps(masked, ensure_ascii=False).encode()
                )
            if "x-www-form-urlencoded" in kind:
                return self._form(content.decode())
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        # Bytes that are not UTF-8 survive the round trip; the text between them is masked.
        return self.text(content.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape"
        )

    def _form(self, content: str) -> bytes:
        pairs = parse_qsl(content, keep_blank_values=True)
        masked = []
        for name, value in pairs:
            if self.secret_field(name):
                self.remember(value)
                value = MASK
            masked.append((name, self.text(value)))
        return urlencode(masked, safe="[]").encode()

    def value(self, data: Any) -> Any:
        """Mask secret fields at any depth of a decoded JSON value."""
        if isinstance(data, Mapping):
            return {k: self._field(str(k), v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.value(v) for v in data]
        if isinstance(data, str):
            return self.text(data)
        return data

    def _field(self, name: str, value: Any) -> Any:
        if not self.secret_field(name) or value is None or isinstance(value, bool):
            return self.value(value)
        self._remember_leaves(value)
        return MASK

    # -- by value ---------------------------------------------------------------

    def remember(self, value: str) -> None:
        """Mask ``value`` wherever it turns up from now on."""
        value = value.strip()
        token_like = len(value) >= 8 or any(not c.isalpha() for c in value)
        if len(value) < 4 or not token_like or value.lower() in _KEPT_VALUES or "REDACTED" in value:
            return
        if value in self._known:
            return
        self._known[value] = None
        if len(self._known) > _KNOWN_LIMIT:
            del self._known[next(iter(self._known))]
        self._known_longest_first = tuple(sorted(self._known, key=len, reverse=True))

    def _remember_leaves(self, value: Any) -> None:
        if isinstance(value, Mapping):
            value = list(value.values())
        if isinstance(value, list):
            for item in value:
                self._remember_leaves(item)
        elif value is not None and not isinstance(value, bool):
            self.remember(str(value))

    def _remember_header(self, name: str, value: str) -> None:
        """A header's value, its credential after the scheme, each cookie's
        value (a ``Set-Cookie``'s first pair: the rest are its attributes, a
        path or a domain), and the password inside Basic credentials."""
        self.remember(value)
        scheme, _, credential = value.strip().partition(" ")
        self.remember(credential)
        cookies = value.split(";")
        for cookie in cookies[:1] if name == "set-cookie" else cookies:
            self.remember(cookie.partition("=")[2])
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return
            self.remember(decoded.partition(":")[2])

    def scrub(self, text: str) -> str:
        """Mask the values already known to be secrets (a short one only as a
        whole word: a PIN 1234 is masked in "pin 1234", not in "order 12345")."""
        for secret in self._known_longest_first:
            if secret not in text:
                continue
            if len(secret) >= 8:
                text = text.replace(secret, MASK)
            else:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
        return text

    # -- by pattern -------------------------------------------------------------

    def text(self, text: str) -> str:
        """Mask credentials inside free text, then every known secret. Each
        pattern runs only where a substring it needs is there: a substring
        test is far cheaper than a regex scan, and most text has none."""
        if len(text) < _SHORTEST_SECRET:
            return self.scrub(text) if self._known_longest_first else text
        lowered = text.lower()
        hinted = _HINTS.search(lowered) is not None  # a scheme or a secret word
        if hinted:
            if "private key" in lowered:
                text = _PRIVATE_KEY.sub(self._whole, text)
            text = _SCHEME.sub(self._scheme, text)
        if "=" in text or ":" in text:
            text = _ASSIGNMENT.sub(self._assignment, text)
            if "://" in text:
                text = _URL_CREDENTIAL.sub(self._url_credential, text)
        if hinted:
            text = _NEAR_WORD.sub(self._near_word, text)
        if _SHAPE_TRIGGERS.search(text):
            for triggers, pattern in _SHAPES:
                if any(t in text for t in triggers):
                    text = pattern.sub(self._shape, text)
        return self.scrub(text) if self._known_longest_first else text

    def _assignment(self, match: re.Match[str]) -> str:
        name = match["name"]
        if not is_secret_name(name) and name.lower() not in self.params:
            return match[0]
        quoted = match["quoted"]
        value = quoted[1:-1] if quoted else match["bare"]
        if value.lower() in _KEPT_VALUES or value.lower() in _SCHEMES:
            return match[0]  # "Authorization: Bearer [REDACTED]" keeps its scheme
        self.remember(value)
        masked = f"{quoted[0]}{MASK}{quoted[0]}" if quoted else MASK
        return f"{name}{match['sep']}{masked}"

    def _url_credential(self, match: re.Match[str]) -> str:
        scheme, user, password = match["scheme"], match["user"], match["pw"]
        if password is None:  # ``http://TOKEN@host``: the user name is the secret
            self.remember(user)
            return f"{scheme}{MASK}@" if user != MASK else match[0]
        self.remember(password)
        return f"{scheme}{user}:{MASK}@" if password != MASK else match[0]

    def _scheme(self, match: re.Match[str]) -> str:
        credential = match["cred"]
        if match["scheme"].lower() != "bearer" and not re.search(r"[\d._+/=-]", credential):
            return match[0]  # "token validation failed": a word, not a credential
        self.remember(credential)
        return f"{match['scheme']} {MASK}"

    def _near_word(self, match: re.Match[str]) -> str:
        token = match["token"]
        if MASK in token or not _high_entropy(token):
            return match[0]
        self.remember(token)
        return match[0][: match.start("token") - match.start()] + MASK

    def _shape(self, match: re.Match[str]) -> str:
        secret = match[match.lastindex or 0]
        self.remember(secret)
        return match[0].replace(secret, MASK)

    def _whole(self, match: re.Match[str]) -> str:
        return MASK


DEFAULT_REDACTOR = Redactor()
