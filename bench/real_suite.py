"""A real suite nobody on the project wrote, over six builds, judged as the blog scenario is.

    python -m bench.real_suite --repo PATH [--commit 6291bb4] [--workdir DIR]

The app is the RealWorld ("Conduit") backend of maddenvvs/fastapi-conduit-backend
(FastAPI, SQLite through aiosqlite), with its own suite of 334 tests: an
``httpx.AsyncClient`` over ``ASGITransport``, a login in a fixture before most
tests, usernames and slugs in paths, parametrised fixtures, whole-dict
equality. ``--repo`` is a clone of it (the ``fetch`` tool's
``github:maddenvvs/fastapi-conduit-backend`` mirror will do); the app and its
tests are taken from ``--commit`` untouched, into a virtualenv of their own
pinned requirements (testmem is seen through the running interpreter's site
directory).

Each build (`bench/real_suite_app.py`: two intended changes, an added field,
a 503 now and then, a 429 with ``Retry-After``, two 500 regressions, one fixed
later) is one ``pytest --memory`` run of the suite, triaged, its heals
applied with ``testmem heal apply`` in the app's virtualenv. The truth comes
from playing each change alone against an untouched copy of the suite, and
the figures are scored by the blog scenario's rules
(`testmem.examples.blog_scenario.score`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.real_suite_app import BUILDS, Build
from testmem.examples.blog_scenario import Played, defects_filed, print_build, score, summary
from testmem.examples.scenario import import_path
from testmem.memory.query import History
from testmem.memory.store import Store

KINDS = {
    "rename_profile_image_to": "intended",
    "register_status": "intended",
    "article_reading_time": "additive",
    "tags_503_rate": "transient",
    "profile_rate_limit_every": "transient",
    "article_fails": "regression",
    "current_user_fails": "regression",
}
APP = "backend/domain"  # the app and its tests, in the repository at that commit
SECRET = "a-secret-for-tests-only"  # the app refuses to start without a JWT key of 16+


class RealSuite:
    """The app twice (one copy to heal, one untouched for the truth), its
    virtualenv, and a fresh store."""

    def __init__(self, workdir: Path, repo: Path, commit: str) -> None:
        self.workdir, self.repo, self.commit = workdir, repo, commit
        self.store_dir = workdir / "store"
        self.suite_dir, self.pristine_dir = workdir / "suite", workdir / "pristine"
        self.venv = workdir / "venv"
        self._alone: dict[Build, frozenset[str]] = {}

    @property
    def python(self) -> str:
        """The interpreter of the app's virtualenv."""
        return str(self.venv / "bin" / "python")

    def prepare(self) -> None:
        for stale in (self.store_dir, self.suite_dir, self.pristine_dir):
            shutil.rmtree(stale, ignore_errors=True)
        for copy in (self.suite_dir, self.pristine_dir):
            copy.mkdir(parents=True)
            archive = subprocess.run(
                ["git", "-C", str(self.repo), "archive", self.commit, APP],
                capture_output=True, check=True,
            )  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(copy)], input=archive.stdout, check=True)
        if not Path(self.python).exists():
            self._make_venv()

    def _make_venv(self) -> None:
        """The app's own pinned requirements, then testmem's site directory after them."""
        subprocess.run([sys._base_executable, "-m", "venv", str(self.venv)], check=True)
        requirements = self.suite_dir / APP / "requirements.txt"
        pip = [self.python, "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "-r", str(requirements)], check=True)
        site = subprocess.run(
            [self.python, "-c",
             "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        ours = sysconfig.get_path("purelib")
        Path(site, "zz_testmem.pth").write_text(f"import site; site.addsitedir({ours!r})\n")

    def play(self, on_build: Any = lambda p: None) -> list[Played]:
        self.prepare()
        played = []
        for number, build in enumerate(BUILDS):
            played.append(self.play_build(number, build))
            on_build(played[-1])
        return played

    def play_build(self, number: int, build: Build) -> Played:
        from testmem.agents.triage import Triage

        started = time.monotonic()
        done = self._pytest(self.suite_dir, number, None, "--memory",
                            f"--memory-dir={self.store_dir}", f"--memory-build={build.label}",
                            "--no-memory-triage")  # fmt: skip
        pytest_s, started = time.monotonic() - started, time.monotonic()
        store = Store.open(self.store_dir)
        run_id = History(store).resolve_run("latest")
        Triage(store).run(run_id)
        triage_s = time.monotonic() - started
        played = Played(build, run_id, done.returncode, pytest_s, triage_s, output=done.stdout)  # type: ignore[arg-type]
        truth = {c: self.broken_by(number, c) for c in build.changes()}
        played.decisions = score(History(store), run_id, truth, KINDS)
        played.heals = self._apply_heals(History(store), run_id, number)
        played.defects = defects_filed(History(store), run_id)
        return played

    def broken_by(self, number: int, change: str) -> frozenset[str]:
        """The tests that fail when ``change`` of build ``number`` is played alone."""
        alone = replace(BUILDS[number].alone(change), label="")
        if alone not in self._alone:
            done = self._pytest(self.pristine_dir, number, change, "-rfE")
            failed = (line.split(" ")[1] for line in done.stdout.splitlines()
                      if line.startswith(("FAILED ", "ERROR ")))  # fmt: skip
            self._alone[alone] = frozenset(failed)
        return self._alone[alone]

    def _pytest(
        self, copy: Path, number: int, change: str | None, *args: str
    ) -> subprocess.CompletedProcess[str]:
        app = copy / APP
        command = [self.python, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
                   "-p", "bench.real_suite_app", "--rootdir=.", *args]  # fmt: skip
        return subprocess.run(
            command, cwd=app, env=self._env(number, change), capture_output=True, text=True,
            timeout=1800,
        )  # fmt: skip

    def _env(self, number: int, change: str | None = None) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": import_path(), "JWT_SECRET_KEY": SECRET}
        env |= {"REAL_SUITE_BUILD": str(number), "HF_HUB_OFFLINE": "1"}
        env.pop("REAL_SUITE_CHANGE", None)
        return env | ({"REAL_SUITE_CHANGE": change} if change else {})

    def _apply_heals(self, history: History, run_id: str, number: int) -> list[dict[str, Any]]:
        """``testmem heal apply`` each heal the run proposed, as a user would, in the
        app's virtualenv; the re-run meets the same build (the plugin, by
        ``PYTEST_ADDOPTS``)."""
        proposed = history.sql(
            """SELECT detail->>'$.heal_id' AS heal_id, nodeid FROM facts
               WHERE type = 'HealProposed' AND run_id = ?""",
            [run_id],
        ).dicts()
        env = self._env(number) | {"PYTEST_ADDOPTS": "-p bench.real_suite_app"}
        cli = [self.python, "-c", "from testmem.agents.cli import main; main()",
               "--dir", str(self.store_dir)]  # fmt: skip
        for heal in proposed:
            done = subprocess.run([*cli, "heal", "apply", heal["heal_id"]], env=env,
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            heal["output"] = (done.stdout + done.stderr)[-300:]
        outcomes = dict(
            History(Store.open(self.store_dir))
            .sql(
                """SELECT detail->>'$.heal_id', arg_max(type, occurred_at) FROM facts
                   WHERE type IN ('HealVerified', 'HealFailed') GROUP BY ALL"""
            )
            .rows
        )
        status = {"HealVerified": "verified", "HealFailed": "failed"}
        return [
            {**h, "status": status.get(outcomes.get(h["heal_id"], ""), "not applied")}
            for h in proposed
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="a clone of the app")
    parser.add_argument("--commit", default="6291bb4", help="the app's commit to play")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "real-suite")
    args = parser.parse_args()
    if not (args.repo / ".git").exists() and not (args.repo / "HEAD").exists():
        parser.error(f"{args.repo} is not a git repository")
    played = RealSuite(args.workdir, args.repo, args.commit).play(on_build=print_build)
    print(json.dumps(summary(played), indent=2))


if __name__ == "__main__":
    main()
