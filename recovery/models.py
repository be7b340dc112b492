"""Recovery targets, restore tests and restores: the evidence that backups come back."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from backups.hook_fields import HookSettings
from backups.models import Source, Trigger
from dr_portal import audit
from dr_portal.fields import EncryptedTextField, SecretEndpointMixin
from dr_portal.lib.paths import check_allowed_path
from dr_portal.lib.text import validate_host
from dr_portal.runs import RunBase, RunStatus
from recovery import restore_targets
from recovery.cleanup import after_lost
from recovery.targets import (  # noqa: F401 (the target models belong to this app)
    RESTORE_FAILURE_TYPE,
    FailureType,
    RPOTarget,
    RTOTarget,
    ServiceLevel,
)


class DataBasis(models.TextChoices):
    HEARTBEAT = "heartbeat", "Heartbeat read from the restored data"
    BACKUP = "backup", "Backup's data timestamp"
    REPLAY = "replay", "Last commit replayed from the WAL archive"


class PitrPoint(models.TextChoices):
    NEWEST = "newest", "Newest recoverable point"
    RANDOM = "random", "Random point inside the window"
    GIVEN = "given", "A point given by hand"


class RestoreTest(RunBase):
    """One proof that a backup restores: fetched, verified, restored into scratch, checked."""

    EVIDENCE_FIELDS = (
        *RunBase.EVIDENCE_FIELDS,
        *("source", "backup_run", "trigger", "copy_used", "checks", "integrity", "rto"),
        *("data_at", "data_age", "bytes_restored", "pitr_point", "target_time", "recovered_to"),
    )

    source = models.ForeignKey(
        "backups.Source", on_delete=models.CASCADE, related_name="restore_tests"
    )
    backup_run = models.ForeignKey(
        "backups.BackupRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restore_tests",
        help_text="Empty when queued: the newest good backup of the source is taken at start.",
    )
    trigger = models.CharField(max_length=14, choices=Trigger.choices, default=Trigger.MANUAL)
    destination = models.ForeignKey(
        "backups.Destination",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pinned_restore_tests",
        help_text="Read only this destination's copy (as if the others were lost); "
        "empty: the best copy.",
    )
    copy_used = models.CharField(max_length=300, blank=True)
    copy_destination = models.ForeignKey(
        "backups.Destination",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restore_tests_read",
        help_text="The destination whose copy the test read.",
    )
    needs_retrieval = models.BooleanField(
        default=False, help_text="Only archive-class copies exist: they must be retrieved first."
    )
    phases = models.JSONField(default=list, blank=True)
    checks = models.JSONField(default=list, blank=True)
    integrity = models.CharField(max_length=300, blank=True)
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="What was not restored as it was (e.g. a locale the server lacks), "
        "or changed on purpose (subscriptions left disabled).",
    )
    rto = models.DurationField(null=True, blank=True, help_text="Whole wall time of the test.")
    data_at = models.DateTimeField(null=True, blank=True)
    data_basis = models.CharField(max_length=10, choices=DataBasis.choices, blank=True)
    data_age = models.DurationField(null=True, blank=True, help_text="RPO at the test's start.")
    bytes_fetched = models.BigIntegerField(default=0)
    bytes_restored = models.BigIntegerField(default=0)
    throughput_bps = models.FloatField(null=True, blank=True)
    # Point-in-time restore tests (PITR sources): the point asked for, and the one reached.
    pitr_point = models.CharField(
        max_length=8,
        choices=PitrPoint.choices,
        blank=True,
        help_text="Empty: a test of one backup. Otherwise which point of the window was restored.",
    )
    target_time = models.DateTimeField(null=True, blank=True)
    recovered_to = models.DateTimeField(
        null=True, blank=True, help_text="The last commit the restored copy replayed."
    )

    class Meta:
        ordering = ["-queued", "-pk"]
        constraints = [
            # One live restore test per source, held by the database (not by reading a status).
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_restore_test_per_source",
            )
        ]
        indexes = [
            # Source page history and readiness: newest tests of a source.
            models.Index(fields=["source", "-queued"], name="restoretest_source_idx"),
            # Recovery page: the newest tests of every source (else a sort of all of them).
            models.Index(fields=["-queued", "-id"], name="restoretest_queued_idx"),
            # Retention protection and verified RPO: passed tests per backup run.
            models.Index(fields=["backup_run", "status"], name="restoretest_run_idx"),
            # The reaper: running tests whose heartbeat is old.
            models.Index(fields=["status", "heartbeat_at"], name="restoretest_reap_idx"),
            # Readiness: newest passed test per source (status=succeeded, newest started).
            models.Index(
                fields=["source", "status", "-started"], name="restoretest_src_passed_idx"
            ),
            # Dashboard: failed tests of the last 24 h and RTO chart; compliance: tests in a period.
            models.Index(fields=["status", "-finished"], name="restoretest_status_fin_idx"),
            # Readiness: newest finished test per source.
            models.Index(fields=["source", "-finished"], name="restoretest_src_fin_idx"),
            # Rotation and compliance: newest test that read each destination's copy.
            models.Index(
                fields=["copy_destination", "status", "-finished"], name="restoretest_copy_dest_idx"
            ),
            # Dashboard RTO chart: measured RTO per day, read from the index alone.
            models.Index(
                fields=["finished"],
                include=["rto"],
                condition=models.Q(status="succeeded", rto__isnull=False),
                name="restoretest_rto_chart_idx",
            ),
        ]

    def __str__(self):
        return f"restore test #{self.pk} of {self.source}"

    def get_absolute_url(self):
        return reverse("recovery:test_detail", args=[self.pk])

    @property
    def passed(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    def check_counts(self) -> dict:
        counts = {"passed": 0, "failed": 0, "could_not_verify": 0}
        for check in self.checks or []:
            counts[check.get("outcome", "could_not_verify")] = (
                counts.get(check.get("outcome", "could_not_verify"), 0) + 1
            )
        return counts

    def on_lost(self):
        """The reaper failed this test: drop its scratch database, remove its unpacked files."""
        after_lost(self)


class TargetKind(models.TextChoices):
    DATABASE = "database", "PostgreSQL database"
    FILE = "file", "SQLite file"
    DIRECTORY = "directory", "Directory"
    DATADIR = "datadir", "PostgreSQL data directory"


# One line of letters, digits and a few separators: names appear in logs and audit lines.
NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._ -]*\Z",
    "Use letters, digits, spaces, dots, dashes and underscores; start with a letter or digit.",
)


class RestoreTargetQuerySet(models.QuerySet):
    def compatible_with(self, source, kind: str):
        """Registered targets that may receive `kind` backups of `source`, by name."""
        targets = self.filter(kind=kind)
        if source.is_portal_db:
            # Never "any source": the portal's data (sessions, password hashes) goes only
            # where a manager named it.
            return targets.filter(sources=source).distinct().order_by("name")
        return targets.filter(Q(sources=None) | Q(sources=source)).distinct().order_by("name")


class RestoreTarget(SecretEndpointMixin, HookSettings):
    """A place a manager registered for restores: a PostgreSQL database, a SQLite file or a directory."""

    class Kind(models.TextChoices):
        # The source kind it receives (the values of backups.Source.Kind).
        POSTGRESQL = "postgresql", "PostgreSQL database"
        SQLITE = "sqlite", "SQLite file"
        FILES = "files", "Directory (files backups)"
        # Not a source kind: point-in-time restores of PITR sources create a data directory
        # under `path` and run it on a port between `port` and `port_max`.
        DATADIR = "pg_datadir", "PostgreSQL data directory (point-in-time restores)"

    # The stored password was entered for this endpoint: changing any of these clears it.
    ENDPOINT_FIELDS = ("kind", "host", "port")
    SECRET_FIELDS = ("password", "pre_hook_secret", "post_hook_secret")
    # A hook's signing key was entered for its URL (recovery/restore_hooks.py runs them).
    SECRET_ENDPOINTS = {f"{p}_hook_secret": (f"{p}_hook_url",) for p in ("pre", "post")}

    name = models.CharField(max_length=100, unique=True, validators=[NAME_VALIDATOR])
    kind = models.CharField(max_length=12, choices=Kind.choices)
    host = models.CharField(max_length=255, blank=True, validators=[validate_host])
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    port_max = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="Data directory targets: the highest port a restored server may use "
        "(the lowest is the port).",
    )
    user = models.CharField(max_length=63, blank=True)
    password = EncryptedTextField()
    database = models.CharField(
        max_length=63,
        blank=True,
        help_text="The database restored into, or a pattern such as restored_* from which the "
        "person restoring names a new database.",
    )
    path = models.CharField(
        max_length=1024, blank=True, help_text="The SQLite file, or the directory for files."
    )
    sources = models.ManyToManyField(
        "backups.Source",
        blank=True,
        related_name="restore_targets",
        help_text="Only these sources may be restored here; none chosen: any source of its kind "
        "(except the portal's own database, which must be named).",
    )
    allow_replace = models.BooleanField(
        default=False,
        help_text="Operators may replace data already at this target (it is kept aside first). "
        "Without it only a manager can.",
    )
    notes = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)

    objects = RestoreTargetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.kind != self.Kind.POSTGRESQL:
            self.password = ""  # a path target has no server to send it to
        super().save(*args, **kwargs)
        self.password_cleared = "password" in self.cleared_secrets

    def where(self) -> str:
        """Where it writes, without secrets."""
        if self.kind == self.Kind.POSTGRESQL:
            return f"postgresql://{self.user or 'postgres'}@{self.host}:{self.port or 5432}/{self.database}"
        if self.kind == self.Kind.DATADIR:
            return f"{self.path} (ports {self.port}-{self.port_max})"
        return self.path

    def clean(self):
        sources = list(Source.objects.all())
        if self.kind == self.Kind.POSTGRESQL:
            errors = self._database_errors(sources)
        elif self.kind in (self.Kind.SQLITE, self.Kind.FILES):
            errors = self._path_errors(sources)
        elif self.kind == self.Kind.DATADIR:
            errors = self._datadir_errors(sources)
        else:
            errors = {}
        errors.update(self.hook_errors(cleared=self.secrets_to_clear()))
        if errors:
            raise ValidationError(errors)

    def _database_errors(self, sources) -> dict:
        errors = {}
        if not self.host:
            errors["host"] = "Give the PostgreSQL server's host."
        problem = restore_targets.database_problem(self.database)
        if problem:
            errors["database"] = problem
        if self.path:
            errors["path"] = "A PostgreSQL target has no path."
        if not errors:
            conflict = restore_targets.database_conflict(
                self.host, self.port or 5432, self.database, sources
            )
            if conflict:
                errors["database"] = f"{conflict}: restoring onto a source is done from its page."
        return errors

    def _path_errors(self, sources) -> dict:
        errors = {
            name: "Only a PostgreSQL target has this."
            for name in ("host", "port", "user", "database")
            if getattr(self, name)
        }
        try:
            path = check_allowed_path(self.path)
        except ValidationError as exc:
            return {**errors, "path": exc.messages}
        self.path = str(path)
        problem = restore_targets.path_conflict(path, sources) or self._path_shape_problem(path)
        return {**errors, "path": problem} if problem else errors

    def _datadir_errors(self, sources) -> dict:
        """A parent directory for new data directories, and a port range to run them on."""
        errors = {
            name: "A data directory target has no such setting."
            for name in ("host", "user", "database")
            if getattr(self, name)
        }
        if not self.port or not self.port_max:
            errors["port"] = "Give the range of ports a restored server may use (port to port_max)."
        elif self.port > self.port_max:
            errors["port_max"] = "The highest port must not be below the lowest."
        elif self.port < 1024:
            errors["port"] = "Use unprivileged ports (1024 or above)."
        try:
            path = check_allowed_path(self.path)
        except ValidationError as exc:
            return {**errors, "path": exc.messages}
        self.path = str(path)
        problem = restore_targets.path_conflict(path, sources)
        if not problem and not path.is_dir():
            problem = f"{path} is not an existing directory (new data directories go under it)."
        return {**errors, "path": problem} if problem else errors

    def ports(self) -> range:
        """The ports a data directory target allows (empty for other kinds)."""
        if self.kind != self.Kind.DATADIR or not self.port or not self.port_max:
            return range(0)
        return range(self.port, self.port_max + 1)

    def _path_shape_problem(self, path) -> str:
        if self.kind == self.Kind.SQLITE and path.is_dir():
            return f"{path} is a directory; give the SQLite file's path."
        if self.kind == self.Kind.FILES and path.exists() and not path.is_dir():
            return f"{path} is a file; give a directory."
        if not path.parent.is_dir():
            return f"{path.parent} does not exist."
        return ""


class Restore(RunBase):
    """A real restore of a backup onto a new target or onto the source itself."""

    EVIDENCE_FIELDS = (
        *RunBase.EVIDENCE_FIELDS,
        *("source", "backup_run", "failure_type", "declared_at", "target_kind", "target"),
        *("onto_source", "copy_used", "checks", "rto", "rto_target", "data_at", "recovered_to"),
    )

    source = models.ForeignKey("backups.Source", on_delete=models.CASCADE, related_name="restores")
    backup_run = models.ForeignKey(
        "backups.BackupRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restores",
        help_text="Empty when queued: the newest backup that passed a restore test is taken.",
    )
    failure_type = models.CharField(max_length=20, choices=FailureType.choices)
    declared_at = models.DateTimeField(
        default=timezone.now, help_text="When the failure was declared: the RTO clock starts here."
    )
    target_kind = models.CharField(max_length=10, choices=TargetKind.choices)
    target = models.CharField(
        max_length=1024, help_text="Database URL without password, or a path."
    )
    target_password = EncryptedTextField()
    restore_target = models.ForeignKey(
        RestoreTarget,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restores",
        help_text="The registered target; empty for a free-form target or onto the source. "
        "`target` keeps where it went after the registration is gone.",
    )
    onto_source = models.BooleanField(default=False)
    overwrite_confirmed = models.BooleanField(
        default=False,
        help_text="Data already at the target may be replaced (kept aside first). "
        "Without it a restore only writes to a target that does not exist yet.",
    )
    copy_used = models.CharField(max_length=300, blank=True)
    kept_aside = models.CharField(max_length=1024, blank=True)
    # Point-in-time restores (PITR sources): the point asked for (None: the newest), the
    # last commit replayed, the port the restored server runs on, and whether it was started.
    pitr = models.BooleanField(default=False)
    target_time = models.DateTimeField(null=True, blank=True)
    recovered_to = models.DateTimeField(null=True, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    start_server = models.BooleanField(default=False)
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="What could not be applied on the target (missing roles, locale), "
        "or was changed on purpose (subscriptions left disabled).",
    )
    phases = models.JSONField(default=list, blank=True)
    checks = models.JSONField(default=list, blank=True)
    rto = models.DurationField(null=True, blank=True, help_text="Declared start → checks passed.")
    rto_target = models.DurationField(null=True, blank=True)
    data_at = models.DateTimeField(null=True, blank=True)
    data_basis = models.CharField(max_length=10, choices=DataBasis.choices, blank=True)
    bytes_fetched = models.BigIntegerField(default=0)
    # Partial restores: chosen tables (into an existing database, under a schema or with a
    # name suffix) or chosen paths of a files backup; empty for a full restore.
    tables = models.JSONField(default=list, blank=True)
    table_schema = models.CharField(max_length=63, blank=True)
    table_suffix = models.CharField(max_length=30, blank=True)
    paths = models.JSONField(default=list, blank=True)
    # What the target's hooks did ("pre-hook webhook: HTTP 200"), never a URL or a secret.
    hook_outcome = models.TextField(blank=True)
    # Chosen tables put in place of the live ones (a manager typed their names): restored
    # under a temporary name, counted, then swapped in one transaction, the old kept aside.
    replace_tables = models.BooleanField(default=False)

    class Meta:
        ordering = ["-queued", "-pk"]
        constraints = [
            # Two restores writing one target (or one source) at once would destroy each
            # other's work: the database refuses the second while the first is live.
            models.UniqueConstraint(
                fields=["target_kind", "target"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_restore_per_target",
            ),
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_active_restore_per_source",
            ),
        ]
        indexes = [
            # Source page: restores of a source, newest first.
            models.Index(fields=["source", "-queued"], name="restore_source_idx"),
            # The reaper: running restores whose heartbeat is old.
            models.Index(fields=["status", "heartbeat_at"], name="restore_reap_idx"),
        ]

    def __str__(self):
        return f"restore #{self.pk} of {self.source} to {self.target}"

    def get_absolute_url(self):
        return reverse("recovery:restore_detail", args=[self.pk])

    @property
    def within_target(self) -> bool | None:
        if self.rto is None or self.rto_target is None:
            return None
        return self.rto <= self.rto_target

    def on_lost(self):
        """The reaper failed this restore: drop its staging database, remove its decrypted files."""
        after_lost(self)

    def on_finished(self):
        audit.record(
            f"restore {self.status}",
            self,
            detail=(self.error or f"restored to {self.target}")[:1000],
        )


class HeartbeatState(models.Model):
    """The last heartbeat the portal wrote into one source database."""

    source = models.OneToOneField(
        "backups.Source", on_delete=models.CASCADE, related_name="heartbeat_state"
    )
    last_written_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    audit = False  # written every minute by a task

    def __str__(self):
        return f"heartbeat of {self.source}"


class CanaryBaseline(models.Model):
    """A failed data-loss canary's observed value, accepted as the new baseline (audited).

    After an intentional bulk delete, "not below 90% of previous" would fail forever; a
    manager accepts the value a test observed, and the next test compares with it."""

    source = models.ForeignKey(
        "backups.Source", on_delete=models.CASCADE, related_name="canary_baselines"
    )
    restore_test = models.ForeignKey(
        RestoreTest, on_delete=models.CASCADE, related_name="accepted_baselines"
    )
    check_name = models.CharField(max_length=120)
    value = models.CharField(max_length=100)
    reason = models.CharField(max_length=300)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["restore_test", "check_name"], name="one_baseline_per_test_check"
            )
        ]
        indexes = [
            # previous_observations(): the accepted values of one source
            models.Index(fields=["source", "restore_test"], name="canary_baseline_source_idx"),
        ]

    def __str__(self):
        return f"baseline {self.check_name} = {self.value} (test #{self.restore_test_id})"


class BackupContents(models.Model):
    """What one backup holds (recovery.contents), read once from its verified artifact.

    `items` is the listing (tables with dump bytes and rows, or files with sizes, modes and
    mtimes); a backup never changes, so the cache never goes stale."""

    run = models.OneToOneField("backups.BackupRun", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12)
    items = models.JSONField(default=list)
    summary = models.JSONField(default=dict)
    detail = models.JSONField(default=dict, blank=True)  # database name, archive format, ...
    copy_used = models.CharField(max_length=300, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "backup contents"

    def __str__(self):
        return f"contents of backup run #{self.run_id}"


from recovery.failover.models import *  # noqa: E402,F401,F403
