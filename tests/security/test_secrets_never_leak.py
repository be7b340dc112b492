"""A full flow with real secrets, then a grep of everything it rendered, logged and stored.

Secrets: a PostgreSQL password (a real login role), S3 access keys (moto over HTTP), a webhook
URL whose path is its bearer token (a real local receiver), the master key and SECRET_KEY.
Flow, through the portal's own forms and a real cluster: create the source, the S3
destinations and the webhook (one form re-rendered with an error), test the destination,
run backups that succeed, fail (PostgreSQL refused, S3 down) and raise alerts delivered to
the webhook, run a restore test; then crawl every page and admin page as a superuser.

Haystack: every page body and redirect, the messages shown, the test process's log records
(caplog), the cluster's log file, every row of every table (django-q2's queued, saved and
scheduled task arguments decoded), manifests on disk and in S3, the webhook bodies received.
"""

import io
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command

from backups.models import BackupRun, Destination, Source
from incidents.models import Notification, Webhook
from recovery import restore_tests
from recovery.models import RestoreTest
from tests.factories import BackupJobFactory, DestinationFactory, SystemFactory
from tests.faults.conftest import wait_run
from tests.security.test_csrf import SKIP, Forms
from tests.support import data
from tests.support.cluster import cluster_log, running_cluster, wait_for
from tests.support.portal import free_port
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, MotoS3

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PG_PASSWORD = "Pg-pa55-Secret-7f3a9c0d"
WEBHOOK_TOKEN = "whk-Bearer-5e1d0c9b8a7f"


class Receiver(BaseHTTPRequestHandler):
    bodies: list[str] = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        Receiver.bodies.append(self.rfile.read(length).decode(errors="replace"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]  # the receiver listens on loopback
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def s3():
    server = MotoS3().start().reset()
    try:
        server.client().create_bucket(Bucket="dr-secrets")
        yield server
    finally:
        server.stop()


def crawl(client, start=("/", "/admin/"), limit=400):
    seen, queue, pages = set(), list(start), []
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen or SKIP.search(path) or "/delete/" in path:
            continue
        seen.add(path)
        response = client.get(path)
        body = response.content.decode(errors="replace")
        pages.append((path, f"{response.status_code} {response.get('Location', '')} {body}"))
        if "html" not in response.get("Content-Type", ""):
            continue
        parser = Forms()
        parser.feed(body)
        for href in parser.links:
            url = urlparse(urljoin(path, href))
            if not url.netloc and url.path.startswith("/") and url.path not in seen:
                queue.append(
                    url.path + (f"?{url.query}" if "admin" in url.path and url.query else "")
                )
    return pages


def every_row() -> list[tuple[str, str]]:
    """Each table's rows as text; django-q2's signed, pickled task payloads decoded first."""
    from django_q.signing import SignedPackage

    rows = []
    for model in apps.get_models():
        for row in model._default_manager.all().values():
            rows.append((f"{model._meta.label} {row.get('id', '')}", repr(row)))
    for queued in apps.get_model("django_q", "OrmQ").objects.all():
        rows.append((f"OrmQ {queued.pk} payload", repr(SignedPackage.loads(queued.payload))))
    for task in apps.get_model("django_q", "Task").objects.all():
        rows.append((f"Task {task.pk} args", repr((task.args, task.kwargs, task.result))))
    return rows


def post_form(client, url, fields):
    response = client.post(url, fields)
    return response, response.content.decode(errors="replace")


@pytest.mark.postgres
def test_no_secret_appears_in_pages_logs_tables_or_manifests(
    superuser_client, tmp_path, s3, receiver, caplog
):
    caplog.set_level(logging.INFO)  # the level the portal logs at (LOG_LEVEL default)
    client = superuser_client
    secrets = {
        "PostgreSQL password": PG_PASSWORD,
        "S3 access key id": ACCESS_KEY,
        "S3 secret access key": SECRET_KEY,
        "webhook token": WEBHOOK_TOKEN,
        "master key": os.environ["DR_ENCRYPTION_KEYS"],
        "SECRET_KEY": settings.SECRET_KEY,
    }
    haystack: list[tuple[str, str]] = []
    system = SystemFactory()
    dead_port = free_port()

    with data.pg_database(prefix="dr_secrets_", owner_password=PG_PASSWORD) as (dbname, role):
        source_form = {
            "system": system.pk,
            "kind": "postgresql",
            "data_class": "critical",
            "host": "127.0.0.1",
            "port": 5432,
            "database": dbname,
            "user": role,
            "new_password": PG_PASSWORD,
            "checks": json.dumps(
                [{"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"}]
            ),
            "restore_test_schedule": "",
        }
        # A form sent back with an error must not echo the password.
        response, body = post_form(client, "/backups/sources/new/", {**source_form, "name": ""})
        assert response.status_code == 400
        haystack.append(("source form with an error", body))
        for name, port in (("toolhub-pg", 5432), ("toolhub-pg-refused", dead_port)):
            response, body = post_form(
                client, "/backups/sources/new/", {**source_form, "name": name, "port": port}
            )
            assert response.status_code == 302, body[:2000]
        assert Source.objects.get(name="toolhub-pg").password.reveal() == PG_PASSWORD

        dest_form = {
            "kind": "s3",
            "bucket": "dr-secrets",
            "prefix": "dr/",
            "region": "us-east-1",
            "storage_class": "STANDARD",
            "new_access_key_id": ACCESS_KEY,
            "new_secret_access_key": SECRET_KEY,
            "keep_days": 7,
            "keep_last": 3,
            "enabled": "on",
        }
        for name, endpoint in (
            ("offsite", s3.endpoint),
            ("offsite-down", f"http://127.0.0.1:{dead_port}"),
        ):
            response, body = post_form(
                client,
                "/backups/destinations/new/",
                {**dest_form, "name": name, "endpoint_url": endpoint},
            )
            assert response.status_code == 302, body[:2000]
        local = DestinationFactory(name="local", path=str(tmp_path / "store"))
        for dest in Destination.objects.filter(kind="s3"):
            response = client.post(f"/backups/destinations/{dest.pk}/test/", follow=True)
            haystack.append((f"destination test of {dest.name}", response.content.decode()))

        hook_url = f"http://127.0.0.1:{receiver.server_port}/hooks/{WEBHOOK_TOKEN}"
        response, body = post_form(
            client,
            "/incidents/webhooks/new/",
            {"name": "ops-chat", "url": hook_url, "active": "on"},
        )
        assert response.status_code == 302, body[:2000]
        assert Webhook.objects.get().url.reveal() == hook_url

        offsite, down = (
            Destination.objects.get(name="offsite"),
            Destination.objects.get(name="offsite-down"),
        )
        jobs = [
            BackupJobFactory(
                name="pg-ok",
                source=Source.objects.get(name="toolhub-pg"),
                destinations=[local, offsite],
            ),
            BackupJobFactory(
                name="pg-refused",
                source=Source.objects.get(name="toolhub-pg-refused"),
                destinations=[local],
            ),
            BackupJobFactory(
                name="pg-s3-down", source=Source.objects.get(name="toolhub-pg"), destinations=[down]
            ),
        ]
        with running_cluster(workers=2, DR_OUTBOUND_ALLOW="127.0.0.1") as cluster:
            for job in jobs:
                response = client.post(f"/backups/jobs/{job.pk}/run/", follow=True)
                haystack.append((f"run now {job.name}", response.content.decode()))
            runs = {
                job.name: wait_run(
                    BackupRun,
                    BackupRun.objects.get(job=job).pk,
                    {"succeeded", "partial", "failed"},
                    timeout=120,
                )
                for job in jobs
            }
            assert runs["pg-ok"].status == "succeeded", runs["pg-ok"].error
            assert runs["pg-refused"].status == "failed"
            assert runs["pg-s3-down"].status == "failed"
            test = restore_tests.start_restore_test(Source.objects.get(name="toolhub-pg"))
            restore_tests.enqueue_restore_test(test)
            test = wait_run(RestoreTest, test.pk, {"succeeded", "failed"}, timeout=120)
            assert test.status == "succeeded", test.error
            wait_for(lambda: len(Receiver.bodies) >= 2, timeout=60, message="webhook deliveries")
            wait_for(
                lambda: not Notification.objects.filter(status="pending", attempts=0).exists(),
                timeout=30,
                message="notifications settled",
            )
            haystack.append(("cluster log", cluster_log(cluster)))

        for job in jobs:
            haystack.append(
                (f"job page {job.name}", client.get(f"/backups/jobs/{job.pk}/").content.decode())
            )
        haystack += crawl(client)
        haystack += every_row()
        haystack += [(f"webhook body {i}", body) for i, body in enumerate(Receiver.bodies)]
        for path in Path(local.path).rglob("*.json"):
            haystack.append((str(path), path.read_text()))
        for key in s3.objects("dr-secrets"):
            if key.endswith(".json"):
                obj = s3.client().get_object(Bucket="dr-secrets", Key=key)
                haystack.append((f"s3 {key}", obj["Body"].read().decode()))
        out = io.StringIO()
        with pytest.raises(SystemExit):  # exit code 2: a source is breached (no good backup)
            call_command("dr_status", stdout=out)
        haystack.append(("dr_status", out.getvalue()))
        haystack += [(f"log {r.name}", r.getMessage() + (r.exc_text or "")) for r in caplog.records]

    # The flow really exercised the secrets' paths.
    assert len(haystack) > 150
    places = [where for where, _ in haystack]
    for admin_page in ("backups/source/", "backups/destination/", "incidents/webhook/"):
        assert any(f"/admin/{admin_page}" in p and p.endswith("/change/") for p in places), (
            admin_page
        )
    assert any(p.startswith("OrmQ") or p.startswith("Task") for p in places)
    assert any("offsite-down" in text and "127.0.0.1" in text for _, text in haystack)
    assert "pg_dump" in runs["pg-refused"].error
    leaks = [
        f"{what} in {where}"
        for where, text in haystack
        for what, value in secrets.items()
        if value and value in text
    ]
    assert leaks == [], "secrets leaked:\n" + "\n".join(leaks[:30])
