"""The complaint-trends notebook runs headlessly, finds what the sample planted, and joins the report pack."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nbrun import run_notebook

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_complaint_trends.ipynb"
KEYS = {"periods", "by_category", "alerts", "resolution", "churn_link", "iceberg"}
#: KPI tiles the notebook records (timely_share only where the export has the SLA flag)
KPIS = ("complaint_rate", "complaints", "rising_complaint_categories", "complaint_spikes", "open_complaints")


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
    m = run_notebook(NOTEBOOK, sample_dir_zh, "zh", tmp_path)
    assert KEYS <= set(m["metrics"])
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in f["text"]) for f in m["findings"])
    kpis = {k["key"]: k for k in m["kpis"]}
    assert set(KPIS) <= set(kpis)
    assert all(kpis[k]["n"] is not None and kpis[k]["how"] and kpis[k]["label"] for k in KPIS)
    assert kpis["complaints"]["value"] == m["metrics"]["period_summary"]["complaints"]
    cats = {c["category"] for c in m["metrics"]["by_category"]}
    truth = json.loads((sample_dir_zh / "TRUTH.json").read_text(encoding="utf-8"))["complaints"]
    assert truth["rising_category"] in cats and truth["spike_category"] in cats


def test_report_period_check_agrees_with_workbench_alerts(pack, sample_dir):
    """The report's check of its period and `workbench alerts --since` share cells, model and dispersion."""
    from workbench.complaints import run_alerts

    metrics = json.loads(pack.metrics_path.read_text(encoding="utf-8"))
    cur = metrics["sections"]["complaints"]["alerts_current"]
    run = run_alerts(sample_dir, since="2026-10-01", granularity="month", lang="en")
    assert cur["dispersion"] == pytest.approx(run.payload["dispersion"])
    assert {(b["period"], b["category"]) for b in cur["breaches"]} == {(b["period"], b["category"]) for b in run.breaches}
    assert cur["cells_checked"] == run.checked


# ----------------------------------------------------------------- hostile data: run or skip, never crash
def _run_notebook(data: Path, period: str, lang: str, tmp_path: Path) -> dict:
    return run_notebook(NOTEBOOK, data, lang, tmp_path, period)


def _frames_dir(frames: dict, folder: Path) -> Path:
    from workbench.engine import dataset_from_frames

    dataset_from_frames(frames, folder).close()
    return folder


def _check_common(m: dict) -> None:
    """No headline without a finite, narrow interval; every category's trend row has a status."""
    for row in m["metrics"].get("by_category", []):
        assert row["status"] in ("ok", "reversed", "not_estimable", "short_history")
        if row["status"] in ("not_estimable", "short_history"):
            assert row["trend_slope"] is None and row["ci_low"] is None
    heads = [f for f in m["findings"] if f["headline"] and f["key"] == "rising"]
    for f in heads:
        row = next(r for r in m["metrics"]["by_category"] if r["trend_slope"] == f["value"])
        assert row["status"] == "ok" and row["p_adjusted"] < 0.05 and row["ci_high"] - row["ci_low"] <= 1.0


def test_notebook_on_cfpb_status_only_no_ids_no_transactions(tmp_path):
    """The real CFPB export (status-only closing, no customer ids, no transactions, sparse early history)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_tc", Path(__file__).with_name("test_complaints.py"))
    tc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tc)
    CFPB, OPEN_CFPB, cfpb_frame = tc.CFPB, tc.OPEN_CFPB, tc.cfpb_frame
    if CFPB is None:
        pytest.skip("shared/realdata/cfpb_complaints_sample_2019.csv not found")
    frame = cfpb_frame()
    data = _frames_dir({"complaints": frame}, tmp_path / "cfpb")
    m = _run_notebook(data, "2019-12", "en", tmp_path)
    _check_common(m)
    res = m["metrics"]["resolution"]
    assert res["close_times"] is False and res["as_of"].startswith("2020-01-01")
    window = frame[(frame["opened_at"] >= "2018-01-01") & (frame["opened_at"] < "2020-01-01")]
    assert res["open_backlog"] == window["status"].isin(OPEN_CFPB).sum()
    assert any("No close times in the data" in n for n in m["notes"])
    periods = m["metrics"]["periods"]
    assert periods[0]["period"] == "2018-01" and len(periods) == 24
    dec = frame[(frame["opened_at"] >= "2019-12-01") & (frame["opened_at"] < "2020-01-01")]
    assert m["metrics"]["period_summary"]["complaints"] == len(dec)
    assert m["metrics"]["period_summary"]["complainers"] is None  # no customer ids: not counted, not zero


def test_notebook_on_header_only_complaints(tmp_path):
    comp = pd.DataFrame({"complaint_id": pd.Series([], dtype=str), "opened_at": pd.Series([], dtype="datetime64[us]"),
                         "category": pd.Series([], dtype=str), "status": pd.Series([], dtype=str)})
    # a header-only complaints export beside data that has rows: the table counts as absent (empty_table)
    # and every complaint section says so; a dataset of nothing but empty tables is 'no data' (exit 3)
    tx = pd.DataFrame({"customer_id": ["c1", "c2"], "date": pd.to_datetime(["2026-10-03", "2026-10-20"]),
                       "amount": [10.0, 20.0]})
    data = _frames_dir({"complaints": comp, "transactions": tx}, tmp_path / "empty")
    m = _run_notebook(data, "2026-10", "zh", tmp_path)
    _check_common(m)
    assert "period_summary" not in m["metrics"]
    assert m["notes"] and all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in m["notes"])
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in f["text"]) for f in m["findings"])


def test_notebook_on_one_category_empty_period_no_close_times(tmp_path):
    rng = np.random.default_rng(1)
    n = 400
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(n)],
                         "opened_at": [dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(h))
                                       for h in rng.integers(0, 364 * 24, n)],
                         "category": "only", "status": rng.choice(["Closed", "Open", "Resolved"], n)})
    data = _frames_dir({"complaints": comp}, tmp_path / "one")
    m = _run_notebook(data, "2026-02", "en", tmp_path)  # the data ends in December 2025
    _check_common(m)
    assert m["metrics"]["period_summary"]["complaints"] == 0
    assert any(f["key"] == "volume" and "no complaints" in f["text"] for f in m["findings"])
    assert m["metrics"]["resolution"]["close_times"] is False
    assert len(m["metrics"]["by_category"]) == 1


def test_notebook_cells_are_short_with_a_question_per_section():
    """Notebooks 00 and 03: every code cell but the parameters cell has at most 6 lines, each section a
    one-line markdown question before it and one nb.show; the last cell saves."""
    for path in (NOTEBOOK, NOTEBOOK.with_name("00_data_overview.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        assert "parameters" in cells[0]["metadata"]["tags"]
        assert "start(" in "".join(cells[1]["source"]) and "".join(cells[-1]["source"]).strip() == "nb.save()"
        for i, c in enumerate(cells[2:-1], start=2):
            src = "".join(c["source"]).strip()
            if c["cell_type"] == "code":
                assert len(src.splitlines()) <= 6 and src.count("nb.show(") == 1, (path.name, i)
                assert cells[i - 1]["cell_type"] == "markdown", (path.name, i)
            else:
                assert len(src.splitlines()) == 1 and "?" in src, (path.name, i)
