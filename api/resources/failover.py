"""Failover runbooks (read, start a test or live run) and runs (status, steps, cancel):
the portal's StartRunForm decides who may start what, FailoverRun.start starts it."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from api import serializers as s
from api.permissions import needs
from api.resources.base import Conflict, ReadViewSet, accepted, check_form
from api.schema import ErrorSerializer
from dr_portal import audit
from dr_portal.lib.roles import MANAGER, OPERATOR, get_scoped, has_role
from recovery.failover.forms import StartRunForm
from recovery.failover.models import FailoverRun, LiveRunExists, Runbook, RunMode


class StartFailover(serializers.Serializer):
    mode = serializers.ChoiceField(choices=RunMode.choices, default=RunMode.TEST)
    confirm = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="For a live run: the system's name, typed exactly (manager only).",
    )
    declared_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the RTO clock started; default now."
    )


class RunbookViewSet(ReadViewSet):
    queryset = Runbook.objects.select_related("system")
    serializer_class = s.RunbookSerializer
    detail_serializer_class = s.RunbookDetailSerializer
    system_path = "system"

    @extend_schema(
        request=StartFailover,
        responses={
            202: s.FailoverRunSerializer,
            409: OpenApiResponse(ErrorSerializer, "A live run of this system is already active."),
        },
        summary="Start a test (operator) or live (manager, confirmed) failover run",
    )
    @action(detail=True, methods=["post"])
    @needs(OPERATOR)
    def start(self, request, pk=None):
        runbook = get_scoped(self.queryset, request.user, self.system_path, OPERATOR, pk=pk)
        body = StartFailover(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        data = {"mode": values["mode"], "confirm_name": values.get("confirm", "")}
        if values.get("declared_at"):
            data["declared_at"] = values["declared_at"]
        form = StartRunForm(data, runbook=runbook, user=request.user)
        check_form(form)
        if not runbook.steps.exists():
            raise serializers.ValidationError({"non_field_errors": ["This runbook has no steps."]})
        mode = form.cleaned_data["mode"]
        try:
            run = FailoverRun.start(
                runbook, mode, request.user, declared_at=form.cleaned_data.get("declared_at")
            )
        except LiveRunExists as exc:
            raise Conflict(str(exc)) from None
        audit.record(f"start {mode} failover", runbook, user=request.user, detail=f"run #{run.pk}")
        return accepted(s.FailoverRunSerializer, run)


class FailoverRunViewSet(ReadViewSet):
    serializer_class = s.FailoverRunSerializer
    detail_serializer_class = s.FailoverRunDetailSerializer
    system_path = "system"

    def get_queryset(self):
        runs = FailoverRun.objects.select_related("requested_by").defer("log")
        if self.action == "list":
            return runs
        return runs.prefetch_related("step_runs__confirmed_by")

    @extend_schema(
        request=None,
        responses={200: s.FailoverRunSerializer},
        summary="Cancel a run (operator; a live run: manager)",
    )
    @action(detail=True, methods=["post"])
    @needs(OPERATOR)
    def cancel(self, request, pk=None):
        """As the portal's Cancel: a queued run stops now, a running one after its step,
        running the rollbacks."""
        run = get_scoped(
            FailoverRun.objects.select_related("runbook"),
            request.user,
            self.system_path,
            OPERATOR,
            pk=pk,
        )
        if run.mode == RunMode.LIVE and not has_role(request.user, MANAGER, run.system_id):
            raise exceptions.PermissionDenied("Cancelling a live failover needs the manager role.")
        outcome = run.request_cancel(request.user)
        if outcome != "done":
            audit.record("cancel failover", run, user=request.user, detail=outcome)
        run.refresh_from_db()
        return Response(s.FailoverRunSerializer(run).data)
