"""Links from incidents to runs: a linked run finishing adds a timeline entry by itself."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.urls import reverse

from dr_portal.runs import RunStatus, run_models
from incidents.links import linkable_models, note_run_transition
from incidents.models import IncidentLink, TimelineEntry
from tests.factories import BackupRunFactory, RestoreTestFactory, SourceFactory
from tests.support.forms import form_data


def _some_run():
    """A real run row of whichever run model exists (backup run, restore test, ...)."""
    for model in run_models():
        try:
            with transaction.atomic():
                return model.objects.create()
        except Exception:
            continue
    pytest.fail("no run model could be created to link")


def test_linked_run_finishing_adds_timeline_entry(operator_client, make_incident, sync_queue):
    incident = make_incident()
    run = _some_run()
    ct = ContentType.objects.get_for_model(type(run))
    response = operator_client.post(
        reverse("incidents:link_add", args=[incident.identifier]),
        {"content_type": ct.pk, "object_id": run.pk, "note": "the failing nightly"},
    )
    assert response.status_code == 302
    link = IncidentLink.objects.get()
    assert link.target == run and link.last_status == "queued"
    assert run.claim()
    # The entry follows the run's event: the consumer runs once the finish commits.
    sync_queue(run.finish, RunStatus.FAILED, "pg_dump: connection refused\nmore detail")
    entries = list(TimelineEntry.objects.filter(incident=incident, text__contains="finished"))
    assert len(entries) == 1
    entry = entries[0]
    assert entry.automatic and entry.author_name == "DR Portal"
    assert f"#{run.pk}" in entry.text and "Failed" in entry.text
    assert "pg_dump: connection refused" in entry.text and "more detail" not in entry.text
    run.refresh_from_db()
    assert entry.at == run.finished
    link.refresh_from_db()
    assert link.last_status == "failed"


def test_unlinked_run_finishing_adds_nothing(make_incident, sync_queue):
    make_incident()
    run = _some_run()
    assert run.claim()
    sync_queue(run.finish, RunStatus.SUCCEEDED)
    assert not TimelineEntry.objects.filter(automatic=True, text__contains="finished").exists()


def test_note_raises_so_the_event_is_retried(make_incident):
    """It used to swallow every error; now the run-event consumer logs and retries."""

    class NotAModel:
        pk = 1

    with pytest.raises(AttributeError):
        note_run_transition(NotAModel())


def test_linking_a_missing_run_is_refused(operator_client, make_incident):
    incident = make_incident()
    assert linkable_models(), "backup runs, restores, failover runs and drills are linkable"
    model = linkable_models()[0]
    ct = ContentType.objects.get_for_model(model)
    operator_client.post(
        reverse("incidents:link_add", args=[incident.identifier]),
        {"content_type": ct.pk, "object_id": 999999},
    )
    assert not IncidentLink.objects.exists()


def test_linking_twice_is_refused_and_unlink_works(operator_client, make_incident):
    incident = make_incident()
    run = _some_run()
    ct = ContentType.objects.get_for_model(type(run))
    url = reverse("incidents:link_add", args=[incident.identifier])
    operator_client.post(url, {"content_type": ct.pk, "object_id": run.pk})
    response = operator_client.post(url, {"content_type": ct.pk, "object_id": run.pk}, follow=True)
    assert "That is linked already." in response.content.decode()
    link = IncidentLink.objects.get()
    page = operator_client.get(incident.get_absolute_url()).content.decode()
    assert f"#{run.pk}" in page
    operator_client.post(reverse("incidents:link_remove", args=[incident.identifier, link.pk]))
    assert not IncidentLink.objects.exists()


def test_runs_are_picked_from_a_list_of_recent_ones_not_typed(
    operator_client, make_incident, system
):
    """The link form lists the newest runs, tests and failovers of each kind; picking one
    links it (issue 18: incidents linked runs by typed numbers)."""
    incident = make_incident()
    source = SourceFactory(system=system, name="toolhub")
    runs = [BackupRunFactory(source=source, source_name="toolhub") for _ in range(20)]
    test = RestoreTestFactory(source=source)
    page = operator_client.get(incident.get_absolute_url()).content.decode()
    backup_ct = ContentType.objects.get_for_model(type(runs[0]))
    newest, oldest = runs[-1], runs[0]
    assert f'value="{backup_ct.pk}:{newest.pk}"' in page
    assert f"backup run #{newest.pk} of toolhub · queued · " in page
    assert f'value="{backup_ct.pk}:{oldest.pk}"' not in page  # only the 15 newest per kind
    test_ct = ContentType.objects.get_for_model(type(test))
    assert f'value="{test_ct.pk}:{test.pk}"' in page
    data = form_data(page, "run")
    data["run"] = f"{backup_ct.pk}:{newest.pk}"
    url = reverse("incidents:link_add", args=[incident.identifier])
    assert operator_client.post(url, data).status_code == 302
    assert IncidentLink.objects.get().target == newest
    # A value not offered (an old run, or a forged one) is refused; nothing is linked.
    data["run"] = f"{backup_ct.pk}:{oldest.pk}"
    response = operator_client.post(url, data, follow=True)
    assert "link it by number" in response.content.decode()
    assert IncidentLink.objects.count() == 1
    # Nothing picked and no number: a clear message.
    response = operator_client.post(url, {"run": "", "note": ""}, follow=True)
    assert "Pick a run, or give a kind and a number." in response.content.decode()
