"""Shared fixtures: personas (anonymous, viewer, operator, manager) and their clients."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

PASSWORD = "correct-horse-battery-staple"


def make_user(username, role=None, **extra):
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, **extra)
    if role:
        if not Group.objects.filter(name=role).exists():
            # A transactional test before this one flushed the groups the migration made.
            from dr_portal.setup import ensure_role_permissions

            ensure_role_permissions()
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer(db):
    return make_user("vera", "viewer")


@pytest.fixture
def operator(db):
    return make_user("otto", "operator")


@pytest.fixture
def manager(db):
    return make_user("mona", "manager")


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def _client_for(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(viewer):
    return _client_for(viewer)


@pytest.fixture
def operator_client(operator):
    return _client_for(operator)


@pytest.fixture
def manager_client(manager):
    return _client_for(manager)


@pytest.fixture
def superuser_client(superuser):
    return _client_for(superuser)
