"""The office's process: the store, the HTTP end and the MQTT end on one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import uvicorn
from starlette.applications import Starlette

from office.access import Gate, Principal, Role, User, access_routes
from office.answer.board import board_routes
from office.answer.board_setup import site_parts
from office.answer.board_views import project as project_board
from office.answer.orders_http import order_routes
from office.answer.orders_view import order_placed, project_orders
from office.answer.reports import reports_routes
from office.config import OfficeConfig, Secrets, read_secret
from office.feed import Ledger, feed_routes
from office.feed.csv_folder import CsvFolder
from office.feed.http import unroutable_routes
from office.feed.publish import Publisher, PublisherSettings
from office.feed.taking import Taker
from office.hooks import HookProjector, Sender, UnansweredWatch, hook_routes, hook_specs
from office.hooks.metrics import HookMetrics
from office.i18n import Catalog
from office.receive.http import http_app
from office.receive.mqtt import MqttReceiver, MqttReceiverSettings
from office.report.gaps import GapWatch
from office.report.http import report_routes
from office.report.metrics import OfficeMetrics
from office.store import Store
from office.web import Pages

__all__ = ["run_office", "serve_http"]

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # the caller owns signals
        yield


@contextlib.asynccontextmanager
async def serve_http(
    app: Starlette, host: str, port: int, tls: tuple[Path, Path] | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` on host:port (0: a free port) in this loop, over HTTPS when ``tls``
    (certificate, key) is given; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by each accepted connection: without it uvicorn's small answers wait on the
    # client's delayed ACK (Nagle), 40 ms per request on Linux loopback.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    certfile, keyfile = (str(tls[0]), str(tls[1])) if tls is not None else (None, None)
    server = _Server(
        uvicorn.Config(
            app, log_level="warning", lifespan="off", ssl_certfile=certfile, ssl_keyfile=keyfile
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # the server failed to start: say why
            await asyncio.sleep(0.01)
        yield f"{'https' if tls is not None else 'http'}://{host}:{bound}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        sock.close()


def mqtt_settings(config: OfficeConfig) -> MqttReceiverSettings | None:
    m = config.mqtt
    if m.url is None:
        return None
    parts = urlsplit(m.url)
    password = (
        read_secret(config.base_dir / m.password_file, "MQTT password")
        if m.password_file is not None
        else None
    )
    return MqttReceiverSettings(
        host=parts.hostname or "",
        port=parts.port or 1883,
        client_id=m.client_id,
        group=m.group,
        username=m.username,
        password=password,
    )


def _publisher_settings(receiver: MqttReceiverSettings) -> PublisherSettings:
    # Its own connection, its own client id: the receiver's persistent session is its own.
    return PublisherSettings(
        host=receiver.host,
        port=receiver.port,
        client_id=f"{receiver.client_id}-feed",
        username=receiver.username,
        password=receiver.password,
    )


async def run_office(
    config: OfficeConfig,
    secrets: Secrets,
    now: Callable[[], datetime] = _utc_now,
    started: Callable[[str], None] | None = None,
) -> None:
    """Run until cancelled; ``started(url)`` is called once the HTTP end listens.
    ``secrets``: ``config.read_secrets(data_dir)``, read before (off the loop)."""
    hooks = hook_specs(config.webhooks, secrets.hooks)
    hook_projector = HookProjector(hooks, now)
    store = await Store.open(
        secrets.store_url, now, projectors=[project_board, project_orders, hook_projector]
    )
    store.after_commit.append(hook_projector.committed)
    settings = mqtt_settings(config)
    try:
        gaps = GapWatch(
            store,
            now,
            timedelta(seconds=config.gaps.report_after_s),
            config.gaps.check_every_s,
        )
        roles = {reader.name: Role(reader.role) for reader in config.readers}
        principals = {
            token: Principal(name, roles.get(name, Role.READER))
            for token, name in secrets.readers.items()
        }
        principals |= {token: Principal(name, Role.SHOP) for token, name in secrets.shops.items()}
        principals |= {token: Principal(name, Role.WMS) for token, name in secrets.wms.items()}
        gate = Gate(store, principals, now)
        pages = Pages(Catalog(), zone=ZoneInfo(config.site.timezone))
        people = {name: User(name, Role(role), phc) for name, (role, phc) in secrets.users.items()}
        tls = config.tls_files()
        routes = access_routes(store, gate, pages, people, now, secure_cookie=tls is not None)
        sender = Sender(store, hooks, now, hook_projector.wake)
        hook_metrics = HookMetrics(store, [h.name for h in hooks], sender.tally, now)
        routes += report_routes(store, gate, OfficeMetrics(store, now, hook_metrics), gaps)
        ledger = Ledger(
            store,
            [line.gateway_id for line in config.lines],
            publish=settings is not None,
            placed=[order_placed],
        )
        routes += feed_routes(store, ledger, secrets.shops, now, config.http.max_body_bytes)
        routes += unroutable_routes(ledger, gate)  # before order_routes' /v1/orders/{id}
        lines = [line.gateway_id for line in config.lines]
        routes += hook_routes(
            store, gate, lines, now, settings is not None, config.http.max_body_bytes
        )
        unanswered = UnansweredWatch(
            store,
            hooks,
            now,
            config.feed.answer_within_s,
            config.feed.unanswered_check_s,
            hook_projector.wake,
        )
        site = await site_parts(store, config, now)
        routes += board_routes(site.board, gate, pages) + reports_routes(site.reports, gate, pages)
        routes += order_routes(store, gate, pages, config.site.timezone)
        app = http_app(store, secrets.lines, config.http.max_body_bytes, routes)
        async with (
            serve_http(app, config.http.host, config.http.port, tls) as url,
            asyncio.TaskGroup() as tg,
        ):
            log.info("office listening on %s (store: %s)", url, store.dialect)
            tg.create_task(gaps.run(), name="office gaps")
            feed = config.feed
            if feed.csv_dir is not None:
                taker = Taker(store, ledger, now, "csv")
                folder = CsvFolder(
                    config.base_dir / feed.csv_dir, taker, feed.csv_shop, feed.csv_poll_s
                )
                tg.create_task(folder.run(), name="office CSV folder")
            tg.create_task(sender.run(), name="office webhooks")
            tg.create_task(unanswered.run(), name="office unanswered orders")
            tg.create_task(site.scraper.run(), name="office board scraper")
            if settings is not None:
                tg.create_task(MqttReceiver(settings, store).run(), name="office mqtt")
                publisher = Publisher(_publisher_settings(settings), ledger, now)
                tg.create_task(publisher.run(), name="office feed publisher")
            if started is not None:
                started(url)
            await asyncio.Event().wait()  # until cancelled
    finally:
        await store.close()
