"""Forms of the recovery app: RTO/RPO targets, restore targets and restores."""

from django import forms
from django.utils import timezone

from backups.forms import (
    HOOK_FIELDS,
    KEEP,
    ArgvField,
    JobHooksMixin,
    SecretField,
    SecretsMixin,
)
from dr_portal.lib.durations import format_duration, parse_duration
from recovery.models import FailureType, RestoreTarget


class DurationInput(forms.CharField):
    """A duration written like 15m, 4h, 1h30m or 7d."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 20)
        kwargs.setdefault("help_text", "Like 15m, 4h, 1h30m or 7d.")
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if hasattr(value, "total_seconds"):
            return format_duration(value)
        return value

    def clean(self, value):
        value = super().clean(value)
        try:
            duration = parse_duration(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if duration.total_seconds() <= 0:
            raise forms.ValidationError("A target must be longer than zero.")
        return duration


class TargetsForm(forms.Form):
    """Every RTO and RPO target and the SLA on one page."""

    availability_percent = forms.DecimalField(
        label="SLA availability (%)", min_value=0.001, max_value=100, decimal_places=3
    )
    sla_rto = DurationInput(label="SLA RTO (any failure)")
    sla_rpo = DurationInput(label="SLA RPO (any failure)")

    def __init__(self, *args, rto_targets, rpo_targets, sla, **kwargs):
        super().__init__(*args, **kwargs)
        self.rto_targets, self.rpo_targets, self.sla = rto_targets, rpo_targets, sla
        for t in rto_targets:
            self.fields[f"rto_{t.failure_type}"] = DurationInput(
                label=f"RTO: {t.get_failure_type_display()}", initial=t.target
            )
        for t in rpo_targets:
            self.fields[f"rpo_{t.data_class}"] = DurationInput(
                label=f"RPO: {t.data_class_label}", initial=t.target
            )
        self.fields["availability_percent"].initial = sla.availability_percent
        self.fields["sla_rto"].initial = sla.rto
        self.fields["sla_rpo"].initial = sla.rpo

    def rto_fields(self):
        return [self[f"rto_{t.failure_type}"] for t in self.rto_targets]

    def rpo_fields(self):
        return [self[f"rpo_{t.data_class}"] for t in self.rpo_targets]

    def sla_fields(self):
        return [self["availability_percent"], self["sla_rto"], self["sla_rpo"]]

    def save(self) -> list[str]:
        """Save what changed (each save is audited by the signal receivers); return labels."""
        changed = []
        for t in self.rto_targets:
            value = self.cleaned_data[f"rto_{t.failure_type}"]
            if value != t.target:
                t.target = value
                t.save()
                changed.append(str(t))
        for t in self.rpo_targets:
            value = self.cleaned_data[f"rpo_{t.data_class}"]
            if value != t.target:
                t.target = value
                t.save()
                changed.append(str(t))
        sla = self.sla
        new = (
            self.cleaned_data["availability_percent"],
            self.cleaned_data["sla_rto"],
            self.cleaned_data["sla_rpo"],
        )
        if sla.pk is None or new != (sla.availability_percent, sla.rto, sla.rpo):
            sla.availability_percent, sla.rto, sla.rpo = new
            sla.save()
            changed.append("SLA")
        return changed


class RestoreTargetForm(JobHooksMixin, SecretsMixin, forms.ModelForm):
    """A manager registers where restores may go; the password and hook secrets are
    write-only; command hooks are changed by a superuser only (`user`: who saves)."""

    SECRET_FIELDS = {"new_password": "password", **JobHooksMixin.SECRET_FIELDS}

    new_password = SecretField(
        label="Password",
        help_text="Leave blank to keep the stored password. Changing the kind, host or port "
        "clears it: enter it again for the new server.",
    )
    new_pre_hook_secret = SecretField(
        label="Pre-hook secret", help_text=f"{KEEP} HMAC key; a new pre-hook URL needs it again."
    )
    new_post_hook_secret = SecretField(
        label="Post-hook secret", help_text=f"{KEEP} HMAC key; a new post-hook URL needs it again."
    )
    pre_hook_command = ArgvField()
    post_hook_command = ArgvField()

    class Meta:
        model = RestoreTarget
        fields = [
            "name",
            "kind",
            "host",
            "port",
            "port_max",
            "user",
            "database",
            "path",
            "sources",
            "allow_replace",
            "notes",
            *HOOK_FIELDS,
        ]
        help_texts = {
            "pre_hook_url": "Optional: POSTed a signed JSON payload (restore.pre) before a restore "
            "writes to this target.",
            "post_hook_url": "Optional: POSTed a signed JSON payload (restore.post) with the "
            "restore's outcome when it ends (retried with back-off).",
            "pre_hook_required": "A failing pre-hook fails the restore before it writes to this "
            "target; off: a warning and the restore goes on.",
        }
        widgets = {
            "path": forms.TextInput(attrs={"size": 60}),
            "host": forms.TextInput(attrs={"size": 40}),
            "sources": forms.CheckboxSelectMultiple,
        }

    def _post_clean(self):
        # The model's clean() refuses a password on a path target; a typed one counts too.
        if self.cleaned_data.get("new_password") and self.cleaned_data.get("kind") != "postgresql":
            self.add_error("new_password", "Only a PostgreSQL target has a password.")
        super()._post_clean()


class RestoreForm(forms.Form):
    backup_run = forms.TypedChoiceField(
        coerce=int,
        label="Backup",
        help_text="Default: the newest backup that passed a restore test.",
    )
    failure_type = forms.ChoiceField(
        choices=FailureType.choices,
        initial=FailureType.DATABASE_FAILURE,
        help_text="The declared failure: its RTO target is what this restore is measured against.",
    )
    declared_at = forms.DateTimeField(
        required=False,
        label="Failure declared at (UTC)",
        help_text="When the clock started; empty means now.",
        widget=forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD HH:MM"}),
    )
    restore_target = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        label="Registered target",
        help_text="Places a manager registered for this source's kind.",
    )
    database_name = forms.CharField(
        required=False,
        max_length=63,
        label="New database name",
        help_text="Only for a PostgreSQL target registered with a pattern (such as restored_*).",
    )
    onto_source = forms.BooleanField(
        required=False,
        label="Restore onto the source itself (managers only)",
        help_text="The current data is kept aside first and its location shown.",
    )
    target = forms.CharField(
        required=False,
        max_length=1024,
        label="Free-form target (managers only)",
        widget=forms.TextInput(attrs={"size": 70}),
        help_text="A new PostgreSQL URL (postgresql://user@host:5432/dbname), SQLite file path "
        "or directory, below the allowed roots.",
    )
    overwrite = forms.BooleanField(
        required=False,
        label="Replace data already at the target",
        help_text="Without this a restore only writes to a target that does not exist yet. "
        "Managers, or operators on a target that allows it.",
    )
    confirm = forms.CharField(
        required=False,
        label="Type the source's name to confirm",
        help_text="Required when restoring onto the source.",
    )

    MANAGER_ONLY = ("onto_source", "target", "confirm")

    def __init__(self, *args, source, runs, can_overwrite, targets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.source, self.can_overwrite = source, can_overwrite
        self.targets = {t.pk: t for t in targets}
        self.fields["backup_run"].choices = [
            (
                run.pk,
                f"#{run.pk} · data {timezone.localtime(run.data_taken_at):%Y-%m-%d %H:%M}"
                f"{' · passed a restore test' if getattr(run, 'proven', False) else ''}"
                if run.data_taken_at
                else f"#{run.pk}",
            )
            for run in runs
        ]
        self.fields["restore_target"].choices = [("", "—")] + [
            (t.pk, f"{t.name} ({t.where()})") for t in targets
        ]

    def visible_fields(self):
        """Operators see no manager-only inputs."""
        fields = super().visible_fields()
        if self.can_overwrite:
            return fields
        hidden = set(self.MANAGER_ONLY)
        if not any(t.allow_replace for t in self.targets.values()):
            hidden.add("overwrite")
        return [f for f in fields if f.name not in hidden]

    def clean(self):
        data = super().clean()
        chosen = self.targets.get(data.get("restore_target"))
        data["restore_target"] = chosen
        free_form = (data.get("target") or "").strip()
        if data.get("onto_source"):
            if not self.can_overwrite:
                raise forms.ValidationError("Only managers may restore onto the source itself.")
            if (data.get("confirm") or "").strip() != self.source.name:
                self.add_error("confirm", f"Type {self.source.name} exactly to confirm.")
            if chosen or free_form:
                raise forms.ValidationError("Restore onto the source, or to a target: not both.")
        elif free_form and not self.can_overwrite:
            # Not a field error: operators are not shown the free-form input at all.
            raise forms.ValidationError(
                "Only managers may restore to a free-form target: choose a registered target, "
                "or run a restore test to prove the backup in scratch."
            )
        elif free_form and chosen:
            raise forms.ValidationError("Choose a registered target or a free-form one, not both.")
        elif not free_form and not chosen:
            self.add_error("restore_target", "Choose a registered target.")
        if (
            data.get("overwrite")
            and not self.can_overwrite
            and not (chosen and chosen.allow_replace)
        ):
            raise forms.ValidationError(
                "Only managers may replace data at an existing target"
                + (f" ({chosen.name} does not allow it)." if chosen else ".")
            )
        if data.get("declared_at") and data["declared_at"] > timezone.now():
            self.add_error("declared_at", "The failure cannot be declared in the future.")
        return data
