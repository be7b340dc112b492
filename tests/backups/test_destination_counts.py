"""The destinations list counts each live copy once, however many jobs write there."""

from django.urls import reverse

from tests.factories import (
    BackupCopyFactory,
    BackupJobFactory,
    BackupRunFactory,
    DestinationFactory,
)


def test_live_copies_are_not_multiplied_by_jobs(viewer_client):
    dest = DestinationFactory()
    jobs = [BackupJobFactory(destinations=[dest]) for _ in range(4)]
    for _ in range(6):
        BackupCopyFactory(
            run=BackupRunFactory(job=jobs[0], source=jobs[0].source), destination=dest, ok=True
        )
    BackupCopyFactory(run=BackupRunFactory(), destination=dest, ok=False)  # not live

    response = viewer_client.get(reverse("backups:destination_list"))

    (row,) = [d for d in response.context["destinations"] if d.pk == dest.pk]
    assert (row.live_copies, row.job_count) == (6, 4)
