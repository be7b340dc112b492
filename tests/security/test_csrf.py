"""CSRF is enforced on every form: every route refuses a POST without a token (403), even
for a superuser, and every POST form the portal renders carries the token.

The foundation's tests/dr_portal/test_login_required.py covers "login everywhere" and
tests/dr_portal/test_settings.py covers `check --deploy`; this file does not repeat them.
"""

import io
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

import pytest
from django.core.management import call_command
from django.test import Client

from tests.dr_portal.test_login_required import all_paths

# Routes that may take a POST without the portal's session CSRF token, and why.
CSRF_EXEMPT: dict[str, str] = {}


@pytest.fixture
def csrf_client(superuser):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    return client


@pytest.mark.django_db
def test_every_route_refuses_a_post_without_a_csrf_token(csrf_client):
    checked, refused = 0, []
    for path in all_paths():
        if path.startswith("/static/") or path in CSRF_EXEMPT:
            continue
        body = {"name": "x", "text": "x", "where": "x"}
        if path.startswith(("/api/v1/", "/api/schema/")):  # the API reads JSON only
            response = csrf_client.post(path, body, content_type="application/json")
        else:
            response = csrf_client.post(path, body)
        checked += 1
        if response.status_code != 403:
            refused.append(f"POST {path} -> {response.status_code}")
    assert checked > 60
    assert refused == [], "accepted without a CSRF token:\n" + "\n".join(refused)


@pytest.mark.django_db
def test_a_post_with_the_token_from_the_page_gets_past_csrf(csrf_client):
    """The check above is not vacuous: the same client with the page's token is let through."""
    page = csrf_client.get("/incidents/new/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1)
    response = csrf_client.post(
        "/incidents/new/", {"csrfmiddlewaretoken": token.decode(), "title": ""}
    )
    assert response.status_code == 200  # the form answered (title missing), not CSRF's 403
    assert b"Give the incident a title." in response.content


class Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms, self.links, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._open = {"method": (attrs.get("method") or "get").lower(), "token": False}
            self._open["action"] = attrs.get("action") or ""
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None:
            if attrs.get("name") == "csrfmiddlewaretoken" and attrs.get("value"):
                self._open["token"] = True
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


SKIP = re.compile(r"(\.pdf|\.csv|\.md|/logout/|/export|/metrics|/admin/.+/(delete|history)/)")


@pytest.mark.slow
@pytest.mark.django_db
def test_every_post_form_rendered_carries_the_csrf_token(csrf_client):
    """Crawl the portal (demo data loaded, as a superuser) and inspect every form."""
    call_command("load_demo", stdout=io.StringIO())
    seen, queue, post_forms, missing = set(), ["/"], 0, []
    while queue and len(seen) < 250:
        path = queue.pop(0)
        if path in seen or SKIP.search(path):
            continue
        seen.add(path)
        response = csrf_client.get(path)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        parser = Forms()
        parser.feed(response.content.decode())
        for form in parser.forms:
            if form["method"] == "post":
                post_forms += 1
                if not form["token"]:
                    missing.append(f"{path}: form action={form['action']!r}")
        for href in parser.links:
            url = urlparse(urljoin(path, href))
            if not url.netloc and url.path.startswith("/") and url.path not in seen:
                queue.append(url.path)
    assert len(seen) > 40 and post_forms > 20, (len(seen), post_forms)
    assert missing == [], "POST forms without a CSRF token:\n" + "\n".join(missing)
