"""The README and docs/ stay true: their configuration examples apply, twice, to a fresh
portal; every YAML example parses; the README stays short; relative links and their
anchors lead somewhere."""

import io
import re
from pathlib import Path

import yaml
from django.core.management import call_command

from backups.models import BackupJob, Source
from recovery.failover.models import Runbook

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
# The top-level keys of a file `dr_apply` takes; a YAML example with others (a Prometheus
# scrape config, say) is only parsed.
DR_APPLY_SECTIONS = {"systems", "destinations", "sources", "jobs", "runbooks"}


def yaml_blocks() -> list[tuple[str, str]]:
    """(file name, text) of every ```yaml block in the README and docs/."""
    return [
        (path.name, block)
        for path in DOC_FILES
        for block in re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)
    ]


def config_examples() -> list[str]:
    """The examples meant for dr_apply, those defining systems first (runbooks need them)."""
    examples = [text for _, text in yaml_blocks() if set(yaml.safe_load(text)) <= DR_APPLY_SECTIONS]
    return sorted(examples, key=lambda text: "systems" not in yaml.safe_load(text))


def apply(path):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("dr_apply", str(path), stdout=out, stderr=err)
    except SystemExit as exc:
        assert exc.code == 0, err.getvalue()
    return out.getvalue()


def test_every_yaml_example_parses():
    blocks = yaml_blocks()
    assert blocks, "no ```yaml block found in README.md or docs/"
    for name, text in blocks:
        assert isinstance(yaml.safe_load(text), dict), f"{name}: {text[:80]}"


def test_docs_config_examples_apply_and_are_idempotent(tmp_path, settings, monkeypatch, db):
    settings.DR_ALLOWED_ROOTS = [
        Path(p) for p in ("/backups", "/var/lib/tool-hub", "/opt/tool-hub")
    ]
    for name, value in {
        "S3_KEY": "AKIAEXAMPLE",
        "S3_SECRET": "example-secret",
        "PGPASSWORD": "pw",
        "TOOLHUB_TOKEN": "example-token",
        "ERP_REPO_PASS": "example-repository-passphrase",
    }.items():
        monkeypatch.setenv(name, value)
    examples = config_examples()
    assert len(examples) >= 2, "the dr_apply and the runbooks examples"
    paths = []
    for number, text in enumerate(examples):
        paths.append(tmp_path / f"dr-{number}.yaml")
        paths[-1].write_text(text)

    first = "".join(apply(path) for path in paths)
    assert "create source toolhub-db" in first
    assert len(Source.objects.get(name="toolhub-db").checks) == 2
    assert Source.objects.get(name="toolhub-pg").backup_globals
    assert Source.objects.get(name="toolhub-pg-pitr").pitr
    assert BackupJob.objects.get(name="toolhub-pg-incr").backup_type == "incr"
    assert set(BackupJob.objects.values_list("name", flat=True)) >= {
        "toolhub-db-daily",
        "toolhub-config-weekly",
    }
    assert set(Runbook.objects.values_list("name", flat=True)) >= {
        "PostgreSQL standby promotion",
        "Network outage recovery",
    }
    for path in paths:
        assert "changed 0 object(s)" in apply(path)


def test_readme_is_at_most_200_lines():
    lines = README.read_text().count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move the detail into docs/"


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    headings = re.findall(r"^#+ (.*)$", path.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_points_to_an_existing_file():
    broken = []
    for path in DOC_FILES:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            file, _, anchor = target.partition("#")
            linked = path.parent / file if file else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
