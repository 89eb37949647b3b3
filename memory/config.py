"""testmem's configuration, read the same way by the pytest plugin and the CLI.

A setting is looked up in five places; the first that has it wins:

1. the command line (``pytest --memory-dir``, ``testmem --dir``),
2. the environment (``TESTMEM_<KEY>``: ``TESTMEM_DIR``, ``TESTMEM_RETRIES``...;
   ``API_BASE_URL`` for ``api_base_url``),
3. ``[tool.testmem]`` in the nearest ``pyproject.toml`` that has that table,
   under the ini name without its ``memory_`` prefix (``dir``, ``retries``),
4. the pytest ini file, under the ini name (``memory_dir``): ``pytest.ini``,
   ``.pytest.ini``, ``[tool.pytest.ini_options]`` in ``pyproject.toml``,
   ``[pytest]`` in ``tox.ini``, ``[tool:pytest]`` in ``setup.cfg``,
5. the default.

Files are searched from the current directory upwards (the plugin starts at
pytest's rootdir and reads the ini file pytest chose). A relative path from a
file resolves against that file's directory; one from the command line or the
environment against the current directory; the default against the project
(the directory of the configuration file, else pytest's rootdir or the
current directory).
"""

from __future__ import annotations

import configparser
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testmem.memory.errors import TestmemError

_PREFIX = "memory_"
_ENV_NAMES = {"api_base_url": "API_BASE_URL"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

IniReader = Callable[[str], Any]


class ConfigError(TestmemError):
    """A setting has a value of the wrong kind."""


def toml_key(name: str) -> str:
    """The key of ini setting ``name`` in ``[tool.testmem]``."""
    return name.removeprefix(_PREFIX)


def env_name(name: str) -> str:
    """The environment variable of ini setting ``name``."""
    return _ENV_NAMES.get(name, "TESTMEM_" + toml_key(name).upper())


@dataclass(frozen=True)
class Value:
    """A setting's value and where it came from."""

    raw: Any
    origin: str  # "command line", "$TESTMEM_DIR", a file's path
    base: Path  # what a relative path in it is relative to

    def text(self) -> str:
        return str(self.raw)

    def path(self) -> Path:
        path = Path(self.text()).expanduser()
        return path if path.is_absolute() else self.base / path

    def flag(self) -> bool:
        if isinstance(self.raw, bool):
            return self.raw
        word = self.text().strip().lower()
        if word not in _TRUE | _FALSE:
            raise ConfigError(f"{self.origin}: expected true or false, not {self.raw!r}")
        return word in _TRUE

    def lines(self) -> list[str]:
        if isinstance(self.raw, list):
            return [str(v) for v in self.raw]
        return [line.strip() for line in self.text().splitlines() if line.strip()]


class Settings:
    """The project's configuration: ``[tool.testmem]`` and the pytest ini keys."""

    def __init__(
        self,
        table: Mapping[str, Any],
        table_file: Path | None,
        ini: IniReader,
        ini_file: Path | None,
        project: Path,
    ) -> None:
        self.table = table
        self.table_file = table_file
        self._ini = ini
        self.ini_file = ini_file
        self.project = project

    @classmethod
    def discover(cls, start: Path | None = None) -> Settings:
        """The configuration a command run in ``start`` (default: cwd) sees."""
        start = (start or Path.cwd()).resolve()
        table, table_file = testmem_table(start)
        ini, ini_file = pytest_ini(start)
        found = ini_file or table_file
        return cls(table, table_file, ini.get, ini_file, found.parent if found else start)

    @classmethod
    def of_pytest(cls, config: Any) -> Settings:
        """The configuration of a pytest session: pytest's own ini file."""
        rootdir = Path(config.rootpath)
        table, table_file = testmem_table(rootdir)
        inipath = getattr(config, "inipath", None)

        def ini(name: str) -> Any:
            try:
                return config.getini(name)
            except ValueError:  # a key this pytest session did not declare
                return None

        return cls(table, table_file, ini, Path(inipath) if inipath else None, rootdir)

    def value(
        self, name: str, given: Any = None, env: Mapping[str, str] | None = None
    ) -> Value | None:
        """Setting ``name`` (its ini name) from the first place that has it."""
        if _is_set(given):
            return Value(given, "command line", Path.cwd())
        variable = env_name(name)
        from_env = (os.environ if env is None else env).get(variable)
        if _is_set(from_env):
            return Value(from_env, f"${variable}", Path.cwd())
        key = toml_key(name)
        if self.table_file is not None and _is_set(self.table.get(key)):
            return Value(
                self.table[key], f"{self.table_file} [tool.testmem] {key}", self.table_file.parent
            )
        from_ini = self._ini(name)
        if _is_set(from_ini):
            base = self.ini_file.parent if self.ini_file else self.project
            return Value(from_ini, f"{self.ini_file or 'ini'} {name}", base)
        return None

    def text(self, name: str, default: str | None = None, given: Any = None) -> str | None:
        found = self.value(name, given)
        return found.text() if found else default

    def flag(self, name: str, default: bool, given: Any = None) -> bool:
        found = self.value(name, given)
        return found.flag() if found else default

    def lines(self, name: str, given: Any = None) -> list[str]:
        found = self.value(name, given)
        return found.lines() if found else []

    def path(self, name: str, default: str, given: Any = None) -> Path:
        """A path setting; the default is relative to the project."""
        found = self.value(name, given)
        return found.path() if found else self.project / default

    def section(self, key: str) -> dict[str, Any]:
        """A sub-table of ``[tool.testmem]`` (``[tool.testmem.defects]``)."""
        table = self.table.get(key)
        return table if isinstance(table, dict) else {}


def _is_set(value: Any) -> bool:
    return value is not None and value != "" and value != []


def _upwards(start: Path) -> Iterator[Path]:
    yield start
    yield from start.parents


def testmem_table(start: Path) -> tuple[dict[str, Any], Path | None]:
    """``[tool.testmem]`` of the nearest ``pyproject.toml`` that has one."""
    for directory in _upwards(start):
        table = _toml(directory / "pyproject.toml").get("tool", {}).get("testmem")
        if isinstance(table, dict):
            return table, directory / "pyproject.toml"
    return {}, None


def pytest_ini(start: Path) -> tuple[dict[str, Any], Path | None]:
    """The ini keys of the file pytest would choose when run in ``start``."""
    for directory in _upwards(start):
        for name, read in _INI_FILES:
            path = directory / name
            if path.is_file():
                keys = read(path)
                if keys is not None:
                    return keys, path
    return {}, None


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _ini_section(section: str, always: bool = False) -> Callable[[Path], dict[str, Any] | None]:
    def read(path: Path) -> dict[str, Any] | None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if parser.has_section(section):
            return dict(parser.items(section))
        return {} if always else None

    return read


def _pyproject_ini(path: Path) -> dict[str, Any] | None:
    options = _toml(path).get("tool", {}).get("pytest", {}).get("ini_options")
    return options if isinstance(options, dict) else None


# pytest's order within one directory (`_pytest.config.findpaths.locate_config`).
_INI_FILES: list[tuple[str, Callable[[Path], dict[str, Any] | None]]] = [
    ("pytest.ini", _ini_section("pytest", always=True)),
    (".pytest.ini", _ini_section("pytest", always=True)),
    ("pyproject.toml", _pyproject_ini),
    ("tox.ini", _ini_section("pytest")),
    ("setup.cfg", _ini_section("tool:pytest")),
]
