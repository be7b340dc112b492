"""dr_apply / dr_export of a job's ping URL and hooks: secrets from the environment, command
hooks only with --as SUPERUSER, every problem named by its place."""

# ruff: noqa: F811 (the fixtures config and env are imported from the dr_apply tests)

import yaml
from django.core.management import call_command

from backups.models import BackupJob
from tests.backups.test_config_as_code import _apply, _write, config, env  # noqa: F401

PING = "https://hc-ping.example.org/3f0c9a1e-0000-4000-8000-000000000001"
PRE = "https://hooks.example.org/pre"
POST = "https://hooks.example.org/post"


def _with_hooks(config, **pre_extra):
    job = config["jobs"][0]
    job["ping_url"] = PING
    job["hooks"] = {
        "timeout": 45,
        "pre_required": False,
        "pre": {"url": PRE, "secret_env": "DR_TEST_PRE_SECRET", **pre_extra},
        "post": {"url": POST, "secret": "post-secret-inline-0123"},
    }
    return config


def test_apply_sets_ping_and_hooks_and_a_second_apply_changes_nothing(
    db,
    tmp_path,
    config,
    env,
    monkeypatch,
    capsys,
):
    monkeypatch.setenv("DR_TEST_PRE_SECRET", "pre-secret-from-env-0123")
    path = _write(tmp_path, _with_hooks(config))
    call_command("dr_apply", str(path))
    job = BackupJob.objects.get()
    assert job.ping_url == PING and job.pre_hook_url == PRE and job.post_hook_url == POST
    assert job.pre_hook_secret.reveal() == "pre-secret-from-env-0123"
    assert job.post_hook_secret.reveal() == "post-secret-inline-0123"
    assert (job.hook_timeout_s, job.pre_hook_required) == (45, False)
    capsys.readouterr()
    call_command("dr_apply", str(path))
    assert "unchanged job toolhub-db-daily" in capsys.readouterr().out


def test_export_writes_the_hooks_without_secrets_and_round_trips(
    db,
    tmp_path,
    config,
    env,
    monkeypatch,
    capsys,
):
    monkeypatch.setenv("DR_TEST_PRE_SECRET", "pre-secret-from-env-0123")
    call_command("dr_apply", str(_write(tmp_path, _with_hooks(config))))
    capsys.readouterr()
    call_command("dr_export")
    exported = capsys.readouterr().out
    assert "pre-secret-from-env" not in exported and "post-secret-inline" not in exported
    job = yaml.safe_load(exported)["jobs"][0]
    assert job["ping_url"] == PING
    assert job["hooks"] == {
        "pre": {"url": PRE},
        "post": {"url": POST},
        "pre_required": False,
        "timeout": 45,
    }
    # Applied back as exported: the stored secrets are kept, nothing changes.
    call_command("dr_apply", str(_write(tmp_path, exported, "exported.yaml")))
    assert "unchanged job toolhub-db-daily" in capsys.readouterr().out
    assert BackupJob.objects.get().pre_hook_secret.reveal() == "pre-secret-from-env-0123"


def test_a_command_hook_needs_a_superuser(
    db,
    tmp_path,
    config,
    env,
    monkeypatch,
    capsys,
    superuser,
):
    monkeypatch.setenv("DR_TEST_PRE_SECRET", "pre-secret-from-env-0123")
    path = _write(tmp_path, _with_hooks(config, command=["/usr/local/bin/quiesce", "toolhub"]))
    assert _apply(path) == 1
    err = capsys.readouterr().err
    assert "jobs[0].hooks.pre.command: a command hook runs a program on the worker" in err
    assert "dr_apply --as SUPERUSER" in err
    assert not BackupJob.objects.exists()
    call_command("dr_apply", str(path), "--as", superuser.username)
    assert BackupJob.objects.get().pre_hook_command == ["/usr/local/bin/quiesce", "toolhub"]
    # Without --as: the same command may stay, but not go.
    call_command("dr_apply", str(path))
    del config["jobs"][0]["hooks"]["pre"]["command"]
    assert _apply(_write(tmp_path, config, "no-command.yaml")) == 1
    assert "jobs[0].hooks.pre.command" in capsys.readouterr().err
    assert BackupJob.objects.get().pre_hook_command[0] == "/usr/local/bin/quiesce"


def test_bad_hooks_are_named_by_their_place(db, tmp_path, config, env, capsys):
    job = config["jobs"][0]
    job["ping_url"] = "http://127.0.0.1:8000/ping"
    job["hooks"] = {"pre": {"url": PRE, "shell": "rm -rf /"}, "timeout": "soon"}
    assert _apply(_write(tmp_path, config)) == 1
    err = capsys.readouterr().err
    assert "jobs[0].hooks.timeout: must be a whole number, not 'soon'" in err
    assert "jobs[0].hooks.pre.shell: unknown key" in err
    job["hooks"] = {"pre": {"url": PRE}, "timeout": 0}
    assert _apply(_write(tmp_path, config)) == 1
    err = capsys.readouterr().err
    assert "jobs[0].ping_url: Refused: 127.0.0.1 is a loopback address" in err
    assert "jobs[0].hooks.pre.url: A pre-hook URL needs a secret" in err
    assert "jobs[0].hooks.timeout:" in err
    assert not BackupJob.objects.exists()
