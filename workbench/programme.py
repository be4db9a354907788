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
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import viz
from workbench.engine import Dataset, MissingDataError
from workbench.i18n import fmt_int, fmt_money, fmt_num, fmt_pct, t
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


def _month(d: dt.date) -> dt.date:
    return d.replace(day=1)


def _add_months(d: dt.date, n: int) -> dt.date:
    y, m = divmod(d.month - 1 + n, 12)
    return dt.date(d.year + y, m + 1, 1)


def _ledger_cte(ds: Dataset, end: dt.date) -> str:
    """CTEs ``p`` (classified rows to ``end``), ``e`` (earn intervals), ``u`` (use intervals) per customer.

    A customer's earned points form one queue; each use consumes the queue from the front (FIFO).
    Same-day rows: earning before using.
    """
    return f"""
    p AS (
        SELECT customer_id, CAST(date AS DATE) AS d, CAST(points AS DOUBLE) AS pts, {_kind_sql(ds)} AS k,
               row_number() OVER (PARTITION BY customer_id ORDER BY date, points DESC) AS rn
        FROM points WHERE points IS NOT NULL AND points <> 0 AND CAST(date AS DATE) <= DATE '{end.isoformat()}'),
    e AS (
        SELECT customer_id, rn, d, pts, sum(pts) OVER w - pts AS lo, sum(pts) OVER w AS hi
        FROM p WHERE pts > 0 WINDOW w AS (PARTITION BY customer_id ORDER BY rn ROWS UNBOUNDED PRECEDING)),
    u AS (
        SELECT customer_id, d, k, -pts AS amt, sum(-pts) OVER w + pts AS lo, sum(-pts) OVER w AS hi
        FROM p WHERE pts < 0 WINDOW w AS (PARTITION BY customer_id ORDER BY rn ROWS UNBOUNDED PRECEDING))"""


def fifo_vintages(ds: Dataset, end: dt.date) -> pd.DataFrame:
    """Points by earning month (vintage), use month and use kind, FIFO-allocated.

    Returns
    -------
    DataFrame
        ``vintage`` (month start), ``use_month`` (month start; NaT for points still outstanding),
        ``kind`` (``redeem``/``expire``/``use``/``outstanding``), ``points``, ``members``.
        Rows with ``kind == "unbacked"`` are uses beyond everything earned before them (a negative balance).
    """
    ds.require("points", "customer_id", "date", "points")
    q = f"""
    WITH {_ledger_cte(ds, end)},
    alloc AS (
        SELECT e.customer_id, date_trunc('month', e.d) AS vintage, date_trunc('month', u.d) AS use_month, u.k AS kind,
               least(e.hi, u.hi) - greatest(e.lo, u.lo) AS pts
        FROM e JOIN u ON e.customer_id = u.customer_id AND u.lo < e.hi AND e.lo < u.hi),
    earned AS (SELECT customer_id, date_trunc('month', d) AS vintage, sum(pts) AS pts FROM e GROUP BY ALL),
    used AS (SELECT customer_id, vintage, sum(pts) AS pts FROM alloc GROUP BY ALL),
    outstanding AS (
        SELECT earned.customer_id, earned.vintage, NULL::DATE AS use_month, 'outstanding' AS kind,
               earned.pts - coalesce(used.pts, 0) AS pts
        FROM earned LEFT JOIN used USING (customer_id, vintage)),
    unbacked AS (
        SELECT u.customer_id, NULL::DATE AS vintage, date_trunc('month', u.d) AS use_month, 'unbacked' AS kind,
               u.hi - greatest(u.lo, coalesce(tot.total, 0)) AS pts
        FROM u LEFT JOIN (SELECT customer_id, max(hi) AS total FROM e GROUP BY 1) tot USING (customer_id)
        WHERE u.hi > coalesce(tot.total, 0))
    SELECT vintage, use_month, kind, sum(pts) AS points, count(DISTINCT customer_id) AS members
    FROM (SELECT * FROM alloc UNION ALL SELECT * FROM outstanding WHERE pts > 1e-9 UNION ALL SELECT * FROM unbacked)
    GROUP BY ALL ORDER BY vintage NULLS LAST, use_month NULLS LAST, kind"""
    out = ds.sql(q)
    for c in ("vintage", "use_month"):
        out[c] = pd.to_datetime(out[c])
    return out


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
    WITH p AS (SELECT date_trunc('month', CAST(date AS DATE)) AS month, CAST(points AS DOUBLE) AS pts,
                      {_kind_sql(ds)} AS k, customer_id
               FROM points WHERE points IS NOT NULL AND CAST(date AS DATE) <= DATE '{end.isoformat()}')
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
    start = pd.Timestamp(_add_months(_month(end), -(months - 1)))
    full = pd.DataFrame({"month": pd.date_range(start, pd.Timestamp(_month(end)), freq="MS")})
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
        out.append((w @ num) / np.maximum(w @ den, 1e-12))
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
    v = fifo_vintages(ds, end)
    if not (v["kind"] == "expire").any() and not (v["kind"] == "redeem").any():
        raise NotEstimable("no_kinds")
    source = "config"
    if expiry_months is None:
        expiry_months, source = infer_expiry_months(v), "inferred"
    if expiry_months is None:
        raise NotEstimable("no_expiry")
    last_resolved = pd.Timestamp(_add_months(_month(end + dt.timedelta(days=1)), -expiry_months))
    q = f"""
    WITH {_ledger_cte(ds, end)},
    alloc AS (
        SELECT e.customer_id, date_trunc('month', e.d) AS vintage, u.k,
               least(e.hi, u.hi) - greatest(e.lo, u.lo) AS pts
        FROM e JOIN u ON e.customer_id = u.customer_id AND u.lo < e.hi AND e.lo < u.hi),
    earned AS (SELECT customer_id, sum(pts) AS earned FROM e
               WHERE date_trunc('month', d) < DATE '{last_resolved.date().isoformat()}' GROUP BY 1),
    expired AS (SELECT customer_id, sum(pts) AS expired FROM alloc
                WHERE k = 'expire' AND vintage < DATE '{last_resolved.date().isoformat()}' GROUP BY 1)
    SELECT customer_id, earned, coalesce(expired, 0) AS expired FROM earned LEFT JOIN expired USING (customer_id)
    ORDER BY customer_id"""
    per = ds.sql(q)
    if per.empty or per["earned"].sum() <= 0:
        raise NotEstimable("no_matured", months=expiry_months)
    rate = float(per["expired"].sum() / per["earned"].sum())
    ci = bayesian_bootstrap_ratio(per["expired"].to_numpy(), per["earned"].to_numpy(), n_boot, seed)
    # cumulative redeemed share by age for each vintage (age in months since the earning month)
    earned_v = v[v["vintage"].notna()].groupby("vintage")["points"].sum()
    red = v[(v["kind"] == "redeem") & v["vintage"].notna()].copy()
    red["age"] = ((red["use_month"].dt.year - red["vintage"].dt.year) * 12 + red["use_month"].dt.month
                  - red["vintage"].dt.month)
    end_m = pd.Timestamp(_month(end))
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
    out_v["expires"] = out_v["vintage"].map(lambda x: pd.Timestamp(_add_months(x.date(), expiry_months)))
    next_day = pd.Timestamp(end + dt.timedelta(days=1))
    expiring = []
    for h in (1, 3, 6):
        horizon = next_day + pd.DateOffset(months=h)  # exclusive
        sel = out_v[(out_v["expires"] >= next_day) & (out_v["expires"] < horizon)]
        members = _expiring_members(ds, end, expiry_months, horizon.date()) if len(sel) else 0
        expiring.append({"horizon_months": h, "points": float(sel["points"].sum()), "members": members})
    return Breakage(rate, ci, int((per["earned"] > 0).sum()), float(per["earned"].sum()), int(expiry_months), source,
                    curves, float(out_v["points"].sum()), pd.DataFrame(expiring), point_value, ds.currency,
                    int(n_boot))


def _expiring_members(ds: Dataset, end: dt.date, expiry_months: int, horizon: dt.date) -> int:
    """Members holding points that expire after ``end`` and on or before ``horizon``."""
    q = f"""
    WITH {_ledger_cte(ds, end)},
    used AS (SELECT e.customer_id, e.rn, sum(least(e.hi, u.hi) - greatest(e.lo, u.lo)) AS used
             FROM e JOIN u ON e.customer_id = u.customer_id AND u.lo < e.hi AND e.lo < u.hi GROUP BY ALL),
    left_ AS (SELECT e.customer_id, date_trunc('month', e.d) + INTERVAL {int(expiry_months)} MONTH AS expires,
                     e.pts - coalesce(used.used, 0) AS remaining
              FROM e LEFT JOIN used USING (customer_id, rn))
    SELECT count(DISTINCT customer_id) FROM left_
    WHERE remaining > 1e-9 AND expires > DATE '{end.isoformat()}' AND expires < DATE '{horizon.isoformat()}'"""
    return int(ds.sql(q).iloc[0, 0])


# ------------------------------------------------------------------ participation
def _members_cte(end: dt.date) -> str:
    """``mem``: one row per member (first join, leave date) as of ``end``."""
    return f"""mem AS (
        SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined, max(CAST(left_at AS DATE)) AS left_at
        FROM members WHERE CAST(joined_at AS DATE) <= DATE '{end.isoformat()}' GROUP BY 1)"""


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
    start = _add_months(_month(end), -(months - 1))
    has_tx = ds.has("transactions", "customer_id", "date")
    left = "left_at" if ds.has("members", "left_at") else "NULL::DATE"
    buyers = f"""
      , tx AS (SELECT DISTINCT customer_id, date_trunc('month', CAST(date AS DATE)) AS month FROM transactions
               WHERE CAST(date AS DATE) BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}')
      , b AS (SELECT tx.month, count(*) AS buyers,
                     count(*) FILTER (WHERE mem.joined <= tx.month + INTERVAL 1 MONTH - INTERVAL 1 DAY
                                      AND (mem.left_at IS NULL OR mem.left_at > tx.month)) AS member_buyers
              FROM tx LEFT JOIN mem USING (customer_id) GROUP BY 1)""" if has_tx else ""
    q = f"""
    WITH mem AS (SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined, max(CAST({left} AS DATE)) AS left_at
                 FROM members WHERE CAST(joined_at AS DATE) <= DATE '{end.isoformat()}' GROUP BY 1),
    months AS (SELECT CAST(unnest(range(DATE '{start.isoformat()}', DATE '{_add_months(_month(end), 1).isoformat()}',
                                        INTERVAL 1 MONTH)) AS DATE) AS month)
    {buyers}
    SELECT months.month,
           (SELECT count(*) FROM mem WHERE joined < months.month + INTERVAL 1 MONTH
                AND (left_at IS NULL OR left_at >= months.month + INTERVAL 1 MONTH)) AS members,
           (SELECT count(*) FROM mem WHERE date_trunc('month', joined) = months.month) AS joins,
           (SELECT count(*) FROM mem WHERE date_trunc('month', left_at) = months.month
                AND left_at <= DATE '{end.isoformat()}') AS leavers
           {", coalesce(b.buyers, 0) AS buyers, coalesce(b.member_buyers, 0) AS member_buyers" if has_tx else ""}
    FROM months {"LEFT JOIN b USING (month)" if has_tx else ""} ORDER BY 1"""
    m = ds.sql(q)
    m["month"] = pd.to_datetime(m["month"])
    if not has_tx:
        m["buyers"], m["member_buyers"] = 0, 0
    from workbench.loyalty import wilson

    m["share"] = np.where(m["buyers"] > 0, m["member_buyers"] / m["buyers"].where(m["buyers"] > 0, 1), np.nan)
    m["ci_low"], m["ci_high"] = wilson(m["member_buyers"], m["buyers"])
    levels = pd.DataFrame(columns=["level", "members", "share"])
    if ds.has("members", "level"):
        since = "coalesce(CAST(level_changed_at AS DATE), CAST(joined_at AS DATE))" \
            if ds.has("members", "level_changed_at") else "CAST(joined_at AS DATE)"
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
    if not ds.has("transactions", "customer_id", "amount") or not levels:
        return sorted(levels)
    since = "coalesce(CAST(level_changed_at AS DATE), CAST(joined_at AS DATE))" \
        if ds.has("members", "level_changed_at") else "CAST(joined_at AS DATE)"
    lo = _add_months(_month(end), -11)
    spend = ds.sql(f"""
    WITH cur AS (SELECT customer_id, arg_max(level, {since}) AS level FROM members
                 WHERE {since} <= DATE '{end.isoformat()}' GROUP BY 1),
    s AS (SELECT customer_id, sum(amount) AS spend FROM transactions
          WHERE CAST(date AS DATE) BETWEEN DATE '{lo.isoformat()}' AND DATE '{end.isoformat()}' GROUP BY 1)
    SELECT level, median(coalesce(s.spend, 0)) AS spend FROM cur LEFT JOIN s USING (customer_id) GROUP BY 1""")
    ranked = spend.sort_values(["spend", "level"])["level"].tolist()
    return ranked + sorted(set(levels) - set(ranked))


# ------------------------------------------------------------------ member effect
def poisson_fe(y: np.ndarray, X: np.ndarray, unit: np.ndarray, time: np.ndarray, max_iter: int = 100,
               tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Poisson regression with unit and time fixed effects; cluster-robust (by unit) covariance.

    ``E[y_it] = a_i · exp(g_t + X_it · b)``. The unit effects are concentrated out (their MLE given
    ``b, g`` is closed form), which gives the conditional (fixed-effects) Poisson estimate; Newton steps
    on ``(b, g)`` use the information of the concentrated likelihood, built from per-unit and per-time
    sums (no dense unit or time dummies). Units whose counts are all zero carry no information.

    Returns
    -------
    (b, cov) : coefficients and their cluster-robust (by unit) covariance.
    """
    y = np.asarray(y, float)
    X = np.asarray(X, float).reshape(len(y), -1)
    _, ui = np.unique(unit, return_inverse=True)
    _, ti = np.unique(time, return_inverse=True)
    nu, nt, k = int(ui.max()) + 1, int(ti.max()) + 1, X.shape[1]
    cell = ui * nt + ti
    sy_u = np.bincount(ui, y, nu)
    theta = np.zeros(k + nt - 1)

    def state(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = np.concatenate([[0.0], theta[k:]])
        e = np.exp(X @ theta[:k] + g[ti])
        a = sy_u / np.maximum(np.bincount(ui, e, nu), 1e-300)
        mu = a[ui] * e
        return mu, y - mu

    def information(mu: np.ndarray) -> np.ndarray:
        m = np.bincount(ui, mu, nu)
        cx = np.column_stack([np.bincount(ui, mu * X[:, j], nu) for j in range(k)])
        ct = np.bincount(cell, mu, nu * nt).reshape(nu, nt)
        c = np.column_stack([cx, ct])
        inv_m = np.divide(1.0, m, out=np.zeros(nu), where=m > 0)
        full = np.zeros((k + nt, k + nt))
        full[:k, :k] = (X * mu[:, None]).T @ X
        full[:k, k:] = np.column_stack([np.bincount(ti, mu * X[:, j], nt) for j in range(k)]).T
        full[k:, :k] = full[:k, k:].T
        full[k:, k:] = np.diag(np.bincount(ti, mu, nt))
        full -= (c * inv_m[:, None]).T @ c
        keep = np.r_[0:k, k + 1:k + nt]
        return full[np.ix_(keep, keep)]

    for _ in range(max_iter):
        mu, r = state(theta)
        score = np.concatenate([X.T @ r, np.bincount(ti, r, nt)[1:]])
        step = np.linalg.lstsq(information(mu), score, rcond=None)[0]
        theta = theta + step
        if np.max(np.abs(step)) < tol:
            break
    mu, r = state(theta)
    H = information(mu)
    # per-unit scores (residuals sum to zero within each unit at the concentrated optimum)
    S = np.column_stack([np.bincount(ui, r * X[:, j], nu) for j in range(k)]
                        + [np.bincount(cell, r, nu * nt).reshape(nu, nt)[:, 1:]])
    Hinv = np.linalg.pinv(H)
    cov = Hinv @ (S.T @ S) @ Hinv
    n_clusters = int((sy_u > 0).sum())
    cov *= n_clusters / max(n_clusters - 1, 1)
    return theta[:k], cov[:k, :k]


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
def member_effect(ds: Dataset, end: dt.date, months: int = 24, event_window: int = 6,
                  event_max_customers: int = 200_000, seed: int = 42) -> MemberEffect:
    """Members' purchase-rate change after joining, net of self-selection, beside the naive gap.

    Panel: customer × calendar month over the ``months`` to ``end``, restricted to months a customer
    is known to be active (after their first purchase month and before their last one: churn cannot
    have happened yet, and neither the first nor the last month is selected on a purchase). Model:
    Poisson with customer and month fixed effects and an "after joining" indicator (the join month
    itself left out); event-study coefficients for months −``event_window``…+``event_window`` around joining
    (−1 the reference). Interval: cluster-robust by customer.
    """
    ds.require("members", "customer_id", "joined_at")
    ds.require("transactions", "customer_id", "date")
    start = _add_months(_month(end), -(months - 1))
    q = f"""
    WITH tx AS (SELECT customer_id, date_trunc('month', CAST(date AS DATE)) AS m, count(*) AS n,
                       sum({'amount' if ds.has('transactions', 'amount') else '1'}) AS rev
                FROM transactions WHERE CAST(date AS DATE) <= DATE '{end.isoformat()}' GROUP BY 1, 2),
    span AS (SELECT customer_id, min(m) AS first_m, max(m) AS last_m FROM tx GROUP BY 1),
    mem AS (SELECT customer_id, date_trunc('month', min(CAST(joined_at AS DATE))) AS jm FROM members GROUP BY 1),
    months AS (SELECT CAST(unnest(range(DATE '{start.isoformat()}', DATE '{_add_months(_month(end), 1).isoformat()}',
                                        INTERVAL 1 MONTH)) AS DATE) AS m)
    SELECT CAST(dense_rank() OVER (ORDER BY span.customer_id) AS INTEGER) AS unit,
           CAST(date_diff('month', DATE '{start.isoformat()}', months.m) AS SMALLINT) AS m,
           CAST(coalesce(tx.n, 0) AS INTEGER) AS n,
           CAST(date_diff('month', mem.jm, months.m) AS INTEGER) AS rel
    FROM span JOIN months ON months.m > span.first_m AND months.m < span.last_m
    LEFT JOIN tx ON tx.customer_id = span.customer_id AND tx.m = months.m
    LEFT JOIN mem ON mem.customer_id = span.customer_id"""
    panel = ds.sql(q)
    panel = panel[panel["rel"].isna() | (panel["rel"] != 0)]
    if panel.empty:
        raise NotEstimable("no_panel", table="transactions")
    rel = panel["rel"]
    is_member = rel.notna().to_numpy()
    post = (rel > 0).fillna(False).to_numpy()
    # customers need variation in the panel (fixed effects absorb the rest)
    unit = panel["unit"].to_numpy()
    mem_units = pd.Series(post, index=panel.index).groupby(unit).agg(["min", "max"])
    n_switch = int(((mem_units["min"] == 0) & (mem_units["max"] == 1)).sum())
    if n_switch < 2:
        raise NotEstimable("few_switchers", table="members", n=n_switch)
    y = panel["n"].to_numpy(float)
    b, cov = poisson_fe(y, post.astype(float)[:, None], unit, panel["m"].to_numpy())
    se = math.sqrt(max(cov[0, 0], 0.0))
    effect, ci = math.exp(b[0]), (math.exp(b[0] - 1.96 * se), math.exp(b[0] + 1.96 * se))
    # event study: one indicator per relative month in the window (−1 the reference), the rest binned;
    # on a fixed pseudo-random subset of at most ``event_max_customers`` customers (memory at scale)
    sub = np.ones(len(panel), bool)
    n_units = int(unit.max()) + 1
    if n_units > event_max_customers:
        sub = ((unit.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)) < np.uint64(
            int(2**32 * event_max_customers / n_units))
    r = rel.to_numpy(dtype=float)[sub]
    is_member, y_e, unit_e, m_e = is_member[sub], y[sub], unit[sub], panel["m"].to_numpy()[sub]
    bins = [k for k in range(-event_window, event_window + 1) if k not in (-1, 0)]
    cols = [np.where(is_member & (r == k), 1.0, 0.0) for k in bins]
    cols.append(np.where(is_member & (r > event_window), 1.0, 0.0))
    cols.append(np.where(is_member & (r < -event_window), 1.0, 0.0))
    X = np.column_stack(cols)
    keep = X.sum(axis=0) > 0
    be, ce = poisson_fe(y_e, X[:, keep], unit_e, m_e)
    labels = np.array(bins + [event_window + 1, -event_window - 1])[keep]
    se_e = np.sqrt(np.clip(np.diag(ce), 0, None))
    event = pd.DataFrame({"rel_month": labels, "ratio": np.exp(be), "ci_low": np.exp(be - 1.96 * se_e),
                          "ci_high": np.exp(be + 1.96 * se_e)})
    event = event[event["rel_month"].abs() <= event_window]
    event = pd.concat([event, pd.DataFrame({"rel_month": [-1], "ratio": [1.0], "ci_low": [1.0], "ci_high": [1.0]})])
    event = event.sort_values("rel_month").reset_index(drop=True)
    naive = ds.sql(f"""
    WITH rev AS (SELECT customer_id, sum({'amount' if ds.has('transactions', 'amount') else '1'}) AS rev
                 FROM transactions WHERE CAST(date AS DATE) BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}'
                 GROUP BY 1),
    mem AS (SELECT DISTINCT customer_id FROM members WHERE CAST(joined_at AS DATE) <= DATE '{end.isoformat()}')
    SELECT mem.customer_id IS NOT NULL AS member, avg(rev) AS rev, count(*) AS n
    FROM rev LEFT JOIN mem USING (customer_id) GROUP BY 1""").set_index("member")
    if True not in naive.index or False not in naive.index:
        raise NotEstimable("no_comparison", table="members")
    ratio = float(naive.loc[True, "rev"] / naive.loc[False, "rev"])
    weighted = _weighted_did(panel, seed=seed)
    return MemberEffect(ratio, (int(naive.loc[True, "n"]), int(naive.loc[False, "n"])), effect, ci, n_switch,
                        int(np.unique(unit).size), len(panel), event, (start, end), weighted)


def _weighted_did(panel: pd.DataFrame, window: int = 4, max_controls: int = 20, n_boot: int = 200,
                  seed: int = 42) -> dict[str, Any]:
    """Propensity-weighted difference in differences, stacked over join-month cohorts.

    For each month b: members who joined in b against customers not yet members by b + ``window``,
    all known active from b − 2·``window`` to b + ``window``. The propensity to join (scikit-learn
    logistic regression with cohort effects) uses activity in the *earlier* window (b − 2w … b − w − 1)
    and time since the first purchase, so the weighting does not select on the noise of the "before"
    window (no regression to the mean between before and after). Effect = (after / before purchases of
    joiners) ÷ (the same for weighted non-joiners); ATT weights p/(1 − p), normalised per cohort.
    Interval: Bayesian bootstrap over customers (weights held fixed).
    """
    from sklearn.linear_model import LogisticRegression

    if panel.empty:
        return {}
    unit = panel["unit"].to_numpy()
    m = panel["m"].to_numpy().astype(int)
    nu, nm = int(unit.max()) + 1, int(m.max()) + 1
    counts = np.zeros((nu, nm), np.float32)
    counts[unit, m] = panel["n"].to_numpy()
    first = np.full(nu, nm, int)
    last = np.full(nu, -1, int)
    np.minimum.at(first, unit, m)
    np.maximum.at(last, unit, m)
    rel = panel["rel"].to_numpy(dtype=float)
    jm = np.full(nu, -10**6, float)
    has = ~np.isnan(rel)
    jm[unit[has]] = (m[has] - rel[has])
    member = jm > -10**6
    rng = np.random.default_rng(seed)
    rows = []
    w = window
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
            rows.append(pd.DataFrame({
                "unit": idx, "cohort": b, "treated": tr, "frac": 1.0 if tr else frac,
                "early": np.log1p(counts[idx, b - 2 * w:b - w].sum(axis=1)), "tenure": b - first[idx],
                "before": counts[idx, b - w:b].sum(axis=1), "after": counts[idx, b + 1:b + w + 1].sum(axis=1)}))
    if not rows:
        return {}
    d = pd.concat(rows, ignore_index=True)
    if d["treated"].sum() < 30:
        return {}
    X = pd.get_dummies(d[["early", "tenure"]].assign(cohort=d["cohort"].astype(str)), dtype=float)
    ps = LogisticRegression(max_iter=1000, C=1e6).fit(X, d["treated"]).predict_proba(X)[:, 1]
    ps = np.clip(ps, 1e-3, 1 - 1e-3)
    d["w"] = np.where(d["treated"] == 1, 1.0, ps / (1 - ps) / d["frac"])
    tot_t = d[d["treated"] == 1].groupby("cohort").size()
    tot_c = d[d["treated"] == 0].groupby("cohort")["w"].sum()
    d.loc[d["treated"] == 0, "w"] *= d.loc[d["treated"] == 0, "cohort"].map(tot_t / tot_c).to_numpy()
    # per-customer sums (a customer can be a control in several cohorts): the bootstrap unit
    d["tb"], d["ta"] = d["before"] * d["treated"], d["after"] * d["treated"]
    d["cb"], d["ca"] = d["before"] * d["w"] * (1 - d["treated"]), d["after"] * d["w"] * (1 - d["treated"])
    per = d.groupby("unit")[["tb", "ta", "cb", "ca"]].sum().to_numpy(float)

    def ratio(s: np.ndarray) -> np.ndarray:
        return (s[..., 1] / s[..., 0]) / (s[..., 3] / s[..., 2])

    est = float(ratio(per.sum(axis=0)))
    draws = []
    for start in range(0, n_boot, 50):
        g = rng.exponential(1.0, (min(50, n_boot - start), len(per)))
        draws.append(ratio(g @ per))
    draws = np.concatenate(draws)
    wc = d.loc[d["treated"] == 0, "w"]
    bins = np.linspace(0, 1, 21)
    overlap = []
    for grp, sel in (("joined", d["treated"] == 1), ("not_yet", d["treated"] == 0)):
        h, _ = np.histogram(ps[sel.to_numpy()], bins=bins)
        overlap.append(pd.DataFrame({"group": grp, "bin": (bins[:-1] + bins[1:]) / 2, "share": h / max(h.sum(), 1)}))
    return {"effect": est, "ci": [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))],
            "n_treated": int(d["treated"].sum()), "n_controls": int((d["treated"] == 0).sum()),
            "ess": float(wc.sum() ** 2 / (wc ** 2).sum()), "cohorts": int(d["cohort"].nunique()),
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

    kind = _kind_sql(ds)
    earn_kind = ("lower(coalesce(kind, '')) NOT LIKE '%bonus%' AND lower(coalesce(kind, '')) NOT LIKE '%奖励%'"
                 if ds.has("points", "kind") else "TRUE")
    base = f"""
    WITH p AS (SELECT customer_id, CAST(date AS DATE) AS d, CAST(points AS DOUBLE) AS pts, {kind} AS k,
                      {earn_kind} AS plain_earn,
                      row_number() OVER (PARTITION BY customer_id ORDER BY date, points DESC) AS rn
               FROM points WHERE points IS NOT NULL AND CAST(date AS DATE) <= DATE '{end.isoformat()}'),
    b AS (SELECT *, sum(pts) OVER (PARTITION BY customer_id ORDER BY rn ROWS UNBOUNDED PRECEDING) AS bal FROM p)"""
    # bal is the balance after the row: a redemption above the balance before it leaves it below zero
    parts = ["SELECT customer_id, 'negative_balance' AS rule, d, bal AS pts FROM b WHERE bal < -1e-9 AND k <> 'redeem'",
             "SELECT customer_id, 'redeem_above_balance' AS rule, d, -pts AS pts FROM b WHERE k = 'redeem' AND bal < -1e-9",
             f"""SELECT customer_id, 'earn_burst' AS rule, d, pts FROM (
                   SELECT *, median(abs(dev)) OVER (PARTITION BY customer_id) AS mad FROM (
                     SELECT customer_id, d, pts, ln(pts) - median(ln(pts)) OVER (PARTITION BY customer_id) AS dev,
                            count(*) OVER (PARTITION BY customer_id) AS n_earn
                     FROM p WHERE k = 'earn' AND plain_earn))
                 WHERE n_earn >= {int(min_history)} AND mad > 0 AND dev > {float(burst_z)} * 1.4826 * mad"""]
    if ds.has("transactions", "customer_id", "date", "amount"):
        # with purchases at hand, a burst is earning far above what the month's purchases earn at the
        # programme's usual rate (the median points per unit spent, read from the data)
        parts[-1] = f"""SELECT * FROM (
            WITH me AS (SELECT customer_id, date_trunc('month', d) AS m, sum(pts) AS pts, min(d) AS d FROM p
                        WHERE k = 'earn' AND plain_earn GROUP BY 1, 2),
            ms AS (SELECT customer_id, date_trunc('month', CAST(date AS DATE)) AS m, sum(greatest(amount, 0)) AS spend
                   FROM transactions GROUP BY 1, 2),
            j AS (SELECT me.*, coalesce(ms.spend, 0) AS spend FROM me LEFT JOIN ms USING (customer_id, m)),
            rate AS (SELECT median(pts / spend) AS r FROM j WHERE spend > 0)
            SELECT customer_id, 'earn_burst' AS rule, d, pts FROM j, rate
            WHERE spend > 0 AND pts > {float(burst_factor)} * rate.r * spend)"""
    checked = {"negative_balance": "", "redeem_above_balance": "" if ds.has("points", "kind") else "no_kinds",
               "earn_burst": "", "earn_without_purchase": "", "shared_contact": "no_contact"}
    if ds.has("transactions", "customer_id", "date"):
        parts.append("""SELECT p.customer_id, 'earn_without_purchase' AS rule, p.d, p.pts FROM p
                 WHERE p.k = 'earn' AND p.plain_earn AND NOT EXISTS (
                   SELECT 1 FROM transactions t WHERE t.customer_id = p.customer_id
                   AND date_trunc('month', CAST(t.date AS DATE)) = date_trunc('month', p.d))""")
    else:
        checked["earn_without_purchase"] = "no_transactions"
    if checked["redeem_above_balance"]:
        parts.pop(1)
    flagged = ds.sql(base + ", f AS (" + " UNION ALL ".join(parts) + ") "
                     "SELECT customer_id, rule, min(d) AS first_date, sum(pts) AS points, count(*) AS rows "
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
    left_at = spells.groupby("customer_id")["left_at"].max()
    joined = spells.groupby("customer_id")["joined"].min()
    states = []
    for day in reviews:  # one as-of per review date (a handful), vectorised over members
        r = pd.Timestamp(day)
        s = spells[spells["since"] <= r].groupby("customer_id")["level"].last()
        active = (joined.reindex(s.index) <= r) & (left_at.reindex(s.index).isna() | (left_at.reindex(s.index) > r))
        states.append(s[active])
    rows = []
    for a, b, rb in zip(states[:-1], states[1:], reviews[1:], strict=True):
        to = b.reindex(a.index)
        gone = to.isna()
        to = to.astype(object).where(~gone, "left")
        rows.append(pd.DataFrame({"customer_id": a.index, "from_level": a.to_numpy(), "to_level": to.to_numpy(),
                                  "review": pd.Timestamp(rb)}))
    pairs = pd.concat(rows, ignore_index=True)
    counts = pairs.groupby(["from_level", "to_level"]).size().rename("n").reset_index()
    counts["row_n"] = counts.groupby("from_level")["n"].transform("sum")
    from workbench.loyalty import wilson

    counts["share"] = counts["n"] / counts["row_n"]
    counts["ci_low"], counts["ci_high"] = wilson(counts["n"], counts["row_n"])
    stayed = pairs[pairs["to_level"] != "left"].copy()
    diff = stayed["to_level"].map(rank) - stayed["from_level"].map(rank)
    stayed["move"] = np.select([diff > 0, diff < 0], ["up", "down"], "same")
    moves = _active_after(ds, stayed, active_days)
    reach_tab = _within_reach(ds, states[-1], reviews[-1], end, order, thresholds or settings_thresholds(ds),
                              window_months, reach)
    return Levels(order, counts.drop(columns="row_n"), moves, tuple(reviews), source, reach_tab,
                  int(pairs["customer_id"].nunique()), _first_upgrade(spells, rank, end))


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


def settings_thresholds(ds: Dataset) -> dict[str, float]:
    raw = dict(getattr(ds, "programme", None) or {})
    return {str(k): float(v) for k, v in dict(raw.get("level_thresholds", {})).items()}


def _active_after(ds: Dataset, stayed: pd.DataFrame, days: int) -> pd.DataFrame:
    """Share of members with a purchase within ``days`` after each review, by move (Wilson interval)."""
    from workbench.loyalty import wilson

    if not ds.has("transactions", "customer_id", "date") or stayed.empty:
        return pd.DataFrame({"move": ["up", "same", "down"], "n": 0, "active_after": 0,
                             "share_active": np.nan, "ci_low": np.nan, "ci_high": np.nan})
    con = ds._con
    con.register("wb_level_moves", stayed[["customer_id", "review", "move"]])
    try:
        got = con.execute(f"""
            SELECT m.move, count(*) AS n,
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM transactions t WHERE t.customer_id = m.customer_id
                        AND CAST(t.date AS DATE) >= CAST(m.review AS DATE)
                        AND CAST(t.date AS DATE) < CAST(m.review AS DATE) + INTERVAL {int(days)} DAY)) AS active_after
            FROM wb_level_moves m GROUP BY 1""").df()
    finally:
        con.unregister("wb_level_moves")
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
    lo = _add_months(_month(end), -(window_months - 1))
    spend = ds.sql(f"""SELECT customer_id, sum(amount) AS spend FROM transactions
                       WHERE CAST(date AS DATE) BETWEEN DATE '{lo.isoformat()}' AND DATE '{end.isoformat()}'
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
        names = [_tr(f"cost.{c}", lang) if t_has(f"programme.cost.{c}") else c for c in self.costs["line"]]
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


def t_has(key: str) -> bool:
    from workbench.i18n import has

    return has(key)


def roi_from_effect(member_profit: float, effect: float, ci: tuple[float, float], cost: float) -> dict[str, float]:
    """ROI arithmetic: members' profit after joining includes the effect, so the incremental part is
    ``profit × (1 − 1/effect)``; ROI = (incremental − cost) / cost. Monotone in the effect, so the
    interval's ends map to the ROI interval's ends."""
    inc = member_profit * (1 - 1 / effect)
    lo, hi = member_profit * (1 - 1 / ci[0]), member_profit * (1 - 1 / ci[1])
    return {"incremental": inc, "inc_lo": lo, "inc_hi": hi, "roi": (inc - cost) / cost,
            "roi_lo": (lo - cost) / cost, "roi_hi": (hi - cost) / cost}


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
    start = _add_months(_month(end), -(months - 1))
    factor = months / 12
    rows = [{"line": k, "amount": float(v) * factor} for k, v in lines.items()]
    redemption = None
    if point_value is not None and ds.has("points", "points"):
        redeemed = ds.sql(f"""SELECT coalesce(sum(-points), 0) FROM (SELECT points, {_kind_sql(ds)} AS k FROM points
                              WHERE CAST(date AS DATE) BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}')
                              WHERE k = 'redeem'""").iloc[0, 0]
        redemption = float(redeemed) * float(point_value)
        rows.append({"line": "points_redeemed", "amount": redemption})
    cost_tab = pd.DataFrame(rows)
    total = float(cost_tab["amount"].sum())
    if total <= 0:
        raise NotEstimable("no_costs", table="points")
    since = "coalesce(CAST(level_changed_at AS DATE), CAST(joined_at AS DATE))" \
        if ds.has("members", "level_changed_at") else "CAST(joined_at AS DATE)"
    level = f"arg_max(level, {since})" if ds.has("members", "level") else "'all'"
    prof = ds.sql(f"""
    WITH mem AS (SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined, {level} AS level FROM members
                 WHERE CAST(joined_at AS DATE) <= DATE '{end.isoformat()}' GROUP BY 1)
    SELECT mem.level, sum(t.margin) AS profit, count(DISTINCT t.customer_id) AS n
    FROM transactions t JOIN mem USING (customer_id)
    WHERE CAST(t.date AS DATE) > mem.joined AND CAST(t.date AS DATE) BETWEEN DATE '{start.isoformat()}'
          AND DATE '{end.isoformat()}' GROUP BY 1 ORDER BY 1""")
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
        lines = {k: w.FloatText(value=v, description=_tr(f"cost.{k}", lang) if t_has(f"programme.cost.{k}") else k)
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


@analysis("programme.h.explore")
def explorer(ds: Dataset, flow: Result, effect: Result, end: dt.date, point_value: float | None = None,
             costs: dict[str, float] | None = None, months: int = 12) -> CostExplorer:
    """Inputs for the live point-value / cost controls, from the points and member-effect results."""
    from workbench.results import unwrap

    flow, effect = unwrap(flow), unwrap(effect)
    for r in (flow, effect):
        if r.skipped:
            raise r.cause  # type: ignore[attr-defined]
    start = _add_months(_month(end), -(months - 1))
    redeemed = float(ds.sql(f"""SELECT coalesce(sum(-points), 0) FROM (SELECT points, {_kind_sql(ds)} AS k FROM points
                          WHERE CAST(date AS DATE) BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}')
                          WHERE k = 'redeem'""").iloc[0, 0])
    profit = 0.0
    if ds.has("transactions", "margin"):
        profit = float(ds.sql(f"""
            WITH mem AS (SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined FROM members GROUP BY 1)
            SELECT coalesce(sum(t.margin), 0) FROM transactions t JOIN mem USING (customer_id)
            WHERE CAST(t.date AS DATE) > mem.joined
              AND CAST(t.date AS DATE) BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}'""").iloc[0, 0])
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

    start = _add_months(_month(end), -(months - 1))
    prev = _add_months(start, -months)
    s, e, p = start.isoformat(), end.isoformat(), prev.isoformat()
    left = "max(CAST(left_at AS DATE))" if ds.has("members", "left_at") else "NULL::DATE"
    amount = "amount" if ds.has("transactions", "amount") else "NULL::DOUBLE"
    per = ds.sql(f"""
    WITH mem AS (SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined, {left} AS left_at FROM members GROUP BY 1),
    w AS (SELECT customer_id, count(*) AS n, sum({amount}) AS spend FROM transactions
          WHERE CAST(date AS DATE) BETWEEN DATE '{s}' AND DATE '{e}' GROUP BY 1),
    b AS (SELECT DISTINCT customer_id FROM transactions WHERE CAST(date AS DATE) >= DATE '{p}'
          AND CAST(date AS DATE) < DATE '{s}'),
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
            WITH mem AS (SELECT customer_id, min(CAST(joined_at AS DATE)) AS joined, {left} AS left_at
                         FROM members GROUP BY 1)
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
    from statsmodels.duration.hazard_regression import PHReg

    from workbench import lifecycle as lc

    ds.require("members", "customer_id", "joined_at", reason="members' churn hazard")
    end = lc._day(end)
    if horizon_days is None:
        horizon_days = lc.resolve_horizon(ds, end)
    horizon_days = lc._need(horizon_days, ds)
    ep, names = lc.cox_data(ds, end, horizon_days, landmark_days)
    if "member" not in names:
        raise lc.Unsupported("no_members")
    res = lc._fit(PHReg(ep["stop"].to_numpy(), ep[names].to_numpy(float), status=ep["status"].to_numpy(),
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
