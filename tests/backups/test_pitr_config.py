"""PITR configuration: source and job validation, Source.to_stanza, config as code, the window row."""

import base64
import os
from datetime import timedelta

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from backups import pitr
from backups.engine.pgbackrest import BACKUP_TYPES, Repo, Window
from backups.forms import JobForm, SourceForm
from backups.models import BackupJob, Destination, PitrWindow, Source, record_window
from dr_portal.lib import keyring
from tests.factories import BackupJobFactory, DestinationFactory, SourceFactory


def _pitr_source(**kwargs):
    values = dict(postgresql=True, pitr=True, data_directory="/var/lib/postgresql/15/main")
    values.update(kwargs)
    return SourceFactory(**values)


def _errors(instance) -> dict:
    with pytest.raises(ValidationError) as info:
        instance.full_clean()
    return info.value.message_dict


# --- source validation -----------------------------------------------------------------------


def test_a_valid_pitr_source_passes(db):
    source = _pitr_source(pitr_pg_host="db1.example.com", pitr_pg_host_user="postgres")
    source.full_clean()


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"kind": "sqlite", "path": "/tmp/x.db"}, "pitr", "only for PostgreSQL sources"),
        ({"is_portal_db": True}, "pitr", "portal's own database"),
        ({"data_directory": ""}, "data_directory", "Required with point-in-time recovery"),
        ({"data_directory": "pgdata/main"}, "data_directory", "not an absolute path"),
        ({"data_directory": "/srv/../etc"}, "data_directory", "without '..'"),
        ({"data_directory": "/srv/pg\nrepo1-path=/"}, "data_directory", "No line breaks"),
        ({"data_directory": "/srv/a=b"}, "data_directory", "No '='"),
        ({"pitr_pg_host": "-oProxyCommand=x"}, "pitr_pg_host", "No '='"),
        ({"pitr_pg_host": "db1;rm -rf /"}, "pitr_pg_host", "not a host name"),
        ({"pitr_pg_host": "db 1"}, "pitr_pg_host", "not a host name"),
        ({"pitr_pg_host_user": "postgres"}, "pitr_pg_host_user", "Only with a database host"),
        (
            {"pitr_pg_host": "db1", "pitr_pg_host_user": "Post gres"},
            "pitr_pg_host_user",
            "not an OS account name",
        ),
        ({"user": "post=gres"}, "user", "No '='"),
        ({"name": "tool hub"}, "name", "also the pgBackRest stanza"),
        ({"archive_timeout_s": 0}, "archive_timeout_s", "greater than or equal to 1"),
        ({"archive_timeout_s": 3601}, "archive_timeout_s", "less than or equal to 3600"),
    ],
)
def test_each_bad_pitr_setting_is_refused_by_name(db, values, field, message):
    source = _pitr_source()
    for name, value in values.items():
        setattr(source, name, value)
    errors = _errors(source)
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors[field]


def test_hosts_accept_names_and_addresses():
    for host in ("db1", "db1.example.com", "10.0.0.5", "2001:db8::1"):
        assert pitr.is_hostname(host), host
    for host in ("", "-db", "db_1", "db..x", "a" * 254):
        assert not pitr.is_hostname(host), host


def test_pitr_cannot_be_turned_off_under_a_physical_job(db):
    source = _pitr_source()
    BackupJobFactory(source=source, name="base", method="physical")
    source.pitr = False
    assert "Job base takes physical backups" in _errors(source)["pitr"][0]


def test_a_source_with_a_stanza_cannot_be_renamed(db):
    source = _pitr_source(name="pg-main")
    source.to_stanza()
    source.name = "pg-other"
    assert "renaming the source would leave that repository behind" in _errors(source)["name"][0]


# --- job validation ---------------------------------------------------------------------------


def test_engine_and_model_agree_on_backup_types():
    assert set(BackupJob.BackupType.values) == set(BACKUP_TYPES)


def _job_form(source, destinations, **values):
    data = {
        "name": values.pop("name", "base"),
        "source": source.pk,
        "destinations": [d.pk for d in destinations],
        "schedule": "0 2 * * *",
        "timezone": "UTC",
        "method": "physical",
        "backup_type": "full",
        "compression": "zstd",
        "encrypt": "on",
        "enabled": "on",
    }
    data.update(values)
    return JobForm(data=data)


def test_a_physical_job_of_a_pitr_source_is_accepted(db):
    form = _job_form(_pitr_source(), [DestinationFactory()], backup_type="incr")
    assert form.is_valid(), form.errors
    job = form.save()
    assert (job.method, job.backup_type) == ("physical", "incr")


def test_physical_needs_a_pitr_source(db):
    form = _job_form(SourceFactory(postgresql=True, name="plain"), [DestinationFactory()])
    assert not form.is_valid()
    assert "turn pitr on for plain" in form.errors["method"][0]


def test_differential_is_physical_only(db):
    form = _job_form(_pitr_source(), [DestinationFactory()], method="logical", backup_type="diff")
    assert not form.is_valid()
    assert "physical only" in form.errors["backup_type"][0]


def test_at_most_four_repositories(db):
    form = _job_form(_pitr_source(), [DestinationFactory() for _ in range(5)])
    assert not form.is_valid()
    assert "at most 4 repositories" in form.errors["destinations"][0]


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_no_archive_class_repository(db, storage_class):
    cold = DestinationFactory(s3=True, name="cold", storage_class=storage_class)
    form = _job_form(_pitr_source(), [cold])
    assert not form.is_valid()
    assert "cold stores in an archive class" in form.errors["destinations"][0]


def test_a_repository_cannot_move_to_an_archive_class(db):
    dest = DestinationFactory(s3=True, name="offsite")
    BackupJobFactory(source=_pitr_source(), name="base", method="physical", destinations=[dest])
    dest.storage_class = "GLACIER"
    assert "Physical job base keeps a pgBackRest repository" in _errors(dest)["storage_class"][0]


def test_physical_jobs_of_a_source_share_their_destinations(db):
    source = _pitr_source()
    a, b = DestinationFactory(name="a"), DestinationFactory(name="b")
    BackupJobFactory(source=source, name="weekly-full", method="physical", destinations=[a, b])
    form = _job_form(source, [a], name="daily-incr", backup_type="incr")
    assert not form.is_valid()
    message = form.errors["destinations"][0]
    assert "job weekly-full writes to a, b" in message
    # The same destinations are fine, and so is a disabled job elsewhere.
    assert _job_form(source, [a, b], name="daily-incr", backup_type="incr").is_valid()
    assert _job_form(source, [a], name="adhoc", enabled="").is_valid()


def test_logical_jobs_keep_their_freedom(db):
    source = _pitr_source()
    dests = [DestinationFactory() for _ in range(5)]
    assert _job_form(source, dests, method="logical").is_valid()


def test_the_job_form_says_compression_and_encryption_are_logical_only(db):
    form = JobForm()
    assert "Logical backups only" in form.fields["compression"].help_text
    assert "Logical backups only" in form.fields["encrypt"].help_text


def test_the_source_form_offers_the_pitr_settings(db, system):
    data = {
        "system": system.pk,
        "name": "pg-main",
        "kind": "postgresql",
        "data_class": "critical",
        "host": "/var/run/postgresql",
        "port": 5432,
        "database": "app",
        "user": "postgres",
        "restore_test_schedule": "0 3 * * 0",
        "pitr": "on",
        "data_directory": "/var/lib/postgresql/15/main",
        "archive_timeout_s": 30,
    }
    form = SourceForm(data=data)
    assert form.is_valid(), form.errors
    source = form.save()
    assert source.pitr and source.archive_timeout_s == 30
    form = SourceForm(data={**data, "name": "pg-2", "data_directory": ""})
    assert "Required with point-in-time recovery" in form.errors["data_directory"][0]


# --- to_stanza ----------------------------------------------------------------------------------


def _new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_to_stanza_maps_the_source_and_its_repositories(db, settings, tmp_path):
    source = _pitr_source(
        name="pg-main", host="/var/run/postgresql", port=5433, user="backup", archive_timeout_s=30
    )
    local = DestinationFactory(name="local", path=str(tmp_path / "repo"))
    s3 = DestinationFactory(
        s3=True,
        name="offsite",
        endpoint_url="https://s3.example.com",
        storage_class="STANDARD_IA",
        access_key_id="AKIA-TEST",
        secret_access_key="s3cr3t-key",
    )
    other = DestinationFactory(name="logical-only")
    BackupJobFactory(source=source, name="base", method="physical", destinations=[local, s3])
    BackupJobFactory(source=source, name="dump", destinations=[other])
    stanza = source.to_stanza()
    assert stanza.name == "pg-main"
    assert stanza.pg_data == "/var/lib/postgresql/15/main"
    assert (stanza.pg_port, stanza.pg_user, stanza.pg_socket_dir) == (
        5433,
        "backup",
        "/var/run/postgresql",
    )
    assert stanza.archive_timeout_s == 30
    assert stanza.config_dir == str(settings.VAR_DIR / "pgbackrest")
    assert stanza.os_user == "postgres"  # the data directory does not exist here
    assert stanza.repos == (
        Repo(kind="local", path=str(tmp_path / "repo")),
        Repo(
            kind="s3",
            bucket="dr-tests",
            prefix="dr/",
            endpoint_url="https://s3.example.com",
            region="us-east-1",
            storage_class="STANDARD_IA",
            access_key_id="AKIA-TEST",
            secret_access_key="s3cr3t-key",
        ),
    )


def test_to_stanza_reads_owner_and_version_of_a_local_data_directory(db, tmp_path):
    datadir = tmp_path / "main"
    datadir.mkdir()
    (datadir / "PG_VERSION").write_text("15\n")
    bins = tmp_path / "pg" / "15" / "bin"
    bins.mkdir(parents=True)
    source = _pitr_source(data_directory=str(datadir))
    stanza = source.to_stanza(repos=[])
    owner = __import__("pwd").getpwuid(datadir.stat().st_uid).pw_name
    assert stanza.os_user == owner
    assert pitr.pg_bin_dir(str(datadir), root=tmp_path / "pg") == str(bins)
    (datadir / "PG_VERSION").write_text("15; rm -rf /\n")
    assert pitr.pg_bin_dir(str(datadir), root=tmp_path / "pg") == ""


def test_no_stanza_without_pitr(db):
    with pytest.raises(ValueError, match="does not have point-in-time recovery"):
        SourceFactory(postgresql=True, name="plain").to_stanza(repos=[])
    assert Source.objects.get(name="plain").pitr_key_id == ""


def test_a_remote_cluster_is_reached_through_its_host(db):
    source = _pitr_source(pitr_pg_host="db1.example.com", pitr_pg_host_user="postgres")
    stanza = source.to_stanza(repos=[])
    assert (stanza.pg_host, stanza.pg_host_user, stanza.os_user) == (
        "db1.example.com",
        "postgres",
        "postgres",
    )


def test_cipher_pass_is_stable_across_a_key_rotation(db, settings):
    source = _pitr_source(name="pg-main")
    assert source.pitr_key_id == ""
    first = source.to_stanza(repos=[]).cipher_pass
    key_id = Source.objects.get(pk=source.pk).pitr_key_id
    assert key_id == keyring.newest().key_id
    assert len(base64.urlsafe_b64decode(first)) == 32
    settings.DR_ENCRYPTION_KEYS = f"{_new_key()},{settings.DR_ENCRYPTION_KEYS}"
    assert keyring.newest().key_id != key_id  # the ring rotated …
    again = Source.objects.get(pk=source.pk).to_stanza(repos=[])
    assert again.cipher_pass == first  # … the repository's passphrase did not
    assert Source.objects.get(pk=source.pk).pitr_key_id == key_id


def test_a_new_stanza_after_rotation_uses_the_newest_key(db, settings):
    settings.DR_ENCRYPTION_KEYS = f"{_new_key()},{settings.DR_ENCRYPTION_KEYS}"
    source = _pitr_source()
    source.to_stanza(repos=[])
    assert source.pitr_key_id == keyring.newest().key_id


def test_cipher_pass_differs_per_source(db):
    one = _pitr_source(name="pg-one").to_stanza(repos=[])
    two = _pitr_source(name="pg-two").to_stanza(repos=[])
    assert one.cipher_pass and two.cipher_pass and one.cipher_pass != two.cipher_pass


def test_the_key_gone_from_the_ring_is_named(db, settings):
    source = _pitr_source()
    source.to_stanza(repos=[])
    settings.DR_ENCRYPTION_KEYS = _new_key()
    with pytest.raises(keyring.KeyRingError, match=source.pitr_key_id):
        Source.objects.get(pk=source.pk).to_stanza(repos=[])


def test_secrets_never_in_the_stanza_repr(db):
    source = _pitr_source()
    s3 = DestinationFactory(
        s3=True, access_key_id="AKIA-VISIBLE-NOT", secret_access_key="s3cr3t-key"
    )
    BackupJobFactory(source=source, method="physical", destinations=[s3])
    stanza = source.to_stanza()
    text = repr(stanza) + str(stanza)
    assert stanza.cipher_pass not in text
    assert "s3cr3t-key" not in text and "AKIA-VISIBLE-NOT" not in text


# --- the window row -----------------------------------------------------------------------------


def test_record_window_upserts_one_row(db):
    source = _pitr_source()
    now = timezone.now()
    window = Window(
        oldest=now - timedelta(days=2),
        newest=now - timedelta(seconds=40),
        newest_segment="000000010000000000000007",
        checked_at=now,
    )
    row = record_window(source, window)
    assert (row.newest, row.newest_segment, row.wal_gap) == (
        window.newest,
        "000000010000000000000007",
        False,
    )
    gap = Window(
        oldest=window.oldest,
        newest=now - timedelta(minutes=9),
        newest_segment="000000010000000000000004",
        gap_after="000000010000000000000004",
        missing_segment="000000010000000000000005",
        checked_at=now,
    )
    record_window(source, gap)
    row = PitrWindow.objects.get(source=source)
    assert PitrWindow.objects.count() == 1
    assert row.wal_gap and row.missing_segment == "000000010000000000000005"
    record_window(source, Window(oldest=None, newest=None, error="pgbackrest info failed"))
    row = Source.objects.get(pk=source.pk).pitr_window
    assert (row.newest, row.error) == (None, "pgbackrest info failed")


# --- config as code -----------------------------------------------------------------------------


def _write(tmp_path, data, name="dr.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def pitr_config(tmp_path):
    return {
        "systems": [{"name": "tool-hub"}],
        "destinations": [
            {"name": "repo-local", "kind": "local", "path": str(tmp_path / "repo")},
            {"name": "repo-b", "kind": "local", "path": str(tmp_path / "repo-b")},
        ],
        "sources": [
            {
                "name": "toolhub-pg",
                "system": "tool-hub",
                "kind": "postgresql",
                "host": "/var/run/postgresql",
                "port": 5432,
                "database": "tool_hub",
                "user": "postgres",
                "data_class": "critical",
                "pitr": True,
                "data_directory": "/var/lib/postgresql/15/main",
                "pitr_host": "db1.example.com",
                "pitr_host_user": "postgres",
                "archive_timeout": 30,
            }
        ],
        "jobs": [
            {
                "name": "toolhub-pg-full",
                "source": "toolhub-pg",
                "destinations": ["repo-local"],
                "schedule": "0 1 * * 0",
                "method": "physical",
                "type": "full",
            },
            {
                "name": "toolhub-pg-incr",
                "source": "toolhub-pg",
                "destinations": ["repo-local"],
                "schedule": "0 * * * *",
                "method": "physical",
                "type": "incr",
            },
        ],
    }


def _apply_fails(path) -> None:
    with pytest.raises(SystemExit) as info:
        call_command("dr_apply", str(path))
    assert info.value.code == 1


def test_pitr_keys_apply_and_round_trip_through_dr_export(db, tmp_path, pitr_config, capsys):
    call_command("dr_apply", str(_write(tmp_path, pitr_config)))
    source = Source.objects.get(name="toolhub-pg")
    assert (source.pitr, source.data_directory, source.archive_timeout_s) == (
        True,
        "/var/lib/postgresql/15/main",
        30,
    )
    assert (source.pitr_pg_host, source.pitr_pg_host_user) == ("db1.example.com", "postgres")
    incr = BackupJob.objects.get(name="toolhub-pg-incr")
    assert (incr.method, incr.backup_type) == ("physical", "incr")
    capsys.readouterr()
    call_command("dr_export")
    exported = yaml.safe_load(capsys.readouterr().out)
    item = next(s for s in exported["sources"] if s["name"] == "toolhub-pg")
    for key in ("pitr", "data_directory", "pitr_host", "pitr_host_user", "archive_timeout"):
        assert item[key] == pitr_config["sources"][0][key], key
    job = next(j for j in exported["jobs"] if j["name"] == "toolhub-pg-incr")
    assert (job["method"], job["type"]) == ("physical", "incr")
    # Applying the export changes nothing.
    call_command("dr_apply", str(_write(tmp_path, exported, "again.yaml")))
    assert "changed 0 object(s)" in capsys.readouterr().out


def test_strict_yaml_names_the_pitr_key(db, tmp_path, pitr_config, capsys):
    pitr_config["sources"][0]["pitr"] = "yes"
    pitr_config["sources"][0]["archive_timeout"] = "30"
    pitr_config["jobs"][0]["type"] = 1
    _apply_fails(_write(tmp_path, pitr_config))
    err = capsys.readouterr().err
    assert "sources[0].pitr: must be true or false" in err
    assert "sources[0].archive_timeout: must be a whole number" in err
    assert "jobs[0].type: must be text" in err


def test_config_refusals_name_the_yaml_key(db, tmp_path, pitr_config, capsys):
    pitr_config["sources"][0]["pitr_host"] = "db1 ; reboot"
    pitr_config["sources"][0]["archive_timeout"] = 7200
    pitr_config["jobs"][0]["type"] = "weekly"
    _apply_fails(_write(tmp_path, pitr_config))
    err = capsys.readouterr().err
    assert "sources[0].pitr_host: db1 ; reboot is not a host name" in err
    assert "sources[0].archive_timeout:" in err
    assert "jobs[0].type:" in err
    assert not Source.objects.filter(name="toolhub-pg").exists()


def test_a_physical_job_in_the_file_needs_pitr_in_the_file(db, tmp_path, pitr_config, capsys):
    del pitr_config["sources"][0]["pitr"]
    _apply_fails(_write(tmp_path, pitr_config))
    assert "jobs[0].method: A physical backup needs point-in-time recovery" in (
        capsys.readouterr().err
    )


def test_physical_jobs_in_the_file_must_share_destinations(db, tmp_path, pitr_config, capsys):
    pitr_config["jobs"][1]["destinations"] = ["repo-b"]
    _apply_fails(_write(tmp_path, pitr_config))
    err = capsys.readouterr().err
    assert "jobs[1].destinations: all physical jobs of a source share one stanza" in err
    assert "job toolhub-pg-full writes to repo-local" in err
    assert not BackupJob.objects.exists()
    # Moving both jobs to new destinations in one file is one consistent change.
    pitr_config["jobs"][0]["destinations"] = ["repo-b"]
    call_command("dr_apply", str(_write(tmp_path, pitr_config, "ok.yaml")))
    call_command("dr_apply", str(_write(tmp_path, pitr_config, "ok.yaml")))
    pitr_config["jobs"][0]["destinations"] = ["repo-local"]
    pitr_config["jobs"][1]["destinations"] = ["repo-local"]
    call_command("dr_apply", str(_write(tmp_path, pitr_config, "moved.yaml")))
    assert set(
        Destination.objects.filter(jobs__method="physical").values_list("name", flat=True)
    ) == {"repo-local"}


def test_a_stored_physical_job_counts_against_the_file(db, tmp_path, pitr_config, capsys):
    call_command("dr_apply", str(_write(tmp_path, pitr_config)))
    extra = {
        "name": "toolhub-pg-diff",
        "source": "toolhub-pg",
        "destinations": ["repo-b"],
        "method": "physical",
        "type": "diff",
    }
    data = {**pitr_config, "jobs": [extra]}  # the two stored jobs are not in this file
    _apply_fails(_write(tmp_path, data, "partial.yaml"))
    assert "jobs[0].destinations: all physical jobs" in capsys.readouterr().err
