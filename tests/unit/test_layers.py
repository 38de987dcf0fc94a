"""Import direction: core imports no adapter; cli and bot never import each other; gh (the GitHub
code both share) imports neither. (That the catalogue commands import no database code is checked
on the installed script, in tests/e2e/test_cli_process.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_LIBS = {"typer", "click", "slack_bolt", "slack_sdk", "github", "httpx", "starlette", "uvicorn", "respx",
                "requests", "cli", "bot", "gh"}


def _imports(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, _top(alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, _top(node.module)


def _top(module: str) -> str:
    """The package a module belongs to: `chainpipe.cli.x` → `cli`, `github.Auth` → `github`."""
    parts = module.split(".")
    return parts[1] if parts[0] == "chainpipe" and len(parts) > 1 else parts[0]


@pytest.mark.parametrize("package,forbidden", [
    ("core", ADAPTER_LIBS),
    ("cli", {"bot"}),
    ("bot", {"cli"}),
    ("gh", {"cli", "bot"}),
])
def test_import_direction(package, forbidden):
    if not (ROOT / package).exists():
        pytest.skip(f"{package}/ does not exist")
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p, m in _imports(package) if m in forbidden]
    assert bad == []

