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

import json

from _common import Steps, ensure_sample, open_sample, sample_parser, summary


def main() -> int:
    ap = sample_parser(__doc__, "wb_bench_segments")
    ap.add_argument("--n-boot", type=int, default=10)
    ap.add_argument("--sample-size", type=int, default=5000)
    args = ap.parse_args()

    data = ensure_sample(args, needs=("TRUTH.json", "prospects.parquet"))
    import numpy as np
    import pandas as pd

    from workbench import segments as seg

    ds = open_sample(data)
    n_tx = int(ds.sql("SELECT count(*) AS n FROM transactions")["n"][0])
    print(f"{args.customers:,} customers, {n_tx:,} transactions", flush=True)
    end = pd.Timestamp(args.end + "-01") + pd.offsets.MonthEnd(0)
    base_t = Steps()
    print("baseline (bare scan):")
    base_t("per-customer sums + traits", lambda: ds.sql(
        "SELECT c.*, t.revenue, t.n FROM customers c LEFT JOIN (SELECT customer_id, sum(amount) AS revenue, "
        "count(*) AS n FROM transactions GROUP BY customer_id) t USING (customer_id)"))
    res = Steps()
    print("analyses:")
    opts = seg.options(n_boot=args.n_boot, sample_size=args.sample_size, seed=args.seed)
    b = res("segments (k search + assign)", lambda: seg.segment_base(ds, end.date(), opts))
    if b.missing is not None:
        raise SystemExit(f"segments failed: {b.missing!r}")
    print(f"    of which: {', '.join(f'{k} {v:.1f} s' for k, v in b.seconds.items())}")
    la = res("look-alikes", lambda: b.lookalike)
    res("up-sell gaps", lambda: seg.upsell(b))
    from workbench import crosssell as xs

    res("cross-sell rules", lambda: xs.rules(ds, end.date()))
    res("next-category recommendations", lambda: xs.recommend(ds, end.date()))
    ok = summary(res, base_t, target_s=90, what="the bare scan")
    truth = json.loads((data / "TRUTH.json").read_text(encoding="utf-8"))["trait_segments"]
    planted = pd.Series(np.frombuffer(truth["labels"].encode(), dtype=np.uint8) - 48,
                        index=pd.read_parquet(data / "customers.parquet", columns=["customer_id"])["customer_id"])
    ari = seg.adjusted_rand(planted.reindex(b.labels.index).to_numpy(), b.labels.cat.codes.to_numpy())
    print(f"k = {b.choice.k} ({b.choice.rule}); adjusted Rand vs planted segments {ari:.3f}; "
          f"look-alike AUC {getattr(la, 'auc', float('nan')):.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
