"""Coverage of the report period (issue 11 rule 2): partial periods, no data → exit 3,
reports and alerts agree, publication lag. Day counts and tests are recomputed here with
plain datetime / pandas / scipy, never by calling the workbench for the expected value."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench import coverage as C
from workbench.cli import app
from workbench.engine import dataset_from_frames, open_dataset
from workbench.periods import parse_period

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures") / "notebooks"
FIRST = dt.date(2025, 1, 6)
DATA_END = dt.date(2026, 10, 19)  # the export stops mid-month
runner = CliRunner()


def frames(end: dt.date = DATA_END, seed: int = 3, complaints_end: dt.date | None = None,
           complaint_rate: float = 0.08) -> dict[str, pd.DataFrame]:
    """Daily orders (Poisson 40) and complaints (rate × orders) from FIRST to ``end``."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(FIRST, end, freq="D")
    orders = rng.poisson(40, len(days))
    idx = np.repeat(np.arange(len(days)), orders)
    tx = pd.DataFrame({"customer_id": [f"C{i:04d}" for i in rng.integers(0, 800, idx.size)],
                       "date": days[idx].date, "amount": rng.gamma(2.0, 40.0, idx.size).round(2),
                       "order_id": [f"O{i}" for i in range(idx.size)]})
    n = rng.poisson(orders * complaint_rate)
    cidx = np.repeat(np.arange(len(days)), n)
    comp = pd.DataFrame({"opened_at": days[cidx] + pd.Timedelta(hours=10),
                         "category": rng.choice(["delivery", "billing", "quality"], cidx.size),
                         "complaint_id": [f"K{i}" for i in range(cidx.size)],
                         "customer_id": [f"C{i:04d}" for i in rng.integers(0, 800, cidx.size)]})
    if complaints_end is not None:
        comp = comp[comp["opened_at"].dt.date <= complaints_end]
    return {"transactions": tx, "complaints": comp}


@pytest.fixture(scope="module")
def midmonth(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("midmonth")
    dataset_from_frames(frames(), folder).close()
    return folder


# ------------------------------------------------------------------ pure helpers
def test_days_covered_and_per_day():
    march = parse_period("2026-03")
    assert C.days_covered(march, dt.date(2026, 3, 19)) == 19
    assert C.days_covered(march, dt.date(2026, 4, 2)) == 31
    assert C.days_covered(march, dt.date(2026, 2, 27)) == 0
    assert C.days_covered(march, dt.date(2026, 3, 31), dt.date(2026, 3, 10)) == 22
    assert C.per_day(190, 19) == 10.0 and C.per_day(5, 0) is None
    # 190 in 19 days vs 280 in 28 days: the same daily rate
    assert C.change_per_day(190, 19, 280, 28) == pytest.approx(0.0)


def test_poisson_fall_matches_an_independent_binomial_sum():
    recent, trailing = 30, 560  # 14 days vs 56 days: 2.1 vs 10 a day
    ratio, p = C.poisson_fall(recent, trailing)
    n, q = recent + trailing, 14 / 70
    expected = sum(math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(recent + 1))
    assert ratio == pytest.approx((30 / 14) / (560 / 56))
    assert p == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------ the coverage of one dataset
def test_mid_month_end_is_partial_with_the_right_day_count(midmonth):
    raw = pd.read_parquet(midmonth / "transactions.parquet")
    last = pd.to_datetime(raw["date"]).max().date()
    oct_ = parse_period("2026-10")
    expected_days = (last - dt.date(2026, 10, 1)).days + 1  # independently: 19
    with open_dataset(midmonth) as ds:
        cov = C.period_coverage(ds, oct_)
        assert cov.status == "partial"
        assert cov.days == 31 and cov.days_covered == expected_days == 19
        assert cov.data_end == last and cov.analysis_end == last
        assert cov.table("transactions").rows_in_period == int((pd.to_datetime(raw["date"]) >= "2026-10-01").sum())
        en, zh = cov.banner("en"), cov.banner("zh")
        assert en[0] == "Data ends 19 October 2026: October 2026 covers 19 of 31 days."
        assert zh[0] == "数据截至2026年10月19日：2026年10月仅覆盖31天中的19天。"
        assert C.period_coverage(ds, parse_period("2026-09")).status == "full"
        assert C.period_coverage(ds, parse_period("2026-09")).banner("en") == []
        assert C.period_coverage(ds, parse_period("2026-11")).status == "none"
        assert C.period_coverage(ds, parse_period("2024-12")).status == "none"
        q = C.period_coverage(ds, parse_period("2026Q4"))
        assert (q.status, q.days_covered, q.days) == ("partial", 19, 92)


def test_a_table_that_stops_early_gets_its_own_line_but_quiet_days_do_not(tmp_path):
    # dense complaints (≈3 a day) stopping on 10 October: a real end for that table
    f = frames(end=dt.date(2026, 10, 31), complaints_end=dt.date(2026, 10, 10))
    with dataset_from_frames(f, tmp_path / "early") as ds:
        cov = C.period_coverage(ds, parse_period("2026-10"))
        assert cov.status == "full"
        assert cov.table("complaints").days_covered == 10
        assert cov.banner("en") == ["Complaints data ends 10 October 2026: 10 of 31 days."]
    # sparse complaints (≈0.04 a day): a week without one is plausible, not a data end
    f = frames(end=dt.date(2026, 10, 31), complaint_rate=0.001)
    last = f["complaints"]["opened_at"].max().date()
    rate = (f["complaints"]["opened_at"].dt.date > last - dt.timedelta(days=56)).sum() / 56
    gap = (dt.date(2026, 10, 31) - last).days
    with dataset_from_frames(f, tmp_path / "sparse") as ds:
        cov = C.period_coverage(ds, parse_period("2026-10"))
        if last >= dt.date(2026, 10, 1) and math.exp(-rate * gap) >= 0.001:
            assert cov.table("complaints").days_covered == 31
        assert cov.status == "full"


def test_a_missing_month_inside_the_data_is_not_covered(tmp_path):
    f = frames(end=dt.date(2026, 10, 31))
    tx = f["transactions"]
    month = pd.to_datetime(tx["date"]).dt.strftime("%Y-%m")
    f["transactions"] = tx[month != "2026-06"]
    f["complaints"] = f["complaints"][f["complaints"]["opened_at"].dt.strftime("%Y-%m") != "2026-06"]
    with dataset_from_frames(f, tmp_path / "hole") as ds:
        assert C.period_coverage(ds, parse_period("2026-06")).status == "none"
        assert C.period_coverage(ds, parse_period("2026-07")).status == "full"


# ------------------------------------------------------------------ publication lag
def _thinned_copy(src: Path, dst: Path, table: str, column: str, keep: float, seed: int = 1) -> Path:
    shutil.copytree(src, dst)
    frame = pd.read_parquet(dst / f"{table}.parquet")
    when = pd.to_datetime(frame[column])
    recent = when.dt.date > when.max().date() - dt.timedelta(days=14)
    drop = recent & (np.random.default_rng(seed).random(len(frame)) > keep)
    frame[~drop].to_parquet(dst / f"{table}.parquet", index=False)
    return dst


def test_lag_flag_fires_on_thinned_last_two_weeks_and_not_on_the_sample(sample_dir, tmp_path):
    period = parse_period("2026-10")
    with open_dataset(sample_dir) as ds:
        cov = C.period_coverage(ds, period)
        assert cov.status == "full" and cov.lag and not cov.lag_flagged
        assert not any("incomplete" in line for line in cov.banner("en"))
    thinned = _thinned_copy(sample_dir, tmp_path / "thin", "transactions", "date", keep=0.2)
    raw = pd.read_parquet(thinned / "transactions.parquet")
    d = pd.to_datetime(raw["date"]).dt.date
    last = d.max()
    recent = int((d > last - dt.timedelta(days=14)).sum())
    trailing = int(((d <= last - dt.timedelta(days=14)) & (d > last - dt.timedelta(days=70))).sum())
    from scipy.stats import poisson_means_test

    independent_p = poisson_means_test(recent, 14, trailing, 56, alternative="less").pvalue
    with open_dataset(thinned) as ds:
        cov = C.period_coverage(ds, period)
        flagged = {c.table: c for c in cov.lag_flagged}
        assert set(flagged) == {"transactions"}
        lag = flagged["transactions"]
        assert lag.ratio == pytest.approx((recent / 14) / (trailing / 56))
        assert 0.1 < lag.ratio < 0.3 and independent_p < 0.001
        assert lag.recent_end == last
        text = cov.banner("en")
        assert any(line.startswith("Data may be incomplete: Transactions") for line in text)
        assert any(line.startswith("数据可能不完整：交易") for line in cov.banner("zh"))
        # a period well before the data end is not affected by the lag at the end
        assert not C.period_coverage(ds, parse_period("2026-06")).lag_flagged


def test_a_month_of_stray_records_after_the_real_end_is_flagged(tmp_path):
    # like the Olist export: orders stop on 28 August, then a trickle (3%) until 19 October
    f = frames()
    d = pd.to_datetime(f["transactions"]["date"])
    keep = (d <= "2026-08-28") | (np.random.default_rng(5).random(len(d)) < 0.03)
    f["transactions"] = f["transactions"][keep]
    f.pop("complaints")
    sept = d[keep]
    now = int(((sept >= "2026-09-17") & (sept <= "2026-09-30")).sum())
    before = int(((sept >= "2026-07-23") & (sept <= "2026-09-16")).sum())
    with dataset_from_frames(f, tmp_path / "trickle") as ds:
        cov = C.period_coverage(ds, parse_period("2026-09"))
        assert cov.status == "full"
        (lag,) = cov.lag_flagged
        assert (lag.recent_start, lag.recent_end) == (dt.date(2026, 9, 17), dt.date(2026, 9, 30))
        assert lag.ratio == pytest.approx((now / 14) / (before / 56))
        assert cov.banner("en")[0].startswith("Data may be incomplete: Transactions from 17 September 2026")
        assert not C.period_coverage(ds, parse_period("2026-07")).lag_flagged


# ------------------------------------------------------------------ the report pack
@pytest.fixture(scope="module")
def nb_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cov_notebooks")
    shutil.copy(ROOT / "notebooks" / "00_data_overview.ipynb", folder)
    shutil.copy(FIXTURES / "05_minimal.ipynb", folder)
    return folder


@pytest.fixture(scope="module")
def partial_pack(midmonth, nb_dir, tmp_path_factory):
    from workbench.reports import run_pack

    out = tmp_path_factory.mktemp("cov_reports")
    return run_pack(midmonth, "2026-10", lang="both", out=out, jobs=2, notebooks_dir=nb_dir, progress=False)


def test_partial_period_banner_on_every_page_and_the_index(partial_pack):
    assert partial_pack.exit_code == 0, partial_pack.results
    out = partial_pack.out
    for name in ("00_data_overview", "05_minimal"):
        en = (out / "2026-10" / "en" / f"{name}.html").read_text(encoding="utf-8")
        zh = (out / "2026-10" / "zh" / f"{name}.html").read_text(encoding="utf-8")
        assert 'class="wb-coverage"' in en and "October 2026 covers 19 of 31 days" in en
        assert "仅覆盖31天中的19天" in zh and "Partial data" not in zh
    index = (out / "index.html").read_text(encoding="utf-8")  # one summary per language
    assert "Data ends 19 October 2026: October 2026 covers 19 of 31 days." in index
    assert "数据截至2026年10月19日：2026年10月仅覆盖31天中的19天。" in (out / "index.zh.html").read_text(encoding="utf-8")
    assert "partial data" in index
    run = json.loads((out / "2026-10" / "metrics.json").read_text(encoding="utf-8"))["run"]
    assert run["coverage"]["status"] == "partial" and run["coverage"]["days_covered"] == 19


def test_index_shows_changes_only_between_fully_covered_periods():
    from workbench.reports import equally_covered, render_index

    def period(label, start, end, cov, value):
        entry = {"title": {"en": "Demo", "zh": "演示"}, "status": "ok", "langs": {},
                 "findings": {"en": [{"key": "n", "text": f"n = {value}", "value": value, "headline": True}]}}
        return {"run": {"period": label, "period_start": start, "period_end": end, "previous_period": "2026-09",
                        "period_display": {"en": label}, "coverage": cov}, "notebooks": {"05_demo": entry}}

    full = {"status": "full", "incomplete": False}
    partial = {"status": "partial", "incomplete": False, "period_start": "2026-10-01", "period_end": "2026-10-31",
               "period_kind": "month", "days": 31, "days_covered": 19, "covered_from": "2026-10-01",
               "covered_to": "2026-10-19", "tables": {}, "lag": []}
    sep = period("2026-09", "2026-09-01", "2026-09-30", full, 300)
    assert equally_covered({"coverage": full}, {"coverage": full})
    assert equally_covered({}, {})  # metrics.json written before coverage existed
    assert not equally_covered({"coverage": partial}, {"coverage": full})
    assert not equally_covered({"coverage": {"status": "full", "incomplete": True}}, {"coverage": full})
    page = render_index([period("2026-10", "2026-10-01", "2026-10-31", full, 310), sep])
    assert "▲" in page
    page = render_index([period("2026-10", "2026-10-01", "2026-10-31", partial, 190), sep])
    assert "▼" not in page and "▲" not in page and "covers 19 of 31 days" in page


def test_overview_compares_per_day_of_data(partial_pack, midmonth):
    raw = pd.to_datetime(pd.read_parquet(midmonth / "transactions.parquet")["date"])
    now = int(((raw >= "2026-10-01") & (raw <= "2026-10-31")).sum())
    before = int(((raw >= "2026-09-01") & (raw <= "2026-09-30")).sum())
    metrics = json.loads((partial_pack.out / "2026-10" / "metrics.json").read_text(encoding="utf-8"))
    m = metrics["notebooks"]["00_data_overview"]["metrics"]["period_transactions_per_day"]
    assert m["now"] == pytest.approx(now / 19) and m["previous"] == pytest.approx(before / 30)
    assert (m["days"], m["previous_days"]) == (19, 30)
    text = next(f["text"] for f in metrics["notebooks"]["00_data_overview"]["findings"]["en"]
                if f["key"] == "period_transactions")
    assert "in 19 of 31 days with data" in text and "a day" in text


def test_period_after_the_data_exits_3_and_publishes_nothing(midmonth, nb_dir, tmp_path):
    from workbench.reports import run_pack

    out = tmp_path / "reports"
    with pytest.raises(C.NoDataInPeriod):
        run_pack(midmonth, "2026-11", lang="en", out=out, notebooks_dir=nb_dir, progress=False)
    assert not (out / "index.html").exists() and not (out / "2026-11").exists()
    res = runner.invoke(app, ["reports", "run", "--data", str(midmonth), "--period", "2026-11", "--lang", "en",
                              "--out", str(out), "--notebooks", str(nb_dir)])
    assert res.exit_code == 3, res.output
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------ alerts agree with the reports
def test_alerts_and_reports_agree_on_the_coverage(partial_pack, midmonth, tmp_path):
    report_cov = json.loads((partial_pack.out / "2026-10" / "metrics.json").read_text(encoding="utf-8"))["run"]["coverage"]
    out = tmp_path / "alerts.json"
    res = runner.invoke(app, ["alerts", "--data", str(midmonth), "--since", "2026-10-01", "--json", str(out)])
    assert res.exit_code in (0, 1), res.output
    payload = json.loads(out.read_text(encoding="utf-8"))
    a, r = payload["coverage"]["tables"]["complaints"], report_cov["tables"]["complaints"]
    for key in ("first", "last", "covered_from", "covered_to", "days_covered"):
        assert a[key] == r[key], key
    raw = pd.read_parquet(midmonth / "complaints.parquet")
    assert a["last"] == str(raw["opened_at"].max().date())
    assert payload["data_end"] == a["last"]
    assert "Complaint data: Data ends 19 October 2026" in res.output


def test_alerts_exit_3_when_the_window_has_no_complaints(tmp_path):
    # complaints stop on 31 August while orders go on: a check since 1 October has nothing to judge
    f = frames(end=dt.date(2026, 10, 19), complaints_end=dt.date(2026, 8, 31))
    dataset_from_frames(f, tmp_path / "stale").close()
    out = tmp_path / "a.json"
    res = runner.invoke(app, ["alerts", "--data", str(tmp_path / "stale"), "--since", "2026-10-01", "--json", str(out)])
    assert res.exit_code == 3, res.output
    assert "No complaint data from 1 October 2026" in res.output
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["no_data"] is True and payload["coverage"]["status"] == "none"
    # the same window as a report period: also no data for the complaints
    with open_dataset(tmp_path / "stale") as ds:
        cov = C.period_coverage(ds, parse_period("2026-10-01:2026-10-19"), tables=("complaints",))
        assert cov.status == "none"


# ------------------------------------------------------------------ notebook plumbing
def test_analysis_date_follows_the_data_end_unless_given(midmonth, tmp_path):
    from workbench.notebook import parse_analysis_date, start

    nb = start(str(midmonth), "2026-10", "en", str(tmp_path / "m.json"))
    assert nb.analysis_date == DATA_END and nb.days_covered == 19
    assert nb.per_day(190) == pytest.approx(10.0)
    nb = start(str(midmonth), "2026-10", "en", str(tmp_path / "m.json"), analysis_date="2026-06-30")
    assert nb.analysis_date == dt.date(2026, 6, 30) and nb.period.end == dt.date(2026, 10, 31)
    nb = start(str(midmonth), "2026-09", "en", str(tmp_path / "m.json"))
    assert nb.analysis_date == dt.date(2026, 9, 30)
    with pytest.raises(ValueError, match="analysis_date"):
        parse_analysis_date("30/06/2026")


def test_bad_analysis_date_is_refused_before_anything_runs(midmonth, tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / "02_customer_pyramid.ipynb", folder)
    res = runner.invoke(app, ["reports", "run", "--data", str(midmonth), "--period", "2026-10", "--lang", "en",
                              "--out", str(tmp_path / "r"), "--notebooks", str(folder),
                              "--param", "analysis_date=30/06/2026"])
    assert res.exit_code == 2 and "analysis_date" in res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_pyramid_notebook_uses_the_last_data_day_and_keeps_clv(midmonth, tmp_path):
    """Issue 10 item 9: a data end mid-month moves the value window's end, it does not drop CLV."""
    from workbench.reports import run_pack

    folder = tmp_path / "nbs"
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / "02_customer_pyramid.ipynb", folder)
    res = run_pack(midmonth, "2026-10", lang="en", out=tmp_path / "r", jobs=1, notebooks_dir=folder, progress=False)
    assert res.exit_code == 0, res.results
    metrics = json.loads((tmp_path / "r" / "2026-10" / "metrics.json").read_text(encoding="utf-8"))
    m = metrics["notebooks"]["02_customer_pyramid"]["metrics"]
    last = pd.to_datetime(pd.read_parquet(midmonth / "transactions.parquet")["date"]).max().date()
    assert m["window"]["end"] == last.isoformat() == "2026-10-19"
    assert m["coverage"]["analysis_date"] == "2026-10-19"
    # the model is fitted up to the last data day (not dropped for the partial month); whether it is
    # identified is the data's business — this small synthetic log is not, and then no CLV is printed
    assert m["clv_model"]["fit_end"] == "2026-10-19" and m["clv_model"]["n"] > 0
    assert ("clv" in m) == m["clv_model"]["identified"]
