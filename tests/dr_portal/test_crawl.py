"""Every page a user can reach by following links renders, for each role, with demo data.

A crawl from the dashboard over the demo configuration, after a real backup and a
real restore test, catches the integration mistakes unit tests of one app miss.
"""

import io
import re
from urllib.parse import urldefrag, urlparse

import pytest
from django.core.management import call_command

LINK = re.compile(r'href="([^"#?][^"]*)"')
SKIP = ("/static/", "/admin/", "/accounts/logout/", "mailto:", "tel:")
MAX_PAGES = 400


def crawl(client, start="/"):
    seen, queue, visited = {start}, [start], []
    while queue and len(visited) < MAX_PAGES:
        path = queue.pop(0)
        response = client.get(path)
        visited.append((path, response.status_code))
        assert response.status_code < 500, f"{path} -> {response.status_code}"
        if "text/html" not in response.get("Content-Type", ""):
            continue
        for href in LINK.findall(response.content.decode()):
            href = urldefrag(href)[0]
            parsed = urlparse(href)
            if parsed.scheme or parsed.netloc or not href.startswith("/") or href.startswith(SKIP):
                continue
            if href not in seen:
                seen.add(href)
                queue.append(href)
    return visited


@pytest.fixture
def demo_with_evidence(db, settings, tmp_path):
    settings.DR_DEMO_DIR = tmp_path / "demo"
    settings.DR_LOCAL_BACKUP_DIR = tmp_path / "backups"
    call_command("load_demo", stdout=io.StringIO())
    from backups.models import BackupJob
    from backups.tasks import run_backup

    job = BackupJob.objects.filter(source__name="toolhub-db").first()
    run = job.runs.get()  # the demo's first backup, queued for the worker: run it here
    assert run_backup(run.pk) == "succeeded"
    try:
        call_command("verify_backup", str(run.pk), stdout=io.StringIO())
    except SystemExit as exc:
        assert exc.code == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "persona", ["viewer_client", "operator_client", "manager_client", "superuser_client"]
)
def test_every_linked_page_renders_for_each_role(request, persona, demo_with_evidence):
    client = request.getfixturevalue(persona)
    visited = crawl(client)
    assert len(visited) > 15, visited
    # No broken link, and nothing a role is shown a link to is forbidden to it.
    broken = [(path, status) for path, status in visited if status != 200]
    assert broken == [], broken
