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

Times are wall-clock on whatever else the machine is running (CPU seconds beside them); the ratio to
the bare scans, measured in the same run, is the load-independent figure. The first line times the
imports the notebook's kernel does anyway (scipy, scikit-learn, statsmodels), so no analysis carries
them. The shared per-customer-month table and points ledger are built by the first analysis that
needs them (participation, points flow) and reused by the rest, as in the notebook.
"""

from __future__ import annotations

from _common import Steps, ensure_sample, month_end, open_sample, peak_gib, sample_parser, summary


def main() -> int:
    ap = sample_parser(__doc__, "wb_bench_programme")
    ap.add_argument("--n-boot", type=int, default=500)
    args = ap.parse_args()

    data = ensure_sample(args)
    ds = open_sample(data)
    rows = ds.sql("SELECT (SELECT count(*) FROM points) AS points, (SELECT count(DISTINCT customer_id) FROM members) "
                  "AS members, (SELECT count(*) FROM transactions) AS tx")
    print(f"{args.customers:,} customers, {rows['members'][0]:,} members, {rows['points'][0]:,} points rows, "
          f"{rows['tx'][0]:,} transactions", flush=True)
    end = month_end(args.end)
    base = Steps()
    print("baseline (bare scans):")
    base("points by month", lambda: ds.sql("SELECT date_trunc('month', date) m, sum(points) FROM points GROUP BY 1"))
    base("transactions by month", lambda: ds.sql(
        "SELECT date_trunc('month', date) m, customer_id, count(*) FROM transactions GROUP BY 1, 2"))
    res = Steps()
    print("analyses:")

    def imports():  # what the notebook's kernel imports anyway (scipy, scikit-learn, statsmodels): a fixed cost
        import sklearn.linear_model  # noqa: F401
        import statsmodels.duration.survfunc  # noqa: F401

        import workbench.loyalty  # noqa: F401
        import workbench.privacy  # noqa: F401
        from workbench import programme

        return programme

    prog = res("imports (one-off)", imports)
    cfg = prog.settings(ds)
    res("participation", lambda: prog.participation(ds, end))
    res("scorecard", lambda: prog.scorecard(ds, end))
    res("levels", lambda: prog.levels(ds, end, thresholds=cfg.level_thresholds))
    flow = res("points flow", lambda: prog.points_flow(ds, end, point_value=cfg.point_value))
    res("breakage", lambda: prog.breakage(ds, end, cfg.expiry_months, cfg.point_value, n_boot=args.n_boot))
    effect = res("member effect", lambda: prog.member_effect(ds, end))
    res("roi", lambda: prog.roi(ds, effect, end, cfg.costs, cfg.point_value))
    res("risk flags", lambda: prog.risk_flags(ds, end, key="bench"))
    res("explorer inputs", lambda: prog.explorer(ds, flow, effect, end, cfg.point_value, cfg.costs))
    ok = summary(res, base, target_s=60)
    print(f"member effect x{effect.effect:.3f} ({effect.ci[0]:.3f}-{effect.ci[1]:.3f}), planted 1.08; "
          f"naive revenue ratio {effect.naive_ratio:.2f}; peak {peak_gib():.2f} GiB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
