"""Fake Jira and GitHub servers on 127.0.0.1, speaking the shape of their REST APIs.

They check credentials as the real services do (401 otherwise), validate the
fields the real endpoints require, answer with the real JSON fields (Jira's
``{"id", "key", "self"}``, GitHub's ``{"number", "html_url"}``) and status codes,
and keep what was filed so tests can count issues and comments. Two switches
simulate an unhealthy service: ``fail_with = 500`` answers that status without
acting; ``hang_s = 2`` acts, then stalls before answering (a lost acknowledgement).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, Any]


class FakeTracker:
    """The HTTP plumbing both fakes share; subclasses route requests."""

    def __init__(self) -> None:
        self.fail_with: int | None = None
        self.hang_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle(self, method: str, path: str, headers: Any, body: Any) -> Reply:
        self.requests.append({"method": method, "path": path, "headers": dict(headers)})
        if self.fail_with:
            return self.fail_with, {"message": "Internal Server Error"}
        if not self.authorized(headers.get("Authorization", "")):
            return 401, {"message": "Bad credentials"}
        with self._lock:
            return self.route(method, path, body)

    def authorized(self, header: str) -> bool:
        raise NotImplementedError

    def route(self, method: str, path: str, body: Any) -> Reply:
        raise NotImplementedError


class FakeJira(FakeTracker):
    """Jira REST: create issue (v2), comment (v2), search by JQL (v3 ``search/jql``)."""

    def __init__(
        self, project: str = "SHOP", user: str = "qa@example.com", token: str = "t0k"
    ) -> None:
        self.project, self.user, self.token = project, user, token
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[str]] = {}
        super().__init__()

    def authorized(self, header: str) -> bool:
        basic = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        return header in (f"Basic {basic}", f"Bearer {self.token}")

    def route(self, method: str, path: str, body: Any) -> Reply:
        parts = urlsplit(path)
        comment = re.fullmatch(r"/rest/api/2/issue/([A-Z][A-Z0-9_]*-\d+)/comment", parts.path)
        if method == "POST" and parts.path == "/rest/api/2/issue":
            return self._create(body)
        if method == "POST" and comment:
            return self._comment(comment[1], body)
        if method == "GET" and parts.path == "/rest/api/3/search/jql":
            return self._search(parse_qs(parts.query).get("jql", [""])[0])
        return 404, {"errorMessages": ["Not found"], "errors": {}}

    def _create(self, body: Any) -> Reply:
        fields = (body or {}).get("fields") or {}
        errors = {}
        if (fields.get("project") or {}).get("key") != self.project:
            errors["project"] = "valid project is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        if not (fields.get("issuetype") or {}).get("name"):
            errors["issuetype"] = "issue type is required"
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        number = 10000 + len(self.issues)
        key = f"{self.project}-{len(self.issues) + 1}"
        self.issues[key] = {"id": str(number), "key": key, "fields": fields}
        return 201, {"id": str(number), "key": key, "self": f"{self.url}/rest/api/2/issue/{number}"}

    def _comment(self, key: str, body: Any) -> Reply:
        if key not in self.issues:
            return 404, {
                "errorMessages": ["Issue does not exist or you do not have permission to see it."],
                "errors": {},
            }
        self.comments.setdefault(key, []).append(str((body or {}).get("body", "")))
        number = sum(len(c) for c in self.comments.values())
        return 201, {
            "id": str(number),
            "self": f"{self.url}/comment/{number}",
            "body": body["body"],
        }

    def _search(self, jql: str) -> Reply:
        wanted = re.findall(r'labels\s*=\s*"([^"]+)"', jql)
        found = [
            {"id": i["id"], "key": k, "self": f"{self.url}/rest/api/2/issue/{i['id']}"}
            for k, i in self.issues.items()
            if all(w in i["fields"].get("labels", []) for w in wanted)
        ]
        return 200, {"issues": found, "isLast": True}


class FakeGitHub(FakeTracker):
    """GitHub REST: open an issue, comment on it, list issues by label."""

    def __init__(self, repo: str = "acme/shop", token: str = "ghp_fake") -> None:
        self.repo, self.token = repo, token
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[str]] = {}
        super().__init__()

    def authorized(self, header: str) -> bool:
        return header in (f"Bearer {self.token}", f"token {self.token}")

    def route(self, method: str, path: str, body: Any) -> Reply:
        parts = urlsplit(path)
        prefix = f"/repos/{self.repo}/issues"
        comment = re.fullmatch(re.escape(prefix) + r"/(\d+)/comments", parts.path)
        if method == "POST" and parts.path == prefix:
            return self._create(body)
        if method == "POST" and comment:
            return self._comment(int(comment[1]), body)
        if method == "GET" and parts.path == prefix:
            return self._list(parse_qs(parts.query))
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}

    def _create(self, body: Any) -> Reply:
        if not (body or {}).get("title"):
            error = {"resource": "Issue", "code": "missing_field", "field": "title"}
            return 422, {"message": "Validation Failed", "errors": [error]}
        number = len(self.issues) + 1
        issue = {
            "id": 1000 + number,
            "number": number,
            "title": body["title"],
            "body": body.get("body"),
            "state": "open",
            "labels": [{"name": n} for n in body.get("labels", [])],
            "html_url": f"https://github.com/{self.repo}/issues/{number}",
            "url": f"{self.url}/repos/{self.repo}/issues/{number}",
        }
        self.issues[number] = issue
        return 201, issue

    def _comment(self, number: int, body: Any) -> Reply:
        if number not in self.issues:
            return 404, {"message": "Not Found"}
        self.comments.setdefault(number, []).append(str((body or {}).get("body", "")))
        html = f"{self.issues[number]['html_url']}#issuecomment-{len(self.comments[number])}"
        return 201, {"id": len(self.comments[number]), "html_url": html, "body": body["body"]}

    def _list(self, query: dict[str, list[str]]) -> Reply:
        wanted = [w for w in query.get("labels", [""])[0].split(",") if w]
        found = [
            issue
            for issue in self.issues.values()
            if all(w in [label["name"] for label in issue["labels"]] for w in wanted)
        ]
        return 200, found


def _handler(tracker: FakeTracker) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._reply(400, {"message": "Problems parsing JSON"})
                return
            status, answer = tracker.handle(self.command, self.path, self.headers, body)
            if tracker.hang_s:
                time.sleep(tracker.hang_s)  # acted, but the client gives up first
            self._reply(status, answer)

        do_POST = do_GET

        def _reply(self, status: int, answer: Any) -> None:
            payload = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client timed out and left

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler
