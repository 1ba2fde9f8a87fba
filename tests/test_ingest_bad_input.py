"""Every kind of bad input either fails its stage naming file and line, or is ledgered with a reason."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, manual_line, record_provenance
from vad.sources.ingest_manual import ingest_manual
from vad.core.errors import InputError
from vad.core.ledger import StageRun
from vad.quality.merge import merge
from vad.core.config import load_params

PARAMS = load_params(ROOT / "params.yaml")


def write(project: Path, lines: list[str], name="t.jsonl") -> Path:
    p = project / "data/raw/manual" / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def run_ingest(project: Path):
    run = StageRun("ingest_manual", root=project)
    files = sorted((project / "data/raw/manual").glob("*.jsonl"))
    return run, ingest_manual(files, project, PARAMS.ingest, run)


@pytest.mark.parametrize("bad,message", [
    ('{"instruction": "你好", "output": ', "malformed JSON"),
    (manual_line().replace('"output"', '"answer"'), "missing field 'output'"),
    (manual_line(level="planet"), "unknown level 'planet'"),
    (manual_line(level="person", value="法治"), "value '法治' is not one of level 'person'"),
    (json.dumps({"instruction": 3, "output": "好", "categorization": {"level": "person", "value": "诚信"}}),
     "field 'instruction' must be str"),
])
def test_fatal_bad_input_names_file_and_line(mini_project, bad, message):
    write(mini_project, [manual_line(), manual_line(instruction="第二条指令：谈谈敬业。"), bad])
    with pytest.raises(InputError) as e:
        run_ingest(mini_project)
    assert "data/raw/manual/t.jsonl:3" in str(e.value)
    assert message in str(e.value)


def test_stage_script_exits_with_file_and_line(mini_project):
    write(mini_project, [manual_line(), manual_line(level="nowhere")])
    record_provenance(mini_project / "data/raw/manual")
    r = subprocess.run([sys.executable, "stages/ingest_manual.py"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "data/raw/manual/t.jsonl:2" in r.stderr and "unknown level" in r.stderr
    assert "Traceback" not in r.stderr


def test_ledgered_bad_input(mini_project):
    write(mini_project, [
        manual_line(),                                              # 1 kept
        manual_line(instruction="空回答的例子：什么是友善？", output="   "),  # 2 empty output
        manual_line(instruction="超长指令" + "很" * 100_000),         # 3 a 100 kB instruction
        manual_line(instruction="什么是公正？", value="友善", output="好"),  # 4 output shorter than min_chars
    ])
    run, kept = run_ingest(mini_project)
    metrics = run.finish({"build/ingest/manual.jsonl": kept})
    assert [r.lineage.origin["line"] for r in kept] == [1]
    ledger = [json.loads(l) for l in (mini_project / "build/ledger/ingest_manual.jsonl").read_text().splitlines()]
    assert [(e["record"]["lineage"]["origin"]["line"], e["reason"]) for e in ledger] == [
        (2, "empty_output"), (3, "too_long"), (4, "too_short")]
    assert metrics["in"] == 4 and metrics["out"] == 1 and metrics["ledgered"] == 3
    assert "100004 characters" in ledger[1]["detail"]


def test_english_and_duplicates_are_ledgered_by_merge(mini_project):
    write(mini_project, [
        manual_line(),
        manual_line(instruction="What does honesty mean in daily life? Give an example.",
                    output="Honesty means telling the truth and keeping promises, for example returning money on time."),
        manual_line(),  # exact duplicate of line 1
        manual_line(output="诚信是指诚实守信，说到做到。比如借了朋友的钱，按约定的时间归还，这就是诚信的表现。"),  # near duplicate
        # the raw-manual suite expects ≥ 90% of a file to be Chinese: an English record is an exception, not a file
        *[manual_line(instruction=f"第{i}个问题：怎样在{place}做到友善待人？", value="友善",
                      output=f"在{place}，可以主动问好、耐心倾听、遇到困难时伸出援手，也要尊重别人的边界和选择。")
          for i, place in enumerate(["社区", "学校", "公司", "医院", "地铁", "网络", "商场", "公园", "球场"])],
    ])
    run, kept = run_ingest(mini_project)
    run.finish({"build/ingest/manual.jsonl": kept})
    mrun = StageRun("merge", root=mini_project)
    merged = merge([kept], PARAMS.merge, PARAMS.ingest, PARAMS.content, mrun)
    mrun.finish({"build/merge/merged.jsonl": merged})
    assert [r.lineage.origin["line"] for r in merged][:2] == [1, 5]
    by_line = {e["record"]["lineage"]["origin"]["line"]: e for e in mrun.entries}
    assert by_line[2]["reason"] == "lang_not_zh" and "'en'" in by_line[2]["detail"]
    assert by_line[3]["reason"] == "exact_duplicate" and by_line[3]["dup_of"] == merged[0].id
    assert by_line[4]["reason"] == "near_duplicate" and by_line[4]["dup_of"] == merged[0].id
    assert 0.7 <= by_line[4]["jaccard"] < 1.0


def test_chinese_by_fasttext_but_mostly_digits_is_ledgered_not_a_failed_suite(mini_project):
    # fastText calls it Chinese; the merged suite wants >= 30% Han characters: merge must ledger it, or the stage
    # fails on a record instead of dropping it
    write(mini_project, [manual_line(), manual_line(instruction="比如12356或希望24热线400-161-9995？")])
    run, kept = run_ingest(mini_project)
    run.finish({"build/ingest/manual.jsonl": kept})
    mrun = StageRun("merge", root=mini_project)
    merged = merge([kept], PARAMS.merge, PARAMS.ingest, PARAMS.content, mrun)
    assert [r.lineage.origin["line"] for r in merged] == [1]
    (e,) = mrun.entries
    assert e["reason"] == "lang_not_zh" and "Han characters" in e["detail"]
    measured = e["record"]["meta"]["lang"]  # the filter's measurement travels with the ledgered record
    assert min(m["han_ratio"] for m in measured.values()) < 0.3 and all(m["lang"] == "zh" for m in measured.values())
    from vad.quality.validate import validate

    assert validate(merged, "merged", mini_project / "gx.json", PARAMS)["success"]
