"""The tree's own rules. Which top-level packages may import which: benchmarks and the
shipped code stand on their own, never on the test suite (a benchmark that imports
``tests`` breaks whenever a test moves, and ``tests`` is not in the images). And blob keys,
a contract between the gateway, three workers and retention, are built in one module."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("gateway", "services", "client")
BLOB_KEYS = ROOT / "services/common/contracts/blob_keys.py"


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package, forbidden", [
    ("bench", {"tests"}),
    ("testbed", {"tests", "bench"}),
    ("gateway", {"tests", "testbed", "bench"}),
    ("services", {"tests", "testbed", "bench"}),
    ("client", {"tests", "testbed", "bench", "gateway"}),
])
def test_a_package_imports_nothing_it_must_not(package, forbidden):
    found = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & forbidden)
             for p in sorted((ROOT / package).rglob("*.py"))}
    assert not {p: f for p, f in found.items() if f}


def _leading_strings(tree: ast.AST):
    """Each string literal, and each f-string's leading literal part, with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            if node.values and isinstance(node.values[0], ast.Constant) and isinstance(node.values[0].value, str):
                yield node.lineno, node.values[0].value
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_blob_keys_are_built_in_one_module():
    from services.common.contracts.blob_keys import FOLDERS
    folders = tuple(f + "/" for f in FOLDERS.values())
    found = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == BLOB_KEYS:
                continue
            found += [f"{path.relative_to(ROOT)}:{line}: {text[:40]!r}"
                      for line, text in _leading_strings(ast.parse(path.read_text())) if text.startswith(folders)]
    assert not found, "blob keys built outside contracts/blob_keys.py:\n" + "\n".join(found)
