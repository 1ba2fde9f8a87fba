"""Select "high quality" PKU-SafeRLHF pairs (source `translated`, still English until `translate`).

docs/methods.md §3 trap: `safer_response_id` is set even when both responses are unsafe, so it alone is not enough.
The rules are explicit params (`select:` in params.yaml); each rejected row is ledgered with its own reason.
Both the current 16-field schema and the 7-field v0 schema are accepted (v0 has no severity/harm fields)."""
from __future__ import annotations

import re
from pathlib import Path

from vad.core.errors import InputError
from vad.core.io import iter_jsonl
from vad.core.ledger import StageRun
from vad.core.record import Lineage, Record, sha256_text

V0_FIELDS = ("prompt", "response_0", "response_1", "is_response_0_safe", "is_response_1_safe",
             "better_response_id", "safer_response_id")


def _check_row(obj: object, where: str) -> dict:
    if not isinstance(obj, dict):
        raise InputError(where, f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in V0_FIELDS if k not in obj]
    if missing:
        raise InputError(where, f"missing SafeRLHF field(s) {missing}")
    for k in ("better_response_id", "safer_response_id"):
        if obj[k] not in (0, 1):
            raise InputError(where, f"{k} must be 0 or 1, got {obj[k]!r}")
    return obj


def categorize(prompt: str, harm: list[str], params: "SelectParams") -> tuple[dict, str]:
    """Level/value from the harm categories the pair is about; keyword rules for harmless pairs."""
    for cat in harm:
        if cat in params.harm_map:
            return params.harm_map[cat].as_dict(), f"harm:{cat}"
    low = prompt.lower()
    for rule in params.keyword_map:
        if re.search(rule.pattern, low):
            return {"level": rule.level, "value": rule.value}, f"keyword:{rule.pattern}"
    return params.default_categorization.as_dict(), "default"


def select_pairs(path: Path, rel: str, params: "SelectParams", run: StageRun) -> list[Record]:
    kept = []
    for line_no, raw, obj in iter_jsonl(path):
        row = _check_row(obj, f"{rel}:{line_no}")
        k = row["safer_response_id"]
        chosen, rejected = row[f"response_{k}"], row[f"response_{1 - k}"]
        harm_other = [c for c, v in (row.get(f"response_{1 - k}_harm_category") or {}).items() if v]
        harm_chosen = [c for c, v in (row.get(f"response_{k}_harm_category") or {}).items() if v]
        cat, rule = categorize(row["prompt"], harm_other or harm_chosen, params)
        rec = Record(
            instruction=row["prompt"].strip(),
            input="",
            output=chosen.strip(),
            source="translated",
            categorization=cat,
            lineage=Lineage(origin={"file": rel, "line": line_no, "sha256": sha256_text(raw)}),
            meta={
                "rejected": rejected.strip(),
                "chosen_index": k,
                "better_response_id": row["better_response_id"],
                "harm_categories": harm_other,
                "severity": {"chosen": row.get(f"response_{k}_severity_level"),
                             "rejected": row.get(f"response_{1 - k}_severity_level")},
                "rejected_safe": row[f"is_response_{1 - k}_safe"],
                "prompt_source": row.get("prompt_source"),
                "categorization_rule": rule,
                "licence": "CC BY-NC 4.0",
            },
        )
        rec.add_op("select_pairs", "select", chosen_index=k)
        run.take([rec])
        reason = _reject_reason(row, k, chosen, params)
        if reason:
            run.drop(rec, *reason)
        else:
            kept.append(rec)
    return kept


LEDGER_REASONS = {
    "sha256_mismatch": "a response's sha256 does not match the one the raw row gives (`select.verify_sha256`)",
    "chosen_unsafe": "the safer response is not safe (`select.require_chosen_safe`)",
    "chosen_severity": "the safer response's severity is above `select.max_chosen_severity`",
    "better_ne_safer": "the better response is not the safer one (`select.require_better_eq_safer`)",
    "rejected_safe": "both responses are safe: no preference signal (`select.require_rejected_unsafe`)",
    "chosen_too_short": "the safer response has fewer than `select.min_response_words` words",
    "chosen_too_long": "the safer response has more than `select.max_response_words` words",
}


def _reject_reason(row: dict, k: int, chosen: str, p: dict) -> tuple[str, str] | None:
    if p.verify_sha256:
        for j in (0, 1):
            want = row.get(f"response_{j}_sha256")
            if want and sha256_text(row["prompt"] + row[f"response_{j}"]) != want:
                return "sha256_mismatch", f"response_{j}_sha256 does not match sha256(prompt + response_{j})"
    if p.require_chosen_safe and not row[f"is_response_{k}_safe"]:
        both = "" if row[f"is_response_{1 - k}_safe"] else " (both responses unsafe)"
        return "chosen_unsafe", f"safer response {k} is not safe{both}"
    sev = row.get(f"response_{k}_severity_level")
    if sev is not None and sev > p.max_chosen_severity:
        return "chosen_severity", f"severity {sev} > max_chosen_severity {p.max_chosen_severity}"
    if p.require_better_eq_safer and row["better_response_id"] != k:
        return "better_ne_safer", f"better_response_id {row['better_response_id']} != safer_response_id {k}"
    if p.require_rejected_unsafe and row[f"is_response_{1 - k}_safe"]:
        return "rejected_safe", "both responses are safe: no preference signal"
    words = len(chosen.split())
    if words < p.min_response_words:
        return "chosen_too_short", f"{words} words < min_response_words {p.min_response_words}"
    if words > p.max_response_words:
        return "chosen_too_long", f"{words} words > max_response_words {p.max_response_words}"
    return None
