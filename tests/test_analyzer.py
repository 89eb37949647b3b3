"""The analyzer's rules: each kind of evidence leads to its category and action."""

from __future__ import annotations

from dataclasses import replace

from testmem.agents.analyzer import Exchange, FailureContext, TestRecord, classify
from testmem.agents.schema import ADDED, REMOVED, RENAMED, STATUS_CHANGED, ApiChange

GET_USER = Exchange("GET", "/users/{id}", 200)


def failure(**overrides: object) -> FailureContext:
    values: dict = {
        "nodeid": "tests/test_users.py::test_get_user",
        "phase": "call",
        "exception_type": "AssertionError",
        "message": "assert 404 == 200",
        "exchanges": [GET_USER],
    }
    values.update(overrides)
    return FailureContext(**values)


def rename(observations: int = 2) -> ApiChange:
    return ApiChange(
        kind=RENAMED,
        route="/users/{id}",
        method="GET",
        since_run="r3",
        since_build="v1.3.0",
        observations=observations,
        path="name",
        new_path="full_name",
    )


def test_rate_limited_answer_is_transient_and_retried() -> None:
    verdict = classify(failure(exchanges=[Exchange("GET", "/inventory/{id}", 429, None, "1")]))
    assert (verdict.action, verdict.category) == ("retry", "transient")
    assert "429" in verdict.reason


def test_timeout_is_transient() -> None:
    verdict = classify(failure(exception_type="httpx.ReadTimeout", exchanges=[]))
    assert (verdict.action, verdict.category) == ("retry", "transient")


def test_transient_failure_that_retries_never_rescued_is_escalated() -> None:
    ctx = failure(
        exchanges=[Exchange("GET", "/orders/{id}", 503)], retries_tried=5, retries_rescued=0
    )
    assert classify(ctx).action == "escalate"


def test_pass_on_retry_in_this_run_is_flaky() -> None:
    verdict = classify(failure(attempts=2, final_outcome="passed"))
    assert (verdict.action, verdict.category) == ("retry", "flaky")


def test_history_of_flips_makes_a_failure_flaky() -> None:
    verdict = classify(failure(history=TestRecord(runs=10, failed_runs=4, flip_rate=0.6)))
    assert verdict.category == "flaky"


def test_server_error_is_a_regression_to_escalate() -> None:
    verdict = classify(
        failure(exchanges=[Exchange("GET", "/orders/{id}", 500)], message="assert 500 == 200")
    )
    assert (verdict.action, verdict.category) == ("escalate", "regression")


def test_renamed_field_the_assertion_touches_is_healed() -> None:
    verdict = classify(failure(message="KeyError: 'name'", changes=[rename()]))
    assert (verdict.action, verdict.category) == ("heal", "outdated")


def test_change_seen_once_is_outdated_but_not_yet_healed() -> None:
    verdict = classify(failure(message="KeyError: 'name'", changes=[rename(observations=1)]))
    assert (verdict.action, verdict.category) == ("none", "outdated")


def test_change_the_assertion_does_not_touch_is_ignored() -> None:
    verdict = classify(failure(message="KeyError: 'email'", changes=[rename()]))
    assert verdict.category != "outdated"


def test_status_change_is_healed_when_the_assertion_compares_the_old_status() -> None:
    change = ApiChange(
        kind=STATUS_CHANGED,
        route="/users",
        method="POST",
        since_run="r4",
        since_build="v1.4.0",
        observations=2,
        old="201",
        new="200",
    )
    ctx = failure(
        message="assert 200 == 201", exchanges=[Exchange("POST", "/users", 200)], changes=[change]
    )
    assert classify(ctx).action == "heal"


def test_field_removed_while_its_resource_fails_is_a_regression() -> None:
    change = ApiChange(
        kind=REMOVED,
        route="/inventory",
        method="GET",
        since_run="r9",
        since_build="v1.7.0",
        observations=2,
        path="items[].warehouse",
    )
    ctx = failure(
        message="KeyError: 'warehouse'",
        exchanges=[Exchange("GET", "/inventory", 200)],
        changes=[change],
        failing_routes=frozenset({"/inventory/{id}"}),
    )
    assert (classify(ctx).action, classify(ctx).category) == ("escalate", "regression")


def test_recurring_unexplained_failure_is_escalated() -> None:
    verdict = classify(failure(incident_runs=2))
    assert (verdict.action, verdict.category) == ("escalate", "regression")


def test_first_unexplained_sighting_waits() -> None:
    verdict = classify(failure())
    assert (verdict.action, verdict.category) == ("none", "unknown")


def test_human_label_outweighs_the_evidence() -> None:
    ctx = failure(exchanges=[Exchange("GET", "/orders/{id}", 500)], label="flaky")
    verdict = classify(ctx)
    assert (verdict.action, verdict.category) == ("retry", "flaky")
    assert "labelled" in verdict.reason


def test_a_single_flip_is_not_flakiness() -> None:
    broke_once = TestRecord(runs=4, failed_runs=1, flip_rate=1 / 3)
    assert classify(failure(history=broke_once)).category != "flaky"


def test_api_change_outweighs_a_flaky_history() -> None:
    flaky = TestRecord(runs=10, failed_runs=5, flip_rate=0.6)
    verdict = classify(failure(message="KeyError: 'name'", changes=[rename()], history=flaky))
    assert (verdict.action, verdict.category) == ("heal", "outdated")


def test_a_rename_heals_while_another_resource_of_the_api_answers_500s() -> None:
    change = replace(rename(), route="/api/profiles/{username}", path="profile.image")
    ctx = failure(
        message="KeyError: 'image'",
        exchanges=[Exchange("GET", "/api/profiles/{username}", 200)],
        changes=[change],
        failing_routes=frozenset({"/api/articles/{slug}"}),
    )
    assert (classify(ctx).action, classify(ctx).category) == ("heal", "outdated")


def test_a_status_change_heals_while_the_same_resource_answers_500s_elsewhere() -> None:
    change = ApiChange(
        kind=STATUS_CHANGED, route="/api/users", method="POST", since_run="r3",
        since_build="v1.3.0", observations=2, old="201", new="200",
    )  # fmt: skip
    ctx = failure(
        message="assert 200 == 201",
        exchanges=[Exchange("POST", "/api/users", 200)],
        changes=[change],
        failing_routes=frozenset({"/api/users/{id}/avatar"}),
    )
    assert classify(ctx).action == "heal"


def test_every_verdict_names_the_rule_that_decided() -> None:
    assert classify(failure(exchanges=[Exchange("GET", "/users/{id}", 503)])).rule == "transient"
    assert classify(failure(exchanges=[Exchange("GET", "/users/{id}", 500)])).rule == "regression"
    assert classify(failure()).rule == "waiting"


def test_a_new_field_breaking_a_whole_dict_equality_is_an_api_change() -> None:
    change = ApiChange(
        kind=ADDED, route="/users/{id}", method="GET", since_run="r5", since_build="v1.5.0",
        observations=2, path="user.tier", new="string",
    )  # fmt: skip
    message = "assert {'user': {...}} == {'user': {...}}\n  \n  Differing items:\n  ..."
    ctx = failure(message=message, changes=[change])
    assert (classify(ctx).action, classify(ctx).category) == ("heal", "outdated")


def test_an_intermittent_503_that_retries_rescued_before_stays_transient_across_runs() -> None:
    # an intermittent 503 met on every attempt by one test, in its third build
    ctx = failure(
        exchanges=[Exchange("GET", "/tags", 503)],
        attempts=3,
        incident_runs=3,
        retries_tried=12,
        retries_rescued=11,
    )
    assert (classify(ctx).action, classify(ctx).category) == ("retry", "transient")


def test_a_503_that_no_retry_ever_rescued_persists_and_is_escalated() -> None:
    ctx = failure(exchanges=[Exchange("GET", "/tags", 503)], attempts=3, incident_runs=3)
    assert classify(ctx).action == "escalate"
