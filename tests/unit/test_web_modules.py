"""The web UI's ES modules (web/js), served by nginx as they are (no build step): a
module that imports a missing file or name only fails in the browser, and nginx answers a
missing path with index.html. So: every relative import resolves to a file that exports
the names taken from it, no module is over 300 lines, and each page folder has the
same layout (page.js with mount, state.js, sync.js); and every module parses and links
in Node.js."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from testbed.stack import ROOT

JS = ROOT / "web" / "js"
MODULES = sorted(JS.rglob("*.js"))
PAGES = ("photos", "video", "cameras")
IMPORT = re.compile(r"""^import\s+(?:\{([^}]*)\}|\*\s+as\s+\w+)\s+from\s+["']([^"']+)["'];""", re.M)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|class|const|let)\s+(\w+)", re.M)


def _rel(path):
    return path.relative_to(ROOT).as_posix()


def test_no_module_is_over_300_lines():
    long = {_rel(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


@pytest.mark.parametrize("module", MODULES, ids=_rel)
def test_every_relative_import_resolves_to_an_exported_name(module):
    for names, spec in IMPORT.findall(module.read_text()):
        assert spec.startswith("."), f"{_rel(module)} imports {spec}: only relative imports are served"
        target = (module.parent / spec).resolve()
        assert target.is_file() and JS in target.parents, f"{_rel(module)} imports a missing {spec}"
        exported = set(EXPORT.findall(target.read_text()))
        wanted = {n.split(" as ")[0].strip() for n in names.split(",") if n.strip()}
        assert wanted <= exported, f"{_rel(module)} imports {sorted(wanted - exported)} that {spec} does not export"


@pytest.mark.parametrize("page", PAGES)
def test_each_page_folder_has_the_same_layout(page):
    folder = JS / page
    for name in ("page.js", "state.js", "sync.js"):
        assert (folder / name).is_file(), f"web/js/{page}/{name}"
    assert "mount" in EXPORT.findall((folder / "page.js").read_text())
    assert re.search(r"class \w+State extends Store", (folder / "state.js").read_text())
    assert f'from "./{page}/page.js"' in (JS / "app.js").read_text()


def test_every_module_parses_and_links(tmp_path):
    """Every module is loaded (linked, top level run) in one Node.js process; the shell
    app.js starts the UI when loaded, so it is only parsed. The modules are loaded from a
    copy whose package.json says "module", which every Node since 14 honours for .js files
    (make test installs Debian's nodejs)."""
    node = shutil.which("node")
    assert node, "Node.js is missing: infra/local/install.sh installs Debian's nodejs with KADR_INSTALL_BROWSER=1"
    tree = tmp_path / "js"
    shutil.copytree(JS, tree)
    (tree / "package.json").write_text('{"type": "module"}')
    shell = tree / "app.js"
    urls = [p.as_uri() for p in sorted(tree.rglob("*.js")) if p != shell]
    script = f"for (const u of {json.dumps(urls)}) await import(u);"
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([node, "--check", str(shell)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
