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


# ============================================================ themes that mean something
import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats as sstats  # noqa: E402
from statsmodels.stats.contingency_tables import Table2x2  # noqa: E402
from statsmodels.stats.multitest import multipletests  # noqa: E402

from workbench import text as T  # noqa: E402
from workbench.results import Figure, Result, Table  # noqa: E402

REVIEWS = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "olist" / "olist_order_reviews_dataset.csv"


def _corpus(seed: int = 1) -> tuple[pd.Series, pd.Series]:
    """40 low-rated comments, 14 of them "not delivered"; 40 high-rated ones, 22 praising quality;
    10 in each group about slow customer service."""
    rng = np.random.default_rng(seed)
    things = "parcel order box package shoes phone lamp desk book chair bag watch kettle mug".split()
    low = ([f"The {s} was not delivered" for s in things]
           + ["Refund took weeks and the box was damaged"] * 6 + ["Item broken on arrival"] * 10
           + [f"Customer service was slow to answer {w}" for w in ("today", "again", "twice", "monday", "now")] * 2)
    high = (["Great quality and fast shipping"] * 12 + ["Great quality, I recommend it"] * 10
            + [f"Arrived early, very happy {i}" for i in range(8)] + ["Customer service was slow to answer"] * 10)
    texts = pd.Series(low + high + ["", None], dtype=object)
    groups = pd.Series(["1–2"] * len(low) + ["4–5"] * len(high) + ["1–2", "4–5"], dtype=object)
    order = rng.permutation(len(texts))
    return texts.iloc[order].reset_index(drop=True), groups.iloc[order].reset_index(drop=True)


def _single_word_ok(phrase: str) -> bool:
    words = phrase.split(" ")
    every_stop = set().union(*T.STOPWORDS.values()) | set().union(*T.NEGATIONS.values())
    return not (len(words) == 1 and phrase in every_stop)


def test_phrases_keep_negations_inside_and_drop_stop_words() -> None:
    assert "not delivered" in T.phrases("The parcel was not delivered.", lang="en")
    pt = T.phrases("O produto não chegou no prazo", lang="pt")
    assert "não chegou" in pt and "chegou no prazo" in pt
    assert T.phrases("Ainda nao recebi", lang="pt") == ["não recebi", "recebi"]  # accent-less negation is one
    zh = T.phrases("快递一直没有收到")
    assert "没有收到" in zh and "没有" not in zh  # zh: jieba tokens joined without a space
    for lang, words in (("en", ("not", "no", "without", "the", "was")), ("pt", ("não", "sem", "de", "o", "no"))):
        for p in words:
            assert p not in T.phrases(f"{p} {p}", lang=lang), (lang, p)
    assert "never called" in T.phrases("They never called", lang="en")
    assert all(not p.endswith(" not") for p in T.phrases("Delivery not, really not", lang="en"))


def test_stopword_lists_are_package_files_and_keep_negations() -> None:
    assert (Path(T.__file__).parent / "stopwords" / "pt.txt").is_file()
    assert {"de", "o", "que", "para", "com", "uma"} <= T.STOPWORDS["pt"]
    assert {"the", "and", "was", "of"} <= T.STOPWORDS["en"] and {"的", "了", "是"} <= T.STOPWORDS["zh"]
    for lang in ("en", "pt", "zh"):
        assert not (T.STOPWORDS[lang] & T.NEGATIONS[lang]), lang
    assert "bill" not in T.STOPWORDS["en"]  # a content word in complaints, though scikit-learn lists it


def test_latin_language() -> None:
    assert T.latin_language(["O produto chegou", "não gostei", "Péssimo"]) == "pt"
    assert T.latin_language(["The parcel was late", "not good", "mail me at a@b.com"]) == "en"


def test_compare_themes_finds_planted_phrase_with_hand_counts() -> None:
    texts, groups = _corpus()
    r = T.compare_themes(texts, groups, by="rating")
    assert isinstance(r, Result) and r.comparisons == (("1–2", "4–5", ("4–5",)),)
    low = r.table[r.table["group"] == "1–2"].reset_index(drop=True)
    top = low.iloc[0]
    assert top["phrase"] == "not delivered" and top["significant"]
    assert "delivered" in top["merged"].split(", ")
    assert (top["docs"], top["n"], top["docs_reference"], top["n_reference"]) == (14, 40, 0, 40)  # hand counts
    assert top["share"] == pytest.approx(14 / 40) and top["share_reference"] == 0
    high = r.table[r.table["group"] == "4–5"]
    assert high.iloc[0]["phrase"] == "great quality" and high.iloc[0]["docs"] == 22
    assert "great" in high.iloc[0]["merged"].split(", ") and "quality" in high.iloc[0]["merged"].split(", ")
    # "customer service was slow" is said equally often in both groups: never distinctive
    assert not r.table.loc[r.table["phrase"].str.contains("service"), "significant"].any()
    assert r.groups.set_index("group").loc["1–2", ["texts", "empty", "comments"]].tolist() == [41, 1, 40]
    # stop words and negations are never a theme on their own
    assert all(_single_word_ok(p) for p in r.table["phrase"])
    assert all(_single_word_ok(p) for p in r.tested["phrase"])


def test_statistic_matches_an_independent_computation() -> None:
    texts, groups = _corpus()
    prior = 10.0
    r = T.compare_themes(texts, groups, prior=prior, min_df=3)
    tested = r.tested
    assert len(tested) == r.n_tested > 5
    for row in tested.itertuples():
        p0 = (row.docs + row.docs_reference) / (row.n + row.n_reference)
        a, b = prior * p0, prior * (1 - p0)
        tab = Table2x2(np.array([[row.docs + a, row.n - row.docs + b],
                                 [row.docs_reference + a, row.n_reference - row.docs_reference + b]]))
        assert row.log_odds == pytest.approx(tab.log_oddsratio, rel=1e-10)
        assert row.se == pytest.approx(tab.log_oddsratio_se, rel=1e-10)
        assert row.p == pytest.approx(2 * sstats.norm.sf(abs(tab.log_oddsratio / tab.log_oddsratio_se)), rel=1e-9)
    q = multipletests(tested["p"].to_numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(tested["q"].to_numpy(), q, rtol=1e-10)
    # listed rows: the same numbers as the tested ones (the reverse direction flips the sign)
    by_phrase = tested.set_index("phrase")
    for row in r.table.itertuples():
        t = by_phrase.loc[row.phrase]
        sign = 1 if row.group == t["group"] else -1
        assert (row.log_odds, row.z, row.q) == pytest.approx((sign * t["log_odds"], sign * t["z"], t["q"]))
        assert row.docs == (t["docs"] if sign == 1 else t["docs_reference"])
        assert row.odds_ratio == pytest.approx(np.exp(row.log_odds))
        assert row.ci_low == pytest.approx(np.exp(row.log_odds - 1.959963984540054 * row.se))
        assert row.significant == (row.q < 0.05) and row.z > 0


def test_min_df_keeps_rare_phrases_out() -> None:
    low = ["parcel lost somewhere"] * 4 + ["box arrived crushed"] * 30
    high = ["lovely gift wrapping"] * 34
    r = T.compare_themes(pd.Series(low + high), pd.Series(["a"] * 34 + ["b"] * 34), min_df=5)
    assert not r.table["phrase"].str.contains("parcel|lost").any()
    assert r.table[r.table["group"] == "a"].iloc[0]["phrase"] == "box arrived crushed"
    r3 = T.compare_themes(pd.Series(low + high), pd.Series(["a"] * 34 + ["b"] * 34), min_df=3)
    assert r3.table["phrase"].str.contains("parcel lost").any()


def test_no_difference_no_headline() -> None:
    rng = np.random.default_rng(0)
    pool = ["late delivery again", "good price", "friendly staff", "app keeps crashing"]
    texts = pd.Series(rng.choice(pool, 200))
    groups = pd.Series(rng.choice(["a", "b"], 200))
    r = T.compare_themes(texts, groups)
    assert not r.table["significant"].any()
    fs = r.findings("en")
    assert fs and not any(f.headline for f in fs)
    assert r.figures("en") == []


def test_zh_segmentation_yields_phrases() -> None:
    low = ["快递太慢了，一直没有收到货", "等了两周没有收到货，客服不回复", "没有收到货，要求退款"] * 8
    high = ["包装很好，质量不错", "质量不错，下次还会买", "物流很快，质量不错"] * 8
    r = T.compare_themes(pd.Series(low + high), pd.Series(["低分"] * 24 + ["高分"] * 24), by="group")
    assert r.language == "en"  # no Latin text: Chinese lists are used per text anyway
    low_phr = r.table.loc[r.table["group"] == "低分", "phrase"].tolist()
    assert "没有收到货" in low_phr or "没有收到" in low_phr
    assert "质量不错" in r.table.loc[r.table["group"] == "高分", "phrase"].tolist()
    assert all(_single_word_ok(p) for p in r.tested["phrase"])
    assert not any(p in T.STOPWORDS["zh"] or p in T.NEGATIONS["zh"] for p in r.tested["phrase"])
    text_zh = " ".join(f.text for f in r.findings("zh"))
    assert "没有收到" in text_zh and not re.search(r"comments|rated|more often", text_zh)


def test_quotes_are_masked() -> None:
    low = [f"Parcel not delivered, call me on 1381234{i:04d} or write to jane{i}@example.com" for i in range(12)]
    high = ["Lovely gift wrapping, thanks"] * 12
    r = T.compare_themes(pd.Series(low + high), pd.Series(["a"] * 12 + ["b"] * 12), by="category")
    quotes = [q for q in r.table["quote"] if isinstance(q, str)]
    assert quotes
    assert all("[phone]" in q and "[email]" in q for q in quotes if q.startswith("Parcel"))
    assert not any(re.search(r"\d{7}|@example", q) for q in quotes)
    blob = json.dumps(r.metrics(), ensure_ascii=False)
    assert "example.com" not in blob and "1381234" not in blob and "Parcel not delivered," not in blob


def test_quotes_withheld_when_names_cannot_be_masked() -> None:
    low = ["Não recebi o pedido até hoje"] * 10
    high = ["Ótima qualidade, chegou rápido"] * 10
    r = T.compare_themes(pd.Series(low + high), pd.Series(["1–2"] * 10 + ["4–5"] * 10), by="rating", lang="pt")
    assert r.table["quote"].isna().all() and r.withheld > 0
    assert any("not quoted" in n for n in r.notes("en"))


def test_theme_comparison_presents_itself(tmp_path: Path) -> None:
    texts, groups = _corpus()
    r = T.compare_themes(texts, groups, by="rating", key="open_answer_themes")
    fs = r.findings("en")
    head = [f for f in fs if f.headline]
    assert head and head[0].key == "open_answer_themes.1–2" and "not delivered" in head[0].text
    assert "comments rated 1–2" in head[0].text and "p =" not in head[0].text and "p =" in head[0].how
    assert head[0].n == 40 and head[0].null == 1.0 and head[0].interval[0] > 1
    figs = r.figures("en")
    assert len(figs) == 1 and isinstance(figs[0], Figure)
    bars = [tr for tr in figs[0].figure.data if tr.type == "bar"]
    assert bars and all(tr.orientation == "h" for tr in bars)
    tabs = r.tables("en")
    assert isinstance(tabs[0], Table) and not tabs[0].appendix and tabs[-1].appendix
    m = r.metrics()
    assert set(m) == {"open_answer_themes"}
    payload = json.loads(json.dumps(m))["open_answer_themes"]
    assert {"phrases", "groups", "tested", "min_df"} <= set(payload)
    assert "quote" not in payload["phrases"][0]
    assert payload["phrases"][0]["docs"] == 14
    from workbench.metrics import Recorder

    rec = Recorder(tmp_path / "m.json", "demo")  # the recorder accepts it (aggregates, no personal fields)
    for name, value in m.items():
        rec.metric(name, value)
    assert "not delivered" in r.summary() and r.title("zh") == "评论在说什么"
    zh = r.findings("zh")
    assert all(not re.search(r"\b(comments|rated|For example)\b", f.text) for f in zh)


def test_one_group_against_the_rest_and_errors() -> None:
    texts = pd.Series(["late parcel again"] * 20 + ["rude staff member"] * 20 + ["app crashed today"] * 20)
    cats = pd.Series(["Delivery"] * 20 + ["Staff"] * 20 + ["App"] * 20)
    r = T.compare_themes(texts, cats, focus="Delivery", by="category")
    assert set(r.table["group"]) == {"Delivery"} and (r.table["reference"] == "(all others)").all()
    assert r.table.iloc[0]["phrase"] == "late parcel" and r.table.iloc[0]["n_reference"] == 40
    every = T.compare_themes(texts, cats)
    assert len(every.comparisons) == 3
    alone = T.compare_themes(texts, pd.Series(["Delivery"] * 60))
    assert alone.comparisons == () and alone.table.empty and any("nothing to compare" in n for n in alone.notes())
    with pytest.raises(ValueError, match="not among the groups"):
        T.compare_themes(texts, cats, focus="Billing")


def test_rating_groups() -> None:
    g = T.rating_groups(pd.Series([1, 2, 3, 4, 5, None]))
    assert g.tolist()[:5] == ["1–2", "1–2", "3", "4–5", "4–5"] and pd.isna(g.iloc[5])
    assert (g.attrs["low"], g.attrs["high"]) == ("1–2", "4–5")
    g10 = T.rating_groups(pd.Series([0, 4, 5, 6, 10]), scale=(0, 10))
    assert g10.tolist() == ["0–4", "0–4", "5", "6–10", "6–10"]


@pytest.mark.skipif(not REVIEWS.is_file(), reason="../shared/realdata is absent")
def test_portuguese_reviews_stop_words_removed() -> None:
    df = pd.read_csv(REVIEWS)
    grp = T.rating_groups(df["review_score"])
    r = T.compare_themes(df["review_comment_message"], grp, focus="1–2", against="4–5", by="rating")
    assert r.language == "pt"
    assert not set(r.tested["phrase"]) & (T.STOPWORDS["pt"] | T.NEGATIONS["pt"])
    for p in r.tested["phrase"]:
        words = p.split(" ")
        assert words[0] not in T.STOPWORDS["pt"] and words[-1] not in T.STOPWORDS["pt"] | T.NEGATIONS["pt"], p
    low = r.table[r.table["group"] == "1–2"]
    assert low.iloc[0]["phrase"] == "não recebi" and low.iloc[0]["significant"]
    # the count, a second way: 1-2 comments where "não"/"nao" is followed by "recebi" on the same line,
    # perhaps with a one-letter word between ("não o recebi": single letters are no tokens)
    msg = df["review_comment_message"].fillna("").str.lower()
    hit = msg.str.contains(r"\bn[ãa]o[ \t]+(?:[^\W\d_][ \t]+)?recebi\b", regex=True)
    has_text = msg.str.strip() != ""
    assert low.iloc[0]["docs"] == int((hit & (grp == "1–2")).sum())
    assert low.iloc[0]["n"] == int((has_text & (grp == "1–2")).sum())
    high = r.table[r.table["group"] == "4–5"]
    assert "antes do prazo" in high["phrase"].tolist()


def test_renders_in_a_report_with_the_term_table_in_the_appendix(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench import results, viz

    monkeypatch.setenv("WORKBENCH_REPORT", "1")
    shown: list[str] = []
    monkeypatch.setattr(viz, "_display", lambda obj: shown.append(getattr(obj, "data", str(obj))))
    texts = pd.Series(["parcel not delivered"] * 40 + ["great quality"] * 40 + ["ok"] * 5)
    scores = pd.Series([1.0] * 40 + [5.0] * 40 + [None] * 5)  # float ratings: labels "1" and "5"
    r = T.compare_themes(texts, scores, by="rating")
    assert r.comparisons == (("1", "5", ("5",)),) and r.n_no_group == 5
    recorded = results.render(r, "en")
    assert [(f.key, f.headline) for f in recorded] == [("text_themes.1", True), ("text_themes.5", True)]
    page = "".join(shown)
    assert "comments rated 1" in page and "wb-appendix" in page and "wb-figure" in page
    assert any("5 comments without a group" in s for s in shown)


def test_phrases_of_one_sentence_are_one_theme() -> None:
    a = ["The courier left my parcel outside and it got wet"] * 30 + ["Charged twice for one order"] * 20
    b = ["Lovely gift wrapping"] * 25 + ["Charged twice for one order"] * 25
    r = T.compare_themes(pd.Series(a + b), pd.Series(["Delivery"] * 50 + ["Other"] * 50), focus="Delivery",
                         by="category")
    rows = r.table[r.table["significant"]]
    assert len(rows) == 1  # every phrase of the courier sentence sits in the same 30 comments
    folded = set(rows.iloc[0]["merged"].split(", "))
    assert {"parcel outside", "courier left", "wet"} <= folded | {rows.iloc[0]["phrase"]}
    assert rows.iloc[0]["docs"] == 30 and rows.iloc[0]["n"] == 50
    assert not r.table["phrase"].str.contains("charged").any()  # as frequent in both groups: no z > 0 theme


def test_quotes_prefer_plain_text_over_redactions() -> None:
    a = (["XXXX XXXX at XXXX said my card was charged twice on XXXX"] * 10
         + ["My card was charged twice for one order"] * 5)
    b = ["Lovely gift wrapping"] * 15
    r = T.compare_themes(pd.Series(a + b), pd.Series(["x"] * 15 + ["y"] * 15), focus="x", min_df=5)
    top = r.table.iloc[0]
    assert "charged" in top["phrase"] and top["quote"] == "My card was charged twice for one order"
