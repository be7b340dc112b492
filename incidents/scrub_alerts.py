"""Alerts from the scrub (backups/scrub.py calls this after every pass; registered in apps).

One alert per destination while its scrub keeps finding bad copies: a pass that loses more
copies there only counts it; a later pass that proves copies there and loses none clears it.
"""

from django.urls import reverse

from backups.models import Destination
from incidents import alerts


def scrub_alerts(result) -> None:
    ids = dict(Destination.objects.values_list("name", "pk"))
    for scrubbed in result.destinations:
        key = f"scrub:{scrubbed.destination}"
        lost = scrubbed.lost
        url = (
            reverse("backups:destination_detail", args=[ids[scrubbed.destination]])
            if scrubbed.destination in ids
            else ""
        )
        if lost:
            detail = "; ".join(f"run #{p.run} at {p.location}: {p.detail}" for p in lost)
            title = f"Scrub: {len(lost)} backup copies lost at {scrubbed.destination}"
            alerts.alert(key, "copy_lost", title, detail[:4000], url)
        elif scrubbed.count("proven") and not scrubbed.error:
            alerts.recover(key, f"Scrub: copies at {scrubbed.destination} verified again")
