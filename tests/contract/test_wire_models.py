"""The wire models agree with the contract's JSON Schemas, and the copies with the originals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from cloud_sync import contract
from tests.conftest import beside_checkout

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "cloud_sync" / "schemas"
SHARED = ROOT.parent / "shared" / "contract"
DATA = ROOT / "simulators" / "data"


def schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return doc


@pytest.mark.parametrize("name", ["order", "event", "masterdata"])
def test_vendored_schemas_equal_the_shared_contract(name: str) -> None:
    original = beside_checkout(SHARED / f"{name}.schema.json")
    assert json.loads(original.read_text()) == schema(name)


@pytest.mark.parametrize("name", ["reference-catalog.json", "reference-stock.json"])
def test_the_simulators_master_data_equals_the_shared_contract(name: str) -> None:
    original = beside_checkout(SHARED / name)
    assert json.loads(original.read_text()) == json.loads((DATA / name).read_text())


def _fields(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    return set(model.model_fields), required


@pytest.mark.parametrize(
    ("model", "path"),
    [
        (contract.Order, []),
        (contract.OrderLine, ["properties", "lines", "items"]),
        (contract.Destination, ["properties", "destination"]),
        (contract.Envelope, []),
    ],
)
def test_models_name_the_schema_fields(model: type[BaseModel], path: list[str]) -> None:
    node = schema("event" if model is contract.Envelope else "order")
    for key in path:
        node = node[key]
    fields, required = _fields(model)
    assert fields == set(node["properties"])
    assert required == set(node.get("required", []))


def test_masterdata_models_name_the_schema_fields() -> None:
    catalog, stock = schema("masterdata")["oneOf"]
    material = catalog["properties"]["materials"]["items"]
    operation = catalog["properties"]["routings"]["items"]["properties"]["operations"]["items"]
    pairs: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (contract.Catalog, catalog),
        (contract.Material, material),
        (contract.Container, material["properties"]["container"]),
        (contract.Routing, catalog["properties"]["routings"]["items"]),
        (contract.Operation, operation),
        (contract.Media, operation["properties"]["media"]["items"]),
        (contract.Sku, catalog["properties"]["skus"]["items"]),
        (contract.BomLine, catalog["properties"]["skus"]["items"]["properties"]["bom"]["items"]),
        (contract.Stock, stock),
        (contract.StockItem, stock["properties"]["items"]["items"]),
    ]
    for model, node in pairs:
        fields, required = _fields(model)
        assert fields == set(node["properties"]), model
        assert required == set(node.get("required", [])), model


GOOD: dict[str, Any] = {
    "order_id": "SO-1",
    "revision": 2,
    "ship_by": "2026-11-25T17:00:00+08:00",
    "priority": 9,
    "lines": [
        {
            "line_no": 1,
            "sku": "TEE-WHT-M",
            "qty": 2,
            "personalization": {"text": "生日快乐", "size": 3, "gift": True},
        }
    ],
    "destination": {"name": "王芳", "country": "CN"},
    "extra_field": "kept",
}

MUTATIONS: list[tuple[str, Any]] = [
    ("order_id", "has space"),
    ("order_id", ""),
    ("order_id", "x" * 65),
    ("revision", 0),
    ("revision", "2"),
    ("priority", 10),
    ("priority", -1),
    ("ship_by", 5),
    ("lines", []),
    ("lines", [{"sku": "A"}]),
    ("lines", [{"sku": "A", "qty": 0}]),
    ("lines", [{"sku": "A", "qty": 1001}]),
    ("lines", [{"sku": "A B", "qty": 1}]),
    ("lines", [{"sku": "A", "qty": 1.5}]),
    ("lines", [{"sku": "A", "qty": 1, "line_no": 0}]),
    ("lines", [{"sku": "A", "qty": 1, "personalization": {"k": None}}]),
    ("lines", [{"sku": "A", "qty": 1, "personalization": {"k": [1]}}]),
    ("lines", [{"sku": "A", "qty": 1, "personalization": {f"k{i}": 1 for i in range(33)}}]),
    ("carrier", "x" * 33),
    ("channel", 7),
    ("destination", {"country": "CHN"}),
    ("lines", [{"sku": "A", "qty": 1}] * 201),
]


@pytest.mark.parametrize(("field", "value"), MUTATIONS)
def test_the_model_and_the_schema_refuse_the_same_orders(field: str, value: Any) -> None:
    order_schema = schema("order")
    doc = {**GOOD, field: value}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, order_schema)
    with pytest.raises(ValidationError):
        contract.Order.model_validate(doc)


def test_the_model_and_the_schema_accept_a_full_order() -> None:
    jsonschema.validate(GOOD, schema("order"))
    order = contract.Order.model_validate(GOOD)
    assert order.model_extra == {"extra_field": "kept"}


def test_the_reference_master_data_is_valid_for_both() -> None:
    for name in ("catalog", "stock"):
        doc = json.loads((DATA / f"reference-{name}.json").read_text())
        jsonschema.validate(doc, schema("masterdata"))
        model = contract.Catalog if name == "catalog" else contract.Stock
        model.model_validate(doc)
