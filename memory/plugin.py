"""testmem's pytest plugin (entry point ``pytest11: testmem``).

Hooks stay thin: options and fixtures live here, the work in `Recorder`,
which exists only when ``--memory`` is given. Disable with ``-p no:testmem``.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx

    from testmem.memory.config import Settings
    from testmem.memory.recorder import Recorder
    from testmem.memory.routes import OpenApiRoutes
    from testmem.memory.store import Store

recorder_key: pytest.StashKey[Recorder] = pytest.StashKey()
settings_key: pytest.StashKey[Settings] = pytest.StashKey()

# The flags that take a value (`_option`): see `testmem.memory.rootdir`.
_VALUE_FLAGS: set[str] = set()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("testmem", "testmem: remember runs, HTTP exchanges and failures")
    group.addoption(
        "--memory", action="store_true", default=False, help="Record this run into the store."
    )
    _option(
        parser, group, "--memory-dir", "memory_dir",
        "Store directory or s3://BUCKET/PREFIX [$TESTMEM_DIR; data/].",
    )  # fmt: skip
    _option(parser, group, "--memory-build", "memory_build", "Build label [CI commit; git HEAD].")
    _option(parser, group, "--api-base-url", "api_base_url", "Base URL of the API [$API_BASE_URL].")
    _option(
        parser,
        group,
        "--memory-body-cap",
        "memory_body_cap",
        "Bytes kept per body and traceback [65536].",
    )
    _option(
        parser,
        group,
        "--memory-retries",
        "memory_retries",
        "Retries a failure may get when an agent advises it [2; 0 disables].",
    )
    _option(
        parser,
        group,
        "--memory-retry-budget",
        "memory_retry_budget",
        "Seconds all retry waits of a session may take [60].",
    )
    group.addoption(
        "--no-memory-triage",
        dest="memory_triage",
        action="store_false",
        default=None,
        help="Skip post-run triage.",
    )
    # Defaults are None so that [tool.testmem] can tell "unset" (testmem.memory.config).
    parser.addini(
        "memory_triage", "Triage failures after the run [true].", type="bool", default=None
    )
    parser.addini("memory_retry_max_wait", "Cap on one retry wait, seconds [30].", default=None)
    parser.addini(
        "memory_quarantine_flaky",
        "Quarantine tests the memory scores as flaky [false].",
        type="bool",
        default=None,
    )
    parser.addini(
        "memory_quarantine_days", "Days the flaky policy quarantines a test [14].", default=None
    )
    parser.addini("memory_flush_events", "Flush after this many events [1000].", default=None)
    parser.addini("memory_flush_seconds", "Flush events older than this [2.0].", default=None)
    parser.addini(
        "memory_redact_headers", "Extra header names to redact.", type="linelist", default=[]
    )
    parser.addini(
        "memory_redact_fields", "Extra JSON/form fields to redact.", type="linelist", default=[]
    )
    parser.addini(
        "memory_redact_params", "Extra query parameters to redact.", type="linelist", default=[]
    )
    parser.addini(
        "memory_record_http",
        "Record every HTTP exchange of httpx and requests, not only api_client's [true].",
        type="bool",
        default=None,
    )
    parser.addini(
        "memory_openapi", "OpenAPI document (path or URL) whose paths are route templates."
    )
    parser.addini("api_timeout", "Timeout in seconds of the api_client fixture [10].", default=None)


def _option(
    parser: pytest.Parser, group: pytest.OptionGroup, flag: str, name: str, help: str
) -> None:
    group.addoption(flag, dest=name, default=None, help=help)
    parser.addini(name, help)
    _VALUE_FLAGS.add(flag)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    """Undo pytest taking ``--memory-dir DIR``'s value for a test path."""
    from testmem.memory.rootdir import correct_setup

    correct_setup(early_config, args, frozenset(_VALUE_FLAGS))


def settings(config: pytest.Config) -> Settings:
    """The session's configuration files, read once (see `testmem.memory.config`)."""
    if settings_key not in config.stash:
        from testmem.memory.config import Settings

        config.stash[settings_key] = Settings.of_pytest(config)
    return config.stash[settings_key]


def _setting(config: pytest.Config, name: str) -> str | None:
    """Command line, environment, [tool.testmem], pytest ini: the first that has it."""
    return settings(config).text(name, given=config.getoption(name, None))


def _number(config: pytest.Config, name: str, default: float, minimum: float = 0) -> float:
    raw = _setting(config, name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        flag = "--" + name.replace("_", "-")
        raise pytest.UsageError(f"{flag} must be a number >= {minimum:g}, not {raw!r}")
    return value


def _flag(config: pytest.Config, name: str, default: bool) -> bool:
    from testmem.memory.config import ConfigError

    try:
        return settings(config).flag(name, default, given=config.getoption(name, None))
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc


def _openapi(config: pytest.Config) -> OpenApiRoutes | None:
    source = _setting(config, "memory_openapi")
    if not source:
        return None
    from testmem.memory.routes import OpenApiRoutes

    path = source if "://" in source else str(config.rootpath / source)
    try:
        return OpenApiRoutes.load(path)
    except Exception as exc:  # a bad document is the user's to fix, said in one line
        raise pytest.UsageError(f"memory_openapi: cannot read {source!r}: {exc}") from None


def triage_enabled(config: pytest.Config) -> bool:
    return _flag(config, "memory_triage", True)


def record_http_enabled(config: pytest.Config) -> bool:
    return _flag(config, "memory_record_http", True)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from testmem.memory import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("memory"):
        return
    from testmem.memory.errors import StoreError
    from testmem.memory.events import DEFAULT_CAP
    from testmem.memory.recorder import Recorder
    from testmem.memory.redact import Redactor
    from testmem.memory.retry import Retrier, RetryBudget
    from testmem.memory.store import Store, resolve_dir

    triage_enabled(config)  # a bad value is a usage error now, not after the run
    cap = int(_number(config, "memory_body_cap", DEFAULT_CAP, minimum=1))
    retries = int(_number(config, "memory_retries", 2))
    budget = RetryBudget(
        _number(config, "memory_retry_budget", 60), _number(config, "memory_retry_max_wait", 30)
    )
    found = settings(config)
    redactor = Redactor.with_extra(
        found.lines("memory_redact_headers"),
        found.lines("memory_redact_fields"),
        found.lines("memory_redact_params"),
    )
    try:
        root = resolve_dir(config.getoption("memory_dir"), found)
    except StoreError as exc:  # a URL of a kind no store lives at
        raise pytest.UsageError(str(exc)) from exc
    # The retry advisor reads the tests' history at the first failure: the
    # store process reads it beforehand when tests retry in this process
    # (with xdist, `-n N`, they run and retry in the workers).
    retries_here = retries > 0 and not getattr(config.option, "numprocesses", None)
    store = Store(root)
    recorder = Recorder(config, store, redactor, cap, prefetch_history=retries_here)
    recorder.tap.openapi = _openapi(config)
    config.stash[recorder_key] = recorder
    config.pluginmanager.register(recorder, "testmem-recorder")
    if not hasattr(config, "workerinput"):
        from testmem.memory.summary import StepSummary

        _register_quarantine(config, store)
        config.pluginmanager.register(StepSummary(), "testmem-step-summary")
    if retries > 0:
        from testmem.memory.surefire import SurefireAttempts

        config.pluginmanager.register(Retrier(retries, budget), "testmem-retrier")
        config.pluginmanager.register(SurefireAttempts(redactor), "testmem-surefire")


def _register_quarantine(config: pytest.Config, store: Store) -> None:
    from testmem.memory.quarantine import FLAKY_DAYS, QuarantinedFailures

    policy = _flag(config, "memory_quarantine_flaky", False)
    days = _number(config, "memory_quarantine_days", FLAKY_DAYS) if policy else None
    config.pluginmanager.register(QuarantinedFailures(store, days), "testmem-quarantine")


def pytest_unconfigure(config: pytest.Config) -> None:
    recorder = config.stash.get(recorder_key, None)
    if recorder is not None:
        recorder.close()
        config.pluginmanager.unregister(recorder)
        del config.stash[recorder_key]


@pytest.fixture(scope="session")
def api_base_url(pytestconfig: pytest.Config) -> str:
    """Base URL of the API under test (override this fixture to start a server)."""
    url = _setting(pytestconfig, "api_base_url")
    if not url:
        pytest.fail("no API base URL: pass --api-base-url, set ini api_base_url or $API_BASE_URL")
    return url


@pytest.fixture
def api_client(api_base_url: str, pytestconfig: pytest.Config) -> Iterator[httpx.Client]:
    """An httpx.Client for the API under test; every exchange is recorded."""
    import httpx

    from testmem.memory.transport import RecordingTransport

    timeout = _number(pytestconfig, "api_timeout", 10)
    transport = RecordingTransport(httpx.HTTPTransport(verify=_tls_context()))
    with httpx.Client(base_url=api_base_url, transport=transport, timeout=timeout) as client:
        yield client


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Building a TLS context costs ~200 ms; one per session, not one per test.
    return ssl.create_default_context()
