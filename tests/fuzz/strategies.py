"""Values for every grammar parameter: plausible ones, and the hostile classes that once broke a
surface (NUL, lone surrogates, control characters, over-long text, numbers beyond 64 bits)."""

from __future__ import annotations

from chainpipe.core.grammar import COMMANDS, Command, choices
from hypothesis import strategies as st

HOSTILE_TEXT = st.one_of(
    st.sampled_from(["a\x00b", "\udcff", "bad\udcff", "x\ny", "\x1b[31mred", "\u2028", "", " ", "-", "--",
                     "../../etc/passwd", "/etc/shadow", "99999999999999999999", "-1", "0", "1e400", "nan",
                     "NaN", "inf", "用户认证", "<script>alert(1)</script>", "' OR 1=1 --", "a" * 201, "b" * 5000]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=20),
)
NUMBERS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.sampled_from(["0", "5", "-3"]))


def plausible(name: str, ids: dict) -> st.SearchStrategy[str]:
    known = {
        "pipeline_id": st.sampled_from([ids["pid"], ids["fresh"], "pipe-000000000000"]),
        "deploy_id": st.sampled_from([ids["dep"], "dep-000000000000"]),
        "metric": st.sampled_from(["error_rate", "latency_ms", "cpu", "Bad Metric"]),
        "value": st.sampled_from(["0.01", "120", "-5", "abc"]),
        "digest": st.sampled_from(["sha256:" + "a" * 64, "md5:1"]),
        "uri": st.sampled_from(["s3://bucket/x", "https://example.test/a"]),
        "since": st.sampled_from(["2026-10-01", "2026-12-01T00:00:00Z", "yesterday"]),
        "until": st.sampled_from(["2026-12-31", "not a time"]),
        "now": st.sampled_from(["2026-12-01T00:00:00Z", "soon"]),
        "name": st.sampled_from(["build.zip", "web"]),
        "owner": st.sampled_from(["alice", "bob"]),
        "run_id": st.sampled_from(["run-1", "run-2"]),
        "external_id": st.sampled_from(["42", "x" * 300]),
        "path": st.sampled_from(["/nonexistent/file", "/etc/hostname"]),
    }
    return known.get(name, st.sampled_from(["x", "review", "code-review", "feature", "canary", "prod"]))


def value_for(command: Command, param, ids: dict) -> st.SearchStrategy:
    if param.type == "bool":
        return st.just(True)
    if param.type == "int":
        return st.one_of(NUMBERS, st.sampled_from(["1", "20"]), HOSTILE_TEXT)
    good = (st.sampled_from(list(choices(param.choices))) if param.choices else plausible(param.name, ids))
    return st.one_of(good, good, HOSTILE_TEXT)


@st.composite
def invocation(draw, ids: dict) -> tuple[Command, dict]:
    """A command and raw values for some of its parameters (required ones usually present)."""
    command = draw(st.sampled_from(sorted(COMMANDS.values(), key=lambda c: c.name)))
    values = {}
    for param in command.params:
        if param.required or draw(st.booleans()):
            if not param.required or draw(st.integers(0, 9)) > 0:
                values[param.name] = draw(value_for(command, param, ids))
    return command, values
