"""Open every rendered report in the system Chromium: charts drawn, no console errors, no network.

Needs ``/usr/bin/chromium`` (``.ci/run`` installs ``chromium`` and ``fonts-noto-cjk``); skipped
cleanly without it. Never runs ``playwright install``. Full-page screenshots go to
``screenshots/`` (gitignored) in en and zh.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "screenshots"
PERIOD = "2026-10"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="system chromium not installed (/usr/bin/chromium)"),
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("playwright.sync_api")
    from workbench.reports import run_pack
    from workbench.sample import generate_sample

    data = tmp_path_factory.mktemp("browser_sample")
    generate_sample(data, customers=300, seed=13, lang="en", fmt="parquet", end=PERIOD)
    nbs = tmp_path_factory.mktemp("browser_notebooks")
    shutil.copy(ROOT / "notebooks" / "00_data_overview.ipynb", nbs)
    out = tmp_path_factory.mktemp("browser_reports")
    res = run_pack(data, PERIOD, lang="both", out=out, jobs=2, notebooks_dir=nbs, progress=False)
    assert res.exit_code == 0, res.results
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(browser, path: Path, width: int = 1200):
    """Open ``path`` with every non-file request blocked and recorded; returns (page, requests, errors)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        url = r.request.url
        if url.startswith("file://"):
            r.continue_()
        else:
            requests.append(url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, requests, errors


def _reports(out: Path) -> list[Path]:
    return sorted((out / PERIOD).glob("*/*.html"))


def test_every_report_renders_offline(rendered, browser):
    SHOTS.mkdir(exist_ok=True)
    reports = _reports(rendered)
    assert len(reports) == 2
    for path in reports:
        lang = path.parent.name
        page, requests, errors = _open(browser, path)
        page.wait_for_timeout(300)
        n_figures = page.locator(".wb-figure").count()
        assert n_figures >= 1, path
        assert page.locator(".js-plotly-plot .main-svg").count() >= n_figures, f"charts not drawn in {path}"
        # every figure div holds a drawn plot with at least one trace
        for i in range(n_figures):
            fig = page.locator(".wb-figure").nth(i)
            assert fig.locator(".main-svg").count() >= 1
            assert fig.locator("g.trace, g.barlayer .point, g.scatterlayer .trace").count() >= 1
        assert not requests, f"network requests from {path.name}: {requests}"
        assert not errors, f"console errors in {path.name}: {errors}"
        assert page.locator("text=Loading widget").count() == 0
        # tables fit the page width
        width = page.evaluate("document.querySelector('main').getBoundingClientRect().width")
        for w in page.evaluate("[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().width)"):
            assert w <= width + 1
        page.screenshot(path=str(SHOTS / f"{path.stem}_{lang}.png"), full_page=True)
        page.close()


def test_index_opens_offline(rendered, browser):
    page, requests, errors = _open(browser, rendered / "index.html")
    assert not requests and not errors
    links = page.eval_on_selector_all("a[href$='.html']", "els => els.map(e => e.getAttribute('href'))")
    assert len(links) == 2 and all((rendered / href).exists() for href in links)
    page.screenshot(path=str(SHOTS / "index.png"), full_page=True)
    page.close()


def test_zh_report_has_no_english_furniture(rendered, browser):
    page, _, _ = _open(browser, rendered / PERIOD / "zh" / "00_data_overview.html")
    text = page.inner_text("body")
    for english in ("Executive summary", "Contents", "Monthly volumes", "Data exclusions", "Period", "Rows"):
        assert english not in text, english
    svg_text = " ".join(page.eval_on_selector_all(".main-svg text", "els => els.map(e => e.textContent)"))
    for english in ("Transactions", "Rows", "Oct 2026", "Share missing"):
        assert english not in svg_text, english
    assert "2026年10月" in svg_text
    page.close()


def test_pdf_via_headless_chromium(rendered, tmp_path):
    from workbench.reports import write_pdf

    html = rendered / PERIOD / "en" / "00_data_overview.html"
    pdf = tmp_path / "report.pdf"
    assert write_pdf(html, pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 10_000


def test_metrics_json_is_valid(rendered):
    m = json.loads((rendered / PERIOD / "metrics.json").read_text(encoding="utf-8"))
    assert set(m["notebooks"]) == {"00_data_overview"}
