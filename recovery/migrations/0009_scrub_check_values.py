"""Remove what checks showed before they were confined (issue 13).

Restore tests and restores stored a check's first value as text ("observed") and put
non-numbers and error texts into the detail and the run log; a check on the portal's own
database showed session keys and password hashes that way. Keep numbers, drop the rest.
"""

from django.db import migrations

from recovery.engine.checks import scrub_log, scrub_stored


def scrub(apps, schema_editor):
    for model_name in ("RestoreTest", "Restore"):
        model = apps.get_model("recovery", model_name)
        for row in model.objects.only("pk", "checks", "log").iterator():
            checks = [scrub_stored(c) if isinstance(c, dict) else c for c in row.checks or []]
            log = scrub_log(row.log or "")
            if checks != (row.checks or []) or log != (row.log or ""):
                model.objects.filter(pk=row.pk).update(checks=checks, log=log)


class Migration(migrations.Migration):
    dependencies = [("recovery", "0008_single_line_names")]

    operations = [migrations.RunPython(scrub, migrations.RunPython.noop)]
