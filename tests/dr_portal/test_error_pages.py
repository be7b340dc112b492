"""400/403/404/500 in the portal's look, with a way home and no stack trace (DEBUG off).
The 500 page renders without the database: it is what an outage of the database shows."""

import pytest
from django.test import Client, RequestFactory
from django.urls import path

from dr_portal import errors
from dr_portal.urls import handler403, handler500
from dr_portal.urls import urlpatterns as portal_urls


def explode(request):
    raise RuntimeError("secret detail: password=hunter2 in /srv/dr/settings.py")


urlpatterns = [*portal_urls, path("explode/", explode)]
handler403 = handler403  # noqa: PLW0127 - this test urlconf keeps the portal's handlers
handler500 = handler500  # noqa: PLW0127


def assert_styled(response, status, heading):
    body = response.content.decode()
    assert response.status_code == status
    assert 'class="topbar' in body and "portal.css" in body
    assert f"<h1>{heading}</h1>" in body
    assert 'href="/"' in body  # a way home
    assert "Traceback" not in body and "hunter2" not in body and "settings.py" not in body
    return body


@pytest.fixture(autouse=True)
def no_debug(settings):
    settings.DEBUG = False


def test_404_is_styled_and_names_the_address(viewer_client):
    body = assert_styled(viewer_client.get("/backups/runs/999999/"), 404, "Page not found")
    assert "/backups/runs/999999/" in body
    assert "No BackupRun matches" not in body  # the exception text is not shown


def test_404_escapes_the_address(viewer_client):
    body = viewer_client.get("/nothing/<script>alert(1)</script>").content.decode()
    assert "<script>alert(1)" not in body


def test_400_for_a_bad_host_is_styled(db):
    response = Client(HTTP_HOST="evil.example").get("/health/live")
    assert_styled(response, 400, "Bad request")


def test_403_is_styled(viewer_client):
    response = viewer_client.post("/backups/sources/new/")
    assert response.status_code == 403
    assert_styled(response, 403, "Not allowed")


@pytest.mark.urls("tests.dr_portal.test_error_pages")
def test_500_is_styled_and_hides_the_exception(viewer):
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    assert_styled(client.get("/explode/"), 500, "Something went wrong on the server")


def test_500_renders_without_the_database():
    # No `db` fixture: any query here raises, as it would with the database down.
    response = errors.server_error(RequestFactory().get("/"))
    assert_styled(response, 500, "Something went wrong on the server")
