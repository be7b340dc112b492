"""The portal's report signing key: detached Ed25519 signatures over report PDFs.

The key comes from DR_SIGNING_KEY (a PKCS#8 PEM private key, or the base64 of a raw 32-byte
Ed25519 seed) or is generated once into var/dr_signing_key (mode 0600, never backed up:
dr_portal.lib.paths). A signature is the raw 64 bytes Ed25519 gives, written beside the PDF
as `<name>.pdf.sig`; anyone holding the public key can check it without the portal:

    openssl pkeyutl -verify -pubin -inkey signing-key.pem -rawin -in report.pdf \
        -sigfile report.pdf.sig

The fingerprint printed in every report is the SHA-256 of the raw 32-byte public key.
"""

import base64
import binascii
import hashlib
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from dr_portal.lib.bootstrap import generated_value

KEY_FILE = "dr_signing_key"


class SigningKeyError(Exception):
    """DR_SIGNING_KEY is set but is not an Ed25519 private key (the value is never shown)."""


def _new_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _parse(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            "DR_SIGNING_KEY must be an Ed25519 private key: a PKCS#8 PEM, or the base64 of its "
            "32-byte seed (e.g. from `openssl genpkey -algorithm ed25519`)."
        )
    return key


@lru_cache(maxsize=4)
def _load(env_value: str, var_dir: str) -> Ed25519PrivateKey:
    if env_value:
        return _parse(env_value)
    try:
        text = generated_value(var_dir, KEY_FILE, _new_pem)
    except FileExistsError:  # another process generated it a moment ago
        text = generated_value(var_dir, KEY_FILE, _new_pem)
    return _parse(text)


def private_key() -> Ed25519PrivateKey:
    return _load(getattr(settings, "DR_SIGNING_KEY", "") or "", str(settings.VAR_DIR))


def public_key() -> Ed25519PublicKey:
    return private_key().public_key()


def public_pem(key: Ed25519PublicKey | None = None) -> str:
    key = key or public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def fingerprint(key: Ed25519PublicKey | None = None) -> str:
    """SHA-256 of the raw public key, as colon-free lowercase hex."""
    key = key or public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(data: bytes) -> bytes:
    return private_key().sign(data)


def load_public_pem(text: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(text)
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("that public key is not an Ed25519 key")
    return key


def verify(data: bytes, signature: bytes, key: Ed25519PublicKey | None = None) -> bool:
    key = key or public_key()
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
