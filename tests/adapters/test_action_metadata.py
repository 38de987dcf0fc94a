"""action.yml itself: inputs reach the entrypoint only through `env:`, no input is interpolated into
a script, every output is written by the entrypoint, and the files validate with GitHub's tools."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from chainpipe.cli import action as entry

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
META = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
STEPS = META["runs"]["steps"]
RUN = next(s for s in STEPS if s.get("id") == "run")


def test_the_action_is_composite_and_its_inputs_are_kebab_case():
    assert META["runs"]["using"] == "composite"
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", name) for name in META["inputs"])
    assert set(entry.INPUTS) <= set(META["inputs"])


def test_every_input_is_passed_through_the_run_steps_env():
    for name in META["inputs"]:
        assert RUN["env"].get(entry.env_name(name)) == f"${{{{ inputs.{name} }}}}", name


def test_no_run_script_interpolates_an_expression():
    for step in STEPS:
        if "run" in step:
            assert "${{" not in step["run"], step.get("name")


def test_every_output_comes_from_the_run_step_and_is_written_by_the_entrypoint():
    source = "\n".join(f.read_text(encoding="utf-8") for f in sorted((ROOT / "cli").glob("action*.py")))
    assert set(META["outputs"]) == set(entry.OUTPUTS)
    for name, spec in META["outputs"].items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
        assert re.search(rf'output\("{name}"|\("{name}", ', source), f"nothing writes {name}"


def test_action_yml_validates_against_the_github_actions_metadata_schema():
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions",
                           str(ROOT / "action.yml")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_example_workflow_passes_actionlint():
    proc = subprocess.run([str(BIN / "actionlint"), "-no-color", str(ROOT / "examples" / "workflow.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_example_workflow_uses_the_action_with_declared_inputs_only():
    workflow = yaml.safe_load((ROOT / "examples" / "workflow.yml").read_text(encoding="utf-8"))
    uses = [s for s in workflow["jobs"]["deliver"]["steps"] if s.get("uses", "").startswith("chainpipe/")]
    commands = [s["with"]["command"] for s in uses]
    for expected in ("artifact", "await-gate", "deploy", "deploy-status", "metric"):
        assert expected in commands
    assert commands.index("artifact") < commands.index("await-gate") < commands.index("deploy") \
        < commands.index("deploy-status") < commands.index("metric")
    for step in uses:
        assert set(step["with"]) <= set(META["inputs"]), step["name"]
