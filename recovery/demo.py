"""Demo: the Tool Hub database is restore-tested after every backup (idempotent)."""


def load(stdout):
    from backups.models import Source

    source = Source.objects.filter(name="toolhub-db").first()
    if source is None:
        return
    if not source.restore_test_after_backup:
        source.restore_test_after_backup = True
        source.save(update_fields=["restore_test_after_backup"])
    stdout.write("demo: toolhub-db is restore-tested after every backup and weekly")
