"""Every linkable record's page lists the incidents that link to it (dr_portal.related)."""

from django.contrib.contenttypes.models import ContentType

from dr_portal.related import Related
from incidents.models import IncidentLink


def incidents_linking(obj) -> list[Related]:
    if getattr(obj, "pk", None) is None or not hasattr(obj, "_meta"):
        return []
    links = IncidentLink.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).select_related("incident")
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
