from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender, **kwargs):
    from backups.schedules import ensure_system_schedules

    ensure_system_schedules()


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self):
        # Connect only: the schedule is written after migrate, never at import or start-up.
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="backups_schedules")
