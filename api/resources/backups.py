"""Systems, sources, destinations, jobs (read), backup runs (list, filter, detail, cancel)
and triggering a backup: the portal's own service calls (backups.services)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from api import serializers as s
from api.permissions import needs
from api.resources.base import Conflict, ReadViewSet, accepted, query_filters
from api.schema import ErrorSerializer
from backups import services
from backups.models import BackupJob, BackupRun, Destination, Source, System
from dr_portal import audit
from dr_portal.lib.roles import OPERATOR, get_scoped
from dr_portal.runs import RunStatus

RUN_DEFERRED = ("log",)


class SystemViewSet(ReadViewSet):
    queryset = System.objects.all()
    serializer_class = s.SystemSerializer
    system_path = "pk"


class SourceViewSet(ReadViewSet):
    queryset = Source.objects.select_related("system")
    serializer_class = s.SourceSerializer
    system_path = "system"


class DestinationViewSet(ReadViewSet):
    queryset = Destination.objects.all()
    serializer_class = s.DestinationSerializer


class JobViewSet(ReadViewSet):
    queryset = BackupJob.objects.select_related("source").prefetch_related("destinations")
    serializer_class = s.JobSerializer
    system_path = "source__system"

    @extend_schema(
        request=None,
        responses={
            202: s.BackupRunSerializer,
            409: OpenApiResponse(ErrorSerializer, "The job already has a queued or running run."),
        },
        summary="Run a backup now (operator)",
    )
    @action(detail=True, methods=["post"])
    @needs(OPERATOR)
    def run(self, request, pk=None):
        """The portal's "Run now": a queued manual run, the same row the button makes."""
        job = get_scoped(
            BackupJob.objects.select_related("source"),
            request.user,
            self.system_path,
            OPERATOR,
            pk=pk,
        )
        try:
            run = services.start_run(job, "manual", request.user)
        except services.JobBusy as exc:
            raise Conflict(f"Not started: {exc}.") from None
        audit.record("run backup", job, user=request.user, detail=f"run #{run.pk}")
        services.enqueue_run(run)
        return accepted(s.BackupRunSerializer, run)


class RunFilters(serializers.Serializer):
    job = serializers.IntegerField(required=False, min_value=1)
    source = serializers.IntegerField(required=False, min_value=1)
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Runs queued at or after this.")


class BackupRunViewSet(ReadViewSet):
    serializer_class = s.BackupRunSerializer
    detail_serializer_class = s.BackupRunDetailSerializer
    system_path = "source__system"

    def get_queryset(self):
        runs = BackupRun.objects.select_related("requested_by")
        if self.action == "list":
            filters = query_filters(RunFilters, self.request)
            if "since" in filters:
                filters["queued__gte"] = filters.pop("since")
            if "job" in filters:
                filters["job_id"] = filters.pop("job")
            if "source" in filters:
                filters["source_id"] = filters.pop("source")
            return runs.filter(**filters).defer(*RUN_DEFERRED, "manifest")
        return runs.defer(*RUN_DEFERRED).prefetch_related("copies__destination")

    @extend_schema(parameters=[RunFilters])
    def list(self, request, *args, **kwargs):
        """Backup runs, newest first; filter by job, source, status and since."""
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=None,
        responses={200: s.BackupRunSerializer},
        summary="Cancel a queued run, or ask a running one to stop (operator)",
    )
    @action(detail=True, methods=["post"])
    @needs(OPERATOR)
    def cancel(self, request, pk=None):
        run = get_scoped(BackupRun.objects, request.user, self.system_path, OPERATOR, pk=pk)
        outcome = services.request_cancel(run, request.user)
        audit.record("cancel backup", run, user=request.user, detail=outcome)
        run.refresh_from_db()
        return Response(s.BackupRunSerializer(run).data)
