"""Benchmark: the satisfaction-versus-loyalty analyses on the 1,000,000-customer sample.

Generates (or reuses) the synthetic sample with 1M customers (~100k survey responses), opens it
through the engine, and times what notebook 01 does: the per-respondent frame (engine query),
correlations, both thresholds with bootstrap, expectation gap, four cases, conversion, key drivers
with bootstrap, scorecard, open answers, segment comparisons and value at stake; then a widget
change answered from the pre-aggregated frame. Targets: analyses < 30 s, widget change < 300 ms.
The baseline, measured in the same run, is a bare engine scan of the surveys table.

Usage::

    python bench/bench_loyalty.py                         # 1,000,000 customers, n_boot 500
    python bench/bench_loyalty.py --customers 200000 --dir /tmp/bench_loyalty
"""

from __future__ import annotations

import json

from _common import clocked, ensure_sample, sample_parser

from workbench import loyalty as L
from workbench.engine import open_dataset
from workbench.periods import parse_period


def _timed(label: str, fn, times: dict[str, float]):
    out, times[label] = clocked(fn)
    return out


def main() -> int:
    ap = sample_parser(__doc__, "bench_loyalty")
    ap.add_argument("--n-boot", type=int, default=500)
    args = ap.parse_args()

    times: dict[str, float] = {}
    root = ensure_sample(args)
    ds = _timed("open dataset (cache build or reuse)", lambda: open_dataset(root), times)
    truth = json.loads((root / "TRUTH.json").read_text(encoding="utf-8"))
    period = parse_period(args.end)
    baseline = _timed("baseline: engine scan of surveys",
                      lambda: ds.sql("SELECT count(*), avg(satisfaction), avg(repurchase_intent) FROM surveys"), times)
    del baseline

    a: dict[str, float] = {}
    frame = _timed("respondent frame (engine)", lambda: L.respondent_frame(ds, end=period.end), a)
    _timed("correlations (3 methods)", lambda: L.correlations(frame), a)
    th = _timed(f"thresholds (n_boot={args.n_boot})", lambda: L.thresholds(frame, n_boot=args.n_boot, seed=1), a)
    _timed("expectation gap", lambda: L.expectation_gap(frame), a)
    _timed("four cases", lambda: L.four_cases(frame), a)
    _timed("conversion", lambda: L.intention_conversion(frame), a)
    dr = _timed(f"key drivers (n_boot={args.n_boot})", lambda: L.key_drivers(frame, n_boot=args.n_boot, seed=1), a)
    _timed("key drivers by tier", lambda: L.key_drivers_by_tier(frame, n_boot=max(args.n_boot // 5, 20)), a)
    _timed("scorecard (engine + tests)", lambda: L.scorecard(ds, frame, period, period.previous()), a)
    _timed("open answers (themes)", lambda: L.open_answers(frame), a)
    _timed("segment comparisons", lambda: L.segment_comparison(frame), a)
    _timed("value at stake", lambda: L.value_at_stake(frame, th["behaviour"]), a)
    agg = _timed("widget pre-aggregation", lambda: L.widget_frame(frame), a)

    w: dict[str, float] = {}
    months = sorted(agg["month"].unique())
    seg = sorted(agg["segment"].unique())[0]
    for i, (s, hi, lo) in enumerate([(seg, 4, 2), ("", 5, 1), (seg, 3, 2)]):
        _timed(f"widget change {i + 1}", lambda s=s, hi=hi, lo=lo: L.widget_figure(
            agg, s, (months[len(months) // 3], months[-1]), hi, lo, "en"), w)

    total = sum(a.values())
    base = times["baseline: engine scan of surveys"]
    print(f"customers {args.customers:,}; survey responses {len(frame):,}; "
          f"with complete follow-up {int(frame['followup'].sum()):,}")
    for k, v in times.items():
        print(f"  {k:<40} {v:8.3f} s")
    for k, v in a.items():
        print(f"  {k:<40} {v:8.3f} s")
    print(f"  {'ANALYSES TOTAL':<40} {total:8.3f} s  (target < 30 s; {total / base:,.0f}x the baseline scan)")
    for k, v in w.items():
        print(f"  {k:<40} {1000 * v:8.1f} ms (target < 300 ms)")
    for m in ("intent", "behaviour"):
        r = th[m]
        print(f"  threshold {m:<10} {r.tau:.2f} (95% CI {r.ci_low:.2f}-{r.ci_high:.2f}); "
              f"truth {truth['thresholds'][m]['tau']}")
    print(f"  top driver {dr.table.iloc[0]['driver']} (truth {truth['drivers']['dominant']}); R2 {dr.r2:.3f}")
    ok = total < 30 and max(w.values()) < 0.3
    print("PASS" if ok else "SLOWER THAN TARGET")
    ds.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
