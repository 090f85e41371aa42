"""Hostile clients against a real gateway process (issue 11): what a huge request body and
trickling connections cost the gateway, and the stations it serves meanwhile.

    .venv/bin/python benchmarks/bench_hostile_http.py bodies --mb 10,200
    .venv/bin/python benchmarks/bench_hostile_http.py slowloris --connections 300

``bodies``: for each size, a body is posted to ``/api/stations/st-1/login`` once with a
Content-Length and once chunked, as fast as the gateway takes it, while another station
signs in every 20 ms on its own kept-alive connection. Reported per post: the gateway's
peak resident memory before and after (VmHWM: a body held for an instant still shows),
the answer and how long it took, how much of the body the client got into the socket
before the gateway closed it, and the other station's answer times meanwhile (p50, worst).
``slowloris``: N connections at once, a third saying nothing, a third trickling a request
head and a third a body (a byte every 0.5 s), while the other station signs in every 20 ms;
reported: when the gateway closed them (first, last), its memory, and the other station's
answer times. Each scenario runs on a fresh gateway (its own line, no hub link). Every
request carries its station's paired terminal credential (``Authorization: Bearer lgc_…``),
the hostile ones st-1's: the worst case, a client the gate lets through.
``--gateway-root`` runs the gateway of another checkout (git archive COMMIT | tar -x -C DIR)
to compare before and after. Do not post 200 MB to a gateway without a body limit on a small
machine: it held 5.4 GB for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.load import load_line_config  # noqa: E402 - after the path
from gateway.percentiles import percentile  # noqa: E402 - after the path
from simulators.keys import LineKeys  # noqa: E402 - after the path
from tests.keys import issue_keys_in  # noqa: E402 - after the path

LOGIN = "/api/stations/st-1/login"
TRICKLE_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_line(tmp: Path) -> Path:
    cfg = tmp / "line"
    cfg.mkdir()
    (cfg / "line.toml").write_text(
        '[line]\nsite = "bench"\nline = "hostile"\n\n[hub]\ntransport = "none"\n\n'
        '[[operators]]\nbadge = "OP-0001"\nname = "op 1"\n\n'
        '[[operators]]\nbadge = "OP-0002"\nname = "op 2"\n'
    )
    for station in ("st-1", "st-2"):
        (cfg / f"{station}.toml").write_text(
            f'[station]\nid = "{station}"\ncapabilities = ["pack"]\n'
        )
    return cfg


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    keys: LineKeys

    def authorization(self, station: str) -> bytes:
        """The request head's line that names ``station``'s paired terminal."""
        return b"Authorization: Bearer %s\r\n" % self.keys.terminal(station).encode()

    def login_head(self) -> bytes:
        """The start of a request head to st-1's sign-in, with st-1's terminal credential."""
        return b"POST " + LOGIN.encode() + b" HTTP/1.1\r\nHost: gw\r\n" + self.authorization("st-1")

    def status_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {key}")

    def memory(self) -> dict[str, float]:
        return {
            "rss_mib": round(self.status_kib("VmRSS") / 1024, 1),
            "peak_rss_mib": round(self.status_kib("VmHWM") / 1024, 1),
        }


@contextmanager
def gateway(root: Path) -> Iterator[Gateway]:
    tmp = Path(tempfile.mkdtemp(prefix="lg-hostile-"))
    port = free_port()
    log = (tmp / "gateway.log").open("wb")
    cfg = write_line(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(cfg),
         "--data-dir", str(tmp), "--http-port", str(port)],
        cwd=root, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        for _ in range(400):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError("gateway did not start")
        # As an admin would: a terminal paired at each station (and a token per role), in
        # the database the gateway has made.
        keys = issue_keys_in(tmp / "linegate.db", load_line_config(cfg))
        # Every path warm (imports, first allocations): what grows after is the scenario's.
        url = f"http://127.0.0.1:{port}{LOGIN}"
        httpx.post(url, json={"badge": "OP-0001"}, auth=keys).raise_for_status()
        httpx.post(url, content=b"x" * 100_000, auth=keys)
        time.sleep(0.5)
        yield Gateway(proc, port, keys)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head.split()[1]), await reader.readexactly(length)


class OtherStation:
    """st-2's operator signing in every ``every_s`` on one kept-alive connection, from
    ``start()`` until ``stop()``: the time each answer took."""

    def __init__(self, gw: Gateway, every_s: float = 0.02) -> None:
        self.port, self.every_s = gw.port, every_s
        self.authorization = gw.authorization("st-2")
        self.took_ms: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, Any]:
        self._stop.set()
        assert self._task is not None
        await self._task
        took = self.took_ms
        return {
            "answers": len(took),
            "p50_ms": round(percentile(took, 50), 2),
            "worst_ms": round(max(took), 2),
        }

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        body = b'{"badge": "OP-0002"}'
        request = (
            b"POST /api/stations/st-2/login HTTP/1.1\r\nHost: gw\r\n%s"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (self.authorization, len(body), body)
        )
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                writer.write(request)
                status, answer = await read_answer(reader)
                self.took_ms.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    raise RuntimeError(f"st-2 login: {status} {answer!r}")
                await asyncio.sleep(self.every_s)
        finally:
            writer.close()


def post_body(gw: Gateway, size: int, chunked: bool) -> dict[str, Any]:
    """Send ``size`` bytes of body as fast as the gateway takes them, then read its answer.
    Blocking, in a thread: a socket closed by the gateway while the client still writes
    can still be read (asyncio's streams drop what was received on a failed write)."""
    # Valid JSON that is dear to parse: millions of short strings (one character would be
    # one shared object each).
    head, item, tail = b'{"badge": [', b'"ab",', b'"ab"]}'
    items = (size - len(head) - len(tail)) // len(item)
    size = len(head) + items * len(item) + len(tail)
    block = item * (2**20 // len(item))
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    sent = 0
    data = b""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=60) as sock:
        sock.sendall(
            gw.login_head() + b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n"
        )
        parts = [head, *[block] * (items * len(item) // len(block))]
        parts += [item * (items - (len(parts) - 1) * len(block) // len(item)), tail]
        try:
            for part in parts:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered already: the gateway reads no more
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                sent += len(part)
            if chunked and sent >= size:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the gateway closed: it will not read the rest
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and data.endswith(b"}"):
                    break
        except OSError:
            pass
    answered = time.perf_counter() - t0
    status = int(data.split()[1]) if data.startswith(b"HTTP/1.1") else None
    body = data.partition(b"\r\n\r\n")[2]
    return {
        "status": status,
        "code": json.loads(body).get("code") if body.startswith(b"{") else None,
        "answer_s": round(answered, 3),
        "sent_into_socket_mib": round(sent / 2**20, 2),
    }


async def bench_bodies(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for mb in args.mb:
        for chunked in (False, True):
            with gateway(args.gateway_root) as gw:
                before = gw.memory()
                other = OtherStation(gw)
                other.start()
                await asyncio.sleep(0.5)  # the other station's own pace first
                posted = await asyncio.to_thread(post_body, gw, mb * 10**6, chunked)
                await asyncio.sleep(0.5)
                station = await other.stop()
                after = gw.memory()
                results.append(
                    {
                        "body_mb": mb,
                        "framing": "chunked" if chunked else "content-length",
                        **posted,
                        "peak_rss_before_mib": before["peak_rss_mib"],
                        "peak_rss_after_mib": after["peak_rss_mib"],
                        "peak_rss_growth_mib": round(
                            after["peak_rss_mib"] - before["peak_rss_mib"], 1
                        ),
                        "other_station": station,
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr)
    return results


async def _hold(gw: Gateway, kind: str, cap_s: float) -> float:
    """One misbehaving connection; seconds until the gateway closed it (cap_s: it did not)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    t0 = time.perf_counter()
    trickle = b""
    start = gw.login_head()
    if kind == "head":
        trickle = start + b"Content-Length: 40\r\n\r\n"
    elif kind == "body":
        writer.write(start + b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n")
        trickle = b'{"badge": "OP-0001"}' + b" " * 20
    sent = 0
    try:
        while time.perf_counter() - t0 < cap_s:
            if sent < len(trickle):
                writer.write(trickle[sent : sent + 1])
                sent += 1
            try:
                async with asyncio.timeout(TRICKLE_S):
                    while await reader.read(4096):
                        pass  # an answer (408), then the close
                    return time.perf_counter() - t0
            except TimeoutError:
                pass
    except ConnectionError:
        return time.perf_counter() - t0
    finally:
        writer.close()
    return cap_s


async def bench_slowloris(args: argparse.Namespace) -> dict[str, Any]:
    with gateway(args.gateway_root) as gw:
        before = gw.memory()
        other = OtherStation(gw)
        other.start()
        await asyncio.sleep(0.5)
        kinds = ["silent", "head", "body"]
        t0 = time.perf_counter()
        held = await asyncio.gather(
            *(_hold(gw, kinds[i % 3], args.cap_s) for i in range(args.connections))
        )
        all_closed_s = time.perf_counter() - t0
        station = await other.stop()
        after = gw.memory()
        by_kind = {
            kind: {
                "first_closed_s": round(min(held[i::3]), 2),
                "last_closed_s": round(max(held[i::3]), 2),
                "still_open_at_cap": sum(h >= args.cap_s for h in held[i::3]),
            }
            for i, kind in enumerate(kinds)
        }
        return {
            "connections": args.connections,
            "trickle_every_s": TRICKLE_S,
            "cap_s": args.cap_s,
            "by_kind": by_kind,
            "all_closed_after_s": round(all_closed_s, 2),
            "peak_rss_before_mib": before["peak_rss_mib"],
            "peak_rss_after_mib": after["peak_rss_mib"],
            "other_station": station,
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("bodies")
    b.add_argument(
        "--mb",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 200],
        help="body sizes in MB (10**6 bytes), comma-separated",
    )
    s = sub.add_parser("slowloris")
    s.add_argument("--connections", type=int, default=300)
    s.add_argument(
        "--cap-s", type=float, default=60.0, help="give up on a connection after this long"
    )
    for sp in (b, s):
        sp.add_argument("--gateway-root", type=Path, default=ROOT)
    args = p.parse_args()
    result: Any = (
        asyncio.run(bench_bodies(args))
        if args.what == "bodies"
        else asyncio.run(bench_slowloris(args))
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
