"""``linegate demo``: the reference line with a simulated hub, simulated devices and
simulated operators, in one process.

The devices are the protocol-true simulators of ``linegate simulate`` (an OPC UA server
per machine, a Modbus server per scale, scanners on ptys and sockets, ZPL printers on
TCP), on a copy of the line config moved to free ports; the gateway drives them with its
real drivers, and the operators scan on the scanners and put parcels on the scales.
``--no-devices`` runs the line on the station API alone.

By default it keeps the line and its screens running until Ctrl-C: the first batch of
``--orders N``, then new orders at ``--pace``. ``--exit-when-done`` releases the N orders
and exits with the verdict once they are done. ``--orders 0 --broker URL`` releases
nothing: the line works what another hub publishes, and the verdict counts only what
the demo released itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import math
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cloud_sync.contract import IN_ORDERS, topic_prefix
from cloud_sync.memory import MemoryHub, MemoryLink
from gateway import __version__
from gateway.app.root import Gateway, HubLink, mqtt_link
from gateway.cli.broker import parse_broker
from gateway.cli.demo_access import DemoAccess, enrol
from gateway.cli.demo_notices import DemoNotices
from gateway.cli.simulate import device_specs
from gateway.clock import ScaledClock
from gateway.config.calendar import working_windows
from gateway.config.line import LineConfig
from gateway.config.load import EX_CONFIG, ConfigError, load_line_config
from gateway.floor.supervisor import stop_task
from gateway.numbers.kpis import kpi_doc
from gateway.numbers.periods import PeriodKind, period_containing
from gateway.store.db import Store, StoreError
from gateway.store.outbox import Outbox
from gateway.store.rows import OrderStatus, TaskStatus
from simulators.hub import HubTransport, MemoryTransport, MqttTransport, SimulatedHub
from simulators.keys import LineKeys
from simulators.line import SimulatedLine
from simulators.operators import (
    Person,
    SimulatedOperator,
    assign_staff,
    standard_times,
    station_loads,
)
from simulators.orders import (
    GeneratedOrder,
    JsonDict,
    OrderStream,
    generate_orders,
    load_reference_catalog,
    load_reference_stock,
)
from simulators.pictures import PictureServer, with_pictures
from simulators.relocate import relocate_line

log = logging.getLogger(__name__)

REFERENCE_LINE = Path(__file__).resolve().parents[2] / "station_configs" / "reference-line"
# Share of released orders that are bad on purpose, so the rejection path runs.
BAD_RATE = 0.08
WAVES = 3
WAVE_INTERVAL_S = 600.0  # simulated seconds between order waves
REPLENISH_LEAD_S = 300.0  # simulated seconds the WMS takes to bring material
# The planner under the compressed clock (real seconds): see _line_config.
DEMO_REPLAN_S = 10.0
DEMO_SOLVE_S = 2.0
PROGRESS_EVERY_S = 3.0  # real seconds between progress lines
# One machine faults this long after the start, for this long (real seconds): its alarm is
# sent to the demo's robots and mail, and left unacknowledged it escalates (10 min of line
# time at ×60 is 10 s).
FAULT_AFTER_S = 15.0
FAULT_HOLD_S = 15.0
STOP_TIMEOUT_S = 20.0  # real seconds for the hub and the gateway to shut down, each
DRAIN_TIMEOUT_S = 15.0  # real seconds to wait for the last events after the last order
EX_INTERRUPTED = 130
# The default --pace keeps the busiest station this busy by the standard run times of the
# order mix: setups, rework and the operators' own time come on top, so the stations are
# busy and their queues still drain.
PACE_LOAD = 0.3
PACE_SAMPLE = 200  # orders drawn to know the mix
# How long the printed station links can pair a browser, in a person's time (the line's
# clock runs ×speed): a working day.
BROWSER_CODE_LIFE = timedelta(hours=8)


@dataclass
class Demo:
    """Everything one demo run is made of, and how it went."""

    config: LineConfig
    clock: ScaledClock
    data_dir: Path
    gateway: Gateway
    hub: SimulatedHub
    orders: list[GeneratedOrder]
    catalog: JsonDict
    speed: float
    error_rate: float
    seed: int
    transport: str
    floor: SimulatedLine | None = None
    sim_root: Path | None = None  # the simulated devices' ptys and sockets, removed at the end
    operators: list[SimulatedOperator] = field(default_factory=list)
    staff: dict[str, Person] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    access: DemoAccess | None = None  # the accounts, terminals and token it made
    # The e-SOP pictures the demo's hub adds to the catalog and serves over HTTP (the
    # reference catalog has none): the gateway fetches each once, as from a real hub.
    pictures: PictureServer | None = None
    until_stopped: bool = True  # run until Ctrl-C; False: exit once the orders are done
    pace_per_h: float = 0.0  # orders an hour of line time after the first batch
    broker: str | None = None
    interrupted: bool = False
    wall_s: float = 0.0
    report: str | None = None  # where the shift's report made at the end is
    # Pick requests, parcels and alarm notifications as they happen (their receivers).
    notices: DemoNotices = field(default_factory=DemoNotices)

    @property
    def api_url(self) -> str:
        return f"http://{_client_host(self.config.http.host)}:{self.gateway.http_port}"

    @property
    def outside_orders(self) -> bool:
        """The demo releases no order of its own: another hub sends them."""
        return not self.orders and not self.hub.streaming

    def adopt_catalog(self, catalog: JsonDict) -> None:
        """Another hub's catalog is in force: the operators work by it."""
        self.catalog = catalog
        for op in self.operators:
            try:
                op.use_catalog(catalog)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("%s: cannot work by the new catalog (%r)", op.station, exc)


def run_demo(args: argparse.Namespace, *, on_start: Callable[[Demo], None] | None = None) -> int:
    """Run the demo as ``linegate demo`` asks; ``on_start`` sees the parts before they run."""
    # A line per HTTP request would bury the progress lines.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not args.verbose:
        # Eighteen devices connecting, the simulators' own chatter and a replan every
        # second or two (orders keep arriving) would bury the banner and the progress
        # lines; a device that drops or a plan that fails still says so (a warning).
        for name in (
            "drivers",
            "simulators",
            "gateway.floor",
            "gateway.planning",
            "gateway.alerts",
            "mail.log",
        ):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return asyncio.run(_main(args, on_start))
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl-C
        return EX_INTERRUPTED


async def _main(args: argparse.Namespace, on_start: Callable[[Demo], None] | None) -> int:
    problem = _check_args(args)
    if problem:
        print(f"linegate demo: {problem}", file=sys.stderr)
        return 2
    try:
        config, sim_root = _line_config(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    except ValueError as exc:
        print(f"linegate demo: {exc}", file=sys.stderr)
        return 2
    try:
        demo = _build(args, config, sim_root)
    except SystemExit as exc:  # parse_broker refuses a bad --broker this way
        print(exc.code, file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"linegate demo: {exc}", file=sys.stderr)
        return 1
    if on_start is not None:
        on_start(demo)
    return await _run(demo)


def _check_args(args: argparse.Namespace) -> str | None:
    if args.speed <= 0:
        return "--speed must be positive"
    if args.orders < 0:
        return "--orders must be 0 or more"
    if args.orders == 0 and args.exit_when_done:
        return (
            "--exit-when-done waits for the demo's own orders, and --orders 0 releases none: "
            "nothing would ever be done (give --orders N, or leave --exit-when-done out)"
        )
    if args.orders == 0 and not args.broker:
        return (
            "--orders 0 releases no order of its own: they come from another hub, so give "
            "--broker mqtt://HOST:PORT (or --orders N)"
        )
    if args.pace is not None:
        if not math.isfinite(args.pace) or args.pace < 0:
            return "--pace must be 0 or more orders an hour"
        if args.exit_when_done:
            return "--pace paces the orders after the first batch; --exit-when-done has none"
        if args.orders == 0:
            return "--pace paces the demo's own orders; with --orders 0 it releases none"
    if not 0.0 <= args.error_rate <= 1.0:
        return "--error-rate must be between 0 and 1"
    if args.start is not None:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            return f"--start is not an ISO 8601 time: {args.start!r}"
        if start.tzinfo is None:
            return "--start needs a UTC offset, e.g. 2026-11-26T10:00:00+08:00"
    return None


def _line_config(args: argparse.Namespace) -> tuple[LineConfig, Path | None]:
    """The line to run, and the folder of its simulated devices' paths (if any)."""
    source = args.config or REFERENCE_LINE
    sim_root = None
    config = load_line_config(source)
    if args.no_devices:
        stations = {
            sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()
        }
        config = config.model_copy(update={"stations": stations})
    elif any(st.devices for st in config.stations.values()):
        # The simulated devices go to free ports and a folder of this run's own.
        args.data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="linegate-demo-"))
        sim_root = Path(tempfile.mkdtemp(prefix="lg-sim-"))
        relocate_line(source, args.data_dir / "line", sim_root)
        config = load_line_config(args.data_dir / "line")
    topic_prefix(args.site, args.line)  # ValueError names the bad segment
    # Frozen models: a copy with the demo's site and line (validated just above).
    line = config.line.model_copy(update={"site": args.site, "line": args.line})
    # The demo's clock runs ×speed: a replan every DEMO_REPLAN_S of real time is every
    # DEMO_REPLAN_S × speed of line time, and a solve must be short for its plan to be
    # current when it comes back.
    planner = config.planner.model_copy(
        update={
            "interval_s": min(config.planner.interval_s, DEMO_REPLAN_S),
            "time_limit_s": min(config.planner.time_limit_s, DEMO_SOLVE_S),
        }
    )
    # The demo shows its API's map; its simulated operators speak plain HTTP on this box.
    http = config.http.model_copy(update={"api_docs": True, "tls": None, "redirect_port": None})
    return config.model_copy(update={"line": line, "planner": planner, "http": http}), sim_root


def demo_start(config: LineConfig, now: datetime) -> datetime:
    """When the demo's line clock starts: now while the line's first station is in a shift,
    otherwise at the start of the last shift that began (so the plan is made in working
    time, whatever the hour the demo runs at)."""
    first = next(iter(config.stations))
    shifts, _ = working_windows(config.shifts, first, config.line.tzinfo, now, days=1)
    if not shifts or any(a <= 0 < b for a, b in shifts):
        return now
    began = [a for a, _ in shifts if a <= 0]
    if not began:
        return now
    return now + timedelta(seconds=max(began))


def _build(args: argparse.Namespace, config: LineConfig, sim_root: Path | None) -> Demo:

    speed = float(args.speed)
    now = datetime.fromisoformat(args.start) if args.start else datetime.now(UTC)
    clock = ScaledClock(speed, demo_start(config, now))
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix="linegate-demo-"))
    pictures = PictureServer()
    catalog, files = with_pictures(load_reference_catalog(), pictures.base_url)
    pictures.files.update(files)
    stock = load_reference_stock()
    orders = generate_orders(
        catalog, stock, count=args.orders, now=clock.now(), seed=args.seed, bad_rate=BAD_RATE
    )
    pace = 0.0
    if not args.exit_when_done and args.orders:
        pace = args.pace if args.pace is not None else default_pace(config, catalog, clock.now())
    first_seq = _first_unsent_seq(config, data_dir)
    hub, link = _hub(args, config, clock, catalog, stock, orders, pace, first_seq)
    notices, config = DemoNotices.start(config, data_dir)
    gateway = Gateway(config, data_dir=data_dir, clock=clock, link=link, http_port=args.http_port)
    notices.follow(gateway)
    floor = None
    if any(st.devices for st in config.stations.values()):
        floor = SimulatedLine(
            device_specs(config),
            machine_cycle_s=_machine_cycles(config, catalog, speed),
            seed=args.seed,
        )
    demo = Demo(
        config=config,
        clock=clock,
        data_dir=data_dir,
        gateway=gateway,
        hub=hub,
        orders=orders,
        catalog=catalog,
        speed=speed,
        error_rate=args.error_rate,
        seed=args.seed,
        transport=hub.transport.name,
        floor=floor,
        sim_root=sim_root,
        until_stopped=not args.exit_when_done,
        pace_per_h=pace,
        broker=args.broker,
        pictures=pictures,
        notices=notices,
    )
    hub.on_catalog = demo.adopt_catalog
    return demo


def _hub(
    args: argparse.Namespace,
    config: LineConfig,
    clock: ScaledClock,
    catalog: JsonDict,
    stock: JsonDict,
    orders: list[GeneratedOrder],
    pace: float,
    first_seq: int,
) -> tuple[SimulatedHub, HubLink]:
    """The simulated hub, and the gateway's link to it (in memory, or over the broker)."""
    site, line = config.line.site, config.line.line
    link: HubLink
    transport: HubTransport
    if args.broker:
        host, port = parse_broker(args.broker)
        link = mqtt_link(config, clock, host, port)
        transport = MqttTransport(host, port, site, line)
    else:
        memory = MemoryHub()
        link = MemoryLink(memory, site, line, clock.now, version=__version__)
        transport = MemoryTransport(memory)
    stream = None
    if pace > 0:
        stream = OrderStream(
            catalog,
            stock,
            now=clock.now(),
            seed=args.seed,
            bad_rate=BAD_RATE,
            first_number=len(orders) + 1,
        )
    hub = SimulatedHub(
        transport,
        catalog=catalog,
        stock=stock,
        orders=orders,
        clock_now=clock.now,
        speed=clock.speed,
        waves=WAVES,
        wave_interval_s=WAVE_INTERVAL_S,
        replenish_lead_s=REPLENISH_LEAD_S,
        first_seq=first_seq,
        stream=stream,
        pace_per_h=pace,
        seed=args.seed,
        # Releasing nothing itself, the demo works another hub's orders: by that hub's
        # master data, when it publishes its own.
        defer_masterdata=not orders,
    )
    return hub, link


def default_pace(config: LineConfig, catalog: JsonDict, now: datetime) -> float:
    """Orders an hour of line time that keep the busiest station about ``PACE_LOAD`` busy
    by the standard run times of the generated order mix (at least one an hour)."""
    sample = generate_orders(
        catalog, {"items": []}, count=PACE_SAMPLE, now=now, bad_rate=0.0, respect_stock=False
    )
    caps = {sid: list(st.capabilities) for sid, st in config.stations.items()}
    busiest = max(station_loads(catalog, caps, _units_by_sku(sample)).values(), default=0.0)
    if busiest <= 0:
        return 1.0
    return float(max(1, math.floor(PACE_LOAD * 3600.0 * PACE_SAMPLE / busiest)))


def _units_by_sku(orders: list[GeneratedOrder]) -> dict[str, float]:
    """Units per SKU of the good ``orders``."""
    units: dict[str, float] = {}
    for order in orders:
        if order.good and order.doc is not None:
            for line in order.doc["lines"]:
                units[line["sku"]] = units.get(line["sku"], 0.0) + line["qty"]
    return units


def _machine_cycles(config: LineConfig, catalog: JsonDict, speed: float) -> dict[str, float]:
    """Each station's machine runs a job in the standard time of its operations."""
    times = standard_times(catalog)
    by_capability: dict[str, float] = {}
    for routing in catalog["routings"]:
        for op in routing["operations"]:
            run = times[op["op"]].run_s
            by_capability[op["capability"]] = max(by_capability.get(op["capability"], 0), run)
    return {
        sid: max((by_capability.get(c, 30.0) for c in st.capabilities), default=30.0) / speed
        for sid, st in config.stations.items()
    }


def _first_unsent_seq(config: LineConfig, data_dir: Path) -> int:
    """A database kept from an earlier run sends only what it has not sent: start there."""
    path = config.store_path(data_dir)
    if not path.exists():
        return 1
    store = Store(path)
    store.open_readonly()
    try:
        outbox = Outbox(store, config.gateway_id)
        outbox.load()
        pending = outbox.peek(0, 1)
        return pending[0].seq if pending else outbox.last_seq + 1
    finally:
        store.close()


# -- running -------------------------------------------------------------------------


async def _run(demo: Demo) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    _on_signals(loop, stop, main)
    started = time.monotonic()
    if demo.floor is not None:
        await demo.floor.start()
    pictures_task = None
    if demo.pictures is not None:
        pictures_task = asyncio.create_task(demo.pictures.serve(), name="pictures")
    gw_task = asyncio.create_task(demo.gateway.run(), name="gateway")
    hub_task: asyncio.Task[None] | None = None
    op_tasks: list[asyncio.Task[None]] = []
    fault_task: asyncio.Task[None] | None = None
    try:
        if not await _first(demo.gateway.started.wait(), gw_task):
            # Nothing ran: the reason is all there is to say.
            print(f"linegate demo: {_why_stopped('the gateway', gw_task)}", file=sys.stderr)
            return 1
        hub_task = asyncio.create_task(demo.hub.run(), name="hub")
        demo.access = await enrol(
            demo.gateway,
            demo.api_url,
            demo.config.stations,
            code_lifetime=BROWSER_CODE_LIFE * demo.speed,
        )
        # The operators work by the catalog in force: the hub knows it once it is ready.
        if await _first(demo.hub.ready.wait(), hub_task, stop.wait()):
            _staff(demo)
            _banner(demo)
            op_tasks = [
                asyncio.create_task(op.run(), name=f"operator {op.station}")
                for op in demo.operators
            ]
            if demo.floor is not None:
                fault_task = asyncio.create_task(
                    demo.notices.fault_once(demo.floor, after_s=FAULT_AFTER_S, hold_s=FAULT_HOLD_S),
                    name="a machine fault",
                )
            await _watch(demo, stop, gw_task, hub_task, started)
        elif hub_task.done():
            demo.problems.append(_why_stopped("the hub", hub_task))
        else:
            demo.interrupted = True
        await _stop_operators(demo, op_tasks)
        # Run until stopped, the events so far are the verdict's; a fixed run that did not
        # finish has none to give.
        finished = not demo.problems and not demo.interrupted
        if not gw_task.done():
            await _shift_report(demo)
        if not hub_task.done() and (demo.until_stopped or finished):
            await _drain(demo, gw_task)
        _final_checks(demo)
    finally:
        if fault_task is not None:
            await _cancel(fault_task)  # its machine's fault is cleared as it ends
        await _stop_operators(demo, op_tasks)
        for task, what in ((hub_task, "the hub"), (gw_task, "the gateway")):
            if task is not None:
                await stop_task(task, STOP_TIMEOUT_S, what, heard=lambda: True)
                if not task.done():
                    demo.problems.append(f"{what} did not stop within {STOP_TIMEOUT_S:g} s")
        if demo.floor is not None:
            await demo.floor.stop()
        if demo.pictures is not None and pictures_task is not None:
            demo.pictures.stop()
            await stop_task(pictures_task, STOP_TIMEOUT_S, "the pictures", heard=lambda: True)
        demo.notices.stop()
        if demo.sim_root is not None:
            shutil.rmtree(demo.sim_root, ignore_errors=True)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return _finish(demo, started)


def _on_signals(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, main: asyncio.Task[Any] | None
) -> None:
    def handle() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # a second Ctrl-C: stop now
        stop.set()

    # Not available off the main thread or on every platform: Ctrl-C then interrupts hard.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, handle)


def _staff(demo: Demo) -> None:
    """One simulated operator per station, with a badge that station accepts."""
    config = demo.config
    units = _units_by_sku(demo.orders)
    caps = {sid: list(st.capabilities) for sid, st in config.stations.items()}
    loads = station_loads(demo.catalog, caps, units or None)
    names = {o.badge: o.name for o in config.operators}
    allowed = {sid: st.operators for sid, st in config.stations.items()}
    staff = assign_staff(allowed, list(names), loads)
    people: dict[str, Person] = {}
    for sid in config.stations:
        badge = staff.get(sid)
        if badge is None:
            print(f"  nobody may work at {sid}: it stays unstaffed")
            continue
        person = people.setdefault(badge, Person(badge, names.get(badge, badge)))
        demo.staff[sid] = person
        demo.operators.append(
            SimulatedOperator(
                demo.api_url,
                sid,
                person,
                catalog=demo.catalog,
                speed=demo.speed,
                error_rate=demo.error_rate,
                seed=demo.seed,
                hands=demo.floor,
                # Through the station's own paired terminal, like a tablet at it.
                auth=LineKeys({sid: demo.access.terminals[sid]} if demo.access else {}),
            )
        )


def _banner(demo: Demo) -> None:
    url = demo.api_url
    print(
        f"linegate demo: line {demo.config.gateway_id} at ×{demo.speed:g}, hub: {demo.transport}",
        flush=True,
    )
    access = demo.access
    if access is not None:
        print(f"  board        {url}/board   (sign in as viewer or lead: passwords below)")
        print(f"  board kiosk  {url}/board?kiosk=1#token={access.viewer_token}")
        hours = BROWSER_CODE_LIFE.total_seconds() / 3600
        print(
            "  stations     each link makes the browser a terminal of its station "
            f"(each link once, within {hours:g} h):"
        )
        width = max((len(sid) for sid in access.browser_codes), default=0)
        for sid, code in access.browser_codes.items():
            print(f"               {sid:<{width}}  {url}/station/{sid}?pair={code}")
    print(f"  station API  {url}/api/stations   (docs: {url}/api/docs)")
    print(f"  metrics      {url}/metrics   (Prometheus; Authorization: Bearer <viewer token>)")
    print(f"  data         {demo.data_dir}")
    if demo.floor is not None:
        kinds: dict[str, int] = {}
        for kind in demo.floor.kinds.values():
            kinds[kind] = kinds.get(kind, 0) + 1
        print(
            "  devices      simulated: "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + f"  (linegate devices --url {url} --token TOKEN)"
        )
    print(f"  orders       {_orders_text(demo)}")
    if demo.outside_orders:
        hub = demo.hub
        version = demo.catalog.get("version", "?")
        print(f"  catalog      {version}, from {hub.catalog_source}; stock from {hub.stock_source}")
    if access is not None:
        # Made for this run and shown only here: there is no default account or password.
        print(f"  accounts     (sign in: POST {url}/api/session; new passwords each run)")
        for user, (role, password) in access.passwords.items():
            print(f"               {user} ({role.value}) {password}")
        print(f"  viewer token {access.viewer_token}")
    by_person: dict[str, list[str]] = {}
    for sid, person in demo.staff.items():
        by_person.setdefault(f"{person.name} ({person.badge})", []).append(sid)
    print("  staff        " + "; ".join(f"{', '.join(s)}: {who}" for who, s in by_person.items()))
    if demo.until_stopped:
        print("linegate demo: running until Ctrl-C (then the summary and the verdict so far)")
    sys.stdout.flush()


def _orders_text(demo: Demo) -> str:
    if demo.outside_orders:
        topic = topic_prefix(demo.config.line.site, demo.config.line.line) + IN_ORDERS
        return (
            f"none of its own: the line works what another hub publishes on {demo.broker} "
            f"({topic}); only the demo's own orders count in its verdict"
        )
    good = sum(1 for o in demo.orders if o.good)
    text = (
        f"{len(demo.orders)} to release in {WAVES} waves "
        f"({good} good, {len(demo.orders) - good} bad on purpose)"
    )
    if not demo.until_stopped:
        return text + "; the demo exits when they are done"
    if demo.pace_per_h <= 0:
        return text + ", then no more (--pace 0)"
    every_min = 60.0 / demo.pace_per_h
    return (
        text + f", then about {demo.pace_per_h:g} an hour of line time, one every "
        f"{every_min:.1f} min (--pace)"
    )


async def _watch(
    demo: Demo,
    stop: asyncio.Event,
    gw_task: asyncio.Task[None],
    hub_task: asyncio.Task[None],
    started: float,
) -> None:
    """A fixed run: until every good order is completed, Ctrl-C, a failure, a stall or the
    deadline. Run until stopped: until Ctrl-C or a failure of the gateway or the hub; what
    goes wrong meanwhile is said at once and kept for the verdict."""
    hub = demo.hub
    fixed = not demo.until_stopped
    orders = bool(demo.orders)
    timeout_s, stall_s = _limits(demo)
    last_unique, last_change, last_line = -1, started, 0.0
    while True:
        waits = [stop.wait(), asyncio.sleep(0.2)]
        if fixed:
            waits.append(hub.done.wait())
        await _first(*waits)
        now = time.monotonic()
        if gw_task.done():
            demo.problems.append(_why_stopped("the gateway", gw_task))
            return
        if hub_task.done():
            demo.problems.append(_why_stopped("the hub", hub_task))
            return
        if fixed and orders and hub.done.is_set():
            _progress(demo, now - started)
            return
        if stop.is_set():
            demo.interrupted = True
            print("linegate demo: stopping", flush=True)
            return
        misjudged = _misjudged(demo)
        if misjudged is not None:
            if fixed:
                demo.problems.append(misjudged)
                return
            _problem_now(demo, misjudged)
        if hub.counters.unique != last_unique:
            last_unique, last_change = hub.counters.unique, now
        elif (hub.outstanding if demo.until_stopped else orders) and now - last_change > stall_s:
            stuck = (
                f"stuck: no event for {stall_s:.0f} s with {len(hub.outstanding)} orders open "
                f"({', '.join(hub.outstanding[:5])})"
            )
            if fixed:
                demo.problems.append(stuck)
                return
            _problem_now(demo, stuck)
            last_change = now
        if fixed and orders and now - started > timeout_s:
            demo.problems.append(
                f"not finished after {timeout_s:.0f} s: {len(hub.outstanding)} orders still open"
            )
            return
        if now - last_line >= PROGRESS_EVERY_S:
            last_line = now
            _progress(demo, now - started)


def _misjudged(demo: Demo) -> str | None:
    """The gateway's verdict on one of the demo's own orders was wrong, if it was."""
    hub, c = demo.hub, demo.hub.counters
    if hub.rejected_good or c.rejected > c.released_bad:
        return (
            f"the gateway rejected good orders: {c.rejected} rejections of "
            f"{c.released_bad} bad orders ({', '.join(sorted(c.rejection_codes))})"
        )
    if hub.accepted_bad:
        return f"the gateway accepted bad orders: {', '.join(hub.accepted_bad[:5])}"
    if hub.wrong_rejections:
        return "bad orders rejected without the code they were made to provoke: " + ", ".join(
            hub.wrong_rejections[:5]
        )
    return None


def _problem_now(demo: Demo, problem: str) -> None:
    """Kept for the verdict, and said now (once): the line goes on."""
    if problem in demo.problems:
        return
    demo.problems.append(problem)
    print(f"linegate demo: PROBLEM: {problem}", flush=True)


def _limits(demo: Demo) -> tuple[float, float]:
    """Deadline and stall limit in real seconds, from the standard times of the orders."""
    times = standard_times(demo.catalog)
    longest = max((t.setup_s + t.run_s for t in times.values()), default=60.0)
    units = _units_by_sku(demo.orders)
    caps = {sid: list(st.capabilities) for sid, st in demo.config.stations.items()}
    busiest = max(station_loads(demo.catalog, caps, units).values(), default=0.0)
    waves = (WAVES - 1) * WAVE_INTERVAL_S
    # Setups, rework, scrap and the HTTP round trips all come on top of the standard
    # times: a generous factor, so only a run that is really stuck times out.
    timeout = 60.0 + (waves + 4.0 * busiest + 3.0 * REPLENISH_LEAD_S) / demo.speed
    stall = 20.0 + 3.0 * (1.2 * longest + WAVE_INTERVAL_S + REPLENISH_LEAD_S) / demo.speed
    return timeout, stall


def _progress(demo: Demo, elapsed: float) -> None:
    c = demo.hub.counters
    store = demo.gateway.store
    queues = store.texts(
        "SELECT capability || ' ' || count(*) FROM tasks WHERE status = ? "
        "GROUP BY capability ORDER BY capability",
        (TaskStatus.READY,),
    )
    waiting = store.count(
        "SELECT count(*) FROM orders WHERE status = ?", (OrderStatus.WAITING_MATERIAL,)
    )
    queue_text = ", ".join(queues) or "empty"
    if waiting:
        queue_text += f"; {waiting} orders wait for material"
    sim = demo.gateway.core.local(demo.clock.now()).strftime("%H:%M")
    other = ""
    if c.other_orders or demo.outside_orders:
        other = (
            f" | other orders accepted {c.other_accepted}, completed "
            f"{c.other_completed}, rejected {c.other_rejected}"
        )
    print(
        f"[{elapsed:6.1f} s | {sim}] orders accepted {c.accepted}/{c.released_good}, "
        f"completed {c.completed}, rejected {c.rejected}{other} | queues: {queue_text} | "
        f"outbox {demo.gateway.outbox.pending_count()} | events {c.unique}",
        flush=True,
    )
    demo.notices.progress(demo.gateway)


async def _shift_report(demo: Demo) -> None:
    """The report of the shift so far (of the day so far between shifts), made as a closed
    shift's is (gateway/numbers): its ``period_end`` is when the demo stopped. A shift that
    closes later replaces it."""
    gw = demo.gateway
    config, now = gw.config, gw.clock.now()
    tz = config.line.tzinfo
    period = period_containing(PeriodKind.SHIFT, now, config.shifts, tz) or period_containing(
        PeriodKind.DAY, now, config.shifts, tz
    )
    if period is None:
        return
    so_far = dataclasses.replace(period, end=min(period.end, now))
    try:
        elements = await gw.closing.regenerate(so_far)
        row = await gw.reports.make(
            so_far, elements, kpi_doc(elements, so_far, config.line.timezone)
        )
    except (LookupError, OSError, sqlite3.Error) as exc:  # the line's verdict stands
        demo.report = f"not made: {exc}"
        return
    if row is None:
        demo.report = "not made (see the log)"
        return
    folder = gw.reports.folder / row.report_id
    demo.report = f"{folder} (report.zh-CN.pdf, report.en.pdf, CSV), {row.label}"
    print(f"linegate demo: the shift's report so far: {demo.api_url}/reports/{row.report_id}")
    print(f"               files: {folder}", flush=True)


async def _drain(demo: Demo, gw_task: asyncio.Task[None]) -> None:
    """Wait until the hub holds every event the gateway committed."""
    gateway, c = demo.gateway, demo.hub.counters
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if gw_task.done():
            return  # reported by the final checks as a gap, if events are missing
        if gateway.outbox.pending_count() == 0 and c.max_seq >= gateway.outbox.last_seq:
            return
        await asyncio.sleep(0.05)
    else:
        demo.problems.append(
            f"the hub got events up to seq {c.max_seq} of {gateway.outbox.last_seq} "
            f"({gateway.outbox.pending_count()} still in the outbox) after "
            f"{DRAIN_TIMEOUT_S:g} s"
        )


def _final_checks(demo: Demo) -> None:
    hub, c = demo.hub, demo.hub.counters
    if c.gaps:
        demo.problems.append(f"{c.gaps} seq gaps (missing {hub.missing_seqs()})")
    if c.malformed:
        demo.problems.append(f"{c.malformed} events without a usable seq")
    if demo.until_stopped:
        # Orders still in work when stopped are neither done nor wrong: only what the
        # gateway already said about the demo's own orders is judged.
        misjudged = _misjudged(demo)
        if misjudged is not None and misjudged not in demo.problems:
            demo.problems.append(misjudged)
    elif not demo.interrupted and not demo.problems and demo.orders:
        if not hub.rejections_as_expected:
            demo.problems.append(
                f"rejections: {c.rejected} of {c.released_bad} bad orders, codes "
                f"{dict(c.rejection_codes)}, expected {dict(hub.expected_rejections)}"
            )
        if c.accepted != c.released_good:
            demo.problems.append(f"{c.accepted} orders accepted of {c.released_good} good")
    accepted = sum(op.counters.accepted_mistakes for op in demo.operators)
    if accepted:
        demo.problems.append(f"the gateway let {accepted} operator mistakes through")
    errors = sum(op.counters.errors for op in demo.operators)
    if errors:
        demo.problems.append(f"operators met {errors} errors (see the log)")


def _finish(demo: Demo, started: float) -> int:
    demo.wall_s = time.monotonic() - started
    _summary(demo)
    if demo.problems:
        return 1
    # Ctrl-C is how a run until stopped ends; a fixed run it cuts short.
    cut_short = demo.interrupted and not demo.until_stopped
    return EX_INTERRUPTED if cut_short and demo.orders else 0


def _planner_text(demo: Demo) -> str:
    planner = demo.gateway.planner
    if planner is None:
        return "off: queues by the dispatch rule"
    stats = planner.replanner.stats
    text = f"{stats.replans} plans made, {stats.failures} failed"
    if stats.last_s is not None:
        text += f", the last in {stats.last_s:.1f} s"
    return text + f"; queues now by {planner.source()}"


def _summary(demo: Demo) -> None:
    hub, c = demo.hub, demo.hub.counters
    ops = [op.counters for op in demo.operators]
    mistakes = sum(sum(o.mistakes.values()) for o in ops)
    on_time = f"{100.0 * c.on_time / c.completed:.0f} %" if c.completed else "-"
    sim_s = demo.wall_s * demo.speed
    seqs = f"seq {c.first_seq}..{c.max_seq}" if c.max_seq >= c.first_seq else "none yet"
    codes = ", ".join(f"{k} {v}" for k, v in sorted(c.rejection_codes.items())) or "none"
    released = f"{c.released} ({c.released_good} good, {c.released_bad} bad"
    if c.streamed:
        released += f"; {c.streamed} of them after the first batch"
    open_now = f"; {len(hub.outstanding)} still in work" if hub.outstanding else ""
    lines = [
        f"linegate demo: summary after {demo.wall_s:.1f} s "
        f"({sim_s / 3600:.1f} h of line time at ×{demo.speed:g})",
        f"  orders released    {released})",
        f"  orders completed   {c.completed} of {c.released_good}, on time {c.on_time} "
        f"({on_time}) against ship-by{open_now}",
        f"  orders rejected    {c.rejected} ({codes})",
    ]
    if c.other_orders or demo.outside_orders:
        other_codes = ", ".join(f"{k} {v}" for k, v in sorted(c.other_rejection_codes.items()))
        lines.append(
            f"  other orders       {c.other_completed} completed, {c.other_accepted} accepted, "
            f"{c.other_rejected} rejected ({other_codes or 'none'}), {c.other_cancelled} "
            "cancelled: not the demo's (another hub's, or an earlier run's), not in its verdict"
        )
    lines += [
        f"  events published   {c.unique} ({seqs}), duplicates {c.duplicates}, seq gaps {c.gaps}",
        f"  defects            rework {c.rework}, scrap {c.scrap}",
        f"  materials          {c.shortages} shortages, {c.replenishments} replenishments",
        f"  planner            {_planner_text(demo)}",
        f"  operators          {sum(o.tasks_done for o in ops)} tasks, "
        f"{sum(o.actions for o in ops)} actions, {mistakes} mistakes, "
        f"{sum(o.refusals for o in ops)} refused "
        f"({sum(o.expected_refusals for o in ops)} of them mistakes), "
        f"{sum(o.device_timeouts for o in ops)} device actions redone",
        *demo.notices.summary(demo.gateway),
        f"  data               {demo.data_dir}",
    ]
    if demo.report is not None:
        lines.append(f"  shift report       {demo.report}")
    if demo.gateway.http_port is not None:
        lines.append(f"  station API        {demo.api_url}/api/stations (now stopped)")
    for problem in demo.problems:
        lines.append(f"  PROBLEM: {problem}")
    if demo.problems:
        lines.append("RESULT: FAILED")
    elif demo.interrupted and not demo.until_stopped:
        lines.append("RESULT: INTERRUPTED")
    else:
        lines.append("RESULT: OK")
    print("\n".join(lines), flush=True)


# -- helpers -----------------------------------------------------------------------------


async def _stop_operators(demo: Demo, tasks: list[asyncio.Task[None]]) -> None:
    for op in demo.operators:
        op.stop()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=5.0)
    for task in pending:
        await _cancel(task)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            demo.problems.append(_why_stopped(task.get_name(), task))
    tasks.clear()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _first(*aws: Coroutine[Any, Any, Any] | asyncio.Task[Any]) -> bool:
    """Wait for the first of ``aws``; True when it was the first one. The others (that
    are not tasks owned elsewhere) are cancelled."""
    tasks = [a if isinstance(a, asyncio.Task) else asyncio.create_task(a) for a in aws]
    owned = [t for t, a in zip(tasks, aws, strict=True) if not isinstance(a, asyncio.Task)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in owned:
            if not task.done():
                await _cancel(task)
    return tasks[0] in done


def _why_stopped(what: str, task: asyncio.Task[Any]) -> str:
    if task.cancelled():
        return f"{what} was cancelled"
    exc = task.exception()
    if isinstance(exc, OSError) and what == "the gateway":
        return f"the gateway cannot serve: {exc} (try --http-port 0 for a free port)"
    if exc is None:
        return f"{what} stopped"
    log.debug("%s failed", what, exc_info=exc)
    return f"{what} failed: {exc!r}"


def _client_host(host: str) -> str:
    # A wildcard listener is reached on the loopback address from this machine.
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
