"""The master key ring (DR_ENCRYPTION_KEYS, newest first) and what is derived from it.

Each master key is 32 random bytes, urlsafe-base64 encoded. Its id is a short
fingerprint, so artifacts and secrets name the key that sealed them without a
registry. Separate subkeys are derived for database secrets (Fernet) and for
wrapping artifact data keys, so one use can never be confused with the other.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class KeyRingError(Exception):
    """The key ring is missing, malformed, or lacks the key a secret was sealed with."""


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    material: bytes

    def derive(self, purpose: str) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            self.material
        )


def key_id_for(material: bytes) -> str:
    return hashlib.sha256(b"dr-portal key id:" + material).hexdigest()[:12]


def parse_ring(text: str) -> list[MasterKey]:
    """Parse 'key1,key2' (newest first); raise KeyRingError naming the bad entry."""
    keys = []
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
        try:
            material = base64.urlsafe_b64decode(entry.encode())
        except (binascii.Error, ValueError):
            material = b""
        if len(material) != 32:
            raise KeyRingError(
                f"DR_ENCRYPTION_KEYS entry {position} is not 32 bytes of urlsafe base64"
            )
        keys.append(MasterKey(key_id_for(material), material))
    if not keys:
        raise KeyRingError("DR_ENCRYPTION_KEYS is empty")
    return keys


def ring() -> list[MasterKey]:
    # The engines import this module outside Django (unpack CLI): settings load when asked.
    from django.conf import settings  # noqa: PLC0415

    return parse_ring(settings.DR_ENCRYPTION_KEYS)


def newest() -> MasterKey:
    return ring()[0]


def by_id(key_id: str, keys: list[MasterKey] | None = None) -> MasterKey:
    for key in keys if keys is not None else ring():
        if key.key_id == key_id:
            return key
    raise KeyRingError(
        f"master key {key_id} is not in DR_ENCRYPTION_KEYS (was it rotated out of the ring?)"
    )


# --- Secrets stored in the portal's database --------------------------------


def _fernet(keys: list[MasterKey]) -> MultiFernet:
    return MultiFernet(
        [Fernet(base64.urlsafe_b64encode(k.derive("dr-portal secrets v1"))) for k in keys]
    )


def seal(plaintext: str, keys: list[MasterKey] | None = None) -> str:
    return _fernet(keys or ring()).encrypt(plaintext.encode()).decode()


def unseal(token: str, keys: list[MasterKey] | None = None) -> str:
    try:
        return _fernet(keys or ring()).decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyRingError(
            "a stored secret cannot be decrypted with DR_ENCRYPTION_KEYS: "
            "the key that sealed it is missing or wrong"
        ) from None


def reseal(token: str, keys: list[MasterKey] | None = None) -> str:
    """Re-encrypt a sealed secret with the newest key (MultiFernet.rotate)."""
    try:
        return _fernet(keys or ring()).rotate(token.encode()).decode()
    except InvalidToken:
        raise KeyRingError(
            "a stored secret cannot be decrypted with DR_ENCRYPTION_KEYS: "
            "the key that sealed it is missing or wrong"
        ) from None


def sealed_with_newest(token: str, keys: list[MasterKey] | None = None) -> bool:
    keys = keys or ring()
    try:
        Fernet(base64.urlsafe_b64encode(keys[0].derive("dr-portal secrets v1"))).decrypt(
            token.encode()
        )
        return True
    except InvalidToken:
        return False
