"""Record a notebook's headline metrics and plain-language findings.

Every analysis notebook creates one :class:`Recorder` from its ``metrics_path``
parameter and section name, records metrics (JSON-serialisable aggregates) and
findings (sentences in the report language, each optionally tied to a headline
number), and saves. The report pipeline collects the files the same way for
every notebook. With an empty ``metrics_path`` the recorder still checks what
it is given but writes nothing, so notebooks run unchanged in JupyterLab.

Guards: values must be JSON-serialisable; lists longer than
``MAX_LIST_ITEMS`` (customer-level rows) and keys that name personal fields
are refused, and the payload is checked for PII patterns before writing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MAX_LIST_ITEMS = 500
FORBIDDEN_KEYS = frozenset({"customer_id", "name", "email", "phone", "mobile", "id_card"})


class MetricsError(ValueError):
    """A metric is not fit for the shared metrics file."""


def to_jsonable(value: Any, path: str = "") -> Any:
    """Convert numpy/pandas scalars, frames and dates to plain JSON values (NaN → None)."""
    if isinstance(value, pd.DataFrame):
        return to_jsonable(value.to_dict(orient="records"), path)
    if isinstance(value, pd.Series):
        return to_jsonable(value.to_dict(), path)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = str(k)
            if key.lower() in FORBIDDEN_KEYS:
                raise MetricsError(f"metric {path or '<root>'} has a personal field {key!r}; record aggregates only")
            out[key] = to_jsonable(v, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if len(items) > MAX_LIST_ITEMS:
            raise MetricsError(
                f"metric {path} has {len(items)} items (limit {MAX_LIST_ITEMS}); "
                "metrics hold aggregates, not customer-level rows"
            )
        return [to_jsonable(v, f"{path}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, str):
        return value
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict(), path)
    raise MetricsError(f"metric {path} has a value of type {type(value).__name__} that is not JSON-serialisable")


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False, indent=2, sort_keys=False)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; published files must be readable by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


MIN_HEADLINE_N = 30  # fewer cases than this never make a headline


def evidence_rule(interval: tuple[float, float] | None, null: float | None, n: int | None,
                  value_range: tuple[float, float] | None = None) -> str:
    """Why a finding may (``"ok"``) or may not be a headline, by the honesty rules.

    Parameters
    ----------
    interval : (low, high) or None
        The finding's confidence interval; ``None`` when it has none (a count, a share of all).
    null : float or None
        The "no effect" value the interval must exclude (0 for a difference, 1 for a ratio);
        ``None`` when there is no null to test against (a descriptive figure).
    n : int or None
        Cases behind the finding.
    value_range : (low, high) or None
        The quantity's possible range; an interval wider than it is not estimable.

    Returns
    -------
    str
        ``"ok"``, ``"not_estimable"`` (interval missing a bound, infinite or wider than the range),
        ``"no_effect_in_interval"`` or ``"too_few_cases"``.
    """
    if n is not None and n < MIN_HEADLINE_N:
        return "too_few_cases"
    if interval is None:
        return "not_estimable" if null is not None else "ok"
    lo, hi = (float("nan") if v is None else float(v) for v in interval)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return "not_estimable"
    if value_range is not None and (hi - lo) > (value_range[1] - value_range[0]):
        return "not_estimable"
    if null is not None and lo <= null <= hi:
        return "no_effect_in_interval"
    return "ok"


@dataclass
class Finding:
    """One plain-language finding; ``headline`` findings open the manager report.

    ``interval``, ``null`` and ``n`` are the evidence behind it; a finding asked to be a headline
    stays one only when :func:`evidence_rule` says ``"ok"`` (``evidence`` records the verdict).
    """

    key: str
    text: str
    value: Any = None
    headline: bool = False
    interval: tuple[float, float] | None = None
    null: float | None = None
    n: int | None = None
    evidence: str = ""
    how: str = ""
    action: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {"key": self.key, "text": self.text, "value": to_jsonable(self.value, self.key),
             "headline": self.headline}
        if self.interval is not None:
            d["interval"] = to_jsonable(list(self.interval), self.key)
        if self.null is not None:
            d["null"] = to_jsonable(self.null, self.key)
        if self.n is not None:
            d["n"] = int(self.n)
        if self.evidence:
            d["evidence"] = self.evidence
        if self.how:
            d["how"] = self.how
        if self.action:
            d["action"] = self.action
        return d


@dataclass
class Recorder:
    """Collects one notebook's metrics and findings under ``section``.

    Parameters
    ----------
    metrics_path : str or Path
        JSON file to write (``""`` = record nothing on disk).
    section : str
        Key under which the metrics appear in the report pack's metrics.json.
    lang : str
        Language of the findings.
    """

    metrics_path: str | Path
    section: str
    lang: str = "en"
    metrics: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kpis: list[dict[str, Any]] = field(default_factory=list)
    skipped_sections: dict[str, bool] = field(default_factory=dict)  # section title -> skipped (last render)

    def mark_section(self, title: str, skipped: bool) -> None:
        """Record that the section ``title`` was shown, or skipped for want of data (a re-render replaces it)."""
        self.skipped_sections[title] = bool(skipped)

    def metric(self, name: str, value: Any) -> Any:
        """Record (or replace) a metric; returns the value for chaining in a cell.

        Personal data in any string of the value (category, handler, segment or driver labels,
        dict keys included) is masked (:func:`workbench.privacy.mask_labels`)."""
        from workbench.privacy import mask_labels

        self.metrics[name] = mask_labels(to_jsonable(value, f"{self.section}.{name}"))
        return value

    def finding(self, key: str, text: str, value: Any = None, headline: bool = False, *,
                interval: tuple[float, float] | None = None, null: float | None = None,
                n: int | None = None, value_range: tuple[float, float] | None = None, how: str = "",
                action: str = "") -> Finding:
        """Record a plain-language finding (replacing an earlier one with the same key).

        A requested headline whose evidence fails :func:`evidence_rule` is recorded as body text
        with the rule's verdict in ``evidence``: the report never leads with it.
        Personal data in the text and value is masked.
        """
        from workbench.privacy import mask_labels, mask_text

        evidence = ""
        if headline and (interval is not None or null is not None or n is not None):
            evidence = evidence_rule(interval, null, n, value_range)
            headline = evidence == "ok"
        item = Finding(key, mask_text(text), mask_labels(to_jsonable(value, key)), headline, interval, null, n,
                       evidence, mask_text(how) if how else "", mask_text(action) if action else "")
        self.findings = [f for f in self.findings if f.key != key] + [item]
        return item

    def kpi(self, kpi: Any) -> None:
        """Record a KPI for the pack summary's tiles (a :class:`workbench.results.KPI`; replaces one with the
        same key). Labels are masked like findings."""
        from workbench.privacy import mask_labels

        item = mask_labels(kpi.to_dict() if hasattr(kpi, "to_dict") else to_jsonable(dict(kpi), "kpi"))
        self.kpis = [k for k in self.kpis if k["key"] != item["key"]] + [item]

    def note(self, text: str) -> None:
        """Record a caveat, e.g. an analysis skipped for missing data (personal data masked)."""
        from workbench.privacy import mask_text

        text = mask_text(text)
        if text not in self.notes:
            self.notes.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "lang": self.lang,
            "metrics": self.metrics,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "kpis": list(self.kpis),
            "sections": {"shown": sum(not v for v in self.skipped_sections.values()),
                         "skipped": sum(self.skipped_sections.values())},
        }

    def save(self) -> Path | None:
        """Write the metrics file (no-op when ``metrics_path`` is empty)."""
        from workbench.privacy import assert_no_pii

        payload = self.to_dict()
        assert_no_pii(payload)
        if not self.metrics_path:
            return None
        path = Path(self.metrics_path)
        write_json_atomic(path, payload)
        return path
