"""`perfci plan`: resolution against a real moto server, cost arithmetic, price tables, quota checks.

moto (5.2) serves Service Quotas for the `vpc` service only: for `ec2` it answers
NoSuchResourceException, which the plan reports as "limit unknown" (tested against the server). The
limits themselves are therefore tested with botocore's Stubber on a real service-quotas client, while
the usage side (DescribeInstances) and everything else runs against the moto server.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pytest_perfci import plan as planning
from pytest_perfci.cli import build_parser, main
from pytest_perfci.settings import Settings, option_specs
from tests.moto_server import MotoServer

AL2023_X86 = "ami-0d27e0fb3bac4d724"  # what moto's SSM serves for the AL2023 x86_64 parameter
AL2023_ARM = "ami-065b1b834d2a83a7a"


# --- quota classes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("itype", "on_demand", "spot"),
    [
        ("m7i.metal-24xl", "L-1216C47A", "L-34B43A08"),
        ("c7g.metal", "L-1216C47A", "L-34B43A08"),
        ("z1d.large", "L-1216C47A", "L-34B43A08"),
        ("g5.xlarge", "L-DB2E81BA", "L-3819A6DF"),
        ("vt1.3xlarge", "L-DB2E81BA", "L-3819A6DF"),
        ("p4d.24xlarge", "L-417A185B", "L-7212CCBC"),
        ("p5.48xlarge", "L-417A185B", "L-C4BD4855"),
        ("x2iedn.xlarge", "L-7295265B", "L-E3A00192"),
        ("inf2.xlarge", "L-1945791B", "L-B5D1601B"),
        ("trn1.2xlarge", "L-2C3B7624", "L-6B0D517C"),
        ("dl1.24xlarge", "L-6E869C2A", "L-85EED4F7"),
        ("f1.2xlarge", "L-74FC7D96", "L-88CF9481"),
        ("u-6tb1.metal", "L-43DA4232", None),
        ("hpc7g.4xlarge", "L-F7808C92", None),
    ],
)
def test_quota_class_codes(itype: str, on_demand: str, spot: str | None) -> None:
    od = planning.quota_class(itype)
    assert od is not None and od.code == on_demand and od.market == "on-demand"
    sp = planning.quota_class(itype, spot=True)
    assert (sp.code if sp else None) == spot


# --- prices ---------------------------------------------------------------------------------------


def test_shipped_price_table_is_dated_and_prices_the_tox_types() -> None:
    table = planning.load_prices()
    assert table.date == "2026-11-28" and "aws.amazon.com" in table.source
    # The instance types tox.ini lists for x86_64 and arm64 must be priced (the default plan of `tox -e ...`).
    for itype in ("m7i.metal-24xl", "m7i.2xlarge", "c7g.metal", "c7g.2xlarge"):
        assert table.price("us-east-1", itype).usd_per_hour, itype
    assert table.price("us-east-1", "m7i.metal-24xl") == planning.Price(4.8384)


def test_price_table_region_fallback_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[meta]\ndate = "2026-01-01"\n[prices.us-east-1]\n"m7i.large" = 0.1\n')
    table = planning.load_prices(path)
    assert table.price("eu-west-1", "m7i.large") == planning.Price(0.1, "us-east-1 price: the table has none for eu-west-1")
    assert table.price("us-east-1", "c7g.large") == planning.Price(None, "not in the price table")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[prices.us-east-1]\n"a.b" = 1.0\n', "[meta] date is missing"),
        ('[meta]\ndate = "x"\n', "no [prices.<region>] table"),
        ('[meta]\ndate = "x"\n[prices.us-east-1]\n"a.b" = -1\n', "a.b = -1: expected a positive number"),
        ('[meta]\ndate = "x"\n[prices.us-east-1]\n"a.b" = "cheap"\n', "expected a positive number"),
        ("[meta\n", "not TOML"),
    ],
)
def test_bad_price_tables_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(planning.PriceError, match=r"p\.toml") as info:
        planning.load_prices(path)
    assert message in str(info.value)


def _pricing_client() -> Any:
    return boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_pricing_api_answer_is_parsed_and_failure_falls_back_to_the_table() -> None:
    table = planning.load_prices()
    product = {"terms": {"OnDemand": {"SKU.JRTCKXETXF": {"priceDimensions": {"SKU.JRTCKXETXF.6YS6EN2CT7": {
        "unit": "Hrs", "pricePerUnit": {"USD": "4.8384000000"}}}}}}}
    pricing = _pricing_client()
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"PriceList": [json.dumps(product)]})
        stub.add_client_error("get_products", "ThrottlingException", "slow down")
        api = planning.PricingApi(pricing, table)
        assert api.price("us-east-1", "m7i.metal-24xl") == planning.Price(4.8384, "AWS Pricing API")
        fallback = api.price("us-east-1", "c7g.metal")
    assert fallback.usd_per_hour == 2.32 and "Pricing API failed" in fallback.note and "table price" in fallback.note


# --- cost arithmetic and quota verdicts -----------------------------------------------------------


def _planned(itype: str, vcpus: int, usd: float | None, count: int = 1) -> planning.PlannedType:
    return planning.PlannedType(itype, "x86_64", vcpus, 1024, True, count, "ami-1", "img", "--ami", "ec2-user",
                                ["us-east-1a"], planning.Price(usd))


def _plan(types: list[planning.PlannedType], hours: float = 1.5, ttl: float = 2.0, **kw: Any) -> planning.Plan:
    return planning.Plan(run_id="perfci-x", region="us-east-1", ttl_hours=ttl, hours=hours, spot=kw.pop("spot", False),
                         ssh_cidr="127.0.0.1/32", types=types, prices="test table", **kw)


def test_cost_arithmetic() -> None:
    plan = _plan([_planned("m7i.metal-24xl", 96, 4.8384), _planned("c7g.metal", 64, 2.32, count=2),
                  _planned("odd.type", 2, None)])
    assert plan.instances == 4 and plan.vcpus == 96 + 128 + 2
    assert plan.instance_hours == 6.0
    assert plan.usd_per_hour == pytest.approx(4.8384 + 2 * 2.32)
    assert plan.usd_estimate == pytest.approx((4.8384 + 4.64) * 1.5)
    assert plan.usd_ttl == pytest.approx((4.8384 + 4.64) * 2.0)
    assert plan.unpriced == ["odd.type"]
    text = "\n".join(planning.render_text(plan))
    assert "6 instance-hours for 1.5h: $14.22 ($9.4784/h (without odd.type: no price))" in text
    assert "orphan costs at most 2h: $18.96" in text
    assert (planning.cents(14.2176), planning.cents(14.22), planning.cents(0.001), planning.cents(0)) == (1422, 1422, 1, 0)


class FixedQuotas:
    def __init__(self, **limits: float | None) -> None:
        self.limits = limits
        self.asked: list[str] = []

    def limit(self, quota_code: str) -> planning.QuotaLimit:
        self.asked.append(quota_code)
        value = self.limits.get(quota_code.replace("-", "_"))
        return planning.QuotaLimit(value, "fixed" if value is not None else "not given")


def test_quota_check_groups_by_class_and_asks_each_code_once() -> None:
    source = FixedQuotas(L_1216C47A=256, L_DB2E81BA=8)
    checks = planning.check_quotas([("m7i.metal-24xl", 96), ("c7g.metal", 64), ("g5.2xlarge", 8)], False,
                                   {"L-1216C47A": 100}, source)
    assert source.asked == ["L-1216C47A", "L-DB2E81BA"]
    std, gpu = checks
    assert (std.needed, std.in_use, std.types, std.fits, std.short) == (160, 100, ["m7i.metal-24xl", "c7g.metal"],
                                                                          False, 4)
    assert "DOES NOT FIT (4 vCPU short)" in std.line() and "--quota-code L-1216C47A --desired-value 260" in std.line()
    assert (gpu.in_use, gpu.fits) == (0, True)
    unknown = planning.check_quotas([("m7i.large", 2)], False, None, source)[0]
    assert unknown.fits is None and unknown.line().endswith("-> unknown: usage unknown")


def test_spot_runs_fail_only_when_the_on_demand_fallback_cannot_fit_either() -> None:
    def verdict(spot_limit: float, od_limit: float) -> list[str]:
        source = FixedQuotas(L_34B43A08=spot_limit, L_1216C47A=od_limit)
        plan = _plan([_planned("c7g.metal", 64, 2.32)], spot=True)
        plan.quotas = planning.check_quotas([("c7g.metal", 64)], True, {}, source)
        return [c.quota.code for c in plan.cannot_fit]

    assert verdict(64, 0) == []              # spot fits
    assert verdict(32, 64) == []             # spot short, on-demand fallback fits
    assert verdict(32, 32) == ["L-1216C47A"]


def test_service_quotas_source_reads_the_applied_value_and_reports_errors() -> None:
    sq = boto3.client("service-quotas", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(sq) as stub:
        stub.add_response("get_service_quota", {"Quota": {"QuotaCode": "L-1216C47A", "Value": 640.0}},
                          {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A"})
        stub.add_client_error("get_service_quota", "AccessDeniedException", "not allowed:\n servicequotas")
        source = planning.ServiceQuotasSource(sq)
        assert source.limit("L-1216C47A") == planning.QuotaLimit(640.0, "Service Quotas")
        denied = source.limit("L-34B43A08")
    assert denied == planning.QuotaLimit(None, "Service Quotas: AccessDeniedException: not allowed: servicequotas")


# --- against the moto server ----------------------------------------------------------------------


def _launch(moto: MotoServer, itype: str, ami: str, spot: bool = False) -> str:
    ec2: Any = moto.client("ec2")
    extra = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    return str(ec2.run_instances(ImageId=ami, InstanceType=itype, MinCount=1, MaxCount=1, **extra)
               ["Instances"][0]["InstanceId"])


def test_usage_counts_pending_and_running_vcpus_per_class_and_market(moto: MotoServer) -> None:
    _launch(moto, "m7i.2xlarge", AL2023_X86)
    _launch(moto, "c7g.xlarge", AL2023_ARM)
    _launch(moto, "c7g.large", AL2023_ARM, spot=True)
    stopped = _launch(moto, "m7i.metal-24xl", AL2023_X86)
    ec2: Any = moto.client("ec2")
    ec2.stop_instances(InstanceIds=[stopped])
    types = {"m7i.2xlarge": 8, "c7g.xlarge": 4, "c7g.large": 2, "m7i.metal-24xl": 96}
    used = planning.vcpus_in_use(ec2, types.get)
    assert used == {"L-1216C47A": 12, "L-34B43A08": 2}


def _settings(tmp_path: Path, moto: MotoServer, *types: str, **kw: Any) -> Settings:
    return Settings(instance_type=types, region="us-east-1", run_id="perfci-plan-test", owner="tester",
                    results=tmp_path / "results", endpoint_url=moto.url, **kw)


def _nothing_created(moto: MotoServer, tmp_path: Path, instances_before: int = 0) -> None:
    ec2: Any = moto.client("ec2")
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert len(instances) == instances_before
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]
    assert not (tmp_path / "results").exists()  # not even a ledger


def test_build_plan_resolves_types_amis_and_quota_fit_without_creating(moto: MotoServer, tmp_path: Path) -> None:
    _launch(moto, "m7i.2xlarge", AL2023_X86)  # 8 vCPU already running in the Standard class
    settings = _settings(tmp_path, moto, "m7i.metal-24xl", "c7g.metal", ttl=timedelta(hours=3))
    source = FixedQuotas(L_1216C47A=168)
    plan = planning.build_plan(settings, quotas=source)
    assert [(t.instance_type, t.arch, t.vcpus, t.metal, t.ami, t.count) for t in plan.types] == [
        ("m7i.metal-24xl", "x86_64", 96, True, AL2023_X86, 1), ("c7g.metal", "arm64", 64, True, AL2023_ARM, 1)]
    assert all(t.zones for t in plan.types) and plan.region == "us-east-1" and plan.ttl_hours == 3.0
    assert plan.usd_per_hour == pytest.approx(4.8384 + 2.32) and plan.hours == 3.0
    (check,) = plan.quotas
    assert (check.in_use, check.needed, check.fits) == (8, 160, True)  # 168 exactly
    _nothing_created(moto, tmp_path, instances_before=1)


def test_cli_plan_against_moto_reports_unknown_limit_honestly(
    moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "--instance-type", "m7i.metal-24xl,c7g.metal", "--perfci-results", str(tmp_path / "results"),
                 "--hours", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "m7i.metal-24xl  x86_64  96" in out and "c7g.metal       arm64   64" in out
    assert "instances: 2 (one per type, whatever -n is), 160 vCPU" in out
    assert "cost: 2 instance-hours for 1h: $7.16 " in out  # money in whole cents, rounded up
    # moto serves Service Quotas for vpc only: the limit is unknown and the plan says so instead of guessing.
    assert "L-1216C47A Running On-Demand Standard" in out and "-> unknown: Service Quotas: NoSuchResourceException" in out
    assert "overall: plan resolved; quota fit not confirmed" in out
    _nothing_created(moto, tmp_path)


def test_cli_plan_warns_when_ssh_is_open_to_the_world(
    moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "--instance-type", "m7i.large", "--perfci-results", str(tmp_path / "results"),
                 "--perfci-ssh-cidr", "0.0.0.0/0", "--no-quota"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert ("warning: --perfci-ssh-cidr 0.0.0.0/0 opens SSH (port 22) of every created instance to "
            "4,294,967,296 addresses") in out
    code = main(["plan", "--instance-type", "m7i.large", "--perfci-results", str(tmp_path / "results"),
                 "--perfci-ssh-cidr", "203.0.113.7/32", "--no-quota"])
    assert code == 0 and "opens SSH" not in capsys.readouterr().out
    _nothing_created(moto, tmp_path)


def test_cli_plan_exit_1_when_a_quota_cannot_fit(
    moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real service-quotas client the CLI builds, with Stubber answering GetServiceQuota."""
    _launch(moto, "m7i.2xlarge", AL2023_X86)
    real = planning.ServiceQuotasSource

    def stubbed(client: Any) -> planning.ServiceQuotasSource:
        stub = Stubber(client)
        stub.add_response("get_service_quota", {"Quota": {"Value": 128.0}},
                          {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A"})
        stub.activate()
        return real(client)

    monkeypatch.setattr(planning, "ServiceQuotasSource", stubbed)
    code = main(["plan", "--instance-type", "m7i.metal-24xl,c7g.metal", "--perfci-results", str(tmp_path / "results"),
                 "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["exit_code"] == 1 and doc["cannot_fit"] == ["L-1216C47A"]
    assert doc["estimate_cents"] == planning.cents(doc["usd_estimate"]) and isinstance(doc["estimate_cents"], int)
    assert doc["ttl_ceiling_cents"] >= doc["estimate_cents"] > 0
    assert doc["quotas"][0] | {"limit_note": ""} == {
        "code": "L-1216C47A", "name": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
        "market": "on-demand", "limit": 128.0, "limit_note": "", "in_use": 8, "needed": 160,
        "types": ["m7i.metal-24xl", "c7g.metal"], "fits": False}
    _nothing_created(moto, tmp_path, instances_before=1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--instance-type", "m7i.metall"], "perfci plan: unknown instance type 'm7i.metall' in us-east-1; closest: "),
        (["--instance-type", "m7i"], "perfci plan: --instance-type: 'm7i' is not an EC2 instance type name"),
        (["--instance-type", "c7g.metal", "--ami", AL2023_X86], f"AMI {AL2023_X86} (from --ami) is x86_64 but"),
        (["--instance-type", "c7g.metal", "--hours", "0"], "perfci plan: --hours 0: must be a number of hours more"),
        (["--instance-type", "c7g.metal", "--hours", "nan"], "perfci plan: --hours nan: must be a number of hours"),
        (["--instance-type", "c7g.metal", "--hours", "inf"], "perfci plan: --hours inf: must be a number of hours"),
        (["--instance-type", "c7g.metal", "--perfci-ssh-cidr", "::/0"], ("perfci plan: --perfci-ssh-cidr: '::/0' is "
                                                                      "an IPv6 block")),
        (["--instance-type", "c7g.metal", "--prices", "/nonexistent.toml"], "perfci plan: /nonexistent.toml: "),
        (["--instance-type", "c7g.metal", "--perfci-ttl", "5s"], "perfci plan: --perfci-ttl: '5s' is too short"),
        (["--instance-type", "c7g.metal", "--perfci-ttl", "99999999999999h"], ("perfci plan: --perfci-ttl: "
                                                                                 "'99999999999999h' is longer than 168h")),
    ],
)
def test_cli_plan_bad_input_is_one_line_exit_2(
    moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["plan", "--perfci-results", str(tmp_path / "results"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    _nothing_created(moto, tmp_path)


def test_cli_plan_reads_perfci_environment_and_skips_quota_on_request(
    moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFCI_INSTANCE_TYPE", "c7g.metal")
    monkeypatch.setenv("PERFCI_TTL", "90m")
    code = main(["plan", "--perfci-results", str(tmp_path / "results"), "--no-quota", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and [t["instance_type"] for t in doc["types"]] == ["c7g.metal"]
    assert doc["ttl_hours"] == 1.5 and doc["quotas"] == [] and "skipped" in doc["quota_note"]


def test_cli_plan_without_instance_types_has_nothing_to_pay_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 0
    assert "provider local creates no cloud resources" in capsys.readouterr().out


def test_plan_accepts_every_pytest_perfci_option() -> None:
    """The same options as `pytest`: each one parses under `perfci plan` into the same dest."""
    parser = build_parser()
    run_options = [s for s in option_specs() if s.section == ""]
    assert {s.flag for s in run_options} >= {"--provider", "--instance-type", "--region", "--perfci-ttl"}
    for spec in run_options:
        argv = ["plan", spec.flag] if spec.kind == "flag" else ["plan", spec.flag, "x"]
        args = parser.parse_args(argv)
        value = getattr(args, f"perfci_{spec.dest}")
        assert value in (True, "x", ["x"]), (spec.flag, value)
