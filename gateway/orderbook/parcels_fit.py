"""Which containers hold an order's units: a 3D fit with the placements that prove it.

Pure: no I/O, no store, no clock; numbers in, numbers out (gateway/orderbook/parcels.py
feeds it from the catalog and the units' SKU snapshots, and the benchmark from the
reference catalog).

**The fit** of a set of units into one container is an extreme-point first-fit-decreasing
heuristic (Crainic, Perboli and Tadei, 2008, in its simplest form): the units, largest
first, each go at the first extreme point (lowest, then nearest the back, then nearest the
left) where one of its six axis-aligned rotations (flattest first) lies inside the
container and overlaps no unit placed before it; placing a unit adds the three points
beyond its far corner. It is conservative: it can miss a packing a person would find, and
it never reports one that does not exist, because every packing it returns has passed
:func:`verify` (every box inside, each the unit's own size in some rotation, no two
overlapping, kind and load kept). A soft mailer is a flat bag: its ``inner`` is taken as a
rigid box, which is conservative too. A rigid unit (``crushable`` false) never goes into a
mailer; the units' weights together stay within ``max_load_g``.

**The choice** is the cheapest set of containers holding every unit: for an order of at
most ``exact_max`` units (typical orders have one to five), every way of splitting the
units into groups is tried, each group in its cheapest container (groups of equal units
are fitted once, and a split whose lower bound cannot beat the best one found is not
fitted at all); for a larger order, containers are filled one at a time (each kind of
container is filled first-fit from the units left, and the one that costs least per
volume of units it took is kept), the rest packed in one container as soon as one holds
them, and each group is then moved to the cheapest container that holds it. Ties go to
fewer containers, then less container volume, then the materials' names: the same units
and containers always give the same answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum

__all__ = [
    "EXACT_MAX",
    "Choice",
    "Container",
    "Dims",
    "Kind",
    "Misfit",
    "NoFit",
    "Packed",
    "Placement",
    "Unit",
    "Why",
    "choose",
    "fits_alone",
    "misfit",
    "pack",
    "ranked_costs",
    "verify",
]

Dims = tuple[float, float, float]
# Millimetres and grams from a catalog: a sum of sizes may differ from the size by a float's
# rounding, never by this.
EPS = 1e-6
# Up to this many units every split is tried (Bell(6) = 203 splits, at most 63 groups).
EXACT_MAX = 6


class Kind(StrEnum):
    MAILER = "mailer"  # a soft bag: crushable units only
    CARTON = "carton"


@dataclass(frozen=True, slots=True)
class Unit:
    """One finished unit as it goes into the parcel."""

    key: str  # its serial
    dims: Dims
    weight_g: float
    crushable: bool

    @property
    def volume(self) -> float:
        return self.dims[0] * self.dims[1] * self.dims[2]

    @property
    def shape(self) -> tuple[Dims, float, bool]:
        """What makes two units interchangeable for a fit."""
        d = sorted(self.dims)
        return (d[0], d[1], d[2]), self.weight_g, self.crushable


@dataclass(frozen=True, slots=True)
class Container:
    """A container material: its inner size, load limit and what using one costs."""

    material: str
    kind: Kind
    inner: Dims
    max_load_g: float
    cost: float  # its standard cost, or a rank for one without (see ranked_costs)

    @property
    def volume(self) -> float:
        return self.inner[0] * self.inner[1] * self.inner[2]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a unit sits: its corner nearest the container's origin and its size as turned."""

    key: str
    at: Dims
    size: Dims


@dataclass(frozen=True, slots=True)
class Packed:
    """Units in one container, each where it sits."""

    container: Container
    placements: tuple[Placement, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.placements)


Choice = tuple[Packed, ...]


@dataclass(frozen=True, slots=True)
class NoFit:
    """A unit no container holds, even alone; ``largest`` is the largest container."""

    unit: Unit
    largest: Container


class Why(Enum):
    """Why a container cannot take some units."""

    RIGID_IN_MAILER = "rigid in mailer"  # unit: the first rigid one
    TOO_HEAVY = "too heavy"  # load_g: the units' weight
    TOO_BIG = "too big"  # unit: the first that does not fit even alone
    NO_ROOM = "no room"  # each fits alone, together they do not (by this fit)


@dataclass(frozen=True, slots=True)
class Misfit:
    why: Why
    unit: Unit | None = None
    load_g: float = 0.0


# -- one container --------------------------------------------------------------------------


def fits_alone(container: Container, unit: Unit) -> bool:
    """Whether ``unit`` on its own goes into ``container``: kind, load, and its sorted sizes
    within the container's sorted sizes (exact for one box and axis-aligned rotations)."""
    if container.kind is Kind.MAILER and not unit.crushable:
        return False
    if unit.weight_g > container.max_load_g + EPS:
        return False
    return all(
        u <= c + EPS for u, c in zip(sorted(unit.dims), sorted(container.inner), strict=True)
    )


def misfit(container: Container, units: Sequence[Unit]) -> Misfit | None:
    """Why ``container`` cannot take ``units``; None when it can (a packing was found)."""
    rigid = next((u for u in units if not u.crushable), None)
    if container.kind is Kind.MAILER and rigid is not None:
        return Misfit(Why.RIGID_IN_MAILER, unit=rigid)
    load = sum(u.weight_g for u in units)
    if load > container.max_load_g + EPS:
        return Misfit(Why.TOO_HEAVY, load_g=load)
    too_big = next((u for u in _decreasing(units) if not fits_alone(container, u)), None)
    if too_big is not None:
        return Misfit(Why.TOO_BIG, unit=too_big)
    if pack(container, units) is None:
        return Misfit(Why.NO_ROOM, load_g=load)
    return None


def pack(container: Container, units: Sequence[Unit]) -> Packed | None:
    """``units`` placed in one ``container`` (all of them), checked; None when the fit finds
    no packing."""
    if not units:
        return Packed(container, ())
    if container.kind is Kind.MAILER and not all(u.crushable for u in units):
        return None
    if sum(u.weight_g for u in units) > container.max_load_g + EPS:
        return None
    if sum(u.volume for u in units) > container.volume + EPS:
        return None
    if not all(fits_alone(container, u) for u in units):
        return None
    space = _Space(container.inner)
    for unit in _decreasing(units):
        if space.add(unit) is None:
            return None
    packed = Packed(container, tuple(space.placements))
    return packed if verify(packed, units) else None


def verify(packed: Packed, units: Sequence[Unit]) -> bool:
    """Every unit placed once, inside, as its own size turned, none overlapping another;
    kind and load kept."""
    c = packed.container
    by_key = {u.key: u for u in units}
    keys = [p.key for p in packed.placements]
    if len(keys) != len(set(keys)) or set(keys) != set(by_key) or len(by_key) != len(units):
        return False
    if c.kind is Kind.MAILER and not all(u.crushable for u in units):
        return False
    if sum(u.weight_g for u in units) > c.max_load_g + EPS:
        return False
    for p in packed.placements:
        want = sorted(by_key[p.key].dims)
        if any(abs(a - b) > EPS for a, b in zip(sorted(p.size), want, strict=True)):
            return False
        for axis in range(3):
            if p.at[axis] < -EPS or p.at[axis] + p.size[axis] > c.inner[axis] + EPS:
                return False
    boxes = packed.placements
    return not any(_overlap(a, b) for a, b in itertools.combinations(boxes, 2))


def _overlap(a: Placement, b: Placement) -> bool:
    return all(
        a.at[i] < b.at[i] + b.size[i] - EPS and b.at[i] < a.at[i] + a.size[i] - EPS
        for i in range(3)
    )


def _decreasing(units: Sequence[Unit]) -> list[Unit]:
    """Largest first (volume, then longest side), then by key: the fit's order."""
    return sorted(units, key=lambda u: (-u.volume, -max(u.dims), u.key))


def _rotations(dims: Dims) -> list[Dims]:
    """The distinct axis-aligned turns of a box, flattest first (then narrowest)."""
    turns = {(a, b, c) for a, b, c in itertools.permutations(dims)}
    return sorted(turns, key=lambda r: (r[2], r[1], r[0]))


_Box = tuple[float, float, float, float, float, float]  # x0, y0, z0, x1, y1, z1


@dataclass
class _Space:
    """One container being filled: the boxes placed and the extreme points left."""

    inner: Dims
    placements: list[Placement] = field(default_factory=list)
    boxes: list[_Box] = field(default_factory=list)
    points: list[Dims] = field(default_factory=lambda: [(0.0, 0.0, 0.0)])
    used: float = 0.0

    def add(self, unit: Unit) -> Placement | None:
        """Place ``unit`` at the first extreme point that takes it, or None."""
        wx, wy, wz = self.inner
        if self.used + unit.volume > wx * wy * wz + EPS:
            return None
        turns = _rotations(unit.dims)
        for px, py, pz in self.points:
            for dx, dy, dz in turns:
                x1, y1, z1 = px + dx, py + dy, pz + dz
                if x1 > wx + EPS or y1 > wy + EPS or z1 > wz + EPS:
                    continue
                if any(
                    px < b[3] - EPS
                    and b[0] < x1 - EPS
                    and py < b[4] - EPS
                    and b[1] < y1 - EPS
                    and pz < b[5] - EPS
                    and b[2] < z1 - EPS
                    for b in self.boxes
                ):
                    continue
                return self._put(unit, (px, py, pz), (dx, dy, dz))
        return None

    def _put(self, unit: Unit, at: Dims, size: Dims) -> Placement:
        box = (at[0], at[1], at[2], at[0] + size[0], at[1] + size[1], at[2] + size[2])
        self.boxes.append(box)
        self.used += unit.volume
        placed = Placement(unit.key, at, size)
        self.placements.append(placed)
        fresh = [
            (box[3], at[1], at[2]),
            (at[0], box[4], at[2]),
            (at[0], at[1], box[5]),
        ]
        kept = {p for p in self.points if p != at and not _inside(p, box)}
        for p in fresh:
            if all(p[i] < self.inner[i] - EPS for i in range(3)) and not any(
                _inside(p, b) for b in self.boxes
            ):
                kept.add(p)
        self.points = sorted(kept, key=lambda p: (p[2], p[1], p[0]))
        return placed


def _inside(p: Dims, b: _Box) -> bool:
    """Whether point ``p`` is in box ``b`` where nothing else can start (its low faces
    included, its high faces not)."""
    return (
        b[0] - EPS <= p[0] < b[3] - EPS
        and b[1] - EPS <= p[1] < b[4] - EPS
        and b[2] - EPS <= p[2] < b[5] - EPS
    )


# -- the choice ------------------------------------------------------------------------------


def ranked_costs(entries: Sequence[tuple[str, float | None, float]]) -> dict[str, float]:
    """What choosing each container costs, from (material, standard cost or None, inner
    volume): its standard cost when it has one; one without counts after every priced
    one, by its volume's rank among the unpriced (the dearest priced cost + 1 for the
    smallest, + 2 for the next …), so that it is chosen only when no priced container
    holds the units, and the smaller of two unpriced ones first."""
    priced = [cost for _, cost, _ in entries if cost is not None]
    top = max(priced, default=0.0)
    unpriced = sorted((volume, material) for material, cost, volume in entries if cost is None)
    rank = {material: top + n for n, (_, material) in enumerate(unpriced, start=1)}
    return {m: float(cost) if cost is not None else rank[m] for m, cost, _ in entries}


def choose(
    containers: Sequence[Container], units: Sequence[Unit], exact_max: int = EXACT_MAX
) -> Choice | NoFit:
    """The cheapest set of containers holding every unit, each with its placements; or the
    first unit (largest first) that no container holds even alone."""
    if not units:
        return ()
    if not containers:
        raise ValueError("no containers to choose from")
    by_cost = sorted(containers, key=lambda c: (c.cost, c.volume, c.material))
    for unit in _decreasing(units):
        if not any(fits_alone(c, unit) for c in by_cost):
            largest = max(containers, key=lambda c: (c.volume, c.material))
            return NoFit(unit, largest)
    chooser = _Chooser(by_cost)
    if len(units) <= exact_max:
        return chooser.exact(units)
    return chooser.greedy(units)


_Score = tuple[float, int, float, tuple[str, ...]]


def _score(choice: Choice) -> _Score:
    """Cheaper, then fewer containers, then less volume, then by name."""
    return (
        round(sum(p.container.cost for p in choice), 9),
        len(choice),
        sum(p.container.volume for p in choice),
        tuple(sorted(p.container.material for p in choice)),
    )


class _Chooser:
    """One choice's work: the containers in cost order and what was fitted already."""

    def __init__(self, by_cost: list[Container]) -> None:
        self.by_cost = by_cost
        # A group's cheapest packing by the shapes of its units (equal units fit alike):
        # the container and each placement by its unit's position in the group's canonical
        # order; None when no container holds the group.
        self._fits: dict[tuple[tuple[Dims, float, bool], ...], _Fitted | None] = {}
        self._alone_seen: dict[tuple[str, tuple[Dims, float, bool]], bool] = {}

    # -- the cheapest container of one group

    def cheapest(self, group: Sequence[Unit]) -> Packed | None:
        ordered = sorted(group, key=lambda u: (u.shape, u.key))
        key = tuple(u.shape for u in ordered)
        if key not in self._fits:
            self._fits[key] = self._fit(ordered)
        fitted = self._fits[key]
        if fitted is None:
            return None
        container, where = fitted
        return Packed(
            container,
            tuple(Placement(ordered[i].key, at, size) for i, at, size in where),
        )

    def _fit(self, ordered: list[Unit]) -> _Fitted | None:
        position = {u.key: i for i, u in enumerate(ordered)}
        for container in self.by_cost:
            packed = pack(container, ordered)
            if packed is not None:
                return container, tuple((position[p.key], p.at, p.size) for p in packed.placements)
        return None

    def bound(self, group: Sequence[Unit]) -> float:
        """A lower bound of the group's cost without fitting: the cheapest container its
        kind, load, volume and each unit's size allow."""
        load = sum(u.weight_g for u in group)
        volume = sum(u.volume for u in group)
        shapes = {u.shape: u for u in group}
        for c in self.by_cost:
            if (
                load <= c.max_load_g + EPS
                and volume <= c.volume + EPS
                and all(self._alone(c, u) for u in shapes.values())
            ):
                return c.cost
        return float("inf")

    def _alone(self, c: Container, u: Unit) -> bool:
        key = (c.material, u.shape)
        found = self._alone_seen.get(key)
        if found is None:
            found = self._alone_seen[key] = fits_alone(c, u)
        return found

    # -- small orders: every split

    def exact(self, units: Sequence[Unit]) -> Choice:
        items = _decreasing(units)
        # Per group of units (a bit mask of their positions): its bound and its packing.
        bounds: dict[int, float] = {}
        packs: dict[int, Packed | None] = {}

        def group(mask: int) -> list[Unit]:
            return [u for i, u in enumerate(items) if mask >> i & 1]

        best: Choice | None = None
        best_score: _Score | None = None
        for blocks in _splits(len(items)):
            masks = [sum(1 << i for i in block) for block in blocks]
            low = 0.0
            for mask in masks:
                if mask not in bounds:
                    bounds[mask] = self.bound(group(mask))
                low += bounds[mask]
            if low == float("inf"):
                continue
            if best_score is not None and (
                low > best_score[0] + EPS
                or (low >= best_score[0] - EPS and len(masks) > best_score[1])
            ):
                continue
            packed: list[Packed] = []
            for mask in masks:
                if mask not in packs:
                    packs[mask] = self.cheapest(group(mask))
                found = packs[mask]
                if found is None:
                    break
                packed.append(found)
            else:
                choice = tuple(packed)
                score = _score(choice)
                if best_score is None or score < best_score:
                    best, best_score = choice, score
        # Every unit fits some container alone (choose checked): the split into single
        # units always packs, so there is a best.
        assert best is not None
        return best

    # -- large orders: one container at a time

    def greedy(self, units: Sequence[Unit]) -> Choice:
        left = _decreasing(units)
        groups: list[Packed] = []
        while left:
            whole = self.cheapest(left) if self.bound(left) != float("inf") else None
            if whole is not None:
                groups.append(whole)
                break
            best: tuple[tuple[float, int, float, str], Packed] | None = None
            for c in self.by_cost:
                packed = _fill(c, left)
                if packed is None:
                    continue
                taken = {p.key for p in packed.placements}
                volume = sum(u.volume for u in left if u.key in taken)
                score = (c.cost / volume, -len(taken), c.volume, c.material)
                if best is None or score < best[0]:
                    best = (score, packed)
            assert best is not None  # every unit fits some container alone
            groups.append(best[1])
            taken = set(best[1].keys)
            left = [u for u in left if u.key not in taken]
        by_key = {u.key: u for u in units}
        # Each group into the cheapest container that holds it (a last group is often
        # smaller than the container it was filled into).
        out: list[Packed] = []
        for g in groups:
            cheaper = self.cheapest([by_key[k] for k in g.keys])
            out.append(
                cheaper if cheaper is not None and cheaper.container.cost < g.container.cost else g
            )
        return tuple(out)


_Fitted = tuple[Container, tuple[tuple[int, Dims, Dims], ...]]


def _fill(container: Container, units: Sequence[Unit]) -> Packed | None:
    """As many of ``units`` (in their order) as first-fit puts into one ``container``;
    None when it takes none. A unit like one that did not fit is not tried again: the
    space only fills up."""
    space = _Space(container.inner)
    load = 0.0
    failed: set[tuple[Dims, float, bool]] = set()
    taken: list[Unit] = []
    for unit in units:
        shape = unit.shape
        if shape in failed:
            continue
        if (
            (container.kind is Kind.MAILER and not unit.crushable)
            or load + unit.weight_g > container.max_load_g + EPS
            or not fits_alone(container, unit)
            or space.add(unit) is None
        ):
            failed.add(shape)
            continue
        load += unit.weight_g
        taken.append(unit)
    if not taken:
        return None
    packed = Packed(container, tuple(space.placements))
    return packed if verify(packed, taken) else None


def _splits(n: int) -> Iterator[list[list[int]]]:
    """Every partition of 0..n-1 into groups, fewest groups first."""
    every: list[list[list[int]]] = []

    def grow(i: int, blocks: list[list[int]]) -> None:
        if i == n:
            every.append([list(b) for b in blocks])
            return
        for b in blocks:
            b.append(i)
            grow(i + 1, blocks)
            b.pop()
        blocks.append([i])
        grow(i + 1, blocks)
        blocks.pop()

    grow(0, [])
    every.sort(key=len)
    yield from every
