"""Issue 12 items 4-6: config SQL stays in its box, bad input fails loudly, a damaged cache is rebuilt.

Expected values are computed with plain pandas/Python from the same rows,
never by calling the workbench.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench import integrity, sqlguard
from workbench.cli import app
from workbench.config import ConfigError, load_config
from workbench.engine import MissingDataError, cache_dir, open_dataset
from workbench.io import SourceError

PASSWD = Path("/etc/passwd")
PASSWD_TEXT = PASSWD.read_text(encoding="utf-8", errors="replace") if PASSWD.exists() else "root:x:0:0"
PASSWD_MARK = PASSWD_TEXT.splitlines()[0].split(":")[0] + ":x:" if ":x:" in PASSWD_TEXT else "root:x:0:0"

RAW = pd.DataFrame({
    "CustomerID": ["A", "A", "B", "C", "D", "E"],
    "InvoiceDate": ["2026年01月05日", "2026年02月01日", "2026年01月20日", "2026年03月01日", "2026年03月02日",
                    "2026年03月15日"],
    "Quantity": [2, 1, 3, 1, 5, 4],
    "UnitPrice": [10.0, 5.0, 2.5, 100.0, 1.0, 0.5],
    "product": ["Tea", "Tea", "Mug", "Pot", "Tea", "Mug"],
    "issue": ["late", "ok", "broken", "ok", "late", "ok"],
    "Country": ["United Kingdom", "United Kingdom", "United Kingdom", "France", "United Kingdom", "France"],
})
CUSTOMERS = pd.DataFrame({"CustomerID": ["A", "B", "C", "D", "E"], "tenure": [0, 1, 12, 25, 7]})


def write_dataset(root: Path, columns: dict[str, str], filter_sql: str | None = None,
                  extra: str = "") -> Path:
    """transactions.csv + customers.csv + a workbench.toml mapping ``columns`` (TOML literal strings)."""
    root.mkdir(parents=True, exist_ok=True)
    RAW.to_csv(root / "tx.csv", index=False)
    CUSTOMERS.to_csv(root / "cust.csv", index=False)
    lines = ['[dataset]', 'name = "safety"', 'as_of = 2026-10-31', '', '[tables.transactions]',
             'source = "tx.csv"']
    if filter_sql is not None:
        lines.append(f"filter = '''{filter_sql}'''")
    lines.append("[tables.transactions.columns]")
    lines += [f"{k} = '''{v}'''" for k, v in columns.items()]
    lines.append(extra)
    (root / "workbench.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "workbench.toml"


BASE = {"customer_id": "CustomerID", "date": "strptime(InvoiceDate, '%Y年%m月%d日')", "amount": "Quantity * UnitPrice"}


def cache_files_text() -> str:
    """Everything the cache folder holds, as text (to prove no file content leaked anywhere)."""
    chunks = []
    for p in cache_dir().rglob("*"):
        if p.is_file():
            chunks.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(chunks)


# ------------------------------------------------------------ 4. SQL in the config
def test_subquery_reading_a_file_in_a_mapping_is_refused_and_leaks_nothing(tmp_path: Path) -> None:
    evil = "(SELECT string_agg(column0, ' ') FROM read_csv('/etc/passwd', header = false, sep = '|'))"
    toml = write_dataset(tmp_path, {**BASE, "product_category": evil})
    with pytest.raises(ConfigError) as info:
        open_dataset(toml)
    message = str(info.value)
    assert "[tables.transactions.columns].product_category" in message
    assert "subquery" in message
    assert PASSWD_MARK not in message
    assert PASSWD_MARK not in cache_files_text()
    result = CliRunner().invoke(app, ["validate", str(toml)])
    assert result.exit_code == 2
    assert "[tables.transactions.columns].product_category" in result.output and PASSWD_MARK not in result.output


def test_table_function_as_a_filter_is_refused(tmp_path: Path) -> None:
    toml = write_dataset(tmp_path, BASE, filter_sql="CustomerID IN (SELECT * FROM glob('/etc/*'))")
    with pytest.raises(ConfigError, match=r"\[tables\.transactions\]\.filter"):
        open_dataset(toml)
    toml = write_dataset(tmp_path, {**BASE, "product_category": "read_text('/etc/passwd')"})
    with pytest.raises(ConfigError, match=r"columns\]\.product_category.*read_text\(\).*table function"):
        open_dataset(toml)


def test_second_statement_in_a_mapping_writes_no_file(tmp_path: Path) -> None:
    target = tmp_path / "stolen.csv"
    # the trailing comment swallows the rest of the engine's SELECT: without the check DESCRIBE runs, then COPY
    evil = (f"1 AS amount FROM (SELECT 'A' AS CustomerID, '2026年01月05日' AS InvoiceDate); "
            f"COPY (SELECT 42 AS x) TO '{target}'; SELECT 1 --")
    toml = write_dataset(tmp_path / "ds", {**BASE, "amount": evil})
    with pytest.raises(ConfigError, match=r"\[tables\.transactions\.columns\]\.amount"):
        open_dataset(toml)
    assert not target.exists()
    toml = write_dataset(tmp_path / "ds", {**BASE, "amount": f"1; COPY (SELECT 1) TO '{target}'"})
    with pytest.raises(ConfigError, match=r"\.amount.*statement other than SELECT"):
        open_dataset(toml)
    assert not target.exists()


@pytest.mark.parametrize("expr, what", [
    ("Quantity * UnitPrice -- rest of line", "comment"),
    ("sum(Quantity)", "aggregate"),
    ("sum(Quantity) OVER ()", "window"),
    ("Quantity AS amount", "alias"),
    ("Quantity, UnitPrice", "more than one expression"),
    ("getenv('HOME')", "getenv"),
    ("current_setting('home_directory')", "current_setting"),
    ("Quantity FROM read_parquet('x.parquet')", "FROM"),
    ("1 UNION SELECT 2", "UNION"),
    ("no_such_function(Quantity)", "unknown function"),
])
def test_expression_checker_refuses(expr: str, what: str) -> None:
    with pytest.raises(ConfigError, match=r"\[tables\.t\.columns\]\.amount") as info:
        sqlguard.check_expression(expr, "[tables.t.columns].amount")
    assert what in str(info.value)


def test_legitimate_expressions_still_work(tmp_path: Path) -> None:
    cols = {**BASE, "product_category": "product || ' / ' || issue",
            "channel": "CASE WHEN Country = 'United Kingdom' THEN 'domestic' ELSE 'export' END"}
    extra = """
[tables.customers]
source = "cust.csv"
[tables.customers.columns]
customer_id = "CustomerID"
signup_date = "DATE '2020-01-01' - INTERVAL (tenure) MONTH"
"""
    toml = write_dataset(tmp_path, cols, filter_sql="Quantity > 1 OR Country <> 'France' -- France: bulk only\n",
                         extra=extra)
    ds = open_dataset(toml)
    assert ds.validation.ok, ds.validation
    got = ds.sql("SELECT customer_id, date, amount, product_category, channel FROM transactions "
                 "ORDER BY customer_id, date")
    exp = RAW[(RAW["Quantity"] > 1) | (RAW["Country"] != "France")].copy()
    exp["date"] = pd.to_datetime(exp["InvoiceDate"], format="%Y年%m月%d日")
    exp["amount"] = exp["Quantity"] * exp["UnitPrice"]
    exp["product_category"] = exp["product"] + " / " + exp["issue"]
    exp["channel"] = exp["Country"].map(lambda c: "domestic" if c == "United Kingdom" else "export")
    exp = exp.sort_values(["CustomerID", "date"]).reset_index(drop=True)
    assert got["customer_id"].tolist() == exp["CustomerID"].tolist()
    assert [pd.Timestamp(d) for d in got["date"]] == exp["date"].tolist()
    assert got["amount"].tolist() == pytest.approx(exp["amount"].tolist())
    assert got["product_category"].tolist() == exp["product_category"].tolist()
    assert got["channel"].tolist() == exp["channel"].tolist()
    signup = ds.sql("SELECT customer_id, signup_date FROM customers ORDER BY 1")
    expected = [pd.Timestamp("2020-01-01") - pd.DateOffset(months=int(m)) for m in CUSTOMERS["tenure"]]
    assert [pd.Timestamp(d) for d in signup["signup_date"]] == expected


def test_build_connection_cannot_read_outside_the_sources(tmp_path: Path, monkeypatch) -> None:
    """Second layer: with the parse check switched off, DuckDB itself refuses the file."""
    import workbench.engine as engine

    monkeypatch.setattr(engine, "check_table_sql", lambda *a, **k: None)
    evil = "(SELECT string_agg(column0, ' ') FROM read_csv('/etc/passwd', header = false, sep = '|'))"
    toml = write_dataset(tmp_path, {**BASE, "product_category": evil})
    with pytest.raises((ConfigError, SourceError)) as info:
        open_dataset(toml)
    assert "Permission" in str(info.value) or "disabled" in str(info.value)
    assert PASSWD_MARK not in str(info.value)
    assert PASSWD_MARK not in cache_files_text()


def test_duckdb_file_query_cannot_read_files(tmp_path: Path) -> None:
    db = tmp_path / "crm.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE orders AS SELECT 'A' AS customer_id, DATE '2026-01-05' AS date, 10.0 AS amount")
    con.close()
    (tmp_path / "workbench.toml").write_text(f"""
[tables.transactions]
url = "duckdb:///{db}"
query = "SELECT customer_id, date, amount, (SELECT string_agg(column0, ' ') FROM read_csv('/etc/passwd', header = false, sep = '|')) AS product_category FROM orders"
""", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        open_dataset(tmp_path)
    assert PASSWD_MARK not in str(info.value)
    assert PASSWD_MARK not in cache_files_text()


def test_query_checker_allows_only_declared_sources() -> None:
    ok = "WITH o AS (SELECT * FROM orders) SELECT o.*, c.tier FROM o JOIN customers_raw c USING (customer_id);"
    assert sqlguard.check_query(ok, "[tables.transactions].query", ["orders", "customers_raw"]).endswith("customer_id)")
    for bad, what in [("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
                      ("SELECT * FROM orders WHERE customer_id IN (SELECT * FROM glob('/etc/*'))", "glob"),
                      ("SELECT * FROM '/etc/passwd'", "not a declared source"),
                      ("SELECT * FROM information_schema.tables", "information_schema"),
                      ("SELECT 1 FROM orders; COPY orders TO '/tmp/x.csv'", "other than SELECT")]:
        with pytest.raises(ConfigError, match=r"\[tables\.transactions\]\.query") as info:
            sqlguard.check_query(bad, "[tables.transactions].query", ["orders", "customers_raw"])
        assert what in str(info.value)


# ------------------------------------------------------ 5. inputs that must not pass quietly
runner = CliRunner()


@pytest.mark.parametrize("value", ['"2026-13-45"', "20261231", '"last month"'])
def test_bad_as_of_is_a_config_error_naming_the_key(tmp_path: Path, value: str) -> None:
    toml = write_dataset(tmp_path, BASE)
    toml.write_text(toml.read_text(encoding="utf-8").replace("as_of = 2026-10-31", f"as_of = {value}"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"workbench\.toml: \[dataset\]\.as_of must be a date.*2026-10-31"):
        load_config(toml)
    result = runner.invoke(app, ["validate", str(toml)])
    assert result.exit_code == 2
    assert "[dataset].as_of" in result.output


def test_as_of_date_string_and_toml_date_both_work(tmp_path: Path) -> None:
    toml = write_dataset(tmp_path, BASE)
    assert load_config(toml).as_of == dt.date(2026, 10, 31)
    toml.write_text(toml.read_text(encoding="utf-8").replace("as_of = 2026-10-31", 'as_of = "2026-09-30"'),
                    encoding="utf-8")
    assert load_config(toml).as_of == dt.date(2026, 9, 30)


def test_gbk_encoded_config_loads(tmp_path: Path) -> None:
    RAW.rename(columns={"CustomerID": "会员编号"}).to_csv(tmp_path / "tx.csv", index=False)
    text = """[dataset]
name = "华东门店"
[tables.transactions]
source = "tx.csv"
[tables.transactions.columns]
customer_id = "会员编号"
date = "strptime(InvoiceDate, '%Y年%m月%d日')"
amount = "Quantity * UnitPrice"
"""
    (tmp_path / "workbench.toml").write_bytes(text.encode("gbk"))
    ds = open_dataset(tmp_path)
    assert ds.name == "华东门店"
    got = ds.sql("SELECT count(DISTINCT customer_id) AS n, sum(amount) AS s FROM transactions")
    assert got["n"][0] == RAW["CustomerID"].nunique()
    assert got["s"][0] == pytest.approx((RAW["Quantity"] * RAW["UnitPrice"]).sum())


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_config_with_bom_loads(tmp_path: Path, encoding: str) -> None:
    RAW.to_csv(tmp_path / "tx.csv", index=False)
    text = '[dataset]\nname = "东区"\n[tables.transactions]\nsource = "tx.csv"\n'
    (tmp_path / "workbench.toml").write_bytes(text.encode(encoding))
    config = load_config(tmp_path)
    assert config.name == "东区" and list(config.tables) == ["transactions"]


def test_undecodable_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "workbench.toml").write_bytes(b'[dataset]\nname = "\xff\xfe\xff"\n')
    with pytest.raises(ConfigError, match="workbench.toml: .*neither UTF-8 nor GBK"):
        load_config(tmp_path)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2 and "UTF-8" in result.output


def test_square_brackets_in_messages_and_values_are_printed_literally(tmp_path: Path) -> None:
    (tmp_path / "workbench.toml").write_text('[tables.transactions]\nsource = "nope*.csv"\n', encoding="utf-8")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "[tables.transactions]: source 'nope*.csv' matches no file" in result.output
    # a data value that is also rich markup: shown as written, no MarkupError traceback
    (tmp_path / "workbench.toml").unlink()
    (tmp_path / "transactions.csv").write_text(
        "customer_id,date,amount\n[bold]C1,2026-01-05,[/]\nC2,2026-01-06,[red]12\nC3,2026-01-07,5\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert "'[/]'" in result.output and "'[red]12'" in result.output and "[bold]C1" in result.output
    assert "[bold red]" not in result.output and "[/bold" not in result.output  # our own colours are not markup text
    (tmp_path / "workbench.toml").write_text('[dataset]\nname = "[red]Shop[/]"\n', encoding="utf-8")
    result = runner.invoke(app, ["summary", str(tmp_path)])
    assert result.exit_code == 0 and "[red]Shop[/]" in result.output


def test_header_only_table_loads_empty_and_is_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text("customer_id,date,amount\n", encoding="utf-8")
    (tmp_path / "customers.csv").write_text("customer_id,signup_date\nC1,2026-01-01\nC2,2026-02-01\n",
                                            encoding="utf-8")
    ds = open_dataset(tmp_path)
    assert ds.tables == ["customers"] and ds.empty_tables == ["transactions"]
    assert not ds.has("transactions", "amount")
    with pytest.raises(MissingDataError, match="no data rows"):
        ds.table("transactions")
    empty = [i for i in ds.validation.issues if i.rule == "empty_table"]
    assert [(i.table, i.severity) for i in empty] == [("transactions", "warning")]
    assert ds.summary()["table"].tolist() == ["customers"]
    ds.close()
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "empty_table" in result.output and "No problems found" not in result.output
    result = runner.invoke(app, ["summary", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_all_tables_header_only_is_a_validation_failure(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text("customer_id,date,amount\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "no table has any rows to analyse" in result.output and "empty_table" in result.output


# ------------------------------------------------------------- 6. cache integrity
def _tx_dataset(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = [f"C{i % 97},2026-0{1 + i % 9}-1{i % 10},{(i * 37) % 500 / 10}" for i in range(3000)]
    (root / "transactions.csv").write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


def _expected_sum(root: Path) -> float:
    return float(pd.read_csv(root / "transactions.csv")["amount"].sum())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "garbage_same_mtime"])
def test_damaged_cache_is_rebuilt_silently(tmp_path: Path, damage: str) -> None:
    root = _tx_dataset(tmp_path / "ds")
    ds = open_dataset(root)
    path, built = ds.path, ds.meta["built_at"]
    assert set(ds.meta["integrity"]) >= {"customers", "_stg_transactions"}
    ds.close()
    st = path.stat()
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        mid = len(data) // 2
        data[mid: mid + 65536] = os.urandom(min(65536, len(data) - mid))
        path.write_bytes(bytes(data))
        if damage == "garbage_same_mtime":
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(1.01)  # built_at has second resolution
    ds = open_dataset(root)
    assert ds.meta["built_at"] != built  # rebuilt, not trusted
    assert ds.validation.ok and not ds.validation.issues
    got = ds.sql("SELECT count(*) AS n, sum(amount) AS s FROM transactions")
    assert got["n"][0] == 3000
    assert got["s"][0] == pytest.approx(_expected_sum(root))


def test_stamp_and_row_counts_checked_on_open_quickly(tmp_path: Path) -> None:
    root = _tx_dataset(tmp_path / "ds")
    ds = open_dataset(root)
    path = ds.path
    rows = {t: v["rows"] for t, v in ds.meta["integrity"].items()}
    ds.close()
    con = duckdb.connect(str(path), read_only=True)
    counted = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in rows}
    con.close()
    assert rows == counted  # recorded counts are the real ones
    started = time.perf_counter()
    for _ in range(5):
        assert integrity.stamp_problem(path) is None
    assert (time.perf_counter() - started) / 5 < 0.05
    integrity.stamp_path(path).unlink()  # a cache without its stamp is not trusted either
    ds = open_dataset(root)
    assert integrity.stamp_path(ds.path).exists()


def test_validate_rechecks_checksums(tmp_path: Path) -> None:
    """A cache whose stamp was rewritten to match damaged content is still caught by the checksum scan."""
    root = _tx_dataset(tmp_path / "ds")
    ds = open_dataset(root)
    path, built = ds.path, ds.meta["built_at"]
    ds.close()
    con = duckdb.connect(str(path))  # a valid file whose data no longer matches the recorded checksum
    con.execute("UPDATE _stg_transactions SET amount = amount + 1 WHERE rowid = 5")
    con.execute("CHECKPOINT")
    con.close()
    integrity.write_stamp(path, path)
    assert open_dataset(root).meta["built_at"] == built  # the quick check (row counts) cannot see it
    time.sleep(1.01)
    ds = open_dataset(root, verify=True)
    assert ds.meta["built_at"] != built
    assert ds.sql("SELECT sum(amount) AS s FROM transactions")["s"][0] == pytest.approx(_expected_sum(root))


def _gbk_dataset(root: Path, n: int = 468) -> pd.DataFrame:
    root.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"customer_id": [f"会员{i % 50:03d}" for i in range(n)],
                          "date": [f"2026-0{1 + i % 9}-1{i % 10}" for i in range(n)],
                          "amount": [round(1 + (i * 13) % 300 / 7, 2) for i in range(n)],
                          "product_category": ["服装" if i % 3 else "家居" for i in range(n)]})
    (root / "transactions.csv").write_bytes(frame.to_csv(index=False).encode("gbk"))
    return frame


def test_truncated_utf8_copy_of_a_gbk_source_is_rebuilt(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))  # this test's work folder only
    root = tmp_path / "gbk"
    frame = _gbk_dataset(root)
    ds = open_dataset(root)
    assert ds.validation.tables["transactions"].loaded_rows == len(frame)
    path = ds.path
    ds.close()
    copies = list((cache_dir() / "work").glob("transactions.*.utf8.csv"))
    assert len(copies) == 1
    text = copies[0].read_bytes()
    cut = text.rindex(b"\n", 0, int(len(text) * 0.42)) + 1  # cut at a line end: still valid CSV, rows missing
    copies[0].write_bytes(text[:cut])  # a cut-off copy (disk full, killed writer)
    integrity.remove(path)  # any rebuild (new code version, changed config) re-reads the copy
    ds = open_dataset(root)
    load = ds.validation.tables["transactions"]
    assert load.loaded_rows == len(frame) and load.source_rows == len(frame)
    got = ds.sql("SELECT sum(amount) AS s, count(DISTINCT customer_id) AS c FROM transactions")
    assert got["s"][0] == pytest.approx(frame["amount"].sum())
    assert got["c"][0] == frame["customer_id"].nunique()


def test_refresh_decodes_the_sources_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "gbk2"
    frame = _gbk_dataset(root, n=60)
    open_dataset(root).close()
    (copy,) = (cache_dir() / "work").glob("transactions.*.utf8.csv")
    # same length, different content: only decoding again can repair it
    copy.write_bytes(copy.read_bytes().replace("服装".encode(), "鞋帽".encode()))
    ds = open_dataset(root, refresh=True)
    cats = ds.sql("SELECT product_category, count(*) AS n FROM transactions GROUP BY 1 ORDER BY 1")
    assert dict(zip(cats["product_category"], cats["n"], strict=True)) == \
        frame["product_category"].value_counts().to_dict()


def test_nan_and_inf_text_in_amounts_are_errors_not_blank_headlines(tmp_path: Path) -> None:
    amounts = ["12.5", "NaN", "7", "inf", "-Infinity", "3.25", "nan"]
    rows = [f"C{i % 3},2026-01-{10 + i},{a}" for i, a in enumerate(amounts)]
    (tmp_path / "transactions.csv").write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n",
                                               encoding="utf-8")
    finite = [float(a) for a in amounts if a.lower() not in ("nan", "inf", "-infinity")]
    ds = open_dataset(tmp_path)
    bad = [i for i in ds.validation.issues if i.rule == "wrong_type" and i.column == "amount"]
    assert bad and bad[0].count == len(amounts) - len(finite)
    got = ds.sql("SELECT count(*) AS n, sum(amount) AS s FROM transactions")
    assert got["n"][0] == len(finite)
    assert got["s"][0] == pytest.approx(sum(finite))  # a headline total, finite
    ds.close()
    assert runner.invoke(app, ["validate", str(tmp_path)]).exit_code == 1


@pytest.mark.skipif("sources" not in getattr(__import__("workbench.config").config.DatasetConfig,
                                              "__dataclass_fields__", {}),
                    reason="[sources.*] + query tables arrive with the loader branch (issue 10)")
def test_query_table_reads_only_declared_sources(tmp_path: Path) -> None:
    RAW.to_csv(tmp_path / "tx.csv", index=False)
    target = tmp_path / "out.csv"
    base = """
[sources.orders]
source = "tx.csv"
[tables.transactions]
query = \"\"\"{query}\"\"\"
[tables.transactions.columns]
customer_id = "CustomerID"
date = "strptime(InvoiceDate, '%Y年%m月%d日')"
amount = "Quantity * UnitPrice"
"""
    cases = [
        ("SELECT o.*, p.column0 AS leak FROM orders o, read_csv('/etc/passwd', header = false, sep = '|') p",
         "read_csv"),
        ("SELECT * FROM orders WHERE CustomerID NOT IN (SELECT * FROM glob('/etc/*'))", "glob"),
        ("SELECT * FROM '/etc/passwd'", "not a declared source"),
        (f"SELECT * FROM orders; COPY (SELECT 1) TO '{target}'", "other than SELECT"),
    ]
    for query, what in cases:
        (tmp_path / "workbench.toml").write_text(base.format(query=query), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"\[tables\.transactions\]\.query") as info:
            open_dataset(tmp_path)
        assert what in str(info.value) and PASSWD_MARK not in str(info.value)
    assert not target.exists()
    assert PASSWD_MARK not in cache_files_text()
    (tmp_path / "workbench.toml").write_text(base.format(query="SELECT * FROM orders WHERE Quantity > 1"),
                                             encoding="utf-8")
    ds = open_dataset(tmp_path)
    assert ds.sql("SELECT count(*) AS n FROM transactions")["n"][0] == int((RAW["Quantity"] > 1).sum())
