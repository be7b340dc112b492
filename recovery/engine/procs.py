"""Run external programs safely: argument lists, own process group, killed in finally."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

from dr_portal.lib.redact import redact

# The child runs in its own session, so a SIGKILLed worker would leave it running (a
# pg_restore holding connections to the scratch server); setpriv makes it die with us.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


class ProcessError(Exception):
    """An external program failed; the message is redacted and names the program."""


def run(
    args: Sequence[str],
    *,
    env: dict | None = None,
    timeout: float | None = None,
    secrets: Sequence[str] = (),
    cancelled: Callable[[], bool] | None = None,
    feed: Callable[[BinaryIO], None] | None = None,
) -> str:
    """Run `args`; return its (redacted) stderr+stdout tail; raise ProcessError on failure.

    The child gets its own session so a task timeout or our own exception can kill
    the whole group (pg_restore -j forks workers) instead of leaving orphans. With
    `feed`, the child's standard input is written by feed(stdin); an exception from
    feed kills the child and is raised as it is.
    """
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
            DIE_WITH_PARENT + list(args),
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout if timeout else None
        try:
            if feed is not None:
                try:
                    feed(proc.stdin)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass  # the child stopped reading: its exit code and output say why
            while True:
                try:
                    code = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if deadline and time.monotonic() > deadline:
                        raise ProcessError(
                            f"{os.path.basename(args[0])} did not finish within {timeout:.0f} s"
                        ) from None
                    if cancelled and cancelled():
                        raise ProcessError(f"{os.path.basename(args[0])} cancelled") from None
        finally:
            kill_group(proc)
        out.seek(0)
        text = out.read()[-8000:].decode("utf-8", "replace")
    text = redact(text, secrets=list(secrets))
    if code != 0:
        last = "\n".join(line for line in text.strip().splitlines()[-6:])
        raise ProcessError(f"{os.path.basename(args[0])} exited with {code}: {last}".strip())
    return text


def kill_group(proc: subprocess.Popen):
    """Terminate the child's whole process group, then make sure it is reaped."""
    if proc.poll() is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftover grandchildren, if any
        except (ProcessLookupError, PermissionError):
            pass
        return
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
