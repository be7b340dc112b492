"""Portal services a failover step needs but recovery.failover may not import (recovery's
models import the failover models, so the failover package stays below them): the recovery
app registers them when it is ready."""

from collections.abc import Callable

_pitr_restore: Callable | None = None


def register_pitr_restore(fn: Callable) -> None:
    global _pitr_restore  # noqa: PLW0603 - set once, by RecoveryConfig.ready()
    _pitr_restore = fn


def pitr_restore() -> Callable | None:
    """(params, ctx, failover run) -> (ok, output), or None before the app is ready."""
    return _pitr_restore


_restore: Callable | None = None


def register_restore(fn: Callable) -> None:
    global _restore  # noqa: PLW0603 - set once, by RecoveryConfig.ready()
    _restore = fn


def restore() -> Callable | None:
    """(params, ctx, failover run) -> (ok, output): a restore step, or None before the app is ready."""
    return _restore
