"""perfci markers: their documentation and the pure rules that decide whether a test fits a target.

The rules are pure (marks + facts in, a skip reason or None out) so they are tested without hosts,
and a test that does not fit is always skipped with a reason naming the target, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_perfci.models.arch import ARCHES, normalise_arch
from pytest_perfci.models.facts import Facts
from pytest_perfci.models.instance_query import Query, is_query
from pytest_perfci.models.instance_types import INSTANCE_TYPE_RE, closest_names

CAPABILITIES = ("pmc", "resctrl", "gpu")

MARKERS = {
    "instance_type": "instance_type(*types): run only on targets of these EC2 instance types, or of types "
    'matching an attribute query: instance_type(metal=True, arch="x86_64", vendor="intel") or '
    'instance_type("arch=arm64,metal=true"); keys arch, vendor, metal, family, name, vcpus, gpu, gpus, '
    'gpu_model, gpu_memory (instance_type("gpus>=4"), instance_type(gpu="nvidia")). A test fits '
    "when any name or query matches; other targets skip with a reason naming them.",
    "arch": 'arch("x86_64"|"arm64"): run only on targets of this CPU architecture.',
    "metal": "metal: run only on bare-metal targets (not virtualised).",
    "requires": "requires(pmc=True, resctrl=True): run only where the host has (or, with False, lacks) "
    "the capability; pmc = cycles and instructions count, resctrl = the resctrl filesystem is available, "
    "gpu (requires(gpu=True)) = an NVIDIA GPU the driver answers for (nvidia-smi lists one); on EC2 a type "
    "whose DescribeInstanceTypes entry has no GpuInfo skips gpu=True before any instance is created.",
}

# capability name -> (present?, one-line explanation)
CapabilityProbe = Callable[[str], tuple[bool, str]]


class MarkerError(ValueError):
    """A perfci marker is used with a value it does not accept."""


def validate(marks: Iterable[pytest.Mark], where: str) -> None:
    """Reject malformed markers at collection so a typo never turns into a silent skip."""
    for mark in marks:
        if mark.name == "arch":
            if len(mark.args) != 1 or mark.kwargs or normalise_arch(str(mark.args[0])) not in ARCHES:
                raise MarkerError(f"{where}: @pytest.mark.arch{mark.args!r} is not allowed; use one of {ARCHES}")
        elif mark.name == "instance_type":
            if not (mark.args or mark.kwargs) or not all(isinstance(a, str) and a for a in mark.args):
                # (or an attribute query: the marker's documentation in MARKERS says how)
                raise MarkerError(f"{where}: @pytest.mark.instance_type needs one or more type names")
            try:
                queries = _queries(mark)
            except ValueError as exc:
                raise MarkerError(f"{where}: @pytest.mark.instance_type: {exc}") from None
            if any(q.pick for q in queries):
                raise MarkerError(f"{where}: @pytest.mark.instance_type: pick= chooses what to provision "
                                  "(--instance-type); a marker only filters the run's targets")
        elif mark.name == "metal":
            if mark.args or mark.kwargs:
                raise MarkerError(f"{where}: @pytest.mark.metal takes no arguments")
        elif mark.name == "requires":
            bad = sorted(set(mark.kwargs) - set(CAPABILITIES)) or [a for a in mark.args]
            if bad or not mark.kwargs or not all(isinstance(v, bool) for v in mark.kwargs.values()):
                raise MarkerError(
                    f"{where}: @pytest.mark.requires{mark.args or ''}({mark.kwargs}) is not allowed; "
                    f"use keyword booleans among {CAPABILITIES}, e.g. requires(pmc=True)"
                )


def _queries(mark: pytest.Mark) -> list[Any]:
    """The attribute queries of an instance_type mark: its kwargs, and positional args containing '='."""
    queries = [Query.parse(a) for a in mark.args if is_query(a)]
    if mark.kwargs:
        queries.append(Query.from_kwargs(mark.kwargs))
    return queries


def _spelt(mark: pytest.Mark) -> str:
    parts = [repr(a) for a in mark.args] + [f"{k}={v!r}" for k, v in mark.kwargs.items()]
    return f"instance_type({', '.join(parts)})"


def instance_type_reason(
    marks: Iterable[pytest.Mark],
    target: str,
    instance_type: str | None,
    *,
    requested: str | None = None,
    attrs: Any = None,
) -> str | None:
    """Skip reason from instance_type markers, or None when the target fits (or cannot be judged yet).

    A mark fits when the target's real type (or the alias it was requested as) is one of its names, or
    its attributes match one of its queries. `attrs` has name, family, arch, vendor, vcpus, metal (an
    InstanceTypeInfo from the catalogue, or facts_attrs(facts)); without it a query is undecided and
    the caller asks again once the host's facts are known.
    """
    for mark in marks:
        if mark.name != "instance_type":
            continue
        names = [a for a in mark.args if "=" not in a]
        if instance_type in names or (requested is not None and requested in names):
            continue
        queries = _queries(mark)
        if queries and attrs is None:
            continue  # undecided until the facts are known
        if any(q.matches(attrs) for q in queries):
            continue
        have = instance_type or "no known instance type"
        if not queries:
            return f"target {target} ({have}) is not one of instance_type{tuple(mark.args)}"
        return f"target {target} ({have}) does not match {_spelt(mark)}"
    return None


def catalogue_reason(marks: Iterable[pytest.Mark], target: str, attrs: Any) -> str | None:
    """Skip reason from arch/metal markers decided by the instance type's catalogue entry (`attrs`:
    an InstanceTypeInfo), before any host exists: a test that cannot fit costs no RunInstances."""
    if attrs is None:
        return None
    for mark in marks:
        if mark.name == "arch":
            want = normalise_arch(str(mark.args[0]))
            if attrs.arch != want:
                return f"target {target} is {attrs.arch} ({attrs.name}), test needs arch {want}"
        elif mark.name == "metal" and not attrs.metal:
            return f"target {target} is a virtualised instance type ({attrs.name}), test needs metal"
        elif mark.name == "requires" and "gpu" in mark.kwargs and hasattr(attrs, "gpu_count"):
            wanted = bool(mark.kwargs["gpu"])
            if wanted and not attrs.gpu_count:
                return (f"target {target} lacks gpu ({attrs.name}: DescribeInstanceTypes lists no GpuInfo), "
                        "test requires gpu=True")
            if not wanted and attrs.gpu_count:
                gpus = "; ".join(g.line() for g in attrs.gpus)
                return f"target {target} has gpu ({attrs.name}: {gpus}), test requires gpu=False"
    return None


def type_names(marks: Iterable[pytest.Mark]) -> set[str]:
    """The plain type names (not queries) that instance_type marks name."""
    return {a for m in marks if m.name == "instance_type" for a in m.args if isinstance(a, str) and not is_query(a)}


def unknown_type_error(marks: Iterable[pytest.Mark], where: str, known: Collection[str] | None) -> str | None:
    """A type name in an instance_type marker that is no instance type at all: a typo would otherwise be
    a silent skip on every target. Syntax is checked always; existence when the provider knows the
    catalogue (`known`; None: it does not, e.g. local or inventory)."""
    for mark in marks:
        if mark.name != "instance_type":
            continue
        for name in sorted(type_names([mark])):
            if not INSTANCE_TYPE_RE.match(name):
                return (f"{where}: @pytest.mark.instance_type({name!r}) is not an EC2 instance type name; "
                        "expected FAMILY.SIZE such as m7i.metal-24xl or c7g.2xlarge")
            if known is not None and name not in known and metal_alias_of(name, known) is None:
                close = closest_names(name, list(known))
                hint = f"; closest: {', '.join(close)}" if close else ""
                return f"{where}: @pytest.mark.instance_type({name!r}) names no instance type in the catalogue{hint}"
    return None


def metal_alias_of(name: str, known: Collection[str]) -> str | None:
    """`m7i.metal` is an alias the run resolves (to its smallest metal size): a marker may use it too."""
    if not name.endswith(".metal"):
        return None
    family = name.split(".", 1)[0]
    return next((k for k in known if k.startswith(f"{family}.metal-")), None)


def facts_attrs(facts: Facts) -> Any:
    """What an instance_type query can match on a host known only by its facts (local, inventory)."""
    name = facts.instance_type
    vendor = {"intel": "intel", "amd": "amd"}.get(facts.cpu_vendor)
    if facts.cpu_vendor == "arm" and name:  # arm64 on EC2 is Graviton
        vendor = "aws"
    return SimpleNamespace(name=name, family=name.split(".", 1)[0] if name else None, arch=facts.arch,
                           vendor=vendor, vcpus=facts.nproc or None, metal=facts.metal)


def host_reason(marks: Iterable[pytest.Mark], target: str, facts: Facts, probe: CapabilityProbe) -> str | None:
    """Skip reason from markers that need the host's facts (arch, metal) or capabilities (requires)."""
    for mark in marks:
        if mark.name == "arch":
            want = normalise_arch(str(mark.args[0]))
            if facts.arch != want:
                return f"target {target} is {facts.arch}, test needs arch {want}"
        elif mark.name == "metal" and not facts.metal:
            kind = "virtualised" if facts.virtualised else "not known to be metal"
            return f"target {target} is {kind} ({facts.hypervisor or 'hypervisor unknown'}), test needs metal"
        elif mark.name == "requires":
            for capability, wanted in mark.kwargs.items():
                present, why = probe(capability)
                if present != wanted:
                    state = "has" if present else "lacks"
                    return f"target {target} {state} {capability} ({why}), test requires {capability}={wanted}"
    return None
