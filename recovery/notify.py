"""Alerts raised and cleared when restore tests finish (incidents app, imported lazily)."""

import logging

log = logging.getLogger(__name__)


def _alerts():
    try:
        from incidents import alerts
    except ImportError:  # the incidents app is optional for the recovery engine
        return None
    return alerts


def restore_test_finished(test):
    alerts = _alerts()
    if alerts is None:
        return
    key = f"restore-test:{test.source_id}"
    try:
        if test.passed:
            alerts.recover(key, title=f"Restore test of {test.source} passed again")
        else:
            alerts.alert(
                key,
                "restore_test_failed",
                f"Restore test of {test.source} failed",
                detail=test.error[:1000],
                url=test.get_absolute_url(),
            )
    except Exception:  # a notification problem never changes the test's result
        log.exception("could not notify about restore test %s", test.pk)
