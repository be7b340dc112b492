"""Roles are groups with permissions; views check them, not only the buttons."""

from django.contrib.auth.models import Group

from dr_portal.lib import roles
from dr_portal.models import KeyEscrow
from tests.factories import PASSWORD


def test_role_groups_exist_with_growing_permissions(db):
    counts = {g.name: g.permissions.count() for g in Group.objects.filter(name__in=roles.ORDER)}
    assert set(counts) == {"viewer", "operator", "manager"}
    assert 0 < counts["viewer"] < counts["manager"]
    assert counts["viewer"] <= counts["operator"] <= counts["manager"]
    viewer = Group.objects.get(name="viewer")
    assert all(p.codename.startswith("view_") for p in viewer.permissions.all())
    for role in roles.ORDER:
        labels = set(
            Group.objects.get(name=role).permissions.values_list(
                "content_type__app_label", flat=True
            )
        )
        assert labels == {"backups", "recovery", "drills", "incidents", "dr_portal"}, role
    operator = Group.objects.get(name="operator")
    assert operator.permissions.filter(codename="add_backuprun").exists()
    assert not operator.permissions.filter(codename="change_rtotarget").exists()


def test_higher_roles_include_lower(viewer, operator, manager, superuser):
    assert roles.user_roles(viewer) == {"viewer"}
    assert roles.user_roles(operator) == {"viewer", "operator"}
    assert roles.user_roles(manager) == {"viewer", "operator", "manager"}
    assert roles.has_role(superuser, "manager")


def test_viewer_and_operator_cannot_confirm_key_escrow(viewer_client, operator_client, db):
    for client in (viewer_client, operator_client):
        assert client.post("/escrow/confirm/", {"where": "vault"}).status_code == 403
    assert not KeyEscrow.objects.exists()


def test_manager_confirms_key_escrow_and_the_warning_goes(manager_client, db):
    assert b"Escrow the encryption key" in manager_client.get("/").content
    response = manager_client.post("/escrow/confirm/", {"where": "ops password manager"})
    assert response.status_code == 302
    assert KeyEscrow.objects.get().where == "ops password manager"
    assert b"Escrow the encryption key" not in manager_client.get("/").content


def test_escrow_needs_a_place_and_a_post(manager_client, db):
    manager_client.post("/escrow/confirm/", {"where": "  "})
    assert not KeyEscrow.objects.exists()
    assert manager_client.get("/escrow/confirm/").status_code == 405


def test_login_page_logs_in_and_out(client, viewer):

    response = client.post("/accounts/login/", {"username": "vera", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client, viewer):
    response = client.post("/accounts/login/", {"username": "vera", "password": "nope"})
    assert b"did not match" in response.content
