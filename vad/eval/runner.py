"""Running a CValues-style two-choice evaluation (`vad eval`, stage `evaluate`): every item in both orders
(vad.eval.prompts), one choice per answer, the metrics (vad.eval.metrics), then the per-answer results JSONL
and the metrics JSON with the items' files and provenance.

How the choice is obtained (`eval.method`; `auto` = loglik for the local backend, generate for openai):
- `loglik` (offline default, works with a base model): log p("A" | prompt) vs log p("B" | prompt) from the
  causal LM's next-token distribution after the prompt (vad.eval.scorer), behind a fixed 2-example few-shot
  prefix (one answered A, one B; its KV cache is computed once and reused). Both log-probs are recorded; the
  larger wins (an exact tie would be Need_Check).
- `generate`: the model answers in text through the LLM layer (vad.llm, cached requests, temperature 0) and
  vad.eval.answers reads the answer into A, B, refused or Need_Check; a call that failed after retries is
  `error`."""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vad.core.config import EvalParams, LLMParams
from vad.core.errors import InputError
from vad.core.io import write_json, write_jsonl
from vad.eval.answers import ERROR, NEED_CHECK, classify_answer
from vad.eval.items import EvalItem, expand_paths, load_items
from vad.eval.metrics import summarise
from vad.eval.prompts import ORDERS, PROMPT_NAME, PROMPT_VERSION, arrange, build_prompt, fewshot_prefix, llm_prompt
from vad.eval.scorer import ChoiceScorer
from vad.llm import GenerationTask, make_client, run_tasks
from vad.sources.provenance import verify_provenance

log = logging.getLogger(__name__)

STAGE = "evaluate"  # the name its LLM calls are counted under


def generate_llm_params(cfg: EvalParams, llm: Any) -> LLMParams:
    """The LLM params of the generate method: the llm section (transport, retries, concurrency) with this
    section's backend and model on top."""
    base = LLMParams.from_params(llm if isinstance(llm, dict) else llm.model_dump()) if llm is not None else LLMParams()
    return base.replace(backend=cfg.backend, model=cfg.model, dtype=cfg.dtype, device=cfg.device, max_reasks=0,
                        base_url=cfg.base_url or base.base_url, api_key_env=cfg.api_key_env or base.api_key_env)


def _answer_row(item: EvalItem, order: str, gold: str) -> dict[str, Any]:
    return {"item_id": item.id, "order": order, "gold": gold, "pred": None, "correct": False,
            "difficulty": item.difficulty, "level": item.level, "value": item.value, "domain": item.domain,
            "source": item.source}


def evaluate_items(items: Sequence[EvalItem], cfg: EvalParams, llm_params: Any = None, *,
                   client=None, scorer: ChoiceScorer | None = None,
                   progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every item in both orders; returns (per-answer rows, metrics)."""
    t0 = time.monotonic()
    items = list(items)[: cfg.limit or None]
    if not items:
        raise InputError("eval.items", "no items to evaluate")
    method, fewshot = cfg.resolved_method, cfg.use_fewshot
    rows, texts = [], []
    for it in items:
        for order in ORDERS:
            a, b, gold = arrange(it, order)
            rows.append(_answer_row(it, order, gold))
            texts.append(build_prompt(it.question, a, b))
    info: dict[str, Any] = {"backend": cfg.backend, "model": cfg.model, "method": method, "fewshot": fewshot,
                            "prompt": {"name": PROMPT_NAME, "version": PROMPT_VERSION}}
    if method == "loglik":
        scorer = scorer or ChoiceScorer(cfg.model, cfg.dtype, threads=cfg.threads, device=cfg.device)
        prefix = fewshot_prefix() if fewshot else ""
        with tqdm(total=len(texts), desc="eval (loglik)", unit="prompt", file=sys.stderr, disable=not progress,
                  dynamic_ncols=True, mininterval=0.5) as bar:
            t1 = time.monotonic()
            scores = scorer.score(texts, prefix=prefix, progress=bar.update)
            dt = time.monotonic() - t1
        for r, (la, lb) in zip(rows, scores):
            r["logprob_A"], r["logprob_B"] = la, lb
            r["pred"] = "A" if la > lb else "B" if lb > la else NEED_CHECK
        info.update(model_fingerprint=scorer.lm.fingerprint, dtype=scorer.lm.dtype, device=scorer.lm.compute.kind,
                    compute=scorer.lm.compute.describe(), threads=scorer.used_threads,
                    prompt_tokens=scorer.tokens, tokens_per_s=round(scorer.tokens / dt, 1) if dt else None)
    else:
        own = client is None
        client = client or make_client(generate_llm_params(cfg, llm_params))
        try:
            tasks = [GenerationTask(key=f"{r['item_id']}|{r['order']}", prompt=llm_prompt(t, fewshot),
                                    parse=classify_answer,
                                    gen={"temperature": 0.0, "max_new_tokens": cfg.max_new_tokens})
                     for r, t in zip(rows, texts)]
            results = run_tasks(client, tasks, stage=STAGE, desc="eval (generate)", progress=progress)
            for r, res in zip(rows, results):
                r["response"] = res.text
                if res.ok:
                    r["pred"], r["rule"] = res.value
                else:
                    r["pred"], r["rule"], r["error"] = ERROR, res.reason, res.detail
                r["cached"] = res.cached
            info["llm"] = {**client.describe(), "stats": client.stats(STAGE)}
        finally:
            if own:
                client.close()
    for r in rows:
        r["correct"] = r["pred"] == r["gold"]
    metrics = {**info, **summarise(rows), "seconds": round(time.monotonic() - t0, 2)}
    if metrics["error"]:
        log.warning("%d answers failed (LLM errors): counted as wrong in acc, excluded from acc_star",
                    metrics["error"])
    return rows, metrics


def items_provenance(paths: list[Path]) -> list[dict[str, Any]]:
    """Verify the provenance of each items folder that has one (raw data rule); note the ones without."""
    out, seen = [], set()
    for p in paths:
        folder = p.parent
        if folder in seen:
            continue
        seen.add(folder)
        if (folder / "PROVENANCE.json").exists():
            prov = verify_provenance(folder)
            out.append({"folder": str(folder), "origin": prov.get("origin"), "revision": prov.get("revision"),
                        "licence": prov.get("licence")})
        else:
            log.warning("%s has no PROVENANCE.json: origin and licence of these items are unknown", folder)
            out.append({"folder": str(folder), "origin": None, "revision": None, "licence": None})
    return out


def run_evaluation(cfg: EvalParams, llm_params: Any, results_path: str | Path, metrics_path: str | Path,
                   progress: bool = True, client=None) -> dict[str, Any]:
    """Load items, evaluate, write per-answer JSONL and metrics JSON; returns the metrics."""
    paths = expand_paths(cfg.items)
    prov = items_provenance(paths)
    items, files = load_items(paths)
    rows, metrics = evaluate_items(items, cfg, llm_params, progress=progress, client=client)
    metrics["items_files"] = files
    metrics["provenance"] = prov
    write_jsonl(results_path, rows)
    write_json(metrics_path, metrics)
    return metrics
