"""What people see in a terminal: readable tables, times and numbers, summaries without zero rows,
suggestions for typos, completion of values, one-line errors. Driven in process."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from chainpipe.cli import render
from chainpipe.core.actor import Actor
from chainpipe.core.clock import iso
from chainpipe.core.dispatch import execute
from chainpipe.core.grammar import COMMANDS
from chainpipe.core.services.deploys import record_deploy, update_deploy
from chainpipe.core.services.monitoring import record_metric

from tests.service.helpers import at_review_approved

ISO_WITH_MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z")
LOCAL_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture
def cli(pipe):
    return pipe


@pytest.fixture
def pid(cli):
    pid = cli.json("create", "--name", "auth")["id"]
    cli.ok("start", pid)
    cli.ok("stage", pid, "review", "--reason", "straight to review")
    return pid


def test_export_as_json_prints_the_document_and_when_it_was_taken(cli, pid):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    doc = json.loads(cli.ok("export", pid, "--format", "json"))
    assert doc["id"] == pid and [s["name"] for s in doc["stages"]][:2] == ["requirements", "architecture"]
    assert before <= datetime.fromisoformat(doc["exported_at"]) <= datetime.now(timezone.utc)
    assert json.loads(cli.ok("export", pid)) | {"exported_at": None} == doc | {"exported_at": None}
    markdown = cli.ok("export", pid, "--format", "markdown")
    assert markdown.startswith("# Pipeline auth\n")
    assert re.search(r"- \*\*exported\*\*: [0-9-]+ [0-9:]+ UTC\n", markdown)


def test_stages_show_their_aliases(cli):
    lines = cli.ok("stages").splitlines()
    assert lines[0].split() == ["#", "stage", "aliases", "description"]
    assert lines[3].startswith("3  code") and "coding, code-generation" in lines[3]


def test_templates_show_their_stages_and_gates_custom_ones_too(cli, config_file):
    config_file('[templates.hotfix]\ndescription = "Fast"\nstages = ["code", "review"]\n'
                'gates = { security-review = "review" }\n')
    rows = {line.split()[0]: line for line in cli.ok("templates").splitlines()[1:]}
    assert "code → test → review → deploy → monitor" in rows["bugfix"] and "code-review (at review)" in rows["bugfix"]
    assert "code-review (at review), security-review (at review)" in rows["security-audit"]
    assert "code → review" in rows["hotfix"] and "security-review (at review)" in rows["hotfix"]
    assert rows["hotfix"].endswith("Fast (custom)")


def test_audit_shows_from_to_and_reason_and_not_the_pipeline_again(cli, pid):
    lines = cli.ok("audit", pid).splitlines()
    assert lines[0].split() == ["#", "when", "actor", "via", "action", "of", "from", "to", "reason"]
    newest = lines[1]
    assert re.search(rf"alice +cli +stage +pipeline {pid} +requirements +review +straight to review$", newest)
    assert all(" ago " in line for line in lines[1:])


def test_monitor_events_show_when_each_was_recorded(cli, pid):
    cli.ok("monitor-record", pid, "--metric", "cpu", "--value", "42.5", "--unit", "%")
    lines = cli.ok("monitor-events", pid).splitlines()
    assert lines[0].split() == ["recorded", "metric", "value", "unit", "deploy", "by", "id"]
    assert re.match(r"\d+s ago +cpu +42\.5 +% +- +alice +mon-", lines[1])


def test_human_views_show_times_to_the_second_or_relative_never_raw_iso(cli, pid):
    for args in (["show", pid], ["list"], ["audit", pid], ["deploy-strategies"]):
        assert not ISO_WITH_MICROSECONDS.search(cli.ok(*args)), args
    assert re.search(rf"{pid} +auth +feature +running +review +\d+s ago", cli.ok("list"))


def test_relative_within_a_day_and_local_time_to_the_second_beyond():
    now = datetime(2026, 12, 3, 9, 22, 47, 111765, tzinfo=timezone.utc)
    ago = {s: render.when(iso(now - timedelta(seconds=s)), now) for s in (0, 45, 190, 5 * 3600 + 10)}
    assert ago == {0: "0s ago", 45: "45s ago", 190: "3m ago", 5 * 3600 + 10: "5h ago"}
    three_days = now - timedelta(days=3)
    assert render.when(iso(three_days), now) == three_days.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert LOCAL_STAMP.fullmatch(render.when(iso(three_days), now))
    assert render.when(None, now) is None


def test_stats_is_a_short_summary_with_sections_and_no_zero_rows(cli, run, clock, alice):
    pid = at_review_approved(run, alice)
    dep = run(record_deploy, alice, pid, strategy="canary", target="production")["id"]
    clock.advance(seconds=15)
    run(update_deploy, alice, dep, status="succeeded")
    out = cli.ok("stats", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-03T00:00:00Z")
    lines = out.splitlines()
    assert lines[0].split() == ["pipelines", "1:", "1", "running"]
    assert lines[1].split() == ["by", "template:", "1", "feature"]
    assert lines[2].split() == ["deploys", "1:", "1", "succeeded"]
    assert lines[3].split() == ["by", "strategy:", "1", "canary"]
    assert lines[4].split() == ["gates", "1", "approved"]
    assert re.search(r"^lead time +median 15 s, p90 15 s$", out, re.M)
    assert re.search(r"^change-failure rate +0% \(0/1\)$", out, re.M)
    assert re.search(r"^deployment frequency +0\.5 / day \(1 succeeded\)$", out, re.M)
    assert not re.search(r"(^|\s)0 [a-z]", out) and "by_status" not in out and "time to restore" not in out
    assert len(lines) < 16


def test_stats_on_an_empty_database_says_so_in_a_few_lines(cli):
    out = cli.ok("stats")
    assert out.splitlines()[:2] == ["pipelines  none", "deploys    none"]
    assert "no deploy went out in this window" in out and len(out.splitlines()) == 5


@pytest.mark.parametrize("args,message", [
    (["stage", "PID", "cod"], "unknown stage: cod; did you mean code?"),
    (["stage", "PID", "deploymnt"], "unknown stage: deploymnt; did you mean deploy?"),
    (["create", "--name", "x", "--template", "featur"], "unknown template: featur; did you mean feature?"),
    (["artifact-add", "PID", "--name", "a", "--type", "binry", "--uri", "s3://a"],
     "unknown artifact type: binry; did you mean binary?"),
    (["list", "--status", "runing"], "unknown status: runing; did you mean running?"),
    (["create", "--name", "x", "--template", "nightly"], "unknown template: nightly; allowed: "),
])
def test_a_typo_gets_a_suggestion(cli, pid, args, message):
    code, out, err = cli(*[pid if a == "PID" else a for a in args])
    assert (code, out) == (2, "") and err.startswith(f"pipe: {message}") and err.count("\n") == 1


def complete(cli, words: str) -> list[str]:
    with cli.monkeypatch.context() as env:
        for key, value in {"_PIPE_COMPLETE": "complete_bash", "COMP_WORDS": words,
                           "COMP_CWORD": str(len(words.split(" ")) - 1)}.items():
            env.setenv(key, value)
        code, out, err = cli()
    assert (code, err) == (0, "")
    return out.split()


def test_values_complete_from_the_catalogue(cli, config_file):
    config_file('[templates.hotfix]\nstages = ["code"]\n')
    assert complete(cli, "pipe stage pipe-x re") == ["requirements", "review"]
    assert complete(cli, "pipe deploy pipe-x --strategy c") == ["canary"]
    assert complete(cli, "pipe create --template ") == ["feature", "bugfix", "refactor", "security-audit", "hotfix"]
    assert complete(cli, "pipe approve pipe-x --gate s") == ["security-review"]
    assert complete(cli, "pipe artifact-add pipe-x --type d") == ["docker-image", "document"]
    assert complete(cli, "pipe list --status c") == ["created", "completed", "cancelled"]
    assert complete(cli, "pipe deploy pipe-x --status ") == ["pending", "in-progress", "succeeded", "failed"]
    assert complete(cli, "pipe export pipe-x --format m") == ["markdown"]


def test_pipeline_ids_complete_from_the_database(cli, pid):
    other = cli.json("create", "--name", "other")["id"]
    assert complete(cli, "pipe show ") == [other, pid]
    assert complete(cli, f"pipe approve {pid[:-3]}") == [pid]
    assert complete(cli, "pipe show nothing-like-it") == []


def test_completion_of_ids_never_fails_and_never_touches_the_database(cli, tmp_path):
    cli.setenv(PIPE_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert complete(cli, "pipe show ") == []
    missing = tmp_path / "absent" / "pipe.db"
    cli.setenv(PIPE_DATABASE_URL=f"sqlite:///{missing}")
    assert complete(cli, "pipe show ") == [] and not missing.exists()
    cli.setenv(PIPE_CONFIG=str(tmp_path / "no-such-config.toml"))
    assert complete(cli, "pipe show ") == []
    assert complete(cli, "pipe create --template f") == ["feature"]


def test_create_without_a_template_says_it_used_the_default(cli):
    lines = cli.ok("create", "--name", "x").splitlines()
    assert lines[0].endswith("x  [feature]  created")
    assert lines[1] == "template feature: the default; choose one with --template (see `pipe templates`)"
    assert len(cli.ok("create", "--name", "y", "--template", "feature").splitlines()) == 1
    assert cli.json("create", "--name", "z")["template"] == "feature"


def test_numbers_have_no_float_noise_in_json_and_are_rounded_for_people(cli, run, alice, settings):
    pid = at_review_approved(run, alice)
    for value in (0.012, 0.01, 0.011):
        run(record_metric, alice, pid, metric="error_rate", value=value)
    run(record_deploy, alice, pid, strategy="canary", target="production")
    run(record_metric, alice, pid, metric="error_rate", value=0.02)
    raw = cli.ok("monitor-status", pid, "--json")
    assert '"baseline": 0.011,' in raw and "0.011000000000000001" not in raw
    [m] = execute(COMMANDS["monitor-status"], {"pipeline_id": pid, "deploy": None}, Actor("api"), settings)["metrics"]
    assert m["baseline"] == 0.011 and m["latest"] == 0.02
    row = next(line for line in cli.ok("monitor-status", pid).splitlines() if line.startswith("error_rate  "))
    assert row.split()[:4] == ["error_rate", "0.02", "-", "0.011"]


def test_version(cli):
    from importlib.metadata import version

    assert cli.ok("--version") == f"pipe (chainpipe) {version('chainpipe')}\n"


@pytest.mark.parametrize("args", [["show", "x\ny"], ["show", "x\x1b[2J\x1b[31m"], ["no\nsuch"],
                                  ["create", "--name", "n", "--template", "a\nb"]])
def test_errors_stay_one_line_with_control_characters_escaped(cli, args):
    code, out, err = cli(*args)
    assert code in (1, 2) and out == ""
    assert err.startswith("pipe: ") and err.count("\n") == 1 and err.endswith("\n")
    assert "\x1b" not in err and "\r" not in err


def test_say_escapes_what_would_break_the_line(capsys):
    from chainpipe.cli.errors import say

    say("pipeline not found: x\ny\x1b[2J\u2028z")
    assert capsys.readouterr().err == "pipe: pipeline not found: x\\ny\\x1b[2J\\u2028z\n"
