"""Which offline categorizer: stratified 5-fold accuracy (value and level) and fit time of text classifiers on the
hand-written records, beside the tf-idf nearest-centroid baseline and chance. The pick in
vad/judge/categorizer.py (char 1–2-grams, SGD logistic loss) rests on these figures; rerun after the hand-written
data grows.

    .venv/bin/python benchmarks/categorizer.py [--folds 5]

Also the confidence threshold: the share of predictions at or above each `categorize.min_confidence` and how
many of those are right (what the judge stage would let set a category, and what it sends to review).
fastText supervised is not measured: only the predict half of fastText is installed (fasttext-predict, for
language ID), and the training wheels replace that module. Writes benchmarks/results/categorizer.json."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for f in sorted((ROOT / "data/raw/manual").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            texts.append("\n".join(t for t in (o["instruction"], o.get("input", ""), o["output"]) if t))
            labels.append(f"{o['categorization']['level']}/{o['categorization']['value']}")
    return texts, labels


def cv(texts, labels, make_vec, make_clf, folds: int, centroid: bool = False) -> dict:
    from sklearn.model_selection import StratifiedKFold

    from vad.judge.categorizer import nearest_centroid

    pred, conf = [None] * len(texts), [None] * len(texts)
    fit_s = 0.0
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, labels):
        t0 = time.perf_counter()
        vec = make_vec()
        xtr = vec.fit_transform([texts[i] for i in tr])
        ytr = [labels[i] for i in tr]
        xte = vec.transform([texts[i] for i in te])
        if centroid:
            out, p = nearest_centroid(xtr, ytr, xte), [None] * len(te)
        else:
            clf = make_clf().fit(xtr, ytr)
            out = clf.predict(xte)
            p = clf.predict_proba(xte).max(axis=1) if hasattr(clf, "predict_proba") else [None] * len(te)
        fit_s += time.perf_counter() - t0
        for i, o, c in zip(te, out, p):
            pred[i], conf[i] = str(o), c
    value = np.mean([a == b for a, b in zip(pred, labels)])
    level = np.mean([a.split("/")[0] == b.split("/")[0] for a, b in zip(pred, labels)])
    res = {"value": round(float(value), 4), "level": round(float(level), 4), "seconds": round(fit_s, 2)}
    if conf[0] is not None:
        ok = np.array([a == b for a, b in zip(pred, labels)])
        c = np.array(conf, dtype=float)
        res["thresholds"] = {str(t): {"share": round(float((c >= t).mean()), 4),
                                      "accuracy": round(float(ok[c >= t].mean()), 4) if (c >= t).any() else None}
                             for t in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5)
    a = ap.parse_args()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.naive_bayes import ComplementNB
    from sklearn.svm import LinearSVC

    from vad.judge.categorizer import _classifier, _vectorizer

    texts, labels = load()
    grams = {"char 1-2": (1, 2), "char 1-3": (1, 3), "char 2-4": (2, 4)}
    classifiers = {
        "sgd logistic loss": lambda: SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=50, random_state=0),
        "logistic regression (lbfgs, C=20)": lambda: LogisticRegression(C=20.0, max_iter=3000),
        "linear svm": lambda: LinearSVC(C=1.0),
        "complement naive bayes": lambda: ComplementNB(alpha=0.3),
    }
    rows = {"chosen (vad.judge.categorizer)": cv(texts, labels, _vectorizer, lambda: _classifier(0), a.folds)}
    for gname, rng in grams.items():
        vec = lambda rng=rng: TfidfVectorizer(analyzer="char", ngram_range=rng, sublinear_tf=True)  # noqa: E731
        rows[f"{gname} nearest centroid (baseline)"] = cv(texts, labels, vec, None, a.folds, centroid=True)
        for cname, clf in classifiers.items():
            rows[f"{gname} {cname}"] = cv(texts, labels, vec, clf, a.folds)
    width = max(map(len, rows))
    print(f"{len(texts)} hand-written records, {len(set(labels))} values, {a.folds}-fold; chance: value "
          f"{1 / 12:.3f}, level {1 / 3:.3f}")
    for name, r in rows.items():
        print(f"{name:<{width}}  value {r['value']:.3f}  level {r['level']:.3f}  {r['seconds']:6.2f} s")
    for t, s in rows["chosen (vad.judge.categorizer)"]["thresholds"].items():
        print(f"min_confidence {t}: {s['share']:.0%} of predictions set the category, {s['accuracy']:.0%} of them right")
    from vad.compute.device import cpu_name

    out = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "load_avg_1min": round(os.getloadavg()[0], 2),
           "cpus": os.cpu_count(), "records": len(texts), "folds": a.folds, "results": rows}
    dest = ROOT / "benchmarks/results/categorizer.json"
    dest.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
