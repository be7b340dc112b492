"""The incident report as Markdown, in the seed's "Recovery Documentation" template shape.

Headings are exactly the template's; user text is escaped so that it stays text when the
Markdown is rendered (no HTML tags, links, emphasis or headings sneak in).
"""

import re

from django.utils import timezone

HEADINGS = [
    "## Summary",
    "## Timeline",
    "## Root Cause",
    "## Impact",
    "## Recovery Actions",
    "## Preventive Measures",
    "## Follow-up Items",
    "## Lessons Learned",
]

_INLINE = re.compile(r"([\\`*_\[\]<>|~])")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])")


def md_escape(text: str) -> str:
    """Backslash-escape Markdown and HTML markup (CommonMark escapes any ASCII punctuation)."""
    text = _INLINE.sub(r"\\\1", str(text or ""))
    text = _ENTITY.sub(r"\\&", text)
    lines = []
    for line in text.splitlines():
        match = _LINE_START.match(line)
        if match:
            lead, mark = match.groups()
            if mark[-1] in ".)":
                line = f"{lead}{mark[:-1]}\\{mark[-1]}{line[match.end() :]}"
            else:
                line = f"{lead}\\{line[len(lead) :]}"
        lines.append(line)
    return "\n".join(lines)


def md_inline(text: str) -> str:
    """One line: newlines folded so a value never breaks out of its list item."""
    return md_escape(" ".join(str(text or "").split()))


def human_duration(value) -> str:
    """18 minutes, 1 hour 15 minutes, 2 days 3 hours: the way the seed's report writes it."""
    if value is None:
        return "ongoing"
    minutes = int(round(value.total_seconds() / 60))
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (mins, "minute")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return " ".join(words[:2])


def _time(value, with_date: bool) -> str:
    local = timezone.localtime(value)
    return local.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def to_markdown(incident, timeline=None, followups=None) -> str:
    timeline = list(timeline if timeline is not None else incident.timeline.order_by("at", "pk"))
    followups = list(followups if followups is not None else incident.followups())
    days = {timezone.localtime(e.at).date() for e in timeline}
    with_date = len(days) > 1
    out = [f"# Incident Report: {incident.identifier}", ""]

    out += ["## Summary", md_inline(incident.summary or incident.title), ""]
    out += [
        f"- Title: {md_inline(incident.title)}",
        f"- Severity: {incident.get_severity_display()}",
        f"- Status: {incident.get_status_display()}",
    ]
    for label, value in (
        ("Started", incident.started_at),
        ("Detected", incident.detected_at),
        ("Resolved", incident.resolved_at),
    ):
        if value:
            out.append(f"- {label}: {timezone.localtime(value):%Y-%m-%d %H:%M %Z}")
    if with_date is False and days:
        out.append(f"- Timeline date: {min(days):%Y-%m-%d}")
    out.append("")

    out.append("## Timeline")
    out += [f"- {_time(e.at, with_date)} - {md_inline(e.text)}" for e in timeline] or ["- (none)"]
    out.append("")

    out += ["## Root Cause", md_escape(incident.root_cause) or "(not yet known)", ""]

    users = "unknown" if incident.users_affected is None else f"~{incident.users_affected}"
    duration = human_duration(incident.duration)
    out += [
        "## Impact",
        f"- Users Affected: {users}",
        f"- Duration: {duration}",
        f"- Data Loss: {md_inline(incident.data_loss) or 'unknown'}",
        f"- Services Down: {md_inline(incident.services_down) or 'none recorded'}",
        "",
    ]

    out.append("## Recovery Actions")
    actions = incident.recovery_action_list
    out += [f"{i}. {md_inline(a)}" for i, a in enumerate(actions, 1)] or ["(none recorded)"]
    out.append("")

    out.append("## Preventive Measures")
    measures = incident.preventive_measure_list
    out += [f"{i}. {md_inline(m)}" for i, m in enumerate(measures, 1)] or ["(none recorded)"]
    out.append("")

    out.append("## Follow-up Items")
    for item in followups:
        extra = []
        if item.owner_name:
            extra.append(f"owner: {md_inline(item.owner_name)}")
        if item.due:
            extra.append(f"due {item.due:%Y-%m-%d}")
        suffix = f" ({', '.join(extra)})" if extra else ""
        out.append(f"- [{'x' if item.done else ' '}] {md_inline(item.text)}{suffix}")
    if not followups:
        out.append("(none)")
    out.append("")

    out += ["## Lessons Learned", md_escape(incident.lessons_learned) or "(not yet written)", ""]
    return "\n".join(out)
