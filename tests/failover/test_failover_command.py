"""manage.py failover RUNBOOK [--live --yes] [--json]: the worker's code path, in the foreground."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from dr_portal.models import AuditEntry
from recovery.failover.models import FailoverRun
from tests.factories import RunbookFactory, SystemFactory
from tests.failover.servers import start_http_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def http():
    server = start_http_server()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def failover(*args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) as the shell would see them."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("failover", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code, err = exc.returncode, io.StringIO(str(exc))
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def steps(url):
    return [
        {"name": "app up", "kind": "http_check", "params": {"url": f"{url}/health"}},
        {"name": "tell the app", "kind": "webhook", "params": {"url": f"{url}/hook", "json": {}}},
        {
            "name": "app still up",
            "kind": "http_check",
            "verification": True,
            "params": {"url": f"{url}/health"},
        },
    ]


def test_a_test_run_prints_json_skips_side_effects_and_exits_0(http):
    runbook = RunbookFactory(steps=steps(http.url), name="App failover")
    code, out, _ = failover("App failover", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert set(result) == {
        "run",
        "runbook",
        "system",
        "status",
        "mode",
        "rto_s",
        "rto_target_s",
        "verdict",
        "rpo_s",
        "lag_at_promotion_bytes",
        "lag_at_promotion_s",
        "all_steps_exercised",
        "steps",
        "error",
    }
    assert result["rpo_s"] is None  # test mode skips the promotion: nothing measured
    assert result["runbook"] == "App failover" and result["system"] == runbook.system.name
    assert result["all_steps_exercised"] is False  # the webhook was skipped: a rehearsal
    assert result["verdict"] == runbook.runs.get().verdict
    run = FailoverRun.objects.get()
    assert run.runbook == runbook and result["run"] == run.pk
    assert (result["status"], result["mode"]) == ("succeeded", "test")
    assert result["rto_s"] == pytest.approx(run.rto.total_seconds(), abs=0.001)
    assert [(s["name"], s["kind"], s["status"]) for s in result["steps"]] == [
        ("app up", "http_check", "succeeded"),
        ("tell the app", "webhook", "skipped"),
        ("app still up", "http_check", "succeeded"),
    ]
    assert all(isinstance(s["duration_s"], float) for s in result["steps"])
    assert [r[1] for r in http.recorder.requests] == ["/health", "/health"]  # no webhook call
    assert AuditEntry.objects.filter(action="start test failover").exists()


def test_a_live_run_needs_yes_and_then_performs_the_side_effects(http):
    runbook = RunbookFactory(steps=steps(http.url), name="App failover")
    code, _, err = failover(str(runbook.pk), "--live")
    assert code == 2 and "--yes" in err
    assert not FailoverRun.objects.exists() and not http.recorder.requests

    code, out, _ = failover(str(runbook.pk), "--live", "--yes", "--json")
    result = json.loads(out)
    assert code == 0 and (result["status"], result["mode"]) == ("succeeded", "live")
    assert [r[1] for r in http.recorder.requests] == ["/health", "/hook", "/health"]


def test_a_failed_run_exits_1_with_its_error(http):
    http.recorder.default = (503, "down", 0)
    RunbookFactory(steps=steps(http.url), name="App failover")
    code, out, _ = failover("App failover", "--json")
    result = json.loads(out)
    assert code == 1 and result["status"] == "failed"
    assert result["error"] == "step 'app up' failed"
    assert result["steps"][0]["status"] == "failed" and result["rto_s"] is None


def test_plain_output_names_each_step(http):
    RunbookFactory(steps=steps(http.url), name="App failover")
    code, out, _ = failover("App failover")
    assert code == 0
    assert "app up [http_check]: succeeded" in out and "tell the app [webhook]: skipped" in out


def test_bad_arguments_exit_2():
    assert failover("no such runbook")[0] == 2
    assert failover("4242")[0] == 2
    RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}], name="Same")
    RunbookFactory(
        steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}],
        name="Same",
        system=SystemFactory(name="other"),
    )
    code, _, err = failover("Same")
    assert code == 2 and "several runbooks are named 'Same'" in err
    with pytest.raises(CommandError):  # argparse: the runbook is required
        call_command("failover")
