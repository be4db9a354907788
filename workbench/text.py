"""Text mining helpers for open survey answers and complaint verbatims.

Used by the satisfaction analysis ("what would it take for us to earn a 5?",
"name one thing we could improve") and by complaint monitoring (投诉).
Works on Chinese, English and mixed text.

Pipeline per text
-----------------
1. Personal data is masked first (:func:`workbench.privacy.mask_text`), so no
   token or n-gram can ever contain a phone number, email or card number.
   Likely person names break clauses too (English: titles, cues and runs of
   capitalised words; Chinese: jieba's person tags and unknown surname-led
   words, :func:`workbench.privacy.zh_name_token`), so names do not become
   terms. Example texts (:func:`example_texts`) are masked fully with
   :func:`workbench.privacy.quote_text` (jieba's part-of-speech tagger) and
   texts in other languages are never quoted.
2. Texts containing CJK characters are segmented with jieba (``jieba.lcut``,
   dictionary loaded once, quietly; its cache goes to the temp dir and
   nothing is downloaded); other texts are split into words by a regex.
3. Tokens are lowercased; numbers, punctuation, single Latin letters and
   stopwords (:data:`EN_STOPWORDS`, :data:`ZH_STOPWORDS`, plus user
   stopwords) are dropped. Negations (not, no, 不, 没) are deliberately kept:
   "not working" / "不好" matter in complaints.
4. N-grams are built *within* a clause: punctuation and masked personal data
   break the sequence, so "太慢，客服" never yields the bigram 太慢客服.
   Two Chinese tokens are joined without a space (送货太慢), anything else
   with one (``"customer service"``).

Empty or missing texts are never dropped silently: the functions report how
many there were (``n_empty``) or leave them out of denominators explicitly.

Themes for manager pages
------------------------
:func:`compare_themes` returns a :class:`ThemeComparison` result (``nb.show``-able): phrases rather
than single stop words (:data:`STOPWORDS` for en, pt and zh, with :data:`NEGATIONS` kept inside
phrases: "not delivered", "não chegou", "没有收到"), distinctive between groups of comments (a
rating band, a complaint category) by a log odds ratio with an informative prior, BH-corrected,
each theme with one masked quote. :func:`phrases` shows the candidates of one text and
:func:`rating_groups` turns ratings into bands.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from workbench.i18n import fmt_int, fmt_num, fmt_p, fmt_pct, t
from workbench.i18n import has as has_text
from workbench.privacy import (
    DEFAULT_TOKENS,
    mask_person_names,
    mask_text,
    quote_text,
    zh_name_token,
)
from workbench.results import Figure, Finding, Result, Table

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # jieba's pkg_resources/regex DeprecationWarnings
    import jieba

__all__ = [
    "EN_STOPWORDS",
    "NEGATIONS",
    "STOPWORDS",
    "ThemeComparison",
    "compare_themes",
    "latin_language",
    "phrases",
    "rating_groups",
    "ZH_STOPWORDS",
    "ThemeResult",
    "detect_lang",
    "distinctive_terms",
    "example_texts",
    "make_analyzer",
    "term_frequencies",
    "themes",
    "tokenize",
]

#: Small English stopword list. Negations are kept on purpose.
EN_STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i i'm
    i've if in into is it it's its itself just let's me more most my myself of off on
    once only or other our ours ourselves out over own same she should so some such than
    that that's the their theirs them themselves then there there's these they they're
    this those through to too under until up us very was we we're were what when where
    which while who whom why will with would you you're your yours yourself yourselves
    get got really also etc one would could us ve ll re s t d m
    """.split()
)

#: Chinese stopword list: particles, pronouns, conjunctions, degree adverbs.
#: Negations (不, 没, 别) are kept on purpose; 没有 is a stopword as briefed.
ZH_STOPWORDS: frozenset[str] = frozenset(
    """
    的 了 是 我 你 他 她 它 在 和 也 就 都 而 及 与 着 或 一个 没有 我们 你们 他们 她们
    它们 这个 那个 这 那 这些 那些 这样 那样 非常 很 太 挺 特别 比较 有点 有些 还 又 再
    吧 吗 呢 啊 呀 哦 嗯 哈 啦 嘛 么 之 其 把 被 让 给 对 向 从 到 为 为了 以 以及 因为
    所以 但是 但 可是 而且 并且 如果 虽然 然后 还是 就是 只是 还有 已经 一下 一些 一点
    有 会 能 要 想 可以 应该 自己 什么 怎么 怎么样 为什么 哪 哪里 这里 那里 时候 现在
    真的 真 得 地 过 等 等等 上 下 中 里 个 次 些 说 去 来 做 人 大家 您 咱们 请 谢谢
    """.split()
)

_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_LATIN_CHAR = re.compile(r"[A-Za-z\u00c0-\u024f]")
_EN_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W\d_]+)*|[^\w\s]", re.UNICODE)
_BREAK = "\n"  # masked personal data becomes a clause break
_MASK_TOKENS = {kind: f" {_BREAK} " for kind in DEFAULT_TOKENS}

_jieba_lock = threading.Lock()
_jieba_ready = False


def _ensure_jieba() -> None:
    """Load jieba's dictionary once, without logging to stderr."""
    global _jieba_ready
    if _jieba_ready:
        return
    with _jieba_lock:
        if not _jieba_ready:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba_ready = True


def _is_cjk(token: str) -> bool:
    return bool(_CJK_CHAR.search(token))


def _is_break(token: str) -> bool:
    if _BREAK in token:
        return True
    return all(unicodedata.category(ch)[0] in "PS" for ch in token)


def _clean(text: Any) -> str:
    if text is None or text is pd.NA:
        return ""
    if isinstance(text, float) and np.isnan(text):
        return ""
    return str(text)


def detect_lang(text: str | None, threshold: float = 0.2) -> Literal["zh", "en"]:
    """Guess the language of a text by its share of CJK characters.

    Parameters
    ----------
    text : str or None
        Any text.
    threshold : float, default 0.2
        Minimum share of CJK characters among letters (CJK + Latin) for
        ``"zh"``. A Chinese character carries about as much as a short
        English word, so a low threshold suits mixed text ("APP很难用").

    Returns
    -------
    {"zh", "en"}
        ``"en"`` for empty text or text without letters.
    """
    s = _clean(text)
    cjk = len(_CJK_CHAR.findall(s))
    if cjk == 0:
        return "en"
    latin = len(_LATIN_CHAR.findall(s))
    return "zh" if cjk / (cjk + latin) >= threshold else "en"


def _stopword_set(stopwords: Iterable[str] | None) -> frozenset[str]:
    extra = frozenset(w.lower() for w in stopwords) if stopwords else frozenset()
    return EN_STOPWORDS | ZH_STOPWORDS | extra


_CAPS_PAIR = re.compile(r"[A-Z][a-z]+[\s.]+[A-Z][a-z]|\b(?i:my name|i am|i'm|agent|signed)\b")


def _en_names_as_breaks(s: str) -> str:
    if _CJK_CHAR.search(s):
        # the English rule only; Chinese names are found per token below
        return "".join(mask_person_names(part, token=f" {_BREAK} ") if not _CJK_CHAR.search(part) else part
                       for part in re.split(f"({_CJK_CHAR.pattern}+)", s))
    return mask_person_names(s, token=f" {_BREAK} ")


def _clauses(text: Any, stop: frozenset[str]) -> list[list[str]]:
    """Tokens of ``text`` grouped by clause, after masking and filtering."""
    s = _clean(text)
    if not s.strip():
        return []
    s = mask_text(s, tokens=_MASK_TOKENS)
    if _CAPS_PAIR.search(s):  # English person names never become terms (cheap rule, no tagger)
        s = _en_names_as_breaks(s)
    if _CJK_CHAR.search(s):
        _ensure_jieba()
        # likely Chinese person names (jieba's dictionary tag, unknown surname-led words) break
        raw = [_BREAK if zh_name_token(tok) else tok for tok in jieba.lcut(s)]
    else:
        raw = _EN_TOKEN.findall(s.replace(_BREAK, " . "))
    clauses: list[list[str]] = []
    current: list[str] = []
    for tok in raw:
        t = tok.strip().lower().replace("’", "'")
        if not t:
            if _BREAK in tok and current:
                clauses.append(current)
                current = []
            continue
        if _is_break(t):
            if current:
                clauses.append(current)
                current = []
            continue
        if not any(ch.isalpha() for ch in t):
            continue  # numbers
        if len(t) == 1 and not _is_cjk(t):
            continue  # single Latin letters
        if t in stop:
            continue
        current.append(t)
    if current:
        clauses.append(current)
    return clauses


def tokenize(text: str | None, stopwords: Iterable[str] | None = None) -> list[str]:
    """Split a text into content words (unigrams).

    Parameters
    ----------
    text : str or None
        Chinese, English or mixed text; ``None``/NaN/empty give ``[]``.
    stopwords : iterable of str, optional
        Extra stopwords, added to :data:`EN_STOPWORDS` and
        :data:`ZH_STOPWORDS`.

    Returns
    -------
    list of str
        Lowercased tokens; personal data masked away before tokenising.

    Examples
    --------
    >>> tokenize("送货太慢了，客服态度不好")
    ['送货', '太慢', '客服', '态度', '不好']
    """
    return [t for clause in _clauses(text, _stopword_set(stopwords)) for t in clause]


def _join(tokens: Sequence[str]) -> str:
    out = tokens[0]
    for prev, tok in zip(tokens, tokens[1:], strict=False):
        out += tok if (_is_cjk(prev[-1]) and _is_cjk(tok[0])) else " " + tok
    return out


def make_analyzer(
    ngram_range: tuple[int, int] = (1, 2), stopwords: Iterable[str] | None = None
) -> Callable[[str], list[str]]:
    """Build an ``analyzer`` callable for scikit-learn vectorizers.

    Parameters
    ----------
    ngram_range : (int, int), default (1, 2)
        Min and max n-gram length. N-grams never cross punctuation.
    stopwords : iterable of str, optional
        Extra stopwords.

    Returns
    -------
    callable
        ``analyzer(text) -> list[str]`` of n-grams; Chinese n-grams joined
        without spaces, others with one.
    """
    lo, hi = ngram_range
    if not 1 <= lo <= hi:
        raise ValueError("ngram_range must satisfy 1 <= min <= max")
    stop = _stopword_set(stopwords)

    def analyzer(text: str) -> list[str]:
        grams: list[str] = []
        for clause in _clauses(text, stop):
            for n in range(lo, hi + 1):
                for i in range(len(clause) - n + 1):
                    grams.append(clause[i] if n == 1 else _join(clause[i : i + n]))
        return grams

    return analyzer


def _as_series(texts: pd.Series | Iterable[Any]) -> pd.Series:
    if isinstance(texts, pd.Series):
        return texts
    return pd.Series(list(texts), dtype=object)


def _align_groups(texts: pd.Series, groups: pd.Series | Iterable[Any] | None) -> pd.Series:
    if groups is None:
        return pd.Series("all", index=texts.index, dtype=object)
    if not isinstance(groups, pd.Series):
        groups = list(groups)
        if len(groups) != len(texts):
            raise ValueError("texts and groups must have the same length")
        return pd.Series(groups, index=texts.index, dtype=object)
    if not groups.index.equals(texts.index):
        raise ValueError("texts and groups must share the same index")
    return groups


def _doc_term(
    texts: pd.Series, analyzer: Callable[[str], list[str]], tfidf: bool = False
) -> tuple[Any, np.ndarray] | None:
    """Document-term matrix and vocabulary; ``None`` if no document has a token."""
    docs = [_clean(t) for t in texts.to_numpy(dtype=object, na_value=None)]
    cls = TfidfVectorizer if tfidf else CountVectorizer
    vec = cls(analyzer=analyzer, lowercase=False)
    try:
        x = vec.fit_transform(docs)
    except ValueError:  # empty vocabulary
        return None
    return x.tocsr(), vec.get_feature_names_out()


def _group_codes(groups: pd.Series) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(groups, sort=True, use_na_sentinel=True)
    return codes, pd.Index(uniques)


def _empty_mask(texts: pd.Series) -> np.ndarray:
    return np.array([not _clean(t).strip() for t in texts.to_numpy(dtype=object, na_value=None)])


def term_frequencies(
    texts: pd.Series | Iterable[Any],
    groups: pd.Series | Iterable[Any] | None = None,
    top_n: int = 20,
    ngram_range: tuple[int, int] = (1, 2),
    min_count: int = 2,
    stopwords: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Most frequent terms (unigrams and bigrams) per group.

    Parameters
    ----------
    texts : pandas.Series or iterable
        Free texts; missing/empty allowed.
    groups : pandas.Series or iterable, optional
        Group label per text (same index as ``texts`` if a Series). Texts
        with a missing group are left out. ``None``: one group ``"all"``.
    top_n : int, default 20
        Terms kept per group.
    ngram_range : (int, int), default (1, 2)
        N-gram lengths.
    min_count : int, default 2
        Minimum occurrences within the group.
    stopwords : iterable of str, optional
        Extra stopwords.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, term, count, doc_count, share_of_docs``; sorted by
        group, then count and doc_count descending, then term. ``count`` is
        total occurrences, ``doc_count`` the number of texts containing the
        term, ``share_of_docs`` = doc_count / number of *non-empty* texts in
        the group (respondents who wrote something).
    """
    texts = _as_series(texts)
    grp = _align_groups(texts, groups)
    cols = ["group", "term", "count", "doc_count", "share_of_docs"]
    dt = _doc_term(texts, make_analyzer(ngram_range, stopwords))
    if dt is None:
        return _empty_frame(cols)
    x, vocab = dt
    codes, labels = _group_codes(grp)
    nonempty = ~_empty_mask(texts)
    frames = []
    for g, label in enumerate(labels):
        rows = np.flatnonzero(codes == g)
        sub = x[rows]
        count = np.asarray(sub.sum(axis=0)).ravel()
        docs = np.asarray((sub > 0).sum(axis=0)).ravel()
        n_docs = int(nonempty[rows].sum())
        keep = np.flatnonzero(count >= max(min_count, 1))
        if keep.size == 0:
            continue
        part = pd.DataFrame(
            {
                "group": label,
                "term": vocab[keep],
                "count": count[keep].astype("int64"),
                "doc_count": docs[keep].astype("int64"),
                "share_of_docs": docs[keep] / n_docs if n_docs else np.nan,
            }
        )
        part = part.sort_values(
            ["count", "doc_count", "term"], ascending=[False, False, True], kind="stable"
        ).head(top_n)
        frames.append(part)
    if not frames:
        return _empty_frame(cols)
    return pd.concat(frames, ignore_index=True)[cols]


def _empty_frame(cols: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def distinctive_terms(
    texts: pd.Series | Iterable[Any],
    groups: pd.Series | Iterable[Any],
    top_n: int = 10,
    ngram_range: tuple[int, int] = (1, 1),
    min_count: int = 2,
    prior_strength: float | None = None,
    stopwords: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Terms over-represented in each group compared with all other groups.

    Log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi &
    Quinn 2008, "Fightin' words", eq. 22 and 24): for term *w*, group *i*
    and the rest *j*, with prior pseudo-counts ``a_w = a0 * p_w`` (``p_w``
    the term's share of the whole corpus)::

        delta_w = log((y_wi + a_w) / (n_i + a0 - y_wi - a_w))
                - log((y_wj + a_w) / (n_j + a0 - y_wj - a_w))
        var_w   ~ 1 / (y_wi + a_w) + 1 / (y_wj + a_w)
        z_w     = delta_w / sqrt(var_w)

    Parameters
    ----------
    texts, groups : pandas.Series or iterable
        As in :func:`term_frequencies`; at least two groups are needed
        (with one group there is no "rest" and the result is empty).
    top_n : int, default 10
        Terms kept per group (only those with ``z > 0``).
    ngram_range : (int, int), default (1, 1)
        Unigrams by default (the multinomial model assumes tokens do not
        overlap).
    min_count : int, default 2
        Minimum occurrences within the group.
    prior_strength : float, optional
        ``a0``; default the corpus size in tokens (the whole corpus is the
        prior, as in Monroe et al.). Smaller values shrink less.
    stopwords : iterable of str, optional
        Extra stopwords.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, term, count, log_odds, z``, per group sorted by
        ``z`` descending. ``|z| > 1.96`` is the usual "clearly distinctive"
        reading.
    """
    texts = _as_series(texts)
    grp = _align_groups(texts, groups)
    cols = ["group", "term", "count", "log_odds", "z"]
    dt = _doc_term(texts, make_analyzer(ngram_range, stopwords))
    if dt is None:
        return _empty_frame(cols)
    x, vocab = dt
    codes, labels = _group_codes(grp)
    valid = codes >= 0
    if len(labels) < 2:
        return _empty_frame(cols)
    per_group = np.vstack(
        [np.asarray(x[np.flatnonzero(codes == g)].sum(axis=0)).ravel() for g in range(len(labels))]
    ).astype(float)
    total = np.asarray(x[np.flatnonzero(valid)].sum(axis=0)).ravel().astype(float)
    n_total = total.sum()
    a0 = float(prior_strength) if prior_strength is not None else n_total
    alpha = a0 * total / n_total
    frames = []
    for g, label in enumerate(labels):
        yi = per_group[g]
        yj = total - yi
        ni, nj = yi.sum(), yj.sum()
        if ni == 0 or nj == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.log((yi + alpha) / (ni + a0 - yi - alpha)) - np.log(
                (yj + alpha) / (nj + a0 - yj - alpha)
            )
            z = delta / np.sqrt(1.0 / (yi + alpha) + 1.0 / (yj + alpha))
        keep = np.flatnonzero((yi >= max(min_count, 1)) & np.isfinite(z) & (z > 0))
        if keep.size == 0:
            continue
        part = pd.DataFrame(
            {
                "group": label,
                "term": vocab[keep],
                "count": yi[keep].astype("int64"),
                "log_odds": delta[keep],
                "z": z[keep],
            }
        )
        part = part.sort_values(["z", "term"], ascending=[False, True], kind="stable")
        frames.append(part.head(top_n))
    if not frames:
        return _empty_frame(cols)
    return pd.concat(frames, ignore_index=True)[cols]


@dataclass(frozen=True, eq=False)
class ThemeResult:
    """Themes found by :func:`themes`.

    Attributes
    ----------
    terms : pandas.DataFrame
        ``theme, rank, term, weight``: top terms per theme (rank 1 = highest
        NMF weight).
    assignment : pandas.Series
        Theme number per input text (``Int64``, same index as the input);
        ``<NA>`` for empty texts and texts with no usable words.
    sizes : pandas.DataFrame
        ``theme, label, n_docs, share_of_docs`` with one row per theme
        (label = its top three terms joined by " / ") plus, when present,
        rows with ``theme`` ``<NA>`` labelled ``"(no comment)"`` (empty
        texts) and ``"(no usable words)"`` (only stopwords/numbers/masked
        data). ``share_of_docs`` is over *all* input texts, so shares sum to 1.
    n_empty : int
        Empty or missing texts ("no comment").
    n_unusable : int
        Non-empty texts without any token.
    n_themes : int
        Themes actually fitted (may be fewer than asked for).
    """

    terms: pd.DataFrame
    assignment: pd.Series
    sizes: pd.DataFrame
    n_empty: int
    n_unusable: int
    n_themes: int


def themes(
    texts: pd.Series | Iterable[Any],
    n_themes: int = 5,
    seed: int = 0,
    top_terms: int = 8,
    ngram_range: tuple[int, int] = (1, 2),
    stopwords: Iterable[str] | None = None,
) -> ThemeResult:
    """Group texts into themes with NMF on TF-IDF.

    Parameters
    ----------
    texts : pandas.Series or iterable
        Free texts; missing/empty texts are counted, not dropped.
    n_themes : int, default 5
        Themes wanted; fewer are fitted when there are fewer usable texts
        or distinct terms.
    seed : int, default 0
        ``random_state`` for NMF (init ``"nndsvda"`` is deterministic too).
    top_terms : int, default 8
        Terms listed per theme.
    ngram_range : (int, int), default (1, 2)
        N-gram lengths.
    stopwords : iterable of str, optional
        Extra stopwords.

    Returns
    -------
    ThemeResult
        Themes are numbered from 1 by decreasing size (ties: first top term),
        so numbering is stable for the same input.
    """
    texts = _as_series(texts)
    n = len(texts)
    empty = _empty_mask(texts) if n else np.zeros(0, dtype=bool)
    n_empty = int(empty.sum())
    assignment = pd.Series(pd.array([pd.NA] * n, dtype="Int64"), index=texts.index)
    dt = _doc_term(texts, make_analyzer(ngram_range, stopwords), tfidf=True) if n else None
    k = 0
    terms_rows: list[dict[str, Any]] = []
    theme_sizes: list[tuple[int, str, int]] = []
    if dt is not None:
        x, vocab = dt
        usable = np.asarray(x.getnnz(axis=1) > 0)
        k = int(min(n_themes, usable.sum(), x.shape[1]))
    if k > 0:
        xu = x[np.flatnonzero(usable)]
        model = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            w = model.fit_transform(xu)
        h = model.components_
        raw_assign = np.where(w.max(axis=1) > 0, w.argmax(axis=1), -1)
        top_idx = [np.argsort(-h[t], kind="stable")[:top_terms] for t in range(k)]
        top_idx = [[i for i in idx if h[t, i] > 0] for t, idx in enumerate(top_idx)]
        counts = np.bincount(raw_assign[raw_assign >= 0], minlength=k)
        first_term = [vocab[idx[0]] if idx else "" for idx in top_idx]
        order = sorted(range(k), key=lambda t: (-counts[t], first_term[t]))
        renumber = {old: new + 1 for new, old in enumerate(order)}
        full = np.full(n, -1)
        full[np.flatnonzero(usable)] = [renumber.get(a, -1) for a in raw_assign]
        assignment = pd.Series(
            pd.array([v if v > 0 else pd.NA for v in full], dtype="Int64"), index=texts.index
        )
        for old in order:
            label = " / ".join(vocab[i] for i in top_idx[old][:3])
            theme_sizes.append((renumber[old], label, int(counts[old])))
            for rank, i in enumerate(top_idx[old], start=1):
                terms_rows.append(
                    {"theme": renumber[old], "rank": rank, "term": vocab[i], "weight": h[old, i]}
                )
    n_unusable = int(n - n_empty - assignment.notna().sum())
    size_rows = [{"theme": t, "label": lab, "n_docs": c} for t, lab, c in theme_sizes]
    if n_empty:
        size_rows.append({"theme": pd.NA, "label": "(no comment)", "n_docs": n_empty})
    if n_unusable:
        size_rows.append({"theme": pd.NA, "label": "(no usable words)", "n_docs": n_unusable})
    sizes = pd.DataFrame(size_rows, columns=["theme", "label", "n_docs"])
    sizes = sizes.astype({"theme": "Int64", "n_docs": "int64"})
    sizes = sizes.assign(share_of_docs=sizes["n_docs"] / n if n else np.nan)
    terms = pd.DataFrame(terms_rows, columns=["theme", "rank", "term", "weight"]).astype(
        {"theme": "int64", "rank": "int64", "weight": "float64"}
    )
    return ThemeResult(
        terms=terms,
        assignment=assignment,
        sizes=sizes,
        n_empty=n_empty,
        n_unusable=n_unusable,
        n_themes=k,
    )


def _truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max(max_chars - 1, 0)].rstrip() + "…"


def example_texts(
    texts: pd.Series | Iterable[Any],
    groups: pd.Series | Iterable[Any] | None = None,
    n: int = 3,
    seed: int = 0,
    max_chars: int = 200,
    method: Literal["central", "random"] = "central",
) -> pd.DataFrame:
    """Representative example texts per group, PII- and name-masked and truncated.

    Parameters
    ----------
    texts, groups
        As in :func:`term_frequencies`.
    n : int, default 3
        Examples per group.
    seed : int, default 0
        Seed for ``method="random"`` and for breaking ties.
    max_chars : int, default 200
        Longer texts are cut and end with "…". Masking happens *before*
        truncation so that a cut can never leave a partial phone number.
    method : {"central", "random"}
        ``"central"``: texts closest (cosine on TF-IDF) to the group's
        centroid, i.e. typical of the group; ``"random"``: a seeded sample.
        Empty texts are never chosen; duplicates are shown once.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, rank, text, position`` (``position`` = 0-based row
        position in the input, not the index, which may hold ids). Texts are
        masked (:func:`workbench.privacy.quote_text`: personal data and person
        names) but **not** HTML-escaped: escape at display time
        (:func:`workbench.privacy.escape_html`). Texts whose names cannot be
        masked reliably (not Chinese or English) are never chosen; their count
        is in ``attrs["withheld"]`` (read such texts in the analyst notebook).
    """
    texts = _as_series(texts)
    grp = _align_groups(texts, groups)
    cols = ["group", "rank", "text", "position"]
    clean = [_clean(t) for t in texts.to_numpy(dtype=object, na_value=None)]
    masked = [mask_text(t).strip() for t in clean]
    codes, labels = _group_codes(grp)
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(len(clean))
    scores = np.zeros(len(clean))
    if method == "central":
        dt = _doc_term(texts, make_analyzer((1, 1)), tfidf=True)
        if dt is not None:
            x = dt[0]
            for g in range(len(labels)):
                rows = np.flatnonzero(codes == g)
                centroid = np.asarray(x[rows].mean(axis=0)).ravel()
                norm = np.linalg.norm(centroid)
                if norm > 0:
                    scores[rows] = x[rows] @ (centroid / norm)  # rows are L2-normalised
    elif method != "random":
        raise ValueError("method must be 'central' or 'random'")
    out: list[dict[str, Any]] = []
    withheld = 0
    for g, label in enumerate(labels):
        rows = [int(i) for i in np.flatnonzero(codes == g) if masked[i]]
        rows.sort(key=lambda i: (-scores[i], tiebreak[i]))
        seen: set[str] = set()
        rank = 0
        for i in rows:
            # names are masked only for texts about to be shown (the tagger is slow)
            quoted = quote_text(masked[i])
            if quoted is None:
                withheld += 1
                continue
            if quoted in seen:
                continue
            seen.add(quoted)
            rank += 1
            out.append(
                {
                    "group": label,
                    "rank": rank,
                    "text": _truncate(quoted, max_chars),
                    "position": i,
                }
            )
            if rank >= n:
                break
    frame = pd.DataFrame(out, columns=cols) if out else _empty_frame(cols)
    frame.attrs["withheld"] = withheld
    return frame


# =====================================================================================
# Themes that mean something: phrases, stop words per language, a comparison of groups
# =====================================================================================
STOPWORDS_DIR = Path(__file__).with_name("stopwords")

#: Words from scikit-learn's English list that carry meaning in customer text ("bill",
#: "call back", "system", "empty box"); they are *not* treated as stop words.
_EN_CONTENT = frozenset(
    """back bill bottom call cry describe detail due empty fill find fire found front full interest
    keep last made mill move name part serious show side sincere system thick thin top amount""".split()
)

#: Negations per language: never a theme on their own, never stop words either; they may open a
#: phrase ("not delivered", "não chegou", "没有收到") so the sentiment stays in the theme.
NEGATIONS: dict[str, frozenset[str]] = {
    "en": frozenset(
        """not no never without nor cannot can't cant won't wont don't dont doesn't doesnt didn't didnt
        isn't isnt wasn't wasnt aren't weren't haven't havent hasn't hasnt hadn't couldn't couldnt
        wouldn't shouldn't nothing none nobody noone neither""".split()
    ),
    "pt": frozenset("não nao nem nunca sem nada nenhum nenhuma nenhuns ninguém ninguem jamais".split()),
    "zh": frozenset("不 没 没有 未 无 别 不是 不能 不会 不要 从不 从没 并不 并没有 毫无 不用".split()),
}


#: Accent-less or apostrophe-less spellings of negations, read as the usual spelling so that
#: "nao recebi" and "não recebi" are one phrase.
_CANONICAL = {"nao": "não", "ninguem": "ninguém", "dont": "don't", "didnt": "didn't", "doesnt": "doesn't",
              "cant": "can't", "isnt": "isn't", "wasnt": "wasn't", "havent": "haven't", "hasnt": "hasn't",
              "couldnt": "couldn't", "wouldnt": "wouldn't", "arent": "aren't", "werent": "weren't"}


def _read_list(name: str) -> frozenset[str]:
    path = STOPWORDS_DIR / f"{name}.txt"
    words = (line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def _load_stopwords() -> dict[str, frozenset[str]]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    en = (frozenset(ENGLISH_STOP_WORDS) - _EN_CONTENT) | EN_STOPWORDS
    out = {"en": en, "pt": _read_list("pt"), "zh": _read_list("zh") | ZH_STOPWORDS}
    return {lang: words - NEGATIONS[lang] for lang, words in out.items()}


#: Stop words per language used by :func:`compare_themes` and :func:`phrases`: English =
#: scikit-learn's ``ENGLISH_STOP_WORDS`` without negations and content words plus
#: :data:`EN_STOPWORDS`; Portuguese and Chinese = the curated package files
#: ``workbench/stopwords/pt.txt`` and ``zh.txt``. Nothing is downloaded.
STOPWORDS: dict[str, frozenset[str]] = _load_stopwords()

ThemeLang = Literal["auto", "en", "pt", "zh"]
_PT_MARKERS = frozenset("não nao que de do da em um uma com para os é muito produto mas na pelo pela foi".split())
_EN_MARKERS = frozenset("the and is to of it was my for this with they have not but be".split())
_PT_ACCENTS = re.compile(r"[ãõçáéíóúâêôà]")
_WEBBY = re.compile(r"\S+@\S+|\S*(?:www\.|https?:|\.com)\S*")
_SEP = "\x1f"  # joins the tokens of a phrase inside the vocabulary (split again for display)


def latin_language(texts: pd.Series | Iterable[Any]) -> Literal["en", "pt"]:
    """Guess whether the Latin-script texts of a corpus are English or Portuguese.

    Counts frequent function words of each language (and Portuguese accents) over the whole
    corpus: one short review ("Péssimo") cannot tell, a corpus can.

    Returns
    -------
    {"en", "pt"}
        ``"en"`` when there is no evidence either way.
    """
    pt = en = 0
    for raw in _as_series(texts).to_numpy(dtype=object, na_value=None):
        s = _WEBBY.sub(" ", _clean(raw).lower())  # "a@b.com" is no Portuguese "com"
        if not s or _CJK_CHAR.search(s):
            continue
        words = re.findall(r"[^\W\d_]+", s)
        pt += sum(w in _PT_MARKERS for w in words) + len(_PT_ACCENTS.findall(s))
        en += sum(w in _EN_MARKERS for w in words)
    return "pt" if pt > en else "en"


def _phrase_rules(lang: str, extra: Iterable[str] | None) -> tuple[frozenset[str], frozenset[str]]:
    extra_set = frozenset(w.lower() for w in extra) if extra else frozenset()
    if lang == "zh":  # Chinese text mixes in English words
        return STOPWORDS["zh"] | STOPWORDS["en"] | extra_set, NEGATIONS["zh"] | NEGATIONS["en"]
    return STOPWORDS[lang] | extra_set, NEGATIONS[lang]


def _phrase_keys(text: Any, latin: str, extra: frozenset[str] | None, max_n: int) -> list[str]:
    """Distinct phrase keys (tokens joined by ``_SEP``) of one text; see :func:`phrases`."""
    s = _clean(text)
    if not s.strip():
        return []
    lang = "zh" if _CJK_CHAR.search(s) else latin
    stop, neg = _phrase_rules(lang, extra)
    out: dict[str, None] = {}
    for raw_clause in _clauses(s, frozenset()):
        clause = [_CANONICAL.get(tok, tok) for tok in raw_clause]
        m = len(clause)
        for i, tok in enumerate(clause):
            if tok not in stop and tok not in neg:
                out[tok] = None
            if tok in stop:
                continue  # a phrase never starts with a stop word (a negation may start it)
            for n in range(2, max_n + 1):
                if i + n > m:
                    break
                last = clause[i + n - 1]
                if last in stop or last in neg:
                    continue
                out[_SEP.join(clause[i:i + n])] = None
    return list(out)


def _display_phrase(key: str) -> str:
    return _join(key.split(_SEP))


def phrases(text: str | None, lang: ThemeLang = "auto", max_n: int = 3,
            stopwords: Iterable[str] | None = None) -> list[str]:
    """Candidate theme phrases of one text: content words and 2–3-word phrases.

    Personal data and likely names are masked first and break phrases, like punctuation
    (:func:`tokenize`). A single word counts only when it is neither a stop word nor a negation;
    a phrase starts with a content word or a negation and ends with a content word; stop words may
    sit inside ("chegou no prazo", "customer service was great" → "service was great").

    Parameters
    ----------
    text : str or None
    lang : {"auto", "en", "pt", "zh"}
        Stop words for Latin-script text (``"auto"``: :func:`latin_language` of this text); text
        with Chinese characters always uses the Chinese (+ English) lists.
    max_n : int, default 3
        Longest phrase in words.
    stopwords : iterable of str, optional
        Extra stop words.

    Returns
    -------
    list of str
        Distinct phrases in order of appearance.

    Examples
    --------
    >>> phrases("The parcel was not delivered.", lang="en")
    ['parcel', 'parcel was not delivered', 'not delivered', 'delivered']
    """
    latin = latin_language([text]) if lang == "auto" else ("en" if lang == "zh" else lang)
    extra = frozenset(w.lower() for w in stopwords) if stopwords else None
    return [_display_phrase(k) for k in _phrase_keys(text, latin, extra, max_n)]


# ------------------------------------------------------------------ the comparison
_THEME_COLS = [
    "group", "reference", "phrase", "docs", "n", "share", "docs_reference", "n_reference", "share_reference",
    "odds_ratio", "ci_low", "ci_high", "log_odds", "se", "z", "p", "q", "significant", "merged", "quote",
]


def _contains(long: tuple[str, ...], short: tuple[str, ...]) -> int:
    """Start of ``short`` inside ``long`` as a contiguous run of tokens, or -1."""
    k = len(short)
    for i in range(len(long) - k + 1):
        if long[i:i + k] == short:
            return i
    return -1


def _same_theme(a: tuple[str, ...], b: tuple[str, ...], neg: frozenset[str]) -> bool:
    """One phrase contains the other and the extra words do not negate it ("recebi" ≠ "não recebi")."""
    long, short = (a, b) if len(a) >= len(b) else (b, a)
    i = _contains(long, short)
    if i < 0:
        return False
    extra = long[:i] + long[i + len(short):]
    return not any(t in neg for t in extra)


def _log_odds(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray, p0: np.ndarray,
              prior: float) -> tuple[np.ndarray, np.ndarray]:
    """Log odds ratio of mentioning a phrase (group 1 vs 2) with an informative prior, and its s.e.

    Pseudo-counts ``prior * p0`` (mentions) and ``prior * (1 - p0)`` (no mention) are added to each
    group's 2×2 cells, ``p0`` being the phrase's share of all compared comments (Monroe, Colaresi &
    Quinn 2008, eq. 16 and 18, per phrase on document counts)."""
    a, b = prior * p0, prior * (1 - p0)
    c11, c12, c21, c22 = x1 + a, n1 - x1 + b, x2 + a, n2 - x2 + b
    delta = np.log(c11 / c12) - np.log(c21 / c22)
    se = np.sqrt(1 / c11 + 1 / c12 + 1 / c21 + 1 / c22)
    return delta, se


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values."""
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(m)
    out[order] = q
    return out


def rating_groups(scores: pd.Series, scale: tuple[float, float] | None = None, low: float | None = None,
                  high: float | None = None) -> pd.Series:
    """Label ratings as low / middle / high bands for :func:`compare_themes` (e.g. "1–2", "3", "4–5").

    Parameters
    ----------
    scores : pandas.Series
        Numeric ratings; missing stay missing (those texts are left out and counted).
    scale : (min, max), optional
        The rating scale; default the observed minimum and maximum.
    low, high : float, optional
        Highest "low" and lowest "high" rating; default the bottom and top 40% of the scale
        (1–5: 1–2 and 4–5; 0–10: 0–4 and 6–10).

    Returns
    -------
    pandas.Series
        Labels such as ``"1–2"``, ``"3"``, ``"4–5"`` (object dtype, same index);
        ``attrs["low"]`` and ``attrs["high"]`` name the two outer bands::

            g = rating_groups(frame["satisfaction"], scale=(1, 5))
            compare_themes(frame["comment"], g, focus=g.attrs["low"], against=g.attrs["high"], by="rating")
    """
    s = pd.to_numeric(scores, errors="coerce")
    lo, hi = scale if scale is not None else (s.min(), s.max())
    if pd.isna(lo) or pd.isna(hi) or lo >= hi:
        raise ValueError("rating_groups needs at least two different ratings (or pass scale=)")
    width = (hi - lo) * 0.4
    low = lo + np.floor(width) if low is None else low
    high = hi - np.floor(width) if high is None else high

    def band(a: float, b: float) -> str:
        return f"{a:g}" if a == b else f"{a:g}–{b:g}"

    mid_lo = s[(s > low) & (s < high)].min()
    mid_hi = s[(s > low) & (s < high)].max()
    labels = pd.Series(None, index=s.index, dtype=object)
    labels[s <= low] = band(lo, low)
    labels[s >= high] = band(high, hi)
    if pd.notna(mid_lo):
        labels[(s > low) & (s < high)] = band(mid_lo, mid_hi)
    labels.attrs.update(low=band(lo, low), high=band(high, hi))
    return labels


@dataclass(frozen=True, repr=False)
class ThemeComparison(Result):
    """Distinctive phrases of groups of comments (:func:`compare_themes`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per reported phrase (columns :data:`_THEME_COLS`): ``group`` is where the phrase is
        more frequent, ``reference`` what it is compared with; ``docs``/``n``/``share`` the comments
        mentioning it, the comments with text and their ratio in ``group`` (``*_reference`` the same
        in the reference); ``odds_ratio`` with its 95% interval, ``log_odds``, ``se``, ``z``,
        two-sided ``p``, Benjamini–Hochberg ``q`` over every phrase tested; ``merged``: phrases
        folded into this one (one contains the other); ``quote``: a masked example comment or
        ``None``. Sorted by group, then rank (significant first, then the lower end of the odds
        ratio's interval).
    groups : pandas.DataFrame
        ``group, texts, empty, comments, no_phrase`` per group.
    comparisons : list of (group, reference, reference groups)
        What was compared with what (``reference`` ``"(all others)"`` = every other group).
    tested : pandas.DataFrame
        Every phrase tested, before listing and merging: ``group, reference, phrase, docs, n,
        docs_reference, n_reference, log_odds, se, z, p, q`` (``z > 0``: more frequent in ``group``).
        For the analyst; not in :meth:`metrics`.
    by : {"rating", "category", "group"}
        What the groups are (wording of the sentences).
    section : str
        Translation key of the section heading.
    key : str
        Name of the metrics entry and prefix of the findings' keys.
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    comparisons: tuple[tuple[str, str, tuple[str, ...]], ...]
    tested: pd.DataFrame = field(default_factory=pd.DataFrame)
    by: str = "group"
    section: str = "text.h.themes"
    key: str = "text_themes"
    language: str = "en"
    alpha: float = 0.05
    min_df: int = 5
    prior: float = 10.0
    n_tested: int = 0
    n_no_group: int = 0
    withheld: int = 0
    top_n: int = 8
    #: at most this many findings ask to lead the report (the evidence rule still decides)
    max_headlines: int = 2
    heading: ClassVar[str] = "text.h.themes"

    def title(self, lang: str = "en") -> str:
        return t(self.section, lang) if self.section and has_text(self.section) else ""

    # -- wording
    def _who(self, group: str, lang: str) -> str:
        if group == _REST:
            return t("text.who.rest", lang)
        return t(f"text.who.{self.by}", lang, group=group)

    def _label(self, group: str, lang: str) -> str:
        """Short name of a group for legends and panel titles ("rated 1–2")."""
        if group == _REST:
            return t("text.short.rest", lang)
        return t(f"text.short.{self.by}", lang, group=group)

    def _n(self, group: str) -> int:
        if group == _REST:
            return 0
        row = self.groups.loc[self.groups["group"] == group, "comments"]
        return int(row.iloc[0]) if len(row) else 0

    def _top(self, group: str) -> pd.DataFrame:
        return self.table[self.table["group"] == group].head(self.top_n)

    def findings(self, lang: str = "en") -> list[Finding]:
        out: list[Finding] = []
        for group, reference, _ in self.comparisons:
            for focus, other in ((group, reference), (reference, group)):
                if focus == _REST:
                    continue
                rows = self.table[(self.table["group"] == focus) & (self.table["reference"] == other)]
                if focus == reference and not len(rows):
                    continue  # the reverse direction speaks only when it has something to say
                sig = rows[rows["significant"]]
                who, whom = self._who(focus, lang), self._who(other, lang)
                key = f"{self.key}.{focus}"
                if sig.empty:
                    n = self._n(focus)
                    out.append(Finding(key, t("text.find.none", lang, who=who, other=whom, n=fmt_int(n, lang)),
                                       value=None, headline=False, n=n))
                    continue
                r = sig.iloc[0]
                text_ = t("text.find.distinctive", lang, phrase=r["phrase"], who=who, other=whom,
                          share=fmt_pct(r["share"], lang, 0), share_other=fmt_pct(r["share_reference"], lang, 0))
                if isinstance(r["quote"], str) and r["quote"]:
                    text_ += t("text.find.quote", lang, quote=r["quote"])
                how = t("text.how", lang, prior=fmt_num(self.prior, lang, 0), odds=fmt_num(r["odds_ratio"], lang),
                        lo=fmt_num(r["ci_low"], lang), hi=fmt_num(r["ci_high"], lang), z=fmt_num(r["z"], lang),
                        p=fmt_p(r["p"], lang), q=fmt_p(r["q"], lang), tests=fmt_int(self.n_tested, lang),
                        docs=fmt_int(r["docs"], lang), n=fmt_int(r["n"], lang),
                        docs_other=fmt_int(r["docs_reference"], lang), n_other=fmt_int(r["n_reference"], lang),
                        min_df=fmt_int(self.min_df, lang))
                leads = sum(f.headline for f in out) < self.max_headlines
                out.append(Finding(key, text_, value=float(r["odds_ratio"]), headline=leads,
                                   interval=(float(r["ci_low"]), float(r["ci_high"])), null=1.0,
                                   n=int(r["n"]), how=how, action=t("text.find.action", lang, who=who)))
                rest = sig.iloc[1:self.top_n]
                if len(rest):
                    listed = t("text.list_sep", lang).join(f"“{p}”" for p in rest["phrase"])
                    out.append(Finding(f"{key}.more", t("text.find.also", lang, who=who, phrases=listed),
                                       value=len(rest), headline=False, n=int(r["n"])))
        return out

    def figures(self, lang: str = "en") -> list[Figure]:
        from plotly.subplots import make_subplots

        from workbench import viz

        panels = [g for g in dict.fromkeys(self.table["group"]) if g != _REST]
        panels = [g for g in panels if self.table.loc[self.table["group"] == g, "significant"].any()]
        if not panels:
            return []
        tops = [self._top(g).loc[lambda d: d["significant"]] for g in panels]
        heights = [max(len(tp), 1) for tp in tops]
        titles = [t("text.fig.panel", lang, who=self._label(g, lang), n=fmt_int(self._n(g), lang)) for g in panels]
        fig = make_subplots(rows=len(panels), cols=1, subplot_titles=titles, row_heights=heights,
                            vertical_spacing=min(0.12, 0.5 / len(panels)), shared_xaxes=False)
        colours: dict[str, str] = {}
        top_share = max(float(max(tp["share"].max(), tp["share_reference"].max())) for tp in tops)
        for i, (g, tp) in enumerate(zip(panels, tops, strict=True), start=1):
            labels = [_short(p) for p in tp["phrase"]][::-1]
            ref = str(tp["reference"].iloc[0])
            for name, share in ((g, tp["share"]), (ref, tp["share_reference"])):
                if name not in colours:
                    colours[name] = "#9aa0a6" if name == _REST else viz.PALETTE[len(colours) % len(viz.PALETTE)]
                fig.add_trace(go.Bar(y=labels, x=list(share)[::-1], orientation="h", name=self._label(name, lang),
                                     legendgroup=name, showlegend=name not in {tr.legendgroup for tr in fig.data},
                                     marker_color=colours[name], hovertemplate="%{y}: %{x:.0%}<extra></extra>"),
                              row=i, col=1)
            # one scale in every panel, so bar lengths compare across panels
            fig.update_xaxes(tickformat=".0%", range=[0, top_share * 1.05], row=i, col=1)
            fig.update_yaxes(automargin=True, showgrid=False, row=i, col=1)
        fig.update_xaxes(title_text=t("text.axis.share", lang), row=len(panels), col=1)
        for ann in fig.layout.annotations:  # panel titles: short, left-aligned, small enough for a phone
            ann.update(x=0, xanchor="left", font=dict(size=13))
        height = 170 + 44 * sum(heights) + 40 * len(panels)
        fig.update_layout(title=t("text.fig.title", lang), barmode="group", bargap=0.25, height=height,
                          margin=dict(l=10, r=10, t=130, b=50),  # legend under the title, above the panel titles
                          legend=dict(yref="container", y=1 - 48 / height, yanchor="top", x=0, xanchor="left"))
        return [Figure(fig)]

    def tables(self, lang: str = "en") -> list[Table]:
        shown = pd.concat([self._top(g).loc[lambda d: d["significant"]] for g in dict.fromkeys(self.table["group"])]
                          ) if len(self.table) else self.table
        out = []
        if len(shown):
            quotes = pd.DataFrame({
                t("text.col.group", lang): [self._who(g, lang) for g in shown["group"]],
                t("text.col.phrase", lang): shown["phrase"].to_numpy(),
                t("text.col.share", lang): shown["share"].to_numpy(),
                t("text.col.share_reference", lang): shown["share_reference"].to_numpy(),
                t("text.col.quote", lang): shown["quote"].fillna("–").to_numpy(),
            })
            pct = lambda v: fmt_pct(v, lang, 0)  # noqa: E731
            out.append(Table(quotes, {t("text.col.share", lang): pct, t("text.col.share_reference", lang): pct},
                             caption=t("text.cap.quotes", lang)))
        if len(self.table):
            full = self.table.drop(columns=["quote"])
            cols = {"group": "group", "reference": "reference", "phrase": "phrase", "docs": "docs", "n": "n",
                    "share": "share", "docs_reference": "docs_reference", "n_reference": "n_reference",
                    "share_reference": "share_reference", "odds_ratio": "odds_ratio", "z": "z", "q": "q",
                    "merged": "merged"}
            full = full[list(cols)].assign(group=[self._who(g, lang) for g in full["group"]],
                                           reference=[self._who(g, lang) for g in full["reference"]])
            full.columns = [t(f"text.col.{c}", lang) for c in cols]
            f = {t("text.col.share", lang): lambda v: fmt_pct(v, lang, 1),
                 t("text.col.share_reference", lang): lambda v: fmt_pct(v, lang, 1),
                 t("text.col.odds_ratio", lang): lambda v: fmt_num(v, lang),
                 t("text.col.z", lang): lambda v: fmt_num(v, lang),
                 t("text.col.q", lang): lambda v: fmt_p(v, lang)}
            out.append(Table(full, f, caption=t("text.cap.terms", lang), appendix=True, max_rows=60))
        return out

    def notes(self, lang: str = "en") -> list[str]:
        g = self.groups
        out = [t("text.note.base", lang, comments=fmt_int(g["comments"].sum(), lang),
                 empty=fmt_int(g["empty"].sum(), lang), min_df=fmt_int(self.min_df, lang))]
        if not self.comparisons:
            out.append(t("text.note.one_group", lang, n=fmt_int(len(g), lang)))
        if self.n_no_group:
            out.append(t("text.note.no_group", lang, n=fmt_int(self.n_no_group, lang)))
        if self.withheld:
            out.append(t("text.note.withheld", lang, n=fmt_int(self.withheld, lang)))
        out.append(t("text.note.associational", lang))
        return out

    def metrics(self) -> dict[str, Any]:
        """JSON-ready: phrases with counts, shares and statistics, n per group — no comment texts."""
        from workbench.metrics import to_jsonable

        cols = [c for c in _THEME_COLS if c != "quote"]
        per_group = max(self.top_n, _METRIC_ROWS // max(self.table["group"].nunique(), 1))
        phrases_ = self.table.groupby("group", sort=False).head(per_group)  # metrics.json lists stay short
        return {self.key: to_jsonable({
            "language": self.language, "min_df": self.min_df, "prior": self.prior, "alpha": self.alpha,
            "tested": self.n_tested, "no_group": self.n_no_group, "quotes_withheld": self.withheld,
            "groups": self.groups, "comparisons": [[g, r, list(m)] for g, r, m in self.comparisons],
            "phrases": phrases_[cols],
        }, self.key)}

    def summary(self, lang: str = "en") -> str:
        lines = [super().summary(lang), ""]
        for g in dict.fromkeys(self.table["group"]):
            top = self._top(g)
            lines.append(f"{self._who(g, lang)}:")
            lines += [f"  {r.phrase:<32} {r.docs:>5}/{r.n:<6} {r.share:6.1%} vs {r.share_reference:6.1%}"
                      f"  OR {r.odds_ratio:6.2f}  z {r.z:5.2f}  q {r.q:.3g}{'' if r.significant else '  (n.s.)'}"
                      for r in top.itertuples()]
        return "\n".join(lines)


_REDACTED = re.compile(r"\b[Xx]{2,}\b")  # exports that redact names/dates as XXXX (e.g. CFPB narratives)
_METRIC_ROWS = 400  # phrases recorded in metrics.json at most (the Recorder refuses lists over 500)
_REST = "(all others)"  # the reference "all other groups" (worded by text.who.rest)


def _short(phrase: str, limit: int = 28) -> str:
    return phrase if len(phrase) <= limit else phrase[: limit - 1] + "…"


def compare_themes(
    texts: pd.Series | Iterable[Any],
    groups: pd.Series | Iterable[Any],
    focus: Any = None,
    against: Any = None,
    *,
    heading: str = "text.h.themes",
    by: Literal["rating", "category", "group"] = "group",
    key: str = "text_themes",
    lang: ThemeLang = "auto",
    min_df: int = 5,
    top_n: int = 8,
    prior: float = 10.0,
    alpha: float = 0.05,
    max_n: int = 3,
    quote_chars: int = 160,
    max_phrases: int = 40,
    stopwords: Iterable[str] | None = None,
    seed: int = 0,
) -> ThemeComparison:
    """Phrases one group of comments uses clearly more often than another, each with a masked quote.

    "What do 1–2 raters talk about that 4–5 raters do not?" or "what is special about complaints
    of one category?". Every comment is cut into phrases (:func:`phrases`: stop words of its
    language removed, negations kept inside phrases); for each phrase the share of comments
    mentioning it is compared between the groups.

    Statistic: the log odds ratio of mentioning the phrase with an informative Dirichlet (beta)
    prior — ``prior`` pseudo-comments at the phrase's overall rate added to each group (Monroe,
    Colaresi & Quinn 2008, eq. 16–18, applied per phrase to document counts) — its normal
    approximation z and two-sided p, and Benjamini–Hochberg adjusted q over every phrase tested in
    every comparison. A phrase is listed for a group only when at least ``min_df`` of its comments
    mention it and ``z > 0``; ``significant`` = ``q < alpha``. Listed phrases are ranked
    significant first, then by the lower end of the odds ratio's 95% interval (large *and* well
    supported: neither a rare phrase with a huge uncertain ratio nor a common word with a small
    precise one leads). Phrases that contain one another (words in a row) are merged (see
    :func:`_merge_themes`), and so are phrases found in nearly the same comments (Jaccard ≥ 0.8:
    "left my parcel" / "parcel outside"); the folded phrases are listed in ``merged``.

    Parameters
    ----------
    texts : pandas.Series or iterable
        Comments; empty/missing ones are counted, never silently dropped.
    groups : pandas.Series or iterable
        Group per comment (same index or length); missing groups are left out and counted.
        :func:`rating_groups` turns ratings into "1–2" / "3" / "4–5".
    focus, against : optional
        ``focus`` and ``against`` (a label or a list of labels): those two compared, phrases reported
        both ways. ``focus`` alone: that group against all others (phrases of ``focus`` only).
        Neither: with two groups, the first against the second (both ways); with more, each group
        against all others.
    heading : str
        Translation key of the section heading (the caller's section).
    by : {"rating", "category", "group"}
        How sentences name the groups ("comments rated 1–2", "comments in Delivery").
    key : str
        Name of the metrics entry.
    lang : {"auto", "en", "pt", "zh"}
        Stop words for Latin-script comments; ``"auto"``: :func:`latin_language` of the corpus.
    min_df : int, default 5
        Fewest comments of a group that must mention a phrase before it is listed (rare phrases
        never headline).
    top_n : int, default 8
        Phrases per group in the figure, the quote table and the findings.
    prior : float, default 10
        Prior strength in pseudo-comments (0 = plain log odds ratio; any 0 cell then gives inf).
    alpha : float, default 0.05
        False-discovery rate for ``significant``.
    max_n : int, default 3
        Longest phrase in words.
    quote_chars : int, default 160
        Quotes are masked (:func:`workbench.privacy.quote_text`) first, then cut to this length.
    max_phrases : int, default 40
        Most significant phrases kept per group in the table and metrics (at least ``top_n`` rows
        per group are kept, significant or not, so a null result still shows its nearest phrases).
    stopwords : iterable of str, optional
        Extra stop words (e.g. the brand name).
    seed : int, default 0
        Breaks ties between equally typical quotes.

    Returns
    -------
    ThemeComparison
    """
    texts = _as_series(texts)
    grp = _align_groups(texts, groups)
    if min_df < 1:
        raise ValueError("min_df must be at least 1")
    latin = latin_language(texts) if lang == "auto" else ("en" if lang == "zh" else lang)
    extra = frozenset(w.lower() for w in stopwords) if stopwords else None
    has_group = grp.notna().to_numpy()
    labels = grp.map(_group_label)
    raw = [_clean(x) for x in texts.to_numpy(dtype=object, na_value=None)]
    empty = np.array([not s.strip() for s in raw])

    # comparisons: (focus label, reference label, reference groups)
    present = sorted(labels[has_group].unique(), key=_natural)
    for name, val in (("focus", focus), ("against", against)):
        if val is not None and (missing := [v for v in _as_labels(val) if v not in present]):
            raise ValueError(f"compare_themes: {name} group(s) {missing} not among the groups {present[:10]}")
    if focus is not None:
        f = _as_labels(focus)[0]
        if against is not None:
            ref = _as_labels(against)
            comps = [(f, ref[0] if len(ref) == 1 else " + ".join(ref), tuple(ref), True)]
        else:
            comps = [(f, _REST, tuple(g for g in present if g != f), False)]
    elif len(present) == 2:
        comps = [(present[0], present[1], (present[1],), True)]
    elif len(present) > 2:
        comps = [(g, _REST, tuple(o for o in present if o != g), False) for g in present]
    else:
        comps = []

    docs = [r if ok else "" for r, ok in zip(raw, has_group, strict=True)]
    vec = CountVectorizer(analyzer=lambda s: _phrase_keys(s, latin, extra, max_n), lowercase=False, binary=True)
    try:
        x = vec.fit_transform(docs).tocsr()
        vocab = vec.get_feature_names_out()
    except ValueError:  # no phrase at all
        x, vocab = None, np.array([], dtype=object)
    no_phrase = (~empty) & (np.asarray(x.getnnz(axis=1)) == 0 if x is not None else ~empty)
    lab = labels.to_numpy(dtype=object)
    gtab = pd.DataFrame({"group": lab[has_group], "empty": empty[has_group], "no_phrase": no_phrase[has_group]})
    gtab = (gtab.groupby("group", sort=False).agg(texts=("empty", "size"), empty=("empty", "sum"),
                                                   no_phrase=("no_phrase", "sum")).reset_index())
    gtab["comments"] = gtab["texts"] - gtab["empty"]
    gtab = gtab.set_index("group").loc[present].reset_index()[["group", "texts", "empty", "comments", "no_phrase"]]
    gtab = gtab.astype({"texts": "int64", "empty": "int64", "comments": "int64", "no_phrase": "int64"})

    parts: list[pd.DataFrame] = []
    n_tested = 0
    rows_of: dict[tuple[str, str], np.ndarray] = {}  # comments of each (group, reference) direction
    if x is not None:
        for g, ref, members, both in comps:
            m1 = (lab == g) & ~empty
            m2 = np.isin(lab, list(members)) & ~empty
            rows_of[(g, ref)], rows_of[(ref, g)] = m1, m2
            n1, n2 = int(m1.sum()), int(m2.sum())
            if n1 == 0 or n2 == 0:
                continue
            d1 = np.asarray(x[np.flatnonzero(m1)].sum(axis=0)).ravel().astype(float)
            d2 = np.asarray(x[np.flatnonzero(m2)].sum(axis=0)).ravel().astype(float)
            test = np.flatnonzero((d1 >= min_df) | ((d2 >= min_df) & both))
            if test.size == 0:
                continue
            n_tested += test.size
            y1, y2 = d1[test], d2[test]
            p0 = (y1 + y2) / (n1 + n2)
            delta, se = _log_odds(y1, np.full_like(y1, n1), y2, np.full_like(y2, n2), p0, prior)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = delta / se
            part = pd.DataFrame({"key": vocab[test], "_d1": y1, "_d2": y2, "_n1": n1, "_n2": n2, "log_odds": delta,
                                 "se": se, "z": z, "_g": g, "_ref": ref, "_both": both})
            parts.append(part)
    cols = _THEME_COLS
    if not parts:
        return ThemeComparison(_empty_frame(cols).astype({"significant": bool}), gtab,
                               tuple((g, r, m) for g, r, m, _ in comps), by=by, section=heading, key=key,
                               language=latin, alpha=alpha, min_df=min_df, prior=prior, n_tested=0,
                               n_no_group=int((~has_group).sum()), top_n=top_n)
    allp = pd.concat(parts, ignore_index=True)
    allp["p"] = 2 * stats.norm.sf(np.abs(allp["z"].to_numpy()))
    allp["q"] = _bh(allp["p"].to_numpy())
    tested = pd.DataFrame({"group": allp["_g"], "reference": allp["_ref"],
                           "phrase": [_display_phrase(k) for k in allp["key"]],
                           "docs": allp["_d1"].astype("int64"), "n": allp["_n1"].astype("int64"),
                           "docs_reference": allp["_d2"].astype("int64"),
                           "n_reference": allp["_n2"].astype("int64"), "log_odds": allp["log_odds"],
                           "se": allp["se"], "z": allp["z"], "p": allp["p"], "q": allp["q"]})
    rows = []
    for _, part in allp.groupby(["_g", "_ref"], sort=False):
        g, ref, both = part["_g"].iloc[0], part["_ref"].iloc[0], bool(part["_both"].iloc[0])
        fwd = part[(part["z"] > 0) & (part["_d1"] >= min_df)].assign(group=g, reference=ref, docs=part["_d1"],
                                                                      n=part["_n1"], docs_reference=part["_d2"],
                                                                      n_reference=part["_n2"])
        rows.append(fwd)
        if both:
            back = part[(part["z"] < 0) & (part["_d2"] >= min_df)]
            rows.append(back.assign(group=ref, reference=g, docs=back["_d2"], n=back["_n2"],
                                    docs_reference=back["_d1"], n_reference=back["_n1"], log_odds=-back["log_odds"],
                                    z=-back["z"]))
    res = pd.concat(rows, ignore_index=True)
    res["share"] = res["docs"] / res["n"]
    res["share_reference"] = res["docs_reference"] / res["n_reference"]
    res["odds_ratio"] = np.exp(res["log_odds"])
    res["ci_low"] = np.exp(res["log_odds"] - _Z95 * res["se"])
    res["ci_high"] = np.exp(res["log_odds"] + _Z95 * res["se"])
    res["significant"] = res["q"] < alpha
    # rank: significant first, then by the lower end of the odds ratio's 95% interval (distinctive *with
    # confidence*: a rare phrase absent from the reference has a huge but uncertain odds ratio, a common
    # word a precise but small one), then longer phrases (more meaning)
    res["_rank"] = res["log_odds"] - _Z95 * res["se"]
    res["_words"] = [k.count(_SEP) + 1 for k in res["key"]]
    res = res.sort_values(["group", "significant", "_rank", "_words", "key"],
                          ascending=[True, False, False, False, True], kind="stable")
    res = res.groupby(["group", "reference"], sort=False).head(_MERGE_POOL)  # the merge looks at the strongest

    # merge phrases that contain one another or occur in the same comments (within a group)
    kept: list[int] = []
    merged: dict[int, list[str]] = {}
    neg = NEGATIONS["zh"] | NEGATIONS["en"] | NEGATIONS[latin]
    key_col = {k: j for j, k in enumerate(vocab)}
    for (g, ref), sub in res.groupby(["group", "reference"], sort=False):
        shown, members = _merge_themes(sub, neg)
        xg = x[np.flatnonzero(rows_of[(g, ref)])][:, [key_col[k] for k in sub.loc[shown, "key"]]]
        shown, members = _merge_cooccurring(shown, members, xg)
        kept += shown
        merged.update({j: [_display_phrase(sub.at[i, "key"]) for i in m] for j, m in members.items()})
    res = res.loc[kept].copy()
    # listed per group: the significant phrases (at most max_phrases), at least top_n rows
    rank = res.groupby(["group", "reference"], sort=False).cumcount()
    res = res[(res["significant"] & (rank < max_phrases)) | (rank < top_n)].copy()
    res["phrase"] = [_display_phrase(k) for k in res["key"]]
    res["merged"] = [", ".join(merged.get(i, [])) for i in res.index]
    for c in ("docs", "n", "docs_reference", "n_reference"):
        res[c] = res[c].astype("int64")

    # one masked quote per phrase shown (top_n per group), typical length first, never reused
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(len(raw))
    lengths = np.array([len(s) for s in raw])
    xc = x.tocsc()
    quotes: dict[int, str | None] = {}
    withheld = 0
    for g, sub in res.groupby("group", sort=False):
        used: set[int] = set()
        for idx, k in zip(sub.index[:top_n], sub["key"].iloc[:top_n], strict=True):
            col = xc[:, key_col[k]]
            cand = [i for i in col.indices if lab[i] == g and not empty[i] and i not in used]
            # plain text of a typical length first; redaction-heavy texts ("XXXX XXXX") last
            cand.sort(key=lambda i: (len(_REDACTED.findall(raw[i])) > 2, abs(lengths[i] - 90), tiebreak[i]))
            quotes[idx] = None
            for i in cand[:200]:
                q = quote_text(raw[i].strip())
                if q is None:
                    withheld += 1
                    continue
                used.add(i)
                quotes[idx] = _quote_window(q, _display_phrase(k), quote_chars)
                break
    res["quote"] = [quotes.get(i) for i in res.index]
    res = res.reset_index(drop=True)[cols]
    return ThemeComparison(res, gtab, tuple((g, r, m) for g, r, m, _ in comps), tested, by=by, section=heading,
                           key=key,
                           language=latin, alpha=alpha, min_df=min_df, prior=prior, n_tested=int(n_tested),
                           n_no_group=int((~has_group).sum()), withheld=withheld, top_n=top_n)


_Z95 = 1.959963984540054
_MERGE_POOL = 300  # strongest listed phrases per group considered for merging
_MORE_DISTINCTIVE = float(np.log(1.5))  # a longer phrase is its own theme when its odds ratio is 1.5× larger


def _merge_cooccurring(shown: list[int], members: dict[int, list[int]], xg: Any,
                       threshold: float = 0.8) -> tuple[list[int], dict[int, list[int]]]:
    """Fold a theme into a higher-ranked one found in nearly the same comments of the group.

    ``xg``: binary comments × shown-phrases matrix (columns in ``shown`` order). Two phrases whose
    sets of comments have a Jaccard similarity of at least ``threshold`` say one thing ("left my
    parcel", "parcel outside"): the lower-ranked one (and what it absorbed) joins the higher.
    """
    if len(shown) < 2:
        return shown, members
    b = (xg > 0).astype(np.int64)
    inter = np.asarray((b.T @ b).todense(), dtype=float)
    size = np.diag(inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        jac = inter / (size[:, None] + size[None, :] - inter)
    out: list[int] = []
    pos: list[int] = []
    members = {k: list(v) for k, v in members.items()}
    for a, i in enumerate(shown):
        host = next((shown[c] for c in pos if jac[a, c] >= threshold), None)
        if host is None:
            out.append(i)
            pos.append(a)
        else:
            members.setdefault(host, []).extend([i, *members.pop(i, [])])
    return out, members


def _merge_themes(sub: pd.DataFrame, neg: frozenset[str]) -> tuple[list[int], dict[int, list[int]]]:
    """Merge the listed phrases of one group that contain one another (words in a row).

    Phrases are taken in rank order. A phrase related to a theme already kept (one contains the
    other) joins it: the longer one is shown when it covers at least half of the shorter one's
    comments ("não recebi" over "recebi"); a longer phrase covering less is its own theme only when
    it is clearly more distinctive (an odds ratio at least 1.5 times larger: "produto errado" beside "produto") and the
    extra words do not merely negate the shorter one. Returns the rows shown (in z order) and, per
    shown row, the rows folded into it.
    """
    toks = {i: tuple(k.split(_SEP)) for i, k in zip(sub.index, sub["key"], strict=True)}
    sets = {i: frozenset(v) for i, v in toks.items()}
    docs = sub["docs"].to_dict()
    lo = sub["log_odds"].to_dict()
    themes_: list[list[int]] = []  # [shown, *members]
    for i in sub.index:
        home = None
        for th in themes_:
            j = th[0]
            long, short = (i, j) if len(toks[i]) > len(toks[j]) else (j, i)
            if long == short or not sets[short] <= sets[long]:
                continue
            at = _contains(toks[long], toks[short])
            if at < 0:
                continue
            if docs[long] >= 0.5 * docs[short]:
                home = th
                if long == i:
                    th.insert(0, i)  # the longer phrase says more and covers most: show it
                else:
                    th.append(i)
                break
            extra = toks[long][:at] + toks[long][at + len(toks[short]):]
            if long == i and lo[i] <= lo[j] + _MORE_DISTINCTIVE and not any(w in neg for w in extra):
                th.append(i)
                home = th
                break
        if home is None:
            themes_.append([i])
            continue
        for other in [th for th in themes_ if th is not home]:  # a new long label may cover other themes
            j, k = home[0], other[0]
            if len(toks[j]) > len(toks[k]) and _contains(toks[j], toks[k]) >= 0 and docs[j] >= 0.5 * docs[k]:
                home.extend(other)
                themes_.remove(other)
    order = {i: r for r, i in enumerate(sub.index)}
    themes_.sort(key=lambda th: order[th[0]])
    return [th[0] for th in themes_], {th[0]: th[1:] for th in themes_ if len(th) > 1}


def _group_label(v: Any) -> str | None:
    """A group value as a label: ``None`` when missing; 4.0 → "4"."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _as_labels(v: Any) -> list[str]:
    items = v if isinstance(v, (list, tuple, set, pd.Index)) else [v]
    return [str(_group_label(x)) for x in items]


def _natural(label: str) -> tuple[Any, ...]:
    m = re.match(r"^-?\d+(?:\.\d+)?", label)
    return (0, float(m.group()), label) if m else (1, 0.0, label)


def _quote_window(quote: str, phrase: str, max_chars: int) -> str:
    """Cut a (masked) quote to ``max_chars`` around the phrase when it is found, with "…" marks."""
    q = " ".join(quote.split())
    if len(q) <= max_chars:
        return q
    at = q.lower().find(phrase.lower().split(" ")[0]) if phrase else -1
    start = max(0, min(at - max_chars // 3, len(q) - max_chars)) if at >= 0 else 0
    cut = q[start:start + max_chars - 2].strip()
    return ("…" if start > 0 else "") + cut + ("…" if start + max_chars - 2 < len(q) else "")
