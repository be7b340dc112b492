"""The grammar shared with the recovery app, cron and time zones, model clean()."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from backups.models import BackupJob, Destination, Source
from backups.validators import (
    check_problems,
    expectation_holds,
    next_fire,
    parse_expect,
    validate_cron,
    validate_timezone,
)


@pytest.mark.parametrize(
    "text,parsed",
    [
        ("> 0", (">", 0)),
        (">= 12", (">=", 12)),
        ("= 5", ("=", 5)),
        ("==5", ("=", 5)),
        ("< 1.5", ("<", 1.5)),
        ("not below 90% of previous", ("pct_of_previous", 90)),
        ("Not Below 50 % of previous", ("pct_of_previous", 50)),
    ],
)
def test_expect_grammar(text, parsed):
    assert parse_expect(text) == parsed


@pytest.mark.parametrize("text", ["", "lots", "> x", "not below 150% of previous", "above 3"])
def test_bad_expectations(text):
    with pytest.raises(ValueError):
        parse_expect(text)


def test_expectations_evaluate():
    assert expectation_holds("> 0", 3) and not expectation_holds("> 0", 0)
    assert expectation_holds("not below 90% of previous", 95, previous=100)
    assert not expectation_holds("not below 90% of previous", 80, previous=100)
    assert expectation_holds("not below 90% of previous", 1, previous=None)


def test_check_problems_name_their_place():
    problems = check_problems(
        [
            {"sql": "SELECT 1", "expect": "> 0"},
            {"name": "bad", "sql": "DELETE FROM x", "expect": "> 0"},
            {"name": "two", "sql": "SELECT 1; DROP TABLE x", "expect": "> 0"},
            {"name": "bad", "sql": "SELECT 1", "expect": "> 0", "extra": 1},
            "nope",
        ]
    )
    assert 'check 2 "bad": sql must be exactly one read-only query' in problems[0]
    assert any('check 3 "two": sql must be exactly one read-only query' in p for p in problems)
    assert any('check 4 "bad": duplicate name' in p for p in problems)
    assert any("check 4" in p and "unknown keys extra" in p for p in problems)
    assert any(p.startswith("check 5:") for p in problems)
    assert check_problems([{"sql": "WITH a AS (SELECT 1) SELECT * FROM a;", "expect": "= 1"}]) == []


@pytest.mark.parametrize("cron", ["* * * *", "0 2 * * * *", "61 * * * *", "every day"])
def test_invalid_cron(cron):
    with pytest.raises(ValidationError):
        validate_cron(cron)


def test_timezones():
    validate_timezone("Europe/Berlin")
    with pytest.raises(ValidationError, match="not a known time zone"):
        validate_timezone("Europe/Atlantis")
    with pytest.raises(ValidationError):
        validate_timezone("../../etc/passwd")


def test_next_fire_respects_dst():
    winter = datetime(2026, 1, 10, 12, tzinfo=UTC)
    summer = datetime(2026, 7, 10, 12, tzinfo=UTC)
    assert next_fire("0 2 * * *", "Europe/Berlin", winter).astimezone(UTC).hour == 1
    assert next_fire("0 2 * * *", "Europe/Berlin", summer).astimezone(UTC).hour == 0


def test_model_clean_messages(system, tmp_path):
    with pytest.raises(ValidationError) as info:
        Source(system=system, name="p", kind="postgresql").full_clean()
    assert set(info.value.message_dict) >= {"host", "database", "user"}
    with pytest.raises(ValidationError) as info:
        Destination(name="d", kind="local", path="/root/x", keep_last=0).full_clean()
    assert "outside the allowed roots" in str(info.value.message_dict["path"])
    assert "keep_last" in info.value.message_dict
    with pytest.raises(ValidationError) as info:
        Destination(name="s", kind="s3").full_clean()
    assert "bucket" in info.value.message_dict


def test_job_level_limits(sqlite_source):
    job = BackupJob(name="j", source=sqlite_source, compression="gzip", compression_level=12)
    with pytest.raises(ValidationError, match="gzip levels go from 1 to 9"):
        job.full_clean()
    job.compression, job.compression_level = "none", 3
    with pytest.raises(ValidationError, match="No level without compression"):
        job.full_clean()


def test_config_changed_at_follows_connection_fields(sqlite_source, tmp_path):
    stamp = sqlite_source.config_changed_at
    sqlite_source.data_class = "important"
    sqlite_source.save()
    sqlite_source.refresh_from_db()
    assert sqlite_source.config_changed_at == stamp  # not a connection field
    sqlite_source.checks = [{"name": "x", "sql": "SELECT 1", "expect": "= 1"}]
    sqlite_source.save()
    sqlite_source.refresh_from_db()
    assert sqlite_source.config_changed_at > stamp


@pytest.mark.parametrize(
    "text",
    [
        "> 0",
        ">= 100",
        "= 3",
        "!= 0",
        "< 5",
        "not below 90% of previous",
        "not below 80%",
        "lots",
        "> x",
        "not above 3",
        "",
    ],
)
def test_grammar_agrees_with_the_recovery_evaluator(text):
    """What the form and dr_apply accept is exactly what restore tests can evaluate."""
    from recovery.engine.checks import parse_expectation

    def accepts(parse):
        try:
            parse(text)
        except ValueError:
            return False
        return True

    assert accepts(parse_expect) == accepts(parse_expectation)
