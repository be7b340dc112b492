"""dns_update and lb_swap against moto's server mode over HTTP: the record and the targets really change."""

import boto3
import pytest
from moto.server import ThreadedMotoServer

from recovery.failover.steps import parse_steps, run_steps

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url, monkeypatch):
    import requests

    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)

    def client(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_url)

    return moto_url, client


@pytest.fixture
def zone(aws):
    url, client = aws
    r53 = client("route53")
    zone_id = r53.create_hosted_zone(Name="example.com.", CallerReference="dr-test")["HostedZone"][
        "Id"
    ]
    zone_id = zone_id.split("/")[-1]
    _upsert(r53, zone_id, "10.0.1.100")
    return zone_id


def _upsert(r53, zone_id, value):
    r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": "app.example.com",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": value}],
                    },
                }
            ]
        },
    )


def record(r53, zone_id):
    for rrset in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if rrset["Name"] == "app.example.com." and rrset["Type"] == "A":
            return [r["Value"] for r in rrset["ResourceRecords"]]
    return None


@pytest.fixture
def target_group(aws):
    url, client = aws
    ec2, elb = client("ec2"), client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arn = elb.create_target_group(
        Name="primary", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.1.100", "Port": 80}])
    return arn


def targets(elb, arn):
    return sorted(
        h["Target"]["Id"]
        for h in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    )


def dns_step(url, zone_id, value, **extra):
    return {
        "name": f"DNS to {value}",
        "kind": "dns_update",
        "params": {
            "zone_id": zone_id,
            "name": "app.example.com",
            "values": [value],
            "endpoint_url": url,
            "region": REGION,
        },
        **extra,
    }


def test_dns_update_upserts_the_record(aws, zone):
    url, client = aws
    result = run_steps(parse_steps([dns_step(url, zone, "10.0.2.100")], allow_command=False))
    step = result.outcomes[0]
    assert step.status == "succeeded", step.output
    assert record(client("route53"), zone) == ["10.0.2.100"]
    assert "10.0.1.100 → 10.0.2.100" in step.output


def test_lb_swap_moves_traffic_to_the_backup(aws, target_group):
    url, client = aws
    result = run_steps(
        parse_steps(
            [
                {
                    "name": "swap",
                    "kind": "lb_swap",
                    "params": {
                        "target_group_arn": target_group,
                        "deregister": ["10.0.1.100:80"],
                        "register": ["10.0.2.100:80"],
                        "endpoint_url": url,
                    },
                }
            ],
            allow_command=False,
        )
    )
    step = result.outcomes[0]
    assert step.status == "succeeded", step.output
    assert targets(client("elbv2"), target_group) == ["10.0.2.100"]


def test_test_mode_shows_what_would_change_and_changes_nothing(aws, zone, target_group):
    url, client = aws
    specs = parse_steps(
        [
            dns_step(url, zone, "10.0.2.100"),
            {
                "name": "swap",
                "kind": "lb_swap",
                "params": {
                    "target_group_arn": target_group,
                    "deregister": ["10.0.1.100:80"],
                    "register": ["10.0.2.100:80"],
                    "endpoint_url": url,
                },
            },
        ],
        allow_command=False,
    )
    result = run_steps(specs, test_mode=True)
    assert [o.status for o in result.outcomes] == ["skipped", "skipped"]
    assert result.outcomes[0].output.startswith(
        "test mode: would UPSERT A app.example.com → 10.0.2.100"
    )
    assert "would deregister 10.0.1.100:80 and register 10.0.2.100:80" in result.outcomes[1].output
    assert record(client("route53"), zone) == ["10.0.1.100"]
    assert targets(client("elbv2"), target_group) == ["10.0.1.100"]


def test_test_mode_runs_a_side_effect_step_against_its_test_environment(aws, zone):
    url, client = aws
    r53 = client("route53")
    test_zone = r53.create_hosted_zone(Name="test.example.com.", CallerReference="t")["HostedZone"][
        "Id"
    ]
    test_zone = test_zone.split("/")[-1]
    step = dns_step(
        url, zone, "10.0.2.100", test_params={"zone_id": test_zone, "name": "app.test.example.com"}
    )
    result = run_steps(parse_steps([step], allow_command=False), test_mode=True)
    assert result.outcomes[0].status == "succeeded", result.outcomes[0].output
    assert record(r53, zone) == ["10.0.1.100"]  # production zone untouched
    names = [
        r["Name"]
        for r in r53.list_resource_record_sets(HostedZoneId=test_zone)["ResourceRecordSets"]
    ]
    assert "app.test.example.com." in names


def test_rollback_restores_dns_and_targets_in_reverse_when_a_later_step_fails(
    aws, zone, target_group
):
    url, client = aws
    order = []

    class Hooks:
        def started(self, spec, attempt, rollback_of):
            if attempt == 1:
                order.append(spec.name)

        def finished(self, outcome):
            pass

        def cancelled(self):
            return False

        def log(self, line):
            pass

    swap = {"target_group_arn": target_group, "endpoint_url": url}
    specs = parse_steps(
        [
            {**dns_step(url, zone, "10.0.2.100"), "rollback": [dns_step(url, zone, "10.0.1.100")]},
            {
                "name": "swap",
                "kind": "lb_swap",
                "params": {**swap, "deregister": ["10.0.1.100:80"], "register": ["10.0.2.100:80"]},
                "rollback": [
                    {
                        "name": "swap back",
                        "kind": "lb_swap",
                        "params": {
                            **swap,
                            "deregister": ["10.0.2.100:80"],
                            "register": ["10.0.1.100:80"],
                        },
                    }
                ],
            },
            {
                "name": "verify",
                "kind": "http_check",
                "verification": True,
                "params": {"url": "http://127.0.0.1:9/health", "request_timeout": 0.5},
            },
        ],
        allow_command=False,
    )
    result = run_steps(specs, Hooks())
    assert result.status == "failed" and "verify" in result.error
    assert order == ["DNS to 10.0.2.100", "swap", "verify", "swap back", "DNS to 10.0.1.100"]
    assert record(client("route53"), zone) == ["10.0.1.100"]
    assert targets(client("elbv2"), target_group) == ["10.0.1.100"]
    assert result.verified_at is None
