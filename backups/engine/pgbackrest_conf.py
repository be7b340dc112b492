"""The pgBackRest configuration file the portal writes for one stanza, and its validation.

Every value is checked before it is written: the file is `key=value` lines, so a value
holding a newline (or a name holding '=' or ']') could add options of its own — an
`archive_command`-adjacent way to run anything as the PostgreSQL OS user.
"""

import os
import pwd
import re
import shlex
import tempfile
from urllib.parse import urlsplit

from .errors import PgBackRestError
from .pgbackrest_types import Repo, Stanza

STANZA_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/-]*$")
_REGION = re.compile(r"^[a-z0-9-]{0,32}$")
_STORAGE_CLASS = re.compile(r"^[A-Z_]{1,40}$")
_HOST = re.compile(r"^[A-Za-z0-9.:_-]{1,253}$")
_OS_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_ROLE = re.compile(r"^[A-Za-z0-9_.@-]{1,63}$")
_PATH = re.compile(r"^[A-Za-z0-9._/+@-]+$")
_KEY = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable, no spaces: S3 keys and passphrases
# The portal decides what to expire (`expire --set`), so pgBackRest's own count-based
# retention is set out of reach; archive retention follows it, so every kept backup keeps
# the WAL it needs.
RETENTION_FULL_MAX = 9999999


class ConfigError(PgBackRestError):
    """A stanza's settings cannot be written safely; the message names the field."""


def _plain(field: str, value: str) -> str:
    text = str(value)
    if any(c in text for c in "\n\r\x00") or text != text.strip():
        raise ConfigError(f"{field} must be one line without leading or trailing spaces")
    return text


def _match(field: str, value: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.match(_plain(field, value)):
        raise ConfigError(f"{field} {value!r} is not valid: {what}")
    return value


def check_path(field: str, value: str) -> str:
    # pgBackRest writes paths unquoted into restore_command, which a shell runs: keep them
    # to characters no shell treats specially.
    path = _plain(field, value)
    if not os.path.isabs(path) or "/../" in f"{path}/" or not _PATH.match(path):
        raise ConfigError(
            f"{field} must be an absolute path of letters, digits and . _ - + @ / "
            f"without '..' (got {value!r})"
        )
    return os.path.normpath(path)


def validate(stanza: Stanza) -> None:
    """Raise ConfigError naming the first field that could not be written safely."""
    _match("stanza name", stanza.name, STANZA_NAME, "use letters, digits, '.', '_' and '-'")
    check_path("data directory", stanza.pg_data)
    check_path("config directory", stanza.config_dir)
    if not 1 <= int(stanza.pg_port) <= 65535:
        raise ConfigError(f"PostgreSQL port {stanza.pg_port} is not between 1 and 65535")
    _match("PostgreSQL user", stanza.pg_user, _ROLE, "letters, digits, '_', '.', '@', '-'")
    if stanza.pg_socket_dir:
        check_path("socket directory", stanza.pg_socket_dir)
    if stanza.pg_host:
        _match("pgBackRest host", stanza.pg_host, _HOST, "a host name or address")
    if stanza.pg_host_user:
        _match("pgBackRest host user", stanza.pg_host_user, _OS_USER, "an OS user name")
    if stanza.os_user:
        _match("OS user", stanza.os_user, _OS_USER, "an OS user name")
    if stanza.pg_bin_dir:
        check_path("server binaries directory", stanza.pg_bin_dir)
    if stanza.cipher_pass:
        _match("encryption passphrase", stanza.cipher_pass, _KEY, "printable, no spaces")
    if not stanza.repos:
        raise ConfigError(f"stanza {stanza.name} has no repository")
    if len(stanza.repos) > 4:
        raise ConfigError("pgBackRest takes at most four repositories per stanza")
    for index, repo in enumerate(stanza.repos, start=1):
        _validate_repo(index, repo)


def _validate_repo(index: int, repo: Repo) -> None:
    name = f"repository {index}"
    if repo.kind == "local":
        check_path(f"{name} path", repo.path)
        return
    if repo.kind != "s3":
        raise ConfigError(f"{name}: pgBackRest repositories are local directories or S3")
    _match(f"{name} bucket", repo.bucket, _BUCKET, "an S3 bucket name")
    _match(f"{name} prefix", repo.prefix, _PREFIX, "letters, digits, '.', '_', '-' and '/'")
    _match(f"{name} region", repo.region, _REGION, "like eu-west-1")
    _match(f"{name} storage class", repo.storage_class, _STORAGE_CLASS, "like STANDARD_IA")
    _match(f"{name} access key id", repo.access_key_id, _KEY, "printable, no spaces")
    _match(f"{name} secret access key", repo.secret_access_key, _KEY, "printable, no spaces")
    if repo.endpoint_url:
        _endpoint(name, repo.endpoint_url)
    if repo.ca_file:
        check_path(f"{name} CA file", repo.ca_file)


def _endpoint(name: str, url: str) -> tuple[str, int | None]:
    parts = urlsplit(_plain(f"{name} endpoint", url))
    if parts.scheme != "https":
        raise ConfigError(f"{name}: pgBackRest reaches S3 over HTTPS only (endpoint {url!r})")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name}: the endpoint's port is not a number") from None
    if not parts.hostname or not _HOST.match(parts.hostname) or parts.path not in ("", "/"):
        raise ConfigError(f"{name}: the endpoint must be https://host[:port] (got {url!r})")
    return parts.hostname, port


def render(stanza: Stanza) -> str:
    """The text of `<config_dir>/<name>.conf` (validated first)."""
    validate(stanza)
    lines = ["# Written by DR Portal; edits are overwritten. Holds secrets: keep it 0600.", ""]
    lines += ["[global]"]
    lines += [f"{k}={v}" for k, v in _global_options(stanza)]
    for index, repo in enumerate(stanza.repos, start=1):
        lines += [f"repo{index}-{k}={v}" for k, v in _repo_options(stanza, repo)]
    lines += ["", f"[{stanza.name}]"]
    lines += [f"pg1-{k}={v}" for k, v in _pg_options(stanza)]
    return "\n".join(lines) + "\n"


def _global_options(stanza: Stanza) -> list[tuple[str, str]]:
    base = os.path.normpath(stanza.config_dir)
    return [
        ("log-path", f"{base}/log"),
        ("lock-path", f"{base}/lock"),
        ("spool-path", f"{base}/spool"),
        ("log-level-file", "info"),
        ("compress-type", "zst"),
        ("process-max", str(max(1, int(stanza.process_max)))),
    ]


def _repo_options(stanza: Stanza, repo: Repo) -> list[tuple[str, str]]:
    if repo.kind == "local":
        options = [("path", f"{os.path.normpath(repo.path)}/pgbackrest")]
    else:
        options = _s3_options(repo)
    if stanza.cipher_pass:
        options += [("cipher-type", "aes-256-cbc"), ("cipher-pass", stanza.cipher_pass)]
    options += [
        ("retention-full", str(RETENTION_FULL_MAX)),
        ("retention-archive-type", "full"),
    ]
    return options


def _s3_options(repo: Repo) -> list[tuple[str, str]]:
    prefix = repo.prefix.strip("/")
    options = [
        ("type", "s3"),
        ("path", f"/{prefix}/pgbackrest" if prefix else "/pgbackrest"),
        ("s3-bucket", repo.bucket),
        ("s3-region", repo.region or "us-east-1"),
        ("s3-key", repo.access_key_id),
        ("s3-key-secret", repo.secret_access_key),
    ]
    if repo.endpoint_url:
        host, port = _endpoint("repository", repo.endpoint_url)
        options += [("s3-endpoint", host), ("s3-uri-style", "path")]
        if port:
            options.append(("storage-port", str(port)))
    else:
        region = repo.region or "us-east-1"
        options.append(("s3-endpoint", f"s3.{region}.amazonaws.com"))
    if repo.storage_class and repo.storage_class != "STANDARD":
        options.append(("s3-storage-class", repo.storage_class))
    if repo.ca_file:
        options.append(("storage-ca-file", os.path.normpath(repo.ca_file)))
    return options


def _pg_options(stanza: Stanza) -> list[tuple[str, str]]:
    options = [
        ("path", os.path.normpath(stanza.pg_data)),
        ("port", str(int(stanza.pg_port))),
        ("user", stanza.pg_user),
    ]
    if stanza.pg_socket_dir:
        options.append(("socket-path", os.path.normpath(stanza.pg_socket_dir)))
    if stanza.pg_host:
        options.append(("host", stanza.pg_host))
        if stanza.pg_host_user:
            options.append(("host-user", stanza.pg_host_user))
    return options


def owner_ids(os_user: str) -> tuple[int, int] | None:
    """(uid, gid) to hand files to when we are root and an OS user is named, else None."""
    if not os_user or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise ConfigError(f"OS user {os_user!r} does not exist on this host") from None
    return entry.pw_uid, entry.pw_gid


def make_dir(path: str, ids: tuple[int, int] | None, mode: int = 0o750) -> None:
    """Create `path` (and missing parents) and hand the leaf to the OS user."""
    os.makedirs(path, mode=mode, exist_ok=True)
    if ids is not None:
        os.chown(path, *ids)


def write_atomically(path: str, text: str, ids: tuple[int, int] | None) -> None:
    """Replace `path` with `text`: temp file in the same directory, 0600, chown, rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".conf")
    try:
        os.fchmod(fd, 0o600)
        if ids is not None:
            os.fchown(fd, *ids)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def conf_quote(value: str) -> str:
    """A postgresql.conf string literal: single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def shell_word(value: str) -> str:
    return shlex.quote(value)


def archive_command_for(stanza: Stanza) -> str:
    """What PostgreSQL runs for each WAL segment (through `sh -c`, hence the quoting).

    A cluster on another host pushes with that host's own pgBackRest configuration
    (whose repo1-host points back here), so only the stanza is named then.
    """
    if stanza.pg_host:
        return f"pgbackrest --stanza={stanza.name} archive-push %p"
    conf = os.path.join(os.path.normpath(stanza.config_dir), f"{stanza.name}.conf")
    return f"pgbackrest --config={shell_word(conf)} --stanza={stanza.name} archive-push %p"


def cipher_passes(text: str) -> set[str]:
    """The passphrases a rendered configuration holds (compared, never shown)."""
    return set(re.findall(r"^repo\d+-cipher-pass=(.*)$", text, re.MULTILINE))


def secret_env(stanza: Stanza) -> dict:
    """The stanza's passphrase for every repository, for a child's environment (pgBackRest
    takes it over the file), so a call always uses the key the portal holds now."""
    env = {}
    for index in range(1, len(stanza.repos) + 1):
        if stanza.cipher_pass:
            env[f"PGBACKREST_REPO{index}_CIPHER_TYPE"] = "aes-256-cbc"
            env[f"PGBACKREST_REPO{index}_CIPHER_PASS"] = stanza.cipher_pass
        else:
            env[f"PGBACKREST_REPO{index}_CIPHER_TYPE"] = "none"
    return env
