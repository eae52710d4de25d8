"""Which top-level packages may import which: benchmarks and the shipped code stand on
their own, never on the test suite (a benchmark that imports ``tests`` breaks whenever a
test moves, and ``tests`` is not in the images)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
