"""A job's `parallel` option: the job form and dr_apply/dr_export accept 1-16 on PostgreSQL
logical jobs only, with a message naming the rule, and change nothing otherwise."""

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse

from backups.models import BackupJob
from tests.factories import SourceFactory

from .test_config_as_code import _apply, _write, config, env  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def pg_source(system):
    return SourceFactory(postgresql=True, system=system, name="toolhub-pg", database="tool_hub")


def _job_post(source, dest, **extra):
    return {
        "name": "nightly",
        "source": source.pk,
        "destinations": [dest.pk],
        "schedule": "0 2 * * *",
        "timezone": "UTC",
        "compression": "zstd",
        "encrypt": "on",
        "enabled": "on",
        **extra,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "Parallel dump jobs go from 1 to 16"), ("17", "Parallel dump jobs go from 1 to 16")],
)
def test_form_refuses_parallel_out_of_range(manager_client, pg_source, local_dest, value, message):
    url = reverse("backups:job_create")
    response = manager_client.post(url, _job_post(pg_source, local_dest, parallel=value))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not BackupJob.objects.exists()


def test_form_refuses_parallel_for_a_sqlite_source(manager_client, sqlite_source, local_dest):
    url = reverse("backups:job_create")
    response = manager_client.post(url, _job_post(sqlite_source, local_dest, parallel="4"))
    assert response.status_code == 400
    assert "Parallel dumps are for PostgreSQL sources only" in response.content.decode()
    assert not BackupJob.objects.exists()


def test_form_saves_parallel_and_the_job_page_names_the_dump(
    manager_client, viewer_client, pg_source, local_dest
):
    url = reverse("backups:job_create")
    response = manager_client.post(url, _job_post(pg_source, local_dest, parallel="3"))
    assert response.status_code == 302
    job = BackupJob.objects.get(name="nightly")
    assert job.parallel == 3
    page = viewer_client.get(job.get_absolute_url()).content.decode()
    assert "pg_dump -Fd -j 3" in page and "pg_restore -j 3" in page
    # a post without the field (a form from before it existed) keeps the job's value
    edit = reverse("backups:job_edit", args=[job.pk])
    response = manager_client.post(edit, _job_post(pg_source, local_dest, schedule="0 3 * * *"))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.parallel == 3 and job.schedule == "0 3 * * *"


def test_dr_apply_sets_parallel_and_dr_export_round_trips_it(
    tmp_path,
    config,  # noqa: F811
    env,  # noqa: F811
    capsys,
):
    config["jobs"].append(
        {"name": "toolhub-pg-nightly", "source": "toolhub-pg", "destinations": ["local"]}
        | {"parallel": 4}
    )
    call_command("dr_apply", str(_write(tmp_path, config)))
    assert BackupJob.objects.get(name="toolhub-pg-nightly").parallel == 4
    capsys.readouterr()
    call_command("dr_export")
    jobs = {j["name"]: j for j in yaml.safe_load(capsys.readouterr().out)["jobs"]}
    assert jobs["toolhub-pg-nightly"]["parallel"] == 4
    assert "parallel" not in jobs["toolhub-db-daily"]  # the default stays out of the file


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"source": "toolhub-pg", "parallel": 17}, "jobs[1].parallel: Parallel dump jobs go"),
        ({"source": "toolhub-pg", "parallel": "4"}, "jobs[1].parallel: must be a whole number"),
        ({"source": "toolhub-db", "parallel": 2}, "jobs[1].parallel: Parallel dumps are for"),
    ],
)
def test_dr_apply_refuses_a_bad_parallel_and_changes_nothing(
    tmp_path,
    config,  # noqa: F811
    env,  # noqa: F811
    capsys,
    job,
    message,
):
    config["jobs"].append({"name": "bad", "destinations": ["local"], **job})
    assert _apply(_write(tmp_path, config)) == 1
    assert message in capsys.readouterr().err
    assert not BackupJob.objects.exists()
