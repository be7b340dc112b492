"""Plan and scenario forms; findings and follow-ups added during a drill."""

from django import forms

from backups.models import Source
from dr_portal.lib import roles
from dr_portal.lib.durations import format_duration, parse_duration
from dr_portal.widgets import DatePicker
from drills import schedule as sched
from drills.models import DrillPlan, Finding, Scenario, ScenarioKind, ScenarioSource
from incidents.models import Contact
from recovery.failover.models import Runbook


class DurationInput(forms.CharField):
    """A duration typed the way people write it: 30m, 2h, 1h30m."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", "Like 30m, 2h or 1h30m.")
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if hasattr(value, "total_seconds"):
            return format_duration(value)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class PlanForm(forms.ModelForm):
    time_budget = DurationInput(label="Time budget")
    time_zone = forms.CharField(
        max_length=64, initial="UTC", help_text="IANA name, like Europe/Berlin or UTC."
    )

    class Meta:
        model = DrillPlan
        fields = [
            "name",
            "description",
            "systems",
            "participants",
            "time_budget",
            "rule",
            "start_time",
            "time_zone",
            "enabled",
        ]
        widgets = {
            "systems": forms.CheckboxSelectMultiple,
            "participants": forms.CheckboxSelectMultiple,
            "description": forms.Textarea(attrs={"rows": 3}),
            "start_time": forms.TimeInput(format="%H:%M"),
        }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None and roles.visible_systems(user, roles.MANAGER) is not None:
            # A manager of some systems only plans drills of those (at least one: a plan of
            # no system is global).
            field = self.fields["systems"]
            field.queryset = roles.scope(field.queryset, user, "pk", roles.MANAGER)
            field.required = True

    def clean_time_zone(self):
        value = self.cleaned_data["time_zone"].strip()
        try:
            sched.zone(value)
        except sched.ScheduleError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_rule(self):
        try:
            return sched.normalise_rule(self.cleaned_data["rule"])
        except sched.ScheduleError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_time_budget(self):
        value = self.cleaned_data.get("time_budget")
        if value is None or value.total_seconds() <= 0:
            raise forms.ValidationError("Give the drill a positive time budget, like 2h.")
        return value


def runbooks_available() -> bool:
    return any(f.name == "runbook" for f in Scenario._meta.get_fields())


class ScenarioForm(forms.ModelForm):
    time_budget = DurationInput(label="Time set aside", required=False)
    sources = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Database failure: each source is restored into scratch by a restore test.",
    )

    class Meta:
        model = Scenario
        fields = ["kind", "title", "instructions", "failure_type", "time_budget", "checklist"]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 3}),
            "checklist": forms.Textarea(attrs={"rows": 4}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

        self.fields["sources"].queryset = Source.objects.select_related("system")
        if self.instance.pk:
            self.fields["sources"].initial = [
                link.source_id for link in self.instance.source_links.all() if link.source_id
            ]
        if runbooks_available():
            self.fields["runbook"] = forms.ModelChoiceField(
                Runbook.objects.select_related("system"),
                required=False,
                initial=getattr(self.instance, "runbook_id", None),
                help_text="Failover and network-failure scenarios run this runbook.",
            )
            self.fields["live"] = forms.BooleanField(
                required=False,
                initial=getattr(self.instance, "live", False),
                label="Live against a test environment",
                help_text="Unticked: the runbook runs in test mode (side effects shown, "
                "not performed).",
            )

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == ScenarioKind.DATABASE_FAILURE and not data.get("sources"):
            self.add_error("sources", "A database-failure scenario restores at least one source.")
        if kind in (ScenarioKind.FAILOVER, ScenarioKind.NETWORK_FAILURE):
            if not runbooks_available():
                self.add_error(
                    "kind",
                    "Failover runbooks are not available in this installation yet: choose "
                    "another kind.",
                )
            elif not data.get("runbook"):
                self.add_error("runbook", "Choose the runbook this scenario runs.")
        if kind == ScenarioKind.MANUAL and not (data.get("checklist") or "").strip():
            self.add_error("checklist", "Write the checklist: one instruction per line.")
        return data

    def save(self, commit=True):
        scenario = super().save(commit=False)
        if "runbook" in self.fields:
            scenario.runbook = self.cleaned_data.get("runbook")
            scenario.live = bool(self.cleaned_data.get("live"))
        scenario.save()
        wanted = list(self.cleaned_data.get("sources") or [])
        if scenario.kind != ScenarioKind.DATABASE_FAILURE:
            wanted = []
        scenario.source_links.exclude(source__in=wanted).delete()
        have = set(scenario.source_links.values_list("source_id", flat=True))
        for source in wanted:
            if source.pk not in have:
                ScenarioSource.objects.create(scenario=scenario, source=source)
        return scenario


class TickForm(forms.Form):
    note = forms.CharField(max_length=500, required=False)
    problem = forms.BooleanField(required=False, label="Did not work as expected")


class FindingForm(forms.ModelForm):
    class Meta:
        model = Finding
        fields = ["text", "severity", "scenario_run"]
        widgets = {"text": forms.Textarea(attrs={"rows": 2})}
        labels = {"text": "Issue found", "scenario_run": "In scenario (optional)"}

    def __init__(self, *args, drill=None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["scenario_run"]
        field.required = False
        field.queryset = (
            drill.scenario_runs.order_by("position") if drill else field.queryset.none()
        )


class FollowUpForm(forms.Form):
    text = forms.CharField(max_length=300, label="Action")
    owner = forms.ModelChoiceField(queryset=None, required=False, label="Owner")
    due = forms.DateField(required=False, widget=DatePicker())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

        self.fields["owner"].queryset = Contact.objects.all()
