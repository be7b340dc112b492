"""Failover readiness per system: the run proving each runbook's current steps, its mode,
age and verdict; the same figures on the dashboard, /metrics, dr_status and the
compliance report."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from dashboard import board, compliance, metrics
from recovery.failover import proof
from recovery.failover.models import FailoverRun
from tests.factories import RunbookFactory, SourceFactory, SystemFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
STEPS = [{"name": "Up", "kind": "pg_ready", "params": {"host": "127.0.0.1", "port": 5432}}]


def _runbook(system, name="Promote"):
    runbook = RunbookFactory(system=system, name=name, steps=STEPS)
    runbook.refresh_from_db()
    return runbook


def _passed(runbook, finished, mode="live", **fields):
    return FailoverRun.objects.create(
        runbook=runbook,
        system=runbook.system,
        mode=mode,
        status="succeeded",
        config_hash=runbook.config_hash,
        declared_at=finished - timedelta(minutes=1),
        started=finished - timedelta(minutes=1),
        finished=finished,
        **fields,
    )


def _states(now=NOW):
    """By system, leaving out the portal's own system (created by a migration)."""
    return {r.system: r.state for r in proof.system_readiness(now=now) if r.system != "DR Portal"}


def test_states_from_the_runs_of_the_current_steps(settings):
    settings.DR_FAILOVER_PROOF_DAYS = 30
    hub, wiki, crm, bare = (SystemFactory(name=n) for n in ("tool-hub", "wiki", "crm", "bare"))
    hub_rb = _runbook(hub)
    _passed(hub_rb, NOW - timedelta(days=2), verdict="met", rto=timedelta(seconds=40),
            rpo=timedelta(seconds=4))  # fmt: skip
    # A newer rehearsal does not replace the live proof.
    _passed(hub_rb, NOW - timedelta(days=1), mode="test", skipped_effects=1)
    wiki_rb = _runbook(wiki)
    _passed(wiki_rb, NOW - timedelta(days=1), mode="test", skipped_effects=1)
    crm_rb = _runbook(crm)
    _passed(crm_rb, NOW - timedelta(days=40), verdict="met")
    _runbook(crm, name="Second")  # never run: the system is as ready as this one
    assert _states() == {
        "bare": "no_runbook",
        "crm": "needs_verification",
        "tool-hub": "verified",
        "wiki": "rehearsed",
    }
    hub_ready = next(r for r in proof.system_readiness(now=NOW) if r.system == "tool-hub")
    assert hub_ready.as_dict() == {
        "system": "tool-hub",
        "state": "verified",
        "last_verified_run": hub_ready.runbooks[0].run_id,
        "mode": "live",
        "age_s": 2 * 86400.0,
        "verdict": "met",
        "runbooks": [hub_ready.runbooks[0].as_dict()],
    }
    assert hub_ready.runbooks[0].as_dict()["rpo_s"] == 4.0
    crm.runbooks.filter(name="Second").delete()
    assert _states()["crm"] == "stale"  # proven 40 days ago, over DR_FAILOVER_PROOF_DAYS
    crm_rb.replace_steps([{**STEPS[0], "timeout": 5}])  # an edit: the proof was of other steps
    assert _states()["crm"] == "needs_verification"
    assert bare.pk  # listed, with no runbook


def test_dashboard_metrics_dr_status_and_compliance_show_it(settings):
    hub = SystemFactory(name="tool-hub")
    SourceFactory(system=hub)
    run = _passed(_runbook(hub), NOW - timedelta(hours=3), verdict="missed")
    with time_machine.travel(NOW, tick=False):
        context = board.build(charts=False)
        text = metrics.collect()
        out = StringIO()
        with pytest.raises(SystemExit):
            call_command("dr_status", "--json", stdout=out)
        produced = compliance.stamp({"systems": ["tool-hub"], "backups": {"sources": []}}, "me")
    figure = next(b for b in context["systems"] if b.system == hub).failover
    assert (figure.value, figure.colour) == ("verified", "red")  # verified, but RTO missed
    assert figure.note == "live run, RTO missed" and figure.age == timedelta(hours=3)
    assert figure.href.endswith(f"/runs/{run.pk}/")
    assert 'dr_failover_readiness{system="tool-hub"} 0' in text
    assert (
        f'dr_failover_last_proven_timestamp_seconds{{system="tool-hub"}} {run.finished.timestamp()!r}'
        in text
    )
    assert 'dr_failover_last_proven_live{system="tool-hub"} 1' in text
    assert 'dr_failover_last_rto_met{system="tool-hub"} 0' in text
    status = {s["system"]: s for s in json.loads(out.getvalue())["failover"]}
    assert status["tool-hub"]["state"] == "verified"
    assert status["tool-hub"]["last_verified_run"] == run.pk
    assert produced["failover_readiness"][0]["runbooks"][0]["last_run"] == run.pk


def test_the_api_and_the_compliance_page_show_the_same_figures(viewer, viewer_client):
    from tests.api.conftest import Api, token_for  # noqa: PLC0415 - the API's own client

    hub, bare = SystemFactory(name="tool-hub"), SystemFactory(name="bare")
    SourceFactory(system=hub, name="hub-db")
    run = _passed(_runbook(hub), NOW - timedelta(hours=3), verdict="met",
                  rto=timedelta(seconds=42), rpo=timedelta(seconds=2))  # fmt: skip
    api = Api(token_for(viewer))
    with time_machine.travel(NOW, tick=False):
        out = StringIO()
        with pytest.raises(SystemExit):
            call_command("dr_status", "--json", stdout=out)
        report = api.get("/api/v1/readiness/")
        one = api.get(f"/api/v1/systems/{hub.pk}/readiness/")
        empty = api.get(f"/api/v1/systems/{bare.pk}/readiness/")
        page = viewer_client.get(
            f"/compliance/?date_from=2026-05-01&date_to=2026-05-31&systems={hub.pk}"
        )
    assert report.status_code == one.status_code == empty.status_code == 200
    status = {s["system"]: s for s in json.loads(out.getvalue())["failover"]}
    listed = {s["system"]: s for s in report.json()["failover"]}
    assert listed.keys() == status.keys()
    for name, entry in listed.items():  # dr_status --json's figures, plus the system's id
        assert {k: v for k, v in entry.items() if k != "system_id"} == status[name]
    hub_entry = listed["tool-hub"]
    assert hub_entry["system_id"] == hub.pk and hub_entry["state"] == "verified"
    assert hub_entry["last_verified_run"] == run.pk and hub_entry["mode"] == "live"
    assert hub_entry["age_s"] == 3 * 3600.0 and hub_entry["verdict"] == "met"
    assert hub_entry["runbooks"][0]["rpo_s"] == 2.0 and hub_entry["runbooks"][0]["rto_s"] == 42.0
    body = one.json()
    assert body["system"] == "tool-hub" and body["failover"] == hub_entry
    assert [s["source"] for s in body["sources"]] == ["hub-db"]
    assert body["verdict"] == body["sources"][0]["verdict"]
    assert empty.json()["failover"]["state"] == "no_runbook" and empty.json()["sources"] == []
    assert empty.json()["verdict"] == "ok"
    assert api.get("/api/v1/systems/999999/readiness/").status_code == 404
    html = page.content.decode()
    assert "Failover readiness at report time" in html
    row = '<td>tool-hub</td><td>Promote</td><td class="ok">verified</td><td>#{}</td><td>live</td>'
    assert row.format(run.pk) in html
