"""The dashboard is the top of the domain: nothing below imports it, and backups not recovery.

Read from the source (every import, also those inside functions), so a lazy import cannot
hide an upward dependency. The project-wide contract is import-linter's; these are the
edges this app's move cut.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> dict[str, set[str]]:
    """{file: modules it imports} for every non-migration module of `package`."""
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        out[str(path.relative_to(ROOT))] = names
    return out


def importers(packages, forbidden) -> list[str]:
    return sorted(
        f"{file} imports {name}"
        for package in packages
        for file, names in imported_modules(package).items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_no_domain_app_imports_the_dashboard():
    assert importers(["backups", "recovery", "drills", "incidents"], ["dashboard"]) == []


def test_dashboard_imports_no_project_wiring():
    wiring = [
        f"dr_portal.{m}"
        for m in ("views", "urls", "health", "checks", "setup", "signals", "settings")
    ]
    assert importers(["dashboard"], wiring) == []


def test_backups_reads_rpo_targets_without_importing_recovery():
    found = imported_modules("backups")["backups/models.py"]
    assert not [name for name in found if name.split(".")[0] == "recovery"]


def test_one_module_is_called_readiness():
    found = [
        str(p.relative_to(ROOT))
        for p in ROOT.glob("*/**/readiness.py")
        if not {".venv", "var", "node_modules"} & set(p.parts)
    ]
    assert found == ["recovery/readiness.py"]
