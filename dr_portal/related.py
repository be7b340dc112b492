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


Provider = Callable[[object], list[Related]]
_providers: list[Provider] = []


def register(provider: Provider) -> None:
    if provider not in _providers:
        _providers.append(provider)


def related(obj) -> dict[str, list[Related]]:
    """{group: [Related, …]} in the order providers registered; empty groups left out."""
    groups: dict[str, list[Related]] = {}
    for provider in _providers:
        for item in provider(obj):
            groups.setdefault(item.group, []).append(item)
    return groups
