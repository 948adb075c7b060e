"""Cleanup layer 2: the instance switches itself off at its deadline, whatever became of pytest.

User data carries the run's TTL, not a time: at first boot the host writes its deadline as *its own
clock* + TTL (epoch seconds) to /etc/perfci/expires-at, installs a checker script and runs it every
minute: a systemd timer (OnCalendar=minutely, Persistent=true, enabled so it comes back after a
reboot), else a cron.d line, else a background loop. When the deadline has passed the checker runs
`shutdown -h now`; the instance was launched with InstanceInitiatedShutdownBehavior=terminate, so
power-off is termination.

When the host is ready (SSH answers, cloud-init done) the provider restarts its deadline at
readiness + TTL, on the host and in its perfci:expires-at tags (:meth:`Heartbeat.ready`): a slow boot
no longer eats the TTL, and a controller clock off by hours never reaches the host (issue 16). While the
session lives, `Heartbeat` pushes the deadline forward on the host (`extend_deadline`, an atomic
rewrite over SSH) and in the tag (CreateTags): a dead controller stops extending it, and the machine
goes away at most one TTL later. Between launch and readiness the tag (launch + TTL) is at most the
boot time earlier than the host's own deadline (boot + TTL).

Interface (issue 16 changed it; the twins of issue 12 run this script at boot too):
``render(ttl=<seconds or timedelta>, ...)`` -- keyword-only, so an old positional call with an
absolute epoch fails loudly instead of arming a 50-year TTL. ``extend_deadline(host, epoch)`` and
the deadline file's format are unchanged.

Semantics of the deadline file: missing = disarmed (an operator's explicit way to keep a host);
present but not a number = expired (fail safe: a torn or garbled file must not keep a machine alive).
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pytest_perfci.tags import TAG_EXPIRES
from pytest_perfci.tags import stamp as tag_stamp

log = logging.getLogger(__name__)

STATE_DIR = "/etc/perfci"
SYSTEMD_DIR = "/etc/systemd/system"
CRON_DIR = "/etc/cron.d"
UNIT = "perfci-expire"

Init = Literal["auto", "systemd", "cron", "loop"]

_TEMPLATE = """\
#!/bin/bash
# perfci self-destruct (cleanup layer 2): power off at the run's deadline.
# Deadline file: missing = disarmed; not a number = expired. Written by pytest-perfci.
set -u
STATE_DIR={state_dir}
SYSTEMD_DIR={systemd_dir}
CRON_DIR={cron_dir}
INIT={init}
TTL={ttl}
mkdir -p "$STATE_DIR"
# The deadline counts from this host's own clock at boot (not the controller's); readiness restarts it.
echo $(( $(date +%s) + TTL )) > "$STATE_DIR/expires-at.tmp" && mv -f "$STATE_DIR/expires-at.tmp" "$STATE_DIR/expires-at"

cat > "$STATE_DIR/check-deadline" <<'PERFCI_EOF'
#!/bin/sh
# Run every minute; powers the machine off once the deadline in expires-at has passed.
f={state_dir_q}/expires-at
[ -e "$f" ] || exit 0
deadline=$(cat "$f" 2>/dev/null)
now=$(date +%s)
case "$deadline" in
  ''|*[!0-9]*) reason="unreadable deadline '$deadline'" ;;
  *) [ "$now" -ge "$deadline" ] || exit 0; reason="deadline $deadline passed (now $now)" ;;
esac
logger -t perfci "self-destruct: $reason" 2>/dev/null || true
echo "perfci self-destruct: $reason" > {state_dir_q}/fired
{shutdown}
PERFCI_EOF
chmod 0755 "$STATE_DIR/check-deadline"

if [ "$INIT" = auto ]; then
  if command -v {systemctl} >/dev/null 2>&1 && [ -d /run/systemd/system ]; then INIT=systemd
  elif [ -d "$CRON_DIR" ] && {{ command -v crond >/dev/null 2>&1 || command -v cron >/dev/null 2>&1; }}; then INIT=cron
  else INIT=loop
  fi
fi

case "$INIT" in
systemd)
  mkdir -p "$SYSTEMD_DIR"
  cat > "$SYSTEMD_DIR/{unit}.service" <<PERFCI_EOF
[Unit]
Description=perfci self-destruct check
[Service]
Type=oneshot
ExecStart=$STATE_DIR/check-deadline
PERFCI_EOF
  cat > "$SYSTEMD_DIR/{unit}.timer" <<PERFCI_EOF
[Unit]
Description=perfci self-destruct timer
[Timer]
OnBootSec=1min
OnCalendar=minutely
Persistent=true
AccuracySec=10s
[Install]
WantedBy=timers.target
PERFCI_EOF
  {systemctl} daemon-reload
  {systemctl} enable --now {unit}.timer
  ;;
cron)
  echo "* * * * * root $STATE_DIR/check-deadline" > "$CRON_DIR/{unit}"
  chmod 0644 "$CRON_DIR/{unit}"
  ;;
*)
  nohup sh -c "while :; do '$STATE_DIR/check-deadline'; sleep 60; done" >/dev/null 2>&1 &
  ;;
esac
"""


def render(
    *,
    ttl: int | timedelta,
    state_dir: str = STATE_DIR,
    systemd_dir: str = SYSTEMD_DIR,
    cron_dir: str = CRON_DIR,
    init: Init = "auto",
    shutdown: str = "shutdown -h now",
    systemctl: str = "systemctl",
    prepare: str = "",
) -> str:
    """The user-data script; the host's deadline is its clock at boot + ``ttl`` (seconds or a timedelta).
    Paths and commands are parameters so tests can run it in a temp dir.

    `prepare` (prepare.script.boot_snippet) installs what the suites need after the self-destruct is
    armed, so a slow or failing package install can never leave a machine without its deadline."""
    seconds = int(ttl.total_seconds()) if isinstance(ttl, timedelta) else int(ttl)
    if seconds < 0:
        raise ValueError(f"ttl {seconds}s is negative; the self-destruct needs a TTL of 0 s or more")
    return _TEMPLATE.format(
        ttl=seconds,
        state_dir=shlex.quote(state_dir),
        state_dir_q=shlex.quote(state_dir),
        systemd_dir=shlex.quote(systemd_dir),
        cron_dir=shlex.quote(cron_dir),
        init=init,
        shutdown=shutdown,
        systemctl=systemctl,
        unit=UNIT,
    ) + prepare


def extend_deadline(host: Any, new_epoch: int, *, state_dir: str = STATE_DIR, timeout: float = 30) -> None:
    """Move the on-host deadline to `new_epoch` (atomic write + rename, as root)."""
    f = shlex.quote(f"{state_dir}/expires-at")
    tmp = shlex.quote(f"{state_dir}/expires-at.tmp")
    host.sudo(f"echo {int(new_epoch)} > {tmp} && mv -f {tmp} {f}", timeout=timeout)


def epoch(dt: datetime) -> int:
    return int(dt.timestamp())


class Heartbeat:
    """A daemon thread that every `interval` seconds moves the deadline to now + ttl, in tags and on hosts.

    `resources()` returns the EC2 ids to retag (instances, security groups, key pair ids); `hosts()`
    the handles whose on-host deadline to rewrite. Failures are reported through `progress` and never
    stop the beat: one unreachable host must not let the others expire.
    """

    def __init__(
        self,
        ec2: Any,
        *,
        ttl: timedelta,
        interval: float,
        resources: Callable[[], Iterable[str]],
        hosts: Callable[[], Iterable[Any]] = lambda: (),
        progress: Callable[[str], None] = print,
        state_dir: str = STATE_DIR,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ec2 = ec2
        self.ttl = ttl
        self.interval = float(interval)
        self.resources = resources
        self.hosts = hosts
        self.progress = progress
        self.state_dir = state_dir
        self.clock = clock
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="perfci-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        """One push: tags first (cheap, one call), then each host."""
        self._push(sorted(set(self.resources())), list(self.hosts()))
        self.beats += 1

    def ready(self, host: Any, ids: Iterable[str]) -> datetime:
        """A host just became ready: its deadline (on the host and in the tags of ``ids``, its instance
        and volumes) restarts at now + ttl, so the boot does not count against the TTL. Returns it."""
        return self._push(sorted(set(ids)), [host])

    def _push(self, ids: list[str], hosts: list[Any]) -> datetime:
        when = self.clock() + self.ttl
        if ids:
            try:
                self.ec2.create_tags(Resources=ids, Tags=[{"Key": TAG_EXPIRES, "Value": tag_stamp(when)}])
            except Exception as e:  # noqa: BLE001 (reported, next beat retries)
                self.progress(f"heartbeat: could not extend {TAG_EXPIRES} tags: {e}")
        for host in hosts:
            try:
                extend_deadline(host, epoch(when), state_dir=self.state_dir)
            except Exception as e:  # noqa: BLE001
                self.progress(f"heartbeat: could not extend the deadline on {getattr(host, 'name', host)}: {e}")
        return when

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def now_epoch() -> int:
    return int(time.time())
