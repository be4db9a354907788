"""Data overview: what a manager needs to know before trusting any number.

Every function takes a :class:`~workbench.engine.Dataset` and returns a small
pandas frame of aggregates computed in the engine (DuckDB SQL); nothing
customer-level reaches pandas. The figures use translated titles and axes.

* :func:`table_overview` — tables present, rows loaded and excluded, distinct
  customers and date range per table.
* :func:`monthly_volumes` — monthly counts of transactions, survey responses,
  complaints, new programme members and points-ledger entries.
* :func:`exclusions` — validation findings per table and rule (counts only).
* :func:`removed_rows` — per table: rows removed by the configured filter and rows
  excluded by validation, kept apart (a filter is a choice, not a data fault).
* :func:`coverage_text` / :func:`removal_text` — the overview's findings in plain words.
* :func:`missing_profile` — share of missing values in the key columns.
* :func:`supported_analyses` — which analyses the data supports, and why not.

Notebook 00's sections are result objects (:mod:`workbench.results`): :func:`tables`,
:func:`volumes` (KPI ``transactions``, compared per covered day when a period is only partly
covered), :func:`excluded`, :func:`missing` and :func:`supported` (the worked example in
docs/DEVELOPING.md); ``nb.show(overview.supported(nb.ds))``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import plotly.graph_objects as go

from workbench.coverage import per_day
from workbench.engine import Dataset
from workbench.i18n import fmt_date, fmt_int, fmt_month, fmt_num, fmt_pct, t
from workbench.i18n import has as has_text
from workbench.io import quote_ident
from workbench.periods import Period
from workbench.results import KPI, Finding, Result, Table
from workbench.viz import PALETTE

#: table → (date column, translation key of the series) for the monthly volumes
VOLUME_SOURCES: dict[str, str] = {
    "transactions": "date",
    "surveys": "date",
    "complaints": "opened_at",
    "members": "joined_at",
    "points": "date",
}

#: the columns whose completeness decides what the analyses can do
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("signup_date", "segment", "region", "channel", "acquisition_cost"),
    "transactions": ("customer_id", "date", "amount", "margin", "channel", "product_category"),
    "surveys": ("customer_id", "satisfaction", "repurchase_intent", "recommend", "expectation", "comment"),
    "complaints": ("customer_id", "category", "first_response_at", "closed_at", "resolution", "text"),
    "members": ("customer_id", "joined_at", "level", "left_at"),
    "points": ("customer_id", "date", "points", "kind"),
    "prospects": ("region", "channel", "birth_year", "income", "occupation"),
}

ANALYSES: tuple[str, ...] = ("satisfaction_loyalty", "customer_value", "clv", "complaints", "lifecycle",
                             "loyalty_programme", "segments", "crosssell")


@dataclass(frozen=True)
class Support:
    """Whether one analysis can run on the dataset, with the reason (a translation key)."""

    analysis: str
    supported: bool
    reason: str
    partial: bool = False

    def __repr__(self) -> str:
        mark = "partial" if self.partial else ("yes" if self.supported else "no")
        return f"<Support {self.analysis}: {mark} ({self.reason})>"


def table_overview(ds: Dataset) -> pd.DataFrame:
    """Per table: rows loaded, filtered out, excluded by validation, distinct customers, date range.

    Returns
    -------
    DataFrame
        Columns ``table, rows, filtered, excluded, customers, first, last, derived``
        (one row per table present; dates as ``datetime.date``). ``filtered`` counts rows the
        configured filter removed, ``excluded`` rows validation excluded (never the sum).
        ``first``/``last`` are the table's own date column: signup dates for customers,
        joining dates for members, the event date elsewhere.
    """
    frame = ds.summary()
    for col in ("first", "last"):
        frame[col] = [_as_date(v) for v in frame[col]]
    removed = removed_rows(ds).set_index("table")
    frame["filtered"] = [int(removed["filtered"].get(tb, 0)) for tb in frame["table"]]
    frame["excluded"] = [int(removed["excluded"].get(tb, 0)) for tb in frame["table"]]
    cols = ["table", "rows", "filtered", "excluded", "customers", "first", "last", "derived"]
    return frame[cols + [c for c in frame.columns if c not in cols]]


def removed_rows(ds: Dataset) -> pd.DataFrame:
    """Rows each table lost on loading: to the configured filter, and to validation — apart.

    Returns
    -------
    DataFrame
        One row per loaded table: ``table, source_rows, filtered, filter, checked, excluded,
        rules, loaded``. ``checked`` = rows the filter kept (what validation saw);
        ``excluded`` = rows validation removed (a row breaking two rules counts once);
        ``rules`` = the rules that excluded rows (info notes such as ``filled`` or
        ``derived_column`` and value-level actions such as ``nulled`` are not among them);
        ``filter`` = the configured filter expression (empty when none removed rows).
    """
    from workbench.schema import RULES

    report = ds.validation
    rows = []
    for tb in ds.tables:
        load = report.tables.get(tb)
        if load is None:
            continue
        issues = [i for i in report.issues if i.table == tb]
        flt = next((i.message for i in issues if i.rule == "filtered"), "")
        rules = sorted({i.rule for i in issues if i.rule != "filtered" and i.count
                        and RULES[i.rule].severity != "info" and (i.action or RULES[i.rule].action) == "excluded"})
        rows.append({"table": tb, "source_rows": int(load.source_rows), "filtered": int(load.filtered_rows),
                     "filter": flt.removeprefix("filter: "), "checked": int(load.source_rows - load.filtered_rows),
                     "excluded": int(load.excluded_rows), "rules": rules, "loaded": int(load.loaded_rows)})
    return pd.DataFrame(rows, columns=["table", "source_rows", "filtered", "filter", "checked", "excluded",
                                       "rules", "loaded"])


def _join(items: list[str], lang: str) -> str:
    """``a, b and c`` / ``a、b和c``."""
    if len(items) <= 1:
        return "".join(items)
    return t("overview.join.last", lang, head=t("overview.join.sep", lang).join(items[:-1]), last=items[-1])


def _count(key: str, n: int, lang: str) -> str:
    """``n`` with its noun (singular for exactly one): ``1 table``, ``3 tables``, ``3张表``."""
    return t(f"overview.count.{key}.{'one' if n == 1 else 'other'}", lang, n=fmt_int(n, lang))


def removal_text(ds: Dataset, lang: str = "en") -> str:
    """The exclusions finding: per table, rows removed by the filter and rows excluded by validation.

    The two are never added up: a filter removes rows the configuration asks to leave out
    (e.g. canceled orders); validation excludes rows that break a rule. Each share is of
    that table's rows (source rows for the filter, rows the filter kept for validation).
    """
    return removal_sentence(removed_rows(ds), lang)


def removal_sentence(removed: pd.DataFrame, lang: str = "en") -> str:
    """:func:`removal_text` from a :func:`removed_rows` frame."""
    parts = []
    for r in removed[removed["filtered"] > 0].itertuples(index=False):
        parts.append(t("overview.findings.filtered", lang, table=t(f"core.tables.{r.table}", lang),
                       n=fmt_int(r.filtered, lang), total=fmt_int(r.source_rows, lang),
                       share=fmt_pct(r.filtered / r.source_rows, lang), filter=r.filter))
    validated = removed[removed["excluded"] > 0]
    for r in validated.itertuples(index=False):
        rules = _join([t(f"overview.rules.{x}", lang) for x in r.rules], lang)
        parts.append(t("overview.findings.validation_excluded", lang, table=t(f"core.tables.{r.table}", lang),
                       n=fmt_int(r.excluded, lang), total=fmt_int(r.checked, lang),
                       share=fmt_pct(r.excluded / r.checked if r.checked else 0, lang), rules=rules))
    if not len(validated):
        parts.append(t("overview.findings.no_exclusions", lang))
    text = parts[0]
    for part in parts[1:]:
        text = t("overview.join.sentences", lang, head=text, next=part)
    return text


def coverage_text(ds: Dataset, lang: str = "en") -> str:
    """The coverage finding: customers (or, without customer ids, what the rows are) and date ranges.

    Each date range says what it measures: transactions' dates, survey-response dates,
    complaint opening dates, joining dates, and for customers their signup dates — never one
    range over different kinds of date.
    """
    return coverage_sentence(table_overview(ds), customer_count(ds), _wave_dates(ds), lang)


def _wave_dates(ds: Dataset) -> bool:
    """The survey date is filled from the config (``surveys.date = wave_date``), not observed."""
    return any(i.rule == "derived_column" and (i.table, i.column) == ("surveys", "date") for i in ds.validation.issues)


def coverage_sentence(tables: pd.DataFrame, customers: int, wave_dates: bool = False, lang: str = "en") -> str:
    """:func:`coverage_text` from a :func:`table_overview` frame and the distinct customer count."""
    n_tables = _count("tables", len(tables), lang)
    if customers:
        head = t("overview.findings.coverage", lang, customers=_count("customers", customers, lang), tables=n_tables)
    else:
        what = [_count(tb, int(n), lang) for tb, n in zip(tables["table"], tables["rows"], strict=True)]
        head = t("overview.findings.coverage_no_ids", lang, what=_join(what, lang), tables=n_tables)
    ranges = []
    for tb, lo, hi, derived in zip(tables["table"], tables["first"], tables["last"], tables["derived"], strict=True):
        if lo is None or hi is None:
            continue
        key = "customers_derived" if tb == "customers" and derived else tb  # signup = first purchase
        if tb == "surveys" and wave_dates:
            key = "surveys_wave_date"
        if lo == hi:
            ranges.append(t(f"overview.range_day.{key}", lang, first=fmt_date(lo, lang)))
        else:
            ranges.append(t(f"overview.range.{key}", lang, first=fmt_date(lo, lang), last=fmt_date(hi, lang)))
    if not ranges:
        return t("overview.findings.sentence", lang, head=head)
    return t("overview.findings.with_ranges", lang, head=head,
             ranges=t("overview.join.clauses", lang).join(ranges))


def _as_date(value: object) -> dt.date | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def monthly_volumes(ds: Dataset, end: dt.date | None = None, months: int | None = None) -> pd.DataFrame:
    """Monthly row counts of the dated tables, counted in the engine.

    Parameters
    ----------
    ds : Dataset
    end : datetime.date, optional
        Last day to include (e.g. the report period's end).
    months : int, optional
        Keep only the last ``months`` months up to ``end`` (or the data's end).

    Returns
    -------
    DataFrame
        Wide frame: ``month`` (first day, ``datetime.date``) and one integer
        column per table present (0 where a month has no rows).
    """
    parts = []
    for table, col in VOLUME_SOURCES.items():
        if not ds.has(table, col):
            continue
        where = f"WHERE {quote_ident(col)} IS NOT NULL"
        params: list = []
        if end is not None:
            where += f" AND CAST({quote_ident(col)} AS DATE) <= ?"
            params.append(end)
        part = ds.sql(
            f"SELECT CAST(date_trunc('month', {quote_ident(col)}) AS DATE) AS month, count(*) AS n "
            f"FROM {table} {where} GROUP BY 1", params)
        part["table"] = table
        parts.append(part)
    if not parts:
        return pd.DataFrame({"month": pd.Series([], dtype=object)})
    long = pd.concat(parts, ignore_index=True)
    long["month"] = pd.to_datetime(long["month"])
    wide = long.pivot_table(index="month", columns="table", values="n", aggfunc="sum", fill_value=0)
    full = pd.date_range(wide.index.min(), wide.index.max(), freq="MS")
    wide = wide.reindex(full, fill_value=0).astype("int64")
    if months is not None:
        wide = wide.iloc[-months:]
    wide = wide[[t_ for t_ in VOLUME_SOURCES if t_ in wide.columns]]
    out = wide.rename_axis("month").reset_index()
    out.columns.name = None
    out["month"] = out["month"].dt.date
    return out


def exclusions(ds: Dataset) -> pd.DataFrame:
    """Validation findings per table and rule with row counts (no example rows, no PII)."""
    frame = ds.validation.exclusions()
    return frame.sort_values(["table", "rule"], kind="stable").reset_index(drop=True)


def missing_profile(ds: Dataset) -> pd.DataFrame:
    """Share of missing values in the key columns of every table present.

    Returns
    -------
    DataFrame
        Columns ``table, column, rows, missing, share`` (share in [0, 1]).
    """
    rows = []
    for table, cols in KEY_COLUMNS.items():
        present = [c for c in cols if ds.has(table, c)]
        if not present:
            continue
        counts = ", ".join(f"count({quote_ident(c)}) AS {quote_ident(c)}" for c in present)
        res = ds.sql(f"SELECT count(*) AS _n, {counts} FROM {table}")
        n = int(res["_n"].iloc[0])
        for c in present:
            missing = n - int(res[c].iloc[0])
            rows.append({"table": table, "column": c, "rows": n, "missing": missing,
                         "share": missing / n if n else 0.0})
    return pd.DataFrame(rows, columns=["table", "column", "rows", "missing", "share"])


def _months_of_history(ds: Dataset) -> int:
    lo, hi = ds.date_range("transactions", "date")
    if lo is None or hi is None:
        return 0
    lo, hi = _as_date(lo), _as_date(hi)
    return (hi.year - lo.year) * 12 + hi.month - lo.month + 1


def _check(ds: Dataset, analysis: str) -> Support:
    has = ds.has
    if analysis == "satisfaction_loyalty":
        if not has("surveys"):
            return Support(analysis, False, "overview.reasons.no_surveys")
        if not (has("surveys", "customer_id") and has("transactions")):
            return Support(analysis, True, "overview.reasons.attitude_only", partial=True)
        return Support(analysis, True, "overview.reasons.surveys_and_behaviour")
    if analysis == "customer_value":
        if not has("transactions"):
            return Support(analysis, False, "overview.reasons.no_transactions")
        if not has("transactions", "margin"):
            return Support(analysis, True, "overview.reasons.revenue_only", partial=True)
        return Support(analysis, True, "overview.reasons.revenue_and_profit")
    if analysis == "clv":
        if not has("transactions"):
            return Support(analysis, False, "overview.reasons.no_transactions")
        if _months_of_history(ds) < 2:
            return Support(analysis, False, "overview.reasons.short_history")
        return Support(analysis, True, "overview.reasons.history_ok")
    if analysis == "complaints":
        if not has("complaints"):
            return Support(analysis, False, "overview.reasons.no_complaints")
        if not has("transactions"):
            return Support(analysis, True, "overview.reasons.complaints_no_rates", partial=True)
        return Support(analysis, True, "overview.reasons.complaints_and_rates")
    if analysis == "loyalty_programme":
        if not has("members"):
            return Support(analysis, False, "overview.reasons.no_members")
        if not has("points"):
            return Support(analysis, True, "overview.reasons.members_no_points", partial=True)
        return Support(analysis, True, "overview.reasons.members_and_points")
    if analysis == "lifecycle":
        if has("transactions"):
            return Support(analysis, True, "overview.reasons.lifecycle_history")
        if has("customers", "churned_at") or has("customers", "churned"):
            return Support(analysis, True, "overview.reasons.lifecycle_snapshot", partial=True)
        return Support(analysis, False, "overview.reasons.no_transactions")
    if analysis == "segments":
        if not has("customers"):
            return Support(analysis, False, "overview.reasons.no_customers")
        if not has("transactions"):
            return Support(analysis, True, "overview.reasons.segments_traits_only", partial=True)
        return Support(analysis, True, "overview.reasons.segments_traits_and_behaviour")
    if analysis == "crosssell":
        if not has("transactions", "product_category"):
            return Support(analysis, False, "overview.reasons.no_categories")
        return Support(analysis, True, "overview.reasons.categories")
    raise ValueError(f"unknown analysis {analysis!r}; choose from {', '.join(ANALYSES)}")


def supported_analyses(ds: Dataset, lang: str | None = None) -> pd.DataFrame:
    """Which analyses the data supports, which only in part, and which not — with the reason.

    Parameters
    ----------
    ds : Dataset
    lang : str, optional
        Translate ``reason`` into this language (default: the translation key).

    Returns
    -------
    DataFrame
        Columns ``analysis, supported, partial, reason``.
    """
    checks = [_check(ds, a) for a in ANALYSES]
    return pd.DataFrame({
        "analysis": [c.analysis for c in checks],
        "supported": [c.supported for c in checks],
        "partial": [c.partial for c in checks],
        "reason": [t(c.reason, lang) if lang else c.reason for c in checks],
    })


def column_label(column: str, lang: str = "en") -> str:
    """A key column's display name in ``lang`` (the raw name when not translated)."""
    key = f"overview.columns.{column}"
    return t(key, lang) if has_text(key) else column


def volumes_figure(volumes: pd.DataFrame, lang: str = "en") -> go.Figure:
    """Monthly volumes as small multiples (one panel per table; scales differ by orders of magnitude)."""
    from plotly.subplots import make_subplots

    tables = [c for c in volumes.columns if c != "month"]
    n = max(len(tables), 1)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[t(f"overview.series.{tb}", lang) for tb in tables])
    labels = [fmt_month(m, lang) for m in volumes["month"]]
    for i, tb in enumerate(tables, start=1):
        fig.add_trace(go.Bar(x=labels, y=volumes[tb], name=t(f"overview.series.{tb}", lang),
                             marker_color=PALETTE[(i - 1) % len(PALETTE)],
                             hovertemplate="%{x}: %{y:,}<extra></extra>"), row=i, col=1)
        fig.update_yaxes(title_text=t("overview.axis.count", lang), row=i, col=1, rangemode="tozero")
    fig.update_layout(title=t("overview.fig.volumes", lang), showlegend=False,
                      height=160 * n + 120, margin=dict(t=90, b=70))
    fig.update_xaxes(tickangle=-45, row=n, col=1)
    return fig


def missing_figure(profile: pd.DataFrame, lang: str = "en") -> go.Figure:
    """Horizontal bars of the missing share per key column (only columns with gaps)."""
    shown = profile[profile["missing"] > 0].sort_values("share")
    labels = [f"{t(f'core.tables.{tb}', lang)} · {column_label(col, lang)}"
              for tb, col in zip(shown["table"], shown["column"], strict=True)]
    fig = go.Figure(go.Bar(x=shown["share"], y=labels, orientation="h", marker_color=PALETTE[1],
                           text=[f"{v:.0%}" for v in shown["share"]], textposition="outside",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(title=t("overview.fig.missing", lang), xaxis_title=t("overview.axis.missing_share", lang),
                      height=max(260, 28 * len(shown) + 140), showlegend=False, margin=dict(l=220))
    fig.update_xaxes(tickformat=".0%", range=[0, min(1.15, max(0.1, float(shown["share"].max() or 0) * 1.25))]
                     if len(shown) else [0, 1])
    return fig


def period_counts(ds: Dataset, start: dt.date, end: dt.date) -> dict[str, int]:
    """Rows per dated table with the date inside ``[start, end]`` (inclusive)."""
    out = {}
    for table, col in VOLUME_SOURCES.items():
        if ds.has(table, col):
            res = ds.sql(f"SELECT count(*) AS n FROM {table} WHERE CAST({quote_ident(col)} AS DATE) "
                         f"BETWEEN ? AND ?", [start, end])
            out[table] = int(res["n"].iloc[0])
    return out


def customer_count(ds: Dataset) -> int:
    """Distinct customers across the customers and transactions tables.

    Without either (e.g. surveys or complaints only), the distinct ids of the tables that
    carry a ``customer_id``; 0 when no table does.
    """
    core = [tb for tb in ("customers", "transactions") if ds.has(tb, "customer_id")]
    tables = core or [tb for tb in ds.tables if ds.has(tb, "customer_id")]
    parts = [f"SELECT customer_id FROM {tb}" for tb in tables]
    if not parts:
        return 0
    res = ds.sql(f"SELECT count(DISTINCT customer_id) AS n FROM ({' UNION ALL '.join(parts)})")
    return int(res["n"].iloc[0])


# --------------------------------------------------------------------- results (one per notebook section)
def change_text(now: float | None, before: float | None, lang: str = "en") -> str | None:
    """``up 12.0%`` / ``down 3.1%`` / ``unchanged`` (within ±0.5%); None without a previous value."""
    if now is None or not before:
        return None
    rel = (now - before) / before
    if abs(rel) < 0.005:
        return t("overview.change.flat", lang)
    return t("overview.change.up" if rel > 0 else "overview.change.down", lang, pct=fmt_pct(abs(rel), lang))


@dataclass(frozen=True, repr=False)
class TablesOverview(Result):
    """Tables present, rows loaded, filtered and excluded, customers, rows in the period, date ranges."""

    heading: ClassVar[str] = "overview.h.tables"
    frame: pd.DataFrame  # table_overview
    in_period: dict[str, int]
    customers: int
    period: Period
    wave_dates: bool = False

    def findings(self, lang: str = "en") -> list[Finding]:
        return [Finding("customers", coverage_sentence(self.frame, self.customers, self.wave_dates, lang),
                        value=self.customers, headline=True)]

    def tables(self, lang: str = "en") -> list[Table]:
        f = self.frame
        shown = f.assign(
            table=[t(f"core.tables.{x}", lang) + (" " + t("overview.derived", lang) if d else "")
                   for x, d in zip(f["table"], f["derived"], strict=True)],
            in_period=[self.in_period.get(x) for x in f["table"]],
        )[["table", "rows", "filtered", "excluded", "customers", "in_period", "first", "last"]]
        cols = {c: t(f"overview.col.{c}", lang) for c in shown.columns}
        ints = {cols[c]: (lambda v: fmt_int(v, lang)) for c in ("rows", "filtered", "excluded", "customers", "in_period")}
        dates = {cols[c]: (lambda v: fmt_date(v, lang)) for c in ("first", "last")}
        return [Table(shown.rename(columns=cols), formats=ints | dates)]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("overview.findings.in_period_note", lang, period=self.period.display(lang))]

    def kpis(self, lang: str = "en") -> list[KPI]:
        return [KPI("customers", t("overview.kpi.customers", lang), float(self.customers), unit="count",
                    n=self.customers, better="", how=t("overview.how.customers", lang))]

    def metrics(self) -> dict[str, Any]:
        f = self.frame
        return {"tables": list(f["table"]),
                "rows": dict(zip(f["table"], f["rows"], strict=True)),
                "customers": self.customers,
                "customers_per_table": {x: c for x, c in zip(f["table"], f["customers"], strict=True)
                                        if c is not None and c == c},
                "date_ranges": {x: {"first": a, "last": b}
                                for x, a, b in zip(f["table"], f["first"], f["last"], strict=True)}}


def tables(ds: Dataset, period: Period) -> TablesOverview:
    """The tables section: what was loaded, how many customers, and rows dated in ``period``."""
    return TablesOverview(table_overview(ds), period_counts(ds, period.start, period.end), customer_count(ds),
                          period, _wave_dates(ds))


@dataclass(frozen=True, repr=False)
class Volumes(Result):
    """Monthly volumes per table and the report period's counts against the previous period.

    When either period is only partly covered by the data (``covered_days < days``), the
    transactions are compared per covered day, never a partial total with a full one.
    """

    heading: ClassVar[str] = "overview.h.volumes"
    volumes: pd.DataFrame  # monthly_volumes
    in_period: dict[str, int]
    previous_counts: dict[str, int]
    period: Period
    previous: Period
    covered_days: int
    previous_covered_days: int

    @property
    def partial(self) -> bool:
        return self.covered_days < self.period.days or self.previous_covered_days < self.previous.days

    def _per_day(self) -> tuple[float | None, float | None]:
        n_now, n_before = self.in_period.get("transactions"), self.previous_counts.get("transactions", 0)
        return per_day(n_now, self.covered_days), per_day(n_before, self.previous_covered_days)

    def figures(self, lang: str = "en") -> list[Any]:
        return [volumes_figure(self.volumes, lang)] if len(self.volumes) and len(self.volumes.columns) > 1 else []

    def findings(self, lang: str = "en") -> list[Finding]:
        out = []
        period, prev = self.period.display(lang), self.previous.display(lang)
        if "transactions" in self.in_period:
            n_now, n_before = self.in_period["transactions"], self.previous_counts.get("transactions", 0)
            if self.partial:
                rate, prev_rate = self._per_day()
                change = change_text(rate, prev_rate, lang) if rate is not None and prev_rate else None
                text = t("coverage.overview.period_transactions" if change else
                         "coverage.overview.period_transactions_noprev", lang, period=period,
                         n=fmt_int(n_now, lang), covered=self.covered_days, days=self.period.days,
                         rate=fmt_num(rate or 0, lang, 1), change=change, previous=prev,
                         prev_rate=fmt_num(prev_rate or 0, lang, 1))
            else:
                change = change_text(n_now, n_before, lang)
                text = (t("overview.findings.period_transactions", lang, period=period, n=fmt_int(n_now, lang),
                          change=change, previous=prev) if change else
                        t("overview.findings.period_transactions_noprev", lang, period=period, n=fmt_int(n_now, lang)))
            out.append(Finding("period_transactions", text, value=n_now, headline=True))
        if "complaints" in self.in_period:
            n_c, n_t = self.in_period["complaints"], self.in_period.get("transactions")
            if n_t:
                text = t("overview.findings.period_complaints", lang, period=period, n=fmt_int(n_c, lang),
                         per_1000=fmt_num(1000 * n_c / n_t, lang, 1))
            else:
                text = t("overview.findings.period_complaints_count", lang, period=period, n=fmt_int(n_c, lang))
            out.append(Finding("period_complaints", text, value=n_c, headline=True))
        return out

    def notes(self, lang: str = "en") -> list[str]:
        if not len(self.volumes) or len(self.volumes.columns) <= 1:
            return [t("overview.no_volumes", lang)]
        return [t("overview.findings.volumes", lang, months=len(self.volumes))]

    def kpis(self, lang: str = "en") -> list[KPI]:
        if "transactions" not in self.in_period:
            return []
        n_now, n_before = self.in_period["transactions"], self.previous_counts.get("transactions")
        if self.partial:
            rate, prev_rate = self._per_day()
            how = t("overview.how.transactions_partial", lang, covered=self.covered_days, days=self.period.days,
                    rate=fmt_num(rate or 0, lang, 1), prev_rate=fmt_num(prev_rate or 0, lang, 1),
                    previous=self.previous.display(lang))
            previous = None  # a partial total is never compared with a full one
        else:
            how = t("overview.how.transactions", lang, period=self.period.display(lang),
                    previous=self.previous.display(lang))
            previous = float(n_before) if n_before is not None else None
        return [KPI("transactions", t("overview.kpi.transactions", lang), float(n_now), unit="count", n=int(n_now),
                    better="higher", previous=previous, how=how)]

    def metrics(self) -> dict[str, Any]:
        v = self.volumes
        out = {"monthly_volumes": {c: {m.isoformat()[:7]: int(x) for m, x in zip(v["month"], v[c], strict=True)}
                                   for c in v.columns if c != "month"},
               "period_counts": dict(self.in_period), "previous_period_counts": dict(self.previous_counts)}
        if "transactions" in self.in_period and self.partial:
            rate, prev_rate = self._per_day()
            out["period_transactions_per_day"] = {"now": rate, "previous": prev_rate, "days": self.covered_days,
                                                  "previous_days": self.previous_covered_days}
        return out


def volumes(ds: Dataset, period: Period, months: int = 24) -> Volumes:
    """The volumes section: monthly counts for ``months`` months up to the period end, and the period's
    counts against the previous period (with the days the data covers in each)."""
    from workbench.coverage import period_coverage

    prev = period.previous()
    return Volumes(monthly_volumes(ds, end=period.end, months=months), period_counts(ds, period.start, period.end),
                   period_counts(ds, prev.start, prev.end), period, prev,
                   period_coverage(ds, period).days_covered, period_coverage(ds, prev).days_covered)


@dataclass(frozen=True, repr=False)
class Exclusions(Result):
    """Rows the configured filter removed and rows validation excluded, per table and rule."""

    heading: ClassVar[str] = "overview.h.exclusions"
    rules: pd.DataFrame  # exclusions
    removed: pd.DataFrame  # removed_rows

    @property
    def excluded(self) -> int:
        """Every row not loaded (filter and validation)."""
        return int(self.removed["filtered"].sum() + self.removed["excluded"].sum())

    def findings(self, lang: str = "en") -> list[Finding]:
        action = t("overview.action.exclusions", lang) if int(self.removed["excluded"].sum()) else ""
        return [Finding("exclusions", removal_sentence(self.removed, lang), value=self.excluded, headline=True,
                        action=action)]

    def tables(self, lang: str = "en") -> list[Table]:
        e = self.rules
        if not len(e):
            return []
        shown = e.assign(
            table=[t(f"core.tables.{x}", lang) for x in e["table"]],
            rule=[t(f"overview.rules.{r}", lang) for r in e["rule"]],
            column=[column_label(c, lang) if isinstance(c, str) else "–" for c in e["column"]],
            action=[t(f"overview.actions.{a}", lang) if has_text(f"overview.actions.{a}") else a for a in e["action"]],
        )[["table", "rule", "column", "count", "action"]]
        cols = {c: t(f"overview.col.{c}", lang) for c in shown.columns}
        return [Table(shown.rename(columns=cols), formats={cols["count"]: lambda v: fmt_int(v, lang)},
                      appendix=True, caption=t("overview.h.exclusions", lang))]

    def metrics(self) -> dict[str, Any]:
        r = self.removed
        return {"exclusions": self.rules[["table", "rule", "column", "count", "action"]],
                "excluded_rows": self.excluded,
                "filtered_rows": dict(zip(r["table"], r["filtered"], strict=True)),
                "validation_excluded_rows": dict(zip(r["table"], r["excluded"], strict=True))}


def excluded(ds: Dataset) -> Exclusions:
    """The exclusions section: the configured filter and validation, per table, kept apart."""
    return Exclusions(exclusions(ds), removed_rows(ds))


@dataclass(frozen=True, repr=False)
class MissingValues(Result):
    """Share of missing values in the key columns."""

    heading: ClassVar[str] = "overview.h.missing"
    profile: pd.DataFrame  # missing_profile

    def _gaps(self) -> pd.DataFrame:
        return self.profile[self.profile["missing"] > 0]

    def figures(self, lang: str = "en") -> list[Any]:
        return [missing_figure(self.profile, lang)] if len(self._gaps()) else []

    def findings(self, lang: str = "en") -> list[Finding]:
        gaps = self._gaps()
        if not len(gaps):
            return [Finding("missing_worst", t("overview.no_missing", lang), value=0.0)]
        worst = gaps.sort_values("share", ascending=False, kind="stable").iloc[0]
        text = t("overview.findings.missing_worst", lang, column=column_label(worst["column"], lang),
                 table=t(f"core.tables.{worst['table']}", lang), share=fmt_pct(worst["share"], lang))
        return [Finding("missing_worst", text, value=float(worst["share"]), n=int(worst["rows"]))]

    def metrics(self) -> dict[str, Any]:
        return {"missing_profile": self.profile}


def missing(ds: Dataset) -> MissingValues:
    """The missing-values section."""
    return MissingValues(missing_profile(ds))


@dataclass(frozen=True, repr=False)
class SupportedAnalyses(Result):
    """Which analyses the data supports, in part or not, with the reason (the worked example in DEVELOPING.md)."""

    heading: ClassVar[str] = "overview.h.supported"
    table: pd.DataFrame  # analysis, supported, partial, reason (translation keys)

    @property
    def n_full(self) -> int:
        return int((self.table["supported"] & ~self.table["partial"]).sum())

    def findings(self, lang: str = "en") -> list[Finding]:
        k = self.table
        missing_ = [t(f"overview.analyses.{a}", lang) for a in k.loc[~k["supported"], "analysis"]]
        if missing_:
            text = t("overview.findings.supported", lang, n=self.n_full, total=len(k), missing=_join(missing_, lang))
            action = t("overview.action.supported", lang)
        else:
            text, action = t("overview.findings.supported_all", lang, n=self.n_full, total=len(k)), ""
        return [Finding("supported_analyses", text, value=self.n_full, headline=True, action=action)]

    def tables(self, lang: str = "en") -> list[Table]:
        k = self.table
        status = [t("overview.partial", lang) if p else t("overview.yes" if s else "overview.no", lang)
                  for s, p in zip(k["supported"], k["partial"], strict=True)]
        shown = pd.DataFrame({"analysis": [t(f"overview.analyses.{a}", lang) for a in k["analysis"]],
                              "supported": status, "reason": [t(r, lang) for r in k["reason"]]})
        return [Table(shown.rename(columns={c: t(f"overview.col.{c}", lang) for c in shown.columns}))]

    def metrics(self) -> dict[str, Any]:
        return {"supported_analyses": self.table}


def supported(ds: Dataset) -> SupportedAnalyses:
    """The supported-analyses section."""
    return SupportedAnalyses(supported_analyses(ds))
