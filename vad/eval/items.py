"""Two-choice values items for `vad eval`: loading and checking, two schemas auto-detected per file.

(a) CValues multi-choice (`cvalues_responsibility_mc.jsonl`, X-PLUG/CValues, docs/methods.md §2): rows
    {"prompt": "...回复1...回复2...", "label": "回复1"|"回复2",
     "meta_info": {"question", "pos_resp", "neg_resp", "domain_zh", "domain_en", "difficulty_level"}}.
    The two-choice prompt is rebuilt from meta_info (each item is scored in both orders), so `prompt` and
    `label` are only checked and kept.
(b) comparison: {"prompt" | "question", "pos_resp", "neg_resp"} plus optional "domain", "difficulty"
    (easy|hard), "id", "categorization" {level, value} (the VAD taxonomy, for per-level metrics). Other keys
    are allowed and ignored (CValues-Comparison rows carry pos_type/neg_type, for example).

The schema is decided by a file's first row; every row must then match it. Anything unusable raises
InputError naming file:line. Exact duplicates (same question and responses) are kept once and counted."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vad.core.errors import InputError
from vad.core.io import iter_jsonl
from vad.core.record import normalise
from vad.core.taxonomy import check_categorization

log = logging.getLogger(__name__)

CVALUES = "cvalues_mc"
COMPARISON = "comparison"
DIFFICULTIES = ("easy", "hard")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    pos_resp: str
    neg_resp: str
    difficulty: str = UNKNOWN      # easy | hard | unknown
    level: str = UNKNOWN           # person | social | nation | unknown
    value: str = ""                # one of the twelve core values, or ""
    domain: str = ""
    source: str = ""               # file:line
    schema: str = COMPARISON
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. the official label/prompt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def content_id(question: str, pos: str, neg: str) -> str:
    key = "\x1f".join(normalise(t) for t in (question, pos, neg))
    return "mc-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def detect_schema(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    if "meta_info" in obj and "label" in obj:
        return CVALUES
    if "pos_resp" in obj and "neg_resp" in obj and ("prompt" in obj or "question" in obj):
        return COMPARISON
    return None


def _text(obj: dict, key: str, where: str, what: str | None = None) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v.strip():
        got = "missing" if key not in obj else f"{type(v).__name__} {str(v)[:40]!r}"
        raise InputError(where, f"`{what or key}` must be a non-empty string ({got})")
    return v.strip()


def _difficulty(v: Any, where: str, key: str) -> str:
    if v is None or v == "":
        return UNKNOWN
    if not isinstance(v, str) or v.strip().lower() not in DIFFICULTIES:
        raise InputError(where, f"`{key}` must be one of {DIFFICULTIES}, got {v!r}")
    return v.strip().lower()


def _opt_str(obj: dict, key: str, where: str) -> str:
    v = obj.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise InputError(where, f"`{key}` must be a string, got {type(v).__name__}")
    return v.strip()


def _parse_cvalues(obj: dict, where: str) -> dict[str, Any]:
    label = obj.get("label")
    if label not in ("回复1", "回复2"):
        raise InputError(where, f"`label` must be \"回复1\" or \"回复2\", got {label!r}")
    meta = obj.get("meta_info")
    if not isinstance(meta, dict):
        raise InputError(where, f"`meta_info` must be an object, got {type(meta).__name__}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(where, "`prompt` must be a non-empty string")
    return dict(
        question=_text(meta, "question", where, "meta_info.question"),
        pos_resp=_text(meta, "pos_resp", where, "meta_info.pos_resp"),
        neg_resp=_text(meta, "neg_resp", where, "meta_info.neg_resp"),
        difficulty=_difficulty(meta.get("difficulty_level"), where, "meta_info.difficulty_level"),
        domain=_opt_str(meta, "domain_en", where) or _opt_str(meta, "domain_zh", where),
        level=UNKNOWN, value="",
        extra={"label": label, "domain_zh": _opt_str(meta, "domain_zh", where)},
        given_id=None,
    )


def _parse_comparison(obj: dict, where: str) -> dict[str, Any]:
    if "prompt" in obj and "question" in obj:
        raise InputError(where, "give the question as `prompt` or `question`, not both")
    qkey = "question" if "question" in obj else "prompt"
    cat = obj.get("categorization")
    level, value = UNKNOWN, ""
    if cat is not None:
        why = check_categorization(cat)
        if why:
            raise InputError(where, f"categorization: {why}")
        level, value = cat["level"], cat["value"]
    given = obj.get("id")
    if given is not None and (not isinstance(given, (str, int)) or isinstance(given, bool) or str(given).strip() == ""):
        raise InputError(where, f"`id` must be a non-empty string or integer, got {given!r}")
    extra = {k: obj[k] for k in ("pos_type", "neg_type") if k in obj}
    return dict(
        question=_text(obj, qkey, where),
        pos_resp=_text(obj, "pos_resp", where),
        neg_resp=_text(obj, "neg_resp", where),
        difficulty=_difficulty(obj.get("difficulty"), where, "difficulty"),
        domain=_opt_str(obj, "domain", where),
        level=level, value=value, extra=extra,
        given_id=None if given is None else str(given).strip(),
    )


def load_file(path: str | Path) -> tuple[list[EvalItem], dict[str, Any]]:
    """Items of one file and a summary {file, schema, rows, items, duplicates}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such items file")
    schema: str | None = None
    first_line = 0
    items: list[EvalItem] = []
    seen: dict[str, str] = {}      # content id -> where
    ids: dict[str, str] = {}       # item id -> where
    rows = dups = 0
    for n, _raw, obj in iter_jsonl(path):
        where = f"{path}:{n}"
        rows += 1
        s = detect_schema(obj)
        if s is None:
            keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise InputError(where, "not a two-choice item: expected CValues rows (prompt, label, meta_info) or "
                                    f"comparison rows (prompt|question, pos_resp, neg_resp); got {keys}")
        if schema is None:
            schema, first_line = s, n
        elif s != schema:
            raise InputError(where, f"row is in the {s} schema but line {first_line} set this file's schema "
                                    f"to {schema}")
        f = _parse_cvalues(obj, where) if s == CVALUES else _parse_comparison(obj, where)
        if normalise(f["pos_resp"]) == normalise(f["neg_resp"]):
            raise InputError(where, "pos_resp and neg_resp are the same text")
        cid = content_id(f["question"], f["pos_resp"], f["neg_resp"])
        if cid in seen:
            dups += 1
            log.warning("%s: duplicate of %s (same question and responses), kept once", where, seen[cid])
            continue
        seen[cid] = where
        item_id = f.pop("given_id") or cid
        if item_id in ids:
            raise InputError(where, f"id {item_id!r} already used at {ids[item_id]}")
        ids[item_id] = where
        items.append(EvalItem(id=item_id, source=where, schema=s, **f))
    if not items:
        raise InputError(str(path), "no items (the file is empty)")
    return items, {"file": str(path), "schema": schema, "rows": rows, "items": len(items), "duplicates": dups}


def expand_paths(spec: str | Path | Iterable[str | Path]) -> list[Path]:
    """A file, a folder (its *.jsonl files, sorted) or a list of either."""
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    out: list[Path] = []
    for s in specs:
        p = Path(s)
        if p.is_dir():
            files = sorted(p.glob("*.jsonl"))
            if not files:
                raise InputError(str(p), "folder holds no *.jsonl items file")
            out += files
        else:
            out.append(p)
    if not out:
        raise InputError("eval.items", "no items file given")
    return out


def load_items(spec: str | Path | Iterable[str | Path]) -> tuple[list[EvalItem], list[dict[str, Any]]]:
    """All items of the given files (ids must be unique across files), and one summary per file."""
    items: list[EvalItem] = []
    summaries: list[dict[str, Any]] = []
    where_id: dict[str, str] = {}
    for p in expand_paths(spec):
        its, summ = load_file(p)
        for it in its:
            if it.id in where_id:
                raise InputError(it.source, f"id {it.id!r} already used at {where_id[it.id]}")
            where_id[it.id] = it.source
        items += its
        summaries.append(summ)
    return items, summaries
