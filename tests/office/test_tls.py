"""The office's HTTPS end (``[http] certfile``/``keyfile``), run from office.toml as
``linegate-office run`` runs it: the gateway's own HttpLink delivers over TLS when it
trusts the office's CA, and delivers nothing to an office whose certificate it cannot
verify."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_sync.http import HttpLink, HttpSettings, MemoryLinkState
from gateway.cli.lab_certs import LabCerts, make_lab_certs
from office.app import run_office
from office.config import ConfigError, load_config
from office.store import Store
from tests.cloud_sync.doubles import ListOutbox, ListSink
from tests.office.conftest import now
from tests.office.envelopes import GATEWAY

pytestmark = pytest.mark.timeout(60)

SITE, LINE = GATEWAY.split("/")
TOKEN = "t0ken-of-line3"


def _certs(folder: Path) -> LabCerts:
    # TLS checks validity against the real clock, not the test's: made for now.
    return make_lab_certs(
        folder, ["localhost"], [ipaddress.IPv4Address("127.0.0.1")], 30, datetime.now(UTC)
    )


def _config(folder: Path, certs: LabCerts) -> Path:
    (folder / "line3.token").write_text(TOKEN + "\n")
    path = folder / "office.toml"
    path.write_text(
        f'[http]\nhost = "127.0.0.1"\nport = 0\ncertfile = "{certs.server_cert}"\n'
        f'keyfile = "{certs.server_key}"\n\n'
        f'[[lines]]\ngateway_id = "{GATEWAY}"\ntoken_file = "line3.token"\n'
    )
    return path


async def _until(pred: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[tuple[str, LabCerts, str]]:
    certs = _certs(tmp_path / "certs")
    config = load_config(_config(tmp_path, certs))
    store_url = config.store_url(tmp_path / "data")
    (tmp_path / "data").mkdir()
    urls: list[str] = []
    secrets = config.read_secrets(tmp_path / "data")
    task = asyncio.create_task(run_office(config, secrets, now, urls.append))
    try:
        await _until(lambda: bool(urls) or task.done())
        if task.done():
            task.result()
        yield urls[0], certs, store_url
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _drain(url: str, ca_file: str, outbox: ListOutbox, within: float) -> HttpLink:
    """Run the link until the outbox is empty (within s); a negative within: expect it never
    to empty in that time."""
    settings = HttpSettings(
        base_url=url, site=SITE, line=LINE, token=TOKEN, ca_file=ca_file, timeout_s=5.0,
        poll_s=0.05, masterdata_poll_s=0.1, backoff_initial_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip
    link = HttpLink(settings, MemoryLinkState())
    task = asyncio.create_task(link.run(ListSink(), outbox))
    try:
        with pytest.raises(TimeoutError) if within < 0 else contextlib.nullcontext():
            await _until(lambda: not outbox.pending, abs(within))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return link


async def _seqs(store_url: str) -> list[int]:
    store = await Store.open(store_url, now)
    try:
        return await store.event_seqs(GATEWAY)
    finally:
        await store.close()


async def test_the_gateways_http_link_posts_over_https_with_the_ca_trusted(
    office: tuple[str, LabCerts, str],
) -> None:
    url, certs, store_url = office
    assert url.startswith("https://127.0.0.1:")
    outbox = ListOutbox()
    outbox.add(60)
    link = await _drain(url, str(certs.ca_cert), outbox, within=15.0)
    assert link.published == 60
    assert await _seqs(store_url) == list(range(1, 61))


async def test_an_office_whose_certificate_is_not_trusted_gets_nothing(
    office: tuple[str, LabCerts, str], tmp_path: Path
) -> None:
    url, _certs_used, store_url = office
    stranger = _certs(tmp_path / "another-ca")  # a CA the office's certificate is not from
    outbox = ListOutbox()
    outbox.add(5)
    link = await _drain(url, str(stranger.ca_cert), outbox, within=-1.5)  # never drains
    assert link.published == 0 and not link.connected
    assert len(outbox.pending) == 5
    assert await _seqs(store_url) == []


def test_certfile_without_keyfile_is_refused(tmp_path: Path) -> None:
    (tmp_path / "office.toml").write_text('[http]\ncertfile = "office.crt"\n')
    with pytest.raises(ConfigError, match="certfile and keyfile go together"):
        load_config(tmp_path / "office.toml")
    (tmp_path / "office.toml").write_text('[http]\ncertfile = "a.crt"\nkeyfile = "a.key"\n')
    with pytest.raises(ConfigError, match=r"cannot read the HTTPS certificate .*a\.crt"):
        load_config(tmp_path / "office.toml")
