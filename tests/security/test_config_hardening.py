"""Configuration cannot be turned against the portal (issue 13).

Replays: a files source over the var dir with `encrypt: false` (the key ring and secret key
shipped in the clear), `heartbeat: "false"` / `portal_db: "false"` read as True, duplicate
YAML keys, a "billion laughs" alias bomb, a 5,000-character source name, a host change that
replayed the stored password, and `manage.py check` staying clean when a live copy's key
has left the ring. Each goes through the portal's views and through dr_apply.
"""

import io
import os
import time

import pytest
from django.conf import settings
from django.core.checks import Error, run_checks
from django.core.management import call_command
from django.urls import reverse

from backups import services, tasks
from backups.models import BackupCopy, BackupJob, Source
from dr_portal.runs import RunStatus
from tests.factories import (
    BackupCopyFactory,
    BackupJobFactory,
    BackupRunFactory,
    DestinationFactory,
    SourceFactory,
    SystemFactory,
)

pytestmark = pytest.mark.django_db

KEY_RING_TEXT = "dr-test-key-ring-material-must-never-leave-the-host"


@pytest.fixture(autouse=True)
def fast_password_hashing(fast_password_hashing):
    """Every test here: the root fixture's fast hashing (personas are made per test)."""


@pytest.fixture
def key_ring_file():
    """The key ring the embedded default generates into the var dir."""
    path = settings.VAR_DIR / "dr_encryption_keys"
    path.write_text(KEY_RING_TEXT + "\n")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def system():
    return SystemFactory(name="tool-hub")


def dr_apply(tmp_path, text, command="dr_apply"):
    """(exit code, stderr) of applying `text` as a YAML file."""
    path = tmp_path / "dr.yaml"
    path.write_text(text)
    err = io.StringIO()
    try:
        call_command(command, str(path), stdout=io.StringIO(), stderr=err)
    except SystemExit as exc:
        return exc.code, err.getvalue()
    return 0, err.getvalue()


def source_data(system, **overrides):
    data = {
        "system": system.pk,
        "name": "config",
        "kind": "files",
        "data_class": "important",
        "restore_test_schedule": "0 3 * * 0",
        "new_password": "",
    }
    data.update(overrides)
    return data


# --- keys never leave the host ------------------------------------------------------


def test_var_dir_is_not_an_allowed_root_by_default():
    """The settings default (tests set DR_ALLOWED_ROOTS themselves): no var dir, only its
    demo and local-backup folders."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DR_ALLOWED_ROOTS"}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.VAR_DIR.resolve() in settings.DR_ALLOWED_ROOTS)"
    )
    env["DJANGO_SETTINGS_MODULE"] = "dr_portal.settings"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("where", ["var dir", "parent of the var dir", "symlink to the var dir"])
def test_files_source_over_var_dir_is_refused_in_the_form(
    manager_client, system, key_ring_file, tmp_path, where
):
    var_dir = settings.VAR_DIR
    link = tmp_path / "innocent"
    link.symlink_to(var_dir)
    path = {
        "var dir": var_dir,
        "parent of the var dir": var_dir.parent,
        "symlink to the var dir": link,
    }[where]
    response = manager_client.post(
        reverse("backups:source_create"), source_data(system, path=str(path))
    )
    assert response.status_code == 400
    message = " ".join(response.context["form"].errors["path"])
    assert "never leave the host" in message
    assert not Source.objects.filter(name="config").exists()


def test_sqlite_source_on_the_portal_database_is_refused(manager_client, system, tmp_path):
    if not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the portal's database is a PostgreSQL server here, not a file")
    portal_db = settings.DATABASES["default"]["NAME"]
    for path in (portal_db, f"{portal_db}-wal"):
        response = manager_client.post(
            reverse("backups:source_create"), source_data(system, kind="sqlite", path=path)
        )
        assert response.status_code == 400
        assert "never leave" in " ".join(response.context["form"].errors["path"])


def test_hard_link_to_the_key_ring_is_refused(manager_client, system, key_ring_file, tmp_path):
    linked = tmp_path / "keys.db"
    os.link(key_ring_file, linked)
    response = manager_client.post(
        reverse("backups:source_create"), source_data(system, kind="sqlite", path=str(linked))
    )
    assert response.status_code == 400
    assert "never leaves the host" in " ".join(response.context["form"].errors["path"])


def test_dr_apply_refuses_files_source_over_var_dir_with_encrypt_false(tmp_path, key_ring_file):
    code, err = dr_apply(
        tmp_path,
        f"""
systems: [{{name: tool-hub}}]
destinations: [{{name: out, kind: local, path: {tmp_path / "out"}}}]
sources:
  - {{name: keys, system: tool-hub, kind: files, path: {settings.VAR_DIR}}}
jobs:
  - {{name: keys, source: keys, destinations: [out], encrypt: false}}
""",
    )
    assert code == 1
    assert "sources[0].path:" in err and "never leave the host" in err
    assert not Source.objects.filter(name="keys").exists() and not BackupJob.objects.exists()


def test_admin_refuses_files_source_over_var_dir(superuser_client, system, key_ring_file):
    response = superuser_client.post(
        reverse("admin:backups_source_add"),
        {
            **source_data(system, path=str(settings.VAR_DIR)),
            "exclude": "[]",
            "checks": "[]",
        },
    )
    assert response.status_code == 200  # the admin re-renders its form with the error
    assert "never leave the host" in response.content.decode()
    assert not Source.objects.filter(name="config").exists()


def _run_unencrypted(source, tmp_path):
    dest = DestinationFactory(name="out", kind="local", path=str(tmp_path / "out"))
    job = BackupJobFactory(name="keys", source=source, encrypt=False, compression="none")
    job.destinations.set([dest])
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run, tmp_path / "out"


def _files_under(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def test_source_smuggled_into_the_database_fails_at_run_time(system, key_ring_file, tmp_path):
    """Written past every validation (a raw insert): the engine still refuses, and the
    key ring is written nowhere."""
    source = SourceFactory(system=system, name="keys", kind="files", path=str(settings.VAR_DIR))
    run, out = _run_unencrypted(source, tmp_path)
    assert run.status == RunStatus.FAILED
    assert "never leave this host" in run.error
    assert not BackupCopy.objects.filter(run=run).exists()
    for path in _files_under(out):
        assert KEY_RING_TEXT.encode() not in open(path, "rb").read()


def test_hard_link_inside_a_tree_fails_the_backup_before_the_key_is_read(
    system, key_ring_file, tmp_path
):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("ordinary file")
    os.link(key_ring_file, tree / "z-keys.txt")
    source = SourceFactory(system=system, name="tree", kind="files", path=str(tree))
    run, out = _run_unencrypted(source, tmp_path)
    assert run.status == RunStatus.FAILED
    assert "never leave this host" in run.error and "z-keys.txt" in run.error
    assert not BackupCopy.objects.filter(run=run).exists()
    for path in _files_under(out):
        assert KEY_RING_TEXT.encode() not in open(path, "rb").read()


def test_smuggled_sqlite_source_on_the_portal_database_fails(system, tmp_path):
    if not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the portal's database is a PostgreSQL server here, not a file")
    source = SourceFactory(
        system=system, name="portal", kind="sqlite", path=settings.DATABASES["default"]["NAME"]
    )
    run, _ = _run_unencrypted(source, tmp_path)
    assert run.status == RunStatus.FAILED and "never leave this host" in run.error


# --- strict YAML -----------------------------------------------------------------------

SOURCE_YAML = """
systems: [{{name: tool-hub}}]
sources:
  - name: toolhub-db
    system: tool-hub
    kind: sqlite
    path: {path}
    {extra}
"""


@pytest.mark.parametrize("key", ["heartbeat", "portal_db", "restore_test_after_backup"])
def test_string_false_is_not_a_boolean(tmp_path, key):
    code, err = dr_apply(
        tmp_path, SOURCE_YAML.format(path=tmp_path / "t.db", extra=f'{key}: "false"')
    )
    assert code == 1
    assert f"sources[0].{key}: must be true or false" in err
    assert not Source.objects.filter(name="toolhub-db").exists()


def test_string_false_for_encrypt_is_refused(tmp_path):
    code, err = dr_apply(
        tmp_path,
        f"""
destinations: [{{name: out, kind: local, path: {tmp_path}, enabled: "true"}}]
jobs: [{{name: j, source: s, destinations: [out], encrypt: "false"}}]
""",
    )
    assert code == 1
    assert "jobs[0].encrypt: must be true or false" in err
    assert "destinations[0].enabled: must be true or false" in err


def test_real_booleans_still_apply(tmp_path):
    code, err = dr_apply(
        tmp_path, SOURCE_YAML.format(path=tmp_path / "t.db", extra="heartbeat: false")
    )
    assert code == 0, err
    source = Source.objects.get(name="toolhub-db")
    assert source.heartbeat_enabled is False and source.is_portal_db is False


def test_duplicate_keys_are_refused_with_the_key_named(tmp_path):
    code, err = dr_apply(
        tmp_path,
        f"""
systems: [{{name: tool-hub}}]
sources:
  - name: toolhub-db
    system: tool-hub
    kind: sqlite
    path: {tmp_path / "t.db"}
    path: /etc/passwd
""",
    )
    assert code == 1 and "duplicate key 'path'" in err and "line 8" in err
    assert not Source.objects.filter(name="toolhub-db").exists()


def test_duplicate_keys_are_refused_by_apply_runbooks(tmp_path):
    code, err = dr_apply(
        tmp_path,
        "runbooks:\n  - {system: a, name: b, name: c, steps: []}\n",
        command="apply_runbooks",
    )
    assert code == 1 and "duplicate key 'name'" in err


def test_unknown_keys_are_refused_with_the_key_named(tmp_path):
    code, err = dr_apply(
        tmp_path, SOURCE_YAML.format(path=tmp_path / "t.db", extra="hearbeat: true")
    )
    assert code == 1 and "sources[0].hearbeat: unknown key" in err


BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
systems: *i
"""


@pytest.mark.parametrize("command", ["dr_apply", "apply_runbooks"])
def test_alias_bomb_is_refused_at_once(tmp_path, command):
    started = time.monotonic()
    code, err = dr_apply(tmp_path, BILLION_LAUGHS, command=command)
    assert code == 1
    assert "anchors (&a) are not allowed" in err and "line 2" in err
    assert time.monotonic() - started < 2


def test_alias_is_refused_even_when_small(tmp_path):
    from dr_portal.lib import strict_yaml

    with pytest.raises(strict_yaml.StrictYamlError, match="merge keys|anchors"):
        strict_yaml.load("base: &b {x: 1}\nother:\n  <<: *b\n")
    with pytest.raises(strict_yaml.StrictYamlError, match=r"aliases \(\*b\)"):
        strict_yaml.StrictLoader  # noqa: B018 - the class exists for both commands
        strict_yaml.load("a: *b\n")


def test_files_over_one_megabyte_are_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("systems: []\n" + "# padding\n" * 110_000)
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="larger than 1,000,000 bytes"):
        call_command("dr_apply", str(path), stdout=io.StringIO(), stderr=io.StringIO())


# --- lengths, ranges, single-line names ----------------------------------------------------


def test_five_thousand_character_source_name_is_refused_in_the_form(manager_client, system):
    response = manager_client.post(
        reverse("backups:source_create"),
        source_data(system, name="x" * 5000, path=str(settings.DR_DEMO_DIR)),
    )
    assert response.status_code == 400
    assert "at most 100 characters" in " ".join(response.context["form"].errors["name"])
    assert manager_client.get(reverse("dashboard")).status_code == 200


def test_five_thousand_character_source_name_is_refused_by_dr_apply(tmp_path):
    code, err = dr_apply(
        tmp_path,
        f"""
systems: [{{name: tool-hub}}]
sources: [{{name: {"x" * 5000}, system: tool-hub, kind: files, path: {tmp_path}}}]
""",
    )
    assert code == 1 and "sources[0].name: Ensure this value has at most 100" in err


def test_five_thousand_character_runbook_name_is_refused(tmp_path, system):
    code, err = dr_apply(
        tmp_path,
        f"""
runbooks:
  - system: tool-hub
    name: {"x" * 5000}
    failure_type: other
    steps: [{{name: wait, kind: wait, params: {{seconds: 1}}}}]
""",
        command="apply_runbooks",
    )
    assert code == 1 and "name: one line of at most 120 characters" in err


def test_newline_in_a_name_is_refused(manager_client, system, tmp_path):
    response = manager_client.post(
        reverse("backups:source_create"),
        source_data(system, name="ok\n2026-01-01 INFO forged line", path=str(tmp_path)),
    )
    assert response.status_code == 400
    assert "control characters" in " ".join(response.context["form"].errors["name"])
    code, err = dr_apply(tmp_path, 'systems: [{name: "a\\nb"}]\n')
    assert code == 1 and "systems[0].name: No line breaks" in err


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("port", 70000, "sources[0].port: 70000 is not a TCP port"),
        ("port", 0, "sources[0].port: 0 is not a TCP port"),
        ("port", "5432", "sources[0].port: must be a whole number"),
    ],
)
def test_ports_are_ranged_and_typed(tmp_path, field, value, message):
    code, err = dr_apply(
        tmp_path,
        f"""
systems: [{{name: tool-hub}}]
sources:
  - {{name: pg, system: tool-hub, kind: postgresql, host: h, database: d, user: u,
      {field}: {value!r}}}
""".replace("'", '"'),
    )
    assert code == 1 and message in err, err


def test_retention_numbers_are_ranged(tmp_path, manager_client):
    code, err = dr_apply(
        tmp_path,
        f"destinations: [{{name: out, kind: local, path: {tmp_path}, keep_days: 1000000, "
        "keep_last: 0}]\n",
    )
    assert code == 1
    assert "destinations[0].keep_days: Ensure this value is less than or equal to 36500" in err
    assert "destinations[0].keep_last:" in err
    response = manager_client.post(
        reverse("backups:destination_create"),
        {
            "name": "out",
            "kind": "local",
            "path": str(tmp_path),
            "keep_days": 99999999,
            "keep_last": 3,
            "storage_class": "STANDARD",
            "enabled": "on",
        },
    )
    assert response.status_code == 400 and "keep_days" in response.context["form"].errors


# --- secrets are bound to their endpoint ------------------------------------------------

PASSWORD = "s3cret-pg-password"


@pytest.fixture
def pg_source(system):
    source = SourceFactory(
        system=system,
        name="pg",
        kind="postgresql",
        host="db.internal",
        port=5432,
        database="toolhub",
        user="toolhub",
        password=PASSWORD,
    )
    source.refresh_from_db()
    return source


def pg_form(system, **overrides):
    fields = {
        "name": "pg",
        "kind": "postgresql",
        "host": "db.internal",
        "port": 5432,
        "database": "toolhub",
        "user": "toolhub",
    }
    return source_data(system, **{**fields, **overrides})


def test_host_change_without_password_clears_it_and_says_so(manager_client, system, pg_source):
    url = reverse("backups:source_edit", args=[pg_source.pk])
    response = manager_client.post(url, pg_form(system, host="attacker.example"), follow=True)
    assert response.status_code == 200
    pg_source.refresh_from_db()
    assert pg_source.host == "attacker.example"
    assert pg_source.password.token == ""
    body = response.content.decode()
    assert "password was cleared because host changed" in body and "Re-enter it" in body


def test_other_edits_keep_the_password(manager_client, system, pg_source):
    url = reverse("backups:source_edit", args=[pg_source.pk])
    response = manager_client.post(url, pg_form(system, data_class="critical"), follow=True)
    pg_source.refresh_from_db()
    assert pg_source.password.reveal() == PASSWORD
    assert "cleared" not in response.content.decode()


def test_host_change_with_the_password_re_entered_keeps_it(manager_client, system, pg_source):
    url = reverse("backups:source_edit", args=[pg_source.pk])
    manager_client.post(url, pg_form(system, port=6543, new_password="new-one-789"))
    pg_source.refresh_from_db()
    assert pg_source.port == 6543 and pg_source.password.reveal() == "new-one-789"


def test_admin_host_change_clears_the_password(superuser_client, system, pg_source):
    url = reverse("admin:backups_source_change", args=[pg_source.pk])
    response = superuser_client.post(
        url,
        {**pg_form(system, database="other"), "exclude": "[]", "checks": "[]"},
        follow=True,
    )
    assert response.status_code == 200
    pg_source.refresh_from_db()
    assert pg_source.database == "other" and pg_source.password.token == ""
    assert "password was cleared because database changed" in response.content.decode()


def test_dr_apply_host_change_clears_the_password(tmp_path, pg_source):
    text = """
sources:
  - {name: pg, system: tool-hub, kind: postgresql, host: %s, port: 5432, database: toolhub,
     user: toolhub}
"""
    out = io.StringIO()
    path = tmp_path / "dr.yaml"
    path.write_text(text % "attacker.example")
    call_command("dr_apply", str(path), "--dry-run", stdout=out)
    assert "password CLEARED (host changed; give password_env" in out.getvalue()
    call_command("dr_apply", str(path), stdout=io.StringIO())
    pg_source.refresh_from_db()
    assert pg_source.host == "attacker.example" and pg_source.password.token == ""


def test_dr_apply_host_change_with_the_same_password_keeps_it(tmp_path, pg_source, monkeypatch):
    monkeypatch.setenv("DR_TEST_PG", PASSWORD)
    code, err = dr_apply(
        tmp_path,
        """
sources:
  - {name: pg, system: tool-hub, kind: postgresql, host: db2.internal, port: 5432,
     database: toolhub, user: toolhub, password_env: DR_TEST_PG}
""",
    )
    assert code == 0, err
    pg_source.refresh_from_db()
    assert pg_source.host == "db2.internal" and pg_source.password.reveal() == PASSWORD


def test_destination_endpoint_change_clears_its_keys(manager_client):
    dest = DestinationFactory(
        name="s3",
        kind="s3",
        bucket="backups",
        region="us-east-1",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="secret-key",
    )
    dest.refresh_from_db()
    data = {
        "name": "s3",
        "kind": "s3",
        "bucket": "backups",
        "region": "us-east-1",
        "endpoint_url": "https://attacker.example",
        "storage_class": "STANDARD",
        "keep_days": 7,
        "keep_last": 3,
        "enabled": "on",
    }
    response = manager_client.post(
        reverse("backups:destination_edit", args=[dest.pk]), data, follow=True
    )
    assert response.status_code == 200
    dest.refresh_from_db()
    assert dest.access_key_id.token == "" and dest.secret_access_key.token == ""
    assert "access key id and secret access key were cleared" in response.content.decode()


# --- a live copy whose key left the ring ------------------------------------------------


@pytest.fixture
def copy_with_lost_key(system, tmp_path):
    source = SourceFactory(system=system, name="db", kind="sqlite", path=str(tmp_path))
    dest = DestinationFactory(name="out", kind="local", path=str(tmp_path / "out"))
    run = BackupRunFactory(
        source=source, status=RunStatus.SUCCEEDED, manifest={"key_id": "0123456789ab"}
    )
    good = BackupRunFactory(source=source, status=RunStatus.SUCCEEDED, manifest={})
    BackupCopyFactory(run=good, destination=dest)
    return BackupCopyFactory(run=run, destination=dest)


def _key_errors():
    return [m for m in run_checks() if m.id in ("dr_portal.E002", "dr_portal.W003")]


def test_check_fails_when_a_live_copy_needs_a_key_missing_from_the_ring(copy_with_lost_key):
    from django.core.management.base import SystemCheckError

    with pytest.raises(SystemCheckError, match="dr_portal.E002") as raised:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    assert "1 live backup copy needs master key 0123456789ab" in str(raised.value)


def test_a_missing_key_only_warns_other_commands_so_workers_still_start(copy_with_lost_key):
    (warning,) = _key_errors()
    assert warning.id == "dr_portal.W003" and not isinstance(warning, Error)
    assert "1 live backup copy needs master key 0123456789ab" in warning.msg


def test_check_is_clean_once_the_copy_is_deleted(copy_with_lost_key):
    from django.utils import timezone

    copy_with_lost_key.deleted_at = timezone.now()
    copy_with_lost_key.save()
    assert _key_errors() == []


def test_dashboard_shows_a_red_banner_for_the_lost_key(viewer_client, copy_with_lost_key):
    from dashboard.board import count_slow_figures

    body = viewer_client.get(reverse("dashboard")).content.decode()
    assert 'class="alert bad" id="missing-key-warning"' in body
    assert "0123456789ab" in body and "1 live backup copy needs" in body
    copy_with_lost_key.delete()
    count_slow_figures()  # what the worker does every minute; no page view pays for the count
    body = viewer_client.get(reverse("dashboard")).content.decode()
    assert "missing-key-warning" not in body


def test_newline_in_a_runbook_step_name_is_refused(tmp_path, system):
    code, err = dr_apply(
        tmp_path,
        """
runbooks:
  - system: tool-hub
    name: Promote
    failure_type: other
    steps: [{name: "wait\\nINFO forged", kind: wait, params: {seconds: 1}}]
""",
        command="apply_runbooks",
    )
    assert code == 1 and "steps[1].name: one line of at most 120 characters" in err


def test_deep_nesting_is_refused_not_a_crash(tmp_path):
    code, err = dr_apply(tmp_path, "systems: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert code == 1 and "nested more than 50 deep" in err
