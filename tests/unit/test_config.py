from __future__ import annotations

import pytest
from chainpipe.core.config import load_settings, redact_url
from chainpipe.core.errors import ConfigError


def _settings(tmp_path, text: str, **env):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings({"PIPE_CONFIG": str(path), "PIPE_DATA_DIR": str(tmp_path), **env})


def test_defaults_put_the_database_in_the_data_dir(tmp_path):
    s = load_settings({"PIPE_DATA_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path}/pipe.db"
    assert s.policy("code-review").open_to_anyone and not s.policy("code-review").forbid_self_approval


def test_environment_overrides_the_file(tmp_path):
    s = _settings(tmp_path, 'database_url = "sqlite:///a.db"\n[gates.code-review]\napprovers = ["alice"]\n',
                  PIPE_DATABASE_URL="sqlite:///b.db", PIPE_GATE_CODE_REVIEW_APPROVERS="carol,dave",
                  PIPE_GATE_CODE_REVIEW_REQUIRED_APPROVALS="2")
    assert s.database_url == "sqlite:///b.db"
    assert s.policy("code-review").approvers == ("carol", "dave")
    assert s.policy("code-review").required_approvals == 2


def test_custom_templates_groups_and_identities_are_loaded(tmp_path):
    s = _settings(tmp_path, """
[templates.hotfix]
stages = ["code", "deploy"]
gates = { code-review = "code" }
[groups]
leads = ["alice"]
[identities]
"slack:U1" = "alice"
""")
    assert s.templates["hotfix"].stages == ("code", "deploy")
    assert s.group_members("leads") == ("alice",)
    assert s.person("slack:U1") == "alice" and s.person("bob") == "bob"


@pytest.mark.parametrize("text,problem", [
    ("[gates.qa]\napprovers=[]", "unknown gate"),
    ("[gates.code-review]\nrequired_approvals = 0", "positive integer"),
    ("[gates.code-review]\nforbid_self_approval = 'maybe'", "true or false"),
    ("[gates.code-review]\nreviewers = []", "unknown key"),
    ("[templates.feature]\nstages=['code']", "built in"),
    ("not toml [", "not valid TOML"),
])
def test_bad_config_is_one_clear_config_error(tmp_path, text, problem):
    with pytest.raises(ConfigError, match=problem):
        _settings(tmp_path, text)


def test_an_explicit_config_path_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings({"PIPE_CONFIG": str(tmp_path / "missing.toml")})


def test_passwords_are_redacted_from_database_urls():
    assert redact_url("postgresql+psycopg://app:s3cret@db:5432/pipe") == "postgresql+psycopg://app:***@db:5432/pipe"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_config_path_that_is_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*: Is a directory"):
        load_settings({"PIPE_CONFIG": str(tmp_path)})


def test_cli_allow_as_is_on_by_default_and_can_be_switched_off(tmp_path):
    from chainpipe.core.actor import local_actor, os_user
    from chainpipe.core.errors import NotAllowed

    cfg = tmp_path / "c.toml"
    cfg.write_text("[cli]\nallow_as = false\n", encoding="utf-8")
    env = {"PIPE_CONFIG": str(cfg), "PIPE_DATA_DIR": str(tmp_path)}
    assert load_settings({"PIPE_DATA_DIR": str(tmp_path)}).allow_as is True
    assert load_settings(env).allow_as is False
    assert load_settings(env | {"PIPE_CLI_ALLOW_AS": "true"}).allow_as is True
    me = os_user()
    assert local_actor(me, allow_as=False).principal == f"os:{me}"
    assert local_actor("alice", allow_as=True).principal == f"os:{me}"
    with pytest.raises(NotAllowed, match=r"acting as alice is switched off here \(\[cli\] allow_as = false\)"):
        local_actor("alice", allow_as=False)
