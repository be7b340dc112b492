"""Changes through the portal, the admin and commands land in the audit trail."""

from django.contrib.auth.models import Group
from django.core.management import call_command

from dr_portal.audit import AuditContext, use_context
from dr_portal.models import AuditEntry


def test_admin_create_update_delete_are_audited_with_actor_and_address(superuser_client, superuser):
    response = superuser_client.post(
        "/admin/auth/group/add/", {"name": "auditors"}, REMOTE_ADDR="10.1.2.3"
    )
    assert response.status_code == 302
    group = Group.objects.get(name="auditors")
    superuser_client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": "auditors-2"}, REMOTE_ADDR="10.1.2.3"
    )
    superuser_client.post(
        f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}, REMOTE_ADDR="10.1.2.3"
    )

    entries = list(
        AuditEntry.objects.filter(object_type="auth.group", object_id=str(group.pk)).order_by("pk")
    )
    assert [e.action for e in entries] == ["create", "update", "delete"]
    assert {e.actor_id for e in entries} == {superuser.pk}
    assert {e.source for e in entries} == {"admin"}
    assert {e.address for e in entries} == {"10.1.2.3"}
    assert entries[1].changes == {"name": ["auditors", "auditors-2"]}


def test_command_changes_are_audited_as_the_command(db):
    with use_context(AuditContext(actor_name="ops (manage.py shell)", source="command")):
        Group.objects.create(name="from-a-command")
    entry = AuditEntry.objects.get(object_repr="from-a-command")
    assert entry.source == "command" and entry.actor_name.startswith("ops")


def test_audit_log_is_read_only_in_admin(superuser_client, db):
    Group.objects.create(name="x")
    entry = AuditEntry.objects.first()
    assert superuser_client.get("/admin/dr_portal/auditentry/").status_code == 200
    assert (
        superuser_client.get("/admin/dr_portal/auditentry/?source__exact=system").status_code == 200
    )
    assert superuser_client.get("/admin/dr_portal/auditentry/add/").status_code == 403
    assert (
        superuser_client.post(
            f"/admin/dr_portal/auditentry/{entry.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_user_password_never_lands_in_the_audit_trail(db):
    from django.contrib.auth.models import User

    user = User.objects.create_user("pat", password="hunter2-very-secret")
    user.set_password("another-secret-value")
    user.save()
    text = " ".join(str(e.changes) for e in AuditEntry.objects.all())
    assert "pbkdf2" not in text and "hunter2" not in text


def test_rotate_keys_is_audited(db):
    call_command("rotate_keys")
    assert AuditEntry.objects.filter(action="rotate_keys").exists()
