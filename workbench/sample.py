"""Seeded synthetic CRM dataset generator ("Sample retail (synthetic)").

``generate_sample(out_dir, customers=20000, seed=42, lang="en", fmt="parquet",
end=None)`` writes six tables (customers, transactions, surveys, complaints,
members, points) as Parquet or CSV, plus ``TRUTH.json`` (every planted
parameter, machine-readable) and ``workbench.toml`` (the dataset config read by
the loader).  Same seed and arguments give byte-identical files.  Everything is
vectorised with numpy / pyarrow; the only Python loops are over months,
quarters, survey levels and label lists.

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
   from the (first) survey date on and differ in ``recommend``.
5. *Intent conversion*: see 1.
6. *Value*: lognormal rate x lognormal order size -> top 20% of customers
   ~70-80% of revenue; product-category margin rates; ~3% refund rows
   (negative amount, negative margin, discount 0); profit x relationship
   segments (true friends, butterflies, barnacles, strangers) all populated.
7. *Complaints*: ~1 per 100 customer-months, calendar seasonality, a steady
   rising trend in one category, a x4 spike in one category in one month,
   lognormal response / resolution hours by handler, ~5% open at the end,
   three handlers with small n.  ``resolution`` null = unresolved.
8. *Churn*: exponential latent churn time; hazard raised x2.5 after an
   unresolved complaint, x0.9 per extra purchase channel, x0.64 per SD of
   activity (busy customers use more channels, so the naive multi-channel
   comparison overstates the effect), x0.35 for contract customers.
   ``churn_reason`` and ``churned_at`` (the day of the latent churn time) are set
   for customers whose churn time falls in the window.
9. *Loyalty programme*: join probability rises with activity and attitude
   (self-selection); true effect: purchase rate x1.08 and churn hazard x0.85
   after joining; the naive members-vs-others gap is recorded.  Quarterly
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
   ``default_rng([seed, 1602])``, so every other column keeps its values).

TRUTH.json keys
---------------
``generator`` (seed, size, lang, format), ``window`` (start, end, month
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
counts).  "observed_*" / "naive_*" entries are measured on the written data;
the rest are the generating parameters.

Storage: Parquet written by pyarrow without the Arrow schema blob and without
timestamps in metadata (timestamps are stored as ``timestamp[ms]`` because
Parquet has no seconds unit); CSV by ``pyarrow.csv.write_csv`` (UTF-8, ISO
dates, empty field = null).

Labels (segment, region, channels, categories, levels, gender, churn reasons)
are Chinese when ``lang="zh"``; codes ``status``, ``severity`` and points
``kind`` stay English; column names are always English.  In ``members`` the
customer-level ``left_at`` is repeated on every level-spell row.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import json
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["SampleResult", "generate_sample", "TABLES"]

TABLES = ("customers", "transactions", "surveys", "complaints", "members", "points")
MONTHS = 24
DRIVERS = ("product_quality", "service_level", "delivery", "staff", "value_for_money")
_EPOCH = dt.date(1970, 1, 1)
_ND = NormalDist()

# --------------------------------------------------------------------------- labels
_L: dict[str, dict[str, list[str]]] = {
    "en": {
        "segment": ["Mass", "Value", "Premium", "Contract"],
        "region": ["East", "North", "South", "Central", "Southwest", "Northwest", "Northeast"],
        "acq": ["Store", "Search ads", "Social media", "Referral", "Partner"],
        "gender": ["Female", "Male"],
        "txch": ["Store", "Online", "App", "Phone"],
        "cat": ["Groceries", "Apparel", "Electronics", "Home", "Beauty", "Sports"],
        "ccat": ["Delivery", "Product quality", "Service attitude", "Billing", "Returns",
                 "Points & membership"],
        "cch": ["Hotline", "Online chat", "Store", "App", "Social media"],
        "level": ["Basic", "Silver", "Gold", "Platinum"],
        "reason": ["Unhappy with delivery", "Unhappy with service", "Complaint badly handled",
                   "Price or policy change", "Product no longer leading", "Low switching cost",
                   "Staff left", "Needs changed", "Moved away", "Bankrupt"],
        "handler": ["Service Centre - Zhang Wei", "Service Centre - Li Na",
                    "Service Centre - Wang Fang", "Shanghai Xuhui Branch",
                    "Beijing Chaoyang Branch", "Guangzhou Tianhe Branch", "Online Support Team",
                    "Hangzhou Xihu Branch", "Chengdu Jinjiang Branch", "Xi'an Yanta Branch",
                    "Harbin Daoli Branch", "Intern - Zhao Lei"],
        "resolution": ["Refund issued", "Replacement sent", "Apologised and issued a coupon",
                       "Explained the policy; customer accepted", "Points restored"],
    },
    "zh": {
        "segment": ["大众客户", "实惠客户", "高端客户", "合约客户"],
        "region": ["华东", "华北", "华南", "华中", "西南", "西北", "东北"],
        "acq": ["门店", "搜索广告", "社交媒体", "老客推荐", "合作伙伴"],
        "gender": ["女", "男"],
        "txch": ["门店", "网店", "App", "电话"],
        "cat": ["食品杂货", "服装鞋帽", "数码家电", "家居用品", "美妆个护", "运动户外"],
        "ccat": ["配送", "产品质量", "服务态度", "账单收费", "退换货", "积分会员"],
        "cch": ["热线电话", "在线客服", "门店", "App", "社交媒体"],
        "level": ["普通", "银卡", "金卡", "白金"],
        "reason": ["对配送不满意", "对服务不满意", "投诉处理不当", "价格或政策变动", "产品不再领先",
                   "转换成本低", "员工离职带走客户", "需求变化", "搬迁", "破产或经营困难"],
        "handler": ["客服中心-张伟", "客服中心-李娜", "客服中心-王芳", "上海徐汇店", "北京朝阳店",
                    "广州天河店", "在线客服组", "杭州西湖店", "成都锦江店", "西安雁塔店",
                    "哈尔滨道里店", "实习生-赵磊"],
        "resolution": ["已退款", "已换货", "已致歉并发放优惠券", "已解释政策，客户接受", "已恢复积分"],
    },
}

_COMMENTS = {  # answers to "what would it take for us to earn a 5?", by weakest driver
    "en": [
        ["Better product quality - the last thing I bought wore out too soon.",
         "Make the products last longer and I would give a 5."],
        ["Faster, friendlier service when I need help.",
         "Solve my problem the first time instead of passing me around."],
        ["Deliver on the promised day.", "Faster delivery and better packaging."],
        ["Staff who know the products and greet customers.", "More patient staff in the store."],
        ["Lower prices or better member discounts.",
         "Better value for money - prices went up lately."],
        ["You already earn a 5 - keep it up.", "Nothing, I am very happy."],
    ],
    "zh": [
        ["产品质量再好一点，上次买的东西很快就坏了。", "产品更耐用一些我就给5分。"],
        ["需要帮助时服务能更快、更热情。", "问题能一次解决，不要来回转接。"],
        ["按承诺的时间送达。", "配送再快一点，包装再好一点。"],
        ["店员多了解产品，主动打招呼。", "门店店员更有耐心一些。"],
        ["价格再低一点，或者会员折扣更多。", "性价比再高一些，最近涨价了。"],
        ["已经是5分了，继续保持！", "没什么，非常满意。"],
    ],
}

_COMPLAINTS = {  # per complaint category
    "en": [
        ["The order arrived days late and nobody told me.",
         "The courier left my parcel outside and it got wet."],
        ["The item broke after one week.", "The product does not match the description."],
        ["The staff member was rude when I asked for help.",
         "Waited 40 minutes on the hotline and was cut off."],
        ["I was charged twice for the same order.", "The discount was not applied at checkout."],
        ["My return was refused without explanation.",
         "Refund still not received after two weeks."],
        ["My points expired without any notice.",
         "Could not redeem points for the gift shown in the app."],
    ],
    "zh": [
        ["订单晚到了好几天，也没有人通知我。", "快递员把包裹放在门外，被雨淋湿了。"],
        ["东西用了一周就坏了。", "商品和描述不符。"],
        ["我请店员帮忙时态度很差。", "热线等了40分钟还被挂断。"],
        ["同一个订单被扣了两次钱。", "结账时折扣没有生效。"],
        ["退货被拒绝，没有任何解释。", "两周了还没收到退款。"],
        ["我的积分没有任何通知就过期了。", "在App里看到的礼品无法用积分兑换。"],
    ],
}
_SUFFIX = {
    "en": (" Contact me at ", " My mobile is ", " <b>Very urgent!</b>", "."),
    "zh": ("请联系我：", "我的手机号是", "<b>非常着急！</b>", "。"),
}

# (hanzi, pinyin)
_SURNAMES = [("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"),
             ("杨", "Yang"), ("黄", "Huang"), ("赵", "Zhao"), ("吴", "Wu"), ("周", "Zhou"),
             ("徐", "Xu"), ("孙", "Sun"), ("马", "Ma"), ("朱", "Zhu"), ("胡", "Hu"),
             ("郭", "Guo"), ("何", "He"), ("林", "Lin"), ("高", "Gao"), ("罗", "Luo")]
_GIVEN = [("伟", "Wei"), ("芳", "Fang"), ("娜", "Na"), ("敏", "Min"), ("静", "Jing"),
          ("磊", "Lei"), ("强", "Qiang"), ("洋", "Yang"), ("艳", "Yan"), ("勇", "Yong"),
          ("军", "Jun"), ("杰", "Jie"), ("娟", "Juan"), ("涛", "Tao"), ("明", "Ming"),
          ("超", "Chao"), ("秀英", "Xiuying"), ("丽", "Li"), ("桂英", "Guiying"), ("建华", "Jianhua"),
          ("晓东", "Xiaodong"), ("海燕", "Haiyan"), ("志强", "Zhiqiang"), ("雪梅", "Xuemei"),
          ("佳怡", "Jiayi"), ("子涵", "Zihan"), ("浩然", "Haoran"), ("欣怡", "Xinyi")]
_DOMAINS = ["qq.com", "163.com", "126.com", "sina.com", "gmail.com", "outlook.com", "foxmail.com"]
_MOBILE_PREFIX = [130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156,
                  157, 158, 159, 166, 176, 177, 178, 180, 181, 182, 183, 185, 186, 187, 188,
                  189, 198, 199]

# --------------------------------------------------------------------------- parameters
P: dict[str, Any] = {
    "segment_p": [0.55, 0.22, 0.15, 0.08],
    "region_p": [0.30, 0.17, 0.20, 0.11, 0.10, 0.05, 0.07],
    "acq_p": [0.35, 0.20, 0.20, 0.15, 0.10],
    "acq_cost_median": [40.0, 150.0, 90.0, 50.0, 70.0],
    "txch_pref": [0.40, 0.30, 0.22, 0.08],
    "cat_p": [0.30, 0.20, 0.12, 0.14, 0.14, 0.10],
    "cat_price_mult": [0.5, 1.0, 2.8, 1.4, 0.9, 1.1],
    "cat_margin": [0.18, 0.50, 0.12, 0.35, 0.58, 0.40],
    "early_signup_share": 0.55,  # signed up in the first 90 days (base imported at CRM launch)
    "rate_per_day_median": 0.0115,
    "rate_sigma": 1.0,
    "order_median": 180.0,
    "order_sigma_customer": 0.75,
    "order_sigma_row": 0.55,
    "pref_cat_share": 0.55,
    "refund_share": 0.03,
    # churn (hazard per day, proportional hazards)
    "churn_base_annual": 0.30,
    "hr_activity_per_sd": 0.64,
    "hr_attitude_per_sd": 0.80,
    "hr_per_extra_channel": 0.90,
    "hr_contract": 0.35,
    "hr_unresolved_complaint": 2.5,
    "hr_member": 0.85,
    "member_rate_multiplier": 1.08,
    "hr_expectation": {"below": 1.8, "met": 1.0, "above": 0.6},
    # thresholds
    "tau_intent": 2.5, "intent_base": 0.08, "intent_slope": 0.36,
    "tau_behaviour": 3.5, "behaviour_base": 0.22, "behaviour_slope": 0.44,
    "window_days": 90, "copula_rho": 0.5, "contract_repeat_p": 0.9,
    # drivers
    "driver_weights": {"product_quality": 0.30, "service_level": 0.75, "delivery": 0.22,
                       "staff": 0.10, "value_for_money": 0.15},
    "driver_loading": 0.75, "attitude_loading": 0.8,
    "sat_noise_sd": 0.55,
    "sat_center": 0.93, "sat_scale": 1.52,  # approx. mean and SD of the weighted sum + noise
    "sat_cuts": [-1.405, -0.842, -0.202, 0.643],  # -> about 8/12/22/32/26 % on 1..5
    "exp_cuts": [-1.55, -0.915, 0.524, 1.405],
    "survey_share": 0.10, "survey_twice_share": 0.25, "anonymous_share": 0.10,
    "comment_missing_share": 0.25,
    # deal proneness
    "deal_prone_share": {"default": 0.20, "value": 0.45}, "self_interest_share": 0.40,
    "deal_p": 0.55, "deal_depth": [0.15, 0.35], "plain_p": 0.08, "plain_depth": [0.05, 0.15],
    "trust_p": 0.03,
    # complaints
    "complaint_rate": 0.010,
    "complaint_cat_weight": [0.22, 0.22, 0.18, 0.12, 0.14, 0.12],
    "seasonality": {1: 1.15, 2: 1.25, 3: 0.90, 4: 0.85, 5: 0.90, 6: 1.10, 7: 0.90, 8: 0.85,
                    9: 0.90, 10: 1.00, 11: 1.35, 12: 1.20},
    "rising_category": 0, "rising_total_growth": 2.0,  # rate x(1 + 2.0 * m/23)
    "spike_category": 5, "spike_month_index": 15, "spike_multiplier": 4.0,
    "cch_p": [0.35, 0.25, 0.20, 0.12, 0.08],
    "handler_w": [0.14, 0.14, 0.13, 0.10, 0.10, 0.09, 0.15, 0.08, 0.065, 0.002, 0.002, 0.001],
    "handler_resp_h": [3, 4, 6, 12, 18, 10, 2, 24, 30, 48, 8, 60],
    "handler_res_h": [30, 36, 48, 72, 96, 60, 24, 120, 150, 200, 40, 300],
    "handler_unresolved": [0.10, 0.12, 0.15, 0.20, 0.25, 0.18, 0.10, 0.30, 0.35, 0.40, 0.15, 0.50],
    "resp_sigma": 0.8, "res_sigma": 1.0, "stalled_share": 0.045, "no_response_share": 0.04,
    # programme
    "programme_costs": {"membership_system": 24000, "points_system": 16000, "personalised_service": 32000,
                        "promotion_rewards": 20000, "feedback_handling": 8000},  # CNY per year at 20k customers
    "member_logit_intercept": -1.05, "member_logit_activity": 1.0, "member_logit_attitude": 0.4,
    "level_thresholds_6m": [0.0, 1500.0, 5000.0, 15000.0],
    "points_expire_months": 12, "join_bonus": 200, "bonus_p": 0.03, "redeem_p": 0.12,
    "redeem_min_balance": 500,
    # planted category sequence (cross-sell): customers whose first purchase is in ``seq_first`` buy
    # ``seq_next`` as their next new category with probability ``seq_p`` (plus the chance they had anyway)
    "seq_first": 2, "seq_next": 5, "seq_p": 0.5,
}


@dataclasses.dataclass(frozen=True)
class SampleResult:
    """What :func:`generate_sample` wrote."""

    out_dir: Path
    paths: dict[str, Path]  # table name -> file; also "truth" and "config"
    rows: dict[str, int]
    truth: dict[str, Any]


# --------------------------------------------------------------------------- helpers
def _month_add(y: int, m: int, k: int) -> tuple[int, int]:
    i = y * 12 + (m - 1) + k
    return i // 12, i % 12 + 1


def _window(end: Any) -> tuple[dt.date, dt.date, list[dt.date]]:
    if end is None:
        first = dt.date.today().replace(day=1)
        last = first - dt.timedelta(days=1)
        y, m = last.year, last.month
    elif isinstance(end, (dt.date, dt.datetime)):
        y, m = end.year, end.month
    else:
        y, m = (int(x) for x in str(end).strip()[:7].split("-"))
    sy, sm = _month_add(y, m, -(MONTHS - 1))
    starts = [dt.date(*_month_add(sy, sm, k), 1) for k in range(MONTHS + 1)]
    end_date = dt.date(y, m, calendar.monthrange(y, m)[1])
    return starts[0], end_date, starts


def _cut(x: np.ndarray, cuts: list[float]) -> np.ndarray:
    return (np.searchsorted(np.asarray(cuts), x) + 1).astype(np.int8)


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    s = pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(s, width, "0"), "")


def _labels(labels: list[str], idx: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    arr = pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32), mask=mask),
                                         pa.array(labels, pa.string()))
    return arr.cast(pa.string())


def _date(days: np.ndarray, base: int, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array((days + base).astype(np.int32), type=pa.date32(), mask=mask)


def _ts(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(seconds.astype(np.int64), type=pa.timestamp("s"), mask=mask)


def _hinge(s: np.ndarray | float, base: float, slope: float, tau: float) -> Any:
    return np.clip(base + slope * np.maximum(0.0, np.asarray(s, dtype=float) - tau), 0.0, 1.0)


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="snappy", store_schema=False)
    else:
        pacsv.write_csv(table, path)


def _shapley_r2(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shapley decomposition of OLS R^2 over the columns of X (loops over 2^k subsets)."""
    k = X.shape[1]
    yc = y - y.mean()
    tss = float(yc @ yc)
    r2 = {}
    for mask in range(1 << k):
        cols = [j for j in range(k) if mask >> j & 1]
        if not cols:
            r2[mask] = 0.0
            continue
        A = np.column_stack([np.ones(len(y)), X[:, cols]])
        beta, *_ = np.linalg.lstsq(A, y, rcond=None)
        res = y - A @ beta
        r2[mask] = 1.0 - float(res @ res) / tss
    from math import factorial

    out = np.zeros(k)
    for j in range(k):
        for mask in range(1 << k):
            if mask >> j & 1:
                continue
            size = bin(mask).count("1")
            w = factorial(size) * factorial(k - size - 1) / factorial(k)
            out[j] += w * (r2[mask | 1 << j] - r2[mask])
    return out


def _churned_at(T: np.ndarray, D: int, base: int) -> pa.Array:
    """``customers.churned_at``: the day of the latent churn time for customers who churn inside the
    window (the same customers as a non-null ``churn_reason``); null otherwise. No random draw."""
    churned = T < D
    return _date(np.where(churned, np.floor(T), 0).astype(np.int64), base, mask=~churned)


def _r(x: float, n: int = 4) -> float:
    return round(float(x), n)


def _plant_sequence(cat: np.ndarray, t_cust: np.ndarray, t_day: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Plant the category sequence (TRUTH.json ``category_sequence``).

    Customers whose first purchase (rows ``0..n-1``, one per customer on the signup day) is in category
    ``seq_first`` get their next purchase in another category re-assigned to ``seq_next`` with probability
    ``seq_p``. Rows are ordered per customer by (day, row index), the order the written ``order_id`` keeps.
    Only the category of those rows changes (amounts, margins and every other column keep their values);
    the draw uses its own generator ``default_rng([seed, 1602])``.
    """
    a, b, p = P["seq_first"], P["seq_next"], P["seq_p"]
    planted = np.random.default_rng([seed, 1602]).random(n) < p
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


def _sequence_truth(t_cust: np.ndarray, cat: np.ndarray, amount: np.ndarray, n: int,
                    labels: list[str]) -> dict[str, Any]:
    """The planted sequence and what the written data show (rows in written order = order_id order)."""
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
    return {
        "rule": "customers whose first purchase is in `first` buy `next` as their second category (the first "
                "purchase in a category other than the first one, in order_id order) more often than others",
        "first": labels[a], "next": labels[b], "planted_probability": P["seq_p"],
        "generator": "next purchase in another category re-assigned to `next` with probability "
                     "planted_probability (numpy default_rng([seed, 1602]))",
        "customers_two_categories": int(two.sum()),
        "observed_share_next_after_first": _r((second[sa] == b).mean()) if sa.any() else None,
        "n_first": int(sa.sum()),
        "observed_share_next_after_other_firsts": _r((second[rest] == b).mean()) if rest.any() else None,
        "n_other_firsts": int(rest.sum()),
    }


# --------------------------------------------------------------------------- main
def generate_sample(out_dir: str | Path, customers: int = 20000, seed: int = 42, lang: str = "en",
                    fmt: str = "parquet", end: Any = None) -> SampleResult:
    """Generate the synthetic CRM dataset into ``out_dir``; see the module docstring."""
    if lang not in _L:
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    N = int(customers)
    if N < 100:
        raise ValueError("customers must be >= 100")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    L = _L[lang]
    rng = np.random.default_rng(seed)
    start, end_date, mstarts = _window(end)
    base = (start - _EPOCH).days
    D = (end_date - start).days + 1  # days in window: day index 0..D-1
    mday = np.array([(m - start).days for m in mstarts], dtype=np.int64)  # 25 month boundaries
    month_labels = [m.strftime("%Y-%m") for m in mstarts[:MONTHS]]
    truth: dict[str, Any] = {}

    # ------------------------------------------------------------------ customers
    seg = rng.choice(4, N, p=P["segment_p"])
    contract = seg == 3
    region = rng.choice(7, N, p=P["region_p"])
    acq = rng.choice(5, N, p=P["acq_p"])
    acq_cost = np.round(np.asarray(P["acq_cost_median"])[acq]
                        * np.exp(rng.normal(0, 0.4, N)), 2)
    early = rng.random(N) < P["early_signup_share"]
    S = np.where(early, rng.integers(0, 90, N), rng.integers(0, D, N)).astype(np.int64)
    z_act = rng.standard_normal(N) + np.where(seg == 2, 0.3, 0.0)
    z_amt = 0.3 * z_act + np.sqrt(1 - 0.09) * rng.standard_normal(N) + np.where(seg == 2, 0.8, 0)
    g = rng.standard_normal(N) - np.where(contract, 0.4, 0.0)
    n_ch = 1 + rng.binomial(3, 1 / (1 + np.exp(-(-1.0 + 1.0 * z_act))))
    keys = rng.random((N, 4)) ** (1 / np.asarray(P["txch_pref"]))
    perm = np.argsort(-keys, axis=1).astype(np.int8)  # channels in order of use

    h0 = -np.log(1 - P["churn_base_annual"]) / 365.25
    lin = (np.log(P["hr_activity_per_sd"]) * z_act + np.log(P["hr_attitude_per_sd"]) * g
           + np.log(P["hr_per_extra_channel"]) * (n_ch - 1)
           + np.log(P["hr_contract"]) * contract)
    h = h0 * np.exp(lin)
    T = S + rng.exponential(1.0, N) / h  # latent churn time (days, float)

    # programme membership (self-selection on activity and attitude)
    logit = (P["member_logit_intercept"] + P["member_logit_activity"] * z_act
             + P["member_logit_attitude"] * g)
    wants = rng.random(N) < 1 / (1 + np.exp(-logit))
    span = np.minimum(T, D) - S
    J = S + np.floor(rng.random(N) ** 2 * span * 0.7).astype(np.int64)
    member = wants & (span >= 1) & (J < D)
    T = np.where(member & (T > J), J + (T - J) / P["hr_member"], T)

    def scale_after(T: np.ndarray, u: np.ndarray, mult: np.ndarray | float) -> np.ndarray:
        return np.where(T > u, u + (T - u) / mult, T)

    # ------------------------------------------------------------------ complaints
    K = 6
    season = np.array([P["seasonality"][m.month] for m in mstarts[:MONTHS]])
    cat_int = np.tile(np.asarray(P["complaint_cat_weight"], float), (MONTHS, 1))
    cat_int[:, P["rising_category"]] *= 1 + P["rising_total_growth"] * np.arange(MONTHS) / (MONTHS - 1)
    cat_int[P["spike_month_index"], P["spike_category"]] *= P["spike_multiplier"]
    cat_int *= season[:, None]
    cat_int /= cat_int.sum(axis=1).mean()  # average month total intensity = 1
    r_c = np.exp(0.25 * z_act - 0.35 * g)
    r_c = P["complaint_rate"] * r_c / r_c.mean()
    c_cust, c_day, c_cat = [], [], []
    for m in range(MONTHS):
        lo, hi = mday[m], mday[m + 1]
        a = np.clip(S, lo, hi)
        b = np.clip(np.minimum(T, D), lo, hi)
        expo = np.maximum(b - a, 0.0)
        lam = r_c * expo / 30.44 * cat_int[m].sum()
        n = rng.poisson(lam)
        idx = np.repeat(np.arange(N), n)
        day = np.floor(a[idx] + rng.random(idx.size) * (b[idx] - a[idx])).astype(np.int64)
        c_cust.append(idx)
        c_day.append(np.minimum(day, hi - 1))
        c_cat.append(rng.choice(K, idx.size, p=cat_int[m] / cat_int[m].sum()))
    c_cust = np.concatenate(c_cust)
    c_day = np.concatenate(c_day)
    c_cat = np.concatenate(c_cat)
    nc = c_cust.size
    hnd = rng.choice(12, nc, p=np.asarray(P["handler_w"]) / np.sum(P["handler_w"]))
    end_s = D * 86400 - 1  # last second of the window (relative seconds)
    opened = c_day * 86400 + rng.integers(8 * 3600, 22 * 3600, nc)
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
    u_t = np.where(is_open, c_day + 14.0, closed / 86400.0)
    u_min = np.full(N, 1e12)
    np.minimum.at(u_min, c_cust[unresolved], u_t[unresolved])
    T = scale_after(T, u_min, P["hr_unresolved_complaint"])

    # ------------------------------------------------------------------ surveys
    hi1 = np.minimum(np.floor(T) - 7, D - 1)
    elig = hi1 - (S + 7) >= 14
    p_s = min(1.0, P["survey_share"] / max(elig.mean(), 1e-9))
    sv = elig & (rng.random(N) < p_s)
    d1 = np.where(sv, S + 7 + np.floor(rng.random(N) * (hi1 - S - 7 + 1)), -1).astype(np.int64)
    twice = sv & (rng.random(N) < P["survey_twice_share"])
    d2 = np.where(twice, d1 + 91 + rng.integers(0, 270, N), -1)
    # responses: first survey for all sv, second for twice (validity checked after churn update)
    r_cust = np.concatenate([np.flatnonzero(sv), np.flatnonzero(twice)])
    r_no = np.concatenate([np.zeros(sv.sum(), np.int8), np.ones(twice.sum(), np.int8)])
    nr = r_cust.size
    gl = P["attitude_loading"]
    f = gl * g[r_cust] + np.sqrt(1 - gl**2) * rng.standard_normal(nr)
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
    mult = np.ones(N)
    mult[r_cust[first]] = np.array([P["hr_expectation"][k] for k in ("below", "met", "above")])[
        egrp[first]]
    d1f = np.where(sv, d1, 1e12).astype(float)
    T = scale_after(T, d1f, mult)
    member &= J < np.floor(T)  # later events may have moved churn before the join date
    # validity of second surveys
    ok2 = twice & (d2 <= np.minimum(np.floor(T) - 7, D - 1))
    keep_r = first | ok2[r_cust]
    d_resp = np.where(first, d1[r_cust], d2[r_cust])
    # drop complaints after the (updated) churn time
    ck = c_day < T[c_cust]
    # planted 90-day windows: only for surveys with complete follow-up
    W = P["window_days"]
    planted = keep_r & (d_resp + W <= D - 1)
    rep_flag = np.full((N, 2), -1, np.int8)
    rep_flag[r_cust[planted], r_no[planted]] = repeat[planted]
    wstart = np.full((N, 2), -10**9, np.int64)
    wstart[r_cust[planted], r_no[planted]] = d_resp[planted]

    # deal proneness (self-interest vs trust loyalty among satisfied & loyal)
    dp_share = np.where(seg == 1, P["deal_prone_share"]["value"], P["deal_prone_share"]["default"])
    deal = rng.random(N) < dp_share
    fp = first & planted
    sat_loyal = np.zeros(N, bool)
    sat_loyal[r_cust[fp]] = (sat[fp] >= 4) & repeat[fp]
    self_int = sat_loyal & (rng.random(N) < P["self_interest_share"])
    deal = np.where(sat_loyal, self_int, deal)
    p_disc = np.where(deal, P["deal_p"], np.where(sat_loyal, P["trust_p"], P["plain_p"]))
    dlo, dhi = np.where(deal, P["deal_depth"][0], P["plain_depth"][0]), np.where(
        deal, P["deal_depth"][1], P["plain_depth"][1])
    depth = dlo + rng.random(N) * (dhi - dlo)

    # ------------------------------------------------------------------ transactions
    sm = np.array([1.0, 0.9, 0.95, 0.95, 1.0, 1.15, 0.95, 0.95, 0.95, 1.0, 1.4, 1.2])
    wday = np.array([sm[(start + dt.timedelta(days=i)).month - 1] for i in range(0, D, 1)])
    wday /= wday.mean()
    Lam = np.concatenate([[0.0], np.cumsum(wday)])

    def lam_at(t: np.ndarray) -> np.ndarray:
        t = np.clip(t, 0, D)
        i = np.minimum(np.floor(t).astype(np.int64), D - 1)
        return Lam[i] + (t - i) * wday[i]

    rate = P["rate_per_day_median"] * np.exp(P["rate_sigma"] * z_act)
    rate = rate * np.where(member, P["member_rate_multiplier"], 1.0)
    Eend = np.minimum(T, D)
    LS, LE = lam_at(S.astype(float)), lam_at(Eend)
    n_tx = rng.poisson(rate * np.maximum(LE - LS, 0))
    t_cust = np.repeat(np.arange(N, dtype=np.int64), n_tx)
    v = LS[t_cust] + rng.random(t_cust.size) * (LE - LS)[t_cust]
    t_day = np.searchsorted(Lam, v, side="right") - 1
    t_day = np.clip(t_day, S[t_cust], D - 1)
    del v
    # thinning: members buy x1.08 only after joining
    keep = ~(member[t_cust] & (t_day < J[t_cust])
             & (rng.random(t_cust.size) > 1 / P["member_rate_multiplier"]))
    t_cust, t_day = t_cust[keep], t_day[keep]
    del keep
    # first purchase on the signup date
    t_cust = np.concatenate([np.arange(N, dtype=np.int64), t_cust])
    t_day = np.concatenate([S, t_day])
    # planted windows: remove purchases of non-repeaters, add one for repeaters without one
    drop = np.zeros(t_cust.size, bool)
    add_c, add_d = [], []
    for k in range(2):
        ws = wstart[t_cust, k]
        inw = (t_day > ws) & (t_day <= ws + W)
        fl = rep_flag[t_cust, k]
        drop |= inw & (fl == 0)
        has = np.bincount(t_cust[inw & (fl == 1)], minlength=N)
        need = np.flatnonzero((rep_flag[:, k] == 1) & (has == 0))
        room = np.clip(np.minimum(np.floor(T[need]), D - 1) - wstart[need, k], 1, W)
        add_c.append(need)
        add_d.append(wstart[need, k] + 1 + np.floor(rng.random(need.size) * room).astype(np.int64))
    t_cust = np.concatenate([t_cust[~drop], *add_c])
    t_day = np.concatenate([t_day[~drop], *add_d])
    del drop, ws, inw, fl
    nt = t_cust.size
    # attributes
    pref = rng.choice(K, N, p=P["cat_p"])
    cat = np.where(rng.random(nt) < P["pref_cat_share"], pref[t_cust],
                   rng.choice(K, nt, p=P["cat_p"])).astype(np.int8)
    mu = P["order_median"] * np.exp(P["order_sigma_customer"] * z_amt)
    lst = mu[t_cust] * np.asarray(P["cat_price_mult"])[cat] * np.exp(
        rng.normal(0, P["order_sigma_row"], nt))
    lst = np.round(np.maximum(lst, 1.0), 2)
    disc = np.where(rng.random(nt) < p_disc[t_cust],
                    np.round(lst * depth[t_cust] * (0.7 + 0.6 * rng.random(nt)), 2), 0.0)
    amount = np.round(lst - disc, 2)
    mrate = np.asarray(P["cat_margin"])[cat] + rng.normal(0, 0.03, nt)
    margin = np.round(lst * mrate - disc, 2)
    del lst, mrate
    chan = perm[t_cust, np.floor(rng.random(nt) * n_ch[t_cust]).astype(np.int64)]
    cat = _plant_sequence(cat, t_cust, t_day, N, seed)  # own generator: every other column keeps its values
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
    order = np.argsort(t_day * (N + 1) + t_cust, kind="stable")
    t_cust = t_cust[order].astype(np.int32)
    t_day = t_day[order].astype(np.int32)
    cat = cat[order]
    amount = amount[order]
    margin = margin[order]
    disc = disc[order]
    chan = chan[order]
    del order
    nt = t_cust.size

    # ------------------------------------------------------------------ churn
    churned = T < D
    had_unres = u_min < T
    complained = np.bincount(c_cust[ck], minlength=N) > 0
    unres_obs = np.bincount(c_cust[ck & unresolved], minlength=N) > 0
    reason_w = np.array([0.12, 0.14, 0.04, 0.14, 0.10, 0.12, 0.06, 0.14, 0.09, 0.05])
    reason_unres = reason_w.copy()
    reason_unres[2] = 1.5
    reason_low = reason_w.copy()
    reason_low[[0, 1]] *= 2.5
    reason = np.full(N, -1)
    for sel, wv in ((churned & had_unres, reason_unres),
                    (churned & ~had_unres & (g < -0.5), reason_low),
                    (churned & ~had_unres & (g >= -0.5), reason_w)):
        reason[sel] = rng.choice(10, int(sel.sum()), p=wv / wv.sum())

    # ------------------------------------------------------------------ members & points
    mem_idx = np.flatnonzero(member)
    nm = mem_idx.size
    mpos = np.full(N, -1)
    mpos[mem_idx] = np.arange(nm)
    left = np.full(N, -1, np.int64)
    lc = member & churned
    left[lc] = np.floor(T[lc]).astype(np.int64) + rng.integers(0, 61, int(lc.sum()))
    lo_ = member & ~churned & (rng.random(N) < 0.04)
    left[lo_] = J[lo_] + np.floor(rng.random(int(lo_.sum())) * (D - 1 - J[lo_])).astype(np.int64)
    left[left > D - 1] = -1
    left_eff = np.where(left >= 0, left, D + 10)
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
    deal_m = deal[mem_idx]
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
    p_c, p_d, p_p, p_k = p_c[o], p_d[o], p_p[o], p_k[o]

    # ------------------------------------------------------------------ PII
    wcust = max(6, len(str(N)))
    cid = _ids("C", N, wcust)
    sn = rng.integers(0, len(_SURNAMES), N)
    gn = rng.integers(0, len(_GIVEN), N)
    sn_zh = pa.array([s[0] for s in _SURNAMES])
    sn_py = pa.array([s[1] for s in _SURNAMES])
    gn_zh = pa.array([s[0] for s in _GIVEN])
    gn_py = pa.array([s[1] for s in _GIVEN])
    snp = sn_py.take(pa.array(sn))
    gnp = gn_py.take(pa.array(gn))
    if lang == "zh":
        name = pc.binary_join_element_wise(sn_zh.take(pa.array(sn)), gn_zh.take(pa.array(gn)), "")
    else:
        name = pc.binary_join_element_wise(snp, gnp, " ")
    num = pc.cast(pa.array(rng.integers(1, 9999, N)), pa.string())
    local = pc.utf8_lower(pc.binary_join_element_wise(snp, gnp, num, ""))
    dom = pa.array(_DOMAINS).take(pa.array(rng.integers(0, len(_DOMAINS), N)))
    email = pc.binary_join_element_wise(local, dom, "@")
    phone_n = (np.asarray(_MOBILE_PREFIX)[rng.integers(0, len(_MOBILE_PREFIX), N)] * 10**8
               + rng.integers(0, 10**8, N))
    phone = pc.cast(pa.array(phone_n), pa.string())
    birth = rng.integers(1955, 2006, N)
    gender = rng.choice(2, N, p=[0.54, 0.46])
    traits = _plant_trait_segments(seed, seg, z_amt, birth, end_date.year, lang)

    # ------------------------------------------------------------------ tables
    tabs: dict[str, pa.Table] = {}
    tabs["customers"] = pa.table({
        "customer_id": cid,
        "signup_date": _date(S, base),
        "segment": _labels(L["segment"], seg),
        "region": _labels(L["region"], region),
        "channel": _labels(L["acq"], acq),
        "acquisition_cost": pa.array(acq_cost, pa.float64()),
        "birth_year": pa.array(birth, pa.int64()),
        "gender": _labels(L["gender"], gender),
        "income": pa.array(traits["income"], pa.float64()),
        "occupation": _labels(_TRAIT_L[lang]["occupation"], traits["occupation"]),
        "household_size": pa.array(traits["household_size"], pa.int64()),
        "churn_reason": _labels(L["reason"], np.maximum(reason, 0), mask=reason < 0),
        "churned_at": _churned_at(T, D, base),
        "name": name, "email": email, "phone": phone,
    })
    oid = _ids("O", nt, max(9, len(str(nt))))
    tabs["transactions"] = pa.table({
        "order_id": oid,
        "customer_id": cid.take(pa.array(t_cust)),
        "date": _date(t_day, base),
        "amount": pa.array(amount, pa.float64()),
        "margin": pa.array(margin, pa.float64()),
        "channel": _labels(L["txch"], chan),
        "product_category": _labels(L["cat"], cat),
        "discount": pa.array(disc, pa.float64()),
    })
    # surveys (kept responses, sorted by date)
    ks = np.flatnonzero(keep_r)
    o = np.lexsort((r_cust[ks], d_resp[ks]))
    ks = ks[o]
    ns = ks.size
    anon = rng.random(ns) < P["anonymous_share"]
    weakest = np.argmin(ratings[ks] + rng.random((ns, 5)) * 0.5, axis=1)
    cidx = np.where(sat[ks] == 5, 5, weakest) * 2 + rng.integers(0, 2, ns)
    flat_comments = [c for pair in _COMMENTS[lang] for c in pair]
    cmiss = rng.random(ns) < P["comment_missing_share"]
    sv_cols: dict[str, Any] = {
        "response_id": _ids("R", ns, max(7, len(str(ns)))),
        "customer_id": pc.if_else(pa.array(anon), pa.nulls(ns, pa.string()),
                                  cid.take(pa.array(r_cust[ks]))),
        "date": _date(d_resp[ks], base),
        "satisfaction": pa.array(sat[ks].astype(np.int64)),
        "repurchase_intent": pa.array(intent[ks].astype(np.int64)),
        "recommend": pa.array(recommend[ks].astype(np.int64)),
        "expectation": pa.array(expct[ks].astype(np.int64)),
    }
    for k, d in enumerate(DRIVERS):
        sv_cols[d] = pa.array(ratings[ks, k].astype(np.int64))
    sv_cols["comment"] = _labels(flat_comments, cidx, mask=cmiss)
    tabs["surveys"] = pa.table(sv_cols)
    # complaints (kept, sorted by opened_at)
    kc = np.flatnonzero(ck)
    kc = kc[np.argsort(opened[kc], kind="stable")]
    nk = kc.size
    sev_p = np.array([[.5, .35, .15], [.35, .4, .25], [.4, .4, .2], [.3, .45, .25], [.4, .4, .2],
                      [.55, .35, .1]])
    usev = rng.random(nk)
    csev = sev_p[c_cat[kc]].cumsum(axis=1)
    sev = (usev[:, None] > csev).sum(axis=1)
    cch = rng.choice(5, nk, p=P["cch_p"])
    tmpl = [c for pair in _COMPLAINTS[lang] for c in pair]
    text = _labels(tmpl, c_cat[kc] * 2 + rng.integers(0, 2, nk))
    extra = rng.choice(4, nk, p=[0.04, 0.04, 0.03, 0.89])
    pre_e, pre_p, bold, stop = _SUFFIX[lang]
    cc = pa.array(c_cust[kc])
    add = pc.if_else(pa.array(extra == 0), pc.binary_join_element_wise(pre_e, email.take(cc), stop, ""),
                     pc.if_else(pa.array(extra == 1),
                                pc.binary_join_element_wise(pre_p, phone.take(cc), stop, ""),
                                pc.if_else(pa.array(extra == 2), pa.scalar(bold), pa.scalar(""))))
    text = pc.binary_join_element_wise(text, add, "")
    base_s = base * 86400
    c_open = is_open[kc]
    ures = unresolved[kc]
    tabs["complaints"] = pa.table({
        "complaint_id": _ids("K", nk, max(7, len(str(nk)))),
        "customer_id": cid.take(cc),
        "opened_at": _ts(opened[kc] + base_s),
        "first_response_at": _ts(np.minimum(first_resp[kc], closed[kc]) + base_s, mask=no_resp[kc]),
        "closed_at": _ts(closed[kc] + base_s, mask=c_open),
        "status": _labels(["open", "closed"], (~c_open).astype(np.int64)),
        "category": _labels(L["ccat"], c_cat[kc]),
        "channel": _labels(L["cch"], cch),
        "severity": _labels(["low", "medium", "high"], sev),
        "handler": _labels(L["handler"], hnd[kc]),
        "resolution": _labels(L["resolution"], rng.integers(0, 5, nk), mask=ures),
        "text": text,
    })
    lvl_left = left[lv_c]
    tabs["members"] = pa.table({
        "customer_id": cid.take(pa.array(lv_c)),
        "joined_at": _date(J[lv_c], base),
        "level": _labels(L["level"], lv_l),
        "level_changed_at": _date(lv_d, base),
        "left_at": _date(np.maximum(lvl_left, 0), base, mask=lvl_left < 0),
    })
    tabs["points"] = pa.table({
        "customer_id": cid.take(pa.array(p_c)),
        "date": _date(p_d, base),
        "points": pa.array(p_p, pa.int64()),
        "kind": _labels(["earn", "redeem", "expire", "bonus"], p_k),
    })

    # ------------------------------------------------------------------ truth (realised checks)
    pos = amount > 0
    rev = np.bincount(t_cust, weights=amount, minlength=N)
    prof = np.bincount(t_cust, weights=margin, minlength=N) - acq_cost
    srt = np.sort(rev)[::-1]
    top20 = srt[: int(round(0.2 * N))].sum() / srt.sum()
    last_buy = np.full(N, -1)
    np.maximum.at(last_buy, t_cust[pos], t_day[pos])
    rel_days = last_buy - S
    long_term = rel_days >= 365
    profitable = prof > 0
    seg4 = {"true_friends": int((profitable & long_term).sum()),
            "butterflies": int((profitable & ~long_term).sum()),
            "barnacles": int((~profitable & long_term).sum()),
            "strangers": int((~profitable & ~long_term).sum())}
    # observed thresholds by satisfaction (planted identified responses)
    pl_ident = np.zeros(nr, bool)
    pl_ident[ks[~anon]] = True
    pl_ident &= planted
    obs = {}
    for s in range(1, 6):
        sel = pl_ident & (sat == s)
        obs[str(s)] = {
            "n": int(sel.sum()),
            "intent_top2": _r(int_high[sel].mean()) if sel.any() else None,
            "repeat_90d": _r(repeat[sel].mean()) if sel.any() else None,
            "conversion_intent_to_repeat": _r(repeat[sel & int_high].mean())
            if (sel & int_high).any() else None,
            "repeat_if_low_intent": _r(repeat[sel & ~int_high].mean())
            if (sel & ~int_high).any() else None,
        }
    fp_id = first & planted
    satis, dis = sat >= 4, sat <= 2
    rc_ = r_cust
    n_fp = max(int(fp_id.sum()), 1)
    cases = {
        "definition": "first survey of each customer with complete 90-day follow-up; satisfied = "
                      "satisfaction >= 4, dissatisfied = satisfaction <= 2 (3 = neutral, in no "
                      "case); loyal = >=1 purchase in (d, d+90]; trust vs self-interest by "
                      "discount share of gross spend (self-interest ~ 0.55 x 15-35% deals, "
                      "trust ~ 0.03 x 5-15%)",
        "satisfied_loyal_trust": _r((fp_id & satis & repeat & ~self_int[rc_]).sum() / n_fp),
        "satisfied_loyal_self_interest": _r((fp_id & satis & repeat & self_int[rc_]).sum() / n_fp),
        "satisfied_not_loyal": _r((fp_id & satis & ~repeat).sum() / n_fp),
        "dissatisfied_not_loyal": _r((fp_id & dis & ~repeat).sum() / n_fp),
        "dissatisfied_loyal": _r((fp_id & dis & repeat).sum() / n_fp),
        "neutral": _r((fp_id & (sat == 3)).sum() / n_fp),
        "dissatisfied_not_loyal_share_of_dissatisfied": _r(
            (fp_id & dis & ~repeat).sum() / max((fp_id & dis).sum(), 1)),
        "contract_share_of_dissatisfied_loyal": _r(
            (fp_id & dis & repeat & is_con).sum() / max((fp_id & dis & repeat).sum(), 1)),
        "self_interest_share_of_satisfied_loyal": P["self_interest_share"],
        "contract_repeat_probability": P["contract_repeat_p"],
    }
    shap = _shapley_r2(ratings[keep_r].astype(float), sat[keep_r].astype(float))
    order_r2 = [DRIVERS[i] for i in np.argsort(-shap)]
    egr_churn = {}
    for k, nmk in enumerate(("below", "met", "above")):
        sel = first & (egrp == k)
        egr_churn[nmk] = _r(churned[r_cust[sel]].mean()) if sel.any() else None
    single, multi = n_ch == 1, n_ch > 1
    nonm = ~member
    mem_rev = rev[member].mean() if member.any() else 0.0
    cm_months = np.maximum(np.minimum(T, D) - S, 0).sum() / 30.44
    open_share = float(c_open.mean()) if nk else 0.0
    comp_counts = np.zeros((MONTHS, K), np.int64)
    np.add.at(comp_counts, (np.searchsorted(mday, c_day[kc], side="right") - 1, c_cat[kc]), 1)
    hcount = np.bincount(hnd[kc], minlength=12)
    truth = {
        "generator": {"module": "workbench.sample", "version": 1, "seed": seed, "customers": N,
                      "lang": lang, "format": fmt},
        "window": {"start": start.isoformat(), "end": end_date.isoformat(), "months": MONTHS,
                   "month_labels": month_labels},
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
            "overall": _r(repeat[pl_ident & int_high].mean()) if (pl_ident & int_high).any()
            else None,
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
            "top20_revenue_share": _r(top20),
            "margin_rate_by_category": dict(zip(L["cat"], P["cat_margin"], strict=True)),
            "price_multiplier_by_category": dict(zip(L["cat"], P["cat_price_mult"], strict=True)),
            "refund_row_share": _r((~pos).sum() / nt),
            "overall_margin_rate": _r(margin.sum() / amount.sum()),
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
            "observed_rate_per_customer_month": _r(nk / max(cm_months, 1)),
            "seasonality_by_calendar_month": {str(k): v for k, v in P["seasonality"].items()},
            "rising_category": L["ccat"][P["rising_category"]],
            "rising_intensity": f"x(1 + {P['rising_total_growth']} * month_index / 23)",
            "spike_category": L["ccat"][P["spike_category"]],
            "spike_month": month_labels[P["spike_month_index"]],
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
            "stalled_share": P["stalled_share"], "open_share": _r(open_share),
            "unresolved_share": _r(ures.mean()) if nk else None,
            "text_with_email": int((extra[:] == 0).sum()), "text_with_mobile": int((extra == 1).sum()),
            "text_with_html_b": int((extra == 2).sum()),
        },
        "churn": {
            "model": "exponential latent churn time, proportional hazards; piecewise multipliers "
                     "apply from the event time on",
            "base_annual_churn": P["churn_base_annual"],
            "hazard_ratios": {"per_sd_activity": P["hr_activity_per_sd"],
                              "per_sd_attitude": P["hr_attitude_per_sd"],
                              "per_extra_channel": P["hr_per_extra_channel"],
                              "contract_segment": P["hr_contract"],
                              "after_unresolved_complaint": P["hr_unresolved_complaint"],
                              "after_joining_programme": P["hr_member"],
                              "after_survey_by_expectation": P["hr_expectation"]},
            "channels": "n_channels = 1 + Binomial(3, logistic(-1 + z_activity)); busier customers"
                        " use more channels (confounder)",
            "churned_share": _r(churned.mean()),
            "naive_churn_single_channel": _r(churned[single].mean()),
            "naive_churn_multi_channel": _r(churned[multi].mean()),
            "churn_with_unresolved_complaint": _r(churned[had_unres].mean()) if had_unres.any()
            else None,
            "churn_without_unresolved_complaint": _r(churned[~had_unres].mean()),
            "churn_complainers_unresolved": _r(churned[unres_obs].mean())
            if unres_obs.any() else None,
            "churn_complainers_all_resolved": _r(churned[~unres_obs & complained].mean())
            if (~unres_obs & complained).any() else None,
        },
        "loyalty_programme": {
            "join_model": f"logit = {P['member_logit_intercept']} + "
                          f"{P['member_logit_activity']}*z_activity + "
                          f"{P['member_logit_attitude']}*attitude",
            "member_share": _r(member.mean()),
            "true_effect": {"purchase_rate_multiplier": P["member_rate_multiplier"],
                            "churn_hazard_ratio": P["hr_member"]},
            "naive_gap": {"revenue_ratio_members_vs_others": _r(mem_rev / max(rev[nonm].mean(), 1e-9)),
                          "churn_members": _r(churned[member].mean()),
                          "churn_others": _r(churned[nonm].mean())},
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
        "volumes": {},
    }
    truth["category_sequence"] = _sequence_truth(t_cust, cat, amount, N, L["cat"])
    # ------------------------------------------------------------------ write
    paths: dict[str, Path] = {}
    rows: dict[str, int] = {}
    for name in TABLES:
        pth = out / f"{name}.{fmt}"
        _write(tabs[name], pth, fmt)
        paths[name] = pth
        rows[name] = tabs[name].num_rows
    truth["volumes"] = dict(rows)
    truth["trait_segments"] = traits["truth"]
    pros = _prospects(seed, N, end_date.year, lang)
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


# --------------------------------------------------------------------------- trait segments (issue 16)
_TRAIT_L = {
    "en": {"occupation": ["Student", "Service worker", "Office worker", "Skilled trade", "Manager or professional",
                          "Retired"]},
    "zh": {"occupation": ["学生", "服务业人员", "办公室职员", "技术工人", "管理或专业人员", "退休"]},
}
#: planted trait segments: name, age centre / spread, value tilt (per SD of spend level), log-income
#: median, dominant occupation, household size range
TRAIT_SEGMENTS = (
    {"name": "young_singles", "age": 25.0, "age_sd": 5.0, "tilt": 0.0, "income": 60_000, "occupation": 1,
     "household": (1, 1)},
    {"name": "young_families", "age": 38.0, "age_sd": 6.0, "tilt": 0.0, "income": 110_000, "occupation": 2,
     "household": (3, 5)},
    {"name": "affluent_professionals", "age": 47.0, "age_sd": 8.0, "tilt": 1.2, "income": 320_000, "occupation": 4,
     "household": (2, 2)},
    {"name": "retirees", "age": 66.0, "age_sd": 5.0, "tilt": 0.0, "income": 45_000, "occupation": 5,
     "household": (1, 2)},
)
TRAIT_OCCUPATION_P = 0.8  # share of a segment in its dominant occupation (the rest spread evenly)
TRAIT_INCOME_SIGMA = 0.25  # log-income spread inside a segment


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


def _plant_trait_segments(seed: int, seg: np.ndarray, z_amt: np.ndarray, birth: np.ndarray, year: int,
                          lang: str) -> dict[str, Any]:
    """Planted trait segments (issue 16): a latent segment per customer drawn from age (existing
    ``birth_year``) with affluent professionals tilted toward a high spend level (``z_amt``), then
    ``income``, ``occupation`` and ``household_size`` drawn from it. Its own generator
    (``[seed, 1601]``), so every other column keeps its values."""
    rng = np.random.default_rng([seed, 1601])
    age = (year - birth).astype(float)
    seg_of = _trait_segment_of(rng, age, z_amt)
    out = _trait_draw(rng, seg_of)
    names = [s["name"] for s in TRAIT_SEGMENTS]
    n = seg_of.size
    out["truth"] = {
        "model": "segment ~ softmax(-((age - centre)/spread)^2/2 + tilt * z_spend_level); income lognormal "
                 f"(sigma {TRAIT_INCOME_SIGMA}) around the segment median; occupation = the segment's dominant one "
                 f"with p {TRAIT_OCCUPATION_P}, else any other; household size uniform in the segment's range",
        "segments": {s["name"]: {"age_centre": s["age"], "age_sd": s["age_sd"], "spend_tilt": s["tilt"],
                                 "income_median": s["income"],
                                 "occupation": _TRAIT_L[lang]["occupation"][s["occupation"]],
                                 "household_size": list(s["household"]),
                                 "share": _r(float((seg_of == k).mean()))} for k, s in enumerate(TRAIT_SEGMENTS)},
        "names": names,
        "labels": "".join(map(str, seg_of.tolist())),
        "labels_note": "one digit per customer in customer_id order: index into names",
        "columns": ["birth_year", "income", "occupation", "household_size"],
        "mean_order_level_by_segment": {names[k]: _r(float(z_amt[seg_of == k].mean())) if (seg_of == k).any()
                                        else None for k in range(len(names))},
        "contract_or_premium_share": _r(float(np.isin(seg, (2, 3)).mean())) if n else None,
    }
    return out


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
