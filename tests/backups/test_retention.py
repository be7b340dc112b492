"""Retention: the pure policy, and apply() deleting real files (storage first, then catalog)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse

from backups import retention, services, tasks
from backups.models import BackupCopy, BackupRun
from backups.retention import Item, Policy, plan
from dr_portal.models import AuditEntry
from dr_portal.runs import RunStatus
from tests.factories import RestoreTestFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def items(ages_days, source=1, storage_class=""):
    return [
        Item(
            copy_id=i + 1,
            run_id=100 + i,
            source_id=source,
            created=NOW - timedelta(days=age),
            storage_class=storage_class,
        )
        for i, age in enumerate(ages_days)
    ]


def deleted(decisions):
    return sorted(d.item.run_id for d in decisions if d.delete)


def test_keep_last_and_keep_days_both_must_expire():
    got = plan(items([1, 2, 3, 10, 20]), Policy(keep_days=7, keep_last=3), now=NOW)
    assert deleted(got) == [103, 104]
    got = plan(items([10, 20, 30, 40]), Policy(keep_days=7, keep_last=3), now=NOW)
    assert deleted(got) == [103]  # all old, but the newest three stay


def test_young_copies_beyond_keep_last_stay():
    got = plan(items([1, 2, 3, 4, 5]), Policy(keep_days=7, keep_last=2), now=NOW)
    assert deleted(got) == []
    assert {d.reason for d in got if d.item.run_id == 104} == {"younger than 7 days"}


def test_keep_last_zero_still_keeps_the_newest():
    got = plan(items([30, 40]), Policy(keep_days=7, keep_last=0), now=NOW)
    assert deleted(got) == [101]


def test_groups_are_per_source():
    got = plan(
        items([30, 40], source=1) + [Item(9, 900, 2, NOW - timedelta(days=50))],
        Policy(keep_days=7, keep_last=1),
        now=NOW,
    )
    assert deleted(got) == [101]  # source 2's only copy stays


def test_protected_and_in_use_runs_stay():
    got = plan(
        items([1, 30, 40, 50]),
        Policy(keep_days=7, keep_last=1),
        now=NOW,
        protected={102: "newest backup that passed a restore test"},
        in_use={103},
    )
    assert deleted(got) == [101]
    reasons = {d.item.run_id: d.reason for d in got}
    assert reasons[102] == "newest backup that passed a restore test"
    assert reasons[103] == "being read by a restore or restore test"


def test_archive_minimum_storage_is_respected_and_shown():
    policy = Policy(keep_days=7, keep_last=1, minimum_storage=timedelta(days=90))
    got = plan(items([1, 30, 100], storage_class="GLACIER"), policy, now=NOW)
    assert deleted(got) == [102]
    held = next(d for d in got if d.item.run_id == 101)
    assert "GLACIER minimum storage of 90 days" in held.reason
    assert held.not_before == NOW - timedelta(days=30) + timedelta(days=90)


# --- against the catalog and real files -------------------------------------------------
def _backups(job, n):
    runs = []
    for _ in range(n):
        run = services.start_run(job, "manual")
        tasks.run_backup(run.pk)
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, run.error
        runs.append(run)
    return runs


def _age(run, days):
    when = NOW - timedelta(days=days)
    BackupRun.objects.filter(pk=run.pk).update(
        finished=when, started=when - timedelta(seconds=5), data_taken_at=when, queued=when
    )
    BackupCopy.objects.filter(run=run).update(created=when)


@pytest.fixture
def aged(job, local_dest):
    local_dest.keep_days, local_dest.keep_last = 7, 1
    local_dest.save()
    runs = _backups(job, 3)
    for run, days in zip(runs, [30, 20, 10], strict=True):
        _age(run, days)
    return runs


def test_apply_deletes_storage_then_catalog_and_audits(aged, local_dest):
    oldest, middle, newest = aged
    paths = {r.pk: r.copies.get().location for r in aged}
    decisions = retention.apply(local_dest, now=NOW)
    assert deleted(decisions) == sorted([oldest.pk, middle.pk])
    import os

    assert not os.path.exists(paths[oldest.pk]) and not os.path.exists(
        paths[oldest.pk] + ".manifest.json"
    )
    assert os.path.exists(paths[newest.pk])
    copy = oldest.copies.get()
    assert copy.deleted_at is not None and "older than 7 days" in copy.deleted_reason
    assert AuditEntry.objects.filter(action="retention delete").count() == 2
    # Applying again finds nothing more to do.
    assert deleted(retention.apply(local_dest, now=NOW)) == []


def test_dry_run_command_changes_nothing(aged, local_dest, capsys):
    call_command("apply_retention", "--dry-run")
    out = capsys.readouterr().out
    assert "would delete run #" in out
    assert BackupCopy.objects.filter(deleted_at__isnull=False).count() == 0


def test_newest_good_backup_survives_even_when_expired(aged, local_dest):
    oldest, middle, newest = aged
    BackupRun.objects.filter(pk=newest.pk).update(restorable=False, not_restorable_reason="bad")
    decisions = retention.plan(
        [
            Item(c.pk, c.run_id, c.run.source_id, c.run.finished)
            for c in BackupCopy.objects.select_related("run")
        ],
        Policy(7, 1),
        now=NOW,
        protected=retention.protected_runs(),
    )
    # newest is kept (keep_last); middle is the newest *good* one, so it stays too.
    assert deleted(decisions) == [oldest.pk]
    assert next(d for d in decisions if d.item.run_id == middle.pk).reason.startswith(
        "newest good backup"
    )


def test_newest_verified_backup_survives(aged, local_dest, sqlite_source):
    """A passed restore test (the recovery app's real model) protects its backup."""

    oldest = aged[0]
    RestoreTestFactory(source=sqlite_source, backup_run=oldest, status=RunStatus.SUCCEEDED)
    RestoreTestFactory(source=sqlite_source, backup_run=aged[1], status=RunStatus.FAILED)
    decisions = retention.preview(local_dest, now=NOW)
    assert deleted(decisions) == [aged[1].pk]
    reason = next(d.reason for d in decisions if d.item.run_id == oldest.pk)
    assert reason.startswith("newest backup that passed a restore test")


def test_backup_in_use_by_a_restore_test_survives(aged, local_dest, sqlite_source):
    RestoreTestFactory(source=sqlite_source, backup_run=aged[0], status=RunStatus.RUNNING)
    decisions = retention.preview(local_dest, now=NOW)
    assert deleted(decisions) == [aged[1].pk]


def test_retention_runs_after_each_backup(job, local_dest):
    local_dest.keep_days, local_dest.keep_last = 0, 2
    local_dest.save()
    runs = _backups(job, 3)
    live = BackupCopy.objects.filter(deleted_at__isnull=True).values_list("run_id", flat=True)
    assert sorted(live) == [runs[1].pk, runs[2].pk]


def test_preview_page_shows_reasons(viewer_client, aged):
    body = viewer_client.get(reverse("backups:retention")).content.decode()
    assert "would be deleted" in body
    assert "one of the newest 1" in body
