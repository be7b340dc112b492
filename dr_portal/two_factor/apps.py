from django.apps import AppConfig


class TwoFactorConfig(AppConfig):
    """TOTP sign-in (django-otp) and hashed recovery codes; its own migrations."""

    name = "dr_portal.two_factor"
    label = "two_factor"
    verbose_name = "Two-factor sign-in"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from dr_portal.two_factor import services

        user_logged_in.connect(services.remember_enrolment, dispatch_uid="dr_2fa_login")
