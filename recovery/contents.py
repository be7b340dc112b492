"""Contents of a backup (cached per run) and the comparison of two backups of a source.

The listing is read once from the best copy, verified like any restore reads it (SHA-256
and authentication, in a private 0700 directory removed afterwards), and kept in
BackupContents: a backup never changes, so listing it again is one row read.
"""

import shutil
import tempfile

from django.db import IntegrityError, transaction

from backups.models import BackupRun
from recovery.copies import artifact_kind, copy_label, fetch_verified
from recovery.engine.contents import contents_of
from recovery.engine.pg import RestoreError
from recovery.models import BackupContents
from recovery.runner import RecoveryFailure
from recovery.workspace import work_dir

# the item types a comparison lines up, per kind
COMPARED = {"postgresql": {"table", "materialized view"}, "sqlite": {"table"}, "files": {"file"}}


def cached(run: BackupRun, *, detail: bool = True) -> BackupContents | None:
    """The cached listing; detail=False leaves out the archive's table of contents kept for
    planning partial restores (large for a big dump, unused by the tree)."""
    rows = BackupContents.objects.filter(run=run)
    return (rows if detail else rows.defer("detail")).first()


def contents_for(run: BackupRun, *, refresh: bool = False, log_line=None) -> BackupContents:
    """The run's contents, read from its artifact when not cached; RecoveryFailure if not."""
    found = None if refresh else cached(run)
    if found is not None:
        return found
    if run.source is None:
        raise RecoveryFailure(f"backup run #{run.pk} has no source any more")
    kind = artifact_kind(run)
    tmp = tempfile.mkdtemp(prefix=f"dr-contents-{run.pk}-", dir=work_dir())  # 0700
    try:
        fetched = fetch_verified(run, tmp, log_line or (lambda line: None), [])
        try:
            listing = contents_of(kind, fetched.path)
        except RestoreError as exc:
            raise RecoveryFailure(str(exc)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fields = {
        "kind": listing.pop("kind"),
        "items": listing.pop("items"),
        "summary": listing.pop("summary"),
        "detail": listing,
        "copy_used": copy_label(fetched.copy),
    }
    try:
        with transaction.atomic():
            contents, _ = BackupContents.objects.update_or_create(run=run, defaults=fields)
    except IntegrityError:  # two readers raced: the other one's row is as good
        contents = BackupContents.objects.get(run=run)
    return contents


def as_json(run: BackupRun, contents: BackupContents) -> dict:
    return {
        "run": run.pk,
        "source": run.source_name,
        "data_taken_at": run.data_taken_at.isoformat() if run.data_taken_at else None,
        "kind": contents.kind,
        "summary": contents.summary,
        **{k: v for k, v in contents.detail.items() if k != "toc"},
        "items": contents.items,
        "computed_at": contents.computed_at.isoformat(),
    }


def _key(item: dict) -> str:
    schema = item.get("schema")
    return f"{schema}.{item['name']}" if schema else item["name"]


def _delta(new, old):
    return None if new is None or old is None else new - old


def compare(older: BackupContents, newer: BackupContents) -> list[dict]:
    """Per table (or file): bytes and rows in each backup and the change, changed first.

    A table only in one backup is "added" or "removed"; rows are None where not known.
    """
    types = COMPARED.get(newer.kind, set())
    before = {_key(i): i for i in older.items if i["type"] in types}
    after = {_key(i): i for i in newer.items if i["type"] in types}
    rows = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name, {}), after.get(name, {})
        row = {
            "name": name,
            "state": "added" if not a else "removed" if not b else "same",
            "bytes_before": a.get("bytes"),
            "bytes_after": b.get("bytes"),
            "bytes_delta": _delta(b.get("bytes"), a.get("bytes")),
            "rows_before": a.get("rows"),
            "rows_after": b.get("rows"),
            "rows_delta": _delta(b.get("rows"), a.get("rows")),
        }
        if row["state"] == "same" and (row["bytes_delta"] or row["rows_delta"]):
            row["state"] = "changed"
        rows.append(row)
    order = {"removed": 0, "changed": 1, "added": 2, "same": 3}
    rows.sort(key=lambda r: (order[r["state"]], -abs(r["rows_delta"] or 0), r["name"]))
    return rows


def check_comparable(older: BackupRun, newer: BackupRun):
    if older.source_id is None or older.source_id != newer.source_id:
        raise ValueError(f"runs #{older.pk} and #{newer.pk} are not backups of the same source")
