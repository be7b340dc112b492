"""dr_apply / dr_export: validation with places, idempotence, dry run, env secrets, round trip."""

import pytest
import yaml
from django.core.management import call_command

from backups.models import BackupJob, Destination, Source, System
from dr_portal.models import AuditEntry


def _write(tmp_path, data, name="dr.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.fixture
def config(tmp_path, sqlite_path):
    return {
        "systems": [{"name": "tool-hub", "description": "Workflow automation"}],
        "destinations": [
            {
                "name": "local",
                "kind": "local",
                "path": str(tmp_path / "backups"),
                "keep_days": 7,
                "keep_last": 3,
            },
            {
                "name": "offsite",
                "kind": "s3",
                "bucket": "backups",
                "prefix": "tool-hub/",
                "region": "us-east-1",
                "endpoint_url": "http://127.0.0.1:9000",
                "storage_class": "STANDARD_IA",
                "keep_days": 30,
                "access_key_id_env": "DR_TEST_S3_KEY",
                "secret_access_key_env": "DR_TEST_S3_SECRET",
            },
        ],
        "sources": [
            {
                "name": "toolhub-db",
                "system": "tool-hub",
                "kind": "sqlite",
                "path": str(sqlite_path),
                "data_class": "critical",
                "heartbeat": True,
                "verify": [
                    {"sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"},
                    {
                        "name": "executions",
                        "sql": "SELECT COUNT(*) FROM executions",
                        "expect": "not below 90% of previous",
                    },
                ],
            },
            {
                "name": "toolhub-pg",
                "system": "tool-hub",
                "kind": "postgresql",
                "host": "127.0.0.1",
                "port": 5432,
                "database": "tool_hub",
                "user": "toolhub",
                "password_env": "DR_TEST_PGPASSWORD",
                "data_class": "critical",
                "restore_test_schedule": "0 5 * * 6",
            },
            {
                "name": "toolhub-config",
                "system": "tool-hub",
                "kind": "files",
                "path": str(tmp_path),
                "exclude": ["*.tmp"],
                "data_class": "important",
            },
        ],
        "jobs": [
            {
                "name": "toolhub-db-daily",
                "source": "toolhub-db",
                "destinations": ["local", "offsite"],
                "schedule": "0 2 * * *",
                "timezone": "Europe/Berlin",
                "compression": "zstd",
                "level": 5,
                "encrypt": True,
            },
        ],
    }


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("DR_TEST_S3_KEY", "AKIA-from-env")
    monkeypatch.setenv("DR_TEST_S3_SECRET", "s3-secret-from-env")
    monkeypatch.setenv("DR_TEST_PGPASSWORD", "pg-password-from-env")


def _apply(path, *extra, capsys=None):
    with pytest.raises(SystemExit) as exit_info:
        call_command("dr_apply", str(path), *extra)
    return exit_info.value.code


def test_apply_creates_everything_with_env_secrets(db, tmp_path, config, env, capsys):
    call_command("dr_apply", str(_write(tmp_path, config)))
    out = capsys.readouterr().out
    assert "create job toolhub-db-daily" in out
    pg = Source.objects.get(name="toolhub-pg")
    assert pg.password.reveal() == "pg-password-from-env"
    offsite = Destination.objects.get(name="offsite")
    assert offsite.secret_access_key.reveal() == "s3-secret-from-env"
    assert offsite.storage_class == "STANDARD_IA"
    src = Source.objects.get(name="toolhub-db")
    assert src.heartbeat_enabled and src.checks[0]["name"] == "check-1"
    job = BackupJob.objects.get(name="toolhub-db-daily")
    assert sorted(job.destinations.values_list("name", flat=True)) == ["local", "offsite"]
    assert job.compression_level == 5 and job.timezone == "Europe/Berlin"
    assert "pg-password-from-env" not in out


def test_apply_twice_changes_nothing(db, tmp_path, config, env, capsys):
    path = _write(tmp_path, config)
    call_command("dr_apply", str(path))
    capsys.readouterr()
    audits = AuditEntry.objects.count()
    stamp = BackupJob.objects.get().config_changed_at
    call_command("dr_apply", str(path))
    out = capsys.readouterr().out
    assert "changed 0 object(s)" in out
    assert AuditEntry.objects.count() == audits
    assert BackupJob.objects.get().config_changed_at == stamp


def test_update_by_name(db, tmp_path, config, env, capsys):
    call_command("dr_apply", str(_write(tmp_path, config)))
    config["jobs"][0]["schedule"] = "30 3 * * *"
    config["jobs"][0]["destinations"] = ["local"]
    call_command("dr_apply", str(_write(tmp_path, config)))
    out = capsys.readouterr().out
    assert "update job toolhub-db-daily: schedule, destinations" in out
    job = BackupJob.objects.get()
    assert job.schedule == "30 3 * * *"
    assert list(job.destinations.values_list("name", flat=True)) == ["local"]
    assert BackupJob.objects.count() == 1


def test_invalid_file_reports_every_problem_with_its_place_and_changes_nothing(
    db, tmp_path, config, env, capsys, monkeypatch
):
    monkeypatch.delenv("DR_TEST_PGPASSWORD")
    config["sources"][1]["kind"] = "oracle"
    config["sources"][0]["verify"][0]["expect"] = "many"
    config["sources"][2]["path"] = "/etc"
    config["jobs"][0]["schedule"] = "0 2 * *"
    config["jobs"][0]["timezone"] = "Mars/Base"
    config["jobs"][0]["destinations"] = ["local", "nowhere"]
    config["destinations"][0]["colour"] = "blue"
    before = (Source.objects.count(), Destination.objects.count(), System.objects.count())
    assert _apply(_write(tmp_path, config)) == 1
    err = capsys.readouterr().err
    for expected in (
        "sources[1].kind:",
        "sources[1].password_env: environment variable DR_TEST_PGPASSWORD is not set",
        "sources[0].verify: check 1:",
        "sources[2].path: /etc is outside the allowed roots",
        "jobs[0].schedule:",
        "jobs[0].timezone:",
        "jobs[0].destinations[1]: unknown destination nowhere",
        "destinations[0].colour: unknown key",
    ):
        assert expected in err, (expected, err)
    assert "nothing was changed" in err
    assert (Source.objects.count(), Destination.objects.count(), System.objects.count()) == before
    assert not BackupJob.objects.exists()


def test_yaml_syntax_error_names_the_line(db, tmp_path, capsys):
    assert _apply(_write(tmp_path, "systems: [\n  {name: a\n")) == 1
    assert "not valid YAML at line" in capsys.readouterr().err


def test_dry_run_changes_nothing(db, tmp_path, config, env, capsys):
    call_command("dr_apply", str(_write(tmp_path, config)), "--dry-run")
    out = capsys.readouterr().out
    assert "would create source toolhub-db" in out
    assert not BackupJob.objects.exists() and not Destination.objects.exists()


def test_export_then_apply_on_a_fresh_portal_recreates_config(db, tmp_path, config, env, capsys):
    call_command("dr_apply", str(_write(tmp_path, config)))
    capsys.readouterr()
    call_command("dr_export")
    exported = capsys.readouterr().out
    assert "pg-password-from-env" not in exported and "s3-secret-from-env" not in exported
    data = yaml.safe_load(exported)
    snapshot = yaml.safe_load(exported)
    # A fresh portal: drop everything (the portal-db source comes with migrations).
    BackupJob.objects.all().delete()
    Source.objects.exclude(is_portal_db=True).delete()
    Destination.objects.all().delete()
    System.objects.exclude(sources__is_portal_db=True).delete()
    # Secrets are not exported: supply them the documented way.
    for d in data["destinations"]:
        if d["kind"] == "s3":
            d["access_key_id_env"], d["secret_access_key_env"] = (
                "DR_TEST_S3_KEY",
                "DR_TEST_S3_SECRET",
            )
    for s in data["sources"]:
        if s["kind"] == "postgresql" and not s.get("portal_db"):
            s["password_env"] = "DR_TEST_PGPASSWORD"
    call_command("dr_apply", str(_write(tmp_path, data, "again.yaml")))
    capsys.readouterr()
    call_command("dr_export")
    assert yaml.safe_load(capsys.readouterr().out) == snapshot
    assert Source.objects.get(name="toolhub-pg").password.reveal() == "pg-password-from-env"


def test_apply_keeps_schedule_per_job(db, tmp_path, config, env):
    from django_q.models import Schedule

    path = _write(tmp_path, config)
    call_command("dr_apply", str(path))
    call_command("dr_apply", str(path))
    job = BackupJob.objects.get()
    assert Schedule.objects.filter(name=job.schedule_name).count() == 1


def test_globals_applies_to_postgresql_only_and_round_trips(db, tmp_path, config, env, capsys):
    config["sources"][1]["globals"] = True
    call_command("dr_apply", str(_write(tmp_path, config)))
    assert Source.objects.get(name="toolhub-pg").backup_globals
    capsys.readouterr()
    call_command("dr_export")
    exported = yaml.safe_load(capsys.readouterr().out)
    assert [s["name"] for s in exported["sources"] if s.get("globals")] == ["toolhub-pg"]
    config["sources"][0]["globals"] = True  # a SQLite file has no roles
    assert _apply(_write(tmp_path, config, "bad.yaml")) == 1
    assert "sources[0].globals: Only a PostgreSQL server" in capsys.readouterr().err


def test_masked_columns_apply_round_trip_and_bad_patterns_are_refused(
    db, tmp_path, config, env, capsys
):
    call_command("dr_apply", str(_write(tmp_path, config)))
    pg = Source.objects.get(name="toolhub-pg")
    assert "*email*" in pg.masked_columns  # masked by default: e-mail, tokens, secrets, ...
    config["sources"][1]["masked_columns"] = ["users.note", "*email*"]
    call_command("dr_apply", str(_write(tmp_path, config)))
    assert Source.objects.get(name="toolhub-pg").masked_columns == ["users.note", "*email*"]
    capsys.readouterr()
    call_command("dr_export")
    exported = {s["name"]: s for s in yaml.safe_load(capsys.readouterr().out)["sources"]}
    assert exported["toolhub-pg"]["masked_columns"] == ["users.note", "*email*"]
    assert "masked_columns" not in exported["toolhub-db"]  # the default is not written
    config["sources"][1]["masked_columns"] = ["users.note; DROP"]
    assert _apply(_write(tmp_path, config, "bad.yaml")) == 1
    assert "is not a column pattern" in capsys.readouterr().err
    assert Source.objects.get(name="toolhub-pg").masked_columns == ["users.note", "*email*"]
