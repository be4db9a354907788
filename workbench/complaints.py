"""Complaint trends, alerts and handling (投诉分析) — DOMAIN.md §5.

Managers set standards from response times and complaint-trend analysis, and
each voiced complaint stands for more unseen dissatisfaction. This module
answers, from the canonical ``complaints`` table (plus ``transactions`` and
``customers`` where present):

1. **Volume and rates** per period (:func:`volume`): complaints, distinct
   complaining customers, the complaint rate as DOMAIN.md defines it
   (投诉率 = complaining customers / buying customers in the period),
   complaints per 1,000 active (buying) customers and per 1,000 orders; by
   category, channel, severity or handler; :func:`pareto` of categories.
2. **Trend and seasonality**: :func:`decompose` (STL on the rate) and
   :func:`category_trends` — one quasi-Poisson GLM over periods × categories,
   ``log E[n] = a_c + b_c·t + s_month + log(active customers)``, slope per
   category as % change per period with CI and p-value, Holm-corrected for the
   number of categories, ranked by growth.
3. **Alerts** (:func:`detect_alerts`): the same model (category level and
   trend, shared month-of-year seasonality, exposure = orders, or days
   without transactions) gives each period × category an expected count and
   an upper limit at a stated one-sided false-alarm rate ``alpha`` (default
   0.00135, the 3-sigma rate); overdispersion is allowed for (negative
   binomial with the Pearson dispersion). Cells above the limit are flagged;
   the fit is repeated without flagged cells so a spike does not raise its
   own limit. With ``judge_from`` the model is fitted only on the history
   before it and the judged periods are out of sample (``workbench alerts``).
   The textbook u-chart (ū ± 3√(ū/n)) is :func:`u_chart`.
4. **Handling** (:func:`handling`): time to first response and to resolution
   by Kaplan-Meier (statsmodels ``SurvfuncRight``): open complaints are
   censored at the data's end, never dropped. Median, P90, share within the
   SLA, backlog and its age, their monthly trend; by category, channel and
   handler (small-n handlers marked). A complaint counts as closed when
   ``closed_at`` is set *or* its ``status`` is in ``closed_statuses``;
   status-closed complaints without a close time are counted as closed but
   left out of the time-to-resolution curve, and their number is reported
   (``closed_without_time``).
5. **Complaints and loyalty** (:func:`churn_link`): churn (no purchase in the
   N days after the cohort window) for customers with no complaint, only
   resolved complaints, and an unresolved complaint, with Wilson CIs and a
   logistic regression adjusting for spend and tenure — associational.
   Complaint rate by value tier.
6. **The iceberg** (:func:`iceberg`): distinct complaining customers divided
   by an assumed voicing share (DOMAIN.md: about 10% voice), with a
   sensitivity range — an estimate from an assumption, labelled so.
7. **Verbatims** (:func:`verbatims`): frequent terms per category or period
   (jieba for Chinese, via :mod:`workbench.text`) and example complaints,
   PII-masked; :func:`verbatims_html` masks and HTML-escapes.

Notebook 03's sections are result objects (:mod:`workbench.results`) built on the functions above:
:func:`rates` (KPIs ``complaint_rate``, ``complaints``), :func:`categories`, :func:`trend`
(``rising_complaint_categories``), :func:`alerts` (``complaint_spikes``), :func:`explorer` (live
controls only), :func:`handling_performance` (``open_complaints``) and :func:`handlers` from
:func:`handling_window`, :func:`timely` (``timely_share``), :func:`outcome_mix`, :func:`churn`,
:func:`silent` and :func:`words`.

Aggregation runs in the engine (DuckDB SQL over the cache); statistics run on
the small per-period, per-category or per-customer frames. :func:`run_alerts`
(the ``workbench alerts`` command) imports neither statsmodels nor plotly and
only runs small aggregates on the cache.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from workbench.engine import Dataset, MissingDataError, open_dataset
from workbench.i18n import fmt_int, fmt_month, fmt_num, fmt_p, fmt_pct, t
from workbench.io import quote_str
from workbench.periods import Period
from workbench.results import KPI, Finding, Result, Skipped, Table, analysis

__all__ = [
    "ALPHA", "CLOSED_STATUSES", "GRANULARITIES", "OPEN_STATUSES", "AlertRun", "Timeliness", "ChurnLink", "Handling", "Iceberg", "Verbatims",
    "alert_cells", "category_trends", "churn_link", "decompose", "detect_alerts", "figure_churn_link",
    "figure_control_chart", "figure_handlers", "figure_pareto", "figure_resolution_curves", "figure_trend",
    "handling", "iceberg", "iceberg_for", "kaplan_meier", "pareto", "run_alerts", "u_chart", "upper_limit",
    "verbatims", "verbatims_html", "volume", "wilson_ci", "findings", "closed_patterns", "status_closed_sql",
    "history_start", "first_period", "timeliness", "outcomes", "outcome_table", "figure_timeliness",
    "judge_periods", "current_alert_finding", "pearson_dispersion", "trend_estimable", "period_summary", "TOP_CATEGORIES",
    "window", "rates", "categories", "trend", "alerts", "explorer", "handling_window", "handling_performance", "handlers",
    "timely", "outcome_mix", "churn", "silent", "words", "rising_categories",
]

GRANULARITIES = ("day", "week", "month", "quarter")
#: status patterns meaning "closed" when ``ds.closed_statuses`` is not configured: SQL LIKE patterns,
#: matched case-insensitively on the trimmed status ("Closed with explanation", "Resolved", "已解决" …)
CLOSED_STATUSES: tuple[str, ...] = ("closed%", "%resolved%", "%closed", "done", "complete", "completed", "solved",
                                    "finished", "%已关闭%", "%已解决%", "%已完成%", "关闭", "解决", "结案", "%已结案%",
                                    "已处理", "完结", "办结", "已办结")
#: statuses never closed under the default patterns (negations the patterns above would otherwise match)
OPEN_STATUSES: tuple[str, ...] = ("%unresolved%", "%not resolved%", "%not closed%", "%unclosed%", "%reopen%",
                                  "%未%")
#: one-sided false-alarm rate per cell: the 3-sigma rate of a Shewhart chart
ALPHA = 0.00135
SMALL_N = 30
#: categories modelled separately in trends and alerts (the rest together as "other")
TOP_CATEGORIES = 20
VOICING_RANGE = (0.05, 0.10, 0.15, 0.20, 0.25)
OTHER = "__other__"


# ----------------------------------------------------------------- helpers
def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, pd.Timestamp):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def _check_granularity(granularity: str) -> str:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    return granularity


def _trunc(col: str, granularity: str) -> str:
    return f"CAST(date_trunc('{_check_granularity(granularity)}', {col}) AS DATE)"


def _step(day: dt.date, granularity: str, k: int = 1) -> dt.date:
    if granularity == "day":
        return day + dt.timedelta(days=k)
    if granularity == "week":
        return day + dt.timedelta(days=7 * k)
    months = k * (3 if granularity == "quarter" else 1)
    i = day.year * 12 + day.month - 1 + months
    return dt.date(i // 12, i % 12 + 1, 1)


def _floor(day: dt.date, granularity: str) -> dt.date:
    if granularity == "day":
        return day
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return day.replace(day=1)


def period_starts(start: dt.date, end_exclusive: dt.date, granularity: str) -> list[dt.date]:
    """Start dates of the periods touching ``[start, end_exclusive)``."""
    out, p = [], _floor(start, granularity)
    while p < end_exclusive:
        out.append(p)
        p = _step(p, granularity)
    return out


def _grid(ds: Dataset, start: dt.date, end: dt.date, granularity: str) -> list[dt.date]:
    """Periods touching ``[start, end)`` from the first period with a complaint on (none without data)."""
    first = first_period(ds, granularity)
    if first is None:
        return []
    return period_starts(max(_date(start), first), end, granularity)


def period_label(day: Any, granularity: str) -> str:
    """``2026-10`` (month), ``2026Q3`` (quarter), ISO date (day, week start)."""
    d = _date(day)
    if granularity == "month":
        return f"{d.year}-{d.month:02d}"
    if granularity == "quarter":
        return f"{d.year}Q{(d.month - 1) // 3 + 1}"
    return d.isoformat()


def months_back(end_exclusive: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` months before ``end_exclusive`` (a month start)."""
    i = end_exclusive.year * 12 + end_exclusive.month - 1 - months
    return dt.date(i // 12, i % 12 + 1, 1)


def _quiet(ds: Dataset) -> None:
    """Switch DuckDB's progress bar off for this connection (it would print into notebooks and cron mail)."""
    if not getattr(ds, "_wb_quiet", False):
        ds.sql("SET enable_progress_bar = false")
        ds._wb_quiet = True


def closed_patterns(ds: Dataset, closed_statuses: Sequence[str] | None = None) -> tuple[tuple[str, ...], bool]:
    """The status patterns meaning "closed": the argument, else ``ds.closed_statuses`` (workbench.toml
    ``closed_statuses``), else :data:`CLOSED_STATUSES`. Returns ``(patterns, is_default)``; only the
    default patterns come with the :data:`OPEN_STATUSES` exclusions ("unresolved", "未解决" …)."""
    if closed_statuses is not None and not isinstance(closed_statuses, str):
        pats = tuple(str(x) for x in closed_statuses)
        if pats:
            return pats, False
    elif isinstance(closed_statuses, str) and closed_statuses.strip():
        return tuple(x.strip() for x in closed_statuses.split(",") if x.strip()), False
    configured = getattr(ds, "closed_statuses", None)
    if configured:
        return tuple(str(x) for x in configured), False
    return CLOSED_STATUSES, True


def status_closed_sql(ds: Dataset, closed_statuses: Sequence[str] | None = None, col: str = "status") -> str:
    """SQL predicate: the status matches a closed pattern (LIKE, case-insensitive, trimmed)."""
    if not ds.has("complaints", "status"):
        return "false"
    pats, default = closed_patterns(ds, closed_statuses)
    if not pats:
        return "false"
    s = f"lower(trim(CAST({col} AS VARCHAR)))"
    expr = "(" + " OR ".join(f"{s} LIKE {quote_str(x.strip().lower())}" for x in pats) + ")"
    if default:
        expr = f"({expr} AND NOT (" + " OR ".join(f"{s} LIKE {quote_str(x)}" for x in OPEN_STATUSES) + "))"
    return f"COALESCE({expr}, false)"


def _closed_sql(ds: Dataset, closed_statuses: Sequence[str] | None = None, as_of: dt.datetime | None = None) -> str:
    """SQL predicate: the complaint is closed (by ``as_of`` when given): a close time (at or before
    ``as_of``) or, where the close time is empty, a closed status (status patterns: :func:`closed_patterns`)."""
    parts = []
    status = status_closed_sql(ds, closed_statuses)
    if ds.has("complaints", "closed_at"):
        if as_of is not None:
            parts.append(f"(closed_at IS NOT NULL AND closed_at <= TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}')")
        else:
            parts.append("closed_at IS NOT NULL")
        if status != "false":
            parts.append(f"(closed_at IS NULL AND {status})")
    elif status != "false":
        parts.append(status)
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def first_period(ds: Dataset, granularity: str = "month") -> dt.date | None:
    """Start of the first period with a complaint (None when the complaints table is empty)."""
    if not ds.has("complaints", "opened_at"):
        return None
    v = ds.sql("SELECT min(opened_at) FROM complaints").iloc[0, 0]
    return None if v is None or pd.isna(v) else _floor(_date(v), granularity)


def history_start(ds: Dataset, start: Any, granularity: str = "month") -> dt.date:
    """``start`` (floored to its period) moved forward to the first period with data: history is never
    padded with empty periods before the first complaint."""
    s = _floor(_date(start), granularity)
    first = first_period(ds, granularity)
    return max(s, first) if first is not None else s


def _as_of(ds: Dataset) -> dt.datetime:
    """The data's end: the latest complaint timestamp (the moment open complaints are censored)."""
    cols = [c for c in ("opened_at", "first_response_at", "closed_at") if ds.has("complaints", c)]
    sql = "SELECT greatest(" + ", ".join(f"max({c})" for c in cols) + ") FROM complaints" if len(cols) > 1 \
        else f"SELECT max({cols[0]}) FROM complaints"
    value = ds.sql(sql).iloc[0, 0]
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


_EXPOSURE_CACHE: dict[tuple, pd.DataFrame] = {}


def _exposure(ds: Dataset, granularity: str, start: dt.date, end: dt.date, distinct: bool = True
              ) -> pd.DataFrame | None:
    """Per-period purchase activity from transactions (None without transactions), one engine query.

    Columns ``period``, ``rows`` (purchase rows, amount > 0) and, with
    ``distinct``, ``buyers`` (distinct customers) and ``orders`` (distinct
    ``order_id``, else rows). Distinct counts are the costly part on large
    data, so results are memoised per dataset cache file and range.
    """
    if not ds.has("transactions", "customer_id", "date"):
        return None
    key = (str(ds.path), granularity, start, end, distinct)
    if key in _EXPOSURE_CACHE:
        return _EXPOSURE_CACHE[key].copy()
    pos = "AND amount > 0" if ds.has("transactions", "amount") else ""
    where = f"WHERE date >= DATE '{start}' AND date < DATE '{end}' {pos}"
    period = _trunc("date", granularity)
    extra = ""
    if distinct:
        orders = "count(DISTINCT order_id)" if ds.has("transactions", "order_id") else "count(*)"
        extra = f", count(DISTINCT customer_id) AS buyers, {orders} AS orders"
    e = ds.sql(f"SELECT {period} AS period, count(*) AS rows{extra} FROM transactions {where} GROUP BY 1")
    e["period"] = pd.to_datetime(e["period"]).dt.date
    if len(_EXPOSURE_CACHE) > 64:
        _EXPOSURE_CACHE.clear()
    _EXPOSURE_CACHE[key] = e
    return e.copy()


def _days_in(periods: Iterable[dt.date], granularity: str, start: dt.date, end: dt.date) -> np.ndarray:
    out = []
    for p in periods:
        lo, hi = max(p, start), min(_step(p, granularity), end)
        out.append(max((hi - lo).days, 0))
    return np.asarray(out, float)


# ----------------------------------------------------------------- 1 volume
def volume(ds: Dataset, start: Any, end_exclusive: Any, granularity: str = "month",
           by: str | None = None) -> pd.DataFrame:
    """Complaints and rates per period (and per ``by`` group).

    Columns: ``period`` (start date), ``label``, [``by``], ``complaints``,
    ``complainers`` (distinct customers), ``buyers``, ``orders``,
    ``complaint_rate`` (complainers / buyers: DOMAIN.md's 投诉率),
    ``rate_per_1000`` (complaints per 1,000 buying customers),
    ``per_1000_orders``, ``share`` (of the period's complaints, with ``by``).
    Rates are NaN without transactions; every period in the range from the
    first period with a complaint on appears (zero complaints included; never
    padded with empty periods before the data starts, so an empty table gives
    no rows).
    """
    _check_granularity(granularity)
    ds.require("complaints", "opened_at")
    _quiet(ds)
    start, end = _date(start), _date(end_exclusive)
    if by is not None:
        ds.require("complaints", by)
    grp = f", COALESCE(CAST({by} AS VARCHAR), '–') AS {by}" if by else ""
    cust = "count(DISTINCT customer_id)" if ds.has("complaints", "customer_id") else "NULL"
    sql = (f"SELECT {_trunc('opened_at', granularity)} AS period{grp}, count(*) AS complaints, "
           f"{cust} AS complainers FROM complaints WHERE opened_at >= TIMESTAMP '{start}' "
           f"AND opened_at < TIMESTAMP '{end}' GROUP BY ALL")
    c = ds.sql(sql)
    c["period"] = pd.to_datetime(c["period"]).dt.date
    periods = _grid(ds, start, end, granularity)
    if by:
        keys = sorted(c[by].unique().tolist(), key=str)
        grid = pd.MultiIndex.from_product([periods, keys], names=["period", by]).to_frame(index=False)
        grid["period"] = grid["period"].astype(object)
        c = grid.merge(c, on=["period", by], how="left")
    else:
        c = pd.DataFrame({"period": pd.Series(periods, dtype=object)}).merge(c, on="period", how="left")
    c["complaints"] = c["complaints"].fillna(0).astype("int64")
    c["complainers"] = pd.to_numeric(c["complainers"], errors="coerce").fillna(0).astype("int64")
    e = _exposure(ds, granularity, start, end)
    if e is not None:
        c = c.merge(e.drop(columns=["rows"]), on="period", how="left")
        c["buyers"] = c["buyers"].fillna(0).astype("int64")
        c["orders"] = c["orders"].fillna(0).astype("int64")
        with np.errstate(divide="ignore", invalid="ignore"):
            c["complaint_rate"] = np.where(c["buyers"] > 0, c["complainers"] / c["buyers"], np.nan)
            c["rate_per_1000"] = np.where(c["buyers"] > 0, 1000 * c["complaints"] / c["buyers"], np.nan)
            c["per_1000_orders"] = np.where(c["orders"] > 0, 1000 * c["complaints"] / c["orders"], np.nan)
    else:
        c["buyers"] = pd.NA
        c["orders"] = pd.NA
        c["complaint_rate"] = np.nan
        c["rate_per_1000"] = np.nan
        c["per_1000_orders"] = np.nan
    if by:
        tot = c.groupby("period")["complaints"].transform("sum")
        c["share"] = np.where(tot > 0, c["complaints"] / tot.where(tot > 0, 1), np.nan)
    c.insert(1, "label", [period_label(p, granularity) for p in c["period"]])
    return c.sort_values(["period"] + ([by] if by else [])).reset_index(drop=True)


def period_summary(ds: Dataset, start: Any, end_exclusive: Any) -> dict[str, Any]:
    """Complaints, complaining customers (None without customer ids), buyers and orders (None without
    transactions) in ``[start, end_exclusive)`` — the report period's figures, zero when it is empty."""
    ds.require("complaints", "opened_at")
    start, end = _date(start), _date(end_exclusive)
    cust = "count(DISTINCT customer_id)" if ds.has("complaints", "customer_id") else "NULL"
    r = ds.sql(f"SELECT count(*) AS complaints, {cust} AS complainers FROM complaints "
               f"WHERE opened_at >= TIMESTAMP '{start}' AND opened_at < TIMESTAMP '{end}'").iloc[0]
    out: dict[str, Any] = {"complaints": int(r["complaints"]),
                           "complainers": None if pd.isna(r["complainers"]) else int(r["complainers"]),
                           "buyers": None, "orders": None}
    if ds.has("transactions", "customer_id", "date"):
        pos = "AND amount > 0" if ds.has("transactions", "amount") else ""
        orders = "count(DISTINCT order_id)" if ds.has("transactions", "order_id") else "count(*)"
        e = ds.sql(f"SELECT count(DISTINCT customer_id) AS buyers, {orders} AS orders FROM transactions "
                   f"WHERE date >= DATE '{start}' AND date < DATE '{end}' {pos}").iloc[0]
        out["buyers"], out["orders"] = int(e["buyers"]), int(e["orders"])
    return out


def pareto(ds: Dataset, start: Any, end_exclusive: Any, by: str = "category") -> pd.DataFrame:
    """Categories by complaints in ``[start, end_exclusive)`` (the report period in the report), largest
    first, with share and cumulative share of that range's complaints."""
    ds.require("complaints", by)
    df = ds.sql(f"SELECT COALESCE(CAST({by} AS VARCHAR), '–') AS {by}, count(*) AS complaints FROM complaints "
                f"WHERE opened_at >= TIMESTAMP '{_date(start)}' AND opened_at < TIMESTAMP '{_date(end_exclusive)}' "
                f"GROUP BY 1 ORDER BY 2 DESC, 1")
    total = df["complaints"].sum()
    df["share"] = df["complaints"] / total if total else np.nan
    df["cumulative_share"] = df["share"].cumsum()
    return df


def top_categories(ds: Dataset, start: Any, end_exclusive: Any, n: int = 12) -> list[str]:
    """The ``n`` largest categories in the range (others are lumped as 'other' in models)."""
    return pareto(ds, start, end_exclusive)["category"].head(n).tolist()


# ----------------------------------------------------------------- 2 trend
def decompose(series: pd.DataFrame, value: str = "complaint_rate", granularity: str = "month") -> pd.DataFrame:
    """Trend / seasonal / remainder of ``series[value]`` by STL (robust).

    Season length: 12 (month), 4 (quarter), 52 (week), 7 (day); STL needs two
    full seasons, otherwise the trend is a centred moving average and the
    seasonal part zero (``method`` says which was used).
    """
    from statsmodels.tsa.seasonal import STL

    period = {"month": 12, "quarter": 4, "week": 52, "day": 7}[_check_granularity(granularity)]
    y = pd.to_numeric(series[value], errors="coerce")
    if y.isna().all():
        y = pd.to_numeric(series["complaints"], errors="coerce")
    y = y.interpolate(limit_direction="both").fillna(0.0)
    out = pd.DataFrame({"period": series["period"].to_numpy(), "label": series["label"].to_numpy(),
                        "observed": y.to_numpy()})
    if len(y) >= 2 * period + 1 or (granularity == "month" and len(y) >= 24):
        res = STL(y.to_numpy(), period=period, robust=True, seasonal=period + (1 - period % 2)).fit()
        out["trend"], out["seasonal"], out["resid"] = res.trend, res.seasonal, res.resid
        out["method"] = "STL"
    else:
        w = max(3, min(period, len(y) // 2 * 2 - 1))
        out["trend"] = y.rolling(w, center=True, min_periods=1).mean().to_numpy()
        out["seasonal"] = 0.0
        out["resid"] = out["observed"] - out["trend"]
        out["method"] = "moving average"
    return out


def _season_key(periods: Sequence[dt.date], granularity: str) -> np.ndarray:
    if granularity == "quarter":
        return np.array([(p.month - 1) // 3 + 1 for p in periods])
    return np.array([p.month for p in periods])


def _period_index(cells: pd.DataFrame) -> np.ndarray:
    """0, 1, 2, … for the distinct periods of ``cells`` in time order (one entry per row)."""
    tindex = {p: i for i, p in enumerate(sorted(set(cells["period"])))}
    return np.array([tindex[p] for p in cells["period"]], float)


def _design(cells: pd.DataFrame, granularity: str, season: bool, tt: np.ndarray | None = None
            ) -> tuple[np.ndarray, list[str]]:
    """Model matrix: category intercepts, category trends (t in periods, or ``tt``), shared season dummies."""
    cats = list(dict.fromkeys(cells["category"]))
    tt = _period_index(cells) if tt is None else np.asarray(tt, float)
    tt = tt - tt.mean() if len(tt) else tt
    cols, names = [], []
    for c in cats:
        ind = (cells["category"].to_numpy() == c).astype(float)
        cols += [ind, ind * tt]
        names += [f"{c}:level", f"{c}:trend"]
    if season:
        key = _season_key(list(cells["period"]), granularity)
        levels = sorted(set(key))
        for lv in levels[1:]:
            cols.append((key == lv).astype(float))
            names.append(f"season:{lv}")
    return np.column_stack(cols), names


def _season_ok(periods: Sequence[dt.date], granularity: str) -> bool:
    """Seasonality is estimable with two full years (8 quarters) of periods."""
    ps = sorted(set(periods))
    if not ps:
        return False
    span_months = (ps[-1].year - ps[0].year) * 12 + ps[-1].month - ps[0].month + 1
    return span_months >= 24 and granularity in ("day", "week", "month", "quarter")


def _poisson_irls(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iters: int = 50,
                  ridge: float = 1e-8) -> np.ndarray:
    """Poisson GLM (log link, offset) by iteratively reweighted least squares (numpy only)."""
    mu = np.maximum(y, 0.5)
    eta = np.log(mu)
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        z = eta - offset + (y - mu) / mu
        w = mu
        xtw = X.T * w
        new = np.linalg.solve(xtw @ X + ridge * np.eye(X.shape[1]), xtw @ z)
        eta = np.clip(X @ new + offset, -50, 50)
        mu = np.exp(eta)
        if np.max(np.abs(new - beta)) < 1e-9:
            beta = new
            break
        beta = new
    return beta


_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7)


def _lgamma(x: np.ndarray) -> np.ndarray:
    """log Γ(x) for x > 0, vectorised (Lanczos, g = 7; ~1e-14 relative). Keeps scipy out of ``workbench alerts``."""
    x = np.asarray(x, float)
    refl = x < 0.5
    z = np.where(refl, 1.0 - x, x) - 1.0
    acc = np.full_like(z, _LANCZOS[0])
    for i, c in enumerate(_LANCZOS[1:], start=1):
        acc = acc + c / (z + i)
    t_ = z + 7.5
    lg = 0.5 * math.log(2 * math.pi) + (z + 0.5) * np.log(t_) - t_ + np.log(acc)
    if refl.any():
        lg = np.where(refl, np.log(math.pi / np.abs(np.sin(math.pi * x))) - lg, lg)
    return lg


def upper_limit(mu: np.ndarray | float, alpha: float = ALPHA, dispersion: float = 1.0) -> np.ndarray:
    """Smallest count L with P(Y > L) <= ``alpha``: Poisson(mu), or negative binomial with variance
    ``dispersion * mu`` when ``dispersion > 1``. A count above L is flagged.

    Exact tail sums of the probability mass function on a grid from ``floor(mu)`` to
    ``mu + 20 sd + 40`` (numpy only); above ``mu = 1e5`` the normal approximation.
    """
    from statistics import NormalDist

    mu = np.atleast_1d(np.asarray(mu, float))
    out = np.zeros(mu.shape, float)
    phi = max(float(dispersion), 1.0)
    good = np.flatnonzero(np.isfinite(mu) & (mu > 0))
    big = good[mu[good] > 1e5]
    if big.size:
        z = NormalDist().inv_cdf(1 - alpha)
        out[big] = np.ceil(mu[big] + z * np.sqrt(mu[big] * phi))
    todo = good[mu[good] <= 1e5]
    for chunk in np.array_split(todo, max(1, int(np.ceil(todo.size / 256)))):
        if not chunk.size:
            continue
        m = mu[chunk]
        sd = np.sqrt(m * phi)
        lo = np.floor(m) if alpha < 0.5 else np.zeros_like(m)
        hi = np.ceil(m + 20 * sd + 40)
        width = int((hi - lo).max()) + 1
        k = lo[:, None] + np.arange(width)[None, :]
        mm = m[:, None]
        if phi > 1.0 + 1e-9:
            r = mm / (phi - 1.0)
            logpmf = (_lgamma(k + r) - _lgamma(r) - _lgamma(k + 1.0) + r * np.log(r / (r + mm))
                      + k * np.log(mm / (r + mm)))
        else:
            logpmf = -mm + k * np.log(mm) - _lgamma(k + 1.0)
        pmf = np.where(k <= hi[:, None], np.exp(logpmf), 0.0)
        tail = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1] - pmf  # P(Y > k) up to the negligible mass beyond hi
        idx = np.argmax(tail <= alpha, axis=1)
        out[chunk] = lo + idx
    return out


def alert_cells(ds: Dataset, start: Any, end_exclusive: Any, granularity: str = "month",
                categories: Sequence[str] | None = None, buyers: bool = True) -> pd.DataFrame:
    """Periods × categories: ``complaints`` and ``exposure`` (purchase rows, i.e. orders or order
    lines — additive over days, so a partial period gets a partial expectation; days without
    transactions) and, with ``buyers``, distinct buying customers (the trend model's exposure).

    Categories outside ``categories`` are lumped into ``__other__``; every
    period × category appears (zeros included). Engine aggregates only.
    """
    ds.require("complaints", "opened_at", "category")
    start, end = _date(start), _date(end_exclusive)
    c = ds.sql(f"SELECT {_trunc('opened_at', granularity)} AS period, category, count(*) AS complaints "
               f"FROM complaints WHERE opened_at >= TIMESTAMP '{start}' AND opened_at < TIMESTAMP '{end}' "
               f"GROUP BY ALL")
    c["period"] = pd.to_datetime(c["period"]).dt.date
    c["category"] = c["category"].fillna("–").astype(str)
    if categories is not None:
        keep = set(categories)
        c.loc[~c["category"].isin(keep), "category"] = OTHER
        c = c.groupby(["period", "category"], as_index=False)["complaints"].sum()
    periods = _grid(ds, start, end, granularity)
    cats = sorted(set(c["category"]), key=lambda x: (x == OTHER, -c.loc[c["category"] == x, "complaints"].sum(), x))
    grid = pd.MultiIndex.from_product([periods, cats], names=["period", "category"]).to_frame(index=False)
    grid["period"] = grid["period"].astype(object)
    grid["category"] = grid["category"].astype(object)
    cells = grid.merge(c, on=["period", "category"], how="left")
    cells["complaints"] = cells["complaints"].fillna(0).astype("int64")
    days = pd.DataFrame({"period": pd.Series(periods, dtype=object), "days": _days_in(periods, granularity, start, end)})
    e = _exposure(ds, granularity, start, end, distinct=buyers)
    if e is not None:
        days = days.merge(e, on="period", how="left")
        days["exposure"] = days["rows"].fillna(0).astype(float)
        days["buyers"] = days["buyers"].fillna(0).astype(float) if buyers else np.nan
        days["exposure_unit"] = "orders"
    else:
        days["exposure"] = days["days"]
        days["buyers"] = np.nan
        days["exposure_unit"] = "days"
    cells = cells.merge(days, on="period", how="left")
    cells["label"] = [period_label(p, granularity) for p in cells["period"]]
    return cells


def pearson_dispersion(y: np.ndarray, mu: np.ndarray, n_params: int) -> float:
    """Pearson χ² / (n − k), floored at 1: the overdispersion of counts ``y`` around ``mu`` — the one
    estimate every alert limit uses (report control charts and ``workbench alerts`` alike)."""
    y = np.asarray(y, float)
    mu = np.asarray(mu, float)
    if not len(y):
        return 1.0
    dof = max(len(y) - int(n_params), 1)
    return max(float(np.sum((y - mu) ** 2 / np.maximum(mu, 1e-9)) / dof), 1.0)


#: periods a fitted trend may be carried beyond the last fitted period (later periods use this value)
MAX_EXTRAPOLATE = 3


def detect_alerts(cells: pd.DataFrame, granularity: str = "month", alpha: float = ALPHA,
                  judge_from: Any = None, season: bool | None = None, min_history: int = 6,
                  max_extrapolate: int = MAX_EXTRAPOLATE) -> pd.DataFrame:
    """Expected count and upper limit for every period × category; ``flagged`` when observed > limit.

    Model (see module docstring): Poisson log-linear with category level and
    trend, shared season (month of year; quarter for quarterly data; only
    with two years of history) and ``log(exposure)`` offset; negative binomial
    limits when the Pearson dispersion exceeds 1. The fit is repeated up to
    three times without the cells above their limit. With ``judge_from``
    only earlier periods are fitted and later ones are judged out of sample;
    the trend is carried at most ``max_extrapolate`` periods beyond the last
    fitted one (held flat after that). Periods with zero exposure are not
    judged. No alert where the expectation rests on no history: a
    category's cells before its first complaint are neither fitted nor
    judged, and a category with fewer than ``min_history`` fitted periods
    from its first complaint on is not judged at all (``has_history``
    False; listed in ``attrs["without_history"]``).

    Returns ``cells`` plus ``expected``, ``upper_limit``, ``flagged``,
    ``judged``, ``excess`` and attributes ``dispersion``, ``alpha``,
    ``cells_checked``, ``expected_false_alarms``.
    """
    df = cells.copy().reset_index(drop=True)
    y = df["complaints"].to_numpy(float)
    expo = df["exposure"].to_numpy(float)
    valid = expo > 0
    periods = list(df["period"])
    if judge_from is not None:
        jf = _date(judge_from)
        fit_mask = np.array([p < jf for p in periods]) & valid
        judged = np.array([p >= jf for p in periods]) & valid
    else:
        fit_mask = valid.copy()
        judged = valid.copy()
    n_hist = len({p for p, m in zip(periods, fit_mask, strict=True) if m})
    if n_hist < min_history:
        raise ValueError(f"alerts need at least {min_history} {granularity}s of history before the judged "
                         f"periods (got {n_hist})")
    # each category's history starts at its first complaint in the fitted periods
    pi = _period_index(df) if len(df) else np.zeros(0)
    cat = df["category"].astype(str).to_numpy()
    started = np.zeros(len(df), bool)
    has_hist = np.zeros(len(df), bool)
    without: list[str] = []
    for c in dict.fromkeys(cat):
        rows = cat == c
        pos = pi[rows & fit_mask & (y > 0)]
        if not pos.size:
            without.append(c)
            continue
        st = rows & (pi >= pos.min())
        started |= st
        if int((st & fit_mask).sum()) >= min_history:
            has_hist |= rows
        else:
            without.append(c)
    fit_mask = fit_mask & started & has_hist
    judged = judged & started & has_hist
    if season is None:
        season = _season_ok([p for p, m in zip(periods, fit_mask, strict=True) if m], granularity)
    tt = pi.copy()
    if fit_mask.any():
        tt = np.minimum(tt, pi[fit_mask].max() + max(int(max_extrapolate), 0))
    X, _ = _design(df, granularity, season, tt)
    offset = np.log(np.where(valid, expo, 1.0))
    use = fit_mask.copy()
    mu = np.full(len(df), np.nan)
    limit = np.full(len(df), np.nan)
    phi = 1.0
    # drop columns with no information in the fitted rows (e.g. a season level only in judged periods)
    for _ in range(4 if use.any() else 0):
        cols = np.flatnonzero(np.abs(X[use]).sum(axis=0) > 0)
        beta = np.zeros(X.shape[1])
        beta[cols] = _poisson_irls(X[use][:, cols], y[use], offset[use])
        mu = np.exp(np.clip(X @ beta + offset, -50, 50))
        phi = pearson_dispersion(y[use], mu[use], len(cols))
        limit = upper_limit(mu, alpha, phi)
        over = fit_mask & (y > limit)
        new_use = fit_mask & ~over
        if np.array_equal(new_use, use):
            break
        use = new_use
    mu = np.where(valid & started & has_hist, mu, np.nan)
    limit = np.where(valid & started & has_hist, limit, np.nan)
    df["expected"] = mu
    df["upper_limit"] = limit
    df["judged"] = judged
    df["flagged"] = judged & (y > np.nan_to_num(limit, nan=np.inf))
    df["excess"] = np.where(df["flagged"], y - mu, 0.0)
    df["has_history"] = has_hist
    df.attrs.update(dispersion=phi, alpha=alpha, cells_checked=int(judged.sum()),
                    expected_false_alarms=float(alpha * judged.sum()), season=bool(season),
                    granularity=granularity, fitted_cells=int(use.sum()), without_history=without,
                    max_extrapolate=int(max_extrapolate), min_history=int(min_history))
    return df


def u_chart(counts: Sequence[float], exposure: Sequence[float], sigma: float = 3.0) -> pd.DataFrame:
    """Textbook u-chart: ``u_i = c_i / n_i``, centre ``ū = Σc / Σn``, limits ``ū ± sigma·√(ū / n_i)``
    (lower limit floored at 0). ``n`` is in inspection units (e.g. thousands of customers)."""
    c = np.asarray(counts, float)
    n = np.asarray(exposure, float)
    ubar = c.sum() / n.sum()
    half = sigma * np.sqrt(ubar / n)
    u = c / n
    ucl = ubar + half
    return pd.DataFrame({"count": c, "exposure": n, "u": u, "center": ubar, "ucl": ucl,
                         "lcl": np.maximum(ubar - half, 0.0), "flagged": u > ucl})


def adjust_pvalues(p: Sequence[float], method: str = "holm") -> np.ndarray:
    """Holm (family-wise) or Benjamini-Hochberg (``"fdr_bh"``) adjusted p-values."""
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    elif method in ("fdr_bh", "bh"):
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
        adj = np.minimum(adj, 1.0)
    else:
        raise ValueError("correction must be 'holm' or 'fdr_bh'")
    out = np.empty(m)
    out[order] = adj
    return out


def _trim_to_first_data(cells: pd.DataFrame) -> pd.DataFrame:
    """Drop each category's periods before its first complaint (a category that did not exist yet
    has no zero counts to learn from), and periods after the last complaint of any category (the
    data has ended: those periods were not observed)."""
    if cells.empty:
        return cells
    pos = cells[cells["complaints"] > 0]
    if pos.empty:
        return cells.iloc[:0]
    cells = cells[cells["period"] <= pos["period"].max()]
    first = pos.groupby("category")["period"].min()
    f = cells["category"].map(first)
    return cells[f.notna() & (cells["period"] >= f)].reset_index(drop=True)


#: a trend interval wider than this (in % change per period) is "not estimable": a change per period
#: cannot fall below −100%, so an interval wider than 100 percentage points says nothing
MAX_TREND_CI_WIDTH = 1.0


def trend_estimable(ci_low: Any, ci_high: Any, max_width: float = MAX_TREND_CI_WIDTH) -> np.ndarray:
    """True where the interval is finite and no wider than ``max_width`` (vectorised)."""
    lo = np.asarray(ci_low, float)
    hi = np.asarray(ci_high, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(lo) & np.isfinite(hi) & ((hi - lo) <= max_width)


def category_trends(cells: pd.DataFrame, granularity: str = "month", exposure: str = "buyers",
                    season: bool | None = None, correction: str = "holm", min_history: int = 6,
                    max_ci_width: float = MAX_TREND_CI_WIDTH) -> pd.DataFrame:
    """Trend per category: % change per period with 95% CI and p-value, corrected for the number of
    categories tested (Holm by default), ranked by growth — a row for every category.

    Each category's history starts at its first complaint (never padded
    before it) and ends with the data's last period with a complaint; a category is tested only with at least ``min_history``
    periods with complaints (``status = "short_history"`` otherwise, no
    slope). One quasi-Poisson GLM (statsmodels, scale = Pearson χ²/df) over
    periods × tested categories with category levels and trends, shared
    seasonality and ``log(exposure)`` offset (``buyers`` = active customers;
    falls back to days without transactions). A tested slope whose interval
    is not finite or wider than ``max_ci_width`` is ``status =
    "not_estimable"`` (``estimable`` False): never a headline.

    Columns: category, complaints, share (of the window's complaints),
    periods (with complaints), tested, trend_slope, ci_low, ci_high, p_value,
    p_adjusted (over the tested categories), estimable, status, growth_rank
    (1 = fastest estimable growth; NaN for the others), recent_slope and
    recent_p (the category's latest ``max(min_history, n // 3)`` periods
    alone). A trend whose recent slope goes significantly the other way is
    ``status = "reversed"``: shown, never a headline ("rose 24% a month" over
    a window whose last eight months fell steeply would mislead).
    """
    import statsmodels.api as sm

    cols_out = ["category", "complaints", "share", "periods", "tested", "trend_slope", "ci_low", "ci_high",
                "p_value", "p_adjusted", "estimable", "status", "growth_rank", "recent_slope", "recent_p"]
    df = cells.copy()
    col = exposure if exposure in df and pd.to_numeric(df[exposure], errors="coerce").gt(0).any() else "days"
    expo = pd.to_numeric(df[col], errors="coerce").fillna(0).to_numpy(float)
    df = df[expo > 0]
    df = _trim_to_first_data(df)
    totals = df.groupby("category", sort=False)["complaints"].sum()
    grand = totals.sum()
    with_data = df[df["complaints"] > 0].groupby("category")["period"].nunique()
    cats = list(dict.fromkeys(df["category"]))
    tested = [c for c in cats if with_data.get(c, 0) >= min_history]
    fit = df[df["category"].isin(tested)].reset_index(drop=True)
    if season is None:
        season = _season_ok(list(fit["period"]), granularity)
    est: dict[str, tuple[float, float, float]] = {}
    dispersion = float("nan")
    if tested:
        X, names = _design(fit, granularity, season)
        keep = np.abs(X).sum(axis=0) > 0
        X, names = X[:, keep], [n for n, k in zip(names, keep, strict=True) if k]
        e = pd.to_numeric(fit[col], errors="coerce").to_numpy(float)
        try:
            with np.errstate(all="ignore"):
                res = sm.GLM(fit["complaints"].to_numpy(float), X, family=sm.families.Poisson(),
                             offset=np.log(e)).fit(scale="X2")
            params = pd.Series(res.params, index=names)
            bse = pd.Series(res.bse, index=names)
            pvals = pd.Series(res.pvalues, index=names)
            dispersion = float(res.scale)
            # the recent-direction check subtracts seasonality only when three years support it: with two,
            # month-of-year effects soak up a one-off surge and would hide its collapse
            sidx = [i for i, n in enumerate(names) if n.startswith("season:")]
            ps = sorted(set(fit["period"]))
            three_years = bool(ps) and (ps[-1].year - ps[0].year) * 12 + ps[-1].month - ps[0].month + 1 >= 36
            fit["_season"] = X[:, sidx] @ np.asarray(res.params)[sidx] if sidx and three_years else 0.0
            for c in tested:
                k = f"{c}:trend"
                est[c] = (float(params[k]), float(bse[k]), float(pvals[k]))
        except (np.linalg.LinAlgError, ValueError, OverflowError):
            est = {c: (float("nan"),) * 3 for c in tested}
    recent = {c: _recent_slope(fit[fit["category"] == c], col, min_history) for c in tested} if est else {}
    rows = []
    for c in cats:
        b, se, pv = est.get(c, (float("nan"),) * 3)
        with np.errstate(over="ignore", invalid="ignore"):
            row = {"category": c, "complaints": int(totals[c]), "share": totals[c] / grand if grand else np.nan,
                   "periods": int(with_data.get(c, 0)), "tested": c in tested,
                   "trend_slope": float(np.expm1(b)), "ci_low": float(np.expm1(b - 1.96 * se)),
                   "ci_high": float(np.expm1(b + 1.96 * se)), "p_value": pv}
        row["recent_slope"], row["recent_p"] = recent.get(c, (float("nan"), float("nan")))
        rows.append(row)
    out = pd.DataFrame(rows, columns=cols_out[:9] + ["recent_slope", "recent_p"])
    out["p_adjusted"] = np.nan
    t_mask = out["tested"].to_numpy(bool) & out["p_value"].notna().to_numpy()
    if t_mask.any():
        out.loc[t_mask, "p_adjusted"] = adjust_pvalues(out.loc[t_mask, "p_value"].to_numpy(float), correction)
    out["estimable"] = out["tested"].to_numpy(bool) & trend_estimable(out["ci_low"], out["ci_high"], max_ci_width)
    # a trend that has turned: the recent half of the history goes significantly the other way
    reversed_ = (out["estimable"].to_numpy(bool) & (out["recent_p"].fillna(1.0).to_numpy() < 0.05)
                 & (np.sign(out["recent_slope"].fillna(0.0).to_numpy()) == -np.sign(out["trend_slope"].to_numpy())))
    out["status"] = np.where(~out["tested"].to_numpy(bool), "short_history",
                             np.where(~out["estimable"].to_numpy(bool), "not_estimable",
                                      np.where(reversed_, "reversed", "ok")))
    for c in ("trend_slope", "ci_low", "ci_high"):
        out.loc[~out["estimable"], c] = np.nan
    out["_s"] = out["trend_slope"].where(out["estimable"])
    out = out.sort_values(["_s", "complaints"], ascending=[False, False], na_position="last").drop(columns="_s")
    out = out.reset_index(drop=True)
    ranks = np.full(len(out), np.nan)
    ranks[out["estimable"].to_numpy(bool)] = np.arange(1, int(out["estimable"].sum()) + 1)
    out["growth_rank"] = ranks
    out.attrs.update(dispersion=dispersion, exposure=col, season=bool(season), correction=correction,
                     granularity=granularity, min_history=int(min_history), tested=len(tested),
                     max_ci_width=float(max_ci_width))
    return out[cols_out]


def _recent_slope(sub: pd.DataFrame, exposure: str, min_history: int = 6) -> tuple[float, float]:
    """Does the trend still hold at the end? Slope (% change per period) and its quasi-Poisson p-value
    over the category's latest ``max(min_history, n // 3)`` periods alone, with the window model's
    seasonal effects (column ``_season``) as offset (NaN when the history is not longer than that window)."""
    import statsmodels.api as sm

    sub = sub.sort_values("period")
    k = max(int(min_history), len(sub) // 3)
    if len(sub) <= k or k < 3:
        return float("nan"), float("nan")
    last = sub.iloc[-k:]
    y = last["complaints"].to_numpy(float)
    if y.sum() == 0:
        return float("nan"), float("nan")
    try:
        with np.errstate(all="ignore"):
            off = np.log(pd.to_numeric(last[exposure]).to_numpy(float))
            if "_season" in last:  # the window model's seasonality, so a seasonal dip is not a turn
                off = off + last["_season"].to_numpy(float)
            r = sm.GLM(y, sm.add_constant(np.arange(k, dtype=float)), family=sm.families.Poisson(),
                       offset=off).fit(scale="X2")
        return float(np.expm1(r.params[1])), float(r.pvalues[1])
    except (np.linalg.LinAlgError, ValueError, OverflowError):
        return float("nan"), float("nan")


# ----------------------------------------------------------------- 4 handling
def kaplan_meier(durations: Sequence[float], events: Sequence[int], weights: Sequence[float] | None = None
                 ) -> dict[str, Any]:
    """Kaplan-Meier (statsmodels ``SurvfuncRight``) on durations with event flags (0 = censored) and
    optional frequency weights. Returns median, P90 (None when the curve never falls that far), the
    curve (``time``, ``survival``) and ``within(h)``, the estimated share finished within ``h`` hours."""
    from statsmodels.duration.survfunc import SurvfuncRight

    d = np.asarray(durations, float)
    e = np.asarray(events, float)
    w = None if weights is None else np.asarray(weights, float)
    n = float(w.sum()) if w is not None else float(len(d))
    if n == 0 or (e * (w if w is not None else 1)).sum() == 0:
        return {"n": n, "events": 0.0, "median": None, "p90": None, "time": np.array([]), "survival": np.array([]),
                "within": lambda h: 0.0 if n else None}
    sf = SurvfuncRight(d, e, freq_weights=w)
    times, surv = np.asarray(sf.surv_times, float), np.asarray(sf.surv_prob, float)

    def quant(q: float) -> float | None:
        idx = np.flatnonzero(surv <= 1 - q + 1e-12)
        return float(times[idx[0]]) if idx.size else None

    def within(h: float) -> float:
        idx = np.searchsorted(times, h, side="right") - 1
        return float(1 - surv[idx]) if idx >= 0 else 0.0

    ev = float((e * (w if w is not None else 1)).sum())
    return {"n": n, "events": ev, "median": quant(0.5), "p90": quant(0.9), "time": times, "survival": surv,
            "within": within}


@dataclass(frozen=True)
class Handling:
    """Handling performance: overall figures, per-group tables, KM curves, monthly trend."""

    overall: dict[str, Any]
    by: dict[str, pd.DataFrame]
    curves: pd.DataFrame
    trend: pd.DataFrame
    sla_hours: float

    def __repr__(self) -> str:
        o = self.overall
        return (f"<Handling: n={o['complaints']:,}, resolution median {o['median_hours']} h, P90 {o['p90_hours']} h, "
                f"within {self.sla_hours:g} h {o['within_sla_share']}, open {o['open_backlog']:,} "
                f"(closed without time {o['closed_without_time']:,})>")


STEP_HOURS = 0.25  # durations are aggregated in the engine to quarter-hours


def _durations(ds: Dataset, start: dt.date, end: dt.date, as_of: dt.datetime, closed: str, groups: list[str],
               kind: str) -> pd.DataFrame:
    """Engine aggregate: (groups…, hours bucket, event) → n for resolution or first response."""
    asof = f"TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}'"
    if kind == "resolution":
        ds.require("complaints", "closed_at")
        event = f"(closed_at IS NOT NULL AND closed_at <= {asof})"
        # status-closed without a time: excluded from the curve (counted separately)
        where_extra = f"AND NOT (closed_at IS NULL AND {closed})"
        stop = f"least(COALESCE(closed_at, {asof}), {asof})"
    else:
        ds.require("complaints", "first_response_at")
        event = f"(first_response_at IS NOT NULL AND first_response_at <= {asof})"
        where_extra = ""
        close_time = "closed_at" if ds.has("complaints", "closed_at") else "NULL"
        stop = f"least(COALESCE(first_response_at, {close_time}, {asof}), {asof})"
    g = "".join(f"COALESCE(CAST({c} AS VARCHAR), '–') AS {c}, " for c in groups)
    sql = (f"SELECT {g}round(greatest(epoch({stop}) - epoch(opened_at), 0) / 3600 / {STEP_HOURS}) * {STEP_HOURS} "
           f"AS hours, CAST({event} AS INTEGER) AS event, count(*) AS n FROM complaints "
           f"WHERE opened_at >= TIMESTAMP '{start}' AND opened_at < TIMESTAMP '{end}' AND opened_at <= {asof} "
           f"{where_extra} GROUP BY ALL")
    return ds.sql(sql)


def _km_summary(frame: pd.DataFrame, sla: float) -> dict[str, Any]:
    km = kaplan_meier(frame["hours"], frame["event"], frame["n"])
    return {"median_hours": km["median"], "p90_hours": km["p90"],
            "within_sla_share": km["within"](sla) if km["n"] else None, "km": km}


def handling(ds: Dataset, start: Any, end_exclusive: Any, sla_hours: float = 48.0,
             closed_statuses: Sequence[str] | None = None, by: Sequence[str] = ("category", "channel", "handler"),
             granularity: str = "month", small_n: int = SMALL_N, as_of: Any = None) -> Handling:
    """Time to first response and to resolution with open complaints censored (Kaplan-Meier).

    ``overall``: complaints, closed, open_backlog, closed_without_time,
    window_start / window_end (the opening dates counted, both inclusive:
    ``start`` to the day before ``end_exclusive``, cut at ``as_of``), as_of,
    data_end, median_hours / p90_hours / within_sla_share (resolution),
    response_median_hours / response_p90_hours / response_within_sla_share,
    backlog_median_age_hours, backlog_over_sla. ``by[col]``: the same per
    group with ``small_n`` marked. ``trend``: per opening period, resolution
    median and share within SLA, and the open backlog at each period end.

    Everything is measured at ``as_of`` (default: the end of the range, or
    the data's end when that is earlier) — open cases and backlog age at the
    period end, not at the data end: a close time after ``as_of`` is still
    open (censored at ``as_of``). Without a close time a closed status
    (``closed_statuses`` LIKE patterns, else ``ds.closed_statuses``, else
    :data:`CLOSED_STATUSES`) closes a complaint (``overall["close_times"]``
    False when the data has no close times at all).
    """
    ds.require("complaints", "opened_at")
    _quiet(ds)
    if not ds.has("complaints", "closed_at") and not ds.has("complaints", "status"):
        raise MissingDataError("complaints", ("closed_at",), "handling needs a close time or a status")
    start, end = _date(start), _date(end_exclusive)
    data_end = _as_of(ds)
    period_end = dt.datetime.combine(end, dt.time())
    as_of = pd.Timestamp(as_of).to_pydatetime() if as_of is not None else (
        min(data_end, period_end) if data_end is not None else period_end)
    closed = _closed_sql(ds, closed_statuses, as_of)
    by = [c for c in by if ds.has("complaints", c)]
    has_close = ds.has("complaints", "closed_at")
    # the complaints counted: opened in [start, end) and by as_of (nothing opened after the moment measured)
    window = (f"opened_at >= TIMESTAMP '{start}' AND opened_at < TIMESTAMP '{end}' "
              f"AND opened_at <= TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}'")
    cnt = ds.sql(
        f"SELECT count(*) AS complaints, sum(CASE WHEN {closed} THEN 1 ELSE 0 END) AS closed, "
        f"sum(CASE WHEN NOT {closed} THEN 1 ELSE 0 END) AS open_backlog, "
        + (f"sum(CASE WHEN closed_at IS NULL AND {closed} THEN 1 ELSE 0 END)" if has_close
           else f"sum(CASE WHEN {closed} THEN 1 ELSE 0 END)")
        + " AS closed_without_time, "
        f"median(CASE WHEN NOT {closed} THEN (epoch(TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}') - epoch(opened_at)) / 3600 "
        f"END) AS backlog_median_age_hours, "
        f"sum(CASE WHEN NOT {closed} AND (epoch(TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}') - epoch(opened_at)) / 3600 > "
        f"{float(sla_hours)} THEN 1 ELSE 0 END) AS backlog_over_sla "
        f"FROM complaints WHERE {window}").iloc[0]
    overall: dict[str, Any] = {k: ((None if "hours" in k else 0) if pd.isna(v) else (float(v) if "hours" in k else int(v)))
                               for k, v in cnt.items()}
    overall["as_of"] = as_of.isoformat(sep=" ", timespec="minutes")
    # the opening dates counted, first and last day inclusive (the history window, cut at as_of)
    overall["window_start"] = start.isoformat()
    overall["window_end"] = (as_of.date() if as_of < period_end else end - dt.timedelta(days=1)).isoformat()
    overall["sla_hours"] = float(sla_hours)
    overall["data_end"] = None if data_end is None else data_end.isoformat(sep=" ", timespec="minutes")
    overall["closed_patterns"] = list(closed_patterns(ds, closed_statuses)[0]) if ds.has("complaints", "status") else []
    overall["close_times"] = bool(has_close) and bool(ds.sql(
        "SELECT count(closed_at) FROM complaints").iloc[0, 0])
    overall["status_closing"] = ds.has("complaints", "status")
    curves = []
    durations = {}
    # time to resolution (keys median_hours, …) and to first response (response_median_hours, …)
    for kind, prefix, measurable in (("resolution", "", has_close),
                                     ("response", "response_", ds.has("complaints", "first_response_at"))):
        durations[kind] = _durations(ds, start, end, as_of, closed, by, kind) if measurable else None
        d = durations[kind]
        if d is not None and len(d):
            s = _km_summary(d.groupby(["hours", "event"], as_index=False)["n"].sum(), sla_hours)
            overall.update({prefix + k: s[k] for k in ("median_hours", "p90_hours", "within_sla_share")})
            curves.append(pd.DataFrame({"kind": kind, "dimension": "all", "group": "all",
                                        "hours": s["km"]["time"], "open_share": s["km"]["survival"]}))
        else:
            overall.update({prefix + k: None for k in ("median_hours", "p90_hours", "within_sla_share")})
    res, resp = durations["resolution"], durations["response"]
    tables: dict[str, pd.DataFrame] = {}
    for col in by:
        counts = ds.sql(
            f"SELECT COALESCE(CAST({col} AS VARCHAR), '–') AS {col}, count(*) AS complaints, "
            f"sum(CASE WHEN NOT {closed} THEN 1 ELSE 0 END) AS open_backlog FROM complaints "
            f"WHERE {window} GROUP BY 1")
        rows = []
        for _, row in counts.iterrows():
            g = row[col]
            rec = {col: g, "complaints": int(row["complaints"]), "open_backlog": int(row["open_backlog"])}
            for kind, frame, prefix in (("resolution", res, ""), ("response", resp, "response_")):
                if frame is None or not len(frame):
                    continue
                sub = frame[frame[col] == g].groupby(["hours", "event"], as_index=False)["n"].sum()
                s = _km_summary(sub, sla_hours)
                rec.update({f"{prefix}median_hours": s["median_hours"], f"{prefix}p90_hours": s["p90_hours"],
                            f"{prefix}within_sla_share": s["within_sla_share"]})
                if col == "category" or (col == "handler" and kind == "resolution"):
                    if len(s["km"]["time"]):
                        curves.append(pd.DataFrame({"kind": kind, "dimension": col, "group": g,
                                                    "hours": s["km"]["time"], "open_share": s["km"]["survival"]}))
            rec["small_n"] = rec["complaints"] < small_n
            rows.append(rec)
        tables[col] = (pd.DataFrame(rows).sort_values("complaints", ascending=False).reset_index(drop=True) if rows
                       else pd.DataFrame(columns=[col, "complaints", "open_backlog", "median_hours", "p90_hours",
                                                  "within_sla_share", "small_n"]))
    trend = _handling_trend(ds, start, end, as_of, closed, sla_hours, granularity, res)
    return Handling(overall=overall, by=tables,
                    curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
                        columns=["kind", "dimension", "group", "hours", "open_share"]),
                    trend=trend, sla_hours=float(sla_hours))


def _handling_trend(ds: Dataset, start: dt.date, end: dt.date, as_of: dt.datetime, closed: str, sla: float,
                    granularity: str, res: pd.DataFrame | None) -> pd.DataFrame:
    periods = _grid(ds, start, end, granularity)
    out = pd.DataFrame({"period": periods, "label": [period_label(p, granularity) for p in periods]})
    if ds.has("complaints", "closed_at") and periods:
        asof = f"TIMESTAMP '{as_of:%Y-%m-%d %H:%M:%S}'"
        d = ds.sql(
            f"SELECT {_trunc('opened_at', granularity)} AS period, "
            f"round(greatest(epoch(least(COALESCE(closed_at, {asof}), {asof})) - epoch(opened_at), 0) / 3600 / "
            f"{STEP_HOURS}) * {STEP_HOURS} AS hours, CAST(closed_at IS NOT NULL AND closed_at <= {asof} AS INTEGER) "
            f"AS event, count(*) AS n "
            f"FROM complaints WHERE opened_at >= TIMESTAMP '{start}' AND opened_at < TIMESTAMP '{end}' "
            f"AND NOT (closed_at IS NULL AND {closed}) GROUP BY ALL")
        d["period"] = pd.to_datetime(d["period"]).dt.date
        med, within = [], []
        for p in periods:
            sub = d[d["period"] == p]
            s = _km_summary(sub, sla) if len(sub) else {"median_hours": None, "within_sla_share": None}
            med.append(s["median_hours"])
            within.append(s["within_sla_share"])
        out["median_hours"] = pd.array(med, dtype="Float64")
        out["within_sla_share"] = pd.array(within, dtype="Float64")
        # backlog at each period end: opened before it and closed after it (or still open)
        cap = dt.datetime.combine(end, dt.time()) if end else as_of
        ends = [min(dt.datetime.combine(min(_step(p, granularity), end), dt.time()), as_of, cap) for p in periods]
        values = ", ".join(f"({i}, TIMESTAMP '{e:%Y-%m-%d %H:%M:%S}')" for i, e in enumerate(ends))
        b = ds.sql(
            f"SELECT e.i, count(c.opened_at) AS backlog, "
            f"median(CASE WHEN c.opened_at IS NOT NULL THEN (epoch(e.t) - epoch(c.opened_at)) / 3600 END) "
            f"AS backlog_median_age_hours FROM (VALUES {values}) AS e(i, t) LEFT JOIN complaints c "
            f"ON c.opened_at < e.t AND (c.closed_at >= e.t OR (c.closed_at IS NULL AND NOT {closed})) "
            f"GROUP BY 1 ORDER BY 1")
        out["backlog"] = b["backlog"].to_numpy()
        out["backlog_median_age_hours"] = b["backlog_median_age_hours"].to_numpy()
    return out


# ----------------------------------------------------------------- SLA (timely) and outcomes
@dataclass(frozen=True)
class Timeliness:
    """Share of complaints answered in time (the export's SLA flag ``timely``), with Wilson 95% CIs."""

    overall: dict[str, Any]  # complaints, timely, share, ci_low, ci_high (report period)
    by_category: pd.DataFrame  # category, complaints, timely, share, ci_low, ci_high (report period)
    trend: pd.DataFrame  # period, label, complaints, timely, share, ci_low, ci_high (history)

    def __repr__(self) -> str:
        o = self.overall
        return f"<Timeliness: {o['timely']:,} of {o['complaints']:,} timely ({o['share']})>"


def _share_frame(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["complaints"] = df["complaints"].astype("int64")
    df["timely"] = df["timely"].fillna(0).astype("int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        df["share"] = np.where(df["complaints"] > 0, df["timely"] / df["complaints"].where(df["complaints"] > 0), np.nan)
    lo, hi = wilson_ci(df["timely"], df["complaints"])
    df["ci_low"], df["ci_high"] = np.where(df["complaints"] > 0, lo, np.nan), np.where(df["complaints"] > 0, hi, np.nan)
    return df


def timeliness(ds: Dataset, start: Any, end_exclusive: Any, history_start: Any = None,
               granularity: str = "month") -> Timeliness:
    """Share of complaints with ``timely`` = 1 in ``[start, end_exclusive)`` overall and by category
    (Wilson 95% CIs), and per period from ``history_start`` (default ``start``; never before the first
    complaint). Complaints whose ``timely`` is empty are left out of the base (counted in
    ``overall["unknown"]``)."""
    ds.require("complaints", "opened_at", "timely", reason="the SLA flag (timely) is not mapped")
    _quiet(ds)
    start, end = _date(start), _date(end_exclusive)
    hs = _date(history_start) if history_start is not None else start
    base = (f"FROM complaints WHERE opened_at >= TIMESTAMP '{{lo}}' AND opened_at < TIMESTAMP '{end}' "
            f"AND timely IS NOT NULL")
    cat = "COALESCE(CAST(category AS VARCHAR), '–')" if ds.has("complaints", "category") else "'–'"
    o = ds.sql("SELECT count(*) AS complaints, sum(CAST(timely AS INTEGER)) AS timely "
               + base.format(lo=start)).fillna(0)
    unknown = int(ds.sql(f"SELECT count(*) FROM complaints WHERE opened_at >= TIMESTAMP '{start}' "
                         f"AND opened_at < TIMESTAMP '{end}' AND timely IS NULL").iloc[0, 0])
    o = _share_frame(o).iloc[0]
    overall = {"complaints": int(o["complaints"]), "timely": int(o["timely"]),
               "share": None if pd.isna(o["share"]) else float(o["share"]),
               "ci_low": None if pd.isna(o["ci_low"]) else float(o["ci_low"]),
               "ci_high": None if pd.isna(o["ci_high"]) else float(o["ci_high"]), "unknown": unknown}
    bc = ds.sql(f"SELECT {cat} AS category, count(*) AS complaints, sum(CAST(timely AS INTEGER)) AS timely "
                + base.format(lo=start) + " GROUP BY 1 ORDER BY 2 DESC, 1")
    by_category = _share_frame(bc) if len(bc) else pd.DataFrame(
        columns=["category", "complaints", "timely", "share", "ci_low", "ci_high"])
    tr = ds.sql(f"SELECT {_trunc('opened_at', granularity)} AS period, count(*) AS complaints, "
                f"sum(CAST(timely AS INTEGER)) AS timely " + base.format(lo=hs) + " GROUP BY 1")
    tr["period"] = pd.to_datetime(tr["period"]).dt.date
    periods = _grid(ds, hs, end, granularity)
    trend = pd.DataFrame({"period": pd.Series(periods, dtype=object)}).merge(tr, on="period", how="left")
    trend["complaints"] = trend["complaints"].fillna(0)
    trend = _share_frame(trend)
    trend.insert(1, "label", [period_label(p, granularity) for p in trend["period"]])
    return Timeliness(overall=overall, by_category=by_category.reset_index(drop=True), trend=trend)


def outcomes(ds: Dataset, start: Any, end_exclusive: Any, column: str | None = None, by: str = "category",
             top: int = 8) -> pd.DataFrame:
    """Distribution of the outcome (``outcome``, else ``resolution``) by ``by`` in ``[start, end_exclusive)``:
    one row per group × outcome with ``complaints`` and ``share`` (of the group's complaints; empty
    outcomes shown as '–'). Outcomes beyond the ``top`` most frequent are lumped as ``__other__``."""
    if column is None:
        column = next((c for c in ("outcome", "resolution") if ds.has("complaints", c)), "outcome")
    ds.require("complaints", "opened_at", column, reason="no outcome or resolution column is mapped")
    g = f"COALESCE(CAST({by} AS VARCHAR), '–')" if ds.has("complaints", by) else "'–'"
    df = ds.sql(f"SELECT {g} AS grp, COALESCE(NULLIF(trim(CAST({column} AS VARCHAR)), ''), '–') AS outcome, "
                f"count(*) AS complaints FROM complaints WHERE opened_at >= TIMESTAMP '{_date(start)}' "
                f"AND opened_at < TIMESTAMP '{_date(end_exclusive)}' GROUP BY ALL")
    if df.empty:
        return pd.DataFrame(columns=[by, "outcome", "complaints", "share"])
    keep = df.groupby("outcome")["complaints"].sum().sort_values(ascending=False).head(top).index
    df.loc[~df["outcome"].isin(keep), "outcome"] = OTHER
    df = df.groupby(["grp", "outcome"], as_index=False)["complaints"].sum()
    df["share"] = df["complaints"] / df.groupby("grp")["complaints"].transform("sum")
    size = df.groupby("grp")["complaints"].transform("sum")
    df = df.assign(_s=size).sort_values(["_s", "grp", "complaints"], ascending=[False, True, False])
    df = df.drop(columns="_s").rename(columns={"grp": by}).reset_index(drop=True)
    df.attrs["column"] = column
    return df


def outcome_table(dist: pd.DataFrame, by: str = "category", lang: str = "en") -> pd.DataFrame:
    """Wide table: one row per group (with its n), one column per outcome (share of the group)."""
    if dist.empty:
        return pd.DataFrame()
    d = dist.assign(outcome=[cat_name(o, lang) for o in dist["outcome"]])
    wide = d.pivot_table(index=by, columns="outcome", values="share", aggfunc="sum", fill_value=0.0, sort=False)
    n = d.groupby(by, sort=False)["complaints"].sum()
    wide.insert(0, "n", n.reindex(wide.index).astype("int64"))
    order = d.groupby("outcome")["complaints"].sum().sort_values(ascending=False).index.tolist()
    return wide[["n"] + order].reset_index()


def figure_timeliness(tm: Timeliness, lang: str = "en"):
    """Share timely by category in the report period (95% Wilson CI)."""
    from workbench import viz

    b = tm.by_category
    return viz.bar_with_ci([_esc(c) for c in b["category"]], b["share"].fillna(0), b["ci_low"], b["ci_high"],
                           title=t("complaints.fig.timely_title", lang), y_title=t("complaints.col.timely_share", lang),
                           percent=True, text=[f"{fmt_pct(v, lang)} (n={fmt_int(n, lang)})"
                                               for v, n in zip(b["share"], b["complaints"], strict=True)])


# ----------------------------------------------------------------- 5 churn link
def wilson_ci(k: Any, n: Any, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (vectorised)."""
    k = np.asarray(k, float)
    n = np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        den = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return centre - half, centre + half


@dataclass(frozen=True)
class ChurnLink:
    """Churn by complaint experience (associational, not causal)."""

    groups: pd.DataFrame  # group, customers, churned, churn_rate, ci_low, ci_high, repeat_rate
    model: pd.DataFrame  # term, odds_ratio, ci_low, ci_high, p_value (adjusted for spend and tenure)
    by_tier: pd.DataFrame  # tier, customers, complainers, complaint_rate, ci_low, ci_high
    window_start: dt.date
    window_end: dt.date
    churn_window_days: int

    def __repr__(self) -> str:
        g = ", ".join(f"{r.group}: {r.churn_rate:.1%} of {r.customers:,}" for r in self.groups.itertuples())
        return f"<ChurnLink {self.window_start}–{self.window_end} +{self.churn_window_days}d: {g}>"


def churn_link(ds: Dataset, churn_window_days: int = 90, cohort_months: int = 12, end: Any = None,
               closed_statuses: Sequence[str] | None = None) -> ChurnLink:
    """Churn after complaints: customers who bought in a cohort window of ``cohort_months`` ending
    ``churn_window_days`` before the data's end, grouped by no complaint / resolved only / an unresolved
    complaint in the window; churn = no purchase in the ``churn_window_days`` after the window.

    A complaint is *resolved* when it is closed and — where a ``resolution``
    column exists — a resolution is recorded; anything else is unresolved.
    Wilson 95% CIs; logistic regression ``churn ~ group + log(1+spend) +
    log(1+tenure days) + log(orders)`` (statsmodels) gives odds ratios adjusted
    for value and tenure. Associational: customers who complain differ in
    ways the adjustment may not capture. Value tiers: top 20% / next 30% /
    bottom 50% of spend in the window.
    """
    import statsmodels.api as sm

    ds.require("complaints", "customer_id", reason="complaints must name the customer")
    _quiet(ds)
    ds.require("transactions", "customer_id", "date", "amount")
    last = ds.date_range("transactions", "date")[1] if end is None else end
    data_end = _date(last) + dt.timedelta(days=1)
    w_end = data_end - dt.timedelta(days=int(churn_window_days))
    w_start = months_back(w_end, cohort_months) if w_end.day == 1 else w_end - dt.timedelta(days=round(30.44 * cohort_months))
    f_end = w_end + dt.timedelta(days=int(churn_window_days))
    closed = _closed_sql(ds, closed_statuses)
    resolved = f"({closed} AND resolution IS NOT NULL)" if ds.has("complaints", "resolution") else closed
    if ds.has("customers", "signup_date"):  # tenure from signup; first purchase where signup is missing
        tenure_cte = (", t AS (SELECT customer_id, min(signup_date) AS since FROM customers GROUP BY 1)")
        since = "COALESCE(t.since, b.first_buy)"
    else:  # tenure from the first purchase ever
        tenure_cte = (", t AS (SELECT customer_id, min(date) AS since FROM transactions WHERE amount > 0 "
                      f"AND date < DATE '{w_end}' GROUP BY 1)")
        since = "COALESCE(t.since, b.first_buy)"
    frame = ds.sql(f"""
        WITH b AS (SELECT customer_id, sum(amount) AS spend, count(*) AS orders, min(date) AS first_buy
                   FROM transactions WHERE date >= DATE '{w_start}' AND date < DATE '{w_end}' AND amount > 0
                   GROUP BY 1),
             f AS (SELECT DISTINCT customer_id FROM transactions
                   WHERE date >= DATE '{w_end}' AND date < DATE '{f_end}' AND amount > 0),
             c AS (SELECT customer_id, count(*) AS complaints,
                          max(CASE WHEN {resolved} THEN 0 ELSE 1 END) AS any_unresolved
                   FROM complaints WHERE opened_at >= TIMESTAMP '{w_start}' AND opened_at < TIMESTAMP '{w_end}'
                   AND customer_id IS NOT NULL GROUP BY 1){tenure_cte}
        SELECT CAST(CASE WHEN c.customer_id IS NULL THEN 0 WHEN c.any_unresolved = 1 THEN 2 ELSE 1 END
                    AS TINYINT) AS grp_code,
               b.spend, CAST(b.orders AS INTEGER) AS orders,
               CAST(greatest(date_diff('day', {since}, DATE '{w_end}'), 0) AS INTEGER) AS tenure_days,
               CAST(f.customer_id IS NULL AS TINYINT) AS churned
        FROM b LEFT JOIN c USING (customer_id) LEFT JOIN f USING (customer_id) LEFT JOIN t USING (customer_id)""")
    frame["grp"] = np.array(["none", "resolved", "unresolved"])[frame["grp_code"].to_numpy()]
    if frame.empty:
        raise MissingDataError("transactions", (), "no buyers in the cohort window")
    order = ["none", "resolved", "unresolved"]
    g = frame.groupby("grp")["churned"].agg(["size", "sum"]).reindex(order).fillna(0)
    lo, hi = wilson_ci(g["sum"], g["size"])
    groups = pd.DataFrame({"group": order, "customers": g["size"].astype(int).to_numpy(),
                           "churned": g["sum"].astype(int).to_numpy()})
    with np.errstate(divide="ignore", invalid="ignore"):
        groups["churn_rate"] = groups["churned"] / groups["customers"]
    groups["ci_low"], groups["ci_high"] = lo, hi
    groups["repeat_rate"] = 1 - groups["churn_rate"]
    model = pd.DataFrame(columns=["term", "odds_ratio", "ci_low", "ci_high", "p_value"])
    present = [k for k in ("resolved", "unresolved") if (frame["grp"] == k).sum() >= 5]
    if present and frame["churned"].nunique() == 2:
        X = pd.DataFrame({k: (frame["grp"] == k).astype(float) for k in present})
        X["log_spend"] = np.log1p(frame["spend"].clip(lower=0))
        X["log_tenure"] = np.log1p(frame["tenure_days"].astype(float))
        X["log_orders"] = np.log(frame["orders"].astype(float))
        X = X.loc[:, (X.std() > 0) | X.columns.isin(present)]
        X = sm.add_constant(X, has_constant="add")
        try:
            fit = sm.Logit(frame["churned"].astype(float), X).fit(disp=0, maxiter=100)
            ci = fit.conf_int()
            model = pd.DataFrame({"term": present, "odds_ratio": np.exp(fit.params[present]).to_numpy(),
                                  "ci_low": np.exp(ci.loc[present, 0]).to_numpy(),
                                  "ci_high": np.exp(ci.loc[present, 1]).to_numpy(),
                                  "p_value": fit.pvalues[present].to_numpy()})
        except (np.linalg.LinAlgError, ValueError):
            pass
    # value tiers
    rank = frame["spend"].rank(ascending=False, method="first") / len(frame)
    tier = np.where(rank <= 0.2, "top20", np.where(rank <= 0.5, "mid30", "bottom50"))
    tt = pd.DataFrame({"tier": tier, "complainer": frame["grp"] != "none"}).groupby("tier")["complainer"].agg(
        ["size", "sum"]).reindex(["top20", "mid30", "bottom50"]).fillna(0)
    tl, th = wilson_ci(tt["sum"], tt["size"])
    by_tier = pd.DataFrame({"tier": tt.index, "customers": tt["size"].astype(int).to_numpy(),
                            "complainers": tt["sum"].astype(int).to_numpy()})
    by_tier["complaint_rate"] = by_tier["complainers"] / by_tier["customers"].where(by_tier["customers"] > 0)
    by_tier["ci_low"], by_tier["ci_high"] = tl, th
    return ChurnLink(groups=groups, model=model, by_tier=by_tier, window_start=w_start, window_end=w_end,
                     churn_window_days=int(churn_window_days))


# ----------------------------------------------------------------- 6 iceberg
@dataclass(frozen=True)
class Iceberg:
    """Estimated silently dissatisfied customers — an estimate from an assumed voicing share."""

    complainers: int
    voicing_share: float
    estimated_dissatisfied: float
    silent: float
    sensitivity: pd.DataFrame  # voicing_share, estimated_dissatisfied, silent
    assumption: str = ("estimate from an assumed voicing share (DOMAIN.md §5: about 10% of dissatisfied "
                       "customers voice a complaint); not measured")

    @property
    def low(self) -> float:
        return float(self.sensitivity["silent"].min())

    @property
    def high(self) -> float:
        return float(self.sensitivity["silent"].max())

    def to_dict(self) -> dict[str, Any]:
        return {"complainers": self.complainers, "voicing_share": self.voicing_share,
                "estimated_dissatisfied": self.estimated_dissatisfied, "silent_estimate": self.silent,
                "silent_low": self.low, "silent_high": self.high,
                "voicing_range": [float(self.sensitivity["voicing_share"].min()),
                                  float(self.sensitivity["voicing_share"].max())],
                "is_estimate": True, "assumption": self.assumption}

    def __repr__(self) -> str:
        return (f"<Iceberg (estimate, assumes {self.voicing_share:.0%} voice): {self.complainers:,} complaining "
                f"customers → ~{self.silent:,.0f} silent (range {self.low:,.0f}–{self.high:,.0f})>")


def iceberg(complainers: int, voicing_share: float = 0.10, sensitivity: Sequence[float] = VOICING_RANGE) -> Iceberg:
    """Dissatisfied = complainers / voicing share; silent = dissatisfied − complainers."""
    if not 0 < voicing_share <= 1:
        raise ValueError("voicing_share must be in (0, 1]")
    shares = sorted(set(list(sensitivity) + [voicing_share]))
    sens = pd.DataFrame({"voicing_share": shares})
    sens["estimated_dissatisfied"] = complainers / sens["voicing_share"]
    sens["silent"] = sens["estimated_dissatisfied"] - complainers
    total = complainers / voicing_share
    return Iceberg(int(complainers), float(voicing_share), float(total), float(total - complainers), sens)


def iceberg_for(ds: Dataset, start: Any, end_exclusive: Any, voicing_share: float = 0.10) -> Iceberg:
    """:func:`iceberg` on the distinct complaining customers in ``[start, end_exclusive)``."""
    ds.require("complaints", "customer_id", reason="the iceberg counts distinct complaining customers")
    n = ds.sql(f"SELECT count(DISTINCT customer_id) FROM complaints WHERE opened_at >= TIMESTAMP "
               f"'{_date(start)}' AND opened_at < TIMESTAMP '{_date(end_exclusive)}'").iloc[0, 0]
    return iceberg(int(n), voicing_share)


# ----------------------------------------------------------------- 7 verbatims
@dataclass(frozen=True)
class Verbatims:
    """Frequent terms per group and masked example complaints (not yet HTML-escaped)."""

    terms: pd.DataFrame
    examples: pd.DataFrame
    texts: int
    empty: int

    def __repr__(self) -> str:
        return f"<Verbatims: {self.texts:,} texts ({self.empty:,} empty), {len(self.terms)} terms>"


def verbatims(ds: Dataset, start: Any, end_exclusive: Any, by: str = "category", top_n: int = 8,
              n_examples: int = 2, max_texts: int = 3000, seed: int = 42, granularity: str = "month") -> Verbatims:
    """Frequent terms and phrases (uni- and bigrams; jieba for Chinese) per ``by`` group — a complaint
    column or ``"period"`` — and masked examples. At most ``max_texts`` texts per group (seeded sample)."""
    from workbench.text import example_texts, term_frequencies

    ds.require("complaints", "text")
    grp = _trunc("opened_at", granularity) if by == "period" else f"COALESCE(CAST({by} AS VARCHAR), '–')"
    if by != "period":
        ds.require("complaints", by)
    df = ds.sql(f"SELECT {grp} AS grp, text FROM complaints WHERE opened_at >= TIMESTAMP '{_date(start)}' "
                f"AND opened_at < TIMESTAMP '{_date(end_exclusive)}' QUALIFY row_number() OVER "
                f"(PARTITION BY {grp} ORDER BY md5(complaint_id || '{int(seed)}'), complaint_id) <= {int(max_texts)}")
    if by == "period":
        df["grp"] = [period_label(p, granularity) for p in df["grp"]]
    empty = int((df["text"].fillna("").astype(str).str.strip() == "").sum())
    if df.empty:
        cols = ["group", "term", "count"]
        return Verbatims(pd.DataFrame(columns=cols), pd.DataFrame(columns=["group", "rank", "text"]), 0, 0)
    terms = term_frequencies(df["text"], df["grp"], top_n=top_n, ngram_range=(1, 2), min_count=2)
    ex = example_texts(df["text"], df["grp"], n=n_examples, seed=seed)
    ex = ex.drop(columns=[c for c in ("position",) if c in ex])
    return Verbatims(terms=terms, examples=ex, texts=len(df), empty=empty)


def verbatims_html(v: Verbatims, lang: str = "en") -> str:
    """Example complaints as an HTML list: every text PII-masked and HTML-escaped (safe_text)."""
    from workbench.privacy import escape_html, safe_text

    parts = [f'<div class="wb-verbatims"><p class="wb-note">{escape_html(t("complaints.verbatims.masked", lang))}</p>']
    for group, sub in v.examples.groupby("group", sort=False):
        parts.append(f"<h4>{escape_html(str(group))}</h4><ul>")
        parts += [f"<li>{safe_text(str(x))}</li>" for x in sub["text"]]
        parts.append("</ul>")
    parts.append("</div>")
    return "".join(parts)


# ----------------------------------------------------------------- monitoring (CLI)
@dataclass(frozen=True)
class AlertRun:
    """Result of :func:`run_alerts`: ``lines`` to print, ``breaches`` (non-empty → exit 1)."""

    lines: list[str]
    breaches: list[dict[str, Any]]
    checked: int
    since: dt.date
    granularity: str
    alpha: float
    data_end: dt.date
    payload: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"<AlertRun since {self.since}: {len(self.breaches)} breach(es) in {self.checked} "
                f"{self.granularity} × category cells>")


def judge_periods(ds: Dataset, since: Any, end_exclusive: Any, granularity: str = "week", alpha: float = ALPHA,
                  history_weeks: int = 104, top: int = TOP_CATEGORIES, min_history: int = 6) -> pd.DataFrame:
    """The out-of-sample complaint check shared by ``workbench alerts`` and the report's check of its
    period: :func:`detect_alerts` fitted on up to ``history_weeks`` weeks before ``since`` (never before
    the first complaint) and applied to the periods from ``since`` to ``end_exclusive``, with the
    ``top`` largest categories (the rest together as 'other'). Same cells, model and dispersion
    estimate in both places, so a report and ``workbench alerts --since`` agree."""
    _check_granularity(granularity)
    since_p = _floor(_date(since), granularity)
    end = _date(end_exclusive)
    start = _floor(since_p - dt.timedelta(days=int(history_weeks) * 7), granularity)
    start = history_start(ds, start, granularity)
    cats = top_categories(ds, start, end, n=top)
    cells = alert_cells(ds, start, end, granularity, categories=cats, buyers=False)
    return detect_alerts(cells, granularity, alpha=alpha, judge_from=since_p, min_history=min_history)


def run_alerts(data: str | os.PathLike[str] | Dataset, since: str | None = None, json_path: Any = None,
               granularity: str = "week", alpha: float = ALPHA, history_weeks: int = 104,
               lang: str | None = None, top: int = TOP_CATEGORIES) -> AlertRun:
    """Daily complaint check (``workbench alerts``): the alert model of :func:`detect_alerts`
    fitted on history before ``since`` and applied to the periods from ``since`` (default: the last
    28 days of complaints) — periods × categories above their limit are breaches.

    Bad input raises ``ConfigError`` / ``SourceError`` / ``MissingDataError`` / ``ValueError``
    (the CLI exits 2). ``json_path``: the breaches and the run's settings as JSON.
    """
    lang = lang or os.environ.get("WORKBENCH_LANG", "en")
    if lang not in ("en", "zh"):
        lang = "en"
    _check_granularity(granularity)
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    try:
        _quiet(ds)  # keep stdout clean for the scheduler
        ds.require("complaints", "opened_at", "category")
        _lo, hi = ds.date_range("complaints", "opened_at")
        if hi is None:
            raise ValueError("the complaints table is empty")
        data_end = _date(hi)
        end = data_end + dt.timedelta(days=1)
        if since:
            try:
                since_d = dt.date.fromisoformat(str(since))
            except ValueError:
                raise ValueError(f"--since must be a date YYYY-MM-DD, got {since!r}") from None
        else:
            since_d = data_end - dt.timedelta(days=27)
        since_p = _floor(since_d, granularity)
        if since_p > data_end:
            raise ValueError(f"--since {since_d} is after the last complaint ({data_end})")
        res = judge_periods(ds, since_p, end, granularity, alpha=alpha, history_weeks=history_weeks, top=top)
        cells = res
    finally:
        if not isinstance(data, Dataset):
            ds.close()
    judged = res[res["judged"]]
    flagged = judged[judged["flagged"]].sort_values(["period", "excess"], ascending=[True, False])
    breaches = [{"period": r.label, "period_start": r.period.isoformat(),
                 "category": t("complaints.other", lang) if r.category == OTHER else r.category,
                 "observed": int(r.complaints), "expected": round(float(r.expected), 2),
                 "upper_limit": int(r.upper_limit), "exposure": float(r.exposure), "exposure_unit": r.exposure_unit}
                for r in flagged.itertuples()]
    partial = data_end + dt.timedelta(days=1) < _step(_floor(data_end, granularity), granularity)
    lines = [t("complaints.alerts.header", lang, cells=fmt_int(len(judged), lang),
               unit=t(f"complaints.unit.{granularity}", lang), since=since_p.isoformat(),
               end=data_end.isoformat())]
    for b in breaches:
        lines.append(t("complaints.alerts.breach", lang, category=b["category"], period=b["period"],
                       observed=fmt_int(b["observed"], lang), expected=fmt_num(b["expected"], lang, 1),
                       limit=fmt_int(b["upper_limit"], lang)))
    lines.append(t("complaints.alerts.none", lang) if not breaches else
                 t("complaints.alerts.summary", lang, n=fmt_int(len(breaches), lang)))
    lines.append(t("complaints.alerts.method", lang, alpha=f"{alpha:.5f}".rstrip("0"),
                   expected=fmt_num(alpha * len(judged), lang, 2),
                   unit=t("complaints.exposure." + str(cells["exposure_unit"].iloc[0]), lang)))
    if partial:
        lines.append(t("complaints.alerts.partial", lang, end=data_end.isoformat()))
    without = [t("complaints.other", lang) if c == OTHER else c for c in res.attrs.get("without_history", [])]
    if without:
        lines.append(t("complaints.alerts.no_history", lang, n=fmt_int(len(without), lang),
                       categories=", ".join(without[:10]) + (" …" if len(without) > 10 else ""),
                       min=res.attrs.get("min_history", 6), unit=t(f"complaints.unit.{granularity}", lang)))
    payload = {"ok": not breaches, "since": since_p.isoformat(), "data_end": data_end.isoformat(),
               "granularity": granularity, "alpha": alpha, "cells_checked": int(len(judged)),
               "expected_false_alarms": alpha * len(judged), "dispersion": res.attrs.get("dispersion"),
               "seasonality": res.attrs.get("season"), "exposure": str(cells["exposure_unit"].iloc[0]),
               "max_extrapolate": res.attrs.get("max_extrapolate"), "without_history": without,
               "breaches": breaches}
    if json_path:
        from workbench.metrics import write_json_atomic

        write_json_atomic(Path(json_path), payload)
    return AlertRun(lines=lines, breaches=breaches, checked=int(len(judged)), since=since_p,
                    granularity=granularity, alpha=alpha, data_end=data_end, payload=payload)


# ----------------------------------------------------------------- findings
def cat_name(category: str, lang: str) -> str:
    return t("complaints.other", lang) if category == OTHER else str(category)


def findings(lang: str, trends: pd.DataFrame | None = None, alerts: pd.DataFrame | None = None,
             handling_result: Handling | None = None, link: ChurnLink | None = None,
             ice: Iceberg | None = None, granularity: str = "month") -> list[dict[str, Any]]:
    """Plain-language findings (``key``, ``text``, ``value``, ``headline``) from the analyses' results."""
    out: list[dict[str, Any]] = []
    unit = t(f"complaints.unit.{granularity}", lang)
    if trends is not None and len(trends):
        ok = trends[trends["estimable"].astype(bool)]
        # a headline needs evidence over the window and no significant turn in the latest periods
        steady = ok["status"] == "ok"
        sig = ok[steady & (ok["p_adjusted"] < 0.05) & (ok["ci_low"] > 0)]
        adj = t("complaints.adjusted." + ("season_" if trends.attrs.get("season") else "")
                + ("buyers" if trends.attrs.get("exposure") == "buyers" else "days"), lang)
        if len(sig):
            top = sig.sort_values("trend_slope", ascending=False).iloc[0]
            out.append({"key": "rising", "text": t("complaints.finding.rising", lang,
                                                     category=cat_name(top["category"], lang),
                                                     slope=fmt_pct(top["trend_slope"], lang), unit=unit,
                                                     low=fmt_pct(top["ci_low"], lang), high=fmt_pct(top["ci_high"], lang),
                                                     p=fmt_p(top["p_adjusted"], lang), n=fmt_int(len(sig), lang),
                                                     adjusted=adj),
                        "value": float(top["trend_slope"]), "headline": True})
        elif len(turned := ok[~steady & (ok["p_adjusted"] < 0.05) & (ok["trend_slope"] > 0)]):
            top = turned.iloc[0]
            out.append({"key": "rising", "text": t("complaints.finding.turned", lang,
                                                     category=cat_name(top["category"], lang),
                                                     slope=fmt_pct(top["trend_slope"], lang), unit=unit,
                                                     recent=fmt_pct(top["recent_slope"], lang)),
                        "value": None, "headline": False})
        elif len(ok):
            top = ok.iloc[0]
            out.append({"key": "rising", "text": t("complaints.finding.no_rising", lang,
                                                     category=cat_name(top["category"], lang),
                                                     slope=fmt_pct(top["trend_slope"], lang), unit=unit,
                                                     p=fmt_p(top["p_adjusted"], lang)),
                        "value": None, "headline": False})
        else:
            out.append({"key": "rising", "text": t("complaints.finding.no_trend", lang,
                                                     n=int(trends.attrs.get("min_history", 6)), unit=unit),
                        "value": None, "headline": False})
    if alerts is not None:
        fl = alerts[alerts["flagged"]].sort_values("excess", ascending=False)
        if len(fl):
            r = fl.iloc[0]
            period = fmt_month(r["period"], lang) if granularity == "month" else r["label"]
            out.append({"key": "alerts", "text": t("complaints.finding.alerts", lang, n=fmt_int(len(fl), lang),
                                                     category=cat_name(r["category"], lang), period=period,
                                                     observed=fmt_int(r["complaints"], lang),
                                                     expected=fmt_num(r["expected"], lang, 1),
                                                     limit=fmt_int(r["upper_limit"], lang)),
                        "value": int(len(fl)), "headline": False})
        else:
            out.append({"key": "alerts", "text": t("complaints.finding.no_alerts", lang), "value": 0,
                        "headline": False})
    if handling_result is not None:
        o = handling_result.overall
        # the complaints counted (opened in the window, up to as_of) and the moment open is measured at
        when = {"n": fmt_int(o.get("complaints"), lang), "open": fmt_int(o.get("open_backlog"), lang),
                "start": o.get("window_start") or "–", "end": o.get("window_end") or "–", "as_of": o.get("as_of") or "–",
                "data_end": str(o.get("data_end") or o.get("as_of") or "–")[:10]}
    if handling_result is not None and not o.get("close_times", True):
        # status only: it is read as the export shows it (data end), whatever the period end
        later = bool(o.get("data_end") and o.get("as_of") and o["data_end"] > o["as_of"])
        key = "complaints.finding.no_close_times" + ("_later" if later else "")
        out.append({"key": "handling", "text": t(key, lang, **when), "value": o.get("open_backlog"), "headline": False})
    elif handling_result is not None:
        out.append({"key": "handling", "text": t(
            "complaints.finding.handling", lang,
            median=fmt_num(o.get("median_hours"), lang, 1), p90=fmt_num(o.get("p90_hours"), lang, 0),
            sla=fmt_num(handling_result.sla_hours, lang, 0), within=fmt_pct(o.get("within_sla_share"), lang),
            **when), "value": o.get("median_hours"), "headline": True})
    if link is not None and len(link.groups):
        g = link.groups.set_index("group")
        out.append({"key": "churn_link", "text": t(
            "complaints.finding.churn_link", lang, none=fmt_pct(g.loc["none", "churn_rate"], lang),
            resolved=fmt_pct(g.loc["resolved", "churn_rate"], lang),
            unresolved=fmt_pct(g.loc["unresolved", "churn_rate"], lang), days=link.churn_window_days),
            "value": float(g.loc["unresolved", "churn_rate"]) if g.loc["unresolved", "customers"] else None,
            "headline": True})
    if ice is not None:
        out.append({"key": "iceberg", "text": t(
            "complaints.finding.iceberg", lang, complainers=fmt_int(ice.complainers, lang),
            share=fmt_pct(ice.voicing_share, lang, 0), silent=fmt_int(ice.silent, lang),
            low=fmt_int(ice.low, lang), high=fmt_int(ice.high, lang)), "value": ice.silent, "headline": False})
    return out


def current_alert_finding(judged: pd.DataFrame, period: str, lang: str = "en") -> dict[str, Any]:
    """Headline of the report period's out-of-sample check (:func:`judge_periods`): breaches or none."""
    j = judged[judged["judged"]]
    fl = j[j["flagged"]].sort_values("excess", ascending=False)
    if not len(j):
        return {"key": "alerts_current", "text": t("complaints.finding.current_unchecked", lang, period=period),
                "value": None, "headline": False}
    if not len(fl):
        return {"key": "alerts_current", "text": t("complaints.finding.current_ok", lang, period=period,
                                                     cells=fmt_int(len(j), lang)), "value": 0, "headline": True}
    r = fl.iloc[0]
    return {"key": "alerts_current", "text": t(
        "complaints.finding.current_breach", lang, period=period, n=fmt_int(len(fl), lang),
        category=cat_name(r["category"], lang), observed=fmt_int(r["complaints"], lang),
        expected=fmt_num(r["expected"], lang, 1), limit=fmt_int(r["upper_limit"], lang)),
        "value": int(len(fl)), "headline": True}


# ----------------------------------------------------------------- figures
def _esc(x: Any) -> str:
    from workbench.privacy import escape_html

    return escape_html(str(x))


def figure_trend(series: pd.DataFrame, decomposition: pd.DataFrame, lang: str = "en", value: str = "complaint_rate"):
    """Observed rate with STL trend (top) and the seasonal component (bottom)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.08)
    x = [str(p) for p in decomposition["label"]]
    fig.add_trace(go.Scatter(x=x, y=decomposition["observed"], mode="lines+markers",
                             name=t(f"complaints.fig.{value}", lang)), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=decomposition["trend"], mode="lines", name=t("complaints.fig.trend", lang),
                             line=dict(width=3)), row=1, col=1)
    fig.add_trace(go.Bar(x=x, y=decomposition["seasonal"], name=t("complaints.fig.seasonal", lang)), row=2, col=1)
    fig.update_layout(title=t("complaints.fig.trend_title", lang), height=520)
    if value == "complaint_rate":
        fig.update_yaxes(tickformat=".2%", row=1, col=1)
    return fig


def figure_control_chart(alerts: pd.DataFrame, category: str | None = None, lang: str = "en"):
    """Observed complaints, model expectation and upper limit per period; flagged cells in red."""
    import plotly.graph_objects as go

    df = alerts if category is None else alerts[alerts["category"] == category]
    if category is None:
        df = df.groupby(["period", "label"], as_index=False).agg(
            complaints=("complaints", "sum"), expected=("expected", "sum"), upper_limit=("upper_limit", "sum"),
            flagged=("flagged", "any"))
    x = [str(v) for v in df["label"]]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=df["upper_limit"], mode="lines", line=dict(dash="dash", color="#c8413b",
                             shape="hv"), name=t("complaints.fig.limit", lang)))
    fig.add_trace(go.Scatter(x=x, y=df["expected"], mode="lines", line=dict(color="#888"),
                             name=t("complaints.fig.expected", lang)))
    fig.add_trace(go.Scatter(x=x, y=df["complaints"], mode="lines+markers", line=dict(color="#1f5fa8"),
                             name=t("complaints.fig.observed", lang)))
    fl = df[df["flagged"]]
    fig.add_trace(go.Scatter(x=[str(v) for v in fl["label"]], y=fl["complaints"], mode="markers",
                             marker=dict(color="#c8413b", size=13, symbol="circle-open", line=dict(width=3)),
                             name=t("complaints.fig.flagged", lang)))
    name = t("complaints.fig.all_categories", lang) if category is None else _esc(cat_name(category, lang))
    fig.update_layout(title=t("complaints.fig.control_title", lang, category=name),
                      yaxis_title=t("complaints.fig.complaints", lang))
    return fig


def figure_pareto(par: pd.DataFrame, lang: str = "en", by: str = "category"):
    """Complaints per category (bars) and cumulative share (line, right axis)."""
    import plotly.graph_objects as go

    x = [_esc(v) for v in par[by]]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=par["complaints"], name=t("complaints.fig.complaints", lang)))
    fig.add_trace(go.Scatter(x=x, y=par["cumulative_share"], yaxis="y2", mode="lines+markers",
                             name=t("complaints.fig.cumulative", lang), line=dict(color="#e07b39")))
    fig.update_layout(title=t("complaints.fig.pareto_title", lang), yaxis_title=t("complaints.fig.complaints", lang),
                      yaxis2=dict(overlaying="y", side="right", tickformat=".0%", range=[0, 1.05], showgrid=False))
    return fig


def figure_resolution_curves(h: Handling, dimension: str = "category", kind: str = "resolution", lang: str = "en"):
    """Kaplan-Meier curves: share of complaints still open (or unanswered) by hours since opening."""
    import plotly.graph_objects as go

    cur = h.curves[(h.curves["kind"] == kind) & (h.curves["dimension"].isin(["all", dimension]))]
    fig = go.Figure()
    for g, sub in cur.groupby("group", sort=False):
        label = t("complaints.fig.all_categories", lang) if g == "all" else _esc(g)
        fig.add_trace(go.Scatter(x=np.r_[0, sub["hours"]], y=np.r_[1, sub["open_share"]], mode="lines",
                                 line=dict(shape="hv", width=3 if g == "all" else 1.5), name=label))
    fig.add_vline(x=h.sla_hours, line_dash="dot", line_color="#c8413b",
                  annotation_text=t("complaints.fig.sla", lang, hours=fmt_num(h.sla_hours, lang, 0)))
    fig.update_layout(title=t(f"complaints.fig.km_{kind}_title", lang),
                      xaxis_title=t("complaints.fig.hours", lang), yaxis_title=t(f"complaints.fig.km_{kind}_y", lang))
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    if len(cur):
        fig.update_xaxes(range=[0, float(np.nanpercentile(cur["hours"], 97)) * 1.05 + 1])
    return fig


def figure_churn_link(link: ChurnLink, lang: str = "en"):
    """Churn rate (95% Wilson CI) by complaint experience."""
    from workbench import viz

    g = link.groups
    labels = [t(f"complaints.churn.{k}", lang) for k in g["group"]]
    text = [f"{fmt_pct(v, lang)} (n={fmt_int(n, lang)})" for v, n in zip(g["churn_rate"], g["customers"], strict=True)]
    return viz.bar_with_ci(labels, g["churn_rate"].fillna(0), g["ci_low"], g["ci_high"],
                           title=t("complaints.fig.churn_title", lang, days=link.churn_window_days),
                           y_title=t("complaints.fig.churn_y", lang), percent=True, text=text)


def figure_handlers(table: pd.DataFrame, lang: str = "en", col: str = "handler"):
    """Median and P90 hours to resolution per handler; small-n handlers in grey and labelled."""
    import plotly.graph_objects as go

    df = table.sort_values("median_hours", na_position="last")
    names = [_esc(v) + (f" ({t('complaints.small_n', lang)}, n={n})" if s else f" (n={n})")
             for v, n, s in zip(df[col], df["complaints"], df["small_n"], strict=True)]
    colors = ["#bbbbbb" if s else "#1f5fa8" for s in df["small_n"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=names, x=df["median_hours"], orientation="h", marker_color=colors,
                         name=t("complaints.fig.median", lang)))
    fig.add_trace(go.Scatter(y=names, x=df["p90_hours"], mode="markers", marker=dict(symbol="line-ns-open", size=14,
                             color="#c8413b", line=dict(width=3)), name=t("complaints.fig.p90", lang)))
    fig.update_layout(title=t("complaints.fig.handlers_title", lang), xaxis_title=t("complaints.fig.hours", lang),
                      height=max(350, 40 * len(df) + 120), yaxis=dict(autorange="reversed"))
    return fig


def figure_volume(frame: pd.DataFrame, by: str, lang: str = "en", value: str = "complaints"):
    """Stacked complaints per period by ``by`` (category, channel, …)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for g, sub in frame.groupby(by, sort=False):
        fig.add_trace(go.Bar(x=[str(v) for v in sub["label"]], y=sub[value], name=_esc(cat_name(g, lang))))
    fig.update_layout(barmode="stack", title=t("complaints.fig.volume_title", lang),
                      yaxis_title=t("complaints.fig.complaints", lang))
    return fig


def metrics_periods(series: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"period": r.label, "complaints": int(r.complaints), "complaint_rate": r.complaint_rate,
             "rate_per_1000": r.rate_per_1000} for r in series.itertuples()]


def metrics_by_category(trends: pd.DataFrame, lang: str = "en") -> list[dict[str, Any]]:
    """Every category's trend row (status ``ok`` / ``not_estimable`` / ``short_history``; no slope digits
    unless estimable)."""
    def num(v: Any) -> float | None:
        return None if v is None or pd.isna(v) else float(v)

    return [{"category": cat_name(r.category, lang), "complaints": int(r.complaints), "share": num(r.share),
             "periods": int(r.periods), "status": r.status, "trend_slope": num(r.trend_slope),
             "recent_slope": num(r.recent_slope), "recent_p": num(r.recent_p),
             "ci_low": num(r.ci_low), "ci_high": num(r.ci_high), "p_value": num(r.p_value),
             "p_adjusted": num(r.p_adjusted), "growth_rank": None if pd.isna(r.growth_rank) else int(r.growth_rank)}
            for r in trends.itertuples()]


def metrics_alerts(alerts: pd.DataFrame, lang: str = "en") -> list[dict[str, Any]]:
    fl = alerts[alerts["flagged"]]
    return [{"period": r.label, "category": cat_name(r.category, lang), "observed": int(r.complaints),
             "expected": float(r.expected), "upper_limit": float(r.upper_limit)} for r in fl.itertuples()]


def to_json(obj: Any) -> str:
    """JSON for a result's ``to_dict``/frames (used in notebooks for quick export)."""
    from workbench.metrics import to_jsonable

    return json.dumps(to_jsonable(obj), ensure_ascii=False)


def figure_tiers(link: ChurnLink, lang: str = "en"):
    """Complaint rate (share of customers who complained, 95% CI) by value tier."""
    from workbench import viz

    b = link.by_tier
    return viz.bar_with_ci([t(f"complaints.tier.{k}", lang) for k in b["tier"]], b["complaint_rate"].fillna(0),
                           b["ci_low"], b["ci_high"], title=t("complaints.fig.tier_title", lang),
                           y_title=t("complaints.col.complaint_rate", lang), percent=True,
                           text=[fmt_pct(v, lang) for v in b["complaint_rate"]])


def figure_iceberg(ice: Iceberg, lang: str = "en"):
    """Complaining customers vs the estimated silent ones (with the sensitivity range as whiskers)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Bar(x=[t("complaints.fig.voiced", lang)], y=[ice.complainers], marker_color="#1f5fa8",
                         text=[fmt_int(ice.complainers, lang)], textposition="outside"))
    fig.add_trace(go.Bar(x=[t("complaints.fig.silent", lang)], y=[ice.silent], marker_color="#bbbbbb",
                         error_y=dict(type="data", symmetric=False, array=[ice.high - ice.silent],
                                      arrayminus=[ice.silent - ice.low]),
                         text=[fmt_int(ice.silent, lang)], textposition="outside"))
    fig.update_layout(title=t("complaints.fig.iceberg_title", lang), showlegend=False,
                      yaxis_title=t("complaints.col.customers", lang))
    return fig


def explore_frame(ds: Dataset, start: Any, end_exclusive: Any) -> pd.DataFrame:
    """Complaints per day × category × channel (one engine query) for the interactive filters.
    Raises :class:`MissingDataError` (never a database error) when the complaints table is absent."""
    ds.require("complaints", "opened_at", "category")
    ch = "COALESCE(CAST(channel AS VARCHAR), '–')" if ds.has("complaints", "channel") else "'–'"
    df = ds.sql(f"SELECT CAST(opened_at AS DATE) AS day, COALESCE(CAST(category AS VARCHAR), '–') AS category, "
                f"{ch} AS channel, count(*) AS complaints FROM complaints WHERE opened_at >= TIMESTAMP "
                f"'{_date(start)}' AND opened_at < TIMESTAMP '{_date(end_exclusive)}' GROUP BY ALL")
    df["day"] = pd.to_datetime(df["day"])
    return df


def figure_explore(frame: pd.DataFrame, category: str | None = None, channel: str | None = None,
                   granularity: str = "month", lang: str = "en"):
    """Complaints per period for one category / channel (None = all), from :func:`explore_frame`."""
    import plotly.graph_objects as go

    df = frame
    if category:
        df = df[df["category"] == category]
    if channel:
        df = df[df["channel"] == channel]
    freq = {"day": "D", "week": "W-MON", "month": "MS", "quarter": "QS"}[_check_granularity(granularity)]
    s = df.set_index("day")["complaints"].resample(freq, label="left", closed="left").sum() if len(df) else \
        pd.Series(dtype=float)
    title = " · ".join(_esc(x) for x in (category, channel) if x) or t("complaints.fig.all_categories", lang)
    fig = go.Figure(go.Scatter(x=[d.date().isoformat() for d in s.index], y=s.to_numpy(), mode="lines+markers"))
    fig.update_layout(title=f"{t('complaints.fig.volume_title', lang)}: {title}",
                      yaxis_title=t("complaints.fig.complaints", lang))
    return fig


# ----------------------------------------------------------------- results (one per notebook section)
def window(ds: Dataset, period: Period, history_months: int = 24, granularity: str = "month") -> tuple[dt.date, dt.date]:
    """``(history start, end_exclusive)`` of the report's history: ``history_months`` back from the period
    end, never before the first complaint (no empty periods padded in front of the data)."""
    end = period.end_exclusive
    return history_start(ds, months_back(end, int(history_months)), granularity), end


def _partial(ds: Dataset, period: Period) -> bool:
    """Either the period or the previous one is only partly covered by the data."""
    from workbench.coverage import period_coverage

    prev = period.previous()
    return (period_coverage(ds, period).days_covered < period.days
            or period_coverage(ds, prev).days_covered < prev.days)


def _none(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _spikes_in(alerts_frame: pd.DataFrame, end_exclusive: dt.date, months: int = 12) -> pd.DataFrame:
    """Flagged cells in the ``months`` months before ``end_exclusive``."""
    lo = months_back(end_exclusive, months)
    p = alerts_frame["period"]
    return alerts_frame[alerts_frame["flagged"] & (p >= lo) & (p < end_exclusive)]


def rising_categories(trends: pd.DataFrame) -> pd.DataFrame:
    """Categories with a steady, significant rise: status ``ok``, corrected p < 0.05 and the interval above 0."""
    if not len(trends):
        return trends
    ok = trends[trends["estimable"].astype(bool) & (trends["status"] == "ok")]
    return ok[(ok["p_adjusted"] < 0.05) & (ok["ci_low"] > 0)].sort_values("trend_slope", ascending=False)


@dataclass(frozen=True, repr=False)
class ComplaintVolume(Result):
    """Complaints per period by category, and the report period's volume and rates against the previous one."""

    heading: ClassVar[str] = "complaints.section.volume"
    series: pd.DataFrame  # volume()
    by_category: pd.DataFrame  # volume(by="category")
    now: dict[str, Any]  # period_summary of the period
    before: dict[str, Any]  # period_summary of the previous period
    period: Period
    partial: bool = False

    def figures(self, lang: str = "en") -> list[Any]:
        b = self.by_category
        return [figure_volume(b, "category", lang)] if len(b) and b["complaints"].sum() else []

    def findings(self, lang: str = "en") -> list[Finding]:
        now, period = self.now, self.period.display(lang)
        k = now["complainers"]
        if not now["complaints"]:
            text = t("complaints.finding2.empty_period", lang, period=period)
        elif now["buyers"] and k is not None:
            text = t("complaints.finding2.volume", lang, period=period, n=fmt_int(now["complaints"], lang),
                     k=fmt_int(k, lang), rate=fmt_pct(k / now["buyers"], lang, 2),
                     per_1000=fmt_num(1000 * now["complaints"] / now["buyers"], lang, 1),
                     per_orders=fmt_num(1000 * now["complaints"] / max(now["orders"], 1), lang, 1))
        elif k is not None:
            text = t("complaints.finding2.volume_count", lang, period=period, n=fmt_int(now["complaints"], lang),
                     k=fmt_int(k, lang))
        else:
            text = t("complaints.finding2.volume_only", lang, period=period, n=fmt_int(now["complaints"], lang))
        return [Finding("volume", text, value=int(now["complaints"]))]

    def notes(self, lang: str = "en") -> list[str]:
        out = []
        if not len(self.by_category) or not self.by_category["complaints"].sum():
            out.append(t("complaints.note.no_history_complaints", lang))
        if self.now["buyers"]:
            out.append(t("complaints.note.rate_definition", lang))
        return out

    def kpis(self, lang: str = "en") -> list[KPI]:
        now, before = self.now, self.before
        prev_label = self.period.previous().display(lang)
        out = []
        if now["orders"]:
            rate = now["complaints"] / now["orders"]
            lo, hi = wilson_ci(now["complaints"], now["orders"])
            prev = before["complaints"] / before["orders"] if before.get("orders") else None
            out.append(KPI("complaint_rate", t("complaints.kpi.complaint_rate", lang), rate, unit="share",
                           n=int(now["orders"]), interval=(float(lo), float(hi)), better="lower", previous=prev,
                           how=t("complaints.how.complaint_rate", lang, n=fmt_int(now["complaints"], lang),
                                 orders=fmt_int(now["orders"], lang), previous=prev_label)))
        how = t("complaints.how.complaints" + ("_partial" if self.partial else ""), lang, previous=prev_label)
        out.append(KPI("complaints", t("complaints.kpi.complaints", lang), float(now["complaints"]), unit="count",
                       n=int(now["complaints"]), better="lower",
                       previous=None if self.partial else float(before["complaints"]), how=how))
        return out

    def metrics(self) -> dict[str, Any]:
        return {"periods": metrics_periods(self.series), "period_summary": dict(self.now)}


@analysis("complaints.section.volume")
def rates(ds: Dataset, period: Period, history_months: int = 24, granularity: str = "month") -> ComplaintVolume:
    """The volume section: complaints per period by category over the history, the period's rates."""
    ds.require("complaints", "opened_at", "category")
    start, end = window(ds, period, history_months, granularity)
    prev = period.previous()
    return ComplaintVolume(volume(ds, start, end, granularity), volume(ds, start, end, granularity, by="category"),
                           period_summary(ds, period.start, end), period_summary(ds, prev.start, prev.end_exclusive),
                           period, _partial(ds, period))


@dataclass(frozen=True, repr=False)
class CategoryPareto(Result):
    """Which categories (and channels, severities) drive the period's complaints."""

    heading: ClassVar[str] = "complaints.section.pareto"
    pareto: pd.DataFrame
    by: dict[str, pd.DataFrame]  # channel / severity → pareto(by=...)
    period: Period

    @property
    def n80(self) -> int:
        """Categories needed for 80% of the complaints."""
        return min(int((self.pareto["cumulative_share"] < 0.8).sum() + 1), len(self.pareto))

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_pareto(self.pareto, lang)] if len(self.pareto) else []

    def findings(self, lang: str = "en") -> list[Finding]:
        par, period = self.pareto, self.period.display(lang)
        if not len(par):
            return [Finding("pareto", t("complaints.finding2.empty_period", lang, period=period), value=0)]
        n80 = self.n80
        text = t("complaints.finding2.pareto", lang, period=period, top=n80,
                 share=fmt_pct(par["cumulative_share"].iloc[n80 - 1], lang),
                 category=cat_name(par["category"].iloc[0], lang), cat_share=fmt_pct(par["share"].iloc[0], lang))
        return [Finding("pareto", text, value=n80, n=int(par["complaints"].sum()))]

    def tables(self, lang: str = "en") -> list[Table]:
        out = []
        pct = {t("complaints.col.share", lang): lambda v: fmt_pct(v, lang), "Σ": lambda v: fmt_pct(v, lang)}
        for dim, tab in self.by.items():
            if len(tab):
                out.append(Table(tab.rename(columns={dim: t(f"complaints.col.{dim}", lang),
                                                     "complaints": t("complaints.col.complaints", lang),
                                                     "share": t("complaints.col.share", lang), "cumulative_share": "Σ"}),
                                 formats=pct))
        return out

    def notes(self, lang: str = "en") -> list[str]:
        return [t("complaints.note.period_only", lang, period=self.period.display(lang))] if len(self.pareto) else []

    def metrics(self) -> dict[str, Any]:
        return {"pareto": self.pareto.head(30)} if len(self.pareto) else {}


@analysis("complaints.section.pareto")
def categories(ds: Dataset, period: Period) -> CategoryPareto:
    """The Pareto section: the report period's complaints by category (and channel, severity)."""
    end = period.end_exclusive
    par = pareto(ds, period.start, end)
    by = {dim: pareto(ds, period.start, end, by=dim) for dim in ("channel", "severity")
          if ds.has("complaints", dim) and len(par)}
    return CategoryPareto(par, by, period)


@dataclass(frozen=True, repr=False)
class ComplaintTrend(Result):
    """The complaint rate's trend and seasonality, and each category's trend (rising categories)."""

    heading: ClassVar[str] = "complaints.section.trend"
    series: pd.DataFrame
    decomposition: pd.DataFrame | None
    value: str
    trends: pd.DataFrame  # category_trends (with share of the period's complaints)
    previous_rising: int | None
    granularity: str
    min_periods: int

    def figures(self, lang: str = "en") -> list[Any]:
        if self.decomposition is None:
            return []
        return [figure_trend(self.series, self.decomposition, lang, self.value)]

    def _how(self, lang: str) -> str:
        tr = self.trends
        return " ".join([t("complaints.note.trend_method", lang, correction=str(tr.attrs.get("correction", "holm")).title(),
                           k=tr.attrs.get("tested", 0)),
                         t("complaints.note.trend_status", lang, n=self.min_periods)])

    def findings(self, lang: str = "en") -> list[Finding]:
        tr, unit = self.trends, t(f"complaints.unit.{self.granularity}", lang)
        if not len(tr):
            return []
        sig = rising_categories(tr)
        if len(sig):
            top = sig.iloc[0]
            cat = cat_name(top["category"], lang)
            how = t("complaints.how.rising", lang, category=cat, slope=fmt_pct(top["trend_slope"], lang), unit=unit,
                    low=fmt_pct(top["ci_low"], lang), high=fmt_pct(top["ci_high"], lang),
                    p=fmt_p(top["p_adjusted"], lang)) + " " + self._how(lang)
            adj = t("complaints.adjusted." + ("season_" if tr.attrs.get("season") else "")
                    + ("buyers" if tr.attrs.get("exposure") == "buyers" else "days"), lang)
            text = t("complaints.finding3.rising", lang, category=cat, slope=fmt_pct(top["trend_slope"], lang),
                     unit=unit, n=fmt_int(len(sig), lang), adjusted=adj)
            return [Finding("rising", text, value=float(top["trend_slope"]), headline=True,
                            interval=(float(top["ci_low"]), float(top["ci_high"])), null=0.0,
                            n=int(top["complaints"]), how=how,
                            action=t("complaints.action.rising", lang, category=cat))]
        # no steady significant rise: the old wording (not a headline) says why
        return [Finding(f["key"], f["text"], value=f["value"]) for f in
                findings(lang, trends=tr, granularity=self.granularity)]

    def tables(self, lang: str = "en") -> list[Table]:
        tr = self.trends
        if not len(tr):
            return []
        shown = tr.assign(category=[cat_name(c, lang) for c in tr["category"]],
                          trend_slope=[fmt_pct(r.trend_slope, lang) if r.estimable else "–" for r in tr.itertuples()],
                          ci=[f"{fmt_pct(r.ci_low, lang)} – {fmt_pct(r.ci_high, lang)}" if r.estimable else "–"
                              for r in tr.itertuples()],
                          status=[t(f"complaints.trend_status.{s}", lang) for s in tr["status"]])
        cols = ["category", "complaints", "periods", "trend_slope", "ci", "p_adjusted", "status"]
        names = {c: t(f"complaints.col.{c}", lang) for c in cols}
        return [Table(shown[cols].rename(columns=names), appendix=True, caption=t("complaints.section.growth", lang),
                      formats={names["p_adjusted"]: lambda v: "–" if v != v else fmt_p(v, lang)})]

    def notes(self, lang: str = "en") -> list[str]:
        return [] if len(self.trends) else [t("complaints.note.no_trend_data", lang)]

    def kpis(self, lang: str = "en") -> list[KPI]:
        tr = self.trends
        if not len(tr):
            return []
        tested = int(tr["tested"].astype(bool).sum())
        return [KPI("rising_complaint_categories", t("complaints.kpi.rising", lang), float(len(rising_categories(tr))),
                    unit="count", n=tested, better="lower", previous=_none(self.previous_rising),
                    how=self._how(lang))]

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"by_category": metrics_by_category(self.trends)} if len(self.trends) else {}
        if self.decomposition is not None:
            out["decomposition"] = {"method": self.decomposition["method"].iloc[0], "value": self.value}
        return out


@analysis("complaints.section.trend")
def trend(ds: Dataset, period: Period, history_months: int = 24, granularity: str = "month",
          min_periods: int = 6) -> ComplaintTrend:
    """The trend section: STL of the complaint rate and the per-category trend model (with the count of
    rising categories one period earlier for the KPI's comparison)."""
    ds.require("complaints", "opened_at", "category")
    start, end = window(ds, period, history_months, granularity)
    series = volume(ds, start, end, granularity)
    dec, value = None, "complaints"
    if len(series) >= 3:
        value = "complaint_rate" if series["complaint_rate"].notna().any() else "complaints"
        dec = decompose(series, value, granularity)
    cells = alert_cells(ds, start, end, granularity, categories=top_categories(ds, start, end, TOP_CATEGORIES))
    trends_, before = pd.DataFrame(), None
    if not cells.empty:
        trends_ = category_trends(cells, granularity, min_history=int(min_periods))
        par = pareto(ds, period.start, end)
        trends_["share"] = trends_["category"].map(dict(zip(par["category"], par["share"], strict=True)))
        earlier = cells[cells["period"] < _floor(period.start, granularity)]
        if earlier["complaints"].sum():
            before = len(rising_categories(category_trends(earlier, granularity, min_history=int(min_periods))))
    return ComplaintTrend(series, dec, value, trends_, before, granularity, int(min_periods))


@dataclass(frozen=True, repr=False)
class ComplaintAlerts(Result):
    """Category-periods out of control: the report period out of sample, the history in sample."""

    heading: ClassVar[str] = "complaints.section.alerts"
    alerts: pd.DataFrame  # detect_alerts over the history (in sample)
    current: pd.DataFrame | None  # judge_periods for the report period (out of sample); None = not checkable
    period: Period
    granularity: str

    def _flagged(self) -> pd.DataFrame:
        return self.alerts[self.alerts["flagged"]].sort_values("excess", ascending=False)

    def figures(self, lang: str = "en") -> list[Any]:
        fl = self._flagged()
        return [figure_control_chart(self.alerts, fl["category"].iloc[0] if len(fl) else None, lang)]

    def _how(self, lang: str) -> str:
        a = self.alerts.attrs
        return " ".join([t("complaints.note.alert_method", lang, alpha=a["alpha"], cells=fmt_int(a["cells_checked"], lang),
                           expected=fmt_num(a["expected_false_alarms"], lang, 2),
                           dispersion=fmt_num(a["dispersion"], lang, 2)),
                         t("complaints.note.alerts_history", lang)])

    def findings(self, lang: str = "en") -> list[Finding]:
        out = []
        if self.current is not None:
            f = current_alert_finding(self.current, self.period.display(lang), lang)
            judged = self.current[self.current["judged"]]
            breaches = int(judged["flagged"].sum())
            how = t("complaints.note.alerts_current", lang, period=self.period.display(lang),
                    cells=fmt_int(len(judged), lang), breaches=fmt_int(breaches, lang),
                    dispersion=fmt_num(self.current.attrs["dispersion"], lang, 2))
            out.append(Finding(f["key"], f["text"], value=f["value"], headline=f["headline"], how=how,
                               action=t("complaints.action.breach", lang) if breaches else ""))
        for f in findings(lang, alerts=self.alerts, granularity=self.granularity):
            spikes = len(self._flagged())
            out.append(Finding(f["key"], f["text"], value=f["value"], how=self._how(lang),
                               action=t("complaints.action.spikes", lang) if spikes else ""))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        fl = self._flagged()
        if not len(fl):
            return []
        shown = fl.assign(category=[cat_name(c, lang) for c in fl["category"]])
        cols = {"label": "period", "category": "category", "complaints": "observed", "expected": "expected",
                "upper_limit": "upper_limit"}
        names = {c: t(f"complaints.col.{k}", lang) for c, k in cols.items()}
        return [Table(shown[list(cols)].rename(columns=names),
                      formats={names["expected"]: lambda v: fmt_num(v, lang, 1),
                               names["upper_limit"]: lambda v: fmt_int(v, lang)})]

    def notes(self, lang: str = "en") -> list[str]:
        out = [] if self.current is not None else [t("complaints.note.no_trend_data", lang)]
        without = self.alerts.attrs.get("without_history") or []
        if without:
            out.append(t("complaints.note.no_history", lang, categories=", ".join(cat_name(c, lang) for c in without)))
        return out

    def kpis(self, lang: str = "en") -> list[KPI]:
        end = self.period.end_exclusive
        prev_end = self.period.previous().end_exclusive
        first = min(self.alerts["period"]) if len(self.alerts) else end
        checked = self.alerts[self.alerts["judged"] & (self.alerts["period"] >= months_back(end, 12))]
        previous = (float(len(_spikes_in(self.alerts, prev_end))) if first <= months_back(prev_end, 12) else None)
        return [KPI("complaint_spikes", t("complaints.kpi.spikes", lang), float(len(_spikes_in(self.alerts, end))),
                    unit="count", n=int(len(checked)), better="lower", previous=previous,
                    how=t("complaints.how.spikes", lang, period=self.period.display(lang)) + " " + self._how(lang))]

    def metrics(self) -> dict[str, Any]:
        a = self.alerts.attrs
        out = {"alerts": metrics_alerts(self.alerts),
               "alert_settings": {k: a[k] for k in ("alpha", "cells_checked", "expected_false_alarms", "dispersion",
                                                    "season", "max_extrapolate", "min_history")}}
        if self.current is not None:
            judged = self.current[self.current["judged"]]
            out["alerts_current"] = {"period": self.period.label, "cells_checked": int(len(judged)),
                                     "dispersion": self.current.attrs["dispersion"],
                                     "breaches": metrics_alerts(self.current),
                                     "without_history": [cat_name(c, "en") for c in
                                                         self.current.attrs["without_history"]]}
        return out


@analysis("complaints.section.alerts")
def alerts(ds: Dataset, period: Period, history_months: int = 24, granularity: str = "month") -> Result:
    """The alerts section: :func:`detect_alerts` over the history and :func:`judge_periods` for the period."""
    ds.require("complaints", "opened_at", "category")
    start, end = window(ds, period, history_months, granularity)
    cells = alert_cells(ds, start, end, granularity, categories=top_categories(ds, start, end, TOP_CATEGORIES))
    if cells.empty:
        return Skipped("complaints.section.alerts", NoHistory())
    try:
        current = judge_periods(ds, period.start, end, granularity)
    except ValueError:
        current = None
    try:
        found = detect_alerts(cells, granularity)
    except ValueError:  # too short a history to learn what normal looks like
        return Skipped("complaints.section.alerts", ShortHistory())
    return ComplaintAlerts(found, current, period, granularity)


class NoHistory(MissingDataError):
    """No complaints in the history window: nothing to model."""

    def __init__(self) -> None:
        super().__init__("complaints", (), "no complaints in the history")

    def reason(self, lang: str = "en") -> str:
        return t("complaints.note.no_history_complaints", lang)


class ShortHistory(MissingDataError):
    """Too few periods of complaints before the judged ones to set control limits."""

    def __init__(self) -> None:
        super().__init__("complaints", (), "too short a complaint history")

    def reason(self, lang: str = "en") -> str:
        return t("complaints.note.short_history", lang)


@dataclass(frozen=True, repr=False)
class Explorer(Result):
    """Complaints per period filtered by category and channel (live controls; notebooks only)."""

    heading: ClassVar[str] = "complaints.section.filters"
    interactive_only: ClassVar[bool] = True
    frame: pd.DataFrame  # explore_frame
    granularity: str

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_explore(self.frame, None, None, self.granularity, lang)] if len(self.frame) else []

    def notes(self, lang: str = "en") -> list[str]:
        return [] if len(self.frame) else [t("complaints.note.no_history_complaints", lang)]

    def widget(self, lang: str = "en") -> Any:
        if not len(self.frame):
            return None
        import ipywidgets as w

        every = t("complaints.widget.all", lang)

        def options(col: str) -> list[tuple[str, str]]:
            return [(every, "")] + [(v, v) for v in sorted(self.frame[col].dropna().unique())]

        controls = {"category": w.Dropdown(options=options("category"), description=t("complaints.widget.category", lang)),
                    "channel": w.Dropdown(options=options("channel"), description=t("complaints.widget.channel", lang)),
                    "gran": w.Dropdown(options=[(t(f"complaints.unit.{g}", lang), g) for g in GRANULARITIES],
                                       value=self.granularity, description=t("complaints.widget.granularity", lang))}
        out = w.Output()

        def redraw(_: Any = None) -> None:
            v = {k: c.value for k, c in controls.items()}
            from workbench import viz

            # a state update, not ``with out:`` capture (headless runners can hang on captured output)
            out.outputs = viz.mime_outputs([figure_explore(self.frame, v["category"] or None, v["channel"] or None,
                                                           v["gran"], lang)])

        for c in controls.values():
            c.observe(redraw, names="value")
            c.style.description_width = "initial"
        redraw()
        return w.VBox([w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")), out])


@analysis("complaints.section.filters", interactive=True)
def explorer(ds: Dataset, period: Period, history_months: int = 24, granularity: str = "month") -> Explorer:
    """The explore section (JupyterLab only): complaints by category, channel and granularity."""
    start, end = window(ds, period, history_months, granularity)
    return Explorer(explore_frame(ds, start, end), granularity)


def handling_window(ds: Dataset, period: Period, history_months: int = 24, sla_hours: float = 48.0,
                    closed_statuses: str | Sequence[str] | None = None, granularity: str = "month") -> Handling:
    """:func:`handling` over the report's history window (``closed_statuses`` ``""`` = configured/default)."""
    start, end = window(ds, period, history_months, granularity)
    return handling(ds, start, end, sla_hours=sla_hours, closed_statuses=closed_statuses or None,
                    granularity=granularity)


@dataclass(frozen=True, repr=False)
class HandlingPerformance(Result):
    """Time to resolution and first response (Kaplan-Meier), by category, and the open backlog."""

    heading: ClassVar[str] = "complaints.section.handling"
    handling: Handling
    period: Period

    def figures(self, lang: str = "en") -> list[Any]:
        from workbench import viz

        h, o = self.handling, self.handling.overall
        out = []
        if o["close_times"] and (h.curves["kind"] == "resolution").any():
            out.append(figure_resolution_curves(h, "category", "resolution", lang))
        if (h.curves["kind"] == "response").any():
            out.append(figure_resolution_curves(h, "category", "response", lang))
        tr = h.trend
        if "backlog" in tr and len(tr):
            out.append(viz.line(tr.assign(label=tr["label"].astype(str)), "label", ["backlog"],
                                title=t("complaints.col.backlog", lang),
                                names={"backlog": t("complaints.col.backlog", lang)}))
            if tr["median_hours"].notna().any():
                out.append(viz.line(tr.assign(label=tr["label"].astype(str), median_hours=tr["median_hours"].astype(float)),
                                    "label", ["median_hours"], title=t("complaints.col.median_hours", lang),
                                    names={"median_hours": t("complaints.col.median_hours", lang)}))
        return out

    def findings(self, lang: str = "en") -> list[Finding]:
        o = self.handling.overall
        how = " ".join(self._method(lang))
        within = o.get("within_sla_share")
        action = (t("complaints.action.handling", lang, sla=fmt_num(self.handling.sla_hours, lang, 0))
                  if o.get("close_times") and within is not None and within < 0.8 else "")
        return [Finding(f["key"], f["text"], value=f["value"], headline=f["headline"], n=o.get("complaints"), how=how,
                        action=action) for f in findings(lang, handling_result=self.handling)]

    def _method(self, lang: str) -> list[str]:
        o = self.handling.overall
        out = []
        if o["close_times"]:
            out.append(t("complaints.note.censoring", lang, as_of=o["as_of"],
                         without_time=fmt_int(o["closed_without_time"], lang)))
        pats = list(o.get("closed_patterns") or [])
        if pats and tuple(pats) == CLOSED_STATUSES:
            # the default patterns: name those in the reader's script (no Chinese words on an English page)
            shown = [x for x in pats if x.isascii() == (lang == "en")]
            out.append(t("complaints.note.closing_rule_default", lang, patterns=", ".join(shown)))
        elif pats:
            out.append(t("complaints.note.closing_rule", lang, patterns=", ".join(pats)))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        by, o = self.handling.by, self.handling.overall
        if "category" not in by or not len(by["category"]):
            return []
        tab = by["category"]
        timed = ("median_hours", "p90_hours", "within_sla_share")
        cols = [c for c in ("category", "complaints", "median_hours", "p90_hours", "within_sla_share",
                            "response_median_hours", "open_backlog") if c in tab and (o["close_times"] or c not in timed)]
        special = {"within_sla_share": "complaints.col.within_sla", "response_median_hours": "complaints.col.response_median"}
        names = {c: t(special.get(c, f"complaints.col.{c}"), lang) for c in cols}
        hours = lambda v: fmt_num(v, lang, 1)  # noqa: E731
        fmts = {names[c]: hours for c in ("median_hours", "p90_hours", "response_median_hours") if c in names}
        if "within_sla_share" in names:
            fmts[names["within_sla_share"]] = lambda v: fmt_pct(v, lang)
        return [Table(tab[cols].rename(columns=names), formats=fmts)]

    def notes(self, lang: str = "en") -> list[str]:
        o = self.handling.overall
        out = []
        if not o["close_times"]:
            out.append(t("complaints.note.no_close_times", lang))
            if o["data_end"] and o["data_end"] > o["as_of"]:
                out.append(t("complaints.note.status_as_of", lang, data_end=o["data_end"][:10]))
        return out + self._method(lang)

    def kpis(self, lang: str = "en") -> list[KPI]:
        o, tr = self.handling.overall, self.handling.trend
        previous = None
        if "backlog" in tr and len(tr):
            before = tr[tr["period"] < self.period.start]
            # the backlog at the previous period's end (the trend row of the period just before)
            if len(before) and _step(before["period"].iloc[-1], _gran(tr)) == self.period.start:
                previous = float(before["backlog"].iloc[-1])
        return [KPI("open_complaints", t("complaints.kpi.open", lang), _none(o.get("open_backlog")), unit="count",
                    n=o.get("complaints"), better="lower", previous=previous,
                    how=t("complaints.how.open", lang, as_of=str(o.get("as_of") or "–")[:16],
                          start=o.get("window_start") or "–", end=o.get("window_end") or "–"))]

    def metrics(self) -> dict[str, Any]:
        o, tr = self.handling.overall, self.handling.trend
        keys = ("median_hours", "p90_hours", "within_sla_share", "open_backlog", "closed_without_time",
                "response_median_hours", "response_p90_hours", "response_within_sla_share",
                "backlog_median_age_hours", "sla_hours", "as_of", "close_times")
        return {"resolution": {k: o.get(k) for k in keys},
                "handling_trend": tr.assign(period=tr["label"]).drop(columns=["label"])}


def _gran(trend_frame: pd.DataFrame) -> str:
    """The granularity of a trend frame, read from its labels (``2026-10`` month, ``2026Q3`` quarter, ISO date)."""
    label = str(trend_frame["label"].iloc[0]) if len(trend_frame) else ""
    if "Q" in label:
        return "quarter"
    if len(label) == 7:
        return "month"
    ps = list(trend_frame["period"])
    return "week" if len(ps) > 1 and (ps[1] - ps[0]).days == 7 else "day"


@analysis("complaints.section.handling")
def handling_performance(h: Handling, period: Period) -> HandlingPerformance:
    """The handling section from a :func:`handling_window` result."""
    return HandlingPerformance(h, period)


@dataclass(frozen=True, repr=False)
class Handlers(Result):
    """Hours to resolution per handler (staff, branch); small-n handlers marked."""

    heading: ClassVar[str] = "complaints.section.handlers"
    table: pd.DataFrame  # handling.by["handler"]

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_handlers(self.table, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        h = self.table
        big = h[~h["small_n"].astype(bool)].dropna(subset=["median_hours"]).sort_values("median_hours")
        if not len(big):
            return []
        slow = big.iloc[-1]
        text = t("complaints.finding2.slowest", lang, handler=slow["handler"],
                 median=fmt_num(slow["median_hours"], lang, 1), n=fmt_int(slow["complaints"], lang))
        return [Finding("slowest_handler", text, value=float(slow["median_hours"]), n=int(slow["complaints"]))]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("complaints.note.small_n", lang, n=SMALL_N)]

    def metrics(self) -> dict[str, Any]:
        h = self.table
        return {"handlers": h[[c for c in ("handler", "complaints", "median_hours", "p90_hours", "within_sla_share",
                                           "open_backlog", "small_n") if c in h]]}


@analysis("complaints.section.handlers")
def handlers(h: Handling) -> Handlers:
    """The handlers section from a :func:`handling_window` result (skipped without a handler column)."""
    if "handler" not in h.by or not len(h.by["handler"]):
        raise MissingDataError("complaints", ("handler",))
    return Handlers(h.by["handler"])


@dataclass(frozen=True, repr=False)
class Timely(Result):
    """Share of complaints answered in time (the export's SLA flag), overall, by category and per period."""

    heading: ClassVar[str] = "complaints.section.sla"
    tm: Timeliness
    previous: Timeliness | None
    period: Period

    def figures(self, lang: str = "en") -> list[Any]:
        from workbench import viz

        out = [figure_timeliness(self.tm, lang)] if self.tm.overall["complaints"] else []
        tr = self.tm.trend
        if len(tr) > 1 and tr["complaints"].sum():
            out.append(viz.line(tr.assign(label=tr["label"].astype(str)), "label", ["share"],
                                title=t("complaints.col.timely_share", lang),
                                names={"share": t("complaints.col.timely_share", lang)}))
        return out

    def findings(self, lang: str = "en") -> list[Finding]:
        o, period = self.tm.overall, self.period.display(lang)
        if not o["complaints"]:
            return [Finding("timely", t("complaints.finding2.empty_period", lang, period=period))]
        ci = lambda lo, hi: t("complaints.how.timely", lang, low=fmt_pct(lo, lang), high=fmt_pct(hi, lang))  # noqa: E731
        out = [Finding("timely", t("complaints.finding3.timely", lang, period=period, share=fmt_pct(o["share"], lang),
                                   n=fmt_int(o["complaints"], lang)), value=o["share"],
                       interval=(o["ci_low"], o["ci_high"]), n=o["complaints"], value_range=(0.0, 1.0),
                       how=ci(o["ci_low"], o["ci_high"]))]
        big = self.tm.by_category[self.tm.by_category["complaints"] >= SMALL_N]
        if len(big) > 1:
            low = big.sort_values("share", kind="stable").iloc[0]
            out.append(Finding("timely_low", t("complaints.finding3.timely_low", lang, category=low["category"],
                                                share=fmt_pct(low["share"], lang), n=fmt_int(low["complaints"], lang)),
                               value=float(low["share"]), interval=(float(low["ci_low"]), float(low["ci_high"])),
                               n=int(low["complaints"]), how=ci(low["ci_low"], low["ci_high"])))
        return out

    def notes(self, lang: str = "en") -> list[str]:
        return [t("complaints.note.timely", lang, unknown=fmt_int(self.tm.overall["unknown"], lang))]

    def kpis(self, lang: str = "en") -> list[KPI]:
        o = self.tm.overall
        if not o["complaints"]:
            return []
        prev = self.previous.overall["share"] if self.previous is not None else None
        return [KPI("timely_share", t("complaints.kpi.timely", lang), o["share"], unit="share", n=o["complaints"],
                    interval=(o["ci_low"], o["ci_high"]), better="higher", previous=prev,
                    how=t("complaints.note.timely", lang, unknown=fmt_int(o["unknown"], lang)))]

    def metrics(self) -> dict[str, Any]:
        tm = self.tm
        return {"timeliness": {"overall": tm.overall, "by_category": tm.by_category,
                               "trend": tm.trend.assign(period=tm.trend["label"]).drop(columns=["label"])}}


@analysis("complaints.section.sla")
def timely(ds: Dataset, period: Period, history_months: int = 24, granularity: str = "month") -> Timely:
    """The SLA section (skipped without the ``timely`` flag), with the previous period for the KPI."""
    start, end = window(ds, period, history_months, granularity)
    prev = period.previous()
    tm = timeliness(ds, period.start, end, history_start=start, granularity=granularity)
    before = timeliness(ds, prev.start, prev.end_exclusive, granularity=granularity)
    return Timely(tm, before if before.overall["complaints"] else None, period)


@dataclass(frozen=True, repr=False)
class Outcomes(Result):
    """The outcome (or resolution) of the period's complaints, by category."""

    heading: ClassVar[str] = "complaints.section.outcome"
    distribution: pd.DataFrame  # outcomes()
    period: Period

    def findings(self, lang: str = "en") -> list[Finding]:
        d, period = self.distribution, self.period.display(lang)
        if not len(d):
            return [Finding("outcome", t("complaints.finding2.empty_period", lang, period=period))]
        tot = d.groupby("outcome")["complaints"].sum().sort_values(ascending=False)
        return [Finding("outcome", t("complaints.finding2.outcome", lang, period=period,
                                     outcome=cat_name(tot.index[0], lang), share=fmt_pct(tot.iloc[0] / tot.sum(), lang),
                                     n=fmt_int(tot.sum(), lang)), value=float(tot.iloc[0] / tot.sum()),
                        n=int(tot.sum()))]

    def tables(self, lang: str = "en") -> list[Table]:
        if not len(self.distribution):
            return []
        wide = outcome_table(self.distribution, "category", lang)
        pct = {c: (lambda v: fmt_pct(v, lang)) for c in wide.columns if c not in ("category", "n")}
        return [Table(wide.rename(columns={"category": t("complaints.col.category", lang),
                                           "n": t("complaints.col.n", lang)}), formats=pct)]

    def notes(self, lang: str = "en") -> list[str]:
        if not len(self.distribution):
            return []
        return [t("complaints.note.outcome", lang, period=self.period.display(lang),
                  column=self.distribution.attrs.get("column", ""))]

    def metrics(self) -> dict[str, Any]:
        d = self.distribution
        if not len(d):
            return {}
        return {"outcomes": {"column": d.attrs.get("column"),
                             "distribution": d.assign(outcome=[cat_name(x, "en") for x in d["outcome"]])}}


@analysis("complaints.section.outcome")
def outcome_mix(ds: Dataset, period: Period) -> Outcomes:
    """The outcomes section for the report period."""
    return Outcomes(outcomes(ds, period.start, period.end_exclusive), period)


@dataclass(frozen=True, repr=False)
class ChurnAfterComplaints(Result):
    """Churn by complaint experience, adjusted odds ratios (appendix) and complaint rate by value tier."""

    heading: ClassVar[str] = "complaints.section.churn"
    link: ChurnLink

    def figures(self, lang: str = "en") -> list[Any]:
        out = [figure_churn_link(self.link, lang)] if len(self.link.groups) else []
        if len(self.link.by_tier):
            out.append(figure_tiers(self.link, lang))
        return out

    def _how(self, lang: str) -> str:
        k = self.link
        return t("complaints.note.associational", lang, start=k.window_start, end=k.window_end, days=k.churn_window_days)

    def findings(self, lang: str = "en") -> list[Finding]:
        k, out = self.link, []
        b = k.by_tier.set_index("tier") if len(k.by_tier) else None
        if b is not None and {"top20", "bottom50"} <= set(b.index):
            out.append(Finding("tiers", t("complaints.finding2.tier", lang, top=fmt_pct(b.loc["top20", "complaint_rate"], lang),
                                          bottom=fmt_pct(b.loc["bottom50", "complaint_rate"], lang)),
                               value=_none(b.loc["top20", "complaint_rate"])))
        g = k.groups.set_index("group") if len(k.groups) else None
        worse = (g is not None and {"none", "unresolved"} <= set(g.index)
                 and g.loc["unresolved", "churn_rate"] > g.loc["none", "churn_rate"])
        for f in findings(lang, link=k):
            out.append(Finding(f["key"], f["text"], value=f["value"], headline=f["headline"], how=self._how(lang),
                               action=t("complaints.action.churn", lang) if worse else ""))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        m = self.link.model
        if not len(m):
            return []
        shown = m.assign(term=[t(f"complaints.churn.{x}", lang) for x in m["term"]],
                         ci=[f"{fmt_num(a, lang)} – {fmt_num(b, lang)}" for a, b in zip(m["ci_low"], m["ci_high"], strict=True)])
        names = {"term": t("complaints.col.group", lang), "odds_ratio": t("complaints.col.odds_ratio", lang),
                 "ci": t("complaints.col.ci", lang), "p_value": "p"}
        return [Table(shown[list(names)].rename(columns=names), appendix=True,
                      formats={names["odds_ratio"]: lambda v: fmt_num(v, lang), "p": lambda v: fmt_p(v, lang)})]

    def notes(self, lang: str = "en") -> list[str]:
        return [self._how(lang)]

    def metrics(self) -> dict[str, Any]:
        k = self.link
        return {"churn_link": {"groups": k.groups, "adjusted_odds_ratios": k.model, "by_tier": k.by_tier,
                               "window_start": k.window_start, "window_end": k.window_end,
                               "churn_window_days": k.churn_window_days, "associational": True}}


@analysis("complaints.section.churn")
def churn(ds: Dataset, churn_window_days: int = 90, closed_statuses: str | Sequence[str] | None = None
          ) -> ChurnAfterComplaints:
    """The complaints-and-loyalty section (associational)."""
    return ChurnAfterComplaints(churn_link(ds, churn_window_days=int(churn_window_days),
                                           closed_statuses=closed_statuses or None))


@dataclass(frozen=True, repr=False)
class SilentDissatisfied(Result):
    """The iceberg: complaining customers and the estimated silent ones (an estimate from an assumption)."""

    heading: ClassVar[str] = "complaints.section.iceberg"
    ice: Iceberg
    period: Period

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_iceberg(self.ice, lang)] if self.ice.complainers else []

    def findings(self, lang: str = "en") -> list[Finding]:
        if not self.ice.complainers:
            return [Finding("iceberg", t("complaints.finding2.empty_period", lang, period=self.period.display(lang)),
                            value=0)]
        return [Finding(f["key"], f["text"], value=f["value"], how=t("complaints.note.iceberg", lang))
                for f in findings(lang, ice=self.ice)]

    def tables(self, lang: str = "en") -> list[Table]:
        if not self.ice.complainers:
            return []
        names = {"voicing_share": t("complaints.col.voicing_share", lang),
                 "estimated_dissatisfied": t("complaints.col.dissatisfied", lang),
                 "silent": t("complaints.col.silent", lang)}
        return [Table(self.ice.sensitivity.rename(columns=names), appendix=True,
                      formats={names["voicing_share"]: lambda v: fmt_pct(v, lang, 0),
                               names["estimated_dissatisfied"]: lambda v: fmt_int(v, lang),
                               names["silent"]: lambda v: fmt_int(v, lang)})]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("complaints.note.iceberg", lang)]

    def metrics(self) -> dict[str, Any]:
        return {"iceberg": self.ice.to_dict() | {"period": self.period.label}}


@analysis("complaints.section.iceberg")
def silent(ds: Dataset, period: Period, voicing_share: float = 0.10) -> SilentDissatisfied:
    """The iceberg section for the report period."""
    return SilentDissatisfied(iceberg_for(ds, period.start, period.end_exclusive, float(voicing_share)), period)


@analysis("complaints.section.verbatims")
def words(ds: Dataset, period: Period, months: int = 3, seed: int = 42, max_texts: int = 400) -> Any:
    """What each category's complaints say that the others' do not, over the last ``months`` months to the
    period end (:func:`workbench.text.compare_themes`: phrases without stop words, each with a masked
    quote; at most ``max_texts`` texts per category, a seeded sample)."""
    from workbench import text

    ds.require("complaints", "text")
    ds.require("complaints", "category")
    end = period.end_exclusive
    start = months_back(end, months)
    grp = "COALESCE(CAST(category AS VARCHAR), '–')"
    df = ds.sql(f"SELECT {grp} AS grp, text FROM complaints WHERE opened_at >= TIMESTAMP '{_date(start)}' "
                f"AND opened_at < TIMESTAMP '{_date(end)}' QUALIFY row_number() OVER "
                f"(PARTITION BY {grp} ORDER BY md5(complaint_id || '{int(seed)}'), complaint_id) <= {int(max_texts)}")
    import dataclasses

    res = text.compare_themes(df["text"], df["grp"], by="category", heading="complaints.section.verbatims",
                              key="complaint_themes", seed=seed)
    return dataclasses.replace(res, max_headlines=0)  # themes explain the numbers; they do not lead the report
