"""One set of factory-boy factories for every model that more than one test file builds.

Rows only: a factory never creates a file or a database. The helpers that make real data
(tests/support/data.py: SQLite files, PostgreSQL databases) use these for the rows.

    SourceFactory(sqlite=True, path=...)      # a SQLite source (the default kind)
    SourceFactory(postgresql=True, database=...)
    BackupRunFactory(good=True, destination=dest)   # found by BackupRun.objects.good()
    UserFactory(role="operator")
"""

from datetime import timedelta

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone
from factory.django import DjangoModelFactory

from backups.models import BackupCopy, BackupJob, BackupRun, Destination, Source, System
from drills.models import DrillPlan, DrillRun, Scenario, ScenarioSource
from incidents.models import Contact, Incident
from recovery.failover.models import Runbook
from recovery.models import Restore, RestoreTarget, RestoreTest

PASSWORD = "correct-horse-battery-staple"
COUNT_WORKFLOWS = [{"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"}]


class UserFactory(DjangoModelFactory):
    """A user with the shared test password; `role` adds the group (viewer/operator/manager)."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(user, create, role, **kwargs):
        if not (create and role):
            return
        if not Group.objects.filter(name=role).exists():
            # A transactional test before this one flushed the groups the migration made.
            from dr_portal.setup import ensure_role_permissions  # noqa: PLC0415 - rarely needed

            ensure_role_permissions()
        user.groups.add(Group.objects.get(name=role))


class SystemFactory(DjangoModelFactory):
    class Meta:
        model = System
        django_get_or_create = ("name",)

    name = "Tool Hub"


def _default_path(source) -> str:
    """A path that names no real file: only SQLite and files sources have one."""
    return {
        "sqlite": f"/tmp/dr-tests/{source.name}.db",
        "files": f"/tmp/dr-tests/{source.name}",
    }.get(source.kind, "")


class SourceFactory(DjangoModelFactory):
    """A SQLite source by default; traits for the other kinds and the portal's own database.
    data_class is the model's default ("important") unless given."""

    class Meta:
        model = Source

    system = factory.SubFactory(SystemFactory)
    name = factory.Sequence(lambda n: f"source-{n}")
    kind = Source.Kind.SQLITE
    path = factory.LazyAttribute(_default_path)

    class Params:
        sqlite = factory.Trait(kind=Source.Kind.SQLITE)
        postgresql = factory.Trait(
            kind=Source.Kind.POSTGRESQL,
            host="127.0.0.1",
            port=5432,
            user="postgres",
            database=factory.LazyAttribute(lambda s: s.name.replace("-", "_")),
        )
        files = factory.Trait(kind=Source.Kind.FILES)
        portal_db = factory.Trait(kind=Source.Kind.POSTGRESQL, is_portal_db=True)


class DestinationFactory(DjangoModelFactory):
    """A local directory by default; `s3=True` for a bucket (give endpoint_url and keys)."""

    class Meta:
        model = Destination

    name = factory.Sequence(lambda n: f"dest-{n}")
    kind = Destination.Kind.LOCAL
    path = factory.LazyAttribute(lambda d: f"/tmp/dr-tests/{d.name}" if d.kind == "local" else "")

    class Params:
        local = factory.Trait(kind=Destination.Kind.LOCAL)
        s3 = factory.Trait(
            kind=Destination.Kind.S3,
            bucket="dr-tests",
            prefix="dr/",
            region="us-east-1",
        )


class BackupJobFactory(DjangoModelFactory):
    """A job; `destinations=[...]` sets its destinations (none unless given)."""

    class Meta:
        model = BackupJob
        skip_postgeneration_save = True

    source = factory.SubFactory(SourceFactory)
    name = factory.LazyAttribute(lambda j: f"{j.source.name}-job")

    @factory.post_generation
    def destinations(job, create, destinations, **kwargs):
        if create and destinations:
            job.destinations.set(destinations)


class BackupRunFactory(DjangoModelFactory):
    """A backup run row (no job and no source unless given: a run outlives both).

    `good=True`: succeeded, restorable, taken now, with one live copy on `destination`
    (a new local one unless given), so BackupRun.objects.good() finds it."""

    class Meta:
        model = BackupRun
        skip_postgeneration_save = True

    job = None
    source = factory.LazyAttribute(lambda r: r.job.source if r.job else None)
    job_name = factory.LazyAttribute(lambda r: r.job.name if r.job else "")
    source_name = factory.LazyAttribute(lambda r: r.source.name if r.source else "")

    class Params:
        destination = None
        good = factory.Trait(
            status="succeeded",
            restorable=True,
            data_taken_at=factory.LazyFunction(timezone.now),
            live_copy=factory.RelatedFactory(
                "tests.factories.BackupCopyFactory",
                factory_related_name="run",
                destination=factory.LazyAttribute(
                    lambda c: c.factory_parent.destination or DestinationFactory()
                ),
            ),
        )


class BackupCopyFactory(DjangoModelFactory):
    class Meta:
        model = BackupCopy

    run = factory.SubFactory(BackupRunFactory)
    destination = factory.SubFactory(DestinationFactory)
    ok = True


class RestoreTestFactory(DjangoModelFactory):
    class Meta:
        model = RestoreTest

    source = factory.SubFactory(SourceFactory)


class RestoreFactory(DjangoModelFactory):
    class Meta:
        model = Restore

    source = factory.SubFactory(SourceFactory)
    failure_type = "data_corruption"
    target_kind = "file"
    target = "/tmp/dr-tests/restored.db"


class RestoreTargetFactory(DjangoModelFactory):
    """A registered restore target; `sources=[...]` sets the sources it may receive."""

    class Meta:
        model = RestoreTarget
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"target-{n}")
    kind = "postgresql"
    host = "127.0.0.1"
    port = 5432
    user = "postgres"
    database = factory.Sequence(lambda n: f"dr_target_{n}")

    @factory.post_generation
    def sources(target, create, sources, **kwargs):
        if create and sources:
            target.sources.set(sources)


class RunbookFactory(DjangoModelFactory):
    """A runbook; `steps=[...]` (definitions) replaces its steps, with `secrets` if given."""

    class Meta:
        model = Runbook
        skip_postgeneration_save = True

    system = factory.SubFactory(SystemFactory, name="tool-hub")
    name = "Test runbook"
    failure_type = "single_node"

    @factory.post_generation
    def steps(runbook, create, steps, **kwargs):
        if create and steps is not None:
            runbook.replace_steps(steps, secrets=kwargs.get("secrets"))


class ContactFactory(DjangoModelFactory):
    class Meta:
        model = Contact

    role = "DevOps"
    name = factory.Sequence(lambda n: f"Contact {n}")


class DrillPlanFactory(DjangoModelFactory):
    """A plan; `systems=[...]` and `participants=[...]` set its relations."""

    class Meta:
        model = DrillPlan
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Drill plan {n}")

    @factory.post_generation
    def systems(plan, create, systems, **kwargs):
        if create and systems:
            plan.systems.set(systems)

    @factory.post_generation
    def participants(plan, create, participants, **kwargs):
        if create and participants:
            plan.participants.set(participants)


class ScenarioFactory(DjangoModelFactory):
    """A scenario at the end of its plan; `sources=[...]` links sources to it."""

    class Meta:
        model = Scenario
        skip_postgeneration_save = True

    plan = factory.SubFactory(DrillPlanFactory)
    kind = "manual"
    title = factory.Sequence(lambda n: f"Scenario {n}")
    order = factory.LazyAttribute(lambda s: s.plan.scenarios.count() + 1)

    @factory.post_generation
    def sources(scenario, create, sources, **kwargs):
        for source in (sources or ()) if create else ():
            ScenarioSource.objects.create(scenario=scenario, source=source)


class DrillRunFactory(DjangoModelFactory):
    class Meta:
        model = DrillRun

    plan = factory.SubFactory(DrillPlanFactory)
    plan_name = factory.LazyAttribute(lambda r: r.plan.name)


class IncidentFactory(DjangoModelFactory):
    """An incident; `recent=True` gives it a summary and a detection an hour ago."""

    class Meta:
        model = Incident

    title = "Database connection pool exhausted"

    class Params:
        recent = factory.Trait(
            summary="API down for 18 minutes",
            detected_at=factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1)),
        )
