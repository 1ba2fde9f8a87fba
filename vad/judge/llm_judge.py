"""The LLM judge: one call per machine-made record (template vad/judge/prompts/record_judge.toml) that rates
values / Chinese-context conformity, translation fidelity against the English original, and fluency (1–5), names
problems, and gives a category with a confidence. Through vad.llm like every call: cached, retried, re-asked on an
unparsable answer, counted against the spend guard (llm.max_calls / llm.max_cost) and costed in the metrics.

The verdict is "fail" when a score is under its `judge.min_*` threshold (fidelity only for translated records,
which have an original), "error" when the call failed; what a failing verdict does is `judge.on_fail`."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vad.core.record import Record
from vad.core.taxonomy import check_categorization
from vad.llm import GenerationTask, ParseError, load_template

TEMPLATE = Path(__file__).resolve().parent / "prompts" / "record_judge.toml"
TEMPLATE_FILE = TEMPLATE.relative_to(TEMPLATE.parents[3]).as_posix()  # relative to the project root (a stage dep)
PROBLEMS = ("harmful", "illegal", "stereotype", "foreign_context", "unfaithful", "disfluent", "refusal_unneeded",
            "off_topic")
SCORES = ("values", "fidelity", "fluency")
JUDGE_GEN = {"temperature": 0.0, "max_new_tokens": 256}
_OBJ = re.compile(r"\{.*\}", re.S)


def _score(obj: dict, key: str, optional: bool) -> int | None:
    v = obj.get(key)
    if v is None and optional:
        return None
    try:
        n = int(round(float(v)))
    except (TypeError, ValueError):
        raise ParseError(f'"{key}" must be a score from 1 to 5') from None
    if not 1 <= n <= 5:
        raise ParseError(f'"{key}" must be a score from 1 to 5, got {v}')
    return n


def parse_verdict(text: str) -> dict[str, Any]:
    """The judge's JSON object, checked: scores 1–5 (fidelity may be null), known problems, a valid category."""
    m = _OBJ.search(text)
    try:
        obj = json.loads(m.group(0)) if m else None
    except json.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        raise ParseError('answer with one JSON object: {"values": 1-5, "fidelity": 1-5 or null, "fluency": 1-5, '
                         '"problems": [...], "level": "...", "value": "...", "confidence": 0-1, "reason": "..."}')
    scores = {"values": _score(obj, "values", False), "fidelity": _score(obj, "fidelity", True),
              "fluency": _score(obj, "fluency", False)}
    raw = obj.get("problems") or []
    problems = [p for p in dict.fromkeys(str(x) for x in (raw if isinstance(raw, list) else [raw])) if p in PROBLEMS]
    cat = {"level": obj.get("level"), "value": obj.get("value")}
    try:
        conf = min(1.0, max(0.0, float(obj.get("confidence", 0.5))))
    except (TypeError, ValueError):
        conf = 0.5
    return {"scores": scores, "problems": problems, "reason": str(obj.get("reason") or "")[:300],
            "category": None if check_categorization(cat) else {**cat, "confidence": round(conf, 4)}}


def original_text(rec: Record) -> str:
    orig = rec.meta.get("original") or {}
    if not orig.get("instruction"):
        return "（无）"
    return f"Q: {orig['instruction']}\nA: {orig.get('output', '')}"


class Judge:
    def __init__(self, params: Any):
        """params: the `judge` section."""
        self.p = params
        self.template = load_template(TEMPLATE)

    def task(self, rec: Record) -> GenerationTask:
        prompt = self.template.render(instruction=rec.instruction, input=rec.input or "（无）", output=rec.output,
                                      original=original_text(rec))
        return GenerationTask(key=rec.id, prompt=prompt, parse=parse_verdict, gen=JUDGE_GEN)

    def verdict(self, rec: Record, value: dict[str, Any] | None, model: str, error: str = "") -> dict[str, Any]:
        """meta.judge for a record from its parsed answer (None: the call failed with `error`)."""
        base = {"by": model, "template": self.template.name, "template_version": self.template.version}
        if value is None:
            return {"verdict": "error", "scores": {}, "failed": [], "problems": [], "reason": error[:300], **base}
        s = value["scores"]
        mins = {"values": self.p.min_values, "fluency": self.p.min_fluency, "fidelity": self.p.min_fidelity}
        failed = [k for k in SCORES if s.get(k) is not None and s[k] < mins[k]
                  and (k != "fidelity" or rec.source == "translated")]
        return {"verdict": "fail" if failed else "pass", "scores": s, "failed": failed,
                "problems": value["problems"], "reason": value["reason"], **base}
