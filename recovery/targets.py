"""RTO and RPO targets, and the verdict of a figure held against its target.

The one home of: the target models (`RTOTarget`, `RPOTarget`, `ServiceLevel`), the fallback
when a manager deleted a target row (the seed document's tables, the values the first
migration seeds), `AT_RISK_FRACTION`, `Verdict` and `judge(value, target)`.
recovery/models.py imports the models from here, so they belong to the recovery app.
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models

from backups.models import RPO_TARGET, DataClass

AT_RISK_FRACTION = 0.8  # a figure over 80 % of its target is at risk


class FailureType(models.TextChoices):
    SINGLE_NODE = "single_node", "Single node failure"
    DATA_CORRUPTION = "data_corruption", "Data corruption"
    DATABASE_FAILURE = "database_failure", "Database failure"
    NETWORK_OUTAGE = "network_outage", "Network outage"
    REGION_FAILURE = "region_failure", "Region failure"
    COMPLETE_LOSS = "complete_loss", "Complete loss"


# A restore from backup answers a database failure or data corruption; its RTO forecast is
# held against the stricter of this type's target and the SLA's RTO.
RESTORE_FAILURE_TYPE = FailureType.DATABASE_FAILURE

# The seed document's RTO table: what a failure type is held to when its row was deleted.
SEED_RTO = {
    FailureType.SINGLE_NODE: timedelta(minutes=15),
    FailureType.DATA_CORRUPTION: timedelta(minutes=30),
    FailureType.DATABASE_FAILURE: timedelta(hours=4),
    FailureType.NETWORK_OUTAGE: timedelta(minutes=30),
    FailureType.REGION_FAILURE: timedelta(hours=24),
    FailureType.COMPLETE_LOSS: timedelta(hours=72),
}
# The seed's RPO table lives with the data classes (backups.models.RPO_TARGET): a source
# needs its RPO target below the recovery app.
SEED_RPO = RPO_TARGET


class Verdict(models.TextChoices):
    """A figure against its target (met / missed), or a drill's overall outcome."""

    NONE = "", "Not judged"
    MET = "met", "Within target"
    MISSED = "missed", "Target missed"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ABORTED = "aborted", "Aborted"


def judge(value: timedelta | None, target: timedelta | None) -> Verdict:
    """MET when `value` is within `target`, MISSED over it; NONE when either is unknown."""
    if value is None or target is None:
        return Verdict.NONE
    return Verdict.MET if value <= target else Verdict.MISSED


def at_risk(value: timedelta | None, target: timedelta | None) -> bool:
    """Within the target but over AT_RISK_FRACTION of it."""
    return judge(value, target) == Verdict.MET and value > target * AT_RISK_FRACTION


class RTOTarget(models.Model):
    """How long recovery from one failure type may take."""

    failure_type = models.CharField(max_length=20, choices=FailureType.choices, unique=True)
    target = models.DurationField()
    notes = models.CharField(max_length=300, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "recovery"
        ordering = ["target"]
        verbose_name = "RTO target"

    def __str__(self):
        return f"RTO {self.get_failure_type_display()}"

    @classmethod
    def for_failure(cls, failure_type: str) -> timedelta | None:
        """The managers' target for `failure_type`, else the seed's; None without a type."""
        if not failure_type:
            return None
        row = cls.objects.filter(failure_type=failure_type).values_list("target", flat=True)
        return row.first() or SEED_RTO.get(failure_type)


class RPOTarget(models.Model):
    """How much data (as time) one data class may lose."""

    data_class = models.CharField(max_length=12, unique=True)
    target = models.DurationField()
    notes = models.CharField(max_length=300, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "recovery"
        ordering = ["target"]
        verbose_name = "RPO target"

    def __str__(self):
        return f"RPO {self.data_class_label}"

    @property
    def data_class_label(self) -> str:
        return dict(DataClass.choices).get(self.data_class, self.data_class)

    @classmethod
    def for_data_class(cls, data_class: str) -> timedelta:
        """The managers' target for `data_class`, else the seed's (important when unknown)."""
        targets = rpo_targets()
        return targets.get(data_class, targets[DataClass.IMPORTANT])


def rpo_targets() -> dict[str, timedelta]:
    """RPO target per data class: the managers' rows over the seed's table (one query)."""
    return {**SEED_RPO, **dict(RPOTarget.objects.values_list("data_class", "target"))}


class ServiceLevel(models.Model):
    """The committed SLA: availability, and the RTO/RPO promised for any failure (one row)."""

    availability_percent = models.DecimalField(max_digits=6, decimal_places=3, default=99.5)
    rto = models.DurationField(default=timedelta(hours=1))
    rpo = models.DurationField(default=timedelta(hours=1))
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "recovery"
        verbose_name = "service level"

    def __str__(self):
        return f"SLA {self.availability_percent}% availability"

    @classmethod
    def current(cls) -> "ServiceLevel":
        return cls.objects.order_by("pk").first() or cls(pk=None)

    @property
    def allowed_downtime_per_month(self) -> timedelta:
        return timedelta(days=30.4375) * float(100 - self.availability_percent) / 100

    def clean(self):
        if not 0 < self.availability_percent <= 100:
            raise ValidationError({"availability_percent": "Give a percentage above 0, up to 100."})


def restore_rto_target() -> timedelta | None:
    """What a restore from backup must meet: the stricter of the database-failure target and the SLA."""
    targets = [
        t
        for t in (
            RTOTarget.for_failure(RESTORE_FAILURE_TYPE),
            ServiceLevel.objects.order_by("pk").values_list("rto", flat=True).first(),
        )
        if t
    ]
    return min(targets) if targets else None
