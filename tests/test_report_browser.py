"""The HTML report in a real browser: headless Chromium renders it, and the
screenshot, the DOM and the console show the charts really drew."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from bench.history import generate
from testmem.memory.query import History
from testmem.memory.report import render, weekly_report
from testmem.memory.store import Store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium is not installed (apt-get install chromium)",
)
BLUE = (0x25, 0x63, 0xEB)  # the first series colour of every chart


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML report of a small synthetic history: three weeks of a 60-test suite."""
    root = tmp_path_factory.mktemp("store")
    shape = argparse.Namespace(tests=60, days=21, runs_per_day=3, exchange_share=0.5, seed=1)
    generate(root, shape)
    page = root / "report.html"
    page.write_text(render(weekly_report(History(Store(root)), weeks=4), "html"))
    return page


def colours(png: Path) -> Counter[tuple[int, ...]]:
    from PIL import Image

    with Image.open(png) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return Counter({tuple(colour): count for count, colour in found})  # type: ignore[arg-type]


@pytest.mark.parametrize("size", ["1280,1800", "390,2400"], ids=["laptop", "phone"])
def test_screenshot_shows_the_charts(report_page: Path, tmp_path: Path, size: str) -> None:
    shot = tmp_path / "report.png"
    chromium(report_page, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={size}")
    seen = colours(shot)
    assert len(seen) > 50, "the page rendered (nearly) blank"
    near_blue = sum(
        n for c, n in seen.items() if all(abs(a - b) < 24 for a, b in zip(c, BLUE, strict=True))
    )
    assert near_blue > 500, "no chart series drawn in the first series colour"


def test_dom_holds_every_chart_and_the_console_stays_quiet(
    report_page: Path, tmp_path: Path
) -> None:
    done = chromium(report_page, tmp_path / "profile", "--dump-dom")
    assert done.stdout.count('class="chart"') == 5
    assert done.stdout.count("<polyline") > 5
    assert console_messages(done.stderr) == []


def test_the_console_check_sees_a_script_error(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><script>throw new Error('report broke')</script>")
    done = chromium(page, tmp_path / "profile", "--dump-dom")
    assert any("report broke" in line for line in console_messages(done.stderr))
