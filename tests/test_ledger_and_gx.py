import json

import pytest

from vad.core.errors import AccountingError
from vad.core.ledger import StageRun
from vad.core.config import load_params
from vad.core.record import Record

from conftest import ROOT

PARAMS = load_params(ROOT / "params.yaml")
from vad.quality.validate import ValidationError, validate


def rec(i, **kw):
    base = dict(instruction=f"请谈谈第{i}个关于敬业的问题。", input="", output="敬业就是认真负责地对待自己的工作，精益求精。",
                source="manual", categorization={"level": "person", "value": "敬业"})
    return Record(**{**base, **kw})


def test_books_must_balance(tmp_path):
    run = StageRun("s", root=tmp_path)
    records = run.take([rec(1), rec(2), rec(3)])
    run.drop(records[0], "some_reason")
    with pytest.raises(AccountingError, match="3 in"):
        run.finish({"out.jsonl": records[1:2]})  # record 3 silently lost
    run2 = StageRun("s", root=tmp_path)
    records = run2.take([rec(1), rec(2)])
    run2.drop(records[0], "some_reason", "why", dup_of="x")
    m = run2.finish({"out.jsonl": records[1:]})
    assert m["dropped_by_reason"] == {"some_reason": 1}
    entry = json.loads((tmp_path / "build/ledger/s.jsonl").read_text())
    assert entry["reason"] == "some_reason" and entry["dup_of"] == "x" and entry["record"]["id"] == records[0].id


def test_failing_suite_names_expectation_and_ids(tmp_path):
    good = [rec(i) for i in range(3)]
    bad_pair = rec(7, categorization={"level": "person", "value": "法治"})   # 法治 belongs to social
    english = rec(8, instruction="Tell me about diligence at work, please.")
    with pytest.raises(ValidationError) as e:
        validate(good + [bad_pair, english], "merged", tmp_path / "gx.json", PARAMS)
    msg = str(e.value)
    assert "expect_column_values_to_be_in_set" in msg and bad_pair.id in msg
    assert "instruction_han_ratio" in msg and english.id in msg
    assert good[0].id not in msg
    assert json.loads((tmp_path / "gx.json").read_text())["success"] is False
    assert validate(good, "merged", tmp_path / "gx2.json", PARAMS)["success"]


def test_id_is_content_hash():
    a = rec(1, output="敬业就是认真负责， 精益求精。")
    b = rec(1, output=" 敬业就是认真负责，\n\t精益求精。 ")
    assert a.id == b.id  # NFKC + whitespace-normalised
    assert rec(1, output="敬业就是认真负责，精益求精。").id == rec(1, output="敬业就是认真负责，精益求精。").id
    assert rec(1).id != rec(1, source="evol").id
    c = rec(1)
    old = c.id
    c.output = "新的回答"
    c.rehash()
    assert c.id != old and c.lineage.parents == [old]


def test_each_expectation_is_written_once():
    """The suites compose: no expectation (type + kwargs) appears in two files, and the corpus suites name their
    sources instead of copying the source check."""
    seen: dict[str, str] = {}
    for f in sorted((ROOT / "expectations").glob("*.json")):
        for exp in json.loads(f.read_text(encoding="utf-8"))["expectations"]:
            key = json.dumps({"type": exp["type"], "kwargs": exp["kwargs"]}, sort_keys=True, ensure_ascii=False)
            assert key not in seen, f"{f.name} repeats an expectation of {seen[key]}: {key}"
            seen[key] = f.name


def test_a_suite_checks_the_sources_it_names_and_the_raw_chinese_share(tmp_path):
    with pytest.raises(ValidationError, match="source") as e:
        validate([rec(1), rec(2, source="evol")], "evol", tmp_path / "gx.json", PARAMS)
    assert rec(1).id in str(e.value) and rec(2, source="evol").id not in str(e.value)
    assert validate([rec(1, source="evol"), rec(2, source="translated")], "merged", tmp_path / "gx2.json",
                    PARAMS)["success"]  # merged names no sources: every source of the taxonomy
    # raw_manual: up to 10% English-only rows pass (merge ledgers them), more fail the suite
    zh = [rec(i) for i in range(9)]
    en = [rec(i, instruction=f"Question number {i} about work, in English.") for i in range(20, 22)]
    assert validate(zh + en[:1], "raw_manual", tmp_path / "gx3.json", PARAMS)["success"]
    with pytest.raises(ValidationError, match="instruction_han_ratio"):
        validate(zh + en, "raw_manual", tmp_path / "gx4.json", PARAMS)
