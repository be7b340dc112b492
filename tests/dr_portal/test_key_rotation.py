"""Secrets at rest: rotation re-encrypts rows, old artifacts stay readable, wrong keys say so."""

import io
import sqlite3

import pytest
from django.core.management import CommandError, call_command

from backups.engine import (
    ArtifactError,
    BackupOptions,
    DestinationSpec,
    SourceSpec,
    open_destination,
    run_backup,
    unpack_artifact,
)
from backups.models import Destination
from dr_portal.fields import Secret
from dr_portal.lib import keyring
from tests.environment import OLD_MASTER_KEY, TEST_MASTER_KEY
from tests.factories import DestinationFactory

NEW_RING = f"{TEST_MASTER_KEY},{OLD_MASTER_KEY}"


@pytest.fixture
def old_secret(settings, db):
    settings.DR_ENCRYPTION_KEYS = OLD_MASTER_KEY
    dest = DestinationFactory(
        name="offsite",
        kind="s3",
        bucket="b",
        access_key_id="AKIAOLD",
        secret_access_key="s3cr3t-old",
    )
    return dest


def token_of(dest, field="secret_access_key"):
    return getattr(Destination.objects.get(pk=dest.pk), field).token


def test_rotate_keys_reencrypts_every_secret_and_is_safe_to_rerun(settings, old_secret):
    settings.DR_ENCRYPTION_KEYS = NEW_RING
    before = token_of(old_secret)
    assert not keyring.sealed_with_newest(before)

    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "re-encrypted 2 secrets" in out.getvalue()
    after = Destination.objects.get(pk=old_secret.pk)
    assert keyring.sealed_with_newest(after.secret_access_key.token)
    assert after.secret_access_key.reveal() == "s3cr3t-old"
    assert after.access_key_id.reveal() == "AKIAOLD"

    # The old key can now leave the ring; a second run has nothing to do.
    settings.DR_ENCRYPTION_KEYS = TEST_MASTER_KEY
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "re-encrypted 0 secrets" in out.getvalue() and "2 already current" in out.getvalue()
    assert Destination.objects.get(pk=old_secret.pk).secret_access_key.reveal() == "s3cr3t-old"


def test_interrupted_rotation_completes_on_rerun(settings, old_secret):
    settings.DR_ENCRYPTION_KEYS = NEW_RING
    # As if a first run died after rewriting one field of the row.
    Destination.objects.filter(pk=old_secret.pk).update(
        access_key_id=Secret(keyring.reseal(token_of(old_secret, "access_key_id")))
    )
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "re-encrypted 1 secrets" in out.getvalue()
    assert "1 already current" in out.getvalue()


def test_wrong_key_gives_a_clear_error_not_the_ciphertext(settings, old_secret):
    settings.DR_ENCRYPTION_KEYS = TEST_MASTER_KEY  # the old key is gone
    dest = Destination.objects.get(pk=old_secret.pk)
    assert str(dest.secret_access_key) == "••••••"
    with pytest.raises(keyring.KeyRingError, match="missing or wrong") as excinfo:
        dest.secret_access_key.reveal()
    assert dest.secret_access_key.token not in str(excinfo.value)
    with pytest.raises(CommandError, match="missing or wrong"):
        call_command("rotate_keys", stdout=io.StringIO())


def test_secret_never_rendered_in_admin(superuser_client, old_secret, settings):
    settings.DR_ENCRYPTION_KEYS = NEW_RING
    page = superuser_client.get(
        f"/admin/backups/destination/{old_secret.pk}/change/"
    ).content.decode()
    assert "s3cr3t-old" not in page
    assert token_of(old_secret) not in page


def test_old_artifact_stays_readable_after_rotation(tmp_path, settings):
    db_file = tmp_path / "app.db"
    with sqlite3.connect(db_file) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('row-before-rotation')")
    old_ring = keyring.parse_ring(OLD_MASTER_KEY)
    dest = DestinationSpec(
        name="local", kind="local", config={"path": str(tmp_path / "store")}, secrets={}
    )
    result = run_backup(
        SourceSpec(kind="sqlite", config={"path": str(db_file)}),
        [dest],
        BackupOptions(artifact_key="app/old", master_keys=old_ring),
    )
    assert result.status == "succeeded", result.error
    location = result.copies[0].location

    def unpack(ring_text):
        with open_destination(dest).open_read(location) as reader:
            out = io.BytesIO()
            unpack_artifact(
                reader, out, keyring.parse_ring(ring_text), expected_sha256=result.sha256
            )
            return out.getvalue()

    restored = unpack(NEW_RING)  # newest first, old key kept for old artifacts
    assert restored.startswith(b"SQLite format 3")
    with pytest.raises(ArtifactError, match="not in the key ring"):
        unpack(TEST_MASTER_KEY)
