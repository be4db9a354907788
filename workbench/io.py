"""Read sources (CSV, Parquet, Excel, SQL databases) into the DuckDB engine.

Every reader returns a :class:`Source`: a SQL relation (``FROM`` fragment)
over the raw source columns plus ``_file`` (the file the row came from), and
the source's columns with their engine types. Nothing is loaded whole into
pandas except Excel workbooks (openpyxl has no streaming reader that beats
it) and database result sets, which are streamed in batches.

CSV encodings: UTF-8, UTF-8 with BOM and GBK/GB18030 (Chinese Excel exports)
are detected. DuckDB's own GBK support needs an extension download, which is
impossible offline, so non-UTF-8 files are transcoded to UTF-8 in the cache's
work folder first.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from workbench.config import TableConfig, expand_env, redact_url, sqlite_or_duckdb_path
from workbench.integrity import seal_work_copy, work_copy_intact

SNIFF_BYTES = 1 << 20


class SourceError(ValueError):
    """A source could not be read; the message names the file."""


@dataclass(frozen=True)
class Source:
    relation: str  # SQL usable after FROM
    columns: dict[str, str]  # source column -> DuckDB type
    description: str
    encoding: str | None = None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def detect_encoding(path: Path) -> str:
    """Guess a text file's encoding: ``utf-8-sig``, ``utf-8`` or ``gb18030``.

    The first MiB decides; a file that is ASCII there but GBK later is caught
    when DuckDB reports invalid UTF-8, and transcoded then.
    """
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceError(f"{path}: UTF-16 files are not supported; save as UTF-8 or GBK CSV")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)  # a multi-byte character cut at the chunk end is fine
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(head, final=False)
        return "gb18030"
    except UnicodeDecodeError:
        raise SourceError(
            f"{path}: encoding not recognised (tried UTF-8 and GB18030); set encoding in workbench.toml"
        ) from None


def transcode(path: Path, encoding: str, work_dir: Path) -> Path:
    """Write a UTF-8 copy of ``path`` (read as ``encoding``) into ``work_dir``."""
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{encoding}".encode()).hexdigest()[:16]
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / f"{path.stem}.{key}.utf8.csv"
    if work_copy_intact(target):  # a copy cut short since it was written is made again
        return target
    tmp = target.with_suffix(".tmp")
    try:
        with path.open("r", encoding=encoding, newline="") as src, tmp.open("w", encoding="utf-8", newline="") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
    except UnicodeDecodeError as exc:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"{path}: not valid {encoding} at byte {exc.start}; set encoding in workbench.toml") from None
    tmp.replace(target)
    seal_work_copy(target)
    return target


def _file_case(actual: list[Path], shown: list[str]) -> str:
    """SQL mapping DuckDB's ``filename`` back to the file name the user knows."""
    if all(a.name == s for a, s in zip(actual, shown, strict=True)):
        return "regexp_extract(filename, '[^/\\\\]+$')"
    whens = " ".join(f"WHEN {quote_str(str(a))} THEN {quote_str(s)}" for a, s in zip(actual, shown, strict=True))
    return f"CASE filename {whens} ELSE filename END"


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {r[0]: r[1] for r in rows if r[0] != "filename"}


def _format_of(tc: TableConfig) -> str:
    if tc.format:
        return tc.format.lower()
    suffixes = {p.suffix.lower() for p in tc.files}
    if len(suffixes) > 1:
        raise SourceError(f"table {tc.name}: source files mix formats {sorted(suffixes)}; set format")
    suffix = suffixes.pop()
    return {".pq": "parquet", ".txt": "csv", ".tsv": "csv", ".xlsm": "xlsx"}.get(suffix, suffix.lstrip("."))


def _csv_relation(con, tc: TableConfig, work_dir: Path, force_encoding: str | None = None,
                  all_varchar: bool = False) -> Source:
    actual: list[Path] = []
    encodings = set()
    for f in tc.files:
        enc = force_encoding or (detect_encoding(f) if tc.encoding == "auto" else tc.encoding)
        encodings.add(enc)
        actual.append(f if enc in ("utf-8", "utf-8-sig") else transcode(f, enc, work_dir))
    opts = ["header = true", "filename = true", "union_by_name = true", "auto_detect = true",
            "sample_size = 100000"]
    if tc.delimiter:
        opts.append(f"delim = {quote_str(tc.delimiter)}")
    if tc.date_format:
        opts.append(f"dateformat = {quote_str(tc.date_format)}")
        opts.append(f"timestampformat = {quote_str(tc.date_format)}")
    if all_varchar:
        opts.append("all_varchar = true")
    files = "[" + ", ".join(quote_str(str(p)) for p in actual) + "]"
    shown = [p.name for p in tc.files]
    relation = f"(SELECT *, {_file_case(actual, shown)} AS _file FROM read_csv({files}, {', '.join(opts)}))"
    columns = _describe(con, relation)
    return Source(relation, columns, tc.describe(), "/".join(sorted(encodings)))


def _parquet_relation(con, tc: TableConfig) -> Source:
    files = "[" + ", ".join(quote_str(str(p)) for p in tc.files) + "]"
    relation = (f"(SELECT *, {_file_case(list(tc.files), [p.name for p in tc.files])} AS _file "
                f"FROM read_parquet({files}, filename = true, union_by_name = true))")
    return Source(relation, _describe(con, relation), tc.describe())


def _excel_relation(con, tc: TableConfig) -> Source:
    import pandas as pd
    import pyarrow as pa

    frames = []
    for f in tc.files:
        try:
            df = pd.read_excel(f, sheet_name=tc.sheet if tc.sheet is not None else 0, engine="openpyxl")
        except Exception as exc:  # openpyxl raises many types
            raise SourceError(f"{f}: cannot read Excel sheet {tc.sheet!r}: {exc}") from None
        df.columns = [str(c) for c in df.columns]
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = df[col].map(lambda v: None if v is None or v != v else str(v)).astype("string")
        df["_file"] = f.name
        frames.append(df)
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    name = f"raw_{tc.name}"
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")
    return Source(name, _describe(con, name), tc.describe())


def _sql_relation(con, tc: TableConfig) -> Source:
    import pyarrow as pa

    url = expand_env(tc.url or "", f"[tables.{tc.name}].url")
    query = tc.query or f"SELECT * FROM {quote_ident(tc.sql_table or '')}"
    name = f"raw_{tc.name}"
    shown = redact_url(tc.url or "")
    local = sqlite_or_duckdb_path(url)
    try:
        if url.startswith("duckdb:///"):
            if local is None or not local.exists():
                raise SourceError(f"{shown}: DuckDB file not found")
            # the query may read this database only, never files (see workbench.sqlguard)
            src = duckdb.connect(str(local), read_only=True, config={"enable_external_access": False})
            try:
                result = src.execute(query)
                to_reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
                reader = to_reader(200_000)
                table = pa.Table.from_batches(list(reader), schema=reader.schema)
            finally:
                src.close()
        else:
            if url.startswith("sqlite:///") and (local is None or not local.exists()):
                raise SourceError(f"{shown}: SQLite file not found")
            import pandas as pd
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            try:
                with engine.connect() as conn:
                    chunks = list(pd.read_sql_query(sa.text(query), conn, chunksize=200_000))
            finally:
                engine.dispose()
            frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
            table = pa.Table.from_pandas(frame, preserve_index=False)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"{shown}: cannot read {tc.sql_table or 'query'}: {exc}") from None
    table = table.append_column("_file", pa.array([tc.sql_table or "query"] * table.num_rows, pa.string()))
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")
    return Source(name, _describe(con, name), tc.describe())


def open_source(con: duckdb.DuckDBPyConnection, tc: TableConfig, work_dir: Path,
                force_encoding: str | None = None, all_varchar: bool = False) -> Source:
    """Make a table's source readable in ``con``; see module docstring."""
    if tc.is_sql:
        return _sql_relation(con, tc)
    fmt = _format_of(tc)
    try:
        if fmt == "csv":
            try:
                return _csv_relation(con, tc, work_dir, force_encoding, all_varchar)
            except duckdb.InvalidInputException as exc:
                # ASCII in the sniffed head, GBK further on: DuckDB finds invalid UTF-8 while sniffing
                if force_encoding or tc.encoding != "auto" or "unicode" not in str(exc).lower():
                    raise
                return _csv_relation(con, tc, work_dir, "gb18030", all_varchar)
        if fmt == "parquet":
            return _parquet_relation(con, tc)
        if fmt == "xlsx":
            return _excel_relation(con, tc)
    except duckdb.Error as exc:
        raise SourceError(f"{tc.describe()}: cannot read as {fmt}: {exc}") from None
    raise SourceError(f"table {tc.name}: unsupported format {fmt!r} (csv, parquet, xlsx, or a url)")
