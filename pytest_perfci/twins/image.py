"""Build (once) the kernel and initramfs a twin boots, from Debian packages of the guest's architecture.

Why this way: the host's apt state is never touched. A private APT_CONFIG (own sources, lists,
cache and an empty dpkg status) resolves the guest's packages for its architecture, `apt-get download`
fetches exactly the resolved versions, and `dpkg-deb -x` unpacks them into a staging root; no
`dpkg --add-architecture`, no root needed beyond what apt-get download needs (nothing). The image is
cached under a directory keyed by the resolved package versions and the init script, so a second
run only re-resolves (offline, about a second) and a Debian security update makes a new image.

The initramfs is an uncompressed newc archive (see twins.cpio): decompressing in an emulated CPU costs
more boot time than reading a larger file costs on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from pytest_perfci.twins.cpio import CpioWriter

Progress = Callable[[str], None]

# Bumped when the image layout changes in a way the key below cannot see.
LAYOUT = "1"
SUITES = ("bookworm", "bookworm-updates")
SECURITY_SUITE = "bookworm-security"
MIRROR = os.environ.get("PERFCI_TWIN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("PERFCI_TWIN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# What the guest runs: perf (linux-perf), python3 for the stdlib perf_event_open probe, an SSH server
# with SFTP (dropbear + OpenSSH's sftp-server), bash and coreutils for EC2 user data (perfci renders
# `#!/bin/bash` and runs its checker under `nohup`, which Debian's busybox leaves to coreutils) and
# busybox for everything else.
PACKAGES = ("linux-perf", "python3.11", "dropbear-bin", "openssh-sftp-server", "bash", "coreutils",
            "busybox-static")
KERNEL = "linux-image-{arch}"
# Resolved and downloaded (so that they are part of the key) but not unpacked: what a package's
# maintainer scripts or documentation need, never what perf, python3 or dropbear load at run time.
NOT_UNPACKED = frozenset({"perl", "perl-modules-5.36", "dpkg", "debconf", "adduser", "passwd", "tar", "media-types",
                          "readline-common", "libpython3-stdlib", "python3", "python3-minimal"})
# Modules the guest loads for its NIC; everything else of the kernel package stays out of the image.
# In load order (busybox insmod resolves no dependencies: a module whose `depends=` is not loaded yet fails);
# "?" marks modules that are built in on some kernels: arm64's 6.1 builds the virtio core (virtio, virtio_ring)
# in, amd64's ships both as modules, and virtio depends on virtio_ring, so virtio_ring goes first. _populate
# checks the order against each module's depends= and the kernel's modules.builtin at build time.
NET_MODULES = ("?drivers/virtio/virtio_ring.ko", "?drivers/virtio/virtio.ko", "drivers/virtio/virtio_mmio.ko",
               "?drivers/virtio/virtio_pci_legacy_dev.ko",
               "?drivers/virtio/virtio_pci_modern_dev.ko", "?drivers/virtio/virtio_pci.ko", "net/core/failover.ko",
               "drivers/net/net_failover.ko", "drivers/net/virtio_net.ko")
DROP = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "var", "usr/lib/python3.11/test",
        "usr/share/perl5", "usr/lib/python3.11/ensurepip", "usr/lib/python3.11/idlelib",
        "usr/lib/python3.11/tkinter", "usr/lib/python3.11/lib2to3", "usr/lib/python3.11/pydoc_data",
        "usr/share/perl", "usr/lib/aarch64-linux-gnu/perl", "usr/lib/x86_64-linux-gnu/perl", "usr/share/zoneinfo")
BUSYBOX_APPLETS = ("sh", "cat", "ls", "mount", "mkdir", "ip", "insmod", "head", "grep", "sleep", "poweroff",
                   "uname", "env", "ps", "kill", "id", "hostname", "dmesg", "tail", "sed", "awk", "tr", "wc",
                   "rm", "cp", "mv", "chmod", "ln", "echo", "test", "printf", "sync", "mktemp", "nproc", "date",
                   "sort", "cut", "touch", "true", "false", "stat", "find", "xargs", "tee", "dirname", "basename",
                   "readlink", "which", "expr", "seq", "timeout", "setsid", "chown", "df", "du", "free")
READY_MARK = "perfci-twin: ssh ready"
LISTS_MAX_AGE = 7 * 24 * 3600.0

INIT = r"""#!/bin/busybox sh
# perfci twin init: a root shell world of busybox, dropbear on :22, power off on request.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mkdir -p /dev/pts /dev/shm
/bin/busybox mount -t devpts devpts /dev/pts
/bin/busybox mount -t tmpfs tmpfs /tmp
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
for m in $(cat /lib/modules-min/order); do insmod /lib/modules-min/$m.ko || echo "perfci-twin: insmod $m failed"; done
hostname "$(cat /etc/hostname)"
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0       # QEMU user networking's guest address (restrict=on: reaches nothing)
# Time sync, as chrony on an instance: under -icount the kernel's clock falls seconds behind per busy
# minute, while QEMU's RTC follows the host's clock; a self-destruct deadline is judged by this clock.
( while :; do busybox hwclock -s -u 2>/dev/null; sleep 10; done ) &
dropbearconvert openssh dropbear /etc/ssh/host_ed25519 /etc/dropbear/ed25519 >/dev/null 2>&1
rm -f /etc/ssh/host_ed25519
/usr/sbin/dropbear -r /etc/dropbear/ed25519 -p 22 -s -E 2>/tmp/dropbear.log
# cloud-init's part (cloud-final, after SSH is up): run the instance's user data once, in the background;
# `cloud-init status --wait` (/usr/bin/cloud-init) waits for it as on an EC2 instance.
mkdir -p /run/cloud-init /var/log
if [ -e @USER_DATA@ ]; then
  ( @USER_DATA@ >/var/log/cloud-init-output.log 2>&1; echo $? >/run/cloud-init/result.tmp
    mv /run/cloud-init/result.tmp /run/cloud-init/result ) &
else
  echo 0 >/run/cloud-init/result
fi
echo "@READY@"
while [ ! -e /tmp/perfci-poweroff ]; do sleep 1; done
echo "perfci-twin: powering off: $(cat /tmp/perfci-poweroff) (guest clock $(date +%s))"
sync
poweroff -f
""".replace("@READY@", READY_MARK).replace("@USER_DATA@", "/var/lib/cloud/instance/scripts/part-001")

# Where a guest's user data goes (twins.guest appends it to the initramfs), as cloud-init names it.
USER_DATA = "var/lib/cloud/instance/scripts/part-001"

# No systemd in a twin: `shutdown` (what perfci's self-destruct runs) asks /init to power off, which a
# QEMU started with -no-reboot turns into its own exit, i.e. the instance's power-off.
SHUTDOWN = """#!/bin/sh
# perfci twin: shutdown(8) stand-in. Any shutdown powers the twin off through /init (no reboot).
echo "shutdown $*" >/tmp/perfci-poweroff
echo "perfci-twin: shutdown $* (guest clock $(date +%s))" >/dev/console 2>/dev/null
exit 0
"""

# `cloud-init status [--wait]` about the boot's user data, which /init runs: what the EC2 provider's
# readiness wait calls (exit 0 done, 1 error), so an EC2 stand-in twin is ready only after its user data.
CLOUD_INIT = """#!/bin/sh
# perfci twin: cloud-init stand-in; /init runs the user data, this reports on it.
[ "$1" = status ] || { echo "perfci twin: only 'cloud-init status [--wait]' is here" >&2; exit 1; }
f=/run/cloud-init/result
if [ "${2:-}" = --wait ]; then while [ ! -e $f ]; do sleep 1; done; fi
[ -e $f ] || { echo "status: running"; exit 0; }
[ "$(cat $f)" = 0 ] && { echo "status: done"; exit 0; }
echo "status: error"
exit 1
"""


class ImageBuildError(RuntimeError):
    """The image could not be built; the first line names the package or the step."""


class Image(BaseModel):
    """A built twin image: boot these two files."""

    arch: str
    key: str
    kernel: Path
    initrd: Path
    kernel_version: str
    packages: dict[str, str]


def cache_root() -> Path:
    """PERFCI_TWIN_CACHE, else $XDG_CACHE_HOME/perfci/twins, else ~/.cache/perfci/twins."""
    env = os.environ.get("PERFCI_TWIN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perfci" / "twins"


# The no-perf variant (Machine.perf False): linux-perf goes into a file: apt repository in the guest instead
# of its root, and apt + dpkg (normally not unpacked) come along so host preparation can install it.
NO_PERF_EXTRA = ("apt",)
NO_PERF_UNPACKED = frozenset({"dpkg", "tar"})
LOCAL_REPO = "srv/perfci-repo"


def image_key(arch: str, packages: dict[str, str], perf: bool = True) -> str:
    """Same architecture, package versions and image layout (init script, modules, what is left out) -> same key."""
    layout: list[object] = [LAYOUT, INIT, NET_MODULES, DROP, sorted(NOT_UNPACKED), BUSYBOX_APPLETS, SHUTDOWN,
                            CLOUD_INIT]
    if not perf:  # the default images keep their keys
        layout.append(["no-perf", NO_PERF_EXTRA, sorted(NO_PERF_UNPACKED), LOCAL_REPO])
    blob = json.dumps({"arch": arch, "packages": sorted(packages.items()), "layout": layout})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_INST = re.compile(r"^Inst (\S+) \((\S+) ")


def parse_simulation(text: str) -> dict[str, str]:
    """`apt-get -s install` output -> {package: version} of everything it would install."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _INST.match(line)
        if m:
            found[m.group(1).split(":")[0]] = m.group(2)
    return found


_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)\0")


def module_depends(ko: bytes) -> tuple[str, ...]:
    """The modules a .ko needs loaded first: its .modinfo `depends=` (modpost writes one into every module)."""
    m = _DEPENDS.search(ko)
    return tuple(d for d in m.group(1).decode().split(",") if d) if m else ()


def builtin_modules(text: str) -> frozenset[str]:
    """Module names a kernel has built in, from its modules.builtin ("kernel/drivers/virtio/virtio.ko" lines)."""
    return frozenset(Path(line.strip()).stem.replace("-", "_") for line in text.splitlines() if line.strip())


def load_order_error(order: list[tuple[str, tuple[str, ...]]], builtin: frozenset[str]) -> str | None:
    """Why loading `order` ([(module, its depends)]) one insmod after another would fail, or None.

    busybox insmod loads no dependencies, and the init script cannot tell a missing NIC from a slow one:
    a module that needs one neither built in nor loaded before it is refused here, at build time."""
    loaded: set[str] = set()
    for name, depends in order:
        missing = [d for d in depends if d not in loaded and d not in builtin]
        if missing:
            return f"module {name} needs {', '.join(missing)}, neither built in nor loaded before it"
        loaded.add(name)
    return None


class AptRoot:
    """A private apt configuration for one foreign architecture; the host's apt state stays as it is."""

    def __init__(self, root: Path, arch: str) -> None:
        self.root = root
        self.arch = arch
        self.config = root / "apt.conf"

    def prepare(self) -> None:
        for d in ("lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d",
                  "etc/apt.conf.d"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        sources = "".join(
            f"deb [arch={self.arch} signed-by={KEYRING}] {url} {suite} main\n"
            for url, suite in [*((MIRROR, s) for s in SUITES), (SECURITY_MIRROR, SECURITY_SUITE)]
        )
        (self.root / "etc/sources.list").write_text(sources)
        r = self.root
        self.config.write_text(
            f'APT::Architecture "{self.arch}";\n'
            f'APT::Architectures {{ "{self.arch}"; }};\n'
            f'APT::Sandbox::User "root";\n'
            f'APT::Install-Recommends "false";\n'
            f'Dir::Etc "{r}/etc";\n'
            f'Dir::Etc::sourcelist "{r}/etc/sources.list";\n'
            f'Dir::Etc::sourceparts "{r}/etc/sources.list.d";\n'
            f'Dir::Etc::preferencesparts "{r}/etc/preferences.d";\n'
            f'Dir::Etc::parts "{r}/etc/apt.conf.d";\n'
            f'Dir::Etc::trusted "/etc/apt/trusted.gpg";\n'
            f'Dir::Etc::trustedparts "/etc/apt/trusted.gpg.d";\n'
            f'Dir::State "{r}";\n'
            f'Dir::State::Lists "{r}/lists";\n'
            f'Dir::State::status "{r}/status";\n'
            f'Dir::Cache "{r}/cache";\n'
        )

    def apt(self, *args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "APT_CONFIG": str(self.config), "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        return subprocess.run(["apt-get", "-q", *args], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def lists_signature(self) -> list[list[object]]:
        """Name, size and mtime of every index: changes whenever `apt-get update` fetched something new."""
        return sorted([p.name, p.stat().st_size, int(p.stat().st_mtime)]
                      for p in (self.root / "lists").iterdir() if p.is_file())

    def lists_age(self) -> float:
        files = [p for p in (self.root / "lists").iterdir() if p.is_file()]
        return time.time() - max((p.stat().st_mtime for p in files), default=0.0)

    @property
    def has_lists(self) -> bool:
        return any((self.root / "lists").glob("*_Packages*"))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if line.startswith(("E:", "W:", "Err:")):
            return line.strip()
    return _last_line(text)


class ImageBuilder:
    """Resolves, downloads, unpacks and archives one architecture's twin image into the cache."""

    def __init__(self, arch: str, cache: Path | None = None, progress: Progress = print, perf: bool = True) -> None:
        self.arch = arch
        self.perf = perf
        self.cache = cache or cache_root()
        self.progress = progress
        self.apt_root = AptRoot(self.cache / f"apt-{arch}", arch)

    @property
    def wanted(self) -> list[str]:
        return [p.format(arch=self.arch) for p in (*PACKAGES, *(() if self.perf else NO_PERF_EXTRA))]

    def _say(self, text: str) -> None:
        self.progress(f"twin image {self.arch}: {text}")

    def _need(self, tool: str, package: str) -> None:
        if shutil.which(tool) is None:
            raise ImageBuildError(f"{tool} not found; the twin image builder needs it: apt-get install {package}")

    def resolve(self) -> dict[str, str]:
        """{package: version} for the guest, from the private lists (updated when absent)."""
        self._need("apt-get", "apt")
        self._need("dpkg-deb", "dpkg")
        if not Path(KEYRING).exists():
            raise ImageBuildError(f"{KEYRING} missing; apt-get install debian-archive-keyring")
        self.apt_root.prepare()
        if not self.apt_root.has_lists:
            self.update()
        elif self.apt_root.lists_age() > LISTS_MAX_AGE:
            # A week-old index misses security updates; refresh it, but an offline machine keeps its cache.
            with contextlib.suppress(ImageBuildError):
                self.update()
        memo = self.apt_root.root / "resolved.json"
        signature = [self.wanted, KERNEL, self.apt_root.lists_signature()]
        with contextlib.suppress(OSError, ValueError, KeyError):
            saved = json.loads(memo.read_text())
            if saved["signature"] == signature:
                return dict(saved["packages"])  # same lists, same question: apt would answer the same
        packages = self._resolve()
        memo.write_text(json.dumps({"signature": signature, "packages": packages}))
        return packages

    def _resolve(self) -> dict[str, str]:
        packages = self._simulate(*self.wanted)
        # The kernel alone: its own dependencies (initramfs-tools, udev, kmod) are for installing it, not booting it.
        kernel_meta = KERNEL.format(arch=self.arch)
        kernel = {n: v for n, v in self._simulate(kernel_meta).items() if n.startswith("linux-image-")}
        if not any(n != kernel_meta for n in kernel):
            raise ImageBuildError(f"{kernel_meta} resolved to no kernel package for {self.arch}")
        return {**packages, **kernel}

    def _simulate(self, *names: str) -> dict[str, str]:
        sim = self.apt_root.apt("-s", "install", *names)
        if sim.returncode != 0:
            raise ImageBuildError(f"cannot resolve {' '.join(names)} for {self.arch}: {_first_error(sim.stdout + sim.stderr)}")
        return parse_simulation(sim.stdout)

    def update(self) -> None:
        self._say(f"fetching Debian package lists for {self.arch} ({MIRROR})")
        upd = self.apt_root.apt("update")
        if upd.returncode != 0 or "Err:" in upd.stdout:
            raise ImageBuildError(f"apt-get update for {self.arch} failed: {_first_error(upd.stdout + upd.stderr)}")

    def build(self) -> Image:
        """The cached image for the current package versions, building it if absent.

        Under a lock per architecture (its apt root and images are shared): two runs starting at once
        on a cold cache build once, and neither replaces an image the other is booting."""
        self.cache.mkdir(parents=True, exist_ok=True)
        with (self.cache / f".lock-{self.arch}").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._build()

    def _build(self) -> Image:
        started = time.monotonic()
        packages = self.resolve()
        key = image_key(self.arch, packages, self.perf)
        out = self.cache / "images" / f"{self.arch}-{key}"
        manifest = out / "image.json"
        if manifest.exists():
            return Image.model_validate_json(manifest.read_text())
        self._say(f"building {key} from {len(packages)} packages (first use; cached in {out})")
        with tempfile.TemporaryDirectory(prefix=f"build-{self.arch}-", dir=self.cache) as tmp:
            work = Path(tmp)
            debs = self._download(packages, work / "debs")
            image = self._assemble(packages, debs, work, out, key)
        manifest.write_text(image.model_dump_json(indent=1))
        self._say(f"built in {time.monotonic() - started:.0f} s: {out}")
        return image

    def _download(self, packages: dict[str, str], dest: Path) -> dict[str, Path]:
        dest.mkdir(parents=True)
        self._say(f"downloading {len(packages)} packages")
        specs = [f"{name}={version}" for name, version in sorted(packages.items())]
        res = self.apt_root.apt("download", *specs, cwd=dest)
        if res.returncode != 0:
            # Stale lists name versions the mirror no longer has: refresh once and resolve again.
            self.update()
            res = self.apt_root.apt("download", *specs, cwd=dest)
        debs = {p.name.split("_")[0]: p for p in dest.glob("*.deb")}
        missing = [name for name in packages if name not in debs]
        if missing:
            raise ImageBuildError(
                f"could not download {missing[0]}={packages[missing[0]]} for {self.arch}"
                f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: {_first_error(res.stdout + res.stderr)}"
            )
        size = sum(p.stat().st_size for p in debs.values())
        self._say(f"downloaded {len(debs)} packages, {size / 1e6:.0f} MB")
        return debs

    def _assemble(self, packages: dict[str, str], debs: dict[str, Path], work: Path, out: Path, key: str) -> Image:
        root, kdir = work / "root", work / "kernel"
        root.mkdir()
        kdir.mkdir()
        kernel_pkg = next(n for n in debs if n.startswith("linux-image-") and n != f"linux-image-{self.arch}")
        self._say(f"unpacking {len(debs)} packages")
        for name, deb in sorted(debs.items()):
            if name == KERNEL.format(arch=self.arch):
                continue
            if name in NOT_UNPACKED and (self.perf or name not in NO_PERF_UNPACKED):
                continue
            if name == "linux-perf" and not self.perf:
                continue  # into the guest's local repository (_local_repo), not its root
            target = kdir if name == kernel_pkg else root
            res = subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise ImageBuildError(f"cannot unpack {name}={packages[name]}: {_last_line(res.stderr)}")
        kver = kernel_pkg.removeprefix("linux-image-")
        vmlinuz = kdir / "boot" / f"vmlinuz-{kver}"
        if not vmlinuz.exists():
            raise ImageBuildError(f"{kernel_pkg}={packages[kernel_pkg]} has no boot/vmlinuz-{kver}")
        self._populate(root, kdir / "lib" / "modules" / kver / "kernel", kernel_pkg, packages)
        if not self.perf:
            self._local_repo(root, debs, packages)
        self._say("writing initramfs")
        tmp_out = work / "out"
        tmp_out.mkdir()
        shutil.copy2(vmlinuz, tmp_out / "kernel")
        with (tmp_out / "initrd.cpio").open("wb") as fh:
            writer = CpioWriter(fh)
            writer.tree(root)
            # deliberately no trailer-closing overlay here: per-guest files are appended at boot
            writer.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        tmp_out.rename(out)
        return Image(arch=self.arch, key=key, kernel=out / "kernel", initrd=out / "initrd.cpio", kernel_version=kver,
                     packages=packages)

    def _populate(self, root: Path, modules: Path, kernel_pkg: str, packages: dict[str, str]) -> None:
        for rel in DROP:
            shutil.rmtree(root / rel, ignore_errors=True)
        mods = root / "lib" / "modules-min"
        mods.mkdir(parents=True)
        order: list[tuple[str, tuple[str, ...]]] = []
        for spec in NET_MODULES:
            rel = spec.removeprefix("?")
            src = modules / rel
            if not src.exists():
                if spec.startswith("?"):
                    continue  # built in, or not this architecture's transport
                raise ImageBuildError(f"{kernel_pkg}={packages[kernel_pkg]} lacks module {rel}")
            shutil.copy2(src, mods / Path(rel).name)
            order.append((Path(rel).stem, module_depends(src.read_bytes())))
        builtin_list = modules.parent / "modules.builtin"
        builtin = builtin_modules(builtin_list.read_text()) if builtin_list.exists() else frozenset()
        wrong = load_order_error(order, builtin)
        if wrong:
            raise ImageBuildError(f"{kernel_pkg}={packages[kernel_pkg]}: NET_MODULES out of order: {wrong}")
        (mods / "order").write_text(" ".join(name for name, _ in order) + "\n")
        for d in ("root/.ssh", "etc/dropbear", "etc/ssh", "proc", "sys", "dev", "tmp", "run", "usr/local/bin"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "root").chmod(0o700)
        (root / "root/.ssh").chmod(0o700)
        sftp = root / "usr/lib/sftp-server"   # where dropbear looks for the SFTP subsystem
        if not sftp.exists():
            sftp.symlink_to("openssh/sftp-server")
        py = root / "usr/bin/python3"
        if not py.exists():
            py.symlink_to("python3.11")
        busybox = root / "bin/busybox"
        if not busybox.exists():
            raise ImageBuildError(f"busybox-static={packages.get('busybox-static')} has no bin/busybox")
        for applet in BUSYBOX_APPLETS:
            if not any((root / d / applet).exists() or (root / d / applet).is_symlink()
                       for d in ("bin", "usr/bin", "sbin", "usr/sbin")):
                (root / "bin" / applet).symlink_to("busybox")
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\n")
        (root / "etc/shells").write_text("/bin/sh\n")
        (root / "etc/hostname").write_text(f"perfci-twin-{self.arch}\n")
        (root / "etc/os-release").write_text(
            f'PRETTY_NAME="Debian GNU/Linux 12 (bookworm) perfci twin {self.arch}"\nNAME="Debian GNU/Linux"\n'
            'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
        )
        for rel, text in (("init", INIT), ("sbin/shutdown", SHUTDOWN), ("usr/bin/cloud-init", CLOUD_INIT)):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755)

    def _local_repo(self, root: Path, debs: dict[str, Path], packages: dict[str, str]) -> None:
        """No-perf variant: linux-perf in a trusted file: apt repository, and a dpkg database that says
        every other resolved package is installed (they are unpacked, or only needed by maintainer
        scripts), so `apt-get install linux-perf` in the guest resolves offline and installs just it."""
        repo = root / LOCAL_REPO
        repo.mkdir(parents=True)
        shutil.copy2(debs["linux-perf"], repo / debs["linux-perf"].name)
        scan = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, capture_output=True,
                              text=True, check=False)
        if scan.returncode != 0 or "Package: linux-perf" not in scan.stdout:
            raise ImageBuildError(f"cannot index the guest's local repository: {_last_line(scan.stderr)}")
        (repo / "Packages").write_text(scan.stdout)
        (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/apt.conf.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:/{LOCAL_REPO} ./\n")
        # the guest runs everything as root; apt's sandbox user (_apt) does not exist there
        (root / "etc/apt/apt.conf.d/99perfci-twin").write_text('APT::Sandbox::User "root";\n')
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/lib/dpkg/alternatives",
                  "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt", "etc/dpkg/dpkg.cfg.d"):
            (root / d).mkdir(parents=True, exist_ok=True)
        stanzas = []
        for name, deb in sorted(debs.items()):
            if name == "linux-perf" or name.startswith("linux-image-"):
                continue
            fields = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
            lines = [ln for ln in fields.splitlines() if ln and not ln.startswith(" ")]  # one-line fields
            stanzas.append("\n".join([lines[0], "Status: install ok installed", *lines[1:]]) + "\n")
            same = "Multi-Arch: same" in lines
            (root / "var/lib/dpkg/info" / f"{name}{':' + self.arch if same else ''}.list").touch()
        (root / "var/lib/dpkg/status").write_text("\n".join(stanzas))
        (root / "var/lib/dpkg/available").touch()
        if not (root / "usr/bin/diff").exists() and not (root / "bin/diff").exists():
            (root / "bin/diff").symlink_to("busybox")  # dpkg insists on diff too (conffile prompts)
        for tool in ("sbin/ldconfig", "sbin/start-stop-daemon"):  # dpkg insists they are on PATH
            path = root / tool
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("#!/bin/sh\nexit 0\n")
                path.chmod(0o755)
