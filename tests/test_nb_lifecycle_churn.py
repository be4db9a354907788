"""Headless runs of notebooks/04_lifecycle_churn.ipynb (report mode): the sample in en and zh, a real
transaction log without a churn flag (CDNOW) and a snapshot export with only ``churned_at``."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nbrun import run_notebook

papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "04_lifecycle_churn.ipynb"
REALDATA = REPO / ".." / "shared" / "realdata"


def _run(tmp_path: Path, data: Path, lang: str, period: str, **params) -> dict:
    payload = run_notebook(NOTEBOOK, data, lang, tmp_path, period, section="lifecycle_churn", **params)
    text = json.dumps(payload, ensure_ascii=False)
    assert '"C0' not in text and "customer_id" not in text  # no customer-level rows in the metrics
    return payload


def _check_rate(m: dict) -> None:
    r = m["annual_churn_rate"]
    assert 0 <= r["low"] <= r["rate"] <= r["high"] <= 1 and r["lost"] <= r["n"]
    if r["window_days"] == 365:
        assert r["rate"] == pytest.approx(r["lost"] / r["n"])


def test_notebook_sample_en(tmp_path, sample_dir, truth):
    payload = _run(tmp_path, sample_dir, "en", "2026-10")
    m = payload["metrics"]
    assert {"stage_counts", "stage_by_tier", "stage_flow", "annual_churn_rate", "cohort_retention", "survival",
            "hazard_ratios", "multichannel", "churn_reasons", "risk_models", "winback"} <= set(m)
    _check_rate(m)
    # every customer who bought is in exactly one stage at the last snapshot
    last = list(m["stage_counts"].values())[-1]
    by_tier = sum(sum(row.values()) for row in m["stage_by_tier"].values())
    assert sum(last.values()) == by_tier
    kpis = {k["key"]: k for k in payload["kpis"]}
    assert kpis["annual_churn_rate"]["unit"] == "share" and kpis["annual_churn_rate"]["better"] == "lower"
    assert kpis["active_customers_at_risk"]["unit"] == "count" and kpis["active_customers_at_risk"]["better"] == "lower"
    assert kpis["active_customers_at_risk"]["value"] == last["lapsing"]
    assert any(f["headline"] for f in payload["findings"])


def test_notebook_sample_zh(tmp_path, sample_dir_zh):
    payload = _run(tmp_path, sample_dir_zh, "zh", "2026-10")
    _check_rate(payload["metrics"])
    assert "合约客户" not in json.dumps(payload["metrics"]["hazard_ratios"], ensure_ascii=False)  # named 'contract'
    assert "contract" in payload["metrics"]["hazard_ratios"]


@pytest.mark.skipif(not (REALDATA / "CDNOW_sample.txt").is_file(), reason="../shared/realdata is absent")
def test_notebook_on_a_transaction_log_without_churn_flag(tmp_path):
    payload = _run(tmp_path, REPO / "examples" / "cdnow", "en", "1998-06")
    m = payload["metrics"]
    _check_rate(m)
    r = m["annual_churn_rate"]
    assert r["source"] == "transactions"
    if r["window_days"] < 365:  # 18 months of data: the window's loss annualised at a constant hazard
        assert r["rate"] == pytest.approx(1 - (1 - r["lost"] / r["n"]) ** (365 / r["window_days"]))
    # sections that need data CDNOW lacks say why instead of failing
    assert "stage_counts" in m and "survival" in m


def _snapshot(folder: Path) -> Path:
    """A telco-like snapshot: customers with signup_date and churned_at only, monthly bills until churn."""
    from workbench.engine import dataset_from_frames

    rng = np.random.default_rng(7)
    n = 600
    start = dt.date(2022, 1, 1)
    signup = rng.integers(0, 900, n)
    contract = rng.random(n) < 0.3
    life = rng.exponential(365 / np.where(contract, 0.15, 0.45))
    end_day = (dt.date(2024, 12, 31) - start).days
    churn = signup + life
    cust = pd.DataFrame({"customer_id": [f"S{i:04d}" for i in range(n)],
                         "signup_date": [start + dt.timedelta(days=int(d)) for d in signup],
                         "segment": np.where(contract, "Contract", "Monthly"),
                         "churned_at": [start + dt.timedelta(days=int(c)) if c <= end_day else None for c in churn]})
    rows = []
    for i in range(n):
        for d in range(int(signup[i]), int(min(churn[i], end_day)) + 1, 30):
            rows.append((f"S{i:04d}", start + dt.timedelta(days=d), 30.0 + 20 * contract[i]))
    tx = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    dataset_from_frames({"customers": cust, "transactions": tx}, folder).close()
    return folder


def test_notebook_on_a_snapshot_with_only_churned_at(tmp_path):
    data = _snapshot(tmp_path / "snapshot")
    payload = _run(tmp_path, data, "en", "2024-12")
    m = payload["metrics"]
    assert m["annual_churn_rate"]["source"] == "churned_at"
    cust = pd.read_parquet(data / "customers.parquet")
    t1 = pd.Timestamp("2024-12-31")
    t0 = t1 - pd.Timedelta(days=365)
    ca = pd.to_datetime(cust["churned_at"])
    base = cust[(pd.to_datetime(cust["signup_date"]) <= t0) & (ca.isna() | (ca > t0))]
    lost = (pd.to_datetime(base["churned_at"]) <= t1).sum()
    assert m["annual_churn_rate"]["n"] == len(base) and m["annual_churn_rate"]["lost"] == lost
    assert m["survival"]["events"] == int((ca <= t1).sum())
    assert m["hazard_ratios"]["contract"]["high"] < 1  # contract customers stay longer


def test_live_rules_move_in_a_kernel(sample_dir):
    """JupyterLab's way: run the start and explorer cells in a real kernel, then move the horizon slider with
    the comm message a browser sends; the text and the chart in the widget's output area follow."""
    import base64

    from jupyter_client.manager import start_new_kernel

    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_REPORT"}
    env["PYTHONPATH"] = str(REPO)
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(NOTEBOOK.parent))

    def collect(parent: str) -> list[dict]:
        msgs = []
        while True:
            m = kc.get_iopub_msg(timeout=600)
            if m["parent_header"].get("msg_id") == parent:
                msgs.append(m)
                assert m["msg_type"] != "error", m["content"].get("traceback")
                if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    return msgs

    try:
        collect(kc.execute(cells[0] + f"\ndata = {str(sample_dir)!r}\nperiod = '2026-10'\nlang = 'en'"))
        collect(kc.execute(next(c for c in cells if "start(" in c)))
        msgs = collect(kc.execute(next(c for c in cells if "rules_explorer" in c)))
        opened = {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in msgs if m["msg_type"] == "comm_open"}
        horizon = next(cid for cid, s in opened.items() if s.get("description") == "Churn horizon (days)")
        msg = kc.session.msg("comm_msg", {"comm_id": horizon, "data": {"method": "update", "state": {"value": 250},
                                                                       "buffer_paths": []}})
        kc.shell_channel.send(msg)
        got = [m["content"]["data"]["state"] for m in collect(msg["header"]["msg_id"])
               if m["msg_type"] == "comm_msg" and m["content"]["data"].get("method") == "update"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    text = next(s["value"] for s in got if isinstance(s.get("value"), str))
    assert "with a 250-day horizon" in text
    outputs = next(s["outputs"] for s in got if "outputs" in s)  # the chart is in the output area, not beside it
    fig = outputs[0]["data"]["application/vnd.plotly.v1+json"]

    def last(y):
        return (np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]) if isinstance(y, dict) else y)[-1]

    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "amount"])
    assert sum(int(last(tr["y"])) for tr in fig["data"]) == tx.loc[tx["amount"] > 0, "customer_id"].nunique()
