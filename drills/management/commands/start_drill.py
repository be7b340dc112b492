"""Start a drill of a plan from the command line (same code path as the portal's button)."""

from django.core.management.base import BaseCommand, CommandError

from dr_portal.audit import command_context
from drills import services
from drills.models import DrillPlan


class Command(BaseCommand):
    help = "Declare the failure and start a drill of the named plan; print its page."

    def add_arguments(self, parser):
        parser.add_argument("plan", help="The drill plan's name.")

    def handle(self, *args, **options):
        plan = DrillPlan.objects.filter(name=options["plan"]).first()
        if plan is None:
            names = ", ".join(DrillPlan.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No drill plan named {options['plan']!r} (plans: {names}).")
        with command_context("start_drill"):
            try:
                drill = services.start_drill(plan)
            except services.DrillRefused as exc:
                raise CommandError(f"The drill was not started. {exc}") from None
        self.stdout.write(f"drill #{drill.pk} started: {drill.get_absolute_url()}")
