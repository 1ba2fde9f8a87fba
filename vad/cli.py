"""The `vad` command: lineage look-ups, IFD scoring of files, CValues-style evaluation (`vad eval`), fetching full sources."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _trace(a: argparse.Namespace) -> int:
    from vad.lineage import Lineage

    print(Lineage(Path(a.root)).trace(a.key))
    return 0


def _why(a: argparse.Namespace) -> int:
    from vad.lineage import Lineage

    print(Lineage(Path(a.root)).why(a.key))
    return 0


def _ifd(a: argparse.Namespace) -> int:
    from vad.ifd import score_file
    from vad.params import load_params

    summary = score_file(a.file, a.output, load_params(a.params)["ifd"])
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


def _fetch(a: argparse.Namespace) -> int:
    from vad.sources import fetch_cvalues, fetch_saferlhf

    if a.dataset == "saferlhf":
        prov = fetch_saferlhf(Path(a.out or "data/raw/saferlhf"), a.revision, a.split, a.subset, a.data_files)
    else:
        kw = {"base_url": a.base_url} if a.base_url else {}
        prov = fetch_cvalues(Path(a.out or "data/raw/cvalues"), a.revision or None, **kw) if a.revision \
            else fetch_cvalues(Path(a.out or "data/raw/cvalues"), **kw)
    print(json.dumps(prov, ensure_ascii=False, indent=2))
    print("now: dvc add data && dvc push   (and commit data.dvc)", file=sys.stderr)
    return 0


def _provenance(a: argparse.Namespace) -> int:
    from vad.sources import write_provenance

    prov = write_provenance(Path(a.folder), a.origin, a.revision, a.licence)
    print(json.dumps(prov, ensure_ascii=False, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "eval":  # CValues-style evaluation has its own option parser
        from vad.evaluate import cli

        return cli(argv[1:])
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

    sub.add_parser("eval", help="CValues-style two-choice evaluation of a model (vad eval --help)")

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
    p.add_argument("--origin", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--licence", required=True)
    p.set_defaults(fn=_provenance)

    a = ap.parse_args(argv)
    try:
        return a.fn(a)
    except (KeyError, FileNotFoundError) as e:
        print(f"vad {a.cmd}: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
