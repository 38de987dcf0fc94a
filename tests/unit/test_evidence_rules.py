"""The pure review-evidence and separation rules, and their configuration."""

from __future__ import annotations

import pytest
from chainpipe.core.config import load_settings
from chainpipe.core.errors import ConfigError
from chainpipe.core.rules.evidence import (
    Covered,
    Separation,
    approval_refusal,
    deploy_evidence,
    deploy_refusal,
    deployer_refusal,
    reviewed_versions,
    stale_by,
)

V1, V2, LOG = Covered("build.zip", 1, "sha256:a"), Covered("build.zip", 2, "sha256:b"), Covered("log", 1, None)


def test_only_a_new_version_of_a_covered_name_is_stale():
    assert stale_by([V1, LOG], "build.zip", 2) == V1
    assert stale_by([V1], "build.zip", 1) is None
    assert stale_by([V1], "report", 1) is None


def test_the_reviewed_version_binds_the_deploy_and_the_record_splits_reviewed_from_built_after():
    reviewed = reviewed_versions({"code-review": [V1]})
    assert deploy_refusal("build.zip", 1, reviewed) is None
    assert "approved build.zip@1" in str(deploy_refusal("build.zip", 2, reviewed))
    assert deploy_refusal("other", 7, reviewed) is None
    assert deploy_evidence([V1, LOG], reviewed, {"code-review": [V1]}) == {
        "reviewed": ["build.zip@1 sha256:a"], "built_after_review": ["log@1"]}


def test_separation_rules_name_the_rule_that_refused():
    sep = Separation((frozenset({"code-review", "security-review"}),), deployer_not_approver=True)
    approvers = {"code-review": {"bob"}}
    assert "distinct code-review / security-review" in str(approval_refusal("bob", "security-review", approvers, sep))
    assert approval_refusal("carol", "security-review", approvers, sep) is None
    assert approval_refusal("bob", "code-review", approvers, sep) is None
    assert "deployer_not_approver" in str(deployer_refusal("bob", approvers, sep))
    assert deployer_refusal("bob", approvers, Separation()) is None


@pytest.mark.parametrize("toml,message", [
    ('[separation]\ndistinct = "code-review"\n', "separation.distinct must be a list of gate lists"),
    ('[separation]\ndistinct = [["code-review", "nope"]]\n', "unknown gate 'nope'"),
    ('[separation]\ndistinct = [["code-review"]]\n', "at least two different gates"),
    ("[separation]\nsurprise = 1\n", "separation: unknown key surprise"),
    ("[gates.code-review]\nreopen_on_new_artifact = 3\n", "reopen_on_new_artifact must be true or false"),
])
def test_bad_separation_config_is_one_line(tmp_path, toml, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings({"PIPE_CONFIG": str(cfg), "PIPE_DATA_DIR": str(tmp_path)})
