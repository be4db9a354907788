"""Benchmark: the loyalty-programme notebook's analyses on the 1M-customer sample.

Generates the seeded sample once (1,000,000 customers, ~300k members, ~3M points rows), builds the
DuckDB cache, then times every analysis notebook 05 runs (participation, scorecard, levels, points
flow, FIFO breakage with bootstrap, member effect with event study and weighted DiD, ROI, risk rules,
explorer inputs) — targets: under 60 s in total and under 4 GB peak. Baseline measured in the same run: a bare engine scan of the same
tables (per-month sums of points and of transactions), so the ratio says how much the analyses cost
over reading the data once.

Usage::

    python bench/bench_programme.py                    # 1,000,000 customers
    python bench/bench_programme.py --customers 200000 --dir /tmp/wb_bench_p

Times are wall-clock on whatever else the machine is running; the ratio to the bare scans, measured
in the same run, is the load-independent figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # ru_maxrss is KiB on Linux


def _timed(label: str, fn, results: dict[str, float]):
    t0 = time.perf_counter()
    out = fn()
    results[label] = time.perf_counter() - t0
    print(f"  {label:<26} {results[label]:7.2f} s   peak {_peak_gib():5.2f} GiB", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "wb_bench_programme")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", default="2026-10")
    ap.add_argument("--n-boot", type=int, default=500)
    args = ap.parse_args()

    data = args.dir / f"sample_{args.customers}"
    os.environ.setdefault("WORKBENCH_CACHE_DIR", str(args.dir / "cache"))
    if not (data / "TRUTH.json").exists():
        from workbench.sample import generate_sample

        t0 = time.perf_counter()
        generate_sample(data, customers=args.customers, seed=args.seed, lang="en", fmt="parquet", end=args.end)
        print(f"generated sample in {time.perf_counter() - t0:.1f} s", flush=True)
    from workbench import programme as prog
    from workbench.engine import open_dataset

    t0 = time.perf_counter()
    ds = open_dataset(data)
    ds.sql("SET enable_progress_bar = false")
    print(f"cache ready in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = ds.sql("SELECT (SELECT count(*) FROM points) AS points, (SELECT count(DISTINCT customer_id) FROM members) "
                  "AS members, (SELECT count(*) FROM transactions) AS tx")
    print(f"{args.customers:,} customers, {rows['members'][0]:,} members, {rows['points'][0]:,} points rows, "
          f"{rows['tx'][0]:,} transactions", flush=True)
    end = (dt.date(int(args.end[:4]), int(args.end[5:7]), 1) + dt.timedelta(days=32)).replace(day=1) \
        - dt.timedelta(days=1)
    cfg = prog.settings(ds)
    base: dict[str, float] = {}
    print("baseline (bare scans):")
    _timed("points by month", lambda: ds.sql("SELECT date_trunc('month', date) m, sum(points) FROM points GROUP BY 1"),
           base)
    _timed("transactions by month", lambda: ds.sql(
        "SELECT date_trunc('month', date) m, customer_id, count(*) FROM transactions GROUP BY 1, 2"), base)
    res: dict[str, float] = {}
    print("analyses:")
    _timed("participation", lambda: prog.participation(ds, end), res)
    _timed("scorecard", lambda: prog.scorecard(ds, end), res)
    _timed("levels", lambda: prog.levels(ds, end, thresholds=cfg.level_thresholds), res)
    flow = _timed("points flow", lambda: prog.points_flow(ds, end, point_value=cfg.point_value), res)
    _timed("breakage", lambda: prog.breakage(ds, end, cfg.expiry_months, cfg.point_value, n_boot=args.n_boot), res)
    effect = _timed("member effect", lambda: prog.member_effect(ds, end), res)
    _timed("roi", lambda: prog.roi(ds, effect, end, cfg.costs, cfg.point_value), res)
    _timed("risk flags", lambda: prog.risk_flags(ds, end, key="bench"), res)
    _timed("explorer inputs", lambda: prog.explorer(ds, flow, effect, end, cfg.point_value, cfg.costs), res)
    total, floor = sum(res.values()), sum(base.values())
    print(f"total {total:.1f} s (target < 60 s); {total / floor:.1f}x the bare scans ({floor:.1f} s); "
          f"peak {_peak_gib():.2f} GiB (target < 4 GiB)")
    print(f"member effect x{effect.effect:.3f} ({effect.ci[0]:.3f}-{effect.ci[1]:.3f}), planted 1.08; "
          f"naive revenue ratio {effect.naive_ratio:.2f}")
    return 0 if total < 60 and _peak_gib() < 4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
