"""Benchmark: depth and cross-sell (workbench/crosssell.py) on the 1M-customer sample (~10M transactions).

Generates the seeded sample once (1,000,000 customers, ~11M transaction rows) under ``--dir``, builds
the DuckDB cache, then times what notebook 06's cross-sell sections run: depth per quarter, association
rules, first → second category, and next-best-category recommendations (holdout evaluation against the
popularity baseline, plus the customer list when the model wins). Target (issue 16): together with
segmentation within 90 s and 4 GB; this script prints its own share. Baseline measured in the same run:
a bare engine scan of the transactions (distinct categories per customer), so the ratio says how much
the analyses cost over reading the data once.

Usage::

    python bench/bench_crosssell.py                      # 1,000,000 customers
    python bench/bench_crosssell.py --customers 200000 --dir /tmp/xsell
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # ru_maxrss is KiB on Linux


def _timed(label: str, fn, results: dict[str, float]):
    t0 = time.perf_counter()
    out = fn()
    results[label] = time.perf_counter() - t0
    print(f"  {label:<28} {results[label]:7.2f} s   peak {_peak_gib():5.2f} GiB", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/xsell"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", default="2026-10")
    ap.add_argument("--budget", type=float, default=45.0, help="seconds allowed for cross-sell (half of the 90 s)")
    args = ap.parse_args()

    data = args.dir / f"sample_{args.customers}"
    os.environ.setdefault("WORKBENCH_CACHE_DIR", str(args.dir / "cache"))
    if not (data / "TRUTH.json").exists():  # in a child process, so the peak below is the analyses' own
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; from workbench.sample import generate_sample; "
                        "generate_sample(sys.argv[1], customers=int(sys.argv[2]), seed=int(sys.argv[3]), "
                        "lang='en', fmt='parquet', end=sys.argv[4])", str(data), str(args.customers), str(args.seed),
                        args.end], check=True)
        print(f"generated sample in {time.perf_counter() - t0:.1f} s", flush=True)
    # the cache build (loading and validation; bench_load's subject) in a child too: a no-op once built
    subprocess.run([sys.executable, "-c", "import sys; from workbench.engine import open_dataset; "
                    "open_dataset(sys.argv[1])", str(data)], check=True)
    from workbench import crosssell as X
    from workbench.engine import open_dataset

    t0 = time.perf_counter()
    ds = open_dataset(data)
    print(f"cache ready in {time.perf_counter() - t0:.1f} s", flush=True)
    tx = int(ds.sql("SELECT count(*) FROM transactions").iloc[0, 0])
    print(f"{args.customers:,} customers, {tx:,} transactions", flush=True)
    end = (dt.date(int(args.end[:4]), int(args.end[5:7]), 1) + dt.timedelta(days=32)).replace(day=1) \
        - dt.timedelta(days=1)
    base: dict[str, float] = {}
    print("baseline (bare scan):")
    _timed("categories per customer", lambda: ds.sql(
        "SELECT customer_id, count(DISTINCT product_category) FROM transactions GROUP BY 1"), base)
    res: dict[str, float] = {}
    print("analyses:")
    _timed("depth (quarters)", lambda: X.depth(ds, end), res)
    rules = _timed("association rules", lambda: X.rules(ds, end), res)
    seq = _timed("first -> second category", lambda: X.sequence(ds, end), res)
    rec = _timed("recommendations (+ list)", lambda: X.recommend(ds, end), res)
    total, floor = sum(res.values()), sum(base.values())
    print(f"total {total:.1f} s (budget {args.budget:.0f} s of the 90 s shared with segmentation); "
          f"{total / floor:.1f}x the bare scan ({floor:.2f} s); peak {_peak_gib():.2f} GiB (target < 4 GiB)")
    if not seq.skipped:
        top = seq.transitions[seq.transitions["q"] < 0.05].iloc[0]
        print(f"top sequence {top['first']} -> {top['second']} lift {top['lift']:.2f}; "
              f"top rule {rules.rules.iloc[0]['antecedent']} -> {rules.rules.iloc[0]['consequent']} "
              f"lift {rules.rules.iloc[0]['lift']:.2f}")
    if not rec.skipped:
        print(f"hit@3 model {rec.rate_model:.3f} vs popularity {rec.rate_pop:.3f} "
              f"(diff {rec.diff_ci[0]:+.4f}..{rec.diff_ci[1]:+.4f}, n={rec.n_eval:,}); beats: {rec.beats}")
    return 0 if total < args.budget and _peak_gib() < 4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
