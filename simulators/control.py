"""The control API of ``linegate simulate``: act on the simulated floor over HTTP.

People use it to play a station by hand (``curl -X POST .../stations/pack-1/scan``), the
integration tests to pull plugs, and :class:`ControlClient` gives the demo's operators the
same hands across a process boundary.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from simulators.line import SimulatedLine, UnknownDevice

__all__ = ["ControlClient", "create_control_app"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScanBody(_Body):
    code: str = Field(min_length=1, max_length=512)
    symbology: str | None = Field(default=None, pattern=r"^\][A-Za-z][0-9A-Za-z]$")


class PlaceBody(_Body):
    grams: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)


class FaultsBody(_Body):
    drop: float | None = Field(default=None, ge=0, le=1)
    delay_s: float | None = Field(default=None, ge=0, le=60)
    garble: float | None = Field(default=None, ge=0, le=1)


class ConditionBody(_Body):
    condition: str
    on: bool = True
    reason: str = ""


def create_control_app(line: SimulatedLine) -> FastAPI:
    app = FastAPI(title="linegate simulated devices", docs_url="/docs")

    def device(station: str, name: str) -> str:
        full = f"{station}/{name}"
        if full not in line.devices:
            raise HTTPException(404, f"no simulated device {full}")
        return full

    @app.get("/devices")
    async def devices() -> list[dict[str, Any]]:
        return line.status()

    @app.post("/devices/{station}/{name}/stop")
    async def stop(station: str, name: str) -> dict[str, Any]:
        await line.device(device(station, name)).stop()
        return {"ok": True}

    @app.post("/devices/{station}/{name}/start")
    async def start(station: str, name: str) -> dict[str, Any]:
        await line.device(device(station, name)).start()
        return {"ok": True}

    @app.post("/devices/{station}/{name}/disconnect")
    async def disconnect(station: str, name: str) -> dict[str, Any]:
        await line.device(device(station, name)).disconnect()
        return {"ok": True}

    @app.post("/devices/{station}/{name}/faults")
    async def faults(station: str, name: str, body: FaultsBody) -> dict[str, Any]:
        dev = line.device(device(station, name))
        dev.faults.set(**{k: v for k, v in body.model_dump().items() if v is not None})
        return dev.faults.as_dict()

    @app.post("/devices/{station}/{name}/condition")
    async def condition(station: str, name: str, body: ConditionBody) -> dict[str, Any]:
        try:
            await line.condition(device(station, name), body.condition, body.on, body.reason)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"ok": True}

    @app.get("/devices/{station}/{name}/labels")
    async def labels(station: str, name: str) -> list[dict[str, Any]]:
        printer = line.printers.get(station)
        if printer is None or printer.name != device(station, name):
            raise HTTPException(404, f"{station}/{name} is not a simulated printer")
        return [label.as_dict() for label in printer.labels]

    @app.post("/stations/{station}/scan")
    async def scan(station: str, body: ScanBody) -> dict[str, Any]:
        try:
            delivered = await line.scan(station, body.code, body.symbology)
        except UnknownDevice as exc:
            raise HTTPException(404, str(exc)) from None
        return {"ok": True, "delivered": delivered}

    @app.post("/stations/{station}/scale")
    async def place(station: str, body: PlaceBody) -> dict[str, Any]:
        try:
            await line.place(station, body.grams)
        except UnknownDevice as exc:
            raise HTTPException(404, str(exc)) from None
        return {"ok": True}

    @app.delete("/stations/{station}/scale")
    async def lift(station: str) -> dict[str, Any]:
        try:
            await line.lift(station)
        except UnknownDevice as exc:
            raise HTTPException(404, str(exc)) from None
        return {"ok": True}

    return app


class ControlClient:
    """An operator's hands on a simulated floor in another process (see operators.Hands)."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=10.0)
        self._roles: dict[str, set[str]] = {}

    async def load(self) -> None:
        """Learn which stations have which devices."""
        r = await self._http.get("/devices")
        r.raise_for_status()
        for dev in r.json():
            station = dev["device"].split("/", 1)[0]
            self._roles.setdefault(station, set()).add(dev["kind"])

    async def aclose(self) -> None:
        await self._http.aclose()

    def has_scanner(self, station: str) -> bool:
        return bool(self._roles.get(station, set()) & {"barcode_serial", "barcode_hid"})

    def has_scale(self, station: str) -> bool:
        return "modbus_scale" in self._roles.get(station, set())

    def has_machine(self, station: str) -> bool:
        return "opcua_machine" in self._roles.get(station, set())

    async def scan(self, station: str, code: str) -> bool:
        r = await self._http.post(f"/stations/{station}/scan", json={"code": code})
        r.raise_for_status()
        return bool(r.json().get("delivered", True))

    async def place(self, station: str, grams: float) -> None:
        r = await self._http.post(f"/stations/{station}/scale", json={"grams": grams})
        r.raise_for_status()

    async def lift(self, station: str) -> None:
        (await self._http.delete(f"/stations/{station}/scale")).raise_for_status()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = await self._http.post(path, json=body)
        r.raise_for_status()
        return r.json()

    async def get(self, path: str) -> Any:
        r = await self._http.get(path)
        r.raise_for_status()
        return r.json()
