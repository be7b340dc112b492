"""Fixtures for the incidents tests: on-call contacts and incidents (sync_queue is in tests/conftest.py)."""

import pytest

from tests.factories import ContactFactory, IncidentFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(fast_password_hashing):
    """Every test here: the root fixture's fast hashing (personas are made per test)."""


@pytest.fixture
def oncall(db):
    primary = ContactFactory(
        role="On-Call", name="Pat Primary", email="pat@example.com", on_call="primary"
    )
    secondary = ContactFactory(
        role="On-Call", name="Sam Second", email="sam@example.com", on_call="secondary"
    )
    ContactFactory(role="Manager", name="Quiet Manager", email="boss@example.com")
    return primary, secondary


@pytest.fixture
def make_incident(db):
    """make(**fields): an incident detected an hour ago, with a title and a summary."""

    def make(**fields):
        return IncidentFactory(recent=True, **fields)

    return make
