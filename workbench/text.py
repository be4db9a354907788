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
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from workbench.privacy import (
    DEFAULT_TOKENS,
    mask_person_names,
    mask_text,
    quote_text,
    zh_name_token,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # jieba's pkg_resources/regex DeprecationWarnings
    import jieba

__all__ = [
    "EN_STOPWORDS",
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
