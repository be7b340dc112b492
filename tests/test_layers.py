"""The layers hold: import-linter's contracts (pyproject.toml) pass, and no project module
takes part in an import cycle, counting imports inside functions too.

The contracts are the rule (docs: pyproject's [tool.importlinter]); the cycle check is
module by module, finer than the contract's sibling packages.
"""

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.dashboard.test_layering import imported_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dr_portal", "backups", "recovery", "drills", "incidents", "dashboard", "api")
KNOWN_CYCLES: list[list[str]] = []  # none: keep it that way


def test_import_linter_contracts_pass():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _module(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{project module: project modules it imports}, migrations left out.

    A module's own parent packages are left out too: `from recovery.engine import procs`
    in recovery.engine.pg names the package it already belongs to."""
    files = {}
    for package in PACKAGES:
        files.update(imported_modules(package))
    modules = {_module(f) for f in files}

    def resolve(name):  # "backups.models.Source" -> "backups.models"
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for f, names in files.items():
        module = _module(f)
        targets = {resolve(n) for n in names} - {"", module}
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles_among_project_modules():
    assert cycles(import_graph()) == KNOWN_CYCLES


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_dr_portal_module_is_in_a_layer():
    """dr_portal is split between the top and the bottom layer, module by module."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}
    present = {
        f"dr_portal.{p.stem}"
        for p in (ROOT / "dr_portal").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert present - named == set()
