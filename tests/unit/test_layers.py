"""Import direction: core imports no adapter; cli and bot never import each other; the
catalogue path imports no database code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_LIBS = {"typer", "click", "slack_bolt", "slack_sdk", "github", "httpx", "starlette", "uvicorn", "respx",
                "requests", "cli", "bot"}


def _imports(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module.split(".")[0]


@pytest.mark.parametrize("package,forbidden", [
    ("core", ADAPTER_LIBS),
    ("cli", {"bot"}),
    ("bot", {"cli"}),
])
def test_import_direction(package, forbidden):
    if not (ROOT / package).exists():
        pytest.skip(f"{package}/ does not exist")
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p, m in _imports(package) if m in forbidden]
    assert bad == []


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        "import sys, runpy\n"
        f"sys.argv = {['pipe', *argv]!r}\n"
        "from cli.main import main\n"
        "main(sys.argv[1:])\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stderr.split())


@pytest.mark.parametrize("argv", [["--help"], ["stages"], ["templates", "--json"], ["deploy-strategies"],
                                  ["statuses", "--json"]])
def test_help_and_catalogue_import_no_database_code(argv):
    loaded = _modules_after(argv)
    assert not {m for m in loaded if m.split(".")[0] in ("sqlalchemy", "sqlmodel", "psycopg", "pydantic")}
