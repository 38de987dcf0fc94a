"""The GitHub App end to end: a real `pipe-server` process, the fake Slack and the fake GitHub (which
refuses anything GitHub's REST description does not allow) in this process.

Signed ``deployment_protection_rule`` → the gate message in Slack → a signed Approve (or Reject)
click → exactly one answer to the run's callback, naming the approvers (or the reason), with no
runner waiting; the server killed between the click and the answer still answers exactly once; and
deploys and rollbacks made from the CLI and from Slack show up as GitHub Deployments and statuses.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from chainpipe.bot import blocks

from tests.e2e.conftest import pipe_cli
from tests.e2e.test_server_slack import Slack, _id
from tests.fakes.github import (
    APP_ID,
    WEBHOOK_SECRET,
    app_key,
    protection_rule_payload,
    webhook_headers,
)

RUN_ID = 31337
CONFIG = """
[identities]
"slack:U0BOB" = "bob"
"slack:U0ERIN" = "erin"
[github]
repositories = ["acme/shop"]
[github.environments.production]
template = "bugfix"
"""


@pytest.fixture
def app_server(pipe_server, github, config_file):
    config_file(CONFIG)

    def start():
        return pipe_server(GITHUB_APP_ID=APP_ID, GITHUB_APP_PRIVATE_KEY=app_key()[0],
                           GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET, GITHUB_API_URL=github.url)

    start.env = pipe_server.env
    return start


def hold(server, github, run_id: int = RUN_ID) -> httpx.Response:
    github.hold("acme/shop", run_id, "production")
    body = json.dumps(protection_rule_payload(api_url=github.url, run_id=run_id, sha="f" * 40)).encode()
    return httpx.post(server.url + "/github/webhook", content=body, headers=webhook_headers(body), timeout=10)


def wait(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def gate_buttons(fake_slack, pid: str) -> dict[str, dict]:
    [post] = fake_slack.wait_for("chat.postMessage", lambda c: "Gate code-review" in c.params["text"]
                                 and pid in json.dumps(c.params["blocks"]))
    shown = json.dumps(post.params["blocks"])
    assert "*production*" in shown and "fffffff" in shown and f"actions/runs/{RUN_ID}" in shown, shown
    [actions] = [b for b in post.params["blocks"] if b["type"] == "actions"]
    return {e["action_id"]: e for e in actions["elements"]}


def test_a_protected_environment_is_approved_from_slack_with_one_answer_naming_the_approver(app_server, github,
                                                                                            fake_slack):
    server = app_server()
    resp = hold(server, github)
    assert resp.status_code == 202, resp.text
    pid = resp.json()["pipeline_id"]
    approve = gate_buttons(fake_slack, pid)[blocks.APPROVE]
    started = time.perf_counter()
    assert Slack(server, fake_slack).click(approve["action_id"], approve["value"], user="U0BOB").startswith(
        "You approved")
    [review] = wait(lambda: github.reviews, what="the approved callback")
    took = (time.perf_counter() - started) * 1000
    assert (review["state"], review["environment_name"], review["run_id"]) == ("approved", "production", RUN_ID)
    assert "code-review by bob" in review["comment"]
    time.sleep(1.0)  # a few more polls: nothing is sent twice
    assert len(github.reviews) == 1 and not [r for r in github.requests if "422" in json.dumps(r.body or {})]
    print(f"\nSlack click → GitHub approved callback: {took:.0f} ms")


def test_a_rejection_from_slack_answers_rejected_with_the_reason(app_server, github, fake_slack):
    server = app_server()
    pid = hold(server, github).json()["pipeline_id"]
    gate_buttons(fake_slack, pid)
    reply = Slack(server, fake_slack).pipe(f"reject {pid} --gate code-review --reason 'no rollback plan'",
                                           user="U0ERIN")
    assert "reject" in reply.lower()
    [review] = wait(lambda: github.reviews, what="the rejected callback")
    assert review["state"] == "rejected" and "erin" in review["comment"] and "no rollback plan" in review["comment"]


def test_a_server_killed_between_the_click_and_the_callback_still_answers_exactly_once(app_server, github,
                                                                                       fake_slack):
    server = app_server()
    pid = hold(server, github).json()["pipeline_id"]
    approve = gate_buttons(fake_slack, pid)[blocks.APPROVE]
    github.fail_reviews = 10_000  # GitHub is down: the answer cannot get through
    Slack(server, fake_slack).click(approve["action_id"], approve["value"], user="U0BOB")
    callbacks = lambda: [r for r in github.requests if r.path.endswith("deployment_protection_rule")]  # noqa: E731
    wait(callbacks, what="a first attempt at the callback")
    server.proc.kill()  # kill -9: no clean shutdown
    server.proc.wait()
    assert github.reviews == []
    github.fail_reviews = 0
    app_server()
    [review] = wait(lambda: github.reviews, timeout=30, what="the callback after the restart")
    assert review["state"] == "approved" and "bob" in review["comment"]
    time.sleep(1.0)
    assert len(github.reviews) == 1


def test_deploys_and_rollbacks_from_the_cli_and_from_slack_become_github_deployments(app_server, github,
                                                                                    fake_slack):
    server = app_server()
    env = app_server.env
    slack = Slack(server, fake_slack)
    pid = _id(slack.pipe("create --name shop --template bugfix"), "pipe")
    slack.pipe(f"start {pid}")
    slack.pipe(f"stage {pid} review")
    assert "approved" in slack.pipe(f"approve {pid} --gate code-review", user="U0BOB").lower()
    slack.pipe(f"artifact-add {pid} --name build --type binary --uri https://x.test/b --digest sha256:{'b' * 64}")
    def shown() -> dict[str, list[str]]:
        return {d["environment"]: [s["state"] for s in github.statuses.get(d["id"], [])]
                for d in list(github.deployments.values())}

    def reaches(expected: dict[str, list[str]]) -> None:
        """Each change is on GitHub before the next is made (a late one would show only the latest)."""
        wait(lambda: shown() == expected, timeout=30, what=f"GitHub to show {expected}")

    from_slack = _id(slack.pipe(f"deploy {pid} --strategy canary --target production --artifact build "
                                f"--ref {'1' * 40}"), "dep")
    reaches({"production": ["in_progress"]})
    done = pipe_cli(env, "deploy", pid, "--strategy", "rolling", "--target", "staging", "--artifact", "build",
                    "--ref", "2" * 40, "--json")
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(done.stdout)["id"]
    reaches({"production": ["in_progress"], "staging": ["in_progress"]})
    assert pipe_cli(env, "deploy-update", from_cli, "--status", "succeeded").returncode == 0
    reaches({"production": ["in_progress"], "staging": ["in_progress", "success"]})
    slack.pipe(f"rollback {from_slack} --reason 'error rate'")
    reaches({"production": ["in_progress", "inactive"], "staging": ["in_progress", "success"]})
    assert pipe_cli(env, "rollback", from_cli, "--reason", "latency").returncode == 0
    reaches({"production": ["in_progress", "inactive"], "staging": ["in_progress", "success", "inactive"]})
    time.sleep(1.0)  # more polls add nothing
    assert shown() == {"production": ["in_progress", "inactive"], "staging": ["in_progress", "success", "inactive"]}
    refs = {d["environment"]: d["ref"] for d in github.deployments.values()}
    assert refs == {"production": "1" * 40, "staging": "2" * 40}
