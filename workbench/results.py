"""One shape for every analysis: a result object that knows how to present itself.

An analysis function returns a frozen dataclass that subclasses :class:`Result`. It holds
the numbers (no side effects, nothing printed) and answers, in the reader's language:

* :meth:`Result.findings` — sentences (:class:`Finding`), each with its value, interval, n and
  whether it asks to lead the report; the honesty rules (:func:`workbench.metrics.evidence_rule`)
  decide whether it may;
* :meth:`Result.figures` and :meth:`Result.tables` — plotly figures and tables (:class:`Figure`,
  :class:`Table`); ``appendix=True`` sends model diagnostics, parameter tables, customer lists and
  term tables to the collapsed appendix of a manager page;
* :meth:`Result.notes` — caveats shown under the section;
* :meth:`Result.kpis` — numbers for the pack summary's tiles (:class:`KPI`);
* :meth:`Result.metrics` — JSON-ready aggregates for ``metrics.json`` (names are stable);
* :meth:`Result.summary` / ``repr`` — a readable text summary in the statsmodels spirit.

When the data cannot support an analysis the function returns :class:`Skipped` (or raises
:class:`~workbench.engine.MissingDataError` — :class:`Unsupported` when the data are there but cannot
support it — which :func:`analysis` and ``nb.show`` turn into one), and the section says why in plain
words instead of failing.

:func:`render` is the one renderer: ``nb.show(result)`` in a notebook calls it with the
notebook's language and metrics recorder, so a notebook section is one or two lines::

    nb.show(loyalty.thresholds(frame, n_boot=n_boot))
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from workbench.engine import MissingDataError
from workbench.i18n import fmt_date, fmt_int, t
from workbench.i18n import has as has_text

__all__ = ["KPI", "Figure", "Finding", "Result", "Skipped", "SkippedLive", "Table", "Unsupported", "analysis", "render", "skip_reason"]


@dataclass(frozen=True)
class Finding:
    """A plain-language sentence about a result.

    Parameters
    ----------
    key : str
        Stable name (``metrics.json`` findings are keyed by it).
    text : str
        The sentence in the reader's language, without p-values or model names when it is a headline.
    value : Any
        The number the sentence is about (JSON-ready).
    headline : bool
        Asks to lead the report; granted only when the evidence passes
        :func:`workbench.metrics.evidence_rule`.
    interval, null, n, value_range
        The evidence: 95% interval, the "no effect" value it must exclude, cases behind it, and
        the quantity's possible range (an interval wider than it is not estimable).
    how : str
        "How computed": the statistics behind the sentence (test, model, p-value, base), shown
        collapsed under a headline.
    action : str
        The "so what → action" sentence for the pack summary (optional).
    """

    key: str
    text: str
    value: Any = None
    headline: bool = False
    interval: tuple[float, float] | None = None
    null: float | None = None
    n: int | None = None
    value_range: tuple[float, float] | None = None
    how: str = ""
    action: str = ""


@dataclass(frozen=True)
class Figure:
    """A plotly figure; ``appendix=True`` puts it in the manager page's collapsed appendix."""

    figure: Any
    appendix: bool = False


@dataclass(frozen=True)
class Table:
    """A table to show.

    Parameters
    ----------
    frame : DataFrame
        Columns already translated (headers are what the reader sees).
    formats : mapping
        Column → callable(value) → str.
    caption : str
        Shown above the table.
    appendix : bool
        Manager pages show it in the collapsed appendix (diagnostics, parameters, term tables,
        customer lists).
    export : str
        Non-empty for a customer list: the file stem of the CSV a notebook user may export
        (pseudonymised ids unless the analyst opts in).
    max_rows : int
        Rows shown (the export has them all).
    """

    frame: pd.DataFrame
    formats: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)
    caption: str = ""
    appendix: bool = False
    export: str = ""
    max_rows: int = 30


@dataclass(frozen=True)
class KPI:
    """One number for the pack summary's tiles.

    Parameters
    ----------
    key : str
        Stable name; ``[targets]`` in workbench.toml refers to it (e.g. ``complaint_rate``).
    label : str
        What it is, in the reader's language.
    value : float or None
        ``None`` when not estimable (the tile says so; no number is printed).
    unit : {"share", "count", "money", "number", "per_1000"}
        How to format the value.
    n : int or None
        Cases behind it (the tile's base).
    interval : (low, high) or None
        95% interval where one exists.
    better : {"higher", "lower", ""}
        Which direction is good (colours the change arrow); ``""`` = neither.
    previous : float or None
        The same KPI over the previous period, when the analysis computed it.
    how : str
        How it is computed (shown collapsed).
    """

    key: str
    label: str
    value: float | None
    unit: str = "number"
    n: int | None = None
    interval: tuple[float, float] | None = None
    better: str = "higher"
    previous: float | None = None
    how: str = ""

    def to_dict(self) -> dict[str, Any]:
        from workbench.metrics import to_jsonable

        return to_jsonable({"key": self.key, "label": self.label, "value": self.value, "unit": self.unit,
                            "n": self.n, "interval": list(self.interval) if self.interval else None,
                            "better": self.better, "previous": self.previous, "how": self.how}, self.key)


class Result:
    """Base of every analysis result (subclasses are ``@dataclass(frozen=True, repr=False)``).

    Subclasses set ``heading`` (a translation key for the section heading) and override the
    presentation methods they need; every method has an empty default.
    """

    heading: ClassVar[str] = ""
    #: a section that only makes sense with a live kernel (widgets): manager pages leave it out
    interactive_only: ClassVar[bool] = False

    def title(self, lang: str = "en") -> str:
        return t(self.heading, lang) if self.heading and has_text(self.heading) else ""

    def findings(self, lang: str = "en") -> list[Finding]:
        return []

    def figures(self, lang: str = "en") -> list[Figure | Any]:
        return []

    def tables(self, lang: str = "en") -> list[Table]:
        return []

    def notes(self, lang: str = "en") -> list[str]:
        return []

    def kpis(self, lang: str = "en") -> list[KPI]:
        return []

    def metrics(self) -> dict[str, Any]:
        return {}

    def widget(self, lang: str = "en") -> Any:
        """Optional live controls for JupyterLab (an ipywidget); ``None`` = none."""
        return None

    @property
    def skipped(self) -> bool:
        return False

    def summary(self, lang: str = "en") -> str:
        """A plain-text summary: title, findings (with interval and n) and notes."""
        lines = [self.title(lang) or type(self).__name__, "=" * max(len(self.title(lang) or type(self).__name__), 8)]
        for f in self.findings(lang):
            extra = []
            if f.interval is not None and all(v is not None for v in f.interval):
                extra.append(f"95% CI {f.interval[0]:.4g} to {f.interval[1]:.4g}")
            if f.n is not None:
                extra.append(f"n={f.n:,}")
            lines.append(f"- {f.text}" + (f" [{'; '.join(extra)}]" if extra else ""))
        for k in self.kpis(lang):
            lines.append(f"* {k.label}: {'–' if k.value is None else f'{k.value:.4g}'}"
                         + (f" (n={k.n:,})" if k.n is not None else ""))
        lines += [f"  note: {n}" for n in self.notes(lang)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary("en")

    def _repr_html_(self) -> str:
        """Jupyter shows a bare result (not passed to ``nb.show``) as its summary."""
        return f"<pre>{html.escape(self.summary('en'))}</pre>"


class Unsupported(MissingDataError):
    """The data are there but cannot support an analysis; :meth:`reason` says why in plain words.

    One class for every module: a module subclasses it only to name its translations, e.g.
    ``class Unsupported(results.Unsupported): prefix = "loyalty.why."; wrap = "loyalty.skipped"``.

    Parameters
    ----------
    key : str
        The reason's translation key after ``prefix`` (e.g. ``"few_levels"``).
    table, columns : optional
        What the reason is about (defaults to the subclass's ``table``), as for
        :class:`~workbench.engine.MissingDataError`.
    **values
        Fill the reason's placeholders; whole numbers get thousands separators and dates the
        reader's date format.
    """

    prefix: ClassVar[str] = ""
    #: optional text with a ``{why}`` slot that frames the reason (e.g. "Skipped: {why}.")
    wrap: ClassVar[str | None] = None
    default_table: ClassVar[str] = "transactions"

    def __init__(self, key: str, table: str | None = None, columns: tuple[str, ...] = (), **values: Any):
        self.key = key
        self.values = values
        try:
            message = self.reason("en")
        except (KeyError, IndexError, ValueError, LookupError):  # a bad placeholder still raises a readable error
            message = f"{key}: {values}"
        super().__init__(table or self.default_table, tuple(columns), message)

    def reason(self, lang: str = "en") -> str:
        values = {k: _reason_value(v, lang) for k, v in self.values.items()}
        text = t(f"{self.prefix}{self.key}", lang, **values)
        if self.wrap:
            text = t(self.wrap, lang, why=text)
        return text[:1].upper() + text[1:]  # shown on its own as the section's text


def _reason_value(value: Any, lang: str) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return fmt_int(value, lang)
    if isinstance(value, dt.date):
        return fmt_date(value, lang)
    return value


@dataclass(frozen=True, repr=False)
class Skipped(Result):
    """An analysis the data cannot support; :meth:`reason` says why in plain words.

    Parameters
    ----------
    section : str
        Translation key of the section heading (or of the analysis name).
    cause : Exception
        The :class:`~workbench.engine.MissingDataError` (or subclass) that stopped it.
    """

    section: str
    cause: BaseException

    @property
    def skipped(self) -> bool:
        return True

    def title(self, lang: str = "en") -> str:
        return t(self.section, lang) if self.section and has_text(self.section) else ""

    def reason(self, lang: str = "en") -> str:
        return skip_reason(self.cause, lang)

    def notes(self, lang: str = "en") -> list[str]:
        return [self.reason(lang)]

    def summary(self, lang: str = "en") -> str:
        return f"{self.title(lang) or 'Analysis'} — {self.reason(lang)}"


def skip_reason(exc: BaseException, lang: str = "en") -> str:
    """Plain words for why an analysis was skipped.

    An exception with a ``reason(lang)`` method speaks for itself (e.g. ``loyalty.Unsupported``);
    a :class:`~workbench.engine.MissingDataError` names the missing table or columns.
    """
    own = getattr(exc, "reason", None)
    if callable(own):
        return str(own(lang))
    if isinstance(exc, MissingDataError):
        from workbench.notebook import _what_zh

        return t("core.skipped", lang, what=exc.what if lang == "en" else _what_zh(exc))
    return t("core.skipped_error", lang)


@dataclass(frozen=True, repr=False)
class SkippedLive(Skipped):
    """A skipped interactive-only (widget) section: left out of manager pages like the section itself."""

    interactive_only: ClassVar[bool] = True


def skipped(section: str, exc: BaseException, interactive: bool = False) -> Skipped:
    """The :class:`Skipped` result for ``section`` (:class:`SkippedLive` for a widget section)."""
    return (SkippedLive if interactive else Skipped)(section, exc)


def analysis(section: str, interactive: bool = False) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorate an analysis function so a :class:`MissingDataError` becomes a :class:`Skipped` result.

    ``interactive=True`` for a widget section (its result is ``interactive_only``): skipped, it is
    left out of manager pages too, instead of a "skipped" note under a heading the page never shows.

    >>> @analysis("loyalty.h.thresholds")
    ... def thresholds(frame): ...
    """

    def wrap(func: Callable[..., Result]) -> Callable[..., Result]:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Result:
            try:
                return func(*args, **kwargs)
            except MissingDataError as exc:
                return skipped(section, exc, interactive)

        run.section = section  # type: ignore[attr-defined]
        run.interactive = interactive  # type: ignore[attr-defined]
        return run

    return wrap


# --------------------------------------------------------------------- renderer
def render(result: Result, lang: str, rec: Any = None, *, heading: bool = True,
           ids: str = "pseudonymised") -> list[Any]:
    """Show ``result`` (heading, figures, findings, tables, notes) and record it in ``rec``.

    Parameters
    ----------
    result : Result
        What to show.
    lang : str
        Reader's language.
    rec : workbench.metrics.Recorder or None
        Receives the result's metrics, findings (through the evidence rule), KPIs and notes.
    heading : bool
        Show the section heading.
    ids : {"pseudonymised", "raw"}
        Customer ids in tables and their CSV exports (:func:`workbench.viz.protect_ids`); "raw" is
        the analyst's opt-in and is ignored in report runs.

    A figure with nothing to draw (:func:`workbench.viz.has_data`: no trace has a value, e.g. a
    filter left a segment empty) is replaced by a "no data for this selection" note instead of
    empty axes.

    Returns
    -------
    list of workbench.metrics.Finding
        The findings as recorded (headline flags after the evidence rule).
    """
    from workbench import viz

    report = viz.report_mode()
    if report and result.interactive_only:
        return []
    title = result.title(lang)
    if heading and title:
        viz.heading(title)
    if rec is not None:
        for name, value in result.metrics().items():
            rec.metric(name, value)
        for k in result.kpis(lang):
            rec.kpi(k)
        if heading and title and not result.interactive_only and hasattr(rec, "mark_section"):
            rec.mark_section(title, result.skipped)
    if result.skipped:
        for text in result.notes(lang):
            viz.note(text)
            if rec is not None:
                rec.note(f"{title} — {text}" if title else text)
        return []
    for fig in result.figures(lang):
        spec = fig if isinstance(fig, Figure) else Figure(fig)
        if not viz.has_data(spec.figure):
            viz.note(no_data_text(spec.figure, lang))
            continue
        viz.show(spec.figure, appendix=spec.appendix)
    recorded = []
    for f in result.findings(lang):
        recorded.append(show_finding(f, lang, rec))
    for tab in result.tables(lang):
        viz.table(tab.frame, dict(tab.formats), max_rows=tab.max_rows, caption=tab.caption, appendix=tab.appendix,
                  export=tab.export, ids=ids)
    for text in result.notes(lang):
        viz.note(text)
        if rec is not None:
            rec.note(text)
    if not report:
        control = result.widget(lang)
        if control is not None:
            viz._display(control)
    return recorded


def no_data_text(fig: Any, lang: str) -> str:
    """"No data for this selection", naming the figure by its title when it has one."""
    try:
        title = (fig.layout.title.text or "").strip()
    except AttributeError:
        title = ""
    if title:
        import re

        title = re.sub(r"<[^>]+>", " ", title).split("  ")[0].strip()  # plotly titles may carry <br><sup>
    return t("notebook.no_data_titled", lang, title=title) if title else t("notebook.no_data", lang)


def show_finding(f: Finding, lang: str, rec: Any = None) -> Any:
    """Record ``f`` (the evidence rule decides headline status) and show it, marked when it fails."""
    from workbench import viz
    from workbench.metrics import Finding as Recorded
    from workbench.metrics import evidence_rule

    if rec is not None:
        item = rec.finding(f.key, f.text, value=f.value, headline=f.headline, interval=f.interval, null=f.null,
                           n=f.n, value_range=f.value_range, how=f.how, action=f.action)
    else:
        evidence = ""
        headline = f.headline
        if headline and (f.interval is not None or f.null is not None or f.n is not None):
            evidence = evidence_rule(f.interval, f.null, f.n, f.value_range)
            headline = evidence == "ok"
        item = Recorded(f.key, f.text, f.value, headline, f.interval, f.null, f.n, evidence)
    text = item.text
    if item.evidence and item.evidence != "ok":
        text = f"{text} ({t('core.evidence.' + item.evidence, lang)})"
    viz.finding(text, how=f.how if item.headline else "", lang=lang)
    return item


def as_result(value: Any, section: str = "") -> Result:
    """Accept a result, or a callable returning one (``MissingDataError`` → :class:`Skipped`)."""
    if isinstance(value, Shown):
        return value.result
    if isinstance(value, Result):
        return value
    if callable(value):
        try:
            return as_result(value(), section)
        except MissingDataError as exc:
            return Skipped(section, exc)
    raise TypeError(f"expected a workbench.results.Result, got {type(value).__name__}")


class Shown:
    """What ``nb.show`` returns: a stand-in for the result that shows nothing by itself (the renderer
    already did), forwards attributes to the result, and follows it when the filter bar re-runs the
    section — so ``effect = nb.show(...)`` can feed a later section."""

    __slots__ = ("result",)

    def __init__(self, result: Result):
        self.result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def _ipython_display_(self) -> None:  # shown once by the renderer; nothing more
        return None

    def __repr__(self) -> str:
        return repr(self.result)


def unwrap(value: Any) -> Any:
    """The result behind a :class:`Shown` (anything else unchanged)."""
    return value.result if isinstance(value, Shown) else value


def results_metrics(results: Sequence[Result]) -> dict[str, Any]:
    """All metrics of several results in one dict (later names win)."""
    out: dict[str, Any] = {}
    for r in results:
        out.update(r.metrics())
    return out
