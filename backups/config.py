"""Configuration as code, the backups section: systems, destinations, sources and jobs.

dr_apply reads a YAML file, dr_export writes the same format; the file is composed by
dr_portal.management.config_as_code, to which each app contributes its sections.

The whole file is validated before anything changes; every problem is reported with its
place ("sources[1].kind: ..."). Objects are matched by name, and a field is written only
when it differs, so applying the same file twice changes nothing the second time.
Secrets are given as `*_env: VARNAME` (or inline, discouraged) and never exported.

The file is read strictly (dr_portal.lib.strict_yaml: no duplicate keys, anchors or
aliases, at most 1 MB) and typed: a boolean must be a YAML boolean, a number a number.
A stored secret whose endpoint changes (host, port, database; bucket, region, endpoint)
is cleared unless the file gives it again: it is never sent to the new endpoint.
"""

import os
from dataclasses import dataclass, field

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from backups import config_hooks, pitr, validators
from backups.models import BackupJob, Destination, Source, System, reveal
from dr_portal import audit
from dr_portal.lib import readiness_version, strict_yaml

SECTIONS = ("systems", "destinations", "sources", "jobs")

SYSTEM_KEYS = {"name", "description"}
DESTINATION_FIELDS = [
    "kind",
    "path",
    "bucket",
    "prefix",
    "region",
    "endpoint_url",
    "storage_class",
    "checksums",
    "part_size_mb",
    "path_style",
    "immutable_days",
    "lock_mode",
    "portal_cannot_delete",
    "append_only",
    "site",
    "keep_days",
    "keep_last",
    "enabled",
]
DESTINATION_SECRETS = [
    "access_key_id",
    "secret_access_key",
    "delete_access_key_id",
    "delete_secret_access_key",
]
SOURCE_FIELDS = [
    "kind",
    "data_class",
    "host",
    "port",
    "database",
    "user",
    "path",
    "exclude",
    "masked_columns",
    "restore_test_schedule",
    "restore_test_after_backup",
    "pitr",
    "data_directory",
    "pitr_stanza",
]
# YAML name -> model field where they differ
SOURCE_RENAMES = {
    "verify": "checks",
    "heartbeat": "heartbeat_enabled",
    "portal_db": "is_portal_db",
    "globals": "backup_globals",
    "pitr_host": "pitr_pg_host",
    "pitr_host_user": "pitr_pg_host_user",
    "archive_timeout": "archive_timeout_s",
    "adopted": "pitr_adopted",
}
JOB_FIELDS = ["schedule", "timezone", "method", "compression", "encrypt", "parallel", "enabled"]
JOB_RENAMES = {"level": "compression_level", "type": "backup_type"}

# The YAML type every key must have. A lenient bool("false") is True: a quoted "false"
# once turned portal_db on and backed up the portal instead of the configured file.
TEXT, WHOLE, FLAG, LIST, MAP = "text", "a whole number", "true or false", "a list", "a mapping"
KEY_TYPES = {
    "systems": {"name": TEXT, "description": TEXT},
    "destinations": {
        "name": TEXT,
        **dict.fromkeys(
            [
                "kind",
                "path",
                "bucket",
                "prefix",
                "region",
                "endpoint_url",
                "storage_class",
                "checksums",
                "lock_mode",
                "site",
            ],
            TEXT,
        ),
        "part_size_mb": WHOLE,
        "immutable_days": WHOLE,
        "path_style": FLAG,
        "portal_cannot_delete": FLAG,
        "append_only": FLAG,
        "keep_days": WHOLE,
        "keep_last": WHOLE,
        "enabled": FLAG,
        **dict.fromkeys(
            [name + env for name in DESTINATION_SECRETS for env in ("", "_env")],
            TEXT,
        ),
    },
    "sources": {
        **dict.fromkeys(
            [
                "name",
                "system",
                "kind",
                "data_class",
                "host",
                "database",
                "user",
                "path",
                "restore_test_schedule",
                "password",
                "password_env",
                "data_directory",
                "pitr_host",
                "pitr_host_user",
                "pitr_stanza",
                "pitr_cipher_pass",
                "pitr_cipher_pass_env",
            ],
            TEXT,
        ),
        "adopted": FLAG,
        "repositories": LIST,
        "port": WHOLE,
        "archive_timeout": WHOLE,
        "pitr": FLAG,
        "exclude": LIST,
        "masked_columns": LIST,
        "verify": LIST,
        "heartbeat": FLAG,
        "globals": FLAG,
        "portal_db": FLAG,
        "restore_test_after_backup": FLAG,
    },
    "jobs": {
        **dict.fromkeys(
            ["name", "source", "schedule", "timezone", "method", "type", "compression"], TEXT
        ),
        "destinations": LIST,
        "level": WHOLE,
        "encrypt": FLAG,
        "parallel": WHOLE,
        "enabled": FLAG,
        "ping_url": TEXT,
        "hooks": MAP,  # its keys: backups.config_hooks
    },
}
_PYTHON_TYPES = {TEXT: (str,), WHOLE: (int,), FLAG: (bool,), LIST: (list,), MAP: (dict,)}


def type_problems(item: dict, section: str, where: str) -> list[str]:
    """Keys whose value has the wrong YAML type (null means "the default" and passes)."""
    problems = []
    for key, expected in KEY_TYPES[section].items():
        value = item.get(key)
        if value is None:
            continue
        wrong = not isinstance(value, _PYTHON_TYPES[expected]) or (
            expected == WHOLE and isinstance(value, bool)
        )
        if wrong:
            hint = " (unquoted true or false)" if expected == FLAG else ""
            problems.append(f"{where}.{key}: must be {expected}{hint}, not {value!r}")
    return problems


class ConfigError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Change:
    model: str
    name: str
    action: str  # create, update, unchanged
    fields: list[str] = field(default_factory=list)

    def __str__(self):
        if self.action == "update":
            return f"update {self.model} {self.name}: {', '.join(self.fields)}"
        return f"{self.action} {self.model} {self.name}"


@dataclass
class _Planned:
    change: Change
    instance: object
    secrets: dict = field(default_factory=dict)  # field -> plaintext to set
    destinations: list[str] | None = None
    repositories: list[str] | None = None  # an adopted stanza's (Source.pitr_destinations)
    system: str | None = None
    source: str | None = None


def load_text(text: str) -> dict:
    try:
        data = strict_yaml.load(text)
    except strict_yaml.StrictYamlError as exc:
        raise ConfigError([str(exc)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must be a mapping with systems, destinations, sources, jobs"])
    return data


# model field -> the YAML key the person wrote, for error places
_YAML_NAMES = {
    **{field: key for key, field in (*SOURCE_RENAMES.items(), *JOB_RENAMES.items())},
    **config_hooks.YAML_NAMES,
}


def _messages(exc: ValidationError, where: str) -> list[str]:
    out = []
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            place = where if name == "__all__" else f"{where}.{_YAML_NAMES.get(name, name)}"
            out.extend(f"{place}: {m}" for m in errors)
    else:
        out.extend(f"{where}: {m}" for m in exc.messages)
    return out


def _secret_from(item: dict, name: str, where: str, problems: list[str]):
    """The plaintext for secret `name` from `name_env` (or inline `name`); None if not given."""
    env_key = f"{name}_env"
    if env_key in item:
        var = item[env_key]
        if not isinstance(var, str) or not var:
            problems.append(f"{where}.{env_key}: give the name of an environment variable")
            return None
        value = os.environ.get(var)
        if value is None:
            problems.append(f"{where}.{env_key}: environment variable {var} is not set")
            return None
        return value
    if name in item and item[name] is not None:
        return item[name]
    return None


def _secret_differs(current, plaintext: str) -> bool:
    if not current:
        return bool(plaintext)
    try:
        return reveal(current) != plaintext
    except Exception:
        return True  # unreadable with today's keys: replace it


def _names(items, model_name):
    return {i.get("name") for i in items if isinstance(i, dict) and i.get("name")}


def new_system_names(data: dict) -> set:
    """The systems the file names (other apps' sections may refer to them before they exist)."""
    return {i.get("name") for i in data.get("systems") or [] if isinstance(i, dict)}


def plan(data: dict, *, other_sections=(), allow_command=False) -> list[_Planned]:
    """Validate everything and compute the changes; raises ConfigError with every problem.

    `other_sections` are the top-level keys other apps own (validated by them);
    `allow_command`: a superuser is named (dr_apply --as), so jobs' command hooks may change."""
    problems: list[str] = []
    known = SECTIONS + tuple(other_sections)
    for key in sorted(set(data) - set(known)):
        problems.append(f"{key}: unknown section (expected {', '.join(known)})")
    sections = {}
    for section in SECTIONS:
        items = data.get(section) or []
        if not isinstance(items, list):
            problems.append(f"{section}: must be a list")
            items = []
        sections[section] = items
    system_names = _names(sections["systems"], "system") | set(
        System.objects.values_list("name", flat=True)
    )
    destination_names = _names(sections["destinations"], "destination") | set(
        Destination.objects.values_list("name", flat=True)
    )
    source_names = _names(sections["sources"], "source") | set(
        Source.objects.values_list("name", flat=True)
    )
    refs = {
        "systems": system_names,
        "destinations": destination_names,
        "sources": source_names,
        "pending": {},  # (section, name) -> the file's object, as it will be saved
        "places": {},  # job name -> its place in the file
        "allow_command": allow_command,
    }
    planned: list[_Planned] = []
    for section in SECTIONS:
        planned += _plan_section(section, sections[section], problems, refs)
    if not problems:
        _shared_repositories(planned, refs["places"], problems)
    if problems:
        raise ConfigError(problems)
    return planned


def _plan_section(section: str, items: list, problems: list[str], refs: dict) -> list[_Planned]:
    handler = {
        "systems": _plan_system,
        "destinations": _plan_destination,
        "sources": _plan_source,
        "jobs": _plan_job,
    }[section]
    planned, seen = [], set()
    for i, item in enumerate(items):
        where = f"{section}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        wrong_types = type_problems(item, section, where)
        if wrong_types:
            problems.extend(wrong_types)
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}.name: required")
            continue
        if name in seen:
            problems.append(f"{where}.name: {name} appears twice in {section}")
            continue
        seen.add(name)
        result = handler(item, where, problems, refs)
        if result is not None:
            planned.append(result)
            refs["pending"][(section, name)] = result.instance
            if section == "jobs":
                refs["places"][name] = where
    return planned


def _check_keys(item, allowed, where, problems):
    for key in sorted(set(item) - allowed):
        problems.append(f"{where}.{key}: unknown key")


def _apply_fields(instance, values: dict, where, problems, exclude=()):
    """Set values, clean them; return the names of fields whose value changed."""
    before = {name: getattr(instance, name) for name in values}
    for name, value in values.items():
        setattr(instance, name, value)
    try:
        instance.full_clean(exclude=list(exclude), validate_unique=False)
    except ValidationError as exc:
        problems.extend(_messages(exc, where))
        return None
    return [n for n in values if getattr(instance, n) != before[n] or instance.pk is None]


def _plan_system(item, where, problems, refs):
    _check_keys(item, SYSTEM_KEYS, where, problems)
    instance = System.objects.filter(name=item["name"]).first() or System(name=item["name"])
    changed = _apply_fields(
        instance, {"description": str(item.get("description") or "")}, where, problems
    )
    if changed is None:
        return None
    return _Planned(_change("system", instance, changed), instance)


def _change(model, instance, changed):
    if instance.pk is None:
        return Change(model, instance.name, "create")
    if changed:
        return Change(model, instance.name, "update", changed)
    return Change(model, instance.name, "unchanged")


def _cleared(instance, secrets: dict) -> list[str]:
    """Stored secrets the save will clear: the endpoint changed and no new value was given."""
    moved = ", ".join(instance.endpoint_changes())
    return [
        f"{name} CLEARED ({moved} changed; give {name}_env to set it again)"
        for name in instance.secrets_to_clear()
        if name not in secrets
    ]


def _plan_destination(item, where, problems, refs):
    allowed = {"name", *DESTINATION_FIELDS}
    for secret in DESTINATION_SECRETS:
        allowed |= {secret, f"{secret}_env"}
    _check_keys(item, allowed, where, problems)
    instance = Destination.objects.filter(name=item["name"]).first() or Destination(
        name=item["name"]
    )
    defaults = {
        "prefix": "",
        "region": "",
        "endpoint_url": "",
        "path": "",
        "bucket": "",
        "checksums": Destination.Checksums.AUTO,
        "part_size_mb": None,
        "immutable_days": 0,
        "lock_mode": Destination._meta.get_field("lock_mode").default,
        "portal_cannot_delete": False,
        "append_only": False,
        "site": "",
        # boto3 addressed custom endpoints path-style before this key existed: unchanged files
        # keep doing so (and keep their credentials, which an addressing change clears).
        "path_style": bool(item.get("endpoint_url")),
    }
    values = {}
    for name in DESTINATION_FIELDS:
        if name in item:
            values[name] = item[name] if item[name] is not None else defaults.get(name)
        elif name in defaults:
            values[name] = defaults[name]
    if "kind" not in item:
        problems.append(f"{where}.kind: required (local or s3)")
        return None
    changed = _apply_fields(instance, values, where, problems)
    secrets = {}
    for secret in DESTINATION_SECRETS:
        value = _secret_from(item, secret, where, problems)
        if value is not None and (
            _secret_differs(getattr(instance, secret), value) or instance.endpoint_changes()
        ):
            secrets[secret] = value
    if changed is None:
        return None
    change = _change("destination", instance, changed + list(secrets) + _cleared(instance, secrets))
    return _Planned(change, instance, secrets=secrets)


SOURCE_DEFAULTS = {
    "host": "",
    "port": None,
    "database": "",
    "user": "",
    "path": "",
    "exclude": [],
    "masked_columns": validators.DEFAULT_MASKED_COLUMNS,
    "data_class": "important",
    "restore_test_schedule": "0 3 * * 0",
    "restore_test_after_backup": False,
    "pitr": False,
    "data_directory": "",
    "pitr_stanza": "",
}


def _source_values(item) -> dict:
    """The source's plain fields from the file: given values, else the defaults."""
    values = {}
    for name in SOURCE_FIELDS:
        if name in item:
            values[name] = item[name] if item[name] is not None else SOURCE_DEFAULTS.get(name)
        elif name in SOURCE_DEFAULTS:
            values[name] = SOURCE_DEFAULTS[name]
    return values


def _plan_source(item, where, problems, refs):
    allowed = {
        "name",
        "system",
        *SOURCE_FIELDS,
        *SOURCE_RENAMES,
        *(f"{secret}{env}" for secret in SOURCE_SECRETS for env in ("", "_env")),
        "repositories",
    }
    _check_keys(item, allowed, where, problems)
    system = item.get("system")
    if not system:
        problems.append(f"{where}.system: required")
    elif system not in refs["systems"]:
        problems.append(f"{where}.system: unknown system {system}")
    instance = Source.objects.filter(name=item["name"]).first() or Source(name=item["name"])
    if "kind" not in item and not item.get("portal_db"):
        problems.append(f"{where}.kind: required (postgresql, sqlite or files)")
        return None
    values = _source_values(item)
    verify = item.get("verify") or []
    if verify and (item.get("portal_db") or (instance.pk and instance.is_portal_db)):
        problems.append(f"{where}.verify: {validators.PORTAL_DB_CHECKS_FIXED}")
        return None
    check_problems = validators.check_problems(verify)
    if check_problems:
        problems.extend(f"{where}.verify: {p}" for p in check_problems)
        return None
    values["checks"] = validators.normalise_checks(verify)
    values["heartbeat_enabled"] = item.get("heartbeat") or False
    values["backup_globals"] = item.get("globals") or False
    values["is_portal_db"] = item.get("portal_db") or False
    values["pitr_pg_host"] = item.get("pitr_host") or ""
    values["pitr_pg_host_user"] = item.get("pitr_host_user") or ""
    values["pitr_adopted"] = item.get("adopted") or False
    timeout = item.get("archive_timeout")
    values["archive_timeout_s"] = 60 if timeout is None else timeout
    if values["is_portal_db"] and "kind" not in item:
        values["kind"] = instance.kind or "sqlite"
    changed = _apply_fields(instance, values, where, problems, exclude=["system"])
    secrets = _source_secrets(item, instance, where, problems)
    if changed is None or secrets is None:
        return None
    repositories = _repositories(item, instance, where, problems, refs)
    if repositories is None:
        return None
    if sorted(repositories) != sorted(_repository_names(instance)):  # numbered by creation
        changed.append("repositories")
    if system and (instance.pk is None or instance.system.name != system):
        changed.append("system")
    change = _change("source", instance, changed + list(secrets) + _cleared(instance, secrets))
    return _Planned(change, instance, secrets=secrets, system=system, repositories=repositories)


SOURCE_SECRETS = ("password", "pitr_cipher_pass")


def _source_secrets(item, instance, where, problems) -> dict | None:
    """The secrets the file sets anew (None: a problem); a value is never in a message."""
    secrets = {}
    for secret in SOURCE_SECRETS:
        value = _secret_from(item, secret, where, problems)
        if secret == "pitr_cipher_pass" and value and not pitr.CIPHER_PASS.match(value):
            problems.append(f"{where}.{secret}: printable characters without spaces (at most 256)")
            return None
        if value is not None and (
            _secret_differs(getattr(instance, secret), value) or instance.endpoint_changes()
        ):
            secrets[secret] = value
    return secrets


def _repository_names(source) -> list[str]:
    """An adopted stanza's repositories by name, repo1 first (creation order)."""
    if source.pk is None:
        return []
    return list(source.pitr_destinations.order_by("pk").values_list("name", flat=True))


def _repositories(item, instance, where, problems, refs) -> list[str] | None:
    """The destinations an adopted stanza's repositories are in (None: a problem)."""
    names = item.get("repositories") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append(f"{where}.repositories: give a list of destination names")
        return None
    unknown = [n for n in names if n not in refs["destinations"]]
    if unknown:
        problems.append(f"{where}.repositories: unknown destination {', '.join(unknown)}")
        return None
    if instance.pitr_adopted and not names:
        problems.append(
            f"{where}.repositories: name the adopted stanza's repositories (destinations)"
        )
        return None
    if len(names) > pitr.MAX_REPOS:
        problems.append(f"{where}.repositories: pgBackRest keeps at most {pitr.MAX_REPOS}")
        return None
    return list(names)


def _plan_job(item, where, problems, refs):
    allowed = {"name", "source", "destinations", "ping_url", "hooks", *JOB_FIELDS, *JOB_RENAMES}
    _check_keys(item, allowed, where, problems)
    source = item.get("source")
    if not source:
        problems.append(f"{where}.source: required")
    elif source not in refs["sources"]:
        problems.append(f"{where}.source: unknown source {source}")
    destinations = item.get("destinations")
    if not isinstance(destinations, list) or not destinations:
        problems.append(f"{where}.destinations: give a list of one or more destination names")
        destinations = []
    for j, name in enumerate(destinations):
        if name not in refs["destinations"]:
            problems.append(f"{where}.destinations[{j}]: unknown destination {name}")
    instance = BackupJob.objects.filter(name=item["name"]).first() or BackupJob(name=item["name"])
    values = _job_values(item)
    hooks = _job_hooks(item, instance, where, problems, refs)
    if hooks is None:
        return None
    values.update(hooks[0])
    secrets = hooks[1]
    changed = _apply_fields(instance, values, where, problems, exclude=["source"])
    if changed is None:
        return None
    fits = _method_fits(instance, source, destinations, where, problems, refs)
    if not (fits and _parallel_fits(instance, source, where, problems, refs)):
        return None
    if source and (instance.pk is None or instance.source.name != source):
        changed.append("source")
    if instance.pk is not None:
        current = sorted(instance.destinations.values_list("name", flat=True))
        if current != sorted(destinations):
            changed.append("destinations")
    change = _change("job", instance, changed + list(secrets))
    return _Planned(
        change, instance, secrets=secrets, destinations=list(destinations), source=source
    )


def _job_hooks(item, instance, where, problems, refs) -> tuple[dict, dict] | None:
    """The job's ping and hook fields, and the hook secrets that changed (set on the instance
    already: the model's clean() asks a hook URL for its secret)."""
    hooks = config_hooks.plan_hooks(
        item,
        instance,
        where,
        problems,
        allow_command=refs["allow_command"],
        read_secret=lambda spec, name, place: _secret_from(spec, name, place, problems),
    )
    if hooks is None:
        return None
    values, given = hooks
    secrets = {
        name: value
        for name, value in given.items()
        if _secret_differs(getattr(instance, name), value)
    }
    for name, value in secrets.items():
        setattr(instance, name, value)
    return values, secrets


JOB_DEFAULTS = {
    "schedule": "",
    "timezone": "UTC",
    "method": "logical",
    "compression": "zstd",
    "encrypt": True,
    "parallel": 1,
    "enabled": True,
}


def _job_values(item) -> dict:
    """The job's plain fields from the file: given values, else the defaults."""
    values = {}
    for name in JOB_FIELDS:
        value = item.get(name)
        values[name] = JOB_DEFAULTS[name] if value is None else value
    values["compression_level"] = item.get("level")
    values["backup_type"] = item.get("type") or "full"
    return values


def _method_fits(job, source_name, destination_names, where, problems, refs) -> bool:
    """A physical job against its source and destinations as the file leaves them (the file's
    unsaved objects first, else the database's). Jobs sharing a stanza: _shared_repositories."""
    if job.method != BackupJob.Method.PHYSICAL:
        return True
    pending = refs["pending"]
    source = (
        pending.get(("sources", source_name)) or Source.objects.filter(name=source_name).first()
    )
    destinations = [
        pending.get(("destinations", name)) or Destination.objects.filter(name=name).first()
        for name in destination_names
    ]
    errors = pitr.physical_job_errors(job, source, [d for d in destinations if d], ())
    for name, message in errors.items():
        problems.append(f"{where}.{_YAML_NAMES.get(name, name)}: {message}")
    return not errors


def _parallel_fits(job, source_name, where, problems, refs) -> bool:
    """parallel > 1 against the source as the file leaves it (PostgreSQL only)."""
    pending = refs["pending"]
    source = (
        pending.get(("sources", source_name)) or Source.objects.filter(name=source_name).first()
    )
    problem = job.parallel_problem(source)
    if problem:
        problems.append(f"{where}.parallel: {problem}")
    return not problem


def _shared_repositories(planned: list[_Planned], places: dict, problems: list[str]) -> None:
    """All enabled physical jobs of one source write to the same destinations (one stanza):
    the file's jobs as planned, the others as stored."""
    jobs = {}  # name -> (source name, destination names)
    stored = BackupJob.objects.filter(method=BackupJob.Method.PHYSICAL, enabled=True)
    for job in stored.select_related("source").prefetch_related("destinations"):
        jobs[job.name] = (job.source.name, {d.name for d in job.destinations.all()})
    for p in planned:
        if isinstance(p.instance, BackupJob):
            job = p.instance
            jobs.pop(job.name, None)
            if job.method == BackupJob.Method.PHYSICAL and job.enabled:
                jobs[job.name] = (p.source, set(p.destinations or []))
    first = {}  # source name -> (job name, destinations) of the first job seen
    # Stored jobs first, then the file's in its order: the file's job that differs is named.
    order = {name: i for i, name in enumerate(places)}
    for name in sorted(jobs, key=lambda n: (n in order, order.get(n, 0), n)):
        source, destinations = jobs[name]
        other = first.setdefault(source, (name, destinations))
        if other[1] != destinations and name in places:
            problems.append(
                f"{places[name]}.destinations: all physical jobs of a source share one stanza "
                f"and its repositories: job {other[0]} writes to {', '.join(sorted(other[1]))}; "
                "use the same destinations (or disable that job)"
            )


def apply(data: dict, *, dry_run=False, allow_command=False) -> list:
    """Validate, then create/update by name in one transaction; return the changes."""
    planned = plan(data, allow_command=allow_command)
    if dry_run:
        return [p.change for p in planned]
    with transaction.atomic():
        write(planned)
    return [p.change for p in planned]


def write(planned: list[_Planned]) -> None:
    """Save what plan() computed (call inside the caller's transaction)."""
    for p in planned:
        instance = p.instance
        if p.change.action == "unchanged":
            continue
        for name, value in p.secrets.items():
            setattr(instance, name, value)
        if p.system is not None:
            instance.system = System.objects.get(name=p.system)
        if p.source is not None:
            instance.source = Source.objects.get(name=p.source)
        instance.save()
        if p.repositories is not None:
            instance.pitr_destinations.set(Destination.objects.filter(name__in=p.repositories))
        if p.destinations is not None:
            before = sorted(instance.destinations.values_list("name", flat=True))
            instance.destinations.set(Destination.objects.filter(name__in=p.destinations))
            if "destinations" in p.change.fields:
                BackupJob.objects.filter(pk=instance.pk).update(config_changed_at=timezone.now())
                readiness_version.bump()  # an update(): no model signal sees it
                audit.record(
                    "update",
                    instance,
                    changes={
                        "destinations": [", ".join(before), ", ".join(sorted(p.destinations))]
                    },
                )


# --- export ------------------------------------------------------------------
def export() -> dict:
    """The configuration in dr_apply's format, secrets left out (their *_env names are not known)."""
    return {
        "systems": [
            {"name": s.name, **({"description": s.description} if s.description else {})}
            for s in System.objects.order_by("name")
        ],
        "destinations": [_export_destination(d) for d in Destination.objects.order_by("name")],
        "sources": [
            _export_source(s) for s in Source.objects.select_related("system").order_by("name")
        ],
        "jobs": sorted(
            (
                _export_job(j)
                for j in BackupJob.objects.select_related("source").prefetch_related("destinations")
            ),
            key=lambda i: i["name"],
        ),
    }


def _export_destination(d: Destination) -> dict:
    item = {"name": d.name, "kind": d.kind}
    if d.kind == Destination.Kind.LOCAL:
        item["path"] = d.path
        if d.append_only:
            item["append_only"] = True
    else:
        item.update(bucket=d.bucket, prefix=d.prefix, region=d.region)
        if d.endpoint_url:
            item["endpoint_url"] = d.endpoint_url
        item["storage_class"] = d.storage_class
        if d.checksums != Destination.Checksums.AUTO:
            item["checksums"] = d.checksums
        if d.part_size_mb:
            item["part_size_mb"] = d.part_size_mb
        if d.path_style != bool(d.endpoint_url):
            item["path_style"] = d.path_style
        if d.immutable_days:
            item.update(immutable_days=d.immutable_days, lock_mode=d.lock_mode)
        if d.portal_cannot_delete:
            item["portal_cannot_delete"] = True
    if d.site:
        item["site"] = d.site
    item.update(keep_days=d.keep_days, keep_last=d.keep_last)
    if not d.enabled:
        item["enabled"] = False
    return item


def _export_source(s: Source) -> dict:
    item = {"name": s.name, "system": s.system.name, "kind": s.kind, "data_class": s.data_class}
    if s.is_portal_db:
        item["portal_db"] = True
    elif s.kind == Source.Kind.POSTGRESQL:
        item.update(host=s.host, port=s.port or 5432, database=s.database, user=s.user)
    else:
        item["path"] = s.path
    if s.exclude:
        item["exclude"] = list(s.exclude)
    if list(s.masked_columns) != validators.DEFAULT_MASKED_COLUMNS:
        item["masked_columns"] = list(s.masked_columns)
    if s.checks and not s.is_portal_db:
        item["verify"] = [dict(c) for c in s.checks]
    # Flags are written only when set, as a person would write the file.
    flags = {
        "heartbeat": s.heartbeat_enabled,
        "globals": s.backup_globals,
    }
    item.update({key: True for key, on in flags.items() if on})
    if s.pitr:
        item["pitr"] = True
    # Also while pitr is off: the settings are kept for turning it on again.
    pitr_values = {
        "data_directory": s.data_directory,
        "pitr_host": s.pitr_pg_host,
        "pitr_host_user": s.pitr_pg_host_user,
        "pitr_stanza": s.pitr_stanza,
    }
    item.update({key: value for key, value in pitr_values.items() if value})
    if s.pitr_adopted:
        item["adopted"] = True
    if repositories := _repository_names(s):
        item["repositories"] = repositories
    if s.archive_timeout_s != 60:
        item["archive_timeout"] = s.archive_timeout_s
    item["restore_test_schedule"] = s.restore_test_schedule
    if s.restore_test_after_backup:
        item["restore_test_after_backup"] = True
    return item


def _export_job(j: BackupJob) -> dict:
    item = {
        "name": j.name,
        "source": j.source.name,
        "destinations": sorted(d.name for d in j.destinations.all()),
        "schedule": j.schedule,
        "timezone": j.timezone,
    }
    if j.method == BackupJob.Method.PHYSICAL:
        item.update(method=j.method, type=j.backup_type)
    item["compression"] = j.compression
    if j.compression_level is not None:
        item["level"] = j.compression_level
    item["encrypt"] = j.encrypt
    if j.parallel != 1:
        item["parallel"] = j.parallel
    if not j.enabled:
        item["enabled"] = False
    item.update(config_hooks.export_hooks(j))
    return item


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
