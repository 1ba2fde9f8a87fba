"""What build/export/ holds: the name of every file, the columns of its two datasets and of the ledger index.

One place for them: the writers (export), the dataset card and its `configs`, the LLaMA-Factory registration
(card) and the build report take them from here, so a renamed file or column cannot drift between them."""
from __future__ import annotations

from vad.core.record import EXPORT_FIELDS

# The SFT set: a JSON array (what LLaMA-Factory and most scripts read) and the same rows as parquet (the hub
# config: typed, and what `datasets.load_dataset(folder)` reads).
SFT_JSON, SFT_PARQUET = "vad.json", "vad.parquet"
SFT_FIELDS = EXPORT_FIELDS
# Preference pairs: every exported record that has a rejected answer.
DPO_JSON, DPO_PARQUET = "vad_dpo.json", "vad_dpo.parquet"
DPO_FIELDS = ("instruction", "input", "chosen", "rejected", "source", "categorization")
# Where a record keeps its rejected answer (vad.generate.translate writes it for SafeRLHF pairs; any later source
# with pairs puts its rejected answer under the same key and is exported as pairs with no other change).
REJECTED_META = "rejected_zh"

RECORDS = "records.jsonl"          # the full records, meta included
LINEAGE = "lineage.jsonl"          # one row per exported record: raw origin, parents, ops, IFD figures
LEDGER = "ledger.jsonl"            # a lean index of every drop of every stage (the stage ledgers hold the records)
LEDGER_INDEX = ("stage", "id", "reason", "detail", "dup_of", "source", "origin")  # its columns: no record body
CARD = "README.md"                 # the dataset card, YAML header for the hub
LLAMAFACTORY = "dataset_info.json"  # LLaMA-Factory's registration of the SFT set and the pairs
FUNNEL = "funnel.csv"              # records in / out / ledgered per stage (plot data for `dvc plots`)
REPORT_MD = "report.md"            # the build report as text (terminals, SSH sessions)
REPORT_HTML = "report.html"        # the build report with charts, one self-contained file

FILES = (SFT_JSON, SFT_PARQUET, DPO_JSON, DPO_PARQUET, RECORDS, LINEAGE, LEDGER, CARD, LLAMAFACTORY, FUNNEL,
         REPORT_MD, REPORT_HTML)
