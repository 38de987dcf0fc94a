"""Every route that can try to decide a gate × (allowed person, forbidden person, self-approval,
impersonation attempt): the gate's state and the approval rows after each, on SQLite and PostgreSQL.

The policy: code-review is decided by the group `leads` (alice, carol), never by the pipeline's
creator, or by the service token `scanner`. dave creates the pipelines; alice creates the one used
for self-approval. No route lets one principal approve as someone else or supply two approvals.
"""

from __future__ import annotations

import json

import pytest
from chainpipe.bot import blocks
from chainpipe.core.actor import Actor, os_user
from chainpipe.core.config import load_settings
from chainpipe.core.models import Approval
from chainpipe.core.services.gates import gate_status
from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline
from chainpipe.core.services.tokens import create_token
from chainpipe.core.uow import UnitOfWork
from sqlmodel import select
from starlette.testclient import TestClient

from tests.fakes import slack as fake

POLICY = """
[groups]
leads = ["alice", "carol"]

[identities]
"slack:U0ALICE" = "alice"
"slack:U0CAROL" = "carol"
"slack:U0MALLORY" = "mallory"

[gates.code-review]
groups = ["leads"]
forbid_self_approval = true
service_approvers = ["scanner"]

[separation]
distinct = [["code-review", "security-review"]]
"""
CASES = ("allowed", "forbidden", "self", "impersonation")


@pytest.fixture
def policy_env(env, config_file, fake_slack):
    config_file(POLICY)
    return env | {"PIPE_SERVER_API_ONLY": "1", "SLACK_SIGNING_SECRET": fake.SIGNING_SECRET,
                  "SLACK_BOT_TOKEN": fake.BOT_TOKEN, "SLACK_API_URL": fake_slack.api_url,
                  "PIPE_SLACK_CHANNEL": "C0PIPE"}


def at_review(env, creator: str, template: str = "feature") -> str:
    settings, actor = load_settings(env), Actor(creator, "cli")
    with UnitOfWork(settings) as uow:
        pid = create_pipeline(uow, actor, name="routes", template=template)["id"]
    for step in (lambda u: start_pipeline(u, actor, pid), lambda u: advance_stage(u, actor, pid, "review")):
        with UnitOfWork(settings) as uow:
            step(uow)
    return pid


def state(env, pid: str) -> tuple[str, list[tuple[str, str, str | None]]]:
    """The gate's status and its approval rows as (person, principal, on_behalf_of)."""
    settings = load_settings(env)
    with UnitOfWork(settings, write=False) as uow:
        status = gate_status(uow, Actor("reader"), pid, "code-review")["status"]
        rows = uow.session.exec(select(Approval).where(Approval.pipeline_id == pid).order_by(Approval.seq))
        return status, [(a.person, a.principal, a.on_behalf_of) for a in rows]


def token(env, name: str, person: str | None = None) -> str:
    with UnitOfWork(load_settings(env)) as uow:
        return create_token(uow, Actor("admin"), name, person=person)["token"]


# --- the routes: each tries to approve as someone, and says whether it was refused -----------------

class CliDirect:
    principal = f"os:{os_user()}"

    def __init__(self, env, pipe_with, server, slack):
        self.env, self.pipe_with = env, pipe_with

    def approve(self, pid: str, who: str, case: str, gate: str = "code-review") -> bool:
        env = self.env
        if case == "impersonation":  # a team that switched --as off: naming someone else is refused
            env = env | {"PIPE_CLI_ALLOW_AS": "false"}
        code, _, err = self.pipe_with(env)("approve", pid, "--gate", gate, "--as", who)
        assert code in (0, 1) and (code == 0 or err.count("\n") == 1), err
        return code != 0

    def expected(self, who: str) -> tuple[str, str, None]:
        return (who, self.principal, None)


class ApiPersonal:
    def __init__(self, env, pipe_with, server, slack):
        self.env, self.server, self.tokens = env, server, {}

    def approve(self, pid: str, who: str, case: str, gate: str = "code-review") -> bool:
        name = f"{who}-laptop"
        raw = self.tokens.get(name) or token(self.env, name, person=who)
        self.tokens[name] = raw
        headers = {"Authorization": f"Bearer {raw}"}
        if case == "impersonation":  # mallory's token, claiming to be carol
            headers["X-Pipe-Actor"] = "carol"
        response = self.server.post("/api/v1/commands/approve", headers=headers,
                                    content=json.dumps({"pipeline_id": pid, "gate": gate}))
        assert response.status_code in (200, 403), response.text
        return response.status_code == 403

    def expected(self, who: str):
        return (who, f"token:{who}-laptop", None)


class ApiService(ApiPersonal):
    """A CI token: it records work; it decides no gate, whoever it claims to act for."""

    name = "ci"

    def approve(self, pid: str, who: str, case: str) -> bool:
        name = self.name if case != "forbidden" else "deployer-bot"
        raw = token(self.env, f"{name}-{pid[-4:]}-{case}") if name != self.name else self._named(pid, case)
        headers = {"Authorization": f"Bearer {raw}", "X-Pipe-Actor": f"github:{who}"}
        response = self.server.post("/api/v1/commands/approve", headers=headers,
                                    content=json.dumps({"pipeline_id": pid, "gate": "code-review"}))
        assert response.status_code in (200, 403), response.text
        return response.status_code == 403

    def _named(self, pid: str, case: str) -> str:
        return token(self.env, f"{self.name}-{pid[-4:]}-{case}")

    def expected(self, who: str):
        return None  # never accepted


class ApiServiceNamed(ApiService):
    """The token `scanner`, which the policy names: it approves as itself, never as the claimed person."""

    name = "scanner"

    def _named(self, pid: str, case: str) -> str:
        self.made = getattr(self, "made", None) or token(self.env, "scanner")
        return self.made

    def expected(self, who: str):
        return ("token:scanner", "token:scanner", f"github:{who}")


class SlackCommand:
    users = {"carol": "U0CAROL", "mallory": "U0MALLORY", "alice": "U0ALICE"}

    def __init__(self, env, pipe_with, server, slack):
        self.slack = slack

    def approve(self, pid: str, who: str, case: str, gate: str = "code-review") -> bool:
        sign = {"secret": "not-the-signing-secret"} if case == "impersonation" else {}
        resp, path = self.send(pid, self.users[who], sign, gate)
        if case == "impersonation":
            assert resp.status == 401
            return True
        text = self.slack.reply(path)["text"]
        return text.startswith(":warning:")

    def send(self, pid, user, sign, gate):
        return self.slack.command(f"approve {pid} --gate {gate}", user=user, **sign)

    def expected(self, who: str):
        return (who, f"slack:{self.users[who]}", None)


class SlackButton(SlackCommand):
    def send(self, pid, user, sign, gate):
        url = self.slack._url()
        body = fake.block_actions_body(action_id=blocks.APPROVE, value=blocks.gate_value(pid, gate),
                                       user_id=user, response_url=url)
        return self.slack.dispatch(body, **sign), url.removeprefix(self.slack.fake.base)


class ActionDirect:
    """The Action has no approve command: the nearest it can get is moving past the gate, refused."""

    def __init__(self, env, pipe_with, server, slack):
        self.env = env

    def approve(self, pid: str, who: str, case: str) -> bool:
        from chainpipe.cli.action import main

        env = {"PIPE_ACTION_COMMAND": "stage", "PIPE_ACTION_PIPELINE_ID": pid, "PIPE_ACTION_STAGE": "deploy",
               "PIPE_ACTION_DATABASE_URL": self.env["PIPE_DATABASE_URL"], "GITHUB_ACTOR": who,
               "PIPE_CONFIG": self.env["PIPE_CONFIG"], "PIPE_DATA_DIR": self.env["PIPE_DATA_DIR"]}
        return main(env) != 0

    def expected(self, who: str):
        return None


ROUTES = {"cli-direct": CliDirect, "api-personal": ApiPersonal, "api-service": ApiService,
          "api-service-named": ApiServiceNamed, "slack-command": SlackCommand, "slack-button": SlackButton,
          "action-direct": ActionDirect}


@pytest.fixture
def harness(policy_env, pipe_with, fake_slack):
    from chainpipe.bot.server import create_asgi_app
    from chainpipe.bot.settings import load_bot_settings

    from tests.adapters.conftest import SlackHarness

    server_env = policy_env
    app = create_asgi_app(load_settings(server_env), load_bot_settings(server_env), start_notifier=False)

    from chainpipe.bot.app import create_app, web_client
    from chainpipe.bot.notifier import Notifier
    from chainpipe.bot.runtime import Runtime

    bot_settings = load_bot_settings({k: v for k, v in policy_env.items() if k != "PIPE_SERVER_API_ONLY"})
    client = web_client(bot_settings)
    notifier = Notifier(load_settings(policy_env), client, bot_settings.channel, lease=0.5)
    slack = SlackHarness(create_app(bot_settings, Runtime(load_settings(policy_env)), client), notifier, fake_slack)
    with TestClient(app, raise_server_exceptions=False) as server:
        yield lambda route: ROUTES[route](policy_env, pipe_with, server, slack)
    notifier.stop()


# Which (route, case) ends with the gate approved; everything else must change nothing.
ACCEPTED = {("cli-direct", "allowed"), ("api-personal", "allowed"), ("slack-command", "allowed"),
            ("slack-button", "allowed"), ("api-service-named", "allowed"), ("api-service-named", "impersonation")}


def people(route: str, case: str) -> tuple[str, str]:
    """(creator of the pipeline, the person the request tries to approve as)."""
    if case == "self":
        return ("token:scanner", "scanner") if route == "api-service-named" else ("alice", "alice")
    if case == "forbidden":
        return "dave", "mallory"
    if case == "impersonation" and route == "api-personal":
        return "dave", "mallory"  # mallory's own token, claiming carol
    return "dave", "carol"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_only_the_right_person_decides_and_the_record_names_who_proved_it(harness, policy_env, route, case):
    driver = harness(route)
    creator, who = people(route, case)
    pid = at_review(policy_env, creator)
    refused = driver.approve(pid, who, case)
    status, rows = state(policy_env, pid)
    if (route, case) in ACCEPTED:
        assert not refused and status == "approved" and rows == [driver.expected(who)], (route, case, rows)
    else:
        assert refused and status == "pending" and rows == [], (route, case, rows)


@pytest.mark.parametrize("route", ["cli-direct", "api-personal", "slack-command", "slack-button"])
def test_one_person_may_not_approve_both_gates_kept_apart_on_any_surface(harness, policy_env, route):
    driver = harness(route)
    pid = at_review(policy_env, "dave", template="security-audit")
    assert driver.approve(pid, "carol", "allowed", gate="code-review") is False
    assert driver.approve(pid, "carol", "allowed", gate="security-review") is True
    with UnitOfWork(load_settings(policy_env), write=False) as uow:
        status = gate_status(uow, Actor("reader"), pid, "security-review")
    assert status["status"] == "pending" and status["decisions"] == []
