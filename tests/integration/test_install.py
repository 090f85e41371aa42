"""systemd/install.sh in a staging root (LINEGATE_SYSTEM=no: no apt, no user, no
systemctl): a first install, then an upgrade that keeps the line's config and data and
switches the venv symlink in one step, keeping the previous venv for a rollback.

Each run really creates a virtualenv and pip-installs this tree into it (~20 s).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _install(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "LINEGATE_PREFIX": str(root / "opt"),
        "LINEGATE_ETC": str(root / "etc"),
        "LINEGATE_DATA": str(root / "data"),
        "LINEGATE_UNITS": str(root / "units"),
        "LINEGATE_SYSTEM": "no",
    }
    done = subprocess.run(
        [str(ROOT / "systemd" / "install.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_install_then_upgrade_in_place_keeps_config_and_data(tmp_path: Path) -> None:
    out = _install(tmp_path, "--bench")
    venv = tmp_path / "opt" / "venv"
    first = venv.resolve()
    assert venv.is_symlink() and first.name.startswith("venv-0.1.0-")
    check = subprocess.run(
        [str(venv / "bin" / "linegate"), "check-config", str(tmp_path / "etc")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and check.stdout.startswith("ok: hz01/line3")
    # --bench: the simulated devices' paths moved out of /tmp (the unit's /tmp is private).
    dtg = (tmp_path / "etc" / "pack-1.toml").read_text()
    assert "/run/linegate-sim/" in dtg and "/tmp/linegate-sim" not in dtg
    assert (tmp_path / "units" / "linegate.service").read_text().count("Type=notify") == 1
    assert (tmp_path / "units" / "linegate-simulate.service").exists()
    assert f"config {tmp_path / 'etc'} (from" in out

    # The line's own config and data, and an old venv nobody needs any more.
    line_toml = tmp_path / "etc" / "line.toml"
    line_toml.write_text(line_toml.read_text() + "\n# edited on site\n")
    (tmp_path / "data" / "linegate.db").write_bytes(b"the line's data")
    stale = tmp_path / "opt" / "venv-0.0.9-20250101000000-1"
    stale.mkdir()

    out = _install(tmp_path)
    second = venv.resolve()
    assert second != first and second.exists()
    assert first.exists()  # kept for a rollback
    assert not stale.exists()
    assert line_toml.read_text().endswith("# edited on site\n")
    assert (tmp_path / "data" / "linegate.db").read_bytes() == b"the line's data"
    assert f"config {tmp_path / 'etc'} kept" in out
    assert f"(was {first})" in out
