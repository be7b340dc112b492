"""The dashboard's background task (a django-q2 entry point, scheduled by dr_portal.setup)."""

from dashboard.board import count_slow_figures


def refresh_dashboard_figures() -> int:
    """Recount storage and 3-2-1 copies for the dashboard, so that no page view pays for it."""
    return len(count_slow_figures()["ids"])
