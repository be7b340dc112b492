"""/metrics: never open by accident, bearer token (constant-time), allow-list, parseable content."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from dashboard.metrics import Exposition, escape_label
from tests.dashboard import readiness_data as data

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-metrics-token"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict:
    """Prometheus text format back into {(name, frozenset(labels)): value}; checks HELP/TYPE order."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"unparseable line: {line!r}"
        assert m["name"] in typed, f"{m['name']} has no TYPE before its samples"
        labels = {
            k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            for k, v in LABEL.findall(m["labels"] or "")
        }
        samples[(m["name"], frozenset(labels.items()))] = float(m["value"])
    return samples


def get(metric, samples, **labels):
    return samples[(metric, frozenset(labels.items()))]


@pytest.fixture
def token(settings):
    settings.DR_METRICS_TOKEN = TOKEN
    settings.DR_METRICS_ALLOW = []
    return TOKEN


def test_no_token_and_no_allow_list_configured_is_forbidden(settings):
    settings.DR_METRICS_TOKEN = ""
    settings.DR_METRICS_ALLOW = []
    response = Client().get("/metrics")
    assert response.status_code == 403
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403


def test_missing_token_is_401_with_challenge(token):
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"dr_rpo_seconds" not in response.content


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}x", "Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"]
)
def test_wrong_token_is_refused(token, header):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_logged_in_user_without_token_is_still_refused(token, manager_client):
    assert manager_client.get("/metrics").status_code == 401


def test_right_token_gives_prometheus_text(token):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    parse(response.content.decode())


def test_allow_list_admits_listed_network_only(settings):
    settings.DR_METRICS_TOKEN = ""
    settings.DR_METRICS_ALLOW = ["10.1.0.0/16", "not-a-network", "192.0.2.7"]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.2.0.1").get("/metrics").status_code == 403
    # A forged forwarded header does not help: only REMOTE_ADDR counts.
    forged = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert forged.get("/metrics").status_code == 403


def test_allow_list_and_token_together(settings):
    settings.DR_METRICS_TOKEN = TOKEN
    settings.DR_METRICS_ALLOW = ["127.0.0.1/32"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    outside = Client(REMOTE_ADDR="198.51.100.1")
    assert outside.get("/metrics").status_code == 401
    assert outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_post_is_not_allowed(token):
    response = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


def test_figures_parse_back_to_recorded_values(token, tmp_path):
    from recovery.readiness import source_readiness

    with time_machine.travel(T0, tick=False):
        data.targets()
        local, s3, _ = data.destinations(tmp_path)
        src = data.source('odd "name"\\x', created=T0 - timedelta(days=30))
        data.job(src, [local, s3], changed=T0 - timedelta(days=30))
        run = data.backup(src, T0 - timedelta(minutes=30), [local, s3], size=6_000_000)
        data.restore_test(src, run, T0 - timedelta(minutes=20), seconds=90)
        data.backup(src, T0 - timedelta(minutes=5), status="failed")
        broken = data.source("never-backed-up", created=T0 - timedelta(days=30))
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        ready = source_readiness([src, broken])
    samples = parse(response.content.decode())
    labels = {"source": 'odd "name"\\x', "system": "tool-hub", "data_class": "critical"}
    assert (
        get("dr_last_good_backup_timestamp_seconds", samples, **labels)
        == (T0 - timedelta(minutes=30)).timestamp()
    )
    assert get("dr_rpo_seconds", samples, **labels) == 1800
    assert get("dr_rpo_target_seconds", samples, **labels) == 3600
    assert get("dr_verified_rpo_seconds", samples, **labels) == 1800
    assert get("dr_last_restore_test_success", samples, **labels) == 1
    assert get("dr_last_restore_test_duration_seconds", samples, **labels) == 90
    assert get("dr_rto_seconds", samples, **labels) == 90
    assert (
        get("dr_readiness_verdict", samples, **labels)
        == {"ok": 0, "at_risk": 1, "breached": 2}[ready[src.pk].verdict]
    )
    other = {"source": "never-backed-up", "system": "tool-hub", "data_class": "critical"}
    assert get("dr_readiness_verdict", samples, **other) == 2
    rpo = get("dr_rpo_seconds", samples, **other)
    assert rpo != rpo  # NaN: no good backup at all
    assert get("dr_readiness_overall", samples) == 2
    assert get("dr_runs_finished_24h", samples, kind="backup", status="succeeded") == 1
    assert get("dr_runs_finished_24h", samples, kind="backup", status="failed") == 1
    assert get("dr_runs_finished_24h", samples, kind="restore_test", status="succeeded") == 1
    assert get("dr_runs_active", samples, kind="backup", status="queued") == 0
    assert ("dr_worker_heartbeat_age_seconds", frozenset()) in samples


def test_worker_heartbeat_age(token):
    import time

    from django.core.cache import cache

    from dr_portal.lib.queue import WORKER_SEEN_KEY

    cache.set(WORKER_SEEN_KEY, time.time() - 42, None)
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    age = get("dr_worker_heartbeat_age_seconds", parse(response.content.decode()))
    assert 41 <= age < 60


def test_label_values_are_escaped():
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    out = Exposition()
    out.add("x_total", "counter", "help", 3, {"name": 'evil"} 1\nfake_metric 9'})
    text = out.render()
    assert "fake_metric 9" not in text.splitlines()
    samples = parse(text)
    assert get("x_total", samples, name='evil"} 1\nfake_metric 9') == 3
