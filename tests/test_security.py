"""Security cases from issue 12: personal data in labels and free text, pseudonym keys, XSS,
run integrity (killed runs, corrupt metrics) and the output-folder lock.

Config-safety cases (expression sandbox, inputs) live in ``tests/test_config_safety.py``.
Each test here failed before its fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from workbench import viz
from workbench.metrics import Recorder
from workbench.privacy import (
    PIILeakError,
    assert_no_pii,
    find_pii,
    mask_label,
    names_maskable,
    pseudonymise,
    quote_text,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures") / "notebooks"
PERIOD = "2026-10"

GLUED = {
    "VIP13812345678": "13812345678",
    "Agent_11010519491231002X": "11010519491231002X",
    "card6222020200112233445": "6222020200112233445",
}


# ------------------------------------------------------------------ 1. PII glued to letters in labels
@pytest.mark.parametrize("label", list(GLUED))
def test_backstop_finds_pii_glued_to_letters(label: str) -> None:
    with pytest.raises(PIILeakError) as err:
        assert_no_pii({"sections": {"complaints": {"by_category": {label: 12}}}})
    assert GLUED[label] not in str(err.value), "the error never repeats the raw value"
    with pytest.raises(PIILeakError):
        assert_no_pii(f'<div>{{"x":["{label}"]}}</div>')


def test_backstop_ignores_generated_identifiers() -> None:
    # pseudonyms, plotly div ids (uuid4) and digests are not personal data, whatever their digits
    pseudo = pseudonymise([f"C{i}" for i in range(2000)], key="k").tolist()
    assert_no_pii(pseudo)
    assert_no_pii("p_138123456789 and p_110105194912 in a table")
    assert_no_pii('<div id="13812345-6781-4234-a123-110105194912">')
    assert_no_pii("sha256 13812345678901234567890123456789abcdef0123456789abcdef01234567")


def test_labels_are_masked_in_figures_tables_and_metrics() -> None:
    labels = [*GLUED, "Delivery"]
    fig = viz.bar_with_ci(labels, [1, 2, 3, 4], title="by card6222020200112233445")
    fig.add_scatter(x=labels, y=[1, 2, 3, 4], name="VIP13812345678", text=labels)
    page = viz.figure_html(fig)
    table = viz.table_html(pd.DataFrame({"handler": labels, "VIP13812345678": [1, 2, 3, 4]}))
    rec = Recorder("", "complaints")
    rec.metric("by_category", pd.DataFrame({"category": labels, "n": [1, 2, 3, 4]}))
    rec.metric("by_segment", {label: 1 for label in labels})
    rec.finding("top", "VIP13812345678 rose most", value={"Agent_11010519491231002X": 3})
    rec.note("handler Agent_11010519491231002X skipped")
    for out in (page, table, json.dumps(rec.to_dict(), ensure_ascii=False)):
        assert find_pii(out) == []
        for raw in GLUED.values():
            assert raw not in out
        assert "VIP[phone]" in out
    rec.save()  # the backstop passes
    assert "Delivery" in page and "Delivery" in table


def test_masked_labels_stay_distinct() -> None:
    a, b = mask_label("Gold 13900000001"), mask_label("Gold 13900000002")
    assert a != b and a.startswith("Gold [phone]") and b.startswith("Gold [phone]")
    assert mask_label("Gold 13900000001") == a, "the same label masks the same way every time"
    assert mask_label("Silver") == "Silver"


# ------------------------------------------------------------------ 2. names and phones in free text
@pytest.mark.parametrize(("text", "gone", "kept"), [
    ("我是林芳，上次买的东西坏了", ["林芳"], ["上次买的东西坏了"]),
    ("客服王小明没有回电", ["王小明"], ["客服", "没有回电"]),
    ("请联系欧阳娜娜处理", ["欧阳", "娜娜"], ["请联系"]),
    ("John Smith says the parcel never came", ["John", "Smith"], ["says the parcel never came"]),
    ("Thanks to Mr. Brown and Dr Jane Doe", ["Brown", "Jane", "Doe"], ["Thanks to Mr.", "Dr"]),
    ("my name is Anna and agent Karen hung up", ["Anna", "Karen"], ["hung up"]),
    ("Customer Service was slow. The Manager never called", [], ["Customer Service", "The Manager"]),
])
def test_person_names_masked_in_zh_and_en(text: str, gone: list[str], kept: list[str]) -> None:
    out = quote_text(text)
    assert out is not None
    for word in gone:
        assert word not in out, out
    for word in kept:
        assert word in out, out
    if gone:
        assert "[name]" in out


@pytest.mark.parametrize("text", [
    "call 138.1234.5678 now", "call 138 1234 5678 now", "call 138-1234-5678 now", "电话：13812345678",
    "call (+86) 138-1234-5678", "call +86.138.1234.5678", "热线400.123.4567",
])
def test_every_phone_format_is_masked(text: str) -> None:
    out = quote_text(text)
    assert out is not None and "[phone]" in out and not re.search(r"\d{4}", out), out


def test_decimal_numbers_are_not_phones() -> None:
    assert quote_text("rating 139.12345678 and version 1.138.1234.5678") == \
        "rating 139.12345678 and version 1.138.1234.5678"


@pytest.mark.parametrize("text", ["Le client Jean-Pierre était fâché", "Привет, я Иван", "田中さんに電話した",
                                  "김철수 고객"])
def test_text_whose_names_cannot_be_masked_is_not_quoted(text: str) -> None:
    assert not names_maskable(text)
    assert quote_text(text) is None


def _complaints_ds(tmp_path: Path):
    from workbench.engine import dataset_from_frames

    texts = ["我是林芳，快递太慢了，电话138.1234.5678", "我是林芳，快递太慢了", "John Smith says delivery was slow",
             "John Smith says delivery was slow again", "Le client Jean-Pierre était fâché",
             "客服王小明没有回电", "客服王小明没有回电，很失望"]
    n = len(texts)
    frame = pd.DataFrame({
        "complaint_id": [f"X{i}" for i in range(n)],
        "opened_at": pd.to_datetime(["2026-10-05"] * n),
        "category": ["delivery"] * n,
        "text": texts,
    })
    return dataset_from_frames({"complaints": frame}, tmp_path / "ds")


def test_complaint_verbatims_carry_no_names(tmp_path: Path) -> None:
    from workbench import complaints as C

    ds = _complaints_ds(tmp_path)
    try:
        v = C.verbatims(ds, "2026-10-01", "2026-11-01", by="category", n_examples=10, seed=1)
    finally:
        ds.close()
    page = C.verbatims_html(v, "en")
    terms = " ".join(v.terms["term"])
    for raw in ("林芳", "John", "Smith", "王小明", "Jean-Pierre", "1234", "5678"):
        assert raw not in page, raw
        assert raw.lower() not in terms, raw
    assert "[name]" in page and "[phone]" in page
    assert "fâché" not in page, "French text is not quoted: its names cannot be found reliably"
    assert v.examples.attrs.get("withheld", 0) >= 1 or "Jean" not in page


# ------------------------------------------------------------------ report runs (items 1, 3, 7, 8)
DATASET_NAME = "Shop VIP13812345678"


@pytest.fixture(scope="module")
def sec_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-customer sample whose dataset name carries a phone number glued to letters."""
    from workbench.sample import generate_sample

    out = tmp_path_factory.mktemp("security_sample")
    generate_sample(out, customers=300, seed=5, lang="en", fmt="parquet", end=PERIOD)
    toml = out / "workbench.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(re.sub(r'(?m)^name = ".*"$', f'name = "{DATASET_NAME}"', text, count=1), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def sec_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sec_notebooks")
    shutil.copy(FIXTURES / "security" / "08_pseudonyms.ipynb", folder)
    shutil.copy(FIXTURES / "05_minimal.ipynb", folder)
    return folder


@pytest.fixture(scope="module")
def sec_pack(sec_data: Path, sec_notebooks: Path, tmp_path_factory: pytest.TempPathFactory):
    from workbench.reports import run_pack

    out = tmp_path_factory.mktemp("sec_reports")
    mp = pytest.MonkeyPatch()
    mp.delenv("WORKBENCH_PSEUDONYM_KEY", raising=False)
    try:
        res = run_pack(sec_data, PERIOD, lang="both", out=out, jobs=2, notebooks_dir=sec_notebooks, progress=False)
    finally:
        mp.undo()
    return res


def _record(out: Path, lang: str, name: str = "08_pseudonyms") -> dict:
    return json.loads((out / PERIOD / lang / f"{name}.metrics.json").read_text(encoding="utf-8"))


def test_one_pseudonym_key_per_run_shared_by_languages(sec_pack) -> None:
    assert sec_pack.exit_code == 0, sec_pack.results
    en, zh = _record(sec_pack.out, "en")["metrics"], _record(sec_pack.out, "zh")["metrics"]
    assert en["first_pseudonym"] == zh["first_pseudonym"], "same customer, same pseudonym in both copies"
    assert en["ci"] == zh["ci"], "bootstrap intervals identical across languages for the same seed"
    assert en["hash_order"] == zh["hash_order"]
    assert en["key_source"] == zh["key_source"] == "generated for this run"
    m = json.loads((sec_pack.out / PERIOD / "metrics.json").read_text(encoding="utf-8"))
    assert m["run"]["pseudonym_key_source"] == "generated for this run"
    # the bootstrap checked independently: the same draws on the same ordered values
    assert en["ci"][0] < en["ci"][1]


def test_missing_pseudonym_key_warns_and_env_key_is_recorded(sec_data, sec_notebooks, tmp_path, monkeypatch,
                                                             capsys) -> None:
    from workbench.privacy import pseudonymise
    from workbench.reports import run_pack

    monkeypatch.setenv("WORKBENCH_PSEUDONYM_KEY", "a-long-operator-secret")
    res = run_pack(sec_data, PERIOD, only=["08_pseudonyms"], lang="en", out=tmp_path / "r", jobs=1,
                   notebooks_dir=sec_notebooks, progress=False)
    assert res.exit_code == 0
    assert "WORKBENCH_PSEUDONYM_KEY is not set" not in capsys.readouterr().err
    m = json.loads((tmp_path / "r" / PERIOD / "metrics.json").read_text(encoding="utf-8"))
    assert m["run"]["pseudonym_key_source"] == "env"
    rec = _record(tmp_path / "r", "en")["metrics"]
    assert rec["key_source"] == "env"
    assert rec["first_pseudonym"] in set(pseudonymise(
        pd.read_parquet(sec_data / "customers.parquet")["customer_id"], key="a-long-operator-secret"))

    monkeypatch.delenv("WORKBENCH_PSEUDONYM_KEY")
    run_pack(sec_data, PERIOD, only=["08_pseudonyms"], lang="en", out=tmp_path / "r2", jobs=1,
             notebooks_dir=sec_notebooks, progress=False)
    assert "WORKBENCH_PSEUDONYM_KEY is not set" in capsys.readouterr().err


def test_labels_and_dataset_name_masked_in_report_outputs(sec_pack) -> None:
    out = sec_pack.out
    files = [out / PERIOD / lang / f"{name}.html" for lang in ("en", "zh") for name in ("08_pseudonyms", "05_minimal")]
    files += [out / PERIOD / "metrics.json", out / "index.html", *out.glob(f"{PERIOD}/*/*.metrics.json")]
    from workbench.reports import plotly_js_source

    js = plotly_js_source()
    for path in files:
        text = path.read_text(encoding="utf-8").replace(js, "")
        for raw in (*GLUED.values(), DATASET_NAME):
            assert raw not in text, (path.name, raw)
        assert find_pii(text) == [], path.name
    page = (out / PERIOD / "en" / "08_pseudonyms.html").read_text(encoding="utf-8")
    assert "VIP[phone]" in page and "Agent_[id]" in page and "card[card]" in page
    assert "Shop VIP[phone]" in page


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_kill_9_of_a_pack_kills_its_children_and_next_run_cleans_up(sec_data, sec_notebooks, tmp_path) -> None:
    from workbench.reports import run_pack

    out = tmp_path / "r"
    script = (f"from workbench.reports import run_pack; run_pack({str(sec_data)!r}, {PERIOD!r}, "
              f"only=['08_pseudonyms'], lang='en', out={str(out)!r}, jobs=1, notebooks_dir={str(sec_notebooks)!r}, "
              "params=['sleep=600'], progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: set[int] = set()
    born: dict[int, str | None] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            kids = _descendants(proc.pid)
            cmdlines = [Path(f"/proc/{k}/cmdline").read_bytes() for k in kids if Path(f"/proc/{k}/cmdline").exists()]
            if list(out.rglob("*.running.ipynb")) and any(b"ipykernel" in c for c in cmdlines):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the notebook never started")
        time.sleep(2)
        kids = _descendants(proc.pid)
        born.update({k: _start_time(k) for k in kids})
        assert kids
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.5)
        survivors = [k for k in kids if _alive(k)]
        assert not survivors, "children outlived the killed pack"
    finally:
        if proc.poll() is None:
            proc.kill()
        for k, started in born.items():  # only what this test started (same pid and start time)
            if _alive(k) and _start_time(k) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(k, signal.SIGKILL)
    assert list(out.rglob("*.running.ipynb")), "the killed run left its work file"
    res = run_pack(sec_data, PERIOD, only=["08_pseudonyms"], lang="en", out=out, jobs=1,
                   notebooks_dir=sec_notebooks, progress=False)
    assert res.exit_code == 0, "the lock died with the killed run"
    assert not list(out.rglob("*.running.ipynb")) and not list(out.rglob("*.params.json"))


def test_corrupt_metrics_never_drop_reports_or_crash(sec_pack, sec_data, sec_notebooks, tmp_path) -> None:
    from workbench.reports import run_pack

    out = tmp_path / "r"
    shutil.copytree(sec_pack.out, out)
    mfile = out / PERIOD / "metrics.json"
    mfile.write_text(mfile.read_text(encoding="utf-8")[:200], encoding="utf-8")  # truncated
    (out / "2026-09").mkdir()
    (out / "2026-09" / "metrics.json").write_text("{}", encoding="utf-8")  # a stray {} in another period
    res = run_pack(sec_data, PERIOD, only=["05_minimal"], lang="en", out=out, jobs=1, notebooks_dir=sec_notebooks,
                   progress=False)
    assert res.exit_code == 0
    m = json.loads(mfile.read_text(encoding="utf-8"))
    assert set(m["notebooks"]) == {"05_minimal", "08_pseudonyms"}, "the report not re-run is kept"
    assert set(m["notebooks"]["08_pseudonyms"]["langs"]) == {"en", "zh"}
    assert m["notebooks"]["08_pseudonyms"]["metrics"]["ci"] == _record(out, "en")["metrics"]["ci"]
    index = (out / "index.html").read_text(encoding="utf-8")
    for name in ("05_minimal", "08_pseudonyms"):
        for lang in ("en", "zh"):
            assert f'href="{PERIOD}/{lang}/{name}.html"' in index

    # the index alone also recovers from a truncated metrics.json
    from workbench.reports import write_index

    mfile.write_text("{", encoding="utf-8")
    write_index(out)
    assert set(json.loads(mfile.read_text(encoding="utf-8"))["notebooks"]) == {"05_minimal", "08_pseudonyms"}


def test_stale_work_files_are_removed_by_the_next_run(tmp_path) -> None:
    from workbench.reports import LOCK_NAME, clean_stale_work_files, output_lock

    work = tmp_path / "_analyst" / PERIOD / "en"
    work.mkdir(parents=True)
    stale = [work / ".05_minimal.k2j3h4g5.running.ipynb", work / ".05_minimal.k2j3h4g5.running.ipynb.params.json",
             tmp_path / PERIOD / "en" / ".05_minimal.html.abcd1234.tmp", tmp_path / PERIOD / ".metrics.json.ab_cd123"]
    keep = [work / "05_minimal.ipynb", work / "05_minimal.metrics.json", tmp_path / PERIOD / "metrics.json"]
    for p in stale + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x", encoding="utf-8")
    with output_lock(tmp_path):
        assert clean_stale_work_files(tmp_path) == len(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert (tmp_path / LOCK_NAME).exists()


# ------------------------------------------------------------------ 8. one run per output folder
def test_second_run_on_the_same_folder_exits_2(sec_data, sec_notebooks, tmp_path) -> None:
    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.reports import OutputLocked, output_lock, run_pack

    out = tmp_path / "r"
    with output_lock(out):
        with pytest.raises(OutputLocked, match="another report run .*pid .* is writing to"):
            run_pack(sec_data, PERIOD, only=["05_minimal"], lang="en", out=out, notebooks_dir=sec_notebooks,
                     progress=False)
        res = CliRunner().invoke(app, ["reports", "run", "--data", str(sec_data), "--period", PERIOD,
                                       "--only", "05_minimal", "--lang", "en", "--notebooks", str(sec_notebooks),
                                       "--out", str(out)])
        assert res.exit_code == 2
        assert "another report run" in res.output.replace("\n", " ")
    assert not (out / PERIOD).exists(), "nothing was written while the folder was locked"


def test_wait_queues_behind_the_running_one(tmp_path) -> None:
    import threading

    from workbench.reports import output_lock

    order: list[str] = []
    first = threading.Event()

    def holder() -> None:
        with output_lock(tmp_path):
            first.set()
            time.sleep(1.0)
            order.append("first done")

    t = threading.Thread(target=holder)
    t.start()
    first.wait(10)
    with output_lock(tmp_path, wait=True):
        order.append("second started")
    t.join()
    assert order == ["first done", "second started"]


def _numbers(obj, path=""):
    """Every number in a JSON-like object by path (list positions included)."""
    if isinstance(obj, bool):
        return {}
    if isinstance(obj, int | float):
        return {path: obj}
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_numbers(v, f"{path}.{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(_numbers(v, f"{path}[{i}]"))
    return out


@pytest.mark.slow
def test_real_notebooks_give_identical_numbers_in_both_languages(sample_dir, tmp_path, monkeypatch) -> None:
    """Bootstrap intervals (satisfaction thresholds, Gini) and every other number agree between en and zh."""
    from workbench.reports import run_pack

    monkeypatch.delenv("WORKBENCH_PSEUDONYM_KEY", raising=False)
    out = tmp_path / "r"
    res = run_pack(sample_dir, PERIOD, only=["01_satisfaction_loyalty", "02_customer_pyramid"], lang="both",
                   out=out, jobs=2, progress=False)
    assert res.exit_code == 0, res.failed
    for name in ("01_satisfaction_loyalty", "02_customer_pyramid"):
        en, zh = (_numbers(_record(out, lang, name)["metrics"]) for lang in ("en", "zh"))
        shared = set(en) & set(zh)
        assert len(shared) > 10
        # equal up to the last bit or two: a parallel engine sum may add in another order (1 ulp), while a
        # different bootstrap seed or pseudonym key would move these numbers in the 2nd-4th digit
        assert {p: en[p] for p in shared} == pytest.approx({p: zh[p] for p in shared}, rel=1e-12, abs=1e-15), name
