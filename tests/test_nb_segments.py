"""Headless runs of notebooks/06_segments_crosssell.ipynb (report mode): the sample in en and zh, a
dataset without traits, surveys or prospects, and the Olist export (few repeat buyers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nbrun import run_notebook

papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "06_segments_crosssell.ipynb"
REALDATA = REPO / ".." / "shared" / "realdata"


def _run(tmp_path: Path, data: Path, lang: str, period: str, **params) -> dict:
    payload = run_notebook(NOTEBOOK, data, lang, tmp_path, period, section="segments_crosssell", n_boot=4, **params)
    text = json.dumps(payload, ensure_ascii=False)
    assert '"C0' not in text and '"P0' not in text  # no customer or prospect ids in the metrics
    return payload


def test_notebook_sample_en(tmp_path, sample_dir):
    payload = _run(tmp_path, sample_dir, "en", "2026-10")
    m = payload["metrics"]
    assert {"segments_k", "segments_k_table", "segment_profiles", "segments_vs_tiers", "lookalike",
            "lookalike_prospects", "upsell"} <= set(m)
    assert m["segments_k"] == 4  # the planted number of trait segments
    profiles = m["segment_profiles"]
    assert sum(p["n"] for p in profiles.values()) == sum(sum(r.values()) for r in m["segments_vs_tiers"].values())
    assert sum(p["value_share"] for p in profiles.values()) == pytest.approx(1.0)
    la = m["lookalike"]
    assert la["auc_interval"][0] <= la["auc"] <= la["auc_interval"][1] and la["auc_interval"][0] > 0.5
    notes = " ".join(payload.get("notes", []))
    assert "Skipped" not in notes


def test_notebook_sample_zh(tmp_path, sample_dir_zh):
    payload = _run(tmp_path, sample_dir_zh, "zh", "2026-10")
    assert payload["metrics"]["segments_k"] >= 2


@pytest.mark.skipif(not (REALDATA / "olist").is_dir(), reason="../shared/realdata is absent")
def test_notebook_on_olist_says_what_the_data_cannot_support(tmp_path):
    payload = _run(tmp_path, REPO / "examples" / "olist", "en", "2018-08")
    m = payload["metrics"]
    assert m["segments_k"] >= 2
    notes = " ".join(n if isinstance(n, str) else json.dumps(n) for n in payload.get("notes", []))
    assert "bought more than once" in notes or "lookalike" not in m
    assert "prospects table" in notes
