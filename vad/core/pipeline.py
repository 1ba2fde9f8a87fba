"""The pipelines and the order of their stages: the order of dvc.yaml, of the build report and of the ledger."""
DATASET = ("ingest_manual", "seeds", "select_pairs", "evolve", "translate", "merge", "ifd_score", "ifd_select",
           "review", "export")
EVALUATION = ("evaluate",)
PIPELINES = {"": DATASET, "evaluation": EVALUATION}  # folder of the dvc.yaml → its stages
