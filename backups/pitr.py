"""Point-in-time recovery settings of a source: their validation and the pgBackRest stanza.

Every value here ends up in a pgBackRest configuration file the portal writes (one
`key=value` per line) and in commands pgBackRest runs, so each is refused, with a message
naming it, when it holds a line break, a control character or `=`. The models call these
functions; nothing here queries the database.
"""

import base64
import ipaddress
import os
import pwd
import re
from pathlib import Path

from backups.engine.pgbackrest import Repo, Stanza
from dr_portal.lib.text import has_control_chars

# pgBackRest's limit: repo1 … repo4.
MAX_REPOS = 4
# A stanza name is the source's name: pgBackRest accepts letters, digits, '.', '_' and '-'.
STANZA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
# An OS account name as useradd accepts it (pgBackRest logs in over SSH as this user).
OS_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DEFAULT_BIN_ROOT = Path("/usr/lib/postgresql")


def config_value_problem(value) -> str:
    """Why `value` cannot go into a pgBackRest config line ("" when it can)."""
    if not value:
        return ""
    if has_control_chars(value):
        return "No line breaks, tabs or other control characters here (it goes into pgBackRest's configuration)."
    if "=" in str(value):
        return "No '=' here (it goes into pgBackRest's configuration as key=value)."
    return ""


def is_hostname(value: str) -> bool:
    """A DNS name or an IP address; nothing that could pass as an option or a path."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(HOSTNAME.match(value))


def source_errors(source) -> dict[str, str]:
    """What is wrong with a source's PITR settings, by field (empty when pitr is off and clean)."""
    errors = {}
    for name in ("data_directory", "pitr_pg_host", "pitr_pg_host_user", "pitr_stanza"):
        problem = config_value_problem(getattr(source, name))
        if problem:
            errors[name] = problem
    errors.update(_adoption_errors(source))
    if not source.pitr:
        return errors
    if source.kind != "postgresql":
        return {"pitr": "Point-in-time recovery is only for PostgreSQL sources."}
    if source.is_portal_db:
        return {
            "pitr": "The portal's own database is backed up with pg_dump; point-in-time "
            "recovery is for PostgreSQL servers you configure with pitr_setup."
        }
    if not STANZA_NAME.match(source.name or ""):
        errors["name"] = (
            "With point-in-time recovery the name is also the pgBackRest stanza: use letters, "
            "digits, '.', '_' and '-' only, starting with a letter or digit."
        )
    errors.update(_data_directory_errors(source.data_directory))
    errors.update(_host_errors(source))
    for name in ("user", "host"):  # pg1-user, pg1-socket-path
        problem = config_value_problem(getattr(source, name))
        if problem:
            errors[name] = problem
    return errors


# The characters pgBackRest's configuration writer accepts for a passphrase.
CIPHER_PASS = re.compile(r"^[\x21-\x7e]{1,256}$")


def _adoption_errors(source) -> dict[str, str]:
    errors = {}
    if source.pitr_adopted and not source.pitr:
        errors["pitr_adopted"] = (
            "Adopting a pgBackRest stanza needs point-in-time recovery on: set pitr too."
        )
    if source.pitr_stanza and not STANZA_NAME.match(source.pitr_stanza):
        errors["pitr_stanza"] = (
            "A pgBackRest stanza name: letters, digits, '.', '_' and '-' only, starting with a "
            "letter or digit."
        )
    passphrase = source.pitr_cipher_pass
    if passphrase and not hasattr(passphrase, "reveal") and not CIPHER_PASS.match(passphrase):
        # Checked when given (a stored one was checked then); the value is never echoed.
        errors["pitr_cipher_pass"] = (
            "The passphrase must be printable characters without spaces (at most 256)."
        )
    return errors


def _data_directory_errors(value: str) -> dict[str, str]:
    if not value:
        return {
            "data_directory": "Required with point-in-time recovery: the cluster's data "
            "directory (SHOW data_directory), e.g. /var/lib/postgresql/15/main."
        }
    if not value.startswith("/") or "\x00" in value:
        return {"data_directory": f"{value} is not an absolute path."}
    if ".." in Path(value).parts:
        return {"data_directory": "Give the data directory without '..'."}
    return {}


def _host_errors(source) -> dict[str, str]:
    errors = {}
    host, user = source.pitr_pg_host, source.pitr_pg_host_user
    if host and not config_value_problem(host) and not is_hostname(host):
        errors["pitr_pg_host"] = (
            f"{host} is not a host name or an IP address (leave blank when PostgreSQL runs on "
            "this host)."
        )
    if user and not host:
        errors["pitr_pg_host_user"] = "Only with a database host: leave blank for this host."
    elif user and not config_value_problem(user) and not OS_USER.match(user):
        errors["pitr_pg_host_user"] = (
            f"{user} is not an OS account name (lower-case letters, digits, '_' and '-')."
        )
    return errors


def physical_job_errors(job, source, destinations, siblings) -> dict[str, str]:
    """What is wrong with a job's method and type against its source and destinations.

    `destinations`: the destinations the job will write to; `siblings`: the source's other
    enabled physical jobs, as (name, {destination names}) pairs.
    """
    if job.method != "physical":
        if job.backup_type and job.backup_type != "full":
            return {"backup_type": "Differential and incremental backups are physical only."}
        return {}
    errors = {}
    if source is not None and source.pitr_adopted:
        errors["method"] = (
            f"{source.name} is an adopted pgBackRest stanza: its base backups are taken by "
            "its own schedule and the portal only reads the repository. Choose a logical "
            "backup, or stop adopting the stanza."
        )
    elif source is not None and not source.pitr:
        errors["method"] = (
            f"A physical backup needs point-in-time recovery on the source: turn pitr on for "
            f"{source.name} (and run manage.py pitr_setup) or choose a logical backup."
        )
    destinations = list(destinations)
    if len(destinations) > MAX_REPOS:
        errors["destinations"] = (
            f"pgBackRest keeps at most {MAX_REPOS} repositories: pick {MAX_REPOS} destinations "
            f"or fewer (this job has {len(destinations)})."
        )
    archived = sorted(d.name for d in destinations if d.is_archive)
    if archived and "destinations" not in errors:
        errors["destinations"] = (
            f"{', '.join(archived)} stores in an archive class (Glacier): pgBackRest must read "
            "its repository back (WAL, manifests) and cannot read archived objects."
        )
    problems = [p for p in (_destination_problem(d) for d in destinations) if p]
    if problems and "destinations" not in errors:
        errors["destinations"] = " ".join(problems)
    if job.enabled and "destinations" not in errors:
        mine = {d.name for d in destinations}
        for name, theirs in siblings:
            if theirs != mine:
                errors["destinations"] = (
                    f"All physical jobs of a source share one stanza and its repositories: job "
                    f"{name} writes to {', '.join(sorted(theirs)) or 'no destination'}; use the "
                    "same destinations (or disable that job)."
                )
                break
    return errors


def _destination_problem(destination) -> str:
    fields = ("path", "bucket", "prefix", "region", "endpoint_url")
    for name in fields:
        if config_value_problem(getattr(destination, name, "")):
            return f"Destination {destination.name}: its {name} cannot go into pgBackRest's configuration."
    return ""


# --- the stanza ---------------------------------------------------------------------------


def repo_for(destination, secrets: dict[str, str]) -> Repo:
    """The pgBackRest repository at a destination; `secrets` are its revealed credentials."""
    if destination.kind == "local":
        return Repo(kind="local", path=destination.path)
    return Repo(
        kind="s3",
        bucket=destination.bucket,
        prefix=destination.prefix,
        endpoint_url=destination.endpoint_url,
        region=destination.region,
        storage_class=destination.storage_class,
        access_key_id=secrets.get("access_key_id", ""),
        secret_access_key=secrets.get("secret_access_key", ""),
    )


def cipher_pass(key, stanza_name: str) -> str:
    """The repository passphrase: derived from one master key, so the portal never stores it."""
    return base64.urlsafe_b64encode(key.derive(f"pgbackrest stanza {stanza_name}")).decode()


def local_os_user(data_directory: str) -> str:
    """The owner of the data directory when it is on this host (pgBackRest runs as them)."""
    try:
        return pwd.getpwuid(os.stat(data_directory).st_uid).pw_name
    except (OSError, KeyError):
        return "postgres"


def pg_bin_dir(data_directory: str, root: Path = DEFAULT_BIN_ROOT) -> str:
    """The server binaries of the cluster's major version (from PG_VERSION), when installed."""
    try:
        major = (Path(data_directory) / "PG_VERSION").read_text().strip()
    except OSError:
        return ""
    if not re.fullmatch(r"\d{1,3}(\.\d{1,3})?", major):
        return ""
    candidate = root / major / "bin"
    return str(candidate) if candidate.is_dir() else ""


def stanza_for(source, repos, *, passphrase: str, config_dir: str) -> Stanza:
    """The engine's Stanza for a PITR source; holds the passphrase and credentials."""
    remote = bool(source.pitr_pg_host)
    host = source.host or ""
    return Stanza(
        name=source.stanza_name,
        pg_data=source.data_directory,
        pg_port=source.port or 5432,
        pg_user=source.user or "postgres",
        pg_socket_dir=host if host.startswith("/") else "",
        pg_host=source.pitr_pg_host,
        pg_host_user=source.pitr_pg_host_user,
        repos=tuple(repos),
        cipher_pass=passphrase,
        config_dir=config_dir,
        os_user="postgres" if remote else local_os_user(source.data_directory),
        pg_bin_dir="" if remote else pg_bin_dir(source.data_directory),
        archive_timeout_s=source.archive_timeout_s,
        read_only=source.pitr_adopted,
    )
