"""What every analysis notebook does first: open the dataset, read the period,
set the language, and start recording metrics.

A notebook's parameters cell (tag ``parameters``) holds at least::

    data = "../data/sample"     # dataset folder or workbench.toml
    period = "last-month"       # 2026-10, 2026Q3, 2026-01-01:2026-03-31, last-month, last-quarter
    lang = "en"                 # en | zh
    seed = 42
    metrics_path = ""           # set by the report pipeline
    analysis_date = ""          # optional: "" = the period end (the last data day if the data ends earlier)

and the next cell calls ``nb = start(data, period, lang, metrics_path, section="...",
analysis_date=analysis_date)``. ``nb.coverage`` says how much of the period the data covers
(:mod:`workbench.coverage`); ``nb.per_day(n)`` normalises a count by the covered days so a
partly covered period compares with a full one; ``nb.analysis_date`` is the day snapshot
analyses (customer value, CLV, loyalty) are taken at, independent of ``--period``.
``nb.t(key)`` translates, ``nb.skip(exc)`` shows a clear "skipped: needs …"
note for a :class:`~workbench.engine.MissingDataError`, and ``nb.save()``
writes the metrics at the end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench import viz
from workbench.coverage import Coverage, per_day, period_coverage
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
    coverage: Coverage | None = None
    previous_coverage: Coverage | None = None
    analysis_date: dt.date | None = None
    sections: list[Any] = field(default_factory=list)
    #: the filter bar's current choice (e.g. {"segment": "gold"}); empty = everyone
    filters: dict[str, Any] = field(default_factory=dict)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.analysis_date is None:
            self.analysis_date = self.coverage.analysis_end if self.coverage else self.period.end

    @property
    def days_covered(self) -> int:
        """Days of the period the data covers (all of them when coverage was not computed)."""
        return self.coverage.days_covered if self.coverage else self.period.days

    def per_day(self, value: float | int | None, previous: bool = False) -> float | None:
        """``value`` per covered day of the period (or of the previous period)."""
        cov = self.previous_coverage if previous else self.coverage
        days = cov.days_covered if cov else (self.previous if previous else self.period).days
        return per_day(value, days)

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
            item.text = f"{item.text} ({self.t('core.evidence.' + item.evidence)})"
        viz.finding(item.text)

    def show(self, result: Any, section: str = "") -> Any:
        """Show an analysis result (:mod:`workbench.results`) and record its metrics, findings and KPIs.

        ``result`` is a :class:`~workbench.results.Result` or a no-argument callable returning one
        (a :class:`~workbench.engine.MissingDataError` it raises becomes a "skipped" section naming
        ``section``). A callable is remembered so the notebook's filter bar can re-run it in place.
        Returns a :class:`~workbench.results.Shown` handle: it displays nothing more, forwards attributes
        to the result, and follows re-runs, so ``effect = nb.show(...)`` can feed a later section.
        """
        from workbench.results import Shown, as_result, render

        shown = as_result(result, section)
        handle = Shown(shown)
        if callable(result) and not isinstance(result, Shown) and not viz.report_mode():
            out = _output_area()
            if out is not None:
                self.sections.append((result, section, out, handle))
                with out:
                    render(shown, self.lang, self.rec)
                return handle
        render(shown, self.lang, self.rec)
        return handle

    def data(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """A no-argument callable returning ``func(nb.ds, *args, **kwargs)``, computed once per filter choice.

        Sections that read it inside ``nb.show(lambda: ...)`` follow the filter bar::

            frame = nb.data(L.respondent_frame, end=nb.analysis_date)
            nb.show(lambda: L.thresholds(frame()))
        """

        def get() -> Any:
            key = (id(func), tuple(sorted(self.filters.items())), args, tuple(sorted(kwargs.items())))
            if key not in self._memo:
                self._memo[key] = func(self.ds, *args, **kwargs)
            return self._memo[key]

        return get

    def rerun(self) -> None:
        """Re-run every section shown from a callable (after a filter change), in place."""
        from workbench.results import as_result, render

        for func, section, out, handle in self.sections:
            handle.result = as_result(func, section)  # later sections fed by this one see the new result
            with out:
                out.clear_output(wait=True)
                render(handle.result, self.lang, self.rec)

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


def _output_area() -> Any:
    """An ipywidgets Output shown now (JupyterLab), or None when ipywidgets is not usable."""
    try:
        import ipywidgets as w
        from IPython.display import display
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        return None
    out = w.Output()
    display(out)
    return out


def _what_zh(exc: MissingDataError) -> str:
    table = t(f"core.tables.{exc.table}", "zh") if exc.table in (
        "customers", "transactions", "surveys", "complaints", "members", "points") else exc.table
    return f"“{table}”表" + (f"中的列 {', '.join(exc.columns)}" if exc.columns else "")


def start(data: str, period: str, lang: str = "en", metrics_path: str = "", section: str = "",
          seed: int = 42, today: dt.date | None = None, analysis_date: str | dt.date | None = "") -> NotebookContext:
    """Open everything a notebook needs; see module docstring.

    ``analysis_date`` (``YYYY-MM-DD``; empty = automatic) is the snapshot day for analyses that
    look back from one date; by default the period end, or the last day the data covers when
    the data ends inside the period (so a mid-month data end shortens the window rather than
    dropping the analysis).
    """
    check_lang(lang)
    viz.set_lang(lang)
    quiet_known_warnings()
    ds = open_dataset(data)
    if today is None and str(period).startswith("last-"):
        # relative periods follow the data: "last month" is the last full month in the data
        today = _data_today(ds)
    p = parse_period(period, today=today)
    rec = Recorder(metrics_path, section, lang)
    cov, prev_cov = period_coverage(ds, p), period_coverage(ds, p.previous())
    nb = NotebookContext(ds=ds, period=p, previous=p.previous(), lang=lang, rec=rec, seed=seed, coverage=cov,
                         previous_coverage=prev_cov, analysis_date=parse_analysis_date(analysis_date))
    rec.metric("coverage", {"status": cov.status, "days": cov.days, "days_covered": cov.days_covered,
                            "previous_days_covered": prev_cov.days_covered,
                            "analysis_date": nb.analysis_date.isoformat()})
    if not viz.report_mode():  # report pages carry the banner from the pipeline
        for line in cov.banner(lang):
            viz.note(line)
    return nb


def parse_analysis_date(value: str | dt.date | None) -> dt.date | None:
    """``YYYY-MM-DD`` → date; empty → None (automatic). A bad value raises ValueError naming the parameter."""
    if value is None or isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"parameter analysis_date must be a date YYYY-MM-DD or empty, got {value!r}") from None


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
