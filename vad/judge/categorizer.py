"""The offline categorizer: a record's text → one of the twelve values (and so its level), with a confidence.

Model: tf-idf of character 1–2-grams (no word segmenter needed for Chinese; `sublinear_tf` so a repeated
character does not dominate) under a logistic-loss linear model fitted by SGD (scikit-learn). Chosen by
measurement over the hand-written records (benchmarks/categorizer.py compares n-gram ranges and classifiers: it
is as accurate as the best, ~10× faster to fit than lbfgs logistic regression, and gives probabilities to
threshold with `categorize.min_confidence`, which a plain linear SVM does not). The value decides the
level, since each value belongs to exactly one level.

Trained by the `categorize_train` stage on the hand-written records plus the machine-made records reviewers
decided (their accepted or edited category), so it retrains when either changes. Its metrics: cross-validated
value and level accuracy with the per-class confusion, beside two baselines it must beat —

  nearest_centroid  tf-idf (the same features) nearest class centroid by cosine: a few lines of numpy
  domain_table      the lookup tables (seeds.domain_map, select.harm_map/keyword_map): the category a
                    machine-made record arrives with. Measured only on reviewed machine-made records (the table
                    has nothing to say about a hand-written one), so it has no figure before anyone reviewed.
"""
from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vad.core.record import Record
from vad.core.taxonomy import LEVELS, PAIRS

VALUE_LEVEL = {v: lvl for lvl, vals in LEVELS.items() for v in vals}
MODEL_NAME = "tfidf-char12-sgd"


def text_of(rec: Record | dict) -> str:
    """What the categorizer reads: the instruction (the topic), its input, and the answer."""
    get = (lambda k: rec.get(k, "")) if isinstance(rec, dict) else (lambda k: getattr(rec, k))
    return "\n".join(t for t in (get("instruction"), get("input"), get("output")) if t)


def label_of(cat: dict) -> str:
    return f"{cat['level']}/{cat['value']}"


def as_categorization(label: str) -> dict[str, str]:
    level, value = label.split("/", 1)
    return {"level": level, "value": value}


@dataclass
class Example:
    text: str
    label: str              # "level/value", the truth (hand-written, or what a reviewer settled)
    source: str             # manual | evol | translated
    table: str | None = None  # machine-made: the lookup table's category ("level/value"), for the baseline


def _vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=1)


def _classifier(seed: int):
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=50, random_state=seed)


class Categorizer:
    """A trained model; `predict` gives {level, value, confidence, by} per text."""

    def __init__(self, vectorizer, classifier, meta: dict[str, Any]):
        self.vectorizer, self.classifier, self.meta = vectorizer, classifier, meta

    @classmethod
    def train(cls, examples: list[Example], seed: int = 0) -> "Categorizer":
        if len({e.label for e in examples}) < 2:
            raise ValueError(f"the categorizer needs examples of at least two values, got {len(examples)} examples")
        vec = _vectorizer()
        x = vec.fit_transform([e.text for e in examples])
        clf = _classifier(seed).fit(x, [e.label for e in examples])
        return cls(vec, clf, {"model": MODEL_NAME, "examples": len(examples),
                              "by_source": dict(sorted(Counter(e.source for e in examples).items()))})

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        if not texts:
            return []
        proba = self.classifier.predict_proba(self.vectorizer.transform(texts))
        labels = self.classifier.classes_
        out = []
        for row in proba:
            i = int(np.argmax(row))
            cat = as_categorization(str(labels[i]))
            out.append({**cat, "confidence": round(float(row[i]), 4), "by": MODEL_NAME})
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump({"vectorizer": self.vectorizer, "classifier": self.classifier, "meta": self.meta}, f,
                        protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: Path) -> "Categorizer":
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no trained categorizer (run `dvc repro categorize_train`)")
        with open(path, "rb") as f:  # our own stage's output, not a downloaded file
            d = pickle.load(f)
        return cls(d["vectorizer"], d["classifier"], d["meta"])


# --- measuring ------------------------------------------------------------------------------------------------
def nearest_centroid(train_x, train_y: list[str], test_x) -> list[str]:
    """The baseline: each class's mean tf-idf vector (L2-normalised), the nearest one by cosine."""
    classes = sorted(set(train_y))
    y = np.array(train_y)
    cents = np.vstack([np.asarray(train_x[y == c].mean(axis=0)).ravel() for c in classes])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-12
    sims = test_x @ cents.T
    return [classes[i] for i in np.asarray(sims).argmax(axis=1)]


def _accuracy(truth: list[str], pred: list[str]) -> dict[str, Any]:
    n = len(truth)
    if not n:
        return {"n": 0, "value": None, "level": None}
    value = sum(t == p for t, p in zip(truth, pred)) / n
    level = sum(t.split("/")[0] == p.split("/")[0] for t, p in zip(truth, pred)) / n
    return {"n": n, "value": round(value, 4), "level": round(level, 4)}


def confusion(truth: list[str], pred: list[str]) -> dict[str, dict[str, int]]:
    """truth → {predicted: count}, for the classes that occur (rows in taxonomy order)."""
    out: dict[str, Counter] = {}
    for t, p in zip(truth, pred):
        out.setdefault(t, Counter())[p] += 1
    return {t: dict(sorted(out[t].items(), key=lambda kv: -kv[1])) for t in PAIRS if t in out}


def cross_validate(examples: list[Example], folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Stratified k-fold accuracy of the model and of nearest-centroid on the same folds; the domain table on
    the reviewed machine-made examples; chance levels beside them."""
    from sklearn.model_selection import StratifiedKFold

    labels = [e.label for e in examples]
    counts = Counter(labels)
    k = min(folds, min(counts.values())) if counts else 0
    model_pred: list[str | None] = [None] * len(examples)
    centroid_pred: list[str | None] = [None] * len(examples)
    if k >= 2:
        skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        texts = [e.text for e in examples]
        for tr, te in skf.split(texts, labels):
            vec = _vectorizer()
            xtr = vec.fit_transform([texts[i] for i in tr])
            xte = vec.transform([texts[i] for i in te])
            ytr = [labels[i] for i in tr]
            clf = _classifier(seed).fit(xtr, ytr)
            for i, p in zip(te, clf.predict(xte)):
                model_pred[i] = str(p)
            for i, p in zip(te, nearest_centroid(xtr, ytr, xte)):
                centroid_pred[i] = p
    done = [i for i, p in enumerate(model_pred) if p is not None]
    truth = [labels[i] for i in done]
    mp = [model_pred[i] for i in done]
    cp = [centroid_pred[i] for i in done]
    tabled = [e for e in examples if e.table is not None]
    machine = [i for i in done if examples[i].table is not None]
    level_counts = Counter(label.split("/")[0] for label in labels)
    return {
        "folds": k,
        "examples": len(examples),
        "model": {**_accuracy(truth, mp), "per_source": {
            s: _accuracy([labels[i] for i in done if examples[i].source == s],
                         [model_pred[i] for i in done if examples[i].source == s])
            for s in sorted({e.source for e in examples})}},
        "baselines": {
            "nearest_centroid": _accuracy(truth, cp),
            "domain_table": _accuracy([e.label for e in tabled], [e.table for e in tabled]),
            "model_on_reviewed_machine_records": _accuracy([labels[i] for i in machine], [model_pred[i] for i in machine]),
        },
        "chance": {"value_uniform": round(1 / len(PAIRS), 4), "level_uniform": round(1 / len(LEVELS), 4),
                   "value_majority": round(max(counts.values()) / len(labels), 4) if labels else None,
                   "level_majority": round(max(level_counts.values()) / len(labels), 4) if labels else None},
        "confusion": confusion(truth, mp),
    }
