"""Tests for workbench.privacy."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.privacy import (
    PII_PATTERNS,
    PIILeakError,
    assert_no_pii,
    escape_html,
    luhn_valid,
    mask_name,
    mask_series,
    mask_text,
    pseudonym_key_source,
    pseudonymise,
    safe_text,
    scrub_frame,
)

MASK_CASES = [
    # (text, expected) — English and Chinese running text
    ("call me on 13812345678 please", "call me on [phone] please"),
    ("我的电话13812345678请回电", "我的电话[phone]请回电"),
    ("手机：+86 138 1234 5678，谢谢", "手机：[phone]，谢谢"),
    ("手机+8613812345678", "手机[phone]"),
    ("tel (+86)138-1234-5678.", "tel [phone]."),
    ("联系８６１３８１２３４５６７８吧", "联系[phone]吧"),  # full-width digits
    ("座机010-12345678转人工", "座机[phone]转人工"),
    ("office (0755)12345678", "office [phone]"),
    ("hotline 400-123-4567", "hotline [phone]"),
    ("Call (415) 555-0100 today", "Call [phone] today"),
    ("UK +44 20 7946 0958", "UK [phone]"),
    ("mail jane.doe+x@example.co.uk now", "mail [email] now"),
    ("邮箱abc123@qq.com谢谢", "邮箱[email]谢谢"),
    ("身份证号11010519491231002X已提交", "身份证号[id]已提交"),
    ("ID 110105194912310021 attached", "ID [id] attached"),
    ("卡号4111 1111 1111 1111请退款", "卡号[card]请退款"),
    ("card 4111-1111-1111-1111.", "card [card]."),
    ("card 4111111111111111", "card [card]"),
    ("银联卡6222021234567890123", "银联卡[card]"),
    ("card 4111 1111 1111 1111 200 yuan", "card [card] 200 yuan"),
    ("from 192.168.1.10 at noon", "from [ip] at noon"),
    ("Tel.13812345678", "Tel.[phone]"),
]

UNCHANGED = [
    "Total 1,299.00 yuan",
    "金额1,299.00元，日期2026-10-01",
    "order 123456789 and 1234567890",
    "订单号2026100112请查收",
    "price 0.5 and 12.99, 3 items",
    "on 2026/10/01 at 12:30",
    "ratio 0.13812345678",
    "timestamp 1793491200000",  # 13 digits, not a card network prefix
    "bad card 4111 1111 1111 1112",  # fails Luhn
    "x=.4111111111111111*t+.13812345678",  # float literals in minified JS
    "zeros 000000000000000000",  # 18 chars, but no ID starts with 0
    "path 187-188 188 186-187",  # SVG path numbers do not glue into a mobile
    "",
]


@pytest.mark.parametrize(("text", "expected"), MASK_CASES)
def test_mask_text_masks_each_kind(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_mask_text_leaves_ordinary_numbers(text: str) -> None:
    assert mask_text(text) == text


def test_mask_text_kinds_and_tokens() -> None:
    assert mask_text("ip 10.0.0.1", kinds=["email"]) == "ip 10.0.0.1"
    assert mask_text("a@b.com", tokens={"email": "<e>"}) == "<e>"
    assert mask_text(None) == ""
    with pytest.raises(ValueError):
        mask_text("x", kinds=["nope"])


def test_mask_series_keeps_index_and_missing() -> None:
    s = pd.Series(["电话13812345678", None, 13812345678], index=[10, 11, 12], name="c")
    out = mask_series(s)
    assert out.index.tolist() == [10, 11, 12] and out.name == "c"
    assert out.iloc[0] == "电话[phone]" and pd.isna(out.iloc[1]) and out.iloc[2] == "[phone]"


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_safe_text_escapes_script_after_masking() -> None:
    out = safe_text("<script>alert(1)</script> 13812345678")
    assert "<script>" not in out
    assert out == "&lt;script&gt;alert(1)&lt;/script&gt; [phone]"
    assert escape_html("\"a\" & 'b'") == "&quot;a&quot; &amp; &#x27;b&#x27;"
    assert escape_html(None) == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张三", "张*"),
        ("张三丰", "张**"),
        ("欧阳娜娜", "欧阳**"),
        ("John Smith", "J*** S****"),
        ("Mary-Jane O'Neil", "M***-J*** O'N***"),
        ("", ""),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_mask_name(name: object, expected: str) -> None:
    assert mask_name(name) == expected  # type: ignore[arg-type]


def test_pseudonymise_keyed_and_deterministic() -> None:
    ids = pd.Series(["13812345678", "C001", "C001", None], index=[5, 6, 7, 8])
    a = pseudonymise(ids, key="k1")
    b = pseudonymise(ids, key=b"k1")
    c = pseudonymise(ids, key="k2")
    assert a.equals(b)
    assert a.index.equals(ids.index)
    assert (a.iloc[:3] != c.iloc[:3]).all()
    assert a.iloc[1] == a.iloc[2] and a.iloc[0] != a.iloc[1]
    assert pd.isna(a.iloc[3])
    assert a.iloc[:3].str.len().nunique() == 1
    assert all(v.startswith("p_") for v in a.iloc[:3])
    assert not any(raw in v for raw in ["13812345678", "C001"] for v in a.iloc[:3])
    assert pseudonymise([123], key="k").iloc[0] == pseudonymise(["123"], key="k").iloc[0]


def test_pseudonym_key_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKBENCH_PSEUDONYM_KEY", raising=False)
    assert pseudonym_key_source() == "random"
    r1 = pseudonymise(["x"]).iloc[0]
    assert r1 == pseudonymise(["x"]).iloc[0]  # stable within the process
    monkeypatch.setenv("WORKBENCH_PSEUDONYM_KEY", "secret")
    assert pseudonym_key_source() == "env"
    assert pseudonymise(["x"]).iloc[0] == pseudonymise(["x"], key="secret").iloc[0]
    assert pseudonym_key_source(b"k") == "argument"


def test_scrub_frame() -> None:
    df = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "name": ["张三", "John Smith"],
            "email": ["a@b.com", "x"],
            "comment": ["电话13812345678", "fine"],
            "amount": [1.5, 2.0],
        }
    )
    out = scrub_frame(df, key="k")
    assert list(out.columns) == ["customer_id", "comment", "amount"]
    assert out["customer_id"].str.startswith("p_").all()
    assert out["comment"].tolist() == ["电话[phone]", "fine"]
    assert df["comment"].iloc[0] == "电话13812345678"  # input untouched
    masked = scrub_frame(df, key="k", pii="mask")
    assert masked["name"].tolist() == ["张*", "J*** S****"]
    assert masked["email"].tolist() == ["[email]", "[redacted]"]
    assert_no_pii(out.to_dict(orient="records"))
    with pytest.raises(KeyError):
        scrub_frame(df, text_columns=("nope",), strict=True)


def test_assert_no_pii_nested_json() -> None:
    bad = {"report": {"rows": [{"note": "ok"}, {"note": "客户电话13812345678已回访"}]}}
    with pytest.raises(PIILeakError) as info:
        assert_no_pii(bad)
    msg = str(info.value)
    assert "13812345678" not in msg and "5678" not in msg
    assert "mobile" in msg and "[phone]" in msg
    assert info.value.findings[0].location.startswith("$.report.rows[1].note")


@pytest.mark.parametrize(
    "obj",
    [
        {"n": 13812345678},
        "<td>a@b.com</td>",
        ["身份证11010519491231002X"],
        "<p>4111 1111 1111 1111</p>",
    ],
)
def test_assert_no_pii_detects(obj: object) -> None:
    with pytest.raises(PIILeakError):
        assert_no_pii(obj)


def test_assert_no_pii_passes_clean_data() -> None:
    clean = {
        "customers": 2357,
        "revenue": 15234567890.5,
        "date": "2026-10-01",
        "amount": "1,299.00",
        "ids": ["p_013812345678", "p_a13812345678"],
        "div": "<div id='a1381234-5678-4bcd-8e9f-013812345678'></div>",
        "nested": [{"share": 0.13812345678}, None, True],
    }
    assert_no_pii(clean)
    assert_no_pii("support@example.com", allow=["support@example.com"])


# Mobile-like text anywhere, with CJK and separators around it.
_texts = st.lists(
    st.sampled_from(list("0123456789 -+.@abcX电话号码，。()") + ["138", "86", "\n", ".com"]),
    max_size=40,
).map("".join)
_MOBILE_CORE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


@settings(max_examples=300, deadline=None)
@given(_texts)
def test_mask_text_idempotent(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("请回电话abc ，")), max_size=10),
    st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    st.text(alphabet=st.sampled_from(list("请回电话abc ，")), max_size=10),
)
def test_no_mobile_survives(before: str, mobile: str, after: str) -> None:
    out = mask_text(before + mobile + after)
    assert mobile not in out
    assert not _MOBILE_CORE.search(out)
    assert not PII_PATTERNS["mobile"].search(out)


def test_assert_no_pii_passes_bundled_plotly_js() -> None:
    plotly = pytest.importorskip("plotly")
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not js.exists():
        pytest.skip("plotly.min.js not bundled")
    assert_no_pii(js.read_text(encoding="utf-8"))
