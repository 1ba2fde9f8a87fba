"""How the IFD scorer cuts its work: chunks of records (the unit both executors share) and batches of sequences
under a sequence count and a padded-token budget. Pure functions: no model."""
from vad.quality.ifd.cache import text_sha
from vad.quality.ifd.encode import CHUNK_RECORDS, plan_batches, plan_chunks


def items(n):
    out = {}
    for i in range(n):
        t = (f"问题{i}", "", "答" * (1 + (i * 37) % 50))
        out[text_sha(*t)] = t
    return out


def test_chunks_are_balanced_deterministic_and_whole():
    todo = items(1100)
    chunks = plan_chunks(todo)
    assert [len(c) for c in chunks] == [367, 367, 366]  # ceil(1100 / 512) = 3 chunks, balanced
    assert sorted(s for c in chunks for s, _ in c) == sorted(todo)  # every record once
    # a function of the set of texts: another insertion order gives the same chunks
    assert plan_chunks(dict(reversed(list(todo.items())))) == chunks
    # records of similar length share a chunk
    lens = [[sum(map(len, t)) for _s, t in c] for c in chunks]
    assert max(lens[0]) <= min(lens[1]) and max(lens[1]) <= min(lens[2])
    # up to CHUNK_RECORDS records are one chunk (the default build: one pool, as before chunks existed)
    assert len(plan_chunks(items(CHUNK_RECORDS))) == 1 and plan_chunks({}) == []
    assert [len(c) for c in plan_chunks(todo, 3)[:2]] == [3, 3]


def test_batches_respect_count_and_token_budget():
    lengths = [10, 10, 20, 30, 40, 50, 60, 70, 80, 300]
    # count only (the CPU's auto): batches of 8
    assert plan_batches(lengths, 8, None) == [(0, 8), (8, 10)]
    # a budget of 120 padded tokens: sequences x the longest (they are sorted) must fit
    b = plan_batches(lengths, 100, 120)
    assert b == [(0, 4), (4, 6), (6, 7), (7, 8), (8, 9), (9, 10)]
    for a, e in b:
        assert (e - a) * lengths[e - 1] <= 120 or e - a == 1  # one sequence over the budget goes alone
    assert plan_batches([], 8, 100) == []
