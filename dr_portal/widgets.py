"""The browser's own date and time pickers.

They read and write ISO values only ("2026-11-26", "2026-11-26T14:30"), whatever the
portal's locale: with en-gb's "26/11/2026" an <input type="date"> shows an empty field.
"""

from django import forms


class DatePicker(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class DateTimePicker(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")
