"""Lab machines from an inventory file (netperf-style): select by label, lock for exclusive use, reset after.

    pytest suites/pmc --provider=inventory --perfci-inventory lab.toml --perfci-label spr --perfci-label metal

The file (TOML, or YAML when PyYAML is installed) lists hosts; `[defaults]` fills what a host leaves out:

    [defaults]
    user = "perf"
    key = "~/.ssh/lab_ed25519"          # relative paths are resolved against the inventory's directory
    known_hosts = "lab_known_hosts"
    [[hosts]]
    name = "lab-spr-1"                   # the test-id fragment: test_x[lab-spr-1]
    address = "10.0.0.5"                 # host, host:port or [v6]:port
    labels = ["x86_64", "spr", "metal"]
    instance_type = "m7i.metal-24xl"     # what the machine stands in for (instance_type markers select on it)
    reset = "sudo systemctl restart irqbalance"

Client/server pairs (the `topology` fixture, suites/net): a host with `role = "server"` is not a target
of its own; each target's server is the first selected server carrying every label of the target (so
give a pair a shared label such as "pair-a"). `test_address` is where test traffic goes (a lab's data
network); it defaults to the SSH address's host; `test_ports = [FIRST, LAST]` (default [5201, 5209])
are the ports the server listens on. The server is locked like any host while in use:

    [[hosts]]
    name = "lab-c1"
    address = "10.0.0.5"
    labels = ["spr", "pair-a"]
    role = "client"
    [[hosts]]
    name = "lab-s1"
    address = "10.0.0.6"
    test_address = "192.168.10.6"
    labels = ["spr", "pair-a"]
    role = "server"

Everything is checked by `load_inventory` before any connection, and every error is one line naming the
file, the host and field, and what is allowed. Key files are only ever named by path, never read.

Exclusive use: `acquire` takes a lock ON THE HOST, an atomic `mkdir` of `lock_dir` (default
/var/tmp/perfci.lock) holding an `owner` file (one JSON line: run id, owner, controller pid and hostname,
acquired and expiry times). The lock is per machine, not per inventory file, so two controllers with
different files (or a person with a shell script following the same convention) still exclude each other.

* held by another run whose expiry is in the future -> LockHeld naming who and since when;
* expired (or its controller process is gone, when that controller is this very machine) -> taken
  over, with a warning saying whose lock it was. A takeover is serialised by a second atomic
  `mkdir LOCK.takeover` and re-checks the owner file, so two runs racing for one stale lock cannot both win;
* held by our own run id (another xdist worker of the same run) -> joined, not owned: only the process
  that created the lock runs the reset command and removes it.

`release_all` runs each owned host's reset command (while the lock is still held, so the next run
finds a reset machine), removes the lock only when its owner file is still exactly ours, and closes the
connection. One host's failure never stops the others; all failures are raised together at the end as
one InventoryReleaseError. It is idempotent.

The expiry is `settings.ttl` (default 2 h) from acquisition; a run longer than that can lose its hosts
to another run, which `release_all` then reports instead of deleting the other run's lock.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import HostError
from pytest_perfci.hosts.ssh import SSHHost
from pytest_perfci.providers.base import (
    Pair,
    Provider,
    ProviderContext,
    Target,
    TargetUnavailable,
    WorkerHandle,
)
from pytest_perfci.retry import LookAgain, polling
from pytest_perfci.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_LOCK_DIR = "/var/tmp/perfci.lock"
SUFFIXES = (".toml", ".yaml", ".yml")
# A lock directory without an owner file is a controller that died between mkdir and mv (a few
# milliseconds); after this long nobody is still writing it.
ORPHAN_LOCK_GRACE_S = 60
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]*$")


# An inventory lists lab hosts: a few kilobytes. Anything near this is not one (or is an attack).
MAX_INVENTORY_BYTES = 1 << 20
MAX_MESSAGE = 400


class InventoryError(ValueError):
    """The inventory file or the label selection is wrong; str() is one line naming file, host, field,
    bounded in length (a value echoed from a hostile file must not flood the terminal)."""

    def __init__(self, message: str) -> None:
        line = message.replace("\n", " ")
        super().__init__(line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 20] + f"... ({len(line)} chars)")


class LockHeld(HostError):
    """Another live run holds the host's lock."""


class InventoryReleaseError(RuntimeError):
    """Reset or unlock failed on one or more hosts (every host was still processed)."""


# -- the file ----------------------------------------------------------------------------------------


class _Common(BaseModel):
    """Fields a host may set itself or inherit from [defaults]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str | None = Field(default=None, min_length=1)
    key: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    known_hosts: str | None = Field(default=None, min_length=1)
    host_key_policy: Literal["reject", "accept-new", "warn"] | None = None
    proxy_jump: str | None = Field(default=None, min_length=1)
    connect_timeout: float | None = Field(default=None, gt=0, le=600)
    reset: str | None = Field(default=None, min_length=1)
    reset_timeout: float | None = Field(default=None, gt=0, le=86400)
    lock_dir: str | None = Field(default=None, min_length=2)
    # a pair's test ports on its server (first: iperf3, next: sockperf); a lab firewall may allow only some
    test_ports: tuple[int, int] | None = None

    @field_validator("test_ports")
    @classmethod
    def _ports(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] < value[1] <= 65535:
            raise ValueError("must be [FIRST, LAST], 1 <= FIRST < LAST <= 65535 (suites/net uses FIRST and FIRST+1)")
        return value

    @field_validator("lock_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None:
            path = PurePosixPath(value)
            if not path.is_absolute() or str(path) == "/" or ".." in path.parts:
                raise ValueError(f"must be an absolute path on the host such as {DEFAULT_LOCK_DIR}")
            value = str(path)
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$", value):
            raise ValueError("must be a login name such as perf or root")
        return value


class _Defaults(_Common):
    pass


class _Entry(_Common):
    name: str
    address: str
    labels: list[str] = []
    instance_type: str | None = Field(default=None, min_length=1)
    role: Literal["client", "server"] | None = None
    test_address: str | None = Field(default=None, min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "name must start with a letter or digit and use only letters, digits, '.', '_', '-'"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not _LABEL_RE.match(label):
                raise ValueError(
                    f"label {label!r} is not allowed; labels are words of letters, digits and . _ : / + - "
                    "(no spaces or commas: --perfci-label splits on commas)"
                )
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        _split_address(value)
        return value

    @field_validator("test_address")
    @classmethod
    def _test_address(cls, value: str | None) -> str | None:
        if value is not None and _split_address(value)[1] is not None:
            raise ValueError("must be a host name or IP without a port (test ports are the suite's)")
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: _Defaults = _Defaults()
    hosts: list[_Entry] = Field(min_length=1)


class InventoryHost(BaseModel):
    """One lab machine with [defaults] applied and paths resolved: everything needed to reach and lock it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    address: str
    port: int = 22
    user: str
    key: Path | None = None
    labels: tuple[str, ...] = ()
    instance_type: str | None = None
    role: Literal["client", "server"] | None = None
    test_address: str = ""  # where a pair's test traffic goes; the SSH address's host by default
    test_ports: tuple[int, int] = (5201, 5209)
    reset: str | None = None
    reset_timeout: float = 600.0
    known_hosts: Path | None = None
    host_key_policy: Literal["reject", "accept-new", "warn"] = "reject"
    proxy_jump: str | None = None
    connect_timeout: float = 10.0
    lock_dir: str = DEFAULT_LOCK_DIR

    def ssh_host(self) -> SSHHost:
        """A handle (no connection yet: SSHHost connects on first command)."""
        return SSHHost(
            self.name,
            self.address,
            user=self.user,
            port=self.port,
            key_filename=self.key,
            known_hosts=self.known_hosts,
            host_key_policy=self.host_key_policy,
            proxy_jump=self.proxy_jump,
            connect_timeout=self.connect_timeout,
        )


class Inventory(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    hosts: tuple[InventoryHost, ...]

    def host(self, name: str) -> InventoryHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(f"{self.path}: no host named {name!r}; hosts: {', '.join(h.name for h in self.hosts)}")

    @property
    def labels(self) -> list[str]:
        return sorted({label for host in self.hosts for label in host.labels})

    def server_for(self, client: InventoryHost, among: Sequence[InventoryHost]) -> InventoryHost | None:
        """The client's server: the first of `among` with role "server" carrying every label of the client."""
        return next((h for h in among if h.role == "server" and h.name != client.name
                     and set(client.labels) <= set(h.labels)), None)

    def select(self, labels: Sequence[str]) -> list[InventoryHost]:
        """Hosts carrying ALL of `labels` (like CI runner tags), in file order; every host when none given."""
        wanted = set(labels)
        chosen = [h for h in self.hosts if wanted <= set(h.labels)]
        if not chosen:
            raise InventoryError(
                f"{self.path}: no host carries all of the labels {', '.join(sorted(wanted))}; "
                f"labels present: {', '.join(self.labels) or '(none)'}"
                + "".join(f"; {h.name}: {','.join(h.labels) or '-'}" for h in self.hosts[:8])
            )
        return chosen


def _split_address(address: str) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address -> (host, port or None)."""
    if not address or address != address.strip() or any(c.isspace() for c in address):
        raise ValueError("must be a host name or IP, optionally with :port, without spaces")
    if "@" in address:
        raise ValueError("must not contain a user (use the user field)")
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError("must look like [v6-address]:port")
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    else:
        host, port_text = address, None  # a name, IPv4, or a bare IPv6 address (several colons)
    if not host:
        raise ValueError("has an empty host part")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _parse_text(path: Path, text: str) -> Any:
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise InventoryError(f"{path}: invalid TOML: {e}") from None
    try:
        import yaml
    except ImportError:
        raise InventoryError(
            f"{path}: reading YAML inventories needs PyYAML (pip install pyyaml), or write the file as TOML"
        ) from None
    try:
        # Anchors and aliases are refused before anything is built: nested aliases ("billion laughs")
        # expand to gigabytes inside safe_load. Scanning tokens is linear in the text and builds nothing.
        for token in yaml.scan(text):
            if isinstance(token, yaml.AliasToken | yaml.AnchorToken):
                mark = token.start_mark
                raise InventoryError(f"{path}: YAML anchors and aliases (&name, *name) are not allowed in an "
                                     f"inventory (line {mark.line + 1}, column {mark.column + 1}); write each "
                                     "host out, or use [defaults]")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InventoryError(f"{path}: invalid YAML{where}: {problem}") from None


_ALLOWED_TOP = ("defaults", "hosts")
_ALLOWED_HOST = tuple(_Entry.model_fields)
_ALLOWED_DEFAULTS = tuple(_Defaults.model_fields)


def _location(raw: Any, loc: tuple[Any, ...]) -> tuple[str, str]:
    """(where, field) for a pydantic error location: ('hosts[1] (lab-2)', 'adress')."""
    if not loc:
        return "", ""
    if loc[0] == "hosts" and len(loc) >= 2 and isinstance(loc[1], int):
        name = ""
        try:
            name = str(raw["hosts"][loc[1]].get("name") or "")
        except (AttributeError, KeyError, IndexError, TypeError):
            pass
        where = f"hosts[{loc[1]}]" + (f" ({name})" if name else "")
        return where, ".".join(str(p) for p in loc[2:])
    if loc[0] == "defaults":
        return "[defaults]", ".".join(str(p) for p in loc[1:])
    return "", ".".join(str(p) for p in loc)


def _message(path: Path, raw: Any, exc: ValidationError) -> str:
    # Unknown fields first: a misspelt 'adress' also makes 'address' missing, and the typo is the news.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    where, field = _location(raw, tuple(err["loc"]))
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _ALLOWED_HOST if where.startswith("hosts") else _ALLOWED_DEFAULTS if where else _ALLOWED_TOP
        close = difflib.get_close_matches(field, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        what = f"unknown field {field!r}{hint}; allowed: {', '.join(allowed)}"
    elif kind in ("missing", "too_short") and field == "hosts":
        what = "no [[hosts]] entries; add at least one host with name and address"
    elif kind == "missing":
        what = f"missing field {field!r} (required)"
    elif kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        what = f"{field} = {err.get('input')!r} is not allowed; use {expected}"
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
        what = f"{field} = {err.get('input')!r}: {msg}" if field else msg
    prefix = f"{path}: " + (f"{where}: " if where else "")
    return prefix + what


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def load_inventory(path: str | Path) -> Inventory:
    """Read, validate and resolve an inventory; InventoryError (one line) on anything wrong. No I/O but the file."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise InventoryError(
            f"{path}: unknown inventory format {path.suffix or '(no suffix)'!r}; use .toml, .yaml or .yml"
        )
    try:
        size = path.stat().st_size
        if size > MAX_INVENTORY_BYTES:
            raise InventoryError(f"{path}: {size:,} bytes is not an inventory (at most {MAX_INVENTORY_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{path}: inventory file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InventoryError(f"{path}: cannot read inventory: {getattr(e, 'strerror', None) or e}") from None
    raw = _parse_text(path, text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InventoryError(
            f"{path}: expected a table with 'defaults' and 'hosts', got a {type(raw).__name__}"
        )
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        raise InventoryError(_message(path, raw, exc)) from None

    base = path.resolve().parent
    d = parsed.defaults
    seen: dict[str, int] = {}
    hosts: list[InventoryHost] = []
    for i, entry in enumerate(parsed.hosts):
        where = f"{path}: hosts[{i}] ({entry.name})"
        if entry.name in seen:
            raise InventoryError(
                f"{where}: duplicate name {entry.name!r} (also hosts[{seen[entry.name]}]); names must be unique"
            )
        seen[entry.name] = i
        host, addr_port = _split_address(entry.address)
        port = entry.port if entry.port is not None else d.port
        if addr_port is not None and port is not None and port != addr_port:
            raise InventoryError(f"{where}: address says port {addr_port} but port = {port}; give it once")
        port = addr_port or port or 22
        user = entry.user or d.user
        if user is None:
            raise InventoryError(f"{where}: no user; set user on the host or in [defaults]")
        key = _resolve(base, entry.key or d.key)
        if key is not None and not key.is_file():
            raise InventoryError(
                f"{where}: key file {key} does not exist (relative paths are resolved against {base})"
            )
        policy = entry.host_key_policy or d.host_key_policy or "reject"
        known_hosts = _resolve(base, entry.known_hosts or d.known_hosts)
        if known_hosts is not None and not known_hosts.is_file() and policy == "reject":
            raise InventoryError(
                f"{where}: known_hosts file {known_hosts} does not exist; create it (ssh-keyscan) "
                "or use host_key_policy = 'accept-new'"
            )
        values: dict[str, Any] = {
            "name": entry.name,
            "address": host,
            "port": port,
            "user": user,
            "key": key,
            "labels": tuple(entry.labels),
            "instance_type": entry.instance_type,
            "role": entry.role,
            "test_address": (entry.test_address or host).strip("[]"),
            "reset": entry.reset or d.reset,
            "known_hosts": known_hosts,
            "host_key_policy": policy,
            "proxy_jump": entry.proxy_jump or d.proxy_jump,
        }
        for name in ("reset_timeout", "connect_timeout", "lock_dir", "test_ports"):
            value = getattr(entry, name) if getattr(entry, name) is not None else getattr(d, name)
            if value is not None:
                values[name] = value
        hosts.append(InventoryHost(**values))
    return Inventory(path=path, hosts=tuple(hosts))


# -- the lock on the host ------------------------------------------------------------------------------

# All three scripts run as `sh -c SCRIPT perfci-lock ARGS...` so no argument is ever re-parsed by a shell.
# The owner file is written next to the lock first and renamed in, so a reader sees it whole or not at all.
_ACQUIRE = r"""
lock=$1; mine=$2
tmp="$lock.owner.$$"
printf '%s\n' "$mine" > "$tmp" || exit 3
if mkdir "$lock" 2>/dev/null; then
  if mv "$tmp" "$lock/owner"; then echo ACQUIRED; exit 0; fi
  rmdir "$lock"; exit 3
fi
rm -f "$tmp"
if [ ! -d "$lock" ]; then
  # Gone between our mkdir and this test (a takeover or release in flight): let the caller look again.
  # If mkdir cannot work at all (missing parent, permissions), show its own error instead.
  if mkdir "$lock" 2>/dev/null; then rmdir "$lock"; echo RETRY; exit 0; fi
  if [ -d "$lock" ]; then echo RETRY; exit 0; fi
  mkdir "$lock"; exit 4
fi
echo HELD
stat -c %Y "$lock" 2>/dev/null || echo 0
cat "$lock/owner" 2>/dev/null
exit 0
"""

# Taking over a stale lock: serialised by a second mkdir, and only if the owner file is still the one
# the caller judged stale (another run may have taken it over, or released it, in between).
_TAKEOVER = r"""
lock=$1; mine=$2; stale=$3
mutex="$lock.takeover"
if ! mkdir "$mutex" 2>/dev/null; then
  if [ -n "$(find "$mutex" -maxdepth 0 -mmin +1 2>/dev/null)" ]; then rmdir "$mutex" 2>/dev/null; fi
  mkdir "$mutex" 2>/dev/null || { echo BUSY; exit 0; }
fi
trap 'rmdir "$mutex" 2>/dev/null' EXIT
if [ -d "$lock" ]; then
  if [ "$(cat "$lock/owner" 2>/dev/null)" != "$stale" ]; then echo CHANGED; exit 0; fi
  rm -rf "$lock" || exit 3
fi
tmp="$lock.owner.$$"
printf '%s\n' "$mine" > "$tmp" || exit 3
if mkdir "$lock" 2>/dev/null && mv "$tmp" "$lock/owner"; then echo ACQUIRED; exit 0; fi
rm -f "$tmp"; echo CHANGED
"""

_RELEASE = r"""
lock=$1; mine=$2
if [ ! -d "$lock" ]; then echo GONE; exit 0; fi
have=$(cat "$lock/owner" 2>/dev/null)
if [ "$have" = "$mine" ]; then rm -rf "$lock" && echo RELEASED; exit $?; fi
echo NOT-OURS
printf '%s\n' "$have"
"""


@dataclass(frozen=True)
class LockOwner:
    """Who holds a host: the content of LOCK/owner."""

    run_id: str
    owner: str
    pid: int
    controller: str
    acquired_at: datetime
    expires_at: datetime

    def line(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "owner": self.owner,
                "pid": self.pid,
                "controller": self.controller,
                "acquired_at": self.acquired_at.isoformat(timespec="seconds"),
                "expires_at": self.expires_at.isoformat(timespec="seconds"),
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, text: str) -> LockOwner | None:
        try:
            d = json.loads(text)
            return cls(
                run_id=str(d["run_id"]),
                owner=str(d["owner"]),
                pid=int(d["pid"]),
                controller=str(d["controller"]),
                acquired_at=_utc(d["acquired_at"]),
                expires_at=_utc(d["expires_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return (
            f"run {self.run_id} of {self.owner} (pid {self.pid} on {self.controller}) "
            f"since {self.acquired_at:%Y-%m-%d %H:%M:%S}Z, expires {self.expires_at:%Y-%m-%d %H:%M:%S}Z"
        )


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(str(text))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Held:
    spec: InventoryHost
    host: SSHHost
    mine: str  # the exact owner line on the host (ours, or the sharing run's when joined)
    owned: bool  # we created the lock: we reset the host and remove it


class InventoryProvider(Provider):
    """Lab hosts from `settings.inventory`, selected by `settings.label`, locked while in use."""

    name = "inventory"
    shares_hosts = True  # under xdist the controller holds the locks; workers only connect

    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] | None = None,
        controller: str | None = None,
        pid: int | None = None,
    ) -> None:
        if settings.inventory is None:
            raise InventoryError(
                "--provider=inventory needs --perfci-inventory FILE (a .toml or .yaml host list)"
            )
        self.settings = settings
        self.inventory = load_inventory(settings.inventory)  # every file error before any connection
        self._now = now or (lambda: datetime.now(UTC))
        self.controller = controller or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self._held: dict[str, _Held] = {}
        self.notes: list[str] = []  # takeovers and release outcomes, for a terminal summary

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> InventoryProvider:
        return cls(settings)

    def targets(self) -> list[Target]:
        """The selected hosts, less those with role "server" (they serve pairs; unless nothing else is selected)."""
        chosen = self.inventory.select(self.settings.label)
        clients = [h for h in chosen if h.role != "server"] or chosen
        return [Target(name=h.name, provider=self.name, instance_type=h.instance_type) for h in clients]

    def pair(self, target: Target) -> Pair:
        """The target (client) and its server by labels and roles (see the module docstring); both locked."""
        spec = self.inventory.host(target.name)
        server = self.inventory.server_for(spec, self.inventory.select(self.settings.label))
        if server is None:
            raise TargetUnavailable(
                f"no selected host with role = \"server\" carries all of {target.name}'s labels "
                f"({', '.join(spec.labels) or 'none'}); servers: "
                + (", ".join(f"{h.name} [{','.join(h.labels)}]" for h in self.inventory.hosts if h.role == "server")
                   or "none in the inventory"))
        client = self.acquire(target)
        server_host = self.acquire(Target(name=server.name, provider=self.name, instance_type=server.instance_type))
        return Pair(target=target.name, client=client, server=server_host, client_address=spec.test_address,
                    server_address=server.test_address, ports=server.test_ports,
                    link=f"lab pair {spec.name} ({spec.test_address}) -> {server.name} ({server.test_address}), "
                         f"labels {','.join(server.labels)}",
                    client_type=spec.instance_type, server_type=server.instance_type)

    def acquire(self, target: Target) -> Host:
        held = self._held.get(target.name)
        if held is not None:
            return held.host
        spec = self.inventory.host(target.name)
        host = spec.ssh_host()
        try:
            self._held[target.name] = self._lock(spec, host)
        except BaseException:
            host.close()
            raise
        return host

    def export(self, target: Target) -> WorkerHandle:
        """Lock the host here (the xdist controller) and tell workers which one it is."""
        self.acquire(target)
        spec = self.inventory.host(target.name)
        server = self.inventory.server_for(spec, self.inventory.select(self.settings.label))
        if server is not None:  # a worker's `pair` joins this lock instead of taking one it would never free
            self.acquire(Target(name=server.name, provider=self.name, instance_type=server.instance_type))
        return WorkerHandle(target=target.name)

    def attach(self, target: Target, handle: WorkerHandle) -> Host:
        """A worker's own connection to a host whose lock the controller holds and will release."""
        return self.inventory.host(handle.target).ssh_host()

    # -- locking ------------------------------------------------------------------------------------

    def _owner(self) -> LockOwner:
        now = self._now().replace(microsecond=0)
        return LockOwner(
            run_id=self.settings.run_id,
            owner=self.settings.owner,
            pid=self.pid,
            controller=self.controller,
            acquired_at=now,
            expires_at=now + self.settings.ttl,
        )

    def _note(self, text: str) -> None:
        log.warning("%s", text)
        self.notes.append(text)

    def _lock(self, spec: InventoryHost, host: SSHHost, attempts: int = 5) -> _Held:
        try:
            return polling(attempts)(self._try_lock, spec, host)
        except LookAgain:
            raise LockHeld(
                spec.name, f"lock {spec.lock_dir} on {spec.address} is being taken by another run right now; "
                "try again"
            ) from None

    def _try_lock(self, spec: InventoryHost, host: SSHHost) -> _Held:
        """One look at the lock: take it, share it (our run), refuse (a live holder), or LookAgain (in flux)."""
        lock = spec.lock_dir
        mine = self._owner().line()
        out = host.run(["sh", "-c", _ACQUIRE, "perfci-lock", lock, mine], timeout=60).stdout
        lines = out.splitlines()
        if lines[:1] == ["ACQUIRED"]:
            log.info("%s: locked %s for run %s", spec.name, lock, self.settings.run_id)
            return _Held(spec, host, mine, owned=True)
        if lines[:1] == ["RETRY"]:
            raise LookAgain(0.1)
        if lines[:1] != ["HELD"] or len(lines) < 2:
            raise HostError(
                spec.name, f"cannot take lock {lock}: unexpected answer {out.strip()[:200]!r}"
            )
        created = datetime.fromtimestamp(int(lines[1]) if lines[1].isdigit() else 0, UTC)
        text = "\n".join(lines[2:]).strip()
        if not text and self._now() - created < timedelta(seconds=ORPHAN_LOCK_GRACE_S):
            raise LookAgain(0.2, "another controller is between its mkdir and its mv")
        other = LockOwner.parse(text) if text else None
        if other is not None and other.run_id == self.settings.run_id:
            log.info(
                "%s: lock %s already held by our run %s (pid %d): sharing it",
                spec.name,
                lock,
                other.run_id,
                other.pid,
            )
            return _Held(spec, host, text, owned=False)
        if other is None and text:
            raise LockHeld(
                spec.name,
                f"lock {lock} on {spec.address} (created {created:%Y-%m-%d %H:%M:%S}Z) has an unreadable "
                f"owner file ({text[:120]!r}); remove it by hand if no run is using the host",
            )
        why = self._stale_reason(other, created)
        if why is None:
            assert other is not None
            raise LockHeld(
                spec.name,
                f"in use by {other.describe()}; lock {lock} on {spec.address}. "
                f"Wait, pick another host with --perfci-label, or remove the lock if that run is dead",
            )
        answer = host.run(
            ["sh", "-c", _TAKEOVER, "perfci-lock", lock, mine, text], timeout=60
        ).stdout.strip()
        if answer == "ACQUIRED":
            self._note(f"{spec.name}: took over lock {lock}: {why}")
            return _Held(spec, host, mine, owned=True)
        raise LookAgain(0.2, "BUSY or CHANGED: someone else moved first; look at the lock again")

    def _stale_reason(self, other: LockOwner | None, created: datetime) -> str | None:
        """Why a held lock may be taken over, or None when its holder must be respected."""
        if other is None:
            return f"it had no owner file and was created at {created:%Y-%m-%d %H:%M:%S}Z (a crashed acquire)"
        now = self._now()
        if other.expires_at <= now:
            return f"{other.describe()} had expired"
        if other.controller == self.controller and not _pid_alive(other.pid):
            return f"{other.describe()}: its process is gone from this controller"
        return None

    # -- release ------------------------------------------------------------------------------------

    def release_all(self) -> None:
        """Reset, unlock and disconnect every acquired host; failures are collected and raised at the end."""
        failures: list[str] = []
        for name in list(self._held):
            held = self._held.pop(name)
            try:
                if held.owned:
                    failures += self._reset(held)
                    failures += self._unlock(held)
            finally:
                held.host.close()
        if failures:
            raise InventoryReleaseError("; ".join(failures))

    def _reset(self, held: _Held) -> list[str]:
        command = held.spec.reset
        if not command:
            return []
        try:
            result = held.host.run(command, timeout=held.spec.reset_timeout, check=False)
        except HostError as e:
            return [f"{held.spec.name}: reset command did not run: {e}"]
        if result.failed:
            tail = (result.stderr.strip().splitlines() or [""])[-1]
            return [
                f"{held.spec.name}: reset command {command!r} exited {result.exited}"
                + (f": {tail}" if tail else "")
            ]
        log.info("%s: reset done (%s)", held.spec.name, command)
        return []

    def _unlock(self, held: _Held) -> list[str]:
        lock = held.spec.lock_dir
        try:
            out = held.host.run(
                ["sh", "-c", _RELEASE, "perfci-lock", lock, held.mine], timeout=60, check=False
            )
        except HostError as e:
            return [f"{held.spec.name}: could not remove lock {lock} (it expires by itself): {e}"]
        lines = out.stdout.splitlines()
        if out.ok and lines[:1] == ["RELEASED"]:
            return []
        if lines[:1] == ["GONE"]:
            self._note(f"{held.spec.name}: lock {lock} was already gone at release")
            return []
        if lines[:1] == ["NOT-OURS"]:
            other = LockOwner.parse("\n".join(lines[1:]).strip())
            who = other.describe() if other else "another owner"
            return [
                f"{held.spec.name}: lock {lock} now belongs to {who}; left in place (our run outlived its ttl?)"
            ]
        return [
            f"{held.spec.name}: could not remove lock {lock}: exit {out.exited} {out.stderr.strip()[:200]}"
        ]


__all__ = [
    "DEFAULT_LOCK_DIR",
    "Inventory",
    "InventoryError",
    "InventoryHost",
    "InventoryProvider",
    "InventoryReleaseError",
    "LockHeld",
    "LockOwner",
    "load_inventory",
]

