"""IFD selection: the band, the top share, conservation, ledger details, metrics keys, histogram (no model)."""
import csv
import json

import pytest

from vad.core.config import IFDParams, ParamsError
from vad.core.errors import InputError
from vad.quality.ifd_select import histogram_rows, quantiles, select, write_histogram
from vad.core.ledger import StageRun
from vad.core.record import Record

LEVELS = {"诚信": "person", "法治": "social", "和谐": "nation"}


def scored(values, sources=("manual", "evol", "translated")):
    recs = []
    for i, v in enumerate(values):
        value = list(LEVELS)[i % 3]
        r = Record(instruction=f"指令{i}", input="", output=f"回答{i}", source=sources[i % len(sources)],
                   categorization={"level": LEVELS[value], "value": value})
        r.meta["ifd"] = {"ifd": v, "loss_cond": v, "loss_direct": 1.0}
        recs.append(r)
    return recs


VALUES = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0, 1.3]


def run_select(tmp_path, values, **params):
    run = StageRun("ifd_select", root=tmp_path)
    recs = run.take(scored(values))
    kept, metrics = select(recs, IFDParams(**{"min": 0.2, "max": 1.0, "top_fraction": 1.0, **params}), run)
    m = run.finish({"selected.jsonl": kept}, **metrics)  # raises if in != out + ledgered
    return recs, kept, run.entries, m


def test_band(tmp_path):
    recs, kept, entries, m = run_select(tmp_path, VALUES)
    assert [r.meta["ifd"]["ifd"] for r in kept] == [0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
    reasons = {e["ifd"]: e["reason"] for e in entries}
    assert reasons == {0.05: "ifd_below_min", 0.15: "ifd_below_min", 1.0: "ifd_at_or_above_max",
                       1.3: "ifd_at_or_above_max"}
    assert all("ifd=" in e["detail"] for e in entries)
    assert m["in"] == 12 and m["out"] == 8 and m["ledgered"] == 4
    assert m["dropped_by_reason"] == {"ifd_at_or_above_max": 2, "ifd_below_min": 2}
    op = kept[0].lineage.ops[-1]
    assert op == {"stage": "ifd_select", "op": "ifd_select", "ifd": 0.25}


def test_top_fraction_keeps_highest_of_band(tmp_path):
    _recs, kept, entries, m = run_select(tmp_path, VALUES, top_fraction=0.5)
    assert sorted(r.meta["ifd"]["ifd"] for r in kept) == [0.65, 0.75, 0.85, 0.95]
    top = [e for e in entries if e["reason"] == "ifd_not_in_top_fraction"]
    assert sorted(e["ifd"] for e in top) == [0.25, 0.35, 0.45, 0.55]
    assert all(e["top_fraction"] == 0.5 for e in top)
    assert m["in_band"] == 8 and m["out"] + m["ledgered"] == m["in"] == 12
    # ties are broken by id: deterministic; output keeps input order
    recs2, kept2, _e, _m = run_select(tmp_path, [0.5] * 6, top_fraction=0.5)
    assert {r.id for r in kept2} == set(sorted(r.id for r in recs2)[:3])
    assert [r.id for r in kept2] == [r.id for r in recs2 if r.id in {k.id for k in kept2}]
    # nothing kept when the fraction rounds to zero, all kept at 1.0
    assert run_select(tmp_path, VALUES, top_fraction=0.1)[1] == []
    assert len(run_select(tmp_path, VALUES, top_fraction=1.0)[1]) == 8


def test_metric_keys_flat(tmp_path):
    _recs, _kept, _e, m = run_select(tmp_path, VALUES)
    for k in ("kept_source_manual", "dropped_source_manual", "kept_source_evol", "kept_source_translated",
              "kept_level_person", "dropped_level_nation", "kept_value_诚信", "dropped_value_法治",
              "ifd_p10_all", "ifd_p50_all", "ifd_p90_all", "ifd_p25_source_manual", "ifd_p75_source_evol"):
        assert k in m, k
    assert all(not isinstance(v, dict) for k, v in m.items() if k != "dropped_by_reason")
    assert sum(m[f"kept_source_{s}"] for s in ("manual", "evol", "translated")) == m["out"]
    assert sum(m[f"dropped_level_{lv}"] for lv in ("person", "social", "nation")) == m["ledgered"]
    assert m["ifd_p50_all"] == pytest.approx(0.6)
    json.dumps(m)


def test_quantiles_match_numpy():
    import numpy as np

    v = [0.3, 0.1, 0.7, 0.2, 0.9, 0.55]
    q = quantiles(v)
    assert list(q) == ["p10", "p25", "p50", "p75", "p90"]
    assert q["p25"] == pytest.approx(float(np.quantile(v, 0.25)))
    assert q["p90"] == pytest.approx(float(np.quantile(v, 0.9)))
    assert quantiles([]) == {}


def test_histogram(tmp_path):
    recs = scored(VALUES)
    rows = histogram_rows(recs)
    assert sum(r["count"] for r in rows) == len(recs)
    assert {r["source"] for r in rows} == {"manual", "evol", "translated"}
    n_bins = len([r for r in rows if r["source"] == "manual"])
    assert n_bins == len([r for r in rows if r["source"] == "evol"]) and rows[n_bins - 1]["bin_hi"] >= 1.3
    one = [r for r in rows if r["source"] == "evol" and r["bin_lo"] <= 1.0 < r["bin_hi"]]
    assert one[0]["count"] == 1  # 1.0 lands in [1.0, 1.05)
    write_histogram(tmp_path / "h.csv", rows)
    back = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert list(back[0]) == ["source", "bin_lo", "bin_hi", "count"] and len(back) == len(rows)


def test_missing_score_and_bad_params(tmp_path):
    run = StageRun("ifd_select", root=tmp_path)
    recs = scored([0.5])
    del recs[0].meta["ifd"]
    with pytest.raises(InputError, match="no meta.ifd"):
        select(recs, IFDParams(min=0.2), run)
    with pytest.raises(ParamsError, match=r"ifd\.top_fraction: input should be less than or equal to 1"):
        IFDParams.from_params({"top_fraction": 1.5})
    with pytest.raises(ParamsError, match=r"ifd\.min: 1\.0 must be below ifd\.max"):
        IFDParams.from_params({"min": 1.0, "max": 1.0})
