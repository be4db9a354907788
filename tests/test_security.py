"""Security cases from issue 12: personal data in labels and free text, pseudonym keys, XSS,
run integrity (killed runs, corrupt metrics) and the output-folder lock.

Config-safety cases (expression sandbox, inputs) live in ``tests/test_config_safety.py``.
Each test here failed before its fix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from workbench import viz
from workbench.metrics import Recorder
from workbench.privacy import (
    PIILeakError,
    assert_no_pii,
    find_pii,
    mask_label,
    names_maskable,
    pseudonymise,
    quote_text,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures") / "notebooks"
PERIOD = "2026-10"

GLUED = {
    "VIP13812345678": "13812345678",
    "Agent_11010519491231002X": "11010519491231002X",
    "card6222020200112233445": "6222020200112233445",
}


# ------------------------------------------------------------------ 1. PII glued to letters in labels
@pytest.mark.parametrize("label", list(GLUED))
def test_backstop_finds_pii_glued_to_letters(label: str) -> None:
    with pytest.raises(PIILeakError) as err:
        assert_no_pii({"sections": {"complaints": {"by_category": {label: 12}}}})
    assert GLUED[label] not in str(err.value), "the error never repeats the raw value"
    with pytest.raises(PIILeakError):
        assert_no_pii(f'<div>{{"x":["{label}"]}}</div>')


def test_backstop_ignores_generated_identifiers() -> None:
    # pseudonyms, plotly div ids (uuid4) and digests are not personal data, whatever their digits
    pseudo = pseudonymise([f"C{i}" for i in range(2000)], key="k").tolist()
    assert_no_pii(pseudo)
    assert_no_pii("p_138123456789 and p_110105194912 in a table")
    assert_no_pii('<div id="13812345-6781-4234-a123-110105194912">')
    assert_no_pii("sha256 13812345678901234567890123456789abcdef0123456789abcdef01234567")


def test_labels_are_masked_in_figures_tables_and_metrics() -> None:
    labels = [*GLUED, "Delivery"]
    fig = viz.bar_with_ci(labels, [1, 2, 3, 4], title="by card6222020200112233445")
    fig.add_scatter(x=labels, y=[1, 2, 3, 4], name="VIP13812345678", text=labels)
    page = viz.figure_html(fig)
    table = viz.table_html(pd.DataFrame({"handler": labels, "VIP13812345678": [1, 2, 3, 4]}))
    rec = Recorder("", "complaints")
    rec.metric("by_category", pd.DataFrame({"category": labels, "n": [1, 2, 3, 4]}))
    rec.metric("by_segment", {label: 1 for label in labels})
    rec.finding("top", "VIP13812345678 rose most", value={"Agent_11010519491231002X": 3})
    rec.note("handler Agent_11010519491231002X skipped")
    for out in (page, table, json.dumps(rec.to_dict(), ensure_ascii=False)):
        assert find_pii(out) == []
        for raw in GLUED.values():
            assert raw not in out
        assert "VIP[phone]" in out
    rec.save()  # the backstop passes
    assert "Delivery" in page and "Delivery" in table


def test_masked_labels_stay_distinct() -> None:
    a, b = mask_label("Gold 13900000001"), mask_label("Gold 13900000002")
    assert a != b and a.startswith("Gold [phone]") and b.startswith("Gold [phone]")
    assert mask_label("Gold 13900000001") == a, "the same label masks the same way every time"
    assert mask_label("Silver") == "Silver"


# ------------------------------------------------------------------ 2. names and phones in free text
@pytest.mark.parametrize(("text", "gone", "kept"), [
    ("我是林芳，上次买的东西坏了", ["林芳"], ["上次买的东西坏了"]),
    ("客服王小明没有回电", ["王小明"], ["客服", "没有回电"]),
    ("请联系欧阳娜娜处理", ["欧阳", "娜娜"], ["请联系"]),
    ("John Smith says the parcel never came", ["John", "Smith"], ["says the parcel never came"]),
    ("Thanks to Mr. Brown and Dr Jane Doe", ["Brown", "Jane", "Doe"], ["Thanks to Mr.", "Dr"]),
    ("my name is Anna and agent Karen hung up", ["Anna", "Karen"], ["hung up"]),
    ("Customer Service was slow. The Manager never called", [], ["Customer Service", "The Manager"]),
])
def test_person_names_masked_in_zh_and_en(text: str, gone: list[str], kept: list[str]) -> None:
    out = quote_text(text)
    assert out is not None
    for word in gone:
        assert word not in out, out
    for word in kept:
        assert word in out, out
    if gone:
        assert "[name]" in out


@pytest.mark.parametrize("text", [
    "call 138.1234.5678 now", "call 138 1234 5678 now", "call 138-1234-5678 now", "电话：13812345678",
    "call (+86) 138-1234-5678", "call +86.138.1234.5678", "热线400.123.4567",
])
def test_every_phone_format_is_masked(text: str) -> None:
    out = quote_text(text)
    assert out is not None and "[phone]" in out and not re.search(r"\d{4}", out), out


def test_decimal_numbers_are_not_phones() -> None:
    assert quote_text("rating 139.12345678 and version 1.138.1234.5678") == \
        "rating 139.12345678 and version 1.138.1234.5678"


@pytest.mark.parametrize("text", ["Le client Jean-Pierre était fâché", "Привет, я Иван", "田中さんに電話した",
                                  "김철수 고객"])
def test_text_whose_names_cannot_be_masked_is_not_quoted(text: str) -> None:
    assert not names_maskable(text)
    assert quote_text(text) is None


def _complaints_ds(tmp_path: Path):
    from workbench.engine import dataset_from_frames

    texts = ["我是林芳，快递太慢了，电话138.1234.5678", "我是林芳，快递太慢了", "John Smith says delivery was slow",
             "John Smith says delivery was slow again", "Le client Jean-Pierre était fâché",
             "客服王小明没有回电", "客服王小明没有回电，很失望"]
    n = len(texts)
    frame = pd.DataFrame({
        "complaint_id": [f"X{i}" for i in range(n)],
        "opened_at": pd.to_datetime(["2026-10-05"] * n),
        "category": ["delivery"] * n,
        "text": texts,
    })
    return dataset_from_frames({"complaints": frame}, tmp_path / "ds")


def test_complaint_verbatims_carry_no_names(tmp_path: Path) -> None:
    from workbench import complaints as C

    ds = _complaints_ds(tmp_path)
    try:
        v = C.verbatims(ds, "2026-10-01", "2026-11-01", by="category", n_examples=10, seed=1)
    finally:
        ds.close()
    page = C.verbatims_html(v, "en")
    terms = " ".join(v.terms["term"])
    for raw in ("林芳", "John", "Smith", "王小明", "Jean-Pierre", "1234", "5678"):
        assert raw not in page, raw
        assert raw.lower() not in terms, raw
    assert "[name]" in page and "[phone]" in page
    assert "fâché" not in page, "French text is not quoted: its names cannot be found reliably"
    assert v.examples.attrs.get("withheld", 0) >= 1 or "Jean" not in page
