"""What real EC2 instance types a run's --instance-type items mean: exact names, aliases and queries.

Pure: everything here works on the region's catalogue (InstanceTypeInfo by name, from the one cached
DescribeInstanceTypes listing, see providers/ec2/catalog.py) and, for queries, the set of types the region offers
(DescribeInstanceTypeOfferings, LocationType=region). No hand-kept list of types anywhere.

Spelling of one item

    NAME    FAMILY.SIZE, e.g. m7i.metal-24xl, c7g.metal, m7i.2xlarge. An exact name always wins. A name
            <family>.metal that EC2 does not have (m7i.metal: the family offers m7i.metal-24xl and
            m7i.metal-48xl) is an alias for the family's smallest metal size by vCPUs, and the run says
            so in one line. Anything else unknown is an error naming the closest real names.
    QUERY   TERM[,TERM...] with TERM = KEY=VALUE[|VALUE...]  ('|' separates alternatives), e.g.
            arch=arm64,metal=true,family=c7g|m7g; the counted keys also take KEY>=N, KEY>N, KEY<=N, KEY<N
            (gpus>=4, vcpus<=16, gpu_memory>=40GiB).
            Keys:
              arch    x86_64 | arm64            (amd64, x86-64, aarch64 accepted)
              vendor  intel | amd | aws         (graviton accepted for aws)
              metal   true | false              (DescribeInstanceTypes BareMetal)
              family  glob over family names    c7g, m7*, c7g|m7g
              name    glob over full names      m7i.metal*, *.metal
              vcpus   N, N-M, N- or -M          96, 64-128, 64- (or vcpus>=64)
              gpu     nvidia | amd | ... | true | false   GPU maker (GpuInfo.Gpus[].Manufacturer); true:
                                                any GPU, false: none
              gpus    count, as vcpus           gpus>=4, gpus=8, gpus=1-2 (0 for a type without GPUs)
              gpu_model   glob over the API's GPU name   a10g, l4, a100|h100, t4*  (case-insensitive)
              gpu_memory  memory per GPU as vcpus, in GiB unless MiB is said: gpu_memory>=40,
                                                gpu_memory>=40GiB, gpu_memory=16384MiB. The API's figure
                                                is per device and exact: g5's A10G is 22888 MiB
                                                (22.35 GiB), so gpu_memory>=24 does not match it.
              pick    smallest | largest        one type of the matches: fewest / most vCPUs
            A query matching more than --perfci-max-types types (default 8) is an error showing the
            count and the first matches, so nobody provisions forty metal machines by accident.

Splitting a --instance-type value into items: --instance-type is comma-separated, and so is a query.
A piece containing '=' is a query term, and consecutive terms form one query (a comma "binds" to the
query it stands in); a piece without '=' is a name. So
    --instance-type 'm7i.large,arch=arm64,metal=true,c7i.large'
has three items: m7i.large, the query arch=arm64,metal=true, and c7i.large. ';' always separates
items (as does repeating --instance-type), which is how two queries are given in one value:
    --instance-type 'arch=arm64,metal=true;vendor=amd,metal=true'
A key repeated within one query is an error that says to use ';'.

GPU terms read DescribeInstanceTypes GpuInfo (moto's catalogue carries it too); a host known only by
its facts (local, inventory) has no GPU attributes, so a GPU term never matches it: use the marker
requires(gpu=True), decided on the host itself, for that.

Vendor: ProcessorInfo.Manufacturer of DescribeInstanceTypes (Intel, AMD, AWS), which moto's
catalogue carries too; when absent, the family letter convention (instance_types.vendor_from_family).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_perfci.models.arch import ARCHES, normalise_arch
from pytest_perfci.models.instance_types import InstanceTypeInfo, UnknownInstanceType, closest_names

DEFAULT_MAX_TYPES = 8
KEYS = ("arch", "vendor", "metal", "family", "name", "vcpus", "gpu", "gpus", "gpu_model", "gpu_memory", "pick")
COUNTED = ("vcpus", "gpus", "gpu_memory")  # keys that take >=, >, <=, < as well as = (and N-M ranges)
_TERM_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(>=|<=|=|>|<)\s*(.*)$")
_OPS = (">=", "<=", ">", "<")
_UNBOUNDED = 1 << 30  # no upper bound (vCPUs, GPUs, MiB: all far below it)
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(gib|gb|g|mib|mb|m)?$")
_VENDOR = {"intel": "intel", "amd": "amd", "aws": "aws", "graviton": "aws"}
_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_PICK = ("smallest", "largest")


class QueryError(ValueError):
    """An attribute query is malformed; str() is one line naming the term and what is allowed."""


class TooManyMatches(ValueError):
    """A query matches more types than the configured maximum (or none at all); str() is one line."""


def is_query(item: str) -> bool:
    """A query term has an operator (=, >, <); an instance type name never does."""
    return any(op in item for op in "=<>")


def split_items(values: Any) -> tuple[str, ...]:
    """--instance-type values (repeatable) -> items, each a name or a query (see the module doc).

    ["m7i.large,arch=arm64,metal=true", "c7g.metal"] -> ("m7i.large", "arch=arm64,metal=true", "c7g.metal")
    """
    if values is None:
        return ()
    raw = [values] if isinstance(values, str) else list(values)
    items: list[str] = []
    for value in raw:
        for segment in str(value).split(";"):
            terms: list[str] = []
            for piece in (p.strip() for p in segment.split(",")):
                if not piece:
                    continue
                if is_query(piece):
                    terms.append(piece)
                    continue
                if terms:
                    items.append(",".join(terms))
                    terms = []
                items.append(piece)
            if terms:
                items.append(",".join(terms))
    return tuple(items)


def _amount(text: str, key: str, where: str) -> int:
    """One bound of a counted key: an integer, or for gpu_memory an amount in GiB (default) or MiB."""
    if key != "gpu_memory":
        try:
            return int(text)
        except ValueError:
            example = "vcpus=64-128" if key == "vcpus" else f"{key}>=4"
            raise QueryError(f"{where}: {key}={text!r} is not a count; use N, N-M, N-, -M or {key}>=N "
                             f"(e.g. {example})") from None
    match = _MEMORY_RE.match(text.strip().lower())
    if not match:
        raise QueryError(f"{where}: gpu_memory={text!r} is not an amount; use GiB (40, 40GiB) or MiB "
                         "(16384MiB), e.g. gpu_memory>=40")
    number, unit = float(match.group(1)), match.group(2) or "gib"
    return int(number * 1024) if unit.startswith("g") else int(number)


def _range(text: str, key: str, where: str) -> tuple[int, int]:
    """N, N-M, N-, -M, >=N, >N, <=N, <N -> inclusive (low, high); gpu_memory in MiB."""
    for op in _OPS:
        if text.startswith(op):
            n = _amount(text[len(op):], key, where)
            return {">=": (n, _UNBOUNDED), ">": (n + 1, _UNBOUNDED), "<=": (0, n), "<": (0, n - 1)}[op]
    lo, sep, hi = text.partition("-")
    if not sep:
        n = _amount(lo, key, where)
        return n, n
    low = _amount(lo, key, where) if lo else 0
    high = _amount(hi, key, where) if hi else _UNBOUNDED
    if low > high:
        raise QueryError(f"{where}: {key}={text!r} is an empty range")
    return low, high


def _vcpu_range(text: str, where: str) -> tuple[int, int]:
    return _range(text, "vcpus", where)


def _render(terms: Mapping[str, list[str]]) -> str:
    """Terms back to their spelling: vcpus=64-128, gpus>=4, gpu=nvidia|amd."""
    return ",".join(f"{k}{v[0]}" if len(v) == 1 and v[0].startswith(_OPS) else f"{k}={'|'.join(v)}"
                    for k, v in terms.items())


@dataclass(frozen=True)
class Query:
    """One attribute query: every key must match (AND), any alternative of a key may (OR)."""

    text: str
    arch: frozenset[str] = frozenset()
    vendor: frozenset[str] = frozenset()
    metal: bool | None = None
    family: tuple[str, ...] = ()
    name: tuple[str, ...] = ()
    vcpus: tuple[tuple[int, int], ...] = ()
    gpu: frozenset[str] = frozenset()  # makers, or "true"/"false" for any/none
    gpus: tuple[tuple[int, int], ...] = ()
    gpu_model: tuple[str, ...] = ()
    gpu_memory: tuple[tuple[int, int], ...] = ()  # MiB per device
    pick: str | None = None

    @classmethod
    def parse(cls, text: str) -> Query:
        """'arch=arm64,metal=true,family=c7g|m7g' -> Query; QueryError names the bad term."""
        where = f"query {text!r}"
        terms: dict[str, list[str]] = {}
        for term in (t.strip() for t in text.split(",")):
            if not term:
                continue
            match = _TERM_RE.match(term)
            if not match:
                raise QueryError(f"{where}: {term!r} is not KEY=VALUE; keys: {', '.join(KEYS)}")
            key, op, value = match.group(1).lower().replace("-", "_"), match.group(2), match.group(3)
            if key not in KEYS:
                raise QueryError(f"{where}: unknown key {key!r}; keys: {', '.join(KEYS)}")
            if op != "=" and key not in COUNTED:
                raise QueryError(f"{where}: {key}{op}{value} compares, but {key} is not counted; use {key}=VALUE "
                                 f"({op} works for {', '.join(COUNTED)})")
            if key in terms:
                raise QueryError(f"{where}: {key} given twice; separate two queries with ';' "
                                 "or another --instance-type")
            if op == "=":
                alternatives = [v.strip() for v in value.split("|") if v.strip()]
            else:
                if "|" in value:
                    raise QueryError(f"{where}: {key}{op}{value}: a comparison takes one value")
                alternatives = [op + value.strip()] if value.strip() else []
            if not alternatives:
                raise QueryError(f"{where}: {key}{op} needs a value")
            terms[key] = alternatives
        if not terms:
            raise QueryError(f"{where}: empty query; keys: {', '.join(KEYS)}")
        return cls._build(_render(terms), terms)

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Query:
        """Marker form instance_type(metal=True, arch="x86_64", vendor=["intel", "amd"]) -> Query."""
        terms: dict[str, list[str]] = {}
        for key, value in kwargs.items():
            values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            terms[key.lower()] = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        bad = sorted(set(terms) - set(KEYS))
        if bad:
            raise QueryError(f"unknown query key {bad[0]!r}; keys: {', '.join(KEYS)}")
        if not terms:
            raise QueryError(f"empty query; keys: {', '.join(KEYS)}")
        return cls._build(_render(terms), terms)

    @classmethod
    def _build(cls, text: str, terms: Mapping[str, list[str]]) -> Query:
        where = f"query {text!r}"
        values: dict[str, Any] = {}
        for key, alternatives in terms.items():
            lowered = [a.lower() for a in alternatives]
            if key == "arch":
                bad = [a for a in lowered if normalise_arch(a) not in ARCHES]
                if bad:
                    raise QueryError(f"{where}: arch={bad[0]} is not allowed; use x86_64 or arm64")
                values["arch"] = frozenset(normalise_arch(a) for a in lowered)
            elif key == "vendor":
                bad = [a for a in lowered if a not in _VENDOR]
                if bad:
                    raise QueryError(f"{where}: vendor={bad[0]} is not allowed; use intel, amd or aws (graviton)")
                values["vendor"] = frozenset(_VENDOR[a] for a in lowered)
            elif key == "metal":
                if len(lowered) != 1 or lowered[0] not in _BOOL:
                    raise QueryError(f"{where}: metal={'|'.join(alternatives)} is not allowed; use true or false")
                values["metal"] = _BOOL[lowered[0]]
            elif key in ("family", "name"):
                values[key] = tuple(lowered)
            elif key in COUNTED:
                values[key] = tuple(_range(a, key, where) for a in lowered)
            elif key == "gpu":
                if len(lowered) > 1 and set(lowered) & set(_BOOL):
                    raise QueryError(f"{where}: gpu={'|'.join(alternatives)}: true/false stand alone; "
                                     "or name makers: gpu=nvidia|amd")
                if not all(a.isalnum() for a in lowered):
                    wrong = next(a for a in lowered if not a.isalnum())
                    raise QueryError(f"{where}: gpu={wrong} is not allowed; use a maker (nvidia, amd, ...), "
                                     "true (any GPU) or false (none)")
                values["gpu"] = frozenset(str(_BOOL[a]).lower() if a in _BOOL else a for a in lowered)
            elif key == "gpu_model":
                values["gpu_model"] = tuple(lowered)
            elif key == "pick":
                if len(lowered) != 1 or lowered[0] not in _PICK:
                    raise QueryError(f"{where}: pick={'|'.join(alternatives)} is not allowed; use smallest or largest")
                values["pick"] = lowered[0]
        return cls(text=text, **values)

    def matches(self, t: Any) -> bool:
        """Whether a type fits every term; t has name, family, arch, vendor, vcpus, metal and the gpu_*
        attributes of InstanceTypeInfo (None: unknown, which never matches a term about it)."""
        if self.arch and getattr(t, "arch", None) not in self.arch:
            return False
        if self.vendor and getattr(t, "vendor", None) not in self.vendor:
            return False
        if self.metal is not None and getattr(t, "metal", None) is not self.metal:
            return False
        if self.family and not any(fnmatch.fnmatchcase(getattr(t, "family", None) or "", f) for f in self.family):
            return False
        if self.name and not any(fnmatch.fnmatchcase(getattr(t, "name", None) or "", n) for n in self.name):
            return False
        vcpus = getattr(t, "vcpus", None)
        if self.vcpus and not (vcpus and any(lo <= vcpus <= hi for lo, hi in self.vcpus)):
            return False
        return self._gpu_matches(t)

    def _gpu_matches(self, t: Any) -> bool:
        if not (self.gpu or self.gpus or self.gpu_model or self.gpu_memory):
            return True
        count = getattr(t, "gpu_count", None)
        if count is None:  # facts of a host: no catalogue, nothing known about GPUs
            return False
        if self.gpu:
            makers: frozenset[str] = getattr(t, "gpu_makers", frozenset())
            if not ((count > 0 and "true" in self.gpu) or (count == 0 and "false" in self.gpu)
                    or makers & self.gpu):
                return False
        if self.gpus and not any(lo <= count <= hi for lo, hi in self.gpus):
            return False
        models = [m.lower() for m in getattr(t, "gpu_models", ())]
        if self.gpu_model and not any(fnmatch.fnmatchcase(m, g) for m in models for g in self.gpu_model):
            return False
        memory = getattr(t, "gpu_memory_mib", None)
        return not (self.gpu_memory and not (memory and any(lo <= memory <= hi for lo, hi in self.gpu_memory)))

    def select(self, types: Iterable[InstanceTypeInfo]) -> list[InstanceTypeInfo]:
        """The matching types in a stable order (family, vCPUs, name); `pick` narrows them to one."""
        found = sorted((t for t in types if self.matches(t)), key=lambda t: (t.family, t.vcpus, t.name))
        if self.pick and found:
            order = sorted(found, key=lambda t: (t.vcpus, t.memory_mib, t.name))
            found = [order[0] if self.pick == "smallest" else order[-1]]
        return found


@dataclass(frozen=True)
class Resolved:
    """One real type of the run and what the user asked for (None when named exactly)."""

    info: InstanceTypeInfo
    requested: str | None = None


@dataclass
class Resolution:
    """The run's real types in request order (each once), and one line per alias/query to print."""

    types: list[Resolved] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.info.name for r in self.types]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"info": r.info.model_dump(), "requested": r.requested} for r in self.types]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> Resolution:
        return cls([Resolved(InstanceTypeInfo.model_validate(d["info"]), d.get("requested")) for d in data])


def metal_alias(name: str, types: Mapping[str, InstanceTypeInfo]) -> InstanceTypeInfo | None:
    """`<family>.metal` with no type of that exact name -> the family's smallest metal size, else None."""
    family, _, size = name.partition(".")
    if size != "metal" or name in types:
        return None
    sizes = [t for t in types.values() if t.family == family and t.metal]
    return min(sizes, key=lambda t: (t.vcpus, t.memory_mib, t.name)) if sizes else None


def resolve(
    items: Iterable[str],
    types: Mapping[str, InstanceTypeInfo],
    *,
    region: str,
    max_types: int = DEFAULT_MAX_TYPES,
    offered: Collection[str] | None = None,
) -> Resolution:
    """Items (names, aliases, queries) -> the real types, in order, each once.

    `offered`: types the region offers (queries consider only those; None: every listed type).
    Raises UnknownInstanceType (with the closest real names), QueryError or TooManyMatches, all one line.
    """
    out = Resolution()
    seen: set[str] = set()

    def add(info: InstanceTypeInfo, requested: str | None) -> None:
        if info.name not in seen:
            seen.add(info.name)
            out.types.append(Resolved(info, requested))

    for item in items:
        if is_query(item):
            query = Query.parse(item)
            pool = [t for n, t in types.items() if offered is None or n in offered]
            found = query.select(pool)
            if not found:
                raise TooManyMatches(f"query {query.text!r} matches no instance type offered in {region}; "
                                     "loosen it (keys: " + ", ".join(KEYS) + ")")
            if len(found) > max_types:
                first = ", ".join(t.name for t in found[:max_types])
                raise TooManyMatches(
                    f"query {query.text!r} matches {len(found)} instance types in {region}, more than "
                    f"--perfci-max-types={max_types}: {first}, ...; narrow the query (e.g. family=..., "
                    "pick=smallest) or raise --perfci-max-types"
                )
            out.notes.append(f"{query.text} -> {', '.join(t.name for t in found)} "
                             f"({len(found)} type{'s' if len(found) != 1 else ''} in {region})")
            for info in found:
                add(info, query.text)
        elif item in types:
            add(types[item], None)
        elif (alias := metal_alias(item, types)) is not None:
            out.notes.append(f"{item} -> {alias.name} ({alias.vcpus} vCPU, smallest metal size in "
                             f"{alias.family}; name a size to choose another)")
            add(alias, item)
        else:
            raise UnknownInstanceType(item, region, closest_names(item, list(types)))
    return out
