"""manage.py compliance_report --from 2026-01-01 --to 2026-03-31 [--system NAME ...] [--pdf FILE]

Prints the report's SHA-256 (the same the page and the PDF print for that period and those
systems), a summary, and optionally writes the PDF and the canonical data. An auditor
recomputes the hash with:  sha256sum FILE  on the file written by --canonical FILE.
"""

import os
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from backups.models import System
from dashboard import compliance
from dr_portal import audit, signed_reports


def _date(text):
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"{text!r} is not a date; write it like 2026-03-31") from exc


class Command(BaseCommand):
    help = "Compliance report for a period: prints its SHA-256; --pdf writes the PDF."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
        parser.add_argument(
            "--system", action="append", default=[], help="system name (repeatable; default all)"
        )
        parser.add_argument("--pdf", help="write the PDF to this file")
        parser.add_argument("--canonical", help="write the hashed canonical JSON to this file")
        parser.add_argument("--user", default="", help="who produces it (printed in the PDF)")

    def handle(self, *args, date_from, date_to, system, pdf, canonical, user, **options):
        first, last = _date(date_from), _date(date_to)
        if last < first:
            raise CommandError("--to is before --from.")
        systems = []
        for name in system:
            found = System.objects.filter(name=name).first()
            if found is None:
                known = ", ".join(System.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"No system named {name!r} (known: {known}).")
            systems.append(found)
        start, end = compliance.period(first, last)
        data = compliance.build(start, end, systems)
        with audit.command_context("compliance_report"):
            produced = compliance.stamp(data, user or audit.current().actor_name)
            if canonical:
                with open(canonical, "wb") as handle:
                    handle.write(compliance.canonical(data))
            if pdf:
                document = compliance.render_pdf(data, produced)
                with open(pdf, "wb") as handle:
                    handle.write(document)
                signed = signed_reports.sign_and_register(
                    document,
                    kind="compliance",
                    filename=os.path.basename(pdf),
                    user_name=produced["produced_by"],
                )
                with open(f"{pdf}.sig", "wb") as handle:
                    handle.write(signed.signature_bytes)
                audit.record(
                    "export compliance pdf",
                    detail=f"{data['period']['from']} – {data['period']['to']} sha256 {produced['sha256']}",
                )
        b, t, a = data["backups"], data["restore_tests"], data["availability"]
        self.stdout.write(f"SHA-256 {produced['sha256']}")
        head = produced["audit_chain_head"]
        self.stdout.write(
            f"audit chain head #{head['seq']} (entry id {head['entry_id']}) {head['hash']}"
        )
        if pdf:
            self.stdout.write(
                f"PDF {pdf} signed: {pdf}.sig (Ed25519 key {produced['signer']['fingerprint']})"
            )
        self.stdout.write(
            f"period {data['period']['from']} – {data['period']['to']}, systems: {', '.join(data['systems'])}"
        )
        if data["period"].get("evidence_until"):
            self.stdout.write(
                f"period includes today: evidence up to {data['period']['evidence_until']} "
                "(the newest finished run or proof)"
            )
        self.stdout.write(
            f"backups {b['runs']} (success {b['success_rate']} %), restore tests {t['count']} "
            f"(pass {t['pass_rate']} %), drills {data['drills']['count']}, incidents "
            f"{data['incidents']['count']}, availability {a['achieved_percent']} % / {a['target_percent']} %, "
            f"open follow-ups {data['followups']['open_at_end']}"
        )
        for w in produced["pitr_windows"]:
            gap = f", WAL gap: {w['missing_segment']} missing" if w["wal_gap"] else ""
            self.stdout.write(
                f"recoverable window of {w['source']}: {w['recoverable_from'] or '—'} to "
                f"{w['recoverable_to'] or '—'}{gap}"
            )
        if pdf:
            self.stdout.write(f"PDF written to {pdf}")
