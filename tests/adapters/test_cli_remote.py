"""`pipe` in remote mode, in process, against the real JSON API served by uvicorn in a thread: the same
output and exit codes as direct mode, the token's person recorded, `--as` refused, `--path` hashed
here, login and logout. The client's own database URL points at a file that must never appear.
(The installed script, the import check and the walkthrough under bash: tests/e2e/test_cli_remote.py.)"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
from chainpipe.core.actor import Actor
from chainpipe.core.config import load_settings
from chainpipe.core.grammar import COMMANDS
from chainpipe.core.services.tokens import create_token, revoke_token
from chainpipe.core.uow import UnitOfWork

from tests.adapters.conftest import FOREIGN_ENV, Result, assert_refused
from tests.fakes.api import FakeApi

PERSON_TOKEN = "alice-laptop"


class ApiThread:
    """pipe-server's ASGI app under uvicorn, in a thread of this process."""

    def __init__(self, env: dict):
        import uvicorn
        from chainpipe.bot.server import create_asgi_app
        from chainpipe.bot.settings import load_bot_settings

        api_env = env | {"PIPE_SERVER_API_ONLY": "1"}
        app = create_asgi_app(load_settings(api_env), load_bot_settings(api_env))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ApiThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Pipe:
    """`pipe ARGS…` through ``cli.main.main`` in this process, seeing exactly ``env`` (each call sets
    it afresh, so a direct and a remote `pipe` can take turns in one test)."""

    def __init__(self, capsys, env: dict, cwd: Path):
        self.capsys, self.env, self.cwd = capsys, dict(env), cwd

    def __call__(self, *args: str, stdin: str | None = None, **extra: str) -> Result:
        from chainpipe.cli.main import main

        with pytest.MonkeyPatch.context() as m:
            for key in [k for k in os.environ if k.startswith(FOREIGN_ENV) or k == "XDG_CONFIG_HOME"]:
                m.delenv(key)
            for key, value in (self.env | extra).items():
                m.setenv(key, value)
            m.setenv("COLUMNS", "80")
            m.chdir(self.cwd)
            if stdin is not None:
                m.setattr(sys, "stdin", io.StringIO(stdin))
            self.capsys.readouterr()
            code = main(list(args))
            out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str, **extra: str) -> str:
        code, out, err = self(*args, **extra)
        assert (code, err) == (0, ""), (args, code, err)
        return out

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--json"))


def make_token(env: dict, name: str, person: str | None = None) -> str:
    with UnitOfWork(load_settings(env)) as uow:
        return create_token(uow, Actor("admin"), name, person=person)["token"]


@pytest.fixture
def server(env, config_file):
    """Start the API (after writing any config the test needs): ``server()`` → ApiThread."""
    from chainpipe.core.db import dispose_engines

    started = []

    def start() -> ApiThread:
        started.append(ApiThread(env).start())
        return started[-1]

    yield start
    for api in started:
        api.stop()
    dispose_engines()


@pytest.fixture
def direct(capsys, env, config_file, tmp_path):
    """`pipe` on the server's database, acting as alice (what an administrator would see)."""
    return Pipe(capsys, env | {"PIPE_ACTOR": "alice"}, tmp_path)


@pytest.fixture
def client_env(env, tmp_path):
    """A team member's machine: its own (unused) database URL, config home and HOME."""
    home = tmp_path / "member"
    return {"PIPE_DATABASE_URL": f"sqlite:///{home / 'never.db'}", "PIPE_DATA_DIR": str(home / "data"),
            "PIPE_CONFIG": env["PIPE_CONFIG"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"),
            "PIPE_ACTOR": "mallory"}


@pytest.fixture
def remote(capsys, env, client_env, server, tmp_path):
    """`pipe` in remote mode with alice's personal token (PIPE_SERVER_URL + PIPE_TOKEN)."""
    api = server()
    pipe = Pipe(capsys, client_env | {"PIPE_SERVER_URL": api.url,
                                      "PIPE_TOKEN": make_token(env, PERSON_TOKEN, person="alice")}, tmp_path)
    pipe.api = api
    yield pipe
    assert not (Path(client_env["HOME"]) / "never.db").exists()  # remote mode never opened a database


def normalized(text: str) -> str:
    text = re.sub(r"\b(pipe|dep|art|mon|vrd|stg|gate|evt)-[0-9a-f]{12}\b", r"\1-ID", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?", "TIME", text)
    return re.sub(r"\b\d+[smh] ago\b", "N ago", text)


def walkthrough(pipe: Pipe) -> list[Result]:
    """The seed's walkthrough, every output kept."""
    (pipe.cwd / "dist").mkdir(exist_ok=True)
    (pipe.cwd / "dist" / "build.zip").write_bytes(b"zip")
    created = pipe("create", "--name", "用户认证")
    pid = re.match(r"(pipe-\w+)", created.out).group(1)
    results = [created] + [pipe(*step) for step in (
        ["start", pid], ["stage", pid, "code"], ["stage", pid, "review"], ["deploy", pid, "--strategy", "canary",
                                                                          "--target", "production"],
        ["approve", pid, "--gate", "code-review"],
        ["artifact-add", pid, "--name", "build.zip", "--type", "binary", "--path", "./dist/build.zip"])]
    deployed = pipe("deploy", pid, "--strategy", "canary", "--target", "production")
    dep = deployed.out.split()[0]
    results += [deployed] + [pipe(*step) for step in (
        ["monitor-record", pid, "--metric", "error_rate", "--value", "0.02"], ["rollback", dep], ["rollback", dep],
        ["show", pid])]
    return results


def test_the_walkthrough_through_the_server_prints_what_direct_mode_prints(remote, direct):
    through_server = walkthrough(remote)
    on_database = walkthrough(direct)
    assert [r.code for r in through_server] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    for mine, theirs in zip(through_server, on_database, strict=True):
        assert (mine.code, normalized(mine.out), mine.err) == (theirs.code, normalized(theirs.out), theirs.err)
    assert through_server[0].out.endswith("template feature: the default; choose one with --template "
                                          "(see `pipe templates`)\n")
    assert through_server[4].err.startswith("pipe: gate not approved: code-review")


def test_every_read_command_answers_as_in_direct_mode(remote, direct):
    walkthrough(remote)
    pid = direct.json("list")[0]["id"]
    dep = direct.json("deploys", pid)[0]["id"]
    reads = [["show", pid], ["artifacts", pid, "--all-versions"], ["deploys", pid], ["deploy-show", dep],
             ["monitor-events", pid], ["monitor-status", pid], ["list"], ["list", "--status", "running"],
             ["export", pid], ["export", pid, "--format", "markdown"], ["audit", pid], ["stats"],
             ["stats", "--explain"], ["gate-status", pid, "--gate", "code-review"], ["audit", "verify", pid],
             ["audit-verify", "--all"], ["show", "pipe-000000000000"], ["config-v2"]]
    for args in reads:
        for extra in ([], ["--json"]):
            mine, theirs = remote(*args, *extra), direct(*args, *extra)
            assert (mine.code, normalized(mine.out), mine.err) == (theirs.code, normalized(theirs.out), theirs.err)
    assert {n for n, c in COMMANDS.items() if c.kind == "read" and c.group != "governance"} <= {a[0] for a in reads}


def test_the_audit_records_the_person_proven_by_the_token(remote, direct):
    pid = remote.json("create", "--name", "p")["id"]
    remote.ok("start", pid)
    events = direct.json("audit", pid)
    assert {(e["actor"], e["principal"], e["surface"]) for e in events} == {("alice", f"token:{PERSON_TOKEN}", "api")}
    assert direct.json("show", pid)["created_by"] == "alice"  # not PIPE_ACTOR=mallory, not the OS user


@pytest.mark.parametrize("spelling", [["--as", "bob"], ["--as=bob"]])
def test_as_is_refused_and_nothing_changes(remote, direct, spelling):
    pid = remote.json("create", "--name", "p")["id"]
    remote.ok("start", pid)
    remote.ok("stage", pid, "review")
    before = direct.json("audit", pid)
    refused = remote("approve", pid, "--gate", "code-review", *spelling)
    assert_refused(refused, 2, "--as is not available in remote mode: the token decides who you are")
    assert_refused(remote("approve", pid, *spelling), 2, "--as is not available in remote mode")
    assert direct.json("audit", pid) == before
    assert direct.json("gate-status", pid, "--gate", "code-review")["status"] != "approved"


def test_a_policy_refusal_comes_back_as_exit_1_with_the_servers_line(env, client_env, config_file, server, capsys,
                                                                      direct, tmp_path):
    config_file('[gates.code-review]\napprovers = ["bob"]\n')
    api = server()
    remote = Pipe(capsys, client_env | {"PIPE_SERVER_URL": api.url,
                                        "PIPE_TOKEN": make_token(env, PERSON_TOKEN, person="alice")}, tmp_path)
    pid = remote.json("create", "--name", "p")["id"]
    remote.ok("start", pid)
    remote.ok("stage", pid, "review")
    before = direct.json("audit", pid)
    refused = remote("approve", pid, "--gate", "code-review")
    assert_refused(refused, 1, "alice")
    assert refused.err == direct("approve", pid, "--gate", "code-review").err  # the same words as direct mode
    assert direct.json("audit", pid) == before


def test_path_is_hashed_here_and_the_server_gets_only_digest_and_size(remote, direct, env, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(payload)
    pid = remote.json("create", "--name", "p")["id"]
    remote.ok("start", pid)
    added = remote.json("artifact-add", pid, "--name", "big", "--type", "binary", "--path", str(tmp_path / "big.bin"))
    assert added["digest"] == "sha256:" + hashlib.sha256(payload).hexdigest() and added["size"] == len(payload)
    assert added["path"] is None  # a path on this machine means nothing on the server
    count = len(direct.json("artifacts", pid, "--all-versions"))
    wrong = "sha256:" + "0" * 64
    assert_refused(remote("artifact-add", pid, "--name", "big", "--type", "binary", "--path", "big.bin",
                          "--digest", wrong), 2, f"--digest {wrong} does not match the file's {added['digest']}")
    assert_refused(remote("artifact-add", pid, "--name", "x", "--type", "log", "--path", "nope.txt"), 2,
                   "file not found: nope.txt")
    assert_refused(remote("artifact-add", pid, "--name", "x", "--type", "log", "--path", str(tmp_path)), 2,
                   "not a regular file")
    assert len(direct.json("artifacts", pid, "--all-versions")) == count


def test_a_revoked_token_is_refused_with_one_line(remote, env):
    with UnitOfWork(load_settings(env)) as uow:
        revoke_token(uow, Actor("admin"), PERSON_TOKEN)
    assert_refused(remote("list"), 2, "the server refused the token (invalid or revoked token): run `pipe login`")


def test_usage_errors_and_help_read_as_in_direct_mode(remote, direct):
    for args in (["approve", "pipe-000000000000"], ["frobnicate"], ["list", "--limit", "0"], ["show"],
                 ["create", "--name", "x", "--bogus"]):
        mine, theirs = remote(*args), direct(*args)
        assert (mine.code, mine.err) == (theirs.code, theirs.err) and mine.code == 2, args
    assert remote("show", "--help") == direct("show", "--help")


def test_what_click_accepts_and_the_grammar_parser_does_not_still_goes_to_the_server(remote, direct):
    remote.ok("create", "--name", "p")
    # Click reads 1_0 as 10; the grammar's parser refuses it, so Typer parses and hands it back here.
    assert remote.json("list", "--limit", "1_0") == direct.json("list", "--limit", "1_0")
    assert len(remote.json("list", "--limit", "1_0")) == 1


def test_catalogue_commands_answer_here_even_when_the_server_is_down(remote, direct, tmp_path):
    down = {"PIPE_SERVER_URL": FakeApi.closed_port(), "PIPE_SERVER_TIMEOUT": "0.5"}
    for args in (["templates", "--json"], ["stages"], ["statuses", "--json"], ["enums-v2", "--json"]):
        assert remote(*args, **down) == direct(*args)
    refused = remote("list", **down)
    assert_refused(refused, 2, f"cannot reach {down['PIPE_SERVER_URL']} (connection refused) after ")


def test_token_and_db_are_refused_in_remote_mode_and_direct_mode_can_be_asked_for(remote):
    assert_refused(remote("token", "list"), 2, "`pipe token` works on the database itself, not through")
    assert_refused(remote("db", "current"), 2, "with PIPE_MODE=direct")
    assert remote("token", "--help").code == 0


def test_half_a_server_setting_stops_every_remote_command_with_one_line(remote):
    assert_refused(remote("list", PIPE_SERVER_URL=""), 2, "PIPE_TOKEN is set but PIPE_SERVER_URL is not")


# --- login / logout ------------------------------------------------------------------------------


@pytest.fixture
def member(capsys, env, client_env, server, tmp_path):
    """A team member without PIPE_SERVER_URL/PIPE_TOKEN, who logs in; ``member.token`` is theirs."""
    api = server()
    pipe = Pipe(capsys, client_env, tmp_path)
    pipe.api, pipe.token = api, make_token(env, PERSON_TOKEN, person="alice")
    pipe.credentials = Path(client_env["XDG_CONFIG_HOME"]) / "chainpipe" / "credentials"
    return pipe


def test_login_checks_the_token_stores_it_privately_and_logout_forgets_it(member, direct):
    logged = member("login", "--server", member.api.url + "/", stdin=member.token + "\n")
    assert logged.code == 0, logged.err
    assert logged.out.startswith(f"logged in to {member.api.url}: ") and member.token not in logged.out + logged.err
    assert stat.S_IMODE(member.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(member.credentials.parent.stat().st_mode) == 0o700
    status = member.json("login", "--status")
    assert status == {"mode": "remote", "server": member.api.url, "source": str(member.credentials),
                      "token": "accepted", "error": None}
    pid = member.json("create", "--name", "from the file")["id"]
    assert direct.json("show", pid)["created_by"] == "alice"
    out = member.ok("logout")
    assert out.startswith(f"logged out: removed {member.credentials}") and not member.credentials.exists()
    assert member.ok("logout") == f"not logged in (no {member.credentials})\n"
    assert member.json("login", "--status")["mode"] == "direct"


def test_a_refused_token_is_not_stored(member, env):
    refused = member("login", "--server", member.api.url, stdin="cp_not-a-real-token\n")
    assert_refused(refused, 2, "the server refused the token (invalid or revoked token)")
    assert not member.credentials.exists()
    member("login", "--server", member.api.url, stdin=member.token)
    before = member.credentials.read_bytes()
    assert member("login", "--server", member.api.url, stdin="cp_wrong\n").code == 2
    assert member.credentials.read_bytes() == before  # a failed login leaves the earlier one as it was


def test_an_unreachable_server_stores_nothing(member):
    down = FakeApi.closed_port()
    refused = member("login", "--server", down, stdin=member.token, PIPE_SERVER_TIMEOUT="0.5")
    assert_refused(refused, 2, f"cannot reach {down} (connection refused)")
    assert not member.credentials.exists()


def test_the_token_is_never_taken_from_argv(member):
    refused = member("login", "--server", member.api.url, "--token", member.token, stdin="")
    assert refused.code == 2 and "No such option: --token" in refused.err
    assert_refused(member("login", "--server", member.api.url, stdin=""), 2, "no token on stdin")
    assert_refused(member("login", stdin=member.token), 2, "say which server: pipe login --server URL")
    assert not member.credentials.exists()


def test_status_with_a_revoked_token_says_so_and_exits_2(member, env):
    member("login", "--server", member.api.url, stdin=member.token)
    with UnitOfWork(load_settings(env)) as uow:
        revoke_token(uow, Actor("admin"), PERSON_TOKEN)
    code, out, err = member("login", "--status")
    assert code == 2 and "token   refused or unchecked" in out
    assert err == "pipe: the server refused the token (invalid or revoked token): run `pipe login` with a valid token\n"


def test_an_http_server_that_is_not_local_is_warned_about(member):
    from chainpipe.cli.login import _warnings

    assert _warnings("http://pipe.internal:8080") == [
        "http://pipe.internal:8080 is plain http: the token crosses the network unencrypted; prefer https"]
    assert _warnings("https://pipe.example.com") == [] and _warnings(member.api.url) == []


def test_what_reaches_the_server_is_the_digest_and_a_crash_there_is_exit_3_here(capsys, client_env, tmp_path):
    from tests.fakes.api import Answer

    api = FakeApi().start()
    try:
        pipe = Pipe(capsys, client_env | {"PIPE_SERVER_URL": api.url, "PIPE_TOKEN": "cp_fake"}, tmp_path)
        (tmp_path / "a.txt").write_bytes(b"hello")
        api.answer(Answer(200, {"result": {"id": "art-0123456789ab", "name": "a", "version": 1, "type": "log",
                                           "digest": "sha256:x", "size": 5}}))
        assert pipe.ok("artifact-add", "pipe-1", "--name", "a", "--type", "log", "--path", "a.txt").startswith(
            "art-0123456789ab  a v1  log")
        [seen] = api.seen
        assert seen.headers["authorization"] == "Bearer cp_fake"
        assert seen.json() == {"pipeline_id": "pipe-1", "name": "a", "type": "log", "size": 5,
                               "digest": "sha256:" + hashlib.sha256(b"hello").hexdigest()}
        api.answer(Answer(500, {"error": "internal error", "reference": "err-0badc0de",
                                "message": "internal error err-0badc0de: KeyError"}))
        assert_refused(pipe("show", "pipe-1"), 3, "the server hit an internal error err-0badc0de: KeyError")
        assert not (Path(client_env["HOME"]) / "data").exists()  # the traceback is in the server's log, not here
    finally:
        api.stop()
