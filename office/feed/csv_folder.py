"""A watched folder of CSV exports (``[feed] csv_dir``): a file that appears there is
taken (each order as ``POST /v1/orders`` takes it) and moved to ``done/`` when every order
was taken, else to ``failed/`` beside ``NAME.reasons.txt`` saying which rows and why (the
good orders are taken either way: dropping the fixed file in again is idempotent).

A file is taken once it has stopped changing (the same size and time at two scans), so a
shop's sync tool or Excel still writing it is left alone; Excel's lock files (``~$...``)
and hidden files are ignored. Disk work runs on a worker thread, never on the loop. With
the store down a file stays where it is and is tried again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from office.feed.csv_orders import CsvError
from office.feed.ledger import Result
from office.feed.taking import Taker
from office.store import StoreUnavailable

__all__ = ["CsvFolder", "Handled"]

log = logging.getLogger(__name__)

_OK = {Result.TAKEN.value, Result.ALREADY_TAKEN.value}


@dataclass(frozen=True)
class Handled:
    name: str
    done: bool  # True: done/; False: failed/ with its reasons
    orders: int


class CsvFolder:
    def __init__(self, folder: Path, taker: Taker, shop: str, poll_s: float = 2.0) -> None:
        self._folder = folder
        self._taker = taker
        self._shop = shop
        self._poll_s = poll_s
        self._seen: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) last scan

    async def run(self) -> None:
        """Until cancelled."""
        await asyncio.to_thread(_make_dirs, self._folder)
        while True:
            try:
                await self.scan()
            except OSError as exc:
                log.warning("CSV folder %s: %s", self._folder, exc)
            await asyncio.sleep(self._poll_s)

    async def scan(self) -> list[Handled]:
        """Take the files that have settled since the last scan."""
        found = await asyncio.to_thread(_listing, self._folder)
        ready = [name for name, stat in found.items() if self._seen.get(name) == stat]
        self._seen = {name: stat for name, stat in found.items() if name not in ready}
        handled = []
        for name in sorted(ready):
            try:
                handled.append(await self._take(name))
            except StoreUnavailable as exc:
                log.warning("CSV %s waits, the store is unavailable: %s", name, exc)
                self._seen.pop(name, None)  # seen again next scan, then tried again
                break
        return handled

    async def _take(self, name: str) -> Handled:
        path = self._folder / name
        body = await asyncio.to_thread(path.read_bytes)
        try:
            answers = await self._taker.csv(self._shop, body, None)
        except CsvError as exc:
            await asyncio.to_thread(_move, path, "failed", f"{name}: {exc}\n")
            log.warning("CSV %s refused: %s", name, exc)
            return Handled(name, False, 0)
        bad = [a for a in answers if a["result"] not in _OK]
        if not bad:
            await asyncio.to_thread(_move, path, "done", None)
            log.info("CSV %s: %d orders taken", name, len(answers))
            return Handled(name, True, len(answers))
        text = "".join(_reason_line(a) for a in bad)
        await asyncio.to_thread(_move, path, "failed", text)
        log.warning("CSV %s: %d of %d orders not taken", name, len(bad), len(answers))
        return Handled(name, False, len(answers))


def _reason_line(answer: dict[str, Any]) -> str:
    rows = ", ".join(str(r) for r in answer.get("rows", []))
    return (
        f"rows {rows}: order {answer.get('order_id')}: {answer['result']}: "
        f"{answer.get('reason', '')}\n"
    )


def _make_dirs(folder: Path) -> None:
    for sub in ("done", "failed"):
        (folder / sub).mkdir(parents=True, exist_ok=True)


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith((".", "~$")) or not name.lower().endswith(".csv"):
            continue
        if entry.is_file():
            stat = entry.stat()
            found[name] = (stat.st_size, stat.st_mtime_ns)
    return found


def _move(path: Path, sub: str, reasons: str | None) -> None:
    target_dir = path.parent / sub
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    n = 1
    while target.exists():  # the same name again (a daily export): keep both
        target = target_dir / f"{path.stem}.{n}{path.suffix}"
        n += 1
    if reasons is not None:
        target.with_name(target.name + ".reasons.txt").write_text(reasons, encoding="utf-8")
    path.rename(target)
