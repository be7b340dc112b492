"""manage.py verify_report FILE [--sig FILE.sig] [--public-key signing-key.pem] [--show-key]

Checks a report PDF's detached Ed25519 signature: from FILE.sig beside it, or from the
portal's register of signed reports (found by the PDF's SHA-256) when there is no .sig.
The key is this portal's signing key unless --public-key names another (an auditor's copy).
Prints the key fingerprint; exit status 1 when the signature does not match.
"""

import hashlib
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dr_portal.lib import signing
from dr_portal.models import SignedReport

SIGNATURE_BYTES = 64


class Command(BaseCommand):
    help = "Check the Ed25519 signature of a compliance, incident or drill report PDF."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="the report PDF")
        parser.add_argument("--sig", help="the detached signature (default: FILE.sig)")
        parser.add_argument("--public-key", help="PEM public key to check with (default: ours)")
        parser.add_argument(
            "--show-key", action="store_true", help="print this portal's public key (PEM)"
        )

    def handle(self, *args, file=None, sig=None, public_key=None, show_key=False, **options):
        key = self._key(public_key)
        if show_key:
            self.stdout.write(signing.public_pem(key), ending="")
        if not file:
            if show_key:
                return
            raise CommandError("Name the report PDF to check.")
        data = _read(file)
        digest = hashlib.sha256(data).hexdigest()
        signature, where = self._signature(file, sig, digest)
        self.stdout.write(f"file    {file}  sha256 {digest}")
        self.stdout.write(f"key     Ed25519, fingerprint {signing.fingerprint(key)}")
        self.stdout.write(f"sig     {where}")
        if len(signature) == SIGNATURE_BYTES and signing.verify(data, signature, key):
            self.stdout.write(self.style.SUCCESS("OK: the signature is valid for this file"))
            return
        self.stdout.write(
            self.style.ERROR(
                "FAILED: the signature does not match: the file was changed, or it was "
                "signed with another key"
            )
        )
        sys.exit(1)

    def _key(self, public_key):
        try:
            if public_key:
                return signing.load_public_pem(_read(public_key))
            return signing.public_key()
        except (ValueError, signing.SigningKeyError) as exc:
            raise CommandError(f"Cannot use the public key: {exc}") from None

    def _signature(self, file, sig, digest) -> tuple[bytes, str]:
        path = sig or f"{file}.sig"
        if sig or Path(path).exists():
            return _read(path), path
        issued = SignedReport.objects.filter(pdf_sha256=digest).first()
        if issued is None:
            raise CommandError(
                f"No signature: {path} does not exist and this portal issued no PDF with "
                f"SHA-256 {digest}."
            )
        return issued.signature_bytes, f"register #{issued.pk} ({issued})"


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
