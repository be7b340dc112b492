from datetime import timedelta

from backups.models import Source
from recovery.models import RPOTarget
from tests.factories import SourceFactory, SystemFactory


def test_source_rpo_target_follows_the_editable_target(db, viewer_client):
    system = SystemFactory(name="s")
    source = SourceFactory(
        system=system, name="db1", kind="sqlite", path="/tmp/x.db", data_class="critical"
    )
    assert source.rpo_target == timedelta(hours=1)
    RPOTarget.objects.filter(data_class="critical").update(target=timedelta(minutes=15))
    assert Source.objects.get(pk=source.pk).rpo_target == timedelta(minutes=15)
    page = viewer_client.get(source.get_absolute_url()).content.decode()
    assert "RPO target 15m" in page
