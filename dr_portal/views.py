"""Portal-wide pages: health probes, key escrow confirmation, report signatures (the dashboard
is in dashboard/)."""

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from dr_portal import audit, health
from dr_portal.lib import roles, signing
from dr_portal.models import KeyEscrow, SignedReport


@require_POST
@roles.role_required(roles.MANAGER)
def confirm_escrow(request):
    where = request.POST.get("where", "").strip()
    if not where:
        messages.error(
            request, "Say where the key is kept (for example: the ops password manager)."
        )
        return redirect("dashboard")
    for key_id in KeyEscrow.unconfirmed_key_ids():
        entry = KeyEscrow.objects.create(
            key_id=key_id, confirmed_by=request.user, where=where[:200]
        )
        audit.record("confirm_key_escrow", entry, user=request.user)
    messages.success(request, "Key escrow confirmed.")
    return redirect("dashboard")


@require_GET
@roles.role_required(roles.VIEWER)
def report_signature(request, pk):
    """The detached Ed25519 signature of one issued report PDF: public, it grants nothing."""
    report = get_object_or_404(SignedReport, pk=pk)
    response = HttpResponse(report.signature_bytes, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{report.filename}.sig"'
    return response


@require_GET
@roles.role_required(roles.VIEWER)
def signing_key(request):
    """The public half of the report signing key, to check signatures without the portal."""
    response = HttpResponse(signing.public_pem(), content_type="application/x-pem-file")
    response["Content-Disposition"] = 'attachment; filename="signing-key.pem"'
    return response


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
