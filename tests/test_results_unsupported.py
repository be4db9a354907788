"""One "the data cannot support this" exception for every analysis module (workbench.results.Unsupported)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from workbench import crosssell, lifecycle, loyalty, segments
from workbench.engine import MissingDataError
from workbench.i18n import t
from workbench.results import Skipped, Unsupported, analysis, skip_reason


def test_module_reasons_are_one_class_with_their_own_texts():
    for module in (crosssell, lifecycle, loyalty, segments):
        assert issubclass(module.Unsupported, Unsupported)
        assert issubclass(module.Unsupported, MissingDataError)  # @analysis and nb.show turn it into Skipped


def test_reason_formats_numbers_and_dates_in_the_readers_language():
    exc = lifecycle.Unsupported("few_at_risk", min=np.int64(12345), days=90)
    assert exc.reason("en") == t("lifecycle.skip.few_at_risk", "en", min="12,345", days="90")
    exc = lifecycle.Unsupported("no_purchase", end=dt.date(2026, 10, 31))
    assert "2026年10月31日" in exc.reason("zh") and "2026-10-31" in exc.reason("en")


def test_wrapped_reason_and_default_table():
    exc = loyalty.Unsupported("few_levels", columns=("satisfaction",), k="2")
    why = t("loyalty.why.few_levels", "zh", k="2")
    assert exc.reason("zh") == t("loyalty.skipped", "zh", why=why)
    assert exc.table == "surveys" and exc.columns == ("satisfaction",)
    assert crosssell.Unsupported("one_category", n=0).table == "transactions"
    # the exception message is the English reason, so a log line says why
    assert t("loyalty.skipped", "en", why=t("loyalty.why.few_levels", "en", k="2"))[1:] in str(exc)


def test_analysis_decorator_turns_it_into_a_skipped_section():
    @analysis("lifecycle.h.stages")
    def stages():
        raise lifecycle.Unsupported("no_cohort")

    out = stages()
    assert isinstance(out, Skipped)
    assert out.reason("zh") == skip_reason(lifecycle.Unsupported("no_cohort"), "zh")
    assert out.reason("en") == t("lifecycle.skip.no_cohort", "en")[:1].upper() + t("lifecycle.skip.no_cohort", "en")[1:]


def test_a_skipped_widget_section_is_left_out_of_manager_pages(monkeypatch):
    """A widget section is absent from manager pages; skipped, it must not leave a "Skipped" note under a
    heading (the loyalty-programme page on data without a programme showed one)."""
    from workbench import complaints, loyalty, programme
    from workbench.results import render

    @analysis("programme.h.explore", interactive=True)
    def live():
        raise MissingDataError("points")

    @analysis("programme.h.roi")
    def plain():
        raise MissingDataError("points")

    shown: list[str] = []
    monkeypatch.setattr("workbench.viz.heading", lambda text, *a, **k: shown.append(text))
    monkeypatch.setattr("workbench.viz.note", lambda text, *a, **k: shown.append(text))
    monkeypatch.setenv("WORKBENCH_REPORT", "1")
    assert render(live(), "en") == [] and shown == []
    render(plain(), "en")
    assert shown and shown[0] == t("programme.h.roi", "en")
    monkeypatch.delenv("WORKBENCH_REPORT")
    shown.clear()
    render(live(), "en")  # in JupyterLab the reader still learns why the controls are missing
    assert shown[0] == t("programme.h.explore", "en")
    # the widget sections of the notebooks are declared so
    for func in (programme.explorer, complaints.explorer, loyalty.explore):
        assert func.interactive, func.__module__
