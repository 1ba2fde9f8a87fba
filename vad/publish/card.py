"""How the people who train on VAD load it: the dataset card (build/export/README.md) with the YAML header the
Hugging Face hub and `datasets.load_dataset(folder)` read, and LLaMA-Factory's dataset_info.json.

* The header is `huggingface_hub.DatasetCardData`: licence, language, task categories, size category, and
  `configs` naming the SFT parquet (`default`) and the pairs (`dpo`), so `load_dataset("build/export")` and
  `load_dataset("build/export", "dpo")` need no other argument. A config is listed only when its file has rows:
  `datasets` refuses a split with no data, and a build without translated records has no pairs.
* The licence of a build comes from the raw folders' PROVENANCE.json: a contributing source with a
  non-commercial licence (PKU-SafeRLHF, CC BY-NC 4.0) makes the whole build non-commercial; otherwise the build
  carries the licence of the project's own data (the manual folder).
* dataset_info.json registers the SFT set (alpaca columns) and the pairs (`ranking: true`, chosen/rejected
  columns) under file names relative to the folder, so the folder is a LLaMA-Factory `dataset_dir` as it is
  (docs/methods.md §8)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from vad.core.taxonomy import LEVEL_ZH, LEVELS
from vad.publish import layout

TASK_CATEGORIES = ("text-generation",)
TAGS = ("values-alignment", "safety", "chinese", "instruction-tuning")
# Who wrote the text of each source (the hub's language_creators vocabulary).
CREATORS = {"manual": "expert-generated", "evol": "machine-generated", "translated": "machine-generated"}
OWN_DATA = "manual"  # the source whose licence is the project's own
# The hub's size categories: n<1K, 1K<n<10K, ..., 100B<n<1T, n>1T.
SIZE_STEPS = ("1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T")
_SCALE = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


@dataclass(frozen=True)
class BuildFacts:
    """What the card and the registration say about one build (all from the exported records)."""

    name: str
    version: str
    counts: dict[str, Any]                  # vad.publish.export.counts
    pairs: int = 0                          # preference pairs written to vad_dpo.*
    pair_sources: dict[str, int] = field(default_factory=dict)
    licence: str = "unknown"                # the hub licence id of the build (build_licence)
    licence_source: str = OWN_DATA          # the source that licence comes from

    @property
    def total(self) -> int:
        return self.counts["total"]


# --- licence ------------------------------------------------------------------------------------------------------
def hub_licence(text: str) -> str:
    """The hub's licence id for a PROVENANCE.json licence: "CC BY-NC 4.0" → cc-by-nc-4.0, "Apache-2.0" →
    apache-2.0; "" → unknown."""
    slug = re.sub(r"[\s_]+", "-", str(text or "").strip()).lower()
    return slug or "unknown"


def non_commercial(licence_id: str) -> bool:
    return bool(re.search(r"(^|-)nc(-|$)", licence_id))


def build_licence(sources: list[str], provenance: dict[str, dict]) -> tuple[str, str]:
    """(hub licence id, the source it comes from) for a build whose records come from `sources`: the first
    contributing source with a non-commercial licence, else the project's own data (OWN_DATA)."""
    own = {s: hub_licence(provenance.get(s, {}).get("licence", "")) for s in (*sources, OWN_DATA)}
    for s in sources:
        if non_commercial(own[s]):
            return own[s], s
    return own[OWN_DATA], OWN_DATA


def size_category(n: int) -> str:
    lower = None
    for step in SIZE_STEPS:
        if n < int(step[:-1]) * _SCALE[step[-1]]:
            return f"{lower}<n<{step}" if lower else f"n<{step}"
        lower = step
    return f"n>{lower}"


# --- what loads the folder ---------------------------------------------------------------------------------------
def hub_configs(build: BuildFacts) -> list[dict[str, Any]]:
    """The card's `configs`: `default` = the SFT set, `dpo` = the pairs; each only when it has rows."""
    configs = []
    for name, path, n in (("default", layout.SFT_PARQUET, build.total), ("dpo", layout.DPO_PARQUET, build.pairs)):
        if n:
            configs.append({"config_name": name, "data_files": [{"split": "train", "path": path}]})
    return configs


def registration_names(name: str) -> tuple[str, str]:
    """The dataset names users put in a LLaMA-Factory config: `vad` (SFT) and `vad_dpo` (pairs)."""
    slug = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "vad"
    return slug, f"{slug}_dpo"


def llamafactory_info(name: str, build: BuildFacts) -> dict[str, Any]:
    """LLaMA-Factory's dataset_info.json for the folder (alpaca formatting; the pairs only when there are any)."""
    sft_name, dpo_name = registration_names(name)
    prompt, query, response = layout.SFT_FIELDS[:3]
    info: dict[str, Any] = {}
    if build.total:
        info[sft_name] = {"file_name": layout.SFT_JSON, "formatting": "alpaca",
                          "columns": {"prompt": prompt, "query": query, "response": response}}
    if build.pairs:
        chosen, rejected = layout.DPO_FIELDS[2:4]
        info[dpo_name] = {"file_name": layout.DPO_JSON, "formatting": "alpaca", "ranking": True,
                          "columns": {"prompt": prompt, "query": query, "chosen": chosen, "rejected": rejected}}
    return info


def card_data(build: BuildFacts):
    from huggingface_hub import DatasetCardData

    sources = [s for s in build.counts["source"] if build.counts["source"][s]]
    return DatasetCardData(
        pretty_name=f"{build.name} — Chinese Values Alignment Dataset",
        license=build.licence,
        language=["zh"],
        language_creators=sorted({CREATORS.get(s, "other") for s in sources}),
        task_categories=list(TASK_CATEGORIES),
        size_categories=[size_category(build.total)],
        tags=list(TAGS) + (["dpo", "preference"] if build.pairs else []),
        configs=hub_configs(build),
    )


# --- the card -----------------------------------------------------------------------------------------------------
def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def llm_used(metrics: dict[str, dict]) -> dict | None:
    """The LLM settings of the generating stages, for the card."""
    used = {s: m["llm_client"] for s, m in metrics.items() if m.get("llm_client")}
    return used or None


def _how_to_load(build: BuildFacts) -> list[str]:
    sft_name, dpo_name = registration_names(build.name)
    out = ["## Loading it", "",
           "This folder is a Hugging Face dataset repository as it is (the YAML header above names its configs):", "",
           "```python", "from datasets import load_dataset", "",
           f'sft = load_dataset("path/to/export", split="train")          # {", ".join(layout.SFT_FIELDS)}']
    if build.pairs:
        out.append(f'dpo = load_dataset("path/to/export", "dpo", split="train")   # {", ".join(layout.DPO_FIELDS)}')
    out += ["```", "",
            f"**LLaMA-Factory**: `{layout.LLAMAFACTORY}` registers `{sft_name}` (alpaca SFT)"
            + (f" and `{dpo_name}` (ranking: chosen / rejected)" if build.pairs else "")
            + " with file names relative to this folder. Copy the folder into LLaMA-Factory's `data/` (say as "
            f"`data/{sft_name}/`) and set `dataset_dir: data/{sft_name}` and `dataset: {sft_name}` (`stage: sft`)"
            + (f" or `dataset: {dpo_name}` (`stage: dpo`)" if build.pairs else "") + " in the training config.", ""]
    if build.pairs:
        out += ["**TRL** (`DPOTrainer` wants `prompt`, `chosen`, `rejected`):", "", "```python",
                'dpo = dpo.map(lambda r: {"prompt": r["instruction"] + ("\\n" + r["input"] if r["input"] else "")})',
                "```", ""]
    return out


def dataset_card(build: BuildFacts, params: dict[str, Any], provenance: dict, llm: dict | None) -> str:
    """The card: YAML header (card_data) and a body with licence, counts, pairs, files and how to load them."""
    c = build.counts
    used = [s for s in ("manual", "evol", "translated") if c["source"].get(s)]
    lic_rows = []
    for s in used:
        p = provenance.get(s, {})
        lic_rows.append([s, c["source"][s], p.get("origin", "?"), p.get("revision", "?"), p.get("licence", "?")])
    nc = non_commercial(build.licence)
    decider = provenance.get(build.licence_source, {})
    parts = [
        f"# {build.name} — Chinese Values Alignment Dataset (version {build.version})",
        "",
        "Instruction data for values alignment of Chinese LLMs. Each record in `vad.json` has exactly the five "
        "attributes `instruction`, `input`, `output`, `source` (manual | evol | translated) and `categorization` "
        "(`level` person / social / nation and one of that level's four core values).",
        "",
        "## Licence",
        "",
        f"Licence of this build: **{build.licence}**. "
        + (f"**Non-commercial.** This build contains `{build.licence_source}` records derived from "
           f"{decider.get('origin', '?')}, which is licensed {decider.get('licence', '?')}; those records, and this "
           "dataset as a whole, may be used for non-commercial purposes only, with attribution. "
           if nc else "No non-commercial material is included in this build. ")
        + "Licences of every contributing source:",
        "",
        markdown_table(["source", "records", "origin", "revision", "licence"], lic_rows),
        "",
        "## Counts",
        "",
        markdown_table(["source", "records"], [[k, v] for k, v in c["source"].items()] + [["**total**", c["total"]]]),
        "",
        markdown_table(["level", "value", "records"],
               [[f"{lvl} {LEVEL_ZH[lvl]}", v, c["value"][f"{lvl}/{v}"]] for lvl, vals in LEVELS.items() for v in vals]),
        "",
        "## Preference pairs",
        "",
        (f"`{layout.DPO_JSON}` / `{layout.DPO_PARQUET}`, pairs: {build.pairs} ("
         + ", ".join(f"{k} {v}" for k, v in build.pair_sources.items())
         + f"), with the columns {', '.join(f'`{f}`' for f in layout.DPO_FIELDS)}: every exported record that has "
           "a rejected answer (the translated rejected response of a SafeRLHF pair); `chosen` is the record's "
           "`output`." if build.pairs else
         f"This build has no preference pairs (no exported record has a rejected answer: they come from translated "
         f"SafeRLHF pairs); `{layout.DPO_JSON}` is an empty array and the `dpo` config appears when there are pairs."),
        "",
        *_how_to_load(build),
        "## Files",
        "",
        markdown_table(["file", "what"], [
            [f"`{layout.SFT_JSON}`", "the SFT set, a JSON array"], [f"`{layout.SFT_PARQUET}`", "the same, parquet"],
            [f"`{layout.DPO_JSON}`, `{layout.DPO_PARQUET}`", "the preference pairs"],
            [f"`{layout.LLAMAFACTORY}`", "LLaMA-Factory registration"],
            [f"`{layout.LINEAGE}`", "per exported row: raw file and line, parents, operations, IFD figures"],
            [f"`{layout.LEDGER}`", "an index of every dropped record: " + ", ".join(layout.LEDGER_INDEX)],
            [f"`{layout.RECORDS}`", "the full records, meta included"],
            [f"`{layout.REPORT_HTML}`, `{layout.REPORT_MD}`", "the build report (charts / text)"],
            [f"`{layout.FUNNEL}`", "records in / out / ledgered per stage (plot data)"]]),
        "",
        "## How it was built",
        "",
        "`dvc repro` of the vad pipeline: ingest → seeds / select_pairs → evolve / translate (LLM) → merge "
        "(language check, exact and MinHash near-duplicate removal) → ifd_score → ifd_select → review → export. "
        f"Every dropped record is indexed in `{layout.LEDGER}` with its stage and reason; `{layout.LINEAGE}` has, row "
        "for row, the raw file and line, parents and operations of each exported record.",
        "",
    ]
    if llm:
        parts += ["LLM used for generation: `" + json.dumps(llm, ensure_ascii=False) + "`", ""]
    parts += ["## Parameters", "", "```json", json.dumps(params, ensure_ascii=False, indent=2), "```", ""]
    return f"---\n{card_data(build).to_yaml()}\n---\n\n" + "\n".join(parts)
