"""Every URL, walked as a manager of one system only, asking for the other systems' objects
(the demo's, id 1): nothing is shown, nothing is changed (issue 21, roles per system)."""

import pytest
from django.test import Client

from backups.models import BackupJob, Source, System, SystemRole
from dr_portal.models import AuditEntry
from tests.factories import BackupJobFactory, SourceFactory, UserFactory
from tests.security.test_web_hardening import OWN_RULES, demo, every_path  # noqa: F401

pytestmark = pytest.mark.slow  # ~200 paths, twice


@pytest.fixture
def zulu_manager(demo):  # noqa: F811 - the demo fixture, imported
    """Manager of a system of their own (Zulu), no global role, no role on the demo's systems."""
    zulu = System.objects.create(name="Zulu")
    BackupJobFactory(source=SourceFactory(system=zulu, name="zulu-only-db"), name="zulu-job")
    user = UserFactory(username="zed")
    SystemRole.objects.create(user=user, system=zulu, role="manager")
    client = Client()
    client.force_login(user)
    return client


def test_a_manager_of_one_system_sees_and_changes_nothing_of_the_others(zulu_manager):
    others = [*Source.objects.exclude(name="zulu-only-db").values_list("name", flat=True)]
    others += System.objects.exclude(name="Zulu").values_list("name", flat=True)
    chrome = Client().get("/accounts/login/").content.decode()  # "DR Portal" is in every title
    others = [name for name in others if name not in chrome]
    assert others
    jobs_before = list(BackupJob.objects.order_by("pk").values())
    audit_before = AuditEntry.objects.count()
    checked, opened, leaks = 0, 0, []
    for path in every_path():
        if path.startswith(("/static/", "/accounts/logout/", "/admin/logout/")):
            continue
        for method in ("get", "post"):
            response = getattr(zulu_manager, method)(path)
            status, checked = response.status_code, checked + 1
            opened += method == "get" and status == 200
            if path in OWN_RULES:
                allowed = OWN_RULES[path] | {405}
            elif path.startswith("/drills/ack/"):
                allowed = {404}
            elif path.startswith("/admin/"):
                allowed = {302}  # to the admin's login: not staff
            else:
                # 200 shows the user's own systems only (checked below); a POST answered
                # 200 or 400 is a refused form or a page that changes nothing (checked after).
                allowed = {200, 302, 400, 403, 404, 405, 415}  # 415: the API wants JSON
            login = status == 302 and "/accounts/login/" in response.get("Location", "")
            if status not in allowed or login:
                leaks.append(f"{method.upper()} {path} -> {status}")
            body = response.content.decode(errors="replace")
            shown = [name for name in others if name in body]
            if shown:
                leaks.append(f"{method.upper()} {path} shows {shown[:3]}")
    assert checked > 150
    assert opened > 20  # the scoped pages did open (for Zulu), not only refuse
    assert leaks == [], "\n".join(leaks)
    assert list(BackupJob.objects.order_by("pk").values()) == jobs_before
    # Only reads were recorded (API calls log), no change of the demo's rows.
    changes = AuditEntry.objects.order_by("pk")[audit_before:]
    assert not [e for e in changes if e.action in ("create", "update", "delete")]
    # Their own system is theirs: the list shows it.
    assert b"zulu-only-db" in zulu_manager.get("/backups/sources/").content
