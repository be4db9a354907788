""""Buy till you die" purchase models beyond BG/NBD: Pareto/NBD and MBG/NBD, and a model comparison.

* :class:`ParetoNBDModel` fits the Pareto/NBD model (Schmittlein, Morrison & Colombo 1987,
  *Management Science* 33(1)) by maximum likelihood, with the likelihood of Fader & Hardie's note
  "A Note on Deriving the Pareto/NBD Model and Related Expressions" (2005);
* :class:`ModifiedBetaGeoModel` fits the MBG/NBD model (Batislam, Denizel & Filiztekin 2007,
  *IJRM* 24(3)) in the parametrisation of ``lifetimes``' ``ModifiedBetaGeoFitter``;
* :func:`compare_models` fits BG/NBD, Pareto/NBD and MBG/NBD on a calibration period and scores
  them on the holdout period (:class:`PurchaseModelComparison`, a :class:`~workbench.results.Result`).

Both models follow :class:`workbench.clv.BetaGeoModel`: ``fit(frequency, recency, T, weights=None)``
on the per-customer summary of :func:`workbench.clv.rfm_summary` (identical rows are grouped, so
fitting on compressed ``(x, t_x, T)`` triples with ``weights`` gives the same likelihood), log-scale
parameters optimised by L-BFGS-B, standard errors from the observed information, and a frozen fit
object with predictions (expected purchases in the next ``t``, P(alive)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import special

from workbench.clv import (
    BetaGeoModel,
    _bgnbd_growth,
    _check_rfm,
    _check_weights,
    _dot,
    _fit_from,
    _format_table,
    _group_rows,
    _identification_issues,
    _index,
    _Memo,
    _numerical_hessian,
    _standard_errors,
    _warm_start,
    _wrap,
)
from workbench.results import Finding, Result, Table

__all__ = [
    "ParetoNBDFit",
    "ParetoNBDModel",
    "ModifiedBetaGeoFit",
    "ModifiedBetaGeoModel",
    "MODELS",
    "PurchaseModelComparison",
    "compare_models",
]

_BOUND = 20.0  # |log parameter| bound of the optimiser (as in workbench.clv)
# Pareto/NBD: when the dropout rate hardly varies between customers the likelihood rises forever along
# s, beta -> infinity (s/beta fixed); s is capped at 100 (the dropout rate's coefficient of variation
# 10%, near enough to homogeneous) and a fit that ends there is reported as not converged.
_PNBD_UPPER = np.array([_BOUND, _BOUND, np.log(100.0), _BOUND])


def _check_t(t: Any, size: int) -> np.ndarray:
    t_arr = np.asarray(t, dtype=float)
    if np.any(t_arr < 0) or not np.all(np.isfinite(t_arr)):
        raise ValueError("t must be finite and non-negative")
    if t_arr.ndim > 0:
        t_arr = t_arr.reshape(-1)
        if t_arr.size not in (1, size):
            raise ValueError(f"t has length {t_arr.size}, expected 1 or {size}")
    return t_arr


def _finish(out: np.ndarray, like: Any, name: str) -> Any:
    if np.ndim(like) == 0:
        out = np.asarray(out).reshape(())
    return _wrap(np.asarray(out), like, name)


# ---------------------------------------------------------------------------
# Pareto/NBD
# ---------------------------------------------------------------------------


_TINY = 1e-300


def _cf_hyp2f1_1(b: np.ndarray, c: np.ndarray, z: np.ndarray, tol: float = 1e-15,
                 max_iter: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """``2F1(1, b; c; z)`` by Gauss's continued fraction (modified Lentz), and a converged mask.

    The fraction is the one of the incomplete beta function (``B_z(p, q) = z^p (1-z)^q / p *
    2F1(p+q, 1; p+1; z)`` with ``p = c-1``, ``q = b-c+1``), valid for any real ``q``. It needs
    about ``1/sqrt(1-z)`` steps, so it is only used for ``1 - z >= 1e-6``; the elements still
    running are advanced together (vectorised) and dropped as they converge.
    """
    p = c - 1.0
    q = b - c + 1.0
    cc = np.ones(p.size)
    d = 1.0 - (p + q) * z / (p + 1.0)
    d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    ok = np.zeros(p.size, dtype=bool)
    act = np.arange(p.size)
    for m in range(1, max_iter + 1):
        pa, qa, za = p[act], q[act], z[act]
        m2 = 2.0 * m
        prod = np.ones(act.size)
        dd, ci = d[act], cc[act]
        for aa in (m * (qa - m) * za / ((pa - 1.0 + m2) * (pa + m2)),
                   -(pa + m) * (pa + qa + m) * za / ((pa + m2) * (pa + 1.0 + m2))):
            dd = 1.0 + aa * dd
            dd = 1.0 / np.where(np.abs(dd) < _TINY, _TINY, dd)
            ci = 1.0 + aa / ci
            ci = np.where(np.abs(ci) < _TINY, _TINY, ci)
            prod *= dd * ci
        d[act], cc[act] = dd, ci
        h[act] *= prod
        done = np.abs(prod - 1.0) < tol
        ok[act[done]] = True
        act = act[~done]
        if act.size == 0:
            break
    return h, ok


def _conn_log_hyp2f1_1(b: np.ndarray, c: np.ndarray, z: np.ndarray, max_terms: int = 2000) -> np.ndarray:
    """``log 2F1(1, b; c; z)`` for ``z`` near 1 by the ``1 - z`` connection formula (A&S 15.3.6).

    With ``d = c - 1 - b`` (not an integer) and ``e = 1 - z``::

        2F1(1, b; c; z) = (c-1)/d 2F1(1, b; 1-d; e) + Gamma(c) Gamma(-d) / Gamma(b) e^d z^(1-c)

    (the second function of 15.3.6, ``2F1(c-1, d+1; d+1; e)``, is ``z^(1-c)``). The series in
    ``e`` converges fast for ``e <= 1e-4`` and ``b e <= 2``, where it is used.
    """
    d = c - 1.0 - b
    eps = 1.0 - z
    term = np.ones_like(b)
    s = term.copy()
    act = np.arange(b.size)
    for k in range(max_terms):
        term[act] *= (b[act] + k) / (1.0 - d[act] + k) * eps[act]
        s[act] += term[act]
        act = act[(np.abs(term[act]) > 1e-17 * np.abs(s[act])) | (k < 2)]
        if act.size == 0:
            break
    first = (c - 1.0) / d * s
    log2 = (special.gammaln(c) - special.gammaln(b) + special.gammaln(-d) + d * np.log(eps)
            + (1.0 - c) * np.log1p(-eps))
    with np.errstate(all="ignore"):
        return np.log(first + special.gammasgn(-d) * np.exp(log2))


def _series_log_hyp2f1_1(b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``log sum_k (b)_k / (c)_k z^k`` for ``0 <= z <= 0.5`` (``c > b > 0``: terms positive, ratio < z)."""
    term = np.ones_like(b)
    total = term.copy()
    for k in range(60):
        term *= (b + k) / (c + k) * z
        total += term
        if not np.any(term > 1e-17 * total):
            break
    return np.log(total)


def _log_hyp2f1_1(b: Any, c: Any, z: Any) -> np.ndarray:
    """``log 2F1(1, b; c; z)`` for ``0 <= z < 1``, ``c > 1``, ``b > 0``, closed forms only.

    * ``z <= 0.5``: the power series (positive terms, ratio below ``z``: at most 56 terms; the same
      series as ``scipy.special.hyp2f1`` there, vectorised, about 5x faster);
    * ``1 - z <= 1e-4`` with ``b (1-z) <= 2``: the ``1 - z`` connection formula
      (:func:`_conn_log_hyp2f1_1`); when ``d = c-1-b`` is within ``1e-3`` of an integer (its
      poles; e.g. ``r = 1`` exactly) and ``1 - z < 1e-6``, the formula at ``d -/+ delta``,
      averaged and Richardson-extrapolated (error ``O(delta^4)``, ``delta = 1e-4``);
    * otherwise Gauss's continued fraction (:func:`_cf_hyp2f1_1`);
    * scipy's value is the last resort where nothing above converged (far outside any
      plausible parameters: rates beyond ``e^14`` with ``1 - z < 1e-6``).

    Checked against 150-digit ``mpmath`` and the exact positive power series on random
    arguments to ``1e-12`` relative (``tests/test_buytil.py`` checks the likelihood by quadrature).
    """
    b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (b, c, z)))
    shape = b.shape
    b, c, z = b.ravel(), c.ravel(), z.ravel()
    out = np.full(b.size, np.nan)
    eps = 1.0 - z
    d = c - 1.0 - b
    near_int = np.abs(d - np.round(d)) < 1e-3
    small = z <= 0.5
    out[small] = _series_log_hyp2f1_1(b[small], c[small], z[small])
    conn = ~small & (eps <= 1e-4) & (b * eps <= 2.0) & ~near_int
    out[conn] = _conn_log_hyp2f1_1(b[conn], c[conn], z[conn])
    pole = ~small & (eps < 1e-6) & (b * eps <= 2.0) & near_int
    if pole.any():
        bp, cp, zp = b[pole], c[pole], z[pole]

        def avg(delta: float) -> np.ndarray:
            return 0.5 * (_conn_log_hyp2f1_1(bp, cp - delta, zp) + _conn_log_hyp2f1_1(bp, cp + delta, zp))

        out[pole] = (4.0 * avg(1e-4) - avg(2e-4)) / 3.0
    rest = np.flatnonzero(~np.isfinite(out))
    if rest.size:
        h, ok = _cf_hyp2f1_1(b[rest], c[rest], z[rest])
        with np.errstate(all="ignore"):
            out[rest[ok]] = np.log(h[ok])
            bad = rest[~ok]
            if bad.size:
                out[bad] = np.log(special.hyp2f1(1.0, b[bad], c[bad], z[bad]))
    return out.reshape(shape)


def _pnbd_log_sF(
    r: float, alpha: float, s: float, beta: float, x: np.ndarray, tau: np.ndarray
) -> np.ndarray:
    """``log(s * F(x, tau))`` with ``F = int_tau^inf (alpha+u)^-(r+x) (beta+u)^-(s+1) du``.

    ``s * (F(x, t_x) - F(x, T))`` is the "died between t_x and T" part of the Pareto/NBD
    likelihood (Fader & Hardie's ``s/(r+s+x) A_0``). With ``a = r+s+x``, the note's two cases are

    * ``alpha >= beta``: ``F = (alpha+tau)^-a / a * 2F1(a, s+1; a+1; (alpha-beta)/(alpha+tau))``;
    * ``alpha < beta``: ``F = (beta+tau)^-a / a * 2F1(a, r+x; a+1; (beta-alpha)/(beta+tau))``.

    Both are evaluated after an Euler (first case) or Pfaff+Pfaff (second case) transformation as
    ``2F1(1, b; a+1; z)`` with ``z`` in ``[0, 1)`` and the large powers taken in logs:

    * ``alpha >= beta``: ``a F = (alpha+tau)^-(r+x) (beta+tau)^-s 2F1(1, r+x; a+1; (alpha-beta)/(alpha+tau))``;
    * ``alpha < beta``: ``a F = (alpha+tau)^-(r+x-1) (beta+tau)^-(s+1) 2F1(1, s+1; a+1; (beta-alpha)/(beta+tau))``.

    ``log 2F1(1, b; c; z)`` is :func:`_log_hyp2f1_1` (closed forms only, no numerical integration).
    """
    a = r + s + x
    log_at = np.log(alpha + tau)
    log_bt = np.log(beta + tau)
    if alpha >= beta:
        log_h = _log_hyp2f1_1(r + x, a + 1.0, (alpha - beta) / (alpha + tau))
        log_af = -(r + x) * log_at - s * log_bt + log_h
    else:
        log_h = _log_hyp2f1_1(s + 1.0, a + 1.0, (beta - alpha) / (beta + tau))
        log_af = -(r + x - 1.0) * log_at - (s + 1.0) * log_bt + log_h
    return np.log(s) - np.log(a) + log_af


class _ParetoNBDLikelihood:
    """Weighted Pareto/NBD log-likelihood (Fader & Hardie 2005 note, eq. 19 with its A_0).

    ``L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ (alpha+T)^-(r+x) (beta+T)^-s
          + s (F(x, t_x) - F(x, T)) ]`` with ``F`` of :func:`_pnbd_log_sF`, combined in logs.
    The Gauss hypergeometric functions depend on ``(x, t_x)`` and ``(x, T)`` only, so they are
    evaluated once per distinct pair (far fewer than customers, or than distinct triples) and
    gathered. The gradient is analytic except for the derivative of 2F1 in its parameters (no
    closed form), a central difference on the distinct pairs.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> None:
        self.w = w
        self.n = float(w.sum())
        self.ux, self.ix = _index(x)
        self.wx = np.bincount(self.ix, weights=w, minlength=self.ux.size)
        # distinct (x, tau) pairs over tau in {t_x} and {T}
        px = np.concatenate([x, x])
        ptau = np.concatenate([t_x, T])
        (self.px, self.ptau), _ = _group_rows(px, ptau, weights=None)
        key = pd.MultiIndex.from_arrays([self.px, self.ptau])
        self.i_tx = key.get_indexer(pd.MultiIndex.from_arrays([x, t_x]))
        self.i_T = key.get_indexer(pd.MultiIndex.from_arrays([x, T]))
        self.uT, self.iT = _index(T)
        self.x = x
        self.T = T

    def rows(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-row log-likelihood and log P(alive) at log-parameters ``theta``."""
        r, alpha, s, beta = np.exp(theta)
        x = self.ux
        log_c = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        with np.errstate(divide="ignore"):
            sf = _pnbd_log_sF(r, alpha, s, beta, self.px, self.ptau)
        a1 = -(r + self.x) * np.log(alpha + self.uT)[self.iT] - s * np.log(beta + self.uT)[self.iT]
        a2 = sf[self.i_tx]
        a3 = sf[self.i_T]
        m = np.maximum(a1, a2)
        body = np.exp(a1 - m) + np.exp(a2 - m) - np.exp(a3 - m)
        log_body = m + np.log(body)
        return log_c[self.ix] + log_body, a1 - log_body

    def value(self, theta: np.ndarray) -> float:
        """``-loglik / n``."""
        return self(theta, grad=False)[0]

    def _pairs(self, theta: np.ndarray, grad: bool, step: float) -> tuple[np.ndarray, np.ndarray]:
        """``log(s F)`` on the distinct pairs and, with ``grad``, its central-difference gradient
        in the log-parameters (4 x pairs; only the pairs are re-evaluated, never the rows)."""
        with np.errstate(divide="ignore"):
            sf = _pnbd_log_sF(*np.exp(theta), self.px, self.ptau)
            dsf = np.empty((theta.size, sf.size))
            if grad:
                for j in range(theta.size):
                    e = np.zeros(theta.size)
                    e[j] = step
                    hi = _pnbd_log_sF(*np.exp(theta + e), self.px, self.ptau)
                    lo = _pnbd_log_sF(*np.exp(theta - e), self.px, self.ptau)
                    dsf[j] = (hi - lo) / (2 * step)
        return sf, dsf

    def __call__(self, theta: np.ndarray, grad: bool = True, step: float = 1e-6) -> tuple[float, np.ndarray]:
        """Return ``(-loglik / n, -gradient / n)`` at log-parameters ``theta``.

        The gradient is analytic in the per-row terms; the derivative of ``log(s F)`` in the
        parameters (no closed form for 2F1) is a central difference on the distinct pairs.
        """
        r, alpha, s, beta = np.exp(theta)
        ux, wx, w, n = self.ux, self.wx, self.w, self.n
        sf, dsf = self._pairs(theta, grad, step)
        log_aT = np.log(alpha + self.uT)
        log_bT = np.log(beta + self.uT)
        rx = r + self.x
        a1 = -rx * log_aT[self.iT] - s * log_bT[self.iT]
        a2 = sf[self.i_tx]
        a3 = sf[self.i_T]
        m = np.maximum(a1, a2)
        e1, e2, e3 = np.exp(a1 - m), np.exp(a2 - m), np.exp(a3 - m)
        body = e1 + e2 - e3
        ll = (
            _dot(wx, special.gammaln(r + ux))
            - n * (special.gammaln(r) - r * np.log(alpha) - s * np.log(beta))
            + _dot(w, m + np.log(body))
        )
        if not np.isfinite(ll):
            return np.inf, np.zeros(theta.size)
        if not grad:
            return -ll / n, np.empty(0)
        wb = w / body
        q1 = wb * e1
        q1_T = np.bincount(self.iT, weights=q1, minlength=self.uT.size)
        q1x_T = np.bincount(self.iT, weights=q1 * rx, minlength=self.uT.size)
        dr = _dot(wx, special.digamma(r + ux)) - n * special.digamma(r) + n * np.log(alpha) - _dot(q1_T, log_aT)
        dalpha = n * r / alpha - _dot(q1x_T, 1.0 / (alpha + self.uT))
        ds = n * np.log(beta) - _dot(q1_T, log_bT)
        dbeta = n * s / beta - s * _dot(q1_T, 1.0 / (beta + self.uT))
        g = np.array([dr * r, dalpha * alpha, ds * s, dbeta * beta])
        npairs = sf.size
        q_pairs = np.bincount(self.i_tx, weights=wb * e2, minlength=npairs)
        q_pairs -= np.bincount(self.i_T, weights=wb * e3, minlength=npairs)
        g += dsf @ q_pairs
        return -ll / n, -g / n


@dataclass(frozen=True)
class ParetoNBDFit:
    """Fitted Pareto/NBD parameters (Schmittlein, Morrison & Colombo 1987).

    Attributes
    ----------
    r, alpha : float
        Gamma heterogeneity of the purchase rate lambda (shape, rate in the model's time unit).
    s, beta : float
        Gamma heterogeneity of the dropout rate mu (shape, rate).
    se : dict
        Standard errors of ``r, alpha, s, beta`` (inverse observed information, delta method).
    loglik : float
        Maximised log-likelihood.
    n : int
        Number of customers (sum of weights).
    converged : bool
    """

    r: float
    alpha: float
    s: float
    beta: float
    se: dict[str, float] = field(repr=False)
    loglik: float
    n: int
    converged: bool

    names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    title: ClassVar[str] = "Pareto/NBD (Schmittlein, Morrison & Colombo 1987)"

    def __repr__(self) -> str:
        return (
            f"ParetoNBDFit(r={self.r:.4g}, alpha={self.alpha:.4g}, s={self.s:.4g}, "
            f"beta={self.beta:.4g}, loglik={self.loglik:.6g}, n={self.n}, converged={self.converged})"
        )

    @property
    def params(self) -> pd.Series:
        """Parameters as a Series indexed ``r, alpha, s, beta``."""
        return pd.Series({k: getattr(self, k) for k in self.names})

    def to_dict(self) -> dict[str, float]:
        """``{r, alpha, s, beta, loglik, n}``."""
        return {**{k: getattr(self, k) for k in self.names}, "loglik": self.loglik, "n": self.n}

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals on the log scale (so they stay positive): ``lower``, ``upper``."""
        return _conf_int(self, level)

    def identification_issues(self) -> tuple[str, ...]:
        """As :meth:`workbench.clv.BetaGeoFit.identification_issues`, with all four shapes/rates checked."""
        return _identification_issues(self, self.names, ("r", "s"))

    @property
    def identified(self) -> bool:
        return not self.identification_issues()

    def summary(self) -> str:
        """Plain-text parameter table with standard errors."""
        rows = [(k, getattr(self, k), self.se[k]) for k in self.names]
        return _format_table(
            self.title, rows, [f"loglik = {self.loglik:.6g}, n = {self.n}, converged = {self.converged}"]
        )

    # -- predictions --------------------------------------------------------

    def _theta(self) -> np.ndarray:
        return np.log([self.r, self.alpha, self.s, self.beta])

    def log_likelihood(self, frequency: Any, recency: Any, T: Any) -> Any:
        """Per-customer log-likelihood of ``(x, t_x, T)`` under the fitted parameters."""
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        ll, _ = _ParetoNBDLikelihood(x, t_x, T_, np.ones(x.size)).rows(self._theta())
        return _finish(ll, frequency, "log_likelihood")

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(customer still active at T | x, t_x, T) (Fader & Hardie 2005 note, eq. 22)."""
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        _, log_p = _ParetoNBDLikelihood(x, t_x, T_, np.ones(x.size)).rows(self._theta())
        return _finish(np.exp(np.minimum(log_p, 0.0)), frequency, "probability_alive")

    def _growth(self, t: np.ndarray, x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``(r+x)(beta+T)/((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]`` (limit at s = 1)."""
        span = np.log1p(t / (self.beta + T))
        k = self.s - 1.0
        part = span if abs(k) < 1e-10 else -np.expm1(-k * span) / k
        return (self.r + x) * (self.beta + T) / (self.alpha + T) * part

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """Conditional expected purchases in ``(T, T + t]`` (Fader & Hardie 2005 note, eq. 24).

        ``E[Y(t) | x, t_x, T] = (r+x)(beta+T)/((alpha+T)(s-1))
        [1 - ((beta+T)/(beta+T+t))^(s-1)] * P(alive | x, t_x, T)``.
        """
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        t_arr = _check_t(t, x.size)
        out = self._growth(t_arr, x, T_) * np.asarray(self.probability_alive(x, t_x, T_))
        return _finish(out, frequency, "expected_purchases")

    def expected_purchases_new(self, t: Any) -> Any:
        """Expected purchases in ``(0, t]`` of a customer just acquired: ``r beta/(alpha (s-1)) [1 - (beta/(beta+t))^(s-1)]``."""
        t_arr = _check_t(t, 1 if np.ndim(t) == 0 else np.size(t))
        out = self._growth(t_arr, np.zeros(1) if t_arr.ndim else 0.0, 0.0)
        return _wrap(np.asarray(out), t, "expected_purchases_new")


def _conf_int(fit: Any, level: float) -> pd.DataFrame:
    from scipy import stats

    zq = float(stats.norm.ppf(0.5 + level / 2))
    est = fit.params
    se = pd.Series(fit.se)[est.index]
    half = zq * se / est  # SE of log(param) by the delta method
    return pd.DataFrame({"estimate": est, "se": se, "lower": est * np.exp(-half), "upper": est * np.exp(half)})


def _fit_loglik(nll: Any, x0: np.ndarray, tol: float, max_iter: int,
                chol: np.ndarray | None = None, upper: np.ndarray | None = None) -> tuple[np.ndarray, float, bool]:
    hi = np.full(x0.size, _BOUND) if upper is None else upper
    res = _fit_from(nll, x0, chol, tol, max_iter, hi)
    grad_ok = bool(np.max(np.abs(nll(res.x)[1])) < 1e-5)
    converged = bool(res.success or grad_ok) and bool(np.all(res.x > -_BOUND + 0.5) and np.all(res.x < hi - 0.5))
    return res.x, float(res.fun), converged


class ParetoNBDModel:
    """Pareto/NBD purchase model fitted by maximum likelihood.

    Parameters
    ----------
    tol : float, default 1e-8
        Gradient tolerance of L-BFGS-B (on the mean log-likelihood per customer).
    max_iter : int, default 1000

    Attributes
    ----------
    result_ : ParetoNBDFit
        Set by :meth:`fit`.

    Examples
    --------
    >>> model = ParetoNBDModel().fit(df["frequency"], df["recency"], df["T"])  # doctest: +SKIP
    >>> print(model.result_.summary())  # doctest: +SKIP
    """

    def __init__(self, tol: float = 1e-8, max_iter: int = 1000) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def __repr__(self) -> str:
        return f"ParetoNBDModel(tol={self.tol}, max_iter={self.max_iter})"

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> ParetoNBDModel:
        """Fit r, alpha, s, beta.

        Parameters
        ----------
        frequency, recency, T : array-like
            Repeat purchases, time of the last purchase and age of each customer
            (see :func:`workbench.clv.rfm_summary`).
        weights : array-like, optional
            Number of customers each row stands for; identical rows are grouped internally.

        Returns
        -------
        self
        """
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        w = _check_weights(weights, x.size)
        if np.all(x == 0):
            raise ValueError("all frequencies are zero: the Pareto/NBD purchase rate is not identified")
        (x, t_x, T_), w = _group_rows(x, t_x, T_, weights=w)
        nll = _Memo(_ParetoNBDLikelihood(x, t_x, T_, w))
        n = nll.n
        scale = max(float(np.average(T_, weights=w)), 1e-3)
        theta0 = np.log([1.0, scale, 1.0, scale])
        theta0, chol = _warm_start(_ParetoNBDLikelihood, x, t_x, T_, w, theta0, self.max_iter)
        theta, fun, converged = _fit_loglik(nll, theta0, self.tol, self.max_iter, chol, _PNBD_UPPER)
        g0 = nll(theta)[1] * n
        hess = _numerical_hessian(lambda th: nll(th)[1] * n, theta, g0=g0)
        params = np.exp(theta)
        se = _standard_errors(hess, params)
        self.result_ = ParetoNBDFit(
            *map(float, params),
            se=dict(zip(ParetoNBDFit.names, map(float, se), strict=True)),
            loglik=-fun * n,
            n=int(round(n)),
            converged=converged,
        )
        return self

    def _fitted(self) -> ParetoNBDFit:
        if not hasattr(self, "result_"):
            raise ValueError("ParetoNBDModel is not fitted yet: call fit() first")
        return self.result_

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """See :meth:`ParetoNBDFit.expected_purchases`."""
        return self._fitted().expected_purchases(t, frequency, recency, T)

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """See :meth:`ParetoNBDFit.probability_alive`."""
        return self._fitted().probability_alive(frequency, recency, T)


# ---------------------------------------------------------------------------
# MBG/NBD
# ---------------------------------------------------------------------------


class _MBGNBDLikelihood:
    """Weighted MBG/NBD log-likelihood and analytic gradient in log-parameters.

    ``L = B(a, b+x+1)/B(a, b) * Gamma(r+x) alpha^r / Gamma(r)
          * [ (alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x) ]`` for every ``x >= 0`` (a customer may
    drop out right after the first purchase; Batislam et al. 2007, as in ``lifetimes``), the bracket
    by log-sum-exp, special functions on the distinct ``x``.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> None:
        self.w = w
        self.n = float(w.sum())
        self.ux, self.ix = _index(x)
        self.uT, self.iT = _index(T)
        self.ut, self.it = _index(t_x)
        self.wx = np.bincount(self.ix, weights=w, minlength=self.ux.size)

    def _parts(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        r, alpha, a, b = np.exp(theta)
        rx = (r + self.ux)[self.ix]
        a3 = -rx * np.log(alpha + self.uT)[self.iT]
        a4 = (np.log(a) - np.log(b + self.ux))[self.ix] - rx * np.log(alpha + self.ut)[self.it]
        return a3, a4

    def rows(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-row log-likelihood and log P(alive)."""
        r, alpha, a, b = np.exp(theta)
        a3, a4 = self._parts(theta)
        u = self.ux
        log_c = special.gammaln(r + u) - special.gammaln(r) + r * np.log(alpha)
        log_c += special.betaln(a, b + u + 1.0) - special.betaln(a, b)
        return log_c[self.ix] + np.logaddexp(a3, a4), -np.logaddexp(0.0, a4 - a3)

    def __call__(self, theta: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray]:
        """Return ``(-loglik / n, -gradient / n)`` at log-parameters ``theta``."""
        r, alpha, a, b = np.exp(theta)
        ux, wx, w = self.ux, self.wx, self.w
        a3, a4 = self._parts(theta)
        m = np.maximum(a3, a4)
        e3, e4 = np.exp(a3 - m), np.exp(a4 - m)
        s = e3 + e4
        ll = _dot(w, m + np.log(s))
        ll += _dot(
            wx,
            special.gammaln(r + ux) - special.gammaln(r)
            + special.betaln(a, b + ux + 1.0) - special.betaln(a, b),
        )
        ll += self.n * r * np.log(alpha)
        if not grad:
            return -ll / self.n, np.empty(0)
        wp3, wp4 = w * e3 / s, w * e4 / s
        log_aT = np.log(alpha + self.uT)[self.iT]
        log_at = np.log(alpha + self.ut)[self.it]
        rx = (r + ux)[self.ix]
        dr = _dot(wx, special.digamma(r + ux) - special.digamma(r)) + self.n * np.log(alpha)
        dr -= _dot(wp3, log_aT) + _dot(wp4, log_at)
        dalpha = self.n * r / alpha - _dot(wp3 * rx, (1.0 / (alpha + self.uT))[self.iT])
        dalpha -= _dot(wp4 * rx, (1.0 / (alpha + self.ut))[self.it])
        sum_p4_x = np.bincount(self.ix, weights=wp4, minlength=ux.size)
        dig_ab = special.digamma(a + b)
        dig_abx = special.digamma(a + b + ux + 1.0)
        da = _dot(wx, dig_ab - dig_abx) + sum_p4_x.sum() / a
        db = _dot(wx, special.digamma(b + ux + 1.0) - dig_abx - special.digamma(b) + dig_ab)
        db -= _dot(sum_p4_x, 1.0 / (b + ux))
        g = np.array([dr * r, dalpha * alpha, da * a, db * b])
        return -ll / self.n, -g / self.n


@dataclass(frozen=True)
class ModifiedBetaGeoFit:
    """Fitted MBG/NBD parameters (Batislam, Denizel & Filiztekin 2007; ``lifetimes`` parametrisation).

    Attributes
    ----------
    r, alpha : float
        Gamma heterogeneity of the purchase rate.
    a, b : float
        Beta heterogeneity of the dropout probability (applied at the first purchase too).
    se : dict
    loglik : float
    n : int
    converged : bool
    """

    r: float
    alpha: float
    a: float
    b: float
    se: dict[str, float] = field(repr=False)
    loglik: float
    n: int
    converged: bool

    names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    title: ClassVar[str] = "MBG/NBD (Batislam, Denizel & Filiztekin 2007)"

    def __repr__(self) -> str:
        return (
            f"ModifiedBetaGeoFit(r={self.r:.4g}, alpha={self.alpha:.4g}, a={self.a:.4g}, "
            f"b={self.b:.4g}, loglik={self.loglik:.6g}, n={self.n}, converged={self.converged})"
        )

    @property
    def params(self) -> pd.Series:
        return pd.Series({k: getattr(self, k) for k in self.names})

    def to_dict(self) -> dict[str, float]:
        return {**{k: getattr(self, k) for k in self.names}, "loglik": self.loglik, "n": self.n}

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals on the log scale: ``estimate, se, lower, upper``."""
        return _conf_int(self, level)

    def identification_issues(self) -> tuple[str, ...]:
        return _identification_issues(self, self.names, ("a", "b"))

    @property
    def identified(self) -> bool:
        return not self.identification_issues()

    def summary(self) -> str:
        rows = [(k, getattr(self, k), self.se[k]) for k in self.names]
        return _format_table(
            self.title, rows, [f"loglik = {self.loglik:.6g}, n = {self.n}, converged = {self.converged}"]
        )

    def _theta(self) -> np.ndarray:
        return np.log([self.r, self.alpha, self.a, self.b])

    def log_likelihood(self, frequency: Any, recency: Any, T: Any) -> Any:
        """Per-customer log-likelihood."""
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        ll, _ = _MBGNBDLikelihood(x, t_x, T_, np.ones(x.size)).rows(self._theta())
        return _finish(ll, frequency, "log_likelihood")

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """``1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))`` (below 1 even without repeat purchases)."""
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        _, log_p = _MBGNBDLikelihood(x, t_x, T_, np.ones(x.size)).rows(self._theta())
        return _finish(np.exp(log_p), frequency, "probability_alive")

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """Conditional expected purchases in ``(T, T + t]`` (as ``lifetimes``)::

            (a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; z)] * P(alive)

        with ``z = t/(alpha+T+t)``, evaluated through the Euler transformation of
        :func:`workbench.clv._bgnbd_growth` (the BG/NBD expression with ``b + 1`` for ``b``).
        """
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        t_arr = _check_t(t, x.size)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            growth = _bgnbd_growth(self.r, self.alpha, self.a, self.b + 1.0, t_arr, x, T_)
        out = growth * np.asarray(self.probability_alive(x, t_x, T_))
        return _finish(out, frequency, "expected_purchases")

    def expected_purchases_new(self, t: Any) -> Any:
        """Expected purchases in ``(0, t]`` of a new customer: ``b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]``.

        (Survive the first purchase with probability ``b/(a+b)``, then BG/NBD with ``b + 1``.)
        """
        t_arr = _check_t(t, 1 if np.ndim(t) == 0 else np.size(t))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            growth = _bgnbd_growth(self.r, self.alpha, self.a, self.b + 1.0, t_arr, 0.0, 0.0)
        out = growth * self.b / (self.a + self.b)
        return _wrap(np.asarray(out), t, "expected_purchases_new")


class ModifiedBetaGeoModel:
    """MBG/NBD purchase model fitted by maximum likelihood (analytic gradient).

    Parameters
    ----------
    tol : float, default 1e-10
    max_iter : int, default 1000

    Attributes
    ----------
    result_ : ModifiedBetaGeoFit
    """

    def __init__(self, tol: float = 1e-10, max_iter: int = 1000) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def __repr__(self) -> str:
        return f"ModifiedBetaGeoModel(tol={self.tol}, max_iter={self.max_iter})"

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> ModifiedBetaGeoModel:
        """Fit r, alpha, a, b (arguments as :meth:`ParetoNBDModel.fit`)."""
        x, t_x, T_ = _check_rfm(frequency, recency, T)
        w = _check_weights(weights, x.size)
        if np.all(x == 0):
            raise ValueError("all frequencies are zero: the MBG/NBD purchase rate is not identified")
        (x, t_x, T_), w = _group_rows(x, t_x, T_, weights=w)
        nll = _Memo(_MBGNBDLikelihood(x, t_x, T_, w))
        n = nll.n
        x0 = np.log([1.0, max(float(np.average(T_, weights=w)), 1e-3), 1.0, 1.0])
        theta, fun, converged = _fit_loglik(nll, x0, self.tol, self.max_iter)
        hess = _numerical_hessian(lambda th: nll(th)[1] * n, theta)
        params = np.exp(theta)
        se = _standard_errors(hess, params)
        self.result_ = ModifiedBetaGeoFit(
            *map(float, params),
            se=dict(zip(ModifiedBetaGeoFit.names, map(float, se), strict=True)),
            loglik=-fun * n,
            n=int(round(n)),
            converged=converged,
        )
        return self

    def _fitted(self) -> ModifiedBetaGeoFit:
        if not hasattr(self, "result_"):
            raise ValueError("ModifiedBetaGeoModel is not fitted yet: call fit() first")
        return self.result_

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        return self._fitted().expected_purchases(t, frequency, recency, T)

    def probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        return self._fitted().probability_alive(frequency, recency, T)


# ---------------------------------------------------------------------------
# Model comparison on a calibration / holdout split
# ---------------------------------------------------------------------------

#: The compared models, in table order: key → (model class, number of parameters).
MODELS: dict[str, tuple[type, int]] = {
    "bgnbd": (BetaGeoModel, 4),
    "pareto_nbd": (ParetoNBDModel, 4),
    "mbgnbd": (ModifiedBetaGeoModel, 4),
}


@dataclass(frozen=True, repr=False)
class PurchaseModelComparison(Result):
    """BG/NBD, Pareto/NBD and MBG/NBD fitted on a calibration period and scored on the holdout.

    Attributes
    ----------
    table : DataFrame
        One row per model (index ``bgnbd``, ``pareto_nbd``, ``mbgnbd``): ``loglik``, ``k``
        (parameters), ``aic``, ``bic`` (calibration), ``predicted`` and ``actual`` holdout purchases
        (summed over customers), ``mae`` and ``rmse`` per customer, ``converged``.
    by_frequency : DataFrame
        Mean holdout purchases per calibration-frequency group (``0 … k+``): ``n``, ``actual`` and
        one column per model.
    params : dict
        Per model, its parameter table (``estimate, se, lower, upper``, 95% Wald on the log scale).
    best : str
        Model with the smallest holdout mean absolute error per customer.
    runner_up : str
    mae_diff, mae_diff_ci : float, (float, float)
        Paired difference in per-customer absolute error, best minus runner-up, with its 95% interval
        (normal approximation over customers).
    n : int
        Customers (calibration buyers), the base of every number.
    duration : float
        Holdout length in ``time_unit``.
    time_unit : str
    """

    heading: ClassVar[str] = "buytil.h.comparison"

    table: pd.DataFrame
    by_frequency: pd.DataFrame
    params: dict[str, pd.DataFrame]
    best: str
    runner_up: str
    mae_diff: float
    mae_diff_ci: tuple[float, float]
    n: int
    duration: float
    time_unit: str

    @property
    def clearly_best(self) -> bool:
        """The best model's per-customer error is smaller than the runner-up's beyond noise."""
        return bool(self.mae_diff_ci[1] < 0)

    def _name(self, key: str, lang: str) -> str:
        from workbench.i18n import t

        return t(f"buytil.model.{key}", lang)

    def findings(self, lang: str = "en") -> list[Finding]:
        from workbench.i18n import fmt_int, fmt_num, t

        best = self.table.loc[self.best]
        unit = t(f"buytil.unit.{self.time_unit}", lang)
        text = t("buytil.finding.best", lang, model=self._name(self.best, lang),
                 predicted=fmt_int(round(best["predicted"]), lang), actual=fmt_int(round(best["actual"]), lang),
                 duration=fmt_num(self.duration, lang, 0), unit=unit, n=fmt_int(self.n, lang))
        margin = "buytil.finding.clearly" if self.clearly_best else "buytil.finding.close"
        text += ("" if lang == "zh" else " ") + t(margin, lang, other=self._name(self.runner_up, lang))
        how = t("buytil.how.best", lang, mae=fmt_num(best["mae"], lang, 3),
                diff=fmt_num(self.mae_diff, lang, 3), lo=fmt_num(self.mae_diff_ci[0], lang, 3),
                hi=fmt_num(self.mae_diff_ci[1], lang, 3), n=fmt_int(self.n, lang))
        aic_best = str(self.table["aic"].idxmin())
        delta = float(self.table["aic"].sort_values().iloc[1] - self.table["aic"].min())
        # an AIC difference below 2 is no real support for one model over the other (Burnham & Anderson)
        aic = t("buytil.finding.aic" if delta >= 2 else "buytil.finding.aic_tie", lang,
                model=self._name(aic_best, lang), delta=fmt_num(delta, lang, 1))
        return [
            Finding("purchase_model_best", text, value=self.best, interval=self.mae_diff_ci, null=0.0, n=self.n,
                    how=how),
            Finding("purchase_model_aic", aic, value=aic_best, n=self.n),
        ]

    def figures(self, lang: str = "en") -> list[Any]:
        import plotly.graph_objects as go

        from workbench.i18n import t

        bf = self.by_frequency
        fig = go.Figure()
        fig.add_bar(x=list(bf.index), y=bf["actual"], name=t("buytil.col.actual", lang))
        for key in self.table.index:
            fig.add_scatter(x=list(bf.index), y=bf[key], mode="lines+markers", name=self._name(key, lang))
        fig.update_layout(title=t("buytil.fig.by_frequency", lang), xaxis_title=t("buytil.col.frequency", lang),
                          yaxis_title=t("buytil.col.mean_holdout", lang))
        return [fig]

    def tables(self, lang: str = "en") -> list[Table]:
        from workbench.i18n import fmt_int, fmt_num, t

        def col(key: str) -> str:
            return t(f"buytil.col.{key}", lang)

        names = [self._name(k, lang) for k in self.table.index]
        main = pd.DataFrame({
            col("model"): names,
            col("predicted"): self.table["predicted"].to_numpy(),
            col("actual"): self.table["actual"].to_numpy(),
            col("mae"): self.table["mae"].to_numpy(),
        })
        fit = pd.DataFrame({
            col("model"): names,
            col("loglik"): self.table["loglik"].to_numpy(),
            col("aic"): self.table["aic"].to_numpy(),
            col("bic"): self.table["bic"].to_numpy(),
            col("converged"): [t("buytil.yes" if v else "buytil.no", lang) for v in self.table["converged"]],
        })
        rows = []
        for key, frame in self.params.items():
            for name, row in frame.iterrows():
                rows.append({col("model"): self._name(key, lang), col("param"): GREEK.get(name, name), col("estimate"): row["estimate"],
                             col("se"): row["se"], col("lower"): row["lower"], col("upper"): row["upper"]})
        params = pd.DataFrame(rows)
        bf = self.by_frequency.rename(columns={"n": col("customers"), "actual": col("actual"),
                                               **{k: self._name(k, lang) for k in self.table.index}})
        bf = bf.rename_axis(col("frequency")).reset_index()

        def num(d: int) -> Any:
            return lambda v: fmt_num(v, lang, d)

        return [
            Table(main, {col("predicted"): num(0), col("actual"): num(0), col("mae"): num(3)},
                  caption=t("buytil.caption.holdout", lang, n=fmt_int(self.n, lang))),
            Table(fit, {col("loglik"): num(1), col("aic"): num(1), col("bic"): num(1)},
                  caption=t("buytil.caption.fit", lang), appendix=True),
            Table(params, {c: num(4) for c in (col("estimate"), col("se"), col("lower"), col("upper"))},
                  caption=t("buytil.caption.params", lang), appendix=True),
            Table(bf, {c: num(3) for c in bf.columns[2:]}, caption=t("buytil.caption.by_frequency", lang),
                  appendix=True),
        ]

    def notes(self, lang: str = "en") -> list[str]:
        from workbench.i18n import t

        bad = [self._name(k, lang) for k, ok in self.table["converged"].items() if not ok]
        return [t("buytil.note.not_converged", lang, models=", ".join(bad))] if bad else []

    def metrics(self) -> dict[str, Any]:
        cols = ["loglik", "aic", "bic", "predicted", "actual", "mae", "rmse"]
        return {
            "purchase_model_comparison": {
                k: {c: float(self.table.loc[k, c]) for c in cols} for k in self.table.index
            },
            "purchase_model_best": self.best,
            "purchase_model_n": self.n,
        }


def compare_models(calibration_holdout_summary: pd.DataFrame, max_frequency: int = 7,
                   time_unit: str | None = None) -> PurchaseModelComparison:
    """Fit BG/NBD, Pareto/NBD and MBG/NBD on the calibration columns and score them on the holdout.

    Parameters
    ----------
    calibration_holdout_summary : DataFrame
        Output of :func:`workbench.clv.calibration_holdout` (``frequency``, ``recency``, ``T``,
        ``frequency_holdout``, ``duration_holdout``), one row per customer.
    max_frequency : int, default 7
        Calibration frequencies ``>= max_frequency`` are pooled in the by-frequency table.
    time_unit : {"W", "D"}, optional
        Unit of the summary (default: its ``attrs["time_unit"]``, else weeks).

    Returns
    -------
    PurchaseModelComparison
        Log-likelihood, AIC and BIC on the calibration period; predicted vs actual holdout purchases
        (total, per-customer MAE and RMSE, by calibration frequency); the best model by holdout MAE
        with the paired 95% interval of its advantage over the runner-up.
    """
    df = calibration_holdout_summary
    need = ("frequency", "recency", "T", "frequency_holdout", "duration_holdout")
    missing = [c for c in need if c not in df]
    if missing:
        raise ValueError(f"calibration_holdout_summary lacks column(s) {missing}")
    if max_frequency < 1:
        raise ValueError("max_frequency must be >= 1")
    x, t_x, T_ = _check_rfm(df["frequency"], df["recency"], df["T"])
    actual = np.asarray(df["frequency_holdout"], dtype=float)
    duration = np.asarray(df["duration_holdout"], dtype=float)
    n = x.size
    rows, params, errors, predicted = {}, {}, {}, {}
    for key, (cls, k) in MODELS.items():
        fit = cls().fit(x, t_x, T_).result_
        pred = np.asarray(fit.expected_purchases(duration, x, t_x, T_), dtype=float)
        err = pred - actual
        errors[key] = np.abs(err)
        predicted[key] = pred
        rows[key] = {
            "loglik": fit.loglik, "k": k, "aic": 2 * k - 2 * fit.loglik, "bic": k * np.log(n) - 2 * fit.loglik,
            "predicted": float(pred.sum()), "actual": float(actual.sum()),
            "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
            "converged": bool(fit.converged),
        }
        frame = fit.conf_int() if hasattr(fit, "conf_int") else _conf_int(fit, 0.95)
        params[key] = frame
    table = pd.DataFrame.from_dict(rows, orient="index")
    order = table["mae"].sort_values().index
    best, runner = str(order[0]), str(order[1])
    d = errors[best] - errors[runner]
    half = 1.959963984540054 * float(np.std(d, ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
    labels = [str(i) for i in range(max_frequency)] + [f"{max_frequency}+"]
    group = pd.Categorical.from_codes(np.minimum(x, max_frequency).astype(int), labels)
    frame = pd.DataFrame({"group": group, "actual": actual, **predicted})
    by = frame.groupby("group", observed=False).agg(
        n=("actual", "size"), actual=("actual", "mean"), **{k: (k, "mean") for k in MODELS})
    by.index.name = "frequency"
    unit = time_unit or str(df.attrs.get("time_unit", "W"))
    return PurchaseModelComparison(
        table=table, by_frequency=by, params=params, best=best, runner_up=runner,
        mae_diff=float(d.mean()), mae_diff_ci=(float(d.mean() - half), float(d.mean() + half)),
        n=int(n), duration=float(np.median(duration)), time_unit=unit,
    )


# ---------------------------------------------------------------------------
# Notebook 04 section: which purchase model fits best (with the lifetimes-style diagnostics)
# ---------------------------------------------------------------------------

MIN_REPEAT_BUYERS = 50  # fewer calibration repeat buyers than this: the dropout process is not identified
MIN_CALIBRATION_WEEKS = 26  # and a calibration window shorter than this hides the dropout


def _unsupported(key: str, **values: Any) -> Exception:
    import datetime as _dt

    from workbench.engine import MissingDataError
    from workbench.i18n import fmt_date, t

    class _Why(MissingDataError):
        def __init__(self) -> None:
            super().__init__("transactions", (), f"{key}: {values}")

        def reason(self, lang: str = "en") -> str:
            vals = {k: fmt_date(v, lang) if isinstance(v, _dt.date) else v for k, v in values.items()}
            return t(f"buytil.skip.{key}", lang, **vals)

    return _Why()


@dataclass(frozen=True, repr=False)
class PurchaseModels(Result):
    """Notebook section: :class:`PurchaseModelComparison` plus the ``lifetimes``-style diagnostics of
    the best model (expected purchases and P(alive) by frequency × recency, cumulative repeat
    purchases against the model), all in the appendix except the comparison itself."""

    heading: ClassVar[str] = "buytil.h.comparison"

    comparison: PurchaseModelComparison
    expected: pd.DataFrame  # rows: recency (time units), columns: frequency; expected purchases next period
    alive: pd.DataFrame  # same grid, P(alive)
    cumulative: pd.DataFrame  # day, actual, predicted (repeat purchases since the calibration start)
    calibration_end: Any
    holdout_days: int
    repeat_buyers: int

    def findings(self, lang: str = "en") -> list[Finding]:
        return self.comparison.findings(lang)

    def figures(self, lang: str = "en") -> list[Any]:
        import plotly.graph_objects as go

        from workbench.i18n import t
        from workbench.results import Figure

        model = self.comparison._name(self.comparison.best, lang)
        unit = t(f"buytil.unit.{self.comparison.time_unit}", lang)
        figs = [Figure(f) for f in self.comparison.figures(lang)]
        for frame, key in ((self.expected, "expected"), (self.alive, "alive")):
            fig = go.Figure(go.Heatmap(z=frame.to_numpy(), x=list(frame.columns), y=list(frame.index),
                                       colorscale="Viridis"))
            fig.update_layout(title=t(f"buytil.fig.{key}", lang, model=model),
                              xaxis_title=t("buytil.col.frequency", lang),
                              yaxis_title=t("buytil.fig.recency", lang, unit=unit))
            figs.append(Figure(fig, appendix=True))
        cum = self.cumulative
        fig = go.Figure()
        fig.add_scatter(x=cum["day"], y=cum["actual"], mode="lines", name=t("buytil.col.actual", lang))
        fig.add_scatter(x=cum["day"], y=cum["predicted"], mode="lines", name=model, line={"dash": "dash"})
        fig.add_vline(x=self.calibration_end, line_dash="dot")
        fig.update_layout(title=t("buytil.fig.cumulative", lang), yaxis_title=t("buytil.fig.cum_y", lang))
        figs.append(Figure(fig, appendix=True))
        return figs

    def tables(self, lang: str = "en") -> list[Table]:
        return self.comparison.tables(lang)

    def notes(self, lang: str = "en") -> list[str]:
        from workbench.i18n import fmt_date, fmt_int, t

        return [t("buytil.note.split", lang, cal=fmt_date(self.calibration_end, lang), days=self.holdout_days,
                  n=fmt_int(self.repeat_buyers, lang)), *self.comparison.notes(lang)]

    def metrics(self) -> dict[str, Any]:
        m = self.comparison.metrics()
        return {"purchase_models": {"models": m["purchase_model_comparison"], "best": m["purchase_model_best"],
                                    "n": m["purchase_model_n"], "repeat_buyers": self.repeat_buyers,
                                    "calibration_end": str(self.calibration_end),
                                    "holdout_days": self.holdout_days,
                                    "mae_diff": self.comparison.mae_diff,
                                    "mae_diff_ci": list(self.comparison.mae_diff_ci)}}


#: parameter names as the published papers write them (also keeps English words off zh pages)
GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ"}


def _cumulative(ds: Any, fit: Any, ch: pd.DataFrame, cal_end: Any, end: Any, days_per_unit: float) -> pd.DataFrame:
    """Actual repeat purchase days per day since the first purchase (engine SQL) against the model:
    sum over customers of the expected purchases of a new customer ``t`` after the first purchase."""
    import datetime as _dt

    first = pd.to_datetime(pd.Series(ch["first_purchase"]))
    start = first.min().date()
    days = pd.date_range(start, end, freq="7D" if (end - start).days > 200 else "D").union([pd.Timestamp(end)])
    oc = ", order_id" if ds.has("transactions", "order_id") else ""  # the unit the models were fitted on
    tx = ds.sql(f"""WITH u AS (SELECT DISTINCT customer_id, CAST(date AS DATE) AS d{oc} FROM transactions
                     WHERE amount > 0 AND CAST(date AS DATE) <= DATE '{end.isoformat()}'),
                     r AS (SELECT d, row_number() OVER (PARTITION BY customer_id ORDER BY d{oc}) AS k,
                                  min(d) OVER (PARTITION BY customer_id) AS f FROM u)
                     SELECT d FROM r WHERE k > 1 AND f <= DATE '{cal_end.isoformat()}'""")
    rep = np.sort(pd.to_datetime(tx["d"]).to_numpy())
    actual = np.searchsorted(rep, days.to_numpy(), side="right")
    counts = first.dt.normalize().value_counts()
    fdays = counts.index.to_numpy()
    pred = []
    for day in days.to_numpy():
        age = (day - fdays) / np.timedelta64(1, "D") / days_per_unit
        ok = age > 0
        pred.append(float(np.dot(counts.to_numpy()[ok], np.asarray(fit.expected_purchases_new(age[ok]), dtype=float)))
                    if ok.any() else 0.0)
    return pd.DataFrame({"day": [d.date() if isinstance(d, _dt.datetime) else pd.Timestamp(d).date() for d in days],
                         "actual": actual, "predicted": pred})


def purchase_models(ds: Any, end: Any, holdout_days: int = 365, time_unit: str = "W",
                    max_frequency: int = 7) -> Result:
    """Notebook 04: BG/NBD, Pareto/NBD and MBG/NBD fitted up to ``end - holdout_days`` and scored on
    the following ``holdout_days`` (:func:`compare_models`), with the diagnostics of the best model.

    Skipped, saying why in plain words, when the calibration window is shorter than
    ``MIN_CALIBRATION_WEEKS`` weeks or has fewer than ``MIN_REPEAT_BUYERS`` repeat buyers.
    """
    from workbench import clv
    from workbench.engine import MissingDataError
    from workbench.results import Skipped

    try:
        ds.require("transactions", "customer_id", "date", "amount", reason="purchase models")
        return _purchase_models(ds, end, holdout_days, time_unit, max_frequency, clv)
    except Exception as exc:  # noqa: BLE001 - a data reason becomes a skipped section
        if hasattr(exc, "reason") or isinstance(exc, MissingDataError):
            return Skipped(PurchaseModels.heading, exc)
        raise


def _purchase_models(ds: Any, end: Any, holdout_days: int, time_unit: str, max_frequency: int, clv: Any) -> Result:
    import datetime as _dt

    end = pd.Timestamp(end).date()
    holdout_days = int(holdout_days)
    cal_end = end - _dt.timedelta(days=holdout_days)
    first = ds.sql(f"SELECT min(CAST(date AS DATE)) AS f FROM transactions WHERE amount > 0 "
                   f"AND CAST(date AS DATE) <= DATE '{end.isoformat()}'")["f"].iloc[0]
    if first is None or pd.isna(first):
        raise _unsupported("no_purchases", day=end)
    first = pd.Timestamp(first).date()
    weeks = (cal_end - first).days / 7.0
    if weeks < MIN_CALIBRATION_WEEKS:
        raise _unsupported("short_window", weeks=round(weeks), need=MIN_CALIBRATION_WEEKS, days=holdout_days)
    tx = ds.table("transactions")
    tx = tx.filter(tx.date <= end)
    order_col = "order_id" if ds.has("transactions", "order_id") else None
    ch = clv.calibration_holdout(tx, cal_end, end, time_unit, order_col=order_col, data_end=end)
    repeat = int((ch["frequency"] > 0).sum())
    if repeat < MIN_REPEAT_BUYERS:
        raise _unsupported("few_repeat", n=repeat, need=MIN_REPEAT_BUYERS, day=cal_end)
    comp = compare_models(ch, max_frequency=max_frequency, time_unit=time_unit)
    cls = MODELS[comp.best][0]
    fit = cls().fit(ch["frequency"], ch["recency"], ch["T"]).result_
    T_max = float(ch["T"].max())
    fmax = int(min(ch["frequency"].quantile(0.99), 40))
    freqs = np.arange(0, fmax + 1)
    rec = np.linspace(0.0, T_max, 25)
    F, R = np.meshgrid(freqs, rec)
    R = np.where(F == 0, 0.0, R)
    shape = F.shape
    dur = float(ch["duration_holdout"].iloc[0])
    expd = np.asarray(fit.expected_purchases(dur, F.ravel(), R.ravel(), np.full(F.size, T_max)), dtype=float)
    alive = np.asarray(fit.probability_alive(F.ravel(), R.ravel(), np.full(F.size, T_max)), dtype=float)
    idx = pd.Index(np.round(rec, 1), name="recency")
    expected = pd.DataFrame(expd.reshape(shape), index=idx, columns=freqs)
    alive_f = pd.DataFrame(alive.reshape(shape), index=idx, columns=freqs)
    days_per_unit = 7.0 if time_unit == "W" else 1.0
    cum = _cumulative(ds, fit, ch, cal_end, end, days_per_unit)
    return PurchaseModels(comp, expected, alive_f, cum, cal_end, holdout_days, repeat)
