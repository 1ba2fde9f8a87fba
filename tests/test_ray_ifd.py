"""`ifd.executor: ray`: the ifd_score stage on a local Ray instance with two CPU actors gives the local executor's
scores per record, in the same order, and writes them into the same per-record score cache.

fp32 so that the comparison is about the executor: the chunks (and so the batches) are the same on both, and in
fp32 a different thread count moves a loss by ~1e-7 at most."""
import json
import re
from pathlib import Path

import pytest

from conftest import ROOT
from support.ifd_samples import SAMPLES, sample_record
from vad.core.stage import run_script

pytestmark = pytest.mark.slow  # starts Ray and two actors that each load the model (~1 min on 2 cores)


def set_ifd(project: Path, **kv) -> None:
    """Set keys of the `ifd:` section of the project's params.yaml (comments kept)."""
    p = project / "params.yaml"
    text = p.read_text(encoding="utf-8")
    start = text.index("\nifd:\n")
    end = text.index("\n\n", start + 1)
    block = text[start:end]
    for k, v in kv.items():
        block, n = re.subn(rf"^(  {k}:) [^#\n]*?(\s*(#.*)?)$", rf"\g<1> {v}\g<2>", block, count=1, flags=re.M)
        assert n == 1, k
    p.write_text(text[:start] + block + text[end:], encoding="utf-8")


def run_stage():
    from vad.core.io import read_records

    run_script(ROOT / "stages" / "ifd_score.py")
    return (read_records("build/ifd/scored.jsonl"),
            json.loads(Path("build/metrics/ifd_score.json").read_text(encoding="utf-8")))


def test_ray_executor_gives_the_local_scores(mini_project, monkeypatch, tmp_path):
    from vad.core.io import write_jsonl
    from vad.quality.ifd import encode
    from vad.quality.ifd.cache import default_path

    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local instance, started and shut down by the stage
    monkeypatch.setattr(encode, "CHUNK_RECORDS", 3)  # 9 records → 3 chunks, so both actors get work
    recs = [sample_record(*s) for s in SAMPLES[:9]] + [sample_record("没有回答", "", " ")]
    write_jsonl("build/merge/merged.jsonl", recs)
    set_ifd(mini_project, dtype="float32", max_length=96, executor="ray", ray_actors=2)
    ray_scored, m = run_stage()
    assert m["ifd_compute"]["executor"] == "ray" and m["ifd_compute"]["ray_actors"] == 2
    assert m["ifd_compute"]["ray_actor_cpus"] == 1 and m["ifd_compute"]["dtype"] == "float32"
    assert m["ifd_compute"]["ray_actors_used"] == 2  # both actors scored chunks
    assert m["scored"] == 9 and m["ledgered"] == 1 and m["dropped_by_reason"] == {"ifd_empty_answer": 1}
    assert m["forward_batches"] >= 3 and m["tokens"] > 0  # the actors' counts reach the driver

    ray_cache = default_path()
    monkeypatch.setenv("VAD_CACHE_DIR", str(tmp_path / "local-cache"))  # the local executor from scratch
    set_ifd(mini_project, executor="local")
    local_scored, m2 = run_stage()
    assert m2["ifd_compute"]["executor"] == "local" and m2["scored"] == 9 and m2["cache_hits"] == 0
    assert [r.id for r in ray_scored] == [r.id for r in local_scored]  # the same output order
    for a, b in zip(ray_scored, local_scored):
        fa, fb = a.meta["ifd"], b.meta["ifd"]
        for k in ("loss_cond", "loss_direct", "ifd", "ifd_ppl"):
            assert abs(fa[k] - fb[k]) <= 1e-5, (a.id, k, fa[k], fb[k])
        assert (fa["n_answer_tokens"], fa["truncated"], fa["fingerprint"], fa["dtype"], fa["device"]) == \
            (fb["n_answer_tokens"], fb["truncated"], fb["fingerprint"], fb["dtype"], fb["device"])

    # the Ray run wrote the same per-record cache: the local executor finds every score there
    monkeypatch.setenv("VAD_CACHE_DIR", str(ray_cache.parent))
    again, m3 = run_stage()
    assert m3["cache_hits"] == 9 and m3["scored"] == 0 and m3["forward_batches"] == 0
    assert [r.meta["ifd"] for r in again] == [r.meta["ifd"] for r in ray_scored]


def test_errors_on_the_cluster_are_one_line(mini_project, monkeypatch):
    """What goes wrong on the cluster reaches the user as vad's one-line error, not Ray's traceback: here the
    model folder does not exist where the actors run (a bad param: it names its key)."""
    from vad.core.config import ParamsError
    from vad.core.io import write_jsonl

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    write_jsonl("build/merge/merged.jsonl", [sample_record(*SAMPLES[0])])
    set_ifd(mini_project, model="/nowhere/model", executor="ray", ray_actors=1)
    with pytest.raises(ParamsError) as e:
        run_stage()
    assert "\n" not in str(e.value)
    assert re.fullmatch(r"params.yaml:\d+: ifd.model: '/nowhere/model' is neither 'gemma3-270m' nor an existing "
                        r"local path .*", str(e.value)), str(e.value)
