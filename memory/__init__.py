"""testmem's memory: the event log, its projections and the recorder.

Heavy modules load on first use, so ``import memory`` (and pytest start-up
with the plugin installed) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memory.errors import NotFoundError, QueryError, StoreError, TestmemError
    from memory.store import Store
    from memory.transport import AsyncRecordingTransport, RecordingTransport, Tap

_EXPORTS = {
    "AsyncRecordingTransport": "memory.transport",
    "RecordingTransport": "memory.transport",
    "Tap": "memory.transport",
    "Store": "memory.store",
    "TestmemError": "memory.errors",
    "StoreError": "memory.errors",
    "QueryError": "memory.errors",
    "NotFoundError": "memory.errors",
}
__all__ = [
    "AsyncRecordingTransport",
    "NotFoundError",
    "QueryError",
    "RecordingTransport",
    "Store",
    "StoreError",
    "Tap",
    "TestmemError",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'memory' has no attribute {name!r}")
