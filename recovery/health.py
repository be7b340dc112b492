"""Readiness checks of the recovery app for /health/ready (no secrets in details)."""


def checks() -> dict:
    from backups.models import Source
    from recovery.engine.pg import RestoreError
    from recovery.services import scratch_server

    if not Source.objects.filter(kind="postgresql").exists():
        return {}
    server = scratch_server()
    try:
        with server.connect() as conn:
            conn.execute("SELECT 1")
    except RestoreError:
        return {
            "scratch_database": (
                False,
                f"restore tests cannot reach the scratch server {server.host}:{server.port}",
            )
        }
    return {"scratch_database": (True, f"scratch server {server.host}:{server.port} reachable")}
