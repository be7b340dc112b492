"""3-2-1 counts sites, not destinations: two destinations in one S3 bucket (at one endpoint),
whatever their prefixes, are one copy; the dashboard and the destination page say so."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from backups.models import Destination, site_key
from dashboard import board
from dashboard.board import AMBER, GREEN
from tests.dashboard import readiness_data as data
from tests.dashboard.test_dashboard import RULE, colour_of

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _s3(name, bucket, endpoint_url="", prefix=""):
    return Destination.objects.create(
        name=name, kind="s3", bucket=bucket, endpoint_url=endpoint_url, prefix=prefix
    )


def test_site_key_is_the_endpoint_and_bucket():
    aws = site_key("s3", bucket="b")
    assert site_key("s3", endpoint_url="https://s3.eu-west-1.amazonaws.com", bucket="b") == aws
    minio = site_key("s3", endpoint_url="http://MinIO.lan:9000/", bucket="b")
    assert minio == site_key("s3", endpoint_url="http://minio.lan:9000", bucket="b")
    assert minio != aws != site_key("s3", bucket="c")
    assert site_key("s3", endpoint_url="http://other.lan:9000", bucket="b") != minio
    assert site_key("local", path="/backups/a/") == site_key("local", path="/backups/a")


def test_two_prefixes_in_one_bucket_are_one_copy(tmp_path, viewer_client):
    local = Destination.objects.create(name="local", kind="local", path=str(tmp_path))
    daily = _s3("offsite-daily", "dr-backups", prefix="daily/")
    weekly = _s3(
        "offsite-weekly",
        "dr-backups",
        endpoint_url="https://s3.us-east-1.amazonaws.com",
        prefix="weekly/",
    )
    with time_machine.travel(T0, tick=False):
        src = data.source("db", created=T0 - timedelta(days=30))
        data.backup(src, T0 - timedelta(minutes=20), [local, daily, weekly])
        copies = board.copies_by_source([src])[src.pk]
        assert len(copies) == 3
        assert board.rule_321(copies) == (False, True, True)  # 2 sites, not 3 copies
        board.count_slow_figures()
        html = viewer_client.get("/").content.decode()
    assert colour_of(html, f"source-{src.pk}", RULE) == AMBER
    assert "2 copies, 2 kind(s), off-site" in html
    assert (
        "offsite-daily and offsite-weekly share one site (bucket, path or recorded site): counted once"
        in html
    )
    assert "same endpoint and bucket as offsite-weekly: one site for 3-2-1" in html
    page = viewer_client.get(f"/backups/destinations/{daily.pk}/").content.decode()
    assert "one site" in page and "offsite-weekly" in page


def test_one_bucket_name_at_two_endpoints_is_two_sites(tmp_path, viewer_client):
    local = Destination.objects.create(name="local", kind="local", path=str(tmp_path))
    here = _s3("minio-here", "dr", endpoint_url="http://minio-a.lan:9000")
    there = _s3("minio-there", "dr", endpoint_url="http://minio-b.lan:9000")
    with time_machine.travel(T0, tick=False):
        src = data.source("db", created=T0 - timedelta(days=30))
        data.backup(src, T0 - timedelta(minutes=20), [local, here, there])
        assert board.rule_321(board.copies_by_source([src])[src.pk]) == (True, True, True)
        board.count_slow_figures()
        html = viewer_client.get("/").content.decode()
    assert colour_of(html, f"source-{src.pk}", RULE) == GREEN
    assert "one site for 3-2-1" not in html


def test_a_recorded_site_joins_two_endpoints_into_one(tmp_path, viewer_client):
    local = Destination.objects.create(name="local", kind="local", path=str(tmp_path))
    here = _s3("fsn-a", "dr", endpoint_url="http://minio-a.lan:9000")
    there = _s3("fsn-b", "dr", endpoint_url="http://minio-b.lan:9000")
    here.site, there.site = "Hetzner FSN1", "hetzner  fsn1"  # case and spacing aside
    here.save()
    there.save()
    assert site_key("s3", bucket="x", site="Hetzner FSN1") == here.copy_site == there.copy_site
    with time_machine.travel(T0, tick=False):
        src = data.source("db", created=T0 - timedelta(days=30))
        data.backup(src, T0 - timedelta(minutes=20), [local, here, there])
        assert board.rule_321(board.copies_by_source([src])[src.pk]) == (False, True, True)
        board.count_slow_figures()
        html = viewer_client.get("/").content.decode()
    assert colour_of(html, f"source-{src.pk}", RULE) == AMBER
    assert "same recorded site as fsn-b: one site for 3-2-1" in html
    page = viewer_client.get(f"/backups/destinations/{here.pk}/").content.decode()
    assert "Hetzner FSN1" in page and "the same recorded site" in page


def test_a_label_never_splits_one_bucket_into_two_sites(tmp_path):
    local = Destination.objects.create(name="local", kind="local", path=str(tmp_path))
    first = _s3("label-a", "one-bucket", prefix="a/")
    second = _s3("label-b", "one-bucket", prefix="b/")
    first.site, second.site = "Frankfurt", "Dublin"
    first.save()
    second.save()
    assert first.same_site_as(second)
    with time_machine.travel(T0, tick=False):
        src = data.source("db", created=T0 - timedelta(days=30))
        data.backup(src, T0 - timedelta(minutes=20), [local, first, second])
        copies = board.copies_by_source([src])[src.pk]
    assert board.rule_321(copies) == (False, True, True)
    assert board.shared_sites(copies) == [["label-a", "label-b"]]
    # A third label that shares a bucket with one of them joins the same group.
    assert len(board.sites([*copies, {"name": "x", "site": "site:dublin", "place": "s3:z"}])) == 2
