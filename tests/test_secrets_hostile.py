"""Secrets a real API leaks, planted in a real recorded run (also under xdist),
found in no file of the store: neither in raw bytes, nor in the decoded
Parquet cells, nor inside the base64 kept for bodies that are not UTF-8.

Each secret reaches the recorder only one way: by a name in one of its
spellings, by a pattern in free text, or as a value already masked once.
"""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from testmem.memory.cli import cli
from testmem.memory.redact import MASK
from tests.stored_text import file_texts

BY_NAME = {
    "Api-Key": "sApiKey4817aa",
    "X-Amz-Security-Token": "sAmzSecTok5521bb",
    "X-CSRF-Token": "sCsrf8830cc",
    "Private-Token": "sPrivTok1923dd",
    "X-Goog-Api-Key": "sGoogKey7712ee",
    "X-Session-Token": "sRespSess3391ff",  # a response header
    "sig": "sQuerySig1029ab",
    "signature": "sQuerySignature55ab",
    "X-Amz-Signature": "sAmzSig66cd21",
    "X-Amz-Credential": "sAmzCred77de32",
    "key": "sQueryKey88ef43",
    "code": "sOauthCode99fa54",
    "auth": "sQueryAuth10ab65",
    "clientSecret": "sClientSecret21bc76",
    "accessToken": "sAccessTok32cd87",
    "refreshToken": "sRefreshTok43de98",
    "sessionId": "sSessionId54ef09",
    "private_key": "sPrivateKey65fa10",
    "aws_secret_access_key": "sAwsSecret76ab21",
    "new_password": "sNewPass87bc32",
    "pin": "5038",
    "otp": "sFormOtp98cd43",
    "url user": "sUrlUser09de54",
    "args password": "sArgsPass10ef65",
    "MY_SERVICE_PASSWORD": "sEnvPass21fa76",
}
BY_PATTERN = {
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlLXBsYW50ZWQ",
    "aws access key": "AKIAPLANTEDXK7Q2M4ZB",
    "pem": "MIIEpQIBAAKCAQEAplanted0private0key0body",
    "dsn password": "sDsnPass32ab87",
    "bearer": "sBearer43bc98xy",
    "near a word": "Zq8LmP2xK9vB4nR7tW3y",
}
SUITE = """
import sys

S = {secrets!r}


def test_request_headers_query_and_fields(api_client):
    api_client.get("/echo", headers={{name: S[name] for name in
        ("Api-Key", "X-Amz-Security-Token", "X-CSRF-Token", "Private-Token", "X-Goog-Api-Key")}},
        params={{name: S[name] for name in
        ("sig", "signature", "X-Amz-Signature", "X-Amz-Credential", "key", "code", "auth")}})
    api_client.post("/echo", json={{"login": {{name: S[name] for name in ("clientSecret",
        "accessToken", "refreshToken", "sessionId", "private_key", "aws_secret_access_key",
        "new_password", "pin")}}, "note": "keep-me"}})
    api_client.post("/echo", data={{"otp": S["otp"], "user": "ada"}})


def test_response_header_and_patterns_in_bodies(api_client):
    api_client.get("/session")
    api_client.get("/leaky")
    api_client.get("/binary")


def test_username_only_url_credential(api_client):
    import httpx
    base = api_client.base_url
    api_client.get(f"http://{{S['url user']}}@{{base.host}}:{{base.port}}/echo")


def test_known_value_in_an_assertion(api_client):
    token = S["X-CSRF-Token"]
    api_client.get("/echo", headers={{"X-CSRF-Token": token}})
    assert token == "x"


def test_patterns_in_a_message_and_output(api_client):
    print("config MY_SERVICE_PASSWORD=" + S["MY_SERVICE_PASSWORD"])
    print("Authorization: Bearer " + S["bearer"], file=sys.stderr)
    dsn = "postgres://app:" + S["dsn password"] + "@db:5432/orders"
    env = "MY_SERVICE_PASSWORD=" + S["MY_SERVICE_PASSWORD"]
    raise RuntimeError(f"cannot reach {{dsn}} with key {{S['aws access key']}}; the api "
                       f"token is {{S['near a word']}} {{env}}")
"""
JUNIT = """<?xml version="1.0"?>
<testsuite name="imported" tests="1" failures="1">
  <testcase classname="t" name="test_login" time="0.1">
    <failure message="login refused: Bearer {bearer}">{jwt}
-----BEGIN RSA PRIVATE KEY-----
{pem}
-----END RSA PRIVATE KEY-----
    </failure>
  </testcase>
</testsuite>
"""
SECRETS = {**BY_NAME, **BY_PATTERN}


def _serve_leaks(stub_api) -> None:  # type: ignore[no-untyped-def]
    stub_api.answer("/session", body=b"{}", X_Session_Token=BY_NAME["X-Session-Token"])
    leaky = (
        f"trace: jwt={BY_PATTERN['jwt']}\n-----BEGIN PRIVATE KEY-----\n{BY_PATTERN['pem']}\n"
        "-----END PRIVATE KEY-----\n"
    )
    stub_api.answer("/leaky", body=leaky.encode(), Content_Type="text/plain")
    binary = b"\xff\xfe\x00 upstream password=" + BY_NAME["new_password"].encode() + b" \x81"
    stub_api.answer("/binary", body=binary, Content_Type="application/octet-stream")


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["in-process", "xdist"])
def test_secrets_a_real_api_leaks_reach_no_file(
    pytester: pytest.Pytester, stub_api, workers: list[str]
) -> None:
    _serve_leaks(stub_api)
    pytester.makepyfile(test_leaks=textwrap.dedent(SUITE.format(secrets=SECRETS)))
    store = pytester.path / "store"
    base = stub_api.url.replace("http://", f"http://svc:{BY_NAME['args password']}@")
    result = pytester.runpytest(
        "--memory", f"--memory-dir={store}", f"--api-base-url={base}", "-l",
        "-p", "no:randomly", "--memory-retries=0", *workers,
    )  # fmt: skip
    result.assert_outcomes(passed=3, failed=2)
    junit = pytester.path / "junit.xml"
    junit.write_text(JUNIT.format(**{k.split()[0]: v for k, v in BY_PATTERN.items()}))
    runner = CliRunner()
    assert runner.invoke(cli, ["--dir", str(store), "import", "junit", str(junit)]).exit_code == 0
    out = store / "reports" / "r"
    out.parent.mkdir(exist_ok=True)
    for fmt in ("md", "html"):
        args = ["--dir", str(store), "report", "--format", fmt, "--out", f"{out}.{fmt}"]
        assert runner.invoke(cli, args).exit_code == 0
    found = "\n".join(file_texts(store).values())
    assert {name for name, secret in SECRETS.items() if secret in found} == set()
    # ...in a real recording, masked where the secrets were, the rest kept:
    assert MASK in found and "keep-me" in found and "test_login" in found
