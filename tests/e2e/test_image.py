"""The pipe-server image (Containerfile), built with podman on the local Debian base by
scripts/image.sh, then run from its own filesystem the way a container would run it.

Containers cannot start on this machine (the runtime may not set rlimits or cgroups), so each
process runs in a private mount namespace: a writable layer over ``podman image mount``'s
read-only view of the image, a temporary directory bound on the image's volume, and ``chroot``
into that as the image's user — the image's entrypoint, environment and user, nothing from the
host's Python. Needs root and minutes: it runs with ``make image-test`` (CHAINPIPE_IMAGE_TEST=1).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.e2e.conftest import BIN, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/chainpipe-test"

NEEDS_IMAGE = [
    pytest.mark.skipif(not os.environ.get("CHAINPIPE_IMAGE_TEST"),
                       reason="builds the image, takes minutes: `make image-test` sets CHAINPIPE_IMAGE_TEST=1"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (`make image-test` installs it)"
                       ),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: podman image mount, mount and chroot"),
]


def needs_image(test):
    for mark in NEEDS_IMAGE:
        test = mark(test)
    return test


# Run argv like a container: private mounts, a writable layer over the read-only image, the volume
# bound in place, then chroot as the image's user. $1 image root, $2 scratch dir, $3 volume
# source, $4 volume path in the image, $5 uid:gid; the rest is the command.
IN_IMAGE = r"""
set -e
image=$1 scratch=$2 volume=$3 target=$4 user=$5; shift 5
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay -o "lowerdir=$image,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
mount --bind "$volume" "$scratch/root$target"
exec chroot --userspec="$user" "$scratch/root" "$@"
"""

# Secrets a careless checkout holds beside the sources; none may reach the image.
PLANTED = [".env", "chainpipe.env", ".git/config", ".venv/slack-token", "pipe.db", "demo/data/pipe.db",
           "core/.env", "bot/prod.env"]


class Image:
    """The built image: its configuration and its filesystem (mounted read-only)."""

    def __init__(self, ref: str, root: Path, context: Path, canary: str):
        self.ref, self.root, self.context, self.canary = ref, root, context, canary
        self.build_stage: Path | None = None
        [self.inspect] = json.loads(podman("image", "inspect", ref))
        self.config = self.inspect["Config"]
        self.env = dict(item.split("=", 1) for item in self.config["Env"])
        self.uid, self.gid = (int(part) for part in self.config["User"].split(":"))
        self.volume = self.env["PIPE_DATA_DIR"]

    def command(self, scratch: Path, data: Path, *argv: str) -> list[str]:
        scratch.mkdir(parents=True, exist_ok=True)
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", IN_IMAGE, "in-image",
                str(self.root), str(scratch), str(data), self.volume, f"{self.uid}:{self.gid}", *argv]

    def run(self, scratch: Path, data: Path, *argv: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(scratch, data, *argv), env=self.env | env, capture_output=True,
                              text=True, timeout=60)

    @property
    def site_packages(self) -> Path:
        return next((self.root / "opt/chainpipe/lib").glob("python3*/site-packages"))

    def volume_dir(self, path: Path) -> Path:
        """A fresh directory for the volume, as a container engine makes it: owned by the image's user."""
        path.mkdir(mode=0o700)
        os.chown(path, self.uid, self.gid)
        return path


def podman(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout.strip()


def context_with_secrets(dest: Path, canary: str) -> Path:
    """This checkout's sources, with secrets planted where careless checkouts keep them."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", ".venv", "demo", "__pycache__", "*.egg-info",
                                                              ".pytest_cache", ".ruff_cache"))
    for name in PLANTED:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(f"SLACK_BOT_TOKEN=xoxb-{canary}\n")
    return dest


def build(context: Path, image: str, *options: str) -> Path:
    """Build with scripts/image.sh; the image's filesystem, mounted read-only."""
    started = time.monotonic()
    built = subprocess.run(["bash", str(ROOT / "scripts/image.sh"), "build", str(context), *options],
                           env=os.environ | {"CHAINPIPE_IMAGE": image}, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, f"image build failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    print(f"{image} built in {time.monotonic() - started:.0f} s")
    return Path(podman("image", "mount", f"{image}:latest"))


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    canary = uuid.uuid4().hex
    context = context_with_secrets(tmp_path_factory.mktemp("context") / "src", canary)
    built = Image(f"{IMAGE}:latest", build(context, IMAGE), context, canary)
    try:
        # The build stage alone (its layers are the ones just built): it holds what the context sent.
        built.build_stage = build(context, IMAGE + "-build-stage", "--target", "build")
        yield built
    finally:
        for ref in (IMAGE, IMAGE + "-build-stage"):
            subprocess.run(["podman", "image", "unmount", f"{ref}:latest"], capture_output=True, timeout=60)


class ImageServer(ServerProcess):
    """pipe-server started from the image: its entrypoint, environment and user; API only."""

    def __init__(self, image: Image, scratch: Path, data: Path):
        super().__init__(image.env | {"PIPE_SERVER_API_ONLY": "1"}, scratch.parent / f"{scratch.name}.log")
        self.image, self.scratch, self.data = image, scratch, data

    def command(self) -> list[str]:
        entrypoint = self.image.config["Entrypoint"]
        return self.image.command(self.scratch, self.data, *entrypoint, "--host", "127.0.0.1", "--port", str(self.port))


@pytest.fixture
def server(image, tmp_path):
    started = []

    def start(data: Path) -> ImageServer:
        started.append(ImageServer(image, tmp_path / "server", data))
        return started[-1].start(timeout=60)

    yield start
    for proc in started:
        proc.stop()


def process_uids(pid: int) -> set[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(v) for v in line.split()[1:]}
    raise AssertionError("no Uid line")


@needs_image
def test_the_image_runs_pipe_server_as_a_non_root_user_with_a_volume_a_port_and_a_healthcheck(image):
    config = image.config
    assert image.uid != 0 and image.gid != 0
    passwd = {line.split(":")[2]: line.split(":") for line in (image.root / "etc/passwd").read_text().splitlines()}
    assert passwd[str(image.uid)][5] == image.volume  # the user's home is the volume
    assert Path(config["Entrypoint"][-1]).name == "pipe-server"
    assert config["Cmd"] == ["--host", "0.0.0.0", "--port", "8080"]  # reachable from outside the container
    assert list(config["ExposedPorts"]) == ["8080/tcp"]
    assert list(config["Volumes"]) == [image.volume]
    assert image.inspect["Healthcheck"]["Test"][0] == "CMD"
    volume = image.root / image.volume.lstrip("/")
    assert (volume.stat().st_uid, volume.stat().st_mode & 0o777) == (image.uid, 0o700)


@needs_image
def test_pipe_server_from_the_image_answers_healthz_as_the_image_user(image, server, tmp_path):
    data = image.volume_dir(tmp_path / "volume")
    started = time.monotonic()
    srv = server(data)
    print(f"/healthz answered 200 {time.monotonic() - started:.1f} s after start")
    ready = httpx.get(srv.url + "/healthz")
    assert (ready.status_code, ready.json()["status"], ready.json()["slack"]) == (200, "ok", False)
    assert process_uids(srv.proc.pid) == {image.uid}

    # The SQLite database is on the volume, the user's and private.
    db = data / "pipe.db"
    assert (db.stat().st_uid, db.stat().st_mode & 0o777) == (image.uid, 0o600)

    health = image.inspect["Healthcheck"]["Test"][1:]
    url = {"PIPE_HEALTHCHECK_URL": srv.url + "/healthz"}
    ok = image.run(tmp_path / "check", data, *health, **url)
    assert (ok.returncode, ok.stderr) == (0, "")

    # uvicorn shuts down, then re-raises the SIGTERM it caught: the conventional exit for it.
    srv.stop()
    assert srv.proc.returncode in (0, -signal.SIGTERM), srv.log()
    # It wrote nothing outside its volume, so a read-only root filesystem (--read-only) suits it.
    assert [p.name for p in (tmp_path / "server" / "upper").iterdir()] == []
    down = image.run(tmp_path / "check-down", data, *health, **url)
    assert down.returncode == 1
    assert down.stderr.startswith(f"unhealthy: {srv.url}/healthz: ") and down.stderr.count("\n") == 1


@needs_image
def test_the_first_api_token_is_made_with_pipe_from_the_image_after_db_upgrade(image, server, tmp_path):
    data = image.volume_dir(tmp_path / "volume")
    upgraded = image.run(tmp_path / "upgrade", data, "pipe", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    made = image.run(tmp_path / "token", data, "pipe", "token", "create", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    # Like the server, pipe writes to the volume alone (compose.yaml runs both read-only), and there
    # only the database: a one-off `pipe` in a container leaves no worker behind.
    assert [p.name for scratch in ("upgrade", "token") for p in (tmp_path / scratch / "upper").iterdir()] == []
    assert {p.name for p in data.iterdir()} <= {"pipe.db", "pipe.db-wal", "pipe.db-shm"}

    srv = server(data)
    api = srv.url + "/api/v1/commands/list"
    assert httpx.post(api, json={}, headers={"Authorization": "Bearer cp_wrong"}).status_code == 401
    listed = httpx.post(api, json={}, headers={"Authorization": f"Bearer {token}"})
    assert (listed.status_code, listed.json()) == (200, {"result": []})


@needs_image
def test_the_image_user_cannot_change_the_installed_code(image, tmp_path):
    data = image.volume_dir(tmp_path / "volume")
    attack = """
import errno, sys
names = []
for path, mode in [("/opt/chainpipe/bin/pipe-server", "a"), ("/opt/chainpipe/healthcheck.py", "w"),
                   ("/opt/chainpipe/bin/evil", "w"), (sys.argv[1] + "/sitecustomize.py", "w")]:
    try:
        open(path, mode).write("import os; os.system('id')")
        names.append("written")
    except OSError as exc:
        names.append(errno.errorcode[exc.errno])
print(" ".join(names))
"""
    in_image_site = "/" + str(image.site_packages.relative_to(image.root))
    done = image.run(tmp_path / "attack", data, "python3", "-c", attack, in_image_site)
    assert (done.returncode, done.stdout.split()) == (0, ["EACCES"] * 4), done.stderr
    # Nothing reached the writable layer: the installed code is as built.
    assert not (tmp_path / "attack" / "upper" / "opt").exists()


def files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if not path.is_symlink() and path.is_file() and needle in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found


@needs_image
def test_secrets_beside_the_sources_never_reach_the_image(image):
    # Not even the build stage, which copies the sources: they never leave the build context.
    assert files_holding(image.build_stage, image.canary.encode()) == []
    assert files_holding(image.root, image.canary.encode()) == []
    assert (image.build_stage / "src/core/__init__.py").is_file()  # the scan did look at the sources
    # The runtime stage holds the installed package, not the build stage's sources, wheels or pip.
    assert not (image.root / "src").exists() and not (image.root / "wheels").exists()
    assert not (image.root / "opt/chainpipe/bin/pip").exists()


@needs_image
def test_the_image_holds_every_file_of_the_packages_in_the_sources(image):
    # A template or data file left out of the wheel works from a checkout and breaks only here.
    record = next(image.site_packages.glob("chainpipe-*.dist-info")) / "RECORD"
    # chainpipe/core/… in the image is core/… in the sources (the folders install as chainpipe.*)
    installed = {line.rsplit(",", 2)[0].removeprefix("chainpipe/") for line in record.read_text().splitlines()}
    tops = {path.split("/")[0] for path in installed if "/" in path}
    packages = [image.context / top for top in tops if (image.context / top / "__init__.py").is_file()]
    assert packages, f"no package of {sorted(tops)} found in the sources"
    in_sources = {str(path.relative_to(image.context)) for package in packages for path in package.rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts}
    assert sorted(in_sources - installed - set(PLANTED)) == []


def test_compose_is_valid_and_wires_the_server_to_its_database_and_volume():
    checked = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                              str(ROOT / "compose.yaml")], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    db, server = services["db"]["environment"], services["server"]
    url = urlsplit(server["environment"]["PIPE_DATABASE_URL"])
    assert (url.scheme, url.hostname, url.username, url.path) == ("postgresql+psycopg", "db", db["POSTGRES_USER"],
                                                                  "/" + db["POSTGRES_DB"])
    assert url.password == "${POSTGRES_PASSWORD}" and db["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert server["depends_on"]["db"]["condition"] == "service_healthy"
    assert server["build"]["dockerfile"] == "Containerfile"
    [volume] = [line.split()[1] for line in (ROOT / "Containerfile").read_text().splitlines()
                if line.startswith("VOLUME ")]
    assert [v.split(":")[1] for v in server["volumes"]] == [volume]
    assert all(port.startswith("127.0.0.1:") for port in server["ports"])  # behind a TLS proxy, not open
