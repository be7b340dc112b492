"""The audit trail as a hash chain, and the seals of finished evidence.

Each AuditEntry carries `seq`, `prev_hash` and `entry_hash` = SHA-256 of the canonical JSON
of its content with `prev_hash` (see `canonical_entry`). Appends are serialised through one
row, AuditChainHead (pk 1): the append first UPDATEs it, which takes its row lock on
PostgreSQL (held to commit) and the write lock on SQLite (where every transaction already
begins IMMEDIATE), then reads the head, writes the entry and moves the head. So the chain
stays linear however many workers write, and an entry rolled back takes its link with it.

A finished run (backup run, restore test, restore, failover run, drill) is *sealed*: the
transaction that finishes it appends an `evidence sealed` entry holding the digest of its
evidence fields. `verify()` walks the chain and recomputes every sealed run's digest, so a
row changed by hand in the database is found even though the ORM guard was bypassed.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC

from django.apps import apps
from django.db import models, transaction
from django.db.models import F

GENESIS = "0" * 64
SEAL_ACTION = "evidence sealed"
# The content of an entry that its hash covers (the JSON is written with sorted keys). Not
# actor_id: deleting a user sets it to NULL on their entries; the name is kept and covered.
CHAINED_FIELDS = (
    "seq",
    "at",
    "actor_name",
    "source",
    "address",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "changes",
    "detail",
    "prev_hash",
)


def canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _at(value) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_entry(values: dict) -> bytes:
    """The bytes an entry's hash is taken over; `values` maps CHAINED_FIELDS to the row's values."""
    content = {name: values[name] for name in CHAINED_FIELDS}
    content["at"] = _at(content["at"])
    return canonical(content)


def entry_hash(values: dict) -> str:
    return hashlib.sha256(canonical_entry(values)).hexdigest()


def _values(entry) -> dict:
    return {name: getattr(entry, name) for name in CHAINED_FIELDS}


def append(entry):
    """Link `entry` (an unsaved AuditEntry) to the head and save both, serialised."""
    head_model = apps.get_model("dr_portal", "AuditChainHead")
    with transaction.atomic():
        # The UPDATE comes first so the lock is taken before the head is read.
        if not head_model.objects.filter(pk=1).update(seq=F("seq") + 1):
            _recreate_head(head_model, type(entry))
            head_model.objects.filter(pk=1).update(seq=F("seq") + 1)
        head = head_model.objects.get(pk=1)
        entry.seq, entry.prev_hash = head.seq, head.entry_hash
        entry.entry_hash = entry_hash(_values(entry))
        entry.save()
        head_model.objects.filter(pk=1).update(entry_hash=entry.entry_hash, entry_id=entry.pk)
    return entry


def _recreate_head(head_model, entry_model):
    """The head row is gone (a flushed test database): continue from the last entry, if any."""
    last = entry_model.objects.filter(seq__isnull=False).order_by("-seq").first()
    head_model.objects.create(
        pk=1,
        seq=last.seq if last else 0,
        entry_hash=last.entry_hash if last else GENESIS,
        entry_id=last.pk if last else None,
    )


def head() -> dict:
    """The chain head as reports print it: the last entry's id, position and hash."""
    row = apps.get_model("dr_portal", "AuditChainHead").objects.filter(pk=1).first()
    if row is None:
        return {"entry_id": None, "seq": 0, "hash": GENESIS}
    return {"entry_id": row.entry_id, "seq": row.seq, "hash": row.entry_hash}


# --- sealed evidence ------------------------------------------------------------------------


def evidence_digest(instance) -> str:
    """SHA-256 over a finished run's evidence fields, as stored (read the row back first)."""
    content = {"model": instance._meta.label_lower, "pk": instance.pk}
    for name in instance.EVIDENCE_FIELDS:
        model_field = instance._meta.get_field(name)
        value = model_field.value_from_object(instance)
        if not isinstance(model_field, models.JSONField) and value is not None:
            value = model_field.value_to_string(instance)
        content[name] = value
    return hashlib.sha256(canonical(content)).hexdigest()


# --- verification ---------------------------------------------------------------------------


@dataclass
class Report:
    entries: int = 0
    head: dict = field(default_factory=dict)
    broken: dict | None = None  # the first broken entry: id, seq and why
    sealed: int = 0
    changed: list = field(default_factory=list)  # sealed runs whose evidence differs
    removed: list = field(default_factory=list)  # sealed runs no longer in the database

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.changed

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "first_broken": self.broken,
            "sealed_runs": self.sealed,
            "changed_runs": self.changed,
            "removed_runs": self.removed,
        }


def verify() -> Report:
    report = Report(head=head())
    seals = _walk(report)
    _check_seals(report, seals)
    return report


def _walk(report: Report) -> dict:
    """Check every link in order; stop at the first broken entry. Returns the seals read."""
    entry_model = apps.get_model("dr_portal", "AuditEntry")
    if entry_model.objects.filter(seq__isnull=True).exists():
        first = entry_model.objects.filter(seq__isnull=True).order_by("pk").first()
        report.broken = {"id": first.pk, "seq": None, "why": "not linked into the chain"}
    prev, expected_seq, seals = GENESIS, 1, {}
    for entry in entry_model.objects.filter(seq__isnull=False).order_by("seq").iterator(2000):
        report.entries += 1
        why = _link_problem(entry, prev, expected_seq)
        if why:
            report.broken = report.broken or {"id": entry.pk, "seq": entry.seq, "why": why}
            return seals
        if entry.action == SEAL_ACTION:
            seals[(entry.object_type, entry.object_id)] = (entry.pk, entry.changes)
        prev, expected_seq = entry.entry_hash, entry.seq + 1
    if report.broken is None and (report.head["seq"], report.head["hash"]) != (
        expected_seq - 1,
        prev,
    ):
        report.broken = {
            "id": report.head["entry_id"],
            "seq": report.head["seq"],
            "why": f"the chain head does not match the last entry (seq {expected_seq - 1}): "
            "entries were removed from the end",
        }
    return seals


def _link_problem(entry, prev: str, expected_seq: int) -> str:
    if entry.seq != expected_seq:
        return f"expected position {expected_seq}, found {entry.seq}: entries were removed"
    if entry.prev_hash != prev:
        return "its previous-hash does not match the entry before it"
    if entry.entry_hash != entry_hash(_values(entry)):
        return "its content does not match its hash: the entry was changed"
    return ""


def _check_seals(report: Report, seals: dict):
    for (object_type, object_id), (entry_id, changes) in seals.items():
        report.sealed += 1
        label = f"{object_type} #{object_id}"
        try:
            model = apps.get_model(object_type)
        except (LookupError, ValueError):
            report.removed.append({"run": label, "seal_entry": entry_id})
            continue
        row = model._default_manager.filter(pk=object_id).first()
        if row is None:
            report.removed.append({"run": label, "seal_entry": entry_id})
        elif evidence_digest(row) != (changes or {}).get("evidence_sha256"):
            report.changed.append({"run": label, "seal_entry": entry_id})
