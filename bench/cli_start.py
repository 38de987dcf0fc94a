"""`pipe create` as a whole process, four ways, interleaved round by round so load drifts hit each
alike: `python -c pass` (the floor), direct mode in process (PIPE_WORKER=0), direct mode with the
warm worker, and remote mode (a local `pipe-server`, API only). With ``--base DIR``, also an older
tree of the project (e.g. ``git archive REV | tar -x -C DIR``) run in process, for the before/after.

``--archive REV`` (repeatable) adds the cold path of a commit as an archive with its bytecode
compiled, as a release installs it (e.g. ``--archive 41bf867 --archive HEAD``: before and after on
equal terms, whatever state the checkout's own bytecode is in); ``--cold-only`` leaves out the warm
worker and remote mode; ``--callgrind`` also counts each cold variant's instructions once under
valgrind (the steady measure on a shared machine). A revision missing from the repository (a
shallow clone) is reported as not measured, and ``--callgrind`` without valgrind says it counted
nothing; bench/run.py judges the targets from ``measure``'s results.

    .venv/bin/python -m bench.cli_start [--rounds 15] [--base DIR] [--archive REV]... [--cold-only]
                                        [--callgrind]

Prints wall and CPU (user + sys of the child) medians per variant, and the load average before
and after. Everything runs in a temporary directory on SQLite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
PIPE = str(BIN / "pipe")


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{argv}: exit {res.returncode}: {res.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def archive(rev: str, into: Path) -> tuple[str, str]:
    """``rev``'s packages extracted under ``into``, bytecode compiled: (PYTHONPATH, the CLI's module).
    Trees from before the single namespace (core/, cli/ importable as such) are kept as they were."""
    pyproject = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:pyproject.toml"], capture_output=True,
                               text=True, check=True).stdout
    namespaced = '"chainpipe.core" = "core"' in pyproject
    dest = into / "chainpipe" if namespaced else into
    dest.mkdir(parents=True)
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "core", "cli", "bot", "gh"], capture_output=True,
                         check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    if namespaced:
        (dest / "__init__.py").write_text("", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into)], check=True, stdout=subprocess.DEVNULL)
    return str(into), "chainpipe.cli.main" if namespaced else "cli.main"


def instructions(argv: list[str], env: dict) -> int:
    """Instructions of one run under valgrind's callgrind."""
    res = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    counts = [line.split()[-1] for line in res.stderr.splitlines() if "Collected :" in line]
    if res.returncode != 0 or not counts:
        raise SystemExit(f"callgrind {argv}: exit {res.returncode}: {res.stderr[-2000:]}")
    return int(counts[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, work: Path) -> tuple[subprocess.Popen, str, str]:
    token = json.loads(subprocess.run([PIPE, "token", "create", "--name", "bench", "--for", "alice", "--json"],
                                      env=env, capture_output=True, check=True).stdout)["token"]
    port = free_port()
    log = (work / "server.log").open("ab")
    proc = subprocess.Popen([str(BIN / "pipe-server"), "--port", str(port), "--log-level", "warning"],
                            env=env | {"PIPE_SERVER_API_ONLY": "1"}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if urllib.request.urlopen(url + "/healthz", timeout=0.5).status == 200:
                return proc, url, token
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("pipe-server did not start")


def stop_worker(env: dict) -> None:
    from chainpipe.cli.worker_client import config_key, socket_path

    try:
        pid = int(Path(socket_path(config_key(env)) + ".lock").read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def archive_name(rev: str) -> str:
    """The variant name of ``rev``'s cold path run from an archive."""
    return f"pipe create, cold, {rev} (archive)"


def missing(rev: str) -> str | None:
    """Why ``rev`` cannot be archived here (a shallow clone lacks older commits), or None."""
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True)
    return None if found.returncode == 0 else f"{rev} is not in this repository (a shallow clone?)"


def measure(rounds: int = 15, *, base: str | None = None, archives: tuple[str, ...] = (), cold_only: bool = False,
            callgrind: bool = False) -> dict:
    """Every variant timed ``rounds`` times, interleaved. Returns the load before and after, each
    variant's wall median and minimum and CPU median (s), the callgrind counts of the cold variants,
    the archives that could not be made and why, and why no instructions were counted (or "")."""
    work = Path(tempfile.mkdtemp(prefix="pipe-bench-"))
    host = {k: v for k, v in os.environ.items() if not k.startswith("PIPE_")}
    env = host | {"PIPE_DATA_DIR": str(work / "data"), "PIPE_ACTOR": "alice", "HOME": str(work),
                  "PIPE_DATABASE_URL": f"sqlite:///{work / 'pipe.db'}", "PIPE_WORKER_IDLE": "600"}
    create = ["create", "--name", "bench"]
    cold = env | {"PIPE_WORKER": "0"}
    variants = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "pipe create, cold (PIPE_WORKER=0)": ([PIPE, *create], cold),
    }
    if not cold_only:
        variants["pipe create, warm worker"] = ([PIPE, *create], env)
    if base:
        module = "chainpipe.cli.main" if (Path(base) / "chainpipe").is_dir() else "cli.main"
        variants["pipe create, before (in process)"] = (
            [sys.executable, "-c", f"from {module} import entrypoint; entrypoint()", *create],
            cold | {"PYTHONPATH": base})
    absent = {rev: why for rev in archives if (why := missing(rev))}
    for rev in (rev for rev in archives if rev not in absent):
        path, module = archive(rev, work / "archives" / rev)
        # Each archive its own database: an older tree may need an older schema.
        variants[archive_name(rev)] = (
            [sys.executable, "-c", f"from {module} import entrypoint; entrypoint()", *create],
            cold | {"PYTHONPATH": path, "PIPE_DATA_DIR": str(work / "archives" / f"{rev}-data"),
                    "PIPE_DATABASE_URL": f"sqlite:///{work / 'archives' / f'{rev}.db'}"})
    no_callgrind = "" if not callgrind or shutil.which("valgrind") else "valgrind is not installed"
    server = None
    # Every variant runs in the temporary directory: `python -c` puts the working directory first on
    # sys.path, and from the checkout `cli.main` would be the checkout's own cli/, not the tree's.
    with contextlib.chdir(work):
        if not cold_only:
            server, url, token = start_server(cold, work)
            variants["pipe create, remote mode"] = ([PIPE, *create],
                                                    env | {"PIPE_SERVER_URL": url, "PIPE_TOKEN": token})
        try:
            for argv, e in variants.values():  # warm-up: schema, the worker, the server, the page cache
                timed(argv, e)
                timed(argv, e)
            load_before = os.getloadavg()
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, (argv, e) in variants.items():
                    samples[name].append(timed(argv, e))
            load_after = os.getloadavg()
            counted = {name: instructions(argv, e) for name, (argv, e) in variants.items()
                       if callgrind and not no_callgrind and e.get("PIPE_WORKER") == "0"}
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
            stop_worker(env)
    timings = {name: {"wall": statistics.median(w for w, _ in values), "wall_min": min(w for w, _ in values),
                      "cpu": statistics.median(c for _, c in values)} for name, values in samples.items()}
    return {"rounds": rounds, "load": (load_before[0], load_after[0]), "variants": timings,
            "instructions": counted, "missing": absent, "no_callgrind": no_callgrind}


def render(result: dict) -> str:
    """The tables: wall and CPU per variant, then the callgrind counts (when taken)."""
    timings, floor = result["variants"], result["variants"]["python -c pass"]["wall"]
    load_before, load_after = result["load"]
    lines = [f"rounds {result['rounds']}, interleaved; load average {load_before:.2f} before, {load_after:.2f} "
             f"after; {os.cpu_count()} cores; Python {sys.version.split()[0]}", "",
             "| variant | wall median (s) | wall min (s) | CPU median (s) | × `python -c pass` (wall) |",
             "|---|---|---|---|---|"]
    for name, t in timings.items():
        lines.append(f"| {name} | {t['wall']:.3f} | {t['wall_min']:.3f} | {t['cpu']:.3f} | {t['wall'] / floor:.1f} |")
    lines += [f"\n{rev}: not measured: {why}" for rev, why in result["missing"].items()]
    if result["no_callgrind"]:
        lines.append(f"\nNo instructions counted: {result['no_callgrind']}.")
    counted = result["instructions"]
    if counted:
        # Ratios to the first archive (the "before" of ``--archive BEFORE --archive AFTER``), else to the checkout.
        names = [n for n in counted if n.endswith("(archive)")] or list(counted)
        reference = counted[names[0]]
        lines.append(f"\n| variant (callgrind, one run each) | instructions (G) | × {names[0]} |\n|---|---|---|")
        lines += [f"| {name} | {count / 1e9:.3f} | {count / reference:.3f} |" for name, count in counted.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--base", help="an older tree of the project, run in process for comparison")
    parser.add_argument("--archive", action="append", default=[], metavar="REV",
                        help="a commit's cold path, as an archive with compiled bytecode (repeatable)")
    parser.add_argument("--cold-only", action="store_true", help="leave out the warm worker and remote mode")
    parser.add_argument("--callgrind", action="store_true", help="also count each cold variant's instructions")
    args = parser.parse_args()
    print(render(measure(args.rounds, base=args.base, archives=tuple(args.archive), cold_only=args.cold_only,
                         callgrind=args.callgrind)))


if __name__ == "__main__":
    main()
