"""Attack replays (issue 13): runbook SQL that writes or runs programs, SSRF through http_check
and webhooks, and stored step secrets replayed to a new address.

Each test states the attack; the loopback servers here stand for the internal services an
attacker would aim at, so the allow-list is empty unless a test names 127.0.0.1 itself.
"""

import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from django.core.management import call_command
from django.urls import reverse

from dr_portal.lib import outbound
from incidents import tasks as delivery
from incidents.models import Alert, Contact, DeliveryAttempt, Notification, Webhook
from recovery.failover import tasks
from recovery.failover.models import FailoverRun, RunbookStep
from recovery.failover.steps import StepDefinitionError, parse_steps, run_steps
from recovery.failover.steps.base import Context, StepSpec
from recovery.failover.steps.pg import SqlCheck
from tests.factories import RunbookFactory, SystemFactory, UserFactory
from tests.failover.runs import run_inline
from tests.marks import needs

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
COPY_PAYLOAD = "COPY (SELECT 1) TO PROGRAM 'id > {path}'"


# --- a loopback HTTP server standing for an internal service ------------------------


class Internal:
    """An HTTP server on a loopback address that records requests and answers a script."""

    def __init__(self, host="127.0.0.1", answer=(200, {}, b"")):
        self.requests = []
        self.answer = answer
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = outer.answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def internal():
    server = Internal(answer=(200, {}, b"dr_portal_secret_metric 42\n" * 200))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def no_allow_list(settings):
    settings.DR_OUTBOUND_ALLOW = []
    return settings


def run_one(defn, **kw):
    result = run_steps(parse_steps([defn], allow_command=True), **kw)
    return result.outcomes[0]


# --- runbook SQL ---------------------------------------------------------------------


def _sql_check(query, **params):
    return {
        "name": "check",
        "kind": "sql_check",
        "params": {**PG, "query": query, "expect": "rows", **params},
    }


def test_copy_to_program_in_sql_check_is_refused_in_the_form_and_in_apply_runbooks(
    manager_client, superuser, tmp_path
):
    target = tmp_path / "pwned"
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    response = manager_client.post(
        reverse("recovery:failover:step_create", args=[runbook.pk]),
        {
            "order": 2,
            "name": "check",
            "kind": "sql_check",
            "params": json.dumps(
                {**PG, "query": COPY_PAYLOAD.format(path=target), "expect": "rows"}
            ),
            "on_failure": "stop",
            "retries": 0,
        },
    )
    assert response.status_code == 200
    assert "need a sql_write step" in response.content.decode()
    assert not runbook.steps.filter(kind="sql_check").exists()

    yaml_file = tmp_path / "runbooks.yaml"
    yaml_file.write_text(
        "runbooks:\n  - system: tool-hub\n    name: Evil\n    failure_type: single_node\n"
        "    steps:\n      - {name: c, kind: sql_check, params: {host: 127.0.0.1, "
        f'query: "{COPY_PAYLOAD.format(path=target)}", expect: rows}}}}\n'
    )
    err = io.StringIO()
    with pytest.raises(SystemExit):  # even a superuser cannot make sql_check write
        call_command("apply_runbooks", str(yaml_file), "--as", "root", stderr=err)
    assert "need a sql_write step" in err.getvalue()
    assert not target.exists()


def test_an_operators_test_run_of_a_stored_copy_to_program_step_fails_and_runs_nothing(
    operator_client, tmp_path
):
    """A step stored before this check existed (or written to the table directly)."""
    target = tmp_path / "pwned"
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    RunbookStep.objects.filter(runbook=runbook).update(
        kind="sql_check",
        name="sneaky",
        params={
            **PG,
            "dbname": "postgres",
            "query": COPY_PAYLOAD.format(path=target),
            "expect": "rows",
            "read_only": False,
            "connect_timeout": 5,
        },
    )
    runbook.refresh_config()
    response = operator_client.post(
        reverse("recovery:failover:start_run", args=[runbook.pk]), {"mode": "test"}
    )
    assert response.status_code == 302
    run = FailoverRun.objects.get()
    tasks.run_failover(run.pk)
    run.refresh_from_db()
    step = run.step_runs.get()
    assert run.status == "failed" and step.status == "failed"
    assert "read_only: false is not possible" in step.output
    assert not target.exists()


def test_the_engine_itself_never_sends_copy_to_program(tmp_path):
    """Even handed straight to the step kind, past every validation, nothing runs."""
    target = tmp_path / "pwned"
    params = {
        **PG,
        "dbname": "postgres",
        "connect_timeout": 5,
        "query": COPY_PAYLOAD.format(path=target),
        "expect": "rows",
        "read_only": False,
    }
    result = SqlCheck().run(params, Context(deadline=time.monotonic() + 10))
    assert not result.ok and "refused" in result.output
    for query in ("SELECT 1; " + params["query"], "COMMIT; " + params["query"]):
        result = SqlCheck().run({**params, "query": query}, Context(time.monotonic() + 10))
        assert not result.ok
    assert not target.exists()


def test_read_only_false_is_refused_with_a_clear_message():
    with pytest.raises(StepDefinitionError, match="read_only: false is not possible"):
        parse_steps([_sql_check("SELECT 1", read_only=False)], allow_command=True)


@pytest.fixture
@needs("postgres")
def reader():
    """A login role that can only read, as sql_check wants."""
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN CREATE ROLE dr_check LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    return {**PG, "user": "dr_check"}


@pytest.mark.postgres
def test_a_check_never_runs_as_a_superuser(tmp_path):
    """A superuser's SELECT writes server files and reloads the configuration, read-only
    transaction or not: lo_export(lo_from_bytea(...)) then pg_reload_conf() is a way to run
    a program. So the check refuses the role before sending the statement."""
    target = tmp_path / "written-by-postgres"
    for query in (
        f"SELECT lo_export(lo_from_bytea(0, 'x'), '{target}')",
        "SELECT pg_read_file('/etc/passwd', 0, 190)",
        "SELECT pg_reload_conf()",
    ):
        step = run_one(_sql_check(query, expect="true"))
        assert step.status == "failed"
        assert "role 'postgres' is a superuser" in step.output
        assert "root:" not in step.output
    assert not target.exists()


def test_a_check_never_shows_what_it_read(reader):
    """The value is not a number, so it is neither stored nor shown."""
    step = run_one(
        {
            "name": "c",
            "kind": "sql_check",
            "params": {**reader, "query": "SELECT 'root:x:0:0:secret-hash'", "expect": "> 0"},
        }
    )
    assert step.status == "failed"
    assert "returned a non-number" in step.output and "secret-hash" not in step.output
    step = run_one(
        {
            "name": "c",
            "kind": "sql_check",
            "params": {
                **reader,
                "query": "SELECT pg_read_file('/etc/passwd', 0, 190)",
                "expect": "> 0",
            },
        }
    )
    assert step.status == "failed" and "permission denied" in step.output


def test_a_manager_cannot_create_sql_write_in_the_form_or_through_apply(
    manager_client, manager, tmp_path
):
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    response = manager_client.post(
        reverse("recovery:failover:step_create", args=[runbook.pk]),
        {
            "order": 2,
            "name": "fix data",
            "kind": "sql_write",
            "params": json.dumps({**PG, "statement": "DELETE FROM x"}),
            "on_failure": "stop",
            "retries": 0,
        },
    )
    assert "Only superusers may create or edit sql_write steps." in response.content.decode()
    assert not RunbookStep.objects.filter(kind="sql_write").exists()

    yaml_file = tmp_path / "runbooks.yaml"
    yaml_file.write_text(
        "runbooks:\n  - system: tool-hub\n    name: W\n    failure_type: single_node\n"
        "    steps:\n      - {name: fix, kind: sql_write, params: {host: 127.0.0.1, "
        'statement: "DELETE FROM x"}}\n'
    )
    for command, extra in (("apply_runbooks", ["--as", manager.username]), ("apply_runbooks", [])):
        err = io.StringIO()
        with pytest.raises(SystemExit):
            call_command(command, str(yaml_file), *extra, stderr=err)
        assert "only superusers may create or edit sql_write steps" in err.getvalue()
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("dr_apply", str(yaml_file), stderr=err)
    assert "only superusers may create or edit sql_write steps" in err.getvalue()
    assert not RunbookStep.objects.filter(kind="sql_write").exists()


@pytest.fixture
@needs("postgres")
def scratch_table():
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dr_sec_sql_write")
        conn.execute("CREATE TABLE dr_sec_sql_write (n int)")
    try:
        yield "dr_sec_sql_write"
    finally:
        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS dr_sec_sql_write")


def _rows(table):
    with psycopg.connect(**PG, dbname="postgres") as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_a_superuser_creates_sql_write_test_mode_skips_it_live_mode_runs_it(
    superuser_client, scratch_table
):
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    response = superuser_client.post(
        reverse("recovery:failover:step_create", args=[runbook.pk]),
        {
            "order": 2,
            "name": "mark",
            "kind": "sql_write",
            "params": json.dumps({**PG, "statement": f"INSERT INTO {scratch_table} VALUES (1)"}),
            "on_failure": "stop",
            "retries": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    step = RunbookStep.objects.get(kind="sql_write")
    assert step.side_effects
    run = run_inline(runbook, mode="test")
    assert run.step_runs.get(name="mark").status == "skipped"
    assert _rows(scratch_table) == 0
    run = run_inline(runbook, mode="live")
    assert run.step_runs.get(name="mark").status == "succeeded", run.error
    assert _rows(scratch_table) == 1


def test_sql_write_cannot_run_in_test_mode_through_test_params():
    with pytest.raises(StepDefinitionError, match="always skipped in test mode"):
        parse_steps(
            [
                {
                    "name": "w",
                    "kind": "sql_write",
                    "params": {**PG, "statement": "DELETE FROM x"},
                    "test_params": {"host": "127.0.0.1"},
                }
            ],
            allow_command=True,
        )


def test_no_option_turns_a_side_effect_off(internal, no_allow_list):
    for defn, reason in (
        ({"kind": "webhook", "params": {"url": "https://x.example/h"}}, "always has side"),
        (
            {"kind": "http_check", "params": {"url": "https://x.example/h", "method": "DELETE"}},
            "method DELETE changes things",
        ),
        ({"kind": "sql_write", "params": {**PG, "statement": "SELECT 1"}}, "always has side"),
    ):
        with pytest.raises(StepDefinitionError, match=reason):
            parse_steps([{"name": "s", "side_effects": False, **defn}], allow_command=True)
    # A POST "check" is a side effect: skipped in test mode, never sent.
    no_allow_list.DR_OUTBOUND_ALLOW = ["127.0.0.1"]
    step = run_one(
        {"name": "p", "kind": "http_check", "params": {"url": internal.url, "method": "POST"}},
        test_mode=True,
    )
    assert step.status == "skipped" and not internal.requests
    # And a flag stored as false (an old row, a hand-made spec) does not win over the kind.
    spec = StepSpec(
        name="hook",
        kind="webhook",
        params={"url": internal.url, "method": "POST", "expect_status": 200},
        timeout=5,
        side_effects=False,
    )
    result = run_steps([spec], test_mode=True)
    assert result.outcomes[0].status == "skipped" and not internal.requests


# --- SSRF ----------------------------------------------------------------------------


def test_http_check_of_loopback_metrics_is_refused_and_stores_no_body(internal, no_allow_list):
    url = f"{internal.url}/metrics"
    step = run_one({"name": "m", "kind": "http_check", "params": {"url": url}})
    assert step.status == "failed"
    assert "127.0.0.1 is a loopback address" in step.output
    assert not internal.requests
    # Expecting "down" does not turn a refusal into a pass.
    step = run_one({"name": "m", "kind": "http_check", "params": {"url": url, "expect": "down"}})
    assert step.status == "failed" and not internal.requests


def test_an_allowed_internal_check_keeps_the_status_and_the_match_not_the_body(
    internal, no_allow_list
):
    no_allow_list.DR_OUTBOUND_ALLOW = ["127.0.0.1"]
    step = run_one(
        {
            "name": "m",
            "kind": "http_check",
            "params": {"url": f"{internal.url}/metrics", "body_contains": "secret_metric"},
        }
    )
    assert step.status == "succeeded"
    assert step.output.endswith("-> 200; expected text found")
    assert "dr_portal_secret_metric 42" not in step.output


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1:9/", "loopback"),
        ("http://[::1]:9/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[::ffff:127.0.0.1]:9/", "loopback"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://0.0.0.0:9/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://localhost:9/", "loopback"),  # a host name that resolves to loopback
    ],
)
def test_internal_addresses_are_refused_without_the_allow_list(url, reason, no_allow_list):
    with pytest.raises(outbound.Refused, match=reason):
        outbound.request("GET", url, timeout=1)
    step = run_one({"name": "c", "kind": "http_check", "params": {"url": url}})
    assert step.status == "failed" and "refused" in step.output


def test_the_address_checked_is_the_address_connected_to(monkeypatch, no_allow_list):
    """DNS rebinding: a name that answers public first and loopback next is resolved once."""
    answers = ["93.184.215.14", "127.0.0.1"]
    calls = []
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        calls.append(host)
        ip = answers[min(len(calls), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    connected = []
    real_connect = socket.socket.connect

    def recording_connect(self, address):
        connected.append(address[0])
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    with pytest.raises(OSError, match="no network"):
        outbound.request("GET", "http://rebind.test/", timeout=1)
    assert calls == ["rebind.test"] and connected == ["93.184.215.14"]
    monkeypatch.setattr(socket.socket, "connect", real_connect)
    with pytest.raises(outbound.Refused, match="rebind.test \\(127.0.0.1\\) is a loopback"):
        outbound.request("GET", "http://rebind.test/", timeout=1)


@pytest.fixture
def redirect_pair(settings):
    """An allowed server (127.0.0.1) that redirects to an internal one (127.0.0.2)."""
    inner = Internal(host="127.0.0.2")
    outer = Internal(answer=(302, {"Location": f"{inner.url}/latest/meta-data/"}, b""))
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]
    try:
        yield outer, inner
    finally:
        outer.close()
        inner.close()


def test_a_redirect_to_an_internal_address_is_not_followed_by_steps(redirect_pair):
    outer, inner = redirect_pair
    step = run_one({"name": "c", "kind": "http_check", "params": {"url": f"{outer.url}/h"}})
    assert step.status == "failed"
    assert "-> 302 (a redirect; not followed)" in step.output
    step = run_one({"name": "w", "kind": "webhook", "params": {"url": f"{outer.url}/h"}})
    assert step.status == "failed" and "302" in step.output
    assert len(outer.requests) == 2 and not inner.requests


def _webhook_notification(url):
    hook = Webhook.objects.create(name="ops", url=url)
    alert = Alert.objects.create(key="k", kind="backup_failed", title="t")
    return Notification.objects.create(
        alert=alert, channel="webhook", webhook=hook, recipient="webhook ops", subject="s", body="b"
    )


@pytest.mark.django_db
def test_a_notification_webhook_redirect_to_an_internal_address_is_not_followed(redirect_pair):
    outer, inner = redirect_pair
    note = _webhook_notification(f"{outer.url}/hook")
    assert delivery.deliver_notification(note.pk) == "retry"
    attempt = DeliveryAttempt.objects.get(notification=note)
    assert not attempt.ok and "302, a redirect (not followed)" in attempt.detail
    assert len(outer.requests) == 1 and not inner.requests


@pytest.mark.django_db
def test_a_notification_webhook_to_an_internal_address_is_refused(internal, no_allow_list):
    note = _webhook_notification(f"{internal.url}/hook")
    assert delivery.deliver_notification(note.pk) == "failed"  # no retries: it stays internal
    attempt = DeliveryAttempt.objects.get(notification=note)
    assert not attempt.ok and "127.0.0.1 is a loopback address" in attempt.detail
    assert not internal.requests


def test_a_bad_allow_list_entry_is_named():
    with pytest.raises(ValueError, match="'not a host!'"):
        outbound.parse_allow(["10.0.0.0/8", "not a host!"])
    allow = outbound.parse_allow(["10.0.0.0/8", "*.corp.example", "::1"])
    assert allow.names("db.corp.example") and not allow.names("corp.example.evil")


# --- stored secrets follow only their endpoint -----------------------------------------


def test_changing_a_steps_url_in_the_form_drops_its_secret_and_says_so(
    manager_client, internal, settings
):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]
    runbook = RunbookFactory(
        steps=[
            {"name": "api", "kind": "http_check", "params": {"url": "https://api.example.com/h"}}
        ],
        steps__secrets={"api": "tk-live-0123456789"},
    )
    step = runbook.steps.get()
    form = {
        "order": 1,
        "name": "api",
        "kind": "http_check",
        "params": json.dumps({"url": "https://api.example.com/h", "request_timeout": 3}),
        "on_failure": "stop",
        "retries": 0,
    }
    edit = reverse("recovery:failover:step_edit", args=[runbook.pk, step.pk])
    page = manager_client.get(edit).content.decode()
    assert "removes the stored secret" in page
    manager_client.post(edit, form)  # same URL, other settings: the secret stays
    step.refresh_from_db()
    assert step.secret.reveal() == "tk-live-0123456789"

    response = manager_client.post(
        edit, {**form, "params": json.dumps({"url": f"{internal.url}/steal"})}, follow=True
    )
    assert "its stored secret was removed" in response.content.decode()
    step.refresh_from_db()
    assert not step.secret
    run_inline(runbook, mode="test")
    assert "Authorization" not in internal.requests[0][2]

    manager_client.post(
        edit, {**form, "params": json.dumps({"url": f"{internal.url}/h"}), "secret": "new-one"}
    )
    step.refresh_from_db()
    assert step.secret.reveal() == "new-one"


def test_apply_runbooks_drops_a_secret_whose_url_changed(db, tmp_path, monkeypatch):
    SystemFactory(name="tool-hub")
    monkeypatch.setenv("TOKEN", "tk-live-0123456789")
    text = (
        "runbooks:\n  - system: tool-hub\n    name: R\n    failure_type: single_node\n"
        "    steps:\n      - name: hook\n        kind: webhook\n"
        '        params: {{url: "{url}"}}\n{secret}'
    )
    path = tmp_path / "r.yaml"
    path.write_text(
        text.format(url="https://hooks.example.com/a", secret="        secret_env: TOKEN\n")
    )
    call_command("apply_runbooks", str(path), stdout=io.StringIO())
    path.write_text(text.format(url="https://evil.example.net/a", secret=""))
    out = io.StringIO()
    call_command("apply_runbooks", str(path), stdout=out)
    assert "stored secret of hook removed" in out.getvalue()
    assert not RunbookStep.objects.get(name="hook").secret


# --- the same rules in the Django admin ----------------------------------------------


def _admin_post(client, runbook, rows):
    """POST the runbook's admin change page with these step rows (dicts of step fields)."""
    prefix = "steps"
    existing = [r for r in rows if r.get("id")]
    data = {
        "system": runbook.system.pk,
        "name": runbook.name,
        "failure_type": runbook.failure_type,
        "description": "",
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": len(existing),
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for i, row in enumerate(rows):
        fields = {
            "runbook": runbook.pk,
            "test_params": "{}",
            "timeout": "00:01:00",
            "on_failure": "stop",
            "retries": 0,
            "retry_delay": "0",
            **row,
        }
        data.update({f"{prefix}-{i}-{k}": v for k, v in fields.items()})
    return client.post(reverse("admin:recovery_runbook_change", args=[runbook.pk]), data)


def test_the_admin_refuses_sql_write_from_a_staff_manager(client, db):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="sam", role="manager", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="recovery", codename__endswith="runbookstep"
        ),
        *Permission.objects.filter(codename="change_runbook"),
    )
    client.force_login(staff)
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 1}}])
    step = runbook.steps.get()
    response = _admin_post(
        client,
        runbook,
        [
            {"id": step.pk, "order": 1, "name": "w", "kind": "wait", "params": '{"seconds": 1}'},
            {
                "order": 2,
                "name": "fix",
                "kind": "sql_write",
                "params": json.dumps({**PG, "statement": "DELETE FROM x"}),
            },
        ],
    )
    assert response.status_code == 200
    assert "Only superusers may create or edit sql_write steps." in response.content.decode()
    assert not RunbookStep.objects.filter(kind="sql_write").exists()


def test_the_admin_drops_a_secret_whose_url_changed(superuser_client):
    runbook = RunbookFactory(
        steps=[
            {"name": "api", "kind": "http_check", "params": {"url": "https://api.example.com/h"}}
        ],
        steps__secrets={"api": "tk-live-0123456789"},
    )
    step = runbook.steps.get()
    row = {"id": step.pk, "order": 1, "name": "api", "kind": "http_check"}
    response = _admin_post(
        superuser_client, runbook, [{**row, "params": '{"url": "https://api.example.com/h"}'}]
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    step.refresh_from_db()
    assert step.secret.reveal() == "tk-live-0123456789"
    _admin_post(superuser_client, runbook, [{**row, "params": '{"url": "https://evil.example/"}'}])
    step.refresh_from_db()
    assert step.params["url"] == "https://evil.example/" and not step.secret


def test_webhook_forms_refuse_an_internal_address_up_front(manager_client, superuser_client):
    response = manager_client.post(
        reverse("incidents:contact_new"),
        {"role": "DBA", "name": "Ann", "webhook_url": "http://169.254.169.254/latest/meta-data/"},
    )
    assert "169.254.169.254 is a link-local" in response.content.decode()
    response = superuser_client.post(
        reverse("admin:incidents_webhook_add"),
        {"name": "ops", "active": "on", "url": "http://localhost:8000/metrics"},
    )
    assert "localhost is a loopback address" in response.content.decode()
    assert not Webhook.objects.exists() and not Contact.objects.exists()


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 whose certificate names only `localhost`."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = Internal()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    server.port = server.server.server_address[1]
    server.cert = cert
    try:
        yield server
    finally:
        server.close()


def test_https_checks_the_certificate_against_the_name_not_the_address(
    tls_server, settings, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.cert))
    settings.DR_OUTBOUND_ALLOW = ["localhost", "127.0.0.1"]
    response = outbound.request("GET", f"https://localhost:{tls_server.port}/", timeout=5)
    assert response.status == 200
    assert tls_server.requests[0][2]["Host"] == f"localhost:{tls_server.port}"
    with pytest.raises(OSError, match="certificate"):  # the address is not the name
        outbound.request("GET", f"https://127.0.0.1:{tls_server.port}/", timeout=5)
