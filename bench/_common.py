"""Scaffolding shared by the bench scripts (imported, not run: ``make bench`` runs it as a no-op).

* :func:`peak_gib`, :func:`cpu_seconds` — peak resident memory and the process's CPU time (all threads,
  DuckDB's included: on a shared machine CPU time moves less with other people's load than wall time).
* :class:`Steps` — time labelled steps, print wall time, CPU time and peak memory per step.
* :func:`clocked` / :func:`clocked_cpu` — run a function once and return its result with the seconds.
* :func:`sample_parser`, :func:`ensure_sample`, :func:`open_sample` — the seeded sample generated once
  into ``--dir`` (reuse it with the same ``--dir``), its DuckDB cache beside it, opened quietly.
* :func:`summary` — the closing line: total, ratio to the bare scans measured in the same run, peak.

The scripts are run as ``python bench/<name>.py``, so ``bench/`` is on ``sys.path`` and
``from _common import ...`` works.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this checkout's workbench when not installed (PYTHONPATH and installs first)
    sys.path.append(str(ROOT))


def peak_gib() -> float:
    """Peak resident memory of this process so far, GiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def clocked(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` once; return its result and the wall-clock seconds."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def clocked_cpu(fn: Callable[[], Any]) -> tuple[Any, tuple[float, float]]:
    """Run ``fn`` once; return its result and (wall, process CPU) seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t0, time.process_time() - c0)


class Steps:
    """Wall and CPU seconds of labelled steps, printed as they finish.

    ``steps(label, fn)`` runs ``fn`` and returns its result; ``steps.wall`` / ``steps.cpu`` map labels
    to seconds; ``steps.total`` / ``steps.total_cpu`` sum them.
    """

    def __init__(self, width: int = 28):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.width = width

    def __call__(self, label: str, fn: Callable[[], Any]) -> Any:
        t0, c0 = time.perf_counter(), cpu_seconds()
        out = fn()
        self.wall[label], self.cpu[label] = time.perf_counter() - t0, cpu_seconds() - c0
        print(f"  {label:<{self.width}} {self.wall[label]:7.2f} s  (CPU {self.cpu[label]:6.2f} s)   "
              f"peak {peak_gib():5.2f} GiB", flush=True)
        return out

    @property
    def total(self) -> float:
        return sum(self.wall.values())

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())


def sample_parser(doc: str, name: str, customers: int = 1_000_000) -> argparse.ArgumentParser:
    """Arguments of the sample-based benches: ``--customers``, ``--dir`` (default a temp folder named
    ``name``), ``--seed``, ``--end`` (the sample's last month, YYYY-MM). ``doc``: the script's docstring."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--customers", type=int, default=customers)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / name,
                    help="sample and cache folder; reuse it to skip generating the sample again")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", default="2026-10")
    return ap


def _child(code: str, *args: str) -> None:
    """Run ``code`` in a fresh Python (same import path), so its memory is not this process's peak."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])))
    subprocess.run([sys.executable, "-c", code, *args], check=True, env=env)


def ensure_sample(args: argparse.Namespace, needs: tuple[str, ...] = ("TRUTH.json",)) -> Path:
    """The seeded sample in ``args.dir/sample_<customers>``, generated on the first run (when a file of
    ``needs`` is missing) in a child process; DuckDB caches go to ``args.dir/cache`` unless
    ``WORKBENCH_CACHE_DIR`` is set."""
    data = args.dir / f"sample_{args.customers}"
    os.environ.setdefault("WORKBENCH_CACHE_DIR", str(args.dir / "cache"))
    if not all((data / f).exists() for f in needs):
        _, sec = clocked(lambda: _child(
            "import sys; from workbench.sample import generate_sample; generate_sample(sys.argv[1], "
            "customers=int(sys.argv[2]), seed=int(sys.argv[3]), lang='en', fmt='parquet', end=sys.argv[4])",
            str(data), str(args.customers), str(args.seed), args.end))
        print(f"generated sample in {sec:.1f} s", flush=True)
    return data


def open_sample(data: Path) -> Any:
    """Open the dataset, progress bar off. The cache is built (or found) by a child process first, so
    loading (bench_load's subject) is neither timed nor in the peak memory here."""
    from workbench.engine import open_dataset

    _, build = clocked(lambda: _child("import sys; from workbench.engine import open_dataset; "
                                      "open_dataset(sys.argv[1]).close()", str(data)))
    ds = open_dataset(data)
    ds.sql("SET enable_progress_bar = false")
    print(f"cache ready in {build:.1f} s", flush=True)
    return ds


def month_end(month: str) -> dt.date:
    """The last day of month ``YYYY-MM``."""
    y, m = int(month[:4]), int(month[5:7])
    return dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)


def summary(steps: Steps, floor: Steps, target_s: float, target_gib: float = 4.0, what: str = "the bare scans") -> bool:
    """Print the closing line (total, CPU, ratio to the baseline ``floor`` measured in the same run, peak)
    and return whether the time and memory targets are met."""
    total, base = steps.total, floor.total
    ok = total < target_s and peak_gib() < target_gib
    ratio = f"{total / base:.1f}x {what} ({base:.1f} s)" if base > 0 else "no baseline"
    cpu = (f"; CPU {steps.total_cpu:.1f} s, {steps.total_cpu / floor.total_cpu:.1f}x the baseline's"
           if floor.total_cpu > 0 else "")
    print(f"total {total:.1f} s (target < {target_s:g} s); {ratio}{cpu}; peak {peak_gib():.2f} GiB "
          f"(target < {target_gib:g} GiB)  {'OK' if ok else 'SLOW'}", flush=True)
    return ok
