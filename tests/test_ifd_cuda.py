"""On a CUDA GPU (skipped without one): the IFD scorer against the CPU fp32 reference, and the local LLM backend and
the eval scorer running there."""
import pytest

pytestmark = [pytest.mark.slow]
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)

from support.ifd_samples import IFD_PARAMS, SAMPLES, spearman  # noqa: E402


def test_cuda_scorer_matches_the_cpu_fp32_reference():
    from vad.compute.models import load_causal_lm
    from vad.quality.ifd.reference import reference_score
    from vad.quality.ifd.types import IFDScore
    from vad.quality.ifd.scorer import IFDScorer
    from vad.quality.ifd.templates import get_template

    sc = IFDScorer.from_params(IFD_PARAMS.replace(device="cuda"), cache=False, progress=False)
    assert sc.compute.kind == "cuda" and sc.ctx.dtype.endswith("@cuda")
    assert sc.compute.dtype == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    got = sc.score(SAMPLES)
    assert sc.stats.forward_batches == 1  # 60 sequences: one batch under the GPU's token budget
    ref_lm = load_causal_lm(IFD_PARAMS.model, "float32", device="cpu")
    tpl = get_template(IFD_PARAMS.template)
    refs = [reference_score(ref_lm, tpl, *s, sc.max_length) for s in SAMPLES]
    for g, r in zip(got, refs):
        assert isinstance(g, IFDScore) and g.n_answer_tokens == len(r["answer_ids"])
        assert abs(g.ifd - r["ifd"]) <= 0.02, (g, r["ifd"])
    assert spearman([g.ifd for g in got], [r["ifd"] for r in refs]) >= 0.99


def test_local_llm_and_eval_scorer_run_on_cuda(tmp_path):
    from vad.core.config import LLMParams
    from vad.eval.prompts import CHOICES, build_prompt
    from vad.eval.scorer import ChoiceScorer
    from vad.llm import GenerationTask, load_template, make_client, run_tasks

    cfg = LLMParams(backend="local", device="cuda", max_new_tokens=8, batch_size=2, temperature=0.7)
    client = make_client(cfg, cache_path=tmp_path / "llm.sqlite")
    tmpl = load_template("_selftest")
    tasks = [GenerationTask(key=f"q{i}", prompt=tmpl.render(instruction=q, input=""), gen={})
             for i, q in enumerate(["什么是诚信？", "水在多少度时沸腾？"])]
    res = run_tasks(client, tasks, stage="gen", progress=False)
    assert all(r.ok for r in res) and client.describe()["device"] == "cuda"
    assert client.model_id().endswith("@cuda")  # GPU samples never share keys with the CPU's
    sc = ChoiceScorer(device="cuda")
    lp = sc.score([build_prompt("问题", "好的回复", "坏的回复")])
    assert sc.lm.compute.kind == "cuda" and len(lp[0]) == len(CHOICES) and all(v < 0 for v in lp[0])
