"""Paths people type are refused outside the allowed roots: '../', symlinks that lead out,
relative paths, for sources, local destinations and restore targets. Nothing is created, and
the message says why. Names used in artifact keys cannot climb out of a destination either.
"""

import os
from pathlib import Path

import pytest

from backups import services as backup_services
from backups.models import BackupRun, Destination, Source
from recovery.models import Restore
from tests.factories import BackupJobFactory, DestinationFactory, SystemFactory
from tests.support import data

pytestmark = pytest.mark.django_db


@pytest.fixture
def escapes(tmp_path):
    """Inside the allowed roots (tmp), but leading out of them: '..' and two symlinks."""
    (tmp_path / "to-etc").symlink_to("/etc")
    (tmp_path / "to-root").symlink_to("/")
    (tmp_path / "passwd-link").symlink_to("/etc/passwd")
    return {
        "dot-dot": f"{tmp_path}/{'../' * 12}etc/passwd",
        "symlinked dir": f"{tmp_path}/to-etc/passwd",
        "symlinked file": f"{tmp_path}/passwd-link",
        "symlink to /": f"{tmp_path}/to-root/etc",
        "relative": "../../etc/passwd",
    }


def refused(response, field="path"):
    assert response.status_code == 400, response.status_code
    errors = response.context["form"].errors
    assert field in errors, errors
    message = " ".join(errors[field])
    assert "outside the allowed roots" in message or "not an absolute path" in message, message


def test_source_paths_that_leave_the_allowed_roots_are_refused(manager_client, escapes):
    system = SystemFactory()
    for name, path in escapes.items():
        for kind in ("sqlite", "files"):
            response = manager_client.post(
                "/backups/sources/new/",
                {
                    "system": system.pk,
                    "name": f"evil-{kind}-{name}".replace(" ", "-"),
                    "kind": kind,
                    "data_class": "important",
                    "path": path,
                    "checks": "[]",
                    "restore_test_schedule": "",
                },
            )
            refused(response)
    assert not Source.objects.filter(name__startswith="evil").exists()


def test_local_destination_paths_that_leave_the_allowed_roots_are_refused(manager_client, escapes):
    for name, path in escapes.items():
        response = manager_client.post(
            "/backups/destinations/new/",
            {
                "name": f"evil-{name}".replace(" ", "-"),
                "kind": "local",
                "path": path,
                "storage_class": "STANDARD",
                "keep_days": 7,
                "keep_last": 3,
                "enabled": "on",
            },
        )
        refused(response)
    assert not Destination.objects.exists()


def test_restore_targets_that_leave_the_allowed_roots_are_refused(
    manager_client, escapes, tmp_path, settings
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    source = data.sqlite_source("toolhub-db", data.small_sqlite(tmp_path / "src" / "tool_hub.db"))
    job = BackupJobFactory(
        name="toolhub-job",
        source=source,
        destinations=[DestinationFactory(name="local", path=str(tmp_path / "b"))],
    )
    run = backup_services.backup_now(job)
    assert run.status == "succeeded", run.error
    targets = {**escapes, "new file in a symlinked dir": f"{tmp_path}/to-etc/restored.db"}
    for name, target in targets.items():
        response = manager_client.post(
            f"/recovery/sources/{source.pk}/restore/",
            {"backup_run": run.pk, "failure_type": "database_failure", "target": target},
        )
        assert response.status_code == 200, (name, response.status_code)
        errors = response.context["form"].errors
        assert "target" in errors, (name, errors)
        message = " ".join(errors["target"])
        assert any(
            reason in message for reason in ("outside the allowed roots", "absolute", "symbolic")
        ), (name, message)
    assert not Restore.objects.exists()
    assert not Path("/etc/restored.db").exists()


def test_a_source_name_with_dot_dot_is_refused_by_the_form(manager_client, tmp_path):
    db = data.small_sqlite(tmp_path / "s.db")
    names = ("../../escaped", "a/../../b", "a//b", "..\\b")
    for name in names:
        response = manager_client.post(
            "/backups/sources/new/",
            {
                "system": SystemFactory().pk,
                "name": name,
                "kind": "sqlite",
                "data_class": "important",
                "path": str(db),
                "checks": "[]",
                "restore_test_schedule": "",
            },
        )
        assert response.status_code == 400, name
        assert "cannot contain" in " ".join(response.context["form"].errors["name"])
    assert not Source.objects.filter(name__in=names).exists()


def test_a_source_name_cannot_steer_its_artifacts_out_of_the_destination(tmp_path):
    """Artifact keys start with the source's name: '..' in it must not climb out, even for
    a source made without the form (admin import, old rows)."""
    store = tmp_path / "deep" / "store"
    source = data.sqlite_source("../../escaped", data.small_sqlite(tmp_path / "s.db"))
    job = BackupJobFactory(
        name="escape-job",
        source=source,
        destinations=[DestinationFactory(name="local", path=str(store))],
    )
    run = backup_services.backup_now(job)
    written = [
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if p.is_file() and p.suffix in (".drpa", ".json")
    ]
    assert all(w.startswith(f"deep{os.sep}store{os.sep}") for w in written), written
    assert not (tmp_path / "escaped").exists()
    if run.status == "failed":  # refused by the engine: the reason is named, not a traceback
        assert "artifact key" in run.error, run.error
    else:
        assert BackupRun.objects.get(pk=run.pk).copies.get().location.startswith(str(store))
