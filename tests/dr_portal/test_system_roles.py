"""Roles per system (issue 21): operator on one system, viewer on another, nothing elsewhere.

Effective role on a system = max(global role, that system's role), capped by an API token's
ceiling; lists, details, actions, the dashboard, the API and the compliance report follow it.
"""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from backups.models import BackupJob, BackupRun, SystemRole
from dr_portal.lib import roles
from dr_portal.models import AuditEntry
from recovery.models import RestoreTest
from tests.api.conftest import Api, token_for
from tests.factories import (
    BackupJobFactory,
    BackupRunFactory,
    DestinationFactory,
    SourceFactory,
    SystemFactory,
    UserFactory,
)


@pytest.fixture
def world(db):
    """Systems A (the user operates it), B (the user views it), C (nothing); one source,
    job and good backup each."""
    dest = DestinationFactory(name="shared-dest")
    items = {}
    for name in ("alpha", "bravo", "charlie"):
        system = SystemFactory(name=f"System {name}")
        source = SourceFactory(system=system, name=f"{name}-db")
        job = BackupJobFactory(source=source, name=f"{name}-job", destinations=[dest])
        run = BackupRunFactory(job=job, good=True, destination=dest)
        items[name] = {"system": system, "source": source, "job": job, "run": run}
    return items


@pytest.fixture
def sam(world):
    """Operator on alpha, viewer on bravo, no global role."""
    user = UserFactory(username="sam")
    SystemRole.objects.create(user=user, system=world["alpha"]["system"], role="operator")
    SystemRole.objects.create(user=user, system=world["bravo"]["system"], role="viewer")
    return user


@pytest.fixture
def sam_client(sam):
    client = Client()
    client.force_login(sam)
    return client


def fresh(user):
    """The user as the next request sees it (the role cache lives on the object)."""
    return type(user).objects.get(pk=user.pk)


# --- the central API ----------------------------------------------------------------------


def test_effective_role_is_the_higher_of_global_and_system(world, sam):
    a, b, c = (world[n]["system"] for n in ("alpha", "bravo", "charlie"))
    assert roles.user_roles(sam) == set()
    assert roles.has_role(sam, "operator", a) and not roles.has_role(sam, "manager", a)
    assert roles.has_role(sam, "viewer", b.pk) and not roles.has_role(sam, "operator", b)
    assert not roles.has_role(sam, "viewer", c)
    assert not roles.has_role(sam, "viewer")  # no system named: the global role only
    assert not roles.has_role(sam, "viewer", [a, c])  # several systems: every one of them
    assert roles.visible_systems(sam) == {a.pk, b.pk}
    assert roles.visible_systems(sam, "operator") == {a.pk}
    sam.groups.add(Group.objects.get(name="operator"))
    sam = fresh(sam)
    assert roles.has_role(sam, "operator", c)  # global operator reaches every system
    assert roles.visible_systems(sam) is None


def test_a_token_ceiling_caps_system_roles_too(world, sam):
    a = world["alpha"]["system"]
    roles.limit_roles(sam, "viewer")
    assert roles.has_role(sam, "viewer", a) and not roles.has_role(sam, "operator", a)
    assert roles.visible_systems(sam, "operator") == set()


def test_roles_are_read_in_one_query(world, sam, django_assert_num_queries):
    sam = fresh(sam)
    with django_assert_num_queries(1):
        roles.has_role(sam, "viewer", world["alpha"]["system"])
        roles.visible_systems(sam)
        roles.user_roles(sam)


def test_a_system_role_is_unique_per_user_and_system_and_audited(world, sam):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        SystemRole.objects.create(user=sam, system=world["alpha"]["system"], role="manager")
    assert AuditEntry.objects.filter(object_repr__contains="is operator on System alpha").exists()


# --- portal pages -------------------------------------------------------------------------


def test_lists_show_only_the_systems_the_user_has_a_role_on(world, sam_client):
    for path in ("/backups/", "/backups/sources/", "/backups/jobs/", "/backups/runs/",
                 "/recovery/", "/"):  # fmt: skip
        response = sam_client.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        assert "alpha-db" in body or "alpha-job" in body, path
        assert "charlie" not in body, path
    assert "bravo-db" in sam_client.get("/backups/sources/").content.decode()


def test_details_of_an_unseen_system_are_404_and_seen_ones_200(world, sam_client):
    for name, expected in (("alpha", 200), ("bravo", 200), ("charlie", 404)):
        item = world[name]
        for path in (
            f"/backups/sources/{item['source'].pk}/",
            f"/backups/jobs/{item['job'].pk}/",
            f"/backups/runs/{item['run'].pk}/",
            f"/recovery/sources/{item['source'].pk}/",
        ):
            assert sam_client.get(path).status_code == expected, path


def test_operator_on_a_starts_a_backup_there_but_not_on_b_or_c(world, sam_client):
    before = BackupRun.objects.count()
    assert sam_client.post(f"/backups/jobs/{world['alpha']['job'].pk}/run/").status_code == 302
    assert sam_client.post(f"/backups/jobs/{world['bravo']['job'].pk}/run/").status_code == 403
    assert sam_client.post(f"/backups/jobs/{world['charlie']['job'].pk}/run/").status_code == 404
    new = BackupRun.objects.order_by("-pk")[: BackupRun.objects.count() - before]
    assert [r.job_name for r in new] == ["alpha-job"]


def test_operator_on_a_starts_a_restore_test_there_but_not_on_b(world, sam_client):
    for name, status in (("alpha", 302), ("bravo", 403), ("charlie", 404)):
        source = world[name]["source"]
        assert sam_client.post(f"/recovery/sources/{source.pk}/test/").status_code == status
    assert list(RestoreTest.objects.values_list("source__name", flat=True)) == ["alpha-db"]


def test_the_run_button_shows_only_where_the_user_may_press_it(world, sam_client):
    alpha = sam_client.get(f"/backups/jobs/{world['alpha']['job'].pk}/").content.decode()
    bravo = sam_client.get(f"/backups/jobs/{world['bravo']['job'].pk}/").content.decode()
    assert "/run/" in alpha and "/run/" not in bravo


def test_a_manager_of_a_cannot_edit_or_pick_bs_job_or_source(world, db):
    mia = UserFactory(username="mia")
    SystemRole.objects.create(user=mia, system=world["alpha"]["system"], role="manager")
    SystemRole.objects.create(user=mia, system=world["bravo"]["system"], role="viewer")
    client = Client()
    client.force_login(mia)
    alpha, bravo = world["alpha"], world["bravo"]
    assert client.get(f"/backups/jobs/{alpha['job'].pk}/edit/").status_code == 200
    assert client.get(f"/backups/jobs/{bravo['job'].pk}/edit/").status_code == 403
    assert client.post(f"/backups/jobs/{bravo['job'].pk}/delete/").status_code == 403
    assert client.get(f"/backups/jobs/{world['charlie']['job'].pk}/edit/").status_code == 404
    # Moving alpha's job onto bravo's source: bravo's source is not a choice.
    form = {"name": "alpha-job", "source": bravo["source"].pk, "destinations": [
        alpha["job"].destinations.first().pk], "schedule": "0 2 * * *", "timezone": "UTC",
        "method": "logical", "backup_type": "full", "compression": "gzip",
        "compression_level": 6}  # fmt: skip
    response = client.post(f"/backups/jobs/{alpha['job'].pk}/edit/", form)
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert BackupJob.objects.get(pk=alpha["job"].pk).source == alpha["source"]
    page = client.get("/backups/sources/new/").content.decode()
    assert "System alpha" in page and "System bravo" not in page
    # Things of no system stay with global managers.
    assert client.get("/backups/destinations/new/").status_code == 403
    assert client.get("/admin/backups/backupjob/").status_code == 302  # not staff: no admin


def test_a_user_with_system_roles_only_gets_403_on_global_pages(world, sam_client):
    for path in ("/backups/destinations/", "/incidents/contacts/", "/drills/coverage/",
                 "/recovery/targets/", "/incidents/new/"):  # fmt: skip
        assert sam_client.get(path).status_code == 403, path


def test_global_roles_keep_every_system(world, viewer_client, operator_client):
    body = viewer_client.get("/backups/sources/").content.decode()
    assert all(f"{n}-db" in body for n in ("alpha", "bravo", "charlie"))
    job = world["charlie"]["job"]
    assert operator_client.post(f"/backups/jobs/{job.pk}/run/").status_code == 302


# --- API ----------------------------------------------------------------------------------


def test_api_lists_and_acts_only_on_the_users_systems(world, sam):
    api = Api(token_for(sam, role="operator"))
    names = {s["name"] for s in api.get("/api/v1/sources/").json()["results"]}
    assert names == {"alpha-db", "bravo-db"}
    jobs = {j["name"] for j in api.get("/api/v1/jobs/").json()["results"]}
    assert jobs == {"alpha-job", "bravo-job"}
    assert api.get(f"/api/v1/sources/{world['charlie']['source'].pk}/").status_code == 404
    assert api.post(f"/api/v1/jobs/{world['alpha']['job'].pk}/run/").status_code == 202
    assert api.post(f"/api/v1/jobs/{world['bravo']['job'].pk}/run/").status_code == 403
    assert api.post(f"/api/v1/jobs/{world['charlie']['job'].pk}/run/").status_code == 404
    body = {"source": world["bravo"]["source"].pk}
    assert api.post("/api/v1/restore-tests/", body).status_code == 403
    assert api.get("/api/v1/destinations/").status_code == 403  # no system: global roles
    me = api.get("/api/v1/me/").json()
    assert me["role"] == "" and set(me["systems"].values()) == {"operator", "viewer"}


def test_api_token_ceiling_still_applies_to_system_roles(world, sam):
    api = Api(token_for(sam, role="viewer"))
    assert api.get("/api/v1/jobs/").status_code == 200
    before = BackupRun.objects.count()
    assert api.post(f"/api/v1/jobs/{world['alpha']['job'].pk}/run/").status_code == 403
    assert BackupRun.objects.count() == before


# --- reports ------------------------------------------------------------------------------


def test_compliance_report_of_a_scoped_user_covers_only_their_systems(world, sam_client):
    response = sam_client.get("/compliance/?date_from=2026-01-01&date_to=2026-12-31")
    assert response.status_code == 200
    body = response.content.decode()
    assert "System alpha, System bravo" in body
    assert "limited to the systems sam holds a role on" in body
    assert "charlie" not in body
    # Asking for a system outside their roles is refused by the form, not reported.
    charlie = world["charlie"]["system"].pk
    refused = sam_client.get(
        f"/compliance/?date_from=2026-01-01&date_to=2026-12-31&systems={charlie}"
    )
    assert "charlie" not in refused.content.decode()
    assert "Select a valid choice" in refused.content.decode()
    # The signed PDF needs the manager role: sam manages nothing.
    pdf = sam_client.get("/compliance/pdf?date_from=2026-01-01&date_to=2026-12-31")
    assert pdf.status_code == 403


def test_a_system_manager_restores_onto_their_source_but_never_free_form(world, db):
    from recovery.restore_targets import NotAllowed, check_allowed

    mia = UserFactory(username="mia")
    SystemRole.objects.create(user=mia, system=world["alpha"]["system"], role="manager")
    check_allowed(mia, source=world["alpha"]["source"], onto_source=True)
    with pytest.raises(NotAllowed):
        check_allowed(mia, source=world["bravo"]["source"], onto_source=True)
    with pytest.raises(NotAllowed):  # a free-form target can name another system's host
        check_allowed(mia, source=world["alpha"]["source"], free_form=True)


# --- drills and incidents -----------------------------------------------------------------


@pytest.fixture
def dr(world):
    """Per system: a drill plan and run, an incident linked to its backup run (with a
    follow-up), an open alert and a maintenance window. Beside them, things that are not of
    one seen system: a plan of no system, a plan on alpha and charlie, an incident linked to
    nothing and one linked to alpha's and charlie's runs."""
    from datetime import timedelta

    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from incidents.models import Alert, FollowUp, IncidentLink, MaintenanceWindow
    from tests.factories import DrillPlanFactory, DrillRunFactory, IncidentFactory

    run_ct = ContentType.objects.get_for_model(BackupRun)
    items = {}

    def incident(title, *runs):
        obj = IncidentFactory(title=title)
        for run in runs:
            IncidentLink.objects.create(incident=obj, content_type=run_ct, object_id=run.pk)
        FollowUp.objects.create(source=obj, text=f"{title} follow-up")
        return obj

    for name in ("alpha", "bravo", "charlie"):
        system = world[name]["system"]
        plan = DrillPlanFactory(name=f"{name}-plan", systems=[system])
        items[name] = {
            "plan": plan,
            "drill": DrillRunFactory(plan=plan),
            "incident": incident(f"{name}-incident", world[name]["run"]),
            "alert": Alert.objects.create(
                key=f"k:{name}", kind="backup", title=f"{name}-alert", system=system
            ),
            "window": MaintenanceWindow.objects.create(
                system=system,
                starts=timezone.now(),
                ends=timezone.now() + timedelta(hours=1),
                reason=f"{name}-window",
            ),
        }
    items["global"] = {
        "plan": DrillPlanFactory(name="global-plan"),
        "incident": incident("global-incident"),
    }
    items["global"]["drill"] = DrillRunFactory(plan=items["global"]["plan"])
    mixed = DrillPlanFactory(name="mixed-plan", systems=[world["alpha"]["system"],
                                                         world["charlie"]["system"]])  # fmt: skip
    items["mixed"] = {
        "plan": mixed,
        "drill": DrillRunFactory(plan=mixed),
        "incident": incident("mixed-incident", world["alpha"]["run"], world["charlie"]["run"]),
    }
    return items


HIDDEN = ("charlie", "global", "mixed")


def test_drill_and_incident_lists_show_only_what_is_all_on_the_users_systems(dr, sam_client):
    pages = {
        "/drills/": "plan",
        "/incidents/": "incident",
        "/incidents/follow-ups/?show=all": "incident follow-up",
        "/incidents/alerts/": "alert",
        "/incidents/maintenance/": "window",
    }
    for path, what in pages.items():
        response = sam_client.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        assert f"alpha-{what}" in body and f"bravo-{what}" in body, path
        for name in HIDDEN:
            assert f"{name}-{what}" not in body, path


def test_drill_and_incident_pages_are_404_outside_the_users_systems(dr, sam_client):
    for name, expected in (("alpha", 200), ("bravo", 200), *((n, 404) for n in HIDDEN)):
        plan, drill, incident = (dr[name][k] for k in ("plan", "drill", "incident"))
        for path in (
            f"/drills/plans/{plan.pk}/",
            f"/drills/runs/{drill.pk}/",
            f"/drills/runs/{drill.pk}/report/",
            f"/incidents/{incident.identifier}/",
            f"/incidents/{incident.identifier}/report/",
            f"/incidents/{incident.identifier}/report.md",
        ):
            assert sam_client.get(path).status_code == expected, (name, path)


def test_an_operator_of_a_writes_as_own_incidents_and_drills_not_bs(dr, sam_client):
    from incidents.models import Incident, TimelineEntry

    for name, status in (("alpha", 302), ("bravo", 403), ("charlie", 404)):
        ident = dr[name]["incident"].identifier
        answer = sam_client.post(f"/incidents/{ident}/timeline/", {"text": "seen", "at": ""})
        assert answer.status_code == status, name
        answer = sam_client.post(f"/incidents/{ident}/status/", {"status": "mitigated"})
        assert answer.status_code == status, name
        answer = sam_client.post(f"/incidents/alerts/{dr[name]['alert'].pk}/silence/",
                                 {"reason": "on it", "for_hours": ""})  # fmt: skip
        assert answer.status_code == status, name
        answer = sam_client.post(f"/incidents/maintenance/{dr[name]['window'].pk}/end/")
        assert answer.status_code == status, name
        answer = sam_client.post(f"/drills/runs/{dr[name]['drill'].pk}/abort/")
        assert answer.status_code == status, name
    # The pages offer the actions where the user may take them.
    for name, shown in (("alpha", True), ("bravo", False)):
        ident = dr[name]["incident"].identifier
        page = sam_client.get(f"/incidents/{ident}/").content.decode()
        assert (f"/incidents/{ident}/edit/" in page) is shown, name
        page = sam_client.get(f"/drills/plans/{dr[name]['plan'].pk}/").content.decode()
        assert (f"/drills/plans/{dr[name]['plan'].pk}/start/" in page) is shown, name
    statuses = dict(Incident.objects.values_list("title", "status"))
    assert statuses["alpha-incident"] == "mitigated" and statuses["bravo-incident"] == "open"
    assert not TimelineEntry.objects.filter(incident=dr["bravo"]["incident"], text="seen")
    assert sam_client.post("/incidents/new/", {"title": "x"}).status_code == 403


def test_a_run_page_lists_only_the_linked_incidents_the_user_sees(world, dr, sam_client):
    page = sam_client.get(f"/backups/runs/{world['alpha']['run'].pk}/").content.decode()
    assert "alpha-incident" in page and "mixed-incident" not in page  # mixed: charlie's too


def test_an_operator_links_only_runs_of_systems_they_operate(world, dr, sam_client):
    from django.contrib.contenttypes.models import ContentType

    ident = dr["alpha"]["incident"].identifier
    page = sam_client.get(f"/incidents/{ident}/").content.decode()
    assert "alpha-job" in page and "charlie-job" not in page  # the picker names no other
    ct = ContentType.objects.get_for_model(BackupRun).pk
    for name in ("bravo", "charlie"):
        body = {"content_type": ct, "object_id": world[name]["run"].pk, "note": ""}
        sam_client.post(f"/incidents/{ident}/links/", body)
    assert dr["alpha"]["incident"].links.count() == 1  # still seen by sam: alpha only


def test_maintenance_windows_are_added_only_on_systems_the_user_operates(world, dr, sam_client):
    from incidents.models import MaintenanceWindow

    page = sam_client.get("/incidents/maintenance/").content.decode()
    assert ">System alpha</option>" in page and ">System bravo</option>" not in page
    for name, status in (("alpha", 302), ("bravo", 400)):
        body = {"system": world[name]["system"].pk, "starts": "2030-01-01 10:00",
                "ends": "2030-01-01 11:00", "reason": f"new-{name}"}  # fmt: skip
        assert sam_client.post("/incidents/maintenance/", body).status_code == status, name
    assert list(MaintenanceWindow.objects.filter(reason__startswith="new-").values_list(
        "reason", flat=True)) == ["new-alpha"]  # fmt: skip


def test_a_drill_manager_of_a_plans_only_on_a(world, dr, db):
    mia = UserFactory(username="mia")
    SystemRole.objects.create(user=mia, system=world["alpha"]["system"], role="manager")
    SystemRole.objects.create(user=mia, system=world["bravo"]["system"], role="viewer")
    client = Client()
    client.force_login(mia)
    assert client.get(f"/drills/plans/{dr['alpha']['plan'].pk}/edit/").status_code == 200
    assert client.get(f"/drills/plans/{dr['bravo']['plan'].pk}/edit/").status_code == 403
    assert client.post(f"/drills/plans/{dr['bravo']['plan'].pk}/delete/").status_code == 403
    assert client.get(f"/drills/plans/{dr['mixed']['plan'].pk}/edit/").status_code == 404
    page = client.get("/drills/plans/new/").content.decode()
    assert "System alpha" in page and "System bravo" not in page


def test_api_incidents_and_follow_ups_are_scoped_too(world, dr, sam):
    api = Api(token_for(sam, role="operator"))
    titles = {i["title"] for i in api.get("/api/v1/incidents/").json()["results"]}
    assert titles == {"alpha-incident", "bravo-incident"}
    for name, status in (("alpha", 200), ("charlie", 404), ("global", 404)):
        ident = dr[name]["incident"].identifier
        assert api.get(f"/api/v1/incidents/{ident}/").status_code == status, name
    texts = {f["text"] for f in api.get("/api/v1/follow-ups/").json()["results"]}
    assert texts == {"alpha-incident follow-up", "bravo-incident follow-up"}
    body = {"title": "Declared by sam", "severity": "SEV2"}
    assert api.post("/api/v1/incidents/", body).status_code == 403  # of no system yet
