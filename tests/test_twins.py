"""Target twins for real: an arm64 Debian kernel under QEMU with an emulated PMUv3, over loopback SSH.

One guest is booted for the module and shared; the suite end to end and the killed-run check start
their own in a subprocess, as a user would. Skipped only when QEMU is missing (.ci/run installs it).
The first run builds the image from Debian's archive (about a minute), later runs use the cache.
Nothing here asserts a performance figure: a twin's counts are architectural.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_perfci.checks.perf_stat import parse_perf_stat
from pytest_perfci.checks.pmc import Reason, judge_multiplexing
from pytest_perfci.cleanup.ledger import Ledger
from pytest_perfci.collect.pmc import TWIN_WORKLOAD, perf_stat_shell
from pytest_perfci.hosts.ssh import HostKeyRejected, SSHHost
from pytest_perfci.providers.qemu import QemuProvider
from pytest_perfci.settings import Settings
from pytest_perfci.twins.guest import TwinError, marker
from pytest_perfci.twins.image import ImageBuilder, ImageBuildError

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None,
    reason="qemu-system-aarch64 not installed: apt-get install qemu-system-arm (.ci/run installs it)",
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _env() -> dict[str, str]:
    keep = ("PERFCI_TWIN_CACHE", "PERFCI_TWIN_MIRROR", "PERFCI_TWIN_SECURITY_MIRROR")
    return {k: v for k, v in os.environ.items() if not k.startswith("PERFCI_") or k in keep}


class Twin:
    def __init__(self, provider: QemuProvider, host: SSHHost, ledger: Ledger) -> None:
        self.provider, self.host, self.ledger = provider, host, ledger


class SuiteRun:
    def __init__(self, proc: subprocess.Popen[str], results: Path) -> None:
        self.proc, self.results = proc, results


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteRun]:
    """`pytest suites/pmc --provider=qemu` as a user runs it, started when the module's first guest is asked
    for, so that its guest and this module's own boot and work at once (the twin tests' time budget);
    test_suite_end_to_end_on_the_twin waits for it and judges it."""
    results = tmp_path_factory.mktemp("suite")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites/pmc", "--provider=qemu", "-rA", "-p", "no:cacheprovider",
         f"--perfci-results={results}", "--perfci-run-id=twin-suite"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), stdin=subprocess.DEVNULL,
    )
    try:
        yield SuiteRun(proc, results)
    finally:
        if proc.poll() is None:  # its test failed or was deselected mid-way: the run (and its guest) go
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory, suite_run: SuiteRun) -> Iterator[Twin]:
    results = tmp_path_factory.mktemp("twin")
    settings = Settings(provider="qemu", qemu={"machine": ("arm64-pmu",)}, results=results, run_id="twin-selftest")
    ledger = Ledger(results / "ledger.jsonl")
    provider = QemuProvider(settings, ledger=ledger, progress=lambda line: print(line, file=sys.stderr))
    try:
        host = provider.acquire(provider.targets()[0])
        yield Twin(provider, host, ledger)
    finally:
        provider.release_all()


def test_twin_is_an_arm64_kernel_with_a_real_pmu_driver(twin: Twin) -> None:
    facts = twin.host.facts
    assert (facts.arch, facts.twin, facts.hypervisor) == ("arm64", "arm64-pmu", "qemu-tcg")
    assert "armv8_pmuv3" in facts.pmu_devices and facts.core_pmu
    assert "armv8_pmuv3 PMU driver" in twin.host.run("dmesg", timeout=30).stdout
    assert twin.host.run("python3 -c 'import sys; print(sys.version_info[0])'", timeout=60).stdout.strip() == "3"


def test_host_key_was_known_before_boot_and_checked_strictly(twin: Twin, tmp_path: Path) -> None:
    guest = twin.provider._guests["arm64-pmu"]
    known = guest.known_hosts.read_text().split()
    assert known[0] == f"[127.0.0.1]:{guest.port}" and known[1] == "ssh-ed25519"
    server_key = twin.host.connection.transport.get_remote_server_key()  # type: ignore[union-attr]
    assert server_key.get_base64() == known[2]
    # The same guest with a known_hosts that does not list it: refused, as StrictHostKeyChecking=yes would.
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    stranger = SSHHost("x", "127.0.0.1", user="root", port=guest.port, key_filename=twin.provider._key_path,
                       known_hosts=empty, connect_timeout=30)
    with pytest.raises(HostKeyRejected):
        stranger.run("true", timeout=30)
    # The copy of the initramfs holding the private host key is gone once QEMU has loaded it.
    assert not (guest.workdir / "initrd.cpio").exists()


def test_guest_reaches_nothing(twin: Twin) -> None:
    """restrict=on: not even the host's loopback-forwarded gateway answers from inside."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = (f"import socket; s = socket.socket(); s.settimeout(3)\n"
                f"try:\n s.connect(('10.0.2.2', {port})); print('connected')\nexcept OSError as e: print('refused', e)")
        out = twin.host.run(["python3", "-c", code], timeout=60).stdout
    assert out.startswith("refused"), out


def test_multiplexing_is_named_live(twin: Twin) -> None:
    events = ["cycles:u", "instructions:u"] * 4 + ["cycles:u"]  # 9 events, 7 counters
    stat = parse_perf_stat(twin.host.run(perf_stat_shell(events, TWIN_WORKLOAD), timeout=300).stdout, sep=",")
    verdict = judge_multiplexing(stat)
    assert verdict.reason is Reason.MULTIPLEXED, verdict.line()


def test_image_build_failure_names_the_package(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_perfci.twins.image.PACKAGES", ("linux-perf", "no-such-package-perfci"))
    with pytest.raises(ImageBuildError, match=r"^cannot resolve linux-perf no-such-package-perfci for arm64: "
                                              r"E: Unable to locate package no-such-package-perfci$"):
        ImageBuilder("arm64", progress=lambda _: None).resolve()


def test_never_ready_guest_names_its_console_log_and_is_gone(twin: Twin, tmp_path: Path) -> None:
    settings = Settings(provider="qemu", results=tmp_path, run_id="twin-never-ready")
    provider = QemuProvider(settings, ledger=Ledger(tmp_path / "ledger.jsonl"), progress=lambda _: None,
                            ready_timeout=0.5)
    target = provider.targets()[0]
    with pytest.raises(TwinError) as info:
        provider.acquire(target)
    message = str(info.value)
    assert message.startswith("twin twin-never-ready-arm64-pmu: not SSH-ready within 0 s (QEMU killed); console log: ")
    assert "\n" not in message and Path(message.rsplit(": ", 1)[1]).exists()
    created = [e for e in Ledger(tmp_path / "ledger.jsonl").entries() if e.kind == "created"]
    assert len(created) == 1 and not _alive(int(created[0].id or 0))
    assert Ledger(tmp_path / "ledger.jsonl").outstanding() == []
    provider.release_all()


def test_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        settings = Settings(provider="qemu", results=tmp_path, qemu={"port": port})
        provider = QemuProvider(settings, ledger=Ledger(tmp_path / "ledger.jsonl"))
        with pytest.raises(TwinError, match=rf"^--qemu-port: 127.0.0.1:{port} \(for arm64-pmu\) is in use; "):
            provider.validate()
    assert not (tmp_path / "ledger.jsonl").exists()


def test_release_powers_the_guest_off(twin: Twin) -> None:
    guest = twin.provider._guests["arm64-pmu"]
    twin.provider.release_all()
    assert guest.process.returncode == 0  # QEMU exits 0 on the guest's power-off (on SIGTERM too: the next line tells)
    assert "reboot: Power down" in guest.console.read_text()
    assert twin.ledger.outstanding("twin-selftest") == []
    assert not twin.provider._key_path.exists()


def test_suite_end_to_end_on_the_twin(suite_run: SuiteRun) -> None:
    out, err = suite_run.proc.communicate(timeout=900)
    tmp_path = suite_run.results
    assert suite_run.proc.returncode == 0, out + err
    assert "8 passed" in out, out
    assert "twin arm64-pmu SSH-ready on 127.0.0.1:" in out
    cells = {r["capability"]: r for r in json.loads((tmp_path / "twin-suite" / "capabilities.json").read_text())}
    assert cells["pmu"]["ok"] and cells["cycles"]["ok"] and cells["instructions"]["ok"]
    assert "exactly the expected 1" in cells["cpi"]["detail"]
    assert not cells["branch-misses"]["ok"] and not cells["cache-misses"]["ok"]
    assert Ledger(tmp_path / "ledger.jsonl").outstanding() == []


def test_killed_run_leaves_no_qemu(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites/pmc", "--provider=qemu", "-p", "no:cacheprovider",
         f"--perfci-results={tmp_path}", "--perfci-run-id=twin-killed"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), stdin=subprocess.DEVNULL,
    )
    ledger = Ledger(tmp_path / "ledger.jsonl")
    pid = None
    try:
        deadline = time.monotonic() + 300
        while pid is None and time.monotonic() < deadline and proc.poll() is None:
            pid = next((int(e.id) for e in ledger.entries() if e.kind == "created" and e.id), None)
            time.sleep(0.2)
        assert pid is not None and _alive(pid), "QEMU never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"QEMU {pid} outlived the SIGKILLed pytest"


@pytest.mark.parametrize("by", ["ledger", "run-id", "expired"])
def test_perfci_reap_finds_a_guest_and_kills_it(tmp_path: Path, by: str) -> None:
    """Layer 3: a guest whose run died without taking it along (here: its parent is alive, so the
    death signal never fires) is found and killed with no AWS anywhere: through the run's ledger, or
    (no ledger) by the run id and expires-at its QEMU command line carries. A guest of the same run id,
    already expired, under another results tree is not the reap's: it stays."""
    from pytest_perfci.tags import stamp
    from pytest_perfci.twins.guest import new_keypair, start_guest
    from pytest_perfci.twins.machines import MACHINES

    image = ImageBuilder("arm64", progress=lambda _: None).build()
    _, public = new_keypair()
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    expired = stamp(datetime.now(UTC) - timedelta(minutes=1))
    guests = [start_guest(MACHINES["arm64-pmu"], image, root / "twins" / "twin-reaped" / "arm64-pmu",
                          label="twin-reaped-arm64-pmu", authorized_key=public, expires_at=expired)
              for root in (results, elsewhere)]
    guest, other = guests
    ledger = Ledger(results / "ledger.jsonl")
    ledger.record("twin-reaped", "created", "qemu_guest", id=str(guest.pid),
                  data={"machine": "arm64-pmu", "marker": marker("twin-reaped-arm64-pmu", expired)})
    select = {"ledger": ["--ledger", str(ledger.path)], "run-id": ["--run-id", "twin-reaped"],
              "expired": ["--expired"]}[by]
    try:
        env = {k: v for k, v in _env().items() if not k.startswith("AWS_")}
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull  # no region, no credentials
        reap = [sys.executable, "-m", "pytest_perfci.cli", "reap", *select, "--results", str(results)]
        dry = subprocess.run(reap, capture_output=True, text=True, timeout=120, env=env, check=False)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert str(guest.pid) in dry.stdout and "qemu_guest" in dry.stdout and guest.alive()
        assert str(other.pid) not in dry.stdout, dry.stdout
        if by != "ledger":
            assert "searching this machine's twin guests only" in dry.stderr, dry.stderr
            assert (f"expired {expired}" if by == "expired" else "tagged perfci:run-id=twin-reaped") in dry.stdout
        proc = subprocess.run([*reap, "--yes"], capture_output=True, text=True, timeout=120, env=env, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert ": 1 deleted, 0 already gone, 0 failed" in proc.stdout, proc.stdout
        guest.process.wait(30)
        assert guest.process.returncode == -9
        assert other.alive(), "a guest of another results tree was reaped"
        # Only a ledger reap writes the ledger (as for EC2: --run-id/--expired go by what is listed).
        assert (ledger.outstanding() == []) is (by == "ledger")
        again = subprocess.run(reap, capture_output=True, text=True, timeout=120, env=env, check=False)
        assert again.returncode == 0 and "nothing to reap" in again.stdout, again.stdout + again.stderr
    finally:
        for g in guests:
            g.kill()


def test_a_twin_without_perf_is_one_reader_unprepared_and_installs_perf_from_its_local_repository(
        tmp_path: Path) -> None:
    """Issue 13, deliverable 5: arm64-noperf ships no perf, only a file: apt repository holding linux-perf.
    Not asked (no --perfci-prepare): perf is reported missing once, nothing is installed, and the counters
    are one reader's. Asked: preparation installs linux-perf in the guest with apt, facts record it, and
    the two readers are compared. The two runs are independent and go at once (two guests, two cores)."""
    def start(run_id: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "suites/pmc", "--provider=qemu", "--qemu-machine=arm64-noperf",
             "-k", "cpi_count", "-rA", "-p", "no:cacheprovider", f"--perfci-results={tmp_path}",
             f"--perfci-run-id={run_id}", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), stdin=subprocess.DEVNULL,
        )

    def finish(proc: subprocess.Popen[str]) -> str:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, out + err
        return out

    look, prepared = start("noperf-look"), start("noperf-prepared", "--perfci-prepare")
    try:
        out, out_prepared = finish(look), finish(prepared)
    finally:
        for proc in (look, prepared):  # a failed assertion must not leave a run (and its guest) going
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    missing = [ln for ln in out.splitlines() if "perf missing" in ln]
    assert missing == [("perfci: arm64-noperf: perf missing; not installed on a machine this run did not create: "
                       "sudo apt-get update && sudo apt-get install -y linux-perf")], out
    cells = {r["capability"]: r for r in json.loads((tmp_path / "noperf-look" / "capabilities.json").read_text())}
    assert not cells["instructions"]["ok"]
    assert cells["instructions"]["detail"].startswith("one reader only: counted by perf_event_open (")
    assert "PMC instructions" in out and "1rdr ONE-READER" in out

    out = out_prepared
    assert re.search(r"^perfci: arm64-noperf: perf installed: linux-perf -> perf version \d", out, re.MULTILINE), out
    cells = {r["capability"]: r for r in json.loads((tmp_path / "noperf-prepared" / "capabilities.json").read_text())}
    assert cells["instructions"]["ok"] and "perf stat read" in cells["instructions"]["detail"]
    samples = [json.loads(line) for line in (tmp_path / "noperf-prepared" / "results.ndjson").read_text().splitlines()]
    infra = next(s["infrastructure"] for s in samples if s.get("infrastructure"))
    assert infra["perf_version"] and infra["prepared"][0].startswith("perf: linux-perf (perf version ")
    assert Ledger(tmp_path / "ledger.jsonl").outstanding() == []
