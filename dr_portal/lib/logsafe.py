"""One log record, one line: user-controlled values cannot forge log lines."""

import logging
import re

# C0 controls (CR, LF, ESC...), DEL, C1 controls and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}")


def one_line(text: str) -> str:
    return _CONTROL.sub(_escape, text)


class OneLineFilter(logging.Filter):
    """Render the message now and escape control characters in it.

    A source named "x\\nFAKE LINE" then logs as one line with a visible \\n. Tracebacks
    (exc_info) are added by the formatter afterwards and keep their lines.
    """

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let logging report it as usual
            return True
        escaped = one_line(message)
        if escaped != message or record.args:
            record.msg, record.args = escaped, None
        return True
