"""Loading every source format through the config contract, and the cache."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from workbench.config import ConfigError, load_config
from workbench.engine import MissingDataError, dataset_from_frames, open_dataset
from workbench.io import SourceError, detect_encoding

TX = pd.DataFrame(
    {
        "customer_id": ["C1", "C1", "C2", "C3", "C3", "C3"],
        "date": ["2026-01-05", "2026-02-01", "2026-01-20", "2026-03-01", "2026-03-02", "2026-03-09"],
        "amount": [100.0, -20.0, 55.5, 10.0, 20.0, 30.0],
        "product_category": ["服装", "服装", "家居", "食品", "食品", "家居"],
    }
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def tx_csv_text() -> str:
    return TX.to_csv(index=False)


def check_tx(ds) -> None:
    got = ds.table("transactions").to_pandas().sort_values(["customer_id", "date"]).reset_index(drop=True)
    assert len(got) == len(TX)
    assert got["amount"].sum() == pytest.approx(TX["amount"].sum())
    assert sorted(got["product_category"].unique()) == sorted(TX["product_category"].unique())
    assert got["date"].min() == pd.Timestamp("2026-01-05")
    assert ds.validation.ok


# ------------------------------------------------------------------ formats
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings_keep_chinese_text(tmp_path: Path, encoding: str) -> None:
    write(tmp_path / "transactions.csv", tx_csv_text(), encoding)
    expected = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "gbk": "gb18030", "gb18030": "gb18030"}[encoding]
    assert detect_encoding(tmp_path / "transactions.csv") == expected
    ds = open_dataset(tmp_path)
    check_tx(ds)
    assert ds.validation.tables["transactions"].encoding == expected


def test_gbk_file_that_is_ascii_at_first(tmp_path: Path) -> None:
    """Chinese text only after the sniffed first MiB is still transcoded, not mangled."""
    ascii_rows = "".join(f"C{i},2026-01-01,1.0,plain\n" for i in range(80_000))
    text = "customer_id,date,amount,product_category\n" + ascii_rows + "C9,2026-01-02,2.0,家居\n"
    write(tmp_path / "transactions.csv", text, "gbk")
    ds = open_dataset(tmp_path)
    cats = ds.sql("SELECT product_category, count(*) n FROM transactions GROUP BY 1 ORDER BY 1")
    assert dict(zip(cats["product_category"], cats["n"], strict=True)) == {"plain": 80_000, "家居": 1}


def test_parquet(tmp_path: Path) -> None:
    TX.assign(date=pd.to_datetime(TX["date"])).to_parquet(tmp_path / "transactions.parquet", index=False)
    check_tx(open_dataset(tmp_path))


def test_excel(tmp_path: Path) -> None:
    TX.assign(date=pd.to_datetime(TX["date"])).to_excel(tmp_path / "transactions.xlsx", index=False)
    check_tx(open_dataset(tmp_path))


def test_sqlite_table_and_query(tmp_path: Path) -> None:
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as con:
        TX.rename(columns={"customer_id": "cust"}).to_sql("orders", con, index=False)
    write(tmp_path / "workbench.toml", f"""
[dataset]
name = "SQLite shop"
url = "sqlite:///{db}"
[tables.transactions]
query = "SELECT cust, date, amount, product_category FROM orders"
[tables.transactions.columns]
customer_id = "cust"
""")
    ds = open_dataset(tmp_path / "workbench.toml")
    check_tx(ds)
    assert ds.name == "SQLite shop"


def test_duckdb_file(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.register("tx", TX)
    con.execute("CREATE TABLE sales AS SELECT * FROM tx")
    con.close()
    write(tmp_path / "workbench.toml", f"""
[tables.transactions]
url = "duckdb:///{db}"
table = "sales"
""")
    check_tx(open_dataset(tmp_path / "workbench.toml"))


def test_literal_password_refused_and_env_substituted(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path / "a.toml", """
[tables.transactions]
url = "postgresql://user:hunter2@db.example/crm"
table = "orders"
""")
    with pytest.raises(ConfigError, match="literal password"):
        load_config(tmp_path / "a.toml")
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as con:
        TX.to_sql("orders", con, index=False)
    write(tmp_path / "b.toml", """
[tables.transactions]
url = "sqlite:///${CRM_DB_PATH}"
table = "orders"
""")
    with pytest.raises(ConfigError, match="CRM_DB_PATH is not set"):
        open_dataset(tmp_path / "b.toml")
    monkeypatch.setenv("CRM_DB_PATH", str(db))
    check_tx(open_dataset(tmp_path / "b.toml"))


# ------------------------------------------------------------ config contract
def test_config_contract_renames_expressions_dates_filter_chinese_columns(tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {
            "会员编号": ["A", "A", "B", "C", "D"],
            "InvoiceDate": ["05/01/2026", "01/02/2026", "20/01/2026", "01/03/2026", "02/03/2026"],
            "Quantity": [2, 1, 3, 1, 5],
            "UnitPrice": [10.0, 5.0, 2.5, 100.0, 1.0],
            "Country": ["United Kingdom", "United Kingdom", "United Kingdom", "France", "United Kingdom"],
        }
    )
    (tmp_path / "exports").mkdir()
    raw.iloc[:3].to_csv(tmp_path / "exports" / "orders_1.csv", index=False)
    raw.iloc[3:].to_csv(tmp_path / "exports" / "orders_2.csv", index=False)
    write(tmp_path / "workbench.toml", """
[dataset]
name = "Acme retail"
currency = "GBP"
margin_rate = 0.25
[tables.transactions]
source = "exports/orders*.csv"
date_format = "%d/%m/%Y"
filter = "Country = 'United Kingdom'"
[tables.transactions.columns]
customer_id = "会员编号"
date = "InvoiceDate"
amount = "Quantity * UnitPrice"
""")
    ds = open_dataset(tmp_path)
    tx = ds.table("transactions").to_pandas().sort_values("date").reset_index(drop=True)
    assert list(tx["customer_id"]) == ["A", "B", "A", "D"]
    assert list(tx["date"].dt.date) == [dt.date(2026, 1, 5), dt.date(2026, 1, 20), dt.date(2026, 2, 1),
                                        dt.date(2026, 3, 2)]
    assert list(tx["amount"]) == [20.0, 7.5, 5.0, 5.0]
    assert list(tx["margin"]) == pytest.approx([5.0, 1.875, 1.25, 1.25])  # margin_rate fallback
    load = ds.validation.tables["transactions"]
    assert (load.source_rows, load.filtered_rows, load.loaded_rows) == (5, 1, 4)
    filtered = [i for i in ds.validation.issues if i.rule == "filtered"]
    assert filtered and filtered[0].count == 1
    assert ds.currency == "GBP" and ds.name == "Acme retail"


def test_derived_customers(tmp_path: Path) -> None:
    write(tmp_path / "transactions.csv", tx_csv_text())
    ds = open_dataset(tmp_path)
    assert ds.customers_derived
    cust = ds.table("customers").to_pandas().set_index("customer_id")["signup_date"]
    assert cust.to_dict() == {"C1": pd.Timestamp("2026-01-05"), "C2": pd.Timestamp("2026-01-20"),
                              "C3": pd.Timestamp("2026-03-01")}


def test_missing_table_and_column_raise_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "transactions.csv", tx_csv_text())
    ds = open_dataset(tmp_path)
    with pytest.raises(MissingDataError, match="table 'surveys'"):
        ds.table("surveys")
    with pytest.raises(MissingDataError, match="discount in table 'transactions'"):
        ds.require("transactions", "discount")
    assert not ds.has("transactions", "margin")  # no margin column, no margin_rate


def test_bad_expression_names_table_and_columns(tmp_path: Path) -> None:
    write(tmp_path / "transactions.csv", tx_csv_text())
    write(tmp_path / "workbench.toml", """
[tables.transactions]
source = "transactions.csv"
[tables.transactions.columns]
amount = "Quantity * Price"
""")
    with pytest.raises(ConfigError, match=r"tables.transactions.*source columns: customer_id, date"):
        open_dataset(tmp_path)


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[tables.orders]\nsource='x.csv'", "unknown table"),
        ("[tables.transactions]\nsource='nope*.csv'", "matches no file"),
        ("[tables.transactions]\nsource='t.csv'\nencoding='klingon'", "encoding"),
        ("[tables.transactions]\nsource='t.csv'\nsheet_name='x'", "unknown key"),
        ("[tables.surveys]\nsource='t.csv'\nscales.satisfaction=[5, 1]", "low < high"),
        ("[dataset]\nmargin_rate=3\n[tables.transactions]\nsource='t.csv'", "margin_rate"),
        ("[tables.transactions\nsource='t.csv'", "invalid TOML"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    write(tmp_path / "t.csv", tx_csv_text())
    write(tmp_path / "workbench.toml", toml)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path)
    assert "workbench.toml" in str(info.value) or "TOML" in str(info.value) or "encoding" in str(info.value)


def test_unreadable_source_is_source_error(tmp_path: Path) -> None:
    write(tmp_path / "transactions.parquet", "this is not parquet")
    with pytest.raises(SourceError, match="transactions.parquet"):
        open_dataset(tmp_path)


def test_nonexistent_path() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_dataset("/no/such/dataset")


# ---------------------------------------------------------------------- cache
def test_cache_hit_and_invalidation(tmp_path: Path) -> None:
    path = write(tmp_path / "transactions.csv", tx_csv_text())
    ds1 = open_dataset(tmp_path)
    first = ds1.path
    built_at = ds1.meta["built_at"]
    ds1.close()
    started = time.perf_counter()
    ds2 = open_dataset(tmp_path)
    reopen = time.perf_counter() - started
    assert ds2.path == first and ds2.meta["built_at"] == built_at  # served from cache, not rebuilt
    assert reopen < 1.0
    ds2.close()
    # a changed source invalidates the cache: new rows appear, the old file is cleaned up
    time.sleep(0.01)
    path.write_text(tx_csv_text() + "C4,2026-04-01,9.0,食品\n", encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    ds3 = open_dataset(tmp_path)
    assert ds3.path != first
    assert ds3.validation.tables["transactions"].loaded_rows == len(TX) + 1
    assert not first.exists()
    # refresh forces a rebuild
    ds4 = open_dataset(tmp_path, refresh=True)
    assert ds4.validation.tables["transactions"].loaded_rows == len(TX) + 1


def test_two_readers_share_the_cache(tmp_path: Path) -> None:
    write(tmp_path / "transactions.csv", tx_csv_text())
    a = open_dataset(tmp_path)
    b = open_dataset(tmp_path)  # read-only opens do not lock each other out
    assert a.sql("SELECT count(*) n FROM transactions")["n"][0] == b.sql("SELECT count(*) n FROM transactions")["n"][0]


def test_dataset_from_frames_roundtrip(tmp_path: Path) -> None:
    surveys = pd.DataFrame({"date": pd.to_datetime(["2026-01-01", "2026-01-02"]), "satisfaction": [4, 5],
                            "recommend": [9, 10], "service_level": [4, 3]})
    ds = dataset_from_frames({"surveys": surveys}, tmp_path, name="frames test",
                             scales={"surveys": {"recommend": (0, 10)}}, drivers=["service_level"])
    assert ds.drivers == ["service_level"]
    assert ds.scale("surveys", "recommend") == (0.0, 10.0)
    assert ds.validation.ok


def test_readme_worked_example_online_retail(tmp_path: Path) -> None:
    """The UK online-retail example in README loads as documented."""
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    part1 = header + (
        "536365,85123A,WHITE HANGING HEART,6,01/12/2010 08:26,2.55,17850.0,United Kingdom\n"
        "536366,22633,HAND WARMER,6,01/12/2010 08:28,1.85,17850.0,United Kingdom\n"
        "536367,84879,ASSORTED BIRD,32,13/12/2010 08:34,1.69,13047.0,United Kingdom\n"
        "536368,22960,JAM MAKING SET,6,13/12/2010 08:34,4.25,,United Kingdom\n"
    )
    part2 = header + (
        "C536379,D,Discount,-1,05/01/2011 09:41,27.5,17850.0,United Kingdom\n"
        "536370,22728,ALARM CLOCK,24,05/01/2011 08:45,3.75,12583.0,France\n"
    )
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "online_retail_2010.csv").write_text(part1, encoding="utf-8")
    (tmp_path / "exports" / "online_retail_2011.csv").write_text(part2, encoding="utf-8")
    (tmp_path / "workbench.toml").write_text("""
[dataset]
name = "Online retail UK"
currency = "GBP"
margin_rate = 0.25

[tables.transactions]
source = "exports/online_retail_*.csv"
date_format = "%d/%m/%Y %H:%M"
filter = "Country = 'United Kingdom' AND CustomerID IS NOT NULL"
[tables.transactions.columns]
customer_id = "CustomerID"
date = "InvoiceDate"
amount = "Quantity * UnitPrice"
order_id = "InvoiceNo"
product_category = "StockCode"
""", encoding="utf-8")
    ds = open_dataset(tmp_path)
    assert ds.validation.ok
    load = ds.validation.tables["transactions"]
    assert (load.source_rows, load.filtered_rows, load.loaded_rows) == (6, 2, 4)
    tx = ds.sql("SELECT customer_id, sum(amount) AS amount, sum(margin) AS margin FROM transactions "
                "GROUP BY 1 ORDER BY 1")
    assert list(tx["customer_id"]) == ["13047", "17850"]
    assert tx["amount"].tolist() == pytest.approx([32 * 1.69, 6 * 2.55 + 6 * 1.85 - 27.5])
    assert tx["margin"].tolist() == pytest.approx([0.25 * 32 * 1.69, 0.25 * (6 * 2.55 + 6 * 1.85 - 27.5)])
    assert ds.customers_derived
    dates = ds.sql("SELECT min(date) AS lo, max(date) AS hi FROM transactions")
    assert str(dates["lo"][0])[:10] == "2010-12-01" and str(dates["hi"][0])[:10] == "2011-01-05"


def test_bad_value_beyond_the_sniffed_sample_is_reported_not_fatal(tmp_path: Path) -> None:
    """DuckDB sniffs the first 100k rows; a text amount after them must become a counted wrong_type row."""
    rows = "".join(f"C{i % 50},2026-01-01,{i % 7}.5\n" for i in range(120_000))
    write(tmp_path / "transactions.csv", "customer_id,date,amount\n" + rows + "C1,2026-01-02,twelve\n")
    ds = open_dataset(tmp_path)
    [issue] = [i for i in ds.validation.issues if i.rule == "wrong_type"]
    assert issue.count == 1 and issue.examples[0]["amount"] == "twelve" and issue.examples[0]["line"] == 120_002
    assert ds.validation.tables["transactions"].loaded_rows == 120_000


def test_shared_table_is_built_once_per_version_and_replaced(tmp_path: Path) -> None:
    """Dataset.shared_table: one temporary table per key and version; a new version drops the old table."""
    tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "date": pd.to_datetime(["2026-01-01", "2026-01-05", "2026-01-03"]),
                       "amount": [5.0, 7.0, 11.0]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path)
    q = "SELECT customer_id, sum(amount) AS v FROM transactions WHERE date <= DATE '{}' GROUP BY 1"
    one = ds.shared_table("totals", q.format("2026-01-03"), version=1)
    assert ds.shared_table("totals", "SELECT 1 AS never_run", version=1) == one  # same version: not rebuilt
    got = ds.sql(f"SELECT * FROM {one} ORDER BY 1")
    assert got["v"].tolist() == [5.0, 11.0]
    two = ds.shared_table("totals", q.format("2026-12-31"), version=2)
    assert two != one and ds.sql(f"SELECT * FROM {two} ORDER BY 1")["v"].tolist() == [12.0, 11.0]
    with pytest.raises(duckdb.CatalogException):
        ds.sql(f"SELECT * FROM {one}")
    ds.close()
