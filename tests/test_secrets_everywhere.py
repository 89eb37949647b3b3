"""Secrets planted everywhere in a real recorded run never reach any file of the store.

A small suite runs with `pytest --memory` (triage on) against a real loopback
server; a 500 makes triage escalate a defect through the default file sink;
then `testmem report` writes into the store. Every file under the store
(the log, DIR/chroma, DIR/defects, DIR/heals, DIR/reports, caches) is then
searched for every planted secret: zero hits.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from testmem.memory.cli import cli
from tests.stored_text import files_containing

SECRETS = {
    "authorization header": "PLANTED-bearer-hdr-7f3a9c21",
    "cookie": "PLANTED-cookie-41d2e8aa",
    "x-api-key header": "PLANTED-apikey-hdr-99b0c3de",
    "query api_key": "PLANTED-query-key-5e6f7a8b",
    "query token": "PLANTED-query-token-0c1d2e3f",
    "json password at depth": "PLANTED-json-deep-pw-4a5b6c7d",
    "json secret in a list": "PLANTED-json-list-secret-8e9f0a1b",
    "form password": "PLANTED-form-pw-2c3d4e5f",
    "bearer in an assertion message": "PLANTED-assert-bearer-6a7b8c9d",
    "bearer in response free text": "PLANTED-resp-bearer-0e1f2a3b",
    "token= in response free text": "PLANTED-resp-token-4c5d6e7f",
    "set-cookie response header": "PLANTED-setcookie-8a9b0c1d",
    "access_token in response json": "PLANTED-resp-access-2e3f4a5b",
}

SUITE = """
S = {secrets!r}

def test_headers_cookies_and_query(api_client):
    api_client.get(
        "/echo",
        params={{"api_key": S["query api_key"], "token": S["query token"], "q": "ok"}},
        headers={{"Authorization": "Bearer " + S["authorization header"],
                 "X-Api-Key": S["x-api-key header"]}},
        cookies={{"session": S["cookie"]}},
    )

def test_json_and_form_fields_at_depth(api_client):
    deep = {{"profile": {{"password": S["json password at depth"]}}}}
    listed = [{{"secret": S["json secret in a list"]}}]
    api_client.post("/echo", json={{"user": deep, "items": listed}})
    api_client.post("/echo", data={{"password": S["form password"], "name": "x"}})

def test_response_secrets(api_client):
    api_client.get("/leaky")
    api_client.get("/cookie")

def test_escalated_with_a_token_in_the_message(api_client):
    auth = {{"Authorization": "Bearer " + S["authorization header"]}}
    response = api_client.get("/orders/42", headers=auth)
    token = "Bearer " + S["bearer in an assertion message"]
    assert response.status_code == 200, f"call with {{token}} failed: {{response.text}}"
"""


def test_no_planted_secret_reaches_any_file_of_the_store(
    pytester: pytest.Pytester, stub_api
) -> None:
    stub_api.answer(
        "/leaky",
        body=(
            "upstream said: Authorization: Bearer " + SECRETS["bearer in response free text"]
            + " and token=" + SECRETS["token= in response free text"]
        ).encode(),
        Content_Type="text/plain",
    )  # fmt: skip
    stub_api.answer(
        "/cookie",
        body=b'{"access_token": "' + SECRETS["access_token in response json"].encode() + b'"}',
        Content_Type="application/json",
        Set_Cookie="session=" + SECRETS["set-cookie response header"],
    )
    stub_api.answer(
        "/orders/42",
        status=500,
        body=json.dumps(
            {"error": "db down", "token": SECRETS["token= in response free text"]}
        ).encode(),
        Content_Type="application/json",
    )
    pytester.makepyfile(test_planted=textwrap.dedent(SUITE.format(secrets=SECRETS)))
    store = pytester.path / "store"
    result = pytester.runpytest(
        "--memory", "--memory-dir", str(store), "--api-base-url", stub_api.url,
        "-p", "no:randomly", "-p", "no:cacheprovider", "--memory-retries", "0",
    )  # fmt: skip
    result.assert_outcomes(passed=3, failed=1)
    defects = store / "defects"
    assert defects.is_dir() and any(defects.rglob("*.md")), result.stdout.str()[-3000:]
    (store / "reports").mkdir(exist_ok=True)
    out = str(store / "reports" / "r.html")
    report = CliRunner().invoke(
        cli, ["--dir", str(store), "report", "--format", "html", "--out", out]
    )
    assert report.exit_code == 0, report.output
    for name in ("chroma", "reports"):
        assert any((store / name).rglob("*")), f"nothing written to DIR/{name}"
    leaks = {kind: files_containing(store, s) for kind, s in SECRETS.items()}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_the_search_finds_a_secret_that_is_there(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "blob.bin").write_bytes(b"\x00\x01" + SECRETS["cookie"].encode())
    assert files_containing(tmp_path, SECRETS["cookie"]) == ["deep/er/blob.bin"]
