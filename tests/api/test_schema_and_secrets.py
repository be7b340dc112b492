"""The OpenAPI schema and its doc page (served by the portal, nothing from a CDN), and no
secret in any API response."""

import json

import pytest
from django.test import Client

from tests.api.conftest import Api, token_for
from tests.factories import DestinationFactory, RunbookFactory, SourceFactory

pytestmark = pytest.mark.django_db

PG_PASSWORD = "pg-Secret-3b1f9a"
ACCESS_KEY = "AKIA-TESTKEY-7c2e"
SECRET_KEY = "s3-Secret-key-9d8e7f"
STEP_TOKEN = "step-Token-4a5b6c"


def test_the_schema_is_openapi_3_and_lists_every_resource(viewer):
    response = Api(token_for(viewer)).get("/api/schema/", format="json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in (
        "/api/v1/jobs/{id}/run/",
        "/api/v1/backup-runs/",
        "/api/v1/restores/",
        "/api/v1/runbooks/{id}/start/",
        "/api/v1/readiness/",
        "/api/v1/incidents/{identifier}/",
    ):
        assert path in paths
    assert "apiToken" in schema["components"]["securitySchemes"]


def test_the_schema_needs_a_signed_in_caller(db):
    assert Client().get("/api/schema/").status_code == 401


def test_the_doc_page_is_served_locally_after_login(viewer_client):
    anonymous = Client().get("/api/docs/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    page = viewer_client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/redoc/" in html
    assert "https://" not in html.replace("https://github.com", "")  # no CDN


def test_no_secret_in_any_response(manager):
    source = SourceFactory(postgresql=True, database="toolhub", password=PG_PASSWORD)
    dest = DestinationFactory(
        name="s3", kind="s3", bucket="b", access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY
    )
    runbook = RunbookFactory(
        steps=[{"name": "call", "kind": "http_check", "params": {"url": "https://example.com"}}],
        steps__secrets={"call": STEP_TOKEN},
    )
    api = Api(token_for(manager))
    bodies = [
        api.get(path).content.decode()
        for path in (
            "/api/v1/sources/",
            f"/api/v1/sources/{source.pk}/",
            "/api/v1/destinations/",
            f"/api/v1/destinations/{dest.pk}/",
            f"/api/v1/runbooks/{runbook.pk}/",
            "/api/schema/",
        )
    ]
    text = "\n".join(bodies)
    for secret in (PG_PASSWORD, ACCESS_KEY, SECRET_KEY, STEP_TOKEN):
        assert secret not in text
    assert json.loads(bodies[1])["has_password"] is True
    assert json.loads(bodies[3])["has_credentials"] is True
    assert json.loads(bodies[4])["steps"][0]["has_secret"] is True
