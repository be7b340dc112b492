"""A drill's event log: one line per thing that happened, with who did it.

Its own module so that services.py and callout.py (which services.py calls) both write
to it without importing each other.
"""

from django.utils import timezone

from drills.models import DrillEvent


def actor(user):
    """(user or None, the name shown): the portal itself when nobody signed in acted."""
    if user is not None and getattr(user, "is_authenticated", False):
        return user, user.get_username()
    return None, "DR Portal"


def event(drill, text, user=None, scenario_run=None, at=None) -> DrillEvent:
    who, name = actor(user)
    return DrillEvent.objects.create(
        drill=drill,
        scenario_run=scenario_run,
        at=at or timezone.now(),
        actor=who,
        actor_name=name,
        text=text,
    )
