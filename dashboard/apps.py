from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The top of the domain: the dashboard's figures, compliance report and /metrics.

    It reads every app below it (backups, recovery, drills, incidents); nothing below
    imports it.
    """

    name = "dashboard"
