"""Report periods: parse ``2026-10``, ``2026Q3``, ``2026-01-01:2026-03-31``,
``last-month`` and ``last-quarter``, and derive the previous period of the same
kind for comparisons.

A :class:`Period` is a closed date interval ``[start, end]`` (both inclusive).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from workbench.i18n import check_lang


class PeriodError(ValueError):
    """A period string could not be understood."""


@dataclass(frozen=True)
class Period:
    """A reporting period ``[start, end]`` (inclusive) with its kind and label."""

    start: dt.date
    end: dt.date
    kind: str  # "month" | "quarter" | "range"

    @property
    def label(self) -> str:
        """Stable machine label used in folder names: ``2026-10``, ``2026Q3`` or ``2026-01-01_2026-03-31``."""
        if self.kind == "month":
            return f"{self.start:%Y-%m}"
        if self.kind == "quarter":
            return f"{self.start.year}Q{(self.start.month - 1) // 3 + 1}"
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def end_exclusive(self) -> dt.date:
        """The day after ``end`` — convenient for ``date < end_exclusive`` filters."""
        return self.end + dt.timedelta(days=1)

    def previous(self) -> Period:
        """The period of the same kind immediately before this one."""
        if self.kind == "month":
            return month_period(_add_months(self.start, -1))
        if self.kind == "quarter":
            return quarter_period(_add_months(self.start, -3))
        length = dt.timedelta(days=self.days)
        return Period(self.start - length, self.start - dt.timedelta(days=1), "range")

    def display(self, lang: str = "en") -> str:
        """Human label in the chosen language."""
        check_lang(lang)
        if self.kind == "month":
            return f"{self.start.year}年{self.start.month}月" if lang == "zh" else f"{self.start:%B %Y}"
        if self.kind == "quarter":
            q = (self.start.month - 1) // 3 + 1
            return f"{self.start.year}年第{q}季度" if lang == "zh" else f"Q{q} {self.start.year}"
        if lang == "zh":
            return f"{self.start:%Y年%m月%d日}至{self.end:%Y年%m月%d日}".replace("年0", "年").replace("月0", "月")
        return f"{self.start.isoformat()} to {self.end.isoformat()}"

    def __str__(self) -> str:
        return self.label


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_period(first_day: dt.date) -> Period:
    start = first_day.replace(day=1)
    return Period(start, _add_months(start, 1) - dt.timedelta(days=1), "month")


def quarter_period(any_day: dt.date) -> Period:
    start = dt.date(any_day.year, 3 * ((any_day.month - 1) // 3) + 1, 1)
    return Period(start, _add_months(start, 3) - dt.timedelta(days=1), "quarter")


_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-?[Qq]([1-4])$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*(?::|_|\.\.)\s*(\d{4}-\d{2}-\d{2})$")


def parse_period(text: str | Period, today: dt.date | None = None) -> Period:
    """Parse a period string.

    Parameters
    ----------
    text : str
        ``YYYY-MM``, ``YYYYQn`` / ``YYYY-Qn``, ``YYYY-MM-DD:YYYY-MM-DD``,
        ``last-month`` or ``last-quarter`` (relative to ``today``).
    today : datetime.date, optional
        Reference day for the relative forms; defaults to the system date.
    """
    if isinstance(text, Period):
        return text
    value = str(text).strip()
    today = today or dt.date.today()
    if value == "last-month":
        return month_period(_add_months(today.replace(day=1), -1))
    if value == "last-quarter":
        return quarter_period(_add_months(quarter_period(today).start, -3))
    if m := _MONTH.match(value):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise PeriodError(f"Month out of range in period {value!r}")
        return month_period(dt.date(year, month, 1))
    if m := _QUARTER.match(value):
        return quarter_period(dt.date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1))
    if m := _RANGE.match(value):
        try:
            start, end = dt.date.fromisoformat(m[1]), dt.date.fromisoformat(m[2])
        except ValueError as exc:
            raise PeriodError(f"Invalid date in period {value!r}: {exc}") from None
        if end < start:
            raise PeriodError(f"Period {value!r} ends before it starts")
        return Period(start, end, "range")
    raise PeriodError(
        f"Cannot read period {value!r}: use YYYY-MM, YYYYQn, YYYY-MM-DD:YYYY-MM-DD, "
        "last-month or last-quarter"
    )
