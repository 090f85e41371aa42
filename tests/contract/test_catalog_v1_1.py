"""Contract 1.1: the new master-data fields and event types, in the schema and the models.

Expected values are read from the contract's files (the reference catalog, the schema,
hub-protocol.md), so the tests follow the contract rather than the code under test.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from cloud_sync import contract
from tests.conftest import beside_checkout

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "contract"
SCHEMAS = ROOT / "cloud_sync" / "schemas"
SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "masterdata.schema.json").read_text())
EVENT_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "event.schema.json").read_text())
# The simulators' copy of the reference catalog, which test_wire_models keeps equal to
# the shared original.
REFERENCE = ROOT / "simulators" / "data" / "reference-catalog.json"
RAW: dict[str, Any] = json.loads(REFERENCE.read_text())
# The protocol's text, vendored beside the schemas (and kept equal to the original).
PROTOCOL = SCHEMAS / "hub-protocol.md"

CATALOG_SCHEMA = SCHEMA["oneOf"][0]["properties"]
OPERATION_SCHEMA = CATALOG_SCHEMA["routings"]["items"]["properties"]["operations"]["items"]
MEDIA_SCHEMA = OPERATION_SCHEMA["properties"]["media"]["items"]
SKU_SCHEMA = CATALOG_SCHEMA["skus"]["items"]


def _catalog(raw: bytes) -> contract.Catalog:
    # The gateway parses the catalog from the payload's bytes, in JSON mode.
    return contract.Catalog.model_validate_json(raw)


def test_the_reference_catalog_uses_the_new_fields() -> None:
    # Without this the comparisons below could pass on a catalog that has none of them.
    ops = [op for r in RAW["routings"] for op in r["operations"]]
    assert "currency" in RAW
    assert any("standard_cost" in m for m in RAW["materials"])
    assert any("container" in m for m in RAW["materials"])
    assert any("instructions_i18n" in op for op in ops)
    assert any("dims_mm" in s for s in RAW["skus"])
    assert any(s.get("crushable") is False for s in RAW["skus"])


def test_the_reference_catalog_is_valid_and_keeps_the_new_fields() -> None:
    jsonschema.validate(RAW, SCHEMA)
    catalog = _catalog(REFERENCE.read_bytes())

    assert catalog.currency == RAW["currency"]
    assert catalog.model_extra == {}
    for model, raw in zip(catalog.materials, RAW["materials"], strict=True):
        assert model.model_extra == {}, raw["material"]
        assert model.standard_cost == raw.get("standard_cost"), raw["material"]
        if "container" in raw:
            assert isinstance(model.container, contract.Container)
            assert model.container.kind == raw["container"]["kind"]
            assert list(model.container.inner_mm) == raw["container"]["inner_mm"]
            assert model.container.max_load_g == raw["container"]["max_load_g"]
        else:
            assert model.container is None, raw["material"]
    for routing, raw_routing in zip(catalog.routings, RAW["routings"], strict=True):
        for op, raw_op in zip(routing.operations, raw_routing["operations"], strict=True):
            assert op.model_extra == {}, raw_op["op"]
            assert op.instructions_i18n == raw_op.get("instructions_i18n", {}), raw_op["op"]
    crushable_default = SKU_SCHEMA["properties"]["crushable"]["default"]
    for sku, raw_sku in zip(catalog.skus, RAW["skus"], strict=True):
        assert sku.model_extra == {}, raw_sku["sku"]
        dims = raw_sku.get("dims_mm")
        assert sku.dims_mm == (tuple(dims) if dims is not None else None), raw_sku["sku"]
        assert sku.crushable is raw_sku.get("crushable", crushable_default), raw_sku["sku"]


def test_the_first_operation_keeps_its_steps_per_language() -> None:
    raw_op = RAW["routings"][0]["operations"][0]
    op = _catalog(REFERENCE.read_bytes()).routings[0].operations[0]
    for tag, steps in raw_op["instructions_i18n"].items():
        assert op.instructions_i18n[tag] == steps
    # Non-ASCII steps arrive intact (the payload is UTF-8 bytes).
    assert any(not s.isascii() for steps in op.instructions_i18n.values() for s in steps)


SHA = hashlib.sha256(b"e-SOP picture").hexdigest()
FULL_MEDIA = {
    "url": "https://hub.example/sop/print-1.jpg",
    "sha256": SHA,
    "kind": "pdf",
    "caption": "Load the blank",
    "step": 2,
    "extra_field": "kept",
}
BARE_MEDIA = {"url": "https://hub.example/sop/print-2.jpg", "sha256": SHA}


def with_media() -> dict[str, Any]:
    """The reference catalog with media on its first operation (the file has none)."""
    doc = copy.deepcopy(RAW)
    doc["routings"][0]["operations"][0]["media"] = [dict(FULL_MEDIA), dict(BARE_MEDIA)]
    return doc


def kept(dumped: Any, raw: Any) -> bool:
    """Every value of ``raw`` is in ``dumped`` (which may add the schema's defaults)."""
    if isinstance(raw, dict):
        return isinstance(dumped, dict) and all(
            k in dumped and kept(dumped[k], v) for k, v in raw.items()
        )
    if isinstance(raw, list):
        return (
            isinstance(dumped, list)
            and len(dumped) == len(raw)
            and all(kept(d, r) for d, r in zip(dumped, raw, strict=True))
        )
    return type(dumped) is type(raw) and bool(dumped == raw)


def test_a_frozen_routing_keeps_every_field() -> None:
    """The gateway freezes operations with this dump and reads the JSON back later."""
    doc = with_media()
    catalog = _catalog(json.dumps(doc).encode())
    for routing, raw_routing in zip(catalog.routings, doc["routings"], strict=True):
        for op, raw_op in zip(routing.operations, raw_routing["operations"], strict=True):
            frozen = json.loads(json.dumps(op.model_dump(mode="json", exclude_none=True)))
            assert kept(frozen, raw_op), raw_op["op"]
            assert contract.Operation.model_validate(frozen) == op
    for sku, raw_sku in zip(catalog.skus, doc["skus"], strict=True):
        assert kept(sku.model_dump(mode="json", exclude_none=True), raw_sku), raw_sku["sku"]
    assert "media" in doc["routings"][0]["operations"][0]


def test_media_is_accepted_by_both_and_kept() -> None:
    doc = with_media()
    jsonschema.validate(doc, SCHEMA)
    full, bare = _catalog(json.dumps(doc).encode()).routings[0].operations[0].media
    assert (full.url, full.sha256, full.kind, full.caption, full.step) == (
        FULL_MEDIA["url"],
        FULL_MEDIA["sha256"],
        FULL_MEDIA["kind"],
        FULL_MEDIA["caption"],
        FULL_MEDIA["step"],
    )
    assert full.model_extra == {"extra_field": "kept"}
    assert bare.kind == MEDIA_SCHEMA["properties"]["kind"]["default"]
    assert (bare.caption, bare.step) == (None, None)


def test_a_catalog_without_the_new_fields_is_still_valid() -> None:
    """1.1 only adds optional fields: a 1.0 catalog parses, with the schema's defaults."""
    doc = copy.deepcopy(RAW)
    del doc["currency"]
    for material in doc["materials"]:
        material.pop("standard_cost", None)
        material.pop("container", None)
    for routing in doc["routings"]:
        for op in routing["operations"]:
            op.pop("instructions_i18n", None)
            op.pop("media", None)
    for sku in doc["skus"]:
        sku.pop("dims_mm", None)
        sku.pop("crushable", None)
    jsonschema.validate(doc, SCHEMA)
    catalog = _catalog(json.dumps(doc).encode())
    assert catalog.currency is None
    assert {(m.standard_cost, m.container) for m in catalog.materials} == {(None, None)}
    ops = [op for r in catalog.routings for op in r.operations]
    assert all(op.instructions_i18n == {} and op.media == [] for op in ops)
    crushable_default = SKU_SCHEMA["properties"]["crushable"]["default"]
    assert {(s.dims_mm, s.crushable) for s in catalog.skus} == {(None, crushable_default)}


DROP = object()
OP = ("routings", 0, "operations", 0)
MEDIA = (*OP, "media", 0)
CONTAINER = (
    "materials",
    next(i for i, m in enumerate(RAW["materials"]) if "container" in m),
    "container",
)
SKU = ("skus", 0)

REFUSED: list[tuple[tuple[str | int, ...], Any]] = [
    ((*MEDIA, "sha256"), DROP),
    ((*MEDIA, "sha256"), SHA.upper()),
    ((*MEDIA, "sha256"), SHA[:-1]),
    ((*MEDIA, "url"), DROP),
    ((*MEDIA, "kind"), "gif"),
    ((*MEDIA, "step"), 0),
    ((*MEDIA, "step"), "2"),
    ((*MEDIA, "caption"), 5),
    ((*OP, "media"), BARE_MEDIA),
    ((*OP, "instructions_i18n"), {"en": "Fold the item"}),
    ((*OP, "instructions_i18n"), {"en": [1]}),
    ((*OP, "instructions_i18n"), ["Fold the item"]),
    (("materials", 0, "standard_cost"), -0.01),
    (("materials", 0, "standard_cost"), "18.5"),
    (("materials", 0, "standard_cost"), True),
    ((*CONTAINER, "kind"), "bag"),
    ((*CONTAINER, "kind"), DROP),
    ((*CONTAINER, "inner_mm"), [300, 400]),
    ((*CONTAINER, "inner_mm"), [300, 400, 40, 40]),
    ((*CONTAINER, "inner_mm"), [300, 0, 40]),
    ((*CONTAINER, "inner_mm"), DROP),
    ((*CONTAINER, "max_load_g"), 0),
    ((*CONTAINER, "max_load_g"), DROP),
    ((*SKU, "dims_mm"), [260, 200, -15]),
    ((*SKU, "dims_mm"), [260, 200]),
    ((*SKU, "dims_mm"), [260, 200, "15"]),
    ((*SKU, "crushable"), "no"),
    ((*SKU, "crushable"), 0),
    (("currency",), "cny"),
    (("currency",), "CNYX"),
    (("currency",), 156),
]


@pytest.mark.parametrize(("path", "value"), REFUSED)
def test_the_model_and_the_schema_refuse_the_same_catalogs(
    path: tuple[str | int, ...], value: Any
) -> None:
    doc = with_media()
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    if value is DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
    with pytest.raises(ValidationError):
        _catalog(json.dumps(doc).encode())


def documented_event_types() -> set[str]:
    """The types in the first column of hub-protocol.md's event tables (1.0 and 1.1)."""
    found: set[str] = set()
    for line in PROTOCOL.read_text().splitlines():
        if line.startswith("| `"):
            found.update(re.findall(r"`([a-z_]+\.[a-z_]+)`", line.split("|")[1]))
    return found


def test_the_vendored_protocol_equals_the_shared_contract() -> None:
    original = beside_checkout(SHARED / "hub-protocol.md")
    assert original.read_text() == PROTOCOL.read_text()


def test_the_event_types_are_those_of_the_contract() -> None:
    assert set(contract.EVENT_TYPES) == documented_event_types()
    assert len(contract.EVENT_TYPES) == len(set(contract.EVENT_TYPES))


@pytest.mark.parametrize("type_", contract.EVENT_TYPES)
def test_every_event_type_fits_the_envelope(type_: str) -> None:
    envelope = {
        "v": 1,
        "gateway_id": "hz01/line3",
        "seq": 1,
        "event_id": "hz01/line3:1",
        "ts": "2026-12-01T10:00:00+08:00",
        "type": type_,
        "data": {},
    }
    jsonschema.validate(envelope, EVENT_SCHEMA)
    assert contract.Envelope.model_validate(envelope).type == type_
