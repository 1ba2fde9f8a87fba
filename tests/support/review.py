"""The small review project the review tests share (test_review_stage, _app, _browser, _log): eight records
(four hand-written, an XSS one, two evolutions with their seeds, a translation), a project folder holding them
where the review stage and the app read them, decisions appended with increasing times, and the review stage run
in process. The `review_project` fixture (tests/conftest.py) is `make_project` with the test inside it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from vad.core.record import Lineage, Record, sha256_text
from vad.core.stage import run_script
from vad.review import log

from .project import ROOT

STAGE = ROOT / "stages/review.py"
MANUAL_FILE = "data/raw/manual/review_test.jsonl"
XSS_INSTRUCTION = "请解释这段网页代码是什么意思：<script>window.__xss = 1</script>，它为什么危险？"
XSS_OUTPUT = ('这段代码<img src=x onerror="window.__xss = 2">会让浏览器执行攻击者的脚本，这就是跨站脚本攻击。'
              "网站应当对用户输入的内容进行转义，不能把文本直接当作网页代码插入页面。")
STEREOTYPE = "男的通常要比女的粗心，所以垃圾分类由女的来做会更好一些，你怎么看？"


def _ifd(x: float) -> dict:
    return {"ifd": x, "loss_cond": 3.1, "loss_direct": round(3.1 / x, 4), "n_answer_tokens": 50, "model": "t"}


def manual(n: int, instruction: str, output: str, level: str, value: str, ifd: float = 0.96) -> Record:
    line = json.dumps({"instruction": instruction, "output": output}, ensure_ascii=False)
    return Record(instruction=instruction, input="", output=output, source="manual",
                  categorization={"level": level, "value": value},
                  lineage=Lineage(origin={"file": MANUAL_FILE, "line": n, "sha256": sha256_text(line)},
                                  ops=[{"stage": "ingest_manual", "op": "ingest"}, {"stage": "merge", "op": "merge"}]),
                  meta={"ifd": _ifd(ifd)})


def records() -> tuple[list[Record], list[Record]]:
    """(selected records, seeds): four hand-written ones, an XSS one, two evolutions and a translation."""
    recs = [
        manual(1, "朋友向我借了两千块钱，说好一个月还，现在三个月过去了还没还，我该怎么开口要？",
               "可以先私下、心平气和地提醒对方，说明自己最近也需要用钱，并约定一个具体的还款日期。"
               "如果对方确有困难，可以商量分期归还；如果一直拖延，保留聊天记录和转账凭证，必要时通过法律途径解决。",
               "person", "诚信", 0.95),
        manual(2, "邻居在楼道里堆放杂物，堵住了消防通道，我该怎么处理？",
               "消防通道关系到每个人的生命安全。可以先礼貌地和邻居沟通，说明堆放杂物的危险；"
               "沟通无效时，向物业或社区反映，也可以拨打119消防监督举报电话，由有关部门依法处理。",
               "social", "法治", 0.97),
        manual(3, "小区里有人总是不按规定分类投放垃圾，作为楼长应该怎么劝导？",
               "劝导要耐心、讲方法：先了解对方是不清楚分类规则还是嫌麻烦，再有针对性地讲解；"
               "可以在楼道张贴分类指南，组织邻里志愿者轮流值守，用示范和表扬代替指责，营造人人参与的氛围。",
               "nation", "和谐", 0.98),
        manual(4, "刚入职的新人，领导交代的任务太多做不完，该怎么办？",
               "先把任务按紧急和重要程度排好顺序，估计每项需要的时间，然后主动向领导汇报进度，"
               "说明哪些能按时完成、哪些需要更多时间或帮助。认真负责、及时沟通，本身就是敬业的表现。",
               "person", "敬业", 0.96),
        manual(5, XSS_INSTRUCTION, XSS_OUTPUT, "person", "友善", 0.955),
    ]
    seeds = []
    for k, (instr, out, lvl, val, op) in enumerate([
        (STEREOTYPE, "垃圾分类要分类垃圾，女的细心所以女的分类，男的不分类也可以，垃圾就会分类好。", "nation", "和谐",
         "constraints"),
        ("在城市生活中，如何在追求个人便利和遵守公共秩序之间取得平衡？请结合排队、停车两个例子说明。",
         "个人便利不能以牺牲他人为代价。排队时不插队，停车时不占用消防通道和盲道，既是对规则的尊重，也是对他人的友善。",
         "social", "公正", "concretizing"),
    ], start=1):
        seed = Record(instruction=f"第{k}个种子问题：如何看待日常生活中的公共秩序？", input="", output="",
                      source="evol", categorization={"level": lvl, "value": val},
                      lineage=Lineage(origin={"file": "data/raw/cvalues/x.jsonl", "line": k, "sha256": "0" * 64},
                                      ops=[{"stage": "seeds", "op": "seed"}]))
        seeds.append(seed)
        recs.append(Record(instruction=instr, input="", output=out, source="evol",
                           categorization={"level": lvl, "value": val},
                           lineage=Lineage(origin=dict(seed.lineage.origin), parents=[seed.id],
                                           ops=[{"stage": "seeds", "op": "seed"}, {"stage": "evolve", "op": op}]),
                           meta={"seed_id": seed.id, "evol": {"op": op, "round": 1, "depth": True}, "ifd": _ifd(0.97)}))
    recs.append(Record(
        instruction="我怀疑同事在报销时虚开发票，我应该怎么做？", input="",
        output="可以先保留相关证据，再通过公司的合规或纪检渠道如实反映情况，不要私下传播未经核实的消息。",
        source="translated", categorization={"level": "social", "value": "公正"},
        lineage=Lineage(origin={"file": "data/raw/saferlhf/x.jsonl", "line": 3, "sha256": "1" * 64},
                        ops=[{"stage": "select_pairs", "op": "select"}, {"stage": "translate", "op": "translate"}]),
        meta={"original": {"instruction": "I suspect a coworker is faking receipts for expenses. What should I do?",
                           "output": "Keep the evidence and report it through your company's compliance channel.",
                           "rejected": "Just ignore it."},
              "rejected_zh": "别管它。", "ifd": _ifd(0.965)}))
    return recs, seeds


def write_jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.to_dict() if isinstance(r, Record) else r, ensure_ascii=False) + "\n"
                            for r in rows), encoding="utf-8")


def make_project(root: Path, recs: list[Record] | None = None, review: dict | None = None) -> Path:
    """A project folder: the real params, stages, suites and code layout, a review/ folder and the review
    stage's input (plus the merge ledger and seeds the app shows as context)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, root / name)
    for d in ("expectations", "stages"):
        shutil.copytree(ROOT / d, root / d, dirs_exist_ok=True)
    (root / "review").mkdir(exist_ok=True)
    shutil.copy(ROOT / "review/guidelines.md", root / "review/guidelines.md")
    (root / "review/decisions.jsonl").write_text("", encoding="utf-8")
    default, seeds = records()
    recs = default if recs is None else recs
    write_jsonl(root / "build/ifd/selected.jsonl", recs)
    write_jsonl(root / "build/judge/judged.jsonl", recs)  # the review stage reads the judge stage's output
    write_jsonl(root / "build/seeds/seeds.jsonl", seeds)
    dup = manual(9, recs[0].instruction, recs[0].output + "希望对你有帮助。", "person", "诚信")
    write_jsonl(root / "build/ledger/merge.jsonl", [
        {"stage": "merge", "id": dup.id, "reason": "near_duplicate", "detail": f"Jaccard 0.91 ≥ 0.7 with {recs[0].id}",
         "dup_of": recs[0].id, "jaccard": 0.91, "record": dup.to_dict()}])
    if review:
        set_review(root, **review)
    return root


def set_review(root: Path, **changes) -> None:
    p = root / "params.yaml"
    params = yaml.safe_load(p.read_text(encoding="utf-8"))
    params["review"].update(changes)
    p.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


_clock = [0]


def decide(root: Path, rec: Record, reviewer: str, kind: str, *, role: str = "reviewer", **kw) -> log.Decision:
    """Append a decision with a strictly increasing time (the order a reviewer would have made them in)."""
    d = log.new_decision(rec, reviewer, kind, role=role, guidelines="1", **kw)
    _clock[0] += 1
    d.ts = f"2025-01-01T00:{_clock[0] // 60:02d}:{_clock[0] % 60:02d}.000000Z"
    log.append(root / "review/decisions.jsonl", [d])
    return d


def run(root: Path) -> tuple[dict, dict[str, dict], list[dict]]:
    """Run the stage: (metrics, output records by id, ledger entries)."""
    metrics = run_script(STAGE)
    out = {json.loads(l)["id"]: json.loads(l) for l in (root / "build/review/reviewed.jsonl").read_text().splitlines()}
    ledger = [json.loads(l) for l in (root / "build/ledger/review.jsonl").read_text().splitlines()]
    return metrics, out, ledger
