"""Cache integrity: a damaged cache file is noticed and rebuilt, never trusted.

Every cache file gets

* in its own metadata (``meta["integrity"]``): each stored table's row count
  and a checksum (the sum of a hash over every row);
* beside it, a small stamp ``<cache>.duckdb.stamp.json``: the file's size,
  modification time and a hash of sampled 4 KiB blocks.

Opening a cache checks the stamp (a ``stat`` and a few small reads) and the row
counts in DuckDB's catalogue (no scan): milliseconds. ``verify_checksums``
recomputes the checksums (one scan of every table); ``workbench validate``
does that. Any mismatch means "rebuild", the same as a missing file.

Work copies in the cache's ``work`` folder (UTF-8 copies of GBK sources) record
their size when written (:func:`seal_work_copy`) and are made again when they
no longer have it (:func:`work_copy_intact`); ``--refresh`` deletes them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

SAMPLES = 64
BLOCK = 4096


def stamp_path(cache: Path) -> Path:
    return cache.with_name(cache.name + ".stamp.json")


def _file_stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    h = hashlib.sha256()
    with path.open("rb") as fh:
        offsets = sorted({(st.st_size - BLOCK) * i // (SAMPLES - 1) for i in range(SAMPLES)} if st.st_size > BLOCK
                         else {0})
        for off in offsets:
            fh.seek(max(off, 0))
            h.update(fh.read(BLOCK))
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sample_sha256": h.hexdigest()}


def write_stamp(built: Path, final: Path) -> None:
    """Record ``built`` (about to be renamed to ``final``; a rename keeps size, time and bytes)."""
    stamp_path(final).write_text(json.dumps(_file_stamp(built)), encoding="utf-8")


def stamp_problem(cache: Path) -> str | None:
    """Why ``cache`` does not match its stamp, or None when it does."""
    try:
        recorded = json.loads(stamp_path(cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no integrity stamp"
    try:
        now = _file_stamp(cache)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    for key, label in (("bytes", "size"), ("mtime_ns", "modification time"), ("sample_sha256", "content")):
        if recorded.get(key) != now[key]:
            return f"{label} changed since it was built"
    return None


def _stored_tables(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute("SELECT table_name, estimated_size FROM duckdb_tables() "
                       "WHERE schema_name = 'main' AND NOT temporary AND table_name <> '_workbench_meta'").fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _checksum(con: duckdb.DuckDBPyConnection, table: str) -> str:
    quoted = '"' + table.replace('"', '""') + '"'
    total = con.execute(f"SELECT sum(hash(t)::HUGEINT) FROM {quoted} t").fetchone()[0]
    return str(total or 0)


def table_integrity(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Row count and checksum of every stored table (at build time; one scan each)."""
    out = {}
    for table in sorted(_stored_tables(con)):
        quoted = '"' + table.replace('"', '""') + '"'
        rows = int(con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
        out[table] = {"rows": rows, "checksum": _checksum(con, table)}
    return out


def counts_problem(con: duckdb.DuckDBPyConnection, meta: dict[str, Any]) -> str | None:
    """Compare the row counts in DuckDB's catalogue (no scan) with those recorded at build time."""
    recorded = meta.get("integrity")
    if not isinstance(recorded, dict) or not recorded:
        return "no recorded row counts"
    stored = _stored_tables(con)
    for table, info in recorded.items():
        if table not in stored:
            return f"table {table} is missing"
        if stored[table] != info.get("rows"):
            return f"table {table} has {stored[table]:,} rows, {info.get('rows'):,} were stored"
    return None


def checksum_problem(con: duckdb.DuckDBPyConnection, meta: dict[str, Any]) -> str | None:
    """Recompute every table's checksum (a scan; also makes DuckDB verify each block it reads)."""
    for table, info in (meta.get("integrity") or {}).items():
        try:
            got = _checksum(con, table)
        except duckdb.Error as exc:
            return f"table {table} cannot be read ({str(exc).splitlines()[0]})"
        if got != info.get("checksum"):
            return f"table {table} checksum differs from the one stored at build time"
    return None


def remove(cache: Path) -> None:
    """Delete a cache file with its stamp and WAL (errors ignored: another process may hold it)."""
    for p in (cache, stamp_path(cache), Path(str(cache) + ".wal")):
        try:
            os.unlink(p)
        except OSError:
            pass


# ------------------------------------------------------------- work copies
def _seal(target: Path) -> Path:
    return target.with_name(target.name + ".size.json")


def seal_work_copy(target: Path) -> None:
    """Record a finished work copy's size (after its atomic rename); see :func:`work_copy_intact`."""
    _seal(target).write_text(json.dumps({"bytes": target.stat().st_size}), encoding="utf-8")


def work_copy_intact(target: Path) -> bool:
    """Whether a work copy (UTF-8 copy of a GBK file, unzipped CSV …) has the size it was written with.

    A copy cut short later (disk full, an interrupted copy, a clean-up tool) is then made again
    instead of loading part of the rows with no error.
    """
    try:
        return target.stat().st_size == int(json.loads(_seal(target).read_text(encoding="utf-8"))["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def forget_work_copies(files: Iterable[Path], work_dir: Path) -> None:
    """Delete the work copies made from ``files`` (``--refresh``: decode / unpack them again).

    Work copies are named ``<first part of the source name>.<key>…``; copies of other sources with
    the same first name part go too (they are remade when needed).
    """
    for path in files:
        for copy in work_dir.glob(f"{glob.escape(Path(path).name.split('.')[0])}.*"):
            try:
                copy.unlink()
            except OSError:
                pass
