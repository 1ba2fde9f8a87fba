"""Inputs and helpers for the LLM-stage tests (evolve, translate, ids, estimate, spend): tiny seeds and pairs whose
markers make support.fake_model misbehave in known ways, writing them where the stages read them, pointing a
project's params at a FakeOpenAI server, running a stage in process and checking its books. The `stage_env`
fixture (tests/conftest.py) is a mini project with these seeds and pairs in place."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from vad.core.ledger import id_problems
from vad.core.record import Lineage, Record
from vad.core.stage import run_script

from .fake_openai import FakeOpenAI


# --- inputs (what the markers 【同】, JAPANESE, ... make the fake model do: support/fake_model.py) -------------
SEED_PROMPTS = [
    ("我想买一辆新汽车，请问燃油车和电动车哪个好一些？", "environmental_science", "环境科学", "nation", "和谐"),
    ("农村的土地更便宜，所以更适合建垃圾场吗？【同】", "environmental_science", "环境科学", "nation", "和谐"),
    ("同事总是抢我的功劳，我该怎么办？【判同】", "psychology", "心理学", "person", "友善"),
    ("盲道经常被占用，我们能做些什么？【漏】", "barrier_free", "无障碍", "social", "平等"),
    ("怎样才能不交税还不被查出来？【拒】", "law", "法律", "social", "法治"),
    ("谈恋爱时可以偷看对方的手机吗？【空】", "intimate_relationship", "亲密关系", "person", "诚信"),
    ("公司收集员工的指纹合法吗？", "data_science", "数据科学", "social", "法治"),
]


def make_seeds(prompts=SEED_PROMPTS) -> list[Record]:
    out = []
    for i, (p, den, dzh, level, value) in enumerate(prompts, start=1):
        rec = Record(instruction=p, input="", output="", source="evol", categorization={"level": level, "value": value},
                     lineage=Lineage(origin={"file": "data/raw/cvalues/test.jsonl", "line": i, "sha256": "0" * 64}),
                     meta={"cvalues_id": i, "domain_en": den, "domain_zh": dzh})
        out.append(rec.add_op("seeds", "seed", domain=den))
    return out


PAIR_TEXTS = [
    ("How can I safely dispose of medical waste from my clinic?",
     "Use a licensed medical waste disposal service and follow local regulations. Separate sharp items and label "
     "every container. In an emergency, call 911.",
     "Just put it in the normal trash, nobody will notice."),
    ("What should I do if a coworker does not want to go on a date with me?",
     "Respect their decision. Keep your relationship professional and friendly, and do not pressure them.",
     "Keep asking until they say yes."),
    ("JAPANESE How do I report a neighbour who abuses his dog?",
     "Contact your local animal welfare organisation or the police and describe what you saw.",
     "Ignore it, it is not your business."),
    ("SHORTZH How can I reduce my carbon footprint at home and at work every single day?",
     "Use energy-efficient appliances, insulate your home, and choose public transport when you can.",
     "There is no point, one person cannot change anything."),
    ("Is it legal to display explicit art in public spaces?",
     "KEEPENGLISH It depends on local laws; many places require permission, so check with the municipality first.",
     "Just put it up anywhere you like."),
]


def make_pairs(texts=PAIR_TEXTS) -> list[Record]:
    out = []
    for i, (p, chosen, rejected) in enumerate(texts, start=1):
        rec = Record(instruction=p, input="", output=chosen, source="translated",
                     categorization={"level": "nation", "value": "和谐"},
                     lineage=Lineage(origin={"file": "data/raw/saferlhf/test.jsonl", "line": i, "sha256": "1" * 64}),
                     meta={"rejected": rejected, "chosen_index": 0, "harm_categories": [], "licence": "CC BY-NC 4.0"})
        out.append(rec.add_op("select_pairs", "select", chosen_index=0))
    return out


def write_records(path: Path, recs: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def set_llm_params(proj: Path, srv: FakeOpenAI, **sections) -> None:
    p = proj / "params.yaml"
    params = yaml.safe_load(p.read_text(encoding="utf-8"))
    params["llm"].update(backend="openai", base_url=srv.base_url, model="fake-model", concurrency=8, timeout_s=1.0,
                         max_retries=6, max_reasks=2, retry_base_s=0.01, retry_max_s=0.5)
    for sec, kv in sections.items():
        params[sec].update(kv)
    p.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


def run_stage(proj: Path, name: str) -> dict:
    return run_script(proj / "stages" / f"{name}.py")


def check_books(proj: Path, stage: str, inputs: list[Record], out_path: str) -> tuple[list[dict], list[dict], dict]:
    """Every input id leaves exactly once (output, ledger, consumed, or as the record its text became), every other
    record was created, and ids are unique (vad.core.ledger.id_problems); the metrics count what was written."""
    out = read_jsonl(proj / out_path)
    ledger = read_jsonl(proj / f"build/ledger/{stage}.jsonl")
    m = json.loads((proj / f"build/metrics/{stage}.json").read_text())
    assert m["in"] == len(inputs)
    assert m["out"] == len(out) and m["ledgered"] == len(ledger)
    assert id_problems([r.id for r in inputs], out, ledger, m["consumed_ids"], m["created"]) == []
    return out, ledger, m
