"""Single-line text: names and titles end up in log lines, audit entries and subjects.

A newline in a name forges a log line, so control characters are refused where names are
entered (model validators), not only escaped where they are written.
"""

import re

from django.core.exceptions import ValidationError

CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def has_control_chars(value) -> bool:
    return bool(value) and bool(CONTROL.search(str(value)))


def validate_single_line(value):
    if has_control_chars(value):
        raise ValidationError("No line breaks, tabs or other control characters here.")
