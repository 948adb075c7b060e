"""Where hosts come from: the `Provider` contract every provider subclasses.

A provider names its targets at collection time and brings them up lazily. Naming targets without
provisioning lets pytest build test ids (test_x[m7i.metal-24xl]) and apply markers before a single
resource exists, so a bad selection costs nothing.

`Provider` names every capability the plugin, the session, ``--perfci-keep``, ``perfci plan`` and the
results use; callers call these methods and never probe for others by name or touch private state.
Only `targets` and `acquire` are required; every other method has a default that fits a provider
which creates nothing (local, inventory). Override what your provider really does:

================================  ===========================================================
capability                         default / who uses it
================================  ===========================================================
``name`` (class attribute)         required; the ``--provider`` value and the registry key
``from_settings(settings, ctx)``   ``cls()``; plugin builds the provider through the registry
``targets()``                      required; session (test ids, markers), plan
``acquire(target)``                required; session (the ``host`` fixture)
``release_all()``                  nothing to release; session teardown (idempotent)
``release(target)``                nothing (release_all at the end does it); the session calls it
                                   right after a target's last test (EC2 terminates its instance)
``validate()``                     no API-side checks; plugin, controller only, still creates nothing
``type_info(target)``              None; marker gate (catalogue facts before any host exists)
``known_instance_types()``         None; collection (a marker naming no real type is an error)
``creates_resources``              False; True adds "finish it with perfci reap" to teardown errors
``shares_hosts``                   False; True: the xdist controller brings targets up once and
                                   workers `attach` to the `WorkerHandle` that `export` returned
``export(target)``/``attach``      not supported (only called when ``shares_hosts``)
``export_resolution()``            None; JSON the controller hands workers so they name the same
``adopt_resolution(data)``         targets without recomputing (EC2: the resolved type list)
``keep()``                         nothing; ``--perfci-keep``: stop extending the self-destruct
``kept()``                         None; ``--perfci-keep`` summary: what was left up, how to reach it
``region``                         None; the region ``perfci reap`` needs for a kept run
``zone(target)``                   None; results: the availability zone a target ran in
``declare_needs(needs)``           nothing; what collected tests need on hosts, before any exists
                                   (EC2 installs it at boot through the user data)
``prepare(host, needs, allowed)``  look only, unless ``allowed`` (--perfci-prepare): install over
                                   the host's shell; EC2 reads what the boot did (it created it)
``declare_pairs()``                nothing; collected tests use the ``topology`` fixture, told before
                                   any host exists (EC2: a placement group and a server per target)
``pair(target)``                   TargetUnavailable; the ``topology`` fixture: a client and a server
                                   `Pair` for the target (local: two network namespaces and a veth)
================================  ===========================================================

Adding a provider is one subclass plus one line in :data:`pytest_perfci.providers.registry.PROVIDERS`
(tests/test_provider_contract.py shows a whole one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from pytest_perfci.hosts.base import Host
from pytest_perfci.models.preparation import Preparation
from pytest_perfci.prepare import host as prepare_host

if TYPE_CHECKING:
    from pytest_perfci.settings import Settings


class TargetUnavailable(Exception):
    """A provider cannot bring this target up (e.g. no capacity anywhere); its tests skip with the
    reason while the rest of the run goes on."""


class Target(BaseModel):
    """One machine a run checks; `name` is the test-id fragment and the summary row."""

    model_config = ConfigDict(frozen=True)

    name: str
    provider: str
    instance_type: str | None = None
    # What the user asked for when it was not this exact name: an alias (m7i.metal) or an attribute
    # query (arch=arm64,metal=true); kept in the test's metadata while ids use the real name.
    requested: str | None = None


class WorkerHandle(BaseModel):
    """How an xdist worker reaches a host the controller brought up (or why it cannot).

    Crosses a process boundary as JSON, so it is a model: a field the worker does not know is an
    error, not a silently ignored key. The SSH fields cover every provider that hands out SSH hosts;
    `extra` carries what only one provider needs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str
    unavailable: str | None = None  # the controller's TargetUnavailable reason; the worker skips
    error: str | None = None  # the controller failed to bring it up (handoff): the worker's test errors
    address: str = ""
    port: int = 22
    user: str = ""
    key_path: str = ""
    known_hosts: str = ""
    instance_type: str | None = None
    instance_id: str | None = None
    zone: str | None = None
    region: str | None = None
    ami: str | None = None
    extra: dict[str, str] = {}


class WorkerInput(BaseModel):
    """Everything the xdist controller hands each worker, as one JSON string in `workerinput`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    resolution: Any = None  # Provider.export_resolution(); None when the provider has none
    handles: dict[str, WorkerHandle] | None = None  # set when the provider shares hosts
    handoff: str | None = None  # or: the directory to ask the controller for each one in (handoff.py)

    KEY: ClassVar[str] = "perfci"


class KeptHost(BaseModel):
    """One host a ``--perfci-keep`` run left up, as the summary prints it."""

    model_config = ConfigDict(frozen=True)

    name: str
    resource_id: str
    ssh_command: str
    expires_at: str | None = None  # the self-destruct time as the cloud has it now; None if unknown
    key_path: str | None = None  # the private key that stays on disk


@dataclass(frozen=True)
class Pair:
    """Two machines of one target for network tests: traffic goes from `client` to `server_address`.

    The addresses are the test network's (the veth /30 of a local pair, private VPC addresses of an EC2
    pair), never the addresses the run reaches the hosts by; `ports` are the only ones opened between
    the two (EC2's security group rule)."""

    target: str
    client: Host
    server: Host
    client_address: str
    server_address: str
    link: str  # one line: what joins the two (veth in namespaces, placement group and AZ, lab labels)
    ports: tuple[int, int] = (5201, 5209)
    client_type: str | None = None  # instance types, for the advertised network performance
    server_type: str | None = None
    placement_group: str | None = None  # a cluster placement group holds both (EC2): 10 Gbit/s per flow


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may need from the pytest run besides settings (built by the plugin)."""

    # EC2 instance description -> "host[:port]" (the pytest_perfci_host_address hook)
    address: Callable[[dict[str, Any]], str] | None = None
    # one progress line on the terminal during long waits
    progress: Callable[[str], None] = field(default=print)
    # what the run tests (tags.suite_tag of the command-line paths): EC2's perfci:suite tag
    suite: str = ""


class Provider(ABC):
    """Base class of every provider; see the module docstring for the capabilities and defaults."""

    name: ClassVar[str]
    creates_resources: ClassVar[bool] = False
    shares_hosts: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> Provider:
        """Build from validated settings; must create nothing (it runs at configure time)."""
        return cls()

    @abstractmethod
    def targets(self) -> list[Target]:
        """What this run will check; must not create anything."""

    @abstractmethod
    def acquire(self, target: Target) -> Host:
        """Bring the target up (or attach to it) and return a ready handle; TargetUnavailable skips."""

    def release_all(self) -> object:
        """Destroy or release everything acquired; idempotent, safe after partial failures.

        May return a report (EC2 does); callers must not depend on it."""
        return None

    def release(self, target: Target) -> object:
        """Destroy what was acquired for this one target, right after its last test; idempotent, safe
        while the target is still being brought up (it is cancelled), never called on a kept run.

        Default: nothing now; `release_all` at the end of the session releases it. May return a report."""
        return None

    def validate(self) -> object:
        """Checks that need an API or a tool (types exist, credentials, kops on PATH), before anything
        is created; raise ValueError/RuntimeError with one line. Called once, by the controller."""
        return None

    def type_info(self, target: Target) -> Any:
        """Catalogue facts of a target (arch, metal, vcpus...) for marker queries, before any host exists."""
        return None

    def known_instance_types(self) -> Collection[str] | None:
        """Every instance type name the cloud offers (the catalogue), so an `instance_type` marker naming
        none of them is a usage error instead of a silent skip; None: this provider has no catalogue."""
        return None

    # -- xdist ------------------------------------------------------------------------------------

    def export(self, target: Target) -> WorkerHandle:
        """Controller: bring the target up here and say how a worker reaches it (if `shares_hosts`)."""
        raise NotImplementedError(f"provider {self.name!r} does not share hosts with xdist workers")

    def attach(self, target: Target, handle: WorkerHandle) -> Host:
        """Worker: its own connection to a host the controller brought up (and will release)."""
        raise NotImplementedError(f"provider {self.name!r} does not share hosts with xdist workers")

    def export_resolution(self) -> Any:
        """Controller: JSON-able state that lets a worker name the same targets without recomputing."""
        return None

    def adopt_resolution(self, data: Any) -> None:
        """Worker: take the controller's `export_resolution()` instead of computing it again."""

    # -- --perfci-keep ------------------------------------------------------------------------------

    def keep(self) -> None:
        """A kept run: stop extending lifetimes (the self-destruct still fires); idempotent."""

    def kept(self) -> list[KeptHost] | None:
        """What a kept run leaves up and how to reach it ([] if this run created none yet);
        None: this provider lists no kept hosts (it creates none, or reports them itself)."""
        return None

    @property
    def region(self) -> str | None:
        """The cloud region resources live in (for the reap command); None when not a cloud."""
        return None

    # -- results ------------------------------------------------------------------------------------

    def zone(self, target: Target) -> str | None:
        """Where the target's host runs (availability zone) once acquired; None when unknown."""
        return None

    # -- host preparation -----------------------------------------------------------------------------

    def declare_needs(self, needs: tuple[str, ...]) -> None:
        """What the collected tests need on every host (e.g. ("perf",)), told before any host exists, so
        a provider that boots machines can install it at boot. Default: nothing to do now."""

    # -- client/server pairs (the `topology` fixture) ----------------------------------------------------

    def declare_pairs(self) -> None:
        """Collected tests use the `topology` fixture: told before any host exists, so a provider that
        boots machines can place each target's client and server together (EC2: one placement group)."""

    def pair(self, target: Target) -> Pair:
        """A client and a server for the target; TargetUnavailable (the test skips, saying why) when
        this provider cannot give one."""
        raise TargetUnavailable(f"provider {self.name!r} gives no client/server pair for {target.name}")

    def prepare(self, host: Host, needs: tuple[str, ...], *, allowed: bool) -> Preparation:
        """Make `needs` available on `host`, once, before its first test; never raises for a package.

        Default, for machines this run did not create (local, inventory): only look, unless the user
        asked (`allowed`, --perfci-prepare), then install with the image's package manager as root.
        A provider that creates its machines installs without being asked."""
        return prepare_host.run(host, needs, "install" if (allowed or self.creates_resources) else "plan")
