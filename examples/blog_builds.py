"""Six releases of the blog API, in order; each keeps what the one before changed.

0  v1.0.0  clean baseline
1  v1.1.0  articles 503 now and then; the gateway rate limits /api/tags (429 + Retry-After)
2  v1.2.0  deliberate change: a profile's `image` is renamed `avatar`;
           regression 1: articles tagged dragons answer 500
3  v1.3.0  deliberate change: POST /api/users answers 200, not 201 (while
           regression 1 persists); new field: articles gain `readingTimeMinutes`
4  v1.4.0  regression 1 fixed; regression 2: GET /api/articles?author= answers 500
5  v1.5.0  regression 2 persists
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from testmem.examples.blog_api import Release


def _story() -> list[Release]:
    releases = [Release()]

    def release(label: str, **changes: Any) -> None:
        # A seed of its own per release, so the 503s meet other tests each time.
        changes.setdefault("seed", len(releases))
        releases.append(replace(releases[-1], label=label, **changes))

    release("v1.1.0", article_503_rate=0.15, tags_rate_limit_every=3)
    # seed 10: the first request for a dragon article meets a 503, its retry the 500
    release("v1.2.0", rename_profile_image_to="avatar", dragon_articles_fail=True, seed=10)
    release("v1.3.0", register_status=200, article_reading_time=True)
    release("v1.4.0", dragon_articles_fail=False, author_filter_fails=True)
    release("v1.5.0")
    return releases


RELEASES: list[Release] = _story()
