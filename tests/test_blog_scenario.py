"""Issue 16's figures, as a test: the blog API's six releases, in-process, judged.

One real `pytest --memory` run per release of `examples/blog_suite` (a
FastAPI app under Starlette's TestClient, a login before every test); the
truth comes from playing each change alone (`testmem.examples.blog_scenario`).
"""

from __future__ import annotations

import pytest

from testmem.examples.blog_scenario import (
    KINDS,
    BlogScenario,
    Played,
    defects_per_cause,
    incidents_per_cause,
)
from testmem.memory.incidents import Incidents
from testmem.memory.store import Store

REGRESSIONS = {c for c, kind in KINDS.items() if kind == "regression"}


# One worker plays the scenario once (`make test` runs `-n 2 --dist loadgroup`).
pytestmark = pytest.mark.xdist_group("blog-scenario")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[BlogScenario, list[Played]]:
    scenario = BlogScenario(tmp_path_factory.mktemp("blog"))
    return scenario, scenario.play()


@pytest.fixture(scope="module")
def played(scenario: tuple[BlogScenario, list[Played]]) -> list[Played]:
    return scenario[1]


def test_every_release_ran_to_completion(played: list[Played]) -> None:
    assert len(played) == 6
    assert all(p.exit_code in (0, 1) for p in played), [p.output[-2000:] for p in played]


def test_the_story_holds_a_test_hit_by_two_causes_in_one_build(played: list[Played]) -> None:
    # retried after its first cause, and failing for the second one
    two = [d for p in played for d in p.decisions if len(d.causes) > 1 and d.attempts > 1]
    assert any(KINDS[d.cause or ""] == "regression" for d in two), two


def test_at_least_98_percent_of_decisions_are_right(played: list[Played]) -> None:
    decisions = [d for p in played for d in p.decisions]
    wrong = [(d.nodeid, d.causes, d.action, d.category, d.reason) for d in decisions if not d.right]
    # the story is whole: every cause of it came to a decision at least once
    assert set(KINDS) <= {d.cause for d in decisions}, set(KINDS) - {d.cause for d in decisions}
    assert 1 - len(wrong) / len(decisions) >= 0.98, wrong


def test_each_cause_gets_exactly_one_incident(played: list[Played]) -> None:
    # a rename fails as a missing key in one test and a whole-dict diff in another
    per_cause = {c: len(i) for c, i in incidents_per_cause(played).items()}
    assert per_cause == dict.fromkeys(KINDS, 1)


def test_only_regressions_get_defects(played: list[Played]) -> None:
    per_cause = {c: len(d) for c, d in defects_per_cause(played).items() if d}
    assert set(per_cause) == REGRESSIONS, per_cause


def test_each_regression_gets_exactly_one_defect(played: list[Played]) -> None:
    per_cause = {c: len(d) for c, d in defects_per_cause(played).items() if d}
    assert per_cause == dict.fromkeys(REGRESSIONS, 1)


def test_a_fixed_regression_s_incidents_resolve(
    scenario: tuple[BlogScenario, list[Played]],
) -> None:
    fixed = incidents_per_cause(scenario[1])["dragon_articles_fail"]
    incidents = {i.incident_id: i for i in Incidents(Store.open(scenario[0].store_dir)).list()}
    assert fixed and {incidents[i].status for i in fixed} == {"resolved"}


def test_both_intended_changes_are_healed_and_verified(played: list[Played]) -> None:
    heals = [h for p in played for h in p.heals]
    healed = {h["nodeid"].split("[")[0] for h in heals if h["status"] == "verified"}
    assert {"test_profiles.py::test_profile_image", "test_users.py::test_register"} <= healed
    last = played[-1].decisions
    assert not [d for d in last if KINDS.get(d.cause or "") == "intended"]
