"""The package's layering: no two modules import each other, and nothing below ``train/`` imports it.

Read from the source (imports inside functions included), so a cycle hidden in a lazy import counts too.
The allowed direction is cli -> demo -> train / eval / serve -> generate / score -> models / data / losses, with
the config sections (``alignkit.sections``) and run folders (``alignkit.runs``) shared from the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import alignkit

ROOT = Path(alignkit.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("alignkit", *parts)).removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alignkit"):
                for alias in node.names:  # `from package import submodule` imports the submodule
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("alignkit"))
        graph[name] = deps - {name}
    return graph


def test_no_two_modules_import_each_other():
    graph = import_graph()
    cycles = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert cycles == []


def test_nothing_below_train_imports_train():
    above = ("alignkit.train", "alignkit.cli", "alignkit.demo")
    offenders = sorted(
        (name, dep)
        for name, deps in import_graph().items()
        if not name.startswith(above)
        for dep in deps
        if dep.startswith("alignkit.train")
    )
    assert offenders == []


def test_serve_stands_beside_eval_and_train_not_on_them():
    """The server serves any Generator: it reads model specs from generate/, never eval's or train's code
    (a wrapper such as the guard is named by config and imported at run time, not by serve's source)."""
    offenders = sorted(
        (name, dep)
        for name, deps in import_graph().items()
        if name.startswith("alignkit.serve")
        for dep in deps
        if dep.startswith(("alignkit.eval", "alignkit.train", "alignkit.demo", "alignkit.cli"))
    )
    assert offenders == []
