"""Each role through the API: viewers read, operators run backups, restore tests and test
failovers and declare incidents, managers restore and run live failovers; every write goes
through the portal's own service and makes the same rows the portal's button makes."""

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from backups.models import BackupRun
from dr_portal.models import AuditEntry
from incidents.models import Incident
from recovery.failover.models import FailoverRun
from recovery.models import Restore, RestoreTarget, RestoreTest
from tests.factories import (
    BackupJobFactory,
    BackupRunFactory,
    DestinationFactory,
    IncidentFactory,
    RunbookFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db

READS = [
    "/api/v1/me/",
    "/api/v1/systems/",
    "/api/v1/sources/",
    "/api/v1/destinations/",
    "/api/v1/jobs/",
    "/api/v1/backup-runs/",
    "/api/v1/restore-tests/",
    "/api/v1/restores/",
    "/api/v1/runbooks/",
    "/api/v1/failover-runs/",
    "/api/v1/incidents/",
    "/api/v1/follow-ups/",
    "/api/v1/readiness/",
]
WAIT_STEP = [{"name": "w", "kind": "wait", "params": {"seconds": 1}}]


@pytest.fixture
def world(tmp_path):
    """One of everything, so every detail URL has a row to show."""
    source = SourceFactory(name="toolhub-db")
    dest = DestinationFactory(name="local", path=str(tmp_path / "store"))
    job = BackupJobFactory(source=source, destinations=[dest])
    run = BackupRunFactory(job=job, good=True, destination=dest)
    RestoreTest.objects.create(source=source, backup_run=run, status="succeeded")
    runbook = RunbookFactory(system=source.system, steps=WAIT_STEP)
    incident = IncidentFactory(title="Disk full")
    return {
        "source": source, "dest": dest, "job": job, "run": run, "runbook": runbook,
        "incident": incident,
    }  # fmt: skip


@pytest.mark.parametrize("role", ["viewer", "operator", "manager"])
def test_every_role_reads_every_list_and_detail(api_as, world, role, django_user_model):
    from tests.factories import UserFactory

    api = api_as(UserFactory(role=role))
    for path in READS:
        response = api.get(path)
        assert response.status_code == 200, (path, response.content[:300])
    w = world
    details = [
        f"/api/v1/sources/{w['source'].pk}/",
        f"/api/v1/sources/{w['source'].pk}/readiness/",
        f"/api/v1/systems/{w['source'].system_id}/readiness/",
        f"/api/v1/destinations/{w['dest'].pk}/",
        f"/api/v1/jobs/{w['job'].pk}/",
        f"/api/v1/backup-runs/{w['run'].pk}/",
        f"/api/v1/runbooks/{w['runbook'].pk}/",
        f"/api/v1/incidents/{w['incident'].identifier}/",
        f"/api/v1/restore-tests/{RestoreTest.objects.get().pk}/",
    ]
    for path in details:
        response = api.get(path)
        assert response.status_code == 200, (path, response.content[:300])


def test_a_user_without_a_role_gets_403(db, client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="norole"))
    response = client.get("/api/v1/sources/")
    assert response.status_code == 403


def test_viewer_may_not_write_anything(api_as, viewer, world):
    api = api_as(viewer)
    w = world
    writes = [
        (f"/api/v1/jobs/{w['job'].pk}/run/", {}),
        (f"/api/v1/backup-runs/{w['run'].pk}/cancel/", {}),
        ("/api/v1/restore-tests/", {"source": w["source"].pk}),
        ("/api/v1/restores/", {"source": w["source"].pk, "confirm": "toolhub-db"}),
        (f"/api/v1/runbooks/{w['runbook'].pk}/start/", {"mode": "test"}),
        ("/api/v1/incidents/", {"title": "x"}),
    ]
    for path, body in writes:
        response = api.post(path, body)
        assert response.status_code == 403, (path, response.content)
    assert BackupRun.objects.count() == 1 and not FailoverRun.objects.exists()
    assert Incident.objects.count() == 1 and not Restore.objects.exists()
    assert RestoreTest.objects.count() == 1


def test_trigger_backup_queues_the_same_run_as_the_portal_button(
    api_as, operator, operator_client, django_capture_on_commit_callbacks
):
    job = BackupJobFactory()
    api = api_as(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/jobs/{job.pk}/run/")
    assert response.status_code == 202, response.content
    api_run = BackupRun.objects.get(pk=response.json()["id"])
    assert response.json()["status"] == "queued"
    # Busy: a second trigger starts nothing.
    again = api.post(f"/api/v1/jobs/{job.pk}/run/")
    assert again.status_code == 409 and "already has run" in again.json()["detail"]
    api_run.cancel("test")
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(reverse("backups:job_run_now", args=[job.pk]))
    page_run = job.runs.exclude(pk=api_run.pk).get()

    def shape(run):
        return (run.job_id, run.source_id, run.job_name, run.source_name, run.trigger,
                run.requested_by_id, run.scheduled_for)  # fmt: skip

    assert shape(api_run) == shape(page_run)
    tasks = [(t.func(), t.args()) for t in OrmQ.objects.order_by("pk")]
    assert tasks == [
        ("backups.tasks.run_backup", (api_run.pk,)),
        ("backups.tasks.run_backup", (page_run.pk,)),
    ]
    actions = list(
        AuditEntry.objects.filter(action="run backup").values_list("source", "actor_name")
    )
    assert ("api", f"otto (token {operator.api_tokens.get().prefix}…)") in actions
    assert ("web", "otto") in actions


def test_operator_starts_a_restore_test_and_it_is_queued(
    api_as, operator, world, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(operator).post(
            "/api/v1/restore-tests/",
            {"source": world["source"].pk, "backup_run": world["run"].pk},
        )
    assert response.status_code == 202, response.content
    test = RestoreTest.objects.get(pk=response.json()["id"])
    assert test.status == "queued" and test.backup_run == world["run"]
    assert [t.func() for t in OrmQ.objects.all()] == ["recovery.tasks.run_restore_test"]
    other = BackupRunFactory(source=SourceFactory(), good=True)
    response = api_as(operator).post(
        "/api/v1/restore-tests/", {"source": world["source"].pk, "backup_run": other.pk}
    )
    assert response.status_code == 400 and "backup_run" in response.json()
    assert RestoreTest.objects.count() == 2


@pytest.fixture
def sqlite_target(tmp_path, world):
    (tmp_path / "restores").mkdir()
    return RestoreTarget.objects.create(
        name="staging-sqlite", kind="sqlite", path=str(tmp_path / "restores" / "tool_hub.db")
    )


def test_restore_needs_the_manager_role(api_as, operator, world, sqlite_target):
    body = {
        "source": world["source"].pk,
        "restore_target": sqlite_target.pk,
        "confirm": "toolhub-db",
    }
    response = api_as(operator).post("/api/v1/restores/", body)
    assert response.status_code == 403 and "manager" in response.json()["detail"]
    assert not Restore.objects.exists()


def test_restore_needs_the_source_name_typed_as_confirmation(api_as, manager, world, sqlite_target):
    body = {"source": world["source"].pk, "restore_target": sqlite_target.pk}
    api = api_as(manager)
    assert "confirm" in api.post("/api/v1/restores/", body).json()
    response = api.post("/api/v1/restores/", {**body, "confirm": "toolhub"})
    assert response.status_code == 400
    assert response.json() == {"confirm": ["Type toolhub-db exactly to confirm."]}
    assert not Restore.objects.exists()


def test_manager_restores_to_a_registered_target_like_the_portal(
    api_as, manager, world, sqlite_target, django_capture_on_commit_callbacks
):
    body = {
        "source": world["source"].pk,
        "restore_target": sqlite_target.pk,
        "confirm": "toolhub-db",
        "failure_type": "data_corruption",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(manager).post("/api/v1/restores/", body)
    assert response.status_code == 202, response.content
    restore = Restore.objects.get()
    # Default backup: the newest that passed a restore test, as the portal's form offers.
    assert restore.backup_run == world["run"] and restore.restore_target == sqlite_target
    assert restore.target == sqlite_target.path and restore.requested_by == manager
    assert [t.func() for t in OrmQ.objects.all()] == ["recovery.tasks.run_restore"]
    assert AuditEntry.objects.filter(action="restore", detail__contains="registered target")


def test_restore_rules_are_the_portals(api_as, manager, world, sqlite_target):
    api = api_as(manager)
    source = world["source"].pk
    both = api.post(
        "/api/v1/restores/",
        {"source": source, "restore_target": sqlite_target.pk, "onto_source": True,
         "confirm": "toolhub-db"},
    )  # fmt: skip
    assert both.status_code == 400
    assert "not both" in str(both.json())
    nothing = api.post("/api/v1/restores/", {"source": source, "confirm": "toolhub-db"})
    assert nothing.status_code == 400 and "restore_target" in nothing.json()
    outside = api.post(
        "/api/v1/restores/",
        {"source": source, "target": "/etc/passwd-restored", "confirm": "toolhub-db"},
    )
    assert outside.status_code == 400, outside.content
    assert not Restore.objects.exists()


def test_operator_starts_a_test_failover_but_not_a_live_one(api_as, operator, world):
    runbook = world["runbook"]
    api = api_as(operator)
    live = api.post(
        f"/api/v1/runbooks/{runbook.pk}/start/", {"mode": "live", "confirm": "Tool Hub"}
    )
    assert live.status_code == 400
    assert "manager" in str(live.json())
    response = api.post(f"/api/v1/runbooks/{runbook.pk}/start/", {"mode": "test"})
    assert response.status_code == 202, response.content
    run = FailoverRun.objects.get()
    assert run.mode == "test" and run.step_runs.count() == 1
    detail = api.get(f"/api/v1/failover-runs/{run.pk}/").json()
    assert [s["name"] for s in detail["steps"]] == ["w"]
    assert api.post(f"/api/v1/failover-runs/{run.pk}/cancel/").json()["status"] == "cancelled"


def test_live_failover_needs_the_system_name(api_as, manager, world):
    runbook = world["runbook"]
    api = api_as(manager)
    wrong = api.post(f"/api/v1/runbooks/{runbook.pk}/start/", {"mode": "live", "confirm": "tool"})
    assert wrong.status_code == 400 and "confirm_name" in wrong.json()
    assert not FailoverRun.objects.exists()
    name = runbook.system.name
    response = api.post(f"/api/v1/runbooks/{runbook.pk}/start/", {"mode": "live", "confirm": name})
    assert response.status_code == 202 and response.json()["mode"] == "live"
    again = api.post(f"/api/v1/runbooks/{runbook.pk}/start/", {"mode": "live", "confirm": name})
    assert again.status_code == 409


def test_operator_declares_an_incident_as_the_page_does(api_as, operator):
    response = api_as(operator).post(
        "/api/v1/incidents/", {"title": "  Database   down ", "severity": "sev1"}
    )
    assert response.status_code == 201, response.content
    data = response.json()
    incident = Incident.objects.get(identifier=data["identifier"])
    assert incident.title == "Database down" and incident.created_by == operator
    assert [e["text"] for e in data["timeline"]] == ["Incident declared"]
    bad = api_as(operator).post("/api/v1/incidents/", {"title": "   "})
    assert bad.status_code == 400 and Incident.objects.count() == 1


def test_backup_runs_filter_by_job_source_status_and_since(api_as, viewer, world):
    api = api_as(viewer)
    job, source = world["job"], world["source"]
    BackupRunFactory(job=job, status="failed")
    assert len(api.get("/api/v1/backup-runs/", job=job.pk).json()["results"]) == 2
    failed = api.get("/api/v1/backup-runs/", source=source.pk, status="failed").json()
    assert [r["status"] for r in failed["results"]] == ["failed"]
    future = api.get("/api/v1/backup-runs/", since="2999-01-01T00:00:00Z").json()
    assert future["results"] == []
    bad = api.get("/api/v1/backup-runs/", status="exploded")
    assert bad.status_code == 400 and "status" in bad.json()


def test_lists_are_cursor_paged(api_as, viewer):
    job = BackupJobFactory()
    for _ in range(5):
        BackupRunFactory(job=job, status="failed")
    page = api_as(viewer).get("/api/v1/backup-runs/", page_size=2).json()
    seen = [r["id"] for r in page["results"]]
    while page["next"]:
        page = api_as(viewer).client.get(page["next"]).json()
        seen += [r["id"] for r in page["results"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == 5


def test_the_browsable_pages_render_for_a_signed_in_person(manager_client, world):
    for path in [*READS, f"/api/v1/runbooks/{world['runbook'].pk}/"]:
        response = manager_client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("text/html")
