"""The drill report (the seed's "Document Results" block) and the RTO charts of the index."""

from collections import OrderedDict

from dr_portal.lib.charts import line_chart
from dr_portal.lib.durations import format_duration
from drills.models import DrillRun, DrillStatus, ScenarioRun, ScenarioStatus
from drills.services import followups


def quarter_label(dt) -> str:
    return f"Q{(dt.month - 1) // 3 + 1} {dt.year}"


def report_context(drill: DrillRun) -> dict:
    scenario_runs = list(
        drill.scenario_runs.prefetch_related(
            "restore_tests__source", "items__done_by", "acks", "systems"
        ).order_by("position")
    )
    findings = list(drill.findings.select_related("scenario_run", "created_by"))
    issues = [f"{f.text} ({f.get_severity_display().lower()})" for f in findings]
    for srun in scenario_runs:
        for reason in srun.reasons or []:
            issues.append(f"{srun.title}: {reason}")
    actions = list(followups(drill))
    general = [f.text for f in findings if f.scenario_run_id is None]
    action_text = "; ".join(
        a.text
        + (f" (owner {a.owner_name})" if a.owner_name else "")
        + (f" (due {a.due:%Y-%m-%d})" if a.due else "")
        for a in actions
    )
    # Follow-ups and findings without a scenario belong to the whole drill: with one scenario
    # they go in its block, with several in one "whole drill" block, never under each.
    alone = len(scenario_runs) == 1
    for srun in scenario_runs:
        srun.issue_list = list(srun.reasons or []) + [
            f.text for f in findings if f.scenario_run_id == srun.pk
        ]
        srun.issue_text = "; ".join(srun.issue_list + (general if alone else [])) or "none"
        srun.action_text = (action_text or "none") if alone else ""
    return {
        "drill": drill,
        "plan": drill.plan,
        "quarter": quarter_label(drill.declared_at),
        "scenario_runs": scenario_runs,
        "findings": findings,
        "issues": issues,
        "actions": actions,
        "general_issues": general,
        "action_text": action_text or "none",
        "whole_drill_block": not alone,
        "events": list(drill.events.order_by("at", "pk")),
        "cleanup_checks": list(drill.cleanup_checks.all()),
        "participants": list(drill.plan.participants.all()),
    }


def rto_charts(limit_drills: int = 20, drills=None) -> list[dict]:
    """One chart per scenario (plan + title): RTO achieved per past drill vs its target.

    `drills`: only these drill runs (a queryset the user may see); None: all of them."""
    scenario_runs = (
        ScenarioRun.objects if drills is None else ScenarioRun.objects.filter(drill__in=drills)
    )
    runs = (
        scenario_runs.filter(
            drill__status__in=[DrillStatus.ENDED, DrillStatus.ABORTED],
            status__in=[ScenarioStatus.PASSED, ScenarioStatus.FAILED],
            rto__isnull=False,
        )
        .select_related("drill")
        .order_by("-drill__declared_at")[: limit_drills * 10]
    )
    groups: OrderedDict = OrderedDict()
    for srun in runs:
        key = (srun.drill.plan_name, srun.title)
        group = groups.setdefault(key, {"points": [], "target": srun.rto_target})
        if len(group["points"]) < limit_drills:
            group["points"].append((srun.drill.declared_at, srun.rto.total_seconds()))
    charts = []
    for (plan_name, title), group in groups.items():
        target = group["target"].total_seconds() if group["target"] else None
        charts.append(
            {
                "title": f"{plan_name} · {title}",
                "svg": line_chart(
                    [("RTO achieved", group["points"])],
                    target=target,
                    target_label="RTO target",
                    y_format=format_duration,
                    title=f"{title}: RTO achieved vs target",
                ),
            }
        )
    return charts
