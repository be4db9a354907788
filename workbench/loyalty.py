"""Satisfaction versus loyalty (满意度 ≠ 忠诚度, DOMAIN.md §1), measured on the user's data.

Pipeline
--------
1. :func:`respondent_frame` builds one row per survey response **in the engine**
   (DuckDB SQL): survey answers joined to the respondent's purchases in the
   ``window_days`` after the survey (repeat buying, frequency, spend, margin),
   churn (no purchase within ``churn_days``), purchase history before the
   survey, tenure, discount share of spend, complaints, membership, value tier
   and customer attributes. Raw transactions never reach pandas.
2. Statistics run in numpy / scipy / statsmodels on that frame:

   - :func:`correlations` — Pearson / Spearman / Kendall with Fisher-z CIs and
     Holm (default) or Benjamini–Hochberg correction;
   - :func:`loyalty_by_level`, :func:`fit_threshold`, :func:`thresholds` — the
     two thresholds (意愿 and 行为) by a hinge model, bootstrap CIs, compared with
     a straight line by a calibrated likelihood-ratio test;
   - :func:`expectation_gap`, :func:`four_cases`, :func:`intention_conversion`,
     :func:`key_drivers`, :func:`scorecard`, :func:`open_answers`,
     :func:`segment_comparison`, :func:`value_at_stake`;
   - :func:`widget_frame` / :func:`widget_figure` — pre-aggregated frames so
     interactive controls answer without touching the engine.

Every relationship reported here is **associational** (相关而非因果).
Figures (``figure_*``) return plotly figures with translated titles and
axis labels; findings (``finding_*``) return plain-language sentences. All
user-facing text comes from ``workbench/translations/loyalty.toml``.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from workbench import results, viz
from workbench.engine import Dataset, MissingDataError
from workbench.i18n import fmt_int, fmt_money, fmt_num, fmt_p, fmt_pct, t
from workbench.results import KPI, Finding, Result, Table

Z95 = 1.959963984540054
CASES = ("trust", "self_interest", "satisfied_loyal", "satisfied_not_loyal", "dissatisfied_not_loyal",
         "dissatisfied_loyal", "neutral", "unknown")
ATTITUDINAL = ("repurchase_intent", "recommend", "loyal")
MIN_N = 30  # fewest cases behind a headline or a model fit
R2_MIN = 0.10  # no driver headline below this R²
BEHAVIOURAL = ("repeat", "repeat_n", "spend_after", "freq_12m", "spend_12m", "tenure_days", "churned")


def _tr(key: str, lang: str, **values: Any) -> str:
    return t(f"loyalty.{key}", lang, **values)


class Unsupported(results.Unsupported):
    """The data are there but cannot support this analysis (too few levels, too few cases, ...).

    ``key`` names a ``loyalty.why.*`` translation and ``values`` fill it; ``reason(lang)`` gives
    "Skipped: <why>." in the reader's language (:class:`workbench.results.Skipped` shows it).
    """

    prefix = "loyalty.why."
    wrap = "loyalty.skipped"
    default_table = "surveys"


def skip_text(exc: MissingDataError, lang: str = "en", analysis_key: str = "") -> str:
    """"<analysis> — Skipped: <reason>" for a notebook note (the reason in plain words)."""
    text = _tr("skipped", lang, why=_tr(f"why.{exc.key}", lang, **exc.values)) if isinstance(exc, Unsupported) \
        else reason(exc, lang)
    return f"{t(analysis_key, lang)} — {text}" if analysis_key else text


def reason(exc: MissingDataError, lang: str = "en") -> str:
    """The plain reason for a skipped analysis: an :class:`Unsupported` reason, else "needs table/column"."""
    if isinstance(exc, Unsupported):
        return _tr(f"why.{exc.key}", lang, **exc.values)
    from workbench.notebook import _what_zh

    return t("core.skipped", lang, what=exc.what if lang == "en" else _what_zh(exc))


def evidence(estimate: float, lo: float, hi: float, n: int, null: float | None = 0.0,
             span: float | None = None, min_n: int = MIN_N) -> str:
    """Whether a number may be a headline: "ok", "not_enough_evidence" (fewer than ``min_n`` cases or the
    interval includes ``null``) or "not_estimable" (no finite interval, or one wider than the quantity's
    range ``span``: then no digits are printed)."""
    vals = (estimate, lo, hi)
    if any(v is None or not np.isfinite(float(v)) for v in vals) or (span is not None and hi - lo > span):
        return "not_estimable"
    if n < min_n or (null is not None and lo <= null <= hi):
        return "not_enough_evidence"
    return "ok"


def base_text(n: int, frame: pd.DataFrame | Mapping[str, Any] | None = None, lang: str = "en",
              followup: bool = False) -> str:
    """The base of a figure: n and the survey window (and the follow-up window for behaviour).

    ``frame``: the respondent frame or its ``attrs`` (a result's ``context``)."""
    attrs = frame.attrs if isinstance(frame, pd.DataFrame) else (frame or {})
    first = attrs.get("first")
    last = attrs.get("last")
    from workbench.i18n import fmt_date

    text = _tr("base.n_window", lang, n=fmt_int(n, lang), first=fmt_date(first, lang) if first is not None else "–",
               last=fmt_date(last, lang) if last is not None else "–")
    if followup and attrs:
        text += _tr("base.followup", lang, days=fmt_int(attrs.get("window_days", 90), lang))
    return text


# =============================================================== result plumbing (workbench.results)
def _context(frame: pd.DataFrame) -> dict[str, Any]:
    """What a result needs from the frame to describe its base: window, dates, scales, currency."""
    keep = ("first", "last", "window_days", "churn_days", "currency", "scales", "loyal_kind", "waves", "segment")
    return {k: frame.attrs[k] for k in keep if k in frame.attrs}


def _has_points(fig: Any) -> bool:
    """True when a figure has at least one finite data value (an empty chart is replaced by a message)."""
    fig = getattr(fig, "figure", fig)
    for tr in fig.data:
        attr = "x" if getattr(tr, "orientation", None) == "h" else ("z" if getattr(tr, "z", None) is not None else "y")
        vals = getattr(tr, attr, None)
        if vals is None:
            continue
        arr = pd.to_numeric(pd.Series(np.asarray(vals, dtype=object).ravel()), errors="coerce")
        if np.isfinite(arr.to_numpy(dtype=float)).any():
            return True
    return False


def _finding(key: str, text: str, status: str, lang: str, **ev: Any) -> Finding:
    """A finding that asks to be a headline only with evidence ``status == "ok"``; otherwise body text
    marked "not enough evidence", and never with digits when the number is not estimable."""
    how, action = ev.pop("how", ""), ev.pop("action", "")
    if status == "not_estimable":
        return Finding(key, _tr("find.not_estimable", lang), value=None, how=how)
    if status != "ok":
        return Finding(key, _tr("find.not_enough_evidence", lang, text=text), value=ev.get("value"), how=how)
    return Finding(key, text, headline=True, how=how, action=action, **ev)


class _Section(Result):
    """A loyalty section: figures without data points are left out and an empty-state note says so."""

    def _figs(self, lang: str = "en") -> list[Any]:
        return []

    def _notes(self, lang: str = "en") -> list[str]:
        return []

    def figures(self, lang: str = "en") -> list[Any]:
        return [f for f in self._figs(lang) if _has_points(f)]

    def notes(self, lang: str = "en") -> list[str]:
        out = list(self._notes(lang))
        if any(not _has_points(f) for f in self._figs(lang)):
            out.append(_tr("note.empty_chart", lang))
        return out


def _need(frame: pd.DataFrame, rows: int = 1) -> None:
    """Raise a plain reason when the frame has too few responses for a section."""
    if len(frame) < rows:
        if len(frame) == 0:
            raise Unsupported("no_responses")
        raise Unsupported("few_cases", n=fmt_int(len(frame)), min=fmt_int(rows))


def _section(key: str, rows: int = 1, interactive: bool = False) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorate a section: ``frame`` may be the frame or ``nb.data(...)``'s callable; too few responses or a
    :class:`MissingDataError` anywhere (also while building the frame) becomes a :class:`Skipped` result
    (``interactive``: of a widget section, left out of manager pages)."""

    def wrap(func: Callable[..., Result]) -> Callable[..., Result]:
        @functools.wraps(func)
        def run(frame: Any, *args: Any, **kwargs: Any) -> Result:
            try:
                if callable(frame) and not isinstance(frame, pd.DataFrame):
                    frame = frame()
                _need(frame, rows)
                return func(frame, *args, **kwargs)
            except MissingDataError as exc:
                return results.skipped(key, exc, interactive)

        run.section = key  # type: ignore[attr-defined]
        run.interactive = interactive  # type: ignore[attr-defined]
        return run

    return wrap


# =============================================================== scales (from the data contract)
def scale_points(lo: float, hi: float) -> int | None:
    """Number of answer points of an integer scale (5 for 1–5, 11 for 0–10); None for sliders (> 11 points)."""
    n = hi - lo + 1
    return int(n) if float(lo).is_integer() and float(hi).is_integer() and n <= 11 else None


def box_cuts(lo: float, hi: float) -> tuple[float, float]:
    """(bottom-box upper cut, top-box lower cut) of a scale, derived from the scale itself.

    Yes/no (two points): bottom = ``lo``, top = ``hi``. Three or four points (1–3, 1–4): the bottom and top
    answer. Five to eleven points (1–5, 1–7, 0–10): the two bottom / two top answers (top-2-box; 9–10 on 0–10).
    Sliders (0–100 and other wide or continuous scales): the bottom / top fifth of the range.
    """
    pts = scale_points(lo, hi)
    if pts is None:
        return (lo + 0.2 * (hi - lo), lo + 0.8 * (hi - lo))
    if pts <= 4:
        return (lo, hi)
    return (lo + 1, hi - 1)


def resolve_cut(value: Any, lo: float, hi: float, which: str) -> float:
    """A four-case cut-off on the scale [lo, hi].

    ``value``: "top box" / "bottom box" (default, :func:`box_cuts`); a share of the scale as "80%" or a
    number strictly between 0 and 1 (lo + share × (hi − lo)); else a level on the scale. ``which`` is
    "high" or "low" and picks the box for the default. A level outside the scale raises
    :class:`Unsupported` (so a 1–5 cut-off on a yes/no survey is a plain reason, not a wrong split).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "top box", "bottom box", "box",
                                                                             "auto")):
        b, tp = box_cuts(lo, hi)
        if isinstance(value, str) and value.strip().lower() in ("top box", "bottom box"):
            return tp if value.strip().lower() == "top box" else b
        return tp if which == "high" else b
    if isinstance(value, str) and value.strip().endswith("%"):
        return lo + float(value.strip()[:-1]) / 100 * (hi - lo)
    v = float(value)
    if 0 < v < 1:
        return lo + v * (hi - lo)
    if not lo <= v <= hi:
        raise Unsupported("cut_outside_scale", columns=("satisfaction",), value=fmt_num(v, digits=2),
                          lo=fmt_num(lo, digits=0), hi=fmt_num(hi, digits=0))
    return v


# =============================================================== small stats helpers
def wilson(k: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    """Wilson 95% interval for k successes out of n (NaN where n == 0)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    safe = np.where(n > 0, n, 1.0)
    lo, hi = proportion_confint(np.minimum(k, safe), safe, alpha=0.05, method="wilson")
    lo = np.where(n > 0, lo, np.nan)
    hi = np.where(n > 0, hi, np.nan)
    return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


def mean_ci(x: pd.Series | np.ndarray) -> tuple[float, float, float, int]:
    """Mean with a t-based 95% interval; returns (mean, low, high, n)."""
    v = pd.to_numeric(pd.Series(x), errors="coerce").dropna().to_numpy(dtype=float)
    n = v.size
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    m = float(v.mean())
    if n < 2:
        return (m, math.nan, math.nan, n)
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return (m, m - half, m + half, n)


def _adjust(p: Sequence[float], method: str) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out


CORRECTIONS = {"holm": "Holm", "fdr_bh": "Benjamini–Hochberg"}


# =============================================================== respondent frame
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def respondent_frame(ds: Dataset, end: dt.date | None = None, start: dt.date | None = None,
                     window_days: int = 90, churn_days: int = 180, segment: str = "",
                     key_share: float = 0.2) -> pd.DataFrame:
    """One row per survey response with attitudinal and behavioural loyalty measures.

    Built by one engine query; only the per-response result reaches pandas.

    Parameters
    ----------
    ds : Dataset
        Needs ``surveys``; behavioural columns need ``surveys.customer_id`` and
        ``transactions`` (else they are missing and ``attrs["behaviour"]`` is False).
    end, start : date, optional
        Survey dates in ``[start, end]``; ``end`` also ends the follow-up.
    window_days : int
        Repeat buying = at least one purchase (amount > 0) in ``(date, date + window_days]``;
        counted only when the follow-up is complete (``date + window_days <= data end``).
    churn_days : int
        ``churned`` = no purchase in ``(date, date + churn_days]`` (complete follow-up only).
    segment : str
        Keep only respondents of this customer segment ("" = all).
    key_share : float
        Key customers (关键客户) = the top ``key_share`` of customers by revenue in the 365 days
        before ``end`` (the top two layers of the customer pyramid).

    Returns
    -------
    pandas.DataFrame
        Survey columns (satisfaction, repurchase_intent, recommend, loyal, expectation, drivers,
        comment when present) plus ``identified, followup, repeat, repeat_n, spend_after,
        margin_after, churned, freq_12m, spend_12m, margin_12m, tenure_days, discount_share,
        complained, member, key_customer, segment, region, channel, month``.
        ``attrs`` records ``window_days``, ``churn_days``, ``data_end``, ``behaviour``,
        ``drivers``, ``scales``.
    """
    ds.require("surveys", "satisfaction")
    ds.require("surveys", "date", reason="survey dates (or a wave_date for an undated file)")
    scols = ds.columns("surveys")
    drivers = [d for d in ds.drivers if d in scols]
    base = ("response_id", "customer_id", "date", "satisfaction", "repurchase_intent", "recommend", "loyal",
            "expectation", "comment", "wave")
    survey_segments = [c for c in segment_columns(ds, "surveys") if c in scols and c not in base and c not in drivers]
    keep = [c for c in base if c in scols] + drivers + survey_segments
    where = ["s.date IS NOT NULL"]
    params: list[Any] = []
    if end is not None:
        where.append("s.date <= ?")
        params.append(end)
    if start is not None:
        where.append("s.date >= ?")
        params.append(start)
    behaviour = ds.has("surveys", "customer_id") and ds.has("transactions", "customer_id", "date", "amount")
    data_end = end
    if behaviour:
        hi = ds.date_range("transactions", "date")[1]
        if hi is not None:
            hi = hi.date() if isinstance(hi, dt.datetime) else hi
            data_end = min(hi, end) if end is not None else hi
    has_cust = ds.has("customers", "customer_id")
    cust_cols = [c for c in dict.fromkeys(("segment", "region", "channel", *segment_columns(ds, "customers")))
                 if ds.has("customers", c) and c not in keep and c != "customer_id"] if has_cust else []
    if segment and "segment" not in cust_cols:
        raise MissingDataError("customers", ("segment",), "segment filter")
    sel = ", ".join(f"s.{_q(c)}" for c in keep)
    ctes = [f"s AS (SELECT row_number() OVER (ORDER BY s.date, {('s.response_id, ' if 'response_id' in scols else '')}"
            f"s.satisfaction) AS _rid, {sel} FROM surveys s WHERE {' AND '.join(where)})"]
    joins, cols = [], []
    if behaviour:
        has_disc = ds.has("transactions", "discount")
        has_margin = ds.has("transactions", "margin")
        disc = "COALESCE(discount, 0)" if has_disc else "0"
        marg = "margin" if has_margin else "NULL"
        horizon = max(window_days, churn_days)
        end_filter = "AND date <= ?" if data_end is not None else ""
        # only respondents' purchases are needed per response (a semi-join keeps the range joins small)
        ctes.append(f"pos AS (SELECT customer_id, date, amount, {disc} AS discount, {marg} AS margin "
                    f"FROM transactions WHERE amount > 0 {end_filter} "
                    f"AND customer_id IN (SELECT customer_id FROM s WHERE customer_id IS NOT NULL))")
        if data_end is not None:
            params.append(data_end)
        ctes.append(
            f"aft AS (SELECT s._rid, count(*) FILTER (WHERE t.date <= s.date + {int(window_days)}) AS repeat_n, "
            f"round(sum(t.amount) FILTER (WHERE t.date <= s.date + {int(window_days)}), 6) AS spend_after, "
            f"round(sum(t.margin) FILTER (WHERE t.date <= s.date + {int(window_days)}), 6) AS margin_after, "
            f"count(*) FILTER (WHERE t.date <= s.date + {int(churn_days)}) AS n_churn_window "
            f"FROM s JOIN pos t ON t.customer_id = s.customer_id AND t.date > s.date "
            f"AND t.date <= s.date + {int(horizon)} GROUP BY s._rid)")
        # sums rounded to 1e-6: engines (and parallel runs) add in different orders, and a last-bit difference
        # split ties that rank correlations and the key-customer bar must see as ties
        ctes.append(
            "bef AS (SELECT s._rid, count(*) AS freq_12m, round(sum(t.amount), 6) AS spend_12m, "
            "round(sum(t.margin), 6) AS margin_12m "
            "FROM s JOIN pos t ON t.customer_id = s.customer_id AND t.date > s.date - 365 AND t.date <= s.date "
            "GROUP BY s._rid)")
        ctes.append("cst AS (SELECT customer_id, min(date) AS first_buy, "
                    "sum(discount) / NULLIF(sum(amount + discount), 0) AS discount_share FROM pos GROUP BY 1)")
        # key customers: revenue in the last 365 days at or above the (1 - key_share) quantile of all buyers
        last_year = f"AND date > DATE '{data_end}' - 365 AND date <= DATE '{data_end}'" if data_end is not None else ""
        ctes.append(f"rev AS (SELECT customer_id, round(sum(amount), 6) AS rev FROM transactions WHERE amount > 0 {last_year} "
                    f"GROUP BY 1)")
        ctes.append(f"val AS (SELECT r.customer_id, r.rev >= (SELECT quantile_cont(rev, {1 - float(key_share)}) "
                    f"FROM rev) AS key FROM rev r WHERE r.customer_id IN (SELECT customer_id FROM s))")
        joins += ["LEFT JOIN aft ON aft._rid = s._rid", "LEFT JOIN bef ON bef._rid = s._rid",
                  "LEFT JOIN cst ON cst.customer_id = s.customer_id",
                  "LEFT JOIN val ON val.customer_id = s.customer_id"]
        fu = (f"(s.customer_id IS NOT NULL AND s.date + {int(window_days)} <= DATE '{data_end}')"
              if data_end is not None else "(s.customer_id IS NOT NULL)")
        fu_c = (f"(s.customer_id IS NOT NULL AND s.date + {int(churn_days)} <= DATE '{data_end}')"
                if data_end is not None else "(s.customer_id IS NOT NULL)")
        cols += [
            f"{fu} AS followup",
            f"CASE WHEN {fu} THEN CAST(COALESCE(aft.repeat_n, 0) > 0 AS DOUBLE) END AS repeat",
            f"CASE WHEN {fu} THEN CAST(COALESCE(aft.repeat_n, 0) AS DOUBLE) END AS repeat_n",
            f"CASE WHEN {fu} THEN COALESCE(aft.spend_after, 0) END AS spend_after",
            f"CASE WHEN {fu} THEN COALESCE(aft.margin_after, 0) END AS margin_after",
            f"CASE WHEN {fu_c} THEN CAST(COALESCE(aft.n_churn_window, 0) = 0 AS DOUBLE) END AS churned",
            "CASE WHEN s.customer_id IS NOT NULL THEN CAST(COALESCE(bef.freq_12m, 0) AS DOUBLE) END AS freq_12m",
            "CASE WHEN s.customer_id IS NOT NULL THEN COALESCE(bef.spend_12m, 0) END AS spend_12m",
            "bef.margin_12m AS margin_12m",
            "cst.discount_share AS discount_share",
            "CAST(COALESCE(val.key, false) AS DOUBLE) AS key_customer",
        ]
        first = "cst.first_buy"
        if has_cust and ds.has("customers", "signup_date"):
            joins.append("LEFT JOIN customers c ON c.customer_id = s.customer_id")
            first = "COALESCE(c.signup_date, cst.first_buy)"
            cols += [f"c.{_q(c)} AS {_q(c)}" for c in cust_cols]
        cols.append(f"CAST(date_diff('day', {first}, s.date) AS DOUBLE) AS tenure_days")
        if ds.has("complaints", "customer_id", "opened_at"):
            ctes.append(f"cmp AS (SELECT DISTINCT s._rid FROM s JOIN complaints k ON k.customer_id = s.customer_id "
                        f"AND CAST(k.opened_at AS DATE) > s.date - 365 "
                        f"AND CAST(k.opened_at AS DATE) <= s.date + {int(window_days)})")
            joins.append("LEFT JOIN cmp ON cmp._rid = s._rid")
            cols.append("CASE WHEN s.customer_id IS NOT NULL THEN CAST(cmp._rid IS NOT NULL AS DOUBLE) END "
                        "AS complained")
        if ds.has("members", "customer_id", "joined_at"):
            left = "AND (m.left_at IS NULL OR m.left_at > s.date)" if ds.has("members", "left_at") else ""
            ctes.append(f"mem AS (SELECT DISTINCT s._rid FROM s JOIN members m ON m.customer_id = s.customer_id "
                        f"AND m.joined_at <= s.date {left})")
            joins.append("LEFT JOIN mem ON mem._rid = s._rid")
            cols.append("CASE WHEN s.customer_id IS NOT NULL THEN CAST(mem._rid IS NOT NULL AS DOUBLE) END AS member")
    elif has_cust and cust_cols and "customer_id" in scols:
        joins.append("LEFT JOIN customers c ON c.customer_id = s.customer_id")
        cols += [f"c.{_q(c)} AS {_q(c)}" for c in cust_cols]
    body = ", ".join(["s.*"] + cols)
    query = f"WITH {', '.join(ctes)} SELECT {body} FROM s {' '.join(joins)} ORDER BY s._rid"
    frame = ds.sql(query, params)
    frame = frame.drop(columns=["_rid"])
    if "customer_id" in frame:
        frame["identified"] = frame["customer_id"].notna()
    else:
        frame["identified"] = False
    if not behaviour:
        frame["followup"] = False
    frame["date"] = pd.to_datetime(frame["date"])
    frame["month"] = frame["date"].dt.strftime("%Y-%m")
    for c in ("satisfaction", "repurchase_intent", "recommend", "expectation", "loyal", *drivers):
        if c in frame:
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    if segment:
        frame = frame[frame["segment"] == segment].reset_index(drop=True)
    frame.attrs.update({
        "loyal_kind": str(getattr(ds, "loyal_kind", None) or "intent"),
        "waves": survey_waves(ds, frame),
        "segments": [c for c in (*cust_cols, *survey_segments) if c in frame],
        "survey_segments": survey_segments,
        "driver_labels": dict(getattr(ds, "driver_labels", None) or {}),
        "first": frame["date"].min() if len(frame) else None,
        "last": frame["date"].max() if len(frame) else None,
        "window_days": int(window_days), "churn_days": int(churn_days),
        "data_end": data_end.isoformat() if data_end is not None else None,
        "behaviour": bool(behaviour and frame["identified"].any()), "drivers": drivers,
        "scales": {c: ds.scale("surveys", c) for c in ("satisfaction", "repurchase_intent", "recommend",
                                                       "expectation", *drivers) if c in scols},
        "segment": segment, "currency": str(getattr(ds, "currency", "") or "CNY"),
    })
    return frame


def segment_columns(ds: Dataset, table: str) -> list[str]:
    """Attribute columns of ``table`` usable as segments (``ds.segment_columns``; [] before that accessor exists)."""
    fn = getattr(ds, "segment_columns", None)
    if fn is None:
        return []
    try:
        return [str(c) for c in fn(table)]
    except (MissingDataError, KeyError, ValueError):
        return []


def survey_waves(ds: Dataset, frame: pd.DataFrame | None = None) -> int:
    """Number of survey waves (``ds.survey_waves()``; else distinct waves or survey dates in the data)."""
    fn = getattr(ds, "survey_waves", None)
    if fn is not None:
        try:
            return int(fn())
        except (MissingDataError, KeyError, ValueError, TypeError):
            pass
    col = "wave" if ds.has("surveys", "wave") else "date"
    if not ds.has("surveys", col):
        return 0
    return int(ds.sql(f"SELECT count(DISTINCT {col}) AS n FROM surveys").iloc[0]["n"])


def require_behaviour(frame: pd.DataFrame) -> None:
    """Raise :class:`MissingDataError` when the survey cannot be linked to purchases."""
    if not frame.attrs.get("behaviour", "repeat" in frame) or "repeat" not in frame or not frame["identified"].any():
        raise MissingDataError("surveys", ("customer_id",), "behavioural loyalty needs identified respondents "
                               "linked to transactions")
    if not frame["followup"].any():
        raise MissingDataError("transactions", (), "no survey has a complete follow-up window")


def out_of_scale(ds: Dataset) -> pd.DataFrame:
    """Ratings the loader found outside their scale (nulled, so not averaged in): column, count, scale."""
    ex = ds.validation.exclusions()
    ex = ex[(ex["table"] == "surveys") & (ex["rule"] == "out_of_scale")]
    rows = [{"column": r.column, "count": int(r.count),
             "scale": "–".join(fmt_num(v, digits=0) for v in ds.scale("surveys", r.column))}
            for r in ex.itertuples()]
    return pd.DataFrame(rows, columns=["column", "count", "scale"])


def _scale(frame: pd.DataFrame, col: str) -> tuple[float, float]:
    """The column's scale as the data contract gives it (``frame.attrs["scales"]``, from ``ds.scale``)."""
    scales = frame.attrs.get("scales", {})
    if col in scales:
        lo, hi = scales[col]
        return float(lo), float(hi)
    if col in ("loyal", "repeat", "churned"):
        return (0.0, 1.0)
    from workbench.schema import DEFAULT_SCALE

    return float(DEFAULT_SCALE[0]), float(DEFAULT_SCALE[1])


def top_box(frame: pd.DataFrame, col: str) -> pd.Series:
    """1.0 where the answer is in the top box of its scale (:func:`box_cuts`: 4–5 on 1–5, 9–10 on 0–10,
    1 on yes/no), NaN where missing."""
    lo, hi = _scale(frame, col)
    cut = box_cuts(lo, hi)[1]
    return (frame[col] >= cut).astype(float).where(frame[col].notna())


def bottom_box(frame: pd.DataFrame, col: str) -> pd.Series:
    """1.0 where the answer is in the bottom box of its scale (:func:`box_cuts`), NaN where missing."""
    lo, hi = _scale(frame, col)
    cut = box_cuts(lo, hi)[0]
    return (frame[col] <= cut).astype(float).where(frame[col].notna())


def is_binary(frame: pd.DataFrame, col: str = "satisfaction") -> bool:
    """True when the column's scale (data contract) is yes/no: two points, e.g. [0, 1]."""
    lo, hi = _scale(frame, col)
    return scale_points(lo, hi) == 2


# =============================================================== 1. correlations
def _fisher_ci(r: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return np.tanh(z - Z95 * se), np.tanh(z + Z95 * se)


def correlation_table(frame: pd.DataFrame, x: str = "satisfaction", ys: Sequence[str] | None = None,
                 methods: Sequence[str] = ("pearson", "spearman", "kendall"),
                 correction: str = "holm") -> pd.DataFrame:
    """Correlation of ``x`` with every loyalty measure, three methods, CIs and corrected p-values.

    CIs use Fisher's z: SE = 1/sqrt(n-3) for Pearson, the Bonett–Wright SE
    sqrt((1 + r²/2)/(n-3)) for Spearman and the Fieller SE sqrt(0.437/(n-4)) for
    Kendall's tau-b. p-values come from scipy (pearsonr, spearmanr, kendalltau)
    and are corrected for the number of tests (``correction``: "holm" or
    "fdr_bh"; column ``p_adjusted``). Pairwise-complete rows.

    Returns columns ``x, y, kind (attitudinal/behavioural), method, r, ci_low, ci_high, p_value,
    p_adjusted, n, significant``; ``attrs["correction"]`` names the correction.
    """
    if ys is None:
        ys = [c for c in (*ATTITUDINAL, *BEHAVIOURAL) if c in frame and c != x]
    if not ys:
        raise MissingDataError("surveys", ("repurchase_intent", "recommend", "loyal"), "a loyalty measure")
    rows = []
    for y in ys:
        sub = frame[[x, y]].apply(pd.to_numeric, errors="coerce").dropna()
        n = len(sub)
        a, b = sub[x].to_numpy(float), sub[y].to_numpy(float)
        for m in methods:
            if n < 5 or np.ptp(a) == 0 or np.ptp(b) == 0:
                rows.append({"x": x, "y": y, "method": m, "r": np.nan, "p_value": np.nan, "n": n})
                continue
            if m == "pearson":
                r, p = stats.pearsonr(a, b)
                se = 1 / math.sqrt(n - 3)
            elif m == "spearman":
                r, p = stats.spearmanr(a, b)
                se = math.sqrt((1 + r * r / 2) / (n - 3))
            elif m == "kendall":
                r, p = stats.kendalltau(a, b)
                se = math.sqrt(0.437 / (n - 4))
            else:
                raise ValueError(f"unknown method {m!r}")
            lo, hi = _fisher_ci(np.array([r]), np.array([se]))
            rows.append({"x": x, "y": y, "method": m, "r": float(r), "ci_low": float(lo[0]),
                         "ci_high": float(hi[0]), "p_value": float(p), "n": n})
    out = pd.DataFrame(rows, columns=["x", "y", "method", "r", "ci_low", "ci_high", "p_value", "n"])
    loyal_beh = loyal_is_behaviour(frame)
    out.insert(2, "kind", ["behavioural" if y == "loyal" and loyal_beh else
                           "attitudinal" if y in ATTITUDINAL else "behavioural" for y in out["y"]])
    out["p_adjusted"] = _adjust(out["p_value"], correction)
    out["significant"] = out["p_adjusted"] < 0.05
    out.attrs["correction"] = CORRECTIONS.get(correction, correction)
    out.attrs["loyal_kind"] = "behaviour" if loyal_beh else "intent"
    return out


def corr_measure_label(corr: pd.DataFrame, y: str, lang: str = "en") -> str:
    """Translated name of a correlated measure; the survey's ``loyal`` is named by its kind (behaviour/intent)."""
    if y == "loyal":
        return _tr(f"measure.loyal_{corr.attrs.get('loyal_kind', 'intent')}", lang)
    return _tr(f"measure.{y}", lang)


def figure_correlations(corr: pd.DataFrame, lang: str = "en") -> go.Figure:
    """Heatmap: loyalty measures × methods, coloured by r, annotated with r and the corrected p."""
    ys = list(dict.fromkeys(corr["y"]))
    methods = list(dict.fromkeys(corr["method"]))
    piv = corr.pivot(index="y", columns="method", values="r").reindex(index=ys, columns=methods)
    pad = corr.pivot(index="y", columns="method", values="p_adjusted").reindex(index=ys, columns=methods)
    text = [[("–" if pd.isna(piv.iloc[i, j]) else f"{piv.iloc[i, j]:.2f}"
              + ("*" if pd.notna(pad.iloc[i, j]) and pad.iloc[i, j] < 0.05 else ""))
             for j in range(len(methods))] for i in range(len(ys))]
    fig = go.Figure(go.Heatmap(
        z=piv.to_numpy(), x=[_tr(f"method.{m}", lang) for m in methods], y=[corr_measure_label(corr, y, lang) for y in ys],
        text=text, texttemplate="%{text}", zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
        colorbar=dict(title="r")))
    fig.update_layout(title=_tr("fig.correlations", lang, correction=_tr(
        "correction." + ("holm" if corr.attrs.get("correction", "Holm") == "Holm" else "fdr_bh"), lang)),
        xaxis_title=_tr("axis.method", lang), yaxis_title=_tr("axis.measure", lang),
        height=max(360, 60 + 38 * len(ys)))
    fig.update_yaxes(autorange="reversed")
    return fig


def finding_correlations(corr: pd.DataFrame, lang: str = "en") -> str:
    sp = corr[corr["method"] == "spearman"].dropna(subset=["r"])
    if sp.empty:
        return _tr("find.none", lang)
    att = sp[sp["kind"] == "attitudinal"]
    beh = sp[sp["kind"] == "behavioural"]
    def best(df: pd.DataFrame) -> str:
        if df.empty:
            return "–"
        r = df.loc[df["r"].abs().idxmax()]
        return _tr("find.corr_item", lang, measure=corr_measure_label(corr, r["y"], lang), r=fmt_num(r["r"], lang),
                   lo=fmt_num(r["ci_low"], lang), hi=fmt_num(r["ci_high"], lang))
    parts = []
    if len(att):
        parts.append(_tr("find.corr_intent", lang, att=best(att)))
    if len(beh):
        parts.append(_tr("find.corr_behaviour" if len(att) else "find.corr_behaviour_only", lang, beh=best(beh)))
    return ("" if lang == "zh" else " ").join(parts)


# =============================================================== 2. thresholds
def loyalty_by_level(frame: pd.DataFrame, measure: str = "intent", x: str = "satisfaction") -> pd.DataFrame:
    """Share loyal per satisfaction level with Wilson CIs and the jump from the previous level.

    ``measure``: "intent" (repurchase_intent in the top two boxes; or ``loyal`` when there is no intent
    question) or "behaviour" (repeat purchase within the window, complete follow-up only).
    Columns ``level, n, k, share, ci_low, ci_high, jump, jump_p`` (two-proportion z test of the jump).
    """
    y = _outcome(frame, measure)
    sub = pd.DataFrame({"level": frame[x], "y": y}).dropna()
    g = sub.groupby("level")["y"].agg(["size", "sum"]).rename(columns={"size": "n", "sum": "k"}).reset_index()
    g["n"] = g["n"].astype(int)
    g["k"] = g["k"].astype(int)
    g["share"] = g["k"] / g["n"]
    g["ci_low"], g["ci_high"] = wilson(g["k"], g["n"])
    p_prev = g["share"].shift()
    g["jump"] = g["share"] - p_prev
    pooled = (g["k"] + g["k"].shift()) / (g["n"] + g["n"].shift())
    se = np.sqrt(pooled * (1 - pooled) * (1 / g["n"] + 1 / g["n"].shift()))
    with np.errstate(divide="ignore", invalid="ignore"):
        g["jump_p"] = 2 * stats.norm.sf(np.abs(g["jump"] / se))
    g.attrs["measure"] = measure
    return g


def loyal_is_behaviour(frame: pd.DataFrame) -> bool:
    """True when the survey's ``loyal`` column is observed behaviour (``loyal_kind = "behaviour"``)."""
    return "loyal" in frame and frame.attrs.get("loyal_kind", "intent") == "behaviour"


def outcome_source(frame: pd.DataFrame, measure: str) -> str:
    """Which column measures ``measure`` ("intent"/"behaviour"): repurchase_intent, loyal or repeat ("" = none).

    Stated intent is repurchase_intent (top box) or ``loyal`` when it is stated intent; behaviour is repeat
    buying linked from transactions or ``loyal`` when the config says it is observed behaviour.
    """
    if measure == "intent":
        if "repurchase_intent" in frame and frame["repurchase_intent"].notna().any():
            return "repurchase_intent"
        if "loyal" in frame and not loyal_is_behaviour(frame):
            return "loyal"
        return ""
    if measure == "behaviour":
        if "repeat" in frame and frame.attrs.get("behaviour", True) and frame["identified"].any() \
                and frame["followup"].any():
            return "repeat"
        if loyal_is_behaviour(frame):
            return "loyal"
        return ""
    raise ValueError(f"measure must be 'intent' or 'behaviour', not {measure!r}")


def measure_label(frame: pd.DataFrame | str, measure: str, lang: str = "en") -> str:
    """Translated name of a loyalty measure; ``loyal`` is called behaviour or stated intent as configured."""
    src = frame if isinstance(frame, str) else outcome_source(frame, measure)
    if src == "loyal":
        return _tr(f"measure.loyal_{measure}", lang)
    return _tr(f"measure.{measure}", lang)


def _outcome(frame: pd.DataFrame, measure: str) -> pd.Series:
    src = outcome_source(frame, measure)
    if measure == "intent":
        if src == "repurchase_intent":
            return top_box(frame, "repurchase_intent")
        if src == "loyal":
            return frame["loyal"].astype(float)
        raise MissingDataError("surveys", ("repurchase_intent",), "stated intent")
    if src == "loyal":
        return frame["loyal"].astype(float)
    require_behaviour(frame)
    return frame["repeat"].astype(float)


def _hinge_fit(x: np.ndarray, k: np.ndarray, n: np.ndarray, taus: np.ndarray,
               iters: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binomial MLE of p = a + b*max(0, x - tau) for every tau and every batch row.

    ``x`` (L,), ``k``/``n`` (B, L), ``taus`` (G,). Fisher scoring for the identity link
    (weights n / p(1-p)), vectorised over (B, G). Returns a, b, loglik of shape (B, G).
    """
    h = np.maximum(0.0, x[None, :] - taus[:, None])[None, :, :]  # (1, G, L)
    k = k[:, None, :].astype(float)
    n = n[:, None, :].astype(float)
    y = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    w = n.copy()
    eps = 1e-6
    for _ in range(iters):
        s0 = w.sum(-1)
        s1 = (w * h).sum(-1)
        s2 = (w * h * h).sum(-1)
        t0 = (w * y).sum(-1)
        t1 = (w * h * y).sum(-1)
        det = s0 * s2 - s1 * s1
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        a = (s2 * t0 - s1 * t1) / det
        b = (s0 * t1 - s1 * t0) / det
        p = np.clip(a[..., None] + b[..., None] * h, eps, 1 - eps)
        w = n / (p * (1 - p))
    p = np.clip(a[..., None] + b[..., None] * h, eps, 1 - eps)
    ll = (k * np.log(p) + (n - k) * np.log1p(-p)).sum(-1)
    return a, b, ll


def _identity_fit(design: np.ndarray, k: np.ndarray, n: np.ndarray, iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Binomial MLE of p = X·θ (identity link) for every design ``X`` (G, L, P) and batch row of ``k``/``n``
    (B, L), by Fisher scoring (weights n / p(1−p)). Returns θ (B, G, P) and the log-likelihood (B, G).
    Vectorised as batched matrix products over the G designs."""
    eps = 1e-6
    G, L, P = design.shape
    xx = (design[:, :, :, None] * design[:, :, None, :]).reshape(G, L, P * P)  # (G, L, P²)
    kk = np.broadcast_to(k.astype(float)[None], (G, *k.shape))  # (G, B, L)
    nn = np.broadcast_to(n.astype(float)[None], (G, *n.shape))
    y = np.divide(kk, nn, out=np.zeros(kk.shape), where=nn > 0)
    w = nn.copy()
    ridge = 1e-9 * np.eye(P)
    for _ in range(iters):
        xtwx = (w @ xx).reshape(G, -1, P, P) + ridge
        xtwy = (w * y) @ design  # (G, B, P)
        theta = np.linalg.solve(xtwx, xtwy[..., None])[..., 0]
        p = np.clip(theta @ np.swapaxes(design, 1, 2), eps, 1 - eps)  # (G, B, L)
        w = nn / (p * (1 - p))
    ll = (kk * np.log(p) + (nn - kk) * np.log1p(-p)).sum(-1)  # (G, B)
    return np.swapaxes(theta, 0, 1), ll.T


def _two_break_grid(x: np.ndarray, max_points: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """Break pairs (τ1 < τ2) on a grid over the observed levels and the design (G, L, 3) of
    p = a + b1·min(0, s − τ1) + b2·max(0, s − τ2): loyalty flat between τ1 and τ2 (zone of indifference).
    τ1 at the lowest level gives the one-break model, so the two-break model nests it."""
    step = max(0.1, (x[-1] - x[0]) / (max_points - 1))  # 0.2 on 1–5, 0.5 on 0–10
    grid = np.round(np.arange(x[0], x[-1] + step / 2, step), 10)
    pairs = np.array([(a, b) for i, a in enumerate(grid) for b in grid[i + 1:] if b < x[-1]], dtype=float)
    if pairs.size == 0:
        pairs = np.array([[x[0], x[0]]])
    design = np.stack([np.ones((len(pairs), x.size)), np.minimum(0.0, x[None, :] - pairs[:, :1]),
                       np.maximum(0.0, x[None, :] - pairs[:, 1:])], axis=-1)
    return pairs, design


def _ll_saturated(k: np.ndarray, n: np.ndarray) -> float:
    p = np.divide(k, n, out=np.zeros(k.shape), where=n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(k > 0, k * np.log(np.where(p > 0, p, 1)), 0.0)
        t2 = np.where(n - k > 0, (n - k) * np.log(np.where(p < 1, 1 - p, 1)), 0.0)
    return float((t1 + t2).sum())


@dataclass(frozen=True)
class ThresholdResult:
    """Where loyalty starts to rise with satisfaction: p(s) = a + b·max(0, s − τ).

    ``tau`` is the maximum-likelihood threshold (binomial likelihood, identity link, profiled on
    a 0.01 grid); ``ci_low``/``ci_high`` the 95% percentile-bootstrap interval (respondents
    resampled, ``n_boot`` replicates); ``profile_ci`` the profile-likelihood interval
    (χ²₁ cut-off, indicative). ``lr`` compares the hinge with a straight line (τ at the lowest
    level); because τ is not identified under the straight line the χ² reference does not apply
    (Davies' problem), so ``p_linear`` is calibrated by a parametric bootstrap under the fitted
    straight line. ``p_categorical`` is a standard LR test of satisfaction as categories against
    a linear logit (statsmodels), df = levels − 2: small = the straight line is wrong.
    """

    measure: str
    tau: float
    ci_low: float
    ci_high: float
    a: float
    b: float
    n: int
    lr: float
    p_linear: float
    p_categorical: float
    profile_ci: tuple[float, float]
    by_level: pd.DataFrame = field(repr=False, compare=False)
    profile: pd.DataFrame = field(repr=False, compare=False)
    boot: pd.DataFrame = field(repr=False, compare=False)
    linear: tuple[float, float] = (math.nan, math.nan)
    n_boot: int = 0
    models: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    best: str = "one_break"
    two_break: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    p_two_break: float = math.nan

    def predict_best(self, s: Any) -> np.ndarray:
        """The selected model's fitted share at satisfaction ``s`` (linear, one break or two breaks)."""
        s = np.asarray(s, float)
        if self.best == "two_break" and self.two_break:
            tb = self.two_break
            return np.clip(tb["a"] + tb["b1"] * np.minimum(0.0, s - tb["tau1"])
                           + tb["b2"] * np.maximum(0.0, s - tb["tau2"]), 0, 1)
        if self.best == "linear":
            return np.clip(self.linear[0] + self.linear[1] * s, 0, 1)
        return self.predict(s)

    def predict(self, s: Any) -> np.ndarray:
        return np.clip(self.a + self.b * np.maximum(0.0, np.asarray(s, float) - self.tau), 0, 1)

    def summary(self, lang: str = "en") -> str:
        return _tr("find.threshold_one", lang, measure=_tr(f"measure.{self.measure}", lang),
                   tau=fmt_num(self.tau, lang, 1), lo=fmt_num(self.ci_low, lang, 1),
                   hi=fmt_num(self.ci_high, lang, 1), p=fmt_p(self.p_linear, lang), n=fmt_int(self.n, lang))

    def to_metric(self) -> dict[str, Any]:
        return {"estimate": self.tau, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                "base": self.a, "slope": self.b, "lr_vs_linear": self.lr, "p_linear_bootstrap": self.p_linear,
                "p_categorical_vs_linear": self.p_categorical, "profile_ci": list(self.profile_ci),
                "ci_method": "percentile bootstrap", "n_boot": self.n_boot, "best_model": self.best,
                "p_two_break_vs_one": self.p_two_break, "two_break": dict(self.two_break),
                "models": [] if self.models is None else self.models.to_dict("records")}

    def __repr__(self) -> str:
        return (f"<ThresholdResult {self.measure}: tau={self.tau:.2f} (95% CI {self.ci_low:.2f}–{self.ci_high:.2f}), "
                f"p(s)={self.a:.3f}+{self.b:.3f}·max(0,s−tau), n={self.n}, LR vs line={self.lr:.1f} "
                f"(bootstrap p={self.p_linear:.3g}), categorical vs linear p={self.p_categorical:.3g}>")


def fit_threshold(levels: Sequence[float], k: Sequence[int], n: Sequence[int], measure: str = "intent",
                  n_boot: int = 500, seed: int = 42, step: float = 0.01) -> ThresholdResult:
    """Fit the hinge threshold model to grouped data (successes ``k`` of ``n`` at each level).

    See :class:`ThresholdResult`. Vectorised: each bootstrap replicate is a multinomial draw of
    the (level × outcome) cell counts, equivalent to resampling respondents.
    """
    x = np.asarray(levels, float)
    k = np.asarray(k, float)
    n = np.asarray(n, float)
    ok = n > 0
    x, k, n = x[ok], k[ok], n[ok]
    order = np.argsort(x)
    x, k, n = x[order], k[order], n[order]
    if x.size < 3:
        raise ValueError("the threshold model needs at least three satisfaction levels")
    step = max(step, (x[-1] - x[0]) / 400)  # 0.01 on 1–5; coarser on wide scales (0–10: 0.025) to bound the work
    taus = np.round(np.arange(x[0], x[-2] + step / 2, step), 10)
    a, b, ll = _hinge_fit(x, k[None], n[None], taus)
    i = int(np.argmax(ll[0]))
    tau, ll_max = float(taus[i]), float(ll[0, i])
    ll_lin = float(ll[0, 0])
    lr = max(0.0, 2 * (ll_max - ll_lin))
    rng = np.random.default_rng(seed)
    total = int(n.sum())
    probs = np.concatenate([k, n - k]) / total
    cells = rng.multinomial(total, probs, size=max(int(n_boot), 1))
    kb, nb = cells[:, : x.size], cells[:, : x.size] + cells[:, x.size:]
    ab, bb, llb = _hinge_fit(x, kb, nb, taus)
    ib = np.argmax(llb, axis=1)
    tb = taus[ib]
    boot = pd.DataFrame({"tau": tb, "a": ab[np.arange(len(ib)), ib], "b": bb[np.arange(len(ib)), ib]})
    lo, hi = np.quantile(tb, [0.025, 0.975])
    # parametric bootstrap of the LR statistic under the straight line
    p_lin = np.clip(a[0, 0] + b[0, 0] * (x - x[0]), 1e-6, 1 - 1e-6)
    k0 = rng.binomial(n.astype(np.int64)[None, :], p_lin[None, :], size=(max(int(n_boot), 1), x.size))
    _, _, ll0 = _hinge_fit(x, k0, np.broadcast_to(n, k0.shape), taus)
    lr0 = 2 * (ll0.max(axis=1) - ll0[:, 0])
    p_linear = float((1 + np.sum(lr0 >= lr - 1e-9)) / (1 + lr0.size))
    # profile-likelihood set
    inside = taus[2 * (ll_max - ll[0]) <= stats.chi2.ppf(0.95, 1)]
    by_level = pd.DataFrame({"level": x, "n": n.astype(int), "k": k.astype(int), "share": k / n})
    by_level["ci_low"], by_level["ci_high"] = wilson(by_level["k"], by_level["n"])
    by_level["fitted"] = np.clip(a[0, i] + b[0, i] * np.maximum(0, x - tau), 0, 1)
    by_level["linear"] = p_lin
    # two breaks (zone of indifference: flat between τ1 and τ2) against one break, parametric bootstrap
    # under the fitted one-break model (the breaks are not identified under the null: no χ² reference)
    two: dict[str, float] = {}
    lr2, p_two, ll2_max = math.nan, math.nan, math.nan
    if x.size >= 4:
        pairs, design = _two_break_grid(x)
        th2, ll2 = _identity_fit(design, k[None], n[None])
        j = int(np.argmax(ll2[0]))
        ll2_max = max(float(ll2[0, j]), ll_max)
        lr2 = max(0.0, 2 * (ll2_max - ll_max))
        two = {"tau1": float(pairs[j, 0]), "tau2": float(pairs[j, 1]), "a": float(th2[0, j, 0]),
               "b1": float(th2[0, j, 1]), "b2": float(th2[0, j, 2])}
        p_one = np.clip(a[0, i] + b[0, i] * np.maximum(0, x - tau), 1e-6, 1 - 1e-6)
        b2n = max(min(int(n_boot), 100), 1)
        k1 = rng.binomial(n.astype(np.int64)[None, :], p_one[None, :], size=(b2n, x.size))
        n1 = np.broadcast_to(n, k1.shape)
        _, _, ll1b = _hinge_fit(x, k1, n1, taus)
        _, ll2b = _identity_fit(design, k1, n1)
        l1 = ll1b.max(axis=1)
        lr2b = 2 * (np.maximum(ll2b.max(axis=1), l1) - l1)
        p_two = float((1 + np.sum(lr2b >= lr2 - 1e-9)) / (1 + lr2b.size))
    best = "two_break" if p_two < 0.05 else ("one_break" if p_linear < 0.05 else "linear")
    models = pd.DataFrame({
        "model": ["linear", "one_break", "two_break"], "parameters": [2, 3, 5],
        "loglik": [ll_lin, ll_max, ll2_max], "lr_vs_simpler": [math.nan, lr, lr2],
        "p_value": [math.nan, p_linear, p_two]})
    models["aic"] = 2 * models["parameters"] - 2 * models["loglik"]
    models["selected"] = models["model"] == best
    return ThresholdResult(
        measure=measure, tau=tau, ci_low=float(lo), ci_high=float(hi), a=float(a[0, i]), b=float(b[0, i]),
        n=total, lr=float(lr), p_linear=p_linear, p_categorical=_categorical_test(x, k, n),
        profile_ci=(float(inside.min()), float(inside.max())), by_level=by_level,
        profile=pd.DataFrame({"tau": taus, "loglik": ll[0]}), boot=boot,
        linear=(float(a[0, 0] - b[0, 0] * x[0]), float(b[0, 0])), n_boot=int(n_boot),
        models=models, best=best, two_break=two, p_two_break=p_two)


def _categorical_test(x: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    """LR test: satisfaction as categories (saturated logit) vs a linear logit (statsmodels GLM)."""
    import statsmodels.api as sm

    if x.size < 3:
        return math.nan
    endog = np.column_stack([k, n - k])
    try:
        lin = sm.GLM(endog, sm.add_constant(x), family=sm.families.Binomial()).fit()
    except Exception:  # noqa: BLE001 - perfect separation etc.
        return math.nan
    # the deviance of the grouped linear logit is its LR statistic against the saturated (categorical) model
    return float(stats.chi2.sf(max(float(lin.deviance), 0.0), x.size - 2))


def binned_levels(frame: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Satisfaction with more than 11 distinct answers (sliders, 0–100) grouped into ``bins`` equal-width bands
    of its scale, each at its midpoint, so the threshold models have levels to work with; else unchanged."""
    if "satisfaction" not in frame or frame["satisfaction"].nunique() <= 11:
        return frame
    lo, hi = _scale(frame, "satisfaction")
    width = (hi - lo) / bins
    band = np.clip(np.floor((frame["satisfaction"] - lo) / width), 0, bins - 1)
    out = frame.assign(satisfaction=lo + (band + 0.5) * width)
    out.attrs.update(frame.attrs)
    out.attrs["binned"] = bins
    return out


def fit_thresholds(frame: pd.DataFrame, n_boot: int = 500, seed: int = 42) -> dict[str, ThresholdResult]:
    """Both thresholds: ``intent`` (stated, all respondents) and ``behaviour`` (repeat buying; identified
    respondents with complete follow-up). ``behaviour`` is left out when it cannot be measured."""
    if is_binary(frame, "satisfaction"):
        raise Unsupported("binary_satisfaction", columns=("satisfaction",))
    out: dict[str, ThresholdResult] = {}
    why: MissingDataError | None = None
    frame = binned_levels(frame)
    for m in ("intent", "behaviour"):
        try:
            lv = loyalty_by_level(frame, m)
            if len(lv) < 3:
                raise Unsupported("few_levels", columns=("satisfaction",), k=fmt_int(len(lv)))
            if int(lv["n"].sum()) < MIN_N:
                raise Unsupported("few_cases", n=fmt_int(int(lv["n"].sum())), min=fmt_int(MIN_N))
        except MissingDataError as exc:
            why = why or exc
            continue
        name = f"loyal_{m}" if outcome_source(frame, m) == "loyal" else m
        out[m] = fit_threshold(lv["level"], lv["k"], lv["n"], name, n_boot=n_boot, seed=seed + (m == "behaviour"))
    if not out:
        raise why if why is not None else MissingDataError("surveys", ("repurchase_intent",), "stated intent")
    return out


def figure_thresholds(res: dict[str, ThresholdResult], lang: str = "en") -> go.Figure:
    """Observed share per level (Wilson CIs), fitted hinge and straight line, thresholds shaded."""
    fig = go.Figure()
    for j, r in enumerate(res.values()):
        c = viz.PALETTE[j]
        bl = r.by_level
        fig.add_trace(go.Scatter(
            x=bl["level"], y=bl["share"], mode="markers", name=_tr(f"measure.{r.measure}", lang),
            marker=dict(color=c, size=9),
            error_y=dict(type="data", symmetric=False, array=bl["ci_high"] - bl["share"],
                         arrayminus=bl["share"] - bl["ci_low"])))
        grid = np.linspace(bl["level"].min(), bl["level"].max(), 101)
        fig.add_trace(go.Scatter(x=grid, y=r.predict(grid), mode="lines", line=dict(color=c),
                                 name=_tr("legend.hinge", lang, measure=_tr(f"measure.{r.measure}", lang))))
        if r.best == "two_break":
            fig.add_trace(go.Scatter(x=grid, y=r.predict_best(grid), mode="lines", line=dict(color=c, dash="dashdot"),
                                     name=_tr("legend.two_break", lang)))
        fig.add_trace(go.Scatter(x=grid, y=np.clip(r.linear[0] + r.linear[1] * grid, 0, 1), mode="lines",
                                 line=dict(color=c, dash="dot"), name=_tr("legend.linear", lang)))
        fig.add_vrect(x0=r.ci_low, x1=r.ci_high, fillcolor=c, opacity=0.12, line_width=0)
        fig.add_vline(x=r.tau, line=dict(color=c, dash="dash"))
    fig.update_layout(title=_tr("fig.thresholds", lang), xaxis_title=_tr("axis.satisfaction", lang),
                      yaxis_title=_tr("axis.share_loyal", lang), height=470)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return fig


def model_sentence(r: ThresholdResult, lang: str = "en", label: str = "") -> str:
    """Which of linear / one break / two breaks fits, in words, with the likelihood-ratio p-values."""
    label = label or _tr(f"measure.{r.measure}", lang)
    if r.best == "two_break":
        tb = r.two_break
        return _tr("find.model_two_break", lang, measure=label, t1=fmt_num(tb["tau1"], lang, 1),
                   t2=fmt_num(tb["tau2"], lang, 1), p=fmt_p(r.p_two_break, lang), n=fmt_int(r.n, lang))
    if r.best == "one_break":
        return _tr("find.model_one_break", lang, measure=label, tau=fmt_num(r.tau, lang, 1),
                   lo=fmt_num(r.ci_low, lang, 1), hi=fmt_num(r.ci_high, lang, 1), p=fmt_p(r.p_linear, lang),
                   p2=fmt_p(r.p_two_break, lang), n=fmt_int(r.n, lang))
    return _tr("find.model_linear", lang, measure=label, p=fmt_p(r.p_linear, lang), n=fmt_int(r.n, lang))


def threshold_evidence(r: ThresholdResult, lo: float | None = None, hi: float | None = None) -> str:
    """"ok" when a threshold is a headline: enough cases, a model with a break beats the straight line, and
    the threshold's interval is finite and narrower than the scale; else "not_enough_evidence" or
    "not_estimable"."""
    lo = float(r.by_level["level"].min()) if lo is None else lo
    hi = float(r.by_level["level"].max()) if hi is None else hi
    if not (np.isfinite(r.ci_low) and np.isfinite(r.ci_high)) or r.ci_high - r.ci_low >= hi - lo:
        return "not_estimable"
    if r.n < MIN_N or r.best == "linear":
        return "not_enough_evidence"
    return "ok"


def plain_threshold(r: ThresholdResult, lang: str = "en") -> str:
    """One measure's threshold in plain words (the model comparison is in :func:`model_sentence`)."""
    label = _tr(f"measure.{r.measure}", lang)
    if r.best == "two_break":
        return _tr("find.plain_two_break", lang, measure=label, t1=fmt_num(r.two_break["tau1"], lang, 1),
                   t2=fmt_num(r.two_break["tau2"], lang, 1))
    if r.best == "one_break":
        return _tr("find.plain_one_break", lang, measure=label, tau=fmt_num(r.tau, lang, 1))
    return _tr("find.plain_linear", lang, measure=label)


def finding_thresholds(res: Mapping[str, ThresholdResult], lang: str = "en") -> str:
    """Plain-language threshold finding: no p-values or model names (those are in :func:`how_thresholds`)."""
    parts = [plain_threshold(r, lang) for r in res.values()]
    ok = [m for m, r in res.items() if threshold_evidence(r) == "ok" and r.best == "one_break"]
    if "intent" in ok and "behaviour" in ok:
        parts.append(_tr("find.thresholds_gap", lang, gap=fmt_num(res["behaviour"].tau - res["intent"].tau, lang, 1)))
    linear_wrong = [r for r in res.values() if r.best != "linear"]
    parts.append(_tr("find.linear_wrong" if linear_wrong else "find.linear_ok", lang))
    return ("" if lang == "zh" else " ").join(parts)


# =============================================================== 3. expectation gap
def expectation_groups(e: pd.Series, lo: float, hi: float) -> pd.Series:
    """below / met / above expectation on the expectation item's scale (data contract).

    Yes/no scale (e.g. delivered by the promised date): ``lo`` = below, ``hi`` = met (nothing is "above").
    Integer scales with a middle answer (1–5, 0–10): the middle = met. Even scales (1–4): no middle, so
    the lower half = below and the upper half = above ("met" stays empty). Sliders (0–100): within 5% of
    the range around the midpoint = met.
    """
    mid = (lo + hi) / 2
    pts = scale_points(lo, hi)
    if pts == 2:
        out = np.where(e <= lo, "below", "met")
    elif pts is None:
        tol = 0.05 * (hi - lo)
        out = np.where(e < mid - tol, "below", np.where(e > mid + tol, "above", "met"))
    else:
        out = np.where(e < mid, "below", np.where(e > mid, "above", "met"))
    return pd.Series(out, index=e.index, dtype=object).where(e.notna())


def expectation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Below / met / above expectation (:func:`expectation_groups`, from the item's scale) and later behaviour.

    Columns ``group, n, share, satisfaction, recommend, intent_top2 (+CI), repeat (+CI), n_followup,
    churned (+CI), n_churn``; ``attrs["p_repeat"]``/``attrs["p_churn"]`` are χ² tests across groups.
    """
    if "expectation" not in frame or frame["expectation"].notna().sum() == 0:
        raise MissingDataError("surveys", ("expectation",), "expectation gap")
    lo, hi = _scale(frame, "expectation")
    e = frame["expectation"]
    grp = expectation_groups(e, lo, hi)
    rows = []
    n_all = int(grp.notna().sum())
    for gname in ("below", "met", "above"):
        sel = grp == gname
        sub = frame[sel]
        row: dict[str, Any] = {"group": gname, "n": int(sel.sum()), "share": sel.sum() / max(n_all, 1)}
        row["satisfaction"] = sub["satisfaction"].mean()
        if "recommend" in sub:
            row["recommend"] = sub["recommend"].mean()
        if "repurchase_intent" in sub:
            tb = top_box(sub, "repurchase_intent").dropna()
            row["intent_top2"] = tb.mean()
        for col, nkey in (("repeat", "n_followup"), ("churned", "n_churn")):
            if col in sub:
                v = sub[col].dropna()
                row[nkey] = len(v)
                row[col] = v.mean() if len(v) else np.nan
                lo_, hi_ = wilson(v.sum(), len(v))
                row[f"{col}_ci_low"], row[f"{col}_ci_high"] = float(lo_), float(hi_)
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("repeat", "churned"):
        if col in frame and frame[col].notna().any():
            tab = pd.crosstab(grp, frame[col]).reindex(index=["below", "met", "above"]).dropna()
            if tab.shape[0] >= 2 and tab.shape[1] == 2 and (tab.to_numpy() > 0).all():
                out.attrs[f"p_{col}"] = float(stats.chi2_contingency(tab.to_numpy())[1])
    return out


def figure_expectation(gap: pd.DataFrame, lang: str = "en") -> go.Figure:
    labels = [_tr(f"expect.{g}", lang) for g in gap["group"]]
    fig = go.Figure()
    for j, col in enumerate(c for c in ("repeat", "churned") if c in gap):
        fig.add_trace(go.Bar(x=labels, y=gap[col], name=_tr(f"measure.{col}", lang), marker_color=viz.PALETTE[j],
                             error_y=dict(type="data", symmetric=False, array=gap[f"{col}_ci_high"] - gap[col],
                                          arrayminus=gap[col] - gap[f"{col}_ci_low"])))
    if "intent_top2" in gap:
        fig.add_trace(go.Scatter(x=labels, y=gap["intent_top2"], mode="markers+lines",
                                 name=_tr("measure.intent", lang), marker_color=viz.PALETTE[2]))
    fig.update_layout(title=_tr("fig.expectation", lang), xaxis_title=_tr("axis.expectation", lang),
                      yaxis_title=_tr("axis.share", lang), barmode="group")
    fig.update_yaxes(tickformat=".0%")
    return fig


def finding_expectation(gap: pd.DataFrame, lang: str = "en") -> str:
    g = gap.set_index("group")
    if "repeat" not in g:
        return _tr("find.expectation_att", lang, below=fmt_pct(g.loc["below", "intent_top2"], lang),
                   above=fmt_pct(g.loc["above", "intent_top2"], lang))
    return _tr("find.expectation", lang, below=fmt_pct(g.loc["below", "repeat"], lang),
               met=fmt_pct(g.loc["met", "repeat"], lang), above=fmt_pct(g.loc["above", "repeat"], lang),
               cb=fmt_pct(g.loc["below", "churned"], lang) if "churned" in g else "–",
               ca=fmt_pct(g.loc["above", "churned"], lang) if "churned" in g else "–",
               p=fmt_p(gap.attrs.get("p_repeat"), lang))


# =============================================================== 4. four cases
@dataclass(frozen=True, repr=False)
class FourCases(_Section):
    """The texts' four cases (satisfied × loyal; satisfied & loyal split trust / self-interest).

    ``table``: ``case, n, share, ci_low, ci_high`` over all respondents in scope (``n_total``),
    including ``neutral`` (between the cut-offs) and ``unknown`` (loyalty not measurable), so
    counts add up to ``n_total``. ``profile``: what distinguishes each case (feature means per case,
    Kruskal–Wallis p-value across the four cases, Holm-adjusted). Motive words (trust, self-interest,
    switching cost, the texts' nicknames) are used only when the trust / self-interest split rests on
    purchase data (``discount_cut`` set); otherwise the cases are named by what was measured.
    """

    heading: ClassVar[str] = "loyalty.h.four_cases"
    table: pd.DataFrame
    profile: pd.DataFrame
    n_total: int
    loyalty: str
    sat_high: float
    sat_low: float
    discount_cut: float | None
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def motives(self) -> bool:
        """Motive labels (trust, self-interest, switching cost) only with purchase evidence behind them."""
        return self.discount_cut is not None

    def shares_text(self, lang: str = "en") -> str:
        main = self.table[self.table["case"] != "unknown"]  # the middle (neutral) group too: shares add to 100%
        sep = "；" if lang == "zh" else "; "
        return sep.join(f"{case_label(c, lang, motives=self.motives)} {fmt_pct(s, lang)}"
                        for c, s in zip(main["case"], main["share"], strict=True))

    def to_metric(self) -> dict[str, Any]:
        return {r.case: {"n": int(r.n), "share": r.share, "ci_low": r.ci_low, "ci_high": r.ci_high}
                for r in self.table.itertuples()}

    def __repr__(self) -> str:
        body = ", ".join(f"{r.case}={r.n} ({r.share:.1%})" for r in self.table.itertuples())
        return f"<FourCases n={self.n_total} loyalty={self.loyalty}: {body}>"

    # -- presentation (workbench.results)
    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_four_cases(self, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        tab = self.table.set_index("case")
        n_known = int(self.table.loc[self.table["case"] != "unknown", "n"].sum())
        text = finding_four_cases(self, lang)
        if "dissatisfied_loyal" not in tab.index:
            return [Finding("four_cases", text)]
        dl = tab.loc["dissatisfied_loyal"]
        status = evidence(dl["share"], dl["ci_low"], dl["ci_high"], n_known, null=None, span=1.0)
        how = _tr("how.four_cases", lang, high=fmt_num(self.sat_high, lang, 1), low=fmt_num(self.sat_low, lang, 1),
                  measure=measure_label(self.context.get("intent_source", ""), self.loyalty, lang),
                  n=fmt_int(n_known, lang), total=fmt_int(self.n_total, lang))
        return [_finding("four_cases", text, status, lang, value=float(dl["share"]),
                         interval=(float(dl["ci_low"]), float(dl["ci_high"])), n=n_known, value_range=(0.0, 1.0),
                         how=how)]

    def tables(self, lang: str = "en") -> list[Table]:
        if self.profile.empty:
            return []
        return [Table(profile_table(self, lang), caption=_tr("cap.profile", lang), appendix=True)]

    def _notes(self, lang: str = "en") -> list[str]:
        tab = self.table.set_index("case")
        out = []
        n_known = int(self.table.loc[self.table["case"] != "unknown", "n"].sum())
        if "neutral" in tab.index and tab.loc["neutral", "n"]:
            out.append(_tr("note.four_cases_between", lang, n=fmt_int(tab.loc["neutral", "n"], lang),
                           share=fmt_pct(tab.loc["neutral", "share"], lang)))
        if "unknown" in tab.index and tab.loc["unknown", "n"]:
            out.append(_tr("note.four_cases_unknown", lang, n=fmt_int(tab.loc["unknown", "n"], lang)))
        # the follow-up window applies only to repeat buying linked from transactions, not to a survey's loyal item
        out.append(base_text(n_known, self.context, lang, followup=self.context.get("intent_source") == "repeat"))
        return out

    def metrics(self) -> dict[str, Any]:
        return {"quadrants": self.to_metric(),
                "quadrant_cutoffs": {"sat_high": self.sat_high, "sat_low": self.sat_low,
                                     "discount_cut": self.discount_cut, "loyalty": self.loyalty}}


def case_label(case: str, lang: str = "en", nickname: bool = False, motives: bool = True) -> str:
    """Translated case name (texts' Chinese names); ``nickname`` appends apostles/mercenaries/… .

    ``motives=False`` (no purchase evidence about why customers stay): the plain, measured name
    ("dissatisfied but loyal", not "held by switching cost") and no nickname."""
    if not motives and f"loyalty.case_plain.{case}" in _keys():
        return _tr(f"case_plain.{case}", lang)
    label = _tr(f"case.{case}", lang)
    if nickname and motives and f"loyalty.case_nick.{case}" in _keys():
        label += f" ({_tr(f'case_nick.{case}', lang)})"
    return label


def _keys() -> set[str]:
    from workbench.i18n import table

    return set(table())


def classify_four_cases(frame: pd.DataFrame, sat_high: Any = "top box", sat_low: Any = "bottom box",
               loyalty: str = "behaviour", discount_cut: float | None = 0.05,
               intent_cut: float | None = None) -> FourCases:
    """Classify respondents into the four cases.

    Parameters
    ----------
    sat_high, sat_low : "top box" / "bottom box", a share of the scale, or a level
        Satisfied = satisfaction >= ``sat_high``; dissatisfied = satisfaction <= ``sat_low``; in between =
        neutral. Resolved on the satisfaction scale of the data contract by :func:`resolve_cut` (default:
        the top / bottom box, e.g. 4–5 and 1–2 on 1–5, 9–10 and 0–1 on 0–10, yes and no on a yes/no item).
    loyalty : "behaviour", "intent" or "auto"
        Loyal = behaviour (repeat purchase within the window for identified respondents with complete
        follow-up, others ``unknown``; or the survey's ``loyal`` when the config says it is observed
        behaviour) or stated intent in the top box. "auto": behaviour when measurable, else intent.
    discount_cut : float or None
        Satisfied & loyal customers whose discount share of spend is >= this are
        self-interest loyal (势利忠诚), the others trust-based (信赖忠诚). ``None`` or no discount
        data: one "satisfied & loyal" case.
    """
    n_total = len(frame)
    s = frame["satisfaction"]
    lo_s, hi_s = _scale(frame, "satisfaction")
    sat_high = resolve_cut(sat_high, lo_s, hi_s, "high")
    sat_low = resolve_cut(sat_low, lo_s, hi_s, "low")
    if sat_low >= sat_high:
        raise Unsupported("cuts_cross", columns=("satisfaction",), low=fmt_num(sat_low, digits=2),
                          high=fmt_num(sat_high, digits=2))
    if loyalty == "auto":
        loyalty = "behaviour" if outcome_source(frame, "behaviour") else "intent"
    if loyalty == "behaviour":
        loyal = _outcome(frame, "behaviour")
    elif loyalty == "intent":
        loyal = _outcome(frame, "intent") if intent_cut is None else (
            frame["repurchase_intent"] >= intent_cut).astype(float).where(frame["repurchase_intent"].notna())
    else:
        raise ValueError("loyalty must be 'behaviour', 'intent' or 'auto'")
    if n_total == 0:
        raise Unsupported("no_responses")
    split = discount_cut is not None and "discount_share" in frame and frame["discount_share"].notna().any()
    case = pd.Series("unknown", index=frame.index, dtype=object)
    known = loyal.notna() & s.notna()
    sat, dis = s >= sat_high, s <= sat_low
    lo_ = loyal == 1
    case[known & ~sat & ~dis] = "neutral"
    case[known & sat & ~lo_] = "satisfied_not_loyal"
    case[known & dis & ~lo_] = "dissatisfied_not_loyal"
    case[known & dis & lo_] = "dissatisfied_loyal"
    if split:
        deal = frame["discount_share"].fillna(0) >= discount_cut
        case[known & sat & lo_ & deal] = "self_interest"
        case[known & sat & lo_ & ~deal] = "trust"
    else:
        case[known & sat & lo_] = "satisfied_loyal"
    order = [c for c in CASES if c in set(case) or c in (
        ("trust", "self_interest") if split else ("satisfied_loyal",)) or c in (
        "satisfied_not_loyal", "dissatisfied_not_loyal", "dissatisfied_loyal")]
    counts = case.value_counts().reindex(order, fill_value=0)
    n_class = int(known.sum())
    tab = pd.DataFrame({"case": order, "n": counts.to_numpy().astype(int)})
    denom = np.where(tab["case"] == "unknown", n_total, n_class)
    tab["share"] = tab["n"] / np.where(denom > 0, denom, 1)
    tab["ci_low"], tab["ci_high"] = wilson(tab["n"], denom)
    tab.attrs["denominator"] = "respondents with known loyalty (unknown: share of all)"
    frame_c = frame.assign(_case=case)
    profile = _case_profile(frame_c[case.isin(["trust", "self_interest", "satisfied_loyal", "satisfied_not_loyal",
                                                "dissatisfied_not_loyal", "dissatisfied_loyal"])])
    return FourCases(tab, profile, n_total, loyalty, float(sat_high), float(sat_low),
                     discount_cut if split else None,
                     {**_context(frame), "intent_source": outcome_source(frame, loyalty)})


PROFILE_FEATURES = ("satisfaction", "repurchase_intent", "recommend", "discount_share", "tenure_days", "freq_12m",
                    "spend_12m", "member", "complained", "key_customer")


def _case_profile(fc: pd.DataFrame) -> pd.DataFrame:
    rows = []
    cases = [c for c in CASES if c in set(fc["_case"])]
    feats = [f for f in PROFILE_FEATURES if f in fc and fc[f].notna().any()]
    seg_dummies = []
    if "segment" in fc and fc["segment"].notna().any():
        for sname in sorted(fc["segment"].dropna().unique()):
            col = f"segment={sname}"
            fc = fc.assign(**{col: (fc["segment"] == sname).astype(float)})
            seg_dummies.append(col)
    for f in [*feats, *seg_dummies]:
        row: dict[str, Any] = {"feature": f}
        groups = []
        for c in cases:
            v = fc.loc[fc["_case"] == c, f].dropna()
            row[c] = v.mean() if len(v) else np.nan
            if len(v):
                groups.append(v.to_numpy(float))
        try:
            varied = len(groups) >= 2 and np.ptp(np.concatenate(groups)) > 0
            row["p_value"] = float(stats.kruskal(*groups)[1]) if varied else np.nan
        except ValueError:
            row["p_value"] = np.nan
        rows.append(row)
    prof = pd.DataFrame(rows, columns=["feature", *cases, "p_value"])
    prof["p_adjusted"] = _adjust(prof["p_value"], "holm")
    return prof


def profile_table(fc: FourCases, lang: str = "en") -> pd.DataFrame:
    """Display version of :attr:`FourCases.profile`: translated features and case names, formatted numbers."""
    rows = []
    cases = [c for c in fc.profile.columns if c in CASES]
    for r in fc.profile.to_dict("records"):
        f = r["feature"]
        if f.startswith("segment="):
            name = f"{_tr('dim.segment', lang)}: {f.split('=', 1)[1]}"
            pct = True
        else:
            name = _tr(f"measure.{f}", lang)
            pct = f in ("discount_share", "member", "complained", "key_customer")
        row = {_tr("col.feature", lang): name}
        row.update({case_label(c, lang, motives=fc.motives): fmt_pct(r[c], lang) if pct else fmt_num(r[c], lang, 1) for c in cases})
        row[_tr("col.p_adjusted", lang)] = fmt_p(r["p_adjusted"], lang)
        rows.append(row)
    return pd.DataFrame(rows)


def figure_four_cases(fc: FourCases, lang: str = "en") -> go.Figure:
    """The four cases only (satisfied & loyal split into trust / self-interest when the data allow): the
    in-between and not-measurable groups are left out of the bars and counted in the section's notes."""
    tab = fc.table[~fc.table["case"].isin(["unknown", "neutral"])]
    fig = viz.bar_with_ci([case_label(c, lang, nickname=True, motives=fc.motives) for c in tab["case"]], tab["share"],
                          tab["ci_low"], tab["ci_high"],
                          title=_tr("fig.four_cases_split" if fc.discount_cut is not None else "fig.four_cases", lang),
                          x_title=_tr("axis.case", lang), y_title=_tr("axis.share_known", lang), percent=True,
                          text=[fmt_int(n, lang) for n in tab["n"]])
    fig.update_layout(height=460)
    return fig


def finding_four_cases(fc: FourCases, lang: str = "en") -> str:
    tab = fc.table.set_index("case")
    dl = tab.loc["dissatisfied_loyal"] if "dissatisfied_loyal" in tab.index else None
    extra = ""
    prof = fc.profile.set_index("feature")
    if fc.motives and dl is not None and "dissatisfied_loyal" in prof and "dissatisfied_not_loyal" in prof:
        segs = prof[prof.index.str.startswith("segment=")]
        if len(segs):
            diff = (segs["dissatisfied_loyal"] - segs["dissatisfied_not_loyal"]).dropna()
            if len(diff):
                top = diff.idxmax()
                extra = _tr("find.hostage_segment", lang, segment=top.split("=", 1)[1],
                            a=fmt_pct(segs.loc[top, "dissatisfied_loyal"], lang),
                            b=fmt_pct(segs.loc[top, "dissatisfied_not_loyal"], lang))
    return _tr("find.four_cases", lang, summary=fc.shares_text(lang)) + ((" " if lang != "zh" else "") + extra
                                                                         if extra else "")


# =============================================================== 5. intention vs behaviour
def conversion_table(frame: pd.DataFrame, intent_cut: float | None = None) -> pd.DataFrame:
    """Of respondents who said they would buy again (top-2-box, or ``>= intent_cut``), the share who did
    within the window, per satisfaction level and overall (``level = "all"``), with Wilson CIs; and the
    repeat rate of those who did not say so (``low_intent_repeat``)."""
    require_behaviour(frame)
    if "repurchase_intent" not in frame:
        raise MissingDataError("surveys", ("repurchase_intent",), "intention-behaviour conversion")
    intent = top_box(frame, "repurchase_intent") if intent_cut is None else (
        frame["repurchase_intent"] >= intent_cut).astype(float).where(frame["repurchase_intent"].notna())
    sub = pd.DataFrame({"level": frame["satisfaction"], "intent": intent, "repeat": frame["repeat"]}).dropna()
    rows = []
    for lvl, g in [*sorted(sub.groupby("level")), ("all", sub)]:
        hi = g[g["intent"] == 1]
        lo = g[g["intent"] == 0]
        rows.append({"level": lvl, "n_intent": len(hi), "n_converted": int(hi["repeat"].sum()),
                     "n_low_intent": len(lo), "low_intent_repeat": lo["repeat"].mean() if len(lo) else np.nan})
    out = pd.DataFrame(rows)
    out["conversion"] = out["n_converted"] / out["n_intent"].where(out["n_intent"] > 0)
    out["ci_low"], out["ci_high"] = wilson(out["n_converted"], out["n_intent"])
    return out[["level", "n_intent", "n_converted", "conversion", "ci_low", "ci_high", "n_low_intent",
                "low_intent_repeat"]]


def figure_conversion(conv: pd.DataFrame, lang: str = "en") -> go.Figure:
    c = conv[conv["level"] != "all"]
    fig = viz.bar_with_ci([fmt_num(v, lang, 0) for v in c["level"]], c["conversion"], c["ci_low"], c["ci_high"],
                          title=_tr("fig.conversion", lang), x_title=_tr("axis.satisfaction", lang),
                          y_title=_tr("axis.conversion", lang), percent=True,
                          text=[fmt_int(n, lang) for n in c["n_intent"]], name=_tr("legend.conversion", lang))
    fig.add_trace(go.Scatter(x=[fmt_num(v, lang, 0) for v in c["level"]], y=c["low_intent_repeat"],
                             mode="markers+lines", name=_tr("legend.low_intent", lang), marker_color=viz.PALETTE[1]))
    fig.update_layout(showlegend=True)
    return fig


def finding_conversion(conv: pd.DataFrame, lang: str = "en") -> str:
    a = conv[conv["level"] == "all"].iloc[0]
    return _tr("find.conversion", lang, conv=fmt_pct(a["conversion"], lang), lo=fmt_pct(a["ci_low"], lang),
               hi=fmt_pct(a["ci_high"], lang), n=fmt_int(a["n_intent"], lang),
               low=fmt_pct(a["low_intent_repeat"], lang))


# =============================================================== 6. key drivers
def relative_weights(corr: np.ndarray) -> np.ndarray:
    """Johnson's (2000) relative weights from a correlation matrix (last row/col = outcome).

    Works on a batch ``(..., p+1, p+1)``; returns raw weights ``(..., p)`` that sum to R².
    """
    rxx = corr[..., :-1, :-1]
    rxy = corr[..., :-1, -1]
    lam, vec = np.linalg.eigh(rxx)
    lam = np.clip(lam, 1e-12, None)
    half = (vec * np.sqrt(lam)[..., None, :]) @ np.swapaxes(vec, -1, -2)  # R^(1/2)
    beta = np.linalg.solve(half, rxy[..., None])[..., 0]
    return (half ** 2 * (beta ** 2)[..., None, :]).sum(-1)


def shapley_r2(corr: np.ndarray) -> np.ndarray:
    """Exact Shapley decomposition of R² (LMG) from a correlation matrix (last = outcome); batchable."""
    p = corr.shape[-1] - 1
    if p > 12:
        raise ValueError("Shapley decomposition is limited to 12 drivers")
    r2: dict[frozenset[int], np.ndarray] = {frozenset(): np.zeros(corr.shape[:-2])}
    for size in range(1, p + 1):
        for sub in combinations(range(p), size):
            idx = list(sub)
            rss = corr[..., idx][..., idx, :]
            rsy = corr[..., idx, -1]
            b = np.linalg.solve(rss, rsy[..., None])[..., 0]
            r2[frozenset(sub)] = (b * rsy).sum(-1)
    out = np.zeros((*corr.shape[:-2], p))
    fact = math.factorial
    for j in range(p):
        others = [i for i in range(p) if i != j]
        for size in range(p):
            wgt = fact(size) * fact(p - size - 1) / fact(p)
            for sub in combinations(others, size):
                s = frozenset(sub)
                out[..., j] += wgt * (r2[s | {j}] - r2[s])
    return out


def _boot_corr(data: np.ndarray, n_boot: int, seed: int, chunk: int = 50) -> np.ndarray:
    """Correlation matrices of ``n_boot`` bootstrap resamples of the rows of ``data`` (vectorised:
    resampling counts as weights, weighted moments by matrix products)."""
    rng = np.random.default_rng(seed)
    n, q = data.shape
    xc = data - data.mean(0)
    outer = (xc[:, :, None] * xc[:, None, :]).reshape(n, q * q)
    res = []
    for start in range(0, n_boot, chunk):
        c = min(chunk, n_boot - start)
        w = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(c)]).astype(float) / n
        m1 = w @ xc
        m2 = (w @ outer).reshape(c, q, q) - m1[:, :, None] * m1[:, None, :]
        sd = np.sqrt(np.clip(np.diagonal(m2, axis1=1, axis2=2), 1e-15, None))
        res.append(m2 / sd[:, :, None] / sd[:, None, :])
    return np.concatenate(res) if res else np.zeros((0, q, q))


def _weighted_corr(data: np.ndarray, w: np.ndarray) -> np.ndarray:
    m = w @ data / w.sum()
    xc = data - m
    cov = (xc * w[:, None]).T @ xc / w.sum()
    sd = np.sqrt(np.clip(np.diag(cov), 1e-15, None))
    return cov / sd[:, None] / sd[None, :]


def _sqrtm(r: np.ndarray) -> np.ndarray:
    lam, vec = np.linalg.eigh(r)
    return (vec * np.sqrt(np.clip(lam, 1e-12, None))) @ vec.T


def _logit_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 25) -> np.ndarray:
    """Weighted logistic regression (intercept first) by Newton–Raphson with a tiny ridge against separation."""
    X = np.column_stack([np.ones(len(x)), x])
    beta = np.zeros(X.shape[1])
    ridge = 1e-6 * np.eye(X.shape[1])
    ridge[0, 0] = 0.0
    for _ in range(iters):
        eta = np.clip(X @ beta, -30, 30)
        p = 1 / (1 + np.exp(-eta))
        g = X.T @ (w * (y - p)) - ridge @ beta
        h = (X * (w * p * (1 - p))[:, None]).T @ X + ridge
        step = np.linalg.solve(h, g)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-9:
            break
    return beta


def logistic_relative_weights(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None
                              ) -> tuple[np.ndarray, np.ndarray, float]:
    """Relative weights for a yes/no outcome (Tonidandel & LeBreton 2010).

    The drivers are replaced by their closest orthogonal counterparts Z = X_std·R^(−1/2); a logistic
    regression of ``y`` on Z gives b; with the McKelvey–Zavoina variance of the latent outcome
    (var(Zb) + π²/3) the standardised b² are split back to the drivers through R^(1/2).
    Returns (raw weights summing to the McKelvey–Zavoina R², logistic coefficients of the standardised
    drivers (signs = direction), R²).
    """
    w = np.ones(len(y)) if w is None else w
    m = w @ x / w.sum()
    sd = np.sqrt(np.clip(w @ (x - m) ** 2 / w.sum(), 1e-15, None))
    xs = (x - m) / sd
    r = _weighted_corr(x, w)
    lam = _sqrtm(r)
    z = xs @ np.linalg.inv(lam)
    b = _logit_fit(z, y, w)[1:]
    lp = z @ b
    var_lp = float(w @ (lp - w @ lp / w.sum()) ** 2 / w.sum())
    zsd = np.sqrt(np.clip(w @ (z - w @ z / w.sum()) ** 2 / w.sum(), 1e-15, None))
    beta_std = b * zsd / math.sqrt(var_lp + math.pi ** 2 / 3)
    raw = (lam ** 2) @ (beta_std ** 2)
    coef_x = np.linalg.solve(lam, b)  # logit coefficients of the standardised drivers: z·b = xs·Λ⁻¹·b
    return raw, coef_x, var_lp / (var_lp + math.pi ** 2 / 3)


@dataclass(frozen=True)
class DriverResult:
    """Key drivers of ``outcome``.

    ``table``: ``driver, label, importance`` (signed: raw weight × the sign of the driver's coefficient in the
    multiple regression — linear, or logistic for a yes/no outcome; the raw weights sum to ``r2``),
    ``direction`` (+1/−1), ``share`` (of R²), ``ci_low, ci_high`` (percentile bootstrap of the signed
    importance), ``significant`` (interval excludes 0; drivers whose interval includes 0 are shown grey and
    are never "fix first"), ``rank, shapley, performance`` (mean rating), ``top2`` (top-box share),
    ``quadrant``. ``n`` complete responses used; ``n_dropped`` responses with the outcome but a missing
    driver rating (not imputed, counted); ``model``: "linear" or "logistic".
    """

    table: pd.DataFrame
    r2: float
    outcome: str
    method: str
    n: int
    n_boot: int
    n_dropped: int = 0
    model: str = "linear"
    labels: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def headline_ok(self) -> bool:
        """A driver headline needs R² >= 0.10, enough cases and a top driver whose interval excludes 0."""
        top = self.table.iloc[0] if len(self.table) else None
        return bool(top is not None and self.r2 >= R2_MIN and self.n >= MIN_N and top["significant"]
                    and np.isfinite(self.r2))

    def to_metric(self) -> list[dict[str, Any]]:
        return [{"driver": r.driver, "importance": r.importance, "ci_low": r.ci_low, "ci_high": r.ci_high,
                 "direction": int(r.direction), "significant": bool(r.significant),
                 "rank": int(r.rank), "share": r.share, "performance": r.performance, "quadrant": r.quadrant}
                for r in self.table.itertuples()]

    def __repr__(self) -> str:
        body = ", ".join(f"{r.driver}={r.importance:+.3f}" for r in self.table.itertuples())
        return (f"<DriverResult {self.method} ({self.model}) on {self.outcome}: R²={self.r2:.3f}, n={self.n} "
                f"({self.n_dropped} dropped for missing answers): {body}>")


def key_drivers(frame: pd.DataFrame, drivers: Sequence[str] | None = None, outcome: str = "satisfaction",
                method: str = "relative_weights", n_boot: int = 200, seed: int = 42,
                driver_labels: dict[str, Any] | None = None) -> DriverResult:
    """Which attribute ratings drive ``outcome``, robust to correlated drivers, with direction.

    ``method``: "relative_weights" (Johnson 2000) or "shapley" (exact Shapley/LMG decomposition of R²);
    both split the OLS R² into non-negative parts. A yes/no ``outcome`` (a two-point scale, or "intent" /
    "behaviour") uses the logistic model instead: relative weights of Tonidandel & LeBreton (2010), R² of
    McKelvey–Zavoina. Each weight is signed by its coefficient in the multiple regression (direction).
    CIs: percentile bootstrap of the signed weight over respondents (``n_boot``); a driver whose interval
    includes 0 is not significant (grey, never "fix first"). Importance–performance quadrant: a significant,
    positive driver with importance above the mean share (1/p) and a mean rating below the drivers'
    average = ``fix_first``. Responses missing any driver or the outcome are dropped and counted
    (``n_dropped``: had the outcome). ``driver_labels``: readable names, ``{driver: "Label"}`` or
    ``{driver: {"en": ..., "zh": ...}}`` (default: ``frame.attrs["driver_labels"]``, then the translation
    table).
    """
    drivers = list(drivers if drivers is not None else frame.attrs.get("drivers", []))
    drivers = [d for d in drivers if d in frame and frame[d].notna().any() and frame[d].nunique() > 1]
    if len(drivers) < 2:
        raise MissingDataError("surveys", ("attribute ratings",), "key drivers need at least two driver ratings")
    if outcome in ("intent", "behaviour"):
        y = _outcome(frame, outcome)
        binary = True
    else:
        if outcome not in frame:
            raise MissingDataError("surveys", (outcome,), "key drivers")
        y = frame[outcome]
        binary = is_binary(frame, outcome) or y.dropna().nunique() == 2
    df = pd.concat([frame[drivers], y.rename("_y")], axis=1)
    has_y = df["_y"].notna()
    data = df.dropna().to_numpy(float)
    n = data.shape[0]
    n_dropped = int(has_y.sum()) - n
    if n < max(len(drivers) + 10, MIN_N):
        raise Unsupported("few_complete", columns=tuple(drivers), n=fmt_int(n), dropped=fmt_int(n_dropped),
                          min=fmt_int(max(len(drivers) + 10, MIN_N)))
    if np.ptp(data[:, -1]) == 0:
        raise Unsupported("constant_outcome", columns=(outcome,))
    rng_seed = seed
    if binary:
        lo_y = data[:, -1].min()
        yb = (data[:, -1] > lo_y).astype(float)
        raw, coef, r2 = logistic_relative_weights(data[:, :-1], yb)
        imp_signed = np.sign(coef) * raw
        shap = np.full(len(drivers), np.nan)
        model, method = "logistic", "relative_weights"
        boot = []
        rng = np.random.default_rng(rng_seed)
        for _ in range(min(int(n_boot), 200)):
            wts = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
            rb, cb, _ = logistic_relative_weights(data[:, :-1], yb, wts)
            boot.append(np.sign(cb) * rb)
        boot_arr = np.array(boot) if boot else np.zeros((0, len(drivers)))
    else:
        corr = np.corrcoef(data, rowvar=False)
        fn = relative_weights if method == "relative_weights" else shapley_r2
        raw = fn(corr)
        beta = np.linalg.solve(corr[:-1, :-1] + 1e-12 * np.eye(len(drivers)), corr[:-1, -1])
        imp_signed = np.sign(beta) * raw
        shap = shapley_r2(corr) if len(drivers) <= 12 else np.full(len(drivers), np.nan)
        r2 = float(raw.sum())
        model = "linear"
        if n_boot:
            cb = _boot_corr(data, int(n_boot), rng_seed)
            rb = fn(cb)
            bb = np.linalg.solve(cb[:, :-1, :-1] + 1e-12 * np.eye(len(drivers)), cb[:, :-1, -1][..., None])[..., 0]
            boot_arr = np.sign(bb) * rb
        else:
            boot_arr = np.zeros((0, len(drivers)))
    r2 = float(r2)
    if len(boot_arr):
        lo, hi = np.quantile(boot_arr, [0.025, 0.975], axis=0)
    else:
        lo = hi = np.full(len(drivers), np.nan)
    perf = data[:, :-1].mean(0)
    top2 = [float((frame[d] >= box_cuts(*_scale(frame, d))[1]).where(frame[d].notna()).mean()) for d in drivers]
    labels = dict(driver_labels if driver_labels is not None else frame.attrs.get("driver_labels") or {})
    tab = pd.DataFrame({"driver": drivers, "importance": imp_signed, "direction": np.where(imp_signed < 0, -1, 1),
                        "share": raw / r2 if r2 > 0 else np.nan, "ci_low": lo, "ci_high": hi, "shapley": shap,
                        "performance": perf, "top2": top2})
    tab["significant"] = (tab["ci_low"] > 0) | (tab["ci_high"] < 0)
    tab["rank"] = tab["importance"].abs().rank(ascending=False, method="first").astype(int)
    important = tab["share"] >= 1 / len(drivers)
    good = tab["performance"] >= tab["performance"].mean()
    tab["quadrant"] = np.select([~tab["significant"], important & ~good & (tab["direction"] > 0), important & good,
                                 ~important & ~good], ["not_significant", "fix_first", "keep_up", "low_priority"],
                                "possible_overkill")
    tab = tab.sort_values("rank").reset_index(drop=True)
    return DriverResult(tab, r2, outcome, method, n, int(n_boot), n_dropped, model, labels)


def key_drivers_by_tier(frame: pd.DataFrame, **kwargs: Any) -> dict[str, DriverResult]:
    """:func:`key_drivers` for key customers (关键客户) and ordinary customers separately."""
    if "key_customer" not in frame or frame["key_customer"].notna().sum() == 0:
        raise MissingDataError("transactions", (), "value tiers need identified respondents and transactions")
    out = {}
    for name, flag in (("key", 1.0), ("ordinary", 0.0)):
        sub = frame[frame["key_customer"] == flag]
        sub.attrs.update(frame.attrs)
        try:
            out[name] = key_drivers(sub, **kwargs)
        except MissingDataError:
            continue
    return out


def figure_drivers(res: DriverResult, lang: str = "en") -> go.Figure:
    """Signed importance per driver with bootstrap intervals; drivers whose interval includes 0 are grey."""
    tab = res.table.sort_values("importance")
    colours = [viz.PALETTE[0] if sig and d > 0 else (viz.PALETTE[3] if sig else "#bbbbbb")
               for sig, d in zip(tab["significant"], tab["direction"], strict=True)]
    fig = go.Figure(go.Bar(
        y=[_driver_label(d, lang, res.labels) for d in tab["driver"]], x=tab["importance"], orientation="h",
        marker_color=colours,
        error_x=dict(type="data", symmetric=False, array=tab["ci_high"] - tab["importance"],
                     arrayminus=tab["importance"] - tab["ci_low"])))
    fig.add_vline(x=0, line=dict(color="#888", width=1))
    fig.update_layout(title=_tr("fig.drivers_model" if res.model == "logistic" else "fig.drivers", lang,
                                outcome=_tr(f"measure.{res.outcome}", lang), r2=fmt_num(res.r2, lang)),
                      xaxis_title=_tr("axis.importance_signed", lang), yaxis_title=_tr("axis.driver", lang),
                      showlegend=False)
    return fig


def figure_importance_performance(res: DriverResult | dict[str, DriverResult], lang: str = "en") -> go.Figure:
    """Importance (share of R²) vs performance (mean rating); dashed lines at the averages."""
    items = res.items() if isinstance(res, dict) else [("all", res)]
    fig = go.Figure()
    for j, (name, r) in enumerate(items):
        tab = r.table.sort_values("performance").reset_index(drop=True)
        labels = [_driver_label(d, lang, r.labels) for d in tab["driver"]]
        # text once per driver (on the first group; the others carry it on hover), alternating above / below
        # along the performance axis so labels of neighbouring points do not overlap
        fig.add_trace(go.Scatter(x=tab["performance"], y=tab["share"], mode="markers+text" if j == 0 else "markers",
                                 text=labels if j == 0 else None, hovertext=labels, hoverinfo="text+x+y",
                                 textposition=["top center" if i % 2 == 0 else "bottom center"
                                               for i in range(len(tab))] if j == 0 else None,
                                 name=_tr(f"tier.{name}", lang),
                                 marker=dict(size=11, color=[viz.PALETTE[j] if sig else "#bbbbbb"
                                                             for sig in tab["significant"]])))
        if j == 0:
            fig.add_hline(y=1 / len(tab), line=dict(dash="dash", color="#888"))
            fig.add_vline(x=tab["performance"].mean(), line=dict(dash="dash", color="#888"))
            # above the plot area, top left: inside it the note would sit on the fix-first points' labels
            fig.add_annotation(x=0, y=1, xref="x domain", yref="y domain", yanchor="bottom", xanchor="left",
                               text=_tr("quadrant.fix_first", lang) + " ↖", showarrow=False,
                               font=dict(color=viz.PALETTE[3]))
    fig.update_layout(title=_tr("fig.ipa", lang), xaxis_title=_tr("axis.performance", lang),
                      yaxis_title=_tr("axis.importance_share", lang))
    fig.update_yaxes(tickformat=".0%")
    return fig


def _driver_label(d: str, lang: str, labels: dict[str, Any] | None = None) -> str:
    """A driver's readable name: the config's labels ({driver: "x"} or {driver: {"en": .., "zh": ..}}),
    then the translation table, else the column name."""
    lab = (labels or {}).get(d)
    if isinstance(lab, dict):
        lab = lab.get(lang) or lab.get("en")
    if lab:
        return str(lab)
    key = f"loyalty.driver.{d}"
    return t(key, lang) if key in _keys() else d


def finding_drivers(res: DriverResult, lang: str = "en") -> str:
    """The driver finding; below R² 0.10 or with no significant top driver it says so instead of ranking."""
    outcome = _tr(f"measure.{res.outcome}", lang)
    dropped = _tr("find.drivers_dropped", lang, n=fmt_int(res.n, lang), dropped=fmt_int(res.n_dropped, lang))
    if not np.isfinite(res.r2) or res.r2 < R2_MIN:
        return _tr("find.drivers_low_r2", lang, outcome=outcome, r2=fmt_num(res.r2, lang),
                   min=fmt_num(R2_MIN, lang)) + " " + dropped
    top = res.table.iloc[0]
    if not top["significant"]:
        return _tr("find.drivers_no_evidence", lang, outcome=outcome, r2=fmt_num(res.r2, lang)) + " " + dropped
    fix = res.table[res.table["quadrant"] == "fix_first"]["driver"].tolist()
    grey = res.table[~res.table["significant"]]["driver"].tolist()
    text = _tr("find.drivers_plain", lang, driver=_driver_label(top["driver"], lang, res.labels),
               direction=_tr("direction.up" if top["direction"] > 0 else "direction.down", lang),
               fix=", ".join(_driver_label(d, lang, res.labels) for d in fix) or _tr("find.fix_none", lang),
               outcome=outcome)
    if grey:
        text += (" " if lang != "zh" else "") + _tr("find.drivers_grey_plain", lang, drivers=", ".join(
            _driver_label(d, lang, res.labels) for d in grey))
    return text


# =============================================================== 7. scorecards
def _period_stats(ds: Dataset, start: dt.date, end: dt.date, prev_start: dt.date) -> dict[str, Any]:
    """Engine aggregates of one period: buyers, purchases, spend moments, discount, complainers, returners."""
    disc = "COALESCE(discount, 0)" if ds.has("transactions", "discount") else "NULL"
    cmp = ""
    if ds.has("complaints", "customer_id", "opened_at"):
        cmp = (", (SELECT count(DISTINCT k.customer_id) FROM complaints k JOIN b ON b.customer_id = k.customer_id "
               "WHERE CAST(k.opened_at AS DATE) BETWEEN ? AND ?) AS complainers")
    q = f"""WITH b AS (SELECT customer_id, count(*) AS n, sum(amount) AS spend, sum({disc}) AS disc
                      FROM transactions WHERE amount > 0 AND date BETWEEN ? AND ? AND customer_id IS NOT NULL
                      GROUP BY 1),
            pb AS (SELECT DISTINCT customer_id FROM transactions WHERE amount > 0 AND date >= ? AND date < ?)
            SELECT count(*) AS buyers, sum(n) AS purchases, sum(n * n) AS purchases_sq, sum(spend) AS spend,
                   sum(spend * spend) AS spend_sq, sum(disc) AS disc,
                   (SELECT count(*) FROM pb) AS prev_buyers,
                   (SELECT count(*) FROM pb JOIN b USING (customer_id)) AS returning {cmp}
            FROM b"""
    params: list[Any] = [start, end, prev_start, start]
    if cmp:
        params += [start, end]
    row = ds.sql(q, params).iloc[0].to_dict()
    return {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}


def _prop_test(k1: float, n1: float, k0: float, n0: float) -> float:
    if not (n1 and n0) or n1 <= 0 or n0 <= 0:
        return math.nan
    p = (k1 + k0) / (n1 + n0)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n0)) if 0 < p < 1 else 0.0
    return float(2 * stats.norm.sf(abs(k1 / n1 - k0 / n0) / se)) if se > 0 else math.nan


def _mean_test(s1: float, ss1: float, n1: float, s0: float, ss0: float, n0: float) -> tuple[float, float, float]:
    """Mean, its 95% half-width, and the Welch t-test p-value vs the previous period, from sums."""
    if not n1 or n1 < 2:
        return (math.nan, math.nan, math.nan)
    m1, v1 = s1 / n1, max(ss1 / n1 - (s1 / n1) ** 2, 0) * n1 / (n1 - 1)
    half = float(stats.t.ppf(0.975, n1 - 1) * math.sqrt(v1 / n1))
    if not n0 or n0 < 2:
        return (m1, half, math.nan)
    m0, v0 = s0 / n0, max(ss0 / n0 - (s0 / n0) ** 2, 0) * n0 / (n0 - 1)
    p = stats.ttest_ind_from_stats(m1, math.sqrt(v1), n1, m0, math.sqrt(v0), n0, equal_var=False).pvalue
    return (m1, half, float(p))


@dataclass(frozen=True, repr=False)
class Scorecard(_Section):
    """Satisfaction and loyalty indicators (DOMAIN.md §1) for ``period`` vs ``previous``.

    ``indicators``: ``group (satisfaction/loyalty), indicator, value, ci_low, ci_high, previous, change,
    p_value, test, status`` — status "measured" or "not measured: needs …" (``needs`` column).
    ``survey``: the three survey questions: ``question, n, mean (+CI), top2 (+CI), bottom2 (+CI),
    nps (+CI, 0–10 scales), previous_mean, previous_top2, p_mean (Welch t), p_top2 (z test)``.
    """

    heading: ClassVar[str] = "loyalty.h.scorecard"
    indicators: pd.DataFrame
    survey: pd.DataFrame
    period: str
    previous: str
    single_wave: bool = False
    currency: str = "CNY"
    loyal: dict[str, Any] = field(default_factory=dict, compare=False)
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def tables(self, lang: str = "en") -> list[Table]:
        out = []
        if len(self.survey):
            out.append(Table(survey_table(self, lang), caption=_tr("cap.survey", lang)))
        out.append(Table(scorecard_table(self, lang, self.currency), caption=_tr("cap.indicators", lang)))
        return out

    def findings(self, lang: str = "en") -> list[Finding]:
        return [Finding("scorecard", finding_scorecard(self, lang), how=how_scorecard(self, lang))]

    def metrics(self) -> dict[str, Any]:
        return {"scorecard": self.to_metric()}

    def kpis(self, lang: str = "en") -> list[KPI]:
        out = []
        sv = self.survey.set_index("question") if len(self.survey) else pd.DataFrame()
        if "satisfaction" in sv.index:
            r = sv.loc["satisfaction"]
            n = int(r["n"])
            prev = r["previous_top2"] if not self.single_wave and r.get("previous_n", 0) else None
            out.append(KPI("satisfaction_top_box", _tr("kpi.satisfaction_top_box", lang),
                           float(r["top2"]) if n else None, "share", n=n,
                           interval=(float(r["top2_ci_low"]), float(r["top2_ci_high"])) if n else None,
                           better="higher", previous=None if prev is None or pd.isna(prev) else float(prev),
                           how=_tr("how.kpi_top_box", lang, period=self.period,
                                   cut=fmt_num(box_cuts(*self.context.get("scales", {}).get(
                                       "satisfaction", (1.0, 5.0)))[1], lang, 0))))
        if self.loyal:
            lv = self.loyal
            out.append(KPI("loyal_share", _tr("kpi.loyal_share", lang), lv["value"], "share", n=lv["n"],
                           interval=lv["interval"], better="higher", previous=lv["previous"],
                           how=_tr("how.kpi_loyal", lang, period=self.period,
                                   measure=_tr(f"measure.{lv['measure']}", lang))))
        return out

    def to_metric(self) -> dict[str, Any]:
        ind = {r.indicator: ({"value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "previous": r.previous,
                              "p_value": r.p_value} if r.status == "measured" else {"status": r.status, "needs": r.needs})
               for r in self.indicators.itertuples()}
        sv = {r.question: {k: getattr(r, k) for k in ("n", "mean", "mean_ci_low", "mean_ci_high", "top2",
                                                        "top2_ci_low", "top2_ci_high", "bottom2", "nps",
                                                        "previous_mean", "p_mean", "p_top2")}
              for r in self.survey.itertuples()}
        return {"period": self.period, "previous": self.previous, "single_wave": self.single_wave,
                "indicators": ind, "survey": sv}

    def __repr__(self) -> str:
        m = self.indicators[self.indicators["status"] == "measured"]
        return (f"<Scorecard {self.period} vs {self.previous}: {len(m)} measured, "
                f"{len(self.indicators) - len(m)} not measured; {len(self.survey)} survey questions>")


def nps_ci(v: pd.Series | np.ndarray) -> tuple[float, float, float]:
    """Net Promoter Score (×100) of 0–10 answers with its 95% margin: promoters p (9–10), detractors d (0–6),
    Var(NPS) = (p + d − (p − d)²) / n."""
    v = pd.Series(v).dropna().to_numpy(float)
    n = v.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    pro, det = float((v >= 9).mean()), float((v <= 6).mean())
    nps = pro - det
    se = math.sqrt(max(pro + det - nps ** 2, 0) / n)
    return (100 * nps, 100 * (nps - Z95 * se), 100 * (nps + Z95 * se))


def _survey_card(cur: pd.DataFrame, prev: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for q in ("satisfaction", "repurchase_intent", "recommend"):
        if q not in frame:
            continue
        lo, hi = _scale(frame, q)
        v = cur[q].dropna()
        v0 = prev[q].dropna()
        n, n0 = len(v), len(v0)
        m, mlo, mhi, _ = mean_ci(v)
        bcut, tcut = box_cuts(lo, hi)
        top = (v >= tcut).sum()
        bot = (v <= bcut).sum()
        top0 = (v0 >= tcut).sum()
        tlo, thi = wilson(top, n)
        blo, bhi = wilson(bot, n)
        row = {"question": q, "n": n, "mean": m, "mean_ci_low": mlo, "mean_ci_high": mhi,
               "top2": top / n if n else np.nan, "top2_ci_low": float(tlo), "top2_ci_high": float(thi),
               "bottom2": bot / n if n else np.nan, "bottom2_ci_low": float(blo), "bottom2_ci_high": float(bhi),
               "nps": np.nan, "nps_ci_low": np.nan, "nps_ci_high": np.nan,
               "previous_n": n0, "previous_mean": v0.mean() if n0 else np.nan,
               "previous_top2": top0 / n0 if n0 else np.nan,
               "p_mean": float(stats.ttest_ind(v, v0, equal_var=False).pvalue) if n > 1 and n0 > 1 else np.nan,
               "p_top2": _prop_test(top, n, top0, n0)}
        if q == "recommend" and lo == 0 and hi == 10 and n:
            # NPS only on a 0–10 recommend item; Var = (p + d − (p − d)²) / n
            nps, nlo, nhi = nps_ci(v)
            row.update(nps=nps, nps_ci_low=nlo, nps_ci_high=nhi)
            if n0:
                row["previous_nps"] = nps_ci(v0)[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["binary"] = {q: is_binary(frame, q) for q in out["question"]} if len(out) else {}
    return out


def compute_scorecard(ds: Dataset, frame: pd.DataFrame, period: Any, previous: Any) -> Scorecard:
    """Indicator scorecards for ``period`` (``.start``/``.end``) vs ``previous`` (transactions in the engine;
    survey answers from ``frame``). Unmeasurable indicators are listed with what they need."""
    single = frame.attrs.get("waves") == 1
    if single:  # one wave: the wave is the period, nothing to compare it with
        cur, prv = frame, frame.iloc[:0]
    else:
        cur = frame[(frame["date"] >= pd.Timestamp(period.start)) & (frame["date"] <= pd.Timestamp(period.end))]
        prv = frame[(frame["date"] >= pd.Timestamp(previous.start)) & (frame["date"] <= pd.Timestamp(previous.end))]
    survey = _survey_card(cur, prv, frame)
    rows: list[dict[str, Any]] = []

    def add(group: str, ind: str, value: float = math.nan, lo: float = math.nan, hi: float = math.nan,
            prev: float = math.nan, p: float = math.nan, test: str = "", needs: str = "") -> None:
        rows.append({"group": group, "indicator": ind, "value": value, "ci_low": lo, "ci_high": hi,
                     "previous": prev, "change": value - prev if not needs else math.nan, "p_value": p,
                     "test": test, "status": "measured" if not needs else "not measured", "needs": needs})

    sv = survey.set_index("question") if len(survey) else pd.DataFrame()
    if "recommend" in sv.index:
        r = sv.loc["recommend"]
        add("satisfaction", "recommendation", r["top2"], r["top2_ci_low"], r["top2_ci_high"], r["previous_top2"],
            r["p_top2"], "z")
    else:
        add("satisfaction", "recommendation", needs="surveys_recommend")
    add("satisfaction", "praise", needs="praise_item")
    add("satisfaction", "asked_by_name", needs="brand_request_item")
    has_tx = ds.has("transactions", "customer_id", "date", "amount")
    if has_tx:
        p_len = (period.end - period.start).days + 1
        cur_s = _period_stats(ds, period.start, period.end, period.start - dt.timedelta(days=p_len))
        q_len = (previous.end - previous.start).days + 1
        prv_s = _period_stats(ds, previous.start, previous.end, previous.start - dt.timedelta(days=q_len))
        nb, nb0 = cur_s["buyers"] or 0, prv_s["buyers"] or 0
        # repeat-visit rate: previous-period buyers who bought again this period
        k1, n1 = cur_s["returning"] or 0, cur_s["prev_buyers"] or 0
        k0, n0 = prv_s["returning"] or 0, prv_s["prev_buyers"] or 0
        lo, hi = wilson(k1, n1)
        add("satisfaction", "repeat_visit_rate", k1 / n1 if n1 else math.nan, float(lo), float(hi),
            k0 / n0 if n0 else math.nan, _prop_test(k1, n1, k0, n0), "z")
        if "complainers" in cur_s:
            c1, c0 = cur_s["complainers"] or 0, prv_s.get("complainers") or 0
            lo, hi = wilson(c1, nb)
            add("satisfaction", "complaint_rate", c1 / nb if nb else math.nan, float(lo), float(hi),
                c0 / nb0 if nb0 else math.nan, _prop_test(c1, nb, c0, nb0), "z")
        else:
            add("satisfaction", "complaint_rate", needs="complaints_customer_id")
        def add_mean(group: str, indicator: str, col: str) -> None:
            """Per-buyer mean of ``col`` with its CI and a Welch test against the previous period."""
            m, half, p = _mean_test(cur_s[col] or 0, cur_s[col + "_sq"] or 0, nb, prv_s[col] or 0,
                                    prv_s[col + "_sq"] or 0, nb0)
            add(group, indicator, m, m - half, m + half, (prv_s[col] or 0) / nb0 if nb0 else math.nan, p, "welch")

        add_mean("satisfaction", "purchase_amount", "spend")
        if cur_s.get("disc") is not None and ds.has("transactions", "discount"):
            gross1 = (cur_s["spend"] or 0) + (cur_s["disc"] or 0)
            gross0 = (prv_s["spend"] or 0) + (prv_s["disc"] or 0)
            add("satisfaction", "price_sensitivity", (cur_s["disc"] or 0) / gross1 if gross1 else math.nan,
                prev=(prv_s["disc"] or 0) / gross0 if gross0 else math.nan, test="proxy: discount share of gross spend")
        else:
            add("satisfaction", "price_sensitivity", needs="discount_or_price_item")
        add_mean("loyalty", "repeat_purchases", "purchases")
        tr = volume_trend(ds, period.end)
        add("loyalty", "volume_trend", tr["slope_pct"], tr["ci_low"], tr["ci_high"], p=tr["p_value"], test="OLS")
    else:
        for g, ind in (("satisfaction", "repeat_visit_rate"), ("satisfaction", "complaint_rate"),
                       ("satisfaction", "purchase_amount"), ("satisfaction", "price_sensitivity"),
                       ("loyalty", "repeat_purchases"), ("loyalty", "volume_trend")):
            add(g, ind, needs="transactions_customer_id")
    add("loyalty", "category_share", needs="share_of_wallet")
    add("loyalty", "time_to_choose", needs="decision_time_item")
    add("loyalty", "competitor_attitude", needs="competitor_attitude_item")
    if ds.has("members", "left_at"):
        add("loyalty", "renewal", needs="renewal_dates")
    else:
        add("loyalty", "renewal", needs="members_left_at")
    return Scorecard(pd.DataFrame(rows), survey, getattr(period, "label", str(period)),
                     "" if single else getattr(previous, "label", str(previous)), single,
                     str(frame.attrs.get("currency") or getattr(ds, "currency", "") or "CNY"),
                     _loyal_share(frame, cur, prv, single), _context(frame))


def _loyal_share(frame: pd.DataFrame, cur: pd.DataFrame, prv: pd.DataFrame, single: bool) -> dict[str, Any]:
    """Share of this period's responses counted loyal, with its Wilson interval and the previous period's share.

    The measure: the survey's ``loyal`` item when there is one (behaviour or stated, as configured), else repeat
    buying when this period's respondents have a complete follow-up, else stated intent (top box)."""
    if "loyal" in frame and frame["loyal"].notna().any():
        y, measure = frame["loyal"].astype(float), "loyal_behaviour" if loyal_is_behaviour(frame) else "loyal_intent"
    elif outcome_source(frame, "behaviour") == "repeat" and cur["repeat"].notna().any():
        y, measure = frame["repeat"].astype(float), "behaviour"
    elif outcome_source(frame, "intent"):
        y, measure = _outcome(frame, "intent"), "intent"
    else:
        return {}
    now = y.loc[cur.index].dropna()
    before = y.loc[prv.index].dropna() if not single else y.iloc[:0]
    if now.empty:
        return {"value": None, "interval": None, "n": 0, "previous": float(before.mean()) if len(before) else None,
                "measure": measure}
    lo, hi = wilson(now.sum(), len(now))
    return {"value": float(now.mean()), "interval": (float(lo), float(hi)), "n": int(len(now)),
            "previous": float(before.mean()) if len(before) else None, "measure": measure}


def volume_trend(ds: Dataset, end: dt.date, months: int = 12) -> dict[str, float]:
    """Trend of monthly purchase volume (revenue) over ``months`` months to ``end``: OLS slope as % of the
    mean month, with 95% CI and p-value."""
    q = """SELECT date_trunc('month', date) AS m, sum(amount) AS rev FROM transactions
           WHERE amount > 0 AND date <= ? AND date > ? GROUP BY 1 ORDER BY 1"""
    start = (pd.Timestamp(end) - pd.DateOffset(months=months)).date()
    m = ds.sql(q, [end, start])
    if len(m) < 3:
        return {"slope_pct": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "months": len(m)}
    y = m["rev"].to_numpy(float)
    x = np.arange(len(y), dtype=float)
    res = stats.linregress(x, y)
    tq = stats.t.ppf(0.975, len(y) - 2)
    mean = y.mean()
    return {"slope_pct": res.slope / mean, "ci_low": (res.slope - tq * res.stderr) / mean,
            "ci_high": (res.slope + tq * res.stderr) / mean, "p_value": float(res.pvalue), "months": len(y)}


def scorecard_table(sc: Scorecard, lang: str = "en", currency: str = "CNY") -> pd.DataFrame:
    """Display version of the indicator scorecard: translated names, formatted values."""
    pct = {"recommendation", "repeat_visit_rate", "complaint_rate", "price_sensitivity", "volume_trend"}
    rows = []
    for r in sc.indicators.itertuples():
        def f(v: float, ind: str = r.indicator) -> str:
            if ind in pct:
                return fmt_pct(v, lang)
            if ind == "purchase_amount":
                return fmt_money(v, lang, currency)
            return fmt_num(v, lang)
        measured = r.status == "measured"
        rows.append({
            _tr("col.group", lang): _tr(f"group.{r.group}", lang),
            _tr("col.indicator", lang): _tr(f"indicator.{r.indicator}", lang),
            _tr("col.value", lang): (f(r.value) + (f" ({f(r.ci_low)}–{f(r.ci_high)})" if pd.notna(r.ci_low) else ""))
            if measured else _tr("not_measured", lang, needs=_tr(f"needs.{r.needs}", lang)),
            _tr("col.previous", lang): f(r.previous) if measured else "",
            _tr("col.p", lang): fmt_p(r.p_value, lang) if measured else "",
        })
    return pd.DataFrame(rows)


def survey_table(sc: Scorecard, lang: str = "en") -> pd.DataFrame:
    rows = []
    for r in sc.survey.itertuples():
        rows.append({
            _tr("col.question", lang): _tr(f"measure.{r.question}", lang),
            _tr("col.n", lang): fmt_int(r.n, lang),
            _tr("col.mean", lang): f"{fmt_num(r.mean, lang)} ({fmt_num(r.mean_ci_low, lang)}–{fmt_num(r.mean_ci_high, lang)})",
            _tr("col.top2", lang): f"{fmt_pct(r.top2, lang)} ({fmt_pct(r.top2_ci_low, lang)}–{fmt_pct(r.top2_ci_high, lang)})",
            _tr("col.bottom2", lang): f"{fmt_pct(r.bottom2, lang)} ({fmt_pct(r.bottom2_ci_low, lang)}–"
                                      f"{fmt_pct(r.bottom2_ci_high, lang)})",
            _tr("col.nps", lang): (f"{fmt_num(r.nps, lang, 0)} ({fmt_num(r.nps_ci_low, lang, 0)}–"
                                   f"{fmt_num(r.nps_ci_high, lang, 0)})") if pd.notna(r.nps) else "–",
            _tr("col.previous_mean", lang): fmt_num(r.previous_mean, lang),
            _tr("col.p_mean", lang): fmt_p(r.p_mean, lang),
        })
    return pd.DataFrame(rows)


def finding_scorecard(sc: Scorecard, lang: str = "en") -> str:
    """The satisfaction line of the scorecard in plain words (tests and intervals are in :func:`how_scorecard`)."""
    sv = sc.survey.set_index("question") if len(sc.survey) else pd.DataFrame()
    if "satisfaction" not in sv.index:
        return _tr("find.none", lang)
    r = sv.loc["satisfaction"]
    if not r["n"]:
        return _tr("find.scorecard_empty", lang)
    if sc.survey.attrs.get("binary", {}).get("satisfaction"):  # yes/no: a share satisfied, not a mean of 0/1
        share = dict(share=fmt_pct(r["top2"], lang), lo=fmt_pct(r["top2_ci_low"], lang),
                     hi=fmt_pct(r["top2_ci_high"], lang), n=fmt_int(r["n"], lang))
        if sc.single_wave:
            return _tr("find.scorecard_binary_single", lang, **share)
        sig = _tr("find.sig" if pd.notna(r["p_top2"]) and r["p_top2"] < 0.05 else "find.not_sig", lang)
        return _tr("find.scorecard_binary_plain", lang, **share, prev=fmt_pct(r["previous_top2"], lang), sig=sig)
    if sc.single_wave:
        return _tr("find.scorecard_single", lang, mean=fmt_num(r["mean"], lang), lo=fmt_num(r["mean_ci_low"], lang),
                   hi=fmt_num(r["mean_ci_high"], lang), n=fmt_int(r["n"], lang), top2=fmt_pct(r["top2"], lang))
    sig = _tr("find.sig" if pd.notna(r["p_mean"]) and r["p_mean"] < 0.05 else "find.not_sig", lang)
    return _tr("find.scorecard_plain", lang, mean=fmt_num(r["mean"], lang), n=fmt_int(r["n"], lang),
               prev=fmt_num(r["previous_mean"], lang), sig=sig, top2=fmt_pct(r["top2"], lang))


def how_scorecard(sc: Scorecard, lang: str = "en") -> str:
    """The statistics behind :func:`finding_scorecard`: intervals, tests and p-values."""
    sv = sc.survey.set_index("question") if len(sc.survey) else pd.DataFrame()
    if "satisfaction" not in sv.index or not sv.loc["satisfaction", "n"]:
        return ""
    r = sv.loc["satisfaction"]
    return _tr("how.scorecard", lang, mean=fmt_num(r["mean"], lang), lo=fmt_num(r["mean_ci_low"], lang),
               hi=fmt_num(r["mean_ci_high"], lang), top2=fmt_pct(r["top2"], lang),
               tlo=fmt_pct(r["top2_ci_low"], lang), thi=fmt_pct(r["top2_ci_high"], lang),
               p_mean=fmt_p(r["p_mean"], lang), p_top2=fmt_p(r["p_top2"], lang), n=fmt_int(r["n"], lang),
               period=sc.period, previous=sc.previous or "–")


# =============================================================== 8. open answers
@dataclass(frozen=True, repr=False)
class OpenAnswers(_Section):
    """Themes of open answers by satisfaction level (via :mod:`workbench.text`: jieba for Chinese).

    ``by_level``: ``theme, label, level, n, share`` (share of the level's comments);
    ``distinctive``: terms over-represented at each level (log-odds, z);
    ``n_comments`` non-empty comments, ``n_empty`` missing/empty."""

    heading: ClassVar[str] = "loyalty.h.open_answers"
    by_level: pd.DataFrame
    distinctive: pd.DataFrame
    terms: pd.DataFrame
    n_comments: int
    n_empty: int
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_open_answers(self, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        return [Finding("open_answers", finding_open_answers(self, lang))]

    def _notes(self, lang: str = "en") -> list[str]:
        return [base_text(self.n_comments, self.context, lang)]

    def metrics(self) -> dict[str, Any]:
        return {"open_answers": {"n_comments": self.n_comments, "n_empty": self.n_empty,
                                 "themes": self.by_level[["theme", "label", "level", "n", "share"]]}}

    def __repr__(self) -> str:
        return (f"<OpenAnswers {self.n_comments} comments ({self.n_empty} empty), "
                f"{self.by_level['theme'].nunique()} themes>")


def compute_open_answers(frame: pd.DataFrame, column: str = "comment", by: str = "satisfaction", n_themes: int = 5,
                 seed: int = 42, max_texts: int | None = 10_000) -> OpenAnswers:
    """Themes in the open answers (e.g. "what would it take to earn a 5?") per satisfaction level.

    With more than ``max_texts`` responses, themes and shares are estimated on a seeded random sample of
    ``max_texts`` responses (``n_comments``/``n_empty`` then describe the sample)."""
    from workbench import text

    if column not in frame or frame[column].notna().sum() == 0:
        raise MissingDataError("surveys", (column,), "open answers")
    if max_texts and len(frame) > max_texts:  # themes are fitted on a seeded random sample of responses
        frame = frame.sample(int(max_texts), random_state=seed)
    texts = frame[column]
    th = text.themes(texts, n_themes=n_themes, seed=seed)
    labels = th.sizes.dropna(subset=["theme"]).set_index("theme")["label"]
    df = pd.DataFrame({"theme": th.assignment, "level": frame[by]}).dropna()
    df["theme"] = df["theme"].astype(int)
    g = df.groupby(["theme", "level"]).size().rename("n").reset_index()
    g["share"] = g["n"] / g.groupby("level")["n"].transform("sum")
    g.insert(1, "label", g["theme"].map(labels))
    grp = frame[by].map(lambda v: fmt_num(v, digits=0) if pd.notna(v) else None)
    dist = text.distinctive_terms(texts, grp, top_n=5)
    return OpenAnswers(g, dist, th.terms, int(len(texts) - th.n_empty), int(th.n_empty))


def figure_open_answers(oa: OpenAnswers, lang: str = "en") -> go.Figure:
    piv = oa.by_level.pivot_table(index="label", columns="level", values="share", fill_value=0)
    fig = go.Figure(go.Heatmap(z=piv.to_numpy(), x=[fmt_num(v, lang, 0) for v in piv.columns], y=list(piv.index),
                               colorscale="Blues", texttemplate="%{z:.0%}", colorbar=dict(title="%")))
    fig.update_layout(title=_tr("fig.open_answers", lang), xaxis_title=_tr("axis.satisfaction", lang),
                      yaxis_title=_tr("axis.theme", lang), height=max(350, 80 + 45 * len(piv)))
    return fig


def finding_open_answers(oa: OpenAnswers, lang: str = "en") -> str:
    low = oa.by_level[oa.by_level["level"] <= oa.by_level["level"].median()]
    if low.empty:
        return _tr("find.none", lang)
    top = low.groupby("label")["n"].sum().idxmax()
    share = low[low["label"] == top]["n"].sum() / low["n"].sum()
    return _tr("find.open_answers", lang, theme=top, share=fmt_pct(share, lang), n=fmt_int(oa.n_comments, lang))


# =============================================================== 9. segments
def segment_comparison(frame: pd.DataFrame, by: Sequence[str] | None = None,
                       measures: Sequence[str] = ("satisfaction", "intent", "behaviour"),
                       correction: str = "holm") -> pd.DataFrame:
    """Each group vs the rest of its dimension: mean satisfaction (Welch t) and loyalty shares (two-proportion
    z); p-values adjusted across every comparison in the table (``correction``, default Holm).

    ``by``: the dimensions (default: the customers' segment/region/channel and every segment column of the
    config, incl. survey-level attributes such as ``Class`` — no customers table needed).
    Columns ``dimension, group, measure, n, value, ci_low, ci_high, rest, p_value, p_adjusted, significant``.
    """
    if by is None:
        by = list(dict.fromkeys(("segment", "region", "channel", *frame.attrs.get("segments", []))))
    rows = []
    ys: dict[str, pd.Series] = {}
    for m in measures:
        try:
            ys[m] = frame[m] if m == "satisfaction" else _outcome(frame, m)
        except MissingDataError:
            continue
    for dim in by:
        if dim not in frame or frame[dim].notna().sum() == 0:
            continue
        for grp in sorted(frame[dim].dropna().unique()):
            sel = frame[dim] == grp
            for m, y in ys.items():
                a, b = y[sel].dropna(), y[~sel & frame[dim].notna()].dropna()
                if len(a) < 2 or len(b) < 2:
                    continue
                if m == "satisfaction":
                    v, lo, hi, _ = mean_ci(a)
                    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
                else:
                    v = a.mean()
                    lo, hi = (float(z) for z in wilson(a.sum(), len(a)))
                    p = _prop_test(a.sum(), len(a), b.sum(), len(b))
                rows.append({"dimension": dim, "group": grp, "measure": m, "n": len(a), "value": v, "ci_low": lo,
                             "ci_high": hi, "rest": b.mean(), "p_value": p})
    out = pd.DataFrame(rows, columns=["dimension", "group", "measure", "n", "value", "ci_low", "ci_high", "rest",
                                      "p_value"])
    if out.empty:
        raise MissingDataError("customers", ("segment", "region", "channel"), "segment comparisons")
    out["p_adjusted"] = _adjust(out["p_value"], correction)
    out["significant"] = out["p_adjusted"] < 0.05
    out.attrs["correction"] = CORRECTIONS.get(correction, correction)
    out.attrs["measure_keys"] = {m: (f"loyal_{m}" if m != "satisfaction" and outcome_source(frame, m) == "loyal"
                                     else m) for m in ys}
    # a yes/no satisfaction item is reported as the share satisfied, never as a mean of 0/1
    out.attrs["binary_satisfaction"] = "satisfaction" in ys and is_binary(frame, "satisfaction")
    if out.attrs["binary_satisfaction"]:
        out.attrs["measure_keys"]["satisfaction"] = "satisfied_share"
    return out


def dim_label(dimension: str, lang: str = "en") -> str:
    """A segment dimension's name: translated for segment/region/channel, else the config's column name."""
    from workbench.i18n import has

    key = f"loyalty.dim.{dimension}"
    return t(key, lang) if has(key) else str(dimension)


def _segment_shares(seg: pd.DataFrame) -> pd.DataFrame:
    """The rows shown as shares: loyalty measures, and satisfaction when it is a yes/no item."""
    return seg[(seg["measure"] != "satisfaction") | bool(seg.attrs.get("binary_satisfaction"))]


def figure_segments(seg: pd.DataFrame, dimension: str = "segment", lang: str = "en") -> go.Figure:
    """Shares per group of ``dimension``; a star *on the bar* (not in the group's name, which would make
    "Contract*" a second category beside "Contract") marks a difference from the rest after correction."""
    sub = _segment_shares(seg)
    sub = sub[sub["dimension"] == dimension]
    groups = [str(g) for g in dict.fromkeys(sub["group"])]
    fig = go.Figure()
    for j, m in enumerate(sub["measure"].unique()):
        s = sub[sub["measure"] == m]
        fig.add_trace(go.Bar(x=[str(g) for g in s["group"]], y=s["value"],
                             text=["*" if sig else "" for sig in s["significant"]], textposition="outside",
                             name=_tr(f"measure.{seg.attrs.get('measure_keys', {}).get(m, m)}", lang),
                             marker_color=viz.PALETTE[j % len(viz.PALETTE)],
                             error_y=dict(type="data", symmetric=False, array=s["ci_high"] - s["value"],
                                          arrayminus=s["value"] - s["ci_low"])))
    fig.update_layout(title=_tr("fig.segments", lang, dimension=dim_label(dimension, lang),
                                correction=_tr("correction.holm" if seg.attrs.get("correction") == "Holm"
                                               else "correction.fdr_bh", lang)),
                      xaxis_title=dim_label(dimension, lang), yaxis_title=_tr("axis.share", lang), barmode="group")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=groups)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def _segment_largest(seg: pd.DataFrame) -> pd.Series | None:
    sig = seg[seg["significant"]]
    return None if sig.empty else sig.loc[(sig["value"] - sig["rest"]).abs().idxmax()]


def finding_segments(seg: pd.DataFrame, lang: str = "en") -> str:
    r = _segment_largest(seg)
    if r is None:
        return _tr("find.segments_none", lang, n=fmt_int(len(seg), lang))
    share = r["measure"] != "satisfaction" or bool(seg.attrs.get("binary_satisfaction"))
    fmt = (lambda v: fmt_pct(v, lang)) if share else (lambda v: fmt_num(v, lang))
    key = seg.attrs.get("measure_keys", {}).get(r["measure"], r["measure"])
    return _tr("find.segments_plain", lang, k=fmt_int(int(seg["significant"].sum()), lang), n=fmt_int(len(seg), lang),
               group=str(r["group"]), dimension=dim_label(str(r["dimension"]), lang),
               measure=_tr(f"measure.{key}", lang), value=fmt(r["value"]), rest=fmt(r["rest"]))


def how_segments(seg: pd.DataFrame, lang: str = "en") -> str:
    r = _segment_largest(seg)
    return _tr("how.segments", lang, n=fmt_int(len(seg), lang),
               correction=_tr("correction.holm" if seg.attrs.get("correction") == "Holm" else "correction.fdr_bh",
                              lang), p=fmt_p(r["p_adjusted"], lang) if r is not None else "–")


# =============================================================== 10. value at stake
@dataclass(frozen=True, repr=False)
class ValueAtStake(_Section):
    """Model-based, associational estimate (相关而非因果) of the extra repeat buying and profit in one
    window if respondents below the behaviour threshold moved to the first level above it.

    Uses the fitted hinge (and its bootstrap replicates for the interval), each respondent's margin per
    purchase (their last 12 months; else the average) and purchases per repeating customer in the window.
    Interval: 2.5–97.5% of the bootstrap replicates of the threshold model (purchases per repeater and
    margins held fixed).
    """

    n_below: int
    target_level: float
    extra_repeaters: float
    extra_repeaters_ci: tuple[float, float]
    extra_purchases: float
    extra_purchases_ci: tuple[float, float]
    extra_profit: float
    extra_profit_ci: tuple[float, float]
    heading: ClassVar[str] = "loyalty.h.value_at_stake"
    purchases_per_repeater: float
    window_days: int
    profit_known: bool = True
    threshold_ok: bool = True
    currency: str = "CNY"
    n_boot: int = 0
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_value_at_stake(self, lang, self.currency)]

    def findings(self, lang: str = "en") -> list[Finding]:
        # no margin in the data: profit is not computable, so the evidence is the extra repeat buyers
        value, interval = ((self.extra_profit, self.extra_profit_ci) if self.profit_known
                           else (self.extra_repeaters, self.extra_repeaters_ci))
        status = evidence(value, *interval, self.n_below, null=0.0)
        if not self.threshold_ok:
            status = "not_enough_evidence"
        how = _tr("how.value_at_stake", lang, n_boot=fmt_int(self.n_boot, lang), n=fmt_int(self.n_below, lang),
                  ppr=fmt_num(self.purchases_per_repeater, lang, 2))
        return [_finding("value_at_stake", finding_value_at_stake(self, lang, self.currency), status, lang,
                         value=value, interval=interval, null=0.0, n=self.n_below, how=how,
                         action=_tr("action.value_at_stake", lang, level=fmt_num(self.target_level, lang, 0)))]

    def _notes(self, lang: str = "en") -> list[str]:
        return [base_text(self.n_below, self.context, lang, followup=True)]

    def metrics(self) -> dict[str, Any]:
        return {"value_at_stake": self.to_metric()}

    def to_metric(self) -> dict[str, Any]:
        return {"n_below": self.n_below, "target_level": self.target_level,
                "extra_repeaters": self.extra_repeaters, "extra_repeaters_ci": list(self.extra_repeaters_ci),
                "extra_purchases": self.extra_purchases, "extra_purchases_ci": list(self.extra_purchases_ci),
                "extra_profit": self.extra_profit if self.profit_known else None,
                "extra_profit_ci": list(self.extra_profit_ci) if self.profit_known else None,
                "profit": "estimated" if self.profit_known else "not computable: no margin in the data",
                "window_days": self.window_days, "kind": "model-based, associational"}

    def __repr__(self) -> str:
        return (f"<ValueAtStake (associational): {self.n_below} respondents below the threshold → +"
                f"{self.extra_repeaters:.1f} repeat buyers ({self.extra_repeaters_ci[0]:.1f}–"
                f"{self.extra_repeaters_ci[1]:.1f}), +{self.extra_purchases:.1f} purchases, "
                f"+{self.extra_profit:,.0f} profit per {self.window_days} days>")


def compute_value_at_stake(frame: pd.DataFrame, behaviour: ThresholdResult) -> ValueAtStake:
    """See :class:`ValueAtStake`."""
    require_behaviour(frame)
    sub = frame[frame["followup"] & frame["satisfaction"].notna()]
    levels = np.sort(sub["satisfaction"].unique())
    above = levels[levels > behaviour.tau]
    target = float(above.min()) if above.size else float(levels.max())
    below = sub[sub["satisfaction"] < behaviour.tau]
    s = below["satisfaction"].to_numpy(float)
    rep = sub[sub["repeat"] == 1]
    ppr = float(rep["repeat_n"].mean()) if len(rep) else 1.0
    if "margin_12m" in sub and sub["margin_12m"].notna().any():
        per = (below["margin_12m"] / below["freq_12m"].where(below["freq_12m"] > 0))
        avg = float(sub["margin_12m"].sum() / sub["freq_12m"].sum()) if sub["freq_12m"].sum() else 0.0
        mpp = per.fillna(avg).to_numpy(float)
    else:  # no margin (nor margin_rate): profit is not computable, never an estimate of 0
        mpp = np.full(len(below), np.nan)
    known = bool(np.isfinite(mpp).all()) if len(mpp) else "margin_12m" in sub and sub["margin_12m"].notna().any()

    def gain(a: np.ndarray, b: np.ndarray, tau: np.ndarray) -> np.ndarray:
        p_now = np.clip(a[:, None] + b[:, None] * np.maximum(0, s[None, :] - tau[:, None]), 0, 1)
        p_new = np.clip(a + b * np.maximum(0, target - tau), 0, 1)[:, None]
        return np.clip(p_new - p_now, 0, None)

    g0 = gain(np.array([behaviour.a]), np.array([behaviour.b]), np.array([behaviour.tau]))[0]
    gb = gain(behaviour.boot["a"].to_numpy(), behaviour.boot["b"].to_numpy(), behaviour.boot["tau"].to_numpy())
    rep_b = gb.sum(1)
    prof_b = (gb * mpp[None, :]).sum(1) * ppr

    def ci(v: np.ndarray) -> tuple[float, float]:
        lo, hi = np.quantile(v, [0.025, 0.975])
        return (float(lo), float(hi))

    profit = float((g0 * mpp).sum() * ppr) if known else math.nan
    profit_ci = ci(prof_b) if known else (math.nan, math.nan)
    return ValueAtStake(len(below), target, float(g0.sum()), ci(rep_b), float(g0.sum() * ppr), ci(rep_b * ppr),
                        profit, profit_ci, ppr, int(frame.attrs.get("window_days", 90)), known)


def finding_value_at_stake(v: ValueAtStake, lang: str = "en", currency: str = "CNY") -> str:
    if not v.profit_known:
        return _tr("find.value_at_stake_no_margin", lang, n=fmt_int(v.n_below, lang),
                   level=fmt_num(v.target_level, lang, 0), rep=fmt_num(v.extra_repeaters, lang, 0),
                   rlo=fmt_num(v.extra_repeaters_ci[0], lang, 0), rhi=fmt_num(v.extra_repeaters_ci[1], lang, 0),
                   pur=fmt_num(v.extra_purchases, lang, 0), days=fmt_int(v.window_days, lang))
    return _tr("find.value_at_stake", lang, n=fmt_int(v.n_below, lang), level=fmt_num(v.target_level, lang, 0),
               rep=fmt_num(v.extra_repeaters, lang, 0), rlo=fmt_num(v.extra_repeaters_ci[0], lang, 0),
               rhi=fmt_num(v.extra_repeaters_ci[1], lang, 0), pur=fmt_num(v.extra_purchases, lang, 0),
               profit=fmt_money(v.extra_profit, lang, currency), plo=fmt_money(v.extra_profit_ci[0], lang, currency),
               phi=fmt_money(v.extra_profit_ci[1], lang, currency), days=fmt_int(v.window_days, lang))


def figure_value_at_stake(v: ValueAtStake, lang: str = "en", currency: str = "CNY") -> go.Figure:
    cats = [_tr("vas.repeaters", lang), _tr("vas.purchases", lang)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_tr("vas.volume", lang), _tr("vas.profit", lang)])
    fig.add_trace(go.Bar(x=cats, y=[v.extra_repeaters, v.extra_purchases], marker_color=viz.PALETTE[0],
                         error_y=dict(type="data", symmetric=False,
                                      array=[v.extra_repeaters_ci[1] - v.extra_repeaters,
                                             v.extra_purchases_ci[1] - v.extra_purchases],
                                      arrayminus=[v.extra_repeaters - v.extra_repeaters_ci[0],
                                                  v.extra_purchases - v.extra_purchases_ci[0]])), 1, 1)
    if v.profit_known:
        fig.add_trace(go.Bar(x=[_tr("vas.profit", lang)], y=[v.extra_profit], marker_color=viz.PALETTE[2],
                             error_y=dict(type="data", symmetric=False, array=[v.extra_profit_ci[1] - v.extra_profit],
                                          arrayminus=[v.extra_profit - v.extra_profit_ci[0]])), 1, 2)
    else:  # no bar at 0: say that profit cannot be computed
        fig.add_annotation(text=_tr("vas.no_margin", lang), xref="x2 domain", yref="y2 domain", x=0.5, y=0.5,
                           showarrow=False)
    fig.update_layout(title=_tr("fig.value_at_stake", lang, days=fmt_int(v.window_days, lang)), showlegend=False)
    fig.update_yaxes(title_text=_tr("axis.extra_count", lang), row=1, col=1)
    fig.update_yaxes(title_text=_tr("axis.extra_profit", lang, currency=currency), row=1, col=2)
    fig.update_xaxes(title_text=_tr("axis.quantity", lang), row=1, col=1)
    fig.update_xaxes(title_text=_tr("axis.quantity", lang), row=1, col=2)
    return fig


# =============================================================== widgets (pre-aggregated)
def widget_frame(frame: pd.DataFrame, discount_cut: float = 0.05) -> pd.DataFrame:
    """Counts per (segment, month, satisfaction, deal) — all the interactive charts need.

    Columns ``segment, month, satisfaction, deal, n, intent_n, intent_k, beh_n, beh_k``.
    """
    seg = frame["segment"].fillna("–") if "segment" in frame else pd.Series("–", index=frame.index)
    intent = _outcome(frame, "intent") if outcome_source(frame, "intent") else pd.Series(np.nan, index=frame.index)
    # behaviour: repeat buying linked from purchases, or the survey's loyal item when it is observed behaviour
    rep = _outcome(frame, "behaviour") if outcome_source(frame, "behaviour") else pd.Series(np.nan, index=frame.index)
    deal = (frame["discount_share"].fillna(0) >= discount_cut) if "discount_share" in frame else pd.Series(
        False, index=frame.index)
    df = pd.DataFrame({"segment": seg, "month": frame["month"], "satisfaction": frame["satisfaction"], "deal": deal,
                       "intent_n": intent.notna().astype(int), "intent_k": intent.fillna(0),
                       "beh_n": rep.notna().astype(int), "beh_k": rep.fillna(0)})
    df = df.dropna(subset=["satisfaction"])
    out = df.groupby(["segment", "month", "satisfaction", "deal"], observed=True).agg(
        n=("intent_n", "size"), intent_n=("intent_n", "sum"), intent_k=("intent_k", "sum"),
        beh_n=("beh_n", "sum"), beh_k=("beh_k", "sum")).reset_index()
    out.attrs["scale"] = _scale(frame, "satisfaction")
    # trust / self-interest (and the texts' motive names) only when discounts are linked from purchases
    out.attrs["split"] = bool("discount_share" in frame and frame["discount_share"].notna().any())
    return out


def widget_figure(agg: pd.DataFrame, segment: str = "", months: tuple[str, str] | None = None,
                  sat_high: Any = "top box", sat_low: Any = "bottom box", lang: str = "en") -> go.Figure:
    """Loyalty by satisfaction level and the case shares for the chosen segment / months / cut-offs,
    from :func:`widget_frame` output (no engine query). Cut-offs as in :func:`four_cases`."""
    lo_s, hi_s = agg.attrs.get("scale", (1.0, 5.0))
    sat_high = resolve_cut(sat_high, lo_s, hi_s, "high")
    sat_low = resolve_cut(sat_low, lo_s, hi_s, "low")
    sub = agg
    if segment:
        sub = sub[sub["segment"] == segment]
    if months:
        sub = sub[(sub["month"] >= months[0]) & (sub["month"] <= months[1])]
    lv = sub.groupby("satisfaction")[["intent_n", "intent_k", "beh_n", "beh_k"]].sum()
    fig = make_subplots(rows=1, cols=2, subplot_titles=[_tr("fig.widget_levels", lang), _tr("fig.widget_cases", lang)])
    for j, (m, kk, nn) in enumerate((("intent", "intent_k", "intent_n"), ("behaviour", "beh_k", "beh_n"))):
        share = lv[kk] / lv[nn].where(lv[nn] > 0)
        lo, hi = wilson(lv[kk], lv[nn])
        fig.add_trace(go.Scatter(x=lv.index, y=share, mode="lines+markers", name=_tr(f"measure.{m}", lang),
                                 marker_color=viz.PALETTE[j],
                                 error_y=dict(type="data", symmetric=False, array=hi - share, arrayminus=share - lo)),
                      1, 1)
    s = sub["satisfaction"]
    satd, dis = s >= sat_high, s <= sat_low
    k, n = sub["beh_k"], sub["beh_n"]
    split = bool(agg.attrs.get("split", True))
    loyal_cases = ({"trust": (satd & ~sub["deal"], k), "self_interest": (satd & sub["deal"], k)} if split
                   else {"satisfied_loyal": (satd, k)})
    cases = {**loyal_cases, "satisfied_not_loyal": (satd, n - k), "dissatisfied_not_loyal": (dis, n - k),
             "dissatisfied_loyal": (dis, k), "neutral": (~satd & ~dis, n)}
    tot = n.sum()
    vals = [float(c[1][c[0]].sum()) / tot if tot else np.nan for c in cases.values()]
    fig.add_trace(go.Bar(x=[case_label(c, lang, motives=split) for c in cases], y=vals, marker_color=viz.PALETTE[2],
                         showlegend=False), 1, 2)
    fig.update_xaxes(title_text=_tr("axis.satisfaction", lang), row=1, col=1)
    fig.update_xaxes(title_text=_tr("axis.case", lang), row=1, col=2)
    fig.update_yaxes(title_text=_tr("axis.share_loyal", lang), tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text=_tr("axis.share_respondents", lang), tickformat=".0%", row=1, col=2)
    # legend under the plots: above them it collides with the subplot titles
    fig.update_layout(title=_tr("fig.widget", lang), height=560,
                      legend=dict(orientation="h", yanchor="top", y=-0.45, x=0))
    return fig


# =============================================================== sections (one result per notebook section)
@dataclass(frozen=True, repr=False)
class DataSummary(_Section):
    """What data the notebook uses: responses, survey shape, scales, out-of-scale ratings, caveats."""

    heading: ClassVar[str] = "loyalty.h.data"
    n: int
    settings: dict[str, Any]
    survey: dict[str, Any] | None = None
    out_of_scale: pd.DataFrame | None = None
    period: Any = None
    previous: Any = None
    missing: BaseException | None = None
    context: dict[str, Any] = field(default_factory=dict, compare=False)
    facts: dict[str, Any] = field(default_factory=dict, compare=False)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_responses": self.n, "settings": self.settings}
        if self.survey is not None:
            out["survey"] = self.survey
        if self.out_of_scale is not None:
            out["out_of_scale"] = self.out_of_scale
        return out

    def _notes(self, lang: str = "en") -> list[str]:
        from workbench.i18n import fmt_date
        from workbench.results import skip_reason

        if self.missing is not None:
            return [f"{_tr('note.no_surveys', lang)} — {skip_reason(self.missing, lang)}"]
        f, out = self.facts, []
        if self.context.get("waves") == 1:
            out.append(_tr("note.single_wave", lang, n=fmt_int(self.n, lang)))
        elif self.period is not None:
            first, last = self.context.get("first"), self.context.get("last")
            out.append(_tr("note.estimation", lang, period=self.period.display(lang),
                           previous=self.previous.display(lang), n=fmt_int(self.n, lang),
                           first=fmt_date(first, lang) if self.n else "–", last=fmt_date(last, lang) if self.n else "–"))
        if self.context.get("segment"):
            out.append(_tr("note.segment_filter", lang, segment=self.context["segment"]))
        if f.get("behaviour"):
            out.append(_tr("note.behaviour", lang, days=fmt_int(self.context.get("window_days", 90), lang),
                           n=fmt_int(f["followup"], lang), total=fmt_int(self.n, lang), anon=fmt_int(f["anon"], lang)))
        elif not f.get("loyal_behaviour"):
            out.append(_tr("note.anonymous", lang))
        if f.get("loyal"):
            out.append(_tr("note.loyal_behaviour" if f.get("loyal_behaviour") else "note.loyal_intent", lang))
        if f.get("cut_error") is not None:
            out.append(f"{_tr('h.four_cases', lang)} — {f['cut_error'].reason(lang)}")
        elif "cuts" in f:
            lo_s, hi_s = f["scale"]
            out.append(_tr("note.scales", lang, sat=f"{fmt_num(lo_s, lang, 0)}–{fmt_num(hi_s, lang, 0)}",
                           high=fmt_num(f["cuts"][0], lang, 1), low=fmt_num(f["cuts"][1], lang, 1)))
        oos = self.out_of_scale
        if oos is not None and len(oos):
            out.append(_tr("note.out_of_scale", lang, items=", ".join(
                f"{r.column} × {fmt_int(r.count, lang)} ({r.scale})" for r in oos.itertuples())))
        elif oos is not None:
            out.append(_tr("note.no_out_of_scale", lang))
        out.append(_tr("note.associational", lang))
        return out


def data_summary(ds: Dataset, frame: Any, period: Any = None, previous: Any = None, *, sat_high: Any = "top box",
                 sat_low: Any = "bottom box", n_boot: int = 500, seed: int = 42) -> DataSummary:
    """The "data used" section: ``frame`` is the respondent frame or ``nb.data(respondent_frame, ...)``.

    Never skipped: without surveys it records ``n_responses = 0`` and says why."""
    label = getattr(period, "label", str(period) if period is not None else "")
    try:
        f = frame() if callable(frame) and not isinstance(frame, pd.DataFrame) else frame
    except MissingDataError as exc:
        settings = {"period": label, "segment": "", "sat_high": sat_high, "sat_low": sat_low, "window_days": None,
                    "n_boot": n_boot, "seed": seed, "estimation": "all surveys to period end"}
        return DataSummary(0, settings, period=period, previous=previous, missing=exc)
    n = len(f)
    settings = {"period": label, "segment": f.attrs.get("segment", ""), "sat_high": sat_high, "sat_low": sat_low,
                "window_days": f.attrs.get("window_days"), "n_boot": n_boot, "seed": seed,
                "estimation": "all surveys to period end"}
    shares = {}
    for name, col in (("satisfied", top_box(f, "satisfaction")), ("loyal", f["loyal"] if "loyal" in f else None)):
        if col is not None and col.notna().any():
            k, m = int(col.sum()), int(col.notna().sum())
            lo, hi = wilson(k, m)
            shares[name] = {"estimate": k / m, "ci_low": float(lo), "ci_high": float(hi), "n": m}
    survey = {"waves": f.attrs.get("waves"), "loyal_kind": f.attrs["loyal_kind"] if "loyal" in f else None,
              "scale": list(_scale(f, "satisfaction")), "segments": f.attrs.get("segments", []), **shares}
    lo_s, hi_s = _scale(f, "satisfaction")
    facts: dict[str, Any] = {"behaviour": bool(f.attrs.get("behaviour")), "loyal": "loyal" in f,
                             "loyal_behaviour": loyal_is_behaviour(f), "scale": (lo_s, hi_s), "cut_error": None,
                             "followup": int(f["followup"].sum()) if "followup" in f else 0,
                             "anon": int((~f["identified"]).sum()) if "identified" in f else n}
    try:
        facts["cuts"] = (resolve_cut(sat_high, lo_s, hi_s, "high"), resolve_cut(sat_low, lo_s, hi_s, "low"))
    except Unsupported as exc:
        facts["cut_error"] = exc
    return DataSummary(n, settings, survey, out_of_scale(ds), period, previous, None, _context(f), facts)


@dataclass(frozen=True, repr=False)
class Correlations(_Section):
    """Satisfaction against every loyalty measure (:func:`correlation_table`)."""

    heading: ClassVar[str] = "loyalty.h.correlations"
    table: pd.DataFrame
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_correlations(self.table, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        return [Finding("correlations", finding_correlations(self.table, lang), how=how_correlations(self.table, lang))]

    def tables(self, lang: str = "en") -> list[Table]:
        c = self.table
        frame = pd.DataFrame({
            _tr("axis.measure", lang): [corr_measure_label(c, y, lang) for y in c["y"]],
            _tr("axis.method", lang): [_tr(f"method.{m}", lang) for m in c["method"]],
            _tr("col.r_ci", lang): [f"{fmt_num(r, lang)} ({fmt_num(lo, lang)}–{fmt_num(hi, lang)})" if pd.notna(r) else "–"
                           for r, lo, hi in zip(c["r"], c.get("ci_low", np.nan), c.get("ci_high", np.nan),
                                                strict=True)],
            _tr("col.p_corrected", lang): [fmt_p(p, lang) for p in c["p_adjusted"]],
            _tr("col.n", lang): [fmt_int(v, lang) for v in c["n"]]})
        return [Table(frame, caption=_tr("cap.correlations", lang), appendix=True)]

    def _notes(self, lang: str = "en") -> list[str]:
        return [base_text(int(self.table["n"].max()), self.context, lang)]

    def metrics(self) -> dict[str, Any]:
        cols = ["x", "y", "method", "r", "ci_low", "ci_high", "p_value", "p_adjusted", "n"]
        return {"correlations": self.table[cols], "correlation_correction": self.table.attrs.get("correction")}


@_section("loyalty.h.correlations", rows=5)
def correlations(frame: pd.DataFrame, x: str = "satisfaction", ys: Sequence[str] | None = None,
                 methods: Sequence[str] = ("pearson", "spearman", "kendall"), correction: str = "holm") -> Correlations:
    """Section 1: :func:`correlation_table` as a result (skipped with a reason when nothing is estimable)."""
    tab = correlation_table(frame, x, ys, methods, correction)
    if tab["r"].notna().sum() == 0:
        raise Unsupported("few_cases", n=fmt_int(len(frame)), min=fmt_int(5))
    return Correlations(tab, _context(frame))


def how_correlations(corr: pd.DataFrame, lang: str = "en") -> str:
    return _tr("find.corr_tail", lang, correction=_tr(
        "correction." + ("holm" if corr.attrs.get("correction") == "Holm" else "fdr_bh"), lang))


@dataclass(frozen=True, repr=False)
class Thresholds(_Section, Mapping):
    """Both thresholds (a mapping ``measure → ThresholdResult``, as :func:`fit_thresholds` returns)."""

    heading: ClassVar[str] = "loyalty.h.thresholds"
    fits: dict[str, ThresholdResult]
    n_boot: int = 0
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def __getitem__(self, key: str) -> ThresholdResult:
        return self.fits[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fits)

    def __len__(self) -> int:
        return len(self.fits)

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_thresholds(self.fits, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        ev = [threshold_evidence(r) for r in self.fits.values()]
        status = "ok" if "ok" in ev else min(ev)
        ok = [r for r in self.fits.values() if threshold_evidence(r) == "ok" and r.best == "one_break"]
        action = _tr("action.thresholds", lang, tau=fmt_num(max(r.tau for r in ok), lang, 1)) if ok else ""
        return [_finding("thresholds", finding_thresholds(self.fits, lang), status, lang,
                         value={m: round(r.tau, 2) for m, r in self.fits.items()},
                         n=max(r.n for r in self.fits.values()), how=how_thresholds(self.fits, lang, self.n_boot),
                         action=action)]

    def tables(self, lang: str = "en") -> list[Table]:
        rows = []
        for r in self.fits.values():
            if r.models is None:
                continue
            for m in r.models.itertuples():
                rows.append({_tr("col.measure", lang): _tr(f"measure.{r.measure}", lang),
                             _tr("col.model", lang): _tr(f"model.{m.model}", lang),
                             _tr("col.loglik", lang): fmt_num(m.loglik, lang, 1), _tr("col.aic", lang): fmt_num(m.aic, lang, 1),
                             _tr("col.p_simpler", lang): fmt_p(m.p_value, lang),
                             _tr("col.selected", lang): "✓" if m.selected else ""})
        return [Table(pd.DataFrame(rows), caption=_tr("cap.threshold_models", lang), appendix=True)] if rows else []

    def _notes(self, lang: str = "en") -> list[str]:
        out = [base_text(max(r.n for r in self.fits.values()), self.context, lang, followup="behaviour" in self.fits)]
        if "behaviour" not in self.fits:
            from workbench.results import skip_reason

            out.append(f"{_tr('measure.behaviour', lang)} — "
                       f"{skip_reason(MissingDataError('surveys', ('customer_id',), 'behaviour'), lang)}")
        return out

    def metrics(self) -> dict[str, Any]:
        return {"thresholds": {m: r.to_metric() for m, r in self.fits.items()}}


_FIT_MEMO: dict[tuple[int, int, int], tuple[pd.DataFrame, dict[str, ThresholdResult]]] = {}


def _fits(frame: pd.DataFrame, n_boot: int, seed: int) -> dict[str, ThresholdResult]:
    """:func:`fit_thresholds`, remembered for the last few frames (the value-at-stake section reuses the fit)."""
    key = (id(frame), int(n_boot), int(seed))
    hit = _FIT_MEMO.get(key)
    if hit is not None and hit[0] is frame:
        return hit[1]
    fits = fit_thresholds(frame, n_boot=int(n_boot), seed=int(seed))
    while len(_FIT_MEMO) >= 4:
        _FIT_MEMO.pop(next(iter(_FIT_MEMO)))
    _FIT_MEMO[key] = (frame, fits)
    return fits


@_section("loyalty.h.thresholds")
def thresholds(frame: pd.DataFrame, n_boot: int = 500, seed: int = 42) -> Thresholds:
    """Section 2: where loyalty starts to rise with satisfaction (:func:`fit_thresholds`)."""
    return Thresholds(_fits(frame, n_boot, seed), int(n_boot), _context(frame))


def how_thresholds(res: Mapping[str, ThresholdResult], lang: str = "en", n_boot: int = 0) -> str:
    parts = [model_sentence(r, lang) for r in res.values()]
    parts.append(_tr("note.threshold_test", lang, n_boot=fmt_int(n_boot, lang)))
    return ("" if lang == "zh" else " ").join(parts)


@dataclass(frozen=True, repr=False)
class ExpectationGap(_Section):
    """Below / met / above expectation and later behaviour (:func:`expectation_table`)."""

    heading: ClassVar[str] = "loyalty.h.expectation"
    table: pd.DataFrame
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_expectation(self.table, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        how = _tr("how.expectation", lang, p=fmt_p(self.table.attrs.get("p_repeat"), lang),
                  pc=fmt_p(self.table.attrs.get("p_churned"), lang))
        return [Finding("expectation_gap", finding_expectation(self.table, lang), how=how)]

    def _notes(self, lang: str = "en") -> list[str]:
        return [base_text(int(self.table["n"].sum()), self.context, lang, followup="repeat" in self.table)]

    def metrics(self) -> dict[str, Any]:
        return {"expectation_gap": self.table}


@_section("loyalty.h.expectation")
def expectation_gap(frame: pd.DataFrame) -> ExpectationGap:
    """Section 3: expectation gap and later behaviour."""
    return ExpectationGap(expectation_table(frame), _context(frame))


@_section("loyalty.h.four_cases")
def four_cases(frame: pd.DataFrame, sat_high: Any = "top box", sat_low: Any = "bottom box", loyalty: str = "auto",
               discount_cut: float | None = 0.05, intent_cut: float | None = None) -> FourCases:
    """Section 4: the four cases (:func:`classify_four_cases`; ``loyalty="auto"``: behaviour when measurable)."""
    return classify_four_cases(frame, sat_high, sat_low, loyalty, discount_cut, intent_cut)


@dataclass(frozen=True, repr=False)
class Conversion(_Section):
    """Stated intent that turned into repeat buying (:func:`conversion_table`)."""

    heading: ClassVar[str] = "loyalty.h.conversion"
    table: pd.DataFrame
    window_days: int = 90
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def overall(self) -> pd.Series:
        return self.table[self.table["level"] == "all"].iloc[0]

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_conversion(self.table, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        a = self.overall
        n = int(a["n_intent"])
        status = evidence(a["conversion"], a["ci_low"], a["ci_high"], n, null=None, span=1.0)
        how = _tr("how.conversion", lang, lo=fmt_pct(a["ci_low"], lang), hi=fmt_pct(a["ci_high"], lang),
                  n=fmt_int(n, lang), days=fmt_int(self.window_days, lang))
        text = _tr("find.conversion_plain", lang, conv=fmt_pct(a["conversion"], lang),
                   low=fmt_pct(a["low_intent_repeat"], lang), days=fmt_int(self.window_days, lang))
        action = _tr("action.conversion", lang, conv=fmt_pct(a["conversion"], lang))
        return [_finding("conversion", text, status, lang, value=float(a["conversion"]),
                         interval=(float(a["ci_low"]), float(a["ci_high"])), n=n, value_range=(0.0, 1.0), how=how,
                         action=action)]

    def kpis(self, lang: str = "en") -> list[KPI]:
        a = self.overall
        n = int(a["n_intent"])
        return [KPI("intent_conversion", _tr("kpi.intent_conversion", lang),
                    float(a["conversion"]) if n else None, "share", n=n,
                    interval=(float(a["ci_low"]), float(a["ci_high"])) if n else None, better="higher",
                    how=_tr("how.conversion", lang, lo=fmt_pct(a["ci_low"], lang), hi=fmt_pct(a["ci_high"], lang),
                            n=fmt_int(n, lang), days=fmt_int(self.window_days, lang)))]

    def _notes(self, lang: str = "en") -> list[str]:
        return [base_text(int(self.overall["n_intent"]), self.context, lang, followup=True)]

    def metrics(self) -> dict[str, Any]:
        a = self.overall
        return {"conversion": {"overall": {k: a[k] for k in ("conversion", "ci_low", "ci_high", "n_intent",
                                                             "n_converted")},
                               "by_level": self.table[self.table["level"] != "all"], "window_days": self.window_days}}


@_section("loyalty.h.conversion")
def intention_conversion(frame: pd.DataFrame, intent_cut: float | None = None) -> Conversion:
    """Section 5: of those who said they would buy again, the share who did (:func:`conversion_table`)."""
    return Conversion(conversion_table(frame, intent_cut), int(frame.attrs.get("window_days", 90)), _context(frame))


@dataclass(frozen=True, repr=False)
class Drivers(_Section):
    """Key drivers (:func:`key_drivers`) with the importance–performance map (by value tier when known)."""

    heading: ClassVar[str] = "loyalty.h.drivers"
    result: DriverResult
    tiers: dict[str, DriverResult] = field(default_factory=dict)
    tier_skip: BaseException | None = None
    binary: bool = False
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_drivers(self.result, lang), figure_importance_performance(self.tiers or self.result, lang)]

    def findings(self, lang: str = "en") -> list[Finding]:
        res = self.result
        text = finding_drivers(res, lang)
        if not res.headline_ok:
            return [Finding("drivers", text, how=how_drivers(res, lang))]
        top = res.table.iloc[0]
        fix = res.table[res.table["quadrant"] == "fix_first"]["driver"].tolist()
        action = _tr("action.drivers", lang, fix=", ".join(_driver_label(d, lang, res.labels) for d in fix)) \
            if fix else ""
        return [Finding("drivers", text, value=top["driver"], headline=True,
                        interval=(float(top["ci_low"]), float(top["ci_high"])), null=0.0, n=res.n,
                        how=how_drivers(res, lang), action=action)]

    def tables(self, lang: str = "en") -> list[Table]:
        out = []
        for name, r in [("all", self.result), *self.tiers.items()]:
            tab = r.table
            frame = pd.DataFrame({
                _tr("col.driver", lang): [_driver_label(d, lang, r.labels) for d in tab["driver"]],
                _tr("col.importance", lang): [f"{fmt_num(v, lang, 3)} ({fmt_num(lo, lang, 3)}–{fmt_num(hi, lang, 3)})"
                                              for v, lo, hi in zip(tab["importance"], tab["ci_low"], tab["ci_high"],
                                                                   strict=True)],
                _tr("col.share_r2", lang): [fmt_pct(v, lang) for v in tab["share"]],
                _tr("axis.performance", lang): [fmt_num(v, lang) for v in tab["performance"]],
                _tr("col.quadrant", lang): [_tr(f"quadrant.{q}", lang) for q in tab["quadrant"]]})
            out.append(Table(frame, caption=_tr("cap.drivers", lang, tier=_tr(f"tier.{name}", lang),
                                                r2=fmt_num(r.r2, lang), n=fmt_int(r.n, lang)), appendix=True))
        return out

    def _notes(self, lang: str = "en") -> list[str]:
        out = [_tr("note.binary_drivers", lang)] if self.binary else []
        if self.tier_skip is not None:
            out.append(skip_text(self.tier_skip, lang, "loyalty.tier.key"))
        out.append(base_text(self.result.n, self.context, lang))
        return out

    def metrics(self) -> dict[str, Any]:
        r = self.result
        return {"drivers": r.to_metric(),
                "drivers_r2": {"r2": r.r2, "outcome": r.outcome, "method": r.method, "model": r.model, "n": r.n,
                               "n_dropped": r.n_dropped},
                "drivers_by_tier": {k: v.to_metric() for k, v in self.tiers.items()}}


@_section("loyalty.h.drivers")
def drivers(frame: pd.DataFrame, outcome: str = "satisfaction", n_boot: int = 200, seed: int = 42) -> Drivers:
    """Section 6: key drivers of ``outcome`` and the importance–performance map (key vs ordinary customers)."""
    res = key_drivers(frame, outcome=outcome, n_boot=int(n_boot), seed=seed)
    tiers: dict[str, DriverResult] = {}
    why = None
    try:
        tiers = key_drivers_by_tier(frame, outcome=outcome, n_boot=max(int(n_boot) // 5, 20), seed=seed)
    except MissingDataError as exc:
        why = exc
    return Drivers(res, tiers, why, outcome == "satisfaction" and is_binary(frame, "satisfaction"), _context(frame))


def how_drivers(res: DriverResult, lang: str = "en") -> str:
    top = res.table.iloc[0] if len(res.table) else None
    method = _tr("how.method_logistic" if res.model == "logistic" else "how.method_linear", lang)
    text = _tr("how.drivers", lang, method=method, r2=fmt_num(res.r2, lang), n=fmt_int(res.n, lang),
               dropped=fmt_int(res.n_dropped, lang), n_boot=fmt_int(res.n_boot, lang))
    if top is not None:
        text += (" " if lang != "zh" else "") + _tr(
            "how.drivers_top", lang, driver=_driver_label(top["driver"], lang, res.labels),
            share=fmt_pct(top["share"], lang), lo=fmt_num(top["ci_low"], lang, 3), hi=fmt_num(top["ci_high"], lang, 3))
    return text


@_section("loyalty.h.scorecard", rows=0)
def _scorecard_section(frame: pd.DataFrame, ds: Dataset, period: Any, previous: Any) -> Scorecard:
    return compute_scorecard(ds, frame, period, previous)


def scorecard(ds: Dataset, frame: Any, period: Any, previous: Any) -> Result:
    """Section 7: indicator scorecards for ``period`` vs ``previous`` (KPIs: top-box satisfaction, loyal share)."""
    return _scorecard_section(frame, ds, period, previous)


@_section("loyalty.h.open_answers")
def open_answers(frame: pd.DataFrame, column: str = "comment", by: str = "satisfaction", n_themes: int = 8,
                 seed: int = 42, max_texts: int | None = 10_000) -> Any:
    """Section 8: what low raters write about that high raters do not (:func:`workbench.text.compare_themes`:
    phrases with stop words removed, log-odds with an informative prior, Benjamini–Hochberg, a masked quote
    per theme). With more than ``max_texts`` answers, a seeded random sample of them."""
    from workbench import text

    if column not in frame or frame[column].notna().sum() == 0:
        raise MissingDataError("surveys", (column,), "open answers")
    if by not in frame or frame[by].notna().sum() == 0:
        raise MissingDataError("surveys", (by,), "open answers")
    if max_texts and len(frame) > max_texts:
        frame = frame.sample(int(max_texts), random_state=seed)
    groups = text.rating_groups(frame[by], scale=_scale(frame, by))
    present = set(groups.dropna()[frame[column].reindex(groups.index).notna()])
    if not {groups.attrs["low"], groups.attrs["high"]} <= present:  # nothing to contrast (e.g. no low raters)
        raise Unsupported("no_contrast", low=groups.attrs["low"], high=groups.attrs["high"])
    import dataclasses

    res = text.compare_themes(frame[column], groups, focus=groups.attrs["low"], against=groups.attrs["high"],
                              by="rating", heading="loyalty.h.open_answers", key="open_answers", top_n=n_themes,
                              seed=seed)
    return dataclasses.replace(res, max_headlines=0)  # themes inform; the report's headlines are the numbers


@dataclass(frozen=True, repr=False)
class Segments(_Section):
    """Each group against the rest (:func:`segment_comparison`)."""

    heading: ClassVar[str] = "loyalty.h.segments"
    table: pd.DataFrame
    n: int = 0
    context: dict[str, Any] = field(default_factory=dict, compare=False)

    def _figs(self, lang: str = "en") -> list[Any]:
        return [figure_segments(self.table, dim, lang) for dim in dict.fromkeys(self.table["dimension"])]

    def findings(self, lang: str = "en") -> list[Finding]:
        return [Finding("segments", finding_segments(self.table, lang), how=how_segments(self.table, lang))]

    def _notes(self, lang: str = "en") -> list[str]:
        return [base_text(self.n, self.context, lang)]

    def metrics(self) -> dict[str, Any]:
        cols = ["dimension", "group", "measure", "n", "value", "ci_low", "ci_high", "p_adjusted"]
        return {"segments": self.table[cols]}


@_section("loyalty.h.segments")
def segments(frame: pd.DataFrame, by: Sequence[str] | None = None, correction: str = "holm") -> Segments:
    """Section 9: segment comparisons (each group vs the rest, corrected for multiple testing)."""
    return Segments(segment_comparison(frame, by, correction=correction), len(frame), _context(frame))


@_section("loyalty.h.value_at_stake")
def value_at_stake(frame: pd.DataFrame, behaviour: ThresholdResult | Mapping[str, ThresholdResult] | None = None,
                   n_boot: int = 500, seed: int = 42) -> ValueAtStake:
    """Section 10: value at stake below the behaviour threshold (fitted here unless ``behaviour`` is given)."""
    import dataclasses

    if behaviour is None:
        behaviour = _fits(frame, n_boot, seed)
    if isinstance(behaviour, Mapping):
        behaviour = behaviour.get("behaviour")
    if behaviour is None or behaviour.measure != "behaviour":
        raise MissingDataError("surveys", ("customer_id",), "value at stake needs the behaviour threshold")
    v = compute_value_at_stake(frame, behaviour)
    return dataclasses.replace(v, threshold_ok=threshold_evidence(behaviour) == "ok",
                               currency=str(frame.attrs.get("currency") or "CNY"), n_boot=behaviour.n_boot,
                               context=_context(frame))


@dataclass(frozen=True, repr=False)
class Explore(Result):
    """Live controls (segment, months, cut-offs) over pre-aggregated counts; JupyterLab only."""

    heading: ClassVar[str] = "loyalty.h.explore"
    interactive_only: ClassVar[bool] = True
    agg: pd.DataFrame
    sat_high: float
    sat_low: float

    def widget(self, lang: str = "en") -> Any:
        import ipywidgets as w

        agg = self.agg
        lo_s, hi_s = agg.attrs["scale"]
        step = 1.0 if scale_points(lo_s, hi_s) else (hi_s - lo_s) / 100
        months = sorted(agg["month"].unique())
        controls = {
            "segment": w.Dropdown(options=[(_tr("w.all", lang), "")] + [(_segment_option(s, lang), s)
                                                                         for s in sorted(agg["segment"].unique())],
                                  description=_tr("w.segment", lang)),
            "months": w.SelectionRangeSlider(options=[(_month_option(m, lang), m) for m in months],
                                             index=(0, len(months) - 1), description=_tr("w.months", lang)),
            "sat_high": w.FloatSlider(value=self.sat_high, min=lo_s, max=hi_s, step=step,
                                      description=_tr("w.sat_high", lang)),
            "sat_low": w.FloatSlider(value=self.sat_low, min=lo_s, max=hi_s, step=step,
                                     description=_tr("w.sat_low", lang)),
        }
        out = w.Output()

        def redraw(_: Any = None) -> None:
            v = {k: c.value for k, c in controls.items()}
            fig = widget_figure(agg, v["segment"], v["months"], v["sat_high"], v["sat_low"], lang)
            with viz.capture() as shown:  # a state update, not ``with out:`` (headless runners can hang)
                if _has_points(fig):
                    viz._display(fig)
                else:
                    viz.note(_tr("note.empty_selection", lang))
            out.outputs = viz.mime_outputs(shown)

        for c in controls.values():
            c.observe(redraw, names="value")
            c.style.description_width = "initial"  # translated labels are not cut off
        redraw()
        row = w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap"))
        return w.VBox([row, out])


def _segment_option(value: str, lang: str = "en") -> str:
    """A dropdown label: the data's group name, "no segment" for respondents without one."""
    return _tr("w.no_segment", lang) if value in ("–", "", None) else str(value)


def _month_option(month: str, lang: str = "en") -> str:
    from workbench.i18n import fmt_month

    return fmt_month(pd.Timestamp(f"{month}-01"), lang)


@_section("loyalty.h.explore", interactive=True)
def explore(frame: pd.DataFrame, sat_high: Any = "top box", sat_low: Any = "bottom box",
            discount_cut: float = 0.05) -> Explore:
    """Interactive section (left out of report pages): one chart, redrawn by the controls (never shown twice)."""
    agg = widget_frame(frame, discount_cut)
    if agg.empty:
        raise Unsupported("no_responses")
    lo_s, hi_s = agg.attrs["scale"]
    return Explore(agg, resolve_cut(sat_high, lo_s, hi_s, "high"), resolve_cut(sat_low, lo_s, hi_s, "low"))
