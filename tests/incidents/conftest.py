"""Fixtures for the incidents tests: django-q2 in sync mode, on-call contacts, a mail outbox."""

import pytest

from incidents.models import Contact


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Persona users are created per test; PBKDF2's 1M rounds would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sync_queue(monkeypatch, django_capture_on_commit_callbacks):
    """Tasks enqueued after commit run inline when the captured callbacks are executed."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)

    class Runner:
        def __call__(self, fn, *args, **kwargs):
            with django_capture_on_commit_callbacks(execute=True):
                return fn(*args, **kwargs)

    return Runner()


@pytest.fixture
def oncall(db):
    primary = Contact.objects.create(
        role="On-Call", name="Pat Primary", email="pat@example.com", on_call="primary"
    )
    secondary = Contact.objects.create(
        role="On-Call", name="Sam Second", email="sam@example.com", on_call="secondary"
    )
    Contact.objects.create(role="Manager", name="Quiet Manager", email="boss@example.com")
    return primary, secondary


@pytest.fixture
def make_incident(db):
    from datetime import timedelta

    from django.utils import timezone

    from incidents.models import Incident

    def make(**fields):
        now = timezone.now()
        fields.setdefault("title", "Database connection pool exhausted")
        fields.setdefault("summary", "API down for 18 minutes")
        fields.setdefault("detected_at", now - timedelta(hours=1))
        return Incident.objects.create(**fields)

    return make
