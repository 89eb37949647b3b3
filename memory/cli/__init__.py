"""The ``testmem`` command line: thin commands over the library.

Each command opens the store, calls one library function and formats the
result. Library errors become one clear line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

import click

from testmem.memory.config import env_name
from testmem.memory.errors import DamagedFileWarning, TestmemError
from testmem.memory.markup import json_text, terminal

if TYPE_CHECKING:
    from testmem.memory.store import Store

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"testmem: error: {terminal(self.format_message())}", err=True)


class _Group(click.Group):
    """Turns library errors, and click's own usage errors, into one-line CLI
    errors, never tracebacks; and imports a command's module only when the
    command is asked for, so that each command loads what it uses alone
    (``--help`` imports them all: they import their libraries in the commands)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules: dict[str, str] = {}  # command name -> the module that defines it

    def lazy(self, module: str, *names: str) -> None:
        """Commands ``names`` are defined (registered on import) by ``module``."""
        self.modules.update(dict.fromkeys(names, module))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.modules:
            import_module(self.modules[cmd_name])
        return self.commands.get(cmd_name)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _one_line(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        warnings.showwarning = _warn  # a damaged file skipped: one line, not Python's format
        try:
            with native_output_aside():
                return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from exc
        except TestmemError as exc:
            raise CliError(str(exc)) from exc
        except OSError as exc:
            raise CliError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from exc


def _one_line(exc: click.UsageError) -> click.ClickException:
    """Click's usage error (a bad option, value or command) as one line; no
    arguments at all still show the help."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc
    where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
    return CliError(exc.format_message() + where)


@contextlib.contextmanager
def native_output_aside() -> Iterator[None]:
    """Keep what native code writes to fd 2 off the terminal during a command:
    deltalake's Rust panics print a message and a backtrace there before the
    error reaches Python, where it becomes the command's one-line message.
    Python's own ``sys.stderr`` keeps the terminal. ``$TESTMEM_NATIVE_STDERR=1``
    leaves fd 2 alone, for debugging."""
    if os.environ.get("TESTMEM_NATIVE_STDERR"):
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    if _writes_to_fd2(python_stderr):
        sys.stderr = open(terminal, "w", encoding=python_stderr.encoding, closefd=False)  # noqa: SIM115
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)
            os.close(terminal)
            sys.stderr = python_stderr


def _writes_to_fd2(stream: Any) -> bool:
    try:
        return bool(stream.fileno() == 2)
    except (AttributeError, ValueError, io.UnsupportedOperation):  # click's CliRunner, pytest
        return False


_FORMATS = ["table", "json", "csv"]
_OUTPUT = "testmem.output"  # the root's --format / --json / --wide, in its ctx.meta


@dataclass
class Output:
    fmt: str | None = None
    as_json: bool = False
    wide: bool = False


def _warn(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, DamagedFileWarning):
        click.echo(f"testmem: warning: {message}", err=True)
    else:
        _python_warning(message, category, *args, **kwargs)


_python_warning = warnings.showwarning


@click.group(cls=_Group)
@click.option(
    "--dir",
    "store_dir",
    help=f"Store directory or s3://BUCKET/PREFIX [${env_name('memory_dir')}; "
    "[tool.testmem] dir; data/].",
)
@click.option("--format", "fmt", type=click.Choice(_FORMATS), help="Output of listings [table].")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--wide", is_flag=True, help="Cut no table cell, even on a terminal.")
@click.version_option(package_name="testmem")
@click.pass_context
def cli(
    ctx: click.Context, store_dir: str | None, fmt: str | None, as_json: bool, wide: bool
) -> None:
    """testmem: the memory of your API test suite.

    Record with `pytest --memory`, then ask the memory questions. --format,
    --json and --wide may come before the command name or after it.

    Example: testmem runs --json
    """
    from testmem.memory.store import resolve_dir

    ctx.meta[_OUTPUT] = Output(fmt, as_json, wide)
    ctx.obj = resolve_dir(store_dir)


def open_store(must_exist: bool = True) -> Store:
    from testmem.memory.store import Store

    return Store.open(click.get_current_context().find_root().obj, must_exist=must_exist)


def _root_output() -> Output:
    context = click.get_current_context(silent=True)
    output = context.find_root().meta.get(_OUTPUT) if context else None
    return output if isinstance(output, Output) else Output()


def output_options(f: F) -> F:
    """--format table|json|csv, --json as its shorthand, and --wide; each also
    accepted before the command name."""

    @functools.wraps(f)
    def command(*args: Any, fmt: str | None, as_json: bool, wide: bool, **kwargs: Any) -> Any:
        root = _root_output()
        root.wide = root.wide or wide
        fmt = fmt or root.fmt or "table"
        return f(*args, fmt=fmt, as_json=as_json or root.as_json, **kwargs)

    decorated = click.option("--wide", is_flag=True, help="Cut no table cell.")(command)
    decorated = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(
        decorated
    )
    return click.option(
        "--format", "fmt", type=click.Choice(_FORMATS), help="Output format [table]."
    )(decorated)  # type: ignore[return-value]


def json_option(f: F) -> F:
    """--json for a command that prints text or JSON; also accepted before the
    command name (as --json or --format json)."""

    @functools.wraps(f)
    def command(*args: Any, as_json: bool, **kwargs: Any) -> Any:
        root = _root_output()
        return f(*args, as_json=as_json or root.as_json or root.fmt == "json", **kwargs)

    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)  # type: ignore[return-value]


def emit(columns: list[str], rows: list[tuple[Any, ...]], fmt: str, as_json: bool) -> None:
    """Print rows as an aligned table, JSON (a list of objects) or CSV.

    A table cuts long cells only on a terminal, and not with --wide. CSV is
    what Python's csv module writes (excel dialect: commas, double quotes
    where needed, CRLF line ends), with a header row, empty cells for null,
    times in ISO 8601, lists and objects as JSON, every value whole (on a
    terminal, less its escape sequences and control characters)."""
    fmt = "json" if as_json else fmt
    if fmt == "json":
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        click.echo(json_text(records, default=_jsonable, indent=2))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        on_terminal = sys.stdout.isatty()
        writer.writerows([[_csv_cell(v, on_terminal) for v in row] for row in rows])
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(table(columns, rows, max_width=_table_width()))


def _table_width() -> int | None:
    """How long a cell may be: cut on a terminal only, and not with --wide."""
    on_terminal = sys.stdout.isatty()
    return 60 if on_terminal and not _root_output().wide else None


def _csv_cell(value: Any, on_terminal: bool) -> Any:
    """A CSV cell, whole; on a terminal, without what the terminal would act on."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | dict | tuple):
        value = json_text(value, default=_jsonable)
    return terminal(value) if on_terminal and isinstance(value, str) else value


def emit_object(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json_text(obj, default=_jsonable, indent=2))
    else:
        width = max((len(k) for k in obj), default=0)
        for key, value in obj.items():
            click.echo(f"{key:<{width}}  {_cell(value, 200)}")


def emit_record(obj: dict[str, Any], fmt: str, as_json: bool) -> None:
    """One record: ``key  value`` lines, a JSON object, or a one-row CSV."""
    if fmt == "csv" and not as_json:
        emit(list(obj), [tuple(obj.values())], fmt, as_json)
    else:
        emit_object(obj, as_json or fmt == "json")


def table(columns: list[str], rows: list[tuple[Any, ...]], max_width: int | None = 60) -> str:
    if not rows:
        return "(no rows)"
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*columns), line.format(*("─" * w for w in widths))]
    out += [line.format(*r).rstrip() for r in cells]
    return "\n".join(out)


def _cell(value: Any, max_width: int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    text = terminal(text.replace("\n", " ⏎ "))
    return text if max_width is None or len(text) <= max_width else text[: max_width - 1] + "…"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def main() -> None:
    try:
        cli(prog_name="testmem")
    except BrokenPipeError:  # `testmem runs | head`
        sys.stderr.close()


# Where each command lives: its module is imported when the command is asked for.
cli.lazy(
    "testmem.memory.cli.incidents",
    *("similar", "incidents", "incident", "cluster", "label", "merge", "reindex"),
)
cli.lazy(
    "testmem.memory.cli.log",
    *("runs", "history", "failures", "flaky", "query", "compact", "stats"),
)
cli.lazy("testmem.memory.cli.maintenance", "doctor", "purge")
cli.lazy("testmem.memory.cli.quarantine", "quarantine", "unquarantine")
cli.lazy("testmem.memory.cli.report", "report", "trends", "summary", "import", "export")
cli.lazy("testmem.memory.cli.routes", "routes")
