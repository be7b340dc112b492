"""Links both ways between records of different layers, without importing upwards.

A backup run's page must list its restore tests (recovery) and the incidents that link
to it (incidents), but backups may not import either. The higher app registers a provider
at start-up; a page asks `related(obj)` (or the `{% related_links obj %}` tag).
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Related:
    group: str  # "Restore tests", "Incidents"
    text: str
    url: str
    status: str = ""  # a status badge, if any
    note: str = ""


Provider = Callable[..., list[Related]]
_providers: list[tuple[Provider, bool]] = []


def register(provider: Provider, *, per_user: bool = False) -> None:
    """`per_user`: the provider is called as provider(obj, user) and shows only what the
    user may see (a record of one system can be linked from records of others)."""
    if provider not in [p for p, _ in _providers]:
        _providers.append((provider, per_user))


def related(obj, user=None) -> dict[str, list[Related]]:
    """{group: [Related, …]} in the order providers registered; empty groups left out."""
    groups: dict[str, list[Related]] = {}
    for provider, per_user in _providers:
        for item in provider(obj, user) if per_user else provider(obj):
            groups.setdefault(item.group, []).append(item)
    return groups
