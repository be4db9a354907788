"""The whole report pack on hostile data (issue 11): every notebook runs or says why not, and
no headline rests on less than its evidence.

Each case under ``tests/data/hostile/`` (built by ``build.py`` there) is rendered in English;
one is rendered in Chinese too. Per case the test asserts the documented exit code, no notebook
failure, no headline whose recorded interval includes its null or is not finite, no
unreadably long number or NaN/inf in any finding, and that every section heading on a page is
followed by content (a chart, a finding, a table or a note saying why it was skipped).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "data" / "hostile"
_spec = importlib.util.spec_from_file_location("hostile_build", HERE / "build.py")
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)

pytestmark = pytest.mark.slow

LONG_NUMBER = re.compile(r"\d[\d,.\s]{15,}\d")
BAD_NUMBER = re.compile(r"\b(nan|NaN|inf|Infinity)\b")
H2 = re.compile(r"<h2\b[^>]*>(.*?)</h2>", re.S)
TAG = re.compile(r"<[^>]+>")


def test_committed_corpus_is_what_the_script_builds(tmp_path):
    hostile.build(tmp_path)
    for case in hostile.CASES:
        made = sorted(p.name for p in (tmp_path / case).iterdir())
        kept = sorted(p.name for p in (HERE / case).iterdir())
        assert made == kept, case
        for name in made:
            assert (tmp_path / case / name).read_bytes() == (HERE / case / name).read_bytes(), (case, name)


def _sections_have_content(page: str) -> list[str]:
    """Headings followed by nothing before the next heading (or the page end)."""
    body = page.split("<body", 1)[-1]
    marks = list(H2.finditer(body))
    empty = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        chunk = body[m.end():end]
        has_figure = "plotly-graph-div" in chunk or "<img" in chunk or "<table" in chunk
        text = TAG.sub(" ", re.sub(r"<(script|style)\b.*?</\1>", " ", chunk, flags=re.S)).strip()
        if not has_figure and len(text) < 3:
            empty.append(TAG.sub("", m.group(1)).strip())
    return empty


def _check_findings(metrics: dict) -> list[str]:
    problems = []
    for name, entry in metrics.get("notebooks", {}).items():
        for lang, findings in entry.get("findings", {}).items():
            for f in findings:
                where = f"{name}/{lang}.{f['key']}"
                text = f.get("text", "")
                if LONG_NUMBER.search(text) or BAD_NUMBER.search(text):
                    problems.append(f"{where}: unreadable number in {text!r}")
                if not f.get("headline"):
                    continue
                if f.get("evidence") not in (None, "ok"):
                    problems.append(f"{where}: headline despite {f['evidence']}")
                iv, null = f.get("interval"), f.get("null")
                if iv is not None:
                    lo, hi = (math.nan if v is None else float(v) for v in iv)
                    if not (math.isfinite(lo) and math.isfinite(hi)):
                        problems.append(f"{where}: headline with a non-finite interval")
                    elif null is not None and lo <= float(null) <= hi:
                        problems.append(f"{where}: headline whose interval includes {null}")
    return problems


REPO = Path(__file__).resolve().parents[1]
#: modules every notebook shares (loading, rendering, filters): they do not make a notebook read surveys
INFRASTRUCTURE = {"notebook", "engine", "config", "schema", "viz", "results", "i18n", "privacy", "coverage",
                  "io", "sqlguard", "integrity", "metrics", "widgets", "periods", "reports", "summary", "cli"}
#: cases that differ from the ordinary dataset in the surveys table only
SURVEY_ONLY = {"binary_satisfaction", "two_level_satisfaction", "drivers_no_loyalty", "recommend_only",
               "scale_0_10", "scale_1_4", "scale_0_1", "scale_0_100"}
_IMPORT = re.compile(r"from workbench(?:\.(\w+))? import ([\w, ]+)|import workbench\.(\w+)")


def _workbench_imports(source: str) -> set[str]:
    found = set()
    for sub, names, plain in _IMPORT.findall(source):
        if sub or plain:
            found.add(sub or plain)
        else:
            found |= {n.split(" as ")[0].strip() for n in names.split(",")}
    return {m for m in found if (REPO / "workbench" / f"{m}.py").is_file()}


def reads_surveys(notebook: Path) -> bool:
    """Whether the notebook's analysis modules (followed through their workbench imports) touch surveys."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    todo = _workbench_imports("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen or mod in INFRASTRUCTURE:
            continue
        seen.add(mod)
        source = (REPO / "workbench" / f"{mod}.py").read_text(encoding="utf-8")
        if re.search(r"[\"'.]surveys\b", source):
            return True
        todo |= _workbench_imports(source)
    return False


def _notebooks_for(case: str) -> list[str]:
    """All report notebooks; for a surveys-only variant, those that read surveys (the others' output
    cannot differ from the ordinary cases, which render every notebook)."""
    from workbench.reports import discover_notebooks

    found = discover_notebooks()
    return [nb.name for nb in found if case not in SURVEY_ONLY or reads_surveys(nb.path)]


def test_survey_reader_detection():
    from workbench.reports import discover_notebooks

    readers = {nb.name for nb in discover_notebooks() if reads_surveys(nb.path)}
    assert "01_satisfaction_loyalty" in readers and "00_data_overview" in readers
    assert "03_complaint_trends" not in readers
    assert SURVEY_ONLY <= set(hostile.CASES)


def _run(case: str, lang: str, tmp_path: Path):
    from workbench.reports import run_pack

    out = tmp_path / "reports"
    result = run_pack(HERE / case, hostile.PERIOD, lang=lang, out=out, jobs=2, progress=False,
                      only=_notebooks_for(case))
    return result, out


@pytest.mark.parametrize("case", list(hostile.CASES))
def test_pack_on_hostile_data(case, tmp_path):
    expected = hostile.EXPECTED[case]
    if expected == 3:  # no data in the period: the CLI says so with exit 3 and publishes nothing
        from typer.testing import CliRunner

        from workbench.cli import app

        out = tmp_path / "reports"
        res = CliRunner().invoke(app, ["reports", "run", "--data", str(HERE / case), "--period", hostile.PERIOD,
                                       "--lang", "en", "--out", str(out)])
        assert res.exit_code == 3, res.output
        assert not list(out.glob("**/*.html")), "nothing is published for a period without data"
        return
    result, out = _run(case, "en", tmp_path)
    failed = [(r.name, r.lang, (r.error or "")[-600:]) for r in result.failed]
    assert not failed, failed
    assert result.exit_code == expected, (case, result.exit_code)
    metrics = json.loads(Path(result.metrics_path).read_text(encoding="utf-8"))
    problems = _check_findings(metrics)
    assert not problems, problems
    for page in out.glob("*/en/*.html"):
        empty = _sections_have_content(page.read_text(encoding="utf-8"))
        assert not empty, (page.name, empty)


def test_pack_on_hostile_data_zh(tmp_path):
    result, out = _run("binary_satisfaction", "zh", tmp_path)
    assert not result.failed, [(r.name, (r.error or "")[-600:]) for r in result.failed]
    assert result.exit_code == 0
    metrics = json.loads(Path(result.metrics_path).read_text(encoding="utf-8"))
    assert not _check_findings(metrics)
