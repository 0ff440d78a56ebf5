"""Imports run one way, sim → terminal → protocols: a validator never depends on the simulator, and the codecs on
neither. Checked on the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"protocols": ("terminal", "sim"), "terminal": ("sim",)}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package: str):
    offences = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                for path in sorted((ROOT / package).rglob("*.py"))
                for line, name in _imports(path)
                if name.split(".")[0] in FORBIDDEN[package]]
    assert offences == []
