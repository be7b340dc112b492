"""Built-in runbook templates from the seed document's failover procedures.

Each template turns a few variables (hosts, URLs, zone ids) into step definitions,
which go through the same validation as a hand-written runbook.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from recovery.failover.models import Runbook
from recovery.failover.steps import parse_steps


@dataclass
class Template:
    key: str
    title: str
    failure_type: str
    description: str
    variables: dict[str, tuple]  # name -> (default, help)
    build: Callable[[dict], list[dict]] = field(repr=False)

    def values(self, given: dict | None = None) -> dict:
        given = given or {}
        unknown = set(given) - set(self.variables)
        if unknown:
            raise ValueError(
                f"unknown template variable(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(self.variables)}"
            )
        return {name: given.get(name, default) for name, (default, _help) in self.variables.items()}

    def definitions(self, given: dict | None = None) -> list[dict]:
        return self.build(self.values(given))


def _conn(v, prefix):
    return {
        "host": v[f"{prefix}_host"],
        "port": int(v[f"{prefix}_port"]),
        "dbname": v["dbname"],
        "user": v["user"],
    }


def _check_conn(v):
    """The checks connect as a role that can only read: sql_check refuses a superuser."""
    return {**_conn(v, "standby"), "user": v["check_user"]}


def pg_standby_promotion(v):
    steps = [
        {
            "name": "Primary is truly down",
            "kind": "pg_ready",
            "timeout": 60,
            "retries": 2,
            "retry_delay": 5,
            "params": {**_conn(v, "primary"), "expect": "down", "connect_timeout": 5},
        },
        {
            "verification": False,
            "name": "Standby accepts connections",
            "kind": "pg_ready",
            "timeout": 30,
            "params": _conn(v, "standby"),
        },
        {
            "name": "Promote the standby",
            "kind": "pg_promote",
            "timeout": 120,
            "params": _conn(v, "standby"),
        },
        {
            "name": "New primary is out of recovery",
            "kind": "sql_check",
            "verification": True,
            "timeout": 30,
            "params": {
                **_check_conn(v),
                "query": "SELECT pg_is_in_recovery()",
                "expect": "false",
            },
        },
        {
            "name": "Data is there",
            "kind": "sql_check",
            "verification": True,
            "timeout": 60,
            "params": {
                **_check_conn(v),
                "query": v["check_query"],
                "expect": v["check_expect"],
            },
        },
    ]
    if v["app_health_url"]:
        steps += [
            {
                "name": "Point the application at the new primary",
                "kind": "manual",
                "timeout": 1800,
                "params": {
                    "instruction": (
                        f"Set DATABASE_URL to postgresql://…@{v['standby_host']}:{v['standby_port']}/"
                        f"{v['dbname']} and restart the application (sudo systemctl restart tool-hub)."
                    )
                },
            },
            {
                "name": "Application is healthy",
                "kind": "http_check",
                "verification": True,
                "timeout": 120,
                "retries": 5,
                "retry_delay": 10,
                "params": {"url": v["app_health_url"], "request_timeout": 5},
            },
        ]
    return steps


def active_passive(v):
    aws = {"region": v["region"]}
    if v["endpoint_url"]:
        aws["endpoint_url"] = v["endpoint_url"]
    dns = {"zone_id": v["zone_id"], "name": v["record_name"], "type": "A", "ttl": 60, **aws}
    return [
        {
            "name": "Primary fails its health check",
            "kind": "http_check",
            "timeout": 60,
            "retries": 2,
            "retry_delay": 10,
            "params": {"url": v["primary_health_url"], "expect": "down", "request_timeout": 5},
        },
        {
            "name": "Point DNS at the backup",
            "kind": "dns_update",
            "timeout": 180,
            "params": {**dns, "values": [v["backup_ip"]]},
            "rollback": [
                {
                    "name": "Point DNS back at the primary",
                    "kind": "dns_update",
                    "timeout": 180,
                    "params": {**dns, "values": [v["primary_ip"]]},
                }
            ],
        },
        {
            "name": "Swap load balancer targets",
            "kind": "lb_swap",
            "timeout": 120,
            "params": {
                "target_group_arn": v["target_group_arn"],
                "deregister": [v["primary_target"]],
                "register": [v["backup_target"]],
                **aws,
            },
            "rollback": [
                {
                    "name": "Put the primary back in the load balancer",
                    "kind": "lb_swap",
                    "timeout": 120,
                    "params": {
                        "target_group_arn": v["target_group_arn"],
                        "deregister": [v["backup_target"]],
                        "register": [v["primary_target"]],
                        **aws,
                    },
                }
            ],
        },
        {
            "name": "Traffic flows to the backup",
            "kind": "http_check",
            "verification": True,
            "timeout": 180,
            "retries": 6,
            "retry_delay": 10,
            "params": {"url": v["public_health_url"], "request_timeout": 5},
        },
    ]


def network_outage(v):
    app = v["app_url"].rstrip("/")
    return [
        {
            "verification": False,
            "name": "Internet connectivity",
            "kind": "http_check",
            "timeout": 60,
            "retries": 3,
            "retry_delay": 10,
            "on_failure": "continue",
            "params": {
                "url": v["internet_url"],
                "method": "HEAD",
                "expect_status": [200, 301, 302, 403],
                "request_timeout": 5,
            },
        },
        {
            "verification": False,
            "name": "Database reachable",
            "kind": "pg_ready",
            "timeout": 60,
            "retries": 3,
            "retry_delay": 10,
            "params": {
                "host": v["db_host"],
                "port": int(v["db_port"]),
                "dbname": v["dbname"],
                "user": v["user"],
            },
        },
        {
            "name": "Local services running (restart networking if needed)",
            "kind": "manual",
            "timeout": 1800,
            "params": {
                "instruction": "Check `systemctl status tool-hub postgresql`; if the checks "
                "above failed, `sudo systemctl restart networking` (and docker), then confirm."
            },
        },
        {
            "name": "Reconnect MCP servers",
            "kind": "webhook",
            "timeout": 60,
            "retries": 2,
            "retry_delay": 5,
            "params": {
                "url": f"{app}/api/mcp/servers",
                "method": "POST",
                "json": {
                    "name": "filesystem",
                    "command": "npx",
                    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                },
            },
        },
        {
            "name": "Resume suspended executions",
            "kind": "webhook",
            "timeout": 60,
            "retries": 2,
            "retry_delay": 5,
            "params": {
                "url": v["resume_url"] or f"{app}/api/executions/resume",
                "method": "POST",
                "json": {"status": "suspended"},
            },
        },
        {
            "name": "Service ready",
            "kind": "http_check",
            "verification": True,
            "timeout": 120,
            "retries": 5,
            "retry_delay": 10,
            "params": {"url": f"{app}/health/ready"},
        },
    ]


def database_point_in_time(v):
    """Scenario A (database responding but corrupted), with point-in-time recovery: the
    restore replays to a point before the damage and runs the source's checks on the copy."""
    steps = [
        {
            "name": "Stop the application",
            "kind": "manual",
            "timeout": 1800,
            "params": {
                "instruction": f"Stop the application ({v['stop_command']}) so nothing writes "
                "to the damaged database, then confirm."
            },
        },
        {
            "name": "Restore the database to a point",
            "kind": "pitr_restore",
            "verification": True,  # the source's checks pass on the restored copy
            "timeout": int(v["restore_timeout_s"]),
            "params": {
                "source": v["source"],
                "at": v["at"],
                "target": v["target"],
                "directory": v["directory"],
                "port": int(v["port"]),
                "start": True,
            },
        },
        {
            "name": "Point the application at the restored database and start it",
            "kind": "manual",
            "timeout": 1800,
            "params": {
                "instruction": f"Point the application at port {v['port']} (the restored "
                f"copy) and start it ({v['start_command']}), then confirm."
            },
        },
    ]
    if v["app_health_url"]:
        steps.append(
            {
                "name": "Application is healthy",
                "kind": "http_check",
                "verification": True,
                "timeout": 120,
                "retries": 5,
                "retry_delay": 10,
                "params": {"url": v["app_health_url"]},
            }
        )
    return steps


TEMPLATES = {
    t.key: t
    for t in [
        Template(
            "pg_standby_promotion",
            "PostgreSQL standby promotion",
            "database_failure",
            "Seed: Database Failover (PostgreSQL streaming replication). Verify the primary is "
            "down, promote the standby, verify it left recovery and holds the data.",
            {
                "primary_host": ("primary.db", "primary server"),
                "primary_port": (5432, ""),
                "standby_host": ("standby.db", "standby server"),
                "standby_port": (5432, ""),
                "dbname": ("postgres", "database to check"),
                "user": ("postgres", "a superuser or a role granted pg_promote"),
                "check_user": (
                    "dr_check",
                    "the checks' role: not a superuser; granted pg_monitor and SELECT on the "
                    "checked tables",
                ),
                "check_query": ("SELECT 1", "a query proving the data is there"),
                "check_expect": ("= 1", "its expectation"),
                "app_health_url": ("", "optional: add 'repoint the app' and an app health check"),
            },
            pg_standby_promotion,
        ),
        Template(
            "active_passive",
            "Active-passive application failover (health check, DNS, load balancer)",
            "single_node",
            "Seed: Active-Passive Failover. Confirm the primary is down, point DNS at the backup, "
            "swap load balancer targets, verify traffic; DNS and targets roll back on failure.",
            {
                "primary_health_url": ("http://primary.tool-hub/health/live", ""),
                "public_health_url": ("http://app.example.com/health/live", ""),
                "zone_id": ("Z123", "Route53 hosted zone id"),
                "record_name": ("app.example.com", ""),
                "primary_ip": ("10.0.1.100", ""),
                "backup_ip": ("10.0.2.100", ""),
                "target_group_arn": (
                    "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                    "targetgroup/primary/0123456789abcdef",
                    "",
                ),
                "primary_target": ("i-primary", "instance id or IP[:port]"),
                "backup_target": ("i-backup", "instance id or IP[:port]"),
                "region": ("us-east-1", ""),
                "endpoint_url": ("", "optional AWS endpoint override"),
            },
            active_passive,
        ),
        Template(
            "network_outage",
            "Network outage recovery (checks, reconnect, resume)",
            "network_outage",
            "Seed: Recovery from Network Outage. Check connectivity, restart networking if needed, "
            "reconnect MCP servers, resume suspended executions, verify readiness. Put the API "
            "token in the webhook steps' secret.",
            {
                "internet_url": ("https://example.com", ""),
                "db_host": ("database.internal", ""),
                "db_port": (5432, ""),
                "dbname": ("postgres", ""),
                "user": ("postgres", ""),
                "app_url": ("http://localhost:8000", "the application's base URL"),
                "resume_url": ("", "empty = APP_URL/api/executions/resume"),
            },
            network_outage,
        ),
        Template(
            "database_point_in_time",
            "Database failure, scenario A: restore to a point",
            "database_failure",
            "Seed: Database Failure, scenario A (responding but corrupted), with point-in-time "
            "recovery: stop the application, restore the PITR source to a point before the "
            "damage into a registered data directory target and start it, run the source's "
            "checks on it, start the application against it. Test mode restores into scratch.",
            {
                "source": ("tool-hub-db", "the point-in-time source"),
                "at": ("latest", "'latest' or an ISO-8601 point before the damage (UTC)"),
                "target": ("restored-clusters", "a registered data directory target"),
                "directory": ("tool-hub-restored", "the new data directory's name under it"),
                "port": (5433, "a port of the target's range"),
                "restore_timeout_s": (6 * 3600, "how long the restore may take"),
                "stop_command": ("sudo systemctl stop tool-hub", ""),
                "start_command": ("sudo systemctl start tool-hub", ""),
                "app_health_url": ("", "optional: an application health check at the end"),
            },
            database_point_in_time,
        ),
    ]
}


@transaction.atomic
def create_from_template(
    system, key: str, *, name: str = "", variables: dict | None = None, secrets: dict | None = None
):
    """Create a runbook on `system` from a built-in template (the data function behind the button)."""
    template = TEMPLATES[key]
    definitions = template.definitions(variables)
    parse_steps(definitions, allow_command=False)  # templates never contain command steps
    runbook = Runbook.objects.create(
        system=system,
        name=name or template.title,
        failure_type=template.failure_type,
        description=template.description,
        template=key,
    )
    runbook.replace_steps(definitions, secrets=secrets)
    return runbook
