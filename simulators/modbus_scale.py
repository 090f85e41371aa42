"""A weighing indicator behind a pymodbus server, with the driver's own register map.

The scale has a pan (what lies on it), a zero offset and a tare. A load put on it
settles over ``settle_s`` with noise, then holds still and the stable bit comes on
(when the map has one). Tare and zero are refused with a Modbus exception while the
scale moves (DEVICE_BUSY, 6), and zero also beyond its zero range (ILLEGAL_VALUE, 3):
2 % of capacity around the power-up zero, as OIML R76 allows for semi-automatic zero.
Above capacity it is over range, well below zero under range.

A :class:`SimulatedBus` is the far side of one Modbus line: a pymodbus server on the
config's TCP host and port (port 0: a free one, see :attr:`SimulatedBus.port`), or on
the device end of a :class:`~simulators.pty_link.PtyLink` whose host end is the config's
serial path. Each scale answers its own device id on it. A scale alone on its line
makes its own bus; scales that share a line (an RS-485 port, a TCP gateway's host and
port) are given the same one, best from one :class:`SimulatedBuses` per run.

Link faults (:class:`~simulators.faults.Faults`) apply to every request: drop (no
reply), delay (the reply goes out late, with the weight sampled when the request came
in), garble. On RTU a garbled reply has flipped bits, so its CRC fails. TCP has its
own checksums: there a garbled reply is one a buggy gateway sends, a well-formed frame
that does not answer the request (a register short, a wrong echo).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus_scale.config import ModbusScaleConfig, ScaleCommand
from drivers.modbus_scale.registers import Unit, encode_reading, from_grams
from simulators.faults import Faults
from simulators.pty_link import Direction, PtyLink

__all__ = ["SimulatedBus", "SimulatedBuses", "SimulatedScale"]

logger = logging.getLogger(__name__)

Answer = Callable[[ServerRequestHandler, ModbusPDU, Any], Awaitable[None]]

# A common parcel scale, when the config gives no capacity.
_DEFAULT_CAPACITY_G = 30_000.0
# Zero may be set within this share of capacity around the power-up zero (OIML R76
# allows up to 4 % for semi-automatic zero; indicators often use 2 %).
_ZERO_RANGE = 0.02
# Indicators show overload above Max + 9 e and underload below -20 e.
_OVER_DIVISIONS = 9
_UNDER_DIVISIONS = 20

# Function code → the register table it reads.
_READ_TABLE = {3: "holding", 4: "input"}


class _ScaleRequestHandler(ServerRequestHandler):
    """pymodbus' request handler, answering through the simulated scale.

    pymodbus' own ``handle_request`` reads ``self.last_pdu`` again after awaiting the
    datastore, so a reply delayed there would go out with the *next* request's
    transaction id; here each reply keeps its own request.
    """

    def __init__(self, owner: Any, answer: Answer) -> None:
        super().__init__(owner, None, None, None)  # type: ignore[no-untyped-call]
        self._answer = answer

    async def handle_request(self) -> None:
        request, addr = self.last_pdu, self.last_addr
        if request is not None:
            await self._answer(self, request, addr)


class _ScaleTcpServer(ModbusTcpServer):
    def __init__(
        self, devices: list[SimDevice], *, address: tuple[str, int], answer: Answer
    ) -> None:
        self._answer = answer
        super().__init__(devices, address=address)

    def callback_new_connection(self) -> ServerRequestHandler:
        return _ScaleRequestHandler(self, self._answer)


class _ScaleSerialServer(ModbusSerialServer):
    def __init__(
        self, devices: list[SimDevice], *, config: ModbusScaleConfig, port: str, answer: Answer
    ) -> None:
        self._answer = answer
        super().__init__(
            devices,
            port=port,
            baudrate=config.baudrate,
            parity=config.parity,
            stopbits=config.stopbits,
            bytesize=config.bytesize,
        )

    def callback_new_connection(self) -> ServerRequestHandler:
        return _ScaleRequestHandler(self, self._answer)


class SimulatedBus:
    """The far side of one Modbus line: one pymodbus server for every scale on it.

    ``tap`` (RTU) sees every chunk that crosses the pty link, as a line monitor would.
    """

    def __init__(
        self, config: ModbusScaleConfig, *, tap: Callable[[Direction, bytes], None] | None = None
    ) -> None:
        self.config = config  # the line's settings; any scale's config on this line
        self._tap = tap
        self._scales: dict[int, SimulatedScale] = {}
        self._served: frozenset[int] = frozenset()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._link: PtyLink | None = None
        self._device_end: str | None = None
        self._port = config.tcp_port if config.transport == "tcp" else 0

    @property
    def port(self) -> int:
        """The TCP port served (the free one picked when the config says 0)."""
        return self._port

    @property
    def link(self) -> PtyLink | None:
        """The RTU link while the bus runs (None on TCP)."""
        return self._link

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def scales(self) -> list[SimulatedScale]:
        return list(self._scales.values())

    @property
    def address(self) -> str:
        if self.config.transport == "tcp":
            return f"{self.config.host}:{self._port}"
        return self.config.serial_path

    def add(self, scale: SimulatedScale) -> None:
        """Put a scale on this line (no I/O; it answers once the bus runs)."""
        cfg = scale.config
        if (cfg.transport, cfg.endpoint) != (self.config.transport, self.config.endpoint):
            raise ValueError(f"{scale.name} is on {cfg.endpoint}, not on {self.address}")
        if cfg.device_id in self._scales and self._scales[cfg.device_id] is not scale:
            raise ValueError(f"device id {cfg.device_id} is taken on {self.address}")
        self._scales[cfg.device_id] = scale

    async def start(self) -> None:
        """Serve every scale added so far (again, if one was added since)."""
        if self._server is not None and self._served == frozenset(self._scales):
            return
        await self._stop_server()
        devices = [scale.sim_device() for scale in self._scales.values()]
        if self.config.transport == "tcp":
            tcp = _ScaleTcpServer(
                devices, address=(self.config.host or "127.0.0.1", self._port), answer=self._answer
            )
            await tcp.serve_forever(background=True)
            # pymodbus keeps the listening asyncio.Server as its transport.
            listener = cast(Any, tcp.transport)
            self._port = int(listener.sockets[0].getsockname()[1])
            self._server = tcp
        else:
            if self._link is None:
                self._link = PtyLink(self.config.serial_path, tap=self._tap)
                self._link.open()
            self._device_end = self._link.add_device()
            serial = _ScaleSerialServer(
                devices, config=self.config, port=self._device_end, answer=self._answer
            )
            await serial.serve_forever(background=True)
            # pymodbus sets the serial transport up in a call_soon callback, which fails if
            # the port is closed first (a quick stop): let it run.
            await asyncio.sleep(0)
            self._server = serial
        self._served = frozenset(self._scales)
        logger.info("simulated Modbus line on %s: devices %s", self.address, sorted(self._served))

    async def stop(self) -> None:
        """Go away as if powered off (the serial path disappears); safe to call twice."""
        await self._stop_server()
        if self._link is not None:
            self._link.close()
            self._link = None

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
        if self._link is not None and self._device_end is not None:
            self._link.remove_device(self._device_end)
        self._device_end = None

    async def disconnect(self) -> None:
        """TCP: close the client connections (the listener stays). RTU: pull the USB
        adapter out and put it back at the same path."""
        if isinstance(self._server, ModbusTcpServer):
            for connection in list(self._server.active_connections.values()):
                connection.close()
        elif self._link is not None:
            self._link.unplug()
            self._link.plug()

    async def _answer(self, handler: ServerRequestHandler, request: ModbusPDU, addr: Any) -> None:
        scale = self._scales.get(request.dev_id)
        if scale is None or not scale.running:
            return  # no such device on the line (or it is off): silence, as on RS-485
        await scale.answer(handler, request, addr)


class SimulatedBuses:
    """The simulated Modbus lines of one run: scales with the same serial path, or the
    same TCP host and port, get the same :class:`SimulatedBus` (no global)."""

    def __init__(self) -> None:
        self._buses: dict[str, SimulatedBus] = {}

    def bus_for(self, config: ModbusScaleConfig) -> SimulatedBus:
        key = f"{config.transport}:{config.endpoint}"
        if key not in self._buses:
            self._buses[key] = SimulatedBus(config)
        return self._buses[key]


class SimulatedScale:
    """A simulated Modbus scale; satisfies :class:`simulators.faults.SimulatedDevice`.

    ``bus`` is the line it is on (shared with other scales); without one it gets a line
    of its own.
    """

    def __init__(
        self,
        name: str,
        config: ModbusScaleConfig,
        *,
        faults: Faults | None = None,
        seed: int | None = None,
        bus: SimulatedBus | None = None,
        settle_s: float = 0.8,
        noise_g: float = 3.0,
        division_g: float = 1.0,
    ) -> None:
        self._name = name
        self.config = config
        self.faults = faults if faults is not None else Faults(rng=random.Random(seed))
        self._rng = random.Random(seed)
        self._map = config.register_map()
        self.settle_s = settle_s
        self.noise_g = noise_g
        self.division_g = division_g
        self.capacity_g = config.capacity_g or _DEFAULT_CAPACITY_G
        # With a unit register the scale starts in the unit of the lowest code.
        self._unit: Unit = self._map.unit or self._map.unit_codes[min(self._map.unit_codes)]
        # The pan: what lies on it now, and where the load cell was when it last changed.
        self._load_g = 0.0
        self._from_g = 0.0
        self._changed_at = -math.inf
        self._zero_offset_g = 0.0
        self._tare_g = 0.0
        self._unstable = False
        self._running = False
        self.bus = bus if bus is not None else SimulatedBus(config)
        self.bus.add(self)
        self.requests = 0
        self.dropped = 0
        self.garbled = 0
        self.refused = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def port(self) -> int:
        """The TCP port served (the free one picked when the config says 0)."""
        return self.bus.port

    @property
    def running(self) -> bool:
        return self._running

    # -- what operators and tests do -------------------------------------------------

    def place(self, grams: float) -> None:
        """Put a load of ``grams`` on the pan (replacing what was on it)."""
        now = time.monotonic()
        self._from_g, _ = self._load_cell(now, noisy=False)
        self._load_g = grams
        self._changed_at = now

    def remove(self) -> None:
        """Take everything off the pan."""
        self.place(0.0)

    def unstable(self, on: bool = True) -> None:
        """Device fault: the reading never settles (a draught, a vibrating table)."""
        self._unstable = on

    def set_unit(self, unit: Unit) -> None:
        """Change the display unit (a map with a unit register reports it)."""
        if self._map.unit is not None and unit != self._map.unit:
            raise ValueError(f"the register map fixes the unit to {self._map.unit}")
        if self._map.unit is None and unit not in self._map.unit_codes.values():
            raise ValueError(f"no unit code for {unit}")
        self._unit = unit

    # -- SimulatedDevice -------------------------------------------------------------

    async def start(self) -> None:
        """Power on: answer on the line (which starts serving if it was not)."""
        self._running = True
        await self.bus.start()

    async def stop(self) -> None:
        """Power off: silent on the line; the line goes away with its last scale."""
        self._running = False
        if not any(scale.running for scale in self.bus.scales):
            await self.bus.stop()

    async def disconnect(self) -> None:
        """A blip of the line: TCP connections closed, or the USB adapter replugged."""
        await self.bus.disconnect()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        cell_g, settled = self._load_cell(now, noisy=False)
        gross = cell_g - self._zero_offset_g
        return {
            "transport": self.config.transport,
            "address": self.bus.address,
            "device_id": self.config.device_id,
            "running": self.running,
            "load_g": self._load_g,
            "gross_g": gross,
            "net_g": gross - self._tare_g,
            "tare_g": self._tare_g,
            "zero_offset_g": self._zero_offset_g,
            "unit": self._unit,
            "stable": settled,
            "over_range": self._over(gross),
            "under_range": self._under(gross),
            "unstable_fault": self._unstable,
            "requests": self.requests,
            "dropped": self.dropped,
            "garbled": self.garbled,
            "refused": self.refused,
        }

    # -- physics ---------------------------------------------------------------------

    def _load_cell(self, now: float, *, noisy: bool = True) -> tuple[float, bool]:
        """What the load cell measures now, and whether it has settled."""
        if self._unstable:
            swing = max(10 * self.noise_g, 20.0) if noisy else 0.0
            return self._load_g + self._rng.uniform(-swing, swing), False
        elapsed = now - self._changed_at
        if elapsed >= self.settle_s:
            return self._load_g, True
        # An exponential approach to the load, with noise on top while it moves.
        decay = math.exp(-4.0 * elapsed / self.settle_s)
        value = self._load_g + (self._from_g - self._load_g) * decay
        if noisy:
            value += self._rng.uniform(-self.noise_g, self.noise_g)
        return value, False

    def _over(self, gross_g: float) -> bool:
        return gross_g > self.capacity_g + _OVER_DIVISIONS * self.division_g

    def _under(self, gross_g: float) -> bool:
        return gross_g < -_UNDER_DIVISIONS * self.division_g

    def _registers_now(self) -> dict[int, int]:
        cell_g, settled = self._load_cell(time.monotonic())
        gross = cell_g - self._zero_offset_g
        net = round(gross - self._tare_g, 6)
        return encode_reading(
            self._map,
            value=from_grams(net, self._unit),
            unit=self._unit,
            stable=settled,
            over_range=self._over(gross),
            under_range=self._under(gross),
        )

    def _tare(self) -> ExcCodes | None:
        cell_g, settled = self._load_cell(time.monotonic(), noisy=False)
        gross = cell_g - self._zero_offset_g
        if not settled:
            return ExcCodes.DEVICE_BUSY
        if self._over(gross) or self._under(gross):
            return ExcCodes.ILLEGAL_VALUE
        self._tare_g = gross
        return None

    def _zero(self) -> ExcCodes | None:
        cell_g, settled = self._load_cell(time.monotonic(), noisy=False)
        if not settled:
            return ExcCodes.DEVICE_BUSY
        if abs(cell_g) > _ZERO_RANGE * self.capacity_g:
            return ExcCodes.ILLEGAL_VALUE
        self._zero_offset_g = cell_g
        self._tare_g = 0.0
        return None

    # -- the Modbus side -------------------------------------------------------------

    def _commands(self) -> list[tuple[ScaleCommand, Callable[[], ExcCodes | None]]]:
        found: list[tuple[ScaleCommand, Callable[[], ExcCodes | None]]] = []
        if self.config.tare is not None:
            found.append((self.config.tare, self._tare))
        if self.config.zero is not None:
            found.append((self.config.zero, self._zero))
        return found

    def sim_device(self) -> SimDevice:
        """This scale's registers as a pymodbus device, for its bus's server."""
        first, count = self._map.span
        span = SimData(
            address=first, count=count, values=0, datatype=DataType.REGISTERS, readonly=True
        )
        coils: dict[int, SimData] = {}
        holding: dict[int, SimData] = {}
        for command, _ in self._commands():
            if command.write == "coil":
                coils[command.address] = SimData(
                    address=command.address, values=[False], datatype=DataType.BITS
                )
            else:
                holding[command.address] = SimData(
                    address=command.address, count=1, values=0, datatype=DataType.REGISTERS
                )
        reads = [span]
        if self._map.register_type == "holding":
            holding[first] = span
            reads = [SimData(address=0, count=1, datatype=DataType.INVALID)]
        # A split device needs a block in each table; an unused table gets one nobody uses.
        unused_bits = [SimData(address=0, values=[False], datatype=DataType.BITS)]
        return SimDevice(
            id=self.config.device_id,
            simdata=(
                list(coils.values()) or unused_bits,
                unused_bits,
                list(holding.values()) or [SimData(address=0, count=1, datatype=DataType.INVALID)],
                reads,
            ),
            action=self._action,
        )

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this on every access, before it answers from ``registers``."""
        if set_values is None:
            if _READ_TABLE.get(function_code) == self._map.register_type:
                for reg, word in self._registers_now().items():
                    if 0 <= reg - start_address < len(registers):
                        registers[reg - start_address] = word
            return None
        if function_code not in (5, 6):
            return ExcCodes.ILLEGAL_FUNCTION
        write = "coil" if function_code == 5 else "register"
        # The value stays written: the reply to FC05/FC06 echoes the request.
        value = int(set_values[0])
        commands = [
            (cmd, run)
            for cmd, run in self._commands()
            if cmd.write == write and cmd.address == address
        ]
        for cmd, run in commands:
            if (write == "coil" and value) or (write == "register" and value == cmd.value):
                refused = run()
                if refused is not None:
                    self.refused += 1
                return refused
        if commands and write == "register":
            return ExcCodes.ILLEGAL_VALUE  # not a command this register knows
        return None  # another register or coil, or a command coil switched off

    async def answer(self, handler: ServerRequestHandler, request: ModbusPDU, addr: Any) -> None:
        """Answer one request for this scale's device id, with the link faults."""
        self.requests += 1
        if self.faults.should_drop():
            self.dropped += 1
            return
        # The weight is sampled when the request comes in; a delay only holds the reply.
        response = await request.datastore_update(handler.server.context, request.dev_id)
        response.transaction_id = request.transaction_id
        response.dev_id = request.dev_id
        await self.faults.delay()
        if not handler.is_active():
            return  # the connection went away meanwhile
        if self.faults.should_garble():
            self.garbled += 1
            packet = self._garbled(handler, response)
        else:
            packet = handler.framer.buildFrame(response)
        handler.send(packet, addr)

    def _garbled(self, handler: ServerRequestHandler, response: ModbusPDU) -> bytes:
        if self.config.transport == "rtu":
            return self.faults.garble_bytes(handler.framer.buildFrame(response))
        if not response.isError():
            if response.registers and response.function_code in _READ_TABLE:
                response.registers = list(response.registers)[:-1]
            else:
                response.address ^= 1
        return handler.framer.buildFrame(response)
