"""Web-layer attacks of issue 13, replayed: each failed on the old main and passes now.

- a logged-in user with no role read every backups and recovery page;
- 30 wrong passwords, then the right one, logged in;
- /health/ready was anonymous, uncached, probed every destination (a hung S3 endpoint made
  it and the login page slow) and named destinations and the scratch host;
- one drill rule that never matches (30 February) made every dashboard render take seconds;
- the audit address trusted the first X-Forwarded-For hop; newlines in names forged log lines;
- no Content-Security-Policy, and inline handlers that would have needed 'unsafe-inline'.
"""

import io
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from dr_portal import health
from dr_portal.middleware import client_address
from dr_portal.models import AuditEntry
from tests.dr_portal.test_login_required import walk
from tests.factories import (
    PASSWORD,
    BackupJobFactory,
    DestinationFactory,
    DrillPlanFactory,
    UserFactory,
)
from tests.support import data

ROOT = Path(__file__).resolve().parents[2]
NEVER = "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"


# --- No role, no access -------------------------------------------------------------------


@pytest.fixture
def demo(db, settings, tmp_path):
    """The demo configuration, so the ids filled into routes name real objects."""
    settings.DR_DEMO_DIR = tmp_path / "demo"
    settings.DR_LOCAL_BACKUP_DIR = tmp_path / "backups"
    call_command("load_demo", stdout=io.StringIO())


def filled(route: str) -> str:
    """A route with its converters filled: ids of existing demo objects (1), dummy strings."""
    route = re.sub(r"<int:\w+>", "1", route)
    route = re.sub(r"<(?:str|slug|path|uuid)?:?\w+>", "x", route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
    return "/" + route.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")


def every_path() -> list[str]:
    from django.urls import get_resolver

    return sorted({filled(r) for r in walk(get_resolver().url_patterns)})


# Reachable without a role, and what they may answer.
OWN_RULES = {
    "/accounts/login/": {200},  # the login forms: no data
    "/admin/login/": {200},
    "/health/live": {200},
    "/health/ready": {200, 503},  # ok/not-ok only, checked below
    "/metrics": {401, 403},  # its own bearer token
}


@pytest.fixture
def roleless_client(db):
    client = Client()
    client.force_login(UserFactory(username="nora"))  # logged in, in no group
    return client


def test_a_user_without_a_role_reaches_no_portal_page(demo, roleless_client):
    from backups.models import Source

    demo_names = [s.name for s in Source.objects.all()]
    assert demo_names
    checked, leaks = 0, []
    for path in every_path():
        if path.startswith(("/static/", "/accounts/logout/", "/admin/logout/")):
            continue  # logging out is allowed (and would end this session)
        for method in ("get", "post"):
            response = getattr(roleless_client, method)(path)
            status = response.status_code
            checked += 1
            if path in OWN_RULES:
                allowed = OWN_RULES[path] | {405}
            elif path.startswith("/drills/ack/"):
                allowed = {404}  # a forged token opens nothing
            else:
                allowed = {403, 404, 405}
            redirect_to_login = status == 302 and "login" in response.get("Location", "")
            if status not in allowed and not redirect_to_login:
                leaks.append(f"{method.upper()} {path} -> {status}")
            body = response.content.decode(errors="replace")
            if any(name in body for name in demo_names):
                leaks.append(f"{method.upper()} {path} shows a source name")
    assert checked > 150
    assert leaks == [], "\n".join(leaks)
    # Still logged in at the end: no 302 above hid a page behind a lost session.
    assert roleless_client.get("/backups/").status_code == 403


def test_the_refusal_says_what_is_missing(demo, roleless_client):
    response = roleless_client.get("/backups/")
    assert response.status_code == 403
    assert b"no role" in response.content


def test_admin_stays_for_staff_only(roleless_client, viewer_client):
    for client in (roleless_client, viewer_client):
        response = client.get("/admin/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


LIST_PAGES = [
    "/",
    "/backups/",
    "/recovery/",
    "/drills/",
    "/incidents/",
    "/compliance/",
    "/health/destinations",
]


def test_a_viewer_still_reads_the_list_pages(demo, viewer_client):
    for path in LIST_PAGES:
        assert viewer_client.get(path).status_code == 200, path


# --- Login throttling ----------------------------------------------------------------------


def log_in(client, password, username="vera", **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_thirty_wrong_passwords_then_the_right_one_is_refused(client, viewer):
    for _ in range(30):
        log_in(client, "wrong")
    response = log_in(client, PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed log-ins" in response.content
    assert client.get("/").status_code == 302  # not logged in
    # Audited once per lock-out, not once per attempt.
    entries = AuditEntry.objects.filter(action="login_locked_out")
    assert entries.count() == 1
    assert "'vera'" in entries.get().detail and "127.0.0.1" in entries.get().detail


def test_the_lock_is_per_username_and_address(client, viewer, operator):
    for _ in range(5):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 429
    # Another address, or another user from this one, are not locked.
    assert log_in(Client(REMOTE_ADDR="10.9.8.7"), PASSWORD).status_code == 302
    assert log_in(client, PASSWORD, username="otto").status_code == 302


def test_a_spoofed_forwarded_for_does_not_escape_the_lock(client, viewer, settings):
    """Behind one proxy the address is the proxy's view of the client (rightmost hop): what
    the client writes further left changes nothing."""
    settings.DR_TRUSTED_PROXIES = 1
    for i in range(6):
        log_in(client, "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}, 203.0.113.5")
    response = log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="10.0.0.99, 203.0.113.5")
    assert response.status_code == 429
    other = log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.7")
    assert other.status_code == 302  # a different client behind the proxy


def test_the_lock_ends_after_the_cool_off(client, viewer, settings):
    import time_machine

    for _ in range(5):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 429
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert log_in(client, PASSWORD).status_code == 302


def test_a_superuser_unlocks_in_the_admin(client, viewer, superuser_client):
    from axes.models import AccessAttempt

    for _ in range(5):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 429
    listing = superuser_client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and b"vera" in listing.content
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    superuser_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert not AccessAttempt.objects.exists()
    assert log_in(client, PASSWORD).status_code == 302


def test_limit_and_cool_off_come_from_the_environment(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DR_ENV": "test",
        "DR_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "x" * 50,
        "DR_ENCRYPTION_KEYS": __import__("tests.environment").environment.TEST_MASTER_KEY,
        "DR_LOGIN_FAILURE_LIMIT": "3",
        "DR_LOGIN_COOLOFF_MIN": "2",
        "DR_TRUSTED_PROXIES": "2",
    }
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='dr_portal.settings';"
        "from django.conf import settings as s;"
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()), s.DR_TRUSTED_PROXIES)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.stdout.split() == ["3", "120", "2"], out.stderr


# --- Health endpoints are cheap ------------------------------------------------------------


@contextmanager
def hung_endpoint():
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def hung_destination(db):
    with hung_endpoint() as url:
        yield DestinationFactory(
            name="offsite-vault-7",
            kind="s3",
            bucket="dr-bucket",
            region="us-east-1",
            endpoint_url=url,
            access_key_id="AKIAEXAMPLE",
            secret_access_key="not-a-real-secret-key",
        )


@pytest.fixture
def uncached():
    from django.core.cache import cache

    cache.delete(health.READY_CACHE_KEY)
    yield
    cache.delete(health.READY_CACHE_KEY)


def timed(client, path):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


@pytest.mark.postgres
def test_a_hung_destination_slows_neither_ready_nor_the_login_page(
    client, hung_destination, uncached
):
    data.pg_source("orders-db", "orders")  # a PostgreSQL source: the scratch check used to run
    response, took = timed(client, "/health/ready")
    assert took < 1.5, took
    body = response.content.decode()
    assert set(json.loads(body)["checks"]) == {"database", "broker", "workers"}
    for word in ("offsite-vault-7", "127.0.0.1", "destination", "scratch", "detail", "5432"):
        assert word not in body, word
    response, took = timed(client, "/accounts/login/")
    assert response.status_code == 200 and took < 1.5, took


def test_ready_is_cached_for_a_few_seconds(client, db, monkeypatch, uncached):
    calls = []

    def counted():
        calls.append(1)
        return True, "fine"

    monkeypatch.setitem(health.CORE_CHECKS, "database", counted)
    for _ in range(5):
        client.get("/health/ready")
    assert len(calls) == 1


def test_reachability_is_for_viewers_with_a_deadline(
    client, viewer_client, roleless_client, hung_destination, monkeypatch
):
    monkeypatch.setattr(health, "PROBE_DEADLINE_S", 1)
    assert client.get("/health/destinations").status_code == 302
    assert roleless_client.get("/health/destinations").status_code == 403
    response, took = timed(viewer_client, "/health/destinations?format=json")
    assert took < 2.5, took
    check = json.loads(response.content)["checks"]["destination:offsite-vault-7"]
    assert check["ok"] is False
    assert "not-a-real-secret-key" not in response.content.decode()
    page = viewer_client.get("/health/destinations")
    assert b"offsite-vault-7" in page.content


# --- Bounded recurrence --------------------------------------------------------------------


def plan_form(rule):
    return {
        "name": "Quarterly restore drill",
        "time_budget": "2h",
        "rule": rule,
        "start_time": "10:00",
        "time_zone": "Europe/Berlin",
        "enabled": "on",
    }


def test_a_rule_that_never_comes_is_refused_by_the_form(manager_client):
    from drills.models import DrillPlan

    response = manager_client.post("/drills/plans/new/", plan_form(NEVER))
    assert response.status_code == 200
    assert b"no date in the next 10 years" in response.content
    assert not DrillPlan.objects.exists()
    ended = "FREQ=YEARLY;UNTIL=20200101T000000"
    response = manager_client.post("/drills/plans/new/", plan_form(ended))
    assert b"no date in the next 10 years" in response.content


def test_a_rule_that_never_comes_is_refused_by_model_validation(db):
    """The admin validates through the model (full_clean)."""
    from django.core.exceptions import ValidationError

    from drills.models import DrillPlan

    plan = DrillPlan(name="never", rule=NEVER)
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    assert "no date in the next 10 years" in str(refused.value.message_dict["rule"])
    DrillPlan(name="quarterly").full_clean()  # the default rule is fine


@pytest.mark.parametrize(
    "rule",
    [
        NEVER,
        "FREQ=WEEKLY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=DAILY;BYMONTH=6;BYMONTHDAY=31;BYDAY=MO",
        "FREQ=MONTHLY;BYMONTH=11;BYMONTHDAY=31",
    ],
)
def test_a_stored_rule_that_never_comes_costs_milliseconds(db, rule):
    """Stored directly in the database (no validation): every evaluation stays bounded."""

    plan = DrillPlanFactory(name=f"never {rule}", rule=rule)
    started = time.monotonic()
    assert plan.next_dates() == []
    assert plan.overdue_since() is None
    assert plan.last_due() is None
    took = time.monotonic() - started
    assert took < 0.3, f"{rule}: {took:.3f} s (unbounded: seconds)"


def test_the_dashboard_with_a_stored_never_rule_renders_fast(viewer_client):
    DrillPlanFactory(name="never", rule=NEVER)
    viewer_client.get("/")  # warm the templates
    started = time.monotonic()
    assert viewer_client.get("/").status_code == 200
    assert viewer_client.get("/drills/").status_code == 200
    assert time.monotonic() - started < 2


def test_bounded_evaluation_still_finds_sparse_and_past_dates(db):
    from datetime import UTC, date, datetime, time

    from drills import schedule as sched

    def next_29_february(weekday, after_year):
        return sched.next_dates(
            f"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY={weekday}",
            time(10),
            "UTC",
            after=datetime(after_year, 3, 1, tzinfo=UTC),
            anchor=date(2024, 1, 1),
            count=1,
        )

    # 29 February on a Friday: eight years apart, found all the same.
    assert [d.date() for d in next_29_february("FR", 2028)] == [date(2036, 2, 29)]
    # On a Monday: 2044, beyond the ten-year horizon of any evaluation.
    assert next_29_february("MO", 2025) == []
    # A plan created years ago still knows its previous date.
    last = sched.previous_date(
        "FREQ=MONTHLY;BYDAY=1FR",
        time(10),
        "UTC",
        before=datetime(2026, 6, 1, tzinfo=UTC),
        anchor=date(2016, 1, 1),
    )
    assert last.date() == date(2026, 5, 1)


# --- Trusted proxies -------------------------------------------------------------------------


def request_from(remote="192.0.2.10", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_client_address_trusts_only_the_configured_proxies(settings):
    spoofed = "6.6.6.6, 203.0.113.5, 10.0.0.2"
    settings.DR_TRUSTED_PROXIES = 0
    assert client_address(request_from(forwarded=spoofed)) == "192.0.2.10"
    settings.DR_TRUSTED_PROXIES = 1
    assert client_address(request_from(forwarded=spoofed)) == "10.0.0.2"
    settings.DR_TRUSTED_PROXIES = 2
    assert client_address(request_from(forwarded=spoofed)) == "203.0.113.5"
    # Fewer hops than proxies, or garbage: the connection's own address.
    assert client_address(request_from(forwarded="10.0.0.2")) == "192.0.2.10"
    settings.DR_TRUSTED_PROXIES = 1
    assert client_address(request_from(forwarded="not-an-ip")) == "192.0.2.10"
    assert client_address(request_from()) == "192.0.2.10"


def test_the_audit_address_ignores_a_forged_first_hop(manager_client, settings):
    settings.DR_TRUSTED_PROXIES = 1
    manager_client.post(
        "/escrow/confirm/",
        {"where": "vault"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5",
    )
    entry = AuditEntry.objects.get(action="confirm_key_escrow")
    assert entry.address == "203.0.113.5"


# --- One record, one log line ----------------------------------------------------------------


@contextmanager
def console_log():
    """What the configured console handler (its filters and format) writes."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(old)


def test_a_source_named_with_a_newline_logs_one_line(db, tmp_path):
    from backups import services as backup_services

    source = data.sqlite_source("x\nFAKE LINE", data.small_sqlite(tmp_path / "x.db"))
    job = BackupJobFactory(
        name=source.name,
        source=source,
        destinations=[DestinationFactory(name="local", path=str(tmp_path / "b"))],
    )
    with console_log() as out:
        run = backup_services.backup_now(job)
    assert run.status == "succeeded", run.error
    lines = [line for line in out.getvalue().splitlines() if f"backup run #{run.pk} " in line]
    assert len(lines) == 1, out.getvalue()
    assert "x\\nFAKE LINE" in lines[0]
    assert not any(line.startswith("FAKE LINE") for line in out.getvalue().splitlines())


def test_control_characters_are_escaped_in_messages_and_arguments():
    with console_log() as out:
        logging.getLogger("dr.test").warning("user %s\r\nadmin logged in", "eve\n\x1b[31m")
    text = out.getvalue()
    assert text.count("\n") == 1
    assert "eve\\n\\x1b[31m\\r\\nadmin logged in" in text


def test_tracebacks_keep_their_lines():
    with console_log() as out:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("dr.test").exception("failed for %s", "a\nb")
    text = out.getvalue()
    assert "failed for a\\nb" in text and "Traceback" in text and text.count("\n") > 2


# --- Content-Security-Policy -----------------------------------------------------------------


def test_every_page_sends_the_policy(client, viewer_client):
    for response in (client.get("/accounts/login/"), viewer_client.get("/")):
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-eval" not in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"""\s(on[a-z]+|hx-on[:\w-]*)\s*=\s*["']""", re.I)


def test_no_template_or_python_built_html_has_inline_script():
    offenders = []
    templates = [p for p in ROOT.glob("**/templates/**/*.html") if ".venv" not in p.parts]
    python = [
        p for p in ROOT.glob("*/**/*.py") if "tests" not in p.parts and ".venv" not in p.parts
    ]
    assert len(templates) > 50
    for path in templates + python:
        text = path.read_text(errors="replace")
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, re.compile(r"javascript:", re.I)):
            for match in pattern.finditer(text):
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0).strip()}")
    assert offenders == [], "\n".join(offenders)
    assert (ROOT / "static" / "dr_portal" / "portal.js").exists()
    assert django_settings.DR_CSP
