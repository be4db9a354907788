"""Every validation rule, each with a deliberately bad file.

For each rule we check the count, the action (rows excluded / values nulled /
flagged), the example rows (file, row, offending value) and that the row
accounting adds up: nothing is silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.engine import open_dataset

CUSTOMERS = """customer_id,signup_date,segment
C1,2025-01-05,a
C2,2025-02-01,b
C3,2025-03-01,c
"""


def make(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def issues(ds, rule: str):
    return [i for i in ds.validation.issues if i.rule == rule]


def accounting_adds_up(ds) -> None:
    for load in ds.validation.tables.values():
        if not load.skipped and not load.derived:
            assert load.source_rows == load.filtered_rows + load.excluded_rows + load.loaded_rows


def test_clean_data_has_no_issues(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{"customers.csv": CUSTOMERS}))
    assert ds.validation.ok and not ds.validation.issues


def test_missing_required_column_skips_table_and_names_columns(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "customers.csv": CUSTOMERS,
        "transactions.csv": "customer_id,when,amount\nC1,2025-05-01,3\n",
    }))
    [issue] = issues(ds, "missing_column")
    assert issue.table == "transactions" and issue.column == "date" and issue.severity == "error"
    assert "when" in issue.examples[0]["available_columns"]
    assert "transactions" not in ds.tables and ds.validation.tables["transactions"].skipped


def test_survey_without_any_loyalty_measure(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{"customers.csv": CUSTOMERS,
                                        "surveys.csv": "date,satisfaction\n2025-05-01,4\n"}))
    [issue] = issues(ds, "missing_measure")  # loaded with a warning, not skipped (issue 11)
    assert "repurchase_intent or recommend or loyal" in issue.column and issue.severity == "warning"
    assert "surveys" in ds.tables


def test_unparseable_dates_excluded_with_examples(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "customers.csv": CUSTOMERS,
        "transactions.csv": "customer_id,date,amount\nC1,2025-05-01,3\nC2,31/31/2025,4\nC3,yesterday,5\n",
    }))
    [issue] = issues(ds, "unparseable_date")
    assert (issue.table, issue.column, issue.count, issue.action) == ("transactions", "date", 2, "excluded")
    assert [e["date"] for e in issue.examples] == ["31/31/2025", "yesterday"]
    assert [e["line"] for e in issue.examples] == [3, 4]
    assert issue.files == ["transactions.csv"]
    assert ds.validation.tables["transactions"].loaded_rows == 1
    accounting_adds_up(ds)


def test_wrong_type_required_excluded_optional_nulled(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "customers.csv": CUSTOMERS,
        "transactions.csv": "customer_id,date,amount,discount\nC1,2025-05-01,3,0\nC2,2025-05-02,three,1\n"
                            "C3,2025-05-03,1299.50,lots\n",
    }))
    wrong = {i.column: i for i in issues(ds, "wrong_type")}
    assert wrong["amount"].count == 1 and wrong["amount"].action == "excluded"
    assert wrong["amount"].examples[0]["amount"] == "three"
    assert wrong["discount"].count == 1 and wrong["discount"].action == "nulled"
    tx = ds.table("transactions").to_pandas().set_index("customer_id")
    assert list(tx.index) == ["C1", "C3"] and tx.loc["C3", "discount"] != tx.loc["C3", "discount"]  # NaN
    accounting_adds_up(ds)


def test_duplicate_ids_keep_first(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{"customers.csv": CUSTOMERS + "C2,2025-09-09,dup\nC2,2025-09-10,dup2\n"}))
    [issue] = issues(ds, "duplicate_id")
    assert issue.count == 2 and issue.column == "customer_id"
    assert [e["row"] for e in issue.examples] == [4, 5]
    cust = ds.table("customers").to_pandas().set_index("customer_id")
    assert cust.loc["C2", "segment"] == "b"  # the first occurrence is kept
    accounting_adds_up(ds)


def test_out_of_scale_ratings_reported_not_averaged(tmp_path: Path) -> None:
    (tmp_path / "workbench.toml").write_text("""
[tables.surveys]
source = "surveys.csv"
[tables.surveys.scales]
recommend = [0, 10]
""", encoding="utf-8")
    ds = open_dataset(make(tmp_path, **{
        "surveys.csv": "date,satisfaction,recommend,speed\n2025-05-01,5,10,4\n2025-05-02,6,9,2\n"
                       "2025-05-03,3,11,0\n2025-05-04,1,0,5\n",
    }))
    by_col = {i.column: i for i in issues(ds, "out_of_scale")}
    assert by_col["satisfaction"].count == 1 and by_col["satisfaction"].action == "excluded"
    assert by_col["recommend"].count == 1 and by_col["recommend"].action == "nulled"
    assert by_col["speed"].count == 1  # a driver rating on the default 1-5 scale
    s = ds.table("surveys").to_pandas()
    assert len(s) == 3
    assert s["recommend"].mean() == pytest.approx((10 + 0) / 2)  # 11 is not averaged in
    assert s["speed"].mean() == pytest.approx((4 + 5) / 2)
    assert ds.drivers == ["speed"]


def test_future_dates_excluded(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "customers.csv": CUSTOMERS,
        "transactions.csv": "customer_id,date,amount\nC1,2025-05-01,3\nC2,2999-01-01,4\n",
    }))
    [issue] = issues(ds, "future_date")
    assert issue.count == 1 and issue.examples[0]["customer_id"] == "C2"
    assert ds.validation.tables["transactions"].loaded_rows == 1


def test_closed_before_opened(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "complaints.csv": "complaint_id,opened_at,closed_at,category\nK1,2025-05-01 10:00,2025-05-02 09:00,delivery\n"
                          "K2,2025-05-03 10:00,2025-05-01 09:00,price\nK3,2025-05-03 10:00,,price\n",
    }))
    [issue] = issues(ds, "closed_before_opened")
    assert issue.count == 1 and issue.examples[0]["complaint_id"] == "K2"
    c = ds.table("complaints").to_pandas()
    assert sorted(c["complaint_id"]) == ["K1", "K3"]
    assert c.set_index("complaint_id")["closed_at"].isna().to_dict() == {"K1": False, "K3": True}


def test_negative_points_balance_flagged(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "points.csv": "customer_id,date,points,kind\nC1,2025-01-01,100,earn\nC1,2025-02-01,-80,redeem\n"
                      "C2,2025-01-01,10,earn\nC2,2025-01-05,-30,redeem\nC2,2025-02-01,50,earn\n",
    }))
    [issue] = issues(ds, "negative_points_balance")
    assert issue.count == 1 and issue.examples[0]["customer_id"] == "C2"
    assert issue.examples[0]["balance"] == -20
    assert ds.validation.tables["points"].loaded_rows == 5  # flagged, not dropped


def test_orphan_customer_ids_are_a_warning(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "customers.csv": CUSTOMERS,
        "transactions.csv": "customer_id,date,amount\nC1,2025-05-01,3\nC9,2025-05-01,4\n",
    }))
    [issue] = issues(ds, "orphan_customer_id")
    assert issue.severity == "warning" and issue.count == 1 and issue.examples[0]["customer_id"] == "C9"
    assert ds.validation.ok  # warnings only
    assert ds.validation.tables["transactions"].loaded_rows == 2


def test_missing_required_value(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "customers.csv": CUSTOMERS,
        "transactions.csv": "customer_id,date,amount\nC1,2025-05-01,3\n,2025-05-01,4\nC2,2025-05-01,\n",
    }))
    missing = {i.column: i.count for i in issues(ds, "missing_value")}
    assert missing == {"customer_id": 1, "amount": 1}
    accounting_adds_up(ds)


def test_exclusions_frame_has_no_example_values(tmp_path: Path) -> None:
    ds = open_dataset(make(tmp_path, **{
        "customers.csv": CUSTOMERS + "C2,2025-09-09,dup\n",
    }))
    frame = ds.validation.exclusions()
    assert list(frame.columns) == ["table", "rule", "severity", "column", "count", "action"]
    assert frame.loc[0, "count"] == 1


# ----------------------------------------------------------------------- CLI
runner = CliRunner()


def test_validate_cli_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "customers.csv").write_text(CUSTOMERS + "C1,not-a-date,x\n", encoding="utf-8")
    (tmp_path / "warn").mkdir()
    (tmp_path / "warn" / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "warn" / "transactions.csv").write_text("customer_id,date,amount\nC9,2025-05-01,4\n", encoding="utf-8")

    assert runner.invoke(app, ["validate", str(tmp_path / "good")]).exit_code == 0
    res = runner.invoke(app, ["validate", str(tmp_path / "bad")])
    assert res.exit_code == 1
    assert "unparseable_date" in res.output and "customers.csv" in res.output and "not-a-date" in res.output
    assert runner.invoke(app, ["validate", str(tmp_path / "warn")]).exit_code == 0
    assert runner.invoke(app, ["validate", str(tmp_path / "nope")]).exit_code == 2
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "surveys.csv").write_text("date,recommend\n2025-05-01,4\n", encoding="utf-8")
    res = runner.invoke(app, ["validate", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "missing_column" in res.output

    res = runner.invoke(app, ["validate", "--json", str(tmp_path / "bad")])
    assert res.exit_code == 1
    payload = json.loads(res.output)
    assert payload["ok"] is False and payload["issues"][0]["rule"] == "unparseable_date"
    assert payload["issues"][0]["examples"][0]["line"] == 5


def test_every_command_has_help() -> None:
    for args in (["--help"], ["validate", "--help"], ["summary", "--help"], ["sample", "--help"],
                 ["reports", "--help"], ["reports", "run", "--help"], ["alerts", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
        assert "Usage" in res.output
