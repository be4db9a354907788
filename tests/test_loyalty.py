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
from workbench.results import Result

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
    corr = L.correlations(small_frame, ys=["repurchase_intent", "repeat"]).table
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
    conv = L.intention_conversion(small_frame).table.set_index("level")
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
    assert L.four_cases(f, loyalty="behaviour").skipped and L.intention_conversion(f).skipped  # skip with a reason
    assert "customer_id" in L.four_cases(f, loyalty="behaviour").reason("en")
    assert L.four_cases(f).loyalty == "intent"  # "auto": stated intent when behaviour cannot be measured
    with pytest.raises(MissingDataError):
        L.key_drivers(f)
    assert L.value_at_stake(f, L.thresholds(f, n_boot=10)["intent"]).skipped
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
    gap = L.expectation_gap(small_frame).table.set_index("group")
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
    assert not oa.skipped and "open_answers" in oa.metrics()
    groups = oa.groups.set_index("group")
    assert groups.loc["1–2", "comments"] == 20 and groups.loc["4–5", "comments"] == 20  # 1,1,2,1 and 5,5,4,5 ×5
    low = oa.table[oa.table["group"] == "1–2"]
    # jieba segments words, not characters: the low raters' delivery complaint is a phrase of words
    assert any("送货" in str(t) for t in low["phrase"])
    assert oa.title("zh") == L.t("loyalty.h.open_answers", "zh")


def test_widget_figure_from_aggregates(small_frame):
    agg = L.widget_frame(small_frame)
    assert agg["n"].sum() == small_frame["satisfaction"].notna().sum()
    fig = L.widget_figure(agg, "", None, 4, 2, "zh")
    assert fig.layout.title.text and fig.layout.xaxis.title.text


def test_figures_have_translated_titles(small_frame):
    th = L.thresholds(small_frame, n_boot=20)
    for lang in ("en", "zh"):
        figs = [L.figure_correlations(L.correlations(small_frame).table, lang), L.figure_thresholds(th, lang),
                L.figure_four_cases(L.four_cases(small_frame), lang)]
        for fig in figs:
            assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
        assert L.finding_thresholds(th, lang)


# ------------------------------------------------------------------ scales from the data contract (issue 11 rule 4)
@pytest.mark.parametrize("scale,cuts", [((0, 1), (0, 1)), ((1, 4), (1, 4)), ((1, 5), (2, 4)), ((1, 7), (2, 6)),
                                        ((0, 10), (1, 9)), ((0, 100), (20, 80))])
def test_box_cuts_follow_the_scale(scale, cuts):
    assert L.box_cuts(*map(float, scale)) == pytest.approx(cuts)


def test_top_box_and_cut_offs_on_other_scales():
    f = pd.DataFrame({"satisfaction": [0.0, 3.0, 8.0, 9.0, 10.0, np.nan]})
    f.attrs["scales"] = {"satisfaction": (0.0, 10.0)}
    tb = L.top_box(f, "satisfaction")
    assert tb.iloc[:5].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0] and math.isnan(tb.iloc[5])
    assert L.bottom_box(f, "satisfaction").iloc[:5].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert L.resolve_cut("top box", 0, 100, "high") == 80 and L.resolve_cut(None, 0, 100, "low") == 20
    assert L.resolve_cut(0.75, 1, 5, "high") == 4 and L.resolve_cut("60%", 0, 10, "high") == 6
    assert L.resolve_cut(7, 0, 10, "high") == 7
    with pytest.raises(L.Unsupported) as exc:
        L.resolve_cut(4, 0, 1, "high")  # a 1-5 cut-off on a yes/no item is a plain reason, not a wrong split
    assert "outside the satisfaction scale" in L.skip_text(exc.value)


def test_nps_only_on_0_10_recommend_with_margin_of_error():
    rng = np.random.default_rng(2)
    v = pd.Series(rng.integers(0, 11, 500).astype(float))
    f = pd.DataFrame({"recommend": v, "satisfaction": rng.integers(1, 6, 500).astype(float), "date": pd.Timestamp("2026-10-01")})
    f.attrs["scales"] = {"recommend": (0.0, 10.0), "satisfaction": (1.0, 5.0)}
    card = L._survey_card(f, f.iloc[:0], f).set_index("question")
    p, d = (v >= 9).mean(), (v <= 6).mean()
    se = math.sqrt((p + d - (p - d) ** 2) / len(v))
    assert card.loc["recommend", "nps"] == pytest.approx(100 * (p - d))
    assert card.loc["recommend", "nps_ci_high"] - card.loc["recommend", "nps"] == pytest.approx(100 * 1.959964 * se, rel=1e-5)
    assert math.isnan(card.loc["satisfaction", "nps"])
    f.attrs["scales"]["recommend"] = (1.0, 5.0)  # a 1-5 recommend item: no NPS
    g = f.assign(recommend=rng.integers(1, 6, 500).astype(float))
    assert math.isnan(L._survey_card(g, g.iloc[:0], g).set_index("question").loc["recommend", "nps"])


@pytest.mark.parametrize("scale,values,expected", [
    ((0, 1), [0, 1], ["below", "met"]),
    ((1, 4), [1, 2, 3, 4], ["below", "below", "above", "above"]),
    ((1, 5), [2, 3, 4], ["below", "met", "above"]),
    ((0, 100), [10, 48, 52, 90], ["below", "met", "met", "above"]),
])
def test_expectation_met_group_from_scale(scale, values, expected):
    assert L.expectation_groups(pd.Series(values, dtype=float), *map(float, scale)).tolist() == expected


# ------------------------------------------------------------------ thresholds: linear / one break / two breaks
def _grouped(rng, n, levels, p_fn):
    s = rng.choice(np.asarray(levels, float), n)
    y = (rng.random(n) < p_fn(s)).astype(float)
    g = pd.DataFrame({"s": s, "y": y}).groupby("s")["y"].agg(["sum", "size"])
    return g


@pytest.mark.filterwarnings("ignore:.*Identity link.*")
def test_zone_of_indifference_two_breaks_found():
    rng = np.random.default_rng(21)
    g = _grouped(rng, 8000, range(1, 8), lambda s: 0.45 + 0.15 * np.minimum(0, s - 3) + 0.2 * np.maximum(0, s - 5))
    res = L.fit_threshold(g.index, g["sum"], g["size"], n_boot=100, seed=3)
    assert res.best == "two_break" and res.p_two_break < 0.05
    assert abs(res.two_break["tau1"] - 3) <= 0.5 and abs(res.two_break["tau2"] - 5) <= 0.5
    assert res.models.set_index("model").loc["two_break", "selected"]
    assert "flat middle" in L.how_thresholds({"intent": res})  # the model comparison is in "how computed"
    plain = L.finding_thresholds({"intent": res})
    assert "hardly changes between satisfaction" in plain and "p=" not in plain and "p<" not in plain
    # the two-break log-likelihood equals statsmodels' identity-link binomial GLM at the chosen breaks
    x = g.index.to_numpy(float)
    X = np.column_stack([np.ones_like(x), np.minimum(0, x - res.two_break["tau1"]), np.maximum(0, x - res.two_break["tau2"])])
    glm = sm.GLM(np.column_stack([g["sum"], g["size"] - g["sum"]]), X,
                 family=sm.families.Binomial(link=sm.families.links.Identity())).fit()
    n, k = g["size"].to_numpy(), g["sum"].to_numpy()
    p = np.clip(glm.fittedvalues, 1e-6, 1 - 1e-6)
    ll = float((k * np.log(p) + (n - k) * np.log1p(-p)).sum())
    assert res.models.set_index("model").loc["two_break", "loglik"] == pytest.approx(ll, abs=1e-3)


def test_one_break_and_linear_truths_keep_their_model():
    rng = np.random.default_rng(22)
    g = _grouped(rng, 6000, range(1, 6), lambda s: 0.1 + 0.35 * np.maximum(0, s - 3))
    assert L.fit_threshold(g.index, g["sum"], g["size"], n_boot=100, seed=1).best == "one_break"
    g = _grouped(rng, 3000, range(1, 6), lambda s: 0.1 + 0.15 * (s - 1))
    res = L.fit_threshold(g.index, g["sum"], g["size"], n_boot=100, seed=1)
    assert res.best == "linear"
    assert L.threshold_evidence(res) == "not_enough_evidence"  # no threshold headline on a straight line
    assert "no threshold is reported" in L.how_thresholds({"intent": res})
    assert "no threshold" in L.finding_thresholds({"intent": res})


# ------------------------------------------------------------------ drivers: direction, intervals, logistic
def test_signed_drivers_grey_noise_and_count_dropped():
    rng = np.random.default_rng(31)
    n = 1500
    x = rng.integers(1, 6, (n, 3)).astype(float)
    y = 0.8 * x[:, 0] - 0.5 * x[:, 1] + rng.normal(0, 1, n)
    f = pd.DataFrame({"good": x[:, 0], "bad": x[:, 1], "noise": x[:, 2], "satisfaction": y})
    f.loc[:40, "noise"] = np.nan
    f.attrs["drivers"] = ["good", "bad", "noise"]
    res = L.key_drivers(f, n_boot=200, seed=1, driver_labels={"good": {"en": "Staff", "zh": "员工"}})
    tab = res.table.set_index("driver")
    complete = f.dropna()
    ols = sm.OLS(complete["satisfaction"], sm.add_constant(complete[["good", "bad", "noise"]])).fit()
    assert res.n == len(complete) and res.n_dropped == int(f["noise"].isna().sum())
    for d in ("good", "bad"):
        assert tab.loc[d, "direction"] == np.sign(ols.params[d]) and tab.loc[d, "significant"]
    assert tab.loc["bad", "importance"] < 0 and tab.loc["bad", "ci_high"] < 0
    assert not tab.loc["noise", "significant"] and tab.loc["noise", "quadrant"] == "not_significant"
    assert tab.loc["noise", "ci_low"] <= 0 <= tab.loc["noise", "ci_high"]
    assert abs(tab["importance"]).sum() == pytest.approx(ols.rsquared, abs=1e-9)
    assert res.headline_ok
    text = L.finding_drivers(res, "zh")
    assert "员工" in text and "41" in L.how_drivers(res, "en")  # the base (41 dropped) is in "how computed"


def test_no_driver_headline_below_r2_010():
    rng = np.random.default_rng(32)
    f = pd.DataFrame(rng.integers(1, 6, (400, 3)).astype(float), columns=["a", "b", "c"])
    f["satisfaction"] = rng.integers(1, 6, 400).astype(float)
    f.attrs["drivers"] = ["a", "b", "c"]
    res = L.key_drivers(f, n_boot=50)
    assert res.r2 < 0.10 and not res.headline_ok
    assert "no driver is reported" in L.finding_drivers(res) and "Fix first" not in L.finding_drivers(res)
    assert (res.table["quadrant"] != "fix_first").all()


def test_logistic_drivers_on_yes_no_satisfaction():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(33)
    n = 3000
    x = rng.integers(1, 6, (n, 3)).astype(float)
    x[:, 1] = np.clip(x[:, 0] + rng.integers(-1, 2, n), 1, 5)
    eta = -4 + 0.9 * x[:, 0] + 0.3 * x[:, 1] - 0.4 * x[:, 2]
    f = pd.DataFrame(x, columns=["a", "b", "c"]).assign(satisfaction=(rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float))
    f.attrs.update(drivers=["a", "b", "c"], scales={"satisfaction": (0.0, 1.0)})
    res = L.key_drivers(f, n_boot=40, seed=2)
    assert res.model == "logistic"
    # independent: Tonidandel & LeBreton with statsmodels' Logit on the orthogonal counterparts
    xs = (x - x.mean(0)) / x.std(0)
    lam = np.real(sqrtm(np.corrcoef(x, rowvar=False)))
    z = xs @ np.linalg.inv(lam)
    b = sm.Logit(f["satisfaction"], sm.add_constant(z)).fit(disp=0).params[1:]
    var_lp = np.var(z @ b)
    beta = b * z.std(0) / math.sqrt(var_lp + math.pi ** 2 / 3)
    raw = (lam ** 2) @ (beta ** 2)
    tab = res.table.set_index("driver")
    assert np.allclose(np.abs(tab.loc[["a", "b", "c"], "importance"]), raw, atol=1e-5)
    assert res.r2 == pytest.approx(var_lp / (var_lp + math.pi ** 2 / 3), abs=1e-5)
    signs = np.sign(sm.Logit(f["satisfaction"], sm.add_constant(x)).fit(disp=0).params[1:])
    assert tab.loc[["a", "b", "c"], "direction"].tolist() == signs.tolist()


# ------------------------------------------------------------------ hostile surveys: run or skip, never crash
def _hostile(kind: str, rng: np.random.Generator) -> tuple[dict, dict, list]:
    """Tiny hostile survey datasets (issue 11 rule 1): frames, scales, drivers."""
    n = 240
    d = pd.Timestamp("2026-10-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D")
    q = rng.integers(1, 6, (n, 3)).astype(float)
    if kind == "binary":  # yes/no satisfaction, loyalty as observed behaviour, one wave (one date)
        sat = (q[:, 0] + q[:, 1] + rng.normal(0, 1, n) > 6).astype(float)
        sv = pd.DataFrame({"date": pd.Timestamp("2026-10-15"), "satisfaction": sat,
                           "loyal": (rng.random(n) < 0.3 + 0.4 * sat).astype(float), "d1": q[:, 0], "d2": q[:, 1],
                           "d3": q[:, 2]})
        return {"surveys": sv}, {"surveys": {"satisfaction": (0, 1)}}, ["d1", "d2", "d3"]
    if kind == "two_level":
        sv = pd.DataFrame({"date": d, "satisfaction": rng.choice([2.0, 4.0], n), "repurchase_intent": q[:, 0]})
        return {"surveys": sv}, {}, []
    if kind == "scale_0_10":
        s = rng.integers(0, 11, n).astype(float)
        sv = pd.DataFrame({"date": d, "satisfaction": s, "recommend": np.clip(s + rng.integers(-2, 3, n), 0, 10),
                           "repurchase_intent": rng.integers(1, 5, n).astype(float),
                           "expectation": rng.integers(1, 5, n).astype(float), "d1": q[:, 0], "d2": q[:, 1]})
        return {"surveys": sv}, {"surveys": {"satisfaction": (0, 10), "recommend": (0, 10), "repurchase_intent": (1, 4),
                                             "expectation": (1, 4)}}, ["d1", "d2"]
    if kind == "slider_0_100":
        s = rng.uniform(0, 100, n).round(1)
        sv = pd.DataFrame({"date": d, "satisfaction": s, "loyal": (rng.random(n) < s / 100).astype(float)})
        return {"surveys": sv}, {"surveys": {"satisfaction": (0, 100)}}, []
    if kind == "recommend_only":
        sv = pd.DataFrame({"date": d, "satisfaction": q[:, 0], "recommend": rng.integers(0, 11, n).astype(float)})
        return {"surveys": sv}, {"surveys": {"recommend": (0, 10)}}, []
    if kind == "drivers_no_loyalty":  # satisfaction and attribute ratings, no loyalty item at all
        sv = pd.DataFrame({"date": d, "satisfaction": np.clip(q[:, 0] + rng.integers(-1, 2, n), 1, 5), "d1": q[:, 0],
                           "d2": q[:, 1]})
        return {"surveys": sv}, {}, ["d1", "d2"]
    if kind == "one_respondent":
        sv = pd.DataFrame({"customer_id": ["C1"], "date": [pd.Timestamp("2026-10-03")], "satisfaction": [4.0],
                           "repurchase_intent": [5.0], "d1": [3.0], "d2": [4.0]})
        tx = pd.DataFrame({"customer_id": ["C1"], "date": [pd.Timestamp("2026-10-20")], "amount": [10.0]})
        return {"surveys": sv, "transactions": tx}, {}, ["d1", "d2"]
    if kind == "header_only":
        sv = pd.DataFrame({"date": pd.Series([], dtype="datetime64[ns]"), "satisfaction": pd.Series([], dtype=float),
                           "repurchase_intent": pd.Series([], dtype=float)})
        tx = pd.DataFrame({"customer_id": ["C1"], "date": [pd.Timestamp("2026-10-20")], "amount": [10.0]})
        return {"surveys": sv, "transactions": tx}, {}, []
    raise KeyError(kind)


ANALYSES = ("correlations", "thresholds", "expectation_gap", "four_cases", "intention_conversion", "key_drivers",
            "segment_comparison", "scorecard", "widget")


def _run_all(ds, frame) -> dict[str, str]:
    """Each analysis either returns or raises MissingDataError with a plain reason; never anything else."""
    out = {}
    p = parse_period("2026-10")
    calls = {"correlations": lambda: L.correlations(frame), "thresholds": lambda: L.thresholds(frame, n_boot=20),
             "expectation_gap": lambda: L.expectation_gap(frame), "four_cases": lambda: L.four_cases(frame, loyalty="auto"),
             "intention_conversion": lambda: L.intention_conversion(frame),
             "key_drivers": lambda: L.drivers(frame, n_boot=20),
             "segment_comparison": lambda: L.segments(frame),
             "scorecard": lambda: L.scorecard(ds, frame, p, p.previous()),
             "widget": lambda: L.explore(frame)}
    for name, fn in calls.items():
        res = fn()
        assert isinstance(res, Result), name
        if res.skipped:
            text = res.reason("en")
            assert text.startswith("Skipped:") and res.reason("zh").startswith("已跳过"), text
            assert res.notes("en") == [text] and not res.figures("en")
            out[name] = text
        else:
            for lang in ("en", "zh"):  # every result presents itself in both languages
                res.findings(lang), res.figures(lang), res.tables(lang), res.notes(lang), res.kpis(lang)
            res.metrics()
            out[name] = "ran"
    return out


@pytest.mark.parametrize("kind", ["binary", "two_level", "scale_0_10", "slider_0_100", "recommend_only",
                                  "drivers_no_loyalty", "one_respondent", "header_only"])
def test_hostile_surveys_run_or_skip(tmp_path, kind):
    frames, scales, drivers = _hostile(kind, np.random.default_rng(40))
    ds = dataset_from_frames(frames, tmp_path, scales=scales, drivers=drivers)
    try:
        try:
            frame = L.respondent_frame(ds, end=END)
        except MissingDataError as exc:  # a header-only table counts as absent (the loader's empty_table rule)
            assert kind == "header_only" and L.skip_text(exc).startswith("Skipped"), exc
            return
        res = _run_all(ds, frame)
    finally:
        ds.close()
    if kind == "binary":
        assert "satisfaction is yes/no" in res["thresholds"]
        assert res["key_drivers"] == "ran" and res["four_cases"] == "ran"
    if kind == "two_level":
        assert "at least three satisfaction levels" in res["thresholds"] and "has 2" in res["thresholds"]
    if kind in ("scale_0_10", "slider_0_100"):
        assert res["thresholds"] == "ran" and res["four_cases"] == "ran"
    if kind == "recommend_only":
        assert res["thresholds"].startswith("Skipped") and res["scorecard"] == "ran"
    if kind == "drivers_no_loyalty":
        assert res["key_drivers"] == "ran" and res["scorecard"] == "ran"
        assert "repurchase_intent" in res["thresholds"] and "repurchase_intent" in res["four_cases"]
        assert "repurchase_intent" in res["correlations"]
    if kind in ("one_respondent", "header_only"):
        assert res["thresholds"].startswith("Skipped") and res["key_drivers"].startswith("Skipped")


def test_four_cases_on_0_10_and_slider_use_the_scale(tmp_path):
    frames, scales, drivers = _hostile("scale_0_10", np.random.default_rng(41))
    ds = dataset_from_frames(frames, tmp_path, scales=scales, drivers=drivers)
    f = L.respondent_frame(ds, end=END)
    ds.close()
    fc = L.four_cases(f, loyalty="intent")
    s, y = f["satisfaction"], (f["repurchase_intent"] >= 4).astype(float)  # 1-4 intent: top box = 4
    tab = fc.table.set_index("case")
    assert (fc.sat_high, fc.sat_low) == (9.0, 1.0)
    assert tab.loc["satisfied_loyal", "n"] == int(((s >= 9) & (y == 1)).sum())
    assert tab.loc["dissatisfied_not_loyal", "n"] == int(((s <= 1) & (y == 0)).sum())
    gap = L.expectation_gap(f).table.set_index("group")
    assert gap.loc["met", "n"] == 0 and gap.loc["below", "n"] == int((f["expectation"] <= 2).sum())


def test_empty_period_and_anonymous_respondent_frame(tmp_path):
    rng = np.random.default_rng(1)
    frames = _small_frames(rng, 60, anonymous=True, drivers=True)
    ds = dataset_from_frames(frames, tmp_path, scales={"surveys": {"recommend": (0, 10)}},
                             drivers=["service_level", "delivery"])
    f = L.respondent_frame(ds, end=dt.date(2020, 1, 31))  # before any survey: an empty period
    res = _run_all(ds, f)
    ds.close()
    assert len(f) == 0 and all(v.startswith("Skipped") or k in ("correlations", "scorecard", "segment_comparison", "widget")
                               for k, v in res.items())


# ------------------------------------------------------------------ loyal as behaviour, survey segments, single wave
def test_loyal_as_observed_behaviour_and_single_wave(tmp_path):
    frames, scales, drivers = _hostile("binary", np.random.default_rng(42))
    ds = dataset_from_frames(frames, tmp_path, scales=scales, drivers=drivers)
    f = L.respondent_frame(ds, end=END)
    p = parse_period("2026-10")
    assert f.attrs["waves"] == 1
    sc = L.scorecard(ds, f, p, p.previous())
    ds.close()
    assert sc.single_wave and "Single wave" in L.finding_scorecard(sc) and "单轮" in L.finding_scorecard(sc, "zh")
    assert sc.survey.set_index("question").loc["satisfaction", "top2"] == pytest.approx(frames["surveys"]["satisfaction"].mean())
    assert L.outcome_source(f, "intent") == "loyal"  # default: loyal is stated intent
    f.attrs["loyal_kind"] = "behaviour"
    assert L.outcome_source(f, "behaviour") == "loyal" and L.outcome_source(f, "intent") == ""
    assert "behaviour" in L.measure_label(f, "behaviour") and "intent" not in L.measure_label(f, "behaviour")
    fc = L.four_cases(f, loyalty="auto")
    assert fc.loyalty == "behaviour"
    sv = frames["surveys"]
    hand = int(((sv["satisfaction"] == 1) & (sv["loyal"] == 1)).sum())
    assert fc.table.set_index("case").loc["satisfied_loyal", "n"] == hand


def test_survey_level_segments_without_customers_table():
    rng = np.random.default_rng(43)
    n = 600
    cls = rng.choice(["Business", "Eco", "Eco Plus"], n)
    f = pd.DataFrame({"satisfaction": (rng.random(n) < np.where(cls == "Business", 0.7, 0.4)).astype(float),
                      "loyal": (rng.random(n) < 0.5).astype(float), "Class": cls, "identified": False,
                      "followup": False})
    f.attrs.update(segments=["Class"], scales={"satisfaction": (0.0, 1.0)}, loyal_kind="behaviour")
    seg = L.segment_comparison(f)
    assert set(seg["dimension"]) == {"Class"}
    row = seg[(seg["group"] == "Business") & (seg["measure"] == "satisfaction")].iloc[0]
    a, b = f.loc[cls == "Business", "satisfaction"], f.loc[cls != "Business", "satisfaction"]
    assert row["value"] == pytest.approx(a.mean())
    assert row["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert seg.attrs["measure_keys"]["behaviour"] == "loyal_behaviour"
    fig = L.figure_segments(seg, "Class", "en")
    assert fig.layout.xaxis.title.text == "Class"


def test_headline_evidence_rule():
    assert L.evidence(0.2, 0.1, 0.3, 100) == "ok"
    assert L.evidence(0.2, -0.1, 0.5, 100) == "not_enough_evidence"
    assert L.evidence(0.2, 0.1, 0.3, 10) == "not_enough_evidence"
    assert L.evidence(0.2, float("nan"), 0.3, 100) == "not_estimable"
    assert L.evidence(5.0, -1e200, 1e200, 100, span=1.0) == "not_estimable"


def test_dataset_accessors_read_defensively():
    class Old:  # a Dataset before the survey-segment / wave accessors existed
        def has(self, table, *cols):
            return False

    class New(Old):
        loyal_kind = "behaviour"

        def segment_columns(self, table):
            if table != "surveys":
                raise KeyError(table)
            return ["Class", "Type of Travel"]

        def survey_waves(self):
            return 1

    assert L.segment_columns(Old(), "surveys") == [] and L.survey_waves(Old()) == 0
    assert L.segment_columns(New(), "surveys") == ["Class", "Type of Travel"]
    assert L.segment_columns(New(), "customers") == [] and L.survey_waves(New()) == 1


def test_results_state_their_base_in_a_note_not_in_a_clipped_title(small_frame):
    """The base (n, survey window, follow-up) is a note under the section; chart titles stay one line (a
    two-line "Base: …" subtitle was clipped at the top of the chart)."""
    fc = L.four_cases(small_frame)
    n_known = int(fc.table.loc[fc.table["case"] != "unknown", "n"].sum())
    assert n_known == int((small_frame["repeat"].notna() & small_frame["satisfaction"].notna()).sum())
    base = [n for n in fc.notes("en") if n.startswith("Base:")]
    assert base and f"n = {n_known:,}" in base[0] and "90 days" in base[0]
    assert small_frame["date"].min().strftime("%Y") in base[0]
    assert any(f"样本数 {n_known:,}" in n for n in fc.notes("zh"))
    th = L.thresholds(small_frame, n_boot=20)
    for res in (fc, th, L.correlations(small_frame), L.expectation_gap(small_frame), L.segments(small_frame),
                L.intention_conversion(small_frame), L.value_at_stake(small_frame, th)):
        for lang in ("en", "zh"):
            for fig in res.figures(lang):
                title = fig.layout.title.text or ""
                assert "<br>" not in title and "Base" not in title and "基数" not in title, title


# ------------------------------------------------------------------ rendering findings on Olist / Airline (fixloyal)
def _toml_leaves():
    import tomllib
    from pathlib import Path

    data = tomllib.loads((Path(L.__file__).parent / "translations" / "loyalty.toml").read_text(encoding="utf-8"))
    out = []

    def walk(node, key):
        if isinstance(node, dict) and {"en", "zh"} <= set(node):
            out.append((key, node["en"], node["zh"]))
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else k)
    walk(data, "")
    return out


def test_translations_no_chinese_in_en_and_no_english_words_in_zh():
    import re

    cjk = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
    leaves = _toml_leaves()
    assert len(leaves) > 100
    bad_en = [(k, en) for k, en, _ in leaves if cjk.search(en)]
    assert not bad_en, bad_en
    # zh: Latin words allowed only as placeholders, data-contract identifiers, statisticians' names and units
    allowed = {"Holm", "Benjamini", "Hochberg", "Kruskal", "Wallis", "Welch", "Johnson", "Wilson", "Tonidandel",
               "LeBreton", "McKelvey", "Zavoina", "max", "dataset",
               "margin_rate", "customer_id", "discount", "recommend", "transactions", "margin", "members", "left_at"}
    bad_zh = []
    for k, _, zh in leaves:
        text = re.sub(r"\{[^}]*\}", "", zh)
        words = {w for w in re.findall(r"[A-Za-z_][A-Za-z_.]*[A-Za-z_]", text)}
        words = {p for w in words for p in w.split(".")} - allowed
        if words:
            bad_zh.append((k, sorted(words)))
    assert not bad_zh, bad_zh


@pytest.fixture
def binary_behaviour(tmp_path):
    """Yes/no satisfaction, ``loyal`` as observed behaviour (Airline's shape), two survey months."""
    rng = np.random.default_rng(7)
    frames, scales, drivers = _hostile("binary", rng)
    sv = frames["surveys"]
    sv["date"] = np.where(np.arange(len(sv)) % 2 == 0, pd.Timestamp("2026-09-15"), pd.Timestamp("2026-10-15"))
    sv["date"] = pd.to_datetime(sv["date"])
    ds = dataset_from_frames(frames, tmp_path, scales=scales, drivers=drivers)
    f = L.respondent_frame(ds, end=END)
    f.attrs["loyal_kind"] = "behaviour"
    yield ds, f, sv
    ds.close()


def test_correlations_name_loyal_as_observed_behaviour(binary_behaviour):
    _, f, sv = binary_behaviour
    corr = L.correlations(f).table
    row = corr[(corr["y"] == "loyal") & (corr["method"] == "spearman")].iloc[0]
    assert row["kind"] == "behavioural"
    assert row["r"] == pytest.approx(sv["satisfaction"].corr(sv["loyal"], method="spearman"))
    for lang, stated in (("en", "stated"), ("zh", "表达")):
        text = L.finding_correlations(corr, lang)
        assert stated not in text and "Stated loyalty" not in text and "自述" not in text
        assert L.corr_measure_label(corr, "loyal", lang) in text
    assert "observed behaviour" in L.finding_correlations(corr)
    fig = L.figure_correlations(corr)
    assert list(fig.data[0].y) == ["Loyal (observed behaviour)"]
    f.attrs["loyal_kind"] = "intent"  # stated intent: named as stated loyalty
    corr_i = L.correlations(f).table
    assert (corr_i.loc[corr_i["y"] == "loyal", "kind"] == "attitudinal").all()
    assert "stated" in L.finding_correlations(corr_i)


def test_scorecard_binary_satisfaction_reports_share_satisfied(binary_behaviour):
    ds, f, sv = binary_behaviour
    p = parse_period("2026-10")
    sc = L.scorecard(ds, f, p, p.previous())
    cur = sv.loc[sv["date"].dt.month == 10, "satisfaction"]
    prev = sv.loc[sv["date"].dt.month == 9, "satisfaction"]
    text = L.finding_scorecard(sc)
    assert f"Share satisfied this period {100 * cur.mean():.1f}%" in text
    assert f"against {100 * prev.mean():.1f}% before" in text and f"n = {len(cur)}" in text
    assert "Mean" not in text and "mean" not in text
    assert "满意比例" in L.finding_scorecard(sc, "zh") and "平均" not in L.finding_scorecard(sc, "zh")


def test_scorecard_binary_single_wave_share(tmp_path):
    frames, scales, drivers = _hostile("binary", np.random.default_rng(42))
    ds = dataset_from_frames(frames, tmp_path, scales=scales, drivers=drivers)
    f = L.respondent_frame(ds, end=END)
    p = parse_period("2026-10")
    sc = L.scorecard(ds, f, p, p.previous())
    ds.close()
    text = L.finding_scorecard(sc)
    assert f"share satisfied {100 * frames['surveys']['satisfaction'].mean():.1f}%" in text
    assert "mean" not in text


def test_four_cases_summary_and_figure_add_to_100(small_frame):
    fc = L.four_cases(small_frame, loyalty="behaviour", discount_cut=None)
    f = small_frame[small_frame["repeat"].notna() & small_frame["satisfaction"].notna()]
    n_mid = int(((f["satisfaction"] > 2) & (f["satisfaction"] < 4)).sum())
    assert n_mid > 0
    text = L.finding_four_cases(fc)
    assert f"Neither satisfied nor dissatisfied (between the cut-offs) {100 * n_mid / len(f):.1f}%" in text
    groups = [(f["satisfaction"] >= 4) & (f["repeat"] == 1), (f["satisfaction"] >= 4) & (f["repeat"] == 0),
              (f["satisfaction"] <= 2) & (f["repeat"] == 0), (f["satisfaction"] <= 2) & (f["repeat"] == 1)]
    shares = [100 * g.sum() / len(f) for g in groups] + [100 * n_mid / len(f)]
    printed = [float(x) for x in __import__("re").findall(r"(\d+\.\d)%", fc.shares_text("en"))]
    assert sorted(printed) == sorted(round(s, 1) for s in shares)
    assert sum(printed) == pytest.approx(100, abs=0.3)
    # the chart shows the four cases only; the in-between group is counted in a note, so together they add up
    fig = L.figure_four_cases(fc)
    assert len(fig.data[0].y) == 4 and "four cases" in fig.layout.title.text
    assert sum(fig.data[0].y) + n_mid / len(f) == pytest.approx(1.0)
    assert any(f"{n_mid} respondents ({100 * n_mid / len(f):.1f}%) are between the cut-offs" in n for n in fc.notes("en"))


def test_value_at_stake_without_margin_says_profit_not_computable(tmp_path):
    frames = _small_frames(np.random.default_rng(3))
    ds = dataset_from_frames(frames, tmp_path, scales={"surveys": {"recommend": (0, 10)}},
                             drivers=["service_level", "delivery"])  # no margin column, no margin_rate
    f = L.respondent_frame(ds, end=END, window_days=90)
    ds.close()
    assert f["margin_12m"].isna().all()
    res = L.thresholds(f, n_boot=30, seed=1)["behaviour"]
    v = L.value_at_stake(f, res)
    assert not v.profit_known and math.isnan(v.extra_profit)
    sub = f[f["followup"] & f["satisfaction"].notna()]
    below = sub[sub["satisfaction"] < res.tau]
    gain = np.clip(res.predict(v.target_level) - res.predict(below["satisfaction"]), 0, None).sum()
    assert v.extra_repeaters == pytest.approx(gain)
    text = L.finding_value_at_stake(v, "en", "BRL")
    assert "not computable" in text and "BRL 0" not in text and "profit (" not in text
    assert f"about {gain:.0f} more repeat buyers" in text
    assert "无法计算利润" in L.finding_value_at_stake(v, "zh", "BRL")
    m = v.to_metric()
    assert m["extra_profit"] is None and m["profit"].startswith("not computable")
    fig = L.figure_value_at_stake(v, "en", "BRL")
    assert len(fig.data) == 1 and any("not computable" in a.text for a in fig.layout.annotations)


# ------------------------------------------------------------------ issue 13: results, KPIs and the defects found
def test_kpis_against_pandas_and_statsmodels(tmp_path):
    """satisfaction_top_box and loyal_share: this period's responses, Wilson interval, previous period's value;
    intent_conversion: the overall conversion with its interval."""
    from statsmodels.stats.proportion import proportion_confint

    frames = _small_frames(np.random.default_rng(5))
    ds = dataset_from_frames(frames, tmp_path, scales={"surveys": {"recommend": (0, 10)}},
                             drivers=["service_level", "delivery"])
    f = L.respondent_frame(ds, end=END)
    p = parse_period("2026-07")
    sc = L.scorecard(ds, f, p, p.previous())
    ds.close()
    kpis = {k.key: k for k in sc.kpis("en")}
    sv = frames["surveys"].iloc[1:]  # R0 was out of scale (excluded)
    cur = sv[(sv["date"] >= "2026-07-01") & (sv["date"] <= "2026-07-31")]
    prev = sv[(sv["date"] >= "2026-06-01") & (sv["date"] <= "2026-06-30")]
    k, n = int((cur["satisfaction"] >= 4).sum()), len(cur)
    top = kpis["satisfaction_top_box"]
    assert top.value == pytest.approx(k / n) and top.n == n and top.unit == "share" and top.better == "higher"
    assert top.interval == pytest.approx(proportion_confint(k, n, method="wilson"))
    assert top.previous == pytest.approx((prev["satisfaction"] >= 4).mean())
    # July respondents have a complete 90-day follow-up by END: loyal = bought again within 90 days (by hand)
    tx = frames["transactions"]
    tx = tx[tx["amount"] > 0]

    def repeat(rows):
        return [bool(((tx["customer_id"] == r.customer_id) & (tx["date"] > r.date)
                      & (tx["date"] <= r.date + pd.Timedelta(days=90))).any()) for r in rows.itertuples()]

    loyal = kpis["loyal_share"]
    assert loyal.value == pytest.approx(np.mean(repeat(cur))) and loyal.n == n
    assert loyal.previous == pytest.approx(np.mean(repeat(prev)))
    assert loyal.interval == pytest.approx(proportion_confint(sum(repeat(cur)), n, method="wilson"))
    conv = L.intention_conversion(f)
    (kc,) = conv.kpis("en")
    g = f.dropna(subset=["satisfaction", "repeat", "repurchase_intent"])
    said = g[g["repurchase_intent"] >= 4]
    assert kc.key == "intent_conversion" and kc.value == pytest.approx(said["repeat"].mean()) and kc.n == len(said)
    assert kc.interval == pytest.approx(proportion_confint(said["repeat"].sum(), len(said), method="wilson"))


def test_unsupported_speaks_for_itself_when_skipped():
    from workbench.results import Skipped

    exc = L.Unsupported("few_levels", columns=("satisfaction",), k="2")
    skipped = Skipped("loyalty.h.thresholds", exc)
    assert skipped.reason("en") == "Skipped: needs at least three satisfaction levels with answers; this survey has 2."
    assert skipped.reason("zh").startswith("已跳过") and skipped.notes("zh") == [skipped.reason("zh")]
    two = pd.DataFrame({"satisfaction": [2.0, 4.0] * 30, "repurchase_intent": [1.0, 5.0] * 30})
    res = L.thresholds(two, n_boot=10)
    assert res.skipped and "has 2" in res.reason("en") and res.title("en").startswith("2.")


def test_segments_group_is_one_category_and_star_on_the_bar(small_frame):
    """"Contract*" was plotted as a second category beside "Contract": the star moved onto the bar."""
    seg = L.segments(small_frame)
    for fig in seg.figures("en"):
        xs = [str(x) for tr in fig.data for x in tr.x]
        assert xs and not any(x.endswith("*") for x in xs)
        assert all(len(tr.text) == len(tr.x) for tr in fig.data)
    t = seg.table
    fig = L.figure_segments(t, "segment", "en")
    cats = {x for tr in fig.data for x in tr.x}
    assert cats == {"mass", "contract"}
    stars = {(tr.name, x) for tr in fig.data for x, s in zip(tr.x, tr.text, strict=True) if s == "*"}
    expect = {(L.measure_label(small_frame, m, "en"), g) for g, m in
              t.loc[t["significant"] & (t["measure"] != "satisfaction"), ["group", "measure"]].itertuples(index=False)}
    assert stars == expect


def test_segment_finding_gives_a_share_for_a_yes_no_item():
    rng = np.random.default_rng(43)
    n = 600
    cls = rng.choice(["Business", "Eco"], n)
    f = pd.DataFrame({"satisfaction": (rng.random(n) < np.where(cls == "Business", 0.75, 0.35)).astype(float),
                      "Class": cls, "identified": False, "followup": False})
    f.attrs.update(segments=["Class"], scales={"satisfaction": (0.0, 1.0)})
    res = L.segments(f)
    text = res.findings("en")[0].text
    share = (f.loc[cls == "Business", "satisfaction"]).mean()
    eco = f.loc[cls == "Eco", "satisfaction"].mean()
    assert "Share satisfied" in text and (f"{100 * share:.1f}%" in text or f"{100 * eco:.1f}%" in text), text
    assert "0." not in text.split(":")[-1]  # never a mean of 0/1 such as 0.75
    assert "p=" not in text and "p<" not in text and "Holm" in res.findings("en")[0].how
    (fig,) = res.figures("en")  # satisfaction as a share: a chart with one bar per class
    assert sorted(fig.data[0].x) == ["Business", "Eco"]
    assert list(fig.data[0].y) == pytest.approx([f.loc[cls == g, "satisfaction"].mean() for g in fig.data[0].x])


def test_empty_chart_replaced_by_a_message(small_frame):
    """No figure with zero data points: an empty selection gives a note, not axes from −100% to 400%."""
    seg = L.segment_comparison(small_frame, by=["segment"], measures=("satisfaction",))  # no share to chart
    res = L.Segments(seg, len(small_frame))
    assert res.figures("en") == []
    assert "Nothing to chart here" in " ".join(res.notes("en")) and "没有可绘制" in " ".join(res.notes("zh"))
    import plotly.graph_objects as go

    assert not L._has_points(go.Figure(go.Bar(x=["a", "b"], y=[np.nan, np.nan], error_y=dict(array=[1, 1]))))
    assert L._has_points(go.Figure(go.Bar(x=["a", "b"], y=[np.nan, 0.2])))
    agg = L.widget_frame(small_frame)
    fig = L.widget_figure(agg, "no such segment", None, 4, 2)
    assert not L._has_points(fig)  # the explore panel shows its empty-selection note instead


def test_four_cases_motive_labels_only_with_purchase_evidence(small_frame, binary_behaviour):
    fc = L.four_cases(small_frame)  # discount data linked: trust / self-interest split, texts' motive names
    assert fc.motives and "split" in fc.figures("en")[0].layout.title.text
    assert len(fc.figures("en")[0].data[0].x) == 5  # the four cases, satisfied & loyal split in two
    assert any("switching cost" in x for x in fc.figures("en")[0].data[0].x)
    _, f, _ = binary_behaviour  # behaviour only (loyal column), no purchases: no motive can be read
    fc = L.four_cases(f)
    labels = list(fc.figures("en")[0].data[0].x)
    assert not fc.motives and len(labels) == 4 and fc.figures("en")[0].layout.title.text.startswith("The four cases")
    words = " ".join(labels + [fc.findings("en")[0].text]).lower()
    assert "switching" not in words and "hostage" not in words and "trust" not in words and "apostle" not in words
    assert "Dissatisfied but loyal" in labels
    assert not any("days" in n for n in fc.notes("en"))  # a survey's loyal item has no follow-up window
    assert "迫于无奈" not in " ".join(fc.figures("zh")[0].data[0].x)
    panel = L.widget_figure(L.widget_frame(f), lang="en")  # the explore panel names the cases the same way
    names = list(panel.data[-1].x)
    assert "Dissatisfied but loyal" in names and not any("trust" in x or "switching" in x for x in names)
    assert sum(panel.data[-1].y) == pytest.approx(1.0)


def test_importance_performance_labels_do_not_overlap():
    rng = np.random.default_rng(9)
    f, _ = _driver_frame(rng, n=600)
    f["key_customer"] = (rng.random(len(f)) < 0.4).astype(float)
    res = L.drivers(f, n_boot=20)
    ipa = res.figures("en")[1]
    texts = [t for tr in ipa.data if tr.text is not None for t in tr.text]
    assert sorted(texts) == sorted(L._driver_label(d, "en") for d in res.result.table["driver"])  # once each
    first = ipa.data[0]
    order = np.argsort(np.asarray(first.x, float))
    pos = [first.textposition[i] for i in order]
    assert all(a != b for a, b in zip(pos, pos[1:], strict=False))  # neighbours alternate above / below


def test_explore_is_interactive_only_and_draws_its_chart_once(small_frame, monkeypatch):
    import plotly.graph_objects as go

    from workbench import viz
    from workbench.results import render

    res = L.explore(small_frame)
    assert res.interactive_only and res.figures("en") == []
    displayed = []
    monkeypatch.setattr(viz, "_display", lambda obj: displayed.append(obj))
    monkeypatch.delenv("WORKBENCH_REPORT", raising=False)
    render(res, "zh")
    # the panel's own chart, once; no second static copy above it
    assert sum(isinstance(o, go.Figure) for o in displayed) == 1
    box = [o for o in displayed if not isinstance(o, go.Figure)][-1]
    drop = box.children[0].children[0]
    labels = [lab for lab, _ in drop.options]
    assert labels[0] == "全部" and all(lab == "无细分群体" or lab in set(small_frame["segment"]) for lab in labels[1:])
    months = box.children[0].children[1]
    assert all("年" in lab and "-" not in lab for lab, _ in months.options)  # 2026年7月, not the raw 2026-07
    monkeypatch.setenv("WORKBENCH_REPORT", "1")
    displayed.clear()
    assert render(res, "en") == [] and displayed == []  # absent from report pages


def test_finding_text_language_is_pure(small_frame):
    """en findings carry no Chinese; zh findings no Latin words (units, statistic symbols and data labels
    aside); headline texts carry no p-values."""
    import re

    cjk = re.compile(r"[\u3400-\u9fff]")
    th = L.thresholds(small_frame, n_boot=20)
    results = [L.correlations(small_frame), th, L.expectation_gap(small_frame), L.four_cases(small_frame),
               L.intention_conversion(small_frame), L.drivers(small_frame, n_boot=20), L.segments(small_frame),
               L.value_at_stake(small_frame, th), L.explore(small_frame)]
    data_words = {"mass", "contract", "r", "n", "CI", "CNY"}
    for res in results:
        assert not res.skipped, res
        for f in res.findings("en"):
            assert not cjk.search(f.text), f.text
            if f.headline:
                assert not re.search(r"\bp\s*[=<]", f.text), f.text
        for f in res.findings("zh"):
            words = set(re.findall(r"[A-Za-z][A-Za-z]+", f.text)) - data_words
            assert not words, (words, f.text)
        for fig in res.figures("en"):
            assert not cjk.search(str(fig.layout.title.text)), fig.layout.title.text
        for note in res.notes("zh"):
            assert not set(re.findall(r"[A-Za-z][A-Za-z]+", note)) - data_words, note
        for tab in res.tables("zh"):  # headers and captions of zh tables: no English words either
            for text in [tab.caption, *map(str, tab.frame.columns)]:
                assert not set(re.findall(r"[A-Za-z][A-Za-z]+", text)) - data_words - {"Holm", "Kruskal", "Wallis"}, text
        for fig in res.figures("zh"):
            title = str(fig.layout.title.text or "")
            assert not set(re.findall(r"[A-Za-z][A-Za-z]+", title)) - {"Holm"}, title
