from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self):
        from backups.scrub import register_scrub_listener
        from incidents import schedules
        from incidents.scrub_alerts import scrub_alerts

        register_scrub_listener(scrub_alerts)

        post_migrate.connect(
            schedules.after_migrate, sender=self, dispatch_uid="incidents_after_migrate"
        )
