"""Events for the board's and reports' tests, shaped as a gateway sends them (contract 1.1)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cloud_sync.contract import Envelope

__all__ = ["Line", "kpi_line", "ratio"]

# The lines' calendar (their periods' keys and report ids are local dates).
_ZONE = ZoneInfo("Asia/Shanghai")


class Line:
    """One line's event stream: each call adds the next seq."""

    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.seq = 0
        self.sent: list[tuple[Envelope, str]] = []

    def event(
        self, type_: str, at: datetime, data: dict[str, Any], order_id: str | None = None
    ) -> tuple[Envelope, str]:
        self.seq += 1
        doc = {
            "v": 1,
            "gateway_id": self.gateway_id,
            "seq": self.seq,
            "event_id": f"{self.gateway_id}:{self.seq}",
            "ts": at.isoformat(),
            "type": type_,
            "order_id": order_id,
            "data": data,
        }
        pair = Envelope.model_validate(doc), json.dumps(doc)
        self.sent.append(pair)
        return pair

    def raised(self, at: datetime, alarm_id: str, severity: str, message: str = "m") -> None:
        self.event(
            "alarm.raised",
            at,
            {
                "alarm_id": alarm_id,
                "kind": "device",
                "source": "pack-1",
                "severity": severity,
                "message": message,
            },
        )

    def cleared(self, at: datetime, alarm_id: str) -> None:
        self.event("alarm.cleared", at, {"alarm_id": alarm_id, "message": "ok"})

    def accepted(self, at: datetime, order_id: str, ship_by: datetime) -> None:
        self.event(
            "order.accepted",
            at,
            {"revision": 1, "units": 1, "ship_by": ship_by.isoformat()},
            order_id,
        )

    def unit(self, at: datetime, order_id: str) -> None:
        self.event(
            "unit.completed", at, {"serial": f"{order_id}-1", "sku": "S", "line_no": 1}, order_id
        )

    def completed(self, at: datetime, order_id: str) -> None:
        self.event(
            "order.completed",
            at,
            {"units": [f"{order_id}-1"], "weight_g": 100, "label_id": "L"},
            order_id,
        )

    def costed(self, at: datetime, order_id: str, total: float, currency: str = "CNY") -> None:
        self.event(
            "order.costed",
            at,
            {"cost": {"total": total, "currency": currency}, "labour_s": 1},
            order_id,
        )

    def kpi(
        self, at: datetime, kind: str, start: datetime, end: datetime, line: dict[str, Any]
    ) -> None:
        self.event(
            "kpi.snapshot",
            at,
            {
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "line": line,
                "stations": {},
                "period": {
                    "kind": kind,
                    "key": f"{kind}:{start.astimezone(_ZONE).date()}",
                    "timezone": "Asia/Shanghai",
                },
            },
        )

    def report(
        self, at: datetime, kind: str, start: datetime, end: datetime, summary: dict[str, Any]
    ) -> None:
        rid = f"{kind}-{start.astimezone(_ZONE).date()}"
        self.event(
            "report.published",
            at,
            {
                "report_id": rid,
                "kind": kind,
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "timezone": "Asia/Shanghai",
                "label": str(start.astimezone(_ZONE).date()),
                "summary": summary,
                "url": f"/reports/{rid}",
                "sha256": "ab" * 32,
            },
        )


def ratio(n: float, d: float) -> dict[str, Any]:
    return {"numerator": n, "denominator": d, "ratio": round(n / d, 4) if d else None}


def kpi_line(
    *,
    orders: int,
    units: int,
    on_time: int,
    due: int,
    first_pass: int,
    scrapped: int,
    pbt: float,
    apt: float,
    pri_pq: float,
    pq: int,
    gq: int,
) -> dict[str, Any]:
    """A kpi.snapshot's ``line`` as gateway/numbers/kpis.py makes it (the parts summed)."""
    return {
        "orders_completed": orders,
        "units_completed": units,
        "units_scrapped": scrapped,
        "otd": ratio(on_time, due),
        "fpy": ratio(first_pass, units),
        "scrap_rate": ratio(pq - gq, pq),
        "availability": ratio(apt, pbt),
        "performance": ratio(pri_pq, apt),
        "quality": ratio(gq, pq),
        "oee": round(apt / pbt * pri_pq / apt * gq / pq, 4),
        "elements": {
            "pbt_s": pbt,
            "apt_s": apt,
            "pri_pq_s": pri_pq,
            "pq": pq,
            "gq": gq,
            "sq": pq - gq,
            "rq": 0,
            "adet_s": 0,
            "aust_s": 0,
            "adot_s": 0,
        },
    }
