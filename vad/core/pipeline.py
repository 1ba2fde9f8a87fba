"""The pipelines and the order of their stages: the order of dvc.yaml, of the build report and of the ledger."""
DATASET = ("ingest_manual", "seeds", "select_pairs", "evolve", "translate", "merge", "ifd_score", "ifd_select",
           "categorize_train", "judge", "review", "export")
EVALUATION = ("evaluate",)
# Stages that pass no records on (no ledger, no funnel row): one fits a model, one evaluates one.
UNLEDGERED = ("categorize_train", "evaluate")
RECORD_STAGES = tuple(s for s in DATASET if s not in UNLEDGERED)
PIPELINES = {"": DATASET, "evaluation": EVALUATION}  # folder of the dvc.yaml → its stages
