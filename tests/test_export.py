"""The export as its consumers load it: DPO pairs, LLaMA-Factory's dataset_info.json, the hub card (licence switch,
configs that `datasets.load_dataset(folder)` follows) and the lean ledger index.

The builds are the `nc_build` / `own_build` fixtures (tests/conftest.py): small temporary projects made by
tests/support/export_build.py (hand-made raw manual data and LLM-stage outputs, then the real ingest_manual,
merge, ifd_select and export stages), built once per session and shared with tests/test_report.py."""
import json
import os
import shutil
from pathlib import Path

import pytest

from support.export_build import EXPORT, PROVENANCE, metrics
from vad.core import paths
from vad.core.errors import InputError
from vad.core.io import read_records
from vad.core.record import Record
from vad.publish import card, layout
from vad.publish.export import preference_pairs


def read(project: Path, name: str):
    return json.loads((project / EXPORT / name).read_text(encoding="utf-8"))


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
