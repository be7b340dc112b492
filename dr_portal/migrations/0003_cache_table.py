"""The database cache (django-q2 cluster stats, dashboard figures) exists after `migrate`
alone, so a deployment that forgets `createcachetable` does not fail on the dashboard."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("dr_portal", "0002_role_groups")]
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
