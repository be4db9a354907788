"""Run one project notebook headless as the report pack does, and read back its metrics record.

Shared by the ``test_nb_*`` files (each used to carry its own copy of this).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import papermill as pm

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@contextlib.contextmanager
def report_mode() -> Iterator[None]:
    """``WORKBENCH_REPORT=1`` for the kernel papermill starts (manager-page mode), restored afterwards."""
    old = os.environ.get("WORKBENCH_REPORT")
    os.environ["WORKBENCH_REPORT"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_REPORT", None)
        else:
            os.environ["WORKBENCH_REPORT"] = old


def run_notebook(notebook: str | Path, data: str | Path, lang: str, out_dir: Path, period: str = "2026-10",
                 *, section: str | None = None, tag: str | None = None, **params: Any) -> dict:
    """Execute ``notebook`` on ``data`` for ``period`` in ``lang``; return its metrics record.

    The executed copy is ``out_dir / f"out_{tag}.ipynb"`` (``tag`` defaults to ``lang``), the record
    ``metrics_{tag}.json`` beside it. ``section`` checks the record's section name. Every headline
    finding must pass the evidence rule.
    """
    nb = Path(notebook) if Path(notebook).is_absolute() else NOTEBOOKS / notebook
    tag = tag or lang
    metrics = out_dir / f"metrics_{tag}.json"
    with report_mode():
        pm.execute_notebook(str(nb), str(out_dir / f"out_{tag}.ipynb"), cwd=str(nb.parent), progress_bar=False,
                            kernel_name="python3",
                            parameters={"data": str(data), "period": period, "lang": lang,
                                        "metrics_path": str(metrics), **params})
    payload = json.loads(metrics.read_text(encoding="utf-8"))
    if section is not None:
        assert payload["section"] == section
    for f in payload.get("findings", []):
        assert not f["headline"] or f.get("evidence", "") in ("", "ok"), f
    return payload
