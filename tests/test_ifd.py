"""IFD scorer against the literal reference (vad/quality/ifd/reference.py: bs=1, fp32, full logits, its own
tokenisation and truncation), sanity of the score, unscorable records, the score cache (cache before tokenising,
interrupted runs, other precisions), out-of-memory splitting, the stages. The samples (and the default IFD params)
are in tests/support/ifd_samples.py."""
import dataclasses
import json
import re
import math
from vad.core.stage import run_script
from pathlib import Path

import pytest

import vad.quality.ifd.kernel  # noqa: F401  (sets OMP_WAIT_POLICY=PASSIVE before torch loads, if it is first)
from conftest import ROOT
from support.ifd_samples import IFD_PARAMS, LONG, SAMPLES, WITH_INPUT, sample_record, spearman
from vad.quality.ifd.reference import reference_score
from vad.quality.ifd.templates import get_template

pytestmark = pytest.mark.slow  # loads the packaged model (~1 min in all on 2 cores)


# --- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scorer():
    from vad.quality.ifd.scorer import IFDScorer

    return IFDScorer.from_params(IFD_PARAMS, cache=False, progress=False)


@pytest.fixture(scope="module")
def ref_lm():
    from vad.compute.models import load_causal_lm

    return load_causal_lm(IFD_PARAMS.model, "float32")


# --- the scorer equals the definition -----------------------------------------------------------------------
def test_plan_truncation_rules():
    from vad.quality.ifd.encode import cut_middle, plan_truncation

    assert plan_truncation(10, 20, 5, 512) == (10, 20, False)
    # answer cut to what the whole prompt leaves
    assert plan_truncation(100, 500, 5, 512) == (100, 411, True)
    # prompt leaves less than the reserve (511 // 4 = 127): the prompt loses its middle instead
    assert plan_truncation(480, 300, 5, 512) == (511 - 127, 127, True)
    # reserve never exceeds the answer
    assert plan_truncation(600, 20, 5, 512) == (491, 20, True)
    # no room at all for the direct prefix + an answer token
    assert plan_truncation(10, 20, 5, 6)[1] == 0
    assert cut_middle(list(range(10)), 4) == [0, 1, 8, 9]


def test_batched_scorer_matches_reference(scorer, ref_lm):
    """Default settings (params.yaml: device and dtype auto — bf16 on a native-bf16 CPU —, batch 8 on the CPU,
    max_length 512) vs bs=1 fp32 full logits."""
    from vad.quality.ifd.types import IFDScore
    from vad.quality.ifd.encode import encode_many

    tpl = get_template(IFD_PARAMS.template)
    got = scorer.score(SAMPLES)
    enc = encode_many(scorer.kernel.tokenizer, tpl, SAMPLES, scorer.max_length)
    assert scorer.stats.scored == len(SAMPLES) and scorer.stats.forward_batches >= 2 * len(SAMPLES) / 8
    refs = [reference_score(ref_lm, tpl, *s, scorer.max_length) for s in SAMPLES]
    for i, (g, e, r) in enumerate(zip(got, enc, refs)):
        assert isinstance(g, IFDScore), (i, g)
        assert e.answer_ids == r["answer_ids"] and e.direct_ids[e.direct_start:] == r["answer_ids"], i
        assert g.n_answer_tokens == len(r["answer_ids"]) and g.truncated == r["truncated"] is False
        assert abs(g.ifd - r["ifd"]) <= 0.02, (i, g.ifd, r["ifd"])
        assert abs(g.loss_cond - r["loss_cond"]) <= 0.1 and abs(g.loss_direct - r["loss_direct"]) <= 0.1, i
    rho = spearman([g.ifd for g in got], [r["ifd"] for r in refs])
    assert rho >= 0.99, rho


def test_truncation_and_input_match_reference(ref_lm):
    """A small max_length: the long record is truncated (answer cut, then the prompt's middle) identically."""
    from vad.quality.ifd.scorer import IFDScorer
    from vad.quality.ifd.encode import encode_many

    idx = [LONG, WITH_INPUT, 0, 5]
    items = [SAMPLES[i] for i in idx]
    tpl = get_template(IFD_PARAMS.template)
    for max_length in (96, 48):
        sc = IFDScorer.from_params(IFD_PARAMS.replace(max_length=max_length), cache=False, progress=False)
        got = sc.score(items)
        enc = encode_many(sc.kernel.tokenizer, tpl, items, max_length)
        refs = [reference_score(ref_lm, tpl, *s, max_length) for s in items]
        assert got[0].truncated and refs[0]["truncated"]
        for g, e, r in zip(got, enc, refs):
            assert e.answer_ids == r["answer_ids"] and g.truncated == r["truncated"]
            assert len(e.cond_ids) <= max_length and len(e.direct_ids) <= max_length
            assert abs(g.ifd - r["ifd"]) <= 0.02, (max_length, g, r["ifd"])
    assert got[0].n_answer_tokens == (48 - 1) // 4  # at 48 the prompt alone overflows: the answer keeps the reserve


def test_mismatched_instructions_raise_ifd(scorer):
    n = 12
    matched = scorer.score(SAMPLES[:n])
    shuffled = [(SAMPLES[i][0], SAMPLES[i][1], SAMPLES[(i + 5) % n][2]) for i in range(n)]
    mism = scorer.score(shuffled)
    m1 = sum(s.ifd for s in matched) / n
    m2 = sum(s.ifd for s in mism) / n
    assert m2 > m1 + 0.03, (m1, m2)
    assert sum(b.ifd > a.ifd for a, b in zip(matched, mism)) >= 0.75 * n


# --- unscorable records: ledgered with a reason, never a 0 ---------------------------------------------------
def test_unscorable_records_are_ledgered(scorer, tmp_path, monkeypatch):
    from vad.quality.ifd.scorer import IFDScorer
    from vad.quality.ifd_score import score_records
    from vad.core.ledger import StageRun

    run = StageRun("ifd_score", root=tmp_path)
    recs = run.take([sample_record(*SAMPLES[1]), sample_record("说点什么", "", "   \n"), sample_record("空回答", "", "")])
    kept, m = score_records(recs, IFD_PARAMS, run, scorer=scorer)
    assert [r.id for r in kept] == [recs[0].id] and kept[0].meta["ifd"]["ifd"] > 0
    assert [(e["id"], e["reason"]) for e in run.entries] == [(recs[1].id, "ifd_empty_answer"),
                                                             (recs[2].id, "ifd_empty_answer")]
    # max_length too small for any answer token after BOS + "### 回答：\n"
    tiny = IFDScorer.from_params(IFD_PARAMS.replace(max_length=6), cache=False, progress=False)
    run2 = StageRun("ifd_score", root=tmp_path)
    kept2, _ = score_records(run2.take([sample_record(*SAMPLES[0])]), IFD_PARAMS, run2, scorer=tiny)
    assert kept2 == [] and run2.entries[0]["reason"] == "ifd_no_answer_tokens"
    assert tiny.stats.forward_batches == 0
    # a non-finite loss (forced): ledgered, and not cached
    import torch

    from vad.quality.ifd.cache import IFDCache

    cache = IFDCache(tmp_path / "c.sqlite")
    sc = IFDScorer.from_params(IFD_PARAMS, cache=cache, progress=False)
    real = sc.kernel._batch_losses
    monkeypatch.setattr(sc.kernel, "_batch_losses", lambda batch: torch.full((len(batch),), math.nan, dtype=torch.float64))
    run3 = StageRun("ifd_score", root=tmp_path)
    kept3, _ = score_records(run3.take([sample_record(*SAMPLES[4])]), IFD_PARAMS, run3, scorer=sc)
    assert kept3 == [] and run3.entries[0]["reason"] == "ifd_nonfinite" and len(cache) == 0
    monkeypatch.setattr(sc.kernel, "_batch_losses", real)
    for r, k in ((run, kept), (run2, kept2), (run3, kept3)):
        r.finish({"out.jsonl": k})  # the books balance


# --- the score cache ----------------------------------------------------------------------------------------
def test_cache_scores_only_new_records(tmp_path):
    from vad.quality.ifd.scorer import IFDScorer
    from vad.quality.ifd_score import score_fields
    from vad.quality.ifd.cache import IFDCache

    cache = IFDCache(tmp_path / "ifd.sqlite")
    sc = IFDScorer.from_params(IFD_PARAMS, cache=cache, progress=False)
    items = SAMPLES[10:15]
    first = sc.score(items)
    assert sc.stats.scored == 5 and sc.stats.cache_hits == 0 and len(cache) == 5
    again = sc.score(items)
    assert sc.stats.forward_batches == 0 and sc.stats.scored == 0 and sc.stats.cache_hits == 5
    dump = lambda rs: [json.dumps(score_fields(r, sc), ensure_ascii=False) for r in rs]  # noqa: E731
    assert dump(first) == dump(again)  # byte-identical, fresh or cached
    more = sc.score(items + SAMPLES[15:17])
    assert sc.stats.scored == 2 and sc.stats.cache_hits == 5 and 0 < sc.stats.forward_batches <= 1
    assert dump(more[:5]) == dump(first)
    # a different template or max_length is a different key
    sc2 = IFDScorer.from_params(IFD_PARAMS.replace(template="superfiltering_v1"), cache=cache, progress=False)
    sc2.score(items[:1])
    assert sc2.stats.scored == 1
    # so is another precision: a scorer in the other of bf16/fp32 never reuses these scores (nor the reverse)
    assert sc.ctx.dtype == f"{sc.compute.dtype}/head-{sc.compute.dtype}"
    other = "float32" if sc.compute.dtype == "bfloat16" else "bfloat16"
    sc3 = IFDScorer.from_params(IFD_PARAMS.replace(dtype=other), cache=cache, progress=False)
    assert sc3.ctx.dtype == f"{other}/head-{other}"
    again3 = sc3.score(items[:1])
    assert sc3.stats.scored == 1 and sc3.stats.cache_hits == 0
    assert abs(again3[0].ifd - first[0].ifd) <= 0.02  # bf16 body and head stay close to fp32


def test_fully_cached_run_neither_tokenises_nor_loads(tmp_path, monkeypatch):
    """The cache is looked up by the sha of the texts before anything is tokenised: a run whose records are all
    cached tokenises nothing and never loads the model (a 30k run used to tokenise everything: +1.15 GB, 21 s)."""
    from vad.quality.ifd import kernel
    from vad.quality.ifd.cache import IFDCache
    from vad.quality.ifd.scorer import IFDScorer

    cache = IFDCache(tmp_path / "ifd.sqlite")
    items = SAMPLES[:3] + [("空回答", "", " ")]
    first = IFDScorer.from_params(IFD_PARAMS, cache=cache, progress=False).score(items)
    monkeypatch.setattr(kernel, "encode_many", lambda *a, **k: pytest.fail("tokenised a cached record"))
    monkeypatch.setattr(kernel.Kernel, "tokenizer", property(lambda self: pytest.fail("loaded the tokenizer")))
    sc = IFDScorer.from_params(IFD_PARAMS, cache=cache, progress=False)
    again = sc.score(items)
    assert sc.kernel._lm is None and sc.stats.cache_hits == 3 and sc.stats.forward_batches == 0
    assert again[:3] == [dataclasses.replace(r, cached=True) for r in first[:3]]
    assert again[3].reason == "ifd_empty_answer"


def test_interrupted_run_keeps_finished_work(tmp_path, monkeypatch):
    """Killed in the middle, a run has already saved every finished record and, for records with one sequence done,
    that sequence (ifd_partial); the rerun computes only what is missing. Checked when the 3rd batch starts, from
    another connection — what a `kill -9` would leave — and then after a Ctrl-C there."""
    from vad.quality.ifd.cache import IFDCache
    from vad.quality.ifd.scorer import IFDScorer
    from vad.quality.ifd.encode import encode_many

    params = IFD_PARAMS.replace(max_length=64)
    items = SAMPLES[:10]
    cache = IFDCache(tmp_path / "ifd.sqlite")
    sc = IFDScorer.from_params(params, cache=cache, progress=False)
    real, calls = sc.kernel._batch_losses, []

    seen_by_others = []

    def dies_in_batch_3(batch):
        calls.append(sum(len(ids) for ids, _ in batch))
        if len(calls) == 3:
            other = IFDCache(cache.path)  # as a new process would see it
            seen_by_others.append(2 * len(other) + other.partial_count())
            raise KeyboardInterrupt
        return real(batch)

    monkeypatch.setattr(sc.kernel, "_batch_losses", dies_in_batch_3)
    with pytest.raises(KeyboardInterrupt):
        sc.score(items)
    done_tokens = sum(calls[:2])
    whole, partial = len(cache), cache.partial_count()
    assert partial > 0 and whole + partial > 0  # 16 finished sequences: the short direct ones and some records
    assert 2 * whole + partial == 16  # every finished sequence is kept, as a whole score or a partial one
    assert seen_by_others == [16]  # ... and was committed before the next batch began
    monkeypatch.setattr(sc.kernel, "_batch_losses", real)
    resumed = sc.score(items)
    assert sc.stats.cache_hits == whole and sc.stats.scored == len(items) - whole
    total = sum(len(e.cond_ids) + len(e.direct_ids) for e in encode_many(sc.kernel.tokenizer, sc.template, items, 64))
    assert sc.stats.tokens == total - done_tokens  # nothing finished was computed again
    assert len(cache) == len(items) and cache.partial_count() == 0
    fresh = IFDScorer.from_params(params, cache=False, progress=False).score(items)
    for a, b in zip(resumed, fresh):  # resumed batches differ in composition: bf16 rounding only
        assert abs(a.ifd - b.ifd) <= 0.01 and a.n_answer_tokens == b.n_answer_tokens


def test_out_of_memory_splits_the_batch_or_names_the_param(tmp_path, monkeypatch):
    """An out-of-memory (what a GPU raises) splits the batch in halves until it fits; a single sequence that does
    not fit is a one-line error naming ifd.max_length, and what finished before it is in the cache."""
    import torch

    from vad.quality.ifd.cache import IFDCache
    from vad.quality.ifd.types import IFDOutOfMemory
    from vad.quality.ifd.scorer import IFDScorer

    params = IFD_PARAMS.replace(max_length=64, dtype="float32")  # fp32: splitting cannot move a score
    items = SAMPLES[:6]
    want = IFDScorer.from_params(params, cache=False, progress=False).score(items)
    sc = IFDScorer.from_params(params, cache=IFDCache(tmp_path / "a.sqlite"), progress=False)
    real, sizes = sc.kernel._batch_losses, []

    def small_memory(batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(batch)

    monkeypatch.setattr(sc.kernel, "_batch_losses", small_memory)
    got = sc.score(items)
    assert sizes == [8, 4, 2, 2, 4, 2, 2, 4, 2, 2] and sc.stats.oom_splits == 4  # 12 sequences: 8 + 4
    assert all(abs(g.ifd - w.ifd) <= 1e-5 for g, w in zip(got, want))
    # nothing fits: the first sequence fails, with the param to lower
    cache = IFDCache(tmp_path / "b.sqlite")
    sc2 = IFDScorer.from_params(params, cache=cache, progress=False)
    real2, seen = sc2.kernel._batch_losses, []

    def tiny_memory(batch):
        seen.append(len(batch))
        if len(seen) > 1:  # the first batch of 8 is fine; then even one sequence is too much
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real2(batch)

    monkeypatch.setattr(sc2.kernel, "_batch_losses", tiny_memory)
    with pytest.raises(IFDOutOfMemory, match=r"does not fit in memory on cpu: lower ifd.max_length"):
        sc2.score(items)
    assert cache.partial_count() + len(cache) > 0  # the batch that fitted is saved


# --- the stages and the CLI function ------------------------------------------------------------------------
@pytest.fixture
def ifd_project(mini_project):
    """The mini project (its own caches, conftest.own_caches; the shared prepared model)."""
    return mini_project


def test_stages_end_to_end(ifd_project):
    from vad.core.io import read_records, write_jsonl

    recs = [sample_record(*s, source=src) for s, src in zip(SAMPLES[:6], ["manual", "evol", "translated"] * 2)]
    recs.append(sample_record("没有回答的问题", "", " "))
    write_jsonl("build/merge/merged.jsonl", recs)
    run_script(ROOT / "stages" / "ifd_score.py")
    scored = read_records("build/ifd/scored.jsonl")
    m = json.loads(Path("build/metrics/ifd_score.json").read_text())
    assert len(scored) == 6 and m["scored"] == 6 and m["cache_hits"] == 0 and m["ledgered"] == 1
    assert m["tokens_per_s"] > 0 and m["dropped_by_reason"] == {"ifd_empty_answer": 1}
    f = scored[0].meta["ifd"]
    assert set(f) >= {"loss_cond", "loss_direct", "ifd", "ifd_ppl", "n_answer_tokens", "truncated", "model",
                      "fingerprint", "template"}
    assert f["template"] == "alpaca_zh_v1@1" and f["ifd"] == round(f["loss_cond"] / f["loss_direct"], 6)
    # what `auto` resolved to: in each record's lineage figures (device kind, dtype) and, with why, in the metrics
    import torch

    kind = "cuda" if torch.cuda.is_available() else "cpu"
    c = m["ifd_compute"]
    assert (f["device"], f["dtype"]) == (kind, c["dtype"]) == (kind, m["ifd_dtype"]) and c["device"].startswith(kind)
    assert "dtype auto: " in c["why"] and c["executor"] == "local"
    assert c["batch_size"] == {"cpu": 8, "cuda": 1024}[kind]
    first = Path("build/ifd/scored.jsonl").read_bytes()
    run_script(ROOT / "stages" / "ifd_score.py")
    m = json.loads(Path("build/metrics/ifd_score.json").read_text())
    assert m["scored"] == 0 and m["cache_hits"] == 6 and m["forward_batches"] == 0
    assert Path("build/ifd/scored.jsonl").read_bytes() == first

    ifds = sorted(r.meta["ifd"]["ifd"] for r in scored)
    p = ifd_project / "params.yaml"
    text = p.read_text(encoding="utf-8")
    text = re.sub(r"^  min: [0-9.]+ ", f"  min: {ifds[1]} ", text, count=1, flags=re.M)
    assert f"min: {ifds[1]}" in text
    p.write_text(text, encoding="utf-8")
    run_script(ROOT / "stages" / "ifd_select.py")
    sel = read_records("build/ifd/selected.jsonl")
    ms = json.loads(Path("build/metrics/ifd_select.json").read_text())
    assert ms["in"] == 6 and ms["out"] + ms["ledgered"] == 6
    assert all(r.lineage.ops[-1]["op"] == "ifd_select" and r.lineage.ops[-1]["ifd"] >= ifds[1] for r in sel)
    assert "kept_source_manual" in ms and "ifd_p50_source_evol" in ms
    assert Path("build/ifd/ifd_hist.csv").read_text().startswith("source,bin_lo,bin_hi,count\n")


def test_score_file_plain_rows(ifd_project):
    from vad.cli import score_file

    rows = [{"instruction": q, "input": x, "output": a} for q, x, a in SAMPLES[:3]]
    rows += [{"instruction": "空", "output": ""}, {"prompt": "not a record"}]
    Path("in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    summary = score_file("in.jsonl", "out.jsonl", IFD_PARAMS, progress=False)
    out = [json.loads(l) for l in Path("out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [o["line"] for o in out] == [1, 2, 3, 4, 5]
    assert all(0 < o["ifd"] for o in out[:3])
    assert out[3]["error"] == "ifd_empty_answer" and out[4]["error"] == "ifd_bad_row"
    assert summary["in"] == 5 and summary["ok"] == 3 and summary["errors"] == {"ifd_bad_row": 1, "ifd_empty_answer": 1}
