"""The `pipe` console script's road to a warm worker (cli/worker.py): the standard library alone, so a
command answered by the worker imports neither SQLAlchemy nor Typer.

    worker      one process per data directory, user and effective configuration (data directory,
                database URL, config file path), listening on ``<data dir>/worker-<key>.sock``
                (0600, in the 0700 data directory; in ``/tmp/chainpipe-<uid>``, also 0700, when the
                data directory's path is too long for a socket's); both ends check the other's uid
                (SO_PEERCRED)
    request     argv, working directory, the environment that changes behaviour (``PIPE_*``, ``HOME``,
                ``XDG_*``, ``COLUMNS``, ``NO_COLOR``, the locale, ``TZ``, the OS user) and how the
                terminal's streams look (encoding, isatty)
    answer      ``A`` (accepted: the worker is about to run it), then the exit code and what the
                command wrote to stdout and stderr, in the order it wrote it, as in process; or
                ``R`` (refused: another configuration, or the worker is stale and exits), and the
                command runs here

Never required: no worker (it is then started in the background), a refusal, or a broken connection
before ``A`` → the command runs in process, as if there were no worker. A connection broken after
``A`` (the worker died mid-command) is not retried, since a write may have been applied: one line,
exit 3. Bypassed: ``PIPE_WORKER=0``, help, completion, `pipe login`/`logout` (stdin, prompts),
remote mode, and closed standard streams.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import sys

ENV_SWITCH = "PIPE_WORKER"
ENV_PREFIXES = ("PIPE_", "XDG_", "LC_")
ENV_NAMES = ("HOME", "COLUMNS", "LINES", "NO_COLOR", "LANG", "TZ", "LOGNAME", "USER", "LNAME", "USERNAME",
             "TERM", "PYTHONIOENCODING")
BYPASS_COMMANDS = ("login", "logout")
BYPASS_FLAGS = ("--help", "-h", "--version", "--install-completion", "--show-completion")
SOCKET_MAX = 100  # sun_path holds 108 bytes
SHORT_ROOT = "/tmp"  # where a socket goes whose data directory's path is too long (socket_path)
HEADER = struct.Struct("!I")
FRAME_MAX = 64 * 1024 * 1024
ACCEPTED, REFUSED = b"A", b"R"
LOST = ("pipe: the worker stopped while running this command; it may have been applied: "
        "check (e.g. `pipe show`) before running it again")
LOST_EXIT = 3


def enabled(env=os.environ) -> bool:
    return (env.get(ENV_SWITCH) or "1").strip().lower() not in ("0", "off", "false", "no")


def wanted(argv: list[str], env=os.environ) -> bool:
    """Whether ``pipe ARGV`` may be answered by a worker."""
    if not enabled(env) or not argv or argv[0] in BYPASS_COMMANDS:
        return False
    if any(stream is None or stream.closed for stream in (sys.stdin, sys.stdout, sys.stderr)):
        return False
    words = argv[:argv.index("--")] if "--" in argv else argv
    if any(w in BYPASS_FLAGS for w in words) or any(k.startswith(("_PIPE_COMPLETE", "COMP_")) for k in env):
        return False
    return not _remote_mode(env)


def _remote_mode(env) -> bool:
    """Remote mode, or a setting that might mean it (cli.credentials decides, in process)."""
    if (env.get("PIPE_MODE") or "").strip().lower() == "direct":
        return False
    if env.get("PIPE_MODE") or env.get("PIPE_SERVER_URL") or env.get("PIPE_TOKEN"):
        return True
    base = env.get("XDG_CONFIG_HOME") or ""
    root = base if base and os.path.isabs(base) else os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.exists(os.path.join(root, "chainpipe", "credentials"))


def data_dir(env=os.environ, cwd: str | None = None) -> str:
    """As core.config.data_dir, absolute (this module may not import core.config)."""
    if env.get("PIPE_DATA_DIR"):
        return _absolute(env["PIPE_DATA_DIR"], env, cwd)
    base = env.get("XDG_DATA_HOME") or os.path.join(_home(env), ".local", "share")
    return _absolute(os.path.join(base, "chainpipe"), env, cwd)


def config_key(env=os.environ, cwd: str | None = None) -> dict:
    """What one worker serves: the data directory, database URL and config file path (absolute, as
    seen from ``cwd``, the client's working directory); with a relative SQLite path, ``cwd`` too."""
    cwd = cwd or os.getcwd()
    root = data_dir(env, cwd)
    url = env.get("PIPE_DATABASE_URL") or ""
    config = env.get("PIPE_CONFIG")
    config = _absolute(config, env, cwd) if config else os.path.join(root, "config.toml")
    key = {"data_dir": root, "database_url": url, "config": config}
    relative = url.partition("///")[2] not in ("", ":memory:") and not url.startswith("sqlite:////")
    if url.startswith("sqlite") and relative:
        key["cwd"] = cwd
    return key


def _home(env) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def _absolute(path: str, env, cwd: str | None) -> str:
    if path == "~" or path.startswith("~/"):
        path = _home(env) + path[1:]
    return os.path.normpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(path)))


def socket_path(key: dict) -> str:
    """The worker's socket: in the data directory, or — when that path would not fit in a socket
    address — in the user's own directory under /tmp (the key's digest names the data directory)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(key["data_dir"], f"worker-{digest}.sock")
    if len(path.encode()) <= SOCKET_MAX:
        return path
    return os.path.join(SHORT_ROOT, f"chainpipe-{os.getuid()}", f"worker-{digest}.sock")


def request(argv: list[str], env=os.environ) -> dict:
    forwarded = {k: v for k, v in env.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}
    return {"argv": argv, "cwd": os.getcwd(), "env": forwarded, "streams": {
        name: {"encoding": stream.encoding, "errors": stream.errors, "isatty": _isatty(stream)}
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr))}, "stdin_isatty": _isatty(sys.stdin)}


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = HEADER.unpack(recv_exact(sock, HEADER.size))
    if size > FRAME_MAX:
        raise ConnectionError("frame too large")
    return recv_exact(sock, size)


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def forward(argv: list[str], env=os.environ) -> int | None:
    """``pipe ARGV`` answered by the worker: its exit code, after printing its output; None when the
    command is to run in process (no usable worker; one is started for next time)."""
    if not wanted(argv, env) or not hasattr(socket, "SO_PEERCRED"):
        return None
    key = config_key(env)
    path = socket_path(key)
    if len(path.encode()) > SOCKET_MAX:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.settimeout(2.0)
            sock.connect(path)
            if peer_uid(sock) != os.getuid():
                return None
            send_frame(sock, json.dumps(request(argv, env)).encode())
            sock.settimeout(None)
            status = sock.recv(1)
        except OSError:
            status = b""
        if status != ACCEPTED:
            start(key, path, env, replace=status == REFUSED)
            return None
        try:
            answer = json.loads(recv_frame(sock))
            chunks = [(int(fd), recv_exact(sock, int(size))) for fd, size in answer["chunks"]]
            code = int(answer["code"])
        except (OSError, ValueError, KeyError, TypeError):
            sys.stderr.write(LOST + "\n")
            return LOST_EXIT
    finally:
        sock.close()
    return _print(chunks, code)


def _print(chunks: list[tuple[int, bytes]], code: int) -> int:
    """The command's output, stdout and stderr in the order it wrote them."""
    for fd, data in chunks:
        stream = sys.stdout if fd == 1 else sys.stderr
        try:
            stream.buffer.write(data)
            stream.flush()
        except BrokenPipeError:
            # The reader went away (`pipe list | head -1`): as in process, no complaint and exit 0.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            code = 0
    return code


def start(key: dict, path: str, env=os.environ, *, replace: bool = False) -> None:
    """Start a worker for ``key`` in the background (it gives up if another one holds the lock)."""
    if not replace and os.path.exists(path + ".lock") and _locked(path + ".lock"):
        return  # one is starting (or serving another request)
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child_env = dict(env) | {"PYTHONPATH": os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))}
    try:
        subprocess.Popen([sys.executable, "-m", "chainpipe.cli.worker", json.dumps(key)], env=child_env, cwd="/",
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except OSError:
        pass


def _locked(lock: str) -> bool:
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
