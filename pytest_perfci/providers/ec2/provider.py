"""EC2 as a Provider: validate everything up front, fan out provisioning, hand back SSH hosts, destroy.

Order of events for a run (`acquire` of the first target triggers all of it, once):
  targets()          what the items of --instance-type mean (models/instance_query.py: exact names,
                     <family>.metal aliases, attribute queries) from one cached catalogue listing; aliases and queries
                     are printed as one line each, before anything is created
  validate()         credentials, region, every type (one catalogue listing), every AMI and its arch,
                     the SSH CIDR; no create call happens before all of these pass
  shared access      key pair (0600 file under <results>/.keys/) and security group, ledgered
  fan-out            one thread per type: RunInstances (AZ fallback), waiter, SSH readiness, cloud-init;
                     eight types are ready in about the time of the slowest one. Under
                     --perfci-schedule=pipeline|serial a type is launched only when the session asks
                     for it (acquire), not all at the first acquire
  readiness          a TCP connect to the SSH port every 0.1-0.25 s (cheap, no API call), then `true`
                     over SSH, then cloud-init's own wait: ready is seen within ~0.25 s of sshd accepting
  release(target)    one type's instance terminated right after its last test, through the same cleanup
                     engine and ledger as release_all (entries narrowed to that type)
  heartbeat          a thread pushing perfci:expires-at and the on-host deadline forward
  pairs              when collected tests use the `topology` fixture (declare_pairs) or --perfci-server-type
                     is given: per target a cluster placement group, the target (the client) and a server
                     launched into it (same AZ), and one security group rule opening the test ports
                     between members of the run's group only
release_all() stops the heartbeat, lets in-flight provisioning threads finish (they stop at their
next step), then runs the cleanup engine's teardown() on the run's ledger (cleanup/engine.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from botocore.parsers import ResponseParserError

from pytest_perfci.aws.clients import client, session, teardown_config
from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import Context
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.cleanup.model import Report
from pytest_perfci.hosts.base import Host
from pytest_perfci.hosts.result import AuthenticationFailed, HostError, HostUnreachable
from pytest_perfci.hosts.ssh import HostKeyRejected, SSHHost, parse_destination, port_accepts
from pytest_perfci.models.instance_query import Resolution, resolve
from pytest_perfci.models.instance_types import InstanceTypeInfo
from pytest_perfci.models.preparation import Preparation
from pytest_perfci.prepare import host as prepare_host
from pytest_perfci.prepare.script import boot_snippet
from pytest_perfci.progress import status
from pytest_perfci.providers.base import (
    KeptHost,
    Pair,
    Provider,
    ProviderContext,
    Target,
    TargetUnavailable,
    WorkerHandle,
)
from pytest_perfci.providers.ec2 import claim, clock, network, userdata
from pytest_perfci.providers.ec2.ami import AmiResolver, Image
from pytest_perfci.providers.ec2.catalog import Catalog
from pytest_perfci.providers.ec2.launch import LaunchError, LaunchSpec, launch, wait_running
from pytest_perfci.retry import backoff
from pytest_perfci.settings import Settings
from pytest_perfci.tags import TAG_EXPIRES, TAG_ROLE

Progress = Callable[[str], None]
AddressFn = Callable[[dict[str, Any]], str | None]


class EC2SetupError(RuntimeError):
    """Validation or provisioning failed before/while creating; str() is one line."""


class NoCredentials(EC2SetupError):
    pass


class Cancelled(EC2SetupError):
    pass


def default_address(instance: dict[str, Any]) -> str:
    """Public IP, else private IP (the hook pytest_perfci_host_address overrides this)."""
    addr = instance.get("PublicIpAddress") or instance.get("PrivateIpAddress")
    if not addr:
        raise EC2SetupError(f"{instance.get('InstanceId')} has no IP address to connect to")
    return str(addr)


def parse_address(text: str, default_user: str) -> tuple[str, str, int]:
    """What the address hook returned -> (user, host, port); a bad value is a setup error."""
    try:
        return parse_destination(text, default_user)
    except ValueError as exc:
        raise EC2SetupError(f"pytest_perfci_host_address returned {text!r}: {exc}") from None


@dataclass
class InstanceRecord:
    """What was created for one type and how to reach it (for kept hosts and summaries)."""

    instance_type: str
    instance_id: str
    zone: str
    ami: str
    user: str
    address: str
    port: int
    key_path: str
    known_hosts: str
    state: str = "running"
    volume_ids: tuple[str, ...] = ()  # EBS volumes (the root): the heartbeat moves their expires-at too
    private_address: str = ""  # the VPC address: a pair's test traffic goes here
    role: str = ""  # "client" or "server" in a client/server pair

    @property
    def ssh_command(self) -> str:
        port = f" -p {self.port}" if self.port != 22 else ""
        return (f"ssh -i {self.key_path}{port} -o UserKnownHostsFile={self.known_hosts} "
                f"{self.user}@{self.address}")


class EC2Provider(Provider):
    name = "ec2"
    creates_resources = True
    shares_hosts = True

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Ledger,
        address: AddressFn | None = None,
        progress: Progress = print,
        known_hosts_dir: Path | None = None,
        suite: str = "",
        public_address: Callable[[], str] = network.checkip,
        ssh_ready_timeout: float = 600.0,
        ssh_connect_timeout: float = 10.0,
        heartbeat_interval: float | None = None,
        waiter_delay: int = 5,
        max_workers: int = 16,
        host_state_dir: str = userdata.STATE_DIR,
        claim_run_id: bool = True,
        teardown_deadline: float = 300.0,
        teardown_read_timeout: float = 15.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.address = address or default_address
        self.progress = progress
        self.key_dir = Path(settings.results) / ".keys"
        self.known_hosts_dir = known_hosts_dir or self.key_dir
        self.suite = suite
        self.public_address = public_address
        self.ssh_ready_timeout = ssh_ready_timeout
        self.ssh_connect_timeout = ssh_connect_timeout
        ttl: timedelta = settings.ttl
        self.heartbeat_interval = heartbeat_interval or min(600.0, ttl.total_seconds() / 4)
        self.waiter_delay = waiter_delay
        self.max_workers = max_workers
        self.host_state_dir = host_state_dir
        self.run_id = settings.run_id
        self.teardown_deadline = teardown_deadline          # the whole teardown, waits included
        self.teardown_read_timeout = teardown_read_timeout  # one API call's read (x3 attempts)
        self.clock = clock  # this machine's clock, checked against AWS's Date header before any create
        self.claim_run_id = claim_run_id  # False for `perfci plan`, which creates nothing
        self._run_lock = claim.RunLock(Path(settings.results), settings.run_id)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ec2: Any = None
        self._teardown: tuple[tuple[str | None, float], Any] | None = None
        self._ssm: Any = None
        self._region: str | None = None
        self._plan: dict[str, tuple[InstanceTypeInfo, Image]] | None = None
        self._resolution: Resolution | None = None
        self._catalog: Catalog | None = None
        self._cidr: str | None = None
        self._futures: dict[str, Future[SSHHost]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._key: network.KeyPair | None = None
        self._group_id: str | None = None
        self._records: dict[str, InstanceRecord] = {}
        self._hosts: dict[str, SSHHost] = {}
        self._heartbeat: userdata.Heartbeat | None = None
        self._start_error: BaseException | None = None
        self._needs: tuple[str, ...] = ()
        # client/server pairs (the topology fixture): per target type its placement group and server
        self._pairs_declared = False
        self._server_plan: tuple[InstanceTypeInfo, Image] | None = None
        self._groups: dict[str, tuple[str, str]] = {}  # target type -> (placement group name, id)
        self._servers: dict[str, SSHHost] = {}
        self._server_records: dict[str, InstanceRecord] = {}
        self._pair_errors: dict[str, str] = {}
        self._handles: dict[str, WorkerHandle] = {}  # xdist worker: what the controller exported
        self._tags: list[dict[str, str]] = []
        self._released: set[str] = set()  # types released early: not launched (again), provisioning cancelled

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> EC2Provider:
        ledger = Ledger(Path(settings.results) / "ledger.jsonl")
        return cls(settings, ledger=ledger, address=context.address, progress=context.progress,
                   suite=context.suite)

    # -- Provider contract ---------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        """One target per resolved real type, named for it; the alias or query stays in `requested`.

        Costs the region's catalogue listing (cached for the process; an xdist worker adopts the
        controller's resolution instead) and creates nothing.
        """
        return [Target(name=r.info.name, provider=self.name, instance_type=r.info.name, requested=r.requested)
                for r in self.resolution().types]

    def resolution(self) -> Resolution:
        """--instance-type items -> real types (one catalogue listing per region); cached. Errors are one line."""
        with self._lock:
            if self._resolution is None:
                with self._api_errors():
                    self._clients()
                    self._catalog = catalog = Catalog(self._ec2)
                    items = self.settings.instance_types
                    offered = catalog.offered() if any("=" in i for i in items) else None
                    self._resolution = resolve(items, catalog.all(), region=catalog.region,
                                               max_types=self.settings.max_types, offered=offered)
                for note in self._resolution.notes:
                    self.progress(note)
            return self._resolution

    def export_resolution(self) -> list[dict[str, Any]]:
        """xdist controller: the resolved types, so workers name the same targets without an API call."""
        return self.resolution().to_json()

    def adopt_resolution(self, data: list[dict[str, Any]]) -> None:
        """xdist worker: use the controller's resolution (see export_resolution)."""
        with self._lock:
            self._resolution = Resolution.from_json(data)

    def known_instance_types(self) -> Collection[str]:
        """The region's catalogue (one listing per process, shared with resolution)."""
        with self._api_errors():
            self._clients()
            with self._lock:
                if self._catalog is None:
                    self._catalog = Catalog(self._ec2)
            return self._catalog.all().keys()

    def type_info(self, target: Target) -> InstanceTypeInfo | None:
        """Catalogue facts of a target's type (for instance_type query markers), None if not resolved here."""
        name = target.instance_type or target.name
        for r in self.resolution().types:
            if r.info.name == name:
                return r.info
        if self._server_plan is not None and self._server_plan[0].name == name:
            return self._server_plan[0]
        return None

    def acquire(self, target: Target) -> SSHHost:
        """The ready host for target's type. Under --perfci-schedule=parallel the first call starts
        provisioning of every type at once; otherwise only this type is launched.

        Raises CapacityUnavailable (skip that type's tests), QuotaExceeded, LaunchError, EC2SetupError.
        """
        itype = target.instance_type or target.name
        self._start()
        return self._submit(itype).result()

    def _submit(self, itype: str) -> Future[SSHHost]:
        """This type's provisioning future, submitted now if it was not yet."""
        assert self._plan is not None and self._executor is not None
        with self._lock:
            if itype not in self._futures:
                if itype not in self._plan:
                    raise EC2SetupError(f"{itype} was not requested (requested: {', '.join(self._plan)})")
                if itype in self._released:
                    raise Cancelled(f"{itype} was released after its last test; not launching it again")
                info, image = self._plan[itype]
                self._futures[itype] = self._executor.submit(self._provision, info, image, self._tags)
            return self._futures[itype]

    def release(self, target: Target) -> Report | None:
        """Terminate this type's instance now (its last test ran): provisioning in flight is cancelled
        at its next step and waited for, then the cleanup engine deletes the type's ledger entries of
        this process, as release_all would. Idempotent."""
        itype = target.instance_type or target.name
        with self._lock:
            self._released.add(itype)
            future = self._futures.get(itype)
        if future is not None:
            with contextlib.suppress(Exception):  # a failed or cancelled launch still leaves ledger lines
                future.result()
        host = self._hosts.pop(itype, None)
        if host is not None:
            with contextlib.suppress(Exception):
                host.close()

        server = self._servers.pop(itype, None)
        if server is not None:
            with contextlib.suppress(Exception):
                server.close()
        # the type's instance and its pair's server, by the Name tag of their launch intents (a server may be
        # of another target's type), then every line of those launches by their client token
        names = {f"{self.run_id}-{itype}", f"{self.run_id}-{itype}-server"}
        tokens = {e.token for e in self.ledger.entries()
                  if e.run_id == self.run_id and e.kind == "intent" and e.resource == "instance" and e.token
                  and any(t.get("Key") == "Name" and t.get("Value") in names for t in e.data.get("tags") or [])}

        # and the pair's cluster placement group (by name, its ledger token): empty once both instances are
        # gone, so it goes in the same teardown, after them (the kinds' order), not at the session's end
        group = self._groups.get(itype, ("", ""))[0]

        def mine(entry: Any) -> bool:
            return bool((entry.resource == "instance" and entry.token in tokens)
                        or (group and entry.resource == "placement_group" and entry.token == group))

        if not any(mine(e) for e in self.ledger.outstanding(self.run_id, pid=os.getpid())):
            return None
        ctx = Context(self.teardown_ec2, progress=self.progress, key_dir=self.key_dir,
                      waiter_delay=self.waiter_delay, deadline=time.monotonic() + self.teardown_deadline)
        report = engine.teardown(ctx, self.ledger, self.run_id, pid=os.getpid(), only=mine,
                                 prefix=f"release {itype}: ")
        for record in (self._records.get(itype), self._server_records.get(itype)):
            if record is not None:
                record.state = "terminated"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(record.known_hosts)
        return report

    def export(self, target: Target) -> WorkerHandle:
        """xdist controller: bring the type up here and describe how a worker reaches it."""
        itype = target.instance_type or target.name
        self.acquire(target)
        rec = self._records[itype]
        return WorkerHandle(
            target=target.name, address=rec.address, port=rec.port, user=rec.user, key_path=rec.key_path,
            known_hosts=rec.known_hosts, instance_type=rec.instance_type, instance_id=rec.instance_id,
            zone=rec.zone or None, region=self.region, ami=rec.ami, extra=self._pair_extra(itype),
        )

    def _pair_extra(self, itype: str) -> dict[str, str]:
        """The pair's server, for a worker's `pair` (WorkerHandle.extra); {} when no pairs were asked for."""
        if not self.pairs_wanted:
            return {}
        if itype in self._pair_errors or itype not in self._server_records:
            return {"pair_unavailable": self._pair_errors.get(itype, "no server was provisioned")}
        srv, rec = self._server_records[itype], self._records[itype]
        return {"server_address": srv.address, "server_port": str(srv.port), "server_user": srv.user,
                "server_known_hosts": srv.known_hosts, "server_private": srv.private_address,
                "server_type": srv.instance_type, "client_private": rec.private_address,
                "placement_group": self._groups.get(itype, ("", ""))[0]}

    def attach(self, target: Target, handle: WorkerHandle) -> SSHHost:
        """xdist worker: its own connection to an instance the controller created (and will destroy)."""
        self._handles[target.name] = handle
        return SSHHost(
            target.name, handle.address, user=handle.user, port=handle.port,
            key_filename=handle.key_path, connect_timeout=self.ssh_connect_timeout,
            known_hosts=handle.known_hosts, host_key_policy="reject",
            instance_type=handle.instance_type, region=handle.region, ami=handle.ami,
        )

    # -- client/server pairs -------------------------------------------------------------------------

    @property
    def pairs_wanted(self) -> bool:
        """Servers are launched beside the targets: tests use `topology` (under xdist the controller hears it
        from the first worker's ask, handoff.py), or --perfci-server-type says so."""
        return self._pairs_declared or self.settings.server_type is not None

    def declare_pairs(self) -> None:
        """Collected tests use `topology`: each target gets a placement group and a server (before any launch)."""
        self._pairs_declared = True

    def pair(self, target: Target) -> Pair:
        """The target's instance (client) and the server launched beside it in one cluster placement group."""
        itype = target.instance_type or target.name
        handle = self._handles.get(target.name)
        if handle is not None:
            return self._attach_pair(target, handle)
        if not self.pairs_wanted:
            raise TargetUnavailable("no server was launched for it (pairs are launched when collected tests use "
                                    "`topology`, or with --perfci-server-type)")
        client = self.acquire(target)
        if itype in self._pair_errors or itype not in self._servers:
            raise TargetUnavailable(self._pair_errors.get(itype, "its server was not provisioned"))
        rec, srv = self._records[itype], self._server_records[itype]
        group = self._groups[itype][0]
        return Pair(target=target.name, client=client, server=self._servers[itype],
                    client_address=rec.private_address, server_address=srv.private_address,
                    link=f"cluster placement group {group} in {rec.zone}: {rec.instance_id} -> {srv.instance_id}",
                    ports=network.PAIR_PORTS, client_type=itype, server_type=srv.instance_type,
                    placement_group=group)

    def _attach_pair(self, target: Target, handle: WorkerHandle) -> Pair:
        extra = handle.extra
        if "server_address" not in extra:
            raise TargetUnavailable(extra.get("pair_unavailable") or "the controller launched no server for it "
                                    "(under xdist pass --perfci-server-type, even the target's own type)")
        client = self.attach(target, handle)
        server = SSHHost(
            f"{target.name}-server", extra["server_address"], user=extra["server_user"],
            port=int(extra["server_port"]), key_filename=handle.key_path, connect_timeout=self.ssh_connect_timeout,
            known_hosts=extra["server_known_hosts"], host_key_policy="reject",
            instance_type=extra["server_type"], region=handle.region,
        )
        group = extra.get("placement_group", "")
        return Pair(target=target.name, client=client, server=server, client_address=extra["client_private"],
                    server_address=extra["server_private"], link=f"cluster placement group {group} in {handle.zone}",
                    ports=network.PAIR_PORTS, client_type=handle.instance_type, server_type=extra["server_type"],
                    placement_group=group or None)

    def declare_needs(self, needs: tuple[str, ...]) -> None:
        """Install these at boot (user data); the cloud-init wait then covers the install."""
        self._needs = tuple(needs)

    def prepare(self, host: Host, needs: tuple[str, ...], *, allowed: bool) -> Preparation:
        """This run created the machine, so it is prepared unasked: what the boot installed (read from the
        host), and over SSH whatever the boot was not told about (e.g. xdist: hosts came up before collection)."""
        booted = prepare_host.read_boot(host, state_file=f"{self.host_state_dir}/prepared")
        rest = tuple(n for n in needs if booted.get(n) is None)
        if not rest:
            return booted
        late = "prepared-late" if booted.items else "prepared"
        later = prepare_host.run(host, rest, "install", state_file=f"{self.host_state_dir}/{late}")
        return Preparation(host=host.name, items=booted.items + later.items)

    def zone(self, target: Target) -> str | None:
        """The availability zone the target's instance launched in (None before it did)."""
        record = self._records.get(target.instance_type or target.name)
        return (record.zone or None) if record is not None else None

    def keep(self) -> None:
        """--perfci-keep: stop the heartbeat so perfci:expires-at stops moving; the self-destruct still fires."""
        if self._heartbeat is not None:
            self._heartbeat.stop()

    def kept(self) -> list[KeptHost]:
        """Instances left up by a kept run, with perfci:expires-at as EC2 lists it now."""
        records = [r for r in self.instances() if r.state != "terminated"]
        expires = self._expires([r.instance_id for r in records])
        return [KeptHost(name=f"{r.instance_type} ({r.role})" if r.role else r.instance_type, resource_id=r.instance_id, ssh_command=r.ssh_command,
                         expires_at=expires.get(r.instance_id), key_path=r.key_path) for r in records]

    def _expires(self, ids: list[str]) -> dict[str, str]:
        """instance id -> perfci:expires-at as EC2 lists it now (the heartbeat's last push); {} if unknown."""
        out: dict[str, str] = {}
        if not ids:
            return out
        with contextlib.suppress(Exception):  # the summary must not fail a run over a describe call
            pages = self.ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": ids}]
            )
            for page in pages:
                for res in page.get("Reservations", []):
                    for inst in res.get("Instances", []):
                        tags = {t["Key"]: t.get("Value", "") for t in inst.get("Tags", []) or []}
                        if TAG_EXPIRES in tags:
                            out[inst["InstanceId"]] = tags[TAG_EXPIRES]
        return out

    def release_all(self) -> Report | None:
        """Stop the heartbeat, let provisioning threads stop, destroy everything in the ledger."""
        self._closing.set()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for host in [*self._hosts.values(), *self._servers.values()]:
            with contextlib.suppress(Exception):  # closing must not prevent teardown
                host.close()
        try:
            # Only what this process recorded: another process's lines under the same run id are not ours.
            if not self.ledger.outstanding(self.run_id, pid=os.getpid()):
                self._remove_known_hosts()
                return None
            ctx = Context(self.teardown_ec2, progress=self.progress, key_dir=self.key_dir,
                          waiter_delay=self.waiter_delay, deadline=time.monotonic() + self.teardown_deadline)
            report = engine.teardown(ctx, self.ledger, self.run_id, pid=os.getpid())
            self._remove_known_hosts()
            for rec in [*self._records.values(), *self._server_records.values()]:
                rec.state = "terminated"
            return report
        finally:
            self._run_lock.release()

    # -- clients and validation -----------------------------------------------------------------------

    @property
    def teardown_ec2(self) -> Any:
        """The EC2 client teardown deletes with: short timeouts, few attempts (aws/clients.teardown_config),
        so a hung endpoint fails each call in under a minute instead of holding the shielded teardown
        ~700 s. Made again when the endpoint changes."""
        self._clients()
        key = (self.settings.endpoint_url, self.teardown_read_timeout)
        if self._teardown is None or self._teardown[0] != key:
            self._teardown = (key, client(session(self._region), "ec2", self.settings.endpoint_url,
                                          config=teardown_config(read_timeout=self.teardown_read_timeout)))
        return self._teardown[1]

    def _clients(self) -> None:
        if self._ec2 is not None:
            return
        sess = session(self.settings.region)
        region = sess.region_name
        if not region:
            raise EC2SetupError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
        try:
            creds = sess.get_credentials()
        except (BotoCoreError, ValueError) as e:
            raise NoCredentials(f"AWS credentials could not be loaded: {e}") from None
        if creds is None:
            raise NoCredentials(
                "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
                "or run `aws sso login`"
            )
        self._region = region
        self._ssm = client(sess, "ssm", self.settings.endpoint_url)
        self._ec2 = client(sess, "ec2", self.settings.endpoint_url)

    @property
    def ec2(self) -> Any:
        self._clients()
        return self._ec2

    @property
    def region(self) -> str:
        self._clients()
        assert self._region is not None
        return self._region

    def validate(self) -> dict[str, tuple[InstanceTypeInfo, Image]]:
        """Every check that needs the API, before any create; cached. Errors are one line."""
        resolution = self.resolution()
        with self._lock:
            if self._plan is not None:
                return self._plan
            with self._api_errors():
                infos = [r.info for r in resolution.types]
                resolver = AmiResolver(self._ec2, self._ssm, self.settings.ami, self.settings.ssh_user)
                plan = {info.name: (info, resolver.for_type(info)) for info in infos}
                if self.settings.server_type is not None:
                    assert self._catalog is not None
                    server = self._catalog.resolve([self.settings.server_type])[0]  # unknown: closest names
                    self._server_plan = (server, resolver.for_type(server))
                self._cidr = network.default_cidr(
                    self.settings.ssh_cidr, self._ec2.meta.endpoint_url, self.public_address
                )
                if self.claim_run_id:
                    clock.check(self._ec2, self.clock)
                    self._claim()
            for info, image in plan.values():
                self.progress(f"{info.name}: {info.arch}, {info.vcpus} vCPU, {info.memory_mib // 1024} GiB"
                              f"{', metal' if info.metal else ''}; AMI {image.ami} ({image.name}, from "
                              f"{image.source}), user {image.user}")
            self._plan = plan
            return plan

    def _claim(self) -> None:
        """Refuse a run id another live run uses (see claim.py); the lock is held until release_all()."""
        self._run_lock.acquire()
        try:
            claim.refuse_if_live(Context(self._ec2), self.run_id)
        except BaseException:
            self._run_lock.release()
            raise

    @contextlib.contextmanager
    def _api_errors(self) -> Iterator[None]:
        """API failures during resolution/validation -> one-line EC2SetupError naming what to fix."""
        try:
            yield
        except NoCredentialsError:
            raise NoCredentials("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                                "AWS_SECRET_ACCESS_KEY, or run `aws sso login`") from None
        except NoRegionError:
            raise EC2SetupError("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None
        except ClientError as e:
            err = e.response.get("Error", {})
            raise EC2SetupError(
                f"EC2 refused validation in {self._region}: {err.get('Code')}: {err.get('Message')}"
            ) from None
        except (BotoCoreError, ResponseParserError) as e:
            # An unknown region has no endpoint (or, behind a proxy, answers nonsense): name the value.
            raise EC2SetupError(
                f"cannot reach EC2 in region {self._region!r} (check --region): {str(e).splitlines()[0]}"
            ) from None

    # -- provisioning ---------------------------------------------------------------------------------

    def _start(self) -> None:
        plan = self.validate()
        with self._lock:
            if self._executor is not None:
                return
            if self._start_error is not None:  # never re-create shared resources after a half-done start
                raise self._start_error
            if self._closing.is_set():
                raise Cancelled("provider is releasing; not provisioning")
            try:
                self._start_locked(plan)
            except ClientError as e:
                err = e.response.get("Error", {})
                self._start_error = EC2SetupError(
                    f"setting up the run's key pair/security group failed: {err.get('Code')}: {err.get('Message')}"
                )
                raise self._start_error from None
            except BaseException as e:
                self._start_error = e
                raise

    def _start_locked(self, plan: dict[str, tuple[InstanceTypeInfo, Image]]) -> None:
        """Shared per-run access, the heartbeat, and one provisioning thread per type."""
        expires = network.expires_at(self.settings.ttl, self.clock())  # until readiness restarts it
        tags = network.make_tags(self.run_id, self.settings.owner, expires, self.suite, f"{self.run_id}")
        vpc = network.default_vpc(self._ec2)
        self._key = network.create_key_pair(
            self._ec2, self.ledger, run_id=self.run_id, region=self.region, key_dir=self.key_dir, tags=tags
        )
        assert self._cidr is not None
        self._group_id = network.create_security_group(
            self._ec2, self.ledger, run_id=self.run_id, region=self.region, vpc_id=vpc,
            cidr=self._cidr, tags=tags,
        )
        self.progress(f"perfci {self.run_id}: SSH allowed from {self._cidr} only; expires {expires}")
        if self.pairs_wanted:
            network.allow_within_group(self._ec2, self._group_id, self.run_id)
            self.progress(f"perfci {self.run_id}: TCP {network.PAIR_PORTS[0]}-{network.PAIR_PORTS[1]} open between "
                          f"the run's instances only (security group {self._group_id} as the source)")
        self._subnets = network.subnets_by_zone(self._ec2, vpc)
        self._heartbeat = userdata.Heartbeat(
            self._ec2,
            ttl=self.settings.ttl,
            interval=self.heartbeat_interval,
            resources=self._tagged_ids,
            hosts=lambda: [*self._hosts.values(), *self._servers.values()],
            progress=self.progress,
            state_dir=self.host_state_dir,
            clock=self.clock,
        ).start()
        self._executor = ThreadPoolExecutor(max_workers=min(self.max_workers, max(1, len(plan))),
                                            thread_name_prefix="perfci-ec2")
        self._tags = tags
        if self.settings.schedule == "parallel":  # all at once; pipeline/serial launch on demand (_submit)
            for itype, (info, image) in plan.items():
                self._futures[itype] = self._executor.submit(self._provision, info, image, tags)

    def _tagged_ids(self) -> list[str]:
        live = [r for r in [*self._records.values(), *self._server_records.values()] if r.state != "terminated"]
        ids = [r.instance_id for r in live] + [v for r in live for v in r.volume_ids]
        ids += [group_id for _, group_id in self._groups.values() if group_id]
        if self._group_id:
            ids.append(self._group_id)
        if self._key and self._key.key_id:
            ids.append(self._key.key_id)
        return ids

    def _check(self, what: str, itype: str | None = None) -> None:
        if self._closing.is_set():
            raise Cancelled(f"cancelled before {what}: the provider is releasing")
        if itype is not None and itype in self._released:
            raise Cancelled(f"cancelled before {what}: {itype} was released")

    def _provision(self, info: InstanceTypeInfo, image: Image, base_tags: list[dict[str, str]]) -> SSHHost:
        itype = info.name
        assert self._key is not None and self._group_id is not None and self._catalog is not None
        pairs = self.pairs_wanted
        tags = [t if t["Key"] != "Name" else {"Key": "Name", "Value": f"{self.run_id}-{itype}"} for t in base_tags]
        group = None
        if pairs:
            self._check(f"creating the placement group of {itype}")
            group, group_id = network.create_placement_group(
                self._ec2, self.ledger, run_id=self.run_id, region=self.region, name=f"{self.run_id}-{itype}",
                tags=tags)
            self._groups[itype] = (group, group_id)
            self.progress(f"{itype}: cluster placement group {group} ({group_id}) for its client and server")
            tags = [*tags, {"Key": TAG_ROLE, "Value": "client"}]
        spec = LaunchSpec(
            instance_type=itype,
            image_id=image.ami,
            root_device=image.root_device,
            key_name=self._key.name,
            security_group_id=self._group_id,
            placements=network.placements(self._catalog.zones_offering(itype), self._subnets),
            user_data=userdata.render(ttl=self.settings.ttl, prepare=boot_snippet(self._needs, self.host_state_dir)),
            tags=tags,
            root_volume_gb=max(self.settings.root_volume_gb, image.min_root_gb),
            spot=self.settings.spot,
            placement_group=group,
        )
        self._check(f"launching {itype}", itype)
        started = time.monotonic()
        inst = launch(self._ec2, self.ledger, spec, run_id=self.run_id, region=self.region,
                      progress=self.progress)
        iid = inst["InstanceId"]
        server_id = self._launch_server(itype, spec, inst) if pairs else None
        waiting = {iid: itype, **({server_id: f"{itype} server"} if server_id else {})}
        running = wait_running(self._ec2, waiting, progress=self.progress, delay=self.waiter_delay)
        ssh = self._reach(itype, itype, running[iid], image, started, role="client" if pairs else "",
                          store=lambda rec: self._records.__setitem__(itype, rec))
        self._hosts[itype] = ssh
        if server_id is not None:
            server_info, server_image = self._server_plan or (info, image)
            try:
                self._servers[itype] = self._reach(
                    f"{itype}-server", server_info.name, running[server_id], server_image, started, role="server",
                    store=lambda rec: self._server_records.__setitem__(itype, rec))
            except (EC2SetupError, HostError) as exc:
                self._pair_errors[itype] = f"server {server_id}: {exc}"
        return ssh

    def _launch_server(self, itype: str, client: LaunchSpec, inst: dict[str, Any]) -> str | None:
        """The pair's server: --perfci-server-type (default the target's type), into the client's placement
        group and AZ. A failure only makes the pair unavailable (tests on the target itself go on)."""
        info, image = self._server_plan or (None, None)
        zone = str(inst.get("Placement", {}).get("AvailabilityZone", ""))
        tags = [{"Key": "Name", "Value": f"{self.run_id}-{itype}-server"} if t["Key"] == "Name"
                else {"Key": TAG_ROLE, "Value": "server"} if t["Key"] == TAG_ROLE else t for t in client.tags]
        spec = dataclasses.replace(
            client, tags=tags, placements=[(zone, self._subnets[zone])] if zone in self._subnets else [],
            spot=False,  # a server reclaimed mid-measurement measures nothing
        )
        if info is not None and image is not None:
            spec = dataclasses.replace(spec, instance_type=info.name, image_id=image.ami,
                                       root_device=image.root_device)
        self._check(f"launching the server of {itype}", itype)
        try:
            server = launch(self._ec2, self.ledger, spec, run_id=self.run_id, region=self.region,
                            progress=self.progress)
        except LaunchError as exc:
            self._pair_errors[itype] = f"server {spec.instance_type} in {zone}: {exc}"
            self.progress(f"{itype}: no server: {exc}")
            return None
        return str(server["InstanceId"])

    def _reach(self, name: str, itype: str, described: dict[str, Any], image: Image, started: float, *,
               role: str, store: Callable[[InstanceRecord], None]) -> SSHHost:
        """Record a running instance (`store`, before any wait: the heartbeat and --perfci-keep see it at
        once) and wait until SSH and cloud-init are done on it."""
        assert self._key is not None
        iid = described["InstanceId"]
        user, host, port = parse_address(self.address(described) or default_address(described), image.user)
        known_hosts = Path(self.known_hosts_dir) / f"{iid}.known_hosts"
        record = InstanceRecord(
            instance_type=itype, instance_id=iid, zone=described.get("Placement", {}).get("AvailabilityZone", ""),
            ami=image.ami, user=user, address=host, port=port, key_path=str(self._key.path),
            known_hosts=str(known_hosts),
            volume_ids=tuple(str(m["Ebs"]["VolumeId"]) for m in described.get("BlockDeviceMappings", [])
                             if m.get("Ebs", {}).get("VolumeId")),
            private_address=str(described.get("PrivateIpAddress", "")), role=role,
        )
        store(record)
        self._check(f"connecting to {name}", itype)
        ssh = SSHHost(
            name, host, user=user, port=port, key_filename=self._key.path,
            connect_timeout=self.ssh_connect_timeout, known_hosts=known_hosts, host_key_policy="accept-new",
            instance_type=itype, region=self.region, ami=image.ami,
        )
        self.progress(f"{name} {iid}: host key accepted on first use (accept-new, saved to {known_hosts}); "
                      "console-output fingerprints are not checked")
        self._wait_ssh(ssh, name, iid, started)
        self._wait_cloud_init(ssh, name, iid, started)
        assert self._heartbeat is not None
        until = self._heartbeat.ready(ssh, [iid, *record.volume_ids])  # the TTL counts from readiness
        self.progress(f"{name} {iid}: self-destruct at {until:%Y-%m-%dT%H:%M:%SZ} (ready + TTL)")
        took = time.monotonic() - started
        self.progress(status(name, f"{iid} ready ({user}@{host}:{port})", took,
                             text=f"{name} {iid} ready {took:.0f}s ({user}@{host}:{port})"))
        return ssh

    def _wait_ssh(self, ssh: SSHHost, itype: str, iid: str, started: float) -> None:
        """Until `true` works over SSH, within ssh_ready_timeout.

        First a TCP connect to the SSH port every 0.1-0.25 s: a refused or unanswered connect costs
        nothing (no API call, no handshake), so the moment sshd accepts is noticed within ~0.25 s
        instead of after an SSH backoff step (1, 2, 4 s: a host listening at 3 s was seen at 7.8 s).
        Then the SSH handshake and `true`, retried at 0.25 s doubling to 2 s (keys not installed yet).
        """
        budget_end = time.monotonic() + self.ssh_ready_timeout
        last_line = [0.0]

        def not_up_yet(e: BaseException) -> bool:
            return isinstance(e, (HostUnreachable, AuthenticationFailed)) and not isinstance(e, HostKeyRejected)

        def waiting(e: BaseException, _delay: float, n: int) -> None:
            now = time.monotonic()
            if n == 1 or now - last_line[0] >= 10.0:  # one line at first, then every 10 s: not per probe
                last_line[0] = now
                took = now - started
                self.progress(status(itype, f"{iid} ssh-wait ({type(e).__name__})", took,
                                     text=f"{itype} {iid} ssh-wait {took:.0f}s ({type(e).__name__})"))

        def listening() -> None:
            self._check(f"SSH to {itype}", itype)
            port_accepts(ssh, min(1.0, self.ssh_connect_timeout))

        def attempt() -> None:
            self._check(f"SSH to {itype}", itype)
            ssh.run("true", timeout=max(5.0, self.ssh_connect_timeout * 3))

        try:
            backoff(not_up_yet, first=0.1, cap=0.25, within=self.ssh_ready_timeout, on_retry=waiting)(listening)
            left = max(1.0, budget_end - time.monotonic())
            backoff(not_up_yet, first=0.25, cap=2.0, within=left, on_retry=waiting)(attempt)
        except HostKeyRejected:
            raise
        except (HostUnreachable, AuthenticationFailed) as e:
            raise EC2SetupError(f"{itype} {iid}: SSH not ready after {self.ssh_ready_timeout:.0f}s: {e}") from None

    def _wait_cloud_init(self, ssh: SSHHost, itype: str, iid: str, started: float) -> None:
        script = ("if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1; "
                  "echo \"cloud-init $?\"; else echo absent; fi")
        try:
            out = ssh.run(script, timeout=self.ssh_ready_timeout, check=False).stdout.strip()
        except HostError as e:
            raise EC2SetupError(f"{itype} {iid}: waiting for cloud-init failed: {e}") from None
        elapsed = time.monotonic() - started
        if out == "absent":
            self.progress(status(itype, f"{iid} ssh ready, no cloud-init", elapsed,
                                 text=f"{itype} {iid}: no cloud-init on the host; not waiting for it ({elapsed:.0f}s)"))
        elif out in ("cloud-init 0", "cloud-init 2"):  # 2 = finished with recoverable errors
            self.progress(status(itype, f"{iid} ssh ready, cloud-init done ({out.split()[1]})", elapsed,
                                 text=f"{itype} {iid}: cloud-init done ({out.split()[1]}) {elapsed:.0f}s"))
        else:
            self.progress(f"{itype} {iid}: cloud-init reported {out!r}; continuing {elapsed:.0f}s")

    # -- reporting ------------------------------------------------------------------------------------

    def instances(self) -> list[InstanceRecord]:
        """What this provider created (and how to reach each host), in the order types were requested."""
        names = self._resolution.names if self._resolution is not None else []
        order = {t: i for i, t in enumerate(names)}
        clients = sorted(self._records.items(), key=lambda kv: order.get(kv[0], len(order)))
        # each target's record, then its pair's server (when it has one)
        return [r for itype, rec in clients for r in (rec, self._server_records.get(itype)) if r is not None]

    def _remove_known_hosts(self) -> None:
        for rec in [*self._records.values(), *self._server_records.values()]:
            try:
                os.unlink(rec.known_hosts)
            except FileNotFoundError:
                pass


__all__ = [
    "Cancelled", "EC2Provider", "EC2SetupError", "InstanceRecord", "LaunchError", "NoCredentials",
    "default_address", "parse_address",
]
