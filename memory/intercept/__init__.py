"""Interception: every HTTP exchange the test process makes reaches the tap.

As vcrpy and responses do, testmem patches the HTTP libraries where they
send (`on_httpx`, `on_requests`, `on_urllib3`, `on_werkzeug`), so a suite records as it is, whatever
client, transport or SDK it uses. A library already imported is patched at
once; one imported later is patched as its import completes (an import hook),
so a suite that never imports httpx or requests never pays for them.
`remove` restores the libraries as they were.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

# library -> the module that patches it (its `patch(library)` returns the undo).
_PATCHERS = {
    "httpx": "testmem.memory.intercept.on_httpx",
    # httpx's successor, same API (Starlette's TestClient)
    "httpx2": "testmem.memory.intercept.on_httpx",
    "requests": "testmem.memory.intercept.on_requests",
    "starlette.testclient": "testmem.memory.intercept.on_starlette",  # for the matched route
    "werkzeug.test": "testmem.memory.intercept.on_werkzeug",  # Flask's test_client()
    "urllib3.connectionpool": "testmem.memory.intercept.on_urllib3",  # requests skips it
}
_patched: dict[str, tuple[ModuleType, Callable[[], None]]] = {}
_users = 0  # recorders that asked for interception (pytester nests sessions)


def install() -> None:
    global _users
    _users += 1
    for name in _PATCHERS:
        if name in sys.modules:
            _patch(name)
    if not any(isinstance(f, _OnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _OnImport())


def remove() -> None:
    global _users
    _users = max(0, _users - 1)
    if _users:
        return
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _OnImport)]
    for name, (_, undo) in list(_patched.items()):
        undo()
        del _patched[name]


def _patch(name: str) -> None:
    module = sys.modules[name]
    current = _patched.get(name)
    if current is not None and current[0] is module:
        return
    if current is not None:  # the module was imported afresh: its predecessor is gone
        current[1]()
    patcher = importlib.import_module(_PATCHERS[name])
    _patched[name] = (module, patcher.patch(module))


class _OnImport(importlib.abc.MetaPathFinder):
    """Patches a library as soon as it has been imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname not in _PATCHERS:
            return None
        sys.meta_path.remove(self)  # find the real spec, without us
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, fullname)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str) -> None:
        self._loader, self._name = loader, name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        with contextlib.suppress(Exception):  # a version we cannot patch still imports
            _patch(self._name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
