"""Reviewer agreement and sample estimates: Cohen's kappa, and a Wilson interval for a reject rate."""
from __future__ import annotations

from collections import Counter
from statistics import NormalDist


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' labels, one (rater A, rater B) pair per item: (p_o - p_e) / (1 - p_e).

    With reviewers in rotating pairs, "rater A" is each record's first assigned reviewer and "rater B" the
    second (pooled kappa). None when there is nothing to compare, or when chance agreement is already certain
    (both raters gave one and the same label to everything: kappa is undefined, 0/0)."""
    n = len(pairs)
    if not n:
        return None
    p_o = sum(a == b for a, b in pairs) / n
    ca, cb = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    p_e = sum(ca[k] * cb[k] for k in ca.keys() | cb.keys()) / (n * n)
    if p_e >= 1.0:
        return None
    return round((p_o - p_e) / (1 - p_e), 4)


def wilson(k: int, n: int, confidence: float) -> tuple[float | None, float | None]:
    """Wilson score interval for a proportion k/n (good for small n and rates near 0, unlike the normal one)."""
    if n <= 0:
        return None, None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / den
    return round(max(0.0, mid - half), 4), round(min(1.0, mid + half), 4)
