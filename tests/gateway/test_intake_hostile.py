"""What an outside tester sent the hub topics (issue 11), each refused alone with its field.

The rules come from the contract ("Inbound: orders": a bad order in an array does not take
the others with it; the raw payload is kept; the same ``(order_id, revision)`` keeps the
first) and from I-JSON (RFC 7493): UTF-8 text without lone surrogates, numbers a double can
hold. NaN and Infinity are no JSON numbers at all (RFC 8259, 6).
"""

from __future__ import annotations

import json
from typing import Any

from tests.gateway.conftest import Line, catalog_bytes, order, stock_doc

PEN = ("PEN-ENG", 1)


def rejections(line: Line) -> list[dict[str, Any]]:
    return line.events("order.rejected")


def raw_of(line: Line, event: dict[str, Any]) -> bytes:
    rid = int(event["data"]["raw_ref"].split("/")[1])
    found = line.gateway.store.one("SELECT raw FROM rejections WHERE id = ?", (rid,))
    assert found is not None
    return bytes(found[0])


def personalised(order_id: str, **values: Any) -> dict[str, Any]:
    doc = order(order_id, PEN)
    doc["lines"][0]["personalization"] = values
    return doc


def active_alarms(line: Line) -> dict[str, str]:
    rows = line.gateway.store.all(
        "SELECT alarm_id, message FROM alarms WHERE cleared_at IS NULL", ()
    )
    return {str(r[0]): str(r[1]) for r in rows}


def test_a_lone_surrogate_costs_only_its_own_order_in_an_array(line: Line) -> None:
    bad = order("SO-SURR", PEN, destination={"name": "\ud800x"})
    good = order("SO-AFTER-SURR", PEN)
    line.send("in/orders", json.dumps([bad, good]).encode())  # "\ud800" as its JSON escape
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-AFTER-SURR"]
    [rejected] = rejections(line)
    assert rejected["order_id"] == "SO-SURR"
    assert [(e["code"], e["field"]) for e in rejected["data"]["errors"]] == [
        ("SCHEMA", "destination.name")
    ]
    # The raw form kept is that order, surrogate and all.
    assert json.loads(raw_of(line, rejected)) == bad


def test_half_an_emoji_is_refused_with_the_orders_id_and_field(line: Line) -> None:
    payload = json.dumps(personalised("SO-EMOJI", text="Love \ud83d")).encode()
    line.send("in/orders", payload)
    [rejected] = rejections(line)
    assert rejected["order_id"] == "SO-EMOJI"
    [error] = rejected["data"]["errors"]
    assert (error["code"], error["field"]) == ("SCHEMA", "lines.0.personalization.text")
    assert "U+D83D" in error["message"]
    assert raw_of(line, rejected) == payload
    assert line.events("order.accepted") == []


def test_a_whole_emoji_is_text(line: Line) -> None:
    line.send("in/orders", json.dumps(personalised("SO-HEART", text="Love \U0001f496")).encode())
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-HEART"]


def test_raw_bytes_that_are_no_utf8_are_not_json(line: Line) -> None:
    # A surrogate written as UTF-8 bytes: json.loads(bytes) lets it through ("surrogatepass").
    payload = json.dumps(order("SO-RAW", PEN)).encode().replace(b"SO-RAW", b"SO-\xed\xa0\x80")
    line.send("in/orders", payload)
    [rejected] = rejections(line)
    assert [e["code"] for e in rejected["data"]["errors"]] == ["INVALID_JSON"]
    assert raw_of(line, rejected) == payload


def test_nan_and_infinity_are_refused_field_by_field(line: Line) -> None:
    text = json.dumps([personalised("SO-NAN", text=float("nan"), artwork=float("inf")),
                       order("SO-FINE", PEN)])  # fmt: skip
    assert "NaN" in text and "Infinity" in text
    line.send("in/orders", text.encode())
    [rejected] = rejections(line)
    assert rejected["order_id"] == "SO-NAN"
    assert sorted((e["code"], e["field"]) for e in rejected["data"]["errors"]) == [
        ("INVALID_JSON", "lines.0.personalization.artwork"),
        ("INVALID_JSON", "lines.0.personalization.text"),
    ]
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-FINE"]


def test_a_number_no_double_holds_is_refused(line: Line) -> None:
    payload = json.dumps(order("SO-BIG", PEN)).replace('"qty": 1', '"qty": 1e400').encode()
    huge = json.dumps({**order("SO-HUGE", PEN), "revision": 2**53}).encode()
    line.send("in/orders", payload)
    line.send("in/orders", huge)
    got = [(e["order_id"], [(x["code"], x["field"]) for x in e["data"]["errors"]])
           for e in rejections(line)]  # fmt: skip
    assert got == [
        ("SO-BIG", [("INVALID_JSON", "lines.0.qty")]),
        ("SO-HUGE", [("INVALID_JSON", "revision")]),
    ]
    # 2**53 - 1 is the largest integer I-JSON allows: schema rules apply to it as usual.
    line.send("in/orders", json.dumps({**order("SO-MAX", PEN), "revision": 2**53 - 1}).encode())
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-MAX"]


def test_control_characters_are_no_text_but_tab_and_newline_are(line: Line) -> None:
    line.send("in/orders", personalised("SO-NUL", text="Happy\u0000Birthday"))
    line.send("in/orders", personalised("SO-BELL", text="\u0007"))
    line.send("in/orders", personalised("SO-LINES", text="Happy\nBirthday\tAnna"))
    assert [(e["order_id"], e["data"]["errors"][0]["field"]) for e in rejections(line)] == [
        ("SO-NUL", "lines.0.personalization.text"),
        ("SO-BELL", "lines.0.personalization.text"),
    ]
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-LINES"]
    # And no event the hub got carries U+0000 (PostgreSQL's jsonb refuses it).
    assert all("\\u0000" not in json.dumps(e) for e in line.events())


def test_a_personalisation_value_longer_than_the_line_takes_is_refused(line: Line) -> None:
    limit = line.gateway.config.policies.max_personalization_chars
    assert limit == 2048  # the documented default (station_configs/README.md)
    line.send("in/orders", personalised("SO-LONG", text="x" * (limit + 1), colour="red"))
    line.send("in/orders", personalised("SO-FITS", text="字" * limit))
    [rejected] = rejections(line)
    assert rejected["order_id"] == "SO-LONG"
    assert [(e["code"], e["field"]) for e in rejected["data"]["errors"]] == [
        ("TOO_LONG", "lines.0.personalization.text")
    ]
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-FITS"]


def test_the_same_revision_with_other_contents_is_a_conflict(line: Line) -> None:
    first = order("SO-C", PEN)
    line.send("in/orders", first)
    # The same order written another way is a redelivery: nothing.
    same = {"lines": first["lines"], "ship_by": "2030-01-01T02:00:00Z", "order_id": "SO-C",
            "channel": None}  # fmt: skip
    line.send("in/orders", same)
    assert rejections(line) == [] and "conflict:SO-C" not in active_alarms(line)
    line.send("in/orders", order("SO-C", ("TEE-WHT-M", 2)))
    [rejected] = rejections(line)
    assert rejected["order_id"] == "SO-C"
    assert [e["code"] for e in rejected["data"]["errors"]] == ["CONFLICT"]
    assert "SO-C" in active_alarms(line)["conflict:SO-C"]
    # The first stays.
    units = line.gateway.store.one("SELECT units FROM orders WHERE order_id = 'SO-C'", ())
    assert units is not None and units[0] == 1
    # A higher revision is the way to change it; that settles the conflict.
    line.send("in/orders", {**order("SO-C", ("TEE-WHT-M", 2)), "revision": 2})
    assert [e["data"]["revision"] for e in line.events("order.accepted")] == [1, 2]
    assert "conflict:SO-C" not in active_alarms(line)


def test_a_catalog_resent_under_its_version_with_other_contents_is_a_conflict(
    line: Line,
) -> None:
    doc: dict[str, Any] = json.loads(catalog_bytes())
    version = doc["version"]
    in_force = line.gateway.core.catalog.skus.keys()
    changed = {**doc, "skus": [s for s in doc["skus"] if s["sku"] != "PEN-ENG"]}
    line.send("in/masterdata/catalog", changed)
    assert "masterdata:catalog-conflict" in active_alarms(line)
    assert version in active_alarms(line)["masterdata:catalog-conflict"]
    assert "PEN-ENG" in in_force and line.gateway.core.catalog.version == version
    line.send("in/orders", order("SO-PEN", PEN))  # the first catalog is in force
    assert [e["order_id"] for e in line.events("order.accepted")] == ["SO-PEN"]
    # The same catalog again (a retained message on reconnect): nothing but agreement.
    line.send("in/masterdata/catalog", catalog_bytes())
    assert "masterdata:catalog-conflict" not in active_alarms(line)
    assert line.events("order.rejected") == []  # a catalog is answered by alarms only


def test_infinite_stock_is_refused_and_the_snapshot_before_stays(line: Line) -> None:
    before = line.gateway.store.all("SELECT material, lot, qty FROM stock ORDER BY 1, 2", ())
    text = json.dumps(stock_doc())
    bad = text.replace('"qty": ', '"qty": 1e400, "was": ', 1)
    line.send("in/masterdata/stock", bad.encode())
    assert "items.0.qty" in active_alarms(line)["masterdata:stock"]
    after = line.gateway.store.all("SELECT material, lot, qty FROM stock ORDER BY 1, 2", ())
    assert after == before


def test_a_cancel_with_control_characters_in_its_reason_still_cancels(line: Line) -> None:
    line.send("in/orders", order("SO-X", PEN))
    line.send("in/cancel", {"order_id": "SO-X", "reason": "customer\u0000 asked \ud800"})
    [cancelled] = line.events("order.cancelled")
    assert cancelled["data"]["reason"] == "customer asked \ufffd"
