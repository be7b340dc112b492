"""Forms of the recovery app: targets (durations as people write them) and restores."""

from django import forms
from django.utils import timezone

from dr_portal.lib.durations import format_duration, parse_duration
from recovery.models import FailureType


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
    onto_source = forms.BooleanField(
        required=False,
        label="Restore onto the source itself (managers only)",
        help_text="The current data is kept aside first and its location shown.",
    )
    target = forms.CharField(
        required=False,
        max_length=1024,
        widget=forms.TextInput(attrs={"size": 70}),
        help_text="A new PostgreSQL URL (postgresql://user@host:5432/dbname), SQLite file path "
        "or directory, below the allowed roots.",
    )
    overwrite = forms.BooleanField(
        required=False,
        label="Replace data already at the target (managers only)",
        help_text="Without this a restore only writes to a target that does not exist yet.",
    )
    confirm = forms.CharField(
        required=False,
        label="Type the source's name to confirm",
        help_text="Required when restoring onto the source.",
    )

    def __init__(self, *args, source, runs, can_overwrite, **kwargs):
        super().__init__(*args, **kwargs)
        self.source, self.can_overwrite = source, can_overwrite
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

    def clean(self):
        data = super().clean()
        if data.get("onto_source"):
            if not self.can_overwrite:
                raise forms.ValidationError("Only managers may restore onto the source itself.")
            if (data.get("confirm") or "").strip() != self.source.name:
                self.add_error("confirm", f"Type {self.source.name} exactly to confirm.")
        elif data.get("overwrite") and not self.can_overwrite:
            raise forms.ValidationError("Only managers may replace data at an existing target.")
        elif not (data.get("target") or "").strip():
            self.add_error("target", "Give a target, or choose to restore onto the source.")
        if data.get("declared_at") and data["declared_at"] > timezone.now():
            self.add_error("declared_at", "The failure cannot be declared in the future.")
        return data
