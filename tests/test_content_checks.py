"""The offline content checks of machine-made records (vad/quality/content.py), datatrove-style: a table of cases
that must trip each check, and cases that must not — among them every hand-written record of the project."""
import json

import pytest

from conftest import ROOT
from vad.core.config import ContentParams
from vad.core.filters import FLAGS
from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.generate.translate import EnglishLeft
from vad.quality.content import ContentCheck, dup_ngram_frac, repeated_clause

P = ContentParams()
GOOD_ANSWER = "遇到这种情况，先冷静下来，和对方把事情说清楚；如果协商不成，可以向社区调解委员会求助，必要时依法维权。"


def rec(output: str = GOOD_ANSWER, instruction: str = "邻居装修太吵了，我该怎么办？", source: str = "evol",
        **meta) -> Record:
    return Record(instruction=instruction, input="", output=output, source=source,
                  categorization={"level": "person", "value": "友善"}, meta=dict(meta))


TRIPS = [
    # (case, record, reason)
    ("the looping translation", rec("可管理的，可接受的，可以接受的，可以接受的"), "content_loop"),
    ("a unit repeated in a row", rec("好的好的好的好的好的好的，我明白了。"), "content_loop"),
    ("a sentence said three times", rec("要遵守法律。要遵守法律。要遵守法律。"), "content_loop"),
    ("a clause three times apart", rec("多沟通，少争吵，多沟通，互相体谅，多沟通"), "content_loop"),
    ("repeated 4-grams", rec("我们应该尊重他人的意见并且尊重他人的意见并且尊重他人的意见并且尊重他人的想法和尊重他人"),
     "content_loop"),
    ("a looping instruction", rec(instruction="请问请问请问请问请问请问怎么办？"), "content_loop"),
    ("a looping rejected translation", rec(rejected_zh="不可以，不可以，不行"), "content_loop"),
    ("an answer in English", rec("You should talk to your neighbour and agree on quiet hours."), "content_few_han"),
    ("an answer of digits", rec("12345，67890，110。"), "content_few_han"),
    ("30 combining accents", rec("\u0301" * 30), "content_few_han"),
    ("accents over Han text", rec("先" + "\u0301\u0300\u0302" * 6 + "冷静下来，和对方说清楚。"), "content_marks"),
    ("a bare refusal", rec("抱歉，我无法回答这个问题。"), "content_refusal_only"),
]
PASSES = [
    ("a helpful answer", rec()),
    ("a refusal with reasons and guidance", rec("抱歉，我不能提供制作危险物品的方法。这类行为违反法律，也可能伤害你和他人。"
                                               "如果你遇到了困难，可以拨打当地的心理援助热线，或向信任的人寻求帮助，"
                                               "我们也可以聊聊你现在的处境。")),
    ("a list with repeated structure", rec("第一，保持冷静；第二，收集证据；第三，寻求调解；第四，依法维权。")),
    ("numbers and a hotline", rec("可以拨打12345市民热线反映噪音问题，工作人员会协调处理。")),
    ("a short but real answer", rec("可以先礼貌地敲门沟通。")),
    ("a hand-written record is never checked", rec("抱歉。", source="manual")),
]


@pytest.mark.parametrize("case,record,reason", TRIPS, ids=[c for c, _r, _x in TRIPS])
def test_trips(case, record, reason):
    flt = ContentCheck(P)
    d = flt.check(record)
    found = d.reason if d is not None else next((f["reason"] for f in record.meta.get(FLAGS, [])), None)
    assert found == reason, (case, record.meta.get("content"))


@pytest.mark.parametrize("case,record", PASSES, ids=[c for c, _r in PASSES])
def test_passes(case, record):
    assert ContentCheck(P).check(record) is None and not record.meta.get(FLAGS), (case, record.meta.get("content"))


def test_refusal_only_flags_by_default_and_drops_when_told():
    run = StageRun("merge")
    kept = run.apply(run.take([rec("抱歉，我无法回答这个问题。")]), [ContentCheck(P)])
    assert len(kept) == 1 and kept[0].meta[FLAGS][0]["reason"] == "content_refusal_only" and not run.entries
    strict = ContentParams(actions={**P.actions, "content_refusal_only": "drop"})
    run = StageRun("merge")
    assert run.apply(run.take([rec("抱歉，我无法回答这个问题。")]), [ContentCheck(strict)]) == []
    assert run.entries[0]["reason"] == "content_refusal_only"


def test_a_loop_can_be_flagged_instead_of_dropped():
    lenient = ContentParams(actions={**P.actions, "content_loop": "flag"})
    r = rec("可管理的，可接受的，可以接受的，可以接受的")
    assert ContentCheck(lenient).check(r) is None and r.meta[FLAGS][0]["reason"] == "content_loop"


def test_the_measurement_is_kept_on_the_record():
    r = rec()
    ContentCheck(P).check(r)
    m = r.meta["content"]
    assert m["han_chars"] > 30 and m["mark_share"] == 0 and m["refusal"] is None
    assert set(m["loops"]) == {"instruction", "output"} and m["loops"]["output"]["repeat"] is None


def test_no_hand_written_record_would_trip_a_check():
    """The checks' thresholds leave the hand-written style alone: run as if every one were machine-made."""
    flt = ContentCheck(P)
    tripped = []
    for f in sorted((ROOT / "data/raw/manual").glob("*.jsonl")):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            o = json.loads(line)
            r = rec(o["output"], o["instruction"])
            if flt.check(r) is not None or r.meta.get(FLAGS):
                tripped.append((f.name, n, r.meta["content"]))
    assert tripped == []


def test_helpers():
    assert dup_ngram_frac("abcdabcd") == 0.5 and dup_ngram_frac("abc") == 0.0
    assert repeated_clause("甲乙丙，甲乙丙") == "甲乙丙" and repeated_clause("甲乙丙，丁戊己") is None


def pair(zh: str) -> Record:
    return Record(instruction="你好吗？", input="", output=zh, source="translated",
                  categorization={"level": "person", "value": "友善"},
                  meta={"original": {"instruction": "How are you?", "output": "I am fine, thanks for asking."}})


@pytest.mark.parametrize("zh,trips", [
    ("我很好，谢谢你的关心。", False),
    ("我很 fine，thanks 你的 asking。", True),                  # short English words: no long run, many letters
    ("I am fine, thanks for asking, my friend, really.", True),  # a long run
    ("我很好，我用的是 iPhone 手机给你回消息，谢谢你的关心和问候，祝你一切顺利。", False),  # a brand name in Chinese text
])
def test_english_left_in_a_translation(zh, trips):
    assert (EnglishLeft(40, 0.2).check(pair(zh)) is not None) is trips
