#!/usr/bin/env python3
"""resctrl_probe: gather resctrl facts and manage test groups on the host under test.

Copied to the host and run there as root (``sudo python3 resctrl_probe.py ...``). Stdlib only,
Python >= 3.8, imports nothing from pytest_perfci (``pmc_reader`` next to it is used when present,
to count LLC misses with perf_event_open). Every command prints one JSON document on stdout.

    resctrl_probe.py [--root DIR] [--proc DIR] [--synthetic] COMMAND ...

    gather [--mount-if-needed]   cpuinfo (first CPU), /proc/filesystems, kernel config lines, mount
                                 state and every small file of the tree; mounts resctrl only when it is
                                 registered and not mounted, and then unmounts it again before exiting
    mount / umount               mount resctrl at --root if not mounted (reports whether *it* mounted);
                                 umount only when asked (the caller unmounts only what it mounted)
    snapshot                     the state compared before/after a suite: mounted?, groups, root
                                 schemata and cpus, info/last_cmd_status excluded
    mkgroup NAME [--mon]         create a control group (or a monitor group under the root group)
    rmgroup NAME [--mon]         remove it; only names starting with "perfci-" are ever removed
    write GROUP FILE TEXT        write one kernel file of a group ("." = root), report the errno,
                                 info/last_cmd_status and the value read back
    walk GROUP --cpu K --bytes N --runs R
                                 join GROUP, pin to CPU K, walk an N-byte buffer one load per cache line
                                 (warm-up pass, then a measured pass) R times; LLC misses per measured
                                 pass (perf_event_open) and llc_occupancy of the group after each run
    bandwidth GROUP --cpu K --bytes N --seconds S
                                 join GROUP, pin to CPU K, copy an N-byte buffer for S seconds; MiB/s
                                 moved (2 x copied) and the group's mbm_total/local_bytes deltas

``--root`` (default /sys/fs/resctrl) and ``--proc`` (default /proc) make every path a parameter, so
tests run this file against a temporary tree. ``--synthetic`` says the root is such a plain directory
tree, not a kernel mount: mkgroup then creates the files the kernel would, writes to schemata merge
domains and apply the kernel's CBM checks, and rmgroup removes the files. Without it, group
operations refuse to run unless --root is a mounted resctrl filesystem.

Exit codes: 0 the command ran (a rejected write is a result, not an error); 2 usage; 3 refused or
failed (one line on stderr and {"error": ...} on stdout).
"""

from __future__ import annotations

import argparse
import errno
import gzip
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import time

PROBE_NAME = "resctrl_probe"
PROBE_VERSION = 1
GROUP_PREFIX = "perfci-"
MAX_FILE = 65536  # tasks of a busy root group can be large; we record sizes, not contents, beyond this
KCONFIG = ("CONFIG_X86_CPU_RESCTRL", "CONFIG_INTEL_RDT", "CONFIG_ARM64_MPAM", "CONFIG_RESCTRL_FS")
SKIP_CONTENT = ("tasks",)  # pids of the whole system: only their count matters


class Refused(Exception):
    pass


def emit(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")


def read_text(path: str, limit: int = MAX_FILE) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


def _os_error(exc: OSError) -> str:
    """`EBUSY: Device or resource busy`: the errno name the kernel docs use, then the text."""
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else "?"
    return f"{code}: {exc.strerror}"


def first_cpu_block(text: str) -> str:
    block = text.split("\n\n", 1)[0]
    return block + "\n"


def kernel_config_lines(proc: str, release: str) -> str:
    """The resctrl Kconfig lines from /proc/config.gz or /boot/config-<release> ('' if neither)."""
    text = None
    try:
        with gzip.open(os.path.join(proc, "config.gz"), "rt", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        text = read_text(f"/boot/config-{release}", 10_000_000) if proc == "/proc" else None
    if not text:
        return ""
    return "".join(ln + "\n" for ln in text.splitlines() if any(sym in ln for sym in KCONFIG))


def mount_entry(proc: str, root: str) -> str | None:
    """The /proc/self/mounts line of a resctrl mount at root, if any."""
    text = read_text(os.path.join(proc, "self", "mounts"), 10_000_000) or ""
    want = os.path.realpath(root) if os.path.exists(root) else root
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "resctrl" and parts[1] in (root, want):
            return line
    return None


class Tree:
    def __init__(self, root: str, proc: str, synthetic: bool) -> None:
        self.root = root
        self.proc = proc
        self.synthetic = synthetic

    # --- state ---------------------------------------------------------------------------------

    def listed(self) -> bool:
        text = read_text(os.path.join(self.proc, "filesystems")) or ""
        return any(line.split()[-1:] == ["resctrl"] for line in text.splitlines())

    def mounted(self) -> bool:
        if self.synthetic:
            return os.path.isdir(os.path.join(self.root, "info"))
        return mount_entry(self.proc, self.root) is not None

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *[p for p in parts if p not in ("", ".")])

    def files(self) -> dict[str, str]:
        """Every file under root except the contents of tasks (which list every pid on the host)."""
        out: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel + "/"
            dirnames.sort()
            for d in dirnames:
                out[rel + d + "/"] = ""
            for name in sorted(filenames):
                if name in SKIP_CONTENT:
                    text = read_text(os.path.join(dirpath, name), 10_000_000)
                    out[rel + name] = "" if text is None else f"{len(text.split())} tasks"
                    continue
                text = read_text(os.path.join(dirpath, name))
                if text is not None:
                    out[rel + name] = text
        return out

    def groups(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        out = []
        for name in sorted(os.listdir(self.root)):
            full = self.path(name)
            if name in ("info", "mon_groups", "mon_data") or not os.path.isdir(full):
                continue
            out.append(name)
            mon = os.path.join(full, "mon_groups")
            if os.path.isdir(mon):
                out.extend(f"{name}/mon_groups/{m}" for m in sorted(os.listdir(mon)))
        mon = self.path("mon_groups")
        if os.path.isdir(mon):
            out.extend(f"mon_groups/{m}" for m in sorted(os.listdir(mon)))
        return out

    def snapshot(self) -> dict:
        mounted = self.mounted()
        doc = {"listed": self.listed(), "mounted": mounted, "groups": [], "schemata": None, "cpus": None}
        if mounted:
            doc["groups"] = self.groups()
            doc["schemata"] = read_text(self.path("schemata"))
            doc["cpus"] = read_text(self.path("cpus"))
        return doc

    # --- mount -----------------------------------------------------------------------------------

    def mount(self) -> dict:
        if self.mounted():
            return {"mounted_by_probe": False, "already": True, "error": None}
        if self.synthetic:
            return {"mounted_by_probe": False, "already": False, "error": "synthetic tree has no info/"}
        if not self.listed():
            return {"mounted_by_probe": False, "already": False,
                    "error": "resctrl is not in /proc/filesystems"}
        proc = subprocess.run(["mount", "-t", "resctrl", "resctrl", self.root], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            msg = (proc.stderr.strip().splitlines() or [f"mount exited {proc.returncode}"])[0]
            return {"mounted_by_probe": False, "already": False, "error": msg}
        return {"mounted_by_probe": True, "already": False, "error": None}

    def umount(self) -> dict:
        if self.synthetic or not self.mounted():
            return {"unmounted": False, "error": None}
        proc = subprocess.run(["umount", self.root], capture_output=True, text=True, check=False)
        err = proc.stderr.strip() or None if proc.returncode else None
        return {"unmounted": proc.returncode == 0, "error": err}

    # --- groups ----------------------------------------------------------------------------------

    def _require_tree(self) -> None:
        if not self.mounted():
            raise Refused(f"{self.root} is not a mounted resctrl filesystem"
                          + (" (synthetic tree without info/)" if self.synthetic else ""))

    def group_dir(self, name: str, mon: bool) -> str:
        if "/" in name or name in ("", ".", "..", "info", "mon_groups", "mon_data"):
            raise Refused(f"bad group name {name!r}")
        return self.path("mon_groups", name) if mon else self.path(name)

    def mkgroup(self, name: str, mon: bool) -> dict:
        self._require_tree()
        if not name.startswith(GROUP_PREFIX):
            raise Refused(f"group names must start with {GROUP_PREFIX!r}: {name!r}")
        path = self.group_dir(name, mon)
        try:
            os.mkdir(path)
        except OSError as exc:
            return {"ok": False, "error": _os_error(exc),
                    "last_cmd_status": read_text(self.path("info", "last_cmd_status"))}
        if self.synthetic:
            self._populate(path, mon)
        return {"ok": True, "error": None, "path": path}

    def rmgroup(self, name: str, mon: bool) -> dict:
        self._require_tree()
        if not name.startswith(GROUP_PREFIX):
            raise Refused(f"refusing to remove {name!r}: not a perfci group")
        path = self.group_dir(name, mon)
        if not os.path.isdir(path):
            return {"ok": True, "error": None, "existed": False}
        try:
            if self.synthetic:
                shutil.rmtree(path)
            else:
                os.rmdir(path)  # resctrl removes a group with its kernel files; tasks return to the parent
        except OSError as exc:
            return {"ok": False, "error": _os_error(exc)}
        return {"ok": True, "error": None, "existed": True}

    def write(self, group: str, name: str, text: str) -> dict:
        self._require_tree()
        path = self.path(group, name)
        result: dict[str, object] = {"ok": True, "error": None}
        try:
            if self.synthetic:
                self._synthetic_write(path, name, text)
            else:
                fd = os.open(path, os.O_WRONLY)  # never O_CREAT: kernel files always exist
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        except OSError as exc:
            result = {"ok": False, "error": _os_error(exc)}
        result["last_cmd_status"] = read_text(self.path("info", "last_cmd_status"))
        result["readback"] = read_text(path)
        return result

    # --- synthetic kernel behaviour ----------------------------------------------------------------

    def _populate(self, path: str, mon: bool) -> None:
        """What the kernel creates in a new group: defaults for every resource, no tasks, no CPUs."""
        cpus = read_text(self.path("cpus")) or "0\n"
        files = {"tasks": "", "cpus": "".join("0" if c.isalnum() else c for c in cpus), "cpus_list": "\n"}
        if not mon:
            files["mode"] = "shareable\n"
            lines = []
            for line in (read_text(self.path("schemata")) or "").splitlines():
                res, _, doms = line.strip().partition(":")
                default = self._default(res)
                lines.append(f"{res}:" + ";".join(f"{d.split('=')[0]}={default}" for d in doms.split(";") if d))
            files["schemata"] = "\n".join(lines) + "\n"
            os.mkdir(os.path.join(path, "mon_groups"))
        for rel, content in files.items():
            with open(os.path.join(path, rel), "w", encoding="utf-8") as fh:
                fh.write(content)
        root_mon = self.path("mon_data")
        if os.path.isdir(root_mon):
            for dom in os.listdir(root_mon):
                os.makedirs(os.path.join(path, "mon_data", dom))
                for ev in os.listdir(os.path.join(root_mon, dom)):
                    with open(os.path.join(path, "mon_data", dom, ev), "w", encoding="utf-8") as fh:
                        fh.write("0\n")

    def _default(self, res: str) -> str:
        info = self.path("info", res)
        mask = read_text(os.path.join(info, "cbm_mask"))
        if mask:
            return mask.strip()
        return "100"

    def _set_status(self, msg: str) -> None:
        with open(self.path("info", "last_cmd_status"), "w", encoding="utf-8") as fh:
            fh.write(msg + "\n")

    def _synthetic_write(self, path: str, name: str, text: str) -> None:
        if not os.path.exists(path):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if name != "schemata":
            # The kernel adds a pid written to tasks (moving it from its old group); other files are replaced.
            with open(path, "a" if name == "tasks" else "w", encoding="utf-8") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
            self._set_status("ok")
            return
        current: dict[str, dict[str, str]] = {}
        order = []
        for line in (read_text(path) or "").splitlines():
            res, _, doms = line.strip().partition(":")
            order.append(res)
            current[res] = dict(d.split("=", 1) for d in doms.split(";") if d)
        for line in text.replace("\\n", "\n").splitlines():
            if not line.strip():
                continue
            res, _, doms = line.strip().partition(":")
            if res not in current:
                self._set_status(f"Unknown or unsupported resource name '{res}'")
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            for d in doms.split(";"):
                if not d.strip():
                    continue
                dom, _, value = d.partition("=")
                if dom.strip() not in current[res]:
                    self._set_status(f"Unknown domain ID: {dom.strip()}")
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
                problem = self._cbm_problem(res, value.strip())
                if problem:
                    self._set_status(problem)
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
                current[res][dom.strip()] = value.strip()
        with open(path, "w", encoding="utf-8") as fh:
            for res in order:
                fh.write(f"{res}:" + ";".join(f"{d}={v}" for d, v in current[res].items()) + "\n")
        self._set_status("ok")

    def _cbm_problem(self, res: str, value: str) -> str | None:
        info = self.path("info", res)
        full = read_text(os.path.join(info, "cbm_mask"))
        if full is None:
            return None  # a bandwidth resource: no CBM rules
        mask = int(value, 16)
        full_mask = int(full.strip(), 16)
        min_bits = int((read_text(os.path.join(info, "min_cbm_bits")) or "1").strip())
        sparse = (read_text(os.path.join(info, "sparse_masks")) or "0").strip() == "1"
        if mask & ~full_mask or mask == 0:
            return f"Invalid cbm value {value}"
        if bin(mask).count("1") < min_bits:  # noqa: FURB161 - int.bit_count needs 3.10; this runs on 3.8
            return f"Need at least {min_bits} bits in the mask"
        low = mask & -mask
        shifted = mask // low
        if not sparse and shifted & (shifted + 1):
            return f"mask {value} has non-consecutive 1-bits"
        return None

    # --- workloads ---------------------------------------------------------------------------------

    def join(self, group: str, cpu: int | None) -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if group not in ("", "."):
            res = self.write(group, "tasks", str(os.getpid()))
            if not res["ok"]:
                raise Refused(f"cannot join group {group}: {res['error']}")

    def mon_sum(self, group: str, event: str) -> int | None:
        base = self.path(group, "mon_data")
        if not os.path.isdir(base):
            return None
        total = 0
        for dom in sorted(os.listdir(base)):
            text = (read_text(os.path.join(base, dom, event)) or "").strip()
            if not text.isdigit():
                return None  # Unavailable / Error: no number to report
            total += int(text)
        return total


# --- LLC misses of this process (perf_event_open through pmc_reader, when it was copied along) ------

PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_RESET = 0x2403


class MissCounter:
    def __init__(self) -> None:
        self.fd = None
        self.error = None
        try:
            import fcntl

            import pmc_reader  # type: ignore[import-not-found]

            attr = pmc_reader.build_attr("cache-misses", user_only=True)
            attr.flags = pmc_reader.FLAG_DISABLED | pmc_reader.FLAG_EXCLUDE_KERNEL | pmc_reader.FLAG_EXCLUDE_HV
            self.fd = pmc_reader.PerfEventOpen().open(attr, 0)
            self._ioctl = fcntl.ioctl
        except ImportError as exc:
            self.error = f"pmc_reader not available: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure means "no miss counts", said why
            self.error = f"cache-misses cannot be counted: {exc}"

    def start(self) -> None:
        if self.fd is not None:
            self._ioctl(self.fd, PERF_EVENT_IOC_RESET, 0)
            self._ioctl(self.fd, PERF_EVENT_IOC_ENABLE, 0)

    def stop(self) -> int | None:
        if self.fd is None:
            return None
        self._ioctl(self.fd, PERF_EVENT_IOC_DISABLE, 0)
        value, enabled, running = struct.unpack("QQQ", os.read(self.fd, 24))
        return int(value * enabled / running) if running else None


def walk_once(buf: bytearray) -> int:
    """One load per 64-byte line, at C speed: a strided memoryview copy touches each line once."""
    return len(memoryview(buf)[::64].tobytes())


def cmd_walk(tree: Tree, group: str, cpu: int | None, nbytes: int, runs: int) -> dict:
    tree.join(group, cpu)
    buf = bytearray(os.urandom(64)) * (nbytes // 64)
    counter = MissCounter()
    misses, occupancy = [], []
    for _ in range(runs):
        walk_once(buf)  # warm-up: bring what fits into the group's ways
        counter.start()
        walk_once(buf)
        misses.append(counter.stop())
        occupancy.append(tree.mon_sum(group, "llc_occupancy"))
    return {"bytes": len(buf), "runs": runs, "cpu": cpu, "misses": misses, "miss_error": counter.error,
            "llc_occupancy": occupancy}


def cmd_bandwidth(tree: Tree, group: str, cpu: int | None, nbytes: int, seconds: float) -> dict:
    tree.join(group, cpu)
    src = bytearray(os.urandom(4096)) * max(nbytes // 4096, 1)
    dst = bytearray(len(src))
    dst[:] = src  # fault both buffers in before measuring
    before = {e: tree.mon_sum(group, e) for e in ("mbm_total_bytes", "mbm_local_bytes")}
    copies = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        dst[:] = src
        copies += 1
    elapsed = time.monotonic() - start
    after = {e: tree.mon_sum(group, e) for e in ("mbm_total_bytes", "mbm_local_bytes")}
    mib = 1024 * 1024
    mbm = {}
    for e, b in before.items():
        a = after[e]
        mbm[e] = None if a is None or b is None or a < b else round((a - b) / mib / elapsed, 1)
    return {"bytes": len(src), "seconds": round(elapsed, 3), "copies": copies,
            "workload_mibps": round(2 * copies * len(src) / mib / elapsed, 1), "mbm_mibps": mbm}


def cmd_gather(tree: Tree, mount_if_needed: bool) -> dict:
    release = platform.release()
    doc = {
        "probe": PROBE_NAME, "version": PROBE_VERSION, "arch": platform.machine(), "kernel": release,
        "root": tree.root, "synthetic": tree.synthetic,
        "cpuinfo": first_cpu_block(read_text(os.path.join(tree.proc, "cpuinfo"), 10_000_000) or ""),
        "filesystems": read_text(os.path.join(tree.proc, "filesystems")),
        "kernel_config": kernel_config_lines(tree.proc, release),
        "root_exists": os.path.isdir(tree.root),
        "mounted_before": tree.mounted(),
        "mount": None, "files": None, "unmount": None,
    }
    mounted_here = False
    if not doc["mounted_before"] and mount_if_needed and not tree.synthetic:
        mount = tree.mount()
        doc["mount"] = mount
        mounted_here = bool(mount["mounted_by_probe"])
    try:
        if tree.mounted():
            doc["files"] = tree.files()
    finally:
        if mounted_here:
            doc["unmount"] = tree.umount()  # leave the host as found
    return doc


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="resctrl_probe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/sys/fs/resctrl")
    p.add_argument("--proc", default="/proc")
    p.add_argument("--synthetic", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gather")
    g.add_argument("--mount-if-needed", action="store_true")
    sub.add_parser("mount")
    sub.add_parser("umount")
    sub.add_parser("snapshot")
    for name in ("mkgroup", "rmgroup"):
        s = sub.add_parser(name)
        s.add_argument("name")
        s.add_argument("--mon", action="store_true")
    w = sub.add_parser("write")
    w.add_argument("group")
    w.add_argument("file")
    w.add_argument("text")
    for name in ("walk", "bandwidth"):
        s = sub.add_parser(name)
        s.add_argument("group")
        s.add_argument("--cpu", type=int, default=None)
        s.add_argument("--bytes", type=int, required=True)
        if name == "walk":
            s.add_argument("--runs", type=int, default=5)
        else:
            s.add_argument("--seconds", type=float, default=2.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    tree = Tree(args.root, args.proc, args.synthetic)
    try:
        if args.cmd == "gather":
            doc = cmd_gather(tree, args.mount_if_needed)
        elif args.cmd == "mount":
            doc = tree.mount()
        elif args.cmd == "umount":
            doc = tree.umount()
        elif args.cmd == "snapshot":
            doc = tree.snapshot()
        elif args.cmd == "mkgroup":
            doc = tree.mkgroup(args.name, args.mon)
        elif args.cmd == "rmgroup":
            doc = tree.rmgroup(args.name, args.mon)
        elif args.cmd == "write":
            doc = tree.write(args.group, args.file, args.text)
        elif args.cmd == "walk":
            doc = cmd_walk(tree, args.group, args.cpu, args.bytes, args.runs)
        else:
            doc = cmd_bandwidth(tree, args.group, args.cpu, args.bytes, args.seconds)
    except Refused as exc:
        print(f"resctrl_probe: {exc}", file=sys.stderr)
        emit({"error": str(exc)})
        return 3
    emit(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
