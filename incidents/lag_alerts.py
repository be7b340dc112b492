"""Every minute: sample the replication lag of the runbooks' standbys and alert while one is
over DR_LAG_ALERT_S / DR_LAG_ALERT_BYTES or cannot be measured (recovery.failover.lag)."""

from django.urls import reverse

from incidents.alerts import alert, recover
from incidents.models import Alert
from recovery.failover import lag

PREFIX = "replication_lag:"


def key_of(sample) -> str:
    return f"{PREFIX}{sample.runbook_id}:{sample.step_id}"


def sample_replication_lag() -> int:
    """Sample, then raise or recover one alert per standby; returns how many are alarming."""
    samples = lag.sample_all()
    alarming = 0
    for sample in samples:
        key, system = key_of(sample), sample.runbook.system
        why = lag.over_threshold(sample)
        if why:
            alarming += 1
            alert(
                key,
                "replication_lag",
                f"Standby {sample.standby} of {system} is lagging: {why}"
                if not sample.error
                else f"Standby {sample.standby} of {system}: {why}",
                detail=(
                    "A failover now would lose the data the standby has not replayed. "
                    "Check the standby's log, its network to the primary and "
                    "pg_stat_replication on the primary."
                ),
                url=reverse("recovery:failover:runbook", args=[sample.runbook_id]),
            )
        else:
            recover(key, title=f"Standby {sample.standby} of {system} caught up")
    # A standby no runbook names any more: its alert would stay open forever.
    current = {key_of(s) for s in samples}
    stale = Alert.objects.filter(key__startswith=PREFIX, recovered__isnull=True).exclude(
        key__in=current
    )
    for key in stale.values_list("key", flat=True):
        recover(key, title="Closed: the standby is no longer in a runbook")
    return alarming
