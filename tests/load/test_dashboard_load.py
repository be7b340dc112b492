"""The portal under 50 concurrent dashboard readers while a real cluster runs backups.

gunicorn (3 sync workers, as `manage.py serve` runs it) and a cluster serve the test
database; every job is kept busy with back-to-back backups while 50 logged-in viewers read
"/" over keep-alive connections. No request may fail; the latency figures are written to
test-artifacts/dashboard_load.json (the full measurement is bench/dashboard_load.py, recorded
in bench/RESULTS.md).
"""

import json
import logging

import pytest
from django.contrib.auth.models import User

from backups import services
from backups.models import BackupRun
from bench.dashboard_load import BackupFeeder, hammer, make_sources, session_cookies
from tests.e2e.conftest import ARTIFACTS
from tests.factories import UserFactory
from tests.support.cluster import running_cluster
from tests.support.portal import running_portal

pytestmark = [pytest.mark.load, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

READERS = 50


def test_fifty_dashboard_readers_while_backups_run_get_no_errors(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="django-q")
    jobs = make_sources(tmp_path, 5)
    for job in jobs:
        assert services.backup_now(job).status == "succeeded"
    UserFactory(username="vera", role="viewer")
    cookies = session_cookies(User.objects.get(username="vera"), READERS)

    with running_cluster(workers=2), running_portal(workers=3) as portal:
        hammer(portal.base_url, cookies, 5, 1)  # warm-up
        before = BackupRun.objects.filter(finished__isnull=False).count()
        feeder = BackupFeeder(jobs)
        feeder.start()
        try:
            result = hammer(portal.base_url, cookies, READERS, 6)
        finally:
            feeder.stop.set()
            feeder.join()
        result["backups_finished_during"] = (
            BackupRun.objects.filter(finished__isnull=False).count() - before
        )

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dashboard_load.json").write_text(json.dumps(result, indent=2))
    print("dashboard under load:", json.dumps(result))
    assert result["errors"] == 0, result["error_samples"]
    assert result["requests"] >= READERS, result
    assert result["backups_finished_during"] > 0, result  # backups really ran meanwhile
    assert not BackupRun.objects.filter(status="failed").exists()
