"""From texts to token sequences, and how they are grouped: truncation (per the definition in
vad/quality/ifd/__init__.py), chunks of records (the unit of work and of commits, on every executor) and
batches of sequences within a chunk."""
from __future__ import annotations

from vad.quality.ifd.cache import text_sha
from vad.quality.ifd.templates import IFDTemplate
from vad.quality.ifd.types import EMPTY_ANSWER, NO_ANSWER_TOKENS, Encoded, IFDError

AUTO_BATCH = {"cpu": 8, "cuda": 1024}   # batch_size auto: sequences per batch
AUTO_BATCH_TOKENS = {"cuda": 65536}     # max_batch_tokens auto (padded tokens); the CPU's batches are small anyway
# Records per chunk: both sequences of a chunk's records are scored together, so each chunk completes whole
# scores. Up to this many records are one chunk (the default build: the same batches as one global pool).
CHUNK_RECORDS = 512



def batch_budget(kind: str, batch_size: int | str, max_batch_tokens: int | str, max_length: int
                 ) -> tuple[int, int | None]:
    """(sequences per batch, padded tokens per batch or None) for a device kind, `auto` resolved."""
    size = AUTO_BATCH[kind] if batch_size == "auto" else max(1, int(batch_size))
    tokens = AUTO_BATCH_TOKENS.get(kind) if max_batch_tokens == "auto" else max(max_length, int(max_batch_tokens))
    return size, tokens


# --- tokenisation and truncation -----------------------------------------------------------------------
def plan_truncation(n_prompt: int, n_answer: int, n_direct: int, max_length: int) -> tuple[int, int, bool]:
    """(prompt tokens kept, answer tokens kept, truncated) per the module docstring."""
    n = max_length - 1
    if n_prompt + n_answer <= n:
        a, keep_p, truncated = n_answer, n_prompt, False
    else:
        reserve = min(n_answer, max(1, n // 4))
        a = max(n - n_prompt, reserve)
        keep_p, truncated = min(n_prompt, n - a), True
    a = min(a, n - n_direct)
    return keep_p, max(a, 0), truncated


def cut_middle(ids: list[int], keep: int) -> list[int]:
    if keep >= len(ids):
        return list(ids)
    head = keep // 2
    return list(ids[:head]) + list(ids[len(ids) - (keep - head):])


def start_token(tokenizer) -> int:
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tid is None:
        raise ValueError("tokenizer has neither a bos nor an eos token to start sequences with")
    return tid


def encode_many(tokenizer, template: IFDTemplate, items: list[tuple[str, str, str]], max_length: int
                ) -> list[Encoded | IFDError]:
    bos = start_token(tokenizer)
    direct = tokenizer(template.direct, add_special_tokens=False)["input_ids"] if template.direct else []
    prompts = [template.prompt(q, x) for q, x, _a in items]
    answers = [a for _q, _x, a in items]
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if items else []
    a_ids = tokenizer(answers, add_special_tokens=False)["input_ids"] if items else []
    out: list[Encoded | IFDError] = []
    for (q, x, a), p, ans in zip(items, p_ids, a_ids):
        if not a.strip():
            out.append(IFDError(EMPTY_ANSWER, "the answer is empty"))
            continue
        keep_p, n_a, truncated = plan_truncation(len(p), len(ans), len(direct), max_length)
        if n_a <= 0 or not ans:
            out.append(IFDError(NO_ANSWER_TOKENS, f"no answer token fits max_length={max_length} "
                                                  f"(prompt {len(p)}, answer {len(ans)}, direct {len(direct)} tokens)"))
            continue
        ans = ans[:n_a]
        pp = cut_middle(p, keep_p)
        out.append(Encoded(text_sha(q, x, a), [bos, *pp, *ans], 1 + len(pp), [bos, *direct, *ans],
                           1 + len(direct), n_a, truncated))
    return out


# --- planning: chunks of records, batches of sequences -------------------------------------------------
def plan_chunks(todo: dict[str, tuple[str, str, str]], chunk_records: int | None = None
                ) -> list[list[tuple[str, tuple[str, str, str]]]]:
    """Records to score → chunks of (sha, texts), balanced, at most `chunk_records` (CHUNK_RECORDS) each. Records
    are ordered by (characters, sha) — a function of the set of texts only — so a chunk holds records of similar
    length and the same set always gives the same chunks (on every executor). Up to `chunk_records` records are
    one chunk."""
    recs = sorted(todo.items(), key=lambda kv: (sum(len(t) for t in kv[1]), kv[0]))
    if not recs:
        return []
    n = -(-len(recs) // (chunk_records or CHUNK_RECORDS))
    size = -(-len(recs) // n)
    return [recs[i:i + size] for i in range(0, len(recs), size)]


def plan_batches(lengths: list[int], batch_size: int, max_tokens: int | None) -> list[tuple[int, int]]:
    """Cut sequences sorted by length into [start, end) batches of at most `batch_size` sequences and at most
    `max_tokens` padded tokens (sequences x the longest one); a sequence longer than the budget goes alone."""
    out, start = [], 0
    for i, n in enumerate(lengths):
        count = i - start + 1
        if i > start and (count > batch_size or (max_tokens is not None and count * n > max_tokens)):
            out.append((start, i))
            start = i
    if start < len(lengths):
        out.append((start, len(lengths)))
    return out
