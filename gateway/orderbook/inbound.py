"""What the hub sends: master data and orders, validated, applied, or rejected with reasons.

Implements :class:`cloud_sync.ports.InboundSink`. A batch of messages is applied in one
transaction (one fsync for a burst); should one trip a bug, the batch is applied again with
each message in its own savepoint, so one bad message is rejected with its codes while the
good ones around it go on. The link acknowledges the batch to the broker only after the
commit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cloud_sync import contract, wire_json
from cloud_sync.ports import InboundMessage
from gateway.clock import iso
from gateway.i18n import t
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.catalog import catalog_problems
from gateway.orderbook.context import LineContext
from gateway.orderbook.station_state import IDLE, follow_tasks
from gateway.orderbook.workorders import (
    drop_work,
    explode,
    order_shortages,
    rekit_waiting,
    report_shortage,
)
from gateway.store.documents import RejectionError
from gateway.store.rows import (
    UNSTARTED_TASKS,
    OrderRow,
    OrderStatus,
    ReservationRow,
    Severity,
    TaskRow,
    TaskStatus,
    UnitStatus,
    WorkOrderStatus,
)

logger = logging.getLogger(__name__)

Error = RejectionError
_M = TypeVar("_M", bound=BaseModel)


def _err(code: str, field: str, message: str) -> Error:
    return RejectionError(code=code, field=field, message=message)


def validation_errors(exc: ValidationError) -> list[Error]:
    """pydantic errors as the contract's ``{code, field, message}``."""
    out: list[Error] = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        qty_range = e["loc"][-1:] == ("qty",) and e["type"] in (
            "greater_than_equal",
            "less_than_equal",
        )
        out.append(_err("QTY_OUT_OF_RANGE" if qty_range else "SCHEMA", loc, e["msg"]))
    return out


def check_order(
    core: LineContext, item: Any, suspect: bool = True
) -> tuple[contract.Order | None, list[Error]]:
    """The order document ``item`` by the rules intake takes an order by, before it looks
    at the orders the line holds: what the wire carries (looked for when ``suspect``, as
    wire_json.parse says), the schema, the customer's text, the catalog and the line's
    stations. The order (None when it is not one) and its errors, none when it would be
    taken. For orders the line is only asked about (a forecast: gateway/planning/capacity)."""
    unfit = wire_json.problems(item) if suspect else []
    if unfit:
        return None, [_err(p.code, p.field, p.message) for p in unfit]
    try:
        order = contract.Order.model_validate(item)
    except ValidationError as exc:
        return None, validation_errors(exc)
    inbound = Inbound(core)
    return order, inbound._text_errors(order) + inbound._catalog_errors(order)


class Inbound:
    """The gateway's inbound sink."""

    def __init__(self, core: LineContext, admit: Callable[[], None] | None = None) -> None:
        self._core = core
        # Called before each batch; raises (a store error) to leave it in the broker,
        # e.g. while the disk is below its free-space floor (gateway/app/storage.py).
        self._admit = admit
        self.accepted = 0
        self.rejected = 0

    def deliver(self, messages: Sequence[InboundMessage]) -> None:
        """Apply a batch in one transaction (one fsync for a burst). Should a message trip
        a bug, the batch is rolled back (the store takes back its events, rows and ledger
        changes) and applied again, each message in a savepoint of its own, so that one bad
        message is rejected as ``INTERNAL`` while the good ones around it go on. (A
        savepoint for every message of a burst would cost intake a fifth of its speed.)"""
        if self._admit is not None:
            self._admit()
        counts = (self.accepted, self.rejected)
        try:
            with self._core.store.transaction():
                for message in messages:
                    self._handle(message)
            return
        except sqlite3.OperationalError:
            raise  # the store itself failed (disk, I/O): nothing is acked, the broker redelivers
        except Exception:  # noqa: BLE001 - any bug: message by message, below
            self.accepted, self.rejected = counts
            logger.warning("a batch of %d messages failed; applying them one by one", len(messages))
        self._deliver_isolated(messages)

    def _deliver_isolated(self, messages: Sequence[InboundMessage]) -> None:
        store = self._core.store
        with store.transaction():
            for message in messages:
                counts = (self.accepted, self.rejected)
                try:
                    with store.savepoint():
                        self._handle(message)
                except sqlite3.OperationalError:
                    raise
                except Exception:  # a bug must not block the messages around it
                    logger.exception("message on %s could not be applied", message.topic)
                    self.accepted, self.rejected = counts
                    self._reject(
                        message,
                        None,
                        [_err("INTERNAL", "", "the gateway failed to apply this message")],
                    )

    def _handle(self, message: InboundMessage) -> None:
        topic = message.topic
        if topic != contract.IN_ORDERS:
            # Cancels, stock and catalogs read and change the work of orders this batch
            # may have just accepted: their rows must be in the tables, not in the buffer.
            self._core.store.flush()
        if topic == contract.IN_ORDERS:
            self._orders(message)
        elif topic == contract.IN_CANCEL:
            self._cancel(message)
        elif topic == contract.IN_CATALOG:
            self._catalog(message)
        elif topic == contract.IN_STOCK:
            self._stock(message)
        else:
            logger.warning("message on unexpected topic %s ignored", topic)

    # -- rejection ----------------------------------------------------------------

    def _reject(
        self,
        message: InboundMessage,
        order_id: str | None,
        errors: list[Error],
        raw: bytes | None = None,
        emit: bool = True,
    ) -> None:
        core = self._core
        rid = core.store.insert(
            "INSERT INTO rejections (ts, topic, order_id, errors, raw) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id",
            (
                core.now_iso(),
                message.topic,
                order_id,
                json.dumps([e.model_dump() for e in errors]),
                raw if raw is not None else message.payload,
            ),
        )
        if emit:
            self.rejected += 1
            core.emit(
                "order.rejected",
                {"errors": [e.model_dump() for e in errors], "raw_ref": f"rejections/{rid}"},
                order_id,
            )
        logger.info(
            "rejected %s on %s: %s",
            order_id or "message",
            message.topic,
            "; ".join(e.code for e in errors),
        )

    # -- orders ---------------------------------------------------------------------

    def _orders(self, message: InboundMessage) -> None:
        parsed = self._parse(message)
        if parsed is None:
            return
        doc, check = parsed
        items = doc if isinstance(doc, list) else [doc]
        if not items:
            self._reject(message, None, [_err("SCHEMA", "", "an empty array holds no order")])
            return
        # NaN, a lone surrogate, U+0000 … cost only the order that carries them; only a
        # message that may hold one (``check``) is looked through.
        for item in items:
            # The raw form of one order of an array is only made if it is rejected.
            self._order(message, item, message.payload if len(items) == 1 else None, check)

    def _parse(self, message: InboundMessage) -> wire_json.Parsed | None:
        """The message's JSON, or None once it has been rejected as no JSON."""
        try:
            return wire_json.parse(message.payload)
        except ValueError as exc:  # UnicodeDecodeError too
            why = f"not valid JSON: {exc}"
        except RecursionError:
            # A hostile or broken hub: [[[[...]]]] deeper than the parser goes.
            why = "JSON nested too deeply"
        if message.topic == contract.IN_ORDERS:
            self._reject(message, None, [_err("INVALID_JSON", "", why)])
        else:
            self._refuse_masterdata(message, [_err("INVALID_JSON", "", why)])
        return None

    def _order(
        self, message: InboundMessage, item: Any, payload: bytes | None, check: bool
    ) -> None:
        core = self._core
        unfit = wire_json.problems(item) if check else []

        def raw() -> bytes:
            return payload if payload is not None else wire_json.dumps_raw(item)

        order_id = item.get("order_id") if isinstance(item, dict) else None
        readable = (
            isinstance(order_id, str)
            and len(order_id) <= 64
            and not any(p.field == "order_id" for p in unfit)
        )
        order_id = order_id if readable else None
        if unfit:
            self._reject(
                message, order_id, [_err(p.code, p.field, p.message) for p in unfit], raw()
            )
            return
        try:
            order = contract.Order.model_validate(item)
        except ValidationError as exc:
            self._reject(message, order_id, validation_errors(exc), raw())
            return
        existing = core.store.fetch_one(
            OrderRow, "SELECT * FROM orders WHERE order_id = ?", (order.order_id,)
        )
        if existing is not None:
            self._core.store.flush()  # its work may still wait in the buffer
            if order.revision == existing.revision:
                self._again(message, order, existing, raw)
                return
            problem = self._revision_problem(order, existing)
            if problem:
                self._reject(message, order.order_id, [problem], raw())
                return
        errors = self._text_errors(order) + self._catalog_errors(order)
        if errors:
            self._reject(message, order.order_id, errors, raw())
            return
        if existing is not None:
            drop_work(core, order.order_id)
            clear_alarm(core, _conflict_alarm(order.order_id), f"revision {order.revision} taken")
        self._accept(order)

    def _again(
        self,
        message: InboundMessage,
        order: contract.Order,
        existing: OrderRow,
        raw: Callable[[], bytes],
    ) -> None:
        """The same ``(order_id, revision)`` again: a redelivery changes nothing. Another
        body under that pair is a conflict in the hub: the first stays (the contract), and
        the hub and the line lead are told, since one of the two bodies is not being made."""
        if order.model_dump_json(exclude_none=True) == existing.doc:
            logger.debug(
                "order %s revision %d again: nothing to do", order.order_id, order.revision
            )
            return
        first = contract.Order.model_validate_json(existing.doc)
        if order.model_dump(exclude_none=True) == first.model_dump(exclude_none=True):
            return  # the same order written another way (key order, a time zone, a null)
        why = (
            f"revision {order.revision} of {order.order_id} was already taken with other "
            "contents; the first stays. Send a changed order under a higher revision."
        )
        self._reject(message, order.order_id, [_err("CONFLICT", "revision", why)], raw())
        raise_alarm(
            self._core,
            _conflict_alarm(order.order_id),
            "hub_conflict",
            "hub",
            Severity.MAJOR,
            t(
                "order {order_id} revision {revision} was sent again with other contents; "
                "the line makes the first one. Check the order with the shop.",
                order_id=order.order_id,
                revision=order.revision,
            ),
        )

    def _text_errors(self, order: contract.Order) -> list[Error]:
        """Customer text longer than the line takes: every terminal loads it with the
        screen on each change, and a printer or laser has a line's worth of room."""
        limit = self._core.config.policies.max_personalization_chars
        return [
            _err(
                "TOO_LONG",
                f"lines.{i}.personalization.{key}",
                f"{len(value)} characters; this line takes at most {limit} per value",
            )
            for i, line in enumerate(order.lines)
            for key, value in line.personalization.items()
            if isinstance(value, str) and len(value) > limit
        ]

    def _revision_problem(self, order: contract.Order, existing: OrderRow) -> Error | None:
        if order.revision < existing.revision:
            return _err(
                "STALE_REVISION",
                "revision",
                f"revision {order.revision} is older than {existing.revision} already accepted",
            )
        if existing.status.closed:
            return _err("ORDER_CLOSED", "order_id", f"the order is already {existing.status}")
        store = self._core.store
        started = store.exists(
            "SELECT 1 FROM tasks WHERE order_id = ? AND status NOT IN (?, ?, ?) LIMIT 1",
            (order.order_id, *UNSTARTED_TASKS),
        ) or store.exists("SELECT 1 FROM attempts WHERE order_id = ? LIMIT 1", (order.order_id,))
        if started:
            return _err(
                "IN_PROGRESS",
                "revision",
                "work on this order has started; it can no longer be revised",
            )
        return None

    def _catalog_errors(self, order: contract.Order) -> list[Error]:
        core = self._core
        cat = core.catalog
        if cat.version is None:
            return [_err("NO_CATALOG", "", "no catalog has been received from the hub yet")]
        errors: list[Error] = []
        capabilities = {c for s in core.config.stations.values() for c in s.capabilities}
        for i, line in enumerate(order.lines):
            sku = cat.skus.get(line.sku)
            if sku is None:
                errors.append(
                    _err(
                        "UNKNOWN_SKU",
                        f"lines.{i}.sku",
                        f"SKU {line.sku} is not in catalog {cat.version}",
                    )
                )
                continue
            missing = [
                o.capability
                for o in cat.routings[sku.routing].operations
                if o.capability not in capabilities
            ]
            if missing:
                errors.append(
                    _err(
                        "NO_STATION",
                        f"lines.{i}.sku",
                        f"no station of this line can {', '.join(missing)}",
                    )
                )
        units = sum(line.qty for line in order.lines)
        limit = core.config.policies.max_units_per_order
        if units > limit:
            errors.append(
                _err(
                    "QTY_OUT_OF_RANGE",
                    "lines",
                    f"{units} units in one order; this line takes at most {limit}",
                )
            )
        return errors

    def _accept(self, order: contract.Order) -> None:
        core = self._core
        units = sum(line.qty for line in order.lines)
        ship_by = iso(order.ship_by)
        core.store.conn.execute(
            "INSERT INTO orders (order_id, revision, status, ship_by, priority, catalog_version, "
            "doc, accepted_at, units) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(order_id) DO UPDATE SET revision = excluded.revision, "
            "status = excluded.status, ship_by = excluded.ship_by, priority = excluded.priority, "
            "catalog_version = excluded.catalog_version, doc = excluded.doc, "
            "accepted_at = excluded.accepted_at, units = excluded.units",
            (
                order.order_id,
                order.revision,
                OrderStatus.RELEASED,
                ship_by,
                order.priority,
                core.catalog.version,
                order.model_dump_json(exclude_none=True),
                core.now_iso(),
                units,
            ),
        )
        core.emit(
            "order.accepted",
            {
                "revision": order.revision,
                "units": units,
                "ship_by": ship_by,
                "priority": order.priority,
            },
            order.order_id,
        )
        short = order_shortages(core, order)
        explode(core, order, kitted=not short)
        if short:
            report_shortage(core, order.order_id, short)
        self.accepted += 1

    # -- cancel -------------------------------------------------------------------------

    def _cancel(self, message: InboundMessage) -> None:
        core = self._core
        parsed = self._parse(message)
        if parsed is None:
            return
        doc, check = parsed
        if isinstance(doc, dict) and isinstance(doc.get("reason"), str):
            # A cancel is honoured whatever its reason holds: making an order the shop
            # cancelled does more harm than a reason kept without its control characters.
            doc["reason"] = wire_json.clean_text(doc["reason"])
        unfit = wire_json.problems(doc) if check else []
        if unfit:
            self._refuse_masterdata(message, [_err(p.code, p.field, p.message) for p in unfit])
            return
        try:
            cancel = contract.Cancel.model_validate(doc)
        except ValidationError as exc:
            self._refuse_masterdata(message, validation_errors(exc))
            return
        found = core.store.fetch_one(
            OrderRow, "SELECT * FROM orders WHERE order_id = ?", (cancel.order_id,)
        )
        if found is None or found.status.closed:
            why = "unknown order" if found is None else f"order already {found.status}"
            self._reject(
                message, cancel.order_id, [_err("NOT_CANCELLABLE", "order_id", why)], emit=False
            )
            return
        cancel_order(core, cancel.order_id, cancel.reason)

    # -- master data --------------------------------------------------------------------

    def _masterdata(self, message: InboundMessage, model: type[_M]) -> _M | None:
        """The message as ``model``, or None once it has been refused."""
        parsed = self._parse(message)
        if parsed is None:
            return None
        doc, check = parsed
        unfit = wire_json.problems(doc) if check else []
        if unfit:
            self._refuse_masterdata(message, [_err(p.code, p.field, p.message) for p in unfit])
            return None
        try:
            return model.model_validate(doc)
        except ValidationError as exc:
            self._refuse_masterdata(message, validation_errors(exc))
            return None

    def _refuse_masterdata(self, message: InboundMessage, errors: list[Error]) -> None:
        """Keep a refused cancel, catalog or stock message; raise the alarm of its kind
        (what is in force stays). No ``order.rejected``: that answers orders only."""
        self._reject(message, None, errors, emit=False)
        described = "; ".join(f"{e.field or 'message'}: {e.message}" for e in errors[:5])
        if message.topic == contract.IN_CATALOG:
            raise_alarm(
                self._core,
                "masterdata:catalog",
                "masterdata",
                "hub",
                Severity.CRITICAL,
                t(
                    "catalog refused, the previous one stays in force: {problems}",
                    problems=described,
                ),
            )
        elif message.topic == contract.IN_STOCK:
            raise_alarm(
                self._core,
                "masterdata:stock",
                "masterdata",
                "hub",
                Severity.WARNING,
                t("stock snapshot refused: {problems}", problems=described),
            )

    def _catalog(self, message: InboundMessage) -> None:
        core = self._core
        catalog = self._masterdata(message, contract.Catalog)
        if catalog is None:
            return
        problems = catalog_problems(catalog)
        if problems:
            self._refuse_masterdata(message, [_err("SCHEMA", "", p) for p in problems])
            return
        known = core.store.texts("SELECT doc FROM catalogs WHERE version = ?", (catalog.version,))
        if known and contract.Catalog.model_validate_json(known[0]) != catalog:
            # The contract keeps the first; a silent keep would show up later as orders
            # refused for an unknown SKU that the hub believes it sent.
            self._reject(
                message,
                None,
                [
                    _err(
                        "CONFLICT",
                        "version",
                        f"catalog {catalog.version} was already taken with other contents",
                    )
                ],
                emit=False,
            )
            raise_alarm(
                core,
                "masterdata:catalog-conflict",
                "masterdata",
                "hub",
                Severity.CRITICAL,
                t(
                    "catalog {version} was sent again with other contents; the line keeps "
                    "the first. The hub must send a changed catalog under a new version.",
                    version=catalog.version,
                ),
            )
            return
        clear_alarm(core, "masterdata:catalog-conflict", f"catalog {catalog.version} agreed")
        if catalog.version != core.catalog.version:
            core.store.conn.execute(
                "INSERT INTO catalogs (version, doc, received_at) VALUES (?, ?, ?) "
                "ON CONFLICT(version) DO UPDATE SET doc = excluded.doc",
                (catalog.version, message.payload.decode(), core.now_iso()),
            )
            core.store.set_setting("catalog_version", catalog.version)
            core.catalog.use(catalog)
            logger.info("catalog %s in force", catalog.version)
        clear_alarm(core, "masterdata:catalog", f"catalog {catalog.version} accepted")

    def _stock(self, message: InboundMessage) -> None:
        core = self._core
        stock = self._masterdata(message, contract.Stock)
        if stock is None:
            return
        conn = core.store.conn
        conn.execute("DELETE FROM stock")
        totals: dict[tuple[str, str], tuple[float, str | None]] = {}
        for item in stock.items:
            key = (item.material, item.lot or "")
            qty, _ = totals.get(key, (0.0, None))
            totals[key] = (
                qty + float(item.qty),
                item.expires.isoformat() if item.expires else None,
            )
        conn.executemany(
            "INSERT INTO stock (material, lot, qty, expires) VALUES (?, ?, ?, ?)",
            [(m, lot, q, e) for (m, lot), (q, e) in totals.items()],
        )
        core.store.set_setting("stock_as_of", iso(stock.as_of))
        core.reload_ledger()
        clear_alarm(core, "masterdata:stock", "stock snapshot accepted")
        rekit_waiting(core)


def _conflict_alarm(order_id: str) -> str:
    return f"conflict:{order_id}"


def cancel_order(core: LineContext, order_id: str, reason: str) -> None:
    """Cancel what has not started; a unit in work is left to its operator to finish or scrap."""
    store = core.store
    conn = store.conn
    conn.execute(
        "UPDATE orders SET status = ?, cancel_reason = ? WHERE order_id = ?",
        (OrderStatus.CANCELLED, reason, order_id),
    )
    conn.execute(
        "UPDATE work_orders SET status = ? WHERE order_id = ?",
        (WorkOrderStatus.CANCELLED, order_id),
    )
    conn.execute(
        "UPDATE tasks SET status = ?, station = NULL WHERE order_id = ? AND status IN (?, ?, ?)",
        (TaskStatus.CANCELLED, order_id, *UNSTARTED_TASKS),
    )
    # A parcel being packed is not shipped: its pack task ends too; the units stay put.
    running, paused = TaskStatus.RUNNING, TaskStatus.PAUSED
    for parcel in store.fetch_all(
        TaskRow,
        "SELECT * FROM tasks WHERE order_id = ? AND serial IS NULL AND status IN (?, ?)",
        (order_id, running, paused),
    ):
        follow_tasks(core, parcel.station, IDLE, "order cancelled")
    conn.execute(
        "UPDATE tasks SET status = ? WHERE order_id = ? AND serial IS NULL AND status IN (?, ?)",
        (TaskStatus.CANCELLED, order_id, running, paused),
    )
    conn.execute(
        "UPDATE sessions SET task_id = NULL WHERE task_id IN "
        "(SELECT task_id FROM tasks WHERE order_id = ? AND status = ?)",
        (order_id, TaskStatus.CANCELLED),
    )
    in_work = set(
        store.texts(
            "SELECT serial FROM tasks WHERE order_id = ? AND status IN (?, ?) "
            "AND serial IS NOT NULL",
            (order_id, running, paused),
        )
    )
    for r in store.fetch_all(
        ReservationRow, "SELECT * FROM reservations WHERE order_id = ?", (order_id,)
    ):
        if r.serial not in in_work:
            core.ledger.adjust(r.material, r.lot, r.qty)
    marks = ",".join("?" * len(in_work))
    conn.execute(
        f"DELETE FROM reservations WHERE order_id = ? AND serial NOT IN ({marks})",
        (order_id, *in_work),
    )
    conn.execute(
        f"UPDATE units SET status = ? WHERE order_id = ? AND status = ? "
        f"AND serial NOT IN ({marks})",
        (UnitStatus.CANCELLED, order_id, UnitStatus.OPEN, *in_work),
    )
    clear_alarm(core, _conflict_alarm(order_id), "order cancelled")
    core.emit("order.cancelled", {"reason": reason, "units_in_work": sorted(in_work)}, order_id)
