"""The office's process: the store, the HTTP end and the MQTT end on one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette

from office.config import OfficeConfig, read_secret
from office.feed import Ledger, feed_routes
from office.feed.publish import Publisher, PublisherSettings
from office.receive.http import http_app
from office.receive.mqtt import MqttReceiver, MqttReceiverSettings
from office.report.gaps import GapWatch
from office.report.http import report_routes
from office.report.metrics import OfficeMetrics
from office.store import Store

__all__ = ["run_office", "serve_http"]

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # the caller owns signals
        yield


@contextlib.asynccontextmanager
async def serve_http(app: Starlette, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on host:port (0: a free port) in this loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # the server failed to start: say why
            await asyncio.sleep(0.01)
        yield f"http://{host}:{bound}"
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
    store_url: str,
    tokens: Mapping[str, str],
    now: Callable[[], datetime] = _utc_now,
    started: Callable[[str], None] | None = None,
    readers: Mapping[str, str] | None = None,
    shops: Mapping[str, str] | None = None,
) -> None:
    """Run until cancelled; ``started(url)`` is called once the HTTP end listens.

    The secrets are read before (``config.store_url()``, ``config.tokens()``,
    ``config.reader_tokens()``, ``config.shop_tokens()``): files are read off the loop."""
    store = await Store.open(store_url, now)
    settings = mqtt_settings(config)
    try:
        gaps = GapWatch(
            store,
            now,
            timedelta(seconds=config.gaps.report_after_s),
            config.gaps.check_every_s,
        )
        routes = report_routes(store, readers or {}, OfficeMetrics(store, now), gaps)
        ledger = Ledger(
            store, [line.gateway_id for line in config.lines], publish=settings is not None
        )
        routes += feed_routes(store, ledger, shops or {}, now, config.http.max_body_bytes)
        app = http_app(store, tokens, config.http.max_body_bytes, routes)
        async with (
            serve_http(app, config.http.host, config.http.port) as url,
            asyncio.TaskGroup() as tg,
        ):
            log.info("office listening on %s (store: %s)", url, store.dialect)
            tg.create_task(gaps.run(), name="office gaps")
            if settings is not None:
                tg.create_task(MqttReceiver(settings, store).run(), name="office mqtt")
                publisher = Publisher(_publisher_settings(settings), ledger, now)
                tg.create_task(publisher.run(), name="office feed publisher")
            if started is not None:
                started(url)
            await asyncio.Event().wait()  # until cancelled
    finally:
        await store.close()
