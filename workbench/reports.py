"""The recurring report pack: run every notebook headlessly, publish manager HTML.

``workbench reports run --data PATH --period 2026-10`` (see :func:`run_pack`):

1. **Discover** ``notebooks/NN_name.ipynb`` (adding a notebook needs no code
   change) and read each notebook's ``parameters`` cell, so ``--param k=v``
   values are typed like the notebook's default (bool / int / float / str /
   list / dict). An unknown parameter or a bad value raises
   :class:`ReportInputError` before anything runs.
2. **Load and validate** the dataset once (the DuckDB cache); notebooks only
   open it read-only. Then check the period's **coverage**
   (:mod:`workbench.coverage`): no data in the period raises
   :class:`~workbench.coverage.NoDataInPeriod` (CLI exit 3) before anything runs
   or is written; part of the period puts a banner on every page and the index
   (``run.coverage`` in metrics.json).
3. **Execute** every notebook × language with papermill in a thread pool
   (``--jobs``, default = cores), env ``WORKBENCH_REPORT=1``, parameters
   ``data``, ``period`` (resolved label), ``lang``, ``metrics_path`` and the
   ``--param`` values. Each papermill runs in a child process: ``timeout``
   bounds the whole notebook (kernel start included); on expiry the child and
   its kernel are killed and the notebook fails with status ``timeout``.
4. **Export** each executed notebook to HTML through the ``workbench_report``
   nbconvert template (extends ``lab``): no code, no parameters, no prompts,
   no stderr, no tracebacks, no widget state; a header (report name, period,
   data source, generated time), an executive summary of the recorded
   headline findings, a table of contents from the ``<h2>`` headings, the
   output, and a footnote with the validation exclusions (counts only).
   :func:`workbench.privacy.assert_no_pii` checks the page and the metrics
   before anything is written; a leak fails that report.
5. **Publish** atomically (temp file + rename)::

       reports/index.html                      every period and report, headline numbers, change
       reports/<period>/metrics.json           run metadata + every notebook's metrics and findings
       reports/<period>/<lang>/<name>.html     manager HTML
       reports/<period>/<lang>/<name>.metrics.json  that page's status, metrics and findings
       reports/_analyst/<period>/<lang>/<name>.ipynb         executed notebooks (may hold
       reports/_analyst/<period>/<lang>/<name>.FAILED.ipynb  customer-level data; not for managers)

   Each page's record is written as soon as it finishes; ``metrics.json`` and the index are
   rebuilt from all records, so a truncated ``metrics.json`` or a stray ``{}`` in another
   period never drops reports or crashes the run.
   A failing notebook never replaces the last good HTML or its metrics; its
   executed notebook is kept as ``<name>.FAILED.ipynb`` and the failure is
   shown in the index and the exit code (:attr:`PackResult.exit_code`).
   Re-running a period replaces that period's files in place (idempotent).

Run integrity
-------------
A run locks its output folder (:func:`output_lock`): a second run on the same folder raises
:class:`OutputLocked` (CLI exit 2) or, with ``wait=True`` / ``--wait``, queues. Notebook children
die with the run even on ``kill -9`` (parent-death signal; their kernels follow), and work files
of an interrupted run are removed by the next one (:func:`clean_stale_work_files`). All notebooks
and languages of a run share one pseudonymisation key (``WORKBENCH_PSEUDONYM_KEY``, else one
generated for the run, with a warning; recorded as ``run.pseudonym_key_source``) and a fixed
``PYTHONHASHSEED``, so the en and zh copies show the same pseudonyms and bootstrap intervals.

plotly.js
---------
Folder mode (the default, ``plotly_js="folder"``): one ``plotly.min.js`` per period folder
(``reports/<period>/plotly.min.js``, 4.82 MB), referenced as ``../plotly.min.js`` by the pages of
every language (45-180 kB each). ``plotly_js="inline"`` (``--inline``, env
``WORKBENCH_PLOTLY_JS=inline``) embeds plotly.js in every page (about 5 MB each), so a single page
survives being e-mailed or copied alone. Sizes: docs/report-pack.md.

Pack summary, appendix, PDF
---------------------------
``index.html`` / ``index.zh.html`` summarise the latest period in one language each: KPI tiles
(:mod:`workbench.summary`, judged against ``[targets]``), each report's headline findings with
their action and a collapsed "how computed" note, links to the pages and the earlier periods.
Report pages move every ``.wb-appendix`` block into one collapsed appendix with a glossary
(:func:`split_appendix`, :func:`appendix_html`). ``--pdf`` prints each page and one ``pack.pdf``
per language (:func:`write_pack_pdf`) with headless Chromium.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import datetime as dt
import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from workbench import __version__
from workbench.coverage import NoDataInPeriod, banner_lines, check_dataset
from workbench.i18n import LANGS, fmt_datetime, fmt_int
from workbench.i18n import has as has_text
from workbench.i18n import t as translate
from workbench.metrics import write_json_atomic
from workbench.periods import Period, parse_period
from workbench.summary import target_statuses, unknown_target_keys

log = logging.getLogger("workbench.reports")

NOTEBOOK_RE = re.compile(r"^(\d{2})_([A-Za-z0-9][A-Za-z0-9_]*)\.ipynb$")
RESERVED_PARAMS = ("data", "period", "lang", "metrics_path")
TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE_NAME = "workbench_report"
DEFAULT_NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
ANALYST_DIR = "_analyst"
PLOTLY_PLACEHOLDER = "<!--WB-PLOTLY-JS-->"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
KEPT_MIME = ("text/html", "image/png", "image/svg+xml", "image/jpeg")


class ReportInputError(ValueError):
    """Bad input to the report pipeline (unknown notebook or parameter, bad value, bad option)."""


# ------------------------------------------------------------------ notebooks and parameters
@dataclass(frozen=True)
class Parameter:
    """One entry of a notebook's ``parameters`` cell: name, type and default (as written)."""

    name: str
    type: str
    default: str

    def coerce(self, raw: str) -> Any:
        """Convert a ``--param`` string to this parameter's type; raise ReportInputError if it does not fit."""
        return coerce_value(self.name, self.type, raw)


@dataclass(frozen=True)
class ReportNotebook:
    """A report notebook ``NN_name.ipynb`` found in the notebooks folder."""

    name: str
    slug: str
    path: Path
    parameters: tuple[Parameter, ...] = ()

    def title(self, lang: str) -> str:
        """Report title from ``reports.titles.<slug>``; a humanised name when there is no key."""
        return report_title(self.slug, lang)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def __repr__(self) -> str:
        return f"<ReportNotebook {self.name}: {', '.join(p.name for p in self.parameters)}>"


def report_title(slug: str, lang: str) -> str:
    key = f"reports.titles.{slug}"
    if has_text(key):
        return translate(key, lang)
    return slug.replace("_", " ").strip().capitalize()


def _literal_type(default: str) -> str:
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return "str"
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", (list, tuple)),
                        ("dict", dict)):
        if isinstance(value, types):
            return kind
    return "str" if value is None else type(value).__name__


def notebook_parameters(path: Path) -> tuple[Parameter, ...]:
    """Parameters of a notebook's ``parameters`` cell, typed from their default literals."""
    import papermill

    found = papermill.inspect_notebook(str(path))
    out = []
    for name, info in found.items():
        declared = str(info.get("inferred_type_name") or "None")
        kind = declared if declared in ("bool", "int", "float", "str", "list", "dict") else \
            _literal_type(str(info.get("default", "")))
        out.append(Parameter(name, kind, str(info.get("default", ""))))
    return tuple(out)


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def coerce_value(name: str, kind: str, raw: str) -> Any:
    """Type ``raw`` like the parameter ``name`` of type ``kind``."""
    text = raw.strip()
    try:
        if kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError("expected true/false")
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind in ("list", "dict"):
            value = _parse_literal(text) if text[:1] in "[{(" else [v.strip() for v in text.split(",") if v.strip()]
            if kind == "dict" and not isinstance(value, dict) or kind == "list" and not isinstance(value, list | tuple):
                raise ValueError(f"expected a {kind}")
            return list(value) if kind == "list" else value
        return raw
    except ValueError as exc:
        raise ReportInputError(f"parameter {name!r} expects {kind}, got {raw!r} ({exc})") from None


def _parse_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(str(exc)) from None


def discover_notebooks(folder: Path | str | None = None) -> list[ReportNotebook]:
    """Every ``NN_name.ipynb`` in ``folder`` (default: the project's ``notebooks/``), in NN order."""
    root = Path(folder) if folder is not None else DEFAULT_NOTEBOOKS_DIR
    if not root.is_dir():
        raise ReportInputError(f"notebook folder {root} does not exist")
    found = []
    for path in sorted(root.iterdir()):
        m = NOTEBOOK_RE.match(path.name)
        if m and path.is_file():
            found.append(ReportNotebook(path.stem, m[2], path.resolve(), notebook_parameters(path)))
    return found


def select_notebooks(notebooks: Sequence[ReportNotebook], only: Iterable[str]) -> list[ReportNotebook]:
    """Keep the notebooks named in ``only`` (``NN_name``, ``name`` or the file name); all if empty."""
    wanted = [w.strip().removesuffix(".ipynb") for w in only if w and w.strip()]
    if not wanted:
        return list(notebooks)
    chosen = []
    for w in wanted:
        match = [nb for nb in notebooks if w in (nb.name, nb.slug)]
        if not match:
            names = ", ".join(nb.name for nb in notebooks) or "none"
            raise ReportInputError(f"no report notebook named {w!r}; available: {names}")
        chosen += [nb for nb in match if nb not in chosen]
    return sorted(chosen, key=lambda nb: nb.name)


def parse_params(params: Sequence[str] | Mapping[str, Any], notebooks: Sequence[ReportNotebook]
                 ) -> dict[str, dict[str, Any]]:
    """Type ``--param key=value`` values per notebook from its parameters cell.

    A parameter goes to every selected notebook that declares it. Unknown
    names, reserved names (``data``, ``period``, ``lang``, ``metrics_path`` —
    use the options) and values that do not fit the declared type raise
    :class:`ReportInputError`.
    """
    pairs: list[tuple[str, Any]] = []
    if isinstance(params, Mapping):
        pairs = [(str(k), v) for k, v in params.items()]
    else:
        for item in params:
            if "=" not in item:
                raise ReportInputError(f"--param {item!r} must be key=value")
            key, value = item.split("=", 1)
            pairs.append((key.strip(), value))
    out: dict[str, dict[str, Any]] = {nb.name: {} for nb in notebooks}
    for key, value in pairs:
        if key in RESERVED_PARAMS:
            raise ReportInputError(f"parameter {key!r} is set by the pipeline; use the --{key.replace('_', '-')} "
                                   "option instead" if key != "metrics_path" else
                                   "parameter 'metrics_path' is set by the pipeline")
        takers = [nb for nb in notebooks if nb.parameter(key)]
        if not takers:
            known = sorted({p.name for nb in notebooks for p in nb.parameters} - set(RESERVED_PARAMS))
            raise ReportInputError(f"unknown parameter {key!r}; the selected notebooks accept: "
                                   f"{', '.join(known) or 'none'}")
        for nb in takers:
            spec = nb.parameter(key)
            out[nb.name][key] = spec.coerce(value) if isinstance(value, str) else value
    return out


def resolve_period(text: str | Period, today: dt.date | None = None) -> Period:
    """The report period; ``last-month`` / ``last-quarter`` count from ``today`` (the system date, as cron)."""
    return parse_period(text, today=today)


def parse_langs(lang: str | Sequence[str]) -> tuple[str, ...]:
    """``en``, ``zh`` or ``both`` → languages to render."""
    items = [lang] if isinstance(lang, str) else list(lang)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            for code in (LANGS if part == "both" else (part,)):
                if code not in LANGS:
                    raise ReportInputError(f"--lang must be en, zh or both, not {part!r}")
                if code not in out:
                    out.append(code)
    return tuple(out)


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class NotebookResult:
    """Outcome of one notebook in one language."""

    name: str
    lang: str
    status: str  # ok | failed | timeout | pii
    seconds: float
    html: Path | None = None
    executed: Path | None = None
    error: str = ""
    stages: tuple[tuple[str, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __repr__(self) -> str:
        extra = f": {self.error}" if self.error else ""
        return f"<NotebookResult {self.name} [{self.lang}] {self.status} in {self.seconds:.1f}s{extra}>"


@dataclass(frozen=True)
class PackResult:
    """Outcome of a report-pack run; ``exit_code`` is the CLI's (0 all good, 1 some notebook failed)."""

    period: Period
    out: Path
    results: tuple[NotebookResult, ...]
    metrics_path: Path
    index_path: Path
    load_seconds: float = 0.0
    seconds: float = 0.0
    coverage: Mapping[str, Any] = field(default_factory=dict)  # workbench.coverage.Coverage.to_dict()

    def coverage_lines(self, lang: str = "en") -> list[str]:
        """The coverage banner of this run (empty when the data covers the whole period)."""
        return banner_lines(self.coverage, lang)

    @property
    def failed(self) -> tuple[NotebookResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or not self.results else 0

    def __repr__(self) -> str:
        return (f"<PackResult {self.period.label}: {len(self.results) - len(self.failed)}/{len(self.results)} ok, "
                f"exit {self.exit_code}, {self.seconds:.1f}s>")


@dataclass
class _RunContext:
    """Everything a worker needs for one run (shared, read-only)."""

    data: Path
    period: Period
    out: Path
    timeout: int
    pdf: bool
    plotly_js: str
    source: str
    dataset_name: str
    exclusions: list[dict[str, Any]] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)  # workbench.coverage.Coverage.to_dict()
    env: dict[str, str] = field(default_factory=dict)  # for every notebook child (pseudonym key, hash seed)


# ------------------------------------------------------------------ file helpers
def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _umask_mode()  # mkstemp creates 0600; published files follow the umask like any other file


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and rename (readable per umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plotly_js_source() -> str:
    """The plotly.js bundle shipped with the plotly package (read once)."""
    return _plotly_js()


_PLOTLY_CACHE: dict[str, str] = {}


def _plotly_js() -> str:
    if "js" not in _PLOTLY_CACHE:
        import plotly

        path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        _PLOTLY_CACHE["js"] = path.read_text(encoding="utf-8")
    return _PLOTLY_CACHE["js"]


# ------------------------------------------------------------------ notebook → HTML
_H2 = re.compile(r'<h2 class="wb-heading">(.*?)</h2>', re.S)


def clean_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[tuple[str, str]]]:
    """Strip what managers must not see and collect the table of contents.

    Removes parameters / injected-parameters cells, markdown and raw cells,
    stream output (stdout/stderr, warnings), errors (tracebacks), bare cell
    results (a cell's last expression, e.g. an accidental DataFrame — reports
    show only what ``workbench.viz`` displays), widget views and widget-state
    metadata. Level-2 headings
    emitted by :func:`workbench.viz.heading` get anchors.

    Returns
    -------
    (notebook, toc)
        The cleaned copy and ``[(anchor, escaped heading text), ...]``.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    toc: list[tuple[str, str]] = []
    cells = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type != "code" or tags & {"parameters", "injected-parameters", "remove"}:
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.output_type != "display_data":
                continue  # stream (stdout, stderr, warnings), error (traceback), bare cell results

            data = out.get("data", {})
            if WIDGET_MIME in data:
                continue  # the static chart above stands where the widget was
            kept = {k: v for k, v in data.items() if k in KEPT_MIME}
            if not kept:
                continue
            if "text/html" in kept:
                kept["text/html"] = _anchor_headings("".join(kept["text/html"]), toc)
            out["data"] = kept
            out["metadata"] = {}
            outputs.append(out)
        cell.outputs = outputs
        cell.source = ""
        cell.execution_count = None
        cell.metadata = {}
        if outputs:
            cells.append(cell)
    nb.cells = cells
    return nb, toc


_APPENDIX_BLOCK = re.compile(r'^\s*<div class="[^"]*\bwb-appendix\b')
_ANCHORED_H2 = re.compile(r'<h2 class="wb-heading" id="[^"]*">(.*?)</h2>', re.S)


def split_appendix(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[tuple[str, list[str]]]]:
    """Take every ``.wb-appendix`` output (model diagnostics, parameter tables, customer lists, term
    tables: ``appendix=True`` in :mod:`workbench.results`) out of a cleaned notebook.

    Returns
    -------
    (notebook, groups)
        The notebook without them, and ``[(section heading HTML, [block HTML, ...]), ...]`` in page order.
    """
    groups: list[tuple[str, list[str]]] = []
    section = ""
    cells = []
    for cell in nb.cells:
        kept = []
        for out in cell.outputs:
            text = "".join(out.get("data", {}).get("text/html", ""))
            for m in _ANCHORED_H2.finditer(text):
                section = m[1]
            if text and _APPENDIX_BLOCK.match(text):
                if not groups or groups[-1][0] != section:
                    groups.append((section, []))
                groups[-1][1].append(text)
            else:
                kept.append(out)
        cell.outputs = kept
        if kept:
            cells.append(cell)
    nb.cells = cells
    return nb, groups


def glossary(lang: str) -> list[tuple[str, str]]:
    """``[(term, explanation), ...]`` from ``translations/glossary.toml`` in file order."""
    from workbench.i18n import table

    ids = list(dict.fromkeys(k.split(".")[1] for k in table() if k.startswith("glossary.")))
    return [(translate(f"glossary.{i}.term", lang), translate(f"glossary.{i}.text", lang)) for i in ids]


def appendix_html(groups: Sequence[tuple[str, Sequence[str]]], lang: str) -> str:
    """One collapsed ``<details>`` at the end of the page: the appendix blocks under their section
    headings, then the glossary (opened for print by the page's script and by :func:`write_pdf`)."""
    parts = [f'<details class="wb-appendix-box" id="appendix"><summary><h2 class="wb-appendix-title">'
             f'{html.escape(translate("reports.appendix", lang))}</h2></summary>']
    if groups:
        parts.append(f'<p class="wb-note">{html.escape(translate("reports.appendix_intro", lang))}</p>')
    for section, blocks in groups:
        if section:
            parts.append(f'<h3 class="wb-appendix-section">{section}</h3>')
        parts.extend(blocks)
    terms = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in glossary(lang))
    parts.append(f'<div class="wb-glossary-block"><h3 class="wb-appendix-section">'
                 f'{html.escape(translate("reports.glossary", lang))}</h3><dl class="wb-glossary">{terms}</dl></div>'
                 "</details>")
    return "".join(parts)


_GLOSSARY_BLOCK = re.compile(r'<div class="wb-glossary-block">.*?</dl></div>', re.S)
_EMPTY_APPENDIX = re.compile(r'<details class="wb-appendix-box" id="appendix"><summary>((?!</summary>).)*</summary>'
                             r"</details>", re.S)
# a cell holding one token (a number, date, code, amount: no spaces, no Chinese) must not wrap
_ONE_TOKEN_CELL = re.compile(r"<td>([^\s<\u3000-\u9fff\uff00-\uffef]{1,60})</td>")


def keep_tokens_whole(page: str) -> str:
    """Mark table cells holding a single token (``2024-11-01``, ``¥1,234``, ``12.5%``) ``wb-nw``
    (no wrapping): browsers may otherwise break them at a hyphen or slash."""
    return _ONE_TOKEN_CELL.sub(r'<td class="wb-nw">\1</td>', page)


def _anchor_headings(text: str, toc: list[tuple[str, str]]) -> str:
    def repl(m: re.Match[str]) -> str:
        anchor = f"sec-{len(toc) + 1}"
        toc.append((anchor, m[1]))
        return f'<h2 class="wb-heading" id="{anchor}">{m[1]}</h2>'

    return _H2.sub(repl, text)


def summary_findings(findings: Sequence[Mapping[str, Any]], low: int = 3, high: int = 5) -> list[Mapping[str, Any]]:
    """The executive summary: headline findings first, topped up to ``low`` with others, at most ``high``."""
    heads = [f for f in findings if f.get("headline")]
    rest = [f for f in findings if not f.get("headline")]
    picked = heads[:high]
    if len(picked) < low:
        picked += rest[: low - len(picked)]
    return picked


def _exclusion_lines(exclusions: Sequence[Mapping[str, Any]], lang: str) -> list[str]:
    lines = []
    for row in exclusions:
        table = translate(f"core.tables.{row['table']}", lang) if has_text(f"core.tables.{row['table']}") \
            else row["table"]
        rule = translate(f"overview.rules.{row['rule']}", lang) if has_text(f"overview.rules.{row['rule']}") \
            else row["rule"]
        action = translate(f"overview.actions.{row['action']}", lang) \
            if has_text(f"overview.actions.{row['action']}") else str(row.get("action") or "")
        column = f" ({row['column']})" if row.get("column") else ""
        lines.append(translate("reports.footnote.line", lang, table=table, rule=rule, column=column,
                               n=fmt_int(row["count"], lang), action=action))
    return lines


def _css() -> str:
    return (TEMPLATE_DIR / TEMPLATE_NAME / "report.css").read_text(encoding="utf-8")


def render_html(nb: nbformat.NotebookNode, *, title: str, period: Period, lang: str, source: str,
                generated: dt.datetime, findings: Sequence[Mapping[str, Any]],
                exclusions: Sequence[Mapping[str, Any]], notes: Sequence[str] = (),
                banner: Sequence[str] = (), sections: Mapping[str, int] | None = None) -> str:
    """Export an executed notebook to manager HTML (plotly.js left as a placeholder).

    Parameters
    ----------
    nb : NotebookNode
        The executed notebook.
    title, period, lang, source, generated
        Header contents.
    findings : sequence of dict
        Recorded findings ({key, text, value, headline}); 3–5 make the summary.
    exclusions : sequence of dict
        Validation exclusions (table, rule, column, count, action) for the footnote.
    banner : sequence of str
        Coverage lines (:func:`workbench.coverage.banner_lines`) shown above the summary.
    sections : mapping, optional
        ``{"shown": n, "skipped": m}`` as recorded by the notebook; when no section could run, the
        summary says so in one line instead of leaving the reader to find it in every section.

    Returns
    -------
    str
        The page with :data:`PLOTLY_PLACEHOLDER` where plotly.js belongs (see :func:`embed_plotly`).
    """
    from nbconvert import HTMLExporter

    clean, toc = clean_notebook(nb)
    clean, appendix = split_appendix(clean)
    clean.metadata["title"] = title
    wb = {
        "title": title,
        "lang": lang,
        "css": _css(),
        "plotly_tag": PLOTLY_PLACEHOLDER,
        "period_label": translate("core.period", lang),
        "period": period.display(lang),
        "source_label": translate("core.source", lang),
        "source": source,
        "generated_label": translate("core.generated", lang),
        "generated": fmt_datetime(generated, lang),
        "summary_title": translate("reports.summary", lang),
        "summary": ([translate("reports.nothing_ran", lang, n=sections["skipped"])]
                    if sections and not sections.get("shown") and sections.get("skipped")
                    else [f["text"] for f in summary_findings(findings)]),
        "toc_title": translate("reports.toc", lang),
        "toc": toc,
        # headings such as "3. Expectation gap" already carry numbers; the list must not add more
        "toc_numbered": sum(bool(re.match(r"\s*\d+[.、]", text)) for _, text in toc) > len(toc) / 2,
        "footnote_title": translate("reports.footnote.title", lang),
        "footnote": _exclusion_lines(exclusions, lang) or [translate("reports.footnote.none", lang)],
        "footnote_intro": translate("reports.footnote.intro", lang),
        "app": translate("core.app", lang),
        "notes": list(notes),
        "banner": list(banner),
        "banner_title": translate("coverage.banner_title", lang),
        "appendix": appendix_html(appendix, lang),
    }
    exporter = HTMLExporter(
        extra_template_basedirs=[str(TEMPLATE_DIR)],
        template_name=TEMPLATE_NAME,
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        exclude_markdown=True,
        exclude_raw=True,
        exclude_anchor_links=True,
        language_code=lang,
    )
    body, _ = exporter.from_notebook_node(clean, resources={"wb": wb})
    if lang == "zh":  # nbconvert accepts ISO 639-1 only; zh-CN makes browsers pick Simplified glyphs
        body = body.replace('<html lang="zh">', '<html lang="zh-CN">', 1)
    return keep_tokens_whole(body)


#: folder mode: one plotly.min.js per period folder, shared by the pages of every language
FOLDER_PLOTLY_SRC = "../plotly.min.js"


def embed_plotly(page: str, mode: str = "inline") -> str:
    """Put plotly.js into the page: inline once or ``<period>/plotly.min.js`` referenced (``folder``)."""
    if mode == "folder":
        tag = f'<script type="text/javascript" src="{FOLDER_PLOTLY_SRC}"></script>'
    else:
        tag = f'<script type="text/javascript">{_plotly_js()}</script>'
    from workbench.viz import PLOTLY_ZH_LOCALE_JS

    tag += f'\n<script type="text/javascript">{PLOTLY_ZH_LOCALE_JS}</script>'
    return page.replace(PLOTLY_PLACEHOLDER, tag, 1)


# ------------------------------------------------------------------ execution
def _paths(ctx: _RunContext, nb: ReportNotebook, lang: str) -> dict[str, Path]:
    period_dir = ctx.out / ctx.period.label
    analyst = ctx.out / ANALYST_DIR / ctx.period.label / lang
    return {
        "html": period_dir / lang / f"{nb.name}.html",
        "pdf": period_dir / lang / f"{nb.name}.pdf",
        "analyst": analyst,
        "executed": analyst / f"{nb.name}.ipynb",
        "failed": analyst / f"{nb.name}.FAILED.ipynb",
        "metrics": analyst / f"{nb.name}.metrics.json",
    }


def _error_text(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    if ename:
        text = f"{ename}: {evalue}"
    elif isinstance(exc, NotebookFailed | NotebookTimeout):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    try:
        from workbench.privacy import mask_text

        text = mask_text(text)
    except ImportError:  # pragma: no cover - privacy module always present on main
        pass
    return text[:300]


class NotebookTimeout(RuntimeError):
    """A notebook ran longer than the per-notebook timeout and was stopped."""


class NotebookFailed(RuntimeError):
    """A notebook raised (or papermill could not run it)."""


def _notebook_error(executed: Path) -> str:
    """``Name: message`` of the first error output in an executed notebook, if any."""
    try:
        node = nbformat.read(str(executed), as_version=4)
    except Exception:  # noqa: BLE001 - a half-written notebook is no reason to fail twice
        return ""
    for cell in node.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
    return ""


def run_papermill(source: Path, output: Path, parameters: Mapping[str, Any], timeout: int,
                  env: Mapping[str, str] | None = None) -> float:
    """Execute ``source`` into ``output`` with papermill in a child process.

    The child gets ``WORKBENCH_REPORT=1`` plus ``env``; the whole notebook (kernel start
    included) must finish within ``timeout`` seconds, else the child and its
    kernel are killed. Kernel chatter on stderr is captured, not shown. The
    child dies with this process even on ``kill -9`` (:func:`_die_with_parent`;
    its kernel follows, watching its own parent).

    Raises
    ------
    NotebookTimeout, NotebookFailed
    """
    params_file = output.with_name(output.name + ".params.json")
    params_file.write_text(json.dumps(dict(parameters), ensure_ascii=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "papermill", str(source), str(output), "-f", str(params_file),
           "-k", "python3", "--cwd", str(source.parent), "--no-progress-bar", "--no-log-output",
           "--execution-timeout", str(timeout), "--start-timeout", str(min(timeout, 120))]
    child_env = dict(os.environ, **(env or {}), WORKBENCH_REPORT="1", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env,
                            start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise NotebookTimeout(f"stopped after the {timeout}s per-notebook timeout") from None
    finally:
        params_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        detail = _notebook_error(output) or next(
            (line.strip() for line in reversed(stderr.splitlines()) if line.strip()), f"exit {proc.returncode}")
        raise NotebookFailed(detail)
    return time.perf_counter() - t0


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Any:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when this process dies (``prctl
    PR_SET_PDEATHSIG``), so a ``kill -9`` of the pack leaves no papermill behind. ``None``
    (no-op) where prctl is unavailable. libc is resolved here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - non-glibc systems
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill papermill and everything in its session (the kernel), then reap it."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def execute_notebook(ctx: _RunContext, nb: ReportNotebook, lang: str, params: Mapping[str, Any]) -> NotebookResult:
    """Execute one notebook in one language and publish its HTML (see module docstring)."""
    paths = _paths(ctx, nb, lang)
    paths["analyst"].mkdir(parents=True, exist_ok=True)
    paths["metrics"].unlink(missing_ok=True)
    fd, running = tempfile.mkstemp(prefix=f".{nb.name}.", suffix=".running.ipynb", dir=paths["analyst"])
    os.close(fd)
    running_path = Path(running)
    parameters = {"data": str(ctx.data), "period": ctx.period.label, "lang": lang,
                  "metrics_path": str(paths["metrics"]), **params}
    t0 = time.perf_counter()
    stages: list[tuple[str, float]] = []
    try:
        run_papermill(nb.path, running_path, parameters, ctx.timeout, env=ctx.env)
    except (NotebookTimeout, NotebookFailed, OSError) as exc:
        _keep_failed(running_path, paths["failed"])
        status = "timeout" if isinstance(exc, NotebookTimeout) else "failed"
        return NotebookResult(nb.name, lang, status, time.perf_counter() - t0, None, paths["failed"],
                              _error_text(exc), (("execute", time.perf_counter() - t0),))
    stages.append(("execute", time.perf_counter() - t0))
    t1 = time.perf_counter()
    try:
        page, payload = _build_page(ctx, nb, lang, running_path, paths["metrics"])
    except Exception as exc:  # noqa: BLE001 - any failure to build the page fails this report only
        _keep_failed(running_path, paths["failed"])
        status = "pii" if type(exc).__name__ == "PIILeakError" else "failed"
        return NotebookResult(nb.name, lang, status, time.perf_counter() - t0, None, paths["failed"],
                              _error_text(exc), tuple(stages))
    write_text_atomic(paths["html"], page)
    if ctx.plotly_js == "folder":
        _ensure_folder_plotly(paths["html"].parent.parent)
    os.replace(running_path, paths["executed"])
    paths["failed"].unlink(missing_ok=True)
    write_json_atomic(paths["metrics"], payload)
    stages.append(("html", time.perf_counter() - t1))
    if ctx.pdf:
        t2 = time.perf_counter()
        write_pdf(paths["html"], paths["pdf"])
        stages.append(("pdf", time.perf_counter() - t2))
    return NotebookResult(nb.name, lang, "ok", time.perf_counter() - t0, paths["html"], paths["executed"], "",
                          tuple(stages))


def _keep_failed(running: Path, failed: Path) -> None:
    if running.exists() and running.stat().st_size > 0:
        os.replace(running, failed)
    else:
        running.unlink(missing_ok=True)


def _build_page(ctx: _RunContext, nb: ReportNotebook, lang: str, executed: Path,
                metrics_file: Path) -> tuple[str, dict[str, Any]]:
    from workbench.privacy import assert_no_pii

    node = nbformat.read(str(executed), as_version=4)
    payload: dict[str, Any] = {"section": nb.slug, "lang": lang, "metrics": {}, "findings": [], "notes": []}
    if metrics_file.exists():
        payload = json.loads(metrics_file.read_text(encoding="utf-8"))
    page = render_html(node, title=nb.title(lang), period=ctx.period, lang=lang,
                       source=f"{ctx.dataset_name} — {ctx.source}" if ctx.source else ctx.dataset_name,
                       generated=dt.datetime.now().replace(microsecond=0), findings=payload.get("findings", []),
                       exclusions=ctx.exclusions, notes=payload.get("notes", []),
                       banner=banner_lines(ctx.coverage, lang), sections=payload.get("sections"))
    assert_no_pii(payload)
    assert_no_pii(page)
    return embed_plotly(page, ctx.plotly_js), payload


def _ensure_folder_plotly(folder: Path) -> None:
    target = folder / "plotly.min.js"
    js = _plotly_js()
    if not target.exists() or target.stat().st_size != len(js.encode("utf-8")):
        write_text_atomic(target, js)


def find_chromium() -> str | None:
    """Path of a headless-capable Chromium, or None."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


#: the screen width the page is laid out at before printing: A4 (210 mm) less 2 × 12 mm margins at 96 dpi,
#: so charts are drawn no wider than the paper
PRINT_WIDTH_PX = 703


def print_variant(page: str) -> str:
    """The page as printed: every ``<details>`` (appendix, "how computed") open."""
    return re.sub(r"<details(?![^>]*\bopen\b)", "<details open", page)


def write_pdf(html_path: Path, pdf_path: Path, timeout: int = 180) -> bool:
    """Print ``html_path`` to A4 PDF with headless Chromium (appendix open, page numbers from the page's
    ``@page`` rules, charts drawn at the paper's width); False (and a log line) when unavailable."""
    chromium = find_chromium()
    if chromium is None:
        log.warning("--pdf: no chromium found; skipping %s", pdf_path.name)
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{pdf_path.name}.", suffix=".tmp", dir=pdf_path.parent)
    os.close(fd)
    # beside the original, so relative links (../plotly.min.js) resolve
    fd, variant = tempfile.mkstemp(prefix=f".{html_path.stem}.", suffix=".print.tmp.html", dir=html_path.parent)
    os.close(fd)
    Path(variant).write_text(print_variant(html_path.read_text(encoding="utf-8")), encoding="utf-8")
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--no-pdf-header-footer",
           f"--window-size={PRINT_WIDTH_PX},1000",
           "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000",
           f"--print-to-pdf={tmp}", Path(variant).resolve().as_uri()]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
        if Path(tmp).stat().st_size == 0:
            raise OSError("empty PDF")
        os.chmod(tmp, _MODE)
        os.replace(tmp, pdf_path)
        return True
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("--pdf failed for %s: %s", html_path.name, exc)
        Path(tmp).unlink(missing_ok=True)
        return False
    finally:
        Path(variant).unlink(missing_ok=True)


_MAIN = re.compile(r"<main>(.*)</main>", re.S)


def pack_html(out: Path, period_label: str, lang: str, plotly_js: str = "folder") -> str | None:
    """One HTML document for the whole pack of a period in ``lang``: the summary, then every report
    page (each from a new sheet), one plotly.js; None when the period has no page in ``lang``."""
    periods = [m for m in _read_periods(out)]
    latest = next((m for m in periods if m["run"]["period"] == period_label), None)
    if latest is None:
        return None
    prev = next((m for m in periods if m["run"]["period"] == latest["run"].get("previous_period")), None)
    summary = render_index([latest, *([prev] if prev else [])], lang=lang, earlier=False)
    parts = [f'<section class="wb-pack-part wb-index">{_MAIN.search(summary)[1]}</section>']
    pages = 0
    for entry in latest["notebooks"].values():
        info = (entry.get("langs") or {}).get(lang) or {}
        path = out / period_label / (info.get("html") or "")
        if not info.get("html") or not path.is_file():
            continue
        found = _MAIN.search(path.read_text(encoding="utf-8"))
        if found:
            parts.append(f'<section class="wb-pack-part">{found[1]}</section>')
            pages += 1
    if not pages:
        return None
    # the glossary once, at the end of the pack, not after every report (nor an appendix left empty)
    glossaries = [g for part in parts for g in _GLOSSARY_BLOCK.findall(part)]
    parts = [_EMPTY_APPENDIX.sub("", _GLOSSARY_BLOCK.sub("", part)) for part in parts]
    if glossaries:
        parts.append(f'<section class="wb-pack-part wb-appendix-box">{glossaries[-1]}</section>')
    css = _css() + (TEMPLATE_DIR / TEMPLATE_NAME / "index.css").read_text(encoding="utf-8") + \
        ".wb-pack-part + .wb-pack-part { break-before: page; page-break-before: always; }"
    html_lang = "zh-CN" if lang == "zh" else lang
    page = (f'<!DOCTYPE html>\n<html lang="{html_lang}"><head><meta charset="utf-8">'
            f"<title>{html.escape(translate('reports.index.title', lang))}</title>{PLOTLY_PLACEHOLDER}"
            f'<style>{css}</style></head><body class="wb-report" data-lang="{lang}"><main>{"".join(parts)}'
            "</main></body></html>\n")
    return print_variant(embed_plotly(page, plotly_js))


def write_pack_pdf(out: Path, period_label: str, lang: str, plotly_js: str = "folder") -> Path | None:
    """``<out>/<period>/<lang>/pack.pdf``: the summary and every report of the period in one PDF."""
    page = pack_html(out, period_label, lang, plotly_js)
    if page is None:
        return None
    folder = out / period_label / lang
    fd, tmp = tempfile.mkstemp(prefix=".pack.", suffix=".tmp.html", dir=folder)
    os.close(fd)
    try:
        Path(tmp).write_text(page, encoding="utf-8")
        target = folder / "pack.pdf"
        return target if write_pdf(Path(tmp), target) else None
    finally:
        Path(tmp).unlink(missing_ok=True)


# ------------------------------------------------------------------ run integrity (issue 12, items 3, 7, 8)
LOCK_NAME = ".workbench-reports.lock"
#: Each page's metrics and status, written beside the page (``<period>/<lang>/<name>.metrics.json``).
PAGE_RECORD_SUFFIX = ".metrics.json"
_STALE = re.compile(r"^\..+\.running\.ipynb(?:\.params\.json)?$|^\..+\.tmp(?:\.html)?$|^\..+\.json\.[a-z0-9_]{8}$")


class OutputLocked(ReportInputError):
    """Another report run is writing to the same output folder."""


@contextlib.contextmanager
def output_lock(out: Path, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the output folder for a run (``flock`` on ``<out>/.workbench-reports.lock``).

    The operating system drops the lock when the holder exits, even on ``kill -9``, so a lock
    never outlives its run. With ``wait`` a second run queues; without it it raises
    :class:`OutputLocked` naming the holder (the CLI exits 2).
    """
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8", errors="replace").strip() or "unknown process"
            if not wait:
                raise OutputLocked(f"another report run ({holder}) is writing to {out}; wait for it to finish "
                                   "or pass --wait to start when it is done") from None
            print(f"[workbench reports] waiting for another report run ({holder}) writing to {out}",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {dt.datetime.now().replace(microsecond=0).isoformat(' ')}"
                 .encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def clean_stale_work_files(out: Path) -> int:
    """Remove work files an interrupted run left (``.*.running.ipynb``, their params, temp files).

    Call only with the output lock held: then no other run is using them. Returns the count.
    """
    removed = 0
    for path in out.rglob(".*") if out.is_dir() else []:
        if path.is_file() and _STALE.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _run_key_env() -> tuple[dict[str, str], str]:
    """Environment for every notebook child of a run: one pseudonymisation key (so en and zh show the
    same pseudonyms) and a fixed hash seed (so set/dict iteration orders do not differ between them)."""
    from workbench.privacy import PSEUDONYM_ENV_VAR, PSEUDONYM_SOURCE_ENV_VAR, run_pseudonym_key

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shown on the progress output instead
        key, source = run_pseudonym_key()
    return {PSEUDONYM_ENV_VAR: key, PSEUDONYM_SOURCE_ENV_VAR: source, "PYTHONHASHSEED": "0"}, source


def _masked_info(info: dict[str, Any]) -> dict[str, Any]:
    """Dataset name, source and exclusion labels with personal data masked (they reach every page)."""
    from workbench.privacy import mask_label, mask_labels

    return {**info, "name": mask_label(str(info["name"])), "source": mask_label(str(info["source"])),
            "exclusions": mask_labels(info["exclusions"])}


def _run_info(ctx: _RunContext, info: Mapping[str, Any]) -> dict[str, Any]:
    """Run facts stored with each page record, so a period's metrics can be rebuilt from its pages alone."""
    p = ctx.period
    return {
        "period": p.label, "period_kind": p.kind, "period_start": p.start.isoformat(),
        "period_end": p.end.isoformat(), "period_display": {code: p.display(code) for code in LANGS},
        "previous_period": p.previous().label, "data_source": ctx.source, "dataset": info["name"],
        "rows": info["rows"], "excluded_rows": info["excluded_rows"], "exclusions": info["exclusions"],
        "validation_ok": info["validation_ok"], "package_version": __version__, "plotly_js": ctx.plotly_js,
        "pseudonym_key_source": info.get("pseudonym_key_source", ""), "coverage": ctx.coverage,
        "currency": info.get("currency", "CNY"), "targets": info.get("targets", {}),
        "finished": dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
    }


def _read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is missing, truncated or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _valid_period_metrics(m: Any) -> bool:
    return (isinstance(m, dict) and isinstance(m.get("run"), dict) and bool(m["run"].get("period"))
            and isinstance(m.get("notebooks"), dict))


def _valid_record(r: Any) -> bool:
    return (isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("lang"), str)
            and isinstance(r.get("status"), str))


def write_page_record(ctx: _RunContext, nb: ReportNotebook, res: NotebookResult, run_info: Mapping[str, Any]
                      ) -> Path:
    """Write one page's status and metrics beside it, atomically (``<period>/<lang>/<name>.metrics.json``).

    A failed page keeps the metrics, findings and notes of its last success.
    """
    from workbench.privacy import assert_no_pii

    folder = ctx.out / ctx.period.label / res.lang
    path = folder / f"{nb.name}{PAGE_RECORD_SUFFIX}"
    prev = _read_json(path)
    prev = prev if _valid_record(prev) else {}
    finished = run_info["finished"]
    record: dict[str, Any] = {
        "name": nb.name, "lang": res.lang, "slug": nb.slug, "title": {code: nb.title(code) for code in LANGS},
        "status": res.status, "seconds": round(res.seconds, 3), "error": res.error,
        "html": f"{res.lang}/{nb.name}.html" if (folder / f"{nb.name}.html").exists() else None,
        "executed": str(res.executed.relative_to(ctx.out)) if res.executed else None,
        "finished": finished, "run": dict(run_info),
    }
    if res.ok:
        payload = _read_json(_paths(ctx, nb, res.lang)["metrics"])
        payload = payload if isinstance(payload, dict) else {}
        record.update(section=payload.get("section", nb.slug), metrics=payload.get("metrics", {}),
                      findings=payload.get("findings", []), notes=payload.get("notes", []),
                      kpis=payload.get("kpis", []), last_success=finished)
    else:
        record.update({k: prev[k] for k in ("section", "metrics", "findings", "notes", "kpis", "last_success")
                       if k in prev})
    assert_no_pii(record)
    write_json_atomic(path, record)
    os.chmod(path, _MODE)
    return path


def build_period_metrics(folder: Path, run_meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A period's ``metrics.json`` rebuilt from the page records in ``folder`` (``<lang>/<name>.metrics.json``).

    Entries of a readable older ``metrics.json`` without page records are kept (folders written
    before page records existed); a truncated or empty ``metrics.json`` and unreadable records are
    skipped, never fatal. ``run`` is ``run_meta`` (this run) or the latest record's run facts.
    """
    legacy = _read_json(folder / "metrics.json")
    entries: dict[str, dict[str, Any]] = {}
    run: dict[str, Any] = {}
    if _valid_period_metrics(legacy):
        entries = {k: dict(v) for k, v in legacy["notebooks"].items() if isinstance(v, dict)}
        run = dict(legacy["run"])
    records = []
    for path in sorted(folder.glob(f"*/*{PAGE_RECORD_SUFFIX}")):
        rec = _read_json(path)
        if _valid_record(rec):
            records.append(rec)
        else:
            log.warning("ignoring unreadable page record %s", path)
    for rec in records:
        entry = entries.setdefault(rec["name"], {})
        entry["title"] = rec.get("title") or entry.get("title") or {}
        entry["slug"] = rec.get("slug") or entry.get("slug") or rec["name"]
        langs, findings, notes, kpis = (dict(entry.get(k) or {}) for k in ("langs", "findings", "notes", "kpis"))
        lang_info = {k: rec.get(k) for k in ("status", "seconds", "error", "html", "executed", "finished")}
        if rec.get("last_success"):
            lang_info["last_success"] = rec["last_success"]
            findings[rec["lang"]] = rec.get("findings", [])
            notes[rec["lang"]] = rec.get("notes", [])
            kpis[rec["lang"]] = rec.get("kpis", [])
        langs[rec["lang"]] = lang_info
        entry.update(langs=langs, findings=findings, notes=notes, kpis=kpis)
    order = {code: i for i, code in enumerate(LANGS)}
    for name, entry in entries.items():
        good = [r for r in records if r["name"] == name and r.get("last_success")]
        if good:
            best = max(good, key=lambda r: (str(r["last_success"]), -order.get(r["lang"], 99)))
            entry["section"] = best.get("section") or entry.get("slug", name)
            entry["metrics"] = best.get("metrics", {})
            entry["last_success"] = best["last_success"]
        entry.setdefault("section", entry.get("slug", name))
        entry.setdefault("metrics", {})
        langs = entry.get("langs") or {}
        entry["status"] = "ok" if langs and all(v.get("status") == "ok" for v in langs.values()) else "failed"
    if run_meta:
        run = dict(run_meta)
    elif records:
        latest = max(records, key=lambda r: str(r.get("finished", "")))
        run = dict(latest.get("run") or {}) or run
    notebooks = dict(sorted(entries.items()))
    return {
        "run": run,
        "notebooks": notebooks,
        "sections": {e.get("section", k): e.get("metrics", {}) for k, e in sorted(entries.items())},
        "targets": target_statuses(notebooks, run.get("targets") or {}),
    }


# ------------------------------------------------------------------ progress
class _Progress:
    """A rich progress bar on a terminal, plain log lines otherwise."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.rich = sys.stderr.isatty() if enabled is None else enabled
        self._progress = None
        if self.rich:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(TextColumn("[bold]reports"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("{task.description}"),
                                      console=Console(stderr=True))
            self._task = self._progress.add_task("", total=total)

    def __enter__(self) -> _Progress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def line(self, text: str) -> None:
        if self._progress:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(f"[workbench reports] {text}", file=sys.stderr, flush=True)

    def started(self, name: str, lang: str) -> None:
        if not self._progress:
            self.line(f"start {name} [{lang}]")

    def finished(self, result: NotebookResult) -> None:
        with self.lock:
            self.done += 1
            mark = "ok" if result.ok else result.status.upper()
            extra = f" — {result.error}" if result.error else ""
            self.line(f"{self.done}/{self.total} {result.name} [{result.lang}] {mark} in {result.seconds:.1f}s{extra}")
            if self._progress:
                from rich.markup import escape

                # "[en]" would be read as markup and vanish
                self._progress.update(self._task, advance=1, description=escape(f"{result.name} [{result.lang}]"))


# ------------------------------------------------------------------ the pack
def _load_once(data: Path) -> tuple[dict[str, Any], float]:
    from workbench.coverage import EmptyDataset
    from workbench.engine import DataError, open_dataset

    t0 = time.perf_counter()
    try:
        ds = open_dataset(data)
    except DataError as exc:
        tables = exc.report.tables.values() if exc.report else ()
        if tables and all(t.loaded_rows == 0 and not t.skipped for t in tables):
            raise EmptyDataset(f"{data.name}: every table is empty (header only): no period has data") from None
        raise
    try:
        report = ds.validation
        info = {
            "name": ds.name,
            "source": ds.source,
            "rows": {k: v.loaded_rows for k, v in report.tables.items()},
            "excluded_rows": {k: v.excluded_rows + v.filtered_rows for k, v in report.tables.items()},
            "exclusions": report.exclusions().to_dict(orient="records"),
            "validation_ok": report.ok,
            "currency": ds.config.currency,
            "targets": {k: v.to_dict() for k, v in ds.config.targets.items()},
        }
        info = _masked_info(info)
    finally:
        ds.close()
    return info, time.perf_counter() - t0


def run_pack(data: Path | str, period: str | Period, only: Sequence[str] = (), lang: str = "both",
             out: Path | str = Path("reports"), params: Sequence[str] | Mapping[str, Any] = (),
             jobs: int | None = None, timeout: int = 1800, pdf: bool = False,
             notebooks_dir: Path | str | None = None, *, plotly_js: str | None = None,
             today: dt.date | None = None, progress: bool | None = None, wait: bool = False) -> PackResult:
    """Run the report pack for one period; see the module docstring.

    Parameters
    ----------
    data : path
        Dataset folder or ``workbench.toml``.
    period : str
        ``2026-10``, ``2026Q3``, ``YYYY-MM-DD:YYYY-MM-DD``, ``last-month``, ``last-quarter``
        (relative forms use ``today``, default the system date).
    only : sequence of str
        Notebook names to run (``NN_name`` or ``name``); all when empty.
    lang : str
        ``en``, ``zh`` or ``both``.
    out : path
        Output root (``reports/``).
    params : sequence of ``key=value`` or mapping
        Notebook parameters, typed from each notebook's parameters cell.
    jobs : int, optional
        Notebooks executed in parallel (default: CPU count).
    timeout : int
        Seconds allowed per notebook (the whole run of one notebook in one language).
    pdf : bool
        Also print each report to PDF with headless Chromium when installed.
    notebooks_dir : path, optional
        Notebook folder (default: the project's ``notebooks/``).
    plotly_js : {"inline", "folder"}, optional
        Embed plotly.js in every file (default; env ``WORKBENCH_PLOTLY_JS``) or once per folder.
    progress : bool, optional
        Force the rich progress display on/off (default: on when stderr is a terminal).
    wait : bool, default False
        When another run holds the output folder's lock: wait for it (True) or raise
        :class:`OutputLocked` (False; the CLI exits 2).

    Raises
    ------
    ReportInputError
        Unknown notebook or parameter, bad value or option — before anything runs.
    OutputLocked
        Another run is writing to ``out`` (and ``wait`` is False).
    """
    started = dt.datetime.now().astimezone().replace(microsecond=0)
    t_start = time.perf_counter()
    langs = parse_langs(lang)
    mode = (plotly_js or os.environ.get("WORKBENCH_PLOTLY_JS") or "folder").lower()
    if mode not in ("inline", "folder"):
        raise ReportInputError(f"plotly_js must be 'inline' or 'folder', not {mode!r}")
    if jobs is not None and int(jobs) < 1:
        raise ReportInputError("--jobs must be at least 1")
    if timeout is not None and int(timeout) < 1:
        raise ReportInputError("--timeout must be at least 1 second")
    the_period = resolve_period(period, today=today)
    notebooks = select_notebooks(discover_notebooks(notebooks_dir), only)
    if not notebooks:
        raise ReportInputError(f"no report notebooks (NN_name.ipynb) in {notebooks_dir or DEFAULT_NOTEBOOKS_DIR}")
    typed = parse_params(params, notebooks)
    check_date_params(typed)
    data_path = Path(data).expanduser().resolve()
    if not data_path.exists():
        raise FileNotFoundError(f"dataset not found: {data_path}")
    out_root = Path(out).expanduser().resolve()
    info, load_seconds = _load_once(data_path)
    coverage = check_coverage(data_path, the_period)  # no data → NoDataInPeriod before anything is written
    with output_lock(out_root, wait=wait):
        return _run_locked(data_path, the_period, notebooks, langs, out_root, typed, jobs, timeout, pdf, mode,
                           progress, started, t_start, info, load_seconds, coverage)


def _run_locked(data_path: Path, the_period: Period, notebooks: Sequence[ReportNotebook], langs: Sequence[str],
                out_root: Path, typed: Mapping[str, dict[str, Any]], jobs: int | None, timeout: int, pdf: bool,
                mode: str, progress: bool | None, started: dt.datetime, t_start: float, info: dict[str, Any],
                load_seconds: float, coverage: dict[str, Any]) -> PackResult:
    """The pack run proper, with the output folder locked."""
    cleaned = clean_stale_work_files(out_root)
    key_env, key_source = _run_key_env()
    info["pseudonym_key_source"] = key_source
    ctx = _RunContext(data=data_path, period=the_period, out=out_root, timeout=int(timeout), pdf=pdf,
                      plotly_js=mode, source=info["source"], dataset_name=info["name"],
                      exclusions=info["exclusions"], env=key_env,
                      coverage=coverage)
    tasks = [(nb, code) for nb in notebooks for code in langs]
    workers = max(1, min(int(jobs or os.cpu_count() or 1), len(tasks)))
    results: list[NotebookResult] = []
    with _Progress(len(tasks), progress) as bar:
        bar.line(f"{len(notebooks)} notebook(s) × {len(langs)} language(s) for {the_period.label}; "
                 f"dataset loaded in {load_seconds:.1f}s; {workers} job(s)")
        if cleaned:
            bar.line(f"removed {cleaned} work file(s) left by an interrupted run")
        for key in unknown_target_keys(info.get("targets", {})):
            bar.line(f"warning: [targets].{key} is not a KPI any report records; the summary shows no tile for it")
        if key_source != "env":
            bar.line("warning: WORKBENCH_PSEUDONYM_KEY is not set; pseudonyms use a key generated for this run "
                     "(the same in every notebook and language of the run, different from other runs)")
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report") as pool:
            futures = {}
            for nb, code in tasks:
                bar.started(nb.name, code)
                futures[pool.submit(execute_notebook, ctx, nb, code, typed[nb.name])] = (nb, code)
            for fut in cf.as_completed(futures):
                nb, code = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - pipeline bug: report it as this notebook's failure
                    res = NotebookResult(nb.name, code, "failed", 0.0, error=_error_text(exc))
                results.append(res)
                try:
                    write_page_record(ctx, nb, res, _run_info(ctx, info))
                except Exception as exc:  # noqa: BLE001 - the run goes on; metrics.json keeps the last record
                    bar.line(f"could not record {nb.name} [{code}]: {_error_text(exc)}")
                bar.finished(res)
    results.sort(key=lambda r: (r.name, langs.index(r.lang)))
    finished = dt.datetime.now().astimezone().replace(microsecond=0)
    run_meta = _run_metadata(ctx, info, langs, workers, started, finished, load_seconds)
    run_meta["coverage"] = ctx.coverage
    metrics_path = write_period_metrics(ctx, notebooks, results, run_meta)
    if pdf:
        for code in langs:
            write_pack_pdf(out_root, the_period.label, code, mode)
    index_path = write_index(out_root)
    return PackResult(the_period, out_root, tuple(results), metrics_path, index_path, load_seconds,
                      time.perf_counter() - t_start, coverage=ctx.coverage)


def _run_metadata(ctx: _RunContext, info: Mapping[str, Any], langs: Sequence[str], workers: int,
                  started: dt.datetime, finished: dt.datetime, load_seconds: float) -> dict[str, Any]:
    p = ctx.period
    return {
        "period": p.label,
        "period_kind": p.kind,
        "period_start": p.start.isoformat(),
        "period_end": p.end.isoformat(),
        "period_display": {code: p.display(code) for code in LANGS},
        "previous_period": p.previous().label,
        "data_source": ctx.source,
        "dataset": info["name"],
        "rows": info["rows"],
        "excluded_rows": info["excluded_rows"],
        "exclusions": info["exclusions"],
        "validation_ok": info["validation_ok"],
        "package_version": __version__,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "load_seconds": round(load_seconds, 3),
        "languages": list(langs),
        "jobs": workers,
        "plotly_js": ctx.plotly_js,
        "pseudonym_key_source": info.get("pseudonym_key_source", ""),
        "currency": info.get("currency", "CNY"),
        "targets": info.get("targets", {}),
    }


def write_period_metrics(ctx: _RunContext, notebooks: Sequence[ReportNotebook], results: Sequence[NotebookResult],
                         run_meta: Mapping[str, Any]) -> Path:
    """Rebuild ``<out>/<period>/metrics.json`` from every page record of the period (see
    :func:`build_period_metrics`); failed notebooks keep their last good metrics there."""
    from workbench.privacy import assert_no_pii

    path = ctx.out / ctx.period.label / "metrics.json"
    payload = build_period_metrics(path.parent, run_meta)
    assert_no_pii(payload)
    write_json_atomic(path, payload)
    os.chmod(path, _MODE)
    return path


# ------------------------------------------------------------------ index
def _read_periods(out: Path) -> list[dict[str, Any]]:
    """Every period's metrics, rebuilt from its page records; a damaged ``metrics.json`` (truncated,
    ``{}``) is rewritten from them, and a period with nothing usable is left out, never fatal."""
    found = []
    for folder in sorted(out.iterdir()) if out.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        mfile = folder / "metrics.json"
        if not mfile.exists() and not any(folder.glob(f"*/*{PAGE_RECORD_SUFFIX}")):
            continue
        try:
            m = build_period_metrics(folder)
        except Exception as exc:  # noqa: BLE001 - one bad period must not hide the others
            log.warning("skipping %s in the index: %s", folder.name, exc)
            continue
        if not m.get("run") or not m.get("notebooks"):
            log.warning("skipping %s in the index: no readable metrics", folder.name)
            continue
        if not _valid_period_metrics(_read_json(mfile)):  # truncated, "{}", missing: rebuild it
            from workbench.privacy import assert_no_pii

            assert_no_pii(m)
            write_json_atomic(mfile, m)
            os.chmod(mfile, _MODE)
        found.append(m)
    return sorted(found, key=lambda m: (str(m["run"].get("period_start", "")), str(m["run"].get("period_end", ""))),
                  reverse=True)


def headline_changes(current: Mapping[str, Any], previous: Mapping[str, Any] | None, lang: str = "en"
                     ) -> list[dict[str, Any]]:
    """Headline findings of one notebook entry with their change versus the previous period's entry.

    Returns
    -------
    list of dict
        ``{key, text, value, previous, delta, rel}`` (``previous``/``delta`` None when not comparable).
    """
    def pick(entry: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
        if not entry:
            return []
        f = entry.get("findings", {})
        return f.get(lang) or next(iter(f.values()), [])

    before = {f["key"]: f.get("value") for f in pick(previous)}
    rows = []
    for f in summary_findings(pick(current)):
        value, prev = f.get("value"), before.get(f["key"])
        numeric = isinstance(value, int | float) and not isinstance(value, bool) and \
            isinstance(prev, int | float) and not isinstance(prev, bool)
        delta = value - prev if numeric else None
        rel = (delta / prev) if numeric and prev else None
        rows.append({"key": f["key"], "text": f.get("text", ""), "value": value, "previous": prev if numeric else None,
                     "delta": delta, "rel": rel})
    return rows


def format_delta(value: float, previous: float, delta: float) -> str:
    """Change as text: whole numbers ``+25 (+10.9%)``, shares in [0, 1] in percentage points, others rounded."""
    if float(delta).is_integer() and float(value).is_integer():
        text = f"{delta:+,.0f}"
    elif abs(value) <= 1 and abs(previous) <= 1:
        return f"{100 * delta:+.1f} pp"
    else:
        text = f"{delta:+,.0f}" if abs(delta) >= 100 else f"{delta:+,.2f}"
    return text + (f" ({delta / previous:+.1%})" if previous else "")


def _fmt_delta(row: Mapping[str, Any], lang: str) -> str:
    delta = row["delta"]
    if delta is None:
        return ""
    title = html.escape(translate("reports.index.vs_previous", lang, value=row["previous"]))
    if delta == 0:
        return f'<span class="wb-delta flat" title="{title}">=</span>'
    arrow, cls = ("▲", "up") if delta > 0 else ("▼", "down")
    amount = format_delta(float(row["value"]), float(row["previous"]), float(delta))
    return f'<span class="wb-delta {cls}" title="{title}">{arrow} {html.escape(amount)}</span>'


INDEX_FILES = {"en": "index.html", "zh": "index.zh.html"}


def _period_status(m: Mapping[str, Any], lang: str) -> str:
    run = m["run"]
    failed = sum(1 for e in m["notebooks"].values() if e.get("status") != "ok")
    status = (f'<span class="wb-badge failed">{html.escape(translate("reports.index.failed_n", lang, n=failed))}'
              '</span>' if failed else
              f'<span class="wb-badge ok">{html.escape(translate("reports.index.all_ok", lang))}</span>')
    return status + _coverage_badge(run, lang)


def _page_links(label: str, name: str, entry: Mapping[str, Any], lang: str) -> tuple[str, str]:
    """(title link in ``lang`` or the first language with a page, status badges + other-language links)."""
    title = html.escape((entry.get("title") or {}).get(lang) or name)
    langs = entry.get("langs") or {}
    own = langs.get(lang) or {}
    href = own.get("html") or next((i.get("html") for i in langs.values() if i.get("html")), None)
    link = f'<a href="{html.escape(label)}/{html.escape(href)}">{title}</a>' if href else title
    extras = []
    for code, info in langs.items():
        st = info.get("status", "")
        if st != "ok":
            tip = html.escape(info.get("error") or "")
            extras.append(f'<span class="wb-badge failed" title="{tip}">{html.escape(_lang_name(code, lang))}: '
                          f'{html.escape(translate("reports.index.failed", lang))}</span>')
        elif code != lang and info.get("html"):
            extras.append(f'<a class="wb-other-lang" href="{html.escape(label)}/{html.escape(info["html"])}" '
                          f'hreflang="{code}">{html.escape(_lang_name(code, lang))}</a>')
    return link, " ".join(extras)


def _findings_html(m: Mapping[str, Any], prev: Mapping[str, Any] | None, comparable: bool, lang: str) -> str:
    """Each report's headline findings: sentence, change, action, and a collapsed "how computed" note."""
    label = m["run"]["period"]
    how_label = html.escape(translate("core.how_computed", lang))
    blocks = []
    for name, entry in m["notebooks"].items():
        f_all = (entry.get("findings") or {}).get(lang) or []
        by_key = {f.get("key"): f for f in f_all}
        prev_entry = prev["notebooks"].get(name) if prev else None
        heads = headline_changes(entry, prev_entry if comparable else None, lang) if f_all else []
        items = []
        for h in heads:
            f = by_key.get(h["key"], {})
            action = (f'<p class="wb-action">→ {html.escape(f["action"])}</p>' if f.get("action") else "")
            how = (f'<details class="wb-how"><summary>{how_label}</summary>{html.escape(f["how"])}</details>'
                   if f.get("how") else "")
            items.append(f"<li><p class=\"wb-head\">{html.escape(h['text'])} {_fmt_delta(h, lang)}</p>"
                         f"{action}{how}</li>")
        link, extras = _page_links(label, name, entry, lang)
        body = (f'<ul class="wb-heads">{"".join(items)}</ul>' if items else
                f'<p class="wb-muted">{html.escape(translate("reports.index.no_findings", lang))}</p>')
        blocks.append(f'<article class="wb-report-heads"><h3>{link} {extras}</h3>{body}</article>')
    return "".join(blocks)


def render_index(periods: Sequence[Mapping[str, Any]], generated: dt.datetime | None = None,
                 lang: str = "en", earlier: bool = True) -> str:
    """The pack summary ``index.html`` in ``lang``: the latest period's KPI tiles (against ``[targets]``),
    each report's headline findings (action, collapsed "how computed"), links to the pages and to the
    earlier periods."""
    from workbench.summary import build_tiles, tiles_html, unknown_target_keys

    by_label = {m["run"]["period"]: m for m in periods}
    generated = generated or dt.datetime.now().replace(microsecond=0)
    other = [code for code in LANGS if code != lang]
    switch = " ".join(f'<a href="{INDEX_FILES[c]}" hreflang="{c}">{html.escape(_lang_name(c, lang))}</a>' for c in other)
    parts = [f'<header class="wb-index-head"><p class="wb-app">{html.escape(translate("core.app", lang))}</p>'
             f'<nav class="wb-lang-switch">{switch}</nav>'
             f'<h1 class="wb-title">{html.escape(translate("reports.index.title", lang))}</h1>'
             f'<p class="wb-meta-line">{html.escape(translate("core.generated", lang))}: '
             f'{html.escape(fmt_datetime(generated, lang))}</p></header>']
    if not periods:
        parts.append(f"<p>{html.escape(translate('reports.index.empty', lang))}</p>")
    for i, m in enumerate(periods):
        run = m["run"]
        label = run["period"]
        prev = by_label.get(run.get("previous_period", ""))
        display = (run.get("period_display") or {}).get(lang) or label
        comparable = equally_covered(run, prev["run"] if prev else None)
        meta = (f'<p class="wb-meta-line">{html.escape(translate("core.source", lang))}: '
                f'{html.escape(str(run.get("dataset", "")))} — {html.escape(str(run.get("data_source", "")))} · '
                f'{html.escape(translate("reports.index.run", lang))}: '
                f'{html.escape(str(run.get("finished", ""))[:16].replace("T", " "))} · '
                f'v{html.escape(str(run.get("package_version", "")))} · '
                f'<a href="{html.escape(label)}/metrics.json">metrics.json</a></p>')
        if i == 0:
            parts.append(f'<section class="wb-period wb-latest" id="p-{html.escape(label)}">'
                         f'<h2>{html.escape(translate("reports.index.summary_of", lang, period=display))} '
                         f'{_period_status(m, lang)}</h2>{meta}{_coverage_banner_html(run, lang)}')
            for key in unknown_target_keys(run.get("targets") or {}):
                parts.append(f'<p class="wb-note">{html.escape(translate("reports.index.unknown_target", lang, key=key))}'
                             "</p>")
            tiles = build_tiles(m, prev, lang, comparable)
            parts.append(f'<h3 class="wb-sub">{html.escape(translate("reports.index.kpis", lang))}</h3>')
            parts.append(tiles_html(tiles, lang) or
                         f'<p class="wb-muted">{html.escape(translate("reports.index.no_kpis", lang))}</p>')
            parts.append(f'<h3 class="wb-sub">{html.escape(translate("reports.index.headlines", lang))}</h3>')
            parts.append(_findings_html(m, prev, comparable, lang))
            pdf = [p for p in (f"{label}/{lang}/pack.pdf",) if (m.get("_root") and (m["_root"] / p).exists())]
            if pdf:
                parts.append(f'<p><a class="wb-pdf" href="{html.escape(pdf[0])}">'
                             f'{html.escape(translate("reports.index.pack_pdf", lang))}</a></p>')
            parts.append("</section>")
            if not earlier:
                break
            if len(periods) > 1:
                parts.append(f'<h2 class="wb-earlier">{html.escape(translate("reports.index.earlier", lang))}</h2>')
            continue
        links = []
        for name, entry in m["notebooks"].items():
            link, extras = _page_links(label, name, entry, lang)
            links.append(f"<li>{link} {extras}</li>")
        parts.append(f'<section class="wb-period" id="p-{html.escape(label)}">'
                     f'<h3>{html.escape(display)} {_period_status(m, lang)}</h3>{meta}'
                     f'{_coverage_banner_html(run, lang)}<ul class="wb-page-list">{"".join(links)}</ul></section>')
    css = _css() + (TEMPLATE_DIR / TEMPLATE_NAME / "index.css").read_text(encoding="utf-8")
    html_lang = "zh-CN" if lang == "zh" else lang
    return (f"<!DOCTYPE html>\n<html lang=\"{html_lang}\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(translate('reports.index.title', lang))}</title><style>{css}</style></head>"
            f'<body class="wb-report wb-index" data-lang="{lang}"><main>{"".join(parts)}</main></body></html>\n')


# ------------------------------------------------------------------ coverage (workbench.coverage)
def check_coverage(data: Path, period: Period) -> dict[str, Any]:
    """The dataset's coverage of ``period``; raises NoDataInPeriod (CLI exit 3) before anything runs."""
    cov = check_dataset(data, period)
    if cov.status == "none":
        raise NoDataInPeriod(cov)
    return cov.to_dict()


def check_date_params(typed: Mapping[str, Mapping[str, Any]]) -> None:
    """``analysis_date`` must be ``YYYY-MM-DD`` or empty — refused before anything runs (exit 2)."""
    from workbench.notebook import parse_analysis_date

    for values in typed.values():
        if "analysis_date" in values:
            try:
                parse_analysis_date(values["analysis_date"])
            except ValueError as exc:
                raise ReportInputError(str(exc)) from None


def equally_covered(run: Mapping[str, Any], previous: Mapping[str, Any] | None) -> bool:
    """Headline changes between two periods are shown only when both are fully covered and neither is
    flagged "data may be incomplete" (metrics.json from before coverage existed count as full)."""
    if previous is None:
        return False
    covs = [m.get("coverage") or {} for m in (run, previous)]
    return all(c.get("status", "full") == "full" and not c.get("incomplete") for c in covs)


def _coverage_badge(run: Mapping[str, Any], lang: str = "en") -> str:
    cov = run.get("coverage") or {}
    if cov.get("status") == "partial" or cov.get("incomplete"):
        return f' <span class="wb-badge partial">{html.escape(translate("coverage.index_badge", lang))}</span>'
    return ""


def _coverage_banner_html(run: Mapping[str, Any], lang: str = "en") -> str:
    """The coverage banner of one period on the index, in the reader's language."""
    cov = run.get("coverage") or {}
    rows = banner_lines(cov, lang)
    if not rows:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in rows)
    return f'<div class="wb-coverage" role="note"><ul>{items}</ul></div>'


def _lang_name(code: str, lang: str = "en") -> str:
    """A language's name in the page's language (no other script on a page)."""
    key = f"reports.lang.{code}"
    return translate(key, lang) if has_text(key) else code


def write_index(out: Path | str) -> Path:
    """Rebuild the pack summary from every period's metrics: ``<out>/index.html`` (English) and
    ``<out>/index.zh.html`` (Chinese), each linking the other; returns the English one."""
    out = Path(out)
    periods = _read_periods(out)
    for m in periods:
        m["_root"] = out  # render_index links pack.pdf when it exists
    generated = dt.datetime.now().replace(microsecond=0)
    for code in LANGS:
        write_text_atomic(out / INDEX_FILES[code], render_index(periods, generated, code))
    return out / INDEX_FILES["en"]
