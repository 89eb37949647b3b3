"""Starlette's ``TestClient``: its transport calls the app itself, so the app
gets the same look-out for its scope as behind httpx's ``ASGITransport``."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from testmem.memory.intercept.on_httpx import observe


def patch(testclient: ModuleType) -> Callable[[], None]:
    transport = testclient._TestClientTransport
    original = transport.handle_request

    def handle_request(self: Any, request: Any) -> Any:
        observe(self)
        return original(self, request)

    transport.handle_request = handle_request

    def undo() -> None:
        transport.handle_request = original

    return undo
