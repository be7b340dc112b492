"""A good backup's page offers to restore-test or restore exactly that backup."""

from backups import services
from recovery.models import RestoreTest


def test_operator_restore_tests_the_backup_shown(job, operator_client, viewer_client):
    run = services.execute(services.start_run(job, "manual"))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    page = operator_client.get(run.get_absolute_url()).content.decode()
    assert "Restore-test this backup" in page
    assert f"?backup_run={run.pk}" in page
    assert (
        "Restore-test this backup" not in viewer_client.get(run.get_absolute_url()).content.decode()
    )

    response = operator_client.post(
        f"/recovery/sources/{run.source_id}/test/", {"backup_run": run.pk}
    )
    assert response.status_code == 302
    assert RestoreTest.objects.get().backup_run_id == run.pk

    form = operator_client.get(f"/recovery/sources/{run.source_id}/restore/?backup_run={run.pk}")
    assert f'value="{run.pk}" selected' in form.content.decode()
