"""Forms for managers: sources, destinations, jobs. Secrets are write-only."""

import copy
import json
from datetime import timedelta

from django import forms
from django.utils import timezone

from backups import pitr, validators
from backups.check_editor import CheckRowsField
from backups.models import ArchiveRestore, BackupJob, Destination, Source
from dr_portal import audit
from dr_portal.lib import roles
from dr_portal.runs import RunStatus
from dr_portal.widgets import LongSelect

KEEP = "Leave blank to keep the stored value."
WIDE = forms.TextInput(attrs={"size": 60})


class SecretField(forms.CharField):
    """A password input that never renders the stored value; blank keeps it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        kwargs.setdefault("help_text", KEEP)
        kwargs["widget"] = forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
        super().__init__(**kwargs)


class SecretsMixin:
    """Copies non-blank secret inputs onto the instance; blank keeps the stored token."""

    # form field -> model field. The form fields have their own names so that no ModelForm
    # machinery (the admin lists every form field in Meta.fields) ever copies a blank over them.
    SECRET_FIELDS: dict[str, str] = {}

    def _apply_secrets(self, instance):
        for form_name, model_name in self.SECRET_FIELDS.items():
            value = self.cleaned_data.get(form_name)
            if value:
                setattr(instance, model_name, value)

    def save(self, commit=True):
        instance = super().save(commit=False)
        self._apply_secrets(instance)
        # The model clears stored secrets whose endpoint changed; say so before it happens.
        self.cleared_secrets = instance.secrets_to_clear()
        self.moved_fields = instance.endpoint_changes()
        if commit:
            instance.save()
            self.save_m2m()
        return instance

    def cleared_message(self) -> str:
        """What the person must re-enter because the endpoint changed ("" if nothing)."""
        cleared = getattr(self, "cleared_secrets", [])
        if not cleared:
            return ""
        labels = {model: self.fields[form].label for form, model in self.SECRET_FIELDS.items()}
        names = " and ".join(str(labels[name]).lower() for name in cleared)
        meta = self.instance._meta
        moved = ", ".join(str(meta.get_field(n).verbose_name) for n in self.moved_fields)
        return (
            f"The stored {names} {'was' if len(cleared) == 1 else 'were'} cleared because "
            f"{moved} changed: a secret is never sent to a new endpoint. Re-enter it."
        )


class JSONListField(forms.CharField):
    """A list edited as JSON (checks) or one item per line (patterns)."""

    def __init__(self, *, lines=False, **kwargs):
        self.lines = lines
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list):
            if self.lines:
                return "\n".join(value)
            return json.dumps(value, indent=2) if value else ""
        return value

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return []
        if self.lines:
            return [line.strip() for line in value.splitlines() if line.strip()]
        try:
            data = json.loads(value)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise forms.ValidationError("Give a JSON list of {name, sql, expect} objects.")
        return data


class ArchiveTimeoutMixin:
    """A blank archive timeout keeps the stored one (a new source's: 60 s)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["archive_timeout_s"].required = False

    def clean_archive_timeout_s(self):
        value = self.cleaned_data.get("archive_timeout_s")
        return self.instance.archive_timeout_s if value is None else value


class KindFieldsMixin:
    """Which fields belong to which kind, so the page shows only the chosen kind's fields
    (portal.js hides the others; without JavaScript all show). Validation is the model's
    and does not depend on what was shown."""

    KIND_FIELDS: dict[str, tuple[str, ...]] = {}

    def rows(self):
        """(bound field, "kind kind…" it belongs to, or "" for every kind)."""
        owners: dict[str, list[str]] = {}
        for kind, names in self.KIND_FIELDS.items():
            for name in names:
                owners.setdefault(name, []).append(kind)
        return [(field, " ".join(owners.get(field.name, []))) for field in self]


PG_FIELDS = (
    "host",
    "port",
    "database",
    "user",
    "new_password",
    "backup_globals",
    "pitr",
    "data_directory",
    "pitr_pg_host",
    "pitr_pg_host_user",
    "archive_timeout_s",
    "pitr_adopted",
    "pitr_stanza",
    "new_pitr_cipher_pass",
    "pitr_destinations",
)


class AdoptedStanzaMixin:
    """The adopted stanza's passphrase and repositories, checked before the save (the model
    sees neither: the secret is applied and the many-to-many saved after its clean)."""

    def clean_new_pitr_cipher_pass(self):
        value = self.cleaned_data.get("new_pitr_cipher_pass") or ""
        if value and not pitr.CIPHER_PASS.match(value):
            raise forms.ValidationError(
                "The passphrase must be printable characters without spaces (at most 256)."
            )
        return value

    def clean(self):
        cleaned = super().clean()
        chosen = list(cleaned.get("pitr_destinations") or [])
        if cleaned.get("pitr_adopted") and not chosen:
            self.add_error(
                "pitr_destinations",
                "Name the adopted stanza's repositories: the destinations holding them.",
            )
        if len(chosen) > pitr.MAX_REPOS:
            self.add_error(
                "pitr_destinations", f"pgBackRest keeps at most {pitr.MAX_REPOS} repositories."
            )
        return cleaned


class SourceForm(
    KindFieldsMixin, AdoptedStanzaMixin, ArchiveTimeoutMixin, SecretsMixin, forms.ModelForm
):
    SECRET_FIELDS = {"new_password": "password", "new_pitr_cipher_pass": "pitr_cipher_pass"}
    KIND_FIELDS = {
        "postgresql": PG_FIELDS,
        "sqlite": ("path",),
        "files": ("path", "exclude"),
    }

    new_password = SecretField(label="Password")
    new_pitr_cipher_pass = SecretField(
        label="Adopted repository passphrase",
        help_text="The existing repository's repo-cipher-pass; never shown. " + KEEP,
    )
    exclude = JSONListField(lines=True, label="Exclude patterns", help_text="One glob per line.")
    masked_columns = JSONListField(
        lines=True,
        label="Masked columns in table previews",
        help_text="One per line: column, table.column or schema.table.column (* and ? "
        "wildcards, case ignored). A preview shows their values as •••. Empty: mask nothing.",
    )
    checks = CheckRowsField(
        label="Verification checks",
        help_text="One row per check: a name, one read-only query (SELECT, WITH ... SELECT, "
        "VALUES or TABLE) whose first value is a number or a boolean, and what to expect of "
        "it. It runs on the restored copy as an unprivileged role. Expect: "
        + validators.EXPECT_HELP
        + ". Leave a row empty to drop it.",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.is_portal_db:
            self.fields["checks"].help_text = validators.PORTAL_DB_CHECKS_FIXED
        if user is not None:  # a manager of some systems picks only among those
            field = self.fields["system"]
            field.queryset = roles.scope(field.queryset, user, "pk", roles.MANAGER)

    class Meta:
        model = Source
        fields = [
            "system",
            "name",
            "kind",
            "data_class",
            "host",
            "port",
            "database",
            "user",
            "path",
            "exclude",
            "checks",
            "masked_columns",
            "heartbeat_enabled",
            "restore_test_schedule",
            "restore_test_after_backup",
            "backup_globals",
            "pitr",
            "data_directory",
            "pitr_pg_host",
            "pitr_pg_host_user",
            "archive_timeout_s",
            "pitr_adopted",
            "pitr_stanza",
            "pitr_destinations",
        ]
        widgets = {"path": WIDE, "host": WIDE, "data_directory": WIDE}

    def clean_checks(self):
        checks = self.cleaned_data["checks"]
        problems = validators.check_problems(checks)
        if problems:
            raise forms.ValidationError(problems)
        return validators.normalise_checks(checks)


class DestinationForm(KindFieldsMixin, SecretsMixin, forms.ModelForm):
    KIND_FIELDS = {
        "local": ("path",),
        "s3": (
            "bucket",
            "prefix",
            "region",
            "endpoint_url",
            "path_style",
            "storage_class",
            "checksums",
            "part_size_mb",
            "new_access_key_id",
            "new_secret_access_key",
        ),
    }
    SECRET_FIELDS = {
        "new_access_key_id": "access_key_id",
        "new_secret_access_key": "secret_access_key",
        "new_delete_access_key_id": "delete_access_key_id",
        "new_delete_secret_access_key": "delete_secret_access_key",
    }

    endpoint_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Only for S3-compatible stores.",
        widget=forms.URLInput(attrs={"size": 60}),
    )
    new_access_key_id = SecretField(label="Access key id")
    new_secret_access_key = SecretField(label="Secret access key")
    new_delete_access_key_id = SecretField(label="Delete credential: access key id")
    new_delete_secret_access_key = SecretField(label="Delete credential: secret access key")
    checksums = forms.ChoiceField(
        choices=Destination.Checksums.choices,
        required=False,
        initial=Destination.Checksums.AUTO,
        help_text=Destination._meta.get_field("checksums").help_text,
    )

    class Meta:
        model = Destination
        fields = [
            "name",
            "kind",
            "path",
            "bucket",
            "prefix",
            "region",
            "endpoint_url",
            "path_style",
            "storage_class",
            "checksums",
            "part_size_mb",
            "immutable_days",
            "lock_mode",
            "portal_cannot_delete",
            "append_only",
            "site",
            "keep_days",
            "keep_last",
            "enabled",
        ]
        widgets = {"path": WIDE, "bucket": WIDE}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("immutable_days", "lock_mode"):
            self.fields[name].required = False

    def clean_checksums(self):
        # Irrelevant to a local destination, so a form may leave it out: auto.
        return self.cleaned_data["checksums"] or Destination.Checksums.AUTO

    # Left out of a post (irrelevant to a local destination, or a form from before they
    # existed): the destination keeps what it has; a new one is not immutable.
    def clean_immutable_days(self):
        value = self.cleaned_data.get("immutable_days")
        return self.instance.immutable_days if value is None else value

    def clean_lock_mode(self):
        return self.cleaned_data.get("lock_mode") or self.instance.lock_mode

    def clean(self):
        cleaned = super().clean()
        # Stored or given anew: a delete credential is a pair.
        has = [
            bool(cleaned.get(f"new_{name}") or getattr(self.instance, name))
            for name in ("delete_access_key_id", "delete_secret_access_key")
        ]
        if has[0] != has[1]:
            self.add_error(
                "new_delete_secret_access_key",
                "A delete credential needs both its access key id and its secret.",
            )
        return cleaned


class ArchiveRestoreForm(forms.Form):
    """Tier and days of a restore of an archived copy (S3 RestoreObject)."""

    tier = forms.ChoiceField(choices=ArchiveRestore.Tier.choices, initial="Bulk")
    days = forms.IntegerField(min_value=1, max_value=30, initial=3)


class JobMethodMixin:
    """Refuses a physical job its source or destinations cannot take (the portal and the admin).

    Method and type may be left out of a post (a form saved before they existed): they keep
    the job's value, a new job's default (logical, full)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("method", "backup_type"):
            if name in self.fields:
                self.fields[name].required = False

    def clean_method(self):
        return self.cleaned_data.get("method") or self.instance.method

    def clean_backup_type(self):
        return self.cleaned_data.get("backup_type") or self.instance.backup_type

    def clean(self):
        cleaned = super().clean()
        source, destinations = cleaned.get("source"), cleaned.get("destinations")
        if source is not None and destinations is not None:
            # The instance takes the form's values only after clean(): judge a copy that has them.
            job = copy.copy(self.instance)
            for name in ("method", "backup_type", "enabled"):
                if name in cleaned:
                    setattr(job, name, cleaned[name])
            for name, message in job.method_problems(source, destinations).items():
                if name in self.fields and name not in self.errors:
                    self.add_error(name, message)
        return cleaned


class ArgvField(forms.CharField):
    """A command as a JSON list of strings (an argv: no shell ever parses it)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 60}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return json.dumps(value) if isinstance(value, list) and value else (value or "")

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return []
        try:
            return json.loads(value)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None


HOOK_FIELDS = [
    "pre_hook_url",
    "pre_hook_required",
    "post_hook_url",
    "pre_hook_command",
    "post_hook_command",
    "hook_timeout_s",
]
COMMAND_FIELDS = ("pre_hook_command", "post_hook_command")
ONLY_SUPERUSER = (
    "Only a superuser may set or change a command hook: it runs a program on the worker. "
    "Leave it as it is, or use a webhook."
)


class JobHooksMixin:
    """Hook secrets write-only (blank keeps them); command hooks changed by superusers only.
    For a job's form and a restore target's (the same hook fields: backups.hook_fields).

    `user` is the person saving (the view and the admin pass it); without one, no command
    hook may change."""

    SECRET_FIELDS = {
        "new_pre_hook_secret": "pre_hook_secret",
        "new_post_hook_secret": "post_hook_secret",
    }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user if user is not None else getattr(self, "user", None)
        if "hook_timeout_s" in self.fields:  # left out of a post: the job's (or the default)
            self.fields["hook_timeout_s"].required = False
        for name in COMMAND_FIELDS:
            if name in self.fields:
                self.fields[name].help_text = (
                    'Superusers only. A JSON argv, e.g. ["/usr/local/bin/quiesce", "toolhub"]: no '
                    "shell; the run's facts arrive as DR_* environment variables."
                )

    def _clean_command(self, name):
        value = self.cleaned_data.get(name) or []
        stored = getattr(self.instance, name) or []
        if value != stored and not getattr(self.user, "is_superuser", False):
            raise forms.ValidationError(ONLY_SUPERUSER)
        return value

    def clean_hook_timeout_s(self):
        value = self.cleaned_data.get("hook_timeout_s")
        return self.instance.hook_timeout_s if value is None else value

    def clean_pre_hook_command(self):
        return self._clean_command("pre_hook_command")

    def clean_post_hook_command(self):
        return self._clean_command("post_hook_command")

    def _post_clean(self):
        # Secrets onto the instance before the model's clean() asks for them.
        for form_name, model_name in self.SECRET_FIELDS.items():
            value = self.cleaned_data.get(form_name)
            if value:
                setattr(self.instance, model_name, value)
        super()._post_clean()


class JobForm(JobHooksMixin, JobMethodMixin, forms.ModelForm):
    new_pre_hook_secret = SecretField(label="Pre-hook secret", help_text=f"{KEEP} HMAC key.")
    new_post_hook_secret = SecretField(label="Post-hook secret", help_text=f"{KEEP} HMAC key.")
    pre_hook_command = ArgvField()
    post_hook_command = ArgvField()

    class Meta:
        model = BackupJob
        fields = [
            "name",
            "source",
            "destinations",
            "schedule",
            "timezone",
            "method",
            "backup_type",
            "compression",
            "compression_level",
            "encrypt",
            "parallel",
            "enabled",
            "ping_url",
            *HOOK_FIELDS,
        ]
        help_texts = {
            "compression": "Logical backups only: pgBackRest compresses its repository itself.",
            "encrypt": "Logical backups only: a physical job's repository is always encrypted "
            "with a passphrase derived from the key ring (pgBackRest repo-cipher-type).",
        }
        widgets = {
            "destinations": forms.CheckboxSelectMultiple,
            "schedule": forms.TextInput(attrs={"placeholder": "0 2 * * *"}),
            "parallel": forms.NumberInput(attrs={"min": 1, "max": BackupJob.MAX_PARALLEL}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user is not None:  # a manager of some systems picks only their sources
            field = self.fields["source"]
            field.queryset = roles.scope(field.queryset, self.user, "system", roles.MANAGER)
        self.fields["destinations"].required = True
        self.fields["destinations"].error_messages["required"] = (
            "Pick at least one destination (the 3-2-1 rule wants two, one off-site)."
        )
        if "parallel" in self.fields:  # left out of a post: the job's value (or 1)
            self.fields["parallel"].required = False

    def clean_parallel(self):
        value = self.cleaned_data.get("parallel")
        return self.instance.parallel if value is None else value

    def clean(self):
        cleaned = super().clean()
        source, parallel = cleaned.get("source"), cleaned.get("parallel")
        if source is not None and parallel is not None and "parallel" not in self.errors:
            job = copy.copy(self.instance)
            job.parallel, job.method = parallel, cleaned.get("method") or job.method
            problem = job.parallel_problem(source)
            if problem:
                self.add_error("parallel", problem)
        return cleaned

    def save(self, commit=True):
        before = set()
        if self.instance.pk:
            before = set(self.instance.destinations.values_list("name", flat=True))
        job = super().save(commit=commit)
        after = {d.name for d in self.cleaned_data["destinations"]}
        if commit and before and before != after:
            BackupJob.objects.filter(pk=job.pk).update(config_changed_at=timezone.now())
            audit.record(
                "update",
                job,
                changes={"destinations": [", ".join(sorted(before)), ", ".join(sorted(after))]},
            )
        return job


class RunFilterForm(forms.Form):
    """The filters of the run history; every field optional, an unknown value is refused."""

    PROBLEMS = "failed_or_partial"
    PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    status = forms.ChoiceField(
        required=False,
        choices=[("", "any status"), (PROBLEMS, "failed or partial"), *RunStatus.choices],
    )
    # Names only, in one string each (LongSelect): a list of every source and job.
    source = forms.ModelChoiceField(
        required=False,
        queryset=Source.objects.only("pk", "name").order_by("name"),
        empty_label="any source",
        widget=LongSelect,
    )
    job = forms.ModelChoiceField(
        required=False,
        queryset=BackupJob.objects.only("pk", "name").order_by("name"),
        empty_label="any job",
        widget=LongSelect,
    )
    since = forms.ChoiceField(
        required=False,
        label="Queued in the last",
        choices=[("", "any time"), ("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days")],
    )
    # Keyset pages: the runs older than `before`, or newer than `after` (run ids).
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:  # only the sources and jobs the user may see are choices
            for name, path in (("source", "system"), ("job", "source__system")):
                field = self.fields[name]
                field.queryset = roles.scope(field.queryset, user, path)

    def filter(self, runs, now):
        """`runs` narrowed by the valid filters (call after is_valid())."""
        data = self.cleaned_data
        if data["status"] == self.PROBLEMS:
            runs = runs.filter(status__in=[RunStatus.FAILED, RunStatus.PARTIAL])
        elif data["status"]:
            runs = runs.filter(status=data["status"])
        if data["source"]:
            runs = runs.filter(source=data["source"])
        if data["job"]:
            runs = runs.filter(job=data["job"])
        if data["since"]:
            runs = runs.filter(queued__gte=now - self.PERIODS[data["since"]])
        return runs
