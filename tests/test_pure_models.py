"""The pure layer (pytest_perfci.models, pytest_perfci.checks): one cpuinfo parser on every recorded
cpuinfo/lscpu sample, one arch normaliser, and no I/O library or pytest behind any of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_perfci import markers
from pytest_perfci.checks import resctrl
from pytest_perfci.models.arch import ARCHES, normalise_arch
from pytest_perfci.models.cpuinfo import parse_cpuinfo
from pytest_perfci.models.facts import parse_facts
from pytest_perfci.models.instance_query import Query, QueryError

SAMPLES = Path(__file__).parent / "data" / "samples"

# Every recorded cpuinfo/lscpu sample, with what its text says (read from the file, see each README):
# (arch, vendor, model, hypervisor, source, truncated, RDT flags).
CPUINFO = {
    "pmc/cpuinfo/ec2-graviton2-c6g-and-graviton3-c7g-xlarge-excerpts.txt":
        # `CPU implementer : 0x41  (ARM)`: the pasted annotation must not hide Arm Ltd.; first excerpt only.
        ("arm64", "arm", "Neoverse-N1 (Graviton2)", None, "cpuinfo", False, ()),
    "pmc/cpuinfo/ec2-graviton3-c7g-head-cpuinfo.txt":
        ("arm64", "arm", "Neoverse-V1 (Graviton3)", None, "cpuinfo", False, ()),
    "pmc/cpuinfo/ec2-m7a.8xlarge-amd-epyc-9r14-vm.cpuinfo.txt":
        ("x86_64", "amd", "AMD EPYC 9R14", True, "cpuinfo", False, ()),
    "pmc/local-firecracker-amd-vm-nopmu/proc-cpuinfo-cpu0.txt":
        ("x86_64", "amd", "AMD EPYC", True, "cpuinfo", False, ()),
    "resctrl/cpuinfo/ec2-c7a.metal-48xl-lscpu-excerpt.txt":
        ("x86_64", "amd", "AMD EPYC 9R14 96-Core Processor", False, "lscpu", True, ("cat_l3", "cdp_l3", "mba")),
    "resctrl/cpuinfo/ec2-c7i.metal-48xl-lscpu-excerpt.txt":
        ("x86_64", "intel", "Intel(R) Xeon(R) Platinum 8488C", False, "lscpu", True,
         ("cat_l3", "cat_l2", "cdp_l3", "cdp_l2", "mba")),
    "resctrl/cpuinfo/htop-565-bare-metal-xeon-e7-8870v4-flags.txt":
        # a lone flags line: no vendor_id, but `lm` says x86_64
        ("x86_64", "unknown", "", False, "cpuinfo", False,
         ("rdt_a", "cat_l3", "cdp_l3", "cqm", "cqm_llc", "cqm_occup_llc", "cqm_mbm_total", "cqm_mbm_local")),
    # issue 14 class 4: flags wrapped at 80 columns by a mail (every RDT flag is after a wrap)
    "resctrl/cpuinfo/kvm-bugzilla-207551-xeon-bronze-3104-cpuinfo-mail-wrapped.txt":
        ("x86_64", "intel", "Intel(R) Xeon(R) Bronze 3104 CPU @ 1.70GHz", False, "cpuinfo", False,
         ("rdt_a", "cat_l3", "cdp_l3", "mba", "cqm", "cqm_llc", "cqm_occup_llc", "cqm_mbm_total", "cqm_mbm_local")),
    # the same, quoted with `> ` in a reply (format=flowed mail)
    "resctrl/cpuinfo/netdev-2023-07-igc-ryzen5-3600-cpuinfo-quoted-wrapped.txt":
        ("x86_64", "amd", "AMD Ryzen 5 3600 6-Core Processor", False, "cpuinfo", False,
         ("rdt_a", "cat_l3", "cdp_l3", "mba", "cqm", "cqm_llc", "cqm_occup_llc", "cqm_mbm_total", "cqm_mbm_local")),
    "resctrl/cpuinfo/intel-cmt-cat-108-bare-metal-xeon-gold-6252-truncated.txt":
        ("x86_64", "intel", "Intel(R) Xeon(R) Gold 6252 CPU @ 2.10GHz", False, "cpuinfo", True,
         ("rdt_a", "cat_l3", "cdp_l3", "mba", "cqm")),
}


def _recorded_cpuinfo_files() -> set[str]:
    found = {p for p in SAMPLES.glob("**/cpuinfo/*") if p.is_file()} | set(SAMPLES.glob("**/proc-cpuinfo*"))
    return {p.relative_to(SAMPLES).as_posix() for p in found}


def test_every_recorded_cpuinfo_sample_has_an_expectation() -> None:
    assert _recorded_cpuinfo_files() == set(CPUINFO)


@pytest.mark.parametrize("rel", sorted(CPUINFO))
def test_cpuinfo_parser_on_recorded_sample(rel: str) -> None:
    arch, vendor, model, hypervisor, source, truncated, rdt = CPUINFO[rel]
    cpu = parse_cpuinfo((SAMPLES / rel).read_text())
    assert (cpu.arch, cpu.vendor, cpu.model, cpu.hypervisor) == (arch, vendor, model, hypervisor)
    assert (cpu.source, cpu.truncated, cpu.rdt) == (source, truncated, rdt)
    assert cpu.flags and not cpu.has("rdt")  # whole words only
    if arch == "arm64":
        assert cpu.has("asimd") and cpu.has("fp")  # Features, not flags


@pytest.mark.parametrize("rel", sorted(r for r, e in CPUINFO.items() if e[4] == "cpuinfo"))
def test_host_facts_and_resctrl_read_cpuinfo_alike(rel: str) -> None:
    """Facts (hosts) and the resctrl verdicts see one CPU: the same vendor, model, flags and verdict."""
    text = (SAMPLES / rel).read_text()
    machine = "aarch64" if CPUINFO[rel][0] == "arm64" else "x86_64"
    facts = parse_facts(f"@@perfci:uname\nLinux 6.1.0 {machine}\n@@perfci:cpuinfo\n{text}\n@@perfci:end\n")
    cpu = parse_cpuinfo(text)
    assert (facts.cpu_vendor, facts.cpu_model, set(facts.cpu_flags)) == (cpu.vendor, cpu.model, set(cpu.flags))
    assert facts.cpu.rdt == cpu.rdt
    fs = ("proc", "ext4")
    assert resctrl.judge_availability(facts.cpu, fs).line() == resctrl.judge_availability(cpu, fs).line()


def test_arm_rules_are_the_strict_ones() -> None:
    """Only Arm Ltd. (implementer 0x41) is vendor arm; other implementers are not guessed; arm64 has no
    hypervisor bit; a header block before the first processor does not end the search."""
    ampere = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0xc0\nCPU part\t: 0xac3\n")
    assert (ampere.arch, ampere.vendor, ampere.model, ampere.hypervisor) == ("arm64", "unknown", "part 0xac3", None)
    old_kernel = parse_cpuinfo("Processor\t: AArch64 Processor rev 1 (aarch64)\n\nprocessor\t: 0\n"
                               "Features\t: fp asimd evtstrm\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n")
    assert (old_kernel.vendor, old_kernel.model, old_kernel.has("evtstrm")) == ("arm", "Neoverse-N1 (Graviton2)", True)
    lscpu = parse_cpuinfo("Architecture:            aarch64\nVendor ID:               ARM\n"
                          "Flags:                   fp asimd evtstrm\n")
    assert (lscpu.arch, lscpu.vendor, lscpu.hypervisor, lscpu.source) == ("arm64", "arm", None, "lscpu")


ARCH_TABLE = {
    "x86_64": "x86_64", "X86_64": "x86_64", "amd64": "x86_64", "x86-64": "x86_64", "x64": "x86_64",
    " x86_64\n": "x86_64", "aarch64": "arm64", "arm64": "arm64", "AArch64": "arm64",
    "riscv64": "riscv64", "i686": "i686", "": "unknown", "  ": "unknown",
}


@pytest.mark.parametrize(("spelling", "arch"), sorted(ARCH_TABLE.items()))
def test_arch_normaliser_table(spelling: str, arch: str) -> None:
    assert normalise_arch(spelling) == arch


def test_every_arch_reader_uses_the_one_normaliser() -> None:
    """uname (facts), lscpu (cpuinfo), the prober's JSON (resctrl), queries and the arch marker agree."""
    for spelling in ("amd64", "x86-64", "aarch64"):
        want = normalise_arch(spelling)
        assert parse_facts(f"@@perfci:uname\nLinux 6.1 {spelling}\n@@perfci:end\n").arch == want
        assert parse_cpuinfo(f"Architecture: {spelling}\nFlags: fpu\n").arch == want
        assert resctrl.judge_gathered({"arch": spelling, "cpuinfo": ""}).availability.line() == \
            resctrl.judge_gathered({"arch": want, "cpuinfo": ""}).availability.line()
        assert Query.parse(f"arch={spelling}").arch == frozenset({want})
        markers.validate([pytest.mark.arch(spelling).mark], "t")
    with pytest.raises(QueryError, match="arch=riscv64 is not allowed; use x86_64 or arm64"):
        Query.parse("arch=riscv64")
    with pytest.raises(markers.MarkerError, match=r"arch\('riscv64',\) is not allowed"):
        markers.validate([pytest.mark.arch("riscv64").mark], "t")
    assert set(ARCHES) == {"x86_64", "arm64"}


# --- the pure packages import no I/O library and not pytest --------------------------------------------

PURE_PACKAGES = ("pytest_perfci.models", "pytest_perfci.checks")
FORBIDDEN = ("boto3", "botocore", "paramiko", "fabric", "pytest", "_pytest")

_IMPORT_ALL = """
import json, pkgutil, importlib, sys
names = []
for package in {packages!r}:
    pkg = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.iter_modules(pkg.__path__, package + "."):
        importlib.import_module(info.name)
        names.append(info.name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden!r})
print(json.dumps({{"modules": names, "loaded": loaded}}))
"""


def test_pure_packages_import_neither_boto3_paramiko_nor_pytest() -> None:
    """In a fresh interpreter (this one has pytest loaded): every module of the pure packages."""
    code = _IMPORT_ALL.format(packages=PURE_PACKAGES, forbidden=FORBIDDEN)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    out = json.loads(proc.stdout)
    assert {"pytest_perfci.models.facts", "pytest_perfci.models.cpuinfo", "pytest_perfci.models.instance_query",
            "pytest_perfci.checks.pmc", "pytest_perfci.checks.resctrl"} <= set(out["modules"])
    assert out["loaded"] == []


def test_the_purity_check_can_fail() -> None:
    """The same probe on a module that does import paramiko reports it (so an empty list means something)."""
    code = _IMPORT_ALL.format(packages=("pytest_perfci.hosts",), forbidden=FORBIDDEN)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert "paramiko" in json.loads(proc.stdout)["loaded"]


def test_wrapped_cpuinfo_keeps_every_flag_and_bugs() -> None:
    """Joined back, the wrapped flags equal the words of the flags value; bugs wrap too."""
    text = (SAMPLES / "resctrl/cpuinfo/kvm-bugzilla-207551-xeon-bronze-3104-cpuinfo-mail-wrapped.txt").read_text()
    cpu = parse_cpuinfo(text)
    block = text[text.index("flags"):text.index("bugs")]
    assert cpu.flags == frozenset(block.split(":", 1)[1].split())
    assert cpu.has("flush_l1d") and cpu.has("pat") and cpu.rdt_capable


def test_word_split_by_a_hard_wrap_is_repaired_for_rdt_flags() -> None:
    """A narrow terminal cuts words anywhere: `cqm_mbm_to` / `tal` is still cqm_mbm_total."""
    cpu = parse_cpuinfo("vendor_id\t: GenuineIntel\nflags\t\t: fpu lm cqm_mbm_to\ntal rdt\n_a\n")
    assert cpu.has("cqm_mbm_total") and cpu.has("rdt_a") and cpu.has("fpu")


# --- layering: what each layer may import, and no import circle ------------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_perfci"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """pytest_perfci modules a file imports at run time (module level or inside functions), leaving out
    `if TYPE_CHECKING:` blocks, which never run."""
    import ast

    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pytest_perfci"):
            for alias in node.names:  # `from pytest_perfci.checks import resctrl` imports a submodule
                sub = f"{node.module}.{alias.name}"
                names.add(sub if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists() else node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("pytest_perfci"))
    return names


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _runtime_imports(p) for p in PACKAGE.rglob("*.py") if "probes" not in p.parts}


def test_layers_import_only_what_they_may() -> None:
    """models imports only models; checks only checks and models (checks never import hosts); nothing
    imports the pytest plugin module back."""
    graph = _graph()
    for module, imports in graph.items():
        if module.startswith("pytest_perfci.models"):
            assert all(i.startswith("pytest_perfci.models") for i in imports), (module, imports)
        if module.startswith("pytest_perfci.checks"):
            assert all(i.startswith(("pytest_perfci.checks", "pytest_perfci.models")) for i in imports), \
                (module, imports)
        assert "pytest_perfci.plugin" not in imports, module


def test_no_import_circle() -> None:
    graph = _graph()
    cycles = []
    for start in graph:  # depth-first search from every module for a path back to it
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join((*path, start)))
                elif nxt not in seen and nxt in graph:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
    assert cycles == []
