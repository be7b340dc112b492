"""Scrub throughput: the scrub's read of S3 copies against a plain boto3 download, same run.

    .venv/bin/python bench/scrub_throughput.py [--size-mb 256] [--copies 4] [--repeat 3]

Starts moto's S3 server in its own process (over HTTP on loopback, so the server does not
share this process's interpreter), backs up --size-mb of files (half random, half text, so
zstd has something to do) in --copies artifacts with backups.engine.run_backup (zstd +
AES-256-GCM) to an S3 destination there, then times over the same stored objects,
alternating the order each round:
  portal: what backups.scrub.prove_copy does per copy: HEAD (exists), GetObject streamed
          through unpack_artifact (every GCM chunk authenticated, decompressed, SHA-256 of
          the stored bytes against the manifest) into nothing (the Django bookkeeping, two
          UPDATEs per copy, is left out)
  plain:  boto3's download_fileobj of each object into nothing: the AWS CLI's `aws s3 cp`
          path (s3transfer, 8 MiB ranged GETs on 10 threads), no verification at all
Prints the median seconds, MB/s of stored bytes and the ratio portal / plain.
"""

import argparse
import base64
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY_ID, SECRET = "bench-key-id", "bench-secret-key-value"
MIB = 1024 * 1024


class Discard:
    def write(self, data) -> int:
        return len(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    server = ROOT / ".venv" / "bin" / "moto_server"
    if not server.exists():
        server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def make_files(root: Path, size_mb: int) -> None:
    """Half random (incompressible) and half log-like text, in 16 MiB files."""
    line = b"2026-01-01T00:00:00Z worker-7 step 3 finished: processed 4242 records ok\n"
    left, index = size_mb * MIB, 0
    while left > 0:
        size = min(16 * MIB, left)
        half = size // 2
        text = (line * (half // len(line) + 1))[:half]
        (root / f"part-{index:04d}.bin").write_bytes(os.urandom(size - half) + text)
        left, index = left - size, index + 1


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def portal_scrub(spec, copies, keys) -> int:
    from backups.engine import open_destination, unpack_artifact

    store = open_destination(spec)
    read = 0
    for location, sha256, _ in copies:
        if not store.exists(location):
            raise SystemExit(f"{location} missing")
        reader = store.open_read(location)
        try:
            info = unpack_artifact(reader, Discard(), keys, expected_sha256=sha256)
        finally:
            reader.close()
        read += int(info["bytes_in"])
    return read


def plain_download(endpoint, bucket, copies) -> int:
    client = s3_client(endpoint)
    read = 0
    for _, _, key in copies:
        sink = Discard()
        counted = []
        client.download_fileobj(bucket, key, sink, Callback=counted.append)
        read += sum(counted)
    return read


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="source data in all copies")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from backups.engine import BackupOptions, DestinationSpec, SourceSpec, run_backup
    from dr_portal.lib.keyring import parse_ring

    keys = parse_ring(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = start_moto(port)
    try:
        bucket = f"bench-scrub-{uuid.uuid4().hex[:8]}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        spec = DestinationSpec(
            "bench",
            "s3",
            {"bucket": bucket, "endpoint_url": endpoint, "addressing_style": "path"},
            {"access_key_id": KEY_ID, "secret_access_key": SECRET},
        )
        copies, stored = [], 0
        with tempfile.TemporaryDirectory(prefix="bench-scrub-") as work:
            for index in range(args.copies):
                src = Path(work) / f"src-{index}"
                src.mkdir()
                make_files(src, max(1, args.size_mb // args.copies))
                result = run_backup(
                    SourceSpec("files", {"path": str(src)}),
                    [spec],
                    BackupOptions(
                        f"bench/{uuid.uuid4().hex}", compression="zstd", master_keys=keys
                    ),
                )
                if result.status != "succeeded":
                    raise SystemExit(f"backup failed: {result.error}")
                [copy] = result.copies
                key = copy.location.split("/", 3)[3]
                copies.append((copy.location, result.sha256, key))
                stored += result.bytes_stored
                for path in src.iterdir():
                    path.unlink()
        print(
            f"{args.copies} copies, {args.size_mb} MB of files, {stored / MIB:.1f} MiB stored "
            f"(zstd + AES-256-GCM) on moto's S3 server over HTTP, {args.repeat} rounds"
        )
        times = {"portal": [], "plain": []}
        for round_ in range(args.repeat):
            order = ["portal", "plain"] if round_ % 2 == 0 else ["plain", "portal"]
            for name in order:
                start = time.perf_counter()
                if name == "portal":
                    read = portal_scrub(spec, copies, keys)
                else:
                    read = plain_download(endpoint, bucket, copies)
                times[name].append(time.perf_counter() - start)
                if read != stored:
                    raise SystemExit(f"{name} read {read} bytes, expected {stored}")
        median = {name: statistics.median(values) for name, values in times.items()}
        for name in ("plain", "portal"):
            rounds = ", ".join(f"{t:.2f}" for t in times[name])
            print(
                f"{name:>6}: median {median[name]:.2f} s ({stored / MIB / median[name]:.0f} "
                f"MiB/s), rounds {rounds}"
            )
        print(f" ratio: portal / plain = {median['portal'] / median['plain']:.2f}")
        print(
            f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average at the "
            f"end: {os.getloadavg()[0]:.1f} (other work on the machine skews single runs)"
        )
    finally:
        os.killpg(moto.pid, 15)
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
