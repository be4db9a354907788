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

from _common import Steps, ensure_sample, month_end, open_sample, sample_parser, summary


def main() -> int:
    ap = sample_parser(__doc__, "xsell")
    ap.add_argument("--budget", type=float, default=45.0, help="seconds allowed for cross-sell (half of the 90 s)")
    args = ap.parse_args()

    data = ensure_sample(args)
    from workbench import crosssell as X

    ds = open_sample(data)
    tx = int(ds.sql("SELECT count(*) FROM transactions").iloc[0, 0])
    print(f"{args.customers:,} customers, {tx:,} transactions", flush=True)
    end = month_end(args.end)
    base = Steps()
    print("baseline (bare scan):")
    base("categories per customer", lambda: ds.sql(
        "SELECT customer_id, count(DISTINCT product_category) FROM transactions GROUP BY 1"))
    res = Steps()
    print("analyses:")
    res("depth (quarters)", lambda: X.depth(ds, end))
    rules = res("association rules", lambda: X.rules(ds, end))
    seq = res("first -> second category", lambda: X.sequence(ds, end))
    rec = res("recommendations (+ list)", lambda: X.recommend(ds, end))
    print(f"budget {args.budget:.0f} s of the 90 s shared with segmentation:")
    ok = summary(res, base, target_s=args.budget, what="the bare scan")
    if not seq.skipped:
        top = seq.transitions[seq.transitions["q"] < 0.05].iloc[0]
        print(f"top sequence {top['first']} -> {top['second']} lift {top['lift']:.2f}; "
              f"top rule {rules.rules.iloc[0]['antecedent']} -> {rules.rules.iloc[0]['consequent']} "
              f"lift {rules.rules.iloc[0]['lift']:.2f}")
    if not rec.skipped:
        print(f"hit@3 model {rec.rate_model:.3f} vs popularity {rec.rate_pop:.3f} "
              f"(diff {rec.diff_ci[0]:+.4f}..{rec.diff_ci[1]:+.4f}, n={rec.n_eval:,}); beats: {rec.beats}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
