"""Pre and post hooks of a backup job: signed webhooks and (superuser-set) commands.

The calling parts are generic: a restore target has the same hook fields and its restores
run them with their own payload (recovery/restore_hooks.py).

The pre-hooks run after the run is claimed and before it reads anything, so a hook can
quiesce an application or refuse the backup: when the job says `pre_hook_required`, a
failing pre-hook fails the run with its reason; otherwise the run goes on with a warning.
The post-hooks run once the run has finished, with its outcome, and never change it; a post
webhook is retried with back-off.

A webhook is a POST of a JSON payload through the outbound guard, signed with HMAC-SHA256
over the exact body with the hook's own secret: `X-DR-Signature: sha256=<hex>`. A command
is an argv run without a shell, in its own session (killed whole at the timeout), with an
environment of the run's facts only: the worker's own environment (key ring, database
URL) is not passed on. What a hook did is recorded on the run (`hook_outcome`) and in its
log, never the URL (a capability) nor the secret.
"""

import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import time

from django.utils import timezone

from dr_portal.lib import keyring, outbound
from dr_portal.lib.redact import redact

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DR-Signature"
POST_BACKOFF_S = [2.0, 10.0]  # pauses between the attempts of a post webhook (3 attempts)
MAX_OUTPUT = 500  # characters of a command's output kept in the run's log
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value; a receiver recomputes it over the raw body it read."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(run, phase: str) -> dict:
    """What a hook learns of the run: ids, names, outcome, sizes, timings."""
    job = run.job
    return {
        "event": f"backup.{phase}",
        "phase": phase,
        "run": run.pk,
        "job": run.job_name,
        "source": run.source_name,
        "system": job.source.system.name if job is not None else "",
        "trigger": run.trigger,
        "outcome": run.status,
        "error": run.error,
        "bytes_read": run.bytes_read,
        "bytes_stored": run.bytes_stored,
        "queued": iso(run.queued),
        "started": iso(run.started),
        "finished": iso(run.finished),
        "duration_s": run.duration.total_seconds() if run.finished and run.started else None,
        "sent_at": iso(timezone.now()),  # inside the signed body: a receiver can refuse replays
    }


def iso(value):
    """An ISO-8601 time for a payload (None stays None)."""
    return value.isoformat() if value else None


def post_webhook(
    url: str, secret: str, body: dict, *, timeout: float, pauses=()
) -> tuple[bool, str]:
    """POST the signed body; retry after each pause in `pauses`. (ok, outcome in words)."""
    data = json.dumps(body, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, data)}
    outcome = ""
    for attempt, pause in enumerate([0.0, *pauses], start=1):
        if pause:
            time.sleep(pause)
        try:
            response = outbound.request(
                "POST", url, body=data, headers=headers, timeout=timeout, max_body=1024
            )
        except outbound.Refused as exc:
            return False, str(exc)  # waiting will not make the address public
        except Exception as exc:
            outcome = redact(f"{type(exc).__name__}: {exc}", [url, secret])[:200]
        else:
            outcome = f"HTTP {response.status}"
            if 200 <= response.status < 300:
                return True, outcome if attempt == 1 else f"{outcome} (attempt {attempt})"
    return False, outcome if attempt == 1 else f"{outcome} (after {attempt} attempts)"


def command_env(facts: dict) -> dict:
    """The command's whole environment: a plain PATH and the run's facts as DR_* variables."""
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8"}
    for key, value in facts.items():
        env[f"DR_{key.upper()}"] = "" if value is None else str(value)
    return env


def run_command(argv: list[str], facts: dict, *, timeout: float) -> tuple[bool, str]:
    """Run argv (no shell) with the run's facts; (ok, outcome in words with its output's tail)."""
    try:
        proc = subprocess.Popen(
            argv,
            env=command_env(facts),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the timeout kills the command's children too
            cwd="/",
        )
    except OSError as exc:
        return False, f"cannot start {argv[0]}: {exc.strerror or exc}"
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"{argv[0]} killed after {timeout:g} s (timeout)"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    tail = output.decode(errors="replace").strip()[-MAX_OUTPUT:]
    outcome = f"exit {proc.returncode}" + (f": {tail}" if tail else "")
    return proc.returncode == 0, outcome


def _record(run, line: str):
    run.hook_outcome = f"{run.hook_outcome}{line}\n"
    type(run).objects.filter(pk=run.pk).update(hook_outcome=run.hook_outcome)
    run.append_log(line)


def _calls(owner, phase: str) -> list[tuple[str, object]]:
    """The hooks of one phase in the order they run: the webhook, then the command."""
    calls = []
    url = getattr(owner, f"{phase}_hook_url")
    if url:
        calls.append(("webhook", url))
    argv = getattr(owner, f"{phase}_hook_command")
    if argv:
        calls.append(("command", argv))
    return calls


def _call(owner, phase: str, kind: str, target, body: dict) -> tuple[bool, str]:
    timeout = float(owner.hook_timeout_s)
    if kind == "command":
        return run_command(target, body, timeout=timeout)
    try:
        secret = getattr(owner, f"{phase}_hook_secret").reveal()
    except (AttributeError, keyring.KeyRingError) as exc:
        return False, f"cannot read the hook's secret: {exc}"
    pauses = POST_BACKOFF_S if phase == "post" else ()
    return post_webhook(target, secret, body, timeout=timeout, pauses=pauses)


def run_pre_hooks(
    run, owner, *, make_payload=payload, untouched="the run did not start reading the source"
) -> str:
    """Call the pre-hooks of `owner` (a job, or anything with the same hook fields: a restore
    target); the reason to fail the run ("" to go on), ending with `untouched`."""
    for kind, target in _calls(owner, "pre"):
        ok, outcome = _call(owner, "pre", kind, target, make_payload(run, "pre"))
        _record(run, f"pre-hook {kind}: {outcome}")
        if not ok and owner.pre_hook_required:
            return f"pre-hook {kind} failed ({outcome}): {untouched}"
        if not ok:
            run.append_log(f"warning: pre-hook {kind} failed; going on (pre-hook not required)")
    return ""


def run_post_hooks(run, owner, *, make_payload=payload) -> None:
    """Call the post-hooks with the finished run. Never raises: the run's outcome stands."""
    if owner is None:
        return
    for kind, target in _calls(owner, "post"):
        try:
            ok, outcome = _call(owner, "post", kind, target, make_payload(run, "post"))
        except Exception as exc:
            ok, outcome = False, f"unexpected {type(exc).__name__}: {exc}"
        _record(run, f"post-hook {kind}: {outcome}")
        if not ok:
            log.warning("%s: post-hook %s failed: %s", run, kind, outcome)
