"""Pre and post hooks of a job: signed webhooks to a real loopback server, real commands."""

import time

import pytest
from django.urls import reverse

from backups import services, tasks
from backups.admin import BackupJobAdminForm
from dr_portal.runs import RunStatus
from tests.support import hook_receiver
from tests.support.hook_receiver import received, verified, with_webhooks

server = hook_receiver.server  # the fixture
PRE_SECRET = "pre-hook-secret-0123456789"
POST_SECRET = "post-hook-secret-9876543210"


def _run(job):
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run


def _with_webhooks(job, server, **fields):
    return with_webhooks(job, server, (PRE_SECRET, POST_SECRET), **fields)


def test_pre_and_post_webhooks_are_signed_and_carry_the_run(job, server):
    job = _with_webhooks(job, server)
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [p for _m, p, _h, _b in server.recorder.requests] == ["/hooks/pre", "/hooks/post"]
    pre = verified(*received(server, "/hooks/pre")[0], PRE_SECRET)
    post = verified(*received(server, "/hooks/post")[0], POST_SECRET)
    assert pre["phase"] == "pre" and pre["outcome"] == "running" and pre["bytes_read"] == 0
    assert post["phase"] == "post" and post["outcome"] == "succeeded"
    assert post["run"] == run.pk and post["job"] == "toolhub-hourly"
    assert post["source"] == "toolhub-db" and post["system"] == job.source.system.name
    assert post["bytes_read"] == run.bytes_read > 0 and post["bytes_stored"] == run.bytes_stored
    assert post["duration_s"] > 0 and post["finished"] and post["error"] == ""
    # The wrong secret does not verify: the signature binds body and key.
    with pytest.raises(AssertionError):
        verified(*received(server, "/hooks/post")[0], PRE_SECRET)
    assert run.hook_outcome == "pre-hook webhook: HTTP 200\npost-hook webhook: HTTP 200\n"
    assert "/hooks/" not in run.log  # the URL is a capability: never in the log


def test_a_failing_required_pre_hook_fails_the_run_before_it_reads(job, server, tmp_path):
    job = _with_webhooks(job, server)
    server.recorder.script = [(503, "maintenance", 0)]
    run = _run(job)
    assert run.status == RunStatus.FAILED
    assert "pre-hook webhook failed (HTTP 503)" in run.error
    assert run.bytes_read == 0 and not run.copies.exists()
    assert not (tmp_path / "dest-a").exists() or not any((tmp_path / "dest-a").rglob("*.dr*"))
    post = verified(*received(server, "/hooks/post")[0], POST_SECRET)
    assert post["outcome"] == "failed" and "pre-hook" in post["error"]


def test_a_failing_optional_pre_hook_is_a_warning(job, server):
    job = _with_webhooks(job, server, pre_hook_required=False)
    server.recorder.script = [(500, "no", 0)]
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "warning: pre-hook webhook failed; going on" in run.log


def test_a_post_webhook_is_retried_with_back_off_and_never_changes_the_run(job, server):
    job = _with_webhooks(job, server)
    server.recorder.script = [(200, "ok", 0), (500, "a", 0), (502, "b", 0), (500, "c", 0)]
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED
    assert len(received(server, "/hooks/post")) == 3
    assert "post-hook webhook: HTTP 500 (after 3 attempts)" in run.hook_outcome


def test_a_command_pre_hook_gets_the_run_facts_and_nothing_of_the_worker(
    job, tmp_path, monkeypatch
):
    monkeypatch.setenv("DR_ENCRYPTION_KEYS", "must-not-leak")
    out = tmp_path / "env.txt"
    job.pre_hook_command = ["/bin/sh", "-c", f"env > {out}"]
    job.post_hook_command = ["/bin/sh", "-c", f"echo outcome=$DR_OUTCOME >> {out}"]
    job.save()
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    env = out.read_text()
    assert (
        f"DR_RUN={run.pk}\n" in env and "DR_PHASE=pre\n" in env and "DR_JOB=toolhub-hourly" in env
    )
    assert "must-not-leak" not in env and "DJANGO" not in env
    assert env.endswith("outcome=succeeded\n")
    assert "pre-hook command: exit 0" in run.hook_outcome


def test_a_failing_command_pre_hook_fails_the_run_with_its_output(job):
    job.pre_hook_command = ["/bin/sh", "-c", "echo app will not quiesce; exit 3"]
    job.save()
    run = _run(job)
    assert run.status == RunStatus.FAILED
    assert "pre-hook command failed (exit 3: app will not quiesce)" in run.error


def test_a_hanging_command_is_killed_at_the_timeout(job):
    job.pre_hook_command = ["/bin/sleep", "60"]
    job.hook_timeout_s = 1
    job.save()
    began = time.monotonic()
    run = _run(job)
    assert time.monotonic() - began < 20
    assert run.status == RunStatus.FAILED
    assert "/bin/sleep killed after 1 s (timeout)" in run.error


def _form_data(job, **extra):
    data = {
        "name": job.name,
        "source": job.source_id,
        "destinations": [d.pk for d in job.destinations.all()],
        "timezone": "UTC",
        "compression": "zstd",
        "encrypt": "on",
        "enabled": "on",
        "pre_hook_required": "on",
        "hook_timeout_s": "30",
    }
    data.update(extra)
    return data


def test_a_manager_may_set_webhooks_but_not_commands(job, manager_client):
    url = reverse("backups:job_edit", args=[job.pk])
    response = manager_client.post(
        url, _form_data(job, pre_hook_command='["/usr/bin/touch", "/tmp/x"]')
    )
    assert response.status_code == 400
    assert "Only a superuser may set or change a command hook" in response.content.decode()
    job.refresh_from_db()
    assert job.pre_hook_command == []
    response = manager_client.post(
        url,
        _form_data(
            job,
            post_hook_url="https://hooks.example.org/backup-done",
            new_post_hook_secret=POST_SECRET,
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job.refresh_from_db()
    assert job.post_hook_url == "https://hooks.example.org/backup-done"
    assert job.post_hook_secret.reveal() == POST_SECRET
    page = manager_client.get(url).content.decode()
    assert POST_SECRET not in page


def test_a_superuser_may_set_a_command_and_a_manager_keeps_it_unchanged(
    job, superuser_client, manager_client
):
    url = reverse("backups:job_edit", args=[job.pk])
    argv = '["/usr/local/bin/quiesce", "toolhub"]'
    response = superuser_client.post(url, _form_data(job, pre_hook_command=argv))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.pre_hook_command == ["/usr/local/bin/quiesce", "toolhub"]
    # A manager saving other changes resubmits the command as shown: allowed, unchanged.
    response = manager_client.post(
        url, _form_data(job, pre_hook_command=argv, schedule="0 3 * * *")
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.schedule == "0 3 * * *" and job.pre_hook_command[0] == "/usr/local/bin/quiesce"


def test_a_command_must_be_an_absolute_argv(job, superuser_client):
    url = reverse("backups:job_edit", args=[job.pk])
    for argv, message in [
        ('"rm -rf /"', "JSON list of strings"),
        ('["quiesce"]', "must be an absolute path"),
    ]:
        response = superuser_client.post(url, _form_data(job, pre_hook_command=argv))
        assert response.status_code == 400
        assert message in response.content.decode()


def test_a_hook_url_needs_a_secret(job, manager_client):
    url = reverse("backups:job_edit", args=[job.pk])
    response = manager_client.post(url, _form_data(job, pre_hook_url="https://hooks.example.org/x"))
    assert response.status_code == 400
    assert "A pre-hook URL needs a secret" in response.content.decode()


def test_the_admin_refuses_a_command_from_a_non_superuser(job, manager, superuser):
    data = _form_data(job, method="logical", backup_type="full", pre_hook_command='["/bin/true"]')
    form = BackupJobAdminForm(data, instance=job, user=manager)
    assert not form.is_valid()
    assert "Only a superuser" in str(form.errors["pre_hook_command"])
    assert BackupJobAdminForm(data, instance=job, user=superuser).is_valid()
