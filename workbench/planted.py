"""The planted truth of the synthetic sample: parameters, labels and the object every table generator shares.

:mod:`workbench.sample` draws the tables; this module holds what they have in common:

* ``P`` — every generating parameter (hazard ratios, rates, shares, thresholds), written to TRUTH.json;
* the labels in English and Chinese (``LABELS``) and the free-text templates;
* :class:`Planted` — one frozen object per run with the parameters, the time window, the seed, the
  chunking and the running :class:`Tally` of realised checks from which TRUTH.json is finalised;
* :class:`Cohort` — the per-customer latent draws of one chunk of customers that more than one table
  needs (activity, spend level, attitude, segment, channels, signup, programme join, churn time).

How to add a planted effect
---------------------------
Write one function ``plant_<effect>(pl, cohort, ..., rng)`` in :mod:`workbench.sample` that changes only
the columns it plants, draws from its own generator ``pl.aux_rng(tag, chunk)`` (a new integer ``tag``;
1601 traits and 1602 category sequence are taken) so that every other column keeps its values, adds its
realised counts to ``pl.tally`` and its parameters to TRUTH.json in :func:`workbench.sample.finalise_truth`.

Random streams
--------------
Customers are generated in chunks (``Planted.chunk_size``, default 200,000). Each chunk has its own main
generator, threaded through the table generators in a fixed order: chunk 0 uses ``default_rng(seed)``
(so a sample of at most one chunk is the same as before chunking), chunk ``k > 0`` uses
``default_rng([seed, 0, 7919, k])``; the auxiliary generators are ``default_rng([seed, tag])`` for chunk 0
and ``default_rng([seed, tag, 7919, k])`` after. Same seed, size and chunk size give byte-identical files.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from math import factorial
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["P", "LABELS", "TABLES", "MONTHS", "DRIVERS", "Planted", "Cohort", "Tally", "CHUNK_SIZE", "churn_time"]

TABLES = ("customers", "transactions", "surveys", "complaints", "members", "points")
MONTHS = 24
DRIVERS = ("product_quality", "service_level", "delivery", "staff", "value_for_money")
CHUNK_SIZE = 200_000
_EPOCH = dt.date(1970, 1, 1)
_ND = NormalDist()
_CHUNK_SALT = 7919

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
    # programme join (selection on what the data show): a customer wants to join with
    # logit = intercept + activity * log(1 + purchases after the signup purchase in the signup month), joining
    # ``member_join_after_days`` + Exponential(``member_wait_mean_days``) days after signup, a draw independent
    # of the churn time (the join counts only if it comes before the churn time and the window end)
    "member_join_after_days": 90, "member_wait_mean_days": 120.0,
    "member_logit_intercept": -1.0, "member_logit_activity": 3.5,
    "level_thresholds_6m": [0.0, 1500.0, 5000.0, 15000.0],
    "points_expire_months": 12, "join_bonus": 200, "bonus_p": 0.03, "redeem_p": 0.12,
    "redeem_min_balance": 500,
    # planted category sequence (cross-sell): customers whose first purchase is in ``seq_first`` buy
    # ``seq_next`` as their next new category with probability ``seq_p`` (plus the chance they had anyway)
    "seq_first": 2, "seq_next": 5, "seq_p": 0.5,
}



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



LABELS = _L


# --------------------------------------------------------------------------- helpers
def _month_add(y: int, m: int, k: int) -> tuple[int, int]:
    i = y * 12 + (m - 1) + k
    return i // 12, i % 12 + 1


def _window(end: Any) -> tuple[dt.date, dt.date, list[dt.date]]:
    """First day, last day and the 25 month starts of the 24-month window ending with the month ``end``
    (``"YYYY-MM"``, a date, or ``None`` = the month before today)."""
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


def _hinge(s: np.ndarray | float, base: float, slope: float, tau: float) -> Any:
    return np.clip(base + slope * np.maximum(0.0, np.asarray(s, dtype=float) - tau), 0.0, 1.0)


def _r(x: float, n: int = 4) -> float:
    return round(float(x), n)


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
    out = np.zeros(k)
    for j in range(k):
        for mask in range(1 << k):
            if mask >> j & 1:
                continue
            size = bin(mask).count("1")
            w = factorial(size) * factorial(k - size - 1) / factorial(k)
            out[j] += w * (r2[mask | 1 << j] - r2[mask])
    return out


# --------------------------------------------------------------------------- the shared objects
class Tally(dict):
    """Running sums of the realised checks across chunks (counts, sums of floats, count arrays).

    ``add(name=value, ...)`` adds to the running value (numbers or numpy arrays of a fixed shape);
    ``first(name=value)`` keeps the value of the first chunk only (used for what needs all customers of a
    chunk at once: the top-20% revenue share, the Shapley R^2 shares); ``extend(name=text)`` appends text
    (the per-customer trait labels). Sums are taken in chunk order, so a one-chunk run gives the same
    floats as a whole-array computation.
    """

    def add(self, **kw: Any) -> None:
        for k, v in kw.items():
            self[k] = self[k] + v if k in self else v

    def first(self, **kw: Any) -> None:
        for k, v in kw.items():
            self.setdefault(k, v)

    def extend(self, **kw: str) -> None:
        for k, v in kw.items():
            self.setdefault(k, []).append(v)

    def ratio(self, num: str, den: str) -> float | None:
        """``num / den`` rounded for TRUTH.json, ``None`` when the denominator is 0."""
        d = self.get(den, 0)
        return _r(self.get(num, 0) / d) if d else None


@dataclasses.dataclass(frozen=True)
class Planted:
    """One run's planted truth: parameters, window, seed, chunking and the tally of realised checks.

    Parameters
    ----------
    seed, customers, lang, fmt
        As passed to :func:`workbench.sample.generate_sample`.
    start, end
        First and last day of the 24-month window.
    month_starts
        The 25 month boundaries (first days) from ``start``.
    chunk_size
        Customers per chunk (the last chunks are made equal in size, never tiny).
    params
        The generating parameters (``P``).
    tally
        Realised counts and sums, added chunk by chunk (mutable inside the frozen object).
    """

    seed: int
    customers: int
    lang: str
    fmt: str
    start: dt.date
    end: dt.date
    month_starts: tuple[dt.date, ...]
    chunk_size: int = CHUNK_SIZE
    params: dict[str, Any] = dataclasses.field(default_factory=lambda: P)
    tally: Tally = dataclasses.field(default_factory=Tally)

    @classmethod
    def make(cls, seed: int, customers: int, lang: str, fmt: str, end: Any,
             chunk_size: int = CHUNK_SIZE) -> Planted:
        """Build the object for one run (validates nothing; :func:`generate_sample` does)."""
        start, end_date, starts = _window(end)
        return cls(int(seed), int(customers), lang, fmt, start, end_date, tuple(starts), int(chunk_size))

    # ---- window
    @property
    def base(self) -> int:
        """Days from 1970-01-01 to the window start (date32 offset)."""
        return (self.start - _EPOCH).days

    @property
    def days(self) -> int:
        """Days in the window (day index 0 .. days - 1)."""
        return (self.end - self.start).days + 1

    @property
    def mday(self) -> np.ndarray:
        """Day index of the 25 month boundaries."""
        return np.array([(m - self.start).days for m in self.month_starts], dtype=np.int64)

    @property
    def month_labels(self) -> list[str]:
        return [m.strftime("%Y-%m") for m in self.month_starts[:MONTHS]]

    @property
    def labels(self) -> dict[str, list[str]]:
        return _L[self.lang]

    # ---- chunks and random streams
    def chunks(self) -> list[tuple[int, int]]:
        """``(offset, size)`` of each chunk: ``ceil(customers / chunk_size)`` chunks of near-equal size."""
        k = max(1, -(-self.customers // self.chunk_size))
        sizes = [self.customers // k + (i < self.customers % k) for i in range(k)]
        offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        return list(zip(offs.tolist(), sizes, strict=True))

    def rng(self, chunk: int) -> np.random.Generator:
        """The main generator of chunk ``chunk`` (chunk 0: ``default_rng(seed)``)."""
        return np.random.default_rng(self.seed if chunk == 0 else [self.seed, 0, _CHUNK_SALT, chunk])

    def aux_rng(self, tag: int, chunk: int) -> np.random.Generator:
        """An effect's own generator (chunk 0: ``default_rng([seed, tag])``), so other columns keep their values."""
        return np.random.default_rng([self.seed, tag] if chunk == 0 else [self.seed, tag, _CHUNK_SALT, chunk])


@dataclasses.dataclass
class Cohort:
    """Per-customer latent draws of one chunk that several tables need (index = customer within the chunk).

    Filled in order by :func:`workbench.sample.draw_customers` (traits, latents, churn time ``T``, the
    programme) and updated by the events that move the churn time (complaints, surveys): ``T`` is the
    latent churn time in days from the window start (float; ``>= days`` = not churned in the window).
    """

    chunk: int
    offset: int  # customers before this chunk (customer_id = offset + index + 1)
    n: int
    seg: np.ndarray  # 0 mass, 1 value, 2 premium, 3 contract
    region: np.ndarray
    acq: np.ndarray
    acq_cost: np.ndarray
    S: np.ndarray  # signup day (first purchase)
    z_act: np.ndarray  # activity (purchase rate, per SD)
    z_amt: np.ndarray  # spend level (order size)
    g: np.ndarray  # attitude
    n_ch: np.ndarray  # purchase channels the customer has (1-4)
    perm: np.ndarray  # channels in order of use
    T: np.ndarray  # latent churn time (days, float)
    member: np.ndarray  # joined the programme inside the window (bool)
    J: np.ndarray  # join day (meaningful where member)
    h: np.ndarray | None = None  # baseline churn hazard per day (fixed traits)
    E: np.ndarray | None = None  # unit exponential draw: churn when the cumulative hazard reaches it
    changes: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    early_cust: np.ndarray | None = None  # purchases in the first days after signup (drawn with the join)
    early_v: np.ndarray | None = None  # their position on the seasonal time scale (see draw_transactions)

    @property
    def contract(self) -> np.ndarray:
        return self.seg == 3

    def hazard_change(self, name: str, at: np.ndarray, mult: np.ndarray | float) -> None:
        """Register a churn-hazard multiplier ``mult`` from day ``at`` on (``inf`` = never) and recompute ``T``
        exactly (piecewise-exponential, :func:`churn_time`). Change points after the churn time do not move it,
        so a potential event (a join date drawn independently of the lifetime) can be registered before it is
        known whether it happens before the churn."""
        self.changes[name] = (np.asarray(at, float), np.broadcast_to(np.asarray(mult, float), (self.n,)))
        self.T = churn_time(self.S, self.h, self.E, list(self.changes.values()))


def churn_time(S: np.ndarray, h: np.ndarray, E: np.ndarray,
               changes: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Churn time of a piecewise-exponential hazard.

    Parameters
    ----------
    S
        Start (signup day).
    h
        Baseline hazard per day from ``S``.
    E
        Unit exponential draws: the churn time is when the cumulative hazard reaches ``E``.
    changes
        ``(at, mult)`` pairs: the hazard is multiplied by ``mult`` from day ``at`` on (``at <= S`` = from ``S``,
        ``inf`` = never); multipliers compound.

    Returns
    -------
    numpy.ndarray
        The churn time in days (float).
    """
    S = S.astype(float)
    if not changes:
        return S + E / h
    at = np.column_stack([np.maximum(c[0], S) for c in changes])
    mult = np.column_stack([c[1] for c in changes])
    o = np.argsort(at, axis=1, kind="stable")
    at, mult = np.take_along_axis(at, o, axis=1), np.take_along_axis(mult, o, axis=1)
    t, rate, left = S.copy(), h.astype(float).copy(), E.astype(float).copy()
    out = np.full(S.size, np.nan)
    with np.errstate(invalid="ignore"):
        for k in range(at.shape[1]):
            seg = (at[:, k] - t) * rate
            done = np.isnan(out) & (seg >= left)
            out[done] = t[done] + left[done] / rate[done]
            go = np.isnan(out)
            left[go] -= seg[go]
            t[go] = at[go, k]
            rate[go] *= mult[go, k]
    go = np.isnan(out)
    out[go] = t[go] + left[go] / rate[go]
    return out
