"""In a real browser: an operator ticks one table in a backup's contents, reviews the
dependency plan and starts the restore; the cluster restores it beside the target's tables
and the restore's page shows the row-count check."""

import re

import pytest
from playwright.sync_api import expect

from backups import services as backup_services
from recovery.contents import contents_for
from recovery.models import Restore
from tests.e2e.conftest import log_in
from tests.factories import (
    PASSWORD,
    BackupJobFactory,
    DestinationFactory,
    RestoreTargetFactory,
    UserFactory,
)
from tests.recovery.pgutil import fill_toolhub, table_fingerprint, temp_database
from tests.support import data

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT = 90_000  # ms


def test_operator_chooses_a_table_reviews_the_plan_and_restores_it(page, tmp_path):
    with temp_database() as db, temp_database() as into:
        fill_toolhub(db)
        source = data.pg_source("toolhub-pg", db.dbname)
        job = BackupJobFactory(
            source=source,
            destinations=[DestinationFactory(name="local", path=str(tmp_path / "backups"))],
        )
        run = backup_services.backup_now(job)
        assert run.status == "succeeded", run.error
        contents_for(run)
        target = RestoreTargetFactory(name="reporting", database=into.dbname)
        UserFactory(username="otto", role="operator")

        log_in(page, "otto", PASSWORD)
        page.goto(f"/backups/runs/{run.pk}/")
        page.get_by_label("Choose public.executions").check()
        page.shot("contents-table-chosen")
        page.click("button:has-text('Restore chosen tables')")
        page.wait_for_url(re.compile(r"/recovery/runs/\d+/restore-chosen/\?item="))
        expect(page.locator("input[name=items][value='public.executions']")).to_be_checked()
        page.select_option("select[name=restore_target]", str(target.pk))
        page.click("button:has-text('Review')")
        plan = page.locator("#restore-plan")
        expect(plan).to_contain_text("sequence public.executions_id_seq")
        expect(plan).to_contain_text("executions_workflow_id_fkey")  # reported, skipped
        page.shot("restore-plan")
        assert not Restore.objects.exists()  # reviewing starts nothing
        page.click("#start-restore")
        page.wait_for_url(re.compile(r"/recovery/restores/\d+/$"))
        expect(page.locator("body")).to_contain_text("succeeded", timeout=RUN_TIMEOUT)
        expect(page.locator("body")).to_contain_text("rows in public.executions_restored")
        page.shot("restore-succeeded")
        restore = Restore.objects.get()
        assert restore.status == "succeeded", restore.error
        assert restore.requested_by.username == "otto"
        assert table_fingerprint(into, "executions_restored") == table_fingerprint(db, "executions")
