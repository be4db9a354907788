"""Predictive customer lifetime value (CLV): RFM summaries, BG/NBD and Gamma-Gamma.

The module follows the "buy till you die" approach of Fader, Hardie & Lee:

* :func:`rfm_summary` / :func:`calibration_holdout` turn a transaction log (an
  Ibis table expression, aggregated inside the engine) into the per-customer
  frequency / recency / T / monetary-value summary the models need;
* :class:`BetaGeoModel` fits the BG/NBD purchase-count model (Fader, Hardie &
  Lee 2005, "Counting your customers the easy way", *Marketing Science* 24(2))
  by maximum likelihood and predicts future purchases and P(alive);
* :class:`GammaGammaModel` fits the Gamma-Gamma spend model (Fader, Hardie &
  Lee 2005, "RFM and CLV", *JMR* 42(4); Colombo & Jerath 1999);
* :func:`customer_lifetime_value` combines both into a discounted CLV;
* :func:`holdout_validation` compares predicted with actual holdout purchases.

Definitions (as in Fader & Hardie and the ``lifetimes`` package)
-----------------------------------------------------------------
* Purchases on the same calendar day are collapsed into one purchase whose
  amount is the day's net amount.
* ``frequency``: number of *repeat* purchase days (purchase days minus one).
* ``recency``: time from the first to the last purchase day.
* ``T``: time from the first purchase day to ``calibration_end``.
* ``monetary_value``: mean net amount of the repeat purchase days (the first
  purchase is excluded); 0 for customers without repeat purchases.
* Time is in ``time_unit``: ``"D"`` days or ``"W"`` weeks (= days / 7).

Refunds (negative amounts) are netted within the day (and order, when an order
column is given: then a purchase is an order, not a day). A day on which refunds
bring the net amount to within a cent of zero or below is *not* a purchase day: it counts towards
neither frequency, recency nor monetary value. Days without refunds are
purchases even when their amount is 0 (free or fully discounted orders; CDNOW
has eight such first purchases). The number of excluded days (and of customers
left with no purchase day at all) is reported in ``DataFrame.attrs`` of the
summary.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special

__all__ = [
    "TimeUnit",
    "rfm_summary",
    "calibration_holdout",
    "BetaGeoFit",
    "BetaGeoModel",
    "GammaGammaFit",
    "GammaGammaModel",
    "customer_lifetime_value",
    "HoldoutValidation",
    "holdout_validation",
    "SpendFrequencyCheck",
    "spend_frequency_check",
    "REFUND_TOLERANCE",
    "PERIODS_PER_MONTH",
]

TimeUnit = Literal["D", "W"]

_DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0}

#: Model time units per month used by :func:`customer_lifetime_value`. These are
#: the conventions of ``lifetimes.utils._customer_lifetime_value`` (30 days,
#: 4.345 weeks), kept so that results are comparable with that package.
PERIODS_PER_MONTH: dict[str, float] = {"D": 30.0, "W": 4.345}

_REQUIRED_COLUMNS = ("customer_id", "date", "amount")


# ---------------------------------------------------------------------------
# RFM summary (runs in the engine)
# ---------------------------------------------------------------------------


def _check_time_unit(time_unit: str) -> float:
    if time_unit not in _DAYS_PER_UNIT:
        raise ValueError(f"time_unit must be 'D' (days) or 'W' (weeks), got {time_unit!r}")
    return _DAYS_PER_UNIT[time_unit]


def _to_date(value: Any, name: str) -> _dt.date:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a valid date: {value!r}") from exc
    if pd.isna(ts):
        raise ValueError(f"{name} is missing (NaT)")
    return ts.date()


def _with_day(transactions: Any, order_col: str | None = None) -> Any:
    """Check the columns and add ``day`` (the date part of ``date``) to the Ibis table."""
    need = _REQUIRED_COLUMNS + ((order_col,) if order_col else ())
    missing = [c for c in need if c not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lacks required column(s) {missing}")
    t = transactions
    return t.mutate(day=t.date.cast("date"))


def _profile(t: Any, data_end: Any = None) -> dict[str, Any]:
    """One engine round-trip: row count, date range and bad-value counts.

    ``data_end`` (the day the log is known to cover, default its last transaction
    day) is ``row["data_end"]``, never before the last transaction day."""
    amount = t.amount.cast("float64")
    stats = t.aggregate(
        n_rows=t.count(),
        first_day=t.day.min(),
        last_day=t.day.max(),
        n_null_date=t.day.isnull().sum(),
        n_null_customer=t.customer_id.isnull().sum(),
        n_bad_amount=(amount.isnull() | amount.isnan() | amount.isinf()).sum(),
    ).to_pandas()
    row = stats.iloc[0].to_dict()
    if int(row["n_rows"]) == 0:
        raise ValueError("transactions is empty: no rows to summarise")
    if int(row["n_null_date"]):
        raise ValueError(f"transactions has {int(row['n_null_date'])} row(s) with a missing date")
    if int(row["n_null_customer"]):
        raise ValueError(
            f"transactions has {int(row['n_null_customer'])} row(s) with a missing customer_id"
        )
    if int(row["n_bad_amount"]):
        raise ValueError(
            f"transactions has {int(row['n_bad_amount'])} non-finite or missing amount(s)"
        )
    row["first_day"] = pd.Timestamp(row["first_day"]).date()
    row["last_day"] = pd.Timestamp(row["last_day"]).date()
    covered = row["last_day"] if data_end is None else _to_date(data_end, "data_end")
    row["data_end"] = max(row["last_day"], covered)
    return row


#: A customer-day (or order) whose refunds bring its net amount to within this of
#: zero (or below) is not a purchase: a same-day full refund of a 19.99 order that
#: leaves 0.004 of rounding is not a sale.
REFUND_TOLERANCE = 0.01


def _purchase_days(t: Any, start: _dt.date | None, end: _dt.date, order_col: str | None = None) -> Any:
    """Purchase units in ``(start, end]``: net amount, refund rows, purchase flag.

    Without ``order_col`` a unit is a customer-day (all rows of a day are one
    purchase, Fader & Hardie); with it a unit is one order on one day (distinct
    ``order_col`` per customer and day, so order lines are one purchase).
    """
    import ibis

    cond = t.day <= ibis.date(end)
    if start is not None:
        cond = cond & (t.day > ibis.date(start))
    w = t.filter(cond)
    amount = w.amount.cast("float64")
    keys = ["customer_id", "day"] + ([order_col] if order_col else [])
    # sums rounded to 1e-6 in the engine: a parallel float sum differs in the last bit between runs and
    # engines, and the Gamma-Gamma fit turns that into a 1e-7 difference in CLV (tests/test_engines.py)
    daily = w.group_by(keys).aggregate(net=amount.sum().round(6), n_refunds=(amount < 0).sum())
    # A unit is a purchase unless refunds bring its net amount to within a cent of zero
    # (or below); units without refunds are purchases even at 0 (free orders).
    return daily.mutate(is_purchase=(daily.net > REFUND_TOLERANCE + 1e-9) | (daily.n_refunds == 0))


def _by_day(purchases: Any) -> Any:
    """Purchase units summed per customer-day: ``net`` and ``units`` (orders that day)."""
    return purchases.group_by(["customer_id", "day"]).aggregate(
        net=purchases.net.sum().round(6), units=purchases.count()
    )


def _calibration_expr(
    t: Any, calibration_end: _dt.date, days_per_unit: float, order_col: str | None = None
) -> tuple[Any, Any]:
    import ibis

    daily = _purchase_days(t, None, calibration_end, order_col)
    days = _by_day(daily.filter(daily.is_purchase))
    per = days.group_by("customer_id").aggregate(
        first_day=days.day.min(),
        last_day=days.day.max(),
        n_units=days.units.sum(),
        total=days.net.sum().round(6),
        # the first purchase: the first day's mean order (the whole day without orders)
        first_amount=(days.net / days.units.cast("float64")).argmin(days.day),
    )
    end_days = ibis.date(calibration_end).epoch_days()
    first_days = per.first_day.epoch_days()
    frequency = per.n_units - 1
    summary = per.select(
        "customer_id",
        frequency=frequency,
        recency=(per.last_day.epoch_days() - first_days).cast("float64") / days_per_unit,
        T=(end_days - first_days).cast("float64") / days_per_unit,
        monetary_value=ibis.ifelse(
            frequency > 0, (per.total - per.first_amount) / frequency.cast("float64"), 0.0
        ),
        first_purchase=per.first_day,
    )
    excluded = daily.aggregate(
        n_nonpositive_days=(~daily.is_purchase).sum(),
        n_customers_seen=daily.customer_id.nunique(),
    )
    return summary, excluded


def rfm_summary(
    transactions: Any,
    calibration_end: Any,
    time_unit: TimeUnit = "W",
    observation_end: Any = None,
    order_col: str | None = None,
    data_end: Any = None,
) -> pd.DataFrame:
    """Per-customer frequency / recency / T / monetary-value summary.

    The aggregation runs inside the Ibis backend (e.g. DuckDB); only the
    per-customer result is materialised as pandas.

    Parameters
    ----------
    transactions : ibis.expr.types.Table
        Transaction log with columns ``customer_id``, ``date`` (date or
        timestamp; the time of day is ignored) and ``amount`` (refunds negative).
    calibration_end : date-like
        Last day (inclusive) of the calibration period. Must lie within the
        dates of ``transactions``, or up to ``data_end``.
    time_unit : {"W", "D"}, default "W"
        Unit of ``recency`` and ``T``: weeks (days / 7) or days.
    observation_end : date-like, optional
        If given, the result also has the holdout columns of
        :func:`calibration_holdout` for the period ``(calibration_end,
        observation_end]``.
    order_col : str, optional
        Column identifying an order (e.g. ``order_id``). Given, a purchase is one
        order (distinct ``order_col`` per customer and day: the lines of an order
        are one purchase, two orders on one day are two). Without it, a purchase
        is a customer-day: all rows of a day are one purchase (the Fader-Hardie
        convention behind the published CDNOW fits).
    data_end : date-like, optional
        The last day the transaction log covers, when that is after its last
        transaction: a log cut at a period end whose customers simply bought
        nothing in its last days (Olist cut at 2018-08-31 has its last purchase
        on 2018-08-28). ``calibration_end`` (and ``observation_end``) may then
        be up to ``data_end``; ``T`` runs to ``calibration_end`` as usual.
        Default: the last transaction day, so a date after the data is refused.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` with columns ``frequency`` (int), ``recency``,
        ``T``, ``monetary_value`` and ``first_purchase`` (date), one row per
        customer with at least one purchase day up to ``calibration_end``.
        ``attrs`` holds ``last_transaction_day``, ``n_nonpositive_days`` (customer-days, or orders, on which
        refunds bring the net amount to within a cent of zero or below, excluded as
        non-purchases), ``n_customers_excluded`` (customers
        with transactions but no purchase day), ``calibration_end`` and
        ``time_unit``.

    Raises
    ------
    ValueError
        Empty input, missing columns, missing or non-finite values, a
        ``calibration_end`` outside the data, or no purchase day at all.

    Notes
    -----
    Same-day transactions (of one order, with ``order_col``) are netted into one
    purchase; units on which refunds bring the net amount to within a cent of
    zero or below (:data:`REFUND_TOLERANCE`) are not purchases (zero-amount units
    without refunds are). The first purchase, excluded from ``monetary_value``, is
    the first purchase day's mean order.
    """
    if observation_end is not None:
        return calibration_holdout(transactions, calibration_end, observation_end, time_unit,
                                   order_col=order_col, data_end=data_end)
    days_per_unit = _check_time_unit(time_unit)
    t = _with_day(transactions, order_col)
    prof = _profile(t, data_end)
    cal_end = _to_date(calibration_end, "calibration_end")
    _check_in_range(cal_end, prof, "calibration_end")
    df = _run_calibration(t, cal_end, days_per_unit, time_unit, order_col)
    df.attrs["last_transaction_day"] = prof["last_day"]
    return df


def _check_in_range(value: _dt.date, prof: dict[str, Any], name: str) -> None:
    """``value`` must lie from the first transaction day to the data end (the last
    transaction day, or a later ``data_end``: no purchase in the last days is legal)."""
    if not (prof["first_day"] <= value <= prof["data_end"]):
        raise ValueError(
            f"{name} {value} is outside the data, which runs from "
            f"{prof['first_day']} to {prof['data_end']}"
        )


def _run_calibration(
    t: Any, cal_end: _dt.date, days_per_unit: float, time_unit: str, order_col: str | None = None
) -> pd.DataFrame:
    summary_expr, excluded_expr = _calibration_expr(t, cal_end, days_per_unit, order_col)
    df = summary_expr.to_pandas()
    ex = excluded_expr.to_pandas().iloc[0]
    if df.empty:
        raise ValueError(f"no customer has a purchase day up to {cal_end}")
    df = _finish_summary(df)
    df.attrs.update(
        n_nonpositive_days=int(ex["n_nonpositive_days"] or 0),
        n_customers_excluded=int(ex["n_customers_seen"]) - len(df),
        calibration_end=cal_end,
        time_unit=time_unit,
        purchase_unit="order" if order_col else "day",
    )
    return df


def _finish_summary(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values("customer_id").set_index("customer_id")
    df = df.astype({"frequency": "int64", "recency": "float64", "T": "float64"})
    df["monetary_value"] = df["monetary_value"].astype("float64")
    df["first_purchase"] = pd.to_datetime(df["first_purchase"]).dt.date
    return df


def calibration_holdout(
    transactions: Any,
    calibration_end: Any,
    observation_end: Any,
    time_unit: TimeUnit = "W",
    order_col: str | None = None,
    data_end: Any = None,
) -> pd.DataFrame:
    """Calibration summary plus holdout-period purchase counts.

    Parameters
    ----------
    transactions : ibis.expr.types.Table
        As in :func:`rfm_summary`.
    calibration_end : date-like
        Last day of the calibration period (inclusive).
    observation_end : date-like
        Last day of the holdout period (inclusive); must be after
        ``calibration_end`` and not after the last transaction date (or
        ``data_end``).
    time_unit : {"W", "D"}, default "W"
    order_col : str, optional
        As in :func:`rfm_summary` (purchases are orders instead of days).
    data_end : date-like, optional
        As in :func:`rfm_summary`: the last day the log covers when no one
        bought in its last days.

    Returns
    -------
    pandas.DataFrame
        The :func:`rfm_summary` columns for customers whose first purchase is
        in the calibration period, plus ``frequency_holdout`` (purchase days in
        ``(calibration_end, observation_end]``), ``monetary_value_holdout``
        (mean net amount of those days, 0 if none) and ``duration_holdout``
        (length of the holdout period in ``time_unit``).
    """
    import ibis

    days_per_unit = _check_time_unit(time_unit)
    t = _with_day(transactions, order_col)
    prof = _profile(t, data_end)
    cal_end = _to_date(calibration_end, "calibration_end")
    obs_end = _to_date(observation_end, "observation_end")
    _check_in_range(cal_end, prof, "calibration_end")
    _check_in_range(obs_end, prof, "observation_end")
    if obs_end <= cal_end:
        raise ValueError(f"observation_end {obs_end} must be after calibration_end {cal_end}")
    summary_expr, excluded_expr = _calibration_expr(t, cal_end, days_per_unit, order_col)
    hold = _purchase_days(t, cal_end, obs_end, order_col)
    hold = hold.filter(hold.is_purchase)
    hold = hold.group_by("customer_id").aggregate(
        frequency_holdout=hold.count(), monetary_value_holdout=hold.net.mean()
    )
    joined = summary_expr.left_join(hold, "customer_id").select(
        *[summary_expr[c] for c in summary_expr.columns],
        frequency_holdout=ibis.coalesce(hold.frequency_holdout, 0),
        monetary_value_holdout=ibis.coalesce(hold.monetary_value_holdout, 0.0),
    )
    df = joined.to_pandas()
    if df.empty:
        raise ValueError(f"no customer has a purchase day up to {cal_end}")
    ex = excluded_expr.to_pandas().iloc[0]
    df = _finish_summary(df)
    df["frequency_holdout"] = df["frequency_holdout"].astype("int64")
    df["monetary_value_holdout"] = df["monetary_value_holdout"].astype("float64")
    df["duration_holdout"] = (obs_end - cal_end).days / days_per_unit
    df.attrs.update(
        n_nonpositive_days=int(ex["n_nonpositive_days"] or 0),
        n_customers_excluded=int(ex["n_customers_seen"]) - len(df),
        calibration_end=cal_end,
        observation_end=obs_end,
        time_unit=time_unit,
        purchase_unit="order" if order_col else "day",
        last_transaction_day=prof["last_day"],
    )
    return df


# ---------------------------------------------------------------------------
# Input checks shared by the models
# ---------------------------------------------------------------------------


def _as_array(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return arr


def _check_rfm(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_array(frequency, "frequency")
    t_x = _as_array(recency, "recency")
    T_ = _as_array(T, "T")
    if not (x.shape == t_x.shape == T_.shape):
        raise ValueError(
            f"frequency, recency and T differ in length ({x.size}, {t_x.size}, {T_.size})"
        )
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must hold non-negative whole numbers")
    if np.any(t_x < 0):
        raise ValueError("recency must be non-negative")
    if np.any(t_x > T_ * (1 + 1e-12) + 1e-12):
        raise ValueError(f"recency exceeds T for {int((t_x > T_).sum())} customer(s)")
    return x, t_x, T_


def _wrap(result: np.ndarray, like: Any, name: str) -> Any:
    """Return a Series with ``like``'s index when given a Series, else an array/float."""
    if isinstance(like, pd.Series) and result.shape == (len(like),):
        return pd.Series(result, index=like.index, name=name)
    if result.ndim == 0:
        return float(result)
    return result


def _group_rows(
    *cols: np.ndarray, weights: np.ndarray | None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Collapse identical rows, summing weights (exact: same likelihood contribution).

    Hash-based (``pandas.factorize`` per column, codes combined pairwise), so
    O(n) rather than the sort behind ``np.unique(axis=0)``.
    """
    n = cols[0].size
    first = cols[0]
    if first.size and first.min() >= 0 and first.max() < 2**20 and np.all(first == np.floor(first)):
        key, k0 = first.astype(np.int64), int(first.max()) + 1  # counts (frequency) are their own codes
    else:
        key, u0 = pd.factorize(first)
        k0 = len(u0)
    for col in cols[1:]:
        codes, uniques = pd.factorize(col)
        if k0 * len(uniques) < 2**62:  # combine without re-hashing until the last column
            key, k0 = key.astype(np.int64) * len(uniques) + codes, k0 * len(uniques)
        else:
            key, u = pd.factorize(key.astype(np.int64) * len(uniques) + codes)
            k0 = len(u)
    key, _ = pd.factorize(key)
    k = int(key.max()) + 1
    rep = np.empty(k, dtype=np.int64)
    rep[key] = np.arange(n)  # any row of a group represents it: rows are identical
    w = np.ones(n) if weights is None else weights
    counts = np.bincount(key, weights=w, minlength=k)
    keep = counts > 0
    return [col[rep[keep]] for col in cols], counts[keep]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product without BLAS.

    ``a @ b`` on long vectors goes to a multi-threaded BLAS ``ddot``, which on a
    busy machine was up to 10x slower than this single-threaded loop.
    """
    return float(np.einsum("i,i->", a, b))


def _index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and the index of each element into them."""
    codes, uniques = pd.factorize(values)
    return np.asarray(uniques, dtype=float), codes


def _check_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = _as_array(weights, "weights")
    if w.size != n:
        raise ValueError(f"weights has length {w.size}, expected {n}")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative and not all zero")
    return w


def _numerical_hessian(grad: Any, theta: np.ndarray, rel_step: float = 1e-5,
                       g0: np.ndarray | None = None) -> np.ndarray:
    """Central-difference Hessian from an analytic gradient, symmetrised.

    Given ``g0 = grad(theta)``, forward differences instead (half the gradient evaluations;
    relative error about ``rel_step``, far below what standard errors are reported to).
    """
    k = theta.size
    h = np.empty((k, k))
    for j in range(k):
        step = rel_step * max(1.0, abs(theta[j]))
        e = np.zeros(k)
        e[j] = step
        if g0 is None:
            h[:, j] = (grad(theta + e) - grad(theta - e)) / (2 * step)
        else:
            h[:, j] = (grad(theta + e) - g0) / step
    return 0.5 * (h + h.T)


#: Above this many distinct (x, t_x, T) rows, purchase models start from a fit on a random draw.
WARM_START_ROWS = 20_000


def _draw(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """``WARM_START_ROWS`` customers drawn with a fixed seed (rows by weight), grouped to distinct rows."""
    pick = np.random.default_rng(0).choice(x.size, size=WARM_START_ROWS, p=w / w.sum())
    return _group_rows(x[pick], t_x[pick], T[pick], weights=None)


def _newton(vgh: Any, theta0: np.ndarray, tol: float, max_iter: int = 100,
            upper: float = 20.0) -> tuple[np.ndarray, float, np.ndarray, np.ndarray] | None:
    """Minimise a function given as ``vgh(theta) -> (value, gradient, Hessian)`` by damped Newton steps.

    The Hessian is shifted towards the identity where it is not positive definite (Levenberg), steps
    are capped at 5 in the log-parameters and halved until the value falls (Armijo; or, at the
    rounding floor, until the gradient shrinks). From a nearby start (a fit on a draw of customers)
    this converges quadratically: two or three evaluations replace L-BFGS-B's fifteen to twenty-five.
    Returns ``(theta, value, gradient, Hessian)`` at ``max|gradient| <= tol`` (or where the value stops
    falling at a gradient below ``10 max(tol, 1e-9)``: the rounding floor), or ``None`` when the
    iterate leaves ``(-19.5, upper - 0.5)`` (a boundary maximum), stops making progress or runs out
    of iterations: the caller falls back to the bounded L-BFGS-B fit.
    """
    theta = np.asarray(theta0, dtype=float).copy()
    f, g, h = vgh(theta)
    eye = np.eye(theta.size)
    for _ in range(max_iter):
        if not (np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            return None
        gmax = float(np.max(np.abs(g)))
        if gmax <= tol:
            return theta, f, g, h
        mu = 0.0
        scale = max(1.0, float(np.max(np.abs(np.diag(h)))))
        while True:
            try:
                chol = np.linalg.cholesky(h + mu * eye)
                break
            except np.linalg.LinAlgError:
                mu = max(4.0 * mu, 1e-8 * scale)
                if mu > 1e8 * scale:
                    return None
        step = np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        big = float(np.max(np.abs(step)))
        if big > 5.0:
            step *= 5.0 / big
        slope = float(g @ step)
        t = 1.0
        while True:
            new = theta - t * step
            if np.all(new > -19.5) and np.all(new < upper - 0.5):
                fn, gn, hn = vgh(new)
                if np.isfinite(fn) and (fn <= f - 1e-4 * t * slope
                                        or (fn <= f + 1e-15 * max(abs(f), 1.0)
                                            and np.max(np.abs(gn)) < gmax)):
                    break
            elif t < 1e-3:
                return None
            t /= 2.0
            if t < 1e-10:
                return None
        stalled = f - fn <= 1e-15 * max(abs(f), 1.0)
        theta, f, g, h = new, fn, gn, hn
        if stalled and np.max(np.abs(g)) <= max(tol, 1e-9) * 10:
            return theta, f, g, h
    return None


def _warm_start(make_nll: Any, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray,
                theta0: np.ndarray, max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray | None]:
    """Start and preconditioner from a fit on ``WARM_START_ROWS`` customers drawn with a fixed seed.

    Returns the draw's maximum and the Cholesky factor of its Hessian of the mean negative
    log-likelihood (per customer, so it estimates the full data's): :func:`_fit_from` then
    optimises in whitened coordinates, where a few quasi-Newton steps reach the full maximum.
    The maximum itself (and so every reported number) does not depend on the start. Returns
    ``(theta0, None)`` for small inputs, or when the draw has no repeat buyer or its fit fails.
    """
    if x.size <= WARM_START_ROWS:
        return theta0, None
    (xs, ts, Ts), ws = _draw(x, t_x, T, w)
    if not np.any(xs > 0):
        return theta0, None
    nll = make_nll(xs, ts, Ts, ws)
    res = optimize.minimize(nll, theta0, jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * theta0.size,
                            options={"maxiter": max_iter, "gtol": 1e-7, "ftol": 1e-13})
    if not (np.all(np.isfinite(res.x)) and np.all(np.abs(res.x) < 19.5)):
        return theta0, None
    hess = _numerical_hessian(lambda th: nll(th)[1], res.x, g0=nll(res.x)[1])
    try:
        chol = np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        return res.x, None
    return res.x, chol


class _Memo:
    """Remember the last few ``(value, gradient)`` of a likelihood by parameter vector.

    L-BFGS-B and the convergence checks after it ask for the same point more than once; a
    Pareto/NBD evaluation at 1M customers costs a tenth of a second, so repeats are served here.
    """

    def __init__(self, nll: Any, size: int = 4) -> None:
        self.nll = nll
        self.n = getattr(nll, "n", None)
        self.size = size
        self.cache: dict[tuple[bytes, bool], Any] = {}

    def __call__(self, theta: np.ndarray, grad: bool = True) -> Any:
        key = (np.asarray(theta, dtype=float).tobytes(), grad)
        hit = self.cache.get(key) or (self.cache.get((key[0], True)) if not grad else None)
        if hit is not None:
            return hit
        out = self.nll(theta, grad=grad)
        if len(self.cache) >= self.size:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = out
        return out

    def rows(self, theta: np.ndarray) -> Any:
        return self.nll.rows(theta)


def _preconditioned_steps(f: Any, size: int, tol: float, max_steps: int = 40) -> np.ndarray | None:
    """Minimise ``f(u) -> (value, gradient)`` from ``u = 0`` by steps ``u <- u - g`` (halved until the value
    does not rise), for a function whose Hessian is close to the identity (whitened by a nearby Hessian,
    see :func:`_fit_from`): each step shrinks the gradient by about the Hessians' mismatch, so a few
    evaluations reach ``max|g| <= tol`` (or stop lowering the value at a gradient below ``10 tol``: the
    rounding floor) where L-BFGS-B spends twenty learning the curvature it is given.
    Returns the minimiser, or ``None`` when that does not happen within ``max_steps`` (the caller then
    falls back to L-BFGS-B)."""
    u = np.zeros(size)
    val, g = f(u)
    for _ in range(max_steps):
        if not np.isfinite(val):
            return None
        if np.max(np.abs(g)) <= tol:
            return u
        step = 1.0
        while True:
            new_val, new_g = f(u - step * g)
            if np.isfinite(new_val) and new_val <= val:
                break
            step /= 2
            if step < 1e-4:
                return None
        stalled = val - new_val <= 1e-15 * max(abs(val), 1.0)  # L-BFGS-B's ftol: rounding decides from here
        u, val, g = u - step * g, new_val, new_g
        if stalled and np.max(np.abs(g)) <= max(tol, 1e-9) * 10:
            return u
    return None


def _fit_from(nll: Any, theta0: np.ndarray, chol: np.ndarray | None, tol: float, max_iter: int,
              upper: np.ndarray | None = None) -> Any:
    """Minimise ``nll`` (returning value and gradient in log-parameters) by L-BFGS-B.

    With a preconditioner ``chol`` (``H = L L^T`` at a nearby point), in the whitened coordinates
    ``u = L^T (theta - theta0)`` first, where the Hessian is close to the identity; if that does not
    converge inside the parameter bounds, the plain bounded fit from ``theta0`` decides.
    """
    opts = {"maxiter": max_iter, "gtol": tol, "ftol": 1e-15}
    hi = np.full(theta0.size, 20.0) if upper is None else np.asarray(upper, dtype=float)
    bounds = [(-20.0, float(u)) for u in hi]
    theta0 = np.minimum(theta0, hi)
    if chol is not None:
        inv_lt = np.linalg.inv(chol.T)

        def whitened(u: np.ndarray) -> tuple[float, np.ndarray]:
            th = theta0 + inv_lt @ u
            if np.any(th < -20.0) or np.any(th > hi):
                return np.inf, np.zeros_like(u)
            f, g = nll(th)
            return f, inv_lt.T @ g

        u = _preconditioned_steps(whitened, theta0.size, tol)
        theta = theta0 + inv_lt @ u if u is not None else None
        if theta is not None and np.all(theta > -19.5) and np.all(theta < hi - 0.5):
            # converged by steps of -gradient in whitened coordinates (the Hessian is close to identity there)
            return optimize.OptimizeResult(x=theta, fun=float(nll(theta, grad=False)[0]), success=True, nit=0,
                                           message="preconditioned gradient steps")
        res = optimize.minimize(whitened, np.zeros(theta0.size), jac=True, method="L-BFGS-B", options=opts)
        theta = theta0 + inv_lt @ res.x
        if np.all(theta > -19.5) and np.all(theta < hi - 0.5) and np.max(np.abs(nll(theta)[1])) < max(tol, 1e-9) * 10:
            res.x, res.fun = theta, float(nll(theta, grad=False)[0])
            res.success = True
            return res
    return optimize.minimize(nll, theta0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)


def _standard_errors(hess_log: np.ndarray, params: np.ndarray) -> np.ndarray:
    """SEs on the original scale from the Hessian of -loglik in log-parameters.

    Delta method: ``Cov(theta) = D Cov(log theta) D`` with ``D = diag(theta)``.
    """
    try:
        cov_log = np.linalg.inv(hess_log)
    except np.linalg.LinAlgError:
        return np.full(params.size, np.nan)
    cov = cov_log * np.outer(params, params)
    diag = np.diag(cov)
    return np.where(diag > 0, np.sqrt(np.abs(diag)), np.nan)


def _hyp2f1(A: Any, B: Any, C: Any, z: Any) -> np.ndarray:
    """Gauss 2F1 for ``0 <= z < 1``: scipy, with a power-series fallback.

    ``scipy.special.hyp2f1`` returns inf/nan for some integer ``A`` with large
    ``C`` and ``z`` near 1 (e.g. ``hyp2f1(1, -0.5, 99.5, 0.99)``); those entries
    are recomputed by summing the Gauss series, which converges geometrically
    (term ratio -> z) for the parameters used here.
    """
    out = np.asarray(special.hyp2f1(A, B, C, z), dtype=float)
    bad = ~np.isfinite(out)
    if not bad.any():
        return out
    A_, B_, C_, z_ = (
        np.broadcast_to(np.asarray(v, dtype=float), out.shape)[bad] for v in (A, B, C, z)
    )
    term = np.ones_like(z_)
    total = np.ones_like(z_)
    max_terms = int(min(2_000_000, np.ceil(np.log(1e-17) / np.log(max(z_.max(), 1e-300))) + 100))
    for k in range(max_terms):
        term = term * (A_ + k) * (B_ + k) / ((C_ + k) * (k + 1.0)) * z_
        total = total + term
        if k % 64 == 0 and np.all(np.abs(term) <= 1e-17 * np.abs(total)):
            break
    out = out.copy()
    out[bad] = total
    return out


def _format_table(title: str, rows: list[tuple[str, float, float]], footer: list[str]) -> str:
    lines = [title, f"{'param':>8} {'estimate':>12} {'std.err':>12}"]
    lines += [f"{name:>8} {est:>12.5g} {se:>12.4g}" for name, est, se in rows]
    lines += footer
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Identification: is the fit an interior maximum with finite standard errors?
# ---------------------------------------------------------------------------

#: Shape parameters outside ``[SHAPE_MIN, SHAPE_MAX]`` are on the boundary of the
#: parameter space (a -> 0, b -> infinity: no dropout information in the data).
SHAPE_MIN, SHAPE_MAX = 1e-3, 1e4
#: A standard error larger than the estimate itself: the 95% interval of a
#: positive parameter runs through zero, the estimate is not supported.
MAX_RELATIVE_SE = 1.0


def _identification_issues(
    fit: Any, names: tuple[str, ...], shapes: tuple[str, ...]
) -> tuple[str, ...]:
    """Reasons a fit is not identified: ``not_converged``, ``boundary``, ``se_missing``, ``se_large``."""
    issues = []
    if not fit.converged:
        issues.append("not_converged")
    if any(not (SHAPE_MIN <= getattr(fit, k) <= SHAPE_MAX) for k in shapes):
        issues.append("boundary")
    se = [fit.se.get(k, float("nan")) for k in names]
    if any(not np.isfinite(v) for v in se):
        issues.append("se_missing")
    elif any(v > MAX_RELATIVE_SE * abs(getattr(fit, k)) for k, v in zip(names, se, strict=True)):
        issues.append("se_large")
    return tuple(issues)


@dataclass(frozen=True)
class SpendFrequencyCheck:
    """Gamma-Gamma's assumption: spend per purchase is independent of purchase frequency.

    ``r`` is the Pearson correlation of ``frequency`` and ``monetary_value``
    among the ``n`` repeat buyers (NaN with fewer than 3 or no variation);
    ``warn`` when ``|r| >= threshold``.
    """

    r: float
    n: int
    threshold: float

    @property
    def warn(self) -> bool:
        return bool(np.isfinite(self.r) and abs(self.r) >= self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"r": self.r, "n": self.n, "threshold": self.threshold, "warn": self.warn}


def spend_frequency_check(
    frequency: Any, monetary_value: Any, threshold: float = 0.3
) -> SpendFrequencyCheck:
    """Correlation of repeat purchases and mean spend among repeat buyers (Fader & Hardie 2013)."""
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    keep = (x > 0) & np.isfinite(m)
    x, m = x[keep], m[keep]
    r = float("nan")
    if x.size >= 3 and np.std(x) > 0 and np.std(m) > 0:
        r = float(np.corrcoef(x, m)[0, 1])
    return SpendFrequencyCheck(r=r, n=int(x.size), threshold=float(threshold))


# ---------------------------------------------------------------------------
# BG/NBD
# ---------------------------------------------------------------------------


class _BGNBDLikelihood:
    """Weighted BG/NBD log-likelihood and gradient in log-parameters.

    ``L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / Gamma(r)
          * [ (alpha+T)^-(r+x) + 1{x>0} a/(b+x-1) (alpha+t_x)^-(r+x) ]``
    (Fader, Hardie & Lee 2005, eq. 6); the bracket is combined by log-sum-exp.
    Special functions are evaluated on the distinct values of ``x`` (and the
    logs on the distinct ``T`` and ``t_x``) and gathered, so the per-row cost
    is a handful of arithmetic operations.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> None:
        self.w = w
        self.n = float(w.sum())
        self.ux, self.ix = _index(x)
        self.uT, self.iT = _index(T)
        self.ut, self.it = _index(t_x)
        self.wx = np.bincount(self.ix, weights=w, minlength=self.ux.size)
        self.xpos = self.ux > 0
        self.wT = np.bincount(self.iT, weights=w, minlength=self.uT.size)  # for value_grad_hess
        self.wxT = np.bincount(self.iT, weights=w * x, minlength=self.uT.size)

    def __call__(self, theta: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray]:
        """Return ``(-loglik / n, -gradient / n)`` at log-parameters ``theta``."""
        r, alpha, a, b = np.exp(theta)
        ux, wx, pos, w = self.ux, self.wx, self.xpos, self.w
        rx_u = r + ux
        bx1_u = np.where(pos, b + ux - 1.0, 1.0)
        c4_u = np.where(pos, np.log(a) - np.log(bx1_u), -np.inf)
        log_aT_u = np.log(alpha + self.uT)
        log_at_u = np.log(alpha + self.ut)
        # per-row log-sum-exp part
        rx = rx_u[self.ix]
        log_aT = log_aT_u[self.iT]
        log_at = log_at_u[self.it]
        a3 = -rx * log_aT
        a4 = c4_u[self.ix] - rx * log_at
        m = np.maximum(a3, a4)
        e3 = np.exp(a3 - m)
        e4 = np.exp(a4 - m)
        s = e3 + e4
        ll = _dot(w, m + np.log(s))
        # parts that depend on x only
        ll += _dot(
            wx,
            special.gammaln(rx_u)
            - special.gammaln(r)
            + special.betaln(a, b + ux)
            - special.betaln(a, b),
        )
        ll += self.n * r * np.log(alpha)
        if not grad:
            return -ll / self.n, np.empty(0)
        wp3 = w * e3 / s
        wp4 = w * e4 / s
        dig_ab = special.digamma(a + b)
        dig_abx = special.digamma(a + b + ux)
        dr = (
            _dot(wx, special.digamma(rx_u) - special.digamma(r))
            + self.n * np.log(alpha)
            - _dot(wp3, log_aT)
            - _dot(wp4, log_at)
        )
        dalpha = self.n * r / alpha - _dot(wp3 * rx, (1.0 / (alpha + self.uT))[self.iT])
        dalpha -= _dot(wp4 * rx, (1.0 / (alpha + self.ut))[self.it])
        sum_p4_x = np.bincount(self.ix, weights=wp4, minlength=ux.size)
        da = _dot(wx, dig_ab - dig_abx) + sum_p4_x.sum() / a
        db = _dot(wx, dig_ab + special.digamma(b + ux) - special.digamma(b) - dig_abx)
        db -= _dot(sum_p4_x, 1.0 / bx1_u)
        g = np.array([dr * r, dalpha * alpha, da * a, db * b])
        return -ll / self.n, -g / self.n

    def value_grad_hess(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """``(-loglik / n, -gradient / n, -Hessian / n)`` in log-parameters, all closed form.

        With ``a3 = -(r+x) log(alpha+T)`` and ``a4 = log a - log(b+x-1) - (r+x) log(alpha+t_x)``
        the bracket of the likelihood is ``log(e^a3 + e^a4)``, whose Hessian is
        ``p3 H(a3) + p4 H(a4) + p3 p4 d d^T`` (``p4 = 1 - p3`` the softmax weight of ``a4``,
        ``d = grad a3 - grad a4``); the x-only part's derivatives are digamma / trigamma on
        the distinct ``x``. Terms that depend on ``T`` only are summed over distinct ``T``.
        """
        r, alpha, a, b = np.exp(theta)
        ux, wx, pos, w = self.ux, self.wx, self.xpos, self.w
        n = self.n
        # --- per distinct value ---
        rx_u = r + ux
        bx1_u = np.where(pos, b + ux - 1.0, 1.0)
        c4_u = np.where(pos, np.log(a) - np.log(bx1_u), -np.inf)
        v_u = np.where(pos, b / bx1_u, 0.0)  # -d a4 / d log b
        LT_u = np.log(alpha + self.uT)
        Lt_u = np.log(alpha + self.ut)
        qT_u = alpha / (alpha + self.uT)
        qt_u = alpha / (alpha + self.ut)
        # --- per row ---
        ix, iT, it = self.ix, self.iT, self.it
        rx = rx_u[ix]
        dL = LT_u[iT] - Lt_u[it]  # >= 0
        dq = qT_u[iT] - qt_u[it]  # <= 0
        d4 = c4_u[ix] + rx * dL  # a4 - a3
        e = np.exp(-np.abs(d4))
        inv = 1.0 / (1.0 + e)
        p4 = np.where(d4 > 0, inv, e * inv)
        u = e * inv * inv  # p3 * p4
        ll = _dot(w, np.maximum(d4, 0.0) + np.log1p(e)) - r * _dot(self.wT, LT_u) - _dot(self.wxT, LT_u)
        wp4 = w * p4
        wu = w * u
        s_p4_dL = _dot(wp4, dL)
        rxdq = rx * dq
        s_p4_rxdq = _dot(wp4, rxdq)
        p4_x = np.bincount(ix, weights=wp4, minlength=ux.size)
        # x-only part: gammaln(r+x) - gammaln(r) + betaln(a, b+x) - betaln(a, b) + r log alpha
        ll += _dot(wx, special.gammaln(rx_u) - special.gammaln(r) + special.betaln(a, b + ux) - special.betaln(a, b))
        ll += n * r * np.log(alpha)
        dig_r = special.digamma(rx_u) - special.digamma(r)
        dig_ab = special.digamma(a + b) - special.digamma(a + b + ux)
        dig_b = special.digamma(b + ux) - special.digamma(b)
        tri_r = special.polygamma(1, rx_u) - special.polygamma(1, r)
        tri_ab = special.polygamma(1, a + b) - special.polygamma(1, a + b + ux)
        tri_b = special.polygamma(1, b + ux) - special.polygamma(1, b)
        S_LT = _dot(self.wT, LT_u)
        S_rxqT = r * _dot(self.wT, qT_u) + _dot(self.wxT, qT_u)
        S_qT = _dot(self.wT, qT_u)
        S_rxsT = r * _dot(self.wT, qT_u * (1.0 - qT_u)) + _dot(self.wxT, qT_u * (1.0 - qT_u))
        # gradient in (log r, log alpha, log a, log b)
        g_r = r * _dot(wx, dig_r) + n * r * np.log(alpha) - r * (S_LT - s_p4_dL)
        g_al = n * r - (S_rxqT - s_p4_rxdq)
        g_a = a * _dot(wx, dig_ab) + p4_x.sum()
        g_b = b * _dot(wx, dig_b + dig_ab) - _dot(p4_x, v_u)
        # Hessian: x-only part
        h = np.zeros((4, 4))
        h[0, 0] = r * r * _dot(wx, tri_r) + r * _dot(wx, dig_r) + n * r * np.log(alpha)
        h[0, 1] = n * r
        h[2, 2] = a * a * _dot(wx, tri_ab) + a * _dot(wx, dig_ab)
        h[2, 3] = a * b * _dot(wx, tri_ab)
        h[3, 3] = b * b * _dot(wx, tri_b + tri_ab) + b * _dot(wx, dig_b + dig_ab)
        # bracket: p3 H(a3) + p4 H(a4)
        sT = qT_u * (1.0 - qT_u)
        st = qt_u * (1.0 - qt_u)
        ds = sT[iT] - st[it]
        h[0, 0] -= r * (S_LT - s_p4_dL)
        h[0, 1] -= r * (S_qT - _dot(wp4, dq))
        h[1, 1] -= S_rxsT - _dot(wp4, rx * ds)
        h[3, 3] -= _dot(p4_x, v_u * (1.0 - v_u))
        # bracket: p3 p4 d d^T with d = (-r dL, -(r+x) dq, -1, v_x)
        d1 = -r * dL
        wud1 = wu * d1
        wud2 = wu * -rxdq
        h[0, 0] += _dot(wud1, d1)
        h[0, 1] += _dot(wud1, -rxdq)
        h[1, 1] += _dot(wud2, -rxdq)
        u_x = np.bincount(ix, weights=wu, minlength=ux.size)
        ud1_x = np.bincount(ix, weights=wud1, minlength=ux.size)
        ud2_x = np.bincount(ix, weights=wud2, minlength=ux.size)
        h[0, 2] -= ud1_x.sum()
        h[0, 3] += _dot(ud1_x, v_u)
        h[1, 2] -= ud2_x.sum()
        h[1, 3] += _dot(ud2_x, v_u)
        h[2, 2] += u_x.sum()
        h[2, 3] -= _dot(u_x, v_u)
        h[3, 3] += _dot(u_x, v_u * v_u)
        h = np.triu(h) + np.triu(h, 1).T
        g = np.array([g_r, g_al, g_a, g_b])
        return -ll / n, -g / n, -h / n


def _bgnbd_growth_raw(
    r: float, alpha: float, a: float, b: float, t: Any, x: Any, T: Any
) -> np.ndarray:
    c = a + b + x - 1.0
    z = t / (alpha + T + t)
    tail = np.exp((a - 1.0) * np.log1p(-z)) * _hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    return np.asarray(np.divide(c, np.float64(a) - 1.0) * (1.0 - tail), dtype=float)


def _bgnbd_growth(
    r: float, alpha: float, a: float, b: float, t: Any, x: Any, T: Any, eps: float = 1e-6
) -> np.ndarray:
    """``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]``.

    The numerator of eq. 10 (with ``x = T = 0`` it is eq. 9). ``a = 1`` and
    ``a + b + x = 1`` are removable singularities of the closed form; entries
    that come out non-finite there are replaced by the mean of the values at
    ``a -/+ eps`` (error O(eps^2)).
    """
    out = _bgnbd_growth_raw(r, alpha, a, b, t, x, T)
    bad = ~np.isfinite(out)
    if bad.any():
        lo = _bgnbd_growth_raw(r, alpha, a - eps, b, t, x, T)
        hi = _bgnbd_growth_raw(r, alpha, a + eps, b, t, x, T)
        out = np.where(bad, 0.5 * (lo + hi), out)
    return out


@dataclass(frozen=True)
class BetaGeoFit:
    """Fitted BG/NBD parameters (Fader, Hardie & Lee 2005).

    Attributes
    ----------
    r, alpha : float
        Gamma heterogeneity of the purchase rate (shape, rate; ``alpha`` is in
        the model's time unit).
    a, b : float
        Beta heterogeneity of the dropout probability.
    se : dict
        Standard errors of ``r, alpha, a, b`` (inverse observed information,
        delta method from the log-scale fit).
    loglik : float
        Maximised log-likelihood.
    n : int
        Number of customers (sum of weights).
    converged : bool
        Whether the optimiser reported success.
    """

    r: float
    alpha: float
    a: float
    b: float
    se: dict[str, float] = field(repr=False)
    loglik: float
    n: int
    converged: bool

    def __repr__(self) -> str:
        return (
            f"BetaGeoFit(r={self.r:.4g}, alpha={self.alpha:.4g}, a={self.a:.4g}, "
            f"b={self.b:.4g}, loglik={self.loglik:.6g}, n={self.n}, converged={self.converged})"
        )

    @property
    def params(self) -> pd.Series:
        """Parameters as a Series indexed ``r, alpha, a, b``."""
        return pd.Series({"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b})

    def to_dict(self) -> dict[str, float]:
        """``{r, alpha, a, b, loglik, n}``."""
        return {
            "r": self.r,
            "alpha": self.alpha,
            "a": self.a,
            "b": self.b,
            "loglik": self.loglik,
            "n": self.n,
        }

    def identification_issues(self) -> tuple[str, ...]:
        """Why the purchase model is not identified on this data (empty: it is).

        ``not_converged``; ``boundary`` (a or b outside ``[1e-3, 1e4]`` or r, alpha
        at the optimiser's bounds: a -> 0, b huge, as with too few repeat buyers);
        ``se_missing`` (a standard error is missing or infinite); ``se_large``
        (a standard error exceeds its estimate).
        """
        issues = list(_identification_issues(self, ("r", "alpha", "a", "b"), ("a", "b")))
        if "boundary" not in issues and any(
            not (np.exp(-19.5) < getattr(self, k) < np.exp(19.5)) for k in ("r", "alpha")
        ):
            issues.insert(1 if "not_converged" in issues else 0, "boundary")
        return tuple(issues)

    @property
    def identified(self) -> bool:
        """True when :meth:`identification_issues` is empty."""
        return not self.identification_issues()

    def summary(self) -> str:
        """Plain-text parameter table with standard errors."""
        rows = [(k, getattr(self, k), self.se[k]) for k in ("r", "alpha", "a", "b")]
        return _format_table(
            "BG/NBD (Fader, Hardie & Lee 2005)",
            rows,
            [f"loglik = {self.loglik:.6g}, n = {self.n}, converged = {self.converged}"],
        )

    # -- predictions --------------------------------------------------------

    def _log_odds_term(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """log[ a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) ] for x > 0, -inf for x = 0."""
        pos = x > 0
        bx1 = np.where(pos, self.b + x - 1.0, 1.0)
        val = (
            np.log(self.a)
            - np.log(bx1)
            + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x))
        )
        return np.where(pos, val, -np.inf)

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(customer still active at T | x, t_x, T) (FHL 2005, eq. 13).

        Equal to 1 for customers without repeat purchases (the model lets
        customers drop out only after a repeat purchase).
        """
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        p = np.exp(-np.logaddexp(0.0, self._log_odds_term(x, t_x, T_)))
        if np.ndim(frequency) == 0:
            p = p.reshape(())
        return _wrap(p, frequency, "probability_alive")

    def _expected_purchases(
        self, t: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Unchecked, broadcasting core of :meth:`expected_purchases`."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            growth = _bgnbd_growth(self.r, self.alpha, self.a, self.b, t, x, T)
        return growth * np.exp(-np.logaddexp(0.0, self._log_odds_term(x, t_x, T)))

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """Conditional expected number of purchases in ``(T, T + t]`` (FHL 2005, eq. 10).

        Uses the Euler transformation
        ``(1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)``
        with ``c = a+b+x-1`` and ``z = t/(alpha+T+t)``, which stays finite for
        large ``x`` where the textbook form overflows.

        Parameters
        ----------
        t : float or array
            Horizon length in the model's time unit; a scalar or one value per
            customer.
        frequency, recency, T : array-like
            Calibration summary.

        Returns
        -------
        pandas.Series (if ``frequency`` is a Series), numpy array or float
        """
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        t_arr = np.asarray(t, dtype=float)
        if np.any(t_arr < 0) or not np.all(np.isfinite(t_arr)):
            raise ValueError("t must be finite and non-negative")
        if t_arr.ndim > 0:
            t_arr = t_arr.reshape(-1)
            if t_arr.size not in (1, x.size):
                raise ValueError(f"t has length {t_arr.size}, expected 1 or {x.size}")
        out = self._expected_purchases(t_arr, x, t_x, T_)
        if np.ndim(frequency) == 0:
            out = out.reshape(())
        return _wrap(out, frequency, "expected_purchases")

    def expected_purchases_new(self, t: Any) -> Any:
        """Expected purchases in ``(0, t]`` of a customer just acquired (FHL 2005, eq. 9)."""
        t_arr = np.asarray(t, dtype=float)
        if np.any(t_arr < 0) or not np.all(np.isfinite(t_arr)):
            raise ValueError("t must be finite and non-negative")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = _bgnbd_growth(self.r, self.alpha, self.a, self.b, t_arr, 0.0, 0.0)
        return _wrap(np.asarray(out), t, "expected_purchases_new")


class BetaGeoModel:
    """BG/NBD purchase model fitted by maximum likelihood.

    Parameters
    ----------
    tol : float, default 1e-10
        Gradient tolerance of the L-BFGS-B optimiser (on the mean
        log-likelihood per customer).
    max_iter : int, default 1000

    Attributes
    ----------
    result_ : BetaGeoFit
        Set by :meth:`fit`.

    Examples
    --------
    >>> model = BetaGeoModel().fit(df["frequency"], df["recency"], df["T"])  # doctest: +SKIP
    >>> model.result_.summary()  # doctest: +SKIP
    """

    def __init__(self, tol: float = 1e-10, max_iter: int = 1000) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def __repr__(self) -> str:
        return f"BetaGeoModel(tol={self.tol}, max_iter={self.max_iter})"

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> BetaGeoModel:
        """Fit r, alpha, a, b.

        Parameters
        ----------
        frequency, recency, T : array-like
            Repeat purchases, time of last purchase and age of each customer
            (see :func:`rfm_summary`).
        weights : array-like, optional
            Number of customers each row stands for. Identical rows are also
            grouped internally, which leaves the likelihood unchanged.

        Returns
        -------
        self
        """
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        w = _check_weights(weights, x.size)
        if np.all(x == 0):
            raise ValueError(
                "all frequencies are zero: BG/NBD dropout parameters are not identified "
                "without repeat purchases"
            )
        (x, t_x, T_), w = _group_rows(x, t_x, T_, weights=w)
        like = _BGNBDLikelihood(x, t_x, T_, w)
        n = like.n

        x0 = np.log([1.0, max(float(np.average(T_, weights=w)), 1e-3), 1.0, 1.0])
        # Newton with the closed-form Hessian, from a Newton fit on a draw of customers when there are many
        start = x0
        if x.size > WARM_START_ROWS:
            (xs, ts, Ts), ws = _draw(x, t_x, T_, w)
            sub = _newton(_BGNBDLikelihood(xs, ts, Ts, ws).value_grad_hess, x0, 1e-7, self.max_iter) \
                if np.any(xs > 0) else None
            start = x0 if sub is None else sub[0]
        out = _newton(like.value_grad_hess, start, self.tol, self.max_iter)
        if out is not None:
            theta, fun, g0, hess = out
            hess = hess * n
            success = True
        else:  # a boundary maximum or a difficult surface: bounded L-BFGS-B, forward-difference Hessian
            nll = _Memo(like)
            x0, chol = _warm_start(_BGNBDLikelihood, x, t_x, T_, w, x0, self.max_iter)
            res = _fit_from(nll, x0, chol, self.tol, self.max_iter)
            theta, fun, success = res.x, float(res.fun), bool(res.success)
            g0 = nll(theta)[1]
            hess = _numerical_hessian(lambda th: nll(th)[1] * n, theta, g0=g0 * n)
        params = np.exp(theta)
        se = _standard_errors(hess, params)
        grad_ok = bool(np.max(np.abs(g0)) < 1e-4)
        self.result_ = BetaGeoFit(
            r=float(params[0]),
            alpha=float(params[1]),
            a=float(params[2]),
            b=float(params[3]),
            se=dict(zip(("r", "alpha", "a", "b"), map(float, se), strict=True)),
            loglik=-float(fun) * n,
            n=int(round(n)),
            converged=bool(success or grad_ok) and bool(np.all(np.abs(theta) < 20)),
        )
        return self

    def _fitted(self) -> BetaGeoFit:
        if not hasattr(self, "result_"):
            raise ValueError("BetaGeoModel is not fitted yet: call fit() first")
        return self.result_

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """See :meth:`BetaGeoFit.expected_purchases`."""
        return self._fitted().expected_purchases(t, frequency, recency, T)

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """See :meth:`BetaGeoFit.probability_alive`."""
        return self._fitted().probability_alive(frequency, recency, T)

    def expected_purchases_new(self, t: Any) -> Any:
        """See :meth:`BetaGeoFit.expected_purchases_new`."""
        return self._fitted().expected_purchases_new(t)


# ---------------------------------------------------------------------------
# Gamma-Gamma
# ---------------------------------------------------------------------------


class _GammaGammaLikelihood:
    """Weighted Gamma-Gamma log-likelihood of mean spend ``m`` over ``x`` purchases.

    ``f(m) = Gamma(px+q)/(Gamma(px) Gamma(q)) v^q x^(px) m^(px-1) / (v + x m)^(px+q)``
    """

    def __init__(self, x: np.ndarray, m: np.ndarray, w: np.ndarray) -> None:
        self.w = w
        self.n = float(w.sum())
        self.ux, self.ix = _index(x)
        self.wx = np.bincount(self.ix, weights=w, minlength=self.ux.size)
        self.x = x
        self.xm = x * m
        self.log_m = np.log(m)
        # sum_i w_i x_i (log m_i + log x_i) and sum_i w_i log m_i are constants
        self.s_xlogmx = _dot(w, x * (self.log_m + np.log(x)))
        self.wx_row = w * x
        self.s_logm = _dot(w, self.log_m)

    def __call__(self, theta: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray]:
        """Return ``(-loglik / n, -gradient / n)`` at log-parameters ``theta``."""
        p, q, v = np.exp(theta)
        ux, wx, w = self.ux, self.wx, self.w
        pux = p * ux
        log_v = np.log(v)
        log_vxm = np.log(v + self.xm)
        px = p * self.x
        ll = float(
            _dot(wx, special.gammaln(pux + q) - special.gammaln(pux))
            - self.n * special.gammaln(q)
            + self.n * q * log_v
            + p * self.s_xlogmx
            - self.s_logm
            - _dot(w, (px + q) * log_vxm)
        )
        if not grad:
            return -ll / self.n, np.empty(0)
        dig_u = special.digamma(pux + q)
        dp = _dot(wx, ux * (dig_u - special.digamma(pux))) + self.s_xlogmx
        dp -= _dot(self.wx_row, log_vxm)
        dq = _dot(wx, dig_u) - self.n * special.digamma(q) + self.n * log_v - _dot(w, log_vxm)
        dv = self.n * q / v - _dot(w, (px + q) / (v + self.xm))
        g = np.array([dp * p, dq * q, dv * v])
        return -ll / self.n, -g / self.n


@dataclass(frozen=True)
class GammaGammaFit:
    """Fitted Gamma-Gamma spend parameters (Fader, Hardie & Lee 2005; Colombo & Jerath).

    Attributes
    ----------
    p : float
        Shape of the per-transaction spend distribution.
    q, v : float
        Shape and rate (``v`` is gamma in the papers) of the heterogeneity in
        the spend scale.
    se : dict
        Standard errors of ``p, q, v``.
    loglik : float
    n : int
        Number of repeat buyers used in the fit.
    converged : bool
    """

    p: float
    q: float
    v: float
    se: dict[str, float] = field(repr=False)
    loglik: float
    n: int
    converged: bool

    def __repr__(self) -> str:
        return (
            f"GammaGammaFit(p={self.p:.4g}, q={self.q:.4g}, v={self.v:.4g}, "
            f"loglik={self.loglik:.6g}, n={self.n}, converged={self.converged})"
        )

    @property
    def params(self) -> pd.Series:
        """Parameters as a Series indexed ``p, q, v``."""
        return pd.Series({"p": self.p, "q": self.q, "v": self.v})

    def to_dict(self) -> dict[str, float]:
        """``{p, q, v, n}``."""
        return {"p": self.p, "q": self.q, "v": self.v, "n": self.n}

    def identification_issues(self) -> tuple[str, ...]:
        """Why the spend model is not identified (empty: it is); as for BG/NBD,
        ``boundary`` on the shapes p and q, plus ``q_le_1`` (infinite mean spend)."""
        issues = list(_identification_issues(self, ("p", "q", "v"), ("p", "q")))
        if self.q <= 1:
            issues.append("q_le_1")
        return tuple(issues)

    @property
    def identified(self) -> bool:
        """True when :meth:`identification_issues` is empty."""
        return not self.identification_issues()

    def summary(self) -> str:
        """Plain-text parameter table with standard errors."""
        rows = [(k, getattr(self, k), self.se[k]) for k in ("p", "q", "v")]
        footer = [f"loglik = {self.loglik:.6g}, n = {self.n}, converged = {self.converged}"]
        if self.q > 1:
            footer.append(f"population mean spend = {self.p * self.v / (self.q - 1):.5g}")
        return _format_table("Gamma-Gamma spend model", rows, footer)

    def conditional_expected_average_profit(self, frequency: Any, monetary_value: Any) -> Any:
        """E[mean spend | x, m] = p (v + x m) / (p x + q - 1).

        Customers with ``frequency == 0`` get the population mean
        ``p v / (q - 1)``. Requires ``q > 1``.
        """
        x = _as_array(frequency, "frequency")
        m = _as_array(monetary_value, "monetary_value")
        if x.shape != m.shape:
            raise ValueError("frequency and monetary_value differ in length")
        if self.q <= 1:
            raise ValueError(f"q = {self.q:.4g} <= 1: expected spend is infinite")
        m = np.where(x > 0, m, 0.0)
        out = self.p * (self.v + x * m) / (self.p * x + self.q - 1.0)
        return _wrap(out, frequency, "expected_average_profit")


class GammaGammaModel:
    """Gamma-Gamma model of average transaction value, fitted by maximum likelihood.

    Only repeat buyers (``frequency > 0``) enter the fit; ``monetary_value`` is
    their mean repeat-purchase amount (see :func:`rfm_summary`). The model
    assumes spend is independent of purchase frequency; check
    ``corr(frequency, monetary_value)`` among repeat buyers before use.

    Parameters
    ----------
    tol : float, default 1e-10
    max_iter : int, default 1000

    Attributes
    ----------
    result_ : GammaGammaFit
    """

    def __init__(self, tol: float = 1e-10, max_iter: int = 1000) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def __repr__(self) -> str:
        return f"GammaGammaModel(tol={self.tol}, max_iter={self.max_iter})"

    def fit(self, frequency: Any, monetary_value: Any, weights: Any = None) -> GammaGammaModel:
        """Fit p, q, v on the repeat buyers.

        Parameters
        ----------
        frequency : array-like
            Repeat purchases per customer; rows with 0 are ignored.
        monetary_value : array-like
            Mean repeat-purchase amount; must be > 0 for repeat buyers.
        weights : array-like, optional
            Number of customers each row stands for.

        Returns
        -------
        self
        """
        x = _as_array(frequency, "frequency")
        m = _as_array(monetary_value, "monetary_value")
        if x.shape != m.shape:
            raise ValueError("frequency and monetary_value differ in length")
        w = _check_weights(weights, x.size)
        keep = x > 0
        if not keep.any():
            raise ValueError("all frequencies are zero: Gamma-Gamma needs repeat buyers")
        x, m = x[keep], m[keep]
        w = None if w is None else w[keep]
        if np.any(m <= 0):
            raise ValueError(
                f"monetary_value must be > 0 for repeat buyers; {int((m <= 0).sum())} are not"
            )
        # Mean spends are continuous, so duplicate rows are rare: no grouping here.
        w = np.ones(x.size) if w is None else w
        nll = _GammaGammaLikelihood(x, m, w)
        n = nll.n

        mean_m = float(np.average(m, weights=w))
        x0 = np.log([1.0, 2.0, mean_m])
        res = optimize.minimize(
            nll,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-20.0, 25.0)] * 3,
            options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-15},
        )
        theta = res.x
        g0 = nll(theta)[1]
        hess = _numerical_hessian(lambda th: nll(th)[1] * n, theta, g0=g0 * n)
        params = np.exp(theta)
        se = _standard_errors(hess, params)
        grad_ok = bool(np.max(np.abs(g0)) < 1e-4)
        self.result_ = GammaGammaFit(
            p=float(params[0]),
            q=float(params[1]),
            v=float(params[2]),
            se=dict(zip(("p", "q", "v"), map(float, se), strict=True)),
            loglik=-float(res.fun) * n,
            n=int(round(n)),
            converged=bool(res.success or grad_ok),
        )
        return self

    def _fitted(self) -> GammaGammaFit:
        if not hasattr(self, "result_"):
            raise ValueError("GammaGammaModel is not fitted yet: call fit() first")
        return self.result_

    def conditional_expected_average_profit(self, frequency: Any, monetary_value: Any) -> Any:
        """See :meth:`GammaGammaFit.conditional_expected_average_profit`."""
        return self._fitted().conditional_expected_average_profit(frequency, monetary_value)


# ---------------------------------------------------------------------------
# CLV and validation
# ---------------------------------------------------------------------------


def _result(obj: Any, cls: type) -> Any:
    res = getattr(obj, "result_", obj)
    if not isinstance(res, cls):
        raise ValueError(
            f"expected a fitted {cls.__name__} (or its model), got {type(obj).__name__}"
        )
    return res


def customer_lifetime_value(
    bgnbd_fit: BetaGeoFit | BetaGeoModel,
    gg_fit: GammaGammaFit | GammaGammaModel,
    summary: pd.DataFrame,
    horizon: int = 12,
    discount_rate: float = 0.01,
    time_unit: TimeUnit = "W",
    margin: float = 1.0,
) -> pd.DataFrame:
    """Discounted expected customer lifetime value over ``horizon`` months.

    ``CLV_i = sum_{k=1..horizon} margin * E[spend_i] * (E[N_i(k)] - E[N_i(k-1)]) / (1+d)^k``
    where ``E[N_i(k)]`` is the BG/NBD conditional expected number of purchases
    in the next ``k`` months and ``E[spend_i]`` the Gamma-Gamma conditional
    expected average spend. This is the computation of ``lifetimes``'
    ``customer_lifetime_value`` (same months-to-periods factors,
    :data:`PERIODS_PER_MONTH`), vectorised over customers and months.

    Parameters
    ----------
    bgnbd_fit, gg_fit : fitted results or models
    summary : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T``, ``monetary_value`` in
        ``time_unit`` (the unit the BG/NBD model was fitted in).
    horizon : int, default 12
        Number of months.
    discount_rate : float, default 0.01
        Discount rate per month.
    time_unit : {"W", "D"}
    margin : float, default 1.0
        Profit margin applied to spend.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``summary``: ``expected_purchases`` (undiscounted, over the
        horizon), ``expected_spend`` (per purchase) and ``clv``.
    """
    bg = _result(bgnbd_fit, BetaGeoFit)
    gg = _result(gg_fit, GammaGammaFit)
    _check_time_unit(time_unit)
    missing = [c for c in ("frequency", "recency", "T", "monetary_value") if c not in summary]
    if missing:
        raise ValueError(f"summary lacks column(s) {missing}")
    if not (isinstance(horizon, int | np.integer) and horizon >= 1):
        raise ValueError(f"horizon must be a positive whole number of months, got {horizon!r}")
    if not (np.isfinite(discount_rate) and discount_rate > -1):
        raise ValueError(f"discount_rate must be finite and > -1, got {discount_rate!r}")
    if not np.isfinite(margin):
        raise ValueError("margin must be finite")
    x, t_x, T_ = _check_rfm(summary["frequency"], summary["recency"], summary["T"])
    spend = np.asarray(
        gg.conditional_expected_average_profit(
            summary["frequency"].to_numpy(), summary["monetary_value"].to_numpy()
        )
    )
    months = np.arange(horizon + 1, dtype=float)
    t_grid = months * PERIODS_PER_MONTH[time_unit]
    cum = bg._expected_purchases(t_grid[None, :], x[:, None], t_x[:, None], T_[:, None])
    increments = np.diff(cum, axis=1)
    discount = (1.0 + discount_rate) ** -months[1:]
    clv = margin * spend * (increments @ discount)
    return pd.DataFrame(
        {"expected_purchases": cum[:, -1], "expected_spend": spend, "clv": clv},
        index=summary.index,
    )


@dataclass(frozen=True)
class HoldoutValidation:
    """Predicted vs actual holdout purchases.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per calibration-frequency group (``0, 1, ..., k+``): ``n``
        customers, mean ``actual`` and ``predicted`` holdout purchases.
    mae : float
        Mean absolute error per customer.
    rmse : float
    correlation : float
        Pearson correlation of predicted and actual per customer.
    total_actual, total_predicted : float
        Holdout purchases summed over customers.
    n : int
    """

    table: pd.DataFrame = field(repr=False)
    mae: float
    rmse: float
    correlation: float
    total_actual: float
    total_predicted: float
    n: int

    def __repr__(self) -> str:
        return (
            f"HoldoutValidation(n={self.n}, mae={self.mae:.4g}, rmse={self.rmse:.4g}, "
            f"correlation={self.correlation:.4g}, total_actual={self.total_actual:.6g}, "
            f"total_predicted={self.total_predicted:.6g})"
        )

    def summary(self) -> str:
        """The frequency-group table followed by the overall metrics."""
        return f"{self.table.to_string(float_format=lambda v: f'{v:.3f}')}\n{self!r}"


def holdout_validation(
    bgnbd_fit: BetaGeoFit | BetaGeoModel,
    calibration_holdout_summary: pd.DataFrame,
    max_frequency: int = 7,
) -> HoldoutValidation:
    """Compare BG/NBD predictions with holdout purchases by calibration frequency.

    Parameters
    ----------
    bgnbd_fit : BetaGeoFit or fitted BetaGeoModel
        Fitted on the calibration columns of ``calibration_holdout_summary``.
    calibration_holdout_summary : pandas.DataFrame
        Output of :func:`calibration_holdout` (``frequency``, ``recency``,
        ``T``, ``frequency_holdout``, ``duration_holdout``).
    max_frequency : int, default 7
        Frequencies ``>= max_frequency`` are pooled into one ``"k+"`` group.

    Returns
    -------
    HoldoutValidation
    """
    bg = _result(bgnbd_fit, BetaGeoFit)
    df = calibration_holdout_summary
    need = ("frequency", "recency", "T", "frequency_holdout", "duration_holdout")
    missing = [c for c in need if c not in df]
    if missing:
        raise ValueError(f"calibration_holdout_summary lacks column(s) {missing}")
    if max_frequency < 1:
        raise ValueError("max_frequency must be >= 1")
    x, t_x, T_ = _check_rfm(df["frequency"], df["recency"], df["T"])
    actual = _as_array(df["frequency_holdout"], "frequency_holdout")
    duration = _as_array(df["duration_holdout"], "duration_holdout")
    predicted = np.asarray(bg.expected_purchases(duration, x, t_x, T_), dtype=float)
    labels = [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"]
    group = pd.Categorical.from_codes(np.minimum(x, max_frequency).astype(int), labels)
    frame = pd.DataFrame({"group": group, "actual": actual, "predicted": predicted})
    table = frame.groupby("group", observed=False).agg(
        n=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    table.index.name = "frequency"
    err = predicted - actual
    corr = (
        float(np.corrcoef(predicted, actual)[0, 1])
        if x.size > 1 and np.std(actual) > 0 and np.std(predicted) > 0
        else float("nan")
    )
    return HoldoutValidation(
        table=table,
        mae=float(np.mean(np.abs(err))),
        rmse=float(np.sqrt(np.mean(err**2))),
        correlation=corr,
        total_actual=float(actual.sum()),
        total_predicted=float(predicted.sum()),
        n=int(x.size),
    )
