"""Customer value: the customer pyramid, loyalty × profit segments, tier migration,
upgrade potential and the strategy table (DOMAIN.md §2–§3).

Pipeline (each step a tested function; the notebook ``02_customer_pyramid`` wires them)
---------------------------------------------------------------------------------------
1. :func:`customer_value` — one row per customer for a value window, aggregated in
   the engine (one Ibis group-by over ``transactions`` joined to ``customers``):
   revenue, gross profit, purchases, categories bought, refunds, tenure, recency,
   relationship length and historical lifetime value (profit contributed −
   acquisition cost − retention cost).
2. :func:`assign_tiers` / :func:`customer_pyramid` — tiers by a value measure with
   configurable shares (default 1% / 19% / 30% / 50%, top / second / third /
   bottom layer; key customers = top two layers), the 80/20 check.
3. :func:`lorenz_curve`, :func:`gini`, :func:`gini_ci` — concentration of value.
4. :func:`tier_migration` — transition matrix between two windows;
   :func:`upgrade_candidates` — ordinary customers near the key tier.
5. :func:`loyalty_segments` — true friends / butterflies / barnacles / strangers.
6. :func:`predict_clv` — wires :mod:`workbench.clv` (BG/NBD + Gamma-Gamma, holdout
   validation, discounted CLV) to a dataset and a period.
7. :func:`strategy_table` — size, value and the DOMAIN.md action per tier and segment.

Notebook sections (the result shape, :mod:`workbench.results`)
----------------------------------------------------------------
:func:`value_base` computes the shared inputs once (value per customer now and in the
comparison window, the CLV fit; missing data are kept as the reason, never raised); each
section is one function of it returning a :class:`~workbench.results.Result` that carries its
findings, figures, tables, KPIs and ``metrics.json`` entries: :func:`value_overview`,
:func:`pyramid_tiers`, :func:`pyramid_explorer` (interactive only), :func:`concentration`,
:func:`segment_matrix`, :func:`segment_explorer` (interactive only), :func:`lifetime_value`,
:func:`holdout_check`, :func:`layer_migration`, :func:`upgrade_potential`, :func:`strategy`,
:func:`method_notes`. A section the data cannot support is a
:class:`~workbench.results.Skipped` that says why (:class:`NotApplicable`,
:class:`CLVNotEstimable` and ``MissingDataError`` carry the reason)::

    base = nb.data(pyr.value_base, nb.analysis_date, nb.period.start, pyr.value_options(months=12))
    nb.show(lambda: pyr.pyramid_tiers(base()))

Conventions (documented decisions)
----------------------------------
* **Ranking and ties.** Customers are ranked by value, descending. Equal values are
  ordered by a stable 64-bit hash of ``customer_id`` (``pandas.util.hash_array``,
  fixed key), so a tie at a tier boundary is split the same way on every run and
  machine, and not by id order (which often follows signup order and would
  systematically favour old or new customers).
* **Tier sizes.** With ``n`` customers the cumulative boundaries are
  ``floor(cumsum(shares) * n + 0.5)``, so every tier holds its share of ``n`` to
  within one customer and the tiers always add up to ``n``. With few customers a
  tier can be empty (e.g. the 1% top layer when ``n < 50``); nothing is invented.
* **Zero and negative values** are kept: they are customers (no purchases in the
  window, or refunds larger than purchases). They rank below every positive value
  and therefore fill the bottom of the pyramid; their counts are reported
  (``n_zero``, ``n_negative``). Value shares are shares of the *net* total.
* **Gini / Lorenz** are computed on value clipped at 0 (a customer cannot hold a
  negative share of value in the Lorenz sense); the count of non-positive customers
  is reported with them.
* **Purchases** are orders when ``transactions.order_id`` is mapped: distinct
  ``order_id`` per customer and day, so order lines are one purchase and an order
  refunded the same day to within a cent of zero is none (``count_orders``, default
  on with ``order_id``). Without ``order_id`` they are transaction rows with a
  positive amount (the canonical model has one row per purchase); the CLV model then
  counts purchase days. Refund rows are counted separately and netted out of revenue
  and profit; a refund is never a purchase (recency ignores it).
* **Honest output.** Migration counts only customers with value in at least one
  window; a segment cut that does not split moves (``Segments.moved``) or the
  dimension is named (``Segments.unsplit``); a CLV fit that is not identified
  (:meth:`workbench.clv.BetaGeoFit.identification_issues`) has no predictions.
* **Segments.** Profitability = historical lifetime value (profit contributed −
  acquisition and retention cost, up to the window end); relationship length =
  last purchase − first contact (signup date, else first purchase), 0 without a
  purchase. *Profitable* means ``profit > profit_cut``; *long-term* means
  ``relationship_days >= tenure_cut``. Default cut points: the medians.

Nothing here prints; results are frozen dataclasses (readable ``repr``) or
DataFrames; ``figure_*`` functions return plotly figures with translated labels.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import ibis
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import viz  # noqa: F401  (registers the workbench plotly template)
from workbench.i18n import fmt_date, fmt_int, fmt_money, fmt_num, fmt_pct, t
from workbench.results import KPI, Figure, Finding, Result, Table, skipped

__all__ = [
    "TIERS", "DEFAULT_SHARES", "SEGMENTS", "MEASURES",
    "value_window", "customer_value", "assign_tiers", "Pyramid", "customer_pyramid",
    "top_share", "ShareCI", "top_share_ci", "MIN_CASES", "lorenz_curve", "gini", "GiniResult", "gini_ci",
    "Migration", "tier_migration", "UpgradeCandidates", "upgrade_candidates",
    "Segments", "loyalty_segments", "CLVResult", "CLVNotEstimable", "predict_clv", "strategy_table",
    "window_months", "ALL", "effective_end",
    "figure_pyramid", "figure_lorenz", "figure_migration", "figure_segments",
    "figure_clv_distribution", "figure_holdout", "figure_tier_values",
    "ValueOptions", "value_options", "ValueBase", "value_base", "NotApplicable",
    "ValueOverview", "value_overview", "PyramidTiers", "pyramid_tiers", "PyramidExplorer", "pyramid_explorer",
    "Concentration", "concentration", "SegmentMatrix", "segment_matrix", "SegmentExplorer", "segment_explorer",
    "LifetimeValue", "lifetime_value", "HoldoutCheck", "holdout_check", "LayerMigration", "layer_migration",
    "UpgradePotential", "upgrade_potential", "Strategy", "strategy", "MethodNotes", "method_notes",
]

TIERS: tuple[str, ...] = ("top", "second", "third", "bottom")
DEFAULT_SHARES: tuple[float, ...] = (0.01, 0.19, 0.30, 0.50)
KEY_TIERS = 2  # key customers = the top two layers
SEGMENTS: tuple[str, ...] = ("true_friends", "butterflies", "barnacles", "strangers")
MEASURES: tuple[str, ...] = ("revenue", "profit", "historical_clv", "clv")
NEW = "new"  # not a customer (or no value row) in the earlier window
GONE = "gone"  # not in the later window


# --------------------------------------------------------------------------- helpers
def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "date"):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


ALL = "all"  # value window: the whole history up to the end


def window_months(value: Any) -> int | str:
    """A ``value_window_months`` notebook parameter: a whole number >= 1 or ``"all"``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == ALL:
            return ALL
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"value_window_months must be a whole number of months or 'all', got {value!r}") from None
    if isinstance(value, bool) or not float(value).is_integer() or float(value) < 1:
        raise ValueError(f"value_window_months must be a whole number of months >= 1 or 'all', got {value!r}")
    return int(value)


def value_window(end: Any, months: int | str = 12, first: Any = None) -> tuple[dt.date, dt.date]:
    """The ``months`` calendar months up to and including the month of ``end``.

    ``value_window("2026-10-31", 12)`` is ``(2025-11-01, 2026-10-31)``. A single month
    is too short for a pyramid (most customers do not buy every month), so value is
    measured over a trailing window ending at the report period's end.
    ``months="all"`` is the whole history: ``first`` (the first data date) to ``end``.
    """
    end = _date(end)
    months = window_months(months)
    if months == ALL:
        start = _date(first) if first is not None else end  # no data: an empty window
        return min(start, end), end
    return _add_months(end.replace(day=1), -(months - 1)), end


def _stable_hash(ids: pd.Series) -> np.ndarray:
    return pd.util.hash_array(ids.astype(str).to_numpy(dtype=object))


def _unique_ids(index: pd.Index) -> bool:
    """``index.is_unique``; for Arrow-backed string ids (what :func:`customer_value` returns) through
    Arrow's hash kernel, about twice as fast at 1M ids as pandas' index engine (a hash table of
    Python strings), remembered where pandas remembers it."""
    cache = getattr(index, "_cache", None)  # where pandas keeps is_unique once known (an Index is immutable)
    if not isinstance(cache, dict) or "is_unique" in cache:
        return index.is_unique
    arr = index.array
    if isinstance(arr.dtype, pd.StringDtype) and arr.dtype.storage == "pyarrow":
        unique = len(pd.unique(arr)) == len(index)  # a missing id counts once, as in is_unique
        cache["is_unique"] = unique  # the next tiering of the same frame (another measure) asks again
        return unique
    return index.is_unique


def _check_shares(shares: Sequence[float]) -> np.ndarray:
    s = np.asarray(list(shares), dtype=float)
    if s.ndim != 1 or s.size < 2 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"tier shares must be >= 2 non-negative numbers, got {list(shares)!r}")
    if abs(s.sum() - 1.0) > 1e-6:
        raise ValueError(f"tier shares must add up to 1, got {s.sum():.6g}")
    return s / s.sum()


def _tier_names(k: int) -> tuple[str, ...]:
    return TIERS if k == len(TIERS) else tuple(f"tier{i + 1}" for i in range(k))


def tier_label(tier: str, lang: str) -> str:
    """Translated tier name (``top`` → 最高层)."""
    key = f"pyramid.tier.{tier}"
    from workbench.i18n import has
    return t(key, lang) if has(key) else tier


# --------------------------------------------------------------------------- 1. value
def customer_value(
    ds: Any,
    end: Any,
    months: int | str = 12,
    *,
    margin_rate: float | None = None,
    acquisition_cost: float = 0.0,
    retention_cost_per_year: float = 0.0,
    count_orders: bool | None = None,
) -> pd.DataFrame:
    """Value per customer for the window of ``months`` months ending at ``end``.

    One Ibis group-by over ``transactions`` (dates up to ``end``) with conditional
    aggregates for the window, outer-joined in the engine to ``customers`` (signed
    up by ``end``); only this per-customer frame reaches pandas.

    Parameters
    ----------
    ds : workbench.engine.Dataset
    end : date-like
        Last day of the window (inclusive), usually the report period's end.
    months : int or "all"
        Window length in calendar months (see :func:`value_window`); ``"all"`` =
        the whole history up to ``end``.
    margin_rate : float, optional
        If > 0, gross profit = amount × margin_rate (overrides the data's margin);
        otherwise the ``margin`` column (present when the source has it or the
        dataset configures ``margin_rate``). Without either, profit is missing.
    acquisition_cost : float
        Cost of acquiring one customer where the customers table has none.
    retention_cost_per_year : float
        Cost of keeping a customer per year of tenure.
    count_orders : bool, optional
        ``None`` (default): ``True`` when ``transactions.order_id`` is mapped.
        ``True``: ``purchases`` counts orders — distinct ``order_id`` per customer
        and day with a positive net amount; an order whose same-day refund nets it
        to within a cent of zero is not a purchase (order lines are one purchase).
        ``False``: transaction rows with a positive amount (one row per purchase).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id``: ``revenue`` (net, refunds deducted),
        ``gross_revenue``, ``profit`` (window), ``purchases``, ``categories``,
        ``refunds`` (refund rows), ``refund_amount``, ``first_purchase``,
        ``last_purchase``, ``first_contact`` (signup date, else first purchase),
        ``tenure_days`` (end − first contact), ``recency_days`` (end − last
        purchase; NaN without one), ``relationship_days`` (last purchase − first
        contact; 0 without a purchase), ``lifetime_profit`` (all profit up to ``end``),
        ``acquisition_cost``, ``retention_cost``, ``historical_clv``. ``attrs``
        holds the window, ``profit_source`` and ``currency``.
    """
    from workbench.engine import MissingDataError

    ds.require("transactions", "customer_id", "date", "amount", reason="customer value")
    months = window_months(months)
    first = ds.date_range("transactions", "date")[0] if months == ALL else None
    start, end = value_window(end, months, first)
    if count_orders is None:
        count_orders = ds.has("transactions", "order_id")
    tx = ds.table("transactions")
    tx = tx.filter(tx.date <= end)
    if margin_rate is not None and margin_rate > 0:
        margin = tx.amount * float(margin_rate)
        profit_source = "margin_rate"
    elif ds.has("transactions", "margin"):
        margin = tx.margin
        profit_source = "data"
    else:
        margin = None
        profit_source = "none"
    # the window / sign conditions are computed once as flag columns (cheaper than
    # re-evaluating them inside every conditional aggregate)
    flags: dict[str, Any] = {"_w": tx.date >= start, "_p": tx.amount > 0}
    flags["_wp"] = flags["_w"] & flags["_p"]
    flags["_wn"] = flags["_w"] & (tx.amount < 0)
    cat_bits = None
    if ds.has("transactions", "product_category"):
        cats = ds.table("transactions").select("product_category").distinct().limit(64).to_pyarrow()
        names = [c for c in cats.column(0).to_pylist() if c is not None]
        if len(names) <= 62:  # categories bought as a bit mask: bit_or is far cheaper than a distinct count
            cat_bits = {c: 1 << i for i, c in enumerate(sorted(names))}
    if margin is not None:
        flags["_m"] = margin
    tx = tx.mutate(**flags)

    def when(cond: Any, value: Any) -> Any:
        # sum(CASE WHEN cond THEN x END) rather than sum(x) FILTER (WHERE cond): the same result (NULL
        # when no row qualifies), ~10% faster on DuckDB at 1M customers, and plain SQL on every engine
        return cond.ifelse(value, ibis.null(value.type()))

    aggs: dict[str, Any] = {
        "gross_revenue": when(tx._wp, tx.amount).sum(),
        "refund_amount": when(tx._wn, -tx.amount).sum(),
        "refunds": when(tx._wn, tx.amount).count(),
        "first_purchase": when(tx._p, tx.date).min(),
        "last_purchase": when(tx._p, tx.date).max(),
    }
    by_order = bool(count_orders) and ds.has("transactions", "order_id")
    # an order is a purchase when its net amount is positive (_join_order_counts); when every order is one
    # row that is a positive row, so the per-customer scan counts orders without a second grouping
    if not by_order or getattr(ds, "orders_are_rows", False):
        aggs["purchases"] = when(tx._wp, tx.amount).count()
    if cat_bits is not None:
        # the category's bit is looked up inside the CASE, so only for rows in the window (not every row)
        aggs["category_bits"] = when(tx._wp, tx.product_category.substitute(cat_bits, else_=0).cast("int64")).bit_or()
    elif ds.has("transactions", "product_category"):
        aggs["categories"] = tx.product_category.nunique(where=tx._wp)
    if margin is not None:
        aggs["profit"] = when(tx._w, tx._m).sum()
        aggs["lifetime_profit"] = tx._m.sum()
    agg = tx.group_by("customer_id").aggregate(**aggs)
    if "purchases" not in aggs:
        agg = _join_order_counts(agg, tx.filter(tx._w))
    has_acq = False
    if ds.has("customers", "signup_date"):
        c = ds.table("customers")
        c = c.filter(c.signup_date <= end)
        has_acq = ds.has("customers", "acquisition_cost")
        cols = [c.customer_id.name("cid"), c.signup_date]
        if has_acq:
            cols.append(c.acquisition_cost.name("acq"))
        c = c.select(*cols)
        j = c.outer_join(agg, c.cid == agg.customer_id)
        expr = j.mutate(customer_id=j.cid.coalesce(j.customer_id)).drop("cid")
    else:
        expr = agg.mutate(signup_date=ibis.null("date"))
    df = _value_frame(expr.to_pyarrow(), end, has_acq, acquisition_cost, retention_cost_per_year)
    if df.empty:
        raise MissingDataError("transactions", (), f"no customers up to {end}")
    df.attrs.update({"start": start.isoformat(), "end": end.isoformat(), "months": months,
                     "profit_source": profit_source, "currency": getattr(ds, "currency", "CNY"),
                     "purchase_unit": "order" if by_order else "row"})
    return df


_VALUE_COLUMNS = ("revenue", "gross_revenue", "profit", "purchases", "categories", "refunds", "refund_amount",
                  "first_purchase", "last_purchase", "signup_date", "first_contact", "tenure_days",
                  "recency_days", "relationship_days", "lifetime_profit",
                  "acquisition_cost", "retention_cost", "historical_clv")


def _value_frame(tab: Any, end: dt.date, has_acq: bool, acquisition_cost: float,
                 retention_cost_per_year: float) -> pd.DataFrame:
    """The :func:`customer_value` frame from the fetched per-customer Arrow table.

    Column by column in numpy (no pandas object dtypes): dates stay day numbers until the
    end, missing counts and sums become 0 (NaN too, as ``fillna`` did), day differences
    are integer arithmetic on day numbers (the whole days ``Timedelta.days`` gave).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = tab.num_rows
    names = set(tab.column_names)

    def num(col: str, dtype: Any) -> np.ndarray:  # missing (and NaN) → 0, like fillna(0)
        c = tab.column(col)
        if pa.types.is_integer(c.type):  # exact: no detour through float (category bits use 62 bits)
            return pc.fill_null(c, 0).to_numpy().astype(dtype)
        a = c.to_numpy(zero_copy_only=False).astype(float)
        a[np.isnan(a)] = 0
        return a.astype(dtype)

    def days(col: str) -> np.ndarray:  # day numbers as float, NaN when missing
        c = tab.column(col)
        if c.type != pa.date32():  # canonical dates are DATE on every engine; a time of day would raise here
            c = pc.cast(c, pa.date32())
        return c.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(float)

    def stamps(d: np.ndarray) -> np.ndarray:  # day numbers → datetime64[s], NaT when missing
        out = np.full(d.shape, np.datetime64("NaT"), dtype="datetime64[s]")
        ok = ~np.isnan(d)
        out[ok] = (d[ok].astype(np.int64) * 86400).astype("datetime64[s]")
        return out

    cols: dict[str, Any] = {}
    gross, refund = num("gross_revenue", float), num("refund_amount", float)
    cols["revenue"] = gross - refund
    cols["gross_revenue"] = gross
    cols["profit"] = num("profit", float) if "profit" in names else np.full(n, np.nan)
    cols["purchases"] = num("purchases", np.int64)
    if "category_bits" in names:
        bits = num("category_bits", np.int64).view(np.uint64)
        cols["categories"] = np.bitwise_count(bits).astype(np.int64)
    elif "categories" in names:
        cols["categories"] = num("categories", np.int64)
    else:
        cols["categories"] = np.full(n, np.nan)
    cols["refunds"] = num("refunds", np.int64)
    cols["refund_amount"] = refund
    first, last, signup = days("first_purchase"), days("last_purchase"), days("signup_date")
    contact = np.where(np.isnan(signup), first, signup)
    cols["first_purchase"], cols["last_purchase"] = stamps(first), stamps(last)
    cols["signup_date"], cols["first_contact"] = stamps(signup), stamps(contact)
    end_day = float((end - dt.date(1970, 1, 1)).days)
    tenure = np.maximum(end_day - contact, 0)  # NaN (no contact date) stays NaN
    cols["tenure_days"] = tenure if np.isnan(tenure).any() else tenure.astype(np.int64)
    cols["recency_days"] = end_day - last
    rel = np.maximum(last - contact, 0)
    rel[np.isnan(rel)] = 0
    cols["relationship_days"] = rel.astype(np.int64)
    cols["lifetime_profit"] = num("lifetime_profit", float) if "lifetime_profit" in names else np.full(n, np.nan)
    acq = tab.column("acq").to_numpy(zero_copy_only=False).astype(float) if has_acq else np.full(n, np.nan)
    acq[np.isnan(acq)] = float(acquisition_cost)
    cols["acquisition_cost"] = acq
    cols["retention_cost"] = float(retention_cost_per_year) * cols["tenure_days"] / 365.25
    cols["historical_clv"] = cols["lifetime_profit"] - acq - cols["retention_cost"]
    index = pd.Index(tab.column("customer_id").to_pandas(), name="customer_id").astype(str)
    return pd.DataFrame({c: cols[c] for c in _VALUE_COLUMNS}, index=index)


def _join_order_counts(agg: Any, window: Any) -> Any:
    """``agg`` with ``purchases`` = purchase orders per customer in ``window``.

    An order is a distinct ``order_id`` per customer and day; it is a purchase when
    its net amount exceeds a cent, or it has no refund line and a positive amount
    (refund lines under their own order id are never purchases).
    """
    from workbench.clv import REFUND_TOLERANCE

    w = window.mutate(_day=window.date.cast("date"))
    o = w.group_by(["customer_id", "order_id", "_day"]).aggregate(
        _net=w.amount.sum(), _neg=(w.amount < 0).sum(), _pos=(w.amount > 0).sum())
    o = o.filter((o._net > REFUND_TOLERANCE + 1e-9) | ((o._neg == 0) & (o._pos > 0)))
    n = o.group_by("customer_id").aggregate(_orders=o.count()).rename(_cid="customer_id")
    j = agg.left_join(n, agg.customer_id == n._cid)
    return j.mutate(purchases=j._orders.coalesce(0)).drop("_cid", "_orders")


# --------------------------------------------------------------------------- 2. pyramid
def _boundaries(n: int, shares: np.ndarray) -> np.ndarray:
    cum = np.floor(np.cumsum(shares) * n + 0.5).astype(np.int64)
    cum[-1] = n
    return np.concatenate([[0], np.minimum(cum, n)])


def _rank_order(values: pd.Series, bounds: np.ndarray) -> np.ndarray:
    """Positions of ``values`` from highest to lowest, ties at the ``bounds`` ordered by id hash.

    Equivalent, for tier assignment, to sorting by (value desc, hash(customer_id)):
    the hash is only computed for tie groups that straddle a tier boundary (order
    inside a group that does not straddle one cannot change any tier).
    """
    v = values.to_numpy(dtype=float)
    if np.isnan(v).any():
        raise ValueError("values contain missing values; fill or drop them first")
    order = np.argsort(-v, kind="stable")
    neg_sorted = -v[order]  # ascending
    done: set[int] = set()
    for b in bounds[1:-1]:
        if 0 < b < v.size and neg_sorted[b - 1] == neg_sorted[b]:
            lo = int(np.searchsorted(neg_sorted, neg_sorted[b], side="left"))
            if lo in done:
                continue
            done.add(lo)
            hi = int(np.searchsorted(neg_sorted, neg_sorted[b], side="right"))
            group = order[lo:hi]
            order[lo:hi] = group[np.argsort(_stable_hash(pd.Series(values.index[group])), kind="stable")]
    return order


def _assign(values: pd.Series, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes per customer, rank order, boundaries)."""
    n = len(values)
    bounds = _boundaries(n, s)
    order = _rank_order(values, bounds)
    codes = np.empty(n, dtype=np.int64)
    codes[order] = np.repeat(np.arange(s.size), np.diff(bounds))
    return codes, order, bounds


def assign_tiers(values: pd.Series, shares: Sequence[float] = DEFAULT_SHARES,
                 names: Sequence[str] | None = None) -> pd.Series:
    """Tier of each customer by value, highest first (see module notes on ties).

    Parameters
    ----------
    values : pandas.Series
        Value per customer, indexed by customer id (unique). No missing values.
    shares : sequence of float
        Customer shares of the tiers from the top; must add up to 1.
    names : sequence of str, optional
        Tier names (default ``top, second, third, bottom`` for four tiers).

    Returns
    -------
    pandas.Series
        Ordered categorical of tier names, indexed like ``values``.
    """
    s = _check_shares(shares)
    names = tuple(names) if names is not None else _tier_names(s.size)
    if len(names) != s.size:
        raise ValueError("names and shares differ in length")
    if not _unique_ids(values.index):
        raise ValueError("customer ids (the index) must be unique")
    codes, _, _ = _assign(values, s)
    cat = pd.Categorical.from_codes(codes, categories=list(names), ordered=True)
    return pd.Series(cat, index=values.index, name="tier")


def top_share(values: Any, share: float = 0.2) -> float:
    """Share of the (net) total held by the top ``share`` of customers (``round(share·n)``)."""
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    total = v.sum()
    if v.size == 0 or total == 0:
        return float("nan")
    k = int(math.floor(share * v.size + 0.5))
    return float(v[:k].sum() / total)


#: fewest customers with value on which a concentration or segment finding may be a headline
MIN_CASES = 30


@dataclass(frozen=True)
class ShareCI:
    """Share of the total held by the top ``share`` of customers, with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    share: float
    n: int
    n_boot: int

    @property
    def estimable(self) -> bool:
        return bool(np.isfinite(self.estimate) and np.isfinite(self.low) and np.isfinite(self.high))

    def evidence(self, min_n: int = MIN_CASES) -> bool:
        """Enough customers and an interval that excludes an even spread (``share`` of the total)."""
        return self.estimable and self.n >= min_n and self.low > self.share


def top_share_ci(values: Any, share: float = 0.2, n_boot: int = 200, seed: int = 42,
                 level: float = 0.95, max_cells: int = 4_000_000) -> ShareCI:
    """:func:`top_share` of value clipped at 0 with a percentile bootstrap interval.

    ``n`` counts customers with a positive value. With fewer than two, or no positive
    total, the estimate and the interval are NaN (not estimable).
    """
    raw = np.asarray(values, dtype=float)
    # sorted first: the engine returns customers in no fixed order, and the same seed must give the
    # same interval in every run and language
    v = np.sort(np.clip(raw[~np.isnan(raw)], 0.0, None))
    n_pos = int((v > 0).sum())
    est = top_share(v, share)
    k = int(math.floor(share * v.size + 0.5))
    if k < 1 or n_pos < 2:  # the top share is no customer, or one customer holds everything
        return ShareCI(float("nan"), float("nan"), float("nan"), share, n_pos, 0)
    if n_boot < 1 or not np.isfinite(est):
        return ShareCI(est if n_pos >= 2 else float("nan"), float("nan"), float("nan"), share, n_pos, 0)
    rng = np.random.default_rng(seed)
    per = max(1, max_cells // v.size)
    out, done = [], 0
    while done < n_boot:
        b = min(per, n_boot - done)
        sample = -np.sort(-v[rng.integers(0, v.size, size=(b, v.size))], axis=1)
        tot = sample.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(tot > 0, sample[:, :k].sum(axis=1) / tot, np.nan))
        done += b
    boots = np.concatenate(out)
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(boots, [alpha, 1 - alpha])
    return ShareCI(est, float(lo), float(hi), share, n_pos, int(n_boot))


@dataclass(frozen=True)
class Pyramid:
    """The customer pyramid for one value measure.

    ``table`` has one row per tier: ``tier``, ``target_share``, ``customers``,
    ``customer_share``, ``value``, ``value_share``, ``revenue``, ``profit``,
    ``revenue_share``, ``profit_share``, ``mean_value``, ``median_value``,
    ``min_value``, ``max_value``. ``tiers`` is the per-customer assignment.
    """

    measure: str
    shares: tuple[float, ...]
    table: pd.DataFrame = field(repr=False)
    tiers: pd.Series = field(repr=False)
    n: int
    n_zero: int
    n_negative: int
    total_value: float
    top20_value_share: float
    key_value_share: float
    key_customer_share: float
    key_threshold: float

    @property
    def gap_to_80(self) -> float:
        """``top20_value_share − 0.8`` (negative: less concentrated than 80/20)."""
        return self.top20_value_share - 0.8

    def __repr__(self) -> str:
        rows = ", ".join(f"{r.tier}={r.customers}/{r.value_share:.1%}" for r in self.table.itertuples())
        return (f"Pyramid(measure={self.measure!r}, n={self.n}, {rows}, top20={self.top20_value_share:.1%}, "
                f"n_zero={self.n_zero}, n_negative={self.n_negative})")

    def metric_tiers(self) -> list[dict[str, Any]]:
        """``[{tier, customers, customer_share, value, value_share}]`` for the metrics file."""
        cols = ["tier", "customers", "customer_share", "value", "value_share"]
        return self.table[cols].to_dict(orient="records")


def customer_pyramid(values: pd.DataFrame, measure: str = "revenue",
                     shares: Sequence[float] = DEFAULT_SHARES) -> Pyramid:
    """Tier the customers of ``values`` (a :func:`customer_value` frame) by ``measure``.

    ``measure`` is a column: ``revenue`` (default, the 80/20 rule is stated on
    revenue), ``profit``, ``historical_clv``, or ``clv`` (predicted, joined by
    :meth:`CLVResult.join`). Missing values of the measure count as 0.
    """
    if measure not in values:
        raise ValueError(f"value measure {measure!r} is not a column; choose from "
                         f"{[m for m in MEASURES if m in values] or list(values.columns)}")
    s = _check_shares(shares)
    v = values[measure].astype(float).fillna(0.0)
    if not _unique_ids(v.index):
        raise ValueError("customer ids (the index) must be unique")
    names = list(_tier_names(s.size))
    codes, order, bounds = _assign(v, s)
    tiers = pd.Series(pd.Categorical.from_codes(codes, categories=names, ordered=True), index=v.index,
                      name="tier")
    sv = v.to_numpy()[order]  # descending
    rev = (values["revenue"].to_numpy(dtype=float) if "revenue" in values else np.full(len(v), np.nan))[order]
    prof = (values["profit"].to_numpy(dtype=float) if "profit" in values else np.full(len(v), np.nan))[order]
    rows = []
    for k in range(s.size):
        lo, hi = bounds[k], bounds[k + 1]
        part = sv[lo:hi]
        size = hi - lo
        rows.append({
            "customers": size, "value": float(part.sum()), "revenue": float(np.nansum(rev[lo:hi])),
            "profit": float(np.nansum(prof[lo:hi])),
            "mean_value": float(part.mean()) if size else np.nan,
            "median_value": float(np.median(part)) if size else np.nan,
            "min_value": float(part[-1]) if size else np.nan, "max_value": float(part[0]) if size else np.nan,
        })
    table = pd.DataFrame(rows, index=pd.Index(names, name="tier"))
    frame = pd.DataFrame({"revenue": rev, "profit": prof})
    n = len(v)
    total = float(v.sum())
    table.insert(0, "target_share", s)
    table.insert(2, "customer_share", table["customers"] / n if n else np.nan)
    table.insert(4, "value_share", table["value"] / total if total else np.nan)
    rev_tot, prof_tot = frame["revenue"].sum(), frame["profit"].sum()
    table["revenue_share"] = table["revenue"] / rev_tot if rev_tot else np.nan
    table["profit_share"] = table["profit"] / prof_tot if prof_tot else np.nan
    table["customers"] = table["customers"].astype("int64")
    table = table.reset_index()
    table["tier"] = table["tier"].astype(str)
    k = min(KEY_TIERS, len(names) - 1)
    key = table.iloc[:k]
    key_n = int(key["customers"].sum())
    key_threshold = float(key["min_value"].min()) if key_n else float("nan")
    return Pyramid(
        measure=measure, shares=tuple(float(x) for x in s), table=table, tiers=tiers, n=n,
        n_zero=int((v == 0).sum()), n_negative=int((v < 0).sum()), total_value=total,
        top20_value_share=(float(sv[: int(math.floor(0.2 * n + 0.5))].sum() / total) if total and n
                           else float("nan")),
        key_value_share=float(key["value"].sum() / total) if total else float("nan"),
        key_customer_share=key_n / n if n else float("nan"), key_threshold=key_threshold,
    )


# --------------------------------------------------------------------------- 3. Lorenz / Gini
def _clip_sorted(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return np.sort(np.clip(v, 0.0, None))


def lorenz_curve(values: Any, points: int | None = 201) -> pd.DataFrame:
    """Lorenz curve of value clipped at 0: ``customer_share`` (poorest first) vs ``value_share``.

    ``points`` thins the curve for plotting (``None`` = every customer); the curve
    starts at (0, 0) and ends at (1, 1).
    """
    v = _clip_sorted(values)
    n = v.size
    if n == 0 or v.sum() == 0:
        return pd.DataFrame({"customer_share": [0.0, 1.0], "value_share": [0.0, 1.0]})
    cum = np.concatenate([[0.0], np.cumsum(v) / v.sum()])
    x = np.arange(n + 1) / n
    if points is not None and n + 1 > points:
        idx = np.unique(np.linspace(0, n, points).round().astype(int))
        x, cum = x[idx], cum[idx]
    return pd.DataFrame({"customer_share": x, "value_share": cum})


def _gini_sorted(v: np.ndarray) -> np.ndarray:
    """Gini of each row of sorted, non-negative ``v`` (2-D): Σ(2i−n−1)x_i / (n Σx)."""
    n = v.shape[-1]
    i = np.arange(1, n + 1, dtype=float)
    tot = v.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = ((2 * i - n - 1) * v).sum(axis=-1) / (n * tot)
    return np.where(tot > 0, g, np.nan)


def gini(values: Any) -> float:
    """Gini coefficient of value clipped at 0 (0 = equal, → 1 = one customer holds all)."""
    v = _clip_sorted(values)
    if v.size == 0:
        return float("nan")
    return float(_gini_sorted(v[None, :])[0])


@dataclass(frozen=True)
class GiniResult:
    """Gini with a percentile bootstrap interval; ``n_nonpositive`` customers entered as 0."""

    gini: float
    low: float
    high: float
    level: float
    n: int
    n_nonpositive: int
    n_boot: int

    def __repr__(self) -> str:
        return (f"GiniResult(gini={self.gini:.3f}, {self.level:.0%} CI [{self.low:.3f}, {self.high:.3f}], "
                f"n={self.n}, n_nonpositive={self.n_nonpositive}, n_boot={self.n_boot})")


def gini_ci(values: Any, n_boot: int = 200, seed: int = 42, level: float = 0.95,
            max_cells: int = 4_000_000) -> GiniResult:
    """Gini (clipped at 0) with a percentile bootstrap CI, vectorised in chunks of resamples."""
    raw = np.asarray(values, dtype=float)
    raw = raw[~np.isnan(raw)]
    v = np.sort(np.clip(raw, 0.0, None))  # order-free input: same seed, same interval in every run
    n = v.size
    g = gini(v)
    if n < 2 or n_boot < 1 or not np.isfinite(g):
        return GiniResult(g, float("nan"), float("nan"), level, n, int((raw <= 0).sum()), 0)
    rng = np.random.default_rng(seed)
    per = max(1, max_cells // n)
    out = []
    done = 0
    while done < n_boot:
        b = min(per, n_boot - done)
        sample = np.sort(v[rng.integers(0, n, size=(b, n))], axis=1)
        out.append(_gini_sorted(sample))
        done += b
    boots = np.concatenate(out)
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(boots, [alpha, 1 - alpha])
    return GiniResult(g, float(lo), float(hi), level, n, int((raw <= 0).sum()), int(n_boot))


# --------------------------------------------------------------------------- 4. migration
@dataclass(frozen=True)
class Migration:
    """Tier transitions between two windows.

    ``counts``: rows = earlier tier (plus ``new`` for customers without a row, or
    without value, in the earlier window), columns = later tier (plus ``gone``);
    ``shares`` are row shares. ``moves`` lists every customer with value in both
    windows with ``before``, ``after`` and ``direction`` (``up`` / ``down`` /
    ``same``); ``up``, ``down``, ``same`` count them. ``n`` customers have value in
    at least one window; ``inactive_both`` (no value in either, left out of the
    matrix) are only counted.
    """

    counts: pd.DataFrame = field(repr=False)
    shares: pd.DataFrame = field(repr=False)
    moves: pd.DataFrame = field(repr=False)
    n: int
    up: int
    down: int
    same: int
    new: int
    gone: int
    inactive_both: int = 0

    def __repr__(self) -> str:
        return (f"Migration(n={self.n}, up={self.up}, down={self.down}, same={self.same}, "
                f"new={self.new}, gone={self.gone}, inactive_both={self.inactive_both})")


def _active(value: pd.Series | None, idx: pd.Index) -> pd.Series:
    if value is None:
        return pd.Series(True, index=idx)
    v = value.reindex(idx).astype(float)
    return (v.notna() & (v != 0)).astype(bool)


def tier_migration(before: pd.Series, after: pd.Series, before_value: pd.Series | None = None,
                   after_value: pd.Series | None = None) -> Migration:
    """Transition matrix of two tier assignments (ordered categoricals, same categories).

    With ``before_value`` / ``after_value`` (the measure in each window) only
    customers with value (non-zero, not missing) in at least one window take
    part: a customer without value in the earlier window is ``new`` there (not
    the bottom of a pyramid of zeros, whose order is arbitrary), without value in
    the later one ``gone``; customers without value in both are counted as
    ``inactive_both`` and left out. Every other customer is counted exactly once.
    """
    if not isinstance(before.dtype, pd.CategoricalDtype) or not isinstance(after.dtype, pd.CategoricalDtype):
        raise TypeError("before and after must be categorical tier assignments (see assign_tiers)")
    tiers = list(after.cat.categories)
    if list(before.cat.categories) != tiers:
        raise ValueError("before and after use different tier names")
    rows = tiers + [NEW]
    cols = tiers + [GONE]
    idx = before.index.union(after.index)
    b = before.astype(str).reindex(idx).fillna(NEW)
    a = after.astype(str).reindex(idx).fillna(GONE)
    act_b = _active(before_value, idx) & (b != NEW)
    act_a = _active(after_value, idx) & (a != GONE)
    b = b.where(act_b, NEW)
    a = a.where(act_a, GONE)
    keep = (act_b | act_a).to_numpy()
    inactive_both = int((~keep).sum())
    idx, b, a = idx[keep], b[keep], a[keep]
    counts = (pd.crosstab(pd.Categorical(b, categories=rows), pd.Categorical(a, categories=cols),
                          dropna=False)
              .reindex(index=rows, columns=cols, fill_value=0).astype("int64"))
    counts.index.name, counts.columns.name = "before", "after"
    rs = counts.sum(axis=1)
    shares = counts.div(rs.where(rs > 0), axis=0)
    both = (b != NEW) & (a != GONE)
    rank = {name: i for i, name in enumerate(tiers)}
    rb = b[both].map(rank).to_numpy()
    ra = a[both].map(rank).to_numpy()
    direction = np.where(ra < rb, "up", np.where(ra > rb, "down", "same"))
    moves = pd.DataFrame({"before": b[both].to_numpy(), "after": a[both].to_numpy(), "direction": direction},
                         index=b.index[both])
    moves.index.name = "customer_id"
    return Migration(counts=counts, shares=shares, moves=moves, n=len(idx), up=int((direction == "up").sum()),
                     down=int((direction == "down").sum()), same=int((direction == "same").sum()),
                     new=int((b == NEW).sum()), gone=int((a == GONE).sum()), inactive_both=inactive_both)


@dataclass(frozen=True)
class UpgradeCandidates:
    """Ordinary customers with upgrade potential (DOMAIN.md §3).

    ``table`` (customer-level — never into metrics): ``tier``, ``value``,
    ``predicted_value``, ``growth``, ``reason`` (``predicted``, ``growth`` or
    ``both``), sorted by predicted value then value. ``threshold`` is the lowest
    key-customer value; ``near`` the fraction of it that counts as near.
    """

    table: pd.DataFrame = field(repr=False)
    n: int
    n_ordinary: int
    by_reason: dict[str, int]
    threshold: float
    near: float
    min_growth: float

    def __repr__(self) -> str:
        return (f"UpgradeCandidates(n={self.n} of {self.n_ordinary} ordinary, by_reason={self.by_reason}, "
                f"threshold={self.threshold:.4g}, near={self.near}, min_growth={self.min_growth})")

    def metric(self) -> dict[str, Any]:
        """Counts only (the list of customers never goes into metrics)."""
        return {"n": self.n, "n_ordinary": self.n_ordinary, "share_of_ordinary":
                self.n / self.n_ordinary if self.n_ordinary else None, "by_reason": dict(self.by_reason),
                "threshold": self.threshold, "near": self.near, "min_growth": self.min_growth}


def upgrade_candidates(pyramid: Pyramid, values: pd.Series, predicted: pd.Series | None = None,
                       previous: pd.Series | None = None, near: float = 0.8,
                       min_growth: float = 0.25) -> UpgradeCandidates:
    """Ordinary customers whose predicted value or growth puts them near the key tier.

    A customer outside the key tiers is a candidate when

    * ``predicted`` value (same measure and window length, e.g. the BG/NBD ×
      Gamma-Gamma expectation for the next window) ``>= near × threshold``; or
    * current value ``>= near × threshold`` *and* growth since ``previous``
      (value in the comparison window) ``>= min_growth`` (customers new since
      then count as growing).

    ``threshold`` is the lowest value among key customers (the key-tier boundary).
    """
    if not 0 < near <= 1.5:
        raise ValueError("near must be in (0, 1.5]")
    tiers = pyramid.tiers
    key_names = list(tiers.cat.categories)[:KEY_TIERS]
    ordinary = ~tiers.isin(key_names)
    v = values.reindex(tiers.index).astype(float).fillna(0.0)
    thr = pyramid.key_threshold
    bar = near * thr if np.isfinite(thr) else np.inf
    pred = (predicted.reindex(tiers.index).astype(float) if predicted is not None
            else pd.Series(np.nan, index=tiers.index))
    if previous is not None:
        prev = previous.reindex(tiers.index).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            growth = np.where(prev > 0, v / prev - 1, np.where(v > 0, np.inf, np.nan))
        growth = pd.Series(growth, index=tiers.index)
    else:
        growth = pd.Series(np.nan, index=tiers.index)
    by_pred = ordinary & (pred >= bar).fillna(False)
    by_growth = ordinary & (v >= bar) & (growth >= min_growth).fillna(False)
    sel = by_pred | by_growth
    reason = np.where(by_pred & by_growth, "both", np.where(by_pred, "predicted", "growth"))
    table = pd.DataFrame({"tier": tiers.astype(str), "value": v, "predicted_value": pred, "growth": growth,
                          "reason": reason}, index=tiers.index)[sel.to_numpy()]
    table = table.sort_values(["predicted_value", "value"], ascending=False, na_position="last")
    table.index.name = "customer_id"
    counts = table["reason"].value_counts()
    by_reason = {k: int(counts.get(k, 0)) for k in ("predicted", "growth", "both")}
    return UpgradeCandidates(table=table, n=len(table), n_ordinary=int(ordinary.sum()), by_reason=by_reason,
                             threshold=float(thr), near=float(near), min_growth=float(min_growth))


# --------------------------------------------------------------------------- 5. segments
@dataclass(frozen=True)
class Segments:
    """Loyalty × profit segments (DOMAIN.md §2).

    ``table``: ``segment``, ``n``, ``share``, ``profit``, ``profit_share`` (of the
    net total profit), ``mean_profit``, ``mean_relationship_days``.
    ``assignment``: segment per customer.
    """

    table: pd.DataFrame = field(repr=False)
    assignment: pd.Series = field(repr=False)
    profit_cut: float
    tenure_cut: float
    profit_col: str
    tenure_col: str
    #: cut points moved from the median because it did not split (``profit`` / ``tenure``)
    moved: tuple[str, ...] = ()
    #: dimensions that cannot split at all (every customer has the same value)
    unsplit: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Both dimensions split the customers (the 2 × 2 matrix is meaningful)."""
        return not self.unsplit

    def __repr__(self) -> str:
        rows = ", ".join(f"{r.segment}={r.n}" for r in self.table.itertuples())
        return (f"Segments({rows}; profit > {self.profit_cut:.4g}, "
                f"{self.tenure_col} >= {self.tenure_cut:.4g})")

    def metric(self) -> dict[str, dict[str, Any]]:
        """``{name: {n, share, profit_share}}``."""
        return {r.segment: {"n": int(r.n), "share": float(r.share), "profit_share": float(r.profit_share)}
                for r in self.table.itertuples()}


def loyalty_segments(values: pd.DataFrame, profit_col: str = "historical_clv",
                     tenure_col: str = "relationship_days", profit_cut: float | None = None,
                     tenure_cut: float | None = None) -> Segments:
    """True friends / butterflies / barnacles / strangers from profitability × relationship length.

    Profitable: ``profit > profit_cut``; long-term: ``tenure >= tenure_cut``.
    ``None`` cut points default to the medians. A median that does not split (e.g.
    median relationship length 0 when most customers bought once: everyone is
    "long-term") moves to the first cut that does — the next value above it for
    relationship length, the next value below it for profit — and is listed in
    ``moved``; a dimension where all customers are equal is listed in ``unsplit``.
    Missing profit counts as 0.
    """
    for col in (profit_col, tenure_col):
        if col not in values:
            raise ValueError(f"column {col!r} not in the value frame")
    p = values[profit_col].astype(float).fillna(0.0)
    d = values[tenure_col].astype(float).fillna(0.0)
    moved: list[str] = []
    unsplit: list[str] = []
    pc = float(p.median()) if profit_cut is None else float(profit_cut)
    tc = float(d.median()) if tenure_cut is None else float(tenure_cut)
    if p.nunique() < 2:
        unsplit.append("profit")
    elif profit_cut is None and not ((p > pc).any() and (p <= pc).any()):
        pc = float(p[p < pc].max()) if (p < pc).any() else pc  # the next value below: splits
        moved.append("profit")
    if d.nunique() < 2:
        unsplit.append("tenure")
    elif tenure_cut is None and not ((d >= tc).any() and (d < tc).any()):
        tc = float(d[d > tc].min()) if (d > tc).any() else tc  # the next value above: splits
        moved.append("tenure")
    profitable = (p > pc).to_numpy()
    long_term = (d >= tc).to_numpy()
    code = np.where(profitable, np.where(long_term, 0, 1), np.where(long_term, 2, 3))
    seg = pd.Series(pd.Categorical.from_codes(code, categories=list(SEGMENTS)), index=values.index,
                    name="segment")
    frame = pd.DataFrame({"segment": seg, "profit": p, "days": d})
    table = frame.groupby("segment", observed=False).agg(
        n=("profit", "size"), profit=("profit", "sum"), mean_profit=("profit", "mean"),
        mean_relationship_days=("days", "mean")).reindex(list(SEGMENTS))
    n = len(values)
    total = float(p.sum())
    table.insert(1, "share", table["n"] / n if n else np.nan)
    table.insert(3, "profit_share", table["profit"] / total if total else np.nan)
    table["n"] = table["n"].astype("int64")
    table = table.reset_index()
    table["segment"] = table["segment"].astype(str)
    return Segments(table=table, assignment=seg, profit_cut=pc, tenure_cut=tc, profit_col=profit_col,
                    tenure_col=tenure_col, moved=tuple(moved), unsplit=tuple(unsplit))


# --------------------------------------------------------------------------- 6. predictive CLV
class CLVNotEstimable(ValueError):
    """Predictive CLV cannot be estimated on this data; ``code`` is a translation key suffix
    (``pyramid.clv_reason.<code>``): ``no_purchases``, ``no_repeat``, ``no_spend``,
    ``no_period_data``, ``not_identified``. :meth:`reason` says it in plain words, so a
    :class:`~workbench.results.Skipped` section speaks for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def reason(self, lang: str = "en") -> str:
        """Why there is no predicted lifetime value, in ``lang``."""
        return t("pyramid.note.clv_skipped", lang, reason=t(f"pyramid.clv_reason.{self.code}", lang))


@dataclass(frozen=True)
class CLVResult:
    """Predictive CLV wired to a dataset (models from :mod:`workbench.clv`).

    ``customers``: per-customer ``frequency``, ``recency``, ``T``,
    ``monetary_value``, ``p_alive``, ``expected_purchases`` (horizon),
    ``expected_spend``, ``clv`` (discounted, × margin) and ``predicted_window_value``
    (undiscounted expected revenue over ``window_months``). When the purchase or
    spend model is not identified (:attr:`identified` false) these predictions are
    missing (NaN): the data cannot support the model and no CLV number is shown.
    """

    bgnbd: Any
    gamma_gamma: Any
    customers: pd.DataFrame = field(repr=False)
    holdout: Any
    holdout_calibration_end: dt.date | None
    holdout_end: dt.date | None
    calibration_end: dt.date
    time_unit: str
    horizon_months: int
    annual_discount_rate: float
    margin: float
    #: why the BG/NBD purchase model / Gamma-Gamma spend model is not identified (empty: it is)
    bgnbd_issues: tuple[str, ...] = ()
    gamma_gamma_issues: tuple[str, ...] = ()
    #: Gamma-Gamma's assumption (spend independent of frequency), checked on the repeat buyers
    spend_check: Any = None
    #: "order" (order_id mapped: distinct orders per customer and day) or "day" (purchase days)
    purchase_unit: str = "day"
    #: the period end asked for (``calibration_end`` is the last data date when the data end earlier)
    requested_end: dt.date | None = None
    #: BG/NBD fitted on the holdout's calibration period (e.g. CDNOW to 1997-09-30)
    holdout_bgnbd: Any = None
    #: why there is no holdout check (``""`` when there is one)
    holdout_reason: str = ""
    #: the holdout calibration end asked for (or chosen automatically), also when not run
    holdout_target_end: dt.date | None = None
    #: first transaction date (start of the data the model is fitted on)
    data_start: dt.date | None = None

    @property
    def identified(self) -> bool:
        """Both models identified: CLV numbers may be shown."""
        return not self.bgnbd_issues and not self.gamma_gamma_issues

    @property
    def data_ends_early(self) -> bool:
        """The data end before the requested end: the model is fitted up to the last data date."""
        return self.requested_end is not None and self.calibration_end < self.requested_end

    def __repr__(self) -> str:
        return (f"CLVResult({self.bgnbd!r}, {self.gamma_gamma!r}, holdout={self.holdout!r}, "
                f"n={len(self.customers)}, horizon={self.horizon_months}m, "
                f"discount={self.annual_discount_rate:.0%}/yr, margin={self.margin:.3f}, "
                f"identified={self.identified})")

    def join(self, values: pd.DataFrame) -> pd.DataFrame:
        """``values`` with ``clv``, ``p_alive`` and ``predicted_window_value`` (0 for non-buyers)."""
        if not self.identified:
            raise CLVNotEstimable("not_identified", "the purchase or spend model is not identified on this data")
        cols = ["clv", "p_alive", "expected_purchases", "predicted_window_value"]
        out = values.join(self.customers[cols], how="left")
        out.attrs = dict(values.attrs)
        out[["clv", "expected_purchases", "predicted_window_value"]] = (
            out[["clv", "expected_purchases", "predicted_window_value"]].fillna(0.0))
        return out

    def model_metric(self) -> dict[str, Any]:
        """Identification, the spend–frequency check and the purchase unit (no customer data)."""
        return {"identified": self.identified, "bgnbd_issues": list(self.bgnbd_issues),
                "gamma_gamma_issues": list(self.gamma_gamma_issues),
                "spend_frequency": self.spend_check.to_dict() if self.spend_check is not None else None,
                "purchase_unit": self.purchase_unit, "fit_end": self.calibration_end,
                "requested_end": self.requested_end, "n": int(self.bgnbd.n) if self.bgnbd is not None else 0,
                "n_repeat": int((self.customers["frequency"] > 0).sum())}

    def holdout_metric(self) -> dict[str, Any] | None:
        if self.holdout is None:
            return None
        h = self.holdout
        tbl = h.table.reset_index()
        out = {"calibration_end": self.holdout_calibration_end, "holdout_end": self.holdout_end,
               "n": h.n, "mae": h.mae, "rmse": h.rmse, "correlation": h.correlation,
               "total_actual": h.total_actual, "total_predicted": h.total_predicted,
               "by_frequency": [{"frequency": str(r.frequency), "n": int(r.n), "actual": float(r.actual),
                                 "predicted": float(r.predicted)} for r in tbl.itertuples()]}
        if self.holdout_bgnbd is not None:
            out["bgnbd"] = self.holdout_bgnbd.to_dict()
            out["bgnbd_issues"] = list(self.holdout_bgnbd.identification_issues())
        return out


def _month_end(day: dt.date) -> dt.date:
    return _add_months(day.replace(day=1), 1) - dt.timedelta(days=1)


def default_calibration_end(first: dt.date, end: dt.date, holdout_months: int = 6) -> dt.date:
    """End of the month ``holdout_months`` before ``end``, but keep at least half the data for calibration."""
    cand = _month_end(_add_months(end.replace(day=1), -holdout_months))
    mid = first + (end - first) / 2
    return max(cand, mid) if mid < end else cand


def predict_clv(ds: Any, end: Any, *, calibration_end: Any = "", time_unit: str = "W",
                horizon_months: int = 12, annual_discount_rate: float = 0.10, margin: float | None = None,
                window_months: int | str = 12, holdout_months: int = 6,
                count_orders: bool | None = None, period_start: Any = None) -> CLVResult:
    """Fit BG/NBD + Gamma-Gamma on purchases up to ``end`` and predict CLV per customer.

    Holdout validation first calibrates on purchases up to ``calibration_end``
    (``""``: :func:`default_calibration_end`; any date inside the data otherwise,
    independent of the report period) and predicts ``(calibration_end, end]``.
    The CLV models are then refitted on everything up to ``end``. When the data
    end before ``end`` (an export ending mid-month), the last data date is used
    instead (``data_ends_early``). The discount rate is annual, converted to
    monthly ``(1+d)^(1/12) − 1``; ``margin`` (default: the data's profit /
    revenue) turns spend into profit.

    ``period_start``: when the data end before it (an empty period), raise
    :class:`CLVNotEstimable` (``no_period_data``) instead of fitting to an old data end.

    ``count_orders`` (default: ``order_id`` mapped) makes a purchase one order
    (distinct ``order_id`` per customer and day) instead of one purchase day.

    A fit at the boundary of the parameter space or without finite standard
    errors (see :meth:`workbench.clv.BetaGeoFit.identification_issues`) is
    returned with ``identified`` false and no predictions. Raises
    :class:`CLVNotEstimable` when there is nothing to fit (no purchases, no
    repeat purchases, no positive repeat spend).
    """
    from workbench import clv

    ds.require("transactions", "customer_id", "date", "amount", reason="predicted lifetime value")
    requested = _date(end)
    lo, hi = ds.date_range("transactions", "date")
    if lo is None or hi is None:
        raise CLVNotEstimable("no_purchases", "no transactions")
    first, last = _date(lo), _date(hi)
    if period_start is not None and last < _date(period_start):
        raise CLVNotEstimable("no_period_data", f"the data end on {last}, before the period starts")
    end = min(requested, last)
    if end < first:
        raise CLVNotEstimable("no_purchases", f"no transactions up to {requested}")
    if count_orders is None:
        count_orders = ds.has("transactions", "order_id")
    order_col = "order_id" if count_orders and ds.has("transactions", "order_id") else None
    tx = ds.table("transactions")
    tx = tx.filter(tx.date <= end)
    if margin is None or not margin > 0:
        if ds.has("transactions", "margin"):
            r = ds.sql(f"SELECT sum(margin) / NULLIF(sum(amount), 0) FROM transactions "
                       f"WHERE date <= DATE '{end.isoformat()}'").iloc[0, 0]
            margin = float(r) if r is not None and np.isfinite(r) else 1.0
        else:
            margin = 1.0
    holdout = hold_fit = None
    hold_reason = ""
    cal_end = _date(calibration_end) if calibration_end else default_calibration_end(first, end, holdout_months)
    hold_end = None
    if not first < cal_end < end:
        hold_reason = "outside"
    else:
        try:
            ch = clv.calibration_holdout(tx, cal_end, end, time_unit, order_col=order_col, data_end=end)
            m = clv.BetaGeoModel().fit(ch["frequency"], ch["recency"], ch["T"])
            hold_fit = m.result_
            if hold_fit.identified:
                holdout = clv.holdout_validation(m, ch)
                hold_end = end
            else:
                hold_reason = "not_identified"
        except ValueError:
            hold_reason = "too_little"
    try:
        # the data run to `end` (capped at their last date above); no purchase in its last days is legal
        summ = clv.rfm_summary(tx, end, time_unit, order_col=order_col, data_end=end)
    except ValueError as exc:
        raise CLVNotEstimable("no_purchases", str(exc)) from exc
    if not (summ["frequency"] > 0).any():
        raise CLVNotEstimable("no_repeat", "no customer bought more than once: the purchase model needs repeat "
                                           "purchases")
    bg = clv.BetaGeoModel().fit(summ["frequency"], summ["recency"], summ["T"])
    rep = summ[(summ["frequency"] > 0) & (summ["monetary_value"] > 0)]
    if rep.empty:
        raise CLVNotEstimable("no_spend", "no repeat buyer has a positive mean spend")
    gg = clv.GammaGammaModel().fit(rep["frequency"], rep["monetary_value"])
    spend_check = clv.spend_frequency_check(rep["frequency"], rep["monetary_value"])
    bg_issues = bg.result_.identification_issues()
    gg_issues = gg.result_.identification_issues()
    out = summ[["frequency", "recency", "T", "monetary_value"]].copy()
    pred_cols = ["p_alive", "expected_purchases", "expected_spend", "clv", "predicted_window_value"]
    if bg_issues or gg_issues:
        for col in pred_cols:
            out[col] = np.nan
    else:
        monthly = (1 + annual_discount_rate) ** (1 / 12) - 1
        val = clv.customer_lifetime_value(bg, gg, summ, horizon=int(horizon_months), discount_rate=monthly,
                                          time_unit=time_unit, margin=margin)
        win_months = int(window_months) if window_months != ALL else int(horizon_months)
        win = clv.customer_lifetime_value(bg, gg, summ, horizon=win_months, discount_rate=0.0,
                                          time_unit=time_unit, margin=1.0)
        out["p_alive"] = np.asarray(bg.probability_alive(summ["frequency"], summ["recency"], summ["T"]))
        out = out.join(val)
        out["predicted_window_value"] = win["clv"]
    out.index = out.index.astype(str)
    return CLVResult(bgnbd=bg.result_, gamma_gamma=gg.result_, customers=out, holdout=holdout,
                     holdout_calibration_end=cal_end if holdout is not None else None, holdout_end=hold_end,
                     calibration_end=end, time_unit=time_unit, horizon_months=int(horizon_months),
                     annual_discount_rate=float(annual_discount_rate), margin=float(margin),
                     bgnbd_issues=bg_issues, gamma_gamma_issues=gg_issues, spend_check=spend_check,
                     purchase_unit="order" if order_col else "day", requested_end=requested,
                     holdout_bgnbd=hold_fit, holdout_reason=hold_reason, holdout_target_end=cal_end,
                     data_start=first)


# --------------------------------------------------------------------------- 7. strategy
def strategy_table(pyramid: Pyramid, segments: Segments | None, lang: str = "en", currency: str = "CNY",
                   upgrade: UpgradeCandidates | None = None) -> pd.DataFrame:
    """Size, value share and a short action per tier and per segment, in ``lang``.

    Columns (translated): group, customers, share of customers, share of value (layers: the
    pyramid's measure; segments: profit), action (a few words, so the table stays narrow;
    the full DOMAIN.md action is the segment finding's ``action``). ``currency`` is unused
    (kept for callers).
    """
    rows = []
    for r in pyramid.table.itertuples():
        action = t(f"pyramid.action_short.{'key' if r.Index < KEY_TIERS else 'ordinary'}", lang)
        if upgrade is not None and r.Index >= KEY_TIERS:
            n_up = int((upgrade.table["tier"] == r.tier).sum())
            if n_up:
                action += t("pyramid.action_short.upgrade_count", lang, n=fmt_int(n_up, lang))
        rows.append({"group": tier_label(r.tier, lang), "n": fmt_int(r.customers, lang),
                     "share": fmt_pct(r.customer_share, lang), "value_share": fmt_pct(r.value_share, lang),
                     "action": action})
    if segments is not None:
        for r in segments.table.itertuples():
            rows.append({"group": t(f"pyramid.segment.{r.segment}", lang), "n": fmt_int(r.n, lang),
                         "share": fmt_pct(r.share, lang), "value_share": fmt_pct(r.profit_share, lang),
                         "action": t(f"pyramid.action_short.{r.segment}", lang)})
    cols = {k: t(f"pyramid.strategy.col.{k}", lang) for k in ("group", "n", "share", "value_share", "action")}
    return pd.DataFrame(rows, columns=list(cols)).rename(columns=cols)


# --------------------------------------------------------------------------- figures
TIER_COLORS = ("#1f5fa8", "#3a7fc4", "#8fb5dd", "#d6e3f1")
SEGMENT_COLORS = {"true_friends": "#3a9d5d", "butterflies": "#e07b39", "barnacles": "#7d5ba6",
                  "strangers": "#9aa0a3"}


def figure_pyramid(pyramid: Pyramid, lang: str = "en", currency: str = "CNY") -> go.Figure:
    """The pyramid: centred horizontal bars, widest at the bottom.

    Each layer's width is the share of customers in that layer *or above*
    (1%, 20%, 50%, 100% by default), so the shape is a pyramid whatever the data;
    the labels give the layer's own customers and value share.
    """
    tb = pyramid.table
    cum = tb["customer_share"].cumsum().to_numpy()
    labels = [tier_label(x, lang) for x in tb["tier"]]
    texts = [t("pyramid.fig.layer_text", lang, tier=lab, customers=fmt_int(r.customers, lang),
               cshare=fmt_pct(r.customer_share, lang), vshare=fmt_pct(r.value_share, lang))
             for lab, r in zip(labels, tb.itertuples(), strict=True)]
    colors = [TIER_COLORS[i % len(TIER_COLORS)] for i in range(len(tb))]
    hover = [t("pyramid.fig.layer_hover", lang, tier=lab, customers=fmt_int(r.customers, lang),
               cshare=fmt_pct(r.customer_share, lang), value=fmt_money(r.value, lang, currency),
               vshare=fmt_pct(r.value_share, lang), mean=fmt_money(r.mean_value, lang, currency),
               median=fmt_money(r.median_value, lang, currency))
             for lab, r in zip(labels, tb.itertuples(), strict=True)]
    width = np.maximum(cum, 0.04)
    fig = go.Figure(go.Bar(
        y=labels, x=width, base=-width / 2, orientation="h", marker_color=colors,
        marker_line=dict(color="white", width=1), hovertext=hover, hoverinfo="text", width=0.96))
    # the layer name is in the label beside each bar (no tick labels): the text keeps the plot's
    # whole width, so it is not cut at 390 px
    for lab, w, text in zip(labels, width, texts, strict=True):
        fig.add_annotation(x=w / 2 + 0.03, y=lab, text=text, showarrow=False, xanchor="left", align="left",
                           font=dict(size=11))
    fig.update_layout(
        title=t("pyramid.fig.pyramid_title", lang, measure=t(f"pyramid.measure.{pyramid.measure}", lang)),
        showlegend=False, bargap=0.02, height=440, plot_bgcolor="white", margin=dict(l=10, r=10, t=60, b=20))
    fig.update_yaxes(categoryorder="array", categoryarray=labels[::-1], showgrid=False, ticks="",
                     showticklabels=False)
    fig.update_xaxes(visible=False, range=[-0.52, 1.3])
    return fig


def figure_tier_values(pyramid: Pyramid, lang: str = "en") -> go.Figure:
    """Customer share vs value share per tier (grouped horizontal bars, labels never rotated), the 80/20 picture."""
    tb = pyramid.table
    labels = [tier_label(x, lang) for x in tb["tier"]]
    top = float(np.nanmax(np.r_[tb["customer_share"].to_numpy(float), tb["value_share"].to_numpy(float), 0.0]))
    fig = go.Figure([
        go.Bar(y=labels, x=tb["customer_share"], name=t("pyramid.fig.customer_share", lang), orientation="h",
               text=[fmt_pct(v, lang) for v in tb["customer_share"]], textposition="outside", cliponaxis=False),
        go.Bar(y=labels, x=tb["value_share"], name=t("pyramid.fig.value_share", lang), orientation="h",
               text=[fmt_pct(v, lang) for v in tb["value_share"]], textposition="outside", cliponaxis=False),
    ])
    fig.update_layout(title=t("pyramid.fig.tier_values_title", lang), barmode="group", height=360,
                      margin=dict(t=90, r=40), legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    fig.update_yaxes(categoryorder="array", categoryarray=labels[::-1], automargin=True)
    fig.update_xaxes(tickformat=".0%", range=[min(0.0, float(np.nanmin(tb["value_share"]))), max(top, 0.01) * 1.25])
    return fig


def figure_lorenz(values: Any, result: GiniResult | None = None, lang: str = "en") -> go.Figure:
    """Lorenz curve (value clipped at 0) with the equality line and the top-20% point."""
    lc = lorenz_curve(values)
    top20 = top_share(np.clip(np.asarray(values, dtype=float), 0, None), 0.2)
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=t("pyramid.fig.equality", lang),
                   line=dict(color="#999", dash="dash")),
        go.Scatter(x=lc["customer_share"], y=lc["value_share"], mode="lines", name=t("pyramid.fig.lorenz", lang),
                   line=dict(width=3), fill="tonexty", fillcolor="rgba(31,95,168,0.12)"),
        go.Scatter(x=[0.8], y=[1 - top20], mode="markers+text", name=t("pyramid.fig.top20", lang),
                   text=[t("pyramid.fig.top20_text", lang, share=fmt_pct(top20, lang))],
                   textposition="top left", marker=dict(size=10, color="#c8413b")),
    ])
    g = result.gini if result is not None else gini(values)
    title = t("pyramid.fig.lorenz_title", lang, gini=fmt_num(g, lang, 3))
    if result is not None and np.isfinite(result.low):
        title += t("pyramid.fig.ci", lang, low=fmt_num(result.low, lang, 3), high=fmt_num(result.high, lang, 3))
    fig.update_layout(title=title, xaxis_title=t("pyramid.fig.cum_customers", lang),
                      yaxis_title=t("pyramid.fig.cum_value", lang), height=460)
    fig.update_layout(legend=dict(orientation="v", x=0.02, y=0.98, xanchor="left", yanchor="top"))
    fig.update_xaxes(tickformat=".0%", range=[0, 1], constrain="domain")
    fig.update_yaxes(tickformat=".0%", range=[0, 1], scaleanchor="x", constrain="domain")
    return fig


def figure_migration(migration: Migration, lang: str = "en") -> go.Figure:
    """Sankey of tier migration (earlier window left, later window right)."""
    c = migration.counts
    left = [_state_label(s, lang) for s in c.index]  # earlier window left, now right (said in the title)
    right = [_state_label(s, lang) for s in c.columns]
    src, tgt, val = [], [], []
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            if c.iat[i, j] > 0:
                src.append(i)
                tgt.append(len(left) + j)
                val.append(int(c.iat[i, j]))
    colors = list(TIER_COLORS) + ["#b0b0b0"]
    node_colors = [colors[min(i, len(colors) - 1)] for i in range(len(left))]
    node_colors += [colors[min(j, len(colors) - 1)] for j in range(len(right))]
    fig = go.Figure(go.Sankey(
        node=dict(label=left + right, color=node_colors, pad=14, thickness=16),
        link=dict(source=src, target=tgt, value=val, color="rgba(120,120,120,0.25)")))
    fig.update_layout(title=t("pyramid.fig.migration_title", lang, up=fmt_int(migration.up, lang),
                              down=fmt_int(migration.down, lang)), height=480, margin=dict(t=110, l=10, r=10))
    return fig


def _state_label(state: str, lang: str) -> str:
    if state in (NEW, GONE):
        return t(f"pyramid.state.{state}", lang)
    return tier_label(state, lang)


def figure_segments(segments: Segments, lang: str = "en", currency: str = "CNY") -> go.Figure:
    """2 × 2 matrix: relationship length (x) × profitability (y), counts and profit shares."""
    tb = segments.table.set_index("segment")
    pos = {"true_friends": (1, 1), "butterflies": (0, 1), "barnacles": (1, 0), "strangers": (0, 0)}
    fig = go.Figure()
    for seg, (x, y) in pos.items():
        r = tb.loc[seg]
        fig.add_shape(type="rect", x0=x, x1=x + 1, y0=y, y1=y + 1, line=dict(color="white", width=3),
                      fillcolor=SEGMENT_COLORS[seg], opacity=0.35 + 0.5 * float(min(max(r["share"], 0), 1)))
        fig.add_annotation(
            x=x + 0.5, y=y + 0.5, showarrow=False, align="center", font=dict(size=11),
            text=t("pyramid.fig.segment_text", lang, name=t(f"pyramid.segment.{seg}", lang),
                   n=fmt_int(r["n"], lang), share=fmt_pct(r["share"], lang),
                   pshare=fmt_pct(r["profit_share"], lang), action=t(f"pyramid.action_short.{seg}", lang)))
    fig.add_trace(go.Scatter(x=[0, 2], y=[0, 2], mode="markers", marker=dict(opacity=0), hoverinfo="skip",
                             showlegend=False))
    fig.update_xaxes(range=[0, 2], tickvals=[0.5, 1.5], showgrid=False,
                     ticktext=[t("pyramid.fig.short_term", lang), t("pyramid.fig.long_term", lang)],
                     title=t("pyramid.fig.relationship_axis", lang,
                             cut=fmt_int(segments.tenure_cut, lang)))
    fig.update_yaxes(range=[0, 2], tickvals=[0.5, 1.5], showgrid=False,
                     ticktext=[t("pyramid.fig.low_profit", lang), t("pyramid.fig.high_profit", lang)],
                     title=t("pyramid.fig.profit_axis", lang, cut=fmt_money(segments.profit_cut, lang, currency)))
    fig.update_layout(title=t("pyramid.fig.segments_title", lang), height=480)
    return fig


def figure_clv_distribution(clv_values: Any, lang: str = "en", currency: str = "CNY") -> go.Figure:
    """Histogram of predicted CLV (the top 1% pooled at the 99th percentile for readability; 50 bins)."""
    v = np.asarray(clv_values, dtype=float)
    v = v[np.isfinite(v)]
    cap = float(np.quantile(v, 0.99)) if v.size else 0.0
    # binned here, not by plotly: the page carries 50 bars instead of every customer's value
    counts, edges = np.histogram(np.minimum(v, cap), bins=50) if v.size else (np.zeros(0), np.zeros(1))
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                           marker_color="#1f5fa8", marker_line_width=0))
    fig.update_layout(title=t("pyramid.fig.clv_title", lang, median=fmt_money(np.median(v) if v.size else None,
                                                                               lang, currency),
                              total=fmt_money(v.sum(), lang, currency)),
                      xaxis_title=t("pyramid.fig.clv_axis", lang, cap=fmt_money(cap, lang, currency)),
                      yaxis_title=t("pyramid.fig.customers", lang), bargap=0.02)
    return fig


def figure_holdout(result: CLVResult, lang: str = "en") -> go.Figure:
    """Mean predicted vs actual holdout purchases by calibration frequency group."""
    h = result.holdout
    fig = go.Figure()
    if h is None:
        fig.update_layout(title=t("pyramid.fig.holdout_none", lang))
        return fig
    tb = h.table.reset_index()
    x = tb["frequency"].astype(str)
    fig.add_trace(go.Bar(x=x, y=tb["actual"], name=t("pyramid.fig.actual", lang)))
    fig.add_trace(go.Scatter(x=x, y=tb["predicted"], name=t("pyramid.fig.predicted", lang),
                             mode="lines+markers", line=dict(width=3)))
    fig.update_layout(title=t("pyramid.fig.holdout_title", lang, mae=fmt_num(h.mae, lang, 2),
                              corr=fmt_num(h.correlation, lang, 2)),
                      xaxis_title=t("pyramid.fig.freq_axis", lang),
                      yaxis_title=t("pyramid.fig.holdout_axis", lang))
    return fig


# --------------------------------------------------------------------------- notebook helpers
def comparison_end(end: Any, comparison_period: str = "", months: int | str = 12) -> dt.date:
    """End of the comparison value window.

    ``""`` = the previous period of the value window's own length: the window of
    ``months`` months ending the day before the current window starts (for
    ``months="all"``: the history up to twelve months earlier). Otherwise the end
    of ``comparison_period`` (any :func:`workbench.periods.parse_period` form).
    """
    if comparison_period:
        from workbench.periods import parse_period

        return parse_period(comparison_period, today=_date(end) + dt.timedelta(days=1)).end
    months = window_months(months)
    start, _ = value_window(end, 12 if months == ALL else months)
    return start - dt.timedelta(days=1)


def effective_end(ds: Any, end: Any, start: Any = None) -> dt.date:
    """``end``, or the last transaction date when the data end within the period ``start``–``end``
    (an export ending mid-month): value windows then stop where the data stop instead of counting
    days without data. Data ending before ``start`` (an empty period) leave ``end`` unchanged."""
    end = _date(end)
    if not ds.has("transactions", "date"):
        return end
    last = ds.date_range("transactions", "date")[1]
    if last is None or (start is not None and _date(last) < _date(start)):
        return end
    return min(end, _date(last))


def predicted_measure(values: pd.DataFrame, measure: str, margin: float) -> pd.Series:
    """Predicted value for the next window in the unit of ``measure`` (needs :meth:`CLVResult.join`).

    revenue → expected revenue; profit → × ``margin``; historical_clv → today's value +
    expected profit; clv → the predicted CLV itself.
    """
    w = values["predicted_window_value"].astype(float)
    if measure == "revenue":
        return w
    if measure == "profit":
        return w * margin
    if measure == "historical_clv":
        return values["historical_clv"].astype(float) + w * margin
    return values["clv"].astype(float)


def _rename(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    return df.rename(columns={c: t(f"pyramid.col.{c}", lang) for c in df.columns})


def tier_table(pyramid: Pyramid, lang: str = "en", currency: str = "CNY") -> pd.DataFrame:
    """The pyramid table formatted for display (strings, translated headers, five narrow columns)."""
    tb = pyramid.table
    out = pd.DataFrame({
        "tier": [tier_label(x, lang) for x in tb["tier"]],
        "customers": [fmt_int(x, lang) for x in tb["customers"]],
        "customer_share": [fmt_pct(x, lang) for x in tb["customer_share"]],
        "value": [fmt_money(x, lang, currency) for x in tb["value"]],
        "value_share": [fmt_pct(x, lang) for x in tb["value_share"]],
    })
    return _rename(out, lang)


def value_summary(values: pd.DataFrame, lang: str = "en", currency: str = "CNY") -> pd.DataFrame:
    """Totals, means and medians of the value-per-customer columns (display frame)."""
    money = {"revenue", "profit", "historical_clv"}
    rows = []
    for col in ("revenue", "profit", "purchases", "categories", "refunds", "tenure_days", "recency_days",
                "historical_clv"):
        if col not in values or values[col].isna().all():
            continue
        x = values[col].astype(float)
        f = (lambda v: fmt_money(v, lang, currency)) if col in money else (lambda v: fmt_num(v, lang, 1))
        total = fmt_money(x.sum(), lang, currency) if col in money else (
            fmt_int(x.sum(), lang) if col in ("purchases", "refunds") else "–")
        rows.append({"measure": t(f"pyramid.vrow.{col}", lang), "total": total, "mean": f(x.mean()),
                     "median": f(x.median())})
    return _rename(pd.DataFrame(rows, columns=["measure", "total", "mean", "median"]), lang)


def segment_table(segments: Segments, lang: str = "en", currency: str = "CNY") -> pd.DataFrame:
    """The segment table formatted for display: segment, customers, share, profit share and a short
    action (five narrow columns; the mean profit and relationship length are in ``segments.table``)."""
    tb = segments.table
    out = pd.DataFrame({
        "segment": [t(f"pyramid.segment.{s}", lang) for s in tb["segment"]],
        "customers": [fmt_int(x, lang) for x in tb["n"]],
        "share": [fmt_pct(x, lang) for x in tb["share"]],
        "profit_share": [fmt_pct(x, lang) for x in tb["profit_share"]],
    })
    out = _rename(out, lang)
    out[t("pyramid.strategy.col.action", lang)] = [t(f"pyramid.action_short.{s}", lang) for s in tb["segment"]]
    return out


def model_table(result: CLVResult, lang: str = "en") -> pd.DataFrame:
    """BG/NBD and Gamma-Gamma parameters with standard errors (display frame)."""
    rows = []
    for model, fit, names in (("bgnbd", result.bgnbd, ("r", "alpha", "a", "b")),
                              ("gamma_gamma", result.gamma_gamma, ("p", "q", "v"))):
        for p in names:
            rows.append({"model": t(f"pyramid.model.{model}", lang), "parameter": p, "estimate": fmt_num(getattr(fit, p), lang, 4),
                         "se": fmt_num(fit.se.get(p), lang, 4)})
    return _rename(pd.DataFrame(rows), lang)


def holdout_table(result: CLVResult, lang: str = "en") -> pd.DataFrame:
    """Predicted vs actual holdout purchases by calibration frequency (display frame)."""
    if result.holdout is None:
        return pd.DataFrame()
    tb = result.holdout.table.reset_index()
    out = pd.DataFrame({"frequency": tb["frequency"].astype(str), "customers": [fmt_int(x, lang) for x in tb["n"]],
                        "actual": [fmt_num(x, lang, 2) for x in tb["actual"]],
                        "predicted": [fmt_num(x, lang, 2) for x in tb["predicted"]]})
    return _rename(out, lang)


def migration_table(migration: Migration, lang: str = "en") -> pd.DataFrame:
    """Transition counts with row shares in brackets (display frame)."""
    c, s = migration.counts, migration.shares
    out = pd.DataFrame(
        {_state_label(col, lang): [f"{fmt_int(c.at[r, col], lang)} ({fmt_pct(s.at[r, col], lang, 0)})"
                                   if c.loc[r].sum() else "–" for r in c.index] for col in c.columns})
    out.insert(0, t("pyramid.col.before", lang), [_state_label(r, lang) for r in c.index])
    return out


def upgrade_table(upgrade: UpgradeCandidates, lang: str = "en", currency: str = "CNY", limit: int = 20,
                  pseudonymous: bool = True) -> pd.DataFrame:
    """The first ``limit`` upgrade candidates for display.

    ``pseudonymous=True`` (always in report mode) shows keyed pseudonyms
    (:func:`workbench.privacy.pseudonymise`) instead of customer ids; names and
    contact details are never part of the table.
    """
    tb = upgrade.table.head(limit)
    if pseudonymous:
        from workbench.privacy import pseudonymise

        ids, id_col = list(pseudonymise(pd.Series(tb.index, dtype=object))), "pseudonym"
    else:
        ids, id_col = list(tb.index), "customer_id"
    growth = [t("pyramid.reason.new_growth", lang) if np.isinf(g) else fmt_pct(g, lang, 0)
              for g in tb["growth"].fillna(np.nan)]
    out = pd.DataFrame({
        id_col: ids,
        "tier": [tier_label(x, lang) for x in tb["tier"]],
        "value": [fmt_money(x, lang, currency) for x in tb["value"]],
        "predicted_value": [fmt_money(x, lang, currency) for x in tb["predicted_value"]],
        "growth": growth,
        "reason": [t(f"pyramid.reason.{r}", lang) for r in tb["reason"]],
    })
    return _rename(out, lang)


def figure_message(text: str) -> go.Figure:
    """An empty figure carrying a message (e.g. a widget setting that cannot be drawn)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=200)
    return fig


def movers_table(migration: Migration, lang: str = "en", limit: int = 20, pseudonymous: bool = True,
                 values: pd.Series | None = None, currency: str = "CNY") -> pd.DataFrame:
    """Customers who moved up (first) or down a layer, for display; pseudonyms in reports.

    Sorted by direction (up first), then by the size of the move and ``values``
    (current value) when given. Customer-level: never recorded in metrics.
    """
    mv = migration.moves[migration.moves["direction"] != "same"].copy()
    if mv.empty:
        return pd.DataFrame()
    tiers = {name: i for i, name in enumerate(migration.counts.columns)}
    mv["steps"] = (mv["before"].map(tiers) - mv["after"].map(tiers)).abs()
    mv["value"] = values.reindex(mv.index).to_numpy() if values is not None else np.nan
    mv["up"] = mv["direction"] == "up"
    mv = mv.sort_values(["up", "steps", "value"], ascending=False).head(limit)
    if pseudonymous:
        from workbench.privacy import pseudonymise

        ids, id_col = list(pseudonymise(pd.Series(mv.index, dtype=object))), "pseudonym"
    else:
        ids, id_col = list(mv.index), "customer_id"
    out = pd.DataFrame({
        id_col: ids,
        "before": [tier_label(x, lang) for x in mv["before"]],
        "tier": [tier_label(x, lang) for x in mv["after"]],
        "direction": [t(f"pyramid.direction.{d}", lang) for d in mv["direction"]],
        "value": [fmt_money(x, lang, currency) for x in mv["value"]],
    })
    return _rename(out, lang)


def parse_shares(value: Any) -> list[float]:
    """Tier shares from a notebook parameter: a list, or text such as ``"[0.05, 0.15, 0.3, 0.5]"`` / ``"5,15,30,50"``.

    Percentages (values adding up to 100) are accepted and scaled to shares.
    """
    if isinstance(value, str):
        parts = [p for p in value.strip().strip("[]()").replace(";", ",").split(",") if p.strip()]
        value = [float(p) for p in parts]
    shares = [float(x) for x in value]
    if shares and abs(sum(shares) - 100) < 1e-6:
        shares = [x / 100 for x in shares]
    return list(_check_shares(shares))


# --------------------------------------------------------------------------- results (one per notebook section)
# Each section of notebooks/02_customer_pyramid.ipynb is one function below returning a
# workbench.results.Result: the numbers, and how they read (findings with their evidence and a
# "how computed" note, figures, tables, KPIs, metrics.json entries). The shared inputs (value per
# customer now and in the comparison window, the CLV fit) are computed once by :func:`value_base`.
@dataclass(frozen=True)
class ValueOptions:
    """The notebook's customer-value parameters, checked and normalised (hashable, so
    ``nb.data`` can memoise :func:`value_base` on them)."""

    months: int | str = 12
    comparison_period: str = ""
    shares: tuple[float, ...] = DEFAULT_SHARES
    measure: str = "revenue"
    margin_rate: float | None = None
    acquisition_cost: float = 0.0
    retention_cost_per_year: float = 0.0
    profit_cut: float | None = None
    tenure_cut: float | None = None
    calibration_end: str = ""
    time_unit: str = "W"
    horizon_months: int = 12
    annual_discount_rate: float = 0.10
    n_boot: int = 200
    seed: int = 42


def _cut(value: Any) -> float | None:
    return float(value) if value is not None and str(value).strip() else None


def value_options(*, months: Any = 12, comparison_period: str = "", shares: Any = DEFAULT_SHARES,
                  measure: str = "revenue", margin_rate: Any = 0.0, acquisition_cost: Any = 0.0,
                  retention_cost_per_year: Any = 0.0, profit_cut: Any = "", tenure_cut: Any = "",
                  calibration_end: Any = "", time_unit: str = "W", horizon_months: Any = 12,
                  annual_discount_rate: Any = 0.10, n_boot: Any = 200, seed: Any = 42) -> ValueOptions:
    """:class:`ValueOptions` from notebook parameters (text or numbers; ``""`` = automatic)."""
    return ValueOptions(
        months=window_months(months), comparison_period=str(comparison_period or ""),
        shares=tuple(parse_shares(shares)), measure=str(measure), margin_rate=float(margin_rate or 0) or None,
        acquisition_cost=float(acquisition_cost or 0), retention_cost_per_year=float(retention_cost_per_year or 0),
        profit_cut=_cut(profit_cut), tenure_cut=_cut(tenure_cut), calibration_end=str(calibration_end or ""),
        time_unit=str(time_unit), horizon_months=int(horizon_months),
        annual_discount_rate=float(annual_discount_rate), n_boot=int(n_boot), seed=int(seed))


class _Window(dict):
    """A value window in a reason's values (formatted as "start – end")."""


class NotApplicable(Exception):
    """A section the data cannot support, with its reason as a translation key (speaks via :meth:`reason`)."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values

    def reason(self, lang: str = "en") -> str:
        def fmt(v: Any) -> Any:
            if isinstance(v, _Window):
                return f"{fmt_date(v['start'], lang)} – {fmt_date(v['end'], lang)}"
            if isinstance(v, dt.date):
                return fmt_date(v, lang)
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                return fmt_int(v, lang)
            if isinstance(v, str) and v.startswith("pyramid."):
                return t(v, lang)
            return v

        return t(self.key, lang, **{k: fmt(v) for k, v in self.values.items()})


@dataclass(frozen=True, eq=False)
class ValueBase:
    """What every customer-value section reads (see :func:`value_base`); not shown itself."""

    opts: ValueOptions
    currency: str
    end: dt.date
    period_start: dt.date | None
    value_end: dt.date
    cmp_end: dt.date
    values: pd.DataFrame | None = None
    before: pd.DataFrame | None = None
    missing: BaseException | None = None
    clv: CLVResult | None = None
    clv_error: BaseException | None = None
    measure: str = "revenue"
    measure_fallback: bool = False

    @property
    def window(self) -> dict[str, Any]:
        return dict(self.values.attrs) if self.values is not None else {}

    def window_text(self, lang: str, attrs: dict[str, Any] | None = None) -> str:
        a = attrs if attrs is not None else self.window
        return f"{fmt_date(a['start'], lang)} – {fmt_date(a['end'], lang)}"

    def based(self, text: str, n: int, lang: str, attrs: dict[str, Any] | None = None) -> str:
        """A finding with its base: number of customers and the value window."""
        return text + t("pyramid.base", lang, n=fmt_int(n, lang), window=self.window_text(lang, attrs))

    def money(self, x: Any, lang: str) -> str:
        return fmt_money(x, lang, self.currency)

    def measure_label(self, lang: str) -> str:
        return t(f"pyramid.measure.{self.measure}", lang)

    @property
    def has_value(self) -> bool:
        return self.values is not None and bool(self.values[self.measure].fillna(0).ne(0).any())

    def need_value(self) -> None:
        """Raise (→ a skipped section with its reason) when there is no value to tier."""
        if self.missing is not None:
            raise self.missing
        if not self.has_value:
            raise NotApplicable("pyramid.find.no_value", measure=f"pyramid.measure.{self.measure}",
                                window=_Window(self.window), n=len(self.values))

    @functools.cached_property
    def pyramid(self) -> Pyramid:
        return customer_pyramid(self.values, self.measure, self.opts.shares)

    @functools.cached_property
    def segments(self) -> Segments:
        return loyalty_segments(self.values, profit_cut=self.opts.profit_cut, tenure_cut=self.opts.tenure_cut)

    @property
    def clv_usable(self) -> bool:
        return self.clv is not None and self.clv.identified

    @functools.cached_property
    def upgrade(self) -> UpgradeCandidates:
        predicted = predicted_measure(self.values, self.measure, self.clv.margin) if self.clv_usable else None
        previous = self.before[self.measure] if self.before is not None and self.measure in self.before else None
        return upgrade_candidates(self.pyramid, self.values[self.measure], predicted, previous)


def value_base(ds: Any, end: Any, period_start: Any, opts: ValueOptions) -> ValueBase:
    """Value per customer at ``end`` and at the comparison end, and the CLV fit, for the sections below.

    ``end`` is the analysis date (``nb.analysis_date``); ``period_start`` the report period's
    start (a data end inside the period shortens the value window; the CLV model is not fitted to
    data that end before the period). Nothing raises for missing data: the reason is kept
    (``missing``, ``clv_error``) and each section says it.
    """
    from workbench.engine import MissingDataError

    end = _date(end)
    start = _date(period_start) if period_start is not None else None
    value_end = effective_end(ds, end, start)
    cmp_end = comparison_end(end, opts.comparison_period, opts.months)
    base = dict(opts=opts, currency=getattr(ds, "currency", "CNY"), end=end, period_start=start,
                value_end=value_end, cmp_end=cmp_end)
    costs = dict(margin_rate=opts.margin_rate, acquisition_cost=opts.acquisition_cost,
                 retention_cost_per_year=opts.retention_cost_per_year)
    try:
        values = customer_value(ds, value_end, opts.months, **costs)
    except MissingDataError as exc:
        return ValueBase(**base, missing=exc)
    try:
        before = customer_value(ds, cmp_end, opts.months, **costs)
    except MissingDataError:
        before = None
    clv_options = dict(calibration_end=opts.calibration_end, time_unit=opts.time_unit,
                       horizon_months=opts.horizon_months, annual_discount_rate=opts.annual_discount_rate,
                       margin=opts.margin_rate, window_months=opts.months)
    clvres = clv_error = None
    try:
        clvres = predict_clv(ds, end, period_start=start, **clv_options)
    except (CLVNotEstimable, MissingDataError) as exc:
        clv_error = exc
    measure = opts.measure
    if clvres is not None and clvres.identified:
        values = clvres.join(values)
        if measure == "clv" and before is not None:
            try:  # no holdout for the comparison fit: a calibration end after cmp_end skips it
                before = predict_clv(ds, cmp_end, **{**clv_options, "calibration_end": end}).join(before)
            except (CLVNotEstimable, MissingDataError):
                pass  # migration says why it is skipped
    fallback = measure not in values or bool(values[measure].isna().all())
    return ValueBase(**base, values=values, before=before, clv=clvres, clv_error=clv_error,
                     measure="revenue" if fallback else measure, measure_fallback=fallback and measure != "revenue")


def _guard(section: str, live: bool = False) -> Any:
    """Decorator: :class:`NotApplicable`, :class:`CLVNotEstimable` or ``MissingDataError`` → a skipped section
    (``live``: of an interactive-only section, so also left out of manager pages)."""
    from workbench.engine import MissingDataError

    def wrap(func: Any) -> Any:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Result:
            try:
                return func(*args, **kwargs)
            except (NotApplicable, CLVNotEstimable, MissingDataError) as exc:
                return skipped(section, exc, live)

        run.section = section  # type: ignore[attr-defined]
        return run

    return wrap


# ............................................................................ value per customer
@dataclass(frozen=True, repr=False)
class ValueOverview(Result):
    """Value per customer over the window: totals, active customers and revenue (KPIs)."""

    heading: ClassVar[str] = "pyramid.h.value"
    base: ValueBase

    @property
    def active(self) -> int:
        return int((self.base.values["purchases"] > 0).sum())

    @property
    def previous_active(self) -> int | None:
        b = self.base.before
        return int((b["purchases"] > 0).sum()) if b is not None and len(b) else None

    @property
    def revenue(self) -> float:
        return float(self.base.values["revenue"].sum())

    @property
    def previous_revenue(self) -> float | None:
        b = self.base.before
        return float(b["revenue"].sum()) if b is not None and len(b) else None

    def findings(self, lang: str = "en") -> list[Finding]:
        b, v = self.base, self.base.values
        zero = fmt_int((v["purchases"] == 0).sum(), lang)
        common = dict(window=b.window_text(lang), n=fmt_int(len(v), lang), revenue=b.money(v["revenue"].sum(), lang),
                      zero=zero)
        if bool(v["profit"].notna().any()):
            text = t("pyramid.find.value", lang, profit=b.money(v["profit"].sum(), lang), **common)
        else:
            text = t("pyramid.find.value_noprofit", lang, **common)
        out = [Finding("value", text, value=len(v))]
        if not b.has_value:
            out.append(Finding("no_value", t("pyramid.find.no_value", lang, measure=b.measure_label(lang),
                                             window=b.window_text(lang), n=fmt_int(len(v), lang))))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        return [Table(value_summary(self.base.values, lang, self.base.currency))]

    def notes(self, lang: str = "en") -> list[str]:
        out = []
        if self.base.measure_fallback:
            out.append(t("pyramid.note.measure_fallback", lang, measure=self.base.opts.measure))
        out.append(t(f"pyramid.note.unit.{self.base.values.attrs['purchase_unit']}", lang))
        return out

    def kpis(self, lang: str = "en") -> list[KPI]:
        b = self.base
        how = t("pyramid.how.window", lang, window=b.window_text(lang),
                cmp_end=fmt_date(b.cmp_end, lang))
        return [
            KPI("active_customers", t("pyramid.kpi.active_customers", lang), self.active, "count",
                n=len(b.values), previous=self.previous_active,
                how=t("pyramid.how.active", lang) + " " + how),
            KPI("revenue", t("pyramid.kpi.revenue", lang), self.revenue, "money", n=self.active,
                previous=self.previous_revenue, how=t("pyramid.how.revenue", lang) + " " + how),
        ]

    def metrics(self) -> dict[str, Any]:
        b, v = self.base, self.base.values
        return {"window": {"start": v.attrs["start"], "end": v.attrs["end"], "months": b.opts.months,
                           "comparison_end": b.cmp_end},
                "value_measure": b.measure, "purchase_unit": v.attrs["purchase_unit"], "n_customers": len(v),
                "totals": {c: (v[c].sum() if v[c].notna().any() else None)
                           for c in ("revenue", "profit", "historical_clv")}}


@_guard("pyramid.h.value")
def value_overview(base: ValueBase) -> ValueOverview:
    """Section "value per customer" of notebook 02."""
    if base.missing is not None:
        raise base.missing
    return ValueOverview(base)


# ............................................................................ the pyramid
@dataclass(frozen=True, repr=False)
class PyramidTiers(Result):
    """Tiers by the value measure, the 80/20 check and the top-20% revenue share (KPI)."""

    heading: ClassVar[str] = "pyramid.h.pyramid"
    base: ValueBase
    pyramid: Pyramid
    top: ShareCI
    top_revenue: ShareCI
    previous_top20: float | None

    @property
    def strong(self) -> bool:
        return self.top.evidence()

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_pyramid(self.pyramid, lang, self.base.currency), figure_tier_values(self.pyramid, lang)]

    def _top_how(self, lang: str) -> str:
        top = self.top
        return t("pyramid.how.top20", lang, measure=self.base.measure_label(lang),
                 low=fmt_pct(top.low, lang), high=fmt_pct(top.high, lang), n=fmt_int(top.n, lang),
                 n_boot=fmt_int(top.n_boot, lang), window=self.base.window_text(lang))

    def findings(self, lang: str = "en") -> list[Finding]:
        b, p, top = self.base, self.pyramid, self.top
        m_label = b.measure_label(lang)
        out = []
        if not top.estimable:
            out.append(Finding("top20", t("pyramid.find.top20_na", lang, n=fmt_int(top.n, lang),
                                          total=fmt_int(p.n, lang))))
        else:
            gap = p.gap_to_80
            text = t("pyramid.find.top20", lang, share=fmt_pct(p.top20_value_share, lang), measure=m_label,
                     gap=fmt_num(abs(gap) * 100, lang, 1),
                     direction=t("pyramid.find.dir_above" if gap >= 0 else "pyramid.find.dir_below", lang))
            out.append(Finding("top20", b.based(text, p.n, lang), value=p.top20_value_share, headline=True,
                               interval=(top.low, top.high), null=top.share, n=top.n, value_range=(0.0, 1.0),
                               how=self._top_how(lang), action=t("pyramid.act.top20", lang)))
        if p.key_customer_share > 0:
            text = t("pyramid.find.key", lang, cshare=fmt_pct(p.key_customer_share, lang),
                     vshare=fmt_pct(p.key_value_share, lang), measure=m_label,
                     n_top=fmt_int(p.table["customers"].iloc[0], lang),
                     top_share=fmt_pct(p.table["value_share"].iloc[0], lang))
            out.append(Finding("key", b.based(text, p.n, lang), value=p.key_value_share, headline=self.strong,
                               how=t("pyramid.how.key", lang, shares=", ".join(fmt_pct(x, lang, 0) for x in p.shares))
                               + " " + self._top_how(lang) if top.estimable else "",
                               action=t("pyramid.act.key", lang)))
        if p.n_zero or p.n_negative:
            out.append(Finding("nonpositive", t("pyramid.find.nonpositive", lang, zero=fmt_int(p.n_zero, lang),
                                                negative=fmt_int(p.n_negative, lang), measure=m_label)))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        return [Table(tier_table(self.pyramid, lang, self.base.currency))]

    def kpis(self, lang: str = "en") -> list[KPI]:
        tr = self.top_revenue
        value = top_share(self.base.values["revenue"].astype(float).fillna(0.0), 0.2)
        return [KPI("top20_revenue_share", t("pyramid.kpi.top20_revenue_share", lang),
                    value if np.isfinite(value) else None, "share", n=len(self.base.values),
                    interval=(tr.low, tr.high) if tr.estimable else None, better="",
                    previous=self.previous_top20,
                    how=t("pyramid.how.top20_kpi", lang, window=self.base.window_text(lang),
                          cmp_end=fmt_date(self.base.cmp_end, lang)))]

    def metrics(self) -> dict[str, Any]:
        p, top = self.pyramid, self.top
        return {"tier_shares": list(self.base.opts.shares), "tiers": p.metric_tiers(),
                "top20_value_share": p.top20_value_share,
                "top20_ci": {"low": top.low, "high": top.high, "n": top.n, "n_boot": top.n_boot,
                             "evidence": self.strong},
                "gap_to_80": p.gap_to_80, "key_value_share": p.key_value_share,
                "key_customers": int(p.table["customers"].iloc[:2].sum()), "n_zero": p.n_zero,
                "n_negative": p.n_negative}


@_guard("pyramid.h.pyramid")
def pyramid_tiers(base: ValueBase) -> PyramidTiers:
    """Section "the customer pyramid" of notebook 02."""
    base.need_value()
    o = base.opts
    top = top_share_ci(base.values[base.measure], 0.2, n_boot=o.n_boot, seed=o.seed)
    top_rev = top if base.measure == "revenue" else top_share_ci(base.values["revenue"], 0.2, n_boot=o.n_boot,
                                                                 seed=o.seed)
    prev = None
    if base.before is not None and len(base.before) and base.before["revenue"].fillna(0).ne(0).any():
        p = top_share(base.before["revenue"].astype(float).fillna(0.0), 0.2)
        prev = p if np.isfinite(p) else None
    return PyramidTiers(base, base.pyramid, top, top_rev, prev)


@dataclass(frozen=True, repr=False)
class PyramidExplorer(Result):
    """Live sliders for the layer shares (JupyterLab only)."""

    heading: ClassVar[str] = "pyramid.widget.pyramid_title"
    interactive_only: ClassVar[bool] = True
    base: ValueBase

    def widget(self, lang: str = "en") -> Any:
        import ipywidgets as widgets

        from workbench.widgets import panel

        b = self.base

        def redraw(top: float, second: float, third: float) -> go.Figure:
            if top + second + third > 1:
                return figure_message(t("pyramid.widget.invalid", lang))
            shares = [top, second, third, 1 - top - second - third]
            return figure_pyramid(customer_pyramid(b.values, b.measure, shares), lang, b.currency)

        controls = {k: widgets.FloatSlider(value=v, min=0.0, max=0.6, step=0.01, readout_format=".0%",
                                           description=t(f"pyramid.widget.{k}", lang))
                    for k, v in zip(("top", "second", "third"), b.opts.shares, strict=False)}
        panel(controls, redraw)  # shows itself (the renderer shows nothing more)
        return None


@_guard("pyramid.widget.pyramid_title", live=True)
def pyramid_explorer(base: ValueBase) -> PyramidExplorer:
    """Interactive: try other layer shares (four layers only)."""
    base.need_value()
    if len(base.opts.shares) != 4:
        raise NotApplicable("pyramid.widget.four_layers")
    return PyramidExplorer(base)


# ............................................................................ concentration
@dataclass(frozen=True, repr=False)
class Concentration(Result):
    """Lorenz curve and Gini coefficient of the value measure."""

    heading: ClassVar[str] = "pyramid.h.lorenz"
    base: ValueBase
    gini: GiniResult

    @property
    def estimable(self) -> bool:
        g = self.gini
        return bool(np.isfinite(g.gini) and np.isfinite(g.low) and np.isfinite(g.high))

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_lorenz(self.base.values[self.base.measure], self.gini, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        g, b = self.gini, self.base
        if self.estimable:
            text = t("pyramid.find.gini", lang, measure=b.measure_label(lang), gini=fmt_num(g.gini, lang, 3),
                     low=fmt_num(g.low, lang, 3), high=fmt_num(g.high, lang, 3))
            return [Finding("gini", b.based(text, g.n, lang), value=g.gini)]
        return [Finding("gini", t("pyramid.find.gini_na", lang, measure=b.measure_label(lang),
                                  n=fmt_int(g.n, lang)))]

    def metrics(self) -> dict[str, Any]:
        g = self.gini
        return {"gini": g.gini if np.isfinite(g.low) else None,
                "gini_ci": {"low": g.low, "high": g.high, "level": g.level, "n_boot": g.n_boot},
                "n_nonpositive": g.n_nonpositive}


@_guard("pyramid.h.lorenz")
def concentration(base: ValueBase) -> Concentration:
    """Section "how concentrated is value" of notebook 02."""
    base.need_value()
    return Concentration(base, gini_ci(base.values[base.measure], n_boot=base.opts.n_boot, seed=base.opts.seed))


# ............................................................................ segments
@dataclass(frozen=True, repr=False)
class SegmentMatrix(Result):
    """True friends / butterflies / barnacles / strangers."""

    heading: ClassVar[str] = "pyramid.h.segments"
    base: ValueBase
    segments: Segments

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_segments(self.segments, lang, self.base.currency)] if self.segments.ok else []

    def findings(self, lang: str = "en") -> list[Finding]:
        s, b = self.segments, self.base
        out = [Finding(f"segments_{dim}", t(f"pyramid.segments.unsplit.{dim}", lang,
                                           cut=b.money(s.profit_cut, lang) if dim == "profit"
                                           else fmt_int(s.tenure_cut, lang)))
               for dim in s.unsplit]
        if not s.ok:
            return out
        sg = s.table.set_index("segment")
        strong = len(b.values) >= MIN_CASES and bool((sg["n"] > 0).all())
        pct = lambda seg, col: fmt_pct(sg.at[seg, col], lang)  # noqa: E731
        text = t("pyramid.find.segments", lang, tf_share=pct("true_friends", "share"),
                 tf_profit=pct("true_friends", "profit_share"), bn_share=pct("barnacles", "share"),
                 bn_profit=pct("barnacles", "profit_share"))
        out.append(Finding("segments", b.based(text, len(b.values), lang), value=sg.at["true_friends", "profit_share"],
                           headline=strong, action=t("pyramid.act.segments", lang),
                           how=t("pyramid.how.segments", lang, profit_cut=b.money(s.profit_cut, lang),
                                 tenure_cut=fmt_int(s.tenure_cut, lang), n=fmt_int(len(b.values), lang))))
        out.append(Finding("butterflies", t("pyramid.find.butterflies", lang,
                                            bf_n=fmt_int(sg.at["butterflies", "n"], lang),
                                            bf_profit=pct("butterflies", "profit_share"),
                                            st_n=fmt_int(sg.at["strangers", "n"], lang),
                                            st_profit=pct("strangers", "profit_share"))))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        return [Table(segment_table(self.segments, lang, self.base.currency))] if self.segments.ok else []

    def notes(self, lang: str = "en") -> list[str]:
        s, v = self.segments, self.base.values
        out = []
        if "tenure" in s.moved:
            out.append(t("pyramid.note.cut_moved.tenure", lang, median=fmt_int(v["relationship_days"].median(), lang),
                         cut=fmt_int(s.tenure_cut, lang)))
        if "profit" in s.moved:
            out.append(t("pyramid.note.cut_moved.profit", lang, median=self.base.money(v["historical_clv"].median(),
                                                                                    lang),
                         cut=self.base.money(s.profit_cut, lang)))
        return out

    def metrics(self) -> dict[str, Any]:
        s = self.segments
        out: dict[str, Any] = {"segment_cuts": {"profit": s.profit_cut, "relationship_days": s.tenure_cut,
                                                "profit_measure": s.profit_col, "moved": list(s.moved),
                                                "unsplit": list(s.unsplit)}}
        if s.ok:
            out["segments"] = s.metric()
        return out


@_guard("pyramid.h.segments")
def segment_matrix(base: ValueBase) -> SegmentMatrix:
    """Section "loyalty is not profit: four segments" of notebook 02."""
    base.need_value()
    return SegmentMatrix(base, base.segments)


@dataclass(frozen=True, repr=False)
class SegmentExplorer(Result):
    """Live sliders for the segment cut points (JupyterLab only)."""

    heading: ClassVar[str] = "pyramid.widget.segments_title"
    interactive_only: ClassVar[bool] = True
    base: ValueBase

    def widget(self, lang: str = "en") -> Any:
        import ipywidgets as widgets

        from workbench.widgets import panel

        b, s = self.base, self.base.segments
        lo, hi = b.values["historical_clv"].quantile([0.05, 0.95])

        def redraw(profit_cut: float, tenure_cut: int) -> go.Figure:
            return figure_segments(loyalty_segments(b.values, profit_cut=profit_cut, tenure_cut=tenure_cut), lang,
                                   b.currency)

        panel({"profit_cut": widgets.FloatSlider(value=s.profit_cut, min=float(lo), max=float(hi),
                                                 step=float(hi - lo) / 100 or 1.0,
                                                 description=t("pyramid.widget.profit_cut", lang)),
               "tenure_cut": widgets.IntSlider(value=int(s.tenure_cut), min=0,
                                               max=int(b.values["relationship_days"].max()) or 1,
                                               description=t("pyramid.widget.tenure_cut", lang))}, redraw)
        return None


@_guard("pyramid.widget.segments_title", live=True)
def segment_explorer(base: ValueBase) -> SegmentExplorer:
    """Interactive: try other segment cut points."""
    base.need_value()
    if not base.segments.ok:
        raise NotApplicable("pyramid.widget.no_segments")
    return SegmentExplorer(base)


# ............................................................................ predicted CLV
@dataclass(frozen=True, repr=False)
class LifetimeValue(Result):
    """Predicted customer lifetime value (purchase model × spend model), or why there is none."""

    heading: ClassVar[str] = "pyramid.h.clv"
    base: ValueBase
    clv: CLVResult

    def _how(self, lang: str) -> str:
        c = self.clv
        return t("pyramid.note.clv", lang, end=fmt_date(c.calibration_end, lang),
                 unit=t(f"pyramid.unit.{c.time_unit}", lang), margin=fmt_pct(c.margin, lang), horizon=c.horizon_months)

    def figures(self, lang: str = "en") -> list[Any]:
        if not self.clv.identified:
            return []
        return [figure_clv_distribution(self.clv.customers["clv"], lang, self.base.currency)]

    def findings(self, lang: str = "en") -> list[Finding]:
        c, b = self.clv, self.base
        mm = c.model_metric()
        if not c.identified:
            reasons = [t(f"pyramid.issue.{i}", lang) for i in c.bgnbd_issues]
            if not reasons:  # the purchase model is fine: the spend model is not
                reasons = [t("pyramid.issue.spend", lang) + t(f"pyramid.issue.{i}", lang) for i in c.gamma_gamma_issues]
            out = [Finding("clv", t("pyramid.find.clv_not_identified", lang,
                                    reasons=("；" if lang == "zh" else "; ").join(reasons),
                                    n_repeat=fmt_int(mm["n_repeat"], lang), n=fmt_int(mm["n"], lang),
                                    end=fmt_date(c.calibration_end, lang)))]
        else:
            clv = c.customers["clv"]
            text = t("pyramid.find.clv", lang, horizon=c.horizon_months, rate=fmt_pct(c.annual_discount_rate, lang, 0),
                     total=b.money(clv.sum(), lang), median=b.money(clv.median(), lang),
                     alive=fmt_pct((c.customers["p_alive"] >= 0.5).mean(), lang))
            out = [Finding("clv", b.based(text, len(clv), lang, {"start": c.data_start, "end": c.calibration_end}),
                           value=float(clv.sum()), headline=int(mm["n_repeat"]) >= MIN_CASES,
                           how=self._how(lang) + " " + t("pyramid.how.clv_base", lang, n=fmt_int(mm["n"], lang),
                                                         n_repeat=fmt_int(mm["n_repeat"], lang)),
                           action=t("pyramid.act.clv", lang))]
        sc = c.spend_check
        if sc is not None and sc.warn:
            out.append(Finding("spend_frequency", t("pyramid.find.spend_dependent", lang, n=fmt_int(sc.n, lang),
                                                    r=fmt_num(sc.r, lang, 2))))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        if not self.clv.identified:
            return []
        return [Table(model_table(self.clv, lang), caption=t("pyramid.caption.model", lang), appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        c, out = self.clv, []
        if c.data_ends_early:
            out.append(t("pyramid.note.data_end", lang, last=fmt_date(c.calibration_end, lang),
                         end=fmt_date(self.base.end, lang)))
        sc = c.spend_check
        if sc is not None and not sc.warn and np.isfinite(sc.r):
            out.append(t("pyramid.note.spend_independent", lang, n=fmt_int(sc.n, lang), r=fmt_num(sc.r, lang, 2)))
        return out

    def kpis(self, lang: str = "en") -> list[KPI]:
        if not self.clv.identified:
            return []
        clv = self.clv.customers["clv"]
        return [KPI("clv_mean", t("pyramid.kpi.clv_mean", lang, horizon=self.clv.horizon_months), float(clv.mean()),
                    "money", n=len(clv), how=self._how(lang))]

    def metrics(self) -> dict[str, Any]:
        c = self.clv
        out: dict[str, Any] = {"clv_model": c.model_metric()}
        if c.identified:
            clv = c.customers["clv"]
            out.update({"bgnbd": c.bgnbd.to_dict(), "bgnbd_se": c.bgnbd.se, "gamma_gamma": c.gamma_gamma.to_dict(),
                        "clv": {"total": clv.sum(), "mean": clv.mean(), "median": clv.median(), "n": len(clv),
                                "horizon_months": c.horizon_months, "annual_discount_rate": c.annual_discount_rate,
                                "margin": c.margin, "time_unit": c.time_unit,
                                "share_p_alive_50": (c.customers["p_alive"] >= 0.5).mean()}})
        return out


def _need_clv(base: ValueBase) -> CLVResult:
    if base.missing is not None:
        raise base.missing
    if base.clv is None:
        raise base.clv_error if base.clv_error is not None else CLVNotEstimable("no_purchases", "no CLV fit")
    return base.clv


@_guard("pyramid.h.clv")
def lifetime_value(base: ValueBase) -> LifetimeValue:
    """Section "predicted customer lifetime value" of notebook 02."""
    return LifetimeValue(base, _need_clv(base))


@dataclass(frozen=True, repr=False)
class HoldoutCheck(Result):
    """Does the purchase model predict a period it has not seen?"""

    heading: ClassVar[str] = "pyramid.h.holdout"
    base: ValueBase
    clv: CLVResult

    def figures(self, lang: str = "en") -> list[Any]:
        return [Figure(figure_holdout(self.clv, lang), appendix=True)] if self.clv.holdout is not None else []

    def findings(self, lang: str = "en") -> list[Finding]:
        c, h = self.clv, self.clv.holdout
        if h is None:
            return [Finding("holdout", t(f"pyramid.holdout_reason.{c.holdout_reason or 'too_little'}", lang,
                                         cal_end=fmt_date(c.holdout_target_end, lang),
                                         first=fmt_date(c.data_start, lang), end=fmt_date(c.calibration_end, lang)))]
        text = t("pyramid.find.holdout", lang, cal_end=fmt_date(c.holdout_calibration_end, lang),
                 predicted=fmt_int(h.total_predicted, lang), actual=fmt_int(h.total_actual, lang),
                 mae=fmt_num(h.mae, lang, 2))
        window = {"start": c.holdout_calibration_end, "end": c.holdout_end}
        return [Finding("holdout", self.base.based(text, h.n, lang, window), value=h.mae)]

    def tables(self, lang: str = "en") -> list[Table]:
        if self.clv.holdout is None:
            return []
        return [Table(holdout_table(self.clv, lang), caption=t("pyramid.caption.holdout", lang), appendix=True)]

    def metrics(self) -> dict[str, Any]:
        return {"holdout": self.clv.holdout_metric()}


@_guard("pyramid.h.holdout")
def holdout_check(base: ValueBase) -> HoldoutCheck:
    """Section "holdout check" of notebook 02 (only with an identified CLV model)."""
    c = _need_clv(base)
    if not c.identified:
        raise CLVNotEstimable("not_identified", "the purchase or spend model is not identified")
    return HoldoutCheck(base, c)


# ............................................................................ migration
@dataclass(frozen=True, repr=False)
class LayerMigration(Result):
    """Movement between layers from the comparison window to now, with the list of movers."""

    heading: ClassVar[str] = "pyramid.h.migration"
    base: ValueBase
    migration: Migration
    show_ids: bool = False

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_migration(self.migration, lang)] if self.migration.n else []

    def findings(self, lang: str = "en") -> list[Finding]:
        m, b = self.migration, self.base
        common = dict(measure=b.measure_label(lang), before=b.window_text(lang, b.before.attrs),
                      after=b.window_text(lang), inactive=fmt_int(m.inactive_both, lang))
        if m.n == 0:
            return [Finding("migration", t("pyramid.find.migration_none", lang, **common))]
        return [Finding("migration", t("pyramid.find.migration", lang, n=fmt_int(m.n, lang),
                                       up=fmt_int(m.up, lang), down=fmt_int(m.down, lang),
                                       same=fmt_int(m.same, lang), new=fmt_int(m.new, lang),
                                       gone=fmt_int(m.gone, lang), **common), value=m.up)]

    def tables(self, lang: str = "en") -> list[Table]:
        m = self.migration
        if m.n == 0:
            return []
        out = [Table(migration_table(m, lang))]
        if m.up or m.down:
            movers = movers_table(m, lang, len(m.moves), not self.show_ids, self.base.values[self.base.measure],
                                  self.base.currency)
            out.append(Table(movers, caption=t("pyramid.find.movers", lang), appendix=True, export="layer_movers",
                             max_rows=20))
        return out

    def metrics(self) -> dict[str, Any]:
        m, b = self.migration, self.base
        return {"migration": {"counts": m.counts.to_dict(orient="index"), "up": m.up, "down": m.down,
                              "same": m.same, "new": m.new, "gone": m.gone, "n": m.n,
                              "inactive_both": m.inactive_both,
                              "before_window": {"start": b.before.attrs["start"], "end": b.before.attrs["end"]}}}


@_guard("pyramid.h.migration")
def layer_migration(base: ValueBase, show_ids: bool = False) -> LayerMigration:
    """Section "movement between layers" of notebook 02; ``show_ids`` lists real ids (default: pseudonyms)."""
    base.need_value()
    if base.before is None or not len(base.before):
        raise NotApplicable("pyramid.note.no_comparison", cmp_end=base.cmp_end)
    if base.measure not in base.before or base.before[base.measure].isna().all():
        raise NotApplicable("pyramid.note.no_migration_measure", measure=f"pyramid.measure.{base.measure}",
                            cmp_end=base.cmp_end)
    before = customer_pyramid(base.before, base.measure, base.opts.shares)
    mig = tier_migration(before.tiers, base.pyramid.tiers, base.before[base.measure], base.values[base.measure])
    return LayerMigration(base, mig, show_ids)


# ............................................................................ upgrade potential
@dataclass(frozen=True, repr=False)
class UpgradePotential(Result):
    """Ordinary customers near the key tier, listed (pseudonymised) for export."""

    heading: ClassVar[str] = "pyramid.h.upgrade"
    base: ValueBase
    upgrade: UpgradeCandidates
    show_ids: bool = False

    def findings(self, lang: str = "en") -> list[Finding]:
        u, b = self.upgrade, self.base
        n = b.pyramid.n
        if not np.isfinite(u.threshold):
            return [Finding("upgrade", t("pyramid.find.upgrade_none", lang, n=fmt_int(n, lang)))]
        text = t("pyramid.find.upgrade", lang, n=fmt_int(u.n, lang),
                 share=fmt_pct(u.n / u.n_ordinary if u.n_ordinary else 0, lang), near=fmt_pct(u.near, lang, 0),
                 threshold=b.money(u.threshold, lang))
        return [Finding("upgrade", b.based(text, n, lang), value=u.n,
                        headline=bool(u.n) and b.clv_usable and n >= MIN_CASES, action=t("pyramid.act.upgrade", lang),
                        how=t("pyramid.note.upgrade", lang, near=fmt_pct(u.near, lang, 0),
                              growth=fmt_pct(u.min_growth, lang, 0)))]

    def tables(self, lang: str = "en") -> list[Table]:
        u = self.upgrade
        if not u.n:
            return []
        shown = upgrade_table(u, lang, self.base.currency, limit=u.n, pseudonymous=not self.show_ids)
        return [Table(shown, caption=t("pyramid.caption.upgrade", lang), appendix=True, export="upgrade_candidates",
                      max_rows=20)]

    def metrics(self) -> dict[str, Any]:
        return {"upgrade_candidates": self.upgrade.metric()}


@_guard("pyramid.h.upgrade")
def upgrade_potential(base: ValueBase, show_ids: bool = False) -> UpgradePotential:
    """Section "ordinary customers with upgrade potential" of notebook 02 (pseudonyms unless ``show_ids``)."""
    base.need_value()
    return UpgradePotential(base, base.upgrade, show_ids)


# ............................................................................ strategy
@dataclass(frozen=True, repr=False)
class Strategy(Result):
    """What to do per layer and segment."""

    heading: ClassVar[str] = "pyramid.h.strategy"
    base: ValueBase

    def findings(self, lang: str = "en") -> list[Finding]:
        return [Finding("strategy", t("pyramid.find.strategy", lang))] if self.base.segments.ok else []

    def tables(self, lang: str = "en") -> list[Table]:
        b = self.base
        return [Table(strategy_table(b.pyramid, b.segments if b.segments.ok else None, lang, b.currency, b.upgrade))]


@_guard("pyramid.h.strategy")
def strategy(base: ValueBase) -> Strategy:
    """Section "strategy by layer and segment" of notebook 02."""
    base.need_value()
    return Strategy(base)


# ............................................................................ method notes
@dataclass(frozen=True, repr=False)
class MethodNotes(Result):
    """How these numbers were made: window, ties, segments, CLV, privacy."""

    heading: ClassVar[str] = "pyramid.h.notes"
    base: ValueBase

    def notes(self, lang: str = "en") -> list[str]:
        b = self.base
        end, cmp_end = fmt_date(b.value_end, lang), fmt_date(b.cmp_end, lang)
        if b.opts.months == ALL:
            out = [t("pyramid.note.window_all", lang, end=end, cmp_end=cmp_end)]
        else:
            out = [t("pyramid.note.window", lang, months=b.opts.months, end=end, cmp_end=cmp_end)]
        if b.has_value:
            u = b.upgrade
            out += [t("pyramid.note.ties", lang, measure=b.measure_label(lang)),
                    t("pyramid.note.negative", lang, n=fmt_int(int((b.values[b.measure] <= 0).sum()), lang)),
                    t("pyramid.note.upgrade", lang, near=fmt_pct(u.near, lang, 0), growth=fmt_pct(u.min_growth, lang, 0))]
            if b.segments.ok:
                out.append(t("pyramid.note.segments", lang, profit_cut=b.money(b.segments.profit_cut, lang),
                             tenure_cut=fmt_int(b.segments.tenure_cut, lang)))
        if b.clv is not None:
            c = b.clv
            out.append(t("pyramid.note.clv", lang, end=fmt_date(c.calibration_end, lang),
                         unit=t(f"pyramid.unit.{c.time_unit}", lang), margin=fmt_pct(c.margin, lang),
                         horizon=c.horizon_months))
            if c.purchase_unit == "day":
                out.append(t("pyramid.note.unit.day", lang))
        out.append(t("pyramid.note.privacy", lang))
        return out


def method_notes(base: ValueBase) -> MethodNotes:
    """Section "how these numbers were made" of notebook 02."""
    return MethodNotes(base)
