from __future__ import annotations

import pytest
from chainpipe.core.catalogue import (
    ARTIFACT_TYPES,
    BUILTIN_TEMPLATES,
    DEPLOY_STRATEGIES,
    STAGE_ALIASES,
    STAGES,
    make_template,
    resolve_stage,
)
from chainpipe.core.errors import ConfigError, InvalidInput


def test_there_are_seven_stages_in_delivery_order():
    assert STAGES == ("requirements", "architecture", "code", "test", "review", "deploy", "monitor")


@pytest.mark.parametrize("alias,stage", [(a, s) for s, aliases in STAGE_ALIASES.items() for a in aliases]
                         + [(s, s) for s in STAGES] + [("TESTING", "test"), (" Review ", "review")])
def test_every_alias_resolves_to_its_stage_id(alias, stage):
    assert resolve_stage(alias) == stage


def test_an_unknown_stage_names_the_allowed_ones():
    with pytest.raises(InvalidInput, match="unknown stage: staging; allowed: requirements, architecture"):
        resolve_stage("staging")


def test_builtin_templates_match_the_specification():
    assert {n: (t.stages, t.gates) for n, t in BUILTIN_TEMPLATES.items()} == {
        "feature": (STAGES, {"code-review": "review"}),
        "bugfix": (("code", "test", "review", "deploy", "monitor"), {"code-review": "review"}),
        "refactor": (("architecture", "code", "test", "review", "deploy", "monitor"), {"code-review": "review"}),
        "security-audit": (("code", "test", "review"), {"code-review": "review", "security-review": "review"}),
    }


def test_six_strategies_and_six_artifact_types():
    assert list(DEPLOY_STRATEGIES) == ["blue-green", "canary", "rolling", "recreate", "shadow", "dark-launch"]
    assert ARTIFACT_TYPES == ("binary", "docker-image", "report", "log", "sbom", "document")


def test_a_custom_template_accepts_aliases_and_keeps_stage_order():
    t = make_template("hotfix", {"stages": ["coding", "deployment"], "gates": {"code-review": "code"}})
    assert t.stages == ("code", "deploy") and t.gates == {"code-review": "code"} and not t.builtin


@pytest.mark.parametrize("raw,problem", [
    ({"stages": []}, "at least one stage"),
    ({"stages": ["deploy", "code"]}, "pipeline order"),
    ({"stages": ["code", "nope"]}, "unknown stage"),
    ({"stages": ["code"], "gates": {"qa-review": "code"}}, "unknown gate"),
    ({"stages": ["code"], "gates": {"code-review": "review"}}, "not one of its stages"),
])
def test_a_malformed_custom_template_is_a_config_error(raw, problem):
    with pytest.raises(ConfigError, match=problem):
        make_template("x", raw)
