"""The pack summary: KPI tiles gathered from every page record, judged against ``[targets]``.

Each report page records its KPIs (:class:`workbench.results.KPI`, stored as dicts under
``"kpis"`` in ``<period>/<lang>/<name>.metrics.json``). The pack summary (``index.html``) shows
5-8 of them as tiles: the value formatted by its unit, the change against the previous period
(the KPI's own ``previous``, else the same key in the previous period's records when both periods
are equally covered), the base n, and the target with its red / amber / green status when
``[targets]`` in workbench.toml sets one (see :class:`workbench.config.Target`). Tiles with a
target come first.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.config import Target
from workbench.i18n import fmt_int, fmt_money, fmt_pct
from workbench.i18n import t as translate

#: KPI keys the analyses record (docs/DEVELOPING.md, "The result shape"), in tile order of preference.
KNOWN_KPIS = (
    "complaint_rate", "satisfaction_top_box", "loyal_share", "complaint_spikes", "rising_complaint_categories",
    "active_customers", "revenue", "customers", "transactions", "intent_conversion", "top20_revenue_share",
    "clv_mean", "timely_share", "open_complaints", "complaints",
)
MIN_TILES, MAX_TILES = 5, 8
STATUSES = ("green", "amber", "red", "unknown")


def target_from_dict(key: str, spec: Mapping[str, Any]) -> Target:
    """A :class:`Target` from its ``to_dict()`` form (as stored in ``metrics.json`` ``run.targets``)."""
    return Target(key, max=spec.get("max"), min=spec.get("min"), amber=spec.get("amber"))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def period_kpis(notebooks: Mapping[str, Mapping[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Every KPI recorded by a period's pages in ``lang`` (another language's when ``lang`` has none),
    first occurrence of a key wins; each with ``notebook`` (the page that recorded it)."""
    seen: dict[str, dict[str, Any]] = {}
    for name, entry in notebooks.items():
        by_lang = entry.get("kpis") or {}
        items = by_lang.get(lang) or next((v for v in by_lang.values() if v), [])
        for k in items:
            if isinstance(k, Mapping) and k.get("key") and k["key"] not in seen:
                seen[k["key"]] = {**k, "notebook": name}
    return list(seen.values())


def target_statuses(notebooks: Mapping[str, Mapping[str, Any]], targets: Mapping[str, Mapping[str, Any]]
                    ) -> dict[str, dict[str, Any]]:
    """Status of every target of a period (``metrics.json`` ``targets``).

    Returns
    -------
    dict
        ``{key: {max|min, amber, value, status, notebook}}``; ``status`` is green / amber / red,
        ``unknown`` when the KPI has no value, ``no_kpi`` when no page recorded that key.
    """
    kpis = {k["key"]: k for k in period_kpis(notebooks, "en")}
    out = {}
    for key, spec in targets.items():
        target = target_from_dict(key, spec)
        k = kpis.get(key)
        value = k.get("value") if k else None
        out[key] = {**target.to_dict(), "value": value if _number(value) else None,
                    "status": target.status(value if _number(value) else None) if k else "no_kpi",
                    "notebook": k.get("notebook") if k else None}
    return out


def format_value(value: Any, unit: str, lang: str, currency: str = "CNY") -> str:
    """A KPI value as text: share → percent, count → whole number, money → currency, per_1000 → ‰."""
    if not _number(value):
        return translate("reports.index.no_value", lang)
    v = float(value)
    if unit == "share":
        return fmt_pct(v, lang, 1)
    if unit == "count":
        return fmt_int(v, lang)
    if unit == "money":
        return fmt_money(v, lang, currency)
    if unit == "per_1000":
        return f"{v:,.1f}‰"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def format_change(value: float, previous: float, unit: str, lang: str, currency: str = "CNY") -> str:
    """Change against the previous value: percentage points for shares, else the difference and its percent."""
    delta = value - previous
    if unit == "share":
        return translate("reports.index.pp", lang, value=f"{100 * delta:+.1f}")
    if unit == "count":
        text = f"{delta:+,.0f}" if delta else "0"
    elif unit == "money":
        text = ("+" if delta >= 0 else "−") + fmt_money(abs(delta), lang, currency)
    elif unit == "per_1000":
        text = f"{delta:+,.1f}‰"
    else:
        text = f"{delta:+,.0f}" if abs(delta) >= 100 else f"{delta:+,.2f}"
    return text + (f" ({delta / previous:+.1%})" if previous else "")


def build_tiles(latest: Mapping[str, Any], previous: Mapping[str, Any] | None, lang: str,
                comparable: bool = True) -> list[dict[str, Any]]:
    """The summary's tiles for the latest period (at most 8; tiles with a target first).

    Parameters
    ----------
    latest, previous : dict
        Period metrics (``{"run", "notebooks", ...}``); ``previous`` is the previous period's or None.
    lang : str
        Reader's language.
    comparable : bool
        Whether the previous period's records may be compared (equally covered periods).

    Returns
    -------
    list of dict
        ``key, label, value, text, unit, n, previous, change, direction (up/down/flat/None),
        tone (good/bad/neutral), target (text), status, how``.
    """
    run = latest.get("run") or {}
    currency = str(run.get("currency") or "CNY")
    targets = {k: target_from_dict(k, v) for k, v in (run.get("targets") or {}).items()}
    kpis = period_kpis(latest.get("notebooks") or {}, lang)
    before = {k["key"]: k.get("value") for k in period_kpis(previous.get("notebooks") or {}, lang)} \
        if previous and comparable else {}
    rank = {key: i for i, key in enumerate(KNOWN_KPIS)}
    target_order = {key: i for i, key in enumerate(targets)}
    kpis.sort(key=lambda k: (k["key"] not in targets, target_order.get(k["key"], 0),
                             rank.get(k["key"], len(rank))))
    tiles = []
    for k in kpis[:MAX_TILES]:
        unit = str(k.get("unit") or "number")
        value = k.get("value") if _number(k.get("value")) else None
        prev = k.get("previous") if _number(k.get("previous")) else before.get(k["key"])
        prev = prev if _number(prev) else None
        change = direction = tone = None
        if value is not None and prev is not None:
            delta = float(value) - float(prev)
            direction = "up" if delta > 0 else "down" if delta < 0 else "flat"
            change = format_change(float(value), float(prev), unit, lang, currency)
            better = k.get("better") or ""
            tone = ("good" if (direction == "up") == (better == "higher") else "bad") \
                if better in ("higher", "lower") and direction != "flat" else "neutral"
        target = targets.get(k["key"])
        status = target.status(value) if target else None
        target_text = ""
        if target:
            line = target.max if target.max is not None else target.min
            target_text = translate("reports.index.target_max" if target.max is not None else
                                    "reports.index.target_min", lang, value=format_value(line, unit, lang, currency))
        tiles.append({"key": k["key"], "label": str(k.get("label") or k["key"]), "value": value,
                      "text": format_value(value, unit, lang, currency), "unit": unit, "n": k.get("n"),
                      "previous": prev, "change": change, "direction": direction, "tone": tone,
                      "target": target_text, "status": status, "how": str(k.get("how") or ""),
                      "notebook": k.get("notebook")})
    return tiles


_ARROWS = {"up": "▲", "down": "▼", "flat": "="}


def tiles_html(tiles: Sequence[Mapping[str, Any]], lang: str) -> str:
    """The tiles as HTML (``<ul class="wb-tiles">``); empty text when there are none."""
    if not tiles:
        return ""
    items = []
    for tile in tiles:
        status = tile.get("status")
        cls = f"wb-tile status-{status}" if status else "wb-tile"
        parts = [f'<p class="wb-tile-label">{html.escape(tile["label"])}</p>',
                 f'<p class="wb-tile-value">{html.escape(tile["text"])}</p>']
        if tile.get("change"):
            title = html.escape(translate("reports.index.vs_prev", lang))
            parts.append(f'<p class="wb-tile-change {tile["tone"]}" title="{title}">'
                         f'<span class="wb-nowrap">{_ARROWS[tile["direction"]]} {html.escape(tile["change"])}</span> '
                         f'<span class="wb-tile-vs">{title}</span></p>')
        meta = []
        if tile.get("n") is not None:
            meta.append(html.escape(translate("reports.index.base", lang, n=fmt_int(tile["n"], lang))))
        if meta:
            parts.append(f'<p class="wb-tile-base">{" · ".join(meta)}</p>')
        if status:
            parts.append(f'<p class="wb-tile-target"><span class="wb-status {status}">'
                         f'{html.escape(translate("reports.index.status_" + status, lang))}</span> '
                         f'<span class="wb-nowrap">{html.escape(tile["target"])}</span></p>')
        if tile.get("how"):
            parts.append(f'<details class="wb-how"><summary>{html.escape(translate("core.how_computed", lang))}'
                         f'</summary>{html.escape(tile["how"])}</details>')
        items.append(f'<li class="{cls}" data-kpi="{html.escape(tile["key"])}">{"".join(parts)}</li>')
    return f'<ul class="wb-tiles">{"".join(items)}</ul>'


def unknown_target_keys(targets: Mapping[str, Any]) -> list[str]:
    """Target keys that are not KPI keys of any analysis (warned about, not fatal)."""
    return [k for k in targets if k not in KNOWN_KPIS]
