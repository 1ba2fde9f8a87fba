"""A stage declares what it reads and writes; `stage_main` runs it.

Each `stages/<name>.py` holds one `STAGE = Stage(...)` and a `main(ctx)`. The declaration is the one place for
the stage's paths and params: `dvc.yaml` is generated from it (`vad pipeline write`, with the stage's import
closure as code deps), and at run time the stage can read, validate and write only what it declared, and see
only the params it declared, so nothing it uses can change without DVC rerunning it."""
from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vad.core import paths
from vad.core.pipeline import UNLEDGERED
from vad.core.errors import VadError

SCRIPTS = "stages"


@dataclass(frozen=True)
class Stage:
    name: str
    doc: str                                  # what the stage does, one line (it heads the stage in dvc.yaml)
    reads: tuple[str, ...] = ()               # data deps, files or folders: raw data, upstream corpora, metrics
    writes: tuple[str, ...] = ()              # its corpora and other outputs (ledger, metrics, GX results are added)
    params: tuple[str, ...] = ()              # params.yaml sections or `section.key`s it reads
    suites: tuple[str, ...] = ()              # GX suites it validates (expectations/<suite>.json)
    files: tuple[str, ...] = ()               # other files its code reads (prompt templates)
    plots: tuple[tuple[str, dict[str, str]], ...] = ()  # (path, {x, y}) of plot data among its writes
    pipeline: str = ""                        # folder of its dvc.yaml: "" = the dataset, "evaluation"

    @property
    def script(self) -> str:
        return f"{SCRIPTS}/{self.name}.py"

    @property
    def ledgered(self) -> bool:
        """Keeps a ledger: every stage that passes records on does (vad.core.pipeline.UNLEDGERED do not)."""
        return self.name not in UNLEDGERED

    @property
    def ledger(self) -> str:
        return paths.ledger(self.name)

    @property
    def metrics(self) -> str:
        return paths.metrics(self.name)

    def gx_result(self, suite: str) -> str:
        """Where a suite's full result goes: next to the stage's first output."""
        return f"{Path(self.writes[0]).parent.as_posix()}/gx_{suite}.json"

    def outs(self) -> list[str]:
        """Outputs for dvc.yaml's `outs` (plot data goes under `plots`, metrics under `metrics`)."""
        plotted = {p for p, _axes in self.plots}
        out = [w for w in self.writes if w not in plotted] + [self.gx_result(s) for s in self.suites]
        return out + ([self.ledger] if self.ledgered else [])


class StageContext:
    """What `main(ctx)` gets: the declared params, the book-keeping, and declared-only reads and writes."""

    def __init__(self, stage: Stage, params, root: Path = Path(".")):
        from vad.core.ledger import StageRun

        self.stage, self.params, self.root = stage, params, root
        self.run = StageRun(stage.name, root)

    def _declared(self, path: str, kinds: tuple[str, ...], what: str) -> None:
        ok = any(path == d or path.startswith(d.rstrip("/") + "/") for d in kinds)
        if not ok:
            raise RuntimeError(f"stage {self.stage.name} {what} {path} without declaring it in its STAGE")

    def read(self, path: str):
        """Records of a declared corpus."""
        from vad.core.io import read_records

        self._declared(path, self.stage.reads, "reads")
        return read_records(self.root / path)

    def finish(self, outputs: dict[str, list], **metrics: Any) -> dict[str, Any]:
        for p in outputs:
            self._declared(p, self.stage.writes, "writes")
        return self.run.finish(outputs, **metrics)


# --- the entry point -------------------------------------------------------------------------------------------
QUIET_LOGGERS = ("great_expectations", "httpx", "httpx2", "openai", "urllib3", "datasets", "filelock")


def run_stage(stage: Stage, body: Callable[[StageContext], dict | None]) -> dict | None:
    """Run a stage in this process, in the current directory (the project root): params loaded and validated."""
    from vad.core.config import load_params

    return body(StageContext(stage, load_params().view(stage.params, stage.name)))


def run_script(script: str | Path) -> dict | None:
    """Run `stages/<name>.py` in this process (tests, notebooks): its STAGE with its main."""
    import runpy

    g = runpy.run_path(str(script), run_name="vad_stage_declaration")
    return run_stage(g["STAGE"], g["main"])


def stage_main(stage: Stage, body: Callable[[StageContext], dict | None]) -> None:
    """Run `body` as the stage: validated params, clean one-line errors (exit 2 for a bad param, 1 otherwise)."""

    logging.basicConfig(level=logging.INFO, format=f"[{stage.name}] %(message)s", stream=sys.stderr)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    trace = ReadTrace.from_env(stage.name)
    try:
        metrics = run_stage(stage, body)
    except VadError as e:
        print(f"\nstage {stage.name} failed: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    finally:
        if trace:
            trace.write()
    summary = {k: v for k, v in (metrics or {}).items() if k in ("in", "created", "out", "ledgered", "consumed")}
    logging.getLogger(stage.name).info("done: %s", summary)


class ReadTrace:
    """Records the project files a stage opens for reading and the project modules it imports
    (`VAD_TRACE_DIR=<dir>`: written to <dir>/<stage>.json at exit). The deps test compares them with dvc.yaml."""

    IGNORED = ("build/cache/", ".git/", ".dvc/", ".venv/")
    # params.yaml is read whole (every stage validates all of it), but a stage sees only the keys it declares,
    # and those are its DVC params: the file itself is not a dep.
    PARAMS = "params.yaml"

    def __init__(self, stage: str, out_dir: Path):
        self.stage, self.out_dir = stage, out_dir
        self.root = paths.project_root()
        self.reads: set[str] = set()
        sys.addaudithook(self._hook)

    @classmethod
    def from_env(cls, stage: str) -> "ReadTrace | None":
        d = os.environ.get("VAD_TRACE_DIR")
        return cls(stage, Path(d)) if d else None

    def _rel(self, path: Any) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        try:
            p = Path(os.fsdecode(path))
            p = (p if p.is_absolute() else Path.cwd() / p).resolve()
            rel = p.relative_to(self.root).as_posix()
        except (ValueError, OSError, TypeError):
            return None
        return None if rel.startswith(self.IGNORED) or rel == self.PARAMS else rel

    def _hook(self, event: str, args: tuple) -> None:
        if event != "open":
            return
        path, mode, flags = args
        if mode is not None:
            reading = "r" in mode and "+" not in mode
        else:  # os.open
            reading = (flags or 0) & (os.O_WRONLY | os.O_RDWR) == 0
        if reading:
            rel = self._rel(path)
            if rel is not None and Path(self.root / rel).is_file():
                self.reads.add(rel)

    def write(self) -> None:
        modules = set()
        for m in list(sys.modules.values()):
            rel = self._rel(getattr(m, "__file__", None))
            if rel and (self.root / rel).is_file():  # some extension modules report a bare file name
                modules.add(rel)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"{self.stage}.json").write_text(
            json.dumps({"stage": self.stage, "reads": sorted(self.reads), "modules": sorted(modules)}, indent=1))
