"""perfci markers: their documentation and the pure rules that decide whether a test fits a target.

The rules are pure (marks + facts in, a skip reason or None out) so they are tested without hosts,
and a test that does not fit is always skipped with a reason naming the target, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from pytest_perfci.hosts.facts import Facts, normalise_arch

ARCHES = ("x86_64", "arm64")
CAPABILITIES = ("pmc", "resctrl")

MARKERS = {
    "instance_type": "instance_type(*types): run only on targets of these EC2 instance types; "
    "other targets skip with a reason naming them.",
    "arch": 'arch("x86_64"|"arm64"): run only on targets of this CPU architecture.',
    "metal": "metal: run only on bare-metal targets (not virtualised).",
    "requires": "requires(pmc=True, resctrl=True): run only where the host has (or, with False, lacks) "
    "the capability; pmc = cycles and instructions count, resctrl = the resctrl filesystem is available.",
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
            if not mark.args or not all(isinstance(a, str) and a for a in mark.args):
                raise MarkerError(f"{where}: @pytest.mark.instance_type needs one or more type names")
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


def instance_type_reason(marks: Iterable[pytest.Mark], target: str, instance_type: str | None) -> str | None:
    """Skip reason from instance_type markers, decidable before the host exists when the type is known."""
    for mark in marks:
        if mark.name == "instance_type" and instance_type not in mark.args:
            have = instance_type or "no known instance type"
            return f"target {target} ({have}) is not one of instance_type{tuple(mark.args)}"
    return None


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
