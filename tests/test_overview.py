"""Data-overview functions: engine counts checked against pandas on the source files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import overview
from workbench.engine import dataset_from_frames


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    from workbench.engine import open_dataset
    from workbench.sample import generate_sample

    out = tmp_path_factory.mktemp("overview_sample")
    generate_sample(out, customers=300, seed=5, lang="en", fmt="parquet", end="2026-10")
    ds = open_dataset(out)
    yield out, ds
    ds.close()


def _frames(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}


def test_monthly_volumes_match_pandas(small):
    folder, ds = small
    frames = _frames(folder)
    vol = overview.monthly_volumes(ds)
    assert list(vol.columns) == ["month", *[t for t in overview.VOLUME_SOURCES if t in frames]]
    for table, col in overview.VOLUME_SOURCES.items():
        expected = pd.to_datetime(frames[table][col]).dt.to_period("M").value_counts()
        got = {pd.Timestamp(m).to_period("M"): n for m, n in zip(vol["month"], vol[table], strict=True) if n}
        assert got == expected.to_dict(), table
    # consecutive months, no gaps
    months = pd.PeriodIndex([pd.Timestamp(m).to_period("M") for m in vol["month"]])
    assert (months[1:] - months[:-1]).map(lambda d: d.n).unique().tolist() == [1]


def test_monthly_volumes_window(small):
    _, ds = small
    vol = overview.monthly_volumes(ds, end=dt.date(2026, 6, 30), months=6)
    assert len(vol) == 6
    assert vol["month"].iloc[-1] == dt.date(2026, 6, 1) and vol["month"].iloc[0] == dt.date(2026, 1, 1)


def test_period_counts_and_customers(small):
    folder, ds = small
    frames = _frames(folder)
    counts = overview.period_counts(ds, dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    tx = pd.to_datetime(frames["transactions"]["date"])
    assert counts["transactions"] == int(((tx >= "2026-10-01") & (tx <= "2026-10-31")).sum())
    ids = set(frames["customers"]["customer_id"].astype(str)) | set(frames["transactions"]["customer_id"].astype(str))
    assert overview.customer_count(ds) == len(ids)


def test_missing_profile_matches_pandas(small):
    folder, ds = small
    frames = _frames(folder)
    prof = overview.missing_profile(ds)
    for row in prof.itertuples(index=False):
        src = frames[row.table][row.column]
        missing = int(src.isna().sum() + (src.astype(str).str.strip() == "").sum()) if src.dtype == object \
            else int(src.isna().sum())
        assert row.missing == missing, (row.table, row.column)
        assert row.share == pytest.approx(missing / len(src))
    assert set(prof["table"]) == set(frames)


def test_table_overview_rows(small):
    folder, ds = small
    frames = _frames(folder)
    tab = overview.table_overview(ds).set_index("table")
    for name, frame in frames.items():
        assert tab.loc[name, "rows"] == len(frame)
        if name != "prospects":  # people who are not customers yet: no dates
            assert isinstance(tab.loc[name, "first"], dt.date)


def test_supported_analyses_all_on_full_sample(small):
    _, ds = small
    sup = overview.supported_analyses(ds)
    assert list(sup["analysis"]) == list(overview.ANALYSES)
    assert sup["supported"].all() and not sup["partial"].any()


def test_supported_analyses_explains_what_is_missing(tmp_path):
    complaints = pd.DataFrame({"complaint_id": ["c1", "c2"], "opened_at": ["2026-01-03 10:00", "2026-02-03 11:00"],
                               "category": ["delivery", "billing"]})
    surveys = pd.DataFrame({"date": ["2026-01-05", "2026-02-01"], "satisfaction": [4.0, 2.0], "recommend": [9, 3]})
    tx = pd.DataFrame({"customer_id": ["a", "b"], "date": ["2026-01-05", "2026-01-20"], "amount": [10.0, 20.0]})
    ds = dataset_from_frames({"complaints": complaints, "surveys": surveys, "transactions": tx}, tmp_path,
                             scales={"surveys": {"recommend": (0, 10)}})
    sup = overview.supported_analyses(ds).set_index("analysis")
    assert sup.loc["satisfaction_loyalty", "partial"]  # no customer ids on surveys
    assert sup.loc["satisfaction_loyalty", "reason"] == "overview.reasons.attitude_only"
    assert sup.loc["customer_value", "partial"]  # no margin, no margin_rate
    assert not sup.loc["clv", "supported"]  # one month of history
    assert sup.loc["clv", "reason"] == "overview.reasons.short_history"
    assert sup.loc["complaints", "supported"] and not sup.loc["complaints", "partial"]
    assert not sup.loc["loyalty_programme", "supported"]
    zh = overview.supported_analyses(ds, "zh").set_index("analysis")
    assert zh.loc["loyalty_programme", "reason"] == "没有会员表。"
    ds.close()


def test_only_complaints(tmp_path):
    complaints = pd.DataFrame({"complaint_id": ["c1"], "opened_at": ["2026-01-03 10:00"], "category": ["x"]})
    ds = dataset_from_frames({"complaints": complaints}, tmp_path)
    sup = overview.supported_analyses(ds).set_index("analysis")
    assert sup.loc["complaints", "partial"]
    assert not sup.loc[["satisfaction_loyalty", "customer_value", "clv", "loyalty_programme"], "supported"].any()
    vol = overview.monthly_volumes(ds)
    assert list(vol.columns) == ["month", "complaints"] and vol["complaints"].tolist() == [1]
    ds.close()


def test_figures_are_translated(small):
    _, ds = small
    vol = overview.monthly_volumes(ds, months=12)
    fig = overview.volumes_figure(vol, "zh")
    assert fig.layout.title.text == "各数据表月度数据量"
    assert "交易笔数" in [a.text for a in fig.layout.annotations]
    assert fig.data[0].x[-1] == "2026年10月"
    prof = overview.missing_profile(ds)
    mfig = overview.missing_figure(prof, "zh")
    assert mfig.layout.xaxis.title.text == "缺失比例"
    assert all("·" in y for y in mfig.data[0].y)
    assert overview.column_label("left_at", "zh") == "退会日期"
    assert overview.column_label("unknown_col", "zh") == "unknown_col"


# ---------------------------------------------------------------- findings in words (real-export findings)
def test_coverage_without_customer_ids_says_what_the_rows_are(tmp_path):
    """Airline / CFPB shape: no table carries customer ids -> never "0 customers"; 1 table, not 1 tables."""
    surveys = pd.DataFrame({"date": ["2024-03-02", "2024-01-15", "2024-02-10"], "satisfaction": [4.0, 2.0, 5.0],
                            "recommend": [9, 3, 10]})
    ds = dataset_from_frames({"surveys": surveys}, tmp_path / "s", scales={"surveys": {"recommend": (0, 10)}})
    dates = pd.to_datetime(surveys["date"])
    en = overview.coverage_text(ds, "en")
    assert en == (f"The data holds {len(surveys)} survey responses in 1 table, with no customer ids: "
                  f"survey responses from {dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}.")
    zh = overview.coverage_text(ds, "zh")
    assert zh == f"数据包含1张表、{len(surveys)}份调查回复，没有客户编号：调查回复日期从2024年1月15日至2024年3月2日。"
    assert overview.customer_count(ds) == 0
    ds.close()
    # one complaint (singular) plus three undated-wave survey responses, two tables, still no ids
    complaints = pd.DataFrame({"complaint_id": ["c1"], "opened_at": ["2024-06-03 10:00"], "category": ["x"]})
    ds = dataset_from_frames({"surveys": surveys.drop(columns="date"), "complaints": complaints}, tmp_path / "c",
                             scales={"surveys": {"recommend": (0, 10)}},
                             table_options={"surveys": {"wave_date": "2024-06-30"}})
    en = overview.coverage_text(ds, "en")
    assert en.startswith("The data holds 3 survey responses and 1 complaint in 2 tables, with no customer ids: ")
    # the undated file's date comes from wave_date: not presented as observed response dates
    assert "survey responses undated, one wave dated 2024-06-30 in the configuration" in en
    assert "complaints all opened on 2024-06-03" in en
    assert "0 customers" not in en
    ds.close()


def test_coverage_counts_customers_with_singular_table(tmp_path):
    tx = pd.DataFrame({"customer_id": ["a", "b", "a", "c"], "date": ["2026-01-05", "2026-01-20", "2026-02-01", "2026-03-09"],
                       "amount": [10.0, 20.0, 5.0, 7.0]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path / "t")
    first = tx.groupby("customer_id")["date"].min()  # the derived customers table: signup = first purchase
    assert overview.coverage_text(ds, "en") == (
        f"The data covers {tx['customer_id'].nunique()} customers in 2 tables: customers' first purchases from "
        f"{first.min()} to {first.max()}; transactions from {tx['date'].min()} to {tx['date'].max()}.")
    ds.close()
    one = pd.DataFrame({"customer_id": ["a"], "signup_date": ["2026-01-05"]})
    ds = dataset_from_frames({"customers": one}, tmp_path / "c")
    assert overview.coverage_text(ds, "en") == "The data covers 1 customer in 1 table: customers all signed up on 2026-01-05."
    assert overview.coverage_text(ds, "zh") == "数据涵盖1张表、1位客户：客户均于2026年1月5日注册。"
    ds.close()


def test_coverage_dates_say_what_they_measure(tmp_path):
    """Olist shape: customers' signup dates run past the last transaction -> two ranges, each named."""
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"], "signup_date": ["2020-01-01", "2020-06-30", "2021-05-17"]})
    tx = pd.DataFrame({"customer_id": ["a", "b", "a"], "date": ["2021-01-05", "2021-02-11", "2021-03-20"],
                       "amount": [10.0, 20.0, 5.0]})
    ds = dataset_from_frames({"customers": customers, "transactions": tx}, tmp_path)
    su, td = pd.to_datetime(customers["signup_date"]), pd.to_datetime(tx["date"])
    n = len(set(customers["customer_id"]) | set(tx["customer_id"]))
    en = overview.coverage_text(ds, "en")
    assert en == (f"The data covers {n} customers in 2 tables: customers signed up between {su.min():%Y-%m-%d} and "
                  f"{su.max():%Y-%m-%d}; transactions from {td.min():%Y-%m-%d} to {td.max():%Y-%m-%d}.")
    # never one range over signup and transaction dates together
    assert f"from {su.min():%Y-%m-%d} to {su.max():%Y-%m-%d}" not in en
    assert "客户注册日期在2020年1月1日至2021年5月17日之间" in overview.coverage_text(ds, "zh")
    ds.close()


def test_filter_and_validation_reported_apart_per_table(tmp_path):
    """Olist shape: a configured filter is not a validation failure; info notes are not exclusion rules."""
    tx = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e", "f", "g", "h"],
                       "date": ["2026-01-05", "2026-01-06", "not a date", "2026-01-08", "2026-01-09", "2026-02-01",
                                "2026-02-02", "2026-02-03"],
                       "amount": [10.0, 20.0, 5.0, 7.0, 1.0, 2.0, 3.0, 4.0],
                       "status": ["ok", "canceled", "ok", "ok", "canceled", "ok", "ok", "ok"]})
    surveys = pd.DataFrame({"satisfaction": [4.0, 2.0], "recommend": [9, None]})
    ds = dataset_from_frames(
        {"transactions": tx, "surveys": surveys}, tmp_path, scales={"surveys": {"recommend": (0, 10)}},
        table_options={"transactions": {"filter": "status <> 'canceled'"},
                       "surveys": {"wave_date": "2024-06-30", "columns": {"recommend": {"source": "recommend",
                                                                                      "fill": 0}}}})
    kept = tx[tx["status"] != "canceled"]
    n_filtered = len(tx) - len(kept)
    n_bad = int(pd.to_datetime(kept["date"], errors="coerce").isna().sum())
    removed = overview.removed_rows(ds).set_index("table")
    assert removed.loc["transactions", "filtered"] == n_filtered == 2
    assert removed.loc["transactions", "excluded"] == n_bad == 1
    assert removed.loc["transactions", "rules"] == ["unparseable_date"]
    # the wave_date (derived_column) and fill (filled) notes exclude nothing
    rules = set(ds.validation.exclusions().query("table == 'surveys'")["rule"])
    assert {"derived_column", "filled"} <= rules
    assert removed.loc["surveys", "excluded"] == 0 and removed.loc["surveys", "rules"] == []
    tab = overview.table_overview(ds).set_index("table")
    assert tab.loc["transactions", ["filtered", "excluded"]].tolist() == [n_filtered, n_bad]
    en = overview.removal_text(ds, "en")
    assert en == (f"Transactions: {n_filtered} of {len(tx)} rows ({n_filtered / len(tx):.1%}) removed by the configured "
                  f"filter (status <> 'canceled'). Transactions: validation excluded {n_bad} of the {len(kept)} rows "
                  f"checked ({n_bad / len(kept):.1%}; Unreadable date).")
    assert "of all rows" not in en
    zh = overview.removal_text(ds, "zh")
    assert zh.startswith("交易：配置的筛选条件（status <> 'canceled'）移除了8行中的2行（25.0%）。")
    assert "日期无法识别" in zh
    ds.close()


def test_filter_only_says_validation_excluded_nothing(tmp_path):
    tx = pd.DataFrame({"customer_id": ["a", "b", "c"], "date": ["2026-01-05", "2026-01-06", "2026-01-07"],
                       "amount": [10.0, 20.0, 5.0], "status": ["ok", "canceled", "ok"]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path,
                             table_options={"transactions": {"filter": "status <> 'canceled'"}})
    assert overview.removal_text(ds, "en") == ("Transactions: 1 of 3 rows (33.3%) removed by the configured filter "
                                               "(status <> 'canceled'). Validation excluded no rows.")
    ds.close()


# ----------------------------------------------------------------- result objects (one per notebook section)
def _oct():
    from workbench.periods import parse_period

    return parse_period("2026-10")


def test_tables_result_metrics_and_customers_kpi(small):
    folder, ds = small
    frames = _frames(folder)
    r = overview.tables(ds, _oct())
    m = r.metrics()
    assert m["rows"] == {tb: len(frames[tb]) for tb in m["tables"]}
    ids = set(frames["customers"]["customer_id"].astype(str)) | set(frames["transactions"]["customer_id"].astype(str))
    (kpi,) = r.kpis("en")
    assert kpi.key == "customers" and kpi.value == len(ids) and kpi.n == len(ids) and kpi.unit == "count"
    tx = pd.to_datetime(frames["transactions"]["date"])
    assert r.in_period["transactions"] == int(((tx >= "2026-10-01") & (tx < "2026-11-01")).sum())
    (f,) = r.findings("en")
    assert f.key == "customers" and f.headline and f"{len(ids):,} customers" in f.text
    (tab,) = r.tables("zh")
    assert list(tab.frame.columns)[0] == "数据表" and "客户" in set(tab.frame["数据表"])
    assert set(m) == {"tables", "rows", "customers", "customers_per_table", "date_ranges"}


def test_volumes_result_transactions_kpi_with_previous_period(small):
    folder, ds = small
    tx = pd.to_datetime(_frames(folder)["transactions"]["date"])
    now = int(((tx >= "2026-10-01") & (tx < "2026-11-01")).sum())
    before = int(((tx >= "2026-09-01") & (tx < "2026-10-01")).sum())
    r = overview.volumes(ds, _oct(), months=12)
    (kpi,) = r.kpis("en")
    assert (kpi.key, kpi.value, kpi.previous, kpi.n) == ("transactions", now, before, now)
    assert not r.partial and "period_transactions_per_day" not in r.metrics()
    rel = (now - before) / before
    text = next(f.text for f in r.findings("en") if f.key == "period_transactions")
    assert text == (f"October 2026: {now:,} transactions ({'up' if rel > 0 else 'down'} {abs(rel):.1%} on "
                    "September 2026).")
    assert len(r.metrics()["monthly_volumes"]["transactions"]) == 12 and len(r.figures("en")) == 1


def test_volumes_partial_period_compared_per_day(tmp_path):
    """The data ends on 10 October: the period's transactions are compared per covered day, and the KPI
    shows no change against a full previous month."""
    days = pd.date_range("2026-08-01", "2026-10-10", freq="D")
    rng = np.random.default_rng(3)
    n = rng.integers(1, 6, len(days))
    tx = pd.DataFrame({"customer_id": [f"c{i % 40}" for i in range(int(n.sum()))],
                       "date": np.repeat(days, n).strftime("%Y-%m-%d"), "amount": 10.0})
    ds = dataset_from_frames({"transactions": tx}, tmp_path)
    r = overview.volumes(ds, _oct())
    d = pd.to_datetime(tx["date"])
    now, before = int((d >= "2026-10-01").sum()), int(((d >= "2026-09-01") & (d < "2026-10-01")).sum())
    assert r.partial and r.covered_days == 10 and r.previous_covered_days == 30
    per_day = r.metrics()["period_transactions_per_day"]
    assert per_day["now"] == pytest.approx(now / 10) and per_day["previous"] == pytest.approx(before / 30)
    (kpi,) = r.kpis("en")
    assert kpi.value == now and kpi.previous is None and "10 of 31 days" in kpi.how
    text = next(f.text for f in r.findings("en") if f.key == "period_transactions")
    assert f"{now / 10:.1f} a day" in text and f"{before / 30:.1f} a day" in text
    ds.close()


def test_excluded_and_supported_results(tmp_path):
    tx = pd.DataFrame({"customer_id": ["a", "b", "c"], "date": ["2026-01-05", "bad", "2026-01-07"],
                       "amount": [10.0, 20.0, 5.0]})
    ds = dataset_from_frames({"transactions": tx}, tmp_path)
    ex = overview.excluded(ds)
    m = ex.metrics()
    assert m["excluded_rows"] == 1 and m["validation_excluded_rows"]["transactions"] == 1
    (f,) = ex.findings("en")
    assert f.headline and f.action and "excluded 1 of the 3 rows" in f.text
    assert all(tab.appendix for tab in ex.tables("en"))
    sup = overview.supported(ds)
    (f,) = sup.findings("en")
    # customer value is partial (revenue only), CLV has one month of history, surveys, complaints, members and
    # categories are absent; the lifecycle (purchase history) and behaviour-only segments can run
    full = set(sup.table.loc[sup.table["supported"] & ~sup.table["partial"], "analysis"])
    assert full == {"lifecycle", "segments"}
    assert f.key == "supported_analyses" and f.value == 2 and f.action
    assert f.text.startswith("The data supports 2 of 8 analyses fully; not supported: ")
    assert sup.metrics()["supported_analyses"] is sup.table
    zh = sup.tables("zh")[0].frame
    assert list(zh.columns) == ["分析", "是否支持", "原因"] and not zh.to_string().isascii()
    ds.close()


def test_sections_without_data_say_so_instead_of_an_empty_chart(tmp_path):
    cust = pd.DataFrame({"customer_id": ["a", "b"], "signup_date": ["2026-01-02", "2026-01-03"], "segment": ["x", None]})
    ds = dataset_from_frames({"customers": cust}, tmp_path)
    vol = overview.volumes(ds, _oct())
    assert vol.figures("en") == [] and vol.notes("en") and vol.kpis("en") == []
    miss = overview.missing(ds)
    assert len(miss.figures("en")) == 1 and miss.findings("en")[0].value == pytest.approx(0.5)
    ds.close()
