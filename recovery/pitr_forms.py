"""The portal's form for a restore to a point (recovery.pitr_restores does the checking
that needs the repository: the window, the target, the port, the running server)."""

import re
from datetime import UTC

from django import forms

from recovery.models import FailureType

DIRECTORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class PitrRestoreForm(forms.Form):
    at = forms.DateTimeField(
        label="Restore to (UTC)",
        input_formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}),
        help_text="Every transaction committed at or before this second is restored, none after. "
        "Times are UTC.",
    )
    restore_target = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Data directory target"
    )
    directory = forms.CharField(
        required=False,
        max_length=100,
        label="New data directory",
        help_text="A new directory's name, created under the target's path.",
    )
    onto_source = forms.BooleanField(
        required=False,
        label="Onto the source's own data directory",
        help_text="Managers only. The source's server must be stopped; its directory is "
        "renamed <dir>.before-restore-<UTC time> first and never deleted.",
    )
    port = forms.IntegerField(min_value=1024, max_value=65535, label="Port")
    start = forms.BooleanField(
        required=False, initial=True, label="Start the server once restored and checked"
    )
    failure_type = forms.ChoiceField(
        choices=FailureType.choices, initial=FailureType.DATABASE_FAILURE
    )
    confirm = forms.CharField(label="Type the source's name to confirm")

    def __init__(self, *args, source, targets, can_onto_source, **kwargs):
        super().__init__(*args, **kwargs)
        self.source, self.can_onto_source = source, can_onto_source
        self.targets = {t.pk: t for t in targets}
        self.fields["restore_target"].choices = [("", "—")] + [
            (t.pk, f"{t.name} ({t.where()})") for t in targets
        ]
        if not can_onto_source:
            del self.fields["onto_source"]

    def clean(self):
        data = super().clean()
        if data.get("at") is not None:
            data["at"] = data["at"].replace(tzinfo=UTC)  # the picker's time is UTC, as stated
        if (data.get("confirm") or "").strip() != self.source.name:
            self.add_error("confirm", f"Type {self.source.name} exactly to confirm.")
        chosen = self.targets.get(data.get("restore_target"))
        data["restore_target"] = chosen
        if data.get("onto_source"):
            if chosen or data.get("directory"):
                raise forms.ValidationError("Restore onto the source, or to a target: not both.")
            data["data_dir"] = self.source.data_directory
        elif chosen is None:
            self.add_error("restore_target", "Choose a registered data directory target.")
        elif not DIRECTORY.match(data.get("directory") or ""):
            self.add_error(
                "directory", "A new directory's name: letters, digits, '.', '_' and '-'."
            )
        else:
            data["data_dir"] = f"{chosen.path.rstrip('/')}/{data['directory']}"
        return data
