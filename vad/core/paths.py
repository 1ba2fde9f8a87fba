"""Where things live: every corpus, ledger, metrics file and cache, named once.

Paths are relative to the project root (the folder holding dvc.yaml); stages run there. Raw data is under
`data/` (tracked by data.dvc), everything a stage writes under `build/` (DVC outputs, in the DVC cache)."""
from __future__ import annotations

import os
from pathlib import Path

# --- raw sources (data/, `dvc add`-ed as one folder) -------------------------------------------------------
RAW_MANUAL = "data/raw/manual"        # hand-written values instructions (ours)
RAW_CVALUES = "data/raw/cvalues"      # CValues responsibility prompts (Evol-Instruct seeds)
RAW_SAFERLHF = "data/raw/saferlhf"    # PKU-SafeRLHF pairs
RAW_EVAL = "data/raw/eval"            # two-choice evaluation items
PROVENANCE = "PROVENANCE.json"        # in every raw folder: origin, revision, licence, sha256 per file

# --- corpora, in pipeline order ----------------------------------------------------------------------------
MANUAL = "build/ingest/manual.jsonl"
SEEDS = "build/seeds/seeds.jsonl"
PAIRS = "build/select/pairs.jsonl"
EVOL = "build/evolve/evol.jsonl"
TRANSLATED = "build/translate/translated.jsonl"
MERGED = "build/merge/merged.jsonl"
SCORED = "build/ifd/scored.jsonl"
SELECTED = "build/ifd/selected.jsonl"
IFD_HIST = "build/ifd/ifd_hist.csv"
CATEGORIZER = "build/categorizer/model.pkl"   # the offline categorizer the categorize_train stage fits
JUDGED = "build/judge/judged.jsonl"           # selected records, machine-made ones categorized and judged
REVIEWED = "build/review/reviewed.jsonl"
EXPORT_DIR = "build/export"
EVAL_RESULTS = "build/eval/results.jsonl"

# --- hand-made inputs tracked by git (not data/: every change would rewrite data.dvc) ----------------------
EXPECTATIONS = "expectations"         # great-expectations suites
# Human review: the decision log is the audit trail (one appended line per decision, merged by git with
# merge=union, see .gitattributes), next to the versioned guidelines the reviewers follow.
REVIEW_DECISIONS = "review/decisions.jsonl"
REVIEW_GUIDELINES = "review/guidelines.md"
# Optional LLM judge suggestions for reviewers (`vad review suggest`); advisory, never read by a stage.
REVIEW_SUGGESTIONS = "build/suggest/suggestions.jsonl"


LEDGER_DIR = "build/ledger"
METRICS_DIR = "build/metrics"


def ledger(stage: str) -> str:
    """The stage's ledger: every record it did not pass on, with a reason."""
    return f"{LEDGER_DIR}/{stage}.jsonl"


def metrics(stage: str) -> str:
    return f"{METRICS_DIR}/{stage}.json"


def raw_provenance(folder: str) -> str:
    return f"{folder}/{PROVENANCE}"


def project_root(start: Path | None = None) -> Path:
    p = (start or Path.cwd()).resolve()
    for cand in (p, *p.parents):
        if (cand / "dvc.yaml").exists():
            return cand
    return p


def _outside_dvc_tmp(root: Path) -> Path:
    # `dvc exp run --queue/--temp` runs in <project>/.dvc/tmp/exps/<tmp>/: share the project's caches so an
    # experiment does not re-prepare models, re-pay LLM calls or re-score IFD.
    if ".dvc" in root.parts:
        return Path(*root.parts[: root.parts.index(".dvc")])
    return root


def cache_dir() -> Path:
    """State that must survive `dvc repro --force`: the LLM request cache and the IFD score cache.

    Not DVC outputs (DVC deletes outputs before rerunning a stage). `VAD_CACHE_DIR` moves it (tests use a fresh
    folder each)."""
    env = os.environ.get("VAD_CACHE_DIR")
    d = Path(env) if env else _outside_dvc_tmp(project_root()) / "build" / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def model_dir() -> Path:
    """Models prepared from packages (a pure function of the package: safe to share between projects and tests).
    `VAD_MODEL_DIR` moves it; by default it sits in the cache folder."""
    env = os.environ.get("VAD_MODEL_DIR")
    d = Path(env) if env else _outside_dvc_tmp(project_root()) / "build" / "cache" / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d
