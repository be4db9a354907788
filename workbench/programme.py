"""Loyalty programme evaluation (DOMAIN.md §6): participation, levels, points, the member
effect net of self-selection, ROI and points-system risk.

Every analysis returns a :class:`workbench.results.Result`. Aggregation happens in the engine
(DuckDB SQL over the canonical ``members``, ``points`` and ``transactions`` tables); pandas sees
per-month, per-vintage or per-customer frames only.

Conventions
-----------
* **Membership**: a customer's first ``joined_at`` to ``left_at`` (repeated on every level-spell row).
* **Points ledger**: positive rows earn; negative rows are redemptions or expiries, told apart by
  ``kind`` (``redeem``/``redemption``/``兑换``… vs ``expire``/``expiry``/``过期``…). Used points are
  taken from the oldest earned points first (FIFO), so every used point has an earning month
  (its *vintage*).
* **Breakage**: the share of earned points that expire unredeemed, measured on vintages old enough
  that all their points are resolved (``expiry_months`` from workbench.toml, else inferred from the
  ledger's expiry rows). Interval: Bayesian bootstrap over members.
* **Member effect**: the naive members-vs-others gap is selection as much as effect; the adjusted
  estimate compares each member's monthly purchases after joining with their own before, against
  calendar-month effects from all customers (Poisson with customer and month fixed effects), on the
  months each customer is known to be active. Associational, like every observational estimate.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import viz
from workbench.complaints import months_back
from workbench.engine import Dataset, MissingDataError
from workbench.i18n import fmt_int, fmt_money, fmt_num, fmt_pct, has, t
from workbench.results import KPI, Figure, Finding, Result, Table, analysis

__all__ = [
    "Breakage", "MemberEffect", "Participation", "PointsFlow", "ProgrammeSettings", "RiskFlags",
    "breakage", "member_effect", "participation", "points_flow", "risk_flags", "settings",
]

REDEEM_PATTERNS = ("redeem", "redemption", "burn", "spend", "use", "兑换", "使用", "消费")
EXPIRE_PATTERNS = ("expir", "lapse", "过期", "失效", "清零")


def _tr(key: str, lang: str, **values: Any) -> str:
    return t(f"programme.{key}", lang, **values)


class NotEstimable(MissingDataError):
    """The programme data are there but cannot support this analysis; ``reason(lang)`` says why."""

    def __init__(self, key: str, table: str = "points", **values: Any):
        self.key = key
        self.values = values
        super().__init__(table, (), t(f"programme.why.{key}", "en", **values))

    def reason(self, lang: str = "en") -> str:
        return _tr("skipped", lang, why=_tr(f"why.{self.key}", lang, **self.values))


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class ProgrammeSettings:
    """Programme parameters from ``[programme]`` in workbench.toml (notebook parameters override).

    Parameters
    ----------
    point_value : float or None
        Money value of one point (what a redeemed point costs the company); ``None`` = liability in points only.
    expiry_months : int or None
        Points earned in month k expire at the start of month k + ``expiry_months``; ``None`` = inferred
        from the ledger's expiry rows (or no expiry when there are none).
    costs : dict
        Annual programme cost lines (``[programme.costs]``: name → money per year).
    level_order : tuple of str
        Levels from lowest to highest; empty = ordered by members' median spend.
    """

    point_value: float | None = None
    expiry_months: int | None = None
    costs: dict[str, float] = field(default_factory=dict)
    level_order: tuple[str, ...] = ()
    level_thresholds: dict[str, float] = field(default_factory=dict)


def settings(ds: Dataset, point_value: float | None = None, expiry_months: int | None = None,
             costs: dict[str, float] | None = None) -> ProgrammeSettings:
    """The dataset's ``[programme]`` settings with any explicit (non-empty) argument taking precedence."""
    raw = dict(getattr(ds, "programme", None) or {})
    pv = point_value if point_value not in (None, "", 0) else raw.get("point_value")
    em = expiry_months if expiry_months not in (None, "", 0) else raw.get("expiry_months")
    return ProgrammeSettings(
        point_value=float(pv) if pv not in (None, "") else None,
        expiry_months=int(em) if em not in (None, "") else None,
        costs={str(k): float(v) for k, v in (costs if costs else raw.get("costs", {})).items()},
        level_order=tuple(raw.get("level_order", ())),
        level_thresholds={str(k): float(v) for k, v in dict(raw.get("level_thresholds", {})).items()},
    )


def _kind_sql(ds: Dataset) -> str:
    """SQL classifying ledger rows into earn / redeem / expire / use (negative with unknown kind)."""
    if not ds.has("points", "kind"):
        return "CASE WHEN points > 0 THEN 'earn' ELSE 'use' END"
    k = "lower(coalesce(kind, ''))"
    red = " OR ".join(f"contains({k}, '{p}')" for p in REDEEM_PATTERNS)
    exp = " OR ".join(f"contains({k}, '{p}')" for p in EXPIRE_PATTERNS)
    return (f"CASE WHEN points > 0 THEN 'earn' WHEN {exp} THEN 'expire' WHEN {red} THEN 'redeem' "
            "ELSE 'use' END")


def _earn_kind_sql(ds: Dataset) -> str:
    """SQL: TRUE for ledger rows that are plain earnings from purchases (not bonuses)."""
    if not ds.has("points", "kind"):
        return "TRUE"
    return "lower(coalesce(kind, '')) NOT LIKE '%bonus%' AND lower(coalesce(kind, '')) NOT LIKE '%奖励%'"


def points_ledger(ds: Dataset, end: dt.date) -> str:
    """The shared classified points ledger to ``end`` (a temporary table's name), built once per dataset and
    ``end`` for the points flow, FIFO breakage, ROI and the risk rules.

    One row per ledger row with non-NULL points: ``customer_id``, ``d`` (day), ``pts``, ``k``
    (``earn``/``redeem``/``expire``/``use``), ``plain_earn`` (not a bonus), ``mi`` (month index
    year·12 + month − 1), and, in each member's ledger order (date, earning before using on a day),
    ``rn`` (1, 2, …), ``bal`` (balance after the row), ``ce`` / ``cu`` (points earned / used so far).
    """
    ds.require("points", "customer_id", "date", "points")
    return _shared_table(ds, "ledger", end, f"""
        SELECT customer_id, CAST(date AS DATE) AS d, CAST(points AS DOUBLE) AS pts, {_kind_sql(ds)} AS k,
               {_earn_kind_sql(ds)} AS plain_earn,
               CAST(extract(year FROM CAST(date AS DATE)) * 12 + extract(month FROM CAST(date AS DATE)) - 1 AS INTEGER) AS mi,
               row_number() OVER w AS rn, sum(CAST(points AS DOUBLE)) OVER w AS bal,
               sum(greatest(CAST(points AS DOUBLE), 0)) OVER w AS ce,
               sum(greatest(-CAST(points AS DOUBLE), 0)) OVER w AS cu
        FROM points WHERE points IS NOT NULL AND CAST(date AS DATE) <= DATE '{end.isoformat()}'
        WINDOW w AS (PARTITION BY customer_id ORDER BY date, points DESC ROWS UNBOUNDED PRECEDING)""")


_USE_KINDS = ("earn", "redeem", "expire", "use", "outstanding", "unbacked")


def _fifo(ds: Dataset, end: dt.date) -> pd.DataFrame:
    """Points per customer, vintage (earning month), use month and kind, FIFO-allocated.

    Every earn and use row is an interval on its customer's cumulative-points axis (``ce`` / ``cu`` of
    :func:`points_ledger`); cutting the axis at all interval ends gives segments that each lie in at most
    one earn and one use row: the first earn (use) row whose end is at or beyond the segment's end. One
    sort of the ledger, then linear array work. Kinds: the use kind (``redeem``/``expire``/``use``),
    ``outstanding`` (earned, not yet used; no use month) and ``unbacked`` (used beyond everything earned
    before; no vintage).

    Returns
    -------
    DataFrame
        ``code`` (customers numbered in customer-id order), ``vintage`` / ``use_month`` (month index,
        −1 = none), ``kind`` (index into ``_USE_KINDS``), ``pts``.
    """
    kc = "CASE k WHEN 'redeem' THEN 1 WHEN 'expire' THEN 2 WHEN 'use' THEN 3 ELSE 0 END"
    x = ds.sql(f"SELECT rn, mi, pts, CAST({kc} AS TINYINT) AS kc, ce, cu FROM {points_ledger(ds, end)} "
               "ORDER BY customer_id, rn")
    code = np.cumsum(x["rn"].to_numpy() == 1) - 1
    pts, mi, kc_, ce, cu = (x[c].to_numpy() for c in ("pts", "mi", "kc", "ce", "cu"))
    earn, use = pts > 0, pts < 0
    n_e = int(earn.sum())
    ev_code = np.concatenate([code[earn], code[use]])
    ev_pos = np.concatenate([ce[earn], cu[use]])
    ev_mi = np.concatenate([mi[earn], mi[use]])
    ev_kind = np.concatenate([kc_[earn], kc_[use]])
    order = np.lexsort((ev_pos, ev_code))
    c, pos, is_e = ev_code[order], ev_pos[order], order < n_e
    n = len(order)
    idx = np.arange(n)
    # the first earn (use) event at or after each event, in (customer, position) order
    next_e = np.minimum.accumulate(np.where(is_e, idx, n)[::-1])[::-1]
    next_u = np.minimum.accumulate(np.where(~is_e, idx, n)[::-1])[::-1]
    first = np.ones(n, bool)
    first[1:] = (c[1:] != c[:-1]) | (pos[1:] != pos[:-1])
    rep = np.flatnonzero(first)  # one segment per distinct (customer, cut), ending at that cut
    prev = np.zeros(len(rep))
    inner = rep > 0
    inner[inner] = c[rep[inner] - 1] == c[rep[inner]]
    prev[inner] = pos[rep[inner] - 1]
    length = pos[rep] - prev
    ke, ku = next_e[rep], next_u[rep]
    earned = ke < n
    earned[earned] = c[ke[earned]] == c[rep[earned]]
    used = ku < n
    used[used] = c[ku[used]] == c[rep[used]]
    e_src = np.where(earned, order[np.minimum(ke, n - 1)], 0)
    u_src = np.where(used, order[np.minimum(ku, n - 1)], 0)
    kind = np.where(~used, 4, np.where(earned, ev_kind[u_src], 5))
    keep = (earned | used) & (length != 0)
    return pd.DataFrame({"code": c[rep][keep], "vintage": np.where(earned, ev_mi[e_src], -1)[keep],
                         "use_month": np.where(used, ev_mi[u_src], -1)[keep], "kind": kind[keep],
                         "pts": length[keep]})


def _month_ts(mi: pd.Series) -> pd.Series:
    """Month indices (year·12 + month − 1; −1 = none) as month-start timestamps (NaT for none)."""
    v = mi.to_numpy()
    ok = v >= 0
    ts = pd.to_datetime(pd.DataFrame({"year": np.where(ok, v // 12, 2000), "month": np.where(ok, v % 12 + 1, 1),
                                      "day": 1}))
    return pd.Series(ts.to_numpy(), index=mi.index).where(ok)


def _vintages(fifo: pd.DataFrame) -> pd.DataFrame:
    """Points and members by vintage, use month and kind from :func:`_fifo`."""
    out = (fifo.groupby(["vintage", "use_month", "kind"], sort=False)
           .agg(points=("pts", "sum"), members=("code", "nunique")).reset_index())
    out["kind"] = np.asarray(_USE_KINDS)[out["kind"].to_numpy()]
    for c in ("vintage", "use_month"):
        out[c] = _month_ts(out[c])
    return out.sort_values(["vintage", "use_month", "kind"], na_position="last").reset_index(drop=True)


@contextmanager
def _temp_table(ds: Dataset, query: str) -> Iterator[str]:
    """Materialise ``query`` once as a temporary table (dropped on exit) for several aggregates over it."""
    name = f"wb_programme_{uuid.uuid4().hex[:12]}"
    ds._con.execute(f"CREATE TEMP TABLE {name} AS {query}")
    try:
        yield name
    finally:
        ds._con.execute(f"DROP TABLE IF EXISTS {name}")


def _shared_table(ds: Dataset, kind: str, end: dt.date, query: str) -> str:
    """Name of a temporary table holding ``query``, built once per dataset and ``end`` and reused by every
    analysis that reads it (:meth:`Dataset.shared_table`); a new ``end`` replaces the table."""
    return ds.shared_table(f"programme_{kind}", query, version=end)


def customer_months(ds: Dataset, end: dt.date) -> str:
    """The shared per-customer-month aggregate of the transactions up to ``end`` (a temporary table's name).

    One pass over the transactions serves participation, the scorecard, level order and reach, the
    member effect, ROI and the risk rules. Columns: ``customer_id``, ``month`` (month start, DATE), ``n``
    (purchases), ``spend`` (sum of ``amount``; NULL without the column), ``spend_pos`` (sum of positive
    amounts), ``post_n`` / ``post_margin`` (purchases and margin strictly after the customer's first
    ``joined_at``; 0 / NULL for non-members), ``first_day`` / ``last_day`` (the month's first and last
    purchase day). Rows dated after ``end`` are left out, so a month cut by ``end`` holds the days up to it.
    """
    ds.require("transactions", "customer_id", "date")
    amount = "CAST(t.amount AS DOUBLE)" if ds.has("transactions", "amount") else "NULL::DOUBLE"
    margin = "CAST(t.margin AS DOUBLE)" if ds.has("transactions", "margin") else "NULL::DOUBLE"
    day = "CAST(t.date AS DATE)"
    if ds.has("members", "customer_id", "joined_at"):
        join = ("LEFT JOIN (SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined FROM members GROUP BY 1) j "
                "ON j.customer_id = t.customer_id")
        post = f"j.joined IS NOT NULL AND {day} > j.joined"
    else:
        join, post = "", "FALSE"
    return _shared_table(ds, "cm", end, f"""
        SELECT t.customer_id, CAST(date_trunc('month', {day}) AS DATE) AS month, count(*) AS n,
               sum({amount}) AS spend, sum(greatest({amount}, 0)) AS spend_pos,
               count(*) FILTER (WHERE {post}) AS post_n, sum({margin}) FILTER (WHERE {post}) AS post_margin,
               min({day}) AS first_day, max({day}) AS last_day
        FROM transactions t {join} WHERE {day} <= DATE '{end.isoformat()}' GROUP BY 1, 2""")


def fifo_vintages(ds: Dataset, end: dt.date) -> pd.DataFrame:
    """Points by earning month (vintage), use month and use kind, FIFO-allocated.

    Returns
    -------
    DataFrame
        ``vintage`` (month start), ``use_month`` (month start; NaT for points still outstanding),
        ``kind`` (``redeem``/``expire``/``use``/``outstanding``), ``points``, ``members``.
        Rows with ``kind == "unbacked"`` are uses beyond every point the member earned up to ``end``; a use
        above the balance at its time takes points earned after it (:func:`risk_flags` lists such accounts).
    """
    ds.require("points", "customer_id", "date", "points")
    return _vintages(_fifo(ds, end))


def infer_expiry_months(vintages: pd.DataFrame) -> int | None:
    """Months from earning to expiry, read from the ledger: the most common (expiry month − vintage)
    weighted by points; ``None`` when nothing ever expired."""
    ex = vintages[vintages["kind"] == "expire"].dropna(subset=["vintage", "use_month"])
    if ex.empty:
        return None
    lag = ((ex["use_month"].dt.year - ex["vintage"].dt.year) * 12 + ex["use_month"].dt.month
           - ex["vintage"].dt.month)
    return int(ex.groupby(lag)["points"].sum().idxmax())


# ------------------------------------------------------------------ points flow
@dataclass(frozen=True, repr=False)
class PointsFlow(Result):
    """Points earned, redeemed and expired by month and the outstanding balance (the liability)."""

    heading: ClassVar[str] = "programme.h.points"
    monthly: pd.DataFrame  # month, earned, redeemed, expired, other_use, outstanding
    point_value: float | None
    currency: str
    end: dt.date
    n_members: int

    @property
    def outstanding(self) -> float:
        return float(self.monthly["outstanding"].iloc[-1]) if len(self.monthly) else 0.0

    @property
    def liability(self) -> float | None:
        return None if self.point_value is None else self.outstanding * self.point_value

    def figures(self, lang: str = "en") -> list[Any]:
        m = self.monthly
        fig = go.Figure()
        for col, sign, colour in (("earned", 1, viz.PALETTE[0]), ("redeemed", -1, viz.PALETTE[1]),
                                  ("expired", -1, viz.PALETTE[3])):
            fig.add_trace(go.Bar(x=m["month"], y=sign * m[col], name=_tr(f"flow.{col}", lang), marker_color=colour))
        fig.add_trace(go.Scatter(x=m["month"], y=m["outstanding"], name=_tr("flow.outstanding", lang),
                                 mode="lines+markers", line=dict(color="#222"), yaxis="y2"))
        fig.update_layout(barmode="relative", title=_tr("flow.title", lang), yaxis_title=_tr("flow.points", lang),
                          yaxis2=dict(overlaying="y", side="right", title=_tr("flow.outstanding", lang),
                                      showgrid=False, rangemode="tozero"), margin=dict(r=70))
        return [fig]

    def findings(self, lang: str = "en") -> list[Finding]:
        last = self.monthly.iloc[-1] if len(self.monthly) else None
        if last is None:
            return []
        value = (_tr("find.liability_money", lang, money=fmt_money(self.liability, lang, self.currency))
                 if self.liability is not None else _tr("find.liability_points_only", lang))
        text = _tr("find.points", lang, outstanding=fmt_int(self.outstanding, lang), date=self.end.isoformat(),
                   members=fmt_int(self.n_members, lang), value=value)
        return [Finding("points_outstanding", text, value=self.outstanding, headline=True, n=self.n_members,
                        how=_tr("how.points", lang))]

    def tables(self, lang: str = "en") -> list[Table]:
        m = self.monthly.copy()
        m["month"] = m["month"].dt.strftime("%Y-%m")
        cols = ["month", "earned", "redeemed", "expired", "other_use", "outstanding"]
        shown = m[cols].rename(columns={c: _tr(f"flow.{c}", lang) for c in cols})
        fmt = {_tr(f"flow.{c}", lang): (lambda v, lang=lang: fmt_int(v, lang)) for c in cols[1:]}
        return [Table(shown, fmt, appendix=True, max_rows=36)]

    def kpis(self, lang: str = "en") -> list[KPI]:
        out = [KPI("points_outstanding", _tr("kpi.points_outstanding", lang), self.outstanding, "number",
                   n=self.n_members, better="",
                   previous=float(self.monthly["outstanding"].iloc[-2]) if len(self.monthly) > 1 else None)]
        if self.liability is not None:
            out.append(KPI("points_liability", _tr("kpi.points_liability", lang), self.liability, "money",
                           n=self.n_members, better="lower"))
        return out

    def metrics(self) -> dict[str, Any]:
        m = self.monthly.assign(month=self.monthly["month"].dt.strftime("%Y-%m"))
        return {"points_monthly": m, "points_outstanding": self.outstanding, "points_liability": self.liability,
                "point_value": self.point_value}


@analysis("programme.h.points")
def points_flow(ds: Dataset, end: dt.date, months: int = 24, point_value: float | None = None) -> PointsFlow:
    """Monthly points earned / redeemed / expired (FIFO-classified) and the outstanding balance to ``end``.

    Parameters
    ----------
    ds : Dataset
        Needs ``points`` (customer_id, date, points; ``kind`` tells redemptions from expiries).
    end : date
        Last day included.
    months : int
        Months shown (the balance counts all earlier rows).
    point_value : float or None
        Money per point for the liability.
    """
    ds.require("points", "customer_id", "date", "points")
    q = f"""
    WITH p AS (SELECT date_trunc('month', d) AS month, pts, k FROM {points_ledger(ds, end)})
    SELECT month,
           sum(CASE WHEN k = 'earn' THEN pts ELSE 0 END) AS earned,
           sum(CASE WHEN k = 'redeem' THEN -pts ELSE 0 END) AS redeemed,
           sum(CASE WHEN k = 'expire' THEN -pts ELSE 0 END) AS expired,
           sum(CASE WHEN k = 'use' THEN -pts ELSE 0 END) AS other_use,
           sum(pts) AS net
    FROM p GROUP BY 1 ORDER BY 1"""
    m = ds.sql(q)
    if m.empty:
        raise NotEstimable("no_points_rows")
    m["month"] = pd.to_datetime(m["month"])
    m["outstanding"] = m["net"].cumsum()
    start = pd.Timestamp(months_back(end, months - 1))
    full = pd.DataFrame({"month": pd.date_range(start, pd.Timestamp(months_back(end, 0)), freq="MS")})
    shown = full.merge(m, on="month", how="left")
    before = m.loc[m["month"] < start, "net"].sum()
    for c in ("earned", "redeemed", "expired", "other_use", "net"):
        shown[c] = shown[c].fillna(0.0)
    shown["outstanding"] = before + shown["net"].cumsum()
    n = int(ds.sql(f"SELECT count(DISTINCT customer_id) FROM points WHERE CAST(date AS DATE) <= "
                   f"DATE '{end.isoformat()}'").iloc[0, 0])
    return PointsFlow(shown.drop(columns="net"), point_value, ds.currency, end, n)


# ------------------------------------------------------------------ breakage
@dataclass(frozen=True, repr=False)
class Breakage(Result):
    """Share of earned points never redeemed, vintage curves and the expected cost of outstanding points."""

    heading: ClassVar[str] = "programme.h.breakage"
    rate: float
    ci: tuple[float, float]
    n_members: int
    matured_points: float
    expiry_months: int
    expiry_source: str  # "config" | "inferred"
    curves: pd.DataFrame  # vintage, age, redeemed_share (cumulative), earned
    outstanding: float
    expiring: pd.DataFrame  # horizon_months, points, members
    point_value: float | None
    currency: str
    n_boot: int

    def expected_cost(self) -> tuple[float, float, float] | None:
        """IFRS 15 view: outstanding points × (1 − breakage) × point value, with the breakage interval."""
        if self.point_value is None:
            return None
        f = self.outstanding * self.point_value
        return f * (1 - self.rate), f * (1 - self.ci[1]), f * (1 - self.ci[0])

    def findings(self, lang: str = "en") -> list[Finding]:
        text = _tr("find.breakage", lang, rate=fmt_pct(self.rate, lang), lo=fmt_pct(self.ci[0], lang),
                   hi=fmt_pct(self.ci[1], lang), months=self.expiry_months, n=fmt_int(self.n_members, lang))
        out = [Finding("breakage", text, value=self.rate, headline=True, interval=self.ci, n=self.n_members,
                       value_range=(0.0, 1.0),
                       how=_tr("how.breakage", lang, n_boot=fmt_int(self.n_boot, lang),
                               source=_tr(f"expiry_source.{self.expiry_source}", lang)))]
        cost = self.expected_cost()
        if cost is not None:
            out.append(Finding("expected_cost", _tr("find.expected_cost", lang,
                                                    cost=fmt_money(cost[0], lang, self.currency),
                                                    lo=fmt_money(cost[1], lang, self.currency),
                                                    hi=fmt_money(cost[2], lang, self.currency),
                                                    points=fmt_int(self.outstanding, lang)),
                               value=cost[0], interval=(cost[1], cost[2]), how=_tr("how.expected_cost", lang)))
        soon = self.expiring.set_index("horizon_months")
        if 3 in soon.index and soon.loc[3, "points"] > 0:
            out.append(Finding("expiring", _tr("find.expiring", lang, points=fmt_int(soon.loc[3, "points"], lang),
                                               members=fmt_int(soon.loc[3, "members"], lang)),
                               value=float(soon.loc[3, "points"]), action=_tr("action.expiring", lang)))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        c = self.curves
        fig = go.Figure()
        vintages = sorted(c["vintage"].unique())
        for i, v in enumerate(vintages):
            sub = c[c["vintage"] == v]
            fig.add_trace(go.Scatter(x=sub["age"], y=sub["redeemed_share"], mode="lines",
                                     name=pd.Timestamp(v).strftime("%Y-%m"), showlegend=False,
                                     line=dict(width=1, color=f"rgba(31,95,168,{0.25 + 0.6 * i / max(len(vintages), 1)})"),
                                     hovertemplate="%{y:.0%}<extra>" + pd.Timestamp(v).strftime("%Y-%m") + "</extra>"))
        fig.add_vline(x=self.expiry_months, line_dash="dot", line_color="#c8413b",
                      annotation_text=_tr("curves.expiry", lang), annotation_position="top left")
        fig.update_layout(title=_tr("curves.title", lang), xaxis_title=_tr("curves.age", lang),
                          yaxis_title=_tr("curves.redeemed", lang), yaxis_tickformat=".0%")
        return [Figure(fig, appendix=False)]

    def tables(self, lang: str = "en") -> list[Table]:
        e = self.expiring.rename(columns={"horizon_months": _tr("col.horizon", lang), "points": _tr("col.points", lang),
                                          "members": _tr("col.members", lang)})
        return [Table(e, {_tr("col.points", lang): lambda v: fmt_int(v, lang),
                          _tr("col.members", lang): lambda v: fmt_int(v, lang)},
                      caption=_tr("caption.expiring", lang))]

    def kpis(self, lang: str = "en") -> list[KPI]:
        return [KPI("points_breakage", _tr("kpi.breakage", lang), self.rate, "share", n=self.n_members,
                    interval=self.ci, better="")]

    def metrics(self) -> dict[str, Any]:
        cost = self.expected_cost()
        return {"breakage": {"rate": self.rate, "ci_low": self.ci[0], "ci_high": self.ci[1], "n_members": self.n_members,
                             "matured_points": self.matured_points, "expiry_months": self.expiry_months,
                             "expiry_source": self.expiry_source, "n_boot": self.n_boot},
                "expected_cost_outstanding": None if cost is None else {"value": cost[0], "ci_low": cost[1],
                                                                       "ci_high": cost[2]},
                "points_expiring": self.expiring}


def bayesian_bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int = 500, seed: int = 0,
                             chunk: int = 50) -> tuple[float, float]:
    """95% interval of ``sum(num)/sum(den)`` by the Bayesian bootstrap over units (Dirichlet weights)."""
    rng = np.random.default_rng(seed)
    num, den = np.asarray(num, float), np.asarray(den, float)
    out = []
    for start in range(0, n_boot, chunk):
        w = rng.exponential(1.0, (min(chunk, n_boot - start), num.size))
        # einsum, not BLAS: wide products thrash threads on busy shared cores
        out.append(np.einsum("bn,n->b", w, num) / np.maximum(np.einsum("bn,n->b", w, den), 1e-12))
    draws = np.concatenate(out)
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


@analysis("programme.h.breakage")
def breakage(ds: Dataset, end: dt.date, expiry_months: int | None = None, point_value: float | None = None,
             n_boot: int = 500, seed: int = 42) -> Breakage:
    """Breakage (share of earned points that expire unredeemed) with a Bayesian-bootstrap interval over members.

    Only vintages whose expiry date is on or before ``end`` count (all their points are resolved).
    Expiry months: ``expiry_months`` if given, else read from the ledger's expiry rows; without
    expiry rows or a configured rule, breakage is not estimable (points may still be redeemed).
    """
    ds.require("points", "customer_id", "date", "points")
    fifo = _fifo(ds, end)
    v = _vintages(fifo)
    if not (v["kind"] == "expire").any() and not (v["kind"] == "redeem").any():
        raise NotEstimable("no_kinds")
    source = "config"
    if expiry_months is None:
        expiry_months, source = infer_expiry_months(v), "inferred"
    if expiry_months is None:
        raise NotEstimable("no_expiry")
    last_resolved = months_back(end + dt.timedelta(days=1), expiry_months)
    matured = fifo[(fifo["vintage"] >= 0) & (fifo["vintage"] < last_resolved.year * 12 + last_resolved.month - 1)]
    per = (matured.assign(expired=matured["pts"].where(matured["kind"] == _USE_KINDS.index("expire"), 0.0))
           .groupby("code").agg(earned=("pts", "sum"), expired=("expired", "sum")))  # customers in id order
    next_day = end + dt.timedelta(days=1)
    horizons = (1, 3, 6)
    ends = {h: pd.Timestamp(next_day) + pd.DateOffset(months=h) for h in horizons}
    # members holding points that expire within each horizon (expiry: the first day of vintage + expiry_months)
    held = fifo[(fifo["kind"] == _USE_KINDS.index("outstanding"))
                & (fifo["vintage"] + expiry_months > end.year * 12 + end.month - 1)]
    expires = _month_ts(held["vintage"] + expiry_months)
    members = {f"h{h}": held.loc[(expires < d).to_numpy(), "code"].nunique() for h, d in ends.items()}
    if per.empty or per["earned"].sum() <= 0:
        raise NotEstimable("no_matured", months=expiry_months)
    rate = float(per["expired"].sum() / per["earned"].sum())
    ci = bayesian_bootstrap_ratio(per["expired"].to_numpy(), per["earned"].to_numpy(), n_boot, seed)
    # cumulative redeemed share by age for each vintage (age in months since the earning month)
    earned_v = v[v["vintage"].notna()].groupby("vintage")["points"].sum()
    red = v[(v["kind"] == "redeem") & v["vintage"].notna()].copy()
    red["age"] = ((red["use_month"].dt.year - red["vintage"].dt.year) * 12 + red["use_month"].dt.month
                  - red["vintage"].dt.month)
    end_m = pd.Timestamp(months_back(end, 0))
    rows = []
    for vint, total in earned_v.items():
        max_age = (end_m.year - vint.year) * 12 + end_m.month - vint.month
        ages = np.arange(0, min(max_age, expiry_months) + 1)
        r = red[red["vintage"] == vint].groupby("age")["points"].sum().reindex(ages, fill_value=0).cumsum()
        rows.append(pd.DataFrame({"vintage": vint, "age": ages, "redeemed_share": r.to_numpy() / total,
                                  "earned": total}))
    curves = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["vintage", "age", "redeemed_share", "earned"])
    out_v = v[v["kind"] == "outstanding"].copy()
    out_v["expires"] = out_v["vintage"].map(lambda x: pd.Timestamp(months_back(x.date(), -expiry_months)))
    expiring = []
    for h in horizons:
        horizon = pd.Timestamp(next_day) + pd.DateOffset(months=h)  # exclusive
        sel = out_v[(out_v["expires"] >= pd.Timestamp(next_day)) & (out_v["expires"] < horizon)]
        expiring.append({"horizon_months": h, "points": float(sel["points"].sum()), "members": int(members[f"h{h}"])})
    return Breakage(rate, ci, int((per["earned"] > 0).sum()), float(per["earned"].sum()), int(expiry_months), source,
                    curves, float(out_v["points"].sum()), pd.DataFrame(expiring), point_value, ds.currency,
                    int(n_boot))


# ------------------------------------------------------------------ participation
def _since_sql(ds: Dataset) -> str:
    """SQL: the day a members row's level took effect (``level_changed_at``, else the join day)."""
    return ("coalesce(CAST(level_changed_at AS DATE), CAST(joined_at AS DATE))"
            if ds.has("members", "level_changed_at") else "CAST(joined_at AS DATE)")


def _members_cte(ds: Dataset, end: dt.date | None = None) -> str:
    """CTE ``mem``: one row per member — first join day (``joined``), leave day (``left_at``, NULL without
    the column) and latest level (``level``, ``'all'`` without the column) — of those who joined by ``end``
    (everyone when ``None``)."""
    left = "max(CAST(left_at AS DATE))" if ds.has("members", "left_at") else "NULL::DATE"
    level = f"arg_max(level, {_since_sql(ds)})" if ds.has("members", "level") else "'all'"
    where = f"WHERE CAST(joined_at AS DATE) <= DATE '{end.isoformat()}'" if end else ""
    return f"""mem AS MATERIALIZED (
        SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined, {left} AS left_at, {level} AS level
        FROM members {where} GROUP BY 1)"""


@dataclass(frozen=True, repr=False)
class Participation(Result):
    """Members over time, joins and leavers, members' share of buying customers, and the level mix."""

    heading: ClassVar[str] = "programme.h.participation"
    monthly: pd.DataFrame  # month, members, joins, leavers, buyers, member_buyers, share, ci_low, ci_high
    levels: pd.DataFrame  # level, members, share
    end: dt.date

    def _last(self) -> pd.Series:
        return self.monthly.iloc[-1]

    def findings(self, lang: str = "en") -> list[Finding]:
        if self.monthly.empty:
            return []
        last = self._last()
        if not last["buyers"]:  # no purchases known (a members-only export): members, not shares
            out = [Finding("participation", _tr("find.members_only", lang, members=fmt_int(last["members"], lang),
                                                month=last["month"].strftime("%Y-%m")), value=int(last["members"]))]
            tail = self.monthly.tail(3)
            out.append(Finding("joins_leavers", _tr("find.joins_leavers", lang,
                                                    joins=fmt_int(tail["joins"].sum(), lang),
                                                    leavers=fmt_int(tail["leavers"].sum(), lang))))
            return out
        out = [Finding("participation",
                       _tr("find.participation", lang, members=fmt_int(last["members"], lang),
                           share=fmt_pct(last["share"], lang) if pd.notna(last["share"]) else "–",
                           buyers=fmt_int(last["buyers"], lang), month=last["month"].strftime("%Y-%m")),
                       value=None if pd.isna(last["share"]) else float(last["share"]), headline=True,
                       interval=(last["ci_low"], last["ci_high"]), n=int(last["buyers"]), value_range=(0.0, 1.0),
                       how=_tr("how.participation", lang))]
        tail = self.monthly.tail(3)
        out.append(Finding("joins_leavers", _tr("find.joins_leavers", lang, joins=fmt_int(tail["joins"].sum(), lang),
                                                leavers=fmt_int(tail["leavers"].sum(), lang)),
                           value={"joins": int(tail["joins"].sum()), "leavers": int(tail["leavers"].sum())}))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        m = self.monthly
        fig = go.Figure()
        fig.add_trace(go.Bar(x=m["month"], y=m["joins"], name=_tr("part.joins", lang), marker_color=viz.PALETTE[2]))
        fig.add_trace(go.Bar(x=m["month"], y=-m["leavers"], name=_tr("part.leavers", lang), marker_color=viz.PALETTE[3]))
        if m["buyers"].sum():
            fig.add_trace(go.Scatter(x=m["month"], y=m["share"], name=_tr("part.share", lang), yaxis="y2",
                                     mode="lines+markers", line=dict(color="#222"),
                                     error_y=dict(type="data", symmetric=False,
                                                  array=(m["ci_high"] - m["share"]).tolist(),
                                                  arrayminus=(m["share"] - m["ci_low"]).tolist(), width=3)))
        fig.update_layout(barmode="relative", title=_tr("part.title", lang), yaxis_title=_tr("part.people", lang),
                          yaxis2=dict(overlaying="y", side="right", tickformat=".0%", showgrid=False,
                                      rangemode="tozero", title=_tr("part.share", lang)), margin=dict(r=70))
        out: list[Any] = [fig]
        if len(self.levels):
            lv = go.Figure(go.Bar(x=self.levels["members"], y=self.levels["level"], orientation="h",
                                  marker_color=viz.PALETTE[0],
                                  text=[fmt_pct(s, lang) for s in self.levels["share"]], textposition="outside"))
            lv.update_layout(title=_tr("part.levels", lang, date=self.end.isoformat()),
                             xaxis_title=_tr("part.people", lang), height=120 + 45 * len(self.levels),
                             yaxis=dict(autorange="reversed"))
            out.append(lv)
        return out

    def kpis(self, lang: str = "en") -> list[KPI]:
        if self.monthly.empty:
            return []
        last, prev = self._last(), (self.monthly.iloc[-2] if len(self.monthly) > 1 else None)
        return [KPI("programme_participation", _tr("kpi.participation", lang),
                    None if pd.isna(last["share"]) else float(last["share"]), "share", n=int(last["buyers"]),
                    interval=(last["ci_low"], last["ci_high"]), better="higher",
                    previous=None if prev is None or pd.isna(prev["share"]) else float(prev["share"]),
                    how=_tr("how.participation", lang)),
                KPI("members", _tr("kpi.members", lang), float(last["members"]), "count", better="higher",
                    previous=None if prev is None else float(prev["members"]))]

    def metrics(self) -> dict[str, Any]:
        m = self.monthly.assign(month=self.monthly["month"].dt.strftime("%Y-%m"))
        return {"participation": m, "level_mix": self.levels}


@analysis("programme.h.participation")
def participation(ds: Dataset, end: dt.date, months: int = 24) -> Participation:
    """Members at each month end, joins and leavers per month, and the share of that month's buying customers
    who were members (Wilson interval); level mix of members at ``end`` (latest level spell)."""
    ds.require("members", "customer_id", "joined_at")
    start = months_back(end, months - 1)
    has_tx = ds.has("transactions", "customer_id", "date")
    left = "left_at" if ds.has("members", "left_at") else "NULL::DATE"
    # month starts precomputed once per member and per month: the per-row comparisons are plain dates
    buyers = f"""
      , b AS (SELECT tx.month, count(*) AS buyers,
                     count(*) FILTER (WHERE mm_.jm <= tx.month AND (mm_.left_at IS NULL OR mm_.left_at > tx.month))
                         AS member_buyers
              FROM {customer_months(ds, end)} tx LEFT JOIN mm_ USING (customer_id)
              WHERE tx.month >= DATE '{start.isoformat()}' GROUP BY 1)""" if has_tx else ""
    q = f"""
    WITH {_members_cte(ds, end)},
    mm_ AS (SELECT customer_id, left_at, CAST(date_trunc('month', joined) AS DATE) AS jm,
                   CAST(date_trunc('month', left_at) AS DATE) AS lm FROM mem),
    months AS (SELECT CAST(month AS DATE) AS month, CAST(month + INTERVAL 1 MONTH AS DATE) AS next FROM (
                   SELECT unnest(range(DATE '{start.isoformat()}', DATE '{months_back(end, -1).isoformat()}',
                                       INTERVAL 1 MONTH)) AS month)),
    mm AS (SELECT months.month,
                  count(*) FILTER (WHERE jm <= months.month AND (left_at IS NULL OR left_at >= months.next)) AS members,
                  count(*) FILTER (WHERE jm = months.month) AS joins,
                  count(*) FILTER (WHERE lm = months.month AND left_at <= DATE '{end.isoformat()}') AS leavers
           FROM months, mm_ GROUP BY 1)
    {buyers}
    SELECT months.month, coalesce(mm.members, 0) AS members, coalesce(mm.joins, 0) AS joins,
           coalesce(mm.leavers, 0) AS leavers
           {", coalesce(b.buyers, 0) AS buyers, coalesce(b.member_buyers, 0) AS member_buyers" if has_tx else ""}
    FROM months LEFT JOIN mm USING (month) {"LEFT JOIN b USING (month)" if has_tx else ""} ORDER BY 1"""
    m = ds.sql(q)
    m["month"] = pd.to_datetime(m["month"])
    if not has_tx:
        m["buyers"], m["member_buyers"] = 0, 0
    from workbench.loyalty import wilson

    m["share"] = np.where(m["buyers"] > 0, m["member_buyers"] / m["buyers"].where(m["buyers"] > 0, 1), np.nan)
    m["ci_low"], m["ci_high"] = wilson(m["member_buyers"], m["buyers"])
    levels = pd.DataFrame(columns=["level", "members", "share"])
    if ds.has("members", "level"):
        since = _since_sql(ds)
        lv = ds.sql(f"""
        WITH spells AS (SELECT customer_id, level, {since} AS since, CAST({left} AS DATE) AS left_at FROM members
                        WHERE {since} <= DATE '{end.isoformat()}'),
        cur AS (SELECT customer_id, arg_max(level, since) AS level, max(left_at) AS left_at FROM spells GROUP BY 1)
        SELECT level, count(*) AS members FROM cur WHERE left_at IS NULL OR left_at > DATE '{end.isoformat()}'
        GROUP BY 1""")
        order = _level_order(ds, lv["level"].tolist(), end)
        lv["level"] = pd.Categorical(lv["level"], categories=order, ordered=True)
        levels = lv.sort_values("level").assign(share=lambda d: d["members"] / d["members"].sum())
        levels["level"] = levels["level"].astype(str)
    return Participation(m, levels.reset_index(drop=True), end)


def _level_order(ds: Dataset, levels: list[str], end: dt.date) -> list[str]:
    """Levels from lowest to highest: ``[programme].level_order`` when set, else by members' median
    spend over the 12 months to ``end`` (the data decide, not a list fitted to the sample)."""
    configured = [lv for lv in settings(ds).level_order if lv in levels]
    if configured:
        return configured + sorted(set(levels) - set(configured))
    memo = ds.__dict__.setdefault("_wb_programme_level_order", {})  # participation, levels and ROI ask alike
    key = (end, tuple(sorted(map(str, levels))))
    if key not in memo:
        if len(memo) > 8:
            memo.clear()
        memo[key] = _spend_order(ds, levels, end)
    return list(memo[key])


def _spend_order(ds: Dataset, levels: list[str], end: dt.date) -> list[str]:
    """Levels by members' median spend over the 12 months to ``end`` (see :func:`_level_order`)."""
    if not ds.has("transactions", "customer_id", "amount") or not levels:
        return sorted(levels)
    since = _since_sql(ds)
    lo = months_back(end, 11)
    spend = ds.sql(f"""
    WITH cur AS (SELECT customer_id, arg_max(level, {since}) AS level FROM members
                 WHERE {since} <= DATE '{end.isoformat()}' GROUP BY 1),
    s AS (SELECT customer_id, sum(spend) AS spend FROM {customer_months(ds, end)}
          WHERE month >= DATE '{lo.isoformat()}' AND customer_id IN (SELECT customer_id FROM cur) GROUP BY 1)
    SELECT level, median(coalesce(s.spend, 0)) AS spend FROM cur LEFT JOIN s USING (customer_id) GROUP BY 1""")
    ranked = spend.sort_values(["spend", "level"])["level"].tolist()
    return ranked + sorted(set(levels) - set(ranked))


# ------------------------------------------------------------------ member effect
def poisson_fe_patterns(counts: np.ndarray, unit: np.ndarray, time: np.ndarray, pattern: np.ndarray,
                        mask: np.ndarray, X: np.ndarray, max_iter: int = 100,
                        tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Poisson regression with unit and time fixed effects, fitted on sufficient statistics.

    ``E[y_it] = a_i · exp(g_t + X_it · b)``. With the unit effects concentrated out, the fixed-effects
    Poisson is the multinomial of each unit's counts given its total (Hausman, Hall & Griliches 1984).
    Units sharing a *pattern* (the same panel cells and the same covariates in each) share the
    multinomial's cell probabilities, so the likelihood, its score and its information need only the
    patterns' summed counts per time; Newton steps run on patterns × times. The cluster-robust (by unit)
    covariance sums per-unit scores, projected onto ``b``, from the non-zero cells. Units whose counts are
    all zero carry no information.

    Parameters
    ----------
    counts, unit, time : ndarray
        The panel's non-zero cells: count, unit index (0 … nu − 1) and time index (0 … nt − 1); cells
        outside their unit's pattern mask are ignored.
    pattern : ndarray, shape (nu,)
        Each unit's pattern index (0 … G − 1).
    mask : ndarray of bool, shape (G, nt)
        The cells each pattern has in the panel.
    X : ndarray, shape (G, nt, k)
        Covariates by pattern and time.
    max_iter, tol : int, float
        Newton iterations and the step size that stops them.

    Returns
    -------
    (b, cov) : coefficients and their cluster-robust (by unit) covariance.
    """
    mask = np.asarray(mask, bool)
    n_pat, nt_all = mask.shape
    X = np.asarray(X, float).reshape(n_pat, nt_all, -1)
    k = X.shape[2]
    present = np.flatnonzero(mask.any(axis=0))  # times with a panel cell; the first is the reference
    mask, X = mask[:, present], X[:, present, :]
    nt = len(present)
    tmap = np.full(nt_all, -1)
    tmap[present] = np.arange(nt)
    pattern = np.asarray(pattern, np.int64)
    nu = len(pattern)
    unit = np.asarray(unit, np.int64)
    ti = tmap[np.asarray(time, np.int64)]
    y = np.asarray(counts, float)
    pu = pattern[unit]
    keep = (ti >= 0) & (y != 0)
    keep[keep] = mask[pu[keep], ti[keep]]
    unit, ti, y, pu = unit[keep], ti[keep], y[keep], pu[keep]
    yg = np.bincount(pu * nt + ti, y, n_pat * nt).reshape(n_pat, nt)  # the sufficient statistics
    tot = yg.sum(axis=1)
    K = k + nt
    theta = np.zeros(K - 1)

    def expected(theta: np.ndarray) -> np.ndarray:
        eta = np.where(mask, X @ theta[:k] + np.concatenate([[0.0], theta[k:]]), -np.inf)
        top = eta.max(axis=1, keepdims=True)
        e = np.exp(eta - np.where(np.isfinite(top), top, 0.0))
        s = e.sum(axis=1, keepdims=True)
        return tot[:, None] * np.divide(e, s, out=np.zeros_like(e), where=s > 0)

    def information(mu: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.einsum("gt,gtj->gj", mu, X), mu], axis=1)
        full = np.zeros((K, K))
        full[:k, :k] = np.einsum("gt,gtj,gtl->jl", mu, X, X)
        full[:k, k:] = np.einsum("gt,gtj->jt", mu, X)
        full[k:, :k] = full[:k, k:].T
        full[k:, k:] = np.diag(mu.sum(axis=0))
        inv = np.divide(1.0, tot, out=np.zeros(n_pat), where=tot > 0)
        full -= np.einsum("gj,gl->jl", c * inv[:, None], c)
        keep = np.r_[0:k, k + 1:K]
        return full[np.ix_(keep, keep)]

    for _ in range(max_iter):
        mu = expected(theta)
        r = yg - mu
        score = np.concatenate([np.einsum("gt,gtj->j", r, X), r.sum(axis=0)[1:]])
        step = np.linalg.lstsq(information(mu), score, rcond=None)[0]
        theta = theta + step
        if np.max(np.abs(step)) < tol:
            break
    mu = expected(theta)
    H = information(mu)
    # cluster-robust covariance of b: Σ_i v_i v_iᵀ with v_i = A s_i, A = the b rows of H⁻¹ and s_i the unit's
    # score: Σ over its cells of y·z(g, t) (z = covariates and time indicator) minus its total × the pattern's
    # expected z; A z(g, t) is a small pattern × time table, so v comes from one gather per coefficient
    keep = np.r_[0:k, k + 1:K]
    A = np.linalg.pinv(H)[:k]
    At = np.concatenate([np.zeros((k, 1)), A[:, k:]], axis=1)  # time columns, the reference as zero
    B = np.einsum("jl,gtl->gtj", A[:, :k], X) + At.T[None, :, :]  # (G, nt, k)
    m = np.concatenate([np.einsum("gt,gtj->gj", mu, X), mu], axis=1)
    m *= np.divide(1.0, tot, out=np.zeros(n_pat), where=tot > 0)[:, None]
    am = np.einsum("gl,jl->gj", m[:, keep], A)
    y_u = np.bincount(unit, y, nu)
    flat = pu * nt + ti  # one flat index, then a 1-D take per coefficient (a 3-index gather per column was slow)
    Bt = np.ascontiguousarray(B.reshape(-1, k).T)
    v = np.column_stack([np.bincount(unit, y * Bt[j].take(flat), nu) for j in range(k)]) - y_u[:, None] * am[pattern]
    cov = np.einsum("ij,il->jl", v, v)  # not BLAS: tall, thin products fare badly on busy shared cores
    n_clusters = int((y_u > 0).sum())
    cov *= n_clusters / max(n_clusters - 1, 1)
    return theta[:k], cov


def poisson_fe(y: np.ndarray, X: np.ndarray, unit: np.ndarray, time: np.ndarray, max_iter: int = 100,
               tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Poisson regression with unit and time fixed effects on a long panel (one row per unit × time);
    cluster-robust (by unit) covariance. Each unit is its own pattern of :func:`poisson_fe_patterns`.

    Returns
    -------
    (b, cov) : coefficients and their cluster-robust (by unit) covariance.
    """
    y = np.asarray(y, float)
    X = np.asarray(X, float).reshape(len(y), -1)
    _, ui = np.unique(unit, return_inverse=True)
    _, ti = np.unique(time, return_inverse=True)
    nu, nt = int(ui.max()) + 1, int(ti.max()) + 1
    mask = np.zeros((nu, nt), bool)
    mask[ui, ti] = True
    Xd = np.zeros((nu, nt, X.shape[1]))
    Xd[ui, ti] = X
    return poisson_fe_patterns(y, ui, ti, np.arange(nu), mask, Xd, max_iter, tol)


@dataclass(frozen=True, repr=False)
class MemberEffect(Result):
    """The member effect net of self-selection next to the naive members-vs-others gap."""

    heading: ClassVar[str] = "programme.h.effect"
    naive_ratio: float  # revenue per customer, members / others, over the window
    naive_n: tuple[int, int]
    effect: float  # purchase-rate multiplier after joining (fixed-effects Poisson)
    ci: tuple[float, float]
    n_members: int  # members with months before and after joining in the panel
    n_customers: int
    n_months: int  # customer-months in the panel
    event: pd.DataFrame  # rel_month, ratio, ci_low, ci_high
    window: tuple[dt.date, dt.date]
    weighted: dict[str, Any] = field(default_factory=dict)  # propensity-weighted DiD: effect, ci, n, ess, overlap

    def findings(self, lang: str = "en") -> list[Finding]:
        naive = Finding("effect_naive", _tr("find.naive", lang, ratio=fmt_num(self.naive_ratio, lang, 1),
                                            members=fmt_int(self.naive_n[0], lang), others=fmt_int(self.naive_n[1], lang)),
                        value=self.naive_ratio, how=_tr("how.naive", lang))
        pct = self.effect - 1
        text = _tr("find.effect_up" if pct >= 0 else "find.effect_down", lang, pct=fmt_pct(abs(pct), lang),
                   lo=fmt_pct(self.ci[0] - 1, lang), hi=fmt_pct(self.ci[1] - 1, lang),
                   naive=fmt_num(self.naive_ratio, lang, 1), n=fmt_int(self.n_members, lang))
        adjusted = Finding("effect_adjusted", text, value=self.effect, headline=True, interval=self.ci, null=1.0,
                           n=self.n_members, how=_tr("how.effect", lang, months=fmt_int(self.n_months, lang),
                                                      customers=fmt_int(self.n_customers, lang)),
                           action=_tr("action.effect", lang))
        out = [adjusted, naive]
        w = self.weighted
        if w.get("effect") is not None:
            agrees = w["ci"][0] <= self.ci[1] and self.ci[0] <= w["ci"][1]
            key = "find.effect_weighted" if agrees else "find.effect_weighted_differs"
            out.append(Finding("effect_weighted", _tr(key, lang, pct=fmt_pct(w["effect"] - 1, lang),
                                                      lo=fmt_pct(w["ci"][0] - 1, lang), hi=fmt_pct(w["ci"][1] - 1, lang),
                                                      n=fmt_int(w["n_treated"], lang)),
                               value=w["effect"], interval=tuple(w["ci"]), null=1.0, n=w["n_treated"],
                               how=_tr("how.effect_weighted", lang, ess=fmt_int(w["ess"], lang),
                                       controls=fmt_int(w["n_controls"], lang), cohorts=w["cohorts"])))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        bars = go.Figure(go.Bar(x=[_tr("effect.naive", lang), _tr("effect.adjusted", lang)],
                                y=[self.naive_ratio, self.effect], marker_color=[viz.PALETTE[7], viz.PALETTE[0]],
                                error_y=dict(type="data", symmetric=False, array=[0, self.ci[1] - self.effect],
                                             arrayminus=[0, self.effect - self.ci[0]]),
                                text=[f"×{fmt_num(self.naive_ratio, lang, 2)}", f"×{fmt_num(self.effect, lang, 2)}"],
                                textposition="outside"))
        bars.add_hline(y=1.0, line_dash="dot", line_color="#555")
        bars.update_layout(title=_tr("effect.title", lang), yaxis_title=_tr("effect.ratio", lang))
        ev = self.event
        es = go.Figure(go.Scatter(x=ev["rel_month"], y=ev["ratio"], mode="markers+lines",
                                  error_y=dict(type="data", symmetric=False, array=(ev["ci_high"] - ev["ratio"]).tolist(),
                                               arrayminus=(ev["ratio"] - ev["ci_low"]).tolist())))
        es.add_hline(y=1.0, line_dash="dot", line_color="#555")
        es.add_vline(x=-0.5, line_dash="dot", line_color="#c8413b")
        es.update_layout(title=_tr("effect.event_title", lang), xaxis_title=_tr("effect.rel_month", lang),
                         yaxis_title=_tr("effect.ratio_ref", lang))
        out: list[Any] = [bars, Figure(es, appendix=True)]
        ov = self.weighted.get("overlap")
        if ov is not None and len(ov):
            fig = go.Figure()
            for grp, colour in (("joined", viz.PALETTE[0]), ("not_yet", viz.PALETTE[7])):
                sub = ov[ov["group"] == grp]
                fig.add_trace(go.Bar(x=sub["bin"], y=sub["share"], name=_tr(f"effect.ps_{grp}", lang),
                                     marker_color=colour, opacity=0.7))
            fig.update_layout(barmode="overlay", title=_tr("effect.overlap_title", lang),
                              xaxis_title=_tr("effect.ps", lang), yaxis_title=_tr("effect.ps_share", lang),
                              yaxis_tickformat=".0%")
            out.append(Figure(fig, appendix=True))
        return out

    def notes(self, lang: str = "en") -> list[str]:
        return [_tr("note.effect_literature", lang), t("core.associational", lang)]

    def kpis(self, lang: str = "en") -> list[KPI]:
        return [KPI("member_effect", _tr("kpi.effect", lang), self.effect, "number", n=self.n_members,
                    interval=self.ci, better="higher", how=_tr("how.effect", lang, months=fmt_int(self.n_months, lang),
                                                               customers=fmt_int(self.n_customers, lang)))]

    def metrics(self) -> dict[str, Any]:
        return {"member_effect": {"naive_revenue_ratio": self.naive_ratio, "naive_n_members": self.naive_n[0],
                                  "naive_n_others": self.naive_n[1], "purchase_rate_ratio": self.effect,
                                  "ci_low": self.ci[0], "ci_high": self.ci[1], "n_members": self.n_members,
                                  "n_customers": self.n_customers, "customer_months": self.n_months,
                                  "window": [self.window[0].isoformat(), self.window[1].isoformat()],
                                  "method": "poisson_fixed_effects_known_active_months",
                                  "weighted": {k: v for k, v in self.weighted.items() if k != "overlap"}},
                "member_event_study": self.event}


@analysis("programme.h.effect")
def member_effect(ds: Dataset, end: dt.date, months: int = 24, event_window: int = 6, seed: int = 42) -> MemberEffect:
    """Members' purchase-rate change after joining, net of self-selection, beside the naive gap.

    Panel: customer × calendar month over the ``months`` to ``end``, restricted to months a customer
    is known to be active (after their first purchase month and before their last one: churn cannot
    have happened yet, and neither the first nor the last month is selected on a purchase). Model:
    Poisson with customer and month fixed effects and an "after joining" indicator (the join month
    itself left out); event-study coefficients for months −``event_window``…+``event_window`` around joining
    (−1 the reference). Interval: cluster-robust by customer. Both fits run on sufficient statistics
    (customers with the same panel months and join month pooled), so the cost does not grow with
    customers beyond one pass over their monthly counts.
    """
    ds.require("members", "customer_id", "joined_at")
    ds.require("transactions", "customer_id", "date")
    panel, naive = _effect_panel(ds, end, months)
    if panel is None:
        raise NotEstimable("no_panel", table="transactions")
    lo, hi, jm, member = panel["lo"], panel["hi"], panel["jm"], panel["member"]
    nt, w = months, event_window
    # months in each customer's panel: [lo, hi] without the join month
    in_panel = (hi - lo + 1) - (member & (jm >= lo) & (jm <= hi))
    n_switch = int((member & (lo < jm) & (hi > jm)).sum())
    if n_switch < 2:
        raise NotEstimable("few_switchers", table="members", n=n_switch)
    # patterns: customers with the same panel months and the same covariates in each (join months far
    # outside the window all look alike)
    jmc = np.where(member, np.clip(jm, -(w + 1), nt + w), 0)
    key = ((member.astype(np.int64) * nt + lo) * nt + hi) * (nt + 2 * w + 2) + (jmc + w + 1)
    _, first_unit, pattern = np.unique(key, return_index=True, return_inverse=True)
    t = np.arange(nt)
    p_lo, p_hi, p_jm, p_mem = lo[first_unit, None], hi[first_unit, None], jmc[first_unit, None], member[first_unit, None]
    mask = (t >= p_lo) & (t <= p_hi) & ~(p_mem & (t == p_jm))
    rel = t - p_jm
    cells = (panel["n"], panel["unit"], panel["m"], pattern, mask)
    b, cov = poisson_fe_patterns(*cells, X=(p_mem & (rel > 0)).astype(float)[:, :, None])
    se = math.sqrt(max(cov[0, 0], 0.0))
    effect, ci = math.exp(b[0]), (math.exp(b[0] - 1.96 * se), math.exp(b[0] + 1.96 * se))
    # event study: one indicator per relative month in the window (−1 the reference), the rest binned
    bins = [k for k in range(-w, w + 1) if k not in (-1, 0)]
    X = np.stack([p_mem & (rel == k) for k in bins] + [p_mem & (rel > w), p_mem & (rel < -w)], axis=2)
    keep = (X & mask[:, :, None]).any(axis=(0, 1))
    be, ce = poisson_fe_patterns(*cells, X=X[:, :, keep].astype(float))
    labels = np.array(bins + [w + 1, -w - 1])[keep]
    se_e = np.sqrt(np.clip(np.diag(ce), 0, None))
    event = pd.DataFrame({"rel_month": labels, "ratio": np.exp(be), "ci_low": np.exp(be - 1.96 * se_e),
                          "ci_high": np.exp(be + 1.96 * se_e)})
    event = event[event["rel_month"].abs() <= w]
    event = pd.concat([event, pd.DataFrame({"rel_month": [-1], "ratio": [1.0], "ci_low": [1.0], "ci_high": [1.0]})])
    event = event.sort_values("rel_month").reset_index(drop=True)
    start = months_back(end, months - 1)
    naive = naive.set_index("member")
    if True not in naive.index or False not in naive.index:
        raise NotEstimable("no_comparison", table="members")
    ratio = float(naive.loc[True, "rev"] / naive.loc[False, "rev"])
    weighted = _weighted_did(panel, in_panel, seed=seed)
    return MemberEffect(ratio, (int(naive.loc[True, "n"]), int(naive.loc[False, "n"])), effect, ci, n_switch,
                        int((in_panel > 0).sum()), int(in_panel.sum()), event, (start, end), weighted)


def _effect_panel(ds: Dataset, end: dt.date, months: int) -> tuple[dict[str, np.ndarray] | None, pd.DataFrame]:
    """Per-customer panel bounds and monthly purchase counts for :func:`member_effect`, aggregated in the engine
    in one pass over the transactions (a temporary customer × month table), and the naive comparison.

    Panel: customers (``unit`` 0 … nu − 1, in customer-id order) with at least one month strictly between
    their first and last purchase month inside the window; ``lo``/``hi`` the first and last such month
    and ``jm`` the join month (window month index; ``member`` False for non-members); ``unit``/``m``/``n``
    the non-zero purchase counts in ``[lo, hi]`` (the join month included: the fits mask it). ``None``
    when no customer qualifies. Naive: revenue per buying customer in the window, members (joined by
    ``end``) and others (``member``, ``rev``, ``n``).
    """
    start = months_back(end, months - 1)
    s = start.isoformat()
    rev = "spend" if ds.has("transactions", "amount") else "n"
    con = ds._con
    cm = (f"(SELECT customer_id, CAST(date_diff('month', DATE '{s}', month) AS INTEGER) AS m, n, {rev} AS rev "
          f"FROM {customer_months(ds, end)})")
    # one pass over the customer-months for both the panel bounds and the naive window revenue
    with _temp_table(ds, f"""
        SELECT customer_id, min(m) AS first_m, max(m) AS last_m,
               sum(rev) FILTER (WHERE m BETWEEN 0 AND {months - 1}) AS rev,
               count(*) FILTER (WHERE m BETWEEN 0 AND {months - 1}) > 0 AS buyer
        FROM {cm} GROUP BY 1""") as span:
        got = con.execute(f"""
        WITH cm AS {cm},
        {_members_cte(ds)},
        u AS (SELECT span.customer_id, greatest(first_m + 1, 0) AS lo, least(last_m - 1, {months - 1}) AS hi,
                     CAST(date_diff('month', DATE '{s}', date_trunc('month', mem.joined)) AS INTEGER) AS jm
              FROM {span} span LEFT JOIN mem USING (customer_id)),
        units AS (SELECT CAST(row_number() OVER (ORDER BY customer_id) - 1 AS INTEGER) AS unit, * FROM u WHERE lo <= hi)
        SELECT units.unit, units.lo, units.hi, units.jm, cm.m, CAST(cm.n AS INTEGER) AS n
        FROM units LEFT JOIN cm ON cm.customer_id = units.customer_id AND cm.m BETWEEN units.lo AND units.hi
        """).fetchnumpy()
        naive = con.execute(f"""
        WITH {_members_cte(ds, end)}
        SELECT mem.customer_id IS NOT NULL AS member, avg(rev) AS rev, count(*) AS n
        FROM {span} span LEFT JOIN mem USING (customer_id) WHERE buyer GROUP BY 1""").df()
    if not len(got["unit"]):
        return None, naive

    def col(name: str) -> tuple[np.ndarray, np.ndarray]:
        x = got[name]
        missing = np.ma.getmaskarray(x)
        return np.ma.getdata(x).astype(np.int64), missing

    unit = col("unit")[0]
    nu = int(unit.max()) + 1
    out: dict[str, np.ndarray] = {}
    for c in ("lo", "hi", "jm"):
        out[c] = np.zeros(nu, np.int64)
        v, missing = col(c)
        out[c][unit] = np.where(missing, 0, v)
        if c == "jm":
            out["member"] = np.zeros(nu, bool)
            out["member"][unit] = ~missing
    m, no_cell = col("m")
    out["unit"], out["m"], out["n"] = unit[~no_cell], m[~no_cell], col("n")[0][~no_cell].astype(float)
    return out, naive


def _weighted_did(panel: dict[str, np.ndarray], in_panel: np.ndarray, window: int = 4, max_controls: int = 20,
                  n_boot: int = 200, seed: int = 42) -> dict[str, Any]:
    """Propensity-weighted difference in differences, stacked over join-month cohorts.

    For each month b: members who joined in b against customers not yet members by b + ``window``,
    all known active from b − 2·``window`` to b + ``window``. The propensity to join (scikit-learn
    logistic regression with cohort effects) uses activity in the *earlier* window (b − 2w … b − w − 1)
    and time since the first purchase, so the weighting does not select on the noise of the "before"
    window (no regression to the mean between before and after). Effect = (after / before purchases of
    joiners) ÷ (the same for weighted non-joiners); ATT weights p/(1 − p), normalised per cohort.
    Interval: Bayesian bootstrap over customers (weights held fixed). Everything runs on per-customer
    window sums; the logistic regression on the distinct (cohort, joined, earlier activity, tenure)
    combinations, weighted by how many customers share each.
    """
    from sklearn.linear_model import LogisticRegression

    lo, hi, jm, member = panel["lo"], panel["hi"], panel["jm"], panel["member"]
    nu = len(lo)
    if not in_panel.any():
        return {}
    # first and last panel month of each customer (the join month is not in the panel)
    first = np.where(member & (jm == lo), lo + 1, lo)
    last = np.where(member & (jm == hi), hi - 1, hi)
    first, last = np.where(in_panel > 0, first, np.iinfo(np.int64).max), np.where(in_panel > 0, last, -1)
    nm = int(last.max()) + 1
    cell = ~(member[panel["unit"]] & (panel["m"] == jm[panel["unit"]]))
    counts = np.zeros((nu, max(nm, 1) + 1), np.float32)  # cumulative: column j = purchases in months < j
    sel = cell & (panel["m"] < nm)
    counts[panel["unit"][sel], panel["m"][sel] + 1] = panel["n"][sel]
    np.cumsum(counts, axis=1, out=counts)

    def between(idx: np.ndarray, a: int, b: int) -> np.ndarray:
        return counts[idx, b] - counts[idx, a]  # purchases in months a … b − 1
    rng = np.random.default_rng(seed)
    w = window
    parts: list[dict[str, np.ndarray]] = []
    for b in range(2 * w, nm - w):
        eligible = (first <= b - 2 * w) & (last >= b + w)
        treated = eligible & member & (jm == b)
        control = eligible & ~(member & (jm <= b + w))
        t_idx, c_idx = np.flatnonzero(treated), np.flatnonzero(control)
        if len(t_idx) < 5 or len(c_idx) < 5:
            continue
        frac = 1.0
        if len(c_idx) > max_controls * len(t_idx):
            frac = max_controls * len(t_idx) / len(c_idx)
            c_idx = c_idx[rng.random(len(c_idx)) < frac]
        for idx, tr in ((t_idx, 1), (c_idx, 0)):
            parts.append({"unit": idx, "cohort": np.full(len(idx), b), "treated": np.full(len(idx), tr),
                          "frac": np.full(len(idx), 1.0 if tr else frac),
                          "early": np.log1p(between(idx, b - 2 * w, b - w)), "tenure": b - first[idx],
                          "before": between(idx, b - w, b), "after": between(idx, b + 1, b + w + 1)})
    if not parts:
        return {}
    d = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    treated = d["treated"] == 1
    if treated.sum() < 30:
        return {}
    # the propensity model sees each distinct covariate combination once, weighted by its customers
    combos = pd.DataFrame({c: d[c] for c in ("early", "tenure", "cohort", "treated")})
    groups = combos.groupby(list(combos.columns), sort=False)
    g_idx = groups.ngroup().to_numpy()
    g = groups.size().reset_index(name="customers")
    X = pd.get_dummies(g[["early", "tenure"]].assign(cohort=g["cohort"].astype(str)), dtype=float)
    fit = LogisticRegression(max_iter=1000, C=1e6).fit(X, g["treated"], sample_weight=g["customers"])
    ps = np.clip(fit.predict_proba(X)[:, 1], 1e-3, 1 - 1e-3)[g_idx]
    wt = np.where(treated, 1.0, ps / (1 - ps) / d["frac"])
    cohort = d["cohort"]
    tot_t = np.bincount(cohort[treated], minlength=nm)
    tot_c = np.bincount(cohort[~treated], wt[~treated], minlength=nm)
    scale = np.divide(tot_t, tot_c, out=np.zeros(nm), where=tot_c > 0)
    wt = np.where(treated, wt, wt * scale[cohort])
    # per-customer sums (a customer can be a control in several cohorts): the bootstrap unit
    units, inv = np.unique(d["unit"], return_inverse=True)
    cw = np.where(treated, 0.0, wt)
    tw = treated.astype(float)
    per = np.column_stack([np.bincount(inv, v, len(units)) for v in
                           (d["before"] * tw, d["after"] * tw, d["before"] * cw, d["after"] * cw)])

    def ratio(s: np.ndarray) -> np.ndarray:
        return (s[..., 1] / s[..., 0]) / (s[..., 3] / s[..., 2])

    est = float(ratio(per.sum(axis=0)))
    draws = []
    for start in range(0, n_boot, 50):
        gw = rng.exponential(1.0, (min(50, n_boot - start), len(per)))
        draws.append(ratio(np.einsum("bn,nj->bj", gw, per)))
    draws = np.concatenate(draws)
    wc = wt[~treated]
    bins = np.linspace(0, 1, 21)
    overlap = []
    for grp, sel in (("joined", treated), ("not_yet", ~treated)):
        h, _ = np.histogram(ps[sel], bins=bins)
        overlap.append(pd.DataFrame({"group": grp, "bin": (bins[:-1] + bins[1:]) / 2, "share": h / max(h.sum(), 1)}))
    return {"effect": est, "ci": [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))],
            "n_treated": int(treated.sum()), "n_controls": int((~treated).sum()),
            "ess": float(wc.sum() ** 2 / (wc ** 2).sum()), "cohorts": int(np.unique(cohort).size),
            "window_months": w, "overlap": pd.concat(overlap, ignore_index=True)}


# ------------------------------------------------------------------ points-system risk
RISK_RULES = ("negative_balance", "redeem_above_balance", "earn_without_purchase", "earn_burst", "shared_contact")


@dataclass(frozen=True, repr=False)
class RiskFlags(Result):
    """Accounts whose points history breaks the programme's rules (an exception list for the analyst)."""

    heading: ClassVar[str] = "programme.h.risk"
    counts: pd.DataFrame  # rule, accounts, rows, checked (bool), reason
    accounts: pd.DataFrame  # account (pseudonymised), rule, first_date, points
    n_accounts: int

    def findings(self, lang: str = "en") -> list[Finding]:
        flagged = int(self.accounts["account"].nunique()) if len(self.accounts) else 0
        text = _tr("find.risk" if flagged else "find.risk_none", lang, n=fmt_int(flagged, lang),
                   total=fmt_int(self.n_accounts, lang))
        return [Finding("risk_flags", text, value=flagged, headline=flagged > 0, n=self.n_accounts,
                        action=_tr("action.risk", lang) if flagged else "", how=_tr("how.risk", lang))]

    def tables(self, lang: str = "en") -> list[Table]:
        c = self.counts.assign(rule=[_tr(f"rule.{r}", lang) for r in self.counts["rule"]],
                               checked=[_tr("col.yes", lang) if ok else _tr(f"why.{w}", lang)
                                        for ok, w in zip(self.counts["checked"], self.counts["reason"], strict=True)])
        shown = c[["rule", "accounts", "checked"]].rename(columns={"rule": _tr("col.rule", lang),
                                                                     "accounts": _tr("col.accounts", lang),
                                                                     "checked": _tr("col.checked", lang)})
        out = [Table(shown, {_tr("col.accounts", lang): lambda v: fmt_int(v, lang)})]
        if len(self.accounts):
            a = self.accounts.assign(rule=[_tr(f"rule.{r}", lang) for r in self.accounts["rule"]])
            cols = {"account": _tr("col.account", lang), "rule": _tr("col.rule", lang),
                    "first_date": _tr("col.first_date", lang), "points": _tr("col.points", lang)}
            out.append(Table(a[list(cols)].rename(columns=cols), {cols["points"]: lambda v: fmt_int(v, lang)},
                             caption=_tr("caption.risk_list", lang), appendix=True, export="points_exceptions"))
        return out

    def kpis(self, lang: str = "en") -> list[KPI]:
        flagged = int(self.accounts["account"].nunique()) if len(self.accounts) else 0
        return [KPI("points_risk_accounts", _tr("kpi.risk", lang), flagged, "count", n=self.n_accounts, better="lower")]

    def metrics(self) -> dict[str, Any]:
        return {"points_risk": {"accounts_checked": self.n_accounts,
                                "flagged_accounts": int(self.accounts["account"].nunique()) if len(self.accounts) else 0,
                                "rules": self.counts[["rule", "accounts", "rows", "checked"]]}}


@analysis("programme.h.risk")
def risk_flags(ds: Dataset, end: dt.date, burst_factor: float = 3.0, burst_z: float = 6.0, min_history: int = 6,
               key: bytes | str | None = None) -> RiskFlags:
    """Flag ledger accounts breaking the rules.

    Rules: running balance below zero; a redemption larger than the balance before it; points earned
    in a month without any purchase by the member (needs transactions; bonus rows are not earnings);
    a month's earning above ``burst_factor`` × what its purchases earn at the usual rate (the median
    points per unit spent across member-months); without transactions, an earning row whose log is more
    than ``burst_z`` robust standard deviations (1.4826 × MAD of the
    member's log earning rows) above the member's median (members with at least ``min_history``
    earning rows; ordinary heavy months of a big spender stay inside); many accounts redeeming to one contact (needs a contact column, which
    the canonical points table does not have: reported as not checked).
    """
    ds.require("points", "customer_id", "date", "points")
    from workbench.privacy import pseudonymise

    # the shared ledger carries the running balance; the shared customer-month table the purchases
    base = f"WITH p AS (SELECT * FROM {points_ledger(ds, end)}), b AS (SELECT * FROM p)"
    has_tx = ds.has("transactions", "customer_id", "date")
    if has_tx:  # the ledger holders' purchase months, aggregated once for both purchase-based rules
        base += f", ms AS (SELECT customer_id, month AS m, spend_pos AS spend FROM {customer_months(ds, end)})"
    # bal is the balance after the row: a redemption above the balance before it leaves it below zero
    # w: ledger rows behind a flagged line (a member-month line of the purchase-based rules stands for its rows)
    parts = ["SELECT customer_id, 'negative_balance' AS rule, d, bal AS pts, 1 AS w FROM b "
             "WHERE bal < -1e-9 AND k <> 'redeem'",
             "SELECT customer_id, 'redeem_above_balance' AS rule, d, -pts AS pts, 1 AS w FROM b "
             "WHERE k = 'redeem' AND bal < -1e-9",
             f"""SELECT customer_id, 'earn_burst' AS rule, d, pts, 1 AS w FROM (
                   SELECT *, median(abs(dev)) OVER (PARTITION BY customer_id) AS mad FROM (
                     SELECT customer_id, d, pts, ln(pts) - median(ln(pts)) OVER (PARTITION BY customer_id) AS dev,
                            count(*) OVER (PARTITION BY customer_id) AS n_earn
                     FROM p WHERE k = 'earn' AND plain_earn))
                 WHERE n_earn >= {int(min_history)} AND mad > 0 AND dev > {float(burst_z)} * 1.4826 * mad"""]
    if has_tx:  # plain earnings per member-month beside that month's purchases: one join for both purchase rules
        base += """,
    me AS (SELECT customer_id, CAST(date_trunc('month', d) AS DATE) AS m, sum(pts) AS pts, min(d) AS d,
                  count(*) AS w FROM p WHERE k = 'earn' AND plain_earn GROUP BY 1, 2),
    j AS MATERIALIZED (SELECT me.*, ms.customer_id IS NOT NULL AS bought, coalesce(ms.spend, 0) AS spend
                       FROM me LEFT JOIN ms USING (customer_id, m))"""
    if ds.has("transactions", "customer_id", "date", "amount"):
        # with purchases at hand, a burst is earning far above what the month's purchases earn at the
        # programme's usual rate (the median points per unit spent, read from the data)
        parts[-1] = f"""SELECT customer_id, 'earn_burst' AS rule, d, pts, 1 AS w FROM j,
                           (SELECT median(pts / spend) AS r FROM j WHERE spend > 0) rate
                        WHERE spend > 0 AND pts > {float(burst_factor)} * rate.r * spend"""
    checked = {"negative_balance": "", "redeem_above_balance": "" if ds.has("points", "kind") else "no_kinds",
               "earn_burst": "", "earn_without_purchase": "", "shared_contact": "no_contact"}
    if has_tx:
        parts.append("SELECT customer_id, 'earn_without_purchase' AS rule, d, pts, w FROM j WHERE NOT bought")
    else:
        checked["earn_without_purchase"] = "no_transactions"
    if checked["redeem_above_balance"]:
        parts.pop(1)
    flagged = ds.sql(base + ", f AS (" + " UNION ALL ".join(parts) + ") "
                     "SELECT customer_id, rule, min(d) AS first_date, sum(pts) AS points, CAST(sum(w) AS BIGINT) AS rows "
                     "FROM f GROUP BY 1, 2 ORDER BY 2, 1")
    n_accounts = int(ds.sql(f"SELECT count(DISTINCT customer_id) FROM points "
                            f"WHERE CAST(date AS DATE) <= DATE '{end.isoformat()}'").iloc[0, 0])
    counts = pd.DataFrame({"rule": list(RISK_RULES)})
    by = flagged.groupby("rule").agg(accounts=("customer_id", "nunique"), rows=("rows", "sum"))
    counts = counts.join(by, on="rule").fillna({"accounts": 0, "rows": 0})
    counts["checked"] = [checked[r] == "" for r in counts["rule"]]
    counts["reason"] = [checked[r] for r in counts["rule"]]
    counts[["accounts", "rows"]] = counts[["accounts", "rows"]].astype(int)
    accounts = pd.DataFrame({"account": pseudonymise(flagged["customer_id"], key).to_numpy(),
                             "rule": flagged["rule"].to_numpy(),
                             "first_date": pd.to_datetime(flagged["first_date"]).dt.strftime("%Y-%m-%d").to_numpy(),
                             "points": flagged["points"].to_numpy()})
    return RiskFlags(counts, accounts, n_accounts)


# ------------------------------------------------------------------ levels
@dataclass(frozen=True, repr=False)
class Levels(Result):
    """Moves between levels at each review: a transition matrix with intervals, and what followed."""

    heading: ClassVar[str] = "programme.h.levels"
    order: tuple[str, ...]
    transitions: pd.DataFrame  # from_level, to_level (level or "left"), n, share, ci_low, ci_high
    moves: pd.DataFrame  # move (up/same/down), n, active_after, share_active, ci_low, ci_high
    reviews: tuple[dt.date, ...]
    review_source: str  # "data" | "quarters"
    within_reach: pd.DataFrame  # next_level, members (within 10% of its threshold)
    n_members: int
    first_upgrade: dict[str, Any] = field(default_factory=dict)  # median_months, ci_low, ci_high, n, events

    def findings(self, lang: str = "en") -> list[Finding]:
        mv = self.moves.set_index("move")
        out = []
        total = int(mv["n"].sum())
        if total:
            up = int(mv["n"].get("up", 0))
            down = int(mv["n"].get("down", 0))
            out.append(Finding("level_moves", _tr("find.moves", lang, up=fmt_pct(up / total, lang),
                                                  down=fmt_pct(down / total, lang), n=fmt_int(total, lang),
                                                  reviews=len(self.reviews)),
                               value={"up": up, "down": down, "n": total}, how=_tr("how.levels", lang)))
        if {"up", "down"} <= set(mv.index) and mv.loc["up", "n"] and mv.loc["down", "n"]:
            u, d = mv.loc["up"], mv.loc["down"]
            diff = float(u["share_active"] - d["share_active"])
            se = math.sqrt(u["share_active"] * (1 - u["share_active"]) / u["n"]
                           + d["share_active"] * (1 - d["share_active"]) / d["n"])
            out.append(Finding("levels_working", _tr("find.levels_working", lang, up=fmt_pct(u["share_active"], lang),
                                                     down=fmt_pct(d["share_active"], lang)),
                               value=diff, headline=True, interval=(diff - 1.96 * se, diff + 1.96 * se), null=0.0,
                               n=int(u["n"] + d["n"]), value_range=(-1.0, 1.0), how=_tr("how.levels_working", lang)))
        fu = self.first_upgrade
        if fu.get("median_months") is not None and np.isfinite(fu["median_months"]):
            out.append(Finding("first_upgrade", _tr("find.first_upgrade", lang,
                                                    months=fmt_num(fu["median_months"], lang, 1),
                                                    n=fmt_int(fu["n"], lang)),
                               value=fu["median_months"], n=fu["n"], how=_tr("how.first_upgrade", lang)))
        elif fu.get("n"):
            out.append(Finding("first_upgrade", _tr("find.first_upgrade_unreached", lang,
                                                    share=fmt_pct(fu["events"] / fu["n"], lang),
                                                    n=fmt_int(fu["n"], lang)), n=fu["n"]))
        if len(self.within_reach) and self.within_reach["members"].sum():
            top = self.within_reach.sort_values("members", ascending=False).iloc[0]
            out.append(Finding("within_reach", _tr("find.within_reach", lang, n=fmt_int(top["members"], lang),
                                                   level=top["next_level"]),
                               value=int(self.within_reach["members"].sum()), action=_tr("action.within_reach", lang)))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        tr_ = self.transitions
        cols = list(self.order) + ["left"]
        z = tr_.pivot(index="from_level", columns="to_level", values="share").reindex(index=list(self.order), columns=cols)
        n = tr_.pivot(index="from_level", columns="to_level", values="n").reindex(index=list(self.order), columns=cols)
        labels = [c if c != "left" else _tr("levels.left", lang) for c in cols]
        text = [[("" if pd.isna(s) else f"{fmt_pct(s, lang)}<br>n={fmt_int(k, lang)}") for s, k in zip(zr, nr, strict=True)]
                for zr, nr in zip(z.to_numpy(), n.fillna(0).to_numpy(), strict=True)]
        fig = go.Figure(go.Heatmap(z=z.to_numpy(), x=labels, y=list(self.order), text=text, texttemplate="%{text}",
                                   colorscale="Blues", zmin=0, zmax=1, showscale=False))
        fig.update_layout(title=_tr("levels.title", lang), xaxis_title=_tr("levels.to", lang),
                          yaxis_title=_tr("levels.from", lang), yaxis=dict(autorange="reversed"),
                          height=160 + 60 * len(self.order))
        return [fig]

    def tables(self, lang: str = "en") -> list[Table]:
        m = self.moves.assign(move=[_tr(f"levels.{x}", lang) for x in self.moves["move"]])
        cols = {"move": _tr("col.move", lang), "n": _tr("col.members", lang),
                "share_active": _tr("col.active_after", lang)}
        fmt = {cols["n"]: lambda v: fmt_int(v, lang), cols["share_active"]: lambda v: fmt_pct(v, lang)}
        return [Table(m[list(cols)].rename(columns=cols), fmt, caption=_tr("caption.moves", lang), appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        return [_tr(f"levels.reviews_{self.review_source}", lang, n=len(self.reviews))]

    def metrics(self) -> dict[str, Any]:
        return {"level_transitions": self.transitions, "level_moves": self.moves,
                "level_reviews": [r.isoformat() for r in self.reviews], "level_order": list(self.order),
                "levels_within_reach": self.within_reach, "time_to_first_upgrade": self.first_upgrade}


def _review_dates(changes: pd.Series, lo: dt.date, hi: dt.date) -> tuple[list[dt.date], str]:
    """Review dates: the dates that carry most level changes when the programme reviews on fixed days,
    else calendar quarter starts."""
    counts = pd.to_datetime(changes).dt.date.value_counts()
    if counts.sum() >= 20:
        big = counts[counts >= max(0.01 * counts.sum(), 5)]
        if big.sum() >= 0.8 * counts.sum() and len(big) >= 2:
            return sorted(d for d in big.index if lo <= d <= hi), "data"
    q = pd.date_range(pd.Timestamp(lo).to_period("Q").start_time, pd.Timestamp(hi), freq="QS")
    return [d.date() for d in q if lo <= d.date() <= hi], "quarters"


@analysis("programme.h.levels")
def levels(ds: Dataset, end: dt.date, active_days: int = 90, thresholds: dict[str, float] | None = None,
           window_months: int = 6, reach: float = 0.10) -> Levels:
    """Level transitions between consecutive reviews (members conserved: every member at a review is in
    one row, as a level or "left"), whether upgraded members stay active more than demoted ones, and
    members within ``reach`` of the next level's spend threshold (``thresholds`` from
    ``[programme.level_thresholds]``; trailing ``window_months`` spend)."""
    ds.require("members", "customer_id", "joined_at", "level")
    if not ds.has("members", "level_changed_at"):
        raise NotEstimable("no_levels", table="members")
    left = "CAST(left_at AS DATE)" if ds.has("members", "left_at") else "NULL::DATE"
    spells = ds.sql(f"""
        SELECT customer_id, level, coalesce(CAST(level_changed_at AS DATE), CAST(joined_at AS DATE)) AS since,
               CAST(joined_at AS DATE) AS joined, {left} AS left_at
        FROM members WHERE CAST(joined_at AS DATE) <= DATE '{end.isoformat()}'""")
    for c in ("since", "joined", "left_at"):
        spells[c] = pd.to_datetime(spells[c])
    spells = spells[spells["since"] <= pd.Timestamp(end)]
    changes = spells.loc[spells["since"] != spells["joined"], "since"]
    if changes.empty:
        raise NotEstimable("no_levels", table="members")
    reviews, source = _review_dates(changes, spells["joined"].min().date(), end)
    if len(reviews) < 2:
        raise NotEstimable("no_levels", table="members")
    order = tuple(_level_order(ds, sorted(spells["level"].dropna().unique()), end))
    rank = {lv: i for i, lv in enumerate(order)}
    spells = spells.sort_values(["customer_id", "since"])
    from workbench.io import quote_str
    from workbench.loyalty import wilson

    # each member's level at each review (as-of join in the engine), kept when a member on that day
    rv = ", ".join(f"({i}, DATE '{d.isoformat()}')" for i, d in enumerate(reviews))
    with _temp_table(ds, f"""
        WITH sp AS (SELECT customer_id, level, {_since_sql(ds)} AS since, CAST(joined_at AS DATE) AS joined,
                           {left} AS left_at
                    FROM members WHERE CAST(joined_at AS DATE) <= DATE '{end.isoformat()}'
                    AND {_since_sql(ds)} <= DATE '{end.isoformat()}'),
        cust AS (SELECT customer_id, min(joined) AS joined, max(left_at) AS left_at FROM sp GROUP BY 1),
        rv(i, day) AS (VALUES {rv}),
        st AS (SELECT rv.i, rv.day, sp.customer_id, arg_max(sp.level, sp.since) AS level
               FROM rv JOIN sp ON sp.since <= rv.day GROUP BY 1, 2, 3)
        SELECT st.* FROM st JOIN cust USING (customer_id)
        WHERE cust.joined <= st.day AND (cust.left_at IS NULL OR cust.left_at > st.day)""") as act:
        # consecutive reviews: the level at the later one, or "left" (members conserved)
        pairs_sql = f"""SELECT a.customer_id, a.level AS from_level, coalesce(b.level, 'left') AS to_level,
                              rv.day AS review
                       FROM {act} a JOIN (VALUES {rv}) rv(i, day) ON rv.i = a.i + 1
                       LEFT JOIN {act} b ON b.customer_id = a.customer_id AND b.i = a.i + 1"""
        with _temp_table(ds, pairs_sql) as pairs:  # read three times below: built once
            counts = ds.sql(f"SELECT from_level, to_level, count(*) AS n FROM {pairs} GROUP BY 1, 2")
            n_members = int(ds.sql(f"SELECT count(DISTINCT customer_id) FROM {pairs}").iloc[0, 0])
            rk = ", ".join(f"({quote_str(str(lv))}, {i})" for i, lv in enumerate(order))
            stayed = f"""(SELECT p.customer_id, p.review,
                                 CASE WHEN t.r > f.r THEN 'up' WHEN t.r < f.r THEN 'down' ELSE 'same' END AS move
                          FROM {pairs} p LEFT JOIN (VALUES {rk}) f(level, r) ON f.level = p.from_level
                          LEFT JOIN (VALUES {rk}) t(level, r) ON t.level = p.to_level WHERE p.to_level <> 'left')"""
            moves = _active_after(ds, stayed, active_days, end)
            current = ds.sql(f"SELECT customer_id, level FROM {act} WHERE i = {len(reviews) - 1}").set_index(
                "customer_id")["level"]
    counts = counts.sort_values(["from_level", "to_level"]).reset_index(drop=True)
    counts["row_n"] = counts.groupby("from_level")["n"].transform("sum")
    counts["share"] = counts["n"] / counts["row_n"]
    counts["ci_low"], counts["ci_high"] = wilson(counts["n"], counts["row_n"])
    reach_tab = _within_reach(ds, current, reviews[-1], end, order, thresholds or settings(ds).level_thresholds,
                              window_months, reach)
    return Levels(order, counts.drop(columns="row_n"), moves, tuple(reviews), source, reach_tab,
                  n_members, _first_upgrade(spells, rank, end))


def _first_upgrade(spells: pd.DataFrame, rank: dict[str, int], end: dt.date) -> dict[str, Any]:
    """Months from joining to the first move above the joining level: Kaplan–Meier median (95% interval),
    censored at leaving or ``end``."""
    from statsmodels.duration.survfunc import SurvfuncRight

    s = spells.assign(r=spells["level"].map(rank))
    first = s.groupby("customer_id").agg(joined=("joined", "min"), left_at=("left_at", "max"))
    start_rank = s.sort_values("since").groupby("customer_id")["r"].first()
    s = s.join(start_rank.rename("r0"), on="customer_id")
    up = s[s["r"] > s["r0"]].groupby("customer_id")["since"].min()
    first["up"] = up
    stop = first["left_at"].where(first["left_at"].notna(), pd.Timestamp(end)).clip(upper=pd.Timestamp(end))
    event = first["up"].notna() & (first["up"] <= stop)
    t = (first["up"].where(event, stop) - first["joined"]).dt.days / 30.4375
    ok = t > 0
    if ok.sum() < 2:
        return {}
    sf = SurvfuncRight(t[ok].to_numpy(), event[ok].astype(int).to_numpy())
    med = float(sf.quantile(0.5))
    try:
        lo, hi = sf.quantile_ci(0.5)
    except Exception:  # noqa: BLE001 - statsmodels raises when the interval is unbounded
        lo, hi = np.nan, np.nan
    return {"median_months": med if np.isfinite(med) else None, "ci_low": lo, "ci_high": hi,
            "n": int(ok.sum()), "events": int(event[ok].sum())}


def _active_after(ds: Dataset, stayed: str, days: int, end: dt.date) -> pd.DataFrame:
    """Share of members with a purchase within ``days`` after each review (purchases to ``end``), by move
    (Wilson interval).

    ``stayed``: SQL relation of (customer_id, review, move). Windows of 32 days or more are read from the
    shared customer-month aggregate; shorter ones from an as-of join on the members' purchase dates.
    """
    from workbench.loyalty import wilson

    got = pd.DataFrame({"move": pd.Series(dtype=str), "n": pd.Series(dtype=int), "active_after": pd.Series(dtype=int)})
    if ds.has("transactions", "customer_id", "date") and days >= 32:
        # the window [review, review + days) spans two or more months. The first month (of the shared
        # customer-month aggregate) with a purchase on or after the review: the review's own month (that
        # purchase lies inside the window) or a later one, whose first purchase day decides (exact)
        got = ds.sql(f"""
            WITH cm AS (SELECT customer_id, month, first_day, last_day FROM {customer_months(ds, end)}
                        WHERE customer_id IN (SELECT customer_id FROM members)),
            st AS (SELECT customer_id, review, move FROM {stayed} s0),
            -- any such month decides as the first one would (a later one starts after the first ends)
            hit AS (SELECT DISTINCT s.customer_id, s.review FROM st s JOIN cm ON s.customer_id = cm.customer_id
                    AND s.review <= cm.last_day AND (cm.month = CAST(date_trunc('month', s.review) AS DATE)
                                                     OR cm.first_day < CAST(s.review AS DATE) + INTERVAL {int(days)} DAY))
            SELECT s.move, count(*) AS n, count(h.customer_id) AS active_after
            FROM st s LEFT JOIN hit h ON h.customer_id = s.customer_id AND h.review = s.review GROUP BY 1""")
    elif ds.has("transactions", "customer_id", "date"):
        got = ds.sql(f"""
            WITH tx AS (SELECT customer_id, CAST(date AS DATE) AS d FROM transactions
                        WHERE customer_id IN (SELECT customer_id FROM members) AND date IS NOT NULL
                        AND CAST(date AS DATE) <= DATE '{end.isoformat()}'),
            st AS (SELECT customer_id, review, move FROM {stayed} s0),
            hit AS (SELECT DISTINCT s.customer_id, s.review FROM st s JOIN tx ON s.customer_id = tx.customer_id
                    AND s.review <= tx.d AND tx.d < CAST(s.review AS DATE) + INTERVAL {int(days)} DAY)
            SELECT s.move, count(*) AS n, count(h.customer_id) AS active_after
            FROM st s LEFT JOIN hit h ON h.customer_id = s.customer_id AND h.review = s.review GROUP BY 1""")
    if got.empty:
        return pd.DataFrame({"move": ["up", "same", "down"], "n": 0, "active_after": 0,
                             "share_active": np.nan, "ci_low": np.nan, "ci_high": np.nan})
    got = got.set_index("move").reindex(["up", "same", "down"]).fillna(0).reset_index()
    got[["n", "active_after"]] = got[["n", "active_after"]].astype(int)
    got["share_active"] = np.where(got["n"] > 0, got["active_after"] / got["n"].where(got["n"] > 0, 1), np.nan)
    got["ci_low"], got["ci_high"] = wilson(got["active_after"], got["n"])
    return got


def _within_reach(ds: Dataset, current: pd.Series, review: dt.date, end: dt.date, order: tuple[str, ...],
                  thresholds: dict[str, float], window_months: int, reach: float) -> pd.DataFrame:
    """Members whose trailing spend is within ``reach`` (share) below the next level's threshold."""
    empty = pd.DataFrame({"next_level": pd.Series(dtype=str), "members": pd.Series(dtype=int)})
    if not thresholds or not ds.has("transactions", "customer_id", "amount") or current.empty:
        return empty
    lo = months_back(end, window_months - 1)
    spend = ds.sql(f"""SELECT customer_id, sum(spend) AS spend FROM {customer_months(ds, end)}
                       WHERE month >= DATE '{lo.isoformat()}' AND customer_id IN (SELECT customer_id FROM members)
                       GROUP BY 1""").set_index("customer_id")["spend"]
    nxt = {lv: order[i + 1] for i, lv in enumerate(order[:-1]) if order[i + 1] in thresholds}
    target = current.map(nxt)
    thr = target.map(thresholds)
    s = spend.reindex(current.index).fillna(0.0)
    close = thr.notna() & (s < thr) & (s >= (1 - reach) * thr)
    if not close.any():
        return empty
    return target[close].value_counts().rename_axis("next_level").rename("members").reset_index()


# ------------------------------------------------------------------ ROI
@dataclass(frozen=True, repr=False)
class ROI(Result):
    """Incremental gross profit from the member effect against the programme's costs."""

    heading: ClassVar[str] = "programme.h.roi"
    incremental_profit: float
    profit_ci: tuple[float, float]
    costs: pd.DataFrame  # line, amount (window)
    redemption_cost: float | None
    roi: float
    roi_ci: tuple[float, float]
    by_level: pd.DataFrame  # level, member_profit, incremental_profit, ci_low, ci_high
    window: tuple[dt.date, dt.date]
    currency: str
    n_members: int

    @property
    def total_cost(self) -> float:
        return float(self.costs["amount"].sum())

    def findings(self, lang: str = "en") -> list[Finding]:
        m = lambda v: fmt_money(v, lang, self.currency)  # noqa: E731
        text = _tr("find.roi", lang, roi=fmt_pct(self.roi, lang), lo=fmt_pct(self.roi_ci[0], lang),
                   hi=fmt_pct(self.roi_ci[1], lang), profit=m(self.incremental_profit), cost=m(self.total_cost),
                   start=self.window[0].isoformat(), end=self.window[1].isoformat())
        return [Finding("roi", text, value=self.roi, headline=True, interval=self.roi_ci, null=0.0, n=self.n_members,
                        how=_tr("how.roi", lang), action=_tr("action.roi_pos" if self.roi_ci[0] > 0 else
                                                             "action.roi_neg" if self.roi_ci[1] < 0 else
                                                             "action.roi_unclear", lang))]

    def figures(self, lang: str = "en") -> list[Any]:
        names = [_tr(f"cost.{c}", lang) if has(f"programme.cost.{c}") else c for c in self.costs["line"]]
        fig = go.Figure()
        fig.add_trace(go.Bar(y=names, x=self.costs["amount"], orientation="h", name=_tr("roi.costs", lang),
                             marker_color=viz.PALETTE[3]))
        fig.add_trace(go.Bar(y=[_tr("roi.incremental", lang)], x=[self.incremental_profit], orientation="h",
                             name=_tr("roi.incremental", lang), marker_color=viz.PALETTE[2],
                             error_x=dict(type="data", symmetric=False,
                                          array=[self.profit_ci[1] - self.incremental_profit],
                                          arrayminus=[self.incremental_profit - self.profit_ci[0]])))
        fig.update_layout(title=_tr("roi.title", lang), xaxis_title=self.currency, barmode="group",
                          height=160 + 40 * (len(names) + 1), yaxis=dict(autorange="reversed"))
        return [fig]

    def tables(self, lang: str = "en") -> list[Table]:
        if self.by_level.empty:
            return []
        cols = {"level": _tr("col.level", lang), "incremental_profit": _tr("col.incremental", lang),
                "ci_low": t("core.ci95", lang) + " −", "ci_high": t("core.ci95", lang) + " +"}
        f = {v: (lambda x, lang=lang: fmt_money(x, lang, self.currency)) for k, v in cols.items() if k != "level"}
        return [Table(self.by_level[list(cols)].rename(columns=cols), f, caption=_tr("caption.roi_level", lang),
                      appendix=True)]

    def kpis(self, lang: str = "en") -> list[KPI]:
        return [KPI("programme_roi", _tr("kpi.roi", lang), self.roi, "share", n=self.n_members, interval=self.roi_ci,
                    better="higher", how=_tr("how.roi", lang))]

    def metrics(self) -> dict[str, Any]:
        return {"programme_roi": {"roi": self.roi, "ci_low": self.roi_ci[0], "ci_high": self.roi_ci[1],
                                  "incremental_profit": self.incremental_profit,
                                  "profit_ci": list(self.profit_ci), "total_cost": self.total_cost,
                                  "redemption_cost": self.redemption_cost, "costs": self.costs,
                                  "window": [self.window[0].isoformat(), self.window[1].isoformat()],
                                  "by_level": self.by_level}}


def roi_from_effect(member_profit: float, effect: float, ci: tuple[float, float], cost: float) -> dict[str, float]:
    """ROI arithmetic: members' profit after joining includes the effect, so the incremental part is
    ``profit × (1 − 1/effect)``; ROI = (incremental − cost) / cost. Monotone in the effect, so the
    interval's ends map to the ROI interval's ends."""
    inc = member_profit * (1 - 1 / effect)
    lo, hi = member_profit * (1 - 1 / ci[0]), member_profit * (1 - 1 / ci[1])
    return {"incremental": inc, "inc_lo": lo, "inc_hi": hi, "roi": (inc - cost) / cost,
            "roi_lo": (lo - cost) / cost, "roi_hi": (hi - cost) / cost}


def _redeemed_points(ds: Dataset, start: dt.date, end: dt.date) -> float:
    """Points redeemed (ledger rows of a redemption kind) from ``start`` to ``end``."""
    return float(ds.sql(f"""SELECT coalesce(sum(-pts), 0) FROM {points_ledger(ds, end)}
                            WHERE d >= DATE '{start.isoformat()}' AND k = 'redeem'""").iloc[0, 0])


def _member_profit(ds: Dataset, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Members' gross margin after their join day, from ``start`` to ``end``, by latest level (``level``,
    ``profit``, ``n`` members buying)."""
    return ds.sql(f"""
    WITH {_members_cte(ds, end)}
    SELECT mem.level, sum(t.post_margin) AS profit, count(DISTINCT t.customer_id) AS n
    FROM {customer_months(ds, end)} t JOIN mem USING (customer_id)
    WHERE t.post_n > 0 AND t.month >= DATE '{start.isoformat()}' GROUP BY 1 ORDER BY 1""")


@analysis("programme.h.roi")
def roi(ds: Dataset, effect: MemberEffect, end: dt.date, costs: dict[str, float] | None = None,
        point_value: float | None = None, months: int = 12) -> ROI:
    """Programme ROI over the ``months`` to ``end``: incremental gross profit (members' post-join margin ×
    (1 − 1/effect)) against the cost lines (annual amounts from ``[programme.costs]``, prorated) plus
    the cost of points redeemed in the window at ``point_value``."""
    from workbench.results import unwrap

    effect = unwrap(effect)
    if effect.skipped:
        raise effect.cause  # type: ignore[attr-defined]
    lines = dict(costs or {})
    if not lines and point_value is None:
        raise NotEstimable("no_costs", table="points")
    if not ds.has("transactions", "margin"):
        raise NotEstimable("no_margin", table="transactions")
    start = months_back(end, months - 1)
    factor = months / 12
    rows = [{"line": k, "amount": float(v) * factor} for k, v in lines.items()]
    redemption = None
    if point_value is not None and ds.has("points", "points"):
        redemption = _redeemed_points(ds, start, end) * float(point_value)
        rows.append({"line": "points_redeemed", "amount": redemption})
    cost_tab = pd.DataFrame(rows)
    total = float(cost_tab["amount"].sum())
    if total <= 0:
        raise NotEstimable("no_costs", table="points")
    prof = _member_profit(ds, start, end)
    member_profit = float(prof["profit"].sum())
    r = roi_from_effect(member_profit, effect.effect, effect.ci, total)
    by_level = prof.assign(member_profit=prof["profit"],
                           incremental_profit=prof["profit"] * (1 - 1 / effect.effect),
                           ci_low=prof["profit"] * (1 - 1 / effect.ci[0]),
                           ci_high=prof["profit"] * (1 - 1 / effect.ci[1]))[
        ["level", "member_profit", "incremental_profit", "ci_low", "ci_high"]]
    order = _level_order(ds, [str(x) for x in by_level["level"]], end) if ds.has("members", "level") else []
    by_level = by_level.set_index("level").reindex(order or list(by_level["level"])).reset_index()
    return ROI(r["incremental"], (r["inc_lo"], r["inc_hi"]), cost_tab, redemption, r["roi"], (r["roi_lo"], r["roi_hi"]),
               by_level, (start, end), ds.currency, int(prof["n"].sum()))


# ------------------------------------------------------------------ live controls
@dataclass(frozen=True, repr=False)
class CostExplorer(Result):
    """Live controls (JupyterLab): point value and cost lines, with liability and ROI recomputed at once."""

    heading: ClassVar[str] = "programme.h.explore"
    interactive_only: ClassVar[bool] = True
    outstanding: float
    redeemed_points: float
    member_profit: float
    effect: float
    ci: tuple[float, float]
    point_value: float
    costs: dict[str, float]
    months: int
    currency: str

    def compute(self, point_value: float, costs: dict[str, float]) -> dict[str, float]:
        """Liability and ROI for a point value and annual cost lines (the same arithmetic as :func:`roi`)."""
        total = sum(costs.values()) * self.months / 12 + self.redeemed_points * point_value
        out = {"liability": self.outstanding * point_value, "cost": total}
        if total > 0:
            out.update(roi_from_effect(self.member_profit, self.effect, self.ci, total))
        return out

    def widget(self, lang: str = "en") -> Any:
        import ipywidgets as w

        pv = w.FloatText(value=self.point_value, description=_tr("w.point_value", lang), step=0.001)
        lines = {k: w.FloatText(value=v, description=_tr(f"cost.{k}", lang) if has(f"programme.cost.{k}") else k)
                 for k, v in self.costs.items()}
        out = w.HTML()

        def redraw(_: Any = None) -> None:
            got = self.compute(pv.value, {k: c.value for k, c in lines.items()})
            m = lambda v: fmt_money(v, lang, self.currency)  # noqa: E731
            roi_text = (_tr("w.roi", lang, roi=fmt_pct(got["roi"], lang), lo=fmt_pct(got["roi_lo"], lang),
                            hi=fmt_pct(got["roi_hi"], lang)) if "roi" in got else _tr("why.no_costs", lang))
            out.value = (f"<p>{_tr('w.liability', lang, money=m(got['liability']))}<br>"
                         f"{_tr('w.cost', lang, money=m(got['cost']))}<br>{roi_text}</p>")

        for c in [pv, *lines.values()]:
            c.style.description_width = "initial"
            c.observe(redraw, names="value")
        redraw()
        return w.VBox([pv, *lines.values(), out])


@analysis("programme.h.explore", interactive=True)
def explorer(ds: Dataset, flow: Result, effect: Result, end: dt.date, point_value: float | None = None,
             costs: dict[str, float] | None = None, months: int = 12) -> CostExplorer:
    """Inputs for the live point-value / cost controls, from the points and member-effect results."""
    from workbench.results import unwrap

    flow, effect = unwrap(flow), unwrap(effect)
    for r in (flow, effect):
        if r.skipped:
            raise r.cause  # type: ignore[attr-defined]
    start = months_back(end, months - 1)
    redeemed = _redeemed_points(ds, start, end)
    profit = float(_member_profit(ds, start, end)["profit"].sum()) if ds.has("transactions", "margin") else 0.0
    return CostExplorer(flow.outstanding, redeemed, profit, effect.effect, effect.ci, float(point_value or 0.0),
                        dict(costs or {}), months, ds.currency)


# ------------------------------------------------------------------ scorecard
SCORECARD = ("retention", "frequency", "amount", "repeat_rate", "renewal", "satisfaction", "recommend")
_SHARES = {"retention", "repeat_rate", "renewal", "satisfaction"}


@dataclass(frozen=True, repr=False)
class Scorecard(Result):
    """The texts' programme indicators, members beside other customers, over one window."""

    heading: ClassVar[str] = "programme.h.scorecard"
    table: pd.DataFrame  # indicator, group (members/others), value, ci_low, ci_high, n
    window: tuple[dt.date, dt.date]
    currency: str

    def _row(self, indicator: str, group: str) -> pd.Series | None:
        got = self.table[(self.table["indicator"] == indicator) & (self.table["group"] == group)]
        return None if got.empty or pd.isna(got["value"].iloc[0]) else got.iloc[0]

    def _fmt(self, indicator: str, v: float, lang: str) -> str:
        if indicator in _SHARES:
            return fmt_pct(v, lang)
        if indicator == "amount":
            return fmt_money(v, lang, self.currency)
        return fmt_num(v, lang, 1)

    def findings(self, lang: str = "en") -> list[Finding]:
        m, o = self._row("retention", "members"), self._row("retention", "others")
        if m is None:
            return []
        text = _tr("find.scorecard", lang, members=fmt_pct(m["value"], lang),
                   others=fmt_pct(o["value"], lang) if o is not None else "–", start=self.window[0].isoformat(),
                   end=self.window[1].isoformat())
        return [Finding("scorecard", text, value=float(m["value"]), n=int(m["n"]), how=_tr("how.scorecard", lang))]

    def tables(self, lang: str = "en") -> list[Table]:
        rows = []
        for ind in SCORECARD:
            m, o = self._row(ind, "members"), self._row(ind, "others")
            if m is None and o is None:
                continue
            cell = lambda r, ind=ind: ("–" if r is None else  # noqa: E731
                                       f"{self._fmt(ind, r['value'], lang)} ({self._fmt(ind, r['ci_low'], lang)}–"
                                       f"{self._fmt(ind, r['ci_high'], lang)}; {t('core.n', lang)} {fmt_int(r['n'], lang)})")
            rows.append({_tr("col.indicator", lang): _tr(f"score.{ind}", lang), _tr("col.members_group", lang): cell(m),
                         _tr("col.others_group", lang): cell(o)})
        return [Table(pd.DataFrame(rows), caption=_tr("caption.scorecard", lang))] if rows else []

    def notes(self, lang: str = "en") -> list[str]:
        return [_tr("note.scorecard", lang)]

    def kpis(self, lang: str = "en") -> list[KPI]:
        out = []
        for ind in ("retention", "repeat_rate", "renewal"):
            r = self._row(ind, "members")
            if r is not None:
                out.append(KPI(f"member_{ind}", _tr(f"kpi.member_{ind}", lang), float(r["value"]), "share", n=int(r["n"]),
                               interval=(float(r["ci_low"]), float(r["ci_high"])), better="higher",
                               how=_tr("how.scorecard", lang)))
        return out

    def metrics(self) -> dict[str, Any]:
        return {"programme_scorecard": self.table,
                "programme_scorecard_window": [self.window[0].isoformat(), self.window[1].isoformat()]}


@analysis("programme.h.scorecard")
def scorecard(ds: Dataset, end: dt.date, months: int = 12) -> Scorecard:
    """Members (at the window start) against other customers over the ``months`` to ``end``.

    Retention: of the customers who bought in the ``months`` before the window, the share who bought in
    it. Frequency: purchases per buying customer; amount: spend per purchase (per-customer averages);
    repeat-visit rate: buyers with two or more purchases; renewal: members at the window start still
    members at its end; satisfaction: top-box share, recommend: mean, of survey answers in the window.
    Shares with Wilson intervals, means with t intervals. Descriptive: members differ from others
    before they join (see the member-effect section).
    """
    ds.require("members", "customer_id", "joined_at")
    ds.require("transactions", "customer_id", "date")
    from workbench.loyalty import box_cuts, mean_ci, wilson

    start = months_back(end, months - 1)
    prev = months_back(start, months)
    s, e, p = start.isoformat(), end.isoformat(), prev.isoformat()
    cm = customer_months(ds, end)
    per = ds.sql(f"""
    WITH {_members_cte(ds)},
    w AS (SELECT customer_id, CAST(sum(n) AS BIGINT) AS n, sum(spend) AS spend FROM {cm} WHERE month >= DATE '{s}' GROUP BY 1),
    b AS (SELECT DISTINCT customer_id FROM {cm} WHERE month >= DATE '{p}' AND month < DATE '{s}'),
    pop AS (SELECT customer_id FROM w UNION SELECT customer_id FROM b)
    SELECT pop.customer_id IN (SELECT customer_id FROM b) AS before, coalesce(w.n, 0) AS n, w.spend,
           mem.joined IS NOT NULL AND mem.joined < DATE '{s}' AND (mem.left_at IS NULL OR mem.left_at >= DATE '{s}')
               AS member,
           mem.joined IS NOT NULL AND mem.joined < DATE '{s}' AND (mem.left_at IS NULL OR mem.left_at >= DATE '{s}')
               AND (mem.left_at IS NULL OR mem.left_at > DATE '{e}') AS renewed
    FROM pop LEFT JOIN w USING (customer_id) LEFT JOIN mem USING (customer_id)""")
    rows = []

    def share(ind: str, grp: str, k: int, n: int) -> None:
        lo, hi = wilson(k, n)
        rows.append({"indicator": ind, "group": grp, "value": k / n if n else np.nan, "ci_low": float(lo),
                     "ci_high": float(hi), "n": int(n)})

    def mean(ind: str, grp: str, x: pd.Series) -> None:
        m, lo, hi, n = mean_ci(x)
        rows.append({"indicator": ind, "group": grp, "value": m, "ci_low": lo, "ci_high": hi, "n": int(n)})

    for grp, sel in (("members", per["member"]), ("others", ~per["member"])):
        g = per[sel]
        before = g[g["before"]]
        share("retention", grp, int((before["n"] > 0).sum()), len(before))
        buyers = g[g["n"] > 0]
        mean("frequency", grp, buyers["n"])
        if ds.has("transactions", "amount"):
            mean("amount", grp, buyers["spend"] / buyers["n"])
        share("repeat_rate", grp, int((buyers["n"] >= 2).sum()), len(buyers))
        if grp == "members":
            share("renewal", grp, int(g["renewed"].sum()), len(g))
    if ds.has("surveys", "customer_id", "date"):
        cols = [c for c in ("satisfaction", "recommend") if ds.has("surveys", c)]
        if cols:
            sv = ds.sql(f"""
            WITH {_members_cte(ds)}
            SELECT {', '.join('s.' + c for c in cols)},
                   mem.joined IS NOT NULL AND mem.joined <= CAST(s.date AS DATE)
                   AND (mem.left_at IS NULL OR mem.left_at > CAST(s.date AS DATE)) AS member
            FROM surveys s LEFT JOIN mem USING (customer_id)
            WHERE CAST(s.date AS DATE) BETWEEN DATE '{s}' AND DATE '{e}'""")
            for grp, sel in (("members", sv["member"]), ("others", ~sv["member"])):
                g = sv[sel]
                if "satisfaction" in cols:
                    lo, hi = ds.scale("surveys", "satisfaction")
                    x = g["satisfaction"].dropna()
                    share("satisfaction", grp, int((x >= box_cuts(lo, hi)[1]).sum()), len(x))
                if "recommend" in cols:
                    mean("recommend", grp, g["recommend"])
    return Scorecard(pd.DataFrame(rows), (start, end), ds.currency)


# ------------------------------------------------------------------ members' churn hazard (issue 15 item 4)
@dataclass(frozen=True, repr=False)
class MemberChurn(Result):
    """Members' churn hazard after joining, net of self-selection, beside the naive members-vs-others churn."""

    heading: ClassVar[str] = "lifecycle.h.member_churn"
    hr: float  # hazard ratio after joining (time-varying membership, adjusted)
    ci: tuple[float, float]
    p: float
    n: int  # customers at risk from the landmark
    events: int
    members: int  # customers with a membership spell in the model
    naive: pd.DataFrame  # group (members/others), n, lost, share, low, high
    terms: pd.DataFrame  # the full model: term, hr, low, high, p
    source: str  # churned_at | transactions
    landmark_days: int

    def findings(self, lang: str = "en") -> list[Finding]:
        out = [Finding("member_churn_adjusted", t("lifecycle.find.member_churn", lang, hr=fmt_num(self.hr, lang, 2),
                                                  lo=fmt_num(self.ci[0], lang, 2), hi=fmt_num(self.ci[1], lang, 2)),
                       value=self.hr, interval=self.ci, null=1.0, n=self.n, headline=True,
                       how=t("lifecycle.how.member_churn", lang, n=fmt_int(self.n, lang),
                             events=fmt_int(self.events, lang), members=fmt_int(self.members, lang),
                             landmark=self.landmark_days, p=fmt_num(self.p, lang, 4)))]
        nv = self.naive.set_index("group")
        if {"members", "others"} <= set(nv.index):
            out.append(Finding("member_churn_naive", t("lifecycle.find.member_churn_naive", lang,
                                                       members=fmt_pct(nv.at["members", "share"], lang),
                                                       others=fmt_pct(nv.at["others", "share"], lang)),
                               value=float(nv.at["members", "share"] - nv.at["others", "share"]),
                               n=int(nv["n"].sum())))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        tab = self.naive.copy()
        tab["group"] = [t(f"lifecycle.mchurn.{g}", lang) for g in tab["group"]]
        tab.columns = [t(f"lifecycle.mchurn.col.{c}", lang) for c in tab.columns]
        pct = {c: (lambda v: fmt_pct(v, lang)) for c in tab.columns[3:]}
        return [Table(tab, pct, caption=t("lifecycle.mchurn.cap", lang))]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("lifecycle.note.member_churn", lang, landmark=self.landmark_days), t("core.associational", lang)]

    def metrics(self) -> dict[str, Any]:
        nv = self.naive.to_dict(orient="records")
        return {"member_churn_hr": {"hr": self.hr, "ci_low": self.ci[0], "ci_high": self.ci[1], "p": self.p,
                                    "n": self.n, "events": self.events, "members": self.members,
                                    "source": self.source, "landmark_days": self.landmark_days,
                                    "method": "cox_time_varying_membership_adjusted_pre_join_activity",
                                    "naive": nv}}


@analysis("lifecycle.h.member_churn")
def member_churn(ds: Dataset, end: dt.date, horizon_days: int | None = None, landmark_days: int = 90) -> MemberChurn:
    """Churn hazard after joining the programme, net of self-selection, beside the naive churn shares.

    Members self-select (busier, happier customers join), so the naive members-vs-others churn gap is
    mostly selection. The adjusted estimate is the ``member`` term of the lifecycle Cox model
    (:func:`workbench.lifecycle.cox_data`): membership is time-varying (0 before ``joined_at``, 1 from it,
    start/stop form, so the time before joining counts as non-member time and no member is "immortal"),
    adjusted for activity and channels measured in the first ``landmark_days`` after the first purchase
    (before joining for customers who join later), segment, unresolved complaints and survey answers.
    Churn is ``customers.churned_at`` where the export has it, else the lifecycle horizon rule
    (``horizon_days``; ``None`` = the 90% quantile of purchase gaps).
    """
    from workbench import lifecycle as lc

    ds.require("members", "customer_id", "joined_at", reason="members' churn hazard")
    end = lc._day(end)
    if horizon_days is None:
        horizon_days = lc.resolve_horizon(ds, end)
    horizon_days = lc._need(horizon_days, ds)
    ep, names = lc.cox_data(ds, end, horizon_days, landmark_days)
    if "member" not in names:
        raise lc.Unsupported("no_members")
    res = lc._fit(lambda: lc.ph_fit(ep["stop"].to_numpy(), ep[names].to_numpy(float), ep["status"].to_numpy(),
                                    entry=ep["start"].to_numpy(), ties="efron"))
    ci = np.exp(res.conf_int())
    terms = pd.DataFrame({"term": names, "hr": np.exp(res.params), "low": ci[:, 0], "high": ci[:, 1],
                          "p": res.pvalues})
    j = names.index("member")
    sf = lc.survival_frame(ds, end, horizon_days)
    joined = ds.sql(f"SELECT DISTINCT customer_id FROM members WHERE joined_at <= {lc._lit(end)}")["customer_id"]
    grp = np.where(sf.index.isin(joined), "members", "others")
    rows = []
    for g in ("members", "others"):
        ev = sf["event"].to_numpy()[grp == g]
        lo, hi = lc._wilson(int(ev.sum()), int(ev.size))
        rows.append({"group": g, "n": int(ev.size), "lost": int(ev.sum()),
                     "share": float(ev.mean()) if ev.size else math.nan, "low": lo, "high": hi})
    members = int(ep.loc[ep["member"] > 0, "customer_id"].nunique())
    return MemberChurn(float(np.exp(res.params[j])), (float(ci[j, 0]), float(ci[j, 1])), float(res.pvalues[j]),
                       int(ep.attrs["n"]), int(ep.attrs["events"]), members, pd.DataFrame(rows), terms,
                       sf.attrs["source"], int(landmark_days))
