"""Hooks that `memory` declares and `agents` implements.

The recorder must ask an agent questions during a run (should this failure be
retried?) without `memory` importing `agents`: pytest's hook mechanism
inverts that dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from testmem.memory.retry import RetryAdvice
    from testmem.memory.store import Store


@pytest.hookspec(firstresult=True)
def pytest_testmem_retry_advice(
    item: pytest.Item,
    reports: list[pytest.TestReport],
    exchanges: list[dict[str, Any]],
    attempt: int,
) -> RetryAdvice | None:
    """Should this failed attempt of ``item`` run again? ``exchanges`` are the
    HTTP exchanges the attempt made (plain dicts, redacted). None means no."""


def pytest_testmem_run_recorded(config: pytest.Config, store: Store, run_id: str) -> None:
    """The run's events are all in the log: post-run work (triage) may start."""


@pytest.hookspec(firstresult=True)
def pytest_testmem_summary(config: pytest.Config) -> list[str] | None:
    """Lines for the "testmem" section of the terminal summary."""
