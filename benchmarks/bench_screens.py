"""The screens' weight and speed: what a terminal downloads, and how soon it shows its
first view.

    .venv/bin/python benchmarks/bench_screens.py [--renders 20]

Sizes are of the files the gateway serves (raw and gzip -9, as a proxy would send them;
the gateway itself sends them raw). First render: a fresh browser context (nothing cached)
opens a paired terminal's page on the reference line's in-process gateway and waits until
the station's first live view is drawn (the operator's prompt on screen); Debian's
Chromium, headless, driven by Playwright.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.access import terminals  # noqa: E402
from tests.gateway.test_station_api import served_line  # noqa: E402
from tests.screens.conftest import _FLAGS, chromium  # noqa: E402

STATIC = ROOT / "gateway" / "web" / "static"
TERMINAL = ["linegate.js", "station.js", "linegate.css", "vendor/alpine-3.17.5.min.js"]


def sizes() -> None:
    total_raw = total_gz = 0
    print("terminal assets (bytes): raw / gzip")
    for name in TERMINAL:
        body = (STATIC / name).read_bytes()
        gz = len(gzip.compress(body, 9))
        total_raw += len(body)
        total_gz += gz
        print(f"  {name:32s} {len(body):7d} / {gz:6d}")
    print(f"  {'total':32s} {total_raw:7d} / {total_gz:6d}")


async def renders(n: int) -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        async with served_line(Path(tmp)) as (ln, gw):
            base = f"http://127.0.0.1:{gw.http_port}"
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=chromium(), args=_FLAGS)
                times = []
                for i in range(n + 1):
                    code = terminals.pair(gw.store, gw.config, "pack-1", ln.clock.now()).code
                    context = await browser.new_context(viewport={"width": 1024, "height": 600})
                    page = await context.new_page()
                    t0 = time.perf_counter()
                    await page.goto(f"{base}/station/pack-1?pair={code}")
                    await page.wait_for_selector("[data-test=next]:not(:empty)")
                    if i:  # the first warms the gateway's templates up
                        times.append((time.perf_counter() - t0) * 1000)
                    await context.close()
                await browser.close()
    times.sort()
    print(
        f"terminal first render, {n} fresh contexts (ms): p50 {statistics.median(times):.0f}, "
        f"max {times[-1]:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renders", type=int, default=20)
    args = parser.parse_args()
    sizes()
    asyncio.run(renders(args.renders))


if __name__ == "__main__":
    main()
