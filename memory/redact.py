"""Redaction: secrets are removed before an event exists, never after."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "[REDACTED]"

DEFAULT_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
DEFAULT_FIELDS = frozenset(
    {
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "authorization",
    }
)
# Bearer/basic credentials inside free text.
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")


@lru_cache(maxsize=16)
def _assignment(names: frozenset[str]) -> re.Pattern[str]:
    """``name=value``, ``"name": "value"`` and Python's ``'name': 'value'`` for
    any of the names (a failing assertion shows dicts in their repr)."""
    alternatives = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
    return re.compile(rf"(?i)\b({alternatives}|api[_-]?key)(['\"]?\s*[=:]\s*['\"]?)[^\s\"'&,;}}]+")


def _normalise(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.strip().lower() for name in names if name.strip())


@dataclass(frozen=True)
class Redactor:
    """What to mask: header names, JSON/form field names and query parameters.

    Names are case-insensitive; field names match at any depth of a JSON body.
    """

    headers: frozenset[str] = DEFAULT_HEADERS
    fields: frozenset[str] = DEFAULT_FIELDS
    params: frozenset[str] = field(default=DEFAULT_FIELDS)

    @classmethod
    def with_extra(
        cls, headers: Iterable[str] = (), fields: Iterable[str] = (), params: Iterable[str] = ()
    ) -> Redactor:
        return cls(
            DEFAULT_HEADERS | _normalise(headers),
            DEFAULT_FIELDS | _normalise(fields),
            DEFAULT_FIELDS | _normalise(params) | _normalise(fields),
        )

    def headers_json(self, headers: Iterable[tuple[str, str]]) -> str:
        """Headers as a JSON object (repeated names joined), secrets masked."""
        merged: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            value = MASK if key in self.headers else self.text(value)
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return json.dumps(merged, ensure_ascii=False)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query and not parts.password:
            return url
        pairs = parse_qsl(parts.query, True)
        query = (  # re-encoded only when masked: the recorded URL is the one sent
            urlencode([(k, MASK if k.lower() in self.params else v) for k, v in pairs], safe="[]")
            if any(k.lower() in self.params for k, _ in pairs)
            else parts.query
        )
        netloc = (
            parts.netloc.replace(f":{parts.password}@", f":{MASK}@")
            if parts.password
            else parts.netloc
        )
        return urlunsplit(parts._replace(query=query, netloc=netloc))

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
                pairs = parse_qsl(content.decode(), keep_blank_values=True)
                return urlencode(
                    [(k, MASK if k.lower() in self.fields else v) for k, v in pairs]
                ).encode()
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        try:
            return self.text(content.decode("utf-8")).encode("utf-8")
        except UnicodeDecodeError:
            return content

    def value(self, data: Any) -> Any:
        """Mask configured fields at any depth of a decoded JSON value."""
        if isinstance(data, Mapping):
            return {
                k: MASK if str(k).lower() in self.fields else self.value(v) for k, v in data.items()
            }
        if isinstance(data, list):
            return [self.value(v) for v in data]
        if isinstance(data, str):
            return self.text(data)
        return data

    def text(self, text: str) -> str:
        """Mask credentials (and configured fields and parameters) inside free text."""
        if not any(c in text for c in ("=", ":", " ")):
            return text
        text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} {MASK}", text)
        pattern = _assignment(self.fields | self.params)
        return pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


DEFAULT_REDACTOR = Redactor()
