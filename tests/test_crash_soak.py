"""SIGKILL at random moments loses no committed event and duplicates none.

Real `pytest --memory` runs of a generated suite against a loopback API, a
real `testmem compact` and `testmem reindex`, each killed at a random moment
(see `bench.soak`, which runs the 24-trial version for docs/RELIABILITY.md,
with kills of `testmem reindex` and the index restored afterwards: those load
the embedding model, which takes minutes on a busy machine, so they live there).
A witness thread reads the log's snapshot while the victim runs: every event
it saw committed must be there afterwards, exactly once.
"""

from __future__ import annotations

import random

import pytest

from bench.soak import Soak, run_cli, run_soak

PLAN = ["record", "record", "compact", "record", "record"]


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Soak:
    random.seed(20261128)
    return run_soak(tmp_path_factory.mktemp("soak"), PLAN, tests=120)


def test_every_kind_of_victim_was_killed_with_events_committed(soak: Soak) -> None:
    assert [t.kind for t in soak.trials] == PLAN
    assert soak.trials[-1].witnessed > soak.trials[0].witnessed > 0


def test_no_witnessed_event_is_lost(soak: Soak) -> None:
    assert [t.lost for t in soak.trials] == [0] * len(PLAN)


def test_no_event_is_stored_twice(soak: Soak) -> None:
    assert [t.duplicated for t in soak.trials] == [0] * len(PLAN)


def test_the_store_opens_and_the_doctor_finds_it_healthy_after_repair(soak: Soak) -> None:
    runs = run_cli(soak, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    repaired = run_cli(soak, "doctor", "--repair", "--vacuum-hours", "0")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "log      ok" in repaired.stdout
