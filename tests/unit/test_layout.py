"""The tree's own rules. Which top-level packages may import which: benchmarks and the
shipped code stand on their own, never on the test suite (a benchmark that imports
``tests`` breaks whenever a test moves, and ``tests`` is not in the images). And blob keys,
a contract between the gateway, three workers and retention, are built in one module. The
shared core is layered: each of its packages imports only the ones below it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("gateway", "services", "client")
BLOB_KEYS = ROOT / "services/contracts/blob_keys.py"


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


# The shared core, bottom first: a package may import only those before it.
CORE = ("media", "contracts", "platform", "store", "upkeep", "runtime")
WORKERS = ("enhance", "segment", "camera")


def _services_imported(path: Path) -> set[str]:
    return {m.split(".")[1] for m in _imported_modules(path) if m.startswith("services.") and m.count(".") >= 1}


def _imported_modules(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module)
            if node.module == "services":
                mods |= {f"services.{a.name}" for a in node.names}
    return mods


def _allowed(package: str) -> set[str]:
    if package in CORE:
        return set(CORE[:CORE.index(package) + 1])
    if package in WORKERS:
        return set(CORE) | {package}
    if package == "ops":
        return set(CORE) - {"runtime"} | {"ops"}
    raise AssertionError(f"services/{package} is in no layer: add it to CORE, WORKERS or ops")


def test_services_has_exactly_the_packages_of_the_layers():
    found = {p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists()}
    assert found == set(CORE) | set(WORKERS) | {"ops"}
    assert not (ROOT / "services/common").exists()


@pytest.mark.parametrize("package", CORE + WORKERS + ("ops",))
def test_a_services_package_imports_only_what_is_below_it(package):
    allowed = _allowed(package)
    found = {str(p.relative_to(ROOT)): sorted(_services_imported(p) - allowed)
             for p in sorted((ROOT / "services" / package).rglob("*.py"))}
    assert not {p: f for p, f in found.items() if f}
    assert all("gateway" not in {m.split(".")[0] for m in _imported_modules(p)}
               for p in (ROOT / "services" / package).rglob("*.py"))


@pytest.mark.parametrize("package", CORE)
def test_each_core_package_says_what_belongs_in_it(package):
    doc = ast.get_docstring(ast.parse((ROOT / "services" / package / "__init__.py").read_text()))
    assert doc and len(doc) > 100


def test_the_gateway_imports_no_worker_side_package():
    # runtime holds the model registry and torch's device policy; worker services hold models.
    found = {str(p.relative_to(ROOT)): sorted(_services_imported(p) & {"runtime", *WORKERS, "ops"})
             for p in sorted((ROOT / "gateway").rglob("*.py"))}
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
    from services.contracts.blob_keys import FOLDERS
    folders = tuple(f + "/" for f in FOLDERS.values())
    found = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == BLOB_KEYS:
                continue
            found += [f"{path.relative_to(ROOT)}:{line}: {text[:40]!r}"
                      for line, text in _leading_strings(ast.parse(path.read_text())) if text.startswith(folders)]
    assert not found, "blob keys built outside contracts/blob_keys.py:\n" + "\n".join(found)
