"""kops clusters: create, validate (with progress lines), export a private kubeconfig, delete.

The cluster is one resource: nodes sit in auto-scaling groups that would replace any instance
terminated alone, so teardown (and the reaper) act on the cluster with ``kops delete cluster``.

* Ledger: an ``intent`` line (id = cluster name) before ``kops create cluster``, ``created`` after,
  ``deleted`` once ``kops delete cluster`` succeeded or found it gone; so a SIGKILLed run leaves a
  ledger entry ``perfci reap --ledger`` acts on.
* Tags: ``--cloud-labels`` put perfci:run-id / owner / expires-at (and the state store) on every
  cloud resource kops creates, so ``perfci reap --expired`` finds the cluster by its instances.
* Cleanup: :class:`ClusterKind` is the cleanup engine's ``cluster`` kind (registered by name in
  cleanup/kinds.py); :meth:`KopsCluster.delete` runs the same engine on the run's ledger as
  ``perfci reap --ledger`` does. Delete is retried (the shared policy), idempotent ("not found" is
  success) and runs shielded from SIGINT/SIGTERM.

Output formats (kops cmd/kops/validate_cluster.go): ``validate cluster -o json`` writes one JSON
object per attempt with no separator (``{"failures":[...],"nodes":[...]}{"nodes":[...]}``), retry
warnings go to stderr; exit 0 when ready, 2 when the last attempt had failures, 1 on an error such
as "wait time exceeded during validation".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pytest_perfci import retry
from pytest_perfci.cleanup import engine
from pytest_perfci.cleanup.kinds import Context, ResourceKind
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.cleanup.model import Described, Orphan, Outcome
from pytest_perfci.cleanup.signals import shielded
from pytest_perfci.procs import stop_process
from pytest_perfci.progress import status
from pytest_perfci.providers.base import Provider, ProviderContext, Target, TargetUnavailable
from pytest_perfci.settings import Settings
from pytest_perfci.tags import (
    TAG_EXPIRES,
    TAG_KOPS_CLUSTER,
    TAG_KOPS_STATE,
    TAG_OWNER,
    TAG_RUN_ID,
    TAG_SUITE,
    stamp,
)

Progress = Callable[[str], None]


class KopsError(RuntimeError):
    """A kops command failed; str() is one line naming the command and kops' own last words."""


class ClusterNotReady(KopsError):
    """``kops validate cluster`` never succeeded; ``failures`` is the last attempt's list."""

    def __init__(self, message: str, failures: list[dict[str, Any]]):
        super().__init__(message)
        self.failures = failures


# --- pure helpers ---------------------------------------------------------------------------------


def parse_validate_output(text: str) -> list[dict[str, Any]]:
    """Every JSON object in ``kops validate cluster -o json`` output, in order (they are concatenated)."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(text):
        start = text.find("{", i)
        if start < 0:
            break
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
        i = end
    return out


def split_json_stream(text: str) -> tuple[list[dict[str, Any]], str]:
    """Complete JSON objects at the start of a growing buffer, and the incomplete rest."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while True:
        start = text.find("{", i)
        if start < 0:
            return out, ""
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            return out, text[start:]
        if isinstance(obj, dict):
            out.append(obj)
        i = end


def describe_failures(failures: Sequence[dict[str, Any]], limit: int = 3) -> str:
    """'InstanceGroup nodes-us-east-1a: did not have enough nodes 0 vs 3; ...' (first few)."""
    parts = []
    for f in failures[:limit]:
        kind, name, msg = f.get("type", ""), f.get("name", ""), f.get("message", "")
        parts.append(f"{kind} {name}: {msg}".strip() if (kind or name) else str(msg))
    more = f"; +{len(failures) - limit} more" if len(failures) > limit else ""
    return "; ".join(parts) + more


def cloud_labels(tags: dict[str, str]) -> str:
    """kops --cloud-labels value: comma-separated key=value (neither may hold ',' or '=')."""
    for k, v in tags.items():
        if any(c in k + v for c in ",=") or not k:
            raise ValueError(f"cloud label {k}={v!r} cannot hold ',' or '='")
    return ",".join(f"{k}={v}" for k, v in tags.items())


def cluster_name(run_id: str) -> str:
    """Gossip clusters (no DNS) must end in .k8s.local."""
    return f"{run_id}.k8s.local"


def is_not_found(text: str) -> bool:
    low = text.lower()
    return "not found" in low or "no such cluster" in low


# --- configuration --------------------------------------------------------------------------------


@dataclass
class KopsConfig:
    name: str
    state: str                                  # s3://bucket[/prefix]
    zones: tuple[str, ...]
    node_count: int
    node_size: str
    control_plane_size: str | None = None
    kubernetes_version: str | None = None
    networking: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    kops: str = "kops"
    kubectl: str = "kubectl"
    validate_wait: str = "20m"
    delete_attempts: int = 4
    delete_backoff: float = 10.0
    extra_create_args: tuple[str, ...] = ()

    def create_args(self) -> list[str]:
        args = [
            self.kops, "create", "cluster",
            "--name", self.name,
            "--state", self.state,
            "--zones", ",".join(self.zones),
            "--node-count", str(self.node_count),
            "--node-size", self.node_size,
            "--dns", "none",
            "--cloud-labels", cloud_labels(self.tags),
        ]
        if self.control_plane_size:
            args += ["--control-plane-size", self.control_plane_size]
        if self.kubernetes_version:
            args += ["--kubernetes-version", self.kubernetes_version]
        if self.networking:
            args += ["--networking", self.networking]
        return [*args, *self.extra_create_args, "--yes"]

    def validate_args(self, kubeconfig: Path | None = None) -> list[str]:
        args = [self.kops, "validate", "cluster", "--name", self.name, "--state", self.state,
                "--wait", self.validate_wait, "--output", "json"]
        if kubeconfig is not None:
            args += ["--kubeconfig", str(kubeconfig)]
        return args

    def export_args(self, kubeconfig: Path) -> list[str]:
        return [self.kops, "export", "kubecfg", "--name", self.name, "--state", self.state,
                "--admin", "--kubeconfig", str(kubeconfig)]

    def delete_args(self) -> list[str]:
        return [self.kops, "delete", "cluster", "--name", self.name, "--state", self.state, "--yes"]


def state_store(explicit: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """--perfci-kops-state, else KOPS_STATE_STORE (what kops itself reads)."""
    env = dict(os.environ) if env is None else env
    value = explicit or env.get("PERFCI_KOPS_STATE") or env.get("KOPS_STATE_STORE")
    return value or None


def perfci_tags(run_id: str, owner: str, ttl: timedelta, state: str, suite: str = "cl2",
                now: datetime | None = None) -> dict[str, str]:
    expires = stamp((now or datetime.now(UTC)) + ttl)
    owner = "".join(c if c.isalnum() or c in "-_.@" else "-" for c in owner) or "-"
    return {TAG_RUN_ID: run_id, TAG_OWNER: owner, TAG_EXPIRES: expires, TAG_SUITE: suite,
            TAG_KOPS_STATE: state}


def kops_config(settings: Settings, env: Mapping[str, str] | None = None) -> KopsConfig:
    """KopsConfig from the settings' kops section, with its documented fallbacks (node size: the first
    --instance-type; state: KOPS_STATE_STORE; zones: <region>a); raises ValueError naming what is missing."""
    env = os.environ if env is None else env
    opts = settings.kops
    node_size = opts.node_size or (settings.instance_types[0] if settings.instance_types else None)
    if not node_size:
        raise ValueError("--provider=kops needs a node size: --node-size TYPE or --instance-type TYPE")
    state = state_store(opts.state, dict(env))
    if not state:
        raise ValueError("--provider=kops needs a state store: --perfci-kops-state s3://bucket or KOPS_STATE_STORE")
    region = settings.region or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
    zones = opts.zones or ((f"{region}a",) if region else ())
    if not zones:
        raise ValueError("--provider=kops needs zones: --zones us-east-1a[,...] or --region")
    return KopsConfig(
        name=cluster_name(settings.run_id), state=state, zones=zones, node_count=opts.nodes, node_size=node_size,
        control_plane_size=opts.control_plane_size, kubernetes_version=opts.k8s_version,
        networking=opts.networking, tags=perfci_tags(settings.run_id, settings.owner, settings.ttl, state),
        kops=opts.binary, validate_wait=opts.validate_wait,
    )


# --- the handle a test gets -----------------------------------------------------------------------


@dataclass
class Cluster:
    name: str
    kubeconfig: Path
    node_count: int
    node_size: str
    zones: tuple[str, ...]
    kubectl_bin: str = "kubectl"
    validation: dict[str, Any] = field(default_factory=dict)

    def kubectl(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """kubectl against this cluster only (its private kubeconfig)."""
        cmd = [self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KopsError(f"{' '.join(cmd)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
        return result


# --- lifecycle ------------------------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class KopsCluster:
    """One cluster's lifecycle. ``up()`` = create + validate + export; ``delete()`` is always safe."""

    def __init__(
        self,
        config: KopsConfig,
        *,
        run_id: str,
        ledger: Ledger,
        workdir: Path,
        region: str | None = None,
        progress: Progress = print,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.ledger = ledger
        self.workdir = workdir
        self.region = region
        self.progress = progress
        self.sleep = sleep
        self.kubeconfig = workdir / f"kubeconfig-{config.name}"
        self.create_attempted = False
        self.deleted = False
        self.handle: Cluster | None = None
        self._lock = threading.Lock()

    def _run(self, args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise KopsError(f"{args[0]}: not found on PATH") from None

    def _record(self, kind: str, **data: Any) -> None:
        self.ledger.record(self.run_id, kind, ClusterKind.name, id=self.config.name, region=self.region,  # type: ignore[arg-type]
                           data={"tags": self.config.tags, "state": self.config.state, **data})

    def create(self) -> None:
        self._record("intent")
        self.create_attempted = True
        cfg = self.config
        self.progress(f"kops: creating cluster {cfg.name} ({cfg.node_count} x {cfg.node_size} in "
                      f"{','.join(cfg.zones)}; state {cfg.state})")
        started = time.monotonic()
        result = self._run(cfg.create_args())
        if result.returncode != 0:
            raise KopsError(f"kops create cluster {cfg.name} exited {result.returncode}: "
                            f"{_last_line(result.stderr) or _last_line(result.stdout)}")
        self._record("created")
        self.progress(f"kops: cluster {cfg.name} created in {time.monotonic() - started:.0f}s")

    def validate(self) -> dict[str, Any]:
        """Wait until kops says the cluster is ready; a progress line per validation attempt."""
        cfg = self.config
        self.progress(f"kops: validating {cfg.name} (up to {cfg.validate_wait})")
        started = time.monotonic()
        try:
            proc = subprocess.Popen(cfg.validate_args(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise KopsError(f"{cfg.kops}: not found on PATH") from None
        stderr: list[bytes] = []
        reader = threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True)
        reader.start()
        pending = ""
        attempts: list[dict[str, Any]] = []
        try:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            while True:
                chunk = os.read(fd, 65536)  # whatever is there: one line per attempt, as it comes
                if not chunk:
                    break
                objs, pending = split_json_stream(pending + chunk.decode("utf-8", "replace"))
                for obj in objs:
                    attempts.append(obj)
                    self._report_attempt(len(attempts), obj, time.monotonic() - started)
            code = proc.wait()
        finally:
            stop_process(proc)  # interrupted (Ctrl-C, SIGTERM): do not leave kops running
        reader.join(timeout=5)
        attempts.extend(parse_validate_output(pending))
        last = attempts[-1] if attempts else {}
        failures = list(last.get("failures") or [])
        if code != 0:
            err = b"".join(stderr).decode("utf-8", "replace")
            why = describe_failures(failures) if failures else (_last_line(err) or f"exit {code}")
            raise ClusterNotReady(
                f"kops validate cluster {cfg.name}: not ready after {time.monotonic() - started:.0f}s "
                f"({len(attempts)} attempt(s), exit {code}): {why}", failures)
        nodes = last.get("nodes") or []
        self.progress(f"kops: cluster {cfg.name} ready after {time.monotonic() - started:.0f}s "
                      f"({len(nodes)} node(s))")
        return last

    def _report_attempt(self, n: int, obj: dict[str, Any], elapsed: float) -> None:
        failures = obj.get("failures") or []
        nodes = obj.get("nodes") or []
        ready = sum(1 for node in nodes if str(node.get("status", "")) == "True")
        said = (f"{ready}/{len(nodes)} node(s) ready, {len(failures)} failure(s): {describe_failures(failures)}"
                if failures else f"{ready}/{len(nodes)} node(s) ready, no failures")
        # one live line for the cluster on a terminal; an attempt that says what the last one said is
        # not printed again elsewhere (progress.StatusLine)
        self.progress(status(f"kops {self.config.name}", f"validating: {said}", elapsed,
                             text=f"kops: validate attempt {n} at {elapsed:.0f}s: {said}"))

    def export_kubecfg(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        result = self._run(self.config.export_args(self.kubeconfig), timeout=300)
        if result.returncode != 0:
            raise KopsError(f"kops export kubecfg {self.config.name} exited {result.returncode}: "
                            f"{_last_line(result.stderr) or _last_line(result.stdout)}")
        if self.kubeconfig.exists():
            self.kubeconfig.chmod(0o600)
        return self.kubeconfig

    def up(self) -> Cluster:
        """create -> validate -> export kubecfg; on any failure the caller must still call delete()."""
        self.create()
        validation = self.validate()
        self.export_kubecfg()
        cfg = self.config
        self.handle = Cluster(name=cfg.name, kubeconfig=self.kubeconfig, node_count=cfg.node_count,
                              node_size=cfg.node_size, zones=cfg.zones, kubectl_bin=cfg.kubectl,
                              validation=validation)
        return self.handle

    def delete(self) -> str:
        """``kops delete cluster --yes`` with retries; 'deleted' or 'already_gone'. Idempotent."""
        with self._lock:
            if self.deleted or not self.create_attempted:
                return "already_gone"
            kind = ClusterKind(Context(progress=self.progress, sleep=self.sleep), kops=self.config.kops,
                               state=self.config.state, attempts=self.config.delete_attempts,
                               backoff=self.config.delete_backoff, only=self.config.name)
            with shielded(self.run_id):
                try:
                    report = engine.teardown(kind.ctx, self.ledger, self.run_id, kinds={kind.name: kind}, prefix="")
                except engine.TeardownError as exc:
                    raise KopsError(str(exc).split(": ", 1)[-1]) from None
            self.deleted = True
            if self.kubeconfig.exists():
                self.kubeconfig.unlink()
            return report.outcomes[0].status if report.outcomes else "already_gone"


def delete_cluster(
    kops: str,
    name: str,
    state: str,
    *,
    attempts: int = 4,
    backoff: float = 10.0,
    progress: Progress = print,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Delete one cluster; 'deleted', 'already_gone', or KopsError after the last attempt."""
    args = [kops, "delete", "cluster", "--name", name, "--state", state, "--yes"]

    def attempt() -> str:
        try:
            result = subprocess.run(args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise KopsError(f"{kops}: not found on PATH; cluster {name} is NOT deleted") from None
        if result.returncode == 0:
            progress(f"kops: cluster {name} deleted")
            return "deleted"
        if is_not_found(result.stderr + result.stdout):
            progress(f"kops: cluster {name} already gone")
            return "already_gone"
        raise _DeleteFailed(_last_line(result.stderr) or _last_line(result.stdout) or f"exit {result.returncode}")

    policy = retry.backoff(
        lambda e: isinstance(e, _DeleteFailed), first=backoff, cap=backoff * 2 ** attempts, attempts=attempts,
        before=lambda n: progress(f"kops: deleting cluster {name} (attempt {n}/{attempts})"),
        on_retry=lambda e, delay, _: progress(f"kops: delete {name} failed ({e}); retrying in {delay:.0f}s"),
        sleep=sleep,
    )
    try:
        return str(policy(attempt))
    except _DeleteFailed as last:
        raise KopsError(f"kops delete cluster {name} failed {attempts} time(s): {last}; "
                        f"it still exists: run `perfci reap` or `{' '.join(args)}`") from None


class _DeleteFailed(Exception):
    """One ``kops delete cluster`` attempt failed (not "not found"); str() is kops' last line."""


# --- the cleanup engine's "cluster" kind ---------------------------------------------------------


class ClusterKind(ResourceKind):
    """kops clusters, found by their live instances' tags (kops puts ``--cloud-labels`` on them) and
    deleted with ``kops delete cluster`` before instances (the auto-scaling groups would replace them).

    The state store comes from the instances' perfci:kops-state tag, the ledger, ``state``, or
    KOPS_STATE_STORE, in that order. ``only``: a session's own cluster, nothing else of its run.
    """

    name = "cluster"
    order = 5

    def __init__(self, ctx: Context, *, kops: str | None = None, state: str | None = None, attempts: int = 2,
                 backoff: float = 5.0, only: str | None = None) -> None:
        super().__init__(ctx)
        self.kops = kops or os.environ.get("PERFCI_KOPS_BINARY") or shutil.which("kops") or "kops"
        self.state = state
        self.attempts = attempts
        self.backoff = backoff
        self.only = only

    def _list(self, filters: list[dict[str, Any]]) -> list[Described]:
        if self.ctx.ec2 is None:
            return []
        live = {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        clusters: dict[str, Described] = {}
        for page in self.ctx.ec2.get_paginator("describe_instances").paginate(Filters=[*filters, live]):
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    tags = {t["Key"]: t.get("Value", "") for t in inst.get("Tags", []) or []}
                    name = tags.get(TAG_KOPS_CLUSTER)
                    if not name or name in clusters or (self.only and name != self.only):
                        continue
                    clusters[name] = Described(
                        kind=self.name, id=name, region=self.ctx.region, state="running",
                        tags={k: v for k, v in tags.items() if k.startswith("perfci:")},
                        data={"token": name, **({"state": tags[TAG_KOPS_STATE]} if tags.get(TAG_KOPS_STATE) else {})},
                    )
        return list(clusters.values())

    def describe(self, run_id: str | None) -> list[Described]:
        run = {"Name": f"tag:{TAG_RUN_ID}", "Values": [run_id]} if run_id else {"Name": "tag-key", "Values": [TAG_RUN_ID]}
        return self._list([{"Name": "tag-key", "Values": [TAG_KOPS_CLUSTER]}, run])

    def describe_ids(self, ids: Sequence[str]) -> list[Described]:
        return self._list([{"Name": f"tag:{TAG_KOPS_CLUSTER}", "Values": list(ids)}]) if ids else []

    def delete(self, orphans: list[Orphan]) -> list[Outcome]:
        out = []
        for o in orphans:
            state = o.data.get("state") or self.state or state_store()
            if not state:
                out.append(self.outcome(o, "failed", "no kops state store: set KOPS_STATE_STORE"))
                continue
            try:
                status = delete_cluster(self.kops, o.id, state, attempts=self.attempts, backoff=self.backoff,
                                        progress=self.ctx.progress, sleep=self.ctx.sleep)
            except KopsError as exc:
                out.append(self.outcome(o, "failed", str(exc)))
                continue
            out.append(self.outcome(o, status, "kops delete cluster" if status == "deleted" else "not found"))
        return out


# --- the provider object the plugin holds (configure-time validation, backstop teardown) ----------


class KopsProvider(Provider):
    """Names the cluster as the run's one target; ``cluster()`` brings it up once; ``release_all``
    deletes it (the suite's fixture does so first; this is the unconfigure backstop)."""

    name = "kops"
    creates_resources = True

    def __init__(self, config: KopsConfig, *, run_id: str, ledger: Ledger, workdir: Path,
                 region: str | None = None, progress: Progress = print) -> None:
        self.config = config
        self.lifecycle = KopsCluster(config, run_id=run_id, ledger=ledger, workdir=workdir, region=region,
                                     progress=progress)

    def targets(self) -> list[Target]:
        return [Target(name=self.config.name, provider=self.name, instance_type=self.config.node_size)]

    def validate(self) -> None:
        """Before anything exists: kops must be runnable and the state store an s3:// URL."""
        if shutil.which(self.config.kops) is None:
            raise ValueError(f"--provider=kops: {self.config.kops!r} is not on PATH; install kops "
                             "(https://kops.sigs.k8s.io/getting_started/install/)")
        if not self.config.state.startswith("s3://"):
            raise ValueError(f"--perfci-kops-state {self.config.state!r}: expected s3://bucket[/prefix]")

    @classmethod
    def from_settings(cls, settings: Settings, context: ProviderContext) -> KopsProvider:
        """The cluster of `settings.kops`; every missing piece is a one-line error naming the option."""
        ledger = Ledger(settings.results / "ledger.jsonl")
        return cls(kops_config(settings), run_id=settings.run_id, ledger=ledger,
                   workdir=settings.results / settings.run_id, region=settings.region, progress=context.progress)

    @property
    def region(self) -> str | None:
        return self.lifecycle.region

    def acquire(self, target: Target) -> Any:
        raise TargetUnavailable("kops targets are clusters, not hosts: use the `cluster` fixture of suites/cl2")

    def cluster(self) -> Cluster:
        if self.lifecycle.handle is None:
            self.lifecycle.up()
        assert self.lifecycle.handle is not None
        return self.lifecycle.handle

    def release_all(self) -> None:
        self.lifecycle.delete()
