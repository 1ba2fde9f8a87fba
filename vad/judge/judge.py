"""The judge stage: every machine-made record that reaches review is categorized and, with an endpoint, judged.

For each evol / translated record (hand-written ones pass untouched):

  meta.category_table  the category it arrived with (the lookup tables: seeds.domain_map, select.harm_map, ...)
  meta.category_pred   {level, value, confidence, by}: the offline categorizer's prediction, or the LLM's when
                       `categorize.by` resolves to llm (the categorizer's is then kept in meta.category_pred_model)
  meta.category_by     what set `categorization`: "review" (a reviewer settled it: kept, so their decision stays
                       valid), "prediction" (confidence >= categorize.min_confidence), or "table" (below it: the
                       table default stays, and the record is flagged `category_low_confidence` for review)
  meta.judge           the LLM judge's verdict (vad/judge/llm_judge.py) when `judge.enabled` resolves on; a
                       failing one is flagged `judge_failed` (judge.on_fail: flag) or ledgered (drop)

Flags (meta.flags) send a record first in the review queue; nothing here drops a record unless judge.on_fail
says so, so by default no record is lost that a person never saw."""
from __future__ import annotations

from collections import Counter
from typing import Any

from vad.core.filters import Drop, flag
from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.judge.categorizer import Categorizer, text_of
from vad.judge.llm_judge import Judge
from vad.judge.reviewed import settled
from vad.review.log import Decision

STAGE = "judge"
LOW_CONFIDENCE, JUDGE_FAILED, JUDGE_ERROR = "category_low_confidence", "judge_failed", "judge_error"
FLAG_REASONS = {
    LOW_CONFIDENCE: "the categorizer's confidence is under `categorize.min_confidence`: the table default stays",
    JUDGE_FAILED: "the LLM judge scored the record under a `judge.min_*` threshold (`judge.on_fail: flag`)",
    JUDGE_ERROR: "the LLM judge's call failed: the record was not judged",
}
LEDGER_REASONS = {JUDGE_FAILED: "the LLM judge scored the record under a `judge.min_*` threshold "
                                "(`judge.on_fail: drop`)"}


def judge_enabled(judge_params: Any, llm_params: Any) -> bool:
    """`judge.enabled: auto` is on with an endpoint and off with the local base model (which cannot judge)."""
    if judge_params.enabled == "auto":
        return llm_params.backend == "openai"
    return judge_params.enabled == "true"


def llm_categorizes(cat_params: Any, judging: bool) -> bool:
    if cat_params.by == "auto":
        return judging
    return cat_params.by == "llm"


def run(records: list[Record], model: Categorizer, decisions: list[Decision], params: Any, client, run: StageRun,
        progress: bool = True) -> list[Record]:
    """params: the stage's view (categorize, judge, llm). `client`: an LLM client when the judge is on, else None."""
    cp, jp = params.categorize, params.judge
    run.take(records)
    made = [r for r in records if r.source != "manual"]
    done = settled(made, decisions)
    preds = model.predict([text_of(r) for r in made])
    answers: dict[str, Any] = {}
    judge = Judge(jp)  # loaded even offline: its template is a dep of the stage either way
    judging = client is not None
    model_name = client.describe().get("model", "") if client is not None else ""
    if judging and made:
        from vad.llm import run_tasks

        for res in run_tasks(client, [judge.task(r) for r in made], stage=STAGE, desc="judge", progress=progress):
            answers[res.key] = res
    use_llm = judging and llm_categorizes(cp, True)
    n = Counter()
    dropped: set[int] = set()
    for rec, pred in zip(made, preds):
        rec.meta["category_table"] = dict(rec.categorization)
        res = answers.get(rec.id)
        llm_cat = res.value["category"] if res is not None and res.ok else None
        if use_llm and llm_cat is not None:
            rec.meta["category_pred"] = {**llm_cat, "by": f"llm:{model_name}"}
            rec.meta["category_pred_model"] = pred
        else:
            rec.meta["category_pred"] = pred
        p = rec.meta["category_pred"]
        s = done.get(rec.id)
        if s is not None:
            rec.categorization, rec.meta["category_by"] = dict(s.seen), "review"
        elif p["confidence"] >= cp.min_confidence:
            rec.categorization, rec.meta["category_by"] = {"level": p["level"], "value": p["value"]}, "prediction"
        else:
            rec.meta["category_by"] = "table"
            flag(rec, Drop(LOW_CONFIDENCE, f"{p['level']}/{p['value']} at confidence {p['confidence']} < "
                                           f"categorize.min_confidence {cp.min_confidence}"), "categorizer")
        n[f"{rec.source}:category_by_{rec.meta['category_by']}"] += 1
        n[f"{rec.source}:changed_from_table"] += rec.categorization != rec.meta["category_table"]
        if not judging:
            continue
        v = judge.verdict(rec, res.value if res is not None and res.ok else None, model_name,
                          "" if res is None else f"{res.reason}: {res.detail}")
        rec.meta["judge"] = v
        n[f"{rec.source}:judge_{v['verdict']}"] += 1
        if v["verdict"] == "error":
            flag(rec, Drop(JUDGE_ERROR, v["reason"]), "judge")
        elif v["verdict"] == "fail":
            why = f"failed {', '.join(v['failed'])} ({v['scores']}); {v['reason']}"
            if jp.on_fail == "drop":
                run.drop(rec, JUDGE_FAILED, why, judge=v)
                dropped.add(id(rec))
            else:
                flag(rec, Drop(JUDGE_FAILED, why), "judge")
    for rec in made:
        rec.add_op(STAGE, "categorize", by=rec.meta["category_by"], pred_by=rec.meta["category_pred"]["by"])
    kept = [r for r in records if id(r) not in dropped]
    run.metrics.update(summary(made, cp.min_confidence, n, judging, use_llm))
    run.metrics["judge_template"] = f"{judge.template.name} v{judge.template.version}"
    if judging:
        run.metrics["llm"] = client.stats(STAGE)
    return kept


def summary(made: list[Record], min_conf: float, n: Counter, judged: bool, use_llm: bool) -> dict[str, Any]:
    """What the stage decided, per source: who set the category, how many went to review flagged, how sure the
    categorizer was (deciles of confidence: `dvc exp` over categorize.min_confidence reads what it would send)."""
    by_source: dict[str, Any] = {}
    for src in sorted({r.source for r in made}):
        recs = [r for r in made if r.source == src]
        conf = sorted(r.meta["category_pred"]["confidence"] for r in recs)
        by_source[src] = {
            "records": len(recs),
            "category_by": {k: n[f"{src}:category_by_{k}"] for k in ("prediction", "table", "review")},
            "changed_from_table": n[f"{src}:changed_from_table"],
            "flagged": sum(bool(r.meta.get("flags")) for r in recs),
            "confidence_deciles": [conf[min(len(conf) - 1, int(q * len(conf)))] for q in
                                   (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)] if conf else [],
            **({"judge": {k: n[f"{src}:judge_{k}"] for k in ("pass", "fail", "error")}} if judged else {}),
        }
    return {"min_confidence": min_conf, "judge_enabled": judged, "categorized_by": "llm" if use_llm else "model",
            "generated": len(made), "low_confidence": sum(n[k] for k in n if k.endswith("category_by_table")),
            "by_source": by_source}
