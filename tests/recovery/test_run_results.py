"""Results of restore tests and restores are dataclasses: None means "not recorded"."""

from datetime import timedelta

from recovery.restore_tests import RestoreTestResult
from recovery.restores import RestoreResult


def test_only_recorded_fields_reach_finish():
    result = RestoreResult(copy_used="local: a/b", checks=[], rto=timedelta(seconds=3))
    assert result.as_fields() == {
        "copy_used": "local: a/b",
        "checks": [],
        "rto": timedelta(seconds=3),
    }


def test_update_takes_what_the_other_recorded_and_keeps_the_rest():
    result = RestoreResult(copy_used="local: a/b", bytes_fetched=10)
    result.update(RestoreResult(kept_aside="/srv/app.before", bytes_fetched=None))
    assert result.as_fields() == {
        "copy_used": "local: a/b",
        "bytes_fetched": 10,
        "kept_aside": "/srv/app.before",
    }


def test_a_failed_fetch_records_retrieval_without_checks():
    result = RestoreTestResult(needs_retrieval=True)
    assert result.as_fields() == {"needs_retrieval": True}
