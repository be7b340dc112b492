from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self):
        from incidents import schedules

        post_migrate.connect(
            schedules.after_migrate, sender=self, dispatch_uid="incidents_after_migrate"
        )
