"""`vad categorize IN.jsonl -o OUT.jsonl`: the workspace's categorizer on records from outside the build.

Each input line is a JSON object with at least an `instruction` string (`input`, `output` optional: a vad
record, an exported VAD row, or any instruction file); each output line is that object plus `category_pred`
({level, value, confidence, by}, as the judge stage writes it). The categorizer is the one the build trained
(build/categorizer/model.pkl); with the current params, the LLM categorizes instead when `categorize.by`
resolves to llm (it does by itself when `judge.enabled` resolves on: an endpoint is configured)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.config import load_params
from vad.core.errors import InputError
from vad.core.io import iter_jsonl, write_jsonl
from vad.core.record import Record
from vad.judge.categorizer import Categorizer, text_of
from vad.judge.judge import judge_enabled, llm_categorizes

STAGE = "categorize_cli"  # the name its LLM calls are counted under


def _record(obj: Any, where: str) -> Record:
    if not isinstance(obj, dict):
        raise InputError(where, f"expected a JSON object, got {type(obj).__name__}")
    texts = {k: obj.get(k, "") for k in ("instruction", "input", "output")}
    bad = [k for k, v in texts.items() if not isinstance(v, str)]
    if bad or not texts["instruction"].strip():
        raise InputError(where, f"`{bad[0] if bad else 'instruction'}` must be a non-empty string" if not bad
                         else f"`{bad[0]}` must be a string")
    return Record(**texts, source=str(obj.get("source") or "manual"),
                  categorization={"level": "", "value": ""}, meta=dict(obj.get("meta") or {}))


def categorize_file(src: Path, out: Path, root: Path = Path("."), params_path: str | None = None) -> dict[str, Any]:
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    params = load_params(params_path or root / "params.yaml")
    rows, recs = [], []
    for n, _raw, obj in iter_jsonl(src):
        recs.append(_record(obj, f"{src}:{n}"))
        rows.append(obj)
    model = Categorizer.load(root / paths.CATEGORIZER)
    preds = model.predict([text_of(r) for r in recs])
    by = "model"
    if recs and llm_categorizes(params.categorize, judge_enabled(params.judge, params.llm)):
        preds, by = _llm_preds(recs, preds, params), "llm"
    for row, pred in zip(rows, preds):
        row["category_pred"] = pred
    write_jsonl(out, rows)
    return {"records": len(rows), "by": by, "model": model.meta.get("model"), "file": str(out),
            "low_confidence": sum(p["confidence"] < params.categorize.min_confidence for p in preds)}


def _llm_preds(recs: list[Record], fallback: list[dict], params: Any) -> list[dict]:
    """The LLM judge's category for each record; the model's where the call failed."""
    from vad.judge.llm_judge import Judge
    from vad.llm import make_client, run_tasks

    judge = Judge(params.judge)
    client = make_client(params.llm)
    try:
        results = run_tasks(client, [judge.task(r) for r in recs], stage=STAGE, desc="categorize")
        model = client.describe().get("model", "")
    finally:
        client.close()
    return [{**res.value["category"], "by": f"llm:{model}"} if res.ok and res.value["category"] else fb
            for res, fb in zip(results, fallback)]
