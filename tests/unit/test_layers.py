"""config.py must import only the standard library (import-linter cannot take a lone module as a root)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_config_imports_only_the_standard_library() -> None:
    outside = imported_roots(ROOT / "config.py") - set(sys.stdlib_module_names)
    assert outside == set()


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    for path in (ROOT / "domain").glob("*.py"):
        assert imported_roots(path) - set(sys.stdlib_module_names) <= {"domain"}, path.name
