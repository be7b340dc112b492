"""The run life cycle every app shares: an unexpected error ends the run, redacted."""

from backups.models import BackupJob, BackupRun, Source, System
from dr_portal.runs import RunStatus


def test_unexpected_error_fails_the_run_with_a_redacted_message(db):
    system = System.objects.create(name="s")
    source = Source.objects.create(system=system, name="db", kind="sqlite", path="/tmp/x.db")
    job = BackupJob.objects.create(name="j", source=source)
    run = BackupRun.objects.create(job=job, source=source)
    assert run.claim()

    message = run.fail_unexpectedly(
        RuntimeError("connect failed for hunter2-secret"), ["hunter2-secret"]
    )

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == message == "unexpected error: RuntimeError: connect failed for ****"
    assert message in run.log and "hunter2" not in run.log
    # A second call (the run already finished) changes nothing and does not raise.
    run.fail_unexpectedly(RuntimeError("later"))
    run.refresh_from_db()
    assert run.error == message
