"""Build the hostile corpus: small datasets of unexpected but legal shapes (issue 11).

Each case is a folder with CSV exports and a ``workbench.toml``; the whole report pack must run
on each (or stop with its documented exit code) without a notebook failure or an unsupported
headline. ``EXPECTED`` says what ``workbench reports run --period 2026-10`` must return.

Run ``python tests/data/hostile/build.py [OUT]`` to rebuild (default: this folder); the files are
committed so a reader can open them, and a test checks the script still makes exactly them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

PERIOD = "2026-10"
START, END = pd.Timestamp("2025-11-01"), pd.Timestamp("2026-10-31")
N_CUSTOMERS = 80

# case -> exit code of the pack for PERIOD (0 ok, 3 no data in the period)
EXPECTED: dict[str, int] = {
    "binary_satisfaction": 0,
    "two_level_satisfaction": 0,
    "drivers_no_loyalty": 0,
    "recommend_only": 0,
    "scale_0_10": 0,
    "scale_1_4": 0,
    "scale_0_1": 0,
    "scale_0_100": 0,
    "one_customer": 0,
    "empty_period": 3,
    "all_zero_amounts": 0,
    "header_only": 3,
    "no_close_times": 0,
    "no_customers_no_transactions": 0,
    "partial_period": 0,
}


def _days(rng: np.random.Generator, n: int, start: pd.Timestamp = START, end: pd.Timestamp = END) -> pd.Series:
    span = (end - start).days + 1
    return pd.Series(start + pd.to_timedelta(rng.integers(0, span, n), unit="D"))


def base(seed: int = 11, n: int = N_CUSTOMERS, end: pd.Timestamp = END) -> dict[str, pd.DataFrame]:
    """A small, ordinary dataset: customers, transactions, surveys (1-5), complaints."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:04d}" for i in range(1, n + 1)]
    signup = _days(rng, n, START - pd.Timedelta(days=365), end)
    customers = pd.DataFrame({
        "customer_id": ids, "signup_date": signup.dt.strftime("%Y-%m-%d"),
        "segment": rng.choice(["Retail", "Business"], n), "region": rng.choice(["North", "South", "East"], n),
        "channel": rng.choice(["Online", "Store"], n),
    })
    k = n * 8
    cust = rng.choice(ids, k)
    transactions = pd.DataFrame({
        "customer_id": cust, "date": _days(rng, k, START, end).dt.strftime("%Y-%m-%d"),
        "amount": np.round(rng.gamma(2.0, 60.0, k), 2), "order_id": [f"O{i:05d}" for i in range(k)],
        "product_category": rng.choice(["Shoes", "Bags", "Coats", "Hats"], k),
        "channel": rng.choice(["Online", "Store"], k),
    })
    m = 160
    sat = rng.integers(1, 6, m)
    surveys = pd.DataFrame({
        "response_id": [f"R{i:04d}" for i in range(m)], "customer_id": rng.choice(ids, m),
        "date": _days(rng, m, START, end).dt.strftime("%Y-%m-%d"), "satisfaction": sat,
        "repurchase_intent": np.clip(sat + rng.integers(-1, 2, m), 1, 5),
        "recommend": np.clip(sat * 2 + rng.integers(-1, 2, m), 0, 10),
        "expectation": rng.integers(1, 6, m),
        "service_level": np.clip(sat + rng.integers(-1, 2, m), 1, 5),
        "product_quality": rng.integers(1, 6, m),
        "comment": rng.choice(["fast delivery, friendly staff", "the parcel arrived late again",
                               "price is too high for the quality", ""], m),
    })
    c = 70
    opened = _days(rng, c, START, end) + pd.to_timedelta(rng.integers(8, 18, c), unit="h")
    closed = opened + pd.to_timedelta(rng.integers(2, 200, c), unit="h")
    still_open = rng.random(c) < 0.15
    complaints = pd.DataFrame({
        "complaint_id": [f"K{i:04d}" for i in range(c)], "customer_id": rng.choice(ids, c),
        "opened_at": opened.dt.strftime("%Y-%m-%d %H:%M:%S"),
        "first_response_at": (opened + pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "closed_at": closed.dt.strftime("%Y-%m-%d %H:%M:%S").where(~still_open, ""),
        "category": rng.choice(["Delivery", "Billing", "Product quality"], c),
        "status": np.where(still_open, "Open", "Closed"),
        "text": rng.choice(["late delivery", "charged twice", "broken zip"], c),
    })
    return {"customers": customers, "transactions": transactions, "surveys": surveys, "complaints": complaints}


def _rescale(frame: pd.DataFrame, cols: list[str], lo: float, hi: float, integer: bool = True) -> pd.DataFrame:
    out = frame.copy()
    for col in cols:
        x = (out[col].astype(float) - 1) / 4 * (hi - lo) + lo
        out[col] = x.round().astype(int) if integer else x.round(1)
    return out


def _with_scales(lo: float, hi: float) -> Callable[[dict[str, pd.DataFrame]], tuple[dict, dict]]:
    def make(d: dict[str, pd.DataFrame]) -> tuple[dict, dict]:
        cols = ["satisfaction", "repurchase_intent", "expectation", "service_level", "product_quality"]
        d["surveys"] = _rescale(d["surveys"], cols, lo, hi)
        return d, {"surveys": {c: [lo, hi] for c in cols} | {"recommend": [0, 10]}}
    return make


def _binary(d):
    s = d["surveys"]
    s["satisfaction"] = (s["satisfaction"] >= 4).astype(int)
    s["loyal"] = (s["repurchase_intent"] >= 4).astype(int)
    d["surveys"] = s.drop(columns=["repurchase_intent", "recommend", "expectation"])
    return d, {"surveys": {"satisfaction": [0, 1]}}


def _two_level(d):
    s = d["surveys"]
    s["satisfaction"] = np.where(s["satisfaction"] >= 3, 5, 4)
    return d, {"surveys": {"recommend": [0, 10]}}


def _drivers_no_loyalty(d):
    d["surveys"] = d["surveys"][["response_id", "customer_id", "date", "satisfaction", "service_level",
                                 "product_quality"]]
    return d, {}


def _recommend_only(d):
    d["surveys"] = d["surveys"][["response_id", "customer_id", "date", "satisfaction", "recommend"]]
    return d, {"surveys": {"recommend": [0, 10]}}


def _one_customer(d):
    keep = "C0001"
    d["customers"] = d["customers"].head(1)
    # one customer who is active in the report period (a purchase, an answer and a complaint in October)
    d["transactions"] = d["transactions"].head(5).assign(
        customer_id=keep, date=["2026-06-03", "2026-07-15", "2026-08-20", "2026-09-28", "2026-10-12"])
    d["surveys"] = d["surveys"].head(2).assign(customer_id=keep, date=["2026-08-21", "2026-10-13"])
    d["complaints"] = d["complaints"].head(1).assign(
        customer_id=keep, opened_at="2026-10-14 09:00:00", first_response_at="2026-10-14 10:00:00",
        closed_at="2026-10-16 12:00:00")
    return d, {"surveys": {"recommend": [0, 10]}}


def _empty_period(d):
    return base(end=pd.Timestamp("2026-06-30")), {"surveys": {"recommend": [0, 10]}}


def _all_zero(d):
    d["transactions"]["amount"] = 0.0
    return d, {"surveys": {"recommend": [0, 10]}}


def _header_only(d):
    return {k: v.head(0) for k, v in d.items()}, {"surveys": {"recommend": [0, 10]}}


def _no_close_times(d):
    d["complaints"] = d["complaints"].drop(columns=["first_response_at", "closed_at", "status"])
    return d, {"surveys": {"recommend": [0, 10]}}


def _no_customers_no_transactions(d):
    surveys = d["surveys"].drop(columns=["customer_id"])
    complaints = d["complaints"].drop(columns=["customer_id"])
    return {"surveys": surveys, "complaints": complaints}, {"surveys": {"recommend": [0, 10]}}


def _partial_period(d):
    return base(end=pd.Timestamp("2026-10-19")), {"surveys": {"recommend": [0, 10]}}


CASES: dict[str, Callable[[dict[str, pd.DataFrame]], tuple[dict, dict]]] = {
    "binary_satisfaction": _binary,
    "two_level_satisfaction": _two_level,
    "drivers_no_loyalty": _drivers_no_loyalty,
    "recommend_only": _recommend_only,
    "scale_0_10": _with_scales(0, 10),
    "scale_1_4": _with_scales(1, 4),
    "scale_0_1": _with_scales(0, 1),
    "scale_0_100": _with_scales(0, 100),
    "one_customer": _one_customer,
    "empty_period": _empty_period,
    "all_zero_amounts": _all_zero,
    "header_only": _header_only,
    "no_close_times": _no_close_times,
    "no_customers_no_transactions": _no_customers_no_transactions,
    "partial_period": _partial_period,
}


def _toml(name: str, tables: dict[str, pd.DataFrame], scales: dict[str, dict[str, list[float]]]) -> str:
    lines = ["[dataset]", f'name = "Hostile: {name}"', 'currency = "EUR"', "margin_rate = 0.3",
             'as_of = "2026-11-30"']
    for table in tables:
        lines += ["", f"[tables.{table}]", f'source = "{table}.csv"']
        for col, (lo, hi) in scales.get(table, {}).items():
            if col in tables[table].columns:
                lines.append(f"scales.{col} = [{lo}, {hi}]")
    return "\n".join(lines) + "\n"


def build(out: Path) -> list[Path]:
    """Write every case under ``out``; returns the folders."""
    folders = []
    for name, make in CASES.items():
        tables, scales = make(base())
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.csv"):
            old.unlink()
        for table, frame in tables.items():
            frame.to_csv(folder / f"{table}.csv", index=False, lineterminator="\n")
        (folder / "workbench.toml").write_text(_toml(name, tables, scales), encoding="utf-8")
        folders.append(folder)
    return folders


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for f in build(target):
        print(f)
