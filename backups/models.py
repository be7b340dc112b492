"""Sources, destinations, jobs and the runs and copies they produce."""

import os
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Count, Exists, OuterRef
from django.db.models.fields.json import KeyTextTransform
from django.urls import reverse
from django.utils import timezone
from django.utils.timezone import now as _now

from backups import pitr, validators
from backups.engine import DestinationSpec, SourceSpec
from backups.engine.destinations import check_artifact_key
from backups.engine.destinations.s3_options import (
    MAX_PART_SIZE,
    MIB,
    MIN_PART_SIZE,
    is_aws_endpoint,
    resolve_checksums,
)
from backups.engine.pgbackrest import Repo, Stanza, Window
from backups.hook_fields import HookSettings
from backups.leftovers import discard_partial_artifacts
from backups.schedules import drop_job_schedule, sync_job_schedule
from dr_portal import audit
from dr_portal.fields import EncryptedTextField, SecretEndpointMixin
from dr_portal.lib import keyring, outbound, readiness_version
from dr_portal.lib.paths import check_allowed_path, protected_paths, protected_problem
from dr_portal.lib.text import validate_host, validate_single_line
from dr_portal.runs import ACTIVE, DONE, RunBase, RunStatus


class DataClass(models.TextChoices):
    CRITICAL = "critical", "Critical"
    IMPORTANT = "important", "Important"
    NON_CRITICAL = "non_critical", "Non-critical"


# The seed document's recovery point objectives per data class: the fallback while the
# recovery app's editable RPOTarget rows are missing.
RPO_TARGET = {
    DataClass.CRITICAL: timedelta(hours=1),
    DataClass.IMPORTANT: timedelta(hours=24),
    DataClass.NON_CRITICAL: timedelta(days=7),
}


def _no_editable_rpo_targets() -> dict[str, timedelta]:
    return {}


# The managers' editable RPO targets are rows of the recovery app (RPOTarget), a layer above
# backups: recovery registers its lookup when it loads (recovery.apps), so backups reads them
# without importing recovery.
_rpo_target_lookup: Callable[[], dict[str, timedelta]] = _no_editable_rpo_targets


def register_rpo_target_lookup(lookup: Callable[[], dict[str, timedelta]]) -> None:
    """Install `lookup() -> {data class: target}`, the editable targets over RPO_TARGET."""
    global _rpo_target_lookup
    _rpo_target_lookup = lookup


class StorageClass(models.TextChoices):
    STANDARD = "STANDARD", "Standard"
    STANDARD_IA = "STANDARD_IA", "Standard – infrequent access"
    GLACIER = "GLACIER", "Glacier flexible retrieval"
    DEEP_ARCHIVE = "DEEP_ARCHIVE", "Glacier deep archive"


# S3 bills an archived object for at least this long, deleted or not.
MINIMUM_STORAGE = {
    StorageClass.STANDARD_IA: timedelta(days=30),
    StorageClass.GLACIER: timedelta(days=90),
    StorageClass.DEEP_ARCHIVE: timedelta(days=180),
}
# Objects in these classes must be restored (hours) before they can be read.
ARCHIVE_CLASSES = {StorageClass.GLACIER, StorageClass.DEEP_ARCHIVE}


def reveal(value) -> str:
    """Plaintext of an EncryptedTextField value: a loaded Secret, or a str assigned in memory."""
    if not value:
        return ""
    return value.reveal() if hasattr(value, "reveal") else str(value)


class ChangeStampMixin:
    """Stamps `config_changed_at` when any of CONFIG_FIELDS changes (recovery invalidates evidence)."""

    CONFIG_FIELDS: tuple[str, ...] = ()

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_config = instance._config_values()
        return instance

    def _config_values(self):
        values = {}
        for name in self.CONFIG_FIELDS:
            value = self.__dict__.get(self._meta.get_field(name).attname)
            if hasattr(value, "token"):
                value = ("secret", value.token)
            elif isinstance(value, str) and name in getattr(self, "SECRET_FIELDS", ()) and value:
                value = ("new-secret", id(value))
            values[name] = value
        return values

    def config_changed(self) -> bool:
        loaded = getattr(self, "_loaded_config", None)
        return loaded is None or loaded != self._config_values()

    def save(self, *args, **kwargs):
        if self.config_changed():
            self.config_changed_at = timezone.now()
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "config_changed_at"}
        super().save(*args, **kwargs)
        self._loaded_config = self._config_values()


class System(models.Model):
    """A service whose data we protect, e.g. Tool Hub."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_single_line])
    description = models.TextField(
        blank=True, max_length=2000, validators=[MaxLengthValidator(2000)]
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class SystemRole(models.Model):
    """One user's role on one system, on top of their global role (dr_portal.lib.roles)."""

    ROLES = [("viewer", "viewer"), ("operator", "operator"), ("manager", "manager")]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="system_roles"
    )
    system = models.ForeignKey(System, on_delete=models.CASCADE, related_name="user_roles")
    role = models.CharField(max_length=20, choices=ROLES)

    class Meta:
        ordering = ["system__name", "user__username"]
        constraints = [
            # One role per user and system; also serves roles.system_roles() (by user).
            models.UniqueConstraint(fields=["user", "system"], name="system_role_once"),
        ]

    def __str__(self):
        return f"{self.user} is {self.role} on {self.system}"


class Source(SecretEndpointMixin, ChangeStampMixin, models.Model):
    """Something to back up: a PostgreSQL database, a SQLite file or a directory."""

    ENDPOINT_FIELDS = ("kind", "host", "port", "database", "is_portal_db")
    # The adopted repository's passphrase is cleared with the password when the host moves:
    # re-entering it is cheap, and no stored secret outlives a change of what it is for.
    SECRET_FIELDS = ("password", "pitr_cipher_pass")

    class Kind(models.TextChoices):
        POSTGRESQL = "postgresql", "PostgreSQL (pg_dump custom format)"
        SQLITE = "sqlite", "SQLite (online backup)"
        FILES = "files", "Files (tar of a directory)"

    CONFIG_FIELDS = (
        "kind",
        "host",
        "port",
        "database",
        "user",
        "password",
        "path",
        "exclude",
        "is_portal_db",
        "checks",
        # A restore test of another cluster, or through another host, proves nothing about this one.
        "pitr",
        "data_directory",
        "pitr_pg_host",
        "pitr_pg_host_user",
        "pitr_stanza",
        "pitr_adopted",
        "pitr_cipher_pass",
    )

    system = models.ForeignKey(System, on_delete=models.PROTECT, related_name="sources")
    name = models.CharField(max_length=100, unique=True, validators=[validate_single_line])
    kind = models.CharField(max_length=12, choices=Kind.choices)
    data_class = models.CharField(
        max_length=12, choices=DataClass.choices, default=DataClass.IMPORTANT
    )
    host = models.CharField(max_length=255, blank=True, validators=[validate_host])
    port = models.PositiveIntegerField(null=True, blank=True, validators=[validators.validate_port])
    database = models.CharField(max_length=255, blank=True, validators=[validate_single_line])
    user = models.CharField(max_length=255, blank=True, validators=[validate_single_line])
    password = EncryptedTextField()
    path = models.CharField(
        max_length=1024,
        blank=True,
        help_text="SQLite file or directory.",
        validators=[validate_single_line],
    )
    exclude = models.JSONField(
        default=list,
        blank=True,
        validators=[validators.validate_excludes],
        help_text="Glob patterns left out of a files backup.",
    )
    is_portal_db = models.BooleanField(
        default=False,
        help_text="Back up the portal's own database, read from its settings at run time.",
    )
    checks = models.JSONField(
        default=list,
        blank=True,
        validators=[validators.validate_checks],
        help_text="Verification queries run on restored copies: [{name, sql, expect}].",
    )
    heartbeat_enabled = models.BooleanField(
        default=False, help_text="Measure replication/heartbeat lag for this source."
    )
    masked_columns = models.JSONField(
        default=validators.default_masked_columns,
        blank=True,
        validators=[validators.validate_masked_columns],
        help_text="Columns a table preview shows as ••• (never sent to the browser): column, "
        "table.column or schema.table.column, wildcards * and ?, case ignored.",
    )
    restore_test_schedule = models.CharField(
        max_length=100,
        default="0 3 * * 0",
        blank=True,
        validators=[validators.validate_cron],
        help_text="Cron for automatic restore tests (blank: none).",
    )
    restore_test_after_backup = models.BooleanField(default=False)
    backup_globals = models.BooleanField(
        default=False,
        help_text="PostgreSQL: also back up the server's roles, memberships and tablespaces "
        "(pg_dumpall --globals-only, without password hashes) with every backup.",
    )
    pitr = models.BooleanField(
        "point-in-time recovery",
        default=False,
        help_text="PostgreSQL: archive WAL continuously and take base backups with pgBackRest "
        "(physical jobs), so the source can be restored to any second of its window.",
    )
    data_directory = models.CharField(
        max_length=1024,
        blank=True,
        validators=[validate_single_line],
        help_text="With point-in-time recovery: the cluster's data directory "
        "(SHOW data_directory), e.g. /var/lib/postgresql/15/main.",
    )
    pitr_pg_host = models.CharField(
        "database host for pgBackRest",
        max_length=253,
        blank=True,
        validators=[validate_host],
        help_text="pgBackRest's pg1-host when PostgreSQL runs on another host (reached over "
        "SSH, pgBackRest installed there). Blank: this host.",
    )
    pitr_pg_host_user = models.CharField(
        "database host OS user",
        max_length=32,
        blank=True,
        validators=[validate_single_line],
        help_text="The OS account pgBackRest logs in as on the database host (pg1-host-user).",
    )
    archive_timeout_s = models.PositiveIntegerField(
        "archive timeout (s)",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(3600)],
        help_text="archive_timeout that pitr_setup prints: a WAL segment is archived at least "
        "this often, so the archive is never older than this on a quiet database.",
    )
    pitr_stanza = models.CharField(
        "pgBackRest stanza",
        max_length=100,
        blank=True,
        validators=[validate_single_line],
        help_text="The stanza name in pgBackRest. Blank: the source's name.",
    )
    pitr_adopted = models.BooleanField(
        "adopted stanza",
        default=False,
        help_text="The stanza is run by someone else's archive_command and schedule: the "
        "portal only reads its repository (catalog, window, restores, restore tests).",
    )
    pitr_cipher_pass = EncryptedTextField(
        help_text="The existing repository's encryption passphrase (repo-cipher-pass), when "
        "it is not the one the portal derives from its key ring. Blank on an adopted stanza: "
        "the repository is not encrypted."
    )
    pitr_destinations = models.ManyToManyField(
        "Destination",
        blank=True,
        related_name="adopted_sources",
        verbose_name="adopted repositories",
        help_text="An adopted stanza's repositories, repo1 first (in the order the "
        "destinations were created); a local destination's path is the parent of the "
        "repository's pgbackrest directory.",
    )
    # The key ring key the repository passphrase is derived from, fixed when the stanza is
    # first built: rotating the ring must never change the passphrase of an existing repository.
    pitr_key_id = models.CharField(max_length=32, blank=True, editable=False)
    # The last "Check archiving" (pitr_setup's check run from the source page, as a task).
    pitr_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    pitr_check_ok = models.BooleanField(default=False, editable=False)
    pitr_check_message = models.TextField(blank=True, editable=False)
    config_changed_at = models.DateTimeField(default=timezone.now)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("backups:source_detail", args=[self.pk])

    @staticmethod
    def rpo_targets() -> dict[str, timedelta]:
        """The managers' RPO targets per data class (recovery app), over the seed's defaults."""
        return {**RPO_TARGET, **_rpo_target_lookup()}

    @property
    def rpo_target(self) -> timedelta:
        targets = self.rpo_targets()
        return targets.get(self.data_class, targets[DataClass.IMPORTANT])

    def clean(self):
        errors = {}
        try:  # the name is the first part of every artifact key (its folder at a destination)
            check_artifact_key(f"{self.name}/x")
        except ValueError:
            errors["name"] = "A source name cannot contain '..', '\\' or empty path parts."
        errors.update(self._connection_errors())
        if self.kind != self.Kind.FILES and self.exclude:
            errors["exclude"] = "Exclude patterns only apply to a files source."
        if self.backup_globals and self.kind != self.Kind.POSTGRESQL:
            errors["backup_globals"] = "Only a PostgreSQL server has roles and tablespaces."
        errors.update(pitr.source_errors(self))
        errors.update(self._pitr_change_errors())
        errors.update(self._stanza_taken_errors())
        if errors:
            raise ValidationError(errors)

    def _stanza_taken_errors(self) -> dict:
        """Two portal-run stanzas of one name would share one configuration file."""
        if not self.pitr or self.pitr_adopted or not self.stanza_name:
            return {}
        others = Source.objects.filter(pitr=True, pitr_adopted=False).exclude(pk=self.pk)
        for name, stanza in others.values_list("name", "pitr_stanza"):
            if (stanza or name) == self.stanza_name:
                field = "pitr_stanza" if self.pitr_stanza else "name"
                return {field: f"Source {name} already runs pgBackRest stanza {self.stanza_name}."}
        return {}

    def _pitr_change_errors(self) -> dict:
        """Changes that would orphan a stanza or its physical jobs."""
        if not self.pk:
            return {}
        errors = {}
        stored = (
            Source.objects.filter(pk=self.pk)
            .values("name", "pitr", "pitr_key_id", "pitr_stanza", "pitr_adopted")
            .first()
        )
        if not stored:
            return {}
        was = stored["pitr_stanza"] or stored["name"]
        if stored["pitr_key_id"] and not stored["pitr_adopted"] and was != self.stanza_name:
            field = "pitr_stanza" if self.pitr_stanza or stored["pitr_stanza"] else "name"
            what = "renaming the source" if field == "name" else "changing its stanza"
            errors[field] = (
                f"{was} is a pgBackRest stanza with a repository: {what} would leave that "
                "repository behind. Add a new source instead."
            )
        if self.pitr_adopted:
            physical = self.jobs.filter(method=BackupJob.Method.PHYSICAL, enabled=True)
            names = sorted(physical.values_list("name", flat=True))
            if names:
                errors["pitr_adopted"] = (
                    f"Job {', '.join(names)} takes physical backups of this source: an adopted "
                    "stanza is backed up by its own schedule, so disable or delete the job first."
                )
        if stored["pitr"] and not self.pitr:
            physical = self.jobs.filter(method=BackupJob.Method.PHYSICAL, enabled=True)
            names = sorted(physical.values_list("name", flat=True))
            if names:
                errors["pitr"] = (
                    f"Job {', '.join(names)} takes physical backups of this source: disable or "
                    "delete it before turning point-in-time recovery off."
                )
        return errors

    def _connection_errors(self) -> dict:
        """What is wrong with where this source reads from, by field."""
        if self.is_portal_db:
            # connection comes from settings.DATABASES at run time; checks are the portal's
            if self.checks and validators.normalise_checks(self.checks) != self.effective_checks:
                return {"checks": validators.PORTAL_DB_CHECKS_FIXED}
            return {}
        if self.kind == self.Kind.POSTGRESQL:
            return {
                field: "Required for a PostgreSQL source."
                for field in ("host", "database", "user")
                if not getattr(self, field)
            }
        if self.kind not in (self.Kind.SQLITE, self.Kind.FILES):
            return {}
        if not self.path:
            return {"path": "Required for a SQLite or files source."}
        try:
            check_allowed_path(self.path)
        except ValidationError as exc:
            return {"path": exc.messages}
        problem = protected_problem(self.path)
        return {"path": problem} if problem else {}

    @property
    def effective_checks(self) -> list[dict]:
        """The checks a restore test runs: the portal's fixed ones for its own database, so
        that no SQL stored in the row (by a form, dr_apply or the database itself) runs there."""
        if self.is_portal_db:
            return [dict(check) for check in validators.PORTAL_DB_CHECKS]
        return list(self.checks or [])

    def portal_db_spec_config(self) -> tuple[str, dict, str]:
        """(kind, config, password) of the portal's own database, read now from settings."""
        db = settings.DATABASES["default"]
        if db["ENGINE"].endswith("sqlite3"):
            return "sqlite", {"path": str(db["NAME"])}, ""
        if "postgresql" in db["ENGINE"]:
            config = {
                "host": db.get("HOST") or "localhost",
                "port": int(db.get("PORT") or 5432),
                "database": db["NAME"],
                "user": db.get("USER") or "",
            }
            return "postgresql", config, db.get("PASSWORD") or ""
        raise ValueError(f"the portal database engine {db['ENGINE']} cannot be backed up")

    def to_spec(self):
        """The engine's SourceSpec; reveals the password, so never log or render it."""
        if self.is_portal_db:
            kind, config, password = self.portal_db_spec_config()
            if kind == self.Kind.SQLITE:  # its own database, but never the keys beside it
                config["protected"] = [str(p) for p in protected_paths(include_portal_db=False)]
            return SourceSpec(kind, config, password)
        if self.kind == self.Kind.POSTGRESQL:
            config = {
                "host": self.host,
                "port": self.port or 5432,
                "database": self.database,
                "user": self.user,
            }
            password = reveal(self.password)
            return SourceSpec(self.kind, config, password)
        # The engine refuses to read these again at run time: a row written past the
        # validation (or a symlink planted after it) still cannot ship the keys.
        protected = [str(p) for p in protected_paths()]
        if self.kind == self.Kind.SQLITE:
            return SourceSpec(self.kind, {"path": self.path, "protected": protected})
        return SourceSpec(
            self.kind,
            {"path": self.path, "exclude": list(self.exclude or []), "protected": protected},
        )

    @property
    def stanza_name(self) -> str:
        return self.pitr_stanza or self.name

    def physical_destinations(self) -> list["Destination"]:
        """The repositories of this source's stanza: the destinations of its enabled physical
        jobs, or of an adopted stanza, the destinations named as its repositories."""
        if self.pitr_adopted:
            return list(self.pitr_destinations.order_by("pk"))
        return list(
            Destination.objects.filter(
                jobs__source=self, jobs__method=BackupJob.Method.PHYSICAL, jobs__enabled=True
            )
            .distinct()
            .order_by("pk")  # creation order: a destination added later becomes the next repo
        )

    def to_stanza(self, repos=None) -> Stanza:
        """The pgBackRest stanza of a PITR source; holds the repository passphrase and the
        destinations' credentials, so never log, render or pass it to a task.

        repos: destinations (or engine Repos) to use instead of the physical jobs' ones.
        The passphrase is derived from the key the source was first given (pitr_key_id), set
        here to the newest key of the ring the first time.
        """
        if not (self.pitr and self.kind == self.Kind.POSTGRESQL):
            raise ValueError(f"{self.name} does not have point-in-time recovery turned on")
        chosen = self.physical_destinations() if repos is None else repos
        engine_repos = [
            r if isinstance(r, Repo) else pitr.repo_for(r, r.to_spec().secrets) for r in chosen
        ]
        given = reveal(self.pitr_cipher_pass)
        if self.pitr_adopted:
            # Its own directory: the DBA's configuration is never read or written, and two
            # adopted stanzas of one name (on two servers) do not share a file.
            config_dir = settings.VAR_DIR / "pgbackrest" / "adopted" / self.name
            return pitr.stanza_for(self, engine_repos, passphrase=given, config_dir=str(config_dir))
        return pitr.stanza_for(
            self,
            engine_repos,
            passphrase=given or self._derived_passphrase(),
            config_dir=str(settings.VAR_DIR / "pgbackrest"),
        )

    def _derived_passphrase(self) -> str:
        if not self.pitr_key_id:
            newest = keyring.newest()
            if Source.objects.filter(pk=self.pk, pitr_key_id="").update(pitr_key_id=newest.key_id):
                audit.record("pgbackrest key fixed", self, detail=f"master key {newest.key_id}")
            # Of two concurrent first calls, the row keeps one key: read it back.
            self.pitr_key_id = (
                Source.objects.filter(pk=self.pk).values_list("pitr_key_id", flat=True).first()
                or newest.key_id
            )
        return pitr.cipher_pass(keyring.by_id(self.pitr_key_id), self.stanza_name)

    def describe(self) -> str:
        """Where the data lives, without secrets."""
        if self.is_portal_db:
            kind, config, _ = self.portal_db_spec_config()
            where = config.get("path") or f"{config['host']}:{config['port']}/{config['database']}"
            return f"the portal's own database ({kind}: {where})"
        if self.kind == self.Kind.POSTGRESQL:
            return f"{self.user}@{self.host}:{self.port or 5432}/{self.database}"
        return self.path


def site_key(
    kind: str, *, endpoint_url: str = "", bucket: str = "", path: str = "", site: str = ""
) -> str:
    """Where a destination's copies physically are, for 3-2-1: the site recorded on the
    destination (case and spacing aside), else one S3 endpoint and bucket, whatever their
    prefixes, or one local path. Two destinations with one key are one copy place, not two.
    Every AWS endpoint is one (bucket names are global there)."""
    if site and site.strip():
        return "site:" + " ".join(site.split()).casefold()
    if kind == Destination.Kind.S3:
        if is_aws_endpoint(endpoint_url):
            where = "aws"
        else:
            parts = urlsplit(endpoint_url.strip())
            where = f"{parts.scheme.lower()}://{(parts.netloc or parts.path).lower()}"
        return f"s3:{where.rstrip('/')}/{bucket.strip()}"
    return f"{kind}:{os.path.normpath(path) if path else ''}"


class LockMode(models.TextChoices):
    GOVERNANCE = "GOVERNANCE", "Governance (a key allowed to bypass can delete early)"
    COMPLIANCE = "COMPLIANCE", "Compliance (nobody can delete early)"


# A compliance lock cannot be shortened by anyone: a compromised manager account setting a
# century would bill the storage for a century. Ten years covers every retention law we know.
MAX_IMMUTABLE_DAYS = 3650


class Destination(SecretEndpointMixin, models.Model):
    """Where artifacts are written: a local directory or an S3 bucket, with its retention rule."""

    # path_style decides the host a request goes to (bucket.endpoint or endpoint/bucket).
    ENDPOINT_FIELDS = ("kind", "bucket", "region", "endpoint_url", "path_style")
    SECRET_FIELDS = (
        "access_key_id",
        "secret_access_key",
        "delete_access_key_id",
        "delete_secret_access_key",
    )

    class Kind(models.TextChoices):
        LOCAL = "local", "Local directory"
        S3 = "s3", "S3 or S3-compatible"

    class Checksums(models.TextChoices):
        AUTO = "auto", "Auto: full checksums on AWS, Content-MD5 elsewhere"
        SHA256 = "sha256", "SHA-256 per part"
        CRC32 = "crc32", "CRC32 per part"
        NONE = "none", "None beyond Content-MD5"

    name = models.CharField(max_length=100, unique=True, validators=[validate_single_line])
    kind = models.CharField(max_length=8, choices=Kind.choices)
    path = models.CharField(max_length=1024, blank=True, validators=[validate_single_line])
    bucket = models.CharField(max_length=255, blank=True, validators=[validate_single_line])
    prefix = models.CharField(max_length=255, blank=True, validators=[validate_single_line])
    region = models.CharField(max_length=40, blank=True, validators=[validate_single_line])
    endpoint_url = models.URLField(blank=True, help_text="Only for S3-compatible stores.")
    storage_class = models.CharField(
        max_length=16, choices=StorageClass.choices, default=StorageClass.STANDARD
    )
    # --- S3-compatible stores (engine: backups/engine/destinations/s3_options.py) ---
    checksums = models.CharField(
        max_length=8,
        choices=Checksums.choices,
        default=Checksums.AUTO,
        help_text="Checksum headers sent with uploads. Some S3-compatible stores refuse them "
        "(x-amz-checksum-*): auto sends them to AWS only.",
    )
    part_size_mb = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(MIN_PART_SIZE // MIB),
            MaxValueValidator(MAX_PART_SIZE // MIB),
        ],
        help_text="Multipart part size in MiB, 5 to 5120 (blank: from the previous backup's "
        "size x 1.5 so it fits in 10,000 parts, else 64 MiB).",
    )
    path_style = models.BooleanField(
        default=False,
        help_text="Path-style addressing (endpoint/bucket/key), as MinIO and most self-hosted "
        "stores need; off: virtual-hosted (bucket.endpoint/key).",
    )
    # --- immutability (engine: backups/engine/destinations/s3_lock.py) ---
    immutable_days = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_IMMUTABLE_DAYS)],
        help_text="S3 Object Lock: each artifact and manifest cannot be deleted for this many "
        "days after upload, by the portal or anyone holding its key (0: off). The bucket "
        "must have Object Lock enabled.",
    )
    lock_mode = models.CharField(
        max_length=10,
        choices=LockMode.choices,
        default=LockMode.GOVERNANCE,
        help_text="Governance: only a key allowed s3:BypassGovernanceRetention (never the "
        "portal's) can delete early. Compliance: nobody can, not even the account's root.",
    )
    access_key_id = EncryptedTextField()
    secret_access_key = EncryptedTextField()
    # --- deletion without the everyday key (engine: S3Destination.delete_client) ---
    portal_cannot_delete = models.BooleanField(
        default=False,
        help_text="The portal's key has no s3:DeleteObject*: retention and deletes use the "
        "delete credential below or, without one, leave old copies to the bucket's "
        "lifecycle rule. The destination test checks that the key really cannot delete.",
    )
    delete_access_key_id = EncryptedTextField()
    delete_secret_access_key = EncryptedTextField()
    append_only = models.BooleanField(
        default=False,
        help_text="Local directories: each copy made read-only and, where the file system "
        "and a root portal allow, immutable (chattr +i). The portal then never deletes here: "
        "the host removes old copies itself.",
    )
    keep_days = models.PositiveIntegerField(
        default=7,
        validators=[MaxValueValidator(36500)],
        help_text="Keep backups this many days…",
    )
    keep_last = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(10000)],
        help_text="…and always the newest this many.",
    )
    site = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_single_line],
        help_text="Where the copies physically are: provider and site (e.g. 'AWS eu-central-1', "
        "'Hetzner FSN1', 'office NAS'). Destinations with the same site count once for 3-2-1. "
        "Blank: the endpoint and bucket (S3) or the path (local).",
    )
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("backups:destination_detail", args=[self.pk])

    @property
    def minimum_storage(self) -> timedelta | None:
        return MINIMUM_STORAGE.get(self.storage_class) if self.kind == self.Kind.S3 else None

    @property
    def is_archive(self) -> bool:
        return self.kind == self.Kind.S3 and self.storage_class in ARCHIVE_CLASSES

    @property
    def place(self) -> str:
        """site_key() without the recorded site: the endpoint and bucket, or the path."""
        return site_key(
            self.kind, endpoint_url=self.endpoint_url, bucket=self.bucket, path=self.path
        )

    def same_site_as(self, other: "Destination") -> bool:
        """One site for 3-2-1: the same recorded site, or the same bucket or path whatever
        the labels say (a label never splits one bucket into two sites)."""
        return self.copy_site == other.copy_site or self.place == other.place

    @property
    def copy_site(self) -> str:
        """This destination's site_key(): where its copies physically are."""
        return site_key(
            self.kind,
            endpoint_url=self.endpoint_url,
            bucket=self.bucket,
            path=self.path,
            site=self.site,
        )

    @property
    def immutable(self) -> bool:
        """Copies written here cannot be deleted by the portal's credentials for a while."""
        return self.kind == self.Kind.S3 and self.immutable_days > 0

    @property
    def deletes_left_to(self) -> str:
        """Why retention does not delete here ("" when it does)."""
        if self.kind == self.Kind.LOCAL and self.append_only:
            return "append-only: the portal deletes nothing here, the host removes old copies"
        if (
            self.kind == self.Kind.S3
            and self.portal_cannot_delete
            and not (self.delete_access_key_id and self.delete_secret_access_key)
        ):
            return "left to the bucket's lifecycle rule (the portal's key cannot delete)"
        return ""

    @property
    def effective_checksums(self) -> str:
        """What uploads send: sha256, crc32 or none ("auto" resolved for this endpoint)."""
        return resolve_checksums(self.checksums, self.endpoint_url)

    def clean(self):
        errors = {}
        if self.kind == self.Kind.LOCAL:
            if not self.path:
                errors["path"] = "Required for a local destination."
            else:
                try:
                    check_allowed_path(self.path)
                except ValidationError as exc:
                    errors["path"] = exc.messages
            if self.immutable_days:
                errors["immutable_days"] = (
                    "The host can delete a local directory whatever the portal does: "
                    "immutability needs an S3 bucket with Object Lock (or a second host "
                    "the portal cannot reach)."
                )
        elif self.kind == self.Kind.S3:
            errors.update(self._s3_errors())
        if self.keep_last < 1:
            errors["keep_last"] = "Keep at least the newest backup."
        if self.pk and self.is_archive:
            physical = self.jobs.filter(method=BackupJob.Method.PHYSICAL)
            names = sorted(physical.values_list("name", flat=True))
            if names:
                errors["storage_class"] = (
                    f"Physical job {', '.join(names)} keeps a pgBackRest repository here, which "
                    "pgBackRest cannot read from an archive class."
                )
        if errors:
            raise ValidationError(errors)

    def _s3_errors(self) -> dict:
        errors = {}
        if not self.bucket:
            errors["bucket"] = "Required for an S3 destination."
        if self.prefix.startswith("/"):
            errors["prefix"] = "An S3 prefix does not start with a slash."
        if self.append_only:
            errors["append_only"] = (
                "Append-only is for local directories; for S3 use immutable days (Object "
                "Lock) or a key that cannot delete (portal cannot delete)."
            )
        return errors

    def describe(self) -> str:
        if self.kind == self.Kind.LOCAL:
            return self.path
        where = f"s3://{self.bucket}/{self.prefix}"
        return f"{where} ({self.endpoint_url})" if self.endpoint_url else where

    def to_spec(self, *, quick: bool = False, previous_size: int | None = None):
        """The engine's DestinationSpec; reveals credentials, so never log or render it.

        quick: short timeouts and no retries, for a probe a person is waiting for.
        previous_size: bytes of the job's previous artifact, to size the parts (auto).
        """
        if self.kind == self.Kind.LOCAL:
            config = {"path": self.path, "append_only": self.append_only}
            return DestinationSpec(self.name, self.kind, config, {})
        config = {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "storage_class": self.storage_class,
            "checksums": self.checksums,
            "addressing_style": "path" if self.path_style else "virtual",
            "part_size": self.part_size_mb * MIB if self.part_size_mb else None,
            "previous_size": previous_size,
            "lock_days": self.immutable_days,
            "lock_mode": self.lock_mode,
            "portal_cannot_delete": self.portal_cannot_delete,
        }
        if quick:
            config.update(max_attempts=1, connect_timeout=3, read_timeout=10)
        secrets = {name: reveal(getattr(self, name)) for name in self.SECRET_FIELDS}
        return DestinationSpec(
            self.name, self.kind, config, {k: v for k, v in secrets.items() if v}
        )

    def secret_values(self) -> list[str]:
        """Plaintext secrets, only to redact them from messages."""
        values = []
        for field in (getattr(self, name) for name in self.SECRET_FIELDS):
            try:
                if field:
                    values.append(reveal(field))
            except Exception:  # noqa: S110 - an unreadable secret cannot leak either
                pass
        return values


class Compression(models.TextChoices):
    ZSTD = "zstd", "zstd"
    GZIP = "gzip", "gzip"
    NONE = "none", "none"


class BackupJob(ChangeStampMixin, HookSettings):
    """A source backed up to one or more destinations on a cron schedule."""

    CONFIG_FIELDS = (
        "source",
        "compression",
        "compression_level",
        "encrypt",
        "method",
        "backup_type",
        "parallel",
    )
    MAX_PARALLEL = 16

    class Method(models.TextChoices):
        LOGICAL = "logical", "Logical (pg_dump, SQLite online backup, tar)"
        PHYSICAL = "physical", "Physical (pgBackRest base backup, with the WAL archive)"

    class BackupType(models.TextChoices):
        FULL = "full", "Full"
        DIFF = "diff", "Differential (changes since the last full)"
        INCR = "incr", "Incremental (changes since the last backup)"

    name = models.CharField(max_length=100, unique=True, validators=[validate_single_line])
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="jobs")
    destinations = models.ManyToManyField(Destination, related_name="jobs")
    schedule = models.CharField(
        max_length=100,
        blank=True,
        validators=[validators.validate_cron],
        help_text='Cron, e.g. "0 2 * * *" (blank: run only on demand).',
    )
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validators.validate_timezone]
    )
    compression = models.CharField(max_length=8, choices=Compression.choices, default="zstd")
    compression_level = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(22)]
    )
    encrypt = models.BooleanField(default=True)
    # Above 1: pg_dump -Fd -j N into the worker's staging, stored as one tar artifact
    # (backups/engine/pg_parallel.py); restores of it run pg_restore -j N.
    parallel = models.PositiveSmallIntegerField(
        "parallel dump jobs",
        default=1,
        help_text="PostgreSQL logical backups: 1 streams a custom-format dump; 2 to 16 run "
        "pg_dump -Fd -j N (N connections to the source) into the worker's staging directory, "
        "which needs free space for the uncompressed dump, and restores run pg_restore -j N.",
    )
    method = models.CharField(
        max_length=8,
        choices=Method.choices,
        default=Method.LOGICAL,
        help_text="Physical: a pgBackRest base backup of a source with point-in-time recovery; "
        "pgBackRest compresses and encrypts its repository itself, so the compression and "
        "encryption settings below apply to logical backups only.",
    )
    backup_type = models.CharField(
        max_length=4,
        choices=BackupType.choices,
        default=BackupType.FULL,
        help_text="Physical backups only.",
    )
    enabled = models.BooleanField(default=True)
    # A healthchecks.io-style dead-man's switch: <url>/start, <url>, <url>/fail. A capability
    # URL (whoever knows it can ping), so viewers and logs see it masked (outbound.mask_url).
    ping_url = models.CharField(
        "ping URL",
        max_length=validators.MAX_URL,
        blank=True,
        validators=[validators.validate_outbound_url],
        help_text="Optional, e.g. https://hc-ping.com/<uuid>: pinged with /start when a run "
        "starts, bare on success, /fail with the error otherwise, so the portal's own death is "
        "noticed by something outside it.",
    )
    config_changed_at = models.DateTimeField(default=_now)
    created = models.DateTimeField(default=_now)
    # The job lock: set by a conditional update when a run starts, cleared when it finishes.
    locked_by_run = models.ForeignKey(
        "BackupRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)

        sync_job_schedule(self)

    def get_absolute_url(self):
        return reverse("backups:job_detail", args=[self.pk])

    def delete(self, *args, **kwargs):
        drop_job_schedule(self)
        return super().delete(*args, **kwargs)

    @property
    def ping_url_masked(self) -> str:
        return outbound.mask_url(self.ping_url)

    @property
    def schedule_name(self) -> str:
        return f"backup job {self.pk}"

    def clean(self):
        errors = {}
        level = self.compression_level
        if level is not None:
            limits = {"zstd": (1, 22), "gzip": (1, 9)}
            if self.compression not in limits:
                errors["compression_level"] = "No level without compression."
            else:
                low, high = limits[self.compression]
                if not low <= level <= high:
                    errors["compression_level"] = (
                        f"{self.compression} levels go from {low} to {high}."
                    )
        # A physical job against its source and destinations: method_problems(), which the
        # form and dr_apply call with the values about to be saved.
        if self.method == self.Method.LOGICAL and self.backup_type != self.BackupType.FULL:
            errors["backup_type"] = "Differential and incremental backups are physical only."
        # Against the source: the form and dr_apply, which know the source about to be saved.
        problem = self.parallel_problem(None)
        if problem:
            errors["parallel"] = problem
        errors.update(self.hook_errors())
        if errors:
            raise ValidationError(errors)

    def parallel_problem(self, source) -> str:
        """Why `parallel` cannot be used with `source` (None: not known yet), or ""."""
        value = self.parallel
        if value is None or not 1 <= value <= self.MAX_PARALLEL:
            return (
                f"Parallel dump jobs go from 1 to {self.MAX_PARALLEL} "
                "(1: one custom-format stream)."
            )
        if value == 1:
            return ""
        if self.method != self.Method.LOGICAL:
            return "Parallel dumps are logical only: pgBackRest sets its own process-max."
        if source is not None and source.kind != Source.Kind.POSTGRESQL:
            return f"Parallel dumps are for PostgreSQL sources only; {source} is {source.kind}."
        return ""

    def method_problems(self, source, destinations) -> dict[str, str]:
        """What is wrong with this job's method against `source` and `destinations` (the ones it
        is about to have): the form and dr_apply ask before the many-to-many is saved."""
        siblings = []
        if source is not None and source.pk:
            others = (
                BackupJob.objects.filter(source=source, method=self.Method.PHYSICAL, enabled=True)
                .exclude(pk=self.pk)
                .prefetch_related("destinations")
            )
            siblings = [(job.name, {d.name for d in job.destinations.all()}) for job in others]
        return pitr.physical_job_errors(self, source, destinations, siblings)

    # --- the lock -----------------------------------------------------------
    def acquire_lock(self, run) -> bool:
        """Take the job lock for `run`; a lock left by a finished run is cleared first."""
        holder = (
            BackupJob.objects.filter(pk=self.pk).values_list("locked_by_run", flat=True).first()
        )
        if holder and holder != run.pk:
            if BackupRun.objects.filter(pk=holder, status__in=DONE).exists():
                BackupJob.objects.filter(pk=self.pk, locked_by_run=holder).update(
                    locked_by_run=None
                )
        won = (
            BackupJob.objects.filter(pk=self.pk, locked_by_run__isnull=True).update(
                locked_by_run=run
            )
            == 1
        )
        if won:
            self.locked_by_run_id = run.pk
        return won or holder == run.pk

    def release_lock(self, run):
        BackupJob.objects.filter(pk=self.pk, locked_by_run=run.pk).update(locked_by_run=None)

    def active_run(self):
        return self.runs.filter(status__in=ACTIVE).order_by("-queued").first()

    def create_run(self, trigger: str, user=None, scheduled_for=None) -> "BackupRun":
        return BackupRun.objects.create(
            job=self,
            job_name=self.name,
            source=self.source,
            source_name=self.source.name,
            trigger=trigger,
            scheduled_for=scheduled_for,
            requested_by=user if getattr(user, "is_authenticated", False) else None,
        )


class Trigger(models.TextChoices):
    """What started a run (a backup, a restore test)."""

    SCHEDULED = "scheduled", "Scheduled"
    AFTER_BACKUP = "after_backup", "After a backup"  # a restore test queued by its backup
    MANUAL = "manual", "Manual (portal)"
    COMMAND = "command", "Command line"
    CATALOG = "catalog", "Rebuilt from a manifest"  # a backup run read back from its manifest


# A run whose data can be restored, when a live copy of it is left (see BackupRun.objects.good()).
GOOD_STATUSES = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


class BackupRunQuerySet(models.QuerySet):
    def restorable(self):
        """Runs that were good when taken, whether or not a copy is left (history, compliance)."""
        return self.filter(status__in=GOOD_STATUSES, restorable=True)

    def good(self):
        """Good backups: succeeded or partial, restorable, with at least one live copy.

        The one definition of what RPO, restore tests, restores and retention count on.
        A correlated EXISTS, not a join: no duplicate rows, and counts over `copies` stay true.
        """
        live = BackupCopy.objects.live().filter(run=OuterRef("pk"))
        return self.restorable().filter(Exists(live))


class BackupRun(RunBase):
    """One execution of a backup job: what was read, what was stored where, and how it went."""

    # What the compliance report rests on; `restorable` and `anomalies` move later (retention,
    # the anomaly check), so they are not sealed.
    EVIDENCE_FIELDS = (
        *RunBase.EVIDENCE_FIELDS,
        *("job", "job_name", "source", "source_name", "trigger", "artifact_key"),
        *("bytes_read", "bytes_stored", "sha256", "data_taken_at"),
    )

    job = models.ForeignKey(
        BackupJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    job_name = models.CharField(max_length=100, blank=True)
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    source_name = models.CharField(max_length=100, blank=True)
    trigger = models.CharField(max_length=12, choices=Trigger.choices, default=Trigger.MANUAL)
    artifact_key = models.CharField(max_length=300, blank=True)
    bytes_read = models.BigIntegerField(default=0)
    bytes_stored = models.BigIntegerField(default=0)
    compression_ratio = models.FloatField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    data_taken_at = models.DateTimeField(null=True, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    anomalies = models.JSONField(default=list, blank=True)
    restorable = models.BooleanField(default=True)
    not_restorable_reason = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # The schedule slot (cron fire time) a scheduled run was started for: one run per slot,
    # so a redelivered task for a slot that already ran does nothing.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # Set by "Cancel" on a running run; the worker polls it and stops the engine.
    cancel_requested = models.BooleanField(default=False)
    # What the job's ping URL answered ("start: HTTP 200; success: HTTP 200"), never the URL.
    ping_outcome = models.CharField(max_length=500, blank=True)
    # What the job's hooks did ("pre webhook: HTTP 200; post command: exit 0"), never a URL.
    hook_outcome = models.TextField(blank=True)

    objects = BackupRunQuerySet.as_manager()

    class Meta:
        ordering = ["-queued", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "scheduled_for"],
                condition=models.Q(scheduled_for__isnull=False),
                name="backuprun_once_per_slot",
            )
        ]
        indexes = [
            # Job detail: run history newest first; anomaly baseline of a job's recent runs.
            models.Index(fields=["job", "-queued"], name="backuprun_job_idx"),
            # RPO: newest good backup of a source (status, data_taken_at); retention's newest good.
            models.Index(
                fields=["source", "status", "-data_taken_at"], name="backuprun_source_rpo_idx"
            ),
            # The reaper: running runs whose heartbeat is old.
            models.Index(fields=["status", "heartbeat_at"], name="backuprun_reap_idx"),
            # Dashboard: newest good run with a live copy per source and destination; RPO charts.
            models.Index(fields=["source", "-data_taken_at"], name="backuprun_source_taken_idx"),
            # Dashboard: failed/partial runs of the last 24 h; compliance: runs finished in a period.
            models.Index(fields=["status", "-finished"], name="backuprun_status_fin_idx"),
            # Run history: every run newest first, paged by (queued, id).
            models.Index(fields=["-queued", "-id"], name="backuprun_queued_idx"),
            # Run history of one source: without it the page above is read until 50 of the
            # source's runs turn up (25,000 rows at 500 sources; all of them for a rare one).
            models.Index(fields=["source", "-queued", "-id"], name="backuprun_src_queued_idx"),
        ]

    def __str__(self):
        return f"backup run #{self.pk} of {self.job_name or self.source_name}"

    def get_absolute_url(self):
        return reverse("backups:run_detail", args=[self.pk])

    @property
    def is_good(self) -> bool:
        return self.status in GOOD_STATUSES and self.restorable

    @property
    def anomaly_messages(self) -> list[str]:
        return [a.get("message", "") for a in self.anomalies or []]

    def on_finished(self):
        """Release the job lock (also for the reaper).

        Anomalies and alerts follow the run's RunEvent (incidents.events), after commit.
        """
        if self.job_id:
            BackupJob.objects.filter(pk=self.job_id, locked_by_run=self.pk).update(
                locked_by_run=None
            )

    def on_lost(self):
        """The reaper failed this run: remove the temp files and open uploads its worker left."""
        discard_partial_artifacts(self)


class BackupCopyQuerySet(models.QuerySet):
    def live(self):
        """Copies that count: stored ok and not deleted (a lost copy has `ok` cleared)."""
        return self.filter(ok=True, deleted_at__isnull=True)


class BackupCopy(models.Model):
    """One stored artifact of a run at one destination."""

    run = models.ForeignKey(BackupRun, on_delete=models.CASCADE, related_name="copies")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="copies")
    location = models.CharField(max_length=1024, blank=True)
    manifest_location = models.CharField(max_length=1024, blank=True)
    bytes_stored = models.BigIntegerField(default=0)
    storage_class = models.CharField(max_length=16, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_reason = models.CharField(max_length=300, blank=True)
    # Found missing or unreadable (restore test, verify_backup, retention): `ok` is cleared
    # too, so every "live copy" filter (ok, not deleted) leaves it out of RPO and readiness.
    lost_at = models.DateTimeField(null=True, blank=True)
    # The scrub (backups/scrub.py): when this copy was last read back and verified in full
    # (archive classes: its metadata found), and why the last attempt did not prove it.
    proven_at = models.DateTimeField(null=True, blank=True)
    proof_error = models.TextField(blank=True)
    # S3 Object Lock: neither the portal nor its key can delete the copy before this.
    locked_until = models.DateTimeField(null=True, blank=True)

    objects = BackupCopyQuerySet.as_manager()

    audit = False  # written by runs and retention, which log each change themselves

    class Meta:
        ordering = ["destination__name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "destination"], name="backupcopy_once_per_dest")
        ]
        indexes = [
            # Retention: live copies at one destination, newest first.
            models.Index(
                fields=["destination", "deleted_at", "-created"], name="backupcopy_ret_idx"
            ),
            # The scrub's queue: live copies at one destination, proven longest ago first.
            models.Index(
                fields=["destination", "proven_at"],
                condition=models.Q(ok=True, deleted_at__isnull=True),
                name="backupcopy_scrub_idx",
            ),
            # Dashboard: storage used per destination (live copies only).
            models.Index(
                fields=["destination", "created"],
                condition=models.Q(ok=True, deleted_at__isnull=True),
                name="backupcopy_live_idx",
            ),
            # Destination banner on every page: copies found lost in the last hour. Partial:
            # lost copies are few, and without it the banner read every copy (0.4 s at 2M).
            models.Index(
                fields=["destination", "lost_at"],
                condition=models.Q(lost_at__isnull=False),
                name="backupcopy_lost_idx",
            ),
        ]

    def __str__(self):
        return f"{self.run} at {self.destination_id}"

    @property
    def is_live(self) -> bool:
        return self.ok and self.deleted_at is None

    def locked(self, now=None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or timezone.now())

    def mark_lost(self, reason: str) -> bool:
        """The artifact is gone or unreadable: this copy no longer counts; True if newly lost."""
        now = timezone.now()
        changed = (
            type(self)
            .objects.filter(pk=self.pk, lost_at__isnull=True)
            .update(ok=False, lost_at=now, error=f"lost: {reason}"[:2000])
        )
        if changed:
            readiness_version.bump()  # an update(): no model signal sees it
            self.ok, self.lost_at, self.error = False, now, f"lost: {reason}"[:2000]

            audit.record("backup copy lost", self.run, detail=f"{self.destination_id}: {reason}")
        return bool(changed)


class ArchiveRestore(models.Model):
    """A request for a temporary readable copy of an archived copy (S3 RestoreObject)."""

    class Tier(models.TextChoices):
        BULK = "Bulk", "Bulk (cheapest; 5-12 h, DEEP_ARCHIVE up to 48 h)"
        STANDARD = "Standard", "Standard (3-5 h, DEEP_ARCHIVE up to 12 h)"
        EXPEDITED = "Expedited", "Expedited (minutes; GLACIER only, costly)"

    class State(models.TextChoices):
        IN_PROGRESS = "in progress", "in progress"
        AVAILABLE = "available", "available"
        EXPIRED = "expired", "expired"
        FAILED = "failed", "failed"

    OPEN = {State.IN_PROGRESS, State.AVAILABLE}

    copy = models.ForeignKey(BackupCopy, on_delete=models.CASCADE, related_name="archive_restores")
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.BULK)
    days = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )
    state = models.CharField(max_length=12, choices=State.choices)
    requested_at = models.DateTimeField(default=timezone.now)
    requested_by = models.CharField(max_length=150, blank=True)
    available_until = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self):
        return f"restore of {self.copy} ({self.state})"


class PitrWindow(models.Model):
    """The points in time a PITR source can be restored to, as its repositories last showed.

    One row per source, replaced by each refresh (record_window). Readiness reads it for
    "RPO now": the age of the newest archived WAL, not of the newest base backup. No index
    beyond the one-to-one's unique one: readiness reads the rows of the sources it judges
    (source_id IN …).
    """

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="pitr_window")
    oldest = models.DateTimeField(null=True, blank=True)  # the oldest backup's stop time
    newest = models.DateTimeField(null=True, blank=True)  # end of the newest archived segment
    newest_segment = models.CharField(max_length=40, blank=True)
    gap_after = models.CharField(max_length=40, blank=True)  # the last segment before a gap
    missing_segment = models.CharField(max_length=40, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)
    error = models.TextField(blank=True)

    audit = False  # refreshed every minute by a task; the alerts record what matters

    def __str__(self):
        return f"recoverable window of {self.source_id}"

    @property
    def wal_gap(self) -> bool:
        return bool(self.missing_segment)

    @classmethod
    def record_window(cls, source: Source, window: Window) -> "PitrWindow":
        """Store what the engine found (replacing the previous row); the error as given,
        which the engine writes without secrets."""
        row, _ = cls.objects.update_or_create(
            source=source,
            defaults={
                "oldest": window.oldest,
                "newest": window.newest,
                "newest_segment": window.newest_segment[:40],
                "gap_after": window.gap_after[:40],
                "missing_segment": window.missing_segment[:40],
                "checked_at": window.checked_at or timezone.now(),
                "error": (window.error or "")[:2000],
            },
        )
        return row


def record_window(source: Source, window: Window) -> PitrWindow:
    """Upsert the source's recoverable window from the engine's `Window`."""
    return PitrWindow.record_window(source, window)


def live_copies_by_key() -> dict[str, int]:
    """{master key id: live copies sealed with it}, from the manifests of good runs.

    One grouped query over good runs joined to their live copies, grouped by the manifest's
    key id; unencrypted copies (no key id) are left out.
    """
    rows = (
        BackupCopy.objects.live()
        .filter(run__status__in=GOOD_STATUSES)
        # KT("run__manifest__key_id") would read "run" as the JSON field: name the key apart.
        .annotate(key_id=KeyTextTransform("key_id", "run__manifest"))
        .values("key_id")
        .annotate(copies=Count("pk"))
        .order_by()
    )
    return {row["key_id"]: row["copies"] for row in rows if row["key_id"]}


def copies_missing_keys(ring_ids) -> dict[str, int]:
    """{key id: live copies} for keys the ring no longer holds: those copies cannot be restored."""
    ring_ids = set(ring_ids)
    return {k: n for k, n in live_copies_by_key().items() if k not in ring_ids}


def missing_key_summary() -> tuple[int, list[str]]:
    """(live copies, key ids) of backups sealed with master keys no longer in the ring.

    The same figure for `manage.py check` (dr_portal.checks) and the dashboard's warning.
    Raises keyring.KeyRingError when DR_ENCRYPTION_KEYS cannot be parsed.
    """
    ring_ids = [k.key_id for k in keyring.parse_ring(settings.DR_ENCRYPTION_KEYS)]
    missing = copies_missing_keys(ring_ids)
    return sum(missing.values()), sorted(missing)
