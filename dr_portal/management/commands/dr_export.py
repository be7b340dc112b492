"""manage.py dr_export: print the configuration in dr_apply's format (no secrets)."""

from django.core.management.base import BaseCommand

from dr_portal.management import config_as_code as config


class Command(BaseCommand):
    help = "Print systems, destinations, sources and jobs as dr_apply YAML. Secrets are left out."

    def handle(self, *args, **options):
        self.stdout.write(
            "# DR Portal configuration (dr_export). Secrets are not exported: add\n"
            "# password_env / access_key_id_env / secret_access_key_env where needed.\n"
        )
        self.stdout.write(config.dump(config.export()), ending="")
