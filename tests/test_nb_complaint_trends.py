"""The complaint-trends notebook runs headlessly, finds what the sample planted, and joins the report pack."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_complaint_trends.ipynb"
KEYS = {"periods", "by_category", "alerts", "resolution", "churn_link", "iceberg"}


@pytest.fixture(scope="module")
def pack(sample_dir, tmp_path_factory):
    """The report pack for 2026-10 with only this notebook, in en and zh (8,000-customer sample)."""
    from workbench.reports import run_pack

    out = tmp_path_factory.mktemp("pack")
    result = run_pack(sample_dir, "2026-10", only=["03_complaint_trends"], lang="both", out=out, jobs=2,
                      progress=False)
    return result


def test_pack_runs_in_en_and_zh(pack):
    assert pack.exit_code == 0, [r.error for r in pack.results]
    assert {r.lang for r in pack.results} == {"en", "zh"}
    for r in pack.results:
        assert r.html is not None and r.html.exists()
    zh = next(r for r in pack.results if r.lang == "zh").html.read_text(encoding="utf-8")
    assert "投诉处理绩效" in zh and "预警：失控的时期" in zh and "顾客原话" in zh


def test_planted_truth_found(pack, truth):
    metrics = json.loads(pack.metrics_path.read_text(encoding="utf-8"))
    m = metrics["sections"]["complaints"]
    assert KEYS <= set(m)
    tc = truth["complaints"]
    top = m["by_category"][0]
    assert top["category"] == tc["rising_category"] and top["growth_rank"] == 1
    assert top["p_adjusted"] < 0.05 and top["trend_slope"] > 0
    flagged = {(a["period"], a["category"]) for a in m["alerts"]}
    assert (tc["spike_month"], tc["spike_category"]) in flagged
    assert len(flagged) <= 2  # ordinary months are not flagged
    assert len(m["periods"]) == 24 and {"period", "complaints", "complaint_rate", "rate_per_1000"} <= set(m["periods"][0])
    assert sum(p["complaints"] for p in m["periods"]) == sum(sum(v) for v in tc["monthly_counts_by_category"].values())
    res = m["resolution"]
    assert {"median_hours", "p90_hours", "within_sla_share", "open_backlog"} <= set(res)
    assert res["open_backlog"] > 0 and 0 < res["within_sla_share"] < 1
    assert m["iceberg"]["is_estimate"] is True
    assert m["churn_link"]["associational"] is True


def test_manager_html_is_escaped_and_masked(pack):
    for r in pack.results:
        page = r.html.read_text(encoding="utf-8")
        assert "<b>Very urgent!</b>" not in page and "<b>非常着急！</b>" not in page
        assert "@qq.com" not in page and "@163.com" not in page


def test_headline_findings(pack):
    metrics = json.loads(pack.metrics_path.read_text(encoding="utf-8"))
    nbm = metrics["notebooks"]["03_complaint_trends"]
    findings = nbm["findings"]
    per_lang = findings if isinstance(findings, dict) else {"en": findings}
    for lang, items in per_lang.items():
        heads = [f for f in items if f["headline"]]
        assert 3 <= len(heads) <= 5, lang


def test_zh_sample_runs_headless(sample_dir_zh, tmp_path):
    """The Chinese CSV sample (3,000 customers): too small for the planted effects to be certain, so this
    checks the run, the metrics and that the findings are in Chinese."""
    import papermill as pm

    metrics_path = tmp_path / "m.json"
    old = os.environ.get("WORKBENCH_REPORT")
    os.environ["WORKBENCH_REPORT"] = "1"
    try:
        pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(NOTEBOOK.parent), progress_bar=False,
                            parameters={"data": str(sample_dir_zh), "period": "2026-10", "lang": "zh",
                                        "metrics_path": str(metrics_path)})
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_REPORT", None)
        else:
            os.environ["WORKBENCH_REPORT"] = old
    m = json.loads(metrics_path.read_text(encoding="utf-8"))
    assert KEYS <= set(m["metrics"])
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in f["text"]) for f in m["findings"])
    cats = {c["category"] for c in m["metrics"]["by_category"]}
    truth = json.loads((sample_dir_zh / "TRUTH.json").read_text(encoding="utf-8"))["complaints"]
    assert truth["rising_category"] in cats and truth["spike_category"] in cats
