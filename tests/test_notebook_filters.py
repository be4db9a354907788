"""Marketer notebooks: customer-filtered dataset views, the filter bar and re-runs in place, the
dataset/period picker's precedence, empty states and pseudonymised customer-list exports.

Numbers are checked against plain pandas on the source files, never by calling the workbench.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench import viz, widgets
from workbench.engine import dataset_from_frames
from workbench.notebook import Choice, NotebookContext, choose, read_settings, remember, start
from workbench.results import Finding, Result, Table, render


@pytest.fixture(scope="module")
def frames(sample_dir):
    got = {t: pd.read_parquet(sample_dir / f"{t}.parquet") for t in ("customers", "transactions", "complaints",
                                                                     "surveys")}
    got["transactions"]["date"] = pd.to_datetime(got["transactions"]["date"])
    return got


@pytest.fixture
def shown(monkeypatch):
    """Everything displayed (IPython display objects), outside a kernel; not in report mode."""
    monkeypatch.delenv("WORKBENCH_REPORT", raising=False)
    got: list = []
    # what a section draws into its output area goes there (viz.capture), the rest to ``got``
    monkeypatch.setattr(viz, "_display", lambda obj: viz._SINK.append(obj) if viz._SINK is not None
                        else got.append(obj))
    return got


def _html(objs) -> str:
    return "\n".join(o.data if isinstance(getattr(o, "data", None), str) else "" for o in objs)


# ------------------------------------------------------------------ Dataset.restrict
def test_restricted_view_matches_pandas(sample_ds, frames):
    cust, tx, comp = frames["customers"], frames["transactions"], frames["complaints"]
    assert sample_ds.validation.tables["transactions"].excluded_rows == 0  # so the files are the loaded rows
    ids = set(cust.loc[cust["segment"] == "Premium", "customer_id"])
    view = sample_ds.restrict(segment="Premium")
    want = tx.loc[tx["customer_id"].isin(ids), "amount"].sum()
    got_sql = view.sql("SELECT sum(amount) AS s, count(*) AS n FROM transactions").iloc[0]
    assert got_sql["s"] == pytest.approx(want, rel=1e-9)
    assert got_sql["n"] == tx["customer_id"].isin(ids).sum()
    assert float(view.table("transactions").amount.sum().execute()) == pytest.approx(want, rel=1e-9)
    assert int(view.table("customers").count().execute()) == len(ids)
    # two columns, a list of values: complaints of Premium customers in East or North
    ids2 = set(cust.loc[(cust["segment"] == "Premium") & cust["region"].isin(["East", "North"]), "customer_id"])
    v2 = view.restrict(region=["East", "North"])
    assert v2.where == {"segment": ("Premium",), "region": ("East", "North")}
    assert int(v2.sql("SELECT count(*) FROM complaints").iloc[0, 0]) == comp["customer_id"].isin(ids2).sum()
    # the whole dataset is untouched, and dropping the condition gives it back
    assert sample_ds.sql("SELECT sum(amount) FROM transactions").iloc[0, 0] == pytest.approx(tx["amount"].sum())
    assert view.restrict(segment=None) is sample_ds


def test_unassigned_rows_counted(sample_ds, frames):
    got = sample_ds.restrict(segment="Mass").unassigned()
    for table in ("complaints", "surveys"):
        n = int(frames[table]["customer_id"].isna().sum())
        assert got.get(table, 0) == n


def test_not_recorded_value_and_bad_column(tmp_path):
    cust = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "segment": ["Gold", None, "", "Gold"],
                         "signup_date": pd.to_datetime(["2025-01-01"] * 4)})
    tx = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "d"], "date": pd.to_datetime(["2026-01-05"] * 5),
                       "amount": [1.0, 2.0, 4.0, 8.0, 16.0]})
    ds = dataset_from_frames({"customers": cust, "transactions": tx}, tmp_path / "d")
    try:
        # pandas: customers with an empty segment are b and c
        assert ds.restrict(segment=[None]).sql("SELECT sum(amount) FROM transactions").iloc[0, 0] == 6.0
        assert ds.restrict(segment="Gold").sql("SELECT sum(amount) FROM transactions").iloc[0, 0] == 25.0
        with pytest.raises(ValueError, match="colour.*customers"):
            ds.restrict(colour="red")
    finally:
        ds.close()


# ------------------------------------------------------------------ picker precedence
@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("WORKBENCH_REPORT", raising=False)
    monkeypatch.delenv("WORKBENCH_DATA", raising=False)
    monkeypatch.delenv("WORKBENCH_PERIOD", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "loyalty-workbench" / "notebooks.toml"


def test_choose_precedence(clean_env, monkeypatch, tmp_path):
    settings = clean_env
    assert choose("../data/sample", "last-month") == (Choice("../data/sample", "default"),
                                                      Choice("last-month", "default"))
    remember(data=str(tmp_path / "from_file"), period="2026Q2", path=settings)
    d, p = choose("", "last-month")
    assert (d.source, d.value, p.value) == ("settings", str((tmp_path / "from_file").resolve()), "2026Q2")
    monkeypatch.setenv("WORKBENCH_DATA", "/env/data")
    monkeypatch.setenv("WORKBENCH_PERIOD", "2026-09")
    assert choose("../data/sample", "last-month") == (Choice("/env/data", "env"), Choice("2026-09", "env"))
    # a parameter that is not the default wins over everything
    assert choose("/my/data", "2026-10") == (Choice("/my/data", "parameter"), Choice("2026-10", "parameter"))
    # report runs (papermill with explicit data) never look at env or settings, even for the default path
    monkeypatch.setenv("WORKBENCH_REPORT", "1")
    assert choose("../data/sample", "last-month") == (Choice("../data/sample", "parameter"),
                                                      Choice("last-month", "parameter"))


def test_settings_file_relative_path_and_errors(clean_env):
    settings = clean_env
    settings.parent.mkdir(parents=True)
    settings.write_text('data = "exports/crm"\n', encoding="utf-8")
    assert read_settings(settings) == {"data": str((settings.parent / "exports/crm").resolve())}
    settings.write_text('dataset = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"notebooks\.toml.*dataset"):
        read_settings(settings)
    settings.write_text("data = [1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid TOML"):
        read_settings(settings)
    with pytest.raises(ValueError, match="not a valid TOML"):
        choose("", "last-month")
    # a broken settings file does not stop a notebook whose parameters are set
    assert choose("/my/data", "2026-10")[0] == Choice("/my/data", "parameter")


def test_start_reads_workbench_data(clean_env, monkeypatch, sample_dir, sample_dir_zh, shown):
    monkeypatch.setenv("WORKBENCH_DATA", str(sample_dir))
    nb = start("../data/sample", "2026-10", "en", section="t")
    assert nb.data_choice == Choice(str(sample_dir), "env")
    assert int(nb.ds.sql("SELECT count(*) FROM customers").iloc[0, 0]) == len(
        pd.read_parquet(sample_dir / "customers.parquet"))
    nb2 = start(str(sample_dir_zh), "2026-10", "en", section="t")  # the parameter wins
    assert nb2.data_choice.source == "parameter"
    assert int(nb2.ds.sql("SELECT count(*) FROM customers").iloc[0, 0]) == len(
        pd.read_csv(sample_dir_zh / "customers.csv"))


# ------------------------------------------------------------------ nb.data, rerun, filter bar
@dataclass(frozen=True, repr=False)
class Revenue(Result):
    heading: ClassVar[str] = ""
    total: float
    n: int

    def findings(self, lang="en"):
        return [Finding("revenue", f"revenue={self.total:.2f} n={self.n}", self.total)]

    def figures(self, lang="en"):
        return [go.Figure(go.Bar(x=["revenue"], y=[self.total if self.n else None]))]


def _revenue(ds, end, options, frame):
    assert isinstance(options, dict) and isinstance(frame, pd.DataFrame)  # unhashable arguments are fine
    return ds.sql(f"SELECT coalesce(sum(amount), 0) AS total, count(*) AS n FROM transactions "
                  f"WHERE date <= DATE '{end}'")


class FakeOutput:
    """An ipywidgets.Output stand-in that keeps what is displayed inside it."""

    current: FakeOutput | None = None

    def __init__(self):
        self.items: list = []
        self.cleared = 0

    def __enter__(self):
        FakeOutput.current = self
        return self

    def __exit__(self, *exc):
        FakeOutput.current = None

    def clear_output(self, wait=False):
        self.cleared += 1
        self.items.clear()

    @property
    def outputs(self):
        return tuple(self.items)

    @outputs.setter
    def outputs(self, bundles):  # sections fill their area by assigning outputs (see notebook._render_into)
        from types import SimpleNamespace

        if self.items:  # replacing what was drawn = a clear
            self.cleared += 1
        self.items = [SimpleNamespace(data=b["data"].get("text/html", "")) for b in bundles]


@pytest.fixture
def nb(sample_dir, monkeypatch, shown, clean_env):
    import workbench.notebook as notebook

    monkeypatch.setattr(viz, "_display", lambda obj: (viz._SINK if viz._SINK is not None else
                                                      FakeOutput.current.items if FakeOutput.current else shown)
                        .append(obj))
    monkeypatch.setattr(notebook, "_output_area", FakeOutput)
    return start(str(sample_dir), "2026-10", "en", section="t")


def test_rerun_redraws_sections_in_place_with_filtered_numbers(nb, frames):
    cust, tx = frames["customers"], frames["transactions"]
    calls = []

    def counted(*a, **k):
        calls.append(1)
        return _revenue(*a, **k)

    frame = nb.data(counted, end=nb.analysis_date, options={"a": [1]}, frame=pd.DataFrame({"x": [1]}))
    nb.show(lambda: Revenue(float(frame()["total"].iloc[0]), int(frame()["n"].iloc[0])))
    out = nb.sections[0].out
    end = pd.Timestamp(nb.analysis_date)
    assert f"revenue={tx.loc[tx['date'] <= end, 'amount'].sum():.2f}" in _html(out.items)
    assert len(calls) == 1  # the section read frame() twice: computed once

    nb.set_filters(segment="Value")
    nb.rerun()
    ids = set(cust.loc[cust["segment"] == "Value", "customer_id"])
    want = tx.loc[tx["customer_id"].isin(ids) & (tx["date"] <= end), "amount"].sum()
    assert out.cleared == 1 and f"revenue={want:.2f}" in _html(out.items)
    assert len(calls) == 2

    nb.set_filters(segment=None)  # back to everyone: memoised, no new query
    nb.rerun()
    assert len(calls) == 2 and nb.ds is nb.base

    # the period menu: the analysis date argument follows the new period
    nb.set_period("2026-08")
    nb.rerun()
    assert nb.analysis_date == dt.date(2026, 8, 31)
    want = tx.loc[tx["date"] <= pd.Timestamp("2026-08-31"), "amount"].sum()
    assert f"revenue={want:.2f}" in _html(out.items)


def test_rerun_empty_selection_and_failures_say_so(nb):
    nb.show(lambda: Revenue(0.0, int(nb.ds.sql("SELECT count(*) FROM transactions").iloc[0, 0])))
    nb.show(lambda: Revenue(1 / len(nb.ds.sql("SELECT * FROM customers")), 1))
    nb.set_filters(segment="no such segment")
    nb.rerun()
    first, second = (s.out for s in nb.sections)
    assert "No data for this selection" in _html(first.items)
    assert not any(isinstance(o, go.Figure) for o in first.items)
    assert "could not be drawn for this selection" in _html(second.items) and "ZeroDivisionError" in _html(
        second.items)


def test_filter_bar_labels_and_callbacks(sample_dir, monkeypatch, shown, clean_env, frames):
    import workbench.notebook as notebook

    monkeypatch.setattr(notebook, "_output_area", FakeOutput)
    monkeypatch.setattr(viz, "_display", lambda obj: (viz._SINK if viz._SINK is not None else
                                                      FakeOutput.current.items if FakeOutput.current else shown)
                        .append(obj))
    nb = start(str(sample_dir), "2026-10", "zh", section="t")
    bar = nb.filter_bar()
    assert set(bar.controls) == {"segment", "region", "channel", "period"}
    assert bar.controls["segment"].description == "客户细分"
    labels = [label for label, _ in bar.controls["segment"].options]
    cust = frames["customers"]
    assert labels[0] == f"全部（{len(cust):,}）"
    n_premium = int((cust["segment"] == "Premium").sum())
    assert f"高端客户（{n_premium:,}）" in labels
    assert not any(re.search(r"[A-Za-z]", label) for c in ("segment", "region", "channel")
                   for label, _ in bar.controls[c].options)  # zh labels, never the raw English values
    nb.show(lambda: Revenue(float(nb.ds.sql("SELECT sum(amount) FROM transactions").iloc[0, 0]), 1))
    bar.controls["segment"].value = "Premium"  # what a click does
    assert nb.filters == {"segment": "Premium"} and len(bar.timings) == 1
    assert f"{len(cust):,} 位客户中的 {n_premium:,} 位" in bar.status.value
    bar.choose(segment=None, period="2026-09")
    assert nb.filters == {} and nb.period.label == "2026-09" and len(bar.timings) == 2


def test_filter_bar_and_picker_absent_in_report_runs(nb, monkeypatch):
    monkeypatch.setenv("WORKBENCH_REPORT", "1")
    assert nb.filter_bar() is None and nb.picker() is None


def test_picker_remembers_the_dataset(nb, clean_env, sample_dir):
    bar = nb.picker()
    assert "segment" not in bar.controls and "period" in bar.controls
    bar.path.value = str(sample_dir)
    bar.remember.click()
    assert read_settings(clean_env) == {"data": str(Path(sample_dir).resolve())}
    bar.path.value = str(sample_dir / "nope.toml")
    bar.remember.click()
    assert "nope.toml" in bar.status.value and read_settings(clean_env)["data"] == str(Path(sample_dir).resolve())


def test_value_labels_translate_known_codes():
    assert widgets.value_label("segment", "Mass", "zh") == "大众客户"
    assert widgets.value_label("segment", "大众客户", "en") == "Mass"
    assert widgets.value_label("segment", None, "en") == "(not recorded)"
    assert widgets.value_label("segment", "Tier 7", "zh") == "Tier 7"  # unknown: shown as it is
    codes = widgets.code_list(["SP", "RJ", "mg", None])
    assert codes == "br_state" and widgets.value_label("region", "SP", "en", codes) == "São Paulo"
    assert widgets.code_list(["SP", "London"]) == ""


def test_panel_translates_control_labels(monkeypatch, shown):
    import ipywidgets as w

    monkeypatch.setattr("IPython.display.display", lambda obj: None)
    viz.set_lang("zh")
    try:
        control = w.Dropdown(options=[("notebook.filter.period", 1), ("plain", 2)], value=2,
                             description="notebook.filter.column.segment")
        widgets.panel({"c": control}, lambda c: None)
        assert control.description == "客户细分" and control.options[0][0] == "期间" and control.value == 2
    finally:
        viz.set_lang("en")


# ------------------------------------------------------------------ empty states
def test_has_data_rule():
    assert viz.has_data(go.Figure(go.Bar(x=["a", "b"], y=[1, None])))
    assert not viz.has_data(go.Figure(go.Bar(x=["a", "b"], y=[None, float("nan")])))  # categories, no values
    assert not viz.has_data(go.Figure())
    assert not viz.has_data(go.Figure(go.Scatter(x=[], y=[])))
    assert viz.has_data(go.Figure(go.Bar(y=["a"], x=[3], orientation="h")))
    assert not viz.has_data(go.Figure(go.Bar(y=["a"], x=[None], orientation="h")))
    assert not viz.has_data(go.Figure(go.Pie(labels=["a"], values=[None])))
    assert viz.has_data(go.Figure(go.Heatmap(z=[[None, 1], [None, None]])))
    assert viz.has_data(go.Figure(go.Scatter(x=pd.to_datetime(["2026-01-01"]), y=[0])))  # zero is a value
    message = go.Figure()
    message.add_annotation(text="pick a segment", showarrow=False)
    assert viz.has_data(message)  # a message figure is not an empty chart


def test_render_replaces_empty_figure_by_a_note(shown):
    @dataclass(frozen=True, repr=False)
    class Empty(Result):
        def figures(self, lang="en"):
            fig = go.Figure(go.Bar(x=["a"], y=[None]))
            fig.update_layout(title="Revenue by segment")
            return [fig, go.Figure(go.Bar(x=["a"], y=[2]))]

    render(Empty(), "zh")
    html = _html(shown)
    assert "Revenue by segment：此选择下没有数据。" in html
    assert sum(isinstance(o, go.Figure) for o in shown) == 1  # only the non-empty one is drawn


# ------------------------------------------------------------------ customer-list export
KEY = "test-key-not-secret"


def _pseudonym(value: str) -> str:
    """Independent HMAC-SHA256 pseudonym (the documented scheme: p_ + 12 hex)."""
    return "p_" + hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()[:12]


def _csv(html: str) -> str:
    data = re.search(r'href="data:text/csv;base64,([^"]+)"', html).group(1)
    return base64.b64decode(data).decode("utf-8-sig")


@dataclass(frozen=True, repr=False)
class CustomerList(Result):
    frame: pd.DataFrame

    def tables(self, lang="en"):
        return [Table(self.frame, export="upgrade_candidates", appendix=True)]


@pytest.fixture
def customers_list(monkeypatch):
    monkeypatch.setenv("WORKBENCH_PSEUDONYM_KEY", KEY)
    return pd.DataFrame({"customer_id": ["C0001", "C0002", "C0003"], "value": [10.0, 20.0, 30.0]})


def test_export_pseudonymises_ids_by_default(shown, customers_list):
    render(CustomerList(customers_list), "en")
    html = _html(shown)
    csv = _csv(html)
    for raw in customers_list["customer_id"]:
        assert raw not in csv and raw not in html
        assert _pseudonym(raw) in csv
    assert csv.splitlines()[0] == "Customer (pseudonym),value"


def test_export_raw_ids_only_on_opt_in(shown, customers_list, monkeypatch):
    render(CustomerList(customers_list), "en", ids="raw")
    csv = _csv(_html(shown))
    assert "C0002" in csv and csv.splitlines()[0] == "Customer id,value"
    shown.clear()
    monkeypatch.setenv("WORKBENCH_REPORT", "1")  # report pages never carry raw ids, whatever was asked
    render(CustomerList(customers_list), "en", ids="raw")
    html = _html(shown)
    assert "C0002" not in html and _pseudonym("C0002") in html


def test_translated_id_header_and_existing_pseudonyms(shown, customers_list):
    frame = customers_list.rename(columns={"customer_id": "客户编号"})
    frame.loc[0, "客户编号"] = _pseudonym("C0001")  # already a pseudonym: kept, not hashed twice
    render(CustomerList(frame), "zh")
    csv = _csv(_html(shown))
    assert _pseudonym("C0001") in csv and _pseudonym("C0002") in csv and "C000" not in csv


def test_nb_show_identify_opt_in(nb, customers_list, shown):
    nb.show(CustomerList(customers_list))
    assert "C0001" not in _csv(_html(shown))
    shown.clear()
    nb.show(CustomerList(customers_list), identify=True)
    assert "C0001" in _csv(_html(shown))
    with pytest.raises(ValueError, match="export_ids"):
        NotebookContext(ds=nb.ds, period=nb.period, previous=nb.previous, lang="en", rec=nb.rec,
                        export_ids="plain")


def test_no_raw_ids_in_export_of_sample_list(sample_dir, shown, monkeypatch):
    """A customer list of real sample ids: none of them appears in the default CSV."""
    monkeypatch.setenv("WORKBENCH_PSEUDONYM_KEY", KEY)
    ids = pd.read_parquet(sample_dir / "customers.parquet")["customer_id"].head(500)
    render(CustomerList(pd.DataFrame({"customer_id": ids, "n": range(len(ids))})), "en")
    csv = _csv(_html(shown))
    assert not set(ids) & set(re.split(r"[,\r\n]+", csv))
    assert os.environ["WORKBENCH_PSEUDONYM_KEY"] == KEY
