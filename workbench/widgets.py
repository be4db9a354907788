"""ipywidgets helpers: live controls in JupyterLab, nothing in report runs.

In a report (``WORKBENCH_REPORT=1``) a widget cannot work — there is no
kernel — so :func:`panel` displays nothing and the static chart shown just
above it stands in its place. Controls update charts from pre-aggregated
frames (no engine query per change) so a change answers in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench import viz


def panel(controls: dict[str, Any], update: Callable[..., Any], title: str = "") -> Any:
    """Show ``controls`` (name → ipywidget) and a plotly FigureWidget-free output area.

    ``update(**values)`` returns a plotly figure for the current control values, or a
    ``(figure, html)`` pair whose HTML text is shown above the figure; it is called once now
    and again on every change. Returns the container widget, or ``None`` in report mode.
    """
    if viz.report_mode():
        return None
    import ipywidgets as w
    from IPython.display import display

    out = w.Output()
    text = w.HTML()

    def redraw(_: Any = None) -> None:
        fig = update(**{k: c.value for k, c in controls.items()})
        fig, text.value = fig if isinstance(fig, tuple) else (fig, "")
        # a state update, not ``with out:`` capture (headless runners can hang on captured output)
        out.outputs = viz.mime_outputs([fig]) if fig is not None else ()

    title = _translated(title)
    for control in controls.values():
        translate_control(control)
        control.observe(redraw, names="value")
        if hasattr(control, "style") and hasattr(control.style, "description_width"):
            control.style.description_width = "initial"  # translated labels are not cut off
    header = [w.HTML(f"<b>{viz.html.escape(title)}</b>")] if title else []
    for control in controls.values():
        control.layout.margin = "2px 24px 2px 0"  # ipywidgets' Layout has no gap
    row = w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap"))
    box = w.VBox(header + [row, text, out])
    display(box)
    redraw()
    return box


def _translated(text: Any) -> Any:
    """``text`` translated into the notebook's language when it is a translation key."""
    if isinstance(text, str) and text and "." in text and " " not in text and _has(text):
        from workbench.i18n import t

        return t(text, viz._LANG["value"])
    return text


def translate_control(control: Any) -> Any:
    """Translate a control's label and option labels given as translation keys (``"loyalty.w.segment"``),
    so every control speaks the notebook's language; other text is left as it is."""
    if getattr(control, "description", ""):
        control.description = _translated(control.description)
    options = getattr(control, "options", None)
    if options and all(isinstance(o, tuple) and len(o) == 2 for o in options):
        labels = [_translated(label) for label, _ in options]
        if labels != [label for label, _ in options]:
            value = control.value
            control.options = [(lab, v) for lab, (_, v) in zip(labels, options, strict=True)]
            control.value = value
    return control


# ------------------------------------------------------------------ the notebook filter bar
#: dropdown value standing for "not recorded" (an empty cell); ``None`` is "everyone"
NOT_RECORDED = "\x00not recorded"
MAX_OPTIONS = 200


def value_label(column: str, value: Any, lang: str, codes: str = "") -> str:
    """A segment value as the reader should see it: a known code or sample label translated
    (``notebook.values.<column>.*``; ``codes`` names a code list such as ``br_state`` recognised
    for the whole column), an empty value as "(not recorded)", anything else as it is (masked)."""
    from workbench.i18n import t

    if value is None or value == NOT_RECORDED or (isinstance(value, str) and not value.strip()):
        return t("notebook.filter.not_recorded", lang)
    text = str(value).strip()
    key = _known_values(column).get(text.casefold())
    if key is None and codes:
        key = f"notebook.codes.{codes}.{text.casefold()}"
        key = key if _has(key) else None
    return t(key, lang) if key else viz._label(text)


def code_list(values: list[Any]) -> str:
    """The known code list every non-empty value belongs to (``"br_state"``), else ``""``."""
    texts = {str(v).strip().casefold() for v in values if v is not None and str(v).strip()}
    if texts:
        for codes in ("br_state",):
            if all(_has(f"notebook.codes.{codes}.{v}") for v in texts):
                return codes
    return ""


def _has(key: str) -> bool:
    from workbench.i18n import has

    return has(key)


def _known_values(column: str) -> dict[str, str]:
    """Known labels of ``column`` in any language (casefolded) → translation key."""
    from workbench.i18n import table

    prefix = f"notebook.values.{column}."
    out = {}
    for key, texts in table().items():
        if key.startswith(prefix):
            for text in texts.values():
                out[text.casefold()] = key
    return out


def column_label(column: str, lang: str) -> str:
    from workbench.i18n import t

    key = f"notebook.filter.column.{column}"
    return t(key, lang) if _has(key) else t("notebook.filter.column.other", lang, column=column)


def period_text(period: Any) -> str:
    """A period as a ``period`` parameter value (``2026-10``, ``2026Q3``, ``2026-01-01:2026-03-31``)."""
    if period.kind in ("month", "quarter"):
        return period.label
    return f"{period.start.isoformat()}:{period.end.isoformat()}"


def period_options(nb: Any) -> list[tuple[str, str]]:
    """(label, period text) pairs: the last month and quarter of data, the 12 months and 8 quarters
    before the data ends, and the notebook's current period (first) when it is none of those."""
    from workbench.i18n import t
    from workbench.notebook import _data_today
    from workbench.periods import _add_months, month_period, parse_period, quarter_period

    lang = nb.lang
    today = _data_today(nb.base)
    opts: list[tuple[str, str]] = []
    if today is not None:
        lm, lq = parse_period("last-month", today=today), parse_period("last-quarter", today=today)
        opts += [(t("notebook.period.last_month", lang, period=lm.display(lang)), "last-month"),
                 (t("notebook.period.last_quarter", lang, period=lq.display(lang)), "last-quarter")]
        months = [month_period(_add_months(today, -i)) for i in range(1, 13)]
        quarters = [quarter_period(_add_months(lq.start, -3 * i)) for i in range(8)]
        opts += [(p.display(lang), period_text(p)) for p in months + quarters]
    current = nb.period_choice.value if nb.period_choice else period_text(nb.period)
    if current not in {v for _, v in opts}:
        opts.insert(0, (nb.period.display(lang), current))
    return opts


class FilterBar:
    """The notebook's filter bar: dataset line, period menu, one menu per customer segment column.

    ``controls`` maps ``"period"`` and each customer column to its dropdown; setting a dropdown's
    ``value`` (a person in JupyterLab, or a test) applies it and re-runs the sections.
    ``timings`` holds the seconds each redraw took.
    """

    def __init__(self, nb: Any, customers: bool = True, dataset_box: bool = False):
        import ipywidgets as w

        from workbench.i18n import fmt_int, t

        self.nb = nb
        self.timings: list[float] = []
        self._hold = False
        lang = nb.lang
        self.controls: dict[str, Any] = {}
        notes: list[str] = []
        self.total = 0
        if customers and nb.base.has("customers"):
            self.total = int(nb.base.sql("SELECT count(*) AS n FROM customers")["n"].iloc[0])
            for col in nb.base.segment_columns("customers"):
                counts = nb.base.sql(
                    f"SELECT NULLIF(trim(CAST({viz_ident(col)} AS VARCHAR)), '') AS v, count(*) AS n "
                    f"FROM customers GROUP BY 1 ORDER BY n DESC, v NULLS LAST")
                if len(counts) > MAX_OPTIONS:
                    notes.append(t("notebook.filter.too_many", lang, column=column_label(col, lang),
                                   shown=fmt_int(MAX_OPTIONS, lang), total=fmt_int(len(counts), lang)))
                codes = code_list(counts["v"].tolist())
                opts = [(t("notebook.filter.all", lang, n=fmt_int(self.total, lang)), None)]
                for v, n in counts.head(MAX_OPTIONS).itertuples(index=False):
                    value = NOT_RECORDED if v is None or v != v else str(v)
                    opts.append((t("notebook.filter.option", lang, label=value_label(col, value, lang, codes),
                                   n=fmt_int(int(n), lang)), value))
                current = nb.filters.get(col)
                self.controls[col] = w.Dropdown(options=opts, value=current if current in dict(
                    (v, v) for _, v in opts) else None, description=column_label(col, lang))
        periods = period_options(nb)
        current = nb.period_choice.value if nb.period_choice else period_text(nb.period)
        self.controls["period"] = w.Dropdown(options=periods, value=current,
                                             description=t("notebook.filter.period", lang))
        self.dataset = w.HTML(self._dataset_line())
        self.status = w.HTML(self._status_line())
        self.notes = w.HTML("".join(f'<p class="wb-note">{viz.html.escape(n)}</p>' for n in notes))
        for control in self.controls.values():
            control.style.description_width = "initial"  # translated labels are not cut off
            control.observe(self._changed, names="value")
        rows: list[Any] = [w.HTML(f"<b>{viz.html.escape(t('notebook.filter.title', lang))}</b>"), self.dataset]
        if dataset_box:
            self.path = w.Text(value=str(nb.data_choice.value if nb.data_choice else nb.base.source),
                               description=t("notebook.picker.path", lang), layout=w.Layout(width="60%"))
            self.path.style.description_width = "initial"
            self.remember = w.Button(description=t("notebook.picker.remember", lang))
            self.remember.on_click(self._remember)
            rows.append(w.HBox([self.path, self.remember]))
        for control in self.controls.values():
            control.layout.margin = "2px 24px 2px 0"
        rows += [w.HBox(list(self.controls.values()), layout=w.Layout(flex_flow="row wrap")),
                 self.status, self.notes]
        self.box = w.VBox(rows)

    def _dataset_line(self) -> str:
        from workbench.i18n import t

        nb, lang = self.nb, self.nb.lang
        choice = nb.data_choice
        source = choice.source if choice else "parameter"
        where = t(f"notebook.picker.source.{source}", lang, path=choice.origin if choice else "")
        path = choice.value if choice else nb.base.source
        return (f'<span class="wb-note">{viz.html.escape(t("notebook.picker.dataset", lang, name=viz._label(nb.base.name), path=path, source=where))}'
                "</span>")

    def _status_line(self, seconds: float | None = None) -> str:
        from workbench.i18n import fmt_int, fmt_num, t

        nb, lang = self.nb, self.nb.lang
        parts = []
        if self.total:
            n = self.total if not nb.filters else int(nb.ds.sql("SELECT count(*) AS n FROM customers")["n"].iloc[0])
            parts.append(t("notebook.filter.status", lang, n=fmt_int(n, lang), total=fmt_int(self.total, lang),
                           period=nb.period.display(lang)))
        if seconds is not None:
            parts.append(t("notebook.filter.redrawn", lang, k=fmt_int(len(nb.sections), lang),
                           s=fmt_num(seconds, lang, 1)))
        if nb.filters:
            missing = nb.base.unassigned()
            if missing:
                what = ", ".join(t("notebook.filter.unassigned_item", lang, n=fmt_int(n, lang),
                                   table=t(f"core.tables.{name}", lang) if _has(f"core.tables.{name}") else name)
                                 for name, n in missing.items())
                parts.append(t("notebook.filter.unassigned", lang, what=what))
        if nb._fixed_sections:
            parts.append(t("notebook.filter.fixed", lang, k=fmt_int(nb._fixed_sections, lang)))
        return "".join(f'<p class="wb-note">{viz.html.escape(p)}</p>' for p in parts)

    def _changed(self, change: Any = None) -> None:
        from workbench.i18n import t

        if self._hold:
            return
        nb = self.nb
        self.status.value = f'<p class="wb-note">{viz.html.escape(t("notebook.filter.updating", nb.lang))}</p>'
        choice = {}
        for col, control in self.controls.items():
            if col == "period":
                continue
            v = control.value
            choice[col] = None if v is None else ([None] if v == NOT_RECORDED else v)
        nb.set_filters(**choice)
        period = self.controls["period"].value
        if period != (nb.period_choice.value if nb.period_choice else period_text(nb.period)):
            nb.set_period(period)
            from workbench.notebook import Choice

            nb.period_choice = Choice(period, "picker")
        seconds = nb.rerun()
        self.timings.append(seconds)
        self.status.value = self._status_line(seconds)

    def _remember(self, _: Any = None) -> None:
        from workbench.config import load_config
        from workbench.i18n import t
        from workbench.notebook import remember

        lang = self.nb.lang
        path = self.path.value.strip()
        try:
            load_config(path)
        except Exception as exc:  # noqa: BLE001 - said next to the box
            self.status.value = (f'<p class="wb-note">'
                                 f'{viz.html.escape(t("notebook.picker.bad", lang, path=path, error=exc))}</p>')
            return
        saved = remember(data=path)
        self.status.value = (f'<p class="wb-note">'
                             f'{viz.html.escape(t("notebook.picker.remembered", lang, path=saved))}</p>')

    def choose(self, **values: Any) -> None:
        """Set controls by name (``period="2026-09"``, ``segment="Premium"``; ``None`` = all)."""
        self._hold = True
        try:
            for name, value in values.items():
                self.controls[name].value = NOT_RECORDED if name != "period" and value == [None] else value
        finally:
            self._hold = False
        self._changed()


def viz_ident(name: str) -> str:
    from workbench.io import quote_ident

    return quote_ident(name)


def filter_bar(nb: Any, customers: bool = True, dataset_box: bool = False) -> FilterBar | None:
    """Build and show the filter bar of notebook context ``nb`` (``None`` in report runs)."""
    if viz.report_mode():
        return None
    from IPython.display import display

    bar = FilterBar(nb, customers=customers, dataset_box=dataset_box)
    display(bar.box)
    return bar
