"""The hub link over TLS to a real Mosquitto: the hub's certificate verified against the
site's CA, a client certificate (mutual TLS), a username and a password read from a file
(a systemd credential), never logged; a hub it cannot trust, or that refuses it, gets no
events.
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import logging
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.mqtt import MqttLink, MqttSettings
from gateway.app.root import mqtt_link
from gateway.clock import SystemClock
from gateway.config.load import load_line_config
from gateway.config.secrets import SecretError
from tests.cloud_sync.certs import Pki, make_pki
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.conftest import Mosquitto, mosquitto_binary

PASSWORD = "pa55-w0rd-at-the-hub"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Any:
    binary = mosquitto_binary()
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "gw-line3", PASSWORD], check=True)
    listener = (
        f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        "require_certificate true\nuse_identity_as_username false\n"
        f"allow_anonymous false\npassword_file {passwd}\n"
        # Started as root, mosquitto would switch to its own user, who cannot read these.
        f"user {getpass.getuser()}\n"
    )
    broker = Mosquitto(binary, tmp_path, listener=listener)
    broker.start()
    yield broker
    broker.stop()


def _settings(broker: Mosquitto, pki: Pki, **overrides: Any) -> MqttSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "site": "hz01",
        "line": "line3",
        "client_id": "linegate-tls-test",
        "tls": True,
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
        "username": "gw-line3",
        "password": PASSWORD,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
    }
    values.update(overrides)
    return MqttSettings(**values)


@asynccontextmanager
async def _running(link: MqttLink, outbox: ListOutbox) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run(ListSink(), outbox))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(pred: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


def _now() -> datetime:
    return datetime.now(UTC)


async def test_mutual_tls_with_a_password_carries_the_events(
    tls_broker: Mosquitto, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outbox = ListOutbox()
    outbox.add(250, as_array=False)
    link = MqttLink(_settings(tls_broker, pki, events_per_message=100), _now)
    async with _running(link, outbox):
        await _until(lambda: not outbox.pending)
        assert link.connected
        outbox.add(3)  # live events over the same TLS session
        await _until(lambda: not outbox.pending)
    assert link.published == 253
    assert PASSWORD not in caplog.text
    # The settings' repr is what a log line or a traceback would show.
    assert PASSWORD not in repr(link._settings)


# paho 2.2 leaves the socket of a failed TLS handshake to the garbage collector (its
# _ssl_wrap_socket raises without closing it): the descriptor is closed at once by the
# refcount, with a ResourceWarning, which is all these would otherwise fail on.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"ca_file": None}, "the system's CAs do not know the site's CA"),
        ("other_ca", "a CA that did not sign the hub's certificate"),
        ({"password": "wrong"}, "a wrong password"),
        ({"cert_file": None, "key_file": None}, "no client certificate"),
    ],
)
async def test_a_hub_it_cannot_trust_or_that_refuses_it_gets_nothing(
    tls_broker: Mosquitto,
    pki: Pki,
    overrides: dict[str, Any] | str,
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    if overrides == "other_ca":
        overrides = {"ca_file": str(pki.other_ca)}
    assert isinstance(overrides, dict)
    outbox = ListOutbox()
    outbox.add(5)
    link = MqttLink(_settings(tls_broker, pki, **overrides), _now)
    async with _running(link, outbox):
        await asyncio.sleep(1.0)  # several attempts
        assert not link.connected, why
        assert sorted(outbox.pending) == [1, 2, 3, 4, 5], why
    assert "hub link down" in caplog.text
    assert PASSWORD not in caplog.text
    del link
    gc.collect()  # the failed handshakes' sockets go now, under this test's filter


async def test_verification_off_accepts_any_certificate(tls_broker: Mosquitto, pki: Pki) -> None:
    # A lab hub with a self-signed certificate: verify = false in [hub].
    outbox = ListOutbox()
    outbox.add(2)
    link = MqttLink(_settings(tls_broker, pki, ca_file=str(pki.other_ca), verify=False), _now)
    async with _running(link, outbox):
        await _until(lambda: not outbox.pending)


LINE = """\
[line]
site = "hz01"
line = "line3"

[hub]
url = "mqtts://127.0.0.1:{port}"
ca_file = "pki/hub-ca.pem"
cert_file = "pki/gateway.pem"
key_file = "pki/gateway.key"
username = "gw-line3"
password_file = "hub-password"
"""


async def test_the_gateway_reads_its_password_from_a_systemd_credential(
    tmp_path: Path, tls_broker: Mosquitto, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "line"
    folder.mkdir()
    (folder / "line.toml").write_text(LINE.format(port=tls_broker.port))
    (folder / "pack-1.toml").write_text('[station]\nid = "pack-1"\ncapabilities = ["pack"]\n')
    (folder / "pki").symlink_to(pki.ca.parent)
    config = load_line_config(folder)
    assert config.hub.tls and config.hub.ca_file == str(folder.resolve() / "pki/hub-ca.pem")
    # Not in the config folder: systemd's LoadCredential= put it in $CREDENTIALS_DIRECTORY.
    with pytest.raises(SecretError, match=r"cannot read the MQTT password from .*hub-password"):
        mqtt_link(config, SystemClock())
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "hub-password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    link = mqtt_link(config, SystemClock())
    outbox = ListOutbox()
    outbox.add(4)
    async with _running(link, outbox):
        await _until(lambda: not outbox.pending)
