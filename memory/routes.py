"""Route templates: ``/users/42/orders`` → ``/users/{id}/orders``."""

from __future__ import annotations

import re

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


def route_template(path: str) -> str:
    """Replace the id-like segments of a URL path with ``{id}``."""
    segments = path.split("?", 1)[0].split("/")
    return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in segments) or "/"
