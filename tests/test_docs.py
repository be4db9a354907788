"""README stays true: every notebook parameter and every workbench.toml table key is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.reports import discover_notebooks, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _parameter_table() -> dict[str, str]:
    """Rows of README's notebook-parameter table: name -> the notebook column."""
    section = README.split("### Notebook parameters", 1)[1]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([a-z_0-9]+)` \|.*\| ([^|]+) \|$", line.strip())
        if m:
            rows[m.group(1)] = m.group(2).strip()
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.parametrize("nb", discover_notebooks(), ids=lambda nb: nb.name)
def test_every_notebook_parameter_is_in_the_readme_table(nb):
    table = _parameter_table()
    number = nb.name[:2]
    for p in notebook_parameters(nb.path):
        assert p.name in table, f"{nb.name}: parameter {p.name!r} missing from README's parameter table"
        where = table[p.name]
        assert where == "all" or number in re.findall(r"\d\d", where), \
            f"{nb.name}: README says {p.name!r} belongs to {where!r}"


def test_every_table_key_is_in_the_readme():
    from workbench import config

    keys = set(config._TABLE_KEYS) | set(getattr(config, "_COLUMN_KEYS", set()))
    missing = sorted(k for k in keys if not re.search(rf"`{k}\b|^\s*{k}\s*=", README, re.M))
    assert not missing, f"workbench.toml keys not documented in README: {missing}"
