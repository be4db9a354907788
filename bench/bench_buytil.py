"""Benchmark: workbench.buytil Pareto/NBD against lifetimes' ParetoNBDFitter.

Draws customers from the Pareto/NBD generative process (vectorised numpy, times at day
resolution like a daily transaction log, in weeks), fits the model with
:class:`workbench.buytil.ParetoNBDModel` and with ``lifetimes`` (bench-only dependency) in the
same run, and prints timings, the speed ratios and parameter agreement to 3 significant figures.

lifetimes is timed twice:

* as users call it: one row per customer (``ParetoNBDFitter().fit(frequency, recency, T)``);
* the honest comparison: fed the same compressed distinct ``(x, t_x, T)`` triples with
  ``weights`` that the workbench groups to internally.

lifetimes evaluates the hypergeometric function per row in every Nelder-Mead step, so at 1M rows
one call takes long; ``--lifetimes-n`` fits it on a random subsample and extrapolates linearly
(the time per likelihood evaluation is linear in rows; the number of steps hardly depends on n).

Usage::

    python bench/bench_buytil.py                       # 1,000,000 customers
    python bench/bench_buytil.py --n 200000 --lifetimes-n 50000

The parameters must agree to 3 significant figures, or lifetimes' must have the lower
log-likelihood (its Nelder-Mead stopping early); otherwise the script exits with 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd
from _common import clocked_cpu as _timed  # bench/_common.py: shared scaffolding

from workbench.buytil import ParetoNBDFit, ParetoNBDModel

TRUE = {"r": 0.55, "alpha": 10.5, "s": 0.6, "beta": 11.7}


def simulate(n: int, seed: int = 1987, max_age_days: int = 364) -> pd.DataFrame:
    """Pareto/NBD customers observed for a uniform 1..max_age_days days, time in weeks.

    lambda ~ Gamma(r, alpha), mu ~ Gamma(s, beta); the customer is alive until an Exp(mu) time and
    buys as a Poisson(lambda) process while alive: x ~ Poisson(lambda * min(death, T)) repeat
    purchases, the last at the maximum of x uniforms on (0, min(death, T)). Times are floored to
    whole days, as in a daily log.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1.0 / TRUE["alpha"], n)
    mu = rng.gamma(TRUE["s"], 1.0 / TRUE["beta"], n)
    t_days = rng.integers(1, max_age_days + 1, n).astype(float)
    T = t_days / 7.0
    end = np.minimum(rng.exponential(1.0 / mu), T)
    x = rng.poisson(lam * end)
    pos = x > 0
    frac = np.zeros(n)
    frac[pos] = rng.beta(x[pos], 1.0)
    recency = np.floor(frac * end * 7.0) / 7.0
    return pd.DataFrame({"frequency": x, "recency": recency, "T": T})




def compress(df: pd.DataFrame) -> pd.DataFrame:
    """Distinct (x, t_x, T) triples with the number of customers each stands for."""
    return df.groupby(["frequency", "recency", "T"]).size().rename("weights").reset_index()


def fit_lifetimes(df: pd.DataFrame, weights: pd.Series | None = None):
    from lifetimes import ParetoNBDFitter

    fit, t = _timed(lambda: ParetoNBDFitter().fit(df["frequency"], df["recency"], df["T"], weights=weights))
    return fit.params_.to_dict(), t


def _sig3(v: float) -> str:
    return f"{v:.3g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--lifetimes-n", type=int, default=20_000,
                    help="customers for lifetimes fed one row per customer (default 20,000; "
                         "extrapolated linearly to --n)")
    ap.add_argument("--seed", type=int, default=1987)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # lifetimes / autograd deprecation noise
    out = sys.stdout

    df, (t_sim, _) = _timed(lambda: simulate(args.n, args.seed))
    trip = compress(df)
    n_pairs = len(pd.concat([df[["frequency", "recency"]].set_axis(["x", "tau"], axis=1),
                             df[["frequency", "T"]].set_axis(["x", "tau"], axis=1)]).drop_duplicates())
    out.write(
        f"simulated {args.n:,} Pareto/NBD customers in {t_sim:.2f}s "
        f"({int((df['frequency'] > 0).sum()):,} repeat buyers, {len(trip):,} distinct (x, t_x, T) triples, "
        f"{n_pairs:,} distinct (x, tau) pairs)\n"
    )

    model, wb = _timed(lambda: ParetoNBDModel().fit(df["frequency"], df["recency"], df["T"]))
    fit = model.result_
    out.write(f"workbench  Pareto/NBD {wb[0]:7.2f}s wall {wb[1]:7.2f}s CPU   (one row per customer in)\n")
    out.write(f"  {fit!r}\n")

    wbt, wbt_t = _timed(lambda: ParetoNBDModel().fit(trip["frequency"], trip["recency"], trip["T"],
                                                      weights=trip["weights"]))
    out.write(f"workbench  Pareto/NBD {wbt_t[0]:7.2f}s wall {wbt_t[1]:7.2f}s CPU   (fed the compressed triples)\n")
    lt_w, l_w = fit_lifetimes(trip, trip["weights"])
    out.write(f"lifetimes  Pareto/NBD {l_w[0]:7.2f}s wall {l_w[1]:7.2f}s CPU   "
              f"(fed the {len(trip):,} compressed triples with weights)\n")

    ln = min(args.lifetimes_n, args.n)
    sub = df if ln >= args.n else df.sample(ln, random_state=args.seed)
    lt_rows, l_rows = fit_lifetimes(sub)
    note = "" if ln >= args.n else f" on a {ln:,}-customer subsample"
    out.write(f"lifetimes  Pareto/NBD {l_rows[0]:7.2f}s wall {l_rows[1]:7.2f}s CPU   "
              f"(one row per customer{note})\n")
    if ln < args.n:
        scale = args.n / ln
        l_rows = (l_rows[0] * scale, l_rows[1] * scale)
        out.write(f"  extrapolated linearly to {args.n:,}: {l_rows[0]:.1f}s wall\n")
    for k, label in ((0, "wall"), (1, "CPU ")):
        out.write(
            f"speed ratio lifetimes/workbench ({label}): as users call it {l_rows[k] / wb[k]:6.1f}x, "
            f"same compressed triples {l_w[k] / wb[k]:6.1f}x (workbench fed triples too: {l_w[k] / wbt_t[k]:6.1f}x)\n"
        )

    # who is at the maximum? lifetimes' parameters under the same (workbench) likelihood
    lt_fit = ParetoNBDFit(**lt_w, se={}, loglik=0.0, n=args.n, converged=True)
    ll_lt = float(np.dot(trip["weights"], lt_fit.log_likelihood(trip["frequency"], trip["recency"], trip["T"])))
    out.write(f"log-likelihood at the workbench estimate {fit.loglik:.2f}, at lifetimes' (weighted) {ll_lt:.2f} "
              f"(difference {fit.loglik - ll_lt:+.3f})\n")
    out.write(f"{'param':<7}{'true':>8}{'workbench':>11}{'se':>9}{'lifetimes(w)':>14}{'agree(3sf)':>12}"
              f"{'lifetimes(rows' + ('*' if ln < args.n else '') + ')':>17}\n")
    agree_all = True
    for name, truth in TRUE.items():
        est = getattr(fit, name)
        agree = _sig3(est) == _sig3(lt_w[name])
        agree_all &= agree
        out.write(f"{name:<7}{truth:>8.3g}{_sig3(est):>11}{fit.se[name]:>9.2g}{_sig3(lt_w[name]):>14}"
                  f"{'yes' if agree else 'NO':>12}{_sig3(lt_rows[name]):>17}\n")
    if ln < args.n:
        out.write("  * lifetimes on rows is fitted on the subsample: its parameters differ by sampling noise\n")
    out.write("  'true' are the simulation's parameters; flooring purchase times to whole days (as in a daily log)\n"
              "  biases s and beta at this n (the fit on unfloored times recovers them), the same for both packages\n")
    if not agree_all:
        verdict = ("lifetimes' Nelder-Mead (tol 1e-4) stops short of the maximum" if fit.loglik > ll_lt
                   else "the workbench estimate is NOT the better maximum")
        out.write(f"  parameters differ at 3 significant figures: {verdict}\n")
        return 0 if fit.loglik > ll_lt else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
