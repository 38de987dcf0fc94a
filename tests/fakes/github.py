"""A fake GitHub REST API (deployments and deployment statuses) served over real HTTP.

PyGithub talks through requests, so the test needs a real server: this one runs in a thread on
127.0.0.1, checks the token, validates payloads the way GitHub does (422 for a missing ref or an
unknown state), lists deployments (filtered by ref, task and environment) and statuses newest
first as GitHub does, answers with GitHub-shaped JSON and records every request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
DEPLOYMENTS = re.compile(r"^/repos/([^/]+)/([^/]+)/deployments$")
DEPLOYMENT = re.compile(r"^/repos/([^/]+)/([^/]+)/deployments/(\d+)$")
STATUSES = re.compile(r"^/repos/([^/]+)/([^/]+)/deployments/(\d+)/statuses$")
NOW = "2026-11-02T09:00:00Z"


@dataclass
class Request:
    method: str
    path: str
    body: dict | None
    headers: dict[str, str]


@dataclass
class FakeGitHub:
    token: str = "ghs_test_token"
    requests: list[Request] = field(default_factory=list)
    deployments: dict[int, dict] = field(default_factory=dict)
    statuses: dict[int, list[dict]] = field(default_factory=dict)
    fail_with: int | None = None  # answer every write with this status (GitHub outage)
    _next_id: int = 1000

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def writes(self, kind: str) -> list[Request]:
        pattern = DEPLOYMENTS if kind == "deployment" else STATUSES
        return [r for r in self.requests if r.method == "POST" and pattern.match(r.path)]

    # --- request handling -------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.requests.append(Request(method, h.path, body, {k.lower(): v for k, v in h.headers.items()}))
        auth = h.headers.get("Authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return self._send(h, 401, {"message": "Bad credentials"})
        if method == "POST" and self.fail_with:
            return self._send(h, self.fail_with, {"message": "Server Error"})
        url = urlsplit(h.path)
        path = url.path
        if method == "POST" and (m := DEPLOYMENTS.match(path)):
            return self._create_deployment(h, m, body or {})
        if method == "GET" and DEPLOYMENTS.match(path):
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            listed = [d for d in reversed(self.deployments.values())
                      if all(d.get(k) == query[k] for k in ("ref", "task", "environment") if k in query)]
            return self._send(h, 200, listed)
        if method == "GET" and (m := STATUSES.match(path)):
            statuses = self.statuses.get(int(m.group(3)))
            return self._send(h, 404, {"message": "Not Found"}) if statuses is None else \
                self._send(h, 200, list(reversed(statuses)))
        if method == "GET" and (m := DEPLOYMENT.match(path)):
            dep = self.deployments.get(int(m.group(3)))
            return self._send(h, 200, dep) if dep else self._send(h, 404, {"message": "Not Found"})
        if method == "POST" and (m := STATUSES.match(path)):
            return self._create_status(h, m, body or {})
        self._send(h, 404, {"message": "Not Found"})

    def _create_deployment(self, h, m, body: dict) -> None:
        if not body.get("ref"):
            return self._send(h, 422, {"message": "Invalid request.\n\n\"ref\" wasn't supplied."})
        self._next_id += 1
        repo_url = f"{self.url}/repos/{m.group(1)}/{m.group(2)}"
        dep_id = self._next_id
        environment = body.get("environment", "production")
        self.deployments[dep_id] = {
            "url": f"{repo_url}/deployments/{dep_id}", "id": dep_id, "node_id": f"DE_{dep_id}",
            "sha": "a" * 40, "ref": body["ref"], "task": body.get("task", "deploy"),
            "payload": body.get("payload", {}), "original_environment": environment, "environment": environment,
            "description": body.get("description"), "creator": {"login": "github-actions[bot]", "id": 1},
            "created_at": NOW, "updated_at": NOW, "statuses_url": f"{repo_url}/deployments/{dep_id}/statuses",
            "repository_url": repo_url, "transient_environment": body.get("transient_environment", False),
            "production_environment": body.get("production_environment", environment == "production"),
        }
        self.statuses[dep_id] = []
        self._send(h, 201, self.deployments[dep_id])

    def _create_status(self, h, m, body: dict) -> None:
        dep = self.deployments.get(int(m.group(3)))
        if dep is None:
            return self._send(h, 404, {"message": "Not Found"})
        if body.get("state") not in STATES:
            return self._send(h, 422, {"message": f"Validation Failed: state {body.get('state')!r}"})
        status_id = len(self.statuses[dep["id"]]) + 1
        status = {
            "url": f"{dep['url']}/statuses/{status_id}", "id": status_id, "node_id": f"DES_{status_id}",
            "state": body["state"], "creator": {"login": "github-actions[bot]", "id": 1},
            "description": body.get("description", ""), "environment": body.get("environment", dep["environment"]),
            "target_url": body.get("target_url", ""), "log_url": body.get("log_url", body.get("target_url", "")),
            "environment_url": body.get("environment_url", ""), "created_at": NOW, "updated_at": NOW,
            "deployment_url": dep["url"], "repository_url": dep["repository_url"],
        }
        self.statuses[dep["id"]].append(status)
        self._send(h, 201, status)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, payload: dict | list) -> None:
        data = json.dumps(payload).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


@contextmanager
def fake_github(monkeypatch) -> Iterator[FakeGitHub]:
    """A running FakeGitHub; mirrors made meanwhile skip PyGithub's 1 s pause between writes."""
    from cli.github_mirror import DeploymentMirror

    monkeypatch.setitem(DeploymentMirror.__init__.__kwdefaults__, "throttle", False)
    fake = FakeGitHub().start()
    try:
        yield fake
    finally:
        fake.stop()
