"""command, manual and wait steps."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time

from .base import (
    Kind,
    Param,
    StepCancelled,
    StepResult,
    StepTimedOut,
    non_empty,
    not_negative,
    str_list,
)

OUTPUT_KEPT = 16_000


def _kill_group(proc: subprocess.Popen):
    """TERM then KILL the whole process group the command started."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _check_env(value):
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return "must map variable names to text values"
    return None


class Command(Kind):
    name = "command"
    title = "Command"
    side_effects = True
    secret_label = "value passed as $DR_STEP_SECRET (optional)"
    default_timeout = 300.0
    params = {
        "args": Param((list,), check=str_list, help="program and arguments; no shell"),
        "cwd": Param((str,), None),
        "env": Param((dict,), None, _check_env),
        "expect_exit": Param((int,), 0),
    }

    def describe(self, params):
        return "run " + " ".join(params.get("args") or [])

    def run(self, params, ctx):
        env = {**os.environ, **(params.get("env") or {})}
        if ctx.secret:
            env["DR_STEP_SECRET"] = ctx.secret
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(  # noqa: S603 - argument list, never a shell
                    params["args"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=params.get("cwd") or None,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                return StepResult(
                    False, f"could not start {params['args'][0]}: {exc.strerror or exc}"
                )
            timed_out = cancelled = False
            try:
                while proc.poll() is None:
                    if ctx.cancelled():
                        cancelled = True
                        break
                    if ctx.remaining() <= 0:
                        timed_out = True
                        break
                    try:
                        proc.wait(timeout=min(ctx.poll_every, max(ctx.remaining(), 0.01)))
                    except subprocess.TimeoutExpired:
                        pass
            finally:
                if proc.poll() is None:
                    _kill_group(proc)
                else:
                    # the leader exited; children it left in its group go too
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            out.seek(0, os.SEEK_END)
            size = out.tell()
            out.seek(max(0, size - OUTPUT_KEPT))
            text = out.read().decode("utf-8", "replace")
        prefix = "…(earlier output cut)\n" if size > OUTPUT_KEPT else ""
        if cancelled:
            raise StepCancelled(f"cancelled; process group {proc.pid} killed")
        if timed_out:
            raise StepTimedOut(f"timeout: process group {proc.pid} killed\n{prefix}{text}")
        ok = proc.returncode == params["expect_exit"]
        return StepResult(
            ok,
            f"exit {proc.returncode}"
            + ("" if ok else f" (expected {params['expect_exit']})")
            + f"\n{prefix}{text}".rstrip(),
        )


class Manual(Kind):
    name = "manual"
    title = "Manual step"
    default_timeout = 1800.0
    params = {"instruction": Param((str,), check=non_empty)}

    def describe(self, params):
        return f"a person does and confirms: {params.get('instruction')}"

    def run(self, params, ctx):
        if ctx.wait_for_person is None:
            return StepResult(False, "no way to ask a person in this context")
        who = ctx.wait_for_person(ctx.deadline)
        return StepResult(True, f"confirmed by {who}")


class Wait(Kind):
    name = "wait"
    title = "Wait"
    default_timeout = 3600.0
    params = {"seconds": Param((float,), check=not_negative)}

    def validate(self, params):
        return []

    def describe(self, params):
        return f"wait {params.get('seconds')} s"

    def run(self, params, ctx):
        if params["seconds"] > ctx.remaining():
            raise StepTimedOut(f"waiting {params['seconds']} s would pass the step timeout")
        started = time.monotonic()
        ctx.sleep(params["seconds"])
        return StepResult(True, f"waited {time.monotonic() - started:.1f} s")
