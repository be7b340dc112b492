"""Every linkable record's page lists the incidents that link to it (dr_portal.related)."""

from django.contrib.contenttypes.models import ContentType

from dr_portal.related import Related
from incidents.models import Incident, IncidentLink
from incidents.scoping import scope_incidents, scoped


def incidents_linking(obj, user=None) -> list[Related]:
    """The incidents linking to `obj` that `user` sees (one linked to another system's run
    too is not theirs: incidents.scoping)."""
    if getattr(obj, "pk", None) is None or not hasattr(obj, "_meta"):
        return []
    links = IncidentLink.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).select_related("incident")
    if user is not None and scoped(user):
        links = links.filter(incident__in=scope_incidents(Incident.objects.all(), user))
    return [
        Related(
            "Incidents",
            str(link.incident),
            link.incident.get_absolute_url(),
            link.incident.status,
            link.note,
        )
        for link in links.order_by("-incident__detected_at", "-pk")[:20]
    ]
