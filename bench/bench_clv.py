"""Benchmark: workbench.clv BG/NBD + Gamma-Gamma against lifetimes at 1M customers.

Simulates customers from the BG/NBD and Gamma-Gamma generative processes
(vectorised numpy, times recorded at day resolution like real transaction
logs), fits both models with :mod:`workbench.clv` and with ``lifetimes``
(bench-only dependency) on the same data, and prints timings, the speed ratio
and parameter agreement to 3 significant figures.

Usage::

    python bench/bench_clv.py                      # 1,000,000 customers
    python bench/bench_clv.py --n 200000 --lifetimes-n 200000
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd
from _common import clocked_cpu as _timed  # bench/_common.py: shared scaffolding

from workbench.clv import BetaGeoModel, GammaGammaModel

TRUE_BG = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
TRUE_GG = {"p": 6.0, "q": 3.7, "v": 15.0}


def simulate(n: int, seed: int = 2005, max_age_days: int = 364) -> pd.DataFrame:
    """BG/NBD customers observed for a uniform 1..max_age_days days, time in weeks.

    Repeat purchases arrive as a Poisson(lambda) process; after each repeat
    purchase the customer drops out with probability p. With N arrivals in
    (0, T] and D ~ Geometric(p) purchases until dropout, x = min(N, D) and
    the x-th arrival time is T * Beta(x, N - x + 1) (order statistic of N
    uniforms). Times are floored to whole days, as in a daily log.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE_BG["r"], 1.0 / TRUE_BG["alpha"], n)
    p = rng.beta(TRUE_BG["a"], TRUE_BG["b"], n)
    t_days = rng.integers(1, max_age_days + 1, n).astype(float)
    T = t_days / 7.0
    arrivals = rng.poisson(lam * T)
    dropout = rng.geometric(p)
    x = np.minimum(arrivals, dropout)
    pos = x > 0
    frac = np.zeros(n)
    frac[pos] = rng.beta(x[pos], arrivals[pos] - x[pos] + 1)
    recency = np.floor(frac * t_days) / 7.0
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    mean_spend = np.zeros(n)
    mean_spend[pos] = rng.gamma(TRUE_GG["p"] * x[pos], 1.0 / (nu[pos] * x[pos]))
    return pd.DataFrame({"frequency": x, "recency": recency, "T": T, "monetary_value": mean_spend})




def fit_workbench(df: pd.DataFrame):
    bg, t_bg = _timed(lambda: BetaGeoModel().fit(df["frequency"], df["recency"], df["T"]))
    rep = df[df["frequency"] > 0]
    gg, t_gg = _timed(lambda: GammaGammaModel().fit(rep["frequency"], rep["monetary_value"]))
    return bg.result_, gg.result_, t_bg, t_gg


def compress(df: pd.DataFrame) -> pd.DataFrame:
    """Distinct (x, t_x, T) triples with the number of customers each stands for."""
    return df.groupby(["frequency", "recency", "T"]).size().rename("weights").reset_index()


def fit_lifetimes_triples(trip: pd.DataFrame):
    """lifetimes' BG/NBD fed the compressed triples with ``weights`` (the honest comparison)."""
    from lifetimes import BetaGeoFitter

    bg, t_bg = _timed(lambda: BetaGeoFitter().fit(trip["frequency"], trip["recency"], trip["T"],
                                                  weights=trip["weights"]))
    return bg.params_.to_dict(), t_bg


def fit_lifetimes(df: pd.DataFrame):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    bg, t_bg = _timed(lambda: BetaGeoFitter().fit(df["frequency"], df["recency"], df["T"]))
    rep = df[df["frequency"] > 0]
    gg, t_gg = _timed(lambda: GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"]))
    return bg.params_.to_dict(), gg.params_.to_dict(), t_bg, t_gg


def _sig3(v: float) -> str:
    return f"{v:.3g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument(
        "--lifetimes-n",
        type=int,
        default=None,
        help="customers for the lifetimes fit (default: same as --n)",
    )
    ap.add_argument("--seed", type=int, default=2005)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # lifetimes / autograd deprecation noise

    df, (t_sim, _) = _timed(lambda: simulate(args.n, args.seed))
    n_rep = int((df["frequency"] > 0).sum())
    n_unique = len(df[["frequency", "recency", "T"]].drop_duplicates())
    out = sys.stdout
    out.write(
        f"simulated {args.n:,} customers in {t_sim:.2f}s "
        f"({n_rep:,} repeat buyers, {n_unique:,} distinct (x, t_x, T) rows)\n"
    )

    bg, gg, wb_bg, wb_gg = fit_workbench(df)
    out.write(
        f"workbench  BG/NBD {wb_bg[0]:7.2f}s wall {wb_bg[1]:7.2f}s CPU   "
        f"Gamma-Gamma {wb_gg[0]:6.2f}s wall {wb_gg[1]:6.2f}s CPU\n"
    )
    out.write(f"  {bg!r}\n  {gg!r}\n")

    ln = args.lifetimes_n or args.n
    sub = df if ln >= args.n else df.sample(ln, random_state=args.seed)
    lt_bg, lt_gg, l_bg, l_gg = fit_lifetimes(sub)
    note = "" if ln >= args.n else f" (on a {ln:,}-customer subsample)"
    out.write(
        f"lifetimes  BG/NBD {l_bg[0]:7.2f}s wall {l_bg[1]:7.2f}s CPU   "
        f"Gamma-Gamma {l_gg[0]:6.2f}s wall {l_gg[1]:6.2f}s CPU{note}\n"
    )
    if ln < args.n:
        scale = args.n / ln
        l_bg = (l_bg[0] * scale, l_bg[1] * scale)
        l_gg = (l_gg[0] * scale, l_gg[1] * scale)
        out.write(
            f"  extrapolated linearly to {args.n:,}: BG/NBD {l_bg[0]:.1f}s, "
            f"Gamma-Gamma {l_gg[0]:.1f}s (wall)\n"
        )
    for k, label in ((0, "wall"), (1, "CPU ")):
        out.write(
            f"speed ratio lifetimes/workbench ({label}): BG/NBD {l_bg[k] / wb_bg[k]:5.1f}x, "
            f"Gamma-Gamma {l_gg[k] / wb_gg[k]:5.1f}x, "
            f"total {(l_bg[k] + l_gg[k]) / (wb_bg[k] + wb_gg[k]):5.1f}x\n"
        )

    # the honest ratio: lifetimes fed the compressed triples with weights; the workbench timed on the
    # same triples too (and above on one row per customer, grouping included)
    trip = compress(df)
    lt_w, l_w = fit_lifetimes_triples(trip)
    wb_w, t_wbw = _timed(lambda: BetaGeoModel().fit(trip["frequency"], trip["recency"], trip["T"],
                                                    weights=trip["weights"]))
    out.write(
        f"lifetimes  BG/NBD {l_w[0]:7.2f}s wall {l_w[1]:7.2f}s CPU   (fed the {len(trip):,} compressed triples "
        f"with weights)\nworkbench  BG/NBD {t_wbw[0]:7.2f}s wall {t_wbw[1]:7.2f}s CPU   (fed the same triples)\n"
    )
    for k, label in ((0, "wall"), (1, "CPU ")):
        out.write(
            f"BG/NBD speed ratio, same compressed triples ({label}): lifetimes/workbench(rows in) "
            f"{l_w[k] / wb_bg[k]:5.1f}x, lifetimes/workbench(triples in) {l_w[k] / t_wbw[k]:5.1f}x\n"
        )
    for name in TRUE_BG:
        agree = _sig3(getattr(wb_w.result_, name)) == _sig3(lt_w[name])
        out.write(f"  BG/NBD {name:<6} workbench {_sig3(getattr(wb_w.result_, name)):>8}  "
                  f"lifetimes(weights) {_sig3(lt_w[name]):>8}  {'yes' if agree else 'NO'}\n")

    rows = []
    for name, truth in TRUE_BG.items():
        rows.append(("BG/NBD", name, truth, getattr(bg, name), bg.se[name], lt_bg[name]))
    for name, truth in TRUE_GG.items():
        rows.append(("Gamma-Gamma", name, truth, getattr(gg, name), gg.se[name], lt_gg[name]))
    out.write(
        f"{'model':<12}{'param':<7}{'true':>8}{'workbench':>11}{'se':>9}"
        f"{'lifetimes':>11}{'agree(3sf)':>12}\n"
    )
    for model, name, truth, est, se, lt in rows:
        agree = _sig3(est) == _sig3(lt)
        out.write(
            f"{model:<12}{name:<7}{truth:>8.3g}{_sig3(est):>11}{se:>9.2g}"
            f"{_sig3(lt):>11}{'yes' if agree else 'NO':>12}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
