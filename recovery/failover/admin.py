"""Admin for runbooks and their steps (validated like the portal's forms; command steps need a superuser)."""

from django import forms
from django.contrib import admin

from recovery.failover.models import FailoverRun, Runbook, RunbookStep, StepRun, portal_checks
from recovery.failover.steps import parse_step, same_endpoint, superuser_only


class StepAdminForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="stored encrypted; leave empty to keep the current one. Changing the URL, "
        "host, port or endpoint removes it unless it is entered again.",
    )
    user = None  # set per request by RunbookStepInline.get_formset

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stored_secret = self.instance.secret  # the admin may copy the empty field onto it
        self._bound = (
            self.instance.kind,
            dict(self.instance.params or {}),
            dict(self.instance.test_params or {}),
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
            "secret",
            "timeout",
            "on_failure",
            "retries",
            "retry_delay",
            "side_effects",
            "verification",
        ]

    def clean(self):
        data = super().clean()
        if self.errors or (self.prefix and data.get("DELETE")):
            return data
        superuser = bool(self.user and self.user.is_superuser)
        was = self.instance.kind if self.instance.pk else None
        guarded = None
        if superuser_only(data.get("kind"), data.get("params"), data.get("test_params")):
            guarded = data.get("kind")
        elif was and superuser_only(was, self.instance.params, self.instance.test_params):
            guarded = was
        if not superuser and guarded and self.has_changed():
            raise forms.ValidationError(f"Only superusers may create or edit {guarded} steps.")
        kind = data.get("kind")
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
        spec, errors = parse_step(defn, "step", allow_command=True, nested=True)
        errors = errors or portal_checks(spec.kind, spec.params)
        if errors:
            raise forms.ValidationError(errors)
        data["params"] = spec.params
        data["side_effects"] = spec.side_effects
        return data

    def save(self, commit=True):
        step = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            step.secret = self.cleaned_data["secret"]
        elif step.pk and same_endpoint(*self._bound, step.kind, step.params, step.test_params):
            step.secret = self._stored_secret
        else:
            step.secret = ""  # entered for the old address: never sent to the new one
        if commit:
            step.save()
        return step


class StepFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        user = self.form.user
        if user and user.is_superuser:
            return
        for form in self.deleted_forms:
            step = form.instance
            if step.pk and superuser_only(step.kind, step.params, step.test_params):
                raise forms.ValidationError(
                    f"Only superusers may delete {form.instance.kind} steps."
                )


class RunbookStepInline(admin.StackedInline):
    model = RunbookStep
    form = StepAdminForm
    formset = StepFormSet
    extra = 0
    fk_name = "runbook"

    def get_formset(self, request, obj=None, **kwargs):
        form = type("StepAdminFormForUser", (StepAdminForm,), {"user": request.user})
        return super().get_formset(request, obj, form=form, **kwargs)


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ["name", "system", "failure_type", "edited_at"]
    list_filter = ["failure_type", "system"]
    search_fields = ["name", "system__name"]
    readonly_fields = ["config_hash", "edited_at", "created", "template"]
    inlines = [RunbookStepInline]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        form.instance.refresh_config()


class StepRunInline(admin.TabularInline):
    model = StepRun
    fk_name = "run"
    extra = 0
    can_delete = False
    fields = [
        "position",
        "name",
        "kind",
        "status",
        "started",
        "finished",
        "attempts",
        "confirmed_by",
        "output",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FailoverRun)
class FailoverRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "runbook", "mode", "status", "declared_at", "rto", "verdict"]
    list_filter = ["mode", "status", "verdict"]
    inlines = [StepRunInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False  # runs start from the runbook page, with its confirmation
