"""The export as its consumers load it: DPO pairs, LLaMA-Factory's dataset_info.json, the hub card (licence switch,
configs that `datasets.load_dataset(folder)` follows) and the lean ledger index.

Builds are small temporary projects: hand-made raw manual data and hand-made LLM-stage outputs (written through a
real StageRun, so corpus, ledger and metrics agree), then the real ingest_manual, merge, ifd_select and export
stages (IFD scores are set by hand: no model). `build_project` is shared with tests/test_report*.py."""
import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, manual_line, record_provenance
from vad.core import paths
from vad.core.errors import InputError
from vad.core.io import read_records, write_jsonl
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record
from vad.core.stage import run_script
from vad.publish import card, layout
from vad.publish.export import preference_pairs

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
_BUILT: dict[bool, Path] = {}


def shared_build(tmp_path_factory, translated: bool) -> Path:
    """One build of each kind per test session (tests/test_report.py uses them too); tests that change a build
    change a copy."""
    if translated not in _BUILT:
        _BUILT[translated] = build_project(tmp_path_factory.mktemp("nc-build" if translated else "own-build"),
                                           translated, review=REVIEW)
    return _BUILT[translated]


@pytest.fixture
def nc_build(tmp_path_factory):
    return shared_build(tmp_path_factory, translated=True)


@pytest.fixture
def own_build(tmp_path_factory):
    return shared_build(tmp_path_factory, translated=False)


def read(project: Path, name: str):
    return json.loads((project / EXPORT / name).read_text(encoding="utf-8"))


def metrics(project: Path, stage: str) -> dict:
    return json.loads((project / paths.metrics(stage)).read_text(encoding="utf-8"))


# --- preference pairs ---------------------------------------------------------------------------------------------
def test_dpo_pairs_are_the_records_with_a_rejected_answer(nc_build):
    sft, dpo = read(nc_build, layout.SFT_JSON), read(nc_build, layout.DPO_JSON)
    records = read_records(nc_build / EXPORT / layout.RECORDS)
    with_rejected = [r for r in records if r.meta.get("rejected_zh")]
    assert with_rejected and len(with_rejected) < sum(r.source == "translated" for r in records)  # "" is no pair
    assert [list(p) for p in dpo] == [list(layout.DPO_FIELDS)] * len(with_rejected)
    by_instruction = {r["instruction"]: r for r in sft}
    for pair, rec in zip(dpo, with_rejected):
        assert pair["rejected"] == rec.meta["rejected_zh"]
        row = by_instruction[pair["instruction"]]
        assert pair["chosen"] == row["output"] and pair["categorization"] == row["categorization"]
        assert pair["source"] == "translated"
    m = metrics(nc_build, "export")
    assert m["dpo_pairs"] == len(dpo) == m["dpo_pairs_source_translated"]
    assert f"pairs: {len(dpo)} (translated {len(dpo)})" in (nc_build / EXPORT / layout.CARD).read_text(encoding="utf-8")


def test_a_rejected_answer_that_is_not_text_is_a_one_line_error():
    rec = Record(instruction="问题", input="", output="回答", source="translated",
                 categorization={"level": "person", "value": "友善"}, meta={"rejected_zh": ["坏回答"]})
    with pytest.raises(InputError, match=rf"record {rec.id}: meta.rejected_zh must be text, got list"):
        preference_pairs([rec])


# --- LLaMA-Factory ------------------------------------------------------------------------------------------------
# LLaMA-Factory's dataset_info.json schema (docs/methods.md §8): llamafactory itself needs datasets<=4.0.0, so it
# cannot be installed beside vad; this reads the registration the way its parser and alpaca converter do.
LF_ENTRY_KEYS = {"file_name", "formatting", "ranking", "subset", "split", "folder", "num_samples", "columns", "tags",
                 "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name"}
LF_COLUMNS = {"prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
              "chosen", "rejected", "kto_tag"}
LF_EXT = {"json": "json", "jsonl": "json", "parquet": "parquet", "csv": "csv", "arrow": "arrow", "txt": "text"}


def lf_load(dataset_dir: Path, name: str, cache: Path) -> list[dict]:
    """What LLaMA-Factory does with `dataset: NAME` and `dataset_dir: DIR`: the examples as (prompt, responses)."""
    import datasets

    info = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))
    if name not in info:
        raise ValueError(f"Undefined dataset {name} in dataset_info.json.")
    entry = info[name]
    assert set(entry) <= LF_ENTRY_KEYS and set(entry.get("columns", {})) <= LF_COLUMNS, entry
    assert entry.get("formatting", "alpaca") == "alpaca"
    cols = {"prompt": "instruction", "query": "input", "response": "output", "chosen": None, "rejected": None,
            **entry.get("columns", {})}
    local = dataset_dir / entry["file_name"]
    assert not Path(entry["file_name"]).is_absolute() and local.is_file(), entry["file_name"]
    ds = datasets.load_dataset(LF_EXT[local.suffix[1:]], data_files=[str(local)], split="train", cache_dir=str(cache))
    out = []
    for ex in ds:
        prompt = "\n".join(ex[c] for c in (cols["prompt"], cols["query"]) if c and ex[c])
        if entry.get("ranking", False) and isinstance(ex.get(cols["chosen"]), str) \
                and isinstance(ex.get(cols["rejected"]), str):
            responses = [ex[cols["chosen"]], ex[cols["rejected"]]]
        elif isinstance(ex.get(cols["response"]), str):
            responses = [ex[cols["response"]]]
        else:
            responses = []  # unsupervised: not what we registered
        out.append({"prompt": prompt, "responses": responses})
    return out


def test_llamafactory_loads_both_registrations(nc_build, tmp_path):
    sft_name, dpo_name = card.registration_names("VAD")
    assert (sft_name, dpo_name) == ("vad", "vad_dpo")
    lf_data = tmp_path / "LLaMA-Factory" / "data" / "vad"
    shutil.copytree(nc_build / EXPORT, lf_data)  # "copy the folder into LLaMA-Factory's data dir"
    sft, dpo = read(nc_build, layout.SFT_JSON), read(nc_build, layout.DPO_JSON)
    got = lf_load(lf_data, sft_name, tmp_path / "hf")
    assert [g["responses"] for g in got] == [[r["output"]] for r in sft]
    assert [g["prompt"] for g in got] == ["\n".join(x for x in (r["instruction"], r["input"]) if x) for r in sft]
    got = lf_load(lf_data, dpo_name, tmp_path / "hf")
    assert [g["responses"] for g in got] == [[p["chosen"], p["rejected"]] for p in dpo] and dpo


def test_without_pairs_only_the_sft_set_is_registered(own_build, tmp_path):
    assert read(own_build, layout.DPO_JSON) == []
    info = read(own_build, layout.LLAMAFACTORY)
    assert list(info) == ["vad"]
    with pytest.raises(ValueError, match="Undefined dataset vad_dpo in dataset_info.json"):
        lf_load(own_build / EXPORT, "vad_dpo", tmp_path / "hf")


# --- the hub card ---------------------------------------------------------------------------------------------------
def test_folder_loads_with_datasets_as_the_card_says(nc_build, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    folder = str(nc_build / EXPORT)
    sft = datasets.load_dataset(folder, split="train", cache_dir=str(tmp_path))
    assert sft.column_names == list(layout.SFT_FIELDS)
    assert sft.to_list() == read(nc_build, layout.SFT_JSON)
    dpo = datasets.load_dataset(folder, "dpo", split="train", cache_dir=str(tmp_path))
    assert dpo.column_names == list(layout.DPO_FIELDS)
    assert dpo.to_list() == read(nc_build, layout.DPO_JSON)
    data = DatasetCard.load(nc_build / EXPORT / layout.CARD).data
    n = len(read(nc_build, layout.SFT_JSON))
    assert data.language == ["zh"] and data.task_categories == ["text-generation"]
    assert data.size_categories == ["n<1K"] and n < 1000
    assert [c["config_name"] for c in data.configs] == ["default", "dpo"]
    assert set(data.language_creators) == {"expert-generated", "machine-generated"}


def test_licence_switch(nc_build, own_build, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    nc_card = (nc_build / EXPORT / layout.CARD).read_text(encoding="utf-8")
    assert DatasetCard.load(nc_build / EXPORT / layout.CARD).data.license == "cc-by-nc-4.0"
    assert "**Non-commercial.**" in nc_card and "PKU-Alignment/PKU-SafeRLHF (test copy)" in nc_card
    assert metrics(nc_build, "export")["licence"] == "cc-by-nc-4.0"

    own_card = (own_build / EXPORT / layout.CARD).read_text(encoding="utf-8")
    sources = metrics(own_build, "export")["counts"]["source"]
    assert "translated" not in sources and sources["evol"] == 1  # Apache-2.0 prompts do not set the licence
    assert DatasetCard.load(own_build / EXPORT / layout.CARD).data.license == "cc-by-sa-4.0"  # the manual data's
    assert "Non-commercial" not in own_card and "No non-commercial material" in own_card
    assert [c["config_name"] for c in DatasetCard.load(own_build / EXPORT / layout.CARD).data.configs] == ["default"]
    with pytest.raises(ValueError, match="dpo"):
        datasets.load_dataset(str(own_build / EXPORT), "dpo", split="train", cache_dir=str(tmp_path))


def test_licence_and_size_rules():
    prov = {s: {"licence": PROVENANCE[f]["licence"]} for s, f in
            (("manual", paths.RAW_MANUAL), ("evol", paths.RAW_CVALUES), ("translated", paths.RAW_SAFERLHF))}
    assert card.build_licence(["evol"], prov) == ("cc-by-sa-4.0", "manual")
    assert card.build_licence(["manual", "evol", "translated"], prov) == ("cc-by-nc-4.0", "translated")
    assert card.build_licence(["manual"], {}) == ("unknown", "manual")
    assert card.hub_licence("Apache-2.0") == "apache-2.0" and not card.non_commercial("cc-by-4.0")
    assert card.non_commercial("cc-by-nc-sa-4.0") and not card.non_commercial("cc-by-sa-4.0")
    assert [card.size_category(n) for n in (0, 999, 1000, 29_000, 10**6, 10**13)] == \
        ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M", "n>1T"]


# --- the ledger index -------------------------------------------------------------------------------------------------
def test_export_ledger_is_a_lean_index_of_every_stage_ledger(nc_build):
    stage_entries = []
    for stage in ("ingest_manual", "evolve", "translate", "merge", "ifd_select"):
        p = nc_build / paths.ledger(stage)
        stage_entries += [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
    text = (nc_build / EXPORT / layout.LEDGER).read_text(encoding="utf-8")
    index = [json.loads(line) for line in text.splitlines()]
    assert {e["reason"] for e in index} >= {"exact_duplicate", "ifd_below_min"}
    assert [(e["stage"], e["id"], e["reason"]) for e in index] == \
        [(e["stage"], e["id"], e["reason"]) for e in stage_entries]
    for row, full in zip(index, stage_entries):
        assert tuple(row) == layout.LEDGER_INDEX
        assert row["origin"] == full["record"]["lineage"]["origin"] and row["dup_of"] == full.get("dup_of")
        assert row["source"] == full["record"]["source"]
        assert full["record"]["output"] not in text  # no record bodies: they are in the stage ledger, once
    assert metrics(nc_build, "export")["ledger_rows"] == len(index)
