"""The right parcel (issue 15): packing-material cost per order, the gateway's proposal
against one BOM container per unit (what the line did before contract 1.1 "Parcels"), and
what a proposal costs in time, on the reference catalog and the demo's order mix.

    .venv/bin/python benchmarks/bench_parcels.py
    .venv/bin/python benchmarks/bench_parcels.py --orders 5000 --seed 7 --json

The mix: ``--orders`` good orders of the demo's generator (simulators/orders.py, as the
demo's pace sample draws them: its SKU shares, lines per order, quantities; stock not
limiting). For each order:

- **BOM (today)**: every unit's BOM lines that name a container, at their
  ``standard_cost``; also how many units their BOM's container cannot hold by the
  catalog's own sizes (a tumbler or a gift set in a CARTON-S, a cap in a flat POLYBAG);
- **proposal**: the cheapest containers that hold every unit by size, kind and load
  (gateway/orderbook/parcels_fit.py ``choose``, the function the gateway runs when a parcel
  starts), and the time it takes per order, units built from the SKUs included (each
  order ``--repeat`` times: p50, p99, max of the least of its runs, by order size, and the
  most of any run, a garbage collection's pause included); plus orders of ``--large``
  units (every SKU in turn) for the bound.
- **at the station** (``--scans N``, default 30; 0 skips it): a gateway on the reference
  line (its store on a real SQLite file), N orders of the mix made through the station
  service, then each parcel started by scanning its first unit: that scan's answer time
  (the proposal made in its transaction) against the answer time of the parcel's other
  unit scans.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud_sync.contract import Catalog  # noqa: E402 - after the path
from gateway.orderbook import parcels  # noqa: E402 - after the path
from gateway.orderbook import parcels_fit as fit  # noqa: E402 - after the path
from gateway.percentiles import percentile  # noqa: E402 - after the path
from simulators.orders import generate_orders, load_reference_catalog  # noqa: E402

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
SIZES = ((1, "1 unit"), (2, "2 units"), (3, "3 units"), (6, "4-6 units"), (10**9, "7+ units"))


def _size(n: int) -> str:
    return next(name for top, name in SIZES if n <= top)


def run(args: argparse.Namespace) -> dict[str, Any]:
    raw = load_reference_catalog()
    catalog = Catalog.model_validate(raw)
    materials = {m.material: m for m in catalog.materials}
    boxes = parcels.catalog_containers(materials)
    by_material = {b.material: b for b in boxes}
    price = {m.material: float(m.standard_cost or 0.0) for m in catalog.materials}
    skus = {s.sku: s for s in catalog.skus}

    def unit_of(sku: str, key: str) -> fit.Unit:
        s = skus[sku]
        assert s.dims_mm is not None
        d = s.dims_mm
        return fit.Unit(
            key, (float(d[0]), float(d[1]), float(d[2])), float(s.unit_weight_g or 0), s.crushable
        )

    # A gateway runs warm: the first call's one-off costs (imports, caches) are not a parcel's.
    fit.choose(boxes, [unit_of(next(iter(skus)), "warm-up")])
    orders = [
        o
        for o in generate_orders(
            raw,
            {"items": []},
            count=args.orders,
            now=NOW,
            seed=args.seed,
            bad_rate=0.0,
            respect_stock=False,
        )
        if o.good and o.doc is not None
    ]
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    cost: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    times: dict[str, list[float]] = defaultdict(list)
    worst: dict[str, float] = defaultdict(float)
    bom_misfits = 0
    for o in orders:
        assert o.doc is not None
        lines = [(line["sku"], int(line["qty"])) for line in o.doc["lines"]]
        n = sum(q for _, q in lines)
        size = _size(n)
        bom = 0.0
        bom_boxes = 0
        # One container per unit as a packer would take it: the cheapest that holds it.
        single = sum(
            min(price[b.material] for b in boxes if fit.fits_alone(b, unit_of(sku, "u"))) * qty
            for sku, qty in lines
        )
        for sku, qty in lines:
            for b in skus[sku].bom:
                if b.material in by_material:
                    bom += price[b.material] * float(b.qty) * qty
                    bom_boxes += int(b.qty) * qty
                    if not fit.fits_alone(by_material[b.material], unit_of(sku, "u")):
                        bom_misfits += qty
        took = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            units = [
                unit_of(sku, f"{sku}#{i}-{k}") for i, (sku, q) in enumerate(lines) for k in range(q)
            ]
            chosen = fit.choose(boxes, units)
            took.append(time.perf_counter() - t0)
        # The least of the runs is the work; the most, with a garbage collection's pause
        # when one fell in it, is what an operator may meet once in a while.
        times[size].append(min(took))
        worst[size] = max(worst[size], max(took))
        assert not isinstance(chosen, fit.NoFit), o.order_id
        for key in (size, "all"):
            rows[key]["orders"] += 1
            rows[key]["units"] += n
            rows[key]["bom_containers"] += bom_boxes
            rows[key]["proposed_containers"] += len(chosen)
            cost[key]["bom"] += bom
            cost[key]["single"] += single
            cost[key]["proposal"] += sum(price[p.container.material] for p in chosen)
        for p in chosen:
            rows["materials"][p.container.material] += 1
    times["all"] = [x for k, v in times.items() for x in v]
    worst["all"] = max(worst.values())
    large = []
    names = sorted(skus)
    for r in range(args.large_runs):
        units = [unit_of(names[(i + r) % len(names)], f"L{i}") for i in range(args.large)]
        t0 = time.perf_counter()
        chosen = fit.choose(boxes, units)
        large.append(time.perf_counter() - t0)
        assert not isinstance(chosen, fit.NoFit)
    out: dict[str, Any] = {
        "orders": len(orders),
        "seed": args.seed,
        "units_bom_container_too_small": bom_misfits,
        "proposed_materials": dict(sorted(rows["materials"].items())),
        "by_size": {},
        "large": {
            "units": args.large,
            "runs": args.large_runs,
            "ms_p50": round(statistics.median(large) * 1000, 2),
            "ms_max": round(max(large) * 1000, 2),
        },
    }
    for key in [name for _, name in SIZES] + ["all"]:
        if not rows[key]["orders"]:
            continue
        k = rows[key]["orders"]
        t = times[key]
        out["by_size"][key] = {
            "orders": k,
            "units": rows[key]["units"],
            "bom_cost_per_order": round(cost[key]["bom"] / k, 4),
            "one_fitting_per_unit_cost_per_order": round(cost[key]["single"] / k, 4),
            "proposal_cost_per_order": round(cost[key]["proposal"] / k, 4),
            "saving_pct": round(100 * (1 - cost[key]["proposal"] / cost[key]["bom"]), 1),
            "saving_vs_one_fitting_pct": round(
                100 * (1 - cost[key]["proposal"] / cost[key]["single"]), 1
            ),
            "bom_containers_per_order": round(rows[key]["bom_containers"] / k, 3),
            "proposed_containers_per_order": round(rows[key]["proposed_containers"] / k, 3),
            "us_p50": round(percentile(t, 50) * 1e6, 1),
            "us_p99": round(percentile(t, 99) * 1e6, 1),
            "us_max": round(max(t) * 1e6, 1),
            "us_max_single_run": round(worst[key] * 1e6, 1),
        }
    if args.scans:
        out["station"] = at_the_station(args.scans, args.seed)
    return out


def at_the_station(n: int, seed: int) -> dict[str, Any]:
    """``n`` orders of the mix made on a gateway of the reference line, then packed: the
    answer time of each parcel's first unit scan (the proposal in its transaction) and of
    its other unit scans."""
    from gateway.app.root import Gateway
    from gateway.config.load import load_line_config
    from tests.clocks import line_clock
    from tests.gateway.conftest import REFERENCE_LINE, Line, catalog_bytes, do_unit_task, stock_doc

    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(load_line_config(REFERENCE_LINE), data_dir=Path(tmp), clock=line_clock())
        gw.open()
        try:
            ln = Line(gw)
            ln.send("in/masterdata/catalog", catalog_bytes())
            ln.send("in/masterdata/stock", stock_doc())
            raw = load_reference_catalog()
            made = generate_orders(
                raw, {"items": []}, count=n, now=NOW, seed=seed, bad_rate=0.0, respect_stock=False
            )
            for o in made:
                assert o.doc is not None
                o.doc["ship_by"] = "2030-01-01T10:00:00+08:00"
                ln.send("in/orders", o.doc)
            svc = ln.svc
            operators = {
                "dtg-1": "OP-1001",
                "emb-1": "OP-1003",
                "laser-1": "OP-1006",
                "qc-1": "OP-1005",
                "kit-1": "OP-1004",
                "pack-1": "OP-1008",
            }
            for station, badge in operators.items():
                svc.login(station, badge)
            for _ in range(10_000):
                busy = [st for st in operators if st != "pack-1" and svc.queue(st, 1)]
                if not busy:
                    break
                for st in busy:
                    do_unit_task(svc, st)
            first: list[float] = []
            rest: list[float] = []
            while svc.queue("pack-1", 1):
                svc.next_task("pack-1")
                task = svc.view("pack-1")["task"]
                assert task is not None
                for i, u in enumerate(task["units"]):
                    t0 = time.perf_counter()
                    svc.scan("pack-1", u["serial"])
                    (first if i == 0 else rest).append(time.perf_counter() - t0)
                task = svc.view("pack-1")["task"]
                for m in task["materials"]:
                    svc.scan("pack-1", m["suggested_lot"] or m["material"])
                reply = svc.weight("pack-1", task["expected_weight_g"])
                svc.scan("pack-1", reply.data["label_id"])
        finally:
            gw.store.close()

    def ms(xs: list[float]) -> dict[str, float]:
        return {
            "n": len(xs),
            "p50": round(percentile(xs, 50) * 1000, 2),
            "p99": round(percentile(xs, 99) * 1000, 2),
            "max": round(max(xs) * 1000, 2),
        }

    return {"first_unit_scan_ms": ms(first), "other_unit_scans_ms": ms(rest) if rest else None}


def table(out: dict[str, Any]) -> str:
    lines = [
        f"{out['orders']} orders of the demo's mix (seed {out['seed']}), reference catalog; "
        "cost in CNY per order",
        "",
        "| orders | n | BOM, one per unit (today) | one per unit that fits | proposal "
        "| saving vs BOM / vs one that fits | containers BOM → proposal "
        "| proposal time p50 / p99 / max | max of any run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in out["by_size"].items():
        lines.append(
            f"| {key} | {r['orders']} | {r['bom_cost_per_order']:.3f} | "
            f"{r['one_fitting_per_unit_cost_per_order']:.3f} | "
            f"{r['proposal_cost_per_order']:.3f} | {r['saving_pct']:+.1f} % / "
            f"{r['saving_vs_one_fitting_pct']:+.1f} % | "
            f"{r['bom_containers_per_order']:.2f} → {r['proposed_containers_per_order']:.2f} | "
            f"{r['us_p50']:.0f} / {r['us_p99']:.0f} / {r['us_max']:.0f} µs | "
            f"{r['us_max_single_run']:.0f} µs |"
        )
    big = out["large"]
    lines += [
        "",
        f"Units whose BOM container cannot hold them by the catalog's sizes: "
        f"{out['units_bom_container_too_small']}.",
        "Containers proposed: "
        + ", ".join(f"{m} {n}" for m, n in out["proposed_materials"].items())
        + ".",
        f"{big['units']}-unit orders ({big['runs']} runs): {big['ms_p50']} ms p50, "
        f"{big['ms_max']} ms max.",
    ]
    station = out.get("station")
    if station:
        f, r = station["first_unit_scan_ms"], station["other_unit_scans_ms"]
        lines.append(
            f"At the station (in-process, {f['n']} parcels): first unit scan (with the "
            f"proposal) {f['p50']} / {f['p99']} / {f['max']} ms p50 / p99 / max"
            + (f"; other unit scans {r['p50']} / {r['p99']} / {r['max']} ms." if r else ".")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--large", type=int, default=50, help="units of the large orders")
    parser.add_argument("--large-runs", type=int, default=20)
    parser.add_argument("--scans", type=int, default=30, help="orders packed at a station")
    parser.add_argument("--repeat", type=int, default=3, help="proposals timed per order")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = run(args)
    print(json.dumps(out, indent=2) if args.json else table(out))


if __name__ == "__main__":
    main()
