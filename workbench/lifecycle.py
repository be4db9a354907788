"""Lifecycle, churn and win-back (DOMAIN.md §4, §1 on multi-channel customers; notebook 04).

Every analysis takes a :class:`~workbench.engine.Dataset` and returns a frozen result
(:class:`workbench.results.Result`). Aggregations run in the engine (DuckDB SQL); pandas only
sees per-customer frames and aggregates, never the raw transaction log.

Definitions (each a documented parameter, see README's notebook-parameter table):

* **purchase** — a transactions row with ``amount > 0`` on or before the snapshot day;
  purchase *days* are counted (several orders on one day are one visit).
* **churn horizon** ``H`` — a customer is *lost* at day ``d`` when the last purchase is more than
  ``H`` days before ``d`` (or ``customers.churned_at <= d`` where the export has it). ``H`` is the
  ``horizon_quantile`` (default 0.9) of the gaps between consecutive purchase days, unless
  ``horizon_days`` is given; :func:`churn_rate` shows the sensitivity to the quantile.
* **stages** (Griffin's ladder as data rules, first matching rule wins): lost (above);
  lapsing (not lost, but the time since the last purchase exceeds ``lapse_factor`` times the
  customer's own mean gap — the population median gap for one-time buyers); advocate (client and
  a top-box ``recommend`` answer); client (a purchase in at least ``client_k`` of the last
  ``client_m`` calendar months); repeat (two or more purchase days); first-time (one).
* **event time** for survival: ``churned_at`` where present; otherwise the last purchase of a
  customer who is lost at the snapshot (right-censored at the snapshot when not lost).

Everything here is associational: customers choose their channels, their programme and their
complaints; the Cox model adjusts for what is measured, nothing more.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import results
from workbench.engine import Dataset, MissingDataError
from workbench.i18n import fmt_date, fmt_int, fmt_money, fmt_num, fmt_pct, t
from workbench.results import KPI, Figure, Finding, Result, Skipped, Table, analysis

__all__ = [
    "STAGES", "StageRules", "assign_stages", "customer_frame", "stages", "gap_quantiles", "churn_rate",
    "cohorts", "fit_sbg", "sbg_survival", "kaplan_meier", "survival", "cox", "harrell_c", "uno_c", "censoring_km", "multichannel",
    "churn_reasons", "churn_risk", "winback", "resolve_horizon", "matched_channels", "latent_hazards",
    "rules_explorer", "RulesExplorer",
]

STAGES: tuple[str, ...] = ("first_time", "repeat", "client", "advocate", "lapsing", "lost")
STAGE_COLORS = {"first_time": "#9ecae1", "repeat": "#4292c6", "client": "#08519c", "advocate": "#2ca25f",
                "lapsing": "#fdae6b", "lost": "#de2d26"}
#: texts' range of yearly customer loss (DOMAIN §4)
TEXT_CHURN_RANGE = (0.20, 0.40)
MIN_CASES = 30


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def _lit(day: dt.date) -> str:
    return f"DATE '{_day(day).isoformat()}'"


def _wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return (math.nan, math.nan)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return (float(lo), float(hi))


def _isin(keys: Any, values: Any) -> np.ndarray:
    """``keys.isin(values)`` as a bool array. pandas 3's isin on Arrow-backed strings loops in Python
    (25 s for a million ids); Arrow's own ``is_in`` (or object hashing) takes about a second."""
    k, v = np.asarray(keys, dtype=object), np.asarray(values, dtype=object)
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        return pc.is_in(pa.array(k), value_set=pa.array(v)).fill_null(False).to_numpy(zero_copy_only=False)
    except (ImportError, TypeError, ValueError, ArithmeticError):  # pyarrow absent or mixed id types
        return pd.Index(k, dtype=object).isin(pd.Index(v, dtype=object))


def _has_churned_at(ds: Dataset) -> bool:
    if not ds.has("customers", "churned_at"):
        return False
    return bool(ds.sql("SELECT count(*) FROM customers WHERE churned_at IS NOT NULL").iloc[0, 0])


_ALL_DAYS = ("SELECT customer_id, CAST(date AS DATE) AS d, sum(amount) AS amount FROM transactions "
             "WHERE customer_id IS NOT NULL AND amount > 0 GROUP BY 1, 2")
_CHANNEL_DAYS = ("SELECT customer_id, channel, min(CAST(date AS DATE)) AS d FROM transactions "
                 "WHERE customer_id IS NOT NULL AND channel IS NOT NULL AND amount > 0 GROUP BY 1, 2")


def _purchases(ds: Dataset, end: dt.date) -> str:
    """Subquery: distinct purchase days (customer_id, d) with the day's amount, up to ``end``. The days are
    aggregated once per dataset (:meth:`Dataset.shared_table`) and read by each analysis instead of
    re-aggregating the transaction log."""
    ds.require("transactions", "customer_id", "date", "amount", reason="lifecycle")
    days = ds.shared_table("lifecycle_days", _ALL_DAYS)
    return f"SELECT customer_id, d, amount FROM {days} WHERE d <= {_lit(end)}"


def _channel_days(ds: Dataset, end: dt.date) -> str:
    """Subquery: each customer's channels (``customer_id, channel, d``) with the first purchase day there, up
    to ``end``: distinct channels used by a day are the rows up to it (one shared table per dataset)."""
    days = ds.shared_table("lifecycle_channels", _CHANNEL_DAYS)
    return f"SELECT customer_id, channel, d FROM {days} WHERE d <= {_lit(end)}"


# --------------------------------------------------------------------------- horizon
def gap_quantiles(ds: Dataset, end: Any, quantiles: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.99)) -> pd.DataFrame:
    """Quantiles of the days between consecutive purchase days (all customers, up to ``end``).

    Returns
    -------
    DataFrame
        ``quantile, days, n_gaps``. Empty when nobody bought twice.
    """
    end = _day(end)
    qs = ", ".join(str(float(q)) for q in quantiles)
    got = ds.sql(f"""WITH p AS ({_purchases(ds, end)}),
        g AS (SELECT date_diff('day', lag(d) OVER (PARTITION BY customer_id ORDER BY d), d) AS gap FROM p)
        SELECT quantile_cont(gap, [{qs}]) AS q, count(gap) AS n FROM g WHERE gap IS NOT NULL""")
    n = int(got["n"].iloc[0])
    if n == 0:
        return pd.DataFrame(columns=["quantile", "days", "n_gaps"])
    return pd.DataFrame({"quantile": list(quantiles), "days": [float(v) for v in got["q"].iloc[0]], "n_gaps": n})


def resolve_horizon(ds: Dataset, end: Any, horizon_days: Any = "", horizon_quantile: float = 0.9) -> int | None:
    """The churn horizon in days: ``horizon_days`` when given, else the gap quantile (at least 1).

    ``None`` when the data cannot set one (no transactions, or nobody bought on two days); every
    analysis given ``None`` then skips with that reason instead of the notebook failing.
    """
    if str(horizon_days).strip() not in ("", "0", "None"):
        return int(float(horizon_days))
    try:
        q = gap_quantiles(ds, end, (float(horizon_quantile),))
    except MissingDataError:
        return None
    if q.empty:
        return None
    return max(1, int(math.ceil(q["days"].iloc[0])))


class Unsupported(results.Unsupported):
    """The data cannot support a lifecycle analysis; ``key`` names a ``lifecycle.skip.<key>`` text."""

    prefix = "lifecycle.skip."


def _fit(fit: Any) -> Any:
    """Run ``fit()`` (a model fit); a singular or unfittable model becomes :class:`Unsupported` ``singular``."""
    try:
        with np.errstate(all="ignore"):
            return fit()
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise Unsupported("singular") from exc


def _need(horizon_days: int | None, ds: Dataset) -> int:
    ds.require("transactions", "customer_id", "date", "amount", reason="lifecycle")  # names the missing table first
    if horizon_days is None:
        raise Unsupported("no_horizon")
    return int(horizon_days)


# --------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class StageRules:
    """Griffin's ladder as data rules (see the module docstring).

    Parameters
    ----------
    horizon_days : int
        Lost = no purchase for more than this many days (or ``churned_at`` on or before the day).
    client_k, client_m : int
        Client = purchases in at least ``client_k`` of the last ``client_m`` calendar months
        (the snapshot's month included).
    lapse_factor : float
        Lapsing = time since the last purchase above ``lapse_factor`` × the customer's mean gap.
    recommend_top : float or None
        Advocate = client with a ``recommend`` answer ≥ this (None: the top box of the scale).
    """

    horizon_days: int
    client_k: int = 3
    client_m: int = 6
    lapse_factor: float = 1.5
    recommend_top: float | None = None


_FRAMES_KEPT = 4  # customer frames kept per dataset (a notebook reuses a few ends; each is O(customers))


def customer_frame(ds: Dataset, end: Any, client_m: int = 6, recommend_top: float | None = None,
                   extras: bool = True) -> pd.DataFrame:
    """Per customer with a purchase on or before ``end``: the history the stage rules need.

    ``extras=False`` leaves out ``recommend_top``, ``churned_at``, ``segment`` and ``churn_reason`` (two
    queries and a lookup by customer id fewer, for callers that use only the purchase history).

    The frame is computed once per dataset and arguments (the data are read-only; the sections of a
    notebook ask for the same ``end`` several times) and each call returns its own copy.

    Returns
    -------
    DataFrame
        Index ``customer_id``; columns ``first, last, n_days, revenue, revenue_12m, mean_gap,
        active_months`` (months with a purchase among the last ``client_m``), ``channels``
        (distinct transaction channels, NaN without the column), ``recommend_top`` (bool),
        ``churned_at`` (NaT without the column), ``segment`` (None without it).
    """
    end = _day(end)
    cache: dict[tuple, pd.DataFrame] = ds.__dict__.setdefault("_wb_lifecycle_frames", {})
    key = (end, int(client_m), recommend_top, bool(extras))
    got = cache.get(key)
    if got is None and not extras:
        full = cache.get((end, int(client_m), recommend_top, True))
        if full is not None:
            got = full[[c for c in full.columns if c not in _FRAME_EXTRAS]]
            got.attrs = dict(full.attrs)
    if got is None:
        got = _customer_frame(ds, end, int(client_m), recommend_top, bool(extras))
        cache[key] = got
        while len(cache) > _FRAMES_KEPT:
            cache.pop(next(iter(cache)))
    out = got.copy()
    out.attrs = dict(got.attrs)
    return out


_FRAME_EXTRAS = ("recommend_top", "churned_at", "segment", "churn_reason")


def _customer_frame(ds: Dataset, end: dt.date, client_m: int, recommend_top: float | None,
                    extras: bool) -> pd.DataFrame:
    m0 = (pd.Timestamp(end).to_period("M") - (client_m - 1)).start_time.date()
    y0 = end - dt.timedelta(days=365)
    has_ch = ds.has("transactions", "channel")
    joins, cols = [], []
    if has_ch:
        joins.append(f"LEFT JOIN (SELECT customer_id, count(*) AS channels FROM ({_channel_days(ds, end)}) c GROUP BY 1) c "
                     f"USING (customer_id)")
        cols.append("coalesce(c.channels, 0) AS channels")
    extra_cols = [c for c in ("churned_at", "segment", "churn_reason") if ds.has("customers", "customer_id", c)]
    params: list[Any] = []
    if extras and extra_cols:  # customer_id is unique in the canonical customers table
        joins.append("LEFT JOIN customers cu USING (customer_id)")
        cols += [f"cu.{c}" for c in extra_cols]
    rec = extras and ds.has("surveys", "customer_id", "recommend", "date")
    if rec:
        top = recommend_top if recommend_top is not None else ds.scale("surveys", "recommend")[1]
        joins.append(f"LEFT JOIN (SELECT DISTINCT customer_id AS rec_id FROM surveys WHERE customer_id IS NOT NULL "
                     f"AND recommend >= ? AND CAST(date AS DATE) <= {_lit(end)}) s ON s.rec_id = a.customer_id")
        cols.append("s.rec_id IS NOT NULL AS recommend_top")
        params.append(float(top))
    if client_m <= 62:  # the months as bits of one integer: a bit_or per customer is far cheaper than a distinct count
        month = f"CAST(extract(year FROM d) * 12 + extract(month FROM d) - {m0.year * 12 + m0.month} AS INTEGER)"
        months = (f"bit_count(bit_or(CASE WHEN d >= {_lit(m0)} THEN CAST(1 AS BIGINT) << {month} "
                  f"ELSE CAST(0 AS BIGINT) END))")
    else:
        months = f"count(DISTINCT CASE WHEN d >= {_lit(m0)} THEN date_trunc('month', d) END)"
    frame = ds.sql(f"""WITH p AS ({_purchases(ds, end)}),
        a AS (SELECT customer_id, min(d) AS first, max(d) AS last, count(*) AS n_days, sum(amount) AS revenue,
                     sum(CASE WHEN d > {_lit(y0)} THEN amount ELSE 0 END) AS revenue_12m,
                     CAST({months} AS BIGINT) AS active_months
              FROM p GROUP BY 1)
        SELECT {', '.join(['a.*', *cols])} FROM a {' '.join(joins)}""", params).set_index("customer_id")
    frame = frame.sort_index()  # the engine's row order varies between runs and engines; seeded draws need a fixed one
    if frame.empty:
        raise Unsupported("no_purchase", end=end)
    frame["first"] = pd.to_datetime(frame["first"])
    frame["last"] = pd.to_datetime(frame["last"])
    span = (frame["last"] - frame["first"]).dt.days.astype(float)
    frame["mean_gap"] = np.where(frame["n_days"] > 1, span / (frame["n_days"] - 1).clip(lower=1), np.nan)
    if not has_ch:
        frame["channels"] = np.nan
    if extras:
        if not rec:
            frame["recommend_top"] = False
        frame["recommend_top"] = frame["recommend_top"].astype(bool)
        if "churned_at" not in frame:
            frame["churned_at"] = pd.NaT
        frame["churned_at"] = pd.to_datetime(frame["churned_at"])
        if "segment" not in frame:
            frame["segment"] = None
        # the frame's column order does not depend on which joins ran
        order = ["first", "last", "n_days", "revenue", "revenue_12m", "active_months", "channels", "mean_gap",
                 "recommend_top", "churned_at", "segment"]
        frame = frame[order + [c for c in frame.columns if c not in order]]
    frame.attrs.update(end=end, client_m=int(client_m))
    return frame


def assign_stages(frame: pd.DataFrame, rules: StageRules, end: Any) -> pd.Series:
    """Stage of each customer on ``end`` (first matching rule: lost, lapsing, advocate, client, repeat, first-time).

    ``frame`` needs ``last, n_days, mean_gap, active_months`` and optionally ``churned_at`` and
    ``recommend_top`` (see :func:`customer_frame`).
    """
    end_ts = pd.Timestamp(_day(end))
    recency = (end_ts - pd.to_datetime(frame["last"])).dt.days.to_numpy(float)
    churned_at = pd.to_datetime(frame["churned_at"]) if "churned_at" in frame else pd.Series(pd.NaT, frame.index)
    left = (churned_at.notna() & (churned_at <= end_ts)).to_numpy()
    lost = left | (recency > rules.horizon_days)
    gaps = frame["mean_gap"].to_numpy(float)
    typical = np.nanmedian(gaps) if np.isfinite(gaps).any() else float(rules.horizon_days)
    own = np.where(np.isfinite(gaps) & (gaps > 0), gaps, typical)
    lapsing = ~lost & (recency > rules.lapse_factor * own)
    client = frame["active_months"].to_numpy() >= rules.client_k
    advocate = client & (frame["recommend_top"].to_numpy(bool) if "recommend_top" in frame else False)
    repeat = frame["n_days"].to_numpy() >= 2
    out = np.select([lost, lapsing, advocate, client, repeat], ["lost", "lapsing", "advocate", "client", "repeat"],
                    "first_time")
    return pd.Series(pd.Categorical(out, categories=list(STAGES)), index=frame.index, name="stage")


def _month_ends(end: dt.date, n: int) -> list[dt.date]:
    last = pd.Timestamp(end).to_period("M")
    out = [(last - i).end_time.date() for i in range(n - 1, 0, -1)]
    return out + [end]


def stage_label(stage: str, lang: str) -> str:
    return t(f"lifecycle.stage.{stage}", lang)


@dataclass(frozen=True, repr=False)
class Stages(Result):
    """Stage counts per month, stage by value tier and the flow between two snapshots."""

    heading: ClassVar[str] = "lifecycle.h.stages"
    counts: pd.DataFrame  # index month end, columns STAGES
    by_tier: pd.DataFrame  # index tier, columns STAGES
    flow: pd.DataFrame  # index stage before (or "new"), columns stage after
    rules: StageRules
    end: dt.date
    before: dt.date

    def _now(self) -> pd.Series:
        return self.counts.iloc[-1]

    def findings(self, lang: str = "en") -> list[Finding]:
        now = self._now()
        n = int(now.sum())
        active = n - int(now["lost"])
        loyal = int(now["client"] + now["advocate"])
        text = t("lifecycle.find.stages", lang, n=fmt_int(n, lang), end=fmt_date(self.end, lang),
                 active=fmt_int(active, lang), loyal=fmt_int(loyal, lang),
                 loyal_share=fmt_pct(loyal / active if active else math.nan, lang),
                 lapsing=fmt_int(int(now["lapsing"]), lang), lost=fmt_int(int(now["lost"]), lang))
        how = t("lifecycle.how.stages", lang, k=self.rules.client_k, m=self.rules.client_m,
                lapse=fmt_num(self.rules.lapse_factor, lang, 1), horizon=fmt_int(self.rules.horizon_days, lang))
        out = [Finding("stages", text, value=int(now["lapsing"]), headline=True, n=n, how=how,
                       action=t("lifecycle.action.stages", lang))]
        moved = self.flow.drop(index="new", errors="ignore")
        down = int(sum(moved.at[a, b] for a in moved.index for b in ("lapsing", "lost")
                       if a not in ("lapsing", "lost") and b in moved.columns))
        out.append(Finding("stage_flow", t("lifecycle.find.flow", lang, before=fmt_date(self.before, lang),
                                           end=fmt_date(self.end, lang), down=fmt_int(down, lang),
                                           new=fmt_int(int(self.flow.loc["new"].sum()) if "new" in self.flow.index
                                                       else 0, lang)), value=down, n=int(moved.values.sum())))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        return [figure_stage_counts(self.counts, lang), self.sankey(lang)]

    def sankey(self, lang: str = "en") -> go.Figure:
        before = [s for s in self.flow.index]
        after = list(self.flow.columns)
        lab = [t("lifecycle.stage.new", lang) if s == "new" else stage_label(s, lang) for s in before]
        lab += [stage_label(s, lang) for s in after]
        src, tgt, val = [], [], []
        for i, a in enumerate(before):
            for j, b in enumerate(after):
                v = int(self.flow.at[a, b])
                if v:
                    src.append(i)
                    tgt.append(len(before) + j)
                    val.append(v)
        colors = [STAGE_COLORS.get(s, "#bbbbbb") for s in before] + [STAGE_COLORS[s] for s in after]
        fig = go.Figure(go.Sankey(node={"label": lab, "color": colors, "pad": 12},
                                  link={"source": src, "target": tgt, "value": val}))
        fig.update_layout(title=t("lifecycle.fig.flow", lang, before=fmt_date(self.before, lang),
                                  end=fmt_date(self.end, lang)))
        return fig

    def tables(self, lang: str = "en") -> list[Table]:
        tab = self.by_tier.copy()
        tab.index = [t(f"pyramid.tier.{i}", lang) for i in tab.index]
        tab.columns = [stage_label(c, lang) for c in tab.columns]
        tab.index.name = t("lifecycle.col.tier", lang)
        return [Table(tab.reset_index(), caption=t("lifecycle.cap.by_tier", lang))]

    def kpis(self, lang: str = "en") -> list[KPI]:
        now = self._now()
        prev = self.counts.iloc[-2] if len(self.counts) > 1 else None
        return [KPI("active_customers_at_risk", t("lifecycle.kpi.at_risk", lang), float(now["lapsing"]), "count",
                    n=int(now.sum() - now["lost"]), better="lower",
                    previous=float(prev["lapsing"]) if prev is not None else None,
                    how=t("lifecycle.how.at_risk", lang))]

    def metrics(self) -> dict[str, Any]:
        return {"stage_counts": {pd.Timestamp(d).date().isoformat(): {s: int(v) for s, v in row.items()}
                                 for d, row in self.counts.iterrows()},
                "stage_by_tier": {str(i): {s: int(v) for s, v in row.items()} for i, row in self.by_tier.iterrows()},
                "stage_flow": {str(i): {s: int(v) for s, v in row.items()} for i, row in self.flow.iterrows()},
                "stage_rules": {"horizon_days": self.rules.horizon_days, "client_k": self.rules.client_k,
                                "client_m": self.rules.client_m, "lapse_factor": self.rules.lapse_factor}}


def _tiers(values: pd.Series) -> pd.Series:
    from workbench.pyramid import assign_tiers

    return assign_tiers(values.astype(float).fillna(0.0))


#: stage rules can look back this many calendar months (``client_m``) without another engine query
MAX_CLIENT_M = 12
GB_TRAIN_MAX = 200_000  # churn risk: customers the gradient-boosting model learns from (a seeded draw beyond)
_NO_DAY = np.iinfo(np.int32).min  # "no purchase yet" as a day number


def _day_number(day: Any) -> int:
    return (_day(day) - dt.date(1970, 1, 1)).days


def _day_numbers(values: Any, missing: int) -> np.ndarray:
    """Dates as int32 day numbers since 1970-01-01, ``missing`` for NaT."""
    ts = pd.to_datetime(pd.Series(values)).astype("datetime64[s]")
    days = (ts - pd.Timestamp("1970-01-01")).dt.days
    return days.fillna(missing).to_numpy(np.int64).astype(np.int32)


def _panel_customers(ds: Dataset, end: dt.date) -> str:
    """Shared table of the customers with a purchase up to ``end``: row number ``i`` (by id) and the per-customer
    columns :class:`StagePanel` keeps (``first``, ``revenue_12m``, ``last0``, ``next_first``), one pass."""
    t0 = end - dt.timedelta(days=365)
    first_day, _ = ds.date_range("transactions")
    return ds.shared_table("lifecycle_panel", f"""
        SELECT customer_id, CAST(row_number() OVER (ORDER BY customer_id) - 1 AS INTEGER) AS i, first, revenue_12m,
               last0, next_first
        FROM (SELECT customer_id, min(d) AS first, sum(CASE WHEN d > {_lit(t0)} THEN amount ELSE 0 END) AS revenue_12m,
                     max(d) FILTER (WHERE d <= {_lit(t0)}) AS last0,
                     min(d) FILTER (WHERE d > {_lit(_day(first_day))}) AS next_first
              FROM ({_purchases(ds, end)}) p GROUP BY 1) q""", version=end)


def _ranked(ds: Dataset, end: dt.date, panel: str) -> str:
    """CTEs ``p`` (purchase days up to ``end``) and ``r`` (each purchasing customer's row number ``i``, by id,
    from ``panel``: :func:`_panel_customers`)."""
    return f"p AS ({_purchases(ds, end)}), r AS (SELECT customer_id, i FROM {panel})"


@dataclass(frozen=True, repr=False)
class StagePanel:
    """Per-customer purchase history at a few snapshot days: enough to apply any :class:`StageRules`
    (``client_m`` up to :data:`MAX_CLIENT_M`) at every snapshot with array arithmetic — one pass over
    the transactions instead of one :func:`customer_frame` query per snapshot.

    Customers are those with a purchase on or before ``end``, in customer-id order (row ``i``).
    Day numbers count from 1970-01-01 (int32). ``cum_n`` / ``cum_last`` (C, S): purchase days and the
    last purchase day up to each snapshot (``cum_n == 0``: not a customer yet); ``month_cum`` (C, W + 1):
    running count of calendar months with a purchase (whole months; column 0 = 0); ``partial`` (C, S):
    a purchase in the snapshot's own month on or before the snapshot day; ``snap_month`` (S,): that
    month's column; ``recommend_day`` / ``churned_day``: first top-box ``recommend`` answer and
    ``churned_at`` (int32 max: none); ``revenue_12m``, ``last0`` (last purchase on or before a year
    before ``end``) and ``next_first`` (first purchase after ``data_first``, the log's first day).
    """

    end: dt.date
    snapshots: tuple[dt.date, ...]
    first: np.ndarray
    cum_n: np.ndarray
    cum_last: np.ndarray
    month_cum: np.ndarray
    partial: np.ndarray
    snap_month: np.ndarray
    recommend_day: np.ndarray
    churned_day: np.ndarray
    revenue_12m: np.ndarray
    last0: np.ndarray
    next_first: np.ndarray
    data_first: int

    def codes(self, s: int, rules: StageRules) -> tuple[np.ndarray, np.ndarray]:
        """``(there, code)``: who is a customer at snapshot ``s`` and the index into :data:`STAGES` of
        each one's stage (the rules of :func:`assign_stages`, first match wins)."""
        h, k, m, f = int(rules.horizon_days), int(rules.client_k), int(rules.client_m), float(rules.lapse_factor)
        if not 1 <= m <= MAX_CLIENT_M:
            raise ValueError(f"client_m must be between 1 and {MAX_CLIENT_M}, got {m}")
        d = _day_number(self.snapshots[s])
        there = self.cum_n[:, s] > 0
        n = self.cum_n[there, s].astype(float)
        last = self.cum_last[there, s].astype(float)
        recency = d - last
        lost = (self.churned_day[there] <= d) | (recency > h)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(n > 1, (last - self.first[there]) / (n - 1), np.nan)
        typical = np.nanmedian(gap) if np.isfinite(gap).any() else float(h)
        own = np.where(np.isfinite(gap) & (gap > 0), gap, typical)
        lapsing = ~lost & (recency > f * own)
        j = int(self.snap_month[s])
        active = self.month_cum[there, j] - self.month_cum[there, max(j - m + 1, 0)] + self.partial[there, s]
        client = active >= k
        advocate = client & (self.recommend_day[there] <= d)
        return there, np.select([lost, lapsing, advocate, client, n >= 2], [5, 4, 3, 2, 1], 0)

    def counts(self, rules: StageRules, snapshots: Sequence[dt.date] | None = None) -> pd.DataFrame:
        """Stage counts (index snapshot day, columns :data:`STAGES`); snapshots before anyone bought are left out."""
        rows = {}
        for s, day in enumerate(self.snapshots):
            if snapshots is not None and day not in snapshots:
                continue
            there, code = self.codes(s, rules)
            if there.any():
                rows[day] = np.bincount(code, minlength=len(STAGES))
        return pd.DataFrame.from_dict(rows, orient="index", columns=list(STAGES)).astype(int)


def stage_panel(ds: Dataset, end: Any, snapshots: Sequence[Any], recommend_top: float | None = None) -> StagePanel:
    """Build a :class:`StagePanel` for ``snapshots`` (days on or before ``end``) in a few engine queries."""
    end = _day(end)
    snaps = tuple(sorted({min(_day(d), end) for d in snapshots}))
    months = [pd.Timestamp(d).to_period("M") for d in snaps]
    m_lo = min(months) - (MAX_CLIENT_M - 1)
    width = (pd.Timestamp(end).to_period("M") - m_lo).n + 1
    # a mid-month snapshot (other than ``end``: nothing comes after it) splits its month at the snapshot day
    cuts = {pm: d for pm, d in zip(months, snaps, strict=True) if d != pm.end_time.date() and d != end}
    after = " ".join(f"WHEN d > {_lit(d)} AND date_trunc('month', d) = DATE '{pm.start_time.date()}' THEN 1"
                     for pm, d in cuts.items())
    lo = m_lo.start_time.date()
    first_day, _ = ds.date_range("transactions")
    panel = _panel_customers(ds, end)
    ranked = _ranked(ds, end, panel)
    rows = ds.sql(f"""WITH {ranked}
        SELECT r.i, CASE WHEN d < DATE '{lo}' THEN 0 ELSE 1 + 2 * CAST(date_diff('month', DATE '{lo}',
                    date_trunc('month', d)) AS INTEGER) + (CASE {after or 'WHEN FALSE THEN 1'} ELSE 0 END) END AS col,
               CAST(count(*) AS INTEGER) AS n, max(d) AS last
        FROM p JOIN r USING (customer_id) GROUP BY 1, 2""")
    if rows.empty:
        raise Unsupported("no_purchase", end=end)
    per = ds.sql(f"SELECT i, first, revenue_12m, last0, next_first FROM {panel} ORDER BY i")
    cn = len(per)
    i, col = rows["i"].to_numpy(), rows["col"].to_numpy()
    n_arr = np.zeros((cn, 2 * width + 1), np.int32)
    last_arr = np.full((cn, 2 * width + 1), _NO_DAY, np.int32)
    n_arr[i, col] = rows["n"].to_numpy(np.int32)
    last_arr[i, col] = _day_numbers(rows["last"], _NO_DAY)
    snap_month = np.array([(pm - m_lo).n for pm in months])
    # last column up to each snapshot: its month's first part when the month is split there, else the whole month
    upto = 1 + 2 * snap_month + np.array([0 if cuts.get(pm) == d else 1 for pm, d in zip(months, snaps, strict=True)])
    cum_n = np.cumsum(n_arr, axis=1, dtype=np.int32)[:, upto]
    cum_last = np.maximum.accumulate(last_arr, axis=1)[:, upto]
    whole = (n_arr[:, 1::2] + n_arr[:, 2::2]) > 0
    month_cum = np.concatenate([np.zeros((cn, 1), np.int16), np.cumsum(whole, axis=1, dtype=np.int16)], axis=1)
    partial = (n_arr[:, 1 + 2 * snap_month] + np.where(upto % 2 == 0, n_arr[:, upto], 0) > 0).astype(np.int16)
    del n_arr, last_arr
    never = np.iinfo(np.int32).max
    recommend = np.full(cn, never, np.int32)
    if ds.has("surveys", "customer_id", "recommend", "date"):
        top = recommend_top if recommend_top is not None else ds.scale("surveys", "recommend")[1]
        rec = ds.sql(f"""WITH {ranked}
            SELECT r.i, min(CAST(s.date AS DATE)) AS d FROM surveys s JOIN r USING (customer_id)
            WHERE s.recommend >= ? AND CAST(s.date AS DATE) <= {_lit(end)} GROUP BY 1""", [float(top)])
        recommend[rec["i"].to_numpy()] = _day_numbers(rec["d"], never)
    churned = np.full(cn, never, np.int32)
    if ds.has("customers", "customer_id", "churned_at"):
        cu = ds.sql(f"""WITH {ranked}
            SELECT r.i, min(c.churned_at) AS c FROM customers c JOIN r USING (customer_id)
            WHERE c.churned_at IS NOT NULL GROUP BY 1""")
        churned[cu["i"].to_numpy()] = _day_numbers(cu["c"], never)
    return StagePanel(end, snaps, _day_numbers(per["first"], _NO_DAY), cum_n, cum_last, month_cum, partial, snap_month,
                      recommend, churned, per["revenue_12m"].to_numpy(float), _day_numbers(per["last0"], _NO_DAY),
                      _day_numbers(per["next_first"], never), _day_number(first_day))


@analysis("lifecycle.h.stages")
def stages(ds: Dataset, end: Any, rules: StageRules, months: int = 12, before: Any = None) -> Stages:
    """Stage counts at the last ``months`` month ends, stage by value tier (12-month revenue) and the flow
    from ``before`` (default: a year before ``end``) to ``end``. One :class:`StagePanel` serves every
    snapshot (the rules of :func:`assign_stages` on arrays, not one query per month end)."""
    _need(rules.horizon_days, ds)
    end = _day(end)
    before = min(_day(before), end) if before not in (None, "") else end - dt.timedelta(days=365)
    snaps = _month_ends(end, int(months))
    panel = stage_panel(ds, end, [*snaps, before], rules.recommend_top)
    counts = panel.counts(rules, snaps)
    s_end, s_before = panel.snapshots.index(end), panel.snapshots.index(before)
    there, code = panel.codes(s_end, rules)
    who = np.flatnonzero(there)
    st = pd.Series(pd.Categorical.from_codes(code, categories=list(STAGES)), index=who, name="stage")
    tier = _tiers(pd.Series(panel.revenue_12m[there], index=who))
    by_tier = pd.crosstab(tier, st).reindex(columns=list(STAGES), fill_value=0)
    was, old_code = panel.codes(s_before, rules)
    old = pd.Series(np.asarray(STAGES, dtype=object)[old_code], index=np.flatnonzero(was))
    prev = old.reindex(who).fillna("new")
    flow = pd.crosstab(prev, st.astype(object)).reindex(index=list(STAGES) + ["new"], columns=list(STAGES),
                                                         fill_value=0)
    flow = flow.loc[flow.sum(axis=1) > 0]
    return Stages(counts, by_tier, flow, rules, end, before)


# --------------------------------------------------------------------------- churn rate
@dataclass(frozen=True, repr=False)
class ChurnRate(Result):
    """Yearly churn: of customers active a year before the snapshot, the share lost at the snapshot."""

    heading: ClassVar[str] = "lifecycle.h.churn"
    rate: float
    interval: tuple[float, float]
    n: int
    lost: int
    horizon_days: int
    source: str  # "transactions" or "churned_at"
    start: dt.date
    end: dt.date
    sensitivity: pd.DataFrame  # quantile, horizon_days, n, lost, rate, low, high
    previous: float | None = None
    window_days: int = 365  # below 365: the share lost over the window, annualised at a constant hazard

    def findings(self, lang: str = "en") -> list[Finding]:
        lo, hi = self.interval
        where = ("inside" if TEXT_CHURN_RANGE[0] <= self.rate <= TEXT_CHURN_RANGE[1]
                 else "below" if self.rate < TEXT_CHURN_RANGE[0] else "above")
        text = t("lifecycle.find.churn", lang, rate=fmt_pct(self.rate, lang), n=fmt_int(self.n, lang),
                 start=fmt_date(self.start, lang), end=fmt_date(self.end, lang),
                 texts=t(f"lifecycle.find.texts_{where}", lang))
        how = t(f"lifecycle.how.churn_{self.source}", lang, horizon=fmt_int(self.horizon_days, lang),
                lo=fmt_pct(lo, lang), hi=fmt_pct(hi, lang), lost=fmt_int(self.lost, lang), n=fmt_int(self.n, lang))
        if self.window_days < 365:
            text += t("lifecycle.find.annualised", lang, days=self.window_days)
        return [Finding("annual_churn_rate", text, value=self.rate, headline=True, interval=self.interval,
                        n=self.n, value_range=(0.0, 1.0), how=how, action=t("lifecycle.action.churn", lang))]

    def tables(self, lang: str = "en") -> list[Table]:
        if self.sensitivity.empty:
            return []
        tab = self.sensitivity.copy()
        tab["interval"] = [f"{fmt_pct(a, lang)} – {fmt_pct(b, lang)}" for a, b in zip(tab["low"], tab["high"], strict=True)]
        tab = tab[["quantile", "horizon_days", "n", "lost", "rate", "interval"]]
        tab.columns = [t(f"lifecycle.col.{c}", lang) for c in tab.columns]
        fm = {tab.columns[0]: lambda v: fmt_pct(v, lang, 0), tab.columns[4]: lambda v: fmt_pct(v, lang)}
        return [Table(tab, fm, caption=t("lifecycle.cap.sensitivity", lang), appendix=True)]

    def kpis(self, lang: str = "en") -> list[KPI]:
        return [KPI("annual_churn_rate", t("lifecycle.kpi.churn", lang), self.rate, "share", n=self.n,
                    interval=self.interval, better="lower", previous=self.previous,
                    how=t(f"lifecycle.how.churn_{self.source}", lang, horizon=fmt_int(self.horizon_days, lang),
                          lo=fmt_pct(self.interval[0], lang), hi=fmt_pct(self.interval[1], lang),
                          lost=fmt_int(self.lost, lang), n=fmt_int(self.n, lang)))]

    def metrics(self) -> dict[str, Any]:
        return {"annual_churn_rate": {"rate": self.rate, "low": self.interval[0], "high": self.interval[1],
                                      "n": self.n, "lost": self.lost, "horizon_days": self.horizon_days,
                                      "source": self.source, "start": self.start.isoformat(),
                                      "end": self.end.isoformat(), "previous": self.previous,
                                      "window_days": self.window_days},
                "churn_horizon_sensitivity": self.sensitivity.to_dict(orient="records")}


def _year_churn(ds: Dataset, end: dt.date, horizon: int, use_churned_at: bool, days: int = 365) -> tuple[int, int]:
    t0 = end - dt.timedelta(days=days)
    if use_churned_at:
        got = ds.sql(f"""SELECT count(*) AS n, count(*) FILTER (WHERE churned_at <= {_lit(end)}) AS lost
            FROM customers WHERE signup_date <= {_lit(t0)} AND (churned_at IS NULL OR churned_at > {_lit(t0)})""")
    else:
        lo0 = t0 - dt.timedelta(days=horizon)
        lo1 = end - dt.timedelta(days=horizon)
        got = ds.sql(f"""WITH p AS ({_purchases(ds, end)}),
            a AS (SELECT customer_id,
                         bool_or(d > {_lit(lo0)} AND d <= {_lit(t0)}) AS active0,
                         bool_or(d > {_lit(lo1)}) AS active1 FROM p GROUP BY 1)
            SELECT count(*) AS n, count(*) FILTER (WHERE NOT active1) AS lost FROM a WHERE active0""")
    return int(got["n"].iloc[0]), int(got["lost"].iloc[0])


def _annual(share: float, days: int) -> float:
    """A loss share over ``days`` as a yearly rate at a constant hazard: 1 − (1 − share)^(365/days)."""
    return 1 - (1 - share) ** (365 / days) if np.isfinite(share) else math.nan


@analysis("lifecycle.h.churn")
def churn_rate(ds: Dataset, end: Any, horizon_days: int,
               quantiles: Sequence[float] = (0.8, 0.9, 0.95, 0.99)) -> ChurnRate:
    """Yearly churn rate with a Wilson 95% interval, and its sensitivity to the horizon quantile.

    With ``customers.churned_at`` the export's own dates decide (customers signed up and not gone a
    year before ``end``; lost = ``churned_at`` by ``end``). Otherwise the transaction log decides:
    active a year before = a purchase within the horizon before that day; lost = no purchase within
    the horizon before ``end``. Needs one year plus the horizon of history.
    """
    horizon_days = _need(horizon_days, ds)
    end = _day(end)
    use = _has_churned_at(ds) and ds.has("customers", "signup_date")
    first, _ = ds.date_range("customers", "signup_date") if use else ds.date_range("transactions")
    lead = 0 if use else int(horizon_days)
    need = end - dt.timedelta(days=365 + lead)
    if first is None:
        raise Unsupported("short_history", need=need)
    days = min(365, (end - _day(first)).days - lead)  # a shorter window is annualised (constant hazard)
    if days < 90:
        raise Unsupported("short_history", need=need)
    n, lost = _year_churn(ds, end, int(horizon_days), use, days)
    if n == 0:
        raise Unsupported("none_active")
    if days < 365:
        lo, hi = _wilson(lost, n)
        return ChurnRate(_annual(lost / n, days), (_annual(lo, days), _annual(hi, days)), n, lost, int(horizon_days),
                         "churned_at" if use else "transactions", end - dt.timedelta(days=days), end, pd.DataFrame(),
                         None, days)
    rows = []
    if not use:
        gq = gap_quantiles(ds, end, quantiles)
        for q, days in zip(gq["quantile"], gq["days"], strict=True):
            h = max(1, int(math.ceil(days)))
            if _day(first) > end - dt.timedelta(days=365 + h):
                continue
            nn, ll = _year_churn(ds, end, h, False)
            lo, hi = _wilson(ll, nn)
            rows.append({"quantile": q, "horizon_days": h, "n": nn, "lost": ll, "rate": ll / nn if nn else math.nan,
                         "low": lo, "high": hi})
    prev = None
    pend = end - dt.timedelta(days=365)
    if _day(first) <= pend - dt.timedelta(days=365 + (0 if use else int(horizon_days))):
        pn, pl = _year_churn(ds, pend, int(horizon_days), use)
        prev = pl / pn if pn else None
    return ChurnRate(lost / n, _wilson(lost, n), n, lost, int(horizon_days), "churned_at" if use else "transactions",
                     end - dt.timedelta(days=365), end, pd.DataFrame(rows), prev)


# --------------------------------------------------------------------------- live rules (JupyterLab)
@dataclass(frozen=True, repr=False)
class RulesExplorer(Result):
    """Live controls (JupyterLab only): the churn horizon and the stage rules, with the stage counts at each
    month end and the yearly churn rate recomputed from the per-customer arrays of a :class:`StagePanel`
    held in memory — no engine query per change. :meth:`compute` holds the arithmetic (the rules of
    :func:`assign_stages` and :func:`churn_rate`'s transaction-log rule); :meth:`update` turns it into the
    figure and text shown; :meth:`widget` wires the sliders to :meth:`update`."""

    heading: ClassVar[str] = "lifecycle.h.explore"
    interactive_only: ClassVar[bool] = True
    rules: StageRules
    panel: StagePanel
    gap_days: np.ndarray  # distinct gaps between purchase days (ascending) …
    gap_count: np.ndarray  # … and how many gaps have each length
    export: tuple[int, int, int] | None = None  # (n, lost, window days) by the export's churned_at
    horizon_max: int = 730

    def compute(self, horizon_days: int, client_k: int, client_m: int, lapse_factor: float) -> dict[str, Any]:
        """Stage counts per snapshot and the yearly churn rate under these rules.

        Returns
        -------
        dict
            ``counts`` (DataFrame: index snapshot day, columns :data:`STAGES`; snapshots before anyone
            bought are left out, as in :func:`stages`), ``churn`` (:meth:`churn`) and ``gap_share``
            (share of the gaps between purchase days no longer than the horizon).
        """
        rules = StageRules(int(horizon_days), int(client_k), int(client_m), float(lapse_factor))
        return {"counts": self.panel.counts(rules), "churn": self.churn(horizon_days),
                "gap_share": self.gap_share(horizon_days)}

    def churn(self, horizon_days: int) -> dict[str, Any]:
        """Yearly churn by the transaction log at ``horizon_days`` (:func:`churn_rate`'s rule, Wilson interval):
        ``rate, low, high, n, lost, days`` (annualised when the window is shorter than a year), or
        ``rate = None`` with ``need``, the first day the data would have to reach back to."""
        p, h = self.panel, int(horizon_days)
        e = _day_number(p.end)
        days = min(365, e - p.data_first - h)
        short = {"rate": None, "need": p.end - dt.timedelta(days=365 + h)}
        if days < 90:
            return short
        t0 = e - days
        if days == 365:
            active0 = (p.last0 > t0 - h) & (p.last0 != _NO_DAY)  # a purchase in (t0 - h, t0]
        else:  # t0 = the log's first day + h: a purchase in (first day, first day + h]
            active0 = p.next_first <= t0
        lost = active0 & ~(p.cum_last[:, -1] > e - h)
        n, k = int(active0.sum()), int(lost.sum())
        if n == 0:
            return short
        lo, hi = _wilson(k, n)
        rate = k / n
        if days < 365:
            rate, lo, hi = _annual(rate, days), _annual(lo, days), _annual(hi, days)
        return {"rate": rate, "low": lo, "high": hi, "n": n, "lost": k, "days": days}

    def gap_share(self, horizon_days: int) -> float:
        total = self.gap_count.sum()
        return float(self.gap_count[self.gap_days <= horizon_days].sum() / total) if total else math.nan

    def update(self, lang: str = "en", *, horizon_days: int, client_k: int, client_m: int,
               lapse_factor: float) -> tuple[go.Figure, str]:
        """The figure and the HTML text the live controls show for these values (their callback)."""
        from workbench.pyramid import figure_message

        if client_k > client_m:
            return figure_message(t("lifecycle.w.k_above_m", lang, m=client_m)), ""
        got = self.compute(horizon_days, client_k, client_m, lapse_factor)
        now = got["counts"].iloc[-1]
        lines = [t("lifecycle.w.now", lang, end=fmt_date(self.panel.end, lang), n=fmt_int(int(now.sum()), lang),
                   active=fmt_int(int(now.sum() - now["lost"]), lang),
                   loyal=fmt_int(int(now["client"] + now["advocate"]), lang),
                   lapsing=fmt_int(int(now["lapsing"]), lang), lost=fmt_int(int(now["lost"]), lang))]
        c = got["churn"]
        if c["rate"] is None:
            lines.append(t("lifecycle.skip.short_history", lang, need=fmt_date(c["need"], lang)))
        else:
            lines.append(t("lifecycle.w.churn", lang, horizon=fmt_int(horizon_days, lang), rate=fmt_pct(c["rate"], lang),
                           lo=fmt_pct(c["low"], lang), hi=fmt_pct(c["high"], lang), n=fmt_int(c["n"], lang),
                           lost=fmt_int(c["lost"], lang))
                         + (t("lifecycle.find.annualised", lang, days=c["days"]) if c["days"] < 365 else ""))
        if self.export is not None:
            n, lost, days = self.export
            lo, hi = _wilson(lost, n)
            lines.append(t("lifecycle.w.export", lang, rate=fmt_pct(_annual(lost / n, days), lang),
                           lo=fmt_pct(_annual(lo, days), lang), hi=fmt_pct(_annual(hi, days), lang),
                           n=fmt_int(n, lang)))
        if np.isfinite(got["gap_share"]):
            lines.append(t("lifecycle.w.gaps", lang, share=fmt_pct(got["gap_share"], lang),
                           horizon=fmt_int(horizon_days, lang)))
        import html

        return figure_stage_counts(got["counts"], lang), "<br>".join(html.escape(x) for x in lines)

    def widget(self, lang: str = "en") -> Any:
        import ipywidgets as w

        from workbench.widgets import panel

        r = self.rules
        slider = lambda cls, key, **kw: cls(description=t(f"lifecycle.w.{key}", lang), continuous_update=False, **kw)  # noqa: E731
        controls = {
            "horizon_days": slider(w.IntSlider, "horizon", value=int(r.horizon_days), min=1,
                                   max=max(self.horizon_max, int(r.horizon_days))),
            "client_k": slider(w.IntSlider, "client_k", value=int(r.client_k), min=1, max=MAX_CLIENT_M),
            "client_m": slider(w.IntSlider, "client_m", value=min(int(r.client_m), MAX_CLIENT_M), min=1,
                               max=MAX_CLIENT_M),
            "lapse_factor": slider(w.FloatSlider, "lapse", value=float(r.lapse_factor), min=1.0, max=5.0, step=0.1),
        }
        panel(controls, lambda **v: self.update(lang, **v))  # shows itself (the renderer shows nothing more)
        return None


@dataclass(frozen=True, repr=False)
class _SkippedLive(Skipped):
    """A skipped interactive-only section: absent from manager pages like the section itself."""

    interactive_only: ClassVar[bool] = True


def rules_explorer(ds: Dataset, end: Any, rules: StageRules, months: int = 12) -> Result:
    """Inputs of the live horizon and stage-rule controls (:class:`RulesExplorer`): a few engine queries once,
    then arithmetic on per-customer arrays. Report runs show no widget, so nothing is computed there; data
    that cannot support it give a skipped section that is also left out of manager pages."""
    from workbench import viz

    try:
        _need(rules.horizon_days, ds)
        if viz.report_mode():
            raise Unsupported("interactive")
        end = _day(end)
        panel = stage_panel(ds, end, _month_ends(end, int(months)), rules.recommend_top)
        export = None
        if _has_churned_at(ds) and ds.has("customers", "signup_date"):
            lo_signup, _ = ds.date_range("customers", "signup_date")
            days = min(365, (end - _day(lo_signup)).days)
            if days >= 90:
                n, lost = _year_churn(ds, end, int(rules.horizon_days), True, days)
                export = (n, lost, days) if n else None
        gaps = ds.sql(f"""WITH p AS ({_purchases(ds, end)}),
            g AS (SELECT date_diff('day', lag(d) OVER (PARTITION BY customer_id ORDER BY d), d) AS gap FROM p)
            SELECT gap, count(*) AS n FROM g WHERE gap IS NOT NULL GROUP BY 1 ORDER BY 1""")
        history = _day_number(end) - panel.data_first
        top = int(max(rules.horizon_days, min(max(2 * rules.horizon_days, 365), history - 90)))
        return RulesExplorer(rules, panel, gaps["gap"].to_numpy(float), gaps["n"].to_numpy(float), export, top)
    except MissingDataError as exc:
        return _SkippedLive("lifecycle.h.explore", exc)


def figure_stage_counts(counts: pd.DataFrame, lang: str) -> go.Figure:
    """Stacked bars: customers by stage at each snapshot (``counts``: index day, columns :data:`STAGES`)."""
    fig = go.Figure()
    x = [pd.Timestamp(d).strftime("%Y-%m") for d in counts.index]
    for s in STAGES:
        fig.add_bar(x=x, y=counts[s], name=stage_label(s, lang), marker_color=STAGE_COLORS[s])
    fig.update_layout(barmode="stack", title=t("lifecycle.fig.stages", lang),
                      yaxis_title=t("lifecycle.axis.customers", lang))
    return fig


# --------------------------------------------------------------------------- cohorts + sBG
def sbg_survival(alpha: float, beta: float, periods: int) -> np.ndarray:
    """sBG survival S(t), t = 0..periods (Fader & Hardie 2007): S(t) = B(α, β+t) / B(α, β)."""
    from scipy.special import betaln

    tt = np.arange(periods + 1)
    return np.exp(betaln(alpha, beta + tt) - betaln(alpha, beta))


def fit_sbg(deaths: np.ndarray, survivors_at: np.ndarray) -> tuple[float, float, float]:
    """Maximum-likelihood shifted-beta-geometric fit.

    Parameters
    ----------
    deaths : array (n_obs,)
        For each observed loss: the period ``t >= 1`` in which the customer left.
    survivors_at : array (n_cens,)
        For each customer still alive: the number of periods survived so far.

    Returns
    -------
    (alpha, beta, loglik)
    """
    from scipy.optimize import minimize
    from scipy.special import betaln

    d_t, d_n = np.unique(np.asarray(deaths, int), return_counts=True)
    c_t, c_n = np.unique(np.asarray(survivors_at, int), return_counts=True)

    def nll(theta: np.ndarray) -> float:
        a, b = np.exp(theta)
        base = betaln(a, b)
        ll = np.sum(d_n * (betaln(a + 1, b + d_t - 1) - base)) + np.sum(c_n * (betaln(a, b + c_t) - base))
        return -float(ll)

    res = minimize(nll, np.log([1.0, 1.0]), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12,
                                                                           "maxiter": 4000})
    a, b = np.exp(res.x)
    return float(a), float(b), -float(res.fun)


@dataclass(frozen=True, repr=False)
class Cohorts(Result):
    """Retention triangle by acquisition month and the sBG fit of the pooled survival."""

    heading: ClassVar[str] = "lifecycle.h.cohorts"
    customers: pd.DataFrame  # cohort x months since acquisition: share active
    revenue: pd.DataFrame  # cohort x months: revenue per acquired customer
    sizes: pd.Series
    alpha: float
    beta: float
    observed: pd.Series  # pooled survival by period (KM over cohorts)
    fitted: pd.Series
    horizon_days: int
    currency: str = "CNY"

    def _m12(self) -> tuple[float, int]:
        col = 12 if 12 in self.customers.columns else None
        if col is None:
            return math.nan, 0
        ok = self.customers[col].notna()
        n = int(self.sizes[ok].sum())
        return (float((self.customers.loc[ok, col] * self.sizes[ok]).sum() / n) if n else math.nan), n

    def findings(self, lang: str = "en") -> list[Finding]:
        out = []
        r1 = self.customers[1].dropna() if 1 in self.customers.columns else pd.Series(dtype=float)
        if len(r1):
            w = self.sizes.reindex(r1.index)
            m1 = float((r1 * w).sum() / w.sum())
            out.append(Finding("cohort_month1", t("lifecycle.find.cohort1", lang, share=fmt_pct(m1, lang),
                                                 n=fmt_int(int(w.sum()), lang), cohorts=len(r1)),
                               value=m1, n=int(w.sum())))
        if np.isfinite(self.alpha):
            mean_churn = self.alpha / (self.alpha + self.beta)
            gap = float(np.nanmax(np.abs(self.observed - self.fitted.reindex(self.observed.index))))
            out.append(Finding("sbg", t("lifecycle.find.sbg", lang, churn=fmt_pct(mean_churn, lang),
                                        s12=fmt_pct(float(sbg_survival(self.alpha, self.beta, 12)[12]), lang),
                                        gap=fmt_num(gap * 100, lang, 1)),
                               value=mean_churn,
                               how=t("lifecycle.how.sbg", lang, a=fmt_num(self.alpha, lang, 3),
                                     b=fmt_num(self.beta, lang, 3))))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        x = [int(c) for c in self.customers.columns]
        y = [str(i) for i in self.customers.index]
        heat = go.Figure(go.Heatmap(z=self.customers.to_numpy(float), x=x, y=y, colorscale="Blues", zmin=0, zmax=1,
                                    hoverongaps=False, colorbar={"tickformat": ".0%"}))
        heat.update_layout(title=t("lifecycle.fig.cohorts", lang), xaxis_title=t("lifecycle.axis.months_since", lang),
                           yaxis_title=t("lifecycle.axis.cohort", lang), yaxis={"autorange": "reversed"})
        rev = go.Figure(go.Heatmap(z=self.revenue.to_numpy(float), x=x, y=y, colorscale="Greens", hoverongaps=False))
        rev.update_layout(title=t("lifecycle.fig.cohort_revenue", lang, currency=self.currency),
                          xaxis_title=t("lifecycle.axis.months_since", lang),
                          yaxis_title=t("lifecycle.axis.cohort", lang), yaxis={"autorange": "reversed"})
        out: list[Any] = [heat, Figure(rev, appendix=True)]
        if np.isfinite(self.alpha):
            fit = go.Figure()
            fit.add_scatter(x=list(self.observed.index), y=self.observed, mode="markers",
                            name=t("lifecycle.series.observed", lang))
            fit.add_scatter(x=list(self.fitted.index), y=self.fitted, mode="lines", name=t("lifecycle.series.sbg", lang))
            fit.update_layout(title=t("lifecycle.fig.sbg", lang), xaxis_title=t("lifecycle.axis.months_since", lang),
                              yaxis={"tickformat": ".0%", "range": [0, 1.02]})
            out.append(Figure(fit, appendix=True))
        return out

    def notes(self, lang: str = "en") -> list[str]:
        return [t("lifecycle.note.cohorts", lang, horizon=fmt_int(self.horizon_days, lang))]

    def metrics(self) -> dict[str, Any]:
        m12, n12 = self._m12()
        return {"cohort_retention": {str(i): [None if pd.isna(v) else float(v) for v in row]
                                     for i, row in self.customers.iterrows()},
                "cohort_sizes": {str(i): int(v) for i, v in self.sizes.items()},
                "retention_month12": {"share": m12, "n": n12},
                "sbg": {"alpha": self.alpha, "beta": self.beta} if np.isfinite(self.alpha) else None}


@analysis("lifecycle.h.cohorts")
def cohorts(ds: Dataset, end: Any, horizon_days: int, months: int = 24) -> Cohorts:
    """Share of each acquisition-month cohort buying in each later month (and revenue per acquired
    customer), and an sBG fit to the pooled survival (alive = a purchase in that month or later,
    still alive when the last purchase is within the horizon of ``end``)."""
    horizon_days = _need(horizon_days, ds)
    end = _day(end)
    m_end = pd.Timestamp(end).to_period("M")
    c0 = (m_end - (int(months) - 1)).start_time.date()
    got = ds.sql(f"""WITH p AS ({_purchases(ds, end)}),
        f AS (SELECT customer_id, date_trunc('month', min(d)) AS c, max(d) AS last FROM p GROUP BY 1),
        a AS (SELECT f.c, date_diff('month', f.c, date_trunc('month', p.d)) AS k,
                     count(DISTINCT p.customer_id) AS n, sum(p.amount) AS rev
              FROM p JOIN f USING (customer_id) WHERE f.c >= {_lit(c0)} GROUP BY 1, 2)
        SELECT * FROM a""")
    life = ds.sql(f"""WITH p AS ({_purchases(ds, end)}),
        f AS (SELECT customer_id, date_trunc('month', min(d)) AS c, max(d) AS last FROM p GROUP BY 1)
        SELECT date_diff('month', c, date_trunc('month', last)) AS k_last,
               date_diff('month', c, {_lit(end)}::DATE) AS k_max,
               last > {_lit(end)}::DATE - INTERVAL {int(horizon_days)} DAY AS alive, count(*) AS n
        FROM f WHERE c >= {_lit(c0)} GROUP BY 1, 2, 3""")
    if got.empty:
        raise Unsupported("no_cohort")
    got["c"] = pd.to_datetime(got["c"]).dt.strftime("%Y-%m")
    sizes = got[got["k"] == 0].set_index("c")["n"]
    cust = got.pivot(index="c", columns="k", values="n").reindex(columns=range(int(got["k"].max()) + 1))
    rev = got.pivot(index="c", columns="k", values="rev").reindex(columns=cust.columns)
    share = cust.div(sizes, axis=0)
    perrev = rev.div(sizes, axis=0)
    # empty lower-right triangle: months not yet observed stay NaN, observed months without buyers are 0
    kmax = {c: (m_end - pd.Period(c, "M")).n for c in share.index}
    for c in share.index:
        obs = share.columns <= kmax[c]
        share.loc[c, obs] = share.loc[c, obs].fillna(0.0)
        perrev.loc[c, obs] = perrev.loc[c, obs].fillna(0.0)
    # sBG on survival periods (months): dead at k_last + 1 unless alive (censored at k_max)
    dead = life[~life["alive"]]
    cens = life[life["alive"]]
    deaths = np.repeat(dead["k_last"].to_numpy(int) + 1, dead["n"].to_numpy(int))
    surv = np.repeat(cens["k_max"].to_numpy(int), cens["n"].to_numpy(int))
    deaths = np.minimum(deaths, np.repeat(dead["k_max"].to_numpy(int), dead["n"].to_numpy(int)))
    deaths = np.maximum(deaths, 1)
    alpha = beta = math.nan
    horizon = int(max(share.columns))
    observed = fitted = pd.Series(dtype=float)
    if deaths.size >= MIN_CASES and horizon >= 3:
        alpha, beta, _ = fit_sbg(deaths, surv)
        # observed pooled survival: product-limit over periods
        times = np.arange(horizon + 1)
        s, cur = [1.0], 1.0
        for k in times[1:]:
            at_risk = np.sum(deaths >= k) + np.sum(surv >= k)
            d = np.sum(deaths == k)
            cur *= 1 - d / at_risk if at_risk else 1
            s.append(cur)
        observed = pd.Series(s, index=times)
        fitted = pd.Series(sbg_survival(alpha, beta, horizon), index=times)
    return Cohorts(share, perrev, sizes, alpha, beta, observed, fitted, int(horizon_days), ds.currency)


# --------------------------------------------------------------------------- Kaplan–Meier
def kaplan_meier(time: Any, event: Any) -> pd.DataFrame:
    """Product-limit estimate with Greenwood standard errors and log-log 95% bands.

    Returns
    -------
    DataFrame
        ``time, at_risk, events, survival, se, low, high`` at each distinct event time.
    """
    tt = np.asarray(time, float)
    ev = np.asarray(event, bool)
    times, inv = np.unique(tt, return_inverse=True)
    d = np.bincount(inv, weights=ev, minlength=times.size)
    leaving = np.bincount(inv, minlength=times.size)
    n = leaving[::-1].cumsum()[::-1]
    keep = d > 0
    times, d, n = times[keep], d[keep], n[keep]
    s = np.cumprod(1 - d / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.cumsum(d / (n * (n - d)))
        se = s * np.sqrt(g)
        lls = np.log(-np.log(s))
        w = 1.96 * np.sqrt(g) / np.abs(np.log(s))
        low = np.exp(-np.exp(lls + w))
        high = np.exp(-np.exp(lls - w))
    return pd.DataFrame({"time": times, "at_risk": n.astype(int), "events": d.astype(int), "survival": s, "se": se,
                         "low": low, "high": high})


def survival_frame(ds: Dataset, end: Any, horizon_days: int) -> pd.DataFrame:
    """Per customer: ``duration`` (days from the first purchase), ``event`` (left), covariates.

    Event time: ``churned_at`` where the export has it, else the last sign of life of a customer
    lost at ``end`` (the latest purchase, complaint or survey answer: each shows the customer was
    still there); otherwise censored at ``end``.
    """
    end = _day(end)
    fr = customer_frame(ds, end)
    end_ts = pd.Timestamp(end)
    churned_at = pd.to_datetime(fr["churned_at"])
    has_dates = churned_at.notna().any()
    if has_dates:
        event = (churned_at <= end_ts).to_numpy()
        stop = churned_at.where(event, end_ts)
    else:
        event = ((end_ts - fr["last"]).dt.days > horizon_days).to_numpy()
        if "churn_reason" in fr and fr["churn_reason"].notna().any():
            event = fr["churn_reason"].notna().to_numpy()  # a recorded reason for leaving: the customer left
        seen = fr["last"]
        for table, col in (("complaints", "opened_at"), ("surveys", "date")):
            if ds.has(table, "customer_id", col):
                got = ds.sql(f"SELECT customer_id, max(CAST({col} AS DATE)) AS d FROM {table} WHERE customer_id IS "
                             f"NOT NULL AND CAST({col} AS DATE) <= {_lit(end)} GROUP BY 1").set_index("customer_id")["d"]
                seen = np.maximum(seen, pd.to_datetime(got).reindex(fr.index).fillna(seen))
        stop = seen.where(event, end_ts)
    out = pd.DataFrame(index=fr.index)
    out["duration"] = (stop - fr["first"]).dt.days.astype(float) + 0.5
    out["event"] = event
    out["tier"] = _tiers(fr["revenue_12m"]).astype(str)
    out["segment"] = fr["segment"]
    out["channels"] = fr["channels"]
    out["first"] = fr["first"]
    out["n_days"] = fr["n_days"]
    out["churn_reason"] = fr["churn_reason"] if "churn_reason" in fr else None
    out["revenue_12m"] = fr["revenue_12m"]
    out["last"] = fr["last"]
    out.attrs.update(end=end, horizon_days=horizon_days, source="churned_at" if has_dates else "transactions")
    return out


@dataclass(frozen=True, repr=False)
class Survival(Result):
    """Kaplan–Meier curves by group with log-rank tests (Holm across the groupings)."""

    heading: ClassVar[str] = "lifecycle.h.survival"
    curves: dict[str, pd.DataFrame]  # grouping -> frame (group, time, survival, low, high)
    tests: pd.DataFrame  # grouping, chi2, df, p, p_holm, groups, n
    median_days: float
    n: int
    events: int

    def findings(self, lang: str = "en") -> list[Finding]:
        reached = bool(np.isfinite(self.median_days))
        out = [Finding("survival_median", t("lifecycle.find.km" if reached else "lifecycle.find.km_not_reached", lang,
                                            n=fmt_int(self.n, lang), events=fmt_int(self.events, lang),
                                            median=fmt_int(self.median_days, lang) if reached else ""),
                       value=self.median_days if reached else None, n=self.n)]
        for _, r in self.tests.iterrows():
            sig = r["p_holm"] < 0.05
            out.append(Finding(f"logrank_{r['grouping']}",
                               t("lifecycle.find.logrank_" + ("differ" if sig else "same"), lang,
                                 grouping=t(f"lifecycle.group.{r['grouping']}", lang)),
                               value=float(r["p_holm"]), n=int(r["n"]),
                               how=t("lifecycle.how.logrank", lang, chi2=fmt_num(r["chi2"], lang, 1), df=int(r["df"]),
                                     p=fmt_num(r["p_holm"], lang, 4))))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        out = []
        for grouping, cur in self.curves.items():
            fig = go.Figure()
            for gi, (g, c) in enumerate(cur.groupby("group", sort=True)):
                color = ["#08519c", "#de2d26", "#2ca25f", "#fdae6b", "#756bb1", "#636363"][gi % 6]
                fig.add_scatter(x=c["time"], y=c["high"], mode="lines", line={"width": 0, "shape": "hv"},
                                showlegend=False, hoverinfo="skip")
                fig.add_scatter(x=c["time"], y=c["low"], mode="lines", fill="tonexty", line={"width": 0, "shape": "hv"},
                                fillcolor="rgba(128,128,128,0.15)", showlegend=False, hoverinfo="skip")
                label = t(f"pyramid.tier.{g}", lang) if grouping == "tier" else str(g)
                fig.add_scatter(x=c["time"], y=c["survival"], mode="lines", name=label,
                                line={"shape": "hv", "color": color})
            fig.update_layout(title=t("lifecycle.fig.km", lang, grouping=t(f"lifecycle.group.{grouping}", lang)),
                              xaxis_title=t("lifecycle.axis.days", lang), yaxis={"tickformat": ".0%"})
            out.append(fig if grouping == "tier" else Figure(fig, appendix=True))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        if self.tests.empty:
            return []
        tab = self.tests.copy()
        tab["grouping"] = [t(f"lifecycle.group.{g}", lang) for g in tab["grouping"]]
        tab.columns = [t(f"lifecycle.col.{c}", lang) for c in tab.columns]
        return [Table(tab, {tab.columns[1]: lambda v: fmt_num(v, lang, 1), tab.columns[3]: lambda v: fmt_num(v, lang, 4),
                            tab.columns[4]: lambda v: fmt_num(v, lang, 4)}, caption=t("lifecycle.cap.logrank", lang),
                      appendix=True)]

    def metrics(self) -> dict[str, Any]:
        return {"survival": {"n": self.n, "events": self.events,
                             "median_days": self.median_days if np.isfinite(self.median_days) else None,
                             "logrank": self.tests.to_dict(orient="records")}}


def _channel_group(ch: pd.Series) -> pd.Series:
    v = ch.to_numpy(float)
    out = np.where(v == 1, "1", np.where(v == 2, "2", "3+")).astype(object)
    out[np.isnan(v)] = None
    return pd.Series(out, index=ch.index, dtype=object)


@analysis("lifecycle.h.survival")
def survival(ds: Dataset, end: Any, horizon_days: int) -> Survival:
    """Kaplan–Meier by value tier, segment and number of channels; log-rank per grouping, Holm-adjusted."""
    horizon_days = _need(horizon_days, ds)
    from statsmodels.duration.survfunc import survdiff
    from statsmodels.stats.multitest import multipletests

    sf = survival_frame(ds, end, horizon_days)
    groups = {"tier": sf["tier"], "segment": sf["segment"], "channels": _channel_group(sf["channels"])}
    curves, tests = {}, []
    dur, evt = sf["duration"].to_numpy(float), sf["event"].to_numpy(bool)
    for name, g in groups.items():
        ok = g.notna()
        if ok.sum() < MIN_CASES or g[ok].nunique() < 2:
            continue
        parts = []
        codes, levels = pd.factorize(g[ok], sort=True)  # positions, not index lookups by customer id
        mask = ok.to_numpy()
        for k, level in enumerate(levels):
            km = kaplan_meier(dur[mask][codes == k], evt[mask][codes == k])
            parts.append(km.assign(group=level))
        curves[name] = pd.concat(parts, ignore_index=True)
        labels = levels.astype(str)  # the groups as text, in text order: integer codes in that order
        chi2, p = survdiff(dur[mask], evt[mask].astype(int),
                           np.argsort(np.argsort(labels, kind="stable"))[codes] if len(labels) else codes)
        tests.append({"grouping": name, "chi2": float(chi2), "df": int(g[ok].nunique() - 1), "p": float(p),
                      "p_holm": math.nan, "groups": int(g[ok].nunique()), "n": int(ok.sum())})
    tests = pd.DataFrame(tests)
    if not tests.empty:
        tests["p_holm"] = multipletests(tests["p"], method="holm")[1]
    km = kaplan_meier(sf["duration"], sf["event"])
    below = km[km["survival"] <= 0.5]
    median = float(below["time"].iloc[0]) if len(below) else math.nan
    return Survival(curves, tests, median, len(sf), int(sf["event"].sum()))


# --------------------------------------------------------------------------- Cox PH
def _episodes(base: pd.DataFrame, changes: dict[str, pd.Series]) -> pd.DataFrame:
    """Split each customer's (0, duration] at the days in ``changes`` (start/stop form).

    ``changes`` maps a covariate name to a per-customer day (from the origin) from which the
    covariate is 1. Returns rows ``customer_id, start, stop, status`` plus one 0/1 column per change,
    ordered by customer id and start. Array arithmetic on customer positions (no per-row index lookups).
    """
    n = len(base)
    dur = base["duration"].to_numpy(float)
    days = {name: day.reindex(base.index).to_numpy(float) for name, day in changes.items()}
    who = np.concatenate([np.arange(n)] + [np.arange(n)] * len(days))
    cut = np.concatenate([np.zeros(n)] + list(days.values()))
    ok = (cut >= 0) & (cut < dur[who])  # NaN (no change) fails both
    who, cut = who[ok], cut[ok]
    rank = np.empty(n, np.int64)
    rank[np.asarray(base.index.argsort())] = np.arange(n)  # customer-id order, as a sort by id would give
    order = np.lexsort((cut, rank[who]))
    who, cut = who[order], cut[order]
    keep = np.r_[True, (who[1:] != who[:-1]) | (cut[1:] != cut[:-1])]
    who, cut = who[keep], cut[keep]
    last = np.r_[who[1:] != who[:-1], True]
    stop = np.where(last, dur[who], np.r_[cut[1:], 0.0])
    ep = pd.DataFrame({"customer_id": base.index.take(who), "start": cut, "stop": stop,
                       "status": (last & base["event"].to_numpy(bool)[who]).astype(int)})
    for name, day in days.items():
        ep[name] = (np.nan_to_num(day, nan=np.inf)[who] <= cut).astype(float)
    ep.attrs["row"] = who  # each episode's customer position in ``base``
    return ep


def _pair_counts(tt: np.ndarray, ev: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each customer ``i`` with an event: how many customers ``j`` have ``t_j > t_i`` (usable pairs),
    and how many of those have a lower (``r_j < r_i``) and an equal risk. Zero for censored ``i``.

    O(n log n): customers are taken in descending time, one distinct time at a time; events are counted
    against a Fenwick tree over risk ranks holding everyone with a later time, then their time's
    customers are added. Replaces the all-pairs comparison (quadratic: hours at a million customers).
    """
    n = tt.size
    ranks = np.unique(r, return_inverse=True)[1].astype(np.int64) + 1  # 1..R
    size = int(ranks.max()) + 1 if n else 1
    tree = np.zeros(size, np.int64)

    def below(idx: np.ndarray) -> np.ndarray:  # customers in the tree with rank <= idx
        idx, out = idx.copy(), np.zeros(idx.size, np.int64)
        while (live := idx > 0).any():
            out[live] += tree[idx[live]]
            idx[live] -= idx[live] & -idx[live]
        return out

    later, less, equal = np.zeros(n), np.zeros(n), np.zeros(n)
    order = np.argsort(-tt, kind="stable")
    edges = np.flatnonzero(np.diff(tt[order])) + 1
    inside = 0
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, n], strict=True):
        group = order[lo:hi]
        events = group[ev[group]]
        if events.size and inside:
            rk = ranks[events]
            lt, le = below(rk - 1), below(rk)
            later[events], less[events], equal[events] = inside, lt, le - lt
        idx = ranks[group]
        while idx.size:
            np.add.at(tree, idx, 1)
            idx = idx + (idx & -idx)
            idx = idx[idx < size]
        inside += group.size
    return later, less, equal


def harrell_c(time: Any, event: Any, risk: Any, counts: tuple[np.ndarray, ...] | None = None) -> float:
    """Harrell's concordance: among usable pairs (the shorter time is an event), the share where the
    shorter-lived customer has the higher risk; ties in risk count one half. ``counts``: the
    :func:`_pair_counts` of these data when already computed (:func:`uno_c` uses the same)."""
    tt, ev, r = np.asarray(time, float), np.asarray(event, bool), np.asarray(risk, float)
    later, less, equal = counts if counts is not None else _pair_counts(tt, ev, r)
    den = later.sum()
    return float((less.sum() + 0.5 * equal.sum()) / den) if den else math.nan


def censoring_km(time: Any, event: Any) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier of the censoring distribution (censorings are the "events"; an event at the same time
    as a censoring counts as happening first). Returns ``(times, G)`` with ``G`` = P(C > t) just after each time."""
    tt = np.asarray(time, float)
    cens = ~np.asarray(event, bool)
    times, inv = np.unique(tt, return_inverse=True)
    c = np.bincount(inv, weights=cens, minlength=times.size)
    n = np.bincount(inv, minlength=times.size)[::-1].cumsum()[::-1] - (np.bincount(inv, minlength=times.size) - c)
    return times, np.cumprod(1 - np.divide(c, n, out=np.zeros(times.size), where=n > 0))


def uno_c(time: Any, event: Any, risk: Any, tau: float | None = None,
          censoring: tuple[np.ndarray, np.ndarray] | None = None, counts: tuple[np.ndarray, ...] | None = None) -> float:
    """Uno's concordance (Uno et al. 2011): Harrell's pairs weighted by the inverse squared probability of
    staying uncensored up to the earlier event time, so that heavy censoring does not tilt the estimate.

    ``C = sum_ij d_i G(T_i-)^-2 [T_i < T_j, T_i < tau] ([r_i > r_j] + 0.5 [r_i = r_j]) / sum_ij d_i G(T_i-)^-2
    [T_i < T_j, T_i < tau]``, where ``G`` is the censoring Kaplan–Meier (:func:`censoring_km`; of these data
    unless ``censoring`` is given) and ``G(t-)`` its value just before ``t``. ``tau`` defaults to the largest
    event time with ``G(t-) > 0``.
    """
    tt, ev, r = np.asarray(time, float), np.asarray(event, bool), np.asarray(risk, float)
    ct, cg = censoring if censoring is not None else censoring_km(tt, ev)
    k = np.searchsorted(ct, tt, side="left")  # times strictly before t
    g_before = np.where(k > 0, cg[np.maximum(k - 1, 0)], 1.0)
    ok = ev & (g_before > 0)
    if tau is not None:
        ok &= tt < tau
    w = np.where(ok, 1.0 / np.where(ok, g_before, 1.0) ** 2, 0.0)
    later, less, equal = counts if counts is not None else _pair_counts(tt, ev, r)  # w = 0 outside ``ok``
    num, den = float(w @ (less + 0.5 * equal)), float(w @ later)
    return num / den if den else math.nan


# --------------------------------------------------------------------------- Cox partial likelihood (numpy)
@dataclass(frozen=True, repr=False)
class PHFit:
    """A fitted Cox model from :func:`ph_fit`, with the parts of statsmodels' ``PHRegResults`` used here
    (same definitions: Wald intervals and p-values from the inverse observed information)."""

    params: np.ndarray
    cov_params: np.ndarray
    loglike: float
    iterations: int
    schoenfeld_residuals: np.ndarray  # rows × covariates; NaN for censored rows (statsmodels' convention)
    baseline_cumulative_hazard: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # [(times, cumhaz, survival)]

    @property
    def bse(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov_params))

    @property
    def pvalues(self) -> np.ndarray:
        from scipy import stats

        return 2 * stats.norm.sf(np.abs(self.params / self.bse))

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        from scipy import stats

        q = stats.norm.ppf(1 - alpha / 2)
        return np.column_stack([self.params - q * self.bse, self.params + q * self.bse])


def _row_patterns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unique rows, inverse)`` of a 2-d array: per-column codes combined into one integer when they fit."""
    if x.shape[1] == 0:
        return x[:1], np.zeros(x.shape[0], np.int64)
    codes, sizes = [], []
    for j in range(x.shape[1]):
        _, inv = np.unique(x[:, j], return_inverse=True)
        codes.append(inv.astype(np.int64))
        sizes.append(int(inv.max()) + 1)
    if float(np.prod(np.asarray(sizes, float))) < 2.0 ** 62:
        key = np.zeros(x.shape[0], np.int64)
        for c, s in zip(codes, sizes, strict=True):
            key = key * s + c
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        return x[first], inv
    u, inv = np.unique(x, axis=0, return_inverse=True)
    return u, inv.ravel()


def ph_fit(time: Any, exog: Any, status: Any, entry: Any = None, *, strata: Any = None, ties: str = "efron",
           tol: float = 1e-10, max_iter: int = 100) -> PHFit:
    """Cox proportional hazards by Newton–Raphson on the partial likelihood (Efron or Breslow ties), with
    left truncation / start-stop rows (``entry``) and strata: the same model, risk sets and estimates as
    statsmodels' ``PHReg(time, exog, status, entry=entry, strata=strata, ties=...)`` (a row is at risk at an
    event time ``t`` of its stratum when ``entry <= t <= time``), without its per-row Python loops.

    Rows with the same covariates are counted, not repeated: risk-set sums at each distinct (stratum, event
    time) are reverse cumulative sums of (time × covariate pattern) counts times each pattern's ``exp(x'b)``,
    so a Newton step costs sparse products over the distinct (time, pattern) pairs and one weighted
    ``X'WX``. Exact (integer counts, no approximation); Efron's correction runs over each time's tied events
    as arrays.

    Raises
    ------
    ValueError
        No events, missing values, or entry after exit.
    numpy.linalg.LinAlgError
        Singular information or no convergence (``_fit`` turns both into a reason).
    """
    from scipy import sparse

    tt = np.asarray(time, float)
    ev = np.asarray(status).astype(bool)
    x = np.asarray(exog, float).reshape(len(tt), -1)
    n, p = x.shape
    en = np.zeros(n) if entry is None else np.asarray(entry, float)
    if not ev.any():
        raise ValueError("no events")
    if not (np.isfinite(x).all() and np.isfinite(tt).all() and np.isfinite(en).all()):
        raise ValueError("missing or infinite values")
    if (en > tt).any():
        raise ValueError("entry times may not occur after event or censoring times")
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    # (stratum, time) as one sortable integer: times and entries by rank (ties and order kept)
    vals, inv = np.unique(np.concatenate([tt, en]), return_inverse=True)
    sk = np.zeros(n, np.int64) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1].ravel()
    key_t = sk * (vals.size + 1) + inv[:n]
    key_e = sk * (vals.size + 1) + inv[n:]
    ukey = np.unique(key_t[ev])  # distinct event times, stratum by stratum
    m = ukey.size
    hi = np.searchsorted(ukey, key_t, "right")  # at risk at the event times [lo, hi) (all of its own stratum)
    lo = np.searchsorted(ukey, key_e, "left")
    used = hi > lo
    pats, pat = _row_patterns(x[used])
    u = pats.shape[0]
    z = np.column_stack([np.ones(u), pats])

    def counts(rows: np.ndarray, where: np.ndarray) -> Any:
        return sparse.csr_matrix((np.ones(int(rows.sum())), (where[rows], pat[rows])), shape=(m, u))

    hi_u, lo_u, ev_u = hi[used], lo[used], ev[used]
    c_in = counts(np.ones(hi_u.size, bool), hi_u - 1)  # at risk at every event time up to hi - 1 ...
    c_out = counts(lo_u > 0, lo_u - 1)  # ... except those before lo
    c_ev = counts(ev_u, np.searchsorted(ukey, key_t[used]))
    c_in_t, c_out_t, c_ev_t = c_in.T.tocsr(), c_out.T.tocsr(), c_ev.T.tocsr()
    d = np.asarray(c_ev.sum(axis=1)).ravel().astype(np.int64)  # events per time
    n_ev = np.asarray(c_ev.sum(axis=0)).ravel()  # events per pattern
    # Efron: the k-th of the d tied events (k = 0..d-1) sees the risk set less k/d of the tied events' weight
    ti = np.repeat(np.arange(m), d)
    frac = (np.arange(ti.size) - np.repeat(np.cumsum(d) - d, d)) / np.repeat(d, d)
    if ties == "breslow":
        frac = np.zeros_like(frac)

    def risk_sums(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per event time: sum over the risk set and over the tied events of ``r z`` (columns ``S0, S1``)."""
        w = r[:, None] * z
        risk = np.cumsum((c_in @ w)[::-1], axis=0)[::-1] - np.cumsum((c_out @ w)[::-1], axis=0)[::-1]
        return risk, c_ev @ w

    def evaluate(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        xb = pats @ beta
        r = np.exp(xb - xb.max())  # shifted: no overflow, and every ratio below is unchanged
        risk, tied = risk_sums(r)
        den = risk[ti, 0] - frac * tied[ti, 0]
        if not (den > 0).all():
            raise np.linalg.LinAlgError("empty risk set")
        ll = float(n_ev @ (xb - xb.max()) - np.log(den).sum())
        a0, a1 = np.bincount(ti, 1 / den, m), np.bincount(ti, frac / den, m)
        b0, b1, b2 = (np.bincount(ti, frac ** k / den ** 2, m) for k in range(3))
        s1, t1 = risk[:, 1:], tied[:, 1:]
        score = n_ev @ pats - a0 @ s1 + a1 @ t1
        # sum_t a0_t S2_t - a1_t SD2_t as one X'WX: each pattern's weight is r times the a0 summed over the
        # times it is at risk (less a1 over the times it fails)
        c0 = np.cumsum(a0)
        wt = r * (c_in_t @ c0 - c_out_t @ c0 - c_ev_t @ a1)
        info = (pats.T * wt) @ pats - (s1.T * b0) @ s1 + (s1.T * b1) @ t1 + (t1.T * b1) @ s1 - (t1.T * b2) @ t1
        return ll, score, info, risk

    beta = np.zeros(p)
    ll, score, info, risk = evaluate(beta)
    it = 0
    while it < max_iter:
        it += 1
        step = np.linalg.solve(info, score)
        new = beta + step
        ll_new, score_new, info_new, risk_new = evaluate(new)
        halve = 0
        while ll_new < ll - 1e-12 * abs(ll) and halve < 30:  # never in practice: the partial likelihood is concave
            step, halve = step / 2, halve + 1
            new = beta + step
            ll_new, score_new, info_new, risk_new = evaluate(new)
        beta, ll, score, info, risk = new, ll_new, score_new, info_new, risk_new
        if np.max(np.abs(step)) < tol:
            break
    if np.max(np.abs(step)) >= tol:
        raise np.linalg.LinAlgError("Newton-Raphson did not converge")
    cov = np.linalg.inv(info)
    if not np.isfinite(cov).all() or (np.diag(cov) <= 0).any():
        raise np.linalg.LinAlgError("singular information")
    # Schoenfeld residuals: an event row's covariates less the risk-weighted mean of its risk set (Breslow
    # means, as statsmodels computes them)
    means = risk[:, 1:] / risk[:, :1]
    sch = np.full((n, p), np.nan)
    rows = np.flatnonzero(used & ev)
    sch[rows] = x[rows] - means[np.searchsorted(ukey, key_t[rows])]
    h0 = d / risk_sums(np.exp(pats @ beta))[0][:, 0]  # Breslow increments at each event time
    stratum = ukey // (vals.size + 1)
    times = vals[ukey % (vals.size + 1)]
    base = []
    for s in np.unique(stratum):  # statsmodels reports the sum over the stratum's earlier times
        h = h0[stratum == s]
        cum = np.cumsum(h) - h
        base.append((times[stratum == s], cum, np.exp(-cum)))
    return PHFit(beta, cov, ll, it, sch, base)



def _hazard_table(table: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A hazard-ratio table (Cox or latent model) with translated term names and column headers."""
    tab = table.copy()
    tab["term"] = [t(f"lifecycle.term.{x}", lang) if not x.startswith("segment_") else
                   t("lifecycle.term.segment", lang, level=x[8:]) for x in tab["term"]]
    tab.columns = [t(f"lifecycle.col.{c}", lang) for c in tab.columns]
    return tab

@dataclass(frozen=True, repr=False)
class Cox(Result):
    """Cox proportional hazards with time-varying covariates (start/stop form, Efron ties)."""

    heading: ClassVar[str] = "lifecycle.h.cox"
    table: pd.DataFrame  # term, hr, low, high, p, ph_p
    n: int
    events: int
    concordance: float | None  # Harrell's C on the time-split holdout
    landmark_days: int
    concordance_uno: float | None = None  # Uno's C (IPCW, holdout's censoring KM) on the same holdout

    def findings(self, lang: str = "en") -> list[Finding]:
        out = []
        for _, r in self.table.iterrows():
            if r["term"] not in ("unresolved_complaint", "member", "contract", "activity", "channels"):
                continue
            text = t("lifecycle.find.hr", lang, term=t(f"lifecycle.term.{r['term']}", lang),
                     hr=fmt_num(r["hr"], lang, 2), lo=fmt_num(r["low"], lang, 2), hi=fmt_num(r["high"], lang, 2))
            out.append(Finding(f"hr_{r['term']}", text, value=float(r["hr"]), interval=(float(r["low"]), float(r["high"])),
                               null=1.0, n=self.n, headline=r["term"] == "unresolved_complaint",
                               how=t("lifecycle.how.cox", lang, n=fmt_int(self.n, lang), events=fmt_int(self.events, lang),
                                     p=fmt_num(r["p"], lang, 4))))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        tab = _hazard_table(self.table, lang)
        f2 = {c: (lambda v: fmt_num(v, lang, 2)) for c in tab.columns[1:4]}
        f2.update({c: (lambda v: fmt_num(v, lang, 4)) for c in tab.columns[4:]})
        return [Table(tab, f2, caption=t("lifecycle.cap.cox", lang), appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        out = [t("lifecycle.note.cox", lang, landmark=self.landmark_days)]
        if self.concordance is not None:
            out.append(t("lifecycle.note.concordance", lang, c=fmt_num(self.concordance, lang, 2)))
        if self.concordance_uno is not None:
            out.append(t("lifecycle.note.concordance_uno", lang, c=fmt_num(self.concordance_uno, lang, 2)))
        bad = self.table[self.table["ph_p"] < 0.05 / max(len(self.table), 1)]["term"].tolist()
        if bad:
            out.append(t("lifecycle.note.ph", lang, terms=("、" if lang == "zh" else ", ").join(
                t(f"lifecycle.term.{b}", lang) if not b.startswith("segment_") else b[8:] for b in bad)))
        return out

    def metrics(self) -> dict[str, Any]:
        return {"hazard_ratios": {r["term"]: {"hr": r["hr"], "low": r["low"], "high": r["high"], "p": r["p"],
                                              "ph_p": r["ph_p"]} for _, r in self.table.iterrows()},
                "cox": {"n": self.n, "events": self.events, "landmark_days": self.landmark_days,
                        "concordance_time_split": self.concordance,
                        "concordance_uno_time_split": self.concordance_uno}}


def cox_data(ds: Dataset, end: Any, horizon_days: int, landmark_days: int = 90) -> tuple[pd.DataFrame, list[str]]:
    """Episodes (start/stop, left-truncated at the landmark) and the covariate names for :func:`cox`.

    Fixed covariates, measured in the first ``landmark_days`` after the first purchase (so that
    how long a customer stays cannot feed back into them): ``activity`` (per SD of log purchase
    days), ``channels`` (distinct channels used, extra ones), segment dummies (largest segment the
    reference). Time-varying from the day they happen: ``unresolved_complaint`` (an unresolved
    complaint: closed without a resolution, or open for 14 days), ``member`` (joined the programme),
    ``surveyed`` (answered a survey: who is asked, and when, is not random, so the expectation groups are
    compared with the surveyed customers whose expectation was met, not with the never-asked) and
    ``expect_below`` / ``expect_above`` (first survey's expectation below / above its mid-point).
    Customers who left or were censored before the landmark are not at risk (left truncation).
    """
    end = _day(end)
    sf = survival_frame(ds, end, horizon_days)
    lm = int(landmark_days)
    # purchase days and channels in the first ``lm`` days, from the shared per-day and per-channel tables
    if ds.has("transactions", "channel"):
        ch, ch_join = "coalesce(c.ch, 0)", (f"""LEFT JOIN (SELECT c.customer_id, count(*) AS ch FROM ({_channel_days(ds, end)}) c
                 JOIN f USING (customer_id) WHERE c.d < f.first + INTERVAL {lm} DAY GROUP BY 1) c USING (customer_id)""")
    else:
        ch, ch_join = "NULL", ""
    early = ds.sql(f"""WITH p AS ({_purchases(ds, end)}), f AS (SELECT customer_id, min(d) AS first FROM p GROUP BY 1),
        n AS (SELECT p.customer_id, count(*) AS n FROM p JOIN f USING (customer_id)
              WHERE p.d < f.first + INTERVAL {lm} DAY GROUP BY 1)
        SELECT n.customer_id, n.n, {ch} AS ch FROM n {ch_join}""").set_index("customer_id")
    base = sf[sf["duration"] > lm].copy()
    if len(base) < MIN_CASES or base["event"].sum() < MIN_CASES:
        raise Unsupported("few_at_risk", min=MIN_CASES, days=lm)
    e = early.reindex(base.index)
    act = np.log(e["n"].astype(float))
    names = []
    if act.std() > 0:  # monthly bills: everyone has the same early activity, nothing to estimate
        base["activity"] = (act - act.mean()) / act.std()
        names.append("activity")
    if e["ch"].notna().any() and e["ch"].nunique() > 1:
        base["channels"] = e["ch"].astype(float) - 1
        names.append("channels")
    if base["segment"].notna().any() and base["segment"].nunique() > 1:
        ref = base["segment"].value_counts().index[0]
        for lev in sorted(base["segment"].dropna().unique()):
            if lev != ref:
                col = "contract" if str(lev).lower() in ("contract", "合约客户") else f"segment_{lev}"
                base[col] = (base["segment"] == lev).astype(float)
                names.append(col)
    origin = base["first"]
    changes: dict[str, pd.Series] = {}
    if ds.has("complaints", "customer_id", "opened_at", "resolution"):
        closed = "closed_at" if ds.has("complaints", "closed_at") else "NULL"
        un = ds.sql(f"""SELECT customer_id, min(coalesce({closed}, opened_at + INTERVAL 14 DAY)) AS u FROM complaints
            WHERE resolution IS NULL AND customer_id IS NOT NULL AND CAST(opened_at AS DATE) <= {_lit(end)}
            GROUP BY 1""").set_index("customer_id")["u"]
        changes["unresolved_complaint"] = (pd.to_datetime(un).reindex(base.index) - origin).dt.days.astype(float)
    if ds.has("members", "customer_id", "joined_at"):
        j = ds.sql(f"SELECT customer_id, min(joined_at) AS j FROM members WHERE joined_at <= {_lit(end)} "
                   f"GROUP BY 1").set_index("customer_id")["j"]
        changes["member"] = (pd.to_datetime(j).reindex(base.index) - origin).dt.days.astype(float)
    if ds.has("surveys", "customer_id", "expectation", "date"):
        lo, hi = ds.scale("surveys", "expectation")
        mid = (lo + hi) / 2
        sv = ds.sql(f"""SELECT customer_id, arg_min(expectation, date) AS e, min(CAST(date AS DATE)) AS d FROM surveys
            WHERE customer_id IS NOT NULL AND expectation IS NOT NULL AND CAST(date AS DATE) <= {_lit(end)}
            GROUP BY 1""").set_index("customer_id").reindex(base.index)
        day = (pd.to_datetime(sv["d"]) - origin).dt.days.astype(float)
        if sv["e"].notna().any():  # expectation groups compare with 'met' among the surveyed, not with the never-asked
            changes["surveyed"] = day
        if (sv["e"] < mid).any():
            changes["expect_below"] = day.where(sv["e"] < mid)
        if (sv["e"] > mid).any():
            changes["expect_above"] = day.where(sv["e"] > mid)
    ep = _episodes(base, changes)
    row = ep.attrs.pop("row")
    for c in names:
        ep[c] = base[c].to_numpy(float)[row]
    ep["first_day"] = base["first"].to_numpy()[row]
    ep = ep[ep["stop"] > lm].copy()
    ep["start"] = np.maximum(ep["start"], lm)
    names += [c for c in changes if ep[c].sum() > 0]
    ep.attrs.update(n=len(base), events=int(base["event"].sum()), landmark=lm)
    return ep, names


@analysis("lifecycle.h.cox")
def cox(ds: Dataset, end: Any, horizon_days: int, landmark_days: int = 90) -> Cox:
    """Fit :func:`cox_data` by :func:`ph_fit` (statsmodels ``PHReg``'s model and estimates: Efron ties,
    entry = episode start).

    PH check: per covariate, the correlation of scaled Schoenfeld residuals with log time
    (p-value of the Pearson test). Discrimination on a time-split holdout: Harrell's and Uno's C
    (:func:`harrell_c`, :func:`uno_c`; see :func:`_split_concordance`).
    """
    horizon_days = _need(horizon_days, ds)
    from scipy import stats

    ep, names = cox_data(ds, end, horizon_days, landmark_days)
    res = _fit(lambda: ph_fit(ep["stop"].to_numpy(), ep[names].to_numpy(float), status=ep["status"].to_numpy(),
                     entry=ep["start"].to_numpy(), ties="efron"))
    ci = res.conf_int()
    ph = []
    sch = res.schoenfeld_residuals
    ev = ep["status"].to_numpy() == 1
    lt = np.log(ep["stop"].to_numpy()[ev])
    for j in range(len(names)):
        r = sch[ev, j]
        ok = np.isfinite(r)
        ph.append(float(stats.pearsonr(lt[ok], r[ok])[1]) if ok.sum() > 2 and np.std(r[ok]) > 0 else math.nan)
    table = pd.DataFrame({"term": names, "hr": np.exp(res.params), "low": np.exp(ci[:, 0]), "high": np.exp(ci[:, 1]),
                          "p": res.pvalues, "ph_p": ph})
    harrell, uno = _split_concordance(ep, names)
    return Cox(table, int(ep.attrs["n"]), int(ep.attrs["events"]), harrell, int(landmark_days), uno)


def _split_concordance(ep: pd.DataFrame, names: list[str]) -> tuple[float | None, float | None]:
    """Harrell's and Uno's C on a time split: fit on customers whose first purchase came in the earlier half
    of the first-purchase dates, score the later ones by their covariates at the landmark. Uno's weights
    come from the holdout's own censoring Kaplan–Meier (its follow-up is shorter than the training half's)."""

    cid = ep["customer_id"].to_numpy()
    # a customer's episodes are adjacent rows (cox_data keeps them in customer order, by start)
    head = np.r_[True, cid[1:] != cid[:-1]] if len(cid) else np.zeros(0, bool)
    cut = ep["first_day"][head].quantile(0.5)  # over customers, not episodes
    train = ep[ep["first_day"] <= cut]  # every episode of a customer carries the customer's first day
    late = (ep["first_day"] > cut).to_numpy()
    test = ep[late]
    if train["status"].sum() < MIN_CASES or test["status"].sum() < MIN_CASES:
        return None, None
    try:
        fit = _fit(lambda: ph_fit(train["stop"].to_numpy(), train[names].to_numpy(float), status=train["status"].to_numpy(),
                         entry=train["start"].to_numpy(), ties="efron"))
    except MissingDataError:
        return None, None
    first = head[late]  # each test customer's first episode (at the landmark) and last one (its end)
    last = np.r_[first[1:], True] if len(first) else first
    r = test[names].to_numpy(float)[first] @ fit.params
    tt, ev = test["stop"].to_numpy(float)[last], (test["status"].to_numpy() == 1)[last]
    counts = _pair_counts(tt, ev, r)  # shared: the same pairs, Uno only weights them
    return harrell_c(tt, ev, r, counts), uno_c(tt, ev, r, counts=counts)


# --------------------------------------------------------------------------- multi-channel
@dataclass(frozen=True, repr=False)
class MultiChannel(Result):
    """Naive churn by number of channels next to the Cox estimate adjusted for activity."""

    heading: ClassVar[str] = "lifecycle.h.multichannel"
    naive: pd.DataFrame  # channels, n, lost, share, low, high
    naive_hr: tuple[float, float, float]
    adjusted_hr: tuple[float, float, float]
    n: int
    matched: dict[str, Any] | None = None  # hr, low, high, treated, controls, cells (multi vs single, same early activity)

    def findings(self, lang: str = "en") -> list[Finding]:
        one = self.naive[self.naive["channels"] == "1"]
        many = self.naive[self.naive["channels"] != "1"]
        out = []
        if len(one) and len(many):
            s1 = float(one["share"].iloc[0])
            sm = float(many["lost"].sum() / many["n"].sum())
            out.append(Finding("multichannel_naive", t("lifecycle.find.mc_naive", lang, single=fmt_pct(s1, lang),
                                                       multi=fmt_pct(sm, lang)), value=s1 - sm, n=self.n))
        hr, lo, hi = self.adjusted_hr
        nhr = self.naive_hr
        out.append(Finding("multichannel_adjusted", t("lifecycle.find.mc_adjusted", lang, hr=fmt_num(hr, lang, 2),
                                                      lo=fmt_num(lo, lang, 2), hi=fmt_num(hi, lang, 2),
                                                      naive=fmt_num(nhr[0], lang, 2)),
                           value=hr, interval=(lo, hi), null=1.0, n=self.n, headline=True,
                           how=t("lifecycle.how.mc", lang, nlo=fmt_num(nhr[1], lang, 2), nhi=fmt_num(nhr[2], lang, 2)),
                           action=t("lifecycle.action.mc", lang)))
        mt = self.matched
        if mt:
            out.append(Finding("multichannel_matched", t("lifecycle.find.mc_matched", lang, hr=fmt_num(mt["hr"], lang, 2),
                                                         lo=fmt_num(mt["low"], lang, 2), hi=fmt_num(mt["high"], lang, 2)),
                               value=mt["hr"], interval=(mt["low"], mt["high"]), null=1.0,
                               n=mt["treated"] + mt["controls"],
                               how=t("lifecycle.how.mc_matched", lang, treated=fmt_int(mt["treated"], lang),
                                     controls=fmt_int(mt["controls"], lang), cells=fmt_int(mt["cells"], lang),
                                     dropped=fmt_int(mt["dropped"], lang))))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        f = self.naive
        fig = go.Figure(go.Bar(x=f["channels"], y=f["share"],
                               error_y={"type": "data", "symmetric": False, "array": f["high"] - f["share"],
                                        "arrayminus": f["share"] - f["low"]}, marker_color="#4292c6"))
        fig.update_layout(title=t("lifecycle.fig.mc", lang), xaxis_title=t("lifecycle.axis.channels", lang),
                          yaxis={"tickformat": ".0%"})
        return [fig]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("lifecycle.note.mc_which", lang), t("lifecycle.note.associational", lang)]

    def metrics(self) -> dict[str, Any]:
        return {"multichannel": {"naive": self.naive.to_dict(orient="records"),
                                 "naive_hr": list(self.naive_hr), "adjusted_hr": list(self.adjusted_hr), "n": self.n,
                                 "naive_label": "confounded: busier customers use more channels",
                                 "matched": self.matched}}


@analysis("lifecycle.h.multichannel")
def multichannel(ds: Dataset, end: Any, horizon_days: int, landmark_days: int = 90) -> MultiChannel:
    """Naive lost share by channels used over the whole history (all customers, Wilson intervals) and the
    per-extra-channel hazard ratio without and with adjustment (Cox from the landmark: channels used in
    the first ``landmark_days`` alone, then with activity and the other covariates of :func:`cox`)."""
    horizon_days = _need(horizon_days, ds)

    ds.require("transactions", "channel", reason="multi-channel comparison")
    ep, names = cox_data(ds, end, horizon_days, landmark_days)
    if "channels" not in names:
        raise Unsupported("one_channel")
    sf = survival_frame(ds, end, horizon_days)  # naive: every customer, channels used over the whole history
    tab = pd.DataFrame({"channels": _channel_group(sf["channels"]), "lost": sf["event"].astype(int)})
    tab = tab.dropna().groupby("channels")["lost"].agg(["size", "sum"])
    rows = []
    for g, r in tab.iterrows():
        lo, hi = _wilson(int(r["sum"]), int(r["size"]))
        rows.append({"channels": g, "n": int(r["size"]), "lost": int(r["sum"]), "share": r["sum"] / r["size"],
                     "low": lo, "high": hi})

    def fit(cols: list[str]) -> tuple[float, float, float]:
        res = _fit(lambda: ph_fit(ep["stop"].to_numpy(), ep[cols].to_numpy(float), status=ep["status"].to_numpy(),
                         entry=ep["start"].to_numpy(), ties="efron"))
        j = cols.index("channels")
        ci = res.conf_int()[j]
        return float(np.exp(res.params[j])), float(np.exp(ci[0])), float(np.exp(ci[1]))

    return MultiChannel(pd.DataFrame(rows), fit(["channels"]), fit(names), len(sf),
                        matched_channels(ds, end, horizon_days, landmark_days))


def matched_channels(ds: Dataset, end: Any, horizon_days: int, landmark_days: int = 90) -> dict[str, Any] | None:
    """Multi- vs single-channel customers matched exactly on activity before the landmark.

    Pre-period = the first ``landmark_days`` after the first purchase. Cells: purchase days in the
    pre-period (1 … 5, 6+) × pre-period spend quartile × segment. Treated = two or more channels used in
    the pre-period, controls = one. Cells without both are dropped (no overlap, counted). The hazard ratio
    of the treated, from the landmark on, is a Cox model stratified by cell (each cell its own baseline:
    a like-with-like comparison, no per-customer loop). ``None`` when fewer than ``MIN_CASES`` losses remain.
    """

    end = _day(end)
    lm = int(landmark_days)
    sf = survival_frame(ds, end, horizon_days)
    pre = ds.sql(f"""WITH f AS (SELECT customer_id, min(CAST(date AS DATE)) AS first FROM transactions
                                WHERE amount > 0 AND customer_id IS NOT NULL GROUP BY 1)
        SELECT t.customer_id, count(DISTINCT CAST(t.date AS DATE)) AS n, sum(t.amount) AS spend,
               count(DISTINCT t.channel) AS ch FROM transactions t JOIN f USING (customer_id)
        WHERE t.amount > 0 AND CAST(t.date AS DATE) < f.first + INTERVAL {lm} DAY
          AND CAST(t.date AS DATE) <= {_lit(end)} GROUP BY 1""").set_index("customer_id")
    base = sf[sf["duration"] > lm].join(pre, how="inner")
    if base.empty:
        return None
    q = pd.qcut(base["spend"].rank(method="first"), 4, labels=False)
    cell = (base["n"].clip(upper=6).astype(int).astype(str) + "|" + q.astype(str) + "|"
            + base["segment"].astype(str))
    treated = base["ch"] >= 2
    both = treated.groupby(cell).transform("any") & (~treated).groupby(cell).transform("any")
    m = base[both]
    if m["event"].sum() < MIN_CASES or treated[both].sum() < MIN_CASES:
        return None
    res = _fit(lambda: ph_fit(m["duration"].to_numpy(), treated[both].to_numpy(float)[:, None], status=m["event"].to_numpy(int),
                     entry=np.full(len(m), float(lm)), strata=cell[both].to_numpy(), ties="efron"))
    lo, hi = np.exp(res.conf_int()[0])
    return {"hr": float(np.exp(res.params[0])), "low": float(lo), "high": float(hi),
            "treated": int(treated[both].sum()), "controls": int((~treated[both]).sum()),
            "cells": int(cell[both].nunique()), "dropped": int((~both).sum()), "events": int(m["event"].sum()),
            "method": "exact match on pre-period purchase days x spend quartile x segment; stratified Cox"}


# --------------------------------------------------------------------------- latent traits (joint model)
@dataclass(frozen=True, repr=False)
class LatentHazards(Result):
    """Hazard ratios per SD of latent activity and per channel the customer has, from a joint model."""

    heading: ClassVar[str] = "lifecycle.h.latent"
    table: pd.DataFrame  # term, hr, low, high (hazard terms) ; plus measurement terms in ``measurement``
    measurement: pd.DataFrame  # term, estimate, low, high (purchase rate and channel model)
    n: int
    events: int
    loglik: float
    converged: bool

    def findings(self, lang: str = "en") -> list[Finding]:
        out = []
        for _, r in self.table.iterrows():
            if r["term"] not in ("activity", "channels"):
                continue
            out.append(Finding(f"latent_hr_{r['term']}", t(f"lifecycle.find.latent_{r['term']}", lang,
                                                           hr=fmt_num(r["hr"], lang, 2), lo=fmt_num(r["low"], lang, 2),
                                                           hi=fmt_num(r["high"], lang, 2)),
                               value=float(r["hr"]), interval=(float(r["low"]), float(r["high"])), null=1.0, n=self.n,
                               how=t("lifecycle.how.latent", lang, n=fmt_int(self.n, lang),
                                     events=fmt_int(self.events, lang))))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        tab = _hazard_table(self.table, lang)
        f2 = {c: (lambda v: fmt_num(v, lang, 2)) for c in tab.columns[1:4]}
        return [Table(tab, f2, caption=t("lifecycle.cap.latent", lang), appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("lifecycle.note.latent", lang), t("lifecycle.note.associational", lang)]

    def metrics(self) -> dict[str, Any]:
        return {"latent_hazard_ratios": {r["term"]: {"hr": r["hr"], "low": r["low"], "high": r["high"]}
                                         for _, r in self.table.iterrows()},
                "latent_model": {"n": self.n, "events": self.events, "loglik": self.loglik,
                                 "converged": self.converged,
                                 "measurement": {r["term"]: {"estimate": r["estimate"], "low": r["low"],
                                                             "high": r["high"]}
                                                 for _, r in self.measurement.iterrows()}}}


def _occupancy(k: np.ndarray, m: np.ndarray, channels: int) -> np.ndarray:
    """log P(exactly ``k`` distinct of ``channels`` equally likely channels in ``m`` purchases) (inclusion-exclusion)."""
    from scipy.special import comb

    out = np.full(k.shape, -np.inf)
    ok = (k <= channels) & (k >= 1) & (m >= k)
    kk, mm = k[ok].astype(float), m[ok]
    tot = np.zeros(kk.size)
    for j in range(channels + 1):
        tot += np.where(j <= kk, (-1.0) ** j * comb(kk, j) * np.clip((kk - j) / channels, 0, None) ** mm, 0.0)
    out[ok] = np.log(np.clip(comb(channels, kk) * tot, 1e-300, None))
    return out


@analysis("lifecycle.h.latent")
def latent_hazards(ds: Dataset, end: Any, horizon_days: int, nodes: int = 20) -> LatentHazards:
    """Churn hazard per SD of *latent* activity and per channel the customer *has*, by a joint model.

    The data show activity only as purchase counts and channels only as channels *used*; both are noisy
    proxies (a customer who buys twice cannot show three channels), so a Cox model on them is attenuated
    and confounded. Here one latent activity ``z ~ N(mu_segment, 1)`` drives three parts, fitted together
    by maximum likelihood (``z`` integrated out by ``nodes``-point Gauss–Hermite quadrature):

    * purchases: transactions after the first ~ Poisson(exp(a + sigma z) x days observed);
    * channels: ``c`` = 1 + Binomial(max - 1, logistic(c0 + c1 z)) channels the customer has (``max`` = the most
      channels any customer used), each purchase in one of them with equal chance, so the channels used
      follow the occupancy law given ``c`` and the number of purchases;
    * churn: constant baseline hazard x exp(beta_z z + beta_c (c - 1) + the time-varying terms of
      :func:`cox_data`) over start/stop episodes from the first purchase (churn from ``churned_at`` or the
      horizon rule).

    ``activity`` is the hazard ratio per SD of ``z``, ``channels`` per extra channel the customer has.
    Intervals: Wald, from the numerical Hessian of the log-likelihood (analytic gradient).
    """
    horizon_days = _need(horizon_days, ds)
    from scipy.optimize import minimize
    from scipy.special import comb, logsumexp

    ds.require("transactions", "channel", reason="latent activity model")
    end = _day(end)
    ep, names = cox_data(ds, end, horizon_days, landmark_days=0)
    sf = survival_frame(ds, end, horizon_days)
    cust, inv = np.unique(ep["customer_id"].to_numpy(), return_inverse=True)
    n = len(cust)
    tx = ds.sql(f"""SELECT customer_id, count(*) AS m, count(DISTINCT channel) AS k FROM transactions
        WHERE amount > 0 AND customer_id IS NOT NULL AND CAST(date AS DATE) <= {_lit(end)} GROUP BY 1""")
    tx = tx.set_index("customer_id").reindex(cust)
    m, k = tx["m"].fillna(1).to_numpy(float), tx["k"].fillna(1).to_numpy(int)
    cmax = int(k.max())
    if cmax < 2:
        raise Unsupported("one_channel")
    expo = sf["duration"].reindex(cust).to_numpy(float)
    d = sf["event"].reindex(cust).to_numpy(bool).astype(float)
    seg = sf["segment"].reindex(cust).astype(str)
    ref = seg.value_counts().index[0]
    others = sorted(s for s in seg.unique() if s != ref)
    sidx = np.zeros(n, int)
    for i, s in enumerate(others, 1):
        sidx[(seg == s).to_numpy()] = i
    x = ep[names].to_numpy(float)
    dt_ = (ep["stop"] - ep["start"]).to_numpy(float)
    last = ep["status"].to_numpy() == 1
    xev = np.zeros((n, len(names)))
    xev[inv[last]] = x[last]
    occ = np.stack([_occupancy(k, m, c) for c in range(1, cmax + 1)], axis=1)  # n x cmax
    zq, wq = np.polynomial.hermite_e.hermegauss(int(nodes))
    lw = np.log(wq / np.sqrt(2 * np.pi))
    jj = np.arange(cmax, dtype=float)
    lc = np.log(comb(cmax - 1, jj))
    ns, p = len(others), len(names)

    def parts(th: np.ndarray) -> tuple[float, np.ndarray]:
        mu = np.concatenate([[0.0], th[:ns]])
        a, ls, c0, c1, lh0, bz, bc = th[ns:ns + 7]
        g = th[ns + 7:]
        sig = np.exp(ls)
        z = mu[sidx][:, None] + zq[None, :]
        lr = a + sig * z
        er = np.exp(lr) * expo[:, None]
        pois = (m - 1)[:, None] * lr - er
        eta = c0 + c1 * z
        lp, lq = -np.logaddexp(0, -eta), -np.logaddexp(0, eta)
        binom = lc + jj * lp[..., None] + (cmax - 1 - jj) * lq[..., None]
        ex = np.exp(x @ g) * dt_
        a_i = np.bincount(inv, weights=ex, minlength=n) * np.exp(lh0)
        b_i = np.stack([np.bincount(inv, weights=ex * x[:, c], minlength=n) for c in range(p)], axis=1) * np.exp(lh0)
        lin = bz * z[..., None] + bc * jj
        el = np.exp(lin)
        haz = d[:, None, None] * (lh0 + (xev @ g)[:, None, None] + lin) - el * a_i[:, None, None]
        tot = lw[None, :, None] + binom + occ[:, None, :] + pois[..., None] + haz
        ll = logsumexp(tot.reshape(n, -1), axis=1)
        w = np.exp(tot - ll[:, None, None])  # posterior weights over (node, channels)
        res = d[:, None, None] - el * a_i[:, None, None]  # d(haz)/d(log hazard)
        pr = np.exp(lp)[..., None]
        cj = jj - (cmax - 1) * pr  # d(binom)/d(eta)
        dz = sig * ((m - 1)[:, None] - er)[..., None] + c1 * cj + bz * res
        sc = np.empty((n, ns + 7 + p))
        for i in range(ns):
            sc[:, i] = (w * dz).sum(axis=(1, 2)) * (sidx == i + 1)
        sc[:, ns] = (w * ((m - 1)[:, None] - er)[..., None]).sum(axis=(1, 2))
        sc[:, ns + 1] = (w * (sig * z * ((m - 1)[:, None] - er))[..., None]).sum(axis=(1, 2))
        sc[:, ns + 2] = (w * cj).sum(axis=(1, 2))
        sc[:, ns + 3] = (w * cj * z[..., None]).sum(axis=(1, 2))
        sc[:, ns + 4] = (w * res).sum(axis=(1, 2))
        sc[:, ns + 5] = (w * res * z[..., None]).sum(axis=(1, 2))
        sc[:, ns + 6] = (w * res * jj).sum(axis=(1, 2))
        wel = (w * el).sum(axis=(1, 2))
        sc[:, ns + 7:] = d[:, None] * xev - wel[:, None] * b_i
        return float(ll.sum()), sc

    def f(th: np.ndarray) -> tuple[float, np.ndarray]:
        ll, sc = parts(th)
        return -ll / n, -sc.sum(axis=0) / n

    th0 = np.concatenate([np.zeros(ns), [np.log(max(m.sum() - n, 1) / expo.sum()), 0.0, -1.0, 1.0,
                                         np.log(max(d.sum(), 1) / expo.sum()), 0.0, 0.0], np.zeros(p)])
    opt = minimize(f, th0, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 500})
    th = opt.x
    hess = np.empty((th.size, th.size))
    for i in range(th.size):  # central differences of the analytic score
        e = np.zeros(th.size)
        e[i] = 1e-5
        hess[i] = (f(th + e)[1] - f(th - e)[1]) / 2e-5 * n
    hess = (hess + hess.T) / 2
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError as exc:
        raise Unsupported("singular") from exc
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    lab = [f"mu_{o}" for o in others] + ["log_rate", "log_sigma", "channel_c0", "channel_c1", "log_base_hazard",
                                          "activity", "channels"] + list(names)
    est = pd.DataFrame({"term": lab, "est": th, "se": se})
    hz = est.iloc[ns + 5:]
    table = pd.DataFrame({"term": hz["term"].to_numpy(), "hr": np.exp(hz["est"]).to_numpy(),
                          "low": np.exp(hz["est"] - 1.96 * hz["se"]).to_numpy(),
                          "high": np.exp(hz["est"] + 1.96 * hz["se"]).to_numpy()})
    me = est.iloc[:ns + 5]
    meas = pd.DataFrame({"term": me["term"].to_numpy(), "estimate": me["est"].to_numpy(),
                         "low": (me["est"] - 1.96 * me["se"]).to_numpy(), "high": (me["est"] + 1.96 * me["se"]).to_numpy()})
    return LatentHazards(table, meas, n, int(d.sum()), float(-opt.fun * n), bool(opt.success))


# --------------------------------------------------------------------------- why, risk, win-back
@dataclass(frozen=True, repr=False)
class Reasons(Result):
    heading: ClassVar[str] = "lifecycle.h.reasons"
    table: pd.DataFrame  # reason, tier columns..., total, share
    source: str  # churn_reason | complaints
    n: int
    handling: pd.DataFrame | None = None  # group (unresolved / resolved), n, lost, share, low, high

    def findings(self, lang: str = "en") -> list[Finding]:
        if self.table.empty:
            return [Finding("reasons", t("lifecycle.find.reasons_none", lang), n=self.n)]
        top = self.table.iloc[0]
        return self._handling(lang) + [Finding("reasons", t(f"lifecycle.find.reasons_{self.source}", lang, reason=str(top["reason"]),
                                     share=fmt_pct(float(top["share"]), lang), n=fmt_int(self.n, lang)),
                        value=float(top["share"]), n=self.n, action=t("lifecycle.action.reasons", lang))]

    def _handling(self, lang: str) -> list[Finding]:
        h = self.handling
        if h is None or len(h) < 2 or (h["n"] == 0).any():
            return []
        b, g = h.set_index("group").loc["unresolved"], h.set_index("group").loc["resolved"]
        diff = float(b["share"] - g["share"])
        se = math.sqrt(b["share"] * (1 - b["share"]) / b["n"] + g["share"] * (1 - g["share"]) / g["n"])
        return [Finding("complaint_handling", t("lifecycle.find.handling", lang, bad=fmt_pct(b["share"], lang),
                                                good=fmt_pct(g["share"], lang), nb=fmt_int(int(b["n"]), lang),
                                                ng=fmt_int(int(g["n"]), lang)),
                        value=diff, interval=(diff - 1.96 * se, diff + 1.96 * se), null=0.0, n=int(h["n"].sum()),
                        value_range=(-1.0, 1.0), headline=True, how=t("lifecycle.how.handling", lang),
                        action=t("lifecycle.action.handling", lang))]

    def tables(self, lang: str = "en") -> list[Table]:
        if self.table.empty:
            return []
        tab = self.table.copy()
        tab.columns = [t(f"pyramid.tier.{c}", lang) if c in ("top", "second", "third", "bottom")
                       else t(f"lifecycle.col.{c}", lang) for c in tab.columns]
        return [Table(tab, {tab.columns[-1]: lambda v: fmt_pct(v, lang)}, caption=t("lifecycle.cap.reasons", lang))]

    def metrics(self) -> dict[str, Any]:
        return {"churn_reasons": {"source": self.source, "n": self.n,
                                  "rows": self.table[["reason", "total", "share"]].to_dict(orient="records")
                                  if not self.table.empty else []},
                "complaint_handling": self.handling.to_dict(orient="records") if self.handling is not None else None}


@analysis("lifecycle.h.reasons")
def churn_reasons(ds: Dataset, end: Any, horizon_days: int, before_days: int = 180) -> Reasons:
    """Why customers left, by value tier: ``churn_reason`` where present, else the complaint categories
    of lost customers in the ``before_days`` before their last purchase (or churn date)."""
    horizon_days = _need(horizon_days, ds)
    sf = survival_frame(ds, end, horizon_days)
    lost = sf[sf["event"]]
    if sf["churn_reason"].notna().any():
        src, reason = "churn_reason", sf["churn_reason"].dropna()
        who = sf.loc[reason.index]
    else:
        ds.require("complaints", "customer_id", "opened_at", "category", reason="churn reasons")
        src = "complaints"
        k = ds.sql(f"SELECT customer_id, CAST(opened_at AS DATE) AS d, category FROM complaints "
                   f"WHERE customer_id IS NOT NULL AND CAST(opened_at AS DATE) <= {_lit(_day(end))}")
        k = k[_isin(k["customer_id"], lost.index)]
        stop = lost["first"] + pd.to_timedelta(lost["duration"] - 0.5, unit="D")
        k["stop"] = stop.reindex(k["customer_id"]).to_numpy()
        k = k[(pd.to_datetime(k["d"]) <= k["stop"]) & (pd.to_datetime(k["d"]) > k["stop"] - pd.Timedelta(days=before_days))]
        k = k.drop_duplicates(["customer_id", "category"])
        reason = k.set_index("customer_id")["category"]
        who = lost.loc[reason.index]
    n = int(reason.index.nunique()) if src == "complaints" else len(reason)
    handling = None
    if ds.has("complaints", "customer_id", "opened_at", "resolution"):
        kc = ds.sql(f"""SELECT customer_id, bool_or(resolution IS NULL) AS unresolved FROM complaints
            WHERE customer_id IS NOT NULL AND CAST(opened_at AS DATE) <= {_lit(_day(end))} GROUP BY 1""")
        kc = kc[_isin(kc["customer_id"], sf.index)]
        left = sf["event"].reindex(kc["customer_id"]).to_numpy(bool)
        rows = []
        for grp, sel in (("unresolved", kc["unresolved"].to_numpy(bool)), ("resolved", ~kc["unresolved"].to_numpy(bool))):
            k, m = int(left[sel].sum()), int(sel.sum())
            lo, hi = _wilson(k, m)
            rows.append({"group": grp, "n": m, "lost": k, "share": k / m if m else math.nan, "low": lo, "high": hi})
        handling = pd.DataFrame(rows)
    if reason.empty:
        return Reasons(pd.DataFrame(), src, n, handling)
    tab = pd.crosstab(reason.to_numpy(), who["tier"].to_numpy())
    tab = tab.reindex(columns=[c for c in ("top", "second", "third", "bottom") if c in tab.columns])
    tab["total"] = tab.sum(axis=1)
    tab["share"] = tab["total"] / tab["total"].sum()
    tab = tab.sort_values("total", ascending=False)
    tab.index.name = "reason"
    return Reasons(tab.reset_index(), src, n, handling)


@dataclass(frozen=True, repr=False)
class Risk(Result):
    heading: ClassVar[str] = "lifecycle.h.risk"
    scores: pd.DataFrame  # model, auc, auc_low, auc_high, brier, n
    calibration: pd.DataFrame  # model, bin, predicted, observed
    at_risk: pd.DataFrame  # customer list (pseudonymised)
    n_at_risk: int
    n_active: int
    split: dt.date
    days: int
    currency: str = "CNY"
    trained: int = 0  # active customers at the training day
    gb_trained: int = 0  # of them, those the gradient-boosting model learned from (a seeded draw beyond GB_TRAIN_MAX)

    def notes(self, lang: str = "en") -> list[str]:
        if 0 < self.gb_trained < self.trained:
            return [t("lifecycle.note.gb_sample", lang, used=fmt_int(self.gb_trained, lang),
                      active=fmt_int(self.trained, lang))]
        return []

    def findings(self, lang: str = "en") -> list[Finding]:
        best = self.scores.sort_values("auc", ascending=False).iloc[0]
        return [Finding("risk_model", t("lifecycle.find.risk", lang, auc=fmt_num(best["auc"], lang, 2),
                                        model=t(f"lifecycle.model.{best['model']}", lang),
                                        days=self.days, n=fmt_int(self.n_at_risk, lang),
                                        active=fmt_int(self.n_active, lang)),
                        value=float(best["auc"]), interval=(float(best["auc_low"]), float(best["auc_high"])), null=0.5,
                        n=int(best["n"]), headline=True, value_range=(0.0, 1.0),
                        how=t("lifecycle.how.risk", lang, split=fmt_date(self.split, lang),
                              brier=fmt_num(best["brier"], lang, 3)),
                        action=t("lifecycle.action.risk", lang))]

    def figures(self, lang: str = "en") -> list[Any]:
        fig = go.Figure()
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, showlegend=False)
        for m, c in self.calibration.groupby("model"):
            fig.add_scatter(x=c["predicted"], y=c["observed"], mode="lines+markers", name=t(f"lifecycle.model.{m}", lang))
        fig.update_layout(title=t("lifecycle.fig.calibration", lang), xaxis_title=t("lifecycle.axis.predicted", lang),
                          yaxis_title=t("lifecycle.axis.observed", lang))
        return [Figure(fig, appendix=True)]

    def tables(self, lang: str = "en") -> list[Table]:
        sc = self.scores.copy()
        sc["model"] = [t(f"lifecycle.model.{m}", lang) for m in sc["model"]]
        sc.columns = [t(f"lifecycle.col.{c}", lang) for c in sc.columns]
        out = [Table(sc, {c: (lambda v: fmt_num(v, lang, 3)) for c in sc.columns[1:5]},
                     caption=t("lifecycle.cap.risk", lang), appendix=True)]
        if not self.at_risk.empty:
            ar = self.at_risk.copy()
            ar.columns = [t(f"lifecycle.col.{c}", lang) for c in ar.columns]
            out.append(Table(ar, {ar.columns[1]: lambda v: fmt_money(v, lang, self.currency),
                                  ar.columns[2]: lambda v: fmt_pct(v, lang)},
                             caption=t("lifecycle.cap.at_risk", lang), appendix=True, export="high_value_at_risk",
                             max_rows=20))
        return out

    def metrics(self) -> dict[str, Any]:
        return {"risk_models": self.scores.to_dict(orient="records"),
                "high_value_at_risk": {"n": self.n_at_risk, "active": self.n_active},
                "risk_training": {"active": self.trained, "gb_learned_from": self.gb_trained}}


def _next_purchase(ds: Dataset, at: dt.date) -> pd.Series:
    """Each customer's first purchase day after ``at`` (customers with one only)."""
    return ds.sql(f"""WITH p AS ({_purchases(ds, dt.date(9999, 12, 31))})
        SELECT customer_id, min(d) AS d FROM p WHERE d > {_lit(at)} GROUP BY 1""").set_index("customer_id")["d"]


def _risk_features(ds: Dataset, at: dt.date, days: int, nxt: pd.Series | None = None) -> pd.DataFrame:
    """Features at ``at`` and ``left`` (no purchase in the next ``days``; ``nxt``: :func:`_next_purchase` at ``at``)."""
    fr = customer_frame(ds, at, extras=False)
    at_ts = pd.Timestamp(at)
    x = pd.DataFrame(index=fr.index)
    x["recency"] = (at_ts - fr["last"]).dt.days.astype(float)
    x["tenure"] = (at_ts - fr["first"]).dt.days.astype(float)
    x["log_days"] = np.log(fr["n_days"].astype(float))
    x["log_rev12"] = np.log1p(fr["revenue_12m"].clip(lower=0).astype(float))
    x["active_months"] = fr["active_months"].astype(float)
    x["channels"] = fr["channels"].astype(float).fillna(1.0)
    x["revenue_12m"] = fr["revenue_12m"]
    nxt = _next_purchase(ds, at) if nxt is None else nxt
    back = nxt[pd.to_datetime(nxt) <= pd.Timestamp(at + dt.timedelta(days=days))]  # bought in (at, at + days]
    x["left"] = (~_isin(x.index, back.index)).astype(int)
    return x


def _auc_ci(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y, p))
    n1, n0 = int(y.sum()), int((1 - y).sum())
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = math.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0))
    return auc, max(0.0, auc - 1.96 * se), min(1.0, auc + 1.96 * se)


@analysis("lifecycle.h.risk")
def churn_risk(ds: Dataset, end: Any, horizon_days: int, days: int = 180, seed: int = 42,
               top_share: float = 0.2, cut: float = 0.3) -> Risk:
    """Risk of no purchase in the next ``days``: Cox (time to the next purchase; risk = S(days | x)) and
    gradient boosting, both trained at ``end − 2·days`` and scored at ``end − days`` (time split:
    AUC with Hanley–McNeil interval, Brier score, calibration by deciles); then refitted at
    ``end − days`` and applied at ``end``. High-value at risk: top ``top_share`` by 12-month revenue
    with risk ≥ ``cut`` among active (not lost) customers; pseudonymised ids."""
    horizon_days = _need(horizon_days, ds)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import brier_score_loss
    from threadpoolctl import threadpool_limits

    end = _day(end)
    a, b = end - dt.timedelta(days=2 * days), end - dt.timedelta(days=days)
    first, _ = ds.date_range("transactions")
    if first is None or _day(first) > a - dt.timedelta(days=90):
        raise Unsupported("short_split", need=a - dt.timedelta(days=90))
    feats = ["recency", "tenure", "log_days", "log_rev12", "active_months", "channels"]

    def active(x: pd.DataFrame) -> pd.DataFrame:
        return x[x["recency"] <= horizon_days]

    nexts: dict[dt.date, pd.Series] = {}  # one query per day serves both the label and the Cox time

    def next_of(at: dt.date) -> pd.Series:
        if at not in nexts:
            nexts[at] = _next_purchase(ds, at)
        return nexts[at]

    def next_purchase(at: dt.date, x: pd.DataFrame) -> pd.DataFrame:
        dd = (pd.to_datetime(next_of(at)).reindex(x.index) - pd.Timestamp(at)).dt.days.astype(float)
        return pd.DataFrame({"time": dd.fillna(days).clip(upper=days), "event": (dd <= days).fillna(False)})

    cache: dict[dt.date, pd.DataFrame] = {}

    def features(at: dt.date) -> pd.DataFrame:
        if at not in cache:
            cache[at] = active(_risk_features(ds, at, days, next_of(at)))
        return cache[at]

    def fit(at: dt.date) -> tuple[Any, Any, pd.Series, pd.Series]:
        x = features(at)
        if len(x) < MIN_CASES or x["left"].nunique() < 2:
            raise Unsupported("few_active", day=at)
        mu, sd = x[feats].mean(), x[feats].std().fillna(0.0)
        used = [f for f in feats if sd[f] > 0]  # a constant feature (e.g. one channel for all) says nothing
        mu, sd = mu[used], sd[used]
        z = (x[used] - mu) / sd
        nxt = next_purchase(at, x)
        ph = _fit(lambda: ph_fit(nxt["time"].to_numpy(), z.to_numpy(), status=nxt["event"].to_numpy(int), ties="breslow"))
        # boosting learns from at most GB_TRAIN_MAX customers drawn at random (seeded): beyond that its fit
        # grows with the data while the held-out AUC does not move; Cox and the scoring use everyone
        rows = np.arange(len(x))
        if len(x) > GB_TRAIN_MAX:
            rows = np.sort(np.random.default_rng([seed, 2193]).choice(len(x), GB_TRAIN_MAX, replace=False))
        with threadpool_limits(1):  # shared machines: no thread oversubscription
            # arrays, not frames: sklearn's attribute probes on a Series hash its 1M-string index each time
            gb = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed).fit(
                x[feats].to_numpy(float)[rows], x["left"].to_numpy()[rows])
        return ph, gb, mu, sd

    def predict(models: Any, x: pd.DataFrame, which: tuple[str, ...] = ("cox", "gb")) -> dict[str, np.ndarray]:
        ph, gb, mu, sd = models
        out = {}
        if "cox" in which:
            z = ((x[mu.index] - mu) / sd).to_numpy()
            bch = ph.baseline_cumulative_hazard[0]
            h0 = float(np.interp(days, bch[0], bch[1]))
            out["cox"] = np.exp(-h0 * np.exp(z @ ph.params))  # 1 - P(next purchase within days)
        if "gb" in which:
            with threadpool_limits(1):
                out["gb"] = gb.predict_proba(x[feats].to_numpy(float))[:, 1]
        return out

    models = fit(a)
    test = features(b)
    if len(test) < MIN_CASES or test["left"].nunique() < 2:
        raise Unsupported("few_active", day=b)
    y = test["left"].to_numpy()
    rows, cal = [], []
    for name, p in predict(models, test).items():
        auc, lo, hi = _auc_ci(y, p)
        rows.append({"model": name, "auc": auc, "auc_low": lo, "auc_high": hi, "brier": float(brier_score_loss(y, p)),
                     "n": len(y)})
        bins = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False)
        cg = pd.DataFrame({"p": p, "y": y, "bin": bins}).groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"))
        cal.append(cg.reset_index().assign(model=name))
    scores = pd.DataFrame(rows)
    best = scores.sort_values("auc", ascending=False)["model"].iloc[0]
    now_models = fit(b)
    now = active(_risk_features(ds, end, days))
    p_now = predict(now_models, now, (best,))[best]
    now = now.assign(risk=p_now)
    hv = now["revenue_12m"] >= now["revenue_12m"].quantile(1 - top_share)
    ar = now[hv & (now["risk"] >= cut)].sort_values("revenue_12m", ascending=False)
    from workbench.privacy import pseudonymise

    lst = pd.DataFrame({"pseudonym": list(pseudonymise(pd.Series(ar.index, dtype=object))),
                        "revenue_12m": ar["revenue_12m"].to_numpy(), "risk": ar["risk"].to_numpy(),
                        "recency": ar["recency"].to_numpy()})
    trained = len(features(a))
    return Risk(scores, pd.concat(cal, ignore_index=True), lst, len(ar), len(now), b, int(days), ds.currency,
                trained, min(trained, GB_TRAIN_MAX))


@dataclass(frozen=True, repr=False)
class WinBack(Result):
    heading: ClassVar[str] = "lifecycle.h.winback"
    by_tier: pd.DataFrame  # tier, lost, past_value, expected_value
    reactivation: tuple[int, int]  # reactivated, lost then
    conversion: tuple[int, int]  # first-time buyers who bought again, first-time buyers then
    ratio: tuple[float, float, float]
    start: dt.date
    days: int
    currency: str = "CNY"

    def findings(self, lang: str = "en") -> list[Finding]:
        k1, n1 = self.reactivation
        k2, n2 = self.conversion
        r, lo, hi = self.ratio
        total = float(self.by_tier["expected_value"].sum())
        return [Finding("winback_value", t("lifecycle.find.winback", lang, n=fmt_int(int(self.by_tier["lost"].sum()), lang),
                                           rate=fmt_pct(k1 / n1 if n1 else math.nan, lang),
                                           value=fmt_money(total, lang, self.currency), days=self.days),
                        value=total, n=n1, action=t("lifecycle.action.winback", lang)),
                Finding("winback_ratio", t("lifecycle.find.winback_ratio", lang,
                                           react=fmt_pct(k1 / n1 if n1 else math.nan, lang),
                                           conv=fmt_pct(k2 / n2 if n2 else math.nan, lang), ratio=fmt_num(r, lang, 2)),
                        value=r, interval=(lo, hi), null=1.0, n=n1 + n2,
                        how=t("lifecycle.how.winback", lang, k1=k1, n1=n1, k2=k2, n2=n2))]

    def tables(self, lang: str = "en") -> list[Table]:
        tab = self.by_tier.copy()
        tab["tier"] = [t(f"pyramid.tier.{x}", lang) for x in tab["tier"]]
        tab.columns = [t(f"lifecycle.col.{c}", lang) for c in tab.columns]
        formats = {c: (lambda v: fmt_money(v, lang, self.currency)) for c in tab.columns[2:]}
        formats[tab.columns[1]] = lambda v: fmt_int(v, lang)  # "1,843 lost", as in the finding above
        return [Table(tab, formats, caption=t("lifecycle.cap.winback", lang))]

    def metrics(self) -> dict[str, Any]:
        return {"winback": {"by_tier": self.by_tier.to_dict(orient="records"),
                            "reactivated": self.reactivation[0], "lost_then": self.reactivation[1],
                            "converted": self.conversion[0], "first_time_then": self.conversion[1],
                            "ratio": list(self.ratio)}}


@analysis("lifecycle.h.winback")
def winback(ds: Dataset, end: Any, horizon_days: int, days: int = 180) -> WinBack:
    """Observed reactivation of customers lost at ``end − days`` (bought again by ``end``) against the
    repeat conversion of first-time buyers then; expected win-back value of today's lost customers by
    tier = their past 12-month revenue before leaving × the reactivation rate."""
    horizon_days = _need(horizon_days, ds)
    end = _day(end)
    t0 = end - dt.timedelta(days=days)
    old = customer_frame(ds, t0)
    rec0 = (pd.Timestamp(t0) - old["last"]).dt.days
    lost0 = old[rec0 > horizon_days]
    new0 = old[(old["n_days"] == 1) & (rec0 <= horizon_days)]
    buy = ds.sql(f"""SELECT DISTINCT customer_id FROM transactions WHERE amount > 0 AND CAST(date AS DATE) > {_lit(t0)}
                     AND CAST(date AS DATE) <= {_lit(end)}""")["customer_id"]
    k1, n1 = int(_isin(lost0.index, buy).sum()), len(lost0)
    k2, n2 = int(_isin(new0.index, buy).sum()), len(new0)
    if n1 < MIN_CASES or n2 < MIN_CASES:
        raise Unsupported("few_lost", min=MIN_CASES, day=t0)
    p1, p2 = (k1 + 0.5) / (n1 + 0.5), (k2 + 0.5) / (n2 + 0.5)
    se = math.sqrt(max(1 / (k1 + 0.5) - 1 / (n1 + 0.5) + 1 / (k2 + 0.5) - 1 / (n2 + 0.5), 0))
    ratio = (p1 / p2, math.exp(math.log(p1 / p2) - 1.96 * se), math.exp(math.log(p1 / p2) + 1.96 * se))
    now = customer_frame(ds, end)
    lostn = now[(pd.Timestamp(end) - now["last"]).dt.days > horizon_days]
    past = ds.sql(f"""WITH p AS ({_purchases(ds, end)}), l AS (SELECT customer_id, max(d) AS last FROM p GROUP BY 1)
        SELECT p.customer_id, sum(p.amount) AS v FROM p JOIN l USING (customer_id)
        WHERE p.d > l.last - INTERVAL 365 DAY GROUP BY 1""").set_index("customer_id")["v"]
    v = past.reindex(lostn.index).fillna(0.0)
    tier = _tiers(v)
    rate = k1 / n1
    bt = pd.DataFrame({"tier": tier.astype(str), "v": v}).groupby("tier", sort=False)["v"].agg(["size", "sum"])
    bt = bt.reindex([c for c in ("top", "second", "third", "bottom") if c in bt.index])
    by_tier = pd.DataFrame({"tier": bt.index, "lost": bt["size"].to_numpy(int), "past_value": bt["sum"].to_numpy(),
                            "expected_value": bt["sum"].to_numpy() * rate})
    return WinBack(by_tier, (k1, n1), (k2, n2), ratio, t0, int(days), ds.currency)
