"""Outbound pings per job, healthchecks.io-compatible: the portal's death noticed from outside.

`<url>/start` when a run starts, `<url>` when it succeeded, `<url>/fail` with the run's
error (already redacted, truncated) otherwise. Best-effort: short timeouts, one retry,
every failure recorded on the run (`ping_outcome`) and never raised, so a ping service
that is down never fails a backup. Through the outbound guard; the URL is a capability,
so neither the run nor the log ever holds more than its masked form.
"""

import logging
import time
from urllib.parse import urlsplit, urlunsplit

from dr_portal.lib import outbound
from dr_portal.lib.redact import redact
from dr_portal.runs import RunStatus

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
ATTEMPTS = 2
RETRY_PAUSE_S = 1.0
MAX_BODY = 10_000  # healthchecks.io keeps up to 100 kB of a ping body; the error's head is enough
SUFFIX = {"start": "/start", "success": "", "fail": "/fail"}


def signal_url(url: str, signal: str) -> str:
    """The ping URL for a signal: the suffix goes at the end of the path, before any query."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + SUFFIX[signal]
    return urlunsplit((parts.scheme, parts.netloc, path or "/", parts.query, ""))


def ping(url: str, signal: str, body: str = "") -> str:
    """Send one ping (with a retry); the outcome in words, without the URL. Never raises."""
    target = signal_url(url, signal)
    data = body.encode()[:MAX_BODY]
    outcome = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = outbound.request(
                "POST",
                target,
                body=data,
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=TIMEOUT_S,
                max_body=1024,
            )
        except outbound.Refused as exc:
            return f"{signal}: {exc}"  # waiting will not make the address public
        except Exception as exc:  # a ping must never fail the backup
            outcome = f"{signal}: {redact(f'{type(exc).__name__}: {exc}', [url])[:200]}"
        else:
            outcome = f"{signal}: HTTP {response.status}"
            if 200 <= response.status < 300:
                return outcome
        if attempt < ATTEMPTS:
            time.sleep(RETRY_PAUSE_S)
    return f"{outcome} (after {ATTEMPTS} attempts)"


def _record(run, outcome: str):
    run.ping_outcome = "; ".join(p for p in (run.ping_outcome, outcome) if p)[-500:]
    type(run).objects.filter(pk=run.pk).update(ping_outcome=run.ping_outcome)
    if "HTTP 2" not in outcome:
        log.warning("%s: ping to %s failed: %s", run, outbound.mask_url(run.job.ping_url), outcome)


def ping_start(run):
    """The run has started (the job's ping URL, if any)."""
    if run.job is not None and run.job.ping_url:
        _record(run, ping(run.job.ping_url, "start"))


def ping_outcome(run):
    """The run has finished: success, or /fail with its status and error."""
    if run.job is None or not run.job.ping_url:
        return
    if run.status == RunStatus.SUCCEEDED:
        _record(run, ping(run.job.ping_url, "success"))
        return
    body = f"{run} {run.status}: {run.error or 'no error recorded'}"
    _record(run, ping(run.job.ping_url, "fail", body))
