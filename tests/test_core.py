"""Periods, the translation table, and the metrics recorder."""

from __future__ import annotations

import datetime as dt
import json
import re
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench import i18n
from workbench.metrics import MAX_LIST_ITEMS, MetricsError, Recorder, to_jsonable
from workbench.periods import PeriodError, parse_period

TODAY = dt.date(2026, 11, 22)


# -------------------------------------------------------------------- periods
@pytest.mark.parametrize(
    "text, start, end, label, prev_start, prev_end",
    [
        ("2026-10", "2026-10-01", "2026-10-31", "2026-10", "2026-09-01", "2026-09-30"),
        ("2026-1", "2026-01-01", "2026-01-31", "2026-01", "2025-12-01", "2025-12-31"),
        ("2026Q1", "2026-01-01", "2026-03-31", "2026Q1", "2025-10-01", "2025-12-31"),
        ("2026-q4", "2026-10-01", "2026-12-31", "2026Q4", "2026-07-01", "2026-09-30"),
        ("2026-02-01:2026-02-10", "2026-02-01", "2026-02-10", "2026-02-01_2026-02-10", "2026-01-22", "2026-01-31"),
        ("last-month", "2026-10-01", "2026-10-31", "2026-10", "2026-09-01", "2026-09-30"),
        ("last-quarter", "2026-07-01", "2026-09-30", "2026Q3", "2026-04-01", "2026-06-30"),
    ],
)
def test_parse_period(text, start, end, label, prev_start, prev_end) -> None:
    p = parse_period(text, today=TODAY)
    assert (p.start.isoformat(), p.end.isoformat(), p.label) == (start, end, label)
    prev = p.previous()
    assert (prev.start.isoformat(), prev.end.isoformat()) == (prev_start, prev_end)
    assert prev.days == p.days or p.kind != "range"


@pytest.mark.parametrize("text", ["2026-13", "Oct 2026", "2026-02-10:2026-02-01", "2026Q5", "", "2026-02-30:2026-03-01"])
def test_bad_periods(text) -> None:
    with pytest.raises(PeriodError):
        parse_period(text, today=TODAY)


@given(st.integers(2000, 2100), st.integers(1, 12))
def test_month_periods_tile_the_calendar(year, month) -> None:
    p = parse_period(f"{year}-{month:02d}")
    assert p.previous().end_exclusive == p.start
    assert p.display("zh").startswith(f"{year}年")


# ---------------------------------------------------------------- translations
PLACEHOLDER = re.compile(r"{(\w+)")


def test_every_key_has_english_and_chinese_with_same_placeholders() -> None:
    table = i18n.table()
    assert table, "translation table is empty"
    for key, texts in table.items():
        assert set(texts) >= {"en", "zh"}, key
        assert texts["en"].strip() and texts["zh"].strip(), key
        assert set(PLACEHOLDER.findall(texts["en"])) == set(PLACEHOLDER.findall(texts["zh"])), key
        assert list(string.Formatter().parse(texts["en"]))  # valid format strings


def test_chinese_strings_are_chinese() -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    untranslated = [k for k, v in i18n.table().items() if not cjk.search(v["zh"]) and v["zh"] == v["en"]
                    and re.search(r"[A-Za-z]{4,}", v["en"])]
    assert not untranslated, f"zh text identical to English: {untranslated[:10]}"


def test_t_and_formatting() -> None:
    assert i18n.t("core.tables.complaints", "zh") == "投诉"
    assert "surveys" in i18n.t("core.skipped", "en", what="surveys")
    with pytest.raises(i18n.MissingTranslation):
        i18n.t("no.such.key", "en")
    with pytest.raises(ValueError):
        i18n.t("core.app", "fr")
    assert i18n.fmt_pct(0.1234, "en") == "12.3%"
    # a share that is not zero or one never reads as none or all
    assert [i18n.fmt_pct(v) for v in (0.0, 1 / 8000, 0.0005, 0.9996, 1.0)] == ["0.0%", "<0.1%", "0.1%", ">99.9%",
                                                                              "100.0%"]
    assert i18n.fmt_pct(0.006, digits=0) == "1%" and i18n.fmt_pct(0.004, digits=0) == "<1%"
    assert i18n.fmt_money(123456, "zh") == "¥12.3万"
    assert i18n.fmt_money(2_500_000, "en", "USD") == "$2.50m"
    assert i18n.fmt_date(dt.date(2026, 3, 5), "zh") == "2026年3月5日"
    assert i18n.fmt_month("2026-03", "en") == "Mar 2026"
    assert i18n.fmt_p(0.0001) == "p<0.001" and i18n.fmt_p(0.04) == "p=0.040"
    assert i18n.fmt_int(float("nan")) == "–"


# --------------------------------------------------------------------- metrics
def test_to_jsonable_converts_numpy_pandas_and_nan() -> None:
    out = to_jsonable({"a": np.int64(3), "b": np.float32(0.5), "c": float("nan"), "d": pd.Timestamp("2026-01-02"),
                       "e": pd.DataFrame({"x": [1, 2]}), "f": np.array([1.5])})
    assert out == {"a": 3, "b": 0.5, "c": None, "d": "2026-01-02T00:00:00", "e": [{"x": 1}, {"x": 2}], "f": [1.5]}
    json.dumps(out)


def test_recorder_refuses_customer_level_data(tmp_path) -> None:
    rec = Recorder(tmp_path / "m.json", "demo")
    with pytest.raises(MetricsError, match="aggregates"):
        rec.metric("rows", list(range(MAX_LIST_ITEMS + 1)))
    with pytest.raises(MetricsError, match="personal field"):
        rec.metric("top", [{"customer_id": "C1", "value": 3}])
    with pytest.raises(MetricsError, match="not JSON"):
        rec.metric("obj", object())


def test_recorder_writes_atomically_and_noop_without_path(tmp_path) -> None:
    rec = Recorder(tmp_path / "sub" / "m.json", "demo", "zh")
    rec.metric("n", np.int64(5))
    rec.finding("n", "五个", 5, headline=True)
    rec.finding("n", "五个客户", 5, headline=True)  # replaces, not duplicates
    rec.note("skipped x")
    path = rec.save()
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {"section": "demo", "lang": "zh", "metrics": {"n": 5},
                    "findings": [{"key": "n", "text": "五个客户", "value": 5, "headline": True}],
                    "notes": ["skipped x"], "kpis": [], "sections": {"shown": 0, "skipped": 0}}
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # no temp files left
    assert Recorder("", "demo").save() is None


def test_notebook_say_records_and_shows(monkeypatch) -> None:
    from workbench import viz
    from workbench.notebook import NotebookContext

    shown_objects: list = []
    monkeypatch.setattr(viz, "_display", shown_objects.append)

    period = parse_period("2026-10")
    nb = NotebookContext(ds=None, period=period, previous=period.previous(), lang="en",
                         rec=Recorder("", "demo"))
    nb.say("a", "Alpha <rose>", 1, headline=True)
    nb.say_all([{"key": "b", "text": "Beta", "value": 2, "headline": False}, {"key": "c", "text": "Gamma"}])
    nb.note("careful")
    assert [(f.key, f.text, f.value, f.headline) for f in nb.rec.findings] == [
        ("a", "Alpha <rose>", 1, True), ("b", "Beta", 2, False), ("c", "Gamma", None, False)]
    assert nb.rec.notes == ["careful"]
    shown = "".join(obj.data for obj in shown_objects)
    assert shown.count("wb-finding") == 3 and "Alpha &lt;rose&gt;" in shown and "wb-note" in shown
