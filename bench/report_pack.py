"""Benchmark the report pack: wall time per stage against a floor measured in the same run.

    .venv/bin/python bench/report_pack.py [--data PATH] [--period 2026-10] [--jobs N] [--lang both]

Stages: dataset load (cold, i.e. building the DuckDB cache, and warm), each
notebook × language (execute, HTML export), and the whole pack. The floor is
the same pipeline (``run_pack``) executing and exporting an *empty*
parameterised notebook the same number of times with the same ``--jobs``:
kernel start-up, papermill, nbconvert and plotly.js embedding are the cost any
notebook pays. Targets: pack wall time ≤ 3× floor; each report's HTML size ≤
1.2× (plotly.js + the notebook's own output content).

Without ``--data`` the default sample (20,000 customers, seed 42, 24 months
ending 2026-10) is generated once into ``bench/out/sample``. Results are
printed and written to ``bench/out/report_pack.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench import reports  # noqa: E402
from workbench.reports import clean_notebook, discover_notebooks, run_pack  # noqa: E402

OUT = ROOT / "bench" / "out"
PACK_TARGET = 3.0
SIZE_TARGET = 1.2
EMPTY_PARAMS = 'data = ""\nperiod = ""\nlang = "en"\nseed = 42\nmetrics_path = ""\n'


def ensure_sample(path: Path, customers: int, end: str) -> Path:
    from workbench.sample import generate_sample

    if not (path / "workbench.toml").exists():
        generate_sample(path, customers=customers, seed=42, lang="en", fmt="parquet", end=end)
    return path


def time_load(data: Path) -> tuple[float, float]:
    from workbench.engine import open_dataset

    t0 = time.perf_counter()
    open_dataset(data, refresh=True).close()
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    open_dataset(data).close()
    return cold, time.perf_counter() - t0


def empty_notebooks(folder: Path, n: int) -> Path:
    """``n`` copies of an empty parameterised notebook."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(EMPTY_PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("pass")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i in range(n):
        nbformat.write(nb, str(folder / f"{i:02d}_empty_{i}.ipynb"))
    return folder


def own_content_bytes(executed: Path) -> int:
    """Bytes of the outputs a report shows (figure divs, tables, text) — what the page must carry."""
    clean, _ = clean_notebook(nbformat.read(str(executed), as_version=4))
    total = 0
    for cell in clean.cells:
        for out in cell.outputs:
            for value in out.get("data", {}).values():
                total += len(("".join(value) if isinstance(value, list) else str(value)).encode("utf-8"))
    return total


def html_sizes(result) -> list[dict]:
    js = len(reports.plotly_js_source().encode("utf-8"))
    folder_tag = len(f'<script type="text/javascript" src="{reports.FOLDER_PLOTLY_SRC}"></script>'.encode())
    inline_tag = len(b'<script type="text/javascript"></script>') + js
    rows = []
    for r in result.results:
        if not r.ok:
            continue
        size = r.html.stat().st_size
        content = own_content_bytes(r.executed)
        rows.append({"report": f"{r.name} [{r.lang}]", "html_bytes": size, "plotly_js_bytes": js,
                     "content_bytes": content, "ratio": size / (js + content),
                     "folder_mode_bytes": size - inline_tag + folder_tag})
    return rows


def stage_rows(result) -> list[dict]:
    return [{"notebook": r.name, "lang": r.lang, "status": r.status, **{k: round(v, 2) for k, v in r.stages},
             "total": round(r.seconds, 2)} for r in result.results]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--period", default="2026-10")
    ap.add_argument("--lang", default="both")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=[])
    args = ap.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WORKBENCH_CACHE_DIR", str(OUT / "cache"))
    os.environ.setdefault("WORKBENCH_PSEUDONYM_KEY", "bench-key-not-secret")
    data = args.data or ensure_sample(OUT / "sample", args.customers, args.period)
    load_cold, load_warm = time_load(data)

    notebooks = reports.select_notebooks(discover_notebooks(), args.only)
    pack_out = OUT / "reports"
    t0 = time.perf_counter()
    pack = run_pack(data, args.period, only=[nb.name for nb in notebooks], lang=args.lang, out=pack_out,
                    jobs=args.jobs, progress=False, plotly_js="inline")  # sizes below assume inline pages
    pack_wall = time.perf_counter() - t0

    empties = empty_notebooks(OUT / "empty_notebooks", len(notebooks))
    t0 = time.perf_counter()
    floor = run_pack(data, args.period, lang=args.lang, out=OUT / "floor_reports", jobs=args.jobs,
                     notebooks_dir=empties, progress=False)
    floor_wall = time.perf_counter() - t0

    sizes = html_sizes(pack)
    summary = {
        "data": str(data), "period": args.period, "jobs": args.jobs or os.cpu_count(), "cpus": os.cpu_count(),
        "load_cold_s": round(load_cold, 2), "load_warm_s": round(load_warm, 3),
        "pack_wall_s": round(pack_wall, 1), "floor_wall_s": round(floor_wall, 1),
        "pack_over_floor": round(pack_wall / floor_wall, 2), "pack_target": PACK_TARGET,
        "pack_ok": pack.exit_code == 0, "stages": stage_rows(pack), "floor_stages": stage_rows(floor),
        "html": sizes, "size_target": SIZE_TARGET,
    }
    (OUT / "report_pack.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")

    print(f"dataset load: cold {load_cold:.2f}s (build cache), warm {load_warm * 1000:.0f} ms")
    print(f"{'notebook':32} {'lang':4} {'status':7} {'execute':>8} {'html':>6} {'total':>7}")
    for row in summary["stages"]:
        print(f"{row['notebook']:32} {row['lang']:4} {row['status']:7} {row.get('execute', 0):8.1f} "
              f"{row.get('html', 0):6.2f} {row['total']:7.1f}")
    empty_exec = [r.get("execute", 0) for r in summary["floor_stages"]]
    empty_html = [r.get("html", 0) for r in summary["floor_stages"]]
    print(f"floor: empty notebook × {len(floor.results)}: execute {sum(empty_exec) / len(empty_exec):.1f}s, "
          f"html {sum(empty_html) / len(empty_html):.2f}s each")
    ok_time = pack_wall <= PACK_TARGET * floor_wall
    print(f"pack {pack_wall:.1f}s vs floor {floor_wall:.1f}s = {pack_wall / floor_wall:.2f}× "
          f"(target ≤ {PACK_TARGET}×) {'OK' if ok_time else 'MISSED'}")
    ok_size = True
    for row in sizes:
        good = row["ratio"] <= SIZE_TARGET
        ok_size &= good
        print(f"{row['report']:40} html {row['html_bytes'] / 1e6:.2f} MB = {row['ratio']:.3f}× (plotly.js "
              f"{row['plotly_js_bytes'] / 1e6:.2f} MB + content {row['content_bytes'] / 1e3:.0f} kB); "
              f"folder mode {row['folder_mode_bytes'] / 1e3:.0f} kB {'OK' if good else 'MISSED'}")
    return 0 if pack.exit_code == 0 and ok_time and ok_size else 1


if __name__ == "__main__":
    raise SystemExit(main())
