"""Near-duplicate signatures (vad.quality.dedup.Signer): MinHash estimates of the character n-gram Jaccard."""
import random

import numpy as np

from vad.core.record import normalise
from vad.quality.dedup import Signer

HAN = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]


def grams(text: str, n: int = 3) -> set[str]:
    t = normalise(text).replace(" ", "")
    return {t[i:i + n] for i in range(max(1, len(t) - n + 1))}


def jaccard(a: str, b: str) -> float:
    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def test_estimates_follow_the_true_jaccard():
    rng = random.Random(0)
    sign = Signer(3, 128)
    pairs = []
    for _ in range(60):
        a = "".join(rng.choices(HAN, k=rng.randint(40, 300)))
        b = list(a)
        for i in rng.sample(range(len(b)), int(len(b) * rng.uniform(0.0, 0.3))):  # 0–30% of characters replaced
            b[i] = rng.choice(HAN)
        pairs.append((a, "".join(b)))
    sigs = sign.signatures([t for p in pairs for t in p])
    errors = []
    for i, (a, b) in enumerate(pairs):
        est = float(np.mean(sigs[2 * i] == sigs[2 * i + 1]))
        assert est == sign.minhash(sigs[2 * i]).jaccard(sign.minhash(sigs[2 * i + 1]))
        errors.append(abs(est - jaccard(a, b)))
    # 128 permutations: standard error <= 0.045; every pair within 0.15, and the mean error small
    assert max(errors) < 0.15 and sum(errors) / len(errors) < 0.05, (max(errors), sum(errors) / len(errors))


def test_signatures_do_not_depend_on_the_batch():
    sign = Signer(3, 128)
    texts = ["诚信是立身之本。", "好", "", "法治就是用法律来治理国家，所有人都要按照法律办事。"]
    together = sign.signatures(texts)
    for t, s in zip(texts, together):
        assert np.array_equal(sign.signatures([t])[0], s)
    assert not np.array_equal(together[0], together[3])
    assert np.array_equal(Signer(3, 128).signatures(texts), together)  # deterministic (seeded permutations)


def test_whitespace_and_width_do_not_matter():
    sign = Signer(3, 128)
    a, b = sign.signatures(["诚信 是立身之本，做人要讲诚信。", "诚信是立身之本,做人要讲诚信。"])
    assert np.array_equal(a, b)  # NFKC folds the full-width comma; spaces are removed
