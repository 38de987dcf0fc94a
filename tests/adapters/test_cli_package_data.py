"""`pipe slack-manifest --url` and `pipe config --sample`: files shipped in the package, printed."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml

from tests.adapters.conftest import assert_refused

ROOT = Path(__file__).resolve().parents[2]


def test_the_manifest_points_every_request_url_at_the_given_server(pipe):
    out = pipe.ok("slack-manifest", "--url", "https://pipe.acme.test/")
    manifest = yaml.safe_load(out)
    [slash] = manifest["features"]["slash_commands"]
    assert slash["url"] == "https://pipe.acme.test/slack/events"
    assert manifest["settings"]["interactivity"]["request_url"] == "https://pipe.acme.test/slack/events"
    assert "pipe.example.com" not in out


def test_the_printed_manifest_is_the_shipped_one_with_only_the_url_changed(pipe):
    out = pipe.ok("slack-manifest", "--url", "https://pipe.acme.test")
    shipped = yaml.safe_load((ROOT / "bot" / "slack-manifest.yml").read_text())
    printed = yaml.safe_load(out.replace("https://pipe.acme.test", "https://pipe.example.com"))
    assert printed == shipped


def test_a_url_that_is_not_https_or_carries_more_than_a_server_is_refused_in_one_line(pipe):
    for url in ("http://pipe.acme.test", "pipe.acme.test", "https://", "https://x.test/?a=1", "https://x.test/#f",
                "https://x.test/\nfeatures: {}"):
        assert_refused(pipe("slack-manifest", "--url", url), 2, "--url must be the server's public https URL")


def test_config_sample_prints_the_shipped_team_config(pipe):
    out = pipe.ok("config", "--sample")
    assert out == (ROOT / "docs" / "team-config.toml").read_text()
    assert tomllib.loads(out)["gates"]["code-review"]["required_approvals"] == 2


def test_the_sample_is_printed_without_a_database_or_a_server(pipe_with, tmp_path):
    pipe = pipe_with({"PIPE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
                      "PIPE_SERVER_URL": "http://127.0.0.1:1", "PIPE_TOKEN": "cp_unused"})
    assert tomllib.loads(pipe.ok("config", "--sample"))["groups"]["leads"] == ["alice", "carol"]


def test_config_sample_takes_no_other_option_and_plain_config_is_unchanged(pipe):
    assert_refused(pipe("config", "--sample", "--json"), 2, "takes no other option")
    assert "database_url" in pipe.json("config")


def test_the_socket_mode_manifest_turns_socket_mode_on_and_names_no_url(pipe):
    out = pipe.ok("slack-manifest", "--socket-mode")
    manifest = yaml.safe_load(out)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "https://" not in out and "url" not in json.dumps(manifest)
    assert manifest["features"]["slash_commands"][0]["command"] == "/pipe"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    http = yaml.safe_load(pipe.ok("slack-manifest", "--url", "https://pipe.acme.test"))
    assert http["settings"]["socket_mode_enabled"] is False


def test_the_manifest_needs_exactly_one_of_url_and_socket_mode(pipe):
    for args in ((), ("--socket-mode", "--url", "https://pipe.acme.test")):
        assert_refused(pipe("slack-manifest", *args), 2, "give either --url https://<your server> (HTTP) or "
                                                         "--socket-mode")
