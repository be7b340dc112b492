"""Reachability of the scratch server, for /health/destinations (no secrets in details)."""


def probes() -> dict:
    """{name: callable -> (ok, detail)}; the database is read here, the probe only connects."""
    from backups.models import Source
    from recovery.workspace import scratch_server

    if not Source.objects.filter(kind="postgresql").exists():
        return {}
    return {"scratch_database": _probe(scratch_server())}


def _probe(server):
    def probe():
        from recovery.engine.pg import RestoreError

        where = f"scratch server {server.host}:{server.port}"
        try:
            with server.connect() as conn:
                conn.execute("SELECT 1")
        except RestoreError:
            return False, f"restore tests cannot reach the {where}"
        return True, f"{where} reachable"

    return probe


def checks() -> dict:
    return {name: probe() for name, probe in probes().items()}
