"""Pre and post hooks of a registered restore target: signed webhooks to a real loopback
server, real commands, around full, partial, point-in-time and failover restores."""

import os
import sqlite3

import pytest
from django.urls import reverse

from dr_portal.models import AuditEntry
from recovery import pitr_restores, restores
from recovery.forms import RestoreTargetForm
from recovery.models import Restore, RestoreTarget
from tests.factories import RestoreTargetFactory, RunbookFactory
from tests.failover.runs import run_inline
from tests.recovery.pgutil import table_fingerprint, temp_database
from tests.support import hook_receiver
from tests.support.data import backup
from tests.support.hook_receiver import received, verified, with_webhooks

pytestmark = pytest.mark.django_db

server = hook_receiver.server  # the fixture
PRE_SECRET = "restore-pre-secret-0123456789"
POST_SECRET = "restore-post-secret-9876543210"


@pytest.fixture
def target(tmp_path):
    """A SQLite target holding live data the restore would replace."""
    (tmp_path / "restores").mkdir()
    path = tmp_path / "restores" / "tool_hub.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE live (v TEXT)")
    conn.execute("INSERT INTO live VALUES ('still here')")
    conn.commit()
    conn.close()
    return RestoreTargetFactory(
        name="staging-sqlite", kind="sqlite", host="", port=None, user="", database="",
        path=str(path), allow_replace=True,
    )  # fmt: skip


def _with_webhooks(target, server, **fields):
    return with_webhooks(target, server, (PRE_SECRET, POST_SECRET), **fields)


def _restore(source, target, run, **kwargs):
    restore = restores.start_restore(
        source, restore_target=target, backup_run=run, overwrite=True, **kwargs
    )
    return restores.execute_restore(restore)


def _rows(path) -> list:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()


def test_webhooks_are_signed_and_carry_the_restore(sqlite_source, target, server, work_dir):
    run = backup(sqlite_source)
    target = _with_webhooks(target, server)
    restore = _restore(sqlite_source, target, run)
    assert restore.status == "succeeded", restore.error
    assert [p for _m, p, _h, _b in server.recorder.requests] == ["/hooks/pre", "/hooks/post"]
    pre = verified(*received(server, "/hooks/pre")[0], PRE_SECRET)
    post = verified(*received(server, "/hooks/post")[0], POST_SECRET)
    assert pre["event"] == "restore.pre" and pre["outcome"] == "running"
    assert pre["backup_run"] == run.pk and pre["rto_s"] is None
    assert post["event"] == "restore.post" and post["outcome"] == "succeeded"
    assert post["restore"] == restore.pk and post["target"] == "staging-sqlite"
    assert post["source"] == "toolhub-db" and post["system"] == "tool-hub"
    assert post["mode"] == "full" and post["backup_run"] == run.pk and post["error"] == ""
    assert post["rto_s"] == restore.rto.total_seconds() > 0 and post["duration_s"] > 0
    assert post["rto_target_s"] == restore.rto_target.total_seconds()
    with pytest.raises(AssertionError):  # the signature binds body and key
        verified(*received(server, "/hooks/post")[0], PRE_SECRET)
    assert restore.hook_outcome == "pre-hook webhook: HTTP 200\npost-hook webhook: HTTP 200\n"
    assert _rows(target.path) == [("workflows",)]  # the backup replaced the live data


def test_a_failing_required_pre_hook_fails_the_restore_before_it_touches_the_target(
    sqlite_source, target, server, work_dir
):
    run = backup(sqlite_source)
    before = (os.stat(target.path).st_mtime_ns, open(target.path, "rb").read())  # noqa: SIM115
    target = _with_webhooks(target, server)
    server.recorder.script = [(503, "app will not stop", 0)]
    restore = _restore(sqlite_source, target, run)
    assert restore.status == "failed"
    assert restore.error.startswith("pre-hook webhook failed (HTTP 503)")
    assert "did not start writing to target staging-sqlite" in restore.error
    assert restore.rto is None and not restore.kept_aside
    assert (os.stat(target.path).st_mtime_ns, open(target.path, "rb").read()) == before  # noqa: SIM115
    assert not [p for p in os.listdir(os.path.dirname(target.path)) if p != "tool_hub.db"]
    post = verified(*received(server, "/hooks/post")[0], POST_SECRET)
    assert post["outcome"] == "failed" and post["error"] == restore.error
    assert "pre-hook webhook: HTTP 503" in restore.hook_outcome


def test_a_failing_optional_pre_hook_is_a_warning(sqlite_source, target, server, work_dir):
    run = backup(sqlite_source)
    target = _with_webhooks(target, server, pre_hook_required=False)
    server.recorder.script = [(500, "no", 0)]
    restore = _restore(sqlite_source, target, run)
    assert restore.status == "succeeded", restore.error
    assert "warning: pre-hook webhook failed; going on" in restore.log


def test_command_hooks_write_markers_with_the_restore_facts(
    sqlite_source, target, tmp_path, monkeypatch, work_dir
):
    monkeypatch.setenv("DR_ENCRYPTION_KEYS", "must-not-leak")
    marker = tmp_path / "marker.txt"
    target.pre_hook_command = ["/bin/sh", "-c", f"env > {marker}"]
    target.post_hook_command = [
        "/bin/sh", "-c", f'echo "post $DR_EVENT $DR_OUTCOME $DR_MODE $DR_RESTORE" >> {marker}',
    ]  # fmt: skip
    target.save()
    run = backup(sqlite_source)
    restore = _restore(sqlite_source, target, run)
    assert restore.status == "succeeded", restore.error
    text = marker.read_text()
    assert "DR_EVENT=restore.pre\n" in text and f"DR_RESTORE={restore.pk}\n" in text
    assert "DR_TARGET=staging-sqlite\n" in text and "must-not-leak" not in text
    assert text.endswith(f"post restore.post succeeded full {restore.pk}\n")
    assert restore.hook_outcome == "pre-hook command: exit 0\npost-hook command: exit 0\n"


def test_a_failing_pre_command_leaves_a_postgres_target_untouched(pg_source, work_dir):
    run = backup(pg_source)
    with temp_database("dr_hooktarget_") as live:
        with live.connect() as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO orders SELECT g, 'live' FROM generate_series(1, 20) g")
        before = table_fingerprint(live, "orders")
        target = RestoreTargetFactory(
            name="app-db", database=live.dbname, allow_replace=True, sources=[pg_source],
            pre_hook_command=["/bin/sh", "-c", "echo cannot stop the app; exit 4"],
        )  # fmt: skip
        restore = _restore(pg_source, target, run)
        assert restore.status == "failed"
        assert restore.error.startswith("pre-hook command failed (exit 4: cannot stop the app)")
        assert table_fingerprint(live, "orders") == before
        with live.connect() as conn:
            names = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{live.dbname}_%"]
            ).fetchall()
        assert names == []  # no staging database was made either


def test_partial_restores_run_the_hooks_with_their_mode(tmp_path, local_destination, work_dir):
    from tests.recovery.test_partial_restore import files_backup

    _, run = files_backup(tmp_path, local_destination)
    into = tmp_path / "restore-here"
    into.mkdir()
    marker = tmp_path / "mode.txt"
    files_target = RestoreTargetFactory(
        kind="files", host="", port=None, user="", database="", path=str(into),
        post_hook_command=["/bin/sh", "-c", f"echo $DR_MODE $DR_OUTCOME > {marker}"],
    )  # fmt: skip
    restore = restores.start_restore(
        run.source, restore_target=files_target, backup_run=run,
        partial=restores.Partial(paths=["app"]),
    )  # fmt: skip
    restore = restores.execute_restore(restore)
    assert restore.status == "succeeded", restore.error
    assert marker.read_text() == "partial succeeded\n"


def test_a_pitr_restore_refused_by_its_pre_hook_creates_no_data_directory(
    sqlite_source, tmp_path, work_dir
):
    # The Restore row as start_pitr_restore makes it (the window check needs pgBackRest).
    parent = tmp_path / "pitr"
    parent.mkdir()
    marker = tmp_path / "pitr-post.txt"
    datadir = RestoreTargetFactory(
        kind="pg_datadir", host="", user="", database="", path=str(parent), port=25432,
        port_max=25440, pre_hook_command=["/bin/false"],
        post_hook_command=["/bin/sh", "-c", f"echo $DR_MODE $DR_OUTCOME > {marker}"],
    )  # fmt: skip
    restore = Restore.objects.create(
        source=sqlite_source, pitr=True, failure_type="database_failure",
        target_kind="pg_datadir", target=str(parent / "copy"), restore_target=datadir,
        port=25432,
    )  # fmt: skip
    restore = pitr_restores.execute_pitr_restore(restore)
    assert restore.status == "failed" and restore.error.startswith("pre-hook command failed")
    assert not (parent / "copy").exists()
    assert marker.read_text() == "pitr failed\n"


def test_the_failover_restore_step_runs_the_targets_hooks(sqlite_source, target, server, work_dir):
    run = backup(sqlite_source)
    before = open(target.path, "rb").read()  # noqa: SIM115
    target = _with_webhooks(target, server)
    server.recorder.script = [(500, "refused", 0)]
    runbook = RunbookFactory(
        system=sqlite_source.system,
        steps=[{
            "name": "Restore", "kind": "restore",
            "params": {"source": sqlite_source.name, "target": target.name, "backup": run.pk,
                       "overwrite": True},
        }],
    )  # fmt: skip
    failover = run_inline(runbook, mode="live")
    step = failover.step_runs.get()
    assert step.status == "failed" and "pre-hook webhook failed (HTTP 500)" in step.output
    assert open(target.path, "rb").read() == before  # noqa: SIM115
    post = verified(*received(server, "/hooks/post")[0], POST_SECRET)
    assert post["outcome"] == "failed" and post["restore"] == Restore.objects.get().pk


# --- who may set what, and secrets ---------------------------------------------------


def _form_data(target, **fields):
    data = {
        "name": target.name, "kind": target.kind, "path": target.path,
        "allow_replace": "on", "pre_hook_required": "on", "hook_timeout_s": "30",
    }  # fmt: skip
    data.update(fields)
    return data


def test_a_manager_sets_webhooks_but_not_command_hooks(manager_client, manager, target):
    edit = reverse("recovery:restore_target_edit", args=[target.pk])
    response = manager_client.post(
        edit, _form_data(target, pre_hook_command='["/usr/local/bin/quiesce"]')
    )
    assert response.status_code == 400
    assert "Only a superuser" in " ".join(response.context["form"].errors["pre_hook_command"])
    target.refresh_from_db()
    assert target.pre_hook_command == []
    # A webhook is a manager's to set; the secret is write-only.
    response = manager_client.post(
        edit,
        _form_data(
            target, pre_hook_url="https://hooks.example.com/pre?token=cap",
            new_pre_hook_secret=PRE_SECRET,
        ),
    )  # fmt: skip
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.pre_hook_secret.reveal() == PRE_SECRET
    page = manager_client.get(edit).content.decode()
    assert PRE_SECRET not in page
    listing = manager_client.get(reverse("recovery:restore_targets")).content.decode()
    assert "token=cap" not in listing and "hooks.example.com" in listing  # masked
    assert not AuditEntry.objects.filter(changes__icontains=PRE_SECRET).exists()
    # The admin holds managers to the same rule (the portal's form).
    form = RestoreTargetForm(
        _form_data(target, post_hook_command='["/bin/true"]'), instance=target, user=manager
    )
    assert not form.is_valid() and "post_hook_command" in form.errors


def test_a_superuser_sets_a_command_hook(superuser_client, target):
    edit = reverse("recovery:restore_target_edit", args=[target.pk])
    response = superuser_client.post(
        edit, _form_data(target, post_hook_command='["/usr/local/bin/resume", "toolhub"]')
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.post_hook_command == ["/usr/local/bin/resume", "toolhub"]


def test_a_hook_secret_is_bound_to_its_url(manager_client, target):
    target.pre_hook_url = "https://hooks.example.com/pre"
    target.pre_hook_secret = PRE_SECRET
    target.save()
    edit = reverse("recovery:restore_target_edit", args=[target.pk])
    moved = _form_data(target, pre_hook_url="https://elsewhere.example.net/pre")
    response = manager_client.post(edit, moved)
    assert response.status_code == 400
    assert "enter its secret again" in " ".join(response.context["form"].errors["pre_hook_url"])
    target = RestoreTarget.objects.get(pk=target.pk)
    assert target.pre_hook_url == "https://hooks.example.com/pre"
    # Saved another way (shell, code): the stored secret is cleared, never sent to the new URL.
    target.pre_hook_url = "https://elsewhere.example.net/pre"
    target.save()
    assert not RestoreTarget.objects.get(pk=target.pk).pre_hook_secret
    # The password is bound to the server, not to a hook's URL.
    pg = RestoreTargetFactory(password="db-pass", post_hook_url="https://h.example.com/x",
                              post_hook_secret=POST_SECRET)  # fmt: skip
    pg = RestoreTarget.objects.get(pk=pg.pk)
    pg.post_hook_url = "https://h2.example.com/x"
    pg.save()
    assert pg.cleared_secrets == ["post_hook_secret"] and not pg.password_cleared
    pg = RestoreTarget.objects.get(pk=pg.pk)
    assert pg.password.reveal() == "db-pass" and not pg.post_hook_secret


def test_the_hooks_secret_and_url_never_reach_the_log_or_the_page(
    sqlite_source, target, server, work_dir, viewer_client
):
    run = backup(sqlite_source)
    target = _with_webhooks(target, server)
    server.recorder.script = [(200, "ok", 0)] + [(500, f"echo {POST_SECRET}", 0)] * 3
    restore = _restore(sqlite_source, target, run)
    shown = viewer_client.get(reverse("recovery:restore_detail", args=[restore.pk]))
    listing = viewer_client.get(reverse("recovery:restore_targets")).content.decode()
    for text in (restore.log, restore.hook_outcome, restore.error, shown.content.decode(), listing):
        assert PRE_SECRET not in text and POST_SECRET not in text
        assert "/hooks/pre" not in text and "/hooks/post" not in text
    assert "post-hook webhook: HTTP 500 (after 3 attempts)" in shown.content.decode()


def test_manage_py_restore_reports_what_the_hooks_did(sqlite_source, target, tmp_path, work_dir):
    import json  # noqa: PLC0415
    from io import StringIO  # noqa: PLC0415

    from django.core.management import call_command  # noqa: PLC0415

    run = backup(sqlite_source)
    target.pre_hook_command = ["/bin/sh", "-c", "echo quiesced"]
    target.save()
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("restore", str(run.pk), "--target", target.name, "--yes", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert exit_.value.code == 0, result
    assert result["hooks"] == ["pre-hook command: exit 0: quiesced"]
