"""The fake model behind the LLM-stage tests and benchmarks/evolve_scale.py: `fake_model(messages) -> str` gives
plausible Chinese answers for every prompt evolve and translate send (rewrites, breadth prompts, the no-gain
judge, answers, translations, polishes), told apart by the template's system text. Serve it over HTTP with
support.fake_openai.FakeOpenAI(fake_model)."""
from __future__ import annotations

import hashlib

from vad.core.text import content_chars
from vad.llm.client import REASK_TEXT

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
