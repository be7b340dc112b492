"""Restore throughput: the portal's restore test against a plain pg_restore, same data, same run.

    .venv/bin/python bench/restore_throughput.py [--size-mb 1000] [--repeat 3] [--jobs N]

Creates a PostgreSQL database of about --size-mb of table data (executions-like rows with
two secondary indexes, so a restore rebuilds indexes as real ones do), makes
  - the portal's artifact: backups.engine.run_backup to a local destination (zstd + AES-256-GCM),
  - a plain `pg_dump -Fc` file,
then times, alternating the order each round:
  plain:    createdb + pg_restore (one job) of the pg_dump -Fc file + dropdb
  plain -j: the same with pg_restore -j N (what a careful human would type)
  portal:   the restore-test path: read the stored artifact from the destination, verify
            SHA-256 and every GCM chunk, decrypt, decompress to a temporary file, create a
            scratch database, pg_restore -j N, heartbeat + verification checks, drop the
            scratch database, remove the file (the same engine functions that
            recovery.restore_tests.execute_restore_test calls; the Django bookkeeping is left out)
Prints median seconds, MB/s of stored dump data, and the ratio portal / plain.
The database is dropped at the end. With --parallel N the data is split into N tables and
`pg_restore -j N` of a plain `pg_dump -Fd` is timed against the portal's restore test of a
parallel artifact too (bench/parallel_legs.py).
"""

import argparse
import base64
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import parallel_legs  # noqa: E402 - bench/ beside this file

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
PSQL = ["psql", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], "-v", "ON_ERROR_STOP=1"]
PSQL += ["-qAt"]
CHECKS = [
    {"name": "executions", "sql": "SELECT COUNT(*) FROM executions", "expect": "> 0"},
    {
        "name": "canary",
        "sql": "SELECT COUNT(*) FROM executions",
        "expect": "not below 90% of previous",
    },
    {
        "name": "failed",
        "sql": "SELECT COUNT(*) FROM executions WHERE status = 'failed'",
        "expect": ">= 0",
    },
]

ROWS_SQL = """
INSERT INTO executions (workflow_id, status, started, duration_ms, host, payload, log, digest)
SELECT g % 997,
       (ARRAY['succeeded','failed','running','cancelled'])[1 + g % 4],
       timestamp '2026-01-01' + g * interval '1 second',
       (g::bigint * 7919) % 600000,
       'worker-' || (g % 23) || '.tool-hub.internal',
       jsonb_build_object('workflow', 'wf-' || (g % 997), 'attempt', g % 5,
                          'trigger', (ARRAY['cron','webhook','manual'])[1 + g % 3]),
       'step ' || (g % 12) || ' finished: processed ' || (g % 5000) || ' records from queue '
         || 'jobs-' || (g % 40) || ' in ' || (g % 900) || ' ms; status ok; retries ' || (g % 3),
       md5(g::text || 'salt')
FROM generate_series({start}, {stop}) AS g
"""


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(
        [*PSQL, "-d", db, "-c", sql], check=True, capture_output=True, text=True
    ).stdout.strip()


def create_source(db: str, size_mb: int) -> None:
    psql(f'CREATE DATABASE "{db}"')
    psql(
        "CREATE TABLE executions (id bigserial PRIMARY KEY, workflow_id int, status text, "
        "started timestamp, duration_ms int, host text, payload jsonb, log text, digest text)",
        db,
    )
    psql("CREATE TABLE workflows (id int PRIMARY KEY, name text)", db)
    psql("INSERT INTO workflows SELECT g, 'wf-' || g FROM generate_series(0, 996) g", db)
    batch = 200_000
    psql(ROWS_SQL.format(start=1, stop=batch), db)
    per_row = int(psql("SELECT pg_table_size('executions')", db)) / batch
    rows = int(size_mb * 1_000_000 / per_row)
    done = batch
    while done < rows:
        stop = min(rows, done + 1_000_000)
        psql(ROWS_SQL.format(start=done + 1, stop=stop), db)
        done = stop
    psql("CREATE INDEX ON executions (workflow_id, started)", db)
    psql("CREATE INDEX ON executions (digest)", db)
    psql("VACUUM ANALYZE", db)


def drop(db: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def plain_restore(dump: str, jobs: int) -> float:
    db = f"bench_plain_{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    psql(f'CREATE DATABASE "{db}"')
    try:
        subprocess.run(
            [
                "pg_restore",
                "-h",
                PG["host"],
                "-p",
                str(PG["port"]),
                "-U",
                PG["user"],
                "--no-owner",
                *([f"--jobs={jobs}"] if jobs > 1 else []),  # plain means no -j at all
                "-d",
                db,
                dump,
            ],
            check=True,
        )
    finally:
        drop(db)
    return time.perf_counter() - start


def portal_restore_test(
    dest_spec, location: str, sha256: str, keys, jobs: int
) -> tuple[float, dict]:
    from backups.engine import open_destination, unpack_artifact
    from recovery.engine.pg import PgServer
    from recovery.engine.verify import Phases, verify_postgres

    start = time.perf_counter()
    phases = Phases()
    with tempfile.TemporaryDirectory(prefix="dr-bench-restore-") as tmp:
        if jobs == 1:  # what recovery.restore_tests does with one job: stream into pg_restore

            def path(stdin):
                reader = open_destination(dest_spec).open_read(location)
                try:
                    unpack_artifact(reader, stdin, keys, expected_sha256=sha256)
                finally:
                    reader.close()

        else:  # pg_restore -j needs a seekable file
            path = os.path.join(tmp, "artifact")
            with phases.phase("fetch and verify"), open(path, "wb") as out:
                reader = open_destination(dest_spec).open_read(location)
                try:
                    unpack_artifact(reader, out, keys, expected_sha256=sha256)
                finally:
                    reader.close()
        result = verify_postgres(
            path,
            PgServer(),
            CHECKS,
            {"canary": "1"},
            phases,
            jobs=jobs,
            scratch_prefix="dr_bench_scratch_",  # not mistaken for the tests' leftovers
        )
    elapsed = time.perf_counter() - start
    assert all(c.passed for c in result.checks), result.checks
    return elapsed, {p["name"]: p["seconds"] for p in phases.items}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=max(1, min(4, (os.cpu_count() or 1) // 2)))
    parser.add_argument("--parallel", type=int, default=0, metavar="N")
    args = parser.parse_args()

    from backups.engine import (
        BackupOptions,
        DestinationSpec,
        SourceSpec,
        run_backup,
        unpack_artifact,
    )
    from dr_portal.lib.keyring import parse_ring

    keys = parse_ring(base64.urlsafe_b64encode(b"r" * 32).decode())
    db = f"bench_restore_src_{uuid.uuid4().hex[:8]}"
    work = tempfile.mkdtemp(prefix="dr-bench-restore-data-")
    try:
        t = time.perf_counter()
        create_source(db, args.size_mb)
        if args.parallel > 1:
            parallel_legs.split_tables(db, args.parallel)
        size = int(psql(f"SELECT pg_database_size('{db}')"))
        print(
            f"source database {size / 1e6:.0f} MB created in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
        dump = os.path.join(work, "plain.dump")
        subprocess.run(
            [
                "pg_dump",
                "-h",
                PG["host"],
                "-p",
                str(PG["port"]),
                "-U",
                PG["user"],
                "-Fc",
                "-f",
                dump,
                db,
            ],
            check=True,
        )
        dest = DestinationSpec("local", "local", {"path": os.path.join(work, "store")}, {})
        result = run_backup(
            SourceSpec("postgresql", {**PG, "database": db}),
            [dest],
            BackupOptions(f"bench/{uuid.uuid4().hex}", compression="zstd", master_keys=keys),
        )
        assert result.status == "succeeded", result.error
        location = result.copies[0].location
        plain_mb = os.path.getsize(dump) / 1e6
        portal_mb = result.bytes_stored / 1e6
        print(f"pg_dump -Fc file {plain_mb:.0f} MB; portal artifact {portal_mb:.0f} MB", flush=True)

        # the artifact's own dump (pg_dump -Fc -Z0 through a pipe), unpacked once, untimed
        own_dump = os.path.join(work, "artifact.dump")
        with open(result.copies[0].location, "rb") as reader, open(own_dump, "wb") as out:
            unpack_artifact(reader, out, keys, expected_sha256=result.sha256)
        parallel = max(2, args.jobs)  # with --jobs 1 "plain -j 1" would repeat "plain"
        times = {"plain": [], "plain -j": [], "plain, own dump": [], "portal": []}
        portal_phases = []
        for round_no in range(args.repeat):
            order = list(times)
            order = order[round_no % len(order) :] + order[: round_no % len(order)]
            for name in order:
                if name == "plain":
                    seconds = plain_restore(dump, 1)
                elif name == "plain -j":
                    seconds = plain_restore(dump, parallel)
                elif name == "plain, own dump":
                    seconds = plain_restore(own_dump, 1)
                else:
                    seconds, phases = portal_restore_test(
                        dest, location, result.sha256, keys, args.jobs
                    )
                    portal_phases.append(phases)
                times[name].append(seconds)
                print(f"round {round_no + 1} {name:9s} {seconds:7.1f} s", flush=True)

        med = {k: statistics.median(v) for k, v in times.items()}
        print()
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
            f"{subprocess.run(['pg_restore', '--version'], capture_output=True, text=True).stdout.strip()}"
        )
        print(
            f"database {size / 1e6:.0f} MB (pg_database_size), {args.repeat} rounds, jobs={args.jobs}"
        )
        best = {k: min(v) for k, v in times.items()}
        print(
            f"load average at the end: {os.getloadavg()[0]:.1f} (other work on the machine skews single runs)"
        )
        print(
            "| path | median s | best s | all runs s | MB/s of dump (median) | ratio vs plain: median | best |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, label, mb in (
            ("plain", "plain `pg_restore` of `pg_dump -Fc` into a fresh database", plain_mb),
            ("plain -j", f"plain `pg_restore -j {parallel}`", plain_mb),
            (
                "plain, own dump",
                "plain `pg_restore` of the artifact's own dump (`-Fc -Z0`, unpacked)",
                os.path.getsize(own_dump) / 1e6,
            ),
            (
                "portal",
                "portal restore test (fetch, verify, decrypt, decompress "
                + (
                    "streamed into a serial `pg_restore`"
                    if args.jobs == 1
                    else f"to a file, `pg_restore -j {args.jobs}`"
                )
                + ", checks, drop)",
                portal_mb,
            ),
        ):
            runs = ", ".join(f"{s:.1f}" for s in times[name])
            print(
                f"| {label} | {med[name]:.1f} | {best[name]:.1f} | {runs} | {mb / med[name]:.1f} "
                f"| {med[name] / med['plain']:.2f}× | {best[name] / best['plain']:.2f}× |"
            )
        fastest = min(("plain", "plain -j", "plain, own dump"), key=lambda k: med[k])
        print(
            f"portal ÷ the fastest plain invocation ({fastest}): "
            f"{med['portal'] / med[fastest]:.2f}× by median"
        )
        phase_med = {k: statistics.median(p[k] for p in portal_phases) for k in portal_phases[0]}
        print(
            "portal phases (median s): " + ", ".join(f"{k} {v:.1f}" for k, v in phase_med.items())
        )
        print(
            f"goal: portal within 1.15× of plain: {'met' if med['portal'] <= 1.15 * med['plain'] else 'NOT met'}"
            f" ({med['portal'] / med['plain']:.2f}×)"
        )
        if args.parallel > 1:
            parallel_legs.restore_legs(db, args.parallel, args.repeat, CHECKS, {"canary": "1"})
    finally:
        drop(db)
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    main()
