from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


def _source_saved(sender, instance, raw=False, **kwargs):
    if raw:
        return
    from recovery.schedules import sync_source_schedule

    sync_source_schedule(instance)


def _source_deleted(sender, instance, **kwargs):
    from recovery.schedules import drop_schedule, restore_test_schedule_name

    drop_schedule(restore_test_schedule_name(instance.pk))


# What recovery.readiness reads: a write to any of them invalidates its cached rows.
READINESS_INPUTS = [
    "backups.Source",
    "backups.BackupJob",
    "backups.BackupRun",
    "backups.BackupCopy",
    "backups.PitrWindow",
    "recovery.RestoreTest",
]


def _readiness_changed(sender, **kwargs):
    from dr_portal.lib import readiness_version

    readiness_version.bump()


def _after_migrate(sender, **kwargs):
    from recovery.schedules import ensure_recovery_schedules

    ensure_recovery_schedules()


class RecoveryConfig(AppConfig):
    name = "recovery"

    def ready(self):
        # Models exist only once apps are loaded: imported here, not at the top.
        from backups.models import register_rpo_target_lookup
        from backups.retention import register_recovery_lookups
        from dr_portal import related
        from recovery import hooks, pitr_step, restore_step
        from recovery.failover.services import register_pitr_restore, register_restore
        from recovery.related import backup_run_related
        from recovery.targets import rpo_targets

        # backups shows each source's RPO target and keeps the backups restore tests proved
        # or are reading, but may not import recovery: hand it our answers.
        register_rpo_target_lookup(rpo_targets)
        register_recovery_lookups(
            protected=hooks.protected_backup_runs, in_use=hooks.backup_runs_in_use
        )
        related.register(backup_run_related)  # the backup run page lists its restore tests
        register_pitr_restore(pitr_step.run_pitr_step)
        register_restore(restore_step.run_restore_step)
        # Receivers only: schedules are created by them, never here (NOTES-django-q2).
        post_save.connect(
            _source_saved, sender="backups.Source", dispatch_uid="recovery-source-saved"
        )
        post_delete.connect(
            _source_deleted, sender="backups.Source", dispatch_uid="recovery-source-deleted"
        )
        for model in READINESS_INPUTS:
            for signal in (post_save, post_delete):
                signal.connect(
                    _readiness_changed, sender=model, dispatch_uid=f"readiness-cache-{model}"
                )
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="recovery-after-migrate")
