"""Evol-Instruct (WizardLM, docs/methods.md §5) on CValues seeds: evolved Chinese values prompts with answers.

    out = run(seeds, params.evol, client, stage_run)

The first `evol.seed_limit` seeds (file order) form the pool; the rest are ledgered `evol_over_limit`. Each of
`evol.rounds` rounds evolves every prompt in the pool once:

1. an operation is drawn by an RNG seeded with (evol.rng_seed, round, prompt text) — stable per instruction,
   independent of the other seeds: breadth with probability `evol.breadth_share`, else one of the five depth
   operations (constraints, deepening, concretizing, reasoning, complicate_input);
2. the operation's template (vad/generate/prompts/evol_*.toml) rewrites the prompt (complicate_input adds material as
   the record's `input`; breadth writes a new prompt in the seed's domain, without input);
3. the elimination rules (vad/generate/elimination.py) run where they are cheapest: template leak and the no-gain
   pre-check on the text, then the LLM judge (相同/不同), then the values-aware answer (evol_answer), then the
   empty-answer and short-refusal rules, then a duplicate check (`evol_duplicate`: same text as an emitted one);
4. a surviving evolution is emitted (every round's successes are training samples, as in WizardLM) and replaces
   its parent in the pool; an eliminated one is ledgered and its parent stays in the pool for the next round.

A call that fails (`llm_error`) or whose text cannot be used (`parse_error`) is ledgered the same way. Every
attempt is a created record: the ledger shows its text (an attempt that produced no text has the parent's text
and an id derived from (parent, round, op), since it has no content of its own). A seed leaves the stage through
`consume` when at least one of its descendants was emitted, else it is ledgered `evol_exhausted`."""
from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from vad.core.config import EvolParams, LLMParams
from vad.core.filters import declared
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record, normalise, record_id
from vad.core.text import (MIN_HAN_RATIO, CopyDetector, asks_something, content_chars, han_ratio, mark_share,
                           repeated_sentence)
from vad.generate.elimination import AnswerEmpty, NoGainJudge, NoGainPrecheck, RefusalShort, TemplateLeak
from vad.generate import funnel
from vad.generate.funnel import Funnel, TaskKey, task
from vad.llm import GenerationTask, ParseError, Prompt, load_template

STAGE = "evolve"
DEPTH_OPS = ("constraints", "deepening", "concretizing", "reasoning", "complicate_input")
BREADTH = "breadth"
OPS = DEPTH_OPS + (BREADTH,)
TEMPLATES = {**{op: f"evol_depth_{op}" for op in DEPTH_OPS}, BREADTH: "evol_breadth"}
JUDGE_TEMPLATE = "evol_judge"
ANSWER_TEMPLATE = "evol_answer"
TEMPLATE_NAMES = (*TEMPLATES.values(), JUDGE_TEMPLATE, ANSWER_TEMPLATE)  # the prompt files this stage reads
MATERIAL_LABEL = "材料："
_MATERIAL_RE = re.compile(r"(?m)^\s*材料\s*[：:]")

# Generation settings per call type (the rest comes from params.yaml `llm`). A rewrite is short; the judge answers
# one word, greedily; depth rewrites keep most of the parent, so the local model gets no repetition penalty there
# (it would push the model away from the words it must keep).
REWRITE_MAX_TOKENS = 160
COMPLICATE_MAX_TOKENS = 240
JUDGE_GEN = {"temperature": 0.0, "max_new_tokens": 8}
MAX_PROMPT_CHARS = 1000
MAX_INPUT_CHARS = 2000
MIN_PROMPT_CHARS = 8
DEFAULT_DOMAIN = "价值观"  # breadth evolution's domain for a seed without one


# --- the operation ---------------------------------------------------------------------------------------------
def pick_op(instruction: str, input: str, round_no: int, rng_seed: int, breadth_share: float) -> str:
    """The operation for this prompt in this round: a pure function of (seed, round, prompt text)."""
    key = f"{rng_seed}|{round_no}|{normalise(instruction)}|{normalise(input)}"
    rng = random.Random(hashlib.sha256(key.encode("utf-8")).hexdigest())
    if rng.random() < breadth_share:
        return BREADTH
    return rng.choice(DEPTH_OPS)


def material_block(input: str) -> str:
    return f"\n{MATERIAL_LABEL}{input}" if input else ""


def shown_text(instruction: str, input: str) -> str:
    """A prompt as the templates show it: the instruction, then its material on a 材料： line."""
    return instruction + material_block(input)


def shown(rec: Record) -> str:
    return shown_text(rec.instruction, rec.input)


# --- parsers (raise ParseError: the runner re-asks) -------------------------------------------------------------
def _clean(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] in "\"“「『'" and t[-1] in "\"”」』'":
        t = t[1:-1].strip()
    return t


def parse_rewrite(op: str, parent: Record):
    """Parser of a rewrite: returns (instruction, input)."""
    min_chars = max(MIN_PROMPT_CHARS, content_chars(parent.instruction) // 2)

    def parse(text: str) -> tuple[str, str]:
        t = _clean(text)
        m = _MATERIAL_RE.search(t)
        instr, material = (t[:m.start()].strip(), t[m.end():].strip()) if m else (t, "")
        if op == "complicate_input":
            if not material:
                raise ParseError("缺少以“材料：”开头的材料")
            inp = material
        elif op == BREADTH:
            inp = ""  # a new prompt: the parent's material does not belong to it
        else:
            inp = parent.input  # depth rewrites keep the material as it is
        if not instr:
            raise ParseError("没有输出改写后的提示")
        if content_chars(instr) < min_chars:
            raise ParseError(f"提示太短（{content_chars(instr)}个字）")
        if len(instr) > MAX_PROMPT_CHARS or len(inp) > MAX_INPUT_CHARS:
            raise ParseError("提示或材料太长")
        if han_ratio(instr) < MIN_HAN_RATIO:
            raise ParseError("提示必须用中文")
        if not asks_something(instr):
            raise ParseError("输出的不是一个提问或请求（应当是改写后的提示，而不是陈述或回答）")
        if repeated_sentence(instr + "\n" + inp):
            raise ParseError("提示中有大量重复")
        return instr, inp

    return parse


def parse_judge(text: str) -> str:
    t = text.strip()
    if "不同" in t or "不相同" in t:
        return "不同"
    if "相同" in t:
        return "相同"
    raise ParseError("只能回答“相同”或“不同”")


def answer_parser(examples: CopyDetector | None, prompt: str):
    """parse_answer, plus: the answer must not paste a sentence of an evol_answer few-shot example that the
    prompt does not contain (a small base model's favourite shortcut)."""

    def parse(text: str) -> str:
        t = parse_answer(text)
        if examples is not None and examples.copied(t, allowed=prompt):
            raise ParseError("回答抄写了示例中的句子，请针对这个问题回答")
        return t

    return parse


def parse_answer(text: str) -> str:
    """An answer must exist and be Chinese; content-free answers are left to rule 3 (evol_answer_empty)."""
    t = text.strip()
    if not t:
        raise ParseError("回答是空的")
    if (any(c.isalnum() for c in t) or mark_share(t) > 0) and han_ratio(t) < MIN_HAN_RATIO:
        raise ParseError("回答必须用中文")  # letters or combining marks (a run of accents) but too little Han
    if repeated_sentence(t):
        raise ParseError("回答中同一句话重复了多次")
    return t


# --- the calls ------------------------------------------------------------------------------------------------
class EvolCalls:
    """What each call of a round sends: template, prompt and generation settings (the stage and the dry estimate,
    vad/generate/estimate.py, build them here, the same way)."""

    def __init__(self, cfg: LLMParams):
        self.cfg = cfg
        self.rewrite_templates = {op: load_template(name) for op, name in TEMPLATES.items()}
        self.judge_template = load_template(JUDGE_TEMPLATE)
        self.answer_template = load_template(ANSWER_TEMPLATE)

    def gen(self, round_no: int, **kw: Any) -> dict[str, Any]:
        # a new seed per round: a prompt that failed and drew the same operation again gets a fresh sample
        return {"seed": self.cfg.seed + round_no - 1, **kw}

    def rewrite(self, op: str, instruction: str, input: str, domain: str, round_no: int) -> tuple[Prompt, dict]:
        t = self.rewrite_templates[op]
        if op == BREADTH:
            return (t.render(instruction=instruction, domain=domain),
                    self.gen(round_no, max_new_tokens=min(self.cfg.max_new_tokens, REWRITE_MAX_TOKENS)))
        cap = COMPLICATE_MAX_TOKENS if op == "complicate_input" else REWRITE_MAX_TOKENS
        return (t.render(instruction=instruction, material=material_block(input)),
                self.gen(round_no, max_new_tokens=min(self.cfg.max_new_tokens, cap), repetition_penalty=1.0))

    def judge(self, first: str, second: str, round_no: int) -> tuple[Prompt, dict]:
        return self.judge_template.render(first=first, second=second), self.gen(round_no, **JUDGE_GEN)

    def answer(self, instruction: str, input: str, round_no: int) -> tuple[Prompt, dict]:
        return self.answer_template.render(instruction=instruction, material=material_block(input)), self.gen(round_no)


# --- the pool ---------------------------------------------------------------------------------------------------
@dataclass
class Lane:
    seed: Record
    current: Record
    emitted: int = 0


@dataclass
class Candidate:
    lane: Lane
    op: str
    round: int
    rec: Record | None = None  # the evolution (a failed rewrite gets an attempt record: see Evolver._candidate)

    def key(self, step: str) -> TaskKey:
        return TaskKey(self.lane.seed.id, step, round=self.round)


class Evolver:
    def __init__(self, params: EvolParams, client, run: StageRun, progress: bool = True):
        self.p = params
        self.client = client
        self.run = run
        self.calls = EvolCalls(client.cfg)
        self.parents: dict[str, Record] = {}
        self.leak = TemplateLeak(self.parents, examples=[
            v for t in self.calls.rewrite_templates.values() for v in t.fewshot_texts("answer", "instruction")])
        self.answer_copies = CopyDetector(self.calls.answer_template.fewshot_texts("answer"))
        self.precheck = NoGainPrecheck(self.parents, params.min_gain_chars)
        self.judge_rule = NoGainJudge()
        self.answer_empty, self.refusal_short = AnswerEmpty(), RefusalShort(params.refusal_max_chars)
        self.emitted_ids: set[str] = set()
        self.funnel: Funnel[Candidate] = Funnel(
            client, run, rec=lambda c: c.rec, call_fields=lambda c: {"op": c.op, "round": c.round},
            by={"per_op": (lambda c: c.op, OPS), "per_round": (lambda c: c.round, ())}, progress=progress)

    def _op_info(self, op: str, round_no: int) -> dict[str, Any]:
        t = self.calls.rewrite_templates[op]
        return {"round": round_no, "model": self.client.cfg.model, "backend": self.client.backend,
                "template": t.name, "template_version": t.version,
                "judge_template_version": self.calls.judge_template.version,
                "answer_template": self.calls.answer_template.name,
                "answer_template_version": self.calls.answer_template.version}

    def _candidate(self, c: Candidate, instruction: str, input: str, attempt_id: bool = False) -> Record:
        lane, op, round_no = c.lane, c.op, c.round
        parent = lane.current
        rec = Record(
            instruction=instruction, input=input, output="", source="evol",
            categorization=dict(lane.seed.categorization),
            lineage=Lineage(origin=dict(lane.seed.lineage.origin), parents=[parent.id],
                            ops=[dict(o) for o in parent.lineage.ops]),
            meta={**{k: v for k, v in lane.seed.meta.items() if k != "evol"}, "seed_id": lane.seed.id,
                  "evol": {"op": op, "round": round_no, "depth": op != BREADTH}},
            id=(hashlib.sha256(f"evol-attempt|{parent.id}|{round_no}|{op}".encode()).hexdigest()[:16]
                if attempt_id else ""),
        )
        rec.add_op(STAGE, op, **self._op_info(op, round_no))
        self.run.created(1)
        return rec

    # --- one round --------------------------------------------------------------------------------------------
    def round(self, lanes: list[Lane], r: int) -> list[Record]:
        fn, calls = self.funnel, self.calls
        # 1. rewrite every prompt in the pool
        cands = []
        for lane in lanes:
            cur = lane.current
            self.parents[cur.id] = cur
            cands.append(Candidate(lane, pick_op(cur.instruction, cur.input, r, self.p.rng_seed, self.p.breadth_share), r))

        def rewrite(c: Candidate) -> list[GenerationTask]:
            cur = c.lane.current
            domain = c.lane.seed.meta.get("domain_zh") or DEFAULT_DOMAIN
            return [task(c.key("rewrite"), calls.rewrite(c.op, cur.instruction, cur.input, domain, r),
                         parse_rewrite(c.op, cur))]

        def attempt(c: Candidate) -> None:  # a rewrite that produced no text: ledgered with its parent's text
            c.rec = self._candidate(c, c.lane.current.instruction, c.lane.current.input, attempt_id=True)

        rewritten = []
        for c, (res,) in fn.ask(cands, rewrite, f"evolve r{r}: rewrite", asked="attempted", passed="rewritten",
                                on_failure=attempt):
            c.rec = self._candidate(c, *res.value)
            rewritten.append(c)
        # 2. cheap rules on the text
        cands = fn.filter(rewritten, "after_template_leak", [self.leak])
        cands = fn.filter(cands, "after_no_gain_precheck", [self.precheck])
        # 3. the judge
        judged = []
        for c, (res,) in fn.ask(cands, lambda c: [task(c.key("judge"), calls.judge(shown(c.lane.current), shown(c.rec), r),
                                                       parse_judge)],
                                f"evolve r{r}: judge", passed="judged"):
            c.rec.meta["evol"]["judge"] = res.value
            judged.append(c)
        cands = fn.filter(judged, "after_no_gain_judge", [self.judge_rule])
        # 4. the answer
        answered = []
        for c, (res,) in fn.ask(cands, lambda c: [task(c.key("answer"), calls.answer(c.rec.instruction, c.rec.input, r),
                                                       answer_parser(self.answer_copies, shown(c.rec)))],
                                f"evolve r{r}: answer", passed="answered"):
            c.rec.output = res.value
            c.rec.id = record_id(c.rec.instruction, c.rec.input, c.rec.output, c.rec.source)
            answered.append(c)
        cands = fn.filter(answered, "after_answer_empty", [self.answer_empty])
        cands = fn.filter(cands, "after_refusal_short", [self.refusal_short])
        # 5. emit
        out = []
        for c in cands:
            if c.rec.id in self.emitted_ids:
                fn.drop(c, "evol_duplicate", "same instruction, input and answer as an emitted evolution",
                        dup_of=c.rec.id)
                continue
            self.emitted_ids.add(c.rec.id)
            fn.outcome(c, "emitted")
            c.lane.current = c.rec
            c.lane.emitted += 1
            out.append(c.rec)
        fn.count("emitted", len(out))
        return out


LEDGER_REASONS = {  # what evolve ledgers besides its filters' codes (they declare their own)
    "evol_duplicate": "the same instruction, input and answer as an evolution already emitted",
    "evol_over_limit": "a seed beyond `evol.seed_limit`",
    "evol_exhausted": "a seed none of whose evolutions survived `evol.rounds` rounds",
}
# the reasons an evolution is eliminated for, in the order metrics list them
RULES = (*declared([TemplateLeak, NoGainPrecheck, AnswerEmpty, RefusalShort]), "evol_duplicate", *funnel.LLM_REASONS)


def run(seeds: list[Record], params: EvolParams, client, stage_run: StageRun,
        progress: bool = True) -> list[Record]:
    """Evolve the first `seed_limit` seeds for `rounds` rounds; returns every emitted evolution (all rounds)."""
    stage_run.take(seeds)
    limit, rounds = params.seed_limit, params.rounds
    for s in seeds[limit:]:
        stage_run.drop(s, "evol_over_limit", f"beyond evol.seed_limit={limit} (raise it to evolve this seed)")
    ev = Evolver(params, client, stage_run, progress=progress)
    lanes = [Lane(seed=s, current=s) for s in seeds[:limit]]
    out: list[Record] = []
    for r in range(1, rounds + 1):
        out += ev.round(lanes, r)
    for lane in lanes:
        if lane.emitted:
            stage_run.consume(lane.seed.id)
        else:
            stage_run.drop(lane.seed, "evol_exhausted", f"no evolution survived {rounds} round(s)")
    breakdowns = ev.funnel.breakdowns()
    per_rule = Counter()
    for c in breakdowns["per_op"].values():
        per_rule.update({k: v for k, v in c.items() if k in RULES})
    stage_run.metrics.update({
        "seeds_used": len(lanes),
        "rounds": rounds,
        "seeds_with_output": sum(1 for l in lanes if l.emitted),
        "eliminated_by_rule": {k: per_rule.get(k, 0) for k in RULES},
        "funnel": dict(ev.funnel.counts),
        **breakdowns,
    })
    return out
