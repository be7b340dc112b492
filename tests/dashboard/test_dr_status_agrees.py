"""`manage.py dr_status --json` and the dashboard give the same verdict per source and overall."""

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from dr_portal.runs import RunStatus
from tests.dashboard import readiness_data as data

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CREATED = T0 - timedelta(days=30)


def dr_status() -> tuple[dict, int]:
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("dr_status", "--json", stdout=out)
    return json.loads(out.getvalue()), exit_info.value.code


def dashboard_verdicts(client) -> tuple[dict, str]:
    from backups.models import Source

    html = client.get("/").content.decode()
    names = dict(Source.objects.values_list("pk", "name"))
    per_source = {
        names[int(pk)]: verdict
        for pk, verdict in re.findall(r'<tr id="source-(\d+)" data-verdict="(\w+)"', html)
    }
    overall = re.search(r'id="overall">.*?data-verdict="(\w+)"', html, re.S).group(1)
    return per_source, overall


@pytest.fixture
def mixed(tmp_path):
    """One source of each verdict, reached by different roads."""
    data.targets()
    local, s3, glacier = data.destinations(tmp_path)

    def src(name, **kw):
        s = data.source(name, created=CREATED, **kw)
        data.job(s, [local, s3], changed=CREATED)
        return s

    ok = src("ok")
    run = data.backup(ok, T0 - timedelta(minutes=20), [local, s3])
    data.restore_test(ok, run, T0 - timedelta(minutes=10))

    risky = src("rpo-at-risk")  # 50 min of a 1 h target
    run = data.backup(risky, T0 - timedelta(minutes=50), [local])
    data.restore_test(risky, run, T0 - timedelta(minutes=40))

    untested = src("untested", data_class="important")
    data.backup(untested, T0 - timedelta(hours=1), [s3])

    failed = src("test-failed")
    run = data.backup(failed, T0 - timedelta(minutes=10), [local])
    data.restore_test(failed, run, T0 - timedelta(minutes=5), status=RunStatus.FAILED)

    src("no-backup", data_class="non_critical")

    slow = src("slow-restore")  # measured RTO 2 h against 1 h
    run = data.backup(slow, T0 - timedelta(minutes=10), [local])
    data.restore_test(slow, run, T0 - timedelta(hours=3), seconds=7200)
    return {"ok", "rpo-at-risk", "untested", "test-failed", "no-backup", "slow-restore"}


def test_same_verdict_per_source_and_overall(viewer_client, mixed):
    with time_machine.travel(T0, tick=False):
        status, code = dr_status()
        per_source, overall = dashboard_verdicts(viewer_client)
    cli = {s["source"]: s["verdict"] for s in status["sources"]}
    assert mixed <= set(cli)
    assert per_source == cli
    assert overall == status["verdict"] == "breached"
    assert code == 2
    # The mix really covers every verdict, so agreement is not trivially "all the same".
    assert {cli[n] for n in mixed} == {"ok", "at_risk", "breached"}
    assert (
        cli["ok"] == "ok" and cli["rpo-at-risk"] == "at_risk" and cli["test-failed"] == "breached"
    )


def test_agree_when_all_ok(viewer_client, tmp_path):
    from backups.models import Source

    Source.objects.all().delete()  # the portal's own database source, if the setup made one
    data.targets()
    local, s3, _ = data.destinations(tmp_path)
    with time_machine.travel(T0, tick=False):
        for name in ("a", "b"):
            s = data.source(name, created=CREATED)
            data.job(s, [local, s3], changed=CREATED)
            run = data.backup(s, T0 - timedelta(minutes=15), [local, s3])
            data.restore_test(s, run, T0 - timedelta(minutes=5))
        status, code = dr_status()
        per_source, overall = dashboard_verdicts(viewer_client)
    assert per_source == {"a": "ok", "b": "ok"}
    assert overall == status["verdict"] == "ok" and code == 0
