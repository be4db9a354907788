"""Command line: ``workbench`` (also ``python -m workbench``).

Exit codes (the interface for cron and orchestrators):

0  success (``validate``: no errors, warnings allowed; ``alerts``: nothing out of control)
1  the command ran and found a problem: validation errors, a report notebook failed,
   a complaint category out of control
2  bad input: unreadable dataset or config, unknown parameter, bad period; ``reports run``: another
   run is writing to the same output folder (``--wait`` queues instead)
3  no data in the requested period (``reports run``: nothing is published) or in the
   checked window (``alerts``: no complaints since ``--since``) — see workbench/coverage.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench import __version__

app = typer.Typer(
    help="Loyalty Workbench: customer-loyalty analytics on your CRM data.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
reports_app = typer.Typer(help="Render the recurring report pack.", no_args_is_help=True)
app.add_typer(reports_app, name="reports")

# markup off: messages and data values print as written ([tables.X], a value "[/]"); colour via style= / Text
console = Console(stderr=False, highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

DataArg = Annotated[Path, typer.Argument(help="Dataset folder or workbench.toml")]


def _error(message: object) -> None:
    err.print(Text.assemble(("error:", "bold red"), f" {message}"))


def _bad_input(exc: Exception) -> typer.Exit:
    _error(exc)
    return typer.Exit(2)


def _input_errors() -> tuple[type[BaseException], ...]:
    from workbench.config import ConfigError
    from workbench.engine import DataError, MissingDataError
    from workbench.io import SourceError
    from workbench.periods import PeriodError

    return (ConfigError, SourceError, DataError, MissingDataError, PeriodError, FileNotFoundError)


@app.callback(invoke_without_command=True)
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        console.print(__version__)
        raise typer.Exit(0)


@app.command()
def validate(
    data: DataArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Reload the sources even if cached.")] = False,
) -> None:
    """Load and validate a dataset; exit 1 on errors, 0 with warnings only."""
    from workbench.engine import DataError, open_dataset

    try:
        ds = open_dataset(data, refresh=refresh, verify=True)  # validate also re-checks the cache's checksums
    except DataError as exc:
        # nothing loadable: still a validation result (exit 1), with the reasons
        if as_json and exc.report is not None:
            sys.stdout.write(json.dumps(exc.report.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n")
        elif exc.report is not None:
            _print_report(exc.report, str(data))
            _error(str(exc).splitlines()[0])
        else:
            _error(exc)
        raise typer.Exit(1) from None
    except _input_errors() as exc:
        if as_json:
            console.print_json(json.dumps({"ok": False, "fatal": str(exc)}, ensure_ascii=False))
        raise _bad_input(exc) from None
    report = ds.validation
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        _print_validation(ds)
    ds.close()
    raise typer.Exit(0 if report.ok else 1)


def _print_validation(ds) -> None:
    _print_report(ds.validation, f"{ds.name} — {ds.source}")


def _print_report(report, title: str) -> None:
    tab = Table(title=title, title_justify="left")
    for col in ("table", "source", "rows in source", "filtered", "excluded", "loaded"):
        tab.add_column(col, justify="right" if col not in ("table", "source") else "left")
    for load in report.tables.values():
        tab.add_row(load.table + (" (derived)" if load.derived else "") + (" (SKIPPED)" if load.skipped else ""),
                    load.source, f"{load.source_rows:,}", f"{load.filtered_rows:,}", f"{load.excluded_rows:,}",
                    f"{load.loaded_rows:,}")
    console.print(tab)
    if not report.issues:
        console.print("No problems found.", style="green")
    for issue in report.issues:
        colour = {"error": "red", "warning": "yellow"}.get(issue.severity, "cyan")
        where = f"{issue.table}.{issue.column}" if issue.column else issue.table
        files = f" in {', '.join(issue.files)}" if issue.files else ""
        console.print(Text.assemble((issue.severity.upper(), colour), f" {where}: {issue.rule} — {issue.count:,} "
                                    f"row(s){files}; {issue.action or ''}. {issue.message}"))
        for ex in issue.examples:
            console.print("    " + ", ".join(f"{k}={v!r}" for k, v in ex.items()))
    console.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s).")


@app.command()
def summary(data: DataArg) -> None:
    """One-screen summary of a dataset: tables, rows, customers, dates, exclusions."""
    from workbench.engine import open_dataset

    try:
        ds = open_dataset(data)
    except _input_errors() as exc:
        raise _bad_input(exc) from None
    tab = Table(title=f"{ds.name} ({ds.source})", title_justify="left")
    frame = ds.summary()
    for col in frame.columns:
        tab.add_column(str(col))
    for row in frame.itertuples(index=False):
        tab.add_row(*["" if v is None or v != v else (f"{v:,}" if isinstance(v, int) else str(v)) for v in row])
    console.print(tab)
    report = ds.validation
    console.print(f"Validation: {len(report.errors)} error(s), {len(report.warnings)} warning(s); "
                  f"survey drivers: {', '.join(ds.drivers) or 'none'}")


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/sample"),
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed → byte-identical files).")] = 42,
    lang: Annotated[str, typer.Option(help="Language of names, labels and free text: en or zh.")] = "en",
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    end: Annotated[str | None, typer.Option(help="Last month of data, YYYY-MM (default: last month).")] = None,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing when out already holds data.")] = False,
    chunk_size: Annotated[int, typer.Option(min=100, help="Customers generated at a time (memory grows with it, "
                                                          "not with --customers).")] = 200_000,
) -> None:
    """Generate the seeded synthetic CRM dataset (all six tables + TRUTH.json), streamed in chunks of customers."""
    from workbench.sample import generate_sample

    if lang not in ("en", "zh") or fmt not in ("parquet", "csv"):
        raise _bad_input(ValueError("--lang must be en or zh and --format parquet or csv"))
    if if_missing and (out / "TRUTH.json").exists():
        console.print(f"{out} already holds a sample dataset; keeping it.")
        raise typer.Exit(0)
    result = generate_sample(out, customers=customers, seed=seed, lang=lang, fmt=fmt, end=end, chunk_size=chunk_size)
    console.print(f"Wrote sample dataset to {out}: " + ", ".join(f"{k} {v:,}" for k, v in result.rows.items()))


@reports_app.command("run")
def reports_run(
    data: Annotated[Path, typer.Option(help="Dataset folder or workbench.toml.")],
    period: Annotated[str, typer.Option(help="2026-10, 2026Q3, YYYY-MM-DD:YYYY-MM-DD, last-month, last-quarter.")],
    only: Annotated[list[str] | None, typer.Option(help="Run only these notebooks (name or NN_name).")] = None,
    lang: Annotated[str, typer.Option(help="en, zh or both.")] = "both",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("reports"),
    param: Annotated[list[str] | None, typer.Option(help="Notebook parameter key=value (repeatable).")] = None,
    jobs: Annotated[int | None, typer.Option(min=1, help="Notebooks run in parallel (default: cores).")] = None,
    timeout: Annotated[int, typer.Option(help="Per-notebook timeout in seconds.")] = 1800,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also write a PDF per report and one pack.pdf per language "
                                                    "(summary + every report; needs chromium).")] = False,
    notebooks: Annotated[Path | None, typer.Option(help="Notebook folder (default: the project's).")] = None,
    plotly_js: Annotated[str | None, typer.Option(
        "--plotly-js", help="folder (default; env WORKBENCH_PLOTLY_JS): one plotly.min.js per period folder, "
                            "shared by every page; inline: plotly.js inside every HTML file (about 4.8 MB each), "
                            "so a single page survives e-mailing.")] = None,
    inline: Annotated[bool, typer.Option("--inline", help="Same as --plotly-js inline: every page a single "
                                                          "self-contained file, for e-mailing one page.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="If another run is writing to the output folder, wait "
                                                      "for it instead of exiting 2.")] = False,
) -> None:
    """Run the parameterised notebooks headlessly and write HTML, metrics.json and the index."""
    from workbench.coverage import NoDataInPeriod
    from workbench.reports import ReportInputError, run_pack

    try:
        result = run_pack(data=data, period=period, only=only or [], lang=lang, out=out,
                          params=param or [], jobs=jobs, timeout=timeout, pdf=pdf, notebooks_dir=notebooks,
                          plotly_js="inline" if inline else plotly_js, wait=wait)
    except NoDataInPeriod as exc:
        err.print(Text.assemble(("no data:", "bold yellow"), f" {exc}"))
        raise typer.Exit(3) from None
    except (*_input_errors(), ReportInputError) as exc:
        raise _bad_input(exc) from None
    for line in result.coverage_lines():
        err.print(line, style="yellow")
    raise typer.Exit(result.exit_code)


@app.command()
def alerts(
    data: Annotated[Path, typer.Option(help="Dataset folder or workbench.toml.")],
    since: Annotated[str | None, typer.Option(help="Check periods from this date (YYYY-MM-DD).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write breaches as JSON here.")] = None,
    granularity: Annotated[str, typer.Option(help="Periods judged: day or week.")] = "week",
    lang: Annotated[str, typer.Option(help="Language of the printed lines: en or zh.")] = "en",
) -> None:
    """Daily complaint check: exit 1 when any category is out of control, 0 otherwise, 2 on bad input,
    3 when there is no complaint data in the checked window (--since to yesterday)."""
    from workbench.engine import open_dataset

    if granularity not in ("day", "week") or lang not in ("en", "zh"):
        raise _bad_input(ValueError("--granularity must be day or week and --lang en or zh"))
    try:
        ds = open_dataset(data)
    except _input_errors() as exc:
        raise _bad_input(exc) from None
    try:
        code, lines = _alerts_run(ds, since, json_path, granularity, lang)
    finally:
        ds.close()
    for line in lines:
        console.print(line)
    raise typer.Exit(code)


def _alerts_run(ds, since: str | None, json_path: Path | None, granularity: str, lang: str) -> tuple[int, list[str]]:
    """Coverage of the checked window first (the report pack's logic), then the alert rule; (exit code, lines)."""
    from workbench.complaints import run_alerts
    from workbench.coverage import alerts_coverage
    from workbench.metrics import write_json_atomic

    try:
        cov = alerts_coverage(ds, since, lang)
        if cov.status == "none":
            code, lines, payload = 3, cov.lines, {"ok": None, "no_data": True, "breaches": []}
        else:
            result = run_alerts(data=ds, since=since, json_path=None, granularity=granularity, lang=lang)
            code, lines, payload = (1 if result.breaches else 0), [*result.lines, *cov.lines], dict(result.payload)
    except (*_input_errors(), ValueError) as exc:
        raise _bad_input(exc) from None
    payload["coverage"] = cov.coverage.to_dict()
    if json_path:
        write_json_atomic(Path(json_path), payload)
    return code, lines


def main() -> None:
    app()


if __name__ == "__main__":
    main()
