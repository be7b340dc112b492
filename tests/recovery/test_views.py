"""Recovery pages as each persona, with the wrong method, and the queries they make."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dr_portal.models import AuditEntry
from recovery.models import Restore, RestoreTest, RPOTarget, RTOTarget
from tests.factories import BackupRunFactory, DestinationFactory, RestoreTestFactory, SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(db, tmp_path):
    path = tmp_path / "app.db"
    path.write_bytes(b"")
    return SourceFactory(
        system__name="tool-hub",
        name="toolhub-db",
        kind="sqlite",
        path=str(path),
        data_class="critical",
    )


@pytest.fixture
def finished_test(source):
    test = RestoreTestFactory(source=source)
    RestoreTest.objects.filter(pk=test.pk).update(
        status="succeeded",
        started=timezone.now() - timedelta(minutes=2),
        finished=timezone.now(),
        rto=timedelta(seconds=42),
        checks=[
            {
                "name": "wf",
                "sql": "SELECT 1",
                "expect": "> 0",
                "observed": "1",
                "outcome": "passed",
                "detail": "1 > 0",
            }
        ],
        phases=[{"name": "restore", "ok": True, "seconds": 1.5, "detail": ""}],
    )
    test.refresh_from_db()
    return test


def test_anonymous_is_sent_to_login(client, source):
    response = client.get(reverse("recovery:index"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("persona", ["viewer_client", "operator_client", "manager_client"])
def test_read_pages_for_every_persona(request, persona, source, finished_test):
    client = request.getfixturevalue(persona)
    for url in (
        reverse("recovery:index"),
        reverse("recovery:source_detail", args=[source.pk]),
        reverse("recovery:test_detail", args=[finished_test.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
    page = client.get(reverse("recovery:source_detail", args=[source.pk])).content.decode()
    assert "<svg" in page and "RTO target" in page
    can_run = "Run restore test" in page
    assert can_run == (persona != "viewer_client")


def test_index_shows_seeded_targets(viewer_client, source):
    page = viewer_client.get(reverse("recovery:index")).content.decode()
    for text in (
        "Single node failure",
        "15m",
        "Complete loss",
        "3d",
        "99.500 %",
        "needs verification",
    ):
        assert text in page, text


def test_index_query_count_does_not_grow_with_sources(
    viewer_client, source, django_assert_max_num_queries
):

    for i in range(8):
        SourceFactory(system=source.system, name=f"s{i}", kind="sqlite", path=source.path)
    # 25, and 5 for a cold readiness cache (its version started, the entry read and stored).
    with django_assert_max_num_queries(30):
        viewer_client.get(reverse("recovery:index"))


def test_progress_fragment_stops_polling_when_done(viewer_client, source, finished_test):
    response = viewer_client.get(reverse("recovery:test_progress", args=[finished_test.pk]))
    assert response.status_code == 286
    running = RestoreTestFactory(source=source)
    response = viewer_client.get(reverse("recovery:test_progress", args=[running.pk]))
    assert response.status_code == 200


def test_viewer_cannot_run_restore_test(viewer_client, source):
    response = viewer_client.post(reverse("recovery:run_test", args=[source.pk]))
    assert response.status_code == 403
    assert not RestoreTest.objects.exists()


def test_operator_runs_restore_test_enqueued_and_audited(
    operator_client, source, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(reverse("recovery:run_test", args=[source.pk]))
    test = RestoreTest.objects.get()
    assert response.status_code == 302 and response["Location"] == test.get_absolute_url()
    assert test.status == "queued" and test.requested_by.username == "otto"
    assert OrmQ.objects.count() == 1
    assert AuditEntry.objects.filter(action="run restore test").exists()
    # A second click while the first is queued does not queue another.
    operator_client.post(reverse("recovery:run_test", args=[source.pk]))
    assert RestoreTest.objects.count() == 1


def test_get_on_run_test_is_not_allowed(operator_client, source):
    assert operator_client.get(reverse("recovery:run_test", args=[source.pk])).status_code == 405


def test_targets_edit_is_for_managers_and_audited(operator_client, manager_client):
    url = reverse("recovery:targets")
    assert operator_client.get(url).status_code == 403
    page = manager_client.get(url)
    assert page.status_code == 200 and 'value="15m"' in page.content.decode()
    data = {
        f"rto_{t.failure_type}": "1h"
        if t.failure_type == "single_node"
        else str(t.target.total_seconds()) + "s"
        for t in RTOTarget.objects.all()
    }
    data.update(
        {
            f"rpo_{t.data_class}": "2h"
            if t.data_class == "critical"
            else f"{int(t.target.total_seconds())}s"
            for t in RPOTarget.objects.all()
        }
    )
    data.update(availability_percent="99.9", sla_rto="1h", sla_rpo="1h")
    response = manager_client.post(url, data)
    assert response.status_code == 302
    assert RTOTarget.objects.get(failure_type="single_node").target == timedelta(hours=1)
    assert RPOTarget.objects.get(data_class="critical").target == timedelta(hours=2)
    assert AuditEntry.objects.filter(object_type="recovery.rtotarget", action="update").exists()
    data["rto_single_node"] = "soon"
    response = manager_client.post(url, data)
    assert response.status_code == 200 and "not a duration" in response.content.decode()


def test_restore_form_needs_typed_name_and_manager_for_source(
    operator_client, manager_client, source
):

    run = BackupRunFactory(
        good=True, source=source, destination=DestinationFactory(name="l", path="/tmp")
    )
    url = reverse("recovery:restore_new", args=[source.pk])
    base = {"backup_run": run.pk, "failure_type": "data_corruption", "onto_source": "on"}
    response = operator_client.post(url, {**base, "confirm": source.name})
    assert response.status_code == 200 and "Only managers" in response.content.decode()
    response = manager_client.post(url, {**base, "confirm": "wrong"})
    assert (
        response.status_code == 200 and f"Type {source.name} exactly" in response.content.decode()
    )
    assert not Restore.objects.exists()
    response = manager_client.post(url, {**base, "confirm": source.name})
    restore = Restore.objects.get()
    assert response.status_code == 302
    assert restore.onto_source and restore.target == source.path
    assert restore.rto_target == timedelta(minutes=30)


def test_restore_form_refuses_target_outside_allowed_roots(operator_client, manager_client, source):
    run = BackupRunFactory(
        good=True, source=source, destination=DestinationFactory(name="l", path="/tmp")
    )
    url = reverse("recovery:restore_new", args=[source.pk])
    data = {"backup_run": run.pk, "failure_type": "database_failure", "target": "/etc/passwd.db"}
    # A free-form target is for managers; operators choose a registered one.
    response = operator_client.post(url, data)
    assert response.status_code == 200
    assert "Only managers may restore to a free-form target" in response.content.decode()
    response = manager_client.post(url, data)
    assert response.status_code == 200
    assert "outside the allowed roots" in response.content.decode()
    assert not Restore.objects.exists()


def test_viewer_cannot_open_restore_form(viewer_client, source):
    assert viewer_client.get(reverse("recovery:restore_new", args=[source.pk])).status_code == 403


def test_superuser_without_groups_can_do_everything(superuser, source):
    client = Client()
    client.force_login(superuser)
    assert client.get(reverse("recovery:targets")).status_code == 200
    assert Group.objects.filter(name="manager").exists()


@pytest.mark.parametrize("persona", ["viewer_client", "operator_client", "manager_client"])
def test_restore_detail_and_progress_for_every_persona(request, persona, source):
    client = request.getfixturevalue(persona)
    restore = Restore.objects.create(
        source=source,
        failure_type="data_corruption",
        target_kind="file",
        target="/tmp/x.db",
        target_password="s3cret-pass",
    )
    page = client.get(reverse("recovery:restore_detail", args=[restore.pk]))
    assert page.status_code == 200 and "s3cret-pass" not in page.content.decode()
    assert client.get(reverse("recovery:restore_progress", args=[restore.pk])).status_code == 200
    Restore.objects.filter(pk=restore.pk).update(status="failed", finished=timezone.now())
    assert client.get(reverse("recovery:restore_progress", args=[restore.pk])).status_code == 286


def test_get_on_restore_form_shows_confirmation_only_to_managers(
    operator_client, manager_client, source
):
    url = reverse("recovery:restore_new", args=[source.pk])
    assert "Type the source" not in operator_client.get(url).content.decode()
    assert "Type the source" in manager_client.get(url).content.decode()


def test_restore_form_wrong_method(operator_client, source):
    assert operator_client.put(reverse("recovery:restore_new", args=[source.pk])).status_code == 405


def test_operator_can_test_one_chosen_backup(operator_client, source):
    run = BackupRunFactory(source=source, status="succeeded", data_taken_at=timezone.now())
    url = reverse("recovery:run_test", args=[source.pk])
    assert operator_client.post(url, {"backup_run": "nonsense"}).status_code == 404
    other = BackupRunFactory(status="succeeded")
    assert operator_client.post(url, {"backup_run": other.pk}).status_code == 404
    assert operator_client.post(url, {"backup_run": run.pk}).status_code == 302
    assert RestoreTest.objects.get().backup_run_id == run.pk
