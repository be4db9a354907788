"""Satisfaction versus loyalty: each analysis against an independent computation or a planted answer."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from workbench import loyalty as L
from workbench.engine import MissingDataError, dataset_from_frames
from workbench.periods import parse_period

END = dt.date(2026, 10, 31)


# ------------------------------------------------------------------ hand-built data
def _small_frames(rng: np.random.Generator, n_resp: int = 400, anonymous: bool = False,
                  drivers: bool = True) -> dict[str, pd.DataFrame]:
    """Customers who answer one survey each; purchases planted before and after the survey."""
    ids = [f"C{i:04d}" for i in range(n_resp)]
    sat = rng.integers(1, 6, n_resp)
    cust = pd.DataFrame({"customer_id": ids, "signup_date": pd.Timestamp("2024-01-01"),
                         "segment": rng.choice(["mass", "contract"], n_resp)})
    sdates = pd.Timestamp("2025-06-01") + pd.to_timedelta(rng.integers(0, 400, n_resp), unit="D")
    tx = []
    for i, (cid, d) in enumerate(zip(ids, sdates, strict=True)):
        tx.append((cid, d - pd.Timedelta(days=int(rng.integers(1, 300))), 100.0, 0.0))
        k = rng.poisson(0.4 + 0.3 * sat[i])
        for _ in range(k):
            tx.append((cid, d + pd.Timedelta(days=int(rng.integers(1, 200))), 50.0, float(rng.choice([0, 10]))))
        tx.append((cid, d + pd.Timedelta(days=30), -20.0, 0.0))  # a refund never counts as a purchase
    trans = pd.DataFrame(tx, columns=["customer_id", "date", "amount", "discount"])
    trans = trans[trans["date"] <= pd.Timestamp(END)]
    intent = np.clip(sat + rng.integers(-1, 2, n_resp), 1, 5)
    surveys = pd.DataFrame({"response_id": [f"R{i}" for i in range(n_resp)],
                            "customer_id": None if anonymous else ids, "date": sdates,
                            "satisfaction": sat.astype(float), "repurchase_intent": intent.astype(float),
                            "recommend": np.clip(2 * sat + rng.integers(-1, 2, n_resp), 0, 10).astype(float),
                            "expectation": np.clip(sat + rng.integers(-1, 2, n_resp), 1, 5).astype(float)})
    if drivers:
        surveys["service_level"] = np.clip(sat + rng.integers(-1, 2, n_resp), 1, 5).astype(float)
        surveys["delivery"] = rng.integers(1, 6, n_resp).astype(float)
    surveys.loc[0, "satisfaction"] = 7.0  # out of scale, required column: the row is excluded and reported
    if drivers:
        surveys.loc[1, "service_level"] = 9.0  # out of scale, optional rating: nulled and reported
    return {"customers": cust, "transactions": trans, "surveys": surveys}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    frames = _small_frames(np.random.default_rng(3))
    ds = dataset_from_frames(frames, tmp_path_factory.mktemp("loy"), margin_rate=0.3,
                             scales={"surveys": {"recommend": (0, 10)}},
                             drivers=["service_level", "delivery"])
    yield ds, frames
    ds.close()


@pytest.fixture(scope="module")
def small_frame(small):
    ds, _ = small
    return L.respondent_frame(ds, end=END, window_days=90)


def test_respondent_frame_matches_hand_count(small, small_frame):
    _, frames = small
    tx, sv = frames["transactions"], frames["surveys"]
    f = small_frame.set_index("response_id")
    assert "R0" not in f.index
    for rid in sv["response_id"].iloc[1:60]:
        row = sv.set_index("response_id").loc[rid]
        d = row["date"]
        mine = tx[(tx["customer_id"] == row["customer_id"]) & (tx["amount"] > 0)]
        after = mine[(mine["date"] > d) & (mine["date"] <= d + pd.Timedelta(days=90))]
        complete = d + pd.Timedelta(days=90) <= pd.Timestamp(tx["date"].max())
        assert bool(f.loc[rid, "followup"]) == complete
        if complete:
            assert f.loc[rid, "repeat_n"] == len(after)
            assert f.loc[rid, "repeat"] == float(len(after) > 0)
            assert f.loc[rid, "spend_after"] == pytest.approx(after["amount"].sum())
        else:
            assert math.isnan(f.loc[rid, "repeat"])
        before = mine[(mine["date"] <= d) & (mine["date"] > d - pd.Timedelta(days=365))]
        assert f.loc[rid, "freq_12m"] == len(before)
        gross = mine["amount"].sum() + mine["discount"].sum()
        assert f.loc[rid, "discount_share"] == pytest.approx(mine["discount"].sum() / gross)


def test_out_of_scale_reported_not_averaged(small, small_frame):
    ds, _ = small
    oos = L.out_of_scale(ds).set_index("column")
    assert oos.loc["satisfaction", "count"] == 1 and oos.loc["service_level", "count"] == 1
    assert small_frame["satisfaction"].max() <= 5
    assert small_frame["service_level"].max() <= 5
    assert math.isnan(small_frame.set_index("response_id").loc["R1", "service_level"])


def test_correlations_against_scipy(small_frame):
    corr = L.correlations(small_frame, ys=["repurchase_intent", "repeat"])
    sub = small_frame[["satisfaction", "repeat"]].dropna()
    r, p = stats.spearmanr(sub["satisfaction"], sub["repeat"])
    row = corr[(corr["y"] == "repeat") & (corr["method"] == "spearman")].iloc[0]
    assert row["r"] == pytest.approx(r) and row["p_value"] == pytest.approx(p) and row["n"] == len(sub)
    n = len(sub)
    se = math.sqrt((1 + r * r / 2) / (n - 3))  # Bonett–Wright
    assert row["ci_low"] == pytest.approx(math.tanh(math.atanh(r) - 1.959964 * se), abs=1e-6)
    sub = small_frame[["satisfaction", "repurchase_intent"]].dropna()
    r, p = stats.pearsonr(sub["satisfaction"], sub["repurchase_intent"])
    row = corr[(corr["y"] == "repurchase_intent") & (corr["method"] == "pearson")].iloc[0]
    assert row["r"] == pytest.approx(r)
    assert row["ci_high"] == pytest.approx(math.tanh(math.atanh(r) + 1.959964 / math.sqrt(len(sub) - 3)), abs=1e-6)
    tau, _ = stats.kendalltau(sub["satisfaction"], sub["repurchase_intent"])
    assert corr[(corr["y"] == "repurchase_intent") & (corr["method"] == "kendall")]["r"].item() == pytest.approx(tau)
    assert np.allclose(corr["p_adjusted"], multipletests(corr["p_value"], method="holm")[1])
    assert corr.attrs["correction"] == "Holm"


# ------------------------------------------------------------------ thresholds
def _simulate_hinge(rng, n, tau, a, b, levels=(1, 2, 3, 4, 5)):
    s = rng.choice(np.asarray(levels), n)
    p = np.clip(a + b * np.maximum(0, s - tau), 0, 1)
    return s, (rng.random(n) < p).astype(float)


@pytest.mark.parametrize("tau,a,b", [(2.5, 0.08, 0.36), (3.5, 0.22, 0.44)])
def test_planted_threshold_recovered(tau, a, b):
    rng = np.random.default_rng(11)
    s, y = _simulate_hinge(rng, 6000, tau, a, b)
    g = pd.DataFrame({"s": s, "y": y}).groupby("s")["y"].agg(["sum", "size"])
    res = L.fit_threshold(g.index, g["sum"], g["size"], n_boot=300, seed=1)
    assert res.ci_low <= tau <= res.ci_high
    assert abs(res.tau - tau) < 0.2
    assert res.a == pytest.approx(a, abs=0.03) and res.b == pytest.approx(b, abs=0.06)
    assert res.p_linear < 0.01 and res.p_categorical < 0.01  # the straight line is rejected
    assert res.profile_ci[0] <= res.tau <= res.profile_ci[1]
    assert "tau=" in repr(res)


@pytest.mark.filterwarnings("ignore:.*identity link.*")
def test_threshold_mle_matches_statsmodels_at_fixed_tau():
    rng = np.random.default_rng(5)
    s, y = _simulate_hinge(rng, 3000, 3.0, 0.2, 0.3)
    g = pd.DataFrame({"s": s, "y": y}).groupby("s")["y"].agg(["sum", "size"])
    res = L.fit_threshold(g.index, g["sum"], g["size"], n_boot=20, seed=1)
    h = np.maximum(0, g.index.to_numpy(float) - res.tau)
    glm = sm.GLM(np.column_stack([g["sum"], g["size"] - g["sum"]]), sm.add_constant(h),
                 family=sm.families.Binomial(link=sm.families.links.Identity())).fit()
    assert res.a == pytest.approx(glm.params[0], abs=1e-4)
    assert res.b == pytest.approx(glm.params[1], abs=1e-4)


def test_linear_truth_not_rejected():
    rng = np.random.default_rng(8)
    s = rng.choice(np.arange(1, 6), 3000)
    y = (rng.random(3000) < 0.1 + 0.15 * (s - 1)).astype(float)
    g = pd.DataFrame({"s": s, "y": y}).groupby("s")["y"].agg(["sum", "size"])
    res = L.fit_threshold(g.index, g["sum"], g["size"], n_boot=200, seed=2)
    assert res.p_linear > 0.05


def test_sample_thresholds_inside_ci(sample_ds, truth):
    frame = L.respondent_frame(sample_ds, end=END, window_days=truth["thresholds"]["behaviour"]["window_days"])
    res = L.thresholds(frame, n_boot=300, seed=3)
    for m in ("intent", "behaviour"):
        assert res[m].ci_low <= truth["thresholds"][m]["tau"] <= res[m].ci_high, res[m]
    # the observed per-level repeat rates equal the generator's realised ones
    obs = truth["thresholds"]["observed_by_satisfaction"]
    bl = res["behaviour"].by_level.set_index("level")
    for lvl, d in obs.items():
        assert bl.loc[float(lvl), "n"] == d["n"]
        assert bl.loc[float(lvl), "share"] == pytest.approx(d["repeat_90d"], abs=1e-3)


# ------------------------------------------------------------------ four cases, conversion
def test_four_cases_conserve_respondents(small_frame):
    for loyalty in ("behaviour", "intent"):
        fc = L.four_cases(small_frame, loyalty=loyalty)
        assert fc.table["n"].sum() == fc.n_total == len(small_frame)
    fc = L.four_cases(small_frame, sat_high=5, sat_low=1)
    f = small_frame
    known = f["repeat"].notna() & f["satisfaction"].notna()
    hand = int((known & (f["satisfaction"] <= 1) & (f["repeat"] == 1)).sum())
    assert fc.table.set_index("case").loc["dissatisfied_loyal", "n"] == hand
    split = fc.table.set_index("case")
    sat_loyal = int((known & (f["satisfaction"] >= 5) & (f["repeat"] == 1)).sum())
    assert split.loc["trust", "n"] + split.loc["self_interest", "n"] == sat_loyal
    assert "FourCases" in repr(fc)


def test_four_cases_on_sample(sample_ds, truth):
    frame = L.respondent_frame(sample_ds, end=END)
    first = frame[frame["identified"]].sort_values("date").drop_duplicates("customer_id")
    fc = L.four_cases(first, discount_cut=0.05)
    tab = fc.table.set_index("case")
    tc = truth["four_cases"]
    for case, key in (("trust", "satisfied_loyal_trust"), ("self_interest", "satisfied_loyal_self_interest"),
                      ("satisfied_not_loyal", "satisfied_not_loyal"),
                      ("dissatisfied_not_loyal", "dissatisfied_not_loyal"),
                      ("dissatisfied_loyal", "dissatisfied_loyal")):
        assert tab.loc[case, "ci_low"] - 0.02 <= tc[key] <= tab.loc[case, "ci_high"] + 0.02, case


def test_conversion_against_hand_count(small_frame):
    conv = L.intention_conversion(small_frame).set_index("level")
    f = small_frame.dropna(subset=["satisfaction", "repeat", "repurchase_intent"])
    said = f[f["repurchase_intent"] >= 4]
    assert conv.loc["all", "n_intent"] == len(said)
    assert conv.loc["all", "n_converted"] == int(said["repeat"].sum())
    for lvl in (4.0, 5.0):
        s = said[said["satisfaction"] == lvl]
        assert conv.loc[lvl, "conversion"] == pytest.approx(s["repeat"].mean())
    k, n = conv.loc["all", "n_converted"], conv.loc["all", "n_intent"]
    p = k / n
    z = 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert conv.loc["all", "ci_low"] == pytest.approx(centre - half, abs=1e-6)


# ------------------------------------------------------------------ key drivers
def _driver_frame(rng, n=3000, p=5, dominant=2):
    common = rng.standard_normal(n)
    x = 0.7 * common[:, None] + 0.7 * rng.standard_normal((n, p))
    w = np.full(p, 0.2)
    w[dominant] = 1.0
    y = x @ w + rng.standard_normal(n)
    names = [f"d{i}" for i in range(p)]
    frame = pd.DataFrame(x, columns=names).assign(satisfaction=y)
    frame.attrs["drivers"] = names
    return frame, names


def test_relative_weights_sum_to_r2_and_dominant_first():
    frame, names = _driver_frame(np.random.default_rng(4))
    res = L.key_drivers(frame, n_boot=100, seed=1)
    ols = sm.OLS(frame["satisfaction"], sm.add_constant(frame[names])).fit()
    assert res.table["importance"].sum() == pytest.approx(ols.rsquared, abs=1e-9)
    assert res.r2 == pytest.approx(ols.rsquared, abs=1e-9)
    assert res.table.iloc[0]["driver"] == "d2" and res.table.iloc[0]["rank"] == 1
    top = res.table.iloc[0]
    assert top["ci_low"] <= top["importance"] <= top["ci_high"]
    assert res.table["share"].sum() == pytest.approx(1.0)


def test_shapley_against_brute_force():
    frame, names = _driver_frame(np.random.default_rng(9), n=800, p=4)
    res = L.key_drivers(frame, method="shapley", n_boot=0)
    X, y = frame[names].to_numpy(), frame["satisfaction"].to_numpy()

    def r2(cols):
        if not cols:
            return 0.0
        return sm.OLS(y, sm.add_constant(X[:, list(cols)])).fit().rsquared

    p = len(names)
    for j in range(p):
        others = [i for i in range(p) if i != j]
        val = 0.0
        for size in range(p):
            for sub in itertools.combinations(others, size):
                wgt = math.factorial(size) * math.factorial(p - size - 1) / math.factorial(p)
                val += wgt * (r2(sub + (j,)) - r2(sub))
        assert res.table.set_index("driver").loc[names[j], "importance"] == pytest.approx(val, abs=1e-9)


def test_sample_dominant_driver(sample_ds, truth):
    frame = L.respondent_frame(sample_ds, end=END)
    res = L.key_drivers(frame, n_boot=100, seed=2)
    assert res.table.iloc[0]["driver"] == truth["drivers"]["dominant"]
    share = truth["drivers"]["r2_share_in_sample"][truth["drivers"]["dominant"]]
    assert abs(res.table.iloc[0]["share"] - share) < 0.08


def test_missing_inputs_degrade(tmp_path):
    rng = np.random.default_rng(1)
    frames = _small_frames(rng, 120, anonymous=True, drivers=False)
    ds = dataset_from_frames(frames, tmp_path, drivers=[])
    f = L.respondent_frame(ds, end=END)
    assert f.attrs["behaviour"] is False  # the notebook shows the "anonymous survey" note
    with pytest.raises(MissingDataError) as exc:
        L.loyalty_by_level(f, "behaviour")
    assert exc.value.columns == ("customer_id",)
    assert set(L.thresholds(f, n_boot=20)) == {"intent"}
    with pytest.raises(MissingDataError):
        L.four_cases(f)
    with pytest.raises(MissingDataError):
        L.intention_conversion(f)
    with pytest.raises(MissingDataError):
        L.key_drivers(f)
    with pytest.raises(MissingDataError):
        L.value_at_stake(f, L.thresholds(f, n_boot=10)["intent"])
    ds.close()


# ------------------------------------------------------------------ scorecard, segments, value, gap
def test_scorecard_complaint_rate_hand_count(tmp_path):
    cust = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "signup_date": pd.Timestamp("2026-01-01")})
    tx = pd.DataFrame({"customer_id": ["A", "B", "C", "A", "D"],
                       "date": pd.to_datetime(["2026-10-02", "2026-10-05", "2026-10-07", "2026-09-03", "2026-09-10"]),
                       "amount": [10.0, 20.0, 30.0, 40.0, 50.0]})
    comp = pd.DataFrame({"complaint_id": ["K1", "K2", "K3"], "customer_id": ["A", "A", "D"],
                         "opened_at": pd.to_datetime(["2026-10-03 10:00", "2026-10-04 10:00", "2026-10-04 11:00"]),
                         "category": ["x", "x", "y"]})
    sv = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "date": pd.to_datetime(["2026-10-01"] * 2 + ["2026-09-02"] * 2),
                       "satisfaction": [5.0, 4.0, 2.0, 3.0], "repurchase_intent": [5.0, 4.0, 1.0, 3.0]})
    ds = dataset_from_frames({"customers": cust, "transactions": tx, "complaints": comp, "surveys": sv}, tmp_path)
    f = L.respondent_frame(ds, end=END)
    p = parse_period("2026-10")
    sc = L.scorecard(ds, f, p, p.previous())
    ind = sc.indicators.set_index("indicator")
    # buyers in October: A, B, C; complainers among them: A (D complained but did not buy)
    assert ind.loc["complaint_rate", "value"] == pytest.approx(1 / 3)
    # September buyers A, D; A bought again in October
    assert ind.loc["repeat_visit_rate", "value"] == pytest.approx(1 / 2)
    assert ind.loc["purchase_amount", "value"] == pytest.approx(20.0)
    assert ind.loc["category_share", "status"] == "not measured"
    svy = sc.survey.set_index("question")
    assert svy.loc["satisfaction", "n"] == 2 and svy.loc["satisfaction", "top2"] == 1.0
    assert "Scorecard" in repr(sc)
    ds.close()


def test_nps_and_top_box(small_frame):
    cur = small_frame
    card = L._survey_card(cur, cur.iloc[:0], cur).set_index("question")
    v = cur["recommend"].dropna()
    assert card.loc["recommend", "nps"] == pytest.approx(100 * ((v >= 9).mean() - (v <= 6).mean()))
    s = cur["satisfaction"].dropna()
    assert card.loc["satisfaction", "top2"] == pytest.approx((s >= 4).mean())
    assert card.loc["satisfaction", "bottom2"] == pytest.approx((s <= 2).mean())


def test_segment_comparison_holm(small_frame):
    seg = L.segment_comparison(small_frame, by=["segment"])
    assert np.allclose(seg["p_adjusted"], multipletests(seg["p_value"], method="holm")[1])
    row = seg[(seg["group"] == "contract") & (seg["measure"] == "satisfaction")].iloc[0]
    a = small_frame.loc[small_frame["segment"] == "contract", "satisfaction"].dropna()
    b = small_frame.loc[small_frame["segment"] != "contract", "satisfaction"].dropna()
    assert row["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_expectation_gap_counts(small_frame):
    gap = L.expectation_gap(small_frame).set_index("group")
    e = small_frame["expectation"]
    assert gap.loc["below", "n"] == (e < 3).sum() and gap.loc["above", "n"] == (e > 3).sum()
    sub = small_frame[(e > 3)]["repeat"].dropna()
    assert gap.loc["above", "repeat"] == pytest.approx(sub.mean())


def test_value_at_stake_hand_computation(small_frame):
    res = L.thresholds(small_frame, n_boot=50, seed=1)["behaviour"]
    v = L.value_at_stake(small_frame, res)
    f = small_frame[small_frame["followup"] & small_frame["satisfaction"].notna()]
    below = f[f["satisfaction"] < res.tau]
    assert v.n_below == len(below)
    gain = np.clip(res.predict(v.target_level) - res.predict(below["satisfaction"]), 0, None).sum()
    assert v.extra_repeaters == pytest.approx(gain)
    assert v.extra_repeaters_ci[0] <= v.extra_repeaters_ci[1]
    assert "associational" in repr(v)


def test_open_answers_chinese():
    frame = pd.DataFrame({"satisfaction": [1.0, 1.0, 2.0, 5.0, 5.0, 4.0, 1.0, 5.0] * 5,
                          "comment": ["送货太慢了", "客服态度不好", "送货太慢，包装破损", "已经很满意了",
                                      "继续保持", "价格再便宜一点", "客服不回复", "非常满意"] * 5})
    oa = L.open_answers(frame, n_themes=3)
    assert oa.n_comments == 40
    assert abs(oa.by_level.groupby("level")["share"].sum() - 1).max() < 1e-9
    assert any("送货" in str(t) for t in oa.terms["term"])  # jieba segments words, not characters


def test_widget_figure_from_aggregates(small_frame):
    agg = L.widget_frame(small_frame)
    assert agg["n"].sum() == small_frame["satisfaction"].notna().sum()
    fig = L.widget_figure(agg, "", None, 4, 2, "zh")
    assert fig.layout.title.text and fig.layout.xaxis.title.text


def test_figures_have_translated_titles(small_frame):
    th = L.thresholds(small_frame, n_boot=20)
    for lang in ("en", "zh"):
        figs = [L.figure_correlations(L.correlations(small_frame), lang), L.figure_thresholds(th, lang),
                L.figure_four_cases(L.four_cases(small_frame), lang)]
        for fig in figs:
            assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
        assert L.finding_thresholds(th, lang)
