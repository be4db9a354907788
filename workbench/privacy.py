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

Not detected: numbers written in Chinese numerals (一三八…), names inside free
text, postal addresses. Names are handled by column (:func:`mask_name`,
:func:`scrub_frame`).
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import secrets
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
    "PSEUDONYM_ENV_VAR",
    "PUBLIC_ALLOWLIST",
    "PIIFinding",
    "PIILeakError",
    "assert_no_pii",
    "escape_html",
    "escape_series",
    "find_pii",
    "luhn_valid",
    "mask_name",
    "mask_name_series",
    "mask_series",
    "mask_text",
    "pseudonym_key_source",
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
#: Not followed by more digits or by a decimal fraction.
_R = r"(?![0-9])(?!\.[0-9])"

_EMAIL = r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_ID = _L + r"[1-9][0-9]{5}[ -]?[0-9]{8}[ -]?[0-9]{3}[0-9Xx]" + r"(?![0-9A-Za-z])(?!\.[0-9])"
_CARD = (
    _L
    + r"(?:[0-9]{13,19}"
    + r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{5}"
    + r"|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,3})?)"
    + _R
)
_MOBILE = _L + r"(?:\(?(?:\+|00)?86\)?[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}" + _R
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
    if not _CANDIDATE.search(text):
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


def pseudonym_key_source(key: bytes | str | None = None) -> Literal["argument", "env", "random"]:
    """Say which key :func:`pseudonymise` uses for this ``key`` argument.

    Returns
    -------
    {"argument", "env", "random"}
        ``"argument"`` when a key is passed; ``"env"`` when
        ``WORKBENCH_PSEUDONYM_KEY`` is set and non-empty; ``"random"``
        otherwise: a random key made once per process, so pseudonyms are
        stable within a run but **differ between runs** (record this in the
        report's provenance; trends across runs cannot be joined on them).
    """
    if key is not None:
        return "argument"
    return "env" if os.environ.get(PSEUDONYM_ENV_VAR) else "random"


def _resolve_key(key: bytes | str | None) -> bytes:
    if key is None:
        env = os.environ.get(PSEUDONYM_ENV_VAR)
        return env.encode("utf-8") if env else _PROCESS_KEY
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


_IDENT_CHAR = re.compile(r"[A-Za-z_]")

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
    Unlike :func:`mask_text`, numeric kinds are ignored when glued to an
    ASCII letter or underscore (``p_0138...``, uuids, hashes in HTML), so
    pseudonyms and generated identifiers do not trip the check.
    """
    if not _CANDIDATE.search(text):
        return []
    use = _resolve_kinds(kinds, ASSERT_KINDS)
    allowed = set(allow)
    norm = _normalise(text)  # same length: translation is 1:1
    found: list[PIIFinding] = []
    for kind in use:
        for m in PII_PATTERNS[kind].finditer(norm):
            raw = m.group(0)
            if raw in allowed:
                continue
            final = _classify(kind, raw)
            if final is None:
                continue
            if kind != "email":
                before = norm[m.start() - 1] if m.start() else ""
                after = norm[m.end()] if m.end() < len(norm) else ""
                if _IDENT_CHAR.match(before) or _IDENT_CHAR.match(after):
                    continue
            lo, hi = max(0, m.start() - context), min(len(norm), m.end() + context)
            excerpt = (
                mask_text(norm[lo : m.start()])
                + DEFAULT_TOKENS[final]
                + mask_text(norm[m.end() : hi])
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
