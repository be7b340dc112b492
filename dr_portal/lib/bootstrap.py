"""Values the embedded default generates once and keeps in var/ (mode 0600).

Importable before Django is configured: settings.py uses it.
"""

import base64
import os
import secrets
import sys
from pathlib import Path


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def new_master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def generated_value(var_dir: Path, name: str, generate) -> str:
    """Read var/<name>, or create it with a fresh value that only the owner can read."""
    path = Path(var_dir) / name.lower()
    if path.exists():
        return path.read_text().strip()
    value = generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    print(f"dr-portal: generated {name} into {path} (mode 0600)", file=sys.stderr)
    return value
