"""The real ``linegate`` command, run as a subprocess from the repository's root."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.gateway_process import ROOT


def linegate(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``linegate ARGS``; stdin is a pipe (not a terminal), so a command that asks for a
    secret reads it from ``stdin``; ``env`` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
