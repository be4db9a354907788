"""``workbench alerts``: exit codes (1 out of control, 0 quiet, 2 bad input) and the JSON file."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.complaints import run_alerts
from workbench.engine import dataset_from_frames

FIRST = dt.date(2024, 11, 4)  # a Monday
DAYS = 728  # 104 weeks: the last day is Sunday 2026-11-01


def frames(seed: int, spike: float = 1.0) -> dict[str, pd.DataFrame]:
    """Daily orders and complaints in three categories; ``spike`` multiplies 'billing' in the last week."""
    rng = np.random.default_rng(seed)
    days = [FIRST + dt.timedelta(days=i) for i in range(DAYS)]
    orders = rng.poisson(60, DAYS)
    tx_days = np.repeat(np.arange(DAYS), orders)
    tx = pd.DataFrame({"customer_id": [f"C{i:04d}" for i in rng.integers(0, 3000, tx_days.size)],
                       "date": [days[d] for d in tx_days], "amount": 100.0,
                       "order_id": [f"O{i}" for i in range(tx_days.size)]})
    rows = []
    for cat, rate in (("delivery", 0.05), ("billing", 0.02), ("quality", 0.03)):
        mu = orders * rate * (1 + 0.2 * np.sin(2 * np.pi * np.arange(DAYS) / 365.25))
        if spike != 1.0 and cat == "billing":
            mu[-7:] *= spike
        n = rng.poisson(mu)
        for d in np.repeat(np.arange(DAYS), n):
            rows.append({"opened_at": dt.datetime.combine(days[d], dt.time(10)), "category": cat})
    comp = pd.DataFrame(rows)
    comp["complaint_id"] = [f"K{i}" for i in range(len(comp))]
    comp["customer_id"] = [f"C{i:04d}" for i in rng.integers(0, 3000, len(comp))]
    return {"transactions": tx, "complaints": comp}


@pytest.fixture(scope="module")
def spiky(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spiky")
    dataset_from_frames(frames(1, spike=4.0), folder).close()
    return folder


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quiet")
    dataset_from_frames(frames(2), folder).close()
    return folder


runner = CliRunner()


def test_spike_in_latest_week_exits_1_and_writes_json(spiky, tmp_path):
    out = tmp_path / "breaches.json"
    res = runner.invoke(app, ["alerts", "--data", str(spiky), "--json", str(out)])
    assert res.exit_code == 1, res.output
    assert "billing" in res.output and "OUT OF CONTROL" in res.output
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["ok"] is False
    cats = {(b["category"], b["period"]) for b in payload["breaches"]}
    assert ("billing", "2026-10-26") in cats
    assert {b["category"] for b in payload["breaches"]} == {"billing"}
    b = next(b for b in payload["breaches"] if b["period"] == "2026-10-26")
    assert b["observed"] > b["upper_limit"] > b["expected"]
    assert payload["cells_checked"] == 4 * 3  # the last 28 days: four weeks × three categories


def test_quiet_data_exits_0(quiet, tmp_path):
    out = tmp_path / "none.json"
    res = runner.invoke(app, ["alerts", "--data", str(quiet), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "within their limits" in res.output
    assert json.loads(out.read_text(encoding="utf-8"))["breaches"] == []


def test_since_judges_more_periods(quiet):
    res = run_alerts(quiet, since="2026-06-01")
    assert res.checked == 22 * 3
    assert res.since == dt.date(2026, 6, 1)
    assert res.breaches == [] or len(res.breaches) <= 2  # 66 cells at alpha 0.00135


@pytest.mark.parametrize("args", [
    ["alerts", "--data", "/nonexistent/path"],
    ["alerts", "--data", "{quiet}", "--since", "yesterday"],
    ["alerts", "--data", "{quiet}", "--since", "2030-01-01"],
    ["alerts", "--data", "{bad_toml}"],
    ["alerts", "--data", "{no_complaints}"],
])
def test_bad_input_exits_2(args, quiet, tmp_path):
    bad = tmp_path / "bad" / "workbench.toml"
    bad.parent.mkdir()
    bad.write_text('[dataset]\nname = "x"\n[nonsense]\nkey = 1\n', encoding="utf-8")
    no_c = tmp_path / "noc"
    dataset_from_frames({"transactions": frames(3)["transactions"].head(50)}, no_c).close()
    args = [a.format(quiet=quiet, bad_toml=bad, no_complaints=no_c) for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output


def test_zh_lines(spiky):
    res = run_alerts(spiky, lang="zh")
    assert res.breaches and any("失控" in line for line in res.lines)
