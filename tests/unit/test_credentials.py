"""The credential store of remote mode (cli/credentials.py): where it lives, its modes, which source
wins, and the files it refuses to trust."""

from __future__ import annotations

import os
import stat

import pytest
from chainpipe.cli import credentials
from chainpipe.cli.credentials import Remote, check_server_url, credentials_path, find, remove, save
from chainpipe.core.errors import ConfigError, InvalidInput

TOKEN = "cp_personal-0123456789abcdef"


@pytest.fixture
def env(tmp_path):
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_file_lives_under_xdg_config_home_else_under_home(env, tmp_path):
    assert credentials_path(env) == tmp_path / "xdg" / "chainpipe" / "credentials"
    default = tmp_path / "home" / ".config" / "chainpipe" / "credentials"
    assert credentials_path({"HOME": env["HOME"]}) == default
    assert credentials_path(env | {"XDG_CONFIG_HOME": "rel"}) == default  # the XDG spec ignores a relative path


def test_save_writes_a_0600_file_in_a_0700_directory_whatever_the_umask(env):
    old = os.umask(0)
    try:
        path = save("https://pipe.example.com/", TOKEN, env)
    finally:
        os.umask(old)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert find(env) == Remote("https://pipe.example.com", TOKEN, str(path))
    assert [p.name for p in path.parent.iterdir()] == ["credentials"]  # no temporary file left behind


def test_save_tightens_a_chainpipe_directory_that_was_left_open(env):
    directory = credentials_path(env).parent
    directory.mkdir(parents=True, mode=0o755)
    os.chmod(directory, 0o755)
    save("https://pipe.example.com", TOKEN, env)
    assert mode(directory) == 0o700


def test_save_replaces_the_file_rather_than_writing_through_a_planted_symlink(env, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("someone else's file")
    path = credentials_path(env)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    save("https://pipe.example.com", TOKEN, env)
    assert target.read_text() == "someone else's file"
    assert not path.is_symlink() and mode(path) == 0o600


def test_logout_removes_the_file_and_a_second_logout_finds_nothing(env):
    path = save("https://pipe.example.com", TOKEN, env)
    assert remove(env) == path and not path.exists()
    assert remove(env) is None
    assert find(env) is None


def test_the_environment_wins_over_the_file(env):
    save("https://file.example.com", TOKEN, env)
    found = find(env | {"PIPE_SERVER_URL": "https://env.example.com/", "PIPE_TOKEN": "cp_from-env"})
    assert found == Remote("https://env.example.com", "cp_from-env", "environment")


@pytest.mark.parametrize("half", [{"PIPE_SERVER_URL": "https://env.example.com"}, {"PIPE_TOKEN": "cp_x"}])
def test_half_an_environment_is_refused_rather_than_mixed_with_the_file(env, half):
    save("https://file.example.com", TOKEN, env)
    with pytest.raises(ConfigError, match="is set but PIPE_(TOKEN|SERVER_URL) is not: set both"):
        find(env | half)


def test_pipe_mode_direct_ignores_every_server_and_remote_needs_one(env):
    save("https://file.example.com", TOKEN, env)
    assert find(env | {"PIPE_MODE": "direct", "PIPE_SERVER_URL": "https://x", "PIPE_TOKEN": "cp_x"}) is None
    remove(env)
    with pytest.raises(ConfigError, match="PIPE_MODE=remote but no server is set"):
        find(env | {"PIPE_MODE": "remote"})
    with pytest.raises(ConfigError, match="PIPE_MODE must be direct or remote"):
        find(env | {"PIPE_MODE": "sideways"})


def test_a_file_open_to_other_users_is_refused_and_left_as_it_was(env):
    path = save("https://pipe.example.com", TOKEN, env)
    os.chmod(path, 0o644)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"is open to other users \(mode 0644\); treat its token as leaked"):
        find(env)
    assert path.read_bytes() == before and mode(path) == 0o644


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_file_another_user_wrote_is_refused(env):
    path = save("https://attacker.example.com", "cp_attackers-token", env)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to another user"):
        find(env)


def test_a_symlinked_credentials_file_is_not_followed(env, tmp_path):
    real = save("https://pipe.example.com", TOKEN, env | {"XDG_CONFIG_HOME": str(tmp_path / "other")})
    path = credentials_path(env)
    path.parent.mkdir(parents=True)
    path.symlink_to(real)
    with pytest.raises(ConfigError, match="cannot read"):
        find(env)


@pytest.mark.parametrize("text", ["", "server = 1\ntoken = 2\n", "not toml [", 'server = "ftp://x"\ntoken = "cp_x"\n'])
def test_a_damaged_file_says_how_to_start_again(env, text):
    path = credentials_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="is not a credentials file `pipe login` wrote: run `pipe logout`"):
        find(env)


def test_a_token_never_shows_in_the_repr():
    assert TOKEN not in repr(Remote("https://x", TOKEN, "environment"))


@pytest.mark.parametrize("url", ["pipe.example.com", "ftp://pipe.example.com", "https://", "https://u:p@host",
                                 "https://host/?q=1", "https://host:notaport"])
def test_server_urls_are_checked(url):
    with pytest.raises(InvalidInput):
        check_server_url(url)


@pytest.mark.parametrize("token", ["", "   ", "cp_with space", "cp_\nX-Injected: 1", "cp_" + "x" * 300, "cp_é"])
def test_tokens_that_cannot_be_a_header_are_refused(token):
    with pytest.raises(InvalidInput):
        credentials.check_token(token)
