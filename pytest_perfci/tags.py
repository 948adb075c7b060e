"""The tags perfci puts on every cloud resource it creates, and reads back to find and reap them.

One set for the whole project (EC2 TagSpecifications, kops --cloud-labels, the reaper's filters,
the heartbeat, the kept-hosts summary). Imports nothing, so pure modules may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime

TAG_RUN_ID = "perfci:run-id"        # the run that created it: `perfci reap --run-id` selects on this
TAG_OWNER = "perfci:owner"
TAG_EXPIRES = "perfci:expires-at"   # UTC ISO8601; pushed forward by the heartbeat; `reap --expired`
TAG_KEEP = "perfci:keep-until"      # set by hand: protects a resource from every reap selector until then
TAG_SUITE = "perfci:suite"
TAG_ROLE = "perfci:role"          # client or server of a client/server pair (the topology fixture)
TAG_KOPS_STATE = "perfci:kops-state"  # the kops state store of the cluster a node belongs to
# kops tags every instance it creates with the cluster's name (not ours, but what finds a cluster).
TAG_KOPS_CLUSTER = "KubernetesCluster"


def stamp(when: datetime) -> str:
    """A tag's time value: UTC, seconds precision, trailing Z (what perfci:expires-at holds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def suite_tag(args: list[str]) -> str:
    """The perfci:suite value for a run's command-line paths: each path's last part (``suites/pmc``
    -> ``pmc``, ``tests/test_x.py::t`` -> ``test_x``), joined by ``+``; ``-`` when none. Within EC2's
    256-character tag value limit."""
    names: list[str] = []
    for arg in args:
        path = arg.split("::", 1)[0].rstrip("/")
        if not path or path.startswith("-"):
            continue
        name = path.rsplit("/", 1)[-1].removesuffix(".py")
        if name and name not in names:
            names.append(name)
    return "+".join(names)[:256] or "-"
