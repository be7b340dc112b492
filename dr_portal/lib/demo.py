"""A Tool Hub-like SQLite database for the demo: workflows, executions, schedules, secrets.

Plain sqlite3, no Django: the demo writer process and tests use it too.
"""

import json
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, description TEXT,
    definition TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY, workflow_id INTEGER NOT NULL REFERENCES workflows(id),
    status TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    duration_ms INTEGER, output TEXT);
CREATE INDEX IF NOT EXISTS executions_workflow ON executions(workflow_id, started_at);
CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY, workflow_id INTEGER NOT NULL REFERENCES workflows(id),
    cron TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, next_run_at TEXT);
CREATE TABLE IF NOT EXISTS secrets (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL);
"""

WORKFLOWS = [
    ("nightly-report", "Build and mail the nightly usage report", "0 1 * * *"),
    ("sync-crm", "Synchronise contacts from the CRM", "*/15 * * * *"),
    ("rotate-logs", "Compress and ship application logs", "0 * * * *"),
    ("invoice-run", "Generate monthly invoices", "0 6 1 * *"),
    ("cleanup-tmp", "Remove temporary files older than a day", "30 3 * * *"),
    ("mcp-health", "Probe the MCP servers", "*/5 * * * *"),
    ("backup-audit", "Check that yesterday's backups exist", "0 7 * * *"),
    ("etl-orders", "Load orders into the warehouse", "0 */2 * * *"),
]
SECRETS = ["OPENAI_API_KEY", "SLACK_WEBHOOK", "CRM_TOKEN", "SMTP_PASSWORD", "S3_SECRET"]


def _now():
    return datetime.now(UTC)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=20)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def create_tool_hub(path: Path, executions: int = 2000, seed: int = 7) -> Path:
    """Create the database if missing; idempotent (existing rows are kept, not duplicated)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with connect(path) as conn:
        conn.executescript(SCHEMA)
        now = _now()
        for name, description, _cron in WORKFLOWS:
            definition = json.dumps({"steps": [{"tool": "shell", "run": f"{name}.sh"}]})
            conn.execute(
                "INSERT OR IGNORE INTO workflows (name, description, definition, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, description, definition, now.isoformat(), now.isoformat()),
            )
        ids = [r[0] for r in conn.execute("SELECT id FROM workflows ORDER BY id")]
        for wid, (_, _, cron) in zip(ids, WORKFLOWS, strict=True):
            exists = conn.execute(
                "SELECT 1 FROM schedules WHERE workflow_id = ?", (wid,)
            ).fetchone()
            if not exists:
                conn.execute(
                    "INSERT INTO schedules (workflow_id, cron, next_run_at) VALUES (?, ?, ?)",
                    (wid, cron, (now + timedelta(minutes=rng.randint(1, 600))).isoformat()),
                )
        for name in SECRETS:
            conn.execute(
                "INSERT OR IGNORE INTO secrets (name, value, updated_at) VALUES (?, ?, ?)",
                (name, "demo-" + "".join(rng.choices("abcdef0123456789", k=32)), now.isoformat()),
            )
        have = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
        rows = []
        for i in range(have, executions):
            started = now - timedelta(minutes=(executions - i) * 7)
            duration = rng.randint(200, 90_000)
            status = rng.choices(["succeeded", "failed"], weights=[95, 5])[0]
            rows.append(
                (
                    rng.choice(ids),
                    status,
                    started.isoformat(),
                    (started + timedelta(milliseconds=duration)).isoformat(),
                    duration,
                    f"{status}: processed {rng.randint(1, 5000)} items",
                )
            )
        conn.executemany(
            "INSERT INTO executions (workflow_id, status, started_at, finished_at, duration_ms, output)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    return path


def add_execution(conn: sqlite3.Connection, rng: random.Random | None = None):
    rng = rng or random.Random()
    ids = [r[0] for r in conn.execute("SELECT id FROM workflows")]
    now = _now()
    duration = rng.randint(200, 90_000)
    conn.execute(
        "INSERT INTO executions (workflow_id, status, started_at, finished_at, duration_ms, output)"
        " VALUES (?, 'succeeded', ?, ?, ?, 'ok')",
        (
            rng.choice(ids),
            now.isoformat(),
            (now + timedelta(milliseconds=duration)).isoformat(),
            duration,
        ),
    )
    conn.commit()


def keep_writing(path: Path, every_s: float = 5.0, stop=None):
    """The demo's 'application': adds an execution every few seconds until stopped."""
    conn = connect(path)
    rng = random.Random()
    try:
        while stop is None or not stop.is_set():
            add_execution(conn, rng)
            if stop is not None:
                stop.wait(every_s)
            else:
                time.sleep(every_s)
    finally:
        conn.close()
