"""Tests for workbench.sample: structure, determinism and planted effects.

Planted effects are checked by independent pandas computations on the written
files (the generator's internals are never called), against TRUTH.json.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import tomllib

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from workbench.sample import TABLES, SampleResult, generate_sample

N = 20000
END = "2025-06"
FILES = [f"{t}.parquet" for t in TABLES] + ["TRUTH.json", "workbench.toml"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("sample")
    out = {}
    out["a"] = generate_sample(base / "a", customers=N, seed=7, end=END)
    out["b"] = generate_sample(base / "b", customers=N, seed=7, end=END)
    out["c"] = generate_sample(base / "c", customers=N, seed=8, end=END)
    return out


@pytest.fixture(scope="module")
def res(runs) -> SampleResult:
    return runs["a"]


@pytest.fixture(scope="module")
def t(res):
    return {name: pd.read_parquet(res.paths[name]) for name in TABLES}


@pytest.fixture(scope="module")
def truth(res):
    return json.loads((res.out_dir / "TRUTH.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def window(truth):
    return pd.Timestamp(truth["window"]["start"]), pd.Timestamp(truth["window"]["end"])


# ----------------------------------------------------------------------------- structure
def test_result_and_files(res, truth):
    assert dataclasses.is_dataclass(res)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.rows = {}  # type: ignore[misc]
    for f in FILES:
        assert (res.out_dir / f).is_file(), f
    assert res.rows["customers"] == N
    assert truth["volumes"] == res.rows
    assert truth["window"] == {**truth["window"], "start": "2023-07-01", "end": "2025-06-30"}


def test_toml(res):
    cfg = tomllib.loads((res.out_dir / "workbench.toml").read_text(encoding="utf-8"))
    assert cfg["dataset"] == {"name": "Sample retail (synthetic)", "currency": "CNY",
                              "margin_rate": 0.3}
    for name in TABLES:
        assert cfg["tables"][name]["source"] == f"{name}.parquet"
    sv = cfg["tables"]["surveys"]
    assert sv["drivers"] == ["product_quality", "service_level", "delivery", "staff",
                             "value_for_money"]
    assert sv["scales"] == {"satisfaction": [1, 5], "repurchase_intent": [1, 5],
                            "recommend": [0, 10], "expectation": [1, 5]}


def test_determinism(runs):
    a, b, c = runs["a"].out_dir, runs["b"].out_dir, runs["c"].out_dir
    for f in FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    for f in ("customers.parquet", "transactions.parquet", "surveys.parquet", "TRUTH.json"):
        assert (a / f).read_bytes() != (c / f).read_bytes(), f
    md = pq.read_metadata(a / "transactions.parquet").metadata or {}
    assert not any(b"time" in k.lower() for k in md), md


COLUMNS = {
    "customers": ["customer_id", "signup_date", "segment", "region", "channel",
                  "acquisition_cost", "birth_year", "gender", "income", "occupation", "household_size",
                  "churn_reason", "churned_at", "name", "email", "phone"],
    "transactions": ["order_id", "customer_id", "date", "amount", "margin", "channel",
                     "product_category", "discount"],
    "surveys": ["response_id", "customer_id", "date", "satisfaction", "repurchase_intent",
                "recommend", "expectation", "product_quality", "service_level", "delivery",
                "staff", "value_for_money", "comment"],
    "complaints": ["complaint_id", "customer_id", "opened_at", "first_response_at", "closed_at",
                   "status", "category", "channel", "severity", "handler", "resolution", "text"],
    "members": ["customer_id", "joined_at", "level", "level_changed_at", "left_at"],
    "points": ["customer_id", "date", "points", "kind"],
}


def test_columns_and_dtypes(res):
    for name, cols in COLUMNS.items():
        schema = pq.read_schema(res.paths[name])
        assert schema.names == cols, name
        for f in schema:
            if f.name in ("date", "signup_date", "joined_at", "level_changed_at", "left_at", "churned_at"):
                assert str(f.type) == "date32[day]", (name, f)
            elif f.name.endswith("_at"):
                assert str(f.type) in ("timestamp[s]", "timestamp[ms]"), (name, f)
            elif f.name in ("amount", "margin", "discount", "acquisition_cost"):
                assert str(f.type) == "double", (name, f)
            elif f.name in ("birth_year", "points", "satisfaction", "recommend"):
                assert str(f.type) == "int64", (name, f)


def test_keys_unique(t):
    assert t["customers"].customer_id.is_unique
    assert t["customers"].customer_id.str.fullmatch(r"C\d{6}").all()
    assert t["complaints"].complaint_id.is_unique
    assert t["transactions"].order_id.is_unique
    assert t["surveys"].response_id.is_unique
    ids = set(t["customers"].customer_id)
    for name in ("transactions", "complaints", "members", "points"):
        assert set(t[name].customer_id) <= ids, name
    assert set(t["surveys"].customer_id.dropna()) <= ids


def test_dates_in_window(t, window):
    lo, hi = window
    hi_ts = hi + pd.Timedelta(days=1)
    for name, df in t.items():
        for col in df.columns:
            if col in ("date", "signup_date", "joined_at", "level_changed_at", "left_at") or \
                    col.endswith("_at"):
                s = pd.to_datetime(df[col]).dropna()
                assert s.min() >= lo, (name, col)
                assert s.max() < hi_ts, (name, col)


def test_scales(t):
    sv = t["surveys"]
    for col in ("satisfaction", "repurchase_intent", "expectation", "product_quality",
                "service_level", "delivery", "staff", "value_for_money"):
        assert sv[col].between(1, 5).all(), col
        assert set(sv[col].unique()) == {1, 2, 3, 4, 5}, col
    assert sv.recommend.between(0, 10).all()
    assert sv.recommend.nunique() == 11
    anon = sv.customer_id.isna().mean()
    assert 0.06 < anon < 0.14
    assert 0.1 < sv.comment.isna().mean() < 0.4
    # some customers answered twice
    assert (sv.customer_id.value_counts() > 1).sum() > 50


def test_volumes(t, truth):
    n = len(t["customers"])
    assert 7 <= len(t["transactions"]) / n <= 14
    surveyed = t["surveys"].customer_id.dropna().nunique() / n
    assert 0.07 <= surveyed <= 0.12
    assert 0.005 <= truth["complaints"]["observed_rate_per_customer_month"] <= 0.02
    assert 0.2 <= t["members"].customer_id.nunique() / n <= 0.4
    refunds = (t["transactions"].amount < 0).mean()
    assert 0.01 <= refunds <= 0.06


def test_points_balance_never_negative(t):
    p = t["points"].copy()
    assert set(p.kind) == {"earn", "redeem", "expire", "bonus"}
    assert (p.loc[p.kind.isin(["earn", "bonus"]), "points"] > 0).all()
    assert (p.loc[p.kind.isin(["redeem", "expire"]), "points"] < 0).all()
    # worst case within a day: debits before credits
    p["credit"] = p.points > 0
    p = p.sort_values(["customer_id", "date", "credit"], kind="stable")
    bal = p.groupby("customer_id").points.cumsum()
    assert bal.min() >= 0
    m = t["members"].groupby("customer_id").joined_at.min()
    first_pt = p.groupby("customer_id").date.min()
    assert (first_pt >= m.reindex(first_pt.index)).all()


def test_members_levels(t):
    m = t["members"].sort_values(["customer_id", "level_changed_at"], kind="stable")
    first = m.groupby("customer_id").head(1)
    assert (first.level_changed_at == first.joined_at).all()
    assert (first.level == "Basic").all()
    assert set(m.level) == {"Basic", "Silver", "Gold", "Platinum"}
    assert (m.level_changed_at >= m.joined_at).all()
    rank = m.level.map({"Basic": 0, "Silver": 1, "Gold": 2, "Platinum": 3})
    step = rank.groupby(m.customer_id).diff().dropna()
    assert (step > 0).sum() > 100 and (step < 0).sum() > 20  # promotions and demotions
    left = m.dropna(subset=["left_at"])
    assert len(left) > 0 and (left.left_at >= left.joined_at).all()


def test_complaints_times(t, window):
    c = t["complaints"]
    closed = c.dropna(subset=["closed_at"])
    assert (closed.closed_at >= closed.opened_at).all()
    fr = c.dropna(subset=["first_response_at"])
    assert (fr.first_response_at >= fr.opened_at).all()
    assert ((c.status == "open") == c.closed_at.isna()).all()
    assert 0.03 <= (c.status == "open").mean() <= 0.08
    assert c.first_response_at.isna().any()
    assert set(c.severity) == {"low", "medium", "high"}
    n_by_handler = c.handler.value_counts()
    assert (n_by_handler < 30).sum() >= 2  # a few handlers with small n
    hours = (c.closed_at - c.opened_at).dt.total_seconds() / 3600
    med = hours.groupby(c.handler).median()
    big = n_by_handler[n_by_handler > 100].index
    assert med[big].max() / med[big].min() > 3


def test_pii(t):
    cu = t["customers"]
    assert cu.phone.str.fullmatch(r"1[3-9]\d{9}").all()
    assert cu.email.str.fullmatch(r"[a-z]+\d+@[a-z0-9]+\.com").all()
    assert cu.name.str.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+").all()
    txt = t["complaints"].text
    assert txt.str.contains(r"[\w.]+@\w+\.com", regex=True).sum() > 10
    assert txt.str.contains(r"(?<!\d)1[3-9]\d{9}(?!\d)", regex=True).sum() > 10
    assert txt.str.contains("<b>", regex=False).sum() > 10


# ----------------------------------------------------------------------------- planted effects
@pytest.fixture(scope="module")
def followup(t, window):
    """Identified survey responses with complete 90-day follow-up and the observed outcome."""
    _, hi = window
    sv = t["surveys"].dropna(subset=["customer_id"]).copy()
    sv["date"] = pd.to_datetime(sv.date)
    sv = sv[sv.date + pd.Timedelta(days=90) <= hi]
    tx = t["transactions"].loc[t["transactions"].amount > 0, ["customer_id", "date"]].copy()
    tx["date"] = pd.to_datetime(tx.date)
    j = sv[["response_id", "customer_id", "date"]].merge(tx, on="customer_id",
                                                          suffixes=("", "_tx"))
    hit = (j.date_tx > j.date) & (j.date_tx <= j.date + pd.Timedelta(days=90))
    rep = hit.groupby(j.response_id).any()
    sv["repeat"] = sv.response_id.map(rep).fillna(False).astype(bool)
    sv["intent_top2"] = sv.repurchase_intent >= 4
    return sv


def _best_tau(rate: pd.Series, n: pd.Series) -> float:
    """Weighted least-squares hinge fit base + slope*max(0, s - tau) over candidate taus."""
    best = None
    for tau in (1.5, 2.5, 3.5, 4.5):
        x = np.maximum(0, rate.index.to_numpy(float) - tau)
        A = np.column_stack([np.ones_like(x), x])
        w = np.sqrt(n.to_numpy(float))
        coef, *_ = np.linalg.lstsq(A * w[:, None], rate.to_numpy() * w, rcond=None)
        sse = float((((A @ coef) - rate.to_numpy()) ** 2 * n.to_numpy()).sum())
        if best is None or sse < best[0]:
            best = (sse, tau)
    return best[1]


def test_two_thresholds(followup, truth):
    g = followup.groupby("satisfaction")
    rep, intent, n = g.repeat.mean(), g.intent_top2.mean(), g.size()
    th = truth["thresholds"]
    assert _best_tau(rep, n) == th["behaviour"]["tau"] == 3.5
    assert _best_tau(intent, n) == th["intent"]["tau"] == 2.5
    # intent appears at 3, behaviour does not
    assert intent[3] - intent[2] > 0.1
    assert abs(rep[3] - rep[2]) < 0.1
    # high vs low satisfaction gap at least what TRUTH implies (minus 3 SE)
    b = th["behaviour"]
    exp = {s: min(1, b["base"] + b["slope"] * max(0, s - b["tau"])) for s in range(1, 6)}
    hi_s, lo_s = followup[followup.satisfaction >= 4], followup[followup.satisfaction <= 3]
    implied = (hi_s.satisfaction.map(exp).mean() - lo_s.satisfaction.map(exp).mean())
    gap = hi_s.repeat.mean() - lo_s.repeat.mean()
    se = np.sqrt(0.25 / len(hi_s) + 0.25 / len(lo_s))
    assert gap >= implied - 3 * se
    for s in range(1, 6):
        assert abs(rep[s] - exp[s]) < 4 * np.sqrt(exp[s] * (1 - exp[s]) / n[s]) + 0.01


def test_intent_partly_converted(followup):
    hi = followup[followup.intent_top2]
    conv = hi.repeat.mean()
    assert 0.4 < conv < 0.9
    by_s = hi.groupby("satisfaction").repeat.mean()
    assert by_s[5] > by_s[4]


def test_four_cases(followup, t):
    tx = t["transactions"]
    pos = tx[tx.amount > 0]
    gross = (pos.amount + pos.discount).groupby(pos.customer_id).sum()
    share = pos.discount.groupby(pos.customer_id).sum() / gross
    first = followup.sort_values("date").drop_duplicates("customer_id").copy()
    first["disc_share"] = first.customer_id.map(share)
    sat_loyal = first[(first.satisfaction >= 4) & first.repeat]
    trust = (sat_loyal.disc_share < 0.03).mean()
    merc = (sat_loyal.disc_share > 0.08).mean()
    assert trust > 0.3 and merc > 0.2
    assert ((first.satisfaction >= 4) & ~first.repeat).sum() > 100  # satisfied, not loyal
    dis = first[first.satisfaction <= 2]
    assert (~dis.repeat).mean() > 0.6  # majority of the dissatisfied leave
    seg = t["customers"].set_index("customer_id").segment
    hostages = dis[dis.repeat]
    assert len(hostages) > 10
    contract_share_all = (seg == "Contract").mean()
    assert (hostages.customer_id.map(seg) == "Contract").mean() > 2 * contract_share_all


def test_drivers(t, truth):
    sv = t["surveys"]
    d = truth["drivers"]["names"]
    corr = sv[d].corr().to_numpy()
    assert corr[np.triu_indices(5, 1)].min() > 0.3
    X = np.column_stack([np.ones(len(sv)), sv[d].to_numpy(float)])
    coef, *_ = np.linalg.lstsq(X, sv.satisfaction.to_numpy(float), rcond=None)
    assert d[int(np.argmax(coef[1:]))] == truth["drivers"]["dominant"] == "service_level"
    assert truth["drivers"]["r2_order"][0] == "service_level"


def test_expectation_groups(followup, t):
    churned = t["customers"].set_index("customer_id").churn_reason.notna()
    first = followup.sort_values("date").drop_duplicates("customer_id")
    grp = pd.cut(first.expectation, [0, 2, 3, 5], labels=["below", "met", "above"])
    rate = first.customer_id.map(churned).groupby(grp, observed=True).mean()
    assert rate["below"] > rate["met"] > rate["above"]
    # expectation relates to satisfaction
    assert first[["expectation", "satisfaction"]].corr().iloc[0, 1] > 0.3


def test_value_and_profit_segments(t):
    tx, cu = t["transactions"], t["customers"]
    rev = tx.groupby("customer_id").amount.sum().reindex(cu.customer_id, fill_value=0)
    top = rev.sort_values(ascending=False)
    share = top.iloc[: int(0.2 * len(top))].sum() / top.sum()
    assert 0.6 <= share <= 0.9
    rate = tx.groupby("product_category").margin.sum() / tx.groupby("product_category").amount.sum()
    assert rate.max() - rate.min() > 0.2
    prof = tx.groupby("customer_id").margin.sum().reindex(cu.customer_id, fill_value=0)
    prof = prof - cu.set_index("customer_id").acquisition_cost
    pos = tx[tx.amount > 0]
    last = pd.to_datetime(pos.groupby("customer_id").date.max())
    signup = pd.to_datetime(cu.set_index("customer_id").signup_date)
    long_term = (last - signup.reindex(last.index)).dt.days.reindex(cu.customer_id) >= 365
    seg = pd.crosstab(prof.to_numpy() > 0, long_term.to_numpy())
    assert seg.shape == (2, 2) and (seg.to_numpy() > 100).all()


def test_complaint_trend_and_spike(t, truth):
    c = t["complaints"].copy()
    c["month"] = c.opened_at.dt.strftime("%Y-%m")
    counts = c.groupby(["month", "category"]).size().unstack(fill_value=0)
    share = counts.div(counts.sum(axis=1), axis=0)
    rising = truth["complaints"]["rising_category"]
    x = np.arange(len(counts))
    assert np.polyfit(x, counts[rising], 1)[0] > 0
    assert np.polyfit(x, share[rising], 1)[0] > 0.002
    spike = truth["complaints"]["spike_category"]
    assert counts[spike].idxmax() == truth["complaints"]["spike_month"]
    assert counts[spike].max() > 2 * counts[spike].drop(counts[spike].idxmax()).median()


def test_churn_effects(t):
    cu = t["customers"].set_index("customer_id")
    churned = cu.churn_reason.notna()
    assert 0.15 < churned.mean() < 0.55
    c = t["complaints"]
    unres = c.resolution.isna().groupby(c.customer_id).any()
    rate = churned.reindex(unres.index).groupby(unres).mean()
    assert rate[True] > rate[False] + 0.05
    # multi-channel customers churn less (naively)
    n_ch = t["transactions"].groupby("customer_id").channel.nunique()
    multi = (n_ch > 1).reindex(cu.index, fill_value=False)
    assert churned[~multi].mean() > churned[multi].mean()


def test_churned_at_is_the_latent_churn_day(t, truth):
    """``churned_at`` is set exactly for customers with a churn reason, inside the window, on or after the
    signup and the last purchase (no purchase after leaving), and the churned share matches the truth."""
    cu = t["customers"].set_index("customer_id")
    at = pd.to_datetime(cu.churned_at)
    assert (at.notna() == cu.churn_reason.notna()).all()
    assert at.notna().mean() == pytest.approx(truth["churn"]["churned_share"], abs=1e-4)
    lo, hi = pd.Timestamp(truth["window"]["start"]), pd.Timestamp(truth["window"]["end"])
    got = at.dropna()
    assert got.between(lo, hi).all() and (got >= pd.to_datetime(cu.signup_date[got.index])).all()
    tx = t["transactions"]
    last = pd.to_datetime(tx[tx.amount > 0].groupby("customer_id").date.max())
    assert (got >= last.reindex(got.index)).all()


def test_programme_self_selection(t, truth):
    tx, cu = t["transactions"], t["customers"]
    rev = tx.groupby("customer_id").amount.sum().reindex(cu.customer_id, fill_value=0)
    mem = cu.customer_id.isin(t["members"].customer_id).to_numpy()
    naive = rev[mem].mean() / rev[~mem].mean()
    true = truth["loyalty_programme"]["true_effect"]["purchase_rate_multiplier"]
    assert naive > 1.5 * true


# ----------------------------------------------------------------------------- zh + csv
@pytest.fixture(scope="module")
def zh(tmp_path_factory):
    base = tmp_path_factory.mktemp("zh")
    p = generate_sample(base / "pq", customers=3000, seed=3, lang="zh", end=dt.date(2025, 3, 9))
    c = generate_sample(base / "csv", customers=3000, seed=3, lang="zh", fmt="csv",
                        end="2025-03")
    return p, c


def test_zh_labels(zh):
    p, _ = zh
    han = re.compile(r"[\u4e00-\u9fff]")
    sv = pd.read_parquet(p.paths["surveys"])
    assert sv.comment.dropna().map(lambda s: bool(han.search(s))).all()
    cu = pd.read_parquet(p.paths["customers"])
    assert "华东" in set(cu.region)
    assert "合约客户" in set(cu.segment)
    assert cu.name.map(lambda s: bool(han.fullmatch(s[0]))).all()
    c = pd.read_parquet(p.paths["complaints"])
    assert set(c.category) <= {"配送", "产品质量", "服务态度", "账单收费", "退换货", "积分会员"}
    assert c.text.map(lambda s: bool(han.search(s))).all()
    assert set(pd.read_parquet(p.paths["members"]).level) <= {"普通", "银卡", "金卡", "白金"}
    cfg = tomllib.loads((p.out_dir / "workbench.toml").read_text(encoding="utf-8"))
    assert cfg["dataset"]["name"] == "示例零售（合成数据）"
    assert p.truth["window"]["end"] == "2025-03-31"


def test_csv_round_trip(zh):
    p, c = zh
    cfg = tomllib.loads((c.out_dir / "workbench.toml").read_text(encoding="utf-8"))
    assert cfg["tables"]["points"]["source"] == "points.csv"
    for name in TABLES:
        ref = pq.read_table(p.paths[name])
        raw = c.paths[name].read_bytes()
        raw.decode("utf-8")
        got = pacsv.read_csv(c.paths[name], convert_options=pacsv.ConvertOptions(
            column_types=ref.schema, strings_can_be_null=True))
        assert got.equals(ref), name
    df = pd.read_csv(c.paths["customers"], dtype={"phone": str})
    assert df.phone.str.fullmatch(r"1[3-9]\d{9}").all()


def test_default_end_and_validation(tmp_path):
    r = generate_sample(tmp_path / "d", customers=500, seed=1)
    today = dt.date.today()
    last = today.replace(day=1) - dt.timedelta(days=1)
    assert r.truth["window"]["end"] == last.isoformat()
    with pytest.raises(ValueError):
        generate_sample(tmp_path / "x", customers=500, lang="fr")
    with pytest.raises(ValueError):
        generate_sample(tmp_path / "x", customers=500, fmt="xlsx")


# ----------------------------------------------------------------------------- streaming (issue 17 item 4)
def test_streaming_in_chunks(tmp_path, monkeypatch):
    """Customers are generated chunk by chunk (never more than ``chunk_size`` at once), ids stay unique and
    fixed-width across chunks, rows are ordered chunk by chunk, and TRUTH.json's realised counts (summed over
    chunks) match the written files."""
    import workbench.sample as ws

    seen = []
    real = ws.generate_chunk

    def spy(pl, chunk, offset, n, ids):
        seen.append((offset, n))
        return real(pl, chunk, offset, n, ids)

    monkeypatch.setattr(ws, "generate_chunk", spy)
    r = generate_sample(tmp_path / "c", customers=2500, seed=5, end=END, chunk_size=1000)
    assert seen == [(0, 834), (834, 833), (1667, 833)]
    t = {name: pd.read_parquet(r.paths[name]) for name in TABLES}
    cu = t["customers"]
    assert cu.customer_id.tolist() == [f"C{i:06d}" for i in range(1, 2501)]
    for name, col in (("transactions", "order_id"), ("surveys", "response_id"), ("complaints", "complaint_id")):
        ids = t[name][col]
        assert ids.is_unique and ids.str.len().nunique() == 1 and ids.is_monotonic_increasing, name
        assert set(t[name].customer_id.dropna()) <= set(cu.customer_id), name
    # transactions: chunk blocks in customer order, dates sorted inside each block
    tx = t["transactions"]
    block = (tx.customer_id.str[1:].astype(int) - 1).map(lambda i: 0 if i < 834 else 1 if i < 1667 else 2)
    assert block.is_monotonic_increasing
    assert all(pd.to_datetime(g.date).is_monotonic_increasing for _, g in tx.groupby(block))
    assert pq.ParquetFile(r.paths["transactions"]).num_row_groups == 3
    truth = r.truth
    assert truth["volumes"] == {k: len(v) for k, v in t.items()}
    assert truth["generator"]["streaming"]["chunks"] == 3
    assert cu.churned_at.notna().mean() == pytest.approx(truth["churn"]["churned_share"], abs=1e-4)
    mem = cu.customer_id.isin(t["members"].customer_id)
    assert mem.mean() == pytest.approx(truth["loyalty_programme"]["member_share"], abs=1e-4)
    assert cu.churned_at[mem].notna().mean() == pytest.approx(
        truth["loyalty_programme"]["naive_gap"]["churn_members"], abs=1e-4)
    rev = tx.groupby("customer_id").amount.sum().reindex(cu.customer_id, fill_value=0).to_numpy()
    assert rev[mem.to_numpy()].mean() / rev[~mem.to_numpy()].mean() == pytest.approx(
        truth["loyalty_programme"]["naive_gap"]["revenue_ratio_members_vs_others"], abs=1e-3)
    assert (tx.amount < 0).mean() == pytest.approx(truth["value"]["refund_row_share"], abs=1e-4)
    assert len(truth["trait_segments"]["labels"]) == 2500
    cnt = t["complaints"].assign(m=pd.to_datetime(t["complaints"].opened_at).dt.strftime("%Y-%m"))
    got = cnt.groupby(["category", "m"]).size()
    months = truth["window"]["month_labels"]
    for cat, counts in truth["complaints"]["monthly_counts_by_category"].items():
        assert [int(got.get((cat, m), 0)) for m in months] == counts, cat


def test_one_chunk_does_not_depend_on_chunk_size(tmp_path):
    """A sample that fits in one chunk is the same whatever the chunk size (the unchunked generator's output)."""
    a = generate_sample(tmp_path / "a", customers=600, seed=9, end=END, chunk_size=600)
    b = generate_sample(tmp_path / "b", customers=600, seed=9, end=END)
    for name in TABLES:
        assert a.paths[name].read_bytes() == b.paths[name].read_bytes(), name
    with pytest.raises(ValueError):
        generate_sample(tmp_path / "x", customers=500, chunk_size=10)


# ----------------------------------------------------------------------------- programme join (issue 14)
def test_churn_time_is_the_exact_piecewise_exponential():
    """``churn_time`` against a numerical cumulative hazard on a fine grid (independent computation)."""
    from workbench.planted import churn_time

    S = np.array([0.0, 10.0, 5.0, 0.0])
    h = np.array([0.01, 0.02, 0.005, 0.03])
    E = np.array([1.2, 0.3, 0.9, 2.0])
    changes = [(np.array([50.0, 12.0, np.inf, 0.0]), np.array([0.85, 0.85, 0.85, 2.0])),
               (np.array([20.0, 1e12, 100.0, 10.0]), np.array([2.5, 2.5, 0.6, 0.5]))]
    got = churn_time(S, h, E, changes)
    grid = np.linspace(0, 2000, 2_000_001)
    for i in range(4):
        mult = np.ones_like(grid)
        for at, m in changes:
            mult *= np.where(grid >= max(at[i], S[i]), m[i], 1.0)
        cum = np.concatenate([[0], np.cumsum(h[i] * mult[:-1] * np.diff(grid) * (grid[:-1] >= S[i]))])
        assert got[i] == pytest.approx(np.interp(E[i], cum, grid), abs=0.01), i
    assert churn_time(S, h, E, []) == pytest.approx(S + E / h)


def test_programme_join_is_drawn_independently_of_the_lifetime(t):
    """Joining comes at least 90 days after signup and can come at any point of a member's lifetime (the old
    generator drew it inside the first 70% of the lifetime, so members could not churn soon after joining),
    and it is selected on observed purchases in the signup month (members' share rises with them)."""
    cu = t["customers"].set_index("customer_id")
    mem = t["members"].groupby("customer_id").joined_at.min()
    s = pd.to_datetime(cu.signup_date)
    j = pd.to_datetime(mem)
    since = (j - s[j.index]).dt.days
    assert since.min() >= 90
    at = pd.to_datetime(cu.churned_at[j.index])
    left = at.notna()
    frac = since[left] / (at[left] - s[j.index][left]).dt.days
    assert (frac > 0.8).mean() > 0.05 and frac.max() <= 1.0
    tx = t["transactions"]
    tx = tx[tx.amount > 0].assign(d=lambda x: pd.to_datetime(x.date))
    tx = tx.join(s.rename("s"), on="customer_id")
    same = (tx.d > tx.s) & (tx.d.dt.to_period("M") == tx.s.dt.to_period("M"))
    k1 = tx[same].groupby("customer_id").size().reindex(cu.index, fill_value=0)
    share = cu.index.isin(j.index)
    by = pd.Series(share).groupby(np.minimum(k1.to_numpy(), 2)).mean()
    assert by[0] < by[1] < by[2] and by[2] > 2 * by[0]


def test_member_churn_ratio_recoverable_by_a_plain_cox_model(t, truth):
    """The planted churn hazard ratio after joining is recovered by statsmodels PHReg with membership
    time-varying from ``joined_at`` (start/stop from a 90-day landmark), adjusted for the purchase days of
    the first 90 days and segment: the selection variable is observed, so the ratio is identified."""
    from statsmodels.duration.hazard_regression import PHReg

    cu = t["customers"].set_index("customer_id")
    end = pd.Timestamp(truth["window"]["end"])
    s = pd.to_datetime(cu.signup_date)
    stop = (pd.to_datetime(cu.churned_at).fillna(end) - s).dt.days.astype(float)
    event = cu.churned_at.notna().to_numpy()
    tx = t["transactions"]
    tx = tx[tx.amount > 0].assign(d=lambda x: pd.to_datetime(x.date)).join(s.rename("s"), on="customer_id")
    early = tx[(tx.d - tx.s).dt.days < 90].groupby("customer_id").d.nunique().reindex(cu.index, fill_value=1)
    j = (pd.to_datetime(t["members"].groupby("customer_id").joined_at.min()) - s).dt.days.reindex(cu.index)
    base = pd.DataFrame({"stop": stop, "event": event, "act": np.log(early), "j": j,
                         "contract": (cu.segment == "Contract").astype(float),
                         "premium": (cu.segment == "Premium").astype(float),
                         "value": (cu.segment == "Value").astype(float)})
    base = base[base.stop > 90]
    pre = base.assign(start=90.0, stop=np.where(base.j.notna() & (base.j < base.stop), np.maximum(base.j, 90), base.stop),
                      member=0.0)
    pre["event"] = pre.event & (pre.stop == base.stop)
    post = base[base.j.notna() & (base.j < base.stop)].assign(start=lambda x: np.maximum(x.j, 90.0), member=1.0)
    ep = pd.concat([pre[pre.stop > pre.start], post])
    X = ep[["act", "contract", "premium", "value", "member"]].to_numpy()
    res = PHReg(ep.stop.to_numpy(), X, status=ep.event.to_numpy().astype(int), entry=ep.start.to_numpy(),
                ties="efron").fit()
    b, se = res.params[-1], res.bse[-1]
    planted = truth["loyalty_programme"]["true_effect"]["churn_hazard_ratio"]
    assert np.exp(b - 2.576 * se) <= planted <= np.exp(b + 2.576 * se), (np.exp(b), se)
    naive = cu.churned_at.notna()[cu.index.isin(j.dropna().index)].mean() / cu.churned_at.notna()[
        ~cu.index.isin(j.dropna().index)].mean()
    assert naive < np.exp(b - 2.576 * se)  # the naive gap is selection
