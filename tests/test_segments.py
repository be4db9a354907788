"""Segments by traits, look-alikes and up-sell (workbench/segments.py, issue 16 items 1, 2, 4).

Numbers are checked a second way (scikit-learn's metrics and logistic regression, plain pandas on the
raw tables) and against the planted truth of the 8k sample (TRUTH.json ``trait_segments``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, roc_auc_score, silhouette_score

from workbench import segments as seg
from workbench.engine import open_dataset
from workbench.results import Skipped

HOSTILE = Path(__file__).parent / "data" / "hostile"
END = "2026-10-31"
#: stated bound: the segments found on the 8k sample agree with the planted ones at least this well
PLANTED_ARI = 0.8


@pytest.fixture(scope="module")
def base(sample_ds):
    # 20 resamples: with 6 the median stability of k=4 is a coin flip on the fixture (resamples with one k-means++
    # start land in a poor optimum now and then: 6 resamples gave 0.70 < 0.75 on the issue-14 sample, 20 give 1.0)
    return seg.segment_base(sample_ds, END, seg.options(n_boot=20))


@pytest.fixture(scope="module")
def planted(sample_dir, truth):
    ids = pd.read_parquet(sample_dir / "customers.parquet", columns=["customer_id"])["customer_id"].astype(str)
    labels = np.array([int(c) for c in truth["trait_segments"]["labels"]])
    return pd.Series(labels, index=ids.to_numpy())


# ----------------------------------------------------------------------------- sample truth
def test_sample_plants_trait_segments_without_changing_other_columns(sample_dir, truth):
    ts = truth["trait_segments"]
    c = pd.read_parquet(sample_dir / "customers.parquet")
    assert {"income", "occupation", "household_size"} <= set(c.columns)
    labels = np.array([int(x) for x in ts["labels"]])
    assert len(labels) == len(c)
    for k, name in enumerate(ts["names"]):
        assert ts["segments"][name]["share"] == pytest.approx((labels == k).mean(), abs=1e-4)
        occ = c.loc[labels == k, "occupation"].value_counts(normalize=True)
        assert occ.index[0] == ts["segments"][name]["occupation"] and occ.iloc[0] > 0.7
    # affluent professionals were tilted toward a high spend level: they bring more revenue per head
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "amount"])
    rev = tx.groupby("customer_id")["amount"].sum().reindex(c["customer_id"]).fillna(0).to_numpy()
    aff = ts["names"].index("affluent_professionals")
    assert rev[labels == aff].mean() > 1.3 * rev[labels != aff].mean()
    p = pd.read_parquet(sample_dir / "prospects.parquet")
    assert len(p) == ts["prospects"]["n"] and p["prospect_id"].is_unique
    assert {"birth_year", "income", "occupation", "household_size"} <= set(p.columns)


def test_prospects_is_an_optional_canonical_table(sample_ds):
    assert sample_ds.has("prospects", "prospect_id", "income", "occupation")


# ----------------------------------------------------------------------------- 1. segments
def test_segments_recover_the_planted_ones(base, planted):
    assert base.missing is None
    assert base.choice.k == 4
    truth = planted.reindex(base.labels.index)
    assert truth.notna().all()
    ari = adjusted_rand_score(truth.to_numpy(), base.labels.cat.codes.to_numpy())
    assert ari >= PLANTED_ARI, ari
    tab = base.choice.table.set_index("k")
    assert tab.loc[4, "silhouette"] == tab["silhouette"].max()
    assert tab.loc[4, "stability"] >= seg.STABLE_ARI


def test_every_customer_is_assigned_to_the_nearest_centre(base):
    X = base.design.transform(base.frame)
    d = ((X[:, None, :].astype(float) - base.choice.centroids[None, :, :]) ** 2).sum(axis=2)
    assert (np.argmin(d, axis=1) == base.labels.cat.codes.to_numpy()).all()
    assert len(base.labels) == len(base.frame)


def test_adjusted_rand_and_silhouette_match_scikit_learn():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 4, 500), rng.integers(0, 3, 500)
    b[:300] = a[:300]
    assert seg.adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b))
    X = rng.standard_normal((400, 5)) + np.repeat(np.eye(5)[:4] * 3, 100, axis=0)
    lab = np.repeat(np.arange(4), 100)
    assert seg.silhouette(X, lab) == pytest.approx(silhouette_score(X, lab), abs=1e-9)


def test_categories_count_like_one_standard_deviation():
    df = pd.DataFrame({"age": [20.0, 30, 40, 50], "region": ["a", "b", "a", "b"], "revenue": 0.0, "purchases": 0,
                       "categories": np.nan})
    d = seg.design(df, ["age"], ["region"], behaviour=False)
    X = d.transform(df)
    z = (df["age"] - df["age"].mean()) / df["age"].std(ddof=0)
    assert np.allclose(X[:, 0], z)
    assert ((X[0, 1:] - X[1, 1:]) ** 2).sum() == pytest.approx(1.0)  # a different category: squared distance 1


def test_profiles_add_up_and_match_pandas(base, sample_dir):
    tab = seg.profile_table(base)
    assert tab["n"].sum() == len(base.frame)
    assert tab["value_share"].sum() == pytest.approx(1.0)
    # revenue in the window, recomputed from the raw transactions
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "date", "amount"])
    tx["date"] = pd.to_datetime(tx["date"])
    w = tx[(tx["date"] > pd.Timestamp(base.frame.attrs["start"])) & (tx["date"] <= pd.Timestamp(END))]
    rev = w.groupby("customer_id")["amount"].sum()
    by_seg = rev.groupby(base.labels.reindex(rev.index), observed=False).sum()
    assert np.allclose(tab["revenue"].to_numpy(), by_seg.reindex(tab.index).fillna(0).to_numpy(), atol=0.01)


def test_segments_vs_tiers_crosstab(base):
    r = seg.segments_vs_tiers(base)
    assert r.counts.to_numpy().sum() == len(base.frame)
    assert (r.counts.sum(axis=1).to_numpy() == seg.profile_table(base)["n"].to_numpy()).all()
    assert r.findings("en") and r.findings("zh")


# ----------------------------------------------------------------------------- 2. look-alikes
def test_auc_and_deciles_checked_a_second_way():
    rng = np.random.default_rng(5)
    score = rng.random(1000)
    y = rng.random(1000) < score * 0.6
    assert seg.auc(y, score) == pytest.approx(roc_auc_score(y, score))
    lo, hi = seg.auc_ci(y, score)
    assert lo < seg.auc(y, score) < hi
    # the DeLong interval against a percentile bootstrap of scikit-learn's AUC
    rng2 = np.random.default_rng(9)
    boot = [roc_auc_score(y[i], score[i]) for i in (rng2.integers(0, 1000, 1000) for _ in range(400))]
    assert lo == pytest.approx(np.quantile(boot, 0.025), abs=0.01)
    assert hi == pytest.approx(np.quantile(boot, 0.975), abs=0.01)
    d = seg.decile_table(y, score)
    dec = pd.qcut(pd.Series(-score).rank(method="first"), 10, labels=False) + 1
    rate = pd.Series(y).groupby(dec).mean()
    assert np.allclose(d["rate"].to_numpy(), rate.to_numpy())
    assert np.allclose(d["lift"].to_numpy(), rate.to_numpy() / y.mean())
    assert d["capture"].iloc[-1] == pytest.approx(1.0)


def test_logistic_fit_matches_scikit_learn():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((800, 4))
    y = rng.random(800) < 1 / (1 + np.exp(-(X @ [1.0, -0.5, 0.0, 0.3] - 0.4)))
    ours = seg._fit_logit(X, y)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(X, y)
    assert np.allclose(ours.coef, ref.coef_[0], atol=1e-4)
    assert ours.intercept == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_lookalike_outcome_and_holdout(base, sample_dir):
    m = base.need_lookalike()
    # the outcome recomputed in pandas: revenue in the first 12 months after the first purchase >= the bar
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "date", "amount"])
    tx["date"] = pd.to_datetime(tx["date"])
    tx = tx[tx["date"] <= pd.Timestamp(END)]
    first = tx[tx["amount"] > 0].groupby("customer_id")["date"].min()
    tx = tx.join(first.rename("first"), on="customer_id")
    early = tx[tx["date"] < tx["first"] + pd.DateOffset(months=12)]
    y = early.groupby("customer_id")["amount"].sum() >= m.threshold
    h = m.holdout
    assert (h["y"].to_numpy() == y.reindex(h.index).to_numpy()).all()
    # time split: every test customer's first purchase is on or after every training customer's
    assert first.reindex(h.index).min() >= first[first <= pd.Timestamp(m.cohort_end)].drop(h.index).max()
    assert m.auc == pytest.approx(roc_auc_score(h["y"], h["score"]))
    assert m.auc_interval[0] > 0.5  # traits planted with a spend tilt predict key customers
    top = m.deciles.loc[m.deciles["decile"] == 1, "lift"].item()
    assert top > 1.3
    assert (m.recent.index.isin(first[first > pd.Timestamp(m.cohort_end)].index)).all()


def test_a_model_no_better_than_chance_draws_no_list(base):
    import dataclasses

    m = dataclasses.replace(base.need_lookalike(), auc=0.52, auc_interval=(0.47, 0.57))
    r = seg.LookAlikes(base, m)
    f = r.findings("en")
    assert len(f) == 1 and not f[0].headline and "no better than chance" in f[0].text
    assert not any(tb.export for tb in r.tables("en"))


def test_prospects_scored_on_traits_they_have(base):
    r = seg.prospect_scores(base)
    assert not r.skipped
    p = r.model.prospects
    assert p["score"].between(0, 1).all() and p["decile"].between(1, 10).all()
    table = r.tables("en")[0]
    assert table.export == "lookalike_prospects" and table.appendix


# ----------------------------------------------------------------------------- 4. up-sell
def test_upsell_gaps_match_pandas(base):
    r = seg.upsell(base)
    g = r.gaps
    m = base.need_lookalike()
    rev = base.frame["revenue"]
    active = rev[rev > 0]
    band = np.minimum(np.floor(m.scores.rank(method="first", pct=True) * 5), 4).astype(int)
    peers = pd.DataFrame({"rev": active, "seg": base.labels.reindex(active.index),
                          "band": band.reindex(active.index)})
    med = peers.groupby(["seg", "band"], observed=True)["rev"].median()
    size = peers.groupby(["seg", "band"], observed=True)["rev"].size()
    some = g.sample(200, random_state=1)
    for cid, row in some.iterrows():
        key = (peers.at[cid, "seg"], peers.at[cid, "band"])
        if size[key] >= 20:
            assert row["peer_median"] == pytest.approx(med[key])
            assert row["gap"] == pytest.approx(max(med[key] - row["revenue"], 0))
    key_tiers = base.tiers.isin(list(base.tiers.cat.categories)[:2])
    assert not g.index.isin(key_tiers[key_tiers].index).any()
    assert r.metrics()["upsell"]["gap_total"] == pytest.approx(g["gap"].sum())


# ----------------------------------------------------------------------------- hostile shapes
def _sections(b):
    return [seg.k_choice(b), seg.profiles(b), seg.segments_vs_tiers(b), seg.lookalikes(b), seg.prospect_scores(b),
            seg.upsell(b), seg.method_notes(b)]


@pytest.mark.parametrize("case", ["one_customer", "no_customers_no_transactions", "all_zero_amounts"])
def test_hostile_shapes_skip_in_plain_words(case, tmp_path):
    folder = tmp_path / case
    shutil.copytree(HOSTILE / case, folder)
    ds = open_dataset(folder)
    end = ds.date_range("transactions")[1] if ds.has("transactions") else "2026-10-31"
    b = seg.segment_base(ds, end, seg.options(n_boot=2))
    for r in _sections(b):
        for lang in ("en", "zh"):
            r.findings(lang), r.tables(lang), r.figures(lang)
            for note in r.notes(lang):
                assert note and "{" not in note
    if b.frame is None:  # nothing was read: the method notes say why instead of describing a sample of 0
        assert seg.method_notes(b).skipped
        if isinstance(r, Skipped):
            assert "segments." not in r.reason("en")


def test_no_traits_no_surveys_no_prospects(tmp_path, sample_dir):
    """Customers with only an id and a signup date, no surveys, no prospects: behaviour-only segments."""
    folder = tmp_path / "bare"
    folder.mkdir()
    c = pd.read_parquet(sample_dir / "customers.parquet", columns=["customer_id", "signup_date"])
    c.to_parquet(folder / "customers.parquet")
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "date", "amount"])
    tx.to_parquet(folder / "transactions.parquet")
    ds = open_dataset(folder)
    b = seg.segment_base(ds, END, seg.options(n_boot=2, k_range="2-4"))
    assert b.missing is None and b.design.numeric == () and b.design.categorical == ()
    assert any("behaviour only" in n for n in seg.k_choice(b).notes("en"))
    assert any("No survey" in n for n in seg.profiles(b).notes("en"))
    pros = seg.prospect_scores(b)
    assert pros.skipped and "prospects table" in pros.reason("en")
    la = seg.lookalikes(b)  # nothing is known at signup but the first purchase (no category, no channel)
    assert la.skipped and "nothing is known" in la.reason("en").lower()


def test_a_single_value_trait_is_dropped_and_unknown_traits_are_named(sample_ds):
    b = seg.segment_base(sample_ds, END, seg.options(n_boot=2, traits="age, shoe_size"))
    r = seg.profiles(b)
    assert r.skipped and "shoe_size" in r.reason("en")
    df = pd.DataFrame({"g": ["x"] * 10, "revenue": 0.0, "purchases": 0, "categories": np.nan})
    assert seg.design(df, [], ["g"], behaviour=False).columns == ()


def test_upsell_refuses_when_almost_everyone_buys_once(tmp_path, sample_dir):
    """One purchase per customer (the Olist shape): spend gaps would compare single order sizes."""
    folder = tmp_path / "once"
    folder.mkdir()
    pd.read_parquet(sample_dir / "customers.parquet", columns=["customer_id", "signup_date", "segment"]).to_parquet(
        folder / "customers.parquet")
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "date", "amount"])
    tx = tx[tx["amount"] > 0].sort_values(["customer_id", "date"]).drop_duplicates("customer_id")
    tx.to_parquet(folder / "transactions.parquet")
    ds = open_dataset(folder)
    b = seg.segment_base(ds, ds.date_range("transactions")[1], seg.options(n_boot=2, k_range="2-3"))
    r = seg.upsell(b)
    assert r.skipped and "more than once" in r.reason("en") and r.reason("en")[0].isupper()
    assert "0.0%" in r.reason("en") and "超过一次" in r.reason("zh")


def test_customer_frame_has_a_fixed_row_order(sample_ds):
    """Seeded draws (the k-search sample, bootstraps) pick rows by position: the engine's row order varies
    between runs, so the frame is sorted by customer."""
    frame = seg.customer_frame(sample_ds, END, 12, 12)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
