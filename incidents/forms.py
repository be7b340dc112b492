"""Forms of the incidents app; messages are written for the person on call."""

from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from dr_portal.lib import outbound, roles
from dr_portal.widgets import DatePicker, DateTimePicker
from incidents import formats, scoping
from incidents.links import linkable_choices, recent_choices
from incidents.models import (
    COMMON_ROLES,
    Contact,
    FollowUp,
    Incident,
    MaintenanceWindow,
    TimelineEntry,
    Webhook,
    WebhookKind,
)


def _localize(value):
    return timezone.localtime(value) if value and timezone.is_aware(value) else value


class IncidentForm(forms.ModelForm):
    class Meta:
        model = Incident
        fields = [
            "title", "summary", "severity", "status",
            "started_at", "detected_at", "resolved_at",
            "root_cause", "users_affected", "data_loss", "services_down",
            "recovery_actions", "preventive_measures", "lessons_learned",
        ]  # fmt: skip
        widgets = {
            "started_at": DateTimePicker(),
            "detected_at": DateTimePicker(),
            "resolved_at": DateTimePicker(),
            "root_cause": forms.Textarea(attrs={"rows": 4}),
            "recovery_actions": forms.Textarea(attrs={"rows": 4}),
            "preventive_measures": forms.Textarea(attrs={"rows": 3}),
            "lessons_learned": forms.Textarea(attrs={"rows": 3}),
        }
        error_messages = {"title": {"required": "Give the incident a title."}}
        labels = {
            "started_at": "Started",
            "detected_at": "Detected",
            "resolved_at": "Resolved",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("started_at", "detected_at", "resolved_at"):
            self.fields[name].input_formats = [
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%d %H:%M:%S",
            ]
            self.initial[name] = _localize(self.initial.get(name) or getattr(self.instance, name))
        self.fields["detected_at"].initial = timezone.localtime().replace(second=0, microsecond=0)

    def declare(self, user) -> Incident:
        """Save a new incident by `user` with its first timeline entry (page and API)."""
        incident = self.save(commit=False)
        incident.created_by = user
        incident.save()
        TimelineEntry.objects.create(
            incident=incident,
            at=incident.detected_at,
            text="Incident declared",
            author=user,
            author_name=user.get_username(),
            automatic=True,
        )
        return incident

    def clean_title(self):
        title = " ".join(self.cleaned_data["title"].split())
        if not title:
            raise forms.ValidationError("Give the incident a title.")
        return title

    def clean_summary(self):
        return " ".join(self.cleaned_data["summary"].split())  # one line, as the report says


class TimelineEntryForm(forms.ModelForm):
    class Meta:
        model = TimelineEntry
        fields = ["at", "text"]
        widgets = {
            "at": DateTimePicker(),
            "text": forms.TextInput(
                attrs={"size": 60, "placeholder": "What happened, e.g. Action: restarted database"}
            ),
        }
        labels = {"at": "Time", "text": "What happened"}
        error_messages = {"text": {"required": "Write what happened."}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["at"].required = False
        self.fields["at"].input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
        self.fields["at"].help_text = "Leave empty for now."
        # Empty, not the page's load time: an entry typed 20 minutes later is stamped when sent.
        self.fields["at"].show_hidden_initial = False
        if not self.is_bound:
            self.initial["at"] = None

    def clean_text(self):
        text = self.cleaned_data["text"].strip()
        if not text:
            raise forms.ValidationError("Write what happened.")
        return text

    def clean_at(self):
        return self.cleaned_data.get("at") or timezone.now()


class FollowUpForm(forms.ModelForm):
    class Meta:
        model = FollowUp
        fields = ["text", "owner_contact", "owner_user", "due"]
        widgets = {
            "due": DatePicker(),
            "text": forms.TextInput(attrs={"size": 50, "placeholder": "Follow-up item"}),
        }
        labels = {
            "owner_contact": "Owner (contact)",
            "owner_user": "Owner (user)",
            "text": "Follow-up",
        }
        error_messages = {"text": {"required": "Write the follow-up item."}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner_user"].queryset = (
            get_user_model().objects.filter(is_active=True).order_by("username")
        )
        self.fields["owner_contact"].queryset = Contact.objects.order_by("name")
        self.fields["owner_user"].empty_label = "owner: a user…"
        self.fields["owner_contact"].empty_label = "owner: a contact…"

    def clean(self):
        data = super().clean()
        if data.get("owner_contact") and data.get("owner_user"):
            raise forms.ValidationError("Pick one owner: a contact or a user, not both.")
        return data


class LinkForm(forms.Form):
    """Link a run, test, failover… to the incident: picked from the recent ones, or an
    older one by kind and number."""

    run = forms.ChoiceField(
        label="Run, test or failover",
        required=False,
        error_messages={
            "invalid_choice": "That one is no longer among the recent ones: link it by number."
        },
    )
    content_type = forms.TypedChoiceField(label="Kind", coerce=int, required=False)
    object_id = forms.IntegerField(label="Number (#)", min_value=1, required=False)
    note = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "note (optional)"}),
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # A user with system roles only picks and links what is on their systems (as an
        # operator): the incident stays theirs, and no other system's run is named to them.
        self.user = user if user is not None and scoping.scoped(user) else None
        self.fields["run"].choices = [("", "pick a recent one…"), *recent_choices(self.user)]
        self.fields["content_type"].choices = [("", "kind…"), *linkable_choices()]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data.get("run"):
            ct_id, _, pk = data["run"].partition(":")
            data["content_type"], data["object_id"] = int(ct_id), int(pk)
        elif not (data.get("content_type") and data.get("object_id")):
            raise forms.ValidationError("Pick a run, or give a kind and a number.")
        ct = ContentType.objects.get_for_id(data["content_type"])
        model = ct.model_class()
        rows = model._default_manager if model is not None else None
        if rows is not None and self.user is not None:
            rows = scoping.targets(model, self.user, roles.OPERATOR)
        if rows is None or not rows.filter(pk=data["object_id"]).exists():
            raise forms.ValidationError(f"There is no {ct.name} #{data['object_id']}.")
        data["ct"] = ct
        return data


def _outbound_url(url):
    """Refuse a webhook URL that the delivery would refuse anyway (an internal address)."""
    problem = outbound.obvious_refusal(url) if url else ""
    if problem:
        raise forms.ValidationError(problem[0].upper() + problem[1:] + ".")
    return url


class ContactForm(forms.ModelForm):
    webhook_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="Webhook URL",
        help_text="Slack-compatible incoming webhook. Stored encrypted; leave empty to keep the current one.",
        widget=forms.PasswordInput(render_value=False),
    )
    clear_webhook = forms.BooleanField(required=False, label="Remove the webhook")

    class Meta:
        model = Contact
        fields = ["role", "name", "phone", "email", "on_call", "notes"]
        widgets = {
            "role": forms.TextInput(attrs={"list": "contact-roles"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    roles = COMMON_ROLES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stored_webhook = self.instance.webhook_url

    def clean(self):
        data = super().clean()
        role, slot = data.get("role"), data.get("on_call")
        if role and slot:
            taken = (
                Contact.objects.filter(role=role, on_call=slot).exclude(pk=self.instance.pk).first()
            )
            if taken:
                self.add_error("on_call", f"{taken.name} is already {slot} on-call for {role}.")
        return data

    def validate_constraints(self):
        pass  # clean() reports the on-call slot and name clashes in words

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        role = " ".join((self.data.get("role") or "").split())
        if Contact.objects.filter(role=role, name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"{name} is already listed as {role}.")
        return name

    def clean_role(self):
        return " ".join(self.cleaned_data["role"].split())

    def clean_webhook_url(self):
        return _outbound_url(self.cleaned_data.get("webhook_url"))

    def save(self, commit=True):
        contact = super().save(commit=False)
        if self.cleaned_data.get("clear_webhook"):
            contact.webhook_url = ""
        else:  # a new URL, or the stored one (the admin may have copied the empty field onto it)
            contact.webhook_url = self.cleaned_data.get("webhook_url") or self._stored_webhook
        if commit:
            contact.save()
        return contact


class WebhookForm(forms.ModelForm):
    url = forms.URLField(
        assume_scheme="https",
        label="URL",
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. PagerDuty: "
        f"{formats.PAGERDUTY_ENDPOINT}; Opsgenie: {formats.OPSGENIE_ENDPOINT} "
        "(EU: https://api.eu.opsgenie.com/v2/alerts).",
    )
    api_key = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        label="Routing / API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="PagerDuty: the integration's routing key; Opsgenie: an API integration key. "
        "Stored encrypted and never shown again.",
    )

    class Meta:
        model = Webhook
        fields = ["name", "kind", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stored_url = self.instance.url  # the admin may copy an empty field onto it
        self._stored_key = self.instance.api_key
        self.fields["kind"].required = False  # left out of a post: the webhook's own format
        if self.instance.pk and self.instance.url:
            self.fields["url"].required = False
            self.fields["url"].help_text = "A URL is set (not shown); leave empty to keep it."
        if self.instance.pk and self.instance.api_key:
            self.fields["api_key"].help_text = "A key is set (not shown); leave empty to keep it."

    def clean_url(self):
        return _outbound_url(self.cleaned_data.get("url"))

    def clean_kind(self):
        return self.cleaned_data.get("kind") or self.instance.kind

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind and kind != WebhookKind.GENERIC:
            if not (cleaned.get("api_key") or self._stored_key):
                self.add_error(
                    "api_key", f"{WebhookKind(kind).label} needs its routing or API key."
                )
        return cleaned

    def save(self, commit=True):
        hook = super().save(commit=False)
        hook.url = self.cleaned_data.get("url") or self._stored_url
        hook.api_key = self.cleaned_data.get("api_key") or self._stored_key
        if commit:
            hook.save()
        return hook


class ContactImportForm(forms.Form):
    file = forms.FileField(label="CSV file")


SNOOZE_CHOICES = [
    ("", "Acknowledge (no reminders until it recovers or gets worse)"),
    ("1", "Snooze 1 hour"),
    ("4", "Snooze 4 hours"),
    ("24", "Snooze 1 day"),
    ("72", "Snooze 3 days"),
]


class SilenceForm(forms.Form):
    """Acknowledge or snooze an open alert: who and why go to the audit log."""

    snooze = forms.ChoiceField(choices=SNOOZE_CHOICES, required=False, label="For how long")
    reason = forms.CharField(
        max_length=300,
        label="Reason",
        help_text="e.g. 'disk replaced, re-running the backup' — shown to the next on-call",
    )

    def clean_reason(self):
        reason = " ".join(self.cleaned_data["reason"].split())
        if not reason:
            raise forms.ValidationError("Say why, for the next person on call.")
        return reason

    def until(self):
        hours = self.cleaned_data.get("snooze")
        return timezone.now() + timedelta(hours=int(hours)) if hours else None


class MaintenanceWindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = ["system", "starts", "ends", "reason"]
        widgets = {"starts": DateTimePicker(), "ends": DateTimePicker()}
        labels = {"starts": "Starts (UTC)", "ends": "Ends (UTC)"}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:  # only the systems the user operates
            field = self.fields["system"]
            field.queryset = roles.scope(field.queryset, user, "pk", roles.OPERATOR)

    def clean(self):
        data = super().clean()
        ends = data.get("ends")
        if ends and ends <= timezone.now():
            self.add_error("ends", "This window would already be over.")
        return data
