"""Segments by traits, look-alike prospects and up-sell gaps (DOMAIN.md §3; issue 16 items 1, 2, 4).

Segmentation (细分, by traits) is not grading (分级, by value): segments are found from who customers
are and how they buy, then laid side by side with the value pyramid's layers.

Pipeline (each step a tested function; notebook ``06_segments_crosssell`` wires them)
---------------------------------------------------------------------------------------
1. :func:`customer_frame` — one row per customer signed up by the analysis date: traits
   (``age`` from ``birth_year``, ``income``, ``household_size``; ``segment``, ``region``, ``channel``,
   ``gender``, ``occupation`` and any configured ``segments = [...]`` column), behaviour over the value
   window (revenue, purchases, categories, last purchase) and what is known at the first purchase
   (date, category, channel, revenue in the first N months) — one SQL query in the engine.
2. :func:`design` — the mixed-data distance, a **stated choice**: numeric traits are standardised
   (income on the log scale; a missing value takes the mean, i.e. 0 after scaling); each categorical
   trait is one-hot coded with every column scaled by 1/√2, so two customers in different categories
   are 1 apart in squared distance — the same as one standard deviation on a numeric trait (rare levels
   under 1% pooled as "other", missing as its own level). Behaviour (log revenue, log purchases,
   categories) enters with weight ``behaviour_weight`` (default 0.5 per variable): segments are led by
   traits, with how people buy as a tie-breaker.
3. :func:`choose_k` — k-means (Lloyd, k-means++ with several starts; numpy) on a seeded sample of
   customers for each k: mean silhouette (on up to 2,000 of them) and stability, the adjusted Rand
   index between the sample's clustering and clusterings of bootstrap resamples (every sample customer
   assigned by the resample's centroids). The rule: among k whose median stability is at least
   ``STABLE_ARI`` (0.75), the highest silhouette; when none is that stable, the most stable k.
   All customers are then assigned to the nearest centroid (chunks, so a million fit in memory).
4. :func:`lookalike_model` — "becomes a key customer within N months of the first purchase" (key =
   the pyramid's top two layers, :mod:`workbench.pyramid`: revenue in the first N months at least the
   lowest 12-month revenue among today's key customers × N / 12), fitted by an L2 logistic regression
   on traits known at signup and on the first purchase's category and channel (never its amount, which
   would make "one large first order" the answer where most buy once). Time split: customers whose
   first purchase came earliest (70%) train, the latest 30% test. Holdout AUC with a DeLong
   interval, lift and calibration by decile, Brier score. Refitted on every labelled customer, it
   scores recent first-time customers (outcome not yet known) and — on traits only — the optional
   ``prospects`` table; the top deciles are an exportable list.
5. :func:`upsell_gaps` — each active ordinary customer's 12-month spend against the median of
   look-alike customers: the same trait segment and the same fifth of the look-alike score. The gap
   in money, and the customers whose peers' spend would put them near the key layer (they join the
   pyramid's upgrade candidates). Associational: what similar customers spend, not a forecast.

Notebook sections (the result shape): :func:`segment_base` computes everything once per filter
choice; :func:`k_choice`, :func:`profiles`, :func:`segments_vs_tiers`, :func:`lookalikes`,
:func:`prospect_scores`, :func:`upsell`, :func:`method_notes` each return a
:class:`~workbench.results.Result` (or a :class:`~workbench.results.Skipped` saying why)::

    base = nb.data(seg.segment_base, nb.analysis_date, seg.options(seed=seed))
    nb.show(lambda: seg.profiles(base()))
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import results, viz  # noqa: F401  (viz registers the workbench plotly template)
from workbench.i18n import fmt_date, fmt_int, fmt_money, fmt_num, fmt_p, fmt_pct, t
from workbench.results import KPI, Figure, Finding, Result, Skipped, Table

__all__ = [
    "NUMERIC_TRAITS", "CATEGORICAL_TRAITS", "STABLE_ARI", "MIN_CUSTOMERS",
    "Options", "options", "customer_frame", "Design", "design", "KChoice", "choose_k", "assign",
    "LookAlikeModel", "lookalike_model", "adjusted_rand", "silhouette", "auc", "auc_ci", "decile_table", "upsell_gaps",
    "Unsupported", "SegmentBase", "segment_base",
    "KChoiceResult", "k_choice", "Profiles", "profiles", "SegmentsVsTiers", "segments_vs_tiers",
    "LookAlikes", "lookalikes", "ProspectScores", "prospect_scores", "UpSell", "upsell",
    "MethodNotes", "method_notes",
]

NUMERIC_TRAITS: tuple[str, ...] = ("age", "income", "household_size")
CATEGORICAL_TRAITS: tuple[str, ...] = ("segment", "region", "channel", "gender", "occupation")
BEHAVIOUR: tuple[str, ...] = ("log_revenue", "log_purchases", "categories")
STABLE_ARI = 0.75  # a k whose bootstrap resamples agree less than this is not stable
MIN_CUSTOMERS = 50  # fewer customers than this are not segmented
MIN_CLASS = 20  # fewest key / not-key customers in the training and test parts of the look-alike model
RARE = 0.01  # categorical levels rarer than this are pooled as "other"
OTHER, MISSING = "(other)", "(not recorded)"
CHUNK = 200_000
MAX_FIT = 200_000  # the look-alike model is fitted on at most this many customers (a seeded random subset)


def single_threaded(func: Any) -> Any:
    """Run ``func`` with one BLAS thread: the matrices here are small, and a threaded BLAS on a busy
    machine (more runnable threads than cores) is many times slower than one thread."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return run


class Unsupported(results.Unsupported):
    """The data cannot support a section; ``key`` is the full ``segments.why.*`` translation key."""


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Options:
    """Notebook parameters, checked (hashable, so ``nb.data`` memoises :func:`segment_base` on them)."""

    months: int = 12
    k_min: int = 2
    k_max: int = 8
    n_boot: int = 10
    sample_size: int = 5_000
    behaviour_weight: float = 0.5
    traits: tuple[str, ...] = ()
    lookalike_months: int = 12
    top_deciles: int = 2
    seed: int = 42


def options(*, months: Any = 12, k_range: Any = "2-8", n_boot: Any = 10, sample_size: Any = 5_000,
            behaviour_weight: Any = 0.5, traits: Any = "", lookalike_months: Any = 12, top_deciles: Any = 2,
            seed: Any = 42) -> Options:
    """:class:`Options` from notebook parameters (``k_range`` "2-8"; ``traits`` "" = every trait the data has,
    or a comma-separated list of trait names)."""
    lo, _, hi = str(k_range).replace(" ", "").partition("-")
    k_min, k_max = int(lo), int(hi or lo)
    if not 2 <= k_min <= k_max <= 20:
        raise ValueError(f"k_range must be like '2-8' with 2 <= low <= high <= 20, got {k_range!r}")
    names = tuple(x.strip() for x in (traits if isinstance(traits, (list, tuple)) else str(traits).split(","))
                  if str(x).strip())
    return Options(months=int(months), k_min=k_min, k_max=k_max, n_boot=int(n_boot), sample_size=int(sample_size),
                   behaviour_weight=float(behaviour_weight), traits=names, lookalike_months=int(lookalike_months),
                   top_deciles=int(top_deciles), seed=int(seed))


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _add_months(day: dt.date, months: int) -> dt.date:
    import calendar

    y, m = divmod(day.month - 1 + months, 12)
    y, m = day.year + y, m + 1
    return dt.date(y, m, min(day.day, calendar.monthrange(y, m)[1]))


# --------------------------------------------------------------------------- 1. data
def _trait_columns(ds: Any, table: str = "customers") -> tuple[list[str], list[str]]:
    cols = ds.columns(table)
    num = [c for c in ("birth_year", "income", "household_size") if c in cols]
    extra = ds.segment_columns(table) if table == "customers" else []
    cat = list(dict.fromkeys([c for c in CATEGORICAL_TRAITS if c in cols] + [c for c in extra if c in cols]))
    return num, cat


def customer_frame(ds: Any, end: Any, months: int = 12, first_months: int = 12) -> pd.DataFrame:
    """One row per customer signed up by ``end``: traits, behaviour in the window and the first purchase.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (str): the trait columns the data has (``age`` = year of ``end`` −
        ``birth_year``), ``revenue`` (net, window of ``months`` months ending at ``end``), ``purchases``
        (rows with amount > 0 in the window), ``categories`` (distinct, NaN without product categories),
        ``first_purchase``, ``last_purchase``, ``first_category``, ``first_channel``, ``first_revenue``
        (net revenue in the ``first_months`` months from the first purchase, up to ``end``).
        ``attrs``: ``start``, ``end``, ``numeric``, ``categorical`` (trait names), ``currency``.
    """
    from workbench.engine import MissingDataError

    ds.require("customers", "customer_id", reason="segments")
    end = _date(end)
    start = _add_months(end, -int(months))
    num, cat = _trait_columns(ds)
    has_tx = ds.has("transactions", "customer_id", "date", "amount")
    sel = ["c.customer_id"] + [f"c.{quote(c)}" for c in num + cat]
    signup = "c.signup_date" if ds.has("customers", "signup_date") else "NULL"
    if has_tx:
        cat_col = "product_category" if ds.has("transactions", "product_category") else "NULL"
        ch_col = "channel" if ds.has("transactions", "channel") else "NULL"
        q = f"""
        WITH t AS (SELECT customer_id, CAST(date AS DATE) AS d, amount, {cat_col} AS pc, {ch_col} AS ch
                   FROM transactions WHERE CAST(date AS DATE) <= ?),
        -- same-day ties broken by category, then channel: the engine's row order must not decide
        f AS (SELECT customer_id, min(d) AS first_purchase, max(d) AS last_purchase,
                     arg_min(pc, (d, pc, ch)) AS first_category, arg_min(ch, (d, pc, ch)) AS first_channel
              FROM t WHERE amount > 0 GROUP BY customer_id),
        w AS (SELECT t.customer_id,
                     -- rounded: a parallel float sum differs in the last bit between runs, which moved the
                     -- key-customer bar (a quantile of these sums) and who reaches it
                     round(sum(amount) FILTER (WHERE d > ?), 6) AS revenue,
                     count(*) FILTER (WHERE d > ? AND amount > 0) AS purchases,
                     count(DISTINCT pc) FILTER (WHERE d > ? AND amount > 0) AS categories,
                     round(sum(amount) FILTER (WHERE d < f.first_purchase + INTERVAL {int(first_months)} MONTH),
                           6) AS first_revenue
              FROM t LEFT JOIN f USING (customer_id) GROUP BY t.customer_id)
        SELECT {', '.join(sel)}, f.first_purchase, f.last_purchase, f.first_category, f.first_channel,
               w.revenue, w.purchases, w.categories, w.first_revenue
        FROM customers c LEFT JOIN f USING (customer_id) LEFT JOIN w USING (customer_id)
        WHERE coalesce({signup}, f.first_purchase) <= ? OR coalesce({signup}, f.first_purchase) IS NULL
        """
        df = ds.sql(q, [end, start, start, start, end])
    else:
        df = ds.sql(f"SELECT {', '.join(sel)} FROM customers c")
        for col in ("first_purchase", "last_purchase", "first_category", "first_channel", "revenue", "purchases",
                    "categories", "first_revenue"):
            df[col] = np.nan
    if df.empty:
        raise MissingDataError("customers", (), f"no customers signed up by {end}")
    df["customer_id"] = df["customer_id"].astype(str)
    df = df.set_index("customer_id").sort_index()  # engine row order varies between runs; seeded draws need a fixed one
    if "birth_year" in df:
        df["age"] = end.year - pd.to_numeric(df.pop("birth_year"), errors="coerce")
    for col in ("revenue", "purchases", "first_revenue"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0.0)
    df["categories"] = pd.to_numeric(df["categories"], errors="coerce")
    if not ds.has("transactions", "product_category"):
        df["categories"] = np.nan
    for col in ("first_purchase", "last_purchase"):
        df[col] = pd.to_datetime(df[col])
    for col in cat + ["first_category", "first_channel"]:
        df[col] = df[col].astype("str")  # Arrow-backed text: a fifth of the memory of Python objects at 10M customers
    numeric = [("age" if c == "birth_year" else c) for c in num]
    df.attrs.update({"start": start.isoformat(), "end": end.isoformat(), "months": int(months),
                     "numeric": numeric, "categorical": cat, "has_transactions": has_tx,
                     "currency": getattr(ds, "currency", "CNY"), "first_months": int(first_months)})
    return df


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- 2. design
@dataclass(frozen=True)
class Design:
    """A fitted mixed-data coding: apply it with :meth:`transform` to any frame with the same columns."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    behaviour: tuple[str, ...]
    means: dict[str, float]
    sds: dict[str, float]
    levels: dict[str, tuple[str, ...]]
    behaviour_weight: float
    columns: tuple[str, ...]

    def _numeric_values(self, df: pd.DataFrame, col: str) -> np.ndarray:
        if col == "log_revenue":
            return np.log1p(np.maximum(df["revenue"].to_numpy(dtype=float), 0))
        if col == "log_purchases":
            return np.log1p(df["purchases"].to_numpy(dtype=float))
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        return np.log1p(np.maximum(v, 0)) if col == "income" else v

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """The design matrix (float32) of ``df``."""
        blocks = []
        for col in self.numeric + self.behaviour:
            v = (self._numeric_values(df, col) - self.means[col]) / self.sds[col]
            v = np.where(np.isfinite(v), v, 0.0)
            blocks.append((v * (self.behaviour_weight if col in self.behaviour else 1.0))[:, None])
        w = 1 / math.sqrt(2)
        for col in self.categorical:
            levels = self.levels[col]
            codes = _level_codes(df[col], levels)
            block = np.zeros((len(df), len(levels)), dtype=np.float32)
            ok = codes >= 0  # a value never seen in fitting (and no "other" level) gets no column
            block[np.flatnonzero(ok), codes[ok]] = w
            blocks.append(block)
        if not blocks:
            return np.zeros((len(df), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)


def _level_codes(values: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``levels`` (missing → the "not recorded" level; unseen → "other", else -1)."""
    miss = values.isna().to_numpy()
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        values = values.astype(str)
    codes = pd.Categorical(values, categories=[lv for lv in levels if lv not in (MISSING, OTHER)]).codes
    index = {lv: i for i, lv in enumerate(levels)}
    named = np.array([index[lv] for lv in levels if lv not in (MISSING, OTHER)] + [-1], dtype=np.int64)
    out = named[codes]  # code -1 → the appended -1
    out = np.where(out < 0, index.get(OTHER, -1), out)
    return np.where(miss, index.get(MISSING, index.get(OTHER, -1)), out).astype(np.int64)


def design(df: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], behaviour: bool = True,
           behaviour_weight: float = 0.5) -> Design:
    """Fit the coding of :func:`customer_frame` columns (see the module notes for the choice)."""
    means, sds, levels, cols = {}, {}, {}, []
    beh = tuple(b for b in BEHAVIOUR if behaviour and (b != "categories" or df["categories"].notna().any()))
    probe = Design(tuple(numeric), tuple(categorical), beh, {}, {}, {}, behaviour_weight, ())
    keep_num = []
    for col in tuple(numeric) + beh:
        v = probe._numeric_values(df, col)
        v = v[np.isfinite(v)]
        sd = float(v.std()) if v.size > 1 else 0.0
        if sd <= 1e-12:
            continue  # a constant says nothing about who is alike
        means[col], sds[col] = float(v.mean()), sd
        keep_num.append(col)
        cols.append(col)
    keep_cat = []
    for col in categorical:
        counts = df[col].value_counts(dropna=False)
        share = pd.Series(counts.to_numpy() / max(len(df), 1),
                          index=[MISSING if pd.isna(k) else str(k) for k in counts.index]).groupby(level=0).sum()
        kept = [lv for lv in share.index if share[lv] >= RARE]
        if len(share) > len(kept):
            kept.append(OTHER)
        if len(kept) < 2:
            continue
        levels[col] = tuple(sorted(kept))
        keep_cat.append(col)
        cols += [f"{col}={lv}" for lv in levels[col]]
    return Design(tuple(c for c in keep_num if c in numeric), tuple(keep_cat),
                  tuple(c for c in keep_num if c in beh), means, sds, levels, float(behaviour_weight), tuple(cols))


# --------------------------------------------------------------------------- 3. k
@dataclass(frozen=True)
class KChoice:
    """Silhouette and bootstrap stability per k, the chosen k and its fitted centroids."""

    table: pd.DataFrame  # k, silhouette, stability (median ARI), stability_lo, stability_hi, inertia
    k: int
    centroids: np.ndarray = field(repr=False)
    sample_labels: np.ndarray = field(repr=False)
    n_sample: int
    rule: str  # "stable" or "most_stable"


@dataclass(frozen=True)
class _Fit:
    cluster_centers_: np.ndarray
    labels_: np.ndarray
    inertia_: float


def _lloyd(X: np.ndarray, c: np.ndarray, max_iter: int) -> _Fit:
    xx = (X * X).sum(axis=1)
    for _ in range(max_iter):
        d = (c * c).sum(axis=1)[None, :] - 2 * X @ c.T
        lab = np.argmin(d, axis=1)
        counts = np.bincount(lab, minlength=len(c))
        onehot = np.zeros((len(c), len(X)))
        onehot[lab, np.arange(len(X))] = 1.0
        sums = onehot @ X
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
        if np.allclose(new, c, atol=1e-6):
            c = new
            break
        c = new
    d = (c * c).sum(axis=1)[None, :] - 2 * X @ c.T
    lab = np.argmin(d, axis=1)
    inertia = float(np.maximum(xx + d[np.arange(len(X)), lab], 0).sum())
    return _Fit(c, lab, inertia)


def _kmeans(X: np.ndarray, k: int, seed: int, n_init: int = 3, max_iter: int = 100) -> _Fit:
    """k-means (Lloyd) with k-means++ starts, best of ``n_init`` by inertia; float64 numpy (small samples:
    faster and more predictable than a threaded library call on a busy machine)."""
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng([seed, k, 1601])
    best = None
    xx = (X * X).sum(axis=1)
    for _ in range(n_init):
        centres = [X[rng.integers(len(X))]]
        d2 = np.maximum(xx - 2 * X @ centres[0] + centres[0] @ centres[0], 0)
        for _j in range(1, k):
            total = d2.sum()
            i = int(rng.choice(len(X), p=d2 / total)) if total > 0 else int(rng.integers(len(X)))
            centres.append(X[i])
            d2 = np.minimum(d2, np.maximum(xx - 2 * X @ X[i] + X[i] @ X[i], 0))
        fit = _lloyd(X, np.array(centres), max_iter)
        if best is None or fit.inertia_ < best.inertia_:
            best = fit
    return best


def silhouette(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette width (Euclidean), computed directly from the pairwise distances."""
    X = np.asarray(X, dtype=np.float64)
    ks = np.unique(labels)
    if len(ks) < 2:
        return float("nan")
    xx = (X * X).sum(axis=1)
    D = np.sqrt(np.maximum(xx[:, None] + xx[None, :] - 2 * X @ X.T, 0))
    M = np.stack([D[:, labels == k].sum(axis=1) for k in ks], axis=1)
    sizes = np.array([(labels == k).sum() for k in ks])
    own = np.searchsorted(ks, labels)
    a = M[np.arange(len(X)), own] / np.maximum(sizes[own] - 1, 1)
    other = M / sizes[None, :]
    other[np.arange(len(X)), own] = np.inf
    b = other.min(axis=1)
    s = np.where(sizes[own] > 1, (b - a) / np.maximum(a, b), 0.0)
    return float(np.nanmean(s))


def assign(X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid for every row (squared Euclidean), in chunks."""
    out = np.empty(len(X), dtype=np.int64)
    c = centroids.astype(np.float32)
    cc = (c * c).sum(axis=1)
    for lo in range(0, len(X), CHUNK):
        x = X[lo:lo + CHUNK]
        out[lo:lo + CHUNK] = np.argmin(cc[None, :] - 2 * x @ c.T, axis=1)
    return out


@single_threaded
def choose_k(X: np.ndarray, ks: Sequence[int] = range(2, 9), n_boot: int = 10, seed: int = 42,
             boot_size: int = 3000) -> KChoice:
    """k by silhouette and bootstrap stability (adjusted Rand index); see the module notes for the rule.

    Each k: k-means (3 starts) on ``X``; ``n_boot`` resamples of ``min(len(X), boot_size)`` rows drawn with
    replacement (an m-out-of-n bootstrap, so a resample costs the same whatever the sample size) are
    clustered (one k-means++ start each) and every row of ``X`` assigned by the resample's centroids;
    stability = median adjusted Rand index against the full fit (2.5% and 97.5% quantiles kept).
    """
    rng = np.random.default_rng([seed, 16])
    n = len(X)
    sil_idx = rng.choice(n, min(n, 2000), replace=False)
    rows, fits = [], {}
    for k in ks:
        if k >= n:
            break
        km = _kmeans(X, k, seed)
        labels = km.labels_
        fits[k] = km
        sil = silhouette(X[sil_idx], labels[sil_idx])
        aris = []
        for b in range(n_boot):
            idx = rng.integers(0, n, min(n, boot_size))
            kb = _kmeans(X[idx], k, seed + b + 1, n_init=1)
            aris.append(adjusted_rand(labels, assign(X, kb.cluster_centers_)))
        a = np.asarray(aris) if aris else np.array([np.nan])
        rows.append({"k": k, "silhouette": sil, "stability": float(np.median(a)),
                     "stability_lo": float(np.quantile(a, 0.025)), "stability_hi": float(np.quantile(a, 0.975)),
                     "inertia": float(km.inertia_)})
    table = pd.DataFrame(rows)
    if table.empty:
        raise Unsupported("segments.why.too_few", n=n, need=MIN_CUSTOMERS)
    stable = table[table["stability"] >= STABLE_ARI]
    if len(stable) and stable["silhouette"].notna().any():
        k, rule = int(stable.loc[stable["silhouette"].idxmax(), "k"]), "stable"
    else:
        k, rule = int(table.loc[table["stability"].fillna(-1).idxmax(), "k"]), "most_stable"
    km = fits[k]
    return KChoice(table=table, k=k, centroids=km.cluster_centers_, sample_labels=km.labels_, n_sample=n, rule=rule)


# --------------------------------------------------------------------------- 4. look-alikes
def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann-Whitney) formula, ties counted half."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool)
    r = rankdata(np.asarray(score, float))
    n1, n0 = int(y.sum()), int((~y).sum())
    if not n1 or not n0:
        return float("nan")
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_ci(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """DeLong interval of :func:`auc` (DeLong, DeLong & Clarke-Pearson 1988; the midrank algorithm of
    Sun & Xu 2014), clipped to [0, 1]; NaNs when one class has fewer than two members."""
    from scipy.stats import norm, rankdata

    y, score = np.asarray(y, bool), np.asarray(score, float)
    pos, neg = score[y], score[~y]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return (float("nan"), float("nan"))
    r_all = rankdata(np.concatenate([pos, neg]))
    r_pos, r_neg = rankdata(pos), rankdata(neg)
    a = (r_all[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (r_all[:m] - r_pos) / n  # per positive: share of negatives scored below it
    v01 = 1 - (r_all[m:] - r_neg) / m  # per negative: share of positives scored above it
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    z = norm.ppf(0.5 + level / 2)
    return float(max(a - z * se, 0.0)), float(min(a + z * se, 1.0))


def decile_table(y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Lift and calibration by score decile (1 = highest scores): n, positives, rate, mean predicted, lift,
    cumulative capture."""
    y, score = np.asarray(y, float), np.asarray(score, float)
    order = np.argsort(-score, kind="stable")
    dec = np.empty(len(y), dtype=np.int64)
    dec[order] = np.floor(np.arange(len(y)) * 10 / max(len(y), 1)).astype(np.int64) + 1
    frame = pd.DataFrame({"decile": dec, "y": y, "p": score})
    g = frame.groupby("decile").agg(n=("y", "size"), positives=("y", "sum"), rate=("y", "mean"),
                                    predicted=("p", "mean")).reset_index()
    base = y.mean() if len(y) else float("nan")
    g["lift"] = g["rate"] / base if base else np.nan
    g["capture"] = g["positives"].cumsum() / max(y.sum(), 1)
    return g


@dataclass(frozen=True)
class LookAlikeModel:
    """The look-alike model: holdout evidence and scores.

    ``holdout`` (customer-level, never into metrics): ``y``, ``score``, ``score_traits``. ``scores``: every
    customer's trait-only score (for up-sell peers); ``recent``: recent first-time customers with ``score``
    and ``decile``; ``prospects`` likewise (or None).
    """

    months: int
    threshold: float
    n_train: int
    n_test: int
    positives_train: int
    positives_test: int
    split_date: dt.date
    cohort_end: dt.date
    auc: float
    auc_interval: tuple[float, float]
    auc_traits: float
    auc_traits_interval: tuple[float, float]
    brier: float
    brier_base: float
    deciles: pd.DataFrame = field(repr=False)
    holdout: pd.DataFrame = field(repr=False)
    recent: pd.DataFrame = field(repr=False)
    prospects: pd.DataFrame | None = field(repr=False)
    scores: pd.Series = field(repr=False)
    cut_points: np.ndarray = field(repr=False)
    features: tuple[str, ...] = ()
    repeat_share: float = float("nan")


@dataclass(frozen=True)
class _Logit:
    coef: np.ndarray
    intercept: float

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-(np.asarray(X, float) @ self.coef + self.intercept)))
        return np.column_stack([1 - p, p])


def _fit_logit(X: np.ndarray, y: np.ndarray, seed: int = 0, penalty: float = 1.0, max_iter: int = 30,
               tol: float = 1e-7) -> _Logit:
    """L2-penalised logistic regression (penalty ``penalty/2·|w|²`` on the slopes, not the intercept — the
    same objective as scikit-learn's default ``LogisticRegression(C=1)``), by Newton-Raphson."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    A = np.column_stack([np.ones(len(X)), X])
    w = np.zeros(A.shape[1])
    w[0] = math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6))
    reg = np.full(A.shape[1], penalty)
    reg[0] = 0.0
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-(A @ w)))
        grad = A.T @ (p - y) + reg * w
        H = (A * (p * (1 - p))[:, None]).T @ A + np.diag(reg) + 1e-9 * np.eye(A.shape[1])
        step = np.linalg.solve(H, grad)
        w -= step
        if np.abs(step).max() < tol:
            break
    return _Logit(w[1:], float(w[0]))


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie), from their contingency table."""
    _, ia = np.unique(np.asarray(a), return_inverse=True)
    _, ib = np.unique(np.asarray(b), return_inverse=True)
    n = len(ia)
    na, nb = ia.max() + 1, ib.max() + 1
    cont = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb).astype(float)
    comb = lambda x: (x * (x - 1) / 2).sum()  # noqa: E731
    s_ij, s_a, s_b = comb(cont), comb(cont.sum(axis=1)), comb(cont.sum(axis=0))
    expected = s_a * s_b / (n * (n - 1) / 2) if n > 1 else 0.0
    top = (s_a + s_b) / 2
    return float((s_ij - expected) / (top - expected)) if top != expected else 1.0


def _deciles_by_cuts(score: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Decile 1..10 of ``score`` by the holdout's cut points (descending: 1 = highest)."""
    return (np.searchsorted(-cuts, -score, side="right") + 1).clip(1, 10)


@single_threaded
def lookalike_model(frame: pd.DataFrame, key_threshold: float, months: int = 12, seed: int = 42,
                    prospects: pd.DataFrame | None = None) -> LookAlikeModel:
    """Fit and check the look-alike model (see the module notes).

    Parameters
    ----------
    frame : DataFrame
        :func:`customer_frame` (its ``first_revenue`` covers ``months`` months).
    key_threshold : float
        Lowest 12-month revenue among key customers (pyramid's top two layers); the outcome bar is
        ``key_threshold × months / 12``.
    """
    end = _date(frame.attrs["end"])
    cohort_end = _add_months(end, -int(months))
    fp = frame["first_purchase"]
    labelled = frame[fp.notna() & (fp <= pd.Timestamp(cohort_end))]
    bar = float(key_threshold) * months / 12
    if not np.isfinite(bar) or bar <= 0:
        raise Unsupported("segments.why.no_key")
    if len(labelled) < 2 * MIN_CLASS:
        raise Unsupported("segments.why.lookalike_cohort", n=len(labelled), months=months,
                          date=cohort_end.isoformat())
    y_all = (labelled["first_revenue"].to_numpy(dtype=float) >= bar)
    order = np.argsort(labelled["first_purchase"].to_numpy(), kind="stable")
    n_train = int(round(0.7 * len(labelled)))
    tr, te = order[:n_train], order[n_train:]
    if min(y_all[tr].sum(), (~y_all[tr]).sum()) < MIN_CLASS or min(y_all[te].sum(), (~y_all[te]).sum()) < MIN_CLASS / 2:
        raise Unsupported("segments.why.lookalike_classes", n=len(labelled), pos=int(y_all.sum()), need=MIN_CLASS)
    num, cat = frame.attrs["numeric"], frame.attrs["categorical"]
    first_cat = [c for c in ("first_category", "first_channel") if labelled[c].notna().any()]
    d_full = design(labelled, num, list(cat) + first_cat, behaviour=False)
    if prospects is not None:  # prospects are scored on the traits they have
        num = [c for c in num if c in prospects and prospects[c].notna().any()]
        cat = [c for c in cat if c in prospects and prospects[c].notna().any()]
    d_traits = design(labelled, num, cat, behaviour=False)
    X = d_full.transform(labelled)
    if X.shape[1] == 0:
        raise Unsupported("segments.why.no_traits_lookalike")
    rng = np.random.default_rng([seed, 1603])
    tr_fit = np.sort(rng.choice(tr, MAX_FIT, replace=False)) if len(tr) > MAX_FIT else tr
    m = _fit_logit(X[tr_fit], y_all[tr_fit], seed)
    p_te = m.predict_proba(X[te])[:, 1]
    a = auc(y_all[te], p_te)
    ci = auc_ci(y_all[te], p_te)
    Xt = d_traits.transform(labelled)
    if Xt.shape[1]:
        mt = _fit_logit(Xt[tr_fit], y_all[tr_fit], seed)
        pt_te = mt.predict_proba(Xt[te])[:, 1]
        a_t, ci_t = auc(y_all[te], pt_te), auc_ci(y_all[te], pt_te)
    else:
        mt, pt_te, a_t, ci_t = None, np.full(len(te), y_all[tr].mean()), float("nan"), (float("nan"),) * 2
    deciles = decile_table(y_all[te], p_te)
    cuts = np.sort(p_te)[::-1][np.minimum((np.arange(1, 10) * len(te)) // 10, len(te) - 1)]
    brier = float(np.mean((p_te - y_all[te]) ** 2))
    brier_base = float(np.mean((y_all[tr].mean() - y_all[te]) ** 2))
    holdout = pd.DataFrame({"y": y_all[te], "score": p_te, "score_traits": pt_te}, index=labelled.index[te])
    # refit on every labelled customer, then score
    every = np.sort(rng.choice(len(y_all), MAX_FIT, replace=False)) if len(y_all) > MAX_FIT else slice(None)
    m_all = _fit_logit(X[every], y_all[every], seed)
    recent = frame[fp.notna() & (fp > pd.Timestamp(cohort_end))]
    if len(recent):
        p_r = m_all.predict_proba(d_full.transform(recent))[:, 1]
        rec = pd.DataFrame({"score": p_r, "decile": _deciles_by_cuts(p_r, cuts),
                            "first_purchase": recent["first_purchase"].dt.date, "revenue": recent["first_revenue"]},
                           index=recent.index)
    else:
        rec = pd.DataFrame(columns=["score", "decile", "first_purchase", "revenue"])
    rec.index.name = "customer_id"
    mt_all = _fit_logit(Xt[every], y_all[every], seed) if mt is not None else None
    scores = (pd.Series(mt_all.predict_proba(d_traits.transform(frame))[:, 1], index=frame.index)
              if mt_all is not None else pd.Series(np.nan, index=frame.index))
    pros = None
    if prospects is not None and len(prospects) and mt_all is not None:
        cuts_t = np.sort(pt_te)[::-1][np.minimum((np.arange(1, 10) * len(te)) // 10, len(te) - 1)]
        p_p = mt_all.predict_proba(d_traits.transform(prospects))[:, 1]
        pros = pd.DataFrame({"score": p_p, "decile": _deciles_by_cuts(p_p, cuts_t)}, index=prospects.index)
        pros.index.name = "customer_id"
    buyers = frame[frame["first_purchase"].notna()]
    repeat = float((buyers["purchases"] > 1).mean()) if len(buyers) else float("nan")
    return LookAlikeModel(months=int(months), threshold=bar, n_train=len(tr), n_test=len(te),
                          positives_train=int(y_all[tr].sum()), positives_test=int(y_all[te].sum()),
                          split_date=labelled["first_purchase"].iloc[te[0]].date(), cohort_end=cohort_end, auc=a,
                          auc_interval=ci, auc_traits=a_t, auc_traits_interval=tuple(ci_t), brier=brier,
                          brier_base=brier_base, deciles=deciles, holdout=holdout, recent=rec, prospects=pros,
                          scores=scores, cut_points=cuts, features=d_full.columns, repeat_share=repeat)


# --------------------------------------------------------------------------- 5. up-sell
def upsell_gaps(frame: pd.DataFrame, labels: pd.Series, tiers: pd.Series, scores: pd.Series | None,
                key_threshold: float, near: float = 1.0, min_peers: int = 20) -> pd.DataFrame:
    """Spend gap of active ordinary customers to look-alike peers (see the module notes).

    Returns
    -------
    DataFrame
        Indexed by customer: ``segment``, ``revenue``, ``peer_median``, ``gap`` (≥ 0), ``peers`` (size of the
        peer group), ``upgrade`` (in the layer just below the key layers, and the peers' upper quartile reaches
        ``near`` × the key threshold: a quarter of their look-alikes spend like key customers). Active customers
        (revenue > 0 in the window) outside the key layers only.
    """
    rev = frame["revenue"].astype(float)
    active = rev > 0
    df = pd.DataFrame({"segment": labels.reindex(frame.index), "revenue": rev, "tier": tiers.reindex(frame.index)})
    if scores is not None and scores.notna().any():
        q = scores.reindex(frame.index).rank(method="first", pct=True)
        df["band"] = np.minimum(np.floor(q.fillna(0.5) * 5), 4).astype(int)
    else:
        df["band"] = 0
    a = df[active]
    grp = a.groupby(["segment", "band"], observed=True)["revenue"]
    med, upper, size = grp.transform("median"), grp.transform(lambda v: v.quantile(0.75)), grp.transform("size")
    sgrp = a.groupby("segment", observed=True)["revenue"]
    seg_med, seg_upper, seg_size = sgrp.transform("median"), sgrp.transform(lambda v: v.quantile(0.75)), sgrp.transform("size")
    own = size >= min_peers
    out = a.assign(peer_median=np.where(own, med, seg_med), peer_upper=np.where(own, upper, seg_upper),
                   peers=np.where(own, size, seg_size))
    key_names = set(list(tiers.cat.categories)[:2]) if hasattr(tiers, "cat") else set()
    out = out[~out["tier"].astype(str).isin(key_names)]
    out["gap"] = (out["peer_median"] - out["revenue"]).clip(lower=0)
    third = str(list(tiers.cat.categories)[2]) if hasattr(tiers, "cat") and len(tiers.cat.categories) > 2 else None
    out["upgrade"] = (out["tier"].astype(str) == third) & (out["peer_upper"] >= near * key_threshold)
    out.index.name = "customer_id"
    return out[["segment", "revenue", "peer_median", "gap", "peers", "upgrade"]]


# --------------------------------------------------------------------------- the base
@dataclass(frozen=True, eq=False)
class SegmentBase:
    """What every section reads (computed once by :func:`segment_base`); missing data kept as the reason."""

    opts: Options
    end: dt.date
    currency: str
    frame: pd.DataFrame | None = None
    missing: BaseException | None = None
    design: Design | None = None
    choice: KChoice | None = None
    labels: pd.Series | None = None
    tiers: pd.Series | None = None
    key_threshold: float = float("nan")
    satisfaction: pd.DataFrame | None = None
    prospects: pd.DataFrame | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def need(self) -> None:
        if self.missing is not None:
            raise self.missing

    def money(self, x: Any, lang: str) -> str:
        return fmt_money(x, lang, self.currency)

    @functools.cached_property
    def lookalike(self) -> LookAlikeModel | BaseException:
        try:
            self.need()
            if not self.frame.attrs.get("has_transactions"):
                raise Unsupported("segments.why.no_transactions")
            return lookalike_model(self.frame, self.key_threshold, self.opts.lookalike_months, self.opts.seed,
                                   self.prospects)
        except Exception as exc:  # noqa: BLE001 — kept as the section's reason
            from workbench.engine import MissingDataError

            if isinstance(exc, (Unsupported, MissingDataError)):
                return exc
            raise

    def need_lookalike(self) -> LookAlikeModel:
        got = self.lookalike
        if isinstance(got, BaseException):
            raise got
        return got


def _pyramid_tiers(frame: pd.DataFrame) -> tuple[pd.Series, float]:
    from workbench import pyramid as pyr

    rev = frame["revenue"].astype(float)
    tiers = pyr.assign_tiers(rev)
    key = tiers.isin(list(tiers.cat.categories)[:2])
    thr = float(rev[key].min()) if key.any() else float("nan")
    return tiers, thr


def _satisfaction(ds: Any, end: dt.date) -> pd.DataFrame | None:
    if not ds.has("surveys", "customer_id", "satisfaction", "date"):
        return None
    lo, hi = ds.scale("surveys", "satisfaction")
    df = ds.sql("SELECT customer_id, satisfaction FROM surveys WHERE customer_id IS NOT NULL "
                "AND satisfaction IS NOT NULL AND CAST(date AS DATE) <= ?", [end])
    if df.empty:
        return None
    df["customer_id"] = df["customer_id"].astype(str)
    df["top_box"] = pd.to_numeric(df["satisfaction"], errors="coerce") >= hi
    return df


def _prospect_frame(ds: Any, end: dt.date, frame: pd.DataFrame) -> pd.DataFrame | None:
    if not ds.has("prospects", "prospect_id"):
        return None
    cols = ds.columns("prospects")
    num = [c for c in ("birth_year", "income", "household_size") if c in cols]
    cat = [c for c in frame.attrs["categorical"] if c in cols]
    df = ds.sql(f"SELECT prospect_id, {', '.join(quote(c) for c in num + cat) or 'NULL AS none'} FROM prospects")
    df["prospect_id"] = df["prospect_id"].astype(str)
    df = df.set_index("prospect_id")
    if "birth_year" in df:
        df["age"] = end.year - pd.to_numeric(df.pop("birth_year"), errors="coerce")
    for c in frame.attrs["numeric"]:
        if c not in df:
            df[c] = np.nan
    for c in frame.attrs["categorical"]:
        if c not in df:
            df[c] = None
    return df


@single_threaded
def segment_base(ds: Any, end: Any, opts: Options) -> SegmentBase:
    """Customer frame, coding, k choice, assignment of every customer, pyramid layers (see module notes).

    Nothing raises for missing data: the reason is kept (``missing``) and each section says it.
    """
    import time

    from workbench.engine import MissingDataError

    end = _date(end)
    base = {"opts": opts, "end": end, "currency": getattr(ds, "currency", "CNY")}
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        frame = customer_frame(ds, end, opts.months, opts.lookalike_months)
    except MissingDataError as exc:
        return SegmentBase(**base, missing=exc)
    secs["frame"] = time.perf_counter() - t0
    num, cat = frame.attrs["numeric"], frame.attrs["categorical"]
    if opts.traits:
        unknown = [x for x in opts.traits if x not in num + cat]
        if unknown:
            return SegmentBase(**base, frame=frame, missing=Unsupported(
                "segments.why.unknown_traits", names=", ".join(unknown), have=", ".join(num + cat) or "–"))
        num = [c for c in num if c in opts.traits]
        cat = [c for c in cat if c in opts.traits]
    kept = dict(frame=frame, satisfaction=_satisfaction(ds, end), prospects=_prospect_frame(ds, end, frame))
    if len(frame) < MIN_CUSTOMERS:
        return SegmentBase(**base, **kept, missing=Unsupported("segments.why.too_few", n=len(frame),
                                                               need=MIN_CUSTOMERS))
    has_tx = frame.attrs["has_transactions"] and bool((frame["purchases"] > 0).any())
    d = design(frame, num, cat, behaviour=has_tx, behaviour_weight=opts.behaviour_weight)
    if not d.columns:
        return SegmentBase(**base, **kept, missing=Unsupported("segments.why.no_variation"))
    t0 = time.perf_counter()
    X = d.transform(frame)
    rng = np.random.default_rng([opts.seed, 1601])
    idx = np.sort(rng.choice(len(frame), min(len(frame), opts.sample_size), replace=False))
    try:
        choice = choose_k(X[idx], range(opts.k_min, opts.k_max + 1), opts.n_boot, opts.seed)
    except Unsupported as exc:
        return SegmentBase(**base, **kept, design=d, missing=exc)
    secs["choose_k"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = assign(X, choice.centroids)
    secs["assign"] = time.perf_counter() - t0
    tiers, thr = _pyramid_tiers(frame) if has_tx else (None, float("nan"))
    # name segments S1.. by revenue share, highest first (S1 = most valuable)
    value = pd.Series(frame["revenue"].to_numpy(dtype=float)).groupby(raw).sum()
    order = value.reindex(range(choice.k), fill_value=0.0).sort_values(ascending=False, kind="stable").index
    rename = {int(old): i for i, old in enumerate(order)}
    names = [f"S{i + 1}" for i in range(choice.k)]
    codes = np.vectorize(rename.get)(raw) if len(raw) else raw
    labels = pd.Series(pd.Categorical.from_codes(codes, categories=names), index=frame.index, name="segment")
    choice = KChoice(choice.table, choice.k, choice.centroids[list(order)],
                     np.vectorize(rename.get)(choice.sample_labels), choice.n_sample, choice.rule)
    return SegmentBase(**base, **kept, design=d, choice=choice, labels=labels, tiers=tiers, key_threshold=thr,
                       seconds=secs)


# --------------------------------------------------------------------------- results
def _guard(section: str) -> Any:
    from workbench.engine import MissingDataError

    def wrap(func: Any) -> Any:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Result:
            try:
                return func(*args, **kwargs)
            except (Unsupported, MissingDataError) as exc:
                return Skipped(section, exc)

        run.section = section  # type: ignore[attr-defined]
        return run

    return wrap


def _trait_label(name: str, lang: str) -> str:
    key = f"segments.trait.{name}"
    from workbench.i18n import has as has_text

    return t(key, lang) if has_text(key) else name


def _value_label(column: str, value: Any, lang: str) -> str:
    from workbench.widgets import value_label

    if value in (OTHER, MISSING):
        return t("segments.level.other" if value == OTHER else "segments.level.missing", lang)
    try:
        return str(value_label(column, value, lang))
    except Exception:  # noqa: BLE001 — a label is only cosmetic
        return str(value)


@dataclass(frozen=True, repr=False)
class KChoiceResult(Result):
    """How many segments: silhouette and stability per k."""

    heading: ClassVar[str] = "segments.h.k"
    base: SegmentBase

    def figures(self, lang: str = "en") -> list[Any]:
        tab = self.base.choice.table
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=tab["k"], y=tab["silhouette"], mode="lines+markers",
                                 name=t("segments.col.silhouette", lang)))
        fig.add_trace(go.Scatter(x=tab["k"], y=tab["stability"], mode="lines+markers",
                                 name=t("segments.col.stability", lang),
                                 error_y={"type": "data", "symmetric": False,
                                          "array": (tab["stability_hi"] - tab["stability"]).tolist(),
                                          "arrayminus": (tab["stability"] - tab["stability_lo"]).tolist()}))
        fig.add_vline(x=self.base.choice.k, line_dash="dot")
        fig.add_hline(y=STABLE_ARI, line_dash="dash", line_color="grey")
        fig.update_layout(title=t("segments.fig.k", lang), xaxis_title=t("segments.col.k", lang),
                          yaxis_title=t("segments.axis.score", lang))
        return [fig]

    def findings(self, lang: str = "en") -> list[Finding]:
        c = self.base.choice
        row = c.table.set_index("k").loc[c.k]
        text = t(f"segments.find.k.{c.rule}", lang, k=c.k, sil=fmt_num(row["silhouette"], lang),
                 ari=fmt_num(row["stability"], lang), n=fmt_int(c.n_sample, lang), bar=fmt_num(STABLE_ARI, lang))
        return [Finding("segments_k", text, value=c.k, n=c.n_sample,
                        how=t("segments.how.k", lang, n=fmt_int(c.n_sample, lang), boot=self.base.opts.n_boot))]

    def tables(self, lang: str = "en") -> list[Table]:
        tab = self.base.choice.table.drop(columns=["inertia"]).rename(columns={
            "k": t("segments.col.k", lang), "silhouette": t("segments.col.silhouette", lang),
            "stability": t("segments.col.stability", lang), "stability_lo": t("segments.col.lo", lang),
            "stability_hi": t("segments.col.hi", lang)})
        f = {c: (lambda v: fmt_num(v, lang)) for c in tab.columns[1:]}
        return [Table(tab, f, caption=t("segments.cap.k", lang), appendix=True)]

    def notes(self, lang: str = "en") -> list[str]:
        d = self.base.design
        out = []
        if not d.numeric and not d.categorical:
            out.append(t("segments.note.behaviour_only", lang))
        return out

    def metrics(self) -> dict[str, Any]:
        c = self.base.choice
        return {"segments_k": c.k, "segments_k_rule": c.rule,
                "segments_k_table": c.table.round(4).to_dict(orient="records")}


@_guard("segments.h.k")
def k_choice(base: SegmentBase) -> KChoiceResult:
    """Section "how many segments" of notebook 06."""
    base.need()
    return KChoiceResult(base)


def profile_table(base: SegmentBase) -> pd.DataFrame:
    """Per segment: n, share, revenue, value share, key share (tier mix), lapsed share, top-box satisfaction."""
    f, lab = base.frame, base.labels
    rev = f["revenue"].astype(float)
    g = pd.DataFrame({"segment": lab, "revenue": rev})
    out = g.groupby("segment", observed=False).agg(n=("revenue", "size"), revenue=("revenue", "sum"))
    out["share"] = out["n"] / len(f)
    total = float(rev.sum())
    out["value_share"] = out["revenue"] / total if total else np.nan
    out["mean_revenue"] = out["revenue"] / out["n"].where(out["n"] > 0)
    if base.tiers is not None:
        key = base.tiers.isin(list(base.tiers.cat.categories)[:2])
        out["key_share"] = key.groupby(lab, observed=False).mean()
    bought = f["last_purchase"].notna()
    lapsed = (pd.Timestamp(base.end) - f["last_purchase"]).dt.days > 180
    out["lapsed_share"] = lapsed[bought].groupby(lab[bought], observed=False).mean()
    if base.satisfaction is not None:
        s = base.satisfaction.assign(segment=lab.reindex(base.satisfaction["customer_id"]).to_numpy())
        s = s[s["segment"].notna()]
        out["surveyed"] = s.groupby("segment", observed=False).size().reindex(out.index, fill_value=0)
        out["top_box"] = s.groupby("segment", observed=False)["top_box"].mean()
    return out


def _describe(base: SegmentBase, lang: str) -> dict[str, str]:
    """Plain words per segment: its most distinctive traits (numeric medians far from all, the
    over-represented category)."""
    f, lab, d = base.frame, base.labels, base.design
    out = {}
    for s in lab.cat.categories:
        m = (lab == s).to_numpy()
        parts = []
        if not m.any():
            out[s] = ""
            continue
        zs = []
        for col in d.numeric:
            v = pd.to_numeric(f[col], errors="coerce")
            sd = v.std()
            if sd and np.isfinite(sd):
                zs.append((abs(v[m].mean() - v.mean()) / sd, col, v[m].median()))
        for _z, col, med in sorted(zs, reverse=True)[:2]:
            val = base.money(med, lang) if col == "income" else fmt_num(med, lang, 0)
            parts.append(t("segments.desc.numeric", lang, trait=_trait_label(col, lang), value=val))
        best = None
        for col in d.categorical:
            text = f[col].astype("object").where(f[col].notna(), MISSING).astype(str)
            inside = text[m].value_counts(normalize=True)
            overall = text.value_counts(normalize=True)
            lv = inside.index[0]
            lift = inside.iloc[0] / overall[lv]
            if best is None or lift > best[0]:
                best = (lift, col, lv, inside.iloc[0])
        if best is not None and best[0] > 1.2:
            parts.append(t("segments.desc.category", lang, value=_value_label(best[1], best[2], lang),
                           share=fmt_pct(best[3], lang, 0)))
        if "log_revenue" in d.behaviour:
            r = f["revenue"].astype(float)
            parts.append(t("segments.desc.spend", lang, value=base.money(r[m].median(), lang)))
        out[s] = t("segments.desc.sep", lang).join(parts)
    return out


@dataclass(frozen=True, repr=False)
class Profiles(Result):
    """Who is in each segment, in plain words, with size, value, tier mix, churn and satisfaction."""

    heading: ClassVar[str] = "segments.h.profiles"
    base: SegmentBase
    table: pd.DataFrame

    def findings(self, lang: str = "en") -> list[Finding]:
        tab, b = self.table, self.base
        words = _describe(b, lang)
        out = []
        top = tab.index[0]
        n = len(b.frame)
        if "value_share" in tab and np.isfinite(tab.at[top, "value_share"]):
            out.append(Finding("segments_top_value", t("segments.find.top", lang, seg=top, k=len(tab),
                                                       share=fmt_pct(tab.at[top, "share"], lang),
                                                       value=fmt_pct(tab.at[top, "value_share"], lang),
                                                       n=fmt_int(n, lang)),
                               value=float(tab.at[top, "value_share"]), headline=n >= 30, n=n,
                               action=t("segments.act.top", lang, seg=top),
                               how=t("segments.how.profiles", lang)))
        for s in tab.index:
            row = tab.loc[s]
            extra = []
            if "key_share" in tab and np.isfinite(row.get("key_share", np.nan)):
                extra.append(t("segments.desc.key", lang, share=fmt_pct(row["key_share"], lang, 0)))
            if np.isfinite(row.get("lapsed_share", np.nan)):
                extra.append(t("segments.desc.lapsed", lang, share=fmt_pct(row["lapsed_share"], lang, 0)))
            if "top_box" in tab and row.get("surveyed", 0) >= 10:
                extra.append(t("segments.desc.topbox", lang, share=fmt_pct(row["top_box"], lang, 0),
                               n=fmt_int(row["surveyed"], lang)))
            text = t("segments.find.profile", lang, seg=s, n=fmt_int(row["n"], lang), share=fmt_pct(row["share"], lang),
                     value=fmt_pct(row.get("value_share", np.nan), lang), words=words.get(s, ""),
                     extra=t("segments.desc.sep", lang).join(extra))
            out.append(Finding(f"segment_{s}", text, value=float(row["share"]), n=int(row["n"])))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        tab = self.table.reset_index()
        cols = {"segment": "segments.col.segment", "n": "segments.col.n", "share": "segments.col.share",
                "value_share": "segments.col.value_share", "mean_revenue": "segments.col.mean_revenue",
                "key_share": "segments.col.key_share", "lapsed_share": "segments.col.lapsed_share",
                "surveyed": "segments.col.surveyed", "top_box": "segments.col.top_box"}
        tab = tab[[c for c in cols if c in tab]].rename(columns={c: t(k, lang) for c, k in cols.items()})
        pct = lambda v: fmt_pct(v, lang)  # noqa: E731
        f = {t(cols[c], lang): pct for c in ("share", "value_share", "key_share", "lapsed_share", "top_box")}
        f[t(cols["n"], lang)] = lambda v: fmt_int(v, lang)
        f[t(cols["surveyed"], lang)] = lambda v: fmt_int(v, lang)
        f[t(cols["mean_revenue"], lang)] = lambda v: self.base.money(v, lang)
        return [Table(tab, f), Table(self.trait_table(lang), caption=t("segments.cap.traits", lang), appendix=True)]

    def trait_table(self, lang: str) -> pd.DataFrame:
        """Mean of every trait column per segment (numeric: mean; category: share)."""
        f, lab, d = self.base.frame, self.base.labels, self.base.design
        rows = {}
        for col in d.numeric:
            rows[_trait_label(col, lang)] = pd.to_numeric(f[col], errors="coerce").groupby(lab, observed=False).median()
        for col in d.categorical:
            text = f[col].astype("object").where(f[col].notna(), MISSING).astype(str)
            for lv in d.levels[col]:
                name = f"{_trait_label(col, lang)}: {_value_label(col, lv, lang)}"
                rows[name] = (text == lv).groupby(lab, observed=False).mean().map(lambda v: fmt_pct(v, lang, 0))
        out = pd.DataFrame(rows).T
        out.index.name = t("segments.col.trait", lang)
        return out.reset_index().map(lambda v: fmt_num(v, lang, 1) if isinstance(v, float) else v)

    def notes(self, lang: str = "en") -> list[str]:
        out = [t("segments.note.choice", lang, w=fmt_num(self.base.opts.behaviour_weight, lang, 1))]
        if self.base.satisfaction is None:
            out.append(t("segments.note.no_surveys", lang))
        return out

    def metrics(self) -> dict[str, Any]:
        tab = self.table
        keep = [c for c in ("n", "share", "value_share", "key_share", "lapsed_share", "top_box") if c in tab]
        return {"segment_profiles": {s: {c: (None if not np.isfinite(float(tab.at[s, c])) else float(tab.at[s, c]))
                                         for c in keep} for s in tab.index}}


@_guard("segments.h.profiles")
def profiles(base: SegmentBase) -> Profiles:
    """Section "who is in each segment" of notebook 06."""
    base.need()
    return Profiles(base, profile_table(base))


@dataclass(frozen=True, repr=False)
class SegmentsVsTiers(Result):
    """Segments (by traits) side by side with the pyramid's layers (by value)."""

    heading: ClassVar[str] = "segments.h.tiers"
    base: SegmentBase
    counts: pd.DataFrame

    def figures(self, lang: str = "en") -> list[Any]:
        from workbench import pyramid as pyr

        share = self.counts.div(self.counts.sum(axis=1).where(lambda s: s > 0), axis=0)
        fig = go.Figure()
        for tier in share.columns:
            fig.add_trace(go.Bar(y=share.index.astype(str), x=share[tier], orientation="h",
                                 name=pyr.tier_label(tier, lang)))
        fig.update_layout(barmode="stack", title=t("segments.fig.tiers", lang),
                          xaxis={"title": t("segments.axis.share_of_segment", lang), "tickformat": ".0%"},
                          yaxis={"autorange": "reversed"})
        return [fig]

    def findings(self, lang: str = "en") -> list[Finding]:
        from scipy.stats import chi2_contingency

        c = self.counts.loc[self.counts.sum(axis=1) > 0, self.counts.sum(axis=0) > 0]
        n = int(c.to_numpy().sum())
        if c.shape[0] < 2 or c.shape[1] < 2:
            return []
        chi2, p, dof, _ = chi2_contingency(c.to_numpy())
        v = math.sqrt(chi2 / (n * (min(c.shape) - 1))) if n else float("nan")
        key = c.iloc[:, :2].sum(axis=1) / c.sum(axis=1)
        hi, lo = key.idxmax(), key.idxmin()
        text = t("segments.find.tiers", lang, hi=hi, hi_share=fmt_pct(key[hi], lang), lo=lo,
                 lo_share=fmt_pct(key[lo], lang))
        return [Finding("segments_vs_tiers", text, value=float(v), n=n, headline=p < 0.05 and n >= 30,
                        how=t("segments.how.tiers", lang, v=fmt_num(v, lang), chi2=fmt_num(chi2, lang, 1), dof=dof,
                              p=fmt_p(p), n=fmt_int(n, lang)),
                        action=t("segments.act.tiers", lang))]

    def tables(self, lang: str = "en") -> list[Table]:
        from workbench import pyramid as pyr

        tab = self.counts.rename(columns=lambda c: pyr.tier_label(c, lang))
        tab.index.name = t("segments.col.segment", lang)
        tab = tab.reset_index()
        return [Table(tab, {c: (lambda v: fmt_int(v, lang)) for c in tab.columns[1:]},
                      caption=t("segments.cap.tiers", lang))]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("segments.note.tiers", lang)]

    def metrics(self) -> dict[str, Any]:
        return {"segments_vs_tiers": {str(s): {str(k): int(v) for k, v in row.items()}
                                      for s, row in self.counts.iterrows()}}


@_guard("segments.h.tiers")
def segments_vs_tiers(base: SegmentBase) -> SegmentsVsTiers:
    """Section "segments and layers side by side" of notebook 06."""
    base.need()
    if base.tiers is None:
        raise Unsupported("segments.why.no_transactions")
    counts = pd.crosstab(base.labels, base.tiers.astype(str)).reindex(
        index=list(base.labels.cat.categories), columns=list(base.tiers.cat.categories), fill_value=0)
    return SegmentsVsTiers(base, counts)


def _score_table(scored: pd.DataFrame, top: int, lang: str, labels: pd.Series | None) -> pd.DataFrame:
    sel = scored[scored["decile"] <= top].sort_values("score", ascending=False)
    out = pd.DataFrame({"customer_id": sel.index.astype(str), t("segments.col.score", lang): sel["score"].to_numpy(),
                        t("segments.col.decile", lang): sel["decile"].to_numpy()})
    if labels is not None:
        out[t("segments.col.segment", lang)] = labels.reindex(sel.index).astype(str).to_numpy()
    return out


@dataclass(frozen=True, repr=False)
class LookAlikes(Result):
    """Which recent first-time customers look like future key customers, and how well that is known."""

    heading: ClassVar[str] = "segments.h.lookalike"
    base: SegmentBase
    model: LookAlikeModel

    @property
    def informative(self) -> bool:
        """The holdout AUC's 95% interval lies above 0.5 (the scores rank better than chance)."""
        lo = self.model.auc_interval[0]
        return bool(np.isfinite(lo) and lo > 0.5)

    def figures(self, lang: str = "en") -> list[Any]:
        d = self.model.deciles
        fig = go.Figure(go.Bar(x=d["decile"], y=d["lift"], name=t("segments.col.lift", lang)))
        fig.add_hline(y=1, line_dash="dash", line_color="grey")
        fig.update_layout(title=t("segments.fig.lift", lang), xaxis_title=t("segments.col.decile", lang),
                          yaxis_title=t("segments.col.lift", lang))
        cal = go.Figure()
        cal.add_trace(go.Scatter(x=d["predicted"], y=d["rate"], mode="markers+lines",
                                 name=t("segments.col.rate", lang)))
        top = float(max(d["predicted"].max(), d["rate"].max(), 0.01))
        cal.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line={"dash": "dot", "color": "grey"},
                                 name=t("segments.fig.perfect", lang)))
        cal.update_layout(title=t("segments.fig.calibration", lang), xaxis_title=t("segments.col.predicted", lang),
                          yaxis_title=t("segments.col.rate", lang))
        return [fig, Figure(cal, appendix=True)]

    def findings(self, lang: str = "en") -> list[Finding]:
        m = self.model
        d = m.deciles
        top_lift = float(d.loc[d["decile"] <= self.base.opts.top_deciles, "positives"].sum()
                         / max(d.loc[d["decile"] <= self.base.opts.top_deciles, "n"].sum(), 1)
                         / max(m.holdout["y"].mean(), 1e-12))
        how = t("segments.how.lookalike", lang, auc=fmt_num(m.auc, lang), lo=fmt_num(m.auc_interval[0], lang),
                hi=fmt_num(m.auc_interval[1], lang), n_train=fmt_int(m.n_train, lang), n_test=fmt_int(m.n_test, lang),
                split=fmt_date(m.split_date, lang), brier=fmt_num(m.brier, lang, 3),
                brier0=fmt_num(m.brier_base, lang, 3), months=m.months, bar=self.base.money(m.threshold, lang))
        key = "segments.find.lookalike" if self.informative else "segments.find.lookalike_none"
        out = [Finding("lookalike_auc", t(key, lang, top=self.base.opts.top_deciles * 10,
                                          lift=fmt_num(top_lift, lang, 1), months=m.months,
                                          pos=fmt_int(m.positives_test, lang), n=fmt_int(m.n_test, lang)),
                       value=m.auc, interval=m.auc_interval, null=0.5, n=m.n_test, value_range=(0.0, 1.0),
                       headline=self.informative, how=how,
                       action=t("segments.act.lookalike", lang) if self.informative else "")]
        r = m.recent
        if len(r) and self.informative:
            k = int((r["decile"] <= self.base.opts.top_deciles).sum())
            out.append(Finding("lookalike_recent", t("segments.find.recent", lang, k=fmt_int(k, lang),
                                                     n=fmt_int(len(r), lang), months=m.months), value=k, n=len(r)))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        d = self.model.deciles.rename(columns={
            "decile": t("segments.col.decile", lang), "n": t("segments.col.n", lang),
            "positives": t("segments.col.positives", lang), "rate": t("segments.col.rate", lang),
            "predicted": t("segments.col.predicted", lang), "lift": t("segments.col.lift", lang),
            "capture": t("segments.col.capture", lang)})
        pct = lambda v: fmt_pct(v, lang)  # noqa: E731
        f = {t("segments.col.rate", lang): pct, t("segments.col.predicted", lang): pct,
             t("segments.col.capture", lang): pct, t("segments.col.lift", lang): lambda v: fmt_num(v, lang),
             t("segments.col.positives", lang): lambda v: fmt_int(v, lang), t("segments.col.n", lang): lambda v: fmt_int(v, lang)}
        out = [Table(d, f, caption=t("segments.cap.deciles", lang))]
        if len(self.model.recent) and self.informative:
            lst = _score_table(self.model.recent, self.base.opts.top_deciles, lang, self.base.labels)
            out.append(Table(lst, {t("segments.col.score", lang): pct}, caption=t("segments.cap.recent", lang),
                             appendix=True, export="lookalike_customers", max_rows=20))
        return out

    def notes(self, lang: str = "en") -> list[str]:
        m = self.model
        out = [t("segments.note.lookalike", lang, months=m.months)]
        if np.isfinite(m.repeat_share) and m.repeat_share < 0.1:
            out.append(t("segments.note.few_repeat", lang, share=fmt_pct(m.repeat_share, lang)))
        return out

    def kpis(self, lang: str = "en") -> list[KPI]:
        return []

    def metrics(self) -> dict[str, Any]:
        m = self.model
        return {"lookalike": {"months": m.months, "auc": m.auc, "auc_interval": list(m.auc_interval),
                              "auc_traits_only": m.auc_traits, "brier": m.brier, "brier_base": m.brier_base,
                              "n_train": m.n_train, "n_test": m.n_test, "positives_test": m.positives_test,
                              "lift": m.deciles["lift"].round(4).tolist(), "recent": len(m.recent),
                              "repeat_share": m.repeat_share}}


@_guard("segments.h.lookalike")
def lookalikes(base: SegmentBase) -> LookAlikes:
    """Section "recent customers who look like future key customers" of notebook 06."""
    return LookAlikes(base, base.need_lookalike())


@dataclass(frozen=True, repr=False)
class ProspectScores(Result):
    """Prospects (not yet customers) scored on traits alone."""

    heading: ClassVar[str] = "segments.h.prospects"
    base: SegmentBase
    model: LookAlikeModel

    def findings(self, lang: str = "en") -> list[Finding]:
        p, m = self.model.prospects, self.model
        k = int((p["decile"] <= self.base.opts.top_deciles).sum())
        return [Finding("lookalike_prospects", t("segments.find.prospects", lang, k=fmt_int(k, lang),
                                                 n=fmt_int(len(p), lang), top=self.base.opts.top_deciles * 10),
                        value=k, n=len(p),
                        how=t("segments.how.prospects", lang, auc=fmt_num(m.auc_traits, lang),
                              lo=fmt_num(m.auc_traits_interval[0], lang), hi=fmt_num(m.auc_traits_interval[1], lang)))]

    def tables(self, lang: str = "en") -> list[Table]:
        lst = _score_table(self.model.prospects, self.base.opts.top_deciles, lang, None)
        return [Table(lst, {t("segments.col.score", lang): lambda v: fmt_pct(v, lang)},
                      caption=t("segments.cap.prospects", lang), appendix=True, export="lookalike_prospects",
                      max_rows=20)]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("segments.note.prospects", lang, auc=fmt_num(self.model.auc_traits, lang))]

    def metrics(self) -> dict[str, Any]:
        p = self.model.prospects
        return {"lookalike_prospects": {"n": len(p), "top": int((p["decile"] <= self.base.opts.top_deciles).sum()),
                                        "auc_traits_only": self.model.auc_traits}}


@_guard("segments.h.prospects")
def prospect_scores(base: SegmentBase) -> ProspectScores:
    """Section "prospects who look like key customers" of notebook 06."""
    base.need()
    if base.prospects is None or not len(base.prospects):
        raise Unsupported("segments.why.no_prospects")
    m = base.need_lookalike()
    if m.prospects is None:
        raise Unsupported("segments.why.prospects_no_traits")
    lo = m.auc_traits_interval[0]
    if not (np.isfinite(lo) and lo > 0.5):
        raise Unsupported("segments.why.prospects_chance", auc=fmt_num(m.auc_traits, "en"))
    return ProspectScores(base, m)


@dataclass(frozen=True, repr=False)
class UpSell(Result):
    """Spend gap to look-alike customers in the same segment."""

    heading: ClassVar[str] = "segments.h.upsell"
    base: SegmentBase
    gaps: pd.DataFrame
    pyramid_overlap: int | None = None

    def by_segment(self) -> pd.DataFrame:
        g = self.gaps
        below = g[g["gap"] > 0]
        out = pd.DataFrame({"active": g.groupby("segment", observed=False).size(),
                            "below": below.groupby("segment", observed=False).size(),
                            "gap": below.groupby("segment", observed=False)["gap"].sum(),
                            "upgrade": g.groupby("segment", observed=False)["upgrade"].sum()}).fillna(0)
        return out

    def figures(self, lang: str = "en") -> list[Any]:
        s = self.by_segment()
        fig = go.Figure(go.Bar(x=s.index.astype(str), y=s["gap"], name=t("segments.col.gap", lang)))
        fig.update_layout(title=t("segments.fig.upsell", lang, currency=self.base.currency),
                          xaxis_title=t("segments.col.segment", lang), yaxis_title=t("segments.col.gap", lang))
        return [fig]

    def findings(self, lang: str = "en") -> list[Finding]:
        g = self.gaps
        below = g[g["gap"] > 0]
        n_up = int(g["upgrade"].sum())
        text = t("segments.find.upsell", lang, n=fmt_int(len(below), lang), active=fmt_int(len(g), lang),
                 gap=self.base.money(below["gap"].sum(), lang), half=self.base.money(below["gap"].sum() / 2, lang))
        out = [Finding("upsell_gap", text, value=float(below["gap"].sum()), n=len(g),
                       how=t("segments.how.upsell", lang), action=t("segments.act.upsell", lang))]
        extra = ("" if self.pyramid_overlap is None
                 else t("segments.find.upgrade_overlap", lang, k=fmt_int(self.pyramid_overlap, lang)))
        out.append(Finding("upsell_upgrade", t("segments.find.upgrade", lang, n=fmt_int(n_up, lang)) + extra,
                           value=n_up, n=len(g)))
        return out

    def tables(self, lang: str = "en") -> list[Table]:
        s = self.by_segment().reset_index().rename(columns={
            "segment": t("segments.col.segment", lang), "active": t("segments.col.active", lang),
            "below": t("segments.col.below", lang), "gap": t("segments.col.gap", lang),
            "upgrade": t("segments.col.upgrade", lang)})
        money = lambda v: self.base.money(v, lang)  # noqa: E731
        integer = lambda v: fmt_int(v, lang)  # noqa: E731
        f = {t("segments.col.active", lang): integer, t("segments.col.below", lang): integer,
             t("segments.col.upgrade", lang): integer, t("segments.col.gap", lang): money}
        lst = self.gaps[self.gaps["gap"] > 0].sort_values("gap", ascending=False)
        lst = pd.DataFrame({"customer_id": lst.index.astype(str), t("segments.col.segment", lang): lst["segment"].astype(str).to_numpy(),
                            t("segments.col.revenue", lang): lst["revenue"].to_numpy(),
                            t("segments.col.peer_median", lang): lst["peer_median"].to_numpy(),
                            t("segments.col.gap", lang): lst["gap"].to_numpy(),
                            t("segments.col.upgrade", lang): lst["upgrade"].map(
                                lambda v: t("segments.yes" if v else "segments.no", lang)).to_numpy()})
        lf = {t("segments.col.revenue", lang): money, t("segments.col.peer_median", lang): money,
              t("segments.col.gap", lang): money}
        return [Table(s, f), Table(lst, lf, caption=t("segments.cap.upsell", lang), appendix=True, export="upsell",
                                   max_rows=20)]

    def notes(self, lang: str = "en") -> list[str]:
        return [t("segments.note.upsell", lang)]

    def metrics(self) -> dict[str, Any]:
        g = self.gaps
        below = g[g["gap"] > 0]
        return {"upsell": {"active_ordinary": len(g), "below_peers": len(below), "gap_total": float(below["gap"].sum()),
                           "upgrade_by_peers": int(g["upgrade"].sum()), "also_pyramid_candidates": self.pyramid_overlap}}


#: fewer buyers than this share buying more than once in the window: no up-sell gaps (see :func:`upsell`)
MIN_REPEAT_SHARE_UPSELL = 0.05


@_guard("segments.h.upsell")
def upsell(base: SegmentBase, pyramid_candidates: Sequence[str] | None = None) -> UpSell:
    """Section "spend below similar customers" of notebook 06; ``pyramid_candidates`` (ids of the pyramid's
    upgrade candidates, optional) counts the overlap."""
    base.need()
    if base.tiers is None:
        raise Unsupported("segments.why.no_transactions")
    buyers = base.frame[base.frame["first_purchase"].notna()]
    repeat = float((buyers["purchases"] > 1).mean()) if len(buyers) else 0.0
    if repeat < MIN_REPEAT_SHARE_UPSELL:
        # with almost everyone buying once, "spends less than peers" compares single order sizes, not
        # relationships that could deepen
        raise Unsupported("segments.why.few_repeat_upsell", share=fmt_pct(repeat, "en"), need=fmt_pct(
            MIN_REPEAT_SHARE_UPSELL, "en"))
    la = base.lookalike
    scores = la.scores if isinstance(la, LookAlikeModel) else None
    gaps = upsell_gaps(base.frame, base.labels, base.tiers, scores, base.key_threshold)
    if gaps.empty:
        raise Unsupported("segments.why.no_active")
    overlap = None
    if pyramid_candidates is not None:
        overlap = int(gaps.index[gaps["upgrade"]].isin(list(pyramid_candidates)).sum())
    return UpSell(base, gaps, overlap)


@dataclass(frozen=True, repr=False)
class MethodNotes(Result):
    """How the segments, look-alikes and gaps were made."""

    heading: ClassVar[str] = "segments.h.notes"
    base: SegmentBase

    def notes(self, lang: str = "en") -> list[str]:
        b = self.base
        out = [t("segments.note.method.window", lang, months=b.opts.months, end=fmt_date(b.end, lang))]
        if b.design is not None:
            names = [_trait_label(c, lang) for c in b.design.numeric + b.design.categorical]
            out.append(t("segments.note.method.traits", lang, traits=t("segments.desc.sep", lang).join(names) or "–"))
        out += [t("segments.note.method.distance", lang, w=fmt_num(b.opts.behaviour_weight, lang, 1)),
                t("segments.note.method.k", lang, bar=fmt_num(STABLE_ARI, lang), boot=b.opts.n_boot,
                  n=fmt_int(min(b.opts.sample_size, len(b.frame) if b.frame is not None else 0), lang)),
                t("segments.note.method.lookalike", lang, months=b.opts.lookalike_months),
                t("segments.note.method.privacy", lang)]
        return out


def method_notes(base: SegmentBase) -> MethodNotes | Skipped:
    """Section "how these numbers were made" of notebook 06 (skipped, with the page's reason, when no
    customer could be read: notes on a sample of 0 customers would only be noise)."""
    if base.frame is None and base.missing is not None:
        return Skipped(MethodNotes.heading, base.missing)
    return MethodNotes(base)
