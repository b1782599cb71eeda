"""Measure a trained model: on the UTKFace TEST split (face crops), and end to end on whole photos.

The figures are the ones the README and the model card quote: overall accuracy, accuracy by race x gender and by
age band (with counts, even where small), expected calibration error with its reliability table, and the
end-to-end accuracy on a folder of labelled photos (photo in, largest face, gender out; no face counts as wrong).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

from .dataset import GENDERS, RACES
from .errors import ImageRejected
from .pipeline import GenderPipeline
from .training import centre

AGE_BANDS = ((0, 12, "0-12"), (13, 19, "13-19"), (20, 39, "20-39"), (40, 59, "40-59"), (60, 200, "60+"))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15):
    """ECE over equal-width confidence bins, and the per-bin table (lower, upper, count, confidence, accuracy)."""
    edges = np.linspace(0.5, 1.0, bins + 1)
    table, ece = [], 0.0
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        mask = (confidence >= lo) & ((confidence < hi) if i < bins - 1 else (confidence <= hi))
        if mask.any():
            gap = abs(confidence[mask].mean() - correct[mask].mean())
            ece += mask.mean() * gap
            table.append((lo, hi, int(mask.sum()), float(confidence[mask].mean()), float(correct[mask].mean())))
    return float(ece), table


def group_accuracy(correct: np.ndarray, masks: dict) -> list:
    return [(name, int(m.sum()), float(correct[m].mean()) if m.any() else float("nan")) for name, m in masks.items()]


def evaluate_test_split(classifier, data: dict) -> dict:
    """Accuracy and calibration of ``classifier`` on the cached crops of the TEST split."""
    mask = data["test"]
    size = classifier.config.input_size
    crops = centre(data["crops"][mask], size)
    p_female = np.concatenate([classifier.predict(crops[i:i + 512]) for i in range(0, len(crops), 512)])
    gender, age, race = data["gender"][mask], data["age"][mask], data["race"][mask]
    correct = (p_female >= 0.5) == (gender == 1)
    confidence = np.maximum(p_female, 1 - p_female)
    ece, reliability = expected_calibration_error(confidence, correct)
    adults = age >= 20
    by_race_gender = {f"{RACES[r]} {GENDERS[g]}": (race == r) & (gender == g) for r in range(5) for g in range(2)}
    by_race_adult = {f"{RACES[r]} (20+)": (race == r) & adults for r in range(5)}
    by_age = {name: (age >= lo) & (age <= hi) for lo, hi, name in AGE_BANDS}
    adult_groups = group_accuracy(correct, by_race_adult)
    accs = [a for _, n, a in adult_groups if n]
    return {
        "images": int(mask.sum()),
        "accuracy": float(correct.mean()),
        "ece": ece,
        "reliability": reliability,
        "by_gender": group_accuracy(correct, {g: gender == i for i, g in enumerate(GENDERS)}),
        "by_race_gender": group_accuracy(correct, by_race_gender),
        "by_race_adults": adult_groups,
        "adult_race_gap": float(max(accs) - min(accs)) if accs else float("nan"),
        "by_age": group_accuracy(correct, by_age),
        "detector_found_face": float(data["detected"][mask].mean()),
        "confusion": [[int(np.sum((gender == t) & ((p_female >= 0.5) == bool(p)))) for p in (0, 1)] for t in (0, 1)],
    }


@dataclass
class PhotoOutcome:
    path: str
    truth: str
    predicted: str | None
    confidence: float | None


def evaluate_photos(pipeline: GenderPipeline, root: str) -> dict:
    """End to end on ``root/{male,female}/*``: largest face's gender; no face found counts as wrong."""
    outcomes = []
    for truth in GENDERS:
        for path in sorted(glob.glob(os.path.join(root, truth, "*"))):
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                analysis = pipeline.analyse(data)
                outcomes.append(PhotoOutcome(path, truth, analysis.gender, analysis.faces[0].confidence))
            except ImageRejected:
                outcomes.append(PhotoOutcome(path, truth, None, None))
    correct = np.array([o.predicted == o.truth for o in outcomes])
    no_face = sum(o.predicted is None for o in outcomes)
    return {
        "photos": len(outcomes),
        "accuracy": float(correct.mean()) if outcomes else float("nan"),
        "no_face": no_face,
        "by_gender": [(g, sum(o.truth == g for o in outcomes),
                       float(np.mean([o.predicted == g for o in outcomes if o.truth == g] or [np.nan])))
                      for g in GENDERS],
        "errors": [o for o in outcomes if o.predicted != o.truth],
    }


def format_report(test: dict | None, photos: dict | None) -> str:
    lines = []
    if test:
        lines += [f"UTKFace TEST split: {test['images']} crops, accuracy {test['accuracy']:.2%}, "
                  f"ECE {test['ece']:.4f} (face found by the detector in {test['detector_found_face']:.2%})", ""]
        for title, key in (("by gender", "by_gender"), ("by race x gender", "by_race_gender"),
                           ("adults (20+) by race", "by_race_adults"), ("by age", "by_age")):
            lines.append(f"  {title}:")
            lines += [f"    {name:<18} n={n:<5} {acc:.2%}" for name, n, acc in test[key]]
        lines.append(f"  adult race gap (best - worst): {test['adult_race_gap'] * 100:.1f} points")
        lines.append("  reliability (confidence bin: n, mean confidence, accuracy):")
        lines += [f"    {lo:.3f}-{hi:.3f}: n={n:<5} conf {c:.3f} acc {a:.3f}" for lo, hi, n, c, a in test["reliability"]]
        lines.append("")
    if photos:
        lines.append(f"Photos end to end: {photos['photos']} photos, accuracy {photos['accuracy']:.2%}, "
                     f"no face found in {photos['no_face']}")
        lines += [f"    {g:<8} n={n:<4} {acc:.2%}" for g, n, acc in photos["by_gender"]]
    return "\n".join(lines)


def write_plots(test: dict, folder: str) -> list[str]:
    """Reliability diagram, confusion matrix and accuracy by age band as PNG files in ``folder``.

    Needs matplotlib (a development dependency, imported only here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    rel = test["reliability"]
    ax.plot([0.5, 1], [0.5, 1], "--", color="grey", label="perfect calibration")
    ax.bar([(lo + hi) / 2 for lo, hi, *_ in rel], [a for *_, a in rel], width=[hi - lo for lo, hi, *_ in rel],
           alpha=0.6, edgecolor="black", label="accuracy in bin")
    ax.plot([c for *_, c, _ in rel], [a for *_, a in rel], "o-", color="C1", label="accuracy at the bin's mean confidence")
    ax.set(xlim=(0.5, 1), ylim=(0, 1.02), xlabel="confidence", ylabel="accuracy",
           title=f"Reliability, UTKFace test (ECE {test['ece']:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    written.append(_save(fig, folder, "reliability.png"))

    fig, ax = plt.subplots(figsize=(4, 3.6))
    matrix = np.array(test["confusion"])
    ax.imshow(matrix, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=GENDERS, yticklabels=GENDERS, xlabel="predicted",
           ylabel="annotated", title="Confusion, UTKFace test")
    written.append(_save(fig, folder, "confusion.png"))

    fig, ax = plt.subplots(figsize=(5, 3.4))
    names = [name for name, _, _ in test["by_age"]]
    accs = [acc * 100 for _, _, acc in test["by_age"]]
    ax.bar(names, accs, color="C0")
    for i, (_, n, acc) in enumerate(test["by_age"]):
        ax.text(i, acc * 100 + 0.5, f"n={n}", ha="center", fontsize=8)
    ax.set(ylim=(min(accs) - 10, 100), ylabel="accuracy (%)", xlabel="age band", title="Accuracy by age")
    written.append(_save(fig, folder, "accuracy_by_age.png"))
    return written


def _save(fig, folder, name):
    path = os.path.join(folder, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
