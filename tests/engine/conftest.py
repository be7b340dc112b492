"""Fixtures for engine tests: key rings, throwaway PostgreSQL databases, a moto S3 server."""

import os
import subprocess
import uuid
from dataclasses import dataclass

import pytest

from backups.engine import DestinationSpec
from dr_portal.lib.keyring import parse_ring
from tests.environment import OLD_MASTER_KEY, TEST_MASTER_KEY
from tests.marks import needs

PG_ENV = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}


@pytest.fixture
def keys():
    return parse_ring(TEST_MASTER_KEY)


@pytest.fixture
def other_keys():
    return parse_ring(OLD_MASTER_KEY)


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", db, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
        env=PG_ENV,
    ).stdout.strip()


@pytest.fixture
@needs("postgres")
def pg_databases():
    """make(suffix) -> a new empty database name; every one is dropped afterwards."""
    made = []

    def make(label: str = "src") -> str:
        name = f"dr_engine_{label}_{uuid.uuid4().hex[:10]}"
        psql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class S3Server:
    url: str

    def spec(self, bucket: str, name: str = "offsite", **config) -> DestinationSpec:
        return DestinationSpec(
            name=name,
            kind="s3",
            config={
                "bucket": bucket,
                "prefix": "dr/",
                "region": "us-east-1",
                "endpoint_url": self.url,
                "storage_class": "STANDARD",
                "part_size": 256 * 1024,
                **config,
            },
            secrets={
                "access_key_id": "testing-key-id",
                "secret_access_key": "testing-secret-value",
            },
        )

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id="testing-key-id",
            aws_secret_access_key="testing-secret-value",
        )


@pytest.fixture(scope="session")
def s3_server():
    import moto.s3.models
    from moto.server import ThreadedMotoServer

    # Small parts in tests (AWS's minimum is 5 MiB); moto reads this module constant.
    moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 1024
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server):
    """The server with a fresh bucket; yields (server, bucket)."""
    bucket = f"dr-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return s3_server, bucket


def bucket_state(server: S3Server, bucket: str) -> tuple[list[str], list[str]]:
    """(object keys, in-progress multipart upload keys)."""
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return keys, uploads


def local_spec(path, name: str = "local") -> DestinationSpec:
    return DestinationSpec(name=name, kind="local", config={"path": str(path)}, secrets={})


def files_under(path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def fill_big(db: str, megabytes: int = 24) -> None:
    """Mostly incompressible rows, so the dump outlasts the pipeline's buffers (~10 MiB)."""
    rows = megabytes * 1_000_000 // 100
    psql(
        "CREATE TABLE blobs (id int PRIMARY KEY, a text, b text, c text);"
        "INSERT INTO blobs SELECT g, md5(g::text), md5((g * 3)::text), 'plaintext-marker-' || g"
        f" FROM generate_series(1, {rows}) g;",
        db,
    )


@pytest.fixture(scope="session")
def big_pg_db():
    """A ~24 MB database shared by the fault tests (which only read it)."""
    name = f"dr_engine_big_{uuid.uuid4().hex[:10]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        fill_big(name)
        yield name
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_spec(db: str, password: str = ""):
    from backups.engine import SourceSpec

    return SourceSpec(
        "postgresql",
        {"host": "127.0.0.1", "port": 5432, "database": db, "user": "postgres"},
        password,
    )


def pg_dump_children() -> list[int]:
    """pids of pg_dump processes started by this test process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if comm == "pg_dump" and ppid == os.getpid():
            found.append(int(entry))
    return found
