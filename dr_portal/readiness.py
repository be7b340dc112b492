"""What the dashboard shows. The readiness issue fills this in from the apps' figures."""


def dashboard_context(request) -> dict:
    return {}
