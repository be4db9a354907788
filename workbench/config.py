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

FILE_SUFFIXES = (".parquet", ".pq", ".csv", ".txt", ".tsv", ".xlsx", ".xlsm")
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gbk", "gb18030", "gb2312", "latin-1")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The dataset config cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class TableConfig:
    """How one canonical table is read from its source."""

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

    @property
    def is_sql(self) -> bool:
        return self.url is not None

    def describe(self) -> str:
        """Where the table comes from, safe to show (no secrets)."""
        if self.is_sql:
            what = self.sql_table or "query"
            return f"{redact_url(self.url or '')} ({what})"
        return ", ".join(p.name for p in self.files) or self.pattern


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
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, (int, float)) for b in bounds)
            or bounds[0] >= bounds[1]
        ):
            raise ConfigError(f"{where}.scales.{col} must be [low, high] with low < high, got {bounds!r}")
        out[col] = (float(bounds[0]), float(bounds[1]))
    return out


_TABLE_KEYS = {
    "source", "url", "table", "query", "format", "encoding", "delimiter", "sheet",
    "date_format", "filter", "columns", "scales", "drivers",
}


def _table_config(name: str, raw: dict[str, Any], root: Path, where: str, default_url: str | None) -> TableConfig:
    unknown = set(raw) - _TABLE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TABLE_KEYS)}")
    encoding = str(raw.get("encoding", "auto")).lower()
    if encoding not in ENCODINGS:
        raise ConfigError(f"{where}.encoding {encoding!r} not supported; use one of {ENCODINGS}")
    columns = raw.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise ConfigError(f"{where}.columns must map canonical names to source columns or SQL expressions")
    drivers = raw.get("drivers")
    if drivers is not None and (not isinstance(drivers, list) or not all(isinstance(d, str) for d in drivers)):
        raise ConfigError(f"{where}.drivers must be a list of column names")
    common = dict(
        name=name,
        encoding=encoding,
        delimiter=raw.get("delimiter"),
        sheet=raw.get("sheet"),
        date_format=raw.get("date_format"),
        filter=raw.get("filter"),
        columns=dict(columns),
        scales=_scales(raw.get("scales"), where),
        drivers=tuple(drivers) if drivers is not None else None,
        format=raw.get("format"),
    )
    url = raw.get("url", default_url if ("table" in raw or "query" in raw) else None)
    if url is not None:
        if "source" in raw:
            raise ConfigError(f"{where}: give either source (files) or url (database), not both")
        if not ("table" in raw) ^ ("query" in raw):
            raise ConfigError(f"{where}: a url source needs exactly one of table or query")
        _check_url(url, where)
        return TableConfig(url=url, sql_table=raw.get("table"), query=raw.get("query"), pattern=url, **common)
    if "source" not in raw:
        raise ConfigError(f"{where}: needs source (file or glob) or url with table/query")
    files = _resolve_files(root, raw["source"], where)
    return TableConfig(files=files, pattern=str(raw["source"]), **common)


def find_canonical_files(folder: Path) -> dict[str, tuple[Path, ...]]:
    """Canonical table files in a folder without config (``transactions.csv`` …)."""
    found: dict[str, tuple[Path, ...]] = {}
    for table in TABLES:
        matches = sorted(p for p in folder.iterdir() if p.is_file() and p.stem == table
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
    unknown = set(raw) - {"dataset", "tables"}
    if unknown:
        raise ConfigError(f"{p}: unknown top-level section(s) {sorted(unknown)}; use [dataset] and [tables.NAME]")
    meta = raw.get("dataset", {})
    root = p.parent.resolve()
    default_url = meta.get("url")
    if default_url:
        _check_url(default_url, f"{p}: [dataset].url")
    raw_tables = raw.get("tables", {})
    unknown_tables = set(raw_tables) - set(TABLES)
    if unknown_tables:
        raise ConfigError(f"{p}: unknown table(s) {sorted(unknown_tables)}; canonical tables are {list(TABLES)}")
    tables = {
        name: _table_config(name, spec, root, f"{p}: [tables.{name}]", default_url)
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
    )


def fingerprint(config: DatasetConfig, extra: str = "") -> str:
    """Hash of the config text and every source file's path, size and mtime.

    Database sources other than SQLite/DuckDB files cannot be stat'ed; their
    fingerprint includes today's date, so the cache refreshes daily (use
    ``--refresh`` to force a reload).
    """
    h = hashlib.sha256()
    h.update(extra.encode())
    h.update(config.text.encode())
    h.update(str(config.as_of).encode())
    for name in sorted(config.tables):
        tc = config.tables[name]
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
