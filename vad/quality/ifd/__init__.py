"""IFD — Instruction-Following Difficulty (Cherry LLM, Li et al. 2023; Superfiltering): scoring records.

The package, bottom up (each module imports only those above it in this list):

  types      results (IFDScore, IFDError), the encoded sequences, run counters, the reason codes
  templates  the prompt templates the two sequences are built from
  cache      the SQLite score cache (by the sha256 of a record's texts)
  head       the fused lm_head + log-sum-exp over vocabulary tiles (no [tokens x vocab] logits)
  encode     tokenisation and truncation, chunks of records, batches of sequences
  kernel     the torch part: one chunk of records -> losses (no cache, no executor)
  ray        `ifd.executor: ray`: chunks on Ray Data actors, each with its own kernel
  scorer     IFDScorer: cache look-up, then the local kernel or Ray, from the `ifd` params
  reference  the literal definition computed the slow obvious way (tests and benchmarks compare against it)

The ifd_score stage (vad/quality/ifd_score.py) scores records with IFDScorer; ifd_select selects by the scores.
Measured throughput per CPU kind and on a GPU: docs/benchmarks.md.

Definition implemented here
---------------------------
For a record (instruction Q, input X, answer A) and a template T (vad/quality/ifd/templates.py):

* P = token ids of the conditioned prompt text `T.prompt(Q, X)` (no special tokens),
  D = token ids of the template's direct prefix `T.direct` (`"### 回答：\\n"` for alpaca_zh_v1, empty for
  superfiltering_v1), A = token ids of the answer text, tokenised ONCE on its own (no special tokens).
  The texts are used exactly as stored (no stripping); a record "has input" when `input.strip()` is non-empty.
* conditioned sequence = [BOS] + P' + A'      direct sequence = [BOS] + D + A'
  (BOS = the tokenizer's bos token; a tokenizer without one uses its eos token as the start token). Both
  sequences end with the same answer ids A' — no EOS is appended.
* Truncation (to `max_length` tokens per sequence, BOS included; n = max_length - 1):
  - if len(P) + len(A) <= n: P' = P, A' = A, truncated = False;
  - else truncated = True and the answer keeps a' = max(n - len(P), reserve) tokens, reserve =
    min(len(A), max(1, n // 4)): the answer is cut at the end to what the whole prompt leaves, but never below
    the reserve; when the prompt leaves less than the reserve, the prompt loses tokens from its MIDDLE (its first
    ⌊k/2⌋ and last k - ⌊k/2⌋ tokens are kept, k = n - a'), so the template header and the response marker
    survive. Finally a' = min(a', n - len(D)) so the direct sequence fits too. A' = A[:a'].
  - a' <= 0 (max_length too small for any answer token) → `ifd_no_answer_tokens`.
* loss_cond = mean over the a' answer positions of −log p(A'_i | [BOS] + P' + A'_<i) (natural log),
  loss_direct = the same mean with [BOS] + D as context; positions are the answer tokens only, each predicted
  from the hidden state one position earlier.
* ifd = loss_cond / loss_direct (Cherry: ratio of mean cross-entropies);
  ifd_ppl = exp(loss_cond) / exp(loss_direct) = exp(loss_cond − loss_direct) (Superfiltering: ratio of
  perplexities). Both are computed from the losses AFTER rounding them to 6 decimals (the values that are
  cached), so cached and fresh outputs are byte-identical.
* Not scorable → a ledgered drop, never a 0: `ifd_empty_answer` (answer empty or whitespace only),
  `ifd_no_answer_tokens` (nothing of the answer survives truncation / tokenisation), `ifd_nonfinite` (a loss
  is NaN/inf, or loss_direct <= 0 so the ratio is undefined).

How it is computed (equal to the literal definition up to the body dtype's rounding)
-----------------------------------------------------------------------------------
Where and in which precision: `ifd.device` / `ifd.dtype` (auto: vad/compute/device.py). Every record is first
looked up in the SQLite score cache (vad/quality/ifd/cache.py) by the sha256 of its texts; only the misses are
tokenised and scored, and the model is loaded only if there are any. The misses are cut into chunks of at most
CHUNK_RECORDS records (`plan_chunks`, a function of the set of texts); within a chunk, conditioned and direct
sequences are pooled, sorted by (length, text sha256, kind) and cut into batches of at most `batch_size`
sequences and `max_batch_tokens` padded tokens (`plan_batches`), right-padded with an attention mask. The base
model (`model.base_model`, Gemma's embedding scaling is inside it, SDPA attention) runs under
`torch.inference_mode()` in `dtype`; hidden states are gathered at answer positions only (shifted by one) and only
those go through `lm_head` (262k-row vocabulary: full logits are most of the cost), fused with an online fp32
log-sum-exp over vocabulary tiles (vad/quality/ifd/head.py), so the [tokens × 262k] logits are never materialised.

What finishes is kept: on the CPU every batch commits its whole scores and the single finished sequences
(`ifd_partial`) to the cache, on a GPU each chunk commits once (one host sync per chunk); an interrupted run
resumes with only the missing sequences. A GPU out-of-memory splits the batch in halves (a single sequence that
does not fit is an error naming `ifd.max_length`). The cache key names the body and head dtypes (and the device
kind off the CPU), so scores of another precision or device are never mixed in. `ifd.executor: ray` scores the
same chunks on Ray Data actors (vad/quality/ifd/ray.py); the driver writes the same cache.
"""
