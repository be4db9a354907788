"""Depth and cross-sell (DOMAIN.md §3: deeper relationships — products per customer, cross-selling).

Four analyses, each returning a :class:`workbench.results.Result`:

* :func:`depth` — categories bought per customer in each period (distribution, mean with a 95% interval);
* :func:`rules` — association rules between categories bought by the same customer (support,
  confidence, lift with an interval, a one-sided exact test of "bought together more often than by
  chance", Benjamini–Hochberg across all category pairs);
* :func:`sequence` — from a customer's first category to their second (transition shares with n,
  lift against customers who started elsewhere, exact test, BH);
* :func:`recommend` — next-best categories per customer by item-based co-occurrence, evaluated on a
  time-split holdout against the popularity baseline (hit rate@k with intervals, the paired difference,
  catalogue coverage); a pseudonymised customer list only where the model beats the baseline.

Aggregation runs in the engine (DuckDB SQL over ``transactions``); pandas/numpy/scipy see per-category
counts or integer-coded (customer, category) pairs only, never the raw event table.

Conventions
-----------
* A *purchase* is a transactions row with a category, a customer id and (when the table has
  amounts) a positive amount; refunds and zero rows are not purchases.
* A customer's *first category* is the category of their earliest purchase in the data (ties on a day
  broken by order id, then category name); the *second category* is the category of their first
  purchase in any other category. History before the data starts is unknown (left-censored).
* An implicit-feedback factorisation (e.g. the ``implicit`` library) is only worth trying with many
  categories and a maintained library installed; it is not a dependency, so recommendations use
  item-based co-occurrence and are shown only when they beat the popularity baseline.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import sparse, stats
from statsmodels.stats.multitest import multipletests

from workbench import results, viz
from workbench.engine import Dataset
from workbench.i18n import fmt_int, fmt_num, fmt_pct, t
from workbench.io import quote_str
from workbench.results import KPI, Finding, Result, Table, analysis

__all__ = [
    "Depth", "Recommendations", "Rules", "Sequence", "Unsupported",
    "depth", "recommend", "rules", "sequence",
]

#: fewer customers with two or more categories than this: no rules, no sequences
MIN_MULTI = 100
#: fewer holdout customers than this: recommendations cannot be tested against the baseline
MIN_EVAL = 100
ALPHA = 0.05


def _tr(key: str, lang: str, **values: Any) -> str:
    return t(f"crosssell.{key}", lang, **values)


class Unsupported(results.Unsupported):
    """The data are there but cannot support this analysis; ``key`` names a ``crosssell.why.*`` text."""

    prefix = "crosssell.why."
    wrap = "crosssell.skipped"


# ------------------------------------------------------------------ shared SQL
def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _add_months(d: dt.date, n: int) -> dt.date:
    dy, m = divmod(d.month - 1 + n, 12)
    y = d.year + dy
    last = [31, 29 if (y % 4 == 0 and (y % 100 or y % 400 == 0)) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return dt.date(y, m + 1, min(d.day, last[m]))


def _check(ds: Dataset) -> None:
    """Transactions with customer, date and category; at least two categories."""
    ds.require("transactions", "customer_id", "date", "product_category")
    lo, hi = ds.sql(f"SELECT min(product_category), max(product_category) FROM transactions "
                    f"WHERE {_purchase(ds)}").iloc[0]  # a cheap scan: two categories iff min differs from max
    n = 0 if pd.isna(lo) else (1 if lo == hi else 2)
    if n < 2:
        raise Unsupported("one_category", n=n)


def _purchase(ds: Dataset | None = None, end: dt.date | None = None, start: dt.date | None = None) -> str:
    """WHERE clause for purchases (category and customer known, positive amount when amounts exist)."""
    cond = ["customer_id IS NOT NULL", "product_category IS NOT NULL", "trim(CAST(product_category AS VARCHAR)) <> ''",
            "date IS NOT NULL"]
    if ds is not None and ds.has("transactions", "amount"):
        cond.append("amount > 0")
    if end is not None:
        cond.append(f"CAST(date AS DATE) <= DATE '{end.isoformat()}'")
    if start is not None:
        cond.append(f"CAST(date AS DATE) > DATE '{start.isoformat()}'")
    return " AND ".join(cond)


def _order_key(ds: Dataset) -> str:
    """Tie-break inside a day: order id when the table has one, then the category name."""
    return "CAST(date AS DATE), order_id, c" if ds.has("transactions", "order_id") else "CAST(date AS DATE), c"


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def wilson(k: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    """Wilson 95% interval for k of n (NaN where n == 0)."""
    from workbench.loyalty import wilson as _w

    return _w(k, n)


# ------------------------------------------------------------------ 1. depth
PERIODS = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True, repr=False)
class Depth(Result):
    """Categories bought per buying customer in each complete period: distribution and mean."""

    heading: ClassVar[str] = "crosssell.h.depth"
    periods: pd.DataFrame  # period, customers, mean, ci_low, ci_high, sd, share_1.. share_{top}+, multi_share
    bins: tuple[str, ...]  # labels of the distribution bins ("1", "2", "3", "4+")
    freq: str
    n_categories: int
    dropped: int  # incomplete periods left out

    def _compare(self) -> tuple[pd.Series, pd.Series | None]:
        last = self.periods.iloc[-1]
        lag = 12 // PERIODS[self.freq] if self.freq != "year" else 1
        prev = self.periods.iloc[-1 - lag] if len(self.periods) > lag else (
            self.periods.iloc[0] if len(self.periods) > 1 else None)
        return last, prev

    def findings(self, lang: str = "en") -> list[Finding]:
        if self.periods.empty:
            return []
        last, prev = self._compare()
        out = [Finding("categories_per_customer",
                       _tr("find.depth", lang, mean=fmt_num(last["mean"], lang), period=last["period"],
                           multi=fmt_pct(last["multi_share"], lang), n=fmt_int(last["customers"], lang),
                           k=fmt_int(self.n_categories, lang)),
                       value=float(last["mean"]), interval=(float(last["ci_low"]), float(last["ci_high"])),
                       n=int(last["customers"]), how=_tr("how.depth", lang))]
        if prev is not None:
            diff = float(last["mean"] - prev["mean"])
            se = math.sqrt(last["sd"] ** 2 / last["customers"] + prev["sd"] ** 2 / prev["customers"])
            ci = (diff - 1.96 * se, diff + 1.96 * se)
            moved = ci[0] > 0 or ci[1] < 0
            key = ("find.depth_up" if diff > 0 else "find.depth_down") if moved else "find.depth_flat"
            out.append(Finding("categories_per_customer_change",
                               _tr(key, lang, prev=prev["period"], mean=fmt_num(prev["mean"], lang),
                                   diff=fmt_num(abs(diff), lang), now=fmt_num(last["mean"], lang),
                                   period=last["period"]),
                               value=diff, headline=moved, interval=ci, null=0.0,
                               n=int(min(last["customers"], prev["customers"])),
                               how=_tr("how.depth_change", lang, lo=fmt_num(ci[0], lang), hi=fmt_num(ci[1], lang)),
                               action=_tr("action.depth", lang) if moved and diff < 0 else ""))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        p = self.periods
        fig = go.Figure()
        for i, b in enumerate(self.bins):
            fig.add_trace(go.Bar(x=p["period"], y=p[f"share_{b}"], name=_tr("depth.bin", lang, k=b),
                                 marker_color=viz.PALETTE[i % len(viz.PALETTE)]))
        fig.add_trace(go.Scatter(x=p["period"], y=p["mean"], name=_tr("depth.mean", lang), yaxis="y2",
                                 mode="lines+markers", line=dict(color="#222"),
                                 error_y=dict(type="data", symmetric=False, array=(p["ci_high"] - p["mean"]).tolist(),
                                              arrayminus=(p["mean"] - p["ci_low"]).tolist(), width=3)))
        fig.update_layout(barmode="stack", title=_tr("depth.title", lang), yaxis=dict(tickformat=".0%",
                          title=_tr("depth.share", lang)),
                          yaxis2=dict(overlaying="y", side="right", showgrid=False, rangemode="tozero",
                                      title=_tr("depth.mean", lang)), margin=dict(r=70))
        return [fig]

    def tables(self, lang: str = "en") -> list[Table]:
        p = self.periods
        cols = {"period": _tr("col.period", lang), "customers": _tr("col.customers", lang),
                "mean": _tr("depth.mean", lang)}
        cols.update({f"share_{b}": _tr("depth.bin", lang, k=b) for b in self.bins})
        frame = p[list(cols)].rename(columns=cols)
        fm = {cols["customers"]: lambda v: fmt_int(v, lang), cols["mean"]: lambda v: fmt_num(v, lang)}
        fm.update({cols[f"share_{b}"]: (lambda v: fmt_pct(v, lang)) for b in self.bins})
        return [Table(frame, fm, appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        return [_tr("note.depth", lang)] + ([_tr("note.dropped", lang, n=self.dropped)] if self.dropped else [])

    def kpis(self, lang: str = "en") -> list[KPI]:
        if self.periods.empty:
            return []
        last = self.periods.iloc[-1]
        prev = self.periods.iloc[-2] if len(self.periods) > 1 else None
        return [KPI("categories_per_customer", _tr("kpi.depth", lang), float(last["mean"]), "number",
                    n=int(last["customers"]), interval=(float(last["ci_low"]), float(last["ci_high"])),
                    better="higher", previous=None if prev is None else float(prev["mean"]),
                    how=_tr("how.depth", lang))]

    def metrics(self) -> dict[str, Any]:
        return {"crosssell_depth": {"freq": self.freq, "n_categories": self.n_categories, "bins": list(self.bins),
                                    "periods": self.periods.drop(columns=["start"])}}


@analysis("crosssell.h.depth")
def depth(ds: Dataset, end: Any, freq: str = "quarter", periods: int = 8) -> Depth:
    """Distinct categories bought per buying customer in each complete period up to ``end``.

    Parameters
    ----------
    ds : Dataset
    end : date
        Analysis date (last day counted).
    freq : {"month", "quarter", "year"}
        Period length; only periods fully inside the data (first purchase to ``end``) are shown.
    periods : int
        How many complete periods to show (most recent).
    """
    if freq not in PERIODS:
        raise ValueError(f"freq must be one of {', '.join(PERIODS)}, got {freq!r}")
    _check(ds)
    end = _as_date(end)
    step = PERIODS[freq]
    trunc = {"month": "month", "quarter": "quarter", "year": "year"}[freq]
    cats = ds.sql(f"SELECT CAST(product_category AS VARCHAR) AS c, min(CAST(date AS DATE)) AS first "
                  f"FROM transactions WHERE {_purchase(ds, end)} GROUP BY 1 ORDER BY 1")
    if cats.empty:
        raise Unsupported("one_category", n=0)
    lo, k_all = cats["first"].min(), len(cats)
    if k_all <= 62:  # categories as bits: a bit_or per group is far cheaper than a distinct count
        lit = "[" + ", ".join(quote_str(str(c)) for c in cats["c"]) + "]"
        kexpr = (f"bit_count(bit_or(CAST(1 AS BIGINT) << (list_position({lit}, CAST(product_category AS VARCHAR))"
                 " - 1)))")
    else:
        kexpr = "count(DISTINCT product_category)"
    q = f"""
    WITH p AS (SELECT customer_id, date_trunc('{trunc}', CAST(date AS DATE)) AS start, {kexpr} AS k
               FROM transactions WHERE {_purchase(ds, end)} GROUP BY ALL)
    SELECT start, count(*) AS customers, avg(k) AS mean, coalesce(stddev_samp(k), 0) AS sd,
           count(*) FILTER (WHERE k = 1) AS n1, count(*) FILTER (WHERE k = 2) AS n2,
           count(*) FILTER (WHERE k = 3) AS n3, count(*) FILTER (WHERE k >= 4) AS n4
    FROM p GROUP BY 1 ORDER BY 1"""
    df = ds.sql(q)
    df["start"] = pd.to_datetime(df["start"]).dt.date
    first_ok = df["start"] >= _as_date(lo) if len(df) else df["start"]
    complete = first_ok & df["start"].map(lambda s: _add_months(s, step) - dt.timedelta(days=1) <= end)
    dropped = int((~complete).sum())
    df = df[complete].tail(periods).reset_index(drop=True)
    top = min(k_all, 4)
    bins = tuple(str(i) for i in range(1, top)) + (f"{top}+" if k_all > top else str(top),)
    if top < 4:  # fewer than four categories: the last bin holds exactly `top`
        df[f"n{top}"] = df[[f"n{i}" for i in range(top, 5)]].sum(axis=1)
    for i, b in enumerate(bins, start=1):
        df[f"share_{b}"] = df[f"n{i}"] / df["customers"]
    df["multi_share"] = 1 - df["n1"] / df["customers"]
    half = stats.t.ppf(0.975, np.maximum(df["customers"] - 1, 1)) * df["sd"] / np.sqrt(df["customers"])
    df["ci_low"], df["ci_high"] = df["mean"] - half, df["mean"] + half
    df["period"] = [_period_label(s, freq) for s in df["start"]]
    keep = ["period", "start", "customers", "mean", "ci_low", "ci_high", "sd", "multi_share"] + [f"share_{b}" for b in bins]
    return Depth(df[keep], bins, freq, k_all, dropped)


def _period_label(start: dt.date, freq: str) -> str:
    if freq == "month":
        return start.strftime("%Y-%m")
    if freq == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year)


# ------------------------------------------------------------------ 2a. association rules
@dataclass(frozen=True, repr=False)
class Rules(Result):
    """Pairs of categories bought by the same customer more often than chance (association rules)."""

    heading: ClassVar[str] = "crosssell.h.rules"
    rules: pd.DataFrame  # antecedent, consequent, n_both, n_antecedent, n_consequent, support, confidence, conf CI, lift, lift CI, p, q
    customers: int
    multi: int  # customers with 2+ categories
    window: tuple[dt.date, dt.date]
    left_out: int  # categories bought by fewer than min_customers customers (not paired)

    def _significant(self) -> pd.DataFrame:
        r = self.rules
        return r[(r["q"] < ALPHA) & (r["lift"] > 1)].sort_values(["lift", "n_both"], ascending=[False, False])

    def findings(self, lang: str = "en") -> list[Finding]:
        sig = self._significant()
        n_pairs = len(self.rules) // 2
        out = [Finding("crosssell_rules_count", _tr("find.rules_count", lang, n=fmt_int(len(sig) // 2, lang),
                                                   pairs=fmt_int(n_pairs, lang),
                                                   multi=fmt_int(self.multi, lang),
                                                   customers=fmt_int(self.customers, lang)),
                       value=int(len(sig) // 2), n=self.customers)]
        if sig.empty:
            out.append(Finding("crosssell_top_rule", _tr("find.no_rule", lang)))
            return out
        top = sig.iloc[0]
        out.append(Finding("crosssell_top_rule",
                           _tr("find.top_rule", lang, a=top["antecedent"], b=top["consequent"],
                               lift=fmt_num(top["lift"], lang, 1), conf=fmt_pct(top["confidence"], lang),
                               base=fmt_pct(top["n_consequent"] / self.customers, lang)),
                           value=float(top["lift"]), headline=True, interval=(top["lift_low"], top["lift_high"]),
                           null=1.0, n=int(top["n_antecedent"]),
                           how=_tr("how.rules", lang, q=fmt_num(top["q"], lang, 4), n=fmt_int(top["n_both"], lang)),
                           action=_tr("action.rule", lang, a=top["antecedent"], b=top["consequent"])))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        sig = self._significant().head(12).iloc[::-1]
        labels = [f"{a} → {b}" for a, b in zip(sig["antecedent"], sig["consequent"], strict=True)]
        fig = go.Figure(go.Bar(x=sig["lift"], y=labels, orientation="h", marker_color=viz.PALETTE[0],
                               error_x=dict(type="data", symmetric=False,
                                            array=(sig["lift_high"] - sig["lift"]).tolist(),
                                            arrayminus=(sig["lift"] - sig["lift_low"]).tolist(), width=3)))
        fig.add_vline(x=1, line_dash="dot", line_color="#888")
        fig.update_layout(title=_tr("rules.title", lang), xaxis_title=_tr("col.lift", lang),
                          height=160 + 32 * max(len(sig), 1))
        return [fig]

    def tables(self, lang: str = "en") -> list[Table]:
        r = self.rules.sort_values(["q", "lift"], ascending=[True, False])
        cols = {"antecedent": _tr("col.antecedent", lang), "consequent": _tr("col.consequent", lang),
                "n_both": _tr("col.n_both", lang), "support": _tr("col.support", lang),
                "confidence": _tr("col.confidence", lang), "lift": _tr("col.lift", lang),
                "lift_ci": _tr("col.lift_ci", lang), "q": _tr("col.q", lang)}
        frame = r.assign(lift_ci=[f"{fmt_num(lo, lang)}–{fmt_num(hi, lang)}" for lo, hi in
                                  zip(r["lift_low"], r["lift_high"], strict=True)])[list(cols)].rename(columns=cols)
        fm = {cols["n_both"]: lambda v: fmt_int(v, lang), cols["support"]: lambda v: fmt_pct(v, lang, 2),
              cols["confidence"]: lambda v: fmt_pct(v, lang), cols["lift"]: lambda v: fmt_num(v, lang),
              cols["q"]: lambda v: fmt_num(v, lang, 4)}
        return [Table(frame, fm, caption=_tr("rules.caption", lang), appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        out = [_tr("note.rules", lang, start=self.window[0].isoformat(), end=self.window[1].isoformat())]
        if self.left_out:
            out.append(_tr("note.left_out", lang, n=fmt_int(self.left_out, lang)))
        return out

    def metrics(self) -> dict[str, Any]:
        sig = self._significant()
        keep = ["antecedent", "consequent", "n_both", "n_antecedent", "support", "confidence", "lift", "lift_low",
                "lift_high", "q"]
        return {"crosssell_rules": {"customers": self.customers, "customers_2plus_categories": self.multi,
                                    "pairs_tested": len(self.rules) // 2, "significant_pairs": len(sig) // 2,
                                    "window": [self.window[0].isoformat(), self.window[1].isoformat()],
                                    "top": sig[keep].head(20)}}


def _baskets_sql(ds: Dataset, end: dt.date, start: dt.date | None) -> str:
    return f"SELECT DISTINCT customer_id, product_category AS c FROM transactions WHERE {_purchase(ds, end, start)}"


@analysis("crosssell.h.rules")
def rules(ds: Dataset, end: Any, months: int = 24, min_customers: int = 30) -> Rules:
    """Association rules X → Y between categories bought by the same customer in the ``months`` to ``end``.

    For every pair of categories each bought by at least ``min_customers`` customers: support (share of
    buying customers with both), confidence P(Y | X), lift = confidence / P(Y) with an interval (Wilson
    interval of the confidence over P(Y)), a one-sided exact test (hypergeometric: more customers with
    both than if the categories were bought independently) and Benjamini–Hochberg q-values over all
    pairs tested. A pair gives two rules (X → Y and Y → X) with the same lift and test.
    """
    _check(ds)
    end = _as_date(end)
    start = _add_months(end, -months)
    q = f"""
    WITH b AS MATERIALIZED ({_baskets_sql(ds, end, start)}),
    per AS (SELECT customer_id, count(*) AS k FROM b GROUP BY 1),
    cats AS (SELECT c, count(*) AS n FROM b GROUP BY 1),
    bk AS (SELECT b.* FROM b SEMI JOIN (SELECT c FROM cats WHERE n >= {int(min_customers)}) k USING (c)),
    pairs AS (SELECT x.c AS a, y.c AS b, count(*) AS n FROM bk x JOIN bk y
              ON x.customer_id = y.customer_id AND x.c < y.c GROUP BY ALL)
    SELECT 'customers' AS kind, NULL AS a, NULL AS b, count(*) AS n FROM per
    UNION ALL SELECT 'multi', NULL, NULL, count(*) FROM per WHERE k >= 2
    UNION ALL SELECT 'cat', CAST(c AS VARCHAR), NULL, n FROM cats
    UNION ALL SELECT 'pair', CAST(a AS VARCHAR), CAST(b AS VARCHAR), n FROM pairs"""
    out = ds.sql(q)
    kind = out["kind"]
    customers = int(out.loc[kind == "customers", "n"].sum())
    multi = int(out.loc[kind == "multi", "n"].sum())
    if multi < MIN_MULTI:
        raise Unsupported("few_multi", n=multi, need=MIN_MULTI, customers=customers)
    cats = out.loc[kind == "cat", ["a", "n"]].rename(columns={"a": "c"}).sort_values("c")
    ok = cats[cats["n"] >= min_customers]
    left_out = len(cats) - len(ok)
    if len(ok) < 2:
        raise Unsupported("few_categories", need=min_customers)
    pairs = out.loc[kind == "pair", ["a", "b", "n"]].rename(columns={"n": "n_both"})
    names = ok["c"].astype(str).tolist()
    n_of = dict(zip(names, ok["n"].astype(int), strict=True))
    ii, jj = np.triu_indices(len(names), k=1)
    full = pd.DataFrame({"a": np.asarray(names, dtype=object)[ii], "b": np.asarray(names, dtype=object)[jj]})
    pairs["a"], pairs["b"] = pairs["a"].astype(str), pairs["b"].astype(str)
    full = full.merge(pairs, on=["a", "b"], how="left")
    full["n_both"] = full["n_both"].fillna(0).astype(int)
    na, nb = full["a"].map(n_of).to_numpy(), full["b"].map(n_of).to_numpy()
    nab = full["n_both"].to_numpy()
    full["p"] = stats.hypergeom.sf(nab - 1, customers, na, nb)
    full["q"] = bh(full["p"].to_numpy())
    fwd = pd.DataFrame({"antecedent": full["a"], "consequent": full["b"], "n_antecedent": na, "n_consequent": nb})
    rev = pd.DataFrame({"antecedent": full["b"], "consequent": full["a"], "n_antecedent": nb, "n_consequent": na})
    r = pd.concat([fwd.assign(n_both=nab, p=full["p"], q=full["q"]),
                   rev.assign(n_both=nab, p=full["p"], q=full["q"])], ignore_index=True)
    r["support"] = r["n_both"] / customers
    r["confidence"] = r["n_both"] / r["n_antecedent"]
    r["conf_low"], r["conf_high"] = wilson(r["n_both"], r["n_antecedent"])
    base = r["n_consequent"] / customers
    r["lift"] = r["confidence"] / base
    r["lift_low"], r["lift_high"] = r["conf_low"] / base, r["conf_high"] / base
    r = r.sort_values(["lift", "n_both"], ascending=[False, False]).reset_index(drop=True)
    return Rules(r, customers, multi, (start + dt.timedelta(days=1), end), left_out)


# ------------------------------------------------------------------ 2b. first → second category
@dataclass(frozen=True, repr=False)
class Sequence(Result):
    """Where customers go next: from their first category to their second."""

    heading: ClassVar[str] = "crosssell.h.sequence"
    transitions: pd.DataFrame  # first, second, n, n_first, share, share_low, share_high, base, lift, lift_low, lift_high, p, q
    starters: pd.DataFrame  # first, customers, moved_on, moved_share
    customers: int  # customers with a purchase
    movers: int  # customers with a second category

    def _significant(self) -> pd.DataFrame:
        tr = self.transitions
        return tr[(tr["q"] < ALPHA) & (tr["lift"] > 1)].sort_values(["lift", "n"], ascending=[False, False])

    def findings(self, lang: str = "en") -> list[Finding]:
        out = [Finding("crosssell_movers", _tr("find.movers", lang, movers=fmt_int(self.movers, lang),
                                               customers=fmt_int(self.customers, lang),
                                               share=fmt_pct(self.movers / max(self.customers, 1), lang)),
                       value=self.movers / max(self.customers, 1), n=self.customers)]
        sig = self._significant()
        if sig.empty:
            out.append(Finding("crosssell_top_sequence", _tr("find.no_sequence", lang)))
            return out
        top = sig.iloc[0]
        out.append(Finding("crosssell_top_sequence",
                           _tr("find.top_sequence", lang, a=top["first"], b=top["second"], share=fmt_pct(top["share"], lang),
                               base=fmt_pct(top["base"], lang), lift=fmt_num(top["lift"], lang, 1),
                               n=fmt_int(top["n_first"], lang)),
                           value=float(top["lift"]), headline=True, interval=(top["lift_low"], top["lift_high"]),
                           null=1.0, n=int(top["n_first"]),
                           how=_tr("how.sequence", lang, q=fmt_num(top["q"], lang, 4)),
                           action=_tr("action.sequence", lang, a=top["first"], b=top["second"])))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        tr = self.transitions
        firsts = self.starters.sort_values("customers", ascending=False)["first"].head(15).tolist()
        seconds = tr.groupby("second")["n"].sum().sort_values(ascending=False).index[:15].tolist()
        m = tr[tr["first"].isin(firsts) & tr["second"].isin(seconds)].pivot(index="first", columns="second",
                                                                             values="share")
        m = m.reindex(index=firsts, columns=seconds)
        n = tr.pivot(index="first", columns="second", values="n").reindex(index=firsts, columns=seconds)
        text = [[("" if pd.isna(v) else f"{fmt_pct(v, lang, 0)} ({fmt_int(k, lang)})") for v, k in zip(rv, rn, strict=True)]
                for rv, rn in zip(m.to_numpy(), n.to_numpy(), strict=True)]
        fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=seconds, y=firsts, text=text, texttemplate="%{text}",
                                   colorscale="Blues", zmin=0, colorbar=dict(tickformat=".0%")))
        fig.update_layout(title=_tr("sequence.title", lang), xaxis_title=_tr("col.second", lang),
                          yaxis_title=_tr("col.first", lang), yaxis=dict(autorange="reversed"),
                          height=220 + 36 * len(firsts))
        return [fig]

    def tables(self, lang: str = "en") -> list[Table]:
        tr = self.transitions.sort_values(["q", "lift"], ascending=[True, False])
        cols = {"first": _tr("col.first", lang), "second": _tr("col.second", lang), "n": _tr("col.n", lang),
                "n_first": _tr("col.n_first", lang), "share": _tr("col.share", lang), "base": _tr("col.base", lang),
                "lift": _tr("col.lift", lang), "lift_ci": _tr("col.lift_ci", lang), "q": _tr("col.q", lang)}
        frame = tr.assign(lift_ci=[f"{fmt_num(lo, lang)}–{fmt_num(hi, lang)}" for lo, hi in
                                   zip(tr["lift_low"], tr["lift_high"], strict=True)])[list(cols)].rename(columns=cols)
        fm = {cols["n"]: lambda v: fmt_int(v, lang), cols["n_first"]: lambda v: fmt_int(v, lang),
              cols["share"]: lambda v: fmt_pct(v, lang), cols["base"]: lambda v: fmt_pct(v, lang),
              cols["lift"]: lambda v: fmt_num(v, lang), cols["q"]: lambda v: fmt_num(v, lang, 4)}
        return [Table(frame, fm, caption=_tr("sequence.caption", lang), appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        return [_tr("note.sequence", lang)]

    def metrics(self) -> dict[str, Any]:
        sig = self._significant()
        keep = ["first", "second", "n", "n_first", "share", "base", "lift", "lift_low", "lift_high", "q"]
        return {"crosssell_sequence": {"customers": self.customers, "customers_with_second_category": self.movers,
                                       "significant": len(sig), "top": sig[keep].head(20),
                                       "starters": self.starters.head(50)}}


@analysis("crosssell.h.sequence")
def sequence(ds: Dataset, end: Any, min_first: int = 30) -> Sequence:
    """Transitions from each customer's first category to their second, up to ``end``.

    For first category A and second category B: share = customers going A → B among A-starters with a
    second category (Wilson interval). Lift compares it with customers who started in neither A nor B
    (they too could pick B second): lift = share / base, a risk ratio with a Katz log interval; one-sided
    exact test (hypergeometric) that A-starters pick B more often; Benjamini–Hochberg over all (A, B)
    with at least ``min_first`` A-starters.
    """
    _check(ds)
    end = _as_date(end)
    key = _order_key(ds)
    order = "order_id" if ds.has("transactions", "order_id") else "NULL"
    q = f"""
    WITH p AS (SELECT customer_id, CAST(product_category AS VARCHAR) AS c, CAST(date AS DATE) AS date,
                      CAST({order} AS VARCHAR) AS order_id
               FROM transactions WHERE {_purchase(ds, end)}),
    g AS (SELECT customer_id, c, min(date) AS d FROM p GROUP BY 1, 2),
    f AS (SELECT customer_id, min_by(c, d, 3) AS cs, min_by(d, d, 3) AS ds FROM g GROUP BY 1),
    -- the two earliest categories are clear from their first dates unless dates tie: then (date, order, name)
    clear AS (SELECT cs[1] AS first, CASE WHEN array_length(cs) > 1 THEN cs[2] END AS second FROM f
              WHERE array_length(ds) = 1 OR (ds[1] < ds[2] AND (array_length(ds) = 2 OR ds[2] < ds[3]))),
    tied AS (SELECT customer_id FROM f
             WHERE array_length(ds) > 1 AND NOT (ds[1] < ds[2] AND (array_length(ds) = 2 OR ds[2] < ds[3]))),
    -- each category's first (date, order, name), then the customer's two earliest (row_number: portable SQL)
    gt AS (SELECT customer_id, c, date, order_id, row_number() OVER (PARTITION BY customer_id, c ORDER BY {key}) AS r
           FROM p WHERE customer_id IN (SELECT customer_id FROM tied)),
    ft AS (SELECT customer_id, c, row_number() OVER (PARTITION BY customer_id ORDER BY {key}) AS k FROM gt WHERE r = 1),
    ftw AS (SELECT max(CASE WHEN k = 1 THEN c END) AS first, max(CASE WHEN k = 2 THEN c END) AS second
            FROM ft WHERE k <= 2 GROUP BY customer_id)
    SELECT first, second, count(*) AS n
    FROM (SELECT * FROM clear UNION ALL SELECT first, second FROM ftw) GROUP BY ALL"""
    raw = ds.sql(q)
    customers = int(raw["n"].sum())
    moved = raw.dropna(subset=["second"])
    movers = int(moved["n"].sum())
    if movers < MIN_MULTI:
        raise Unsupported("few_movers", n=movers, need=MIN_MULTI, customers=customers)
    starters = raw.groupby("first", as_index=False)["n"].sum().rename(columns={"n": "customers"})
    mv = moved.groupby("first")["n"].sum()
    starters["moved_on"] = starters["first"].map(mv).fillna(0).astype(int)
    starters["moved_share"] = starters["moved_on"] / starters["customers"]
    starters = starters.sort_values("customers", ascending=False).reset_index(drop=True)
    cats = sorted(set(starters["first"]) | set(moved["second"]))
    n_first = mv.reindex(cats, fill_value=0)
    ab = moved.pivot_table(index="first", columns="second", values="n", aggfunc="sum", fill_value=0)
    ab = ab.reindex(index=cats, columns=cats, fill_value=0)
    M = ab.to_numpy(dtype=float)
    nf = n_first.to_numpy(dtype=float)
    col = M.sum(axis=0)  # movers whose second is B
    rows = []
    for i, a in enumerate(cats):
        if nf[i] < min_first:
            continue
        for j, b in enumerate(cats):
            if i == j:
                continue
            # reference: movers who started neither in A nor in B
            ref_n = movers - nf[i] - nf[j]
            ref_k = col[j] - M[i, j] - M[j, j]  # M[j, j] == 0 (second differs from first)
            rows.append((a, b, M[i, j], nf[i], ref_k, ref_n))
    tr = pd.DataFrame(rows, columns=["first", "second", "n", "n_first", "ref_k", "ref_n"])
    if tr.empty:
        raise Unsupported("few_starters", need=min_first)
    tr["share"] = tr["n"] / tr["n_first"]
    tr["share_low"], tr["share_high"] = wilson(tr["n"], tr["n_first"])
    tr["base"] = np.where(tr["ref_n"] > 0, tr["ref_k"] / tr["ref_n"].where(tr["ref_n"] > 0, 1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        tr["lift"] = tr["share"] / tr["base"]
        se = np.sqrt(1 / tr["n"] - 1 / tr["n_first"] + 1 / tr["ref_k"] - 1 / tr["ref_n"])
        ok = (tr["n"] > 0) & (tr["ref_k"] > 0)
        tr["lift_low"] = np.where(ok, tr["lift"] * np.exp(-1.96 * se), np.nan)
        tr["lift_high"] = np.where(ok, tr["lift"] * np.exp(1.96 * se), np.nan)
    # exact one-sided test: among A-starters and reference movers together, are the B-choosers
    # concentrated among A-starters?
    tot_n = tr["n_first"] + tr["ref_n"]
    tot_k = tr["n"] + tr["ref_k"]
    tr["p"] = np.where(tr["ref_n"] > 0, stats.hypergeom.sf(tr["n"] - 1, tot_n, tot_k, tr["n_first"]), np.nan)
    tr["q"] = bh(tr["p"].to_numpy())
    for c in ("n", "n_first", "ref_k", "ref_n"):
        tr[c] = tr[c].astype(int)
    tr = tr.sort_values(["lift", "n"], ascending=[False, False]).reset_index(drop=True)
    return Sequence(tr, starters, customers, movers)


# ------------------------------------------------------------------ 3. recommendations
@dataclass(frozen=True, repr=False)
class Recommendations(Result):
    """Next-best categories per customer, tested on a time-split holdout against the popularity baseline."""

    heading: ClassVar[str] = "crosssell.h.recommend"
    k: int
    cutoff: dt.date
    end: dt.date
    n_eval: int  # holdout customers evaluated
    n_trivial: int  # holdout customers left out: k or fewer categories left to recommend
    hits_model: int
    hits_pop: int
    diff: float
    diff_ci: tuple[float, float]
    coverage_model: float
    coverage_pop: float
    n_categories: int
    beats: bool
    popular: tuple[str, ...]  # the baseline's order (training popularity)
    customers: pd.DataFrame = field(default_factory=pd.DataFrame)  # customer_id, categories, rec_1..rec_k, score
    listed_of: int = 0  # customers that could get a list (active)
    active_months: int = 12

    @property
    def rate_model(self) -> float:
        return self.hits_model / self.n_eval

    @property
    def rate_pop(self) -> float:
        return self.hits_pop / self.n_eval

    def findings(self, lang: str = "en") -> list[Finding]:
        lo_m, hi_m = wilson(self.hits_model, self.n_eval)
        lo_p, hi_p = wilson(self.hits_pop, self.n_eval)
        how = _tr("how.recommend", lang, k=self.k, cutoff=self.cutoff.isoformat(), end=self.end.isoformat(),
                  n=fmt_int(self.n_eval, lang), m=fmt_pct(self.rate_model, lang),
                  m_lo=fmt_pct(float(lo_m), lang), m_hi=fmt_pct(float(hi_m), lang), p=fmt_pct(self.rate_pop, lang),
                  p_lo=fmt_pct(float(lo_p), lang), p_hi=fmt_pct(float(hi_p), lang),
                  lo=fmt_num(100 * self.diff_ci[0], lang, 1), hi=fmt_num(100 * self.diff_ci[1], lang, 1),
                  trivial=fmt_int(self.n_trivial, lang))
        key = "find.recommend_beats" if self.beats else "find.recommend_not"
        out = [Finding("crosssell_recommendation_lift",
                       _tr(key, lang, k=self.k, m=fmt_pct(self.rate_model, lang), p=fmt_pct(self.rate_pop, lang),
                           diff=fmt_num(100 * abs(self.diff), lang, 1)),
                       value=self.diff, headline=self.beats, interval=self.diff_ci, null=0.0, n=self.n_eval,
                       value_range=(-1.0, 1.0), how=how,
                       action=_tr("action.recommend", lang) if self.beats else "")]
        out.append(Finding("crosssell_coverage", _tr("find.coverage", lang, m=fmt_pct(self.coverage_model, lang),
                                                     p=fmt_pct(self.coverage_pop, lang),
                                                     k=fmt_int(self.n_categories, lang)),
                           value={"model": self.coverage_model, "popularity": self.coverage_pop}))
        if self.beats and len(self.customers):
            out.append(Finding("crosssell_list", _tr("find.list", lang, n=fmt_int(len(self.customers), lang),
                                                     of=fmt_int(self.listed_of, lang), months=self.active_months), value=len(self.customers)))
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        lo, hi = wilson([self.hits_model, self.hits_pop], [self.n_eval, self.n_eval])
        rates = [self.rate_model, self.rate_pop]
        fig = go.Figure(go.Bar(x=[_tr("rec.model", lang), _tr("rec.popular", lang)], y=rates,
                               marker_color=[viz.PALETTE[0], viz.PALETTE[1]],
                               text=[fmt_pct(v, lang) for v in rates], textposition="outside",
                               error_y=dict(type="data", symmetric=False, array=(hi - rates).tolist(),
                                            arrayminus=(rates - lo).tolist(), width=4)))
        fig.update_layout(title=_tr("rec.title", lang, k=self.k), yaxis=dict(tickformat=".0%", range=[0, 1.05],
                          title=_tr("rec.hit", lang, k=self.k)), height=360)
        return [fig]

    def tables(self, lang: str = "en") -> list[Table]:
        if not self.beats or self.customers.empty:
            return []
        cols = {"customer_id": "customer_id", "categories": _tr("col.categories_bought", lang)}
        cols.update({f"rec_{i}": _tr("col.rec", lang, i=i) for i in range(1, self.k + 1)})
        frame = self.customers[list(cols)].rename(columns=cols)
        return [Table(frame, {cols["categories"]: lambda v: fmt_int(v, lang)}, caption=_tr("rec.caption", lang),
                      appendix=True, export="next_best_category", max_rows=20)]

    def notes(self, lang: str = "en") -> list[str]:
        out = [_tr("note.recommend", lang, k=self.k, trivial=fmt_int(self.n_trivial, lang))]
        if not self.beats:
            out.append(_tr("note.no_list", lang, popular=", ".join(self.popular[: self.k])))
        return out

    def metrics(self) -> dict[str, Any]:
        return {"crosssell_recommendations": {
            "k": self.k, "cutoff": self.cutoff.isoformat(), "end": self.end.isoformat(), "n_eval": self.n_eval,
            "n_left_out_trivial": self.n_trivial, "hit_rate_model": self.rate_model,
            "hit_rate_popularity": self.rate_pop, "difference": self.diff, "difference_ci": list(self.diff_ci),
            "coverage_model": self.coverage_model, "coverage_popularity": self.coverage_pop,
            "model": "item_cooccurrence", "beats_baseline": self.beats, "customers_listed": len(self.customers)}}


def _pairs(ds: Dataset, end: dt.date) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], int]:
    """Integer-coded (customer, category) pairs with the first and last purchase day (days since 1970).

    Customer code ``u`` = position of the customer id in the sorted list of buying customers
    (:func:`_customer_ids` returns that list); category code ``i`` = position in ``names`` (sorted).
    """
    q = f"""
    WITH p AS (SELECT customer_id, CAST(product_category AS VARCHAR) AS c,
                      min(CAST(date AS DATE)) AS first, max(CAST(date AS DATE)) AS last
               FROM transactions WHERE {_purchase(ds, end)} GROUP BY 1, 2),
    cu AS (SELECT customer_id, CAST(row_number() OVER (ORDER BY customer_id) - 1 AS INTEGER) AS u
           FROM (SELECT DISTINCT customer_id FROM p)),
    ca AS (SELECT c, CAST(row_number() OVER (ORDER BY c) - 1 AS INTEGER) AS i FROM (SELECT DISTINCT c FROM p))
    SELECT cu.u, ca.i, CAST(date_diff('day', DATE '1970-01-01', p.first) AS INTEGER) AS first,
           CAST(date_diff('day', DATE '1970-01-01', p.last) AS INTEGER) AS last
    FROM p JOIN cu USING (customer_id) JOIN ca USING (c)"""
    df = ds.sql(q)
    u = df["u"].to_numpy(dtype=np.int64)
    i = df["i"].to_numpy(dtype=np.int64)
    names = ds.sql(f"SELECT DISTINCT CAST(product_category AS VARCHAR) AS c FROM transactions "
                   f"WHERE {_purchase(ds, end)} ORDER BY 1")["c"].astype(str).tolist()  # the order of ``ca``
    n_users = int(u.max()) + 1 if u.size else 0
    return u, i, df["first"].to_numpy(dtype=np.int64), df["last"].to_numpy(dtype=np.int64), names, n_users


def _customer_ids(ds: Dataset, end: dt.date) -> np.ndarray:
    """Buying customers' ids in the order of :func:`_pairs`' customer codes."""
    return ds.sql(f"SELECT DISTINCT customer_id FROM transactions WHERE {_purchase(ds, end)} ORDER BY 1")[
        "customer_id"].astype(str).to_numpy()


def _day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _cooc(X: sparse.csr_matrix) -> np.ndarray:
    """Item-item conditional co-occurrence P[b, c] = share of customers with b who also bought c (diag 0)."""
    C = (X.T @ X).toarray().astype(float)
    d = np.diag(C).copy()
    P = C / np.where(d > 0, d, 1.0)[:, None]
    np.fill_diagonal(P, 0.0)
    return P


def top_k(X: sparse.csr_matrix, P: np.ndarray, pop: np.ndarray, k: int, chunk: int = 200_000
          ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` not-yet-bought categories per row of X by co-occurrence score (ties by popularity).

    Returns (items, scores), each rows × k; item −1 where fewer than k categories are left.
    """
    n, m = X.shape
    kk = min(k, m)
    items = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), np.nan)
    tie = pop / (pop.max() + 1.0) * 1e-6
    step = max(1, min(chunk, int(2e7 // max(m, 1))))
    for s in range(0, n, step):
        Xc = X[s:s + step]
        S = np.asarray(Xc @ P) + tie
        S[Xc.toarray() > 0] = -np.inf
        idx = np.argpartition(-S, kk - 1, axis=1)[:, :kk] if kk < m else np.tile(np.arange(m), (S.shape[0], 1))
        val = np.take_along_axis(S, idx, axis=1)
        o = np.argsort(-val, axis=1, kind="stable")
        idx, val = np.take_along_axis(idx, o, axis=1), np.take_along_axis(val, o, axis=1)
        bad = ~np.isfinite(val)
        idx[bad] = -1
        val[bad] = np.nan
        items[s:s + step, :kk], scores[s:s + step, :kk] = idx, val
    return items, scores


@analysis("crosssell.h.recommend")
def recommend(ds: Dataset, end: Any, k: int = 3, holdout_months: int = 6, active_months: int = 12,
              max_list: int | None = 5000) -> Recommendations:
    """Next-best categories by item-based co-occurrence, tested against the popularity baseline.

    Holdout: purchases up to ``end − holdout_months`` train both models (co-occurrence P(c | b) summed over
    the customer's categories; popularity = customers per category); a holdout customer bought before the
    cutoff and then a category new to them after it. Hit = a new category among the top ``k`` not yet
    bought. Customers with ``k`` or fewer categories left are not counted (any ``k`` would hit). Paired
    difference of hit rates with a normal 95% interval; the model "beats" the baseline when the interval
    lies above 0. Only then is a list made: customers active in the last ``active_months`` get their
    top ``k`` from the model refitted on all purchases to ``end`` (``max_list`` customers with the
    strongest first recommendation; ``None`` = all).
    """
    _check(ds)
    end = _as_date(end)
    cutoff = _add_months(end, -holdout_months)
    u, i, first, last, names, n_users = _pairs(ds, end)
    m = len(names)
    if m <= k:
        raise Unsupported("few_to_choose", n=m, k=k)
    trn = first <= _day(cutoff)
    Xtr = sparse.csr_matrix((np.ones(int(trn.sum())), (u[trn], i[trn])), shape=(n_users, m))
    Xte = sparse.csr_matrix((np.ones(int((~trn).sum())), (u[~trn], i[~trn])), shape=(n_users, m))
    n_tr = np.asarray(Xtr.sum(axis=1)).ravel()
    n_te = np.asarray(Xte.sum(axis=1)).ravel()
    cand = (n_tr > 0) & (n_te > 0)
    informative = cand & (m - n_tr > k)
    n_eval, n_trivial = int(informative.sum()), int((cand & ~informative).sum())
    if n_eval < MIN_EVAL:
        raise Unsupported("few_holdout", n=n_eval, need=MIN_EVAL, months=holdout_months)
    pop = np.asarray(Xtr.sum(axis=0)).ravel()
    P = _cooc(Xtr)
    rows = np.flatnonzero(informative)
    Xe = Xtr[rows]
    rec_m, _ = top_k(Xe, P, pop, k)
    rec_p, _ = top_k(Xe, np.zeros_like(P), pop, k)
    T = Xte[rows].toarray() > 0
    hit_m = _hits(rec_m, T)
    hit_p = _hits(rec_p, T)
    d = hit_m.astype(float) - hit_p
    diff = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    ci = (diff - 1.96 * se, diff + 1.96 * se)
    beats = bool(ci[0] > 0)
    cov_m = len(np.unique(rec_m[rec_m >= 0])) / m
    cov_p = len(np.unique(rec_p[rec_p >= 0])) / m
    popular = tuple(names[j] for j in np.argsort(-pop, kind="stable"))
    listed = pd.DataFrame()
    listed_of = 0
    if beats:
        X = sparse.csr_matrix((np.ones(u.size), (u, i)), shape=(n_users, m))
        last_u = np.full(n_users, np.iinfo(np.int64).min)
        np.maximum.at(last_u, u, last)
        active = np.flatnonzero(last_u > _day(_add_months(end, -active_months)))
        listed, listed_of = _customer_list(ds, end, X, active, k, max_list, names)
    return Recommendations(k, cutoff, end, n_eval, n_trivial, int(hit_m.sum()), int(hit_p.sum()), diff, ci, cov_m,
                           cov_p, m, beats, popular, listed, listed_of, active_months)


def _hits(rec: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Whether any recommended item (−1 = none) is in the customer's holdout categories."""
    safe = np.where(rec >= 0, rec, 0)
    got = np.take_along_axis(truth, safe, axis=1) & (rec >= 0)
    return got.any(axis=1)


def _customer_list(ds: Dataset, end: dt.date, X: sparse.csr_matrix, active: np.ndarray, k: int,
                   max_list: int | None, names: list[str]) -> tuple[pd.DataFrame, int]:
    """Top-k next categories for the ``active`` customer codes, from co-occurrence on all purchases ``X``.

    Returns the list (``max_list`` customers with the strongest first recommendation; ``None`` = all) and
    how many active customers had a recommendation.
    """
    if active.size == 0:
        return pd.DataFrame(), 0
    m = len(names)
    Xa = X[active]
    items, scores = top_k(Xa, _cooc(X), np.asarray(X.sum(axis=0)).ravel(), k)
    has = items[:, 0] >= 0
    n_all = int(has.sum())
    order = np.lexsort((active, -np.nan_to_num(scores[:, 0], nan=-np.inf)))
    order = order[has[order]]
    if max_list is not None:
        order = order[: int(max_list)]
    ids = _customer_ids(ds, end)
    lab = np.asarray(names + [""], dtype=object)
    out = pd.DataFrame({"customer_id": ids[active[order]],
                        "categories": np.asarray(Xa[order].sum(axis=1)).ravel().astype(int)})
    for j in range(k):
        out[f"rec_{j + 1}"] = lab[np.where(items[order, j] >= 0, items[order, j], m)]
    out["score"] = scores[order, 0]
    return out.reset_index(drop=True), n_all
