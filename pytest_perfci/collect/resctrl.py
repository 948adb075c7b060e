"""The I/O half of the resctrl suite: copy the prober to a host, run its commands as root, parse JSON.

Group creation and removal, schemata writes and the workloads all run inside the prober
(pytest_perfci/probes/resctrl_probe.py) so that the same code is exercised against a synthetic tree
in tests/ and against /sys/fs/resctrl on a real host. Nothing here judges; checks.resctrl does.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import Any

from pytest_perfci.checks.resctrl import Observation, judge_gathered
from pytest_perfci.hosts.base import Host

ROOT = "/sys/fs/resctrl"


class ProbeFailed(RuntimeError):
    """The prober could not run or refused (one line, with its stderr)."""


class Prober:
    """A prober installed on one host; every call is one `sudo python3 resctrl_probe.py ...`."""

    def __init__(self, host: Host, path: str, root: str = ROOT, proc: str = "/proc", synthetic: bool = False,
                 python: str = "python3") -> None:
        self.host = host
        self.path = path
        self.root = root
        self.proc = proc
        self.synthetic = synthetic
        self.python = python

    def argv(self, *args: str) -> list[str]:
        base = [self.python, self.path, "--root", self.root, "--proc", self.proc]
        return base + (["--synthetic"] if self.synthetic else []) + list(args)

    def call(self, *args: str, timeout: float = 120) -> dict[str, Any]:
        result = self.host.sudo(self.argv(*args), timeout=timeout, check=False)
        try:
            doc = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
        except json.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or (result.exited != 0 and "error" in doc):
            why = (doc or {}).get("error") if isinstance(doc, dict) else None
            line = why or (result.stderr.strip().splitlines() or [f"exit {result.exited}"])[-1]
            raise ProbeFailed(f"resctrl_probe {shlex.join(args)}: {line}")
        return doc

    def gather(self, mount_if_needed: bool = True, virtualised: bool | None = None) -> tuple[Observation, dict]:
        doc = self.call("gather", *(["--mount-if-needed"] if mount_if_needed else []))
        return judge_gathered(doc, virtualised=virtualised), doc

    def snapshot(self) -> dict[str, Any]:
        return self.call("snapshot")

    def mount(self) -> dict[str, Any]:
        return self.call("mount")

    def umount(self) -> dict[str, Any]:
        return self.call("umount")

    def mkgroup(self, name: str, mon: bool = False) -> dict[str, Any]:
        return self.call("mkgroup", name, *(["--mon"] if mon else []))

    def rmgroup(self, name: str, mon: bool = False) -> dict[str, Any]:
        return self.call("rmgroup", name, *(["--mon"] if mon else []))

    def write(self, group: str, file: str, text: str) -> dict[str, Any]:
        return self.call("write", group, file, text)

    def walk(self, group: str, cpu: int | None, nbytes: int, runs: int = 5) -> dict[str, Any]:
        cpu_args = ["--cpu", str(cpu)] if cpu is not None else []
        return self.call("walk", group, *cpu_args, "--bytes", str(nbytes), "--runs", str(runs), timeout=600)

    def bandwidth(self, group: str, cpu: int | None, nbytes: int, seconds: float) -> dict[str, Any]:
        cpu_args = ["--cpu", str(cpu)] if cpu is not None else []
        return self.call("bandwidth", group, *cpu_args, "--bytes", str(nbytes), "--seconds", str(seconds),
                         timeout=seconds * 4 + 60)


def imc_events(pmu_devices: Sequence[str]) -> list[str]:
    """Intel iMC CAS-count events (the selftests' independent bandwidth reference), one per uncore_imc PMU."""
    imcs = sorted(d for d in pmu_devices if d.startswith("uncore_imc"))
    return [f"{d}/cas_count_{rw}/" for d in imcs for rw in ("read", "write")]
