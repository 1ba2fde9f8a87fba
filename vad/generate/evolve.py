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
from dataclasses import dataclass, field
from typing import Any

from vad.generate.elimination import (AnswerEmpty, NoGainJudge, NoGainPrecheck, RefusalShort, TemplateLeak, asks_something,
                             content_chars, repeated_sentence, strip_ws)
from vad.core.text import MIN_HAN_RATIO, han_ratio
from vad.core.ledger import StageRun
from vad.llm import GenerationTask, ParseError, TaskResult, load_template, run_tasks
from vad.core.record import Lineage, Record, normalise, record_id

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


def shown(rec: Record) -> str:
    """A prompt as the templates show it: the instruction, then its material on a 材料： line."""
    return rec.instruction + material_block(rec.input)


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


def answer_parser(examples: TemplateLeak | None, prompt: str):
    """parse_answer, plus: the answer must not paste a sentence of an evol_answer few-shot example that the
    prompt does not contain (a small base model's favourite shortcut)."""

    def parse(text: str) -> str:
        t = parse_answer(text)
        if examples is not None:
            flat, have = strip_ws(normalise(t)), strip_ws(normalise(prompt))
            for i in range(len(flat) - examples.run + 1):
                w = flat[i:i + examples.run]
                if w in examples.windows and w not in have:
                    raise ParseError("回答抄写了示例中的句子，请针对这个问题回答")
        return t

    return parse


def parse_answer(text: str) -> str:
    """An answer must exist and be Chinese; content-free answers are left to rule 3 (evol_answer_empty)."""
    t = text.strip()
    if not t:
        raise ParseError("回答是空的")
    if any(c.isalnum() for c in t) and han_ratio(t) < MIN_HAN_RATIO:
        raise ParseError("回答必须用中文")
    if repeated_sentence(t):
        raise ParseError("回答中同一句话重复了多次")
    return t


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
    rec: Record


@dataclass
class _Book:
    per_op: dict[str, Counter] = field(default_factory=lambda: {op: Counter() for op in OPS})
    funnel: Counter = field(default_factory=Counter)
    per_round: dict[int, Counter] = field(default_factory=dict)


class Evolver:
    def __init__(self, params: "EvolParams", client, run: StageRun, progress: bool = True):
        self.p = params
        self.client = client
        self.run = run
        self.progress = progress
        self.tmpl = {op: load_template(name) for op, name in TEMPLATES.items()}
        self.judge = load_template(JUDGE_TEMPLATE)
        self.answer = load_template(ANSWER_TEMPLATE)
        self.parents: dict[str, Record] = {}
        examples = []
        for t in self.tmpl.values():
            for ex in t.fewshot:
                examples += [ex["answer"], ex.get("instruction", "")]
        self.leak = TemplateLeak(self.parents, examples=[e for e in examples if e])
        self.answer_examples = TemplateLeak(self.parents, examples=[ex["answer"] for ex in self.answer.fewshot])
        self.precheck = NoGainPrecheck(self.parents, params.min_gain_chars)
        self.judge_rule = NoGainJudge()
        self.answer_rules = [AnswerEmpty(), RefusalShort(params.refusal_max_chars)]
        self.emitted_ids: set[str] = set()
        self.book = _Book()

    # --- helpers ----------------------------------------------------------------------------------------------
    def _gen(self, round_no: int, **kw: Any) -> dict[str, Any]:
        # a new seed per round: a prompt that failed and drew the same operation again gets a fresh sample
        return {"seed": self.client.cfg.seed + round_no - 1, **kw}

    def _op_info(self, op: str, round_no: int) -> dict[str, Any]:
        t = self.tmpl[op]
        return {"round": round_no, "model": self.client.cfg.model, "backend": self.client.backend,
                "template": t.name, "template_version": t.version,
                "judge_template_version": self.judge.version,
                "answer_template": self.answer.name, "answer_template_version": self.answer.version}

    def _candidate(self, lane: Lane, op: str, round_no: int, instruction: str, input: str,
                   attempt_id: bool = False) -> Record:
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

    def _fail(self, cand: Candidate, res: TaskResult, step: str) -> None:
        self.run.drop(cand.rec, res.reason or "llm_error", f"{step}: {res.detail}"[:500], step=step,
                      op=cand.op, round=cand.rec.meta["evol"]["round"], attempts=res.attempts,
                      text=res.text[:300])
        self._count(cand, res.reason or "llm_error")

    def _count(self, cand: Candidate, outcome: str) -> None:
        self.book.per_op[cand.op][outcome] += 1
        self.book.per_round.setdefault(cand.rec.meta["evol"]["round"], Counter())[outcome] += 1

    def _filter(self, cands: list[Candidate], rules) -> list[Candidate]:
        kept = []
        for c in cands:
            for rule in rules:
                d = rule.check(c.rec)
                if d is not None:
                    self.run.drop_with(c.rec, d)
                    self._count(c, d.reason)
                    break
            else:
                kept.append(c)
        return kept

    def _tasks(self, stage_desc: str, tasks: list[GenerationTask]) -> list[TaskResult]:
        return run_tasks(self.client, tasks, stage=STAGE, desc=stage_desc, progress=self.progress) if tasks else []

    # --- one round --------------------------------------------------------------------------------------------
    def round(self, lanes: list[Lane], r: int) -> list[Record]:
        f = self.book.funnel
        # 1. rewrite
        ops, tasks = [], []
        for lane in lanes:
            cur = lane.current
            self.parents[cur.id] = cur
            op = pick_op(cur.instruction, cur.input, r, self.p.rng_seed, self.p.breadth_share)
            ops.append(op)
            if op == BREADTH:
                prompt = self.tmpl[op].render(instruction=cur.instruction,
                                              domain=lane.seed.meta.get("domain_zh") or "价值观")
                gen = self._gen(r, max_new_tokens=min(self.client.cfg.max_new_tokens, REWRITE_MAX_TOKENS))
            else:
                prompt = self.tmpl[op].render(instruction=cur.instruction, material=material_block(cur.input))
                cap = COMPLICATE_MAX_TOKENS if op == "complicate_input" else REWRITE_MAX_TOKENS
                gen = self._gen(r, max_new_tokens=min(self.client.cfg.max_new_tokens, cap), repetition_penalty=1.0)
            tasks.append(GenerationTask(key=f"{lane.seed.id}:r{r}:{op}", prompt=prompt,
                                        parse=parse_rewrite(op, cur), gen=gen))
        f["attempted"] += len(tasks)
        cands = []
        for lane, op, res in zip(lanes, ops, self._tasks(f"evolve r{r}: rewrite", tasks)):
            self.book.per_op[op]["attempted"] += 1
            if res.ok:
                instr, inp = res.value
                cands.append(Candidate(lane, op, self._candidate(lane, op, r, instr, inp)))
            else:
                c = Candidate(lane, op, self._candidate(lane, op, r, lane.current.instruction, lane.current.input,
                                                         attempt_id=True))
                self._fail(c, res, "rewrite")
        f["rewritten"] += len(cands)
        # 2. cheap rules on the text
        cands = self._filter(cands, [self.leak])
        f["after_template_leak"] += len(cands)
        cands = self._filter(cands, [self.precheck])
        f["after_no_gain_precheck"] += len(cands)
        # 3. the judge
        tasks = [GenerationTask(key=f"{c.lane.seed.id}:r{r}:judge",
                                prompt=self.judge.render(first=shown(c.lane.current), second=shown(c.rec)),
                                parse=parse_judge, gen=self._gen(r, **JUDGE_GEN)) for c in cands]
        judged = []
        for c, res in zip(cands, self._tasks(f"evolve r{r}: judge", tasks)):
            if res.ok:
                c.rec.meta["evol"]["judge"] = res.value
                judged.append(c)
            else:
                self._fail(c, res, "judge")
        f["judged"] += len(judged)
        cands = self._filter(judged, [self.judge_rule])
        f["after_no_gain_judge"] += len(cands)
        # 4. the answer
        tasks = [GenerationTask(key=f"{c.lane.seed.id}:r{r}:answer",
                                prompt=self.answer.render(instruction=c.rec.instruction,
                                                          material=material_block(c.rec.input)),
                                parse=answer_parser(self.answer_examples, shown(c.rec)), gen=self._gen(r))
                 for c in cands]
        answered = []
        for c, res in zip(cands, self._tasks(f"evolve r{r}: answer", tasks)):
            if res.ok:
                c.rec.output = res.value
                c.rec.id = record_id(c.rec.instruction, c.rec.input, c.rec.output, c.rec.source)
                answered.append(c)
            else:
                self._fail(c, res, "answer")
        f["answered"] += len(answered)
        cands = self._filter(answered, self.answer_rules[:1])
        f["after_answer_empty"] += len(cands)
        cands = self._filter(cands, self.answer_rules[1:])
        f["after_refusal_short"] += len(cands)
        # 5. emit
        out = []
        for c in cands:
            if c.rec.id in self.emitted_ids:
                self.run.drop(c.rec, "evol_duplicate", "same instruction, input and answer as an emitted evolution",
                              dup_of=c.rec.id)
                self._count(c, "evol_duplicate")
                continue
            self.emitted_ids.add(c.rec.id)
            self._count(c, "emitted")
            c.lane.current = c.rec
            c.lane.emitted += 1
            out.append(c.rec)
        f["emitted"] += len(out)
        return out


def run(seeds: list[Record], params: "EvolParams", client, stage_run: StageRun,
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
    rules = ("evol_template_leak", "evol_no_gain", "evol_answer_empty", "evol_refusal_short", "evol_duplicate",
             "llm_error", "parse_error")
    per_rule = Counter()
    for c in ev.book.per_op.values():
        per_rule.update({k: v for k, v in c.items() if k in rules})
    stage_run.metrics.update({
        "seeds_used": len(lanes),
        "rounds": rounds,
        "seeds_with_output": sum(1 for l in lanes if l.emitted),
        "eliminated_by_rule": {k: per_rule.get(k, 0) for k in rules},
        "funnel": dict(ev.book.funnel),
        "per_op": {op: dict(c) for op, c in ev.book.per_op.items()},
        "per_round": {str(k): dict(v) for k, v in sorted(ev.book.per_round.items())},
    })
    return out
