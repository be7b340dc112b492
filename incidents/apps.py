from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IncidentsConfig(AppConfig):
    name = "incidents"

    def ready(self):
        from backups.scrub import register_scrub_listener
        from dr_portal import related
        from incidents import schedules
        from incidents.related import incidents_linking
        from incidents.scrub_alerts import scrub_alerts

        register_scrub_listener(scrub_alerts)
        # Run pages list the incidents linking to them (those the viewer may see).
        related.register(incidents_linking, per_user=True)

        post_migrate.connect(
            schedules.after_migrate, sender=self, dispatch_uid="incidents_after_migrate"
        )
