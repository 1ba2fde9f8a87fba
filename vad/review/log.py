"""The review decision log (`review/decisions.jsonl`): one appended JSON line per decision — the audit trail.

A line says who decided what about which content, when, under which guidelines:

    {"v": 1, "uid": "9f2c41d07a3b5e18", "id": "<record id>", "sha256": "<sha256 of the reviewed content>",
     "origin": "<source>|<raw file>:<line>|r<evol round>", "reviewer": "wang", "role": "reviewer",
     "ts": "2025-05-01T08:30:12.123456Z", "guidelines": "1", "decision": "reject",
     "reason": "stereotype", "note": "...", "fields": {}, "undoes": ""}

`decision` is accept, reject (with a `reason` code from params `review.reasons`, and free text in `note`), edit
(`fields`: the changed ones of instruction, input, output, categorization), skip (seen, not decided: only the
app's queue order uses it) or undo (withdraws the decision `undoes`; the one before it counts again).
`sha256` is `content_sha256` of the record as the reviewer saw it: when the record changes upstream the decision
no longer matches it and is stale, never applied (vad/review/state.py).

The file is tracked by git, not inside the `dvc add`-ed data/, with `merge=union` (.gitattributes): merging two
reviewers' branches keeps both sides' lines, so line order means nothing and every reader orders decisions by
(ts, uid). Appends take a file lock and write whole lines with O_APPEND, so reviewer processes writing at once
never interleave or lose a line."""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vad.core.errors import InputError
from vad.core.io import iter_jsonl, parse_json_line
from vad.core.record import Record, dumps, normalise
from vad.core.taxonomy import check_categorization

VERSION = 1
KINDS = ("accept", "reject", "edit", "skip", "undo")
APPLYING = ("accept", "reject", "edit")  # the kinds that say what happens to the record
ROLES = ("reviewer", "adjudicator")
EDITABLE = ("instruction", "input", "output", "categorization")
TEXT_FIELDS = ("instruction", "input", "output")
KEYS = ("v", "uid", "id", "sha256", "origin", "reviewer", "role", "ts", "guidelines", "decision", "reason", "note",
        "fields", "undoes")
LOCK_TIMEOUT_S = 30.0
_HEX64 = re.compile(r"[0-9a-f]{64}")


def content_sha256(rec: Record) -> str:
    """What a reviewer judges: the five exported attributes (text, source and categorization)."""
    return hashlib.sha256(dumps(rec.export_dict()).encode("utf-8")).hexdigest()


def origin_key(rec: Record) -> str:
    """Finds a record again after an upstream edit changed its text (and so its id): its source, raw line and,
    for evolutions, the round (one seed gives at most one surviving evolution per round)."""
    o = rec.lineage.origin or {}
    rnd = (rec.meta.get("evol") or {}).get("round", "")
    return f"{rec.source}|{o.get('file', '')}:{o.get('line', '')}|r{rnd}"


def real_changes(rec: Record, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of an edit that really change the record: text that differs after normalisation (NFKC,
    whitespace; the same rule as record ids), a different categorization."""
    out = {}
    for k, v in fields.items():
        if k in TEXT_FIELDS:
            if normalise(str(v)) != normalise(getattr(rec, k)):
                out[k] = str(v).replace("\r\n", "\n")
        elif k == "categorization" and v != rec.categorization:
            out[k] = {"level": v.get("level"), "value": v.get("value")} if isinstance(v, dict) else v
    return out


@dataclass
class Decision:
    uid: str
    id: str
    sha256: str
    reviewer: str
    ts: str
    decision: str
    role: str = "reviewer"
    origin: str = ""
    guidelines: str = ""
    reason: str = ""
    note: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    undoes: str = ""
    line: int = 0  # where it was read from (not written)

    @property
    def order(self) -> tuple[str, str]:
        return (self.ts, self.uid)

    def to_json(self) -> dict[str, Any]:
        return {"v": VERSION, **{k: getattr(self, k) for k in KEYS if k != "v"}}

    def outcome(self) -> tuple:
        """What the decision does to the record; two reviewers agree when their outcomes are equal."""
        if self.decision == "edit":
            norm = {k: normalise(v) if isinstance(v, str) else v for k, v in self.fields.items()}
            return ("edit", tuple(sorted((k, dumps(v)) for k, v in norm.items())))
        return (self.decision,)


def now_ts() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_decision(rec: Record, reviewer: str, decision: str, *, role: str = "reviewer", guidelines: str = "",
                 reason: str = "", note: str = "", fields: dict[str, Any] | None = None, undoes: str = "",
                 reasons: dict[str, str] | None = None) -> Decision:
    """A validated decision about `rec` as it is now (raises InputError naming the record)."""
    d = Decision(uid=uuid.uuid4().hex[:16], id=rec.id, sha256=content_sha256(rec), origin=origin_key(rec),
                 reviewer=reviewer, role=role, ts=now_ts(), guidelines=guidelines, decision=decision,
                 reason=reason, note=note, fields=dict(fields or {}), undoes=undoes)
    return parse(d.to_json(), f"record {rec.id}", reasons)


def parse(obj: Any, where: str, reasons: dict[str, str] | None = None, line: int = 0) -> Decision:
    """One decision line, checked; `reasons`: the allowed reject codes (params review.reasons)."""
    if not isinstance(obj, dict):
        raise InputError(where, "a decision must be a JSON object")
    unknown = sorted(set(obj) - set(KEYS))
    if unknown:
        raise InputError(where, f"unknown key {unknown[0]!r} (a decision has {', '.join(KEYS)})")
    if obj.get("v") != VERSION:
        raise InputError(where, f"unknown decision format version {obj.get('v')!r} (this vad writes {VERSION})")
    for k in ("uid", "id", "reviewer", "ts"):
        if not isinstance(obj.get(k), str) or not obj[k].strip():
            raise InputError(where, f"{k!r} must be a non-empty string")
    if not isinstance(obj.get("sha256"), str) or not _HEX64.fullmatch(obj["sha256"]):
        raise InputError(where, "'sha256' must be the 64 hex digits of the reviewed content's sha256")
    try:
        datetime.fromisoformat(obj["ts"].replace("Z", "+00:00"))
    except ValueError:
        raise InputError(where, f"'ts' {obj['ts']!r} is not an ISO 8601 time") from None
    kind = obj.get("decision")
    if kind not in KINDS:
        raise InputError(where, f"decision must be one of {', '.join(KINDS)}, got {kind!r}")
    role = obj.get("role", "reviewer")
    if role not in ROLES:
        raise InputError(where, f"role must be one of {', '.join(ROLES)}, got {role!r}")
    for k in ("origin", "guidelines", "reason", "note", "undoes"):
        if not isinstance(obj.get(k, ""), str):
            raise InputError(where, f"{k!r} must be a string")
    fields = obj.get("fields") or {}
    if not isinstance(fields, dict):
        raise InputError(where, "'fields' must be an object")
    if kind == "reject":
        if not obj.get("reason"):
            raise InputError(where, "a reject needs a reason code")
        if reasons is not None and obj["reason"] not in reasons:
            raise InputError(where, f"reason {obj['reason']!r} is not one of params review.reasons "
                                    f"({', '.join(reasons)})")
    if kind == "edit":
        if not fields:
            raise InputError(where, f"an edit must change one of {', '.join(EDITABLE)}")
        bad = sorted(set(fields) - set(EDITABLE))
        if bad:
            raise InputError(where, f"field {bad[0]!r} cannot be edited (only {', '.join(EDITABLE)})")
        for k in TEXT_FIELDS:
            if k in fields and not isinstance(fields[k], str):
                raise InputError(where, f"edited {k} must be a string")
        if "categorization" in fields:
            problem = check_categorization(fields["categorization"])
            if problem:
                raise InputError(where, problem)
    elif fields:
        raise InputError(where, f"only an edit has 'fields' (this is a {kind})")
    if kind == "undo" and not obj.get("undoes"):
        raise InputError(where, "an undo names the decision it withdraws ('undoes': its uid)")
    return Decision(uid=obj["uid"], id=obj["id"], sha256=obj["sha256"], reviewer=obj["reviewer"], ts=obj["ts"],
                    decision=kind, role=role, origin=obj.get("origin", ""), guidelines=obj.get("guidelines", ""),
                    reason=obj.get("reason", ""), note=obj.get("note", ""), fields=dict(fields),
                    undoes=obj.get("undoes", ""), line=line)


def read_log(path: str | Path, reasons: dict[str, str] | None = None) -> list[Decision]:
    """Every decision in the file, ordered by (ts, uid). A line repeated by a merge counts once."""
    path = Path(path)
    out: dict[str, Decision] = {}
    if not path.exists():
        return []
    for n, _raw, obj in iter_jsonl(path):
        d = parse(obj, f"{path}:{n}", reasons, line=n)
        first = out.get(d.uid)
        if first is not None:
            if first.to_json() != d.to_json():
                raise InputError(f"{path}:{n}", f"uid {d.uid} was already used at line {first.line} for another decision")
            continue
        out[d.uid] = d
    return sorted(out.values(), key=lambda d: d.order)


def append(path: str | Path, decisions: list[Decision]) -> None:
    """Append whole lines under the log's file lock (safe with several reviewer processes at once)."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(dumps(d.to_json()) + "\n" for d in decisions).encode("utf-8")
    with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S):
        # a file whose last line lacks its newline (a hand edit) must not swallow our first line
        if path.exists() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    data = b"\n" + data
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)


class LogTail:
    """Reads a log as it grows (the app: other reviewer processes append to the same file). `new()` returns the
    decisions appended since the last call; a file that shrank or was replaced (a git merge) is read again."""

    def __init__(self, path: str | Path, reasons: dict[str, str] | None = None):
        self.path, self.reasons = Path(path), reasons
        self.offset, self.lines, self.ino = 0, 0, None
        self.seen: set[str] = set()

    def new(self) -> tuple[list[Decision], bool]:
        """(new decisions, whether the whole file was re-read: then callers rebuild their state)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return [], False
        reset = st.st_ino != self.ino or st.st_size < self.offset
        if reset:
            self.offset, self.lines, self.ino, self.seen = 0, 0, st.st_ino, set()
        if st.st_size == self.offset:
            return [], reset
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read(st.st_size - self.offset)
        end = chunk.rfind(b"\n") + 1  # only whole lines: a writer may be mid-line
        out = []
        for raw in chunk[:end].decode("utf-8").split("\n")[:-1]:
            self.lines += 1
            if not raw.strip():
                continue
            where = f"{self.path}:{self.lines}"
            d = parse(parse_json_line(raw, where), where, self.reasons, line=self.lines)
            if d.uid not in self.seen:
                self.seen.add(d.uid)
                out.append(d)
        self.offset += end
        return out, reset
