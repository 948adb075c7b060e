"""One model of every perfci setting, merged CLI > environment PERFCI_* > [tool.perfci] / ini.

All validation happens here, before any provider is touched, so a typo costs nothing: the first
line of the error names the bad value, where it came from and what is allowed.
"""

from __future__ import annotations

import getpass
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from pytest_perfci.models.instance_query import Query, is_query, split_items

# EC2 names are FAMILY.SIZE: m7i.metal-24xl, c7g.metal, m7i.2xlarge, u-6tb1.metal.
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,47}$")
AMI_RE = re.compile(r"^(?:(x86_64|arm64)=)?ami-[0-9a-f]{8,17}$")
TTL_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_ttl(text: str) -> timedelta:
    """'2h', '90m', '1h30m', '3600s' or plain seconds -> timedelta; at least one minute."""
    text = str(text).strip()
    if text.isdigit():
        seconds = int(text)
    else:
        match = TTL_RE.match(text)
        if not text or not match:
            raise ValueError(f"{text!r} is not a duration; use e.g. 2h, 90m, 1h30m or 3600s")
        h, m, sec = (int(g) if g else 0 for g in match.groups())
        seconds = h * 3600 + m * 60 + sec
    if seconds < 60:
        raise ValueError(f"{text!r} is too short a TTL; the minimum is 1m (instances need time to boot)")
    return timedelta(seconds=seconds)

# How each field is spelt on the command line, for error messages that point at what the user typed.
CLI_NAMES = {
    "provider": "--provider",
    "instance_type": "--instance-type",
    "region": "--region",
    "run_id": "--perfci-run-id",
    "keep": "--perfci-keep",
    "results": "--perfci-results",
    "ami": "--ami",
    "ttl": "--perfci-ttl",
    "spot": "--perfci-spot",
    "ssh_cidr": "--perfci-ssh-cidr",
    "ssh_user": "--perfci-ssh-user",
    "root_volume_gb": "--perfci-root-volume-gb",
    "endpoint_url": "--perfci-endpoint-url",
    "max_types": "--perfci-max-types",
    "inventory": "--perfci-inventory",
    "label": "--perfci-label",
}


def new_run_id() -> str:
    """Sortable and unique enough to tag every resource of one run (EC2 tag values, kops cluster names)."""
    return f"perfci-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def split_types(value: Any) -> Any:
    """--instance-type is repeatable and comma-separated: ["a,b", "c"] -> ("a", "b", "c")."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERFCI_", extra="ignore", frozen=True)

    provider: str | None = None
    instance_type: Annotated[tuple[str, ...], NoDecode] = ()
    region: str | None = None
    run_id: str = Field(default_factory=new_run_id)
    owner: str = Field(default_factory=getpass.getuser)
    keep: bool = False
    results: Path = Path("perfci-results")
    # EC2 provider
    ami: Annotated[tuple[str, ...], NoDecode] = ()
    ttl: timedelta = timedelta(hours=2)
    spot: bool = False
    ssh_cidr: str | None = None
    ssh_user: str | None = None
    root_volume_gb: int = Field(default=30, ge=8, le=16384)
    endpoint_url: str | None = None
    # most types one attribute query may select (models/instance_query.py)
    max_types: int = Field(default=8, ge=1, le=1000)
    # inventory provider
    inventory: Path | None = None
    label: Annotated[tuple[str, ...], NoDecode] = ()

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

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        return value if isinstance(value, timedelta) else parse_ttl(value)

    @field_validator("ssh_cidr")
    @classmethod
    def _check_cidr(cls, value: str | None) -> str | None:
        import ipaddress

        if value is None:
            return value
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a CIDR block; use e.g. 203.0.113.7/32") from None

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
        return self

    @property
    def instance_types(self) -> tuple[str, ...]:
        return self.instance_type

    @property
    def effective_provider(self) -> str:
        """Instance types imply EC2; otherwise the embedded default is this machine."""
        return self.provider or ("ec2" if self.instance_types else "local")


class _MappingSource(PydanticBaseSettingsSource):
    """Lowest-priority source: [tool.perfci] in pyproject.toml and perfci_* ini keys."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = dict(values)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if v not in (None, "", ())}


class SettingsError(ValueError):
    """A setting is wrong; str() is a message whose first line says which value and what is allowed."""


def _where(field: str, cli: Mapping[str, Any], env: Mapping[str, str]) -> str:
    if field in cli:
        return CLI_NAMES.get(field, field)
    env_name = "PERFCI_" + field.upper()
    if env_name in env:
        return env_name
    return f"[tool.perfci] {field}"


def _field_of(loc: tuple[Any, ...]) -> str:
    return str(loc[0]) if loc else ""


def load_settings(
    cli: Mapping[str, Any],
    ini: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the three sources; raise SettingsError naming the offending value and its origin."""
    import os

    ini_values = dict(ini or {})
    cli_values = {k: v for k, v in cli.items() if v is not None}

    class _Sourced(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, _MappingSource(settings_cls, ini_values)

    try:
        sourced = _Sourced(**cli_values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_of(tuple(err["loc"]))
        where = _where(field, cli, os.environ if env is None else env)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not field:
            where = "perfci"
        elif err["type"] != "value_error":
            msg = f"{err.get('input')!r}: {msg[0].lower()}{msg[1:]}"
        raise SettingsError(f"{where}: {msg}") from None
    return Settings.model_construct(**sourced.model_dump())


def read_pyproject_table(rootdir: Path) -> dict[str, Any]:
    """[tool.perfci] of the project's pyproject.toml, keys spelt with '-' or '_'."""
    import tomllib

    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        table = tomllib.load(fh).get("tool", {}).get("perfci", {})
    return {str(k).replace("-", "_"): v for k, v in table.items()}
