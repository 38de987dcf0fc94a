"""The CLI, in process, on random and hostile invocations of every grammar command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from tests.fuzz.strategies import invocation

TABLES = ("pipelines", "stages", "gates", "approvals", "artifacts", "deploys", "monitor_events", "audit_events",
          "api_tokens", "gov_pipelines", "gov_runs", "settings")


def fingerprint(url: str) -> tuple:
    from chainpipe.core.db import get_engine

    with get_engine(url).connect() as conn:
        counts = tuple(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in TABLES)
        statuses = tuple(conn.execute(text("SELECT id, status, current_stage FROM pipelines ORDER BY seq")))
        gates = tuple(conn.execute(text("SELECT id, status, round FROM gates ORDER BY seq")))
        deploys = tuple(conn.execute(text("SELECT id, status FROM deploys ORDER BY seq")))
    return counts, statuses, gates, deploys


def argv_for(command, values) -> list[str]:
    words = [command.name]
    for param in command.params:
        if param.name not in values:
            continue
        raw = values[param.name]
        if param.positional:
            words.append(raw)
        elif param.type == "bool":
            words.append(param.flags[0])
        else:
            words += [param.flags[0], raw]
    return words


@pytest.fixture
def prepared(pipe):
    pid = pipe.json("create", "--name", "fuzz")["id"]
    fresh = pipe.json("create", "--name", "fresh")["id"]
    pipe.ok("start", pid)
    pipe.ok("stage", pid, "review")
    other = pipe.json("create", "--name", "deployed")["id"]
    for words in (["start", other], ["stage", other, "review"], ["approve", other, "--gate", "code-review"]):
        pipe.ok(*words)
    dep = pipe.json("deploy", other, "--strategy", "canary", "--target", "prod")["id"]
    return {"pid": pid, "fresh": fresh, "dep": dep}


@pytest.mark.fuzz
def test_no_invocation_crashes_and_a_refusal_is_one_line_that_changes_nothing(pipe, prepared, env):
    url = env["PIPE_DATABASE_URL"]

    @given(st.data())
    def check(data):
        command, values = data.draw(invocation(prepared))
        argv = argv_for(command, values) + data.draw(st.sampled_from([[], ["--json"]]))
        before = fingerprint(url)
        code, out, err = pipe(*argv)
        assert code in (0, 1, 2), (argv, code, err)
        assert "Traceback" not in err and "internal error" not in err, (argv, err)
        if code != 0:
            assert err.count("\n") == 1 and err.startswith("pipe: "), (argv, err)
            assert fingerprint(url) == before, argv

    check()
