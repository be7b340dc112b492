"""Links both ways: a backup run's page lists its restore tests, restores and incidents; a
restore test's page its backup run and incidents; an incident's page the runs it links."""

import pytest
from django.contrib.contenttypes.models import ContentType

from incidents.models import IncidentLink
from tests.factories import (
    BackupRunFactory,
    IncidentFactory,
    RestoreTestFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db


def _link(incident, obj):
    return IncidentLink.objects.create(
        incident=incident,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
        note="the failing one",
    )


def test_backup_run_restore_test_and_incident_link_each_other(viewer_client):
    source = SourceFactory(name="toolhub-db")
    run = BackupRunFactory(source=source, good=True)
    test = RestoreTestFactory(source=source, backup_run=run, status="failed")
    other = RestoreTestFactory(source=source, status="succeeded")  # of another backup
    incident = IncidentFactory(title="Nightly backup unusable")
    _link(incident, run)
    _link(incident, test)

    run_page = viewer_client.get(run.get_absolute_url()).content.decode()
    assert f'href="{test.get_absolute_url()}"' in run_page
    assert f'href="{other.get_absolute_url()}"' not in run_page
    assert f'href="{incident.get_absolute_url()}"' in run_page and "the failing one" in run_page

    test_page = viewer_client.get(test.get_absolute_url()).content.decode()
    assert f'href="{run.get_absolute_url()}"' in test_page
    assert f'href="{incident.get_absolute_url()}"' in test_page

    incident_page = viewer_client.get(incident.get_absolute_url()).content.decode()
    assert f'href="{run.get_absolute_url()}"' in incident_page
    assert f'href="{test.get_absolute_url()}"' in incident_page


def test_a_run_nothing_links_to_shows_no_empty_section(viewer_client):
    run = BackupRunFactory(source=SourceFactory(), good=True)
    assert 'id="related"' not in viewer_client.get(run.get_absolute_url()).content.decode()
