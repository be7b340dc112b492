"""Contacts as CSV: export, and an all-or-nothing import that reports every bad row by line.

Columns (header row required, any order): role, name, phone, email, on_call, notes.
on_call is empty, "primary" or "secondary". A row matches an existing contact by
(role, name) and updates it; other rows create contacts; contacts not in the file stay.
An on-call slot (role + primary/secondary) given in the file moves to that person.
If any row is bad, nothing at all is imported and every bad row is listed.
Webhook URLs are secrets: they are neither exported nor imported.
"""

import csv
import io
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from dr_portal.lib.text import LONG_TEXT, validate_phone
from incidents.models import Contact, OnCall

COLUMNS = ["role", "name", "phone", "email", "on_call", "notes"]
REQUIRED = {"role", "name"}
MAX_BYTES = 1_000_000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    # A spreadsheet would run "=cmd|..." as a formula: quote it as text.
    value = value or ""
    return "'" + value if value.startswith(_FORMULA) else value


def export_csv(contacts) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for c in contacts:
        writer.writerow(
            [
                _cell(c.role),
                _cell(c.name),
                _cell(c.phone),
                _cell(c.email),
                c.on_call,
                _cell(c.notes),
            ]
        )
    return buffer.getvalue()


@dataclass
class ImportResult:
    errors: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    moved_slots: list[str] = field(default_factory=list)

    @property
    def ok(self):
        return not self.errors


def _clean(value) -> str:
    text = " ".join((value or "").split())
    return text[1:] if text.startswith("'") and text[1:2] in _FORMULA else text


def _reader(data: bytes) -> tuple[csv.DictReader | None, str]:
    """A reader over the rows with the header normalised, or None and the one problem."""
    if len(data) > MAX_BYTES:
        return None, f"The file is larger than {MAX_BYTES // 1000} kB."
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "The file is not UTF-8 text. Save it as CSV UTF-8."
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        return None, (
            "The file is empty: the first line must be the header " + ",".join(COLUMNS) + "."
        )
    missing = REQUIRED - set(header)
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown:
        problems = []
        if missing:
            problems.append("missing column(s) " + ", ".join(sorted(missing)))
        if unknown:
            problems.append("unknown column(s) " + ", ".join(unknown))
        return None, f"Line 1 (header): {'; '.join(problems)}. Expected: {','.join(COLUMNS)}."
    reader.fieldnames = header
    return reader, ""


def _field_problems(row: dict) -> list[str]:
    """What is wrong with one row on its own; normalises its on_call."""
    problems = []
    if not row["role"]:
        problems.append("role is empty")
    if not row["name"]:
        problems.append("name is empty")
    if len(row["role"]) > 60:
        problems.append("role is longer than 60 characters")
    if len(row["name"]) > 120:
        problems.append("name is longer than 120 characters")
    problems += _contact_problems(row)
    row["on_call"] = row["on_call"].lower()
    if row["on_call"] in ("no", "none", "-"):
        row["on_call"] = ""
    if row["on_call"] not in ("", OnCall.PRIMARY, OnCall.SECONDARY):
        problems.append(f"on_call must be empty, primary or secondary, not {row['on_call']!r}")
    return problems


def _contact_problems(row: dict) -> list[str]:
    """Phone, email and notes: the same limits as the contact form."""
    problems = []
    if len(row["phone"]) > 40:
        problems.append("phone is longer than 40 characters")
    else:
        try:
            validate_phone(row["phone"])
        except ValidationError as exc:
            problems.append(exc.messages[0])
    if row["email"]:
        try:
            validate_email(row["email"])
        except ValidationError:
            problems.append(f"email {row['email']!r} is not an email address")
    if len(row["notes"]) > LONG_TEXT:
        problems.append(f"notes are longer than {LONG_TEXT:,} characters")
    return problems


class _Seen:
    """Who (role, name) and which on-call slots earlier lines of the file gave."""

    def __init__(self):
        self.people: dict[tuple, int] = {}
        self.slots: dict[tuple, int] = {}

    def problems(self, row: dict, line: int, problems: list[str]) -> None:
        """Add to `problems` what clashes with earlier lines; remember this line's entries."""
        key = (row["role"].lower(), row["name"].lower())
        if row["role"] and row["name"]:
            if key in self.people:
                problems.append(
                    f"{row['name']} as {row['role']} is already on line {self.people[key]}"
                )
            else:
                self.people[key] = line
        if row["on_call"] and row["role"] and not problems:
            slot = (row["role"].lower(), row["on_call"])
            if slot in self.slots:
                problems.append(
                    f"{row['role']} {row['on_call']} on-call is already given on line "
                    f"{self.slots[slot]}"
                )
            else:
                self.slots[slot] = line


def parse(data: bytes) -> tuple[list[dict], list[str]]:
    """Rows (with their line numbers) and every problem found, each naming its line."""
    reader, problem = _reader(data)
    if reader is None:
        return [], [problem]
    rows, errors, seen = [], [], _Seen()
    for record in reader:
        line = reader.line_num
        if None in record:
            errors.append(f"Line {line}: more cells than columns in the header.")
            continue
        row = {k: _clean(record.get(k)) for k in COLUMNS}
        row["notes"] = (record.get("notes") or "").strip()
        if not any(row.values()):
            continue  # blank line
        problems = _field_problems(row)
        seen.problems(row, line, problems)
        if problems:
            errors.append(f"Line {line}: " + "; ".join(problems) + ".")
        else:
            row["line"] = line
            rows.append(row)
    if not rows and not errors:
        errors.append("The file has a header but no contacts.")
    return rows, errors


def import_csv(data: bytes) -> ImportResult:
    rows, errors = parse(data)
    result = ImportResult(errors=errors)
    if errors:
        return result  # all or nothing: one bad row imports nothing
    existing_slots = dict(Contact.objects.exclude(on_call="").values_list("pk", "on_call"))
    with transaction.atomic():
        existing = {
            (c.role.lower(), c.name.lower()): c for c in Contact.objects.select_for_update()
        }
        in_file = {(r["role"].lower(), r["name"].lower()) for r in rows}
        # Free every slot the file reassigns (and the old slots of people in the file whose
        # slot changes) before anyone takes one, so handovers and swaps never collide.
        wanted = {(r["role"].lower(), r["on_call"]): r["name"] for r in rows if r["on_call"]}
        for key, contact in existing.items():
            if not contact.on_call:
                continue
            slot = (contact.role.lower(), contact.on_call)
            if slot in wanted and key not in in_file:
                result.moved_slots.append(
                    f"{contact.role} {contact.on_call} on-call: {contact.name} → {wanted[slot]}"
                )
            if slot in wanted or key in in_file:
                contact.on_call = OnCall.NONE
                contact.save(update_fields=["on_call"])
        for row in rows:
            fields = {k: row[k] for k in ("phone", "email", "on_call", "notes")}
            contact = existing.get((row["role"].lower(), row["name"].lower()))
            if contact is None:
                Contact.objects.create(role=row["role"], name=row["name"], **fields)
                result.created += 1
                continue
            before = Contact.objects.filter(pk=contact.pk).values(*fields).get()
            for k, v in fields.items():
                setattr(contact, k, v)
            contact.save(update_fields=list(fields))
            if any(before[k] != v for k, v in fields.items() if k != "on_call") or (
                contact.on_call != (existing_slots.get(contact.pk) or "")
            ):
                result.updated += 1
    return result
