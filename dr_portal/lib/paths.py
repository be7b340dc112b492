"""Paths chosen by users must stay below the configured allowed roots."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError


def check_allowed_path(value: str, *, must_exist: bool = False) -> Path:
    """Resolve a path (following links and '..') and refuse it outside DR_ALLOWED_ROOTS."""
    if not value or "\x00" in value:
        raise ValidationError("Give an absolute path.")
    path = Path(value)
    if not path.is_absolute():
        raise ValidationError(f"{value} is not an absolute path.")
    resolved = path.resolve()
    roots = settings.DR_ALLOWED_ROOTS
    if not any(resolved == root or root in resolved.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise ValidationError(f"{value} is outside the allowed roots ({allowed}).")
    if must_exist and not resolved.exists():
        raise ValidationError(f"{value} does not exist.")
    return resolved
