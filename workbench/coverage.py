"""Coverage of a period by the data: what part of the requested period the data actually covers.

Checked before any notebook runs (``workbench reports run``) and by ``workbench alerts``,
with the same function, so both say the same thing about the same window:

* per event table (transactions, complaints, surveys, points) the first and last date, the
  rows in the period and the days of the period the table covers;
* the dataset's coverage of the period: ``none`` (the period lies outside the data — the
  report pack exits 3 and publishes nothing), ``partial`` (a banner on every page and on the
  index: "Data ends 19 March 2026: March 2026 covers 19 of 31 days"; comparisons per day
  with :func:`per_day`), or ``full``;
* publication lag: a sudden fall in volume in the last two weeks of the period's data against
  the eight weeks before (a one-sided Poisson test), checked when those two weeks lie within
  eight weeks of the table's last row, is flagged "data may be incomplete".

Quiet days are not a data end: a table whose last row is a little before the period end
still covers the period when that many empty days are plausible at its recent daily rate
(probability of no row at least :data:`QUIET_ALPHA`), so a small dataset with no complaint
on 31 March does not get a banner. A period inside a table's span with no row where its
average rate makes that implausible is a hole (not covered). Tables with dates on only a few
days (survey waves) cover a period when one of their waves falls in it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.i18n import fmt_int, fmt_num, t
from workbench.periods import Period

#: event tables and their date column, in the order the banner names them
EVENT_TABLES: tuple[tuple[str, str], ...] = (
    ("transactions", "date"), ("complaints", "opened_at"), ("surveys", "date"), ("points", "date"),
)
#: a gap at the end (or start) of a table is a data end when no row in it is this improbable
QUIET_ALPHA = 0.001
#: days used to estimate a table's daily rate next to its first/last date
RATE_DAYS = 56
#: fewer distinct dates than this: the table holds waves (e.g. surveys), not a continuous feed
MIN_CONTINUOUS_DAYS = 8
#: publication lag: the last LAG_RECENT_DAYS against the LAG_TRAILING_DAYS before them
LAG_RECENT_DAYS = 14
LAG_TRAILING_DAYS = 56
LAG_ALPHA = 0.001
LAG_RATIO = 0.5
#: the lag test needs this many rows expected in the recent window to have any power
LAG_MIN_EXPECTED = 10.0


class NoDataInPeriod(Exception):  # noqa: N818 - a condition, not a programming error
    """The requested period lies outside the data (the CLI exits 3; nothing is published)."""

    def __init__(self, coverage: Coverage):
        self.coverage = coverage
        super().__init__(coverage.message("en"))


class EmptyDataset(NoDataInPeriod):
    """Every table of the dataset is empty (header-only exports): no period has data (exit 3)."""

    def __init__(self, message: str):  # noqa: D107 - no Coverage to describe: nothing was loaded
        self.coverage = None
        Exception.__init__(self, message)


# ------------------------------------------------------------------ plain helpers
def days_covered(period: Period, data_end: dt.date | None, data_start: dt.date | None = None) -> int:
    """Days of ``period`` (inclusive) between ``data_start`` and ``data_end``; 0 when they do not overlap.

    Examples
    --------
    >>> from workbench.periods import parse_period
    >>> days_covered(parse_period("2026-03"), dt.date(2026, 3, 19))
    19
    """
    if data_end is None:
        return 0
    lo = max(period.start, data_start) if data_start else period.start
    hi = min(period.end, data_end)
    return max(0, (hi - lo).days + 1)


def per_day(value: float | int | None, days: int | None) -> float | None:
    """``value`` per covered day (None when no day is covered) — compare periods of unequal coverage."""
    if value is None or not days:
        return None
    return float(value) / days


def poisson_fall(recent: int, trailing: int, recent_days: int = LAG_RECENT_DAYS,
                 trailing_days: int = LAG_TRAILING_DAYS) -> tuple[float, float]:
    """Rate ratio (recent / trailing, per day) and one-sided p-value that the recent rate is lower.

    Conditional test of two Poisson counts: given ``n = recent + trailing``, ``recent`` is
    Binomial(n, recent_days / (recent_days + trailing_days)) under equal daily rates.
    """
    from scipy.special import bdtr  # binomial CDF; lighter to import than scipy.stats

    n = recent + trailing
    if n == 0 or trailing == 0:
        return (math.nan, 1.0)
    ratio = (recent / recent_days) / (trailing / trailing_days)
    p = float(bdtr(recent, n, recent_days / (recent_days + trailing_days)))
    return ratio, p


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class LagCheck:
    """Publication-lag test of one table: the last two weeks against the eight before."""

    table: str
    recent_start: dt.date
    recent_end: dt.date
    recent_per_day: float
    trailing_per_day: float
    ratio: float
    p_value: float  # NaN when not tested (the recent rate is not under LAG_RATIO of the trailing one)
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "recent_start": self.recent_start.isoformat(),
                "recent_end": self.recent_end.isoformat(), "recent_per_day": round(self.recent_per_day, 4),
                "trailing_per_day": round(self.trailing_per_day, 4),
                "ratio": None if math.isnan(self.ratio) else round(self.ratio, 4),
                "p_value": None if math.isnan(self.p_value) else self.p_value, "flagged": self.flagged}


@dataclass(frozen=True)
class TableCoverage:
    """One event table's dates and its coverage of the period."""

    table: str
    column: str
    first: dt.date | None
    last: dt.date | None
    rows_in_period: int
    distinct_days: int
    covered_from: dt.date | None  # the part of the period this table covers (None: none)
    covered_to: dt.date | None
    continuous: bool = True

    @property
    def days_covered(self) -> int:
        if self.covered_from is None or self.covered_to is None:
            return 0
        return (self.covered_to - self.covered_from).days + 1

    def to_dict(self) -> dict[str, Any]:
        iso = _iso
        return {"table": self.table, "column": self.column, "first": iso(self.first), "last": iso(self.last),
                "rows_in_period": self.rows_in_period, "distinct_days": self.distinct_days,
                "covered_from": iso(self.covered_from), "covered_to": iso(self.covered_to),
                "days_covered": self.days_covered, "continuous": self.continuous}


@dataclass(frozen=True)
class Coverage:
    """The dataset's coverage of a period (see module docstring)."""

    period: Period
    tables: tuple[TableCoverage, ...]
    lag: tuple[LagCheck, ...] = field(default=())

    @property
    def covered_from(self) -> dt.date | None:
        days = [tc.covered_from for tc in self.tables if tc.covered_from]
        return min(days) if days else None

    @property
    def covered_to(self) -> dt.date | None:
        days = [tc.covered_to for tc in self.tables if tc.covered_to]
        return max(days) if days else None

    @property
    def data_start(self) -> dt.date | None:
        days = [tc.first for tc in self.tables if tc.first]
        return min(days) if days else None

    @property
    def data_end(self) -> dt.date | None:
        days = [tc.last for tc in self.tables if tc.last]
        return max(days) if days else None

    @property
    def days(self) -> int:
        return self.period.days

    @property
    def days_covered(self) -> int:
        lo, hi = self.covered_from, self.covered_to
        return 0 if lo is None or hi is None else (hi - lo).days + 1

    @property
    def status(self) -> str:
        """``none`` (no data in the period), ``partial`` or ``full``."""
        if not self.days_covered:
            return "none"
        return "full" if self.days_covered >= self.days else "partial"

    @property
    def lag_flagged(self) -> tuple[LagCheck, ...]:
        return tuple(c for c in self.lag if c.flagged)

    @property
    def analysis_end(self) -> dt.date:
        """The last day analyses should use: the period end, or the last covered day when the data ends earlier."""
        if self.status == "partial" and self.covered_to is not None:
            return min(self.period.end, self.covered_to)
        return self.period.end

    def table(self, name: str) -> TableCoverage | None:
        return next((tc for tc in self.tables if tc.table == name), None)

    def per_day(self, value: float | int | None) -> float | None:
        """``value`` per day of the period the data covers."""
        return per_day(value, self.days_covered)

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period.label, "period_start": self.period.start.isoformat(),
                "period_end": self.period.end.isoformat(), "period_kind": self.period.kind,
                "status": self.status, "days": self.days, "days_covered": self.days_covered,
                "covered_from": _iso(self.covered_from), "covered_to": _iso(self.covered_to),
                "data_start": _iso(self.data_start), "data_end": _iso(self.data_end),
                "tables": {tc.table: tc.to_dict() for tc in self.tables},
                "lag": [c.to_dict() for c in self.lag], "incomplete": bool(self.lag_flagged)}

    def banner(self, lang: str = "en") -> list[str]:
        """Banner lines for report pages (empty when the period is fully covered and nothing lags)."""
        return banner_lines(self.to_dict(), lang)

    def message(self, lang: str = "en") -> str:
        """One line for the command line."""
        return " ".join(banner_lines(self.to_dict(), lang)) or t("coverage.full", lang,
                                                                  period=self.period.display(lang))


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


# ------------------------------------------------------------------ computing it
def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        try:
            value = value.to_pydatetime()
        except (ValueError, TypeError):
            return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _quiet_plausible(rate_per_day: float, gap_days: int) -> bool:
    """True when ``gap_days`` without a row are plausible at ``rate_per_day`` (P(0 rows) ≥ QUIET_ALPHA)."""
    if gap_days <= 0:
        return True
    return math.exp(-rate_per_day * gap_days) >= QUIET_ALPHA


@dataclass(frozen=True)
class _Stats:
    table: str
    column: str
    first: dt.date | None
    last: dt.date | None
    distinct: int
    n_in: int
    head_rate: float
    tail_rate: float
    lag: LagCheck | None
    rate: float = 0.0  # rows per day over the table's whole span


def _table_stats(ds: Any, table: str, column: str, period: Period) -> _Stats | None:
    """First/last date, rows in the period, daily rates at both ends and the lag test of one table."""
    if not ds.has(table, column):
        return None
    c = f'CAST("{column}" AS DATE)'
    row = ds.sql(f"SELECT min({c}) AS first, max({c}) AS last, count(DISTINCT {c}) AS days, count(*) AS total, "
                 f"count(*) FILTER (WHERE {c} BETWEEN ? AND ?) AS n FROM {table} WHERE {c} IS NOT NULL",
                 [period.start, period.end]).iloc[0]
    first, last = _as_date(row["first"]), _as_date(row["last"])
    if first is None or last is None:
        return _Stats(table, column, None, None, 0, 0, 0.0, 0.0, None)
    # lag: the last two weeks of the period's data (up to the table's last row) against the eight
    # weeks before; only near the end of the table, where publication lag lives
    anchor = min(period.end, last)
    recent_start = anchor - dt.timedelta(days=LAG_RECENT_DAYS - 1)
    trailing_start = recent_start - dt.timedelta(days=LAG_TRAILING_DAYS)
    counts = ds.sql(
        f"SELECT count(*) FILTER (WHERE {c} <= ?) AS head, count(*) FILTER (WHERE {c} >= ?) AS tail, "
        f"count(*) FILTER (WHERE {c} >= ? AND {c} <= ?) AS recent, "
        f"count(*) FILTER (WHERE {c} >= ? AND {c} < ?) AS trailing FROM {table} WHERE {c} IS NOT NULL",
        [first + dt.timedelta(days=RATE_DAYS - 1), last - dt.timedelta(days=RATE_DAYS - 1), recent_start, anchor,
         trailing_start, recent_start]).iloc[0]
    span = min(RATE_DAYS, (last - first).days + 1)
    lag = None
    if first <= trailing_start and (last - anchor).days <= LAG_TRAILING_DAYS:
        recent, trailing = int(counts["recent"]), int(counts["trailing"])
        ratio = (recent / LAG_RECENT_DAYS) / (trailing / LAG_TRAILING_DAYS) if trailing else math.nan
        # only a fall to under LAG_RATIO can be flagged: test (and import scipy) only then
        p = poisson_fall(recent, trailing)[1] if ratio < LAG_RATIO else math.nan
        expected = trailing * LAG_RECENT_DAYS / LAG_TRAILING_DAYS
        flagged = expected >= LAG_MIN_EXPECTED and p < LAG_ALPHA and ratio < LAG_RATIO
        lag = LagCheck(table, recent_start, anchor, recent / LAG_RECENT_DAYS, trailing / LAG_TRAILING_DAYS,
                       ratio, p, bool(flagged))
    return _Stats(table, column, first, last, int(row["days"]), int(row["n"]), int(counts["head"]) / span,
                  int(counts["tail"]) / span, lag, int(row["total"]) / ((last - first).days + 1))


def _covered(s: _Stats, period: Period, data_start: dt.date, data_end: dt.date) -> TableCoverage:
    """The part of ``period`` one table covers.

    A continuous table covers from its first to its last row; empty days after its last row
    (before its first) count as covered when they are plausibly quiet at its daily rate and
    the dataset as a whole goes on (other tables have rows then). A table of waves covers
    the period when a wave falls in it.
    """
    if s.first is None or s.last is None:
        return TableCoverage(s.table, s.column, None, None, 0, 0, None, None)
    if s.distinct < MIN_CONTINUOUS_DAYS:
        lo, hi = (period.start, period.end) if s.n_in else (None, None)
        return TableCoverage(s.table, s.column, s.first, s.last, s.n_in, s.distinct, lo, hi, continuous=False)
    end = s.last
    limit = min(period.end, data_end)
    if end < limit and _quiet_plausible(s.tail_rate, (limit - end).days):
        end = limit
    start = s.first
    floor = max(period.start, data_start)
    if start > floor and _quiet_plausible(s.head_rate, (start - floor).days):
        start = floor
    lo, hi = max(start, period.start), min(end, period.end)
    if lo > hi or (s.n_in == 0 and not _quiet_plausible(s.rate, (hi - lo).days + 1)):
        lo = hi = None  # outside the table, or a hole inside it (no row where many were expected)
    return TableCoverage(s.table, s.column, s.first, s.last, s.n_in, s.distinct, lo, hi)


def period_coverage(ds: Any, period: Period, tables: Sequence[str] | None = None) -> Coverage:
    """The dataset's coverage of ``period`` (see module docstring).

    Parameters
    ----------
    ds : Dataset
        An open dataset.
    period : Period
        The report period (or the window ``workbench alerts`` checks).
    tables : sequence of str, optional
        Event tables whose coverage is reported (default: every one of :data:`EVENT_TABLES`
        present). The dataset's first and last dates always come from all event tables.

    Returns
    -------
    Coverage
        Per-table first/last dates and covered days; lag checks whose recent window touches the period.
    """
    stats = [s for name, column in EVENT_TABLES if (s := _table_stats(ds, name, column, period)) is not None]
    firsts = [s.first for s in stats if s.first]
    lasts = [s.last for s in stats if s.last]
    found: list[TableCoverage] = []
    lags: list[LagCheck] = []
    for s in stats:
        if tables is not None and s.table not in tables:
            continue
        found.append(_covered(s, period, min(firsts), max(lasts)) if lasts else
                     TableCoverage(s.table, s.column, None, None, 0, 0, None, None))
        # a lag at the end of the data matters only when its last weeks touch the period
        if s.lag is not None and s.lag.recent_start <= period.end and s.lag.recent_end >= period.start:
            lags.append(s.lag)
    return Coverage(period, tuple(found), tuple(lags))


def check_dataset(data: Any, period: Period, tables: Sequence[str] | None = None) -> Coverage:
    """Open ``data`` (a path or an open Dataset) and compute :func:`period_coverage`."""
    from workbench.engine import Dataset, open_dataset

    ds = data if isinstance(data, Dataset) else open_dataset(data)
    try:
        return period_coverage(ds, period, tables=tables)
    finally:
        if not isinstance(data, Dataset):
            ds.close()


@dataclass(frozen=True)
class AlertsCoverage:
    """What ``workbench alerts`` says about its window: the coverage, its status and the printed lines."""

    coverage: Coverage
    lines: list[str]

    @property
    def status(self) -> str:
        return self.coverage.status


def alerts_window(ds: Any, since: str | dt.date | None, today: dt.date | None = None) -> Period:
    """The window ``workbench alerts`` checks: ``since`` (default: the last 28 days of complaints) to yesterday."""
    ds.require("complaints", "opened_at")
    last = _as_date(ds.date_range("complaints", "opened_at")[1])
    if last is None:
        raise ValueError("the complaints table is empty")
    # to yesterday (a morning check of last night's export), or the last complaint if that is later
    end = max((today or dt.date.today()) - dt.timedelta(days=1), last)
    if since is None or since == "":
        start = last - dt.timedelta(days=27)
    elif isinstance(since, dt.date):
        start = since
    else:
        try:
            start = dt.date.fromisoformat(str(since))
        except ValueError:
            raise ValueError(f"--since must be a date YYYY-MM-DD, got {since!r}") from None
    if start > end:
        raise ValueError(f"--since {start} is in the future: the check covers --since to yesterday ({end})")
    return Period(start, end, "range")


def alerts_coverage(ds: Any, since: str | dt.date | None, lang: str = "en", today: dt.date | None = None
                    ) -> AlertsCoverage:
    """Coverage of the alerts window by the complaints table, with the lines ``workbench alerts`` prints."""
    window = alerts_window(ds, since, today)
    cov = period_coverage(ds, window, tables=("complaints",))
    d = cov.to_dict()
    if cov.status == "none":
        tc = cov.table("complaints")
        lines = [t("coverage.no_data_window", lang, since=fmt_day(window.start, lang), until=fmt_day(window.end, lang),
                   start=fmt_day(tc.first if tc else None, lang), end=fmt_day(tc.last if tc else None, lang))]
    else:
        skip = t("coverage.per_day", lang)
        lines = [t("coverage.window", lang, text=line) for line in banner_lines(d, lang) if line != skip]
    return AlertsCoverage(cov, lines)


# ------------------------------------------------------------------ text
def fmt_day(value: dt.date | str | None, lang: str = "en") -> str:
    """``19 March 2026`` (en) or ``2026年3月19日`` (zh)."""
    if value is None:
        return "–"
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    if lang == "zh":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {value:%B %Y}"


def _period_display(cov: Mapping[str, Any], lang: str) -> str:
    start, end = dt.date.fromisoformat(cov["period_start"]), dt.date.fromisoformat(cov["period_end"])
    return Period(start, end, cov.get("period_kind", "range")).display(lang)


def _span_text(lo: str | None, hi: str | None, p_start: str, p_end: str, lang: str, key: str, **extra: Any) -> str:
    """'Data ends …' / 'Data starts …' / 'Data covers … to …' for a covered range inside the period."""
    if hi and hi < p_end and (not lo or lo <= p_start):
        return t(f"{key}.ends", lang, end=fmt_day(hi, lang), **extra)
    if lo and lo > p_start and (not hi or hi >= p_end):
        return t(f"{key}.starts", lang, start=fmt_day(lo, lang), **extra)
    return t(f"{key}.between", lang, start=fmt_day(lo, lang), end=fmt_day(hi, lang), **extra)


def banner_lines(cov: Mapping[str, Any], lang: str = "en") -> list[str]:
    """Banner lines from a coverage dict (:meth:`Coverage.to_dict`, also as stored in metrics.json)."""
    if not cov or "period_start" not in cov:
        return []
    lines: list[str] = []
    period = _period_display(cov, lang)
    p_start, p_end = cov["period_start"], cov["period_end"]
    status = cov.get("status")
    if status == "none":
        lines.append(t("coverage.none", lang, period=period, start=fmt_day(cov.get("data_start"), lang),
                       end=fmt_day(cov.get("data_end"), lang)))
    elif status == "partial":
        lines.append(_span_text(cov.get("covered_from"), cov.get("covered_to"), p_start, p_end, lang,
                                "coverage.data", period=period, n=fmt_int(cov["days_covered"], lang),
                                days=fmt_int(cov["days"], lang)))
        lines.append(t("coverage.per_day", lang))
    if status != "none":
        lo_all, hi_all = cov.get("covered_from"), cov.get("covered_to")
        for name, tc in cov.get("tables", {}).items():
            if not tc.get("continuous", True) or tc.get("days_covered", 0) >= cov["days"]:
                continue
            if (tc.get("covered_from"), tc.get("covered_to")) == (lo_all, hi_all):
                continue  # said by the dataset line
            table = t(f"core.tables.{name}", lang)
            if not tc.get("days_covered"):
                lines.append(t("coverage.table_none", lang, table=table, period=period,
                               end=fmt_day(tc.get("last"), lang)))
                continue
            lines.append(_span_text(tc.get("covered_from"), tc.get("covered_to"), p_start, p_end, lang,
                                    "coverage.table", table=table, n=fmt_int(tc["days_covered"], lang),
                                    days=fmt_int(cov["days"], lang)))
    for lag in cov.get("lag", []):
        if lag.get("flagged"):
            lines.append(t("coverage.lag", lang, table=t(f"core.tables.{lag['table']}", lang),
                           start=fmt_day(lag["recent_start"], lang), end=fmt_day(lag["recent_end"], lang),
                           recent=fmt_num(lag["recent_per_day"], lang, 1),
                           trailing=fmt_num(lag["trailing_per_day"], lang, 1),
                           weeks=LAG_TRAILING_DAYS // 7))
    return lines


def change_per_day(now: float, now_days: int, before: float, before_days: int) -> float | None:
    """Relative change of the per-day rate (``now/now_days`` vs ``before/before_days``); None if not comparable."""
    a, b = per_day(now, now_days), per_day(before, before_days)
    if a is None or not b:
        return None
    return a / b - 1
