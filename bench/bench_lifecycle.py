"""Benchmark: notebook 04's heavy sections at 1M customers (issue 14).

Generates the sample at ``--customers`` (cached in ``--cache``, reused when present), then times
in one process, each after a bare-scan baseline of the same run:

* stages (:func:`workbench.lifecycle.stages`),
* Kaplan-Meier curves with log-rank tests (:func:`workbench.lifecycle.survival`),
* Cox PH with time-varying covariates in start/stop form (:func:`workbench.lifecycle.cox`),
* the churn-risk model (Cox vs gradient boosting on a time split, :func:`workbench.lifecycle.churn_risk`),

printing wall and CPU time, peak RSS and the ratios to the baseline (one DuckDB pass over the transactions
computing per-customer count, sum and last date), in wall and in CPU seconds (CPU moves less with load). Targets (issue 14): 60 s and 4 GB in total.

    python bench/bench_lifecycle.py [--customers 1000000] [--cache /tmp/bench_lifecycle]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import clocked as _timed  # noqa: E402  (bench/_common.py: shared scaffolding)
from _common import peak_gib as _peak_gb  # noqa: E402

from workbench import lifecycle as L  # noqa: E402
from workbench.engine import open_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bench_lifecycle"))
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    out = sys.stdout
    folder = args.cache / f"sample_{args.customers}"
    if not (folder / "transactions.parquet").exists():
        from workbench.sample import generate_sample

        _, t_gen = _timed(lambda: generate_sample(folder, customers=args.customers, seed=args.seed))
        out.write(f"generated {args.customers:,} customers in {t_gen:.1f}s into {folder}\n")
    ds = open_dataset(folder)
    end = ds.sql("SELECT max(CAST(date AS DATE)) AS d FROM transactions")["d"].iloc[0]
    from time import process_time

    c0 = process_time()
    base, t_base = _timed(lambda: ds.sql("SELECT customer_id, count(*) AS n, sum(amount) AS v, max(date) AS last "
                                         "FROM transactions GROUP BY 1"))
    c_base = process_time() - c0
    out.write(f"baseline (bare per-customer scan, {len(base):,} customers): {t_base:.2f}s wall {c_base:.2f}s CPU\n")
    horizon = L.resolve_horizon(ds, end)
    steps = {
        "stages": lambda: L.stages(ds, end, L.StageRules(horizon_days=horizon)),
        "survival (KM + log-rank)": lambda: L.survival(ds, end, horizon),
        "cox (time-varying)": lambda: L.cox(ds, end, horizon),
        "risk model": lambda: L.churn_risk(ds, end, horizon),
    }
    # CPU seconds, all threads: moves less than wall time with other people's load
    total = cpu_total = 0.0
    for name, fn in steps.items():
        c0 = process_time()
        res, sec = _timed(fn)
        cpu = process_time() - c0
        total, cpu_total = total + sec, cpu_total + cpu
        out.write(f"{name:<26}{sec:8.2f}s wall {cpu:8.2f}s CPU  {sec / t_base:7.1f}x baseline wall "
                  f"{cpu / c_base:7.1f}x baseline CPU  peak {_peak_gb():5.2f} GB  "
                  f"({type(res).__name__})\n")
    peak = _peak_gb()
    out.write(f"total {total:.1f}s wall, {cpu_total:.1f}s CPU ({total / t_base:.1f}x baseline wall, "
              f"{cpu_total / c_base:.1f}x baseline CPU), peak RSS {peak:.2f} GB; "
              f"targets 60 s and 4 GB\n")
    ds.close()
    return 0 if total <= 60 and peak <= 4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
