"""One Modbus line (an RS-485 port, or a TCP connection) shared by the scales on it.

Modbus is master/slave: one request on the line at a time, and on RS-485 a silent gap
between frames. :class:`ModbusBus` owns the pymodbus client of one line, an
``asyncio.Lock`` around each exchange, and the gap. :class:`BusRegistry` hands the same
bus to every scale configured on the same serial port or TCP ``host:port``; the gateway
creates one registry and passes it to each scale driver.

Late replies. A reply that arrives after its request timed out must never be taken as
the answer to the next request (pymodbus#538, #1509, PR#2636). On Modbus TCP the reply
carries the request's transaction id and pymodbus 3.16 skips frames whose id does not
match, so the bus only counts them. RTU frames carry no id, so after a timeout the bus
keeps the line silent for a guard time (``late_reply_guard_s``, by default the
timeout) and discards whatever arrives meanwhile; pymodbus also empties its receive
buffer before each request. A reply later than timeout + guard cannot be told apart
on RTU: make the guard longer than the device's worst-case latency.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.base import DeviceRejected, DeviceUnavailable, ProtocolError, keep_cancellation
from drivers.modbus_scale.config import ModbusScaleConfig
from drivers.modbus_scale.registers import mbap_frames

__all__ = ["BusRegistry", "LineSettings", "ModbusBus", "ReplyTimeout"]

logger = logging.getLogger(__name__)

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient

# pymodbus runs its own timeout too; ours (asyncio.timeout per exchange) must always
# fire first, so the library's is only a backstop (DeviceConfigBase caps timeout_s at 60).
_LIBRARY_TIMEOUT_S = 120.0

# Last frames kept for diagnostics (as pymodbus keeps 20 for its bug reports).
_FRAMES_KEPT = 20


class ReplyTimeout(DeviceUnavailable):
    """The device did not answer a request within the timeout."""


@dataclass(frozen=True, slots=True)
class LineSettings:
    """What identifies a line and how it is driven; scales sharing a line must agree on
    the physical settings (gap and guard are merged: the longest wins)."""

    transport: Literal["tcp", "rtu"]
    endpoint: str  # host:port or the serial path
    host: str = ""
    port: int = 0
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8
    frame_gap_s: float = 0.0
    guard_s: float = 0.0

    @classmethod
    def of(cls, config: ModbusScaleConfig) -> LineSettings:
        if config.transport == "tcp":
            return cls(
                "tcp",
                config.endpoint,
                host=config.host or "",
                port=config.tcp_port,
                frame_gap_s=config.frame_gap_s,
                guard_s=config.guard_s,
            )
        return cls(
            "rtu",
            config.endpoint,
            baudrate=config.baudrate,
            parity=config.parity,
            stopbits=config.stopbits,
            bytesize=config.bytesize,
            frame_gap_s=config.frame_gap_s,
            guard_s=config.guard_s,
        )

    def physical(self) -> tuple[object, ...]:
        return (
            self.transport,
            self.endpoint,
            self.baudrate,
            self.parity,
            self.stopbits,
            self.bytesize,
        )


def _exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name.lower()
    except ValueError:
        return "unknown"


class ModbusBus:
    """One request at a time on one line, with the inter-frame gap and the late-reply
    guard; scales attach to it (the first one opens the line) and detach (the last one
    closes it)."""

    def __init__(self, settings: LineSettings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()
        self._client: ModbusClient | None = None
        self._users = 0
        # Monotonic time before which no request goes out (gap after a frame, guard
        # after a timeout).
        self._quiet_until = 0.0
        # Device id of the request on the line, None between exchanges.
        self._outstanding: int | None = None
        self._expected_tid = 0
        self._bytes_in_exchange = 0
        self._late: Counter[int] = Counter()
        self._frames: deque[tuple[str, str]] = deque(maxlen=_FRAMES_KEPT)
        self.exchanges = 0
        self.connects = 0

    @property
    def name(self) -> str:
        return f"{self.settings.transport}:{self.settings.endpoint}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def merge(self, settings: LineSettings) -> None:
        """Take another scale's settings for the same line (its gap or guard may be longer)."""
        if settings.physical() != self.settings.physical():
            raise ValueError(
                f"scales on {self.settings.endpoint} disagree on the line settings: "
                f"{self.settings.physical()} and {settings.physical()}"
            )
        self.settings = dataclasses.replace(
            self.settings,
            frame_gap_s=max(self.settings.frame_gap_s, settings.frame_gap_s),
            guard_s=max(self.settings.guard_s, settings.guard_s),
        )

    def late_replies(self, device_id: int) -> int:
        """Replies from this device that came after their request had timed out."""
        return self._late[device_id]

    async def attach(self, timeout_s: float) -> None:
        """Count a scale in, and open the line unless it is open and working."""
        async with self._lock:
            if not self.connected:
                await self._open(timeout_s)
            self._users += 1

    async def detach(self) -> None:
        """Count a scale out; the last one closes the line."""
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._close_client()

    async def _open(self, timeout_s: float) -> None:
        self._close_client()
        client = self._make_client()
        self._client = client
        try:
            async with keep_cancellation(), asyncio.timeout(timeout_s):
                ok = await client.connect()
        except TimeoutError:
            self._close_client()
            raise DeviceUnavailable(f"{self.name}: no connection within {timeout_s} s") from None
        if not ok:
            self._close_client()
            raise DeviceUnavailable(f"{self.name}: cannot connect")
        # pymodbus finishes setting up a serial transport in a call_soon callback, which
        # fails if the port is closed first: let it run.
        await asyncio.sleep(0)
        self.connects += 1
        self._quiet_until = 0.0
        logger.debug("%s: connected", self.name)

    def _make_client(self) -> ModbusClient:
        s = self.settings
        if s.transport == "tcp":
            return AsyncModbusTcpClient(
                s.host,
                port=s.port,
                timeout=_LIBRARY_TIMEOUT_S,
                retries=0,
                reconnect_delay=0,  # the supervisor owns reconnects
                trace_packet=self._on_packet,
                trace_pdu=self._on_pdu,
            )
        return AsyncModbusSerialClient(
            s.endpoint,
            baudrate=s.baudrate,
            parity=s.parity,
            stopbits=s.stopbits,
            bytesize=s.bytesize,
            timeout=_LIBRARY_TIMEOUT_S,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._on_packet,
            trace_pdu=self._on_pdu,
        )

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # pymodbus calls these two for every packet and PDU, sent and received.

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        self._frames.append(("sent" if sending else "received", data.hex(" ")))
        if sending:
            return data
        if self.settings.transport == "tcp":
            # pymodbus skips complete frames with another transaction id: count them.
            for tid, unit in mbap_frames(data):
                if tid == self._expected_tid:
                    break
                self._late[unit] += 1
        elif self._outstanding is not None:
            # RTU bytes that never make a valid frame (pymodbus drops a frame whose CRC
            # fails without a word) tell a garbled reply from no reply at all.
            self._bytes_in_exchange += len(data)
        return data

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending:
            self._expected_tid = pdu.transaction_id
        elif self._outstanding is None:
            # A whole reply while no request is out: the late answer to one that timed
            # out. pymodbus ignores it too (its future is done); count it.
            self._late[pdu.dev_id] += 1
        return pdu

    async def _exchange(
        self,
        device_id: int,
        what: str,
        timeout_s: float,
        call: Callable[[ModbusClient], Awaitable[ModbusPDU]],
    ) -> tuple[ModbusPDU, float]:
        """Send one request and wait for its reply; returns it and the time it was sent."""
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise DeviceUnavailable(f"{self.name}: not connected")
            wait = self._quiet_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._outstanding = device_id
            self._bytes_in_exchange = 0
            self.exchanges += 1
            sent_at = time.monotonic()
            try:
                # pymodbus waits for the reply with asyncio.wait_for (see keep_cancellation).
                async with keep_cancellation(), asyncio.timeout(timeout_s):
                    response = await call(client)
            except TimeoutError:
                self._quiet_until = time.monotonic() + self.settings.guard_s
                if not client.connected:
                    raise DeviceUnavailable(f"{self.name}: link lost during {what}") from None
                if self._bytes_in_exchange:
                    raise ProtocolError(
                        f"{self.name}: garbled reply from device {device_id} to {what} "
                        f"({self._bytes_in_exchange} bytes that make no valid frame)"
                    ) from None
                raise ReplyTimeout(
                    f"{self.name}: no reply from device {device_id} to {what} in {timeout_s} s"
                ) from None
            except asyncio.CancelledError:
                # The request may still be answered: treat the line as after a timeout.
                self._quiet_until = time.monotonic() + self.settings.guard_s
                raise
            except (ConnectionException, ModbusIOException) as exc:
                raise DeviceUnavailable(f"{self.name}: {what} failed: {exc}") from exc
            except ModbusException as exc:
                raise ProtocolError(f"{self.name}: {what} failed: {exc}") from exc
            finally:
                self._outstanding = None
                self._quiet_until = max(
                    self._quiet_until, time.monotonic() + self.settings.frame_gap_s
                )
        if response.isError():
            code = response.exception_code
            raise DeviceRejected(
                f"{self.name}: device {device_id} refused {what}: "
                f"exception {code} ({_exception_name(code)})"
            )
        return response, sent_at

    async def read_registers(
        self,
        device_id: int,
        table: Literal["holding", "input"],
        address: int,
        count: int,
        *,
        timeout_s: float,
    ) -> tuple[list[int], float]:
        """Read ``count`` registers; returns them and the monotonic time the request went out."""

        def call(client: ModbusClient) -> Awaitable[ModbusPDU]:
            read = (
                client.read_holding_registers if table == "holding" else client.read_input_registers
            )
            return read(address, count=count, device_id=device_id)

        what = f"read of {count} {table} registers at {address}"
        response, sent_at = await self._exchange(device_id, what, timeout_s, call)
        registers = list(response.registers)
        if len(registers) != count:
            raise ProtocolError(
                f"{self.name}: device {device_id} answered the {what} with "
                f"{len(registers)} registers"
            )
        return registers, sent_at

    async def write_register(
        self, device_id: int, address: int, value: int, *, timeout_s: float
    ) -> None:
        """Write one holding register (FC06); the device's echo must match."""

        def call(client: ModbusClient) -> Awaitable[ModbusPDU]:
            return client.write_register(address, value, device_id=device_id)

        what = f"write of {value} to register {address}"
        response, _ = await self._exchange(device_id, what, timeout_s, call)
        if response.address != address or list(response.registers) != [value]:
            raise ProtocolError(f"{self.name}: device {device_id} echoed another {what}")

    async def write_coil(self, device_id: int, address: int, *, timeout_s: float) -> None:
        """Switch one coil on (FC05); the device's echo must match."""

        def call(client: ModbusClient) -> Awaitable[ModbusPDU]:
            return client.write_coil(address, True, device_id=device_id)

        what = f"write of coil {address}"
        response, _ = await self._exchange(device_id, what, timeout_s, call)
        if response.address != address or not response.bits or not response.bits[0]:
            raise ProtocolError(f"{self.name}: device {device_id} echoed another {what}")

    def diagnostics(self) -> dict[str, Any]:
        return {
            "line": self.name,
            "connected": self.connected,
            "scales_attached": self._users,
            "connects": self.connects,
            "exchanges": self.exchanges,
            "frame_gap_s": self.settings.frame_gap_s,
            "late_reply_guard_s": self.settings.guard_s,
            "late_replies_discarded": sum(self._late.values()),
            "last_frames": list(self._frames),
        }


class BusRegistry:
    """The lines of one gateway: scales on the same serial port, or the same TCP
    host:port, get the same :class:`ModbusBus`. Create one per gateway (no global)."""

    def __init__(self) -> None:
        self._buses: dict[str, ModbusBus] = {}

    def bus_for(self, config: ModbusScaleConfig) -> ModbusBus:
        """The bus of the scale's line; raises ValueError when scales on one line
        disagree on its settings (baud rate, parity …)."""
        settings = LineSettings.of(config)
        key = f"{settings.transport}:{settings.endpoint}"
        bus = self._buses.get(key)
        if bus is None:
            bus = self._buses[key] = ModbusBus(settings)
        else:
            bus.merge(settings)
        return bus

    @property
    def buses(self) -> list[ModbusBus]:
        return list(self._buses.values())
