"""A careful operator for every station, driven by what each station's screen says.

Each step reads the station view and does the one thing it asks for, so the driver picks
up where it left off after a gateway restart. It records every action the gateway
acknowledged (HTTP 200) so a test can check that none of them was lost. Its client must
authenticate like the stations' terminals (``GatewayProcess.async_client``): each station's
actions go through that station's paired terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

BADGES = {
    "dtg-1": "OP-1001",
    "dtg-2": "OP-1002",
    "emb-1": "OP-1003",
    "laser-1": "OP-1006",
    "qc-1": "OP-1005",
    "kit-1": "OP-1004",
    "kit-2": "OP-1007",
    "pack-1": "OP-1008",
    "pack-2": "OP-1009",
}


@dataclass
class Driver:
    base: str
    acknowledged: list[tuple[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)

    async def post(
        self, c: httpx.AsyncClient, station: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        r = await c.post(f"{self.base}/api/stations/{station}/{action}", json=body)
        doc: dict[str, Any] = r.json()
        if r.status_code == 409:
            self.refusals.append({"station": station, "action": action, **doc})
            return doc
        r.raise_for_status()
        return doc

    async def step(self, c: httpx.AsyncClient, station: str) -> bool:
        """Do one action at ``station``; False when it has nothing to do."""
        r = await c.get(f"{self.base}/api/stations/{station}")
        r.raise_for_status()
        view = r.json()
        if view["operator"] is None:
            await self.post(c, station, "login", {"badge": BADGES[station]})
            return True
        task = view["task"]
        if task is None:
            doc = await self.post(c, station, "next")
            return "task_id" in doc
        if task["status"] == "paused":
            await self.post(c, station, "resume")
            return True
        if task["serial"] is None:
            return await self._pack_step(c, station, task)
        if task["status"] == "dispatched":
            if not task["confirmed"]:
                await self.post(c, station, "scan", {"code": task["serial"]})
            elif todo := [m for m in task["materials"] if m["scanned"] is None]:
                m = todo[0]
                await self.post(c, station, "scan", {"code": m["suggested_lot"] or m["material"]})
            else:
                await self.post(c, station, "start")
            return True
        if open_items := [i for i, it in enumerate(task["checklist"]) if it["passed"] is None]:
            await self.post(c, station, "checklist", {"item": open_items[0], "passed": True})
            return True
        doc = await self.post(c, station, "complete")
        if doc.get("ok"):
            self.acknowledged.append(("task.completed", task["task_id"]))
        return True

    async def _pack_step(self, c: httpx.AsyncClient, station: str, task: dict[str, Any]) -> bool:
        if todo := [u for u in task["units"] if not u["scanned"]]:
            await self.post(c, station, "scan", {"code": todo[0]["serial"]})
        elif mats := [m for m in task["materials"] if m["scanned"] is None]:
            await self.post(
                c, station, "scan", {"code": mats[0]["suggested_lot"] or mats[0]["material"]}
            )
        elif task["label_id"] is None:
            await self.post(c, station, "weight", {"grams": task["expected_weight_g"] + 1})
        else:
            doc = await self.post(c, station, "scan", {"code": task["label_id"]})
            if doc.get("ok"):
                self.acknowledged.append(("order.completed", task["order_id"]))
        return True

    async def run_until_idle(self, c: httpx.AsyncClient, rounds: int = 10_000) -> None:
        """Work every station until a whole round finds nothing to do."""
        for _ in range(rounds):
            busy = False
            for station in BADGES:
                busy = await self.step(c, station) or busy
            if not busy:
                return
        raise AssertionError("the line did not become idle")
