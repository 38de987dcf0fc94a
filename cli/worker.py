"""The warm worker behind `pipe` (the client is cli/worker_client.py): the CLI's own code, imported
once, running commands one at a time for the console script of the same user.

    python -m chainpipe.cli.worker KEY     KEY: the configuration it serves (JSON, from worker_client.config_key)

Each request runs `cli.main.main(argv)` exactly as a process would: in the client's working
directory, with its environment (``PIPE_*``, ``HOME``, ``XDG_*``, ``COLUMNS``, …) in place of the
worker's, stdout and stderr captured with the client's encoding and isatty, stdin empty. Settings
are read per command, as in process; what stays warm is the imports and the database engine (a
SQLite file replaced under the same path gets a new engine).

It serves one configuration: a request whose data directory, database URL or config file path
differ is refused (the client runs it in process). It exits — its socket removed first, so the
next command starts a fresh one — when idle for ``PIPE_WORKER_IDLE`` seconds (default 600), when
its socket is removed, or, refusing that request, when the config file (mtime, size) or the
installed code (version, source files) changed since it started. One worker per socket: a lock
file beside it (holding its pid) is held for the worker's life.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import socket
import stat
import sys
import time

from chainpipe.cli.worker_client import ACCEPTED, REFUSED, config_key, peer_uid, recv_frame, send_frame, socket_path

IDLE_DEFAULT = 600.0
TICK = 5.0
REQUEST_TIMEOUT = 10.0
LOCK_WAIT = 5.0
PACKAGES = ("cli", "core")


class Sink(io.RawIOBase):
    """Bytes written to one stream, recorded in the order they were written across both streams."""

    def __init__(self, fd: int, log: list[tuple[int, bytes]]):
        super().__init__()
        self.fd, self.log = fd, log

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        if self.log and self.log[-1][0] == self.fd:
            self.log[-1] = (self.fd, self.log[-1][1] + data)
        elif data:
            self.log.append((self.fd, data))
        return len(data)


class Captured(io.TextIOWrapper):
    """A captured stream that looks like the client's (encoding, errors, isatty)."""

    def __init__(self, spec: dict, fd: int, log: list[tuple[int, bytes]]):
        super().__init__(io.BufferedWriter(Sink(fd, log)), encoding=spec.get("encoding") or "utf-8",
                         errors=spec.get("errors") or "strict", write_through=True)
        self._tty = bool(spec.get("isatty"))

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        n = super().write(text)
        self.flush()  # so stdout and stderr keep their order
        return n


def idle_seconds(env=os.environ) -> float:
    raw = (env.get("PIPE_WORKER_IDLE") or "").strip()
    try:
        value = float(raw) if raw else IDLE_DEFAULT
    except ValueError:
        return IDLE_DEFAULT
    return value if value > 0 else IDLE_DEFAULT


def code_stamp() -> tuple:
    """The installed version and the (path, mtime, size) of every source file of the CLI and core."""
    from chainpipe import core

    root = os.path.dirname(os.path.dirname(os.path.abspath(core.__file__)))
    files = []
    for package in PACKAGES:
        for folder, dirs, names in os.walk(os.path.join(root, package)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in names:
                if name.endswith(".py"):
                    st = os.stat(os.path.join(folder, name))
                    files.append((folder, name, st.st_mtime_ns, st.st_size))
    return core.__version__, tuple(sorted(files))


def file_stamp(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class Worker:
    def __init__(self, key: dict, env=os.environ):
        self.key, self.path = key, socket_path(key)
        self.idle = idle_seconds(env)
        self.base_env = {k: v for k, v in env.items() if k not in ("PIPE_WORKER",)}
        self.config = file_stamp(key["config"])
        self.code = code_stamp()
        self.databases: dict[str, tuple | None] = {}
        self.listener: socket.socket | None = None
        self.inode: tuple | None = None

    # -- life -------------------------------------------------------------------------------
    def bind(self) -> bool:
        """Take the lock and the socket; False if the data directory or the socket's directory (the
        same one, or the user's own under /tmp) is not private, or another worker holds the lock."""
        for root in dict.fromkeys((self.key["data_dir"], os.path.dirname(self.path))):
            os.makedirs(os.path.dirname(root), exist_ok=True)
            try:
                os.mkdir(root, 0o700)
            except FileExistsError:
                pass
            st = os.lstat(root)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
                return False
        self.lock = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        os.ftruncate(self.lock, 0)
        os.write(self.lock, f"{os.getpid()}\n".encode())
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(16)
        listener.settimeout(min(TICK, self.idle))
        self.listener, self.inode = listener, file_stamp(self.path)[:2]
        return True

    def still_ours(self) -> bool:
        stamp = file_stamp(self.path)
        return stamp is not None and stamp[:2] == self.inode

    def close(self) -> None:
        if self.still_ours():
            try:
                os.unlink(self.path)
            except OSError:
                pass
        if self.listener is not None:
            self.listener.close()

    def serve(self) -> None:
        last = time.monotonic()
        try:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    if time.monotonic() - last > self.idle or not self.still_ours():
                        return
                    continue
                with conn:
                    if self.handle(conn) == "stale":
                        return
                last = time.monotonic()
        finally:
            self.close()

    # -- one request -----------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> str:
        try:
            if peer_uid(conn) != os.getuid():
                return "refused"
            conn.settimeout(REQUEST_TIMEOUT)
            req = json.loads(recv_frame(conn))
        except (OSError, ValueError):
            return "refused"
        verdict = self.check(req)
        if verdict != "ok":
            if verdict == "stale":
                self.close()  # the next command starts a fresh worker on this socket's path
            conn.sendall(REFUSED)
            return verdict
        try:
            conn.sendall(ACCEPTED)
        except OSError:
            return "refused"  # the client went away before the command started: nothing ran
        code, log = self.run(req)
        try:
            conn.settimeout(None)
            send_frame(conn, json.dumps({"code": code, "chunks": [[fd, len(data)] for fd, data in log]}).encode())
            conn.sendall(b"".join(data for _, data in log))
        except OSError:
            pass
        return "ok"

    def check(self, req: dict) -> str:
        env = req.get("env") or {}
        if config_key(env, req.get("cwd")) != self.key:
            return "other"
        if file_stamp(self.key["config"]) != self.config or code_stamp() != self.code:
            return "stale"
        return "ok"

    def run(self, req: dict) -> tuple[int, list[tuple[int, bytes]]]:
        from chainpipe.cli.main import main

        env = {k: v for k, v in self.base_env.items() if not _forwarded(k)} | req["env"]
        os.environ.clear()
        os.environ.update(env)
        time.tzset()
        log: list[tuple[int, bytes]] = []
        out, err = Captured(req["streams"]["stdout"], 1, log), Captured(req["streams"]["stderr"], 2, log)
        saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(), out, err
        try:
            os.chdir(req["cwd"])
            self.fresh_engines()
            code = main(list(req["argv"]))
            self.fresh_engines(after=True)
        except Exception as exc:  # noqa: BLE001 - as main() itself would report it
            from chainpipe.cli.errors import report_crash

            code = report_crash(exc)
        finally:
            for stream in (out, err):
                try:
                    stream.flush()
                except ValueError:  # closed by the command
                    pass
            sys.stdin, sys.stdout, sys.stderr = saved
            os.chdir("/")
        return code, log

    def fresh_engines(self, *, after: bool = False) -> None:
        """A SQLite file replaced (or removed) since the last command gets a new engine."""
        from chainpipe.core.config import load_settings
        from chainpipe.core.db import dispose_engines, sqlite_path

        try:
            url = load_settings().database_url
        except Exception:  # noqa: BLE001 - the command reports a bad config itself
            return
        path = sqlite_path(url)
        if path is None:
            return
        stamp = file_stamp(str(path.expanduser().absolute()))
        stamp = stamp[:2] if stamp else None
        if not after and url in self.databases and self.databases[url] != stamp:
            dispose_engines()
            self.databases.clear()
        self.databases[url] = stamp


def _forwarded(name: str) -> bool:
    from chainpipe.cli.worker_client import ENV_NAMES, ENV_PREFIXES

    return name.startswith(ENV_PREFIXES) or name in ENV_NAMES


def warm() -> None:
    """Import what commands use, so the first request is warm too."""
    import chainpipe.cli.app  # noqa: F401
    import chainpipe.cli.render  # noqa: F401
    import chainpipe.cli.run  # noqa: F401
    import chainpipe.core.dispatch  # noqa: F401
    import chainpipe.core.uow  # noqa: F401
    from chainpipe.core.grammar import COMMANDS

    for command in COMMANDS.values():
        try:
            command.resolve()
        except Exception:  # noqa: BLE001 - a command that cannot load fails when it runs, as in process
            pass


def main(argv: list[str]) -> int:
    key = json.loads(argv[0])
    worker = Worker(key)
    if not worker.bind():
        return 1
    try:
        warm()
    except Exception:  # noqa: BLE001 - each command reports its own failure
        pass
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
