"""Markers that come with a fixture: a test that uses a fixture needing an outside part is
marked for it, so `-m "not postgres"` or `-m "not slow"` deselects it without the test
repeating what its fixtures need.

    @pytest.fixture
    @needs("postgres")
    def pg_db(): ...

The marks are added at collection (tests/conftest.py), where `-m` selects; a marker
applied while a fixture runs would come too late to deselect anything.
"""

import pytest


def needs(*markers: str):
    """Mark every test that uses the decorated fixture (directly or through another)."""

    def decorate(fixture_function):
        fixture_function.dr_markers = markers
        return fixture_function

    return decorate


def add_fixture_markers(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name in info.names_closure:
            defs = info.name2fixturedefs.get(name)
            if not defs:
                continue
            for marker in getattr(defs[-1].func, "dr_markers", ()):
                item.add_marker(marker)
