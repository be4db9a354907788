"""Benchmark for workbench.sample.generate_sample: time and peak memory as the number of customers grows.

Each size runs in its own Python process (so each peak RSS is that run's own), generating the sample into
a temporary directory (Parquet by default, 24 months ending 2025-12). Prints, per size: wall time, peak
RSS, rows, output size, seconds and KiB of peak RSS per customer, and — for the largest size — the ratio
to a baseline measured in the same run: writing a random numpy table shaped like 1M customers'
transactions to Parquet, scaled by rows.

The generator streams customers in chunks (``--chunk-size``, default 200,000), so peak RSS must not grow
with the number of customers: the target is a peak at the largest size at most 1.25x the peak at the
smallest size of at least five chunks (the allocator's high-water mark settles over the first few chunks),
plus < 60 s and < 4 GiB at 1M customers.

    python bench/bench_sample.py [--sizes 200000 1000000 3000000] [--fmt parquet] [--seed 42]
                                 [--chunk-size 200000]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S_1M = 60.0
TARGET_GB_1M = 4.0
TARGET_FLAT = 1.25  # peak RSS at the largest size / at the smallest size >= five chunks


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


def one(customers: int, seed: int, fmt: str, chunk_size: int) -> dict:
    """Generate one sample in this process; time, peak RSS, rows, size (MiB)."""
    from workbench.sample import generate_sample

    with tempfile.TemporaryDirectory(prefix="bench_sample_") as tmp:
        t0 = time.perf_counter()
        res = generate_sample(Path(tmp) / "data", customers=customers, seed=seed, fmt=fmt, end="2025-12",
                              chunk_size=chunk_size)
        wall = time.perf_counter() - t0
        peak = peak_rss_gb()
        size = sum(p.stat().st_size for p in res.paths.values()) / 1024**2
    return {"customers": customers, "wall": wall, "peak_gb": peak, "rows": res.rows, "mib": size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000, 3_000_000])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--fmt", default="parquet", choices=["parquet", "csv"])
    ap.add_argument("--chunk-size", type=int, default=200_000)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one size, JSON on stdout
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.seed, args.fmt, args.chunk_size)))
        return 0
    out = []
    print(f"{'customers':>11} {'wall s':>8} {'peak GiB':>9} {'transactions':>13} {'MiB':>7} "
          f"{'us/cust':>8} {'KiB/cust':>9}")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--seed", str(args.seed), "--fmt", args.fmt,
               "--chunk-size", str(args.chunk_size)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        out.append(r)
        print(f"{n:>11,} {r['wall']:>8.1f} {r['peak_gb']:>9.2f} {r['rows']['transactions']:>13,} {r['mib']:>7,.0f} "
              f"{r['wall'] / n * 1e6:>8.1f} {r['peak_gb'] * 1024**2 / n:>9.2f}", flush=True)
    big = out[-1]
    with tempfile.TemporaryDirectory(prefix="bench_sample_base_") as tmp:
        nb = min(big["rows"]["transactions"], 10_000_000)
        base = baseline(nb, 1_000_000, Path(tmp) / "baseline.parquet") * big["rows"]["transactions"] / nb
    print(f"baseline (random transactions-shaped table -> parquet, scaled to {big['rows']['transactions']:,} rows): "
          f"{base:.1f} s; generator / baseline {big['wall'] / base:.1f}x")
    ok = True
    one_m = [r for r in out if r["customers"] == 1_000_000]
    if one_m:
        ok &= one_m[0]["wall"] < TARGET_S_1M and one_m[0]["peak_gb"] < TARGET_GB_1M
        print(f"1M: {one_m[0]['wall']:.1f} s (target < {TARGET_S_1M:.0f}), "
              f"{one_m[0]['peak_gb']:.2f} GiB (target < {TARGET_GB_1M:.0f})")
    ref = [r for r in out if r["customers"] >= 5 * args.chunk_size]
    if len(ref) >= 2:
        flat = ref[-1]["peak_gb"] / ref[0]["peak_gb"]
        ok &= flat <= TARGET_FLAT
        print(f"peak RSS {ref[-1]['customers']:,} / {ref[0]['customers']:,} customers: {flat:.2f}x "
              f"(target <= {TARGET_FLAT}: memory does not grow with customers)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
