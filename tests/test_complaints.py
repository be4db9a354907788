"""Complaint analyses: each number checked a second, independent way, on hand-built data
that goes through the real loader (``dataset_from_frames`` / a ``workbench.toml``)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from workbench import complaints as C
from workbench.engine import MissingDataError, dataset_from_frames, open_dataset

START, END = dt.date(2025, 1, 1), dt.date(2026, 1, 1)


# ----------------------------------------------------------------- fixtures
def hand_frames(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_tx = 3000
    days = rng.integers(0, 365, n_tx)
    tx = pd.DataFrame({
        "customer_id": [f"C{i:03d}" for i in rng.integers(0, 400, n_tx)],
        "date": [(START + dt.timedelta(days=int(d))).isoformat() for d in days],
        "amount": np.round(rng.uniform(-20, 300, n_tx), 2),
        "order_id": [f"O{i:05d}" for i in range(n_tx)],
    })
    n_c = 600
    opened = [dt.datetime(2025, 1, 1, 8) + dt.timedelta(hours=int(h)) for h in rng.integers(0, 364 * 24, n_c)]
    cats = rng.choice(["delivery", "billing", "quality"], n_c, p=[0.5, 0.3, 0.2])
    closed = [o + dt.timedelta(hours=int(h)) if rng.random() > 0.1 else None
              for o, h in zip(opened, rng.integers(1, 200, n_c), strict=True)]
    comp = pd.DataFrame({
        "complaint_id": [f"K{i:04d}" for i in range(n_c)],
        "customer_id": [f"C{i:03d}" for i in rng.integers(0, 400, n_c)],
        "opened_at": opened,
        "closed_at": closed,
        "status": ["closed" if c is not None else "open" for c in closed],
        "category": cats,
        "channel": rng.choice(["phone", "app"], n_c),
        "handler": rng.choice(["Team A", "Team B", "Lone Wolf"], n_c, p=[0.6, 0.38, 0.02]),
        "text": "late parcel",
    })
    return {"transactions": tx, "complaints": comp}


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    frames = hand_frames()
    ds = dataset_from_frames(frames, tmp_path_factory.mktemp("hand"))
    yield ds, frames
    ds.close()


# ----------------------------------------------------------------- 1 volume and rates
@pytest.mark.parametrize("granularity,freq", [("month", "MS"), ("week", "W-MON"), ("quarter", "QS")])
def test_counts_and_rates_match_independent_groupby(hand, granularity, freq):
    ds, f = hand
    got = C.volume(ds, START, END, granularity)
    comp, tx = f["complaints"].copy(), f["transactions"].copy()
    comp["p"] = pd.to_datetime(comp["opened_at"]).dt.to_period(freq[0] if freq != "W-MON" else "W-SUN").dt.start_time
    tx = tx[tx["amount"] > 0]
    tx["p"] = pd.to_datetime(tx["date"]).dt.to_period(freq[0] if freq != "W-MON" else "W-SUN").dt.start_time
    n = comp.groupby("p").size()
    k = comp.groupby("p")["customer_id"].nunique()
    buyers = tx.groupby("p")["customer_id"].nunique()
    orders = tx.groupby("p")["order_id"].nunique()
    got = got.set_index(pd.to_datetime(got["period"]))
    common = n.index.intersection(got.index)
    assert len(common) >= 4
    assert (got.loc[common, "complaints"] == n[common]).all()
    assert (got.loc[common, "complainers"] == k[common]).all()
    assert np.allclose(got.loc[common, "complaint_rate"], k[common] / buyers[common])
    assert np.allclose(got.loc[common, "rate_per_1000"], 1000 * n[common] / buyers[common])
    assert np.allclose(got.loc[common, "per_1000_orders"], 1000 * n[common] / orders[common])
    assert got["complaints"].sum() == len(comp)


def test_volume_by_category_and_pareto(hand):
    ds, f = hand
    got = C.volume(ds, START, END, "month", by="category")
    comp = f["complaints"].assign(p=pd.to_datetime(f["complaints"]["opened_at"]).dt.to_period("M").dt.start_time)
    ref = comp.groupby(["p", "category"]).size()
    g = got.set_index([pd.to_datetime(got["period"]), "category"])["complaints"]
    assert (g[ref.index] == ref).all()
    assert np.allclose(got.groupby("period")["share"].sum(), 1.0)
    par = C.pareto(ds, START, END)
    assert par["category"].tolist() == comp["category"].value_counts().index.tolist()
    assert par["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    by_handler = C.volume(ds, START, END, "quarter", by="handler")
    assert by_handler["complaints"].sum() == len(comp)


def test_volume_without_transactions_has_counts_but_no_rates(tmp_path):
    comp = hand_frames()["complaints"]
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    v = C.volume(ds, START, END, "month")
    assert v["complaints"].sum() == len(comp)
    assert v["complaint_rate"].isna().all()
    cells = C.alert_cells(ds, START, END, "month")
    assert (cells["exposure_unit"] == "days").all()
    assert cells.groupby("period")["exposure"].first().sum() == 365


# ----------------------------------------------------------------- 3 control limits
def test_u_chart_textbook_formula():
    counts = [12, 8, 15, 30, 10]
    n = [2.0, 1.5, 2.5, 2.0, 1.0]  # thousands of customers
    got = C.u_chart(counts, n)
    ubar = sum(counts) / sum(n)
    for i in range(5):
        assert got["center"][i] == pytest.approx(ubar)
        assert got["ucl"][i] == pytest.approx(ubar + 3 * math.sqrt(ubar / n[i]))
        assert got["lcl"][i] == pytest.approx(max(0.0, ubar - 3 * math.sqrt(ubar / n[i])))
        assert got["u"][i] == pytest.approx(counts[i] / n[i])
    assert got["flagged"].tolist() == [False, False, False, True, False]


@pytest.mark.parametrize("mu", [0.3, 2.0, 7.5, 40.0, 900.0])
def test_upper_limit_is_the_poisson_quantile(mu):
    lim = int(C.upper_limit(mu, 0.00135)[0])
    assert stats.poisson.sf(lim, mu) <= 0.00135 < stats.poisson.sf(lim - 1, mu)


def test_upper_limit_negative_binomial_with_dispersion():
    mu, phi = 20.0, 2.5
    lim = int(C.upper_limit(mu, 0.001, phi)[0])
    r = mu / (phi - 1)
    nb = stats.nbinom(r, r / (r + mu))
    assert nb.mean() == pytest.approx(mu) and nb.var() == pytest.approx(phi * mu)
    assert nb.sf(lim) <= 0.001 < nb.sf(lim - 1)
    assert lim > C.upper_limit(mu, 0.001)[0]


def sim_cells(rng, months=24, cats=("a", "b", "c", "d", "e", "f"), base=(20, 12, 8, 5, 3, 30), season=True,
              spike=None, trend=None):
    periods = [dt.date(2024 + (m // 12), m % 12 + 1, 1) for m in range(months)]
    seas = {m: 1 + 0.3 * math.sin(2 * math.pi * m / 12) for m in range(1, 13)} if season else dict.fromkeys(range(1, 13), 1)
    rows = []
    for i, p in enumerate(periods):
        expo = 1000 * (1 + 0.3 * rng.random())
        for c, b in zip(cats, base, strict=True):
            mu = b * expo / 1000 * seas[p.month]
            if trend and c == trend[0]:
                mu *= math.exp(trend[1] * i)
            if spike and (i, c) == spike[:2]:
                mu *= spike[2]
            rows.append({"period": p, "category": c, "complaints": int(rng.poisson(mu)), "exposure": expo,
                         "days": 30, "buyers": expo, "label": C.period_label(p, "month")})
    return pd.DataFrame(rows)


def test_planted_spike_is_flagged_and_ordinary_months_not():
    rng = np.random.default_rng(11)
    cells = sim_cells(rng, spike=(15, "b", 4.0))
    got = C.detect_alerts(cells)
    flagged = got[got["flagged"]]
    assert list(zip(flagged["period"], flagged["category"], strict=True)) == [(dt.date(2025, 4, 1), "b")]
    row = flagged.iloc[0]
    assert row["complaints"] > row["upper_limit"] > row["expected"]
    # the spike is fitted out: its expectation stays near the planted base (12 × exposure × season)
    assert row["expected"] < 0.5 * row["complaints"]


def test_spike_in_latest_period_flagged_out_of_sample():
    rng = np.random.default_rng(5)
    cells = sim_cells(rng, spike=(23, "d", 5.0))
    got = C.detect_alerts(cells, judge_from=dt.date(2025, 12, 1))
    assert got["judged"].sum() == 6
    assert got.loc[got["flagged"], "category"].tolist() == ["d"]


@pytest.mark.parametrize("judge_from", [None, dt.date(2025, 10, 1)])
def test_pure_poisson_noise_flag_rate_within_nominal(judge_from):
    rng = np.random.default_rng(2026)
    flags = cells_checked = 0
    alpha = 0.01  # a loose limit so the rate is measurable in a fast test
    for _ in range(120):
        got = C.detect_alerts(sim_cells(rng), alpha=alpha, judge_from=judge_from)
        flags += int(got["flagged"].sum())
        cells_checked += int(got["judged"].sum())
    rate = flags / cells_checked
    # nominal + 3 binomial SEs (discreteness makes the true rate lower than alpha)
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / cells_checked), rate
    assert rate > 0  # the limits are not absurdly wide either


def test_alerts_need_history():
    cells = sim_cells(np.random.default_rng(1), months=4)
    with pytest.raises(ValueError, match="history"):
        C.detect_alerts(cells, judge_from=dt.date(2024, 3, 1))


# ----------------------------------------------------------------- 2 trends
def test_category_trend_finds_the_rising_category_with_corrected_p():
    rng = np.random.default_rng(3)
    cells = sim_cells(rng, trend=("c", 0.05))
    got = C.category_trends(cells)
    assert got.iloc[0]["category"] == "c"
    top = got.iloc[0]
    assert top["p_adjusted"] < 0.01
    assert (got["p_adjusted"] >= got["p_value"]).all()
    assert got["growth_rank"].tolist() == list(range(1, 7))
    flat = got[got["category"] != "c"]
    assert (flat["p_adjusted"] > 0.01).all()


def test_trend_ci_covers_the_planted_slope():
    rng = np.random.default_rng(30)
    hits = 0
    for _ in range(40):
        top = C.category_trends(sim_cells(rng, trend=("c", 0.05))).set_index("category").loc["c"]
        hits += top["ci_low"] < math.expm1(0.05) < top["ci_high"]
    assert hits >= 33  # nominal 95%: 38 of 40; allow for chance


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_p_value_adjustment_matches_statsmodels(method):
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(0).random(9) ** 3
    assert np.allclose(C.adjust_pvalues(p, method), multipletests(p, method=method)[1])


def test_decompose_stl_recovers_seasonality():
    periods = [dt.date(2024 + m // 12, m % 12 + 1, 1) for m in range(36)]
    season = np.array([math.sin(2 * math.pi * p.month / 12) for p in periods])
    y = 10 + 0.1 * np.arange(36) + 2 * season
    series = pd.DataFrame({"period": periods, "label": [C.period_label(p, "month") for p in periods],
                           "complaint_rate": y, "complaints": y})
    got = C.decompose(series)
    assert got["method"].iloc[0] == "STL"
    assert np.corrcoef(got["seasonal"], season)[0, 1] > 0.95
    assert np.allclose(got["observed"], got["trend"] + got["seasonal"] + got["resid"])


# ----------------------------------------------------------------- 4 handling / censoring
def test_kaplan_meier_median_with_open_complaints_censored(tmp_path):
    t0 = dt.datetime(2025, 3, 1, 9)
    # closed after 10, 20, 30, 40, 50 hours; three open since 25, 35 and 45 hours before the data's end
    end = t0 + dt.timedelta(hours=100)
    rows = [(t0, t0 + dt.timedelta(hours=h)) for h in (10, 20, 30, 40, 50)]
    rows += [(end - dt.timedelta(hours=h), None) for h in (25, 35, 45)]
    rows.append((t0, end))  # closed at the data's end (100 h) — fixes as_of
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(len(rows))],
                         "opened_at": [r[0] for r in rows], "closed_at": [r[1] for r in rows],
                         "category": "x", "status": ["closed" if r[1] else "open" for r in rows]})
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    h = C.handling(ds, dt.date(2025, 1, 1), dt.date(2025, 12, 1), sla_hours=24)
    # hand computation: events at 10,20 (n=9,8), censored 25, event 30 (n=6), censored 35, event 40 (n=4),
    # censored 45, event 50 (n=2), event 100 (n=1)
    s = 1.0
    surv = {}
    for t_, n_ in ((10, 9), (20, 8), (30, 6), (40, 4), (50, 2), (100, 1)):
        s *= 1 - 1 / n_
        surv[t_] = s
    median = min(t_ for t_, v in surv.items() if v <= 0.5)
    assert median == 40
    assert h.overall["median_hours"] == pytest.approx(median)
    assert h.overall["within_sla_share"] == pytest.approx(1 - surv[20])
    assert h.overall["open_backlog"] == 3
    # dropping the open complaints would understate the time (median of 10..50,100 = 35)
    assert np.median([10, 20, 30, 40, 50, 100]) < median
    from statsmodels.duration.survfunc import SurvfuncRight

    sf = SurvfuncRight(np.array([10, 20, 30, 40, 50, 100, 25, 35, 45.0]), np.array([1, 1, 1, 1, 1, 1, 0, 0, 0]))
    assert sf.quantile(0.5) == pytest.approx(median)


def test_status_closed_without_time_is_counted_and_reported(tmp_path):
    t0 = dt.datetime(2025, 3, 1, 9)
    comp = pd.DataFrame({
        "complaint_id": ["K1", "K2", "K3", "K4", "K5"],
        "opened_at": [t0] * 5,
        "closed_at": [t0 + dt.timedelta(hours=5), None, None, None, t0 + dt.timedelta(hours=50)],
        "status": ["closed", "已解决", "Resolved", "open", "closed"],
        "category": "x",
    })
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    h = C.handling(ds, dt.date(2025, 1, 1), dt.date(2025, 12, 1))
    assert h.overall["closed"] == 4
    assert h.overall["open_backlog"] == 1
    assert h.overall["closed_without_time"] == 2
    # curve on K1 (5 h), K5 (50 h) and K4 censored at 50 h: median 50
    assert h.overall["median_hours"] == pytest.approx(50)
    custom = C.handling(ds, dt.date(2025, 1, 1), dt.date(2025, 12, 1), closed_statuses=("closed",))
    assert custom.overall["open_backlog"] == 3


def test_handling_by_handler_marks_small_n(hand):
    ds, f = hand
    h = C.handling(ds, START, END, sla_hours=48)
    tab = h.by["handler"].set_index("handler")
    counts = f["complaints"]["handler"].value_counts()
    assert (tab["complaints"] == counts[tab.index]).all()
    assert tab.loc["Lone Wolf", "small_n"] and not tab.loc["Team A", "small_n"]
    # open at the period end (END), not at the data end: closed later is still open then
    closed_at = f["complaints"]["closed_at"]
    assert h.overall["open_backlog"] == (closed_at.isna() | (closed_at > pd.Timestamp(END))).sum()
    assert (closed_at > pd.Timestamp(END)).sum() > 0  # the data runs past the period end
    assert 0 < h.overall["within_sla_share"] < 1
    assert len(h.trend) == 12
    fig = C.figure_handlers(h.by["handler"], "zh")
    assert "样本少" in str(fig.data[0].y)


# ----------------------------------------------------------------- 5 churn link
def test_churn_link_groups_and_wilson_ci(tmp_path):
    from statsmodels.stats.proportion import proportion_confint

    rng = np.random.default_rng(4)
    n = 600
    cust = [f"C{i:03d}" for i in range(n)]
    tx = pd.DataFrame({"customer_id": cust, "date": "2025-03-10", "amount": rng.uniform(10, 500, n)})
    comp_ids = cust[:200]
    resolved = [i < 120 for i in range(200)]
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(200)], "customer_id": comp_ids,
                         "opened_at": pd.Timestamp("2025-04-01 10:00"), "category": "x",
                         "closed_at": [pd.Timestamp("2025-04-02") if r else pd.NaT for r in resolved],
                         "resolution": ["refund" if r else None for r in resolved]})
    # churn: unresolved complainers mostly never return; others mostly do
    back = np.r_[rng.random(120) < 0.8, rng.random(80) < 0.3, rng.random(400) < 0.7]
    later = pd.DataFrame({"customer_id": np.array(cust)[back], "date": "2025-08-15", "amount": 50.0})
    tx = pd.concat([tx, later, pd.DataFrame({"customer_id": ["Z"], "date": ["2025-10-30"], "amount": [1.0]})])
    ds = dataset_from_frames({"transactions": tx, "complaints": comp}, tmp_path)
    link = C.churn_link(ds, churn_window_days=90, cohort_months=12)
    g = link.groups.set_index("group")
    assert g.loc["none", "customers"] == 400 and g.loc["resolved", "customers"] == 120
    assert g.loc["unresolved", "customers"] == 80
    assert g.loc["unresolved", "churned"] == (~back[120:200]).sum()
    lo, hi = proportion_confint(g.loc["unresolved", "churned"], 80, method="wilson")
    assert g.loc["unresolved", "ci_low"] == pytest.approx(lo) and g.loc["unresolved", "ci_high"] == pytest.approx(hi)
    m = link.model.set_index("term")
    assert m.loc["unresolved", "odds_ratio"] > 1 > m.loc["resolved", "odds_ratio"]
    assert link.by_tier["customers"].sum() == 600
    assert "Churn" in C.figure_churn_link(link).layout.title.text


# ----------------------------------------------------------------- 6 iceberg
def test_iceberg_counts_distinct_customers(tmp_path):
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(10)],
                         "customer_id": ["A", "A", "A", "B", "B", "C", "D", "E", "E", "F"],
                         "opened_at": pd.Timestamp("2025-05-05 12:00"), "category": "x"})
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    ice = C.iceberg_for(ds, dt.date(2025, 5, 1), dt.date(2025, 6, 1), voicing_share=0.10)
    assert ice.complainers == 6
    assert ice.estimated_dissatisfied == pytest.approx(60) and ice.silent == pytest.approx(54)
    assert ice.low == pytest.approx(6 / 0.25 - 6) and ice.high == pytest.approx(6 / 0.05 - 6)
    d = ice.to_dict()
    assert d["is_estimate"] is True and "assum" in d["assumption"]
    with pytest.raises(ValueError):
        C.iceberg(5, voicing_share=0)


# ----------------------------------------------------------------- 7 verbatims, escaping, masking
def test_script_escaped_and_chinese_mobile_masked(tmp_path):
    comp = pd.DataFrame({
        "complaint_id": ["K1", "K2", "K3", "K4"],
        "opened_at": pd.Timestamp("2025-05-05 12:00"),
        "category": ["<b>配送</b>", "<b>配送</b>", "账单", "账单"],
        "text": ["<script>alert('x')</script> 快递太慢了", "快递太慢了，我的手机号是13812345678",
                 "扣了两次钱", "扣了两次钱，联系 13912345678"],
    })
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    v = C.verbatims(ds, dt.date(2025, 5, 1), dt.date(2025, 6, 1), n_examples=5)
    html = C.verbatims_html(v, "zh")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>配送" not in html and "&lt;b&gt;配送" in html
    assert "13812345678" not in html and "13912345678" not in html
    assert "13812345678" not in v.examples.to_string()
    assert not v.terms["term"].astype(str).str.contains("138").any()
    assert v.terms["term"].astype(str).str.contains("快递").any()  # jieba segmentation
    fig = C.figure_pareto(C.pareto(ds, dt.date(2025, 5, 1), dt.date(2025, 6, 1)))
    assert "<b>" not in "".join(map(str, fig.data[0].x))


# ----------------------------------------------------------------- messy exports through the config contract
def test_gbk_export_with_hierarchy_dayfirst_dates_and_status_only(tmp_path):
    rows = []
    rng = np.random.default_rng(9)
    prods = ["手机", "家电"]
    issues = ["配送慢", "质量问题", "退款"]
    for i in range(300):
        d = dt.date(2025, 1, 1) + dt.timedelta(days=int(rng.integers(0, 300)))
        rows.append({"编号": f"T{i:04d}", "日期": d.strftime("%d/%m/%Y"), "产品": prods[i % 2],
                     "问题": issues[i % 3], "状态": ["已解决", "处理中", "已关闭"][i % 3],
                     "内容": f"第{i}号投诉：{issues[i % 3]}"})
    raw = pd.DataFrame(rows)
    raw.to_csv(tmp_path / "export.csv", index=False, encoding="gbk")
    (tmp_path / "workbench.toml").write_text(
        '[dataset]\nname = "messy"\n\n[tables.complaints]\nsource = "export.csv"\nencoding = "gbk"\n'
        'date_format = "%d/%m/%Y"\n\n[tables.complaints.columns]\ncomplaint_id = "编号"\nopened_at = "日期"\n'
        'category = "产品 || \' / \' || 问题"\nstatus = "状态"\ntext = "内容"\n', encoding="utf-8")
    ds = open_dataset(tmp_path / "workbench.toml")
    assert ds.validation.ok
    par = C.pareto(ds, dt.date(2025, 1, 1), dt.date(2026, 1, 1)).set_index("category")["complaints"]
    ref = (raw["产品"] + " / " + raw["问题"]).value_counts()
    assert par.sort_index().to_dict() == ref.sort_index().to_dict()
    months = pd.to_datetime(raw["日期"], format="%d/%m/%Y").dt.to_period("M").value_counts()
    got = C.volume(ds, dt.date(2025, 1, 1), dt.date(2026, 1, 1)).set_index("label")["complaints"]
    assert all(got[str(m)] == c for m, c in months.items())
    h = C.handling(ds, dt.date(2025, 1, 1), dt.date(2026, 1, 1))
    assert h.overall["closed"] == 200 and h.overall["open_backlog"] == 100
    assert h.overall["closed_without_time"] == 200 and h.overall["median_hours"] is None


def test_findings_and_figures_in_both_languages(hand):
    ds, _ = hand
    cells = C.alert_cells(ds, START, END, "month")
    trends = C.category_trends(cells, season=False)
    alerts = C.detect_alerts(cells)
    h = C.handling(ds, START, END)
    ice = C.iceberg_for(ds, START, END)
    for lang in ("en", "zh"):
        fs = C.findings(lang, trends=trends, alerts=alerts, handling_result=h, ice=ice)
        assert {f["key"] for f in fs} == {"rising", "alerts", "handling", "iceberg"}
        assert all(f["text"] for f in fs)
        C.figure_control_chart(alerts, "delivery", lang)
        C.figure_resolution_curves(h, "category", "resolution", lang)
        C.figure_trend(C.volume(ds, START, END), C.decompose(C.volume(ds, START, END)), lang)


def test_sample_truth_recovered(sample_ds, truth):
    """The seeded sample: the planted rising category leads the growth ranking and the spike is flagged."""
    tc = truth["complaints"]
    end = dt.date(2026, 11, 1)
    start = C.months_back(end, 24)
    cells = C.alert_cells(sample_ds, start, end, "month")
    trends = C.category_trends(cells)
    assert trends.iloc[0]["category"] == tc["rising_category"] and trends.iloc[0]["p_adjusted"] < 0.05
    alerts = C.detect_alerts(cells)
    flagged = set(zip(alerts.loc[alerts["flagged"], "label"], alerts.loc[alerts["flagged"], "category"], strict=True))
    assert (tc["spike_month"], tc["spike_category"]) in flagged
    assert len(flagged) <= 2
    counts = C.volume(sample_ds, start, end, by="category")
    for cat, series in tc["monthly_counts_by_category"].items():
        assert counts.loc[counts["category"] == cat, "complaints"].tolist() == series


def test_paths_are_plain(tmp_path: Path):
    assert C.period_label(dt.date(2026, 8, 1), "quarter") == "2026Q3"
    assert C.months_back(dt.date(2026, 11, 1), 24) == dt.date(2024, 11, 1)
    with pytest.raises(ValueError):
        C.volume(None, START, END, "year")  # type: ignore[arg-type]


def test_upper_limit_vectorised_handles_zero_and_missing():
    mu = np.array([0.0, np.nan, 3.0, 3.0, 250.0])
    got = C.upper_limit(mu, 0.001)
    assert got[0] == 0 and got[1] == 0 and got[2] == got[3]
    for m, lim in zip(mu[2:], got[2:], strict=True):
        assert stats.poisson.sf(lim, m) <= 0.001 < stats.poisson.sf(lim - 1, m)


# ----------------------------------------------------------------- issue 11: honest on any data
def test_default_closed_patterns_recognise_common_closing_words(tmp_path, monkeypatch):
    """Status-only closing (no close times): LIKE patterns, case-insensitive; negations stay open."""
    statuses = {  # status → closed?
        "Closed with explanation": True, "Closed with monetary relief": True,
        "Closed with non-monetary relief": True, "Closed": True, "CLOSED": True, "case closed": True,
        "Resolved": True, "resolved - customer informed": True, "Done": True, "completed": True,
        "已关闭": True, "已解决": True, "已完成": True, "关闭": True, "结案": True,
        "In progress": False, "Untimely response": False, "Open": False, "Unresolved": False,
        "Not resolved": False, "未解决": False, "处理中": False, "Reopened": False,
    }
    t0 = dt.datetime(2025, 3, 1, 9)
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(len(statuses))], "opened_at": t0,
                         "category": "x", "status": list(statuses)})
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    h = C.handling(ds, dt.date(2025, 1, 1), dt.date(2025, 12, 1))
    expected_open = sum(not v for v in statuses.values())
    assert h.overall["open_backlog"] == expected_open
    assert h.overall["closed"] == len(statuses) - expected_open
    assert h.overall["close_times"] is False
    # which rows: evaluate the predicate row by row in the engine
    got = ds.sql(f"SELECT status, {C.status_closed_sql(ds)} AS closed FROM complaints")
    assert dict(zip(got["status"], got["closed"], strict=True)) == statuses
    # configured patterns replace the defaults (workbench.toml closed_statuses → ds.closed_statuses)
    monkeypatch.setattr(type(ds), "closed_statuses", property(lambda self: ["in progress"]), raising=False)
    assert C.handling(ds, dt.date(2025, 1, 1), dt.date(2025, 12, 1)).overall["closed"] == 1
    # an explicit argument wins over the configuration
    custom = C.handling(ds, dt.date(2025, 1, 1), dt.date(2025, 12, 1), closed_statuses=["closed%", "%relief"])
    assert custom.overall["closed"] == sum(s.strip().lower().startswith("closed") for s in statuses)


def test_no_close_times_says_so_instead_of_a_curve(tmp_path):
    t0 = dt.datetime(2025, 3, 1, 9)
    comp = pd.DataFrame({"complaint_id": ["K1", "K2", "K3"], "opened_at": t0, "category": "x",
                         "status": ["Closed", "In progress", "Closed with explanation"]})
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    h = C.handling(ds, dt.date(2025, 1, 1), dt.date(2025, 12, 1))
    assert h.overall["median_hours"] is None and not (h.curves["kind"] == "resolution").any()
    for lang, phrase in (("en", "No close times in the data"), ("zh", "数据中没有关闭时间")):
        (f,) = C.findings(lang, handling_result=h)
        assert phrase in f["text"] and not f["headline"]
    assert "1" in C.findings("en", handling_result=h)[0]["text"]


def test_open_cases_and_backlog_age_at_the_period_end(tmp_path):
    """A complaint closed after the period end is open at the period end; its age runs to the period end."""
    rng = np.random.default_rng(4)
    opened = [dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(h)) for h in rng.integers(0, 300 * 24, 300)]
    closed = [o + dt.timedelta(hours=int(h)) if rng.random() > 0.15 else None
              for o, h in zip(opened, rng.integers(1, 24 * 60, 300), strict=True)]
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(300)], "opened_at": opened, "closed_at": closed,
                         "category": "x"})
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    start, end = dt.date(2025, 1, 1), dt.date(2025, 9, 1)
    h = C.handling(ds, start, end)
    pe = pd.Timestamp(end)
    inwin = comp[(comp["opened_at"] >= pd.Timestamp(start)) & (comp["opened_at"] < pe)]
    open_then = inwin[inwin["closed_at"].isna() | (inwin["closed_at"] > pe)]
    assert h.overall["open_backlog"] == len(open_then)
    assert h.overall["as_of"].startswith("2025-09-01")
    ages = (pe - open_then["opened_at"]).dt.total_seconds() / 3600
    assert h.overall["backlog_median_age_hours"] == pytest.approx(ages.median())
    # at the data's end instead, fewer are open (those closed between the period end and the data end)
    late = C.handling(ds, start, end, as_of=comp[["opened_at", "closed_at"]].max().max())
    assert late.overall["open_backlog"] == inwin["closed_at"].isna().sum() < len(open_then)


def test_history_starts_at_the_first_complaint(tmp_path):
    """Never zero-padded before the data: the first period is the first month with a complaint."""
    comp = hand_frames()["complaints"]
    comp = comp[comp["opened_at"] >= pd.Timestamp("2025-07-01")]
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    v = C.volume(ds, START, END, "month")
    assert v["period"].iloc[0] == dt.date(2025, 7, 1) and len(v) == 6
    assert v["complaints"].sum() == len(comp)
    cells = C.alert_cells(ds, START, END, "month")
    assert min(cells["period"]) == dt.date(2025, 7, 1)
    assert C.history_start(ds, START, "month") == dt.date(2025, 7, 1)
    assert C.history_start(ds, dt.date(2025, 9, 15), "month") == dt.date(2025, 9, 1)


def test_trends_every_category_min_history_holm_and_trimmed_to_first_data():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(8)
    cells = sim_cells(rng, cats=("a", "b", "c", "new", "rare"), base=(20, 12, 8, 10, 0.15), trend=("c", 0.05),
                      season=False)
    # 'new' starts in the 19th month: its earlier zeros are not history
    cells.loc[(cells["category"] == "new") & (cells["period"] < dt.date(2025, 7, 1)), "complaints"] = 0
    # without shared seasonality the joint Poisson likelihood separates by category
    got = C.category_trends(cells, min_history=6, season=False).set_index("category")
    assert set(got.index) == {"a", "b", "c", "new", "rare"}  # every category is reported
    with_data = cells[cells["complaints"] > 0].groupby("category")["period"].nunique()
    assert (got["periods"] == with_data.reindex(got.index).fillna(0)).all()
    assert got.loc["new", "periods"] == 6 and got.loc["new", "tested"]
    short = got[got["periods"] < 6]
    assert (short["status"] == "short_history").all() and short["trend_slope"].isna().all()
    assert short["p_adjusted"].isna().all()
    tested = got[got["tested"]]
    assert np.allclose(tested["p_adjusted"], multipletests(tested["p_value"], method="holm")[1])
    # 'new' fitted only from its first month: an independent Poisson GLM on those six months agrees on the slope
    import statsmodels.api as sm

    sub = cells[(cells["category"] == "new") & (cells["period"] >= dt.date(2025, 7, 1))].reset_index(drop=True)
    tt = np.arange(len(sub)) - (np.arange(24).mean() - 18)  # only the slope matters
    fit = sm.GLM(sub["complaints"], sm.add_constant(tt), family=sm.families.Poisson(),
                 offset=np.log(sub["buyers"])).fit()
    assert got.loc["new", "estimable"]
    assert got.loc["new", "trend_slope"] == pytest.approx(math.expm1(fit.params.iloc[1]), abs=1e-6)
    assert got.loc["c", "growth_rank"] == 1 and got.loc["c", "p_adjusted"] < 0.01


def test_absurd_intervals_are_not_estimable_and_never_a_headline():
    assert C.trend_estimable([0.01, -0.5, 0.1, np.nan], [0.05, 0.6, np.inf, 0.2]).tolist() == [True, False, False,
                                                                                               False]
    trends = pd.DataFrame({"category": ["Debt collection"], "complaints": [1231], "share": [0.2], "periods": [20],
                           "tested": [True], "trend_slope": [np.nan], "ci_low": [np.nan], "ci_high": [np.nan],
                           "p_value": [1e-9], "p_adjusted": [1e-9], "estimable": [False], "status": ["not_estimable"],
                           "growth_rank": [np.nan]})
    for lang in ("en", "zh"):
        (f,) = C.findings(lang, trends=trends)
        assert not f["headline"] and f["value"] is None
        assert not any(ch.isdigit() for ch in f["text"].replace("6", ""))  # only the minimum history is a number


def test_alerts_not_judged_without_history_and_trend_not_extrapolated_far():
    rng = np.random.default_rng(12)
    cells = sim_cells(rng, months=36, season=False, trend=("c", 0.04))
    cells["exposure"] = 1000.0
    # a category that starts in the judged periods: no history, never an alert, however large
    cells.loc[cells["category"] == "f", "complaints"] = 0
    cells.loc[(cells["category"] == "f") & (cells["period"] >= dt.date(2026, 1, 1)), "complaints"] = 500
    got = C.detect_alerts(cells, judge_from=dt.date(2025, 1, 1))
    f = got[got["category"] == "f"]
    assert not f["judged"].any() and not f["flagged"].any() and f["expected"].isna().all()
    assert "f" in got.attrs["without_history"]
    # the trend of 'c' is carried at most 3 periods past the last fitted one (2024-12), then held
    c = got[(got["category"] == "c") & (got["period"] >= dt.date(2025, 1, 1))].sort_values("period")
    exp = c["expected"].to_numpy()
    assert exp[0] < exp[1] < exp[2]
    assert np.allclose(exp[2:], exp[2])
    assert got.attrs["max_extrapolate"] == 3


def test_dispersion_is_pearson_chi2_and_shared_with_workbench_alerts(hand):
    ds, _ = hand
    since = dt.date(2025, 10, 1)
    res = C.judge_periods(ds, since, END, "month")
    run = C.run_alerts(ds, since=since.isoformat(), granularity="month")
    assert run.payload["dispersion"] == pytest.approx(res.attrs["dispersion"])
    fit = res[~res["judged"] & res["expected"].notna() & (res["period"] < since)]
    chi2 = float((((fit["complaints"] - fit["expected"]) ** 2) / fit["expected"]).sum())
    k = 2 * fit["category"].nunique()  # level + trend per category, no season with a year of history
    assert res.attrs["dispersion"] == pytest.approx(max(chi2 / (len(fit) - k), 1.0), rel=1e-6)


@pytest.fixture
def sla_schema(monkeypatch):
    """The optional complaints columns ``timely`` (binary) and ``outcome`` (text) — added to the schema
    by the 'semantics' work; patched in here until that is merged."""
    from dataclasses import replace

    from workbench import schema

    spec = schema.TABLES["complaints"]
    extra = tuple(schema.Column(n, k) for n, k in (("timely", "binary"), ("outcome", "text"))
                  if spec.column(n) is None)
    monkeypatch.setitem(schema.TABLES, "complaints", replace(spec, columns=spec.columns + extra))


def test_timely_share_with_wilson_ci_by_category_and_trend(tmp_path, sla_schema):
    from statsmodels.stats.proportion import proportion_confint

    rng = np.random.default_rng(6)
    n = 800
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(n)],
                         "opened_at": [dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(h))
                                       for h in rng.integers(0, 364 * 24, n)],
                         "category": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
                         "timely": rng.choice([1.0, 0.0, np.nan], n, p=[0.85, 0.12, 0.03]),
                         "outcome": rng.choice(["refund", "explanation", "", "apology"], n)})
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    assert ds.has("complaints", "timely") and ds.has("complaints", "outcome")
    p0, p1 = dt.date(2025, 10, 1), dt.date(2025, 11, 1)
    tm = C.timeliness(ds, p0, p1, history_start=START)
    per = comp[(comp["opened_at"] >= pd.Timestamp(p0)) & (comp["opened_at"] < pd.Timestamp(p1))]
    known = per.dropna(subset=["timely"])
    assert tm.overall["complaints"] == len(known) and tm.overall["unknown"] == per["timely"].isna().sum()
    assert tm.overall["share"] == pytest.approx(known["timely"].mean())
    lo, hi = proportion_confint(int(known["timely"].sum()), len(known), method="wilson")
    assert (tm.overall["ci_low"], tm.overall["ci_high"]) == pytest.approx((lo, hi))
    ref = known.groupby("category")["timely"].agg(["size", "sum"])
    bc = tm.by_category.set_index("category")
    for cat, r in ref.iterrows():
        lo, hi = proportion_confint(int(r["sum"]), int(r["size"]), method="wilson")
        assert bc.loc[cat, "complaints"] == r["size"] and bc.loc[cat, "share"] == pytest.approx(r["sum"] / r["size"])
        assert (bc.loc[cat, "ci_low"], bc.loc[cat, "ci_high"]) == pytest.approx((lo, hi))
    allk = comp.dropna(subset=["timely"])
    monthly = allk.groupby(allk["opened_at"].dt.to_period("M").dt.start_time)["timely"].mean()
    assert len(tm.trend) == 10
    assert np.allclose(tm.trend["share"], monthly.iloc[:10].to_numpy())
    # outcomes by category (empty outcome shown as '–')
    dist = C.outcomes(ds, p0, p1)
    ref = per.assign(outcome=per["outcome"].replace("", "–")).groupby(["category", "outcome"]).size()
    got = dist.set_index(["category", "outcome"])["complaints"]
    assert got.sort_index().to_dict() == ref.sort_index().to_dict()
    assert np.allclose(dist.groupby("category")["share"].sum(), 1.0)
    wide = C.outcome_table(dist, "category", "zh")
    assert wide["n"].sum() == len(per)


def test_timely_missing_is_a_skip_not_a_crash(hand):
    ds, _ = hand
    from workbench.engine import MissingDataError

    with pytest.raises(MissingDataError):
        C.timeliness(ds, START, END)
    with pytest.raises(MissingDataError):
        C.outcomes(ds, START, END)


@pytest.mark.parametrize("case", ["header_only", "one_category", "empty_period", "no_customer_ids"])
def test_functions_run_on_hostile_data(tmp_path, case):
    comp = hand_frames()["complaints"]
    if case == "header_only":
        comp = comp.iloc[:0]
    elif case == "one_category":
        comp = comp.assign(category="only")
    elif case == "no_customer_ids":
        comp = comp.drop(columns=["customer_id"])
    if case == "header_only":
        # an empty export loads as an absent table (warning empty_table): analyses skip with that reason
        one = pd.DataFrame({"customer_id": ["c1"], "signup_date": [pd.Timestamp("2025-01-01")]})
        ds = dataset_from_frames({"complaints": comp, "customers": one}, tmp_path)
        with pytest.raises(MissingDataError, match="no data rows"):
            C.period_summary(ds, dt.date(2025, 12, 1), END)
        return
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    p0, p1 = (dt.date(2026, 3, 1), dt.date(2026, 4, 1)) if case == "empty_period" else (dt.date(2025, 12, 1), END)
    hs = C.history_start(ds, C.months_back(p1, 24), "month")
    s = C.period_summary(ds, p0, p1)
    assert s["complaints"] == ((comp["opened_at"] >= pd.Timestamp(p0)) & (comp["opened_at"] < pd.Timestamp(p1))).sum()
    assert (s["complainers"] is None) == (case in ("no_customer_ids",)) or case == "header_only"
    v = C.volume(ds, hs, p1)
    assert v["complaints"].sum() == ((comp["opened_at"] >= pd.Timestamp(hs)) & (comp["opened_at"] < pd.Timestamp(p1))).sum()
    cells = C.alert_cells(ds, hs, p1, "month", categories=C.top_categories(ds, hs, p1, C.TOP_CATEGORIES))
    trends = C.category_trends(cells)
    assert len(trends) == comp["category"].nunique()
    h = C.handling(ds, hs, p1)
    assert h.overall["complaints"] == v["complaints"].sum()
    for lang in ("en", "zh"):
        C.findings(lang, trends=trends, handling_result=h)


# ----------------------------------------------------------------- the CFPB export end to end
def _realdata(name: str) -> Path | None:
    """``../shared/realdata/<name>`` seen from the repository (or one of its parents: worktrees)."""
    for parent in Path(__file__).resolve().parents:
        p = parent / "shared" / "realdata" / name
        if p.exists():
            return p
    return None


CFPB = _realdata("cfpb_complaints_sample_2019.csv")
OPEN_CFPB = {"In progress", "Untimely response"}  # the export's statuses that are not a closing


def cfpb_frame() -> pd.DataFrame:
    """The canonical complaints table built from the raw CFPB export with plain pandas."""
    raw = pd.read_csv(CFPB, dtype=str, keep_default_na=False)
    return pd.DataFrame({"complaint_id": raw["Complaint ID"],
                         "opened_at": pd.to_datetime(raw["Date received"], format="%Y/%m/%d"),
                         "category": raw["Product"], "status": raw["Company response to consumer"],
                         "timely": (raw["Timely response?"].str.strip().str.lower() == "yes").astype(float)})


@pytest.fixture(scope="module")
def cfpb(tmp_path_factory):
    if CFPB is None:
        pytest.skip("shared/realdata/cfpb_complaints_sample_2019.csv not found")
    from dataclasses import replace

    from workbench import schema

    spec = schema.TABLES["complaints"]
    extra = tuple(schema.Column(n, k) for n, k in (("timely", "binary"), ("outcome", "text")) if spec.column(n) is None)
    mp = pytest.MonkeyPatch()
    mp.setitem(schema.TABLES, "complaints", replace(spec, columns=spec.columns + extra))
    frame = cfpb_frame()
    ds = dataset_from_frames({"complaints": frame}, tmp_path_factory.mktemp("cfpb"))
    yield ds, frame
    ds.close()
    mp.undo()


def test_cfpb_monthly_counts_and_open_by_status(cfpb):
    ds, f = cfpb
    end = dt.date(2020, 4, 1)
    v = C.volume(ds, dt.date(2010, 1, 1), end, "month")
    ref = f.groupby(f["opened_at"].dt.to_period("M").dt.start_time).size()
    assert v["period"].iloc[0] == ref.index.min().date()  # starts at the first data, not 2010
    got = v.set_index(pd.to_datetime(v["period"]))["complaints"]
    assert (got[ref.index] == ref).all() and got.sum() == len(f)
    assert (got.drop(ref.index) == 0).all()  # months without complaints inside the history are real zeros
    # open by status, with the default closing patterns (no close times in this export)
    h = C.handling(ds, dt.date(2010, 1, 1), end)
    assert h.overall["close_times"] is False
    assert h.overall["open_backlog"] == f["status"].isin(OPEN_CFPB).sum() == 72
    assert h.overall["closed"] == (~f["status"].isin(OPEN_CFPB)).sum()
    by = ds.sql(f"SELECT status, {C.status_closed_sql(ds)} AS closed, count(*) AS n FROM complaints GROUP BY ALL")
    ref_by = f.groupby("status").size()
    for r in by.itertuples():
        assert r.n == ref_by[r.status] and r.closed == (r.status not in OPEN_CFPB)
    (finding,) = C.findings("en", handling_result=h)
    assert "No close times in the data" in finding["text"]
    assert "Of the 6,623 complaints opened 2010-01-01 – 2020-03-19, 72 are open at 2020-03-19" in finding["text"]


@pytest.mark.parametrize("period", ["2019-12", "2020-03", "2020-12", "2021-12"])
def test_cfpb_trends_no_headline_from_padding_and_holm(cfpb, period):
    from statsmodels.stats.multitest import multipletests

    ds, f = cfpb
    p0 = dt.date.fromisoformat(period + "-01")
    p1 = C.months_back(p0, -1)
    hs = C.history_start(ds, C.months_back(p1, 24), "month")
    assert hs >= f["opened_at"].min().to_period("M").start_time.date()
    cells = C.alert_cells(ds, hs, p1, "month", categories=C.top_categories(ds, hs, p1, C.TOP_CATEGORIES))
    tr = C.category_trends(cells, "month")
    # every category in the window is reported
    inwin = f[(f["opened_at"] >= pd.Timestamp(hs)) & (f["opened_at"] < pd.Timestamp(p1))]
    assert set(tr["category"]) == set(inwin["category"])
    tested = tr[tr["tested"]]
    assert np.allclose(tested["p_adjusted"], multipletests(tested["p_value"], method="holm")[1])
    # no digits for estimates whose interval is not finite or wider than 100 points
    assert ((tr["ci_high"] - tr["ci_low"]).dropna() <= 1.0).all()
    for lang in ("en", "zh"):
        (fnd,) = C.findings(lang, trends=tr)
        if period != "2020-03":
            # a 2019 surge that has since collapsed, or months after the data's end: never "rose … a month"
            assert not fnd["headline"] and fnd["value"] is None, fnd["text"]
        if fnd["headline"]:  # only an estimable, corrected-significant rise that has not turned since
            top = tr[tr["trend_slope"] == fnd["value"]].iloc[0]
            assert top["status"] == "ok" and top["p_adjusted"] < 0.05 and top["ci_low"] > 0
            assert top["ci_high"] - top["ci_low"] <= 1.0 and top["periods"] >= 6
            assert not (top["recent_slope"] < 0 and top["recent_p"] < 0.05)
    if period in ("2019-12", "2020-03"):
        top = tr.set_index("category").loc["Debt collection"]
        # the window-long slope is positive, but the latest periods go significantly the other way
        assert top["trend_slope"] > 0 and top["recent_slope"] < 0 and top["status"] == "reversed"
        last = f[(f["category"] == "Debt collection") & (f["opened_at"] < pd.Timestamp(p1))]
        monthly = last.groupby(last["opened_at"].dt.to_period("M")).size()
        assert monthly.iloc[-1] < monthly.max() / 10  # independent: the latest month is far below the peak


def test_cfpb_timely_share(cfpb):
    from statsmodels.stats.proportion import proportion_confint

    ds, f = cfpb
    tm = C.timeliness(ds, dt.date(2019, 1, 1), dt.date(2020, 1, 1))
    y = f[(f["opened_at"] >= "2019-01-01") & (f["opened_at"] < "2020-01-01")]
    assert tm.overall["complaints"] == len(y) and tm.overall["timely"] == int(y["timely"].sum())
    lo, hi = proportion_confint(int(y["timely"].sum()), len(y), method="wilson")
    assert (tm.overall["ci_low"], tm.overall["ci_high"]) == pytest.approx((lo, hi))


def test_a_trend_that_has_turned_is_not_a_headline():
    """Rising for 16 months, then falling for 8: the window-long slope is positive but no headline says
    'rose … a month'; a steady planted rise still is one."""
    rng = np.random.default_rng(21)
    cells = sim_cells(rng, season=False, cats=("a", "b", "hump"), base=(20, 12, 1))
    idx = {p: i for i, p in enumerate(sorted(set(cells["period"])))}
    mu = [math.exp(0.25 * min(idx[p], 15) - 0.3 * max(idx[p] - 15, 0)) * 2 for p in cells["period"]]
    hump = cells["category"] == "hump"
    cells.loc[hump, "complaints"] = rng.poisson(np.asarray(mu)[hump.to_numpy()])
    got = C.category_trends(cells, season=False).set_index("category")
    assert got.loc["hump", "trend_slope"] > 0 and got.loc["hump", "p_adjusted"] < 0.05
    last8 = cells[hump].sort_values("period").tail(8)
    import statsmodels.api as sm

    ref = sm.GLM(last8["complaints"].to_numpy(float), sm.add_constant(np.arange(8.0)), family=sm.families.Poisson(),
                 offset=np.log(last8["buyers"].to_numpy(float))).fit(scale="X2")
    assert got.loc["hump", "recent_slope"] == pytest.approx(math.expm1(ref.params[1]))
    assert got.loc["hump", "status"] == "reversed"
    for lang in ("en", "zh"):
        (f,) = C.findings(lang, trends=got.reset_index())
        assert not f["headline"]
    steady = C.category_trends(sim_cells(np.random.default_rng(0), trend=("c", 0.05)))
    (f,) = C.findings("en", trends=steady)
    assert f["headline"] and f["text"].startswith("c complaints rose")


def test_workbench_alerts_does_not_judge_a_category_without_history(tmp_path):
    f = hand_frames()
    comp = f["complaints"]
    last = comp["opened_at"].max()
    new = pd.DataFrame({"complaint_id": [f"N{i}" for i in range(60)], "customer_id": "C001",
                        "opened_at": [last - dt.timedelta(hours=i) for i in range(60)], "closed_at": pd.NaT,
                        "status": "open", "category": "brand_new", "channel": "app", "handler": "Team A",
                        "text": "x"})
    ds = dataset_from_frames({"transactions": f["transactions"], "complaints": pd.concat([comp, new])}, tmp_path)
    run = C.run_alerts(ds, granularity="week")
    assert "brand_new" not in {b["category"] for b in run.breaches}  # 60 in a week, but nothing to compare with
    assert "brand_new" in run.payload["without_history"]
    assert any(line.startswith("Not judged (1): brand_new") for line in run.lines)
    assert run.payload["max_extrapolate"] == 3


def test_every_notebook_analysis_says_missing_without_a_complaints_table(tmp_path):
    """Notebook 03 on a dataset without complaints (Olist, CDNOW, airline): every analysis raises
    MissingDataError (each section skips with its reason), never a database error."""
    tx = pd.DataFrame({"customer_id": ["A", "B"], "date": ["2025-03-01", "2025-04-01"], "amount": [10.0, 20.0]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path)
    assert "complaints" not in ds.tables
    assert C.history_start(ds, START) == START  # no complaints: the history is not moved
    calls = {
        "volume": lambda: C.volume(ds, START, END),
        "period_summary": lambda: C.period_summary(ds, START, END),
        "pareto": lambda: C.pareto(ds, START, END),
        "alert_cells": lambda: C.alert_cells(ds, START, END),
        "judge_periods": lambda: C.judge_periods(ds, START, END, "month"),
        "explore_frame": lambda: C.explore_frame(ds, START, END),
        "handling": lambda: C.handling(ds, START, END),
        "timeliness": lambda: C.timeliness(ds, START, END),
        "outcomes": lambda: C.outcomes(ds, START, END),
        "churn_link": lambda: C.churn_link(ds),
        "iceberg_for": lambda: C.iceberg_for(ds, START, END),
        "verbatims": lambda: C.verbatims(ds, START, END),
    }
    for name, call in calls.items():
        with pytest.raises(MissingDataError, match="complaints"):
            call()
        assert name  # (named for the failure message above)


def _status_only_frames() -> pd.DataFrame:
    """Status-only complaints (CFPB-like): some before the window, some after the period end."""
    rows = [("2024-11-20", "In progress"),  # before the window: not counted
            ("2025-01-05", "Closed"), ("2025-02-10", "In progress"), ("2025-03-15", "Untimely response"),
            ("2025-05-01", "Closed with explanation"), ("2025-06-30 23:00", "In progress"),
            ("2025-07-01", "In progress"),  # after the period end (2025-07-01 00:00 is not before it)
            ("2025-09-19 14:00", "Closed")]  # the data's end
    return pd.DataFrame({"complaint_id": [f"K{i}" for i in range(len(rows))],
                         "opened_at": pd.to_datetime([r[0] for r in rows], format="ISO8601"), "category": "x",
                         "status": [r[1] for r in rows]})


def test_no_close_times_finding_states_window_period_end_and_export_date(tmp_path):
    """Status only, period end before the data end: the finding names the opening dates counted,
    the period end they are cut at and the export date the status is read at; the counts match pandas."""
    comp = _status_only_frames()
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    start, end = dt.date(2025, 1, 1), dt.date(2025, 7, 1)
    h = C.handling(ds, start, end, closed_statuses=["Closed%"])
    win = comp[(comp["opened_at"] >= pd.Timestamp(start)) & (comp["opened_at"] < pd.Timestamp(end))]
    n_open = int((~win["status"].str.lower().str.startswith("closed")).sum())
    assert (h.overall["complaints"], h.overall["open_backlog"]) == (len(win), n_open) == (5, 3)
    assert (h.overall["window_start"], h.overall["window_end"]) == ("2025-01-01", "2025-06-30")
    assert h.overall["as_of"] == "2025-07-01 00:00" and h.overall["data_end"].startswith("2025-09-19")
    (f,) = C.findings("en", handling_result=h)
    assert f["value"] == n_open
    assert "Of the 5 complaints opened 2025-01-01 – 2025-06-30 (up to the period end, 2025-07-01 00:00), 3 are open" \
        in f["text"]
    assert "export of 2025-09-19" in f["text"]
    (z,) = C.findings("zh", handling_result=h)
    assert all(s in z["text"] for s in ("2025-01-01", "2025-06-30", "2025-07-01 00:00", "2025-09-19", "5 件", "3 件"))


def test_no_close_times_finding_when_the_data_ends_inside_the_period(tmp_path):
    """Data end before the period end: everything is measured at the data end, the window ends there."""
    comp = _status_only_frames()
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    start, end = dt.date(2025, 1, 1), dt.date(2025, 10, 1)
    h = C.handling(ds, start, end, closed_statuses=["Closed%"])
    win = comp[comp["opened_at"] >= pd.Timestamp(start)]
    n_open = int((~win["status"].str.lower().str.startswith("closed")).sum())
    assert (h.overall["complaints"], h.overall["open_backlog"]) == (len(win), n_open) == (7, 4)
    assert h.overall["as_of"] == "2025-09-19 14:00" and h.overall["window_end"] == "2025-09-19"
    (f,) = C.findings("en", handling_result=h)
    assert "Of the 7 complaints opened 2025-01-01 – 2025-09-19, 4 are open at 2025-09-19 14:00 by their status" in f["text"]
    assert "period end" not in f["text"]


def test_handling_finding_states_window_and_moment_of_open_count(hand):
    ds, f = hand
    end = dt.date(2025, 10, 1)
    h = C.handling(ds, START, end, sla_hours=48)
    comp = f["complaints"]
    pe = pd.Timestamp(end)
    win = comp[(comp["opened_at"] >= pd.Timestamp(START)) & (comp["opened_at"] < pe)]
    n_open = int((win["closed_at"].isna() | (win["closed_at"] > pe)).sum())
    (fd,) = C.findings("en", handling_result=h)
    assert "Complaints opened 2025-01-01 – 2025-09-30:" in fd["text"]
    assert f"{n_open:,} of {len(win):,} still open at 2025-10-01 00:00" in fd["text"]


# ----------------------------------------------------------------- result objects (one per notebook section)
def _period(label: str):
    from workbench.periods import parse_period

    return parse_period(label)


def test_rates_result_kpis_match_pandas(hand):
    from statsmodels.stats.proportion import proportion_confint

    ds, f = hand
    tx, comp = f["transactions"], f["complaints"]
    r = C.rates(ds, _period("2025-10"))

    def counts(lo: str, hi: str) -> tuple[int, int]:
        d, o = pd.to_datetime(tx["date"]), pd.to_datetime(comp["opened_at"])
        orders = tx.loc[(d >= lo) & (d < hi) & (tx["amount"] > 0), "order_id"].nunique()
        return int(((o >= lo) & (o < hi)).sum()), int(orders)

    (c_now, o_now), (c_before, o_before) = counts("2025-10-01", "2025-11-01"), counts("2025-09-01", "2025-10-01")
    kpis = {k.key: k for k in r.kpis("en")}
    rate = kpis["complaint_rate"]
    assert rate.value == pytest.approx(c_now / o_now) and rate.n == o_now and rate.unit == "share"
    assert rate.previous == pytest.approx(c_before / o_before) and rate.better == "lower"
    assert rate.interval == pytest.approx(proportion_confint(c_now, o_now, method="wilson"))
    count = kpis["complaints"]
    assert (count.value, count.previous, count.n, count.better) == (c_now, c_before, c_now, "lower")
    assert set(r.metrics()) == {"periods", "period_summary"} and r.metrics()["period_summary"]["complaints"] == c_now
    assert len(r.figures("en")) == 1


def test_trend_and_alert_kpis_count_the_planted_rise_and_spike(sample_ds, truth):
    """On the seeded sample (ending 2026-10) the rising category and the spike (Feb 2026, inside the last
    12 months) are counted by the KPIs, which the sample's [targets] then mark as missed."""
    tc = truth["complaints"]
    p = _period("2026-10")
    tr = C.trend(sample_ds, p)
    rows = tr.metrics()["by_category"]
    rising = [r["category"] for r in rows if r["status"] == "ok" and r["p_adjusted"] < 0.05 and r["ci_low"] > 0]
    (kpi,) = tr.kpis("en")
    assert kpi.key == "rising_complaint_categories" and kpi.value == len(rising) >= 1
    assert tc["rising_category"] in rising and kpi.n == sum(r["status"] != "short_history" for r in rows)
    assert kpi.previous is not None
    head = next(f for f in tr.findings("en") if f.key == "rising")
    assert head.headline and head.action and tc["rising_category"] in head.text
    assert not any(w in head.text for w in ("p<", "p=", "CI", "Poisson", "regression")) and "CI" in head.how
    al = C.alerts(sample_ds, p)
    flagged = [(a["period"], a["category"]) for a in al.metrics()["alerts"]]
    in_window = [x for x in flagged if "2025-11" <= x[0] <= "2026-10"]
    (kpi,) = al.kpis("en")
    assert kpi.key == "complaint_spikes" and kpi.value == len(in_window) >= 1
    assert (tc["spike_month"], tc["spike_category"]) in in_window and tc["spike_month"] == "2026-02"
    assert kpi.n > 0 and kpi.previous is not None


def test_sample_config_targets_the_complaint_kpis(sample_dir):
    import tomllib

    from workbench.config import load_config

    raw = tomllib.loads((sample_dir / "workbench.toml").read_text(encoding="utf-8"))
    assert raw["targets"]["rising_complaint_categories"] == "<= 0" and raw["targets"]["complaint_spikes"] == "<= 0"
    load_config(sample_dir / "workbench.toml")  # a [targets] table is accepted


def test_open_complaints_kpi_at_the_period_end(hand):
    ds, f = hand
    comp = f["complaints"]
    p = _period("2025-10")
    h = C.handling_window(ds, p, 24)
    r = C.handling_performance(h, p)
    o, c = pd.to_datetime(comp["opened_at"]), pd.to_datetime(comp["closed_at"])

    def still_open(at: str) -> int:
        t_ = pd.Timestamp(at)
        return int(((o < t_) & (c.isna() | (c > t_))).sum())

    (kpi,) = r.kpis("en")
    assert kpi.key == "open_complaints" and kpi.value == still_open("2025-11-01")
    assert kpi.previous == still_open("2025-10-01") and kpi.n == int((o < "2025-11-01").sum())
    assert set(r.metrics()) == {"resolution", "handling_trend"}
    (head,) = [x for x in r.findings("en") if x.headline]
    # most complaints take longer than the 48-hour standard (even counting open ones as late): an action
    assert ((c - o) <= pd.Timedelta(hours=48)).mean() < 0.5 and "48-hour standard" in head.action
    hs = C.handlers(h)
    assert not hs.skipped and hs.metrics()["handlers"]["complaints"].sum() == int((o < "2025-11-01").sum())


def test_timely_result_kpi_with_previous_period(tmp_path, sla_schema):
    from statsmodels.stats.proportion import proportion_confint

    rng = np.random.default_rng(8)
    n = 900
    comp = pd.DataFrame({"complaint_id": [f"K{i}" for i in range(n)],
                         "opened_at": [dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(h))
                                       for h in rng.integers(0, 364 * 24, n)],
                         "category": rng.choice(["a", "b"], n), "timely": rng.choice([1.0, 0.0, np.nan], n,
                                                                                      p=[0.8, 0.17, 0.03])})
    ds = dataset_from_frames({"complaints": comp}, tmp_path)
    r = C.timely(ds, _period("2025-10"))

    def known(lo: str, hi: str) -> pd.Series:
        return comp.loc[(comp["opened_at"] >= lo) & (comp["opened_at"] < hi), "timely"].dropna()

    now, before = known("2025-10-01", "2025-11-01"), known("2025-09-01", "2025-10-01")
    (kpi,) = r.kpis("en")
    assert kpi.key == "timely_share" and kpi.value == pytest.approx(now.mean()) and kpi.n == len(now)
    assert kpi.interval == pytest.approx(proportion_confint(int(now.sum()), len(now), method="wilson"))
    assert kpi.previous == pytest.approx(before.mean()) and kpi.better == "higher"
    timely_finding = next(x for x in r.findings("en") if x.key == "timely")
    assert "CI" not in timely_finding.text and "CI" in timely_finding.how


def test_sections_are_skipped_without_complaints(tmp_path):
    """A dataset without complaints (Olist, CDNOW): every section is a Skipped result naming the table."""
    from workbench.results import Skipped, as_result

    tx = pd.DataFrame({"customer_id": ["A", "B"], "date": ["2025-03-01", "2025-04-01"], "amount": [10.0, 20.0]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path)
    p = _period("2025-04")
    sections = {
        "volume": lambda: C.rates(ds, p), "pareto": lambda: C.categories(ds, p), "trend": lambda: C.trend(ds, p),
        "alerts": lambda: C.alerts(ds, p), "filters": lambda: C.explorer(ds, p),
        "handling": lambda: C.handling_performance(C.handling_window(ds, p), p),
        "handlers": lambda: C.handlers(C.handling_window(ds, p)), "sla": lambda: C.timely(ds, p),
        "outcome": lambda: C.outcome_mix(ds, p), "churn": lambda: C.churn(ds), "iceberg": lambda: C.silent(ds, p),
        "verbatims": lambda: C.words(ds, p),
    }
    for name, call in sections.items():
        r = as_result(call, f"complaints.section.{name}")
        assert isinstance(r, Skipped), name
        assert "complaints" in r.reason("en") and r.kpis("en") == [] and r.metrics() == {}, name
        assert "投诉" in r.reason("zh"), name


def test_handlers_skipped_without_a_handler_column(hand, tmp_path):
    from workbench.results import Skipped

    _, f = hand
    ds = dataset_from_frames({"complaints": f["complaints"].drop(columns=["handler"])}, tmp_path)
    r = C.handlers(C.handling_window(ds, _period("2025-10")))
    assert isinstance(r, Skipped) and "handler" in r.reason("en")
    ds.close()


def test_default_closing_words_named_in_the_readers_script(hand):
    ds, _ = hand
    p = _period("2025-10")
    r = C.handling_performance(C.handling_window(ds, p), p)
    en = next(n for n in r.notes("en") if "closing words" in n)
    zh = next(n for n in r.notes("zh") if "结案用语" in n)
    assert "closed%" in en and not any("\u4e00" <= ch <= "\u9fff" for ch in en)
    assert "%已关闭%" in zh and "closed%" not in zh and "resolved" not in zh
