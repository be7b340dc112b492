"""Keep secrets out of logs, step outputs and error messages."""

import logging
import re

# key=value / "key": "value" pairs whose key names a secret, and passwords in URLs.
_PAIR = re.compile(
    r"(?i)(\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)[\w-]*\b"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&]+)"
)
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s]+)(@)")
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]+)")
MASK = "****"


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Mask known secret values and anything shaped like a credential."""
    if not text:
        return text
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(rf"\1{MASK}\3", text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    return _PAIR.sub(rf"\1{MASK}", text)


class RedactingFilter(logging.Filter):
    def filter(self, record):
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):  # logger.debug("%(x)s", {"x": ...}) (fontTools does)
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        elif record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True
