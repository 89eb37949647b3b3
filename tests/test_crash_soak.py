"""SIGKILL at random moments loses no committed event and duplicates none,
and a triage killed half-way is finished by the next one, exactly once.

Real `pytest --memory` runs of a generated suite against a loopback API, a
real `testmem compact`, and real triage killed inside: the session-end triage
of a run killed the moment its first defect is committed, and
`testmem triage --run RUN` killed at a random moment after it linked the
failures (see `bench.soak`, which runs the 24-trial version and 12 triage
trials for docs/RELIABILITY.md, with kills of `testmem reindex` and the index
restored afterwards). A witness thread reads the log's snapshot while the
victim runs: every event it saw committed must be there afterwards, exactly
once. After a triage kill, `testmem triage --run RUN` runs again and every
failure must be linked once, every failed test decided once, every
escalation's incident have exactly one defect (`bench.soak.triage_violations`).
"""

from __future__ import annotations

import random

import pytest

from bench.soak import Soak, run_cli, run_soak

PLAN = ["record", "record", "compact", "record", "record", "triage-defect", "triage-cli"]


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


def test_a_triage_killed_while_filing_defects_had_not_decided_yet(soak: Soak) -> None:
    killed = next(t for t in soak.trials if t.kind == "triage-defect")
    assert killed.landed_in_triage and killed.phase == "filing defects"
    # Before the fix, decisions were committed first and re-triage skipped
    # them, so the incidents whose defect the kill cut off never got one.
    assert killed.retriage_added["decisions"] == 9 and killed.retriage_added["defects"] >= 1


def test_triage_facts_are_exactly_once_after_a_killed_triage_and_a_second_one(
    soak: Soak,
) -> None:
    triaged = [t for t in soak.trials if t.kind.startswith("triage")]
    assert [t.violations for t in triaged] == [[], []]
    assert all(t.run_id for t in triaged)


def test_the_store_opens_and_the_doctor_finds_it_healthy_after_repair(soak: Soak) -> None:
    runs = run_cli(soak, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    repaired = run_cli(soak, "doctor", "--repair", "--vacuum-hours", "0")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "log      ok" in repaired.stdout
