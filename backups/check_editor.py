"""The check editor of the source form: rows of (name, SQL, expectation) instead of JSON.

The server keeps the same list of {name, sql, expect} and validates it the same way
(backups.validators); only the way it is typed changes. A post may still carry the list as
JSON in one `checks` field (older pages, scripts, tests): that is read as before.
"""

import json

from django import forms

from backups import validators

BLANK_ROWS = 2  # rows to type new checks into without JavaScript


class CheckRowsWidget(forms.Widget):
    """checks-N-name / checks-N-sql / checks-N-expect inputs, one row per check."""

    template_name = "backups/widgets/check_rows.html"

    def value_from_datadict(self, data, files, name):
        if name in data:  # the whole list as JSON, as before the editor
            return data[name]
        rows = []
        for i in range(validators.MAX_CHECKS + BLANK_ROWS + 50):
            keys = [f"{name}-{i}-{part}" for part in ("name", "sql", "expect")]
            if not any(k in data for k in keys):
                continue
            row = dict(zip(("name", "sql", "expect"), (data.get(k, "") for k in keys), strict=True))
            if any(str(v).strip() for v in row.values()):  # a blank row is no check
                rows.append(row)
        return rows

    def value_omitted_from_data(self, data, files, name):
        return False  # no rows posted means no checks

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        raw = value if isinstance(value, str) else ""
        rows = value if isinstance(value, list) else []
        shown = [
            {k: str(row.get(k) or "") for k in ("name", "sql", "expect")}
            for row in rows
            if isinstance(row, dict)
        ]
        if not raw:
            shown += [{"name": "", "sql": "", "expect": ""}] * BLANK_ROWS
        context["widget"].update(
            rows=list(enumerate(shown)), raw=raw, sql_max=validators.MAX_CHECK_SQL
        )
        return context


class CheckRowsField(forms.Field):
    """A list of {name, sql, expect} from the rows (or from JSON); validated by the form."""

    widget = CheckRowsWidget

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        value = (value or "").strip()
        if not value:
            return []
        try:
            data = json.loads(value)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise forms.ValidationError("Give a JSON list of {name, sql, expect} objects.")
        return data


def typed_checks(data) -> tuple[list[dict], list[str]]:
    """(normalised checks, problems) of the checks in a posted source form."""
    field = CheckRowsField()
    try:
        checks = field.clean(field.widget.value_from_datadict(data, None, "checks"))
    except forms.ValidationError as exc:
        return [], list(exc.messages)
    problems = validators.check_problems(checks)
    return ([] if problems else validators.normalise_checks(checks)), problems
