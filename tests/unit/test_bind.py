"""Command.bind: the one place raw values from any surface become typed, checked values."""

from __future__ import annotations

import pytest
from chainpipe.core.errors import InvalidInput
from chainpipe.core.grammar import COMMANDS, INT64, LIMIT_MAX, get_command, parse_args


def bind(name, values, **kw):
    return get_command(name).bind(values, **kw)


def test_raw_text_becomes_typed_values_with_defaults():
    assert bind("list", {"limit": "5"}) == {"status": None, "template": None, "limit": 5}
    assert bind("list", {}) == {"status": None, "template": None, "limit": 20}
    assert bind("artifacts", {"pipeline_id": "pipe-1", "all_versions": "true"})["all_versions"] is True
    assert bind("monitor-record", {"pipeline_id": "p", "metric": "cpu", "value": 0.25})["value"] == "0.25"


def test_binding_twice_changes_nothing():
    once = bind("monitor-events", {"pipeline_id": "p", "limit": "7"})
    assert bind("monitor-events", once) == once


@pytest.mark.parametrize("values,message", [
    ({}, "create: missing option --name"),
    ({"name": "x", "colour": "red"}, "create: unknown parameter 'colour'; expected: name, template"),
    ({"name": "a\x00b"}, "--name must not contain control characters"),
    ({"name": "two\nlines"}, "--name must not contain control characters"),
    ({"name": "esc\x1b[31m"}, "--name must not contain control characters"),
    ({"name": "bad\udcff"}, "--name is not valid UTF-8 text"),
    ({"name": "\ud800"}, "--name is not valid UTF-8 text"),
    ({"name": "x" * 201}, "--name is at most 200 characters, got 201"),
    ({"name": ["x"]}, "--name must be text, got list"),
    ({"name": {"x": 1}}, "--name must be text, got dict"),
    ({"name": True}, "--name must be text, got bool"),
])
def test_hostile_text_is_refused_with_one_line(values, message):
    with pytest.raises(InvalidInput) as err:
        bind("create", values)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("raw", ["99999999999999999999", 99999999999999999999, 0, -1, "1.5", "ten", 2.0, True,
                                 str(LIMIT_MAX + 1), "9" * 5000])
def test_limits_outside_their_range_are_refused(raw):
    with pytest.raises(InvalidInput, match="--limit must be"):
        bind("list", {"limit": raw})


def test_a_64_bit_size_is_the_widest_whole_number_accepted():
    base = {"pipeline_id": "p", "name": "n", "type": "binary", "digest": "sha256:" + "0" * 64}
    assert bind("artifact-add", base | {"size": str(INT64[1])})["size"] == INT64[1]
    with pytest.raises(InvalidInput, match="--size must be between 0 and"):
        bind("artifact-add", base | {"size": INT64[1] + 1})


def test_free_text_may_hold_newlines_but_not_nul():
    assert bind("fail", {"pipeline_id": "p", "reason": "line 1\n\tline 2"})["reason"] == "line 1\n\tline 2"
    with pytest.raises(InvalidInput, match="control characters"):
        bind("fail", {"pipeline_id": "p", "reason": "a\x00b"})


def test_a_server_refuses_a_path_before_looking_at_it():
    values = {"pipeline_id": "p", "name": "s", "type": "binary", "path": "/etc/shadow"}
    assert bind("artifact-add", values)["path"] == "/etc/shadow"
    with pytest.raises(InvalidInput) as err:
        bind("artifact-add", values, local=False)
    assert "send its digest and size instead" in str(err.value)
    with pytest.raises(InvalidInput) as missing:
        bind("artifact-add", values | {"path": "/nonexistent/file"}, local=False)
    assert str(missing.value) == str(err.value)


def test_slack_text_is_bound_by_the_same_rules():
    assert parse_args(get_command("list"), ["--limit", "3"]) == {"status": None, "template": None, "limit": 3}
    with pytest.raises(InvalidInput, match="--limit must be between 1 and"):
        parse_args(get_command("list"), ["--limit=0"])
    with pytest.raises(InvalidInput, match="read on your machine"):
        parse_args(get_command("artifact-add"), ["p", "--name", "s", "--type", "binary", "--path", "x"], local=False)


# The column each text parameter is stored in: a value that fits the parameter fits the column,
# so SQLite (which does not enforce lengths) and PostgreSQL (which does) agree.
COLUMNS = {"name": 200, "target": 200, "ref": 200, "digest": 80, "metric": 100, "unit": 32, "owner": 200}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_text_parameter_fits_its_column_and_is_published(command):
    for param in COMMANDS[command].params:
        schema = param.schema()
        if param.type == "str":
            assert schema["maxLength"] == param.max_length
            assert param.max_length <= COLUMNS.get(param.name, 4096)
        elif param.type == "int":
            assert INT64[0] <= schema["minimum"] <= schema["maximum"] <= INT64[1]


def test_choices_are_published_as_enums():
    params = {p.name: p for p in get_command("deploy").params}
    assert params["strategy"].schema()["enum"] == ["blue-green", "canary", "rolling", "recreate", "shadow",
                                                   "dark-launch"]
    stage = {p.name: p for p in get_command("stage").params}["stage"].schema()["enum"]
    assert "review" in stage and "reviewing" in stage
