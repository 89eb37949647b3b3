"""Redaction: secrets planted in a real recorded run appear in no file of the store.

The inner suite sends and receives every kind of secret the issue names;
afterwards each secret is searched for in the raw bytes of every file under
the store, and in the decoded (zstd-decompressed) Parquet through DuckDB.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from testmem.memory.redact import MASK, Redactor, is_secret_name
from testmem.memory.store import Store
from tests.stored_text import file_texts

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
    assert raw_leaks == set()  # the spool's segments included, before they are committed
    Store.open(recorded_store).events.settle()
    decoded = "\n".join(file_texts(recorded_store).values())  # zstd hides text from bytes
    decoded_leaks = {name for name, secret in SECRETS.items() if secret in decoded}
    assert decoded_leaks == set()
    # ...and the search looked at a real recording, masked where the secrets were:
    assert MASK in decoded and "btASSERT" not in decoded and "refused Bearer" in decoded
    assert "sku-1" in decoded and "page=1" in decoded and '"owner": "ada"' in decoded


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
    # Brackets in a URL's authority mean IPv6: there the mask loses them, so it parses.
    assert Redactor().url("http://ada:pw1@h/x") == "http://ada:REDACTED@h/x"


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


@pytest.mark.parametrize(
    "name",
    ["Api-Key", "X-Amz-Security-Token", "X-CSRF-Token", "Private-Token", "X-Goog-Api-Key",
     "X-Session-Token", "sig", "X-Amz-Credential", "clientSecret", "accessToken", "sessionId",
     "private_key", "aws_secret_access_key", "new_password", "pin", "otp", "MY_SERVICE_PASSWORD",
     "accesstoken", "apikey", "APIKey", "db.password", "Set-Cookie"],
)  # fmt: skip
def test_a_secret_is_known_by_the_words_of_its_name_in_any_spelling(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["keyboard", "monkey", "author", "token_type", "max_tokens", "sort_key", "public_key",
     "tokenizer", "Keep-Alive", "Www-Authenticate", "pinned", "code"],
)  # fmt: skip
def test_names_that_only_contain_a_secret_word_keep_their_value(name: str) -> None:
    assert not is_secret_name(name)


def test_code_is_a_secret_only_as_a_query_parameter() -> None:
    redactor = Redactor()
    assert redactor.url("http://h/cb?code=oauth123&state=s") == f"http://h/cb?code={MASK}&state=s"
    body = b'{"error": {"code": "E_NOT_FOUND"}}'
    assert redactor.body(body, "application/json") == body


@pytest.mark.parametrize(
    ("text", "secret"),
    [("MY_SERVICE_PASSWORD=hunter22 next", "hunter22"),
     ("--api-base-url http://svc:PASS1234@host/x", "PASS1234"),
     ("GET http://TOKEN123abc@host/", "TOKEN123abc"),
     ("postgres://u:pw12345@db:5432/x", "pw12345"),
     ("key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
     ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcDEF123_-x", "eyJzdWIiOiIxIn0"),
     ("-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----", "MIIabc"),
     ("the secret is Zk3qL9pX2mN8vB4c ok", "Zk3qL9pX2mN8vB4c"),
     ("token      = 'abcd1234'", "abcd1234"),
     ("Authorization: Bearer sk-live-1", "sk-live-1")],
)  # fmt: skip
def test_secrets_are_found_by_pattern_in_free_text(text: str, secret: str) -> None:
    assert secret not in Redactor().text(text)


def test_prose_without_a_secret_is_left_alone() -> None:
    text = "token validation failed for keyboard=qwerty, order 12345, error_code=E42"
    assert Redactor().text(text) == text


def test_a_value_masked_by_name_is_masked_in_every_later_text() -> None:
    redactor = Redactor()
    redactor.headers_json([("X-CSRF-Token", "csrf-abc123"), ("Cookie", "sid=ck99zz; a=b")])
    redactor.body(b'{"pin": "5038"}', "application/json")
    later = redactor.text("assert 'csrf-abc123' == 'x'; echo ck99zz; pin 5038, order 50381")
    assert later == f"assert '{MASK}' == 'x'; echo {MASK}; pin {MASK}, order 50381"


def test_command_line_arguments_mask_the_value_after_a_secret_option() -> None:
    args = Redactor().args(["--password", "s3cr3t", "--api-base-url", "http://svc:P4ss@h", "-q"])
    assert args == ["--password", MASK, "--api-base-url", f"http://svc:{MASK}@h", "-q"]


def test_a_secret_in_a_body_that_is_not_utf8_is_masked_and_the_bytes_kept() -> None:
    body = b"\xff\xfe token=abcd1234 \x81"
    assert Redactor().body(body, "application/octet-stream") == b"\xff\xfe token=[REDACTED] \x81"


@pytest.mark.parametrize(
    "text",
    ["KeyError: 'warehouse'", "AuthError: 'session closed'", "TokenExpired: 'at 10:00'"],
)
def test_an_error_s_name_is_no_secret_name_and_its_message_is_kept(text: str) -> None:
    # "KeyError: 'name'" names the missing key, the cause a failure is grouped by
    assert Redactor().text(text) == text


def test_a_set_cookies_attributes_are_not_secrets() -> None:
    """Starlette's session middleware: the cookie is masked, its path and domain are not."""
    redactor = Redactor()
    cookie = "session=eyJzb21lIjoiZGF0YSJ9; path=/second_app; domain=testserver; httponly"
    assert json.loads(redactor.headers_json([("Set-Cookie", cookie)])) == {"set-cookie": MASK}
    url = "http://testserver/second_app/update_session"
    assert redactor.url(url) == url
    assert redactor.text("session=eyJzb21lIjoiZGF0YSJ9 echoed") == f"session={MASK} echoed"


def test_a_known_secret_in_a_host_leaves_a_url_that_parses() -> None:
    from urllib.parse import urlsplit

    redactor = Redactor()
    redactor.headers_json([("X-Api-Key", "tenant-7f3a9c")])
    masked = redactor.url("https://tenant-7f3a9c.api.example/v1/items")
    assert "tenant-7f3a9c" not in masked
    assert urlsplit(masked).path == "/v1/items"
