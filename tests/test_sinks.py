"""Defect sinks against real HTTP servers: fake Jira and GitHub on 127.0.0.1, and files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeGitHub, FakeJira

from testmem.agents.defects import DefectReport, defect_id_for
from testmem.agents.sinks import (
    FileSink,
    GitHubSink,
    JiraSink,
    SinkConfigError,
    SinkError,
    TransientSinkError,
    sink_from_config,
)


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    fake = FakeJira()
    yield fake
    fake.stop()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    yield fake
    fake.stop()


def report(incident_id: str = "inc-1", occurrences: int = 1) -> DefectReport:
    return DefectReport(
        defect_id=defect_id_for(incident_id),
        incident_id=incident_id,
        title="GET /orders/{id} answers 500 (expected 200)",
        severity="high",
        summary="1 occurrence(s) of AssertionError in 1 test(s) over 1 route(s).",
        reproduction="curl -X GET http://127.0.0.1:1/orders/7",
        expected="200",
        actual="500 (HTTP 500)",
        response="HTTP 500\n{}",
        first_bad_build="b2",
        last_good_build="b1",
        occurrences=occurrences,
        first_seen="2026-11-28T10:00:00+00:00",
        last_seen="2026-11-28T10:00:00+00:00",
        tests=["tests/test_orders.py::test_get_order"],
        routes=["/orders/{id}"],
    )


def jira_sink(fake: FakeJira, **kwargs: object) -> JiraSink:
    options: dict[str, object] = {"user": fake.user, "timeout": 2.0, **kwargs}
    return JiraSink(fake.url, fake.project, fake.token, **options)  # type: ignore[arg-type]


def test_jira_create_files_a_bug_with_the_defect_label_and_returns_its_key(jira: FakeJira) -> None:
    key = jira_sink(jira).create(report())

    fields = jira.issues[key]["fields"]
    assert key == "SHOP-1"
    assert fields["issuetype"] == {"name": "Bug"}
    assert fields["summary"] == report().title
    assert f"testmem-{report().defect_id}" in fields["labels"]
    assert "## Reproduction" in fields["description"]


def test_jira_accepts_a_bearer_personal_access_token(jira: FakeJira) -> None:
    sink = JiraSink(jira.url, jira.project, jira.token, timeout=2.0)

    assert sink.create(report()) == "SHOP-1"
    assert jira.requests[-1]["headers"]["Authorization"] == f"Bearer {jira.token}"


def test_jira_comment_lands_on_the_issue(jira: FakeJira) -> None:
    sink = jira_sink(jira)
    key = sink.create(report())

    sink.comment(key, report(occurrences=3), "Seen again: 3 occurrences")

    assert jira.comments[key] == ["Seen again: 3 occurrences"]


def test_jira_find_locates_an_issue_by_its_defect_label(jira: FakeJira) -> None:
    sink = jira_sink(jira)
    key = sink.create(report("inc-1"))

    assert sink.find(defect_id_for("inc-1")) == key
    assert sink.find(defect_id_for("inc-2")) is None


def test_jira_wrong_token_is_a_terminal_error(jira: FakeJira) -> None:
    sink = JiraSink(jira.url, jira.project, "wrong", user=jira.user, timeout=2.0)

    with pytest.raises(SinkError, match="HTTP 401") as caught:
        sink.create(report())
    assert not caught.value.transient


def test_jira_comment_on_an_unknown_issue_is_refused(jira: FakeJira) -> None:
    with pytest.raises(SinkError, match="HTTP 404"):
        jira_sink(jira).comment("SHOP-99", report(), "text")


def test_jira_unknown_project_is_refused_with_jiras_field_errors(jira: FakeJira) -> None:
    sink = JiraSink(jira.url, "NOPE", jira.token, user=jira.user, timeout=2.0)

    with pytest.raises(SinkError, match="valid project is required"):
        sink.create(report())


def test_server_error_is_transient(jira: FakeJira) -> None:
    jira.fail_with = 500

    with pytest.raises(TransientSinkError, match="HTTP 500"):
        jira_sink(jira).create(report())
    assert jira.issues == {}


def test_a_hanging_tracker_times_out_as_transient(jira: FakeJira) -> None:
    jira.hang_s = 1.0

    with pytest.raises(TransientSinkError, match="Timeout"):
        jira_sink(jira, timeout=0.2).create(report())


def test_refused_connection_is_transient(refused_url: str) -> None:
    sink = GitHubSink("acme/shop", "ghp_fake", api=refused_url, timeout=2.0)

    with pytest.raises(TransientSinkError, match="ConnectError"):
        sink.create(report())


def test_github_create_opens_an_issue_with_api_headers(github: FakeGitHub) -> None:
    sink = GitHubSink(github.repo, github.token, api=github.url, timeout=2.0)

    reference = sink.create(report())

    headers = github.requests[-1]["headers"]
    assert reference == "https://github.com/acme/shop/issues/1"
    assert headers["Authorization"] == "Bearer ghp_fake"
    assert headers["Accept"] == "application/vnd.github+json"
    assert github.issues[1]["title"] == report().title


def test_github_comment_and_find_use_the_issue_number(github: FakeGitHub) -> None:
    sink = GitHubSink(github.repo, github.token, api=github.url, timeout=2.0)
    reference = sink.create(report())

    sink.comment(reference, report(), "Seen again")

    assert github.comments[1] == ["Seen again"]
    assert sink.find(report().defect_id) == reference
    assert sink.find(defect_id_for("other")) is None


def test_github_bad_credentials_are_refused(github: FakeGitHub) -> None:
    sink = GitHubSink(github.repo, "ghp_wrong", api=github.url, timeout=2.0)

    with pytest.raises(SinkError, match="Bad credentials"):
        sink.create(report())
    assert github.issues == {}


def test_github_repository_must_be_owner_slash_name() -> None:
    with pytest.raises(SinkConfigError, match="owner/name"):
        GitHubSink("../../etc", "token")


def test_file_sink_writes_markdown_and_json_named_by_defect_id(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)

    reference = sink.create(report())

    defect_id = report().defect_id
    assert reference == str(tmp_path / f"{defect_id}.md")
    assert json.loads((tmp_path / f"{defect_id}.json").read_text())["title"] == report().title
    assert (tmp_path / f"{defect_id}.md").read_text().startswith(f"# {report().title}")
    assert sink.find(defect_id) == reference


def test_file_sink_comment_updates_the_count_and_keeps_the_history(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    reference = sink.create(report())

    sink.comment(reference, report(occurrences=4), "Seen again: 4 occurrences")

    record = json.loads((tmp_path / f"{report().defect_id}.json").read_text())
    assert record["occurrences"] == 4
    assert record["comments"] == ["Seen again: 4 occurrences"]
    assert "Seen again: 4 occurrences" in Path(reference).read_text()


def test_file_sink_refuses_a_defect_id_that_is_not_generated(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="invalid defect id"):
        FileSink(tmp_path).find("../../etc/passwd")


def test_configuration_chooses_jira_from_the_environment(tmp_path: Path) -> None:
    env = {
        "TESTMEM_DEFECT_SINK": "jira",
        "TESTMEM_JIRA_URL": "https://acme.atlassian.net",
        "TESTMEM_JIRA_PROJECT": "SHOP",
        "TESTMEM_JIRA_TOKEN": "t",
    }

    sink = sink_from_config(tmp_path, env)

    assert isinstance(sink, JiraSink)
    assert sink.project == "SHOP"


def test_configuration_defaults_to_files(tmp_path: Path) -> None:
    assert isinstance(sink_from_config(tmp_path, {}), FileSink)


def test_configuration_reads_the_pyproject_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.testmem.defects]\ndefect_sink = "github"\n'
        'github_repo = "acme/shop"\ngithub_token = "x"\n'
    )

    sink = sink_from_config(tmp_path, {})

    assert isinstance(sink, GitHubSink)
    assert sink.base == "https://api.github.com/repos/acme/shop"


def test_configuration_names_the_missing_setting(tmp_path: Path) -> None:
    with pytest.raises(SinkConfigError, match="TESTMEM_GITHUB_TOKEN"):
        sink_from_config(tmp_path, {"TESTMEM_DEFECT_SINK": "github", "TESTMEM_GITHUB_REPO": "a/b"})


def test_configuration_refuses_an_unknown_sink(tmp_path: Path) -> None:
    with pytest.raises(SinkConfigError, match="unknown defect sink 'email'"):
        sink_from_config(tmp_path, {"TESTMEM_DEFECT_SINK": "email"})
