"""The evidence rule: a finding leads the report only with enough cases and an interval that
excludes "no effect"; not-estimable intervals never make a headline."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.metrics import MIN_HEADLINE_N, Recorder, evidence_rule


@pytest.mark.parametrize(
    ("interval", "null", "n", "verdict"),
    [
        ((0.1, 0.3), 0.0, 100, "ok"),
        ((-0.1, 0.3), 0.0, 100, "no_effect_in_interval"),
        ((0.8, 1.2), 1.0, 100, "no_effect_in_interval"),
        ((1.1, 1.4), 1.0, 100, "ok"),
        ((0.1, 0.3), 0.0, MIN_HEADLINE_N - 1, "too_few_cases"),
        ((0.1, math.inf), 0.0, 100, "not_estimable"),
        ((None, 0.3), 0.0, 100, "not_estimable"),
        ((float("nan"), 0.3), 0.0, 100, "not_estimable"),
        (None, 0.0, 100, "not_estimable"),
        (None, None, 100, "ok"),
    ],
)
def test_evidence_rule_cases(interval, null, n, verdict):
    assert evidence_rule(interval, null, n) == verdict


def test_interval_wider_than_the_range_is_not_estimable():
    # a share's interval of -40% .. 90% spans more than [0, 1]: the digits mean nothing
    assert evidence_rule((-0.4, 0.9), None, 500, value_range=(0.0, 1.0)) == "not_estimable"
    assert evidence_rule((0.2, 0.4), None, 500, value_range=(0.0, 1.0)) == "ok"


@given(lo=st.floats(-10, 10), width=st.floats(0, 10), null=st.floats(-10, 10), n=st.integers(0, 1000))
def test_headline_kept_only_when_evidence_ok(lo, width, null, n):
    rec = Recorder("", "t")
    f = rec.finding("k", "text", value=1.0, headline=True, interval=(lo, lo + width), null=null, n=n)
    excludes_null = not (lo <= null <= lo + width)
    assert f.headline == (excludes_null and n >= MIN_HEADLINE_N)
    assert f.evidence in {"ok", "no_effect_in_interval", "too_few_cases"}
    d = rec.to_dict()["findings"][0]
    assert d["headline"] == f.headline and d["interval"] == [lo, lo + width] and d["n"] == n


def test_finding_without_evidence_fields_is_unchanged():
    rec = Recorder("", "t")
    f = rec.finding("k", "text", value=3, headline=True)
    assert f.headline and f.evidence == ""
    assert rec.to_dict()["findings"][0] == {"key": "k", "text": "text", "value": 3, "headline": True}
