"""Host preparation: the needs table, the one script (run for real on this machine, read-only or dry-run),
named reasons from recorded apt/dnf failures, facts, the EC2 boot path on moto + loopback sshd, and the
plugin's once-per-host preparation and reset hooks."""

from __future__ import annotations

import base64
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_perfci.checks.expectations import decide
from pytest_perfci.checks.pmc import PmcContext, Reason, Status, judge_counter, judge_probe_alone, one_reader
from pytest_perfci.hosts.local import LocalHost
from pytest_perfci.models.facts import parse_facts
from pytest_perfci.models.preparation import MARK, failure_reason, parse
from pytest_perfci.prepare import host as prepare_host
from pytest_perfci.prepare.needs import NeedError, install_command, normalise, packages, tool
from pytest_perfci.prepare.script import boot_snippet, render
from pytest_perfci.providers.ec2 import EC2Provider
from pytest_perfci.results.model import ResultRecord
from pytest_perfci.results.states import State, cell_verdict
from tests.conftest import SAMPLES
from tests.moto_server import MotoServer
from tests.sshd import SshdServer, sshd_server  # noqa: F401 (fixture)
from tests.test_ec2_provider import NOTHING, _provider, all_instances, make_settings, resources, sshd_address

PREP = SAMPLES / "prepare"
KERNEL = platform.release()


# -- the needs table -----------------------------------------------------------------------------------


def test_perf_packages_per_family() -> None:
    assert packages("perf", "dnf", "6.1.115-126.197.amzn2023.x86_64") == ("perf",)
    assert packages("perf", "apt-debian", "6.1.0-27-cloud-amd64") == ("linux-perf",)
    # Ubuntu: the kernel-matched tools and the flavour's meta package (linux-tools-aws on AWS kernels)
    assert packages("perf", "apt-ubuntu", "6.8.0-1015-aws") == ("linux-tools-6.8.0-1015-aws", "linux-tools-aws")
    assert install_command("dnf", ["perf"]) == "sudo dnf install -y perf"


def test_unknown_needs_are_a_command_in_a_package_of_that_name_and_bad_names_are_one_line() -> None:
    assert tool("stress-ng").check == "command -v stress-ng"
    assert packages("stress-ng", "apt-ubuntu", "6.8.0-1015-aws") == ("stress-ng",)
    assert normalise(["perf", "stress-ng", "perf"]) == ("perf", "stress-ng")
    with pytest.raises(NeedError, match=r"^perfci_needs: 'rm -rf /' is not a tool name"):
        normalise(["perf", "rm -rf /"])


# -- named reasons from recorded package-manager outputs --------------------------------------------------


@pytest.mark.parametrize(("sample", "fam", "reason"), [
    ("apt-unable-to-locate.txt", "apt-ubuntu", "apt: no package linux-tools-6.1.0-99-aws in the configured sources"),
    ("apt-no-candidate.txt", "apt-debian", "apt: package linux-tools-common is known but has no installable version"),
    ("apt-not-root.txt", "apt-debian", "apt: not root (dpkg lock permission denied); run with root or passwordless sudo"),
    ("dnf-no-match.txt", "dnf", "dnf: no package fastfetch in the enabled repositories"),
    ("dnf-metadata-unreachable.txt", "dnf", "dnf: the repository amazonlinux cannot be reached"),
])
def test_failure_reasons_from_recorded_outputs(sample: str, fam: str, reason: str) -> None:
    assert failure_reason(fam, (PREP / sample).read_text(), 100) == reason


def test_an_output_no_rule_knows_keeps_the_tools_own_error_line() -> None:
    assert failure_reason("apt-debian", "Reading package lists...\nE: Sub-process /usr/bin/dpkg returned an error "
                          "code (1)\n", 100) == ("apt-debian exit status 100: E: Sub-process /usr/bin/dpkg returned "
                                                 "an error code (1)")
    assert failure_reason("", "sudo: a password is required\n", 1).startswith("sudo needs a password")


def test_a_failed_record_carries_the_reason_from_its_log() -> None:
    log = "".join(f"| {line}\n" for line in (PREP / "apt-unable-to-locate.txt").read_text().splitlines())
    text = f"{MARK}\tperf\tfailed\tapt-ubuntu\tlinux-tools-6.1.0-99-aws linux-tools-aws\t\t100\n{log}"
    (p,) = parse("h", text).items
    assert (p.status, p.usable, p.packages) == ("failed", False, ("linux-tools-6.1.0-99-aws", "linux-tools-aws"))
    assert p.line() == "perf not installed: apt: no package linux-tools-6.1.0-99-aws in the configured sources"
    assert "E: Unable to locate package linux-tools-aws" in p.log


# -- the script, run for real on this machine (plan and dry run only: nothing is changed) --------------------


def _run(script: str, path: str | None = None) -> str:
    env = {**os.environ, "LC_ALL": "C"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120, env=env,
                          check=True).stdout


def _path_without(tmp: Path, *hidden: str) -> str:
    """A PATH of symlinks to this machine's tools minus `hidden`: the host as a fresh image sees it."""
    d = tmp / "bin"
    d.mkdir()
    for name in ("sh", "sed", "head", "tr", "uname", "mktemp", "rm", "cat", "printf", "apt-get", "dnf"):
        real = shutil.which(name)
        if real and name not in hidden:
            (d / name).symlink_to(real)
    return str(d)


@pytest.mark.parametrize(("release", "fam", "pkgs"), [
    ("os-release-al2023.txt", "dnf", "perf"),
    ("os-release-ubuntu-24.04.txt", "apt-ubuntu", f"linux-tools-{KERNEL} linux-tools-{KERNEL.rsplit('-', 1)[-1]}"),
    ("os-release-debian-12.txt", "apt-debian", "linux-perf"),
])
def test_plan_on_recorded_images_names_the_family_packages_and_command(
        tmp_path: Path, release: str, fam: str, pkgs: str) -> None:
    out = _run(render(["perf"], "plan", os_release=str(PREP / release)), _path_without(tmp_path, "perf"))
    (p,) = parse("h", out).items
    assert (p.status, p.family, " ".join(p.packages)) == ("missing", fam, pkgs)
    expected = f"sudo dnf install -y {pkgs}" if fam == "dnf" else f"sudo apt-get update && sudo apt-get install -y {pkgs}"
    assert p.command == expected


def test_plan_on_this_machine_sees_its_real_perf(tmp_path: Path) -> None:
    if shutil.which("perf") is None:
        pytest.skip("perf not installed here")
    version = subprocess.run(["perf", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    (p,) = parse("h", _run(render(["perf"], "plan"))).items
    assert (p.status, p.version, p.usable) == ("present", version, True)


def test_unknown_image_is_unsupported_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "os-release").write_text('ID=plan9\n')
    (p,) = parse("h", _run(render(["stress-ng"], "plan", os_release=str(tmp_path / "os-release")),
                           _path_without(tmp_path))).items
    assert p.status == "unsupported" and p.reason == "no known package manager on this image (plan9)"


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian/Ubuntu)")
def test_dry_run_with_this_machines_apt_names_a_package_that_does_not_exist(tmp_path: Path) -> None:
    """apt-get -s for real (changes nothing): an absent package becomes the named reason, not a crash."""
    out = _run(render(["perfci-no-such-tool"], "simulate"), _path_without(tmp_path))
    (p,) = parse("h", out).items
    assert p.status == "failed"
    assert p.reason == "apt: no package perfci-no-such-tool in the configured sources"
    assert "E: Unable to locate package perfci-no-such-tool" in p.log


def test_local_host_plan_reports_missing_and_changes_nothing(tmp_path: Path) -> None:
    prep = prepare_host.run(LocalHost("local"), ["perfci-no-such-tool"], "plan")
    (p,) = prep.items
    assert p.status in ("missing", "unsupported")
    assert p.line().startswith("perfci-no-such-tool missing; not installed on a machine this run did not create: sudo")


# -- facts and the PMC context -----------------------------------------------------------------------------


def test_facts_record_what_was_installed_and_what_could_not_be() -> None:
    prepared = (f"{MARK}\tperf\tinstalled\tapt-debian\tlinux-perf\tperf version 6.1.158\t\n"
                f"{MARK}\tstress-ng\tfailed\tapt-debian\tstress-ng\t\t100\n| E: Unable to locate package stress-ng\n")
    facts = parse_facts(f"@@perfci:perf\nperf version 6.1.158\n@@perfci:prepared\n{prepared}@@perfci:end\n")
    assert facts.prepared == ("perf: linux-perf (perf version 6.1.158)",)
    assert facts.unprepared == ("stress-ng: apt: no package stress-ng in the configured sources",)
    assert parse_facts("@@perfci:prepared\n@@perfci:end\n").prepared == ()


def test_a_package_that_could_not_be_installed_is_the_named_reason_in_the_verdict() -> None:
    prepared = f"{MARK}\tperf\tfailed\tapt-ubuntu\tlinux-tools-6.8.0-1015-aws\t\t100\n| E: Unable to locate package linux-tools-6.8.0-1015-aws\n"
    facts = parse_facts(f"@@perfci:prepared\n{prepared}@@perfci:end\n")
    ctx = PmcContext.from_facts(facts, is_root=True)
    v = judge_counter(None, "cycles", ctx)
    assert v.reason is Reason.PERF_MISSING
    assert v.detail == "could not be installed: apt: no package linux-tools-6.8.0-1015-aws in the configured sources"


# -- one reader (perf absent, perf_event_open counts) --------------------------------------------------------


def test_one_reader_is_its_own_state_never_unavailable() -> None:
    ctx = PmcContext(perf_installed=False)
    v = one_reader("cycles", 52_288_305, ctx)
    assert (v.status, v.ok, v.value) == (Status.ONE_READER, False, 52_288_305)
    assert v.detail.startswith("counted by perf_event_open (52,288,305); the two readers were not compared because "
                               "perf is absent (no `perf --version` on the host")
    assert judge_probe_alone("cycles", None, 52_288_305, ctx).status is Status.ONE_READER
    assert judge_probe_alone("ref-cycles", 2, None, ctx).reason is Reason.NOT_SUPPORTED  # ENOENT: the PMU lacks it
    assert judge_probe_alone("cycles", None, 0.0, ctx).reason is Reason.ZERO


@pytest.mark.parametrize(("expected", "action"), [(("available", "src"), "pass"), (None, "xfail"),
                                                  (("unavailable", "src"), "fail"), (("zero", ""), "fail")])
def test_one_reader_against_expectations(expected: Any, action: str) -> None:
    assert decide("cycles", "one-reader", "counted by perf_event_open", expected).action == action


@pytest.mark.parametrize("outcome", ["passed", "xfailed"])
def test_matrix_shows_one_reader(outcome: str) -> None:
    detail = "one reader only: counted by perf_event_open (1); the two readers were not compared because perf is absent"
    rec = ResultRecord.model_validate({
        "kind": "capability", "run_id": "r", "target": "t", "name": "cycles", "verdict": "fail", "outcome": outcome,
        "metadata": {"detail": detail}})
    cell = cell_verdict(rec)
    assert (cell.state, cell.code) == (State.ONE_READER, "ONE-READER")


# -- EC2: installed at boot by the user data, read back over SSH (moto + loopback sshd) ----------------------


def test_boot_snippet_runs_and_leaves_records_the_provider_reads(tmp_path: Path) -> None:
    if shutil.which("perf") is None:
        pytest.skip("perf not installed here")
    state = tmp_path / "etc perfci"
    subprocess.run(["bash", "-c", boot_snippet(["perf"], str(state))], check=True, timeout=120)
    prep = prepare_host.read_boot(LocalHost("local"), state_file=str(state / "prepared"))
    assert [(p.need, p.status) for p in prep.items] == [("perf", "present")]
    assert boot_snippet([], str(state)) == ""


def test_ec2_user_data_installs_at_boot_and_prepare_reads_it_over_ssh(
    tmp_path: Path, moto: MotoServer, sshd_server: SshdServer  # noqa: F811
) -> None:
    """The needs declared at collection go into the user data (after the self-destruct); what the boot
    leaves is read back over SSH. moto does not boot anything, so the user data's preparation part is run
    here for real, on the machine the sshd serves, as cloud-init would."""
    if shutil.which("perf") is None:
        pytest.skip("perf not installed here")
    state = tmp_path / "host-state"
    ref: list[EC2Provider] = []
    lines: list[str] = []
    p = _provider(make_settings(tmp_path, moto, "m7i.large"), tmp_path, lines,
                  address=sshd_address(sshd_server, ref, []), waiter_delay=1, ssh_ready_timeout=30,
                  host_state_dir=str(state))
    ref.append(p)
    p.declare_needs(("perf",))
    try:
        ssh = p.acquire(p.targets()[0])
        (inst,) = all_instances(moto)
        ec2: Any = moto.client("ec2")
        ud = base64.b64decode(ec2.describe_instance_attribute(
            InstanceId=inst["InstanceId"], Attribute="userData")["UserData"]["Value"]).decode()
        snippet = boot_snippet(["perf"], str(state))
        assert ud.index("perfci self-destruct") < ud.index(snippet), "preparation must come after the deadline"
        assert ud.endswith(snippet)
        subprocess.run(["bash", "-c", snippet], check=True, timeout=120)  # what cloud-init runs at boot
        booted = (state / "prepared").stat().st_mtime_ns
        prep = p.prepare(ssh, ("perf",), allowed=False)
        assert (state / "prepared").stat().st_mtime_ns == booted, "read what the boot left, not installed again"
        assert not (state / "prepared-late").exists()
        assert [(i.need, i.status) for i in prep.items] == [("perf", "present")]
        assert prep.get("perf") is not None and prep.get("perf").version.startswith("perf version")  # type: ignore[union-attr]
    finally:
        p.release_all()
    assert resources(moto) == NOTHING


# -- the plugin: once per host, the users' hooks, --perfci-prepare --------------------------------------------

HOOKS_CONFTEST = '''
import pathlib
LOG = pathlib.Path(__file__).parent / "hooks.log"

def pytest_perfci_prepare_host(host, needs):
    with LOG.open("a") as fh:
        fh.write(f"prepare {host.name} {','.join(needs)} perf={host.facts.perf_version is not None}\\n")

def pytest_perfci_reset_host(host):
    with LOG.open("a") as fh:
        fh.write(f"reset {host.name}\\n")
'''
HOOKS_TESTS = '''
import pytest
pytestmark = pytest.mark.perfci_needs("perfci-no-such-tool")

def test_a(host):
    pass

@pytest.mark.perfci_reset
def test_b(host):
    pass

@pytest.mark.perfci_needs("perf")
def test_c(host, perfci_preparation):
    assert perfci_preparation.get("perfci-no-such-tool").status in ("missing", "unsupported")
'''


def test_hosts_are_prepared_once_missing_tools_reported_once_and_reset_after_marked_and_last(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HOOKS_CONFTEST)
    pytester.makepyfile(test_hooks=HOOKS_TESTS)
    alluredir = pytester.path / "allure"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--alluredir={alluredir}")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    missing = [ln for ln in out.splitlines() if "perfci-no-such-tool missing" in ln]
    assert len(missing) == 1, out
    assert missing[0].startswith("perfci: local: perfci-no-such-tool missing; not installed on a machine this run "
                                 "did not create: sudo ")
    has_perf = shutil.which("perf") is not None
    assert (pytester.path / "hooks.log").read_text().splitlines() == [
        f"prepare local perf,perfci-no-such-tool perf={has_perf}",
        "reset local",  # after test_b, which asked
        "reset local",  # after the last test
    ]
    assert out.count("pytest_perfci_reset_host") == 2 and out.count("local: pytest_perfci_prepare_host") == 1
    steps = " ".join(p.read_text() for p in alluredir.glob("*.json"))
    assert '"name": "prepare local: perf, perfci-no-such-tool"' in steps
    assert '"name": "pytest_perfci_prepare_host(local)"' in steps


def test_without_the_option_nothing_is_installed_on_this_machine_and_with_it_present_tools_stay(
        pytester: pytest.Pytester) -> None:
    if shutil.which("perf") is None:
        pytest.skip("perf not installed here")
    pytester.makepyfile("import pytest\n@pytest.mark.perfci_needs('perf')\ndef test_x(host, perfci_preparation):\n"
                        "    assert perfci_preparation.get('perf').status == 'present'\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--perfci-prepare")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["perfci: local: perf present (perf version *)"])


def test_a_bad_need_is_a_usage_error_before_anything_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.perfci_needs('perf; reboot')\ndef test_x(host):\n"
                        "    raise AssertionError('must not run')\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*perfci_needs: 'perf; reboot' is not a tool name*"])
