"""The catalog in force, parsed once and kept in memory (it is small)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud_sync.contract import Catalog, Material, Routing, Sku


@dataclass
class CatalogCache:
    """Lookups into the active catalog; empty until the hub sent one."""

    version: str | None = None
    skus: dict[str, Sku] = field(default_factory=dict)
    routings: dict[str, Routing] = field(default_factory=dict)
    materials: dict[str, Material] = field(default_factory=dict)
    _frozen: dict[tuple[str, str], str] = field(default_factory=dict)

    def use(self, catalog: Catalog) -> None:
        self._frozen = {}
        self.version = catalog.version
        self.skus = {s.sku: s for s in catalog.skus}
        self.routings = {r.routing: r for r in catalog.routings}
        self.materials = {m.material: m for m in catalog.materials}

    def frozen(self, key: tuple[str, str], build: Callable[[], str]) -> str:
        """The JSON snapshot a work order keeps of a routing or SKU, built once per catalog."""
        text = self._frozen.get(key)
        if text is None:
            text = self._frozen[key] = build()
        return text

    def use_json(self, doc: str) -> None:
        self.use(Catalog.model_validate(json.loads(doc)))


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
