"""One model of every perfci setting, and every way to spell one, generated from its fields.

`Settings` (with its `record` = results, `kops` and `cl2` sections) is the only table of settings.
Each field carries an :class:`Opt` (flag, environment variable, help, metavar); from these come the
pytest options and ini keys (plugin.py), the `PERFCI_*` variables and `perfci plan`'s argparse
options (:func:`add_options`), so a new setting is one field and cannot be forgotten in one of them.

Merged CLI > environment ``PERFCI_*`` > ``[tool.perfci]`` in pyproject.toml > ``perfci_<name>`` ini
keys. All validation happens here, before any provider is touched, so a typo costs nothing: the
first line of the error names where the value came from (the flag, the variable or the table key),
the bad value and what is allowed.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pytest_perfci.models.instance_query import Query, is_query, split_items
from pytest_perfci.models.instance_types import INSTANCE_TYPE_RE

# EC2 names are FAMILY.SIZE: m7i.metal-24xl, c7g.metal, m7i.2xlarge, u-6tb1.metal.
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,47}$")
AMI_RE = re.compile(r"^(?:(x86_64|arm64)=)?ami-[0-9a-f]{8,17}$")
TTL_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


# The self-destruct window. At least as long as a metal type takes to boot (the on-host deadline starts
# at launch, and a machine must not power itself off before the run reaches it); at most a day unless
# --perfci-ttl-max raises it for a long benchmark, never beyond a week: an orphan lives one TTL at most.
TTL_MIN = timedelta(minutes=15)
TTL_MAX = timedelta(hours=24)
TTL_CEILING = timedelta(days=7)


def _hours(d: timedelta) -> str:
    s = int(d.total_seconds())
    return f"{s // 3600}h" if s % 3600 == 0 else f"{s // 60}m"


def parse_duration(text: str) -> timedelta:
    """'2h', '90m', '1h30m', '3600s' or plain seconds -> timedelta, bounded by TTL_CEILING before any
    arithmetic (so '99999999999h' is a one-line error, not an OverflowError)."""
    text = str(text).strip()
    if text.isdigit():
        seconds = int(text)
    else:
        match = TTL_RE.match(text)
        if not text or not match:
            raise ValueError(f"{text!r} is not a duration; use e.g. 2h, 90m, 1h30m or 3600s")
        h, m, s = (int(g) if g else 0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds > TTL_CEILING.total_seconds():
        raise ValueError(f"{text!r} is longer than {_hours(TTL_CEILING)}, the longest self-destruct window "
                         "perfci sets (a longer one would leave an orphan running for that long)")
    return timedelta(seconds=seconds)


def parse_ttl(text: str, maximum: timedelta = TTL_MAX) -> timedelta:
    """A TTL within [TTL_MIN, maximum]; the error names the bound and how to move the upper one."""
    ttl = parse_duration(text)
    if ttl < TTL_MIN:
        raise ValueError(f"{str(text).strip()!r} is too short a TTL; the minimum is {_hours(TTL_MIN)} "
                         "(a metal instance can take that long to boot, and it must not power off first)")
    if ttl > maximum:
        raise ValueError(f"{str(text).strip()!r} is too long a TTL; the maximum is {_hours(maximum)} (an orphan "
                         f"lives one TTL); for a long benchmark raise it with --perfci-ttl-max (at most "
                         f"{_hours(TTL_CEILING)})")
    return ttl


def new_run_id() -> str:
    """Sortable and unique enough to tag every resource of one run (EC2 tag values, kops cluster names)."""
    return f"perfci-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def split_types(value: Any) -> Any:
    """Repeatable and comma-separated options: ["a,b", "c"] -> ("a", "b", "c")."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


@dataclass(frozen=True)
class Opt:
    """How a field is spelt outside Python (field metadata: ``Annotated[T, Opt(...)]``).

    `env` defaults to PERFCI_<DEST> and the ini key is always perfci_<dest>, where dest is the
    field name with its section's prefix. `aliases`/`env_aliases` are older spellings that still work.
    """

    flag: str
    help: str
    metavar: str | None = None
    env: str | None = None
    aliases: tuple[str, ...] = ()
    env_aliases: tuple[str, ...] = ()


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ResultsSettings(_Section):
    """Where results go and what judges them (results/plugin.py). `Settings.record`."""

    s3: Annotated[str | None, Opt(
        "--perfci-s3", "also upload results (NDJSON, matrix) to s3://BUCKET/PREFIX/<run id>/; suites/cl2 "
        "exports its perfdash tree under the same prefix", "s3://BUCKET/PREFIX",
        aliases=("--perfci-results-s3",), env_aliases=("PERFCI_RESULTS_S3",))] = None
    baseline: Annotated[Path | None, Opt(
        "--perfci-baseline", "baseline file (TOML/JSON: metric, expected, tolerance, direction) judging samples",
        "FILE")] = None
    history: Annotated[str | None, Opt(
        "--perfci-history", "earlier NDJSON results; a sample outside its band of the same instance type and "
        "metric fails", "DIR|s3://BUCKET/PREFIX")] = None
    history_k: Annotated[float, Field(gt=0), Opt(
        "--perfci-history-k", "band half-width in standard deviations (default 3)", "K")] = 3.0
    history_min: Annotated[int, Field(ge=1), Opt(
        "--perfci-history-min", "earlier values needed before judging (default 5; fewer: 'too little history')",
        "N")] = 5
    history_band: Annotated[Literal["mad", "sigma"], Opt(
        "--perfci-history-band", "mad: median ± k·1.4826·MAD (default, robust); sigma: mean ± k·stdev",
        "{mad,sigma}")] = "mad"

    @field_validator("s3")
    @classmethod
    def _check_s3(cls, value: str | None) -> str | None:
        if value is not None:
            from pytest_perfci.results.s3 import parse_s3_url

            parse_s3_url(value)  # S3UrlError (a ValueError) names the value
        return value


class KopsSettings(_Section):
    """The kops cluster of ``--provider=kops`` (providers/kops.py). `Settings.kops`."""

    node_size: Annotated[str | None, Opt(
        "--node-size", "kops worker instance type (default: the first --instance-type)", "TYPE",
        env="PERFCI_KOPS_NODE_SIZE")] = None
    nodes: Annotated[int, Field(ge=1), Opt("--nodes", "kops worker node count (default 3)", "N",
                                           env="PERFCI_KOPS_NODES")] = 3
    zones: Annotated[tuple[str, ...], Opt("--zones", "comma-separated kops zones (default: <region>a)",
                                          "ZONE[,ZONE]", env="PERFCI_KOPS_ZONES")] = ()
    control_plane_size: Annotated[str | None, Opt(
        "--control-plane-size", "kops control-plane instance type (kops default)", "TYPE",
        env="PERFCI_KOPS_CONTROL_PLANE_SIZE")] = None
    k8s_version: Annotated[str | None, Opt("--k8s-version", "Kubernetes version (kops default)", "VERSION",
                                           env="PERFCI_KOPS_K8S_VERSION")] = None
    state: Annotated[str | None, Opt(
        "--perfci-kops-state", "kops state store s3://bucket[/prefix] (default KOPS_STATE_STORE)",
        "s3://BUCKET[/PREFIX]")] = None
    networking: Annotated[str | None, Opt("--perfci-kops-networking", "CNI, e.g. cilium (kops default)",
                                          "CNI")] = None
    validate_wait: Annotated[str, Opt("--perfci-kops-validate-wait", "how long kops validate may wait "
                                      "(default 20m)", "DURATION")] = "20m"
    binary: Annotated[str, Opt("--perfci-kops-binary", "kops executable (default kops on PATH)", "PATH")] = "kops"

    @field_validator("zones", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_types(value)


class QemuSettings(_Section):
    """Target twins of ``--provider=qemu`` (providers/qemu.py, twins/). `Settings.qemu`."""

    machine: Annotated[tuple[str, ...], Opt(
        "--qemu-machine", "target twin(s) for --provider=qemu: arm64-pmu (default), arm64-partial, arm64-noperf, x86_64; "
        "repeatable",
        "NAME[,NAME]")] = ()
    port: Annotated[int | None, Field(ge=1024, le=65535), Opt(
        "--qemu-port", "first 127.0.0.1 port forwarded to the twins' SSH, one per machine (default: free ports)",
        "PORT")] = None

    @field_validator("machine", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_types(value)

    @field_validator("machine")
    @classmethod
    def _check_machines(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from pytest_perfci.twins.machines import machine

        for name in value:
            machine(name)  # UnknownMachine (a ValueError) lists the allowed names
        if len(set(value)) != len(value):
            raise ValueError(f"{','.join(value)!r} names a machine twice; each twin machine is one target")
        return value


class Cl2Settings(_Section):
    """ClusterLoader2 (suites/cl2). `Settings.cl2`."""

    binary: Annotated[str, Opt("--cl2-binary", "clusterloader2 executable (default clusterloader2)",
                               "PATH")] = "clusterloader2"
    testconfig: Annotated[Path | None, Opt(
        "--cl2-testconfig", "CL2 test config, e.g. perf-tests/clusterloader2/testing/load/config.yaml",
        "FILE")] = None
    baseline: Annotated[Path | None, Opt("--cl2-baseline", "baseline file (perfci cl2 judge --json output)",
                                         "FILE")] = None
    slo: Annotated[tuple[str, ...], Opt("--cl2-slo", "SLO overrides NAME=VALUE[,NAME=VALUE] (see docs/cl2.md)",
                                        "NAME=VALUE[,...]")] = ()
    perfdash_job: Annotated[str, Opt("--perfdash-job", "perfdash job name (logs/<job>/<build>/artifacts; "
                                     "default perfci-cl2)", "JOB", env="PERFCI_PERFDASH_JOB")] = "perfci-cl2"

    @field_validator("slo", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_types(value)

    @field_validator("slo")
    @classmethod
    def _check_slo(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value:
            from pytest_perfci.checks.cl2 import parse_slo_overrides

            try:
                parse_slo_overrides(value)  # names an unknown SLO or a bad number
            except ValueError as exc:  # its message starts with `perfci cl2 judge`'s flag: name ours instead
                raise ValueError(str(exc).removeprefix("--slo ")) from None
        return value


class Settings(BaseModel):
    """Every perfci setting of a run; build it with :func:`load_settings` (tests: ``Settings(...)``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    provider: Annotated[str | None, Opt(
        "--provider", "where hosts come from: local (default), inventory, ec2 (default when --instance-type "
        "is given), kops, qemu (target twins on this machine)", "NAME")] = None
    instance_type: Annotated[tuple[str, ...], Opt(
        "--instance-type", "EC2 instance type(s) to check; repeatable and comma-separated. FAMILY.metal means "
        "the family's smallest metal size; an attribute query such as 'arch=arm64,metal=true,family=c7g|m7g' "
        "selects types (its commas bind to it; ';' separates two queries)", "TYPE[,TYPE]")] = ()
    region: Annotated[str | None, Opt("--region", "AWS region, e.g. us-east-1", "REGION")] = None
    run_id: Annotated[str, Opt("--perfci-run-id", "id tagged on every created resource (default: generated, "
                               "perfci-YYYYmmdd-HHMMSS-xxxxxx)", "ID")] = Field(default_factory=new_run_id)
    owner: Annotated[str, Opt("--perfci-owner", "perfci:owner tag of created resources (default: the login "
                              "name)", "NAME")] = Field(default_factory=getpass.getuser)
    keep: Annotated[bool, Opt("--perfci-keep", "do not tear down; print how to reach and later reap what "
                              "was kept")] = False
    prepare: Annotated[bool, Opt("--perfci-prepare", "install what the suites need (e.g. perf) on local and "
                                 "inventory hosts too; hosts this run creates are always prepared")] = False
    results: Annotated[Path, Opt("--perfci-results", "directory for results (default perfci-results)",
                                 "DIR")] = Path("perfci-results")
    # EC2 provider
    ami: Annotated[tuple[str, ...], Opt(
        "--ami", "AMI to boot instead of the per-architecture default; repeatable, e.g. arm64=ami-...",
        "[ARCH=]AMI")] = ()
    # before ttl: its validator reads the bound
    ttl_max: Annotated[timedelta, Opt("--perfci-ttl-max", "the longest --perfci-ttl allowed (default 24h; at "
                                      "most 168h), for long benchmarks", "DURATION")] = TTL_MAX
    ttl: Annotated[timedelta, Opt("--perfci-ttl", "self-destruct window of created instances (default 2h; "
                                  "15m to --perfci-ttl-max; e.g. 90m, 1h30m)", "DURATION")] = timedelta(hours=2)
    spot: Annotated[bool, Opt("--perfci-spot", "ask for spot capacity, falling back to on-demand")] = False
    ssh_cidr: Annotated[str | None, Opt(
        "--perfci-ssh-cidr", "who may reach created instances over SSH (default: this machine's address /32; "
        "never 0.0.0.0/0 unless given)", "CIDR")] = None
    ssh_user: Annotated[str | None, Opt("--perfci-ssh-user", "login user (default: by AMI, ubuntu or ec2-user)",
                                        "USER")] = None
    root_volume_gb: Annotated[int, Field(ge=8, le=16384), Opt(
        "--perfci-root-volume-gb", "encrypted root volume size (default 30)", "GB")] = 30
    endpoint_url: Annotated[str | None, Opt(
        "--perfci-endpoint-url", "AWS endpoint override (tests: a local moto server); default AWS_ENDPOINT_URL "
        "or AWS itself", "URL")] = None
    schedule: Annotated[Literal["parallel", "pipeline", "serial"], Opt(
        "--perfci-schedule", "when targets are up: parallel (all at once, fastest wall clock; default), pipeline "
        "(the next target boots while the current one runs its tests), serial (provision, test, release, then "
        "the next: never two alive at once); each target is released after its last test in every schedule",
        "{parallel,pipeline,serial}")] = "parallel"
    # most types one attribute query may select (models/instance_query.py)
    max_types: Annotated[int, Field(ge=1, le=1000), Opt(
        "--perfci-max-types", "most instance types one attribute query may select (default 8); more is an "
        "error before anything is created", "N")] = 8
    # client/server pairs (the topology fixture, suites/net)
    server_type: Annotated[str | None, Opt(
        "--perfci-server-type", "EC2 instance type of each target's server in a client/server pair (default: "
        "the target's own type); the client is the target", "TYPE")] = None
    net_seconds: Annotated[int, Field(ge=1, le=600), Opt(
        "--perfci-net-seconds", "how long each suites/net measurement (iperf3, sockperf) runs (default 5; "
        "1..600)", "S")] = 5
    # inventory provider
    inventory: Annotated[Path | None, Opt("--perfci-inventory", "lab hosts for --provider=inventory (TOML or "
                                          "YAML)", "FILE")] = None
    label: Annotated[tuple[str, ...], Opt("--perfci-label", "select inventory hosts carrying all these labels",
                                          "LABEL[,LABEL]")] = ()
    # sections
    record: ResultsSettings = ResultsSettings()
    kops: KopsSettings = KopsSettings()
    cl2: Cl2Settings = Cl2Settings()
    qemu: QemuSettings = QemuSettings()

    # dest -> where its value came from ("--region", "PERFCI_REGION", "[tool.perfci] region")
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("provider")
    @classmethod
    def _check_provider(cls, value: str | None) -> str | None:
        from pytest_perfci.providers import registry

        if value is not None and value not in registry.PROVIDERS:
            raise ValueError(f"{value!r} is not allowed; choose one of: {', '.join(registry.PROVIDERS)}")
        return value

    @field_validator("ami", "label", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return split_types(value)

    @field_validator("ami")
    @classmethod
    def _check_ami(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not AMI_RE.match(item):
                raise ValueError(f"{item!r} is not an AMI; use ami-0123456789abcdef0 or ARCH=ami-... (x86_64, arm64)")
        return value

    @field_validator("ttl_max", mode="before")
    @classmethod
    def _ttl_max(cls, value: Any) -> Any:
        return value if isinstance(value, timedelta) else parse_duration(value)

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any, info: ValidationInfo) -> Any:
        maximum = info.data.get("ttl_max", TTL_MAX)
        if isinstance(value, timedelta):
            return parse_ttl(f"{int(value.total_seconds())}s", maximum)
        return parse_ttl(value, maximum)

    @field_validator("ssh_cidr")
    @classmethod
    def _check_cidr(cls, value: str | None) -> str | None:
        import ipaddress

        if value is None:
            return value
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a CIDR block; use e.g. 203.0.113.7/32") from None
        if network.version != 4:
            # the instances are reached at their public IPv4 address; an IPv6 rule would admit nobody
            raise ValueError(f"{value!r} is an IPv6 block; instances are reached over IPv4 (their public IPv4 "
                             "address), so give an IPv4 CIDR such as 203.0.113.7/32")
        return str(network)

    @field_validator("ssh_user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        # a login name as useradd accepts it: it is printed in `ssh USER@HOST` lines users paste
        if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
            raise ValueError(f"{value!r} is not a login name; use lowercase letters, digits, '_' or '-' "
                             "(at most 32, starting with a letter or '_'), e.g. ubuntu or ec2-user")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL; use e.g. http://127.0.0.1:5000")
        return value

    @field_validator("instance_type", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # Names and attribute queries: a piece with '=' is a query term and its commas bind to it;
        # ';' always separates items (spelling documented in models/instance_query.py).
        items = split_items(value)
        raw = [value] if isinstance(value, str) else list(value or ())
        if not items and any(str(v).strip() for v in raw):
            # "--instance-type=," must not quietly mean "no type", i.e. this machine.
            shown = ",".join(str(v) for v in raw)
            raise ValueError(f"{shown!r} names no instance type; give names such as m7i.metal-24xl or a query")
        return items

    @field_validator("instance_type")
    @classmethod
    def _check_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if is_query(name):
                Query.parse(name)  # QueryError (a ValueError) names the bad term
            elif not INSTANCE_TYPE_RE.match(name):
                raise ValueError(
                    f"{name!r} is not an EC2 instance type name; expected FAMILY.SIZE such as "
                    "m7i.metal-24xl, c7g.metal or m7i.2xlarge, or an attribute query such as "
                    "arch=arm64,metal=true"
                )
        return value

    @field_validator("server_type")
    @classmethod
    def _check_server_type(cls, value: str | None) -> str | None:
        if value is not None and not INSTANCE_TYPE_RE.match(value):
            raise ValueError(f"{value!r} is not an EC2 instance type name; expected FAMILY.SIZE such as "
                             "m7i.large or c7gn.16xlarge")
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not REGION_RE.match(value):
            raise ValueError(f"{value!r} is not an AWS region name; expected e.g. us-east-1 or eu-west-2")
        return value

    @field_validator("run_id")
    @classmethod
    def _check_run_id(cls, value: str) -> str:
        if not RUN_ID_RE.match(value):
            raise ValueError(
                f"{value!r} is not a valid run id; use 3-48 lowercase letters, digits and '-', "
                "starting with a letter or digit (it becomes tag values and cluster names)"
            )
        return value

    @model_validator(mode="after")
    def _provider_fits(self) -> Settings:
        if self.provider == "local" and self.instance_types:
            raise ValueError(
                f"--provider=local runs on this machine, but instance types {', '.join(self.instance_types)} "
                "were given; drop --provider (defaults to ec2 with instance types) or use --provider=ec2"
            )
        if (self.qemu.machine or self.qemu.port is not None) and self.provider not in (None, "qemu"):
            raise ValueError(f"--qemu-machine/--qemu-port apply to --provider=qemu, not --provider={self.provider}")
        if (self.provider == "qemu" or (self.provider is None and self.qemu.machine)) and self.instance_types:
            raise ValueError(
                f"--provider=qemu boots twin machines (--qemu-machine), but instance types "
                f"{', '.join(self.instance_types)} were given; drop one of them"
            )
        return self

    @property
    def instance_types(self) -> tuple[str, ...]:
        return self.instance_type

    @property
    def effective_provider(self) -> str:
        """Instance types imply EC2, twin machines imply qemu; otherwise the embedded default is this machine."""
        if self.provider:
            return self.provider
        return "ec2" if self.instance_types else ("qemu" if self.qemu.machine else "local")

    def origin(self, dest: str) -> str:
        """How the user spelt the setting `dest` (for errors found after loading, e.g. an unreadable file)."""
        return self._origins.get(dest) or spec_of(dest).flag


# --- the spellings, generated from the fields ---------------------------------------------------------

# section attribute -> prefix of its dests (ini perfci_<dest>, env PERFCI_<DEST>); results keep short names
SECTIONS: dict[str, str] = {"record": "", "kops": "kops_", "cl2": "cl2_", "qemu": "qemu_"}


@dataclass(frozen=True)
class OptionSpec:
    """One setting as the outside world sees it."""

    path: tuple[str, ...]  # ("region",) or ("kops", "node_size")
    dest: str  # unique flat name: argparse dest perfci_<dest>, ini key perfci_<dest>, [tool.perfci] key
    opt: Opt
    kind: Literal["value", "list", "flag"]
    section: str  # "" for the run options, else the section attribute

    @property
    def flag(self) -> str:
        return self.opt.flag

    @property
    def flags(self) -> tuple[str, ...]:
        return (self.opt.flag, *self.opt.aliases)

    @property
    def env(self) -> str:
        return self.opt.env or f"PERFCI_{self.dest.upper()}"

    @property
    def envs(self) -> tuple[str, ...]:
        return (self.env, *self.opt.env_aliases)

    @property
    def ini(self) -> str:
        return f"perfci_{self.dest}"

    def argparse_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by pytest's addoption and argparse's add_argument."""
        help_text = f"{self.opt.help} (env {', '.join(self.envs)})"
        kwargs: dict[str, Any] = {"dest": f"perfci_{self.dest}", "default": None, "help": help_text}
        if self.kind == "flag":
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = self.opt.metavar
            if self.kind == "list":
                kwargs["action"] = "append"
        return kwargs


def _kind(annotation: Any) -> Literal["value", "list", "flag"]:
    if annotation is bool:
        return "flag"
    if get_origin(annotation) is tuple:
        return "list"
    return "value"


def _specs_of(model: type[BaseModel], section: str, prefix: str) -> Iterator[OptionSpec]:
    for name, info in model.model_fields.items():
        opt = next((m for m in info.metadata if isinstance(m, Opt)), None)
        if opt is None:
            continue
        path = (section, name) if section else (name,)
        yield OptionSpec(path, prefix + name, opt, _kind(info.annotation), section)


@cache
def option_specs() -> tuple[OptionSpec, ...]:
    """Every setting: the run options first, then each section's, in field order."""
    specs = list(_specs_of(Settings, "", ""))
    for section, prefix in SECTIONS.items():
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        specs.extend(_specs_of(model, section, prefix))
    return tuple(specs)


@cache
def _by_path() -> dict[tuple[str, ...], OptionSpec]:
    return {s.path: s for s in option_specs()}


def spec_of(dest: str) -> OptionSpec:
    return next(s for s in option_specs() if s.dest == dest)


def add_options(add: Callable[..., Any], sections: tuple[str, ...] | None = None) -> list[OptionSpec]:
    """Call `add(*flags, **kwargs)` (pytest's group.addoption or argparse's add_argument) per setting.

    `sections`: which to add ("" = the run options); all by default. Returns the specs added.
    """
    added = [s for s in option_specs() if sections is None or s.section in sections]
    for spec in added:
        add(*spec.flags, **spec.argparse_kwargs())
    return added


class SettingsError(ValueError):
    """A setting is wrong; str() is a message whose first line says which value and what is allowed."""


def _given(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != ()


def _message(err: Any, model_fields: Any = None) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "literal_error":
        allowed = ", ".join(str(a) for a in get_args(model_fields)) if model_fields else msg
        return f"{err['input']!r} is not allowed; choose one of: {allowed}"
    if err["type"] != "value_error":
        return f"{err.get('input')!r}: {msg[0].lower()}{msg[1:]}"
    return msg


def load_settings(
    cli: Mapping[str, Any],
    ini: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge CLI > environment > [tool.perfci]/ini (all keyed by dest); raise SettingsError naming the
    offending value and the exact spelling it came from (flag, variable or table key)."""
    environ = os.environ if env is None else env
    ini = ini or {}
    nested: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for spec in option_specs():
        value: Any = None
        if _given(cli.get(spec.dest)):
            value, origins[spec.dest] = cli[spec.dest], spec.flag
        elif (name := next((e for e in spec.envs if environ.get(e)), None)) is not None:
            value, origins[spec.dest] = environ[name], name
        elif _given(ini.get(spec.dest)):
            value, origins[spec.dest] = ini[spec.dest], f"[tool.perfci] {spec.dest}"
        else:
            continue
        target = nested.setdefault(spec.path[0], {}) if len(spec.path) == 2 else nested
        target[spec.path[-1]] = value
    try:
        settings = Settings.model_validate(nested)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        bad = _by_path().get(loc[:2]) or _by_path().get(loc[:1])
        if bad is None:  # a check across fields (the model validator)
            raise SettingsError(f"perfci: {str(err['msg']).removeprefix('Value error, ')}") from None
        annotation = _annotation(bad)
        literal = annotation if get_origin(annotation) is Literal else None
        raise SettingsError(f"{origins.get(bad.dest, bad.flag)}: {_message(err, literal)}") from None
    settings._origins.update(origins)
    return settings


def _annotation(spec: OptionSpec) -> Any:
    model: Any = Settings
    for part in spec.path[:-1]:
        model = Settings.model_fields[part].annotation
    return model.model_fields[spec.path[-1]].annotation


def read_pyproject_table(rootdir: Path) -> dict[str, Any]:
    """[tool.perfci] of the project's pyproject.toml by dest: keys spelt with '-' or '_'; a section may
    also be a sub-table ([tool.perfci.kops] nodes = 3 is kops_nodes)."""
    import tomllib

    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        table = tomllib.load(fh).get("tool", {}).get("perfci", {})
    out: dict[str, Any] = {}
    for key, value in table.items():
        key = str(key).replace("-", "_")
        prefix = SECTIONS.get("record" if key == "results" and isinstance(value, dict) else key)
        if isinstance(value, dict) and prefix is not None:
            out.update({prefix + str(k).replace("-", "_"): v for k, v in value.items()})
        else:
            out[key] = value
    return out
