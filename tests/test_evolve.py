"""Evol-Instruct: the four elimination rules one by one, the operation draw, the parsers, the stage end to end
against the fake OpenAI server (each rule seen firing, lineage, books), and one real run with the local model."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from support.fake_model import fake_model
from support.fake_openai import FakeOpenAI
from support.llm_stages import check_books, make_seeds, read_jsonl, run_stage, set_llm_params, write_records
from vad.generate import evolve
from vad.generate.elimination import (AnswerEmpty, NoGainJudge, NoGainPrecheck, RefusalShort, TemplateLeak, answer_content,
                             new_chars)
from vad.core.ledger import StageRun, id_problems
from vad.core.text import CopyDetector
from vad.core.config import EvolParams, LLMParams
from vad.llm import ParseError, load_template, make_client
from vad.core.record import Lineage, Record

PARENT = Record(instruction="孩子沉迷手机游戏怎么办？", input="", output="", source="evol",
                categorization={"level": "person", "value": "友善"})


def child(instruction: str, output: str = "", input: str = "", **evol) -> Record:
    return Record(instruction=instruction, input=input, output=output, source="evol",
                  categorization=dict(PARENT.categorization), lineage=Lineage(parents=[PARENT.id]),
                  meta={"evol": evol})


PARENTS = {PARENT.id: PARENT}


# --- rule 1: no information gain ---------------------------------------------------------------------------------
def test_no_gain_precheck_fires_on_identical_and_nearly_identical():
    rule = NoGainPrecheck(PARENTS, min_gain_chars=6)
    d = rule.check(child("孩子沉迷手机游戏怎么办？"))
    assert d and d.reason == "evol_no_gain" and "identical" in d.detail
    d = rule.check(child("孩子 沉迷手机游戏，怎么办呢？"))  # whitespace ignored, 2 new characters
    assert d and d.reason == "evol_no_gain" and d.extra["new_chars"] < 6


def test_no_gain_precheck_passes_a_real_rewrite():
    rule = NoGainPrecheck(PARENTS, min_gain_chars=6)
    assert rule.check(child("孩子沉迷手机游戏怎么办？他上初二，每天要玩三个小时。")) is None
    assert new_chars("abc", "abcdefgh") == 5
    # material added by complicate_input counts as new information
    assert rule.check(child("孩子沉迷手机游戏怎么办？", input="每天玩三小时，成绩下滑二十名。")) is None


def test_no_gain_judge():
    rule = NoGainJudge()
    d = rule.check(child("孩子沉迷手机游戏怎么办呀？请回答。", judge="相同"))
    assert d and d.reason == "evol_no_gain" and d.extra["rule"] == "judge"
    assert rule.check(child("孩子沉迷手机游戏怎么办？他上初二。", judge="不同")) is None
    with pytest.raises(KeyError):
        rule.check(child("没有判定结果的候选"))


# --- rule 2: short refusal ---------------------------------------------------------------------------------------
def test_refusal_short_fires_on_a_short_refusal():
    rule = RefusalShort(max_chars=80)
    for text in ("抱歉，我无法回答这个问题。", "对不起，这个我不能回答。", "作为一个AI，我没有个人观点。", "Sorry, I can't help."):
        d = rule.check(child("问题", output=text))
        assert d and d.reason == "evol_refusal_short", text


def test_refusal_with_positive_guidance_survives():
    rule = RefusalShort(max_chars=80)
    long_refusal = ("我不能提供逃税的方法。逃税是违法行为，会被追缴税款、处以罚款，情节严重的还要承担刑事责任。"
                    "如果觉得税负较重，可以了解国家的个税专项附加扣除政策，比如子女教育、住房贷款利息、赡养老人等，"
                    "依法申报就能合理减少纳税额；有疑问也可以咨询当地税务机关或专业的税务顾问。")
    assert len(long_refusal) >= 80 and rule.check(child("问题", output=long_refusal)) is None
    assert rule.check(child("问题", output="可以，注意安全。")) is None  # short but not a refusal


def test_one_refusal_list_for_elimination_and_evaluation():
    """The short-refusal rule and the evaluation's answer parser read the same phrases (vad.core.text): each
    phrase below was once in only one of two lists."""
    from vad.eval.answers import REFUSED, classify_answer
    rule = RefusalShort(max_chars=80)
    for text in ("此事无可奉告。", "这个问题我不便评价。", "我拒绝回答。", "作为大模型，我没有立场。", "I won't do that."):
        assert rule.check(child("问题", output=text)), text
        assert classify_answer(text) == (REFUSED, "refusal_phrase"), text
    # not refusals: an undecided comparison, a circumstance, a word that merely contains "AI" or "sorry"
    for text in ("两个回复无法比较。", "因工作无法到场的业主可以委托他人。", "AIGC 是什么？", "sorrynotsorry"):
        assert rule.check(child("问题", output=text)) is None, text
    assert classify_answer("两个回复无法比较。")[0] != REFUSED


# --- rule 3: empty answer ----------------------------------------------------------------------------------------
def test_answer_empty_fires_on_punctuation_and_stop_words():
    rule = AnswerEmpty()
    for text in ("。。。", "……？！", "嗯嗯，好的！", "是的。", "The answer is: yes.", "我不知道。"):
        d = rule.check(child("问题", output=text))
        assert d and d.reason == "evol_answer_empty", text


def test_answer_with_content_survives():
    rule = AnswerEmpty()
    assert rule.check(child("问题", output="可以先和孩子约定每天的游戏时间。")) is None
    assert rule.check(child("问题", output="110")) is None
    assert answer_content("好的，垃圾分类！") == "垃圾分类"


# --- rule 4: template leak ---------------------------------------------------------------------------------------
def test_template_leak_fires_on_markers_and_copied_examples():
    rule = TemplateLeak(PARENTS, examples=["大学生应该做兼职吗？请先列出兼职的收获和代价，再结合学业压力分析。"])
    for text in ("#Rewritten Prompt#: 孩子沉迷手机游戏怎么办？", "改写后的提示：孩子沉迷手机游戏怎么办？他上初二。",
                 "给定提示：孩子沉迷游戏", "原始提示：孩子沉迷手机游戏怎么办？"):
        d = rule.check(child(text))
        assert d and d.reason == "evol_template_leak", text
    d = rule.check(child("孩子沉迷手机游戏怎么办？请先列出兼职的收获和代价。"))  # pasted from a few-shot example
    assert d and d.reason == "evol_template_leak" and "example" in d.extra


def test_template_leak_passes_a_clean_rewrite_and_text_the_parent_already_had():
    rule = TemplateLeak(PARENTS, examples=["孩子沉迷手机游戏怎么办？他上初二，每天放学后要玩三个小时。"])
    assert rule.check(child("孩子沉迷手机游戏怎么办？作为家长，怎样不伤感情地和他约定规则？")) is None
    # the windows shared with the example come from the parent prompt itself: not a leak
    assert rule.check(child("孩子沉迷手机游戏怎么办？我想知道有哪些温和的办法。")) is None


def test_copy_detector_compares_normalised_text_and_allows_what_may_be_repeated():
    copies = CopyDetector(["请先列出兼职的收获和代价，再结合学业压力分析。"], run=10)
    assert copies.copied("孩子沉迷游戏怎么办？请先列出 兼职的收获和代价。") == "请先列出兼职的收获和"  # spaces ignored
    assert copies.copied("请先列出兼职的收获和代价。", allowed="请先列出兼职的收获和代价") is None
    assert copies.copied("请先列出兼职的收获。") is None  # shorter than the run
    assert copies.example("请先列出兼职的收获和").startswith("请先列出") and not CopyDetector([])


def test_real_templates_leak_words_cover_their_labels():
    # every label our evolve templates put around the prompt is in the leak list
    from vad.generate.elimination import LEAK_WORDS
    for op, name in evolve.TEMPLATES.items():
        t = load_template(name)
        label = t.user.split("{")[0].strip()
        assert any(w.rstrip("：:") and w.rstrip("：:") in label for w in LEAK_WORDS), (name, label)
        assert t.version and len(t.fewshot) >= 2


# --- the operation draw and the parsers ----------------------------------------------------------------------------
def test_pick_op_is_stable_per_instruction_and_respects_breadth_share():
    a = evolve.pick_op("孩子沉迷手机游戏怎么办？", "", 1, 7, 0.2)
    assert all(evolve.pick_op("孩子沉迷手机游戏怎么办？", "", 1, 7, 0.2) == a for _ in range(5))
    ops = Counter(evolve.pick_op(f"第{i}个问题", "", 1, 7, 0.2) for i in range(2000))
    assert set(ops) == set(evolve.OPS)
    assert 0.15 < ops["breadth"] / 2000 < 0.25
    assert Counter(evolve.pick_op(f"第{i}个问题", "", 1, 7, 0.0) for i in range(300))["breadth"] == 0
    # a different round or rng seed gives an independent draw
    assert [evolve.pick_op(f"q{i}", "", 1, 7, 0.2) for i in range(50)] != [evolve.pick_op(f"q{i}", "", 2, 7, 0.2)
                                                                         for i in range(50)]


def test_parsers():
    parent = Record(instruction="孩子沉迷手机游戏怎么办？", input="旧材料", output="", source="evol",
                    categorization={"level": "person", "value": "友善"})
    p = evolve.parse_rewrite("constraints", parent)
    assert p("“孩子沉迷手机游戏怎么办？他上初二。”") == ("孩子沉迷手机游戏怎么办？他上初二。", "旧材料")
    assert evolve.parse_rewrite("breadth", parent)("同事抢功劳，我该当面说清楚吗？") == ("同事抢功劳，我该当面说清楚吗？", "")
    ci = evolve.parse_rewrite("complicate_input", parent)
    assert ci("结合材料说明孩子该怎么管。\n材料：每天玩三小时。") == ("结合材料说明孩子该怎么管。", "每天玩三小时。")
    for bad in ("", "我不知道", "How can I help my child stop gaming so much every day?",
                "孩子沉迷手机游戏是因为学习压力太大了。",  # a statement (an answer), not a prompt
                "孩子沉迷游戏怎么办？多陪伴孩子一起运动。多陪伴孩子一起运动。多陪伴孩子一起运动。"):
        with pytest.raises(ParseError):
            p(bad)
    with pytest.raises(ParseError):
        ci("结合材料说明孩子该怎么管，但是没有材料。")
    assert evolve.parse_judge("不同。") == "不同" and evolve.parse_judge("相同") == "相同"
    with pytest.raises(ParseError):
        evolve.parse_judge("我不知道")
    assert evolve.parse_answer(" 。。。 ") == "。。。"  # left to rule 3
    ex = CopyDetector(load_template("evol_answer").fewshot_texts("answer"))
    pasted = "养宠物要注意：按时打疫苗、做体检。养宠物是十几年的责任，想清楚能否坚持再决定。"
    with pytest.raises(ParseError):
        evolve.answer_parser(ex, "我想养一条狗，有什么建议？")(pasted)
    assert evolve.answer_parser(ex, "我想养一条狗，有什么建议？")("先确认小区和房东允许养狗，再考虑每天遛狗的时间。")
    for bad in ("", "This is an English answer without any Chinese.",
                "要保护环境。你可以问问社区志愿者。\n你可以问问社区志愿者。\n你可以问问社区志愿者。"):  # a generation loop
        with pytest.raises(ParseError):
            evolve.parse_answer(bad)


# --- the stage against the fake server (no faults: every outcome is known) ------------------------------------------
def test_evolve_stage_each_rule_fires_and_lineage_is_complete(stage_env):
    seeds = make_seeds()
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 6, "rounds": 2, "breadth_share": 0.0})
        run_stage(stage_env, "evolve")
    out, ledger, m = check_books(stage_env, "evolve", seeds, "build/evolve/evol.jsonl")
    by_seed: dict[str, Counter] = {}
    for e in ledger:
        by_seed.setdefault(e["record"]["meta"].get("seed_id", e["id"]), Counter())[e["reason"]] += 1
    s = {rec.instruction[-4:]: rec for rec in seeds}
    expect = {"【同】": "evol_no_gain", "【判同】": "evol_no_gain", "【漏】": "evol_template_leak",
              "【拒】": "evol_refusal_short", "【空】": "evol_answer_empty"}
    for tag, reason in expect.items():
        seed = next(r for r in seeds if tag in r.instruction)
        assert by_seed[seed.id][reason] == 2, (tag, by_seed.get(seed.id))  # failed in both rounds
        assert any(e["id"] == seed.id and e["reason"] == "evol_exhausted" for e in ledger)
    assert Counter(e["reason"] for e in ledger)["evol_over_limit"] == 1  # 7 seeds, seed_limit 6
    # the normal seed evolved twice: round 2 evolves round 1's output, which replaced its parent in the pool
    good = seeds[0]
    mine = sorted((r for r in out if r["meta"]["seed_id"] == good.id), key=lambda r: r["meta"]["evol"]["round"])
    assert [r["meta"]["evol"]["round"] for r in mine] == [1, 2] and len(out) == 2
    r1, r2 = mine
    assert r1["lineage"]["parents"] == [good.id] and r2["lineage"]["parents"] == [r1["id"]]
    assert r2["instruction"].startswith(r1["instruction"]) or r2["input"]
    for r in mine:
        assert r["source"] == "evol" and r["categorization"] == good.categorization
        assert r["lineage"]["origin"] == good.lineage.origin and r["output"].startswith("关于")
        op = r["lineage"]["ops"][-1]
        assert op["stage"] == "evolve" and op["op"] in evolve.DEPTH_OPS and op["model"] == "fake-model"
        assert op["template"] == evolve.TEMPLATES[op["op"]] and op["template_version"]
        assert r["meta"]["evol"]["judge"] == "不同"
    assert r2["lineage"]["ops"][0]["stage"] == "seeds" and len(r2["lineage"]["ops"]) == 3
    assert good.id not in {e["id"] for e in ledger} and m["consumed"] == 1
    # metrics: per rule, per op, funnel, client stats
    assert m["eliminated_by_rule"]["evol_no_gain"] == 4 and m["eliminated_by_rule"]["evol_template_leak"] == 2
    assert m["funnel"]["attempted"] == 12 and m["funnel"]["emitted"] == 2
    assert sum(c.get("attempted", 0) for c in m["per_op"].values()) == 12
    assert m["llm"]["calls"] > 0 and m["llm_client"]["backend"] == "openai"
    assert "evol_answer" in m["llm_client"]["templates"]


def test_complicate_input_and_breadth_outputs(stage_env):
    seeds = make_seeds()[:1] + make_seeds()[6:]
    write_records(stage_env / "build/seeds/seeds.jsonl", seeds)
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 2, "rounds": 4, "breadth_share": 0.5, "rng_seed": 3})
        run_stage(stage_env, "evolve")
    out, _ledger, m = check_books(stage_env, "evolve", seeds, "build/evolve/evol.jsonl")
    ops = Counter(r["lineage"]["ops"][-1]["op"] for r in out)
    assert ops["breadth"] >= 1, ops
    for r in out:
        if r["lineage"]["ops"][-1]["op"] == "breadth":
            assert r["input"] == "" and "公共规则" in r["instruction"]
        if r["lineage"]["ops"][-1]["op"] == "complicate_input":
            assert r["input"].startswith("某市")


# --- the real local model --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_evolve_with_the_local_model_balances(tmp_path, monkeypatch):
    """One real run with Gemma 3 270M base (offline): completes and balances its books (quality not asserted)."""
    cfg = LLMParams(backend="local", model="gemma3-270m", max_new_tokens=64, batch_size=8)
    client = make_client(cfg)
    seeds = make_seeds()[:1] + make_seeds()[6:] + make_seeds()[1:3]
    run = StageRun("evolve", root=tmp_path)
    out = evolve.run(seeds, EvolParams(seed_limit=2, rounds=1, breadth_share=0.2, rng_seed=7, refusal_max_chars=80,
                                       min_gain_chars=6), client, run, progress=False)
    m = run.finish({"evol.jsonl": out}, llm=client.stats("evolve"))
    assert m["in"] == 4 and m["created"] == 2 and m["funnel"]["attempted"] == 2  # one attempt per seed
    ledger = read_jsonl(tmp_path / "build/ledger/evolve.jsonl")
    assert id_problems([s.id for s in seeds], [r.to_dict() for r in out], ledger, m["consumed_ids"], m["created"]) == []
    assert Counter(e["reason"] for e in ledger)["evol_over_limit"] == 2
    assert m["llm"]["calls"] >= 2 and client.describe()["backend"] == "local"
    for r in out:
        assert r.source == "evol" and r.output and r.lineage.ops[-1]["backend"] == "local"
    client.close()


def test_evolve_stage_with_nothing_surviving_completes(stage_env):
    """Every evolution eliminated: the stage still finishes (ledger explains all), the GX check is reported skipped."""
    seeds = [s for s in make_seeds() if "【同】" in s.instruction or "【漏】" in s.instruction]
    write_records(stage_env / "build/seeds/seeds.jsonl", seeds)
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 6, "rounds": 1, "breadth_share": 0.0})
        m = run_stage(stage_env, "evolve")
    out, ledger, _ = check_books(stage_env, "evolve", seeds, "build/evolve/evol.jsonl")
    assert out == [] and m["validation"]["skipped"] == "empty output"
    assert Counter(e["reason"] for e in ledger) == Counter({"evol_no_gain": 1, "evol_template_leak": 1,
                                                            "evol_exhausted": 2})
    assert json.loads((stage_env / "build/evolve/gx_evol.json").read_text())["skipped"]
