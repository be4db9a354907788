"""Privacy helpers: pseudonymise ids, mask personal data, escape free text.

Customer data is personal (客户隐私和信息安全). Nothing identifying may reach
manager HTML, ``metrics.json`` or logs. This module offers three layers:

1. **Pseudonymisation** of customer ids (:func:`pseudonymise`): a keyed hash
   (HMAC-SHA256) so ids can still be joined and counted but not reversed by
   hashing guessed ids (mobile numbers are often used as customer ids).
2. **Masking** of personal data inside free text (:func:`mask_text`,
   :func:`mask_series`, :func:`mask_name`) and of whole frames
   (:func:`scrub_frame`).
3. **A backstop** (:func:`assert_no_pii`) run by the report pipeline before
   anything is written; it raises :class:`PIILeakError` without ever repeating
   the raw value.

Detection rules (see :data:`PII_PATTERNS`)
------------------------------------------
All numeric patterns use *digit* look-arounds instead of ``\\b`` so they work
inside Chinese running text, which has no word boundaries
("我的电话13812345678请回电"). A number is never matched inside a longer digit
run or right after ``<digit>.`` / before ``.<digit>`` (decimal fractions).
Full-width digits (``０``-``９``) are folded to ASCII before matching, so
masked output carries ASCII digits where unmasked digits remain.

``email``
    ``local@domain.tld``.
``id``
    Chinese resident ID card: 17 digits (the first not 0: region codes start
    1-9) + digit/``X``, optionally grouped 6-8-4. The checksum is *not*
    required: every such 18-character match is masked.
    An 18-digit run whose ID checksum fails but which is a valid bank card is
    labelled ``card`` instead (it is masked either way).
``card``
    Bank cards, 13-19 digits, contiguous or grouped by spaces/dashes
    (4-4-4-4[-3], 4-6-5). To avoid masking order numbers and timestamps a
    match must (a) start with a card-network digit (2-6; so epoch timestamps
    and most order numbers, which start with 1, 7, 8, 9 or 0, are left alone)
    and pass the Luhn check, **or** (b) be a 16-19 digit China UnionPay
    number starting with ``62`` (some older UnionPay cards do not pass Luhn,
    so these are masked without it). Consequence: a mistyped non-UnionPay
    card number that fails Luhn is not masked.
``mobile``
    Chinese mobile numbers ``1[3-9]`` + 9 digits, optional ``+86`` / ``0086``
    / ``86`` / ``(+86)`` prefix, contiguous or grouped 3-4-4 by a single space
    or dash (``138-1234-5678``, ``138 1234 5678``); other groupings are not
    matched because runs of small numbers (SVG paths in embedded plotly.js)
    would otherwise glue into false mobiles. An 11-digit amount written without
    separators that starts with 13-19 is indistinguishable and is masked.
``phone``
    Other phone numbers: Chinese landlines with an area code (``010-12345678``,
    ``(0755)12345678``, ``+86 10 12345678``; contiguous only when 11-12 digits
    so 10-digit order numbers survive), grouped 3-3-4 numbers
    (``400-123-4567``, ``(415) 555-0100``) and ``+<country code>`` numbers
    with 8-15 digits.
``ip``
    IPv4 addresses (masked by :func:`mask_text` by default; pass ``kinds`` to
    leave them). Dotted version strings with four parts look the same.

Not detected: numbers written in Chinese numerals (一三八…), postal addresses.
Names are handled by column (:func:`mask_name`, :func:`scrub_frame`) and, in
free text quoted on manager pages, by :func:`mask_person_names` /
:func:`quote_text` (Chinese and English only; other text is not quoted).
Labels from the data (categories, handlers, ...) go through
:func:`mask_label` at the display and metrics chokepoints.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import secrets
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "ASSERT_KINDS",
    "DEFAULT_TOKENS",
    "MASK_KINDS",
    "PII_PATTERNS",
    "GENERATED_FOR_RUN",
    "NAME_TOKEN",
    "PSEUDONYM_ENV_VAR",
    "PSEUDONYM_SOURCE_ENV_VAR",
    "PseudonymKeyWarning",
    "PUBLIC_ALLOWLIST",
    "PIIFinding",
    "PIILeakError",
    "assert_no_pii",
    "escape_html",
    "escape_series",
    "find_pii",
    "luhn_valid",
    "mask_label",
    "mask_labels",
    "mask_person_names",
    "names_maskable",
    "quote_text",
    "zh_name_token",
    "mask_name",
    "mask_name_series",
    "mask_series",
    "mask_text",
    "pseudonym_key_source",
    "run_pseudonym_key",
    "pseudonymise",
    "safe_series",
    "safe_text",
    "scrub_frame",
]

# ---------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------

#: Not inside a longer number and not the fractional part of a decimal
#: (``0.138...``, or ``.138...`` after a non-letter as in minified JavaScript;
#: ``Tel.138...`` is still matched).
_L = r"(?<![0-9])(?<![0-9]\.)(?<![^A-Za-z\u3400-\u9fff]\.)"
#: Not followed by more digits, a decimal fraction or a float exponent (``29155334959812285e-23``
#: in minified JavaScript).
_R = r"(?![0-9])(?!\.[0-9])(?![eE][+-]?[0-9])"

_EMAIL = r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_ID = _L + r"[1-9][0-9]{5}[ -]?[0-9]{8}[ -]?[0-9]{3}[0-9Xx]" + r"(?![0-9A-Za-z])(?!\.[0-9])"
_CARD = (
    _L
    + r"(?:[0-9]{13,19}"
    + r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{5}"
    + r"|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,3})?)"
    + _R
)
_MOBILE = (
    _L
    + r"(?:\(?(?:\+|00)?86\)?[ .-]?)?"
    # contiguous or grouped 3-4-4 by space/dash; dotted only with both dots (138.1234.5678), so
    # a float such as 139.12345678 is never taken for a phone
    + r"1[3-9][0-9](?:[ -]?[0-9]{4}[ -]?|\.[0-9]{4}\.)[0-9]{4}"
    + _R
)
_PHONE = (
    _L
    + r"(?:"
    # Chinese landline with +86 and area code without the trunk 0
    + r"(?:\+|00)86[ -]?\(?[1-9][0-9]{1,2}\)?[ -]?[1-9][0-9]{6,7}"
    # Chinese landline with area code and a separator or brackets
    + r"|(?:\(0[1-9][0-9]{1,2}\)[ -]?|0[1-9][0-9]{1,2}[ -])[1-9][0-9]{6,7}"
    # contiguous landline: 11-12 digits starting with the trunk 0
    + r"|0[1-9][0-9]{9,10}"
    # grouped 3-3-4 (400/800 service numbers, North American numbers)
    + r"|(?:\+?1[ .-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}"
    # other international numbers (digit count checked in code)
    + r"|\+[1-9][0-9]{0,2}(?:[ -]?\(?[0-9]{1,4}\)?){2,5}"
    + r")"
    + _R
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IP = r"(?<![0-9.])" + rf"{_OCTET}(?:\.{_OCTET}){{3}}" + r"(?![0-9])(?!\.[0-9])"

#: Compiled detection patterns by kind, in the order they are applied.
#: Matches of ``card``, ``phone`` and ``id`` are further validated in code
#: (see :func:`find_pii`), so a raw pattern match is a *candidate*.
PII_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "email": re.compile(_EMAIL),
    "id": re.compile(_ID),
    "card": re.compile(_CARD),
    "mobile": re.compile(_MOBILE),
    "phone": re.compile(_PHONE),
    "ip": re.compile(_IP),
}

#: Kinds masked by :func:`mask_text` by default (all of them).
MASK_KINDS: tuple[str, ...] = tuple(PII_PATTERNS)
#: Kinds :func:`assert_no_pii` looks for by default.
ASSERT_KINDS: tuple[str, ...] = ("email", "mobile", "id", "card")

#: Language-neutral replacement tokens (no digits, so masking is idempotent).
DEFAULT_TOKENS: Mapping[str, str] = {
    "email": "[email]",
    "id": "[id]",
    "card": "[card]",
    "mobile": "[phone]",
    "phone": "[phone]",
    "ip": "[ip]",
}

_FULLWIDTH = str.maketrans(
    {**{chr(0xFF10 + i): str(i) for i in range(10)}, "＋": "+", "－": "-", "＠": "@"}
)
_CANDIDATE = re.compile(r"[0-9@\uff10-\uff19\uff20]")
#: What every kind needs at least: an "@", seven digits chained by short separator runs (phones have
#: 8+, cards 13+, IDs 18) or an IPv4 shape. Text without it is returned untouched, fast.
_D = "[0-9\uff10-\uff19]"
_DENSE = re.compile(
    rf"[@\uff20]|{_D}(?:[ .()+\-\uff0b\uff0d]{{0,3}}{_D}){{6,}}|{_D}{{1,3}}(?:\.{_D}{{1,3}}){{3}}"
)
#: ISO dates and times (axis labels by the thousand): never personal data.
_DATEISH = re.compile(r"\d{4}-\d{2}(?:-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:?\d{2}|Z)?)?)?")
_NON_DIGIT = re.compile(r"[^0-9]")
_SEP = re.compile(r"[ -]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def luhn_valid(digits: str) -> bool:
    """Return whether a digit string passes the Luhn (mod 10) check.

    Parameters
    ----------
    digits : str
        Digits only.

    Returns
    -------
    bool
    """
    if not digits or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _id_checksum_valid(chars: str) -> bool:
    body, check = chars[:17], chars[17].upper()
    total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == check


def _is_card(digits: str) -> bool:
    n = len(digits)
    if not 13 <= n <= 19:
        return False
    if digits.startswith("62") and n >= 16:
        return True  # China UnionPay; older cards may not pass Luhn
    return digits[0] in "23456" and luhn_valid(digits)


def _classify(kind: str, raw: str) -> str | None:
    """Validate a candidate match; return its final kind or ``None`` (not PII)."""
    if kind == "card":
        return "card" if _is_card(_NON_DIGIT.sub("", raw)) else None
    if kind == "id":
        chars = _SEP.sub("", raw)
        if chars[-1].isdigit() and not _id_checksum_valid(chars) and _is_card(chars):
            return "card"
        return "id"
    if kind == "phone":
        n = len(_NON_DIGIT.sub("", raw))
        return "phone" if 8 <= n <= 15 else None
    return kind


def _card_prefix(raw: str) -> int:
    """For a rejected grouped card candidate, the length of a valid card prefix.

    ``"4111 1111 1111 1111 200"`` is rejected as a whole (19 digits, bad
    Luhn) but its first four groups are a card. Returns 0 if no prefix is.
    """
    cuts = [m.start() for m in _SEP.finditer(raw)]
    for cut in reversed(cuts):
        if _is_card(_NON_DIGIT.sub("", raw[:cut])):
            return cut
    return 0


def _normalise(text: str) -> str:
    return text.translate(_FULLWIDTH)


def _resolve_kinds(kinds: Iterable[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if kinds is None:
        return default
    wanted = set(kinds)
    unknown = wanted - set(PII_PATTERNS)
    if unknown:
        raise ValueError(f"unknown PII kinds: {sorted(unknown)}; known: {list(PII_PATTERNS)}")
    return tuple(k for k in PII_PATTERNS if k in wanted)


def _mask_once(text: str, kinds: tuple[str, ...], tokens: Mapping[str, str]) -> str:
    for kind in kinds:

        def repl(m: re.Match[str], kind: str = kind) -> str:
            raw = m.group(0)
            final = _classify(kind, raw)
            if final is not None:
                return tokens[final]
            if kind == "card":
                cut = _card_prefix(raw)
                if cut:
                    return tokens["card"] + raw[cut:]
            return raw

        text = PII_PATTERNS[kind].sub(repl, text)
    return text


# ---------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------


def mask_text(
    text: str | None,
    *,
    kinds: Iterable[str] | None = None,
    tokens: Mapping[str, str] | None = None,
) -> str:
    """Replace personal data in free text with language-neutral tokens.

    Parameters
    ----------
    text : str or None
        Free text in any language; ``None`` gives ``""``. Other non-strings
        are converted with ``str``.
    kinds : iterable of str, optional
        Kinds to mask, a subset of :data:`PII_PATTERNS` (default all, in the
        fixed order email, id, card, mobile, phone, ip).
    tokens : mapping, optional
        Replacement per kind, merged over :data:`DEFAULT_TOKENS`
        (``"[email]"``, ``"[phone]"``, ``"[id]"``, ``"[card]"``, ``"[ip]"``).
        Tokens must not contain digits or ``@`` or idempotency is lost.

    Returns
    -------
    str
        The masked text. Masking is applied until nothing changes, so
        ``mask_text(mask_text(x)) == mask_text(x)``. Full-width digits are
        folded to ASCII.

    Examples
    --------
    >>> mask_text("我的电话13812345678请回电")
    '我的电话[phone]请回电'
    >>> mask_text("Total 1,299.00 on 2026-10-01, order 123456789")
    'Total 1,299.00 on 2026-10-01, order 123456789'
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    use = _resolve_kinds(kinds, MASK_KINDS)
    if not _DENSE.search(text):
        return text
    toks = {**DEFAULT_TOKENS, **(tokens or {})}
    out = _normalise(text)
    for _ in range(5):  # each pass removes digits or "@"; converges fast
        new = _mask_once(out, use, toks)
        if new == out:
            break
        out = new
    return out


def _map_series(
    s: pd.Series | Iterable[Any], func: Callable[[Any], str], name: str | None = None
) -> pd.Series:
    series = s if isinstance(s, pd.Series) else pd.Series(list(s), dtype=object)
    values = series.to_numpy(dtype=object, na_value=None)
    out = [None if _is_missing(v) else func(v) for v in values]
    return pd.Series(out, index=series.index, name=series.name, dtype="str")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def mask_series(
    s: pd.Series | Iterable[Any],
    *,
    kinds: Iterable[str] | None = None,
    tokens: Mapping[str, str] | None = None,
) -> pd.Series:
    """Vectorised :func:`mask_text`; missing values stay missing.

    Parameters
    ----------
    s : pandas.Series or iterable
        Values to mask; non-strings are converted with ``str`` first (so a
        phone number stored as an integer is masked too).
    kinds, tokens
        As in :func:`mask_text`.

    Returns
    -------
    pandas.Series
        String dtype, same index and name.
    """
    use = _resolve_kinds(kinds, MASK_KINDS)
    return _map_series(s, lambda v: mask_text(v, kinds=use, tokens=tokens))


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 司徒 东方 皇甫 夏侯 慕容 尉迟 长孙 宇文 公孙 令狐 端木 独孤 "
    "南宫 西门 百里 呼延 轩辕 申屠 澹台 公冶 太史 闻人 濮阳 淳于 单于 钟离".split()
)
_LATIN_PART = re.compile(r"[^\W\d_]+", re.UNICODE)


def mask_name(name: str | None) -> str:
    """Mask a person's name, keeping only what is not identifying on its own.

    Parameters
    ----------
    name : str or None
        A Chinese or Latin-script name. ``None``/NaN/empty give ``""``.

    Returns
    -------
    str
        Chinese names keep the surname (compound surnames such as 欧阳 kept
        whole when the name is longer than the surname): ``"张三丰" ->
        "张**"``. Latin names keep the first letter of each part:
        ``"John Smith" -> "J*** S****"``, ``"Mary-Jane O'Neil" ->
        "M***-J*** O'N***"``. Digits are replaced by ``*``.

    Examples
    --------
    >>> mask_name("张伟"), mask_name("欧阳娜娜"), mask_name("John Smith")
    ('张*', '欧阳**', 'J*** S****')
    """
    if name is None or _is_missing(name):
        return ""
    text = str(name).strip()
    if not text:
        return ""
    if _CJK.match(text):
        compact = re.sub(r"\s+", "", text)
        keep = 2 if len(compact) > 2 and compact[:2] in _COMPOUND_SURNAMES else 1
        return compact[:keep] + "*" * (len(compact) - keep)
    masked = _LATIN_PART.sub(lambda m: m.group(0)[0] + "*" * (len(m.group(0)) - 1), text)
    return re.sub(r"[0-9]", "*", masked)


def mask_name_series(s: pd.Series | Iterable[Any]) -> pd.Series:
    """Vectorised :func:`mask_name`; missing values stay missing."""
    return _map_series(s, mask_name)


# ---------------------------------------------------------------------------
# Labels (category, handler, segment, channel, driver and dataset names)
# ---------------------------------------------------------------------------

_LABELS: dict[str, str] = {}
_LABELS_TAKEN: set[str] = set()
_LABELS_LOCK = threading.Lock()
_LABEL_CACHE_MAX = 200_000


def mask_label(label: Any) -> Any:
    """Mask personal data in a label, keeping distinct labels distinct.

    Labels come from the data (complaint categories, handlers, segments,
    channels, driver names, the dataset name) and reach figures, tables and
    metrics. Personal data inside them is masked wherever it sits, also glued
    to letters (``"VIP13812345678" -> "VIP[phone]"``). When two different
    labels mask to the same text, the later one gets a number
    (``"VIP[phone] (2)"``) so a chart never merges two categories; the mapping
    is kept for the process, so a label masks the same way in every figure,
    table and metric of a notebook run.

    Parameters
    ----------
    label : object
        Strings are masked; anything else is returned unchanged.

    Returns
    -------
    object
    """
    if not isinstance(label, str) or not _may_hold_pii(label):
        return label
    with _LABELS_LOCK:
        hit = _LABELS.get(label)
        if hit is not None:
            return hit
        masked = mask_text(label)
        if masked != label:
            base, n = masked, 1
            while masked in _LABELS_TAKEN:
                n += 1
                masked = f"{base} ({n})"
            _LABELS_TAKEN.add(masked)
            _LABELS[label] = masked
        elif len(_LABELS) < _LABEL_CACHE_MAX:  # clean labels are only cached, never remembered
            _LABELS[label] = masked
        return masked


def mask_labels(obj: Any) -> Any:
    """:func:`mask_label` every string in a JSON-like object (dict keys too), recursively.

    Lists, tuples, dicts and object/string numpy arrays are rebuilt; numbers,
    booleans and ``None`` pass through.
    """
    if isinstance(obj, str):
        return mask_label(obj)
    if isinstance(obj, Mapping):
        return {mask_label(k): mask_labels(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        items = _mask_many(list(obj))
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "OUS":
        out = np.empty(obj.shape, dtype=object)
        out.ravel()[:] = _mask_many(obj.ravel().tolist())
        return out
    return obj


def _may_hold_pii(text: str) -> bool:
    """Cheap checks first: most labels have no digit, and dates are the commonest digit labels."""
    return bool(_CANDIDATE.search(text)) and not _DATEISH.fullmatch(text) and bool(_DENSE.search(text))


def _mask_many(items: list[Any]) -> list[Any]:
    """:func:`mask_labels` over a list; the strings are scanned in one pass (figures carry thousands)."""
    out = [v if isinstance(v, str) or not isinstance(v, Mapping | list | tuple | np.ndarray) else mask_labels(v)
           for v in items]
    idx = [i for i, v in enumerate(out)
           if isinstance(v, str) and _may_hold_pii(v)]
    if len(idx) < 8 or any("\x00" in out[i] for i in idx):
        for i in idx:
            out[i] = mask_label(out[i])
        return out
    # NUL is in no pattern, so no match can span two strings
    masked = mask_text("\x00".join(out[i] for i in idx)).split("\x00")
    if len(masked) != len(idx):  # pragma: no cover - defensive
        masked = [mask_text(out[i]) for i in idx]
    for i, m in zip(idx, masked, strict=True):
        if m != out[i]:
            out[i] = mask_label(out[i])  # the label mapping keeps distinct labels distinct
    return out


# ---------------------------------------------------------------------------
# Person names in free text
# ---------------------------------------------------------------------------

#: Replacement for a person's name in free text (no digits: masking stays idempotent).
NAME_TOKEN = "[name]"

#: The most common Chinese surnames (single character); with the compound ones above they mark a
#: two- or three-character word that jieba does not know as a likely name.
_ZH_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵"
    "万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘"
    "祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾"
    "尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师"
    "和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
#: Cues after which the next 2-3 Chinese characters are a name (我是林芳, 我叫李娜, 姓名：王伟).
_ZH_CUE = re.compile(
    r"(?:我是|我叫|本人|姓名[:：]?|名字[是叫:：]?|联系人[:：]?|客户[:：]|签名[:：]?|落款[:：]?)"
    r"([\u4e00-\u9fff]{2,3})"
)
_ZH_NAME_FLAGS = ("nr",)  # jieba.posseg: nr person, nrt transliterated, nrfg other person names

#: Titles after which one or two capitalised words are a name (Mr Smith, Dr. Jane Doe).
_EN_TITLE = re.compile(
    r"\b(Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam|Mme|Mlle)(\.?\s+)"
    r"[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*(?:\s+[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*)?"
)
#: Cues after which one or two capitalised words are a name ("my name is Anna", "agent Karen").
_EN_CUE = re.compile(
    r"(?i:\b(?:my name is|name's|i am|i'm|this is|called|named|signed|regards,?|thanks,?|sincerely,?"
    r"|agent|rep|representative|advisor|adviser|assistant|manager|staff member|employee|cashier"
    r"|clerk|operator|colleague|driver|courier|customer)\s+)"
    r"([A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*(?:\s+[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*)?)"
)
#: Runs of capitalised words ("John Smith", "Mary-Jane O'Neil").
_EN_CAPS_RUN = re.compile(
    r"\b[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*(?:\s[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*)+\b"
)
_EN_WORD = re.compile(r"[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*")
#: Capitalised words that are not names (sentence starters, days, months, shop vocabulary): a run of
#: capitalised words is split at these and what remains (two or more words) is masked.
_EN_NOT_NAMES = frozenset(
    """a an the this that these those there here i i'm i've my me mine we our ours us you your yours
    he his him she her hers it its they them their what when where why how who which whose if so and
    but or not no yes very really just also still again ok okay dear hello hi hey thanks thank please
    sorry great good bad poor terrible awful horrible excellent nice fine worst best love hate happy
    unhappy angry disappointed never always today yesterday tomorrow customer customers service
    services support care centre center store stores shop shops app online website web mall branch
    member members membership points point loyalty gold silver bronze platinum diamond vip card cards
    club rewards reward bonus gift coupon voucher order orders delivery refund return returns price
    product products quality staff manager team call hotline email wechat alipay monday tuesday
    wednesday thursday friday saturday sunday january february march april may june july august
    september october november december christmas easter new year china chinese english beijing
    shanghai shenzhen guangzhou hong kong express plus pro max mini ltd inc co company group bank
    street road avenue floor level department dept mr mrs ms miss mx dr prof sir madam""".split()
)
_LATIN_EXTRA = re.compile(r"[^\W\d_]", re.UNICODE)


def _zh_name_spans(text: str) -> list[tuple[int, int]]:
    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(60)
    spans = [m.span(1) for m in _ZH_CUE.finditer(text)]
    pos = 0
    for word, flag in pseg.cut(text):
        if flag.startswith(_ZH_NAME_FLAGS):
            lo = pos
            # jieba often tags only the given name (欧阳[娜娜], 小[李]): take a surname before it along
            if lo >= 2 and text[lo - 2 : lo] in _COMPOUND_SURNAMES:
                lo -= 2
            elif lo >= 1 and text[lo - 1] in _ZH_SURNAMES and len(word) <= 2:
                lo -= 1
            spans.append((lo, pos + len(word)))
        pos += len(word)
    return spans


def zh_name_token(token: str) -> bool:
    """Whether a jieba token is probably a person's name (cheap; for term counting).

    ``True`` for words jieba's dictionary tags as a person's name, and for
    2-3 character words jieba does not know (found by its HMM) that start with
    a common surname (``"林芳"``).
    """
    import jieba.posseg as pseg

    if not 2 <= len(token) <= 4 or not _CJK.match(token):
        return False
    tag = pseg.dt.word_tag_tab.get(token)
    if tag is not None:
        return tag.startswith(_ZH_NAME_FLAGS)
    import jieba

    jieba.dt.check_initialized()
    if jieba.dt.FREQ.get(token, 0) > 0:  # a dictionary word (prefixes are stored with 0)
        return False
    return len(token) <= 3 and (token[0] in _ZH_SURNAMES or token[:2] in _COMPOUND_SURNAMES)


def _en_name_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _EN_TITLE.finditer(text):
        spans.append((m.end(2), m.end()))
    for m in _EN_CUE.finditer(text):
        words = list(_EN_WORD.finditer(m.group(1)))
        keep = [w for w in words if w.group(0).lower() not in _EN_NOT_NAMES]
        if keep and keep[0] is words[0]:
            first = words[0]
            last = words[1] if len(words) > 1 and words[1] in keep else first
            spans.append((m.start(1) + first.start(), m.start(1) + last.end()))
    for m in _EN_CAPS_RUN.finditer(text):
        run: list[re.Match[str]] = []
        for w in [*_EN_WORD.finditer(m.group(0)), None]:
            if w is not None and w.group(0).lower() not in _EN_NOT_NAMES:
                run.append(w)
                continue
            if len(run) >= 2:
                spans.append((m.start() + run[0].start(), m.start() + run[-1].end()))
            run = []
    return spans


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def names_maskable(text: str | None) -> bool:
    """Whether :func:`mask_person_names` can be trusted on ``text``.

    Name masking knows Chinese (jieba's person tags) and English (titles,
    cues and runs of capitalised words). Text with letters of any other
    script or accented Latin letters (another language, or names spelt with
    diacritics) is not trusted: quote it nowhere a manager reads.
    """
    if text is None or _is_missing(text):
        return True
    for ch in _LATIN_EXTRA.findall(str(text)):
        if ch.isascii() or _CJK.match(ch):
            continue
        return False
    return True


def mask_person_names(text: str | None, token: str = NAME_TOKEN) -> str:
    """Replace person names in Chinese or English free text by ``token``.

    Chinese: words jieba's part-of-speech tagger marks as person names
    (``nr``, ``nrt``, ``nrfg``; a surname right before a tagged given name is
    included) and the 2-3 characters after cues such as 我是 / 我叫 / 姓名.
    English (a conservative rule): one or two capitalised words after a title
    (Mr, Ms, Dr, ...) or a cue ("my name is", "I am", "agent", "signed", ...)
    and every run of two or more capitalised words once common words (sentence
    starters, days, months, shop vocabulary) are split off —
    ``"John Smith says"`` -> ``"[name] says"``, ``"Customer Service was
    slow"`` unchanged. Single capitalised words without a cue are kept.

    Parameters
    ----------
    text : str or None
    token : str, default "[name]"

    Returns
    -------
    str
        ``""`` for ``None``. Check :func:`names_maskable` first: text in
        other languages is returned with its names.
    """
    if text is None or _is_missing(text):
        return ""
    s = str(text)
    spans: list[tuple[int, int]] = []
    if _CJK.search(s):
        spans += _zh_name_spans(s)
    if re.search(r"[A-Z][a-z]", s):
        spans += _en_name_spans(s)
    if not spans:
        return s
    parts, pos = [], 0
    for lo, hi in _merge(spans):
        parts += [s[pos:lo], token]
        pos = hi
    parts.append(s[pos:])
    return "".join(parts)


def quote_text(text: str | None) -> str | None:
    """Free text fit to quote in a manager page, or ``None`` when it must not be quoted.

    Personal data (:func:`mask_text`) and person names
    (:func:`mask_person_names`) are masked; text whose names cannot be found
    reliably (:func:`names_maskable` is False: not Chinese or English) gives
    ``None`` — quote it in the analyst notebook only. Not HTML-escaped.
    """
    if text is None or _is_missing(text):
        return None
    s = str(text)
    if not names_maskable(s):
        return None
    return mask_person_names(mask_text(s))


# ---------------------------------------------------------------------------
# HTML escaping
# ---------------------------------------------------------------------------


def escape_html(text: str | None) -> str:
    """HTML-escape untrusted text (``html.escape(quote=True)``); ``None`` -> ``""``."""
    if text is None or _is_missing(text):
        return ""
    return html.escape(str(text), quote=True)


def safe_text(text: str | None) -> str:
    """Mask personal data, then HTML-escape: ready to drop into a report page.

    The order matters. Masking runs on the text as the customer wrote it, so
    patterns see real characters rather than entities (``&#x27;``, ``&amp;``)
    whose digits and punctuation could hide or fake a match; escaping runs
    last so that the final string is guaranteed inert markup whatever the
    replacement tokens contain.

    Examples
    --------
    >>> safe_text("<script>alert(1)</script> 13812345678")
    '&lt;script&gt;alert(1)&lt;/script&gt; [phone]'
    """
    return escape_html(mask_text(text))


def escape_series(s: pd.Series | Iterable[Any]) -> pd.Series:
    """Vectorised :func:`escape_html`; missing values stay missing."""
    return _map_series(s, escape_html)


def safe_series(s: pd.Series | Iterable[Any]) -> pd.Series:
    """Vectorised :func:`safe_text`; missing values stay missing."""
    return _map_series(s, safe_text)


# ---------------------------------------------------------------------------
# Pseudonymisation
# ---------------------------------------------------------------------------

#: Environment variable holding the pseudonymisation key.
PSEUDONYM_ENV_VAR = "WORKBENCH_PSEUDONYM_KEY"
_PROCESS_KEY = secrets.token_bytes(32)


#: Set by the report pipeline beside a key it generated, so notebooks can say where the key came from.
PSEUDONYM_SOURCE_ENV_VAR = "WORKBENCH_PSEUDONYM_KEY_SOURCE"
#: ``pseudonym_key_source`` value for a key the report pipeline made for one run.
GENERATED_FOR_RUN = "generated for this run"


class PseudonymKeyWarning(UserWarning):
    """No ``WORKBENCH_PSEUDONYM_KEY``: pseudonyms differ from those of other runs."""


_WARNED = {"random": False}


def pseudonym_key_source(key: bytes | str | None = None) -> str:
    """Say which key :func:`pseudonymise` uses for this ``key`` argument.

    Returns
    -------
    {"argument", "env", "generated for this run", "random"}
        ``"argument"`` when a key is passed; ``"env"`` when
        ``WORKBENCH_PSEUDONYM_KEY`` is set and non-empty (by the operator);
        ``"generated for this run"`` when the report pipeline made the key for
        one run (shared by all its notebooks and languages, see
        :func:`run_pseudonym_key`); ``"random"`` otherwise: a random key made
        once per process, so pseudonyms are stable within the process but
        **differ between runs** (trends across runs cannot be joined on them).
    """
    if key is not None:
        return "argument"
    if os.environ.get(PSEUDONYM_ENV_VAR):
        return os.environ.get(PSEUDONYM_SOURCE_ENV_VAR) or "env"
    return "random"


def run_pseudonym_key() -> tuple[str, str]:
    """The pseudonymisation key for one report run and where it came from.

    Returns
    -------
    (key, source)
        ``WORKBENCH_PSEUDONYM_KEY`` and ``"env"`` when it is set; otherwise a
        new random key and ``"generated for this run"``, with a
        :class:`PseudonymKeyWarning` (pseudonyms will not match other runs'). The
        pipeline hands the key to every notebook of the run, so the en and zh
        copies show the same pseudonym for the same customer.
    """
    env = os.environ.get(PSEUDONYM_ENV_VAR)
    if env:
        return env, "env"
    warnings.warn(
        f"{PSEUDONYM_ENV_VAR} is not set: pseudonyms use a key generated for this run and will not "
        "match other runs'; set it (a long random secret, kept out of the repository) to keep them stable",
        PseudonymKeyWarning,
        stacklevel=2,
    )
    return secrets.token_hex(32), GENERATED_FOR_RUN


def _resolve_key(key: bytes | str | None) -> bytes:
    if key is None:
        env = os.environ.get(PSEUDONYM_ENV_VAR)
        if env:
            return env.encode("utf-8")
        if not _WARNED["random"]:
            _WARNED["random"] = True
            warnings.warn(
                f"{PSEUDONYM_ENV_VAR} is not set: pseudonyms use a random key for this process only",
                PseudonymKeyWarning,
                stacklevel=3,
            )
        return _PROCESS_KEY
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key:
        raise ValueError("pseudonymisation key must not be empty")
    return key


def _id_to_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # 123.0 (ids read with NaNs) == "123"
    return str(value)


def pseudonymise(
    ids: pd.Series | Iterable[Any],
    key: bytes | str | None = None,
    *,
    prefix: str = "p_",
    length: int = 12,
) -> pd.Series:
    """Replace customer ids by keyed hashes (HMAC-SHA256).

    Parameters
    ----------
    ids : pandas.Series or iterable
        Customer ids. Non-strings are converted with ``str``; integral floats
        (``123.0``) are treated as integers so ``123``, ``123.0`` and
        ``"123"`` agree. Missing ids stay missing.
    key : bytes or str, optional
        Secret key. Default: the ``WORKBENCH_PSEUDONYM_KEY`` environment
        variable, else a random key made once per process (pseudonyms then
        differ between runs; see :func:`pseudonym_key_source`).
    prefix : str, default "p_"
        Prefix marking the value as a pseudonym.
    length : int, default 12
        Hex characters kept from the digest (12 hex = 48 bits; collisions are
        negligible below ~10 million distinct ids).

    Returns
    -------
    pandas.Series
        String dtype, same index and name as ``ids``; every value has length
        ``len(prefix) + length``.

    Notes
    -----
    Each distinct id is hashed once (``pandas.factorize``), so 1M rows of
    50k customers cost 50k HMACs; 1M distinct ids take about a second.
    """
    if not 4 <= length <= 64:
        raise ValueError("length must be between 4 and 64")
    series = ids if isinstance(ids, pd.Series) else pd.Series(list(ids), dtype=object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    secret = _resolve_key(key)
    # HMAC by hand with pre-keyed hash states: ~2x faster than hmac.new per id.
    block = 64
    if len(secret) > block:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(block, b"\0")
    inner0 = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
    outer0 = hashlib.sha256(bytes(b ^ 0x5C for b in secret))

    def digest(value: Any) -> str:
        inner = inner0.copy()
        inner.update(_id_to_str(value).encode("utf-8"))
        outer = outer0.copy()
        outer.update(inner.digest())
        return prefix + outer.hexdigest()[:length]

    hashed = np.array([digest(v) for v in np.asarray(uniques, dtype=object)] + [None], dtype=object)
    out = hashed[codes]  # code -1 (missing) picks the trailing None
    return pd.Series(out, index=series.index, name=series.name, dtype="str")


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------


def scrub_frame(
    df: pd.DataFrame,
    id_columns: Iterable[str] = ("customer_id",),
    pii_columns: Iterable[str] = (
        "name",
        "email",
        "phone",
        "mobile",
        "id_card",
        "bank_card",
        "address",
    ),
    text_columns: Iterable[str] = ("comment", "verbatim", "open_answer", "notes", "text"),
    *,
    pii: Literal["drop", "mask"] = "drop",
    key: bytes | str | None = None,
    strict: bool = False,
) -> pd.DataFrame:
    """Return a copy of ``df`` that is safe for manager output.

    Parameters
    ----------
    df : pandas.DataFrame
        Input; not modified.
    id_columns : iterable of str
        Columns pseudonymised with :func:`pseudonymise` (same key for all, so
        joins across tables still work).
    pii_columns : iterable of str
        Columns holding personal data. ``pii="drop"`` (default) removes them.
        ``pii="mask"`` keeps them masked: columns whose name contains
        ``"name"`` through :func:`mask_name`, others through
        :func:`mask_text`; a non-empty value that nothing recognised (say a
        malformed phone number) becomes ``"[redacted]"``.
    text_columns : iterable of str
        Free-text columns passed through :func:`mask_series`.
    pii : {"drop", "mask"}
        What to do with ``pii_columns``.
    key : bytes or str, optional
        Pseudonymisation key (see :func:`pseudonymise`).
    strict : bool, default False
        If True, a listed column missing from ``df`` raises ``KeyError``;
        otherwise absent columns are skipped (the defaults list common names).

    Returns
    -------
    pandas.DataFrame
        Index and column order preserved (minus dropped columns). The index
        is not touched: do not keep ids in it.
    """
    if pii not in ("drop", "mask"):
        raise ValueError("pii must be 'drop' or 'mask'")
    groups = {"id": list(id_columns), "pii": list(pii_columns), "text": list(text_columns)}
    if strict:
        missing = [c for cols in groups.values() for c in cols if c not in df.columns]
        if missing:
            raise KeyError(f"columns not in frame: {missing}")
    present = {k: [c for c in v if c in df.columns] for k, v in groups.items()}

    new_cols: dict[str, pd.Series] = {}
    for col in present["id"]:
        new_cols[col] = pseudonymise(df[col], key=key)
    for col in present["text"]:
        new_cols[col] = mask_series(df[col])
    if pii == "mask":
        for col in present["pii"]:
            if "name" in col.lower():
                new_cols[col] = mask_name_series(df[col])
            else:
                new_cols[col] = _map_series(df[col], _mask_or_redact)
    out = df.assign(**new_cols) if new_cols else df.copy()
    if pii == "drop":
        out = out.drop(columns=present["pii"])
    return out


def _mask_or_redact(value: Any) -> str:
    raw = str(value)
    masked = mask_text(raw)
    if masked == raw and raw.strip():
        return "[redacted]"
    return masked


# ---------------------------------------------------------------------------
# Backstop
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PIIFinding:
    """One suspected piece of personal data.

    Attributes
    ----------
    kind : str
        Pattern kind (``"mobile"``, ``"email"``, ...).
    location : str
        Where it was found: a JSON-path-like string (``"$.top[0].note"``) or
        ``"$"`` for a plain string, plus ``@<offset>``.
    excerpt : str
        Surrounding text with *all* personal data masked; never the raw value.
    """

    kind: str
    location: str
    excerpt: str


class PIILeakError(ValueError):
    """Raised by :func:`assert_no_pii`; ``findings`` lists what was found."""

    def __init__(self, findings: Iterable[PIIFinding]) -> None:
        self.findings: tuple[PIIFinding, ...] = tuple(findings)
        shown = "; ".join(f"{f.kind} at {f.location}: {f.excerpt!r}" for f in self.findings[:10])
        more = len(self.findings) - 10
        suffix = f"; ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.findings)} possible PII value(s) found: {shown}{suffix}")


#: Generated identifiers whose digits may happen to look like personal data: pseudonyms made
#: by :func:`pseudonymise` (``p_`` + 12 hex), UUIDs (plotly div ids) and long hex digests.
_GENERATED = re.compile(
    r"(?<![0-9A-Za-z])p_[0-9a-f]{12}(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z])[0-9a-fA-F]{24,}(?![0-9A-Za-z])"
)
_HEX_LETTER = re.compile(r"[a-fA-F]")
_DIGIT = re.compile(r"[0-9]")


def _generated_spans(text: str) -> list[tuple[int, int]]:
    """Spans of generated identifiers (a hex run counts only when it has a hex letter)."""
    out = []
    for m in _GENERATED.finditer(text):
        raw = m.group(0)
        if raw.startswith("p_") or "-" in raw or _HEX_LETTER.search(raw):
            out.append(m.span())
    return out

#: Matches known not to be customer data, allowed by default: the author email
#: in the licence header of the plotly.js bundle that reports embed.
PUBLIC_ALLOWLIST: tuple[str, ...] = ("feross@feross.org",)


def find_pii(
    text: str,
    *,
    kinds: Iterable[str] | None = None,
    allow: Iterable[str] = PUBLIC_ALLOWLIST,
    location: str = "$",
    context: int = 20,
) -> list[PIIFinding]:
    """List suspected personal data in ``text`` (no exception).

    Parameters
    ----------
    text : str
        Text to scan (e.g. a whole HTML page).
    kinds : iterable of str, optional
        Kinds to look for (default :data:`ASSERT_KINDS`).
    allow : iterable of str
        Exact matched strings that are not leaks (default
        :data:`PUBLIC_ALLOWLIST`; pass ``(*PUBLIC_ALLOWLIST, "service@firm.cn")``
        to extend it).
    location : str
        Prefix for :attr:`PIIFinding.location`.
    context : int
        Characters of (masked) context on each side in the excerpt.

    Returns
    -------
    list of PIIFinding

    Notes
    -----
    Personal data is found wherever it sits, also glued to letters or
    underscores (``VIP13812345678``, ``Agent_11010519491231002X``,
    ``card6222020200112233445``). Only digits inside generated identifiers
    are ignored: pseudonyms (``p_`` + 12 lowercase hex), UUIDs and hex runs of
    24 or more characters holding at least one hex letter (digests).
    """
    if not _CANDIDATE.search(text):
        return []
    use = _resolve_kinds(kinds, ASSERT_KINDS)
    allowed = set(allow)
    norm = _normalise(text)  # same length: translation is 1:1
    generated = _generated_spans(norm)
    found: list[PIIFinding] = []
    for kind in use:
        for m in PII_PATTERNS[kind].finditer(norm):
            raw = m.group(0)
            if raw in allowed:
                continue
            final = _classify(kind, raw)
            if final is None:
                continue
            if kind != "email" and any(lo <= m.start() and m.end() <= hi for lo, hi in generated):
                continue
            lo, hi = max(0, m.start() - context), min(len(norm), m.end() + context)
            # context digits become "#": a window edge may cut a neighbouring number so that
            # masking no longer recognises it
            excerpt = (
                _DIGIT.sub("#", mask_text(norm[lo : m.start()]))
                + DEFAULT_TOKENS[final]
                + _DIGIT.sub("#", mask_text(norm[m.end() : hi]))
            )
            found.append(PIIFinding(final, f"{location}@{m.start()}", excerpt))
    return found


def _walk(obj: Any, path: str, check_numbers: bool) -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            sub = f"{path}[{k!r}]" if not isinstance(k, str) else f"{path}.{k}"
            if isinstance(k, str):
                yield f"{path}.<key>", k
            yield from _walk(v, sub, check_numbers)
    elif isinstance(obj, pd.DataFrame):
        yield from _walk(obj.to_dict(orient="list"), path, check_numbers)
        yield from _walk([str(i) for i in obj.index], f"{path}.<index>", check_numbers)
    elif isinstance(obj, pd.Series | np.ndarray):
        yield from _walk(obj.tolist(), path, check_numbers)
    elif isinstance(obj, list | tuple | set | frozenset):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]", check_numbers)
    elif isinstance(obj, bool | np.bool_):
        return
    elif isinstance(obj, int | np.integer):
        if check_numbers:
            yield path, str(int(obj))
    elif isinstance(obj, bytes):
        yield path, obj.decode("utf-8", errors="replace")


def assert_no_pii(
    obj: Any,
    *,
    kinds: Iterable[str] | None = None,
    allow: Iterable[str] = PUBLIC_ALLOWLIST,
    check_numbers: bool = True,
) -> None:
    """Raise :class:`PIILeakError` if ``obj`` contains personal data.

    Parameters
    ----------
    obj : object
        A string (e.g. an HTML page) or a JSON-like object: dicts (keys and
        values), lists/tuples, strings, numbers; DataFrames/Series/arrays are
        walked too. Floats are never checked (aggregates such as revenue
        totals are floats; an 11-digit total would look like a mobile).
    kinds : iterable of str, optional
        Default :data:`ASSERT_KINDS`: email, mobile, id, card.
    allow : iterable of str
        Exact matched strings that are known not to be personal data
        (default :data:`PUBLIC_ALLOWLIST`). With it, the ``plotly.min.js``
        shipped with plotly 7.1 (4.8 MB, inlined in offline reports) scans
        clean.
    check_numbers : bool, default True
        Check integers as their decimal string (a mobile number stored as an
        ``int`` is caught). Set False if legitimate 11+ digit integer totals
        trip the check.

    Raises
    ------
    PIILeakError
        Listing kind, location and a masked excerpt for each finding; the
        message never contains the raw value.
    """
    allow = tuple(allow)
    findings: list[PIIFinding] = []
    for path, text in _walk(obj, "$", check_numbers):
        findings.extend(find_pii(text, kinds=kinds, allow=allow, location=path))
    if findings:
        raise PIILeakError(findings)
