"""Depth and cross-sell (workbench/crosssell.py): numbers checked a second way in plain pandas/scipy.

Hand-built baskets for support / confidence / lift / exact test / BH; first → second category and
transition lift by hand; hit rate@3 of both recommenders recomputed by hand; the planted sequence of
the sample (TRUTH.json ``category_sequence``) ranks first by lift; hostile shapes and the Olist export
(few repeat buyers) skip or say what the data cannot support instead of failing.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact

from workbench import crosssell as X
from workbench.engine import dataset_from_frames
from workbench.results import Skipped, render

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "olist"
END = dt.date(2026, 10, 31)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg by hand (step-up, monotone)."""
    p = np.asarray(p, float)
    n = p.size
    o = np.argsort(p)
    q = p[o] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty(n)
    out[o] = np.minimum(q, 1)
    return out


def _tx(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "date", "product_category"])
    df["date"] = pd.to_datetime(df["date"]).dt.date
    df["amount"] = 10.0
    df["order_id"] = [f"O{i:05d}" for i in range(len(df))]
    return df


# ------------------------------------------------------------------ rules
@pytest.fixture(scope="module")
def baskets(tmp_path_factory):
    """300 customers with category sets from a seeded draw: A and B go together, C is independent."""
    rng = np.random.default_rng(3)
    rows = []
    for c in range(300):
        a = rng.random() < 0.5
        b = rng.random() < (0.7 if a else 0.2)
        cset = [k for k, on in (("A", a), ("B", b), ("C", rng.random() < 0.4), ("D", rng.random() < 0.3)) if on]
        cset = cset or ["D"]
        for j, k in enumerate(cset):
            rows.append((f"C{c:04d}", f"2026-0{1 + j}-1{c % 9}", k))
    df = _tx(rows)
    ds = dataset_from_frames({"transactions": df}, tmp_path_factory.mktemp("baskets"))
    return df, ds


def test_rules_support_confidence_lift_by_hand(baskets):
    df, ds = baskets
    res = X.rules(ds, END, months=24, min_customers=5)
    assert not res.skipped
    basket = pd.crosstab(df["customer_id"], df["product_category"]).gt(0)
    n = len(basket)
    cats = sorted(basket.columns)
    assert res.customers == n and res.multi == int((basket.sum(axis=1) >= 2).sum())
    p_by_pair = {}
    for a, b in itertools.combinations(cats, 2):
        both = int((basket[a] & basket[b]).sum())
        table = [[both, int(basket[a].sum()) - both], [int(basket[b].sum()) - both, n - int((basket[a] | basket[b]).sum())]]
        p_by_pair[(a, b)] = fisher_exact(table, alternative="greater")[1]
    q_by_pair = dict(zip(p_by_pair, _bh(np.array(list(p_by_pair.values()))), strict=True))
    r = res.rules.set_index(["antecedent", "consequent"])
    assert len(r) == 2 * len(p_by_pair)
    for a, b in itertools.permutations(cats, 2):
        both = (basket[a] & basket[b]).sum()
        row = r.loc[(a, b)]
        assert row["support"] == pytest.approx(both / n)
        assert row["confidence"] == pytest.approx(both / basket[a].sum())
        assert row["lift"] == pytest.approx((both / basket[a].sum()) / (basket[b].mean()))
        key = tuple(sorted((a, b)))
        assert row["p"] == pytest.approx(p_by_pair[key], rel=1e-6, abs=1e-12)
        assert row["q"] == pytest.approx(q_by_pair[key], rel=1e-6, abs=1e-12)
        assert row["lift_low"] <= row["lift"] <= row["lift_high"]
    top = res.rules.iloc[0]
    assert {top["antecedent"], top["consequent"]} == {"A", "B"}  # the planted pair of this basket set
    f = {x.key: x for x in res.findings("en")}
    assert f["crosssell_top_rule"].headline and "A" in f["crosssell_top_rule"].text


def test_rules_window_excludes_older_purchases(baskets, tmp_path):
    df, _ = baskets
    old = df.copy()
    old["date"] = dt.date(2020, 1, 1)
    ds = dataset_from_frames({"transactions": old}, tmp_path)
    res = X.rules(ds, END, months=24)
    assert isinstance(res, Skipped) and "0" in res.reason("en")


# ------------------------------------------------------------------ sequence
def test_sequence_by_hand(tmp_path):
    rng = np.random.default_rng(5)
    cats = ["A", "B", "C", "D"]
    rows = []
    for c in range(400):
        first = cats[rng.integers(0, 4)]
        rows.append((f"K{c:04d}", "2025-01-05", first))
        rows.append((f"K{c:04d}", "2025-02-05", first))  # a repeat in the same category is not a move
        if rng.random() < 0.8:
            if first == "A" and rng.random() < 0.7:
                nxt = "D"
            else:
                nxt = [k for k in cats if k != first][rng.integers(0, 3)]
            rows.append((f"K{c:04d}", "2025-03-05", nxt))
            rows.append((f"K{c:04d}", "2025-04-05", cats[rng.integers(0, 4)]))
    for c in range(0, 400, 10):  # a second category on the first day: the order id decides (ties path)
        rows.append((f"K{c:04d}", "2025-01-05", cats[rng.integers(0, 4)]))
    rows.insert(0, ("K0005", "2025-01-05", "C"))  # an earlier order id on the first day decides the first category
    df = _tx(rows)
    ds = dataset_from_frames({"transactions": df}, tmp_path)
    res = X.sequence(ds, END, min_first=10)
    # by hand: order by date then order id
    s = df.sort_values(["customer_id", "date", "order_id"])
    first = s.groupby("customer_id")["product_category"].first()
    rest = s[s["product_category"].to_numpy() != s["customer_id"].map(first).to_numpy()]
    second = rest.groupby("customer_id")["product_category"].first()
    moved = pd.DataFrame({"first": first.reindex(second.index), "second": second})
    assert res.customers == len(first) and res.movers == len(moved)
    tr = res.transitions.set_index(["first", "second"])
    for a, b in itertools.permutations(cats, 2):
        n_a = (moved["first"] == a).sum()
        n_ab = ((moved["first"] == a) & (moved["second"] == b)).sum()
        ref = moved[(moved["first"] != a) & (moved["first"] != b)]
        base = (ref["second"] == b).mean()
        row = tr.loc[(a, b)]
        assert row["n"] == n_ab and row["n_first"] == n_a
        assert row["share"] == pytest.approx(n_ab / n_a)
        assert row["base"] == pytest.approx(base)
        assert row["lift"] == pytest.approx((n_ab / n_a) / base)
        p = fisher_exact([[n_ab, n_a - n_ab], [(ref["second"] == b).sum(), (ref["second"] != b).sum()]],
                         alternative="greater")[1]
        assert row["p"] == pytest.approx(p, rel=1e-6, abs=1e-12)
    top = res.transitions[res.transitions["q"] < 0.05].iloc[0]
    assert (top["first"], top["second"]) == ("A", "D")


def test_planted_sequence_ranks_first_by_lift(sample_ds, sample_dir, truth):
    planted = truth["category_sequence"]
    res = X.sequence(sample_ds, END)
    sig = res.transitions[res.transitions["q"] < 0.05]
    assert (sig.iloc[0]["first"], sig.iloc[0]["second"]) == (planted["first"], planted["next"])
    row = sig.iloc[0]
    # the sample's own record of the written data (independent numpy code in the generator)
    assert row["share"] == pytest.approx(planted["observed_share_next_after_first"], abs=1e-4)
    assert row["n_first"] == planted["n_first"]
    assert row["base"] == pytest.approx(planted["observed_share_next_after_other_firsts"], abs=1e-4)
    assert row["lift_low"] > 2
    # plain pandas on the written transactions
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["order_id", "customer_id", "date", "amount",
                                                                        "product_category"])
    tx = tx[tx["amount"] > 0].sort_values(["customer_id", "date", "order_id"])
    first = tx.groupby("customer_id")["product_category"].first()
    other = tx[tx["product_category"].to_numpy() != tx["customer_id"].map(first).to_numpy()]
    second = other.groupby("customer_id")["product_category"].first()
    a = first.reindex(second.index) == planted["first"]
    assert row["n_first"] == int(a.sum()) and row["n"] == int((a & (second == planted["next"])).sum())
    # association rules: the planted pair also has the highest lift
    rules = X.rules(sample_ds, END)
    top = rules.rules.iloc[0]
    assert {top["antecedent"], top["consequent"]} == {planted["first"], planted["next"]}
    f = {x.key: x for x in res.findings("en")}
    assert planted["first"] in f["crosssell_top_sequence"].text and f["crosssell_top_sequence"].headline


# ------------------------------------------------------------------ depth
def test_depth_by_hand(sample_ds, sample_dir):
    res = X.depth(sample_ds, END, freq="quarter", periods=8)
    tx = pd.read_parquet(sample_dir / "transactions.parquet", columns=["customer_id", "date", "amount",
                                                                        "product_category"])
    tx = tx[tx["amount"] > 0]
    tx["q"] = pd.PeriodIndex(pd.to_datetime(tx["date"]), freq="Q").astype(str).str.replace("Q", "-Q")
    k = tx.groupby(["q", "customer_id"])["product_category"].nunique()
    p = res.periods.set_index("period")
    assert len(p) == 7  # 2024-11 .. 2026-10: the first (2024-Q4) and last (2026-Q4) quarters are incomplete
    assert res.dropped == 2
    for q, row in p.iterrows():
        kq = k.loc[q]
        assert row["customers"] == len(kq)
        assert row["mean"] == pytest.approx(kq.mean())
        assert row["share_1"] == pytest.approx((kq == 1).mean())
        assert row["share_4+"] == pytest.approx((kq >= 4).mean())
        assert row["multi_share"] == pytest.approx((kq >= 2).mean())
        half = 1.96 * kq.std(ddof=1) / np.sqrt(len(kq))
        assert row["ci_low"] == pytest.approx(kq.mean() - half, abs=2e-3)
    kp = res.kpis("en")[0]
    assert kp.key == "categories_per_customer" and kp.value == pytest.approx(p["mean"].iloc[-1])


# ------------------------------------------------------------------ recommendations
@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """Two groups of categories (A-D popular, E-H less so); customers stay inside their group.

    Before the cutoff (2026-04-30) each customer buys one or two categories of their group; after it,
    one new category of the same group. Co-occurrence should find the group; popularity cannot.
    """
    rng = np.random.default_rng(11)
    g1, g2 = list("ABCD"), list("EFGH")
    rows = []
    for c in range(600):
        grp = g1 if c < 360 else g2
        picks = rng.permutation(grp)
        n_before = 1 + int(rng.random() < 0.5)
        for j in range(n_before):
            rows.append((f"R{c:04d}", f"2026-0{1 + j}-1{c % 9}", picks[j]))
        rows.append((f"R{c:04d}", "2026-07-15", picks[n_before]))
    df = _tx(rows)
    return df, dataset_from_frames({"transactions": df}, tmp_path_factory.mktemp("clustered"))


def _by_hand_hits(df: pd.DataFrame, cutoff: dt.date, k: int = 3) -> tuple[int, int, int, set, set]:
    first = df.groupby(["customer_id", "product_category"])["date"].min().reset_index()
    train = first[first["date"] <= cutoff]
    test = first[first["date"] > cutoff]
    B = pd.crosstab(train["customer_id"], train["product_category"]).gt(0).astype(int)
    cats = sorted(df["product_category"].unique())
    B = B.reindex(columns=cats, fill_value=0)
    pop = B.sum()
    C = B.T @ B
    P = C.div(np.diag(C), axis=0)
    P = P.where(~np.eye(len(cats), dtype=bool), 0.0)
    hits_m = hits_p = n = 0
    cov_m, cov_p = set(), set()
    for cid, new in test.groupby("customer_id")["product_category"]:
        if cid not in B.index:
            continue
        bought = set(B.columns[B.loc[cid] > 0])
        left = [c for c in cats if c not in bought]
        if len(left) <= k:
            continue
        n += 1
        score = (B.loc[cid] @ P)[left] + pop[left] / (pop.max() + 1) * 1e-6
        top_m = set(score.sort_values(ascending=False, kind="stable").index[:k])
        top_p = set(sorted(left, key=lambda c: (-pop[c], cats.index(c)))[:k])
        hits_m += bool(top_m & set(new))
        hits_p += bool(top_p & set(new))
        cov_m |= top_m
        cov_p |= top_p
    return n, hits_m, hits_p, cov_m, cov_p


def test_recommendation_hit_rate_by_hand_and_list(clustered):
    df, ds = clustered
    res = X.recommend(ds, END, k=3, holdout_months=6, active_months=12)
    n, hm, hp, cov_m, cov_p = _by_hand_hits(df, dt.date(2026, 4, 30))
    assert (res.n_eval, res.hits_model, res.hits_pop) == (n, hm, hp)
    assert res.rate_model > res.rate_pop and res.beats
    assert res.diff == pytest.approx(hm / n - hp / n) and res.diff_ci[0] > 0
    assert res.coverage_model == pytest.approx(len(cov_m) / 8) and res.coverage_pop == pytest.approx(len(cov_p) / 8)
    assert res.coverage_model > res.coverage_pop
    lst = res.customers
    assert len(lst) == 600 and {"customer_id", "rec_1", "rec_2", "rec_3"} <= set(lst.columns)
    bought = df.groupby("customer_id")["product_category"].agg(set)
    for _, row in lst.head(50).iterrows():
        recs = {row["rec_1"], row["rec_2"], row["rec_3"]} - {""}
        assert not recs & bought[row["customer_id"]]
        grp = set("ABCD") if row["customer_id"] < "R0360" else set("EFGH")
        assert row["rec_1"] in grp  # the first recommendation stays in the customer's group
    tab = res.tables("en")[0]
    assert tab.export and tab.appendix and "customer_id" in tab.frame.columns
    f = {x.key: x for x in res.findings("zh")}
    assert f["crosssell_recommendation_lift"].headline


def test_recommendation_not_better_says_so(sample_ds):
    """On the sample the categories are mostly drawn by popularity: the model must not claim a win."""
    res = X.recommend(sample_ds, END)
    assert not res.skipped
    if not res.beats:
        assert res.customers.empty and res.tables("en") == []
        text = res.findings("en")[0].text
        assert "no better" in text and not res.findings("en")[0].headline
        assert "最热门" in res.notes("zh")[-1]
    assert 0 <= res.rate_pop <= 1 and res.n_eval >= X.MIN_EVAL


# ------------------------------------------------------------------ hostile shapes
def _render_ok(result) -> None:
    render(result, "en")
    render(result, "zh")


def test_no_category_column_skips(tmp_path):
    df = _tx([("C1", "2026-01-01", "x")]).drop(columns=["product_category"])
    ds = dataset_from_frames({"transactions": df}, tmp_path)
    for f in (X.depth, X.rules, X.sequence, X.recommend):
        r = f(ds, END)
        assert isinstance(r, Skipped) and "product_category" in r.reason("en")
        _render_ok(r)


def test_one_category_skips_in_plain_words(tmp_path):
    rows = [(f"C{i}", f"2026-0{1 + i % 9}-01", "only") for i in range(200)]
    ds = dataset_from_frames({"transactions": _tx(rows)}, tmp_path)
    for f in (X.depth, X.rules, X.sequence, X.recommend):
        r = f(ds, END)
        assert isinstance(r, Skipped)
        assert "1 product category" in r.reason("en") and "品类" in r.reason("zh")
        _render_ok(r)


def test_few_repeat_buyers_say_what_the_data_cannot_support(tmp_path):
    rows = [(f"C{i:03d}", "2026-05-01", "AB"[i % 2]) for i in range(300)]
    rows += [(f"C{i:03d}", "2026-09-01", "CD"[i % 2]) for i in range(20)]  # 20 customers with two categories
    ds = dataset_from_frames({"transactions": _tx(rows)}, tmp_path)
    r = X.rules(ds, END)
    assert isinstance(r, Skipped) and "only 20 of 300 customers" in r.reason("en")
    s = X.sequence(ds, END)
    assert isinstance(s, Skipped) and "only 20 of 300" in s.reason("en")
    rec = X.recommend(ds, END)
    assert isinstance(rec, Skipped) and "popularity baseline" in rec.reason("en")
    d = X.depth(ds, END, freq="month", periods=12)
    assert not d.skipped
    for x in (r, s, rec, d):
        _render_ok(x)


# ------------------------------------------------------------------ Olist (real export, few repeat buyers)
OLIST_TOML = """
[dataset]
name = "Olist with categories (test)"
currency = "BRL"
[sources.orders]
source = "{root}/olist_orders_dataset.csv"
[sources.customers]
source = "{root}/olist_customers_dataset.csv"
[sources.items]
source = "{root}/olist_order_items_dataset.csv"
[sources.products]
source = "{root}/olist_products_dataset.csv"
[tables.transactions]
query = '''
SELECT o.order_id, c.customer_unique_id AS person, o.order_status, o.order_purchase_timestamp AS purchased,
       i.paid, i.category
FROM orders o
JOIN customers c USING (customer_id)
JOIN (SELECT order_id, sum(price) AS paid, arg_min(p.product_category_name, order_item_id) AS category
      FROM items LEFT JOIN products p USING (product_id) GROUP BY order_id) i USING (order_id)
'''
filter = "order_status NOT IN ('canceled', 'unavailable')"
[tables.transactions.columns]
customer_id = "person"
date = "purchased"
amount = "paid"
order_id = "order_id"
product_category = "category"
"""


@pytest.mark.realdata
@pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata is absent")
def test_olist_says_what_it_cannot_support(tmp_path):
    from workbench.engine import open_dataset

    (tmp_path / "workbench.toml").write_text(OLIST_TOML.format(root=REALDATA.resolve().as_posix()), encoding="utf-8")
    ds = open_dataset(tmp_path / "workbench.toml")
    end = dt.date(2018, 8, 31)
    raw = ds.sql("SELECT customer_id, count(DISTINCT product_category) AS k FROM transactions "
                 "WHERE amount > 0 AND product_category IS NOT NULL GROUP BY 1")
    multi = int((raw["k"] >= 2).sum())
    assert multi < X.MIN_MULTI  # few repeat buyers: the premise of this test
    d = X.depth(ds, end)
    assert not d.skipped and d.periods["mean"].between(1, 1.2).all()
    for f in (X.rules, X.sequence, X.recommend):
        r = f(ds, end)
        assert isinstance(r, Skipped), f.__name__
        reason = r.reason("en")
        assert "cannot" in reason or "only" in reason
        _render_ok(r)


def test_metrics_are_aggregates_without_customer_ids(clustered, tmp_path):
    """What reaches metrics.json: the four metric keys and the KPI, no customer ids (the list stays in the table)."""
    import json

    from workbench.metrics import Recorder

    _, ds = clustered
    rec = Recorder(tmp_path / "m.json", "segments_crosssell", "en")
    for f in (X.depth, X.rules, X.sequence, X.recommend):
        render(f(ds, END), "en", rec)
    rec.save()
    payload = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert {"crosssell_depth", "crosssell_recommendations"} <= set(payload["metrics"])
    assert payload["metrics"]["crosssell_recommendations"]["customers_listed"] == 600
    assert [k["key"] for k in payload["kpis"]] == ["categories_per_customer"]
    assert "R0" not in json.dumps(payload)  # no customer id of the list
