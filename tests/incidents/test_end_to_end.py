"""A real django-q2 cluster delivers an alert: email (console backend, in its log) and a webhook."""

import pytest

from incidents.alerts import alert, recover
from incidents.models import Notification, Webhook
from tests.factories import ContactFactory
from tests.incidents.test_delivery import Receiver
from tests.support.cluster import cluster_log, running_cluster, wait_for


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cluster_delivers_alert_and_recovery_once():
    receiver = Receiver()
    try:
        ContactFactory(role="On-Call", name="Pat", email="pat@example.com", on_call="primary")
        Webhook.objects.create(name="ops", url=receiver.url("/hook/s3cr3tT0ken"))
        with running_cluster(workers=1, DR_OUTBOUND_ALLOW="127.0.0.1") as proc:
            alert("backup:job:9", "backup_failed", "Backup nightly failed", "pg_dump exited 1")
            alert("backup:job:9", "backup_failed", "Backup nightly failed", "pg_dump exited 1")
            wait_for(
                lambda: Notification.objects.filter(status="sent").count() == 2,
                60,
                message="alert sent",
            )
            recover("backup:job:9")
            wait_for(
                lambda: Notification.objects.filter(status="sent").count() == 4,
                60,
                message="recovery sent",
            )
            log = cluster_log(proc)
        texts = [b["text"] for b in receiver.bodies]
        assert [t.splitlines()[0] for t in texts] == [
            "[DR Portal] Backup nightly failed",
            "[DR Portal] Recovered: Backup nightly failed",
        ]
        assert log.count("To: pat@example.com") == 2
        assert "s3cr3tT0ken" not in log
    finally:
        receiver.close()
