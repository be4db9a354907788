"""Validated canonical tables in a DuckDB cache, exposed as Ibis expressions.

:func:`open_dataset` reads a dataset's sources (see :mod:`workbench.config`),
maps them to the canonical model (:mod:`workbench.schema`), runs the
validation rules as engine queries, and materialises the result once into a
DuckDB file keyed by the sources' fingerprint. The next call — another
notebook, another process — opens that file read-only in milliseconds; a
changed source or config gives a new fingerprint and a rebuild.

Analyses get Ibis tables (``ds.table("transactions")``) so the same
aggregation code can later run on Spark or a SQL warehouse; only per-customer
or per-period results reach pandas.

Nothing is silently dropped: each rule's excluded rows are counted in
``ds.validation`` and travel with the cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pandas as pd

from workbench import __version__, integrity
from workbench.config import (
    ConfigError,
    DatasetConfig,
    EngineSettings,
    TableConfig,
    fingerprint,
    load_config,
)
from workbench.io import (
    Source,
    SourceError,
    clean_duckdb_message,
    explain_read_error,
    open_source,
    quote_ident,
    quote_str,
)
from workbench.schema import DEFAULT_SCALE, RULES, SCHEMA_VERSION, TABLES, Issue, TableSpec
from workbench.sqlguard import check_query, check_table_sql, lock_connection, source_files

MAX_EXAMPLES = 5
DEFAULT_DATE_FORMATS = (
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S.%f",
    "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y%m%d", "%Y年%m月%d日", "%Y.%m.%d",
)
# Day-first / month-first / two-digit-year families, tried only for text date columns without date_format;
# when two families read every value but disagree on some, loading stops and asks for date_format.
_TIMES = ("", " %H:%M:%S", " %H:%M")
DATE_FAMILIES: dict[str, tuple[str, ...]] = {
    "iso": DEFAULT_DATE_FORMATS,
    "dmy": tuple(f + t for f in ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y") for t in _TIMES),
    "mdy": tuple(f + t for f in ("%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y") for t in _TIMES),
    "dmy2": tuple(f + t for f in ("%d/%m/%y", "%d-%m-%y", "%d.%m.%y") for t in _TIMES),
    "mdy2": tuple(f + t for f in ("%m/%d/%y", "%m-%d-%y") for t in _TIMES),
    "ymd2": tuple(f + t for f in ("%y/%m/%d", "%y-%m-%d", "%y.%m.%d") for t in _TIMES),
}
DATE_SAMPLE_ROWS = 200_000
DATE_SAMPLE_DISTINCT = 2_000
SOURCES_DB = "_wb_src"
LOAD_ORDER = ("customers", "transactions", "surveys", "complaints", "members", "points", "prospects")
_log = logging.getLogger(__name__)


class MissingDataError(LookupError):
    """An analysis needs a table or column the dataset does not have."""

    def __init__(self, table: str, columns: tuple[str, ...] = (), reason: str = ""):
        self.table = table
        self.columns = columns
        what = f"table '{table}'" if not columns else f"column(s) {', '.join(columns)} in table '{table}'"
        self.what = what
        super().__init__(f"needs {what}{': ' + reason if reason else ''}")


class DataError(ValueError):
    """The dataset cannot be loaded at all (no usable table); ``report`` says why."""

    def __init__(self, message: str, report: ValidationReport | None = None):
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------- report
@dataclass
class TableLoad:
    """Row accounting for one table: source rows → filtered → excluded → loaded."""

    table: str
    source: str
    source_rows: int = 0
    filtered_rows: int = 0
    excluded_rows: int = 0
    loaded_rows: int = 0
    encoding: str | None = None
    columns: list[str] = field(default_factory=list)
    derived: bool = False
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ValidationReport:
    """Everything validation found, per rule; the exclusions reports must show."""

    issues: list[Issue] = field(default_factory=list)
    tables: dict[str, TableLoad] = field(default_factory=dict)
    as_of: str = ""

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def exclusions(self) -> pd.DataFrame:
        """Counts per table and rule (no example rows): safe for manager reports."""
        rows = [
            {"table": i.table, "rule": i.rule, "severity": i.severity, "column": i.column,
             "count": i.count, "action": i.action or RULES[i.rule].action}
            for i in self.issues
        ]
        return pd.DataFrame(rows, columns=["table", "rule", "severity", "column", "count", "action"])

    def to_dict(self, examples: bool = True) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "as_of": self.as_of,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "tables": {k: v.to_dict() for k, v in self.tables.items()},
            "issues": [i.to_dict(examples) for i in self.issues],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationReport:
        issues = [
            Issue(rule=i["rule"], table=i["table"], column=i["column"], count=i["count"],
                  files=i.get("files", []), examples=i.get("examples", []), action=i.get("action", ""),
                  message=i.get("message", ""))
            for i in d.get("issues", [])
        ]
        tables = {k: TableLoad(**v) for k, v in d.get("tables", {}).items()}
        return cls(issues=issues, tables=tables, as_of=d.get("as_of", ""))

    def __repr__(self) -> str:
        lines = [f"<ValidationReport: {len(self.errors)} error(s), {len(self.warnings)} warning(s)>"]
        for t in self.tables.values():
            lines.append(
                f"  {t.table:<13} source {t.source_rows:>10,}  filtered {t.filtered_rows:>8,}  "
                f"excluded {t.excluded_rows:>8,}  loaded {t.loaded_rows:>10,}"
                + ("  (derived)" if t.derived else "") + ("  (SKIPPED)" if t.skipped else "")
            )
        for i in self.issues:
            lines.append(f"  [{i.severity}] {i.table}.{i.column or '*'}: {i.rule} × {i.count:,} ({i.action})")
        return "\n".join(lines)


# ----------------------------------------------------------------- builder
_IDENT = re.compile(r"^[^\W\d]\w*$", re.UNICODE)


def _mapping(spec: TableSpec, tc: TableConfig, source: Source) -> tuple[dict[str, str], list[str]]:
    """Canonical column → SQL expression over source columns; plus driver columns."""
    by_lower = {c.lower(): c for c in source.columns}
    unknown = set(tc.columns) - set(spec.names)
    if unknown and spec.extra_kind is None:
        raise ConfigError(
            f"[tables.{spec.name}.columns]: {sorted(unknown)} are not canonical columns of {spec.name} "
            f"({', '.join(spec.names)})"
        )
    for col, opt in tc.options.items():
        if opt.source is not None and opt.source not in source.columns:
            raise ConfigError(f"{tc.key}.columns.{col}: source column {opt.source!r} is not in {tc.describe()} "
                              f"(it has {', '.join(c for c in source.columns if c != '_file')})")
    mapping: dict[str, str] = {}
    for col in spec.names:
        if col in tc.options:
            opt = tc.options[col]
            mapping[col] = quote_ident(opt.source) if opt.source is not None else f"({opt.expr})"
        elif col in tc.columns:
            expr = tc.columns[col]
            mapping[col] = quote_ident(expr) if expr in source.columns else expr
        elif col in source.columns:
            mapping[col] = quote_ident(col)
        elif col.lower() in by_lower:
            mapping[col] = quote_ident(by_lower[col.lower()])
    drivers: list[str] = []
    if spec.extra_kind:
        for col in unknown:  # extra ratings mapped explicitly
            expr = tc.columns[col]
            opt = tc.options.get(col)
            if opt is not None:
                mapping[col] = quote_ident(opt.source) if opt.source is not None else f"({opt.expr})"
            else:
                mapping[col] = quote_ident(expr) if expr in source.columns else expr
        used = {m.strip('"') for m in mapping.values()}
        if tc.drivers is not None:
            missing = [d for d in tc.drivers if d not in source.columns and d not in mapping]
            if missing:
                raise ConfigError(f"[tables.{spec.name}].drivers: column(s) {missing} not in the source "
                                  f"(has {', '.join(source.columns)})")
            drivers = list(tc.drivers)
        else:
            numeric = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "REAL")
            drivers = [c for c, typ in source.columns.items()
                       if c not in used and c != "_file" and c not in spec.names
                       and any(typ.upper().startswith(n) for n in numeric)]
        for d in drivers:
            mapping.setdefault(d, quote_ident(d))
    return {col: _with_options(expr, tc, col) for col, expr in mapping.items()}, drivers


def _with_options(expr: str, tc: TableConfig, col: str) -> str:
    """Apply ``na_values`` (table and column) and a ``values`` label map to a mapped column's SQL."""
    opt = tc.options.get(col)
    na = tuple(tc.na_values) + (opt.na_values if opt else ())
    if na:
        raw = f"trim(CAST(({expr}) AS VARCHAR))"
        texts = sorted({str(v).strip() for v in na if isinstance(v, str)})
        nums = sorted({float(v) for v in na if not isinstance(v, str)})
        conds = []
        if texts:
            conds.append(f"{raw} IN ({', '.join(quote_str(v) for v in texts)})")
        if nums:
            conds.append(f"TRY_CAST({raw} AS DOUBLE) IN ({', '.join(repr(v) for v in nums)})")
        expr = f"(CASE WHEN {' OR '.join(conds)} THEN NULL ELSE ({expr}) END)"
    if opt is not None and opt.values is not None:
        raw = f"trim(CAST(({expr}) AS VARCHAR))"
        whens = " ".join(f"WHEN {raw} = {quote_str(k.strip())} THEN {quote_str(repr(v))}"
                         for k, v in opt.values.items())
        # an unmapped label keeps its text, marked, so typing fails and it is a wrong_type error with examples
        expr = (f"(CASE WHEN NULLIF({raw}, '') IS NULL THEN NULL {whens} "
                f"ELSE 'not in values: ' || {raw} END)")
    return expr


def _typed(kind: str, col: str, src_type: str, date_formats: tuple[str, ...]) -> str:
    """SQL turning mapped column ``col`` (type ``src_type``) into its canonical kind; NULL on failure."""
    c = quote_ident(col)
    t = src_type.upper()
    is_num = any(t.startswith(n) for n in ("INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
                                          "UINTEGER", "USMALLINT", "UTINYINT", "DOUBLE", "FLOAT", "DECIMAL", "REAL"))
    is_float = any(t.startswith(n) for n in ("DOUBLE", "FLOAT", "DECIMAL", "REAL"))
    is_ieee = t.startswith(("DOUBLE", "FLOAT", "REAL"))
    text = f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"
    if kind == "id":
        if is_float:
            return (f"CASE WHEN {c} = floor({c}) AND abs({c}) < 9e15 THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) "
                    f"ELSE CAST({c} AS VARCHAR) END")
        return text
    if kind == "text":
        return text
    if kind in ("number", "rating"):
        # NaN and ±inf (as numbers or as text such as 'NaN', 'inf', 'Infinity') are not values: NULL here,
        # so the raw text lands in <col>__bad and the row is a wrong_type error
        if is_ieee:
            return f"CASE WHEN isfinite({c}) THEN CAST({c} AS DOUBLE) END"
        if is_num:
            return f"CAST({c} AS DOUBLE)"
        parsed = f"TRY_CAST(regexp_replace({text}, '[,¥￥$€£\\s]', '', 'g') AS DOUBLE)"
        return f"CASE WHEN isfinite({parsed}) THEN {parsed} END"
    if kind == "integer":
        if is_num:
            return f"TRY_CAST(round({c}) AS BIGINT)" if is_float else f"CAST({c} AS BIGINT)"
        return f"TRY_CAST(TRY_CAST({text} AS DOUBLE) AS BIGINT)"
    if kind == "binary":
        if t.startswith("BOOL"):
            return f"CAST({c} AS INTEGER)"
        lowered = f"lower({text})"
        return (f"CASE WHEN {lowered} IN ('1', '1.0', 'true', 'yes', 'y', '是', 't') THEN 1 "
                f"WHEN {lowered} IN ('0', '0.0', 'false', 'no', 'n', '否', 'f') THEN 0 END")
    if kind in ("date", "timestamp"):
        target = "DATE" if kind == "date" else "TIMESTAMP"
        if t.startswith(("DATE", "TIMESTAMP")):
            return f"CAST({c} AS {target})"
        fmts = "[" + ", ".join(quote_str(f) for f in date_formats) + "]"
        return f"CAST(try_strptime({text}, {fmts}) AS {target})"
    raise ValueError(f"unknown kind {kind}")


def _bad(kind: str, col: str, typed: str) -> str | None:
    """Raw text kept only where the value was present but could not be converted."""
    if kind in ("id", "text"):
        return None
    c = quote_ident(col)
    return f"CASE WHEN ({typed}) IS NULL AND NULLIF(trim(CAST({c} AS VARCHAR)), '') IS NOT NULL THEN CAST({c} AS VARCHAR) END"


_KIND_TYPES = {"number": "DOUBLE", "rating": "DOUBLE", "integer": "BIGINT", "binary": "INTEGER",
               "date": "DATE", "timestamp": "TIMESTAMP", "id": "VARCHAR", "text": "VARCHAR"}


def _staging_sql(name: str, inner: str, types: dict[str, str], kinds: dict[str, str],
                 formats: tuple[str, ...] | dict[str, tuple[str, ...]], fills: dict[str, Any] | None = None) -> str:
    """CREATE TABLE stg_<name>: typed canonical columns plus ``<col>__bad`` raw text where conversion failed.

    ``formats`` are the date formats, for all columns or per column; ``fills`` maps a column to the value
    an empty cell takes (``<col>__filled`` then records which rows were filled, for the ``filled`` count).
    """
    selects, bads = [], []
    fills = fills or {}
    for col, kind in kinds.items():
        fmts = formats.get(col, DEFAULT_DATE_FORMATS) if isinstance(formats, dict) else formats
        typed = _typed(kind, col, types[col], fmts)
        bad = _bad(kind, col, typed)
        if col in fills:
            empty = f"NULLIF(trim(CAST({quote_ident(col)} AS VARCHAR)), '') IS NULL"
            value = fills[col]
            lit = quote_str(value) if isinstance(value, str) else repr(float(value))
            selects.append(f"CASE WHEN {empty} THEN CAST({lit} AS {_KIND_TYPES[kind]}) ELSE {typed} END "
                           f"AS {quote_ident(col)}")
            bads.append(f"{empty} AS {quote_ident(col + '__filled')}")
        else:
            selects.append(f"{typed} AS {quote_ident(col)}")
        if bad:
            bads.append(f"{bad} AS {quote_ident(col + '__bad')}")
    return (f"CREATE OR REPLACE TABLE _stg_{name} AS SELECT {', '.join(selects + bads)}, _file, _keep "
            f"FROM ({inner})")


# how a missing required column can be filled instead (schema.TableSpec.derivable; see _Builder._semantics)
_DERIVABLE_HINTS = {
    ("surveys", ("date",)): ", or date an undated single-wave file with [tables.surveys].wave_date = \"YYYY-MM-DD\"",
    ("customers", ("signup_date",)): ", or map tenure_months (signup_date = churn_as_of − tenure)",
}


def canonical_columns(name: str, kinds: dict[str, str], nulled: dict[str, list[str]], margin_rate: float | None,
                      quote: Callable[[str], str] = quote_ident) -> tuple[list[str], str | None]:
    """Select list of a validated canonical table, shared by the DuckDB and the warehouse builders.

    A value that broke a "nulled" rule becomes NULL; transactions without a margin column get
    ``amount * margin_rate``. Returns the columns and, for transactions, where the margin comes from
    (``"margin"``, ``"margin_rate"`` or None).
    """
    cols = []
    for col in kinds:
        c = quote(col)
        if col in nulled:
            cond = " OR ".join(f"COALESCE({p}, false)" for p in nulled[col])
            cols.append(f"CASE WHEN {cond} THEN NULL ELSE {c} END AS {c}")
        else:
            cols.append(c)
    source = None
    if name == "transactions" and "margin" not in kinds and margin_rate is not None:
        cols.append(f"amount * {float(margin_rate)} AS margin")
        source = "margin_rate"
    elif name == "transactions":
        source = "margin" if "margin" in kinds else None
    return cols, source


class BuildState:
    """What every dataset builder collects while it checks the canonical tables (the DuckDB cache builder
    here, the warehouse engines' builder in :mod:`workbench.warehouse`): the validation report, the as-of
    date, column kinds and scales, survey drivers, where margin comes from, table-semantics meta."""

    def __init__(self, config: DatasetConfig, con: Any):
        self.config = config
        self.con = con
        self.report = ValidationReport()
        self.as_of = config.as_of or dt.date.today()
        self.report.as_of = self.as_of.isoformat()
        self.kinds: dict[str, dict[str, str]] = {}
        self.scales: dict[str, dict[str, tuple[float, float]]] = {}
        self.drivers: list[str] = []
        self.margin_source: str | None = None
        self.semantics: dict[str, Any] = {}  # meta from the table-semantics keys (see _semantic_notes)


class _Builder(BuildState):
    """Builds one cache file; see :func:`open_dataset`."""

    def __init__(self, config: DatasetConfig, con: duckdb.DuckDBPyConnection, work_dir: Path):
        super().__init__(config, con)
        self.work_dir = work_dir
        self.materialised: list[str] = []  # canonical tables copied out of their staging table
        self.line_offsets: dict[str, int] = {}  # data row 1 is file line 1 + offset (skip + header)
        self._sources_open = False

    # -- helpers
    def q(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def _examples(self, table: str, where: str, cols: list[str]) -> list[dict]:
        """Up to five offending rows: file, data row number (1-based), and the named values."""
        sel = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in dict.fromkeys(cols))
        rows = self.con.execute(
            f"""WITH firsts AS (SELECT _file AS f, min(rowid) AS r0 FROM _stg_{table} GROUP BY _file),
                    s AS (SELECT rowid AS _rid, * FROM _stg_{table} WHERE {where} ORDER BY rowid LIMIT {MAX_EXAMPLES})
                SELECT _file, _rid - r0 + 1 AS _row{', ' + sel if sel else ''}
                FROM s JOIN firsts ON s._file = firsts.f ORDER BY _rid"""
        ).fetchall()
        out = []
        for r in rows:
            d = {"file": r[0], "row": int(r[1])}
            if str(r[0]).lower().endswith((".csv", ".txt", ".tsv", ".gz")):
                d["line"] = int(r[1]) + self.line_offsets.get(table, 1)  # header (and skipped lines) first
            d.update({c.removesuffix("__bad"): v for c, v in zip(dict.fromkeys(cols), r[2:], strict=True)})
            out.append(d)
        return out

    def _files(self, table: str, where: str) -> list[str]:
        return [r[0] for r in self.q(f"SELECT DISTINCT _file FROM _stg_{table} WHERE {where} ORDER BY 1 LIMIT 20")]

    def _issue(self, rule: str, table: str, column: str | None, where: str, show: list[str],
               action: str = "", message: str = "") -> int:
        n = self.q(f"SELECT count(*) FROM _stg_{table} WHERE {where}")[0][0]
        if n:
            self.report.issues.append(Issue(
                rule=rule, table=table, column=column, count=int(n), files=self._files(table, where),
                examples=self._examples(table, where, show), action=action or RULES[rule].action,
                message=message,
            ))
        return int(n)

    # -- per table
    def load_table(self, name: str, tc: TableConfig) -> None:
        spec = TABLES[name]
        load = TableLoad(table=name, source=tc.describe())
        self.report.tables[name] = load
        self.line_offsets[name] = tc.skip + (1 if tc.header else 0)
        try:
            source = self._open(tc)
            load.encoding = source.encoding
            mapping, drivers = _mapping(spec, tc, source)
            mapping, drivers, derived = self._semantics(name, tc, source, mapping, drivers)
            missing = [c for c in spec.required if c not in mapping]
            if missing:
                load.skipped = True
                load.source_rows = int(self.q(f"SELECT count(*) FROM {source.relation}")[0][0])
                self.report.issues.append(Issue(
                    rule="missing_column", table=name, column=", ".join(missing), count=load.source_rows,
                    files=[p.name for p in tc.files] or [tc.describe()],
                    examples=[{"available_columns": ", ".join(c for c in source.columns if c != "_file")}],
                    message=f"required column(s) {', '.join(missing)} not found; map them in "
                            f"[tables.{name}.columns]" + _DERIVABLE_HINTS.get((name, tuple(missing)), ""),
                ))
                return
            self._stage(name, spec, tc, source, mapping, drivers)
            self._semantic_notes(name, spec, tc, mapping, derived)
        except (SourceError, ConfigError):
            raise
        except duckdb.Error as exc:
            raise SourceError(explain_read_error(exc, tc)) from None

    # -- sources and query tables
    def _open(self, tc: TableConfig, **kw: Any) -> Source:
        """A table's source: its files/database, or its query over the declared ``[sources.*]``."""
        if tc.is_query:
            return self._query_source(tc, **kw)
        return open_source(self.con, tc, self.work_dir, **kw)

    def _open_sources(self, all_varchar: bool = False) -> None:
        """Each ``[sources.NAME]`` as a table NAME in a separate in-memory catalog (kept out of the cache).

        Read once: a view over a CSV would be sniffed again by every query that binds it.
        """
        if not self._sources_open:
            self.con.execute(f"ATTACH ':memory:' AS {SOURCES_DB}")
            self._sources_open = True
        for sname, stc in self.config.sources.items():
            target = f"{SOURCES_DB}.main.{quote_ident(sname)}"
            try:
                src = open_source(self.con, stc, self.work_dir, all_varchar=all_varchar)
                try:
                    self.con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * EXCLUDE (_file) FROM {src.relation}")
                except duckdb.ConversionException:
                    # the sniffer guessed a type that a later row breaks: this source is read as text
                    src = open_source(self.con, stc, self.work_dir, all_varchar=True)
                    self.con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * EXCLUDE (_file) FROM {src.relation}")
            except duckdb.Error as exc:
                raise SourceError(explain_read_error(exc, stc)) from None

    def _query_source(self, tc: TableConfig, all_varchar: bool = False, force_encoding: str | None = None) -> Source:
        if not self._sources_open or all_varchar:
            self._open_sources(all_varchar=all_varchar)
        view = f"{SOURCES_DB}.main.{quote_ident('__query_' + tc.name)}"
        query = check_query(tc.query or "", f"{tc.key}.query", self.config.sources)
        try:
            self.con.execute(f"CREATE OR REPLACE VIEW {view} AS {query}")
            relation = f"(SELECT *, {quote_str(tc.key + '.query')} AS _file FROM {view})"
            columns = {r[0]: r[1] for r in self.q(f"DESCRIBE SELECT * FROM {relation}")}
        except duckdb.Error as exc:
            raise ConfigError(f"{tc.key}.query does not work: {clean_duckdb_message(str(exc))} (the query may use "
                              f"the declared sources {', '.join(self.config.sources)} and their columns)") from None
        return Source(relation, columns, tc.describe())

    def close_sources(self) -> None:
        if self._sources_open:
            self.con.execute(f"DETACH {SOURCES_DB}")
            self._sources_open = False

    # -- dates
    def _date_formats(self, name: str, tc: TableConfig, inner: str, col: str) -> tuple[str, ...]:
        """The date formats for a text column without ``date_format``; ConfigError when ambiguous.

        A sample of distinct values finds the format families that read all of them; when more than one
        does, the whole column decides: the families that read every value, and whether they disagree.
        """
        c = quote_ident(col)
        val = f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"
        fams = list(DATE_FAMILIES)

        def ok(fam: str, v: str = "v") -> str:
            fmts = "[" + ", ".join(quote_str(f) for f in DATE_FAMILIES[fam]) + "]"
            return (f"(try_strptime({v}, {fmts}) BETWEEN TIMESTAMP '1900-01-01' "
                    f"AND TIMESTAMP '2100-12-31 23:59:59')")

        sample = (f"SELECT DISTINCT {val} AS v FROM (SELECT {c} FROM ({inner}) LIMIT {DATE_SAMPLE_ROWS}) "
                  f"WHERE {val} IS NOT NULL LIMIT {DATE_SAMPLE_DISTINCT}")
        row = self.q(f"SELECT count(*), {', '.join(f'count(*) FILTER (WHERE {ok(f)})' for f in fams)} "
                     f"FROM ({sample})")[0]
        n, counts = row[0], row[1:]
        fit = [f for f, k in zip(fams, counts, strict=True) if n and k == n]
        if len(fit) <= 1:
            return DATE_FAMILIES[fit[0]] if fit else DEFAULT_DATE_FORMATS
        # several families read the sample: check the whole column
        def parsed(fam: str) -> str:
            fmts = "[" + ", ".join(quote_str(f) for f in DATE_FAMILIES[fam]) + "]"
            return f"try_strptime(v, {fmts})"

        col_vals = f"SELECT DISTINCT {val} AS v FROM ({inner}) WHERE {val} IS NOT NULL"
        fails = self.q(f"SELECT {', '.join(f'count(*) FILTER (WHERE NOT {ok(f)})' for f in fit)} "
                       f"FROM ({col_vals})")[0]
        full = [f for f, k in zip(fit, fails, strict=True) if k == 0] or fit
        if len(full) == 1:
            return DATE_FAMILIES[full[0]]
        pairs = [(a, b) for i, a in enumerate(full) for b in full[i + 1:]]
        disagree = self.q(f"SELECT {', '.join(f'count(*) FILTER (WHERE {parsed(a)} <> {parsed(b)})' for a, b in pairs)} "
                          f"FROM ({col_vals})")[0]
        clash = [(a, b) for (a, b), k in zip(pairs, disagree, strict=True) if k]
        if not clash:
            return DATE_FAMILIES[full[0]]
        rivals = list(dict.fromkeys(f for pair in clash for f in pair))
        a, b = clash[0]
        examples = [r[0] for r in self.q(f"SELECT v FROM ({col_vals}) WHERE {parsed(a)} <> {parsed(b)} "
                                         f"ORDER BY v LIMIT {MAX_EXAMPLES}")]
        shown, cands = [], []
        for v in examples[:3]:
            readings = []
            for fam in rivals:
                fmt = next((f for f in DATE_FAMILIES[fam]
                            if self.q(f"SELECT try_strptime({quote_str(v)}, {quote_str(f)})")[0][0] is not None), None)
                if fmt:
                    when = self.q(f"SELECT strptime({quote_str(v)}, {quote_str(fmt)})")[0][0]
                    readings.append(f"{when:%Y-%m-%d} as {fmt}")
                    cands.append(fmt)
            shown.append(f"{v!r} is " + " but ".join(readings))
        source_col = next((o.source for o in [tc.options.get(col)] if o and o.source), tc.columns.get(col, col))
        raise ConfigError(
            f"{tc.describe()}: the dates in column {source_col!r} ({tc.key}.columns.{col}) can be read in more than "
            f"one way: {'; '.join(shown)}. Set {tc.key}.date_format to the right one "
            f"(candidates: {', '.join(dict.fromkeys(cands))}); examples: {', '.join(map(repr, examples))}")

    def _stage(self, name: str, spec: TableSpec, tc: TableConfig, source: Source, mapping: dict[str, str],
               drivers: list[str]) -> None:
        check_table_sql(name, mapping, tc.filter)  # config SQL stays inside its box (workbench.sqlguard)
        keep = f"COALESCE(({tc.filter}), false)" if tc.filter else "true"
        mapped_sql = ", ".join(f"{expr} AS {quote_ident(col)}" for col, expr in mapping.items())
        inner = f"SELECT {mapped_sql}, _file, {keep} AS _keep FROM {source.relation}"
        try:
            types = {r[0]: r[1] for r in self.q(f"DESCRIBE {inner}")}
        except duckdb.Error as exc:
            raise ConfigError(f"{tc.key}: a column expression or the filter does not work on "
                              f"{tc.describe()}: {clean_duckdb_message(str(exc))} (source columns: "
                              f"{', '.join(c for c in source.columns if c != '_file')})") from None
        kinds = {col: (spec.column(col).kind if spec.column(col) else spec.extra_kind or "text") for col in mapping}
        kinds.update({s: "text" for s in tc.segments if s in kinds and not spec.column(s)})  # segments: labels
        self.kinds[name] = kinds
        fills = {col: opt.fill for col, opt in tc.options.items() if opt.fill is not None and col in kinds}

        def formats_for(inner: str, types: dict[str, str]) -> tuple[str, ...] | dict[str, tuple[str, ...]]:
            if tc.date_format:
                return (tc.date_format, f"{tc.date_format} %H:%M:%S", f"{tc.date_format} %H:%M")
            # only text date columns need a format decision (typed dates and the common ISO case skip this)
            return {col: self._date_formats(name, tc, inner, col) for col, kind in kinds.items()
                    if kind in ("date", "timestamp") and types[col].upper() == "VARCHAR"}

        try:
            formats = formats_for(inner, types)
            self.con.execute(_staging_sql(name, inner, types, kinds, formats, fills))
        except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
            if isinstance(exc, duckdb.ConversionException):
                # the CSV sniffer guessed a type that a later row breaks: read everything as text
                source = self._open(tc, all_varchar=True)
            elif ("unicode" in str(exc).lower() or "utf" in str(exc).lower()) and not tc.is_query:
                source = open_source(self.con, tc, self.work_dir, force_encoding="gb18030")
                self.report.tables[name].encoding = "gb18030"
            else:
                raise SourceError(explain_read_error(exc, tc)) from None
            inner = f"SELECT {mapped_sql}, _file, {keep} AS _keep FROM {source.relation}"
            try:
                types = {r[0]: r[1] for r in self.q(f"DESCRIBE {inner}")}
                formats = formats_for(inner, types)
                self.con.execute(_staging_sql(name, inner, types, kinds, formats, fills))
            except duckdb.Error as exc2:
                raise SourceError(explain_read_error(exc2, tc)) from None
        self._validate(name, spec, tc, kinds, drivers)

    def _validate(self, name: str, spec: TableSpec, tc: TableConfig, kinds: dict[str, str],
                  drivers: list[str]) -> None:
        load = self.report.tables[name]
        load.columns = list(kinds)
        load.source_rows = int(self.q(f"SELECT count(*) FROM _stg_{name}")[0][0])
        load.filtered_rows = int(self.q(f"SELECT count(*) FROM _stg_{name} WHERE NOT _keep")[0][0])
        if load.source_rows == 0:  # header only: loads as an empty table that analyses skip (Dataset.tables)
            self.report.issues.append(Issue(
                "empty_table", name, None, 0, files=[p.name for p in tc.files] or [tc.describe()],
                message="the source has a header but no data rows; analyses that need this table are skipped"))
        if load.filtered_rows:
            self.report.issues.append(Issue("filtered", name, None, load.filtered_rows,
                                            message=f"filter: {tc.filter}"))
        for col, opt in tc.options.items():
            if opt.fill is not None and col in kinds:
                self._issue("filled", name, col, f"_keep AND {quote_ident(col + '__filled')}",
                            [c for c in ("customer_id", spec.unique) if c and c in kinds], action="filled",
                            message=f"empty values set to {opt.fill!r} ({tc.key}.columns.{col}.fill)")
        excluded: list[str] = []  # predicates of rows to drop
        nulled: dict[str, list[str]] = {}  # column -> predicates where the value is set missing
        id_cols = [c for c in ("customer_id", spec.unique) if c and c in kinds]
        live = "_keep"
        for col, kind in kinds.items():
            column = spec.column(col)
            required = bool(column and column.required)
            c = quote_ident(col)
            if kind in ("number", "rating", "integer", "binary", "date", "timestamp"):
                rule = "unparseable_date" if kind in ("date", "timestamp") else "wrong_type"
                bad = f"{live} AND {quote_ident(col + '__bad')} IS NOT NULL"
                action = "excluded" if required else "nulled"
                if self._issue(rule, name, col, bad, id_cols + [col + "__bad"], action) and required:
                    excluded.append(f"{quote_ident(col + '__bad')} IS NOT NULL")
            if required:
                where = f"{live} AND {c} IS NULL" + (
                    f" AND {quote_ident(col + '__bad')} IS NULL" if kind not in ("id", "text") else "")
                if self._issue("missing_value", name, col, where, id_cols + [col]):
                    excluded.append(f"{c} IS NULL")
            if kind == "rating":
                lo, hi = tc.scales.get(col, DEFAULT_SCALE)
                self.scales.setdefault(name, {})[col] = (lo, hi)
                out = f"{c} IS NOT NULL AND ({c} < {lo} OR {c} > {hi})"
                action = "excluded" if required else "nulled"
                if self._issue("out_of_scale", name, col, f"{live} AND {out}", id_cols + [col], action):
                    (excluded.append(out) if required else nulled.setdefault(col, []).append(out))
            if kind in ("date", "timestamp"):
                limit = f"DATE {quote_str((self.as_of + dt.timedelta(days=1)).isoformat())}"
                fut = f"{c} >= {limit}"
                if self._issue("future_date", name, col, f"{live} AND {fut}", id_cols + [col]):
                    excluded.append(fut)
        if name == "complaints":
            for col in ("closed_at", "first_response_at"):
                if col in kinds:
                    cond = f"{quote_ident(col)} < opened_at"
                    if self._issue("closed_before_opened", name, col, f"{live} AND {cond}",
                                   id_cols + ["opened_at", col]):
                        excluded.append(cond)
        keep_pred = " AND ".join(["_keep"] + [f"NOT COALESCE({p}, false)" for p in excluded])
        unique = spec.unique if spec.unique in kinds else None
        if unique:
            later_copies = (f"rowid IN (SELECT _rid FROM (SELECT rowid AS _rid, row_number() OVER "
                            f"(PARTITION BY {quote_ident(unique)} ORDER BY rowid) AS _k FROM _stg_{name} "
                            f"WHERE {keep_pred} AND {quote_ident(unique)} IS NOT NULL) WHERE _k > 1)")
            self._issue("duplicate_id", name, unique, later_copies, [unique])
        cols, margin_source = canonical_columns(name, kinds, nulled, self.config.margin_rate)
        if name == "transactions":
            self.margin_source = margin_source
        if unique:
            body = (f"SELECT {', '.join(cols)} FROM _stg_{name} WHERE {keep_pred} "
                    f"QUALIFY {quote_ident(unique)} IS NULL OR row_number() OVER "
                    f"(PARTITION BY {quote_ident(unique)} ORDER BY rowid) = 1")
        else:
            body = f"SELECT {', '.join(cols)} FROM _stg_{name} WHERE {keep_pred}"
        if unique:
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {body}")
            self.materialised.append(name)
        else:
            # large event tables (transactions, points): a view over the staging table instead of a second
            # copy — the filter is a few cheap predicates, and the build is a single write
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
        load.loaded_rows = int(self.q(f"SELECT count(*) FROM {name}")[0][0])
        load.excluded_rows = load.source_rows - load.filtered_rows - load.loaded_rows
        if name == "surveys":
            self.drivers = [d for d in drivers if d in kinds]

    # -- table semantics (workbench.toml keys wave_date, segments, loyal_kind, churn_as_of, closed_statuses)
    def _semantics(self, name: str, tc: TableConfig, source: Source, mapping: dict[str, str],
                   drivers: list[str]) -> tuple[dict[str, str], list[str], dict[str, str]]:
        """Add segment columns and derivable required columns to ``mapping``; check the semantic keys.

        Returns the mapping, the driver columns (segments removed) and ``{column: note}`` for the
        columns filled from a key or another column (reported as ``derived_column`` info notes).
        """
        where = f"[tables.{name}]"
        spec = TABLES[name]
        available = ", ".join(c for c in source.columns if c != "_file")
        mapping = dict(mapping)
        derived: dict[str, str] = {}
        by_lower = {c.lower(): c for c in source.columns if c != "_file"}
        for seg in tc.segments:
            col = spec.column(seg)
            if col is not None and col.kind != "text":
                raise ConfigError(f"{where}.segments: {seg!r} is the canonical {col.kind} column {name}.{seg}; "
                                  "segments are text labels")
            if tc.drivers is not None and seg in tc.drivers:
                raise ConfigError(f"{where}: {seg!r} is listed in both drivers and segments; keep one")
            if seg in mapping and seg not in drivers:
                continue  # a canonical text column (customers.region …) or mapped explicitly
            src = seg if seg in source.columns else by_lower.get(seg.lower())
            if src is None:
                raise ConfigError(f"{where}.segments: column {seg!r} not in {tc.describe()} (has {available})")
            mapping[seg] = _with_options(quote_ident(src), tc, seg)  # table-level na_values apply too
        drivers = [d for d in drivers if d not in tc.segments]
        if name == "surveys" and tc.wave_date is not None:
            if "date" in mapping:
                raise ConfigError(f"{where}.wave_date dates the whole file as one wave, but the source already "
                                  f"has a date column ({mapping['date']}); remove wave_date or map date elsewhere")
            mapping["date"] = f"DATE {quote_str(tc.wave_date.isoformat())}"
            derived["date"] = (f"date = wave_date {tc.wave_date.isoformat()} for every row: the file is one "
                               "undated survey wave")
        if name == "surveys" and tc.loyal_kind is not None and "loyal" not in mapping:
            raise ConfigError(f"{where}.loyal_kind is set but no loyal column is mapped; map loyal in "
                              f"[tables.surveys.columns] (source columns: {available})")
        if name == "complaints" and tc.closed_statuses is not None and "status" not in mapping:
            raise ConfigError(f"{where}.closed_statuses is set but no status column is mapped; map status in "
                              f"[tables.complaints.columns] (source columns: {available})")
        if name == "customers":
            if tc.churn_as_of is not None and not ({"churned", "tenure_months"} & set(mapping)):
                raise ConfigError(f"{where}.churn_as_of is the date the churned flag and tenure_months refer "
                                  "to, but neither is mapped in [tables.customers.columns] "
                                  f"(source columns: {available})")
            if "signup_date" not in mapping and "tenure_months" in mapping:
                as_of = self._churn_as_of(tc)
                t = f"TRY_CAST(CAST(({mapping['tenure_months']}) AS VARCHAR) AS DOUBLE)"
                whole = f"TRY_CAST(floor({t}) AS INTEGER)"
                part = f"TRY_CAST(round(({t} - floor({t})) * 30.436875) AS INTEGER)"
                mapping["signup_date"] = (
                    f"CASE WHEN {t} BETWEEN -1200 AND 1200 THEN CAST(DATE {quote_str(as_of.isoformat())} "
                    f"- to_months({whole}) - to_days({part}) AS DATE) END")
                derived["signup_date"] = (
                    f"signup_date = {as_of.isoformat()} (churn_as_of) − tenure_months (fractions of a month "
                    "as days of 30.44); customers without a tenure have no signup date")
        return mapping, drivers, derived

    def _churn_as_of(self, tc: TableConfig) -> dt.date:
        return tc.churn_as_of or self.as_of

    def _semantic_notes(self, name: str, spec: TableSpec, tc: TableConfig, mapping: dict[str, str],
                        derived: dict[str, str]) -> None:
        """Info notes for derived columns, a warning when no loyalty measure is mapped, and the meta."""
        load = self.report.tables[name]
        files = [p.name for p in tc.files] or [tc.describe()]
        for col, note in derived.items():
            self.report.issues.append(Issue("derived_column", name, col, load.source_rows, files=files,
                                            action="derived", message=note))
        if spec.one_of and not any(c in mapping for c in spec.one_of):
            self.report.issues.append(Issue(
                "missing_measure", name, " or ".join(spec.one_of), load.loaded_rows, files=files,
                message=f"none of {', '.join(spec.one_of)} is mapped: the table is loaded, and analyses "
                        f"that need a loyalty measure say so; map one in [tables.{name}.columns]",
            ))
        if tc.segments:
            self.semantics.setdefault("segments", {})[name] = list(tc.segments)
        if name == "surveys":
            self.semantics["loyal_kind"] = tc.loyal_kind or "intent"
            self.semantics["wave_date"] = tc.wave_date.isoformat() if tc.wave_date else None
        if name == "complaints":
            self.semantics["closed_statuses"] = list(tc.closed_statuses) if tc.closed_statuses else None
        if name == "customers":
            as_of = self._churn_as_of(tc)
            self.semantics["churn_as_of"] = as_of.isoformat()
            if {"churned", "churned_at"} <= set(self.kinds.get(name, {})):
                day = f"DATE {quote_str(as_of.isoformat())}"
                self._issue("churn_mismatch", name, "churned", f"_keep AND ((churned = 0 AND churned_at <= {day}) "
                            f"OR (churned = 1 AND churned_at > {day}))", ["customer_id", "churned", "churned_at"])

    # -- cross-table rules
    def cross_checks(self) -> None:
        present = set(self._present())
        if "customers" not in present and "transactions" in present:
            self.con.execute("CREATE TABLE customers AS SELECT customer_id, CAST(min(date) AS DATE) AS signup_date "
                             "FROM transactions GROUP BY customer_id ORDER BY customer_id")
            n = int(self.q("SELECT count(*) FROM customers")[0][0])
            self.report.tables["customers"] = TableLoad("customers", "derived from transactions", n, 0, 0, n,
                                                        columns=["customer_id", "signup_date"], derived=True)
            self.kinds["customers"] = {"customer_id": "id", "signup_date": "date"}
            present.add("customers")
        if "customers" in present and not self.report.tables["customers"].derived:
            for table in ("transactions", "surveys", "complaints", "members", "points"):
                if table in present and "customer_id" in self.kinds.get(table, {}):
                    where = ("_keep AND customer_id IS NOT NULL AND customer_id NOT IN "
                             "(SELECT customer_id FROM customers)")
                    self._issue("orphan_customer_id", table, "customer_id", where, ["customer_id"])
        if "points" in present:
            bal = """SELECT customer_id, date, points, sum(points) OVER (PARTITION BY customer_id ORDER BY date,
                     CASE WHEN points >= 0 THEN 0 ELSE 1 END ROWS UNBOUNDED PRECEDING) AS balance FROM points"""
            n = self.q(f"SELECT count(DISTINCT customer_id) FROM ({bal}) WHERE balance < -1e-9")[0][0]
            if n:
                ex = self.con.execute(
                    f"SELECT customer_id, CAST(date AS VARCHAR), points, balance FROM ({bal}) WHERE balance < -1e-9 "
                    f"QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY date) = 1 "
                    f"ORDER BY customer_id LIMIT {MAX_EXAMPLES}").fetchall()
                self.report.issues.append(Issue(
                    "negative_points_balance", "points", "points", int(n),
                    files=[p.name for p in self.config.tables["points"].files],
                    examples=[{"customer_id": r[0], "date": r[1], "points": r[2], "balance": r[3]} for r in ex],
                    message="customers whose running points balance goes below zero (rows kept, flagged)",
                ))

    def _order_lines(self, present: list[str]) -> str | None:
        """``"one"`` when every order (``order_id`` per customer and day, as the analyses count orders) is
        one transaction row, ``"many"`` when some order has several lines, None without ``order_id``.

        Known once at build time, it lets order counts come from the per-customer scan instead of a second
        grouping by order (orders are then rows).
        """
        if "transactions" not in present or "order_id" not in self.kinds.get("transactions", {}):
            return None
        dup = self.q("SELECT 1 FROM transactions GROUP BY customer_id, order_id, CAST(date AS DATE) "
                     "HAVING count(*) > 1 LIMIT 1")
        return "many" if dup else "one"

    def _present(self) -> list[str]:
        rows = self.q("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                      "AND table_catalog = current_database()")
        names = {r[0] for r in rows}
        return [t for t in TABLES if t in names]

    def finish(self, fp: str, seconds: float) -> dict[str, Any]:
        self.close_sources()
        present = self._present()
        for t in self.materialised:  # staging tables behind views stay; the others are no longer needed
            self.con.execute(f"DROP TABLE IF EXISTS _stg_{t}")
        meta = {
            "schema_version": SCHEMA_VERSION,
            "workbench_version": __version__,
            "fingerprint": fp,
            "name": self.config.name,
            "currency": self.config.currency,
            "margin_rate": self.config.margin_rate,
            "margin_source": self.margin_source,
            "source": self.config.source_label(),
            "built_at": dt.datetime.now().isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 3),
            "tables": present,
            "kinds": {t: self.kinds.get(t, {}) for t in present},
            "scales": {t: {c: list(v) for c, v in s.items()} for t, s in self.scales.items()},
            "drivers": self.drivers,
            "validation": self.report.to_dict(),
            **self.semantics,
        }
        meta["order_lines"] = self._order_lines(present)
        meta["integrity"] = integrity.table_integrity(self.con)  # row counts + checksums, verified on open
        self.con.execute("CREATE TABLE _workbench_meta (meta VARCHAR)")
        self.con.execute("INSERT INTO _workbench_meta VALUES (?)", [json.dumps(meta, default=str, ensure_ascii=False)])
        return meta


# ----------------------------------------------------------------- dataset
def cache_dir() -> Path:
    """Where cache files live: ``$WORKBENCH_CACHE_DIR`` or ``~/.cache/loyalty-workbench``."""
    return Path(os.environ.get("WORKBENCH_CACHE_DIR") or Path.home() / ".cache" / "loyalty-workbench")


def _code_hash() -> str:
    """Hash of the loader's own code, so a changed loader never reuses an old cache."""
    here = Path(__file__).parent
    h = hashlib.sha1()
    for name in ("engine.py", "io.py", "schema.py", "config.py", "sqlguard.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def _cache_path(config: DatasetConfig) -> tuple[Path, str]:
    fp = fingerprint(config, extra=f"{SCHEMA_VERSION}|{__version__}|{_code_hash()}")
    anchor = str(config.config_path or config.root)
    prefix = hashlib.sha1(anchor.encode()).hexdigest()[:10]
    return cache_dir() / f"{prefix}-{fp}.duckdb", fp


LOAD_MEMORY_DEFAULT = 1536 * 2**20  # loading streams file by file; more memory buys little
ANALYSIS_MEMORY_SHARE = 0.5  # the rest is for pandas/numpy/models in the same process and the kernel


def physical_memory() -> int:
    """Bytes of RAM this process may use: the machine's, or the cgroup (container) limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def memory_limit_bytes(setting: str | None, *, loading: bool, total: int | None = None) -> int:
    """DuckDB's memory limit in bytes from ``[engine].memory_limit`` (or ``WORKBENCH_DUCKDB_MEMORY``).

    ``"8GB"``/``"512MiB"`` are amounts, ``"50%"`` a share of :func:`physical_memory`. Without a setting:
    half the RAM for analyses, 1.5 GB (or half the RAM if smaller) while loading.
    """
    total = physical_memory() if total is None else total
    setting = os.environ.get("WORKBENCH_DUCKDB_MEMORY") or setting
    if not setting:
        share = int(total * ANALYSIS_MEMORY_SHARE)
        return min(LOAD_MEMORY_DEFAULT, share) if loading else share
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]i?B)\s*$", setting, re.I)
    if not m:
        raise ConfigError(f'memory limit {setting!r} (WORKBENCH_DUCKDB_MEMORY or [engine].memory_limit): write an '
                          'amount such as "8GB" or a share of RAM such as "50%"')
    number, unit = float(m[1]), m[2].upper()
    if unit == "%":
        return int(total * number / 100)
    power = "KMGT".index(unit[0]) + 1
    return int(number * (1024 if "I" in unit else 1000) ** power)


def duckdb_settings(settings: EngineSettings | None, *, loading: bool) -> dict[str, Any]:
    """``duckdb.connect(config=...)`` for this dataset: bounded memory and a spill folder that exists."""
    settings = settings or EngineSettings()
    temp = Path(os.environ.get("WORKBENCH_DUCKDB_TEMP") or settings.temp_directory or cache_dir() / "spill")
    temp.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "memory_limit": f"{memory_limit_bytes(settings.memory_limit, loading=loading) // 2**20}MiB",
        "temp_directory": str(temp),
    }
    if settings.threads:
        out["threads"] = settings.threads
    return out


def build_cache(config: DatasetConfig, path: Path, fp: str) -> dict[str, Any]:
    """Load, validate and materialise ``config`` into the DuckDB file ``path`` (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(tmp), config={
        # bounded memory (DuckDB spills to disk beyond it); file order kept so rowid = row in file
        **duckdb_settings(config.engine, loading=True),
        "preserve_insertion_order": True,
    })
    # from here on the connection reads only this dataset's files (and their transcoded copies)
    lock_connection(con, source_files(config), [cache_dir() / "work"])
    try:
        builder = _Builder(config, con, cache_dir() / "work")
        for name in LOAD_ORDER:
            if name in config.tables:
                builder.load_table(name, config.tables[name])
        builder.cross_checks()
        if not builder._present():
            raise DataError(f"{config.source_label()}: no table could be loaded:\n{builder.report!r}",
                            builder.report)
        if not any(load.loaded_rows for load in builder.report.tables.values() if not load.skipped):
            raise DataError(f"{config.source_label()}: no table has any rows to analyse:\n{builder.report!r}",
                            builder.report)
        meta = builder.finish(fp, time.perf_counter() - started)
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
        raise
    con.close()
    integrity.write_stamp(tmp, path)
    os.replace(tmp, path)
    for old in path.parent.glob(path.name.split("-")[0] + "-*.duckdb"):
        if old != path:
            integrity.remove(old)
    return meta


class Dataset:
    """A loaded, validated dataset: canonical tables as Ibis expressions.

    Open with :func:`open_dataset`. Tables absent from the data raise
    :class:`MissingDataError` with a message naming what is missing, so an
    analysis can be skipped cleanly (see :meth:`require`).
    """

    #: :meth:`restrict` (the customer filter bar) works on this dataset (not on the warehouse engines yet)
    supports_filters = True

    def __init__(self, path: Path, meta: dict[str, Any], config: DatasetConfig | None = None):
        self.path = path
        self.meta = meta
        self.config = config
        self._con = duckdb.connect(str(path), read_only=True)
        # SET, not connect(config=...): DuckDB refuses a second connection to the same file with a
        # different configuration, and other readers (metadata, integrity checks) connect plainly
        for key, value in duckdb_settings(config.engine if config else None, loading=False).items():
            self._con.execute(f"SET {key} = {quote_str(str(value))}")
        self.backend = ibis.duckdb.from_connection(self._con)

    # metadata
    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def currency(self) -> str:
        return self.meta.get("currency") or "CNY"

    @property
    def margin_rate(self) -> float | None:
        return self.meta.get("margin_rate")

    @property
    def source(self) -> str:
        return self.meta.get("source", "")

    @property
    def tables(self) -> list[str]:
        """Tables with at least one loaded row (an empty table counts as absent; see :attr:`empty_tables`)."""
        empty = set(self.empty_tables)
        return [t for t in self.meta["tables"] if t not in empty]

    @property
    def empty_tables(self) -> list[str]:
        """Tables in the cache with no loaded rows (header-only source, or every row filtered/excluded)."""
        loads = self.validation.tables
        return [t for t in self.meta["tables"] if t in loads and loads[t].loaded_rows == 0]

    @property
    def programme(self) -> dict[str, Any]:
        """``[programme]`` settings from workbench.toml (point value, expiry, costs, levels); empty if none."""
        return dict(self.config.programme) if self.config is not None else {}

    @property
    def drivers(self) -> list[str]:
        return list(self.meta.get("drivers", []))

    @property
    def orders_are_rows(self) -> bool:
        """Whether each order (``order_id`` per customer and day) is one transaction row, as checked when the
        dataset was built (False when unknown, e.g. on a warehouse engine: order counts then group by order)."""
        return self.meta.get("order_lines") == "one"

    @property
    def loyal_kind(self) -> str:
        """Whether ``surveys.loyal`` is observed ``"behaviour"`` or stated ``"intent"`` (the default)."""
        return self.meta.get("loyal_kind") or "intent"

    @property
    def closed_statuses(self) -> list[str] | None:
        """``[tables.complaints].closed_statuses`` (SQL LIKE patterns, case-insensitive); None = not configured."""
        got = self.meta.get("closed_statuses")
        return list(got) if got else None

    @property
    def churn_as_of(self) -> dt.date | None:
        """The date ``customers.churned`` and ``tenure_months`` refer to (churn_as_of, else the load as-of)."""
        got = self.meta.get("churn_as_of")
        return dt.date.fromisoformat(got) if got else None

    def segment_columns(self, table: str) -> list[str]:
        """Text columns to segment ``table`` by: customers' segment/region/channel and any ``segments = [...]``."""
        cols = self.columns(table)
        base = [c for c in ("segment", "region", "channel") if c in cols] if table == "customers" else []
        extra = [c for c in self.meta.get("segments", {}).get(table, []) if c in cols]
        return list(dict.fromkeys(base + extra))

    def survey_waves(self) -> int:
        """Number of survey waves: distinct ``wave`` labels, else distinct dates (1 = a single wave)."""
        self.require("surveys")
        if "wave" in self.columns("surveys"):
            n = self._con.execute("SELECT count(DISTINCT wave) FROM surveys").fetchall()[0][0]
            if n:
                return int(n)
        return int(self._con.execute("SELECT count(DISTINCT date) FROM surveys").fetchall()[0][0])

    @property
    def customers_derived(self) -> bool:
        return bool(self.validation.tables.get("customers") and self.validation.tables["customers"].derived)

    @cached_property
    def validation(self) -> ValidationReport:
        return ValidationReport.from_dict(self.meta["validation"])

    def scale(self, table: str, column: str) -> tuple[float, float]:
        lo, hi = self.meta.get("scales", {}).get(table, {}).get(column, DEFAULT_SCALE)
        return float(lo), float(hi)

    def columns(self, table: str) -> list[str]:
        if table not in self.tables:
            return []
        cols = list(self.meta["kinds"].get(table, {}))
        if table == "transactions" and self.meta.get("margin_source") == "margin_rate":
            cols.append("margin")
        return cols

    def has(self, table: str, *columns: str) -> bool:
        return table in self.tables and all(c in self.columns(table) for c in columns)

    def require(self, table: str, *columns: str, reason: str = "") -> None:
        """Raise :class:`MissingDataError` unless ``table`` with ``columns`` is present."""
        if table not in self.tables:
            load = self.validation.tables.get(table)
            if not reason and load is not None and table in self.empty_tables:
                reason = (f"it has no data rows (source rows {load.source_rows:,}, filtered {load.filtered_rows:,}, "
                          f"excluded {load.excluded_rows:,})")
            raise MissingDataError(table, (), reason)
        missing = tuple(c for c in columns if c not in self.columns(table))
        if missing:
            raise MissingDataError(table, missing, reason)

    # customer filter (the notebook filter bar)
    @property
    def where(self) -> dict[str, tuple[Any, ...]]:
        """The customer filter of this view (column → allowed values); empty for the whole dataset."""
        return {}

    @property
    def base(self) -> Dataset:
        """The whole dataset this is a view of (itself when unfiltered)."""
        return self

    def restrict(self, **where: Any) -> Dataset:
        """A view of this dataset restricted to the customers matching ``where``.

        ``where`` maps a column of ``customers`` to a value or a list of values (``None`` = not
        recorded); ``None`` or an empty list as the whole choice drops that column's condition. In the
        view, ``customers`` holds the matching customers and every other table with a
        ``customer_id`` column keeps only their rows (a semi-join), through :meth:`table` and
        :meth:`sql` alike (temporary views that shadow the canonical tables on the view's own
        connection). Rows without a customer id (e.g. anonymous complaints) are not in any
        customer's selection, so they drop out while a filter is set (:meth:`unassigned` counts
        them). Tables without ``customer_id`` are unfiltered. Load accounting (:attr:`validation`)
        is always the whole dataset's. An empty ``where`` returns the whole dataset.

        >>> gold = ds.restrict(segment="Premium", region=["East", "North"])  # doctest: +SKIP
        """
        merged = {**self.where, **{k: _choice(v) for k, v in where.items()}}
        merged = {k: v for k, v in merged.items() if v}
        if not merged:
            return self.base
        return CustomerView(self.base, merged)

    def unassigned(self) -> dict[str, int]:
        """Rows per table (with a ``customer_id`` column) whose customer id is empty: not in any filter."""
        out = {}
        for name in self.tables:
            if name != "customers" and "customer_id" in self.columns(name):
                n = self.base._con.execute(f"SELECT count(*) FROM {quote_ident(name)} "
                                           "WHERE customer_id IS NULL").fetchall()[0][0]
                if n:
                    out[name] = int(n)
        return out

    # data access
    def table(self, name: str) -> ibis.Table:
        """The canonical table ``name`` as an Ibis expression."""
        self.require(name)
        return self.backend.table(name)

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run read-only SQL on the canonical tables; returns pandas (aggregates only, please)."""
        return self._con.execute(query, params or []).df()

    def shared_table(self, key: str, query: str, version: Any = None) -> str:
        """Name of a temporary table holding ``query`` (DuckDB-dialect SQL), built once on this dataset and
        reused by every analysis that reads it, e.g. the purchase days that several lifecycle sections
        aggregate, instead of each one re-reading the transaction log.

        ``key`` names the table's content; another ``version`` for the same key (say, another end day)
        replaces the table. A customer filter is a dataset of its own, with its own tables; the data are
        read-only, so a table never goes stale. On PostgreSQL and Spark the statement goes through the
        warehouse connection (a temporary table; on Spark a cached view).
        """
        cache = self.__dict__.setdefault("_wb_shared_tables", {})
        got = cache.get(key)
        if got is not None and got[0] == version:
            return got[1]
        if got is not None:
            del cache[key]
            self._con.execute(f"DROP TABLE IF EXISTS {got[1]}")
        name = f"wb_{re.sub(r'[^a-z0-9]', '_', key.lower())[:40]}_{uuid.uuid4().hex[:12]}"
        self._con.execute(f"CREATE TEMP TABLE {name} AS {query}")
        cache[key] = (version, name)
        return name

    def date_range(self, table: str, column: str | None = None) -> tuple[Any, Any]:
        column = column or {"complaints": "opened_at", "members": "joined_at"}.get(table, "date")
        self.require(table, column)
        lo, hi = self._con.execute(f"SELECT min({quote_ident(column)}), max({quote_ident(column)}) "
                                   f"FROM {table}").fetchall()[0]
        return lo, hi

    def summary(self) -> pd.DataFrame:
        """One row per table: rows loaded/excluded, distinct customers, date range."""
        rows = []
        report = self.validation
        for t in self.tables:
            load = report.tables.get(t)
            cols = self.columns(t)
            n_cust = (self._con.execute(f"SELECT count(DISTINCT customer_id) FROM {t}").fetchall()[0][0]
                      if "customer_id" in cols else None)
            date_col = next((c for c in ("date", "opened_at", "joined_at", "signup_date") if c in cols), None)
            lo, hi = self.date_range(t, date_col) if date_col else (None, None)
            rows.append({
                "table": t, "rows": load.loaded_rows if load else None,
                "excluded": (load.excluded_rows + load.filtered_rows) if load else 0,
                "customers": n_cust, "first": lo, "last": hi,
                "derived": bool(load and load.derived),
            })
        return pd.DataFrame(rows)

    def close(self) -> None:
        try:
            self._con.close()
        except duckdb.Error:
            pass

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r}: {', '.join(self.tables)} ({self.path.name})>"


def _choice(value: Any) -> tuple[Any, ...]:
    """A filter choice as a tuple of values (a single value, a list, or None/[] for no condition)."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(value)
    return (value,)


def _condition(column: str, values: tuple[Any, ...]) -> str:
    """SQL condition ``column`` in ``values`` (``None`` among them = the column is empty)."""
    col = quote_ident(column)
    present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    parts = []
    if present:
        texts = ", ".join(quote_str(str(v)) for v in present)
        parts.append(f"CAST({col} AS VARCHAR) IN ({texts})")
    if len(present) < len(values):
        parts.append(f"NULLIF(trim(CAST({col} AS VARCHAR)), '') IS NULL")
    return "(" + " OR ".join(parts) + ")"


class CustomerView(Dataset):
    """A :class:`Dataset` restricted to some customers (see :meth:`Dataset.restrict`).

    Shares the cache file, metadata and load accounting of ``base``; has its own DuckDB
    connection (a cursor of the base's) on which temporary views named like the canonical tables
    hold the filtered rows, so Ibis tables and :meth:`sql` see the same selection.
    """

    def __init__(self, base: Dataset, where: dict[str, tuple[Any, ...]]):
        if base.where:
            raise ValueError("restrict the whole dataset (ds.base), not a view")
        base.require("customers")
        cols = base.columns("customers")
        unknown = [c for c in where if c not in cols]
        if unknown:
            raise ValueError(f"customer filter: column(s) {', '.join(unknown)} are not in table 'customers' "
                             f"(it has {', '.join(cols)})")
        self.path = base.path
        self.meta = base.meta
        self.config = base.config
        self._base = base
        self._where = dict(where)
        self.__dict__["validation"] = base.validation  # cached_property: share the parsed report
        self._con = base._con.cursor()
        db = quote_ident(self._con.execute("SELECT current_database()").fetchall()[0][0])
        cond = " AND ".join(_condition(c, v) for c, v in self._where.items())
        chosen = f"SELECT customer_id FROM {db}.main.customers WHERE {cond}"
        for name in base.tables:
            if name == "customers":
                sql = f"SELECT * FROM {db}.main.customers WHERE {cond}"
            elif "customer_id" in base.columns(name):
                sql = f"SELECT * FROM {db}.main.{quote_ident(name)} WHERE customer_id IN ({chosen})"
            else:
                continue
            self._con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS {sql}")
        self.backend = ibis.duckdb.from_connection(self._con)

    @property
    def where(self) -> dict[str, tuple[Any, ...]]:
        return dict(self._where)

    @property
    def base(self) -> Dataset:
        return self._base

    def __repr__(self) -> str:
        cond = "; ".join(f"{k} in {list(v)}" for k, v in self._where.items())
        return f"<Dataset {self.name!r} restricted to customers with {cond}>"


def _read_meta(path: Path) -> dict[str, Any]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return json.loads(con.execute("SELECT meta FROM _workbench_meta").fetchall()[0][0])
    finally:
        con.close()


def _trusted_meta(path: Path) -> dict[str, Any] | None:
    """The cache's metadata if the file is intact (stamp, metadata, row counts), else None."""
    problem = integrity.stamp_problem(path)
    meta = None
    if problem is None:
        try:
            con = duckdb.connect(str(path), read_only=True)
            try:
                meta = json.loads(con.execute("SELECT meta FROM _workbench_meta").fetchall()[0][0])
                problem = integrity.counts_problem(con, meta)
            finally:
                con.close()
        except (duckdb.Error, IndexError, TypeError, ValueError) as exc:
            problem = f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if problem:
        _log.info("cache %s is damaged (%s); rebuilding it", path.name, problem)
        return None
    return meta


def open_dataset(path: str | os.PathLike[str], refresh: bool = False, verify: bool = False) -> Dataset:
    """Open a dataset folder or ``workbench.toml``, building the cache if needed.

    A cache file that fails its integrity check (see :mod:`workbench.integrity`)
    is rebuilt as if it were missing.

    Parameters
    ----------
    path : str or Path
        Dataset folder or ``.toml`` config (see :func:`workbench.config.load_config`).
    refresh : bool
        Rebuild the cache, and the UTF-8 copies of GBK sources, even if the sources look unchanged.
    verify : bool
        Also recompute every cached table's checksum (one scan per table; ``workbench validate`` does).
    """
    config = load_config(path)
    if config.engine.is_warehouse:  # PostgreSQL / Spark: validated in the engine, nothing cached here
        from workbench.warehouse import open_warehouse

        return open_warehouse(config)
    cache_path, fp = _cache_path(config)
    meta = None
    if cache_path.exists() and not refresh:
        meta = _trusted_meta(cache_path)
    if meta is None:
        if refresh:
            integrity.forget_work_copies(source_files(config), cache_dir() / "work")
        build_cache(config, cache_path, fp)
        meta = _read_meta(cache_path)
    ds = Dataset(cache_path, meta, config)
    if verify and (problem := integrity.checksum_problem(ds._con, meta)):
        _log.info("cache %s is damaged (%s); rebuilding it", cache_path.name, problem)
        ds.close()
        build_cache(config, cache_path, fp)
        ds = Dataset(cache_path, _read_meta(cache_path), config)
    return ds


def _toml_value(value: Any) -> str:
    """A TOML literal for a str / number / bool / list / dict (inline table)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def dataset_from_frames(frames: dict[str, pd.DataFrame], folder: str | os.PathLike[str], name: str = "frames",
                        **dataset_options: Any) -> Dataset:
    """Write ``frames`` as Parquet into ``folder`` with a config and open them — for tests and demos.

    ``dataset_options`` go into ``[dataset]`` (e.g. ``margin_rate=0.3``); ``scales`` /
    ``drivers`` keys in the form ``{"surveys": {...}}`` go into the table sections, and
    ``table_options={"surveys": {"wave_date": "2024-06-30"}}`` adds any other table keys.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    scales = dataset_options.pop("scales", {})
    drivers = dataset_options.pop("drivers", None)
    table_options = dataset_options.pop("table_options", {})
    lines = ["[dataset]", f"name = {json.dumps(name, ensure_ascii=False)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in dataset_options.items()]
    for table, frame in frames.items():
        frame.to_parquet(root / f"{table}.parquet", index=False)
        lines += ["", f"[tables.{table}]", f'source = "{table}.parquet"']
        if table == "surveys" and drivers is not None:
            lines.append(f"drivers = {json.dumps(list(drivers))}")
        for col, (lo, hi) in scales.get(table, {}).items():
            lines.append(f"scales.{col} = [{lo}, {hi}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table_options.get(table, {}).items()]
    (root / "workbench.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return open_dataset(root / "workbench.toml")
