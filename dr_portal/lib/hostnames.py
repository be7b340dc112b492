"""The shape of a host name or address, checked before anything connects to it.

Pure Python (the failover step engine uses it too). Only the shape: whether the name
resolves is the connection test's business, not the form's.
"""

import ipaddress
import re

MAX_HOST = 253  # DNS: 253 characters in all, 63 per label
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")  # '_' for container and service names
SHAPE = "a host name (letters, digits, '-', '.'), an IPv4 or IPv6 address"


def host_problem(value, *, socket_dir=False) -> str | None:
    """Why `value` is not a host name or IP address (None when it is one).

    socket_dir: also accept an absolute directory (libpq reads it as a Unix socket).
    """
    text = str(value or "")
    if not text:
        return None
    if socket_dir and text.startswith("/"):
        if len(text) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in text):
            return "a socket directory is one line of at most 1,024 characters"
        return None
    if _is_ip(text):
        return None
    shown = text if len(text) <= 60 else text[:57] + "..."
    if len(text) > MAX_HOST:
        return f"a host name has at most {MAX_HOST} characters"
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    if not all(_LABEL.match(label) for label in labels):
        also = " or a socket directory (/…)" if socket_dir else ""
        return f'"{shown}" is not {SHAPE}{also}'
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]") if text.startswith("[") else text)
    except ValueError:
        return False
    return True
