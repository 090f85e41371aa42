"""The ``linegate`` command's exits and messages, run as a real process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.load import load_line_config
from tests.gateway.conftest import catalog_bytes, order, stock_doc
from tests.integration.cli import linegate
from tests.integration.gateway_process import ROOT

REFERENCE = ROOT / "station_configs" / "reference-line"


def test_check_config_accepts_the_reference_line() -> None:
    out = linegate("check-config", str(REFERENCE))
    assert out.returncode == 0
    assert "hz01/line3, 9 stations" in out.stdout


def test_a_bad_config_exits_78_for_check_and_for_run(tmp_path: Path) -> None:
    bad = tmp_path / "line"
    shutil.copytree(REFERENCE, bad)
    text = (bad / "pack-1.toml").read_text()
    (bad / "pack-1.toml").write_text(text.replace("[station]", "[station]\nspeed = 3", 1))
    out = linegate("check-config", str(bad))
    assert out.returncode == 78
    assert "pack-1.toml: station.speed: unknown key" in out.stderr
    run = linegate("run", "--config", str(bad), "--data-dir", str(tmp_path / "d"))
    assert run.returncode == 78
    assert "station.speed" in run.stderr


def test_run_refuses_a_damaged_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "linegate.db").write_bytes(b"not a database" * 100)
    out = linegate("run", "--config", str(REFERENCE), "--data-dir", str(data))
    assert out.returncode == 70
    assert "refusing to start" in out.stderr
    assert (data / "linegate.db").read_bytes() == b"not a database" * 100  # left as it was


def _line_with_one_unit(data: Path, *, engraved_from: str | None = None) -> tuple[Path, str]:
    """A gateway's database with one order accepted and its unit's first task taken, made
    as the gateway makes it; with ``engraved_from`` (a lot), that task done from that lot.
    Returns the database and the unit's serial."""
    gw = Gateway(load_line_config(REFERENCE), data_dir=data)
    gw.open()
    try:
        for topic, payload in (
            ("in/masterdata/catalog", catalog_bytes()),
            ("in/masterdata/stock", json.dumps(stock_doc()).encode()),
            ("in/orders", json.dumps(order("SO-1", ("PEN-ENG", 1))).encode()),
        ):
            gw.inbound.deliver([InboundMessage(topic, payload)])
        gw.stations.login("laser-1", "OP-1006")
        gw.stations.next_task("laser-1")
        serial = str(gw.stations.view("laser-1")["task"]["serial"])
        if engraved_from is not None:
            assert gw.stations.scan("laser-1", serial).ok
            assert gw.stations.scan("laser-1", engraved_from).ok
            assert gw.stations.start("laser-1").ok
            assert gw.stations.complete("laser-1").ok
    finally:
        gw.store.close()
    return gw.store.path, serial


def test_trace_says_when_a_serial_is_unknown(tmp_path: Path) -> None:
    db, serial = _line_with_one_unit(tmp_path)
    known = linegate("trace", serial, "--db", str(db))
    assert known.returncode == 0, known.stderr
    assert f"unit {serial}" in known.stdout and "order SO-1" in known.stdout
    for extra in ((), ("--json",)):
        out = linegate("trace", "LINE3-404", "--db", str(db), *extra)
        # Not found: a non-zero exit a script can test, the reason on stderr, nothing on
        # stdout that could pass for a trace (no "null" for --json).
        assert out.returncode == 1
        assert f"no unit LINE3-404 in {db}" in out.stderr
        assert out.stdout == ""


def test_trace_explains_a_missing_database_and_a_missing_argument(tmp_path: Path) -> None:
    out = linegate("trace", "LINE3-404", "--db", str(tmp_path / "nothing.db"))
    assert out.returncode == 70 and "no database" in out.stderr
    out = linegate("trace", "--db", str(tmp_path / "nothing.db"))
    assert out.returncode == 2 and "SERIAL or --lot" in out.stderr


def test_run_says_so_when_the_station_api_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = linegate(
            "run",
            "--config",
            str(REFERENCE),
            "--data-dir",
            str(tmp_path),
            "--http-port",
            str(port),
            "--broker",
            "mqtt://127.0.0.1:1",
        )
    assert out.returncode == 75
    assert f"cannot serve the station API on 127.0.0.1:{port}" in out.stderr


# The reference stock's lots (simulators/data/reference-stock.json): the ink is only in
# stock; the brass is in stock and reserved for a pen once its order is accepted.
INK = "INK-DTG-CMYK-L2611A"
BRASS = "PEN-BRASS-L2611A"


def _line_with_a_lot_consumed(data: Path) -> tuple[Path, str]:
    """A gateway's database where one pen was engraved from the brass lot (consumed) and
    the ink lot is still untouched in stock; returns the database and the pen's serial."""
    return _line_with_one_unit(data, engraved_from=BRASS)


def test_trace_says_a_lot_is_unknown_and_names_it_in_another_case(tmp_path: Path) -> None:
    db, _ = _line_with_one_unit(tmp_path)
    for extra in ((), ("--json",)):
        out = linegate("trace", "--lot", "NOPE", "--db", str(db), *extra)
        # In a recall "not consumed" reads as "safe": a lot the line never heard of is a
        # non-zero exit and a reason, with nothing on stdout that could pass for a trace.
        assert out.returncode == 1
        assert f"no lot NOPE in {db}" in out.stderr
        assert "did you mean" not in out.stderr
        assert out.stdout == ""
    out = linegate("trace", "--lot", INK.lower(), "--db", str(db))
    assert out.returncode == 1
    assert f"no lot {INK.lower()} in {db}" in out.stderr
    assert f"did you mean {INK}?" in out.stderr
    assert out.stdout == ""


def test_trace_says_a_serial_is_unknown_and_names_it_in_another_case(tmp_path: Path) -> None:
    db, serial = _line_with_one_unit(tmp_path)
    out = linegate("trace", serial.lower(), "--db", str(db))
    assert out.returncode == 1
    assert f"no unit {serial.lower()} in {db}; did you mean {serial}?" in out.stderr
    assert out.stdout == ""


def test_trace_refuses_an_empty_or_blank_lot_or_serial(tmp_path: Path) -> None:
    db, _ = _line_with_one_unit(tmp_path)
    # A blank lot would otherwise match every use of a material that has no lots.
    for lot in ("", "   "):
        out = linegate("trace", "--lot", lot, "--db", str(db))
        assert out.returncode == 2
        assert out.stderr == "linegate trace: --lot cannot be empty or blank\n"
        assert out.stdout == ""
    out = linegate("trace", " ", "--db", str(db))
    assert out.returncode == 2
    assert out.stderr == "linegate trace: SERIAL cannot be empty or blank\n"


def test_trace_says_in_one_line_why_a_path_is_no_database_and_creates_nothing(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("lot INK-DTG-CMYK-L2611A: check the recall list\n")
    empty = tmp_path / "empty.db"
    empty.touch()
    missing = tmp_path / "typo" / "linegate.db"
    expected = {
        folder: f"linegate trace: {folder} is a folder, not a database file\n",
        text: f"linegate trace: {text} is not a database\n",
        empty: f"linegate trace: {empty} is not a database (it is empty)\n",
        missing: f"linegate trace: no database at {missing}\n",
    }
    before = sorted(tmp_path.rglob("*"))
    for path, message in expected.items():
        for what in (("--lot", INK), ("LINE3-00000001",)):
            out = linegate("trace", *what, "--db", str(path))
            assert out.returncode == 70, out.stderr
            assert out.stderr == message  # one line: no traceback
            assert out.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before
    assert text.read_text() == "lot INK-DTG-CMYK-L2611A: check the recall list\n"
    assert empty.read_bytes() == b""


def test_trace_names_the_database_in_a_folder_and_never_writes_beside_it(
    tmp_path: Path,
) -> None:
    db, _ = _line_with_one_unit(tmp_path / "data")
    out = linegate("trace", "--lot", INK, "--db", str(db.parent))
    assert out.returncode == 70
    assert out.stderr == (
        f"linegate trace: {db.parent} is a folder, not a database file; did you mean {db}?\n"
    )
    # Paths SQLite would read as a URI unless escaped: '?' starts its query (it would open,
    # and create, the file named before it), "%41" means "A" (another database).
    for odd in (tmp_path / "recall?2611", tmp_path / "recall%41", tmp_path / "recall#1"):
        odd.mkdir()
        shutil.copy(db, odd / "linegate.db")
        before = sorted(tmp_path.rglob("*"))
        out = linegate("trace", "--lot", INK, "--db", str(odd / "linegate.db"))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"lot {INK} ")
        # Nothing new but SQLite's own WAL index beside the database it read.
        new = set(tmp_path.rglob("*")) - set(before)
        assert {p.name for p in new} <= {"linegate.db-wal", "linegate.db-shm"}
        assert {p.parent for p in new} <= {odd}
    assert not (tmp_path / "recall").exists()
    assert not (tmp_path / "recallA").exists()


def test_trace_tells_a_known_unused_lot_from_a_consumed_one(tmp_path: Path) -> None:
    db, serial = _line_with_a_lot_consumed(tmp_path)
    # Known but not used: the genuinely "safe" answer, saying what it rests on.
    out = linegate("trace", "--lot", INK, "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"lot {INK} of INK-DTG-CMYK",
        "  known, not consumed on this line (known from: stock)",
        "  0 units, 0 orders",
    ]
    # The brass lot is consumed: traced as it always was.
    out = linegate("trace", "--lot", BRASS, "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    t = json.loads(out.stdout)
    assert (t["lot"], t["material"], t["units"]) == (BRASS, "PEN-BRASS", [serial])
    assert [(u["serial"], u["order_id"], u["op"], u["station"], u["qty"]) for u in t["uses"]] == [
        (serial, "SO-1", "engrave", "laser-1", 1)
    ]
    assert [(o["order_id"], o["status"]) for o in t["orders"]] == [("SO-1", "released")]


def test_trace_says_where_a_reserved_lot_is_known_from(tmp_path: Path) -> None:
    db, _ = _line_with_one_unit(tmp_path)  # the pen's engraving took the brass, not yet used
    out = linegate("trace", "--lot", BRASS, "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "  known, not consumed on this line (known from: stock, reservations)" in (
        out.stdout.splitlines()
    )
