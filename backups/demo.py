"""Demo configuration: Tool Hub's SQLite database and the portal's own database, backed up locally."""

from django.conf import settings

from backups import config, services
from backups.models import BackupJob, Destination, Source, System, Trigger

MODELS = {"systems": System, "destinations": Destination, "sources": Source, "jobs": BackupJob}


def demo_config() -> dict:
    return {
        "systems": [
            {
                "name": "Tool Hub",
                "description": "Workflow automation service (the seed document's system).",
            },
        ],
        "destinations": [
            {
                "name": "local",
                "kind": "local",
                "path": str(settings.DR_LOCAL_BACKUP_DIR),
                "keep_days": 7,
                "keep_last": 3,
            }
        ],
        "sources": [
            {
                "name": "toolhub-db",
                "system": "Tool Hub",
                "kind": "sqlite",
                "path": str(settings.DR_DEMO_DIR / "tool_hub.db"),
                "data_class": "critical",
                "verify": [
                    {"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"},
                    {
                        "name": "executions",
                        "sql": "SELECT COUNT(*) FROM executions",
                        "expect": "> 0",
                    },
                ],
                "heartbeat": True,
                # The demo proves every new backup (the recovery demo relies on it too).
                "restore_test_after_backup": True,
            },
        ],
        "jobs": [
            {
                "name": "toolhub-db-hourly",
                "source": "toolhub-db",
                "destinations": ["local"],
                "schedule": "0 * * * *",
                "timezone": "UTC",
                "compression": "zstd",
                "encrypt": True,
            },
            {
                "name": "portal-db-daily",
                "source": "portal-db",
                "destinations": ["local"],
                "schedule": "15 2 * * *",
                "timezone": "UTC",
                "compression": "zstd",
                "encrypt": True,
            },
        ],
    }


def missing_only(data: dict) -> tuple[dict, int]:
    """The demo config without the objects that exist already (by name), and how many were
    left out: `make run` loads the demo on every start and must not revert the user's edits."""
    kept, present = {}, 0
    for section, items in data.items():
        names = set(MODELS[section].objects.values_list("name", flat=True))
        kept[section] = [item for item in items if item["name"] not in names]
        present += len(items) - len(kept[section])
    return kept, present


def load(stdout):
    """Idempotent: creates the demo objects that are missing and leaves existing ones as they
    are (edited or not)."""
    settings.DR_LOCAL_BACKUP_DIR.mkdir(parents=True, exist_ok=True)
    data = demo_config()

    if not Source.objects.filter(is_portal_db=True).exists():
        data["sources"].append(
            {
                "name": "portal-db",
                "system": "Tool Hub",
                "portal_db": True,
                "data_class": "important",
                # The portal's own database is what a rebuild starts from: prove it too.
                "restore_test_after_backup": True,
            }
        )
    job_names = [job["name"] for job in data["jobs"]]
    first_load = not Source.objects.filter(name="toolhub-db").exists()
    missing, present = missing_only(data)
    changes = config.apply(missing)
    if first_load:
        # The portal's own database (seeded by a migration) is what a rebuild starts from:
        # the demo proves it after every backup too, once; a user's later choice stands.
        Source.objects.filter(is_portal_db=True).update(restore_test_after_backup=True)
    stdout.write(
        f"backups demo: {len(changes)} created, {present} already there (left as they are)"
    )
    queue_first_backups(job_names, stdout)


def queue_first_backups(job_names, stdout):
    """Give each demo job that never ran one run, so that a new portal shows real evidence
    (a backup, then its restore test) as soon as the worker starts, not at the next hour."""
    for job in BackupJob.objects.filter(name__in=job_names, enabled=True):
        if job.runs.exists():
            continue
        run = services.start_run(job, Trigger.COMMAND)
        services.enqueue_run(run)
        stdout.write(f"backups demo: first backup of {job.name} queued as run #{run.pk}")
