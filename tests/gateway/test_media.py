"""The e-SOP's pictures (contract v1.1: an operation's ``media``): the gateway fetches each
file once from the hub, keeps it only when its bytes hash to the catalog's SHA-256, and
serves its own copy at ``/media/{sha256}``; the station screen links those copies.

Real parts: the line's store on a SQLite file (tests/gateway/conftest.py), the hub's files
served over HTTP on loopback by the demo's picture server (simulators/pictures.py), which
counts what it is asked for, and the station API served by uvicorn. Hashes expected are
computed here, with hashlib, from the bytes the hub serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import uvicorn

from gateway.config.line import HubSection
from gateway.floor.media import ClientFactory, MediaCache, MediaSettings, MediaState, hub_client
from gateway.orderbook.alarms import active
from gateway.web.media_routes import add_media_routes
from gateway.web.station_api import create_app
from simulators.orders import load_reference_catalog
from simulators.pictures import PictureServer, serve_pictures, with_pictures
from tests.conftest import free_port
from tests.gateway.conftest import ROOT, Line, order
from tests.gateway.floor_fixture import until

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    b'<rect width="10" height="10" fill="#118ab2"/></svg>\n'
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))  # the signature is what tells the type
PDF = b"%PDF-1.7\n% an e-SOP sheet\n"
FAST = MediaSettings(poll_s=0.02, retry_initial_s=0.05, retry_max_s=0.2, alarm_after=3)
SCHEMA: dict[str, Any] = json.loads(
    (ROOT / "cloud_sync" / "schemas" / "masterdata.schema.json").read_text()
)
# The reference routing the tests put pictures on, its first operation (at laser-1).
ROUTING, OP = "R-ENGRAVE", "engrave"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def catalog(version: str, *media: dict[str, Any], on: str = OP) -> dict[str, Any]:
    """The reference catalog under ``version`` with ``media`` on the operation ``on`` of
    R-ENGRAVE."""
    doc = load_reference_catalog()
    doc["version"] = version
    for routing in doc["routings"]:
        for op in routing["operations"]:
            if routing["routing"] == ROUTING and op["op"] == on:
                op["media"] = list(media)
    return doc


async def body_of(url: str) -> bytes:
    async with httpx.AsyncClient() as http:
        return (await http.get(url)).content


def entry(url: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"url": url, "sha256": sha(data), **extra}


@contextlib.asynccontextmanager
async def running(
    line: Line,
    folder: Path,
    settings: MediaSettings = FAST,
    client: ClientFactory | None = None,
) -> AsyncIterator[MediaCache]:
    cache = MediaCache(line.gateway.core, folder, settings=settings, client=client)
    task = asyncio.create_task(cache.run())
    try:
        yield cache
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def taken(cache: MediaCache, version: str) -> None:
    await until(f"catalog {version} looked at", lambda: cache.catalog_version == version)


async def settled(cache: MediaCache) -> None:
    """Until no file of the catalog is pending."""
    await until(
        "no file pending",
        lambda: all(s.state is not MediaState.PENDING for s in cache.statuses()),
    )


def alarms_of(line: Line, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in line.events(kind) if e["data"]["kind"] == "media"]


async def test_each_file_is_fetched_once_and_kept_under_its_hash(
    line: Line, tmp_path: Path
) -> None:
    async with serve_pictures({"a.svg": SVG, "b.png": PNG}) as hub:
        a, b = entry(hub.url("a.svg"), SVG, caption="A"), entry(hub.url("b.png"), PNG)
        line.send("in/masterdata/catalog", catalog("m-1", a, b))
        folder = tmp_path / "media"
        async with running(line, folder) as cache:
            await taken(cache, "m-1")
            await settled(cache)
            assert {s.sha256: s.state for s in cache.statuses()} == {
                sha(SVG): MediaState.FETCHED,
                sha(PNG): MediaState.FETCHED,
            }
            assert (folder / sha(SVG)).read_bytes() == SVG
            assert cache.path(sha(PNG)) == folder / sha(PNG)
            assert line.gateway.core.catalog.media_held == {sha(SVG), sha(PNG)}
            assert hub.requests == {"a.svg": 1, "b.png": 1}
            # A new catalog naming the same files (on two operations now): nothing fetched.
            both = catalog("m-2", a, b)
            for op in next(r for r in both["routings"] if r["routing"] == ROUTING)["operations"]:
                op["media"] = [a, b]
            line.send("in/masterdata/catalog", both)
            await taken(cache, "m-2")
            await asyncio.sleep(0.2)
            assert all(s.state is MediaState.FETCHED for s in cache.statuses())
            assert hub.requests == {"a.svg": 1, "b.png": 1}
        assert alarms_of(line, "alarm.raised") == []


async def test_a_file_whose_hash_differs_is_refused_with_an_alarm_until_the_catalog_fixes_it(
    line: Line, tmp_path: Path
) -> None:
    async with serve_pictures({"a.svg": SVG, "a2.svg": SVG}, tampered={"a.svg"}) as hub:
        served = await body_of(hub.url("a.svg"))  # what the hub really sends
        assert sha(served) != sha(SVG)
        line.send("in/masterdata/catalog", catalog("m-1", entry(hub.url("a.svg"), SVG)))
        async with running(line, tmp_path / "media") as cache:
            await taken(cache, "m-1")
            await settled(cache)
            status = cache.status(sha(SVG))
            assert status is not None and status.state is MediaState.FAILED
            assert cache.path(sha(SVG)) is None
            assert list((tmp_path / "media").iterdir()) == []  # not kept, not even in part
            assert sha(SVG) not in line.gateway.core.catalog.media_held
            (raised,) = alarms_of(line, "alarm.raised")
            assert raised["alarm_id"] == f"media:{sha(SVG)}"
            for named in (hub.url("a.svg"), sha(SVG), sha(served)):
                assert named in raised["message"]
            # Not tried again while the catalog stays: 1 for the test's look, 1 for the cache.
            await asyncio.sleep(0.3)
            assert hub.requests["a.svg"] == 2
            # The hub fixes the catalog: the same file at a URL that serves it right.
            line.send("in/masterdata/catalog", catalog("m-2", entry(hub.url("a2.svg"), SVG)))
            await taken(cache, "m-2")
            await settled(cache)
            status = cache.status(sha(SVG))
            assert status is not None and status.state is MediaState.FETCHED
            assert (tmp_path / "media" / sha(SVG)).read_bytes() == SVG
            (cleared,) = alarms_of(line, "alarm.cleared")
            assert cleared["alarm_id"] == raised["alarm_id"]
            assert active(line.gateway.core, raised["alarm_id"]) is None


async def test_an_alarm_for_a_hash_the_catalog_no_longer_names_is_cleared(
    line: Line, tmp_path: Path
) -> None:
    async with serve_pictures({"a.svg": SVG}, tampered={"a.svg"}) as hub:
        served = await body_of(hub.url("a.svg"))
        line.send("in/masterdata/catalog", catalog("m-1", entry(hub.url("a.svg"), SVG)))
        async with running(line, tmp_path / "media") as cache:
            await taken(cache, "m-1")
            await settled(cache)
            (raised,) = alarms_of(line, "alarm.raised")
            # The hub's fix is the other way round: the catalog now gives the file's hash.
            line.send("in/masterdata/catalog", catalog("m-2", entry(hub.url("a.svg"), served)))
            await taken(cache, "m-2")
            await settled(cache)
            assert cache.path(sha(served)) is not None
            assert active(line.gateway.core, raised["alarm_id"]) is None


async def test_an_unreachable_hub_is_tried_again_until_it_answers(
    line: Line, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/sop/a.svg"
    line.send("in/masterdata/catalog", catalog("m-1", entry(url, SVG)))
    async with running(line, tmp_path / "media") as cache:
        await until("three failed attempts", lambda: _attempts(cache, sha(SVG)) >= 3)
        status = cache.status(sha(SVG))
        assert status is not None and status.state is MediaState.PENDING
        assert status.why is not None and "Connect" in status.why
        # Attempts 3 (FAST.alarm_after) and on: an alarm says the file cannot be fetched.
        assert active(line.gateway.core, f"media:{sha(SVG)}") is not None
        async with serve_pictures({"a.svg": SVG}, port=port) as hub:
            await until("fetched", lambda: cache.path(sha(SVG)) is not None)
            assert hub.requests == {"a.svg": 1}
        status = cache.status(sha(SVG))
        assert status is not None and status.state is MediaState.FETCHED
        assert active(line.gateway.core, f"media:{sha(SVG)}") is None


def _attempts(cache: MediaCache, digest: str) -> int:
    status = cache.status(digest)
    return 0 if status is None else status.attempts


async def test_a_file_above_the_size_limit_is_refused(line: Line, tmp_path: Path) -> None:
    big = b"x" * 5000
    files = {"big.bin": big, "chunked.bin": big + b"y", "a.svg": SVG}
    settings = MediaSettings(max_bytes=4096, poll_s=0.02, retry_initial_s=0.05, retry_max_s=0.2)
    async with serve_pictures(files, streamed={"chunked.bin"}) as hub:
        media = [entry(hub.url(name), data) for name, data in files.items()]
        line.send("in/masterdata/catalog", catalog("m-1", *media))
        async with running(line, tmp_path / "media", settings) as cache:
            await taken(cache, "m-1")
            await settled(cache)
            states = {s.sha256: s.state for s in cache.statuses()}
            assert states == {
                sha(big): MediaState.FAILED,
                sha(big + b"y"): MediaState.FAILED,
                sha(SVG): MediaState.FETCHED,
            }
            assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [sha(SVG)]
            raised = {a["alarm_id"] for a in alarms_of(line, "alarm.raised")}
            assert raised == {f"media:{sha(big)}", f"media:{sha(big + b'y')}"}
            assert all("4096" in a["message"] for a in alarms_of(line, "alarm.raised"))


async def test_a_restart_keeps_what_was_fetched(line: Line, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    async with serve_pictures({"a.svg": SVG, "b.png": PNG}) as hub:
        line.send(
            "in/masterdata/catalog",
            catalog("m-1", entry(hub.url("a.svg"), SVG), entry(hub.url("b.png"), PNG)),
        )
        async with running(line, folder) as cache:
            await taken(cache, "m-1")
            await settled(cache)
        assert hub.requests == {"a.svg": 1, "b.png": 1}
        # Between the two runs: a power cut left b's file empty, and a download cut short.
        (folder / sha(PNG)).write_bytes(b"")
        (folder / f".{sha(SVG)[:12]}.abc.part").write_bytes(SVG[:5])
        line.gateway.core.catalog.media_held.clear()  # a new process knows nothing yet
        async with running(line, folder) as again:
            await taken(again, "m-1")
            await settled(again)
            assert again.path(sha(SVG)) is not None and again.path(sha(PNG)) is not None
        assert hub.requests == {"a.svg": 1, "b.png": 2}  # only the damaged one again
        assert sorted(p.name for p in folder.iterdir()) == sorted([sha(SVG), sha(PNG)])
        assert (folder / sha(PNG)).read_bytes() == PNG


# -- the station API -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def station_api(line: Line, cache: MediaCache) -> AsyncIterator[httpx.AsyncClient]:
    """The line's station API with the media routes, on a free loopback port; a client
    with no credential."""
    gw = line.gateway
    app = create_app(gw.stations, gw.health, gate=gw.gate, sign_ins=gw.sign_ins)
    add_media_routes(app, cache)
    with _socket() as sock:
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await until("the API serving", lambda: server.started)
            port = sock.getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                yield client
        finally:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)


@contextlib.contextmanager
def _socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def test_media_are_served_with_their_hash_as_etag_and_kept_a_year(
    line: Line, tmp_path: Path
) -> None:
    files = {"a.svg": SVG, "b.png": PNG, "c.pdf": PDF}
    async with serve_pictures(files) as hub:
        kinds = {"a.svg": "image", "b.png": "image", "c.pdf": "pdf"}
        media = [entry(hub.url(n), d, kind=kinds[n]) for n, d in files.items()]
        line.send("in/masterdata/catalog", catalog("m-1", *media))
        async with running(line, tmp_path / "media") as cache, station_api(line, cache) as api:
            await taken(cache, "m-1")
            await settled(cache)
            types = {"a.svg": "image/svg+xml", "b.png": "image/png", "c.pdf": "application/pdf"}
            for name, data in files.items():
                r = await api.get(f"/media/{sha(data)}")  # no credential: an <img> has none
                assert r.status_code == 200, r.text
                assert r.content == data
                assert r.headers["content-type"].split(";")[0] == types[name]
                assert r.headers["etag"] == f'"{sha(data)}"'
                assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
                head = await api.head(f"/media/{sha(data)}")
                assert head.status_code == 200 and head.content == b""
                assert head.headers["etag"] == f'"{sha(data)}"'
                again = await api.get(
                    f"/media/{sha(data)}", headers={"If-None-Match": f'"{sha(data)}"'}
                )
                assert again.status_code == 304 and again.content == b""
            # An SVG opened by itself runs nothing from the gateway's origin.
            r = await api.get(f"/media/{sha(SVG)}")
            assert "sandbox" in r.headers["content-security-policy"]
            for unknown in (sha(b"never sent"), "not-a-hash"):
                r = await api.get(f"/media/{unknown}")
                assert r.status_code == 404
                body = r.json()
                assert body["ok"] is False and body["code"] == "UNKNOWN_MEDIA"
                assert body["message_zh"] and body["next_zh"]


async def test_a_refused_file_is_not_served(line: Line, tmp_path: Path) -> None:
    async with serve_pictures({"a.svg": SVG}, tampered={"a.svg"}) as hub:
        line.send("in/masterdata/catalog", catalog("m-1", entry(hub.url("a.svg"), SVG)))
        async with running(line, tmp_path / "media") as cache, station_api(line, cache) as api:
            await taken(cache, "m-1")
            await settled(cache)
            assert (await api.get(f"/media/{sha(SVG)}")).status_code == 404


# -- the station screen --------------------------------------------------------------------


async def test_the_task_view_shows_the_pictures_and_the_steps_by_language(
    line: Line, tmp_path: Path
) -> None:
    async with serve_pictures({"a.svg": SVG}) as hub:
        shown = entry(hub.url("a.svg"), SVG, caption="Pen in the fixture", step=2)
        missing = entry(hub.url("gone.png"), PNG)  # the hub has no such file: pending
        doc = catalog("m-1", shown, missing)
        line.send("in/masterdata/catalog", doc)
        async with running(line, tmp_path / "media") as cache:
            await taken(cache, "m-1")
            await until("a.svg fetched", lambda: cache.path(sha(SVG)) is not None)
            line.send("in/orders", order("SO-M1", ("PEN-ENG", 1)))
            line.svc.login("laser-1", "OP-1002")
            line.svc.next_task("laser-1")
            task = line.svc.view("laser-1")["task"]
    assert task is not None and task["op"] == OP
    assert task["media"] == [
        {
            "sha256": sha(SVG),
            "kind": "image",
            "caption": "Pen in the fixture",
            "step": 2,
            "url": f"/media/{sha(SVG)}",
            "pending": False,
        },
        {
            "sha256": sha(PNG),
            "kind": "image",
            "caption": None,
            "step": None,
            "url": None,
            "pending": True,
        },
    ]
    (engrave,) = (
        op
        for r in doc["routings"]
        if r["routing"] == ROUTING
        for op in r["operations"]
        if op["op"] == OP
    )
    assert task["instructions_i18n"] == engrave["instructions_i18n"]
    assert task["instructions"] == engrave["instructions"]


# -- the demo hub's pictures ---------------------------------------------------------------


async def test_the_demo_hubs_pictures_are_named_right_and_all_fetched(
    line: Line, tmp_path: Path
) -> None:
    reference = load_reference_catalog()
    server = PictureServer()
    doc, files = with_pictures(reference, server.base_url)
    server.files.update(files)
    jsonschema.validate(doc, SCHEMA)
    assert doc["version"] != reference["version"]
    assert reference == load_reference_catalog()  # the argument is left as it was
    task = asyncio.create_task(server.serve())
    try:
        await until("pictures served", lambda: server.started)
        async with httpx.AsyncClient() as http:
            for routing in doc["routings"]:
                for op in routing["operations"]:
                    assert 1 <= len(op["media"]) <= 2, op["op"]
                    for m in op["media"]:
                        body = (await http.get(m["url"])).content
                        assert sha(body) == m["sha256"]
                        assert body.lstrip().startswith(b"<svg")
                        assert any("\u4e00" <= c <= "\u9fff" for c in m["caption"])
                        if "step" in m:
                            assert 1 <= m["step"] <= len(op["instructions"])
        line.send("in/masterdata/catalog", doc)
        async with running(line, tmp_path / "media") as cache:
            await taken(cache, doc["version"])
            await settled(cache)
            assert all(s.state is MediaState.FETCHED for s in cache.statuses())
            assert len(cache.statuses()) == len(files)
    finally:
        server.stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_picture_server_can_serve_a_file_that_breaks_its_hash() -> None:
    async with serve_pictures({"a.svg": SVG}, tampered={"a.svg"}) as hub:
        async with httpx.AsyncClient() as http:
            body = (await http.get(hub.url("a.svg"))).content
        assert body != SVG and sha(body) != sha(SVG)
        assert hub.requests == {"a.svg": 1}


async def test_the_hubs_token_goes_to_the_hub_only(line: Line, tmp_path: Path) -> None:
    async with (
        serve_pictures({"a.svg": SVG}) as hub,
        serve_pictures({"b.png": PNG}) as elsewhere,
    ):
        media = [entry(hub.url("a.svg"), SVG), entry(elsewhere.url("b.png"), PNG)]
        line.send("in/masterdata/catalog", catalog("m-1", *media))
        client = hub_client(HubSection(transport="http", url=hub.base_url), token="s3cret")
        async with running(line, tmp_path / "media", client=client) as cache:
            await taken(cache, "m-1")
            await settled(cache)
            assert all(s.state is MediaState.FETCHED for s in cache.statuses())
        assert hub.authorizations == ["Bearer s3cret"]
        assert elsewhere.authorizations == [None]


async def test_a_folder_that_cannot_be_used_is_an_alarm_not_a_stop(
    line: Line, tmp_path: Path
) -> None:
    taken_by_a_file = tmp_path / "media"
    taken_by_a_file.write_text("not a folder")
    cache = MediaCache(line.gateway.core, taken_by_a_file, settings=FAST)
    async with asyncio.timeout(10):
        await cache.run()  # returns: the gateway's other tasks go on
    alarm = active(line.gateway.core, "media:folder")
    assert alarm is not None and str(taken_by_a_file) in alarm.message
