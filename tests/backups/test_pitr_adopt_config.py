"""An adopted stanza's settings without a cluster: validation, the stanza the portal builds
(its own configuration path, the given passphrase, read-only), the engine's refusals, the
form's write-only passphrase, jobs and retention leaving the source alone."""

from io import StringIO

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from backups import config, physical_retention
from backups.config import ConfigError
from backups.engine import pgbackrest
from backups.forms import SourceForm
from backups.models import BackupCopy, BackupJob, BackupRun, Source, Trigger
from dr_portal.runs import RunStatus
from tests.factories import BackupJobFactory, DestinationFactory, SourceFactory

PASS = "dba-pass-0123456789"


def _adopted(**kwargs):
    values = dict(
        postgresql=True,
        name="erp-db",
        pitr=True,
        pitr_adopted=True,
        pitr_stanza="main",
        pitr_cipher_pass=PASS,
        data_directory="/var/lib/postgresql/15/main",
    )
    values.update(kwargs)
    return SourceFactory(**values)


def _errors(instance) -> dict:
    with pytest.raises(ValidationError) as info:
        instance.full_clean()
    return info.value.message_dict


def test_an_adopted_source_validates_and_adoption_needs_pitr(db):
    source = _adopted()
    source.full_clean()
    source.pitr = False
    assert "needs point-in-time recovery" in _errors(source)["pitr_adopted"][0]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pitr_stanza", "main\nrepo1-path=/etc", "control characters"),
        ("pitr_stanza", "main db", "A pgBackRest stanza name"),
        ("pitr_stanza", "-main", "A pgBackRest stanza name"),
        ("pitr_cipher_pass", "has a space", "printable characters without spaces"),
    ],
)
def test_bad_stanza_names_and_passphrases_are_refused_naming_the_field(db, field, value, message):
    source = _adopted()
    setattr(source, field, value)
    errors = _errors(source)
    assert message in " ".join(errors[field])
    assert value not in " ".join(errors[field])  # never echoed (the passphrase above all)


def test_two_portal_run_stanzas_of_one_name_are_refused_adopted_ones_may_share(db):
    SourceFactory(postgresql=True, name="pg-a", pitr=True, data_directory="/srv/a")
    clash = SourceFactory.build(
        postgresql=True,
        name="pg-b",
        pitr=True,
        pitr_stanza="pg-a",
        data_directory="/srv/b",
        system=Source.objects.get(name="pg-a").system,
    )
    assert "already runs pgBackRest stanza pg-a" in _errors(clash)["pitr_stanza"][0]
    _adopted(name="one", pitr_stanza="main").full_clean()
    _adopted(name="two", pitr_stanza="main").full_clean()


def test_the_stanza_has_its_own_config_dir_the_given_passphrase_and_is_read_only(
    db, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    source = _adopted()
    repo = DestinationFactory(name="dba-repo", local=True, path="/srv/backup")
    source.pitr_destinations.add(repo)
    stanza = source.to_stanza()
    assert stanza.name == "main" and stanza.read_only and stanza.cipher_pass == PASS
    assert stanza.config_dir == str(tmp_path / "pgbackrest" / "adopted" / "erp-db")
    assert stanza.repos == (pgbackrest.Repo(kind="local", path="/srv/backup"),)
    source.refresh_from_db()
    assert source.pitr_key_id == ""  # no key-ring passphrase was fixed for it
    source.pitr_cipher_pass = ""
    assert source.to_stanza().cipher_pass == ""  # blank: an unencrypted repository


def test_a_portal_run_stanza_uses_a_given_passphrase_and_its_stanza_name(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    source = SourceFactory(
        postgresql=True,
        name="pg-a",
        pitr=True,
        pitr_stanza="legacy",
        data_directory="/srv/a",
        pitr_cipher_pass=PASS,
    )
    stanza = source.to_stanza([pgbackrest.Repo(kind="local", path="/srv/r")])
    assert (stanza.name, stanza.cipher_pass, stanza.read_only) == ("legacy", PASS, False)


def test_the_engine_refuses_to_write_to_a_read_only_stanza(tmp_path):
    stanza = pgbackrest.Stanza(
        name="main",
        pg_data="/srv/data",
        repos=(pgbackrest.Repo(kind="local", path=str(tmp_path / "repo")),),
        config_dir=str(tmp_path / "conf"),
        read_only=True,
    )
    for call in (
        lambda: pgbackrest.stanza_create(stanza),
        lambda: pgbackrest.backup(stanza, "full"),
        lambda: pgbackrest.expire(stanza, "20260101-000000F"),
    ):
        with pytest.raises(pgbackrest.PgBackRestError, match="adopted \\(read-only\\)"):
            call()
    assert not (tmp_path / "conf").exists() and not (tmp_path / "repo").exists()
    pgbackrest.write_config(stanza)  # its own file for reads; the repository is not made
    assert (tmp_path / "conf" / "main.conf").exists() and not (tmp_path / "repo").exists()


def test_a_physical_job_on_an_adopted_source_is_refused(db):
    source = _adopted()
    job = BackupJob(source=source, name="phys", method=BackupJob.Method.PHYSICAL)
    assert "adopted pgBackRest stanza" in job.method_problems(source, [])["method"]
    BackupJobFactory(source=source, name="phys", method=BackupJob.Method.PHYSICAL)
    assert "Job phys takes physical backups" in _errors(source)["pitr_adopted"][0]


def test_retention_leaves_an_adopted_stanzas_copies_alone(db):
    source = _adopted()
    repo = DestinationFactory(name="dba-repo", local=True)
    run = BackupRun.objects.create(
        source=source,
        source_name=source.name,
        trigger=Trigger.CATALOG,
        status=RunStatus.SUCCEEDED,
        finished=timezone.now(),
        artifact_key="20200101-000000F",
    )
    BackupCopy.objects.create(
        run=run, destination=repo, location="pgbackrest:main/20200101-000000F", ok=True
    )
    assert physical_retention.physical_copies(repo) == []
    Source.objects.filter(pk=source.pk).update(pitr_adopted=False)
    assert len(physical_retention.physical_copies(repo)) == 1  # the filter is what keeps it


def _form_data(system, **extra):
    return {
        "system": system.pk,
        "name": "erp-db",
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
        "pitr_adopted": "on",
        "pitr_stanza": "main",
        **extra,
    }


def test_the_form_adopts_with_a_write_only_passphrase_and_needs_repositories(
    db, system, manager_client
):
    repo = DestinationFactory(name="dba-repo", local=True)
    form = SourceForm(data=_form_data(system))
    assert "Name the adopted stanza's repositories" in form.errors["pitr_destinations"][0]
    form = SourceForm(
        data=_form_data(system, pitr_destinations=[repo.pk], new_pitr_cipher_pass="a b")
    )
    assert "without spaces" in form.errors["new_pitr_cipher_pass"][0]
    form = SourceForm(
        data=_form_data(system, pitr_destinations=[repo.pk], new_pitr_cipher_pass=PASS)
    )
    assert form.is_valid(), form.errors
    source = form.save()
    assert source.pitr_adopted and source.physical_destinations() == [repo]
    source = Source.objects.get(pk=source.pk)
    assert source.pitr_cipher_pass.reveal() == PASS
    page = manager_client.get(reverse("backups:source_edit", args=[source.pk])).content.decode()
    assert "new_pitr_cipher_pass" in page and PASS not in page
    assert source.pitr_cipher_pass.token not in page
    page = manager_client.get(source.get_absolute_url()).content.decode()
    assert "pgBackRest stanza <code>main</code> (adopted, read-only" in page
    assert "the passphrase stored for it" in page and PASS not in page


ADOPT_YAML = {
    "systems": [{"name": "ERP"}],
    "destinations": [
        {"name": "dba-repo", "kind": "local", "path": "/tmp/dr-tests/dba-repo"},
        {"name": "dumps", "kind": "local", "path": "/tmp/dr-tests/dumps"},
    ],
    "sources": [
        {
            "name": "erp-db",
            "system": "ERP",
            "kind": "postgresql",
            "host": "/var/run/postgresql",
            "database": "erp",
            "user": "postgres",
            "pitr": True,
            "data_directory": "/var/lib/postgresql/15/main",
            "adopted": True,
            "pitr_stanza": "main",
            "repositories": ["dba-repo"],
            "pitr_cipher_pass_env": "ERP_REPO_PASS",
        }
    ],
}


def test_dr_apply_adopts_exports_without_the_passphrase_and_is_idempotent(
    db, monkeypatch, tmp_path
):
    monkeypatch.setenv("ERP_REPO_PASS", PASS)
    path = tmp_path / "dr.yaml"
    path.write_text(yaml.safe_dump(ADOPT_YAML))
    call_command("dr_apply", str(path))
    source = Source.objects.get(name="erp-db")
    assert source.pitr_adopted and source.stanza_name == "main"
    assert source.pitr_cipher_pass.reveal() == PASS
    assert [d.name for d in source.physical_destinations()] == ["dba-repo"]
    out = StringIO()
    call_command("dr_apply", str(path), "--dry-run", stdout=out)
    assert "update source erp-db" not in out.getvalue()  # nothing changed the second time
    exported = StringIO()
    call_command("dr_export", stdout=exported)
    item = yaml.safe_load(exported.getvalue())["sources"][0]
    assert item["adopted"] is True and item["pitr_stanza"] == "main"
    assert item["repositories"] == ["dba-repo"] and PASS not in exported.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pitr_cipher_pass": "with a space"}, "printable characters without spaces"),
        ({"repositories": []}, "name the adopted stanza's repositories"),
        ({"repositories": ["nowhere"]}, "unknown destination nowhere"),
        ({"pitr": False}, "needs point-in-time recovery"),
    ],
)
def test_dr_apply_refuses_bad_adoptions_and_changes_nothing(db, tmp_path, change, message):
    data = {**ADOPT_YAML, "sources": [{**ADOPT_YAML["sources"][0], **change}]}
    data["sources"][0].pop("pitr_cipher_pass_env")
    if "pitr_cipher_pass" not in change:
        data["sources"][0]["pitr_cipher_pass"] = PASS
    path = tmp_path / "dr.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises((CommandError, SystemExit)):
        call_command("dr_apply", str(path), stdout=StringIO(), stderr=StringIO())
    assert not Source.objects.filter(name="erp-db").exists()
    with pytest.raises(ConfigError) as refused:
        config.apply(data)
    assert message in " ".join(refused.value.problems)
    assert "with a space" not in " ".join(refused.value.problems)


def test_dr_apply_refuses_a_physical_job_of_an_adopted_source(db):
    data = {
        **ADOPT_YAML,
        "sources": [{**ADOPT_YAML["sources"][0], "pitr_cipher_pass": PASS}],
        "jobs": [
            {
                "name": "erp-phys",
                "source": "erp-db",
                "destinations": ["dumps"],
                "method": "physical",
            }
        ],
    }
    data["sources"][0].pop("pitr_cipher_pass_env")
    with pytest.raises(ConfigError) as refused:
        config.apply(data)
    assert "adopted pgBackRest stanza" in " ".join(refused.value.problems)
