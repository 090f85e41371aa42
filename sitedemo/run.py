"""The site demo's run: broker, office, shop and lines up in that order (the office listens
before a line sends its first event), the running tally, then the stop and the verdict."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from office.app import run_office
from office.config import ConfigError, load_config
from office.store import Store
from simulators.orders import load_reference_catalog, load_reference_stock
from sitedemo.broker import Broker, BrokerError, free_port
from sitedemo.lines import LineProcess, LineSpec
from sitedemo.office_setup import LineEntry, OfficeSecrets, set_metrics_token, write_office_config
from sitedemo.shop import OfficeClock, ShopClock, SimulatedShop
from sitedemo.tally import SiteTally, read_tally
from sitedemo.verdict import judge

__all__ = ["EX_INTERRUPTED", "Site", "SiteOptions", "run_site"]

EX_INTERRUPTED = 130
SITE = "demo"
PROGRESS_EVERY_S = 3.0
LINE_START_TIMEOUT_S = 120.0  # a line's banner: its devices, gateway and accounts are up
ONLINE_TIMEOUT_S = 60.0
OFFICE_SUBSCRIBED_TIMEOUT_S = 15.0
CATCH_UP_TIMEOUT_S = 20.0  # after the lines stopped: the office holds their last events
STALL_S = 120.0  # a fixed run with orders open and no new event at the office this long


@dataclass(frozen=True)
class SiteOptions:
    lines: int = 2
    orders: int = 12
    pace_per_line_h: float = 20.0  # orders an hour of line time per line, after the batch
    exit_when_done: bool = False
    speed: float = 60.0
    http_port: int = 8470  # the office's; line i gets http_port + i (0: every port free)
    data_dir: Path | None = None
    seed: int = 7
    start: str | None = None
    no_devices: bool = False
    timeout_s: float = 900.0


@dataclass
class Site:
    """One run: its parts, what the shop sent, and what went wrong."""

    options: SiteOptions
    folder: Path
    broker: Broker
    lines: list[LineProcess] = field(default_factory=list)
    office_url: str | None = None
    office_secrets: OfficeSecrets | None = None
    store_path: Path | None = None
    shop: SimulatedShop | None = None
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False
    last_seqs: dict[str, int | None] = field(default_factory=dict)
    tally: SiteTally | None = None
    office_clock: OfficeClock | None = None

    @property
    def gateway_ids(self) -> list[str]:
        return [line.spec.gateway_id for line in self.lines]


def run_site(options: SiteOptions, on_start: Callable[[Site], None] | None = None) -> int:
    try:
        return asyncio.run(_main(options, on_start))
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl-C
        return EX_INTERRUPTED


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _main(options: SiteOptions, on_start: Callable[[Site], None] | None) -> int:
    folder = options.data_dir or Path(tempfile.mkdtemp(prefix="linegate-site-"))
    broker = Broker(folder / "broker", port=free_port())
    site = Site(options, folder, broker)
    for i in range(1, options.lines + 1):
        port = options.http_port + i if options.http_port else free_port()
        spec = LineSpec(
            site=SITE,
            line=f"line{i}",
            data_dir=folder / f"line{i}" / "data",
            http_port=port,
            broker=broker.url,
            speed=options.speed,
            seed=options.seed + i,
            start=options.start,
            no_devices=options.no_devices,
        )
        site.lines.append(LineProcess(spec))
    if on_start is not None:
        on_start(site)
    stop = asyncio.Event()
    _on_signals(stop)
    started = time.monotonic()
    office: asyncio.Task[None] | None = None
    store: Store | None = None
    try:
        try:
            await site.broker.start()
        except BrokerError as exc:
            print(f"linegate site demo: {exc}", flush=True)
            return 1
        office, store = await _start_office(site)
        if office is not None and store is not None:
            async with httpx.AsyncClient(timeout=30.0) as client:
                await _run(site, store, office, client, stop, started)
    finally:
        # In parallel: each line drains its outbox and writes its shift report as it stops.
        await asyncio.gather(*(line.stop() for line in site.lines), return_exceptions=True)
        if store is not None:
            with contextlib.suppress(Exception):
                await _verdict(site, store)
            await store.close()
        if office is not None:
            office.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await office
        await site.broker.stop()
    return _finish(site, started)


async def _start_office(site: Site) -> tuple[asyncio.Task[None] | None, Store | None]:
    options, folder = site.options, site.folder / "office"
    entries = [
        LineEntry(line.spec.gateway_id, f"http://127.0.0.1:{line.spec.http_port}/metrics")
        for line in site.lines
    ]
    office_port = options.http_port
    try:
        secrets_ = await asyncio.to_thread(
            write_office_config, folder, site.broker.url, office_port, entries
        )
        config = await asyncio.to_thread(load_config, secrets_.config)
        secrets = await asyncio.to_thread(config.read_secrets, folder)
    except (ConfigError, OSError) as exc:
        site.problems.append(f"the office's config: {exc}")
        return None, None
    site.office_secrets = secrets_
    site.store_path = folder / "office.sqlite3"
    listening = asyncio.Event()
    site.office_clock = OfficeClock(options.speed)

    def started(url: str) -> None:
        site.office_url = url
        listening.set()

    office = asyncio.create_task(
        run_office(config, secrets, site.office_clock, started=started),
        name="office",
    )
    waiter = asyncio.create_task(listening.wait())
    await asyncio.wait([office, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if office.done():
        site.problems.append(f"the office did not start: {_why(office)}")
        return None, None
    # Its subscriptions (events, shared; status): until then a line's first events would
    # pass by it, a gap no one can fill. Mosquitto counts no shared subscription on $SYS;
    # both go in one SUBSCRIBE, so the status one counted means both are in place.
    if not await site.broker.wait_subscriptions(1, OFFICE_SUBSCRIBED_TIMEOUT_S):
        site.problems.append("the office did not subscribe at the broker")
        return office, None
    store = await Store.open(secrets.store_url, _utc_now)
    return office, store


async def _run(
    site: Site,
    store: Store,
    office: asyncio.Task[None],
    client: httpx.AsyncClient,
    stop: asyncio.Event,
    started: float,
) -> None:
    options, url, secrets_ = site.options, site.office_url, site.office_secrets
    assert url is not None and secrets_ is not None
    catalog, stock = load_reference_catalog(), load_reference_stock()
    shop = SimulatedShop(client, url, secrets_.shop_token, catalog, stock, options.seed)
    site.shop = shop
    # The catalogs first: a line that starts finds its catalog retained, and the office
    # routes by them.
    for gateway_id in site.gateway_ids:
        await shop.put_catalog(gateway_id)
    print("linegate site demo: the shop gave the office each line's catalog", flush=True)
    print(f"linegate site demo: starting {len(site.lines)} lines (a minute on a small box)…")
    for line in site.lines:
        await line.start()
    if not await _lines_up(site, store, stop):
        return
    for line in site.lines:
        if line.viewer_token is not None:
            await asyncio.to_thread(
                set_metrics_token, site.folder / "office", line.spec.gateway_id, line.viewer_token
            )
    anchor = await store.line(site.gateway_ids[0])
    ts = (anchor.status or {}).get("ts") if anchor is not None else None
    clock = ShopClock(
        datetime.fromisoformat(ts) if isinstance(ts, str) else _utc_now(), options.speed
    )
    if site.office_clock is not None:
        site.office_clock.anchor(clock.now())
    _banner(site)
    await _feed_and_watch(site, store, office, shop, clock, stop, started)


async def _lines_up(site: Site, store: Store, stop: asyncio.Event) -> bool:
    """Every line printed its banner and the office heard it online."""
    deadline = time.monotonic() + LINE_START_TIMEOUT_S
    for line in site.lines:
        remaining = max(0.1, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await line.ready.wait()
        if stop.is_set():
            site.interrupted = True
            return False
        if not line.running or line.api_url is None:
            site.problems.append(
                f"{line.spec.gateway_id} did not start (see {line.log_path}): "
                + " | ".join(line.banner[-3:])
            )
            return False
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        tally = await read_tally(store, site.gateway_ids)
        if all(tally.line(g).state == "online" for g in site.gateway_ids):
            return True
        await asyncio.sleep(0.2)
    if stop.is_set():
        site.interrupted = True
    else:
        site.problems.append(f"the office did not hear every line online in {ONLINE_TIMEOUT_S:g} s")
    return False


async def _feed_and_watch(
    site: Site,
    store: Store,
    office: asyncio.Task[None],
    shop: SimulatedShop,
    clock: ShopClock,
    stop: asyncio.Event,
    started: float,
) -> None:
    options = site.options
    fixed = options.exit_when_done
    for order in shop.first_batch(options.orders, clock.now()):
        await _send(site, shop, order)
    stream: asyncio.Task[None] | None = None
    pace = options.pace_per_line_h * len(site.lines)
    if not fixed and pace > 0:
        stream = asyncio.create_task(_stream(site, shop, clock, pace), name="shop stream")
    last_line, last_events, last_change = 0.0, -1, time.monotonic()
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()
            now = time.monotonic()
            if stop.is_set():
                site.interrupted = True
                print("linegate site demo: stopping", flush=True)
                return
            if office.done():
                site.problems.append(f"the office stopped: {_why(office)}")
                return
            gone = [line for line in site.lines if not line.running]
            if gone:
                for line in gone:
                    site.problems.append(
                        f"{line.spec.gateway_id} stopped by itself (exit {line.returncode}; "
                        f"see {line.log_path})"
                    )
                return
            tally = await read_tally(store, site.gateway_ids)
            site.tally = tally
            events = sum(line.events for line in tally.lines.values())
            if events != last_events:
                last_events, last_change = events, now
            if now - last_line >= PROGRESS_EVERY_S:
                last_line = now
                _progress(site, tally, now - started)
            if not fixed:
                continue
            if _all_completed(site, tally):
                _progress(site, tally, now - started)
                return
            if now - last_change > STALL_S:
                site.problems.append(f"stuck: no new event at the office for {STALL_S:g} s")
                return
            if now - started > options.timeout_s:
                site.problems.append(f"not finished after {options.timeout_s:g} s")
                return
    finally:
        if stream is not None:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream


async def _send(site: Site, shop: SimulatedShop, order: Any) -> None:
    try:
        sent = await shop.send(order)
    except httpx.HTTPError as exc:
        site.problems.append(f"the shop could not send {order.order_id}: {exc!r}")
        return
    if sent.status != 200 or sent.line is None:
        problem = f"the office did not take {sent.order_id}: {sent.result} ({sent.reason})"
        site.problems.append(problem)
        print(f"linegate site demo: PROBLEM: {problem}", flush=True)


async def _stream(site: Site, shop: SimulatedShop, clock: ShopClock, pace_h: float) -> None:
    """Orders one at a time, about ``pace_h`` an hour of line time for the whole site."""
    arrivals = random.Random(site.options.seed)
    mean_s = 3600.0 / pace_h / site.options.speed
    while True:
        await asyncio.sleep(arrivals.uniform(0.5, 1.5) * mean_s)
        await _send(site, shop, shop.next_order(clock.now()))


def _all_completed(site: Site, tally: SiteTally) -> bool:
    shop = site.shop
    if shop is None or not shop.sent:
        return False
    return all(
        sent.line is not None and sent.order_id in tally.line(sent.line).completed
        for sent in shop.sent
    )


async def _verdict(site: Site, store: Store) -> None:
    """After the lines stopped: their last seqs, the office caught up, the judgement."""
    for line in site.lines:
        site.last_seqs[line.spec.gateway_id] = await asyncio.to_thread(line.last_seq)
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while True:
        tally = await read_tally(store, site.gateway_ids)
        caught_up = all(
            seq is None or tally.line(g).held_through >= seq for g, seq in site.last_seqs.items()
        )
        if caught_up or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    site.tally = tally
    fixed = site.options.exit_when_done and not site.interrupted and not site.problems
    sent = site.shop.sent if site.shop else []
    site.problems += judge(site.lines, sent, tally, site.last_seqs, fixed=fixed)


def _progress(site: Site, tally: SiteTally, elapsed: float) -> None:
    sent = len(site.shop.sent) if site.shop else 0
    parts = [
        f"{g}: routed {t.routed}, accepted {len(t.accepted)}, completed {len(t.completed)}, "
        f"events {t.events}"
        for g in site.gateway_ids
        for t in [tally.line(g)]
    ]
    print(f"[{elapsed:6.1f} s] shop sent {sent} | " + " | ".join(parts), flush=True)


def _banner(site: Site) -> None:
    url, secrets_ = site.office_url, site.office_secrets
    assert url is not None and secrets_ is not None
    options = site.options
    for line in site.lines:
        print(f"── line {line.spec.gateway_id} " + "─" * 40)
        # From its own banner on: the log lines before it are in the line's log file.
        shown = False
        for text in line.banner:
            shown = shown or text.startswith("linegate demo: line ")
            if shown and not text.startswith("linegate demo: running until"):
                print(f"  {text}")
    print("── the office " + "─" * 40)
    print(f"linegate site demo: {len(site.lines)} lines at ×{options.speed:g}, one office")
    print(f"  office       {url}   (store: {site.store_path})")
    print(f"  orders       {url}/orders    customer service: any order, on any line")
    print(f"  board        {url}/board     the site: every line's state, throughput, alarms")
    print(f"  reports      {url}/reports   the lines' reports and the site's")
    print(f"  accounts     (sign in at {url}/login; new passwords each run)")
    for user, (role, password) in secrets_.passwords.items():
        print(f"               {user} ({role}) {password}")
    print(f"  reader token {secrets_.reader_token}   (GET {url}/v1/lines, {url}/metrics)")
    print(f"  shop token   {secrets_.shop_token}   (POST {url}/v1/orders)")
    for line in site.lines:
        print(f"  {line.spec.gateway_id:<12} {line.api_url}/board   (log: {line.log_path})")
    print(f"  broker       {site.broker.url}")
    print(f"  config       {secrets_.config}")
    batch = f"{options.orders} orders now"
    if options.exit_when_done:
        print(f"  shop         {batch}; the demo exits when they are completed")
    else:
        pace = options.pace_per_line_h * len(site.lines)
        print(
            f"  shop         {batch}, then about {pace:g} an hour of line time "
            f"(--pace {options.pace_per_line_h:g} per line); Ctrl-C stops everything"
        )
    print(flush=True)


def _finish(site: Site, started: float) -> int:
    wall = time.monotonic() - started
    print(
        f"linegate site demo: summary after {wall:.1f} s "
        f"({wall * site.options.speed / 3600:.1f} h of line time at ×{site.options.speed:g})"
    )
    for line in site.lines:
        for text in line.summary:
            if text.startswith(("RESULT", "  PROBLEM")):
                print(f"  {line.spec.gateway_id:<12} line says {text.strip()}")
    if site.shop is not None:
        taken: dict[str, int] = {}
        for sent in site.shop.sent:
            if sent.line is not None:
                taken[sent.line] = taken.get(sent.line, 0) + 1
        by_line = ", ".join(f"{g} {n}" for g, n in sorted(taken.items()))
        print(f"  shop         sent {len(site.shop.sent)} orders, taken: {by_line or 'none'}")
    tally = site.tally
    if tally is not None:
        for g in site.gateway_ids:
            t = tally.line(g)
            last = site.last_seqs.get(g)
            print(f"  {t.text()}; the line's last seq {last if last is not None else '?'}")
    print(f"  data         {site.folder}")
    for problem in site.problems:
        print(f"  PROBLEM: {problem}")
    if site.problems:
        print("RESULT: FAILED", flush=True)
        return 1
    if site.interrupted and site.options.exit_when_done:
        print("RESULT: INTERRUPTED", flush=True)
        return EX_INTERRUPTED
    print("RESULT: OK", flush=True)
    return 0


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def handle() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # a second Ctrl-C: stop now (the finally still ends every part)
        stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, handle)


def _why(task: asyncio.Task[Any]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return repr(exc) if exc is not None else "it returned"
