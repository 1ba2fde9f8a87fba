"""`vad ifd FILE -o OUT` as a real subprocess: the stage's scorer (the packaged model) on any JSONL, its score cache,
and one-line errors for a bad params file or a missing input."""
import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # loads the packaged model

ROWS = [
    {"instruction": "请解释什么是诚信。", "output": "诚信是指诚实守信，说到做到，不欺骗别人。"},
    {"prompt": "not a record"},
    {"id": "r3", "instruction": "邻居装修太吵，我该怎么沟通？", "input": "",
     "output": "先选一个双方都方便的时间当面聊，说明噪音对休息的影响，再一起商量施工时段。"},
    {"instruction": "怎样给小学生解释什么是民主？", "input": "班会课",
     "output": "可以用班级选班长做例子：大家一起提名、投票，少数服从多数，同时尊重少数人的意见。"},
]


def vad_ifd(cwd, *args):
    return subprocess.run([sys.executable, "-m", "vad.cli", "ifd", *args], cwd=cwd, capture_output=True, text=True)


def test_vad_ifd_scores_a_file_and_reuses_the_cache(tmp_path):
    params = (ROOT / "params.yaml").read_text(encoding="utf-8")
    params = re.sub(r"^  max_length: \d+", "  max_length: 64", params, count=1, flags=re.M)
    (tmp_path / "p.yaml").write_text(params, encoding="utf-8")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")

    r = vad_ifd(tmp_path, "in.jsonl", "-o", "out.jsonl", "--params", "p.yaml")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["in"] == 4 and summary["ok"] == 3 and summary["errors"] == {"ifd_bad_row": 1}
    assert summary["scored"] == 3 and summary["cache_hits"] == 0
    out = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [o["line"] for o in out] == [1, 2, 3, 4] and out[2]["id"] == "r3"
    assert out[1]["error"] == "ifd_bad_row" and "instruction and output" in out[1]["detail"]
    scored = [o for i, o in enumerate(out) if i != 1]
    assert all(o["ifd"] > 0 and o["n_answer_tokens"] > 0 for o in scored)
    assert all(o["ifd"] == round(o["loss_cond"] / o["loss_direct"], 6) for o in scored)

    # the same rows again (another file): every score comes from the cache, identical
    (tmp_path / "again.jsonl").write_bytes((tmp_path / "in.jsonl").read_bytes())
    r = vad_ifd(tmp_path, "again.jsonl", "-o", "out2.jsonl", "--params", "p.yaml")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["scored"] == 0 and again["cache_hits"] == 3
    assert (tmp_path / "out2.jsonl").read_text(encoding="utf-8") == (tmp_path / "out.jsonl").read_text(encoding="utf-8")


def test_vad_ifd_errors_are_one_line(tmp_path):
    params = (ROOT / "params.yaml").read_text(encoding="utf-8")
    line = next(i for i, l in enumerate(params.splitlines(), start=1) if l.startswith("  max_length:"))  # ifd's
    (tmp_path / "bad.yaml").write_text(re.sub(r"^  max_length: \d+", "  max_length: 1", params, count=1, flags=re.M),
                                       encoding="utf-8")
    (tmp_path / "in.jsonl").write_text(json.dumps(ROWS[0], ensure_ascii=False) + "\n", encoding="utf-8")
    r = vad_ifd(tmp_path, "in.jsonl", "-o", "out.jsonl", "--params", "bad.yaml")
    assert r.returncode == 2 and f"bad.yaml:{line}: ifd.max_length" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "p.yaml").write_text(params, encoding="utf-8")
    r = vad_ifd(tmp_path, "missing.jsonl", "-o", "out.jsonl", "--params", "p.yaml")
    assert r.returncode == 2 and "missing.jsonl" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.jsonl").exists()
