"""bench/bench_scale.py's own arithmetic and the Spark config it writes (issue 17 item 3).

The figures in docs/scaling.md come from this script, so its slope, its per-customer verdict and the
workbench.toml it writes for Spark are checked here against independent computations.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_scale as bs  # noqa: E402


def test_slope_is_the_log_log_least_squares_fit():
    rng = np.random.default_rng(3)
    x = np.array([1e6, 3e6, 1e7])
    y = 2e-5 * x ** 1.1 * np.exp(rng.normal(0, 0.05, 3))
    assert bs.slope(list(x), list(y)) == pytest.approx(np.polyfit(np.log(x), np.log(y), 1)[0], rel=1e-12)
    assert bs.slope([1e6, 1e7], [10.0, 100.0]) == pytest.approx(1.0)


def _run(n: int, cpu_per_stage: float, peak: float) -> dict:
    stages = {s: {"wall": cpu_per_stage, "cpu": cpu_per_stage, "peak_gib": peak, "status": "ok", "why": ""}
              for s in bs.STAGES}
    for s in ("bare scan", "bare scan (again)"):
        stages[s] = {"wall": n / 1e6, "cpu": n / 1e6, "peak_gib": 0.5, "status": "ok", "why": ""}
    return {"data": f"/d/{n}", "engine": "duckdb", "customers": n, "transactions": 10 * n, "settings": {},
            "load": {}, "stages": stages, "fit": {}, "peak_gib": peak, "loadavg": [1.0, 1.0, 1.0]}


@pytest.mark.parametrize("cpu_10m, peak, ok", [(14.0, 8.0, True),   # 14 vs 10 µs per customer: 1.4x
                                               (16.0, 8.0, False),  # 1.6x
                                               (14.0, 17.0, False)])  # over 16 GiB
def test_the_verdict_is_time_per_customer_and_peak(cpu_10m, peak, ok, capsys):
    small, big = _run(1_000_000, 1.0, 2.0), _run(10_000_000, cpu_10m, peak)
    # 10 stages: 10 s at 1M (10 µs per customer), 10 x cpu_10m s at 10M
    assert bs.report([small, big]) is ok
    out = capsys.readouterr().out
    assert f"= {(10 * cpu_10m / 1e7) / (10 / 1e6):.2f}x wall" in out


def test_the_spark_config_keeps_the_semantics(sample_dir, tmp_path):
    from workbench.config import load_config

    path = bs.spark_config(sample_dir, tmp_path / "cfg", "local[2]")
    cfg = load_config(path)
    raw = tomllib.loads((sample_dir / "workbench.toml").read_text(encoding="utf-8"))
    assert (cfg.engine.kind, cfg.engine.master) == ("spark", "local[2]")
    assert set(cfg.tables) == set(raw["tables"])
    for name, spec in raw["tables"].items():
        assert cfg.tables[name].files == ((sample_dir / spec["source"]).resolve(),)
    assert {k: tuple(v) for k, v in raw["tables"]["surveys"]["scales"].items()} == {
        k: tuple(v) for k, v in cfg.tables["surveys"].scales.items() if k in raw["tables"]["surveys"]["scales"]}
    assert cfg.programme["level_thresholds"] == {k: float(v) for k, v in raw["programme"]["level_thresholds"].items()}
    assert cfg.margin_rate == raw["dataset"]["margin_rate"]
