"""Tests for workbench.buytil: Pareto/NBD and MBG/NBD against published fits and numerical integration.

Every expected number comes from outside the module under test: the published CDNOW estimates
(Fader & Hardie; ``lifetimes`` 0.11.3 on the same data), a calibration summary built here with plain
pandas, and likelihoods / posterior expectations integrated numerically with scipy from the
individual-level models (no hypergeometric functions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

from workbench.buytil import (
    ModifiedBetaGeoFit,
    ModifiedBetaGeoModel,
    ParetoNBDFit,
    ParetoNBDModel,
)

HERE = Path(__file__).parent
REALDATA = HERE.parent / ".." / "shared" / "realdata" / "CDNOW_sample.txt"
CDNOW_RAW = REALDATA if REALDATA.exists() else HERE / "data" / "cdnow" / "CDNOW_sample.txt"  # same bytes
CAL_END = pd.Timestamp("1997-09-30")
OBS_END = pd.Timestamp("1998-06-30")


def plain_summary() -> pd.DataFrame:
    """Calibration/holdout summary of the CDNOW log with plain pandas (weeks = days / 7)."""
    raw = pd.read_csv(CDNOW_RAW, sep=r"\s+", header=None, names=["master_id", "id", "date", "cds", "dollars"],
                      dtype={"date": str})
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    days = raw[["id", "date"]].drop_duplicates()
    cal = days[days["date"] <= CAL_END]
    g = cal.groupby("id")["date"]
    out = pd.DataFrame({
        "frequency": g.size() - 1,
        "recency": (g.max() - g.min()).dt.days / 7.0,
        "T": (CAL_END - g.min()).dt.days / 7.0,
    })
    hold = days[(days["date"] > CAL_END) & (days["date"] <= OBS_END)].groupby("id").size()
    out["frequency_holdout"] = hold.reindex(out.index, fill_value=0)
    out["duration_holdout"] = (OBS_END - CAL_END).days / 7.0
    return out


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return plain_summary()


@pytest.fixture(scope="module")
def pnbd(cdnow) -> ParetoNBDFit:
    return ParetoNBDModel().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"]).result_


@pytest.fixture(scope="module")
def mbg(cdnow) -> ModifiedBetaGeoFit:
    return ModifiedBetaGeoModel().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"]).result_


def _close(actual: float, expected: float, rel: float = 0.01) -> bool:
    return abs(actual - expected) <= rel * abs(expected)


# ---------------------------------------------------------------------------
# independent Pareto/NBD and MBG/NBD computations (numerical integration)
# ---------------------------------------------------------------------------


def _gamma_moment(shape: float, rate: float, k: float, t: float) -> float:
    """E[lam^k exp(-lam t)] for lam ~ Gamma(shape, rate)."""
    return np.exp(special.gammaln(shape + k) - special.gammaln(shape) + shape * np.log(rate)
                  - (shape + k) * np.log(rate + t))


def pnbd_lik_tau(r, alpha, s, beta, x, t_x, T) -> float:
    """Pareto/NBD likelihood as E over (lam, mu) of the individual likelihood, the death-time term
    ``lam^x mu int_{t_x}^T exp(-(lam+mu) tau) d tau`` integrated over tau by quadrature."""
    alive = _gamma_moment(r, alpha, x, T) * _gamma_moment(s, beta, 0, T)
    dead, _ = integrate.quad(lambda tau: _gamma_moment(r, alpha, x, tau) * _gamma_moment(s, beta, 1, tau),
                             t_x, T, epsabs=0, epsrel=1e-12, limit=200)
    return alive + dead


def pnbd_loglik_tau(r, alpha, s, beta, x, t_x, T) -> float:
    """log of :func:`pnbd_lik_tau`, each term scaled in logs (for likelihoods below 1e-308)."""
    def log_m(shape, rate, k, t):
        return special.gammaln(shape + k) - special.gammaln(shape) + shape * np.log(rate) - (shape + k) * np.log(rate + t)

    log_alive = log_m(r, alpha, x, T) + log_m(s, beta, 0, T)
    top = log_m(r, alpha, x, t_x) + log_m(s, beta, 1, t_x)  # the integrand decreases in tau
    # the integrand falls by e over about (alpha + t_x) / (r + x): break points on that scale
    scale = (min(alpha, beta) + t_x) / (r + x + s + 1)
    pts = [p for p in t_x + np.geomspace(0.01 * scale, T, 60) if p < T]
    dead, _ = integrate.quad(lambda tau: np.exp(log_m(r, alpha, x, tau) + log_m(s, beta, 1, tau) - top),
                             t_x, T, epsabs=0, epsrel=1e-12, limit=400, points=pts or None)
    return float(np.logaddexp(log_alive, top + np.log(dead))) if dead > 0 else float(log_alive)


def pnbd_alive_tau(r, alpha, s, beta, x, t_x, T) -> float:
    """P(alive): E[lam^x exp(-(lam+mu) T)] (gamma moments) over the likelihood."""
    return _gamma_moment(r, alpha, x, T) * _gamma_moment(s, beta, 0, T) / pnbd_lik_tau(r, alpha, s, beta, x, t_x, T)


def pnbd_expected_tau(r, alpha, s, beta, x, t_x, T, t) -> float:
    """E[Y(t) | x, t_x, T] = E[1{alive} lam/mu (1 - exp(-mu t))] / L; the lam and mu parts separate:
    E[lam^(x+1) exp(-lam T)] * E[exp(-mu T) (1 - exp(-mu t)) / mu], the latter by quadrature."""
    mu_part, _ = integrate.quad(lambda mu: np.exp(-mu * T) * -np.expm1(-mu * t) / mu
                                * stats.gamma.pdf(mu, s, scale=1 / beta), 0, np.inf, epsabs=0, epsrel=1e-11,
                                limit=200)
    return _gamma_moment(r, alpha, x + 1, T) * mu_part / pnbd_lik_tau(r, alpha, s, beta, x, t_x, T)


POINTS = [(0, 0.0, 38.86), (1, 1.71, 38.86), (2, 30.43, 38.86), (7, 29.43, 35.0), (25, 10.0, 39.0),
          (60, 38.0, 38.5), (3, 12.0, 12.0)]


# ---------------------------------------------------------------------------
# Pareto/NBD
# ---------------------------------------------------------------------------


def test_plain_summary_is_the_published_calibration_sample(cdnow):
    ref = pd.read_csv(HERE / "data" / "cdnow" / "cdnow_customers_summary.csv").set_index("ID")
    assert len(cdnow) == 2357
    ref = ref.loc[cdnow.index]
    assert (ref["frequency"].to_numpy() == cdnow["frequency"].to_numpy()).all()
    assert np.abs(ref["T"].to_numpy() - cdnow["T"].to_numpy()).max() < 0.006


def test_pareto_nbd_reproduces_published_cdnow(pnbd):
    fader_hardie = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    lifetimes = {"r": 0.5533, "alpha": 10.577, "s": 0.6063, "beta": 11.671}
    for ref in (fader_hardie, lifetimes):
        for name, value in ref.items():
            assert _close(getattr(pnbd, name), value), (name, getattr(pnbd, name), value)
    assert pnbd.converged and pnbd.identified
    assert pnbd.n == 2357
    # Fader, Hardie & Lee (2005) report log-likelihood -9595.0 for the Pareto/NBD on CDNOW
    assert abs(pnbd.loglik - (-9595.0)) < 0.1
    assert all(np.isfinite(v) and v > 0 for v in pnbd.se.values())
    ci = pnbd.conf_int()
    assert (ci["lower"] < ci["estimate"]).all() and (ci["estimate"] < ci["upper"]).all()
    assert "Pareto/NBD" in pnbd.summary() and "ParetoNBDFit(" in repr(pnbd)


def test_pareto_nbd_loglik_sums_row_likelihoods_integrated_independently(pnbd, cdnow):
    rows = np.asarray(pnbd.log_likelihood(cdnow["frequency"], cdnow["recency"], cdnow["T"]))
    assert abs(rows.sum() - pnbd.loglik) < 1e-6 * abs(pnbd.loglik)
    p = (pnbd.r, pnbd.alpha, pnbd.s, pnbd.beta)
    for x, t_x, T in POINTS:
        want = np.log(pnbd_lik_tau(*p, x, t_x, T))
        got = float(pnbd.log_likelihood(x, t_x, T))
        assert abs(got - want) < 1e-8 * max(1.0, abs(want)), (x, t_x, T, got, want)


@pytest.mark.parametrize(
    "params",
    [(0.55, 10.6, 0.61, 11.7),  # alpha < beta (the CDNOW optimum)
     (0.55, 11.7, 0.61, 10.6),  # alpha > beta
     (2.0, 3.0, 0.3, 40.0),  # alpha << beta: (1-z)^-(r+x) would overflow for large x
     (0.3, 40.0, 1.5, 2.0),  # alpha >> beta
     (0.8, 5.0, 1.2, 5.0)],  # alpha == beta (z = 0)
)
def test_pareto_nbd_likelihood_both_hypergeometric_cases(params):
    fit = ParetoNBDFit(*params, se={}, loglik=0.0, n=1, converged=True)
    for x, t_x, T in POINTS + [(150, 20.0, 39.0)]:
        want = np.log(pnbd_lik_tau(*params, x, t_x, T))
        got = float(fit.log_likelihood(x, t_x, T))
        assert np.isfinite(got)
        assert abs(got - want) < 1e-8 * max(1.0, abs(want)), (params, x, t_x, T, got, want)


def test_pareto_nbd_loglik_random_triples_and_parameters_by_quadrature():
    # random parameters (both hypergeometric cases, extreme ratios the optimiser visits) and random
    # fractional-week triples: the closed form equals the defining integral to 1e-8 relative
    rng = np.random.default_rng(2005)
    worst = 0.0
    for _ in range(40):
        r, alpha, s, beta = np.exp(rng.uniform([-2.5, -1, -2.5, -1], [3, 7, 2, 7]))
        fit = ParetoNBDFit(r, alpha, s, beta, se={}, loglik=0.0, n=1, converged=True)
        T = rng.uniform(0.2, 104)
        x = int(rng.integers(0, 80)) if rng.random() < 0.8 else 0
        t_x = rng.uniform(0, T) if x else 0.0
        want = pnbd_loglik_tau(r, alpha, s, beta, x, t_x, T)
        got = float(fit.log_likelihood(x, t_x, T))
        worst = max(worst, abs(got - want) / max(1.0, abs(want)))
        assert abs(got - want) < 1e-8 * max(1.0, abs(want)), ((r, alpha, s, beta), (x, t_x, T), got, want)
    assert worst < 1e-8


@pytest.mark.parametrize(
    "b, c, z",
    [(0.55, 2.2, 0.3),  # scipy's series
     (25.3, 26.9, 0.9),  # continued fraction
     (1438.77, 1439.66, 0.99997),  # the connection formula (this point took seconds by quadrature)
     (1438.77, 1445.66, 0.99976),  # continued fraction, large parameters
     (1.0, 2.0, 1 - 5e-7),  # d = c-1-b = 0, a pole of the connection formula (r = 1 at the start)
     (3.0, 5.0, 1 - 2e-7),  # d = 1
     (1.6, 80.0, 0.7)],  # alpha < beta case: c >> b
)
def test_log_hyp2f1_1_equals_the_positive_power_series(b, c, z):
    from workbench.buytil import _log_hyp2f1_1

    # sum_k (b)_k / (c)_k z^k: every term positive, summed exactly enough in float64 (cumulative
    # products of the term ratios, in chunks, until the terms vanish)
    total, last, k0 = 0.0, 1.0, 0
    while True:
        k = np.arange(k0, k0 + 2_000_000, dtype=float)
        terms = last * np.cumprod((b + k) / (c + k) * z)
        total += terms.sum()
        last, k0 = terms[-1], k0 + k.size
        if last < 1e-18 * total:
            break
    want = np.log1p(total)
    got = float(_log_hyp2f1_1(b, c, z))
    assert abs(got - want) < 1e-9 * max(1.0, abs(want)), (got, want)


def test_pareto_nbd_alive_and_expected_purchases_by_integration(pnbd):
    p = (pnbd.r, pnbd.alpha, pnbd.s, pnbd.beta)
    t = 39.0
    for x, t_x, T in POINTS:
        alive = pnbd_alive_tau(*p, x, t_x, T)
        expected = pnbd_expected_tau(*p, x, t_x, T, t)
        assert abs(float(pnbd.probability_alive(x, t_x, T)) - alive) < 1e-9, (x, alive)
        assert abs(float(pnbd.expected_purchases(t, x, t_x, T)) - expected) < 1e-8 * max(1, expected), x
    # lifetimes 0.11.3 on the same customer (its own fit, equal to 4 significant figures)
    assert _close(float(pnbd.expected_purchases(39, 2, 30.43, 38.86)), 1.45513, 1e-3)
    assert _close(float(pnbd.probability_alive(2, 30.43, 38.86)), 0.86912, 1e-3)


def test_pareto_nbd_new_customer_expectation(pnbd):
    # E[X(t)] = E[lam/mu (1 - exp(-mu t))] over the two gamma mixing distributions
    t = 52.0
    e_lam = pnbd.r / pnbd.alpha
    e_mu, _ = integrate.quad(lambda mu: stats.gamma.pdf(mu, pnbd.s, scale=1 / pnbd.beta) * -np.expm1(-mu * t) / mu,
                             0, np.inf, epsrel=1e-11)
    assert abs(float(pnbd.expected_purchases_new(t)) - e_lam * e_mu) < 1e-8


def test_pareto_nbd_series_in_and_weights_equal_repeated_rows(cdnow, pnbd):
    s = cdnow.iloc[:600]
    p = ParetoNBDFit(pnbd.r, pnbd.alpha, pnbd.s, pnbd.beta, se={}, loglik=0.0, n=1, converged=True)
    out = p.expected_purchases(10, s["frequency"], s["recency"], s["T"])
    assert isinstance(out, pd.Series) and out.index.equals(s.index)
    # compressed triples with weights == one row per customer
    trip = s.groupby(["frequency", "recency", "T"]).size().rename("w").reset_index()
    a = ParetoNBDModel().fit(s["frequency"], s["recency"], s["T"]).result_
    b = ParetoNBDModel().fit(trip["frequency"], trip["recency"], trip["T"], weights=trip["w"]).result_
    assert b.n == a.n == 600
    for k in ParetoNBDFit.names:
        assert _close(getattr(a, k), getattr(b, k), 1e-5), k
    assert abs(a.loglik - b.loglik) < 1e-6


def test_pareto_nbd_rejects_bad_input():
    with pytest.raises(ValueError, match="all frequencies are zero"):
        ParetoNBDModel().fit([0, 0], [0, 0], [5, 6])
    with pytest.raises(ValueError, match="recency exceeds T"):
        ParetoNBDModel().fit([1, 2], [7, 1], [5, 6])
    with pytest.raises(ValueError, match="not fitted"):
        ParetoNBDModel().probability_alive([1], [1], [2])


def test_pareto_nbd_recovers_simulated_parameters():
    rng = np.random.default_rng(7)
    n, truth = 40_000, (0.6, 8.0, 0.9, 12.0)
    lam = rng.gamma(truth[0], 1 / truth[1], n)
    mu = rng.gamma(truth[2], 1 / truth[3], n)
    T = rng.integers(20, 53, n).astype(float)
    death = rng.exponential(1 / mu)
    end = np.minimum(death, T)
    x = rng.poisson(lam * end)
    t_x = np.where(x > 0, end * rng.beta(np.maximum(x, 1), 1), 0.0)  # the max of x uniforms
    fit = ParetoNBDModel().fit(x, t_x, T).result_
    ci = fit.conf_int()
    for name, value in zip(ParetoNBDFit.names, truth, strict=True):
        assert ci.loc[name, "lower"] < value < ci.loc[name, "upper"], (name, ci.loc[name].to_dict())


# ---------------------------------------------------------------------------
# MBG/NBD
# ---------------------------------------------------------------------------


def mbg_lik_int(r, alpha, a, b, x, t_x, T) -> float:
    """MBG/NBD likelihood: E over lam ~ Gamma(r, alpha), p ~ Beta(a, b) of
    ``lam^x (1-p)^x [(1-p) exp(-lam T) + p exp(-lam t_x)]``, the p-integral by quadrature."""
    def over_p(fun):
        val, _ = integrate.quad(lambda p: fun(p) * stats.beta.pdf(p, a, b), 0, 1, epsabs=0, epsrel=1e-11, limit=200)
        return val

    alive = over_p(lambda p: (1 - p) ** (x + 1)) * _gamma_moment(r, alpha, x, T)
    dead = over_p(lambda p: p * (1 - p) ** x) * _gamma_moment(r, alpha, x, t_x)
    return alive + dead


def test_mbg_matches_lifetimes_on_cdnow(mbg):
    # lifetimes 0.11.3 ModifiedBetaGeoFitter on the same 2,357 customers
    lifetimes = {"r": 0.5248, "alpha": 6.1830, "a": 0.8914, "b": 1.6140}
    for name, value in lifetimes.items():
        assert _close(getattr(mbg, name), value), (name, getattr(mbg, name), value)
    assert mbg.converged and mbg.identified
    assert _close(float(mbg.expected_purchases(39, 2, 30.43, 38.86)), 1.26267, 1e-3)
    assert _close(float(mbg.probability_alive(2, 30.43, 38.86)), 0.70613, 1e-3)


def test_mbg_loglik_against_numerical_integration(mbg, cdnow):
    p = (mbg.r, mbg.alpha, mbg.a, mbg.b)
    for x, t_x, T in POINTS:
        want = np.log(mbg_lik_int(*p, x, t_x, T))
        got = float(mbg.log_likelihood(x, t_x, T))
        assert abs(got - want) < 1e-8 * max(1.0, abs(want)), (x, t_x, T, got, want)
    rows = np.asarray(mbg.log_likelihood(cdnow["frequency"], cdnow["recency"], cdnow["T"]))
    assert abs(rows.sum() - mbg.loglik) < 1e-6 * abs(mbg.loglik)
    # the maximum: the likelihood written out here (Batislam et al. / lifetimes' closed form) has a zero
    # gradient at the fit and the same value
    xs, ts, Ts = (cdnow[c].to_numpy(float) for c in ("frequency", "recency", "T"))

    def ll(th):
        r, alpha, a, b = np.exp(th)
        return np.sum(special.gammaln(r + xs) - special.gammaln(r) + r * np.log(alpha)
                      + special.betaln(a, b + xs + 1) - special.betaln(a, b)
                      + np.log((alpha + Ts) ** -(r + xs) + a / (b + xs) * (alpha + ts) ** -(r + xs)))
    th = np.log([mbg.r, mbg.alpha, mbg.a, mbg.b])
    assert abs(ll(th) - mbg.loglik) < 1e-6 * abs(mbg.loglik)
    grad = optimize.approx_fprime(th, ll, 1e-6)
    assert np.max(np.abs(grad)) < 1e-2, grad


def test_mbg_predictions_by_integration(mbg):
    r, alpha, a, b = (mbg.r, mbg.alpha, mbg.a, mbg.b)
    t = 39.0

    def over_p(fun):
        return integrate.quad(lambda p_: fun(p_) * stats.beta.pdf(p_, a, b), 0, 1, epsabs=0, epsrel=1e-11,
                              limit=200)[0]

    for x, t_x, T in POINTS:
        lik = mbg_lik_int(r, alpha, a, b, x, t_x, T)
        # alive at T: (1-p)^(x+1) lam^x exp(-lam T); then E[purchases in t | lam, p] = (1 - exp(-lam p t)) / p,
        # whose lam-expectation is a difference of gamma moments
        expected = over_p(lambda p_, x=x, T=T: (1 - p_) ** (x + 1) / p_ * (
            _gamma_moment(r, alpha, x, T) - _gamma_moment(r, alpha, x, T + p_ * t))) / lik
        assert abs(float(mbg.expected_purchases(t, x, t_x, T)) - expected) < 1e-7 * max(1, expected), x
        alive = over_p(lambda p_, x=x: (1 - p_) ** (x + 1)) * _gamma_moment(r, alpha, x, T) / lik
        assert abs(float(mbg.probability_alive(x, t_x, T)) - alive) < 1e-9, x
    # new customer: E over lam, p of (1-p) (1 - exp(-lam p t)) / p (drop-out possible at time 0)
    want = over_p(lambda p_: (1 - p_) / p_ * (1 - (alpha / (alpha + p_ * t)) ** r))
    assert abs(float(mbg.expected_purchases_new(t)) - want) < 1e-7


def test_mbg_analytic_gradient_matches_finite_differences(cdnow):
    from workbench.buytil import _MBGNBDLikelihood

    s = cdnow.iloc[:500]
    nll = _MBGNBDLikelihood(s["frequency"].to_numpy(float), s["recency"].to_numpy(), s["T"].to_numpy(),
                            np.ones(len(s)))
    th = np.log([0.4, 5.0, 0.7, 2.0])
    _, g = nll(th)
    fd = optimize.approx_fprime(th, lambda v: nll(v, grad=False)[0], 1e-7)
    assert np.allclose(g, fd, atol=1e-6)


# ---------------------------------------------------------------------------
# model comparison (Result)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(cdnow):
    from workbench.buytil import compare_models

    return compare_models(cdnow)


def test_compare_models_on_cdnow(comparison, cdnow, pnbd):
    tab = comparison.table
    n = len(cdnow)
    assert comparison.n == n == 2357
    # published calibration log-likelihoods (Fader, Hardie & Lee 2005): BG/NBD -9582.4, Pareto/NBD -9595.0
    assert abs(tab.loc["bgnbd", "loglik"] - (-9582.4)) < 0.1
    assert abs(tab.loc["pareto_nbd", "loglik"] - (-9595.0)) < 0.1
    assert np.allclose(tab["aic"], 8 - 2 * tab["loglik"]) and np.allclose(tab["bic"], 4 * np.log(n) - 2 * tab["loglik"])
    assert (tab["actual"] == cdnow["frequency_holdout"].sum()).all()
    # Pareto/NBD per-customer predictions, integrated independently, for a slice of customers
    p = (pnbd.r, pnbd.alpha, pnbd.s, pnbd.beta)
    some = cdnow.iloc[:40]
    want = [pnbd_expected_tau(*p, x, t_x, T, 39.0) for x, t_x, T in some[["frequency", "recency", "T"]].itertuples(index=False)]
    got = np.asarray(pnbd.expected_purchases(39.0, some["frequency"], some["recency"], some["T"]))
    assert np.allclose(got, want, rtol=1e-7)
    # the by-frequency table against a plain groupby
    grp = np.minimum(cdnow["frequency"], 7)
    plain = cdnow.groupby(grp)["frequency_holdout"].agg(["size", "mean"])
    assert comparison.by_frequency["n"].tolist() == plain["size"].tolist()
    assert np.allclose(comparison.by_frequency["actual"], plain["mean"])
    assert comparison.best == tab["mae"].idxmin() and comparison.runner_up != comparison.best
    lo, hi = comparison.mae_diff_ci
    assert lo < comparison.mae_diff < hi and comparison.mae_diff <= 0  # best minus runner-up
    assert comparison.clearly_best == (hi < 0)
    assert comparison.mae_diff == pytest.approx(tab.loc[comparison.best, "mae"] - tab.loc[comparison.runner_up, "mae"])


def test_comparison_presents_itself_in_both_languages(comparison):
    import re

    for lang in ("en", "zh"):
        fs = comparison.findings(lang)
        assert [f.key for f in fs] == ["purchase_model_best", "purchase_model_aic"]
        assert all(f.n == 2357 for f in fs) and not any(f.headline for f in fs)  # model names: never a headline
        assert "2,357" in fs[0].text
        tables = comparison.tables(lang)
        assert [tb.appendix for tb in tables] == [False, True, True, True]
        assert len(comparison.figures(lang)) == 1
        if lang == "zh":
            text = " ".join(f.text for f in fs) + " ".join(" ".join(map(str, tb.frame.columns)) for tb in tables)
            assert not re.findall(r"[A-Za-z]{2,}", text)
    m = comparison.metrics()
    assert set(m["purchase_model_comparison"]) == {"bgnbd", "pareto_nbd", "mbgnbd"}
    assert m["purchase_model_best"] == comparison.best and m["purchase_model_n"] == 2357
    assert "Pareto/NBD" in comparison.summary("en") or "BG/NBD" in comparison.summary("en")


def test_compare_models_rejects_missing_columns(cdnow):
    from workbench.buytil import compare_models

    with pytest.raises(ValueError, match="frequency_holdout"):
        compare_models(cdnow.drop(columns="frequency_holdout"))


@pytest.mark.parametrize("params", [(0.5, 1000.0, 0.5, 0.01), (0.01, 10.0, 5.0, 0.01), (0.5, 0.01, 50.0, 10.0)])
def test_pareto_nbd_extreme_parameters_stay_finite_and_correct(params):
    # alpha / beta far apart with heavy buyers: scipy's 2F1 returns inf there (c large, z near 1)
    fit = ParetoNBDFit(*params, se={}, loglik=0.0, n=1, converged=True)
    for x, t_x, T in [(500, 0.5, 39.0), (100, 2.0, 30.0), (2000, 0.0, 52.0)]:
        got = float(fit.log_likelihood(x, t_x, T))
        want = pnbd_loglik_tau(*params, x, t_x, T)
        assert np.isfinite(got)
        assert abs(got - want) < 1e-7 * max(1.0, abs(want)), (params, x, got, want)


# ---------------------------------------------------------------------------
# notebook 04 section: purchase_models on the sample
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_section(sample_dir):
    from workbench.buytil import purchase_models
    from workbench.engine import open_dataset

    ds = open_dataset(sample_dir)
    tx = pd.read_parquet(sample_dir / "transactions.parquet")
    end = pd.Timestamp(tx["date"].max()).date()
    yield purchase_models(ds, end, holdout_days=365), tx, end, ds
    ds.close()


def test_purchase_models_section_on_the_sample(sample_section):
    res, tx, end, _ = sample_section
    m = res.metrics()["purchase_models"]
    assert set(m["models"]) == {"bgnbd", "pareto_nbd", "mbgnbd"} and m["best"] in m["models"]
    # the actual holdout purchases and the cumulative repeat purchases, recounted with plain pandas
    # (a purchase = a distinct (customer, day, order) with a positive amount)
    tx = tx[tx["amount"] > 0].assign(d=pd.to_datetime(tx["date"]).dt.normalize())
    units = tx[["customer_id", "d", "order_id"]].drop_duplicates()
    cal_end = pd.Timestamp(end) - pd.Timedelta(days=365)
    first = units.groupby("customer_id")["d"].transform("min")
    units = units[(first <= cal_end) & (units["d"] <= pd.Timestamp(end))]
    hold = int((units["d"] > cal_end).sum())
    assert m["models"]["bgnbd"]["actual"] == hold
    repeat_total = len(units) - units["customer_id"].nunique()
    assert int(res.cumulative["actual"].iloc[-1]) == repeat_total
    cal_units = units[units["d"] <= cal_end]
    assert m["repeat_buyers"] == int((cal_units.groupby("customer_id")["d"].size() > 1).sum())
    # diagnostics: P(alive) in [0, 1], expected purchases rise with frequency for recent buyers
    assert ((res.alive.to_numpy() >= 0) & (res.alive.to_numpy() <= 1 + 1e-12)).all()
    last = res.expected.iloc[-1]
    assert last.iloc[-1] > last.iloc[1]
    for lang in ("en", "zh"):
        assert res.findings(lang) and res.tables(lang)
        figs = res.figures(lang)
        assert sum(getattr(f, "appendix", False) for f in figs) == 3


def test_purchase_models_says_why_when_the_window_is_too_short(sample_section):
    from workbench.buytil import purchase_models
    from workbench.results import Skipped

    _, tx, _, ds = sample_section
    start = pd.Timestamp(tx["date"].min()).date()
    res = purchase_models(ds, start + pd.Timedelta(days=120), holdout_days=30)
    assert isinstance(res, Skipped)
    en, zh = res.cause.reason("en"), res.cause.reason("zh")
    assert "weeks" in en and "26" in en and "周" in zh


def test_purchase_models_skip_without_a_transactions_table(tmp_path):
    """A complaints-only export (CFPB shape): the section says why instead of failing the notebook."""
    from workbench.buytil import purchase_models
    from workbench.engine import dataset_from_frames
    from workbench.results import Skipped

    complaints = pd.DataFrame({"complaint_id": ["c1", "c2"], "opened_at": ["2026-01-03 10:00", "2026-02-03 11:00"],
                               "category": ["delivery", "billing"]})
    ds = dataset_from_frames({"complaints": complaints}, tmp_path)
    r = purchase_models(ds, "2026-10-31")
    assert isinstance(r, Skipped) and "transactions" in r.reason("en").lower()


def test_large_fits_finish_by_newton_steps_at_the_maximum(monkeypatch):
    """Above WARM_START_ROWS distinct triples a BG/NBD fit starts from a draw's Newton fit and then takes
    Newton steps with the closed-form Hessian (no L-BFGS-B run): the result is the maximum of the BG/NBD
    likelihood written out here from Fader, Hardie & Lee (2005, eq. 6) and maximised by Nelder-Mead."""
    from workbench import clv

    rng = np.random.default_rng(8)
    n = 60_000
    lam, p = rng.gamma(0.25, 1 / 4.0, n), rng.beta(0.8, 2.5, n)
    T = rng.integers(1, 365, n) / 7.0
    arrivals = rng.poisson(lam * T)
    x = np.minimum(arrivals, rng.geometric(p))
    frac = np.where(x > 0, rng.beta(np.maximum(x, 1), np.maximum(arrivals - x, 0) + 1), 0.0)
    t_x = np.floor(frac * T * 7) / 7
    used = []
    real = clv._newton
    monkeypatch.setattr(clv, "_newton", lambda *a, **k: used.append(real(*a, **k)) or used[-1])
    fit = clv.BetaGeoModel().fit(x, t_x, T).result_
    assert len(used) == 2 and used[-1] is not None  # draw, then full data: no fallback to L-BFGS-B

    def nll(th):
        r, al, a, b = np.exp(th)
        ll = (special.betaln(a, b + x) - special.betaln(a, b) + special.gammaln(r + x) - special.gammaln(r)
              + r * np.log(al))
        one = (al + T) ** -(r + x)
        two = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * (al + t_x) ** -(r + x), 0.0)
        return -np.sum(ll + np.log(one + two))

    ref = optimize.minimize(nll, np.log([0.3, 4.0, 1.0, 2.0]), method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 20_000, "maxfev": 20_000})
    assert [fit.r, fit.alpha, fit.a, fit.b] == pytest.approx(np.exp(ref.x).tolist(), rel=1e-4)
    assert fit.loglik == pytest.approx(-ref.fun, abs=1e-3)
