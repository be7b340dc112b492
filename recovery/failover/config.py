"""Runbooks as code: `manage.py apply_runbooks FILE.yaml [--dry-run] [--as USER]`.

    runbooks:
      - system: tool-hub
        name: PostgreSQL standby promotion
        failure_type: database_failure
        template: pg_standby_promotion          # a built-in template ...
        vars: {standby_host: 10.0.0.2, primary_host: 10.0.0.1}
      - system: tool-hub
        name: Network outage recovery
        failure_type: network_outage
        steps:                                  # ... or the steps themselves
          - {name: API ready, kind: http_check, params: {url: "http://localhost:8000/health/ready"}}
          - name: Resume executions
            kind: webhook
            params: {url: "http://localhost:8000/api/executions/resume", json: {}}
            secret_env: TOOLHUB_TOKEN           # bearer token read from the environment

The whole file is validated first; on any problem nothing changes. Runbooks are matched
by (system, name); running the same file twice changes nothing the second time. Command
and sql_write steps need --as naming a superuser, like in the portal.
"""

import os
from dataclasses import dataclass

from django.db import transaction

from backups.models import System
from dr_portal.lib import strict_yaml
from dr_portal.lib.text import has_control_chars
from recovery.failover.builtin import TEMPLATES
from recovery.failover.models import Runbook, failure_type_choices, portal_checks
from recovery.failover.steps import parse_step, superuser_only

NAME_MAX = 120  # Runbook.name, RunbookStep.name
RUNBOOK_KEYS = {"system", "name", "failure_type", "description", "template", "vars", "steps"}


class ConfigError(Exception):
    def __init__(self, problems):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class Change:
    action: str  # create, update, unchanged
    label: str

    def __str__(self):
        return f"{self.action} runbook {self.label}"


def load_text(text: str) -> dict:
    try:
        data = strict_yaml.load(text)
    except strict_yaml.StrictYamlError as exc:
        raise ConfigError([str(exc)]) from None
    if not isinstance(data, dict) or set(data) - {"runbooks"}:
        raise ConfigError(["the file must be a mapping with one key, runbooks: [...]"])
    if not isinstance(data.get("runbooks") or [], list):
        raise ConfigError(["runbooks: must be a list"])
    return data


def _secret(defn: dict, where: str, problems: list[str]) -> str | None:
    if "secret_env" in defn:
        var = defn.pop("secret_env")
        if not isinstance(var, str) or not var:
            problems.append(f"{where}.secret_env: give the name of an environment variable")
            return None
        value = os.environ.get(var)
        if value is None:
            problems.append(f"{where}.secret_env: environment variable {var} is not set")
        return value
    value = defn.pop("secret", None)
    return None if value in (None, "") else str(value)


def _normal(spec) -> dict:
    """A parsed step in the shape RunbookStep.definition() gives, for comparison."""
    defn = {
        "name": spec.name,
        "kind": spec.kind,
        "params": spec.params,
        "timeout": spec.timeout,
        "on_failure": spec.on_failure,
        "retries": spec.retries,
        "retry_delay": spec.retry_delay,
        "side_effects": spec.side_effects,
        "verification": spec.verification,
    }
    if spec.test_params:
        defn["test_params"] = spec.test_params
    return defn


@dataclass
class PlannedRunbook:
    """One validated runbook of the file, ready to be created or compared and updated."""

    existing: Runbook | None  # the stored runbook of the same (system, name), if any
    # Runbook fields; "system" stays a name while the file's own systems section creates it.
    fields: dict
    steps: list[dict]  # in the shape RunbookStep.definition() gives
    secrets: dict[str, str]  # step name -> secret read from the file or its environment
    label: str


class _Planner:
    """Validates the runbooks of one file; every problem found is collected in `problems`."""

    def __init__(self, allow_command: bool, new_systems):
        self.allow_command = allow_command
        self.new_systems = new_systems
        self.problems: list[str] = []
        self.seen: set[tuple] = set()
        self.failure_types = dict(failure_type_choices())
        self.systems = {s.name: s for s in System.objects.all()}

    def runbook(self, i: int, item) -> PlannedRunbook | None:
        where = f"runbooks[{i}]"
        if not isinstance(item, dict):
            self.problems.append(
                f"{where}: must be a mapping with system, name, failure_type, steps"
            )
            return None
        if isinstance(item.get("name"), str):
            where += f" ({item['name']})"
        for key in sorted(set(item) - RUNBOOK_KEYS):
            self.problems.append(
                f"{where}: unknown key {key!r}; known: {', '.join(sorted(RUNBOOK_KEYS))}"
            )
        system = self._system(item, where)
        name = item.get("name")
        self._check_text(item, name, where)
        template = item.get("template")
        failure_type = self._failure_type(item, template, where)
        defs = self._definitions(item, template, where)
        if defs is None:
            return None
        steps, secrets = self._steps(defs, where)
        existing = self._existing(system, name, steps, where)
        fields = {
            "system": system,
            "name": name,
            "failure_type": failure_type,
            "description": item.get("description")
            or (TEMPLATES[template].description if template else ""),
            "template": template or "",
        }
        return PlannedRunbook(existing, fields, steps, secrets, f"{item.get('system')} / {name}")

    def _system(self, item: dict, where: str):
        """The named System, or its name when the same file creates it; None if unknown."""
        system = self.systems.get(item.get("system"))
        if system is None and item.get("system") in self.new_systems:
            system = item["system"]  # resolved by name when applied
        if system is None:
            self.problems.append(
                f"{where}.system: no system named {item.get('system')!r} "
                "(create it with dr_apply first)"
            )
        return system

    def _check_text(self, item: dict, name, where: str) -> None:
        """The name and the text fields, and that (system, name) appears once in the file."""
        if not isinstance(name, str) or not name.strip():
            self.problems.append(f"{where}.name is required")
        elif len(name) > NAME_MAX or has_control_chars(name):
            self.problems.append(f"{where}.name: one line of at most {NAME_MAX} characters")
        for key in ("system", "failure_type", "description", "template"):
            if item.get(key) is not None and not isinstance(item[key], str):
                self.problems.append(f"{where}.{key}: must be text, not {item[key]!r}")
        if isinstance(item.get("description"), str) and len(item["description"]) > 2000:
            self.problems.append(f"{where}.description: at most 2,000 characters")
        elif (item.get("system"), name) in self.seen:
            self.problems.append(f"{where}: runbook {name!r} appears twice for this system")
        self.seen.add((item.get("system"), name))

    def _failure_type(self, item: dict, template, where: str):
        """The file's failure type, else the template's."""
        failure_type = item.get("failure_type") or (
            TEMPLATES[template].failure_type if template in TEMPLATES else None
        )
        if failure_type not in self.failure_types:
            self.problems.append(
                f"{where}.failure_type: {failure_type!r} is not one of "
                f"{', '.join(self.failure_types)}"
            )
        return failure_type

    def _definitions(self, item: dict, template, where: str) -> list | None:
        """The raw step definitions: the template's with its vars, or the file's own."""
        if template is None:
            defs = item.get("steps")
            if not isinstance(defs, list) or not defs:
                self.problems.append(
                    f"{where}.steps: give a non-empty list of steps (or a template)"
                )
                return None
            return defs
        if template not in TEMPLATES:
            self.problems.append(
                f"{where}.template: unknown template {template!r}; use one of "
                f"{', '.join(TEMPLATES)}"
            )
            return None
        if "steps" in item:
            self.problems.append(f"{where}: give either template (with vars) or steps, not both")
            return None
        try:
            return TEMPLATES[template].definitions(item.get("vars") or {})
        except (ValueError, TypeError) as exc:
            self.problems.append(f"{where}.vars: {exc}")
            return None

    def _steps(self, defs: list, where: str) -> tuple[list[dict], dict[str, str]]:
        steps, secrets = [], {}
        for j, raw in enumerate(defs, 1):
            defn = self._step(raw, f"{where}.steps[{j}]", secrets)
            if defn is not None:
                steps.append(defn)
        names = [s["name"] for s in steps] + [
            r["name"] for s in steps for r in s.get("rollback", [])
        ]
        if len(names) != len(set(names)):
            self.problems.append(f"{where}: step names must be unique within a runbook")
        return steps, secrets

    def _step(self, raw, place: str, secrets: dict) -> dict | None:
        """One step (with its rollbacks) in its normal shape; its secrets go into `secrets`."""
        if not isinstance(raw, dict):
            self.problems.append(f"{place}: a step must be a mapping with at least name and kind")
            return None
        raw = dict(raw)
        for named in [raw, *(r for r in raw.get("rollback") or [] if isinstance(r, dict))]:
            step_name = named.get("name")
            if isinstance(step_name, str) and (
                len(step_name) > NAME_MAX or has_control_chars(step_name)
            ):
                self.problems.append(f"{place}.name: one line of at most {NAME_MAX} characters")
        secret = _secret(raw, place, self.problems)
        rollbacks = []
        for k, rb in enumerate(raw.get("rollback") or [], 1):
            rb = dict(rb) if isinstance(rb, dict) else rb
            if isinstance(rb, dict):
                rb_secret = _secret(rb, f"{place}.rollback[{k}]", self.problems)
                if rb_secret:
                    secrets[rb.get("name")] = rb_secret
            rollbacks.append(rb)
        if rollbacks:
            raw["rollback"] = rollbacks
        spec, errors = parse_step(raw, place, allow_command=self.allow_command)
        self.problems.extend(errors)
        if spec is None:
            return None
        for checked in [spec, *spec.rollback]:
            self.problems.extend(
                f"{place} ({checked.name}): {p}"
                for p in portal_checks(checked.kind, checked.params)
            )
        if secret:
            secrets[spec.name] = secret
        defn = _normal(spec)
        if spec.rollback:
            defn["rollback"] = [_normal(rb) for rb in spec.rollback]
        return defn

    def _existing(self, system, name, steps: list[dict], where: str) -> Runbook | None:
        """The stored runbook to update; a change to its superuser-only steps needs --as."""
        if not (isinstance(system, System) and isinstance(name, str)):
            return None
        existing = Runbook.objects.filter(system=system, name=name).first()
        if existing is None or self.allow_command:
            return existing
        guarded = sorted(
            {
                s.kind
                for s in existing.steps.all()
                if superuser_only(s.kind, s.params, s.test_params)
            }
        )
        if guarded and _current(existing) != steps:
            self.problems.append(
                f"{where}: this runbook has {' and '.join(guarded)} steps; only superusers "
                "may edit it (run with --as <superuser>)"
            )
        return existing


def plan(data: dict, *, allow_command: bool, new_systems=()) -> list[PlannedRunbook]:
    """Validate every runbook; raise ConfigError with every problem, else return the plan.

    `new_systems` names systems another part of the same file creates (dr_apply can pass its
    own systems section), so a runbook may refer to them before they exist.
    """
    planner = _Planner(allow_command, new_systems)
    planned = [planner.runbook(i, item) for i, item in enumerate(data.get("runbooks") or [], 1)]
    if planner.problems:
        raise ConfigError(planner.problems)
    return [p for p in planned if p is not None]


def _current(runbook) -> list[dict]:
    defs = runbook.definitions()
    for d in defs:
        d.pop("has_secret", None)
        for r in d.get("rollback", []):
            r.pop("has_secret", None)
    return defs


def export() -> list[dict]:
    """Every runbook in the `runbooks:` format, secrets left out (add `secret_env` by hand)."""
    items = []
    for runbook in Runbook.objects.select_related("system").order_by("system__name", "name"):
        item = {"system": runbook.system.name, "name": runbook.name}
        item["failure_type"] = runbook.failure_type
        if runbook.description:
            item["description"] = runbook.description
        item["steps"] = _current(runbook)
        items.append(item)
    return items


def _secrets_differ(runbook, secrets: dict) -> bool:
    stored = {s.name: s.secret for s in runbook.steps.all()}
    for name, value in secrets.items():
        current = stored.get(name)
        try:
            if not current or current.reveal() != value:
                return True
        except Exception:
            return True
    return False


def _apply_one(p: PlannedRunbook, dry_run: bool) -> Change:
    """Create or update one planned runbook; the change it made (or would make)."""
    existing, fields = p.existing, dict(p.fields)
    if isinstance(fields["system"], str):
        resolved = System.objects.filter(name=fields["system"]).first()
        if resolved is None:  # a dry run of a file that creates the system too
            return Change("create", p.label)
        fields["system"] = resolved
        existing = Runbook.objects.filter(system=resolved, name=fields["name"]).first()
    if existing is None:
        if not dry_run:
            runbook = Runbook.objects.create(**fields)
            runbook.replace_steps(p.steps, p.secrets)
        return Change("create", p.label)
    differs = any(getattr(existing, k) != v for k, v in fields.items() if k != "system")
    steps_differ = _current(existing) != p.steps or _secrets_differ(existing, p.secrets)
    if not differs and not steps_differ:
        return Change("unchanged", p.label)
    change = Change("update", p.label)
    if dry_run:
        return change
    for k, v in fields.items():
        setattr(existing, k, v)
    existing.save()
    if steps_differ:
        dropped = existing.replace_steps(p.steps, p.secrets)
        if dropped:
            change.label += (
                f" (stored secret of {', '.join(dropped)} removed: its URL, host or "
                "port changed; give it again with secret_env)"
            )
    return change


def apply(data: dict, *, dry_run=False, allow_command=False, new_systems=()) -> list[Change]:
    """Validate all, then create or update; dr_apply can call this for a `runbooks` section."""
    planned = plan(data, allow_command=allow_command, new_systems=new_systems)
    with transaction.atomic():
        return [_apply_one(p, dry_run) for p in planned]
