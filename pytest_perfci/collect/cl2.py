"""Run ClusterLoader2 against a cluster, read its report directory, export it where perfdash reads.

* :func:`run_cl2` runs the binary with ``--testconfig``, ``--testoverrides`` (written from the test's
  parameters), ``--provider=aws``, ``--kubeconfig``, ``--nodes``, ``--report-dir`` and the Prometheus
  flags; its log goes to a file in full and to the terminal at a readable pace. A run that leaves
  no junit.xml is an infrastructure failure (:class:`Cl2InfrastructureError`), never a verdict.
* :func:`load_report` reads a report directory into :class:`pytest_perfci.checks.cl2.Report`.
* :func:`export_perfdash` copies the artifacts, names unchanged, to
  ``<root>/logs/<job>/<build>/artifacts/`` and writes the perfdash job entry
  (``perfDashPrefix`` / ``perfDashJobType`` tags); :func:`upload_tree` puts that tree in S3.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_perfci.checks.cl2 import JUNIT, Report, parse_report_name, read_report
from pytest_perfci.models.s3url import parse_s3_url
from pytest_perfci.procs import stop_process

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

Emit = Callable[[str], None]


class Cl2InfrastructureError(RuntimeError):
    """CL2 did not produce a report (crash, missing binary, bad flags): no verdict can be drawn."""


# Lines always shown: test/step boundaries, errors, and CL2's own summary.
_IMPORTANT = re.compile(r"(^[EF]\d{4} |error|fail|panic|Step \"|step:|overall|Test Finished|tests have failed"
                        r"|Running |Test Name)", re.IGNORECASE)


@dataclass
class Cl2Run:
    command: list[str]
    exit_code: int
    report_dir: Path
    log_path: Path
    duration: float
    tail: list[str] = field(default_factory=list)

    @property
    def has_junit(self) -> bool:
        return (self.report_dir / JUNIT).is_file()


def write_overrides(params: Mapping[str, Any], path: Path) -> Path:
    """A CL2 overrides file: one ``NAME: value`` per line (JSON scalars are valid YAML)."""
    lines = []
    for key, value in params.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ValueError(f"CL2 override name {key!r} is not an identifier (e.g. CL2_ENABLE_PVS)")
        lines.append(f"{key}: {json.dumps(value)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def cl2_command(
    binary: str,
    testconfig: Path | str,
    *,
    kubeconfig: Path,
    nodes: int,
    report_dir: Path,
    overrides: Sequence[Path] = (),
    provider: str = "aws",
    prometheus: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    cmd = [binary, f"--testconfig={testconfig}"]
    cmd += [f"--testoverrides={p}" for p in overrides]
    cmd += [f"--provider={provider}", f"--kubeconfig={kubeconfig}", f"--nodes={nodes}",
            f"--report-dir={report_dir}", "--v=2"]
    if prometheus:
        # kops' API server listens on 443; CL2 tears its Prometheus down after gathering.
        cmd += ["--enable-prometheus-server=true", "--tear-down-prometheus-server=true",
                "--prometheus-apiserver-scrape-port=443"]
    return [*cmd, *extra]


class PacedEmitter:
    """Shows important lines at once and at most one other line every ``interval`` seconds,
    saying how many were only written to the log in between."""

    def __init__(self, emit: Emit, interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.interval = interval
        self.clock = clock
        self._last = -1e9
        self._held = 0

    def __call__(self, line: str) -> None:
        now = self.clock()
        if _IMPORTANT.search(line) or now - self._last >= self.interval:
            held = f" (+{self._held} line(s) in the log)" if self._held else ""
            self.emit(f"cl2: {line}{held}")
            self._last = now
            self._held = 0
        else:
            self._held += 1


def run_cl2(
    command: list[str],
    *,
    report_dir: Path,
    log_path: Path,
    emit: Emit = print,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    pace: float = 2.0,
) -> Cl2Run:
    """Run CL2; raise Cl2InfrastructureError when it leaves no junit.xml (whatever its exit code)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    paced = PacedEmitter(emit, pace)
    tail: list[str] = []
    started = time.monotonic()
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else None)
    except OSError as exc:
        raise Cl2InfrastructureError(f"clusterloader2 could not start: {command[0]}: {exc.strerror or exc}") from None
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
    try:
        with log_path.open("w", encoding="utf-8") as log:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                tail.append(line)
                del tail[:-40]
                paced(line)
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        stop_process(proc)
    run = Cl2Run(command=command, exit_code=code, report_dir=report_dir, log_path=log_path,
                 duration=time.monotonic() - started, tail=tail)
    emit(f"cl2: exited {code} after {run.duration:.0f}s; log {log_path}")
    if not run.has_junit:
        last = "\n  ".join(tail[-8:]) or "(no output)"
        raise Cl2InfrastructureError(
            f"infrastructure failure, not a verdict: clusterloader2 exited {code} without writing "
            f"{report_dir / JUNIT}; last log lines:\n  {last}\nfull log: {log_path}")
    return run


def report_files(report_dir: Path) -> list[Path]:
    """junit.xml and every ``<Summary>_<test>_<RFC3339>.json`` (other files are left out of judging)."""
    if not report_dir.is_dir():
        return []
    return sorted(p for p in report_dir.iterdir()
                  if p.is_file() and (p.name == JUNIT or parse_report_name(p.name) is not None))


def load_report(report_dir: Path) -> Report:
    texts: dict[str, str | None] = {}
    for path in report_files(report_dir):
        try:
            texts[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            texts[path.name] = None
    return read_report(texts)


def build_number(now: datetime | None = None) -> int:
    """An increasing integer build id (perfdash sorts builds numerically): UTC YYYYmmddHHMMSS."""
    return int((now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S"))


def perfdash_job_yaml(job: str, prefix: str | None = None, job_type: str = "performance") -> str:
    """The job's entry in perfdash's config, in the shape of scale-tests/jobs/tests.yaml."""
    return (
        "periodics:\n"
        f"- name: {job} # Name of directory in bucket\n"
        "  tags:\n"
        f"  - \"perfDashPrefix: {prefix or job}\" # Just the name what to display in perfdash\n"
        f"  - \"perfDashJobType: {job_type}\" # Type of metrics to display\n"
    )


def export_perfdash(
    report_dir: Path,
    root: Path,
    job: str,
    build: int,
    *,
    prefix: str | None = None,
    job_type: str = "performance",
    files: Iterable[Path] | None = None,
) -> Path:
    """Copy artifacts to ``<root>/logs/<job>/<build>/artifacts/<name unchanged>``; returns that dir.

    Also writes ``<root>/logs/<job>/<build>/finished.json`` and ``<root>/perfdash-config/<job>.yaml``.
    """
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", job):
        raise ValueError(f"perfdash job {job!r}: use letters, digits, '.', '_' and '-'")
    artifacts = root / "logs" / job / str(int(build)) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    chosen = list(files) if files is not None else [p for p in sorted(report_dir.iterdir()) if p.is_file()]
    for path in chosen:
        shutil.copy2(path, artifacts / path.name)
    (artifacts.parent / "finished.json").write_text(json.dumps({"timestamp": int(time.time())}) + "\n")
    config = root / "perfdash-config" / f"{job}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(perfdash_job_yaml(job, prefix, job_type))
    return artifacts


def upload_tree(root: Path, url: str, s3: S3Client, only: Path | None = None) -> list[str]:
    """Upload every file under ``root`` (or under ``only``, a subtree of it) to s3://bucket/prefix/<rel>."""
    bucket, prefix = parse_s3_url(url)
    keys = []
    base = only or root
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        key = f"{prefix}/{rel}" if prefix else rel
        s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys
