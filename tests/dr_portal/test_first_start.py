"""The first-start summary `make run` prints last: the URL, the admin password once, the key."""

import io
import stat

from django.contrib.auth import get_user_model
from django.core.management import call_command

from dr_portal import first_start
from dr_portal.lib import keyring
from dr_portal.models import KeyEscrow


def test_a_generated_password_is_kept_for_the_summary_and_shown_once(
    db, settings, tmp_path, monkeypatch
):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DR_ADMIN_PASSWORD", raising=False)
    out = io.StringIO()
    call_command("ensure_admin", "--first-start", stdout=out)
    path = tmp_path / first_start.PASSWORD_FILE
    password = path.read_text()
    assert password not in out.getvalue() and "in the summary at the end" in out.getvalue()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert get_user_model().objects.get(username="admin").check_password(password)

    first = first_start.summary("http://127.0.0.1:8000/")
    assert f"admin / {password}" in first and "shown once" in first
    assert not path.exists()
    second = first_start.summary("http://127.0.0.1:8000/")
    assert password not in second and "changepassword admin" in second


def test_the_summary_says_where_the_key_is_and_stops_nagging_once_escrowed(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DR_KEYRING_GENERATED = True
    text = first_start.summary("http://127.0.0.1:8000/")
    assert str(tmp_path / "dr_encryption_keys") in text and "ESCROW IT" in text
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # a closed box
    for key in keyring.ring():
        KeyEscrow.objects.create(key_id=key.key_id, where="a safe")
    assert "ESCROW IT" not in first_start.summary("http://127.0.0.1:8000/")


def test_keys_from_the_environment_are_not_shown_as_a_file(db, settings):
    settings.DR_KEYRING_GENERATED = False
    text = first_start.summary("http://127.0.0.1:8000/")
    assert "from DR_ENCRYPTION_KEYS" in text and "ESCROW" not in text
