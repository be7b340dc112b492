"""Reachability of the scratch server, for /health/destinations (no secrets in details)."""

from backups.models import Source
from recovery.engine.pg import RestoreError
from recovery.workspace import scratch_server


def probes() -> dict:
    """{name: callable -> (ok, detail)}; the database is read here, the probe only connects."""
    if not Source.objects.filter(kind="postgresql").exists():
        return {}
    return {"scratch_database": _probe(scratch_server())}


def _probe(server):
    def probe():
        where = f"scratch server {server.host}:{server.port}"
        try:
            with server.connect() as conn:
                conn.execute("SELECT 1")
        except RestoreError:
            return False, f"restore tests cannot reach the {where}"
        return True, f"{where} reachable"

    return probe
