"""manage.py apply_runbooks: validate the whole file, change nothing on error, idempotent."""

import io

import pytest
from django.core.management import call_command

from recovery.failover.models import Runbook
from tests.factories import SystemFactory

pytestmark = pytest.mark.django_db

FILE = """
runbooks:
  - system: tool-hub
    name: PostgreSQL standby promotion
    template: pg_standby_promotion
    vars: {primary_host: 10.0.0.1, standby_host: 10.0.0.2, check_query: "SELECT count(*) FROM workflows", check_expect: "> 0"}
  - system: tool-hub
    name: Network outage recovery
    failure_type: network_outage
    steps:
      - {name: API ready, kind: http_check, params: {url: "http://localhost:8000/health/ready"}, verification: true}
      - name: Resume executions
        kind: webhook
        params: {url: "http://localhost:8000/api/executions/resume", json: {status: suspended}}
        secret_env: TOOLHUB_TOKEN
"""


def apply(tmp_path, text, *args):
    path = tmp_path / "runbooks.yaml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("apply_runbooks", str(path), *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def system(monkeypatch):
    monkeypatch.setenv("TOOLHUB_TOKEN", "tk-live-0123456789")
    return SystemFactory(name="tool-hub")


def test_creates_runbooks_then_changes_nothing_the_second_time(tmp_path):
    code, out, err = apply(tmp_path, FILE)
    assert code == 0, err
    assert "create runbook tool-hub / PostgreSQL standby promotion" in out
    pg = Runbook.objects.get(name="PostgreSQL standby promotion")
    assert pg.failure_type == "database_failure" and pg.template == "pg_standby_promotion"
    assert pg.steps.get(kind="pg_promote").params["host"] == "10.0.0.2"
    webhook = Runbook.objects.get(name="Network outage recovery").steps.get(kind="webhook")
    assert webhook.secret.reveal() == "tk-live-0123456789"
    hashes = dict(Runbook.objects.values_list("name", "config_hash"))
    step_ids = set(Runbook.objects.values_list("steps__pk", flat=True))

    code, out, err = apply(tmp_path, FILE)
    assert code == 0 and "changed 0 runbook(s), 2 unchanged." in out
    assert dict(Runbook.objects.values_list("name", "config_hash")) == hashes
    assert set(Runbook.objects.values_list("steps__pk", flat=True)) == step_ids


def test_an_edit_updates_the_runbook_and_it_needs_verification(tmp_path, monkeypatch):
    apply(tmp_path, FILE)
    before = Runbook.objects.get(name="Network outage recovery").config_hash
    code, out, err = apply(tmp_path, FILE.replace("/health/ready", "/health/live"))
    assert code == 0 and "update runbook tool-hub / Network outage recovery" in out
    runbook = Runbook.objects.get(name="Network outage recovery")
    assert runbook.config_hash != before and runbook.needs_verification
    # a changed secret alone is an update too
    monkeypatch.setenv("TOOLHUB_TOKEN", "tk-rotated-987654321")
    code, out, err = apply(tmp_path, FILE.replace("/health/ready", "/health/live"))
    assert "update runbook tool-hub / Network outage recovery" in out
    assert runbook.steps.get(kind="webhook").secret.reveal() == "tk-rotated-987654321"


def test_dry_run_changes_nothing(tmp_path):
    code, out, err = apply(tmp_path, FILE, "--dry-run")
    assert code == 0 and "would create runbook" in out
    assert not Runbook.objects.exists()


def test_every_problem_is_listed_with_its_place_and_nothing_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("TOOLHUB_TOKEN")
    bad = (
        FILE
        + """
  - system: no-such-system
    name: Broken
    failure_type: meteor
    steps:
      - {name: a, kind: teleport}
      - {name: b, kind: http_check, params: {url: "ftp://x/"}}
      - {name: c, kind: dns_update, params: {zone_id: Z1}}
      - {name: d, kind: command, params: {args: [systemctl, restart, tool-hub]}}
"""
    )
    code, out, err = apply(tmp_path, bad)
    assert code == 1
    for expected in [
        "runbooks[2] (Network outage recovery).steps[2].secret_env: environment variable TOOLHUB_TOKEN is not set",
        "runbooks[3] (Broken).system: no system named 'no-such-system'",
        "runbooks[3] (Broken).failure_type: 'meteor' is not one of",
        "runbooks[3] (Broken).steps[1] (a): unknown kind 'teleport'",
        "runbooks[3] (Broken).steps[2] (b): params.url: URL scheme 'ftp' is not allowed",
        "runbooks[3] (Broken).steps[3] (c): params.name is required for a dns_update step",
        "runbooks[3] (Broken).steps[4] (d): only superusers may create or edit command steps",
        "nothing was changed",
    ]:
        assert expected in err, expected
    assert not Runbook.objects.exists()


def test_command_steps_need_as_a_superuser(tmp_path, superuser, manager):
    text = """
runbooks:
  - system: tool-hub
    name: Restart
    failure_type: single_node
    steps:
      - {name: restart, kind: command, params: {args: [systemctl, restart, tool-hub]}}
"""
    code, _, err = apply(tmp_path, text, "--as", manager.username)
    assert code == 1 and "only superusers may create or edit command steps" in err
    code, out, err = apply(tmp_path, text, "--as", superuser.username)
    assert code == 0, err
    assert Runbook.objects.get(name="Restart").steps.get().kind == "command"
    # and without a superuser an import may not rewrite it
    code, _, err = apply(tmp_path, text.replace("restart, kind", "restart2, kind"))
    assert code == 1 and "only superusers may create or edit command steps" in err


def test_not_yaml_is_reported(tmp_path):
    code, _, err = apply(tmp_path, "runbooks: [unclosed")
    assert code == 1 and "not valid YAML at line" in err


def test_runbooks_may_name_a_system_created_by_the_same_dr_apply_file():
    from recovery.failover import config

    data = config.load_text("""
runbooks:
  - system: new-system
    name: Checks
    failure_type: network_outage
    steps: [{name: ready, kind: http_check, params: {url: "http://localhost:8000/health/ready"}}]
""")
    with pytest.raises(config.ConfigError, match="no system named 'new-system'"):
        config.apply(data)
    assert [str(c) for c in config.apply(data, dry_run=True, new_systems={"new-system"})] == [
        "create runbook new-system / Checks"
    ]
    SystemFactory(name="new-system")
    config.apply(data, new_systems={"new-system"})
    assert Runbook.objects.get(name="Checks").system.name == "new-system"
