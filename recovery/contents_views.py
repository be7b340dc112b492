"""The contents of a backup on its run page (an htmx fragment), and two backups compared."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from backups.models import BackupRun
from dr_portal import audit
from dr_portal.lib.queue import enqueue
from dr_portal.lib.roles import MANAGER, OPERATOR, get_scoped, has_role, system_role_required
from recovery import contents as backup_contents
from recovery.partial import choice_name

SHOWN = 2000  # items rendered at once; the search narrows the rest


def _matches(item: dict, needle: str) -> bool:
    return needle in f"{item.get('schema', '')}.{item['name']}".lower()


def _groups(items: list[dict]) -> list[tuple[str, list[dict]]]:
    """Items under their schema (PostgreSQL) or top directory (files), in order."""
    groups: dict[str, list[dict]] = {}
    for item in items:
        if "schema" in item:
            key = item["schema"] or "(database)"
        else:
            key = item["name"].split("/", 1)[0] if "/" in item["name"] else "."
        groups.setdefault(key, []).append(item)
    return list(groups.items())


@system_role_required()
def run_contents(request, pk):
    """The fragment: the searchable tree when cached, else a button to read it."""
    run = get_scoped(BackupRun.objects, request.user, "source__system", pk=pk)
    contents = backup_contents.cached(run, detail=False)
    query = request.GET.get("q", "").strip()[:200]
    context = {"run": run, "contents": contents, "q": query}
    if contents is not None:
        items = contents.items
        if query:
            items = [i for i in items if _matches(i, query.lower())]
        context.update(
            matched=len(items), groups=_groups(items[:SHOWN]), truncated=len(items) > SHOWN
        )
        others = BackupRun.objects.filter(source_id=run.source_id).exclude(pk=run.pk)
        context["others"] = others.order_by("-pk").values_list("pk", flat=True)[:30]
        # chosen tables or files are restored from here (recovery.partial_views)
        context["can_choose"] = (
            contents.kind in ("postgresql", "files")
            and run.is_good
            and run.source is not None
            and has_role(request.user, OPERATOR, run.source.system_id)
        )
        context["can_preview"] = (
            context["can_choose"]
            and contents.kind == "postgresql"
            and has_role(request.user, MANAGER, run.source.system_id)
        )
        if context["can_choose"]:
            for item in items[:SHOWN]:  # a fresh copy of the row's JSON: safe to annotate
                item["pick"] = choice_name(item)
    return render(request, "recovery/_run_contents.html", context)


@require_POST
@system_role_required(OPERATOR)
def read_contents(request, pk):
    run = get_scoped(BackupRun.objects, request.user, "source__system", OPERATOR, pk=pk)
    enqueue("recovery.tasks.read_backup_contents", run.pk, group=f"contents {run.pk}")
    audit.record("read backup contents", run, user=request.user)
    messages.success(request, f"Reading the contents of backup run #{run.pk}.")
    return redirect(run)


@system_role_required()
def compare_runs(request, pk, other):
    newer = get_scoped(BackupRun.objects, request.user, "source__system", pk=pk)
    older = get_scoped(BackupRun.objects, request.user, "source__system", pk=other)
    try:
        backup_contents.check_comparable(older, newer)
    except ValueError as exc:
        raise Http404(str(exc)) from None
    a, b = backup_contents.cached(older), backup_contents.cached(newer)
    rows = backup_contents.compare(a, b) if a and b else None
    context = {
        "older": older,
        "newer": newer,
        "rows": rows,
        "missing": [r for r, c in ((older, a), (newer, b)) if c is None],
    }
    return render(request, "recovery/compare_runs.html", context)
