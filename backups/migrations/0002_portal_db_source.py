"""Offer the portal's own database as a source out of the box.

The source reads settings.DATABASES at run time (is_portal_db), so no secret is stored and
switching from SQLite to PostgreSQL needs no change here; `kind` records the engine seen now.
"""

from django.conf import settings
from django.db import migrations


def create_portal_source(apps, schema_editor):
    System = apps.get_model("backups", "System")
    Source = apps.get_model("backups", "Source")
    if Source.objects.filter(is_portal_db=True).exists():
        return
    system, _ = System.objects.get_or_create(
        name="DR Portal",
        defaults={"description": "This portal: its catalog, targets, drills and reports."},
    )
    engine = settings.DATABASES["default"]["ENGINE"]
    Source.objects.get_or_create(
        name="portal-db",
        defaults={
            "system": system,
            "kind": "sqlite" if engine.endswith("sqlite3") else "postgresql",
            "data_class": "important",
            "is_portal_db": True,
            "restore_test_schedule": "0 4 * * 0",
        },
    )


def remove_portal_source(apps, schema_editor):
    Source = apps.get_model("backups", "Source")
    Source.objects.filter(is_portal_db=True, runs__isnull=True, jobs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0001_initial"),
        ("dr_portal", "0002_role_groups"),
    ]

    operations = [migrations.RunPython(create_portal_source, remove_portal_source)]
