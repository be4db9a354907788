"""Read sources (CSV, Parquet, Excel, SQL databases) into the DuckDB engine.

Every reader returns a :class:`Source`: a SQL relation (``FROM`` fragment)
over the raw source columns plus ``_file`` (the file the row came from), and
the source's columns with their engine types. Nothing is loaded whole into
pandas except Excel workbooks (openpyxl has no streaming reader that beats
it) and database result sets, which are streamed in batches.

CSV encodings: UTF-8, UTF-8 with BOM and GBK/GB18030 (Chinese Excel exports)
are detected. DuckDB's own GBK support needs an extension download, which is
impossible offline, so non-UTF-8 files are transcoded to UTF-8 in the cache's
work folder first. The same streaming pre-pass turns whitespace-separated
files (``delimiter = "whitespace"``: runs of spaces/tabs, leading spaces
ignored) into tab-separated ones, line for line, so error examples keep the
original file name and line. ``.csv.gz`` is read as is; a ``.zip`` holding
one CSV is extracted into the work folder.

Errors speak of ``workbench.toml`` keys only (:func:`explain_read_error`):
DuckDB's option names and hints never reach the user.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


def _open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it ends in ``.gz``."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _work_key(path: Path, *extra: str) -> str:
    st = path.stat()
    return hashlib.sha1("|".join([str(path.resolve()), str(st.st_size), str(st.st_mtime_ns), *extra])
                        .encode()).hexdigest()[:16]


def unzip_member(path: Path, work_dir: Path, key: str) -> Path:
    """Extract the one CSV inside the zip ``path`` into ``work_dir`` (streamed); several CSVs are an error."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
            csvs = [i for i in members if i.filename.lower().endswith((".csv", ".txt", ".tsv"))] or members
            if len(csvs) != 1:
                names = ", ".join(i.filename for i in csvs) or "none"
                raise SourceError(f"{path.name}: a zip source must hold exactly one CSV file, found {names}; "
                                  f"unpack it and list the files in {key}.source")
            work_dir.mkdir(parents=True, exist_ok=True)
            target = work_dir / f"{Path(csvs[0].filename).stem}.{_work_key(path)}.csv"
            if not work_copy_intact(target):
                tmp = target.with_suffix(".tmp")
                with zf.open(csvs[0]) as src, tmp.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                tmp.replace(target)
                seal_work_copy(target)
            return target
    except zipfile.BadZipFile:
        raise SourceError(f"{path.name}: not a valid zip file (check {key}.source)") from None


def split_whitespace(path: Path, encoding: str, work_dir: Path, key: str) -> Path:
    """Write a UTF-8, tab-separated copy of a whitespace-separated file, one output line per input line."""
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / f"{path.name.split('.')[0]}.{_work_key(path, encoding, 'ws')}.tsv"
    if work_copy_intact(target):
        return target
    tmp = target.with_suffix(".tmp")
    try:
        with io.TextIOWrapper(_open_bytes(path), encoding=encoding, newline=None) as src, \
                tmp.open("w", encoding="utf-8", newline="\n") as dst:
            for line in src:
                dst.write("\t".join(line.split()) + "\n")
    except UnicodeDecodeError as exc:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"{path.name}: not valid {encoding} at byte {exc.start}; set {key}.encoding") from None
    tmp.replace(target)
    seal_work_copy(target)
    return target


def detect_encoding(path: Path) -> str:
    """Guess a text file's encoding: ``utf-8-sig``, ``utf-8`` or ``gb18030``.

    The first MiB decides; a file that is ASCII there but GBK later is caught
    when DuckDB reports invalid UTF-8, and transcoded then.
    """
    with _open_bytes(path) as fh:
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
    key = _work_key(path, encoding)
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / f"{path.name.split('.')[0]}.{key}.utf8.csv"
    if work_copy_intact(target):  # a copy cut short since it was written is made again
        return target
    tmp = target.with_suffix(".tmp")
    try:
        with io.TextIOWrapper(_open_bytes(path), encoding=encoding, newline="") as src, \
                tmp.open("w", encoding="utf-8", newline="") as dst:
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
    suffixes = {_suffix(p) for p in tc.files}
    if len(suffixes) > 1:
        raise SourceError(f"{tc.key}: source files mix formats {sorted(suffixes)}; set {tc.key}.format")
    suffix = suffixes.pop()
    return {".pq": "parquet", ".txt": "csv", ".tsv": "csv", ".xlsm": "xlsx", ".zip": "csv"}.get(
        suffix, suffix.lstrip("."))


def _suffix(path: Path) -> str:
    """The format-bearing ending: ``.csv`` for ``x.csv.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        return suffixes[-2] if len(suffixes) > 1 else ".csv"
    return path.suffix.lower()


WHITESPACE = "whitespace"
_ISO_START = re.compile(r"^\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")  # year first: one reading only


def _csv_relation(con, tc: TableConfig, work_dir: Path, force_encoding: str | None = None,
                  all_varchar: bool = False) -> Source:
    actual: list[Path] = []
    encodings = set()
    whitespace = (tc.delimiter or "").lower() == WHITESPACE
    for f in tc.files:
        src = unzip_member(f, work_dir, tc.key) if f.suffix.lower() == ".zip" else f
        enc = force_encoding or (detect_encoding(src) if tc.encoding == "auto" else tc.encoding)
        encodings.add(enc)
        if whitespace:
            src = split_whitespace(src, enc, work_dir, tc.key)
        elif enc not in ("utf-8", "utf-8-sig"):
            src = transcode(src, enc, work_dir)
        actual.append(src)
    opts = [f"header = {'true' if tc.header else 'false'}", "filename = true", "union_by_name = true",
            "auto_detect = true", "sample_size = 100000"]
    if tc.skip:
        opts.append(f"skip = {int(tc.skip)}")
    if tc.names:
        opts.append("names = [" + ", ".join(quote_str(n) for n in tc.names) + "]")
    if whitespace:
        opts.append("delim = '\t'")
    elif tc.delimiter:
        opts.append(f"delim = {quote_str(tc.delimiter)}")
    if tc.date_format:
        opts.append(f"dateformat = {quote_str(tc.date_format)}")
        opts.append(f"timestampformat = {quote_str(tc.date_format)}")
    if all_varchar:
        opts.append("all_varchar = true")
    files = "[" + ", ".join(quote_str(str(p)) for p in actual) + "]"
    shown = [p.name for p in tc.files]

    def relation_for(extra: list[str]) -> str:
        return (f"(SELECT *, {_file_case(actual, shown)} AS _file "
                f"FROM read_csv({files}, {', '.join(opts + extra)}))")

    relation = relation_for([])
    columns = _describe(con, relation)
    if not tc.date_format and not all_varchar:
        # DuckDB's sniffer silently picks one of dd/mm/yyyy and mm/dd/yyyy: keep only ISO dates typed,
        # read the others as text so that the loader's ambiguity check decides (engine._date_formats)
        dated = [c for c, t in columns.items() if t.upper().startswith(("DATE", "TIMESTAMP"))]
        if dated:
            # the first non-empty raw text of each such column (a column still empty there is re-read as text)
            sel = ", ".join(f"any_value(NULLIF(trim({quote_ident(c)}), ''))" for c in dated)
            quick = [o for o in opts if not o.startswith("sample_size")] + ["all_varchar = true",
                                                                             "sample_size = 2048"]
            raw = con.execute(f"SELECT {sel} FROM (SELECT * FROM read_csv({files}, {', '.join(quick)}) "
                              "LIMIT 10000)").fetchall()[0]
            as_text = [c for c, v in zip(dated, raw, strict=True) if v is None or not _ISO_START.match(v)]
            if as_text:
                types = "{" + ", ".join(f"{quote_str(c)}: 'VARCHAR'" for c in as_text) + "}"
                relation = relation_for([f"types = {types}"])
                columns = _describe(con, relation)
    if tc.names and len([c for c in columns if c != "_file"]) != len(tc.names):
        n = len([c for c in columns if c != "_file"])
        raise SourceError(f"{tc.describe()}: {tc.key}.names gives {len(tc.names)} column names but the file "
                          f"has {n} columns; check {tc.key}.names and {tc.key}.delimiter")
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
    sheet = tc.sheet if tc.sheet is not None else 0
    for f in tc.files:
        try:
            sheets = pd.ExcelFile(f, engine="openpyxl").sheet_names
        except Exception:  # noqa: BLE001 - openpyxl raises many types
            raise SourceError(f"{f.name}: not a readable Excel workbook (check {tc.key}.source)") from None
        if (isinstance(sheet, int) and not 0 <= sheet < len(sheets)) or (isinstance(sheet, str)
                                                                         and sheet not in sheets):
            raise SourceError(f"{f.name}: no sheet {sheet!r}; set {tc.key}.sheet to one of {sheets} "
                              f"or a position 0..{len(sheets) - 1}")
        try:
            df = pd.read_excel(f, sheet_name=sheet, engine="openpyxl", header=0 if tc.header else None,
                               skiprows=tc.skip or None)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many types
            raise SourceError(f"{f.name}: cannot read sheet {sheet!r} ({type(exc).__name__}); "
                              f"check {tc.key}.sheet, {tc.key}.skip and {tc.key}.header") from None
        if tc.names:
            if len(tc.names) != df.shape[1]:
                raise SourceError(f"{f.name}: {tc.key}.names gives {len(tc.names)} column names but sheet "
                                  f"{sheet!r} has {df.shape[1]} columns")
            df.columns = list(tc.names)
        elif not tc.header:
            df.columns = [f"column{i}" for i in range(df.shape[1])]
        df.columns = [str(c) for c in df.columns]
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = df[col].map(lambda v: None if v is None or v != v else str(v)).astype("string")
        df["_file"] = f.name
        frames.append(df)
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    name = _raw_name(tc)
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")
    return Source(name, _describe(con, name), tc.describe())


def _raw_name(tc: TableConfig) -> str:
    return f"raw_{tc.name}" if tc.section == "tables" else f"rawsrc_{tc.name}"


def _sql_relation(con, tc: TableConfig) -> Source:
    import pyarrow as pa

    url = expand_env(tc.url or "", f"{tc.key}.url")
    query = tc.query or f"SELECT * FROM {quote_ident(tc.sql_table or '')}"
    name = _raw_name(tc)
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
        raise SourceError(f"{shown}: cannot read {tc.sql_table or 'query'}: {clean_duckdb_message(str(exc))}; "
                          f"check {tc.key}.url and {tc.key}.{'table' if tc.sql_table else 'query'}") from None
    table = table.append_column("_file", pa.array([tc.sql_table or "query"] * table.num_rows, pa.string()))
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")
    return Source(name, _describe(con, name), tc.describe())


def explain_read_error(exc: BaseException, tc: TableConfig, fmt: str = "csv") -> str:
    """A DuckDB read error retold in ``workbench.toml`` terms (no DuckDB option names or hints)."""
    text = str(exc)
    low = text.lower()
    key = tc.key
    where = tc.describe()
    line = re.search(r"line:?\s*(\d+)", text, re.IGNORECASE)
    at = f" near line {line.group(1)}" if line else ""
    original = re.search(r"original line:\s*\n?(.*)", text, re.IGNORECASE)
    shown = f" (the line reads: {original.group(1).strip()[:160]!r})" if original else ""
    if "unicode" in low or "utf-8" in low or "utf8" in low:
        return (f"{where}: the text is not valid UTF-8{at}; set {key}.encoding "
                f"(one of utf-8, utf-8-sig, gbk, gb18030, latin-1)")
    if "names" in low and ("column" in low or "header" in low) and tc.names:
        return (f"{where}: {key}.names does not match the file's columns{at}; "
                f"check {key}.names, {key}.delimiter and {key}.header")
    if any(w in low for w in ("expected number of columns", "too many columns", "column count",
                              "columns than expected", "more columns", "less columns", "fewer columns")):
        return (f"{where}: rows have different numbers of fields{at}{shown}; check {key}.delimiter "
                f"(\"whitespace\" for runs of spaces), {key}.skip (leading lines to ignore) and "
                f"{key}.header / {key}.names")
    if ("date" in low or "timestamp" in low) and ("convert" in low or "format" in low or "parse" in low):
        return f"{where}: a date could not be read{at}{shown}; set {key}.date_format (e.g. \"%d/%m/%Y\")"
    if "quote" in low or "unterminated" in low:
        return f"{where}: a quoted field is not closed{at}{shown}; check {key}.delimiter and {key}.skip"
    if "sniff" in low or "auto-detect" in low or "auto detect" in low or "dialect" in low:
        return (f"{where}: the file's layout could not be worked out{at}; set {key}.delimiter, "
                f"{key}.header (and {key}.names), {key}.skip or {key}.encoding")
    if "no files found" in low or "could not open" in low or "cannot open" in low:
        return f"{where}: the file cannot be opened; check {key}.source"
    if "gzip" in low or "compress" in low:
        return f"{where}: the file is not a valid .gz/.zip archive; check {key}.source"
    first = clean_duckdb_message(text)
    return f"{where}: cannot be read as {fmt}{at}: {first}; check {key}.format, {key}.delimiter and {key}.encoding"


_DUCKDB_PREFIX = re.compile(r"^\s*[A-Za-z ]*(Error|Exception):\s*")


def clean_duckdb_message(text: str) -> str:
    """The first sentence of a DuckDB error without its class prefix, hints or option names."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = _DUCKDB_PREFIX.sub("", first)
    first = re.split(r"(Did you mean|Candidate bindings|Possible fixes|Consider |HINT:)", first)[0]
    first = re.sub(r"\b(read_csv|read_csv_auto|read_parquet|sniff_csv)\b", "reader", first)
    return first.strip().rstrip("!.") or "unknown problem"


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
        raise SourceError(explain_read_error(exc, tc, fmt)) from None
    raise SourceError(f"{tc.key}: unsupported format {fmt!r}; set {tc.key}.format to csv, parquet or xlsx "
                      "(or give a url)")
