"""The README stays true: its configuration example applies, twice, to a fresh portal."""

import io
import re
from pathlib import Path

from django.core.management import call_command

from backups.models import BackupJob, Source

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_yaml() -> str:
    text = README.read_text()
    section = text[text.index("### Configuration as code") :]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def apply(path):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("dr_apply", str(path), stdout=out, stderr=err)
    except SystemExit as exc:
        assert exc.code == 0, err.getvalue()
    return out.getvalue()


def test_readme_example_applies_and_is_idempotent(tmp_path, settings, monkeypatch, db):
    settings.DR_ALLOWED_ROOTS = [
        Path(p) for p in ("/backups", "/var/lib/tool-hub", "/opt/tool-hub")
    ]
    for name, value in {
        "S3_KEY": "AKIAEXAMPLE",
        "S3_SECRET": "example-secret",
        "PGPASSWORD": "pw",
    }.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "dr.yaml"
    path.write_text(readme_yaml())

    first = apply(path)
    assert "create source toolhub-db" in first
    assert len(Source.objects.get(name="toolhub-db").checks) == 2
    assert set(BackupJob.objects.values_list("name", flat=True)) >= {
        "toolhub-db-daily",
        "toolhub-config-weekly",
    }
    assert "changed 0 object(s)" in apply(path)
