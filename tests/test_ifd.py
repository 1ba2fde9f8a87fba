"""IFD scorer against the literal reference (vad/quality/ifd/reference.py: bs=1, fp32, full logits, its own
tokenisation and truncation), sanity of the score, unscorable records, the score cache (cache before tokenising,
interrupted runs, other precisions), out-of-memory splitting, the stages."""
import dataclasses
import json
import re
import math
from vad.core.stage import run_script
from pathlib import Path

import pytest

import vad.quality.ifd.kernel  # noqa: F401  (sets OMP_WAIT_POLICY=PASSIVE before torch loads, if it is first)
from conftest import ROOT
from vad.quality.ifd.reference import reference_score
from vad.quality.ifd.templates import get_template
from vad.core.config import load_params

pytestmark = pytest.mark.slow  # loads the packaged model (~1 min in all on 2 cores)

IFD_PARAMS = load_params(ROOT / "params.yaml").ifd

# (instruction, input, output): values topics, factual, creative, rewriting, arithmetic; short and long answers.
SAMPLES = [
    ("请解释什么是诚信，并举一个日常生活中的例子。", "",
     "诚信是指诚实守信，说到做到。比如借了朋友的钱，按约定的时间归还，就是诚信的表现。"),
    ("中国的首都是哪里？", "", "中国的首都是北京。"),
    ("把下面这句话翻译成英文。", "我喜欢在周末和家人一起爬山。",
     "I like hiking in the mountains with my family on weekends."),
    ("写一首关于秋天的四行短诗。", "", "秋风轻拂稻花香，\n落叶金黄铺满廊。\n雁阵南飞声渐远，\n一轮明月照故乡。"),
    ("计算 15 乘以 4 等于多少？", "", "15 乘以 4 等于 60。"),
    ("同事经常把自己的工作推给我，我该怎么拒绝才不伤和气？", "",
     "可以先肯定同事的信任，再说明自己手头的任务和截止时间，明确表示这次无法接手。如果对方坚持，可以建议他和主管一起重新分配工作。"
     "拒绝的重点是对事不对人，语气平和、理由具体，这样既守住了边界，也不伤和气。"),
    ("为什么说“爱国”是公民的基本道德规范？", "",
     "爱国是个人对祖国的深厚感情，也是公民对国家应尽的责任。它体现在遵守法律、维护国家利益、传承优秀文化和努力工作等具体行动中。"
     "一个人热爱自己的国家，才会自觉把个人发展和国家发展联系在一起。"),
    ("列举三种节约用水的方法。", "", "1. 刷牙时关掉水龙头。\n2. 用洗菜水浇花。\n3. 及时修理漏水的水管。"),
    ("用一句话总结下面的段落。", "垃圾分类可以减少填埋量，提高资源回收率，还能降低焚烧带来的污染。许多城市已经把垃圾分类写进地方法规。",
     "垃圾分类能减少污染、提高资源利用，已被许多城市纳入法规。"),
    ("公交车上看到有人不给老人让座，我应该当面指出吗？", "",
     "可以先用温和的方式提醒，比如说“这位老人家站着不太方便，谁方便让一下”，而不是直接指责某个人。也可以自己主动让座，用行动带动别人。"
     "文明风气靠大家一起营造，提醒时注意语气，避免引发冲突。"),
    ("什么是“法治”？请用通俗的话解释。", "",
     "法治就是用法律来治理国家，所有人包括政府都要按照法律办事，法律面前人人平等，谁违法都要承担责任。"),
    ("给一家新开的面包店想一个店名，并说明理由。", "",
     "店名：“晨光麦香”。理由：面包店通常清晨开门，“晨光”给人温暖新鲜的感觉，“麦香”直接点出面包的香味，好记又亲切。"),
    ("我考试作弊被老师发现了，现在很后悔，应该怎么办？", "",
     "知错能改是很重要的品质。建议你主动找老师坦白，承认错误并接受相应的处理，不要找借口。之后认真复习，用真实的成绩证明自己。"
     "诚信比一次分数重要得多，这次教训会帮助你以后做出更好的选择。"),
    ("解释光合作用的基本过程。", "",
     "光合作用是绿色植物利用光能，把二氧化碳和水转化为储存能量的有机物（如葡萄糖），同时释放氧气的过程。它主要在叶绿体中进行，"
     "分为光反应和暗反应两个阶段。"),
    ("请把这段话改写得更正式一些。", "明天开会别迟到啊，老板会来。",
     "请各位准时参加明天的会议，公司领导将出席。"),
    ("有人说“只要结果好，过程不重要”，你怎么看？", "",
     "这种说法有失偏颇。过程决定了结果是否正当、能否持续。如果为了结果不择手段，可能损害他人利益，甚至违反法律。好的结果应当通过公平、"
     "诚实的过程取得，这样的成功才经得起检验。"),
    ("推荐三本适合中学生阅读的中文书。", "", "1.《骆驼祥子》\n2.《朝花夕拾》\n3.《平凡的世界》"),
    ("邻居家装修噪音很大，影响我休息，怎样沟通比较好？", "",
     "可以先上门友好沟通，说明自己受到的影响，询问装修大概还要多久，并商量避开午休和晚上的施工时间。如果沟通无效，可以请物业或社区协调。"
     "遇事多协商，邻里之间才能和睦相处。"),
    ("写一句鼓励高考考生的话。", "", "十年磨一剑，今朝试锋芒，愿你从容应考，不负韶华！"),
    ("为什么要保护野生动物？", "",
     "野生动物是生态系统的重要组成部分，它们维持着食物链和生态平衡。很多物种一旦灭绝就无法恢复。保护野生动物也是保护人类自己的生存环境。"),
    ("判断下面这句话的情感是积极还是消极。", "这家餐厅的服务太差了，等了一个小时才上菜。", "消极。"),
    ("在网上看到一条没有来源的爆炸性新闻，要不要转发？", "",
     "不建议马上转发。先查看是否有权威媒体或官方渠道发布，核实时间、地点和来源。未经核实就转发可能传播谣言，造成恐慌，甚至要承担法律责任。"
     "做一个理性的网民，从不信谣、不传谣开始。"),
    ("用简单的话解释什么是通货膨胀。", "",
     "通货膨胀就是物价普遍持续上涨，同样多的钱能买到的东西变少了。"),
    ("怎样培养孩子的责任感？", "",
     "可以从小事做起：让孩子承担适合年龄的家务，比如整理书包、照顾植物；答应的事要督促他做到；犯了错引导他面对后果而不是替他解决。"
     "家长自己也要言行一致，做出榜样。"),
    ("说出一个成语并解释它的意思。", "", "守株待兔：比喻不主动努力，而心存侥幸，希望得到意外的收获。"),
    ("一个人的价值应该如何衡量？", "",
     "一个人的价值不应只用金钱和地位来衡量，更在于他对家庭、社会和他人作出的贡献，以及他的品德和责任担当。平凡岗位上兢兢业业的人，同样值得尊重。"),
    ("请为社区写一条倡导垃圾分类的标语。", "", "垃圾分一分，环境美十分。"),
    ("公司要求加班但不给加班费，合法吗？", "",
     "一般不合法。根据《劳动法》，用人单位安排劳动者延长工作时间的，应当支付不低于工资百分之一百五十的加班费；休息日加班又不能安排补休的，"
     "支付不低于百分之二百的工资。遇到这种情况可以先与公司协商，协商不成可以向劳动监察部门投诉或申请劳动仲裁。"),
    ("如何看待志愿服务？", "",
     "志愿服务是奉献爱心、服务社会的重要方式，既帮助了有需要的人，也让参与者收获成长和快乐。它体现了友善互助的社会风尚，值得每个人在力所能及的范围内参与。"),
    # long enough to need truncation at a small max_length (and still fits 512)
    ("请详细谈谈当代青年应该如何理解和践行“敬业”这一价值观，可以结合不同职业举例说明。", "",
     "敬业是对自己所从事工作的尊重和投入，是社会主义核心价值观在个人层面的重要要求。对当代青年来说，理解敬业可以从三个方面入手。"
     "第一，敬业意味着责任。无论是医生、教师、快递员还是程序员，每一份工作都关系到他人的利益。医生认真对待每一次诊断，教师用心备好每一节课，"
     "快递员按时把包裹送到，程序员仔细测试每一行代码，这些都是敬业。第二，敬业意味着专业。青年人要不断学习新知识、新技能，精益求精，"
     "把简单的事情做好，把平凡的工作做出色。第三，敬业意味着坚持。工作中难免遇到挫折和枯燥的阶段，敬业的人不会轻易放弃，而是在坚持中积累经验、"
     "实现成长。同时，敬业并不等于无限加班、透支身体，合理安排工作和生活，保持良好的状态，才能长期做好工作。总之，青年人把个人理想融入本职工作，"
     "在平凡岗位上踏实肯干，就是在践行敬业。"),
]
LONG = len(SAMPLES) - 1
WITH_INPUT = 2


# --- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scorer():
    from vad.quality.ifd.scorer import IFDScorer

    return IFDScorer.from_params(IFD_PARAMS, cache=False, progress=False)


@pytest.fixture(scope="module")
def ref_lm():
    from vad.compute.models import load_causal_lm

    return load_causal_lm(IFD_PARAMS.model, "float32")


def spearman(a, b):
    from scipy.stats import spearmanr

    return spearmanr(a, b).statistic


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
def _rec(q, x, a, source="manual"):
    from vad.core.record import Record

    return Record(instruction=q, input=x, output=a, source=source, categorization={"level": "person", "value": "诚信"})


def test_unscorable_records_are_ledgered(scorer, tmp_path, monkeypatch):
    from vad.quality.ifd.scorer import IFDScorer
    from vad.quality.ifd_score import score_records
    from vad.core.ledger import StageRun

    run = StageRun("ifd_score", root=tmp_path)
    recs = run.take([_rec(*SAMPLES[1]), _rec("说点什么", "", "   \n"), _rec("空回答", "", "")])
    kept, m = score_records(recs, IFD_PARAMS, run, scorer=scorer)
    assert [r.id for r in kept] == [recs[0].id] and kept[0].meta["ifd"]["ifd"] > 0
    assert [(e["id"], e["reason"]) for e in run.entries] == [(recs[1].id, "ifd_empty_answer"),
                                                             (recs[2].id, "ifd_empty_answer")]
    # max_length too small for any answer token after BOS + "### 回答：\n"
    tiny = IFDScorer.from_params(IFD_PARAMS.replace(max_length=6), cache=False, progress=False)
    run2 = StageRun("ifd_score", root=tmp_path)
    kept2, _ = score_records(run2.take([_rec(*SAMPLES[0])]), IFD_PARAMS, run2, scorer=tiny)
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
    kept3, _ = score_records(run3.take([_rec(*SAMPLES[4])]), IFD_PARAMS, run3, scorer=sc)
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

    recs = [_rec(*s, source=src) for s, src in zip(SAMPLES[:6], ["manual", "evol", "translated"] * 2)]
    recs.append(_rec("没有回答的问题", "", " "))
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
