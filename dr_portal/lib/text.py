"""Single-line text: names and titles end up in log lines, audit entries and subjects.

A newline in a name forges a log line, so control characters are refused where names are
entered (model validators), not only escaped where they are written.
"""

import re

from django.core.exceptions import ValidationError

from dr_portal.lib import hostnames

CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def has_control_chars(value) -> bool:
    return bool(value) and bool(CONTROL.search(str(value)))


def validate_single_line(value):
    if has_control_chars(value):
        raise ValidationError("No line breaks, tabs or other control characters here.")


def validate_host(value):
    """A host name or IP address (PostgreSQL hosts may also be a socket directory)."""
    problem = hostnames.host_problem(value, socket_dir=True)
    if problem:
        raise ValidationError(problem[0].upper() + problem[1:] + ".")


PHONE = re.compile(r"^\+?[0-9(][0-9 ().\-/]{1,38}(?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?$", re.I)


def validate_phone(value):
    """Digits with the usual separators, an optional leading + and extension."""
    if value and not PHONE.match(str(value)):
        raise ValidationError(
            f'"{str(value)[:40]}" is not a phone number: digits, spaces, + ( ) - . / and an '
            'optional extension ("x 123").'
        )


# Free text (descriptions, notes, instructions): long enough for a page, not a megabyte.
LONG_TEXT = 10_000
