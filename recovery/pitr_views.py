"""The portal page for a restore to a point of a point-in-time source (queued, never run here)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from backups.models import PitrWindow, Source
from dr_portal import audit
from dr_portal.lib.roles import MANAGER, OPERATOR, get_scoped, has_role, system_role_required
from recovery import pitr_restores, restore_targets, runner
from recovery.engine.pitr import free_port
from recovery.models import RestoreTarget
from recovery.pitr_forms import PitrRestoreForm


def _suggested_port(targets) -> int | None:
    """A free port of the first target's range, to pre-fill the form."""
    for target in targets:
        for port in target.ports()[:50]:
            if not pitr_restores.listening("127.0.0.1", port):
                return port
    return free_port() if not targets else None


@system_role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def pitr_restore_new(request, source_id):
    source = get_scoped(
        Source.objects.select_related("system"),
        request.user,
        "system",
        OPERATOR,
        pk=source_id,
        pitr=True,
    )
    window = PitrWindow.objects.filter(source=source).first()
    targets = list(RestoreTarget.objects.compatible_with(source, RestoreTarget.Kind.DATADIR))
    can_onto_source = has_role(request.user, MANAGER, source.system_id)
    newest = window.newest if window and window.newest else None
    form = PitrRestoreForm(
        request.POST or None,
        source=source,
        targets=targets,
        can_onto_source=can_onto_source,
        initial={
            "at": newest.strftime("%Y-%m-%dT%H:%M:%S") if newest else None,
            "port": _suggested_port(targets),
            "restore_target": targets[0].pk if len(targets) == 1 else None,
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            restore = pitr_restores.start_pitr_restore(
                source,
                at=data["at"],
                data_dir=data["data_dir"],
                port=data["port"],
                start=data["start"],
                restore_target=data["restore_target"],
                failure_type=data["failure_type"],
                user=request.user,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        except (runner.Busy, restore_targets.NotAllowed) as exc:
            form.add_error(None, str(exc))
        else:
            audit.record(
                "restore",
                source,
                user=request.user,
                detail=f"restore #{restore.pk} of {source.name} to {data['at'].isoformat()} "
                f"into {restore.target} (port {restore.port}"
                + (", onto the source, confirmed by name)" if restore.onto_source else ")"),
            )
            pitr_restores.enqueue_pitr_restore(restore)
            messages.success(
                request, f"Restore #{restore.pk} to {data['at']:%Y-%m-%d %H:%M:%S} UTC queued."
            )
            return redirect(restore)
    return render(
        request,
        "recovery/pitr_restore_form.html",
        {"source": source, "form": form, "window": window, "has_targets": bool(targets)},
    )
