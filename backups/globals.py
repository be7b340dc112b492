"""Optional roles and tablespaces backup beside a PostgreSQL backup (`globals: true`).

A database archive names roles (owners, grantees) but never creates them: on a new server
a restore can keep owners and privileges only when the roles exist. With `globals` on, each
backup of the source also stores `pg_dumpall --globals-only --no-role-passwords` as a
second, small artifact (same destinations, same encryption, its own manifest, key
`<artifact key>-globals`); the run's manifest lists it under "globals", and
`manage.py restore_globals` fetches, verifies and applies it on request.
"""

import dataclasses
import logging

from backups import engine
from backups.engine import EngineError, open_destination, unpack_artifact
from backups.models import Destination
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact

log = logging.getLogger(__name__)

GLOBALS_SUFFIX = "-globals"


def backup_globals(run, source_spec, dest_specs, options, secrets: list[str]) -> dict:
    """Store the globals artifact; return what the run's manifest keeps about it."""
    spec = engine.SourceSpec("pg_globals", source_spec.config, source_spec.password)
    key = f"{options.artifact_key}{GLOBALS_SUFFIX}"
    opts = dataclasses.replace(
        options,
        artifact_key=key,
        manifest_extra={**options.manifest_extra, "globals_of": options.artifact_key},
    )
    run.beat("roles and tablespaces")
    result = engine.run_backup(spec, dest_specs, opts)
    copies = []
    for copy in result.copies:
        if copy.ok:
            copies.append(
                {
                    "destination": copy.destination,
                    "location": copy.location,
                    "manifest_location": copy.manifest_location,
                }
            )
            run.append_log(f"roles and tablespaces stored at {copy.destination}: {copy.location}")
        else:
            run.append_log(
                f"roles and tablespaces not stored at {copy.destination}: "
                f"{redact(copy.error, secrets)}"
            )
    info = {
        "artifact_key": key,
        "sha256": result.sha256 or "",
        "bytes_stored": result.bytes_stored,
        "copies": copies,
        "error": "",
    }
    if not copies:
        reason = redact(result.error or "no destination stored it", secrets)
        info["error"] = f"roles and tablespaces (pg_dumpall --globals-only) not backed up: {reason}"
    return info


def delete_globals(run, destination_name: str, store) -> None:
    """Retention removed the run's copy at a destination: remove its globals there too."""
    info = (run.manifest or {}).get("globals") or {}
    for copy in info.get("copies") or []:
        if copy.get("destination") != destination_name:
            continue
        for location in (copy.get("location"), copy.get("manifest_location")):
            try:
                if location and store.exists(location):
                    store.delete(location)
            except Exception as exc:  # noqa: BLE001 - the main copy is gone; log, go on
                log.warning("retention: globals %s at %s: %s", location, destination_name, exc)


def globals_info(run) -> dict | None:
    info = (run.manifest or {}).get("globals")
    return info if isinstance(info, dict) and info.get("copies") else None


def fetch_globals(run, out_path: str) -> str:
    """Write the run's verified globals script to out_path; raise ValueError naming the cause."""
    info = globals_info(run)
    if info is None:
        raise ValueError(
            f"backup run #{run.pk} holds no roles and tablespaces: turn on `globals` for "
            f"{run.source_name} and back it up again"
        )
    try:
        ring = keyring.ring()
    except keyring.KeyRingError as exc:
        raise ValueError(f"the key ring cannot be read: {exc}") from None
    problems = []
    for copy in info["copies"]:
        destination = Destination.objects.filter(name=copy["destination"]).first()
        if destination is None:
            problems.append(f"{copy['destination']}: destination no longer exists")
            continue
        spec = destination.to_spec()
        try:
            reader = open_destination(spec).open_read(copy["location"])
            try:
                with open(out_path, "wb") as out:
                    unpack_artifact(reader, out, ring, expected_sha256=info["sha256"])
            finally:
                close = getattr(reader, "close", None)
                if close:
                    close()
            return out_path
        except (EngineError, OSError) as exc:
            secrets = list(spec.secrets.values())
            problems.append(f"{copy['destination']}: {redact(str(exc), secrets)}")
    raise ValueError("no copy of the roles and tablespaces could be read: " + "; ".join(problems))
