"""dr_apply takes a `runbooks:` section too, validated with the rest of the file."""

import io

import pytest
from django.core.management import call_command

from backups.models import Source, System
from recovery.failover.models import Runbook

FILE = """
systems: [{name: tool-hub}]
sources:
  - {name: toolhub-config, system: tool-hub, kind: files, path: %(path)s, data_class: important}
runbooks:
  - system: tool-hub
    name: Network outage recovery
    failure_type: network_outage
    steps:
      - {name: API ready, kind: http_check, params: {url: "http://127.0.0.1:9/health/ready"}}
%(extra)s
"""


def apply(tmp_path, extra="", *args):
    path = tmp_path / "dr.yaml"
    path.write_text(FILE % {"path": tmp_path, "extra": extra})
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("dr_apply", str(path), *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_runbooks_are_created_with_the_system_they_name_and_rerun_changes_nothing(tmp_path, db):
    code, out, _ = apply(tmp_path)
    assert code == 0
    runbook = Runbook.objects.get(name="Network outage recovery")
    assert runbook.system.name == "tool-hub"
    assert runbook.steps.count() == 1
    code, out, _ = apply(tmp_path)
    assert code == 0 and "changed 0 object(s)" in out


def test_a_bad_runbook_stops_the_whole_file(tmp_path, db):
    bad = "      - {name: Mystery, kind: teleport}"
    code, _, err = apply(tmp_path, bad)
    assert code == 1
    assert "runbooks[1]" in err and "teleport" in err
    assert not System.objects.filter(name="tool-hub").exists()
    assert not Source.objects.filter(name="toolhub-config").exists()
    assert not Runbook.objects.exists()


@pytest.mark.parametrize("as_superuser", [False, True])
def test_command_steps_need_a_superuser(tmp_path, db, superuser, as_superuser):
    step = '      - {name: Restart, kind: command, params: {args: ["/bin/true"]}}'
    args = ("--as", superuser.username) if as_superuser else ()
    code, _, err = apply(tmp_path, step, *args)
    assert code == (0 if as_superuser else 1), err
    assert Runbook.objects.exists() == as_superuser


def test_export_then_apply_on_a_fresh_portal_recreates_runbooks(tmp_path, db):
    assert apply(tmp_path)[0] == 0
    out = io.StringIO()
    call_command("dr_export", stdout=out)
    exported = out.getvalue()
    assert "runbooks:" in exported and "Network outage recovery" in exported

    Runbook.objects.all().delete()
    path = tmp_path / "exported.yaml"
    path.write_text(exported)
    call_command("dr_apply", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    runbook = Runbook.objects.get(name="Network outage recovery")
    assert [s.name for s in runbook.steps.all()] == ["API ready"]
    again = io.StringIO()
    call_command("dr_apply", str(path), stdout=again, stderr=io.StringIO())
    assert "changed 0 object(s)" in again.getvalue()


@pytest.mark.parametrize(
    "who, message",
    [("nobody", "no portal user named 'nobody'"), ("mona", "--as mona: no superuser")],
)
def test_as_must_name_a_superuser_and_nothing_changes(tmp_path, db, manager, who, message):
    from django.core.management.base import CommandError

    assert manager.username == "mona"
    with pytest.raises(CommandError, match=message):
        apply(tmp_path, "", "--as", who)
    assert not System.objects.filter(name="tool-hub").exists()
