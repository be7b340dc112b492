from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DrillsConfig(AppConfig):
    name = "drills"
    verbose_name = "Drills"

    def ready(self):
        from drills import schedules

        post_migrate.connect(
            schedules.after_migrate, sender=self, dispatch_uid="drills_after_migrate"
        )
