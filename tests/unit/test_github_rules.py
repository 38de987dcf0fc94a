"""The GitHub App's pure parts: its settings (one line per mistake), the ``[github]`` config, and
what a protection rule is told from a pipeline's gates."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
from chainpipe.bot.settings import SettingsError, load_github_app
from chainpipe.core.config import load_settings
from chainpipe.core.errors import ConfigError
from chainpipe.core.rules.protection import protection_verdict

KEY = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"
SECRET = "s" * 20


def test_the_app_is_off_without_an_app_id_and_on_with_its_three_settings():
    assert load_github_app({}) is None
    app = load_github_app({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY": KEY.replace("\n", "\\n"),
                           "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": "https://ghe.example.test/api/v3/"})
    assert (app.app_id, app.api_url) == ("42", "https://ghe.example.test/api/v3")
    assert app.private_key == KEY + "\n"  # a PEM pasted on one line of an env file works
    assert SECRET not in repr(app) and "MIIB" not in repr(app)


def test_the_key_can_come_from_a_file(tmp_path):
    path = tmp_path / "app.pem"
    path.write_text(KEY)
    app = load_github_app({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY_FILE": str(path),
                           "GITHUB_WEBHOOK_SECRET": SECRET})
    assert app.private_key.startswith("-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize("env,message", [
    ({"GITHUB_APP_ID": "app"}, "GITHUB_APP_ID must be the app's number"),
    ({"GITHUB_APP_ID": "42", "GITHUB_WEBHOOK_SECRET": SECRET}, "GITHUB_APP_PRIVATE_KEY or"),
    ({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY": "hunter2", "GITHUB_WEBHOOK_SECRET": SECRET},
     "not a PEM private key"),
    ({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY": KEY}, "GITHUB_WEBHOOK_SECRET is missing"),
    ({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY": KEY, "GITHUB_WEBHOOK_SECRET": "short"}, "shorter than 16"),
    ({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY_FILE": "/nonexistent/app.pem", "GITHUB_WEBHOOK_SECRET": SECRET},
     "cannot read GITHUB_APP_PRIVATE_KEY_FILE"),
    ({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY": KEY, "GITHUB_WEBHOOK_SECRET": SECRET,
      "GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL must be an http(s) URL"),
])
def test_each_missing_or_malformed_setting_is_one_line_naming_it(env, message):
    with pytest.raises(SettingsError) as exc:
        load_github_app(env)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_github_config_names_repositories_and_environment_templates(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[github]\nrepositories = ["acme/shop"]\n[github.environments.production]\n'
                    'template = "bugfix"\n[github.environments.staging]\n')
    github = load_settings({"PIPE_CONFIG": str(path), "PIPE_DATA_DIR": str(tmp_path)}).github
    assert github.environments == {"production": "bugfix", "staging": None}
    assert github.serves("ACME/shop", "production") and not github.serves("acme/other", "production")
    assert not github.serves("acme/shop", "qa")


@pytest.mark.parametrize("toml,message", [
    ('[github]\nrepo = "x"', "github: unknown key repo"),
    ('[github]\nrepositories = ["shop"]', "is not owner/name"),
    ('[github.environments.production]\ntemplate = "nope"', "unknown template 'nope'"),
    ('[github.environments]\nproduction = "bugfix"', "must be a table"),
])
def test_a_bad_github_config_is_refused_with_one_line(tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings({"PIPE_CONFIG": str(path), "PIPE_DATA_DIR": str(tmp_path)})


def gate(name, status, decided_by=None, reason=None):
    return NS(name=name, status=status, decided_by=decided_by, reason=reason)


RUNNING = NS(id="pipe-1", status="running")


def test_every_gate_approved_approves_naming_each_gates_approvers():
    verdict = protection_verdict(RUNNING, [gate("code-review", "approved", "bob"), gate("security-review", "approved")],
                                 {"code-review": ["alice", "bob"], "security-review": ["sec"]})
    assert verdict.answer == "approved"
    assert "code-review by alice, bob; security-review by sec" in verdict.comment and "pipe-1" in verdict.comment


def test_one_rejected_gate_rejects_with_who_and_why_even_if_another_is_approved():
    verdict = protection_verdict(RUNNING, [gate("code-review", "approved"),
                                           gate("security-review", "rejected", "erin", "CVE open")], {})
    assert verdict.answer == "rejected"
    assert verdict.comment.startswith("security-review rejected by erin: CVE open")


def test_a_pending_gate_keeps_github_waiting_unless_the_pipeline_ended():
    gates = [gate("code-review", "approved"), gate("security-review", "pending")]
    assert protection_verdict(RUNNING, gates, {}) is None
    ended = protection_verdict(NS(id="pipe-1", status="cancelled"), gates, {})
    assert ended.answer == "rejected" and "cancelled with security-review never approved" in ended.comment


def test_the_comment_stays_one_bounded_line():
    verdict = protection_verdict(RUNNING, [gate("code-review", "rejected", "x", "why\n" * 1000)], {})
    assert "\n" not in verdict.comment and len(verdict.comment) <= 1000
