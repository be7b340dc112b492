"""PITR: the portal's base backup and restore-plus-replay against plain pgBackRest, one run.

    .venv/bin/python bench/pitr.py [--scale 68] [--wal-mb 200] [--repeat 3]

Creates a PostgreSQL 15 cluster of its own (initdb as the postgres OS user, on a free
loopback port) with the archive lines `pitr_setup` prints, a local pgBackRest repository
(AES-256-CBC; the configuration, passphrase and stanza `Source.to_stanza()` builds,
used by both legs) and ~1 GB of pgbench data
(`--scale 68`), then times, alternating the order each round:
  backup   plain:  `pgbackrest --config=… --stanza=… --type=full --start-fast backup`
           portal: the physical backup run as the worker executes it — `backup_now JOB`'s
                   code path (services.execute → backups.physical: claim, job lock, lease,
                   heartbeat, config check, pgBackRest, read-back, copies, run event, window
                   refresh), on a throw-away SQLite portal database and var dir
  restore  plain:  `pgbackrest restore --set=L` into an empty directory, a port and a
                   socket in postgresql.auto.conf, `pg_ctl -w start`, wait until
                   pg_is_in_recovery() is false, stop, remove
           portal: recovery.engine.pitr.restore (the restore tests' and restores' engine:
                   refusals, overrides, start, promotion wait, recovered_to) + stop/remove
Between the backup legs and the restore legs ~--wal-mb of WAL is written (UPDATEs on
pgbench_accounts) and archived, so every restore replays it. Prints medians and the
ratio portal / plain per leg, and the load average before and after each leg.
"""

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402 - after the path set-up
from django.core.management import call_command  # noqa: E402

from backups.engine import pgbackrest  # noqa: E402
from recovery.engine import pitr  # noqa: E402
from tests.support.pitr import (  # noqa: E402
    BIN,
    Cluster,
    as_postgres,
    free_port,
    owned_tempdir,  # noqa: E402
)


def load() -> float:
    return os.getloadavg()[0]


def wait_idle(limit: float, max_wait_s: float) -> str:
    """Wait for the 1-minute load average to fall under `limit`; say what it was."""
    deadline = time.monotonic() + max_wait_s
    while load() >= limit and time.monotonic() < deadline:
        time.sleep(5)
    now = load()
    return f"{now:.2f}" + ("" if now < limit else f" (not under {limit}: machine busy)")


def portal_rows(base: Path, port: int):
    """The portal's rows for the bench cluster, in a throw-away database and var dir: a PITR
    source, a local repository destination and a physical full job (retention keeps all)."""
    var = owned_tempdir("dr-bench-pitr-var-")
    os.environ["DR_VAR_DIR"] = str(var)
    os.environ["DATABASE_URL"] = f"sqlite:///{var / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_portal.settings")
    django.setup()
    call_command("migrate", verbosity=0)
    from backups.models import BackupJob, Destination, Source, System  # noqa: PLC0415 - after setup

    system = System.objects.create(name="bench")
    repo = Destination.objects.create(
        name="bench-repo", kind="local", path=str(base / "repo"), keep_days=365, keep_last=100
    )
    source = Source.objects.create(
        system=system, name="benchpitr", kind="postgresql", host=str(base / "sock"), port=port,
        database="postgres", user="postgres", pitr=True, data_directory=str(base / "data"),
        archive_timeout_s=60,
    )  # fmt: skip
    job = BackupJob.objects.create(
        name="benchpitr-full", source=source, method="physical", backup_type="full"
    )
    job.destinations.set([repo])
    return source, job


def make_cluster(scale: int):
    base = owned_tempdir("dr-bench-pitr-")
    port = free_port()
    (base / "sock").mkdir(mode=0o700)
    (base / "repo").mkdir()
    if os.geteuid() == 0:
        shutil.chown(base / "sock", "postgres", "postgres")
        shutil.chown(base / "repo", "postgres", "postgres")
    as_postgres(BIN / "initdb", "-D", base / "data", "-U", "postgres", "-A", "trust")
    source, job = portal_rows(base, port)
    cluster = Cluster(base, port, source.to_stanza())  # the stanza the portal runs with
    lines = [
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        f"unix_socket_directories = '{cluster.socket_dir}'",
        "shared_buffers = 128MB",
        "max_wal_size = 2GB",
        *cluster.archive_lines(),
    ]
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write("\n" + "\n".join(lines) + "\n")
    cluster.start()
    pgbackrest.write_config(cluster.stanza)
    pgbackrest.stanza_create(cluster.stanza)
    print(f"loading pgbench scale {scale} …", flush=True)
    as_postgres(BIN / "pgbench", "-i", "-q", "-s", scale, "-h", "127.0.0.1", "-p", port, "postgres",
                timeout=3600)  # fmt: skip
    size = cluster.sql("SELECT pg_database_size('postgres')")[0][0]
    print(f"database: {size / 1e6:.0f} MB", flush=True)
    return cluster, job


def write_wal(cluster: Cluster, megabytes: int) -> int:
    """UPDATE batches until `megabytes` of WAL were written; force the last segment out."""
    start = cluster.sql("SELECT pg_current_wal_lsn()")[0][0]
    written, low = 0, 1
    while written < megabytes * 1024 * 1024:
        cluster.sql(
            "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN %s AND %s",
            low,
            low + 200_000,
        )
        low += 200_000
        written = cluster.sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", start)[0][0]
    cluster.sql("CHECKPOINT")
    cluster.sql("SELECT pg_switch_wal()")
    pgbackrest.check(cluster.stanza)  # returns once the newest segment is in the repository
    return int(written)


def plain(cluster: Cluster, *args: str, timeout: float = 3600) -> str:
    conf = pgbackrest.config_path(cluster.stanza)
    argv = ["pgbackrest", f"--config={conf}", f"--stanza={cluster.stanza.name}"]
    return as_postgres(*argv, *args, timeout=timeout)


def plain_backup(cluster: Cluster) -> None:
    plain(cluster, "--type=full", "--start-fast", "backup")


def portal_backup(job) -> None:
    from backups import services  # noqa: PLC0415 - Django is set up by then

    run = services.execute(services.start_run(job, "command"))
    if run.status != "succeeded":
        raise SystemExit(f"portal backup run #{run.pk} {run.status}: {run.error}")


def plain_restore(cluster: Cluster, label: str, parent: Path) -> None:
    data = parent / f"plain-{time.time_ns()}"
    sock = parent / f"plain-sock-{time.time_ns()}"
    for path in (data, sock):
        path.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
    port = free_port()
    plain(cluster, f"--set={label}", f"--pg1-path={data}", "--type=default", "restore")
    with open(data / "postgresql.auto.conf", "a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = ''\nunix_socket_directories = '{sock}'\n"
            "archive_mode = off\n"
        )
    as_postgres(BIN / "pg_ctl", "-D", data, "-l", parent / "plain.log", "-w", "-t", "3600",
                "start", timeout=3600)  # fmt: skip
    while True:
        out = as_postgres(BIN / "psql", "-h", sock, "-p", port, "-U", "postgres", "-Atc",
                          "SELECT pg_is_in_recovery()")  # fmt: skip
        if out.strip() == "f":
            break
        time.sleep(0.1)
    as_postgres(BIN / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    shutil.rmtree(data)
    shutil.rmtree(sock)


def portal_restore(cluster: Cluster, label: str, parent: Path) -> None:
    data = parent / f"dr_pitr_{time.time_ns()}"
    result = pitr.restore(cluster.stanza, str(data), at=None, port=free_port(), label=label)
    pitr.stop_and_remove(result.data_dir)


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def leg(name: str, legs: dict, repeat: int, idle: float, max_wait_s: float) -> dict:
    times: dict[str, list[float]] = {k: [] for k in legs}
    for i in range(repeat):
        order = list(legs) if i % 2 == 0 else list(reversed(legs))
        for who in order:
            before = wait_idle(idle, max_wait_s)
            seconds = timed(*legs[who])
            times[who].append(seconds)
            print(f"  {name:8} {who:7} round {i + 1}: {seconds:7.2f} s  "
                  f"(load before {before}, after {load():.2f})", flush=True)  # fmt: skip
    return {who: statistics.median(values) for who, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=68, help="pgbench scale (68 ≈ 1 GB)")
    parser.add_argument("--wal-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=float, default=0.5, help="wait for load under this")
    parser.add_argument("--max-wait", type=float, default=120, help="seconds to wait for idle")
    args = parser.parse_args()

    cluster, job = make_cluster(args.scale)
    try:
        backups = leg(
            "backup",
            {"plain": (plain_backup, cluster), "portal": (portal_backup, job)},
            args.repeat,
            args.idle,
            args.max_wait,
        )
        label = pgbackrest.backups(cluster.stanza)[-1].label
        wal = write_wal(cluster, args.wal_mb)
        print(f"WAL written after backup {label}: {wal / 1e6:.0f} MB", flush=True)
        scratch = owned_tempdir("dr-bench-pitr-restore-")
        restores = leg(
            "restore",
            {
                "plain": (plain_restore, cluster, label, scratch),
                "portal": (portal_restore, cluster, label, scratch),
            },
            args.repeat,
            args.idle,
            args.max_wait,
        )
        shutil.rmtree(scratch, ignore_errors=True)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)
        shutil.rmtree(os.environ["DR_VAR_DIR"], ignore_errors=True)
    print("\nmedian seconds       plain   portal   portal/plain")
    for name, medians in (("backup", backups), ("restore", restores)):
        ratio = medians["portal"] / medians["plain"]
        print(f"{name:18} {medians['plain']:7.2f}  {medians['portal']:7.2f}   {ratio:6.3f}")


if __name__ == "__main__":
    main()
