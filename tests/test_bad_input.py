"""Bad input to any command: one line on stderr and exit 2, never a traceback
or a panic, and bounded memory. Each command runs as the real console script,
in its own process, so native output (deltalake's Rust panics) would show."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import testmem.memory
from testmem.memory.events import RunStarted, TestFinished
from testmem.memory.store import Store

CLI = "from testmem.agents.cli import main; main()"
ROOT = str(Path(testmem.memory.__file__).resolve().parents[1])
GB_KB = 1 << 20  # ru_maxrss is in KiB


def run_testmem(*args: str, store: Path, cwd: Path | None = None) -> tuple[int, str, int]:
    """Exit status, stderr and peak RSS (KiB) of ``testmem --dir STORE ARGS``."""
    env = {**os.environ, "PYTHONPATH": ROOT, "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("TESTMEM_NATIVE_STDERR", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CLI, "--dir", str(store), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd,
    )  # fmt: skip
    assert child.stderr is not None
    err = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, err, usage.ru_maxrss


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    Store.open(root, must_exist=False).events.append(
        [RunStarted(run_id="r1"), TestFinished(run_id="r1", nodeid="t::a", outcome="failed")]
    )
    return root


def junit_with_time(tmp_path: Path, time: str) -> str:
    path = tmp_path / f"junit-{time}.xml"
    path.write_text(
        f'<testsuite name="s" time="{time}"><testcase classname="c" name="n" time="{time}"/>'
        "</testsuite>"
    )
    return str(path)


BAD = [
    ["report", "--weeks", "200000", "--format", "md"],
    ["report", "--weeks", "100000", "--format", "json"],
    ["report", "--since", "0001-01-01"],
    ["report", "--until", "9999-12-31"],
    ["trends", "--weeks", "200000"],
    ["trends", "--weeks", "-3"],
    ["trends", "--since", "2026-01-01", "--until", "2025-01-01"],
    ["trends", "--tz", "Mars/Olympus\x1b[2J"],
    ["import", "junit", "/dev/zero"],
    ["cluster", "/dev/zero"],
    ["incident", "INC-\x1b]8;;http://evil\x07x"],
    ["query", "SELECT nosuchcolumn FROM events"],
    ["query", "SELECT count(*) FROM range(100000000000)", "--timeout", "1"],
    ["query", "SELECT * FROM range(200000)"],
    ["query", "SELECT 1", "--memory-limit", "1GB'; SET x = 'y"],
    ["query", "SELECT 1", "--timeout", "-1"],
    ["runs", "--limit", "lots"],
    ["runs", "--no-such-option"],
    ["--format", "yaml", "runs"],
    ["no-such-command"],
]


@pytest.mark.parametrize("args", BAD, ids=lambda a: " ".join(a)[:40])
def test_bad_input_is_one_line_and_exit_2(store: Path, args: list[str]) -> None:
    status, err, peak_kb = run_testmem(*args, store=store)
    assert (status, len(err.strip().splitlines())) == (2, 1), err
    assert "Traceback" not in err and "\x1b" not in err and peak_kb < GB_KB


@pytest.mark.parametrize("time", ["NaN", "1e308", "inf", "-1", "1e20"])
def test_a_junit_time_that_is_no_duration_imports_as_zero(
    store: Path, tmp_path: Path, time: str
) -> None:
    status, err, _ = run_testmem("import", "junit", junit_with_time(tmp_path, time), store=store)
    assert (status, err) == (0, "")


def test_compact_on_a_full_disk_says_one_line_without_a_panic(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(disk)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode:
        pytest.skip("no tmpfs to fill here (needs root and mount)")
    try:
        log = Store.open(disk / "store", must_exist=False).events
        for run in range(6):
            log.append([TestFinished(run_id=f"r{run}", nodeid=f"t::{n}") for n in range(50)])
        with (disk / "filler").open("wb") as filler, contextlib.suppress(OSError):
            filler.write(os.urandom(2 << 20))  # the disk is full now
        status, err, _ = run_testmem("compact", "--vacuum-hours", "0", store=disk / "store")
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "panicked" not in err and "No space left" in err


def test_native_output_to_fd_2_stays_off_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    import click

    from testmem.memory.cli import native_output_aside

    with native_output_aside():
        os.write(2, b"thread 'tokio-rt-worker' panicked at buffered.rs\n")
        click.echo("testmem: error: one line", err=True)
    assert capfd.readouterr().err == "testmem: error: one line\n"


def test_a_query_beyond_its_memory_spills_only_inside_the_store(
    store: Path, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    big_sort = (
        "SELECT max(v) FROM (SELECT range::VARCHAR || repeat('x', 200) AS v"
        " FROM range(4000000) ORDER BY v DESC LIMIT 2000000)"
    )
    status, err, peak_kb = run_testmem(
        "query", big_sort, "--memory-limit", "100MB", "--timeout", "300", store=store, cwd=cwd
    )
    assert (status, err) == (0, "") and peak_kb < GB_KB
    assert list(cwd.iterdir()) == [] and (store / "tmp" / "query").is_dir()
