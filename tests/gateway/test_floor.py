from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.gateway.floor_fixture import FloorRig, floor_rig


@pytest_asyncio.fixture
async def floor(tmp_path: Path) -> AsyncIterator[FloorRig]:
    t0 = time.monotonic()
    async with floor_rig(tmp_path) as rig:
        print("startup", time.monotonic() - t0)
        yield rig
        t1 = time.monotonic()
    print("teardown", time.monotonic() - t1)


async def test_smoke(floor: FloorRig) -> None:
    print(floor.gateway.floor.devices.snapshot()[0])
