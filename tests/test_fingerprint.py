"""Fingerprints: volatile parts masked, identifying parts kept, signatures stable."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testmem.memory.fingerprint import TEXT_CAP, fingerprint, normalise, own_frames, structure_score

# Two occurrences of one cause that differ only in one volatile kind.
VOLATILE = {
    "number": ("expected 3 items, got 17", "expected 12 items, got 4"),
    "id in a word": ("order ord_9f8e2a not found", "order ord_11bc07 not found"),
    "sku": ("no stock for MS-2002", "no stock for CB-4004"),
    "uuid": (
        "user 123e4567-e89b-12d3-a456-426614174000 missing",
        "user 9b2f0c1e-0d4a-4c2b-9a57-3f1e2d4c5b6a missing",
    ),
    "hex": ("etag deadbeef12345678 stale", "etag 0a1b2c3d4e5f6789 stale"),
    "timestamp": ("expired at 2026-11-28T21:59:42.123Z", "expired at 2025-01-03T08:00:00+02:00"),
    "http date": ("Date: Sat, 28 Nov 2026 21:59:42 GMT", "Date: Mon, 02 Feb 2026 01:02:03 GMT"),
    "date": ("due 2026-11-28", "due 2024-02-29"),
    "duration": ("took 250ms", "took 3.5s"),
    "ip and port": ("refused by 127.0.0.1:54321", "refused by 10.0.0.7:8080"),
    "localhost port": ("refused by localhost:50111", "refused by localhost:39999"),
    "e-mail": ("no account for ada@example.com", "no account for alan.t+ci@mail.example.org"),
    "temp path": (
        "missing /tmp/pytest-of-ci/pytest-12/test_get0/fixture.json",
        "missing /tmp/pytest-of-root/pytest-3/test_get1/fixture.json",
    ),
    "memory address": ("<User object at 0x7f3a2b1c4d50>", "<User object at 0x7f00aa11bb22>"),
    "quoted value after =": ("filter name='Ada' failed", 'filter name="Grace Hopper" failed'),
    "id in a URL path": (
        "GET http://127.0.0.1:5000/users/42/orders failed",
        "GET http://localhost:61000/users/1017/orders failed",
    ),
    "id in a bare path": ("GET /orders/1001 failed", "GET /orders/77 failed"),
    "request id": ("request_id=req-8f3a2b1c0d9e", "request_id=req-000badc0ffee"),
}

# Two failures that differ only in one identifying kind.
IDENTIFYING = {
    "exception type": ("ReadTimeout: timed out", "ConnectTimeout: timed out"),
    "assertion operator": ("assert 'x' == 'y'", "assert 'x' != 'y'"),
    "assertion shape": ("assert 'name' in body", "assert 'name' not in body"),
    "http method": ("GET /users/{id} failed", "DELETE /users/{id} failed"),
    "status code": ("assert 500 == 200", "assert 503 == 200"),
    "status in a response repr": ("<Response [404 Not Found]>", "<Response [410 Gone]>"),
    "route": ("GET /users/42 failed", "GET /orders/42 failed"),
    "json key": ("KeyError: 'name'", "KeyError: 'email'"),
    "dict key": ("{'id': 1, 'total': 3}", "{'id': 1, 'amount': 3}"),
}


@pytest.mark.parametrize("kind", VOLATILE)
def test_normalise_masks_each_volatile_kind(kind: str) -> None:
    first, second = VOLATILE[kind]
    assert normalise(first) == normalise(second)
    assert normalise(first) != first


@pytest.mark.parametrize("kind", IDENTIFYING)
def test_normalise_keeps_each_identifying_kind(kind: str) -> None:
    first, second = IDENTIFYING[kind]
    assert normalise(first) != normalise(second)


def test_status_codes_survive_while_other_numbers_go() -> None:
    masked = normalise("assert 404 == 200\n +  where 404 = <Response [404 Not Found]>.status_code")
    assert masked == "assert 404 == 200\n + where 404 = <Response [404 Not Found]>.status_code"
    assert normalise("assert 404 == 17") == "assert <n> == <n>"


def test_json_keys_stay_and_their_values_go() -> None:
    masked = normalise("assert {'id': 42, 'name': 'Ada', 'created_at': '2026-11-28T10:00:00Z'}")
    assert masked == "assert {'id': <n>, 'name': '<v>', 'created_at': '<v>'}"


LONG_TRACEBACK = """\
    def test_get_user(api_client):
        response = api_client.get(f"/users/{user_id}")
>       check(response)

tests/api/test_users.py:{line}: \n_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

    def check(response):
>       assert response.status_code == 200
E       assert 500 == 200
E        +  where 500 = <Response [500 Internal Server Error]>.status_code

tests/api/helpers.py:{other}: AssertionError"""


def occurrence(line: int, other: int, port: int, request_id: str) -> dict[str, Any]:
    return {
        "message": f"assert 500 == 200 (request {request_id} on 127.0.0.1:{port})",
        "traceback": LONG_TRACEBACK.replace("{line}", str(line)).replace("{other}", str(other)),
    }


def test_one_cause_has_one_signature_across_volatile_variation() -> None:
    first = fingerprint(**occurrence(12, 40, 50111, "req-8f3a2b1c0d9e"), nodeid="t.py::t[1]")
    second = fingerprint(**occurrence(14, 41, 39999, "req-000badc0ffee"), nodeid="t.py::t[2]")
    assert first.signature == second.signature
    assert len(first.signature) == 16 and int(first.signature, 16) >= 0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"message": "assert 500 == 200"}, {"message": "assert 503 == 200"}),
        ({"message": "'name'", "exception_type": "KeyError"}, {"message": "'email'"}),
        ({"message": "boom", "route": "/users/1"}, {"message": "boom", "route": "/orders/1"}),
        ({"message": "boom", "method": "GET"}, {"message": "boom", "method": "POST"}),
        ({"message": "boom", "nodeid": "t.py::a"}, {"message": "boom", "nodeid": "t.py::b"}),
    ],
    ids=["500 vs 503", "name vs email", "two routes", "two methods", "two tests"],
)
def test_near_misses_have_different_signatures(first: dict, second: dict) -> None:
    second = {"exception_type": first.get("exception_type", ""), **second}
    assert fingerprint(**first).signature != fingerprint(**second).signature


def test_frames_are_the_tests_own_without_line_numbers() -> None:
    assert own_frames(occurrence(12, 40, 1, "x")["traceback"]) == (
        "tests/api/test_users.py::test_get_user",
        "tests/api/helpers.py::check",
    )


def test_frames_in_short_and_python_styles_skip_library_code() -> None:
    short = (
        "tests/test_orders.py:31: in test_create_order\n    r = client.post('/orders')\n"
        "/venv/lib/python3.11/site-packages/httpx/_client.py:1144: in post\n    return x\n"
        'E   httpx.ReadTimeout: timed out\n  File "/srv/app/tests/util.py", line 9, in wait\n'
    )
    assert own_frames(short) == (
        "tests/test_orders.py::test_create_order",
        "/srv/app/tests/util.py::wait",
    )


def test_structure_is_parsed_from_the_message_and_the_tests_source() -> None:
    found = fingerprint(
        "Server error '503 Service Unavailable' for url 'http://127.0.0.1:4000/orders/7'",
        traceback=occurrence(1, 2, 3, "x")["traceback"],
        nodeid="tests/api/test_users.py::test_get_user[user-42]",
    )
    assert (found.status, found.route, found.test) == (
        503,
        "/orders/{id}",
        "tests/api/test_users.py::test_get_user",
    )
    from_source = fingerprint("assert 500 == 200", traceback=occurrence(1, 2, 3, "x")["traceback"])
    assert (from_source.method, from_source.route, from_source.status) == (
        "GET",
        "/users/{id}",
        500,
    )


def test_the_embedded_text_names_the_cause_not_the_test() -> None:
    found = fingerprint("'name'", exception_type="KeyError", nodeid="tests/t.py::test_x",
                        method="GET", route="/users/42", status=200)  # fmt: skip
    assert found.text == "GET /users/{id} | status 200 | KeyError: 'name'"
    assert found.keys == ("name",)


def test_structure_score_separates_near_misses_and_joins_rewordings() -> None:
    asserted = fingerprint("assert 500 == 200", method="GET", route="/orders/1", status=500)
    raised = fingerprint(
        "Server error '500 Internal Server Error' for url 'http://h/orders/2'",
        exception_type="httpx.HTTPStatusError",
        method="GET",
    )
    other_status = fingerprint("assert 503 == 200", method="GET", route="/orders/1", status=503)
    assert structure_score(asserted, raised) > 0 > structure_score(asserted, other_status)
    name, email = fingerprint("KeyError: 'name'"), fingerprint("KeyError: 'email'")
    assert structure_score(name, email) < structure_score(name, name)


ISINSTANCE = (
    "assert False\n +  where False = isinstance('445.00', float)\n"
    " +    where '445.00' = <built-in method get of dict object at 0x7f3a2b1c4d50>('total')"
)
DICT_DIFF = (
    "assert {'id': 7, 'status': 'shipped', 'updated_at': 'x'} == "
    "{'id': 7, 'status': 'delivered', 'updated_at': 'x'}\n  \n"
    "  Omitting 2 identical items, use -vv to show\n  Differing items:\n"
    "  {'status': 'shipped'} != {'status': 'delivered'}\n  Use -v to get more diff"
)
EXTRA_ITEM = (
    "assert {'id': 7, 'name': 'Ada', 'avatar_url': 'https://cdn.example.com/a.png'} == "
    "{'id': 7, 'name': 'Ada'}\n  \n  Omitting 2 identical items, use -vv to show\n"
    "  Left contains 1 more item:\n  {'avatar_url': 'https://cdn.example.com/a.png'}"
)
STATUS_ASSERT = (
    "assert 503 == 200\n +  where 503 = <Response [503 Service Unavailable]>.status_code"
)
HELPER_TRACEBACK = (
    "    def test_get_order(api_client):\n"
    '>       body = fetch_json(api_client, "GET", "/orders/7")\n\n'
    "tests/api/test_orders.py:12: \n"
)


@pytest.mark.parametrize(
    ("message", "exception_type", "kind"),
    [
        ("'total'", "KeyError", "missing"),
        ("assert 'total' in {'id': 7, 'total_amount': 3.5}", "AssertionError", "missing"),
        ("assert 'debug' not in {'debug': 1}", "AssertionError", "present"),
        (ISINSTANCE, "AssertionError", "type"),
        (STATUS_ASSERT, "AssertionError", "status"),
        ("unexpected status 503: {}\nassert 503 == 200", "AssertionError", "status"),
        (
            "Server error '503 Service Unavailable' for url 'http://h/x'",
            "httpx.HTTPStatusError",
            "status",
        ),
        ("assert 41 == 40\n +  where 41 = len([{'id': 1}, {'id': 2}])", "AssertionError", "length"),
        (DICT_DIFF, "AssertionError", "equal"),
        ("assert 3 < 2", "AssertionError", "order"),
        ("The read operation timed out", "httpx.ReadTimeout", "timeout"),
        ("[Errno 111] Connection refused", "httpx.ConnectError", "connection"),
        ("timed out", "httpx.ConnectTimeout", "connection"),
        ("expected key 'email' in the body", "AssertionError", ""),
        ("Expecting value: line 1 column 1 (char 0)", "json.decoder.JSONDecodeError", ""),
    ],
)
def test_kind_is_what_was_checked_whatever_the_wording(
    message: str, exception_type: str, kind: str
) -> None:
    assert fingerprint(message, exception_type=exception_type).kind == kind


@pytest.mark.parametrize(
    ("message", "keys"),
    [
        ("'total'", ("total",)),
        ("assert 'total' in {'id': 7, 'total_amount': 3.5, 'created_at': 'x'}", ("total",)),
        (ISINSTANCE, ("total",)),
        (DICT_DIFF, ("status",)),
        (EXTRA_ITEM, ("avatar_url",)),
        ('unexpected body: {"error": "conflict", "version": 3}', ("error", "version")),
    ],
)
def test_keys_are_the_names_a_failure_is_about_not_every_key_it_prints(
    message: str, keys: tuple[str, ...]
) -> None:
    assert fingerprint(message).keys == keys


def test_a_url_in_the_response_data_is_not_the_request() -> None:
    found = fingerprint(EXTRA_ITEM, traceback=occurrence(1, 2, 3, "x")["traceback"])
    assert (found.method, found.route) == ("GET", "/users/{id}")


def test_a_url_only_message_takes_its_method_from_the_source_of_the_same_route() -> None:
    raised = "Server error '503 Service Unavailable' for url 'http://127.0.0.1:4000/orders/9'"
    same_route = fingerprint(raised, traceback=HELPER_TRACEBACK)
    other_route = fingerprint(raised, traceback=occurrence(1, 2, 3, "x")["traceback"])
    assert (same_route.method, same_route.route) == ("GET", "/orders/{id}")
    assert (other_route.method, other_route.route) == (None, "/orders/{id}")


def test_one_kind_about_one_name_on_one_request_joins_and_another_kind_does_not() -> None:
    on_orders = {"method": "GET", "route": "/orders/7", "status": 200}
    key_error = fingerprint("'total'", exception_type="KeyError", **on_orders)
    membership = fingerprint("assert 'total' in {'id': 7, 'total_amount': 3.5}", **on_orders)
    retyped = fingerprint(ISINSTANCE, **on_orders)
    other_key = fingerprint("'status'", exception_type="KeyError", **on_orders)
    assert structure_score(key_error, membership) >= 0.10
    assert structure_score(key_error, retyped) <= -0.15
    assert structure_score(membership, retyped) <= -0.15
    assert structure_score(key_error, other_key) < 0


def test_one_transport_error_on_one_service_joins_across_routes_and_wordings() -> None:
    slow_charge = fingerprint("timed out", exception_type="httpx.ReadTimeout", method="POST",
                              route="/payments")  # fmt: skip
    slow_refund = fingerprint("The read operation timed out", exception_type="httpx.ReadTimeout",
                              method="POST", route="/payments/7/refund")  # fmt: skip
    refused = fingerprint("[Errno 111] Connection refused", exception_type="httpx.ConnectError",
                          method="POST", route="/payments")  # fmt: skip
    slow_orders = fingerprint("timed out", exception_type="httpx.ReadTimeout", method="GET",
                              route="/orders/7")  # fmt: skip
    assert structure_score(slow_charge, slow_refund) >= 0.10
    assert structure_score(slow_charge, refused) <= -0.15
    assert structure_score(slow_charge, slow_orders) < 0


BAD_INPUTS: dict[str, str | bytes] = {
    "empty": "",
    "whitespace": " \n\t ",
    "10 MB traceback": "E   assert 1 == 2\n" * (10 * 1024 * 1024 // 18),
    "10 MB one word": "a" * 10_000_000,
    "10 MB of digits and dots": "1." * 5_000_000,
    "deep path": "/a" * 1_000_000,
    "binary": bytes(range(256)) * 4096,
    "non-utf-8 bytes": b"\xff\xfe\xfa caf\xe9 assert 1 == 2",
    "lone surrogates": "caf\udce9 \ud800 assert",
    # fullwidth and fraktur letters, zero-width space, right-to-left override, emoji, NUL, BEL
    "odd unicode": "\uff21\uff53\uff53 \u200b\u202e \U0001d518\U0001d52b 🙂 \u0000\u0007 ë",
    "quotes without end": "x='" + "a" * 500_000,
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_is_capped_and_handled(kind: str) -> None:
    value = BAD_INPUTS[kind]
    started = time.perf_counter()
    found = fingerprint(value, traceback=value, exception_type="E", nodeid="t.py::t")
    again = fingerprint(value, traceback=value, exception_type="E", nodeid="t.py::t")
    # Not a speed measurement: a bound that catastrophic regex backtracking would blow.
    assert time.perf_counter() - started < 10
    assert found == again
    assert len(found.text) <= TEXT_CAP
    assert "\x00" not in found.text and "\u200b" not in found.text


@settings(max_examples=200, deadline=2000)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=2000) | st.binary(max_size=2000))
def test_any_input_fingerprints_deterministically(value: str | bytes) -> None:
    found = fingerprint(value, traceback=value)
    assert found == fingerprint(value, traceback=value)
    assert len(found.signature) == 16


@settings(max_examples=100, deadline=2000)
@given(
    st.text(alphabet="0123456789abcdef-_./:'\"= @x<>{}[]\n", min_size=1, max_size=50),
    st.integers(min_value=200, max_value=5000),
)
def test_repetitive_input_costs_no_backtracking(chunk: str, repeat: int) -> None:
    normalise(chunk * repeat)  # hypothesis's deadline fails any pathological pattern
