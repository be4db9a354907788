"""The satisfaction-versus-loyalty notebook runs headless (papermill) on the sample data in en and zh and
reports the planted thresholds (TRUTH.json) inside its confidence intervals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pm = pytest.importorskip("papermill")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_satisfaction_loyalty.ipynb"
REQUIRED = ("n_responses", "correlations", "thresholds", "quadrants", "conversion", "drivers", "scorecard",
            "value_at_stake")


def _run(tmp_path: Path, data: Path, lang: str, n_boot: int = 100) -> dict:
    metrics = tmp_path / f"metrics_{lang}.json"
    old = os.environ.get("WORKBENCH_REPORT")
    os.environ["WORKBENCH_REPORT"] = "1"
    try:
        pm.execute_notebook(str(NOTEBOOK), str(tmp_path / f"out_{lang}.ipynb"), kernel_name="python3",
                            cwd=str(NOTEBOOK.parent), progress_bar=False,
                            parameters={"data": str(data), "period": "2026-10", "lang": lang,
                                        "metrics_path": str(metrics), "n_boot": n_boot, "seed": 42})
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_REPORT", None)
        else:
            os.environ["WORKBENCH_REPORT"] = old
    return json.loads(metrics.read_text(encoding="utf-8"))


def _check(payload: dict, truth: dict) -> None:
    m = payload["metrics"]
    assert payload["section"] == "satisfaction_loyalty"
    for key in REQUIRED:
        assert key in m, key
    for name in ("intent", "behaviour"):
        th = m["thresholds"][name]
        assert th["ci_low"] <= truth["thresholds"][name]["tau"] <= th["ci_high"], (name, th)
    assert {"x", "y", "method", "r", "ci_low", "ci_high", "p_value", "n"} <= set(m["correlations"][0])
    assert sum(q["n"] for q in m["quadrants"].values()) == m["n_responses"]
    assert {"driver", "importance", "ci_low", "ci_high", "rank"} <= set(m["drivers"][0])
    assert m["drivers"][0]["driver"] == truth["drivers"]["dominant"]
    assert 3 <= sum(f["headline"] for f in payload["findings"]) <= 5


def test_notebook_en(tmp_path, sample_dir):
    truth = json.loads((sample_dir / "TRUTH.json").read_text(encoding="utf-8"))
    payload = _run(tmp_path, sample_dir, "en")
    _check(payload, truth)
    assert payload["lang"] == "en"


def test_notebook_zh(tmp_path, sample_dir_zh):
    truth = json.loads((sample_dir_zh / "TRUTH.json").read_text(encoding="utf-8"))
    payload = _run(tmp_path, sample_dir_zh, "zh")
    _check(payload, truth)
    assert any("满意" in f["text"] for f in payload["findings"])
