"""`ifd.executor: ray` — IFD scoring on Ray Data: the scorer's chunks (encode.plan_chunks) go
through `map_batches` over a pool of actors, one per GPU of the cluster (or `ifd.ray_actors` CPU actors), each
holding one loaded model. The driver keeps the score cache: it looks records up before anything is sent, and
writes each chunk's scores as it comes back, so an interrupted run keeps every finished chunk. A chunk is scored
exactly as the local executor scores it, so the scores per record are the same (up to the threads' rounding on
another CPU) and the output order is the input order.

The cluster: `RAY_ADDRESS` from the environment (never params: moving between a laptop and a cluster must not
change the stage), else a local Ray instance that lives for the run. Usage statistics are off
(`RAY_USAGE_STATS_ENABLED=0`). vad's code travels to the cluster with the job (`py_modules`); the model must be
loadable on every node (`gemma3-270m` needs the vad package's dependencies there, a folder the same path)."""
from __future__ import annotations

import json
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any

from vad.compute.device import Compute, resolve
from vad.compute.models import fingerprint as model_fingerprint
from vad.core.config import ParamsError
from vad.core.errors import VadError
from vad.quality.ifd.cache import CachedScore
from vad.quality.ifd.encode import batch_budget
from vad.quality.ifd.kernel import Kernel, available_cpus
from vad.quality.ifd.templates import get_template
from vad.quality.ifd.types import IFDError, ScoreStats

log = logging.getLogger(__name__)
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception|OutOfMemory)): (.+)$")


class IFDRayError(VadError):
    """Scoring on the cluster failed: the one line that says why (an actor's error, not Ray's traceback)."""


def _one_line(e: BaseException, doing: str) -> VadError:
    """A vad error raised on the cluster as itself (a bad param names its key), anything else as IFDRayError
    with the last `SomeError: message` line of what Ray relays (its tracebacks are long)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, VadError):
        return cause
    if isinstance(e, VadError) and not hasattr(e, "cause"):
        return e
    reason = f"{type(e).__name__}: {str(e).strip()[:200]}"
    for line in reversed(str(e).splitlines()):
        m = _ERROR_LINE.match(line)
        if m:
            reason = f"{m.group(1)}: {m.group(2).strip()}"
            break
    return IFDRayError(f"ifd on Ray failed {doing}: {reason}")


def _connect() -> bool:
    """Connect to RAY_ADDRESS, or start a local instance. True when this call started it (shut it down after)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    import vad

    address = os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"py_modules": [str(Path(vad.__file__).parent)],
                          "env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}})
    log.info("ifd: Ray %s, resources %s", f"cluster at {address}" if address else "local instance",
             ray.cluster_resources())
    return True


def _describe_remote(model: str, device: str, dtype: str) -> dict[str, Any]:
    """Runs on the cluster, on the resources an actor gets: what `auto` resolves to there, and the fingerprint."""
    try:
        c = resolve(device, dtype, "ifd")
        return {"device": c.device, "dtype": c.dtype, "why": c.why, "device_name": c.device_name,
                "fingerprint": model_fingerprint(model, c.dtype, "ifd.model")}
    except ParamsError as e:  # returned, not raised: rebuilt on the driver, against its params.yaml
        return {"params_error": [e.key, e.problem]}


class _ChunkActor:
    """One model per actor; scores chunks of records (rows of {"chunk", "items": JSON}) into {"chunk", "result"}."""

    def __init__(self, spec: dict[str, Any], fingerprint: str):
        compute = resolve(spec["device"], spec["dtype"], "ifd")
        here = model_fingerprint(spec["model"], compute.dtype, "ifd.model")
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        if here != fingerprint:
            raise RuntimeError(f"model {spec['model']} on this node has fingerprint {here}, the "
                               f"run expects {fingerprint}: the nodes do not hold the same model files")
        size, tokens = batch_budget(compute.kind, spec["batch_size"], spec["max_batch_tokens"], spec["max_length"])
        self.kernel = Kernel(spec["model"], get_template(spec["template"]), spec["max_length"], compute, here,
                             size, tokens, spec["threads"] or available_cpus())

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        chunks, results = [], []
        for i, items in zip(batch["chunk"], batch["items"]):
            chunk = [(sha, tuple(texts)) for sha, texts in json.loads(items)]
            self.kernel.stats = ScoreStats()
            res = self.kernel.score_chunk(chunk)
            rows = [[sha, r.loss_cond, r.loss_direct, r.n_answer_tokens, r.truncated] if isinstance(r, CachedScore)
                    else [sha, None, r.reason, r.detail] for sha, r in res.items()]
            st = self.kernel.stats
            chunks.append(int(i))
            results.append(json.dumps({"rows": rows, "actor": self.name, "stats": {
                "forward_batches": st.forward_batches, "tokens": st.tokens, "seconds": st.seconds,
                "oom_splits": st.oom_splits}}))
        return {"chunk": np.array(chunks), "result": np.array(results, dtype=object)}


class RayExecutor:
    """Resolves the compute on the cluster, then scores chunks there (`run`)."""

    def __init__(self, model: str, template: str, max_length: int, batch_size, max_batch_tokens, device: str,
                 dtype: str, actors: int = 0):
        import ray

        self._started = _connect()
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
        nodes = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
        self.use_gpu = gpus > 0 and device != "cpu"
        if device.startswith("cuda") and not gpus:
            self.close()
            raise ParamsError("ifd.device", f"{device} was asked for but the Ray cluster has no GPU")
        self.actors = actors or (gpus if self.use_gpu else nodes)
        # more actors than GPUs share them (each still gets its own model copy)
        self.num_gpus = min(1.0, gpus / self.actors) if self.use_gpu else 0
        self.num_cpus = max(1, cpus // max(self.actors, gpus if self.use_gpu else 1))
        remote = ray.remote(num_gpus=self.num_gpus, num_cpus=self.num_cpus, max_retries=0)(_describe_remote)
        try:
            d = ray.get(remote.remote(model, "cuda" if self.use_gpu else "cpu", dtype))
        except Exception as e:  # noqa: BLE001
            self.close()
            raise _one_line(e, "resolving the model and device on the cluster") from None
        if "params_error" in d:
            self.close()
            raise ParamsError(*d["params_error"])
        self.compute = Compute(d["device"], d["dtype"], f"on the Ray cluster: {d['why']}", d["device_name"])
        self.fingerprint = d["fingerprint"]
        self.actors_used: set[str] = set()
        # every actor computes in the precision resolved once (a mixed cluster must not mix precisions)
        self.spec = {"model": model, "template": template, "max_length": max_length, "batch_size": batch_size,
                     "max_batch_tokens": max_batch_tokens, "device": self.compute.kind, "dtype": self.compute.dtype,
                     "threads": None if self.use_gpu else self.num_cpus}

    def describe(self) -> dict[str, Any]:
        return {"ray_actors": self.actors, "ray_actors_used": len(self.actors_used), "ray_actor_cpus": self.num_cpus,
                "ray_actor_gpus": self.num_gpus, "ray_address": os.environ.get("RAY_ADDRESS") or "local"}

    def run(self, chunks: list[list[tuple[str, tuple[str, str, str]]]]):
        """Yields ({sha: CachedScore | IFDError}, chunk stats) per chunk, as chunks finish (in any order)."""
        import ray
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"chunk": i, "items": json.dumps([[sha, list(t)] for sha, t in c],
                                                                   ensure_ascii=False)}
                                  for i, c in enumerate(chunks)], override_num_blocks=max(1, len(chunks)))
        out = ds.map_batches(_ChunkActor, batch_size=1, batch_format="numpy",
                             # one chunk at a time per actor: chunks spread over the pool, none waits in a queue
                             compute=ray.data.ActorPoolStrategy(size=self.actors, max_tasks_in_flight_per_actor=1),
                             fn_constructor_kwargs={"spec": self.spec, "fingerprint": self.fingerprint},
                             num_cpus=self.num_cpus, num_gpus=self.num_gpus)
        try:
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                yield from self._results(batch)
        except Exception as e:  # noqa: BLE001 - Ray relays actor errors as long tracebacks: keep one line
            raise _one_line(e, f"scoring {len(chunks)} chunks (the finished ones are cached)") from None

    def _results(self, batch):
        for payload in batch["result"]:
            obj = json.loads(payload)
            self.actors_used.add(obj["actor"])
            res = {}
            for row in obj["rows"]:
                if row[1] is None:
                    res[row[0]] = IFDError(row[2], row[3])
                else:
                    res[row[0]] = CachedScore(row[1], row[2], int(row[3]), bool(row[4]))
            yield res, obj["stats"]

    def close(self) -> None:
        """Shut down the local Ray instance this executor started (a cluster's connection just ends)."""
        import ray

        if self._started:
            ray.shutdown()
            self._started = False
