"""Demo: the seed's "Quarterly Disaster Recovery Drill" as a plan for Tool Hub (idempotent).

Database failure → a restore test of toolhub-db into scratch; node failure and network
failure → the Tool Hub runbooks in test mode when they exist, otherwise the seed's steps as
a checklist; then the "Document results" checklist. Participants: DevOps (on-call), DBA and
the backend lead from the contacts directory.
"""

from datetime import timedelta

from backups.models import Source, System
from drills import schedule as sched
from drills.models import DrillPlan, Scenario, ScenarioSource
from incidents import demo as incidents_demo
from incidents.models import Contact
from recovery.failover.models import Runbook

PLAN = "Quarterly DR drill"

NODE_STEPS = (
    "Stop the application server (simulated crash)\n"
    "Fail over to the backup instance\n"
    "Validate: traffic flows to the backup instance, no errors"
)
NETWORK_STEPS = (
    "Simulate a network partition between the app and the database\n"
    "Re-establish connectivity\n"
    "Validate: services resume normally"
)
DOCUMENT_STEPS = (
    "Record RTO achieved and RPO achieved per scenario (this report does it)\n"
    "List the issues discovered as findings\n"
    "List the improvements needed as follow-up actions with an owner and a due date"
)


def _participants(stdout):
    if not Contact.objects.exists():
        # load_demo runs the apps in order and drills comes before incidents: the contacts
        # directory is loaded first so the plan has its participants (idempotent there too).

        incidents_demo.load(stdout)
    wanted = Contact.objects.filter(role__in=["On-Call", "DBA", "Backend", "Backend Team Lead"])
    return list(wanted.exclude(role="On-Call", on_call="secondary"))


def _runbook(system, failure_type):
    return Runbook.objects.filter(system=system, failure_type=failure_type).order_by("pk").first()


def _scenario(plan, order, title, **fields):
    scenario, made = Scenario.objects.get_or_create(
        plan=plan, title=title, defaults={"order": order, **fields}
    )
    if (
        not made
        and scenario.kind == "manual"
        and fields.get("kind") in ("failover", "network_failure")
    ):
        # A runbook appeared since the last load: the scenario now runs it.
        for key, value in fields.items():
            setattr(scenario, key, value)
        scenario.save()
    return scenario


def load(stdout):
    system, _ = System.objects.get_or_create(name="Tool Hub")
    plan, made = DrillPlan.objects.get_or_create(
        name=PLAN,
        defaults={
            "description": "The seed document's quarterly drill: database, node and network "
            "failure, then document the results.",
            "time_budget": timedelta(hours=2),
            "rule": sched.DEFAULT_RULE,
            "start_time": sched.DEFAULT_TIME,
            "time_zone": "UTC",
        },
    )
    if made:  # later loads leave the plan's systems and participants as the user set them
        plan.systems.add(system)
        plan.participants.add(*_participants(stdout))

    db = _scenario(
        plan, 1, "Simulate database failure", kind="database_failure",
        instructions="Database server is down: restore the database from backup into the "
        "test environment (scratch) and verify data integrity.",
        time_budget=timedelta(minutes=30),
    )  # fmt: skip
    source = Source.objects.filter(name="toolhub-db").first()
    if source and not db.source_links.filter(source=source).exists():
        ScenarioSource.objects.create(scenario=db, source=source)

    node_runbook = _runbook(system, "single_node")
    node = {"kind": "failover", "runbook": node_runbook} if node_runbook else {
        "kind": "manual", "checklist": NODE_STEPS}  # fmt: skip
    _scenario(
        plan, 2, "Simulate node failure", failure_type="single_node",
        instructions="Application server crashes: fail over to the backup instance.",
        time_budget=timedelta(minutes=30), **node,
    )  # fmt: skip
    net_runbook = _runbook(system, "network_outage")
    net = {"kind": "network_failure", "runbook": net_runbook} if net_runbook else {
        "kind": "manual", "checklist": NETWORK_STEPS}  # fmt: skip
    _scenario(
        plan, 3, "Simulate network failure", failure_type="network_outage",
        instructions="Network partition: re-establish connectivity.",
        time_budget=timedelta(minutes=30), **net,
    )  # fmt: skip
    _scenario(
        plan, 4, "Document results", kind="manual", checklist=DOCUMENT_STEPS,
        time_budget=timedelta(minutes=5),
    )  # fmt: skip
    problems = plan.problems()
    note = f" (cannot start yet: {' '.join(problems)})" if problems else ""
    stdout.write(
        f"demo: drill plan “{plan.name}” ({plan.scenarios.count()} scenarios, "
        f"{plan.schedule_text}){note}"
    )
