"""The release story as files: the release workflow passes actionlint and GitHub's workflow schema,
CHANGELOG.md has the sections the workflow reads (and its awk extracts exactly one), and the app
manifest asks for what the server needs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_passes_actionlint_and_the_workflow_schema(workflow):
    lint = subprocess.run([str(BIN / "actionlint"), "-no-color", str(workflow)], capture_output=True, text=True,
                          timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    schema = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             str(workflow)], capture_output=True, text=True, timeout=60)
    assert schema.returncode == 0, schema.stdout + schema.stderr


def release_steps() -> list[dict]:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def test_releases_run_on_semver_tags_and_move_the_major_tag():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+"]  # YAML reads `on` as True
    scripts = "\n".join(s.get("run", "") for s in release_steps())
    assert 'major="${TAG%%.*}"' in scripts and 'git push -f origin "refs/tags/$major"' in scripts
    assert not [s for s in release_steps() if "${{" in s.get("run", "")]  # values reach scripts via env:


def test_the_changelog_section_the_release_publishes_is_exactly_that_version(tmp_path):
    awk = next(line.strip() for s in release_steps() for line in s.get("run", "").splitlines()
               if line.strip().startswith("awk"))
    program = re.search(r"awk -v v=\"\$version\" '(.+)' CHANGELOG.md", awk).group(1)
    notes = subprocess.run(["awk", "-v", "v=0.1.0", program, str(ROOT / "CHANGELOG.md")], capture_output=True,
                           text=True, check=True).stdout
    assert "### Added" in notes and "hash-chained audit log" in notes
    assert "Unreleased" not in notes and "GitHub App mode" not in notes


def test_the_changelog_has_an_unreleased_section_and_semver_sections_newest_first():
    text = (ROOT / "CHANGELOG.md").read_text()
    sections = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert sections[0] == "Unreleased"
    versions = [tuple(map(int, v.split("."))) for v in sections[1:]]
    assert versions and versions == sorted(versions, reverse=True)
    assert all(re.search(rf"^## \[{'.'.join(map(str, v))}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.MULTILINE)
               for v in versions)


def test_the_docs_use_the_action_by_its_moving_major_tag():
    for doc in ("docs/action.md", "docs/github-app.md"):
        assert "OWNER/chainpipe@v1" in (ROOT / doc).read_text(), doc


def test_the_app_manifest_asks_for_what_the_server_needs_and_no_more():
    manifest = json.loads((ROOT / "bot" / "github-app-manifest.json").read_text())
    assert manifest["default_permissions"] == {"deployments": "write", "actions": "read", "metadata": "read"}
    assert manifest["default_events"] == ["deployment_protection_rule"]
    assert manifest["hook_attributes"]["url"].endswith("/github/webhook") and manifest["public"] is False
    from chainpipe.bot.github_webhook import EVENT

    assert EVENT in manifest["default_events"]
    doc = (ROOT / "docs" / "github-app.md").read_text()
    assert '"default_permissions": {"deployments": "write", "actions": "read", "metadata": "read"}' in doc
