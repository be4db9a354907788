"""Benchmark: loading + validating a large dataset vs a bare DuckDB scan of the same files.

Target (issue 3): 10M transactions from Parquet and from CSV load and validate within 3× of a bare
DuckDB scan of the same files, with peak memory under 2 GB.

The bare scan is the least work that yields a queryable copy: ``CREATE TABLE t AS SELECT * FROM
read_parquet/read_csv(files)`` into a fresh DuckDB file, for every table. Each measurement runs in
its own subprocess so that its peak RSS is its own.

    python bench/bench_load.py [--customers 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, sys, time
mode, data, work = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
if mode == "load":
    os.environ["WORKBENCH_CACHE_DIR"] = work
    from workbench.engine import open_dataset
    ds = open_dataset(data, refresh=True)
    rows = {t: l.loaded_rows for t, l in ds.validation.tables.items()}
else:
    import duckdb
    from pathlib import Path
    con = duckdb.connect(os.path.join(work, "bare.duckdb"))
    rows = {}
    for f in sorted(Path(data).iterdir()):
        if f.suffix in (".parquet", ".csv"):
            reader = "read_parquet" if f.suffix == ".parquet" else "read_csv"
            con.execute(f"CREATE OR REPLACE TABLE {f.stem} AS SELECT * FROM {reader}('{f}')")
            rows[f.stem] = con.execute(f"SELECT count(*) FROM {f.stem}").fetchall()[0][0]
    con.close()
seconds = time.perf_counter() - start
# VmHWM is per address space, so it starts afresh at exec; ru_maxrss would carry the parent's peak
with open("/proc/self/status") as fh:
    peak_mb = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": rows}))
"""


def measure(mode: str, data: Path) -> dict:
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run([sys.executable, "-c", CHILD, mode, str(data), work], check=True,
                             capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep generated data here")
    args = parser.parse_args()
    from workbench.sample import generate_sample

    base = args.keep or Path(tempfile.mkdtemp(prefix="wb-bench-load-"))
    results = {}
    for fmt in ("parquet", "csv"):
        data = base / f"sample_{args.customers}_{fmt}"
        if not (data / "TRUTH.json").exists():
            t0 = time.perf_counter()
            generate_sample(data, customers=args.customers, seed=1, fmt=fmt, end="2026-10")
            print(f"generated {fmt} sample in {time.perf_counter() - t0:.1f} s", flush=True)
        bare = measure("bare", data)
        load = measure("load", data)
        ratio = load["seconds"] / bare["seconds"]
        results[fmt] = {"bare": bare, "load": load, "ratio": ratio}
        print(f"{fmt:8s} transactions {load['rows'].get('transactions', 0):>11,}  "
              f"bare scan {bare['seconds']:6.2f} s ({bare['peak_mb']:,.0f} MB)  "
              f"load+validate {load['seconds']:6.2f} s ({load['peak_mb']:,.0f} MB)  "
              f"ratio {ratio:4.2f}× (target ≤ 3×)  peak {'OK' if load['peak_mb'] < 2048 else 'OVER'} (< 2 GB)",
              flush=True)
    ok = all(r["ratio"] <= 3 and r["load"]["peak_mb"] < 2048 for r in results.values())
    print("PASS" if ok else "MISS", "— loading within 3× of a bare scan and under 2 GB")
    if args.keep is None:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
