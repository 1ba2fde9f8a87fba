"""`vad trace` / `vad why` on a small build made by the real ingest, merge and export code; they read only the
stage corpora, ledgers and metrics (build/export/ may be missing)."""
import json
import shutil
import subprocess
import sys

from conftest import ROOT, manual_line
from vad.publish.export import export
from vad.sources.ingest_manual import ingest_manual
from vad.core import paths
from vad.core.io import write_jsonl
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record
from vad.quality.merge import merge
from vad.core.config import load_params

PARAMS = load_params(ROOT / "params.yaml")


def build(project, extra_lines=()):
    qa = [("邻居装修太吵，我该怎么沟通？", "先选一个双方都方便的时间当面聊，说明噪音对休息的影响，再一起商量施工时段。"),
          ("同学考试作弊被我看到了，要不要告诉老师？", "可以先私下提醒同学作弊的后果，如果情况严重，再如实向老师反映，这是对公平负责。"),
          ("公司要求加班却不给加班费，合法吗？", "按照劳动法，安排延长工作时间应当支付加班费。可以先和人事沟通，必要时申请劳动仲裁。"),
          ("怎样给小学生解释什么是民主？", "可以用班级选班长做例子：大家一起提名、投票，少数服从多数，同时尊重少数人的意见。"),
          ("网上看到有人造谣地震，我该转发吗？", "不要转发未经证实的消息。可以查看官方发布的信息，并向平台举报谣言。"),
          ("如何培养孩子的诚信意识？", "家长以身作则，说到做到；孩子犯错主动承认时给予肯定，而不是只盯着惩罚。"),
          ("老人摔倒了要不要扶？", "先观察伤情并拨打急救电话，可以请旁人帮忙录像留证，在专业指导下帮助老人。"),
          ("农村青年回乡创业有哪些方向？", "可以结合当地特色农产品做电商、发展乡村旅游，或者做农机服务，先从小规模试点开始。"),
          ("垃圾分类有什么意义？", "垃圾分类能减少填埋量、提高资源回收率，也能减少土壤和水源污染，是人与自然和谐相处的小事。"),
          ("如何理性表达爱国情感？", "了解历史、关注国家发展，用实际行动做好本职工作；对外交流时尊重他人，不搞网络骂战。")]
    lines = [manual_line(instruction=q, output=a, value="友善") for q, a in qa]
    near = json.loads(lines[3])
    near["output"] = near["output"].rstrip("。") + "，这很重要。"
    lines.append(json.dumps(near, ensure_ascii=False))
    lines += extra_lines
    (project / "data/raw/manual/a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = StageRun("ingest_manual", root=project)
    kept = ingest_manual([project / "data/raw/manual/a.jsonl"], project, PARAMS.ingest, run)
    run.finish({"build/ingest/manual.jsonl": kept})
    mrun = StageRun("merge", root=project)
    merged = merge([kept], PARAMS.merge, PARAMS.ingest, PARAMS.content, mrun)
    mrun.finish({"build/merge/merged.jsonl": merged})
    rrun = StageRun("review", root=project)  # the export stage's input corpus (no review decisions)
    rrun.finish({paths.REVIEWED: rrun.take(merged)})
    export(merged, project / "build/export", project, PARAMS, ("ingest_manual", "merge", "review"))
    return merged, mrun.entries


def vad(project, *args):
    return subprocess.run([sys.executable, "-m", "vad.cli", *args, "--root", str(project)],
                          capture_output=True, text=True)


def test_trace_names_raw_file_and_line(mini_project):
    merged, _ = build(mini_project)
    out = vad(mini_project, "trace", "0").stdout
    assert f"record {merged[0].id}: exported as row 0" in out
    assert "raw      data/raw/manual/a.jsonl:1  (sha256 matches the raw line)" in out
    assert "ingest_manual/ingest" in out and "merge/merge" in out
    # the raw file changes after the build: trace says so
    p = mini_project / "data/raw/manual/a.jsonl"
    p.write_text(p.read_text(encoding="utf-8").replace("邻居", "隔壁邻居", 1), encoding="utf-8")
    assert "sha256 DIFFERS" in vad(mini_project, "trace", merged[0].id[:8]).stdout


def test_why_names_stage_reason_and_original(mini_project):
    merged, drops = build(mini_project)
    dup = next(e for e in drops if e["reason"] == "near_duplicate")
    out = vad(mini_project, "why", dup["id"]).stdout
    assert f"dropped by stage 'merge', reason 'near_duplicate'" in out
    assert f"it duplicates {dup['dup_of']} (data/raw/manual/a.jsonl:4), which was exported as row 3" in out
    assert "exported (row 0" in vad(mini_project, "why", merged[0].id).stdout
    bad = vad(mini_project, "why", "zzzz")
    assert bad.returncode == 2 and "matches 0 ids" in bad.stderr


def test_export_files(mini_project):
    merged, _ = build(mini_project)
    data = json.loads((mini_project / "build/export/vad.json").read_text(encoding="utf-8"))
    assert [list(r) for r in data] == [["instruction", "input", "output", "source", "categorization"]] * len(merged)
    assert data[0]["categorization"] == {"level": "person", "value": "友善"}
    lineage = [json.loads(l) for l in (mini_project / "build/export/lineage.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lineage] == [r.id for r in merged]
    ledger = (mini_project / "build/export/ledger.jsonl").read_text(encoding="utf-8")
    assert "near_duplicate" in ledger


def test_identical_lines_have_their_own_ids_and_one_ledger_entry(mini_project):
    """Two identical raw lines: the second gets its own id at ingest, merge ledgers it as an exact duplicate of
    the first, and `vad why` on it prints that one entry."""
    copy = manual_line(instruction="邻居装修太吵，我该怎么沟通？",
                       output="先选一个双方都方便的时间当面聊，说明噪音对休息的影响，再一起商量施工时段。", value="友善")
    merged, drops = build(mini_project, extra_lines=[copy])
    manual = [json.loads(l) for l in (mini_project / paths.MANUAL).read_text().splitlines()]
    first, second = manual[0], manual[-1]
    assert second["id"] != first["id"] and second["meta"]["same_content_as"] == first["id"]
    (dup,) = [e for e in drops if e["reason"] == "exact_duplicate"]
    assert dup["id"] == second["id"] and dup["dup_of"] == first["id"] == merged[0].id
    out = vad(mini_project, "why", dup["id"]).stdout
    assert out.count("was dropped by stage") == 1
    assert f"it duplicates {first['id']} (data/raw/manual/a.jsonl:1), which was exported as row 0" in out
    assert vad(mini_project, "why", first["id"]).stdout.strip() == \
        f"{first['id']} was exported (row 0 of build/export/vad.json)."


def test_trace_and_why_need_no_export_files(mini_project):
    merged, drops = build(mini_project)
    shutil.rmtree(mini_project / "build/export")
    dup = next(e for e in drops if e["reason"] == "near_duplicate")
    assert "dropped by stage 'merge', reason 'near_duplicate'" in vad(mini_project, "why", dup["id"][:10]).stdout
    out = vad(mini_project, "trace", "1").stdout
    assert out.startswith(f"record {merged[1].id}: exported as row 1") and "a.jsonl:2  (sha256 matches" in out


def test_why_a_consumed_seed_and_a_changed_record(mini_project):
    """A seed left through its evolution (`consumed_ids` in the stage metrics); a pair whose text changed became
    its translation: `vad why` says so instead of 'not exported and not in the ledger'."""
    seed = Record(instruction="公司收集员工的指纹合法吗？", input="", output="", source="evol",
                  categorization={"level": "social", "value": "法治"})
    pair = Record(instruction="Is it legal to collect fingerprints?", input="", output="It depends on the law.",
                  source="translated", categorization={"level": "social", "value": "法治"})
    write_jsonl(mini_project / paths.SEEDS, [seed])
    write_jsonl(mini_project / paths.PAIRS, [pair])
    run = StageRun("evolve", root=mini_project)
    run.take([seed])
    child = Record(instruction=seed.instruction + "请结合劳动法说明。", input="", output="需要员工同意。", source="evol",
                   categorization=dict(seed.categorization), lineage=Lineage(parents=[seed.id]))
    run.created(1)
    run.consume(seed.id)
    run.finish({paths.EVOL: [child]})
    trun = StageRun("translate", root=mini_project)
    (zh,) = trun.take([Record.from_dict(pair.to_dict())])
    zh.instruction, zh.output = "收集指纹合法吗？", "这取决于法律。"
    zh.rehash()
    trun.finish({paths.TRANSLATED: [zh]})
    write_jsonl(mini_project / paths.REVIEWED, [])
    assert vad(mini_project, "why", seed.id).stdout.strip() == \
        f"{seed.id}: consumed by evolve (it left through the records made from it)"
    assert vad(mini_project, "why", pair.id).stdout.strip() == f"{pair.id}: its text changed: it became {zh.id}"
    out = vad(mini_project, "trace", child.id).stdout
    assert f"parent   {seed.id}  evol '公司收集员工的指纹合法吗？'  — consumed by evolve" in out
