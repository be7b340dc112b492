"""The failover step engine: step kinds, validation of definitions, and the runner.

Plain Python (no Django): importable and testable on its own.
"""

from .base import Context, StepCancelled, StepResult, StepSpec, StepTimedOut
from .registry import (
    KIND_CHOICES,
    KINDS,
    SUPERUSER_ONLY,
    StepDefinitionError,
    parse_step,
    parse_steps,
    same_endpoint,
    superuser_only,
)
from .runner import Hooks, Outcome, RunResult, run_steps

__all__ = [
    "KINDS",
    "KIND_CHOICES",
    "SUPERUSER_ONLY",
    "Context",
    "Hooks",
    "Outcome",
    "RunResult",
    "StepCancelled",
    "StepDefinitionError",
    "StepResult",
    "StepSpec",
    "StepTimedOut",
    "parse_step",
    "parse_steps",
    "run_steps",
    "same_endpoint",
    "superuser_only",
]
