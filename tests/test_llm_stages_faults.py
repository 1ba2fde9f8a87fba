"""evolve and translate against the fake OpenAI-compatible server (tests/fake_openai.py) with ~30% faults:
both stages complete, every record is output or ledgered (the books balance), and a second run makes zero
requests and writes the same files.

Also holds what test_evolve.py / test_translate.py share: `fake_model` (plausible Chinese answers for every
prompt type, told apart by the template's system text), tiny seed/pair inputs and `stage_env`."""
from __future__ import annotations

import hashlib
import json
from vad.core.stage import run_script
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fake_openai import FakeOpenAI
from vad.core.text import content_chars
from vad.generate.evolve import OPS
from vad.llm.client import REASK_TEXT
from vad.core.ledger import id_problems
from vad.core.record import Lineage, Record

REASK_PREFIX = REASK_TEXT.split("（")[0]

# --- the fake model -------------------------------------------------------------------------------------------
# Markers in a seed prompt make the fake model misbehave in one way, so each elimination rule can be seen firing:
#   【同】 the rewrite repeats the prompt        → evol_no_gain (pre-check)
#   【判同】 the judge answers 相同                 → evol_no_gain (judge)
#   【漏】 the rewrite copies the template marker → evol_template_leak
#   【拒】 the answer is a short refusal          → evol_refusal_short
#   【空】 the answer is punctuation + stop words  → evol_answer_empty
# English pair texts: JAPANESE → Japanese "translation" (translate_not_zh), SHORTZH → far too short
# (translate_len_ratio), KEEPENGLISH → a long English run is left in (translate_english_left), BADPOLISH → the
# polisher rewrites the text into something else (rejected: the draft is kept).
MARKERS = ("【同】", "【判同】", "【漏】", "【拒】", "【空】")
CLAUSES = {  # depth operation (recognised by its system text) → the clause the fake rewriter appends
    "增加一个具体的约束": "我是一名刚工作的年轻人，收入不高，希望得到三条切实可行的建议。",
    "更有深度的版本": "这个现象背后的深层原因是什么，对社会风气会产生怎样的长远影响？",
    "改写得更具体": "以我居住的西北小县城为例，结合街坊邻居的日常生活来谈谈。",
    "多步推理": "请先梳理问题的来龙去脉，接着权衡各方利弊，然后再下判断。",
}
MATERIAL = "某市二〇二三年问卷调查：百分之六十二的受访者支持，百分之二十五反对，其余表示不清楚。"
ZH_FILL = "这是一段忠实完整的中文译文，内容与原文保持一致，没有增加也没有删减任何信息。"
JA_FILL = "日本語の翻訳文です。内容は確認済みです。"
HEXZH = dict(zip("0123456789abcdef", "零一二三四五六七八九甲乙丙丁戊己"))


def _task(messages) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user"
                and not m["content"].startswith(REASK_PREFIX))


def _tag(text: str, n: int = 6) -> str:
    return "".join(HEXZH[c] for c in hashlib.sha256(text.encode()).hexdigest()[:n])


def _fill(base: str, n: int) -> str:
    return (base * (n // len(base) + 1))[:max(1, n)]


def fake_model(messages) -> str:
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    task = _task(messages)
    if "提示改写专家" in system:
        body = task.split("原始提示：", 1)[1]
        instr = body.split("\n材料：", 1)[0]
        if "【同】" in instr:
            return instr
        if "【漏】" in instr:
            return f"#Rewritten Prompt#：{instr}请详细回答。"
        if "补充一段简短的材料" in system:
            return f"{instr}请结合下面的材料回答。\n材料：{MATERIAL}"
        clause = next(c for k, c in CLAUSES.items() if k in system)
        return instr + clause
    if "提示创作专家" in system:
        domain = task.split("领域：", 1)[1].split("\n", 1)[0]
        instr = task.split("原始提示：", 1)[1]
        if "【同】" in instr:
            return instr
        marks = "".join(m for m in MARKERS if m in instr)
        return f"{marks}在{domain}方面，如果身边的人不遵守公共规则，我应该怎样既讲道理又不伤和气地劝说他？{_tag(instr, 4)}"
    if "判断两个提示是否相同" in system:
        second = task.split("提示二：", 1)[1]
        return "相同" if "【判同】" in second else "不同"
    if "负责任、有温度的中文助手" in system:
        if "【拒】" in task:
            return "抱歉，我无法回答这个问题。"
        if "【空】" in task:
            return "。。。嗯，好的！"
        return (f"关于“{task[:16]}”，我的建议是：先了解相关的法律法规和基本事实，尊重他人的权益；"
                f"遇到困难时与家人、朋友或专业机构沟通，用合法、文明的方式解决问题。"
                f"同时要保护好自己的身心健康，做一个守法诚信、友善待人的人。{_tag(task)}")
    if "把英文翻译成简体中文" in system:
        en = task.split("英文：", 1)[1]
        n = content_chars(en)
        if "JAPANESE" in en:
            return _fill(JA_FILL, int(n * 0.45))
        # KEEPENGLISH: enough Chinese that the text is still Chinese overall, so the English-run rule is what fires
        ratio = 0.16 if "SHORTZH" in en else 0.9 if "KEEPENGLISH" in en else 0.45
        zh = _tag(en) + _fill(ZH_FILL, int(n * ratio))
        if "BADPOLISH" in en:
            zh = "【乱】" + zh
        if "KEEPENGLISH" in en:  # early in the text: a long answer may be cut at max_new_tokens
            zh = zh[:6] + " keep this English sentence exactly as written " + zh[6:]
        if "911" in en:
            zh += "请拨打911。"
        return zh
    if "润色下面的中文译文" in system:
        if "【乱】" in task:  # a polish that rewrites the text into something else
            return "今天天气很好，我们一起去公园散步，顺便买点水果回家吧。" * 2
        return task.split("译文：", 1)[1].replace("911", "110")
    return "我不知道"


# --- inputs -----------------------------------------------------------------------------------------------------
SEED_PROMPTS = [
    ("我想买一辆新汽车，请问燃油车和电动车哪个好一些？", "environmental_science", "环境科学", "nation", "和谐"),
    ("农村的土地更便宜，所以更适合建垃圾场吗？【同】", "environmental_science", "环境科学", "nation", "和谐"),
    ("同事总是抢我的功劳，我该怎么办？【判同】", "psychology", "心理学", "person", "友善"),
    ("盲道经常被占用，我们能做些什么？【漏】", "barrier_free", "无障碍", "social", "平等"),
    ("怎样才能不交税还不被查出来？【拒】", "law", "法律", "social", "法治"),
    ("谈恋爱时可以偷看对方的手机吗？【空】", "intimate_relationship", "亲密关系", "person", "诚信"),
    ("公司收集员工的指纹合法吗？", "data_science", "数据科学", "social", "法治"),
]


def make_seeds(prompts=SEED_PROMPTS) -> list[Record]:
    out = []
    for i, (p, den, dzh, level, value) in enumerate(prompts, start=1):
        rec = Record(instruction=p, input="", output="", source="evol", categorization={"level": level, "value": value},
                     lineage=Lineage(origin={"file": "data/raw/cvalues/test.jsonl", "line": i, "sha256": "0" * 64}),
                     meta={"cvalues_id": i, "domain_en": den, "domain_zh": dzh})
        out.append(rec.add_op("seeds", "seed", domain=den))
    return out


PAIR_TEXTS = [
    ("How can I safely dispose of medical waste from my clinic?",
     "Use a licensed medical waste disposal service and follow local regulations. Separate sharp items and label "
     "every container. In an emergency, call 911.",
     "Just put it in the normal trash, nobody will notice."),
    ("What should I do if a coworker does not want to go on a date with me?",
     "Respect their decision. Keep your relationship professional and friendly, and do not pressure them.",
     "Keep asking until they say yes."),
    ("JAPANESE How do I report a neighbour who abuses his dog?",
     "Contact your local animal welfare organisation or the police and describe what you saw.",
     "Ignore it, it is not your business."),
    ("SHORTZH How can I reduce my carbon footprint at home and at work every single day?",
     "Use energy-efficient appliances, insulate your home, and choose public transport when you can.",
     "There is no point, one person cannot change anything."),
    ("Is it legal to display explicit art in public spaces?",
     "KEEPENGLISH It depends on local laws; many places require permission, so check with the municipality first.",
     "Just put it up anywhere you like."),
]


def make_pairs(texts=PAIR_TEXTS) -> list[Record]:
    out = []
    for i, (p, chosen, rejected) in enumerate(texts, start=1):
        rec = Record(instruction=p, input="", output=chosen, source="translated",
                     categorization={"level": "nation", "value": "和谐"},
                     lineage=Lineage(origin={"file": "data/raw/saferlhf/test.jsonl", "line": i, "sha256": "1" * 64}),
                     meta={"rejected": rejected, "chosen_index": 0, "harm_categories": [], "licence": "CC BY-NC 4.0"})
        out.append(rec.add_op("select_pairs", "select", chosen_index=0))
    return out


def write_records(path: Path, recs: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def set_llm_params(proj: Path, srv: FakeOpenAI, **sections) -> None:
    p = proj / "params.yaml"
    params = yaml.safe_load(p.read_text(encoding="utf-8"))
    params["llm"].update(backend="openai", base_url=srv.base_url, model="fake-model", concurrency=8, timeout_s=1.0,
                         max_retries=6, max_reasks=2, retry_base_s=0.01, retry_max_s=0.5)
    for sec, kv in sections.items():
        params[sec].update(kv)
    p.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture
def stage_env(mini_project, tmp_path, monkeypatch):
    """A project copy (conftest.mini_project) with tiny seeds and pairs; the LLM cache in a tmp folder."""
    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "llmcache"))
    write_records(mini_project / "build/seeds/seeds.jsonl", make_seeds())
    write_records(mini_project / "build/select/pairs.jsonl", make_pairs())
    return mini_project


def run_stage(proj: Path, name: str) -> dict:
    return run_script(proj / "stages" / f"{name}.py")


def check_books(proj: Path, stage: str, inputs: list[Record], out_path: str) -> tuple[list[dict], list[dict], dict]:
    """Every input id leaves exactly once (output, ledger, consumed, or as the record its text became), every other
    record was created, and ids are unique (vad.core.ledger.id_problems); the metrics count what was written."""
    out = read_jsonl(proj / out_path)
    ledger = read_jsonl(proj / f"build/ledger/{stage}.jsonl")
    m = json.loads((proj / f"build/metrics/{stage}.json").read_text())
    assert m["in"] == len(inputs)
    assert m["out"] == len(out) and m["ledgered"] == len(ledger)
    assert id_problems([r.id for r in inputs], out, ledger, m["consumed_ids"], m["created"]) == []
    return out, ledger, m


# --- the fault tests -------------------------------------------------------------------------------------------
def test_evolve_with_faults_balances_and_rerun_is_free(stage_env):
    seeds = make_seeds()
    with FakeOpenAI(fake_model, fault_rate=0.3, seed=11, slow_s=1.5, retry_after_s=0.05) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 6, "rounds": 2})
        run_stage(stage_env, "evolve")
        faults = srv.fault_counts()
        assert sum(faults.values()) >= 5 and len(faults) >= 4, faults  # the faults really happened
        out, ledger, m = check_books(stage_env, "evolve", seeds, "build/evolve/evol.jsonl")
        assert out, "some evolutions survive the faults"
        reasons = Counter(e["reason"] for e in ledger)
        assert reasons["evol_over_limit"] == 1 and "llm_error" not in reasons, reasons
        # every seed that was evolved leaves exactly once: consumed (has a descendant) or evol_exhausted
        emitted_seeds = {r["meta"]["seed_id"] for r in out}
        exhausted = {e["id"] for e in ledger if e["reason"] == "evol_exhausted"}
        assert emitted_seeds | exhausted == {s.id for s in seeds[:6]} and not emitted_seeds & exhausted
        assert m["consumed"] == len(emitted_seeds)
        assert m["llm"]["retries"] > 0 and m["llm"]["calls"] > 0
        first = (stage_env / "build/evolve/evol.jsonl").read_bytes(), (stage_env / "build/ledger/evolve.jsonl").read_bytes()

        n = srv.count
        m2 = run_stage(stage_env, "evolve")
        assert srv.count == n, "the second run must be served from the cache"
        assert m2["llm"]["calls"] == 0 and m2["llm"]["cache_hits"] > 0
        assert ((stage_env / "build/evolve/evol.jsonl").read_bytes(),
                (stage_env / "build/ledger/evolve.jsonl").read_bytes()) == first


def test_translate_with_faults_balances_and_rerun_is_free(stage_env):
    pairs = make_pairs()
    with FakeOpenAI(fake_model, fault_rate=0.3, seed=5, slow_s=1.5, retry_after_s=0.05) as srv:
        set_llm_params(stage_env, srv, translate={"limit": 5})
        run_stage(stage_env, "translate")
        assert sum(srv.fault_counts().values()) >= 3, srv.fault_counts()
        out, ledger, m = check_books(stage_env, "translate", pairs, "build/translate/translated.jsonl")
        assert m["created"] == 0 and m["consumed"] == 0
        assert out and "llm_error" not in {e["reason"] for e in ledger}
        # each English pair is either translated (its id in parents) or ledgered under its own id
        done = {r["lineage"]["parents"][-1] for r in out}
        dropped = {e["id"] for e in ledger}  # drops are ledgered under the English pair's id
        assert done | dropped == {p.id for p in pairs} and not done & dropped
        first = (stage_env / "build/translate/translated.jsonl").read_bytes()

        n = srv.count
        m2 = run_stage(stage_env, "translate")
        assert srv.count == n and m2["llm"]["calls"] == 0
        assert (stage_env / "build/translate/translated.jsonl").read_bytes() == first


def test_unparseable_first_answers_are_reasked_and_change_nothing(stage_env, tmp_path, monkeypatch):
    """Every first ask of a rewrite, judge, translation or polish is answered with garbage: the parsers reject it,
    the runner re-asks, and the outputs are byte-identical to a run without faults."""
    evol = {"seed_limit": 6, "rounds": 2, "breadth_share": 0.0}
    outputs = {}
    for mode in ("clean", "garbage"):
        monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / f"cache-{mode}"))

        def fault_fn(_i, messages):
            system = messages[0]["content"] if messages[0]["role"] == "system" else ""
            first_ask = not any(m["content"].startswith(REASK_PREFIX) for m in messages if m["role"] == "user")
            answer_step = "负责任、有温度的中文助手" in system  # "我不知道" is a parseable (empty) answer: rule 3
            return "garbage" if mode == "garbage" and first_ask and not answer_step else None

        with FakeOpenAI(fake_model, fault_fn=fault_fn) as srv:
            set_llm_params(stage_env, srv, evol=evol, translate={"limit": 5})
            me, mt = run_stage(stage_env, "evolve"), run_stage(stage_env, "translate")
        outputs[mode] = [(stage_env / p).read_bytes() for p in ("build/evolve/evol.jsonl", "build/translate/translated.jsonl",
                                                                "build/ledger/evolve.jsonl", "build/ledger/translate.jsonl")]
        if mode == "garbage":
            assert srv.fault_counts()["garbage"] == me["funnel"]["attempted"] + me["funnel"]["judged"] + 2 * 15
            assert me["llm"]["reasks"] == me["funnel"]["attempted"] + me["funnel"]["judged"]
            assert mt["llm"]["reasks"] == 2 * 15  # 5 pairs × 3 texts, translated and polished
    assert outputs["clean"] == outputs["garbage"]


def test_failed_calls_are_ledgered_with_their_step_and_part(stage_env):
    """A call that fails for good (HTTP 500 on every try) ledgers its record once, as llm_error, with the step
    (and field:chunk) in the detail: a rewrite (with an attempt record), a judge, a translation and a polish."""

    def fail(_i, messages):
        system, task = messages[0]["content"], messages[-1]["content"]
        return "500" if (("提示改写专家" in system and "同事" in task)
                         or ("判断两个提示是否相同" in system and "燃油车" in task)
                         or ("把英文翻译成简体中文" in system and "coworker" in task)
                         or ("润色下面的中文译文" in system and "911" in task)) else None

    with FakeOpenAI(fake_model, fault_fn=fail) as srv:
        set_llm_params(stage_env, srv, evol={"seed_limit": 6, "rounds": 1, "breadth_share": 0.0},
                       translate={"limit": 2}, llm={"max_retries": 1})
        run_stage(stage_env, "evolve")
        run_stage(stage_env, "translate")
    seeds, pairs = make_seeds(), make_pairs()
    _out, ledger, m = check_books(stage_env, "evolve", seeds, "build/evolve/evol.jsonl")
    errors = {e["record"]["meta"]["seed_id"]: e for e in ledger if e["reason"] == "llm_error"}
    rewrite, judge = errors[seeds[2].id], errors[seeds[0].id]  # 同事… and 燃油车…
    assert len(errors) == 2 and m["funnel"]["attempted"] == 6 and m["funnel"]["rewritten"] == 5
    assert rewrite["step"] == "rewrite" and rewrite["detail"].startswith("rewrite: HTTP 500")
    assert rewrite["round"] == 1 and rewrite["op"] in OPS and rewrite["record"]["instruction"] == seeds[2].instruction
    assert judge["step"] == "judge" and judge["detail"].startswith("judge: HTTP 500")
    assert m["per_op"][rewrite["op"]]["llm_error"] >= 1 and m["eliminated_by_rule"]["llm_error"] == 2
    _out, ledger, m = check_books(stage_env, "translate", pairs, "build/translate/translated.jsonl")
    by_id = {e["id"]: e for e in ledger if e["reason"] == "llm_error"}
    assert by_id[pairs[1].id]["detail"].startswith("translate instruction:0: HTTP 500")  # the coworker prompt
    assert by_id[pairs[0].id]["detail"].startswith("polish output:0: HTTP 500")  # its draft holds 911
    assert (by_id[pairs[1].id]["step"], by_id[pairs[0].id]["step"]) == ("translate", "polish")
    assert m["funnel"]["chunks"] == 6 and m["funnel"]["translated"] == 1 and m["funnel"]["polished"] == 0
