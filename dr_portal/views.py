"""Portal-wide pages: dashboard shell, health probes, key escrow confirmation."""

from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from dr_portal import health
from dr_portal.lib import audit, keyring, roles
from dr_portal.models import KeyEscrow


def unescrowed_keys() -> list[str]:
    """Ids of master keys in the ring that no manager has confirmed as escrowed."""
    try:
        ids = [k.key_id for k in keyring.ring()]
    except keyring.KeyRingError:
        return []
    confirmed = set(KeyEscrow.objects.filter(key_id__in=ids).values_list("key_id", flat=True))
    return [i for i in ids if i not in confirmed]


def missing_key() -> dict:
    """Live copies sealed with keys no longer in the ring (the same figure as check E002)."""
    from dr_portal.checks import missing_key_summary

    try:
        copies, key_ids = missing_key_summary()
    except keyring.KeyRingError:
        return {"copies": 0, "key_ids": []}
    return {"copies": copies, "key_ids": key_ids}


def dashboard(request):
    from dr_portal.readiness import dashboard_context

    context = {
        "unescrowed_keys": unescrowed_keys(),
        "missing_key": missing_key(),
        **dashboard_context(request),
    }
    return render(request, "dr_portal/dashboard.html", context)


@require_POST
@roles.role_required(roles.MANAGER)
def confirm_escrow(request):
    where = request.POST.get("where", "").strip()
    if not where:
        messages.error(
            request, "Say where the key is kept (for example: the ops password manager)."
        )
        return redirect("dashboard")
    for key_id in unescrowed_keys():
        entry = KeyEscrow.objects.create(
            key_id=key_id, confirmed_by=request.user, where=where[:200]
        )
        audit.record("confirm_key_escrow", entry, user=request.user)
    messages.success(request, "Key escrow confirmed.")
    return redirect("dashboard")


@require_GET
@never_cache
def health_live(request):
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def health_ready(request):
    """The portal itself, cached a few seconds; details only for a logged-in viewer."""
    checks = health.ready_checks()
    ok = all(c["ok"] for c in checks.values())
    if not roles.has_role(request.user, roles.VIEWER):
        checks = health.public_view(checks)
    return JsonResponse(
        {"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503
    )


@require_GET
@never_cache
def health_destinations(request):
    """Destinations and the scratch server, probed now with short timeouts (viewer role)."""
    checks = health.reachability(deadline_s=health.PROBE_DEADLINE_S)
    if request.GET.get("format") == "json":
        ok = all(c["ok"] for c in checks.values())
        return JsonResponse({"status": "ok" if ok else "fail", "checks": checks})
    return render(
        request,
        "dr_portal/destinations_health.html",
        {"checks": checks, "deadline_s": health.PROBE_DEADLINE_S},
    )


def settings_summary():
    return {"env": settings.DR_ENV}
