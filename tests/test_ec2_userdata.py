"""The self-destruct script (cleanup layer 2), run for real in a temp dir with parametrised paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.providers.ec2 import userdata

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash not installed")


def _render(tmp: Path, ttl: int, init: userdata.Init) -> str:
    return userdata.render(
        ttl=ttl,
        state_dir=str(tmp / "etc perfci"),  # a space: quoting is part of what is tested
        systemd_dir=str(tmp / "systemd"),
        cron_dir=str(tmp / "cron.d"),
        init=init,
        shutdown=f"touch '{tmp}/shutdown-called'",
        systemctl=f"echo >> '{tmp}/systemctl.log'",
    )


def _run(script: str, tmp: Path, env: dict[str, str] | None = None) -> None:
    path = tmp / "user-data.sh"
    path.write_text(script)
    subprocess.run([BASH, "-n", str(path)], check=True)
    subprocess.run([BASH, str(path)], check=True, capture_output=True, timeout=30,
                   env={**os.environ, **(env or {})})


def test_default_script_is_valid_bash_and_targets_real_paths() -> None:
    text = userdata.render(ttl=timedelta(hours=1))
    proc = subprocess.run([BASH, "-n"], check=False, input=text, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert text.startswith("#!/bin/bash")
    assert "STATE_DIR=/etc/perfci" in text and "shutdown -h now" in text
    assert "Persistent=true" in text and "enable --now perfci-expire.timer" in text


def test_cron_variant_writes_deadline_and_fires_only_after_it(tmp_path: Path) -> None:
    (tmp_path / "cron.d").mkdir()
    before = int(time.time())
    _run(_render(tmp_path, 3600, "cron"), tmp_path)
    state = tmp_path / "etc perfci"
    assert before + 3600 <= int((state / "expires-at").read_text()) <= int(time.time()) + 3600
    assert "check-deadline" in (tmp_path / "cron.d" / "perfci-expire").read_text()
    check = state / "check-deadline"
    subprocess.run([str(check)], check=True)
    assert not (tmp_path / "shutdown-called").exists(), "fired before the deadline"
    (state / "expires-at").write_text(f"{int(time.time()) - 1}\n")
    subprocess.run([str(check)], check=True)
    assert (tmp_path / "shutdown-called").exists()
    assert "passed" in (state / "fired").read_text()


def test_deadline_counts_from_the_host_clock_at_boot_not_the_controllers(tmp_path: Path) -> None:
    """User data carries a TTL; the host adds it to its own clock at boot. A host whose clock is 2 h
    ahead (libfaketime on the script) writes a deadline 2 h + TTL ahead of this machine's time."""
    from tests import faketime

    if faketime.library() is None:
        pytest.skip("libfaketime not installed (./install.sh --dev installs the faketime package)")
    (tmp_path / "cron.d").mkdir()
    _run(_render(tmp_path, 600, "cron"), tmp_path, env=faketime.skewed("+2h"))
    written = int((tmp_path / "etc perfci" / "expires-at").read_text())
    assert abs(written - (time.time() + 2 * 3600 + 600)) < 30


def test_render_takes_a_ttl_keyword_only() -> None:
    """An old call with an absolute epoch (positional) fails loudly instead of arming a 60-year TTL."""
    with pytest.raises(TypeError):
        userdata.render(1_900_000_000)  # type: ignore[misc]
    with pytest.raises(ValueError, match="negative"):
        userdata.render(ttl=-1)
    assert "TTL=5400" in userdata.render(ttl=timedelta(minutes=90))


def test_garbled_deadline_fires_missing_disarms(tmp_path: Path) -> None:
    (tmp_path / "cron.d").mkdir()
    _run(_render(tmp_path, 3600, "cron"), tmp_path)
    state = tmp_path / "etc perfci"
    (state / "expires-at").unlink()
    subprocess.run([str(state / "check-deadline")], check=True)
    assert not (tmp_path / "shutdown-called").exists()
    (state / "expires-at").write_text("17000abc\n")
    subprocess.run([str(state / "check-deadline")], check=True)
    assert (tmp_path / "shutdown-called").exists()


def test_systemd_variant_writes_persistent_timer_and_enables_it(tmp_path: Path) -> None:
    _run(_render(tmp_path, 60, "systemd"), tmp_path)
    timer = (tmp_path / "systemd" / "perfci-expire.timer").read_text()
    service = (tmp_path / "systemd" / "perfci-expire.service").read_text()
    assert "Persistent=true" in timer and "WantedBy=timers.target" in timer
    assert f"ExecStart={tmp_path}/etc perfci/check-deadline" in service
    log = (tmp_path / "systemctl.log").read_text()
    assert "daemon-reload" in log and "enable --now perfci-expire.timer" in log


def test_extend_deadline_rewrites_the_file_through_a_host(tmp_path: Path) -> None:
    (tmp_path / "cron.d").mkdir()
    _run(_render(tmp_path, 0, "cron"), tmp_path)  # expires at once
    state = tmp_path / "etc perfci"
    new = int(time.time()) + 7200
    userdata.extend_deadline(LocalHost("local"), new, state_dir=str(state))
    assert (state / "expires-at").read_text().strip() == str(new)
    subprocess.run([str(state / "check-deadline")], check=True)
    assert not (tmp_path / "shutdown-called").exists(), "the heartbeat's new deadline was ignored"


class _FakeEC2:
    """Records CreateTags calls (the only EC2 call a Heartbeat makes)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def create_tags(self, **kw: object) -> None:
        self.calls.append(kw)


def test_heartbeat_pushes_tags_and_host_deadline_then_stops(tmp_path: Path) -> None:
    (tmp_path / "cron.d").mkdir()
    _run(_render(tmp_path, 60, "cron"), tmp_path)
    state = tmp_path / "etc perfci"
    ec2 = _FakeEC2()
    fixed = datetime(2030, 1, 1, tzinfo=UTC)
    hb = userdata.Heartbeat(
        ec2, ttl=timedelta(hours=2), interval=0.05, resources=lambda: ["i-1", "sg-1"],
        hosts=lambda: [LocalHost("local")], state_dir=str(state), clock=lambda: fixed,
    ).start()
    deadline = time.monotonic() + 10
    while hb.beats < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    hb.stop()
    beats = hb.beats
    assert beats >= 2
    assert ec2.calls[0] == {"Resources": ["i-1", "sg-1"],
                            "Tags": [{"Key": "perfci:expires-at", "Value": "2030-01-01T02:00:00Z"}]}
    assert (state / "expires-at").read_text().strip() == str(int((fixed + timedelta(hours=2)).timestamp()))
    time.sleep(0.2)
    assert hb.beats == beats, "heartbeat kept beating after stop()"
