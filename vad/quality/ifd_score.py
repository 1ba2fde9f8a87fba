"""The ifd_score stage's logic: every record scored with IFD (vad/quality/ifd/: the definition, the scorer), its
score in `meta["ifd"]`; a record that cannot be scored is ledgered with the reason (ifd_empty_answer,
ifd_no_answer_tokens, ifd_nonfinite), never given a 0. Selecting by the scores is ifd_select's job."""
from __future__ import annotations

from typing import Any

from vad.quality.ifd.scorer import IFDScorer
from vad.quality.ifd.types import IFDError, IFDScore


def score_fields(s: IFDScore, scorer: IFDScorer) -> dict[str, Any]:
    """The `meta["ifd"]` dict of a scored record (and the row of `vad ifd`)."""
    d = scorer.describe()
    return {"loss_cond": s.loss_cond, "loss_direct": s.loss_direct, "ifd": s.ifd, "ifd_ppl": s.ifd_ppl,
            "n_answer_tokens": s.n_answer_tokens, "truncated": s.truncated, "model": d["model"],
            "fingerprint": d["fingerprint"], "template": d["template"], "max_length": d["max_length"],
            "dtype": d["dtype"], "device": d["device"]}


def score_records(records: list, params: Any, run=None, scorer: IFDScorer | None = None,
                  **scorer_kw: Any) -> tuple[list, dict[str, Any]]:
    """Score vad Records: kept ones get `meta["ifd"]`; unscorable ones are dropped into `run` (a StageRun)
    with their reason (or, without a run, returned nowhere — the caller must use a run in stages)."""
    own = scorer is None
    scorer = scorer or IFDScorer.from_params(params, **scorer_kw)
    try:
        results = scorer.score([(r.instruction, r.input, r.output) for r in records])
    finally:
        if own:
            scorer.close()
    kept = []
    for rec, res in zip(records, results):
        if isinstance(res, IFDError):
            if run is None:
                raise ValueError(f"record {rec.id} is not scorable ({res.reason}) and no StageRun was given")
            run.drop(rec, res.reason, res.detail)
        else:
            rec.meta["ifd"] = score_fields(res, scorer)
            kept.append(rec)
    return kept, {**scorer.stats.as_metrics(), **{f"ifd_{k}": v for k, v in scorer.describe().items()},
                  **scorer.compute_metrics()}
