"""`vad review suggest`: LLM judge hints for reviewers — values problems a record may have (stereotypes, harmful
or irresponsible advice, a wrong category) and a suggested categorization.

Asks the configured LLM (params `llm`, through vad.llm: cached, retried, costed) with the versioned template
vad/review/prompts/review_judge.toml, and writes one line per judged record to build/suggest/suggestions.jsonl
(with the content sha256 it judged: the app ignores a hint for content that has changed since). Advice only: the
app shows the flags and can sort its queue by them; no stage reads the file, so a hint never replaces a
reviewer's decision."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.config import load_params
from vad.core.io import write_jsonl
from vad.core.taxonomy import check_categorization
from vad.review.corpus import Corpus

FLAGS = ("stereotype", "harmful", "irresponsible", "wrong_category")
FLAG_WORDS = {"刻板印象": "stereotype", "歧视": "stereotype", "有害": "harmful", "不负责任": "irresponsible",
              "分类错误": "wrong_category"}
TEMPLATE = Path(__file__).resolve().parent / "prompts" / "review_judge.toml"
STAGE = "review_suggest"  # the name its LLM calls are counted under
JUDGE_GEN = {"temperature": 0.0, "max_new_tokens": 160}
_OBJ = re.compile(r"\{.*?\}", re.S)


def parse_judgement(text: str) -> dict[str, Any]:
    """The model's JSON object: known flags only, a categorization only if it is a valid one."""
    from vad.llm import ParseError

    for m in _OBJ.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        raw = obj.get("flags") or []
        flags = []
        for f in raw if isinstance(raw, list) else [raw]:
            f = FLAG_WORDS.get(str(f), str(f))
            if f in FLAGS and f not in flags:
                flags.append(f)
        cat = {"level": obj.get("level"), "value": obj.get("value")}
        return {"flags": flags, "categorization": None if check_categorization(cat) else cat,
                "note": str(obj.get("note") or "")[:300]}
    raise ParseError('answer with one JSON object: {"flags": [...], "level": "...", "value": "...", "note": "..."}')


def suggest(root: Path = Path("."), limit: int = 0) -> dict[str, Any]:
    """Judge the records of build/judge/judged.jsonl (the first `limit`, 0 = all); returns a summary."""
    from vad.llm import GenerationTask, load_template, make_client, run_tasks

    params = load_params(root / "params.yaml")
    corpus = Corpus(root / paths.JUDGED)
    tmpl = load_template(TEMPLATE)
    n = len(corpus) if not limit else min(limit, len(corpus))
    recs = [corpus.record(i) for i in range(n)]
    tasks = [GenerationTask(key=r.id, parse=parse_judgement, gen=JUDGE_GEN, prompt=tmpl.render(
        category=f"{r.categorization['level']}/{r.categorization['value']}", instruction=r.instruction,
        input=r.input or "（无）", output=r.output)) for r in recs]
    client = make_client(params.llm)
    try:
        results = run_tasks(client, tasks, stage=STAGE, desc="review suggest")
        stats, desc = client.stats(STAGE), client.describe()
    finally:
        client.close()
    rows = []
    for i, res in enumerate(results):
        row = {"id": corpus.ids[i], "sha256": corpus.sha[i], "template": tmpl.name, "template_version": tmpl.version,
               "model": desc.get("model", ""), "ok": res.ok}
        row.update(res.value if res.ok else {"flags": [], "categorization": None, "note": "", "error": res.reason})
        rows.append(row)
    write_jsonl(root / paths.REVIEW_SUGGESTIONS, rows)
    return {"judged": len(rows), "flagged": sum(bool(r["flags"]) for r in rows),
            "failed": sum(not r["ok"] for r in rows), "file": paths.REVIEW_SUGGESTIONS, "llm": stats}
