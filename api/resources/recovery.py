"""Readiness (the figures of dr_status --json), restore tests and restores: the portal's
own services (recovery.restore_tests, recovery.restores) behind the same rules."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers
from rest_framework.response import Response

from api import serializers as s
from api.permissions import needs
from api.resources.base import ApiView, Conflict, ReadViewSet, accepted, check_form
from api.schema import ErrorSerializer
from backups.models import BackupRun, Source, System
from dr_portal import audit
from dr_portal.lib.roles import MANAGER, OPERATOR, get_scoped, has_role, require_role, scope
from recovery import copies, readiness, restore_targets, restore_tests, restores, runner, targeting
from recovery.failover import proof
from recovery.failover.models import RunMode
from recovery.forms import RestoreForm
from recovery.models import FailureType, Restore, RestoreTarget, RestoreTest
from recovery.targets import Verdict
from recovery.views import restore_how

RUN_DEFERRED = ("log",)


class ReadinessSerializer(serializers.Serializer):
    """One source's readiness: the keys of dr_status --json, plus the source's id."""

    source_id = serializers.IntegerField()
    source = serializers.CharField()
    data_class = serializers.CharField()
    verdict = serializers.ChoiceField(choices=["ok", "at_risk", "breached"])
    reasons = serializers.ListField(child=serializers.CharField())
    rpo_now_s = serializers.FloatField(allow_null=True)
    rpo_target_s = serializers.FloatField(allow_null=True)
    verified_rpo_s = serializers.FloatField(allow_null=True)
    verified_basis = serializers.CharField(allow_blank=True)
    last_rto_s = serializers.FloatField(allow_null=True)
    rto_target_s = serializers.FloatField(allow_null=True)
    rto_forecast_s = serializers.FloatField(allow_null=True)
    last_test = serializers.IntegerField(allow_null=True)
    last_test_status = serializers.CharField(allow_blank=True)
    needs_verification = serializers.BooleanField()
    test_overdue = serializers.BooleanField()
    pitr = serializers.BooleanField()
    rpo_s = serializers.FloatField(allow_null=True)
    recoverable_from = serializers.DateTimeField(allow_null=True)
    recoverable_to = serializers.DateTimeField(allow_null=True)
    wal_gap = serializers.BooleanField()
    missing_segment = serializers.CharField(allow_blank=True)
    window_checked_at = serializers.DateTimeField(allow_null=True)
    window_error = serializers.CharField(allow_blank=True)


FAILOVER_STATES = proof.STATE_ORDER
FAILOVER_MODES = RunMode.values
RTO_VERDICTS = [Verdict.MET.value, Verdict.MISSED.value]


class RunbookReadinessSerializer(serializers.Serializer):
    """One runbook: the run that proves its current steps (recovery.failover.proof)."""

    runbook_id = serializers.IntegerField()
    runbook = serializers.CharField()
    failure_type = serializers.CharField()
    state = serializers.ChoiceField(choices=FAILOVER_STATES[:-1])
    last_run = serializers.IntegerField(allow_null=True)
    mode = serializers.ChoiceField(choices=FAILOVER_MODES, allow_blank=True)
    finished = serializers.DateTimeField(allow_null=True)
    age_s = serializers.FloatField(allow_null=True)
    verdict = serializers.ChoiceField(
        choices=RTO_VERDICTS, allow_blank=True, help_text="The run's RTO verdict; blank: none."
    )
    rto_s = serializers.FloatField(allow_null=True)
    rto_target_s = serializers.FloatField(allow_null=True)
    rpo_s = serializers.FloatField(allow_null=True, help_text="Data lost at promotion.")
    all_steps_exercised = serializers.BooleanField()


class FailoverReadinessSerializer(serializers.Serializer):
    """One system's failover readiness: the keys of dr_status --json's `failover`, plus the
    system's id; as ready as its least ready runbook."""

    system_id = serializers.IntegerField()
    system = serializers.CharField()
    state = serializers.ChoiceField(choices=FAILOVER_STATES)
    last_verified_run = serializers.IntegerField(
        allow_null=True, help_text="The newest proving failover run over its runbooks."
    )
    mode = serializers.ChoiceField(choices=FAILOVER_MODES, allow_blank=True)
    age_s = serializers.FloatField(allow_null=True)
    verdict = serializers.ChoiceField(choices=RTO_VERDICTS, allow_blank=True)
    runbooks = RunbookReadinessSerializer(many=True)


class ReadinessReportSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=["ok", "at_risk", "breached"])
    sources = ReadinessSerializer(many=True)
    failover = FailoverReadinessSerializer(many=True)


class SystemReadinessSerializer(serializers.Serializer):
    """One system: its sources' readiness and its failover readiness."""

    system_id = serializers.IntegerField()
    system = serializers.CharField()
    verdict = serializers.ChoiceField(
        choices=["ok", "at_risk", "breached"], help_text="The worst of its sources' verdicts."
    )
    sources = ReadinessSerializer(many=True)
    failover = FailoverReadinessSerializer()


def _as_dict(r) -> dict:
    return {"source_id": r.source_id, **r.as_dict()}


def _failover_dict(r) -> dict:
    return {"system_id": r.system_id, **r.as_dict()}


class ReadinessView(ApiView):
    system_scoped = True

    @extend_schema(
        responses=ReadinessReportSerializer, summary="Readiness of every source and system"
    )
    def get(self, request):
        """The same figures and verdict as `manage.py dr_status --json` and the dashboard:
        each source's recovery readiness and each system's failover readiness (for a caller
        with roles on some systems only: those systems')."""
        sources = scope(Source.objects, request.user, "system")
        ready = readiness.source_readiness(sources.order_by("name"))
        systems = scope(System.objects.order_by("name"), request.user, "pk")
        return Response(
            {
                "verdict": readiness.overall(ready),
                "sources": [_as_dict(r) for r in ready.values()],
                "failover": [_failover_dict(r) for r in proof.system_readiness(systems)],
            }
        )


class SystemReadinessView(ApiView):
    system_scoped = True

    @extend_schema(responses=SystemReadinessSerializer, summary="Readiness of one system")
    def get(self, request, pk):
        """Its sources' readiness (as /readiness/ gives them) and its failover readiness."""
        system = get_scoped(System.objects, request.user, "pk", pk=pk)
        ready = readiness.source_readiness(system.sources.order_by("name"))
        (failover,) = proof.system_readiness([system])
        return Response(
            {
                "system_id": system.pk,
                "system": system.name,
                "verdict": readiness.overall(ready),
                "sources": [_as_dict(r) for r in ready.values()],
                "failover": _failover_dict(failover),
            }
        )


class SourceReadinessView(ApiView):
    system_scoped = True

    @extend_schema(responses=ReadinessSerializer, summary="Readiness of one source")
    def get(self, request, pk):
        source = get_object_or_404(scope(Source.objects, request.user, "system"), pk=pk)
        return Response(_as_dict(readiness.source_readiness([source])[source.pk]))


class StartRestoreTest(serializers.Serializer):
    source = serializers.IntegerField(min_value=1)
    backup_run = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, help_text="Default: the newest good backup."
    )


class RestoreTestViewSet(mixins.CreateModelMixin, ReadViewSet):
    serializer_class = s.RestoreTestSerializer
    detail_serializer_class = s.RestoreTestDetailSerializer
    system_path = "source__system"

    def get_queryset(self):
        tests = RestoreTest.objects.select_related("source", "requested_by").defer(*RUN_DEFERRED)
        if self.action == "list":
            return tests.defer("phases", "checks")
        return tests

    @extend_schema(
        request=StartRestoreTest,
        responses={
            202: s.RestoreTestSerializer,
            409: OpenApiResponse(
                ErrorSerializer, "A restore test of this source is already active."
            ),
        },
        summary="Start a restore test (operator)",
    )
    @needs(OPERATOR)
    def create(self, request, *args, **kwargs):
        """Restore a backup into scratch and check it, as the portal's "Test restore" does."""
        data = StartRestoreTest(data=request.data)
        data.is_valid(raise_exception=True)
        source = _source(data.validated_data["source"], request.user, OPERATOR)
        backup_run = None
        if data.validated_data.get("backup_run"):
            backup_run = BackupRun.objects.filter(
                pk=data.validated_data["backup_run"], source=source
            ).first()
            if backup_run is None:
                raise serializers.ValidationError(
                    {"backup_run": [f"No backup run with this id belongs to {source}."]}
                )
        try:
            test = restore_tests.start_restore_test(
                source, backup_run=backup_run, user=request.user
            )
        except runner.Busy as exc:
            raise Conflict(str(exc)) from None
        audit.record(
            "run restore test", source, user=request.user, detail=f"restore test #{test.pk}"
        )
        restore_tests.enqueue_restore_test(test)
        return accepted(s.RestoreTestSerializer, test)


def _source(pk, user, role) -> Source:
    """The source a restore (test) is asked for: one the caller cannot see is "no source"
    (its existence is not told); one they see without `role` on its system, 403."""
    source = scope(Source.objects, user, "system").select_related("system").filter(pk=pk).first()
    if source is None:
        raise serializers.ValidationError({"source": ["No source with this id."]})
    require_role(user, role, source.system_id)
    return source


class StartRestore(serializers.Serializer):
    """A restore, as the portal's form takes it; `confirm` must be the source's name."""

    source = serializers.IntegerField(min_value=1)
    backup_run = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Default: the newest backup that passed a restore test.",
    )
    failure_type = serializers.ChoiceField(
        choices=FailureType.choices, default=FailureType.DATABASE_FAILURE
    )
    declared_at = serializers.DateTimeField(required=False, allow_null=True)
    restore_target = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    database_name = serializers.CharField(required=False, allow_blank=True, max_length=63)
    onto_source = serializers.BooleanField(default=False)
    target = serializers.CharField(required=False, allow_blank=True, max_length=1024)
    overwrite = serializers.BooleanField(default=False)
    confirm = serializers.CharField(
        max_length=100, help_text="The source's name, typed exactly: what the portal asks for."
    )


class RestoreViewSet(mixins.CreateModelMixin, ReadViewSet):
    serializer_class = s.RestoreSerializer
    detail_serializer_class = s.RestoreDetailSerializer
    system_path = "source__system"

    def get_queryset(self):
        found = Restore.objects.select_related("source", "requested_by").defer(*RUN_DEFERRED)
        if self.action == "list":
            return found.defer("phases", "checks")
        return found

    @extend_schema(
        request=StartRestore,
        responses={
            202: s.RestoreSerializer,
            409: OpenApiResponse(ErrorSerializer, "A restore of this source or target is active."),
        },
        summary="Start a restore (manager, confirmed by the source's name)",
    )
    @needs(MANAGER)
    def create(self, request, *args, **kwargs):
        """Restore a backup to a registered target (or, as in the portal, a free-form target
        or onto the source): validated by the portal's restore form and started by
        recovery.restores.start_restore."""
        data = StartRestore(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        source = _source(values["source"], request.user, MANAGER)
        if values["confirm"].strip() != source.name:
            raise serializers.ValidationError(
                {"confirm": [f"Type {source.name} exactly to confirm."]}
            )
        run = _backup_to_restore(source, values.get("backup_run"))
        form = RestoreForm(
            {**_form_data(values), "backup_run": run.pk},
            source=source,
            runs=[run],
            can_overwrite=has_role(request.user, MANAGER, source.system_id),
            targets=RestoreTarget.objects.compatible_with(source, targeting.source_kind(source)),
        )
        check_form(form)
        restore = _start(source, run, form.cleaned_data, request.user)
        audit.record(
            "restore",
            source,
            user=request.user,
            detail=f"restore #{restore.pk} of run #{run.pk} to {restore.target}"
            + restore_how(restore)
            + " (API)",
        )
        restores.enqueue_restore(restore)
        return accepted(s.RestoreSerializer, restore)


def _form_data(values: dict) -> dict:
    """The validated body as the portal's form receives a POST (empty means not given)."""
    data = {
        k: values.get(k)
        for k in ("failure_type", "declared_at", "restore_target", "database_name", "target")
    }
    data = {k: v for k, v in data.items() if v not in (None, "")}
    for flag in ("onto_source", "overwrite"):
        if values.get(flag):
            data[flag] = "on"
    data["confirm"] = values["confirm"]
    return data


def _backup_to_restore(source: Source, pk) -> BackupRun:
    if pk:
        run = copies.good_backups(source).filter(pk=pk).first()
        if run is None:
            raise serializers.ValidationError(
                {"backup_run": [f"No good backup of {source} with this id (with a live copy)."]}
            )
        return run
    run = copies.newest_proven_backup(source)
    if run is None:
        raise serializers.ValidationError(
            {"backup_run": [f"No backup of {source} passed a restore test yet: name one."]}
        )
    return run


def _start(source, run, data, user) -> Restore:
    try:
        return restores.start_restore(
            source,
            target=(data.get("target") or "").strip(),
            restore_target=data["restore_target"],
            database_name=(data.get("database_name") or "").strip(),
            onto_source=data["onto_source"],
            backup_run=run,
            failure_type=data["failure_type"],
            declared_at=data.get("declared_at"),
            overwrite=data["overwrite"],
            user=user,
        )
    except ValueError as exc:
        field = "restore_target" if data["restore_target"] else "target"
        raise serializers.ValidationError({field: [str(exc)]}) from None
    except restore_targets.NotAllowed as exc:
        raise exceptions.PermissionDenied(str(exc)) from None
    except runner.Busy as exc:
        raise Conflict(str(exc)) from None
