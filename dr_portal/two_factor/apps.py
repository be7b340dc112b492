from django.apps import AppConfig


class TwoFactorConfig(AppConfig):
    """TOTP sign-in (django-otp) and hashed recovery codes; its own migrations."""

    name = "dr_portal.two_factor"
    label = "two_factor"
    verbose_name = "Two-factor sign-in"
    default_auto_field = "django.db.models.BigAutoField"
