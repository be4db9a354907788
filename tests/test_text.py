"""Tests for workbench.text."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.text import (
    detect_lang,
    distinctive_terms,
    example_texts,
    make_analyzer,
    term_frequencies,
    themes,
    tokenize,
)


def test_jieba_segments_chinese() -> None:
    tokens = tokenize("送货太慢了，客服态度不好")
    assert "送货" in tokens and "客服" in tokens
    assert "了" not in tokens and "，" not in tokens


def test_stopwords_numbers_punctuation_removed() -> None:
    assert tokenize("The delivery was very slow, 3 days!") == ["delivery", "slow", "days"]
    assert tokenize("我们的快递非常慢") == ["快递", "慢"]
    assert tokenize("delivery slow", stopwords=["slow"]) == ["delivery"]
    assert tokenize(None) == [] and tokenize("   ") == []


def test_pii_never_becomes_a_token() -> None:
    for text in ["我的电话13812345678请回电", "call 138-1234-5678 or a@b.com"]:
        tokens = make_analyzer((1, 2))(text)
        assert not any(ch.isdigit() for t in tokens for ch in t)
        assert not any(t in {"phone", "email"} for t in tokens)


def test_bigrams_joined_by_language_and_not_across_punctuation() -> None:
    grams = make_analyzer((1, 2))("送货太慢了，客服态度不好")
    assert "送货太慢" in grams and "客服态度" in grams
    assert "太慢客服" not in grams
    grams_en = make_analyzer((2, 2))("customer service slow. delivery late")
    assert grams_en == ["customer service", "service slow", "delivery late"]


def test_detect_lang() -> None:
    assert detect_lang("送货太慢了") == "zh"
    assert detect_lang("APP很难用") == "zh"
    assert detect_lang("Delivery was slow") == "en"
    assert detect_lang("") == "en" and detect_lang(None) == "en"


def test_term_frequencies_hand_count() -> None:
    texts = pd.Series(
        [
            "delivery slow, delivery late",  # delivery x2
            "slow delivery",
            "great staff",
            "送货太慢",
            "送货很快，客服好",
            None,
        ]
    )
    groups = pd.Series(["en", "en", "en", "zh", "zh", "zh"])
    tf = term_frequencies(texts, groups, min_count=2)
    en = tf[tf["group"] == "en"].set_index("term")
    assert en.loc["delivery", "count"] == 3
    assert en.loc["delivery", "doc_count"] == 2
    assert en.loc["delivery", "share_of_docs"] == pytest.approx(2 / 3)
    assert en.loc["slow", "count"] == 2
    assert "great" not in en.index  # below min_count
    assert tf[tf["group"] == "en"]["term"].iloc[0] == "delivery"
    zh = tf[tf["group"] == "zh"].set_index("term")
    assert zh.index.tolist() == ["送货"]
    assert zh.loc["送货", "count"] == 2
    # share over the 2 non-empty zh texts; the None text is not a respondent
    assert zh.loc["送货", "share_of_docs"] == pytest.approx(1.0)
    assert list(tf.columns) == ["group", "term", "count", "doc_count", "share_of_docs"]


def test_term_frequencies_ungrouped_and_empty() -> None:
    tf = term_frequencies(["slow delivery", "slow"], min_count=1, top_n=1)
    assert tf.to_dict(orient="records") == [
        {"group": "all", "term": "slow", "count": 2, "doc_count": 2, "share_of_docs": 1.0}
    ]
    assert term_frequencies([None, "", "的"]).empty


def test_distinctive_terms_finds_planted_word() -> None:
    common = ["service ok price fair", "price fair staff ok", "staff friendly service ok"]
    a = [f"{t} refund" for t in common] * 3 + ["refund refund please"]
    b = [f"{t} delivery" for t in common] * 3
    texts = pd.Series(a + b)
    groups = pd.Series(["A"] * len(a) + ["B"] * len(b))
    dt = distinctive_terms(texts, groups, top_n=3)
    assert list(dt.columns) == ["group", "term", "count", "log_odds", "z"]
    top = dt.groupby("group").head(1).set_index("group")["term"]
    assert top["A"] == "refund" and top["B"] == "delivery"
    assert dt.loc[(dt["group"] == "A") & (dt["term"] == "refund"), "z"].iloc[0] > 1.96
    assert (dt["z"] > 0).all()
    assert distinctive_terms(texts, pd.Series(["A"] * len(texts))).empty


def test_groups_must_align() -> None:
    with pytest.raises(ValueError):
        term_frequencies(pd.Series(["a b"], index=[1]), pd.Series(["g"], index=[2]))


CORPUS = [
    "delivery slow, package late",
    "delivery late again",
    "slow delivery and late package",
    "staff rude, service bad",
    "service bad, staff rude",
    "rude staff",
    "送货太慢了",
    "送货很慢",
    None,
    "",
    "的了",
]


def test_themes_deterministic_and_counts_empty() -> None:
    r1 = themes(CORPUS, n_themes=3, seed=0)
    r2 = themes(CORPUS, n_themes=3, seed=0)
    assert r1.assignment.equals(r2.assignment)
    assert r1.terms.equals(r2.terms)
    assert r1.n_themes == 3
    assert r1.n_empty == 2 and r1.n_unusable == 1
    assert r1.sizes["n_docs"].sum() == len(CORPUS)
    assert r1.sizes["share_of_docs"].sum() == pytest.approx(1.0)
    assert set(r1.sizes["label"]) >= {"(no comment)", "(no usable words)"}
    assert r1.assignment.iloc[8:].isna().all()
    # the delivery texts share a theme, the staff texts another
    a = r1.assignment
    assert a.iloc[0] == a.iloc[1] == a.iloc[2]
    assert a.iloc[3] == a.iloc[4] == a.iloc[5] != a.iloc[0]
    assert r1.sizes["n_docs"].iloc[0] >= r1.sizes["n_docs"].iloc[1]  # numbered by size


def test_themes_tiny_inputs() -> None:
    one = themes(["送货太慢"], n_themes=5)
    assert one.n_themes == 1 and one.assignment.tolist() == [1]
    none = themes([None, ""], n_themes=5)
    assert none.n_themes == 0 and none.n_empty == 2 and none.terms.empty
    assert none.sizes["label"].tolist() == ["(no comment)"]
    empty = themes([], n_themes=5)
    assert empty.n_themes == 0 and empty.sizes.empty


def test_example_texts_masked_truncated() -> None:
    texts = pd.Series(
        ["请回电13812345678，送货太慢了" + "。" * 300, "送货太慢", "送货太慢", None, "staff rude"]
    )
    groups = pd.Series(["zh", "zh", "zh", "zh", "en"])
    ex = example_texts(texts, groups, n=3, max_chars=20)
    assert list(ex.columns) == ["group", "rank", "text", "position"]
    zh = ex[ex["group"] == "zh"]
    assert len(zh) == 2  # duplicate shown once, None never chosen
    assert all(len(t) <= 20 for t in ex["text"])
    assert not ex["text"].str.contains("13812345678").any()
    assert ex["text"].str.contains(r"\[phone\]").any()
    assert example_texts(texts, groups, method="random", seed=1).equals(
        example_texts(texts, groups, method="random", seed=1)
    )
