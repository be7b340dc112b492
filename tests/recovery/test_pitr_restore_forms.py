"""Restore to a point without a cluster: the page, the form's refusals, data directory
targets' validation, the point parser and the failover step's parameters."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from backups.engine.pgbackrest import Window
from backups.models import record_window
from recovery import pitr_restores
from recovery.failover.builtin import TEMPLATES
from recovery.failover.steps import parse_step, parse_steps
from recovery.models import PitrPoint, Restore, RestoreTarget
from recovery.tasks import housekeeping, leftover_age_s
from tests.factories import RestoreTargetFactory, RestoreTestFactory, SourceFactory

pytestmark = pytest.mark.django_db
NEWEST = datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC)


@pytest.fixture
def source(tmp_path):
    source = SourceFactory(
        postgresql=True, name="pg-main", pitr=True, data_directory=str(tmp_path / "pgdata")
    )
    record_window(
        source,
        Window(oldest=NEWEST - timedelta(hours=2), newest=NEWEST, checked_at=NEWEST),
    )
    return source


def datadir_target(path, **kwargs):
    values = dict(
        name="copies", kind=RestoreTarget.Kind.DATADIR, path=str(path), port=6000, port_max=6010
    )
    values.update(host="", user="", database="", **kwargs)
    return RestoreTargetFactory(**values)


def test_page_shows_the_window_and_prefills_the_newest_point(operator_client, source, tmp_path):
    datadir_target(tmp_path)
    page = operator_client.get(reverse("recovery:pitr_restore_new", args=[source.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "2026-06-01 10:00:05" in text and "2026-06-01 12:00:05" in text and "UTC" in text
    assert 'value="2026-06-01T12:00:05"' in text
    assert "onto_source" not in text  # operators: registered targets only


def test_viewers_may_not_restore(viewer_client, source):
    page = viewer_client.get(reverse("recovery:pitr_restore_new", args=[source.pk]))
    assert page.status_code == 403


def test_the_source_page_links_the_restore_to_a_point(operator_client, source):
    page = operator_client.get(reverse("recovery:source_detail", args=[source.pk]))
    assert reverse("recovery:pitr_restore_new", args=[source.pk]) in page.content.decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"confirm": "pg-other"}, "Type pg-main exactly"),
        ({"directory": "../etc"}, "A new directory&#x27;s name"),
        ({"restore_target": ""}, "Choose a registered data directory target"),
        ({"at": "yesterday"}, "Enter a valid date/time"),
    ],
)
def test_bad_form_input_changes_nothing(manager_client, source, tmp_path, changes, message):
    target = datadir_target(tmp_path)
    data = {
        "at": "2026-06-01T11:00:00",
        "restore_target": target.pk,
        "directory": "copy",
        "port": 6001,
        "failure_type": "database_failure",
        "confirm": "pg-main",
        **changes,
    }
    page = manager_client.post(reverse("recovery:pitr_restore_new", args=[source.pk]), data)
    assert page.status_code == 200 and message in page.content.decode()
    assert Restore.objects.count() == 0 and not (tmp_path / "copy").exists()


def test_a_port_outside_the_targets_range_is_refused(source, tmp_path):
    target = datadir_target(tmp_path)
    with pytest.raises(ValueError, match="outside target copies"):
        pitr_restores.resolve_datadir(source, str(tmp_path / "copy"), 7000, target)
    with pytest.raises(ValueError, match="not directly under a registered"):
        pitr_restores.resolve_datadir(source, str(tmp_path / "a" / "copy"), 6001)
    assert pitr_restores.resolve_datadir(source, source.data_directory, 6001) == (None, True)


def test_data_directory_targets_are_validated(source, tmp_path):
    inside_source = RestoreTarget(
        name="bad",
        kind=RestoreTarget.Kind.DATADIR,
        path=source.data_directory,
        port=6000,
        port_max=6010,
    )
    (tmp_path / "pgdata").mkdir()
    with pytest.raises(ValidationError, match="overlaps the data directory of source pg-main"):
        inside_source.full_clean()
    backwards = RestoreTarget(
        name="ports", kind=RestoreTarget.Kind.DATADIR, path=str(tmp_path), port=6010, port_max=6000
    )
    with pytest.raises(ValidationError, match="must not be below the lowest"):
        backwards.full_clean()
    missing = RestoreTarget(
        name="gone",
        kind=RestoreTarget.Kind.DATADIR,
        path=str(tmp_path / "nope"),
        port=6000,
        port_max=6000,
    )
    with pytest.raises(ValidationError, match="not an existing directory"):
        missing.full_clean()
    (tmp_path / "copies").mkdir()
    good = RestoreTarget(
        name="good",
        kind=RestoreTarget.Kind.DATADIR,
        path=str(tmp_path / "copies"),
        port=6000,
        port_max=6009,
    )
    good.full_clean()
    assert list(good.ports()) == list(range(6000, 6010))


def test_points_are_iso_8601_and_utc_unless_zoned():
    assert pitr_restores.parse_point("2026-06-01T12:00:05Z") == NEWEST
    assert pitr_restores.parse_point("2026-06-01 12:00:05") == NEWEST
    assert pitr_restores.parse_point("2026-06-01T14:00:05+02:00") == NEWEST
    for bad in ("", "tomorrow", "2026-13-01T00:00:00"):
        with pytest.raises(ValueError, match="ISO-8601"):
            pitr_restores.parse_point(bad)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"directory": "../data"}, "params.directory"),
        ({"directory": "a/b"}, "params.directory"),
        ({"at": "noon"}, "params.at"),
        ({"port": 80}, "params.port"),
    ],
)
def test_pitr_restore_step_parameters(params, message):
    defn = {
        "name": "restore",
        "kind": "pitr_restore",
        "params": {"source": "pg", "target": "t", "directory": "copy", "port": 6001, **params},
    }
    spec, errors = parse_step(defn, "step 1", allow_command=False)
    assert spec is None and any(message in e for e in errors), errors


def test_the_scenario_a_template_is_valid():
    specs = parse_steps(TEMPLATES["database_point_in_time"].definitions(), allow_command=False)
    assert [s.kind for s in specs] == ["manual", "pitr_restore", "manual"]


def test_housekeeping_removes_old_pitr_scratch_directories(settings, tmp_path):
    settings.DR_PITR_SCRATCH_DIR = str(tmp_path)
    old = tmp_path / f"dr_pitr_{int(time.time() - leftover_age_s() - 60)}_0123abcd"
    fresh = tmp_path / f"dr_pitr_{int(time.time())}_4567cdef"
    for path in (old, fresh):
        (path / "data").mkdir(parents=True)

    result = housekeeping()

    assert str(old) in result["dirs_removed"] and not old.exists() and fresh.exists()


def test_the_test_page_shows_the_point_recovered_to_and_rpo_proven(viewer_client, source):
    test = RestoreTestFactory(
        source=source,
        status="succeeded",
        pitr_point=PitrPoint.RANDOM,
        target_time=NEWEST,
        recovered_to=NEWEST - timedelta(seconds=1),
        data_at=NEWEST - timedelta(seconds=1),
        data_basis="replay",
        data_age=timedelta(seconds=1),
        phases=[{"name": "replay", "ok": True, "seconds": 2.5, "detail": ""}],
    )
    text = viewer_client.get(test.get_absolute_url()).content.decode()
    assert "Point restored" in text and "2026-06-01 12:00:05 UTC" in text
    assert "random point inside the window" in text
    assert "Recovered to" in text and "2026-06-01 12:00:04" in text
    assert "RPO proven" in text and "replay" in text
