"""Training the offline categorizer (the categorize_train stage): examples, cross-validation, the model file."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vad.core.io import write_json
from vad.core.record import Record
from vad.judge.categorizer import Categorizer, Example, cross_validate, label_of, text_of
from vad.judge.reviewed import settled
from vad.review.log import read_log


def examples(manual: list[Record], selected: list[Record], decisions: list) -> list[Example]:
    """Hand-written records with their own category; machine-made ones with the category reviewers settled
    (and the table default they arrived with, for the domain-table baseline)."""
    out = [Example(text_of(r), label_of(r.categorization), r.source) for r in manual]
    by_id = {r.id: r for r in selected}
    for rid, s in settled(selected, decisions).items():
        rec = by_id[rid]
        out.append(Example(text_of(rec), label_of(s.final), rec.source, table=label_of(rec.categorization)))
    return out


def train(manual: list[Record], selected: list[Record], decisions_path: str | Path, params: Any,
          model_path: str | Path, metrics_path: str | Path) -> dict[str, Any]:
    """params: the stage's view (categorize, review.reasons). Writes the model and the metrics; returns these."""
    t0 = time.monotonic()
    decisions = read_log(decisions_path, dict(params.review.reasons))
    ex = examples(manual, selected, decisions)
    cv = cross_validate(ex, params.categorize.folds, params.categorize.seed)
    model = Categorizer.train(ex, params.categorize.seed)
    model.save(Path(model_path))
    metrics = {**model.meta, "cross_validation": cv, "seconds": round(time.monotonic() - t0, 2)}
    write_json(Path(metrics_path), metrics)
    return metrics
