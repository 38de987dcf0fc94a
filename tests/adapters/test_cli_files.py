"""Files on disk are private: the data directory chainpipe creates is 0700, the SQLite database
(with its -wal and -shm) and crash.log are 0600, whatever the umask. The default data directory is
chainpipe's own and is tightened if an older release left it open; a directory the user chose and
made keeps its mode. Modes are never loosened."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from chainpipe.core import db


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The most permissive umask: whatever is private is so because chainpipe made it so."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def settings_env(tmp_path) -> dict:
    (tmp_path / "none.toml").write_text("")
    return {"PIPE_DATA_DIR": str(tmp_path / "new" / "data"), "PIPE_CONFIG": str(tmp_path / "none.toml"),
            "HOME": str(tmp_path)}


@pytest.fixture
def cli(pipe_with, settings_env, open_umask):
    """The CLI on its embedded default database in a data directory that does not exist yet."""
    return pipe_with(settings_env)


def test_a_new_data_dir_is_0700_and_the_database_and_its_wal_files_are_0600(cli, tmp_path):
    cli.json("create", "--name", "p")
    data = tmp_path / "new" / "data"
    assert mode(data) == 0o700 and mode(data / "pipe.db") == 0o600
    with db.get_engine(f"sqlite:///{data / 'pipe.db'}").connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM pipelines").scalar()
        sidecars = [data / "pipe.db-wal", data / "pipe.db-shm"]
        assert all(p.exists() for p in sidecars)
        assert [mode(p) for p in sidecars] == [0o600, 0o600]
    assert sorted(p.name for p in data.iterdir() if mode(p) & 0o077) == []


def test_the_default_data_dir_left_open_by_an_older_release_is_tightened(pipe_with, tmp_path, open_umask):
    cli = pipe_with({"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")})
    own = tmp_path / "xdg" / "chainpipe"
    own.mkdir(parents=True, mode=0o755)
    cli.json("list")
    db.dispose_engines()
    (own / "pipe.db").chmod(0o644)
    cli.json("list")
    assert mode(own) == 0o700 and mode(own / "pipe.db") == 0o600


def test_a_data_dir_the_user_made_keeps_its_mode_and_their_files_too(cli, tmp_path):
    chosen = tmp_path / "shared"
    chosen.mkdir(mode=0o750)
    (chosen / "config.toml").write_text("")
    (chosen / "config.toml").chmod(0o640)
    cli.setenv(PIPE_DATA_DIR=str(chosen), PIPE_CONFIG=str(chosen / "config.toml"))
    cli.json("list")
    assert mode(chosen) == 0o750 and mode(chosen / "config.toml") == 0o640
    assert mode(chosen / "pipe.db") == 0o600


def test_a_stricter_mode_is_never_loosened(tmp_path, open_umask):
    from chainpipe.core.files import tighten

    cases = {"owner-rx": (0o500, 0o500), "owner-only": (0o600, 0o600), "ro-file": (0o400, 0o400),
             "group-read": (0o640, 0o600), "world": (0o777, 0o700)}
    for name, (before, _) in cases.items():
        (tmp_path / name).touch()
        (tmp_path / name).chmod(before)
        tighten(tmp_path / name)
    assert {name: mode(tmp_path / name) for name in cases} == {name: after for name, (_, after) in cases.items()}


def test_a_crash_log_is_created_0600_in_a_0700_directory(cli, tmp_path, monkeypatch):
    from chainpipe.core.services import queries

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(queries, "list_pipelines", broken)
    code, out, err = cli("list")
    log = tmp_path / "new" / "data" / "crash.log"
    assert (code, out) == (3, "")
    ref = re.fullmatch(rf"pipe: internal error (err-[0-9a-f]{{8}}): RuntimeError; details in {re.escape(str(log))}\n",
                       err)
    assert ref, err
    text = log.read_text(encoding="utf-8")
    assert f"--- {ref.group(1)} " in text and "Traceback" in text and "RuntimeError: a bug" in text
    assert mode(log) == 0o600 and mode(log.parent) == 0o700
