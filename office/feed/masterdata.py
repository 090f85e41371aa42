"""Each line's master data (catalog, stock): kept as the line's current document of its
kind (``masterdata``: what the HTTP lines pull and routing reads) and queued on the feed's
outbox, published **retained**, QoS 1, on ``linegate/v1/{site}/{line}/in/masterdata/{kind}``
so a line that connects later still gets the latest.

Idempotent by digest: the same document again (in canonical JSON) changes nothing and
publishes nothing. Checked against cloud_sync's wire models (masterdata.schema.json).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.contract import IN_CATALOG, IN_STOCK, Catalog, Stock, topic_prefix
from office.feed.lock import lock_feed
from office.store import schema

__all__ = ["MasterdataInvalid", "check_masterdata", "publish_masterdata"]

_SUFFIX = {"catalog": IN_CATALOG, "stock": IN_STOCK}


class MasterdataInvalid(ValueError):
    """The document is no catalog or stock document; ``reasons`` says where."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def check_masterdata(doc: object, kind: str | None = None) -> str:
    """The document's kind, once it reads as one (and as ``kind`` when given); raises
    MasterdataInvalid with its reasons."""
    if not isinstance(doc, dict):
        raise MasterdataInvalid(["(document): must be a JSON object"])
    found = doc.get("kind")
    if kind is not None and found != kind:
        raise MasterdataInvalid([f"kind: must be {kind!r} here, not {found!r}"])
    models: dict[str, type[BaseModel]] = {"catalog": Catalog, "stock": Stock}
    model = models.get(found) if isinstance(found, str) else None
    if model is None:
        raise MasterdataInvalid(["kind: must be 'catalog' or 'stock'"])
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        raise MasterdataInvalid(
            [
                f"{'.'.join(str(p) for p in err['loc']) or '(document)'}: {err['msg']}"
                for err in exc.errors()
            ]
        ) from None
    return str(found)


def _canonical(doc: object) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(doc: object) -> str:
    return hashlib.sha256(_canonical(doc).encode()).hexdigest()


async def publish_masterdata(
    conn: AsyncConnection,
    gateway_id: str,
    doc: dict[str, Any],
    now: datetime,
    *,
    queue: bool = True,
) -> bool:
    """In the caller's transaction: ``doc`` becomes the line's current document of its
    ``doc["kind"]`` and is queued to be published retained (``queue``: False for an office
    without a broker, whose lines pull over HTTP). True when it changed; False for the
    same document again (nothing queued). Raises MasterdataInvalid (nothing written) for
    a document that is no catalog or stock, ValueError for a bad gateway id."""
    kind = check_masterdata(doc)
    site, _, line = gateway_id.partition("/")
    topic = topic_prefix(site, line) + _SUFFIX[kind]
    await lock_feed(conn)  # two office instances: one writer of a line's document at a time
    m = schema.masterdata
    stored = await conn.scalar(
        select(m.c.doc).where(m.c.gateway_id == gateway_id, m.c.kind == kind)
    )
    if stored is not None:
        try:
            if _digest(json.loads(stored)) == _digest(doc):
                return False
        except ValueError:
            pass  # what is stored does not read: replaced
        await conn.execute(
            update(m)
            .where(m.c.gateway_id == gateway_id, m.c.kind == kind)
            .values(doc=json.dumps(doc))
        )
    else:
        await conn.execute(insert(m).values(gateway_id=gateway_id, kind=kind, doc=json.dumps(doc)))
    if not queue:
        return True
    await conn.execute(
        insert(schema.feed_outbox).values(
            gateway_id=gateway_id,
            topic=topic,
            payload=json.dumps(doc, ensure_ascii=False),
            created_at=now.isoformat(timespec="microseconds"),
            retain=True,
        )
    )
    return True
