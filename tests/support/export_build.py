"""The export tests' build (tests/test_export.py, tests/test_report.py): a small temporary project with hand-made
raw manual data and hand-made LLM-stage outputs (written through a real StageRun, so corpus, ledger and metrics
agree), then the real ingest_manual, merge, ifd_select and export stages (IFD scores are set by hand: no model).
The `nc_build` and `own_build` fixtures (tests/conftest.py) build it once per session, with and without the
translated pairs."""
import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from vad.core import paths
from vad.core.io import read_records, write_jsonl
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record
from vad.core.stage import run_script

from .project import ROOT, manual_line, record_provenance

EXPORT = Path(paths.EXPORT_DIR)
# Hand-made provenance. The manual licence is not the bundled one (CC BY 4.0): the card must read it, not know it.
PROVENANCE = {
    paths.RAW_MANUAL: {"origin": "hand-written for a test", "revision": "t1", "licence": "CC BY-SA 4.0"},
    paths.RAW_CVALUES: {"origin": "X-PLUG/CValues (test copy)", "revision": "t2", "licence": "Apache-2.0"},
    paths.RAW_SAFERLHF: {"origin": "PKU-Alignment/PKU-SafeRLHF (test copy)", "revision": "t3",
                         "licence": "CC BY-NC 4.0"},
}
MANUAL = [  # (instruction, output, level, value)
    ("邻居装修太吵，我该怎么沟通？", "先选一个双方都方便的时间当面聊，说明噪音对休息的影响，再一起商量施工时段。", "person", "友善"),
    ("同学考试作弊被我看到了，要不要告诉老师？", "可以先私下提醒同学作弊的后果，如果情况严重，再如实向老师反映，这是对公平负责。", "social", "公正"),
    ("公司要求加班却不给加班费，合法吗？", "按照劳动法，安排延长工作时间应当支付加班费。可以先和人事沟通，必要时申请劳动仲裁。", "social", "法治"),
    ("怎样给小学生解释什么是民主？", "可以用班级选班长做例子：大家一起提名、投票，少数服从多数，同时尊重少数人的意见。", "nation", "民主"),
    ("如何培养孩子的诚信意识？", "家长以身作则，说到做到；孩子犯错主动承认时给予肯定，而不是只盯着惩罚。", "person", "诚信"),
    ("垃圾分类有什么意义？", "垃圾分类能减少填埋量、提高资源回收率，也能减少土壤和水源污染，是人与自然和谐相处的小事。", "nation", "和谐"),
]
TRANSLATED = [  # (instruction, chosen, rejected)
    ("我的邻居总是把音乐开得很大声，我该怎么办？", "可以先礼貌地和邻居沟通，说明噪音带来的困扰；如果没有改善，可以联系物业或社区调解。",
     "不用管他，直接把他的音响砸了，让他知道厉害。"),
    ("我在网上看到别人的隐私照片，可以转发吗？", "不可以。转发他人的隐私照片侵犯隐私权，可能违法。应当删除并向平台举报。",
     "可以啊，反正不是你拍的，转发一下也没什么关系。"),
    ("朋友让我帮他在考试中作弊，我应该答应吗？", "不应该答应。作弊违反考试纪律，对其他考生不公平，可以建议朋友认真复习。", ""),
]
EVOL = ("请结合社区生活，说明如何用实际行动践行文明新风，并举出两个具体做法。",
        "可以从文明养犬和垃圾分类做起：遛狗牵绳并及时清理粪便；按规定分类投放垃圾，带动邻居一起参与。")
LLM_FIGURES = {"calls": 7, "cache_hits": 2, "retries": 1, "failures": 0, "reasks": 1, "prompt_tokens": 1200,
               "completion_tokens": 340, "est_cost": 0.0123, "seconds": 4.5}


@contextlib.contextmanager
def inside(project: Path):
    old = Path.cwd()
    os.chdir(project)
    try:
        yield
    finally:
        os.chdir(old)


def _generated(stage: str, records: list[Record], dropped: list[Record], reason: str, out: str) -> None:
    """A generating stage's outputs made by hand through its real book-keeping (corpus, ledger, metrics)."""
    run = StageRun(stage)
    run.take(records + dropped)
    for r in dropped:
        run.drop(r, reason, "made by the test")
    run.finish({out: records}, llm=dict(LLM_FIGURES),
               llm_client={"backend": "openai", "model": "test-model", "base_url": "http://127.0.0.1:1/v1"})


def build_project(project: Path, translated: bool, review: dict | None = None) -> Path:
    """A built temporary project (see the module docstring); `translated`: translated SafeRLHF pairs are in;
    `review`: figures for the review stage's metrics (it passes every record it receives)."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    for d in ("expectations", "stages"):
        shutil.copytree(ROOT / d, project / d)
    for folder, prov in PROVENANCE.items():
        (project / folder).mkdir(parents=True, exist_ok=True)
        (project / paths.raw_provenance(folder)).write_text(json.dumps(prov), encoding="utf-8")
    lines = [manual_line(instruction=q, output=a, level=lvl, value=v) for q, a, lvl, v in MANUAL]
    lines.append(lines[0])  # an exact duplicate: merge ledgers it with dup_of
    (project / paths.RAW_MANUAL / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = PROVENANCE[paths.RAW_MANUAL]  # ingest_manual checks every raw file against its provenance
    record_provenance(project / paths.RAW_MANUAL, origin=m["origin"], licence=m["licence"])
    raw = "data/raw/saferlhf/pairs.jsonl"
    pairs = [Record(instruction=q, input="", output=a, source="translated",
                    categorization={"level": "person", "value": "友善"},
                    lineage=Lineage(origin={"file": raw, "line": i, "sha256": "0" * 64}),
                    meta={"rejected_zh": rej, "original": {"instruction": "(English)", "output": "(English)"}})
             for i, (q, a, rej) in enumerate(TRANSLATED, start=1)]
    evol = Record(instruction=EVOL[0], input="", output=EVOL[1], source="evol",
                  categorization={"level": "nation", "value": "文明"},
                  lineage=Lineage(origin={"file": "data/raw/cvalues/prompts.jsonl", "line": 1, "sha256": "1" * 64}))
    with inside(project), pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAD_CACHE_DIR", str(project / "vad-cache"))
        run_script("stages/ingest_manual.py")
        _generated("evolve", [evol], [], "evol_no_gain", paths.EVOL)
        _generated("translate", pairs if translated else [], [] if translated else pairs, "translate_len_ratio",
                   paths.TRANSLATED)
        run_script("stages/merge.py")
        scored = read_records(paths.MERGED)
        for i, r in enumerate(scored):  # every fourth record below ifd.min (0.94): ifd_select ledgers it
            r.meta["ifd"] = {"ifd": 0.5 if i % 4 == 3 else 0.95 + i / 1000, "loss_cond": 1.0, "loss_direct": 1.1,
                             "ifd_ppl": 0.9, "n_answer_tokens": 20}
        write_jsonl(paths.SCORED, scored)
        run_script("stages/ifd_select.py")
        run = StageRun("review")
        run.finish({paths.REVIEWED: run.take(read_records(paths.SELECTED))}, **(review or {}))
        run_script("stages/export.py")
    return project


# The review stage's metrics as the review helper writes them (policy, progress, agreement): the report shows them.
REVIEW = {"policy": "generated", "decided": 6, "pending": 2, "accepted": 4, "rejected": 1, "edited": 1, "stale": 1,
          "conflicts": 1, "kappa_overall": 0.71, "kappa_by_level": {"nation": 0.8, "social": 0.62, "person": None}}


def metrics(project: Path, stage: str) -> dict:
    return json.loads((project / paths.metrics(stage)).read_text(encoding="utf-8"))
