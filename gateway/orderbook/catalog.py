"""The catalog in force, parsed once and kept in memory (it is small)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from cloud_sync.contract import Catalog, Material, Operation, Routing, Sku
from gateway.store.db import Undo, no_undo


@dataclass
class CatalogCache:
    """Lookups into the active catalog; empty until the hub sent one.

    ``undo`` is the store's undo: a catalog put in force by a transaction that rolls back
    is taken back with it.
    """

    undo: Undo = no_undo
    version: str | None = None
    skus: dict[str, Sku] = field(default_factory=dict)
    routings: dict[str, Routing] = field(default_factory=dict)
    materials: dict[str, Material] = field(default_factory=dict)
    # SHA-256 of the e-SOP files (an operation's ``media``) the gateway holds a checked copy
    # of, of this catalog or an earlier one: the station screens link only those. Kept by
    # gateway/floor/media.py; files are not rolled back, so neither is this.
    media_held: set[str] = field(default_factory=set)
    _frozen: dict[tuple[str, str], str] = field(default_factory=dict)
    # The routings frozen in work orders, parsed: one parse per distinct text.
    _parsed: dict[str, tuple[Operation, ...]] = field(default_factory=dict)

    def use(self, catalog: Catalog) -> None:
        before = (self._frozen, self.version, self.skus, self.routings, self.materials)
        self._frozen = {}
        self.version = catalog.version
        self.skus = {s.sku: s for s in catalog.skus}
        self.routings = {r.routing: r for r in catalog.routings}
        self.materials = {m.material: m for m in catalog.materials}
        self.undo(lambda: self._restore(*before))

    def _restore(
        self,
        frozen: dict[tuple[str, str], str],
        version: str | None,
        skus: dict[str, Sku],
        routings: dict[str, Routing],
        materials: dict[str, Material],
    ) -> None:
        self._frozen, self.version, self.skus = frozen, version, skus
        self.routings, self.materials = routings, materials

    def operations(self, frozen: str) -> tuple[Operation, ...]:
        """A work order's frozen routing (its ``operations`` JSON), parsed once."""
        ops = self._parsed.get(frozen)
        if ops is None:
            if len(self._parsed) > 1000:  # routings are few; texts from old catalogs go
                self._parsed.clear()
            ops = self._parsed[frozen] = operations_of(frozen)
        return ops

    def frozen(self, key: tuple[str, str], build: Callable[[], str]) -> str:
        """The JSON snapshot a work order keeps of a routing or SKU, built once per catalog."""
        text = self._frozen.get(key)
        if text is None:
            text = self._frozen[key] = build()
        return text

    def use_json(self, doc: str) -> None:
        self.use(Catalog.model_validate(json.loads(doc)))


def operations_of(frozen: str) -> tuple[Operation, ...]:
    """Parse a frozen routing (the JSON list a work order keeps)."""
    return tuple(_OPERATIONS.validate_json(frozen))


_OPERATIONS = TypeAdapter(list[Operation])


def catalog_problems(catalog: Catalog) -> list[str]:
    """What makes a schema-valid catalog unusable: dangling references and shapes we need."""
    problems: list[str] = []
    materials = {m.material for m in catalog.materials}
    routings = {r.routing: r for r in catalog.routings}
    for i, routing in enumerate(catalog.routings):
        ops = [o.op for o in routing.operations]
        if len(set(ops)) != len(ops):
            problems.append(f"routings.{i}: routing {routing.routing} repeats an operation name")
        packs = [n for n, o in enumerate(routing.operations) if o.capability == "pack"]
        if packs != [len(routing.operations) - 1]:
            problems.append(
                f"routings.{i}: routing {routing.routing} must end with exactly one "
                "operation of capability 'pack' (where the order comes together)"
            )
    for i, sku in enumerate(catalog.skus):
        found = routings.get(sku.routing)
        if found is None:
            problems.append(f"skus.{i}.routing: unknown routing {sku.routing!r}")
            continue
        op_names = {o.op for o in found.operations}
        for j, line in enumerate(sku.bom):
            if line.material not in materials:
                problems.append(f"skus.{i}.bom.{j}.material: unknown material {line.material!r}")
            if line.op is not None and line.op not in op_names:
                problems.append(
                    f"skus.{i}.bom.{j}.op: {line.op!r} is not an operation of {sku.routing}"
                )
    return problems
