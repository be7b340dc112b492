from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save, pre_save


class PortalConfig(AppConfig):
    name = "dr_portal"
    verbose_name = "DR Portal"

    def ready(self):
        from dr_portal import checks, signals  # noqa: F401  (registers system checks)

        pre_save.connect(signals.remember_before_save, dispatch_uid="dr_audit_pre")
        post_save.connect(signals.audit_save, dispatch_uid="dr_audit_save")
        post_delete.connect(signals.audit_delete, dispatch_uid="dr_audit_delete")
        post_migrate.connect(signals.after_migrate, dispatch_uid="dr_after_migrate")
        from axes.signals import user_locked_out

        user_locked_out.connect(signals.audit_lockout, dispatch_uid="dr_audit_lockout")
