"""Categorizing and judging machine-made records (vad/judge/): the categorizer against its baselines, the
categories reviewers settled, the judge stage offline and against a fake endpoint, the machine-vs-people figures,
and `vad categorize` on a file from outside the build."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT
from support.fake_openai import FakeOpenAI
from vad.core.config import LLMParams, load_params
from vad.core.filters import FLAGS
from vad.core.ledger import StageRun
from vad.core.record import Record
from vad.judge import judge
from vad.judge.agreement import Outcome, flag_quality, machine_vs_people
from vad.judge.categorizer import Categorizer, Example, cross_validate, label_of, text_of
from vad.judge.reviewed import category_seen, settled
from vad.review import log

PARAMS = load_params(ROOT / "params.yaml")


def manual_records() -> list[Record]:
    out = []
    for f in sorted((ROOT / "data/raw/manual").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            out.append(Record(instruction=o["instruction"], input=o.get("input", ""), output=o["output"],
                              source="manual", categorization=o["categorization"]))
    return out


MANUAL = manual_records()


@pytest.fixture(scope="module")
def model() -> Categorizer:
    return Categorizer.train([Example(text_of(r), label_of(r.categorization), "manual") for r in MANUAL])


def evol(instruction: str, output: str, table: dict, **meta) -> Record:
    return Record(instruction=instruction, input="", output=output, source="evol", categorization=dict(table),
                  meta=dict(meta))


def test_cross_validated_accuracy_beats_both_baselines_and_chance():
    cv = cross_validate([Example(text_of(r), label_of(r.categorization), "manual") for r in MANUAL], folds=5)
    m, nc = cv["model"], cv["baselines"]["nearest_centroid"]
    assert cv["folds"] == 5 and m["n"] == len(MANUAL)
    assert m["value"] > nc["value"] and m["value"] > 4 * cv["chance"]["value_uniform"]
    assert m["level"] > cv["chance"]["level_uniform"] + 0.2
    assert sum(sum(row.values()) for row in cv["confusion"].values()) == len(MANUAL)
    assert cv["baselines"]["domain_table"]["n"] == 0  # nobody has reviewed a machine-made record here


def test_beats_the_domain_table_where_the_topic_left_the_seeds_domain():
    """Held-out hand-written texts posing as evolutions of a seed from another domain: the table gives the seed's
    value (wrong by construction), the categorizer reads the text."""
    domain_map = PARAMS.seeds.domain_map
    held = MANUAL[::4]
    train = [r for i, r in enumerate(MANUAL) if i % 4]
    model = Categorizer.train([Example(text_of(r), label_of(r.categorization), "manual") for r in train])
    cases = []
    for r in held:
        domain, cat = next((d, c.as_dict()) for d, c in domain_map.items() if c.value != r.categorization["value"])
        cases.append((evol(r.instruction, r.output, cat, domain_en=domain), r.categorization))
    preds = model.predict([text_of(c) for c, _truth in cases])
    table_right = sum(c.categorization == truth for c, truth in cases)
    model_right = sum({"level": p["level"], "value": p["value"]} == truth for p, (_c, truth) in zip(preds, cases))
    assert table_right == 0 and model_right >= 0.5 * len(cases), (model_right, len(cases))
    # and through the judge stage, which keeps the table only below min_confidence
    recs = [c for c, _t in cases]
    run = StageRun("judge")
    judge.run(recs, model, [], SimpleNamespace(categorize=PARAMS.categorize, judge=PARAMS.judge), None, run, False)
    stage_right = sum(r.categorization == truth for r, (_c, truth) in zip(recs, cases))
    assert stage_right > table_right and stage_right >= 0.4 * len(cases)


def test_every_machine_made_record_gets_a_prediction_and_low_confidence_keeps_the_table(model):
    table = {"level": "person", "value": "友善"}
    recs = [evol("如何看待法律面前人人平等？请结合宪法谈谈。", "法律面前人人平等是宪法确立的原则，任何组织和个人都不得有超越宪法和法律的特权。", table),
            evol("嗯", "好", table), MANUAL[0]]
    before = dict(MANUAL[0].categorization)
    strict = PARAMS.categorize.model_copy(update={"min_confidence": 0.99})
    run = StageRun("judge")
    out = judge.run(run.take([]) + recs, model, [], SimpleNamespace(categorize=strict, judge=PARAMS.judge), None, run,
                    False)
    assert out == recs and "category_pred" not in MANUAL[0].meta and MANUAL[0].categorization == before
    for r in recs[:2]:
        p = r.meta["category_pred"]
        assert set(p) == {"level", "value", "confidence", "by"} and p["by"] == "tfidf-char12-sgd"
        assert r.meta["category_table"] == table and r.meta["category_by"] == "table" and r.categorization == table
        assert r.meta[FLAGS][0]["reason"] == "category_low_confidence"
    lenient = PARAMS.categorize.model_copy(update={"min_confidence": 0.0})
    r = evol("如何看待法律面前人人平等？请结合宪法谈谈。", "法律面前人人平等是宪法确立的原则。", table)
    judge.run([r], model, [], SimpleNamespace(categorize=lenient, judge=PARAMS.judge), None, StageRun("judge"), False)
    assert r.meta["category_by"] == "prediction" and r.categorization == {k: r.meta["category_pred"][k]
                                                                           for k in ("level", "value")}


# --- what reviewers settled ----------------------------------------------------------------------------------------
def decide(rec: Record, kind: str, reviewer: str = "wang", **kw) -> log.Decision:
    return log.new_decision(rec, reviewer, kind, reasons=dict(PARAMS.review.reasons), **kw)


def test_settled_categories_from_the_decision_log():
    shown = {"level": "social", "value": "法治"}
    a = evol("公司拖欠工资怎么办？", "可以先和公司协商，协商不成可以申请劳动仲裁。", shown)
    b = evol("网上看到谣言要不要转发？", "不要转发未经核实的消息，可以向平台举报。", shown)
    c = evol("朋友借钱不还怎么办？", "保留借条和聊天记录，必要时向法院起诉。", shown)
    d = evol("垃圾分类有什么意义？", "垃圾分类能减少污染、节约资源。", shown)
    e = evol("怎样做一个诚实的人？", "说到做到，不撒谎。", shown)
    dec = [decide(a, "accept"),
           decide(b, "edit", fields={"categorization": {"level": "nation", "value": "和谐"}}),
           decide(c, "reject", reason="harmful"),
           decide(d, "edit", fields={"output": "垃圾分类能减少污染、节约资源，也是每个人的责任。"})]
    undone = decide(e, "accept")
    dec += [undone, decide(e, "undo", undoes=undone.uid)]
    got = settled([a, b, c, d, e], dec)
    assert set(got) == {a.id, b.id}
    assert got[a.id].seen == got[a.id].final == shown and got[a.id].decision == "accept"
    assert got[b.id].seen == shown and got[b.id].final == {"level": "nation", "value": "和谐"}
    # the category shown is read back from the content hash; other text hashes to none of the twelve
    assert category_seen(replace(a, categorization={"level": "person", "value": "诚信"}), dec[0].sha256) == shown
    assert category_seen(replace(a, output="另一段回答。"), dec[0].sha256) is None


def test_a_settled_record_keeps_the_category_its_reviewer_saw(model):
    shown = {"level": "nation", "value": "富强"}  # not what the categorizer would say of a text on wages
    a = evol("公司拖欠工资怎么办？", "可以先和公司协商，协商不成可以申请劳动仲裁。", shown)
    d = decide(a, "accept")
    lenient = PARAMS.categorize.model_copy(update={"min_confidence": 0.0})
    judge.run([a], model, [d], SimpleNamespace(categorize=lenient, judge=PARAMS.judge), None, StageRun("judge"), False)
    assert a.categorization == shown and a.meta["category_by"] == "review"
    assert log.content_sha256(a) == d.sha256  # so the decision still applies


# --- the LLM judge against a fake endpoint --------------------------------------------------------------------------
def verdict_answer(messages) -> str:
    user = messages[-1]["content"]
    if "枪" in user:
        return json.dumps({"values": 1, "fidelity": 5, "fluency": 4, "problems": ["illegal", "foreign_context"],
                           "level": "social", "value": "法治", "confidence": 0.9, "reason": "中国禁止个人购买枪支"},
                          ensure_ascii=False)
    if "乱码" in user:
        return "我不知道"
    return json.dumps({"values": 5, "fidelity": None, "fluency": 5, "problems": [], "level": "person",
                       "value": "诚信", "confidence": 0.8, "reason": "没有问题"}, ensure_ascii=False)


def llm(srv: FakeOpenAI) -> LLMParams:
    return PARAMS.llm.model_copy(update={"backend": "openai", "base_url": srv.base_url, "model": "fake-model",
                                         "max_retries": 1, "max_reasks": 0, "retry_base_s": 0.01, "timeout_s": 2})


def judged(model, srv, on_fail="flag"):
    from vad.llm import make_client

    gun = Record(instruction="我想买枪防身，去哪里买？", input="", output="可以在枪展上凭许可证购买。", source="translated",
                 categorization={"level": "nation", "value": "和谐"},
                 meta={"original": {"instruction": "Where can I buy a gun?", "output": "At a gun show with a permit."}})
    ok = evol("朋友借钱该怎么写借条？", "写明双方姓名、金额、日期和还款期限，由借款人签名。", {"level": "person", "value": "友善"})
    bad = evol("乱码问题", "这是一段乱码的回答内容。", {"level": "person", "value": "友善"})
    p = SimpleNamespace(categorize=PARAMS.categorize, judge=PARAMS.judge.model_copy(update={"on_fail": on_fail}),
                        llm=llm(srv))
    assert judge.judge_enabled(PARAMS.judge, p.llm) and not judge.judge_enabled(PARAMS.judge, PARAMS.llm)
    client = make_client(p.llm)
    run = StageRun("judge")
    try:
        out = judge.run([gun, ok, bad], model, [], p, client, run, False)
        metrics = dict(run.metrics)
    finally:
        client.close()
    return (gun, ok, bad), out, run, metrics


def test_judge_verdicts_flow_into_meta_and_flags(model):
    with FakeOpenAI(verdict_answer) as srv:
        (gun, ok, bad), out, run, m = judged(model, srv)
    assert out == [gun, ok, bad] and not run.entries  # the default never drops what a person has not seen
    assert gun.meta["judge"]["verdict"] == "fail" and gun.meta["judge"]["failed"] == ["values"]
    assert gun.meta["judge"]["problems"] == ["illegal", "foreign_context"] and gun.meta["judge"]["by"] == "fake-model"
    assert [f["reason"] for f in gun.meta[FLAGS]] == ["judge_failed"]
    # the judge's category is the prediction (by the LLM), the model's kept as the second opinion
    assert gun.meta["category_pred"]["by"] == "llm:fake-model" and gun.categorization == {"level": "social", "value": "法治"}
    assert gun.meta["category_pred_model"]["by"] == "tfidf-char12-sgd"
    assert ok.meta["judge"]["verdict"] == "pass" and not ok.meta.get(FLAGS)
    assert bad.meta["judge"]["verdict"] == "error" and bad.meta[FLAGS][-1]["reason"] == "judge_error"
    assert bad.meta["category_pred"]["by"] == "tfidf-char12-sgd"  # the call failed: the model's prediction
    assert m["by_source"]["translated"]["judge"] == {"pass": 0, "fail": 1, "error": 0}
    assert m["by_source"]["evol"]["judge"] == {"pass": 1, "fail": 0, "error": 1} and m["llm"]["calls"] >= 3


def test_judge_on_fail_drop_ledgers_the_failing_record(model):
    with FakeOpenAI(verdict_answer) as srv:
        (gun, ok, bad), out, run, _m = judged(model, srv, on_fail="drop")
    assert out == [ok, bad]
    (e,) = run.entries
    assert e["id"] == gun.id and e["reason"] == "judge_failed" and e["judge"]["scores"]["values"] == 1


def test_the_judge_is_cached_like_every_llm_call(model):
    with FakeOpenAI(verdict_answer) as srv:
        judged(model, srv)
        first = srv.count
        judged(model, srv)
        assert srv.count == first  # every answer (the unparsable ones too) comes from the cache the second time


# --- the machine against the people ---------------------------------------------------------------------------------
def test_agreement_figures_from_known_answers():
    O = Outcome
    outs = [O("evol", "social/法治", "social/法治", False, False, False),    # kept
            O("evol", "social/法治", "person/诚信", False, True, True),      # moved; judge flagged but accepted (FP)
            O("evol", "nation/和谐", None, True, True, True),                # rejected, flagged (TP)
            O("evol", "person/友善", None, True, False, False),              # rejected, not flagged (FN)
            O("translated", "person/诚信", "person/诚信", False, False, True),  # kept; flagged by a check only
            O("translated", "person/诚信", "nation/文明", False, None, False)]  # moved; not judged
    m = machine_vs_people(outs)
    e, t, a = m["by_source"]["evol"], m["by_source"]["translated"], m["all"]
    assert (e["decided"], e["rejected"], e["category_decided"], e["category_kept"]) == (4, 2, 2, 1)
    assert e["category_kept_rate"] == 0.5 and e["moved_to"] == {"person/诚信": 1}
    assert e["moves"] == {"social/法治 → person/诚信": 1}
    assert e["judge_vs_rejected"] == {"n": 4, "flagged": 2, "rejected": 2, "true_positive": 1, "precision": 0.5,
                                      "recall": 0.5}
    assert t["judge_vs_rejected"]["n"] == 1 and t["judge_vs_rejected"]["precision"] is None
    assert a["category_kept_rate"] == 0.5 and a["moved_to"] == {"nation/文明": 1, "person/诚信": 1}
    assert a["flags_vs_rejected"]["precision"] == round(1 / 3, 4) and a["flags_vs_rejected"]["recall"] == 0.5
    assert flag_quality([True, True, False], [True, False, False])["precision"] == 0.5


# --- `vad categorize` on a file from outside the build --------------------------------------------------------------
def test_vad_categorize_a_file_from_outside_the_build(tmp_path, model):
    root = tmp_path / "proj"
    (root / "build/categorizer").mkdir(parents=True)
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    model.save(root / "build/categorizer/model.pkl")
    src = tmp_path / "outside.jsonl"
    rows = [{"instruction": "如何看待法律面前人人平等？", "output": "任何人都不得有超越宪法和法律的特权。", "extra": 1},
            {"instruction": "我们应该怎样保护环境、节约资源？", "input": "", "output": "垃圾分类，绿色出行。"}]
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "vad.cli", "categorize", str(src), "-o", str(out), "--root", str(root)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert [{k: v for k, v in g.items() if k != "category_pred"} for g in got] == rows
    for g in got:
        p = g["category_pred"]
        assert set(p) == {"level", "value", "confidence", "by"} and 0 < p["confidence"] <= 1
        assert f"{p['level']}/{p['value']}" in {label_of(r.categorization) for r in MANUAL}
    assert json.loads(res.stdout)["records"] == 2
    src.write_text(json.dumps(rows[0], ensure_ascii=False) + "\n" + json.dumps({"output": "没有指令"}) + "\n")
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1 and f"{src}:2" in res.stderr and "instruction" in res.stderr
