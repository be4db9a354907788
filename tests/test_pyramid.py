"""Customer pyramid, Lorenz/Gini, migration, segments and value per customer (workbench.pyramid).

Numbers are checked against a second, independent computation (plain Python loops,
the mean-absolute-difference Gini, the sample generator's TRUTH.json) or against
properties that must hold whatever the data (tiers conserve customers, shares
within one customer of the configured ones, migration matrices add up).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import pyramid as pyr
from workbench.engine import dataset_from_frames
from workbench.i18n import LANGS, table


def _values(v, prefix="c"):
    v = np.asarray(v, dtype=float)
    return pd.Series(v, index=[f"{prefix}{i:05d}" for i in range(v.size)])


def _counts(tiers):
    return tiers.value_counts(sort=False).reindex(tiers.cat.categories).to_numpy()


# ----------------------------------------------------------------------------- tiers
def test_exact_shares_and_order():
    rng = np.random.default_rng(1)
    v = _values(rng.permutation(np.arange(1, 1001)))
    tiers = pyr.assign_tiers(v)
    assert list(tiers.cat.categories) == list(pyr.TIERS)
    assert _counts(tiers).tolist() == [10, 190, 300, 500]
    # the top layer holds exactly the ten largest values
    assert sorted(v[tiers == "top"].tolist()) == list(range(991, 1001))
    assert v[tiers == "bottom"].max() == 500


def test_custom_shares_and_names():
    v = _values(np.arange(10))
    tiers = pyr.assign_tiers(v, [0.3, 0.7], names=["gold", "rest"])
    assert _counts(tiers).tolist() == [3, 7]
    assert set(v[tiers == "gold"]) == {7, 8, 9}


@pytest.mark.parametrize("bad", [[0.5, 0.6], [1.0], [-0.1, 1.1], [0.5, float("nan"), 0.5]])
def test_bad_shares_rejected(bad):
    with pytest.raises(ValueError):
        pyr.assign_tiers(_values([1, 2, 3]), bad)


def test_all_equal_values_deterministic_and_order_free():
    v = _values(np.full(200, 5.0))
    tiers = pyr.assign_tiers(v)
    assert _counts(tiers).tolist() == [2, 38, 60, 100]
    # same split whatever the row order: ties go by the stable hash of the id, not by position
    shuffled = v.sample(frac=1, random_state=3)
    again = pyr.assign_tiers(shuffled).reindex(v.index)
    assert (again == tiers).all()
    # ...and not simply by id order
    assert list(v.index[tiers == "top"]) != list(v.index[:2])


def test_tie_at_boundary_split_deterministically():
    # 10 customers: top-2 boundary (shares 0.2/0.8) falls inside a tie of three 7s
    v = _values([9, 7, 7, 7, 1, 1, 1, 1, 1, 1])
    tiers = pyr.assign_tiers(v, [0.2, 0.8], names=["key", "ordinary"])
    assert _counts(tiers).tolist() == [2, 8]
    assert v[tiers == "key"].min() >= v[tiers == "ordinary"].max()
    assert "c00000" in set(v.index[tiers == "key"])
    # the tied customer promoted is the one with the smallest id hash
    tied = ["c00001", "c00002", "c00003"]
    h = dict(zip(tied, pd.util.hash_array(np.array(tied, dtype=object)), strict=True))
    assert (tiers[min(tied, key=h.get)]) == "key"


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_fewer_customers_than_tiers(n):
    v = _values(np.arange(n, dtype=float)[::-1])
    tiers = pyr.assign_tiers(v)
    counts = _counts(tiers)
    assert counts.sum() == n
    assert np.all(np.abs(counts - np.array(pyr.DEFAULT_SHARES) * n) < 1)
    if n:
        assert tiers.iloc[0] == tiers.cat.categories[np.flatnonzero(counts)[0]]  # largest value in the highest non-empty tier


def test_zero_and_negative_values_at_bottom():
    vals = [100, 50, 0, 0, -20, 30, 10, -5, 0, 70]
    frame = pd.DataFrame({"revenue": vals, "profit": np.array(vals) * 0.3}, index=[f"k{i}" for i in range(10)])
    p = pyr.customer_pyramid(frame, "revenue", [0.2, 0.3, 0.5, 0.0])
    assert p.n_zero == 3 and p.n_negative == 2
    assert p.table["customers"].tolist() == [2, 3, 5, 0]
    assert set(p.tiers[p.tiers == "third"].index) >= {"k4", "k7"}  # negatives in the lowest non-empty layer
    assert p.table["value_share"].sum() == pytest.approx(1.0)
    assert p.total_value == pytest.approx(sum(vals))
    assert p.top20_value_share == pytest.approx(170 / sum(vals))
    assert p.gap_to_80 == pytest.approx(170 / sum(vals) - 0.8)
    assert p.key_threshold == 10  # lowest value among the top two layers (100, 70 | 50, 30, 10)


def test_pyramid_table_against_loop():
    rng = np.random.default_rng(5)
    n = 537
    rev = np.round(rng.lognormal(4, 1.5, n), 2)
    frame = pd.DataFrame({"revenue": rev, "profit": rev * rng.uniform(0.1, 0.4, n)},
                         index=[f"id{i}" for i in range(n)])
    p = pyr.customer_pyramid(frame)
    order = sorted(range(n), key=lambda i: -rev[i])  # distinct values: no ties to break
    bounds = [0] + [math.floor(c * n + 0.5) for c in itertools.accumulate(pyr.DEFAULT_SHARES)]
    for k, row in p.table.iterrows():
        members = order[bounds[k]:bounds[k + 1]]
        assert row["customers"] == len(members)
        assert row["value"] == pytest.approx(rev[members].sum())
        assert row["median_value"] == pytest.approx(float(np.median(rev[members])))
        assert row["profit"] == pytest.approx(frame["profit"].to_numpy()[members].sum())
    assert p.top20_value_share == pytest.approx(rev[order[: round(0.2 * n)]].sum() / rev.sum())
    assert p.key_value_share == pytest.approx(p.table["value_share"].iloc[:2].sum())
    assert "Pyramid(" in repr(p)
    assert {m["tier"] for m in p.metric_tiers()} == set(pyr.TIERS)


shares_strategy = st.lists(st.integers(0, 20), min_size=2, max_size=6).filter(lambda x: sum(x) > 0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.integers(-5, 30), min_size=0, max_size=300), weights=shares_strategy)
def test_tiers_conserve_customers_property(values, weights):
    shares = np.array(weights, float) / sum(weights)
    v = _values(values)
    tiers = pyr.assign_tiers(v, shares)
    counts = _counts(tiers)
    n = len(values)
    assert counts.sum() == n  # every customer in exactly one tier
    assert np.all(np.abs(counts - shares * n) < 1 + 1e-9)  # within rounding of the configured shares
    codes = tiers.cat.codes.to_numpy()
    for hi, lo in itertools.combinations(range(len(shares)), 2):  # higher tiers never hold lower values
        if (codes == hi).any() and (codes == lo).any():
            assert v.to_numpy()[codes == hi].min() >= v.to_numpy()[codes == lo].max()


# ----------------------------------------------------------------------------- Lorenz / Gini
def _gini_mad(x):
    x = np.clip(np.asarray(x, float), 0, None)
    return np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gini_against_mean_absolute_difference(seed):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0, 1.2, 400) * (rng.random(400) > 0.1)
    assert pyr.gini(x) == pytest.approx(_gini_mad(x), rel=1e-10)


def test_gini_edge_cases_and_clipping():
    assert pyr.gini([3, 3, 3, 3]) == pytest.approx(0.0)
    assert pyr.gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n-1)/n for one holder
    assert pyr.gini([-5, 0, 0, 10]) == pytest.approx(0.75)  # negatives enter as 0
    assert math.isnan(pyr.gini([]))
    assert math.isnan(pyr.gini([0, 0]))


def test_lorenz_area_matches_gini():
    rng = np.random.default_rng(7)
    x = rng.pareto(1.5, 1000)
    lc = pyr.lorenz_curve(x, points=None)
    assert lc.iloc[0].tolist() == [0.0, 0.0] and lc.iloc[-1].tolist() == [1.0, pytest.approx(1.0)]
    assert np.all(np.diff(lc["value_share"]) >= -1e-12)
    area = np.trapezoid(lc["value_share"], lc["customer_share"])
    assert 1 - 2 * area == pytest.approx(pyr.gini(x), abs=1e-12)
    # the Lorenz curve at 80% of customers is 1 - the top-20% share
    lc_full = pyr.lorenz_curve(x, points=None)
    at80 = lc_full.loc[np.isclose(lc_full["customer_share"], 0.8), "value_share"].iloc[0]
    assert at80 == pytest.approx(1 - pyr.top_share(x, 0.2))
    assert len(pyr.lorenz_curve(x, points=101)) <= 101


def test_gini_bootstrap_ci_vectorised_and_seeded():
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.lognormal(3, 1, 300), np.zeros(20), -np.ones(5)])
    r1 = pyr.gini_ci(x, n_boot=150, seed=4)
    r2 = pyr.gini_ci(x, n_boot=150, seed=4, max_cells=x.size * 7)  # chunked: same draws
    assert (r1.low, r1.high) == pytest.approx((r2.low, r2.high))
    assert r1.low < r1.gini < r1.high
    assert r1.n_nonpositive == 25 and r1.n == 325
    # independent loop bootstrap with the same draws, from the clipped values in sorted order (gini_ci sorts
    # its input so that the engine's row order cannot change the interval)
    xs = np.sort(np.clip(x, 0.0, None))
    g = np.random.default_rng(4)
    idx = g.integers(0, x.size, size=(150, x.size))
    loop = [_gini_mad(xs[i]) for i in idx]
    assert (r1.low, r1.high) == pytest.approx(tuple(np.quantile(loop, [0.025, 0.975])), rel=1e-9)
    assert "CI" in repr(r1)


# ----------------------------------------------------------------------------- migration
def test_migration_counts_conserve_customers():
    before = pyr.assign_tiers(_values([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]), [0.2, 0.3, 0.5], ["a", "b", "c"])
    after_vals = _values([1, 9, 10, 7, 6, 5, 4, 3, 8, 2, 11, 0])  # two new customers
    after = pyr.assign_tiers(after_vals.drop("c00009"), [0.2, 0.3, 0.5], ["a", "b", "c"])  # c00009 gone
    m = pyr.tier_migration(before, after)
    assert m.counts.to_numpy().sum() == m.n == len(before.index.union(after.index))
    assert m.counts.iloc[:3].sum(axis=1).tolist() == _counts(before).tolist()
    assert m.counts.iloc[:, :3].sum(axis=0).tolist() == _counts(after).tolist()
    assert m.new == 2 and m.gone == 1
    assert m.up + m.down + m.same == len(before.index.intersection(after.index))
    assert m.moves.loc["c00000", "direction"] == "down"
    assert m.moves.loc["c00002", "direction"] == "up"
    assert m.shares.sum(axis=1).dropna().to_numpy() == pytest.approx(1.0)
    assert isinstance(pyr.figure_migration(m, "zh"), go.Figure)


@settings(max_examples=50, deadline=None)
@given(n1=st.integers(0, 80), n2=st.integers(0, 80), overlap=st.integers(0, 80), seed=st.integers(0, 1000))
def test_migration_property(n1, n2, overlap, seed):
    rng = np.random.default_rng(seed)
    overlap = min(overlap, n1, n2)
    ids1 = [f"x{i}" for i in range(n1)]
    ids2 = ids1[:overlap] + [f"y{i}" for i in range(n2 - overlap)]
    b = pyr.assign_tiers(pd.Series(rng.integers(0, 5, n1).astype(float), index=ids1))
    a = pyr.assign_tiers(pd.Series(rng.integers(0, 5, n2).astype(float), index=ids2))
    m = pyr.tier_migration(b, a)
    assert m.counts.to_numpy().sum() == n1 + n2 - overlap
    assert m.counts.iloc[:-1].to_numpy().sum() == n1 and m.counts.iloc[:, :-1].to_numpy().sum() == n2
    assert m.up + m.down + m.same == overlap
    assert m.new == n2 - overlap and m.gone == n1 - overlap


# ----------------------------------------------------------------------------- segments
def test_segment_cut_points():
    frame = pd.DataFrame({
        "historical_clv": [100, 100, -10, -10, 0, 50, 50],
        "relationship_days": [400, 10, 400, 10, 365, 365, 364],
    }, index=list("abcdefg"))
    s = pyr.loyalty_segments(frame, profit_cut=0, tenure_cut=365)
    a = s.assignment.astype(str).to_dict()
    assert a == {"a": "true_friends", "b": "butterflies", "c": "barnacles", "d": "strangers",
                 "e": "barnacles",  # profit == cut is not profitable; tenure == cut is long-term
                 "f": "true_friends", "g": "butterflies"}
    tb = s.table.set_index("segment")
    assert tb["n"].sum() == 7
    assert tb.loc["true_friends", "profit"] == 150
    assert tb["profit_share"].sum() == pytest.approx(1.0)
    assert s.metric()["barnacles"] == {"n": 2, "share": pytest.approx(2 / 7), "profit_share": pytest.approx(-10 / 280)}


def test_segment_default_cuts_are_medians():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"historical_clv": rng.normal(50, 100, 501),
                          "relationship_days": rng.integers(0, 700, 501)})
    s = pyr.loyalty_segments(frame)
    assert s.profit_cut == pytest.approx(frame["historical_clv"].median())
    assert s.tenure_cut == frame["relationship_days"].median()
    tb = s.table.set_index("segment")
    assert tb.loc[["true_friends", "butterflies"], "n"].sum() == 250  # strictly above the median
    assert (tb["n"] > 0).all()


# ----------------------------------------------------------------------------- value per customer (engine)
@pytest.fixture()
def small_ds(tmp_path):
    tx = pd.DataFrame({
        "customer_id": ["A", "A", "A", "A", "B", "B", "C", "D", "A"],
        "date": pd.to_datetime(["2025-01-10", "2026-03-05", "2026-03-05", "2026-06-01", "2026-02-01",
                                "2026-02-10", "2024-12-01", "2026-05-01", "2026-07-15"]).date,
        "amount": [100.0, 50.0, 30.0, -20.0, 10.0, 5.0, 40.0, 25.0, 999.0],
        "margin": [30.0, 15.0, 9.0, -6.0, 3.0, 1.5, 12.0, 7.5, 300.0],
        "order_id": ["o1", "o2", "o3", "r1", "o4", "o5", "o6", "o7", "o8"],
        "product_category": ["x", "x", "y", "x", "z", "z", "x", "y", "x"],
    })
    customers = pd.DataFrame({
        "customer_id": ["A", "B", "C", "E", "F"],
        "signup_date": pd.to_datetime(["2024-06-01", "2026-01-15", "2024-11-20", "2026-04-01",
                                       "2026-08-01"]).date,
        "acquisition_cost": [20.0, 5.0, None, 8.0, 1.0],
    })
    ds = dataset_from_frames({"transactions": tx, "customers": customers}, tmp_path / "d", as_of="2026-12-31")
    yield ds
    ds.close()


def test_customer_value_hand_built(small_ds):
    v = pyr.customer_value(small_ds, dt.date(2026, 6, 30), months=6, acquisition_cost=2.0,
                           retention_cost_per_year=36.525)
    assert v.attrs["start"] == "2026-01-01" and v.attrs["end"] == "2026-06-30"
    # F signed up after the window: not a customer yet; D is an orphan (no customers row): kept
    assert sorted(v.index) == ["A", "B", "C", "D", "E"]
    a = v.loc["A"]
    assert a["revenue"] == 60 and a["gross_revenue"] == 80 and a["refunds"] == 1 and a["refund_amount"] == 20
    assert a["profit"] == pytest.approx(18) and a["purchases"] == 2 and a["categories"] == 2
    assert a["lifetime_profit"] == pytest.approx(48)  # the July purchase is after the end
    assert a["tenure_days"] == (dt.date(2026, 6, 30) - dt.date(2024, 6, 1)).days
    assert a["recency_days"] == (dt.date(2026, 6, 30) - dt.date(2026, 3, 5)).days  # refunds are not purchases
    assert a["relationship_days"] == (dt.date(2026, 3, 5) - dt.date(2024, 6, 1)).days
    assert a["historical_clv"] == pytest.approx(48 - 20 - 36.525 * a["tenure_days"] / 365.25)
    c = v.loc["C"]
    assert c["revenue"] == 0 and c["purchases"] == 0 and c["lifetime_profit"] == 12
    assert c["acquisition_cost"] == 2.0  # missing in the table: the parameter fills in
    e = v.loc["E"]  # signed up, never bought
    assert e["revenue"] == 0 and e["relationship_days"] == 0 and math.isnan(e["recency_days"])
    assert e["historical_clv"] == pytest.approx(-8 - 36.525 * e["tenure_days"] / 365.25)
    d = v.loc["D"]  # orphan: first contact = first purchase
    assert d["first_contact"] == pd.Timestamp("2026-05-01") and d["acquisition_cost"] == 2.0
    # margin_rate overrides the data's margin
    v2 = pyr.customer_value(small_ds, "2026-06-30", months=6, margin_rate=0.5)
    assert v2.loc["A", "profit"] == pytest.approx(30) and v2.attrs["profit_source"] == "margin_rate"


def test_customer_value_without_customers_or_margin(tmp_path):
    tx = pd.DataFrame({"customer_id": ["A", "B", "B"], "date": pd.to_datetime(["2026-01-02", "2026-01-03",
                                                                              "2026-02-01"]).date,
                       "amount": [10.0, 20.0, 5.0]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path / "t")
    try:
        v = pyr.customer_value(ds, "2026-02-28", months=2)
    finally:
        ds.close()
    assert v["revenue"].to_dict() == {"A": 10.0, "B": 25.0}
    assert v["purchases"].to_dict() == {"A": 1, "B": 2}
    assert v["profit"].isna().all() and v.attrs["profit_source"] == "none"
    assert v.loc["B", "relationship_days"] == 29


def test_value_window():
    assert pyr.value_window("2026-10-31", 12) == (dt.date(2025, 11, 1), dt.date(2026, 10, 31))
    assert pyr.value_window(dt.date(2026, 3, 15), 1) == (dt.date(2026, 3, 1), dt.date(2026, 3, 15))


def test_sample_reproduces_planted_value(sample_ds, truth):
    """Over the whole 24-month window the sample's planted Pareto share and the four
    profit × relationship segments (with the generator's cut points) come back exactly."""
    end = truth["window"]["end"]
    v = pyr.customer_value(sample_ds, end, months=truth["window"]["months"])
    assert len(v) == truth["generator"]["customers"]
    p = pyr.customer_pyramid(v, "revenue")
    assert p.top20_value_share == pytest.approx(truth["value"]["top20_revenue_share"], abs=1e-3)
    s = pyr.loyalty_segments(v, profit_cut=0.0, tenure_cut=365)
    counts = s.table.set_index("segment")["n"].to_dict()
    assert counts == truth["value"]["profit_segments"]["counts"]


# ----------------------------------------------------------------------------- upgrade potential
def test_upgrade_candidates():
    ids = [f"u{i}" for i in range(10)]
    frame = pd.DataFrame({"revenue": [100, 90, 80, 70, 60, 50, 40, 30, 20, 10]}, index=ids)
    p = pyr.customer_pyramid(frame, "revenue", [0.1, 0.2, 0.3, 0.4])  # key = u0, u1, u2; threshold 80
    assert p.key_threshold == 80
    predicted = pd.Series([0, 0, 0, 10, 10, 70, 10, 200, 10, 10], index=ids, dtype=float)
    previous = pd.Series([100, 90, 80, 40, 60, 50, 40, 30, 20, 10], index=ids, dtype=float)
    u = pyr.upgrade_candidates(p, frame["revenue"], predicted, previous, near=0.8, min_growth=0.25)
    # bar = 64: u5 (pred 70) and u7 (pred 200) by prediction; u3 (value 70, +75%) by growth
    assert set(u.table.index) == {"u3", "u5", "u7"}
    assert u.by_reason == {"predicted": 2, "growth": 1, "both": 0}
    assert u.n_ordinary == 7
    m = u.metric()
    assert m["n"] == 3 and not any(isinstance(x, list) for x in m.values())  # counts only
    none = pyr.upgrade_candidates(p, frame["revenue"])
    assert none.n == 0


# ----------------------------------------------------------------------------- strategy, figures, strings
def _toy():
    rng = np.random.default_rng(3)
    n = 400
    rev = rng.lognormal(4, 1.3, n)
    frame = pd.DataFrame({"revenue": rev, "profit": rev * 0.3, "historical_clv": rev * 0.3 - 20,
                          "relationship_days": rng.integers(0, 700, n)}, index=[f"t{i}" for i in range(n)])
    return frame, pyr.customer_pyramid(frame), pyr.loyalty_segments(frame)


@pytest.mark.parametrize("lang", LANGS)
def test_strategy_table_translated(lang):
    frame, p, s = _toy()
    tb = pyr.strategy_table(p, s, lang, "CNY")
    assert len(tb) == 8 and tb.shape[1] == 5  # narrow: group, customers, share, value share, short action
    longest = max(len(x) for x in tb.iloc[:, -1])
    assert longest <= 40  # actions are a few words, not sentences (a one-letter-wide column before)
    text = " ".join(tb.astype(str).to_numpy().ravel())
    if lang == "zh":
        for word in ("最高层", "次高层", "第三层", "最底层", "挚友", "蝴蝶", "藤壶", "陌生人", "关键客户"):
            assert word in text
    else:
        assert "True friends" in text and "invest nothing" in text


@pytest.mark.parametrize("lang", LANGS)
def test_figures(lang):
    frame, p, s = _toy()
    fig = pyr.figure_pyramid(p, lang)
    bar = fig.data[0]
    widths = list(bar.x)
    assert widths == sorted(widths)  # widest at the bottom: a pyramid
    assert np.allclose(np.asarray(bar.base) + np.asarray(bar.x) / 2, 0)  # centred
    assert list(fig.layout.yaxis.categoryarray)[0] == pyr.tier_label("bottom", lang)
    for f in (pyr.figure_lorenz(frame["revenue"], pyr.gini_ci(frame["revenue"], 20), lang),
              pyr.figure_segments(s, lang), pyr.figure_tier_values(p, lang),
              pyr.figure_clv_distribution(frame["profit"], lang)):
        assert isinstance(f, go.Figure) and f.layout.title.text


def test_every_pyramid_string_has_both_languages():
    keys = [k for k in table() if k.startswith("pyramid.")]
    assert len(keys) > 100
    for k in keys:
        assert all(table()[k].get(lang) for lang in LANGS), k


def test_metric_payloads_are_json():
    frame, p, s = _toy()
    json.dumps({"tiers": p.metric_tiers(), "segments": s.metric()})


# ----------------------------------------------------------------------------- notebook helpers
def test_parse_shares_and_comparison_end():
    assert pyr.parse_shares([0.01, 0.19, 0.3, 0.5]) == pytest.approx([0.01, 0.19, 0.3, 0.5])
    assert pyr.parse_shares("[0.05, 0.15, 0.3, 0.5]") == pytest.approx([0.05, 0.15, 0.3, 0.5])
    assert pyr.parse_shares("1,19,30,50") == pytest.approx([0.01, 0.19, 0.3, 0.5])
    with pytest.raises(ValueError):
        pyr.parse_shares("0.5,0.6")
    # "" = the previous window of the same length; a period = that period's end
    assert pyr.comparison_end(dt.date(2026, 10, 31), "", 12) == dt.date(2025, 10, 31)
    assert pyr.comparison_end(dt.date(2026, 10, 31), "", 3) == dt.date(2026, 7, 31)
    assert pyr.comparison_end(dt.date(2026, 10, 31), "2026-09", 12) == dt.date(2026, 9, 30)
    assert pyr.comparison_end(dt.date(2026, 10, 31), "2026Q2", 12) == dt.date(2026, 6, 30)


def test_predicted_measure():
    f = pd.DataFrame({"predicted_window_value": [100.0, 0.0], "historical_clv": [10.0, -5.0], "clv": [7.0, 1.0]})
    assert pyr.predicted_measure(f, "revenue", 0.3).tolist() == [100.0, 0.0]
    assert pyr.predicted_measure(f, "profit", 0.3).tolist() == pytest.approx([30.0, 0.0])
    assert pyr.predicted_measure(f, "historical_clv", 0.3).tolist() == pytest.approx([40.0, -5.0])
    assert pyr.predicted_measure(f, "clv", 0.3).tolist() == [7.0, 1.0]


def test_customer_level_tables_pseudonymised():
    ids = [f"C{i:06d}" for i in range(10)]
    frame = pd.DataFrame({"revenue": np.arange(10, 0, -1) * 10.0}, index=ids)
    p = pyr.customer_pyramid(frame, "revenue", [0.1, 0.2, 0.3, 0.4])
    u = pyr.upgrade_candidates(p, frame["revenue"], pd.Series(100.0, index=ids))
    shown = pyr.upgrade_table(u, "en", pseudonymous=True)
    text = " ".join(shown.astype(str).to_numpy().ravel())
    assert u.n > 0 and not any(i in text for i in ids)
    assert all(str(x).startswith("p_") for x in shown.iloc[:, 0])
    assert pyr.upgrade_table(u, "zh", pseudonymous=False).iloc[:, 0].isin(ids).all()
    before = pyr.customer_pyramid(frame.iloc[::-1].set_axis(ids), "revenue", [0.1, 0.2, 0.3, 0.4])
    m = pyr.tier_migration(before.tiers, p.tiers)
    mv = pyr.movers_table(m, "zh", 5, pseudonymous=True, values=frame["revenue"])
    assert len(mv) == 5 and not any(i in " ".join(mv.astype(str).to_numpy().ravel()) for i in ids)
    moves = list(mv.iloc[:, 3])
    assert moves[0] == "升层" and moves == sorted(moves, key=lambda d: d != "升层")  # upward moves first


def test_predict_clv_on_sample(sample_ds, truth):
    end = truth["window"]["end"]
    r = pyr.predict_clv(sample_ds, end, time_unit="W", horizon_months=12, annual_discount_rate=0.1)
    assert r.bgnbd.converged and r.gamma_gamma.converged
    assert r.holdout is not None and r.holdout_calibration_end < dt.date.fromisoformat(end)
    c = r.customers
    assert (c["clv"] >= 0).all() and c["p_alive"].between(0, 1).all()
    # discounting: the 12-month CLV is below margin x the undiscounted 12-month expected spend
    assert (c["clv"] <= r.margin * c["predicted_window_value"] + 1e-9).all()
    v = r.join(pyr.customer_value(sample_ds, end, 12))
    assert v.attrs["months"] == 12 and {"clv", "p_alive", "predicted_window_value"} <= set(v.columns)
    hm = r.holdout_metric()
    assert sum(g["n"] for g in hm["by_frequency"]) == hm["n"]


# ----------------------------------------------------------------------------- issue 10.8: orders, not lines
def test_customer_value_counts_orders_not_lines(tmp_path):
    rows = [  # customer, order, date, amount
        ("A", "o1", "2026-03-01", 10.0), ("A", "o1", "2026-03-01", 5.0), ("A", "o1", "2026-03-01", 2.5),
        ("A", "o2", "2026-03-01", 7.0),                                   # a second order the same day
        ("A", "o3", "2026-03-08", 19.99), ("A", "o3", "2026-03-08", -19.985),  # refunded the same day
        ("A", "o4", "2026-04-01", 30.0), ("A", "o4", "2026-04-09", -30.0),    # refunded a week later
        ("B", "o5", "2026-03-02", 4.0), ("B", "o5", "2026-03-02", 4.0),
        ("B", "r1", "2026-03-05", -4.0),                                  # refund under its own id
        ("C", "o6", "2026-03-03", 0.0),                                   # nothing paid
    ]
    tx = pd.DataFrame(rows, columns=["customer_id", "order_id", "date", "amount"])
    tx["date"] = pd.to_datetime(tx["date"]).dt.date
    ds = dataset_from_frames({"transactions": tx}, tmp_path / "o")
    try:
        v = pyr.customer_value(ds, "2026-04-30", months=2)
        lines = pyr.customer_value(ds, "2026-04-30", months=2, count_orders=False)
    finally:
        ds.close()
    # independent count with pandas: orders = distinct (customer, order, day) netting above a cent
    d = tx.assign(neg=tx["amount"] < 0, pos=tx["amount"] > 0)
    o = d.groupby(["customer_id", "order_id", "date"]).agg(net=("amount", "sum"), neg=("neg", "any"),
                                                          pos=("pos", "any")).reset_index()
    o = o[(o["net"] > 0.01 + 1e-9) | (~o["neg"] & o["pos"])]
    expected = o.groupby("customer_id").size().reindex(v.index, fill_value=0)
    assert v["purchases"].to_dict() == expected.to_dict() == {"A": 3, "B": 1, "C": 0}
    assert v.attrs["purchase_unit"] == "order" and lines.attrs["purchase_unit"] == "row"
    assert lines.loc["A", "purchases"] == 6  # rows with a positive amount: what 'lines' would say
    assert v["revenue"].sum() == pytest.approx(tx["amount"].sum())


def test_orders_that_are_single_rows_are_counted_in_the_customer_scan(tmp_path, monkeypatch):
    """When every order is one row (checked at build: ``order_lines`` = "one"), order counts come from the
    per-customer scan; they must equal the grouping by order, here forced by hiding the build's answer."""
    rng = np.random.default_rng(11)
    n = 400
    tx = pd.DataFrame({"customer_id": rng.integers(0, 60, n).astype(str), "order_id": [f"o{i}" for i in range(n)],
                       "date": pd.to_datetime("2026-01-01") + pd.to_timedelta(rng.integers(0, 120, n), "D"),
                       "amount": np.round(rng.normal(20, 25, n), 2)})
    tx.loc[::17, "amount"] = 0.0
    tx["date"] = tx["date"].dt.date
    single = dataset_from_frames({"transactions": tx}, tmp_path / "one")
    multi = dataset_from_frames({"transactions": pd.concat([tx, tx.iloc[:1]])}, tmp_path / "many")
    try:
        assert single.meta["order_lines"] == "one" and single.orders_are_rows
        assert multi.meta["order_lines"] == "many" and not multi.orders_are_rows
        fast = pyr.customer_value(single, "2026-04-30", months=3)
        monkeypatch.setitem(single.meta, "order_lines", None)
        grouped = pyr.customer_value(single, "2026-04-30", months=3)
    finally:
        single.close()
        multi.close()
    pd.testing.assert_frame_equal(fast.sort_index(), grouped.sort_index())  # the engine returns groups in any order
    in_window = tx[pd.to_datetime(tx["date"]) >= pd.Timestamp("2026-02-01")]
    want = (in_window["amount"] > 0).groupby(in_window["customer_id"]).sum()
    assert fast["purchases"].to_dict() == want.reindex(fast.index, fill_value=0).to_dict()


def test_customer_value_every_column_against_pandas(tmp_path):
    """Each column of :func:`customer_value` (built column by column from the engine's Arrow result)
    recomputed with plain pandas from the same frames: refunds, orphans (one with only refunds: no
    contact date, so tenure is missing and the column float), customers who never bought, missing
    acquisition costs, and 60 categories (bits up to 2^59: counted exactly, not through float)."""
    rng = np.random.default_rng(7)
    n = 3000
    cats = [f"k{i:02d}" for i in range(60)]
    tx = pd.DataFrame({
        "customer_id": [f"c{i:03d}" for i in rng.integers(0, 250, n)],
        "date": (pd.Timestamp("2025-03-01") + pd.to_timedelta(rng.integers(0, 640, n), "D")).date,
        "amount": np.round(rng.normal(40, 50, n), 2),
        "product_category": rng.choice(cats, n),
    })
    tx["margin"] = np.round(tx["amount"] * rng.uniform(0.1, 0.4, n), 2)
    extra = pd.DataFrame({  # first and last category from one customer; an orphan with only a refund
        "customer_id": ["c900", "c900", "c901"], "date": [dt.date(2026, 5, 2), dt.date(2026, 5, 3), dt.date(2026, 4, 1)],
        "amount": [12.0, 13.0, -9.0], "product_category": ["k00", "k59", "k01"], "margin": [3.0, 4.0, -2.0]})
    tx = pd.concat([tx, extra], ignore_index=True)
    ids = [f"c{i:03d}" for i in range(0, 300, 1) if i % 3]  # some buyers are orphans, some customers never buy
    customers = pd.DataFrame({
        "customer_id": ids,
        "signup_date": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 1100, len(ids)), "D")).date,
        "acquisition_cost": np.where(rng.random(len(ids)) < 0.3, np.nan, np.round(rng.uniform(5, 50, len(ids)), 2)),
    })
    ds = dataset_from_frames({"transactions": tx, "customers": customers}, tmp_path / "v")
    end, acq0, ret = dt.date(2026, 6, 30), 4.0, 10.0
    try:
        v = pyr.customer_value(ds, end, months=6, acquisition_cost=acq0, retention_cost_per_year=ret)
    finally:
        ds.close()
    start = pd.Timestamp(v.attrs["start"])
    e = pd.Timestamp(end)
    t = tx.assign(date=pd.to_datetime(tx["date"]))
    t = t[t["date"] <= e]
    w = t[t["date"] >= start]
    c = customers.assign(signup_date=pd.to_datetime(customers["signup_date"]))
    c = c[c["signup_date"] <= e].set_index("customer_id")
    idx = sorted(set(c.index) | set(t["customer_id"]))
    g = w.groupby("customer_id")
    pos, neg = w[w["amount"] > 0], w[w["amount"] < 0]
    want = pd.DataFrame(index=pd.Index(idx, name="customer_id"))
    want["gross_revenue"] = pos.groupby("customer_id")["amount"].sum().reindex(idx, fill_value=0.0)
    want["refund_amount"] = -neg.groupby("customer_id")["amount"].sum().reindex(idx, fill_value=0.0)
    want["revenue"] = want["gross_revenue"] - want["refund_amount"]
    want["profit"] = g["margin"].sum().reindex(idx, fill_value=0.0)
    want["purchases"] = pos.groupby("customer_id").size().reindex(idx, fill_value=0)
    want["categories"] = pos.groupby("customer_id")["product_category"].nunique().reindex(idx, fill_value=0)
    want["refunds"] = neg.groupby("customer_id").size().reindex(idx, fill_value=0)
    bought = t[t["amount"] > 0].groupby("customer_id")["date"]
    want["first_purchase"] = bought.min().reindex(idx)
    want["last_purchase"] = bought.max().reindex(idx)
    want["signup_date"] = c["signup_date"].reindex(idx)
    want["first_contact"] = want["signup_date"].fillna(want["first_purchase"])
    want["tenure_days"] = [np.nan if pd.isna(x) else max((e - x).days, 0) for x in want["first_contact"]]
    want["recency_days"] = [np.nan if pd.isna(x) else float((e - x).days) for x in want["last_purchase"]]
    want["relationship_days"] = [0 if pd.isna(a) or pd.isna(b) else max((a - b).days, 0)
                                 for a, b in zip(want["last_purchase"], want["first_contact"], strict=True)]
    want["lifetime_profit"] = t.groupby("customer_id")["margin"].sum().reindex(idx, fill_value=0.0)
    want["acquisition_cost"] = c["acquisition_cost"].reindex(idx).fillna(acq0)
    want["retention_cost"] = ret * want["tenure_days"] / 365.25
    want["historical_clv"] = want["lifetime_profit"] - want["acquisition_cost"] - want["retention_cost"]
    got = v.sort_index()
    assert list(got.index) == idx and list(got.columns) == list(pyr._VALUE_COLUMNS)
    assert got.loc["c900", "categories"] == 2 and math.isnan(got.loc["c901", "tenure_days"])
    assert got["tenure_days"].dtype == float  # one customer without a contact date
    for col in ("purchases", "categories", "refunds", "relationship_days"):
        assert got[col].dtype == np.int64 and got[col].tolist() == want[col].astype(int).tolist(), col
    for col in ("first_purchase", "last_purchase", "signup_date", "first_contact"):
        assert got[col].dtype == "datetime64[s]"
        assert got[col].tolist() == [pd.NaT if pd.isna(x) else pd.Timestamp(x) for x in want[col]], col
    for col in ("revenue", "gross_revenue", "profit", "refund_amount", "tenure_days", "recency_days",
                "lifetime_profit", "acquisition_cost", "retention_cost", "historical_clv"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-12, atol=1e-9,
                                   err_msg=col)


def test_tiering_checks_arrow_string_ids_unique():
    ids = pd.Index(["a", "b", "c", "b"], dtype="str")
    v = pd.DataFrame({"revenue": [4.0, 3.0, 2.0, 1.0]}, index=ids)
    with pytest.raises(ValueError, match="unique"):
        pyr.customer_pyramid(v)
    with pytest.raises(ValueError, match="unique"):
        pyr.assign_tiers(v["revenue"])
    for vals in (["a", "b"], ["a", None], [None, None], ["a", "a"]):  # as pandas says, missing ids included
        assert pyr._unique_ids(pd.Index(vals, dtype="str")) == pd.Index(vals, dtype="str").is_unique
    ok = pd.DataFrame({"revenue": [4.0, 3.0, 2.0, 1.0]}, index=pd.Index(list("abcd"), dtype="str"))
    assert pyr.customer_pyramid(ok, shares=[0.5, 0.5]).tiers.tolist() == ["tier1", "tier1", "tier2", "tier2"]
    assert ok.index.is_unique  # remembered by the check, consistent with pandas


# ----------------------------------------------------------------------------- issue 11: migration among active
def test_migration_leaves_out_inactive_in_both():
    # the real case: every customer had value 0 in the earlier window; the tie-broken 'tiers' of zeros
    # must not turn into "2,207 customers moved up a layer"
    ids = [f"c{i:04d}" for i in range(200)]
    before_v = pd.Series(0.0, index=ids)
    after_v = pd.Series(np.r_[np.arange(1, 101, dtype=float), np.zeros(100)], index=ids)
    before = pyr.customer_pyramid(pd.DataFrame({"revenue": before_v}), "revenue").tiers
    after = pyr.customer_pyramid(pd.DataFrame({"revenue": after_v}), "revenue").tiers
    old = pyr.tier_migration(before, after)
    assert old.up > 0  # without values: zero-value ties look like moves
    m = pyr.tier_migration(before, after, before_v, after_v)
    assert m.up == m.down == m.same == 0
    assert m.new == 100 and m.gone == 0 and m.inactive_both == 100 and m.n == 100
    assert int(m.counts.to_numpy().sum()) == m.n
    # mixed: independent count of customers with value in both windows
    rng = np.random.default_rng(4)
    b_v = pd.Series(np.where(rng.random(200) < 0.5, rng.exponential(10, 200), 0.0), index=ids)
    a_v = pd.Series(np.where(rng.random(200) < 0.5, rng.exponential(10, 200), 0.0), index=ids)
    b_t = pyr.customer_pyramid(pd.DataFrame({"revenue": b_v}), "revenue").tiers
    a_t = pyr.customer_pyramid(pd.DataFrame({"revenue": a_v}), "revenue").tiers
    m = pyr.tier_migration(b_t, a_t, b_v, a_v)
    both = (b_v != 0) & (a_v != 0)
    assert m.up + m.down + m.same == int(both.sum())
    assert m.inactive_both == int(((b_v == 0) & (a_v == 0)).sum())
    assert m.new == int(((b_v == 0) & (a_v != 0)).sum()) and m.gone == int(((b_v != 0) & (a_v == 0)).sum())
    rank = {t: i for i, t in enumerate(pyr.TIERS)}
    up = sum(rank[a_t[c]] < rank[b_t[c]] for c in both[both].index)
    assert m.up == up


# ----------------------------------------------------------------------------- issue 11: cuts that do not split
def test_segment_cut_that_does_not_split_moves():
    # most customers bought once: median relationship length 0 -> everyone would be 'long-term'
    frame = pd.DataFrame({"historical_clv": np.arange(10, dtype=float),
                          "relationship_days": [0, 0, 0, 0, 0, 0, 30, 60, 90, 400]})
    s = pyr.loyalty_segments(frame)
    assert s.moved == ("tenure",) and s.tenure_cut == 30 and s.ok
    long_term = s.assignment.isin(["true_friends", "barnacles"])
    assert long_term.sum() == 4  # 30, 60, 90, 400 days
    # an explicit cut is never moved
    assert pyr.loyalty_segments(frame, tenure_cut=0).moved == ()
    # everyone equal: cannot split, and says so
    flat = pyr.loyalty_segments(frame.assign(relationship_days=0))
    assert flat.unsplit == ("tenure",) and not flat.ok
    noprofit = pyr.loyalty_segments(frame.assign(historical_clv=np.nan))
    assert "profit" in noprofit.unsplit
    # profit: at least half at the top value -> the cut moves down to the next value
    top_heavy = pd.DataFrame({"historical_clv": [5.0] * 6 + [1.0, 2.0, 3.0, 4.0],
                              "relationship_days": np.arange(10)})
    s = pyr.loyalty_segments(top_heavy)
    assert s.moved == ("profit",) and s.profit_cut == 4.0
    assert s.assignment.isin(["true_friends", "butterflies"]).sum() == 6


# ----------------------------------------------------------------------------- issue 10.9: windows, dates
def test_window_months_all_and_comparison():
    assert pyr.window_months(12) == 12 and pyr.window_months("6") == 6 and pyr.window_months(" ALL ") == "all"
    for bad in (0, 1.5, "x", True):
        with pytest.raises(ValueError):
            pyr.window_months(bad)
    assert pyr.value_window("2026-10-31", "all", "2024-03-05") == (dt.date(2024, 3, 5), dt.date(2026, 10, 31))
    assert pyr.comparison_end("2026-10-31", "", "all") == dt.date(2025, 10, 31)


def test_customer_value_whole_history(small_ds):
    v = pyr.customer_value(small_ds, "2026-06-30", months="all")
    assert v.attrs["start"] == "2024-12-01" and v.attrs["months"] == "all"
    # revenue over everything up to the end, computed by hand from the fixture
    assert v.loc["A", "revenue"] == pytest.approx(100 + 50 + 30 - 20)
    assert v.loc["C", "revenue"] == 40


def _repeat_tx(end="2026-09-17", n=60, seed=0):
    """n customers buying at random over 2025-01 .. end (several purchases each)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    span = (pd.Timestamp(end) - start).days
    rows = []
    for i in range(n):
        first = int(rng.integers(0, span // 2))
        k = int(rng.integers(1, 8))
        days = np.unique(np.r_[first, rng.integers(first, span + 1, k)])
        for d in days:
            rows.append((f"C{i:03d}", start + pd.Timedelta(days=int(d)), float(rng.gamma(4, 10))))
    rows.append(("C000", pd.Timestamp(end), 20.0))
    tx = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    tx["date"] = tx["date"].dt.date
    return tx


def test_predict_clv_data_ending_mid_month_uses_last_date(tmp_path):
    ds = dataset_from_frames({"transactions": _repeat_tx()}, tmp_path / "m")
    try:
        r = pyr.predict_clv(ds, "2026-09-30", calibration_end="2026-03-31")
    finally:
        ds.close()
    assert r.calibration_end == dt.date(2026, 9, 17) and r.data_ends_early
    assert r.requested_end == dt.date(2026, 9, 30)
    assert r.holdout_target_end == dt.date(2026, 3, 31)  # as asked, not tied to the period
    # T is measured to the last data date, in weeks
    tx = _repeat_tx()
    first = pd.to_datetime(tx.groupby("customer_id")["date"].min())
    expected_T = (pd.Timestamp("2026-09-17") - first).dt.days / 7
    np.testing.assert_allclose(r.customers["T"].sort_index().to_numpy(), expected_T.sort_index().to_numpy())
    assert r.purchase_unit == "day" and r.spend_check is not None


def test_predict_clv_period_end_after_last_purchase_in_it(tmp_path):
    # data run past the period (to 2026-09-17), but nobody bought between 2026-06-25 and the period
    # end 2026-06-30: the fit runs to 2026-06-30 (it said "no purchases up to the period end" before)
    tx = _repeat_tx()
    d = pd.to_datetime(tx["date"])
    tx = tx[~((d > "2026-06-25") & (d <= "2026-06-30"))].reset_index(drop=True)
    ds = dataset_from_frames({"transactions": tx}, tmp_path / "gap")
    try:
        r = pyr.predict_clv(ds, "2026-06-30", calibration_end="2026-03-31")
    finally:
        ds.close()
    assert r.calibration_end == dt.date(2026, 6, 30) and not r.data_ends_early
    cal = tx[pd.to_datetime(tx["date"]) <= "2026-06-30"]
    assert max(cal["date"]) == dt.date(2026, 6, 25)
    g = pd.to_datetime(cal.groupby("customer_id")["date"].unique().explode()).groupby(level=0)
    expected = pd.DataFrame({"frequency": g.size() - 1, "T": (pd.Timestamp("2026-06-30") - g.min()).dt.days / 7})
    got = r.customers[["frequency", "T"]].sort_index()
    np.testing.assert_array_equal(got["frequency"].to_numpy(), expected["frequency"].sort_index().to_numpy())
    np.testing.assert_allclose(got["T"].to_numpy(), expected["T"].sort_index().to_numpy())
    assert r.holdout_reason != "too_little"  # the holdout (2026-03-31, 2026-06-30] ran as well


# ----------------------------------------------------------------------------- issue 11: run or skip, never crash
def _hostile(tmp_path, name):
    """Small hostile datasets (see tests/test_nb_customer_pyramid.py for the notebook run)."""
    d = lambda *s: pd.to_datetime(list(s)).date  # noqa: E731
    if name == "one_customer":
        frames = {"transactions": pd.DataFrame({"customer_id": ["A"] * 3, "date": d("2026-01-05", "2026-03-01",
                                                                                   "2026-06-01"),
                                                "amount": [10.0, 20.0, 30.0]})}
    elif name == "all_zero":
        frames = {"transactions": pd.DataFrame({"customer_id": ["A", "B", "B"], "date": d("2026-01-05", "2026-02-01",
                                                                                          "2026-05-01"),
                                                "amount": [0.0, 0.0, 0.0]})}
    elif name == "header_only":
        frames = {"transactions": pd.DataFrame({"customer_id": pd.Series([], dtype=str),
                                                "date": pd.Series([], dtype="datetime64[s]"),
                                                "amount": pd.Series([], dtype=float)}),
                  "customers": pd.DataFrame({"customer_id": ["A", "B"], "signup_date": d("2025-01-01",
                                                                                         "2025-02-01")})}
    elif name == "empty_period":  # data end a year before the period asked for
        frames = {"transactions": pd.DataFrame({"customer_id": ["A", "B", "B"], "date": d("2024-01-05", "2024-02-01",
                                                                                          "2024-05-01"),
                                                "amount": [10.0, 5.0, 7.0]})}
    else:  # no customers table, no margin, everyone bought once: relationship length 0 for all
        frames = {"transactions": pd.DataFrame({"customer_id": [f"C{i}" for i in range(40)],
                                                "date": d(*[f"2026-0{1 + i % 6}-1{i % 9}" for i in range(40)]),
                                                "amount": np.linspace(5, 200, 40)})}
    return dataset_from_frames(frames, tmp_path / name)


@pytest.mark.parametrize("name", ["one_customer", "all_zero", "header_only", "empty_period", "single_buyers"])
def test_value_pipeline_runs_or_says_why(tmp_path, name):
    from workbench.engine import MissingDataError

    ds = _hostile(tmp_path, name)
    try:
        try:
            v = pyr.customer_value(ds, "2026-06-30", 12)
        except MissingDataError:
            assert name == "header_only"  # no customers up to the end: the section is skipped with a reason
            with pytest.raises((pyr.CLVNotEstimable, MissingDataError)):
                pyr.predict_clv(ds, "2026-06-30")
            return
        p = pyr.customer_pyramid(v, "revenue")
        assert p.table["customers"].sum() == len(v)
        ci = pyr.top_share_ci(v["revenue"], n_boot=50)
        if len(v) < pyr.MIN_CASES:
            assert not ci.evidence()  # tiny data: never a headline
        seg = pyr.loyalty_segments(v)
        assert seg.table["n"].sum() == len(v)
        if name in ("all_zero", "single_buyers"):
            assert not seg.ok  # no margin / one purchase each: the section says why
        g = pyr.gini_ci(v["revenue"], n_boot=20)
        if name in ("one_customer", "all_zero", "empty_period"):
            assert not np.isfinite(g.low)  # not estimable: the notebook prints no digits
        try:
            r = pyr.predict_clv(ds, "2026-06-30")
        except pyr.CLVNotEstimable as exc:
            assert exc.code in ("no_purchases", "no_repeat", "no_spend")
        else:
            assert not r.identified or len(r.customers) >= 30
            if not r.identified:
                assert r.customers["clv"].isna().all()
                with pytest.raises(pyr.CLVNotEstimable):
                    r.join(v)
        if name == "empty_period":
            assert (v["revenue"] == 0).all()  # customers exist, nothing in the window
    finally:
        ds.close()


def test_top_share_ci_against_numpy():
    rng = np.random.default_rng(2)
    v = rng.pareto(1.5, 500)
    ci = pyr.top_share_ci(v, 0.2, n_boot=100, seed=1)
    k = 100
    assert ci.estimate == pytest.approx(np.sort(v)[::-1][:k].sum() / v.sum())
    assert ci.low <= ci.estimate <= ci.high and ci.evidence()
    flat = pyr.top_share_ci(np.ones(500), 0.2, n_boot=50)
    assert flat.estimate == pytest.approx(0.2) and not flat.evidence()  # even spread: no headline
    assert not pyr.top_share_ci([5.0], n_boot=50).estimable


# ----------------------------------------------------------------------------- CDNOW end to end (issue 10)
def _cdnow_file():
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for cand in (here.parent.parent / "shared" / "realdata", here.parents[2] / "shared" / "realdata"):
        if (cand / "CDNOW_sample.txt").exists():
            return cand / "CDNOW_sample.txt"
    return here / "data" / "cdnow" / "CDNOW_sample.txt"  # the same file (tests/data/cdnow/README.md)


def test_cdnow_end_to_end_reproduces_published_bgnbd(tmp_path):
    # headerless, whitespace-separated; read with pandas here until workbench.toml's header=false /
    # delimiter="whitespace" are merged, then through the workbench like any dataset
    raw = pd.read_csv(_cdnow_file(), sep=r"\s+", header=None, dtype={2: str},
                      names=["master_id", "customer_id", "date", "quantity", "amount"])
    assert raw.groupby(["customer_id", "date"]).size().max() > 1  # several rows per customer-day
    tx = pd.DataFrame({"customer_id": raw["customer_id"].astype(str).str.zfill(4),
                       "date": pd.to_datetime(raw["date"], format="%Y%m%d").dt.date, "amount": raw["amount"]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path / "cdnow")
    try:
        r = pyr.predict_clv(ds, "1998-06-30", calibration_end="1997-09-30", time_unit="W")
        v = pyr.customer_value(ds, "1998-06-30", "all")
    finally:
        ds.close()
    # no order id: a purchase is a purchase day (repeat transactions aggregated by day), as published
    assert r.purchase_unit == "day" and v.attrs["purchase_unit"] == "row"
    fit = r.holdout_bgnbd
    assert fit.n == 2357 and fit.identified
    for name, value in {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}.items():
        assert getattr(fit, name) == pytest.approx(value, rel=1e-3), name
    assert r.holdout is not None and r.holdout.n == 2357
    # independent count of repeat purchase days up to 1997-09-30 with pandas
    cal = tx[pd.to_datetime(tx["date"]) <= "1997-09-30"]
    days = cal.groupby("customer_id")["date"].nunique() - 1
    assert r.holdout.table["n"].sum() == len(days)
    assert int((r.customers["frequency"] > 0).sum()) > 0 and r.identified
    assert len(v) == 2357 and v["revenue"].sum() == pytest.approx(tx["amount"].sum())


def test_olist_purchase_model_not_identified(tmp_path):
    # Olist: one order per row, very few repeat persons -> the BG/NBD fit runs to the boundary and the
    # workbench must say the data cannot support the model instead of printing CLV numbers
    folder = _cdnow_file().parent / "olist"
    if not (folder / "olist_orders_dataset.csv").exists():
        pytest.skip("realdata/olist not available")
    orders = pd.read_csv(folder / "olist_orders_dataset.csv")
    persons = pd.read_csv(folder / "olist_customers_dataset.csv")
    pay = pd.read_csv(folder / "olist_order_payments_dataset.csv").groupby("order_id")["payment_value"].sum()
    o = orders[~orders["order_status"].isin(["canceled", "unavailable"])].merge(persons, on="customer_id")
    tx = pd.DataFrame({"order_id": o["order_id"], "customer_id": o["customer_unique_id"],
                       "date": pd.to_datetime(o["order_purchase_timestamp"]).dt.date,
                       "amount": o["order_id"].map(pay)}).dropna()
    repeat = int((tx.groupby("customer_id")["order_id"].nunique() > 1).sum())
    ds = dataset_from_frames({"transactions": tx}, tmp_path / "olist")
    try:
        end = max(tx["date"])
        r = pyr.predict_clv(ds, end)
    finally:
        ds.close()
    assert r.purchase_unit == "order"
    assert int((r.customers["frequency"] > 0).sum()) == repeat < 100
    assert not r.identified and r.bgnbd_issues
    assert r.customers["clv"].isna().all()
    assert r.model_metric()["identified"] is False


def test_empty_period_is_not_moved_back_to_old_data(tmp_path):
    ds = _hostile(tmp_path, "empty_period")  # data end 2024-05-01
    try:
        # the data end inside the period: windows stop at the last data date
        assert pyr.effective_end(ds, "2024-05-31", "2024-05-01") == dt.date(2024, 5, 1)
        # the data end before the period: the period's end stays (an empty window, said as such)
        assert pyr.effective_end(ds, "2026-06-30", "2026-06-01") == dt.date(2026, 6, 30)
        with pytest.raises(pyr.CLVNotEstimable) as exc:
            pyr.predict_clv(ds, "2026-06-30", period_start="2026-06-01")
        assert exc.value.code == "no_period_data"
        assert exc.value.reason("en").endswith("the data end before this period starts.")
        assert "本期开始之前" in exc.value.reason("zh")
    finally:
        ds.close()


# ----------------------------------------------------------------------------- results (notebook sections)
SECTIONS = ("value_overview", "pyramid_tiers", "pyramid_explorer", "concentration", "segment_matrix",
            "segment_explorer", "lifetime_value", "holdout_check", "layer_migration", "upgrade_potential",
            "strategy", "method_notes")


def _kpis(result, lang="en"):
    return {k.key: k for k in result.kpis(lang)}


def test_results_kpis_and_metrics_match_pandas(small_ds):
    """Value window 2026-01-01 – 2026-06-30 on the hand-built data: the KPIs and metrics equal
    numbers computed from the raw rows with plain pandas."""
    from workbench.results import Result

    tx = small_ds.sql("SELECT customer_id, date, amount FROM transactions")
    tx["date"] = pd.to_datetime(tx["date"])
    base = pyr.value_base(small_ds, "2026-06-30", "2026-06-01", pyr.value_options(months=6, n_boot=50))
    win = tx[(tx["date"] >= "2026-01-01") & (tx["date"] <= "2026-06-30")]
    active = win.loc[win["amount"] > 0, "customer_id"].nunique()
    revenue = win["amount"].sum()
    ov = pyr.value_overview(base)
    k = _kpis(ov)
    assert k["active_customers"].value == active == 3 and k["active_customers"].n == 5  # A B C D E known
    assert k["revenue"].value == pytest.approx(revenue) and k["revenue"].unit == "money"
    assert k["revenue"].n == active
    prev = tx[(tx["date"] >= "2025-07-01") & (tx["date"] <= "2025-12-31")]
    assert k["active_customers"].previous == prev.loc[prev["amount"] > 0, "customer_id"].nunique() == 0
    assert k["revenue"].previous == pytest.approx(prev["amount"].sum())
    m = ov.metrics()
    assert m["n_customers"] == 5 and m["totals"]["revenue"] == pytest.approx(revenue)
    assert m["window"] == {"start": "2026-01-01", "end": "2026-06-30", "months": 6, "comparison_end": dt.date(2025, 12, 31)}
    # top 20% revenue share: by customer, highest first, round(0.2 n) customers (n = 5 known customers)
    per = win.groupby("customer_id")["amount"].sum().reindex(["A", "B", "C", "D", "E"], fill_value=0.0)
    top = np.sort(per.to_numpy())[::-1]
    kk = int(math.floor(0.2 * top.size + 0.5))
    pt = pyr.pyramid_tiers(base)
    assert _kpis(pt)["top20_revenue_share"].value == pytest.approx(top[:kk].sum() / top.sum())
    assert _kpis(pt)["top20_revenue_share"].better == "" and _kpis(pt)["top20_revenue_share"].previous is None
    assert pt.metrics()["top20_value_share"] == pytest.approx(top[:kk].sum() / top.sum())
    # five customers: never a headline (asked-for headlines carry evidence the rule rejects);
    # every section returns a Result and none breaks
    from workbench.metrics import evidence_rule

    for name in SECTIONS:
        r = getattr(pyr, name)(base)
        assert isinstance(r, Result)
        for lang in LANGS:
            for f in r.findings(lang):
                assert not f.headline or evidence_rule(f.interval, f.null, f.n, f.value_range) != "ok", f.key
            r.tables(lang), r.notes(lang), r.figures(lang), r.summary(lang)
        json.dumps(r.metrics(), default=str)
    # no identified CLV on five customers: no clv_mean KPI, the section says why
    lv = pyr.lifetime_value(base)
    assert "clv_mean" not in _kpis(lv)
    assert pyr.holdout_check(base).skipped


def test_results_on_sample_match_pandas(sample_ds, sample_dir, truth):
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "date", "amount"])
    tx["date"] = pd.to_datetime(tx["date"])
    end = dt.date.fromisoformat(truth["window"]["end"])
    base = pyr.value_base(sample_ds, end, end.replace(day=1), pyr.value_options(months=12, n_boot=30))
    start = pd.Timestamp(base.values.attrs["start"])
    win = tx[(tx["date"] >= start) & (tx["date"] <= pd.Timestamp(end))]
    k = _kpis(pyr.value_overview(base))
    assert k["active_customers"].value == win.loc[win["amount"] > 0, "customer_id"].nunique()
    assert k["revenue"].value == pytest.approx(win["amount"].sum())
    cmp_start = start - pd.DateOffset(months=12)
    prev = tx[(tx["date"] >= cmp_start) & (tx["date"] < start)]
    assert k["active_customers"].previous == prev.loc[prev["amount"] > 0, "customer_id"].nunique()
    assert k["revenue"].previous == pytest.approx(prev["amount"].sum())
    per = win.groupby("customer_id")["amount"].sum().reindex(base.values.index, fill_value=0.0).to_numpy()
    per = np.sort(per)[::-1]
    share = per[: int(math.floor(0.2 * per.size + 0.5))].sum() / per.sum()
    kp = _kpis(pyr.pyramid_tiers(base))["top20_revenue_share"]
    assert kp.value == pytest.approx(share)
    assert kp.interval[0] < share < kp.interval[1]
    lv = pyr.lifetime_value(base)
    assert base.clv.identified
    kc = _kpis(lv)["clv_mean"]
    assert kc.value == pytest.approx(np.mean(base.clv.customers["clv"])) and kc.unit == "money"
    assert kc.n == len(base.clv.customers)
    heads = [f for f in pyr.pyramid_tiers(base).findings("en") if f.headline]
    assert heads and all(f.action and f.how for f in heads)
    for f in heads:  # plain headline text: the statistics live in `how`
        assert "CI" not in f.text and "BG/NBD" not in f.text and "p =" not in f.text


def test_results_skip_with_reason_for_missing_tables(tmp_path):
    cu = pd.DataFrame({"customer_id": ["A", "B"], "signup_date": pd.to_datetime(["2025-01-01", "2025-02-01"]).date})
    ds = dataset_from_frames({"customers": cu}, tmp_path / "nt")
    try:
        base = pyr.value_base(ds, "2026-06-30", "2026-06-01", pyr.value_options())
    finally:
        ds.close()
    for name in SECTIONS[:-1]:
        r = getattr(pyr, name)(base)
        assert r.skipped, name
        assert "transactions" in r.reason("en") and r.title("en")
        assert "交易" in r.reason("zh")
        assert r.metrics() == {} and r.kpis() == []
        assert r.interactive_only == ("explorer" in name)  # a skipped widget is absent from manager pages too


def test_clv_not_estimable_speaks_for_itself(tmp_path):
    from workbench.results import Skipped

    ds = _hostile(tmp_path, "single_buyers")  # one purchase each: no repeat buyers
    try:
        base = pyr.value_base(ds, "2026-06-30", "2026-06-01", pyr.value_options(n_boot=20))
    finally:
        ds.close()
    r = pyr.lifetime_value(base)
    assert isinstance(r, Skipped) and isinstance(r.cause, pyr.CLVNotEstimable)
    assert r.reason("en") == ("Predicted lifetime value is not estimated: no customer bought more than once, "
                              "and the purchase model needs repeat purchases.")
    assert "重复购买" in r.reason("zh")


def test_result_presentation_flags(sample_ds, truth):
    end = dt.date.fromisoformat(truth["window"]["end"])
    base = pyr.value_base(sample_ds, end, end.replace(day=1), pyr.value_options(months=12, n_boot=20))
    assert pyr.pyramid_explorer(base).interactive_only and pyr.segment_explorer(base).interactive_only
    up = pyr.upgrade_potential(base).tables("en")
    assert up and all(t.appendix and t.export == "upgrade_candidates" for t in up)
    assert all(str(x).startswith("p_") for x in up[0].frame.iloc[:, 0])  # pseudonyms by default
    assert up[0].frame.shape[0] == base.upgrade.n  # the export has every candidate; the page shows max_rows
    lv = pyr.lifetime_value(base)
    assert [t.appendix for t in lv.tables("en")] == [True]  # parameter table in the appendix
    ho = pyr.holdout_check(base)
    assert all(t.appendix for t in ho.tables("en")) and all(f.appendix for f in ho.figures("en"))
    seg = pyr.segment_matrix(base).tables("en")[0].frame
    assert seg.iloc[:, -1].str.len().max() <= 25  # short actions keep the table narrow
    fig = pyr.figure_tier_values(base.pyramid, "en")
    assert all(b.orientation == "h" for b in fig.data)  # labels never rotated at 390 px


def test_clv_histogram_is_binned_and_counts_everyone():
    rng = np.random.default_rng(3)
    v = rng.gamma(0.8, 300, 5000)
    fig = pyr.figure_clv_distribution(v, "en")
    bar = fig.data[0]
    assert len(bar.x) == 50 and sum(bar.y) == v.size  # 50 bars, every customer counted once
    cap = np.quantile(v, 0.99)
    expected, _ = np.histogram(np.minimum(v, cap), bins=50)
    assert list(bar.y) == list(expected)
    assert bar.y[-1] >= (v >= cap).sum()  # the top 1% pooled in the last bin


def test_zh_model_text_has_no_latin_model_names():
    """zh pages name the models in Chinese (no "BG/NBD" or "Gamma-Gamma" words in zh strings)."""
    for k, v in table().items():
        if k.startswith("pyramid."):
            assert "Gamma" not in v["zh"] and "NBD" not in v["zh"], k
