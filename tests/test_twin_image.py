"""The twin image builder's pure parts, the cpio writer, and the bad-input lines of the qemu provider."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_perfci.settings import SettingsError, load_settings
from pytest_perfci.twins.cpio import CpioWriter
from pytest_perfci.twins.guest import QemuMissing, TwinError, marker, parse_marker, require_qemu, start_guest
from pytest_perfci.twins.image import (
    NET_MODULES,
    AptRoot,
    Image,
    ImageBuilder,
    builtin_modules,
    image_key,
    load_order_error,
    module_depends,
    parse_simulation,
)
from pytest_perfci.twins.machines import MACHINES, UnknownMachine, machine

SIMULATION = """\
NOTE: This is only a simulation!
Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.12/stable, Debian-Security:12/stable-security [arm64])
Inst libc6 (2.36-9+deb12u14 Debian:12.12/stable [arm64])
Inst linux-image-6.1.0-57-arm64 (6.1.192-3 Debian-Security:12/stable-security [arm64])
Conf libc6 (2.36-9+deb12u14 Debian:12.12/stable [arm64])
"""


def test_simulation_gives_exact_versions() -> None:
    assert parse_simulation(SIMULATION) == {
        "gcc-12-base": "12.2.0-14+deb12u1", "libc6": "2.36-9+deb12u14", "linux-image-6.1.0-57-arm64": "6.1.192-3",
    }


def test_image_key_changes_with_any_version() -> None:
    pkgs = parse_simulation(SIMULATION)
    assert image_key("arm64", pkgs) == image_key("arm64", dict(reversed(list(pkgs.items()))))
    assert image_key("arm64", pkgs) != image_key("arm64", {**pkgs, "libc6": "2.36-9+deb12u15"})
    assert image_key("arm64", pkgs) != image_key("amd64", pkgs)


def test_private_apt_config_points_only_inside_its_root(tmp_path: Path) -> None:
    root = AptRoot(tmp_path / "apt", "arm64")
    root.prepare()
    conf = root.config.read_text()
    assert 'APT::Architecture "arm64";' in conf
    for key in ("Dir::State::status", "Dir::State::Lists", "Dir::Cache", "Dir::Etc::sourcelist"):
        line = next(ln for ln in conf.splitlines() if ln.startswith(key + " "))
        assert str(tmp_path) in line, line
    assert "[arch=arm64 " in (tmp_path / "apt/etc/sources.list").read_text()


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio(1) not installed (apt-get install cpio)")
def test_cpio_archive_unpacks_with_cpio_and_overlay_wins(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("base\n")
    (tree / "bin").mkdir()
    (tree / "bin/sh").symlink_to("busybox")
    buf = io.BytesIO()
    w = CpioWriter(buf)
    assert w.tree(tree) == len("base\n")
    w.close()
    o = CpioWriter(buf)
    o.file("etc/hostname", b"guest\n", 0o600)
    o.close()
    out = tmp_path / "out"
    out.mkdir()
    data = buf.getvalue()
    # GNU cpio stops at the first trailer; the kernel goes on to the overlay archive (checked by the live twin).
    subprocess.run(["cpio", "-idmu", "--quiet"], input=data, cwd=out, check=True)
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True, check=True)
    assert sorted(listing.stdout.decode().split()) == ["bin", "bin/sh", "etc", "etc/hostname"]
    assert (out / "bin/sh").readlink() == Path("busybox")
    assert (out / "etc/hostname").read_text() == "base\n"
    overlay = data[data.index(b"TRAILER!!!") + 10:].lstrip(b"\0")
    subprocess.run(["cpio", "-idmu", "--quiet"], input=overlay, cwd=out, check=True)
    assert (out / "etc/hostname").read_text() == "guest\n"
    assert (out / "etc/hostname").stat().st_mode & 0o777 == 0o600


def test_unknown_machine_is_one_line_naming_the_allowed() -> None:
    with pytest.raises(UnknownMachine) as info:
        machine("riscv-pmu")
    assert str(info.value) == ("--qemu-machine 'riscv-pmu' is not a twin machine; "
                               "allowed: arm64-pmu, arm64-partial, arm64-noperf, x86_64")
    with pytest.raises(SettingsError, match=r"^--qemu-machine: .*'riscv-pmu' is not a twin machine"):
        load_settings({"provider": "qemu", "qemu_machine": ["arm64-pmu,riscv-pmu"]}, env={})


def test_qemu_options_need_the_qemu_provider() -> None:
    with pytest.raises(SettingsError, match="apply to --provider=qemu, not --provider=local"):
        load_settings({"provider": "local", "qemu_machine": ["arm64-pmu"]}, env={})
    with pytest.raises(SettingsError, match="--provider=qemu boots twin machines .*, but instance types c7g.large"):
        load_settings({"qemu_machine": ["arm64-pmu"], "instance_type": ["c7g.large"]}, env={})
    assert load_settings({"qemu_machine": ["arm64-pmu"]}, env={}).effective_provider == "qemu"
    s = load_settings({"provider": "qemu", "qemu_machine": ["arm64-pmu,arm64-partial"]}, env={})
    assert s.qemu.machine == ("arm64-pmu", "arm64-partial")


@pytest.mark.parametrize(("name", "qemu", "package"), [("arm64-pmu", "qemu-system-aarch64", "qemu-system-arm"),
                                                      ("x86_64", "qemu-system-x86_64", "qemu-system-x86")])
def test_missing_qemu_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, qemu: str,
                                        package: str) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QemuMissing) as info:
        require_qemu(MACHINES[name])
    assert str(info.value) == f"{qemu} not found (needed for --qemu-machine {name}): apt-get install {package}"


def test_the_no_perf_variant_has_its_own_key_and_asks_for_apt() -> None:
    packages = {"linux-perf": "6.1.192-3", "python3.11": "3.11.2-6"}
    assert image_key("arm64", packages) != image_key("arm64", packages, perf=False)
    assert image_key("arm64", packages) == image_key("arm64", packages, perf=True)  # default images unchanged
    assert "apt" in ImageBuilder("arm64", perf=False).wanted and "apt" not in ImageBuilder("arm64").wanted


@pytest.mark.parametrize(("label", "expires"), [("run-1-arm64-pmu", "2026-12-04T03:15:47Z"), ("i-0abc", None)])
def test_guest_marker_carries_label_and_expiry_and_nothing_else_parses(label: str, expires: str | None) -> None:
    name = marker(label, expires)
    assert name.startswith("perfci-twin:") and "," not in name  # a comma would split QEMU's -name option
    assert parse_marker(name) == (label, expires)
    for other in ("perfci-twin", "perfci-twins:x", "qemu:run-1", ""):
        assert parse_marker(other) is None


def test_user_data_that_is_not_a_script_is_refused_before_anything_starts(tmp_path: Path) -> None:
    image = Image(arch="arm64", key="k", kernel=tmp_path / "kernel", initrd=tmp_path / "initrd", kernel_version="6",
                  packages={})
    with pytest.raises(TwinError, match=r"^twin i-1: user data starts with b'#cloud-config\\n"):
        start_guest(MACHINES["arm64-pmu"], image, tmp_path / "g", label="i-1", authorized_key="ssh-ed25519 AAAA",
                    user_data=b"#cloud-config\nruncmd: [true]\n")
    assert not (tmp_path / "g").exists()


# `depends=` of the NIC modules in Debian's linux-image-6.1.0-57-amd64 6.1.192-3, none of them in its
# modules.builtin (read from the package with `strings`); arm64's 6.1 builds virtio and virtio_ring in.
AMD64_DEPENDS = {
    "virtio": ("virtio_ring",), "virtio_ring": (), "virtio_mmio": ("virtio", "virtio_ring"),
    "virtio_pci_legacy_dev": (), "virtio_pci_modern_dev": (),
    "virtio_pci": ("virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"),
    "failover": (), "net_failover": ("failover",), "virtio_net": ("virtio_ring", "virtio", "net_failover"),
}


def test_module_depends_reads_modinfo_and_builtin_reads_module_names() -> None:
    ko = b"\x7fELF...\0license=GPL\0depends=virtio_ring,virtio,net_failover\0retpoline=Y\0name=virtio_net\0"
    assert module_depends(ko) == ("virtio_ring", "virtio", "net_failover")
    assert module_depends(b"\0license=GPL\0depends=\0name=virtio_ring\0") == ()
    assert builtin_modules("kernel/drivers/virtio/virtio.ko\nkernel/net/core/fail-over.ko\n\n") == {
        "virtio", "fail_over"}


def test_nic_modules_load_in_dependency_order_on_both_kernels() -> None:
    """Why the amd64 twin's NIC did not come up: virtio was insmod-ed before virtio_ring, which it needs.
    arm64 never noticed (both built in there); on amd64 the whole chain down to virtio_net failed silently."""
    names = [Path(spec.removeprefix("?")).stem for spec in NET_MODULES]
    amd64 = [(n, AMD64_DEPENDS[n]) for n in names]
    assert load_order_error(amd64, frozenset()) is None
    arm64_builtin = frozenset({"virtio", "virtio_ring"})
    arm64 = [(n, d) for n, d in amd64 if n not in arm64_builtin]  # "?" modules the arm64 package does not ship
    assert load_order_error(arm64, arm64_builtin) is None
    old = [amd64[1], amd64[0], *amd64[2:]]  # the order before the fix
    assert load_order_error(old, frozenset()) == "module virtio needs virtio_ring, neither built in nor loaded before it"
    assert load_order_error(old, arm64_builtin) is None
