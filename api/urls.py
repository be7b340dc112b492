"""/api/: v1 resources, the OpenAPI schema and its doc page."""

from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.routers import DefaultRouter

from api.resources import account, backups, failover, incidents, recovery
from api.resources.base import Audited, NotFoundView


class SchemaView(Audited, SpectacularAPIView):
    """The OpenAPI 3 schema, for any signed-in role (token or session)."""


router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("systems", backups.SystemViewSet, basename="system")
router.register("sources", backups.SourceViewSet, basename="source")
router.register("destinations", backups.DestinationViewSet, basename="destination")
router.register("jobs", backups.JobViewSet, basename="job")
router.register("backup-runs", backups.BackupRunViewSet, basename="backup-run")
router.register("restore-tests", recovery.RestoreTestViewSet, basename="restore-test")
router.register("restores", recovery.RestoreViewSet, basename="restore")
router.register("runbooks", failover.RunbookViewSet, basename="runbook")
router.register("failover-runs", failover.FailoverRunViewSet, basename="failover-run")
router.register("incidents", incidents.IncidentViewSet, basename="incident")
router.register("follow-ups", incidents.FollowUpViewSet, basename="follow-up")

v1 = [
    path("me/", account.MeView.as_view(), name="me"),
    path("readiness/", recovery.ReadinessView.as_view(), name="readiness"),
    path(
        "sources/<int:pk>/readiness/",
        recovery.SourceReadinessView.as_view(),
        name="source-readiness",
    ),
    path(
        "systems/<int:pk>/readiness/",
        recovery.SystemReadinessView.as_view(),
        name="system-readiness",
    ),
    *router.urls,
]

app_name = "api"
urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SchemaView.as_view(), name="schema"),
    # The doc page is for people: signed in through the portal's login page.
    path(
        "docs/",
        login_required(
            SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html")
        ),
        name="docs",
    ),
    # Last: a wrong path or id under /api/ answers JSON (signed-in callers get 404).
    re_path(r"^", NotFoundView.as_view()),
]
