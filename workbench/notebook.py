"""What every analysis notebook does first: open the dataset, read the period,
set the language, and start recording metrics.

A notebook's parameters cell (tag ``parameters``) holds at least::

    data = "../data/sample"     # dataset folder or workbench.toml
    period = "last-month"       # 2026-10, 2026Q3, 2026-01-01:2026-03-31, last-month, last-quarter
    lang = "en"                 # en | zh
    seed = 42
    metrics_path = ""           # set by the report pipeline

and the next cell calls ``nb = start(data, period, lang, metrics_path, section="...")``.
``nb.t(key)`` translates, ``nb.skip(exc)`` shows a clear "skipped: needs …"
note for a :class:`~workbench.engine.MissingDataError`, and ``nb.save()``
writes the metrics at the end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench import viz
from workbench.engine import Dataset, MissingDataError, open_dataset
from workbench.i18n import check_lang, t
from workbench.metrics import Recorder
from workbench.periods import Period, parse_period


@dataclass
class NotebookContext:
    """The dataset, period, language and metrics recorder of one notebook run."""

    ds: Dataset
    period: Period
    previous: Period
    lang: str
    rec: Recorder
    seed: int = 42

    def t(self, key: str, **values: Any) -> str:
        return t(key, self.lang, **values)

    def heading(self, key: str, **values: Any) -> None:
        viz.heading(self.t(key, **values))

    def skip(self, exc: MissingDataError, analysis_key: str | None = None) -> None:
        """Show and record that an analysis was skipped, naming what is missing."""
        what = exc.what if self.lang == "en" else _what_zh(exc)
        text = self.t("core.skipped", what=what)
        if analysis_key:
            text = f"{self.t(analysis_key)} — {text}"
        viz.note(text)
        self.rec.note(text)

    def say(self, key: str, text: str, value: Any = None, headline: bool = False, *,
            interval: tuple[float, float] | None = None, null: float | None = None, n: int | None = None,
            value_range: tuple[float, float] | None = None) -> None:
        """Record a plain-language finding for the report and show it under the chart.

        ``interval``/``null``/``n`` are its evidence: a headline whose interval includes ``null``,
        is not finite, or rests on too few cases is kept as body text marked "not enough evidence".
        """
        item = self.rec.finding(key, text, value=value, headline=headline, interval=interval, null=null,
                                n=n, value_range=value_range)
        if item.evidence and item.evidence != "ok":
            text = f"{text} ({self.t('core.evidence.' + item.evidence)})"
            item.text = text
        viz.finding(text)

    def say_all(self, findings: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`say` each ``{key, text, value, headline}`` of an analysis module's ``findings``."""
        for f in findings:
            self.say(f["key"], f["text"], f.get("value"), bool(f.get("headline", False)))

    def note(self, text: str) -> None:
        """Record a caveat for the report and show it."""
        self.rec.note(text)
        viz.note(text)

    def save(self) -> None:
        self.rec.save()


def _what_zh(exc: MissingDataError) -> str:
    table = t(f"core.tables.{exc.table}", "zh") if exc.table in (
        "customers", "transactions", "surveys", "complaints", "members", "points") else exc.table
    return f"“{table}”表" + (f"中的列 {', '.join(exc.columns)}" if exc.columns else "")


def start(data: str, period: str, lang: str = "en", metrics_path: str = "", section: str = "",
          seed: int = 42, today: dt.date | None = None) -> NotebookContext:
    """Open everything a notebook needs; see module docstring."""
    check_lang(lang)
    viz.set_lang(lang)
    quiet_known_warnings()
    ds = open_dataset(data)
    if today is None and str(period).startswith("last-"):
        # relative periods follow the data: "last month" is the last full month in the data
        today = _data_today(ds)
    p = parse_period(period, today=today)
    rec = Recorder(metrics_path, section, lang)
    return NotebookContext(ds=ds, period=p, previous=p.previous(), lang=lang, rec=rec, seed=seed)


def quiet_known_warnings() -> None:
    """Hide third-party deprecation noise that analysts cannot act on (ibis on duckdb, pandas 4 notice)."""
    import warnings

    warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated")
    warnings.filterwarnings("ignore", message="The 'future.infer_string' option is deprecated")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="jieba")


def _data_today(ds: Dataset) -> dt.date | None:
    """The day after the latest transaction/complaint/survey date, so last-month means the last month of data."""
    ends = []
    for table, col in (("transactions", "date"), ("complaints", "opened_at"), ("surveys", "date")):
        if ds.has(table, col):
            hi = ds.date_range(table, col)[1]
            if hi is not None:
                ends.append(hi.date() if isinstance(hi, dt.datetime) else hi)
    if not ends:
        return None
    last = max(ends)
    # the first day of the month after the last data month
    return (last.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
