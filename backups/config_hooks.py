"""Configuration as code for a job's ping URL and hooks (a part of backups.config).

In the file, under a job:

    ping_url: https://hc-ping.com/<uuid>
    hooks:
      timeout: 30            # seconds per hook call (1-3600)
      pre_required: true     # a failing pre-hook fails the run (false: a warning)
      pre:  {url: https://…, secret_env: PRE_HOOK_SECRET, command: [/usr/local/bin/quiesce]}
      post: {url: https://…, secret_env: POST_HOOK_SECRET}

Left out means none (the defaults), like every other job field; a hook's `secret` (or
`secret_env`) left out keeps the stored one, like every secret. A `command` can only be
set, changed or removed with `dr_apply --as SUPERUSER`; leaving it as stored is allowed.
"""

from collections.abc import Callable

PHASES = ("pre", "post")
HOOKS_KEYS = {"timeout": int, "pre_required": bool, "pre": dict, "post": dict}
PHASE_KEYS = {"url": str, "secret": str, "secret_env": str, "command": list}
NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "text",
    int: "a whole number",
    bool: "true or false",
}
DEFAULT_TIMEOUT = 30
ONLY_SUPERUSER = (
    "a command hook runs a program on the worker: only a superuser may set, change or remove "
    "one (dr_apply --as SUPERUSER)"
)
# The model field behind each key, for messages from the model's own validation.
YAML_NAMES = {
    "hook_timeout_s": "hooks.timeout",
    "pre_hook_required": "hooks.pre_required",
    **{f"{p}_hook_{k}": f"hooks.{p}.{k}" for p in PHASES for k in ("url", "command")},
}


def _types(mapping: dict, expected: dict, where: str) -> list[str]:
    """Unknown keys and wrong YAML types in one mapping (null means the default)."""
    problems = [f"{where}.{key}: unknown key" for key in sorted(set(mapping) - set(expected))]
    for key, kind in expected.items():
        value = mapping.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"{where}.{key}: must be {NAMES[kind]}, not {value!r}")
    return problems


def plan_hooks(
    item: dict,
    job,
    where: str,
    problems: list[str],
    *,
    allow_command: bool,
    read_secret: Callable[[dict, str, str], str | None],
) -> tuple[dict, dict] | None:
    """(field values, secrets to set) of the job's ping and hooks; None on a problem."""
    hooks = item.get("hooks") or {}
    found = _types(hooks, HOOKS_KEYS, f"{where}.hooks")
    for phase in PHASES:
        found += _types(hooks.get(phase) or {}, PHASE_KEYS, f"{where}.hooks.{phase}")
    if found:
        problems.extend(found)
        return None
    timeout = hooks.get("timeout")
    required = hooks.get("pre_required")
    values = {
        "ping_url": item.get("ping_url") or "",
        "hook_timeout_s": DEFAULT_TIMEOUT if timeout is None else timeout,
        "pre_hook_required": True if required is None else required,
    }
    secrets = {}
    for phase in PHASES:
        spec = hooks.get(phase) or {}
        values[f"{phase}_hook_url"] = spec.get("url") or ""
        command = spec.get("command") or []
        values[f"{phase}_hook_command"] = command
        if command != (getattr(job, f"{phase}_hook_command") or []) and not allow_command:
            problems.append(f"{where}.hooks.{phase}.command: {ONLY_SUPERUSER}")
            return None
        secret = read_secret(spec, "secret", f"{where}.hooks.{phase}")
        if secret is not None:
            secrets[f"{phase}_hook_secret"] = secret
    return values, secrets


def export_hooks(job) -> dict:
    """The ping URL and hooks as the file writes them (only what is set; secrets left out)."""
    item = {}
    if job.ping_url:
        item["ping_url"] = job.ping_url
    hooks = {}
    for phase in PHASES:
        spec = {}
        if getattr(job, f"{phase}_hook_url"):
            spec["url"] = getattr(job, f"{phase}_hook_url")
        if getattr(job, f"{phase}_hook_command"):
            spec["command"] = list(getattr(job, f"{phase}_hook_command"))
        if spec:
            hooks[phase] = spec
    if hooks:
        if not job.pre_hook_required:
            hooks["pre_required"] = False
        if job.hook_timeout_s != DEFAULT_TIMEOUT:
            hooks["timeout"] = job.hook_timeout_s
        item["hooks"] = hooks
    return item
