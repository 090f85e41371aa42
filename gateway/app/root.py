"""The composition root: config → store → services → hub link and station API, one loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import socket
import sqlite3
import ssl
import time
from collections.abc import Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from prometheus_client import CollectorRegistry

from cloud_sync.http import HttpLink, HttpSettings
from cloud_sync.mqtt import MqttLink, MqttSettings
from cloud_sync.ports import InboundSink
from cloud_sync.ports import Outbox as OutboxPort
from gateway import __version__
from gateway.access.audit import publish_forever as publish_audit
from gateway.access.throttle import SignInThrottle
from gateway.alerts.service import Alerts
from gateway.app.health import Notifier, watchdog
from gateway.app.metrics import GatewayMetrics
from gateway.app.storage import StorageGuard
from gateway.clock import Clock, SystemClock, iso
from gateway.config.line import LineConfig
from gateway.config.secrets import read_secret
from gateway.config.tls import cert_path, key_path, server_context
from gateway.desk.service import StationService
from gateway.floor.floor import Floor
from gateway.floor.media import MediaCache, hub_client
from gateway.floor.supervisor import SupervisorPolicy
from gateway.i18n import Text, t
from gateway.numbers.analysis import why_late
from gateway.numbers.closing import Closing
from gateway.numbers.model import LateOrder, Words
from gateway.numbers.reports.maker import Reports
from gateway.numbers.retention import Retention
from gateway.orderbook import alarms
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.orderbook.inbound import Inbound
from gateway.orderbook.picking import ARRIVED
from gateway.planning.outlook import planned_output
from gateway.planning.picks import PickPlanner
from gateway.planning.planner import LinePlanner
from gateway.store.db import Store
from gateway.store.outbox import Outbox
from gateway.store.rows import Severity
from gateway.web.access_routes import SignIns
from gateway.web.gate import Gate
from gateway.web.limits import HEAD_TIMEOUT_S, KEEP_ALIVE_S, MAX_HEAD_BYTES
from gateway.web.live import Changes
from gateway.web.metrics_routes import ActionTimes
from gateway.web.protocol import StationHttp
from gateway.web.redirect import serve_redirects
from gateway.web.station_api import create_app

logger = logging.getLogger(__name__)

# An idle line's watchdog check really writes (a WAL frame and an fsync) once this often,
# not at every check (every 15 s under the unit's WatchdogSec=30): see health_problem.
HEALTH_WRITE_S = 300


class HubLink(Protocol):
    """What the gateway needs of a hub link (MQTT, or in memory for the demo)."""

    def run(self, sink: InboundSink, outbox: OutboxPort) -> Coroutine[Any, Any, None]: ...


def mqtt_link(
    config: LineConfig, clock: Clock, host: str | None = None, port: int | None = None
) -> MqttLink:
    """The MQTT hub link of ``config`` (``host``/``port`` override its url, without TLS).
    Raises SecretError when the password file cannot be read."""
    hub = config.hub
    password = None
    if hub.password_file is not None:
        password = read_secret(hub.password_file, "MQTT password", config.config_dir)
    settings = MqttSettings(
        host=host or hub.host,
        port=port or hub.port,
        site=config.line.site,
        line=config.line.line,
        client_id=config.mqtt_client_id,
        keepalive_s=hub.keepalive_s,
        version=__version__,
        events_per_message=100,
        tls=hub.tls and host is None,
        ca_file=hub.ca_file,
        cert_file=hub.cert_file,
        key_file=hub.key_file,
        verify=hub.verify,
        username=hub.username,
        password=password,
    )
    return MqttLink(settings, clock.now)


def http_link(config: LineConfig, store: Store, core: LineContext) -> HttpLink:
    """The HTTP hub link of ``config``: its cursor kept in the store, a refusal by the hub
    raised as an alarm. Raises SecretError when the token file cannot be read."""
    hub = config.hub
    token = None
    if hub.token_file is not None:
        token = read_secret(hub.token_file, "hub token", config.config_dir)
    settings = HttpSettings(
        base_url=hub.url,
        site=config.line.site,
        line=config.line.line,
        token=token,
        ca_file=hub.ca_file,
        cert_file=hub.cert_file,
        key_file=hub.key_file,
        verify=hub.verify,
        poll_s=hub.poll_s,
        masterdata_poll_s=hub.masterdata_poll_s,
        version=__version__,
    )
    return HttpLink(settings, _StoreState(store), _HubProblems(core))


class _StoreState:
    """The HTTP link's cursor in the store's settings (one small transaction per change)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: str) -> str | None:
        return self._store.get_setting(key)

    def set(self, key: str, value: str) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class _HubProblems:
    """A refusal by the hub as the alarm ``hub_refused:events`` (or ``:orders``), cleared
    once the hub takes them again."""

    def __init__(self, core: LineContext) -> None:
        self._core = core
        self._raised: set[str] = set()
        self._looked: set[str] = set()  # alarms a previous run may have left raised

    def __call__(self, what: str, problem: str | None) -> None:
        alarm_id = f"hub_refused:{what}"
        if what not in self._looked:
            self._looked.add(what)
            if alarms.active(self._core, alarm_id) is not None:
                self._raised.add(what)
        if problem is None and what not in self._raised:
            return
        with self._core.store.transaction():
            if problem is None:
                clear_alarm(self._core, alarm_id, f"the hub takes {what} again")
                self._raised.discard(what)
            else:
                message = self._message(problem)
                raise_alarm(self._core, alarm_id, "hub_refused", "hub", Severity.MAJOR, message)
                self._raised.add(what)

    @staticmethod
    def _message(problem: str) -> str | Text:
        """``problem`` as the link says it (cloud_sync/http.py), as a message the station
        API can say in Chinese where its words are known (the hub's reason stays as the hub
        gave it); otherwise as it is."""
        head, sep, why = problem.partition(": ")
        if sep and head == "the hub refused events":
            return t("the hub refused events: {why}", why=why)
        if sep and head == "the hub refused the orders request":
            return t("the hub refused the orders request: {why}", why=why)
        return problem


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the gateway owns SIGTERM and SIGINT), and with
    the gateway's TLS (``tls``), its handshake under a deadline."""

    def __init__(self, config: uvicorn.Config, tls: ssl.SSLContext | None) -> None:
        super().__init__(config)
        self._tls = tls

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own startup on the gateway's sockets, but for TLS: the gateway's own
        # context (TLS 1.2 at least; uvicorn's settings for it differ across versions),
        # and a deadline on the handshake. asyncio gives a handshake 60 s, so a client that
        # connects and never says hello would hold its connection twelve times as long as
        # one that never sends a request's head (gateway/web/protocol.py, whose clock
        # starts once the handshake is done); uvicorn passes no handshake timeout.
        config = self.config
        if self._tls is None or sockets is None:
            await super().startup(sockets)
            return
        await self.lifespan.startup()  # "off": nothing to start, kept for its state
        loop = asyncio.get_running_loop()

        def connection() -> asyncio.Protocol:
            return StationHttp(config, self.server_state, self.lifespan.state)

        self.servers = [
            await loop.create_server(
                connection,
                sock=sock,
                ssl=self._tls,
                backlog=config.backlog,
                ssl_handshake_timeout=HEAD_TIMEOUT_S,
            )
            for sock in sockets
        ]
        self.started = True


def _why_late(core: LineContext, late: LateOrder, until: datetime) -> list[Words]:
    return why_late(core, late, until=until)


class Gateway:
    """One line's gateway. ``run`` opens the store and serves until cancelled."""

    def __init__(
        self,
        config: LineConfig,
        *,
        data_dir: Path | None = None,
        clock: Clock | None = None,
        link: HubLink | None = None,
        http_port: int | None = None,
        device_policy: SupervisorPolicy | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        # systemd's notify socket (READY, WATCHDOG); a no-op unless the caller passes one.
        self.notifier = notifier or Notifier({})
        self.clock = clock or SystemClock()
        self.store = Store(config.store_path(data_dir))
        self.outbox = Outbox(self.store, config.gateway_id)
        self.core = LineContext(config, self.store, self.outbox, self.clock)
        self.storage = StorageGuard(self.core)
        self.inbound = Inbound(self.core, admit=self.storage.check_intake)
        self.stations = StationService(self.core)
        # Built now (no I/O), started in run(): the drivers connect in the background, so
        # a device that is away never delays the line's start.
        self.floor = Floor(self.core, self.stations, policy=device_policy or _device_policy(config))
        # The plan orders the stations' queues; without it (or until its first plan) the
        # dispatch rule does. The solver itself runs in a child process per replan.
        self.planner: LinePlanner | None = None
        if config.planner.enabled:
            self.planner = LinePlanner(self.core, config.planner)
            self.stations.sequencer = self.planner
        # Pick requests to the warehouse, from each plan the planner adopts ([picking]).
        self.picks: PickPlanner | None = None
        if self.planner is not None and config.picking.enabled:
            self.picks = PickPlanner(self.core, config.picking, self.planner)
            self.picks.follow(self.planner.replanner)
        self.link = link
        self._http_port = config.http.port if http_port is None else http_port
        self.health: dict[str, Any] = {"gateway_id": config.gateway_id, "version": __version__}
        # Who may use the station API, and the sign-in throttle (in memory: a restart
        # forgets it, see gateway/access/throttle.py).
        self.gate = Gate(self.core, tls=config.http.tls_enabled)
        self.sign_ins = SignIns(SignInThrottle(time.monotonic))
        # The e-SOP pictures of the catalog, fetched once from the hub and served to the
        # stations from the data folder.
        self.media = MediaCache(
            self.core, self.store.path.parent / "media", client=hub_client(config.hub)
        )
        # What changed, for the screens' live streams (gateway/web/live.py).
        self.changes = Changes()
        # A pick request that arrived is told by no event: its station's screen looks again.
        self.core.subscribe(ARRIVED, lambda data: self.changes.touch(str(data["station"])))
        # The numbers: each shift, day, week and month closed on the gateway's clock, its
        # kpi.snapshot and its report (gateway/numbers).
        self.closing = Closing(self.core, why_late=_why_late, plan_outlook=self._plan_outlook)
        # Its reports: made in a child process, kept under the data folder's reports/.
        self.reports = Reports(self.core, self.closing)
        self.closing.reports = self.reports
        # The raw history pruned past [retention] raw_days, the numbers kept.
        self.retention = Retention(self.core, self.closing)
        # Alarms that find a person: [alarms] rules, their channels, escalation.
        self.alerts = Alerts(self.core)
        # Its numbers for Prometheus (GET /metrics), read from all of the above at each
        # scrape; a registry of its own, not the process's global one.
        self.actions = ActionTimes()
        self.metrics = CollectorRegistry()
        self.metrics.register(GatewayMetrics(self))
        self.started = asyncio.Event()
        self._commits_seen = -1  # the store's commits at the last health check
        self.http_port: int | None = None
        self.redirect_port: int | None = None  # [http] redirect_port, once bound

    def open(self) -> None:
        """Open the store and load what lives in memory: seq, catalog, ledger."""
        self.store.open()
        self.outbox.load()
        version = self.store.get_setting("catalog_version")
        if version is not None:
            for doc in self.store.texts("SELECT doc FROM catalogs WHERE version = ?", (version,)):
                self.core.catalog.use_json(doc)
        self.core.reload_ledger()

    async def run(self) -> None:
        """Serve until cancelled. Raises TlsFileError (before anything opens) when the
        station API's certificate or key cannot serve, OSError when its port cannot be
        bound."""
        http = self.config.http
        tls = self._tls()
        self.open()
        sockets: list[socket.socket] = []
        try:
            sockets.append(self._bind(self._http_port))
            if tls is not None and http.redirect_port is not None:
                sockets.append(self._bind(http.redirect_port, "http.redirect_port"))
        except OSError:
            for bound in sockets:
                bound.close()
            self.store.close()
            raise
        sock = sockets[0]
        config = uvicorn.Config(
            create_app(
                self.stations,
                self.health,
                self.floor,
                self.planner,
                gate=self.gate,
                sign_ins=self.sign_ins,
                docs=http.api_docs,
                changes=self.changes,
                media=self.media,
                actions=self.actions,
                metrics=self.metrics,
            ),
            log_level="warning",
            lifespan="off",
            access_log=False,
            # A deadline on each request's head, which uvicorn has no setting for.
            http=StationHttp,
            timeout_keep_alive=KEEP_ALIVE_S,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        server = _Server(config, tls)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            self.http_port = sock.getsockname()[1]
            logger.info(
                "gateway %s: station API on %s://%s:%d/api/stations, store %s",
                self.config.gateway_id,
                "https" if tls is not None else "http",
                http.host,
                self.http_port,
                self.store.path,
            )
            if tls is None and not _loopback(http.host):
                logger.warning(
                    "the station API on %s answers plain HTTP: anyone on the network can "
                    "read and change what terminals send ([http.tls], README: Security)",
                    http.host,
                )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_fail_when_done(serving, "the station API stopped"))
                if len(sockets) > 1:
                    self.redirect_port = sockets[1].getsockname()[1]
                    tg.create_task(serve_redirects(sockets[1], self.http_port), name="redirect")
                if self.link is not None:
                    tg.create_task(self.link.run(self.inbound, self.outbox))
                tg.create_task(self.closing.run(), name="numbers")
                # Reports `linegate report` made: their report.published.
                tg.create_task(self.reports.publish_forever(), name="reports")
                tg.create_task(self.retention.run(), name="retention")
                tg.create_task(self.storage.watch(), name="storage")
                # Acknowledged events that no other transaction took along (a quiet line).
                tg.create_task(self.outbox.retire_forever(), name="outbox")
                # Audit records another process wrote (linegate users|tokens|terminals).
                tg.create_task(publish_audit(self.core), name="audit")
                tg.create_task(self.floor.run(), name="floor")
                tg.create_task(self.media.run(), name="media")
                tg.create_task(self.alerts.run(), name="alerts")
                if self.planner is not None:
                    tg.create_task(self.planner.run(), name="planner")
                if self.picks is not None:
                    tg.create_task(self.picks.run(), name="picks")
                while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                    await asyncio.sleep(0.01)
                self.started.set()
                self.notifier.send(
                    "READY=1",
                    f"STATUS=serving line {self.config.gateway_id} on port {self.http_port}",
                )
                tg.create_task(watchdog(self.notifier, self.health_problem), name="watchdog")
                # Everything built so far lives as long as the process: keep the collector
                # from rescanning it, or a full collection stalls every answer in flight.
                gc.freeze()
        finally:
            self.notifier.send("STOPPING=1")
            # The screens' streams end first: uvicorn would wait for them.
            self.changes.close()
            # Let uvicorn close its connections itself, then the store.
            server.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await serving
            for bound in sockets:
                bound.close()
            self.store.close()

    def health_problem(self) -> str | None:
        """What keeps the gateway from doing its job, or None: a write to the store must
        go through (the event loop runs, or this would not be called at all). Devices and
        the hub link are not asked: they degrade and recover by themselves.

        A transaction that committed since the last check is that write: a busy line's
        SD card gets no extra commit from the watchdog. An idle line's check writes
        ``health_at``, which changes once per HEALTH_WRITE_S: in between, SQLite writes
        nothing for a row written as it was (no WAL frame, no fsync), while taking the
        write lock and committing still prove, at every check, that nothing holds the
        store."""
        if self.store.commits != self._commits_seen:
            self._commits_seen = self.store.commits
            return None
        now = self.clock.now()
        at = datetime.fromtimestamp(now.timestamp() // HEALTH_WRITE_S * HEALTH_WRITE_S, now.tzinfo)
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT INTO settings (key, value) VALUES ('health_at', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (iso(at),),
                )
            self._commits_seen = self.store.commits  # this check's own write, not the next's
        except sqlite3.Error as exc:
            if "full" in str(exc):
                # A full disk: a restart would find it as full. Stay up, refuse what cannot
                # be saved, and let the disk alarm and the operators' screens say so.
                logger.error("the store cannot commit, the disk is full: %s", exc)
                return None
            return f"the store cannot commit: {exc}"
        return None

    def _plan_outlook(self, start: datetime, end: datetime) -> tuple[int, int, str] | None:
        if self.planner is None:
            return None
        return planned_output(self.core, self.planner, start, end)

    def _tls(self) -> ssl.SSLContext | None:
        """The station API's TLS context ([http.tls]), None without it; read here, at the
        start, so a certificate renewed on disk serves from the next restart."""
        tls = self.config.http.tls
        if tls is None:
            return None
        return server_context(
            cert_path(tls, self.config.config_dir), key_path(tls, self.config.config_dir)
        )

    def _bind(self, port: int, what: str = "") -> socket.socket:
        # Bind before serving so port 0 ("any free port") is known to the caller at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Accepted connections inherit this on Linux. Without it, a kept-alive
            # connection waits ~40 ms (Nagle against delayed ACK) for every answer written
            # in two parts.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.config.http.host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            if what:  # the caller's message names the station API's port, not this one
                raise OSError(exc.errno, f"{exc.strerror} ({what} {port})") from None
            raise
        return sock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may well resolve to the floor network


def _device_policy(config: LineConfig) -> SupervisorPolicy:
    p = config.policies
    return SupervisorPolicy(
        initial_s=p.device_retry_initial_s,
        max_s=p.device_retry_max_s,
        budget=p.device_restart_budget,
        window_s=p.device_restart_window_s,
    )


async def _fail_when_done(task: asyncio.Task[None], what: str) -> None:
    await asyncio.shield(task)
    raise RuntimeError(what)
