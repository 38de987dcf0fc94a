"""`/pipe …` through the Bolt app: the CLI's grammar, the Slack user as actor, ephemeral replies."""

from __future__ import annotations

import json
import re
import time

import pytest
from chainpipe.core.grammar import COMMANDS


def _id(text: str, prefix: str) -> str:
    match = re.search(rf"{prefix}-[0-9a-f]{{12}}", text)
    assert match, text
    return match.group(0)


def _json(text: str):
    assert text.startswith("```") and text.endswith("```"), text
    return json.loads(text[3:-3])


def test_slash_command_creates_a_pipeline_as_the_slack_user(slack):
    created = _json(slack.run('create --name "用户认证" --template feature --json', user="U0ALICE"))
    assert created["name"] == "用户认证" and created["status"] == "created"
    assert created["created_by"] == "slack:U0ALICE"
    shown = slack.run(f"show {created['id']}")
    assert created["id"] in shown and "created" in shown


def test_identities_map_the_slack_user_to_a_person(slack, config_file):
    config_file('[identities]\n"slack:U0ALICE" = "alice"\n')
    slack = slack.rebuild()
    created = _json(slack.run("create --name x --json", user="U0ALICE"))
    assert created["created_by"] == "alice"


def test_the_ack_is_immediate_and_empty_and_the_reply_is_ephemeral(slack):
    started = time.perf_counter()
    resp, path = slack.command("list --json")
    assert resp.status == 200 and resp.body == ""
    assert time.perf_counter() - started < 1.0
    reply = slack.reply(path)
    assert reply["response_type"] == "ephemeral"
    assert _json(reply["text"]) == []


def test_errors_are_one_ephemeral_line(slack):
    text = slack.run("start pipe-000000000000")
    assert text == ":warning: pipeline not found: pipe-000000000000"


@pytest.mark.parametrize("words, message", [
    ("frobnicate", "unknown command: frobnicate; try `help`"),
    ("create", "create: missing option --name"),
    ("create --name x --colour red", "no such option for create: --colour"),
    ('create --name "unclosed', "can't read that command line: No closing quotation"),
    ("create --name x --as bob", "--as is not available in Slack: you always act as yourself"),
    ("list --limit many", "--limit must be a whole number, got 'many'"),
])
def test_parse_errors_are_answered_in_the_ack(slack, words, message):
    resp, _ = slack.command(words)
    assert resp.status == 200
    body = json.loads(resp.body)
    assert body == {"response_type": "ephemeral", "text": f":warning: {message}"}


def test_help_lists_every_command_and_help_for_one_shows_its_options(slack):
    text = slack.run("help")
    for name in COMMANDS:
        assert f"`{name}`" in text
    one = slack.run("help deploy")
    assert "--strategy" in one and "--target" in one
    assert slack.run("deploy --help") == one


def test_human_summary_is_readable_mrkdwn(slack):
    pid = _id(slack.run('create --name "auth"'), "pipe")
    text = slack.run(f"start {pid}")
    assert text.startswith("*start*") and "*status*: running" in text and "*current_stage*: requirements" in text


# Values for every parameter name the grammar uses; a name added later falls back to "x", and
# the command must still answer with its result or a one-line error, never a crash.
SAMPLE = {
    "name": "sample", "template": "feature", "stage": "review", "reason": "because", "gate": "code-review",
    "type": "report", "uri": "https://example.test/r", "strategy": "canary", "target": "prod",
    "status": "succeeded", "metric": "error_rate", "value": "0.01", "format": "json", "limit": "5",
    "owner": "alice", "run_id": "run-1", "trigger": "push",
}


def _words_for(command, pid: str, did: str) -> list[str]:
    words = [command.name]
    for p in command.params:
        if p.positional and p.required:
            words.append({"PIPELINE_ID": pid, "DEPLOY_ID": did}.get(p.label, SAMPLE.get(p.name, "x")))
        elif not p.positional and p.required:
            words += [p.flags[0], SAMPLE.get(p.name, "x")]
    return words + ["--json"]


def test_every_grammar_command_runs_through_slack(slack):
    """Enumerates core.grammar.COMMANDS, so commands added later are covered too."""
    pid = _json(slack.run("create --name everything --json"))["id"]
    for words in (f"start {pid}", f"stage {pid} review", f"approve {pid} --gate code-review",
                  f"artifact-add {pid} --name build --type report --uri https://x.test/b"):
        slack.run(words)
    did = _json(slack.run(f"deploy {pid} --strategy canary --target prod --json"))["id"]
    answered = {}
    for name, command in COMMANDS.items():
        import shlex

        text = slack.run(shlex.join(_words_for(command, pid, did)))
        assert "internal error" not in text, (name, text)
        assert text.startswith("```") or text.startswith(":warning: "), (name, text)
        if text.startswith("```"):
            _json(text)
        answered[name] = text
    assert set(answered) == set(COMMANDS)
    ok = [n for n, t in answered.items() if t.startswith("```")]
    assert len(ok) >= len(COMMANDS) * 0.6, answered  # most succeed; the rest are domain refusals


def test_the_reply_is_the_same_json_the_cli_prints(slack, env):
    from chainpipe.cli.main import app
    from typer.testing import CliRunner

    pid = _json(slack.run("create --name same --json"))["id"]
    via_slack = _json(slack.run(f"show {pid} --json"))
    result = CliRunner().invoke(app, ["show", pid, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == via_slack
