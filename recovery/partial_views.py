"""Restore chosen tables or paths of one backup run from the portal (its contents page).

GET shows the choice made in the contents tree; "Review" shows what will be written
(the dependency plan: what comes with the tables, what is reported and skipped); "Start
restore" queues the same Restore row as `manage.py restore RUN --tables/--paths`.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from backups.models import BackupRun
from dr_portal import audit
from dr_portal.lib.roles import MANAGER, OPERATOR, get_scoped, has_role, system_role_required
from recovery import contents as backup_contents
from recovery import partial as chosen_parts
from recovery import restore_targets, restores, runner, targeting
from recovery.models import RestoreTarget
from recovery.partial_forms import PartialRestoreForm
from recovery.preview import preview
from recovery.views import restore_how


def choosable(contents) -> list[str]:
    """What may be chosen: tables (schema.name) of a PostgreSQL backup, any entry of a tar."""
    return [n for n in map(chosen_parts.choice_name, contents.items) if n]


@system_role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def partial_restore(request, pk):
    runs = BackupRun.objects.select_related("source")
    run = get_scoped(runs, request.user, "source__system", OPERATOR, pk=pk)
    source = run.source
    if source is None or not run.is_good:
        raise Http404("only a good backup of an existing source is restored")
    contents = backup_contents.cached(run)
    if contents is None or contents.kind not in ("postgresql", "files"):
        messages.error(
            request,
            "Read the backup's contents first, then choose tables (PostgreSQL) or files "
            "(files backups) there; a SQLite backup is restored whole.",
        )
        return redirect(run)
    names = choosable(contents)
    known = set(names)
    asked = (
        request.POST.getlist("items") if request.method == "POST" else request.GET.getlist("item")
    )
    can_overwrite = has_role(request.user, MANAGER, source.system_id)
    targets = list(RestoreTarget.objects.compatible_with(source, targeting.source_kind(source)))
    form = PartialRestoreForm(
        request.POST or None,
        source=source,
        run=run,
        kind=contents.kind,
        names=names,
        can_overwrite=can_overwrite,
        targets=targets,
        initial={"items": [a for a in asked if a in known]},
    )
    plan = None
    if request.method == "POST" and form.is_valid():
        plan = chosen_parts.plan(contents, form.partial())
        if request.POST.get("confirmed") and "error" not in plan:
            started = _start(request, form, run)
            if started is not None:
                return started
    return render(
        request,
        "recovery/partial_restore_form.html",
        {
            "run": run,
            "source": source,
            "form": form,
            "kind": contents.kind,
            "chosen": [a for a in asked if a in known],
            "unknown": [a for a in asked if a not in known][:20],
            "plan": plan,
            "has_targets": bool(targets),
            "can_overwrite": can_overwrite,
        },
        status=400 if request.method == "POST" and not form.is_valid() else 200,
    )


def _start(request, form, run):
    """Queue the restore (audited), or put why not on the form and return None."""
    data = form.cleaned_data
    try:
        restore = restores.start_restore(
            run.source,
            target=(data.get("target") or "").strip(),
            restore_target=data["restore_target"],
            database_name=(data.get("database_name") or "").strip(),
            onto_source=data["onto_source"],
            backup_run=run,
            failure_type=data["failure_type"],
            declared_at=data.get("declared_at"),
            overwrite=bool(data.get("overwrite")),
            user=request.user,
            partial=form.partial(),
        )
    except ValueError as exc:
        form.add_error(None, str(exc))
        return None
    except (runner.Busy, restore_targets.NotAllowed) as exc:
        form.add_error(None, str(exc))
        return None
    audit.record(
        "restore",
        run.source,
        user=request.user,
        detail=f"restore #{restore.pk} of run #{run.pk}{chosen_parts.describe(restore)} "
        f"to {restore.target}" + restore_how(restore),
    )
    restores.enqueue_restore(restore)
    messages.success(request, f"Restore #{restore.pk} queued.")
    return redirect(restore)


@require_POST
@system_role_required(MANAGER)
def preview_table(request, pk):
    """The first rows of one table of the backup, masked columns as •••; audited (which
    table, never the data), also when it fails."""
    runs = BackupRun.objects.select_related("source")
    run = get_scoped(runs, request.user, "source__system", MANAGER, pk=pk)
    contents = backup_contents.cached(run, detail=False)
    table = request.POST.get("table", "")[:200]
    if (
        contents is None
        or contents.kind != "postgresql"
        or table not in choosable(contents)
        or not run.is_good
    ):
        messages.error(
            request, "Only a table listed in a PostgreSQL backup's contents is previewed."
        )
        return redirect(run)
    try:
        shown = preview(run, table)
    except runner.RecoveryFailure as exc:
        audit.record("preview table", run, user=request.user, detail=f"{table}: failed")
        messages.error(request, f"Preview of {table} failed: {exc}")
        return redirect(run)
    audit.record(
        "preview table",
        run,
        user=request.user,
        detail=f"{shown.table} of backup run #{run.pk}: first {len(shown.rows)} of "
        f"{shown.total} rows; masked: {', '.join(shown.masked) or 'none'}",
    )
    return render(
        request, "recovery/table_preview.html", {"run": run, "source": run.source, "p": shown}
    )
