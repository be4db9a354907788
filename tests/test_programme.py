"""Loyalty programme evaluation (issue 15): ledgers by hand, planted effects on the sample, ROI arithmetic,
risk rules on planted bad ledgers, and the members+points-only export."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import programme as prog
from workbench.config import ConfigError, load_config
from workbench.engine import dataset_from_frames, open_dataset
from workbench.results import Skipped

END = dt.date(2026, 10, 31)
ROOT = Path(__file__).resolve().parents[1]


def _ledger(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "date", "points", "kind"]).assign(
        date=lambda d: pd.to_datetime(d["date"]).dt.date)


# A hand-built ledger: expiry 13 months (points of month k expire on day 1 of month k+13), FIFO redemption.
HAND = _ledger([
    # A earns 100 in 2024-01 and 50 in 2024-02; redeems 120 in 2024-03 (100 from Jan, 20 from Feb);
    # the 30 left of Feb expire on 2025-03-01
    ("A", "2024-01-31", 100, "earn"), ("A", "2024-02-29", 50, "earn"), ("A", "2024-03-10", -120, "redeem"),
    ("A", "2025-03-01", -30, "expire"),
    # B earns 200 in 2024-01, redeems 50 in 2024-06; 150 expire on 2025-02-01; earns 80 in 2026-09 (outstanding)
    ("B", "2024-01-15", 200, "bonus"), ("B", "2024-06-03", -50, "redeem"), ("B", "2025-02-01", -150, "expire"),
    ("B", "2026-09-30", 80, "earn"),
    # C earns 300 in 2025-10 and redeems 100 in 2026-01: 200 outstanding, expiring 2026-11-01
    ("C", "2025-10-31", 300, "earn"), ("C", "2026-01-05", -100, "redeem"),
])


@pytest.fixture(scope="module")
def hand_ds(tmp_path_factory):
    members = pd.DataFrame({"customer_id": ["A", "B", "C"], "joined_at": pd.to_datetime(
        ["2024-01-01", "2024-01-10", "2025-10-01"]).date, "level": "Basic"})
    return dataset_from_frames({"points": HAND, "members": members}, tmp_path_factory.mktemp("hand"))


def test_fifo_vintages_allocate_oldest_points_first(hand_ds):
    v = prog.fifo_vintages(hand_ds, END)
    got = {(r.vintage.strftime("%Y-%m") if pd.notna(r.vintage) else None,
            r.use_month.strftime("%Y-%m") if pd.notna(r.use_month) else None, r.kind): r.points for r in v.itertuples()}
    expected = {
        ("2024-01", "2024-03", "redeem"): 100, ("2024-02", "2024-03", "redeem"): 20,
        ("2024-02", "2025-03", "expire"): 30,
        ("2024-01", "2024-06", "redeem"): 50, ("2024-01", "2025-02", "expire"): 150,
        ("2026-09", None, "outstanding"): 80,
        ("2025-10", "2026-01", "redeem"): 100, ("2025-10", None, "outstanding"): 200,
    }
    assert got == pytest.approx(expected)
    # conservation: every earned point is redeemed, expired or outstanding
    assert v["points"].sum() == HAND.loc[HAND["points"] > 0, "points"].sum()
    assert prog.infer_expiry_months(v) == 13


def test_breakage_liability_and_expiring_by_hand(hand_ds):
    b = prog.breakage(hand_ds, END, expiry_months=13, point_value=0.01, n_boot=200)
    # matured vintages (expiry before 2026-11-01): 2024-01 (A 100, B 200) and 2024-02 (A 50) → 350 earned,
    # 180 expired (A 30, B 150); 2025-10 and 2026-09 have not reached expiry
    assert b.rate == pytest.approx(180 / 350)
    assert b.ci[0] <= b.rate <= b.ci[1]
    assert b.outstanding == 280
    cost = b.expected_cost()
    assert cost[0] == pytest.approx(280 * 0.01 * (1 - 180 / 350))
    # C's 200 points of 2025-10 expire on 2026-11-01: within 1, 3 and 6 months; B's 80 of 2026-09 in 2027-10
    exp = b.expiring.set_index("horizon_months")
    assert exp.loc[1, "points"] == 200 and exp.loc[1, "members"] == 1
    assert exp.loc[6, "points"] == 200
    flow = prog.points_flow(hand_ds, END, point_value=0.01)
    assert flow.outstanding == HAND["points"].sum() == 280
    assert flow.liability == pytest.approx(2.8)
    # the shown window is the 24 months from 2024-11: both expiries, only C's redemption
    assert flow.monthly["expired"].sum() == 180
    assert flow.monthly["redeemed"].sum() == 100
    assert flow.monthly["outstanding"].iloc[0] == 100 + 50 - 120 + 200 - 50  # balance carried into the window


def test_breakage_needs_kinds_or_expiry(tmp_path):
    led = HAND.assign(kind=None)
    ds = dataset_from_frames({"points": led}, tmp_path)
    r = prog.breakage(ds, END)
    assert isinstance(r, Skipped) and "redemptions" in r.reason("en")
    no_exp = HAND[HAND["kind"] != "expire"]
    ds2 = dataset_from_frames({"points": no_exp}, tmp_path / "b")
    r2 = prog.breakage(ds2, END)
    assert isinstance(r2, Skipped) and "expiry_months" in r2.reason("en")


def test_poisson_fe_matches_statsmodels_with_dummies():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    nu, nt = 60, 8
    u = np.repeat(np.arange(nu), nt)
    t = np.tile(np.arange(nt), nu)
    join = rng.integers(1, 2 * nt, nu)
    post = (t > join[u]).astype(float)
    y = rng.poisson(np.exp(rng.normal(0, 0.7, nu))[u] * np.exp(0.1 * t + np.log(1.3) * post))
    b, cov = prog.poisson_fe(y, post[:, None], u, t)
    keep = np.bincount(u, y)[u] > 0
    X = pd.get_dummies(pd.DataFrame({"u": u, "t": t}).astype(str), drop_first=False, dtype=float)
    X = X.drop(columns=["t_0"])
    X.insert(0, "post", post)
    fit = sm.GLM(y[keep], X[keep].to_numpy(), family=sm.families.Poisson()).fit(
        cov_type="cluster", cov_kwds={"groups": u[keep], "use_correction": False})
    assert b[0] == pytest.approx(fit.params[0], abs=1e-6)
    g = len(np.unique(u[keep]))
    assert math.sqrt(cov[0, 0]) == pytest.approx(math.sqrt(fit.cov_params()[0, 0] * g / (g - 1)), rel=1e-4)


def test_poisson_fe_on_pooled_patterns_matches_statsmodels():
    """The member-effect fit pools customers with the same panel months and join month; the estimate and
    its cluster-robust interval equal a plain Poisson GLM with unit and month dummies on the long panel."""
    import statsmodels.api as sm

    rng = np.random.default_rng(11)
    nu, nt = 400, 10
    lo, hi = rng.integers(0, 3, nu), rng.integers(7, 10, nu)  # few distinct panels: units share patterns
    join = np.where(rng.random(nu) < 0.6, rng.integers(2, 9, nu), -1)
    rows = [(i, t) for i in range(nu) for t in range(lo[i], hi[i] + 1) if t != join[i]]
    u, t = np.array(rows).T
    post = ((join[u] >= 0) & (t > join[u])).astype(float)
    y = rng.poisson(2 * np.exp(rng.normal(0, 0.4, nu))[u] * np.exp(0.05 * t + np.log(1.2) * post))
    key = (lo * nt + hi) * (nt + 1) + join + 1
    _, first, pattern = np.unique(key, return_index=True, return_inverse=True)
    assert len(first) < nu / 3
    tt = np.arange(nt)
    mask = (tt >= lo[first, None]) & (tt <= hi[first, None]) & (tt != join[first, None])
    X = ((join[first, None] >= 0) & (tt > join[first, None])).astype(float)[:, :, None]
    nz = y > 0
    b, cov = prog.poisson_fe_patterns(y[nz], u[nz], t[nz], pattern, mask, X)
    keep = np.bincount(u, y)[u] > 0
    D = pd.get_dummies(pd.DataFrame({"u": u, "t": t}).astype(str), dtype=float).drop(columns="t_0")
    D.insert(0, "post", post)
    fit = sm.GLM(y[keep], D[keep].to_numpy(), family=sm.families.Poisson()).fit(
        cov_type="cluster", cov_kwds={"groups": u[keep], "use_correction": False})
    assert b[0] == pytest.approx(fit.params[0], abs=1e-7)
    g = len(np.unique(u[keep]))
    assert math.sqrt(cov[0, 0]) == pytest.approx(math.sqrt(fit.cov_params()[0, 0] * g / (g - 1)), rel=1e-5)


def test_fifo_allocation_against_a_queue_simulation(tmp_path):
    """Random ledgers (partial redemptions, uses spanning several earning months, a final use beyond all
    points earned): the set-based FIFO allocation equals a plain queue walked row by row."""
    rng = np.random.default_rng(5)
    rows = []
    for c in range(60):
        balance = 0
        days = np.unique(rng.integers(0, 700, rng.integers(1, 25)))
        for i, d in enumerate(days):
            if balance == 0 or rng.random() < 0.6:
                pts = int(rng.integers(1, 300))
            else:
                pts = -int(rng.integers(1, balance + 1))
                if i == len(days) - 1 and c % 4 == 0:
                    pts = -(balance + 50)  # unbacked: more than was ever earned
            balance += pts
            rows.append((f"c{c}", d, pts, "earn" if pts > 0 else "redeem" if rng.random() < 0.7 else "expire"))
    led = pd.DataFrame(rows, columns=["customer_id", "day", "points", "kind"])
    led["date"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(led["day"], unit="D")).dt.date
    ds = dataset_from_frames({"points": led[["customer_id", "date", "points", "kind"]]}, tmp_path)
    got = prog.fifo_vintages(ds, END)
    expected: dict[tuple, float] = {}
    month = lambda d: pd.Timestamp(d).strftime("%Y-%m")  # noqa: E731
    for _, g in led.sort_values(["customer_id", "date", "points"], ascending=[True, True, False]).groupby("customer_id"):
        queue: list[list] = []  # [vintage, points left]
        for r in g.itertuples():
            if r.points > 0:
                queue.append([month(r.date), float(r.points)])
                continue
            need = float(-r.points)
            while need > 0 and queue:
                take = min(need, queue[0][1])
                k = (queue[0][0], month(r.date), r.kind)
                expected[k] = expected.get(k, 0.0) + take
                queue[0][1] -= take
                need -= take
                if queue[0][1] == 0:
                    queue.pop(0)
            if need > 0:
                k = (None, month(r.date), "unbacked")
                expected[k] = expected.get(k, 0.0) + need
        for v, left in queue:
            expected[(v, None, "outstanding")] = expected.get((v, None, "outstanding"), 0.0) + left
    seen = {(month(r.vintage) if pd.notna(r.vintage) else None, month(r.use_month) if pd.notna(r.use_month) else None,
             r.kind): r.points for r in got.itertuples()}
    assert seen == pytest.approx(expected)


def test_shared_customer_months_and_ledger_against_pandas(tmp_path):
    """The shared per-customer-month aggregate and points ledger (built once, reused by every analysis)
    equal plain pandas group-bys and cumulative sums; rows after ``end`` (mid-month) are left out, and
    post-join purchases start the day after joining."""
    rng = np.random.default_rng(11)
    n = 400
    tx = pd.DataFrame({"customer_id": rng.choice([f"c{i}" for i in range(30)], n),
                       "date": (pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")).date,
                       "amount": rng.normal(80, 60, n).round(2), "margin": rng.normal(20, 10, n).round(2)})
    tx["order_id"] = [f"o{i}" for i in range(n)]
    members = pd.DataFrame({"customer_id": [f"c{i}" for i in range(0, 30, 3)],
                            "joined_at": (pd.Timestamp("2025-03-01") + pd.to_timedelta(
                                rng.integers(0, 300, 10), unit="D")).date, "level": "Basic"})
    pts = pd.DataFrame({"customer_id": rng.choice([f"c{i}" for i in range(0, 30, 3)], 200),
                        "date": (pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 500, 200), unit="D")).date,
                        "points": rng.integers(-300, 400, 200).astype(float)})
    pts["kind"] = np.where(pts["points"] > 0, "earn", np.where(rng.random(200) < 0.5, "redeem", "expire"))
    ds = dataset_from_frames({"transactions": tx, "members": members, "points": pts}, tmp_path)
    assert ds.has("members", "joined_at") and ds.has("points", "kind")
    end = dt.date(2026, 2, 14)  # mid-month: the last month holds the days up to the 14th only
    got = ds.sql(f"SELECT * FROM {prog.customer_months(ds, end)}")
    assert prog.customer_months(ds, end) == prog.customer_months(ds, end)  # built once, reused
    t = tx[pd.to_datetime(tx["date"]) <= pd.Timestamp(end)].copy()
    t["month"] = pd.to_datetime(t["date"]).dt.to_period("M").dt.to_timestamp()
    joined = t["customer_id"].map(members.set_index("customer_id")["joined_at"])
    t["post"] = joined.notna() & (t["date"] > joined)
    expected = t.groupby(["customer_id", "month"]).apply(lambda g: pd.Series({
        "n": len(g), "spend": g["amount"].sum(), "spend_pos": g["amount"].clip(lower=0).sum(),
        "post_n": int(g["post"].sum()),
        "post_margin": g.loc[g["post"], "margin"].sum() if g["post"].any() else np.nan}), include_groups=False)
    got = got.assign(month=pd.to_datetime(got["month"])).set_index(["customer_id", "month"]).sort_index()
    pd.testing.assert_frame_equal(got[expected.columns].astype(float), expected.sort_index().astype(float),
                                  check_names=False, check_index_type=False)
    assert got.index.get_level_values("month").max() == pd.Timestamp("2026-02-01")

    led = ds.sql(f"SELECT * FROM {prog.points_ledger(ds, end)}").sort_values(["customer_id", "rn"])
    p = pts[pd.to_datetime(pts["date"]) <= pd.Timestamp(end)].sort_values(
        ["customer_id", "date", "points"], ascending=[True, True, False], kind="stable")
    g = p.groupby("customer_id")["points"]
    assert led["pts"].tolist() == p["points"].tolist()
    assert led["bal"].tolist() == g.cumsum().tolist()
    assert led["ce"].tolist() == p["points"].clip(lower=0).groupby(p["customer_id"]).cumsum().tolist()
    assert led["cu"].tolist() == (-p["points"]).clip(lower=0).groupby(p["customer_id"]).cumsum().tolist()
    assert led["k"].tolist() == p["kind"].tolist()
    # a later end replaces the shared table rather than keeping both
    first = prog.customer_months(ds, end)
    later = prog.customer_months(ds, dt.date(2026, 6, 30))
    assert later != first and int(ds.sql(f"SELECT sum(n) FROM {later}").iloc[0, 0]) == n
    assert ds.sql(f"SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = '{first}'")["n"].iloc[0] == 0


def test_roi_arithmetic_by_hand():
    r = prog.roi_from_effect(member_profit=108_000.0, effect=1.08, ci=(1.02, 1.15), cost=5_000.0)
    assert r["incremental"] == pytest.approx(108_000 - 100_000)
    assert r["roi"] == pytest.approx((8_000 - 5_000) / 5_000)
    assert r["roi_lo"] == pytest.approx((108_000 * (1 - 1 / 1.02) - 5_000) / 5_000)
    assert r["roi_lo"] < r["roi"] < r["roi_hi"]


def test_risk_rules_fire_on_planted_bad_ledgers(tmp_path):
    months = pd.date_range("2025-01-31", periods=8, freq="ME")
    tx = pd.DataFrame({"customer_id": "E", "date": (months - pd.Timedelta(days=5)).date, "amount": 100.0})
    good = [("E", d.date().isoformat(), 100, "earn") for d in months]
    bad = [
        ("N", "2025-02-01", 100, "earn"), ("N", "2025-03-01", -150, "expire"),  # expiry beyond the balance
        ("R", "2025-02-01", 100, "earn"), ("R", "2025-03-05", -300, "redeem"),  # redemption above the balance
        ("W", "2025-05-31", 500, "earn"),  # earned in a month without a purchase
        ("B", "2025-05-31", 100, "earn"), ("B", "2025-06-30", 5000, "earn"),  # far above what purchases earn
        ("J", "2025-05-31", 200, "bonus"),  # a bonus without a purchase is fine
    ]
    tx = pd.concat([tx, pd.DataFrame({"customer_id": ["B", "B"], "date": [dt.date(2025, 5, 10), dt.date(2025, 6, 10)],
                                      "amount": [100.0, 100.0]})])
    ds = dataset_from_frames({"points": _ledger(good + bad), "transactions": tx.assign(
        order_id=[f"o{i}" for i in range(len(tx))])}, tmp_path)
    r = prog.risk_flags(ds, END, key="test-key")
    by_rule = dict(zip(r.accounts["rule"], r.accounts["account"], strict=True))
    from workbench.privacy import pseudonymise

    ids = dict(zip(["N", "R", "W", "B", "E", "J"], pseudonymise(pd.Series(["N", "R", "W", "B", "E", "J"]),
                                                                 "test-key"), strict=True))
    assert by_rule == {"negative_balance": ids["N"], "redeem_above_balance": ids["R"],
                       "earn_without_purchase": ids["W"], "earn_burst": ids["B"]}
    assert ids["E"] not in set(r.accounts["account"]) and ids["J"] not in set(r.accounts["account"])
    assert not r.counts.set_index("rule").loc["shared_contact", "checked"]
    assert not set(r.accounts["account"]) & {"N", "R", "W", "B"}  # never raw ids


def test_config_programme_section(tmp_path):
    (tmp_path / "points.csv").write_text("customer_id,date,points\nA,2025-01-01,10\n", encoding="utf-8")
    base = '[tables.points]\nsource = "points.csv"\n'
    (tmp_path / "workbench.toml").write_text(base + '[programme]\npoint_value = 0.02\nexpiry_months = 12\n'
                                             'level_order = ["B", "S"]\n[programme.costs]\npoints_system = 1000\n',
                                             encoding="utf-8")
    cfg = load_config(tmp_path / "workbench.toml")
    assert cfg.programme == {"point_value": 0.02, "expiry_months": 12, "level_order": ["B", "S"],
                             "costs": {"points_system": 1000.0}}
    (tmp_path / "workbench.toml").write_text(base + "[programme]\npoint_value = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[programme\]\.point_value"):
        load_config(tmp_path / "workbench.toml")
    (tmp_path / "workbench.toml").write_text(base + "[programme]\npoint_vlaue = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="point_vlaue"):
        load_config(tmp_path / "workbench.toml")


# ------------------------------------------------------------------ the sample's planted truth
@pytest.fixture(scope="module")
def ds(sample_dir):
    return open_dataset(sample_dir)


def test_member_effect_recovers_planted_multiplier_and_reports_the_naive_gap(ds, truth):
    planted = truth["loyalty_programme"]["true_effect"]["purchase_rate_multiplier"]
    r = prog.member_effect(ds, END)
    assert r.ci[0] <= planted <= r.ci[1]
    w = r.weighted  # the propensity-weighted difference in differences, an independent second estimate
    assert w["ci"][0] <= planted <= w["ci"][1] and w["n_treated"] >= 100 and 0 < w["ess"] <= w["n_controls"]
    assert r.naive_ratio > r.ci[1] * 1.5  # the naive gap is selection, far outside the adjusted interval
    # the naive ratio recomputed in pandas: revenue per buying customer over the 24 months, members / others
    tx = pd.read_parquet(Path(ds.config.root) / "transactions.parquet")
    mem = set(pd.read_parquet(Path(ds.config.root) / "members.parquet")["customer_id"])
    tx = tx[pd.to_datetime(tx["date"]) >= "2024-11-01"]
    rev = tx.groupby("customer_id")["amount"].sum()
    is_m = rev.index.isin(list(mem))
    assert r.naive_ratio == pytest.approx(rev[is_m].mean() / rev[~is_m].mean(), rel=1e-9)
    assert r.naive_ratio == pytest.approx(truth["loyalty_programme"]["naive_gap"]["revenue_ratio_members_vs_others"],
                                          rel=0.15)
    pre = r.event[r.event["rel_month"] < -1]
    assert ((pre["ci_low"] <= 1) & (pre["ci_high"] >= 1)).mean() >= 0.6  # no strong pre-trend


def test_level_transitions_conserve_members(ds):
    r = prog.levels(ds, END)
    members = pd.read_parquet(Path(ds.config.root) / "members.parquet")
    members["since"] = pd.to_datetime(members["level_changed_at"].fillna(members["joined_at"]))
    members["joined_at"] = pd.to_datetime(members["joined_at"])
    members["left_at"] = pd.to_datetime(members["left_at"])
    expected = 0
    for day in r.reviews[:-1]:
        at = pd.Timestamp(day)
        active = members[(members["joined_at"] <= at) & (members["left_at"].isna() | (members["left_at"] > at))
                         & (members["since"] <= at)]
        expected += active["customer_id"].nunique()
    assert r.transitions["n"].sum() == expected
    rows = r.transitions.groupby("from_level")["share"].sum()
    assert np.allclose(rows, 1.0)
    assert list(r.order) == ["Basic", "Silver", "Gold", "Platinum"]  # ordered by spend, not alphabet
    assert r.review_source == "data" and len(r.reviews) >= 4


@pytest.mark.parametrize("days", [90, 20])
def test_active_after_review_against_pandas(ds, days):
    """Members with a purchase within ``days`` after a review: from the shared customer-month aggregate
    (windows of 32+ days, by first/last purchase day of the edge months) or an as-of join (shorter), both
    equal a plain pandas check of every member's purchase days."""
    tx = pd.read_parquet(Path(ds.config.root) / "transactions.parquet", columns=["customer_id", "date"])
    tx["date"] = pd.to_datetime(tx["date"])
    tx = tx[tx["date"] <= pd.Timestamp(END)]
    members = pd.read_parquet(Path(ds.config.root) / "members.parquet", columns=["customer_id"])["customer_id"]
    ids = sorted(set(tx["customer_id"]) & set(members))[:400:3]  # reviews concern members
    reviews = ["2025-07-01", "2025-10-15", "2026-01-31", "2026-09-20"]
    stayed = pd.DataFrame([(c, r, "up" if i % 3 == 0 else "same" if i % 3 == 1 else "down")
                           for i, c in enumerate(ids) for r in reviews], columns=["customer_id", "review", "move"])
    rows = ", ".join(f"('{c}', DATE '{r}', '{m}')" for c, r, m in stayed.itertuples(index=False))
    got = prog._active_after(ds, f"(SELECT * FROM (VALUES {rows}) v(customer_id, review, move))", days, END)
    days_of = tx.groupby("customer_id")["date"].apply(lambda d: d.to_numpy())
    stayed["active"] = [bool(((days_of[c] >= pd.Timestamp(r)) & (days_of[c] < pd.Timestamp(r) + pd.Timedelta(days=days))
                              ).any()) for c, r in zip(stayed["customer_id"], stayed["review"], strict=True)]
    expected = stayed.groupby("move")["active"].agg(["size", "sum"])
    got = got.set_index("move")
    for move in ("up", "same", "down"):
        assert got.loc[move, "n"] == expected.loc[move, "size"]
        assert got.loc[move, "active_after"] == expected.loc[move, "sum"]
    assert 0 < expected["sum"].sum() < len(stayed)


def test_participation_against_pandas(ds):
    r = prog.participation(ds, END)
    last = r.monthly.iloc[-1]
    root = Path(ds.config.root)
    tx = pd.read_parquet(root / "transactions.parquet")
    tx["date"] = pd.to_datetime(tx["date"])
    buyers = set(tx.loc[(tx["date"] >= "2026-10-01") & (tx["date"] <= "2026-10-31"), "customer_id"])
    m = pd.read_parquet(root / "members.parquet").groupby("customer_id").agg(
        joined=("joined_at", "min"), left=("left_at", "max"))
    m["joined"], m["left"] = pd.to_datetime(m["joined"]), pd.to_datetime(m["left"])
    member_buyers = m[(m["joined"] <= "2026-10-31") & (m["left"].isna() | (m["left"] > "2026-10-01"))
                      & m.index.isin(list(buyers))]
    assert last["buyers"] == len(buyers)
    assert last["member_buyers"] == len(member_buyers)
    at_end = m[(m["joined"] < "2026-11-01") & (m["left"].isna() | (m["left"] >= "2026-11-01"))]
    assert last["members"] == len(at_end)


def test_scorecard_retention_and_frequency_against_pandas(ds):
    r = prog.scorecard(ds, END, months=12)
    root = Path(ds.config.root)
    tx = pd.read_parquet(root / "transactions.parquet")
    tx["date"] = pd.to_datetime(tx["date"])
    m = pd.read_parquet(root / "members.parquet").groupby("customer_id").agg(
        joined=("joined_at", "min"), left=("left_at", "max"))
    m["joined"], m["left"] = pd.to_datetime(m["joined"]), pd.to_datetime(m["left"])
    start = pd.Timestamp("2025-11-01")
    members = set(m[(m["joined"] < start) & (m["left"].isna() | (m["left"] >= start))].index)
    before = set(tx.loc[(tx["date"] >= "2024-11-01") & (tx["date"] < start), "customer_id"])
    window = tx[(tx["date"] >= start) & (tx["date"] <= "2026-10-31")]
    counts = window.groupby("customer_id").size()
    for grp, keep in (("members", lambda c: c in members), ("others", lambda c: c not in members)):
        base = [c for c in before if keep(c)]
        again = sum(1 for c in base if c in counts.index)
        row = r.table[(r.table["indicator"] == "retention") & (r.table["group"] == grp)].iloc[0]
        assert row["n"] == len(base) and row["value"] == pytest.approx(again / len(base))
        buyers = counts[[keep(c) for c in counts.index]]
        row = r.table[(r.table["indicator"] == "frequency") & (r.table["group"] == grp)].iloc[0]
        assert row["value"] == pytest.approx(buyers.mean()) and row["n"] == len(buyers)
    assert {k.key for k in r.kpis()} == {"member_retention", "member_repeat_rate", "member_renewal"}


def test_sample_ledger_is_clean_and_breakage_inferred(ds):
    assert prog.risk_flags(ds, END).accounts.empty
    b = prog.breakage(ds, END, n_boot=100)
    assert b.expiry_months == 13 and b.expiry_source == "inferred"
    assert 0 < b.ci[0] <= b.rate <= b.ci[1] < 1


# ------------------------------------------------------------------ notebook
def _run(nb_data: Path, out: Path, lang: str, tmp_path: Path) -> dict:
    metrics = tmp_path / f"m_{lang}.json"
    env = {**os.environ, "WORKBENCH_REPORT": "1"}
    subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "05_loyalty_programme.ipynb"),
                    str(out), "-p", "data", str(nb_data), "-p", "lang", lang, "-p", "metrics_path", str(metrics),
                    "-p", "n_boot", "100", "--cwd", str(ROOT / "notebooks")], check=True, env=env,
                   capture_output=True, timeout=900)
    return json.loads(metrics.read_text(encoding="utf-8"))


def test_notebook_on_members_and_points_only_export(tmp_path, sample_dir):
    """A programme export with members (no level history) and an untyped ledger: runs, and says what it cannot do."""
    members = pd.read_parquet(sample_dir / "members.parquet").drop_duplicates("customer_id")[
        ["customer_id", "joined_at", "level"]]
    points = pd.read_parquet(sample_dir / "points.parquet")[["customer_id", "date", "points"]]
    ds = dataset_from_frames({"members": members, "points": points}, tmp_path / "export")
    assert ds.tables == ["members", "points"]
    m = _run(tmp_path / "export" / "workbench.toml", tmp_path / "out.ipynb", "en", tmp_path)
    notes = " ".join(m["notes"])
    assert "level history" in notes and "redemptions" in notes and "transactions" in notes
    assert m["metrics"]["points_outstanding"] == points["points"].sum()
    nb = json.loads((tmp_path / "out.ipynb").read_text(encoding="utf-8"))
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_notebook_on_the_sample_in_both_languages(tmp_path, sample_dir, sample_dir_zh):
    en = _run(sample_dir, tmp_path / "en.ipynb", "en", tmp_path)
    assert en["section"] == "loyalty_programme"
    for key in ("participation", "programme_scorecard", "level_transitions", "points_outstanding", "breakage", "member_effect",
                "programme_roi", "points_risk"):
        assert key in en["metrics"], key
    heads = [f for f in en["findings"] if f["headline"]]
    assert {"effect_adjusted", "breakage"} <= {f["key"] for f in heads}
    for f in heads:  # the evidence rule held for every headline
        if f.get("interval") and f.get("null") is not None:
            assert not (f["interval"][0] <= f["null"] <= f["interval"][1])
    zh = _run(sample_dir_zh, tmp_path / "zh.ipynb", "zh", tmp_path)
    text = " ".join(f["text"] for f in zh["findings"])
    assert "会员" in text and not any(w in text for w in ("members", "points", "Skipped"))


def test_time_to_first_upgrade_by_hand():
    # joined 2025-01-01; first upgrades after 2, 4 (event) and 6 months; one never (censored at END)
    spells = pd.DataFrame({"customer_id": ["a", "a", "b", "b", "c", "c", "d"],
                           "level": ["L1", "L2", "L1", "L3", "L2", "L3", "L1"],
                           "since": pd.to_datetime(["2025-01-01", "2025-03-02", "2025-01-01", "2025-05-02",
                                                    "2025-01-01", "2025-07-02", "2025-01-01"]),
                           "joined": pd.Timestamp("2025-01-01"), "left_at": pd.NaT})
    got = prog._first_upgrade(spells, {"L1": 0, "L2": 1, "L3": 2}, END)
    assert got["n"] == 4 and got["events"] == 3
    # KM: S = 3/4 after 60 days, exactly 1/2 after 121, 1/4 after 182; the median is the first time
    # S falls below one half (the SAS/statsmodels convention): 182 days
    assert got["median_months"] == pytest.approx(182 / 30.4375)
