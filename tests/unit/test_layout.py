"""The tree's own rules. Which top-level packages may import which: benchmarks and the
shipped code stand on their own, never on the test suite (a benchmark that imports
``tests`` breaks whenever a test moves, and ``tests`` is not in the images). Blob keys,
a contract between the gateway, three workers and retention, are built in one module, and
so are Redis keys (deployed data is found by them). The
shared core is layered: each of its packages imports only the ones below it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("gateway", "services", "client")
BLOB_KEYS = ROOT / "services/contracts/blob_keys.py"
REDIS_KEYS = ROOT / "services/contracts/redis_keys.py"


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("bench", {"tests"}),
        ("testbed", {"tests", "bench"}),
        ("gateway", {"tests", "testbed", "bench"}),
        ("services", {"tests", "testbed", "bench"}),
        ("client", {"tests", "testbed", "bench", "gateway"}),
    ],
)
def test_a_package_imports_nothing_it_must_not(package, forbidden):
    found = {
        str(p.relative_to(ROOT)): sorted(_imported_roots(p) & forbidden) for p in sorted((ROOT / package).rglob("*.py"))
    }
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
        return set(CORE[: CORE.index(package) + 1])
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
    found = {
        str(p.relative_to(ROOT)): sorted(_services_imported(p) - allowed)
        for p in sorted((ROOT / "services" / package).rglob("*.py"))
    }
    assert not {p: f for p, f in found.items() if f}
    assert all(
        "gateway" not in {m.split(".")[0] for m in _imported_modules(p)}
        for p in (ROOT / "services" / package).rglob("*.py")
    )


@pytest.mark.parametrize("package", CORE)
def test_each_core_package_says_what_belongs_in_it(package):
    doc = ast.get_docstring(ast.parse((ROOT / "services" / package / "__init__.py").read_text()))
    assert doc and len(doc) > 100


def test_the_gateway_imports_no_worker_side_package():
    # runtime holds the model registry and torch's device policy; worker services hold models.
    found = {
        str(p.relative_to(ROOT)): sorted(_services_imported(p) & {"runtime", *WORKERS, "ops"})
        for p in sorted((ROOT / "gateway").rglob("*.py"))
    }
    assert not {p: f for p, f in found.items() if f}


# Every worker service has the same modules for the same roles: learn one, know all.
SERVICE_ROLES = ("settings", "models", "worker", "jobs", "tasks")


@pytest.mark.parametrize("service", WORKERS)
def test_worker_services_are_parallel(service):
    have = {p.stem for p in (ROOT / "services" / service).glob("*.py")}
    assert set(SERVICE_ROLES) <= have


@pytest.mark.parametrize("service", WORKERS)
def test_tasks_are_thin_and_jobs_are_given_what_they_use(service):
    # tasks: the Celery entry (settings, app, worker hooks) and one run_job per task.
    tasks = ROOT / "services" / service / "tasks.py"
    assert len(tasks.read_text().splitlines()) <= 80
    # jobs receive their blob store and settings: no module-level settings object.
    tree = ast.parse((ROOT / "services" / service / "jobs.py").read_text())
    assigned = {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    }
    assert not assigned & {"settings", "worker", "app"}
    assert not _imported_modules(ROOT / "services" / service / "jobs.py") & {f"services.{service}.tasks"}


def test_no_global_statements_in_services():
    # A worker's state lives on objects built from its settings (CameraWorker, WorkerProcess).
    found = [
        f"{p.relative_to(ROOT)}:{node.lineno}"
        for p in sorted((ROOT / "services").rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Global)
    ]
    assert not found


# Modules may be long only where the length is one algorithm that reads best whole.
PURE_ALGORITHMS = {
    "services/media/images.py",  # header-first probing of six formats
    "services/enhance/pipeline.py",  # one photo through faces and bands
    "services/segment/stabilize.py",  # the stabilizers
    "services/camera/ring_buffer.py",  # the frame rings
}
MAX_LINES = 300


def test_no_module_outside_the_pure_algorithms_is_over_300_lines():
    over = {}
    for package in SHIPPED:
        for p in sorted((ROOT / package).rglob("*.py")):
            rel, n = str(p.relative_to(ROOT)), len(p.read_text().splitlines())
            if rel not in PURE_ALGORITHMS and n > MAX_LINES:
                over[rel] = n
    assert not over


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
            found += [
                f"{path.relative_to(ROOT)}:{line}: {text[:40]!r}"
                for line, text in _leading_strings(ast.parse(path.read_text()))
                if text.startswith(folders)
            ]
    assert not found, "blob keys built outside contracts/blob_keys.py:\n" + "\n".join(found)


# A Redis key (or a Lua script's key literal: 'kadr:... or "kadr:... anywhere in the text).
_LUA_KEY_LITERAL = re.compile(r"""['"]kadr:""")


def test_redis_keys_are_built_in_one_module():
    found = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == REDIS_KEYS:
                continue
            tree = ast.parse(path.read_text())
            docs = {
                id(n.body[0].value)
                for n in ast.walk(tree)  # prose, never a key (the CLI's help)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.body
                and isinstance(n.body[0], ast.Expr)
                and isinstance(n.body[0].value, ast.Constant)
            }
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:40]!r}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and (node.value.startswith("kadr:") or _LUA_KEY_LITERAL.search(node.value))
            ]
            # Nor joined to the prefix by hand: redis_keys.PREFIX is for redis_keys alone.
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: PREFIX"
                for node in ast.walk(tree)
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "PREFIX"
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "redis_keys"
                )
                or (
                    isinstance(node, ast.ImportFrom)
                    and node.module == "services.contracts.redis_keys"
                    and any(a.name == "PREFIX" for a in node.names)
                )
            ]
    assert not found, "Redis keys built outside contracts/redis_keys.py:\n" + "\n".join(found)
