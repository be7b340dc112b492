"""Admin pages of every incidents model load, and secrets stay hidden there."""

import pytest
from django.apps import apps
from django.urls import reverse

from incidents.models import Webhook
from tests.factories import ContactFactory, IncidentFactory

MODELS = [m._meta.model_name for m in apps.get_app_config("incidents").get_models()]


@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist_and_add_pages_load(superuser_client, model):
    IncidentFactory(title="x")
    assert superuser_client.get(reverse(f"admin:incidents_{model}_changelist")).status_code == 200
    add = superuser_client.get(reverse(f"admin:incidents_{model}_add"))
    assert add.status_code in (200, 403)


def test_admin_never_shows_webhook_urls(superuser_client, db):
    hook = Webhook.objects.create(name="ops", url="https://hooks.example.com/s3cr3t")
    contact = ContactFactory(
        role="DBA", name="Ann", webhook_url="https://hooks.example.com/pers0nal"
    )
    for url in (
        reverse("admin:incidents_webhook_change", args=[hook.pk]),
        reverse("admin:incidents_contact_change", args=[contact.pk]),
    ):
        body = superuser_client.get(url).content.decode()
        assert "s3cr3t" not in body and "pers0nal" not in body


def test_admin_edits_webhook_without_retyping_url(superuser_client, db):
    hook = Webhook.objects.create(name="ops", url="https://hooks.example.com/s3cr3t")
    response = superuser_client.post(
        reverse("admin:incidents_webhook_change", args=[hook.pk]),
        {"name": "ops-renamed", "active": "on", "url": ""},
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.name == "ops-renamed" and hook.url.reveal() == "https://hooks.example.com/s3cr3t"


def test_admin_edits_contact_without_losing_webhook(superuser_client, db):
    contact = ContactFactory(
        role="DBA", name="Ann", webhook_url="https://hooks.example.com/pers0nal"
    )
    response = superuser_client.post(
        reverse("admin:incidents_contact_change", args=[contact.pk]),
        {
            "role": "DBA",
            "name": "Ann B",
            "phone": "",
            "email": "",
            "on_call": "",
            "notes": "",
            "webhook_url": "",
        },
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert (
        contact.name == "Ann B"
        and contact.webhook_url.reveal() == "https://hooks.example.com/pers0nal"
    )
