"""Members' churn hazard after joining (workbench.programme.member_churn, issue 15 item 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import programme as prog


@pytest.fixture(scope="module")
def churn_res(sample_ds):
    return prog.member_churn(sample_ds, sample_ds.date_range("transactions")[1])


def test_member_churn_hazard_recovers_planted_ratio(churn_res, truth):
    """The planted 0.85 lies inside the adjusted 95% interval on the 8k fixture (about 0.86, 0.78 to 0.95);
    the naive gap is far larger (selection).

    Fragile, and said so in the README: on the 20k sample the interval is 0.86 to 0.98 and misses 0.85.
    The sample draws a member's join date inside their already-drawn lifetime (a customer who will join
    cannot leave before joining: immortal non-member time, biasing the ratio up; the joint latent-activity
    model, which adjusts activity fully, gives about 1.1), while activity measured over the first 90 days
    under-adjusts self-selection (biasing it down). The Cox estimate lands near 0.85 because the two
    partly cancel.
    """
    m = churn_res.metrics()["member_churn_hr"]
    planted = truth["loyalty_programme"]["true_effect"]["churn_hazard_ratio"]
    assert m["ci_low"] <= planted <= m["ci_high"] and m["source"] == "churned_at"
    naive = pd.DataFrame(m["naive"]).set_index("group")
    assert naive.at["members", "share"] == pytest.approx(truth["loyalty_programme"]["naive_gap"]["churn_members"],
                                                         abs=0.03)
    # the naive hazard-like ratio of shares is much further from 1 than the adjusted ratio
    assert naive.at["members", "share"] / naive.at["others", "share"] < m["ci_low"]
    keys = {f.key for f in churn_res.findings("en")}
    assert {"member_churn_adjusted", "member_churn_naive"} <= keys


def test_member_churn_naive_shares_match_pandas(churn_res, sample_dir):
    """Naive shares: customers with a purchase, members = anyone in the members table, left = churned_at set."""
    cu = pd.read_parquet(sample_dir / "customers.parquet").set_index("customer_id")
    tx = pd.read_parquet(sample_dir / "transactions.parquet")
    buyers = tx.loc[tx.amount > 0, "customer_id"].unique()
    mem = set(pd.read_parquet(sample_dir / "members.parquet")["customer_id"])
    left = cu["churned_at"].reindex(buyers).notna()
    is_m = np.isin(buyers, list(mem))
    naive = churn_res.naive.set_index("group")
    assert naive.at["members", "n"] == is_m.sum() and naive.at["members", "lost"] == left[is_m].sum()
    assert naive.at["others", "lost"] == left[~is_m].sum()
