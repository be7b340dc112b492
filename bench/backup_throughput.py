"""Backup throughput: the portal engine against the plain tools, on the same data, same run.

    .venv/bin/python bench/backup_throughput.py [--size-mb 1000] [--repeat 3] [--keep-db]

Creates a PostgreSQL database of about --size-mb of table data (executions-like rows:
repetitive text, JSON, a hash column, so it compresses roughly like real application data),
then times, alternating the order each round:
  pg_dump -Fc > file                                   (the plain tool, built-in zlib)
  pg_dump -Fc | gzip -9                                 (the seed's backup-full.sh)
  pg_dump -Fc -Z0 | zstd -3 | openssl enc -aes-256-ctr  (the practical limit)
  engine run_backup -> local destination, zstd 3 + AES-256-GCM (in a subprocess, for peak RSS)
Prints the median seconds, MB/s of dump data, stored sizes, ratios against the shell pipeline
and the engine's peak RSS. The database is dropped at the end (unless --keep-db).
With --parallel N the data is split into N tables and parallel dumps are timed too
(`pg_dump -Fd -j N` by hand against the engine's parallel N: bench/parallel_legs.py).
"""

import argparse
import base64
import json
import os
import platform
import resource
import shutil
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
PSQL = [
    "psql",
    "-h",
    PG["host"],
    "-p",
    str(PG["port"]),
    "-U",
    PG["user"],
    "-v",
    "ON_ERROR_STOP=1",
    "-qAt",
]
PG_ENV = {**os.environ, "PGHOST": PG["host"], "PGPORT": str(PG["port"]), "PGUSER": PG["user"]}

ROWS_SQL = """
INSERT INTO executions (workflow_id, status, started, duration_ms, host, payload, log, digest, trace_id)
SELECT g % 997,
       (ARRAY['succeeded','failed','running','cancelled'])[1 + g % 4],
       timestamp '2026-01-01' + g * interval '1 second',
       (g::bigint * 7919) % 600000,
       'worker-' || (g % 23) || '.tool-hub.internal',
       jsonb_build_object('workflow', 'wf-' || (g % 997), 'attempt', g % 5,
                          'trigger', (ARRAY['cron','webhook','manual'])[1 + g % 3],
                          'inputs', jsonb_build_object('batch', g % 100, 'region', 'eu-west-' || (g % 3))),
       'step ' || (g % 12) || ' finished: processed ' || (g % 5000) || ' records from queue '
         || 'jobs-' || (g % 40) || ' in ' || (g % 900) || ' ms; status ok; retries ' || (g % 3),
       md5(g::text || 'salt'),
       substr(md5(g::text || 'trace'), 1, 16)
FROM generate_series(:start, :stop) AS g
"""


def rows_sql(start: int, stop: int) -> str:
    return ROWS_SQL.replace(":start", str(int(start))).replace(":stop", str(int(stop)))


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(
        [*PSQL, "-d", db, "-c", sql], check=True, capture_output=True, text=True, env=PG_ENV
    ).stdout.strip()


def create_database(db: str, size_mb: int) -> None:
    psql(f'CREATE DATABASE "{db}"')
    psql(
        "CREATE TABLE executions (id bigserial PRIMARY KEY, workflow_id int, status text, "
        "started timestamp, duration_ms int, host text, payload jsonb, log text, digest text, trace_id text)",
        db,
    )
    batch = 200_000
    psql(rows_sql(1, batch), db)
    per_row = int(psql("SELECT pg_table_size('executions')", db)) / batch
    rows = int(size_mb * 1_000_000 / per_row)
    done = batch
    while done < rows:
        stop = min(rows, done + 1_000_000)
        psql(rows_sql(done + 1, stop), db)
        done = stop
        print(f"  generated {done:,}/{rows:,} rows", file=sys.stderr, flush=True)
    psql("VACUUM ANALYZE executions", db)


def drop_database(db: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def pipeline(commands: list[list[str]], out_path: Path) -> float:
    """Run commands joined by pipes (no shell), last one writing out_path; return seconds."""
    start = time.perf_counter()
    procs = []
    with open(out_path, "wb") as out:
        prev = None
        for i, cmd in enumerate(commands):
            last = i == len(commands) - 1
            proc = subprocess.Popen(
                cmd, stdin=prev, stdout=out if last else subprocess.PIPE, env=PG_ENV
            )
            if prev is not None:
                prev.close()  # so upstream sees SIGPIPE if downstream dies
            prev = proc.stdout
            procs.append(proc)
        codes = [p.wait() for p in procs]
        out.flush()
        os.fsync(out.fileno())
    if any(codes):
        raise RuntimeError(f"{commands} exited with {codes}")
    return time.perf_counter() - start


def engine_leg(db: str, out_dir: str, threads: str = "1") -> None:
    """Runs in a child process: one run_backup, prints JSON with seconds and peak RSS."""
    from backups.engine import BackupOptions, DestinationSpec, SourceSpec, run_backup
    from dr_portal.lib.keyring import parse_ring

    keys = parse_ring(base64.urlsafe_b64encode(b"b" * 32).decode())
    start = time.perf_counter()
    result = run_backup(
        SourceSpec("postgresql", {**PG, "database": db}),
        [DestinationSpec("local", "local", {"path": out_dir}, {})],
        BackupOptions(
            f"bench/{uuid.uuid4().hex}", compression="zstd", master_keys=keys, threads=int(threads)
        ),
    )
    seconds = time.perf_counter() - start
    if result.status != "succeeded":
        raise SystemExit(f"engine backup {result.status}: {result.error}")
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "stored": result.bytes_stored,
                "read": result.bytes_read,
                "rss_mb": rss_kb / 1024,
            }
        )
    )


def run_engine(db: str, out_dir: Path, threads: int) -> tuple[float, int, dict]:
    proc = subprocess.run(
        [sys.executable, __file__, "--engine-leg", db, str(out_dir), str(threads)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["seconds"], data["stored"], data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1000, help="table data to generate (MB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-db", action="store_true", help="do not drop the generated database")
    parser.add_argument(
        "--also-inline",
        action="store_true",
        help="also time the engine compressing inline (threads=0)",
    )
    parser.add_argument("--database", help="use this existing database instead of generating one")
    parser.add_argument(
        "--parallel", type=int, default=0, metavar="N", help="also time parallel dumps (-j N)"
    )
    parser.add_argument(
        "--engine-leg", nargs=3, metavar=("DB", "DIR", "THREADS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.engine_leg:
        engine_leg(*args.engine_leg)
        return

    db = args.database or f"bench_dr_{uuid.uuid4().hex[:10]}"
    work = Path(tempfile.mkdtemp(prefix="dr-bench-"))
    try:
        if not args.database:
            print(f"generating {db} (~{args.size_mb} MB)...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            create_database(db, args.size_mb)
            if args.parallel > 1:
                parallel_legs.split_tables(db, args.parallel)
            print(f"  took {time.perf_counter() - started:.0f} s", file=sys.stderr)
        db_size = int(psql(f"SELECT pg_database_size('{db}')"))

        dump = ["pg_dump", "-d", db]
        legs = {
            "pg_dump -Fc": lambda p: pipeline([[*dump, "-Fc"]], p),
            "pg_dump -Fc | gzip -9": lambda p: pipeline([[*dump, "-Fc"], ["gzip", "-9"]], p),
            "pg_dump -Fc -Z0 | zstd -3 | openssl aes-256-ctr": lambda p: pipeline(
                [
                    [*dump, "-Fc", "-Z0"],
                    ["zstd", "-3", "-q", "-c"],
                    ["openssl", "enc", "-aes-256-ctr", "-pbkdf2", "-pass", "pass:x"],
                ],
                p,
            ),
            "engine (zstd 3 + AES-256-GCM, local)": 1,
        }
        if args.also_inline:
            legs["engine, zstd inline (threads=0)"] = 0
        raw = work / "raw.dump"
        pipeline([[*dump, "-Fc", "-Z0"]], raw)  # warm-up, and the uncompressed dump size
        raw_size = raw.stat().st_size
        raw.unlink()

        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in legs}
        sizes: dict[str, int] = {}
        rss: list[float] = []
        names = list(legs)
        for round_no in range(args.repeat):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                out = work / "out"
                if isinstance(legs[name], int):
                    engine_dir = work / "engine"
                    seconds, stored, data = run_engine(db, engine_dir, legs[name])
                    rss.append(data["rss_mb"])
                    shutil.rmtree(engine_dir)
                else:
                    seconds = legs[name](out)
                    stored = out.stat().st_size
                    out.unlink()
                times[name].append(seconds)
                sizes[name] = stored
                print(
                    f"  round {round_no + 1}: {name}: {seconds:.2f} s, {stored / 1e6:.1f} MB",
                    file=sys.stderr,
                    flush=True,
                )

        shell = "pg_dump -Fc -Z0 | zstd -3 | openssl aes-256-ctr"
        shell_time = statistics.median(times[shell])
        print()
        print(
            f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}, {subprocess.run(['pg_dump', '--version'], capture_output=True, text=True).stdout.strip()}"
        )
        print(
            f"database: {db_size / 1e6:.0f} MB on disk, uncompressed custom dump {raw_size / 1e6:.0f} MB; "
            f"{args.repeat} rounds, order rotated each round"
        )
        print(
            f"load average (1 min) before/after the timed rounds: "
            f"{load_before:.1f} / {os.getloadavg()[0]:.1f} (other work on the machine skews seconds)"
        )
        print()
        print(
            "| pipeline | median s | runs (s) | MB/s (dump data) | stored MB | time vs shell | size vs shell |"
        )
        print("|---|---|---|---|---|---|---|")
        for name in names:
            med = statistics.median(times[name])
            runs = ", ".join(f"{t:.2f}" for t in times[name])
            print(
                f"| {name.replace('|', chr(92) + '|')} | {med:.2f} | {runs} | {raw_size / 1e6 / med:.0f} | {sizes[name] / 1e6:.1f} | "
                f"{med / shell_time:.2f}x | {sizes[name] / sizes[shell]:.3f}x |"
            )
        print()
        print(f"engine peak RSS: {max(rss):.0f} MB (max over runs; pg_dump not included)")
        if args.parallel > 1:
            parallel_legs.backup_legs(db, args.parallel, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.database and not args.keep_db:
            drop_database(db)
            print(f"dropped {db}", file=sys.stderr)


if __name__ == "__main__":
    main()
