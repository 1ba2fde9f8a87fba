"""A local Hugging Face causal LM (default: Gemma 3 270M base, offline) through `vad.models.load_causal_lm`.

Base models get `Prompt.completion` and stop at the first stop string. Generation is batched (cfg.batch_size,
prompts sorted by token length, left padding + attention mask) under torch.inference_mode, with
repetition_penalty and — unless temperature == 0 (greedy) — temperature/top-p sampling where every row draws
from its own torch.Generator seeded from (seed, cache key): a row's sample does not depend on which other
prompts share its batch (bf16 numerics can still shift a logit slightly with padding; the cache makes reruns exact)."""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from vad.llm.cache import Completion
from vad.llm.client import CallError, LLMClient, Request

log = logging.getLogger(__name__)

STOP_TAIL_TOKENS = 24  # generated tokens decoded to look for a stop string at each step
NUCLEUS_TOPK = 512     # top-p looks at the top k tokens first and sorts the whole vocabulary only if needed


def row_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "big") & (2**63 - 1)


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """Text up to the earliest stop string (stripped), and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut] if cut >= 0 else text).strip(), cut >= 0


class LocalClient(LLMClient):
    backend = "local"
    chat = False

    def __init__(self, cfg, cache_path=None):
        super().__init__(cfg, cache_path)
        self._lm = None
        self._load_lock = threading.Lock()
        self.generate_calls = 0  # model.generate invocations (batches) made by this client

    @property
    def lm(self):
        with self._load_lock:
            if self._lm is None:
                from vad.compute.models import load_causal_lm

                self._lm = load_causal_lm(self.cfg.model, self.cfg.dtype, param="llm.model",
                                          device=self.cfg.device, section="llm")
                log.info("local LLM on %s", self._lm.compute)
            return self._lm

    def model_id(self) -> str:
        # weights + tokenizer + dtype digest: a moved folder still hits, changed weights never do; off the CPU the
        # device kind too (a GPU's numerics sample other texts; the CPU's keys have no device part)
        kind = self.lm.compute.kind
        return f"local:{self.lm.fingerprint}" + ("" if kind == "cpu" else f"@{kind}")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["model_fingerprint"] = self.lm.fingerprint
        d["dtype"] = self.lm.dtype
        d["device"] = self.lm.compute.kind
        d["compute"] = self.lm.compute.describe()
        return d

    def reask_request(self, req: Request, previous_text: str, reason: str) -> Request | None:
        if req.gen["temperature"] == 0:
            return None  # greedy: the same prompt gives the same answer; asking again only costs time
        # A base model cannot read a complaint; a new attempt number gives a new key and a new sample.
        return self.build_request(req.prompt, req.gen, attempt=req.attempt + 1)

    # --- generation -----------------------------------------------------------------------------------
    def _execute(self, reqs: list[Request], done: Callable[[Request, Completion | CallError], None],
                 stage: str) -> None:
        lm = self.lm
        tok = lm.tokenizer
        lengths = [len(ids) for ids in tok([r.completion for r in reqs], add_special_tokens=True)["input_ids"]]
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(reqs):  # one generate() shares max_new_tokens and repetition_penalty
            groups.setdefault((r.gen["max_new_tokens"], r.gen["repetition_penalty"]), []).append(i)
        for (max_new, rep), idx in sorted(groups.items()):
            idx.sort(key=lambda i: (lengths[i], reqs[i].key))
            for b in range(0, len(idx), self.cfg.batch_size):
                batch = [reqs[i] for i in idx[b:b + self.cfg.batch_size] if self.admit()]  # the spend guard
                if not batch:
                    continue
                try:
                    outs = self._generate(batch, max_new, rep)
                except Exception as e:  # noqa: BLE001 - one bad batch must not kill the run
                    log.exception("local generation failed for a batch of %d", len(batch))
                    outs = [CallError(f"{type(e).__name__}: {e}"[:300], retryable=False)] * len(batch)
                for r, o in zip(batch, outs):
                    done(r, o)

    def _generate(self, batch: list[Request], max_new: int, rep: float) -> list[Completion]:
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        lm = self.lm
        tok, model = lm.tokenizer, lm.model
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        enc = tok([r.completion for r in batch], return_tensors="pt", padding=True,
                  padding_side="left").to(lm.device)
        plen = enc["input_ids"].shape[1]
        gens = [torch.Generator().manual_seed(row_seed(r.gen["seed"], r.key)) for r in batch]

        temps = torch.tensor([r.gen["temperature"] for r in batch], dtype=torch.float32)
        greedy = temps == 0

        class RowSampler(LogitsProcessor):
            """Per-row temperature/top-p sampling with per-row generators (greedy rows: argmax)."""

            def __call__(self, input_ids, scores):
                scores = scores.float()
                pick = scores.argmax(-1)
                if not bool(greedy.all()):
                    t = torch.where(greedy, 1.0, temps).to(scores.device)
                    probs = torch.softmax(scores / t[:, None], dim=-1)
                    k = min(NUCLEUS_TOPK, probs.shape[-1])
                    top_p_, top_i_ = probs.topk(k, dim=-1)  # sorted; the nucleus is nearly always in here
                    # the draw is on the CPU, with each row's CPU generator (the same sample on every device)
                    top_p_, top_i_ = top_p_.cpu(), top_i_.cpu()
                    for i, r in enumerate(batch):
                        if greedy[i]:
                            continue
                        p = r.gen["top_p"]
                        sp, si = top_p_[i], top_i_[i]
                        if float(sp.sum()) < p and k < probs.shape[-1]:
                            sp, si = torch.sort(probs[i].cpu(), descending=True)  # flat distribution: exact path
                        keep = (torch.cumsum(sp, -1) - sp) < p  # always keeps the top token
                        w = torch.where(keep, sp, torch.zeros_like(sp))
                        pick[i] = si[torch.multinomial(w, 1, generator=gens[i])[0]]
                out = torch.full_like(scores, float("-inf"))
                out.scatter_(1, pick[:, None], 0.0)
                return out

        class StopAt(StoppingCriteria):
            """Per-row: stop once the generated text (not the prompt) contains a stop string."""

            def __call__(self, input_ids, scores, **kw):
                flags = []
                for i, r in enumerate(batch):
                    tail = tok.decode(input_ids[i, plen:][-STOP_TAIL_TOKENS:], skip_special_tokens=True)
                    flags.append(any(s in tail for s in r.stop))
                return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new,
                do_sample=False,  # the choice is made by RowSampler
                repetition_penalty=rep if rep != 1.0 else None,
                logits_processor=LogitsProcessorList([RowSampler()]),
                stopping_criteria=StoppingCriteriaList([StopAt()]),
                pad_token_id=pad_id,
            )
        self.generate_calls += 1
        res = []
        for i, r in enumerate(batch):
            gen_ids = out[i, plen:]
            n_new = int((gen_ids != pad_id).sum())
            raw = tok.decode(gen_ids, skip_special_tokens=True)
            text, stopped = cut_at_stop(raw, r.stop)
            eos = tok.eos_token_id is not None and bool((gen_ids == tok.eos_token_id).any())
            res.append(Completion(
                text=text,
                prompt_tokens=int(enc["attention_mask"][i].sum()),
                completion_tokens=n_new,
                finish_reason="stop" if (stopped or eos) else "length",
            ))
        return res
