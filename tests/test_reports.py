"""The report pipeline end to end on a small sample, plus its pure parts.

The pack runs once per module on a fixture notebooks folder (the real
``00_data_overview`` plus the fixtures in ``tests/fixtures/notebooks``), so
these tests do not depend on the analysis notebooks being written elsewhere.
One ``slow`` test runs the project's real ``notebooks/`` folder.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from workbench import reports
from workbench.reports import (
    PLOTLY_PLACEHOLDER,
    ReportInputError,
    clean_notebook,
    coerce_value,
    discover_notebooks,
    embed_plotly,
    headline_changes,
    parse_langs,
    parse_params,
    render_index,
    resolve_period,
    run_pack,
    select_notebooks,
    summary_findings,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures") / "notebooks"
PLANTED_EMAIL = "zhang.wei.planted@example.com"
PLANTED_MOBILE = "13812345678"
PLANTED_SCRIPT = "<script>alert('x')</script>"
PERIOD = "2026-10"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-customer sample whose latest survey comment carries planted PII and a script tag."""
    from workbench.sample import generate_sample

    out = tmp_path_factory.mktemp("report_sample")
    generate_sample(out, customers=300, seed=11, lang="en", fmt="parquet", end=PERIOD)
    surveys = pd.read_parquet(out / "surveys.parquet")
    last = surveys["date"].astype("datetime64[ns]").idxmax()
    surveys["comment"] = surveys["comment"].astype(object)
    surveys.loc[last, "comment"] = (f"Great shop {PLANTED_SCRIPT} call me on {PLANTED_MOBILE} "
                                    f"or write to {PLANTED_EMAIL}")
    surveys.to_parquet(out / "surveys.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def nb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notebooks")
    shutil.copy(ROOT / "notebooks" / "00_data_overview.ipynb", folder)
    for name in ("05_minimal.ipynb", "06_comments.ipynb"):
        shutil.copy(FIXTURES / name, folder)
    (folder / "README.txt").write_text("not a notebook", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def pack(small_data: Path, nb_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("reports")
    result = run_pack(small_data, PERIOD, lang="both", out=out, jobs=2, notebooks_dir=nb_dir, progress=False,
                      params=["top_n=7", "threshold=0.25", "weights=[3, 4]"], plotly_js="inline")
    return result


def _metrics(out: Path) -> dict:
    return json.loads((out / PERIOD / "metrics.json").read_text(encoding="utf-8"))


def _html(out: Path, lang: str, name: str) -> str:
    return (out / PERIOD / lang / f"{name}.html").read_text(encoding="utf-8")


NAMES = ("00_data_overview", "05_minimal", "06_comments")


# ------------------------------------------------------------------ whole pipeline
def test_every_notebook_rendered_in_both_languages(pack):
    assert pack.exit_code == 0, pack.results
    assert len(pack.results) == 6 and all(r.ok for r in pack.results)
    js = reports.plotly_js_source()
    for name in NAMES:
        for lang in ("en", "zh"):
            page = _html(pack.out, lang, name)
            assert page.count(js) == 1, "plotly.js embedded exactly once"
            own = page.replace(js, "")
            assert own.count("Plotly.newPlot") >= (1 if name != "06_comments" else 0)
            assert not re.search(r"<script[^>]*\bsrc=", own), "no external scripts in inline mode"
            for cdn in ("require", "mathjax", "cdn.", "unpkg", "mermaid", "http://", "https://"):
                assert cdn not in own.lower(), (name, lang, cdn)
            for noise in ("stdout noise", "stderr noise", "must not reach the report", "Traceback",
                          "Loading widget", "application/vnd.jupyter.widget-state", "metrics_path"):
                assert noise not in page, (name, lang, noise)
            assert 'class="wb-summary"' in page and 'class="wb-toc"' in page and 'class="wb-footnote"' in page
    # analyst notebooks live outside the manager folders
    for lang in ("en", "zh"):
        assert (pack.out / "_analyst" / PERIOD / lang / "00_data_overview.ipynb").exists()
    assert not list((pack.out / PERIOD).rglob("*.ipynb"))


def test_html_has_header_summary_and_translations(pack):
    en = _html(pack.out, "en", "00_data_overview")
    zh = _html(pack.out, "zh", "00_data_overview")
    assert "<h1 class=\"wb-title\">Data overview</h1>" in en and "October 2026" in en
    assert "<h1 class=\"wb-title\">数据概览</h1>" in zh and "2026年10月" in zh and 'lang="zh-CN"' in zh
    metrics = _metrics(pack.out)
    for lang, page in (("en", en), ("zh", zh)):
        heads = [f for f in metrics["notebooks"]["00_data_overview"]["findings"][lang] if f["headline"]]
        assert 3 <= len(heads) <= 5
        summary = page.split('class="wb-summary"')[1].split("</section>")[0]
        for f in heads:
            assert f["text"].replace("“", "“") in summary.replace("&#34;", '"')
    # zh page: section headings and table headers are Chinese, not the English ones
    for english in ("Monthly volumes", "Tables, rows and customers", "Executive summary", "Data exclusions"):
        assert english not in zh
    assert "月度数据量" in zh and "要点摘要" in zh


def test_metrics_json_holds_every_notebook(pack):
    m = _metrics(pack.out)
    assert set(m["notebooks"]) == set(NAMES)
    assert {"data_overview", "minimal", "comments"} <= set(m["sections"])
    overview = m["sections"]["data_overview"]
    for key in ("tables", "rows", "customers", "date_ranges", "monthly_volumes", "period_counts", "exclusions",
                "missing_profile", "supported_analyses"):
        assert key in overview, key
    assert overview["rows"]["customers"] == 300
    run = m["run"]
    for key in ("period", "previous_period", "data_source", "rows", "exclusions", "package_version", "started",
                "finished"):
        assert key in run, key
    assert run["period"] == PERIOD and run["previous_period"] == "2026-09"
    assert run["rows"]["customers"] == 300
    for name in NAMES:
        entry = m["notebooks"][name]
        assert entry["status"] == "ok"
        assert set(entry["langs"]) == {"en", "zh"}
        assert all(v["seconds"] > 0 for v in entry["langs"].values())
    # --param values arrive typed
    assert m["sections"]["minimal"]["params"] == {"top_n": 7, "threshold": 0.25, "label": "demo", "weights": [3, 4]}


def test_index_lists_every_report(pack):
    index = (pack.out / "index.html").read_text(encoding="utf-8")
    zh = (pack.out / "index.zh.html").read_text(encoding="utf-8")
    for page in (index, zh):
        for name in NAMES:
            for lang in ("en", "zh"):  # the reader's page first, the other language beside it
                href = f"{PERIOD}/{lang}/{name}.html"
                assert f'href="{href}"' in page
                assert (pack.out / href).exists()
        assert page.count(f'id="p-{PERIOD}"') == 1
    assert ">Data overview</a>" in index and "数据概览" not in index
    assert ">数据概览</a>" in zh and "Data overview" not in zh
    assert 'href="index.zh.html"' in index and 'href="index.html"' in zh


def test_planted_pii_and_script_never_reach_manager_outputs(pack):
    for lang in ("en", "zh"):
        page = _html(pack.out, lang, "06_comments")
        assert "Great shop" in page, "the planted comment is shown (masked)"
        for raw in (PLANTED_EMAIL, PLANTED_MOBILE, PLANTED_SCRIPT, "<script>alert"):
            assert raw not in page, raw
        assert "&lt;script&gt;" in page
    text = (pack.out / PERIOD / "metrics.json").read_text(encoding="utf-8")
    assert PLANTED_EMAIL not in text and PLANTED_MOBILE not in text
    index = (pack.out / "index.html").read_text(encoding="utf-8")
    assert PLANTED_EMAIL not in index and PLANTED_MOBILE not in index


def test_failing_notebook_keeps_last_good_html_and_exits_nonzero(pack, small_data, nb_dir, tmp_path):
    out = tmp_path / "reports"
    shutil.copytree(pack.out, out)
    good = out / PERIOD / "en" / "05_minimal.html"
    before = good.read_bytes()
    good_metrics = _metrics(out)["notebooks"]["05_minimal"]["metrics"]

    failed = run_pack(small_data, PERIOD, only=["05_minimal"], lang="en", out=out, jobs=1, notebooks_dir=nb_dir,
                      params=["fail=true"], progress=False)
    assert failed.exit_code == 1
    assert [r.status for r in failed.results] == ["failed"]
    assert "planted failure" in failed.results[0].error
    assert good.read_bytes() == before
    kept = out / "_analyst" / PERIOD / "en" / "05_minimal.FAILED.ipynb"
    node = nbformat.read(str(kept), as_version=4)
    assert any(o.get("output_type") == "error" for c in node.cells for o in c.get("outputs", []))
    m = _metrics(out)
    entry = m["notebooks"]["05_minimal"]
    assert entry["status"] == "failed" and entry["langs"]["en"]["status"] == "failed"
    assert entry["metrics"] == good_metrics, "the last good metrics stay"
    assert m["notebooks"]["00_data_overview"]["status"] == "ok", "notebooks not re-run keep their entries"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "FAILED" in index and "1 report(s) failed" in index
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.running.ipynb"))


def test_rerun_is_idempotent(pack, small_data, nb_dir, tmp_path):
    out = tmp_path / "reports"
    shutil.copytree(pack.out, out)
    files_before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    m_before = _metrics(out)
    again = run_pack(small_data, PERIOD, only=["comments"], lang="en", out=out, jobs=1, notebooks_dir=nb_dir,
                     progress=False, plotly_js="inline")  # the fixture's mode
    assert again.exit_code == 0
    files_after = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files_after == files_before
    m_after = _metrics(out)
    assert set(m_after["notebooks"]) == set(m_before["notebooks"])
    for name in NAMES:
        assert m_after["notebooks"][name]["metrics"] == m_before["notebooks"][name]["metrics"]
        assert m_after["notebooks"][name]["findings"] == m_before["notebooks"][name]["findings"]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count(f'id="p-{PERIOD}"') == 1


def test_notebook_timeout_stops_the_run(small_data, nb_dir, tmp_path):
    out = tmp_path / "reports"
    t0 = time.perf_counter()
    res = run_pack(small_data, PERIOD, only=["05_minimal"], lang="en", out=out, jobs=1, notebooks_dir=nb_dir,
                   params=["sleep=600"], timeout=25, progress=False)  # room for a kernel start on a busy machine
    assert time.perf_counter() - t0 < 120
    assert res.exit_code == 1 and res.results[0].status == "timeout"
    assert "25s" in res.results[0].error
    assert not (out / PERIOD / "en" / "05_minimal.html").exists()
    assert (out / "_analyst" / PERIOD / "en" / "05_minimal.FAILED.ipynb").exists()


def test_pii_backstop_refuses_to_publish(small_data, tmp_path):
    out = tmp_path / "reports"
    res = run_pack(small_data, PERIOD, lang="en", out=out, jobs=1, notebooks_dir=FIXTURES / "leaky",
                   progress=False)
    assert res.exit_code == 1
    assert res.results[0].status == "pii"
    assert PLANTED_EMAIL not in res.results[0].error
    assert not (out / PERIOD / "en" / "07_leaky.html").exists()
    assert (out / "_analyst" / PERIOD / "en" / "07_leaky.FAILED.ipynb").exists()


# ------------------------------------------------------------------ input errors before anything runs
@pytest.mark.parametrize("kwargs, match", [
    ({"params": ["nope=1"]}, "unknown parameter 'nope'"),
    ({"params": ["top_n=abc"]}, "expects int"),
    ({"params": ["fail=maybe"]}, "expects bool"),
    ({"params": ["data=/tmp"]}, "set by the pipeline"),
    ({"params": ["novalue"]}, "key=value"),
    ({"only": ["99_missing"]}, "no report notebook"),
    ({"lang": "fr"}, "--lang"),
    ({"jobs": 0}, "--jobs"),
])
def test_bad_input_is_rejected_before_running(small_data, tmp_path, kwargs, match):
    out = tmp_path / "reports"
    args = {"only": [], "lang": "en", "params": []} | kwargs
    with pytest.raises(ReportInputError, match=match):
        run_pack(small_data, PERIOD, out=out, notebooks_dir=FIXTURES, progress=False, **args)
    assert not out.exists()


def test_bad_period_is_rejected(small_data, tmp_path):
    from workbench.periods import PeriodError

    with pytest.raises(PeriodError):
        run_pack(small_data, "2026-13", out=tmp_path / "r", notebooks_dir=FIXTURES, progress=False)


def test_cli_exit_code_2_for_unknown_parameter(small_data, tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app

    res = CliRunner().invoke(app, ["reports", "run", "--data", str(small_data), "--period", PERIOD,
                                   "--param", "nope=1", "--notebooks", str(FIXTURES), "--out", str(tmp_path)])
    assert res.exit_code == 2


# ------------------------------------------------------------------ pure parts
def test_discovery_and_selection():
    found = discover_notebooks(FIXTURES)
    assert [nb.name for nb in found] == ["05_minimal", "06_comments"]  # leaky/ is a subfolder: not discovered
    minimal = found[0]
    assert {p.name: p.type for p in minimal.parameters} == {
        "data": "str", "period": "str", "lang": "str", "seed": "int", "metrics_path": "str",
        "top_n": "int", "threshold": "float", "fail": "bool", "label": "str", "weights": "list", "sleep": "int"}
    assert select_notebooks(found, ["minimal"]) == [minimal]
    assert select_notebooks(found, ["06_comments.ipynb", "05_minimal"]) == found
    assert minimal.title("en") == "Minimal"  # no translation key: humanised


def test_parameter_typing():
    assert coerce_value("x", "bool", "Yes") is True and coerce_value("x", "bool", "0") is False
    assert coerce_value("x", "int", " 12 ") == 12
    assert coerce_value("x", "float", "1e-3") == 0.001
    assert coerce_value("x", "list", "a, b") == ["a", "b"]
    assert coerce_value("x", "list", '["a", 2]') == ["a", 2]
    assert coerce_value("x", "dict", '{"k": 1}') == {"k": 1}
    assert coerce_value("x", "str", "2026-10") == "2026-10"
    with pytest.raises(ReportInputError):
        coerce_value("x", "float", "ten")
    typed = parse_params(["seed=3", "label=x=y"], discover_notebooks(FIXTURES))
    assert typed["05_minimal"] == {"seed": 3, "label": "x=y"} and typed["06_comments"] == {"seed": 3}


def test_periods_and_languages():
    assert resolve_period("last-month", today=dt.date(2026, 11, 3)).label == "2026-10"
    assert resolve_period("last-quarter", today=dt.date(2026, 11, 3)).label == "2026Q3"
    assert resolve_period("2026-01-01:2026-03-31").label == "2026-01-01_2026-03-31"
    assert parse_langs("both") == ("en", "zh") and parse_langs("zh") == ("zh",)


def test_clean_notebook_strips_everything_but_report_output():
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell("x = 2")
    injected.metadata["tags"] = ["injected-parameters"]
    body = nbformat.v4.new_code_cell("secret_code()")
    body.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="warning!"),
        nbformat.v4.new_output("stream", name="stdout", text="print"),
        nbformat.v4.new_output("error", ename="E", evalue="v", traceback=["tb"]),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "m"}, "text/plain": "Loading widget..."}),
        nbformat.v4.new_output("execute_result", data={"text/html": "<table>frame</table>"}, execution_count=1),
        nbformat.v4.new_output("display_data", data={"text/html": '<h2 class="wb-heading">A &amp; B</h2>',
                                                      "text/plain": "<IPython.HTML>"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# md"), params, injected, body]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    clean, toc = clean_notebook(nb)
    assert len(clean.cells) == 1 and clean.cells[0].source == ""
    outs = clean.cells[0].outputs
    assert len(outs) == 1 and set(outs[0]["data"]) == {"text/html"}
    assert outs[0]["data"]["text/html"] == '<h2 class="wb-heading" id="sec-1">A &amp; B</h2>'
    assert toc == [("sec-1", "A &amp; B")]
    assert "widgets" not in clean.metadata
    assert nb.cells[3].outputs[0]["text"] == "warning!", "the input notebook is not modified"


def test_summary_findings_picks_three_to_five():
    fs = [{"key": str(i), "text": str(i), "headline": i < 2} for i in range(8)]
    assert [f["key"] for f in summary_findings(fs)] == ["0", "1", "2"]
    heads = [{"key": str(i), "text": str(i), "headline": True} for i in range(7)]
    assert len(summary_findings(heads)) == 5


def test_plotly_inline_or_folder():
    page = f"<head>{PLOTLY_PLACEHOLDER}</head>"
    folder = embed_plotly(page, "folder")  # one plotly.min.js per period folder, beside the language folders
    assert folder.startswith('<head><script type="text/javascript" src="../plotly.min.js"></script>')
    assert len(folder) < 2_000  # only the small zh-CN locale registration is inline
    inline = embed_plotly(page, "inline")
    assert len(inline) > 1_000_000 and PLOTLY_PLACEHOLDER not in inline
    for html in (folder, inline):  # the locale is registered after plotly.js has loaded
        assert html.index("plotly") < html.index("Plotly.register({moduleType:'locale',name:'zh-CN'")


def test_index_shows_change_versus_previous_period():
    def period(label, start, prev, value, status="ok"):
        return {"run": {"period": label, "period_start": start, "period_end": start, "previous_period": prev,
                        "period_display": {"en": label}, "dataset": "d", "data_source": "s", "finished": "t"},
                "notebooks": {"00_x": {"title": {"en": "X", "zh": "X"}, "status": status,
                                       "langs": {"en": {"status": status, "html": "en/00_x.html"}},
                                       "findings": {"en": [{"key": "k", "text": "Orders", "value": value,
                                                            "headline": True}]}}}}

    cur, prev = period("2026-10", "2026-10-01", "2026-09", 120), period("2026-09", "2026-09-01", "2026-08", 100)
    rows = headline_changes(cur["notebooks"]["00_x"], prev["notebooks"]["00_x"])
    assert rows[0]["delta"] == 20 and rows[0]["rel"] == pytest.approx(0.2)
    page = render_index([cur, prev])
    assert "▲ +20 (+20.0%)" in page
    assert page.index('id="p-2026-10"') < page.index('id="p-2026-09"')
    assert reports.format_delta(0.30, 0.25, 0.05) == "+5.0 pp"
    assert reports.format_delta(3510.4, 3000.0, 510.4) == "+510 (+17.0%)"
    assert reports.format_delta(12.5, 10.0, 2.5) == "+2.50 (+25.0%)"


def _numbers(obj: Any, path: str = "") -> dict[str, float]:
    """Every number in a JSON-like object by path (list positions included)."""
    if isinstance(obj, bool):
        return {}
    if isinstance(obj, int | float):
        return {path: obj}
    out: dict[str, float] = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.update(_numbers(v, f"{path}.{k}" if isinstance(obj, dict) else f"{path}[{k}]"))
    return out


@pytest.fixture(scope="module")
def real_pack(sample_dir_zh, tmp_path_factory):
    """The project's own notebooks/ rendered in en and zh on the Chinese CSV test sample (3,000 customers):
    one pack serves the two tests below (each used to render its own; the pack is the slowest thing in CI)."""
    mp = pytest.MonkeyPatch()
    mp.delenv("WORKBENCH_PSEUDONYM_KEY", raising=False)
    out = tmp_path_factory.mktemp("real_pack") / "reports"
    try:
        res = run_pack(sample_dir_zh, PERIOD, lang="both", out=out, jobs=2, progress=False)
    finally:
        mp.undo()
    return res, out


@pytest.mark.slow
def test_real_notebooks_folder_in_both_languages(real_pack):
    """Every notebook in the project's notebooks/ renders in en and zh on a test sample, and the two copies
    (separate kernels) carry the same numbers: seeded bootstraps, samples and model fits must not depend on
    the engine's row order or the process."""
    res, out = real_pack
    assert res.exit_code == 0, [r for r in res.results if not r.ok]
    m = _metrics(out)
    for nb in discover_notebooks():
        assert m["notebooks"][nb.name]["status"] == "ok"
        for lang in ("en", "zh"):
            assert (out / PERIOD / lang / f"{nb.name}.html").exists()
        en, zh = (_numbers(json.loads((out / PERIOD / lang / f"{nb.name}.metrics.json").read_text(
            encoding="utf-8"))["metrics"]) for lang in ("en", "zh"))
        shared = set(en) & set(zh)
        assert len(shared) > 5 and len(shared) == len(en) == len(zh), nb.name
        # equal up to the last bit or two (a parallel engine sum may add in another order), while another
        # seed, sample or row order moves these numbers in the 2nd-4th digit
        differ = sorted(p for p in shared if en[p] != pytest.approx(zh[p], rel=1e-9, abs=1e-12))
        assert not differ, (nb.name, [(p, en[p], zh[p]) for p in differ[:8]])


def test_zh_reports_carry_no_english_interface_text(real_pack):
    """No English string of the translation table appears in a zh page (Chinese data, so data labels are zh).

    Looks at everything a reader can see: text, tables and the plotly figure JSON (titles, axes, legends),
    but not plotly.js itself nor the CSS. Fragments that also occur in some zh string (method names such as
    Kaplan-Meier) are allowed.
    """
    from workbench import i18n

    table = i18n.table()
    zh_all = " ".join(v["zh"] for v in table.values())
    fragments = {}
    for key, v in table.items():
        for frag in re.split(r"\{[^}]*\}", v["en"]):
            frag = frag.strip(" ,.;:()")
            if (len(frag) >= 15 and re.fullmatch(r"[A-Za-z ,.;:()'/&-]+", frag) and frag not in zh_all
                    and v["en"] != v["zh"]):
                fragments[frag] = key
    assert len(fragments) > 100  # the check has teeth
    res, out = real_pack
    assert res.exit_code == 0, [r for r in res.results if not r.ok]
    js = reports.plotly_js_source()
    for nb in discover_notebooks():
        page = (out / PERIOD / "zh" / f"{nb.name}.html").read_text(encoding="utf-8").replace(js, "")
        visible = re.sub(r"<style[^>]*>.*?</style>", "", page, flags=re.S)
        leaks = sorted(f"{frag!r} ({key})" for frag, key in fragments.items() if frag in visible)
        assert not leaks, f"{nb.name}: English interface text in the zh report: {leaks[:10]}"


# ------------------------------------------------------------------ [targets], the pack summary, appendix, PDF
def _write_toml(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.csv").write_text("customer_id,date,amount\n1,2026-10-01,5\n", encoding="utf-8")
    path = folder / "workbench.toml"
    path.write_text('[tables.transactions]\nsource = "t.csv"\n' + body, encoding="utf-8")
    return path


def test_targets_are_parsed_and_judged(tmp_path):
    from workbench.config import Target, load_config

    cfg = load_config(_write_toml(tmp_path / "a", '[targets]\ncomplaint_rate = "<= 0.02"\n'
                                  'satisfaction_top_box = ">= 60%"\n'
                                  'loyal_share = { min = 0.5, amber = 0.45 }\n'
                                  'complaint_spikes = { max = 0, amber = 1 }\n'))
    t = cfg.targets
    assert t["complaint_rate"] == Target("complaint_rate", max=0.02)
    assert t["satisfaction_top_box"] == Target("satisfaction_top_box", min=0.6)
    assert t["loyal_share"] == Target("loyal_share", min=0.5, amber=0.45)
    # statuses by hand: at or below max is green; up to amber amber; beyond red (min mirrored)
    assert [t["complaint_rate"].status(v) for v in (0.01, 0.02, 0.0201, None)] == ["green", "green", "red", "unknown"]
    assert [t["complaint_spikes"].status(v) for v in (0, 1, 2)] == ["green", "amber", "red"]
    assert [t["loyal_share"].status(v) for v in (0.6, 0.5, 0.47, 0.45, 0.44)] == \
        ["green", "green", "amber", "amber", "red"]


@pytest.mark.parametrize("body, match", [
    ('complaint_rate = "< 0.02"', r"\[targets\]\.complaint_rate must read"),
    ('complaint_rate = { max = 0.02, min = 0.01 }', r"\[targets\]\.complaint_rate: give exactly one"),
    ('complaint_rate = { max = "2%" }', r"\[targets\]\.complaint_rate\.max must be a number"),
    ('complaint_rate = { max = 0.02, amber = 0.01 }', r"amber \(0.01\) must be at or above max"),
    ('loyal_share = { min = 0.5, amber = 0.6 }', r"\[targets\]\.loyal_share: amber \(0.6\) must be at or below min"),
    ('complaint_rate = { maximum = 0.02 }', r"unknown key\(s\) \['maximum'\]"),
    ('complaint_rate = 0.02', r"\[targets\]\.complaint_rate must be a text"),
])
def test_bad_targets_name_the_key(tmp_path, body, match):
    from workbench.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=match) as err:
        load_config(_write_toml(tmp_path / "b", f"[targets]\n{body}\n"))
    assert "workbench.toml" in str(err.value)


def _kpi(key, label, value, unit, n=None, better="higher", previous=None, how=""):
    return {"key": key, "label": label, "value": value, "unit": unit, "n": n, "interval": None, "better": better,
            "previous": previous, "how": how}


def _period(label, start, prev, kpis, findings=None, targets=None, coverage=None):
    kz = {"en": kpis, "zh": [{**k, "label": "中" + k["label"]} for k in kpis]}
    fs = findings or {"en": [], "zh": []}
    return {"run": {"period": label, "period_start": start, "period_end": start, "previous_period": prev,
                    "period_display": {"en": f"P {label}", "zh": f"{label}期"}, "dataset": "d", "data_source": "s",
                    "finished": "2026-11-01T08:00", "targets": targets or {}, "currency": "CNY",
                    "coverage": coverage or {}},
            "notebooks": {"03_complaint_trends": {
                "title": {"en": "Complaint trends", "zh": "投诉趋势"}, "status": "ok",
                "langs": {"en": {"status": "ok", "html": "en/03_complaint_trends.html"},
                          "zh": {"status": "ok", "html": "zh/03_complaint_trends.html"}},
                "kpis": kz, "findings": fs}}}


TARGETS = {"complaint_rate": {"max": 0.02, "amber": 0.025}, "complaint_spikes": {"max": 0},
           "satisfaction_top_box": {"min": 0.6}, "nps_made_up": {"min": 30}}


def _summary_periods():
    heads = {"en": [{"key": "spike", "text": "Delivery complaints jumped in October.", "value": 41, "headline": True,
                     "how": "Poisson control limit, p = 0.001 after Holm correction", "action": "Call the courier."}],
             "zh": [{"key": "spike", "text": "十月配送投诉激增。", "value": 41, "headline": True,
                     "how": "泊松控制限，经霍尔姆校正后 p = 0.001", "action": "联系快递公司。"}]}
    cur = _period("2026-10", "2026-10-01", "2026-09", [
        _kpi("customers", "Customers", 1234, "count", better="higher"),
        _kpi("complaint_rate", "Complaint rate", 0.023, "share", n=10_000, better="lower", previous=0.018,
             how="complaints / transactions"),
        _kpi("transactions", "Transactions", 10_000, "count", n=10_000),
        _kpi("complaint_spikes", "Complaint spikes", 2, "count", better="lower"),
        _kpi("revenue", "Revenue", 2_345_678.0, "money"),
        _kpi("satisfaction_top_box", "Top-box satisfaction", 0.64, "share", n=812),
        _kpi("timely_share", "Answered on time", 0.9, "share"),
        _kpi("open_complaints", "Open complaints", 12, "count", better="lower"),
        _kpi("complaints", "Complaints", 230, "count", better="lower"),
    ], heads, TARGETS)
    prev = _period("2026-09", "2026-09-01", "2026-08", [_kpi("customers", "Customers", 1200, "count"),
                                                         _kpi("transactions", "Transactions", 9_000, "count")])
    return cur, prev


def test_summary_tiles_from_page_records():
    from workbench.summary import build_tiles

    cur, prev = _summary_periods()
    tiles = build_tiles(cur, prev, "en")
    assert len(tiles) == 8, "at most eight tiles"
    # tiles with a target first, in [targets] order; KPIs without a value get none
    assert [t["key"] for t in tiles[:3]] == ["complaint_rate", "complaint_spikes", "satisfaction_top_box"]
    by = {t["key"]: t for t in tiles}
    # statuses by hand: 0.023 > max 0.02 but <= amber 0.025 → amber; 2 spikes > max 0, no amber → red;
    # 0.64 >= min 0.6 → green; no target → no status
    assert by["complaint_rate"]["status"] == "amber"
    assert by["complaint_spikes"]["status"] == "red"
    assert by["satisfaction_top_box"]["status"] == "green"
    assert by["customers"]["status"] is None
    # change: the KPI's own previous (0.018) → +0.5 pp, up, bad because lower is better
    assert by["complaint_rate"]["change"] == "+0.5 pp"
    assert (by["complaint_rate"]["direction"], by["complaint_rate"]["tone"]) == ("up", "bad")
    # else the previous period's record of the same key: 1234 vs 1200 → +34 (+2.8%)
    assert by["customers"]["change"] == f"+34 ({34 / 1200:+.1%})"
    assert by["transactions"]["change"] == "+1,000 (+11.1%)"
    assert by["complaint_rate"]["text"] == "2.3%" and by["revenue"]["text"] == "¥2.35m"
    assert by["complaint_rate"]["target"] == "target ≤ 2.0%"
    # not comparable (partial coverage) → no change from the previous period's records, own previous kept
    tiles = {t["key"]: t for t in build_tiles(cur, prev, "en", comparable=False)}
    assert tiles["customers"]["change"] is None and tiles["complaint_rate"]["change"] == "+0.5 pp"


def test_summary_page_in_the_readers_language():
    cur, prev = _summary_periods()
    en = render_index([cur, prev], lang="en")
    zh = render_index([cur, prev], lang="zh")
    assert en.count('class="wb-tile ') + en.count('class="wb-tile"') == 8
    assert 'class="wb-tile status-red" data-kpi="complaint_spikes"' in en
    assert 'class="wb-tile status-amber" data-kpi="complaint_rate"' in en
    assert "base 10,000" in en and "基数 10,000" in zh
    assert "Call the courier." in en and "联系快递公司。" in zh
    # the statistics only in the collapsed "how computed" note, never in the headline sentence
    head = en.split('class="wb-report-heads"')[1]
    sentence = re.search(r'<p class="wb-head">(.*?)</p>', head)[1]
    assert "p =" not in sentence and "Poisson" not in sentence
    assert re.search(r"<details class=\"wb-how\"><summary>How computed</summary>Poisson control limit", head)
    # the unknown target key is warned about, not fatal
    assert "nps_made_up" in en and "nps_made_up" in zh
    # the earlier period is linked
    assert "Earlier periods" in en and "往期报告" in zh and 'id="p-2026-09"' in en
    # zh: Chinese furniture and the zh KPI labels
    for english in ("Key numbers", "What the reports found", "on target", "off target", "base ", "Earlier",
                    "vs previous period", "Summary"):
        assert english not in zh, english
    assert "中Complaint rate" in zh and "未达标" in zh and "关键指标" in zh and 'lang="zh-CN"' in zh


def test_target_statuses_recorded_in_period_metrics(tmp_path):
    from workbench.reports import build_period_metrics

    cur, _ = _summary_periods()
    folder = tmp_path / PERIOD
    for lang in ("en", "zh"):
        (folder / lang).mkdir(parents=True)
        record = {"name": "03_complaint_trends", "lang": lang, "status": "ok", "last_success": "2026-11-01",
                  "finished": "2026-11-01", "kpis": cur["notebooks"]["03_complaint_trends"]["kpis"][lang],
                  "run": cur["run"]}
        (folder / lang / "03_complaint_trends.metrics.json").write_text(json.dumps(record), encoding="utf-8")
    m = build_period_metrics(folder)
    assert m["targets"]["complaint_rate"] == {"max": 0.02, "amber": 0.025, "value": 0.023, "status": "amber",
                                              "notebook": "03_complaint_trends"}
    assert m["targets"]["complaint_spikes"]["status"] == "red"
    assert m["targets"]["satisfaction_top_box"]["status"] == "green"
    assert m["targets"]["nps_made_up"]["status"] == "no_kpi"
    assert m["notebooks"]["03_complaint_trends"]["kpis"]["zh"][0]["label"] == "中Customers"


def test_appendix_blocks_move_to_one_collapsed_box_with_the_glossary():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")

    def out(text):
        return nbformat.v4.new_output("display_data", data={"text/html": text})

    cell.outputs = [out('<h2 class="wb-heading">Drivers</h2>'), out('<p class="wb-finding">Story one</p>'),
                    out('<div class="wb-appendix"><div class="wb-table-wrap"><table class="wb-table">'
                        '<tr><td>PARAMS</td></tr></table></div></div>'),
                    out('<h2 class="wb-heading">Value</h2>'),
                    out('<div class="wb-figure wb-appendix"><div>DIAGNOSTIC</div></div>'),
                    out('<p class="wb-finding">Story two</p>')]
    nb.cells = [cell]
    page = reports.render_html(nb, title="T", period=resolve_period("2026-10"), lang="en", source="s",
                               generated=dt.datetime(2026, 11, 1), findings=[], exclusions=[])
    body = page.split('<article class="wb-body">')[1]
    story, appendix = body.split('<details class="wb-appendix-box"')
    assert "Story one" in story and "Story two" in story
    assert "PARAMS" not in story and "DIAGNOSTIC" not in story
    assert appendix.index("Drivers") < appendix.index("PARAMS") < appendix.index("Value") < \
        appendix.index("DIAGNOSTIC") < appendix.index("Glossary")
    assert "Satisfaction top box" in appendix and "Pseudonymised id" in appendix
    assert page.count("<details") == 1 and " open" not in appendix.split(">")[0]
    zh = reports.render_html(nb, title="T", period=resolve_period("2026-10"), lang="zh", source="s",
                             generated=dt.datetime(2026, 11, 1), findings=[], exclusions=[])
    assert "术语表" in zh and "满意度最高档占比" in zh and "Glossary" not in zh
    assert reports.print_variant(page).count("<details open") == 1


def test_glossary_is_complete_and_zh_has_no_english_words():
    from workbench.i18n import table

    terms = reports.glossary("en")
    assert len(terms) >= 10
    ids = {k.split(".")[1] for k in table() if k.startswith("glossary.")}
    for i in ids:
        assert f"glossary.{i}.term" in table() and f"glossary.{i}.text" in table()
    allowed = {"BG", "NBD", "Gamma", "p"}
    for term, text in reports.glossary("zh"):
        latin = set(re.findall(r"[A-Za-z]+", term + text)) - allowed
        assert not latin, (term, latin)


def test_pack_html_combines_summary_and_pages(pack):
    page = reports.pack_html(pack.out, PERIOD, "en", "inline")
    assert page.count(reports.plotly_js_source()) == 1, "plotly.js once for the whole pack"
    assert page.count('class="wb-pack-part') == 1 + len(NAMES) + 1  # summary, the pages, the glossary once
    assert page.index("Report pack") < page.index("Data overview")
    assert "Earlier periods" not in page and "<details " not in page.replace("<details open", "")
    assert reports.pack_html(pack.out, "2020-01", "en") is None


def test_cli_inline_flag_and_folder_default(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from workbench import cli

    seen = {}

    def fake_run_pack(**kwargs):
        seen.update(kwargs)
        raise ReportInputError("stop here")

    monkeypatch.setattr(reports, "run_pack", fake_run_pack)
    args = ["reports", "run", "--data", str(tmp_path), "--period", PERIOD]
    assert CliRunner().invoke(cli.app, [*args, "--inline"]).exit_code == 2
    assert seen["plotly_js"] == "inline"
    assert CliRunner().invoke(cli.app, args).exit_code == 2
    assert seen["plotly_js"] is None  # run_pack's default: folder


def test_plotly_default_is_one_file_per_period(small_data, tmp_path):
    out = tmp_path / "reports"
    res = run_pack(small_data, PERIOD, only=["05_minimal"], lang="both", out=out, jobs=2,
                   notebooks_dir=FIXTURES, progress=False)
    assert res.exit_code == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("plotly.min.js")) == [f"{PERIOD}/plotly.min.js"]
    for lang in ("en", "zh"):
        page = (out / PERIOD / lang / "05_minimal.html").read_text(encoding="utf-8")
        assert 'src="../plotly.min.js"' in page and len(page) < 200_000


def test_single_token_cells_never_wrap():
    page = ("<td>2024-11-01</td><td>¥1,234</td><td>12.5%</td><td>Contract</td><td>two words</td>"
            "<td>满意且忠诚</td><td>a<b>b</b></td>")
    out = reports.keep_tokens_whole(page)
    assert out.count('<td class="wb-nw">') == 4
    assert "<td>two words</td>" in out and "<td>满意且忠诚</td>" in out


def test_pack_pdf_html_has_the_glossary_once(pack):
    page = reports.pack_html(pack.out, PERIOD, "zh", "folder")
    assert page.count('class="wb-glossary-block"') == 1
    assert page.index('class="wb-glossary-block"') > page.rindex('class="wb-pack-part">')
    assert 'src="../plotly.min.js"' in page and "Glossary" not in page


def test_a_page_where_no_section_ran_says_so_once(tmp_path):
    """A notebook whose every section was skipped (a programme report on data without a programme) gets one
    plain line in place of the summary; a page with one section shown keeps its findings."""
    from workbench.engine import MissingDataError
    from workbench.metrics import Recorder
    from workbench.results import Skipped, render

    rec = Recorder("", "x", "en")
    for key in ("programme.h.participation", "programme.h.points", "programme.h.participation"):
        render(Skipped(key, MissingDataError("members")), "en", rec)
    assert rec.to_dict()["sections"] == {"shown": 0, "skipped": 2}  # a re-render of a section counts once

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x")]

    def page(sections, lang="en", findings=()):
        html_ = reports.render_html(nb, title="T", period=resolve_period("2026-10"), lang=lang, source="s",
                                    generated=dt.datetime(2026, 11, 1), findings=list(findings), exclusions=[],
                                    sections=sections)
        return html_.split('<article class="wb-body">')[0]

    assert "None of this report's 2 sections could run on this data" in page(rec.to_dict()["sections"])
    assert "本报告的 2 个部分均无法" in page(rec.to_dict()["sections"], "zh")
    found = [{"key": "k", "text": "Members spend more", "value": 1, "headline": True}]
    shown = page({"shown": 1, "skipped": 8}, findings=found)
    assert "could run" not in shown and "Members spend more" in shown
