#!/usr/bin/env python3
"""pmc_reader: count one workload with perf_event_open, in exactly the scope of ``perf stat``.

This file is copied to the host under test and run there as ``python3 pmc_reader.py ...``.
It must therefore stay stdlib-only, run on Python >= 3.8 and import nothing from pytest_perfci.

Usage::

    python3 pmc_reader.py [--events cycles,instructions,...] [--user-only] [--repeat N]
                          [--cpu K] [--discard-output] -- WORKLOAD ARGS...

Why this scope: the suites compare this reader with ``perf stat -e EVENTS -- WORKLOAD``. A tight
tolerance between two readers only means something when both count the same thing, so this probe
copies what perf stat does for a workload (tools/perf/util/evlist.c, ``evlist__prepare_workload``):

1. fork a child, which blocks reading a pipe (nothing it does before exec is counted);
2. open one counter per event on the child's pid with ``disabled=1, enable_on_exec=1, inherit=1``,
   so counting starts at execve and threads/children of the workload are folded in, as in perf stat;
3. release the child, which ``execvp``s the workload (PATH lookup, like perf);
4. ``waitpid`` the child, then read every counter (value, time_enabled, time_running).

``--user-only`` sets ``exclude_kernel=1, exclude_hv=1``, which is what perf stat's ``:u`` modifier
sets. An unprivileged user with ``kernel.perf_event_paranoid=2`` may only count user space, so
without it the open fails with EACCES there.

Each event is opened as its own fd, not as a group: in a group one unsupported or unschedulable
member makes the whole group fail or read ``<not counted>``, which would hide the events that do
work (e.g. on a VM without a vPMU, cycles fails with ENOENT while page-faults counts). The price is
that events are not guaranteed to be scheduled together; the time_enabled/time_running pair of each
event tells the reader whether it was multiplexed.

Output: one JSON document on stdout (schema in pytest_perfci/checks/pmc_probe.py). The workload's
stdout goes to this process's stderr (or to /dev/null with --discard-output) so it can never
corrupt the JSON.

Exit codes: 0 when the probe worked, even if some or all events could not be opened (those carry
their errno in the JSON; the workload's own status is in ``runs[].exit_code``). 2 on a usage error,
3 when the platform cannot run the probe (architecture, no libc), 126/127 when the workload cannot
be executed (127: not found, like a shell). Every failure prints one line on stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import errno as errno_mod
import json
import os
import platform
import signal
import struct
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

PROBE_NAME = "pmc_reader"
PROBE_VERSION = 1
PID_SCOPE = "workload from exec to exit, inherit"

# perf_event_open(2) syscall numbers; the syscall has no libc wrapper.
SYSCALL_NUMBERS = {"x86_64": 298, "aarch64": 241}

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1

# The name -> (type, config) table follows the perf tool's own names (``perf list``), aliases included,
# so a name that works in ``perf stat -e`` means the same counter here.
EVENTS: dict[str, tuple[int, int]] = {
    "cycles": (PERF_TYPE_HARDWARE, 0),
    "cpu-cycles": (PERF_TYPE_HARDWARE, 0),
    "instructions": (PERF_TYPE_HARDWARE, 1),
    "cache-references": (PERF_TYPE_HARDWARE, 2),
    "cache-misses": (PERF_TYPE_HARDWARE, 3),
    "branches": (PERF_TYPE_HARDWARE, 4),
    "branch-instructions": (PERF_TYPE_HARDWARE, 4),
    "branch-misses": (PERF_TYPE_HARDWARE, 5),
    "bus-cycles": (PERF_TYPE_HARDWARE, 6),
    "stalled-cycles-frontend": (PERF_TYPE_HARDWARE, 7),
    "stalled-cycles-backend": (PERF_TYPE_HARDWARE, 8),
    "ref-cycles": (PERF_TYPE_HARDWARE, 9),
    "cpu-clock": (PERF_TYPE_SOFTWARE, 0),
    "task-clock": (PERF_TYPE_SOFTWARE, 1),
    "page-faults": (PERF_TYPE_SOFTWARE, 2),
    "faults": (PERF_TYPE_SOFTWARE, 2),
    "context-switches": (PERF_TYPE_SOFTWARE, 3),
    "cs": (PERF_TYPE_SOFTWARE, 3),
    "cpu-migrations": (PERF_TYPE_SOFTWARE, 4),
    "migrations": (PERF_TYPE_SOFTWARE, 4),
    "minor-faults": (PERF_TYPE_SOFTWARE, 5),
    "major-faults": (PERF_TYPE_SOFTWARE, 6),
}

DEFAULT_EVENTS = "cycles,instructions,task-clock,page-faults,context-switches"

# perf_event_attr.read_format bits.
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
READ_FORMAT = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING
READ_LAYOUT = struct.Struct("=QQQ")  # value, time_enabled, time_running (in that order for this format)

# Bit positions in the u64 flag word of perf_event_attr (include/uapi/linux/perf_event.h).
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_EXCLUDE_USER = 1 << 4
FLAG_EXCLUDE_KERNEL = 1 << 5
FLAG_EXCLUDE_HV = 1 << 6
FLAG_ENABLE_ON_EXEC = 1 << 12

PERF_FLAG_FD_CLOEXEC = 1 << 3  # keep counter fds out of later workloads (--repeat forks again)
PERF_ATTR_SIZE_VER5 = 112

EXIT_USAGE = 2
EXIT_PLATFORM = 3
EXIT_NOEXEC = 126
EXIT_NOTFOUND = 127


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to PERF_ATTR_SIZE_VER5 (112 bytes, Linux >= 4.1).

    The C bitfields (disabled, inherit, ..., enable_on_exec, ...) are declared as one u64 ``flags``
    so the bit positions are explicit constants above instead of depending on ctypes' bitfield
    packing. Unions are represented by their first member; they are all 0 for counting.
    """

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("reserved_2", ctypes.c_uint16),
    ]


def build_attr(event: str, user_only: bool) -> PerfEventAttr:
    """Build the attr perf stat would use for ``EVENT`` (or ``EVENT:u`` when user_only) on a workload."""
    ev_type, config = EVENTS[event]
    attr = PerfEventAttr()
    attr.type = ev_type
    attr.size = ctypes.sizeof(PerfEventAttr)
    attr.config = config
    attr.read_format = READ_FORMAT
    flags = FLAG_DISABLED | FLAG_INHERIT | FLAG_ENABLE_ON_EXEC
    if user_only:
        flags |= FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV
    attr.flags = flags
    return attr


class ProbeError(Exception):
    """A failure of the probe itself: reported as one stderr line and a non-zero exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def errno_text(err: int) -> str:
    """``ENOENT: No such file or directory``: symbolic name for machines, strerror for humans."""
    return f"{errno_mod.errorcode.get(err, f'E{err}')}: {os.strerror(err)}"


class PerfEventOpen:
    """The perf_event_open syscall through ctypes, resolved for the running architecture."""

    def __init__(self) -> None:
        machine = platform.machine()
        if machine not in SYSCALL_NUMBERS:
            raise ProbeError(
                f"unsupported architecture {machine!r} (supported: {', '.join(sorted(SYSCALL_NUMBERS))})",
                EXIT_PLATFORM,
            )
        self.number = SYSCALL_NUMBERS[machine]
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._syscall = libc.syscall
        except (OSError, AttributeError) as exc:
            raise ProbeError(f"cannot load libc syscall(): {exc}", EXIT_PLATFORM) from exc
        self._syscall.restype = ctypes.c_long
        self._syscall.argtypes = [
            ctypes.c_long,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_ulong,
        ]

    def open(self, attr: PerfEventAttr, pid: int) -> int:
        """Open a counter on ``pid`` for any CPU; returns the fd or raises OSError with the errno."""
        fd = self._syscall(self.number, ctypes.addressof(attr), pid, -1, -1, PERF_FLAG_FD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(fd)


def empty_event() -> dict[str, object]:
    """The JSON shape of one event; every field present so consumers never need .get()."""
    return {"value": None, "time_enabled": None, "time_running": None, "errno": None, "error": None}


def decode_status(status: int) -> int:
    """waitpid status -> exit code; -SIGNAL when killed (subprocess's convention; 3.8 lacks waitstatus_to_exitcode)."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return -1


def _child(go_r: int, err_w: int, workload: Sequence[str], cpu: int | None, discard: bool) -> NoReturn:
    """Runs in the forked child: prepare, wait for the go byte, exec. Never returns into the parent's code."""
    stage = "setup"
    try:
        # Python ignores SIGPIPE/SIGXFSZ and SIG_IGN survives execve; perf's workload gets the defaults.
        for name in ("SIGPIPE", "SIGXFSZ"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        if cpu is not None:
            stage = "affinity"
            os.sched_setaffinity(0, {cpu})
        stage = "redirect"
        if discard:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
        else:
            os.dup2(2, 1)  # the workload's stdout must not mix into our JSON
        stage = "wait"
        if os.read(go_r, 1) != b"g":
            os._exit(EXIT_NOEXEC)  # parent gave up before releasing us: do not run the workload uncounted
        stage = "exec"
        os.execvp(workload[0], list(workload))
    except OSError as exc:
        code = exc.errno or 0
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
        code = 0
    try:
        os.write(err_w, f"{stage}:{code}".encode("ascii"))
    finally:
        os._exit(EXIT_NOTFOUND if code == errno_mod.ENOENT else EXIT_NOEXEC)


def run_once(
    opener: PerfEventOpen,
    events: Sequence[str],
    workload: Sequence[str],
    user_only: bool,
    cpu: int | None,
    discard: bool,
) -> dict[str, object]:
    """Fork, count and wait for one run of the workload; returns the run's JSON object."""
    go_r, go_w = os.pipe()  # both O_CLOEXEC (PEP 446)
    err_r, err_w = os.pipe()  # err_w closes on a successful exec: EOF means "the workload is running"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(go_w)
        os.close(err_r)
        _child(go_r, err_w, workload, cpu, discard)
    os.close(go_r)
    os.close(err_w)
    fds: dict[str, int] = {}
    results: dict[str, dict[str, object]] = {}
    old_sigint = None
    try:
        for name in events:
            results[name] = empty_event()
            try:
                fds[name] = opener.open(build_attr(name, user_only), pid)
            except OSError as exc:
                results[name]["errno"] = exc.errno
                results[name]["error"] = errno_text(exc.errno or 0)
        # Like perf stat: Ctrl-C goes to the workload (same process group); we stay to report.
        old_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
        started = time.monotonic()
        os.write(go_w, b"g")
        os.close(go_w)
        go_w = -1
        report = b""
        while True:
            chunk = os.read(err_r, 64)
            if not chunk:
                break
            report += chunk
        _, status = os.waitpid(pid, 0)
        pid = -1
        wall = time.monotonic() - started
        if report:
            stage, _, code_text = report.decode("ascii", "replace").partition(":")
            code = int(code_text) if code_text.isdigit() else 0
            exit_code = EXIT_NOTFOUND if code == errno_mod.ENOENT else EXIT_NOEXEC
            what = errno_text(code) if code else "unexpected error"
            if stage == "exec":
                raise ProbeError(f"cannot execute workload {workload[0]!r}: {what}", exit_code)
            raise ProbeError(f"workload child failed during {stage}: {what}", EXIT_NOEXEC)
        for name, fd in fds.items():
            try:
                data = os.read(fd, READ_LAYOUT.size)
                if len(data) != READ_LAYOUT.size:
                    raise OSError(errno_mod.EIO, f"short read of {len(data)} bytes")
                value, enabled, running = READ_LAYOUT.unpack(data)
                results[name].update(value=value, time_enabled=enabled, time_running=running)
            except OSError as exc:
                results[name]["errno"] = exc.errno
                results[name]["error"] = "read: " + errno_text(exc.errno or 0)
        return {"exit_code": decode_status(status), "wall_seconds": round(wall, 6), "events": results}
    finally:
        if old_sigint is not None:
            signal.signal(signal.SIGINT, old_sigint)
        for fd in fds.values():
            os.close(fd)
        if go_w >= 0:
            os.close(go_w)  # child reads EOF and exits without running the workload
        os.close(err_r)
        if pid > 0:
            os.waitpid(pid, 0)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are the one stderr line the controller shows, not usage + message."""

    def error(self, message: str) -> NoReturn:
        raise ProbeError(message, EXIT_USAGE)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Split at ``--`` ourselves: everything after it is the workload, verbatim (it may look like options)."""
    parser = _Parser(
        prog="pmc_reader.py",
        description="Count a workload with perf_event_open in the scope of `perf stat -e EVENTS -- WORKLOAD`.",
    )
    parser.add_argument(
        "--events", default=DEFAULT_EVENTS, help="comma-separated perf event names (default: %(default)s)"
    )
    parser.add_argument(
        "--user-only", action="store_true", help="exclude kernel and hypervisor, like perf's :u modifier"
    )
    parser.add_argument("--repeat", type=int, default=1, help="run the workload N times, each run reported")
    parser.add_argument("--cpu", type=int, default=None, help="pin the workload to CPU K before exec")
    parser.add_argument(
        "--discard-output",
        action="store_true",
        help="send the workload's stdout and stderr to /dev/null instead of our stderr",
    )
    argv = list(argv)
    if "--" not in argv:
        if "-h" in argv or "--help" in argv:
            parser.parse_args(argv)
        raise ProbeError("missing '-- WORKLOAD ARGS...'", EXIT_USAGE)
    cut = argv.index("--")
    args = parser.parse_args(argv[:cut])
    args.workload = argv[cut + 1 :]
    if not args.workload:
        raise ProbeError("empty workload after '--'", EXIT_USAGE)
    names: list[str] = []
    for name in (part.strip() for part in args.events.split(",")):
        if not name:
            continue
        if ":" in name:
            raise ProbeError(
                f"event modifiers are not supported ({name!r}); use --user-only for :u", EXIT_USAGE
            )
        if name not in EVENTS:
            raise ProbeError(f"unknown event {name!r} (known: {', '.join(sorted(EVENTS))})", EXIT_USAGE)
        if name not in names:
            names.append(name)
    if not names:
        raise ProbeError("no events given", EXIT_USAGE)
    args.events = names
    if args.repeat < 1:
        raise ProbeError(f"--repeat must be >= 1, got {args.repeat}", EXIT_USAGE)
    if args.cpu is not None:
        allowed = os.sched_getaffinity(0)
        if args.cpu not in allowed:
            raise ProbeError(
                f"--cpu {args.cpu} is not in this process's CPU set {sorted(allowed)}", EXIT_USAGE
            )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (see the module docstring)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        opener = PerfEventOpen()
        runs = [
            run_once(opener, args.events, args.workload, args.user_only, args.cpu, args.discard_output)
            for _ in range(args.repeat)
        ]
    except ProbeError as exc:
        sys.stderr.write(f"pmc_reader: error: {exc}\n")
        return exc.exit_code
    document = {
        "probe": PROBE_NAME,
        "version": PROBE_VERSION,
        "arch": platform.machine(),
        "pid_scope": PID_SCOPE,
        "user_only": bool(args.user_only),
        "cpu": args.cpu,
        "runs": runs,
    }
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
