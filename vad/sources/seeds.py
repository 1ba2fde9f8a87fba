"""CValues responsibility prompts → Evol-Instruct seeds (source `evol`, output empty until `evolve`).

Each CValues domain maps to a default level/value (params.yaml `seeds.domain_map`; rationale in docs/llm.md, "The default tables"). A row
with an unknown domain fails the stage naming file:line: the table must be extended, not guessed."""
from __future__ import annotations

from pathlib import Path

from vad.core.errors import InputError
from vad.core.io import iter_jsonl
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record, normalise, sha256_text

LEDGER_REASONS = {
    "exact_duplicate": "the same prompt as an earlier CValues line (`dup_of` names it)",
    "empty_instruction": "the prompt is empty",
}


def make_seeds(path: Path, rel: str, domain_map: dict, run: StageRun) -> list[Record]:
    seeds = []
    for line_no, raw, obj in iter_jsonl(path):
        where = f"{rel}:{line_no}"
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or "domain_en" not in obj:
            raise InputError(where, "expected an object with string 'prompt' and 'domain_en'")
        if obj["domain_en"] not in domain_map:
            raise InputError(where, f"domain {obj['domain_en']!r} is not in params.yaml seeds.domain_map")
        rec = Record(
            instruction=obj["prompt"].strip(),
            input="",
            output="",
            source="evol",
            categorization=domain_map[obj["domain_en"]].as_dict(),
            lineage=Lineage(origin={"file": rel, "line": line_no, "sha256": sha256_text(raw)}),
            meta={"cvalues_id": obj.get("id_"), "domain_en": obj["domain_en"], "domain_zh": obj.get("domain_zh", "")},
        )
        seeds.append(rec.add_op("seeds", "seed", domain=obj["domain_en"]))
    run.take(seeds)  # a second seed with the same prompt becomes a later occurrence (own id, same content id)
    # Same prompt twice: keep the first, ledger the rest naming it.
    seen: dict[str, Record] = {}
    out = []
    for rec in seeds:
        first = seen.get(rec.content_id)
        if first is not None:
            run.drop(rec, "exact_duplicate", f"same prompt as {rel}:{first.lineage.origin['line']}", dup_of=first.id)
        elif not normalise(rec.instruction):
            run.drop(rec, "empty_instruction", "the prompt is empty")
        else:
            seen[rec.content_id] = rec
            out.append(rec)
    return out
