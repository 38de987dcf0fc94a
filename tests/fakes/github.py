"""A fake GitHub REST API (deployments and their statuses, a GitHub App's installations and
tokens, deployment protection rule reviews) served over real HTTP.

PyGithub talks through requests, so the test needs a real server: this one runs in a thread on
127.0.0.1. Every request is checked against GitHub's published REST description (the subset in
tests/fakes/openapi/rest.json, from the npm package ``@octokit/openapi``): an operation that is not
there, a path parameter of the wrong type, an unknown query parameter or a body that does not match
the operation's schema is recorded in ``violations`` and refused (404 / 422), so a test can assert
that chainpipe only ever sent what GitHub accepts. Beyond the schema it behaves as GitHub does:
tokens are checked (the app's JWT, RS256-signed, for the ``/app`` endpoints; installation tokens it
issued, until they expire, for the rest), 422 for a missing ref, an unknown state or a review of a
run that is not waiting, deployments listed by ref/task/environment and statuses newest first.

Webhook payloads are built from the schema in tests/fakes/openapi/webhooks.json (from
``@octokit/openapi-webhooks``) and checked against it (`protection_rule_payload`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import jwt

STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
DEPLOYMENTS = re.compile(r"^/repos/([^/]+)/([^/]+)/deployments$")
DEPLOYMENT = re.compile(r"^/repos/([^/]+)/([^/]+)/deployments/(\d+)$")
STATUSES = re.compile(r"^/repos/([^/]+)/([^/]+)/deployments/(\d+)/statuses$")
NOW = "2026-11-02T09:00:00Z"
OPENAPI = Path(__file__).parent / "openapi"
APP_ID = "424242"
INSTALLATION_ID = 77
WEBHOOK_SECRET = "whsec-test-0123456789abcdef"
ACCESS_TOKENS = re.compile(r"^/app/installations/(\d+)/access_tokens$")
REPO_INSTALLATION = re.compile(r"^/repos/([^/]+)/([^/]+)/installation$")
REVIEW = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/runs/(\d+)/deployment_protection_rule$")


@functools.cache
def rest_spec() -> dict:
    return json.loads((OPENAPI / "rest.json").read_text())


@functools.cache
def webhook_schemas() -> dict:
    return json.loads((OPENAPI / "webhooks.json").read_text())


@functools.cache
def app_key() -> tuple[str, str]:
    """An RSA key pair for the test app (private PEM for the server, public PEM for the fake)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def spec_problem(method: str, target: str, body) -> tuple[int, str] | None:
    """Why GitHub's REST description does not allow this request (status, reason), or None."""
    url = urlsplit(target)
    for template, methods in rest_spec().items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "([^/]+)", template) + "$"
        match = re.match(pattern, url.path)
        if not match:
            continue
        op = methods.get(method.lower())
        if op is None:
            return 404, f"{method} {template} is not a GitHub operation"
        params = {p["name"]: p for p in op["parameters"]}
        names = re.findall(r"\{([^}]+)\}", template)
        for name, value in zip(names, match.groups(), strict=True):
            if params.get(name, {}).get("schema", {}).get("type") == "integer" and not value.isdigit():
                return 404, f"path parameter {name}={value!r} is not an integer"
        query = {p for p, spec in params.items() if spec["in"] == "query"}
        unknown = sorted(set(parse_qs(url.query)) - query)
        if unknown:
            return 422, f"{op['operationId']}: unknown query parameter {unknown[0]}"
        if op["requestBody"] is not None:
            if body is None and op["requestBodyRequired"]:
                return 422, f"{op['operationId']}: a body is required"
            if body is not None:
                errors = sorted(jsonschema.Draft202012Validator(op["requestBody"]).iter_errors(body), key=str)
                if errors:
                    return 422, f"{op['operationId']}: {errors[0].message}"
        return None
    return 404, f"{method} {url.path} is not in GitHub's REST description"


def _instance(schema: dict, name: str = "x"):
    """The smallest value a schema accepts (required properties only), for building payloads."""
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _instance(options[0], name)
    if "allOf" in schema:
        merged: dict = {}
        for part in schema["allOf"]:
            value = _instance(part, name)
            merged.update(value if isinstance(value, dict) else {})
        return merged
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _instance(props.get(k, {}), k) for k in schema.get("required", [])}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    fmt = schema.get("format")
    return {"uri": f"https://github.test/{name}", "date-time": NOW, "email": "x@example.test"}.get(fmt, name)


def protection_rule_payload(*, repository: str = "acme/shop", environment: str = "production", run_id: int = 9001,
                            installation_id: int = INSTALLATION_ID, api_url: str = "https://api.github.com",
                            ref: str = "main", sha: str = "c" * 40) -> dict:
    """A ``deployment_protection_rule`` / ``requested`` payload as GitHub sends it, valid against the
    published schema (asserted here, so a test never sends what GitHub would not)."""
    schema = webhook_schemas()["deployment_protection_rule.requested"]
    payload = _instance(schema)
    owner, name = repository.split("/")
    payload.update({
        "action": "requested", "environment": environment, "event": "push",
        "deployment_callback_url": f"{api_url}/repos/{repository}/actions/runs/{run_id}/deployment_protection_rule",
        "installation": {"id": installation_id, "node_id": f"MDIz{installation_id}"},
    })
    payload["repository"] |= {"full_name": repository, "name": name, "html_url": f"https://github.com/{repository}",
                              "url": f"{api_url}/repos/{repository}"}
    payload["repository"]["owner"] = payload["repository"]["owner"] | {"login": owner}
    payload["deployment"] = _instance(schema["properties"]["deployment"]) | {
        "id": run_id * 10, "sha": sha, "ref": ref, "environment": environment, "task": "deploy"}
    jsonschema.Draft202012Validator(schema).validate(payload)
    return payload


def webhook_headers(body: bytes, *, event: str = "deployment_protection_rule", delivery: str | None = None,
                    secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "X-Hub-Signature-256": signature}


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
    app_id: str = APP_ID
    installations: dict[str, int] = field(default_factory=lambda: {"acme/shop": INSTALLATION_ID})
    token_lifetime: float = 3600.0
    issued: dict[str, tuple[int, float]] = field(default_factory=dict)  # token -> (installation, expires)
    held: set[tuple[str, int, str]] = field(default_factory=set)  # (repo, run id, environment) waiting
    reviews: list[dict] = field(default_factory=list)  # reviews GitHub took, in order
    fail_reviews: int = 0  # answer this many reviews with 502 first (GitHub outage)
    violations: list[str] = field(default_factory=list)
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

    def hold(self, repository: str, run_id: int, environment: str) -> None:
        """A run now waits on the app's protection rule for ``environment`` (GitHub sent the webhook)."""
        self.held.add((repository, run_id, environment))

    def writes(self, kind: str) -> list[Request]:
        pattern = DEPLOYMENTS if kind == "deployment" else STATUSES
        return [r for r in self.requests if r.method == "POST" and pattern.match(r.path)]

    # --- request handling -------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.requests.append(Request(method, h.path, body, {k.lower(): v for k, v in h.headers.items()}))
        problem = spec_problem(method, h.path, body)
        if problem is not None:
            self.violations.append(problem[1])
            return self._send(h, problem[0], {"message": problem[1]})
        auth = h.headers.get("Authorization", "")
        path = urlsplit(h.path).path
        if ACCESS_TOKENS.match(path) or REPO_INSTALLATION.match(path):
            return self._app_call(h, method, path, auth)
        if not self._token_ok(auth):
            return self._send(h, 401, {"message": "Bad credentials"})
        if method == "POST" and (m := REVIEW.match(path)):
            return self._review(h, m, body)
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

    # --- the app: JWT, installations, installation tokens -------------------------------------

    def _token_ok(self, auth: str) -> bool:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        if token == self.token:
            return True
        issued = self.issued.get(token)
        return issued is not None and issued[1] > time.time()

    def _jwt_ok(self, auth: str) -> bool:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            claims = jwt.decode(token, app_key()[1], algorithms=["RS256"], options={"require": ["iat", "exp", "iss"]})
        except jwt.PyJWTError:
            return False
        return str(claims["iss"]) == self.app_id and claims["exp"] - claims["iat"] <= 600

    def _app_call(self, h, method: str, path: str, auth: str) -> None:
        if not self._jwt_ok(auth):
            return self._send(h, 401, {"message": "A JSON web token could not be decoded"})
        if m := REPO_INSTALLATION.match(path):
            installation = self.installations.get(f"{m.group(1)}/{m.group(2)}")
            if installation is None:
                return self._send(h, 404, {"message": "Not Found"})
            return self._send(h, 200, {"id": installation, "app_id": int(self.app_id), "target_type": "Organization",
                                       "account": {"login": m.group(1), "id": 1}, "permissions": {}, "events": []})
        installation = int(ACCESS_TOKENS.match(path).group(1))
        if installation not in self.installations.values():
            return self._send(h, 404, {"message": "Not Found"})
        token = f"ghs_{installation}_{len(self.issued) + 1:04d}"
        expires = time.time() + self.token_lifetime
        self.issued[token] = (installation, expires)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        self._send(h, 201, {"token": token, "expires_at": stamp, "permissions": {"deployments": "write"},
                            "repository_selection": "all"})

    def tokens_issued(self) -> int:
        return len(self.issued)

    def _review(self, h, m, body: dict) -> None:
        repo, run_id = f"{m.group(1)}/{m.group(2)}", int(m.group(3))
        if self.fail_reviews > 0:
            self.fail_reviews -= 1
            return self._send(h, 502, {"message": "Server Error"})
        key = (repo, run_id, body["environment_name"])
        if key not in self.held:
            return self._send(h, 422, {"message": "No pending deployment requests to approve or reject"})
        self.held.discard(key)
        self.reviews.append({"repository": repo, "run_id": run_id, **body})
        self._send(h, 204, None)

    # --- deployments --------------------------------------------------------------------------

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
    def _send(h: BaseHTTPRequestHandler, code: int, payload: dict | list | None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


@contextmanager
def fake_github(monkeypatch) -> Iterator[FakeGitHub]:
    """A running FakeGitHub; mirrors made meanwhile skip PyGithub's 1 s pause between writes."""
    from chainpipe.gh.mirror import DeploymentMirror

    monkeypatch.setitem(DeploymentMirror.__init__.__kwdefaults__, "throttle", False)
    fake = FakeGitHub().start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.violations == [], f"requests GitHub's REST description does not allow: {fake.violations}"
