"""Every view as anonymous, viewer, operator and manager, plus the wrong method; query counts."""

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.models import Contact, FollowUp, Incident, TimelineEntry, Webhook
from tests.factories import ContactFactory, IncidentFactory

ROLES = ["viewer", "operator", "manager"]
RANK = {"anonymous": -1, "viewer": 0, "operator": 1, "manager": 2}


@pytest.fixture
def world(db):
    incident = IncidentFactory(
        title="Pool exhausted", detected_at=timezone.now() - timedelta(hours=1)
    )
    entry = TimelineEntry.objects.create(incident=incident, text="typo")
    item = FollowUp.objects.create(
        text="monitor",
        content_type=ContentType.objects.get_for_model(Incident),
        object_id=incident.pk,
    )
    contact = ContactFactory(role="DBA", name="Dee", email="dee@example.com", on_call="primary")
    hook = Webhook.objects.create(name="ops", url="https://hooks.example.com/x")
    return {
        "i": incident.identifier,
        "entry": entry.pk,
        "item": item.pk,
        "contact": contact.pk,
        "hook": hook.pk,
    }


# (url name, args from world, minimum role, method, post data)
READ = [
    ("index", []),
    ("detail", ["i"]),
    ("report", ["i"]),
    ("markdown", ["i"]),
    ("followups", []),
    ("contacts", []),
    ("contacts_export", []),
    ("alerts", []),
]
FORMS = [
    ("new", [], "operator"),
    ("edit", ["i"], "operator"),
    ("contact_new", [], "manager"),
    ("contact_edit", ["contact"], "manager"),
    ("webhook_new", [], "manager"),
]
ACTIONS = [
    ("status", ["i"], "operator", {"status": "mitigated"}),
    ("timeline_add", ["i"], "operator", {"text": "restarted"}),
    ("timeline_delete", ["i", "entry"], "operator", {}),
    ("followup_add", ["i"], "operator", {"text": "x"}),
    ("followup_toggle", ["item"], "operator", {}),
    ("link_add", ["i"], "operator", {"content_type": "1", "object_id": "1"}),
    ("contact_delete", ["contact"], "manager", {}),
    ("contacts_import", [], "manager", {}),
    ("webhook_delete", ["hook"], "manager", {}),
    ("send_test", [], "manager", {}),
]


def _client(request, role):
    if role == "anonymous":
        return Client()
    return request.getfixturevalue(f"{role}_client")


def _url(world, name, args):
    return reverse(f"incidents:{name}", args=[world[a] for a in args])


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
@pytest.mark.parametrize("name,args", READ)
def test_read_views(request, world, role, name, args):
    response = _client(request, role).get(_url(world, name, args))
    if role == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("role", ["anonymous", "viewer"])
def test_pdf_view_needs_login(request, world, role):
    response = _client(request, role).get(_url(world, "pdf", ["i"]))
    assert response.status_code == (302 if role == "anonymous" else 200)


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
@pytest.mark.parametrize("name,args,needs", FORMS)
def test_form_views(request, world, role, name, args, needs):
    response = _client(request, role).get(_url(world, name, args))
    if role == "anonymous":
        assert response.status_code == 302
    else:
        assert response.status_code == (200 if RANK[role] >= RANK[needs] else 403)


@pytest.mark.parametrize("role", ["anonymous", *ROLES])
@pytest.mark.parametrize("name,args,needs,data", ACTIONS)
def test_actions(request, world, role, name, args, needs, data, sync_queue):
    response = _client(request, role).post(_url(world, name, args), data)
    if role == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    elif RANK[role] >= RANK[needs]:
        assert response.status_code in (200, 302, 400)
        assert response.status_code != 403
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("name,args,needs,data", ACTIONS)
def test_actions_refuse_get(manager_client, world, name, args, needs, data):
    assert manager_client.get(_url(world, name, args)).status_code == 405


@pytest.mark.parametrize("name,args", READ)
def test_read_views_refuse_post(manager_client, world, name, args):
    assert manager_client.post(_url(world, name, args)).status_code == 405


def test_viewer_changes_nothing(viewer_client, world):
    for name, args, _needs, data in ACTIONS:
        viewer_client.post(_url(world, name, args), data)
    assert TimelineEntry.objects.count() == 1
    assert FollowUp.objects.filter(done=False).count() == 1
    assert Contact.objects.count() == 1 and Webhook.objects.count() == 1


def test_operator_cannot_manage_contacts(operator_client, world):
    response = operator_client.post(
        reverse("incidents:contact_new"), {"role": "DBA", "name": "Sneaky"}
    )
    assert response.status_code == 403
    assert not Contact.objects.filter(name="Sneaky").exists()


def test_unknown_incident_is_404(viewer_client, db):
    assert viewer_client.get(reverse("incidents:detail", args=["INC-1999-001"])).status_code == 404


def _many_incidents(n):
    ct = ContentType.objects.get_for_model(Incident)
    for k in range(n):
        incident = IncidentFactory(title=f"incident {k}")
        FollowUp.objects.create(text="x", content_type=ct, object_id=incident.pk)
        TimelineEntry.objects.create(incident=incident, text="y")


def _count(client, url, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("name", ["index", "followups", "contacts", "alerts"])
def test_list_pages_pin_query_counts(viewer_client, db, name, django_assert_max_num_queries):
    url = reverse(f"incidents:{name}")
    _many_incidents(2)
    few = _count(viewer_client, url, django_assert_max_num_queries)
    _many_incidents(20)
    for k in range(10):
        ContactFactory(role="Other", name=f"c{k}")
    assert _count(viewer_client, url, django_assert_max_num_queries) == few
    assert few <= 13  # 12 + the destination banner's one query


def test_detail_page_query_count_does_not_grow(viewer_client, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    incident = IncidentFactory(title="big")
    ct = ContentType.objects.get_for_model(Incident)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            viewer_client.get(incident.get_absolute_url())
        return len(ctx.captured_queries)

    count()  # warm: the readiness cache's version started, as for the second count
    before = count()
    for k in range(15):
        TimelineEntry.objects.create(incident=incident, text=f"t{k}")
        FollowUp.objects.create(
            text=f"f{k}",
            content_type=ct,
            object_id=incident.pk,
            owner_contact=ContactFactory(role="R", name=f"n{k}"),
        )
    assert count() == before
