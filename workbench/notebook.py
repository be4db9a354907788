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

**One dataset for every notebook.** In JupyterLab (not in report runs) a ``data`` parameter that
is empty or the default sample path (``"../data/sample"``) is replaced by, in this order, the
``WORKBENCH_DATA`` environment variable, or ``data`` in the user settings file
``~/.config/loyalty-workbench/notebooks.toml`` (``$XDG_CONFIG_HOME`` is honoured; the picker's
"Use in all notebooks" button writes it). ``period`` likewise: a default ``"last-month"`` gives way
to ``WORKBENCH_PERIOD`` or the file's ``period``. Anything else in the parameter — and everything
in a report run, where papermill passes ``data`` and ``period`` — wins (:func:`choose`).

**Filter bar.** ``nb.filter_bar()`` (once, after ``start``; nothing in report runs) shows the
dataset, a period menu and one menu per customer segment column (segment, region, channel, …).
A change sets ``nb.filters`` / ``nb.period``, makes ``nb.ds`` a customer-filtered view
(:meth:`workbench.engine.Dataset.restrict`) and re-runs every section shown from a callable
(``nb.show(lambda: ...)``) in place (:meth:`NotebookContext.rerun`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import viz
from workbench.coverage import Coverage, per_day, period_coverage
from workbench.engine import Dataset, MissingDataError, open_dataset
from workbench.i18n import check_lang, t
from workbench.metrics import Recorder
from workbench.periods import Period, parse_period

DEFAULT_DATA = "../data/sample"
DEFAULT_PERIOD = "last-month"
DATA_ENV_VAR = "WORKBENCH_DATA"
PERIOD_ENV_VAR = "WORKBENCH_PERIOD"
_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@dataclass(frozen=True)
class Choice:
    """A notebook setting and where it came from: ``parameter``, ``env``, ``settings`` or ``default``."""

    value: str
    source: str
    origin: str = ""  # the settings file, for source "settings"


def settings_path() -> Path:
    """The user's notebook settings file: ``$XDG_CONFIG_HOME/loyalty-workbench/notebooks.toml``
    (``~/.config/...`` when ``XDG_CONFIG_HOME`` is not set)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "loyalty-workbench" / "notebooks.toml"


def read_settings(path: Path | None = None) -> dict[str, str]:
    """``data`` and ``period`` from the settings file (``{}`` when there is none).

    A relative ``data`` is taken from the file's folder. A file that is not TOML, or holds other
    keys or non-text values, raises ValueError naming the file and the key.
    """
    path = path or settings_path()
    if not path.is_file():
        return {}
    try:
        got = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid TOML file ({exc}); expected e.g. data = \"/path/to/workbench.toml\"") \
            from None
    unknown = sorted(set(got) - {"data", "period"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; only data and period are read")
    out = {}
    for key in ("data", "period"):
        if key in got:
            if not isinstance(got[key], str):
                raise ValueError(f"{path}: {key} must be text, got {got[key]!r}")
            out[key] = got[key]
    if out.get("data") and not Path(out["data"]).expanduser().is_absolute():
        out["data"] = str((path.parent / Path(out["data"])).resolve())
    return out


def remember(data: str | None = None, period: str | None = None, path: Path | None = None) -> Path:
    """Write ``data`` / ``period`` to the settings file so every notebook opened later uses them."""
    path = path or settings_path()
    current = read_settings(path) if path.is_file() else {}
    if data is not None:
        current["data"] = str(Path(data).expanduser().resolve())
    if period is not None:
        current["period"] = str(period)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Loyalty Workbench: the dataset and period notebooks open with (see README, Notebooks)"]
    lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in current.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _is_default_data(data: str) -> bool:
    text = str(data or "").strip()
    if not text:
        return True
    if text.rstrip("/\\") in (DEFAULT_DATA, "data/sample"):
        return True
    try:
        return Path(text).resolve() == _SAMPLE.resolve()
    except OSError:  # pragma: no cover - unresolvable path
        return False


def choose(data: str, period: str) -> tuple[Choice, Choice]:
    """The dataset and period a notebook opens (see the module docstring for the order).

    Report runs (``WORKBENCH_REPORT=1``) always use the parameters as given.
    """
    if viz.report_mode():
        return Choice(str(data), "parameter"), Choice(str(period), "parameter")
    file = settings_path()
    settings: dict[str, str] | None = None

    def pick(value: str, is_default: bool, env: str, key: str, default: str) -> Choice:
        nonlocal settings
        if not is_default:
            return Choice(str(value), "parameter")
        if os.environ.get(env, "").strip():
            return Choice(os.environ[env].strip(), "env")
        if settings is None:
            settings = read_settings(file)  # only read (and complained about) when it is needed
        if settings.get(key):
            return Choice(settings[key], "settings", str(file))
        return Choice(str(value).strip() or default, "default")

    return (pick(data, _is_default_data(data), DATA_ENV_VAR, "data", DEFAULT_DATA),
            pick(period, str(period or "").strip() in ("", DEFAULT_PERIOD), PERIOD_ENV_VAR, "period", DEFAULT_PERIOD))


@dataclass
class _Section:
    """A section shown from a callable: re-run in its output area when the filters change."""

    func: Callable[[], Any]
    section: str
    out: Any
    ids: str
    result: Any = None
    handle: Any = None


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
    #: customer ids in shown tables and CSV exports: "pseudonymised" (default) or "raw" (opt-in)
    export_ids: str = "pseudonymised"
    #: where the dataset and period came from (:func:`choose`)
    data_choice: Choice | None = None
    period_choice: Choice | None = None
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    _base: Any = field(default=None, repr=False)
    _views: dict[Any, Any] = field(default_factory=dict, repr=False)
    _fixed_sections: int = field(default=0, repr=False)
    _analysis_param: dt.date | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._analysis_param = self.analysis_date
        if self.analysis_date is None:
            self.analysis_date = self.coverage.analysis_end if self.coverage else self.period.end
        if self.export_ids not in viz.EXPORT_IDS:
            raise ValueError(f"parameter export_ids must be one of {', '.join(viz.EXPORT_IDS)}, "
                             f"got {self.export_ids!r}")
        if self._base is None:
            self._base = self.ds
        if self.filters:
            self.set_filters(**self.filters)

    @property
    def base(self) -> Dataset:
        """The whole dataset (``nb.ds`` is a customer-filtered view of it while a filter is set)."""
        return self._base

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

    def show(self, result: Any, section: str = "", identify: bool | None = None) -> Any:
        """Show an analysis result (:mod:`workbench.results`) and record its metrics, findings and KPIs.

        ``result`` is a :class:`~workbench.results.Result` or a no-argument callable returning one
        (a :class:`~workbench.engine.MissingDataError` it raises becomes a "skipped" section naming
        ``section``). A callable is remembered so the notebook's filter bar can re-run it in place.
        Customer lists show and export pseudonymised ids unless ``identify=True`` (or the
        notebook's ``export_ids = "raw"``); report runs never show raw ids. Returns a
        :class:`~workbench.results.Shown` handle: it displays nothing more, forwards attributes to the
        result, and follows re-runs, so ``effect = nb.show(...)`` can feed a later section.
        """
        from workbench.results import Shown, as_result, render

        ids = self._ids(identify)
        shown = as_result(result, section)
        handle = Shown(shown)
        if callable(result) and not isinstance(result, Shown) and not viz.report_mode():
            out = _output_area()
            if out is not None:
                self.sections.append(_Section(result, section, out, ids, shown, handle))
                _render_into(out, shown, self.lang, self.rec, ids)
                return handle
        if not viz.report_mode():
            self._fixed_sections += 1
        render(shown, self.lang, self.rec, ids=ids)
        return handle

    def _ids(self, identify: bool | None) -> str:
        if identify is None:
            return self.export_ids
        return "raw" if identify else "pseudonymised"

    def data(self, func: Any, *args: Any, **kwargs: Any) -> Callable[[], Any]:
        """A no-argument callable returning ``func(nb.ds, *args, **kwargs)``, computed once per filter choice.

        Sections that read it inside ``nb.show(lambda: ...)`` follow the filter bar::

            frame = nb.data(L.respondent_frame, end=nb.analysis_date)
            nb.show(lambda: L.thresholds(frame()))

        Arguments may be unhashable (lists, dicts, frames). An argument that is ``nb.period``,
        ``nb.previous`` or ``nb.analysis_date`` (or the period's start, end or end_exclusive) when
        ``nb.data`` is called follows the period menu: after a period change the current value is
        passed instead.
        """
        made = self._period_values()

        def get() -> Any:
            now = self._period_values()
            a = tuple(_follow(v, made, now) for v in args)
            kw = {k: _follow(v, made, now) for k, v in kwargs.items()}
            key = (func, _freeze(self.filters), self.period.label, self.analysis_date, _freeze(a), _freeze(kw))
            if key not in self._memo:
                self._memo[key] = func(self.ds, *a, **kw)
            return self._memo[key]

        return get

    def _period_values(self) -> dict[str, Any]:
        return {"period": self.period, "previous": self.previous, "analysis_date": self.analysis_date,
                "start": self.period.start, "end": self.period.end, "end_exclusive": self.period.end_exclusive}

    # ------------------------------------------------------------------ filters and period
    def set_filters(self, **choice: Any) -> Dataset:
        """Set the customer filter (column → value, list of values, or None for everyone) and
        make ``nb.ds`` the matching view of the dataset; returns it. Does not re-run sections."""
        merged = {**self.filters, **choice}
        self.filters = {k: v for k, v in merged.items() if v is not None and v != [] and v != ()}
        key = _freeze(self.filters)
        if key not in self._views:
            self._views[key] = self._base.restrict(**self.filters) if self.filters else self._base
        self.ds = self._views[key]
        return self.ds

    def set_period(self, period: str | Period) -> Period:
        """Change the period (``2026-10``, ``2026Q3``, ``last-month`` …) and what follows from it:
        the previous period, coverage and (unless set as a parameter) the analysis date."""
        text = str(period)
        today = _data_today(self._base) if text.startswith("last-") else None
        p = parse_period(period, today=today)
        self.period, self.previous = p, p.previous()
        self.coverage = period_coverage(self._base, p)
        self.previous_coverage = period_coverage(self._base, p.previous())
        self.analysis_date = self._analysis_param or (self.coverage.analysis_end if self.coverage else p.end)
        return p

    def rerun(self) -> float:
        """Re-run every section shown from a callable (after a filter or period change), in place.

        Filtered re-runs are explorations: they are not recorded in the notebook's metrics. A
        section that fails for the current selection shows why instead of its old content.
        Returns the seconds taken.
        """
        from workbench.results import as_result

        started = time.perf_counter()
        for sec in self.sections:
            try:
                sec.result = as_result(sec.func, sec.section)
                sec.handle.result = sec.result  # later sections fed by this one see the new result
                _render_into(sec.out, sec.result, self.lang, None, sec.ids)
            except Exception as exc:  # noqa: BLE001 - shown in the section, the bar keeps working
                sec.result = None
                _render_into(sec.out, None, self.lang, None, sec.ids,
                             note=self.t("notebook.filter.failed", error=f"{type(exc).__name__}: {exc}"))
        return time.perf_counter() - started

    def filter_bar(self) -> Any:
        """Show the dataset, a period menu and customer filters above the sections (JupyterLab only).

        Call once, right after :func:`start`; sections shown with ``nb.show(lambda: ...)`` follow it.
        Returns the :class:`workbench.widgets.FilterBar` (``None`` in report runs).
        """
        if viz.report_mode():
            return None
        from workbench import widgets

        if not self._base.supports_filters:  # warehouse engines: the period menu only, and why
            from workbench.warehouse import NotOnThisEngine

            viz.note(NotOnThisEngine(self._base._con.kind, "filters").reason(self.lang))
            return widgets.filter_bar(self, customers=False)
        return widgets.filter_bar(self)

    def picker(self) -> Any:
        """Show the dataset this notebook uses, where that came from, a period menu and a
        "use in all notebooks" box (JupyterLab only; ``None`` in report runs)."""
        if viz.report_mode():
            return None
        from workbench import widgets

        return widgets.filter_bar(self, customers=False, dataset_box=True)

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


def _freeze(value: Any) -> Any:
    """A hashable stand-in for ``value`` (memo keys): containers by content, frames by identity."""
    if isinstance(value, Mapping):
        return ("map", tuple(sorted(((str(k), _freeze(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_freeze(v) for v in value), key=repr)))
    try:
        hash(value)
    except TypeError:
        return ("id", type(value).__name__, id(value))  # e.g. a DataFrame; the memo keeps it alive
    return value


def _follow(value: Any, made: Mapping[str, Any], now: Mapping[str, Any]) -> Any:
    """``value`` replaced by the current period value it stood for when ``nb.data`` was called."""
    if isinstance(value, (Period, dt.date)):
        for name, old in made.items():
            if old is not None and type(value) is type(old) and value == old:
                return now[name]
    return value


def _render_into(out: Any, result: Any, lang: str, rec: Any, ids: str, note: str | None = None) -> None:
    """Fill a section's output area with the rendered result in one state update.

    The outputs are collected and assigned to the widget rather than captured with ``with out:``:
    capturing redirects the kernel's output messages, which headless runners (papermill/nbclient,
    nbval) wait on and can hang; a plain state update works everywhere."""
    from workbench.results import render

    with viz.capture() as shown:
        if result is not None:
            render(result, lang, rec, ids=ids)
        if note:
            viz.note(note)
    out.outputs = viz.mime_outputs(shown)


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
          seed: int = 42, today: dt.date | None = None, analysis_date: str | dt.date | None = "",
          export_ids: str = "pseudonymised") -> NotebookContext:
    """Open everything a notebook needs; see module docstring.

    ``data`` and ``period`` may be left at their defaults to use ``WORKBENCH_DATA`` /
    ``WORKBENCH_PERIOD`` or the user settings file (:func:`choose`; never in report runs).
    ``analysis_date`` (``YYYY-MM-DD``; empty = automatic) is the snapshot day for analyses that
    look back from one date; by default the period end, or the last day the data covers when
    the data ends inside the period (so a mid-month data end shortens the window rather than
    dropping the analysis). ``export_ids`` (``"pseudonymised"`` or ``"raw"``) says how customer
    lists show and export ids in JupyterLab.
    """
    check_lang(lang)
    viz.set_lang(lang)
    if not viz.report_mode():
        viz.use_notebook_renderer()
    quiet_known_warnings()
    data_choice, period_choice = choose(data, period)
    data, period = data_choice.value, period_choice.value
    ds = open_dataset(data)
    if today is None and str(period).startswith("last-"):
        # relative periods follow the data: "last month" is the last full month in the data
        today = _data_today(ds)
    p = parse_period(period, today=today)
    rec = Recorder(metrics_path, section, lang)
    cov, prev_cov = period_coverage(ds, p), period_coverage(ds, p.previous())
    nb = NotebookContext(ds=ds, period=p, previous=p.previous(), lang=lang, rec=rec, seed=seed, coverage=cov,
                         previous_coverage=prev_cov, analysis_date=parse_analysis_date(analysis_date),
                         export_ids=export_ids, data_choice=data_choice, period_choice=period_choice)
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
