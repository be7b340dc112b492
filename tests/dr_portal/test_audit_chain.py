"""The audit log is a hash chain: a changed or removed entry, and a finished run changed
behind the ORM's back, are found by `manage.py audit_verify`."""

import io
import json
import threading

import pytest
from django.core.management import call_command
from django.db import connection

from dr_portal import audit, audit_chain
from dr_portal.evidence import EvidenceSealed
from dr_portal.models import AuditChainHead, AuditEntry
from dr_portal.runs import RunStatus
from drills.models import DrillRun
from recovery.targets import Verdict
from tests.factories import BackupRunFactory, DrillRunFactory


def verify_command(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def test_entries_link_to_the_one_before(db):
    first = audit.record("first", detail="one")
    second = audit.record("second", detail="two")
    assert second.seq == first.seq + 1
    assert second.prev_hash == first.entry_hash
    second.refresh_from_db()  # the hash holds for what the database returns
    assert second.entry_hash == audit_chain.entry_hash(
        {name: getattr(second, name) for name in audit_chain.CHAINED_FIELDS}
    )
    head = AuditChainHead.objects.get()
    assert (head.seq, head.entry_hash, head.entry_id) == (second.seq, second.entry_hash, second.pk)
    assert verify_command() == (0, verify_command()[1])
    assert "OK: the chain is intact" in verify_command()[1]


def test_a_tampered_entry_is_named(db):
    audit.record("first")
    middle = audit.record("delete", detail="source payroll deleted")
    audit.record("third")
    AuditEntry.objects.filter(pk=middle.pk).update(detail="nothing happened")

    code, out = verify_command()
    assert code == 1
    assert f"BROKEN at entry id {middle.pk}" in out and "was changed" in out
    code, out = verify_command("--json")
    result = json.loads(out)
    assert result["ok"] is False and result["first_broken"]["id"] == middle.pk


def test_a_removed_entry_and_a_cut_tail_are_found(db):
    entries = [audit.record(f"e{i}") for i in range(4)]
    AuditEntry.objects.filter(pk=entries[1].pk).delete()
    report = audit_chain.verify()
    assert report.broken["id"] == entries[2].pk and "removed" in report.broken["why"]

    AuditEntry.objects.filter(pk__gte=entries[1].pk).delete()
    report = audit_chain.verify()
    assert not report.ok and "removed from the end" in report.broken["why"]


def test_a_finished_run_is_sealed_and_refuses_changes(db):
    run = BackupRunFactory(status=RunStatus.RUNNING, sha256="a" * 64)
    run.status = RunStatus.RUNNING
    run.bytes_stored = 10  # still running: the ORM may change it
    run.save()
    run.finish(RunStatus.SUCCEEDED)
    seal = AuditEntry.objects.get(action=audit_chain.SEAL_ACTION, object_id=str(run.pk))
    assert seal.object_type == "backups.backuprun" and seal.changes["evidence_sha256"]

    run.sha256 = "b" * 64
    with pytest.raises(EvidenceSealed, match="sha256"):
        run.save()
    run.refresh_from_db()
    run.log = f"{run.log}a note\n"  # not evidence: still allowed
    run.save()
    assert audit_chain.verify().ok


def test_a_finished_run_changed_in_the_database_is_detected(db):
    run = BackupRunFactory(status=RunStatus.RUNNING)
    run.finish(RunStatus.FAILED, "destination unreachable")
    assert verify_command()[0] == 0
    # What a database user can still do: UPDATE the row past the ORM's guard.
    type(run).objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, error="")

    code, out = verify_command()
    assert code == 1
    assert f"CHANGED backups.backuprun #{run.pk}" in out
    assert "BROKEN" not in out  # the chain itself is intact


def test_an_ended_drill_is_sealed(db):
    drill = DrillRunFactory()
    drill.end(Verdict.PASSED, reasons=["all scenarios recovered"])
    DrillRun.objects.filter(pk=drill.pk).update(verdict=Verdict.MISSED)
    report = audit_chain.verify()
    assert [c["run"] for c in report.changed] == [f"drills.drillrun #{drill.pk}"]


def test_a_deleted_run_is_listed_not_failed(db):
    run = BackupRunFactory(status=RunStatus.RUNNING)
    run.finish(RunStatus.SUCCEEDED)
    type(run).objects.filter(pk=run.pk).delete()
    report = audit_chain.verify()
    assert report.ok and report.removed == [
        {"run": f"backups.backuprun #{run.pk}", "seal_entry": report.removed[0]["seal_entry"]}
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_stay_one_line():
    """Threads append at the same moment; on PostgreSQL each has its own connection."""
    threads_n, each = 6, 15
    barrier = threading.Barrier(threads_n, timeout=30)
    errors = []

    def writer(n):
        try:
            barrier.wait()
            for i in range(each):
                audit.record("concurrent", detail=f"writer {n} entry {i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    report = audit_chain.verify()
    assert report.ok, report.as_dict()
    assert AuditEntry.objects.filter(action="concurrent").count() == threads_n * each
    assert report.head["seq"] == AuditEntry.objects.count()


def test_the_migration_links_entries_written_before_the_chain(db):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("dr_portal.migrations.0005_audit_chain")
    entries = [audit.record(f"old {i}") for i in range(3)]
    # As the upgrade finds them: no links, no head.
    AuditEntry.objects.update(seq=None, prev_hash="", entry_hash="")
    AuditChainHead.objects.all().delete()
    assert audit_chain.verify().broken["why"] == "not linked into the chain"

    migration.link_existing_entries(apps, None)
    report = audit_chain.verify()
    assert report.ok and report.entries == 3
    assert list(AuditEntry.objects.order_by("seq").values_list("pk", flat=True)) == [
        e.pk for e in entries
    ]
    audit.record("after the upgrade")  # appends continue from the backfilled head
    assert audit_chain.verify().ok
