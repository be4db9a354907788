"""Benchmark: segments, look-alikes and up-sell at 1,000,000 customers (~10M transactions).

Generates the seeded sample once (1,000,000 customers with planted trait segments, ~10.8M transaction
rows, a prospects table), builds the DuckDB cache (neither timed), then times in one run:

* **bare scan** (baseline) — the least a per-customer analysis needs: one DuckDB group-by of the
  transactions per customer (sum of amount, count) joined to the customers' traits, fetched to pandas;
* **segments** — :func:`workbench.segments.segment_base`: the per-customer frame (traits, window
  behaviour, first purchase), the mixed-data coding, k chosen on a seeded sample (silhouette and
  bootstrap stability for every k in the range) and the assignment of **all** customers;
* **look-alikes** — the time-split model, holdout AUC with its bootstrap interval, deciles, scores for
  recent customers and prospects;
* **up-sell** — peer gaps for every active ordinary customer;
* **cross-sell** — :func:`workbench.crosssell.rules` and :func:`~workbench.crosssell.recommend` (issue 16 item 3;
  the 90 s target covers segments and cross-sell together).

Prints each step's time and the process's peak memory, the total against the target (90 s, 4 GiB,
segments and cross-sell together) and the ratio to the bare scan measured in the same run; the
adjusted Rand index of the segments against the planted ones is printed as a sanity check.

Usage::

    python bench/bench_segments.py                    # 1,000,000 customers
    python bench/bench_segments.py --customers 200000 --dir /tmp/wb_bench_s
"""

from __future__ import annotations

import argparse
import json
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
    print(f"  {label:<28} {results[label]:7.2f} s   peak {_peak_gib():5.2f} GiB", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "wb_bench_segments")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", default="2026-10")
    ap.add_argument("--n-boot", type=int, default=10)
    ap.add_argument("--sample-size", type=int, default=5000)
    args = ap.parse_args()

    data = args.dir / f"sample_{args.customers}"
    os.environ.setdefault("WORKBENCH_CACHE_DIR", str(args.dir / "cache"))
    if not (data / "TRUTH.json").exists() or not (data / "prospects.parquet").exists():
        from workbench.sample import generate_sample

        t0 = time.perf_counter()
        generate_sample(data, customers=args.customers, seed=args.seed, lang="en", fmt="parquet", end=args.end)
        print(f"generated sample in {time.perf_counter() - t0:.1f} s", flush=True)
    import numpy as np
    import pandas as pd

    from workbench import segments as seg
    from workbench.engine import open_dataset

    t0 = time.perf_counter()
    ds = open_dataset(data)
    print(f"cache ready in {time.perf_counter() - t0:.1f} s", flush=True)
    n_tx = int(ds.sql("SELECT count(*) AS n FROM transactions")["n"][0])
    print(f"{args.customers:,} customers, {n_tx:,} transactions", flush=True)
    end = pd.Timestamp(args.end + "-01") + pd.offsets.MonthEnd(0)
    base_t: dict[str, float] = {}
    print("baseline (bare scan):")
    _timed("per-customer sums + traits", lambda: ds.sql(
        "SELECT c.*, t.revenue, t.n FROM customers c LEFT JOIN (SELECT customer_id, sum(amount) AS revenue, "
        "count(*) AS n FROM transactions GROUP BY customer_id) t USING (customer_id)"), base_t)
    res: dict[str, float] = {}
    print("analyses:")
    opts = seg.options(n_boot=args.n_boot, sample_size=args.sample_size, seed=args.seed)
    b = _timed("segments (k search + assign)", lambda: seg.segment_base(ds, end.date(), opts), res)
    if b.missing is not None:
        raise SystemExit(f"segments failed: {b.missing!r}")
    print(f"    of which: {', '.join(f'{k} {v:.1f} s' for k, v in b.seconds.items())}")
    la = _timed("look-alikes", lambda: b.lookalike, res)
    _timed("up-sell gaps", lambda: seg.upsell(b), res)
    from workbench import crosssell as xs

    _timed("cross-sell rules", lambda: xs.rules(ds, end.date()), res)
    _timed("next-category recommendations", lambda: xs.recommend(ds, end.date()), res)
    total, floor = sum(res.values()), sum(base_t.values())
    ok = total < 90 and _peak_gib() < 4
    print(f"total {total:.1f} s (target < 90 s); {total / floor:.1f}x the bare scan ({floor:.1f} s); "
          f"peak {_peak_gib():.2f} GiB (target < 4 GiB)  {'OK' if ok else 'SLOW'}")
    truth = json.loads((data / "TRUTH.json").read_text(encoding="utf-8"))["trait_segments"]
    planted = pd.Series(np.frombuffer(truth["labels"].encode(), dtype=np.uint8) - 48,
                        index=pd.read_parquet(data / "customers.parquet", columns=["customer_id"])["customer_id"])
    ari = seg.adjusted_rand(planted.reindex(b.labels.index).to_numpy(), b.labels.cat.codes.to_numpy())
    print(f"k = {b.choice.k} ({b.choice.rule}); adjusted Rand vs planted segments {ari:.3f}; "
          f"look-alike AUC {getattr(la, 'auc', float('nan')):.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
