"""BackupRun.objects.good(): the one definition of a good backup."""

import pytest
from django.utils import timezone

from backups.models import BackupCopy, BackupRun
from dr_portal.runs import RunStatus
from tests.factories import BackupCopyFactory, BackupRunFactory, DestinationFactory, SourceFactory


@pytest.fixture
def source(db):
    return SourceFactory(system__name="s", name="db1", kind="sqlite", path="/tmp/x.db")


@pytest.fixture
def dests(db, tmp_path):
    return [DestinationFactory(name=n, kind="local", path=str(tmp_path / n)) for n in "ab"]


def make_run(source, dests, status=RunStatus.SUCCEEDED, restorable=True, **copy):
    run = BackupRunFactory(
        source=source, status=status, restorable=restorable, data_taken_at=timezone.now()
    )
    for dest in dests:
        BackupCopyFactory(run=run, destination=dest, ok=copy.get("ok", True))
    return run


def test_good_backups(source, dests):
    good = make_run(source, dests)  # two live copies: still one row
    partial = make_run(source, dests[:1], status=RunStatus.PARTIAL)
    make_run(source, dests, status=RunStatus.FAILED)
    make_run(source, dests, restorable=False)
    make_run(source, [])  # no copy
    make_run(source, dests, ok=False)  # failed or lost copies
    deleted = make_run(source, dests[:1])
    deleted.copies.update(deleted_at=timezone.now())
    lost = make_run(source, dests[:1])
    assert lost.copies.get().mark_lost("gone")
    assert sorted(BackupRun.objects.good().values_list("pk", flat=True)) == [good.pk, partial.pk]


def test_live_copies(source, dests):
    run = make_run(source, dests)
    run.copies.filter(destination=dests[0]).update(deleted_at=timezone.now())
    assert list(BackupCopy.objects.live().values_list("destination", flat=True)) == [dests[1].pk]


def test_restorable_keeps_good_runs_whose_copies_retention_removed(source, dests):
    pruned = make_run(source, dests[:1])
    pruned.copies.update(deleted_at=timezone.now())
    make_run(source, dests, status=RunStatus.FAILED)
    assert list(BackupRun.objects.restorable().values_list("pk", flat=True)) == [pruned.pk]
    assert not BackupRun.objects.good().exists()
