"""Forms for runbooks, steps and starting a run; validation messages for the person reading them."""

import json
from datetime import timedelta

from django import forms
from django.utils import timezone

from backups.models import System
from dr_portal.lib import roles
from dr_portal.lib.durations import format_duration
from recovery.failover.builtin import TEMPLATES
from recovery.failover.models import OnFailure, Runbook, RunbookStep, RunMode, portal_checks
from recovery.failover.steps import (
    KIND_CHOICES,
    SUPERUSER_ONLY,
    parse_step,
    same_endpoint,
    superuser_only,
)
from recovery.failover.steps.base import seconds


def command_allowed(user) -> bool:
    return bool(user and user.is_superuser)


class RunbookForm(forms.ModelForm):
    class Meta:
        model = Runbook
        fields = ["system", "name", "failure_type", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class JSONText(forms.CharField):
    """A JSON mapping typed into a textarea."""

    widget = forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"})

    def prepare_value(self, value):
        if isinstance(value, dict):
            return json.dumps(value, indent=2) if value else ""
        return value

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Write a JSON object, like {"url": "https://…"}.')
        return parsed


class DurationText(forms.CharField):
    """Seconds or a duration as people write it: 30s, 5m, 1h."""

    def prepare_value(self, value):
        if isinstance(value, timedelta):
            return format_duration(value)
        return value

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return None
        try:
            return timedelta(
                seconds=seconds(float(value) if value.replace(".", "", 1).isdigit() else value)
            )
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class StepForm(forms.ModelForm):
    """One step. Its definition goes through the engine's validation; command steps need a superuser."""

    kind = forms.ChoiceField(choices=KIND_CHOICES)
    params = JSONText(
        required=False, help_text="JSON object; see the parameters of each kind below."
    )
    test_params = JSONText(
        required=False,
        help_text="Optional: parameters overridden in test mode so a side-effect step runs against a "
        "test environment instead of being skipped.",
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Bearer token, password or AWS secret key. Stored encrypted; leave empty to keep "
        "the current one. Changing the URL, host, port or endpoint removes the stored secret "
        "unless you enter it again here: it is only sent where it was entered for.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret")
    timeout = DurationText(required=False, help_text="e.g. 30s, 5m; empty = the kind's default")
    retry_delay = DurationText(required=False, help_text="pause between attempts, e.g. 5s")
    side_effects = forms.BooleanField(
        required=False,
        help_text="Changes something (skipped in test mode). Implied for kinds that always do.",
    )
    verification = forms.BooleanField(
        required=False,
        help_text="Passing it proves the service is back: the RTO ends at the last one.",
    )

    class Meta:
        model = RunbookStep
        fields = [
            "order",
            "rollback_of",
            "name",
            "kind",
            "params",
            "test_params",
            "timeout",
            "on_failure",
            "retries",
            "retry_delay",
            "side_effects",
            "verification",
        ]

    def __init__(self, *args, runbook: Runbook, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.runbook, self.user = runbook, user
        self.secret_dropped = False
        # What the stored secret was entered for (the instance is overwritten on validation).
        self._bound = (
            self.instance.kind,
            dict(self.instance.params or {}),
            dict(self.instance.test_params or {}),
        )
        main = runbook.steps.filter(rollback_of__isnull=True)
        if self.instance.pk:
            main = main.exclude(pk=self.instance.pk)
        self.fields["rollback_of"].queryset = main
        self.fields["rollback_of"].label = "Rollback of (leave empty for a main step)"
        self.fields["on_failure"].choices = OnFailure.choices
        if not command_allowed(user):
            # Shown, so the refusal can say why; saving one is refused in clean().
            self.fields["kind"].choices = [
                (k, f"{label} (superusers only)" if k in SUPERUSER_ONLY else label)
                for k, label in KIND_CHOICES
            ]
        if not self.instance.pk:
            self.initial.setdefault("order", (runbook.steps.count() or 0) + 1)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        kind = data.get("kind")
        if not command_allowed(self.user):
            for guarded in (kind, self.instance.kind if self.instance.pk else None):
                if guarded in SUPERUSER_ONLY:
                    raise forms.ValidationError(
                        f"Only superusers may create or edit {guarded} steps."
                    )
            step = self.instance
            if step.pk and superuser_only(step.kind, step.params, step.test_params):
                raise forms.ValidationError(
                    f"Only superusers may edit {step.kind} steps that run a command."
                )
        if data.get("rollback_of") and self.instance.pk and self.instance.rollback_steps.exists():
            raise forms.ValidationError(
                "This step has rollback steps of its own, so it cannot become a rollback step."
            )
        defn = {
            "name": data.get("name"),
            "kind": kind,
            "params": data.get("params") or {},
            "test_params": data.get("test_params") or {},
            "on_failure": data.get("on_failure"),
            "retries": data.get("retries") or 0,
            # unticked = the kind decides (a POST http_check, a webhook: always on)
            "side_effects": True if data.get("side_effects") else None,
            "verification": bool(data.get("verification")),
        }
        if data.get("timeout"):
            defn["timeout"] = data["timeout"].total_seconds()
        if data.get("retry_delay"):
            defn["retry_delay"] = data["retry_delay"].total_seconds()
        spec, errors = parse_step(
            defn, "this step", allow_command=command_allowed(self.user), nested=True
        )
        errors = errors or portal_checks(spec.kind, spec.params)
        if errors:
            raise forms.ValidationError(
                [
                    e.replace("this step: ", "", 1).replace(f"this step ({defn['name']}): ", "", 1)
                    for e in errors
                ]
            )
        data["timeout"] = timedelta(seconds=spec.timeout)
        data["retry_delay"] = timedelta(seconds=spec.retry_delay)
        data["side_effects"] = spec.side_effects
        self.spec = spec
        return data

    def save(self, commit=True):
        step = super().save(commit=False)
        step.runbook = self.runbook
        step.params = self.spec.params  # with the kind's defaults filled in
        if self.cleaned_data.get("clear_secret"):
            step.secret = ""
        elif self.cleaned_data.get("secret"):
            step.secret = self.cleaned_data["secret"]
        elif (
            step.pk
            and step.secret
            and not same_endpoint(
                *self._bound, self.spec.kind, self.spec.params, self.spec.test_params
            )
        ):
            step.secret = ""  # entered for the old address: never sent to the new one
            self.secret_dropped = True
        if commit:
            step.save()
            self.runbook.refresh_config()
        return step


class StartRunForm(forms.Form):
    mode = forms.ChoiceField(
        choices=RunMode.choices, initial=RunMode.TEST, widget=forms.RadioSelect
    )
    confirm_name = forms.CharField(
        required=False,
        label="For a live run, type the system's name to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    declared_at = forms.DateTimeField(
        required=False,
        label="Failure declared at (UTC, empty = now)",
        help_text="The RTO clock starts here, e.g. 2026-03-01 14:05",
    )

    def __init__(self, *args, runbook: Runbook, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.runbook, self.user = runbook, user

    def clean(self):
        data = super().clean()
        if data.get("mode") == RunMode.LIVE:
            if not roles.has_role(self.user, roles.MANAGER, self.runbook.system_id):
                raise forms.ValidationError("A live failover needs the manager role.")
            if (data.get("confirm_name") or "").strip() != self.runbook.system.name:
                self.add_error(
                    "confirm_name",
                    f"Type {self.runbook.system.name!r} exactly to confirm a live failover.",
                )
        declared = data.get("declared_at")
        if declared and declared > timezone.now():
            self.add_error("declared_at", "The failure cannot be declared in the future.")
        return data


class TemplateForm(forms.Form):
    template = forms.ChoiceField(choices=[(k, t.title) for k, t in TEMPLATES.items()])
    name = forms.CharField(max_length=120, required=False, help_text="empty = the template's title")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

        self.fields["system"] = forms.ModelChoiceField(queryset=System.objects.all())
        self.order_fields(["system", "template", "name"])

    def clean(self):
        data = super().clean()
        if data.get("system") and data.get("template"):
            name = data.get("name") or TEMPLATES[data["template"]].title
            if Runbook.objects.filter(system=data["system"], name=name).exists():
                self.add_error("name", f"{data['system']} already has a runbook named {name!r}.")
            data["name"] = name
        return data
