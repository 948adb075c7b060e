"""`perfci plan`: what a command line would provision, what it would cost, and whether it fits the quotas.

Nothing is created. Types and AMIs are resolved by the EC2 provider's own `validate()` (the same code
path, and the same errors, as `pytest --instance-type ...`), so the plan cannot disagree with the run
about what a name means. On top of that:

- cost: one instance per requested type (whatever `-n` is: the xdist controller provisions), times the
  hours, times an hourly price from a small dated table shipped in the package
  (`pytest_perfci/data/prices.toml`, editable, or `--prices FILE`), or from the AWS Pricing API
  (`--prices api`, falling back to the table per type);
- quotas: EC2 limits running vCPUs per quota class (Standard A/C/D/H/I/M/R/T/Z, G and VT, P, X, ...),
  separately for on-demand and spot. The limit comes from Service Quotas (`QuotaSource`), the usage
  from DescribeInstances (pending + running, vCPUs from the catalogue), and a class where
  usage + this run > limit makes the plan fail before anything is spent.

- schedule (--perfci-schedule): parallel bills every type for the whole run (the line above, as
  before); pipeline and serial run the types one after another, each billed for its boot and its
  own tests only (it is released after its last test), and differ in wall time: pipeline hides each
  boot under the previous type's tests, serial waits for it. Boot times are estimates
  (`BOOT_MINUTES`: metal types take minutes to boot; `--boot-minutes` overrides them).

Quota codes are AWS's (Amazon EC2 instance type quotas, docs.aws.amazon.com/ec2/latest/instancetypes/
ec2-instance-quotas.html); the on-demand classification is the provider's own `launch.quota_for`. The GPU
classes: L-DB2E81BA "Running On-Demand G and VT instances" (g4dn, g5, g5g, g6, g6e, ...) and L-417A185B
"Running On-Demand P instances" (p4d, p5, ...), the names Service Quotas gives them (as quoted with the
codes in public `aws service-quotas get-service-quota --quota-code L-DB2E81BA` outputs and GPU setup
guides); a GPU type's GpuInfo is printed beside it.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pytest_perfci.aws.clients import client, session
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.models.instance_types import GpuInfo
from pytest_perfci.providers.ec2 import network
from pytest_perfci.providers.ec2.catalog import Catalog
from pytest_perfci.providers.ec2.launch import quota_for
from pytest_perfci.providers.ec2.provider import EC2Provider

# On-demand quota code -> the spot quota of the same families (verified against the AWS quota tables).
SPOT_QUOTAS: dict[str, tuple[str, str]] = {
    "L-1216C47A": ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"),
    "L-DB2E81BA": ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    "L-6E869C2A": ("L-85EED4F7", "All DL Spot Instance Requests"),
    "L-74FC7D96": ("L-88CF9481", "All F Spot Instance Requests"),
    "L-1945791B": ("L-B5D1601B", "All Inf Spot Instance Requests"),
    "L-2C3B7624": ("L-6B0D517C", "All Trn Spot Instance Requests"),
    "L-7295265B": ("L-E3A00192", "All X Spot Instance Requests"),
    "L-417A185B": ("L-7212CCBC", "All P4, P3 and P2 Spot Instance Requests"),
}
P5_SPOT = ("L-C4BD4855", "All P5 Spot Instance Requests")


@dataclass(frozen=True)
class QuotaClass:
    code: str
    name: str
    market: str  # "on-demand" | "spot"


def quota_class(instance_type: str, spot: bool = False) -> QuotaClass | None:
    """The running-vCPU quota an instance of this type counts against; None: no spot market for it."""
    name, code = quota_for(instance_type, "VcpuLimitExceeded", spot=False)
    if not spot:
        return QuotaClass(code, name, "on-demand")
    if instance_type.startswith("p5"):
        return QuotaClass(*P5_SPOT, "spot")
    if code not in SPOT_QUOTAS:  # High Memory, HPC: on-demand only
        return None
    return QuotaClass(*SPOT_QUOTAS[code], "spot")


# Typical minutes from RunInstances to SSH-ready: virtualised types about a minute or two, metal types
# several minutes (firmware, no hypervisor shortcut). An estimate for the schedule lines; --boot-minutes.
BOOT_MINUTES = {"virtual": 2.0, "metal": 10.0}


# --- prices ---------------------------------------------------------------------------------------


class PriceError(ValueError):
    """The price table cannot be used; str() is one line naming the file."""


@dataclass(frozen=True)
class Price:
    usd_per_hour: float | None
    note: str = ""  # why it is approximate or missing


class PriceSource(Protocol):
    @property
    def description(self) -> str: ...

    def price(self, region: str, instance_type: str) -> Price: ...


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, dict[str, float]]  # region -> type -> USD per instance-hour
    date: str
    source: str
    path: str

    @property
    def description(self) -> str:
        return f"price table {self.path} (as of {self.date}; {self.source})"

    def price(self, region: str, instance_type: str) -> Price:
        if instance_type in self.prices.get(region, {}):
            return Price(self.prices[region][instance_type])
        for other in sorted(self.prices):
            if instance_type in self.prices[other]:
                return Price(self.prices[other][instance_type], f"{other} price: the table has none for {region}")
        return Price(None, "not in the price table")


def default_price_path() -> Path:
    return Path(str(resources.files("pytest_perfci") / "data" / "prices.toml"))


def load_prices(path: Path | None = None) -> PriceTable:
    path = path or default_price_path()
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise PriceError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PriceError(f"{path}: not TOML: {exc}") from None
    meta = doc.get("meta", {})
    if not isinstance(meta, dict) or not meta.get("date"):
        raise PriceError(f"{path}: [meta] date is missing; say when the prices were collected")
    table = doc.get("prices", {})
    if not isinstance(table, dict) or not table:
        raise PriceError(f"{path}: no [prices.<region>] table")
    prices: dict[str, dict[str, float]] = {}
    for region, entries in table.items():
        if not isinstance(entries, dict):
            raise PriceError(f"{path}: [prices.{region}] must map instance types to USD per hour")
        for itype, value in entries.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise PriceError(f"{path}: [prices.{region}] {itype} = {value!r}: expected a positive number")
        prices[region] = {k: float(v) for k, v in entries.items()}
    return PriceTable(prices, str(meta["date"]), str(meta.get("source", "source not given")), str(path))


# Pricing API location names are not region codes; `regionCode` is a filterable attribute of EC2 products.
_PRICING_FILTERS = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
    ("licenseModel", "No License required"),
)


class PricingApi:
    """On-demand Linux prices from the AWS Pricing API (GetProducts), the table where it has no answer."""

    def __init__(self, pricing: Any, fallback: PriceTable) -> None:
        self.pricing = pricing
        self.fallback = fallback
        self.description = f"AWS Pricing API (fallback: {fallback.description})"

    def price(self, region: str, instance_type: str) -> Price:
        filters = [{"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
                   {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
        filters += [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in _PRICING_FILTERS]
        try:
            resp = self.pricing.get_products(ServiceCode="AmazonEC2", Filters=filters, MaxResults=10)
        except (ClientError, BotoCoreError) as exc:
            table = self.fallback.price(region, instance_type)
            why = f"Pricing API failed ({str(exc).splitlines()[0][:120]})"
            return Price(table.usd_per_hour, "; ".join(p for p in (why, "table price", table.note) if p))
        for item in resp.get("PriceList", []):
            usd = _on_demand_usd(json.loads(item) if isinstance(item, str) else item)
            if usd is not None:
                return Price(usd, "AWS Pricing API")
        table = self.fallback.price(region, instance_type)
        return Price(table.usd_per_hour, "; ".join(p for p in ("not in the Pricing API answer", table.note) if p))


def _on_demand_usd(product: dict[str, Any]) -> float | None:
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dim in term.get("priceDimensions", {}).values():
            if dim.get("unit") in ("Hrs", "Hours") and "USD" in dim.get("pricePerUnit", {}):
                value = float(dim["pricePerUnit"]["USD"])
                if value > 0:
                    return value
    return None


# --- quotas ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaLimit:
    value: float | None
    note: str  # where the value came from, or why there is none


class QuotaSource(Protocol):
    def limit(self, quota_code: str) -> QuotaLimit: ...


class ServiceQuotasSource:
    """Applied EC2 quota values from Service Quotas (GetServiceQuota, ServiceCode ec2)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def limit(self, quota_code: str) -> QuotaLimit:
        try:
            quota = self.client.get_service_quota(ServiceCode="ec2", QuotaCode=quota_code)["Quota"]
        except ClientError as exc:
            err = exc.response.get("Error", {})
            return QuotaLimit(None, f"Service Quotas: {err.get('Code')}: {' '.join(str(err.get('Message')).split())}")
        except BotoCoreError as exc:
            return QuotaLimit(None, f"Service Quotas unreachable: {str(exc).splitlines()[0]}")
        return QuotaLimit(float(quota["Value"]), "Service Quotas")


@dataclass
class QuotaCheck:
    quota: QuotaClass
    needed: int                      # vCPUs this run adds
    types: list[str]
    in_use: int | None               # vCPUs already pending/running in the class
    limit: QuotaLimit

    @property
    def fits(self) -> bool | None:
        if self.limit.value is None or self.in_use is None:
            return None
        return self.in_use + self.needed <= self.limit.value

    @property
    def short(self) -> int:
        """vCPUs missing (0 when it fits or is unknown)."""
        if self.fits is not False:
            return 0
        assert self.limit.value is not None and self.in_use is not None
        return int(self.in_use + self.needed - self.limit.value)

    def line(self) -> str:
        limit = f"{self.limit.value:g}" if self.limit.value is not None else "?"
        used = str(self.in_use) if self.in_use is not None else "?"
        head = (f"{self.quota.code} {self.quota.name}: limit {limit} vCPU, in use {used}, "
                f"this run {self.needed} ({', '.join(self.types)})")
        if self.fits is None:
            why = self.limit.note if self.limit.value is None else "usage unknown"
            return f"{head} -> unknown: {why}"
        if self.fits:
            return f"{head} -> fits"
        desired = int(self.in_use or 0) + self.needed
        return (f"{head} -> DOES NOT FIT ({self.short} vCPU short); raise it: aws service-quotas "
                f"request-service-quota-increase --service-code ec2 --quota-code {self.quota.code} "
                f"--desired-value {desired}")


def vcpus_in_use(ec2: Any, vcpus_of: Callable[[str], int | None]) -> dict[str, int]:
    """vCPUs of pending and running instances per quota code (spot instances count against spot)."""
    used: dict[str, int] = {}
    paginator = ec2.get_paginator("describe_instances")
    for page in paginator.paginate(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]):
        for reservation in page["Reservations"]:
            for inst in reservation["Instances"]:
                itype = inst["InstanceType"]
                cls = quota_class(itype, spot=inst.get("InstanceLifecycle") == "spot")
                if cls is None:
                    continue
                n = vcpus_of(itype)
                if n is None:
                    cpu = inst.get("CpuOptions", {})
                    n = int(cpu.get("CoreCount", 0)) * int(cpu.get("ThreadsPerCore", 1))
                used[cls.code] = used.get(cls.code, 0) + n
    return used


def check_quotas(
    wanted: Iterable[tuple[str, int]], spot: bool, in_use: dict[str, int] | None, source: QuotaSource
) -> list[QuotaCheck]:
    """One check per quota class the run touches: on-demand always (spot falls back to it), spot too."""
    groups: dict[QuotaClass, list[tuple[str, int]]] = {}
    for itype, vcpus in wanted:
        for cls in (quota_class(itype, spot=True), quota_class(itype)) if spot else (quota_class(itype),):
            if cls is not None:
                groups.setdefault(cls, []).append((itype, vcpus))
    limits: dict[str, QuotaLimit] = {}
    checks = []
    for cls, members in groups.items():
        if cls.code not in limits:
            limits[cls.code] = source.limit(cls.code)
        used = None if in_use is None else in_use.get(cls.code, 0)
        checks.append(QuotaCheck(cls, sum(v for _, v in members), [t for t, _ in members], used, limits[cls.code]))
    return checks


# --- the plan -------------------------------------------------------------------------------------


@dataclass
class PlannedType:
    instance_type: str
    arch: str
    vcpus: int
    memory_mib: int
    metal: bool
    count: int
    ami: str
    ami_name: str
    ami_source: str
    user: str
    zones: list[str]
    price: Price
    gpus: tuple[GpuInfo, ...] = ()  # DescribeInstanceTypes GpuInfo (G and P types count against their own quotas)
    boot_hours: float = 0.0  # estimated RunInstances -> ready (BOOT_MINUTES or --boot-minutes)

    @property
    def usd_per_hour(self) -> float | None:
        return None if self.price.usd_per_hour is None else self.price.usd_per_hour * self.count


@dataclass
class Plan:
    run_id: str
    region: str
    ttl_hours: float
    hours: float
    spot: bool
    ssh_cidr: str
    types: list[PlannedType]
    prices: str
    quotas: list[QuotaCheck] = field(default_factory=list)
    quota_note: str = ""
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how --instance-type items were resolved
    schedule: str = "parallel"  # --perfci-schedule

    def billed_hours(self, t: PlannedType) -> float:
        """Hours one instance of `t` is billed: the whole run under parallel (as before); under pipeline
        and serial its boot plus its own `hours` of tests, since it is released after its last test."""
        return self.hours if self.schedule == "parallel" else t.boot_hours + self.hours

    @property
    def wall_hours(self) -> float:
        """How long the run takes: parallel, the tests of every type at once; serial, one type after the
        other, boots included; pipeline, the first boot, then each type's tests, a later boot showing only
        where it is longer than the tests it hides under."""
        boots = [t.boot_hours for t in self.types for _ in range(t.count)]
        if not boots:
            return 0.0
        if self.schedule == "parallel":
            return self.hours
        if self.schedule == "serial":
            return sum(boots) + len(boots) * self.hours
        return boots[0] + len(boots) * self.hours + sum(max(0.0, b - self.hours) for b in boots[1:])

    @property
    def instances(self) -> int:
        return sum(t.count for t in self.types)

    @property
    def vcpus(self) -> int:
        return sum(t.vcpus * t.count for t in self.types)

    @property
    def instance_hours(self) -> float:
        return sum(t.count * self.billed_hours(t) for t in self.types)

    @property
    def usd_per_hour(self) -> float:
        """Sum over the types with a known price (see `unpriced`)."""
        return sum(t.usd_per_hour or 0.0 for t in self.types)

    @property
    def unpriced(self) -> list[str]:
        return [t.instance_type for t in self.types if t.usd_per_hour is None]

    @property
    def usd_estimate(self) -> float:
        return sum((t.usd_per_hour or 0.0) * self.billed_hours(t) for t in self.types)

    @property
    def usd_ttl(self) -> float:
        return self.usd_per_hour * self.ttl_hours

    @property
    def cannot_fit(self) -> list[QuotaCheck]:
        """On-demand classes that do not fit; with --perfci-spot only if the spot class does not fit either."""
        failing = [c for c in self.quotas if c.fits is False]
        if not self.spot:
            return failing
        spot_ok = {t for c in self.quotas if c.quota.market == "spot" and c.fits is not False for t in c.types}
        return [c for c in failing if c.quota.market == "on-demand" and not set(c.types) <= spot_ok]


def build_plan(
    settings: Any,
    *,
    hours: float | None = None,
    prices: PriceSource | None = None,
    quotas: QuotaSource | None = None,
    check_quotas_: bool = True,
    public_address: Callable[[], str] | None = None,
    boot_minutes: float | None = None,
) -> Plan:
    """Resolve what `settings` would provision (EC2Provider.validate(): nothing created) and price it.

    Raises the provider's one-line errors (unknown type, AMI/arch mismatch, credentials, region).
    """
    lookup_error: list[str] = []
    cached: list[str] = []

    def address() -> str:  # the caller's public address, asked once; a failure is reported, not fatal here
        if not cached:
            try:
                cached.append((public_address or network.checkip)())
            except (OSError, ValueError, RuntimeError) as exc:  # network.NetworkError is a RuntimeError
                lookup_error.append(str(exc))
                cached.append("192.0.2.1")  # TEST-NET-1 placeholder so validate() can finish; reported below
        return cached[0]

    # The ledger path is never written: validate() creates nothing.
    provider = EC2Provider(settings, ledger=Ledger(Path(settings.results) / "ledger.jsonl"),
                           progress=lambda _line: None, public_address=address, claim_run_id=False)
    resolved = provider.validate()
    notes = list(provider.resolution().notes)  # aliases/queries -> names, said in one line each
    region = provider.region
    ec2 = provider.ec2
    catalog = Catalog(ec2)  # shares the listing validate() already fetched
    price_source = prices or load_prices()
    ttl_hours = settings.ttl.total_seconds() / 3600
    run_hours = ttl_hours if hours is None else hours
    try:
        cidr = network.default_cidr(settings.ssh_cidr, ec2.meta.endpoint_url, address)
    except network.NetworkError as exc:  # e.g. only an IPv6 public address: the run would fail the same way
        lookup_error.append(str(exc))
        cidr = "unknown"

    types = []
    warnings = []
    if not lookup_error and (cidr_note := network.cidr_warning(cidr)) is not None:
        warnings.append(cidr_note)
    for name, (info, image) in resolved.items():
        zones = catalog.zones_offering(name)
        if not zones:
            warnings.append(f"{name} is offered in no availability zone of {region}: its tests would skip")
        types.append(PlannedType(
            instance_type=name, arch=info.arch, vcpus=info.vcpus, memory_mib=info.memory_mib, metal=info.metal,
            count=1, ami=image.ami, ami_name=image.name, ami_source=image.source, user=image.user, zones=zones,
            price=price_source.price(region, name), gpus=info.gpus,
            boot_hours=(boot_minutes if boot_minutes is not None
                        else BOOT_MINUTES["metal" if info.metal else "virtual"]) / 60,
        ))
    if lookup_error:
        warnings.append(f"the run would fail: cannot find this machine's public address for the SSH rule "
                        f"({lookup_error[0]}); pass --perfci-ssh-cidr")
        cidr = "unknown"
    plan = Plan(run_id=settings.run_id, region=region, ttl_hours=ttl_hours, hours=run_hours, spot=settings.spot,
                ssh_cidr=cidr, types=types, prices=price_source.description, warnings=warnings, notes=notes,
                schedule=settings.schedule)
    if not check_quotas_:
        plan.quota_note = "quota check skipped (--no-quota)"
        return plan
    if quotas is None:
        quotas = ServiceQuotasSource(client(session(region), "service-quotas", settings.endpoint_url))
    all_types = catalog.all()
    try:
        used: dict[str, int] | None = vcpus_in_use(
            ec2, lambda t: all_types[t].vcpus if t in all_types else None)
    except (ClientError, BotoCoreError) as exc:
        used = None
        plan.quota_note = f"usage unknown: DescribeInstances failed: {str(exc).splitlines()[0]}"
    plan.quotas = check_quotas(((t.instance_type, t.vcpus * t.count) for t in types), settings.spot, used, quotas)
    return plan


# --- rendering ------------------------------------------------------------------------------------


def _usd(value: float | None) -> str:
    """An hourly rate: fractions of a cent are real there ($0.0832/h)."""
    return "?" if value is None else f"{value:,.4f}" if value < 10 else f"{value:,.2f}"


def cents(usd: float) -> int:
    """An amount to pay, in whole cents, rounded up: a budget line must not understate (the 1e-9 keeps
    a float like 14.220000000000001 from becoming 1423)."""
    return math.ceil(usd * 100 - 1e-9)


def _money(usd: float) -> str:
    c = cents(usd)
    return f"${c // 100:,}.{c % 100:02d}"


def _hours(h: float) -> str:
    return f"{h:g}h"


def render_text(plan: Plan) -> list[str]:
    market = "spot, on-demand fallback" if plan.spot else "on-demand"
    lines = [(f"perfci plan: run {plan.run_id} in {plan.region}, {market}, TTL {_hours(plan.ttl_hours)}, "
              f"SSH from {plan.ssh_cidr}; nothing has been created")]
    lines.extend(plan.notes)
    header = ["TYPE", "ARCH", "VCPU", "MEM GiB", "METAL", "COUNT", "AZS", "AMI", "USER", "USD/H"]
    rows = [[t.instance_type, t.arch, str(t.vcpus), f"{t.memory_mib / 1024:g}", "yes" if t.metal else "no",
             str(t.count), str(len(t.zones)), t.ami, t.user, _usd(t.price.usd_per_hour)] for t in plan.types]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for t in plan.types:
        gpus = f"; GPUs {', '.join(g.line() for g in t.gpus)}" if t.gpus else ""
        lines.append(f"  {t.instance_type}: AMI {t.ami} {t.ami_name} (from {t.ami_source}); "
                     f"zones {', '.join(t.zones) or 'none'}{gpus}" + (f"; price: {t.price.note}" if t.price.note else ""))
    lines.append(f"instances: {plan.instances} (one per type, whatever -n is), {plan.vcpus} vCPU")
    unpriced = f" (without {', '.join(plan.unpriced)}: no price)" if plan.unpriced else ""
    spot_note = "; spot is usually cheaper, on-demand shown as the ceiling" if plan.spot else ""
    lines.append(
        f"cost: {plan.instance_hours:g} instance-hours for {_hours(plan.hours)}: {_money(plan.usd_estimate)} "
        f"(${_usd(plan.usd_per_hour)}/h{unpriced}); a controller that dies stops extending the self-destruct, "
        f"so an orphan costs at most {_hours(plan.ttl_hours)}: {_money(plan.usd_ttl)}{spot_note}"
    )
    lines.append(schedule_line(plan))
    lines.append(f"prices: {plan.prices}")
    if plan.quota_note:
        lines.append(f"quotas: {plan.quota_note}")
    if plan.quotas:
        lines.append(f"quotas (running vCPUs in {plan.region}):")
        lines.extend(f"  {c.line()}" for c in plan.quotas)
    for w in plan.warnings:
        lines.append(f"warning: {w}")
    bad = plan.cannot_fit
    if bad:
        lines.append("overall: this run cannot fit: " + "; ".join(
            f"{c.quota.code} is {c.short} vCPU short" for c in bad))
    elif any(c.fits is None for c in plan.quotas) or plan.quota_note:
        lines.append("overall: plan resolved; quota fit not confirmed (see above)")
    else:
        lines.append("overall: plan resolved and fits the quotas")
    return lines


def schedule_line(plan: Plan) -> str:
    """What --perfci-schedule means for this plan: instance-hours, cost (whole cents) and run length."""
    cost = f"{plan.instance_hours:.4g} instance-hours, {_money(plan.usd_estimate)}, run about {plan.wall_hours:.4g}h"
    if plan.schedule == "parallel":
        return (f"schedule parallel: every type up at once for the whole run: {cost} "
                "(pipeline or serial bill each type only for its boot and its own tests)")
    boot = sum(t.count * t.boot_hours for t in plan.types)
    how = ("the next type boots while the current one runs its tests" if plan.schedule == "pipeline"
           else "one type at a time, never two alive at once")
    return (f"schedule {plan.schedule}: {how}; each type billed for its boot (about {boot:.2g}h in all) "
            f"and its own {_hours(plan.hours)} of tests: {cost}")


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "run_id": plan.run_id,
        "region": plan.region,
        "market": "spot" if plan.spot else "on-demand",
        "ttl_hours": plan.ttl_hours,
        "hours": plan.hours,
        "ssh_cidr": plan.ssh_cidr,
        "types": [{
            "instance_type": t.instance_type, "arch": t.arch, "vcpus": t.vcpus, "memory_mib": t.memory_mib,
            "metal": t.metal, "count": t.count, "ami": t.ami, "ami_name": t.ami_name, "ami_source": t.ami_source,
            "user": t.user, "zones": t.zones, "usd_per_hour": t.price.usd_per_hour, "price_note": t.price.note,
            "gpus": [g.model_dump() for g in t.gpus],
            "boot_hours": t.boot_hours,
        } for t in plan.types],
        "schedule": plan.schedule,
        "wall_hours": plan.wall_hours,
        "instances": plan.instances,
        "vcpus": plan.vcpus,
        "instance_hours": plan.instance_hours,
        "usd_per_hour": round(plan.usd_per_hour, 6),
        "usd_estimate": round(plan.usd_estimate, 6),
        "usd_ttl_ceiling": round(plan.usd_ttl, 6),
        "estimate_cents": cents(plan.usd_estimate),  # what to budget, whole cents rounded up
        "ttl_ceiling_cents": cents(plan.usd_ttl),
        "unpriced": plan.unpriced,
        "prices": plan.prices,
        "quotas": [{
            "code": c.quota.code, "name": c.quota.name, "market": c.quota.market, "limit": c.limit.value,
            "limit_note": c.limit.note, "in_use": c.in_use, "needed": c.needed, "types": c.types, "fits": c.fits,
        } for c in plan.quotas],
        "quota_note": plan.quota_note,
        "warnings": plan.warnings,
        "notes": plan.notes,
        "cannot_fit": [c.quota.code for c in plan.cannot_fit],
    }
