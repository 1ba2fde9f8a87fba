"""Ids are unique per record occurrence: StageRun gives every later occurrence of an id its own (deterministic)
id, for every source of collisions — identical raw lines (manual, CValues prompts, SafeRLHF rows), evolve's
no-gain attempts and `evol_duplicate`, translate's `translate_duplicate` — without the stages doing anything.
`id_problems` (the id-level books the pipeline test runs over a real build) is checked here on broken books too."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, manual_line, record_provenance
from support.fake_model import CLAUSES, fake_model
from support.fake_openai import FakeOpenAI
from support.llm_stages import SEED_PROMPTS, make_seeds, read_jsonl, set_llm_params, write_records
from vad.core.errors import AccountingError
from vad.core.ledger import StageRun, id_problems
from vad.core.record import SAME_CONTENT, Record, occurrence_id
from vad.core.stage import run_script
from vad.generate.evolve import DEPTH_OPS, TEMPLATES, pick_op
from vad.llm import load_template


def rec(i=1, **kw) -> Record:
    base = dict(instruction=f"请谈谈第{i}个关于敬业的问题。", input="", output="敬业就是认真负责地对待自己的工作。",
                source="manual", categorization={"level": "person", "value": "敬业"})
    return Record(**{**base, **kw})


def ledger(root: Path, stage: str) -> list[dict]:
    return read_jsonl(root / f"build/ledger/{stage}.jsonl")


def metrics(root: Path, stage: str) -> dict:
    return json.loads((root / f"build/metrics/{stage}.json").read_text())


# --- the mechanism ----------------------------------------------------------------------------------------------
def test_second_identical_record_taken_gets_its_own_id(tmp_path):
    a, b, c = rec(1), rec(1), rec(1)
    content = a.id
    run = StageRun("s", root=tmp_path)
    run.take([a, b, rec(2), c])
    assert a.id == content and SAME_CONTENT not in a.meta  # the first keeps the content id
    assert b.id == occurrence_id(content, "s", 2) and c.id == occurrence_id(content, "s", 3)
    assert b.meta[SAME_CONTENT] == c.meta[SAME_CONTENT] == content and b.content_id == content
    # deterministic: the same input gives the same ids in a second run
    again = [rec(1), rec(1), rec(1)]
    StageRun("s", root=tmp_path).take(again)
    assert [r.id for r in again] == [a.id, b.id, c.id]
    # and a different stage gives different occurrence ids (a content id can repeat in two stages)
    other = [rec(1), rec(1)]
    StageRun("t", root=tmp_path).take(other)
    assert other[1].id != b.id


def test_created_record_with_an_inputs_id_gets_its_own(tmp_path):
    """evolve: an attempt that repeats its seed has the seed's id; the seed is ledgered later (evol_exhausted)."""
    seed, other_seed = rec(1, output=""), rec(2, output="")
    run = StageRun("evolve", root=tmp_path)
    run.take([seed, other_seed])
    attempt = Record(**{k: getattr(seed, k) for k in ("instruction", "input", "output", "source", "categorization")})
    run.created(1)
    assert attempt.id == seed.id
    run.drop(attempt, "evol_no_gain", "the evolved prompt is identical to its parent")
    child = rec(3, source="evol")
    run.created(1)
    run.consume(other_seed.id)
    run.drop(seed, "evol_exhausted")
    # a record created with the consumed seed's id also yields
    echo = Record(**{k: getattr(other_seed, k) for k in ("instruction", "input", "output", "source", "categorization")})
    run.created(1)
    run.drop(echo, "evol_no_gain")
    run.finish({"evol.jsonl": [child]})
    entries = ledger(tmp_path, "evolve")
    by_reason = {e["reason"]: e for e in entries if e["reason"] == "evol_exhausted"}
    assert by_reason["evol_exhausted"]["id"] == seed.id  # the input keeps its id even though ledgered last
    no_gain = [e for e in entries if e["reason"] == "evol_no_gain"]
    assert [e["record"]["meta"][SAME_CONTENT] for e in no_gain] == [seed.id, other_seed.id]
    assert all(e["id"] == e["record"]["id"] not in (seed.id, other_seed.id) for e in no_gain)
    assert len({e["id"] for e in entries}) == len(entries)
    m = metrics(tmp_path, "evolve")
    assert m["consumed_ids"] == [other_seed.id]
    assert id_problems([seed.id, other_seed.id], [child.to_dict()], entries, m["consumed_ids"], m["created"]) == []


def test_duplicate_ledgered_after_the_kept_record_gets_its_own_id_and_names_it(tmp_path):
    """evol_duplicate / translate_duplicate: the duplicate is dropped under the kept record's id."""
    run = StageRun("translate", root=tmp_path)
    pair1, pair2 = run.take([rec(1, source="translated"), rec(2, source="translated")])
    for p in (pair1, pair2):  # both translate to the same text
        p.instruction, p.output = "同一个问题？", "同一个译文。"
        p.rehash()
    assert pair1.id == pair2.id
    kept = pair1.id
    run.drop(pair2, "translate_duplicate", "same Chinese text as an earlier translated pair", dup_of=pair2.id)
    run.finish({"t.jsonl": [pair1]})
    (e,) = ledger(tmp_path, "translate")
    assert pair1.id == kept and e["dup_of"] == kept and e["id"] != kept
    assert e["id"] == e["record"]["id"] == occurrence_id(kept, "translate", 2)
    assert e["record"]["meta"][SAME_CONTENT] == kept


def test_a_record_leaving_twice_fails_even_when_the_counts_balance(tmp_path):
    run = StageRun("s", root=tmp_path)
    a, b = run.take([rec(1), rec(2)])
    run.drop(a, "some_reason")  # a is ledgered AND passed on, b is lost: 2 in == 1 out + 1 ledgered
    with pytest.raises(AccountingError, match=f"record {a.id} leaves the stage twice"):
        run.finish({"out.jsonl": [a]})
    run = StageRun("s", root=tmp_path)
    a, b = run.take([rec(1), rec(2)])
    run.consume(a.id)  # consumed and passed on
    with pytest.raises(AccountingError, match="leaves the stage twice"):
        run.finish({"out.jsonl": [a]})


def test_rehash_of_a_later_occurrence():
    first, later = rec(1), rec(1)
    StageRun("s").take([first, later])
    later_id = later.id
    later.rehash()  # text unchanged: still the later occurrence
    assert later.id == later_id and later.meta[SAME_CONTENT] == first.id
    later.output = "新的回答。"
    later.rehash()  # new text: a record of its own
    assert later.id == rec(1, output="新的回答。").id and SAME_CONTENT not in later.meta
    assert later.lineage.parents == [later_id]


def test_drop_refuses_extra_fields_that_would_overwrite_the_entry():
    run = StageRun("s")
    (a,) = run.take([rec(1)])
    with pytest.raises(ValueError, match="'id'"):
        run.drop(a, "r", id="other")


def test_id_problems_finds_lost_doubled_and_unexplained_records():
    a, b, c = rec(1).to_dict(), rec(2).to_dict(), rec(3).to_dict()
    entry = {"stage": "s", "id": b["id"], "reason": "r", "detail": "", "record": b}
    assert id_problems([a["id"], b["id"]], [a], [entry]) == []
    assert id_problems([a["id"], b["id"]], [a], []) == [f"input {b['id']} is lost"]
    assert f"id {a['id']} leaves 2 times" in id_problems([a["id"], b["id"]], [a, a], [entry])
    assert id_problems([a["id"], b["id"]], [a, c], [entry]) == [
        "1 records are neither inputs nor made from one, but 0 were created"]
    assert id_problems([a["id"], b["id"]], [a, c], [entry], created=1) == []
    # a changed text: the old id last in parents accounts for the input, once
    t = {**rec(4).to_dict(), "lineage": {"origin": {}, "parents": [b["id"]], "ops": []}}
    assert id_problems([a["id"], b["id"]], [a, t], []) == []
    assert id_problems([a["id"], b["id"]], [a, t, {**t, "id": "f" * 16}], []) == [
        f"input {b['id']} became [{t['id']!r}, {'f' * 16!r}]"]
    assert id_problems([a["id"]], [], [], consumed=[a["id"], "x"]) == ["consumed id x is not an input"]
    assert id_problems([b["id"]], [], [{**entry, "id": a["id"]}])[0] == f"ledger entry {a['id']} holds record {b['id']}"


# --- every source of collisions, through the real stages -----------------------------------------------------------
def _raw_copy(project: Path, source: str, lines: list[str]) -> Path:
    folder = project / "data/raw" / source
    folder.mkdir(parents=True, exist_ok=True)
    name = next((ROOT / "data/raw" / source).glob("*.jsonl")).name
    (folder / name).write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    record_provenance(folder)
    return folder / name


def test_identical_manual_lines_get_unique_ids(mini_project):
    lines = [manual_line(), manual_line(instruction="第二条指令：谈谈敬业。"), manual_line()]
    (mini_project / "data/raw/manual/t.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    record_provenance(mini_project / "data/raw/manual")
    run_script(mini_project / "stages/ingest_manual.py")  # the raw_manual suite expects unique ids
    first, _, third = read_jsonl(mini_project / "build/ingest/manual.jsonl")
    assert third["id"] == occurrence_id(first["id"], "ingest_manual", 2) and third["meta"][SAME_CONTENT] == first["id"]
    assert SAME_CONTENT not in first["meta"]


def test_identical_cvalues_prompts_get_unique_seed_ids(mini_project):
    raw = (ROOT / "data/raw/cvalues/cvalues_responsibility_prompts.jsonl").read_text(encoding="utf-8").splitlines()
    _raw_copy(mini_project, "cvalues", raw[:3] + [raw[1]])
    run_script(mini_project / "stages/seeds.py")  # the seeds suite expects unique ids
    seeds = read_jsonl(mini_project / "build/seeds/seeds.jsonl")
    (dup,) = ledger(mini_project, "seeds")
    assert [s["lineage"]["origin"]["line"] for s in seeds] == [1, 2, 3]
    assert dup["reason"] == "exact_duplicate" and dup["record"]["lineage"]["origin"]["line"] == 4
    assert dup["dup_of"] == seeds[1]["id"] == dup["record"]["meta"][SAME_CONTENT] != dup["id"]
    assert dup["detail"].endswith("cvalues_responsibility_prompts.jsonl:2")


def test_identical_saferlhf_rows_then_identical_translations(mini_project, tmp_path, monkeypatch):
    raw = (ROOT / "data/raw/saferlhf/pku_saferlhf_alpaca7b_test_first16.jsonl").read_text(encoding="utf-8").splitlines()
    f = _raw_copy(mini_project, "saferlhf", raw + raw)  # every row twice
    run_script(mini_project / "stages/select_pairs.py")  # the pairs suite expects unique ids
    pairs = read_jsonl(mini_project / "build/select/pairs.jsonl")
    assert pairs and len({p["id"] for p in pairs}) == len(pairs)
    firsts = [p for p in pairs if p["lineage"]["origin"]["line"] <= 16]
    seconds = [p for p in pairs if p["lineage"]["origin"]["line"] > 16]
    assert [p["meta"][SAME_CONTENT] for p in seconds] == [p["id"] for p in firsts]
    raw_keys = [f"data/raw/saferlhf/{f.name}:{n}" for n in range(1, 33)]
    origin = lambda r: f"{r['lineage']['origin']['file']}:{r['lineage']['origin']['line']}"  # noqa: E731
    assert id_problems(raw_keys, pairs, ledger(mini_project, "select_pairs"), key=origin) == []

    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "llmcache"))
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(mini_project, srv, translate={"limit": len(pairs)})
        run_script(mini_project / "stages/translate.py")
    out = read_jsonl(mini_project / "build/translate/translated.jsonl")
    entries = ledger(mini_project, "translate")
    dups = [e for e in entries if e["reason"] == "translate_duplicate"]
    assert out and len(dups) == len(out)  # each translation once more, from the second copy of its pair
    assert {e["dup_of"] for e in dups} == {r["id"] for r in out}
    assert all(e["id"] != e["dup_of"] and e["record"]["meta"][SAME_CONTENT] == e["dup_of"] for e in dups)
    m = metrics(mini_project, "translate")
    assert id_problems([p["id"] for p in pairs], out, entries, m["consumed_ids"], m["created"]) == []


def _aligned_rng_seed() -> tuple[int, str]:
    """An evol.rng_seed under which seed P evolves (round 1) into P + clause, and P + clause (round 1 of its own
    lane, round 2 of P's) draws the same operation: two lanes emit the same evolution, once in each round."""
    p = SEED_PROMPTS[0][0]
    for s in range(500):
        op1 = pick_op(p, "", 1, s, 0.0)
        if op1 not in DEPTH_OPS[:4]:
            continue
        system = load_template(TEMPLATES[op1]).system
        p1 = p + next(c for k, c in CLAUSES.items() if k in system)
        op2 = pick_op(p1, "", 2, s, 0.0)
        if op2 in DEPTH_OPS[:4] and op2 != op1 and pick_op(p1, "", 1, s, 0.0) == op2:
            return s, p1
    raise AssertionError("no aligned rng seed")


def test_evolve_no_gain_and_duplicate_evolutions_get_unique_ids(mini_project, tmp_path, monkeypatch):
    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "llmcache"))
    rng_seed, evolved = _aligned_rng_seed()
    _p, den, dzh, level, value = SEED_PROMPTS[0]
    prompts = [SEED_PROMPTS[0], (evolved, den, dzh, level, value), SEED_PROMPTS[1]]  # [1]: 【同】 → no gain
    seeds = make_seeds(prompts)
    write_records(mini_project / "build/seeds/seeds.jsonl", seeds)
    with FakeOpenAI(fake_model) as srv:
        set_llm_params(mini_project, srv, evol={"seed_limit": 3, "rounds": 2, "breadth_share": 0.0,
                                                "rng_seed": rng_seed})
        run_script(mini_project / "stages/evolve.py")
    out = read_jsonl(mini_project / "build/evolve/evol.jsonl")
    entries = ledger(mini_project, "evolve")
    reasons = Counter(e["reason"] for e in entries)
    assert reasons["evol_duplicate"] == 1 and reasons["evol_no_gain"] >= 1 and reasons["evol_exhausted"] == 1
    (dup,) = [e for e in entries if e["reason"] == "evol_duplicate"]
    assert dup["dup_of"] in {r["id"] for r in out} and dup["id"] != dup["dup_of"]
    assert dup["record"]["meta"][SAME_CONTENT] == dup["dup_of"]
    no_gain_seed = seeds[2]
    (exhausted,) = [e for e in entries if e["reason"] == "evol_exhausted"]
    assert exhausted["id"] == no_gain_seed.id  # the seed keeps its id; its repeat attempts yield
    repeats = [e for e in entries if e["reason"] == "evol_no_gain" and e["record"]["instruction"] == no_gain_seed.instruction]
    assert repeats and all(e["record"]["meta"][SAME_CONTENT] == no_gain_seed.id != e["id"] for e in repeats)
    m = metrics(mini_project, "evolve")
    assert id_problems([s.id for s in seeds], out, entries, m["consumed_ids"], m["created"]) == []
    assert len({e["id"] for e in entries} | {r["id"] for r in out}) == len(entries) + len(out)
