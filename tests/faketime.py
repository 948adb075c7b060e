"""libfaketime (Debian's `faketime` package, installed by ./install.sh --dev) for a skewed clock in a
child process: LD_PRELOAD shifts what gettimeofday/clock_gettime(CLOCK_REALTIME) return, so Python's
time.time() and datetime.now() in that process are hours off while the moto server's Date header (its
own process) stays true. CLOCK_MONOTONIC moves by the same constant offset, so intervals and timeouts
are unchanged; leaving it alone (DONT_FAKE_MONOTONIC=1) breaks Python's sleeps under a negative offset
(libfaketime 0.9.10 rewrites clock_nanosleep's absolute deadline: EINVAL in subprocess.run(timeout=)).
"""

from __future__ import annotations

import glob


def library() -> str | None:
    """Path of libfaketime.so.1, or None when the package is not installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


def skewed(offset: str) -> dict[str, str]:
    """Environment variables making a child's clock run ``offset`` off ("+3h", "-90m", as FAKETIME takes)."""
    lib = library()
    if lib is None:
        raise RuntimeError("libfaketime is not installed (apt-get install faketime; ./install.sh --dev does it)")
    return {"LD_PRELOAD": lib, "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "0"}
