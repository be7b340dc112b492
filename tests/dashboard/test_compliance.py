"""The compliance report: figures from known data, scope by system, hash that recomputes, PDF, roles."""

import hashlib
import io
import re
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client

from dashboard import compliance
from dr_portal import audit_chain
from dr_portal.runs import RunStatus
from tests.dashboard import readiness_data as data
from tests.factories import DrillPlanFactory, IncidentFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
MAY = "date_from=2026-05-01&date_to=2026-05-31"


def at(day, hour=0, minute=0, month=5):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def link(incident, obj):
    from incidents.models import IncidentLink

    IncidentLink.objects.create(
        incident=incident,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
    )


def followup(obj, text, due, done_at=None, created=None):
    from incidents.models import FollowUp

    return FollowUp.objects.create(
        text=text,
        due=due,
        done=done_at is not None,
        done_at=done_at,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
        created=created or at(1),
    )


@pytest.fixture
def may(tmp_path):
    """May 2026 of tool-hub (and a little of billing), recorded with known times."""
    from backups.models import Source
    from drills.models import DrillRun

    Source.objects.filter(is_portal_db=True).delete()
    data.targets()
    local, s3, _ = data.destinations(tmp_path)
    created = at(1, month=1)
    src = data.source("toolhub-db", data_class="important", created=created)  # RPO target 24 h
    other = data.source("billing-db", system="billing", created=created)
    data.backup(src, at(30, 2, month=4), [local])  # the anchor before the period
    runs = {}
    for day in range(1, 32):
        if day in (10, 11):
            status = RunStatus.FAILED
        elif day == 12:
            status = RunStatus.CANCELLED
        elif day == 20:
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.SUCCEEDED
        runs[day] = data.backup(src, at(day, 2), [local], status=status)
        if status == RunStatus.CANCELLED:
            # Set-up past the evidence guard: a finished run refuses save().
            type(runs[day]).objects.filter(pk=runs[day].pk).update(data_taken_at=None)
    billing_run = data.backup(other, at(3, 2), [local])
    data.restore_test(src, runs[1], at(30, 3, month=4), seconds=60)  # April: not in May
    data.restore_test(src, runs[2], at(2, 3), seconds=30 * 60)
    data.restore_test(src, runs[8], at(8, 3), seconds=50 * 60)
    data.restore_test(src, runs[15], at(15, 3), seconds=2 * 3600)
    data.restore_test(src, runs[16], at(16, 3), status=RunStatus.FAILED)

    hub_plan = DrillPlanFactory(name="hub quarterly", created=created)
    hub_plan.systems.set([src.system])
    billing_plan = DrillPlanFactory(name="billing quarterly", created=created)
    billing_plan.systems.set([other.system])
    everyone = DrillPlanFactory(name="call-out", created=created)

    def drill(plan, day, verdict, status="ended"):
        return DrillRun.objects.create(
            plan=plan,
            plan_name=plan.name,
            status=status,
            verdict=verdict,
            declared_at=at(day, 10),
            ended_at=at(day, 11),
            rto_achieved=timedelta(minutes=40),
        )

    hub_drill = drill(hub_plan, 15, "passed")
    drill(billing_plan, 16, "failed")
    drill(everyone, 17, "aborted", status="aborted")
    drill(hub_plan, 2, "passed")  # June: out of the period
    DrillRun.objects.filter(
        plan_name="hub quarterly", declared_at__month=5, declared_at__day=2
    ).update(declared_at=at(2, 10, month=6))

    def incident(title, severity, began, resolved, services_down="", data_loss=""):
        return IncidentFactory(
            title=title,
            severity=severity,
            started_at=began,
            detected_at=began,
            resolved_at=resolved,
            status="resolved",
            services_down=services_down,
            data_loss=data_loss,
        )

    a = incident("database lost", "sev1", at(5, 10), at(5, 13), data_loss="15 min of executions")
    link(a, runs[5])
    incident("slow dashboard", "sev3", at(6, 10), at(6, 11))  # not downtime
    incident("api blip", "sev3", at(30, 23, month=4), at(1, 1), services_down="api")  # 1 h in May
    d = incident("billing down", "sev2", at(7, 10), at(7, 12))
    link(d, billing_run)
    incident("network", "sev2", at(5, 12), at(5, 14))  # unlinked; overlaps "database lost" by 1 h
    incident("old", "sev1", at(1, 1, month=4), at(1, 2, month=4))  # before the period

    followup(a, "add a replica", date(2026, 5, 20))  # open: listed, overdue at the end
    followup(a, "fix alert", date(2026, 5, 20), done_at=at(25))  # done in May: not listed
    followup(a, "write runbook", date(2026, 6, 30), done_at=at(5, month=6))  # open at the end
    followup(d, "billing item", date(2026, 5, 20))  # billing: out of tool-hub's scope
    followup(a, "later item", date(2026, 7, 1), created=at(3, month=6))  # created after the end
    followup(hub_drill, "drill action", None)
    return src, other


def build(systems=None, now=NOW):
    start, end = compliance.period(date(2026, 5, 1), date(2026, 5, 31))
    with time_machine.travel(now, tick=False):
        return compliance.build(start, end, systems)


def test_figures_from_known_data(may):
    src, _ = may
    r = build([src.system])
    assert r["period"] == {
        "from": "2026-05-01T00:00:00Z",
        "to": "2026-06-01T00:00:00Z",
        "observed_s": 31 * 86400.0,
    }
    assert r["systems"] == ["tool-hub"]
    (b,) = r["backups"]["sources"]
    assert (b["runs"], b["succeeded"], b["partial"], b["failed"], b["cancelled"]) == (
        31,
        27,
        1,
        2,
        1,
    )
    assert b["success_rate"] == 90.0  # 27 of 30 (cancelled not rated)
    # Good data on the 9th, then nothing until the 13th: one gap over the 24 h target.
    assert b["gaps"] == [
        {"from": "2026-05-09T02:00:00Z", "to": "2026-05-13T02:00:00Z", "seconds": 4 * 86400.0}
    ]
    t = r["restore_tests"]
    assert [x["status"] for x in t["tests"]] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert (t["count"], t["passed"], t["pass_rate"], t["within_rto_target"]) == (4, 3, 75.0, 2)
    assert [x["within_target"] for x in t["tests"]] == [True, True, False, None]
    assert t["rto_target_s"] == 3600.0
    drills = r["drills"]
    assert [d["plan"] for d in drills["runs"]] == ["hub quarterly", "call-out"]
    assert drills["verdicts"] == {"passed": 1, "aborted": 1}
    names = [i["title"] for i in r["incidents"]["items"]]
    assert names == ["api blip", "database lost", "network", "slow dashboard"]
    lost = r["incidents"]["items"][1]
    assert lost["duration_s"] == 3 * 3600.0 and lost["data_loss"] == "15 min of executions"
    # Downtime: api blip 1 h (clipped) + database lost ∪ network (10:00–14:00) 4 h = 5 h.
    a = r["availability"]
    assert a["downtime_s"] == 5 * 3600.0
    assert a["achieved_percent"] == round(100 * (1 - 5 / (31 * 24)), 4)
    assert a["target_percent"] == "99.500" and a["met"] is False
    items = r["followups"]["items"]
    assert [(f["text"], f["of"], f["overdue_at_end"]) for f in items] == [
        ("add a replica", lost_identifier(), True),
        ("write runbook", lost_identifier(), False),
        ("drill action", f"drill #{drill_id()}", False),
    ]


def lost_identifier():
    from incidents.models import Incident

    return Incident.objects.get(title="database lost").identifier


def drill_id():
    from drills.models import DrillRun

    return DrillRun.objects.get(plan_name="hub quarterly", declared_at__month=5).pk


def test_all_systems_include_billing(may):
    r = build()
    assert r["systems"] == ["all"]
    assert {b["source"] for b in r["backups"]["sources"]} == {"toolhub-db", "billing-db"}
    assert "billing down" in [i["title"] for i in r["incidents"]["items"]]
    assert r["drills"]["count"] == 3
    assert r["availability"]["downtime_s"] == 7 * 3600.0
    assert "billing item" in [f["text"] for f in r["followups"]["items"]]


def test_hash_is_of_the_canonical_data_and_stable(may):
    src, _ = may
    first = build([src.system])
    later = build([src.system], now=NOW + timedelta(days=30))
    assert compliance.digest(first) == compliance.digest(later)
    raw = compliance.canonical(first)
    assert hashlib.sha256(raw).hexdigest() == compliance.digest(first)
    assert b" " not in raw.split(b'"title"')[0][:20]  # compact separators
    # Any change in the period's evidence changes the hash.
    data.restore_test(src, src.runs.order_by("pk").last(), at(20, 3), seconds=60)
    assert compliance.digest(build([src.system])) != compliance.digest(first)


def test_page_for_viewer_shows_figures_and_hash(may, viewer_client):
    src, _ = may
    with time_machine.travel(NOW, tick=False):
        response = viewer_client.get(f"/compliance/?{MAY}&systems={src.system.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    expected = compliance.digest(build([src.system]))
    assert expected in html
    assert "by vera" in html
    assert "75.0 %" in html and "90.0 %" in html and "NOT met" in html
    assert "A manager can download the PDF." in html
    # The audit chain's head as it stood, which `manage.py audit_verify` proves.
    head = audit_chain.head()
    assert head["seq"] > 0 and head["hash"] in html


def test_page_default_period_and_bad_input(viewer_client):
    response = viewer_client.get("/compliance/")
    assert response.status_code == 200 and b"SHA-256" not in response.content
    response = viewer_client.get("/compliance/?date_from=2026-05-31&date_to=2026-05-01")
    assert b"The period ends before it starts." in response.content
    assert b"SHA-256" not in response.content
    response = viewer_client.get("/compliance/?date_from=yesterday&date_to=2026-05-01")
    assert response.status_code == 200 and b"Enter a valid date" in response.content


def test_roles_for_page_and_pdf(viewer_client, operator_client):
    assert Client().get(f"/compliance/?{MAY}").status_code == 302
    assert Client().get(f"/compliance/pdf?{MAY}").status_code == 302
    assert viewer_client.get(f"/compliance/pdf?{MAY}").status_code == 403
    assert operator_client.get(f"/compliance/pdf?{MAY}").status_code == 403
    assert operator_client.get(f"/compliance/?{MAY}").status_code == 200


def test_wrong_methods(manager_client):
    assert manager_client.post(f"/compliance/?{MAY}").status_code == 405
    assert manager_client.post(f"/compliance/pdf?{MAY}").status_code == 405


def test_pdf_bad_input_is_400(manager_client):
    response = manager_client.get("/compliance/pdf?date_from=2026-05-31&date_to=2026-05-01")
    assert response.status_code == 400


def test_manager_pdf_has_sections_hash_producer_and_data(may, manager_client, tmp_path):
    from pypdf import PdfReader

    from dr_portal.models import AuditEntry

    src, _ = may
    with time_machine.travel(NOW, tick=False):
        response = manager_client.get(f"/compliance/pdf?{MAY}&systems={src.system.pk}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    text = " ".join(page.extract_text() for page in reader.pages)
    flat = re.sub(r"\s+", " ", text)
    expected = compliance.digest(build([src.system]))
    assert response["X-Report-SHA256"] == expected
    assert expected in re.sub(r"\s+", "", text)
    for section in (
        "Backups",
        "Restore tests",
        "Drills",
        "Incidents",
        "Open follow-ups",
        "Availability",
    ):
        assert section in flat
    assert "2026-06-10T09:00:00Z by mona" in flat
    # The attached data is exactly what was hashed.
    attached = reader.attachments["compliance-data.json"][0]
    assert hashlib.sha256(attached).hexdigest() == expected
    assert AuditEntry.objects.filter(action="export compliance pdf", actor_name="mona").exists()


def test_command_prints_same_hash_and_writes_files(may, tmp_path):
    src, _ = may
    out = StringIO()
    pdf, raw = tmp_path / "r.pdf", tmp_path / "r.json"
    with time_machine.travel(NOW, tick=False):
        call_command(
            "compliance_report",
            "--from", "2026-05-01", "--to", "2026-05-31", "--system", "tool-hub",
            "--pdf", str(pdf), "--canonical", str(raw), "--user", "auditor-run",
            stdout=out,
        )  # fmt: skip
    expected = compliance.digest(build([src.system]))
    assert f"SHA-256 {expected}" in out.getvalue()
    assert hashlib.sha256(raw.read_bytes()).hexdigest() == expected
    assert pdf.read_bytes().startswith(b"%PDF")


def test_command_refuses_bad_input(may):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No system named 'nope'"):
        call_command(
            "compliance_report", "--from", "2026-05-01", "--to", "2026-05-31", "--system", "nope"
        )
    with pytest.raises(CommandError, match="before"):
        call_command("compliance_report", "--from", "2026-05-31", "--to", "2026-05-01")
    with pytest.raises(CommandError, match="not a date"):
        call_command("compliance_report", "--from", "May", "--to", "2026-05-01")


def test_period_fields_show_their_dates_in_the_browsers_date_picker(viewer_client):
    """en-gb would render 26/11/2026, which an <input type="date"> shows as an empty field."""
    with time_machine.travel(datetime(2026, 11, 26, 12, tzinfo=UTC), tick=False):
        html = viewer_client.get("/compliance/").content.decode()
        again = viewer_client.get(
            "/compliance/", {"date_from": "2026-10-01", "date_to": "2026-10-31"}
        ).content.decode()
    assert 'type="date" name="date_from" value="2026-08-29"' in html
    assert 'type="date" name="date_to" value="2026-11-26"' in html
    assert 'name="date_from" value="2026-10-01"' in again and "2026-10-31" in again


JUNE = "date_from=2026-06-01&date_to=2026-06-30"


def build_june(systems, now):
    start, end = compliance.period(date(2026, 6, 1), date(2026, 6, 30))
    with time_machine.travel(now, tick=False):
        return compliance.build(start, end, systems)


@pytest.fixture
def june(tmp_path):
    """A period that includes NOW (2026-06-10 09:00): a backup finished on the 9th at 10:01,
    an outage that began on the 9th and is not resolved."""
    dests = data.destinations(tmp_path)
    src = data.source("toolhub-pg", created=at(1))
    data.backup(src, at(9, 10, month=6), [dests[0]])
    IncidentFactory(
        title="Outage",
        severity="sev1",
        started_at=at(9, 12, month=6),
        detected_at=at(9, 12, month=6),
        services_down="api",
    )
    return src, dests


def test_hash_of_a_period_including_today_is_stable_until_new_evidence_finishes(june):
    src, dests = june
    first = build_june([src.system], NOW)
    assert first["period"]["evidence_until"] == "2026-06-09T10:01:00Z"
    # 7 seconds and 2 hours later, with nothing new finished: the same report.
    for later in (NOW + timedelta(seconds=7), NOW + timedelta(hours=2)):
        assert compliance.digest(build_june([src.system], later)) == compliance.digest(first)
    # The open outage and the gaps run to the cut-off, not to the second of the report.
    assert first["period"]["observed_s"] == (at(9, 10, 1, month=6) - at(1, month=6)).total_seconds()
    # A backup that finishes moves the cut-off and so the hash.
    data.backup(src, at(10, 8, month=6), [dests[0]])
    moved = build_june([src.system], NOW)
    assert moved["period"]["evidence_until"] == "2026-06-10T08:01:00Z"
    assert compliance.digest(moved) != compliance.digest(first)


def test_a_past_period_has_no_cutoff_and_keeps_its_hash(may):
    src, _ = may
    report = build([src.system])
    assert "evidence_until" not in report["period"]


def test_page_and_pdf_made_seconds_apart_agree_for_a_period_including_today(june, manager_client):
    src, _ = june
    query = f"/compliance/?{JUNE}&systems={src.system.pk}"
    with time_machine.travel(NOW, tick=False):
        page = manager_client.get(query).content.decode()
    with time_machine.travel(NOW + timedelta(seconds=7), tick=False):
        pdf = manager_client.get(query.replace("/compliance/?", "/compliance/pdf?"))
    assert pdf["X-Report-SHA256"] in page
    assert "Period includes today:" in page and "2026-06-09T10:01:00Z" in page


def test_restores_failovers_and_the_controls_table(may, manager_client):
    from recovery.failover.models import FailoverRun
    from recovery.models import Restore
    from tests.factories import RunbookFactory

    src, other = may
    finished = {"status": RunStatus.SUCCEEDED, "started": at(21, 9), "finished": at(21, 10)}
    restore = Restore.objects.create(
        source=src,
        failure_type="data_corruption",
        target_kind="file",
        target="/tmp/dr-tests/restored.db",
        rto=timedelta(minutes=50),
        rto_target=timedelta(hours=1),
        **finished,
    )
    Restore.objects.create(  # billing: out of tool-hub's scope
        source=other,
        failure_type="data_corruption",
        target_kind="file",
        target="/tmp/x",
        **finished,
    )
    runbook = RunbookFactory(system=src.system, name="hub failover")
    failover = FailoverRun.objects.create(
        runbook=runbook,
        system=src.system,
        mode="live",
        declared_at=at(22, 9),
        rto=timedelta(hours=2),
        rto_target=timedelta(hours=1),
        **(finished | {"finished": at(22, 11)}),
    )
    r = build([src.system])
    assert r["format"] == 2
    assert [(x["id"], x["within_target"], x["target_kind"]) for x in r["restores"]["items"]] == [
        (restore.pk, True, "file")
    ]
    assert "target" not in r["restores"]["items"][0]  # where it went, by kind only
    (f,) = r["failovers"]["runs"]
    assert (f["id"], f["mode"], f["runbook"], f["within_target"]) == (
        failover.pk,
        "live",
        "hub failover",
        False,
    )
    controls = {c["control"]: c for c in r["controls"]}
    assert list(controls) == ["CC7.5", "A1.2", "A1.3", "A.5.29", "A.5.30", "A.8.13"]
    assert controls["A.8.13"]["sections"] == [
        "Backups",
        "Copies proven",
        "Restore tests",
        "Restores",
    ]
    # The gaps are stated plainly: a backup gap over the RPO target, a failed restore test.
    assert (
        "Backups: 1 source(s) went longer than the RPO target without a good backup"
        in (controls["A.8.13"]["gaps"])
    )
    assert "Restore tests: 1 restore test(s) failed" in controls["A1.3"]["gaps"]
    assert not any("Failover" in g for g in controls["A1.3"]["gaps"])

    with time_machine.travel(NOW, tick=False):
        page = manager_client.get(f"/compliance/?{MAY}&systems={src.system.pk}").content.decode()
    assert "Controls" in page and "hub failover" in page and "A.5.30" in page
