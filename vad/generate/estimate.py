"""`vad llm estimate`: what evolve and translate would ask of the LLM, before anything is spent.

For the stage inputs as they are now (build/seeds/seeds.jsonl, build/select/pairs.jsonl) and the params
(evol.seed_limit, evol.rounds, translate.limit, llm.*): per step, the calls, prompt and output tokens, and their
cost at llm.price_per_1k_*. No model is called or loaded; prompts are built by the stages' own call builders
(EvolCalls, TranslateCalls), so they are what the stage would send.

Exact: the first asks of the rewrites (every prompt in the pool is rewritten in every round) and of the
translations (one per chunk), and the prompts of round-1 rewrites and of translations.
Upper bounds, because the funnel is unknown before the calls: judge and answer calls (only rewrites that pass the
rules are judged, only judged ones answered), polish calls (only pairs translated in full), re-asks (up to
llm.max_reasks per call), prompts that hold text a model writes first (the evolved prompt, the draft: at most
that call's max_new_tokens), and every output (its call's max_new_tokens).
The request cache is not consulted: a run pays only for the calls it does not find there.

Tokens are counted without a tokenizer (`approx_tokens`), so they are approximate, also where the calls are exact."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.config import EvolParams, LLMParams, TranslateParams
from vad.core.errors import InputError
from vad.core.io import read_records
from vad.core.record import Record
from vad.generate.evolve import BREADTH, DEFAULT_DOMAIN, DEPTH_OPS, EvolCalls, pick_op, shown, shown_text
from vad.generate.translate import TranslateCalls
from vad.llm import Prompt, client_class
from vad.llm.client import REASK_TEXT
from vad.llm.config import call_cost, effective_gen

STAGES = ("evolve", "translate")
MESSAGE_TOKENS = 4   # what a chat format adds per message (role, delimiters)
REASON_CHARS = 200   # the longest parser reason a re-ask quotes (LLMClient.reask_request)
TOKENS = "tokens ≈ 1 per non-ASCII character + 1 per 4 ASCII characters (no tokenizer is loaded)"


def approx_tokens(text: str) -> int:
    """A tokenizer-free guess at a text's length in tokens: one per non-ASCII character (Chinese tokenizers
    spend about one token per Han character, often less), one per started run of four ASCII characters."""
    n_ascii = sum(1 for c in text if c.isascii())
    return len(text) - n_ascii + -(-n_ascii // 4)


def written(tokens: int) -> str:
    """Stand-in for text a model writes before this call: as long as `tokens` allows (one token per character)."""
    return "字" * tokens


def prompt_tokens(prompt: Prompt, chat: bool) -> int:
    """What a prompt sends: the messages for a chat backend, the completion text for a base model."""
    if chat:
        return sum(approx_tokens(m["content"]) + MESSAGE_TOKENS for m in prompt.messages)
    return approx_tokens(prompt.completion)


@dataclass
class Row:
    stage: str
    step: str
    rounds: str           # "1", "2-3" (rounds after the first: the same bound each), "" (no rounds)
    calls: int            # first asks
    exact: bool           # calls (first asks) exact, else an upper bound
    calls_max: int        # with every re-ask
    prompt_tokens: int    # of the first asks (exact prompts where `exact` and the prompt holds no model text)
    prompt_tokens_max: int
    output_tokens_max: int
    largest_prompt: int   # tokens of the largest single prompt, re-asks included (what the context must hold)
    cost_max: float = 0.0


class Estimator:
    def __init__(self, cfg: LLMParams):
        self.cfg = cfg
        self.chat = client_class(cfg.backend).chat
        self.reasks = cfg.max_reasks

    def out_cap(self, gen: dict[str, Any]) -> int:
        return effective_gen(self.cfg, gen)["max_new_tokens"]

    def row(self, stage: str, step: str, rounds: str, calls: list[tuple[Prompt, dict]], exact: bool,
            times: int = 1) -> Row:
        """The row of `calls` (one (prompt, gen) per first ask, each made `times` times: once per round)."""
        first = most = out = largest = 0
        # a re-ask repeats the prompt; a chat backend adds the rejected answer and the complaint each time
        reask = (approx_tokens(REASK_TEXT.format(reason="字" * REASON_CHARS)) + 2 * MESSAGE_TOKENS) if self.chat else 0
        for prompt, gen in calls:
            p, cap = prompt_tokens(prompt, self.chat), self.out_cap(gen)
            first += p
            grow = cap + reask if self.chat else 0
            most += sum(p + i * grow for i in range(self.reasks + 1))
            out += cap * (self.reasks + 1)
            largest = max(largest, p + self.reasks * grow)
        n = len(calls) * times
        r = Row(stage, step, rounds, n, exact, n * (self.reasks + 1), first * times, most * times, out * times,
                largest)
        r.cost_max = round(call_cost(self.cfg, r.prompt_tokens_max, r.output_tokens_max), 6)
        return r

    # --- evolve -----------------------------------------------------------------------------------------------
    def evolve(self, seeds: list[Record], p: EvolParams) -> list[Row]:
        pool = seeds[:p.seed_limit]
        if not pool or not p.rounds:
            return []
        calls = EvolCalls(self.cfg)
        ops = ((BREADTH,) if p.breadth_share > 0 else ()) + (DEPTH_OPS if p.breadth_share < 1 else ())
        caps = {op: self.out_cap(calls.rewrite(op, "", "", "", 1)[1]) for op in ops}
        domain = [s.meta.get("domain_zh") or DEFAULT_DOMAIN for s in pool]
        rows = []
        # round 1: the operation of each seed is known, so is its rewrite prompt
        r1_ops = [pick_op(s.instruction, s.input, 1, p.rng_seed, p.breadth_share) for s in pool]
        rows.append(self.row("evolve", "rewrite", "1", [calls.rewrite(op, s.instruction, s.input, d, 1)
                                                        for s, op, d in zip(pool, r1_ops, domain)], exact=True))

        def evolved(op: str, parent_input: str) -> str:  # an evolution of a prompt, as the judge and answer see it
            kept = "" if op in (BREADTH, "complicate_input") else parent_input  # depth rewrites keep the material
            return shown_text(written(caps[op]), kept)

        rows.append(self.row("evolve", "judge", "1", [calls.judge(shown(s), evolved(op, s.input), 1)
                                                      for s, op in zip(pool, r1_ops)], exact=False))
        rows.append(self.row("evolve", "answer", "1", [calls.answer(evolved(op, s.input), "", 1)
                                                       for s, op in zip(pool, r1_ops)], exact=False))
        if p.rounds == 1:
            return rows
        # later rounds: a lane holds its seed or an evolution (instruction at most the longest rewrite, material at
        # most complicate_input's or the seed's) and draws its operation from that text: bound by the largest
        later, times = f"2-{p.rounds}" if p.rounds > 2 else "2", p.rounds - 1
        top = max(caps.values())

        def largest(options: list[tuple[Prompt, dict]]) -> tuple[Prompt, dict]:
            return max(options, key=lambda c: prompt_tokens(c[0], self.chat))

        rewrites, judges, answers = [], [], []
        for s, d in zip(pool, domain):
            held = [(s.instruction, s.input),
                    (written(top), written(max(caps.get("complicate_input", 0), approx_tokens(s.input))))]
            prompt, gen = largest([calls.rewrite(op, i, m, d, 2) for op in ops for i, m in held])
            rewrites.append((prompt, {**gen, "max_new_tokens": top}))  # the largest prompt may have a smaller cap
            evolution = shown_text(*held[1])
            judges.append(largest([calls.judge(shown_text(i, m), evolution, 2) for i, m in held]))
            answers.append(calls.answer(evolution, "", 2))
        return rows + [self.row("evolve", "rewrite", later, rewrites, exact=True, times=times),
                       self.row("evolve", "judge", later, judges, exact=False, times=times),
                       self.row("evolve", "answer", later, answers, exact=False, times=times)]

    # --- translate --------------------------------------------------------------------------------------------
    def translate(self, pairs: list[Record], p: TranslateParams) -> list[Row]:
        calls = TranslateCalls(self.cfg.backend)
        tr = [calls.translate(en) for rec in pairs[:p.limit] for ch in calls.chunks(rec).values() for _pi, en in ch]
        if not tr:
            return []
        polish = [calls.polish(written(self.out_cap(gen))) for _prompt, gen in tr]
        return [self.row("translate", "translate", "", tr, exact=True),
                self.row("translate", "polish", "", polish, exact=False)]


def _read(root: Path, path: str, stage: str) -> list[Record]:
    if not (root / path).exists():
        raise InputError(path, f"not found: the estimate of {stage} reads its input as it is "
                               f"(run `dvc repro {'seeds' if path == paths.SEEDS else 'select_pairs'}` first)")
    return read_records(root / path)


def estimate(params, root: Path, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """The estimate of `stages` (params: the validated params.yaml) as a dict (rows, total, what the figures mean)."""
    est = Estimator(params.llm)
    rows: list[Row] = []
    inputs: dict[str, Any] = {}
    if "evolve" in stages:
        seeds = _read(root, paths.SEEDS, "evolve")
        inputs["evolve"] = {"file": paths.SEEDS, "seeds": len(seeds), "seed_limit": params.evol.seed_limit,
                            "pool": min(len(seeds), params.evol.seed_limit), "rounds": params.evol.rounds}
        rows += est.evolve(seeds, params.evol)
    if "translate" in stages:
        pairs = _read(root, paths.PAIRS, "translate")
        inputs["translate"] = {"file": paths.PAIRS, "pairs": len(pairs), "limit": params.translate.limit,
                               "used": min(len(pairs), params.translate.limit)}
        rows += est.translate(pairs, params.translate)
    total = {k: sum(getattr(r, k) for r in rows) for k in ("calls", "calls_max", "prompt_tokens",
                                                           "prompt_tokens_max", "output_tokens_max")}
    total["largest_prompt"] = max((r.largest_prompt for r in rows), default=0)
    total["cost_max"] = round(call_cost(params.llm, total["prompt_tokens_max"], total["output_tokens_max"]), 6)
    cfg = params.llm
    return {"backend": cfg.backend, "model": cfg.model, "chat": est.chat, "max_reasks": cfg.max_reasks,
            "price_per_1k_input": cfg.price_per_1k_input, "price_per_1k_output": cfg.price_per_1k_output,
            "inputs": inputs, "rows": [asdict(r) for r in rows], "total": total, "tokens": TOKENS}


def format_estimate(e: dict[str, Any]) -> str:
    lines = [f"LLM estimate for backend {e['backend']}, model {e['model']} — nothing is called; {e['tokens']}"]
    for stage, i in e["inputs"].items():
        lines.append(f"  {stage}: {i['pool']} of {i['seeds']} seeds × {i['rounds']} rounds ({i['file']})"
                     if stage == "evolve" else f"  {stage}: {i['used']} of {i['pairs']} pairs ({i['file']})")
    head = ("stage", "step", "round", "calls", "≤ calls", "≤ prompt tok", "≤ output tok", "≤ largest prompt", "≤ cost")
    table = [head]
    for r in e["rows"] + [{**e["total"], "stage": "total", "step": "", "rounds": "", "exact": False}]:
        table.append((r["stage"], r["step"], r["rounds"], ("" if r["exact"] else "≤") + f"{r['calls']:,}",
                      f"{r['calls_max']:,}", f"{r['prompt_tokens_max']:,}", f"{r['output_tokens_max']:,}",
                      f"{r['largest_prompt']:,}", f"{r['cost_max']:.4f}"))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for n, row in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"calls: first asks (≤: only what passes the earlier steps is asked); ≤ columns: with up to "
                 f"llm.max_reasks={e['max_reasks']} re-asks per call and every output at its max_new_tokens (largest prompt: "
                 f"the one a model's context must hold); cost at "
                 f"llm.price_per_1k_input={e['price_per_1k_input']:g} / _output={e['price_per_1k_output']:g}. "
                 f"Cached calls are free on a run: this counts as if the cache were empty.")
    return "\n".join(lines)
