"""The run life cycle every app shares: an unexpected error ends the run, redacted."""

import re

from dr_portal.runs import RunStatus
from tests.factories import BackupJobFactory, BackupRunFactory, SourceFactory, SystemFactory


def test_unexpected_error_fails_the_run_with_a_redacted_message(db):
    system = SystemFactory(name="s")
    source = SourceFactory(system=system, name="db", kind="sqlite", path="/tmp/x.db")
    job = BackupJobFactory(name="j", source=source)
    run = BackupRunFactory(job=job, source=source)
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


def test_each_run_logs_one_line_when_it_ends(db, caplog):
    import logging

    system = SystemFactory(name="s")
    source = SourceFactory(system=system, name="db", kind="sqlite", path="/tmp/x.db")
    job = BackupJobFactory(name="j", source=source)
    good, bad = (BackupRunFactory(job=job, source=source) for _ in range(2))
    with caplog.at_level(logging.INFO, logger="dr_portal.runs"):
        assert good.claim() and bad.claim()
        good.finish(RunStatus.SUCCEEDED)
        bad.finish(RunStatus.FAILED, "disk full")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "dr_portal.runs"]
    assert [level for level, _ in lines] == ["INFO", "WARNING"]
    assert re.fullmatch(rf"{re.escape(str(good))} succeeded in \S+", lines[0][1])
    assert re.fullmatch(rf"{re.escape(str(bad))} failed in \S+: disk full", lines[1][1])
