"""What the API shows of each row. Secrets are never fields: a source or destination says
only whether one is set; URLs and errors pass through redact() as they do on pages."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backups.models import BackupCopy, BackupJob, BackupRun, Destination, Source, System
from dr_portal.lib.redact import redact
from incidents.forms import IncidentForm
from incidents.models import FollowUp, Incident, TimelineEntry
from recovery.failover.models import FailoverRun, Runbook, StepRun
from recovery.models import Restore, RestoreTest

RUN_FIELDS = ("id", "status", "queued", "started", "finished", "phase", "error", "requested_by")


@extend_schema_field(OpenApiTypes.DOUBLE)
class Seconds(serializers.Field):
    """A duration as seconds (like dr_status --json), null when unknown."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return None if value is None else round(value.total_seconds(), 1)


class Redacted(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return redact(str(value or ""))


class Username(serializers.CharField):
    """A user by name (null when none, or deleted)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value.get_username() if value else None


class SystemSerializer(serializers.ModelSerializer):
    class Meta:
        model = System
        fields = ["id", "name", "description"]


class SourceSerializer(serializers.ModelSerializer):
    system_name = serializers.CharField(source="system.name", read_only=True)
    has_password = serializers.SerializerMethodField()
    rpo_target_s = Seconds(source="rpo_target")

    class Meta:
        model = Source
        fields = [
            "id", "name", "system", "system_name", "kind", "data_class", "host", "port",
            "database", "user", "has_password", "path", "exclude", "is_portal_db", "checks",
            "heartbeat_enabled", "restore_test_schedule", "restore_test_after_backup",
            "backup_globals", "pitr", "data_directory", "pitr_pg_host", "pitr_pg_host_user",
            "archive_timeout_s", "rpo_target_s", "config_changed_at", "created",
        ]  # fmt: skip

    def get_has_password(self, source) -> bool:
        return bool(source.password)


class DestinationSerializer(serializers.ModelSerializer):
    endpoint_url = Redacted()
    has_credentials = serializers.SerializerMethodField()

    class Meta:
        model = Destination
        fields = [
            "id", "name", "kind", "path", "bucket", "prefix", "region", "endpoint_url",
            "storage_class", "checksums", "part_size_mb", "path_style", "has_credentials",
            "keep_days", "keep_last", "enabled", "created",
        ]  # fmt: skip

    def get_has_credentials(self, destination) -> bool:
        return bool(destination.access_key_id or destination.secret_access_key)


class JobSerializer(serializers.ModelSerializer):
    source_name = serializers.CharField(source="source.name", read_only=True)
    running_run = serializers.IntegerField(
        source="locked_by_run_id", read_only=True, allow_null=True
    )

    class Meta:
        model = BackupJob
        fields = [
            "id", "name", "source", "source_name", "destinations", "schedule", "timezone",
            "compression", "compression_level", "encrypt", "parallel", "method", "backup_type",
            "enabled", "running_run", "config_changed_at", "created",
        ]  # fmt: skip


class CopySerializer(serializers.ModelSerializer):
    destination_name = serializers.CharField(source="destination.name", read_only=True)
    error = Redacted()
    proof_error = Redacted()

    class Meta:
        model = BackupCopy
        fields = [
            "destination", "destination_name", "location", "bytes_stored", "storage_class",
            "ok", "error", "created", "deleted_at", "deleted_reason", "lost_at", "proven_at",
            "proof_error",
        ]  # fmt: skip


class BackupRunSerializer(serializers.ModelSerializer):
    error = Redacted()
    requested_by = Username()

    class Meta:
        model = BackupRun
        fields = [
            *RUN_FIELDS, "job", "job_name", "source", "source_name", "trigger",
            "scheduled_for", "artifact_key", "bytes_read", "bytes_stored",
            "compression_ratio", "data_taken_at", "restorable", "not_restorable_reason",
            "anomalies", "cancel_requested",
        ]  # fmt: skip


class BackupRunDetailSerializer(BackupRunSerializer):
    copies = CopySerializer(many=True, read_only=True)
    hook_outcome = Redacted(help_text="What the job's hooks did (never a URL or a secret).")

    class Meta(BackupRunSerializer.Meta):
        fields = [*BackupRunSerializer.Meta.fields, "manifest", "copies", "hook_outcome"]


class RestoreTestSerializer(serializers.ModelSerializer):
    error = Redacted()
    requested_by = Username()
    source_name = serializers.CharField(source="source.name", read_only=True)
    rto_s = Seconds(source="rto")
    data_age_s = Seconds(source="data_age")

    class Meta:
        model = RestoreTest
        fields = [
            *RUN_FIELDS, "source", "source_name", "backup_run", "trigger", "copy_used",
            "needs_retrieval", "integrity", "warnings", "rto_s", "data_at", "data_basis",
            "data_age_s", "bytes_fetched", "bytes_restored", "throughput_bps",
        ]  # fmt: skip


class RestoreTestDetailSerializer(RestoreTestSerializer):
    class Meta(RestoreTestSerializer.Meta):
        fields = [*RestoreTestSerializer.Meta.fields, "phases", "checks"]


class RestoreSerializer(serializers.ModelSerializer):
    error = Redacted()
    target = Redacted()
    requested_by = Username()
    source_name = serializers.CharField(source="source.name", read_only=True)
    rto_s = Seconds(source="rto")
    rto_target_s = Seconds(source="rto_target")

    class Meta:
        model = Restore
        fields = [
            *RUN_FIELDS, "source", "source_name", "backup_run", "failure_type",
            "declared_at", "target_kind", "target", "restore_target", "onto_source",
            "overwrite_confirmed", "copy_used", "kept_aside", "warnings", "rto_s",
            "rto_target_s", "data_at", "data_basis", "bytes_fetched",
        ]  # fmt: skip


class RestoreDetailSerializer(RestoreSerializer):
    hook_outcome = Redacted(help_text="What the target's hooks did (never a URL or a secret).")

    class Meta(RestoreSerializer.Meta):
        fields = [*RestoreSerializer.Meta.fields, "phases", "checks", "hook_outcome"]


class RunbookSerializer(serializers.ModelSerializer):
    system_name = serializers.CharField(source="system.name", read_only=True)
    rto_target_s = Seconds(source="rto_target")

    class Meta:
        model = Runbook
        fields = [
            "id", "system", "system_name", "name", "failure_type", "description", "template",
            "rto_target_s", "config_hash", "created", "edited_at",
        ]  # fmt: skip


class RunbookDetailSerializer(RunbookSerializer):
    steps = serializers.SerializerMethodField()
    verifying_run = serializers.SerializerMethodField()

    class Meta(RunbookSerializer.Meta):
        fields = [*RunbookSerializer.Meta.fields, "steps", "verifying_run"]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_steps(self, runbook) -> list:
        """Step definitions as in YAML, rollbacks nested; a secret only as has_secret."""
        return runbook.definitions()

    def get_verifying_run(self, runbook) -> int | None:
        run = runbook.last_verifying_run()
        return run.pk if run else None


class StepRunSerializer(serializers.ModelSerializer):
    output = Redacted()
    confirmed_by = Username()
    waited_for_person_s = Seconds(source="waited_for_person")
    automated_time_s = Seconds(source="automated_time")

    class Meta:
        model = StepRun
        fields = [
            "id", "position", "name", "kind", "description", "side_effects", "rollback_of",
            "status", "started", "finished", "attempts", "output", "automated_time_s",
            "waited_for_person_s", "confirmed_by", "confirmed_at",
        ]  # fmt: skip


class FailoverRunSerializer(serializers.ModelSerializer):
    error = Redacted()
    requested_by = Username()
    rto_s = Seconds(source="rto")
    rto_target_s = Seconds(source="rto_target")
    automated_time_s = Seconds(source="automated_time")
    people_time_s = Seconds(source="people_time")
    retry_time_s = Seconds(source="retry_time")
    rpo_s = Seconds(source="rpo", help_text="data lost at promotion")
    promotion_lag_s = Seconds(source="promotion_lag")

    class Meta:
        model = FailoverRun
        fields = [
            *RUN_FIELDS, "runbook", "system", "mode", "declared_at", "config_hash", "rto_s",
            "rto_target_s", "verdict", "automated_time_s", "people_time_s", "retry_time_s",
            "cancel_requested_at", "rpo_s", "newest_heartbeat_at", "promotion_lag_bytes",
            "promotion_lag_s",
        ]  # fmt: skip


class FailoverRunDetailSerializer(FailoverRunSerializer):
    steps = StepRunSerializer(source="step_runs", many=True, read_only=True)

    class Meta(FailoverRunSerializer.Meta):
        fields = [*FailoverRunSerializer.Meta.fields, "steps"]


class FollowUpSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner_name", read_only=True)
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)
    about = serializers.SerializerMethodField()

    class Meta:
        model = FollowUp
        fields = ["id", "text", "owner", "due", "done", "done_at", "overdue", "about", "created"]

    def get_about(self, item) -> str:
        """What the follow-up came from: "incident", "drillrun", …, and its id."""
        return f"{item.content_type.model}:{item.object_id}"


class TimelineSerializer(serializers.ModelSerializer):
    class Meta:
        model = TimelineEntry
        fields = ["at", "text", "author_name", "automatic"]


class IncidentSerializer(serializers.ModelSerializer):
    created_by = Username()

    class Meta:
        model = Incident
        fields = [
            "identifier", "title", "summary", "severity", "status", "started_at",
            "detected_at", "resolved_at", "root_cause", "users_affected", "data_loss",
            "services_down", "recovery_actions", "preventive_measures", "lessons_learned",
            "created_by", "created", "updated",
        ]  # fmt: skip
        read_only_fields = fields


class IncidentDetailSerializer(IncidentSerializer):
    timeline = TimelineSerializer(many=True, read_only=True)
    follow_ups = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "timeline", "follow_ups"]

    @extend_schema_field(FollowUpSerializer(many=True))
    def get_follow_ups(self, incident):
        items = FollowUp.objects.for_object(incident).select_related(
            "owner_contact", "owner_user", "content_type"
        )
        return FollowUpSerializer(items, many=True).data


class IncidentCreateSerializer(serializers.ModelSerializer):
    """The fields of the portal's incident form; the form validates them again."""

    class Meta:
        model = Incident
        fields = IncidentForm.Meta.fields
