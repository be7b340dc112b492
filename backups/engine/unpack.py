"""The no-portal restore command: verify, decrypt and decompress an artifact.

    python -m backups.engine.unpack ARTIFACT|- [-o OUT] [--key-file FILE] [--sha256 HEX]
    python -m backups.engine.unpack --info ARTIFACT      # which key id and compression

Needs only this checkout's Python packages and the key ring (DR_ENCRYPTION_KEYS or
--key-file): no database, no Django settings. OUT is written under a temporary name and
renamed only after every check passed, so a failed unpack never leaves a partial OUT.
"""

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

from dr_portal.lib.keyring import KeyRingError, parse_ring

from .crypto import read_fields
from .destinations import MANIFEST_SUFFIX
from .errors import ArtifactError
from .unpacking import unpack_artifact

# --- command line -------------------------------------------------------------------


def _load_ring(key_file: str | None) -> list:
    text = Path(key_file).read_text() if key_file else os.environ.get("DR_ENCRYPTION_KEYS", "")
    text = text.replace("\n", ",").strip()
    return parse_ring(text) if text.strip(",") else []


def _expected_from_manifest(artifact: str) -> str | None:
    manifest = Path(artifact + MANIFEST_SUFFIX)
    if not manifest.is_file():
        return None
    try:
        return json.loads(manifest.read_text()).get("sha256")
    except (OSError, ValueError):
        return None


def _info(artifact: str) -> int:
    """Which key and compression an artifact needs; no key required."""
    try:
        with open(artifact, "rb") if artifact != "-" else sys.stdin.buffer as reader:
            _, fields = read_fields(reader)
    except ArtifactError as exc:
        print(f"unpack: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"unpack: cannot open {artifact}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(fields, indent=2, sort_keys=True))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backups.engine.unpack",
        description="Verify, decrypt and decompress a DR Portal artifact to its standard form "
        "(pg_dump custom archive, SQLite file or tar).",
    )
    parser.add_argument("artifact", help="artifact file, or - for standard input")
    parser.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    parser.add_argument(
        "--key-file", help="file holding the key ring (default: $DR_ENCRYPTION_KEYS)"
    )
    parser.add_argument(
        "--sha256",
        help="expected SHA-256 of the stored bytes (default: from ARTIFACT.manifest.json)",
    )
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument(
        "--info", action="store_true", help="print the header fields (key id, compression) and stop"
    )
    return parser


def _fail(message: str, code: int = 1) -> int:
    print(f"unpack: {message}", file=sys.stderr)
    return code


def _unpack_to_file(source, final: Path, keys, expected) -> dict:
    """Unpack into a private temporary file beside `final`, then move it into place."""
    tmp = final.with_name(f".{final.name}.unpack-{secrets.token_hex(4)}")
    try:
        # Decrypted data: 0600 whatever the umask, exclusive, never through a planted link.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(tmp, flags, 0o600), "wb") as out:
            info = unpack_artifact(source, out, keys, expected)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
        tmp = None
        return info
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _unpack(args, source, keys, expected) -> dict | int:
    """The unpacked artifact's info, or the exit status when refused."""
    if args.output == "-":
        if sys.stdout.isatty():
            return _fail("refusing to write binary data to a terminal; use -o FILE", 2)
        # Streaming to a pipe cannot be undone: the exit status is the verdict.
        info = unpack_artifact(source, sys.stdout.buffer, keys, expected)
        sys.stdout.buffer.flush()
        return info
    final = Path(args.output)
    if final.exists() and not args.force:
        return _fail(f"{final} exists (use --force to replace it)", 2)
    return _unpack_to_file(source, final, keys, expected)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.info:
        return _info(args.artifact)
    try:
        keys = _load_ring(args.key_file)
    except (OSError, KeyRingError) as exc:
        return _fail(f"cannot load the key ring: {exc}", 2)
    expected = args.sha256
    if expected is None and args.artifact != "-":
        expected = _expected_from_manifest(args.artifact)

    try:
        source = sys.stdin.buffer if args.artifact == "-" else open(args.artifact, "rb")  # noqa: SIM115
    except OSError as exc:
        return _fail(f"cannot open {args.artifact}: {exc.strerror or exc}", 2)
    try:
        info = _unpack(args, source, keys, expected)
    except ArtifactError as exc:
        hint = "" if keys else " (no key ring: set DR_ENCRYPTION_KEYS or pass --key-file)"
        return _fail(f"verification failed: {exc}{hint if 'key ring' in str(exc) else ''}")
    except OSError as exc:
        return _fail(f"I/O error: {exc.strerror or exc}", 2)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    if isinstance(info, int):
        return info
    checked = "checked against the manifest" if expected else "no manifest to compare"
    print(
        f"unpack: ok, {info['bytes_in']} bytes verified ({info['compression']}, "
        f"{'encrypted with key ' + info['key_id'] if info['encrypted'] else 'not encrypted'}), "
        f"{info['bytes_out']} bytes written; sha256 {info['sha256']} ({checked})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
