"""The layout: the product never imports the research package (nor the test helpers), and no module
imports itself back through others. Imports inside functions count too: they run sooner or later."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "fusion_fer"
PRODUCT_SCRIPTS = (ROOT / "app.py",)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every fusion_fer module (or `tests...` module) that `path` imports, resolved to full names."""
    name = _module_name(path) if path.is_relative_to(PACKAGE) else ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from . import x` imports module x
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules or m.split(".")[0] == "tests"}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) - {_module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_the_product_never_imports_the_research_package_or_test_helpers():
    graph = _graph()
    product = {m for m in graph if not m.startswith("fusion_fer.research")}
    assert product >= {"fusion_fer", "fusion_fer.predict", "fusion_fer.artifacts", "fusion_fer.labels"}
    assert {m for m in graph if m.startswith("fusion_fer.research.")} >= {
        "fusion_fer.research.data", "fusion_fer.research.training", "fusion_fer.research.export", "fusion_fer.research.augment"}
    bad = {m: sorted(i for i in graph[m] if i.startswith(("fusion_fer.research", "tests"))) for m in product}
    for script in PRODUCT_SCRIPTS:
        bad[script.name] = sorted(i for i in _imports(script) if i.startswith(("fusion_fer.research", "tests")))
    assert not {m: v for m, v in bad.items() if v}


def test_no_import_circles():
    graph = _graph()
    # A package's __init__ re-exporting its modules is not a circle: drop edges into parent packages.
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for dep in sorted(graph.get(m, ())):
            visit(dep)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_serving_loads_no_research_module():
    """What the app and the CLI import at run time, checked in a fresh interpreter."""
    code = ("import sys; sys.path.insert(0, %r); import fusion_fer, fusion_fer.__main__, fusion_fer.batch, fusion_fer.video, "
            "fusion_fer.serving, fusion_fer.viz, fusion_fer.stream; fusion_fer.load_predictor('fer2013'); "
            "print(sorted(m for m in sys.modules if m.startswith(('fusion_fer.research', 'tests'))))") % str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
