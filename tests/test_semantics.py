"""Table semantics in workbench.toml (issue 10 items 5-7) and the realdata examples.

Survey waves (``wave``, ``wave_date``), survey and customer segments (``segments``), what ``loyal``
means (``loyal_kind``), churn as data (``churned_at``, ``churned`` + ``churn_as_of``,
``tenure_months``, ``complaint_count``) and complaint closing (``closed_statuses``, ``timely``,
``outcome``). Every expected figure is computed a second way with plain pandas / datetime.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from workbench.config import ConfigError, load_config
from workbench.engine import DataError, dataset_from_frames, open_dataset

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
REALDATA_REL = "../shared/realdata"  # from the repo root, as the examples reference it

SURVEY = pd.DataFrame({
    "response_id": ["R1", "R2", "R3", "R4", "R5"],
    "satisfaction": [4, 5, 2, 3, 5],
    "loyal": [1, 1, 0, 0, 1],
    "Class": ["Business", "Eco", "Eco", "Business", "Eco Plus"],
    "Type of Travel": ["Business travel", "Personal Travel", "Personal Travel", "Business travel",
                       "Business travel"],
    "Food and drink": [4, 3, 2, 5, 4],
})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def issues(ds, rule: str) -> list:
    return [i for i in ds.validation.issues if i.rule == rule]


# ------------------------------------------------------------------ surveys
def test_wave_date_dates_an_undated_survey_as_one_wave(tmp_path: Path) -> None:
    ds = dataset_from_frames({"surveys": SURVEY}, tmp_path, table_options={"surveys": {"wave_date": "2024-06-30"}})
    got = ds.table("surveys").to_pandas()
    assert len(got) == len(SURVEY)
    assert set(got["date"]) == {pd.Timestamp("2024-06-30")}
    assert ds.survey_waves() == 1
    [note] = issues(ds, "derived_column")
    assert (note.table, note.column, note.count, note.severity) == ("surveys", "date", 5, "info")
    assert "wave_date" in note.message and "2024-06-30" in note.message
    assert ds.validation.ok


def test_without_wave_date_an_undated_survey_is_skipped(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        dataset_from_frames({"surveys": SURVEY}, tmp_path)
    [issue] = [i for i in err.value.report.issues if i.rule == "missing_column"]
    assert issue.column == "date" and err.value.report.tables["surveys"].skipped
    assert "[tables.surveys].wave_date" in issue.message


def test_wave_date_and_a_mapped_date_conflict(tmp_path: Path) -> None:
    write(tmp_path / "s.csv", "date,satisfaction,loyal\n2024-01-01,4,1\n")
    toml = write(tmp_path / "workbench.toml", '[tables.surveys]\nsource = "s.csv"\nwave_date = "2024-06-30"\n'
                 '[tables.surveys.columns]\ndate = "date"\n')
    with pytest.raises(ConfigError, match=r"\[tables.surveys\].wave_date.*date"):
        load_config(toml)
    # the same when the date column is found by its name rather than mapped
    write(tmp_path / "workbench.toml", '[tables.surveys]\nsource = "s.csv"\nwave_date = "2024-06-30"\n')
    with pytest.raises(ConfigError, match=r"\[tables.surveys\].wave_date.*date column"):
        open_dataset(tmp_path)


@pytest.mark.parametrize("value", ['"30/06/2024"', '"2024-13-01"', "20240630"])
def test_wave_date_must_be_an_iso_date(tmp_path: Path, value: str) -> None:
    write(tmp_path / "s.csv", "satisfaction,loyal\n4,1\n")
    toml = write(tmp_path / "workbench.toml", f'[tables.surveys]\nsource = "s.csv"\nwave_date = {value}\n')
    with pytest.raises(ConfigError, match=r"workbench.toml: \[tables.surveys\].wave_date must be a date"):
        load_config(toml)


def test_wave_date_as_a_toml_date(tmp_path: Path) -> None:
    write(tmp_path / "s.csv", "satisfaction,loyal\n4,1\n")
    toml = write(tmp_path / "workbench.toml", '[tables.surveys]\nsource = "s.csv"\nwave_date = 2024-06-30\n')
    assert load_config(toml).tables["surveys"].wave_date == dt.date(2024, 6, 30)


def test_survey_waves_counts_wave_labels_else_dates(tmp_path: Path) -> None:
    frame = SURVEY.assign(date=["2024-01-03", "2024-01-09", "2024-02-11", "2024-02-11", "2024-03-01"],
                          wave=["W1", "W1", "W2", "W2", "W2"])
    ds = dataset_from_frames({"surveys": frame}, tmp_path / "a")
    assert "wave" in ds.columns("surveys")
    assert ds.survey_waves() == frame["wave"].nunique() == 2
    ds = dataset_from_frames({"surveys": frame.drop(columns="wave")}, tmp_path / "b")
    assert ds.survey_waves() == frame["date"].nunique() == 4


def test_survey_segments_are_kept_as_text(tmp_path: Path) -> None:
    frame = SURVEY.assign(date="2024-06-30", Zone=[1, 2, 2, 3, 1])  # a numeric label is not a driver
    ds = dataset_from_frames({"surveys": frame}, tmp_path,
                             table_options={"surveys": {"segments": ["Class", "Type of Travel", "Zone"]}})
    assert ds.segment_columns("surveys") == ["Class", "Type of Travel", "Zone"]
    assert ds.drivers == ["Food and drink"]
    kinds = ds.meta["kinds"]["surveys"]
    assert kinds["Class"] == kinds["Type of Travel"] == kinds["Zone"] == "text"
    got = ds.table("surveys").to_pandas().set_index("response_id")
    want = frame.set_index("response_id")
    assert got["Class"].to_dict() == want["Class"].to_dict()
    assert got["Zone"].to_dict() == want["Zone"].astype(str).to_dict()
    by_class = ds.sql('SELECT "Class", avg(satisfaction) AS s FROM surveys GROUP BY 1').set_index("Class")["s"]
    assert by_class.to_dict() == pytest.approx(want.groupby("Class")["satisfaction"].mean().to_dict())
    assert ds.validation.ok and not issues(ds, "out_of_scale")


def test_segment_labels_honour_the_table_na_values(tmp_path: Path) -> None:
    frame = SURVEY.assign(date="2024-06-30", Class=["Business", "N/A", "Eco", "N/A", "Eco Plus"])
    ds = dataset_from_frames({"surveys": frame}, tmp_path,
                             table_options={"surveys": {"segments": ["Class"], "na_values": ["N/A"]}})
    got = ds.table("surveys").to_pandas().set_index("response_id")["Class"]
    assert got.isna().sum() == (frame["Class"] == "N/A").sum() == 2
    assert got.dropna().to_dict() == {"R1": "Business", "R3": "Eco", "R5": "Eco Plus"}


def test_without_segments_text_attributes_are_not_kept(tmp_path: Path) -> None:
    ds = dataset_from_frames({"surveys": SURVEY.assign(date="2024-06-30")}, tmp_path)
    assert ds.segment_columns("surveys") == [] and "Class" not in ds.columns("surveys")


def test_segment_not_in_the_source_names_the_key_and_columns(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[tables.surveys\].segments: column 'Cabin' not in .*Type of Travel"):
        dataset_from_frames({"surveys": SURVEY.assign(date="2024-06-30")}, tmp_path,
                            table_options={"surveys": {"segments": ["Cabin"]}})


def test_segment_that_is_also_a_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both drivers and segments"):
        dataset_from_frames({"surveys": SURVEY.assign(date="2024-06-30")}, tmp_path, drivers=["Class"],
                            table_options={"surveys": {"segments": ["Class"]}})


@pytest.mark.parametrize("value", ['"Class"', '[1, 2]', '["Class", "Class"]', '[""]'])
def test_segments_must_be_a_list_of_names(tmp_path: Path, value: str) -> None:
    write(tmp_path / "s.csv", "date,satisfaction,loyal\n2024-01-01,4,1\n")
    toml = write(tmp_path / "workbench.toml", f'[tables.surveys]\nsource = "s.csv"\nsegments = {value}\n')
    with pytest.raises(ConfigError, match=r"\[tables.surveys\].segments must be a list"):
        load_config(toml)


@pytest.mark.parametrize(("key", "value", "table"), [
    ("wave_date", '"2024-06-30"', "transactions"),
    ("loyal_kind", '"behaviour"', "customers"),
    ("segments", '["x"]', "complaints"),
    ("churn_as_of", '"2024-06-30"', "surveys"),
    ("closed_statuses", '["Closed%"]', "customers"),
])
def test_semantic_keys_belong_to_their_tables(tmp_path: Path, key: str, value: str, table: str) -> None:
    write(tmp_path / "x.csv", "a\n1\n")
    toml = write(tmp_path / "workbench.toml", f'[tables.{table}]\nsource = "x.csv"\n{key} = {value}\n')
    with pytest.raises(ConfigError, match=rf"\[tables.{table}\].{key}: this key belongs in"):
        load_config(toml)


def test_loyal_kind_is_recorded(tmp_path: Path) -> None:
    frame = SURVEY.assign(date="2024-06-30")
    assert dataset_from_frames({"surveys": frame}, tmp_path / "a").loyal_kind == "intent"
    ds = dataset_from_frames({"surveys": frame}, tmp_path / "b", table_options={"surveys": {"loyal_kind": "behaviour"}})
    assert ds.loyal_kind == "behaviour" and ds.meta["loyal_kind"] == "behaviour"
    ds = dataset_from_frames({"surveys": frame}, tmp_path / "c", table_options={"surveys": {"loyal_kind": "Behavior"}})
    assert ds.loyal_kind == "behaviour"


def test_loyal_kind_must_be_behaviour_or_intent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'\[tables.surveys\].loyal_kind must be "behaviour".*\'observed\''):
        dataset_from_frames({"surveys": SURVEY.assign(date="2024-06-30")}, tmp_path,
                            table_options={"surveys": {"loyal_kind": "observed"}})


def test_loyal_kind_without_a_loyal_column_is_an_error(tmp_path: Path) -> None:
    frame = SURVEY.assign(date="2024-06-30", recommend=9).drop(columns="loyal")
    with pytest.raises(ConfigError, match=r"\[tables.surveys\].loyal_kind is set but no loyal column"):
        dataset_from_frames({"surveys": frame}, tmp_path, table_options={"surveys": {"loyal_kind": "behaviour"}},
                            scales={"surveys": {"recommend": (0, 10)}})


def test_survey_without_a_loyalty_measure_loads_with_a_warning(tmp_path: Path) -> None:
    frame = SURVEY.assign(date="2024-06-30").drop(columns="loyal")
    ds = dataset_from_frames({"surveys": frame}, tmp_path)
    assert "surveys" in ds.tables and len(ds.table("surveys").to_pandas()) == len(frame)
    [issue] = issues(ds, "missing_measure")
    assert issue.severity == "warning" and issue.column == "repurchase_intent or recommend or loyal"
    assert "[tables.surveys.columns]" in issue.message
    assert ds.validation.ok  # a warning: validate exits 0
    assert ds.drivers == ["Food and drink"]


# ---------------------------------------------------------------- customers
CUSTOMERS = pd.DataFrame({
    "customer_id": ["C1", "C2", "C3", "C4"],
    "tenure": [1, 30, 0, 12.5],
    "Churn": ["Yes", "No", "No", "Yes"],
    "left": ["2024-05-31", None, None, "2024-01-15"],
    "calls": [3, 0, 1, 7],
    "Geography": ["France", "Spain", "France", "Germany"],
})
CUSTOMER_COLUMNS = {"tenure_months": "tenure", "churned": "Churn", "churned_at": "left",
                    "complaint_count": "calls"}


def _months_before(day: dt.date, months: float) -> dt.date:
    """Independent reference: whole months back on the calendar, then the fraction as days of 30.44."""
    whole = int(months // 1)
    y, m = divmod(day.year * 12 + day.month - 1 - whole, 12)
    back = pd.Timestamp(day) - pd.DateOffset(months=whole)  # clips 31st to month end, like DuckDB
    assert (back.year, back.month) == (y, m + 1)
    return (back - pd.Timedelta(days=round((months - whole) * 30.436875))).date()


def test_customers_snapshot_with_churn_and_tenure(tmp_path: Path) -> None:
    ds = dataset_from_frames(
        {"customers": CUSTOMERS}, tmp_path, as_of="2024-06-30",
        table_options={"customers": {"churn_as_of": "2024-05-31", "columns": CUSTOMER_COLUMNS}})
    assert ds.tables == ["customers"]  # a customers-only snapshot, no transactions
    got = ds.table("customers").to_pandas().set_index("customer_id")
    assert got["churned"].tolist() == [1, 0, 0, 1]
    assert got["complaint_count"].tolist() == CUSTOMERS["calls"].tolist()
    assert got["churned_at"].iloc[0] == pd.Timestamp("2024-05-31") and pd.isna(got["churned_at"].iloc[1])
    as_of = dt.date(2024, 5, 31)
    want = {c: _months_before(as_of, t) for c, t in zip(CUSTOMERS["customer_id"], CUSTOMERS["tenure"], strict=True)}
    assert {c: d.date() for c, d in got["signup_date"].items()} == want
    assert want["C2"] == dt.date(2021, 11, 30) and want["C3"] == as_of
    assert ds.churn_as_of == as_of
    [note] = issues(ds, "derived_column")
    assert (note.table, note.column, note.count) == ("customers", "signup_date", 4)
    assert "2024-05-31" in note.message and "tenure_months" in note.message
    assert ds.validation.ok
    assert ds.summary().set_index("table").loc["customers", "rows"] == 4


def test_churn_flag_and_date_that_disagree_are_flagged(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "customer_id": ["C1", "C2", "C3", "C4", "C5"],
        "signup_date": "2020-01-01",
        "churned": [1, 0, 0, 1, 1],
        "churned_at": ["2024-03-01", "2024-04-01", None, "2024-06-15", None],
    })
    ds = dataset_from_frames({"customers": frame}, tmp_path, as_of="2024-06-30",
                             table_options={"customers": {"churn_as_of": "2024-05-31"}})
    as_of = pd.Timestamp("2024-05-31")
    left = pd.to_datetime(frame["churned_at"])
    want = frame["customer_id"][((frame["churned"] == 0) & (left <= as_of))
                                | ((frame["churned"] == 1) & (left > as_of))].tolist()
    [issue] = issues(ds, "churn_mismatch")
    assert want == ["C2", "C4"] and issue.count == 2 and issue.severity == "warning"
    assert [e["customer_id"] for e in issue.examples] == want
    assert len(ds.table("customers").to_pandas()) == 5  # flagged, kept


def test_churn_as_of_defaults_to_the_dataset_as_of(tmp_path: Path) -> None:
    ds = dataset_from_frames({"customers": CUSTOMERS}, tmp_path, as_of="2024-06-30",
                             table_options={"customers": {"columns": {"tenure_months": "tenure"}}})
    assert ds.churn_as_of == dt.date(2024, 6, 30)
    got = ds.table("customers").to_pandas().set_index("customer_id")["signup_date"]
    assert got["C2"] == pd.Timestamp("2021-12-30")


def test_a_mapped_signup_date_is_not_replaced_by_tenure(tmp_path: Path) -> None:
    frame = CUSTOMERS.assign(signup_date="2020-01-01")
    ds = dataset_from_frames({"customers": frame}, tmp_path, as_of="2024-06-30",
                             table_options={"customers": {"columns": {"tenure_months": "tenure"}}})
    assert set(ds.table("customers").to_pandas()["signup_date"]) == {pd.Timestamp("2020-01-01")}
    assert not issues(ds, "derived_column")


def test_customers_without_signup_or_tenure_are_skipped(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        dataset_from_frames({"customers": CUSTOMERS}, tmp_path, as_of="2024-06-30")
    [issue] = [i for i in err.value.report.issues if i.rule == "missing_column"]
    assert issue.column == "signup_date" and err.value.report.tables["customers"].skipped
    assert "tenure_months" in issue.message


def test_missing_or_negative_tenure_is_reported_not_invented(tmp_path: Path) -> None:
    frame = CUSTOMERS.assign(tenure=[1, None, -3, 12])
    ds = dataset_from_frames({"customers": frame}, tmp_path, as_of="2024-06-30",
                             table_options={"customers": {"columns": {"tenure_months": "tenure"}}})
    assert sorted(ds.table("customers").to_pandas()["customer_id"]) == ["C1", "C4"]
    [missing] = issues(ds, "missing_value")
    [future] = issues(ds, "future_date")
    assert (missing.column, missing.count, future.column, future.count) == ("signup_date", 1, "signup_date", 1)


def test_churned_flag_reads_yes_no_and_rejects_other_text(tmp_path: Path) -> None:
    frame = CUSTOMERS.assign(signup_date="2020-01-01", Churn=["Yes", "no", "maybe", "1"])
    ds = dataset_from_frames({"customers": frame}, tmp_path, as_of="2024-06-30",
                             table_options={"customers": {"columns": {"churned": "Churn"}}})
    got = ds.table("customers").to_pandas().set_index("customer_id")["churned"]
    assert got["C1"] == 1 and got["C2"] == 0 and pd.isna(got["C3"]) and got["C4"] == 1
    [bad] = issues(ds, "wrong_type")
    assert (bad.column, bad.count, bad.action) == ("churned", 1, "nulled")


def test_churn_as_of_without_churn_columns_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[tables.customers\].churn_as_of .*neither is mapped"):
        dataset_from_frames({"customers": CUSTOMERS.assign(signup_date="2020-01-01")}, tmp_path,
                            table_options={"customers": {"churn_as_of": "2024-05-31"}})


def test_customer_segments(tmp_path: Path) -> None:
    frame = CUSTOMERS.assign(signup_date="2020-01-01", region=["N", "S", "N", "E"])
    ds = dataset_from_frames({"customers": frame}, tmp_path, as_of="2024-06-30",
                             table_options={"customers": {"segments": ["Geography"]}})
    assert ds.segment_columns("customers") == ["region", "Geography"]
    counts = ds.sql('SELECT "Geography", count(*) AS n FROM customers GROUP BY 1').set_index("Geography")["n"]
    assert counts.to_dict() == frame["Geography"].value_counts().to_dict()
    assert ds.segment_columns("transactions") == []


# --------------------------------------------------------------- complaints
COMPLAINTS = pd.DataFrame({
    "complaint_id": ["K1", "K2", "K3", "K4", "K5"],
    "opened_at": ["2024-01-02", "2024-01-05", "2024-02-01", "2024-02-03", "2024-03-01"],
    "category": ["Billing", "Billing", "Delivery", "Delivery", "Billing"],
    "status": ["Closed with explanation", "In progress", "closed", "Resolved", "Untimely response"],
    "timely": ["Yes", "No", "yes", "Yes", "No"],
    "outcome": ["explanation", None, "refund", "refund", None],
})


def test_closed_statuses_timely_and_outcome(tmp_path: Path) -> None:
    ds = dataset_from_frames({"complaints": COMPLAINTS}, tmp_path, as_of="2024-06-30",
                             table_options={"complaints": {"closed_statuses": ["Closed%", "Resolved"]}})
    assert ds.closed_statuses == ["Closed%", "Resolved"]
    got = ds.table("complaints").to_pandas().set_index("complaint_id")
    assert got["timely"].tolist() == [1, 0, 1, 1, 0]
    assert got["outcome"].to_dict() == COMPLAINTS.set_index("complaint_id")["outcome"].to_dict()
    # the patterns as SQL LIKE, case-insensitive, against a regex reading of the same patterns
    like = " OR ".join(f"status ILIKE '{p}'" for p in ds.closed_statuses)
    closed = set(ds.sql(f"SELECT complaint_id FROM complaints WHERE {like}")["complaint_id"])
    pattern = re.compile("|".join(p.replace("%", ".*") for p in ds.closed_statuses), re.IGNORECASE)
    assert closed == {k for k, s in zip(COMPLAINTS["complaint_id"], COMPLAINTS["status"], strict=True)
                      if pattern.fullmatch(s)} == {"K1", "K3", "K4"}
    assert ds.validation.ok


def test_closed_statuses_default_is_none(tmp_path: Path) -> None:
    assert dataset_from_frames({"complaints": COMPLAINTS}, tmp_path, as_of="2024-06-30").closed_statuses is None


@pytest.mark.parametrize("value", ['"Closed%"', "[]", '["Closed%", 3]', '[" "]'])
def test_closed_statuses_must_be_a_list_of_patterns(tmp_path: Path, value: str) -> None:
    write(tmp_path / "c.csv", "complaint_id,opened_at,category,status\nK1,2024-01-01,a,Closed\n")
    toml = write(tmp_path / "workbench.toml", f'[tables.complaints]\nsource = "c.csv"\nclosed_statuses = {value}\n')
    with pytest.raises(ConfigError, match=r"\[tables.complaints\].closed_statuses must be a non-empty list"):
        load_config(toml)


def test_closed_statuses_without_a_status_column_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[tables.complaints\].closed_statuses is set but no status column"):
        dataset_from_frames({"complaints": COMPLAINTS.drop(columns="status")}, tmp_path, as_of="2024-06-30",
                            table_options={"complaints": {"closed_statuses": ["Closed%"]}})


# ----------------------------------------------------------------- realdata
def _realdata() -> Path | None:
    """The shared real exports: ``../shared/realdata`` from the repo root, or ``$WORKBENCH_REALDATA``."""
    for cand in (REPO / REALDATA_REL, Path(os.environ.get("WORKBENCH_REALDATA", "/nonexistent"))):
        if cand.is_dir():
            return cand.resolve()
    return None


REALDATA = _realdata()
realdata = pytest.mark.skipif(REALDATA is None, reason=f"real exports not found at {REALDATA_REL} from the repo root")


def example(name: str, tmp_path: Path) -> Path:
    """The example's workbench.toml; a copy pointing at $WORKBENCH_REALDATA when the repo-relative path is absent."""
    toml = EXAMPLES / name / "workbench.toml"
    text = toml.read_text(encoding="utf-8")
    rel = "../../../shared/realdata/"
    assert rel in text and (toml.parent / rel).resolve() == (REPO / REALDATA_REL).resolve()
    if (REPO / REALDATA_REL).is_dir():
        return toml
    copy = tmp_path / name / "workbench.toml"
    write(copy, text.replace(rel, f"{REALDATA}/"))
    return copy


def _supports_column_options(tmp_path: Path) -> bool:
    """Per-column options (values / scale / na_values inline tables) come with the loader branch."""
    write(tmp_path / "probe" / "x.csv", "a\n1\n")
    toml = write(tmp_path / "probe" / "workbench.toml",
                 '[tables.points]\nsource = "x.csv"\n[tables.points.columns]\npoints = { source = "a" }\n')
    try:
        load_config(toml)
    except ConfigError:
        return False
    return True


@pytest.mark.realdata
@realdata
def test_cfpb_example_monthly_counts_and_open_cases(tmp_path: Path) -> None:
    raw = pd.read_csv(REALDATA / "cfpb_complaints_sample_2019.csv", dtype=str, keep_default_na=False)
    ds = open_dataset(example("cfpb", tmp_path))
    assert ds.validation.ok and not ds.validation.issues
    assert ds.closed_statuses == ["Closed%"]
    got = ds.table("complaints").to_pandas()
    assert len(got) == len(raw) == 6623
    # monthly counts
    opened = pd.to_datetime(raw["Date received"], format="%Y/%m/%d")
    want = opened.dt.to_period("M").value_counts().sort_index()
    have = ds.sql("SELECT strftime(opened_at, '%Y-%m') AS m, count(*) AS n FROM complaints GROUP BY 1 ORDER BY 1")
    assert dict(zip(have["m"], have["n"], strict=True)) == {str(k): v for k, v in want.items()}
    # open cases by status: no 'Closed…' response
    status = raw["Company response to consumer"]
    open_want = status[~status.str.lower().str.startswith("closed")].value_counts().to_dict()
    like = " OR ".join(f"status ILIKE '{p}'" for p in ds.closed_statuses)
    open_have = ds.sql(f"SELECT status, count(*) AS n FROM complaints WHERE NOT ({like}) GROUP BY 1")
    assert dict(zip(open_have["status"], open_have["n"], strict=True)) == open_want
    assert open_want == {"Untimely response": 37, "In progress": 35}
    # SLA flag and outcome
    assert got["timely"].sum() == (raw["Timely response?"] == "Yes").sum() == 6529
    assert got["outcome"].value_counts().to_dict() == status.value_counts().to_dict()
    assert got["text"].notna().sum() == (raw["Consumer complaint narrative"].str.strip() != "").sum()


def _airline_expected() -> dict:
    raw = pd.read_csv(REALDATA / "airline_satisfaction_20k.csv")
    return {
        "raw": raw,
        "n": len(raw),
        "satisfied": (raw["satisfaction"] == "satisfied").mean(),
        "loyal": (raw["Customer Type"] == "Loyal Customer").mean(),
        "by_class": raw.groupby("Class")["satisfaction"].apply(lambda s: (s == "satisfied").mean()).to_dict(),
        "by_travel": raw["Type of Travel"].value_counts().to_dict(),
    }


@pytest.mark.realdata
@realdata
def test_airline_semantics_with_sql_expressions(tmp_path: Path) -> None:
    """Segments, wave_date and loyal_kind on the real file (labels mapped with SQL, no per-column options)."""
    want = _airline_expected()
    toml = write(tmp_path / "workbench.toml", f"""
[tables.surveys]
source = "{REALDATA}/airline_satisfaction_20k.csv"
wave_date = "2019-12-31"
segments = ["Class", "Type of Travel"]
loyal_kind = "behaviour"
drivers = ["Food and drink"]
[tables.surveys.columns]
response_id = "id"
satisfaction = "CASE satisfaction WHEN 'satisfied' THEN 1 WHEN 'neutral or dissatisfied' THEN 0 END"
loyal = "CASE \\"Customer Type\\" WHEN 'Loyal Customer' THEN 1 WHEN 'disloyal Customer' THEN 0 END"
[tables.surveys.scales]
satisfaction = [0, 1]
"Food and drink" = [0, 5]
""")
    ds = open_dataset(toml)
    assert ds.validation.ok
    got = ds.table("surveys").to_pandas()
    assert len(got) == want["n"] == 20000
    assert got["satisfaction"].mean() == pytest.approx(want["satisfied"]) and want["satisfied"] == 0.4376
    assert got["loyal"].mean() == pytest.approx(want["loyal"]) and want["loyal"] == pytest.approx(0.82115)
    assert ds.loyal_kind == "behaviour" and ds.survey_waves() == 1
    assert ds.segment_columns("surveys") == ["Class", "Type of Travel"]
    assert got.groupby("Class")["satisfaction"].mean().to_dict() == pytest.approx(want["by_class"])
    assert got["Type of Travel"].value_counts().to_dict() == want["by_travel"]


@pytest.mark.realdata
@realdata
def test_airline_example(tmp_path: Path) -> None:
    if not _supports_column_options(tmp_path):
        pytest.skip("per-column options (values, scale, na_values) arrive with the loader branch")
    want = _airline_expected()
    raw = want["raw"]
    ds = open_dataset(example("airline", tmp_path))
    assert ds.validation.ok, ds.validation
    got = ds.table("surveys").to_pandas()
    assert len(got) == want["n"]
    assert got["satisfaction"].mean() == pytest.approx(want["satisfied"])
    assert got["loyal"].mean() == pytest.approx(want["loyal"])
    assert ds.loyal_kind == "behaviour" and ds.survey_waves() == 1
    assert ds.segment_columns("surveys") == ["Class", "Type of Travel"]
    assert got.groupby("Class")["satisfaction"].mean().to_dict() == pytest.approx(want["by_class"])
    assert len(ds.drivers) == 14
    for col in ds.drivers:  # 0 = not applicable: missing, not averaged in, not an error
        assert ds.scale("surveys", col) == (1.0, 5.0)
        rated = raw[col][raw[col] != 0]
        assert got[col].notna().sum() == len(rated)
        assert got[col].mean() == pytest.approx(rated.mean())
    assert not issues(ds, "out_of_scale")


@pytest.mark.realdata
@realdata
@pytest.mark.parametrize("name", ["cfpb", "airline"])
def test_examples_validate_cleanly(tmp_path: Path, name: str) -> None:
    from typer.testing import CliRunner

    from workbench.cli import app

    if name == "airline" and not _supports_column_options(tmp_path):
        pytest.skip("per-column options (values, scale, na_values) arrive with the loader branch")
    res = CliRunner().invoke(app, ["validate", str(example(name, tmp_path))])
    assert res.exit_code == 0, res.output
    assert "0 error(s), 0 warning(s)" in res.output
    if name == "airline":  # the one note: the date comes from wave_date
        assert "derived_column" in res.output and "wave_date" in res.output
