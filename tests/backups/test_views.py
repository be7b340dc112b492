"""Every page as anonymous, viewer, operator and manager, plus the wrong method; query counts."""

import pytest
from django.test import Client
from django.urls import reverse

from backups import services
from backups.models import BackupJob, BackupRun, Destination, Source
from dr_portal.models import AuditEntry
from dr_portal.runs import RunStatus
from tests.factories import BackupJobFactory, DestinationFactory, SourceFactory

PASSWORD = "pg-s3cret-value-123"
S3_SECRET = "AKIA-secret-key-value-999"


@pytest.fixture
def pages(job, local_dest, sqlite_source):
    run = services.start_run(job, "manual")
    return {
        "index": reverse("backups:index"),
        "source_list": reverse("backups:source_list"),
        "source_detail": reverse("backups:source_detail", args=[sqlite_source.pk]),
        "destination_list": reverse("backups:destination_list"),
        "destination_detail": reverse("backups:destination_detail", args=[local_dest.pk]),
        "job_list": reverse("backups:job_list"),
        "job_detail": reverse("backups:job_detail", args=[job.pk]),
        "run_detail": reverse("backups:run_detail", args=[run.pk]),
        "run_progress": reverse("backups:run_progress", args=[run.pk]),
        "retention": reverse("backups:retention"),
    }


READ_PAGES = [
    "index",
    "source_list",
    "source_detail",
    "destination_list",
    "destination_detail",
    "job_list",
    "job_detail",
    "run_detail",
    "run_progress",
    "retention",
]


@pytest.mark.parametrize("page", READ_PAGES)
def test_anonymous_is_sent_to_login(client, pages, page):
    response = client.get(pages[page])
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("page", READ_PAGES)
def test_viewer_reads_every_page_without_action_buttons(viewer_client, pages, page):
    response = viewer_client.get(pages[page])
    assert response.status_code == 200
    body = response.content.decode()
    assert "Run now" not in body
    assert "Test connection" not in body
    assert ">Edit<" not in body


def test_operator_sees_run_now_and_test_but_not_edit(operator_client, pages):
    body = operator_client.get(pages["job_detail"]).content.decode()
    assert "Run now" in body and ">Edit<" not in body
    assert "Test connection" in operator_client.get(pages["destination_detail"]).content.decode()


def test_manager_sees_edit(manager_client, pages):
    assert ">Edit<" in manager_client.get(pages["job_detail"]).content.decode()


# --- actions ------------------------------------------------------------------------
def test_viewer_cannot_run_backup(viewer_client, job):
    response = viewer_client.post(reverse("backups:job_run_now", args=[job.pk]))
    assert response.status_code == 403
    assert not job.runs.exists()


def test_run_now_needs_post(operator_client, job):
    assert operator_client.get(reverse("backups:job_run_now", args=[job.pk])).status_code == 405
    assert not job.runs.exists()


def test_operator_runs_now_and_the_task_really_runs(
    operator_client, operator, job, sync_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(reverse("backups:job_run_now", args=[job.pk]))
    run = job.runs.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.requested_by == operator
    assert run.task_id
    assert AuditEntry.objects.filter(action="run backup", actor=operator).exists()


def test_run_now_on_a_busy_job_starts_nothing(operator_client, job):
    services.start_run(job, "manual")
    response = operator_client.post(reverse("backups:job_run_now", args=[job.pk]), follow=True)
    assert job.runs.count() == 1
    assert "Not started" in response.content.decode()


def test_progress_fragment_polls_until_done(viewer_client, job):
    run = services.start_run(job, "manual")
    url = reverse("backups:run_progress", args=[run.pk])
    assert viewer_client.get(url).status_code == 200
    run.claim()
    run.beat("compressing", bytes_read=12345)
    body = viewer_client.get(url).content.decode()
    assert "compressing" in body and "12.1 KB" in body
    run.finish(RunStatus.FAILED, "boom")
    response = viewer_client.get(url)
    assert response.status_code == 286
    assert "boom" in response.content.decode()


def test_run_detail_polls_only_while_active(viewer_client, job):
    run = services.start_run(job, "manual")
    url = reverse("backups:run_detail", args=[run.pk])
    assert 'hx-trigger="every 2s"' in viewer_client.get(url).content.decode()
    run.finish(RunStatus.CANCELLED, "x")
    assert 'hx-trigger="every 2s"' not in viewer_client.get(url).content.decode()


def test_test_connection_writes_probe(operator_client, local_dest, tmp_path):
    response = operator_client.post(
        reverse("backups:destination_test", args=[local_dest.pk]), follow=True
    )
    assert "wrote, read back and deleted" in response.content.decode()
    assert list((tmp_path / "dest-a").iterdir()) == []
    assert AuditEntry.objects.filter(action="test destination").exists()


def test_test_connection_failure_is_a_message(operator_client, local_dest, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    Destination.objects.filter(pk=local_dest.pk).update(path=str(blocker / "below"))
    response = operator_client.post(
        reverse("backups:destination_test", args=[local_dest.pk]), follow=True
    )
    assert response.status_code == 200
    assert "failed" in response.content.decode()


def test_viewer_cannot_test_connection_and_get_is_refused(
    viewer_client, operator_client, local_dest
):
    url = reverse("backups:destination_test", args=[local_dest.pk])
    assert viewer_client.post(url).status_code == 403
    assert operator_client.get(url).status_code == 405


@pytest.mark.parametrize("name", ["source_create", "destination_create", "job_create"])
def test_forms_need_manager(viewer_client, operator_client, manager_client, name):
    url = reverse(f"backups:{name}")
    assert viewer_client.get(url).status_code == 403
    assert operator_client.get(url).status_code == 403
    assert manager_client.get(url).status_code == 200


def test_manager_creates_job_with_clear_errors(manager_client, sqlite_source, local_dest):
    url = reverse("backups:job_create")
    bad = {
        "name": "j",
        "source": sqlite_source.pk,
        "destinations": [local_dest.pk],
        "schedule": "every day",
        "timezone": "Mars/Olympus",
        "compression": "zstd",
    }
    response = manager_client.post(url, bad)
    assert response.status_code == 400
    body = response.content.decode()
    assert "is not a cron expression" in body
    assert "is not a known time zone" in body
    assert not BackupJob.objects.filter(name="j").exists()
    good = dict(bad, schedule="0 2 * * *", timezone="Europe/Berlin", encrypt="on", enabled="on")
    response = manager_client.post(url, good)
    assert response.status_code == 302
    job = BackupJob.objects.get(name="j")
    assert job.timezone == "Europe/Berlin"
    from django_q.models import Schedule

    assert Schedule.objects.filter(name=job.schedule_name).count() == 1


def test_source_path_outside_allowed_roots_is_refused(manager_client, system):
    response = manager_client.post(
        reverse("backups:source_create"),
        {
            "system": system.pk,
            "name": "etc",
            "kind": "files",
            "path": "/etc",
            "data_class": "important",
            "restore_test_schedule": "0 3 * * 0",
        },
    )
    assert response.status_code == 400
    assert "outside the allowed roots" in response.content.decode()
    assert not Source.objects.filter(name="etc").exists()


def test_source_checks_grammar_is_validated(manager_client, system, sqlite_path):
    data = {
        "system": system.pk,
        "name": "s",
        "kind": "sqlite",
        "path": str(sqlite_path),
        "data_class": "critical",
        "restore_test_schedule": "0 3 * * 0",
        "checks": '[{"name": "w", "sql": "SELECT COUNT(*) FROM workflows", "expect": "lots"}]',
    }
    response = manager_client.post(reverse("backups:source_create"), data)
    assert response.status_code == 400
    assert "is not an expectation" in response.content.decode()
    data["checks"] = (
        '[{"sql": "SELECT COUNT(*) FROM workflows", "expect": "not below 90% of previous"}]'
    )
    assert manager_client.post(reverse("backups:source_create"), data).status_code == 302
    assert Source.objects.get(name="s").checks[0]["name"] == "check-1"


def test_source_password_is_write_only(manager_client, system):
    url = reverse("backups:source_create")
    data = {
        "system": system.pk,
        "name": "pg",
        "kind": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "toolhub",
        "user": "toolhub",
        "new_password": PASSWORD,
        "data_class": "critical",
        "restore_test_schedule": "0 3 * * 0",
    }
    assert manager_client.post(url, data).status_code == 302
    source = Source.objects.get(name="pg")
    assert source.password.reveal() == PASSWORD
    changed_at = source.config_changed_at
    edit = reverse("backups:source_edit", args=[source.pk])
    body = manager_client.get(edit).content.decode()
    assert PASSWORD not in body and source.password.token not in body
    assert "Leave blank to keep" in body
    # Blank keeps it and, with nothing else changed, the configuration did not change.
    data["new_password"] = ""
    assert manager_client.post(edit, data).status_code == 302
    source.refresh_from_db()
    assert source.password.reveal() == PASSWORD
    assert source.config_changed_at == changed_at
    for page in ("backups:source_detail",):
        assert PASSWORD not in manager_client.get(reverse(page, args=[source.pk])).content.decode()
    # A new password is a configuration change (restore-test evidence is invalidated).
    data["new_password"] = "another-one-456"
    manager_client.post(edit, data)
    source.refresh_from_db()
    assert source.config_changed_at > changed_at


def test_destination_secrets_never_rendered(manager_client, superuser_client):
    dest = DestinationFactory(
        name="s3",
        kind="s3",
        bucket="b",
        region="us-east-1",
        access_key_id="AKIAEXAMPLE1234",
        secret_access_key=S3_SECRET,
    )
    for url in (
        reverse("backups:destination_detail", args=[dest.pk]),
        reverse("backups:destination_edit", args=[dest.pk]),
        reverse("backups:destination_list"),
    ):
        body = manager_client.get(url).content.decode()
        assert S3_SECRET not in body and "AKIAEXAMPLE1234" not in body
    body = superuser_client.get(
        reverse("admin:backups_destination_change", args=[dest.pk])
    ).content.decode()
    assert S3_SECRET not in body and "AKIAEXAMPLE1234" not in body
    dest.refresh_from_db()
    assert dest.secret_access_key.token not in body


def test_admin_keeps_secret_when_left_blank(superuser_client, system):
    source = SourceFactory(
        system=system,
        name="pg",
        kind="postgresql",
        host="h",
        database="d",
        user="u",
        password=PASSWORD,
    )
    source.refresh_from_db()
    url = reverse("admin:backups_source_change", args=[source.pk])
    body = superuser_client.get(url).content.decode()
    assert PASSWORD not in body and source.password.token not in body
    data = {
        "system": system.pk,
        "name": "pg",
        "kind": "postgresql",
        "host": "h",
        "port": "",
        "database": "d",
        "user": "u2",
        "new_password": "",
        "path": "",
        "exclude": "[]",
        "checks": "[]",
        "data_class": "important",
        "restore_test_schedule": "0 3 * * 0",
    }
    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    source.refresh_from_db()
    # A change that keeps the endpoint keeps the secret (a new host would clear it: see
    # tests/security/test_config_hardening.py).
    assert source.user == "u2" and source.password.reveal() == PASSWORD


@pytest.mark.parametrize(
    "model", ["system", "source", "destination", "backupjob", "backuprun", "backupcopy"]
)
def test_admin_changelists_render(superuser_client, job, model):
    services.start_run(job, "manual")
    assert superuser_client.get(reverse(f"admin:backups_{model}_changelist")).status_code == 200


def test_job_delete_by_manager_keeps_history(manager_client, operator_client, job):
    run = services.start_run(job, "manual")
    run.finish(RunStatus.CANCELLED, "x")
    url = reverse("backups:job_delete", args=[job.pk])
    assert operator_client.post(url).status_code == 403
    assert manager_client.get(url).status_code == 405
    assert manager_client.post(url).status_code == 302
    assert not BackupJob.objects.filter(pk=job.pk).exists()
    assert BackupRun.objects.filter(pk=run.pk, job__isnull=True).exists()


# --- query counts ----------------------------------------------------------------
@pytest.fixture
def many(job, sqlite_source, local_dest, second_dest):
    for i in range(6):
        j = BackupJobFactory(name=f"job-{i}", source=sqlite_source)
        j.destinations.set([local_dest, second_dest])
        run = j.create_run("manual")
        run.finish(RunStatus.FAILED, "x")
    return job


@pytest.mark.parametrize(
    "page,limit",
    [
        # Every page: one query for the destination banner (dashboard.destination_health).
        ("index", 14),  # live copies per destination counted apart (the live copies only)
        ("job_list", 9),
        ("source_list", 8),
        ("destination_list", 8),
        ("retention", 18),  # 14 + the worker banner: two cache reads, one count (no worker)
    ],
)
def test_list_pages_pin_their_query_count(viewer, many, page, limit, django_assert_max_num_queries):
    client = Client()
    client.force_login(viewer)
    url = reverse(f"backups:{page}")
    with django_assert_max_num_queries(limit):
        assert client.get(url).status_code == 200


def test_job_detail_query_count_does_not_grow_with_runs(viewer, job, django_assert_max_num_queries):
    for _ in range(20):
        run = job.create_run("manual")
        run.finish(RunStatus.FAILED, "x")
    client = Client()
    client.force_login(viewer)
    with django_assert_max_num_queries(14):
        assert client.get(reverse("backups:job_detail", args=[job.pk])).status_code == 200


def test_cancel_a_queued_run_and_request_cancel_of_a_running_one(
    viewer_client, operator_client, job
):
    run = services.start_run(job, "manual")
    url = reverse("backups:run_cancel", args=[run.pk])
    assert viewer_client.post(url).status_code == 403
    assert operator_client.get(url).status_code == 405
    assert "Cancel run" in operator_client.get(run.get_absolute_url()).content.decode()
    operator_client.post(url)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and "otto" in run.error
    running = services.start_run(job, "manual")
    running.claim()
    operator_client.post(reverse("backups:run_cancel", args=[running.pk]))
    running.refresh_from_db()
    assert running.status == RunStatus.RUNNING and running.cancel_requested
    assert AuditEntry.objects.filter(action="cancel backup").count() == 2


def test_job_detail_draws_size_and_duration_charts(viewer_client, job):
    from backups import tasks

    for _ in range(2):
        tasks.run_backup(services.start_run(job, "manual").pk)
    body = viewer_client.get(reverse("backups:job_detail", args=[job.pk])).content.decode()
    assert body.count("<svg") == 2
    assert "Stored size per backup" in body and "Duration per backup" in body
