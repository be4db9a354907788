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
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pandas as pd

from workbench import __version__, integrity
from workbench.config import ConfigError, DatasetConfig, TableConfig, fingerprint, load_config
from workbench.io import Source, SourceError, open_source, quote_ident, quote_str
from workbench.schema import DEFAULT_SCALE, RULES, SCHEMA_VERSION, TABLES, Issue, TableSpec
from workbench.sqlguard import check_table_sql, lock_connection, source_files

MAX_EXAMPLES = 5
DEFAULT_DATE_FORMATS = (
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S.%f",
    "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y%m%d", "%Y年%m月%d日", "%Y.%m.%d",
)
LOAD_ORDER = ("customers", "transactions", "surveys", "complaints", "members", "points")
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
    mapping: dict[str, str] = {}
    for col in spec.names:
        if col in tc.columns:
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
    return mapping, drivers


def _typed(kind: str, col: str, src_type: str, date_formats: tuple[str, ...]) -> str:
    """SQL turning mapped column ``col`` (type ``src_type``) into its canonical kind; NULL on failure."""
    c = quote_ident(col)
    t = src_type.upper()
    is_num = any(t.startswith(n) for n in ("INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
                                          "UINTEGER", "USMALLINT", "UTINYINT", "DOUBLE", "FLOAT", "DECIMAL", "REAL"))
    is_float = any(t.startswith(n) for n in ("DOUBLE", "FLOAT", "DECIMAL", "REAL"))
    text = f"NULLIF(trim(CAST({c} AS VARCHAR)), '')"
    if kind == "id":
        if is_float:
            return (f"CASE WHEN {c} = floor({c}) AND abs({c}) < 9e15 THEN CAST(CAST({c} AS BIGINT) AS VARCHAR) "
                    f"ELSE CAST({c} AS VARCHAR) END")
        return text
    if kind == "text":
        return text
    if kind in ("number", "rating"):
        if is_num:
            return f"CAST({c} AS DOUBLE)"
        return f"TRY_CAST(regexp_replace({text}, '[,¥￥$€£\\s]', '', 'g') AS DOUBLE)"
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


def _staging_sql(name: str, inner: str, types: dict[str, str], kinds: dict[str, str],
                 formats: tuple[str, ...]) -> str:
    """CREATE TABLE stg_<name>: typed canonical columns plus ``<col>__bad`` raw text where conversion failed."""
    selects, bads = [], []
    for col, kind in kinds.items():
        typed = _typed(kind, col, types[col], formats)
        selects.append(f"{typed} AS {quote_ident(col)}")
        bad = _bad(kind, col, typed)
        if bad:
            bads.append(f"{bad} AS {quote_ident(col + '__bad')}")
    return (f"CREATE OR REPLACE TABLE _stg_{name} AS SELECT {', '.join(selects + bads)}, _file, _keep "
            f"FROM ({inner})")


class _Builder:
    """Builds one cache file; see :func:`open_dataset`."""

    def __init__(self, config: DatasetConfig, con: duckdb.DuckDBPyConnection, work_dir: Path):
        self.config = config
        self.con = con
        self.work_dir = work_dir
        self.report = ValidationReport()
        self.as_of = config.as_of or dt.date.today()
        self.report.as_of = self.as_of.isoformat()
        self.kinds: dict[str, dict[str, str]] = {}
        self.scales: dict[str, dict[str, tuple[float, float]]] = {}
        self.drivers: list[str] = []
        self.margin_source: str | None = None
        self.materialised: list[str] = []  # canonical tables copied out of their staging table

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
            if str(r[0]).lower().endswith((".csv", ".txt", ".tsv")):
                d["line"] = int(r[1]) + 1  # the header is line 1
            d.update({c.removesuffix("__bad"): v for c, v in zip(dict.fromkeys(cols), r[2:], strict=True)})
            out.append(d)
        return out

    def _files(self, table: str, where: str) -> list[str]:
        return [r[0] for r in self.q(f"SELECT DISTINCT _file FROM _stg_{table} WHERE {where} ORDER BY 1 LIMIT 20")]

    def _issue(self, rule: str, table: str, column: str | None, where: str, show: list[str],
               action: str = "") -> int:
        n = self.q(f"SELECT count(*) FROM _stg_{table} WHERE {where}")[0][0]
        if n:
            self.report.issues.append(Issue(
                rule=rule, table=table, column=column, count=int(n), files=self._files(table, where),
                examples=self._examples(table, where, show), action=action or RULES[rule].action,
            ))
        return int(n)

    # -- per table
    def load_table(self, name: str, tc: TableConfig) -> None:
        spec = TABLES[name]
        load = TableLoad(table=name, source=tc.describe())
        self.report.tables[name] = load
        try:
            source = open_source(self.con, tc, self.work_dir)
            load.encoding = source.encoding
            mapping, drivers = _mapping(spec, tc, source)
            missing = [c for c in spec.required if c not in mapping]
            if spec.one_of and not any(c in mapping for c in spec.one_of):
                missing.append(" or ".join(spec.one_of))
            if missing:
                load.skipped = True
                load.source_rows = int(self.q(f"SELECT count(*) FROM {source.relation}")[0][0])
                self.report.issues.append(Issue(
                    rule="missing_column", table=name, column=", ".join(missing), count=load.source_rows,
                    files=[p.name for p in tc.files] or [tc.describe()],
                    examples=[{"available_columns": ", ".join(c for c in source.columns if c != "_file")}],
                    message=f"required column(s) {', '.join(missing)} not found; map them in "
                            f"[tables.{name}.columns]",
                ))
                return
            self._stage(name, spec, tc, source, mapping, drivers)
        except (SourceError, ConfigError):
            raise
        except duckdb.Error as exc:
            raise SourceError(f"table {name} ({tc.describe()}): {exc}") from None

    def _stage(self, name: str, spec: TableSpec, tc: TableConfig, source: Source, mapping: dict[str, str],
               drivers: list[str]) -> None:
        check_table_sql(name, mapping, tc.filter)  # config SQL stays inside its box (workbench.sqlguard)
        keep = f"COALESCE(({tc.filter}), false)" if tc.filter else "true"
        mapped_sql = ", ".join(f"{expr} AS {quote_ident(col)}" for col, expr in mapping.items())
        inner = f"SELECT {mapped_sql}, _file, {keep} AS _keep FROM {source.relation}"
        try:
            types = {r[0]: r[1] for r in self.q(f"DESCRIBE {inner}")}
        except duckdb.Error as exc:
            raise ConfigError(f"[tables.{name}]: a column expression or the filter does not work on "
                              f"{tc.describe()}: {str(exc).splitlines()[0]} (source columns: "
                              f"{', '.join(c for c in source.columns if c != '_file')})") from None
        formats = ((tc.date_format, f"{tc.date_format} %H:%M:%S", f"{tc.date_format} %H:%M")
                   if tc.date_format else DEFAULT_DATE_FORMATS)
        kinds = {col: (spec.column(col).kind if spec.column(col) else spec.extra_kind or "text") for col in mapping}
        self.kinds[name] = kinds
        try:
            self.con.execute(_staging_sql(name, inner, types, kinds, formats))
        except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
            if isinstance(exc, duckdb.ConversionException):
                # the CSV sniffer guessed a type that a later row breaks: read everything as text
                source = open_source(self.con, tc, self.work_dir, all_varchar=True)
            elif "unicode" in str(exc).lower() or "utf" in str(exc).lower():
                source = open_source(self.con, tc, self.work_dir, force_encoding="gb18030")
                self.report.tables[name].encoding = "gb18030"
            else:
                raise
            inner = f"SELECT {mapped_sql}, _file, {keep} AS _keep FROM {source.relation}"
            types = {r[0]: r[1] for r in self.q(f"DESCRIBE {inner}")}
            self.con.execute(_staging_sql(name, inner, types, kinds, formats))
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
        cols = []
        for col in kinds:
            c = quote_ident(col)
            if col in nulled:
                cond = " OR ".join(f"COALESCE({p}, false)" for p in nulled[col])
                cols.append(f"CASE WHEN {cond} THEN NULL ELSE {c} END AS {c}")
            else:
                cols.append(c)
        if name == "transactions" and "margin" not in kinds and self.config.margin_rate is not None:
            cols.append(f"amount * {float(self.config.margin_rate)} AS margin")
            self.margin_source = "margin_rate"
        elif name == "transactions":
            self.margin_source = "margin" if "margin" in kinds else None
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

    def _present(self) -> list[str]:
        rows = self.q("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")
        names = {r[0] for r in rows}
        return [t for t in TABLES if t in names]

    def finish(self, fp: str, seconds: float) -> dict[str, Any]:
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
        }
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


def build_cache(config: DatasetConfig, path: Path, fp: str) -> dict[str, Any]:
    """Load, validate and materialise ``config`` into the DuckDB file ``path`` (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(tmp), config={
        # bounded memory (DuckDB spills to disk beyond it); file order kept so rowid = row in file
        "memory_limit": os.environ.get("WORKBENCH_DUCKDB_MEMORY", "1536MB"),
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

    def __init__(self, path: Path, meta: dict[str, Any], config: DatasetConfig | None = None):
        self.path = path
        self.meta = meta
        self.config = config
        self._con = duckdb.connect(str(path), read_only=True)
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
    def drivers(self) -> list[str]:
        return list(self.meta.get("drivers", []))

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

    # data access
    def table(self, name: str) -> ibis.Table:
        """The canonical table ``name`` as an Ibis expression."""
        self.require(name)
        return self.backend.table(name)

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run read-only SQL on the canonical tables; returns pandas (aggregates only, please)."""
        return self._con.execute(query, params or []).df()

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


def dataset_from_frames(frames: dict[str, pd.DataFrame], folder: str | os.PathLike[str], name: str = "frames",
                        **dataset_options: Any) -> Dataset:
    """Write ``frames`` as Parquet into ``folder`` with a config and open them — for tests and demos.

    ``dataset_options`` go into ``[dataset]`` (e.g. ``margin_rate=0.3``); ``scales`` /
    ``drivers`` keys in the form ``{"surveys": {...}}`` go into the table sections.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    scales = dataset_options.pop("scales", {})
    drivers = dataset_options.pop("drivers", None)
    lines = ["[dataset]", f"name = {json.dumps(name, ensure_ascii=False)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in dataset_options.items()]
    for table, frame in frames.items():
        frame.to_parquet(root / f"{table}.parquet", index=False)
        lines += ["", f"[tables.{table}]", f'source = "{table}.parquet"']
        if table == "surveys" and drivers is not None:
            lines.append(f"drivers = {json.dumps(list(drivers))}")
        for col, (lo, hi) in scales.get(table, {}).items():
            lines.append(f"scales.{col} = [{lo}, {hi}]")
    (root / "workbench.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return open_dataset(root / "workbench.toml")
