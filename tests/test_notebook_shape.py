"""Notebooks are for reading (issue 13): a markdown line saying what a section answers, then a short cell.

Counted on the committed notebooks: every code cell except the tagged parameters cell has at most
``MAX_LINES`` non-blank lines, each analysis section is shown through ``nb.show`` (the one renderer),
and no cell re-implements presentation glue (metric recording, translation lookups, number formatting).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_LINES = 6
GLUE = re.compile(r"\bnb\.rec\.|\bviz\.(table|show|finding|note)\(|\bfmt_(int|num|pct|money|date)\(|\bnb\.t\(|\btr\(")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _code(cell: dict) -> list[str]:
    return [line for line in "".join(cell["source"]).splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_are_short(path: Path) -> None:
    long = [(i, len(_code(c))) for i, c in enumerate(_cells(path))
            if c["cell_type"] == "code" and "parameters" not in c.get("metadata", {}).get("tags", [])
            and len(_code(c)) > MAX_LINES]
    assert not long, f"{path.name}: cells over {MAX_LINES} lines (index, lines): {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_sections_use_the_renderer_and_say_what_they_answer(path: Path) -> None:
    cells = _cells(path)
    shows = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and "nb.show(" in "".join(c["source"])]
    assert len(shows) >= 3, f"{path.name}: sections must go through nb.show"
    for i in shows:
        before = cells[i - 1] if i else None
        assert before is not None and (before["cell_type"] == "markdown" or "nb.show(" in "".join(before["source"])), \
            f"{path.name}: cell {i} has no markdown heading before its section"
    glue = [(i, m.group(0)) for i, c in enumerate(cells) if c["cell_type"] == "code"
            for m in [GLUE.search("".join(c["source"]))] if m]
    assert not glue, f"{path.name}: presentation glue in notebook cells (move it into the result): {glue}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_headings_are_questions_or_statements_not_empty(path: Path) -> None:
    for c in _cells(path):
        if c["cell_type"] == "markdown":
            text = "".join(c["source"]).strip()
            assert text, f"{path.name}: empty markdown cell"
