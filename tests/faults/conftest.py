"""Fault suite: a real django-q2 cluster in a subprocess on the (file) test database."""

import pytest

from tests.support.s3 import MotoS3


@pytest.fixture
def s3():
    server = MotoS3().start().reset()
    try:
        server.client().create_bucket(Bucket="dr-faults")
        yield server
    finally:
        server.stop()


def wait_run(model, pk, statuses, timeout=60):
    from tests.support.cluster import wait_for

    def done():
        row = model.objects.get(pk=pk)
        return row if row.status in statuses else None

    return wait_for(
        done, timeout=timeout, every=0.3, message=f"{model.__name__} {pk} in {statuses}"
    )
