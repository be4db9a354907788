"""Shared plotting and display: the workbench's plotly look, and how figures,
findings, headings and tables are shown in JupyterLab and in manager reports.

In a report run (``WORKBENCH_REPORT=1``, set by the report pipeline) figures are
emitted as HTML divs *without* plotly.js — the report template embeds
plotly.js once — and without MathJax, so the page works offline. In JupyterLab
they are shown interactively with ``fig.show()``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

PALETTE = ["#1f5fa8", "#e07b39", "#3a9d5d", "#c8413b", "#7d5ba6", "#8c6d31", "#d16ba5", "#5f6b6d"]
FONT = "Noto Sans CJK SC, Noto Sans SC, Microsoft YaHei, PingFang SC, Helvetica, Arial, sans-serif"

pio.templates["workbench"] = go.layout.Template(
    layout=dict(
        font=dict(family=FONT, size=13, color="#222"),
        colorway=PALETTE,
        paper_bgcolor="white",
        plot_bgcolor="white",
        xaxis=dict(showgrid=True, gridcolor="#e6e6e6", zeroline=False, linecolor="#999", ticks="outside"),
        yaxis=dict(showgrid=True, gridcolor="#e6e6e6", zeroline=False, linecolor="#999", ticks="outside"),
        # the title sits at the top of the figure and a (possibly two-row) legend just above the plot
        # area, with room between them: otherwise long zh titles and legends overlap
        title=dict(x=0.0, xanchor="left", y=0.985, yanchor="top", yref="container", font=dict(size=16)),
        margin=dict(l=60, r=30, t=110, b=60),
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0),
        hoverlabel=dict(font=dict(family=FONT)),
    )
)
pio.templates.default = "plotly_white+workbench"


# Plotly ships no locales in the Python package; this is its zh-CN locale (month names and the
# automatic date-tick formats), registered by every report page right after plotly.js.
PLOTLY_ZH_LOCALE_JS = (
    "Plotly.register({moduleType:'locale',name:'zh-CN',dictionary:{},format:{"
    "days:['星期日','星期一','星期二','星期三','星期四','星期五','星期六'],"
    "shortDays:['周日','周一','周二','周三','周四','周五','周六'],"
    "months:['一月','二月','三月','四月','五月','六月','七月','八月','九月','十月','十一月','十二月'],"
    "shortMonths:['1月','2月','3月','4月','5月','6月','7月','8月','9月','10月','11月','12月'],"
    "date:'%Y-%m-%d',year:'%Y年',month:'%Y年%-m月',dayMonth:'%-m月%-d日',dayMonthYear:'%Y年%-m月%-d日'}});"
)
_LANG = {"value": "en"}


def set_lang(lang: str) -> None:
    """Language of figure chrome (date ticks) for this kernel; set by ``workbench.notebook.start``."""
    _LANG["value"] = lang


def report_mode() -> bool:
    """True inside a report pipeline run (static output for manager HTML)."""
    return os.environ.get("WORKBENCH_REPORT", "") not in ("", "0", "false")


def _mask(text: str) -> str:
    """Personal data masked in a sentence shown on a page (findings may quote data labels)."""
    from workbench.privacy import mask_text

    return mask_text(text)


def _label(text: str) -> str:
    from workbench.privacy import mask_label

    return mask_label(text)


_SINK: list[Any] | None = None  # set by capture(): displays are collected instead of sent


def _display(obj: Any) -> None:
    if _SINK is not None:
        _SINK.append(obj)
        return
    from IPython.display import display

    display(obj)


def capture() -> Any:
    """Context manager collecting everything shown through this module (instead of displaying it);
    yields the list. Used to fill a section's output area in one step (see ``workbench.notebook``)."""
    from contextlib import contextmanager

    @contextmanager
    def _cm() -> Any:
        global _SINK
        before, _SINK = _SINK, []
        try:
            yield _SINK
        finally:
            _SINK = before

    return _cm()


def mime_outputs(objects: list[Any]) -> tuple[dict[str, Any], ...]:
    """Displayable objects as notebook ``display_data`` outputs (what an ipywidgets Output holds)."""
    from IPython.core.formatters import format_display_data

    out = []
    for obj in objects:
        if isinstance(obj, go.Figure):  # IPython would call its _ipython_display_ (a side display) and return {}
            data, meta = obj._repr_mimebundle_(), {}
        else:
            data, meta = format_display_data(obj)
        out.append({"output_type": "display_data", "data": data, "metadata": meta})
    return tuple(out)


def use_notebook_renderer() -> None:
    """Interactive figures as plotly's mime type (JupyterLab renders it offline with the extension plotly
    ships); never a browser tab or a CDN script. A ``PLOTLY_RENDERER`` set by the user wins."""
    if not os.environ.get("PLOTLY_RENDERER"):
        pio.renderers.default = "plotly_mimetype"


def safe_figure(fig: go.Figure) -> dict[str, Any]:
    """The figure as a plotly dict with personal data masked in every string (labels, legends,
    titles, hover text, annotations): the one place data labels pass on their way to a report page.
    See :func:`workbench.privacy.mask_label`."""
    from workbench.privacy import mask_labels

    return mask_labels(fig.to_plotly_json())


def _title_html(layout: dict[str, Any]) -> str:
    """The figure's title as escaped HTML (plotly's ``<br>`` kept as line breaks, other tags dropped)."""
    import re

    title = layout.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    if not text:
        return ""
    plain = re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", "\n", str(text), flags=re.I))
    return "<br>".join(html.escape(line.strip()) for line in plain.splitlines() if line.strip())


def figure_html(fig: go.Figure) -> str:
    """The figure as an HTML ``<div>`` without plotly.js or MathJax (the page supplies plotly.js);
    labels are masked (:func:`safe_figure`).

    The title is taken out of the plot and put above it as page text, so it wraps on a phone instead
    of being cut at the figure's edge (plotly titles never wrap)."""
    d = safe_figure(fig)
    layout = d.setdefault("layout", {})
    title = _title_html(layout)
    if title:
        layout["title"] = {"text": ""}
        traces = [t for t in d.get("data", []) if t.get("showlegend", True) is not False]
        legend = layout.get("showlegend", len(traces) > 1) is not False and len(traces) > 1
        margin = dict(layout.get("margin") or {})
        margin["t"] = min(int(margin.get("t", 110)), 80 if legend else 30)
        layout["margin"] = margin
    head = f'<p class="wb-figure-title">{title}</p>' if title else ""
    return head + pio.to_html(
        d,
        validate=False,
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        config={"displaylogo": False, "responsive": True, "locale": "zh-CN" if _LANG["value"] == "zh" else "en",
                "modeBarButtonsToRemove": ["lasso2d", "select2d"]},
        default_width="100%",
        default_height=f"{int(fig.layout.height or 450)}px",
    )


APPENDIX_CLASS = "wb-appendix"  # report pages move these blocks into the collapsed appendix


def show(fig: go.Figure, appendix: bool = False) -> None:
    """Show a figure: interactive in JupyterLab, a static-page div in report runs
    (``appendix=True``: in the manager page's collapsed appendix)."""
    if report_mode():
        from IPython.display import HTML

        cls = f"wb-figure {APPENDIX_CLASS}" if appendix else "wb-figure"
        _display(HTML(f'<div class="{cls}">{figure_html(fig)}</div>'))
    else:
        _display(fig)


def finding(text: str, how: str = "", lang: str | None = None) -> None:
    """Show a plain-language finding under a chart (text is HTML-escaped); ``how`` is the
    "how computed" note with the statistics, shown collapsed under it."""
    from IPython.display import HTML

    extra = ""
    if how:
        from workbench.i18n import t

        label = t("core.how_computed", lang or _LANG["value"])
        extra = (f'<details class="wb-how"><summary>{html.escape(label)}</summary>'
                 f"{html.escape(_mask(how))}</details>")
    _display(HTML(f'<div class="wb-finding-block"><p class="wb-finding">{html.escape(_mask(text))}</p>{extra}</div>'
                  if extra else f'<p class="wb-finding">{html.escape(_mask(text))}</p>'))


def note(text: str) -> None:
    """Show a caveat or a skipped-analysis message (HTML-escaped)."""
    from IPython.display import HTML

    _display(HTML(f'<p class="wb-note">{html.escape(_mask(text))}</p>'))


def heading(text: str, level: int = 2) -> None:
    """Section heading (level 2 headings make the report's table of contents)."""
    from IPython.display import HTML

    _display(HTML(f'<h{level} class="wb-heading">{html.escape(_mask(text))}</h{level}>'))


def _keep_words(escaped: str) -> str:
    """Hyphenated words (cross-sell, Gamma-Gamma, 2026-10) never break at their hyphen in a table cell."""
    import re

    return re.sub(r"(\w+(?:-\w+)+)", r'<span class="wb-nowrap">\1</span>', escaped)


def table_html(df: pd.DataFrame, formats: dict[str, Any] | None = None, max_rows: int = 30,
               caption: str = "") -> str:
    """A compact, escaped HTML table; ``formats`` maps column → callable(value) → str."""
    formats = formats or {}
    shown = df.head(max_rows)
    head = "".join(f"<th>{html.escape(_label(str(c)))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = []
        for col, value in zip(shown.columns, row, strict=True):
            text = formats[col](value) if col in formats else ("–" if pd.isna(value) else str(value))
            align = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            cells.append(f"<td{align}>{_keep_words(html.escape(_label(text)))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    from workbench.i18n import t as _t

    more_text = _t("core.more_rows", _LANG["value"], n=len(df) - max_rows)
    more = (f'<tr><td colspan="{len(shown.columns)}" class="wb-more">{html.escape(more_text)}</td></tr>'
            if len(df) > max_rows else "")
    cap = f"<caption>{html.escape(_mask(caption))}</caption>" if caption else ""
    # the wrapper scrolls a wide table inside its own box; the page never scrolls sideways
    return (f'<div class="wb-table-wrap"><table class="wb-table">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}{more}</tbody></table></div>')


def table(df: pd.DataFrame, formats: dict[str, Any] | None = None, max_rows: int = 30, caption: str = "",
          appendix: bool = False, export: str = "", ids: str = "pseudonymised") -> None:
    """Show a table (escaped HTML; scrolls in its own box in reports).

    ``appendix=True`` sends it to the manager page's collapsed appendix; ``export`` (a file stem)
    marks a customer list: JupyterLab shows an "export this list (CSV)" link under it. Customer ids
    in it (:func:`protect_ids`) are pseudonymised in the table and the CSV unless ``ids="raw"``
    (the analyst's opt-in; ignored in report runs, which never show raw ids)."""
    from IPython.display import HTML

    df = protect_ids(df, "pseudonymised" if report_mode() else ids)
    body = table_html(df, formats, max_rows, caption)
    if report_mode():
        if appendix:
            body = f'<div class="{APPENDIX_CLASS}">{body}</div>'
        _display(HTML(body))
        return
    _display(HTML(body))
    if export:
        _display(HTML(export_link(df, export)))


ID_COLUMN = "customer_id"
EXPORT_IDS = ("pseudonymised", "raw")
_PSEUDONYM = r"^p_[0-9a-f]{12}$"


def id_columns(df: pd.DataFrame) -> list[str]:
    """Columns of ``df`` holding customer ids: ``customer_id`` or a translated customer-id header."""
    from workbench.i18n import table as texts

    names = {ID_COLUMN}
    for key in ("notebook.col.customer_id", "notebook.col.customer_pseudonym", "pyramid.col.customer_id",
                "pyramid.col.pseudonym", "overview.columns.customer_id"):
        names.update(texts().get(key, {}).values())
    return [c for c in df.columns if isinstance(c, str) and c.strip() in names]


def protect_ids(df: pd.DataFrame, ids: str = "pseudonymised") -> pd.DataFrame:
    """``df`` with its customer ids (:func:`id_columns`) pseudonymised unless ``ids="raw"``.

    Uses :func:`workbench.privacy.pseudonymise` with the run's key (``WORKBENCH_PSEUDONYM_KEY``,
    else the process key), so a list exported twice in one run names a customer the same way.
    Values that already are pseudonyms are kept; a ``customer_id`` header becomes the translated
    "Customer (pseudonym)" (or "Customer id" for raw ids).
    """
    if ids not in EXPORT_IDS:
        raise ValueError(f"export_ids must be one of {', '.join(EXPORT_IDS)}, got {ids!r}")
    cols = id_columns(df)
    if not cols:
        return df
    from workbench.i18n import t

    out = df.copy()
    if ids == "pseudonymised":
        from workbench.privacy import pseudonymise

        for col in cols:
            text = out[col].astype("string")
            done = text.str.fullmatch(_PSEUDONYM).fillna(False).to_numpy(dtype=bool)
            hashed = pseudonymise(out[col]).to_numpy(dtype=object)
            out[col] = pd.Series([v if d else h for v, h, d in zip(text.to_numpy(dtype=object), hashed, done,
                                                                     strict=True)], index=out.index, dtype="str")
    if ID_COLUMN in cols:
        key = "notebook.col.customer_pseudonym" if ids == "pseudonymised" else "notebook.col.customer_id"
        out = out.rename(columns={ID_COLUMN: t(key, _LANG["value"])})
    return out


def has_data(fig: Any) -> bool:
    """Whether a plotly figure draws anything: a trace with at least one value, or a message
    (annotation, shape or image) on an otherwise empty figure.

    A trace's values are its measure (``y``; ``x`` for horizontal bars; ``values``, ``z``, ``r``
    or ``value`` where the trace type has them), else its coordinates; missing and non-finite
    values do not count. Figures that are not plotly figures count as having data.
    """
    if not isinstance(fig, go.Figure):
        return True
    for trace in fig.data:
        if _trace_has_data(trace):
            return True
    layout = fig.layout
    return bool(len(layout.annotations or ()) or len(layout.shapes or ()) or len(layout.images or ()))


def _trace_has_data(trace: Any) -> bool:
    def get(key: str) -> Any:
        return trace[key] if key in trace else None

    measures = [k for k in ("values", "z", "r", "value") if get(k) is not None]
    if not measures:
        first = ("x", "y") if get("orientation") == "h" else ("y", "x")
        measures = [k for k in first if get(k) is not None][:1]
    if not measures:
        measures = [k for k in ("lat", "lon", "locations", "labels") if get(k) is not None]
        if not measures:
            return True  # a trace type without the usual arrays (table, parcoords, ...): not second-guessed
    for key in measures:
        if any(_is_value(v) for v in _flat(get(key))):
            return True
    return False


def _flat(value: Any) -> list[Any]:
    """The scalars of a value, a list or a nested list/array (heatmap ``z``)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    out: list[Any] = []
    for v in value:
        out.extend(_flat(v))
    return out


def _is_value(v: Any) -> bool:
    """A drawable value: a finite number, a date or non-empty text (not None/NaN/inf)."""
    if v is None:
        return False
    if isinstance(v, str):
        return v.strip() != ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return not pd.isna(v)
    return f == f and f not in (float("inf"), float("-inf"))


def export_link(df: pd.DataFrame, stem: str) -> str:
    """An "export this list (CSV)" download link holding ``df`` (UTF-8 with BOM so Excel reads Chinese)."""
    import base64
    import re

    from workbench.i18n import t

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "list"
    data = base64.b64encode(df.to_csv(index=False).encode("utf-8-sig")).decode("ascii")
    label = t("core.export_csv", _LANG["value"], n=len(df))
    return (f'<a class="wb-export" download="{safe}.csv" href="data:text/csv;base64,{data}">'
            f"{html.escape(label)}</a>")


def bar_with_ci(
    categories: Sequence[Any],
    values: Sequence[float],
    ci_low: Sequence[float] | None = None,
    ci_high: Sequence[float] | None = None,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    percent: bool = False,
    text: Sequence[str] | None = None,
    color: str | None = None,
    name: str | None = None,
) -> go.Figure:
    """Bars with asymmetric 95% confidence-interval whiskers (``name`` labels the bars in a legend)."""
    err = None
    if ci_low is not None and ci_high is not None:
        vals = pd.Series(list(values), dtype=float)
        err = dict(type="data", symmetric=False,
                   array=(pd.Series(list(ci_high), dtype=float) - vals).clip(lower=0).tolist(),
                   arrayminus=(vals - pd.Series(list(ci_low), dtype=float)).clip(lower=0).tolist(),
                   color="#555", thickness=1.2, width=5)
    fig = go.Figure(go.Bar(x=list(categories), y=list(values), error_y=err, marker_color=color or PALETTE[0],
                           text=list(text) if text is not None else None, textposition="outside",
                           name=name or ""))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, showlegend=False)
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def line(frame: pd.DataFrame, x: str, y: str | list[str], title: str = "", x_title: str = "",
         y_title: str = "", names: dict[str, str] | None = None) -> go.Figure:
    """One or more lines over ``x`` (e.g. monthly volumes); ``names`` relabels series."""
    ys = [y] if isinstance(y, str) else y
    fig = go.Figure()
    for col in ys:
        fig.add_trace(go.Scatter(x=frame[x], y=frame[col], mode="lines+markers", name=(names or {}).get(col, col)))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, showlegend=len(ys) > 1)
    return fig
