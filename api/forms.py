from django import forms

from api.models import MAX_DAYS
from dr_portal.lib.roles import ORDER, top_role_anywhere


class TokenForm(forms.Form):
    """A new API token: a name to recognise it by, its role ceiling and its lifetime."""

    name = forms.CharField(
        max_length=100, help_text="What uses it, e.g. terraform-ci or nightly-check."
    )
    role = forms.ChoiceField(
        help_text="The most this token may do. Calls get the lower of this and your role "
        "at the time of the call."
    )
    days = forms.IntegerField(
        label="Expires after (days)",
        min_value=1,
        max_value=MAX_DAYS,
        initial=90,
        help_text=f"1 to {MAX_DAYS} days.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        held = ORDER[: ORDER.index(top_role_anywhere(user)) + 1] if top_role_anywhere(user) else []
        self.fields["role"].choices = [(r, r) for r in held]
        self.fields["role"].initial = "viewer"

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the token a name.")
        return name
