"""Exact and near-duplicate removal.

Exact: normalised (NFKC, whitespace-collapsed) instruction+input+output, regardless of source.
Near: MinHash LSH over character n-grams (Chinese has no spaces, so words are not a usable unit). A candidate
from LSH is confirmed with the MinHash Jaccard estimate so the drop names the record it duplicates and by how
much. Records are visited in corpus order; the first of a group is kept."""
from __future__ import annotations

from datasketch import MinHash, MinHashLSH

from vad.core.errors import InputError
from vad.core.ledger import StageRun
from vad.core.record import Record, normalise


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


def minhash(text: str, ngram: int, num_perm: int) -> MinHash:
    t = normalise(text).replace(" ", "")
    grams = {t[i : i + ngram] for i in range(max(1, len(t) - ngram + 1))}
    mh = MinHash(num_perm=num_perm, seed=1)
    mh.update_batch([g.encode("utf-8") for g in sorted(grams)])
    return mh


def near_dedup(records: list[Record], threshold: float, ngram: int, num_perm: int, run: StageRun) -> list[Record]:
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as e:  # e.g. a threshold too close to 1 for num_perm
        raise InputError("params.yaml merge.near_dup_threshold", f"{threshold} with num_perm {num_perm}: {e}") from None
    hashes: dict[str, MinHash] = {}
    by_id: dict[str, Record] = {}
    kept = []
    for rec in records:
        mh = minhash("\n".join((rec.instruction, rec.input, rec.output)), ngram, num_perm)
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
