"""Preview: the first rows of one table as it is in a backup (managers, audited).

Read from a scratch copy: the table alone is restored into a scratch database on the
scratch server (the one restore tests use) and dropped right after; restore tests drop
their own scratch copies when they finish, so there is none to reuse. It runs in the
request, not as a task: the rows must not be stored anywhere (a task's result is), and
the work is bounded to one table. Masked columns (the source's `masked_columns`) are
never read from the scratch database; the audit line names the table, never the data.
"""

import shutil
import tempfile

from backups.models import BackupRun
from recovery.copies import fetch_verified
from recovery.engine import pg, pgarchive
from recovery.engine.pg import RestoreError
from recovery.engine.preview import Preview, masker, preview_table
from recovery.runner import RecoveryFailure
from recovery.workspace import scratch_prefix, scratch_server, work_dir

ROWS = 20
WIDTH = 80  # characters shown per value


def preview(run: BackupRun, table: str) -> Preview:
    """The first rows of `table` (schema.table) in `run`; RecoveryFailure when it cannot."""
    source = run.source
    if source is None:
        raise RecoveryFailure(f"backup run #{run.pk} has no source any more")
    patterns = list(source.masked_columns or [])
    server = scratch_server()
    secrets = server.secrets()
    # dr_scratch_<epoch>_<hex>: the sweeper drops it if this process dies before dropping it
    prefix = scratch_prefix()
    scratch = pg.new_scratch_name(prefix) if prefix else pg.new_scratch_name()
    tmp = tempfile.mkdtemp(prefix=f"dr-preview-{run.pk}-", dir=work_dir())  # 0700
    try:
        fetched = fetch_verified(run, tmp, lambda line: None, secrets)
        try:
            toc = pgarchive.read_toc_file(fetched.path)
            shown = preview_table(
                server.with_db("postgres"),
                fetched.path,
                toc,
                table,
                scratch_name=scratch,
                work_dir=tmp,
                is_masked=masker(patterns),
                limit=ROWS,
                width=WIDTH,
            )
        except (RestoreError, pgarchive.ArchiveFormatError) as exc:
            raise RecoveryFailure(str(exc)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return shown
