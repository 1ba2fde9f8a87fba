"""Translation of SafeRLHF pairs: the verification rules one by one, chunking, parsers, and the stage end to end
against the fake OpenAI server (each rule seen firing, ids, lineage, meta for the preference export)."""
from __future__ import annotations

from collections import Counter

import pytest

from support.fake_model import fake_model
from support.fake_openai import FakeOpenAI
from support.llm_stages import check_books, make_pairs, run_stage, set_llm_params, write_records
from vad.generate import translate
from vad.llm import ParseError
from vad.core.record import Record

EN_Q = "How can I get my neighbor to stop playing loud music at night?"
EN_A = "You should talk to your neighbor politely first. If that does not work, contact your landlord."
ZH_Q = "怎样才能让我的邻居晚上不再大声放音乐？"
ZH_A = "你应该先礼貌地和邻居沟通。如果没有效果，可以联系房东。"


def rec(q=ZH_Q, a=ZH_A, rejected_zh="不用管他，直接把他的音响砸了。", en_rejected="Just smash his speakers.") -> Record:
    return Record(instruction=q, input="", output=a, source="translated",
                  categorization={"level": "person", "value": "友善"},
                  meta={"original": {"instruction": EN_Q, "output": EN_A, "rejected": en_rejected},
                        "rejected_zh": rejected_zh})


# --- translate_not_zh -----------------------------------------------------------------------------------------------
def test_not_zh_fires_on_english_or_japanese():
    rule = translate.NotChinese()
    d = rule.check(rec(a="You should talk to your neighbor politely first."))
    assert d and d.reason == "translate_not_zh" and d.extra["field"] == "output"
    d = rule.check(rec(rejected_zh="日本語の翻訳文です。内容は確認済みです。"))
    assert d and d.extra["field"] == "rejected" and d.extra["lang"] == "ja"


def test_not_zh_passes_chinese():
    assert translate.NotChinese().check(rec()) is None


# --- translate_len_ratio ----------------------------------------------------------------------------------------------
def test_len_ratio_fires_outside_the_band():
    rule = translate.LengthRatio(0.25, 1.5)
    d = rule.check(rec(a="先沟通。"))  # 4 characters for ~80 English ones
    assert d and d.reason == "translate_len_ratio" and d.extra["field"] == "output" and d.extra["ratio"] < 0.25
    d = rule.check(rec(q=ZH_Q * 5))
    assert d and d.extra["field"] == "instruction" and d.extra["ratio"] > 1.5


def test_len_ratio_passes_a_normal_translation():
    assert translate.LengthRatio(0.25, 1.5).check(rec()) is None


# --- translate_english_left -----------------------------------------------------------------------------------------
def test_english_left_fires_on_a_long_latin_run():
    rule = translate.EnglishLeft(40)
    d = rule.check(rec(a=ZH_A + "If that does not work, contact your landlord."))
    assert d and d.reason == "translate_english_left" and d.extra["run"] > 40


def test_english_left_allows_short_names():
    assert translate.EnglishLeft(40).check(rec(a="请访问 Environment Agency 网站，或拨打 110。")) is None


# --- chunks and parsers ------------------------------------------------------------------------------------------------
def test_split_and_join_chunks():
    text = "First sentence here. Second one is a bit longer! Third?\nNew paragraph. And more."
    ch = translate.split_chunks(text, 40)
    assert all(len(c) <= 40 for _p, c in ch) and {p for p, _ in ch} == {0, 1}
    assert " ".join(c for p, c in ch if p == 0) == text.split("\n")[0]
    assert translate.join_chunks([(0, "甲。"), (0, "乙。"), (1, "丙。")]) == "甲。乙。\n丙。"
    assert translate.split_chunks("x" * 500, 100) == [(0, "x" * 500)]  # one long sentence stays whole


def test_parsers_reject_unusable_text():
    p = translate.parse_translation(EN_A)
    assert p(" " + ZH_A + " ") == ZH_A
    for bad in ("", "我不知道", EN_A, ZH_A * 10, "你应该先礼貌地和邻居沟通。" * 3):
        with pytest.raises(ParseError):
            p(bad)
    # pasting a sentence of a few-shot example is rejected (the draft may contain it: polishing keeps it)
    from vad.llm import load_template
    w = translate.example_copies(load_template("translate_zh"), load_template("translate_polish"))
    with pytest.raises(ParseError):
        translate.parse_translation("If you dislike me, call the police.", w)("如果你讨厌我，你可以联系你的房东或者拨打警察的非紧急线路。")
    assert translate.parse_translation("Please recycle plastic bottles and paper.", w)("请把塑料瓶和纸张分类回收。")
    assert translate.parse_polish("你可以联系你的房东或者拨打警察的非紧急线路。", w)("你可以联系你的房东或者拨打警察的非紧急线路。")
    with pytest.raises(ParseError):  # a loop
        translate.parse_translation(EN_A, w)("在大型企业中，经常被供应商向来向来向来向来向来向来向来向来。")
    q = translate.parse_polish(ZH_A)
    assert q(ZH_A) == ZH_A
    with pytest.raises(ParseError):
        q("我不知道")  # about the right length, but not this text
    with pytest.raises(ParseError):
        q(ZH_A + "另外，我再补充很多原文没有的内容，比如如何和邻居做朋友、如何组织社区活动等等。")


# --- the stage ---------------------------------------------------------------------------------------------------------
def test_translate_stage_end_to_end(stage_env):
    pairs = make_pairs()
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(stage_env, srv, translate={"limit": 4})
        run_stage(stage_env, "translate")
    out, ledger, m = check_books(stage_env, "translate", pairs, "build/translate/translated.jsonl")
    reasons = {e["record"]["meta"].get("original", {}).get("instruction", e["record"]["instruction"])[:11]: e["reason"]
               for e in ledger}
    assert reasons == {"JAPANESE Ho": "translate_not_zh", "SHORTZH How": "translate_len_ratio",
                       "Is it legal": "translate_over_limit"}, reasons
    assert len(out) == 2 and m["funnel"] == {"pairs": 4, "polish_kept_draft_chunks": 0, "chunks": 12, "translated": 4, "polished": 4,
                                             "after_not_zh": 3, "after_len_ratio": 2, "after_english_left": 2,
                                             "emitted": 2}
    assert {e["id"] for e in ledger} == {p.id for p in pairs[2:]}  # `vad why <pair id>` finds every drop
    bad = next(e for e in ledger if e["reason"] == "translate_not_zh")
    assert bad["record"]["meta"]["original"]["instruction"].startswith("JAPANESE") and bad["field"] == "instruction"
    by_parent = {r["lineage"]["parents"][-1]: r for r in out}
    for p in pairs[:2]:
        r = by_parent[p.id]  # the English pair's id went to parents; the record has a new id
        assert r["id"] != p.id and r["source"] == "translated" and r["categorization"] == p.categorization
        assert r["meta"]["original"] == {"instruction": p.instruction, "output": p.output,
                                         "rejected": p.meta["rejected"]}
        assert r["meta"]["rejected_zh"] and "rejected" not in r["meta"]
        assert r["meta"]["licence"] == "CC BY-NC 4.0"
        ops = r["lineage"]["ops"]
        assert [o["op"] for o in ops] == ["select", "translate", "polish"]
        assert ops[1]["template"] == "translate_zh" and ops[2]["template"] == "translate_polish"
        assert all(o["model"] == "fake-model" and o["template_version"] for o in ops[1:])
        assert r["lineage"]["origin"] == p.lineage.origin
    # the polish step localised the emergency number (the fake polisher maps 911 → 110)
    first = by_parent[pairs[0].id]
    assert "911" in first["meta"]["translation_draft"]["output"] and "110" in first["output"]
    assert "911" not in first["output"]
    assert m["llm"]["calls"] == 24 and m["validation"]["success"]


def test_english_left_fires_in_the_stage(stage_env):
    pairs = make_pairs()
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(stage_env, srv, translate={"limit": 5})
        run_stage(stage_env, "translate")
    _out, ledger, _m = check_books(stage_env, "translate", pairs, "build/translate/translated.jsonl")
    assert Counter(e["reason"] for e in ledger)["translate_english_left"] == 1


def test_a_rejected_polish_keeps_the_draft(stage_env):
    pairs = make_pairs([("How can I help my elderly neighbour?", "BADPOLISH Visit her regularly and help with shopping.",
                         "Ignore her.")])
    write_records(stage_env / "build/select/pairs.jsonl", pairs)
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(stage_env, srv, translate={"limit": 5})
        run_stage(stage_env, "translate")
    out, ledger, m = check_books(stage_env, "translate", pairs, "build/translate/translated.jsonl")
    assert len(out) == 1 and not ledger and m["funnel"]["polish_kept_draft_chunks"] == 1
    r = out[0]
    assert r["output"] == r["meta"]["translation_draft"]["output"] and r["output"].startswith("【乱】")
    polish = r["lineage"]["ops"][-1]
    assert polish["op"] == "polish" and polish["kept_draft"] == 1 and polish["rejected_polish"]
    assert m["llm"]["reasks"] == 2  # the bad polish was asked again (llm.max_reasks=2 here) before giving up
