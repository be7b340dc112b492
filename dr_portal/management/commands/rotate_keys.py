"""Re-encrypt every stored secret with the newest master key.

Each row is rewritten in its own small transaction, so an interrupted run loses
nothing and a re-run only touches rows still sealed with an older key. Encrypted
backup artifacts are not rewritten: their headers name the key that wrapped them,
so keep old keys in DR_ENCRYPTION_KEYS (after the newest) while such artifacts exist.
"""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from dr_portal import audit
from dr_portal.fields import EncryptedTextField, Secret
from dr_portal.lib import keyring


def encrypted_fields():
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            yield model, names


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the newest key in DR_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, dry_run=False, **options):
        try:
            ring = keyring.ring()
        except keyring.KeyRingError as exc:
            raise CommandError(str(exc)) from None
        rotated = current = 0
        for model, names in encrypted_fields():
            for pk in model._default_manager.values_list("pk", flat=True).iterator():
                with transaction.atomic():
                    row = model._default_manager.select_for_update().get(pk=pk)
                    updates = {}
                    for name in names:
                        secret = getattr(row, name)
                        if not secret:
                            continue
                        if keyring.sealed_with_newest(secret.token, ring):
                            current += 1
                            continue
                        try:
                            updates[name] = Secret(keyring.reseal(secret.token, ring))
                        except keyring.KeyRingError as exc:
                            raise CommandError(
                                f"{model._meta.label} #{pk} field {name}: {exc}"
                            ) from None
                    if updates and not dry_run:
                        model._default_manager.filter(pk=pk).update(**updates)
                        rotated += len(updates)
                    elif updates:
                        rotated += len(updates)
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        if not dry_run:
            audit.record(
                "rotate_keys", detail=f"{rotated} secrets re-encrypted with {ring[0].key_id}"
            )
        self.stdout.write(
            f"{verb} {rotated} secrets with key {ring[0].key_id}; {current} already current"
        )
