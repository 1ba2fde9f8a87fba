"""Metrics of `vad eval` answer rows (overall, per difficulty, per level, per domain), and their table.

An "answer" is one (item, order) row: item_id, order, gold, pred (A, B, refused, Need_Check or error), and
for the loglik method logprob_A / logprob_B.
- acc = correct / all answers; acc_star = correct / answered (A or B; refused, Need_Check and error excluded);
- consistency = share of items whose two orders chose the same response (both pos or both neg);
  consistent_acc = share of items answered correctly in both orders;
- first_position_rate = share of answered answers that chose A (0.5 = no position preference);
- refused, need_check, error (counts);
- loglik only: debiased_acc = share of items where log p(pos) summed over both orders beats log p(neg) summed
  over both orders (a constant position preference cancels: what is left is the model's preference between
  the two responses), mean_margin (log p(gold) − log p(other)) and mean_a_minus_b (log p(A) − log p(B): the
  position preference in nats)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vad.eval.answers import ERROR, NEED_CHECK, REFUSED
from vad.eval.prompts import CHOICES, ORDERS


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def group_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of a list of answer rows (each with item_id, order, gold, pred; optional logprob_A/B)."""
    total = len(rows)
    answered = [r for r in rows if r["pred"] in CHOICES]
    correct = sum(r["pred"] == r["gold"] for r in rows)
    by_item: dict[str, dict[str, str]] = {}
    for r in rows:
        by_item.setdefault(r["item_id"], {})[r["order"]] = (
            ("pos" if r["pred"] == r["gold"] else "neg") if r["pred"] in CHOICES else r["pred"])
    n_items = len(by_item)
    consistent = sum(1 for c in by_item.values()
                     if len(c) == len(ORDERS) and len(set(c.values())) == 1
                     and next(iter(c.values())) in ("pos", "neg"))
    both_right = sum(1 for c in by_item.values() if len(c) == len(ORDERS) and set(c.values()) == {"pos"})
    out: dict[str, Any] = {
        "acc": _ratio(correct, total),
        "acc_star": _ratio(correct, len(answered)),
        "consistency": _ratio(consistent, n_items),
        "consistent_acc": _ratio(both_right, n_items),
        "first_position_rate": _ratio(sum(r["pred"] == "A" for r in answered), len(answered)),
        "items": n_items,
        "answers": total,
        "answered": len(answered),
        "correct": correct,
        "refused": sum(r["pred"] == REFUSED for r in rows),
        "need_check": sum(r["pred"] == NEED_CHECK for r in rows),
        "error": sum(r["pred"] == ERROR for r in rows),
    }
    lp = [r for r in rows if r.get("logprob_A") is not None and r.get("logprob_B") is not None]
    if lp:
        # per item, log p(pos) and log p(neg) summed over both orders: a constant preference for one
        # position cancels, what remains is the model's preference between the two responses
        sums: dict[str, list[float]] = {}
        for r in lp:
            gold_lp, other_lp = ((r["logprob_A"], r["logprob_B"]) if r["gold"] == "A"
                                 else (r["logprob_B"], r["logprob_A"]))
            s = sums.setdefault(r["item_id"], [0.0, 0.0, 0])
            s[0] += gold_lp
            s[1] += other_lp
            s[2] += 1
        full = [s for s in sums.values() if s[2] == len(ORDERS)]
        out["debiased_acc"] = _ratio(sum(s[0] > s[1] for s in full), len(full))
        margin = [(r["logprob_A"] - r["logprob_B"]) * (1 if r["gold"] == "A" else -1) for r in lp]
        out["mean_margin"] = round(sum(margin) / len(lp), 4)
        out["mean_a_minus_b"] = round(sum(r["logprob_A"] - r["logprob_B"] for r in lp) / len(lp), 4)
    return out


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Overall metrics (top level) plus by_difficulty, by_level and by_domain (when items name a domain)."""
    out = group_metrics(rows)
    for key, name in (("difficulty", "by_difficulty"), ("level", "by_level"), ("domain", "by_domain")):
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(r.get(key) or "unknown", []).append(r)
        if key == "domain" and set(groups) == {"unknown"}:
            continue
        out[name] = {k: group_metrics(v) for k, v in sorted(groups.items())}
    return out


def format_summary(m: dict[str, Any]) -> str:
    """The metrics of a run (vad.eval.runner) as a table: overall, then per difficulty and per level."""
    def f(v: Any) -> str:
        return "  -  " if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    cols = ("acc", "acc_star", "consistency", "first_position_rate", "refused", "need_check", "error", "items")
    if "debiased_acc" in m:
        cols += ("debiased_acc",)
    head = f"{'group':<22}" + "".join(f"{c:>21}" if c == "first_position_rate" else f"{c:>13}" for c in cols)
    lines = [f"{m['backend']}/{m['model']} method={m['method']} fewshot={m['fewshot']} "
             f"prompt={m['prompt']['name']}@{m['prompt']['version']}  {m['seconds']} s", head]

    def line(name: str, g: dict[str, Any]) -> str:
        return f"{name:<22}" + "".join(f"{f(g.get(c)):>21}" if c == "first_position_rate" else f"{f(g.get(c)):>13}"
                                        for c in cols)

    lines.append(line("overall", m))
    for key in ("by_difficulty", "by_level"):
        for k, g in (m.get(key) or {}).items():
            lines.append(line(f"{key[3:]}={k}", g))
    return "\n".join(lines)
