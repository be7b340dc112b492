"""Demo: the Tool Hub and portal databases are restore-tested after every backup, and a failover
runbook to try in test mode (idempotent)."""

from django.db.models import Q

from backups.models import Source
from recovery.failover import demo as failover_demo


def load(stdout):
    # Tool Hub's database, and the portal's own (a rebuild of the portal starts from it), are
    # created restore-tested after every backup (backups.demo); a user's later choice stands.
    for source in Source.objects.filter(Q(name="toolhub-db") | Q(is_portal_db=True)):
        if source.restore_test_after_backup:
            stdout.write(f"demo: {source.name} is restore-tested after every backup and weekly")
    failover_demo.load(stdout)
