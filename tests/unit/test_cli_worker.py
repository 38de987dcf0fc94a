"""The worker's gatekeeping (cli/worker.py) and the client's choices (cli/worker_client.py), on socket
pairs: a peer of another uid is refused before anything runs, a request for another configuration
or after a config change is refused, and the client only forwards what may be forwarded."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest
from chainpipe.cli import worker, worker_client
from chainpipe.cli.worker_client import ACCEPTED, REFUSED, config_key, forward, send_frame, socket_path, wanted

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="needs SO_PEERCRED")


@pytest.fixture
def env(tmp_path):
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    return {"PIPE_DATA_DIR": str(tmp_path / "data"), "PIPE_CONFIG": str(tmp_path / "config.toml"),
            "PIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'pipe.db'}", "HOME": str(tmp_path), "PIPE_ACTOR": "alice"}


def ask(w: worker.Worker, req: dict) -> tuple[str, bytes]:
    """``req`` sent to ``w`` over a socket pair: the worker's verdict and what the client received."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with client, server:
        send_frame(client, json.dumps(req).encode())
        verdict = w.handle(server)
        server.close()
        try:
            received = b"".join(iter(lambda: client.recv(65536), b""))
        except ConnectionResetError:  # closed with the request unread
            received = b""
    return verdict, received


def request(env: dict, argv: list[str], cwd: str) -> dict:
    spec = {"encoding": "utf-8", "errors": "strict", "isatty": False}
    return {"argv": argv, "cwd": cwd, "env": env, "streams": {"stdout": spec, "stderr": spec}}


def test_a_peer_of_another_uid_is_refused_before_anything_runs(env, tmp_path, monkeypatch):
    w = worker.Worker(config_key(env))
    monkeypatch.setattr(worker.os, "getuid", lambda: os.geteuid() + 1)
    verdict, received = ask(w, request(env, ["create", "--name", "intruder"], str(tmp_path)))
    assert (verdict, received) == ("refused", b"")
    assert not (tmp_path / "pipe.db").exists()


def test_a_request_for_another_configuration_is_refused_and_runs_nowhere_here(env, tmp_path):
    w = worker.Worker(config_key(env))
    other = env | {"PIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    verdict, received = ask(w, request(other, ["create", "--name", "elsewhere"], str(tmp_path)))
    assert (verdict, received) == ("other", REFUSED)
    assert not (tmp_path / "other.db").exists() and not (tmp_path / "pipe.db").exists()


def test_a_changed_config_file_makes_the_worker_stale(env, tmp_path):
    w = worker.Worker(config_key(env))
    (tmp_path / "config.toml").write_text("[cli]\nallow_as = false\n", encoding="utf-8")
    verdict, received = ask(w, request(env, ["list"], str(tmp_path)))
    assert (verdict, received) == ("stale", REFUSED)


@pytest.fixture
def restored():
    """Worker.run replaces os.environ and the working directory, as the worker process may."""
    environ, cwd = dict(os.environ), os.getcwd()
    yield
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)


def test_an_accepted_request_runs_as_in_process_with_the_clients_environment(env, tmp_path, restored):
    w = worker.Worker(config_key(env))
    verdict, received = ask(w, request(env | {"PIPE_ACTOR": "bob"}, ["create", "--name", "x", "--json"],
                                       str(tmp_path)))
    assert verdict == "ok" and received[:1] == ACCEPTED
    size = int.from_bytes(received[1:5], "big")
    answer = json.loads(received[5:5 + size])
    [(fd, length)] = answer["chunks"]
    out = received[5 + size:]
    assert (answer["code"], fd, len(out)) == (0, 1, length) and json.loads(out)["created_by"] == "bob"


def test_stdout_and_stderr_keep_the_order_they_were_written_in():
    log: list = []
    spec = {"encoding": "utf-8", "isatty": True}
    out, err = worker.Captured(spec, 1, log), worker.Captured(spec, 2, log)
    out.write("table\n")
    err.write("pipe: warning ✓\n")
    out.write("note\n")
    out.write("more\n")
    assert log == [(1, b"table\n"), (2, "pipe: warning ✓\n".encode()), (1, b"note\nmore\n")]
    assert out.isatty() and err.isatty()


@pytest.fixture
def short_dir():
    """A data directory whose socket path fits in sun_path wherever pytest keeps its tmp_path
    (else no worker is tried at all, and a test of what the client does with one proves nothing)."""
    root = tempfile.mkdtemp(prefix="pw-", dir="/tmp")
    yield os.path.join(root, "data")
    shutil.rmtree(root, ignore_errors=True)


def test_the_client_leaves_a_socket_of_another_uid_alone(env, short_dir, monkeypatch):
    env = env | {"PIPE_DATA_DIR": short_dir}
    path = socket_path(config_key(env))
    assert len(path.encode()) <= worker_client.SOCKET_MAX
    os.makedirs(os.path.dirname(path), mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    got: list[bytes] = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            got.append(conn.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setattr(worker_client, "start", lambda *a, **k: None)
    monkeypatch.setattr(worker_client.os, "getuid", lambda: os.geteuid() + 1)
    monkeypatch.setattr(worker_client, "_remote_mode", lambda env: False)
    assert forward(["list"], env) is None
    thread.join(5)
    listener.close()
    assert got == [b""]  # nothing was sent to it: the command runs in process


@pytest.mark.parametrize(("argv", "extra", "expected"), [
    (["list"], {}, True),
    (["list"], {"PIPE_WORKER": "0"}, False),
    (["list"], {"PIPE_WORKER": "off"}, False),
    ([], {}, False),
    (["create", "--help"], {}, False),
    (["create", "--", "--help"], {}, True),
    (["login", "--server", "https://x"], {}, False),
    (["list"], {"_PIPE_COMPLETE": "complete_bash"}, False),
    (["list"], {"PIPE_SERVER_URL": "https://x", "PIPE_TOKEN": "cp_x"}, False),
    (["list"], {"PIPE_SERVER_URL": "https://x", "PIPE_TOKEN": "cp_x", "PIPE_MODE": "direct"}, True),
])
def test_what_the_client_forwards(env, argv, extra, expected):
    assert wanted(argv, env | extra) is expected


def test_a_saved_login_means_remote_mode_so_no_worker(env, tmp_path):
    (tmp_path / ".config" / "chainpipe").mkdir(parents=True)
    (tmp_path / ".config" / "chainpipe" / "credentials").write_text("{}")
    assert not wanted(["list"], env)


def test_one_socket_per_configuration(env, short_dir):
    env = env | {"PIPE_DATA_DIR": short_dir}  # a path short enough for the socket to live in it
    base = socket_path(config_key(env))
    assert socket_path(config_key(env | {"PIPE_ACTOR": "bob"})) == base
    assert socket_path(config_key(env | {"PIPE_DATABASE_URL": "postgresql://db/x"})) != base
    assert os.path.dirname(base) == short_dir
    relative = env | {"PIPE_DATABASE_URL": "sqlite:///pipe.db"}
    assert config_key(relative, "/a") != config_key(relative, "/b")
    assert "cwd" not in config_key(env, "/a")


def test_the_worker_sees_the_clients_paths_not_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.chdir("/")
    client = {"HOME": str(tmp_path), "PIPE_DATA_DIR": "rel", "PIPE_CONFIG": "~/c.toml"}
    key = config_key(client, str(tmp_path))
    assert key["data_dir"] == str(tmp_path / "rel") and key["config"] == str(tmp_path / "c.toml")
    assert config_key({"HOME": str(tmp_path)}, "/")["data_dir"] == str(tmp_path / ".local/share/chainpipe")


def test_a_data_directory_too_deep_for_a_socket_gets_one_in_a_private_directory_of_its_own(
        env, tmp_path, short_dir, monkeypatch):
    short = os.path.dirname(short_dir)
    monkeypatch.setattr(worker_client, "SHORT_ROOT", short)
    deep = env | {"PIPE_DATA_DIR": str(tmp_path / ("d" * 120))}
    path = socket_path(config_key(deep))
    assert path.startswith(os.path.join(short, f"chainpipe-{os.getuid()}", "worker-"))
    assert path != socket_path(config_key(deep | {"PIPE_DATA_DIR": str(tmp_path / ("e" * 120))}))
    w = worker.Worker(config_key(deep))
    try:
        assert w.bind()
        assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    finally:
        w.close()


def test_a_socket_directory_others_can_enter_is_not_used(env, tmp_path, short_dir, monkeypatch):
    monkeypatch.setattr(worker_client, "SHORT_ROOT", os.path.dirname(short_dir))
    shared = Path(os.path.dirname(short_dir)) / f"chainpipe-{os.getuid()}"
    shared.mkdir(parents=True, mode=0o755)
    shared.chmod(0o755)
    w = worker.Worker(config_key(env | {"PIPE_DATA_DIR": str(tmp_path / ("d" * 120))}))
    assert not w.bind()
    assert list(shared.iterdir()) == []
