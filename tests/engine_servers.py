"""A throw-away PostgreSQL server and Spark session for the engine tests (see tests/test_engines.py).

PostgreSQL: Debian's ``postgresql`` package (``/usr/lib/postgresql/*/bin``) or ``initdb``/``pg_ctl`` on
PATH; a fresh data directory in /tmp, a free local port, trust authentication, and a server time
zone that is not UTC (timestamps are the known trap). Root cannot run the server, so as root it runs
as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import tomllib
from pathlib import Path

import duckdb
import pyarrow as pa

SERVER_TIME_ZONE = "America/New_York"  # daylight saving inside the sample's two years
PG_USER = "wb"


def pg_bin() -> Path | None:
    """The folder with initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(cand).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class PostgresServer:
    """initdb + pg_ctl start on a temporary folder; :meth:`stop` removes everything."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="wb-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(self.data), "-U", PG_USER,
                                        "--auth=trust", "-E", "UTF8", "--locale=C"]),
                       check=True, capture_output=True, env=env, timeout=120)
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c full_page_writes=off -c synchronous_commit=off -c timezone={SERVER_TIME_ZONE}")
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(self.data), "-o", opts,
                                        "-l", str(self.root / "log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, env=env, timeout=90)
        self.url = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                        "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


_PG_TYPES = {"VARCHAR": "text", "DOUBLE": "double precision", "BIGINT": "bigint", "INTEGER": "integer",
             "DATE": "date", "TIMESTAMP": "timestamp", "BOOLEAN": "boolean", "FLOAT": "real"}


def canonical_tables(ds) -> dict[str, str]:
    """Canonical table → DuckDB SELECT of its canonical columns (margin left to margin_rate, as loaded)."""
    out = {}
    for t in ds.tables:
        cols = ", ".join(f'"{c}"' for c in ds.meta["kinds"][t])
        out[t] = f"SELECT {cols} FROM {t}"
    return out


def load_postgres(ds, url: str, schema: str = "crm") -> None:
    """Copy the DuckDB dataset's canonical tables into ``schema`` (typed columns, rows in key order)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for t, select in canonical_tables(ds).items():
            rel = ds._con.sql(select)
            cols = ", ".join(f'"{n}" {_PG_TYPES[str(ty).split("(")[0].replace("TIMESTAMP_NS", "TIMESTAMP")]}' for n, ty in zip(rel.columns, rel.types,
                                                                                      strict=True))
            con.execute(f"DROP TABLE IF EXISTS {schema}.{t}")
            con.execute(f"CREATE TABLE {schema}.{t} ({cols})")
            with con.cursor().copy(f"COPY {schema}.{t} FROM STDIN") as copy:
                for row in rel.fetchall():
                    copy.write_row(row)
            con.execute(f"ANALYZE {schema}.{t}")


def load_postgres_frames(frames: dict, url: str, schema: str) -> None:
    """pandas frames as typed tables in ``schema`` (through DuckDB, so the types match a DuckDB load)."""
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, pa.Table.from_pandas(frame, preserve_index=False))  # NaN → NULL, as Parquet

        class _Frames:  # the shape load_postgres reads: tables, kinds, and a DuckDB connection
            tables = list(frames)
            meta = {"kinds": {n: {c: "" for c in f.columns} for n, f in frames.items()}}
            _con = con

        load_postgres(_Frames, url, schema)
    finally:
        con.close()


def write_parquet(ds, folder: Path) -> dict[str, Path]:
    """The DuckDB dataset's canonical tables as Parquet files for Spark."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for t, select in canonical_tables(ds).items():
        out[t] = folder / f"{t}.parquet"
        ds._con.execute(f"COPY ({select}) TO '{out[t]}' (FORMAT parquet)")
    return out


def engine_config(sample_toml: Path, folder: Path, engine: dict[str, str], tables: dict[str, dict[str, str]]) -> Path:
    """The sample's workbench.toml for another engine: same [dataset]/[targets]/[programme] and table semantics."""
    from workbench.engine import _toml_value

    raw = tomllib.loads(sample_toml.read_text(encoding="utf-8"))
    keep = {"scales", "drivers", "segments", "closed_statuses", "churn_as_of", "loyal_kind", "wave_date"}
    lines = ["[dataset]"] + [f"{k} = {_toml_value(v)}" for k, v in raw.get("dataset", {}).items()]
    lines += ["", "[engine]"] + [f"{k} = {_toml_value(v)}" for k, v in engine.items()]
    for t, where in tables.items():
        spec = {k: v for k, v in raw.get("tables", {}).get(t, {}).items() if k in keep}
        lines += ["", f"[tables.{t}]"] + [f"{k} = {_toml_value(v)}" for k, v in {**where, **spec}.items()]
    for section in ("targets", "programme"):
        flat = {k: v for k, v in raw.get(section, {}).items()}
        if flat:
            lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in flat.items()]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "workbench.toml"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def duckdb_version() -> str:
    return duckdb.__version__
