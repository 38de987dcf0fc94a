"""The App Home tab: ``app_home_opened`` → ``views.publish`` with the viewer's open gates, their
recent decisions and the last deploy per target, driven through the Bolt app with signed events."""

from __future__ import annotations

import json

from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.services.deploys import record_deploy
from chainpipe.core.services.gates import approve_gate
from chainpipe.core.services.pipelines import advance_stage, create_pipeline, start_pipeline
from chainpipe.core.uow import UnitOfWork

from tests.fakes import slack as fake

CONFIG = """
[gates.code-review]
approvers = ["alice", "bob"]
forbid_self_approval = true
[identities]
"slack:U0ALICE" = "alice"
"slack:U0BOB" = "bob"
"slack:U0CAROL" = "carol"
"""


def do(env, fn, actor, *args, **kw):
    with UnitOfWork(load_settings(env)) as uow:
        return fn(uow, actor, *args, **kw)


def at_review(env, name: str, creator: str = "alice") -> str:
    pid = do(env, create_pipeline, Actor(creator), name=name)["id"]
    do(env, start_pipeline, Actor(creator), pid)
    do(env, advance_stage, Actor(creator), pid, "review")
    return pid


def open_home(slack, fake_slack, user: str) -> str:
    fake_slack.reset()
    resp = slack.dispatch(fake.app_home_opened_body(user_id=user), "application/json")
    assert resp.status == 200
    [call] = fake_slack.wait_for("views.publish")
    assert call.params["user_id"] == user and call.params["view"]["type"] == "home"
    return json.dumps(call.params["view"])


def test_the_home_tab_lists_the_gates_the_viewer_may_decide_and_not_the_others(slack, slack_env, fake_slack,
                                                                            config_file):
    config_file(CONFIG)
    slack = slack.rebuild()
    mine = at_review(slack_env, "by-carol", creator="carol")  # bob and alice may decide it
    own = at_review(slack_env, "by-alice", creator="alice")  # alice may not approve her own pipeline
    not_yet = do(slack_env, create_pipeline, Actor("carol"), name="not-started")["id"]
    alice = open_home(slack, fake_slack, "U0ALICE")
    assert mine in alice and own not in alice and not_yet not in alice
    assert "Waiting for alice" in alice
    carol = open_home(slack, fake_slack, "U0CAROL")  # not an approver of code-review
    assert mine not in carol and own not in carol and "Nothing waits for you." in carol


def test_the_home_tab_shows_recent_decisions_and_the_last_deploy_per_target(slack, slack_env, fake_slack,
                                                                         config_file):
    config_file(CONFIG)
    slack = slack.rebuild()
    pid = at_review(slack_env, "shipping", creator="carol")
    do(slack_env, approve_gate, Actor("bob"), pid, "code-review", reason="ship it")
    first = do(slack_env, record_deploy, Actor("carol"), pid, "canary", "prod")["id"]
    second = do(slack_env, record_deploy, Actor("carol"), pid, "canary", "prod")["id"]
    staging = do(slack_env, record_deploy, Actor("carol"), pid, "canary", "staging")["id"]
    bob = open_home(slack, fake_slack, "U0BOB")
    assert "approved *code-review*" in bob and "ship it" in bob and pid not in bob.split("Gates you can decide")[0]
    assert second in bob and staging in bob and first not in bob
    assert "Nothing waits for you." in bob  # the gate is decided


def test_names_typed_by_people_are_shown_as_text(slack, slack_env, fake_slack, config_file):
    config_file(CONFIG)
    slack = slack.rebuild()
    at_review(slack_env, "<!channel> <https://evil.example|click>", creator="carol")
    home = open_home(slack, fake_slack, "U0ALICE")
    assert "<!channel>" not in home and "&lt;!channel&gt;" in home and "<https://evil" not in home


def test_a_home_tab_when_the_database_is_down_says_so_in_one_line(slack, slack_env, fake_slack, monkeypatch):
    from chainpipe.bot import home

    def down(settings, person):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(home, "read_home", down)
    view = open_home(slack, fake_slack, "U0ALICE")
    from chainpipe.bot.outage import MESSAGE

    assert "Traceback" not in view and f":warning: {MESSAGE}" in view
