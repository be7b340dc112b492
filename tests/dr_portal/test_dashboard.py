"""The readiness dashboard: personas, figures, colours and evidence ages, htmx fragment."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from dr_portal import readiness
from dr_portal.runs import RunStatus
from tests.dr_portal import readiness_data as data

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_dashboard_renders_world(viewer_client, tmp_path):
    with time_machine.travel(T0, tick=False):
        data.world(tmp_path, 3, 10, now=T0)
        response = viewer_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "src-000" in html
    import shutil

