"""The `--parallel N` legs of backup_throughput.py and restore_throughput.py.

A parallel dump only pays with several tables (one table is one pg_dump job), so with
--parallel N the generated `executions` table is split into N tables of equal size
(`executions_1..N`, each with the same indexes) behind a view `executions` that the checks
query; every leg of the run, serial and parallel, then reads the same data. Legs:

  backup:  pg_dump -Fd -j N                          (the plain tool, its own gzip)
           pg_dump -Fd -j N -Z0, then tar | zstd -3 | openssl aes-256-ctr
                                                     (the same stored form by hand)
           engine run_backup with parallel N         (zstd 3 + AES-256-GCM, a subprocess)
  restore: createdb + pg_restore -j N of the pg_dump -Fd directory + dropdb
           the portal's restore test of the engine's parallel artifact: fetch, verify,
           decrypt and unpack into a dump directory, scratch database, pg_restore -j N,
           checks, drop

Each leg prints the 1-minute load average before and after it: seconds taken on a loaded
machine are not the engine's own cost (the lead runs these on an idle machine).
"""

import base64
import json
import os
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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
PG_ENV = {**os.environ, "PGHOST": PG["host"], "PGPORT": str(PG["port"]), "PGUSER": PG["user"]}
KEY = base64.urlsafe_b64encode(b"p" * 32).decode()


def _psql(sql: str, db: str) -> str:
    return subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", db, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
        env=PG_ENV,
    ).stdout.strip()


def split_tables(db: str, parts: int) -> None:
    """executions -> executions_1..parts (rows by id modulo, same indexes) + a view."""
    indexes = _psql(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'executions' "
        "AND indexname <> 'executions_pkey'",
        db,
    ).splitlines()
    for k in range(1, parts + 1):
        table = f"executions_{k}"
        _psql(
            f"CREATE TABLE {table} AS SELECT * FROM executions WHERE id % {parts} = {k - 1};"
            f"ALTER TABLE {table} ADD PRIMARY KEY (id)",
            db,
        )
        for i, definition in enumerate(indexes):
            on = definition.split(" USING ", 1)[1]
            _psql(f"CREATE INDEX {table}_ix{i} ON {table} USING {on}", db)
    union = " UNION ALL ".join(f"SELECT * FROM executions_{k}" for k in range(1, parts + 1))
    _psql(f"DROP TABLE executions; CREATE VIEW executions AS {union}", db)
    _psql("VACUUM ANALYZE", db)  # not inside the transaction of a multi-statement -c


def _load() -> float:
    return os.getloadavg()[0]


def _timed(fn) -> tuple[float, float, float]:
    """(seconds, load before, load after) of fn()."""
    before = _load()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, before, _load()


def _run(args: list[str], **kwargs) -> None:
    subprocess.run(args, check=True, env=PG_ENV, **kwargs)


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _shell_tar_pipeline(dump_dir: Path, out: Path) -> None:
    """tar | zstd -3 | openssl of the dump directory, toc.dat first as the engine stores it."""
    names = sorted(os.listdir(dump_dir), key=lambda n: (n != "toc.dat", n))
    with open(out, "wb") as sink:
        tar = subprocess.Popen(
            ["tar", "-cf", "-", "-C", str(dump_dir), *names], stdout=subprocess.PIPE
        )
        zstd = subprocess.Popen(
            ["zstd", "-3", "-q", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE
        )
        tar.stdout.close()
        enc = subprocess.Popen(
            ["openssl", "enc", "-aes-256-ctr", "-pbkdf2", "-pass", "pass:x"],
            stdin=zstd.stdout,
            stdout=sink,
        )
        zstd.stdout.close()
        codes = [p.wait() for p in (tar, zstd, enc)]
    if any(codes):
        raise RuntimeError(f"tar | zstd | openssl exited with {codes}")


def engine_leg(db: str, out_dir: str, parallel: str) -> None:
    """In a child process: one parallel run_backup; prints JSON (seconds, sizes, peak RSS)."""
    from backups.engine import BackupOptions, DestinationSpec, SourceSpec, run_backup
    from dr_portal.lib.keyring import parse_ring

    scratch = tempfile.mkdtemp(prefix="dr-bench-staging-", dir=out_dir)
    start = time.perf_counter()
    result = run_backup(
        SourceSpec("postgresql", {**PG, "database": db, "parallel": int(parallel)}),
        [DestinationSpec("local", "local", {"path": os.path.join(out_dir, "store")}, {})],
        BackupOptions(
            f"bench/{uuid.uuid4().hex}", master_keys=parse_ring(KEY), scratch_dir=scratch
        ),
    )
    seconds = time.perf_counter() - start
    if result.status != "succeeded":
        raise SystemExit(f"engine backup {result.status}: {result.error}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    copy = result.copies[0]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "stored": result.bytes_stored,
                "read": result.bytes_read,
                "rss_mb": rss_mb,
                "location": copy.location,
                "sha256": result.sha256,
            }
        )
    )


def _engine_backup(db: str, out_dir: Path, parallel: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--engine-leg", db, str(out_dir), str(parallel)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(label, runs, sizes, base) -> str:
    med = statistics.median(s for s, _, _ in runs)
    loads = ", ".join(f"{b:.1f}/{a:.1f}" for _, b, a in runs)
    times = ", ".join(f"{s:.2f}" for s, _, _ in runs)
    size = f"{sizes / 1e6:.1f}" if sizes else ""
    label = label.replace("|", "\\|")  # a shell pipe inside a markdown cell
    return f"| {label} | {med:.2f} | {times} | {size} | {med / base:.2f}x | {loads} |"


HEADER = (
    "| leg | median s | runs (s) | stored MB | vs plain | load 1 min before/after each run |\n"
    "|---|---|---|---|---|---|"
)


def backup_legs(db: str, parallel: int, repeat: int) -> None:
    """Time the parallel backup legs against each other; print a markdown table."""
    work = Path(tempfile.mkdtemp(prefix="dr-bench-parallel-"))
    legs = ["plain -Fd", "shell", "engine"]
    runs: dict[str, list] = {name: [] for name in legs}
    sizes: dict[str, int] = {}
    rss = []
    dump = ["pg_dump", "-d", db, "-Fd", f"-j{parallel}"]
    try:
        for round_no in range(repeat):
            for name in legs[round_no % 3 :] + legs[: round_no % 3]:
                out = work / "out"
                if name == "plain -Fd":
                    runs[name].append(_timed(lambda out=out: _run([*dump, "-f", str(out)])))
                    sizes[name] = _tree_size(out)
                elif name == "shell":

                    def shell(out=out):
                        _run([*dump, "-Z0", "-f", str(out)])
                        _shell_tar_pipeline(out, work / "shell.enc")

                    runs[name].append(_timed(shell))
                    sizes[name] = (work / "shell.enc").stat().st_size
                    (work / "shell.enc").unlink()
                else:
                    out.mkdir()
                    before = _load()
                    data = _engine_backup(db, out, parallel)
                    runs[name].append((data["seconds"], before, _load()))
                    sizes[name], rss = data["stored"], [*rss, data["rss_mb"]]
                shutil.rmtree(out, ignore_errors=True)
                seconds, before, after = runs[name][-1]
                print(
                    f"  parallel round {round_no + 1}: {name}: {seconds:.2f} s "
                    f"(load {before:.1f} -> {after:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
        base = statistics.median(s for s, _, _ in runs["plain -Fd"])
        print(f"\nparallel dumps, N={parallel} ({parallel} tables of equal size):\n")
        print(HEADER)
        labels = {
            "plain -Fd": f"`pg_dump -Fd -j {parallel}` (built-in gzip)",
            "shell": f"`pg_dump -Fd -j {parallel} -Z0`, then `tar | zstd -3 | openssl`",
            "engine": f"engine, parallel {parallel} (zstd 3 + AES-256-GCM, local)",
        }
        for name in legs:
            print(_row(labels[name], runs[name], sizes.get(name, 0), base))
        shell = statistics.median(s for s, _, _ in runs["shell"])
        engine = statistics.median(s for s, _, _ in runs["engine"])
        print(f"\nengine / shell (same stored form): {engine / shell:.2f}x")
        print(f"engine peak RSS (parallel): {max(rss):.0f} MB (pg_dump not included)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _plain_restore(dump_dir: Path, jobs: int) -> None:
    db = f"bench_plain_{uuid.uuid4().hex[:8]}"
    _psql(f'CREATE DATABASE "{db}"', "postgres")
    try:
        _run(["pg_restore", "--no-owner", f"--jobs={jobs}", "-d", db, str(dump_dir)])
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', "postgres")


def _portal_restore(location: str, sha256: str, jobs: int, checks, previous) -> dict:
    """The restore test's engine path for a parallel artifact; returns its phases."""
    from backups.engine import unpack_artifact
    from dr_portal.lib.keyring import parse_ring
    from recovery.engine.dumpdir import DumpDirWriter
    from recovery.engine.pg import PgServer
    from recovery.engine.verify import Phases, verify_postgres

    phases = Phases()
    with tempfile.TemporaryDirectory(prefix="dr-bench-restore-") as tmp:
        directory = os.path.join(tmp, "dump")
        os.mkdir(directory, 0o700)
        with phases.phase("fetch and verify"), open(location, "rb") as reader:
            writer = DumpDirWriter(directory)
            unpack_artifact(reader, writer, parse_ring(KEY), expected_sha256=sha256)
            writer.close()
        result = verify_postgres(
            directory,
            PgServer(),
            checks,
            previous,
            phases,
            jobs=jobs,
            scratch_prefix="dr_bench_scratch_",
        )
    assert all(c.passed for c in result.checks), result.checks
    return {p["name"]: p["seconds"] for p in phases.items}


def restore_legs(db: str, parallel: int, repeat: int, checks: list[dict], previous=None) -> None:
    """Time pg_restore -j N of a plain -Fd dump against the portal's restore test of the
    engine's parallel artifact of the same database; print a markdown table."""
    work = Path(tempfile.mkdtemp(prefix="dr-bench-parallel-restore-"))
    try:
        plain_dir = work / "plain"
        _run(["pg_dump", "-d", db, "-Fd", f"-j{parallel}", "-f", str(plain_dir)])
        (work / "engine").mkdir()
        artifact = _engine_backup(db, work / "engine", parallel)
        runs: dict[str, list] = {"plain": [], "portal": []}
        phases = []
        for round_no in range(repeat):
            order = ["plain", "portal"] if round_no % 2 == 0 else ["portal", "plain"]
            for name in order:
                if name == "plain":
                    runs[name].append(_timed(lambda: _plain_restore(plain_dir, parallel)))
                else:
                    runs[name].append(
                        _timed(
                            lambda: phases.append(
                                _portal_restore(
                                    artifact["location"],
                                    artifact["sha256"],
                                    parallel,
                                    checks,
                                    previous,
                                )
                            )
                        )
                    )
                seconds, before, after = runs[name][-1]
                print(
                    f"round {round_no + 1} parallel {name:6s} {seconds:7.1f} s "
                    f"(load {before:.1f} -> {after:.1f})",
                    flush=True,
                )
        base = statistics.median(s for s, _, _ in runs["plain"])
        print(f"\nparallel restores, N={parallel} ({parallel} tables of equal size):\n")
        print(HEADER)
        plain_mb = _tree_size(plain_dir)
        print(
            _row(
                f"plain `pg_restore -j {parallel}` of `pg_dump -Fd`", runs["plain"], plain_mb, base
            )
        )
        print(
            _row(
                f"portal restore test of the parallel artifact (unpack, `pg_restore -j {parallel}`, checks, drop)",
                runs["portal"],
                artifact["stored"],
                base,
            )
        )
        phase_med = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
        print(
            "portal phases (median s): " + ", ".join(f"{k} {v:.1f}" for k, v in phase_med.items())
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == ["--engine-leg"]:
    engine_leg(*sys.argv[2:5])
