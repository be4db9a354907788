"""Seeded synthetic CRM dataset generator ("Sample retail (synthetic)"), streamed in chunks of customers.

``generate_sample(out_dir, customers=20000, seed=42, lang="en", fmt="parquet", end=None,
chunk_size=200000)`` writes six tables (customers, transactions, surveys, complaints, members, points) and
an optional ``prospects`` table as Parquet or CSV, plus ``TRUTH.json`` (every planted parameter,
machine-readable) and ``workbench.toml`` (the dataset config read by the loader). Same seed and arguments
give byte-identical files. Everything is vectorised with numpy / pyarrow; the only Python loops are over
chunks, months, quarters, survey levels and label lists.

Streaming
---------
Customers are independent given the parameters, so they are generated ``chunk_size`` at a time
(:meth:`workbench.planted.Planted.chunks`); each chunk's rows of every table are drawn together (one main
random generator per chunk, see :mod:`workbench.planted`) and appended to one pyarrow writer per file, so
peak memory depends on the chunk size, not on ``customers``. Consequences (documented in TRUTH.json
``generator.streaming``):

* rows are ordered chunk by chunk (within a chunk transactions by date, surveys by date, complaints by
  opening time, members and points by customer); ids are numbered in written order;
* the per-chunk normalisations (survey invitation share, complaint propensity mean, the contract share
  behind the behaviour hinge) are computed per chunk, which is exact in expectation;
* realised checks in TRUTH.json are sums over chunks (:class:`workbench.planted.Tally`), except the
  top-20% revenue share and the drivers' Shapley R^2 shares, measured on the first chunk (a random sample
  of ``chunk_size`` customers; all customers when there is one chunk).

A sample of at most ``chunk_size`` customers is one chunk and byte-identical to the unchunked generator.

Time window
-----------
24 calendar months ending with the month ``end`` (``"YYYY-MM"`` or a date;
default: the month before today).  Every date and timestamp in every table lies
inside ``[window.start, window.end]`` (end-of-day of the last day).

Planted model (all numbers are also written to TRUTH.json)
-----------------------------------------------------------
Customer latents: activity ``z_act`` ~ N(0,1) (purchase rate, lognormal),
spend level ``z_amt`` (order size, correlated 0.3 with activity), attitude
``g`` ~ N(0,1) (drives survey answers, complaint and churn propensity).
Segments mass / value / premium / contract (大众/实惠/高端/合约客户);
contract customers have a high switching cost.

1. *Two thresholds* (DOMAIN §1).  On the 1-5 satisfaction scale,
   P(repurchase_intent >= 4 | s) = base_i + slope_i * max(0, s - 2.5) and
   P(>=1 purchase (amount > 0) in (d, d+90] | s) = base_b + slope_b *
   max(0, s - 3.5) for every survey d with a complete 90-day follow-up.  The
   behaviour is realised in the transactions table: purchases inside the
   window are removed for planted non-repeaters and one purchase is added for
   planted repeaters without one, so it is recoverable from transactions.
   Intent and behaviour are coupled by a Gaussian copula (rho 0.5) so stated
   intent converts only partly (conversion by satisfaction level recorded).
2. *Four cases*: satisfied (s >= 4) & loyal (repeat) split into trust-based
   (low discount share of spend) and self-interest (high discount share);
   satisfied-not-loyal; dissatisfied (s <= 2) & not loyal (the majority);
   dissatisfied & loyal, dominated by contract customers who repeat with
   probability 0.9 whatever their satisfaction (the non-contract rate at each
   level is adjusted so the population hinge stays exact in expectation).
3. *Drivers*: five 1-5 ratings from one shared latent factor (latent pairwise
   correlation 0.5625); satisfaction = cut(sum w_k (rating_k - 3) + noise)
   with service_level dominant.  In-sample Shapley R^2 shares recorded.
4. *Expectation* (1-5, 3 = as expected) correlates with satisfaction; the
   below / met / above groups get churn-hazard multipliers 1.8 / 1.0 / 0.6
   from the day after the (first) survey on and differ in ``recommend``.
   Invitation days are drawn independently of the lifetime (only customers
   still active answer), so being surveyed itself plants no churn effect.
5. *Intent conversion*: see 1.
6. *Value*: lognormal rate x lognormal order size -> top 20% of customers
   ~70-80% of revenue; product-category margin rates; ~3% refund rows
   (negative amount, negative margin, discount 0); profit x relationship
   segments (true friends, butterflies, barnacles, strangers) all populated.
7. *Complaints*: ~1 per 100 customer-months, calendar seasonality, a steady
   rising trend in one category, a x4 spike in one category in one month,
   lognormal response / resolution hours by handler, ~5% open at the end,
   three handlers with small n.  ``resolution`` null = unresolved.
8. *Churn*: piecewise-exponential latent churn time (exact: each event registers a
   hazard multiplier from its day on, :meth:`workbench.planted.Cohort.hazard_change`);
   hazard raised x2.5 after an unresolved complaint, x0.9 per extra purchase channel,
   x0.64 per SD of activity (busy customers use more channels, so the naive
   multi-channel comparison overstates the effect), x0.35 for contract customers.
   ``churn_reason`` and ``churned_at`` (the day of the latent churn time) are set
   for customers whose churn time falls in the window.
9. *Loyalty programme*: customers select themselves on observed data only: the
   wish to join rises with their purchases in the signup month (attitude plays no
   part); the join day (signup + 90 + exponential wait) is drawn independently of
   the lifetime, and counts when it comes before churn and the window end; true
   effect: purchase rate x1.08 and churn hazard x0.85 from the join day on, both
   identifiable (see :func:`plant_programme_join`); the naive members-vs-others
   gap (revenue about x2.9) is recorded.  Quarterly
   level reviews (one step up or down on trailing 6-month spend).  Points:
   1 per CNY of net monthly spend (posted at month end), bonuses (join,
   reviews/referrals, day 15), redemptions (days 2-28, from the previous
   balance, FIFO), expiry of unredeemed points 12 months after the earning
   month (first day of month k+13).  Running balance never negative.
10. *PII*: Chinese names (汉字 for zh, pinyin otherwise), emails, 11-digit
   mobile numbers; some complaint texts contain an e-mail, a mobile number or
   an HTML ``<b>`` tag.
11. *Category sequence* (cross-sell, DOMAIN §3): customers whose first purchase is in Electronics
   (数码家电) buy Sports (运动户外) as their next new category far more often than others (the next
   purchase in another category is re-assigned to Sports with probability 0.5; own generator
   ``aux_rng(1602, chunk)``, so every other column keeps its values).
12. *Trait segments* (issue 16): income, occupation and household size from a latent segment drawn from
   age and spend level (own generator ``aux_rng(1601, chunk)``); ``prospects`` (one per ten customers).

Generators
----------
One function per table or planted mechanism, called in this order per chunk (each takes the shared
:class:`~workbench.planted.Planted` object, the chunk's :class:`~workbench.planted.Cohort` and the chunk's
generator): :func:`draw_customers`, :func:`plant_complaints`, :func:`plant_surveys`, :func:`plant_deals`,
:func:`draw_transactions`, :func:`draw_churn_reasons`, :func:`draw_programme`, :func:`draw_pii`, then the
table builders :func:`customers_table`, :func:`transactions_table`, :func:`surveys_table`,
:func:`complaints_table`, :func:`members_table`, :func:`points_table` (each adds its realised checks to
``Planted.tally``); :func:`finalise_truth` turns the tally into TRUTH.json.

TRUTH.json keys
---------------
``generator`` (seed, size, lang, format, streaming), ``window`` (start, end, month
labels), ``conventions`` (what counts as a purchase, repeat window,
unresolved, churned), ``thresholds`` (hinge parameters for intent and
behaviour, expected and observed rates by satisfaction level),
``intent_conversion``, ``four_cases`` (definitions and shares), ``drivers``
(true weights, dominant driver, latent correlation, in-sample Shapley R^2
shares and order), ``expectation`` (groups, churn multipliers, observed churn),
``value`` (top-20% revenue share, margin rates by category, refund share,
profit x relationship segment counts), ``complaints`` (rate, seasonality,
rising / spike category and month, monthly counts, per-handler medians and n,
open share), ``churn`` (hazard ratios, naive comparisons), ``loyalty_programme``
(join model, true effect, naive gap, level and points rules), ``category_sequence``
(planted first → next category, planted probability, observed shares), ``volumes`` (row
counts), ``trait_segments``.  "observed_*" / "naive_*" entries are measured on the written data;
the rest are the generating parameters.

Storage: Parquet written by pyarrow without the Arrow schema blob and without
timestamps in metadata (timestamps are stored as ``timestamp[ms]`` because
Parquet has no seconds unit); CSV by ``pyarrow.csv.CSVWriter`` (UTF-8, ISO
dates, empty field = null).

Labels (segment, region, channels, categories, levels, gender, churn reasons)
are Chinese when ``lang="zh"``; codes ``status``, ``severity`` and points
``kind`` stay English; column names are always English.  In ``members`` the
customer-level ``left_at`` is repeated on every level-spell row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from workbench.planted import (
    _COMMENTS,
    _COMPLAINTS,
    _DOMAINS,
    _GIVEN,
    _L,
    _MOBILE_PREFIX,
    _ND,
    _SUFFIX,
    _SURNAMES,
    _TRAIT_L,
    CHUNK_SIZE,
    DRIVERS,
    MONTHS,
    TABLES,
    TRAIT_INCOME_SIGMA,
    TRAIT_OCCUPATION_P,
    TRAIT_SEGMENTS,
    Cohort,
    P,
    Planted,
    _cut,
    _hinge,
    _r,
    _shapley_r2,
)

__all__ = ["SampleResult", "generate_sample", "TABLES", "finalise_truth"]

K = 6  # complaint categories


@dataclasses.dataclass(frozen=True)
class SampleResult:
    """What :func:`generate_sample` wrote."""

    out_dir: Path
    paths: dict[str, Path]  # table name -> file; also "truth" and "config"
    rows: dict[str, int]
    truth: dict[str, Any]


# --------------------------------------------------------------------------- arrow helpers
def _ids(prefix: str, n: int, width: int, start: int = 0) -> pa.Array:
    """``prefix`` + zero-padded ``start + 1 .. start + n``."""
    s = pc.cast(pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(s, width, "0"), "")


def _labels(labels: list[str], idx: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    arr = pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32), mask=mask),
                                         pa.array(labels, pa.string()))
    return arr.cast(pa.string())


def _date(days: np.ndarray, base: int, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array((days + base).astype(np.int32), type=pa.date32(), mask=mask)


def _ts(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(seconds.astype(np.int64), type=pa.timestamp("s"), mask=mask)


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="snappy", store_schema=False)
    else:
        pacsv.write_csv(table, path)


class _Writers:
    """One streaming pyarrow writer per output file, opened on the first chunk with that chunk's schema."""

    def __init__(self, out: Path, fmt: str) -> None:
        self.out, self.fmt = out, fmt
        self.open: dict[str, Any] = {}
        self.schema: dict[str, pa.Schema] = {}
        self.paths: dict[str, Path] = {}

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.open:
            pth = self.out / f"{name}.{self.fmt}"
            self.paths[name] = pth
            self.schema[name] = table.schema
            self.open[name] = (pq.ParquetWriter(pth, table.schema, compression="snappy", store_schema=False)
                               if self.fmt == "parquet" else pacsv.CSVWriter(pth, table.schema))
        elif not table.schema.equals(self.schema[name]):
            table = table.cast(self.schema[name])
        self.open[name].write_table(table)

    def close(self) -> None:
        for w in self.open.values():
            w.close()
        self.open.clear()


def _churned_at(T: np.ndarray, D: int, base: int) -> pa.Array:
    """``customers.churned_at``: the day of the latent churn time for customers who churn inside the
    window (the same customers as a non-null ``churn_reason``); null otherwise. No random draw."""
    churned = T < D
    return _date(np.where(churned, np.floor(T), 0).astype(np.int64), base, mask=~churned)


def _lam_at(pl: Planted, t: np.ndarray) -> np.ndarray:
    """Position of day ``t`` (float) on the seasonal purchase time scale (cumulative daily weights)."""
    wday, Lam = _day_weights(pl)
    D = pl.days
    t = np.clip(t, 0, D)
    i = np.minimum(np.floor(t).astype(np.int64), D - 1)
    return Lam[i] + (t - i) * wday[i]


# --------------------------------------------------------------------------- customers and latents
def draw_customers(pl: Planted, rng: np.random.Generator, chunk: int, offset: int, n: int) -> Cohort:
    """Segment, region, acquisition, signup day, latents, channels, latent churn time and the programme.

    Parameters
    ----------
    pl
        The run's planted truth.
    rng
        The chunk's main generator.
    chunk, offset, n
        Chunk number, customers before it, customers in it.

    Returns
    -------
    Cohort
        The chunk's per-customer draws; ``T`` already includes the programme's churn effect.
    """
    D = pl.days
    seg = rng.choice(4, n, p=P["segment_p"])
    contract = seg == 3
    region = rng.choice(7, n, p=P["region_p"])
    acq = rng.choice(5, n, p=P["acq_p"])
    acq_cost = np.round(np.asarray(P["acq_cost_median"])[acq]
                        * np.exp(rng.normal(0, 0.4, n)), 2)
    early = rng.random(n) < P["early_signup_share"]
    S = np.where(early, rng.integers(0, 90, n), rng.integers(0, D, n)).astype(np.int64)
    z_act = rng.standard_normal(n) + np.where(seg == 2, 0.3, 0.0)
    z_amt = 0.3 * z_act + np.sqrt(1 - 0.09) * rng.standard_normal(n) + np.where(seg == 2, 0.8, 0)
    g = rng.standard_normal(n) - np.where(contract, 0.4, 0.0)
    n_ch = 1 + rng.binomial(3, 1 / (1 + np.exp(-(-1.0 + 1.0 * z_act))))
    keys = rng.random((n, 4)) ** (1 / np.asarray(P["txch_pref"]))
    perm = np.argsort(-keys, axis=1).astype(np.int8)  # channels in order of use

    h0 = -np.log(1 - P["churn_base_annual"]) / 365.25
    lin = (np.log(P["hr_activity_per_sd"]) * z_act + np.log(P["hr_attitude_per_sd"]) * g
           + np.log(P["hr_per_extra_channel"]) * (n_ch - 1)
           + np.log(P["hr_contract"]) * contract)
    h = h0 * np.exp(lin)
    E = rng.exponential(1.0, n)
    T = S + E / h  # latent churn time (days, float); change points recompute it exactly (Cohort.hazard_change)
    co = Cohort(chunk, offset, n, seg, region, acq, acq_cost, S, z_act, z_amt, g, n_ch, perm, T,
                np.zeros(n, bool), np.zeros(n, np.int64), h=h, E=E)
    plant_programme_join(pl, co, rng)
    return co


_NEVER = 10**9  # join day of customers who never want to join


def plant_programme_join(pl: Planted, co: Cohort, rng: np.random.Generator) -> None:
    """Programme membership, selected on what the data show, and its churn effect (updates ``co``).

    The purchases of the first ``member_join_after_days`` (90) days after signup are drawn here (at the base
    rate; :func:`draw_transactions` writes those made before the churn time). A customer wants to join with
    logit ``intercept + activity * log(1 + k1)``, ``k1`` = their purchases after the signup purchase in the
    signup calendar month (attitude and latent activity play no part), on day
    ``signup + 90 + Exponential(member_wait_mean_days)``: a draw independent of the churn time. The churn
    hazard is multiplied by ``hr_member`` from that day on (piecewise-exponential, exact); the customer is a
    member when the join day comes before the churn day and the window end (recomputed after every later
    hazard change by :func:`plant_surveys`).

    Why this selection variable: purchases are Poisson given latent activity, so given the purchases of the
    first 90 days (what the lifecycle Cox model adjusts for) the split between the signup month and the rest
    says nothing more about activity, and joining is independent of activity and of the churn time; and the
    signup month is the month the members' fixed-effects purchase model leaves out, so selecting on its
    chance purchases does not inflate the members' "before" months (no regression to the mean).
    """
    D, S, n = pl.days, co.S, co.n
    a = P["member_join_after_days"]
    rate = P["rate_per_day_median"] * np.exp(P["rate_sigma"] * co.z_act)
    L0, L1 = _lam_at(pl, S.astype(float)), _lam_at(pl, np.minimum(S + a, D).astype(float))
    k = rng.poisson(rate * np.maximum(L1 - L0, 0))
    ec = np.repeat(np.arange(n, dtype=np.int64), k)
    ev = L0[ec] + rng.random(ec.size) * (L1 - L0)[ec]
    # selection variable: purchases after the signup purchase in the signup calendar month (observed)
    month_end = pl.mday[np.searchsorted(pl.mday, S, side="right")].astype(float)
    k1 = np.bincount(ec[ev < _lam_at(pl, month_end)[ec]], minlength=n)
    logit = P["member_logit_intercept"] + P["member_logit_activity"] * np.log1p(k1)
    wants = rng.random(n) < 1 / (1 + np.exp(-logit))
    J = np.where(wants, S + a + np.floor(rng.exponential(P["member_wait_mean_days"], n)).astype(np.int64), _NEVER)
    co.hazard_change("programme", np.where(wants, J, np.inf), P["hr_member"])
    co.J, co.early_cust, co.early_v = J, ec, ev
    co.member = (J < D) & (J < np.floor(co.T))


# --------------------------------------------------------------------------- complaints (events)
@dataclasses.dataclass(frozen=True)
class ComplaintEvents:
    """Complaints of one chunk (one row per complaint, before dropping those after the churn time)."""

    cust: np.ndarray
    day: np.ndarray
    cat: np.ndarray
    handler: np.ndarray
    opened: np.ndarray  # seconds from the window start
    first_resp: np.ndarray
    closed: np.ndarray
    is_open: np.ndarray
    no_resp: np.ndarray
    unresolved: np.ndarray
    u_min: np.ndarray  # per customer: first time a complaint is experienced as unresolved (1e12 = never)


def complaint_intensity(pl: Planted) -> np.ndarray:
    """Month x category complaint intensity (seasonality, rising category, spike), mean month total 1."""
    season = np.array([P["seasonality"][m.month] for m in pl.month_starts[:MONTHS]])
    cat_int = np.tile(np.asarray(P["complaint_cat_weight"], float), (MONTHS, 1))
    cat_int[:, P["rising_category"]] *= 1 + P["rising_total_growth"] * np.arange(MONTHS) / (MONTHS - 1)
    cat_int[P["spike_month_index"], P["spike_category"]] *= P["spike_multiplier"]
    cat_int *= season[:, None]
    cat_int /= cat_int.sum(axis=1).mean()  # average month total intensity = 1
    return cat_int


def plant_complaints(pl: Planted, co: Cohort, rng: np.random.Generator) -> ComplaintEvents:
    """Complaints while the customer is active, handler times, and the x2.5 churn hazard after the first
    unresolved one (updates ``co.T``)."""
    n, D, mday, S = co.n, pl.days, pl.mday, co.S
    cat_int = complaint_intensity(pl)
    r_c = np.exp(0.25 * co.z_act - 0.35 * co.g)
    r_c = P["complaint_rate"] * r_c / r_c.mean()
    c_cust, c_day, c_cat = [], [], []
    for m in range(MONTHS):
        lo, hi = mday[m], mday[m + 1]
        a = np.clip(S, lo, hi)
        b = np.clip(np.minimum(co.T, D), lo, hi)
        expo = np.maximum(b - a, 0.0)
        lam = r_c * expo / 30.44 * cat_int[m].sum()
        k = rng.poisson(lam)
        idx = np.repeat(np.arange(n), k)
        day = np.floor(a[idx] + rng.random(idx.size) * (b[idx] - a[idx])).astype(np.int64)
        c_cust.append(idx)
        c_day.append(np.minimum(day, hi - 1))
        c_cat.append(rng.choice(K, idx.size, p=cat_int[m] / cat_int[m].sum()))
    cust = np.concatenate(c_cust)
    cday = np.concatenate(c_day)
    ccat = np.concatenate(c_cat)
    nc = cust.size
    hnd = rng.choice(12, nc, p=np.asarray(P["handler_w"]) / np.sum(P["handler_w"]))
    end_s = D * 86400 - 1  # last second of the window (relative seconds)
    opened = cday * 86400 + rng.integers(8 * 3600, 22 * 3600, nc)
    resp_h = np.asarray(P["handler_resp_h"], float)[hnd] * np.exp(rng.normal(0, P["resp_sigma"], nc))
    res_h = np.asarray(P["handler_res_h"], float)[hnd] * np.exp(rng.normal(0, P["res_sigma"], nc))
    res_h = np.maximum(res_h, resp_h + 0.5)
    stalled = rng.random(nc) < P["stalled_share"]
    closed = opened + np.round(res_h * 3600).astype(np.int64)
    is_open = stalled | (closed > end_s)
    first_resp = opened + np.round(resp_h * 3600).astype(np.int64)
    no_resp = (rng.random(nc) < P["no_response_share"]) | (first_resp > end_s)
    unresolved = is_open | (rng.random(nc) < np.asarray(P["handler_unresolved"])[hnd])
    # time the customer experiences the complaint as unresolved
    u_t = np.where(is_open, cday + 14.0, closed / 86400.0)
    u_min = np.full(n, 1e12)
    np.minimum.at(u_min, cust[unresolved], u_t[unresolved])
    co.hazard_change("unresolved_complaint", u_min, P["hr_unresolved_complaint"])
    return ComplaintEvents(cust, cday, ccat, hnd, opened, first_resp, closed, is_open, no_resp, unresolved, u_min)


# --------------------------------------------------------------------------- surveys (events)
@dataclasses.dataclass(frozen=True)
class SurveyEvents:
    """Survey responses of one chunk (first and second surveys) and the planted 90-day windows."""

    cust: np.ndarray  # per response
    no: np.ndarray  # 0 first survey, 1 second
    ratings: np.ndarray  # responses x 5 drivers
    sat: np.ndarray
    expct: np.ndarray
    egrp: np.ndarray  # 0 below, 1 met, 2 above
    int_high: np.ndarray
    repeat: np.ndarray
    intent: np.ndarray
    recommend: np.ndarray
    keep: np.ndarray  # response written (second surveys only while active)
    day: np.ndarray
    planted: np.ndarray  # kept and with a complete 90-day follow-up in the window
    rep_flag: np.ndarray  # customers x 2: planted repeat (1), non-repeat (0), none (-1)
    wstart: np.ndarray  # customers x 2: survey day of the planted window

    @property
    def first(self) -> np.ndarray:
        return self.no == 0


def plant_surveys(pl: Planted, co: Cohort, rng: np.random.Generator) -> SurveyEvents:
    """Survey answers (drivers, satisfaction, expectation, intent, recommend), the two thresholds (intent and
    90-day repeat behaviour, by a Gaussian copula), and the expectation groups' churn multipliers from the
    day after the first survey on (updates ``co.T`` and drops programme joins that now fall after the churn
    time).

    The invitation day is drawn independently of the lifetime (uniform from a week after signup to the
    window end); only customers still active the day after it answer. Drawing the day inside each lifetime
    (as this generator once did) makes "was surveyed" predict churn with nothing planted: every respondent's
    churn then falls within a known share of their remaining life. The expectation effect starts the day
    after the answer, so answering (alive at ``d + 1``) and the effect do not overlap.
    """
    n, D, S, contract = co.n, pl.days, co.S, co.contract
    elig = (D - 1) - (S + 7) >= 14
    d_inv = (S + 7 + np.floor(rng.random(n) * np.maximum(D - 1 - S - 7 + 1, 1))).astype(np.int64)
    alive = elig & (d_inv + 1 < co.T)
    p_s = min(1.0, P["survey_share"] / max(alive.mean(), 1e-9))  # share of customers answering, as before
    sv = alive & (rng.random(n) < p_s)
    d1 = np.where(sv, d_inv, -1).astype(np.int64)
    twice = sv & (rng.random(n) < P["survey_twice_share"])
    d2 = np.where(twice, d1 + 91 + rng.integers(0, 270, n), -1)
    # responses: first survey for all sv, second for twice (validity checked after churn update)
    r_cust = np.concatenate([np.flatnonzero(sv), np.flatnonzero(twice)])
    r_no = np.concatenate([np.zeros(sv.sum(), np.int8), np.ones(twice.sum(), np.int8)])
    nr = r_cust.size
    gl = P["attitude_loading"]
    f = gl * co.g[r_cust] + np.sqrt(1 - gl**2) * rng.standard_normal(nr)
    lam_d = P["driver_loading"]
    drv_cuts = [_ND.inv_cdf(q) for q in (0.06, 0.16, 0.40, 0.75)]
    ratings = np.empty((nr, 5), np.int8)
    for k in range(5):
        x = lam_d * f + np.sqrt(1 - lam_d**2) * rng.standard_normal(nr)
        ratings[:, k] = _cut(x, drv_cuts)
    w = np.array([P["driver_weights"][d] for d in DRIVERS])
    y = (ratings - 3) @ w + P["sat_noise_sd"] * rng.standard_normal(nr)
    ysd = (y - P["sat_center"]) / P["sat_scale"]
    sat = _cut(ysd, P["sat_cuts"])
    expct = _cut(0.75 * ysd + 0.66 * rng.standard_normal(nr), P["exp_cuts"])
    egrp = np.where(expct <= 2, 0, np.where(expct == 3, 1, 2))  # below / met / above
    # intent & behaviour via Gaussian copula
    rho = P["copula_rho"]
    z1 = rng.standard_normal(nr)
    z2 = rho * z1 + np.sqrt(1 - rho**2) * rng.standard_normal(nr)
    p_int = _hinge(sat, P["intent_base"], P["intent_slope"], P["tau_intent"])
    p_beh = _hinge(sat, P["behaviour_base"], P["behaviour_slope"], P["tau_behaviour"])
    thr = np.vectorize(lambda p: _ND.inv_cdf(min(max(p, 1e-9), 1 - 1e-9)))
    int_high = z1 < thr(np.unique(p_int))[np.searchsorted(np.unique(p_int), p_int)]
    is_con = contract[r_cust]
    p_adj = p_beh.copy()
    for s in range(1, 6):
        sel = sat == s
        if sel.any():
            fs = is_con[sel].mean()
            p_adj[sel & ~is_con] = np.clip((p_beh[sel][0] - fs * P["contract_repeat_p"])
                                          / max(1 - fs, 1e-9), 0, 1)
    p_adj[is_con] = P["contract_repeat_p"]
    uq = np.unique(p_adj)
    repeat = z2 < thr(uq)[np.searchsorted(uq, p_adj)]
    p5 = np.clip(0.3 + 0.12 * (sat - 3), 0.05, 0.8)
    intent = np.where(int_high, 4 + (rng.random(nr) < p5),
                      np.clip(np.round(1 + (sat - 1) * 0.5 + rng.normal(0, 0.7, nr)), 1, 3))
    intent = intent.astype(np.int8)
    recommend = np.clip(np.round(5 + 1.6 * (sat - 3) + 0.7 * (expct - 3)
                                 + rng.normal(0, 1.4, nr)), 0, 10).astype(np.int8)
    # expectation effect on churn from the first survey on
    first = r_no == 0
    mult = np.ones(n)
    mult[r_cust[first]] = np.array([P["hr_expectation"][k] for k in ("below", "met", "above")])[
        egrp[first]]
    d1f = np.where(sv, d1 + 1, 1e12).astype(float)
    co.hazard_change("expectation", d1f, mult)
    co.member = (co.J < D) & (co.J < np.floor(co.T))  # later events may have moved churn before the join date
    # validity of second surveys: answered only while still active
    ok2 = twice & (d2 + 1 < co.T) & (d2 <= D - 1)
    keep_r = first | ok2[r_cust]
    d_resp = np.where(first, d1[r_cust], d2[r_cust])
    # planted 90-day windows: only for surveys with complete follow-up
    W = P["window_days"]
    planted = keep_r & (d_resp + W <= D - 1)
    rep_flag = np.full((n, 2), -1, np.int8)
    rep_flag[r_cust[planted], r_no[planted]] = repeat[planted]
    wstart = np.full((n, 2), -10**9, np.int64)
    wstart[r_cust[planted], r_no[planted]] = d_resp[planted]
    return SurveyEvents(r_cust, r_no, ratings, sat, expct, egrp, int_high, repeat, intent, recommend, keep_r,
                        d_resp, planted, rep_flag, wstart)


# --------------------------------------------------------------------------- deal proneness
@dataclasses.dataclass(frozen=True)
class Deals:
    """Deal proneness per customer (self-interest vs trust loyalty among the satisfied and loyal)."""

    deal: np.ndarray
    self_int: np.ndarray
    sat_loyal: np.ndarray
    p_disc: np.ndarray
    depth: np.ndarray


def plant_deals(pl: Planted, co: Cohort, sv: SurveyEvents, rng: np.random.Generator) -> Deals:
    """Who buys on discount and how deep (the four cases' trust vs self-interest split)."""
    n = co.n
    dp_share = np.where(co.seg == 1, P["deal_prone_share"]["value"], P["deal_prone_share"]["default"])
    deal = rng.random(n) < dp_share
    fp = sv.first & sv.planted
    sat_loyal = np.zeros(n, bool)
    sat_loyal[sv.cust[fp]] = (sv.sat[fp] >= 4) & sv.repeat[fp]
    self_int = sat_loyal & (rng.random(n) < P["self_interest_share"])
    deal = np.where(sat_loyal, self_int, deal)
    p_disc = np.where(deal, P["deal_p"], np.where(sat_loyal, P["trust_p"], P["plain_p"]))
    dlo, dhi = np.where(deal, P["deal_depth"][0], P["plain_depth"][0]), np.where(
        deal, P["deal_depth"][1], P["plain_depth"][1])
    depth = dlo + rng.random(n) * (dhi - dlo)
    return Deals(deal, self_int, sat_loyal, p_disc, depth)


# --------------------------------------------------------------------------- transactions
@dataclasses.dataclass(frozen=True)
class Purchases:
    """Transaction rows of one chunk (sorted by day, then customer), refunds included."""

    cust: np.ndarray  # int32, customer index within the chunk
    day: np.ndarray  # int32
    cat: np.ndarray
    amount: np.ndarray
    margin: np.ndarray
    disc: np.ndarray
    chan: np.ndarray

    def revenue(self, n: int) -> np.ndarray:
        """Net revenue per customer of a chunk of ``n`` customers."""
        return np.bincount(self.cust, weights=self.amount, minlength=n)


def _day_weights(pl: Planted) -> tuple[np.ndarray, np.ndarray]:
    """Daily purchase-rate seasonality (mean 1) and its cumulative sum (length days + 1)."""
    sm = np.array([1.0, 0.9, 0.95, 0.95, 1.0, 1.15, 0.95, 0.95, 0.95, 1.0, 1.4, 1.2])
    wday = np.array([sm[(pl.start + dt.timedelta(days=i)).month - 1] for i in range(0, pl.days, 1)])
    wday /= wday.mean()
    return wday, np.concatenate([[0.0], np.cumsum(wday)])


def draw_transactions(pl: Planted, co: Cohort, sv: SurveyEvents, deals: Deals,
                      rng: np.random.Generator) -> Purchases:
    """Purchases (seasonal Poisson process until the churn time, x1.08 after joining the programme), the
    planted 90-day repeat windows, categories, amounts, margins, discounts, channels, the planted category
    sequence and refunds."""
    n, D, S, T = co.n, pl.days, co.S, co.T
    member, J = co.member, co.J
    _, Lam = _day_weights(pl)
    rate = P["rate_per_day_median"] * np.exp(P["rate_sigma"] * co.z_act)
    rate = rate * np.where(member, P["member_rate_multiplier"], 1.0)
    Eend = np.minimum(T, D)
    # the first member_join_after_days were drawn with the join decision (plant_programme_join); from then on here
    LS, LE = _lam_at(pl, np.minimum(S + P["member_join_after_days"], Eend).astype(float)), _lam_at(pl, Eend)
    n_tx = rng.poisson(rate * np.maximum(LE - LS, 0))
    t_cust = np.repeat(np.arange(n, dtype=np.int64), n_tx)
    v = LS[t_cust] + rng.random(t_cust.size) * (LE - LS)[t_cust]
    t_day = np.searchsorted(Lam, v, side="right") - 1
    t_day = np.clip(t_day, S[t_cust], D - 1)
    del v
    # thinning: members buy x1.08 only after joining
    keep = ~(member[t_cust] & (t_day < J[t_cust])
             & (rng.random(t_cust.size) > 1 / P["member_rate_multiplier"]))
    t_cust, t_day = t_cust[keep], t_day[keep]
    del keep
    # early purchases made before the churn time
    ek = co.early_v < LE[co.early_cust]
    e_cust = co.early_cust[ek]
    e_day = np.clip(np.searchsorted(Lam, co.early_v[ek], side="right") - 1, S[e_cust], D - 1)
    t_cust, t_day = np.concatenate([e_cust, t_cust]), np.concatenate([e_day, t_day])
    # first purchase on the signup date
    t_cust = np.concatenate([np.arange(n, dtype=np.int64), t_cust])
    t_day = np.concatenate([S, t_day])
    # planted windows: remove purchases of non-repeaters, add one for repeaters without one
    W = P["window_days"]
    rep_flag, wstart = sv.rep_flag, sv.wstart
    drop = np.zeros(t_cust.size, bool)
    add_c, add_d = [], []
    for k in range(2):
        ws = wstart[t_cust, k]
        inw = (t_day > ws) & (t_day <= ws + W)
        fl = rep_flag[t_cust, k]
        drop |= inw & (fl == 0)
        has = np.bincount(t_cust[inw & (fl == 1)], minlength=n)
        need = np.flatnonzero((rep_flag[:, k] == 1) & (has == 0))
        room = np.clip(np.minimum(np.floor(T[need]), D - 1) - wstart[need, k], 1, W)
        add_c.append(need)
        add_d.append(wstart[need, k] + 1 + np.floor(rng.random(need.size) * room).astype(np.int64))
    t_cust = np.concatenate([t_cust[~drop], *add_c])
    t_day = np.concatenate([t_day[~drop], *add_d])
    del drop, ws, inw, fl
    nt = t_cust.size
    # attributes
    pref = rng.choice(K, n, p=P["cat_p"])
    cat = np.where(rng.random(nt) < P["pref_cat_share"], pref[t_cust],
                   rng.choice(K, nt, p=P["cat_p"])).astype(np.int8)
    mu = P["order_median"] * np.exp(P["order_sigma_customer"] * co.z_amt)
    lst = mu[t_cust] * np.asarray(P["cat_price_mult"])[cat] * np.exp(
        rng.normal(0, P["order_sigma_row"], nt))
    lst = np.round(np.maximum(lst, 1.0), 2)
    disc = np.where(rng.random(nt) < deals.p_disc[t_cust],
                    np.round(lst * deals.depth[t_cust] * (0.7 + 0.6 * rng.random(nt)), 2), 0.0)
    amount = np.round(lst - disc, 2)
    mrate = np.asarray(P["cat_margin"])[cat] + rng.normal(0, 0.03, nt)
    margin = np.round(lst * mrate - disc, 2)
    del lst, mrate
    chan = co.perm[t_cust, np.floor(rng.random(nt) * co.n_ch[t_cust]).astype(np.int64)]
    # own generator: every other column keeps its values
    cat = plant_sequence(cat, t_cust, t_day, n, pl.aux_rng(1602, co.chunk))
    # refunds
    rsel = np.flatnonzero(rng.random(nt) < P["refund_share"])
    r_day = t_day[rsel] + rng.integers(1, 31, rsel.size)
    rc = t_cust[rsel]
    okr = r_day <= D - 1
    for k in range(2):
        ws = wstart[rc, k]
        okr &= ~((r_day > ws) & (r_day <= ws + W))
    rsel, r_day = rsel[okr], r_day[okr]
    t_cust = np.concatenate([t_cust, t_cust[rsel]])
    t_day = np.concatenate([t_day, r_day])
    cat = np.concatenate([cat, cat[rsel]])
    amount = np.concatenate([amount, -amount[rsel]])
    margin = np.concatenate([margin, -margin[rsel]])
    disc = np.concatenate([disc, np.zeros(rsel.size)])
    chan = np.concatenate([chan, chan[rsel]])
    order = np.argsort(t_day * (n + 1) + t_cust, kind="stable")
    return Purchases(t_cust[order].astype(np.int32), t_day[order].astype(np.int32), cat[order], amount[order],
                     margin[order], disc[order], chan[order])


def plant_sequence(cat: np.ndarray, t_cust: np.ndarray, t_day: np.ndarray, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Plant the category sequence (TRUTH.json ``category_sequence``).

    Customers whose first purchase (rows ``0..n-1``, one per customer on the signup day) is in category
    ``seq_first`` get their next purchase in another category re-assigned to ``seq_next`` with probability
    ``seq_p``. Rows are ordered per customer by (day, row index), the order the written ``order_id`` keeps.
    Only the category of those rows changes (amounts, margins and every other column keep their values);
    the draw uses its own generator (``Planted.aux_rng(1602, chunk)``).
    """
    a, b, p = P["seq_first"], P["seq_next"], P["seq_p"]
    planted = rng.random(n) < p
    starters = cat[:n] == a
    rows = np.flatnonzero(starters[t_cust] & (cat != a))
    rows = rows[rows >= n]
    if rows.size == 0:
        return cat
    o = np.lexsort((rows, t_day[rows], t_cust[rows]))
    rows = rows[o]
    _, first = np.unique(t_cust[rows], return_index=True)
    nxt = rows[first]
    nxt = nxt[planted[t_cust[nxt]]]
    out = cat.copy()
    out[nxt] = b
    return out


# --------------------------------------------------------------------------- churn reasons
def draw_churn_reasons(pl: Planted, co: Cohort, cx: ComplaintEvents, rng: np.random.Generator) -> np.ndarray:
    """``churn_reason`` index per customer (-1 = not churned): complaint badly handled far more often after an
    unresolved complaint, delivery and service more often for low attitude."""
    churned = co.T < pl.days
    had_unres = cx.u_min < co.T
    reason_w = np.array([0.12, 0.14, 0.04, 0.14, 0.10, 0.12, 0.06, 0.14, 0.09, 0.05])
    reason_unres = reason_w.copy()
    reason_unres[2] = 1.5
    reason_low = reason_w.copy()
    reason_low[[0, 1]] *= 2.5
    reason = np.full(co.n, -1)
    for sel, wv in ((churned & had_unres, reason_unres),
                    (churned & ~had_unres & (co.g < -0.5), reason_low),
                    (churned & ~had_unres & (co.g >= -0.5), reason_w)):
        reason[sel] = rng.choice(10, int(sel.sum()), p=wv / wv.sum())
    return reason


# --------------------------------------------------------------------------- programme: members and points
@dataclasses.dataclass(frozen=True)
class Programme:
    """Level spells and the points ledger of one chunk's members."""

    left: np.ndarray  # per customer: day left the programme (-1 = still a member or never joined)
    lv_cust: np.ndarray
    lv_day: np.ndarray
    lv_level: np.ndarray
    p_cust: np.ndarray
    p_day: np.ndarray
    p_points: np.ndarray
    p_kind: np.ndarray  # 0 earn 1 redeem 2 expire 3 bonus


def draw_programme(pl: Planted, co: Cohort, tx: Purchases, deals: Deals, rng: np.random.Generator) -> Programme:
    """Leaving the programme, quarterly level reviews on trailing 6-month member spend and the FIFO points
    ledger (earn, bonus, redeem, expire; loop over months, vectorised over members)."""
    n, D, mday, J = co.n, pl.days, pl.mday, co.J
    member, churned = co.member, co.T < D
    mem_idx = np.flatnonzero(member)
    nm = mem_idx.size
    mpos = np.full(n, -1)
    mpos[mem_idx] = np.arange(nm)
    left = np.full(n, -1, np.int64)
    lc = member & churned
    left[lc] = np.floor(co.T[lc]).astype(np.int64) + rng.integers(0, 61, int(lc.sum()))
    lo_ = member & ~churned & (rng.random(n) < 0.04)
    left[lo_] = J[lo_] + np.floor(rng.random(int(lo_.sum())) * (D - 1 - J[lo_])).astype(np.int64)
    left[left > D - 1] = -1
    left_eff = np.where(left >= 0, left, D + 10)
    t_cust, t_day, amount = tx.cust, tx.day, tx.amount
    tmonth = np.searchsorted(mday, t_day, side="right") - 1
    in_mem = member[t_cust] & (t_day >= J[t_cust]) & (t_day < left_eff[t_cust])
    spend = np.bincount(mpos[t_cust[in_mem]] * MONTHS + tmonth[in_mem], weights=amount[in_mem],
                        minlength=nm * MONTHS).reshape(nm, MONTHS)
    # level history: quarterly reviews on trailing 6-month spend, one step at a time
    thr_lv = np.asarray(P["level_thresholds_6m"])
    lv = np.zeros(nm, np.int64)
    Jm, Lm = J[mem_idx], left_eff[mem_idx]
    lv_c, lv_d, lv_l = [mem_idx], [Jm], [lv.copy()]
    for q in range(3, MONTHS, 3):
        rday = mday[q]
        trail = spend[:, max(0, q - 6):q].sum(axis=1)
        target = np.maximum(np.searchsorted(thr_lv, trail, side="right") - 1, 0)
        act = (Jm < rday) & (Lm > rday)
        new = np.where(act, lv + np.sign(target - lv), lv)
        ch = new != lv
        lv_c.append(mem_idx[ch])
        lv_d.append(np.full(int(ch.sum()), rday))
        lv_l.append(new[ch])
        lv = new
    lv_c, lv_d, lv_l = np.concatenate(lv_c), np.concatenate(lv_d), np.concatenate(lv_l)
    o = np.lexsort((lv_d, lv_c))
    lv_c, lv_d, lv_l = lv_c[o], lv_d[o], lv_l[o]
    # points ledger (loop over months, vectorised over members)
    E = np.zeros((nm, MONTHS), np.int64)  # remaining points by earning month (FIFO)
    earn = np.floor(np.maximum(spend, 0)).astype(np.int64)
    deal_m = deals.deal[mem_idx]
    pc_, pd_, pp_, pk_ = [], [], [], []  # customer, day, points, kind(0 earn 1 redeem 2 expire 3 bonus)

    def emit(sel: np.ndarray, day: np.ndarray, pts: np.ndarray, kind: int) -> None:
        pc_.append(mem_idx[sel])
        pd_.append(day[sel] if np.ndim(day) else np.full(int(sel.sum()), day))
        pp_.append(pts[sel])
        pk_.append(np.full(int(sel.sum()), kind, np.int8))

    exp_m = P["points_expire_months"]
    for m in range(MONTHS):
        ms, me = mday[m], mday[m + 1] - 1
        k = m - exp_m - 1
        if k >= 0:
            ex = E[:, k]
            emit(ex > 0, ms, -ex, 2)
            E[:, k] = 0
        bal = E.sum(axis=1)
        rday = ms + rng.integers(1, 28, nm)
        pr = np.where(deal_m, 2 * P["redeem_p"], P["redeem_p"])
        red = ((bal >= P["redeem_min_balance"]) & (rng.random(nm) < pr) & (Jm < ms)
               & (Lm > rday))
        amt = np.where(red, np.floor(bal * (0.3 + 0.7 * rng.random(nm)) / 100) * 100, 0).astype(
            np.int64)
        red &= amt > 0
        emit(red, rday, -amt, 1)
        cs = np.cumsum(E[:, : m + 1], axis=1)
        cs = np.maximum(cs - amt[:, None], 0)
        E[:, : m + 1] = np.diff(cs, axis=1, prepend=0)
        bday = np.maximum(ms + 14, Jm)
        jb = (Jm >= ms) & (Jm <= me)
        rb = (rng.random(nm) < P["bonus_p"]) & (Jm <= me) & (Lm > np.minimum(bday, me))
        bpts = np.where(jb, P["join_bonus"], 0) + np.where(rb, 50 * rng.integers(1, 11, nm), 0)
        bsel = (bpts > 0) & (bday <= me) & (Lm > bday)
        emit(bsel, np.minimum(bday, me), bpts, 3)
        E[:, m] += np.where(bsel, bpts, 0)
        es = earn[:, m] > 0
        emit(es, me, earn[:, m], 0)
        E[:, m] += earn[:, m]
    p_c, p_d = np.concatenate(pc_), np.concatenate(pd_).astype(np.int64)
    p_p, p_k = np.concatenate(pp_), np.concatenate(pk_)
    o = np.lexsort((p_d, p_c))
    return Programme(left, lv_c, lv_d, lv_l, p_c[o], p_d[o], p_p[o], p_k[o])


# --------------------------------------------------------------------------- personal data and traits
@dataclasses.dataclass(frozen=True)
class Pii:
    """Ids, names, contacts, birth year, gender and the planted trait columns of one chunk."""

    cid: pa.Array
    name: pa.Array
    email: pa.Array
    phone: pa.Array
    birth: np.ndarray
    gender: np.ndarray
    traits: dict[str, np.ndarray]


def draw_pii(pl: Planted, co: Cohort, rng: np.random.Generator) -> Pii:
    """Customer ids, Chinese names (汉字 for zh, pinyin otherwise), e-mails, mobiles, birth year, gender, and
    the planted trait segments (own generator)."""
    n = co.n
    wcust = max(6, len(str(pl.customers)))
    cid = _ids("C", n, wcust, co.offset)
    sn = rng.integers(0, len(_SURNAMES), n)
    gn = rng.integers(0, len(_GIVEN), n)
    sn_zh = pa.array([s[0] for s in _SURNAMES])
    sn_py = pa.array([s[1] for s in _SURNAMES])
    gn_zh = pa.array([s[0] for s in _GIVEN])
    gn_py = pa.array([s[1] for s in _GIVEN])
    snp = sn_py.take(pa.array(sn))
    gnp = gn_py.take(pa.array(gn))
    if pl.lang == "zh":
        name = pc.binary_join_element_wise(sn_zh.take(pa.array(sn)), gn_zh.take(pa.array(gn)), "")
    else:
        name = pc.binary_join_element_wise(snp, gnp, " ")
    num = pc.cast(pa.array(rng.integers(1, 9999, n)), pa.string())
    local = pc.utf8_lower(pc.binary_join_element_wise(snp, gnp, num, ""))
    dom = pa.array(_DOMAINS).take(pa.array(rng.integers(0, len(_DOMAINS), n)))
    email = pc.binary_join_element_wise(local, dom, "@")
    phone_n = (np.asarray(_MOBILE_PREFIX)[rng.integers(0, len(_MOBILE_PREFIX), n)] * 10**8
               + rng.integers(0, 10**8, n))
    phone = pc.cast(pa.array(phone_n), pa.string())
    birth = rng.integers(1955, 2006, n)
    gender = rng.choice(2, n, p=[0.54, 0.46])
    traits = plant_trait_segments(pl, co, birth)
    return Pii(cid, name, email, phone, birth, gender, traits)


# --------------------------------------------------------------------------- tables (each adds its realised checks)
def customers_table(pl: Planted, co: Cohort, reason: np.ndarray, pii: Pii) -> pa.Table:
    """The ``customers`` table; tallies churn shares by channels and customer-months."""
    L, D, T = pl.labels, pl.days, co.T
    churned = T < D
    single, multi = co.n_ch == 1, co.n_ch > 1
    pl.tally.add(n=co.n, churned=int(churned.sum()), single=int(single.sum()),
                 churned_single=int(churned[single].sum()), multi=int(multi.sum()),
                 churned_multi=int(churned[multi].sum()),
                 cm_days=np.maximum(np.minimum(T, D) - co.S, 0).sum())
    return pa.table({
        "customer_id": pii.cid,
        "signup_date": _date(co.S, pl.base),
        "segment": _labels(L["segment"], co.seg),
        "region": _labels(L["region"], co.region),
        "channel": _labels(L["acq"], co.acq),
        "acquisition_cost": pa.array(co.acq_cost, pa.float64()),
        "birth_year": pa.array(pii.birth, pa.int64()),
        "gender": _labels(L["gender"], pii.gender),
        "income": pa.array(pii.traits["income"], pa.float64()),
        "occupation": _labels(_TRAIT_L[pl.lang]["occupation"], pii.traits["occupation"]),
        "household_size": pa.array(pii.traits["household_size"], pa.int64()),
        "churn_reason": _labels(L["reason"], np.maximum(reason, 0), mask=reason < 0),
        "churned_at": _churned_at(T, D, pl.base),
        "name": pii.name, "email": pii.email, "phone": pii.phone,
    })


def transactions_table(pl: Planted, co: Cohort, tx: Purchases, pii: Pii, first_id: int) -> pa.Table:
    """The ``transactions`` table (``order_id`` numbered from ``first_id + 1``); tallies value checks
    (refund share, margin rate, profit x relationship segments, top-20% share on the first chunk) and the
    realised category sequence."""
    n, nt = co.n, tx.cust.size
    t_cust, t_day, amount, margin = tx.cust, tx.day, tx.amount, tx.margin
    pos = amount > 0
    rev = tx.revenue(n)
    prof = np.bincount(t_cust, weights=margin, minlength=n) - co.acq_cost
    srt = np.sort(rev)[::-1]
    last_buy = np.full(n, -1)
    np.maximum.at(last_buy, t_cust[pos], t_day[pos])
    long_term = (last_buy - co.S) >= 365
    profitable = prof > 0
    seg4 = np.array([(profitable & long_term).sum(), (profitable & ~long_term).sum(),
                     (~profitable & long_term).sum(), (~profitable & ~long_term).sum()])
    pl.tally.first(top20=srt[: int(round(0.2 * n))].sum() / srt.sum())
    pl.tally.add(nt=nt, refund_rows=int((~pos).sum()), margin_sum=margin.sum(), amount_sum=amount.sum(),
                 seg4=seg4)
    tally_sequence(pl, t_cust, tx.cat, amount, n)
    L = pl.labels
    return pa.table({
        "order_id": _ids("O", nt, max(9, len(str(60 * pl.customers))), first_id),
        "customer_id": pii.cid.take(pa.array(t_cust)),
        "date": _date(t_day, pl.base),
        "amount": pa.array(amount, pa.float64()),
        "margin": pa.array(margin, pa.float64()),
        "channel": _labels(L["txch"], tx.chan),
        "product_category": _labels(L["cat"], tx.cat),
        "discount": pa.array(tx.disc, pa.float64()),
    })


def tally_sequence(pl: Planted, t_cust: np.ndarray, cat: np.ndarray, amount: np.ndarray, n: int) -> None:
    """Realised category sequence (rows in written order = order_id order): first and second category."""
    pos = np.flatnonzero(amount > 0)
    c, k = t_cust[pos], cat[pos]
    o = np.argsort(c, kind="stable")
    c, k = c[o], k[o]
    starts = np.r_[0, np.flatnonzero(np.diff(c)) + 1]
    first = np.full(n, -1)
    first[c[starts]] = k[starts]
    other = k != first[c]
    second = np.full(n, -1)
    idx = np.flatnonzero(other)
    cc, fi = np.unique(c[idx], return_index=True)
    second[cc] = k[idx[fi]]
    a, b = P["seq_first"], P["seq_next"]
    two = second >= 0
    sa = two & (first == a)
    rest = two & (first != a) & (first != b)
    pl.tally.add(seq_two=int(two.sum()), seq_first=int(sa.sum()), seq_first_next=int((second[sa] == b).sum()),
                 seq_other=int(rest.sum()), seq_other_next=int((second[rest] == b).sum()))


def surveys_table(pl: Planted, co: Cohort, sv: SurveyEvents, deals: Deals, pii: Pii, first_id: int,
                  rng: np.random.Generator) -> pa.Table:
    """The ``surveys`` table (kept responses sorted by date; anonymous answers, comments); tallies the
    thresholds, the four cases, the expectation groups' churn and (first chunk) the drivers' Shapley R^2."""
    keep_r, r_cust, sat = sv.keep, sv.cust, sv.sat
    ks = np.flatnonzero(keep_r)
    o = np.lexsort((r_cust[ks], sv.day[ks]))
    ks = ks[o]
    ns = ks.size
    anon = rng.random(ns) < P["anonymous_share"]
    weakest = np.argmin(sv.ratings[ks] + rng.random((ns, 5)) * 0.5, axis=1)
    cidx = np.where(sat[ks] == 5, 5, weakest) * 2 + rng.integers(0, 2, ns)
    flat_comments = [c for pair in _COMMENTS[pl.lang] for c in pair]
    cmiss = rng.random(ns) < P["comment_missing_share"]
    cols: dict[str, Any] = {
        "response_id": _ids("R", ns, max(7, len(str(pl.customers))), first_id),
        "customer_id": pc.if_else(pa.array(anon), pa.nulls(ns, pa.string()),
                                  pii.cid.take(pa.array(r_cust[ks]))),
        "date": _date(sv.day[ks], pl.base),
        "satisfaction": pa.array(sat[ks].astype(np.int64)),
        "repurchase_intent": pa.array(sv.intent[ks].astype(np.int64)),
        "recommend": pa.array(sv.recommend[ks].astype(np.int64)),
        "expectation": pa.array(sv.expct[ks].astype(np.int64)),
    }
    for k, d in enumerate(DRIVERS):
        cols[d] = pa.array(sv.ratings[ks, k].astype(np.int64))
    cols["comment"] = _labels(flat_comments, cidx, mask=cmiss)
    # realised checks: planted identified responses by satisfaction level
    pl_ident = np.zeros(sat.size, bool)
    pl_ident[ks[~anon]] = True
    pl_ident &= sv.planted
    ih, rep = sv.int_high, sv.repeat
    lv = [pl_ident & (sat == s) for s in range(1, 6)]
    pl.tally.add(obs_n=np.array([m.sum() for m in lv]), obs_int=np.array([ih[m].sum() for m in lv]),
                 obs_rep=np.array([rep[m].sum() for m in lv]),
                 obs_hi_n=np.array([(m & ih).sum() for m in lv]), obs_hi_rep=np.array([rep[m & ih].sum() for m in lv]),
                 obs_lo_n=np.array([(m & ~ih).sum() for m in lv]), obs_lo_rep=np.array([rep[m & ~ih].sum() for m in lv]),
                 conv_n=int((pl_ident & ih).sum()), conv_rep=int(rep[pl_ident & ih].sum()))
    fp_id = sv.first & sv.planted
    satis, dis = sat >= 4, sat <= 2
    si = deals.self_int[r_cust]
    is_con = co.contract[r_cust]
    pl.tally.add(fp=int(fp_id.sum()), c_trust=int((fp_id & satis & rep & ~si).sum()),
                 c_self=int((fp_id & satis & rep & si).sum()), c_sat_not=int((fp_id & satis & ~rep).sum()),
                 c_dis_not=int((fp_id & dis & ~rep).sum()), c_dis_loyal=int((fp_id & dis & rep).sum()),
                 c_neutral=int((fp_id & (sat == 3)).sum()), c_dis=int((fp_id & dis).sum()),
                 c_dis_loyal_con=int((fp_id & dis & rep & is_con).sum()))
    churned = co.T < pl.days
    eg = [sv.first & (sv.egrp == k) for k in range(3)]
    att = np.exp(np.log(P["hr_attitude_per_sd"]) * co.g[r_cust])  # attitude's hazard factor at the answer
    pl.tally.add(egr_n=np.array([m.sum() for m in eg]), egr_churned=np.array([churned[r_cust[m]].sum() for m in eg]),
                 egr_att=np.array([att[m].sum() for m in eg]))
    if "shapley" not in pl.tally:
        pl.tally.first(shapley=_shapley_r2(sv.ratings[keep_r].astype(float), sat[keep_r].astype(float)))
    return pa.table(cols)


_SEVERITY_P = np.array([[.5, .35, .15], [.35, .4, .25], [.4, .4, .2], [.3, .45, .25], [.4, .4, .2],
                        [.55, .35, .1]])


def complaints_table(pl: Planted, co: Cohort, cx: ComplaintEvents, pii: Pii, first_id: int,
                     rng: np.random.Generator) -> pa.Table:
    """The ``complaints`` table (complaints before the churn time, sorted by opening time; severity, channel,
    texts with planted personal data, resolution); tallies monthly counts, handlers, open and unresolved
    shares, and churn of complainers by resolution."""
    L, n = pl.labels, co.n
    ck = cx.day < co.T[cx.cust]  # complaints after the (final) churn time are not written
    kc = np.flatnonzero(ck)
    kc = kc[np.argsort(cx.opened[kc], kind="stable")]
    nk = kc.size
    c_cat = cx.cat
    usev = rng.random(nk)
    csev = _SEVERITY_P[c_cat[kc]].cumsum(axis=1)
    sev = (usev[:, None] > csev).sum(axis=1)
    cch = rng.choice(5, nk, p=P["cch_p"])
    tmpl = [c for pair in _COMPLAINTS[pl.lang] for c in pair]
    text = _labels(tmpl, c_cat[kc] * 2 + rng.integers(0, 2, nk))
    extra = rng.choice(4, nk, p=[0.04, 0.04, 0.03, 0.89])
    pre_e, pre_p, bold, stop = _SUFFIX[pl.lang]
    cc = pa.array(cx.cust[kc])
    add = pc.if_else(pa.array(extra == 0), pc.binary_join_element_wise(pre_e, pii.email.take(cc), stop, ""),
                     pc.if_else(pa.array(extra == 1),
                                pc.binary_join_element_wise(pre_p, pii.phone.take(cc), stop, ""),
                                pc.if_else(pa.array(extra == 2), pa.scalar(bold), pa.scalar(""))))
    text = pc.binary_join_element_wise(text, add, "")
    base_s = pl.base * 86400
    c_open = cx.is_open[kc]
    ures = cx.unresolved[kc]
    table = pa.table({
        "complaint_id": _ids("K", nk, max(7, len(str(pl.customers))), first_id),
        "customer_id": pii.cid.take(cc),
        "opened_at": _ts(cx.opened[kc] + base_s),
        "first_response_at": _ts(np.minimum(cx.first_resp[kc], cx.closed[kc]) + base_s, mask=cx.no_resp[kc]),
        "closed_at": _ts(cx.closed[kc] + base_s, mask=c_open),
        "status": _labels(["open", "closed"], (~c_open).astype(np.int64)),
        "category": _labels(L["ccat"], c_cat[kc]),
        "channel": _labels(L["cch"], cch),
        "severity": _labels(["low", "medium", "high"], sev),
        "handler": _labels(L["handler"], cx.handler[kc]),
        "resolution": _labels(L["resolution"], rng.integers(0, 5, nk), mask=ures),
        "text": text,
    })
    comp_counts = np.zeros((MONTHS, K), np.int64)
    np.add.at(comp_counts, (np.searchsorted(pl.mday, cx.day[kc], side="right") - 1, c_cat[kc]), 1)
    churned = co.T < pl.days
    had_unres = cx.u_min < co.T
    complained = np.bincount(cx.cust[ck], minlength=n) > 0
    unres_obs = np.bincount(cx.cust[ck & cx.unresolved], minlength=n) > 0
    res_all = ~unres_obs & complained
    pl.tally.add(nk=nk, comp_counts=comp_counts, hcount=np.bincount(cx.handler[kc], minlength=12),
                 c_open=int(c_open.sum()), c_unres=int(ures.sum()), text_extra=np.bincount(extra, minlength=4),
                 had_unres=int(had_unres.sum()), churned_had_unres=int(churned[had_unres].sum()),
                 no_unres=int((~had_unres).sum()), churned_no_unres=int(churned[~had_unres].sum()),
                 unres_obs=int(unres_obs.sum()), churned_unres_obs=int(churned[unres_obs].sum()),
                 res_all=int(res_all.sum()), churned_res_all=int(churned[res_all].sum()))
    return table


def members_table(pl: Planted, co: Cohort, prog: Programme, tx: Purchases, pii: Pii) -> pa.Table:
    """The ``members`` table (one row per level spell); tallies the naive members-vs-others gap."""
    member, churned = co.member, co.T < pl.days
    rev = tx.revenue(co.n)
    nonm = ~member
    pl.tally.add(member=int(member.sum()), mem_rev=rev[member].sum(), churned_member=int(churned[member].sum()),
                 nonm=int(nonm.sum()), nonm_rev=rev[nonm].sum(), churned_nonm=int(churned[nonm].sum()))
    lvl_left = prog.left[prog.lv_cust]
    return pa.table({
        "customer_id": pii.cid.take(pa.array(prog.lv_cust)),
        "joined_at": _date(co.J[prog.lv_cust], pl.base),
        "level": _labels(pl.labels["level"], prog.lv_level),
        "level_changed_at": _date(prog.lv_day, pl.base),
        "left_at": _date(np.maximum(lvl_left, 0), pl.base, mask=lvl_left < 0),
    })


def points_table(pl: Planted, prog: Programme, pii: Pii) -> pa.Table:
    """The ``points`` ledger."""
    return pa.table({
        "customer_id": pii.cid.take(pa.array(prog.p_cust)),
        "date": _date(prog.p_day, pl.base),
        "points": pa.array(prog.p_points, pa.int64()),
        "kind": _labels(["earn", "redeem", "expire", "bonus"], prog.p_kind),
    })


def generate_chunk(pl: Planted, chunk: int, offset: int, n: int, ids: dict[str, int]) -> dict[str, pa.Table]:
    """All tables' rows for customers ``offset + 1 .. offset + n`` (``ids``: rows written so far per table,
    for numbering; updated)."""
    rng = pl.rng(chunk)
    co = draw_customers(pl, rng, chunk, offset, n)
    cx = plant_complaints(pl, co, rng)
    sv = plant_surveys(pl, co, rng)
    deals = plant_deals(pl, co, sv, rng)
    tx = draw_transactions(pl, co, sv, deals, rng)
    reason = draw_churn_reasons(pl, co, cx, rng)
    prog = draw_programme(pl, co, tx, deals, rng)
    pii = draw_pii(pl, co, rng)
    tabs = {"customers": customers_table(pl, co, reason, pii),
            "transactions": transactions_table(pl, co, tx, pii, ids.get("transactions", 0)),
            "surveys": surveys_table(pl, co, sv, deals, pii, ids.get("surveys", 0), rng),
            "complaints": complaints_table(pl, co, cx, pii, ids.get("complaints", 0), rng),
            "members": members_table(pl, co, prog, tx, pii),
            "points": points_table(pl, prog, pii)}
    for k, v in tabs.items():
        ids[k] = ids.get(k, 0) + v.num_rows
    return tabs


# --------------------------------------------------------------------------- main
def generate_sample(out_dir: str | Path, customers: int = 20000, seed: int = 42, lang: str = "en",
                    fmt: str = "parquet", end: Any = None, chunk_size: int = CHUNK_SIZE) -> SampleResult:
    """Generate the synthetic CRM dataset into ``out_dir``, ``chunk_size`` customers at a time.

    Parameters
    ----------
    out_dir
        Output folder (created).
    customers
        Number of customers (>= 100).
    seed
        Random seed; same seed, size and chunk size give byte-identical files.
    lang
        ``"en"`` or ``"zh"`` labels.
    fmt
        ``"parquet"`` or ``"csv"``.
    end
        Last month of the 24-month window (``"YYYY-MM"`` or a date; ``None`` = the month before today).
    chunk_size
        Customers per chunk; peak memory grows with it, not with ``customers``.

    Returns
    -------
    SampleResult
        Paths, row counts and the TRUTH.json content.
    """
    if lang not in _L:
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    N = int(customers)
    if N < 100:
        raise ValueError("customers must be >= 100")
    if int(chunk_size) < 100:
        raise ValueError("chunk_size must be >= 100")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pl = Planted.make(seed, N, lang, fmt, end, chunk_size)
    writers = _Writers(out, fmt)
    ids: dict[str, int] = {}
    try:
        for chunk, (offset, n) in enumerate(pl.chunks()):
            for name, table in generate_chunk(pl, chunk, offset, n, ids).items():
                writers.write(name, table)
    finally:
        writers.close()
    paths = dict(writers.paths)
    rows = {name: ids[name] for name in TABLES}
    truth = finalise_truth(pl, rows)
    pros = _prospects(seed, N, pl.end.year, lang)
    pth = out / f"prospects.{fmt}"
    _write(pros.pop("table"), pth, fmt)
    paths["prospects"] = pth
    truth["trait_segments"]["prospects"] = pros
    tp = out / "TRUTH.json"
    tp.write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["truth"] = tp
    cfg = out / "workbench.toml"
    cfg.write_text(_toml(lang, fmt, N), encoding="utf-8")
    paths["config"] = cfg
    return SampleResult(out_dir=out, paths=paths, rows=rows, truth=truth)


# --------------------------------------------------------------------------- TRUTH.json
def finalise_truth(pl: Planted, rows: dict[str, int]) -> dict[str, Any]:
    """TRUTH.json content from the parameters and the tally of realised checks (sums over chunks)."""
    tl, L, N = pl.tally, pl.labels, pl.customers
    W = P["window_days"]
    nchunks = len(pl.chunks())
    obs = {}
    for i, s in enumerate(range(1, 6)):
        n = int(tl["obs_n"][i])
        obs[str(s)] = {
            "n": n,
            "intent_top2": _r(tl["obs_int"][i] / n) if n else None,
            "repeat_90d": _r(tl["obs_rep"][i] / n) if n else None,
            "conversion_intent_to_repeat": _r(tl["obs_hi_rep"][i] / tl["obs_hi_n"][i]) if tl["obs_hi_n"][i] else None,
            "repeat_if_low_intent": _r(tl["obs_lo_rep"][i] / tl["obs_lo_n"][i]) if tl["obs_lo_n"][i] else None,
        }
    n_fp = max(int(tl["fp"]), 1)
    cases = {
        "definition": "first survey of each customer with complete 90-day follow-up; satisfied = "
                      "satisfaction >= 4, dissatisfied = satisfaction <= 2 (3 = neutral, in no "
                      "case); loyal = >=1 purchase in (d, d+90]; trust vs self-interest by "
                      "discount share of gross spend (self-interest ~ 0.55 x 15-35% deals, "
                      "trust ~ 0.03 x 5-15%)",
        "satisfied_loyal_trust": _r(tl["c_trust"] / n_fp),
        "satisfied_loyal_self_interest": _r(tl["c_self"] / n_fp),
        "satisfied_not_loyal": _r(tl["c_sat_not"] / n_fp),
        "dissatisfied_not_loyal": _r(tl["c_dis_not"] / n_fp),
        "dissatisfied_loyal": _r(tl["c_dis_loyal"] / n_fp),
        "neutral": _r(tl["c_neutral"] / n_fp),
        "dissatisfied_not_loyal_share_of_dissatisfied": _r(tl["c_dis_not"] / max(tl["c_dis"], 1)),
        "contract_share_of_dissatisfied_loyal": _r(tl["c_dis_loyal_con"] / max(tl["c_dis_loyal"], 1)),
        "self_interest_share_of_satisfied_loyal": P["self_interest_share"],
        "contract_repeat_probability": P["contract_repeat_p"],
    }
    shap = tl["shapley"]
    order_r2 = [DRIVERS[i] for i in np.argsort(-shap)]
    egr_churn = {nmk: _r(tl["egr_churned"][k] / tl["egr_n"][k]) if tl["egr_n"][k] else None
                 for k, nmk in enumerate(("below", "met", "above"))}
    att_mean = tl["egr_att"] / np.maximum(tl["egr_n"], 1)
    with_attitude = {nmk: _r(P["hr_expectation"][nmk] * att_mean[k] / att_mean[1])
                     if tl["egr_n"][k] and tl["egr_n"][1] else None for k, nmk in ((0, "below"), (2, "above"))}
    nk, nt = int(tl["nk"]), int(tl["nt"])
    comp_counts, hcount, extra = tl["comp_counts"], tl["hcount"], tl["text_extra"]
    seg4 = dict(zip(("true_friends", "butterflies", "barnacles", "strangers"), (int(x) for x in tl["seg4"]),
                    strict=True))
    return {
        "generator": {"module": "workbench.sample", "version": 2, "seed": pl.seed, "customers": N,
                      "lang": pl.lang, "format": pl.fmt,
                      "streaming": {"chunk_size": pl.chunk_size, "chunks": nchunks,
                                    "note": "customers generated chunk by chunk (own random stream per chunk); "
                                            "rows ordered chunk by chunk; realised checks summed over chunks, "
                                            "except value.top20_revenue_share and drivers.r2_* (first chunk)"}},
        "window": {"start": pl.start.isoformat(), "end": pl.end.isoformat(), "months": MONTHS,
                   "month_labels": pl.month_labels},
        "conventions": {
            "purchase": "transactions row with amount > 0; negative amount = refund",
            "repeat_window": "purchase with survey_date < date <= survey_date + 90 days",
            "unresolved_complaint": "complaint with resolution null (closed unresolved or open)",
            "churned": "customer with churn_reason not null (latent churn time in window)",
            "churned_at": "customers.churned_at = day of the latent churn time (floor), null when not "
                          "churned in the window",
            "members_left_at": "customer-level; repeated on every level-spell row",
        },
        "thresholds": {
            "scale": [1, 5], "hinge": "p(s) = base + slope * max(0, s - tau), clipped to [0, 1]",
            "intent": {"tau": P["tau_intent"], "base": P["intent_base"],
                       "slope": P["intent_slope"], "measure": "P(repurchase_intent >= 4 | s)"},
            "behaviour": {"tau": P["tau_behaviour"], "base": P["behaviour_base"],
                          "slope": P["behaviour_slope"], "window_days": W,
                          "measure": "P(>=1 purchase within 90 days after the survey | s), "
                                     "identified respondents with complete follow-up"},
            "expected_by_satisfaction": {str(s): {
                "intent_top2": _r(_hinge(s, P["intent_base"], P["intent_slope"], P["tau_intent"])),
                "repeat_90d": _r(_hinge(s, P["behaviour_base"], P["behaviour_slope"],
                                        P["tau_behaviour"]))} for s in range(1, 6)},
            "observed_by_satisfaction": obs,
        },
        "intent_conversion": {
            "copula_rho": P["copula_rho"],
            "conversion_by_satisfaction": {s: obs[s]["conversion_intent_to_repeat"] for s in obs},
            "overall": tl.ratio("conv_rep", "conv_n"),
        },
        "four_cases": cases,
        "drivers": {
            "names": list(DRIVERS), "true_weights": P["driver_weights"],
            "dominant": "service_level",
            "model": "satisfaction = cut((sum_k w_k*(rating_k-3) + N(0, sat_noise_sd) - sat_center)"
                     " / sat_scale, sat_cuts); "
                     "ratings = cut(0.75*f + 0.661*e_k) with f = 0.8*g + 0.6*eta",
            "latent_driver_correlation": _r(P["driver_loading"] ** 2),
            "sat_noise_sd": P["sat_noise_sd"], "sat_cuts": P["sat_cuts"],
            "sat_center": P["sat_center"], "sat_scale": P["sat_scale"],
            "r2_share_in_sample": {DRIVERS[i]: _r(shap[i] / shap.sum()) for i in range(5)},
            "r2_total_in_sample": _r(shap.sum()),
            "r2_order": order_r2,
        },
        "expectation": {
            "scale": "1 much worse than expected, 3 as expected, 5 much better",
            "groups": {"below": [1, 2], "met": [3], "above": [4, 5]},
            "churn_hazard_multiplier_after_survey": P["hr_expectation"],
            "recommend_model": "round(5 + 1.6*(s-3) + 0.7*(expectation-3) + N(0, 1.4)) in 0..10",
            "observed_churn_share_by_group": egr_churn,
        },
        "value": {
            "top20_revenue_share": _r(tl["top20"]),
            "margin_rate_by_category": dict(zip(L["cat"], P["cat_margin"], strict=True)),
            "price_multiplier_by_category": dict(zip(L["cat"], P["cat_price_mult"], strict=True)),
            "refund_row_share": _r(tl["refund_rows"] / nt),
            "overall_margin_rate": _r(tl["margin_sum"] / tl["amount_sum"]),
            "profit_segments": {
                "definition": "profit = sum(margin) - acquisition_cost > 0; long-term = last "
                              "purchase - signup_date >= 365 days",
                "counts": seg4},
            "rate_per_day_median": P["rate_per_day_median"], "rate_sigma": P["rate_sigma"],
            "order_median": P["order_median"], "order_sigma_customer": P["order_sigma_customer"],
            "transactions_per_customer": _r(nt / N, 2),
        },
        "complaints": {
            "rate_per_customer_month": P["complaint_rate"],
            "observed_rate_per_customer_month": _r(nk / max(tl["cm_days"] / 30.44, 1)),
            "seasonality_by_calendar_month": {str(k): v for k, v in P["seasonality"].items()},
            "rising_category": L["ccat"][P["rising_category"]],
            "rising_intensity": f"x(1 + {P['rising_total_growth']} * month_index / 23)",
            "spike_category": L["ccat"][P["spike_category"]],
            "spike_month": pl.month_labels[P["spike_month_index"]],
            "spike_multiplier": P["spike_multiplier"],
            "monthly_counts_by_category": {L["ccat"][k]: comp_counts[:, k].tolist()
                                           for k in range(K)},
            "handlers": {L["handler"][i]: {
                "median_response_hours": P["handler_resp_h"][i],
                "median_resolution_hours": P["handler_res_h"][i],
                "p_unresolved": P["handler_unresolved"][i], "n": int(hcount[i])}
                for i in range(12)},
            "small_n_handlers": [L["handler"][i] for i in (9, 10, 11)],
            "hours_distribution": {"response_sigma_log": P["resp_sigma"],
                                   "resolution_sigma_log": P["res_sigma"]},
            "stalled_share": P["stalled_share"], "open_share": _r(tl["c_open"] / nk if nk else 0.0),
            "unresolved_share": _r(tl["c_unres"] / nk) if nk else None,
            "text_with_email": int(extra[0]), "text_with_mobile": int(extra[1]),
            "text_with_html_b": int(extra[2]),
        },
        "churn": {
            "model": "piecewise-exponential churn time, proportional hazards: baseline hazard from the fixed "
                     "traits, multipliers compound from each event's day on (joining, first unresolved "
                     "complaint, first survey), computed exactly",
            "base_annual_churn": P["churn_base_annual"],
            "hazard_ratios": {"per_sd_activity": P["hr_activity_per_sd"],
                              "per_sd_attitude": P["hr_attitude_per_sd"],
                              "per_extra_channel": P["hr_per_extra_channel"],
                              "contract_segment": P["hr_contract"],
                              "after_unresolved_complaint": P["hr_unresolved_complaint"],
                              "after_joining_programme": P["hr_member"],
                              "after_survey_by_expectation": P["hr_expectation"]},
            "expectation_ratio_with_attitude": {
                **with_attitude,
                "definition": "after_survey_by_expectation (vs met) times the ratio of the groups' mean attitude "
                              "hazard factor hr_attitude_per_sd ** g among first-survey respondents at the "
                              "answer: what a model without attitude estimates (expectation follows satisfaction, "
                              "which follows attitude, so the groups differ in attitude, a confounder)"},
            "channels": "n_channels = 1 + Binomial(3, logistic(-1 + z_activity)); busier customers"
                        " use more channels (confounder)",
            "churned_share": _r(tl["churned"] / N),
            "naive_churn_single_channel": _r(tl["churned_single"] / tl["single"]),
            "naive_churn_multi_channel": _r(tl["churned_multi"] / tl["multi"]),
            "churn_with_unresolved_complaint": tl.ratio("churned_had_unres", "had_unres"),
            "churn_without_unresolved_complaint": _r(tl["churned_no_unres"] / tl["no_unres"]),
            "churn_complainers_unresolved": tl.ratio("churned_unres_obs", "unres_obs"),
            "churn_complainers_all_resolved": tl.ratio("churned_res_all", "res_all"),
        },
        "loyalty_programme": {
            "join_model": f"wants to join: logit = {P['member_logit_intercept']} + {P['member_logit_activity']}"
                          " * log(1 + purchases after the signup purchase in the signup calendar month); join day = signup + "
                          f"{P['member_join_after_days']} + Exponential(mean {P['member_wait_mean_days']:g} days), "
                          "drawn independently of the churn time; a member when the join day comes before the "
                          "churn day and the window end",
            "selection": "on observed data only (each customer's own purchases in their signup month); attitude "
                         f"and latent activity do not enter the join model, so adjusting for the purchases of the "
                         f"first {P['member_join_after_days']} days identifies the churn effect, and the signup "
                         "month lies outside the members' before/after purchase comparison",
            "churn_model": "hazard x churn_hazard_ratio from the join day on (piecewise-exponential); non-member "
                            "time before joining is at risk like any other",
            "member_share": _r(tl["member"] / N),
            "true_effect": {"purchase_rate_multiplier": P["member_rate_multiplier"],
                            "churn_hazard_ratio": P["hr_member"]},
            "naive_gap": {"revenue_ratio_members_vs_others": _r(
                (tl["mem_rev"] / tl["member"] if tl["member"] else 0.0)
                / max(tl["nonm_rev"] / tl["nonm"], 1e-9)),
                          "churn_members": _r(tl["churned_member"] / tl["member"]) if tl["member"] else _r(np.nan),
                          "churn_others": _r(tl["churned_nonm"] / tl["nonm"])},
            "levels": L["level"],
            "level_rule": "quarterly review (months 3, 6, ...): target level by trailing 6-month "
                          "member spend thresholds; move one step toward target",
            "level_thresholds_6m": P["level_thresholds_6m"],
            "points_rules": {"earn": "1 point per CNY of net monthly member spend, month end",
                             "bonus": f"join {P['join_bonus']}, plus p={P['bonus_p']}/month "
                                      "50-500 (reviews, referrals), day 15",
                             "redeem": "days 2-28, p=0.12/month (x2 deal-prone) if balance >= "
                                       "500, 30-100% of balance in 100s, FIFO",
                             "expire": "unredeemed points of month k expire on day 1 of month "
                                       "k+13"},
        },
        "volumes": dict(rows),
        "category_sequence": {
            "rule": "customers whose first purchase is in `first` buy `next` as their second category (the first "
                    "purchase in a category other than the first one, in order_id order) more often than others",
            "first": L["cat"][P["seq_first"]], "next": L["cat"][P["seq_next"]], "planted_probability": P["seq_p"],
            "generator": "next purchase in another category re-assigned to `next` with probability "
                         "planted_probability (numpy default_rng([seed, 1602]) per chunk, see workbench.planted)",
            "customers_two_categories": int(tl["seq_two"]),
            "observed_share_next_after_first": tl.ratio("seq_first_next", "seq_first"),
            "n_first": int(tl["seq_first"]),
            "observed_share_next_after_other_firsts": tl.ratio("seq_other_next", "seq_other"),
            "n_other_firsts": int(tl["seq_other"]),
        },
        "trait_segments": trait_truth(pl),
    }


# --------------------------------------------------------------------------- trait segments (issue 16)
def _trait_draw(rng: np.random.Generator, seg_of: np.ndarray) -> dict[str, np.ndarray]:
    """Income, occupation and household size given the planted trait segment ``seg_of``."""
    n = seg_of.size
    med = np.array([s["income"] for s in TRAIT_SEGMENTS], float)[seg_of]
    income = np.round(med * np.exp(rng.normal(0, TRAIT_INCOME_SIGMA, n)), -2)
    dom = np.array([s["occupation"] for s in TRAIT_SEGMENTS])[seg_of]
    other = rng.integers(0, 5, n)
    other = np.where(other >= dom, other + 1, other)  # any occupation but the dominant one
    occupation = np.where(rng.random(n) < TRAIT_OCCUPATION_P, dom, other)
    lo = np.array([s["household"][0] for s in TRAIT_SEGMENTS])[seg_of]
    hi = np.array([s["household"][1] for s in TRAIT_SEGMENTS])[seg_of]
    household = lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)
    return {"income": income, "occupation": occupation.astype(np.int64), "household_size": household}


def _trait_segment_of(rng: np.random.Generator, age: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """Planted trait segment from age (and a value tilt toward affluent professionals): softmax of
    ``-((age - centre) / spread)^2 / 2 + tilt_k * tilt``."""
    score = np.column_stack([-0.5 * ((age - s["age"]) / s["age_sd"]) ** 2 + s["tilt"] * tilt
                             for s in TRAIT_SEGMENTS])
    p = np.exp(score - score.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(age.size)[:, None]
    return np.minimum((u > p.cumsum(axis=1)).sum(axis=1), len(TRAIT_SEGMENTS) - 1)




def plant_trait_segments(pl: Planted, co: Cohort, birth: np.ndarray) -> dict[str, np.ndarray]:
    """Planted trait segments (issue 16): a latent segment per customer drawn from age (existing
    ``birth_year``) with affluent professionals tilted toward a high spend level (``z_amt``), then
    ``income``, ``occupation`` and ``household_size`` drawn from it. Its own generator
    (``aux_rng(1601, chunk)``), so every other column keeps its values; tallies shares and labels."""
    rng = pl.aux_rng(1601, co.chunk)
    age = (pl.end.year - birth).astype(float)
    seg_of = _trait_segment_of(rng, age, co.z_amt)
    out = _trait_draw(rng, seg_of)
    ks = range(len(TRAIT_SEGMENTS))
    pl.tally.add(trait_n=np.array([(seg_of == k).sum() for k in ks]),
                 trait_zsum=np.array([co.z_amt[seg_of == k].sum() for k in ks]),
                 trait_cp=int(np.isin(co.seg, (2, 3)).sum()))
    pl.tally.extend(trait_labels="".join(map(str, seg_of.tolist())))
    return out


def trait_truth(pl: Planted) -> dict[str, Any]:
    """TRUTH.json ``trait_segments`` (without ``prospects``, added by :func:`generate_sample`)."""
    tl, n = pl.tally, pl.customers
    names = [s["name"] for s in TRAIT_SEGMENTS]
    cnt, zs = tl["trait_n"], tl["trait_zsum"]
    return {
        "model": "segment ~ softmax(-((age - centre)/spread)^2/2 + tilt * z_spend_level); income lognormal "
                 f"(sigma {TRAIT_INCOME_SIGMA}) around the segment median; occupation = the segment's dominant one "
                 f"with p {TRAIT_OCCUPATION_P}, else any other; household size uniform in the segment's range",
        "segments": {s["name"]: {"age_centre": s["age"], "age_sd": s["age_sd"], "spend_tilt": s["tilt"],
                                 "income_median": s["income"],
                                 "occupation": _TRAIT_L[pl.lang]["occupation"][s["occupation"]],
                                 "household_size": list(s["household"]),
                                 "share": _r(float(cnt[k] / n))} for k, s in enumerate(TRAIT_SEGMENTS)},
        "names": names,
        "labels": "".join(tl["trait_labels"]),
        "labels_note": "one digit per customer in customer_id order: index into names",
        "columns": ["birth_year", "income", "occupation", "household_size"],
        "mean_order_level_by_segment": {names[k]: _r(float(zs[k] / cnt[k])) if cnt[k] else None
                                        for k in range(len(names))},
        "contract_or_premium_share": _r(float(tl["trait_cp"] / n)) if n else None,
    }


def _prospects(seed: int, customers: int, year: int, lang: str) -> dict[str, Any]:
    """An optional ``prospects`` table (issue 16): people not yet customers, with the same traits as
    ``customers`` (one per ten customers), drawn by their own generator (``[seed, 1602, 1]``)."""
    rng = np.random.default_rng([seed, 1602, 1])
    n = max(customers // 10, 10)
    birth = rng.integers(1955, 2006, n)
    gender = rng.choice(2, n, p=[0.54, 0.46])
    region = rng.choice(7, n, p=P["region_p"])
    tilt = rng.standard_normal(n)
    seg_of = _trait_segment_of(rng, (year - birth).astype(float), tilt)
    tr = _trait_draw(rng, seg_of)
    L = _L[lang]
    table = pa.table({
        "prospect_id": _ids("P", n, max(6, len(str(n)))),
        "region": _labels(L["region"], region),
        "birth_year": pa.array(birth, pa.int64()),
        "gender": _labels(L["gender"], gender),
        "income": pa.array(tr["income"], pa.float64()),
        "occupation": _labels(_TRAIT_L[lang]["occupation"], tr["occupation"]),
        "household_size": pa.array(tr["household_size"], pa.int64()),
    })
    return {"table": table, "n": n, "labels": "".join(map(str, seg_of.tolist())),
            "note": "no segment, channel or purchases: prospects have only the traits known before a first purchase"}


def _toml(lang: str, fmt: str, customers: int = 20_000) -> str:
    name = "示例零售（合成数据）" if lang == "zh" else "Sample retail (synthetic)"
    lines = ["[dataset]", f'name = "{name}"', 'currency = "CNY"', "margin_rate = 0.3", ""]
    for t in TABLES:
        lines += [f"[tables.{t}]", f'source = "{t}.{fmt}"']
        if t == "surveys":
            lines += ["drivers = [" + ", ".join(f'"{d}"' for d in DRIVERS) + "]", "",
                      "[tables.surveys.scales]", "satisfaction = [1, 5]",
                      "repurchase_intent = [1, 5]", "recommend = [0, 10]", "expectation = [1, 5]"]
        lines.append("")
    lines += ["[tables.prospects]", f'source = "prospects.{fmt}"', ""]
    lines += TARGETS_TOML
    # the programme's own rules and budget (what its owner knows; analyses read them from here)
    scale = customers / 20_000
    lines += ["[programme]", "point_value = 0.01", f"expiry_months = {P['points_expire_months'] + 1}",
              "level_order = [" + ", ".join(f'"{lv}"' for lv in _L[lang]["level"]) + "]", "",
              "[programme.level_thresholds]"]
    lines += [f'"{lv}" = {thr:g}' for lv, thr in zip(_L[lang]["level"][1:], P["level_thresholds_6m"][1:], strict=True)]
    lines += ["", "[programme.costs]"]
    lines += [f"{k} = {round(v * scale)}" for k, v in P["programme_costs"].items()]
    lines.append("")
    return "\n".join(lines)


#: ``[targets]`` of the sample's workbench.toml (KPI key → target; the pack summary colours its tiles by them).
#: The planted rising category and the planted spike (8 months before the last month, inside the KPIs'
#: 12-month window for the default report period, the last month) make the two complaint KPIs miss theirs.
TARGETS_TOML = ["# targets for the pack summary's KPI tiles (red/amber/green)", "[targets]",
                'complaint_rate = "<= 0.02"', 'rising_complaint_categories = "<= 0"', 'complaint_spikes = "<= 0"',
                'satisfaction_top_box = ">= 0.6"', ""]
