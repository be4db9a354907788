"""Tests for workbench.clv: RFM summary, BG/NBD, Gamma-Gamma, CLV, holdout validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.clv import (
    BetaGeoFit,
    BetaGeoModel,
    GammaGammaFit,
    GammaGammaModel,
    calibration_holdout,
    customer_lifetime_value,
    holdout_validation,
    rfm_summary,
)

pytestmark = [
    # third-party noise from ibis 12 on duckdb 2 / pandas 3, not from workbench.clv
    pytest.mark.filterwarnings("ignore:fetch_arrow_table:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated"),
]

DATA = Path(__file__).parent / "data" / "cdnow"
CAL_END = "1997-09-30"


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    return pd.read_csv(DATA / "cdnow_customers_summary.csv")


@pytest.fixture(scope="module")
def cdnow_monetary() -> pd.DataFrame:
    return pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")


@pytest.fixture(scope="module")
def cdnow_raw() -> pd.DataFrame:
    raw = pd.read_csv(
        DATA / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "quantity", "amount"],
        dtype={"date": str},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw[["customer_id", "date", "amount"]]


@pytest.fixture(scope="module")
def duck(tmp_path_factory):
    return ibis.duckdb.connect(), tmp_path_factory.mktemp("clv")


def _table(duck, df: pd.DataFrame, name: str):
    """Load a pandas frame into the in-memory DuckDB connection as an Ibis table.

    (ibis 12's ``create_table`` fails against duckdb 2.0 here, so go via Parquet.)
    """
    con, tmp = duck
    path = tmp / f"{name}.parquet"
    df.to_parquet(path)
    return con.read_parquet(path)


@pytest.fixture(scope="module")
def cdnow_tx(duck, cdnow_raw):
    return _table(duck, cdnow_raw, "cdnow")


@pytest.fixture(scope="module")
def cdnow_fit(cdnow_summary) -> BetaGeoFit:
    s = cdnow_summary
    return BetaGeoModel().fit(s["frequency"], s["recency"], s["T"]).result_


@pytest.fixture(scope="module")
def cdnow_gg(cdnow_monetary) -> GammaGammaFit:
    m = cdnow_monetary
    return GammaGammaModel().fit(m["x"], m["zbar"]).result_


def _close(actual: float, expected: float, rel: float = 0.01) -> bool:
    return abs(actual - expected) <= rel * abs(expected)


# ---------------------------------------------------------------------------
# published CDNOW results
# ---------------------------------------------------------------------------


def test_bgnbd_reproduces_published_cdnow(cdnow_fit):
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    got = cdnow_fit.to_dict()
    for name, value in published.items():
        assert _close(got[name], value), (name, got[name], value)
    assert got["n"] == 2357
    assert cdnow_fit.converged
    assert set(got) == {"r", "alpha", "a", "b", "loglik", "n"}
    # published log-likelihood (FHL 2005, Table 1): -9582.4
    assert abs(cdnow_fit.loglik - (-9582.4)) < 0.1


def test_gammagamma_reproduces_published_cdnow(cdnow_gg):
    published = {"p": 6.25, "q": 3.74, "v": 15.44}
    got = cdnow_gg.to_dict()
    for name, value in published.items():
        assert _close(got[name], value), (name, got[name], value)
    assert got["n"] == 946
    assert set(got) == {"p", "q", "v", "n"}


def test_standard_errors_positive_and_finite(cdnow_fit, cdnow_gg):
    for fit, names in ((cdnow_fit, "r alpha a b"), (cdnow_gg, "p q v")):
        for name in names.split():
            se = fit.se[name]
            assert np.isfinite(se) and se > 0, (name, se)
    # the inverse-Hessian SEs of r agree with lifetimes' (0.0126 on CDNOW)
    assert abs(cdnow_fit.se["r"] - 0.01256) < 5e-4


def test_end_to_end_from_raw_transactions(cdnow_tx, cdnow_summary):
    summary = rfm_summary(cdnow_tx, CAL_END, time_unit="W")
    assert len(summary) == 2357
    assert summary.attrs["n_nonpositive_days"] == 0
    assert summary.attrs["n_customers_excluded"] == 0
    # agrees with the published per-customer summary (rounded to 0.01 weeks)
    ref = cdnow_summary.set_index("ID").loc[summary.index]
    assert (summary["frequency"].to_numpy() == ref["frequency"].to_numpy()).all()
    assert np.abs(summary["recency"].to_numpy() - ref["recency"].to_numpy()).max() < 0.006
    assert np.abs(summary["T"].to_numpy() - ref["T"].to_numpy()).max() < 0.006
    fit = BetaGeoModel().fit(summary["frequency"], summary["recency"], summary["T"]).result_
    for name, value in {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}.items():
        assert _close(getattr(fit, name), value), (name, getattr(fit, name), value)
    gg = GammaGammaModel().fit(summary["frequency"], summary["monetary_value"]).result_
    assert gg.n == 946
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert _close(getattr(gg, name), value), (name, getattr(gg, name), value)


def test_holdout_groups_conserve_customers(cdnow_tx):
    ch = calibration_holdout(cdnow_tx, CAL_END, "1998-06-30", time_unit="W")
    assert len(ch) == 2357
    assert (ch["duration_holdout"] == 39.0).all()
    fit = BetaGeoModel().fit(ch["frequency"], ch["recency"], ch["T"])
    val = holdout_validation(fit, ch)
    table = val.table
    assert list(table.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert table["n"].sum() == len(ch) == val.n
    assert table.loc["0", "n"] == (ch["frequency"] == 0).sum()
    assert table.loc["7+", "n"] == (ch["frequency"] >= 7).sum()
    assert val.total_actual == ch["frequency_holdout"].sum()
    # BG/NBD tracks the holdout well on CDNOW: predictions rise with frequency
    assert table["predicted"].is_monotonic_increasing
    assert 0.5 < val.correlation < 1 and 0 < val.mae < 2
    assert "HoldoutValidation" in val.summary()


# ---------------------------------------------------------------------------
# RFM summary on a hand-computed example
# ---------------------------------------------------------------------------


def _tiny() -> pd.DataFrame:
    rows = [
        # customer A: two orders on Jan 1 collapse into 15; Jan 15 fully refunded
        ("A", "2020-01-01 09:00", 10.0),
        ("A", "2020-01-01 17:30", 5.0),
        ("A", "2020-01-08 12:00", 20.0),
        ("A", "2020-01-15 10:00", 30.0),
        ("A", "2020-01-15 11:00", -30.0),
        ("A", "2020-01-22 10:00", 40.0),
        ("A", "2020-01-22 18:00", -10.0),  # partial refund: net 30 is a purchase
        ("A", "2020-02-01 10:00", 5.0),  # holdout: one day, net 11
        ("A", "2020-02-01 11:00", 6.0),
        # customer B: a single purchase
        ("B", "2020-01-10 08:00", 12.0),
        # customer C: only a refund -> never a purchase
        ("C", "2020-01-05 08:00", -8.0),
        # customer D: free first order (amount 0, no refund) counts as a purchase
        ("D", "2020-01-03 08:00", 0.0),
        ("D", "2020-01-20 08:00", 9.0),
        ("D", "2020-02-05 08:00", -3.0),  # holdout refund: not a purchase
        # customer E: first purchase after calibration_end -> not in the summary
        ("E", "2020-02-02 08:00", 7.0),
        ("E", "2020-02-12 08:00", 7.0),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def test_rfm_summary_hand_computed(duck):
    tx = _table(duck, _tiny(), "tiny")
    s = rfm_summary(tx, "2020-01-29", time_unit="W")
    assert list(s.index) == ["A", "B", "D"]
    assert s.loc["A", "frequency"] == 2  # Jan 1, Jan 8, Jan 22 (Jan 15 netted to 0)
    assert s.loc["A", "recency"] == pytest.approx(21 / 7)
    assert s.loc["A", "T"] == pytest.approx(28 / 7)
    assert s.loc["A", "monetary_value"] == pytest.approx((20 + 30) / 2)
    assert s.loc["B", "frequency"] == 0
    assert s.loc["B", "recency"] == 0
    assert s.loc["B", "T"] == pytest.approx(19 / 7)
    assert s.loc["B", "monetary_value"] == 0
    assert s.loc["D", "frequency"] == 1
    assert s.loc["D", "recency"] == pytest.approx(17 / 7)
    assert s.loc["D", "monetary_value"] == pytest.approx(9.0)
    assert s.loc["A", "first_purchase"] == dt.date(2020, 1, 1)
    assert s.attrs["n_nonpositive_days"] == 2  # A on Jan 15, C on Jan 5
    assert s.attrs["n_customers_excluded"] == 1  # C
    d = rfm_summary(tx, "2020-01-29", time_unit="D")
    assert d.loc["A", "recency"] == 21 and d.loc["A", "T"] == 28


def test_calibration_holdout_hand_computed(duck):
    tx = _table(duck, _tiny(), "tiny2")
    h = calibration_holdout(tx, "2020-01-29", "2020-02-12", time_unit="W")
    assert list(h.index) == ["A", "B", "D"]
    assert h["frequency_holdout"].to_dict() == {"A": 1, "B": 0, "D": 0}
    assert h.loc["A", "monetary_value_holdout"] == pytest.approx(11.0)
    assert (h["duration_holdout"] == 2.0).all()
    same = rfm_summary(tx, "2020-01-29", observation_end="2020-02-12")
    pd.testing.assert_frame_equal(h, same)


def test_calibration_end_after_last_purchase_is_legal(duck):
    # A log cut at a period end (2020-01-31) whose last purchase is 2020-01-27: nobody bought in the
    # last four days. That is data, not an error (Olist cut at 2018-08-31: last purchase 2018-08-28).
    rows = [("A", "2020-01-02", 10.0), ("A", "2020-01-02", 4.0), ("A", "2020-01-09", 20.0),
            ("A", "2020-01-20", 30.0), ("B", "2020-01-05", 12.0), ("C", "2020-01-10", 8.0),
            ("C", "2020-01-27", 6.0)]
    df = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    tx = _table(duck, df, "cut_at_period_end")
    end = pd.Timestamp("2020-01-31")
    # without data_end a date after the last transaction is still refused (a typo guard) ...
    with pytest.raises(ValueError, match="calibration_end 2020-01-31 is outside the data"):
        rfm_summary(tx, "2020-01-31", time_unit="D")
    # ... with it, the summary runs to the period end
    s = rfm_summary(tx, "2020-01-31", time_unit="D", data_end="2020-01-31")
    # independently, with pandas: purchase days per customer
    days = df.groupby(["customer_id", df["date"].dt.normalize()])["amount"].sum().reset_index()
    g = days.groupby("customer_id")["date"]
    expected = pd.DataFrame({"frequency": g.size() - 1, "recency": (g.max() - g.min()).dt.days.astype(float),
                             "T": (end - g.min()).dt.days.astype(float)})
    pd.testing.assert_frame_equal(s[["frequency", "recency", "T"]], expected, check_names=False,
                                  check_dtype=False)
    assert expected.loc["C", "T"] == 21 and expected.loc["C", "recency"] == 17  # T past the last purchase
    assert s.attrs["last_transaction_day"] == dt.date(2020, 1, 27)
    # the holdout may also end after the last purchase: (2020-01-15, 2020-01-31]
    h = calibration_holdout(tx, "2020-01-15", "2020-01-31", time_unit="D", data_end=end)
    cal = days[days["date"] <= "2020-01-15"]
    hold = days[(days["date"] > "2020-01-15") & (days["date"] <= end)]
    assert h["frequency_holdout"].to_dict() == hold.groupby("customer_id").size().reindex(
        cal["customer_id"].unique(), fill_value=0).to_dict() == {"A": 1, "B": 0, "C": 1}
    assert (h["duration_holdout"] == 16).all()
    assert h["T"].to_dict() == (pd.Timestamp("2020-01-15") - cal.groupby("customer_id")["date"].min()
                                ).dt.days.astype(float).to_dict()
    # a data_end before the last transaction does not shrink the data
    assert rfm_summary(tx, "2020-01-27", data_end="2020-01-01").shape[0] == 3


def test_rfm_summary_errors(duck):
    tiny = _tiny()
    tx = _table(duck, tiny, "tiny3")
    with pytest.raises(ValueError, match="empty"):
        rfm_summary(_table(duck, tiny.iloc[:0], "empty"), "2020-01-29")
    with pytest.raises(ValueError, match="calibration_end .* outside the data"):
        rfm_summary(tx, "2019-12-31")
    with pytest.raises(ValueError, match="calibration_end .* outside the data"):
        rfm_summary(tx, "2021-01-01")
    with pytest.raises(ValueError, match="observation_end .* must be after"):
        calibration_holdout(tx, "2020-01-29", "2020-01-20")
    with pytest.raises(ValueError, match="observation_end .* outside the data"):
        calibration_holdout(tx, "2020-01-29", "2020-03-01")
    bad = tiny.assign(amount=tiny["amount"].where(tiny.index != 3, np.nan))
    with pytest.raises(ValueError, match="non-finite or missing amount"):
        rfm_summary(_table(duck, bad, "bad"), "2020-01-29")
    inf = tiny.assign(amount=tiny["amount"].where(tiny.index != 3, np.inf))
    with pytest.raises(ValueError, match="non-finite"):
        rfm_summary(_table(duck, inf, "inf"), "2020-01-29")
    with pytest.raises(ValueError, match="time_unit"):
        rfm_summary(tx, "2020-01-29", time_unit="M")
    with pytest.raises(ValueError, match="lacks required column"):
        rfm_summary(tx.rename(when="date"), "2020-01-29")


def test_model_input_errors():
    with pytest.raises(ValueError, match="frequency is empty"):
        BetaGeoModel().fit([], [], [])
    with pytest.raises(ValueError, match="all frequencies are zero"):
        BetaGeoModel().fit([0, 0, 0], [0, 0, 0], [5, 6, 7])
    with pytest.raises(ValueError, match="T has 1 non-finite"):
        BetaGeoModel().fit([1, 0], [1.0, 0.0], [np.nan, 3.0])
    with pytest.raises(ValueError, match="recency exceeds T"):
        BetaGeoModel().fit([1, 2], [5.0, 1.0], [3.0, 3.0])
    with pytest.raises(ValueError, match="all frequencies are zero"):
        GammaGammaModel().fit([0, 0], [0.0, 0.0])
    with pytest.raises(ValueError, match="monetary_value has 1 non-finite"):
        GammaGammaModel().fit([1, 2], [np.inf, 3.0])
    with pytest.raises(ValueError, match="not fitted"):
        BetaGeoModel().probability_alive([1], [1], [2])


# ---------------------------------------------------------------------------
# predictions: agreement with lifetimes and independent checks
# ---------------------------------------------------------------------------


def test_predictions_match_lifetimes(cdnow_summary, cdnow_monetary):
    lifetimes = pytest.importorskip("lifetimes")
    s = cdnow_summary
    params = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    ours = BetaGeoFit(**params, se={}, loglik=np.nan, n=0, converged=True)
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = pd.Series(params)
    ref.predict = ref.conditional_expected_number_of_purchases_up_to_time  # set by fit()
    f, r, T = s["frequency"], s["recency"], s["T"]
    for t in (1.0, 10.0, 39.0, 104.0):
        np.testing.assert_allclose(
            ours.expected_purchases(t, f, r, T).to_numpy(),
            ref.conditional_expected_number_of_purchases_up_to_time(t, f, r, T).to_numpy(),
            rtol=1e-9,
        )
    np.testing.assert_allclose(
        ours.probability_alive(f, r, T).to_numpy(),
        ref.conditional_probability_alive(f, r, T),
        rtol=1e-12,
    )
    ts = np.array([1.0, 10.0, 52.0])
    np.testing.assert_allclose(
        ours.expected_purchases_new(ts), ref.expected_number_of_purchases_up_to_time(ts), rtol=1e-9
    )
    # CLV agrees with lifetimes' GammaGammaFitter.customer_lifetime_value
    m = cdnow_monetary.rename(
        columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
    )
    gg = GammaGammaFit(p=6.25, q=3.74, v=15.44, se={}, loglik=np.nan, n=0, converged=True)
    ref_gg = lifetimes.GammaGammaFitter()
    ref_gg.params_ = pd.Series({"p": 6.25, "q": 3.74, "v": 15.44})
    expected = ref_gg.customer_lifetime_value(
        ref, m["frequency"], m["recency"], m["T"], m["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )  # fmt: skip
    got = customer_lifetime_value(ours, gg, m, horizon=12, discount_rate=0.01, time_unit="W")
    np.testing.assert_allclose(got["clv"].to_numpy(), expected.to_numpy(), rtol=1e-8)


def _simulate_bgnbd(n, params, T_cal, t_hold, rng):
    """Simulate the BG/NBD process event by event (independent of the model formulas).

    Returns calibration (x, t_x, T) and the purchases in (T, T + t_hold].
    """
    r, alpha, a, b = params
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = np.full(n, float(T_cal))
    horizon = T + t_hold
    n_arr = rng.poisson(lam * horizon)
    cust = np.repeat(np.arange(n), n_arr)
    times = rng.uniform(0.0, 1.0, cust.size) * horizon[cust]
    order = np.lexsort((times, cust))
    cust, times = cust[order], times[order]
    start = np.cumsum(n_arr) - n_arr
    rank = np.arange(cust.size) - start[cust] + 1  # 1-based repeat-purchase number
    # dropout after each repeat purchase with prob p: first "death" purchase index
    death = rng.geometric(p)
    alive = rank <= death[cust]
    in_cal = alive & (times <= T[cust])
    in_hold = alive & (times > T[cust])
    x = np.bincount(cust[in_cal], minlength=n)
    t_x = np.zeros(n)
    np.maximum.at(t_x, cust[in_cal], times[in_cal])
    hold = np.bincount(cust[in_hold], minlength=n)
    return x, t_x, T, hold


def test_bgnbd_recovers_simulated_parameters_and_predicts_holdout():
    rng = np.random.default_rng(20050101)
    true = (0.5, 6.0, 0.7, 2.0)
    x, t_x, T, hold = _simulate_bgnbd(40_000, true, 39.0, 39.0, rng)
    fit = BetaGeoModel().fit(x, t_x, T).result_
    for name, value in zip(("r", "alpha", "a", "b"), true, strict=True):
        est, se = getattr(fit, name), fit.se[name]
        assert abs(est - value) < 4 * se, (name, est, se, value)
    # Law of total expectation at the true parameters: the mean of eq. 10 over
    # customers equals the mean simulated holdout count.
    truth = BetaGeoFit(*true, se={}, loglik=np.nan, n=0, converged=True)
    pred = truth.expected_purchases(39.0, x, t_x, T)
    sd = hold.std() / np.sqrt(hold.size)
    assert abs(pred.mean() - hold.mean()) < 4 * sd
    # ... and conditional on frequency groups (coarse check)
    for k in (0, 1, 3):
        sel = x == k
        assert (
            abs(pred[sel].mean() - hold[sel].mean())
            < 4 * hold[sel].std() / np.sqrt(sel.sum()) + 0.02
        )
    # unconditional eq. 9 against simulated new customers
    new = truth.expected_purchases_new(39.0)
    assert abs(new - x.mean()) < 4 * x.std() / np.sqrt(x.size)


def test_weights_equal_repeated_rows(cdnow_summary):
    s = cdnow_summary
    counts = s.groupby(["frequency", "recency", "T"]).size().rename("w").reset_index()
    fit_w = BetaGeoModel().fit(counts["frequency"], counts["recency"], counts["T"], counts["w"])
    fit = BetaGeoModel().fit(s["frequency"], s["recency"], s["T"])
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit_w.result_, name) == pytest.approx(getattr(fit.result_, name), rel=1e-6)
    assert fit_w.result_.n == 2357


def test_prediction_limits(cdnow_fit):
    fit = cdnow_fit
    # no repeat purchase -> the model says the customer is certainly alive
    assert fit.probability_alive(0, 0.0, 50.0) == 1.0
    # t = 0 -> nothing expected
    assert fit.expected_purchases(0.0, 3, 10.0, 20.0) == pytest.approx(0.0, abs=1e-12)
    # a customer with x = 0 and T = 0 is a new customer (eq. 9 == eq. 10)
    assert fit.expected_purchases(26.0, 0, 0.0, 0.0) == pytest.approx(
        fit.expected_purchases_new(26.0), rel=1e-12
    )
    # heavy, recent buyers stay finite (the textbook form overflows here)
    big = fit.expected_purchases(52.0, 2000, 38.0, 39.0)
    assert np.isfinite(big) and big > 0
    # long silence after many purchases -> almost surely gone
    assert fit.probability_alive(20, 5.0, 200.0) < 1e-6
    # a recent purchase makes a customer more likely alive than an old one
    assert fit.probability_alive(5, 38.0, 39.0) > fit.probability_alive(5, 10.0, 39.0)


@settings(max_examples=60, deadline=None)
@given(
    r=st.floats(0.05, 5),
    alpha=st.floats(0.1, 50),
    a=st.floats(0.05, 5),
    b=st.floats(0.05, 5),
    x=st.integers(0, 200),
    frac=st.floats(0, 1),
    T=st.floats(0.1, 200),
    t=st.floats(0.0, 300),
)
def test_property_alive_in_unit_interval_and_purchases_monotone(r, alpha, a, b, x, frac, T, t):
    fit = BetaGeoFit(r, alpha, a, b, se={}, loglik=np.nan, n=0, converged=True)
    t_x = frac * T if x > 0 else 0.0
    p = fit.probability_alive(x, t_x, T)
    assert 0.0 <= p <= 1.0
    e1 = fit.expected_purchases(t, x, t_x, T)
    e2 = fit.expected_purchases(t + 1.0, x, t_x, T)
    assert np.isfinite(e1) and np.isfinite(e2)
    assert -1e-9 <= e1 <= e2 + 1e-9 * max(1.0, e2)
    new = fit.expected_purchases_new(t)
    assert np.isfinite(new) and new >= -1e-9


def test_removable_singularities_are_continuous():
    # a = 1 (and a + b = 1 for x = 0) make eq. 9/10 0/0; values match the limit
    at = BetaGeoFit(0.5, 3.0, 1.0, 2.0, se={}, loglik=np.nan, n=0, converged=True)
    near = BetaGeoFit(0.5, 3.0, 1.0 + 1e-4, 2.0, se={}, loglik=np.nan, n=0, converged=True)
    assert at.expected_purchases(10.0, 2, 5.0, 8.0) == pytest.approx(
        near.expected_purchases(10.0, 2, 5.0, 8.0), rel=1e-3
    )
    at = BetaGeoFit(1.0, 1.0, 0.5, 0.5, se={}, loglik=np.nan, n=0, converged=True)
    near = BetaGeoFit(1.0, 1.0, 0.5 + 1e-4, 0.5, se={}, loglik=np.nan, n=0, converged=True)
    assert at.expected_purchases_new(5.0) == pytest.approx(
        near.expected_purchases_new(5.0), rel=1e-3
    )


# ---------------------------------------------------------------------------
# CLV
# ---------------------------------------------------------------------------


def test_customer_lifetime_value_structure(cdnow_fit, cdnow_gg, cdnow_monetary):
    m = cdnow_monetary.rename(
        columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
    )
    m = m.set_index("ID")
    undiscounted = customer_lifetime_value(cdnow_fit, cdnow_gg, m, horizon=12, discount_rate=0.0)
    assert undiscounted.index.equals(m.index)
    # no discounting: CLV = expected purchases over 12 months x expected spend
    months = 12 * 4.345
    expected_n = cdnow_fit.expected_purchases(months, m["frequency"], m["recency"], m["T"])
    np.testing.assert_allclose(undiscounted["expected_purchases"], expected_n, rtol=1e-10)
    np.testing.assert_allclose(
        undiscounted["clv"], expected_n * undiscounted["expected_spend"], rtol=1e-10
    )
    discounted = customer_lifetime_value(
        cdnow_fit, cdnow_gg, m, horizon=12, discount_rate=0.01, margin=0.3
    )
    assert (discounted["clv"] < 0.3 * undiscounted["clv"] + 1e-12).all()
    assert (discounted["clv"] > 0).all()
    # population mean spend for customers without repeat purchases
    zero = m["frequency"] == 0
    assert np.allclose(
        discounted.loc[zero, "expected_spend"], cdnow_gg.p * cdnow_gg.v / (cdnow_gg.q - 1)
    )
    with pytest.raises(ValueError, match="horizon"):
        customer_lifetime_value(cdnow_fit, cdnow_gg, m, horizon=0)
    with pytest.raises(ValueError, match="lacks column"):
        customer_lifetime_value(cdnow_fit, cdnow_gg, m.drop(columns="monetary_value"))


def test_repr_and_summary(cdnow_fit, cdnow_gg):
    assert repr(cdnow_fit).startswith("BetaGeoFit(r=0.2426")
    assert "alpha" in cdnow_fit.summary() and "std.err" in cdnow_fit.summary()
    assert repr(cdnow_gg).startswith("GammaGammaFit(p=6.249")
    assert "population mean spend" in cdnow_gg.summary()
    with pytest.raises(AttributeError):
        cdnow_fit.r = 1.0  # frozen


# ---------------------------------------------------------------------------
# orders, not lines (issue 10.8)
# ---------------------------------------------------------------------------


def _order_lines() -> pd.DataFrame:
    rows = [
        # A: order 1 has three lines (one purchase), order 2 the same day is a second purchase,
        # order 3 is refunded the same day to within a cent (not a purchase), order 4 later
        ("A", "o1", "2020-01-01", 10.0),
        ("A", "o1", "2020-01-01", 5.0),
        ("A", "o1", "2020-01-01", 2.5),
        ("A", "o2", "2020-01-01", 7.5),
        ("A", "o3", "2020-01-08", 19.99),
        ("A", "o3", "2020-01-08", -19.985),
        ("A", "o4", "2020-01-15", 30.0),
        ("A", "o4", "2020-01-15", 12.0),
        # B: one order in two lines, then one refunded later (a later refund does not undo the purchase)
        ("B", "o5", "2020-01-03", 8.0),
        ("B", "o5", "2020-01-03", 4.0),
        ("B", "o6", "2020-01-10", 6.0),
        ("B", "o6", "2020-01-20", -6.0),
        # C: a single order of four lines
        ("C", "o7", "2020-01-05", 1.0),
        ("C", "o7", "2020-01-05", 1.0),
        ("C", "o7", "2020-01-05", 1.0),
        ("C", "o7", "2020-01-05", 1.0),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def _pandas_orders(df: pd.DataFrame, cal_end: str) -> pd.DataFrame:
    """Frequency / recency / T / monetary by orders, computed independently with pandas."""
    d = df[df["date"] <= cal_end].copy()
    d["neg"] = d["amount"] < 0
    o = d.groupby(["customer_id", "order_id", "date"]).agg(net=("amount", "sum"), neg=("neg", "any")).reset_index()
    o = o[(o["net"] > 0.01 + 1e-9) | ~o["neg"]]
    end = pd.Timestamp(cal_end)
    rows = {}
    for cid, g in o.groupby("customer_id"):
        g = g.sort_values(["date", "order_id"])
        first = g["date"].min()
        first_day = g[g["date"] == first]
        x = len(g) - 1
        first_amount = first_day["net"].mean()
        rows[cid] = {"frequency": x, "recency": (g["date"].max() - first).days / 7,
                     "T": (end - first).days / 7,
                     "monetary_value": (g["net"].sum() - first_amount) / x if x else 0.0}
    return pd.DataFrame.from_dict(rows, orient="index")


def test_rfm_summary_counts_orders_not_lines(duck):
    df = _order_lines()
    tx = _table(duck, df, "order_lines")
    got = rfm_summary(tx, "2020-01-20", time_unit="W", order_col="order_id")
    ref = _pandas_orders(df, "2020-01-20").loc[got.index]
    assert got.attrs["purchase_unit"] == "order"
    # A: o1, o2 (same day), o4 -> 3 orders, frequency 2; o3 netted to 0.005 is not a purchase
    assert got.loc["A", "frequency"] == 2 and got.loc["C", "frequency"] == 0
    np.testing.assert_array_equal(got["frequency"].to_numpy(), ref["frequency"].to_numpy())
    np.testing.assert_allclose(got[["recency", "T", "monetary_value"]].to_numpy(),
                               ref[["recency", "T", "monetary_value"]].to_numpy(), rtol=1e-12)
    # the same-day refunded order and the later refund are the excluded units
    assert got.attrs["n_nonpositive_days"] == 2
    # without the order column the lines of a day are one purchase (the CDNOW convention)
    by_day = rfm_summary(tx, "2020-01-20", time_unit="W")
    assert by_day.attrs["purchase_unit"] == "day"
    assert by_day.loc["A", "frequency"] == 1  # 1 Jan and 15 Jan; 8 Jan nets to within a cent
    assert by_day.loc["C", "frequency"] == 0
    # lines would have counted 15 purchases
    assert (got["frequency"] + 1).sum() == 6 < len(df)


def test_calibration_holdout_counts_orders(duck):
    df = _order_lines()
    tx = _table(duck, df, "order_lines_h")
    ch = calibration_holdout(tx, "2020-01-05", "2020-01-20", time_unit="W", order_col="order_id")
    # A in the holdout: o3 (netted out) is not a purchase, o4 is -> 1; B: o6 on 10 Jan -> 1; C: 0
    assert ch["frequency_holdout"].to_dict() == {"A": 1, "B": 1, "C": 0}
    assert ch.loc["A", "frequency"] == 1  # o1 and o2 on 1 Jan
    assert ch.loc["A", "monetary_value_holdout"] == pytest.approx(42.0)


def test_refund_within_a_cent_is_not_a_purchase(duck):
    df = pd.DataFrame({"customer_id": ["A"] * 4, "date": pd.to_datetime(
        ["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-09"]), "amount": [5.0, 10.00, -9.99, 4.0]})
    s = rfm_summary(_table(duck, df, "cent"), "2020-01-09", time_unit="D")
    # 2 Jan nets to 0.01 (a cent, float 0.010000000000000009): not a purchase
    assert s.loc["A", "frequency"] == 1 and s.attrs["n_nonpositive_days"] == 1
    assert s.loc["A", "recency"] == 8


# ---------------------------------------------------------------------------
# identification and Gamma-Gamma's independence assumption (issue 11)
# ---------------------------------------------------------------------------


def test_identification_flags_boundary_and_missing_errors(cdnow_fit, cdnow_gg):
    assert cdnow_fit.identification_issues() == () and cdnow_fit.identified
    assert cdnow_gg.identification_issues() == () and cdnow_gg.identified
    ok = {"r": 0.01, "alpha": 0.4, "a": 0.05, "b": 0.2}
    base = dict(r=0.24, alpha=4.4, a=0.79, b=2.4, loglik=-1.0, n=100, converged=True)
    assert BetaGeoFit(se=ok, **base).identified
    assert "boundary" in BetaGeoFit(se=ok, **{**base, "a": 1e-5}).identification_issues()  # a -> 0
    assert "boundary" in BetaGeoFit(se=ok, **{**base, "b": 3e6}).identification_issues()  # b huge
    assert "se_missing" in BetaGeoFit(se={**ok, "a": float("nan")}, **base).identification_issues()
    assert "se_large" in BetaGeoFit(se={**ok, "b": 5.0}, **base).identification_issues()
    assert "not_converged" in BetaGeoFit(se=ok, **{**base, "converged": False}).identification_issues()
    gg = GammaGammaFit(p=6.0, q=0.8, v=15.0, se={"p": 1.0, "q": 0.1, "v": 2.0}, loglik=-1.0, n=50, converged=True)
    assert "q_le_1" in gg.identification_issues()


def test_fit_without_dropout_information_is_not_identified():
    # 400 customers, a few repeat buyers whose repeats all fall right at the start: nothing to tell
    # the dropout process from the purchase rate -> the fit runs to the boundary (like Olist)
    rng = np.random.default_rng(3)
    n = 400
    x = np.zeros(n)
    x[:8] = 1
    T = rng.uniform(20, 100, n)
    t_x = np.where(x > 0, rng.uniform(0, 1, n), 0.0)
    fit = BetaGeoModel().fit(x, t_x, T).result_
    assert not fit.identified, (fit, fit.se)


def test_spend_frequency_check_matches_scipy():
    from scipy import stats

    from workbench.clv import spend_frequency_check

    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, 200).astype(float)
    m = 20 + 3 * x + rng.normal(0, 2, 200)  # spend rises with frequency
    x0 = np.concatenate([x, np.zeros(50)])
    m0 = np.concatenate([m, np.zeros(50)])  # non-repeat buyers are ignored
    chk = spend_frequency_check(x0, m0)
    assert chk.n == 200
    assert chk.r == pytest.approx(stats.pearsonr(x, m).statistic, rel=1e-12)
    assert chk.warn and chk.to_dict()["warn"]
    flat = spend_frequency_check(x, rng.normal(50, 5, 200))
    assert abs(flat.r) < 0.3 and not flat.warn
    tiny = spend_frequency_check([1, 2], [10.0, 20.0])
    assert np.isnan(tiny.r) and not tiny.warn


def _bgnbd_loglik_plain(params, x, t_x, T, w):
    """FHL 2005 eq. 6 written out with scipy's gammaln (independent of workbench.clv)."""
    from scipy.special import gammaln

    r, alpha, a, b = params
    lb = lambda p, q: gammaln(p) + gammaln(q) - gammaln(p + q)  # noqa: E731
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = lb(a, b + x) - lb(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(w * (a1 + a2 + np.logaddexp(a3, a4))))


def _central_hessian(f, theta, h=1e-4):
    k = theta.size
    out = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            out[i, j] = (f(theta + e_i + e_j) - f(theta + e_i - e_j) - f(theta - e_i + e_j)
                         + f(theta - e_i - e_j)) / (4 * h * h)
    return out


def test_bgnbd_closed_form_hessian_matches_finite_differences_of_the_plain_likelihood():
    from workbench.clv import _BGNBDLikelihood

    rng = np.random.default_rng(11)
    n = 3000
    x = rng.poisson(1.5, n).astype(float)
    T = rng.uniform(5, 40, n).round(1)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0).round(1)
    w = rng.integers(1, 4, n).astype(float)
    like = _BGNBDLikelihood(x, t_x, T, w)
    for params in ([0.25, 4.0, 0.8, 2.5], [1.3, 0.5, 3.0, 0.2], [0.05, 40.0, 0.01, 30.0]):
        theta = np.log(params)
        f = lambda th: -_bgnbd_loglik_plain(np.exp(th), x, t_x, T, w) / w.sum()  # noqa: E731
        val, grad, hess = like.value_grad_hess(theta)
        assert val == pytest.approx(f(theta), rel=1e-12)
        num_grad = np.array([(f(theta + e) - f(theta - e)) / 2e-6 for e in np.eye(4) * 1e-6])
        np.testing.assert_allclose(grad, num_grad, atol=1e-7)
        np.testing.assert_allclose(hess, _central_hessian(f, theta), atol=2e-5 * max(1.0, np.abs(hess).max()))


def test_bgnbd_newton_fit_on_many_rows_is_the_plain_maximum_with_its_standard_errors():
    # more than WARM_START_ROWS distinct rows: the fit starts from a draw, finishes by Newton steps
    from scipy import optimize

    rng = np.random.default_rng(5)
    x, t_x, T, _ = _simulate_bgnbd(30_000, (0.3, 5.0, 0.9, 2.2), 52.0, 1.0, rng)
    T = T + rng.integers(0, 400, x.size) / 7.0  # staggered ages: many distinct rows
    t_x = np.round(t_x * 7) / 7
    fit = BetaGeoModel().fit(x, t_x, T).result_
    f = lambda th: -_bgnbd_loglik_plain(np.exp(th), x, t_x, T, 1.0)  # noqa: E731
    ref = optimize.minimize(lambda th: f(th) / x.size, np.log([1.0, 10.0, 1.0, 1.0]), method="BFGS",
                            options={"gtol": 1e-8})  # finite-difference gradient
    ref.fun *= x.size
    got = np.log([fit.r, fit.alpha, fit.a, fit.b])
    np.testing.assert_allclose(got, ref.x, atol=2e-4)
    assert fit.loglik == pytest.approx(-f(got), rel=1e-12)
    assert fit.loglik >= -ref.fun - 1e-6  # at least as high as the plain optimiser's maximum
    cov = np.linalg.inv(_central_hessian(f, got, h=1e-3)) * np.outer(np.exp(got), np.exp(got))
    for i, name in enumerate(("r", "alpha", "a", "b")):
        assert fit.se[name] == pytest.approx(np.sqrt(cov[i, i]), rel=1e-3), name
    assert fit.converged
