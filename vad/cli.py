"""The `vad` command: lineage look-ups, IFD scoring of files, CValues-style evaluation (`vad eval`), the build
report (`vad report`), fetching full sources, the LLM estimate (`vad llm estimate`), human review
(`vad review serve`), params and pipeline checks."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _trace(a: argparse.Namespace) -> int:
    from vad.publish.trace import Tracer

    print(Tracer(Path(a.root)).trace(a.key))
    return 0


def _why(a: argparse.Namespace) -> int:
    from vad.publish.trace import Tracer

    print(Tracer(Path(a.root)).why(a.key))
    return 0


def _ifd(a: argparse.Namespace) -> int:
    from vad.core.config import load_params

    if not Path(a.file).is_file():
        raise FileNotFoundError(f"{a.file}: no such file")
    summary = score_file(a.file, a.output, load_params(a.params).ifd)
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


def _row_texts(obj: Any) -> tuple[str, str, str] | None:
    if not isinstance(obj, dict):
        return None
    q, x, a = obj.get("instruction"), obj.get("input", "") or "", obj.get("output")
    if not isinstance(q, str) or not isinstance(a, str) or not isinstance(x, str):
        return None
    return q, x, a


def score_file(in_path: str | Path, out_path: str | Path, params: Any, **scorer_kw: Any) -> dict:
    """`vad ifd FILE.jsonl -o SCORES.jsonl`: the stage's scorer on any JSONL of vad records or plain
    {instruction, input, output} rows. One output row per input row, in order: {"line", "id"?, score fields}
    or {"line", "id"?, "error": reason, "detail"}."""
    from collections import Counter

    from vad.core.io import iter_jsonl, write_jsonl
    from vad.quality.ifd.scorer import IFDScorer
    from vad.quality.ifd.types import BAD_ROW, IFDError
    from vad.quality.ifd_score import score_fields

    rows = list(iter_jsonl(in_path))
    texts = [_row_texts(obj) for _n, _raw, obj in rows]
    scorer = IFDScorer.from_params(params, **scorer_kw)
    try:
        results = iter(scorer.score([t for t in texts if t is not None]))
    finally:
        scorer.close()
    out, errors = [], Counter()
    for (n, _raw, obj), t in zip(rows, texts):
        row: dict[str, Any] = {"line": n}
        if isinstance(obj, dict) and "id" in obj:
            row["id"] = obj["id"]
        res = next(results) if t is not None else IFDError(
            BAD_ROW, "row needs string fields instruction and output (and input, if present)")
        if isinstance(res, IFDError):
            row |= {"error": res.reason, "detail": res.detail}
            errors[res.reason] += 1
        else:
            row |= score_fields(res, scorer)
        out.append(row)
    write_jsonl(out_path, out)
    return {"in": len(rows), "out": str(out_path), "ok": len(rows) - sum(errors.values()),
            "errors": dict(sorted(errors.items())), **scorer.stats.as_metrics(), **scorer.describe(),
            **scorer.compute_metrics()}


# the options of `vad eval` that override params.yaml `eval:` (argparse dest = EvalParams field)
_EVAL_OVERRIDES = ("items", "backend", "model", "method", "fewshot", "base_url", "api_key_env", "max_new_tokens",
                  "threads", "limit")


def _eval(a: argparse.Namespace) -> int:
    # imported here, like every handler's code: other `vad` commands do not load the evaluation (nor vad.llm)
    import logging

    from vad.core.config import EvalParams, load_params
    from vad.core.paths import project_root
    from vad.eval.metrics import format_summary
    from vad.eval.runner import run_evaluation

    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO, format="[eval] %(message)s",
                        stream=sys.stderr)
    for noisy in ("httpx", "httpx2", "openai", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # the project's params.yaml is checked whole, as every stage does; a file of one's own needs only these sections
    params = (load_params(a.params, sections=("eval", "llm")) if a.params
              else load_params() if (project_root() / "params.yaml").exists() else None)
    ev = params.eval.model_dump() if params else {}
    ev.update({k: getattr(a, k) for k in _EVAL_OVERRIDES if getattr(a, k) is not None})
    cfg = EvalParams.from_params(ev)
    out = Path(a.out_dir)
    m = run_evaluation(cfg, params.llm if params else None, out / "results.jsonl", out / "metrics.json",
                       progress=not a.quiet)
    print(json.dumps(m, ensure_ascii=False, indent=2) if a.json else format_summary(m))
    print(f"wrote {out / 'results.jsonl'} and {out / 'metrics.json'}", file=sys.stderr)
    return 0


def _fetch(a: argparse.Namespace) -> int:
    from vad.sources.provenance import CVALUES_COMMIT, fetch_cvalues, fetch_saferlhf

    if a.dataset == "saferlhf":
        prov = fetch_saferlhf(Path(a.out or "data/raw/saferlhf"), a.revision, a.split, a.subset, a.data_files)
    else:
        kw = {"base_url": a.base_url} if a.base_url else {}
        prov = fetch_cvalues(Path(a.out or "data/raw/cvalues"), a.revision or CVALUES_COMMIT, **kw)
    print(json.dumps(prov, ensure_ascii=False, indent=2))
    print("now: dvc add data && dvc push   (and commit data.dvc)", file=sys.stderr)
    return 0


def _provenance(a: argparse.Namespace) -> int:
    from vad.core.paths import PROVENANCE
    from vad.sources.provenance import update_provenance, write_provenance

    given = {"origin": a.origin, "revision": a.revision, "licence": a.licence}
    if a.update:
        prov = update_provenance(Path(a.folder), **given)
    else:
        missing = [f"--{k}" for k, v in given.items() if v is None]
        if missing:
            print(f"vad provenance: {' '.join(missing)} required (or --update to refresh an existing "
                  f"{Path(a.folder) / PROVENANCE})", file=sys.stderr)
            return 2
        prov = write_provenance(Path(a.folder), **given)
    print(json.dumps(prov, ensure_ascii=False, indent=2))
    return 0


def _report(a: argparse.Namespace) -> int:
    from vad.publish.report import open_in_browser, write_workspace_report

    path = write_workspace_report(Path(a.root), Path(a.out) if a.out else None)
    print(path)
    if a.open:
        print(open_in_browser(path), file=sys.stderr)
    return 0


def _params(a: argparse.Namespace) -> int:
    from vad.core.config import load_params

    params = load_params(a.params)
    print(f"{a.params or 'params.yaml'}: ok ({len(type(params).model_fields)} sections, every key known and in range)")
    return 0


def _llm(a: argparse.Namespace) -> int:
    from vad.core.config import load_params
    from vad.core.paths import project_root
    from vad.generate.estimate import STAGES, estimate, format_estimate

    unknown = sorted(set(a.stages) - set(STAGES))
    if unknown:
        print(f"vad llm estimate: unknown stage(s) {', '.join(unknown)}; the LLM stages are {', '.join(STAGES)}",
              file=sys.stderr)
        return 2
    e = estimate(load_params(a.params), project_root(), tuple(s for s in STAGES if s in a.stages or not a.stages))
    print(json.dumps(e, ensure_ascii=False, indent=2) if a.json else format_estimate(e))
    return 0


def _pipeline(a: argparse.Namespace) -> int:
    from vad.core import dvc_yaml

    if a.action == "write":
        written = dvc_yaml.write()
        print("\n".join(f"wrote {p}" for p in written) or "dvc.yaml files are up to date")
        return 0
    stale = dvc_yaml.stale()
    if stale:
        print(f"out of date: {', '.join(stale)} (run `vad pipeline write`)", file=sys.stderr)
        return 1
    print("dvc.yaml files match the stage declarations")
    return 0


def _categorize(a: argparse.Namespace) -> int:
    from vad.judge.apply import categorize_file

    summary = categorize_file(Path(a.file), Path(a.output), Path(a.root), a.params)
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


def _docs(a: argparse.Namespace) -> int:
    from vad import reasons

    if a.action == "write":
        print(f"wrote {reasons.DOC}" if reasons.write() else f"{reasons.DOC} is up to date")
        return 0
    if not reasons.DOC.is_file() or reasons.DOC.read_text(encoding="utf-8") != reasons.render():
        print(f"out of date: {reasons.DOC} (run `vad docs write`)", file=sys.stderr)
        return 1
    print(f"{reasons.DOC} matches the declared reason codes")
    return 0


def _review(a: argparse.Namespace) -> int:
    import os

    if a.action == "serve":
        from vad.review.app import serve

        serve(a.root, a.host, a.port, a.reviewer, a.token or os.environ.get("VAD_REVIEW_TOKEN", ""))
        return 0
    from vad.review.suggest import suggest

    print(json.dumps(suggest(Path(a.root), limit=a.limit), ensure_ascii=False, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="vad", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("trace", help="print the chain from raw file and line to an exported (or dropped) record")
    p.add_argument("key", help="row number in build/export/vad.json, or a record id (prefix ok)")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=_trace)

    p = sub.add_parser("why", help="print the stage and reason that dropped a record (or that it was exported)")
    p.add_argument("key", help="record id (prefix ok) or exported row")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=_why)

    p = sub.add_parser("ifd", help="score a JSONL file of records with IFD using the current params")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--params", default=None, help="params.yaml to read `ifd` from (default: the project's)")
    p.set_defaults(fn=_ifd)

    p = sub.add_parser("eval", help="CValues-style two-choice evaluation of a model (vad eval --help)",
                       description="`vad eval`: evaluate a model on two-choice values items; params.yaml `eval:` "
                                   "gives the defaults.")
    p.add_argument("--items", nargs="+", help="items files/folders (default: eval.items)")
    p.add_argument("--backend", choices=["local", "openai"])
    p.add_argument("--model")
    p.add_argument("--method", choices=["auto", "loglik", "generate"])
    p.add_argument("--fewshot", choices=["auto", "true", "false"])
    p.add_argument("--base-url")
    p.add_argument("--api-key-env", help="NAME of the environment variable holding the API key")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--threads", type=int, help="loglik torch threads (0 = auto)")
    p.add_argument("--limit", type=int, help="only the first N items")
    p.add_argument("--out-dir", default="build/eval/adhoc",
                   help="writes results.jsonl and metrics.json here (default: %(default)s, not the DVC outputs)")
    p.add_argument("--params", default=None, help="params.yaml to read `eval` and `llm` from")
    p.add_argument("--json", action="store_true", help="print the metrics JSON instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(fn=_eval)

    p = sub.add_parser("fetch", help="(internet) load full CValues / PKU-SafeRLHF at a pinned revision into data/raw")
    p.add_argument("dataset", choices=["saferlhf", "cvalues"])
    p.add_argument("--revision", default="", help="hub revision (saferlhf) or git commit (cvalues)")
    p.add_argument("--split", default="train")
    p.add_argument("--subset", default=None, help="saferlhf config, e.g. alpaca-7b")
    p.add_argument("--data-files", default=None, help="saferlhf: load these local JSON files instead of the hub")
    p.add_argument("--base-url", default=None, help="cvalues: raw-file base URL (file:// for a local mirror)")
    p.add_argument("--out", default=None)
    p.set_defaults(fn=_fetch)

    p = sub.add_parser("provenance", help="(re)write PROVENANCE.json for a raw data folder")
    p.add_argument("folder")
    p.add_argument("--update", action="store_true",
                   help="refresh the file list and hashes, keeping origin, revision, licence and notes")
    p.add_argument("--origin", default=None)
    p.add_argument("--revision", default=None)
    p.add_argument("--licence", default=None)
    p.set_defaults(fn=_provenance)

    p = sub.add_parser("report", help="render the build report (with the evaluation results when they exist) to "
                                      "build/report.html and print its path")
    p.add_argument("--open", action="store_true", help="also open it in a browser, where there is one")
    p.add_argument("--out", default=None, help="where to write it (default: build/report.html under --root)")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=_report)

    p = sub.add_parser("params", help="validate params.yaml without running anything")
    p.add_argument("action", choices=["check"])
    p.add_argument("--params", default=None, help="the params file (default: the project's params.yaml)")
    p.set_defaults(fn=_params)

    p = sub.add_parser("llm", help="before spending: the calls, tokens and cost evolve and translate would make "
                                   "(vad llm estimate [evolve] [translate]); calls nothing")
    p.add_argument("action", choices=["estimate"])
    p.add_argument("stages", nargs="*", help="evolve, translate (default: both)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--params", default=None, help="the params file (default: the project's params.yaml)")
    p.set_defaults(fn=_llm)

    p = sub.add_parser("pipeline", help="write dvc.yaml from the stage declarations, or check it is up to date")
    p.add_argument("action", choices=["write", "check"])
    p.set_defaults(fn=_pipeline)

    p = sub.add_parser("categorize", help="predict the category of every record of a JSONL file with the "
                                          "workspace's trained categorizer (each line + meta.category_pred)")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--root", default=".", help="the project whose build/categorizer/model.pkl and params to use")
    p.add_argument("--params", default=None, help="params.yaml (default: the project's)")
    p.set_defaults(fn=_categorize)

    p = sub.add_parser("docs", help="write docs/reasons.md (the reason codes) from their declarations, or check it")
    p.add_argument("action", choices=["write", "check"])
    p.set_defaults(fn=_docs)

    p = sub.add_parser("review", help="human review: the review app (serve), or LLM judge hints for it (suggest)")
    p.add_argument("action", choices=["serve", "suggest"])
    p.add_argument("--root", default=".", help="the project (its build/ifd/selected.jsonl and review/)")
    p.add_argument("--host", default="127.0.0.1", help="serve: address to bind; any but loopback needs a token")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--reviewer", default="", help="serve: who reviews in this browser (else chosen on /login)")
    p.add_argument("--token", default="", help="serve: reviewer token (better: VAD_REVIEW_TOKEN); made up if "
                                               "--host is not loopback")
    p.add_argument("--limit", type=int, default=0, help="suggest: judge at most this many records (0 = all)")
    p.set_defaults(fn=_review)

    a = ap.parse_args(argv)
    from vad.core.errors import VadError

    try:
        return a.fn(a)
    except VadError as e:
        print(f"vad {a.cmd}: {e}", file=sys.stderr)
        return e.exit_code
    except (KeyError, FileNotFoundError) as e:
        print(f"vad {a.cmd}: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
