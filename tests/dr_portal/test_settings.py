"""Settings from the environment: the embedded default generates, production refuses."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DR_ENV": "production",
    "DJANGO_SECRET_KEY": "a-production-secret-key-that-is-long-and-random-0123456789abcdef",
    "DR_ENCRYPTION_KEYS": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=",
    "ALLOWED_HOSTS": "dr.example.com",
    "DR_METRICS_TOKEN": "metrics-token",
}


def run_python(code, env_overrides, var_dir):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DR_", "DJANGO_", "DATABASE_URL"))
    }
    env.update({"DR_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "dr_portal.settings"})
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


SHOW = "from django.conf import settings; print(settings.SECRET_KEY[:6], settings.DR_ENCRYPTION_KEYS[:6])"


def test_embedded_default_generates_keys_once_with_private_mode(tmp_path):
    first = run_python(SHOW, {}, tmp_path)
    assert first.returncode == 0, first.stderr
    for name in ("django_secret_key", "dr_encryption_keys"):
        path = tmp_path / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated DR_ENCRYPTION_KEYS" in first.stderr
    second = run_python(SHOW, {}, tmp_path)
    assert second.stdout == first.stdout  # reused, not regenerated
    assert "generated" not in second.stderr


def test_embedded_start_warns_to_escrow_the_generated_key(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DR_")},
            "DR_VAR_DIR": str(tmp_path),
            "DR_ENV": "embedded",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Escrow it away from the backups" in result.stderr


def test_environment_values_are_used(tmp_path):
    result = run_python(
        SHOW,
        {
            "DJANGO_SECRET_KEY": "fromenv-xyz",
            "DR_ENCRYPTION_KEYS": PRODUCTION_ENV["DR_ENCRYPTION_KEYS"],
        },
        tmp_path,
    )
    assert result.stdout.split() == ["fromen", "a2FrYW"]
    assert not (tmp_path / "django_secret_key").exists()


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DR_ENCRYPTION_KEYS", "ALLOWED_HOSTS"])
def test_production_names_the_missing_variable(tmp_path, missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_python(SHOW, env, tmp_path)
    assert result.returncode != 0
    assert f"{missing} must be set when DR_ENV=production" in result.stderr
    assert not (tmp_path / missing.lower()).exists()


def test_bad_dr_env_is_refused(tmp_path):
    result = run_python(SHOW, {"DR_ENV": "prod"}, tmp_path)
    assert "DR_ENV must be embedded, production or test" in result.stderr


def test_production_check_deploy_passes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DR_", "DJANGO_"))}
    env.update(PRODUCTION_ENV, DR_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_malformed_key_ring_is_a_named_check_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DR_", "DJANGO_"))}
    env.update(DR_VAR_DIR=str(tmp_path), DR_ENCRYPTION_KEYS="not-a-key")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DR_ENCRYPTION_KEYS entry 1 is not 32 bytes" in result.stderr
