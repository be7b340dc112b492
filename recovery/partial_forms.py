"""The portal form of a partial restore: chosen tables or paths of one backup run.

It is the full restore form (recovery.forms.RestoreForm: the same targets, role rules and
typed confirmation onto the source) with the backup fixed and the choice added: tables
with a schema or a suffix, or replacing the live tables (managers, names typed); paths,
replacing existing ones only when confirmed.
"""

from django import forms

from recovery.forms import RestoreForm
from recovery.partial import MAX_ITEMS, Partial


class PartialRestoreForm(RestoreForm):
    items = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": "%(value)s is not in this backup (its contents list what is).",
            "required": "Choose at least one table or path in the backup's contents.",
        },
    )
    table_schema = forms.CharField(
        required=False,
        max_length=63,
        label="Into the schema",
        help_text="The tables keep their names in this schema (created when missing).",
    )
    table_suffix = forms.CharField(
        required=False,
        max_length=30,
        label="Or with the name suffix",
        help_text="executions comes back as executions_restored, beside the live table.",
    )
    replace_tables = forms.BooleanField(
        required=False,
        label="Replace the live tables (managers only)",
        help_text="Restored under a temporary name and counted, then put in place of the live "
        "tables in one transaction; the live ones are kept as <name>_before_<time>.",
    )
    confirm_tables = forms.CharField(
        required=False,
        label="Type the chosen table names to confirm replacing them",
        help_text="Comma-separated, exactly as chosen.",
    )

    MANAGER_ONLY = (*RestoreForm.MANAGER_ONLY, "replace_tables", "confirm_tables")
    TABLE_FIELDS = ("table_schema", "table_suffix", "replace_tables", "confirm_tables")

    def __init__(self, *args, run, kind: str, names: list[str], **kwargs):
        super().__init__(*args, runs=[run], **kwargs)
        self.run, self.kind = run, kind
        self.fields["backup_run"].widget = forms.HiddenInput()
        self.fields["backup_run"].initial = run.pk
        self.fields["items"].choices = [(n, n) for n in names]
        self.fields["items"].label = "Tables" if kind == "postgresql" else "Files and directories"
        self.fields["overwrite"].label = "Replace paths that exist (kept aside, never deleted)"
        self.fields["overwrite"].help_text = (
            "Without it a path that exists in the target directory refuses the restore. "
            "Managers, or operators on a target that allows it."
        )
        database = self.fields["database_name"]
        database.label = "Database name"
        database.help_text = "Only for a target registered with a pattern: the existing one."
        if kind == "postgresql":
            self.fields["table_suffix"].initial = "_restored"
            del self.fields["overwrite"]
        else:
            for name in self.TABLE_FIELDS:
                del self.fields[name]

    def visible_fields(self):
        return [f for f in super().visible_fields() if f.name != "items"]

    def clean_items(self):
        items = self.cleaned_data["items"]
        if len(items) > MAX_ITEMS:
            raise forms.ValidationError(f"At most {MAX_ITEMS} at once.")
        return items

    def clean(self):
        self.cleaned_data.setdefault("overwrite", False)
        data = super().clean()
        if data.get("replace_tables"):
            if not self.can_overwrite:
                raise forms.ValidationError(
                    "Only managers may replace live tables: restore them beside the live "
                    "ones (a schema or a suffix)."
                )
            data["table_schema"] = data["table_suffix"] = ""
        if self.kind == "postgresql" and not data.get("replace_tables"):
            if bool(data.get("table_schema", "").strip()) == bool(
                data.get("table_suffix", "").strip()
            ):
                self.add_error(
                    "table_suffix",
                    "Give a schema or a name suffix (not both): the tables are written beside "
                    "the live ones, never over them.",
                )
        if not self.errors:
            try:
                self.partial().validate(self.kind)
            except ValueError as exc:
                field = "confirm_tables" if data.get("replace_tables") else None
                self.add_error(field, str(exc))
        return data

    def partial(self) -> Partial:
        data = self.cleaned_data
        items = data.get("items") or []
        if self.kind != "postgresql":
            return Partial(paths=items)
        return Partial(
            tables=items,
            schema=(data.get("table_schema") or "").strip(),
            suffix=(data.get("table_suffix") or "").strip(),
            replace=bool(data.get("replace_tables")),
            confirm_tables=data.get("confirm_tables") or "",
        )
