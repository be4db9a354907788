"""Shared fixtures: an isolated cache directory and small sample datasets.

The sample datasets are generated once per test session (seeded, so every
run sees the same data) and their TRUTH.json is available for comparisons.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SAMPLE_END = "2026-10"
SAMPLE_CUSTOMERS = 8000
SAMPLE_SEED = 7


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep every test's DuckDB cache out of the user's home."""
    old = os.environ.get("WORKBENCH_CACHE_DIR")
    os.environ["WORKBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("WORKBENCH_PSEUDONYM_KEY", "test-key-not-secret")
    yield
    if old is None:
        os.environ.pop("WORKBENCH_CACHE_DIR", None)
    else:
        os.environ["WORKBENCH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An English Parquet sample: 8,000 customers, 24 months ending 2026-10."""
    from workbench.sample import generate_sample

    out = tmp_path_factory.mktemp("sample_en")
    generate_sample(out, customers=SAMPLE_CUSTOMERS, seed=SAMPLE_SEED, lang="en", fmt="parquet", end=SAMPLE_END)
    return out


@pytest.fixture(scope="session")
def sample_dir_zh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Chinese CSV sample: 3,000 customers, 24 months ending 2026-10."""
    from workbench.sample import generate_sample

    out = tmp_path_factory.mktemp("sample_zh")
    generate_sample(out, customers=3000, seed=SAMPLE_SEED + 1, lang="zh", fmt="csv", end=SAMPLE_END)
    return out


@pytest.fixture(scope="session")
def truth(sample_dir: Path) -> dict:
    return json.loads((sample_dir / "TRUTH.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def sample_ds(sample_dir: Path):
    from workbench.engine import open_dataset

    ds = open_dataset(sample_dir)
    yield ds
    ds.close()
