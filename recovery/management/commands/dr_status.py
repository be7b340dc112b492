"""manage.py dr_status [--json]: recovery readiness per source, with monitoring-plugin exit
codes, and failover readiness per system (shown; it does not change the exit status).

Exit 0: every source within its targets. 1: a target at risk (over 80 % used, needs
verification, no restore test within its schedule, a WAL gap or an unread PITR window). 2: a target breached or the
newest restore test failed.
"""

import json as jsonlib
import sys

from django.core.management.base import BaseCommand

from backups.models import Source
from dr_portal.lib.durations import format_duration as fd
from recovery.failover.proof import system_readiness
from recovery.readiness import overall, source_readiness

EXIT = {"ok": 0, "at_risk": 1, "breached": 2}
LABEL = {"ok": "OK", "at_risk": "AT RISK", "breached": "BREACHED"}


def _window(r) -> str:
    """A PITR source's recoverable window, in UTC."""
    if not (r.recoverable_from and r.recoverable_to):
        return ""
    return (
        f", recoverable {r.recoverable_from:%Y-%m-%d %H:%M:%S} to "
        f"{r.recoverable_to:%Y-%m-%d %H:%M:%S} UTC"
    )


def _failover_line(s) -> str:
    last = s.last
    if last is None:
        return s.label
    rto = {"met": "RTO met", "missed": "RTO MISSED"}.get(last.verdict, "no RTO measured")
    lost = f", data lost {fd(last.rpo)}" if last.rpo is not None else ""
    return f"{s.label} — {last.mode} run #{last.run_id} {fd(last.age)} ago, {rto}{lost}"


class Command(BaseCommand):
    help = "Recovery readiness of every source. Exit 0 ok, 1 at risk, 2 breached."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, json=False, **options):
        readiness = source_readiness(Source.objects.order_by("name"))
        verdict = overall(readiness)
        failover = system_readiness()
        if json:
            self.stdout.write(
                jsonlib.dumps(
                    {
                        "verdict": verdict,
                        "sources": [r.as_dict() for r in readiness.values()],
                        "failover": [s.as_dict() for s in failover],
                    }
                )
            )
        else:
            for r in readiness.values():
                self.stdout.write(
                    f"{LABEL[r.verdict]:8s} {r.source_name}: RPO {fd(r.rpo_now)}/{fd(r.rpo_target)}"
                    f", verified RPO {fd(r.verified_rpo)}, RTO {fd(r.last_rto)}/{fd(r.rto_target)}"
                    f", forecast {fd(r.rto_forecast)}"
                    + _window(r)
                    + (f" — {'; '.join(r.reasons)}" if r.reasons else "")
                )
            for s in failover:
                self.stdout.write(f"failover {s.system}: {_failover_line(s)}")
            self.stdout.write(
                f"DR {LABEL[verdict]}: {len(readiness)} sources"
                + (", none configured" if not readiness else "")
            )
        sys.exit(EXIT[verdict])
