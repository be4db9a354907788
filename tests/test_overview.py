"""Data-overview functions: engine counts checked against pandas on the source files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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
