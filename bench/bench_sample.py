"""Benchmark for workbench.sample.generate_sample.

Generates 1,000,000 customers (~10M transactions) into a temporary directory
(Parquet by default), prints wall time and peak RSS, and the ratio to a
baseline measured in the same run: writing a random numpy table with the same
number of rows and the same column types as the generated transactions table
to Parquet.  Targets: < 60 s wall time and < 4 GB peak RSS.

    python bench/bench_sample.py [--customers 1000000] [--fmt parquet] [--seed 42]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.sample import generate_sample  # noqa: E402

TARGET_S = 60.0
TARGET_GB = 4.0


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB


def baseline(n_rows: int, n_cust: int, path: Path) -> float:
    """Seconds to build and write a random table shaped like transactions."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    ids = pc.cast(pa.array(np.arange(n_rows, dtype=np.int64)), pa.string())
    cust = pc.cast(pa.array(rng.integers(0, n_cust, n_rows)), pa.string())
    tab = pa.table({
        "order_id": ids,
        "customer_id": cust,
        "date": pa.array(rng.integers(19000, 19730, n_rows).astype(np.int32), pa.date32()),
        "amount": rng.lognormal(5, 1, n_rows).round(2),
        "margin": rng.normal(50, 20, n_rows).round(2),
        "channel": pc.cast(pa.array(rng.integers(0, 4, n_rows)), pa.string()),
        "product_category": pc.cast(pa.array(rng.integers(0, 6, n_rows)), pa.string()),
        "discount": rng.random(n_rows).round(2),
    })
    pq.write_table(tab, path, compression="snappy", store_schema=False)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--fmt", default="parquet", choices=["parquet", "csv"])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_sample_") as tmp:
        t0 = time.perf_counter()
        res = generate_sample(Path(tmp) / "data", customers=args.customers, seed=args.seed,
                              fmt=args.fmt, end="2025-12")
        wall = time.perf_counter() - t0
        peak = peak_rss_gb()  # before the baseline, so it is the generator's peak
        size = sum(p.stat().st_size for p in res.paths.values()) / 1024**2
        base = baseline(res.rows["transactions"], args.customers, Path(tmp) / "baseline.parquet")
    print(f"customers            {args.customers:,}")
    for name, n in res.rows.items():
        print(f"rows.{name:<15} {n:,}")
    print(f"output size          {size:,.0f} MiB ({args.fmt})")
    print(f"wall time            {wall:.1f} s   (target < {TARGET_S:.0f} s)")
    print(f"peak RSS             {peak:.2f} GiB (target < {TARGET_GB:.0f} GiB)")
    print(f"baseline             {base:.1f} s   (random transactions-shaped table -> parquet)")
    print(f"ratio to baseline    {wall / base:.1f}x")
    ok = wall < TARGET_S and peak < TARGET_GB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
