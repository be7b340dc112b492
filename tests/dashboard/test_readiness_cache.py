"""The readiness cache (recovery.readiness._evidence): a write shows at the next request, time
alone still moves verdicts, and a scoped user's cached view holds only their sources."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backups.models import BackupCopy, SystemRole
from dr_portal.runs import RunStatus
from recovery.readiness import AT_RISK, BREACHED, source_readiness
from tests.factories import (
    BackupRunFactory,
    DestinationFactory,
    RestoreTestFactory,
    SourceFactory,
    SystemFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def dest(db, tmp_path):
    return DestinationFactory(name="local", kind="local", path=str(tmp_path))


@pytest.fixture
def src(db, tmp_path):
    with time_machine.travel(T0 - timedelta(days=30), tick=False):
        return SourceFactory(
            name="app-db", kind="sqlite", path=str(tmp_path / "x.db"), data_class="critical"
        )


def backup(source, dest, taken):
    return BackupRunFactory(
        good=True,
        source=source,
        destination=dest,
        data_taken_at=taken,
        finished=taken + timedelta(minutes=1),
        bytes_stored=1000,
        live_copy__location=f"x-{taken:%H%M}",
    )


def ready(source):
    return source_readiness([source])[source.pk]


def history_reads(queries) -> int:
    return sum(
        "backups_backuprun" in q["sql"] or "recovery_restoretest" in q["sql"] for q in queries
    )


def test_a_second_read_comes_from_the_cache(src, dest):
    with time_machine.travel(T0, tick=False):
        backup(src, dest, T0 - timedelta(minutes=10))
        first = ready(src)
        with CaptureQueriesContext(connection) as hit:
            assert ready(src) == first
    assert history_reads(hit.captured_queries) == 0


def test_time_alone_turns_a_source_at_risk_then_breached_without_a_write(src, dest):
    """The cached rows are timestamps: ages and verdicts are computed with each read's clock."""
    with time_machine.travel(T0, tick=False):
        backup(src, dest, T0 - timedelta(minutes=59, seconds=40))  # critical: RPO target 1 h
        r = ready(src)
        assert (r.rpo_state, r.verdict) == (AT_RISK, AT_RISK)
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        with CaptureQueriesContext(connection) as hit:
            r = ready(src)
    assert (r.rpo_state, r.verdict, r.rpo_now) == (
        BREACHED,
        BREACHED,
        timedelta(minutes=60, seconds=10),
    )
    assert r.reasons[0].startswith("RPO 1h")
    assert history_reads(hit.captured_queries) == 0  # no write: the cache answered


def test_a_new_backup_shows_at_the_next_read(src, dest):
    with time_machine.travel(T0, tick=False):
        backup(src, dest, T0 - timedelta(hours=3))
        assert ready(src).verdict == BREACHED
        backup(src, dest, T0 - timedelta(minutes=5))
        assert ready(src).rpo_now == timedelta(minutes=5)


def test_a_finished_restore_test_shows_at_the_next_read(src, dest):
    """Run.finish is an update(), which no model signal sees: it bumps the version itself."""
    with time_machine.travel(T0, tick=False):
        run = backup(src, dest, T0 - timedelta(minutes=5))
        test = RestoreTestFactory(source=src, backup_run=run)
        assert ready(src).last_test_id is None
        test.finish(RunStatus.FAILED, "restored database is empty")
        r = ready(src)
    assert (r.last_test_id, r.last_test_status, r.verdict) == (test.pk, "failed", BREACHED)


def test_a_lost_copy_shows_at_the_next_read(src, dest):
    with time_machine.travel(T0, tick=False):
        backup(src, dest, T0 - timedelta(minutes=5))
        assert ready(src).rpo_now == timedelta(minutes=5)
        BackupCopy.objects.get(run__source=src).mark_lost("artifact missing")
        r = ready(src)
    assert (r.rpo_now, r.verdict) == (None, BREACHED)


def test_a_deleted_run_shows_at_the_next_read(src, dest):
    with time_machine.travel(T0, tick=False):
        run = backup(src, dest, T0 - timedelta(minutes=5))
        assert ready(src).newest_backup_id == run.pk
        run.delete()
        assert ready(src).newest_backup_id is None


def test_a_scoped_users_cached_dashboard_never_shows_other_sources(dest, viewer_client):
    """Cached for a global viewer first and for the scoped user next, and the other way round:
    each sees its own sources (the key names the sources asked for)."""
    with time_machine.travel(T0, tick=False):
        mine = SourceFactory(system=SystemFactory(name="Mine"), name="mine-db")
        other = SourceFactory(system=SystemFactory(name="Other"), name="other-db")
        runs = {source: backup(source, dest, T0 - timedelta(minutes=5)) for source in (mine, other)}
        sam = UserFactory(username="sam")
        SystemRole.objects.create(user=sam, system=mine.system, role="viewer")
        sam_client = Client()
        sam_client.force_login(sam)
        for _ in range(2):  # cold, then from the cache; the scoped user first
            scoped = sam_client.get("/").content.decode()
            everything = viewer_client.get("/").content.decode()
            assert f'id="source-{mine.pk}"' in scoped
            assert f'id="source-{other.pk}"' not in scoped
            assert "other-db" not in scoped
            # Not the scoped user's entry either: the other source's backup is there.
            assert f'id="source-{other.pk}"' in everything
            assert reverse("backups:run_detail", args=[runs[other].pk]) in everything


def test_a_finished_restore_test_changes_the_dashboard_and_metrics_at_the_next_request(
    src, dest, viewer_client, settings
):
    settings.DR_METRICS_TOKEN = "t0ken"

    def success_gauge():
        text = viewer_client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
        return next(x for x in text.splitlines() if x.startswith("dr_last_restore_test_success{"))

    def row():
        return f'id="source-{src.pk}" data-verdict="%s"'

    with time_machine.travel(T0, tick=False):
        run = backup(src, dest, T0 - timedelta(minutes=5))
        test = RestoreTestFactory(source=src, backup_run=run)
        assert row() % AT_RISK in viewer_client.get("/").content.decode()  # never tested
        assert success_gauge().endswith(" NaN")
        test.finish(RunStatus.FAILED, "restored database is empty")
        after = viewer_client.get("/").content.decode()
        assert success_gauge().endswith(" 0")
    assert row() % BREACHED in after
    assert f"newest restore test #{test.pk} failed" in after
