"""Benchmark: workbench purchase-model fits (BG/NBD, Pareto/NBD) against lifetimes in the same run.

Draws customers from each model's generative process (vectorised numpy, times at day resolution
like a daily transaction log, in weeks) and times :class:`workbench.clv.BetaGeoModel` and
:class:`workbench.buytil.ParetoNBDModel` against lifetimes' ``BetaGeoFitter`` / ``ParetoNBDFitter``
(bench-only dependency: ``pip install -e '.[bench]'``, which ``make bench`` does; without lifetimes
the script times the workbench alone and says so).

The honest comparison feeds both packages the same compressed distinct ``(x, t_x, T)`` triples with
``weights``. On a shared machine seconds move with other people's load, so each model is timed in
``--repeats`` interleaved rounds (workbench then lifetimes, then the other way round), each round
gives its own ratio, and the **median of the per-round ratios** is the figure (wall and CPU time).

lifetimes is also timed once as users call it (one row per customer) on ``--lifetimes-n`` customers,
extrapolated linearly to ``--n`` (its time per likelihood evaluation is linear in rows).

Usage::

    python bench/bench_buytil.py                       # 1,000,000 customers, 3 rounds each
    python bench/bench_buytil.py --n 200000 --repeats 5 --models bgnbd

Targets (issue 14): each median ratio >= 10 and parameters equal to 3 significant figures (or
lifetimes' the lower log-likelihood: its optimiser stopping early). Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd
from _common import clocked_cpu as _timed  # bench/_common.py: shared scaffolding

from workbench.buytil import ParetoNBDFit, ParetoNBDModel
from workbench.clv import BetaGeoModel

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


def simulate_bg(n: int, seed: int = 2005) -> pd.DataFrame:
    from bench_clv import simulate  # bench/ is on sys.path when run as a script

    return simulate(n, seed)[["frequency", "recency", "T"]]


MODELS = {  # name: (simulate, workbench model, lifetimes fitter, parameter names, true values)
    "bgnbd": (simulate_bg, BetaGeoModel, "BetaGeoFitter", ("r", "alpha", "a", "b"),
              {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}),
    "pnbd": (simulate, ParetoNBDModel, "ParetoNBDFitter", ("r", "alpha", "s", "beta"), TRUE),
}


def _have_lifetimes() -> bool:
    try:
        import lifetimes  # noqa: F401
    except ImportError:
        return False
    return True


def fit_lifetimes(df: pd.DataFrame, weights: pd.Series | None = None, fitter: str = "ParetoNBDFitter"):
    import lifetimes

    fit, t = _timed(lambda: getattr(lifetimes, fitter)().fit(df["frequency"], df["recency"], df["T"],
                                                               weights=weights))
    return fit.params_.to_dict(), t


def _sig3(v: float) -> str:
    return f"{v:.3g}"


def run_model(name: str, args: argparse.Namespace, out) -> bool:
    """Time one model in interleaved rounds; print per-round and median ratios; True when the targets are met."""
    sim, model_cls, fitter, names, truth = MODELS[name]
    df, (t_sim, _) = _timed(lambda: sim(args.n, args.seed))
    trip = compress(df)
    out.write(f"\n== {name}: {args.n:,} simulated customers ({t_sim:.1f}s), {int((df['frequency'] > 0).sum()):,} "
              f"repeat buyers, {len(trip):,} distinct (x, t_x, T) triples\n")
    lt_ok = _have_lifetimes()
    if not lt_ok:
        out.write("  lifetimes is not installed (pip install -e '.[bench]'; make bench does): workbench only\n")

    def wb_fit():
        return model_cls().fit(trip["frequency"], trip["recency"], trip["T"], weights=trip["weights"]).result_

    def wb_rows():  # what a user waits for: one row per customer, the fit compresses to triples itself
        return model_cls().fit(df["frequency"], df["recency"], df["T"]).result_

    rounds, user = [], []
    for k in range(args.repeats):
        lt_first = lt_ok and k % 2 == 1  # interleave: the load a round meets falls on both packages alike
        if lt_first:
            lt_w, l_t = fit_lifetimes(trip, trip["weights"], fitter)
        fit, w_t = _timed(wb_fit)
        _, u_t = _timed(wb_rows)
        if lt_ok and not lt_first:
            lt_w, l_t = fit_lifetimes(trip, trip["weights"], fitter)
        user.append(u_t)
        if lt_ok:
            rounds.append((w_t, l_t))
            out.write(f"  round {k + 1}: workbench {w_t[0]:7.2f}s wall {w_t[1]:7.2f}s CPU | lifetimes {l_t[0]:7.2f}s wall "
                      f"{l_t[1]:7.2f}s CPU | ratio {l_t[0] / w_t[0]:5.1f}x wall {l_t[1] / w_t[1]:5.1f}x CPU"
                      f" | workbench from {args.n:,} rows (compressing itself) {u_t[1]:5.2f}s CPU, "
                      f"ratio {l_t[1] / u_t[1]:4.1f}x{'  (lifetimes first)' if lt_first else ''}\n")
        else:
            out.write(f"  round {k + 1}: workbench {w_t[0]:7.2f}s wall {w_t[1]:7.2f}s CPU | from {args.n:,} rows "
                      f"{u_t[1]:5.2f}s CPU\n")
    out.write(f"  {fit!r}\n")
    if not lt_ok:
        return True
    wall = float(np.median([lt[0] / wb[0] for wb, lt in rounds]))
    cpu = float(np.median([lt[1] / wb[1] for wb, lt in rounds]))
    out.write(f"  median ratio lifetimes/workbench on the same weighted triples over {len(rounds)} interleaved rounds: "
              f"{wall:.1f}x wall, {cpu:.1f}x CPU (target 10x)\n")
    u_cpu = float(np.median([lt[1] / u[1] for (_, lt), u in zip(rounds, user, strict=True)]))
    out.write(f"  median ratio lifetimes on the triples / workbench from one row per customer (its compression "
              f"included, lifetimes' not): {u_cpu:.1f}x CPU\n")
    if args.lifetimes_n:
        ln = min(args.lifetimes_n, args.n)
        sub = df if ln >= args.n else df.sample(ln, random_state=args.seed)
        _, l_rows = fit_lifetimes(sub, None, fitter)
        scale = args.n / ln
        out.write(f"  lifetimes as users call it (one row per customer, {ln:,} customers"
                  f"{f', extrapolated to {args.n:,}' if ln < args.n else ''}): {l_rows[0] * scale:.1f}s wall, "
                  f"{l_rows[0] * scale / float(np.median([wb[0] for wb, _ in rounds])):.0f}x the workbench's median\n")
    # who is at the maximum? lifetimes' parameters under the workbench likelihood of the same triples
    ll_lt = _loglik(name, lt_w, trip)
    out.write(f"  log-likelihood at the workbench estimate {fit.loglik:.3f}, at lifetimes' {ll_lt:.3f} "
              f"(difference {fit.loglik - ll_lt:+.4f})\n")
    out.write(f"  {'param':<7}{'true':>8}{'workbench':>11}{'se':>9}{'lifetimes':>11}{'agree(3sf)':>12}\n")
    agree_all = True
    for p in names:
        est = getattr(fit, p)
        agree = _sig3(est) == _sig3(lt_w[p])
        agree_all &= agree
        out.write(f"  {p:<7}{truth[p]:>8.3g}{_sig3(est):>11}{fit.se[p]:>9.2g}{_sig3(lt_w[p]):>11}"
                  f"{'yes' if agree else 'NO':>12}\n")
    params_ok = agree_all or fit.loglik > ll_lt
    if not agree_all:
        out.write("  parameters differ at 3 significant figures: "
                  + ("lifetimes' optimiser stops short of the maximum\n" if fit.loglik > ll_lt
                     else "the workbench estimate is NOT the better maximum\n"))
    return params_ok and wall >= 10


def _loglik(name: str, params: dict, trip: pd.DataFrame) -> float:
    if name == "pnbd":
        f = ParetoNBDFit(**params, se={}, loglik=0.0, n=int(trip["weights"].sum()), converged=True)
        ll = f.log_likelihood(trip["frequency"], trip["recency"], trip["T"])
    else:
        from workbench.clv import _BGNBDLikelihood

        x, t_x, T = (trip[c].to_numpy(float) for c in ("frequency", "recency", "T"))
        w = trip["weights"].to_numpy(float)
        nll = _BGNBDLikelihood(x, t_x, T, w)
        theta = np.log([params["r"], params["alpha"], params["a"], params["b"]])
        return -float(nll(theta, grad=False)[0]) * nll.n
    return float(np.dot(trip["weights"], ll))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds per model (default 3)")
    ap.add_argument("--models", default="bgnbd,pnbd", help="comma-separated: bgnbd, pnbd")
    ap.add_argument("--lifetimes-n", type=int, default=20_000,
                    help="customers for lifetimes fed one row per customer, extrapolated to --n (0: skip)")
    ap.add_argument("--seed", type=int, default=1987)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # lifetimes / autograd deprecation noise
    ok = [run_model(m.strip(), args, sys.stdout) for m in args.models.split(",") if m.strip()]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
