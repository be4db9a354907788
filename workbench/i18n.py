"""One translation table for every user-facing string (English and Chinese).

Strings live in TOML files under ``workbench/translations/`` — one file per
concern so that analyses can add their own without touching each other. A file
holds nested tables whose leaves are ``{en = "...", zh = "..."}``; the dotted
path is the key::

    [overview.title]
    en = "Data overview"
    zh = "数据概览"

``t("overview.title", "zh")`` returns ``"数据概览"``. Strings may contain
``str.format`` placeholders: ``t("rows", "en", n=fmt_int(5, "en"))``.

Number and date formatting follow the language too (``fmt_int``, ``fmt_num``,
``fmt_pct``, ``fmt_money``, ``fmt_date``, ``fmt_period``).
"""

from __future__ import annotations

import datetime as _dt
import math
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

LANGS: tuple[str, ...] = ("en", "zh")
TRANSLATIONS_DIR = Path(__file__).with_name("translations")


class MissingTranslation(KeyError):
    """A key is not in the translation table (or lacks a language)."""


def check_lang(lang: str) -> str:
    """Return ``lang`` if supported, else raise ``ValueError`` naming the choices."""
    if lang not in LANGS:
        raise ValueError(f"Unsupported language {lang!r}; choose one of {', '.join(LANGS)}")
    return lang


def _flatten(node: dict[str, Any], prefix: str, out: dict[str, dict[str, str]], source: Path) -> None:
    if set(node) & set(LANGS) and all(isinstance(v, str) for v in node.values()):
        out[prefix] = dict(node)
        return
    for name, value in node.items():
        key = f"{prefix}.{name}" if prefix else name
        if not isinstance(value, dict):
            raise ValueError(f"{source}: entry {key!r} must be a table with en/zh strings")
        _flatten(value, key, out, source)


@cache
def table() -> dict[str, dict[str, str]]:
    """The merged translation table ``{key: {"en": ..., "zh": ...}}``."""
    merged: dict[str, dict[str, str]] = {}
    for path in sorted(TRANSLATIONS_DIR.glob("*.toml")):
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        flat: dict[str, dict[str, str]] = {}
        _flatten(data, "", flat, path)
        duplicated = set(flat) & set(merged)
        if duplicated:
            raise ValueError(f"{path.name}: keys already defined elsewhere: {sorted(duplicated)[:5]}")
        merged.update(flat)
    return merged


def t(key: str, lang: str = "en", /, **values: Any) -> str:
    """Translate ``key`` into ``lang`` and fill ``str.format`` placeholders."""
    check_lang(lang)
    try:
        text = table()[key][lang]
    except KeyError as exc:
        raise MissingTranslation(f"No {lang!r} text for key {key!r} in {TRANSLATIONS_DIR}") from exc
    return text.format(**values) if values else text


def has(key: str) -> bool:
    """True when ``key`` exists in the translation table."""
    return key in table()


# ---------------------------------------------------------------- formatting
def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_int(value: Any, lang: str = "en") -> str:
    """Whole number with thousands separators (same convention in en and zh-CN)."""
    if _is_missing(value):
        return "–"
    return f"{round(float(value)):,}"


def fmt_num(value: Any, lang: str = "en", digits: int = 2) -> str:
    """Number with ``digits`` decimals and thousands separators."""
    if _is_missing(value):
        return "–"
    return f"{float(value):,.{digits}f}"


def fmt_pct(value: Any, lang: str = "en", digits: int = 1) -> str:
    """A share in [0, 1] shown as a percentage.

    A share that is not zero (or not one) never prints as ``0.0%`` (``100.0%``): a reader would take it for
    none (all). It prints as ``<0.1%`` (``>99.9%``) instead.
    """
    if _is_missing(value):
        return "–"
    v = 100 * float(value)
    half = 0.5 * 10.0**-digits
    if 0 < v < half:
        return f"<{10.0**-digits:.{digits}f}%"
    if 100 - half <= v < 100:
        return f">{100 - 10.0**-digits:.{digits}f}%"
    return f"{v:.{digits}f}%"


def fmt_money(value: Any, lang: str = "en", currency: str = "CNY", digits: int = 0) -> str:
    """Amount with currency; zh uses 万/亿 for large amounts as Chinese readers expect."""
    if _is_missing(value):
        return "–"
    v = float(value)
    if lang == "zh":
        symbol = {"CNY": "¥", "RMB": "¥"}.get(currency.upper(), currency + " ")
        if abs(v) >= 1e8:
            return f"{symbol}{v / 1e8:,.2f}亿"
        if abs(v) >= 1e4:
            return f"{symbol}{v / 1e4:,.1f}万"
        return f"{symbol}{v:,.{digits}f}"
    symbol = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£"}.get(currency.upper(), currency + " ")
    if abs(v) >= 1e9:
        return f"{symbol}{v / 1e9:,.2f}bn"
    if abs(v) >= 1e6:
        return f"{symbol}{v / 1e6:,.2f}m"
    return f"{symbol}{v:,.{digits}f}"


def fmt_date(value: Any, lang: str = "en") -> str:
    """Date as ``2026-10-31`` (en) or ``2026年10月31日`` (zh)."""
    if _is_missing(value):
        return "–"
    if isinstance(value, str):
        value = _dt.date.fromisoformat(value[:10])
    if isinstance(value, _dt.datetime):  # includes pandas Timestamp
        value = value.date()
    if lang == "zh":
        return f"{value.year}年{value.month}月{value.day}日"
    return value.isoformat()


def fmt_datetime(value: Any, lang: str = "en") -> str:
    """Date and time to the minute."""
    if _is_missing(value):
        return "–"
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value)
    return fmt_date(value, lang) + " " + value.strftime("%H:%M")


def fmt_month(value: Any, lang: str = "en") -> str:
    """Month label: ``Oct 2026`` (en) or ``2026年10月`` (zh)."""
    if isinstance(value, str):
        value = _dt.date.fromisoformat(value[:7] + "-01")
    if lang == "zh":
        return f"{value.year}年{value.month}月"
    return value.strftime("%b %Y")


def fmt_p(p: Any, lang: str = "en") -> str:
    """p-value in the usual reporting style (p<0.001 below that)."""
    if _is_missing(p):
        return "–"
    p = float(p)
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"
