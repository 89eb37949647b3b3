"""Redaction: secrets planted in a real recorded run appear in no file of the store.

The inner suite sends and receives every kind of secret the issue names;
afterwards each secret is searched for in the raw bytes of every file under
the store, and in the decoded (zstd-decompressed) Parquet through DuckDB.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

import duckdb
import pytest

from memory.redact import MASK, Redactor

# Recording only: the agents' in-run retry and post-run triage are specified elsewhere.
MEMORY = ("--memory", "--memory-retries=0", "--no-memory-triage")

SECRETS = {
    "AUTH_TOKEN": "tokAUTH41c7e2b9d0",
    "COOKIE": "ckCOOKIE8a1f3e77",
    "API_KEY": "akAPIKEY77d2c1aa",
    "CONFIGURED_HEADER": "sigCONFIGHDR5b9e",
    "SET_COOKIE": "scSETCOOKIE93aa1",
    "PASSWORD": "pwPASSWORD12abff",
    "TOKEN_FIELD": "tkTOKEN34cd99e0",
    "CONFIGURED_FIELD": "pinFIELD99114411",
    "RESPONSE_KEY": "rkRESPKEY56ef0a1",
    "QUERY_KEY": "qpQUERY78ab3c4d",
    "CONFIGURED_PARAM": "spPARAM2468ace0",
    "ASSERT_TOKEN": "btASSERT90cdef12",
}

SUITE = """
import os


S = {name: os.environ["PLANTED_" + name] for name in NAMES}


def test_login(api_client):
    response = api_client.post(
        "/login",
        params={"api_key": S["QUERY_KEY"], "signature": S["CONFIGURED_PARAM"], "page": "1"},
        headers={
            "Authorization": "Bearer " + S["AUTH_TOKEN"],
            "Cookie": "session=" + S["COOKIE"],
            "X-Api-Key": S["API_KEY"],
            "X-Internal-Signature": S["CONFIGURED_HEADER"],
        },
        json={
            "user": {"credentials": {"password": S["PASSWORD"], "pin": S["CONFIGURED_FIELD"]}},
            "items": [{"token": S["TOKEN_FIELD"], "sku": "sku-1"}],
        },
    )
    assert response.status_code == 200


def test_secret_in_an_assertion_message(api_client):
    response = api_client.get("/login")
    assert response.status_code == 401, "refused Bearer " + S["ASSERT_TOKEN"]


def test_secret_in_a_compared_body(api_client):
    assert api_client.get("/login").json() == {}
"""

INI = """
[pytest]
memory_redact_headers = X-Internal-Signature
memory_redact_fields = pin
memory_redact_params = signature
"""


@pytest.fixture
def recorded_store(pytester, stub_api, store_dir, monkeypatch) -> Path:
    for name, value in SECRETS.items():
        monkeypatch.setenv("PLANTED_" + name, value)
    account = {"account": {"owner": "ada", "keys": [{"api_key": SECRETS["RESPONSE_KEY"]}]}}
    stub_api.answer(
        "/login",
        body=json.dumps(account).encode(),
        content_type="application/json",
        set_cookie=f"sid={SECRETS['SET_COOKIE']}; HttpOnly",
    )
    pytester.makeini(INI)
    pytester.makepyfile(test_secrets=SUITE.replace("NAMES", repr(sorted(SECRETS))))
    result = pytester.runpytest(
        *MEMORY, f"--memory-dir={store_dir}", f"--api-base-url={stub_api.url}"
    )
    result.assert_outcomes(passed=1, failed=2)
    return store_dir


def test_no_planted_secret_is_in_any_file_of_the_store(recorded_store):
    files = [p for p in recorded_store.rglob("*") if p.is_file()]
    raw_leaks = {
        (name, str(p.relative_to(recorded_store)))
        for p in files
        for name, secret in SECRETS.items()
        if secret.encode() in p.read_bytes()
    }
    decoded = _decoded_cells(recorded_store)  # zstd hides text from a byte search
    decoded_leaks = {name for name, secret in SECRETS.items() if secret in decoded}
    assert raw_leaks == set() and decoded_leaks == set()
    # ...and the search looked at a real recording, masked where the secrets were:
    assert MASK in decoded and "btASSERT" not in decoded and "refused Bearer" in decoded
    assert "sku-1" in decoded and "page=1" in decoded and '"owner": "ada"' in decoded


def _decoded_cells(store: Path) -> str:
    """Every cell of every Parquet file under the store, as text."""
    parquet = [str(p) for p in store.rglob("*.parquet")]
    db = duckdb.connect()
    cells: list[str] = []
    for path in parquet:
        for row in db.execute("SELECT * FROM read_parquet(?)", [path]).fetchall():
            cells.extend(str(value) for value in row)
    return "\n".join(cells)


# -- the redactor on its own -----------------------------------------------------


def test_headers_are_masked_case_insensitively_and_configured_ones_too():
    redactor = Redactor.with_extra(headers=["X-Internal-Signature"])
    headers = json.loads(
        redactor.headers_json(
            [("AUTHORIZATION", "Basic abc"), ("x-internal-signature", "s"), ("Accept", "*/*")]
        )
    )
    assert headers == {"authorization": MASK, "x-internal-signature": MASK, "accept": "*/*"}


def test_json_fields_are_masked_at_any_depth_inside_lists():
    body = json.dumps({"a": [{"b": {"Password": "p1"}}, {"token": {"nested": "t1"}}]}).encode()
    masked = json.loads(Redactor().body(body, "application/json"))
    assert masked == {"a": [{"b": {"Password": MASK}}, {"token": MASK}]}


def test_form_fields_and_query_parameters_are_masked():
    redactor = Redactor.with_extra(params=["sig"])
    form = redactor.body(b"user=ada&password=p1", "application/x-www-form-urlencoded")
    assert parse_qsl(form.decode()) == [("user", "ada"), ("password", MASK)]
    assert redactor.url("http://h/x?sig=s1&q=ok") == f"http://h/x?sig={MASK}&q=ok"


def test_a_password_in_the_url_is_masked():
    assert Redactor().url("http://ada:pw1@h/x") == f"http://ada:{MASK}@h/x"


def test_credentials_in_free_text_are_masked_in_python_and_json_reprs():
    text = "got {'token': 'abc123', \"secret\": \"s3\"} with Bearer abcdefgh12345"
    masked = Redactor().text(text)
    assert "abc123" not in masked and "s3" not in masked and "abcdefgh12345" not in masked


def test_an_unchanged_json_body_keeps_its_exact_bytes():
    body = b'{"id":1,  "name":"Ada"}'
    assert Redactor().body(body, "application/json") == body


def test_binary_bodies_pass_through_untouched():
    body = b"\x89PNG\r\n\x1a\n\xff\xfe"
    assert Redactor().body(body, "image/png") == body
