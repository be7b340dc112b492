"""A portal Source over a real PITR cluster (tests/support/pitr.py), so the code under test
gets its stanza from Source.to_stanza() like in service.

The cluster is made with the passphrase the portal derives for the source's name from the
test key ring, and the source's rows (source, local destination = the cluster's repository,
a physical job) point at it. `settings.VAR_DIR` moves to a directory the postgres OS user
can read, since pgBackRest reads the configuration the portal writes there.
"""

import json
from datetime import timedelta
from io import StringIO

from django.core.management import call_command

from backups import pitr
from backups.engine import pgbackrest
from backups.models import BackupJob, record_window
from dr_portal.lib import keyring
from tests.factories import BackupJobFactory, DestinationFactory, SourceFactory
from tests.support.pitr import ARCHIVE_TIMEOUT_S, ROWS_TABLE, owned_tempdir, wait_until

ROWS_CHECK = {"name": "rows", "sql": f"SELECT count(*) FROM {ROWS_TABLE}", "expect": "> 0"}


def portal_passphrase(name: str) -> str:
    return pitr.cipher_pass(keyring.newest(), name)


def make_portal_source(cluster, settings, checks=(ROWS_CHECK,)):
    settings.VAR_DIR = owned_tempdir("dr-pitr-var-")
    source = SourceFactory(
        postgresql=True,
        name=cluster.stanza.name,
        host=cluster.socket_dir,
        port=cluster.port,
        user="postgres",
        database="postgres",
        pitr=True,
        data_directory=str(cluster.data),
        archive_timeout_s=ARCHIVE_TIMEOUT_S,
        checks=list(checks),
    )
    repo = DestinationFactory(local=True, path=cluster.stanza.repos[0].path)
    BackupJobFactory(source=source, method=BackupJob.Method.PHYSICAL, destinations=[repo])
    record_window(source, pgbackrest.window(source.to_stanza()))
    return source


def wait_for_archive(cluster, seconds: float):
    """Until the window reaches `seconds` past the cluster's base backup."""
    return wait_until(
        lambda: (
            pgbackrest.window(cluster.stanza).newest
            >= cluster.full.stopped + timedelta(seconds=seconds)
        ),
        seconds + ARCHIVE_TIMEOUT_S + 30,
        what="the archive to cover the writer's commits",
    )


def call(*args, **options) -> tuple[int, dict | str]:
    out = StringIO()
    try:
        call_command(*args, stdout=out, **options)
        code = 0
    except SystemExit as exc:
        code = exc.code
    text = out.getvalue()
    try:
        return code, json.loads(text)
    except ValueError:
        return code, text
