"""Django's `check`, stricter: a live backup copy sealed with a key missing from the ring is
an error here (exit 1), while the worker and the web process only warn about it."""

from django.core.management.commands.check import Command as DjangoCheck

from dr_portal import checks


class Command(DjangoCheck):
    def handle(self, *app_labels, **options):
        checks.STRICT["keys"] = True
        try:
            return super().handle(*app_labels, **options)
        finally:
            checks.STRICT["keys"] = False
