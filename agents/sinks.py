"""Where defects go: local files (the default), Jira or GitHub Issues.

Every sink does three things with a `DefectReport`: ``create`` it (returning
a reference: a file path, a Jira key, an issue URL), add a ``comment`` to it
when the incident recurs, and ``find`` one created earlier by its defect id.
``find`` is what makes a retried create safe: both trackers are asked to tag
each issue with the label ``testmem-<defect_id>``, so an issue whose creation
was acknowledged too late (a timeout after the server acted) is found rather
than filed twice.

The sink is chosen by configuration, environment first, then the
``[tool.testmem.defects]`` table of ``pyproject.toml`` in the working
directory (keys without the ``TESTMEM_`` prefix, lower case)::

    TESTMEM_DEFECT_SINK=file|jira|github                 (default: file)
    TESTMEM_JIRA_URL, TESTMEM_JIRA_PROJECT, TESTMEM_JIRA_TOKEN,
    TESTMEM_JIRA_USER (email; with it the token is an API token sent by basic
    auth, without it a bearer personal access token), TESTMEM_JIRA_ISSUE_TYPE (Bug)
    TESTMEM_GITHUB_REPO (owner/name), TESTMEM_GITHUB_TOKEN,
    TESTMEM_GITHUB_API (default https://api.github.com)
    TESTMEM_SINK_TIMEOUT (seconds, default 10)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from testmem.memory.errors import TestmemError

if TYPE_CHECKING:
    import httpx

    from testmem.agents.defects import DefectReport

DEFECT_ID = re.compile(r"^def-[0-9a-f]{12}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[0-9]+$")
_ENV_PREFIX = "TESTMEM_"


class SinkError(TestmemError):
    """A sink refused or could not take an action (the action stays in the outbox)."""


class TransientSinkError(SinkError):
    """Timeouts, refused connections, 5xx and 429: worth trying again later."""

    transient = True


class SinkConfigError(TestmemError):
    """The defect sink is configured wrongly (unknown name, missing setting)."""


class Sink(Protocol):
    name: str

    def create(self, report: DefectReport) -> str: ...

    def comment(self, reference: str, report: DefectReport, text: str) -> None: ...

    def find(self, defect_id: str) -> str | None: ...


def label(defect_id: str) -> str:
    """The tracker label that marks an issue as this defect (see the module doc)."""
    return f"testmem-{checked_id(defect_id)}"


def checked_id(defect_id: str) -> str:
    """A defect id safe to use in a file name or a query; anything else is refused."""
    if not DEFECT_ID.match(defect_id):
        raise SinkError(f"invalid defect id {defect_id!r}")
    return defect_id


class FileSink:
    """Markdown + JSON under ``DIR/defects/``, named by defect id."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def create(self, report: DefectReport) -> str:
        self._write(report, comments=[])
        return str(self._path(report.defect_id, ".md"))

    def comment(self, reference: str, report: DefectReport, text: str) -> None:
        previous = self._read(report.defect_id)
        self._write(report, comments=[*previous.get("comments", []), text])

    def find(self, defect_id: str) -> str | None:
        path = self._path(defect_id, ".md")
        return str(path) if path.exists() and self._path(defect_id, ".json").exists() else None

    def _path(self, defect_id: str, suffix: str) -> Path:
        return self.directory / f"{checked_id(defect_id)}{suffix}"

    def _read(self, defect_id: str) -> dict[str, Any]:
        path = self._path(defect_id, ".json")
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def _write(self, report: DefectReport, comments: list[str]) -> None:
        record = {**report.to_dict(), "comments": comments}
        markdown = report.to_markdown()
        if comments:
            markdown += "\n## Updates\n\n" + "".join(f"- {c}\n" for c in comments)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(self._path(report.defect_id, ".json"), json.dumps(record, indent=2))
            write_atomically(self._path(report.defect_id, ".md"), markdown)
        except OSError as exc:
            raise SinkError(f"cannot write defect files in {self.directory}: {exc}") from exc


class JiraSink:
    """Jira Cloud / Data Center over REST: create an issue, comment on it."""

    name = "jira"

    def __init__(
        self,
        url: str,
        project: str,
        token: str,
        user: str | None = None,
        issue_type: str = "Bug",
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.project = project
        self.issue_type = issue_type
        self.timeout = timeout
        self._auth: Any = (user, token) if user else None
        self._headers = {"Accept": "application/json"}
        if not user:
            self._headers["Authorization"] = f"Bearer {token}"

    def create(self, report: DefectReport) -> str:
        fields = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": report.title,
            "description": report.to_markdown(),
            "labels": ["testmem", label(report.defect_id), f"severity-{report.severity}"],
        }
        answer = self._send("POST", "/rest/api/2/issue", json={"fields": fields})
        return str(_field(answer, "key"))

    def comment(self, reference: str, report: DefectReport, text: str) -> None:
        if not _JIRA_KEY.match(reference):
            raise SinkError(f"not a Jira issue key: {reference!r}")
        self._send("POST", f"/rest/api/2/issue/{reference}/comment", json={"body": text})

    def find(self, defect_id: str) -> str | None:
        jql = f'project = "{self.project}" AND labels = "{label(defect_id)}"'
        answer = self._send("GET", "/rest/api/3/search/jql", params={"jql": jql, "fields": "key"})
        issues = (answer.get("issues") or []) if isinstance(answer, dict) else []
        return str(issues[0]["key"]) if issues else None

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        return _send(
            method, self.url + path, self._headers, self.timeout, auth=self._auth, **kwargs
        )


class GitHubSink:
    """GitHub Issues over REST: open an issue, comment on it."""

    name = "github"

    def __init__(
        self, repo: str, token: str, api: str = "https://api.github.com", timeout: float = 10.0
    ) -> None:
        if not _REPO.match(repo):
            raise SinkConfigError(f"GitHub repository must be owner/name, got {repo!r}")
        self.base = f"{api.rstrip('/')}/repos/{repo}"
        self.timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def create(self, report: DefectReport) -> str:
        issue = {
            "title": report.title,
            "body": report.to_markdown(),
            "labels": ["testmem", label(report.defect_id), f"severity-{report.severity}"],
        }
        answer = self._send("POST", "/issues", json=issue)
        return str(_field(answer, "html_url"))

    def comment(self, reference: str, report: DefectReport, text: str) -> None:
        number = reference.rstrip("/").rsplit("/", 1)[-1]
        if not number.isdigit():
            raise SinkError(f"not a GitHub issue URL: {reference!r}")
        self._send("POST", f"/issues/{number}/comments", json={"body": text})

    def find(self, defect_id: str) -> str | None:
        params = {"labels": label(defect_id), "state": "all"}
        answer = self._send("GET", "/issues", params=params)
        return str(answer[0]["html_url"]) if isinstance(answer, list) and answer else None

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        return _send(method, self.base + path, self._headers, self.timeout, **kwargs)


def _send(method: str, url: str, headers: dict[str, str], timeout: float, **kwargs: Any) -> Any:
    """One HTTP call; transport trouble, 429 and 5xx become `TransientSinkError`."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise TransientSinkError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise _status_error(method, url, response)
    try:
        return response.json() if response.content else {}
    except ValueError as exc:
        raise SinkError(f"{method} {url}: answer is not JSON") from exc


def _status_error(method: str, url: str, response: httpx.Response) -> SinkError:
    transient = response.status_code == 429 or response.status_code >= 500
    cls = TransientSinkError if transient else SinkError
    return cls(f"{method} {url}: HTTP {response.status_code} {response.text[:200]}")


def _field(answer: Any, name: str) -> Any:
    if not isinstance(answer, dict) or not answer.get(name):
        raise SinkError(f"tracker answer lacks {name!r}: {str(answer)[:200]}")
    return answer[name]


def sink_from_config(defects_dir: Path, env: Mapping[str, str] | None = None) -> Sink:
    """The sink the configuration asks for (see the module docstring)."""
    settings = _settings(os.environ if env is None else env)
    kind = settings.get("defect_sink", "file").lower()
    timeout = _number(settings.get("sink_timeout", "10"))
    if kind == "file":
        return FileSink(defects_dir)
    if kind == "jira":
        return JiraSink(
            _required(settings, "jira_url"),
            _required(settings, "jira_project"),
            _required(settings, "jira_token"),
            user=settings.get("jira_user"),
            issue_type=settings.get("jira_issue_type", "Bug"),
            timeout=timeout,
        )
    if kind == "github":
        return GitHubSink(
            _required(settings, "github_repo"),
            _required(settings, "github_token"),
            api=settings.get("github_api", "https://api.github.com"),
            timeout=timeout,
        )
    raise SinkConfigError(f"unknown defect sink {kind!r} (choose file, jira or github)")


def _settings(env: Mapping[str, str]) -> dict[str, str]:
    """pyproject's [tool.testmem.defects] table, overridden by TESTMEM_* variables."""
    settings = {str(k).lower(): str(v) for k, v in _pyproject_table().items()}
    for key, value in env.items():
        if key.startswith(_ENV_PREFIX) and value:
            settings[key.removeprefix(_ENV_PREFIX).lower()] = value
    return settings


def _pyproject_table() -> dict[str, Any]:
    from testmem.memory.config import testmem_table

    table, _ = testmem_table(Path.cwd())
    defects = table.get("defects")
    return defects if isinstance(defects, dict) else {}


def _required(settings: dict[str, str], key: str) -> str:
    if not settings.get(key):
        raise SinkConfigError(f"the {settings['defect_sink']} sink needs TESTMEM_{key.upper()}")
    return settings[key]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise SinkConfigError(f"TESTMEM_SINK_TIMEOUT must be a number, got {text!r}") from exc


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    import tempfile

    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
