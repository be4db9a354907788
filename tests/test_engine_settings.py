"""``[engine]``: DuckDB's memory limit and spill folder come from the config (issue 17, item 6)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from workbench.config import ConfigError, load_config
from workbench.engine import duckdb_settings, memory_limit_bytes, physical_memory

GIB = 2**30


def _config(tmp_path: Path, engine: str) -> Path:
    (tmp_path / "customers.csv").write_text("customer_id,signup_date\nc1,2026-01-05\nc2,2026-02-07\n")
    (tmp_path / "transactions.csv").write_text(
        "transaction_id,customer_id,date,amount\nt1,c1,2026-03-01,10\nt2,c2,2026-03-02,20\n")
    toml = tmp_path / "workbench.toml"
    toml.write_text('[dataset]\nname = "tiny"\n\n[tables.customers]\nsource = "customers.csv"\n\n'
                    '[tables.transactions]\nsource = "transactions.csv"\n\n' + engine)
    return toml


def test_amounts_and_shares_in_bytes(monkeypatch):
    monkeypatch.delenv("WORKBENCH_DUCKDB_MEMORY", raising=False)
    assert memory_limit_bytes("8GB", loading=False, total=64 * GIB) == 8 * 1000**3
    assert memory_limit_bytes("512MiB", loading=False, total=64 * GIB) == 512 * 2**20
    assert memory_limit_bytes("25%", loading=True, total=24 * GIB) == 6 * GIB
    # defaults: half the RAM for analyses; loading is capped at 1.5 GB (or half of a small machine)
    assert memory_limit_bytes(None, loading=False, total=24 * GIB) == 12 * GIB
    assert memory_limit_bytes(None, loading=True, total=24 * GIB) == 1536 * 2**20
    assert memory_limit_bytes(None, loading=True, total=2 * GIB) == GIB
    monkeypatch.setenv("WORKBENCH_DUCKDB_MEMORY", "3GB")  # the environment wins over the file
    assert memory_limit_bytes("8GB", loading=False, total=64 * GIB) == 3 * 1000**3


def test_physical_memory_is_the_machine_or_less():
    import os

    assert 0 < physical_memory() <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@pytest.mark.parametrize("engine, words", [
    ('[engine]\nkind = "oracle"\n', "allowed are"),
    ('[engine]\nkind = "postgres"\n', "postgresql://"),
    ('[engine]\nkind = "duckdb"\nurl = "postgresql://x"\n', "unknown key"),
    ('[engine]\nmemory_limit = "lots"\n', "memory_limit"),
    ('[engine]\nmemory_limit = "120%"\n', "memory_limit"),
    ('[engine]\nthreads = 0\n', "threads"),
    ('[engine]\nspill = "/tmp"\n', "unknown key"),
])
def test_bad_engine_settings_name_the_key(tmp_path, engine, words):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, engine))
    assert "[engine]" in str(err.value) and words in str(err.value)


def test_dataset_connections_use_the_settings(tmp_path, monkeypatch):
    from workbench.engine import open_dataset

    monkeypatch.delenv("WORKBENCH_DUCKDB_MEMORY", raising=False)
    monkeypatch.delenv("WORKBENCH_DUCKDB_TEMP", raising=False)
    toml = _config(tmp_path, '[engine]\nmemory_limit = "300MB"\ntemp_directory = "spill-here"\nthreads = 1\n')
    ds = open_dataset(toml)
    limit, temp, threads = ds._con.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
        "current_setting('threads')").fetchall()[0]
    assert limit.replace(" ", "") == "286.0MiB"  # 300 MB = 286.1 MiB, passed in whole MiB
    assert Path(temp) == (tmp_path / "spill-here").resolve() and Path(temp).is_dir()
    assert int(threads) == 1
    # memory settings do not change the loaded data: the same cache is reused
    before = ds.path
    ds._con.close()
    toml.write_text(toml.read_text().replace('"300MB"', '"400MB"'))
    assert open_dataset(toml).path == before


def test_the_locked_build_connection_can_spill(tmp_path):
    """The build connection has external access off; DuckDB must still spill to its temp folder."""
    from workbench.sqlguard import lock_connection

    config = duckdb_settings(load_config(_config(tmp_path, '[engine]\nmemory_limit = "120MB"\n')).engine,
                             loading=True)
    config["temp_directory"] = str(tmp_path / "spill")
    con = duckdb.connect(str(tmp_path / "x.duckdb"), config={**config, "threads": 1})
    lock_connection(con, [], [])
    con.execute("CREATE TABLE t AS SELECT range AS i, random() AS r, md5(range::VARCHAR) AS s FROM range(3000000)")
    n, = con.execute("SELECT count(*) FROM (SELECT * FROM t ORDER BY r)").fetchone()
    assert n == 3_000_000
    con.close()
    shutil.rmtree(tmp_path / "spill", ignore_errors=True)


def test_a_second_open_of_the_same_dataset_in_one_process(tmp_path):
    """DuckDB refuses a connection to an open file with a different configuration: opening the same
    dataset again while the first is open (notebooks, tests) must still work."""
    from workbench.engine import open_dataset

    toml = _config(tmp_path, '[engine]\nmemory_limit = "300MB"\n')
    first = open_dataset(toml)
    second = open_dataset(toml)
    assert first.sql("SELECT count(*) AS n FROM transactions")["n"][0] == 2
    assert second.sql("SELECT count(*) AS n FROM transactions")["n"][0] == 2
