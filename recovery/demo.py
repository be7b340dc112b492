"""Demo: the Tool Hub database is restore-tested after every backup, and a failover
runbook to try in test mode (idempotent)."""


def load(stdout):
    from backups.models import Source
    from recovery.failover import demo as failover_demo

    source = Source.objects.filter(name="toolhub-db").first()
    if source is not None:
        if not source.restore_test_after_backup:
            source.restore_test_after_backup = True
            source.save(update_fields=["restore_test_after_backup"])
        stdout.write("demo: toolhub-db is restore-tested after every backup and weekly")
    failover_demo.load(stdout)
