from __future__ import annotations

import json

from chainpipe.cli import render


def test_tables_align_wide_characters_by_display_width():
    out = render.table(["name", "status"], [["用户认证", "running"], ["auth", None]]).splitlines()
    assert out[0] == "name      status"
    assert out[1] == "用户认证  running"
    assert out[2] == "auth      -"


def test_json_output_keeps_unicode_and_is_parseable(capsys):
    render.print_json({"name": "用户认证", "n": [1, 2]})
    out = capsys.readouterr().out
    assert "用户认证" in out and json.loads(out) == {"name": "用户认证", "n": [1, 2]}


def test_nested_results_are_flattened_to_dotted_fields(capsys):
    render.human("config", {"pipelines": {"by_status": {"running": 2}}, "artifacts": 3})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["pipelines.by_status.running", "2"] and lines[2].split() == ["artifacts", "3"]


def test_unchanged_rollback_says_so(capsys):
    render.human("rollback", {"id": "dep-1", "strategy": "canary", "target": "prod", "status": "rolled-back",
                              "changed": False})
    assert capsys.readouterr().out == "dep-1  canary → prod: rolled-back  (unchanged)\n"
