"""Check the notification path from the command line: email settings, webhooks, on-call list."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from dr_portal import audit
from incidents import tasks
from incidents.alerts import alert
from incidents.models import Notification


class Command(BaseCommand):
    help = (
        "Send a test notification to every on-call contact and active webhook. By default it is "
        "queued for the workers; --now delivers it in this process and prints each outcome."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="deliver here instead of queueing")

    def handle(self, *args, now=False, **options):
        key = f"test:{timezone.now():%Y%m%d%H%M%S%f}"
        with audit.command_context("send_test_notification"):
            alert(key, "test", "Test notification from DR Portal", detail="Sent from manage.py.")
            audit.record("send test notification", detail=key)
        notes = list(Notification.objects.filter(alert__key=key).order_by("pk"))
        if not notes:
            self.stderr.write(
                "Nobody to notify: no on-call contact with an email and no active webhook."
            )
            return
        for note in notes:
            outcome = tasks.deliver_notification(note.pk) if now else "queued"
            note.refresh_from_db()
            detail = f" ({note.last_error})" if note.last_error else ""
            self.stdout.write(
                f"{note.get_channel_display()} to {note.recipient}: {outcome}{detail}"
            )
