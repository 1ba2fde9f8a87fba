"""The dvc.yaml files, generated from the stages' declarations, and the checks that they hold.

`dvc.yaml` (the dataset) and `evaluation/dvc.yaml` (model evaluation, run only when asked) are written by
`vad pipeline write` from each `stages/<name>.py` `STAGE` declaration: its data deps, params and outputs as
declared, and as code deps the stage script's import closure inside the project (every `vad` module it can
import, top-level or inside a function, with the packages' `__init__` files; for a stage with GX suites also
the validator's). Hand edits would drift; the tests and `vad pipeline check` fail when a dvc.yaml differs from
what the declarations give."""
from __future__ import annotations

import ast
import runpy
from pathlib import Path

from vad.core.paths import project_root
from vad.core.pipeline import PIPELINES
from vad.core.stage import SCRIPTS, Stage
from vad.core.suites import suite_files

HEADER = """\
# GENERATED from the STAGE declarations in stages/*.py by `vad pipeline write`: edit those, not this file.
# `vad pipeline check` (and the test suite) fail when this file is out of date.
"""
DATASET_INTRO = """\
# The VAD dataset build (`dvc repro`). Data flow:
#
#   data/raw/manual ───ingest_manual──────────────────────────────────────┐
#   data/raw/cvalues ──seeds──> build/seeds ──evolve (LLM)──> build/evolve ├─merge─> ifd_score ─> ifd_select ─> judge ─> review ─> export
#   data/raw/saferlhf ─select_pairs─> build/select ─translate (LLM)───────┘                                   ↑
#                   build/ingest + build/ifd/selected + review/decisions ──categorize_train (the categorizer)─┘
#
# Every stage that passes records on also writes build/ledger/<stage>.jsonl (each record it did not pass on, with
# a reason: docs/reasons.md) and every stage build/metrics/<stage>.json. Deps are the stage's data, its params, and its code (the script's import closure).
"""
EVALUATION_INTRO = """\
# CValues-style evaluation of a model (not part of the dataset build): `dvc repro evaluation/dvc.yaml`.
# Paths are relative to the project root (wdir: ..).
"""


def load_stage(name: str, root: Path | None = None) -> Stage:
    root = root or project_root()
    spec = runpy.run_path(str(root / SCRIPTS / f"{name}.py"), run_name="vad_stage_declaration").get("STAGE")
    if not isinstance(spec, Stage) or spec.name != name:
        raise ValueError(f"{SCRIPTS}/{name}.py must define STAGE = Stage({name!r}, ...)")
    return spec


def all_stages(root: Path | None = None) -> dict[str, Stage]:
    return {name: load_stage(name, root) for names in PIPELINES.values() for name in names}


# --- the import closure ------------------------------------------------------------------------------------
def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """Project modules a file imports (anywhere in it), as dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(root).parts[:-1]  # the package a relative import starts from
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in out if m == "vad" or m.startswith("vad.")}


def import_closure(script: str | Path, root: Path | None = None) -> list[str]:
    """Project files `script` can execute: itself, every vad module it imports (transitively), and the
    `__init__.py` of each package on the way. Sorted, relative to root, the script first."""
    root = root or project_root()
    start = (root / script).resolve()
    seen: set[Path] = set()
    todo = [start]
    pkg = start.parent
    while (pkg / "__init__.py").is_file() and root in pkg.parents:  # a module's own packages run first
        todo.append(pkg / "__init__.py")
        pkg = pkg.parent
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for mod in _imports(f, root):
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):  # the packages on the way, then the module
                p = _module_file(root, ".".join(parts[:i]))
                if p is not None and p not in seen:
                    todo.append(p)
    rels = sorted(p.relative_to(root).as_posix() for p in seen if p != start)
    return [start.relative_to(root).as_posix(), *rels]


def stage_deps(stage: Stage, root: Path | None = None) -> tuple[list[str], list[str]]:
    """(data deps, code deps) of a stage."""
    data = [*stage.reads, *(f for s in stage.suites for f in suite_files(s)), *stage.files]
    code = import_closure(stage.script, root)
    return list(dict.fromkeys(data)), code


# --- dvc.yaml ---------------------------------------------------------------------------------------------------
def _q(s: str) -> str:
    """A YAML scalar: plain when safe, else double-quoted."""
    import json
    import re

    return s if re.fullmatch(r"[A-Za-z0-9_./\-]+", s) else json.dumps(s, ensure_ascii=False)


def render(pipeline: str, root: Path | None = None) -> str:
    root = root or project_root()
    lines = [HEADER, DATASET_INTRO if pipeline == "" else EVALUATION_INTRO, "stages:"]
    for name in PIPELINES[pipeline]:
        st = load_stage(name, root)
        if st.pipeline != pipeline:
            raise ValueError(f"stage {name} declares pipeline {st.pipeline!r} but is listed under {pipeline!r}")
        data, code = stage_deps(st, root)
        lines += ["", f"  # {st.doc}", f"  {name}:", f"    cmd: python {st.script}"]
        if pipeline:
            lines.append("    wdir: ..")
        lines.append("    deps:")
        lines += [f"      - {_q(d)}" for d in data]
        lines += ["      # code: the import closure of " + st.script] + [f"      - {_q(c)}" for c in code]
        if st.params:
            lines.append("    params:")
            lines += [f"      - {_q(p)}" for p in st.params]
        outs = st.outs()
        if outs:
            lines.append("    outs:")
            lines += [f"      - {_q(o)}" for o in outs]
        lines.append("    metrics:")
        lines += [f"      - {_q(st.metrics)}"]
        if st.plots:
            lines.append("    plots:")
            for path, axes in st.plots:
                lines.append(f"      - {_q(path)}: {{{', '.join(f'{k}: {_q(v)}' for k, v in axes.items())}}}")
    return "\n".join(lines) + "\n"


def dvc_yaml_path(pipeline: str, root: Path | None = None) -> Path:
    root = root or project_root()
    return root / pipeline / "dvc.yaml" if pipeline else root / "dvc.yaml"


def write(root: Path | None = None) -> list[Path]:
    out = []
    for pipeline in PIPELINES:
        p = dvc_yaml_path(pipeline, root)
        p.parent.mkdir(parents=True, exist_ok=True)
        text = render(pipeline, root)
        if not p.exists() or p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")
            out.append(p)
    return out


def stale(root: Path | None = None) -> list[str]:
    """The dvc.yaml files that differ from what the declarations give."""
    return [str(dvc_yaml_path(pl, root).relative_to(root or project_root())) for pl in PIPELINES
            if not dvc_yaml_path(pl, root).exists()
            or dvc_yaml_path(pl, root).read_text(encoding="utf-8") != render(pl, root)]


# --- checking deps against what stages really use -----------------------------------------------------------------
def declared_deps(root: Path | None = None) -> dict[str, list[str]]:
    """Each stage's deps as the dvc.yaml files say (not as the declarations say)."""
    import yaml

    out: dict[str, list[str]] = {}
    for pipeline in PIPELINES:
        doc = yaml.safe_load(dvc_yaml_path(pipeline, root).read_text(encoding="utf-8"))
        for name, st in (doc.get("stages") or {}).items():
            out[name] = [str(d) for d in st.get("deps") or []]
    return out


def declared_outs(root: Path | None = None) -> dict[str, list[str]]:
    import yaml

    out: dict[str, list[str]] = {}
    for pipeline in PIPELINES:
        doc = yaml.safe_load(dvc_yaml_path(pipeline, root).read_text(encoding="utf-8"))
        for name, st in (doc.get("stages") or {}).items():
            outs = []
            for key in ("outs", "metrics", "plots"):
                for o in st.get(key) or []:
                    outs.append(next(iter(o)) if isinstance(o, dict) else str(o))
            out[name] = outs
    return out


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def missing_deps(used: dict[str, set[str]], deps: dict[str, list[str]],
                 outs: dict[str, list[str]] | None = None) -> list[tuple[str, str]]:
    """(stage, path) for every file a stage used that none of its deps covers (its own outputs excepted)."""
    outs = outs or {}
    return sorted((stage, p) for stage, files in used.items() for p in files
                  if not covered(p, deps.get(stage, [])) and not covered(p, outs.get(stage, [])))


def unused_deps(used: dict[str, set[str]], deps: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(stage, dep) for every dep that covers nothing the stage used: a dep the stage does not need."""
    return sorted((stage, d) for stage, files in used.items() for d in deps.get(stage, [])
                  if not any(covered(p, [d]) for p in files))
