"""The step kinds and the validation of step definitions (forms, admin, YAML import share it)."""

from __future__ import annotations

from .app import AppStart, AppStop
from .aws import DnsUpdate, LbSwap
from .base import Kind, StepSpec, check_params, seconds
from .http import HttpCheck, Webhook
from .local import Command, Manual, Wait
from .pg import PgPromote, PgReady, SqlCheck, SqlWrite
from .pitr import PitrRestore
from .restore import Restore

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        HttpCheck(),
        PgReady(),
        PgPromote(),
        SqlCheck(),
        SqlWrite(),
        PitrRestore(),
        Restore(),
        AppStop(),
        AppStart(),
        DnsUpdate(),
        LbSwap(),
        Webhook(),
        Command(),
        Manual(),
        Wait(),
    )
}
KIND_CHOICES = [(name, kind.title) for name, kind in KINDS.items()]
# Kinds that run programs or change data wherever they point: a superuser creates them.
SUPERUSER_ONLY = {"command", "sql_write"}
# Kinds that run a program only when a definition gives them one (params.command).
COMMAND_OPTIONAL = {"app_stop", "app_start"}


def superuser_only(kind: str | None, params: dict | None = None, test_params=None) -> bool:
    """Does creating, editing or deleting this step need a superuser?"""
    if kind in SUPERUSER_ONLY:
        return True
    return kind in COMMAND_OPTIONAL and bool(
        (params or {}).get("command") or (test_params or {}).get("command")
    )


ON_FAILURE = ("stop", "continue")
FIELDS = {
    "name",
    "kind",
    "params",
    "timeout",
    "on_failure",
    "retries",
    "retry_delay",
    "side_effects",
    "verification",
    "test_params",
    "rollback",
    "secret",
}
MAX_TIMEOUT = 24 * 3600


class StepDefinitionError(ValueError):
    """One or more problems in step definitions, each naming its place."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def same_endpoint(old_kind, old_params, old_test, new_kind, new_params, new_test) -> bool:
    """Would a stored secret still go where it was entered for?"""
    if old_kind != new_kind or new_kind not in KINDS:
        return False
    kind = KINDS[new_kind]
    return kind.endpoint(old_params or {}, old_test or {}) == kind.endpoint(
        new_params or {}, new_test or {}
    )


def command_refused(place: str, kind: str = "command") -> str:
    return f"{place}: only superusers may create or edit {kind} steps"


def _bool(defn, key, default, where, errors):
    value = defn.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.append(f"{where}: {key} must be true or false, not {value!r}")
        return default
    return value


def _seconds(defn, key, default, where, errors, *, minimum=0.0):
    value = defn.get(key)
    if value in (None, ""):
        return default
    try:
        result = seconds(value)
    except ValueError as exc:
        errors.append(f"{where}: {key}: {exc}")
        return default
    if result < minimum or result > MAX_TIMEOUT:
        errors.append(f"{where}: {key} must be between {minimum:g} s and 24h")
        return default
    return result


def _head_errors(defn: dict, name, where: str) -> list[str]:
    """Unknown fields and a missing name."""
    errors = []
    unknown = sorted(set(defn) - FIELDS)
    if unknown:
        errors.append(
            f"{where}: unknown field(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(sorted(FIELDS))}"
        )
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{where}: name is required")
    return errors


def _test_params(defn: dict, kind, param_problems: list, where: str, errors: list) -> dict:
    """Parameters overriding `params` in test mode, checked merged with them."""
    test_params = defn.get("test_params") or {}
    if not isinstance(test_params, dict):
        errors.append(
            f"{where}: test_params must be a mapping of parameters to override in test mode"
        )
        return {}
    if test_params and not param_problems:
        _, test_problems = check_params(kind, {**(defn.get("params") or {}), **test_params})
        errors.extend(f"{where}: test_params: {p}" for p in test_problems)
    return test_params


def _retries(defn: dict, where: str, errors: list) -> int:
    retries = defn.get("retries") or 0
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 100:
        errors.append(f"{where}: retries must be a whole number from 0 to 100")
        return 0
    return retries


def _side_effects(defn: dict, kind, params: dict, where: str, errors: list) -> bool:
    """The kind decides (from its parameters) whether a step changes things; a definition
    may add the flag to a harmless step, never take it away."""
    inherent = kind.has_side_effects(params)
    side_effects = _bool(defn, "side_effects", inherent, where, errors)
    if inherent and not side_effects:
        errors.append(
            f"{where}: {kind.side_effects_reason(params)}; it cannot be marked side_effects: false"
        )
        return True
    return side_effects


def _rollback(defn: dict, where: str, allow_command: bool, nested: bool, errors: list) -> list:
    rollback: list[StepSpec] = []
    rb_defs = defn.get("rollback") or []
    if rb_defs and nested:
        errors.append(f"{where}: a rollback step cannot have rollback steps of its own")
    elif not isinstance(rb_defs, list):
        errors.append(f"{where}: rollback must be a list of steps")
    else:
        for i, rb in enumerate(rb_defs, 1):
            spec, problems = parse_step(
                rb, f"{where} rollback {i}", allow_command=allow_command, nested=True
            )
            errors.extend(problems)
            if spec:
                rollback.append(spec)
    return rollback


def _kind(defn: dict, where: str, allow_command: bool, errors: list):
    """The step's kind, or None (with the problem in `errors`) when missing or unknown."""
    kind_name = defn.get("kind")
    if kind_name in (None, ""):
        errors.append(f"{where}: kind is required (one of {', '.join(KINDS)})")
        return None
    if kind_name not in KINDS:
        errors.append(f"{where}: unknown kind {kind_name!r}; use one of {', '.join(KINDS)}")
        return None
    if kind_name in SUPERUSER_ONLY and not allow_command:
        errors.append(command_refused(where, kind_name))
    return KINDS[kind_name]


def parse_step(
    defn, place: str, *, allow_command: bool, nested=False
) -> tuple[StepSpec | None, list[str]]:
    """Validate one step definition (a dict) into a StepSpec; place names it in messages."""
    if not isinstance(defn, dict):
        return None, [f"{place}: a step must be a mapping with at least name and kind"]
    name = defn.get("name")
    where = f"{place} ({name})" if isinstance(name, str) and name else place
    errors = _head_errors(defn, name, where)
    kind = _kind(defn, where, allow_command, errors)
    if kind is None:
        return None, errors
    kind_name = defn["kind"]
    raw_params = defn.get("params") if isinstance(defn.get("params"), dict) else {}
    raw_test = defn.get("test_params") if isinstance(defn.get("test_params"), dict) else {}
    if kind_name in COMMAND_OPTIONAL and not allow_command:
        if superuser_only(kind_name, raw_params, raw_test):
            errors.append(command_refused(where, f"{kind_name} with a command"))
    params, problems = check_params(kind, defn.get("params") or {})
    errors.extend(f"{where}: {p}" for p in problems)
    test_params = _test_params(defn, kind, problems, where, errors)
    timeout = _seconds(defn, "timeout", kind.default_timeout, where, errors, minimum=0.1)
    on_failure = defn.get("on_failure") or "stop"
    if on_failure not in ON_FAILURE:
        errors.append(f"{where}: on_failure must be 'stop' or 'continue', not {on_failure!r}")
    retries = _retries(defn, where, errors)
    retry_delay = _seconds(defn, "retry_delay", 0.0, where, errors)
    if kind_name == "wait" and not problems and params["seconds"] > timeout:
        if "timeout" in defn:
            errors.append(
                f"{where}: waits {params['seconds']:g} s but its timeout is {timeout:g} s"
            )
        else:
            timeout = params["seconds"] + 5
    side_effects = _side_effects(defn, kind, params, where, errors)
    if test_params and kind.skipped_in_test:
        errors.append(
            f"{where}: a {kind_name} step is always skipped in test mode; test_params are "
            "not possible"
        )
    # A check that expects a service to be down is a precondition, not proof of recovery.
    default_verification = kind.verification and params.get("expect") != "down"
    verification = _bool(defn, "verification", default_verification, where, errors)
    secret = defn.get("secret") or ""
    if not isinstance(secret, str):
        errors.append(f"{where}: secret must be text")
        secret = ""
    rollback = _rollback(defn, where, allow_command, nested, errors)
    if errors:
        return None, errors
    return StepSpec(
        name=name.strip(),
        kind=kind_name,
        params=params,
        timeout=timeout,
        on_failure=on_failure,
        retries=retries,
        retry_delay=retry_delay,
        side_effects=side_effects,
        verification=verification,
        test_params=test_params,
        secret=secret,
        rollback=rollback,
    ), []


def parse_steps(defns, *, allow_command: bool, place: str = "step") -> list[StepSpec]:
    """Validate a whole list; raise StepDefinitionError listing every problem."""
    if not isinstance(defns, list) or not defns:
        raise StepDefinitionError([f"{place}s: give a non-empty list of steps"])
    specs, errors = [], []
    for i, defn in enumerate(defns, 1):
        spec, problems = parse_step(defn, f"{place} {i}", allow_command=allow_command)
        errors.extend(problems)
        if spec:
            specs.append(spec)
    if errors:
        raise StepDefinitionError(errors)
    return specs
