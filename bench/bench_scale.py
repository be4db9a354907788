"""Benchmark: the pack's analyses as the number of customers grows, on DuckDB and on Spark (issue 17 item 3).

For each dataset (a folder with ``workbench.toml`` + Parquet, e.g. made by ``workbench sample``) and each
engine, one fresh Python process (so each peak memory is its own) opens the data and times, stage by
stage, the per-customer / per-period aggregations the notebooks run:

* **bare scan** (the baseline, measured in the same process, before and after the analyses): read the
  transactions and group by customer (count, sum of amount, first and last date), fetched to pandas;
* **overview** (tables, monthly volumes, missing values), **value + tiers** (``customer_value`` +
  ``customer_pyramid``), **complaints** (the notebook's rates, Pareto, trend, alerts, handling, SLA,
  outcomes, churn link, iceberg), **loyalty** (respondent frame + scorecard), **lifecycle** (horizon,
  customer frame + stages, survival frame), **programme** (the shared customer-month and points-ledger
  tables + participation), **segments** (``segment_base``: frame, k search on a sample, assignment of
  every customer, look-alikes), **cross-sell** (depth, rules, sequence, recommendations);
* **purchase-model inputs**: the calibration/holdout summary per customer (engine aggregation), and
  **purchase-model fit**: BG/NBD fitted on the summary compressed to unique (x, t_x, T) triples with
  weights — the number of customers, of unique triples and the fit seconds are reported, since the fit
  should not grow with customers once the triples are compressed.

Per stage: wall seconds, CPU seconds (this process plus, on Spark, its JVM), peak RSS of the stage
(Linux ``VmHWM``, reset before each stage; on Spark the JVM's is added), microseconds per customer and
the ratio to the same-run bare scan. With two or more sizes per engine it prints the growth exponent
(slope of log time on log customers, wall and CPU) and time per customer at the largest size over the
smallest. Each run's JSON goes to ``bench/out/scale/<engine>_<customers>.json``; ``--report`` combines
JSON files from earlier runs (e.g. a 10M run left under ``nohup``) without running anything.

    python bench/bench_scale.py                                  # 20k and 100k generated samples, DuckDB (~2 min)
    python bench/bench_scale.py --data /work/scale/1m /work/scale/3m /work/scale/10m
    python bench/bench_scale.py --data /work/scale/1m /work/scale/3m --engine spark [--spark-memory 6g]
    python bench/bench_scale.py --report bench/out/scale/*.json

Target (issue 17): on DuckDB, time per customer at 10M at most 1.5x that at 1M, peak under 16 GiB.
Exit status 1 when a run fails or a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from _common import ROOT

OUT = ROOT / "bench" / "out" / "scale"
TARGET_PER_CUSTOMER = 1.5  # time per customer at the largest DuckDB size / at the smallest (>= 1M)
TARGET_PEAK_GIB = 16.0
STAGES = ("overview", "value + tiers", "complaints", "loyalty", "lifecycle", "programme", "segments",
          "cross-sell", "purchase-model inputs", "purchase-model fit")


# ------------------------------------------------------------------ memory and CPU of this process (+ JVM)
def _jvms() -> list[int]:
    """Process ids of this process's descendants that are Java (Spark's driver JVM)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with jupyter
        return []
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "java" in p.name():
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


def _hwm_kib(pid: int | str = "self") -> int:
    """Peak resident memory (``VmHWM``) of a process, KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_hwm(pid: int | str = "self") -> None:
    """Reset a process's peak resident memory to its current size (Linux ``clear_refs`` 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def _cpu(pids: list[int]) -> tuple[float, float]:
    """CPU seconds (user + system, all threads) of this process, and of ``pids`` (the JVM) together."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    own = total = r.ru_utime + r.ru_stime
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return own, total - own


class Meter:
    """Wall, CPU and peak memory of labelled stages; a stage that fails or is skipped is recorded so."""

    def __init__(self, save: Any = None) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.jvms: list[int] = []
        self.save = save  # called after each stage: a long run leaves its figures so far on disk

    def peak_gib(self) -> float:
        return (_hwm_kib() + sum(_hwm_kib(p) for p in self.jvms)) / 1024 ** 2

    def __call__(self, label: str, fn: Any) -> Any:
        self.jvms = self.jvms or _jvms()
        for p in ["self", *self.jvms]:
            _reset_hwm(p)
        t0, c0 = time.perf_counter(), _cpu(self.jvms)
        out, status, why = None, "ok", ""
        try:
            out = fn()
            skipped = [r for r in (out if isinstance(out, list) else [out]) if getattr(r, "skipped", False)]
            if skipped:
                status = "partly skipped" if len(skipped) < len(out if isinstance(out, list) else [out]) else "skipped"
                why = "; ".join(r.summary("en") for r in skipped)
        except Exception as exc:  # noqa: BLE001 - recorded: which analyses do not run on this engine yet
            status, why = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        self.jvms = self.jvms or _jvms()
        c1 = _cpu(self.jvms)
        # cpu_py: this Python process (pandas, models, DuckDB's threads); cpu_jvm: Spark's driver JVM
        row = {"wall": time.perf_counter() - t0, "cpu": sum(c1) - sum(c0), "cpu_py": c1[0] - c0[0],
               "cpu_jvm": c1[1] - c0[1], "peak_gib": self.peak_gib(), "peak_py_gib": _hwm_kib() / 1024 ** 2,
               "status": status, "why": why}
        self.rows[label] = row
        if self.save:
            self.save()
        print(f"  {label:<24} {row['wall']:8.2f} s  CPU {row['cpu']:8.2f} s  peak {row['peak_gib']:5.2f} GiB  "
              f"{status}{(': ' + why[:160]) if why else ''}", flush=True)
        return out


# ------------------------------------------------------------------ one run (child process)
def spark_config(data: Path, folder: Path, master: str) -> Path:
    """``data``'s workbench.toml for ``[engine] kind = "spark"``: same semantics, Parquet sources by path."""
    from workbench.engine import _toml_value

    raw = tomllib.loads((data / "workbench.toml").read_text(encoding="utf-8"))
    lines = ["[dataset]"] + [f"{k} = {_toml_value(v)}" for k, v in raw.get("dataset", {}).items()]
    lines += ["", "[engine]", 'kind = "spark"', f"master = {_toml_value(master)}"]
    for t, spec in raw.get("tables", {}).items():
        spec = {k: v for k, v in spec.items() if k != "source" and not isinstance(v, dict)}
        lines += ["", f"[tables.{t}]", f"source = {_toml_value(str((data / raw['tables'][t]['source']).resolve()))}"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in spec.items()]
        for k, v in raw["tables"][t].items():
            if isinstance(v, dict):
                lines += ["", f"[tables.{t}.{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    for section in ("targets", "programme"):
        flat = {k: v for k, v in raw.get(section, {}).items() if not isinstance(v, dict)}
        if flat:
            lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in flat.items()]
        for k, v in raw.get(section, {}).items():
            if isinstance(v, dict):
                lines += ["", f"[{section}.{k}]"] + [f"{_toml_value(kk)} = {_toml_value(vv)}" for kk, vv in v.items()]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "workbench.toml"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def last_month(data: Path) -> str:
    """The data's last transaction month, YYYY-MM (from the Parquet statistics, without a scan)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(data / "transactions.parquet").metadata
    col = [meta.schema.column(i).name for i in range(meta.num_columns)].index("date")
    top = max(meta.row_group(i).column(col).statistics.max for i in range(meta.num_row_groups))
    return str(top)[:7]


BARE = ("SELECT customer_id, count(*) AS n, sum(amount) AS revenue, min(date) AS first, max(date) AS last "
        "FROM transactions GROUP BY customer_id")


def run_one(data: Path, engine: str, spark_memory: str, master: str) -> dict[str, Any]:
    """Open ``data`` on ``engine`` and time the stages (see the module docstring); the figures so far are
    written to ``bench/out/scale/<engine>_<folder>.json`` after every stage (``"complete": false``)."""
    from workbench import clv
    from workbench import complaints as C
    from workbench import crosssell as xs
    from workbench import lifecycle as life
    from workbench import loyalty as loy
    from workbench import overview as O
    from workbench import programme as prog
    from workbench import pyramid as pyr
    from workbench import segments as seg
    from workbench.engine import open_dataset
    from workbench.periods import parse_period

    month = last_month(data)
    period = parse_period(month)
    end = period.end
    run: dict[str, Any] = {"data": str(data), "engine": engine, "customers": 0, "transactions": 0,
                           "period": month, "settings": {}, "load": {}, "fit": {}, "complete": False}

    def save() -> None:
        run.update(stages=m.rows, peak_gib=max(r["peak_gib"] for r in m.rows.values()), loadavg=os.getloadavg(),
                   ru_maxrss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
                   when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        (OUT / f"{engine}_{data.name}.json").write_text(json.dumps(run, indent=1, default=str), encoding="utf-8")

    m = Meter(save)
    print(f"{data} on {engine}: period {month}", flush=True)
    load: dict[str, Any] = run["load"]
    if engine == "duckdb":
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", "import sys; from workbench.engine import open_dataset; "
                               "open_dataset(sys.argv[1]).close()", str(data)], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"loading {data} failed:\n{proc.stderr[-3000:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load |= {"wall": time.perf_counter() - t0, "peak_gib": after.ru_maxrss / 1024 ** 2,
                "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}
        print(f"  cache build / check (own process) {load['wall']:.1f} s, CPU {load['cpu']:.1f} s, "
              f"peak {load['peak_gib']:.2f} GiB", flush=True)
        ds = m("open", lambda: open_dataset(data))
        ds.sql("SET enable_progress_bar = false")
        settings = ds.sql("SELECT current_setting('memory_limit') AS memory_limit, current_setting('threads') AS threads, "
                          "current_setting('temp_directory') AS temp_directory").iloc[0].to_dict()
    else:
        from pyspark.sql import SparkSession

        # the driver JVM starts here, with its memory; the workbench's session reuses it (getOrCreate)
        # with the settings the workbench's own builder gives a fresh session (warehouse.SparkConnection): its
        # per-dataset session (newSession) takes them from the context, not from this session
        SparkSession.builder.master(master).config("spark.driver.memory", spark_memory) \
            .config("spark.sql.ansi.enabled", "false").config("spark.sql.shuffle.partitions", "4") \
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate() \
            .sparkContext.setLogLevel("ERROR")
        toml = spark_config(data, OUT / f"spark_config_{data.name}", master)
        ds = m("open", lambda: open_dataset(toml))
        settings = {"master": master, "spark.driver.memory": spark_memory,
                    **{k: ds._con.spark.conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.sql.ansi.enabled",
                                                              "spark.sql.adaptive.enabled")}}
        m("cache tables", lambda: [ds.sql(f"SELECT count(*) AS n FROM {t}") for t in ds.tables])
    customers = int(ds.sql("SELECT count(*) AS n FROM customers")["n"].iloc[0])
    tx = int(ds.sql("SELECT count(*) AS n FROM transactions")["n"].iloc[0])
    print(f"  {customers:,} customers, {tx:,} transactions; settings {settings}", flush=True)
    run.update(customers=customers, transactions=tx, settings={k: str(v) for k, v in settings.items()})

    m("bare scan", lambda: ds.sql(BARE))
    m("overview", lambda: [O.tables(ds, period), O.volumes(ds, period, months=24), O.missing(ds)])
    m("value + tiers", lambda: pyr.customer_pyramid(pyr.customer_value(ds, end, 12), "revenue"))

    def complaints() -> list:
        h = C.handling_window(ds, period, 24, sla_hours=48, closed_statuses="", granularity="month")
        return [C.rates(ds, period, 24, "month"), C.categories(ds, period),
                C.trend(ds, period, 24, "month", min_periods=6), C.alerts(ds, period, 24, "month"),
                C.handling_performance(h, period), C.timely(ds, period, 24, "month"), C.outcome_mix(ds, period),
                C.churn(ds, 90, ""), C.silent(ds, period, 0.10)]

    m("complaints", complaints)
    m("loyalty", lambda: [loy.scorecard(ds, loy.respondent_frame(ds, end=end), period, period.previous())])

    def lifecycle() -> None:
        h = life.resolve_horizon(ds, end, "", 0.9)
        frame = life.customer_frame(ds, end)
        life.assign_stages(frame, life.StageRules(h, 3, 6, 1.5), end)
        life.survival_frame(ds, end, h)

    m("lifecycle", lifecycle)
    m("programme", lambda: [prog.customer_months(ds, end), prog.points_ledger(ds, end),
                            prog.participation(ds, end)])
    m("segments", lambda: seg.segment_base(ds, end, seg.options(seed=42)))
    m("cross-sell", lambda: [xs.depth(ds, end), xs.rules(ds, end), xs.sequence(ds, end), xs.recommend(ds, end)])
    cal_end = end - dt.timedelta(days=365)

    def inputs() -> Any:
        t = ds.table("transactions")
        return clv.calibration_holdout(t.filter(t.date <= end), cal_end, end, "W", order_col="order_id", data_end=end)

    ch = m("purchase-model inputs", inputs)
    fit: dict[str, Any] = run["fit"]  # customers, unique triples and seconds, kept in the run JSON
    if ch is not None:
        def fit_triples() -> Any:
            x, tx_, T = (ch[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
            (ux, ut, uT), w = clv._group_rows(x, tx_, T, weights=None)
            fit.update(customers=int(x.size), triples=int(ux.size))
            return clv.BetaGeoModel().fit(ux, ut, uT, weights=w)

        m("purchase-model fit", fit_triples)
        fit["seconds"] = m.rows["purchase-model fit"]["wall"]
        fit["cpu"] = m.rows["purchase-model fit"]["cpu"]
    m("bare scan (again)", lambda: ds.sql(BARE))
    ds.close()
    run["complete"] = True
    save()
    return run


# ------------------------------------------------------------------ report
def baseline(run: dict[str, Any], key: str = "wall") -> float:
    """The run's bare-scan seconds: the faster of the scans before and after the analyses."""
    got = [run["stages"][k][key] for k in ("bare scan", "bare scan (again)") if k in run["stages"]]
    return min(got) if got else float("nan")


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x (the growth exponent)."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / den if den else float("nan")


def split(row: dict[str, Any]) -> str:
    """`` (CPU Python a + JVM b)`` for a Spark stage, else nothing."""
    return f"  (CPU Python {row['cpu_py']:.1f} + JVM {row['cpu_jvm']:.1f})" if row.get("cpu_jvm") else ""


def report(runs: list[dict[str, Any]]) -> bool:
    """Print the per-run tables and the per-engine growth; return whether the DuckDB targets are met."""
    ok = True
    runs = [r for r in runs if r.get("customers")]
    for run in runs:
        n, base, base_cpu = run["customers"], baseline(run), baseline(run, "cpu")
        print(f"\n{run['engine']} {n:,} customers, {run['transactions']:,} transactions ({run['data']})"
              f"{'' if run.get('complete', True) else ' INCOMPLETE (stopped or still running)'}; "
              f"load average {', '.join(f'{x:.1f}' for x in run['loadavg'])} at the end; {run['settings']}")
        print(f"  {'stage':<24} {'wall s':>8} {'CPU s':>8} {'peak GiB':>8} {'us/cust':>8} {'x scan':>7} {'CPU x':>6}")
        for label, r in run["stages"].items():
            print(f"  {label:<24} {r['wall']:8.2f} {r['cpu']:8.2f} {r['peak_gib']:8.2f} {r['wall'] / n * 1e6:8.2f} "
                  f"{r['wall'] / base:7.1f} {r['cpu'] / base_cpu if base_cpu > 0 else float('nan'):6.1f}  "
                  f"{'' if r['status'] == 'ok' else r['status']}"
                  f"{split(r)}")
        total = sum(run["stages"][s]["wall"] for s in STAGES if s in run["stages"])
        total_cpu = sum(run["stages"][s]["cpu"] for s in STAGES if s in run["stages"])
        print(f"  {'analyses total':<24} {total:8.2f} {total_cpu:8.2f} {run['peak_gib']:8.2f} {total / n * 1e6:8.2f} "
              f"{total / base:7.1f} {total_cpu / base_cpu if base_cpu > 0 else float('nan'):6.1f}")
        if run["fit"].get("triples"):
            f = run["fit"]
            print(f"  purchase-model fit: {f['customers']:,} customers -> {f['triples']:,} unique (x, t_x, T) "
                  f"triples; fit {f['seconds']:.2f} s (CPU {f['cpu']:.2f} s)")
        ok &= all(r["status"] != "failed" for r in run["stages"].values()) or run["engine"] != "duckdb"
    for engine in sorted({r["engine"] for r in runs}):
        mine = sorted((r for r in runs if r["engine"] == engine), key=lambda r: r["customers"])
        if len(mine) < 2:
            continue
        ns = [r["customers"] for r in mine]
        print(f"\n{engine}: growth exponent (slope of log seconds on log customers, {', '.join(f'{n:,}' for n in ns)}) "
              f"and time per customer, largest / smallest size")
        print(f"  {'stage':<24} {'exp wall':>8} {'exp CPU':>8} {'per-cust wall':>13} {'per-cust CPU':>12}")
        labels = ["bare scan"] + [s for s in STAGES if all(s in r["stages"] and r["stages"][s]["status"] != "failed"
                                                           for r in mine)] + ["analyses total"]
        for label in labels:
            if label == "analyses total":
                wall = [sum(r["stages"][s]["wall"] for s in labels[1:-1]) for r in mine]
                cpu = [sum(r["stages"][s]["cpu"] for s in labels[1:-1]) for r in mine]
            elif label == "bare scan":
                wall, cpu = [baseline(r) for r in mine], [baseline(r, "cpu") for r in mine]
            else:
                wall, cpu = [r["stages"][label]["wall"] for r in mine], [r["stages"][label]["cpu"] for r in mine]
            pw = (wall[-1] / ns[-1]) / (wall[0] / ns[0])
            pc = (cpu[-1] / ns[-1]) / (cpu[0] / ns[0]) if cpu[0] > 0 else float("nan")
            print(f"  {label:<24} {slope(ns, wall):8.2f} {slope(ns, cpu):8.2f} {pw:12.2f}x {pc:11.2f}x")
        fits = [r["fit"] for r in mine if r["fit"].get("triples")]
        if fits:
            print("  purchase-model fit: " + "; ".join(f"{f['customers']:,} customers, {f['triples']:,} triples, "
                                                       f"{f['seconds']:.2f} s" for f in fits))
        if engine == "duckdb":
            big, small = mine[-1], next((r for r in mine if r["customers"] >= 1_000_000), mine[0])
            if big is not small:
                total = [sum(r["stages"][s]["wall"] for s in labels[1:-1]) for r in (small, big)]
                total_cpu = [sum(r["stages"][s]["cpu"] for s in labels[1:-1]) for r in (small, big)]
                per = (total[1] / big["customers"]) / (total[0] / small["customers"])
                per_cpu = (total_cpu[1] / big["customers"]) / (total_cpu[0] / small["customers"])
                good = per <= TARGET_PER_CUSTOMER and big["peak_gib"] < TARGET_PEAK_GIB
                ok &= good
                print(f"  target: time per customer at {big['customers']:,} / at {small['customers']:,} = {per:.2f}x "
                      f"wall, {per_cpu:.2f}x CPU (<= {TARGET_PER_CUSTOMER}x); peak {big['peak_gib']:.2f} GiB "
                      f"(< {TARGET_PEAK_GIB:g})  {'OK' if good else 'MISSED'}")
    return ok


def markdown(runs: list[dict[str, Any]]) -> None:
    """The runs side by side as a Markdown table per engine (for docs/scaling.md): wall s / CPU s / peak GiB
    per stage and size, and microseconds of CPU per customer."""
    for engine in sorted({r["engine"] for r in runs if r.get("customers")}):
        mine = sorted((r for r in runs if r["engine"] == engine and r.get("customers")), key=lambda r: r["customers"])
        head = " | ".join(f"{r['customers'] / 1e6:g}M{'' if r.get('complete', True) else ' (incomplete)'}"
                          for r in mine)
        print(f"\n**{engine}** — wall s / CPU s / peak GiB (CPU µs per customer)\n")
        print(f"| stage | {head} |\n|---|{'---|' * len(mine)}")
        for label in ["load (cache build)", "open", "cache tables", "bare scan", *STAGES, "bare scan (again)"]:
            cells = []
            for r in mine:
                row = r["load"] if label == "load (cache build)" else r["stages"].get(label)
                if not row:
                    cells.append("—")
                    continue
                flag = "" if row.get("status", "ok") == "ok" else f" *{row['status']}*"
                cells.append(f"{row['wall']:.1f} / {row['cpu']:.1f} / {row['peak_gib']:.2f} "
                             f"({row['cpu'] / r['customers'] * 1e6:.1f}){flag}")
            if any(c != "—" for c in cells):
                print(f"| {label} | {' | '.join(cells)} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="+", help="dataset folders (default: generated 20k and 100k samples)")
    ap.add_argument("--engine", nargs="+", default=["duckdb"], choices=["duckdb", "spark"])
    ap.add_argument("--spark-memory", default="6g", help="spark.driver.memory for the local Spark runs")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--report", type=Path, nargs="+", help="only print the report of these run JSON files")
    ap.add_argument("--markdown", action="store_true", help="with --report: also print Markdown tables")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child: DATA ENGINE, JSON to bench/out/scale
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WORKBENCH_CACHE_DIR", str(ROOT / "bench" / "out" / "cache"))
    if args.one:
        data = Path(args.one[0]).resolve()
        run_one(data, args.one[1], args.spark_memory, args.master)
        print(f"wrote {OUT / f'{args.one[1]}_{data.name}.json'}")
        return 0
    if args.report:
        runs = [json.loads(p.read_text(encoding="utf-8")) for p in args.report]
        ok = report(runs)
        if args.markdown:
            markdown(runs)
        return 0 if ok else 1
    data = args.data
    if not data:  # small generated samples: make bench finishes in minutes
        from _common import ensure_sample

        data = []
        for n in (20_000, 100_000):
            ns = argparse.Namespace(dir=ROOT / "bench" / "out" / "scale_samples", customers=n, seed=42, end="2025-12")
            data.append(ensure_sample(ns, needs=("TRUTH.json", "prospects.parquet")))
    runs, failed = [], False
    for engine in args.engine:
        for d in data:
            cmd = [sys.executable, __file__, "--one", str(d), engine, "--spark-memory", args.spark_memory,
                   "--master", args.master]
            proc = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))))
            if proc.returncode:
                print(f"run failed: {d} on {engine} (exit {proc.returncode})", flush=True)
                failed = True
                continue
            runs.append(json.loads((OUT / f"{engine}_{d.resolve().name}.json").read_text(encoding="utf-8")))
    ok = report(runs) if runs else False
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
