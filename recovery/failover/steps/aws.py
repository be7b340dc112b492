"""dns_update (Route53 UPSERT) and lb_swap (ELBv2 deregister/register) through boto3.

Clients are made inside run() (workers fork); an endpoint_url points them at an
S3-compatible or test endpoint. Credentials: the step's secret is the secret access
key for params.access_key_id; without them boto3's usual chain (role, env) applies.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from dr_portal.lib import outbound

from .base import (
    Context,
    Kind,
    Param,
    StepResult,
    http_url,
    non_empty,
    not_negative,
    one_of,
    str_list,
)

AWS = {
    "region": Param((str,), "us-east-1"),
    "endpoint_url": Param((str,), None, http_url),
    "access_key_id": Param((str,), None),
}


def client(service: str, params, ctx: Context):
    left = max(1.0, ctx.remaining())
    config = Config(
        connect_timeout=min(10, left),
        read_timeout=min(60, left),
        retries={"max_attempts": 2, "mode": "standard"},
    )
    kwargs = {"region_name": params["region"], "config": config}
    if params.get("endpoint_url"):
        # The same address rules as every outbound request. botocore resolves again when
        # it connects, so this narrows (does not close) a DNS rebinding window; the
        # endpoint is a manager's setting, and without it boto3 talks to AWS itself.
        _scheme, host, port, _path = outbound.check_url(params["endpoint_url"])
        outbound.resolve(host, port, outbound.configured_allow())
        kwargs["endpoint_url"] = params["endpoint_url"]
    if params.get("access_key_id"):
        kwargs["aws_access_key_id"] = params["access_key_id"]
        kwargs["aws_secret_access_key"] = ctx.secret or None
    return boto3.client(service, **kwargs)


def _checks_host(check, host: str) -> bool:
    """Is `check` an HTTP check of a URL on `host` (a DNS name, trailing dot or not)?"""
    if check.kind != "http_check":
        return False
    return (urlsplit(check.params.get("url", "")).hostname or "") == host.rstrip(".").lower()


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


class DnsUpdate(Kind):
    name = "dns_update"
    title = "DNS update (Route53)"
    side_effects = True
    secret_label = "AWS secret access key (optional)"
    endpoint_params = ("endpoint_url", "access_key_id")
    default_timeout = 180.0
    params = {
        "zone_id": Param((str,), check=non_empty),
        "name": Param((str,), check=non_empty),
        "type": Param((str,), "A", one_of("A", "AAAA", "CNAME", "TXT")),
        "ttl": Param((int,), 60, not_negative),
        "values": Param((list,), check=str_list),
        "wait": Param((bool,), True, help="wait until Route53 reports INSYNC"),
        **AWS,
    }

    def affects(self, params, check):
        return _checks_host(check, params.get("name", ""))

    def describe(self, params):
        return (
            f"UPSERT {params.get('type', 'A')} {params.get('name')} → "
            f"{', '.join(params.get('values') or [])} (TTL {params.get('ttl', 60)}) "
            f"in zone {params.get('zone_id')}"
        )

    def current(self, r53, params) -> list[str]:
        found = r53.list_resource_record_sets(
            HostedZoneId=params["zone_id"],
            StartRecordName=_fqdn(params["name"]),
            StartRecordType=params["type"],
            MaxItems="1",
        )["ResourceRecordSets"]
        for rrset in found:
            if (
                rrset["Name"].rstrip(".") == params["name"].rstrip(".")
                and rrset["Type"] == params["type"]
            ):
                return [r["Value"] for r in rrset.get("ResourceRecords", [])]
        return []

    def run(self, params, ctx):
        r53 = client("route53", params, ctx)
        before = self.current(r53, params)
        change = r53.change_resource_record_sets(
            HostedZoneId=params["zone_id"],
            ChangeBatch={
                "Comment": "DR Portal failover",
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": params["name"],
                            "Type": params["type"],
                            "TTL": params["ttl"],
                            "ResourceRecords": [{"Value": v} for v in params["values"]],
                        },
                    }
                ],
            },
        )["ChangeInfo"]
        status = change["Status"]
        while params["wait"] and status != "INSYNC":
            ctx.sleep(2)
            status = r53.get_change(Id=change["Id"])["ChangeInfo"]["Status"]
        after = self.current(r53, params)
        ok = sorted(after) == sorted(params["values"])
        return StepResult(
            ok,
            f"{params['type']} {params['name']}: {', '.join(before) or '(none)'} → "
            f"{', '.join(after) or '(none)'}; change {change['Id']} {status}",
        )


def _targets(values) -> list[dict]:
    targets = []
    for value in values:
        ident, _, portno = value.partition(":") if not value.startswith("arn:") else (value, "", "")
        target = {"Id": ident}
        if portno:
            target["Port"] = int(portno)
        targets.append(target)
    return targets


def _check_targets(value):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return "must be a list of target ids (instance id, IP, or id:port)"
    for v in value:
        if not v.startswith("arn:") and ":" in v and not v.rsplit(":", 1)[1].isdigit():
            return f"{v!r}: the part after ':' must be a port number"
    return None


class LbSwap(Kind):
    name = "lb_swap"
    title = "Load balancer swap (ELBv2)"
    side_effects = True
    secret_label = "AWS secret access key (optional)"
    endpoint_params = ("endpoint_url", "access_key_id")
    default_timeout = 180.0
    params = {
        "target_group_arn": Param((str,), check=non_empty),
        "deregister": Param((list,), None, _check_targets),
        "register": Param((list,), None, _check_targets),
        **AWS,
    }

    def affects(self, params, check):
        # Which URL the load balancer serves is not in its parameters: every later HTTP
        # check that proves recovery is taken to need the new targets.
        return check.kind == "http_check" and check.verification

    def validate(self, params):
        if not params.get("deregister") and not params.get("register"):
            return ["an lb_swap step needs targets to deregister, to register, or both"]
        return []

    def describe(self, params):
        parts = []
        if params.get("deregister"):
            parts.append(f"deregister {', '.join(params['deregister'])}")
        if params.get("register"):
            parts.append(f"register {', '.join(params['register'])}")
        return f"{' and '.join(parts)} in target group {params.get('target_group_arn')}"

    def run(self, params, ctx):
        elb = client("elbv2", params, ctx)
        arn = params["target_group_arn"]
        lines = []
        # Register first: never leave the group empty between the two calls.
        if params.get("register"):
            elb.register_targets(TargetGroupArn=arn, Targets=_targets(params["register"]))
            lines.append(f"registered {', '.join(params['register'])}")
        ctx.check()
        if params.get("deregister"):
            elb.deregister_targets(TargetGroupArn=arn, Targets=_targets(params["deregister"]))
            lines.append(f"deregistered {', '.join(params['deregister'])}")
        health = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        now = sorted(
            h["Target"]["Id"]
            for h in health
            if h.get("TargetHealth", {}).get("State") not in ("draining", "unused")
        )
        lines.append(f"targets now: {', '.join(now) or '(none)'}")
        registered = {t["Id"] for t in _targets(params.get("register") or [])}
        gone = {t["Id"] for t in _targets(params.get("deregister") or [])}
        ok = registered <= set(now) and not (gone & set(now))
        return StepResult(ok, "; ".join(lines))
