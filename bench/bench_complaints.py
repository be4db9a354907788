"""Benchmark: the complaint notebook's analyses and ``workbench alerts`` on the 1M-customer sample.

Generates the seeded sample (``workbench.sample``, 1,000,000 customers, ~200k+
complaints) into a bench folder once, builds the DuckDB cache, then times:

* each analysis the notebook runs (volume, Pareto, STL, alert cells + trends +
  alerts, handling with Kaplan-Meier, churn link, iceberg, verbatims) — target
  under 30 s in total;
* ``run_alerts`` from the cache in a fresh process (the cron path, imports
  included) — target under 3 s;
* a bare engine scan baseline (``SELECT count(*), max(opened_at) FROM complaints``
  and a per-month complaints group-by) for the ratio.

Usage::

    python bench/bench_complaints.py                    # 1,000,000 customers
    python bench/bench_complaints.py --customers 200000 --dir /tmp/wb_bench_c
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

from _common import Steps, ensure_sample, open_sample, sample_parser


def main() -> int:
    args = sample_parser(__doc__, "wb_bench_complaints").parse_args()
    data = ensure_sample(args)
    ds = open_sample(data)
    n = ds.sql("SELECT count(*) AS n FROM complaints")["n"].iloc[0]
    print(f"{args.customers:,} customers, {n:,} complaints")

    from workbench import complaints as C

    end = dt.date(int(args.end[:4]), int(args.end[5:7]), 1)
    end = C.months_back(end, -1)
    start = C.months_back(end, 24)
    month = C.months_back(end, 1)
    steps = Steps()
    t, CPU = steps.wall, steps.cpu
    print("baseline (bare engine scans):")
    steps("scan count/max", lambda: ds.sql("SELECT count(*), max(opened_at) FROM complaints"))
    steps("scan per-month group-by", lambda: ds.sql(
        "SELECT date_trunc('month', opened_at) AS m, category, count(*) FROM complaints GROUP BY ALL"))
    base = t["scan count/max"] + t["scan per-month group-by"]
    print("notebook analyses:")
    series = steps("volume", lambda: C.volume(ds, start, end, "month"))
    steps("volume by category", lambda: C.volume(ds, start, end, "month", by="category"))
    steps("pareto", lambda: C.pareto(ds, start, end))
    steps("STL decomposition", lambda: C.decompose(series))
    cells = steps("alert cells", lambda: C.alert_cells(ds, start, end, "month",
                                                        categories=C.top_categories(ds, start, end, 12)))
    trends = steps("category trends (GLM)", lambda: C.category_trends(cells))
    alerts = steps("alerts (model)", lambda: C.detect_alerts(cells))
    h = steps("handling (KM)", lambda: C.handling(ds, start, end))
    link = steps("churn link (logit)", lambda: C.churn_link(ds))
    steps("iceberg", lambda: C.iceberg_for(ds, month, end))
    steps("verbatims (jieba/regex)", lambda: C.verbatims(ds, C.months_back(end, 3), end))
    steps("explore frame", lambda: C.explore_frame(ds, start, end))
    analyses = sum(v for k, v in t.items() if not k.startswith("scan"))
    analyses_cpu = sum(v for k, v in CPU.items() if not k.startswith("scan"))
    ds.close()
    print(f"  {'TOTAL analyses':<28} {analyses:7.2f} s  (CPU {analyses_cpu:.2f} s; target < 30 s; "
          f"{analyses / base:,.0f}× the bare scans; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"  rising: {trends.iloc[0]['category']} {trends.iloc[0]['trend_slope']:+.1%}/month; flagged: "
          f"{sorted(set(zip(alerts.loc[alerts.flagged, 'label'], alerts.loc[alerts.flagged, 'category'], strict=True)))}")
    print(f"  resolution median {h.overall['median_hours']} h; churn groups "
          f"{link.groups[['group', 'churn_rate']].round(3).to_dict('records')}")

    print("workbench alerts (fresh process, from the cache, imports included):")
    code = ("import time; t=time.perf_counter(); from workbench.complaints import run_alerts; "
            f"r=run_alerts({str(data)!r}); print('TIMER', time.perf_counter()-t, len(r.breaches))")
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
        runs.append(float(out.stdout.split("TIMER")[-1].split()[0]))
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "workbench", "alerts", "--data", str(data)], capture_output=True,
                         text=True, env=os.environ)
    cli_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = os.getloadavg()[0]
    print(f"  run_alerts in-process timer   {min(runs):7.2f} s (best of 3; all {', '.join(f'{r:.2f}' for r in runs)})")
    print(f"  `workbench alerts` wall clock {cli_s:7.2f} s, CPU {cli_cpu:.2f} s, exit {cli.returncode} "
          f"(target < 3 s; load average {load:.1f} on {os.cpu_count()} cores)")
    print(json.dumps({"customers": args.customers, "complaints": int(n), "analyses_s": round(analyses, 2), "analyses_cpu_s": round(analyses_cpu, 2),
                      "baseline_scan_s": round(base, 3), "run_alerts_s": round(min(runs), 2),
                      "cli_wall_s": round(cli_s, 2), "cli_cpu_s": round(cli_cpu, 2), "load": round(load, 1), "per_step_s": {k: round(v, 3) for k, v in t.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
