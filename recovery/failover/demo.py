"""Demo runbook for `manage.py load_demo` (idempotent): a failover whose test run succeeds on one machine.

The "primary" health URL points at a port nothing listens on (so it is down), the "backup"
is the portal itself at the address `make run` serves; DNS and load-balancer steps are
skipped in test mode and show what they would change.
"""

from urllib.parse import urlsplit

from backups.models import System
from dr_portal.lib import outbound
from recovery.failover.builtin import create_from_template
from recovery.failover.models import Runbook

DEMO_NAME = "Active-passive application failover (demo)"


def load(stdout, base_url="http://127.0.0.1:8000"):
    system = System.objects.filter(name="Tool Hub").first()
    if system is None or Runbook.objects.filter(system=system, name=DEMO_NAME).exists():
        return
    create_from_template(
        system,
        "active_passive",
        name=DEMO_NAME,
        variables={
            "primary_health_url": "http://127.0.0.1:9/health/live",
            "public_health_url": f"{base_url}/health/live",
        },
    )
    stdout.write(
        f"demo: failover runbook {DEMO_NAME!r} (start a test run from Recovery → Failover)"
    )
    if not _reachable(base_url):
        # Outbound checks refuse internal addresses unless allow-listed (dr_portal.lib.outbound).
        stdout.write(
            "demo: its HTTP checks call the portal on loopback; set DR_OUTBOUND_ALLOW=127.0.0.1 "
            "for the worker, or its test run is refused"
        )


def _reachable(url) -> bool:
    """Would the outbound guard let a check reach url (the demo's checks call the portal)?"""
    parts = urlsplit(url)
    try:
        outbound.resolve(parts.hostname or "", parts.port or 80, outbound.configured_allow())
    except outbound.Refused:
        return False
    except OSError:
        pass  # not resolvable now: the run will say so
    return True
