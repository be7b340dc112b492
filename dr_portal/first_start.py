"""The short boxed summary `make run` prints last: where the portal is, how to log in, where
the encryption key is and whether it still needs escrow.

A password `ensure_admin --first-start` generated is kept in var/ (mode 0600, like the key
ring beside it) until this summary has shown it once, then deleted: it is printed at the
end of the start-up output instead of among hundreds of lines.
"""

import os
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from dr_portal.models import KeyEscrow

PASSWORD_FILE = "first-start-admin-password"


def password_path() -> Path:
    return settings.VAR_DIR / PASSWORD_FILE


def stash_password(password: str):
    """Keep a just-generated admin password for the summary (owner-only, never logged)."""
    path = password_path()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password)


def take_password() -> str | None:
    """The stashed password, removed as it is read: it is shown once."""
    path = password_path()
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return password or None


def _key_lines() -> list[str]:
    if not settings.DR_KEYRING_GENERATED:
        return ["Encryption keys: from DR_ENCRYPTION_KEYS"]
    lines = [f"Encryption key:  {settings.VAR_DIR / 'dr_encryption_keys'}"]
    try:
        unescrowed = KeyEscrow.unconfirmed_key_ids()
    except DatabaseError:
        unescrowed = []
    if unescrowed:
        lines += [
            "  ESCROW IT away from the backups (password manager, HSM, an envelope):",
            "  without it no encrypted backup can be restored. Then confirm it on the",
            "  dashboard (a manager) to silence this.",
        ]
    return lines


def summary(url: str) -> str:
    password = take_password()
    if password:
        login = [f"Log in:          admin / {password}", "  (shown once: note it now)"]
    elif os.environ.get("DR_ADMIN_PASSWORD"):
        login = ["Log in:          admin, with the password in DR_ADMIN_PASSWORD"]
    else:
        login = [
            "Log in:          admin, with the password shown on the first start",
            "  (forgot it? manage.py changepassword admin)",
        ]
    lines = [f"DR Portal:       {url}", *login, *_key_lines(), "Stop:            Ctrl-C"]
    width = max(len(line) for line in lines) + 2
    rule = "+" + "-" * width + "+"
    return "\n".join([rule, *(f"| {line.ljust(width - 2)} |" for line in lines), rule])
