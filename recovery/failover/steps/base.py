"""What every step kind shares: parameter specs, validation, the context a step runs in.

Plain Python, no Django: the task layer hands in secrets, a deadline and callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dr_portal.lib import hostnames
from dr_portal.lib.durations import parse_duration

MISSING = object()


class StepCancelled(Exception):
    """The run was cancelled while this step was waiting or working."""


class StepTimedOut(Exception):
    """The step's deadline passed."""


@dataclass
class StepResult:
    ok: bool
    output: str = ""
    timed_out: bool = False
    # Measurements the run records beside its RTO (a promotion's newest heartbeat, lag).
    facts: dict = field(default_factory=dict)


@dataclass
class Param:
    """One parameter of a step kind: its type, default and a check of its own."""

    types: tuple
    default: Any = MISSING
    check: Callable[[Any], str | None] | None = None
    help: str = ""

    @property
    def required(self):
        return self.default is MISSING


@dataclass
class Context:
    """Everything a step needs from its surroundings while it runs."""

    deadline: float  # time.monotonic() value
    secret: str = ""
    cancelled: Callable[[], bool] = lambda: False
    wait_for_person: Callable[[float], str] | None = None  # deadline -> who confirmed
    log: Callable[[str], None] = lambda line: None
    poll_every: float = 0.5
    test_mode: bool = False
    # The portal's point-in-time restore (params, ctx) -> (ok, output); None: not offered.
    pitr_restore: Callable[[dict, Context], tuple[bool, str]] | None = None
    # The portal's restore of a backup into a registered target, the same shape.
    restore: Callable[[dict, Context], tuple[bool, str]] | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self):
        if self.cancelled():
            raise StepCancelled("cancelled")
        if self.remaining() <= 0:
            raise StepTimedOut("step timeout reached")

    def sleep(self, seconds: float):
        """Sleep, waking early (with an exception) on cancel or on the step deadline."""
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, self.poll_every, max(self.remaining(), 0.01)))


class Kind:
    """A step kind: a name, its parameters, whether it changes things, and how it runs."""

    name = ""
    title = ""
    params: dict[str, Param] = {}
    side_effects = False  # the kind always changes something (see has_side_effects)
    skipped_in_test = False  # never run in test mode, not even with test_params
    runs_in_test = False  # has a test mode of its own (ctx.test_mode): run, not skipped
    verification = False  # default: does passing this step prove the service is back?
    # A check proves something (an answer, a query result) and changes nothing; in test mode
    # a failing check that a skipped step affects (see affects) is "not proven", not failed.
    is_check = False
    secret_label = ""  # what the step's secret is used for; "" = no secret
    # Where the secret goes: changing one of these (in params or test_params) without
    # entering the secret again drops the stored secret, so it never follows a new address.
    endpoint_params: tuple[str, ...] = ()
    default_timeout = 60.0

    def validate(self, params: dict) -> list[str]:
        """Extra checks across parameters; per-field checks live in Param.check."""
        return []

    def endpoint(self, params: dict, test_params: dict | None = None) -> dict:
        """The parameters the secret is bound to (also as test_params override them)."""
        test_params = test_params or {}
        bound = {k: params.get(k) for k in self.endpoint_params}
        bound.update(
            {f"test_params.{k}": test_params[k] for k in self.endpoint_params if k in test_params}
        )
        return bound

    def has_side_effects(self, params: dict) -> bool:
        """Does a step of this kind with these parameters change something? No option may
        turn this off: a definition can only add the flag."""
        return self.side_effects

    def affects(self, params: dict, check: StepSpec) -> bool:
        """Can the later `check` pass only once this step took effect? Inferred from the
        kinds (a promotion and checks of the same server, a DNS change and checks of that
        name). Test mode skips this step, so such a check failing proves nothing."""
        return False

    def side_effects_reason(self, params: dict) -> str:
        return f"a {self.name} step always has side effects"

    def describe(self, params: dict) -> str:
        """What the step would do, in one line, for test mode and the runbook page."""
        return self.title

    def run(self, params: dict, ctx: Context) -> StepResult:
        raise NotImplementedError


# --- parameter checks -------------------------------------------------------------


def http_url(value) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        shown = parts.scheme or "none"
        return f"URL scheme {shown!r} is not allowed; use http:// or https://"
    if not parts.hostname:
        return "URL has no host name"
    return None


def positive(value) -> str | None:
    return None if value > 0 else "must be greater than 0"


def not_negative(value) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def port(value) -> str | None:
    return None if 0 < value < 65536 else "must be a port number between 1 and 65535"


def non_empty(value) -> str | None:
    return None if value else "must not be empty"


def pg_host(value) -> str | None:
    """A host name, an IP address or a socket directory, never anything else."""
    return non_empty(value) or hostnames.host_problem(value, socket_dir=True)


def str_list(value) -> str | None:
    if not value:
        return "must list at least one value"
    if not all(isinstance(v, str) and v for v in value):
        return "must be a list of non-empty strings"
    return None


def status_list(value) -> str | None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not 100 <= v <= 599:
            return "must be an HTTP status (100-599) or a list of them"
    return None


def one_of(*choices):
    def check(value):
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"

    return check


def seconds(value) -> float:
    """Seconds from a number or a duration text ('30s', '5m')."""
    if isinstance(value, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(value, int | float):
        return float(value)
    return parse_duration(str(value)).total_seconds()


_TYPE_NAMES = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


def type_name(types: tuple) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def check_params(kind: Kind, params: Any) -> tuple[dict, list[str]]:
    """Fill defaults and check every parameter; returns (clean params, errors)."""
    errors: list[str] = []
    if not isinstance(params, dict):
        return {}, ["params must be a mapping of name: value"]
    clean: dict = {}
    for name, spec in kind.params.items():
        value = params.get(name, MISSING)
        if value is MISSING or value is None or value == "":
            if spec.required:
                errors.append(f"params.{name} is required for a {kind.name} step")
            elif spec.default is not None:
                clean[name] = spec.default
            continue
        if float in spec.types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, spec.types) or (
            isinstance(value, bool) and bool not in spec.types
        ):
            errors.append(f"params.{name} must be {type_name(spec.types)}, not {value!r}")
            continue
        if spec.check:
            problem = spec.check(value)
            if problem:
                errors.append(f"params.{name}: {problem}")
                continue
        clean[name] = value
    unknown = sorted(set(params) - set(kind.params))
    if unknown:
        errors.append(
            f"unknown parameter(s) {', '.join(unknown)} for a {kind.name} step; "
            f"known: {', '.join(kind.params)}"
        )
    if not errors:
        errors.extend(kind.validate(clean))
    return clean, errors


@dataclass
class StepSpec:
    """A validated step definition as the runner takes it."""

    name: str
    kind: str
    params: dict
    timeout: float
    on_failure: str = "stop"
    retries: int = 0
    retry_delay: float = 0.0
    side_effects: bool = False
    verification: bool = False
    test_params: dict = field(default_factory=dict)
    secret: str = ""
    rollback: list[StepSpec] = field(default_factory=list)
    key: Any = None  # the caller's handle (a RunbookStep or StepRun id)
