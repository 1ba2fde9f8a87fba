"""Exact and near-duplicate removal.

Exact: normalised (NFKC, whitespace-collapsed) instruction+input+output, regardless of source.
Near: MinHash LSH over character n-grams (Chinese has no spaces, so words are not a usable unit). A candidate
from LSH is confirmed with the MinHash Jaccard estimate so the drop names the record it duplicates and by how
much. Records are visited in corpus order; the first of a group is kept."""
from __future__ import annotations

import numpy as np
from datasketch import MinHash, MinHashLSH

from vad.core.errors import InputError
from vad.core.ledger import StageRun
from vad.core.record import Record, normalise

LEDGER_REASONS = {
    "exact_duplicate": "the same normalised text as an earlier record (`dup_of` names it)",
    "near_duplicate": "MinHash Jaccard at or above `merge.near_dup_threshold` with an earlier record (`dup_of`)",
}


def exact_dedup(records: list[Record], run: StageRun) -> list[Record]:
    seen: dict[str, Record] = {}
    kept = []
    for rec in records:
        key = "\x1f".join(normalise(x) for x in (rec.instruction, rec.input, rec.output))
        first = seen.get(key)
        if first is not None:
            run.drop(rec, "exact_duplicate", f"same normalised text as {first.id} ({_where(first)})", dup_of=first.id)
        else:
            seen[key] = rec
            kept.append(rec)
    return kept


def _where(rec: Record) -> str:
    o = rec.lineage.origin
    return f"{o.get('file')}:{o.get('line')}" if o else rec.source


class Signer:
    """MinHash signatures of the character n-gram sets of many texts at once, in numpy.

    Each n-gram is hashed from its code points (a polynomial, then the 64-bit murmur finaliser, 32 bits kept), then
    permuted num_perm times by h -> a*h + b mod 2^32 (odd a, seeded), and a signature is the minimum per permutation
    over the text's grams: the MinHash scheme datasketch calls affine32, with a hash that needs no Python call per
    gram (at 30k records per-gram SHA-1 calls were most of merge's time). Texts are normalised as for exact dedup,
    spaces removed; a text shorter than n is one gram."""

    CHUNK = 100_000  # grams permuted at once: num_perm × CHUNK × 4 bytes (50 MB at 128 permutations)
    _M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
    _MASK = np.uint64(0xFFFFFFFF)

    def __init__(self, ngram: int, num_perm: int, seed: int = 1):
        self.ngram, self.num_perm = ngram, num_perm
        rng = np.random.RandomState(seed)
        self.a = ((rng.randint(0, 1 << 31, num_perm, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)).astype(np.uint32)
        self.b = rng.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)  # uint32 arithmetic wraps

    def _gram_hashes(self, codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
        h = np.zeros(len(starts), dtype=np.uint64)
        with np.errstate(over="ignore"):  # the arithmetic wraps modulo 2^64 on purpose
            for k in range(self.ngram):
                h = h * np.uint64(1_000_003) + codes[starts + k]
            h ^= h >> np.uint64(33)
            h *= self._M1
            h ^= h >> np.uint64(33)
            h *= self._M2
            h ^= h >> np.uint64(33)
        return (h & self._MASK).astype(np.uint32)

    def signatures(self, texts: list[str]) -> np.ndarray:
        """[len(texts), num_perm] uint32 signatures."""
        n = self.ngram
        arrays, gram_starts, counts, offset = [], [], [], 0
        for text in texts:
            t = normalise(text).replace(" ", "")
            c = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
            if len(c) < n:  # too short for one n-gram: the whole text, zero-padded, is its gram
                c = np.concatenate([c, np.zeros(n - len(c), dtype=np.uint64)])
            g = len(c) - n + 1
            arrays.append(c)
            gram_starts.append(np.arange(offset, offset + g, dtype=np.int64))
            counts.append(g)
            offset += len(c)
        codes = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint64)
        hashes = self._gram_hashes(codes, np.concatenate(gram_starts)) if arrays else np.zeros(0, dtype=np.uint32)
        owner = np.repeat(np.arange(len(texts)), counts)
        sig = np.full((len(texts), self.num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
        for i in range(0, len(hashes), self.CHUNK):
            h, who = hashes[i:i + self.CHUNK], owner[i:i + self.CHUNK]
            with np.errstate(over="ignore"):
                perm = self.a[:, None] * h[None, :] + self.b[:, None]  # [num_perm, chunk], mod 2^32
            first = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])  # grams of one text are contiguous
            mins = np.minimum.reduceat(perm, first, axis=1).T
            sig[who[first]] = np.minimum(sig[who[first]], mins)
        return sig

    def minhash(self, signature: np.ndarray) -> MinHash:
        return MinHash(seed=1, hashvalues=signature, scheme="affine32")


def near_dedup(records: list[Record], threshold: float, ngram: int, num_perm: int, run: StageRun) -> list[Record]:
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as e:  # e.g. a threshold too close to 1 for num_perm
        raise InputError("params.yaml merge.near_dup_threshold", f"{threshold} with num_perm {num_perm}: {e}") from None
    hashes: dict[str, MinHash] = {}
    by_id: dict[str, Record] = {}
    kept = []
    sign = Signer(ngram, num_perm)
    sigs = sign.signatures(["\n".join((r.instruction, r.input, r.output)) for r in records])
    for rec, sig in zip(records, sigs):
        mh = sign.minhash(sig)
        best_id, best_j = None, 0.0
        for cand in sorted(lsh.query(mh)):  # sorted: deterministic tie-breaking
            j = mh.jaccard(hashes[cand])
            if j >= threshold and j > best_j:
                best_id, best_j = cand, j
        if best_id is not None:
            run.drop(
                rec, "near_duplicate",
                f"Jaccard {best_j:.3f} ≥ {threshold} with {best_id} ({_where(by_id[best_id])})",
                dup_of=best_id, jaccard=round(best_j, 4),
            )
        else:
            lsh.insert(rec.id, mh)
            hashes[rec.id] = mh
            by_id[rec.id] = rec
            kept.append(rec)
    return kept
