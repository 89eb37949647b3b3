"""testmem's memory: the event log, its projections and the recorder.

Heavy modules load on first use, so ``import memory`` (and pytest start-up
with the plugin installed) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from testmem.memory.errors import NotFoundError, QueryError, StoreError, TestmemError
    from testmem.memory.store import Store
    from testmem.memory.transport import AsyncRecordingTransport, RecordingTransport, Tap

_EXPORTS = {
    "AsyncRecordingTransport": "testmem.memory.transport",
    "RecordingTransport": "testmem.memory.transport",
    "Tap": "testmem.memory.transport",
    "Store": "testmem.memory.store",
    "TestmemError": "testmem.memory.errors",
    "StoreError": "testmem.memory.errors",
    "QueryError": "testmem.memory.errors",
    "NotFoundError": "testmem.memory.errors",
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
