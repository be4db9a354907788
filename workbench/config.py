"""The dataset config contract: ``workbench.toml``.

A dataset is named either by a folder (canonical file names ``customers.*``,
``transactions.*``, ``surveys.*``, ``complaints.*``, ``members.*``,
``points.*``, or a ``workbench.toml`` inside) or by the path of a ``.toml``
file. See README "Dataset config" for the full format; in short::

    [dataset]
    name = "Acme retail"
    currency = "CNY"
    margin_rate = 0.3
    [tables.transactions]
    source = "exports/orders*.csv"      # file or glob relative to the toml, or a list
    date_format = "%d/%m/%Y"            # optional
    encoding = "auto"                   # auto | utf-8 | utf-8-sig | gbk | gb18030
    filter = "Country = 'United Kingdom'"
    [tables.transactions.columns]       # canonical = source column or SQL expression
    customer_id = "CustomerID"
    amount = "Quantity * UnitPrice"
    [tables.surveys.scales]
    recommend = [0, 10]

SQL sources use ``url`` (SQLAlchemy style; ``${ENV_VAR}`` is substituted and a
literal password is refused — secrets come from the environment only) with
``table`` or ``query``.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workbench.schema import TABLES

FILE_SUFFIXES = (".parquet", ".pq", ".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".gz", ".zip")
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gbk", "gb18030", "gb2312", "latin-1")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The dataset config cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class ColumnOptions:
    """Per-column options of an inline-table entry in ``[tables.NAME.columns]``.

    ``source`` names a source column (quoted as an identifier), ``expr`` is a SQL
    expression; ``na_values`` are set missing (no error), ``fill`` replaces an empty
    value (counted, rule ``filled``), ``values`` maps text labels to numbers.
    """

    source: str | None = None
    expr: str | None = None
    na_values: tuple[Any, ...] = ()
    fill: Any = None
    values: dict[str, float] | None = None


@dataclass(frozen=True)
class TableConfig:
    """How one canonical table (or one raw ``[sources.NAME]``) is read from its source."""

    name: str
    files: tuple[Path, ...] = ()
    url: str | None = None
    sql_table: str | None = None
    query: str | None = None
    format: str | None = None
    encoding: str = "auto"
    delimiter: str | None = None
    sheet: str | int | None = None
    date_format: str | None = None
    filter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    scales: dict[str, tuple[float, float]] = field(default_factory=dict)
    drivers: tuple[str, ...] | None = None
    pattern: str = ""
    section: str = "tables"  # "tables" (canonical) or "sources" (raw, joined by a query)
    header: bool = True
    names: tuple[str, ...] | None = None
    skip: int = 0
    na_values: tuple[Any, ...] = ()
    options: dict[str, ColumnOptions] = field(default_factory=dict)
    # table semantics (issue 10 items 5-7); each only valid on the tables in _KEY_TABLES
    wave_date: dt.date | None = None
    segments: tuple[str, ...] = ()
    loyal_kind: str | None = None
    churn_as_of: dt.date | None = None
    closed_statuses: tuple[str, ...] | None = None

    @property
    def is_sql(self) -> bool:
        return self.url is not None

    @property
    def is_query(self) -> bool:
        """A canonical table defined by SQL over the declared ``[sources.*]`` (no url)."""
        return self.url is None and self.query is not None

    @property
    def key(self) -> str:
        """The config section, as the user writes it: ``[tables.transactions]``."""
        return f"[{self.section}.{self.name}]"

    def describe(self) -> str:
        """Where the table comes from, safe to show (no secrets)."""
        if self.is_sql:
            what = self.sql_table or "query"
            return f"{redact_url(self.url or '')} ({what})"
        return ", ".join(p.name for p in self.files) or self.pattern


@dataclass(frozen=True)
class Target:
    """A KPI target from ``[targets]``: the value must stay at or below ``max`` (or at or above ``min``).

    ``amber`` is the warning line beyond the target: a value past the target but not past ``amber``
    is amber, past ``amber`` red. Without ``amber`` a missed target is red.
    """

    key: str
    max: float | None = None
    min: float | None = None
    amber: float | None = None

    def status(self, value: float | None) -> str:
        """``green`` (target met), ``amber``, ``red``, or ``unknown`` when there is no value."""
        if value is None or value != value:
            return "unknown"
        if self.max is not None:
            if value <= self.max:
                return "green"
            return "amber" if self.amber is not None and value <= self.amber else "red"
        assert self.min is not None
        if value >= self.min:
            return "green"
        return "amber" if self.amber is not None and value >= self.amber else "red"

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in (("max", self.max), ("min", self.min), ("amber", self.amber)) if v is not None}


_TARGET_TEXT = re.compile(r"^\s*(<=|>=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")


def parse_targets(raw: Any, where: str) -> dict[str, Target]:
    """Validate ``[targets]``: ``key = "<= 0.02"`` / ``">= 0.6"`` or ``{ max = 0.02, amber = 0.025 }`` /
    ``{ min = 0.6, amber = 0.55 }`` (shares as fractions; ``"<= 2%"`` also reads as 0.02).

    Keys are KPI keys (the report pack warns about keys no report produces); errors name the key.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f'{where}: [targets] must be a table of KPI key = "<= 0.02" or {{ max = 0.02 }}')
    example = 'e.g. complaint_rate = "<= 0.02", satisfaction_top_box = ">= 0.6" or { max = 0.02, amber = 0.025 }'
    out: dict[str, Target] = {}
    for key, spec in raw.items():
        here = f"{where}: [targets].{key}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise ConfigError(f"{here}: a target key is a KPI key in lower case letters, digits and _ ({example})")
        if isinstance(spec, str):
            m = _TARGET_TEXT.match(spec)
            if not m:
                raise ConfigError(f"{here} must read \"<= NUMBER\" or \">= NUMBER\", got {spec!r} ({example})")
            number = float(m[2]) / (100 if m[3] else 1)
            out[key] = Target(key, max=number) if m[1] == "<=" else Target(key, min=number)
            continue
        if not isinstance(spec, dict):
            raise ConfigError(f"{here} must be a text like \"<= 0.02\" or a table {{ max = ..., amber = ... }}, "
                              f"got {spec!r}")
        unknown = set(spec) - {"max", "min", "amber"}
        if unknown:
            raise ConfigError(f"{here}: unknown key(s) {sorted(unknown)}; allowed: amber, max, min")
        if ("max" in spec) == ("min" in spec):
            raise ConfigError(f"{here}: give exactly one of max (lower is better) or min (higher is better)")
        for name, value in spec.items():
            if not _number(value):
                raise ConfigError(f"{here}.{name} must be a number, got {value!r}")
        t = Target(key, max=_float(spec.get("max")), min=_float(spec.get("min")), amber=_float(spec.get("amber")))
        if t.amber is not None and t.max is not None and t.amber < t.max:
            raise ConfigError(f"{here}: amber ({t.amber:g}) must be at or above max ({t.max:g}): values between "
                              "the two are amber, above amber red")
        if t.amber is not None and t.min is not None and t.amber > t.min:
            raise ConfigError(f"{here}: amber ({t.amber:g}) must be at or below min ({t.min:g}): values between "
                              "the two are amber, below amber red")
        out[key] = t
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class EngineSettings:
    """``[engine]``: where and with how much memory the analyses run.

    Parameters
    ----------
    kind : str
        ``"duckdb"`` (the default: files are loaded into a validated DuckDB cache), ``"postgres"``
        (canonical tables already in a PostgreSQL database) or ``"spark"`` (Parquet files or Spark
        catalog tables, run by PySpark). See :mod:`workbench.warehouse`.
    memory_limit : str or None
        DuckDB's memory limit: ``"8GB"``, ``"512MB"`` or a share of the machine's RAM such as ``"50%"``.
        ``None``: half the RAM for analyses, 1.5 GB while loading (DuckDB spills beyond it).
    temp_directory : Path or None
        Where DuckDB spills when over the limit; ``None``: ``spill/`` in the workbench cache folder.
    threads : int or None
        Worker threads; ``None``: DuckDB's default (one per core).
    """

    kind: str = "duckdb"
    memory_limit: str | None = None
    temp_directory: Path | None = None
    threads: int | None = None
    url: str | None = None
    schema: str | None = None
    master: str | None = None
    database: str | None = None
    time_zone: str | None = None

    @property
    def is_warehouse(self) -> bool:
        """True when the analyses run in PostgreSQL or Spark rather than the DuckDB cache."""
        return self.kind != "duckdb"


ENGINE_KINDS = ("duckdb", "postgres", "spark")
_ENGINE_KEYS = {"kind", "memory_limit", "temp_directory", "threads"}
# per-kind keys: url/schema (postgres), master/database (spark), time_zone (both: the session time zone)
_KIND_KEYS = {"duckdb": set(), "postgres": {"url", "schema", "time_zone"},
              "spark": {"master", "database", "time_zone"}}
_IDENT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]i?B)\s*$", re.I)


def parse_engine(raw: Any, where: str, root: Path) -> EngineSettings:
    """Validate ``[engine]`` (see :class:`EngineSettings`)."""
    if raw is None:
        return EngineSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    kind = str(raw.get("kind", "duckdb")).strip().lower()
    if kind not in ENGINE_KINDS:
        raise ConfigError(f"{where}.kind = {raw.get('kind')!r}: allowed are {', '.join(map(repr, ENGINE_KINDS))}")
    allowed = _ENGINE_KEYS | _KIND_KEYS[kind]
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} for kind = {kind!r}; allowed: {sorted(allowed)}")
    extra = _warehouse_keys(kind, raw, where)
    memory = raw.get("memory_limit")
    if memory is not None:
        m = _MEMORY.match(str(memory))
        if not m or float(m[1]) <= 0 or (m[2] == "%" and float(m[1]) > 95):
            raise ConfigError(f'{where}.memory_limit = {memory!r}: write an amount such as "8GB" or "512MB", '
                              'or a share of RAM from 1% to 95% such as "50%"')
        memory = str(memory).strip()
    temp = raw.get("temp_directory")
    if temp is not None:
        if not isinstance(temp, str) or not temp.strip():
            raise ConfigError(f"{where}.temp_directory must be a folder path, got {temp!r}")
        temp = (root / Path(expand_env(temp, f"{where}.temp_directory")).expanduser()).resolve()
    threads = raw.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{where}.threads must be a whole number of at least 1, got {threads!r}")
    return EngineSettings(kind=kind, memory_limit=memory, temp_directory=temp, threads=threads, **extra)


def _warehouse_keys(kind: str, raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``url``/``schema`` (postgres), ``master``/``database`` (spark) and ``time_zone``, checked."""
    out: dict[str, Any] = {}
    for key in ("url", "schema", "master", "database", "time_zone"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{where}.{key} must be a non-empty text, got {value!r}")
        if value is not None:
            out[key] = expand_env(value.strip(), f"{where}.{key}") if key == "url" else value.strip()
    if kind == "postgres":
        url = out.get("url")
        if not url or not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f'{where}.url: kind = "postgres" needs url = "postgresql://user@host:5432/db" '
                              '(a password can come from ${PGPASSWORD}-style variables or ~/.pgpass)')
        out.setdefault("schema", "public")
    if kind == "spark":
        out.setdefault("master", "local[2]")
    for key in ("schema", "database"):
        if key in out and not _IDENT_KEY.match(out[key]):
            raise ConfigError(f"{where}.{key} = {out[key]!r}: a schema/database name is letters, digits and _")
    return out


@dataclass(frozen=True)
class DatasetConfig:
    """A parsed dataset config."""

    root: Path
    config_path: Path | None
    name: str
    currency: str = "CNY"
    margin_rate: float | None = None
    as_of: dt.date | None = None
    tables: dict[str, TableConfig] = field(default_factory=dict)
    text: str = ""
    sources: dict[str, TableConfig] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    programme: dict[str, Any] = field(default_factory=dict)
    engine: EngineSettings = field(default_factory=lambda: EngineSettings())

    def source_label(self) -> str:
        """Short description of where the data came from (no secrets, no full paths)."""
        return self.config_path.name if self.config_path else self.root.name


def expand_env(value: str, where: str) -> str:
    """Substitute ``${VAR}`` from the environment; a missing variable is an error."""

    def repl(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in os.environ:
            raise ConfigError(f"{where}: environment variable {var} is not set")
        return os.environ[var]

    return _ENV.sub(repl, value)


def redact_url(url: str) -> str:
    """A URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.password and not _ENV.search(url):
        raise ConfigError(
            f"{where}: the url contains a literal password; put it in an environment "
            "variable and write ${VAR} in its place (secrets come from the environment only)"
        )


def _resolve_files(root: Path, source: str | list[str], where: str) -> tuple[Path, ...]:
    patterns = [source] if isinstance(source, str) else list(source)
    files: list[Path] = []
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(root / pattern)
        matches = sorted(Path(p) for p in glob.glob(full) if Path(p).is_file())
        if not matches:
            raise ConfigError(f"{where}: source {pattern!r} matches no file (looked in {root})")
        files.extend(matches)
    return tuple(files)


def _scales(raw: Any, where: str) -> dict[str, tuple[float, float]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}.scales must be a table of column = [low, high]")
    out = {}
    for col, bounds in raw.items():
        out[col] = _bounds(bounds, f"{where}.scales.{col}")
    return out


_FILE_KEYS = {
    "source", "url", "table", "query", "format", "encoding", "delimiter", "sheet", "header", "names", "skip",
    "date_format", "na_values",
}
_TABLE_KEYS = _FILE_KEYS | {"filter", "columns", "scales", "drivers"}
_COLUMN_KEYS = {"source", "expr", "scale", "na_values", "fill", "values"}
_TABLE_KEYS |= {"wave_date", "segments", "loyal_kind", "churn_as_of", "closed_statuses"}
# table keys that mean something for some canonical tables only
_KEY_TABLES: dict[str, tuple[str, ...]] = {
    "wave_date": ("surveys",),
    "loyal_kind": ("surveys",),
    "segments": ("surveys", "customers"),
    "churn_as_of": ("customers",),
    "closed_statuses": ("complaints",),
}
LOYAL_KINDS = ("intent", "behaviour")


def _date_key(raw: Any, key: str, where: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` table key (TOML date or string)."""
    if raw is None:
        return None
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str):
        try:
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ConfigError(f'{where}.{key} must be a date written "YYYY-MM-DD", got {raw!r}')


def _semantic_keys(name: str, raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate the table-semantics keys (wave_date, segments, loyal_kind, churn_as_of, closed_statuses)."""
    for key, tables in _KEY_TABLES.items():
        if key in raw and name not in tables:
            only = " and ".join(f"[tables.{t}]" for t in tables)
            raise ConfigError(f"{where}.{key}: this key belongs in {only} only, not [tables.{name}]")
    out: dict[str, Any] = {
        "wave_date": _date_key(raw.get("wave_date"), "wave_date", where),
        "churn_as_of": _date_key(raw.get("churn_as_of"), "churn_as_of", where),
    }
    segments = raw.get("segments", [])
    if (not isinstance(segments, list) or not all(isinstance(s, str) and s.strip() for s in segments)
            or len(set(segments)) != len(segments)):
        raise ConfigError(f'{where}.segments must be a list of distinct source column names, '
                          f'e.g. ["Class", "Type of Travel"], got {segments!r}')
    out["segments"] = tuple(segments)
    kind = raw.get("loyal_kind")
    if kind is not None:
        kind = {"behavior": "behaviour"}.get(str(kind).strip().lower(), str(kind).strip().lower())
        if kind not in LOYAL_KINDS:
            raise ConfigError(f'{where}.loyal_kind must be "behaviour" (observed: the customer stayed or '
                              f'bought again) or "intent" (stated), got {raw["loyal_kind"]!r}')
    out["loyal_kind"] = kind
    closed = raw.get("closed_statuses")
    if closed is not None:
        if (not isinstance(closed, list) or not closed
                or not all(isinstance(s, str) and s.strip() for s in closed)):
            raise ConfigError(f'{where}.closed_statuses must be a non-empty list of status patterns '
                              f'(SQL LIKE, case-insensitive: % = any text), e.g. ["Closed%", "Resolved"], '
                              f'got {closed!r}')
        closed = tuple(s.strip() for s in closed)
    out["closed_statuses"] = closed
    columns = raw.get("columns", {})
    if out["wave_date"] is not None and isinstance(columns, dict) and "date" in columns:
        raise ConfigError(f"{where}.wave_date dates the whole file as one wave, but [tables.{name}.columns] "
                          "also maps date; keep one of the two")
    return out


def _na_values(raw: Any, where: str) -> tuple[Any, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                            for v in raw):
        raise ConfigError(f"{where}.na_values must be a list of texts and numbers, e.g. [0, \"N/A\", \"\"]")
    return tuple(raw)


def _bounds(bounds: Any, where: str) -> tuple[float, float]:
    if bounds == "binary":
        return (0.0, 1.0)
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        or bounds[0] >= bounds[1]
    ):
        raise ConfigError(f"{where} must be [low, high] with low < high (or \"binary\"), got {bounds!r}")
    return (float(bounds[0]), float(bounds[1]))


def _column_options(col: str, spec: Any, where: str) -> ColumnOptions:
    here = f"{where}.columns.{col}"
    unknown = set(spec) - _COLUMN_KEYS
    if unknown:
        raise ConfigError(f"{here}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_COLUMN_KEYS)}")
    if ("source" in spec) == ("expr" in spec):
        raise ConfigError(f"{here}: give exactly one of source (a source column) or expr (a SQL expression)")
    text = spec.get("source", spec.get("expr"))
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{here}: source/expr must be a non-empty text")
    values = spec.get("values")
    if values is not None:
        if not isinstance(values, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
            raise ConfigError(f'{here}.values must map text labels to numbers, e.g. {{ "Loyal Customer" = 1 }}')
        values = {str(k): float(v) for k, v in values.items()}
    fill = spec.get("fill")
    if fill is not None and (isinstance(fill, bool) or not isinstance(fill, (int, float, str))):
        raise ConfigError(f"{here}.fill must be a number or a text, got {fill!r}")
    return ColumnOptions(source=spec.get("source"), expr=spec.get("expr"),
                         na_values=_na_values(spec.get("na_values"), here), fill=fill, values=values)


def _table_config(name: str, raw: dict[str, Any], root: Path, where: str, default_url: str | None,
                  section: str = "tables", sources: tuple[str, ...] = ()) -> TableConfig:
    allowed = _TABLE_KEYS if section == "tables" else _FILE_KEYS - {"na_values"}  # sources stay raw
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    encoding = str(raw.get("encoding", "auto")).lower()
    if encoding not in ENCODINGS:
        raise ConfigError(f"{where}.encoding {encoding!r} not supported; use one of {ENCODINGS}")
    raw_columns = raw.get("columns", {})
    if not isinstance(raw_columns, dict) or not all(isinstance(v, (str, dict)) for v in raw_columns.values()):
        raise ConfigError(f"{where}.columns must map canonical names to source columns or SQL expressions "
                          f"(or inline tables {{ source = ..., scale = ..., na_values = ..., fill = ..., "
                          f"values = ... }})")
    columns: dict[str, str] = {}
    options: dict[str, ColumnOptions] = {}
    scales = _scales(raw.get("scales"), where)
    for col, spec in raw_columns.items():
        if isinstance(spec, str):
            columns[col] = spec
            continue
        opts = _column_options(col, spec, where)
        options[col] = opts
        columns[col] = opts.source if opts.source is not None else str(opts.expr)
        if "scale" in spec:
            scales[col] = _bounds(spec["scale"], f"{where}.columns.{col}.scale")
    drivers = raw.get("drivers")
    if drivers is not None and (not isinstance(drivers, list) or not all(isinstance(d, str) for d in drivers)):
        raise ConfigError(f"{where}.drivers must be a list of column names")
    header = raw.get("header", True)
    if not isinstance(header, bool):
        raise ConfigError(f"{where}.header must be true or false")
    names = raw.get("names")
    if names is not None and (not isinstance(names, list) or not names
                              or not all(isinstance(n, str) and n for n in names) or len(set(names)) < len(names)):
        raise ConfigError(f'{where}.names must be a list of distinct column names, e.g. ["id", "date", "amount"]')
    skip = raw.get("skip", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise ConfigError(f"{where}.skip must be a whole number of leading lines (0 or more), got {skip!r}")
    sheet = raw.get("sheet")
    if sheet is not None and (isinstance(sheet, bool) or not isinstance(sheet, (str, int))):
        raise ConfigError(f"{where}.sheet must be a sheet name or its position (0 = first sheet)")
    delimiter = raw.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or delimiter == ""):
        raise ConfigError(f'{where}.delimiter must be a text such as ";", "\\t", "|" or "whitespace"')
    common = dict(
        name=name,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        date_format=raw.get("date_format"),
        filter=raw.get("filter"),
        columns=columns,
        scales=scales,
        drivers=tuple(drivers) if drivers is not None else None,
        format=raw.get("format"),
        section=section,
        header=header,
        names=tuple(names) if names is not None else None,
        skip=skip,
        na_values=_na_values(raw.get("na_values"), where),
        options=options,
        **_semantic_keys(name, raw, where),
    )
    if "query" in raw and "url" not in raw and "table" not in raw and "source" not in raw and (
            sources or not default_url) and section == "tables":
        if not sources:
            raise ConfigError(f"{where}: query without url runs over the declared [sources.NAME] sections, "
                              "but there are none; declare the files it joins as [sources.NAME]")
        return TableConfig(query=str(raw["query"]), pattern=f"query over {', '.join(sources)}", **common)
    url = raw.get("url", default_url if ("table" in raw or "query" in raw) else None)
    if url is not None:
        if "source" in raw:
            raise ConfigError(f"{where}: give either source (files) or url (database), not both")
        if not ("table" in raw) ^ ("query" in raw):
            raise ConfigError(f"{where}: a url source needs exactly one of table or query")
        _check_url(url, where)
        return TableConfig(url=url, sql_table=raw.get("table"), query=raw.get("query"), pattern=url, **common)
    if "source" not in raw:
        raise ConfigError(f"{where}: needs source (file or glob), query (over [sources.NAME]) "
                          "or url with table/query")
    files = _resolve_files(root, raw["source"], where)
    return TableConfig(files=files, pattern=str(raw["source"]), **common)


def _stem(path: Path) -> str:
    """File name without its ending; ``transactions.csv.gz`` → ``transactions``."""
    name = path.name
    if name.lower().endswith((".csv.gz", ".txt.gz", ".tsv.gz")):
        return name[:-7]
    return path.stem


def find_canonical_files(folder: Path) -> dict[str, tuple[Path, ...]]:
    """Canonical table files in a folder without config (``transactions.csv`` …)."""
    found: dict[str, tuple[Path, ...]] = {}
    for table in TABLES:
        matches = sorted(p for p in folder.iterdir() if p.is_file() and _stem(p) == table
                         and p.suffix.lower() in FILE_SUFFIXES)
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise ConfigError(f"{folder}: several files for table {table!r} ({names}); keep one or write a workbench.toml")
        if matches:
            found[table] = tuple(matches)
    return found


def _read_config_text(p: Path) -> str:
    """The config's text: UTF-8 (with or without BOM), UTF-16 with BOM, else GB18030 (a GBK editor's save)."""
    data = p.read_bytes()
    encodings = ("utf-16",) if data.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig", "gb18030")
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ConfigError(f"{p}: the file is neither UTF-8 nor GBK/GB18030 text (undecodable bytes); save it as UTF-8")


def _as_of(value: Any, p: Path) -> dt.date | None:
    """``[dataset].as_of`` as a date: a TOML date (2026-10-31) or a string "2026-10-31"."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{p}: [dataset].as_of must be a date written YYYY-MM-DD, e.g. as_of = 2026-10-31, "
                      f"got {value!r}")


def load_config(path: str | os.PathLike[str]) -> DatasetConfig:
    """Read a dataset config from a folder or a ``.toml`` file.

    Raises
    ------
    ConfigError
        When the path does not exist, the TOML is invalid, or a key is wrong.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"Dataset path {p} does not exist")
    if p.is_dir() and (p / "workbench.toml").is_file():
        p = p / "workbench.toml"
    if p.is_dir():
        files = find_canonical_files(p)
        if not files:
            raise ConfigError(
                f"{p}: no workbench.toml and no canonical files "
                f"({', '.join(t + '.csv/.parquet/.xlsx' for t in TABLES)})"
            )
        tables = {name: TableConfig(name=name, files=fs, pattern=fs[0].name) for name, fs in files.items()}
        return DatasetConfig(root=p.resolve(), config_path=None, name=p.resolve().name, tables=tables)
    if p.suffix.lower() != ".toml":
        raise ConfigError(f"{p}: expected a folder or a .toml dataset config")
    text = _read_config_text(p)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    unknown = set(raw) - {"dataset", "tables", "sources", "targets", "programme", "engine"}
    if unknown:
        raise ConfigError(f"{p}: unknown top-level section(s) {sorted(unknown)}; use [dataset], [tables.NAME], "
                          "[sources.NAME], [targets], [programme] and [engine]")
    targets = parse_targets(raw.get("targets"), str(p))
    meta = raw.get("dataset", {})
    root = p.parent.resolve()
    default_url = meta.get("url")
    if default_url:
        _check_url(default_url, f"{p}: [dataset].url")
    raw_tables = raw.get("tables", {})
    unknown_tables = set(raw_tables) - set(TABLES)
    if unknown_tables:
        raise ConfigError(f"{p}: unknown table(s) {sorted(unknown_tables)}; canonical tables are {list(TABLES)}")
    raw_sources = raw.get("sources", {})
    for name in raw_sources:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{p}: [sources.{name}]: a source name must be letters, digits and _ "
                              "(it is the table name the query uses)")
    sources = {
        name: _table_config(name, spec, root, f"{p}: [sources.{name}]", default_url, section="sources")
        for name, spec in raw_sources.items()
    }
    engine = parse_engine(raw.get("engine"), f"{p}: [engine]", root)
    if engine.is_warehouse:
        if sources:
            raise ConfigError(f"{p}: [sources.NAME] queries run on DuckDB only; with [engine] kind = "
                              f"{engine.kind!r} define the joined table as a view in the database")
        tables = {name: _warehouse_table(name, spec, root, f"{p}: [tables.{name}]", engine.kind)
                  for name, spec in raw_tables.items()}
        if not tables and engine.kind == "spark":  # canonical Parquet files beside the config, if any
            found = find_canonical_files(root)
            tables = {name: TableConfig(name=name, files=fs, pattern=fs[0].name) for name, fs in found.items()
                      if all(f.suffix.lower() == ".parquet" for f in fs)}
    else:
        tables = {
            name: _table_config(name, spec, root, f"{p}: [tables.{name}]", default_url, sources=tuple(sources))
            for name, spec in raw_tables.items()
        }
        if not tables:
            found = find_canonical_files(root)
            tables = {name: TableConfig(name=name, files=fs, pattern=fs[0].name) for name, fs in found.items()}
        if not tables:
            raise ConfigError(f"{p}: no [tables.*] sections and no canonical files beside it")
    margin_rate = meta.get("margin_rate")
    if margin_rate is not None and not (isinstance(margin_rate, (int, float)) and 0 <= margin_rate <= 1):
        raise ConfigError(f"{p}: [dataset].margin_rate must be a number in [0, 1], got {margin_rate!r}")
    as_of = _as_of(meta.get("as_of"), p)
    return DatasetConfig(
        root=root,
        config_path=p.resolve(),
        name=str(meta.get("name", root.name)),
        currency=str(meta.get("currency", "CNY")),
        margin_rate=float(margin_rate) if margin_rate is not None else None,
        as_of=as_of,
        tables=tables,
        text=text,
        sources=sources,
        targets=targets,
        programme=_programme(raw.get("programme", {}), f"{p}: [programme]"),
        engine=engine,
    )


_WAREHOUSE_TABLE_KEYS = {"table", "source", "scales", "drivers"} | {
    "wave_date", "segments", "loyal_kind", "churn_as_of", "closed_statuses"}


def _warehouse_table(name: str, raw: Any, root: Path, where: str, kind: str) -> TableConfig:
    """``[tables.NAME]`` when the engine is PostgreSQL or Spark: where the canonical table is, plus semantics.

    The table must already have the canonical column names and types (see :mod:`workbench.warehouse`);
    ``table`` names it in the schema/catalog (default: the canonical name), ``source`` (Spark only)
    points at Parquet files. Column mappings, filters and text files are DuckDB-loader features.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - _WAREHOUSE_TABLE_KEYS
    if unknown:
        raise ConfigError(f"{where}: key(s) {sorted(unknown)} are DuckDB-loader features; with [engine] kind = "
                          f"{kind!r} the table must already have the canonical columns (allowed here: "
                          f"{sorted(_WAREHOUSE_TABLE_KEYS)})")
    if "source" in raw and kind != "spark":
        raise ConfigError(f"{where}.source: with kind = {kind!r} the tables are in the database; use table = \"…\"")
    table = raw.get("table")
    if table is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", str(table)):
        raise ConfigError(f"{where}.table = {table!r}: a table name (or schema.table) of letters, digits and _")
    files: tuple[Path, ...] = ()
    if "source" in raw:
        files = _resolve_files(root, raw["source"], where)
        bad = [f.name for f in files if f.suffix.lower() != ".parquet"]
        if bad:
            raise ConfigError(f"{where}.source: Spark reads Parquet here ({', '.join(bad[:3])} is not)")
    drivers = raw.get("drivers")
    if drivers is not None and (not isinstance(drivers, list) or not all(isinstance(d, str) for d in drivers)):
        raise ConfigError(f"{where}.drivers must be a list of column names")
    return TableConfig(name=name, files=files, sql_table=str(table) if table else None,
                       pattern=str(raw.get("source") or table or name), scales=_scales(raw.get("scales"), where),
                       drivers=tuple(drivers) if drivers is not None else None, **_semantic_keys(name, raw, where))


_PROGRAMME_KEYS = {"point_value", "expiry_months", "costs", "level_order", "level_thresholds"}


def _programme(raw: Any, where: str) -> dict[str, Any]:
    """``[programme]``: point_value (money per point), expiry_months, costs (annual money per line),
    level_order (lowest first) and level_thresholds (level → trailing spend needed)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - _PROGRAMME_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_PROGRAMME_KEYS)}")
    out: dict[str, Any] = {}
    for key in ("point_value", "expiry_months"):
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"{where}.{key} must be a positive number, got {v!r}")
            out[key] = int(v) if key == "expiry_months" else float(v)
    for key in ("costs", "level_thresholds"):
        if key in raw:
            table = raw[key]
            if not isinstance(table, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in table.values()):
                raise ConfigError(f"{where}.{key} must map names to non-negative numbers, got {table!r}")
            out[key] = {str(k): float(v) for k, v in table.items()}
    if "level_order" in raw:
        lv = raw["level_order"]
        if not isinstance(lv, list) or not all(isinstance(x, str) for x in lv):
            raise ConfigError(f"{where}.level_order must be a list of level names, lowest first, got {lv!r}")
        out["level_order"] = list(lv)
    return out


def _text_without_engine(text: str) -> str:
    """The config text minus ``[engine]``: memory and spill settings do not change the loaded data."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text
    if "engine" not in raw:
        return text
    raw.pop("engine")
    return repr(sorted(raw.items()))


def fingerprint(config: DatasetConfig, extra: str = "") -> str:
    """Hash of the config text and every source file's path, size and mtime.

    Database sources other than SQLite/DuckDB files cannot be stat'ed; their
    fingerprint includes today's date, so the cache refreshes daily (use
    ``--refresh`` to force a reload).
    """
    h = hashlib.sha256()
    h.update(extra.encode())
    h.update(_text_without_engine(config.text).encode())
    h.update(str(config.as_of).encode())
    everything = {**{f"sources.{k}": v for k, v in config.sources.items()}, **config.tables}
    for name in sorted(everything):
        tc = everything[name]
        h.update(repr((name, tc.columns, tc.filter, tc.date_format, tc.encoding, tc.sql_table, tc.query)).encode())
        for f in tc.files:
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        if tc.url:
            local = sqlite_or_duckdb_path(tc.url)
            if local is not None and local.exists():
                st = local.stat()
                h.update(f"{local}|{st.st_size}|{st.st_mtime_ns}".encode())
            else:
                h.update(f"{redact_url(tc.url)}|{dt.date.today()}".encode())
    return h.hexdigest()[:20]


def sqlite_or_duckdb_path(url: str) -> Path | None:
    """The local file behind a ``sqlite:///`` or ``duckdb:///`` URL, else None."""
    for prefix in ("sqlite:///", "duckdb:///"):
        if url.startswith(prefix):
            return Path(url[len(prefix):]).expanduser()
    return None
