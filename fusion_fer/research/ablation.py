"""Ablation: models trained with the same budget, compared on the same PrivateTest faces.

    python -m fusion_fer.research.ablation --data cache/fer2013 --baseline image \\
        --run image=runs/image_40 --run landmarks=runs/landmarks_40 --run fused=runs/fused_main \\
        --json runs/ablation.json --plot artifacts/ablation.png [--ckplus ../shared/data/ckplus48]

With --ckplus, the models are also compared on CK+48 half B (posed lab faces none of them has seen
the like of; half A is left for choices): 6-way, over the CK+ classes (neutral is not a CK+ class),
with a bootstrap over whole sequences, since the 3 frames of a sequence are near-duplicates.

Accuracies on 3,589 faces move by about +-0.75 points from sampling alone, so a difference is
reported with what it takes to believe it: a paired bootstrap interval (both models scored on the
same resampled faces) and McNemar's exact test on the faces where exactly one model is right.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .evaluate import apply_bias, fit_class_bias, split_probs, summarize
from .training import load_model_or_run

BOOTSTRAP = 10_000


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = BOOTSTRAP, seed: int = 0,
                      groups: np.ndarray | None = None) -> dict:
    """How much more often model B is right than model A on the same items, and how sure that is.

    Args:
        correct_a, correct_b: (N,) bool, whether each model got each item right.
        groups: (N,) labels of items that are not independent (frames of one sequence): the bootstrap
            then resamples whole groups, and McNemar's test, which assumes independent items, is left out.

    Returns:
        difference (B - A, as a share), its 95 % paired-bootstrap interval, McNemar's exact
        two-sided p-value, and the discordant counts (only A right / only B right).
    """
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("need two equally long, non-empty 1-D arrays of per-item correctness")
    d = b.astype(np.int8) - a.astype(np.int8)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    if groups is not None:  # per group: summed difference and size; a resample's mean is their ratio
        _, inv = np.unique(np.asarray(groups), return_inverse=True)
        gsum, gsize = np.bincount(inv, weights=d), np.bincount(inv)
    for s in range(0, n_boot, 500):  # chunks: 500 x N indices at a time keeps memory small
        k = min(500, n_boot - s)
        if groups is None:
            means[s:s + k] = d[rng.integers(0, len(d), size=(k, len(d)))].mean(1)
        else:
            pick = rng.integers(0, len(gsum), size=(k, len(gsum)))
            means[s:s + k] = gsum[pick].sum(1) / gsize[pick].sum(1)
    only_a, only_b = int(((d < 0)).sum()), int((d > 0).sum())
    p = binomtest(only_b, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"difference": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "mcnemar_p": None if groups is not None else float(f"{p:.3g}"), "only_baseline_right": only_a,
            "only_model_right": only_b}


def compare(runs: dict[str, str], cache, baseline: str, device: str = "cpu") -> dict:
    """Every model's PrivateTest figures, and each model's paired difference from `baseline`.

    Two decision rules per model: its raw output, and after per-class offsets fitted on
    PublicTest (what the shipped model uses), each with flip averaging.
    """
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not one of the runs ({', '.join(runs)})")
    rows, correct = {}, {}
    for name, path in runs.items():
        model, stats, labels_kind, epochs = load_model_or_run(path, device)
        sp = split_probs(model, stats, cache, labels_kind, device)
        y_pub, y = sp["labels"][sp["public_index"]], sp["labels"][sp["private_index"]]
        bias = fit_class_bias(sp["public"], y_pub)
        biased = apply_bias(sp["private"], bias)
        raw, with_bias = summarize(sp["private"], y), summarize(biased, y)
        rows[name] = {
            "path": str(path), "mode": model.config.mode, "fusion": model.config.fusion if model.config.mode == "fused" else None,
            "parameters": sum(p.numel() for p in model.parameters()), "epochs": epochs,
            "raw": {"accuracy_with_flip": raw["accuracy"], "accuracy_without_flip": summarize(sp["private_no_flip"], y)["accuracy"],
                    "macro_f1": raw["macro_f1"], "public_accuracy": round(float((sp["public"].argmax(1) == y_pub).mean()), 4)},
            "class_bias": {"accuracy_with_flip": with_bias["accuracy"], "macro_f1": with_bias["macro_f1"],
                           "min_recall": round(min(r["recall"] for r in with_bias["per_class"].values()), 4)},
        }
        correct[name] = {"raw": sp["private"].argmax(1) == y, "class_bias": biased.argmax(1) == y}
    for name in runs:
        if name != baseline:
            rows[name]["vs_" + baseline] = {rule: paired_difference(correct[baseline][rule], correct[name][rule])
                                            for rule in ("raw", "class_bias")}
    return {"split": "PrivateTest", "faces": int(len(next(iter(correct.values()))["raw"])), "baseline": baseline,
            "bootstrap": BOOTSTRAP, "models": rows}


def compare_ckplus(runs: dict[str, str], root: str, baseline: str, device: str = "cpu", half: str = "B") -> dict:
    """Every model on CK+48 `half` (flip-averaged; the answer a user sees, the argmax over all of a model's
    classes), on the faces of the 6 classes every model has, with paired differences from `baseline`
    bootstrapped over sequences."""
    import torch

    from .data import CLASSES, read_ckplus
    from ..landmarks import FaceMesh
    from ..predict import log_probs

    ck = read_ckplus(root)
    keep = (ck.half == half) & (ck.labels != ck.CLASSES.index("contempt"))  # FER-class faces: index k is CLASSES[k]
    images, y, seqs = ck.images[keep], ck.labels[keep], ck.sequences[keep]
    mesh = FaceMesh()
    pts = [mesh(im) for im in images]
    found = np.array([q is not None for q in pts])
    points = np.stack([q.points if q is not None else np.zeros((468, 3), np.float32) for q in pts])
    cols = [CLASSES.index(c) for c in ck.CLASSES if c in CLASSES]
    rows, correct = {}, {}
    for name, path in runs.items():
        model, stats, _, epochs = load_model_or_run(path, device)
        with torch.inference_mode():
            logp = log_probs(model, images, points, found, stats, torch.device(device)).cpu().numpy()
        pred = logp.argmax(1)
        correct[name] = pred == y
        recall = {c: round(float((pred[y == k] == k).mean()), 4) for c, k in zip(ck.CLASSES, cols) if (y == k).any()}
        rows[name] = {"path": str(path), "epochs": epochs, "accuracy": round(float(correct[name].mean()), 4),
                      "macro_recall": round(float(np.mean(list(recall.values()))), 4), "recall": recall}
    for name in runs:
        if name != baseline:
            rows[name]["vs_" + baseline] = paired_difference(correct[baseline], correct[name], groups=seqs)
    return {"split": f"CK+48 half {half}", "faces": int(keep.sum()), "sequences": int(len(set(seqs))),
            "subjects": int(len(set(ck.subjects[keep]))), "landmarks_found": int(found.sum()), "baseline": baseline,
            "scoring": "argmax over all of each model's classes (a neutral answer is wrong), flip-averaged; contempt "
                       "faces left out", "models": rows}


def plot(result: dict, path: str | Path) -> None:
    """Accuracy per model (raw and with class offsets) with 95 % bootstrap intervals of the difference from the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["models"])
    base = result["baseline"]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.75 * len(names)))
    for j, (rule, color) in enumerate((("raw", "#4878d0"), ("class_bias", "#ee854a"))):
        accs = [result["models"][n][rule]["accuracy_with_flip"] for n in names]
        ys = np.arange(len(names)) + (j - 0.5) * 0.36
        ax.barh(ys, [a * 100 for a in accs], height=0.34, color=color,
                label="raw output" if rule == "raw" else "with PublicTest class offsets")
        for n, y, a in zip(names, ys, accs):
            cmp = result["models"][n].get("vs_" + base, {}).get(rule)
            txt = f"{a * 100:.2f}"
            if cmp:
                lo, hi = (100 * v for v in cmp["ci95"])
                txt += f"  ({100 * cmp['difference']:+.2f} vs {base}, 95% CI {lo:+.2f}..{hi:+.2f}, p={cmp['mcnemar_p']:.2g})"
            ax.text(a * 100 + 0.3, y, txt, va="center", fontsize=7.5)
    accs = [result["models"][n][r]["accuracy_with_flip"] * 100 for n in names for r in ("raw", "class_bias")]
    ax.set_xlim(max(0, min(accs) - 8), min(100, max(accs) + 35))  # room for the labels
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"{result['split']} accuracy, flip-averaged (%), n={result['faces']}")
    ax.legend(loc="lower right", fontsize=8)
    epochs = {result["models"][n]["epochs"] for n in names}
    ax.set_title("Ablation, same training budget" + (f" ({epochs.pop()} epochs each)" if len(epochs) == 1 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a prepared cache folder (python -m fusion_fer.research.prepare)")
    p.add_argument("--run", action="append", required=True, metavar="NAME=PATH",
                   help="a model to compare: a training run folder or a model folder; repeat for each")
    p.add_argument("--baseline", required=True, help="the NAME the others are compared with (e.g. image)")
    p.add_argument("--json", default=None, help="write the comparison to this file")
    p.add_argument("--plot", default=None, help="write a bar chart PNG to this file")
    p.add_argument("--ckplus", default=None, help="also compare on CK+48 half B (the ckplus48 folder)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    runs = {}
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"--run takes NAME=PATH, got {item!r}")
        if not Path(path).is_dir():
            p.error(f"--run {name}: {path} is not a folder")
        runs[name] = path
    if args.baseline not in runs:
        p.error(f"--baseline {args.baseline!r} is not one of the --run names ({', '.join(runs)})")

    from .prepare import load_cache

    result = compare(runs, load_cache(args.data), args.baseline, args.device)
    if args.ckplus:
        result["ckplus"] = compare_ckplus(runs, args.ckplus, args.baseline, args.device)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.plot:
        plot(result, args.plot)
    for name, r in result["models"].items():
        line = (f"{name:12s} raw {100 * r['raw']['accuracy_with_flip']:.2f} % (no flip {100 * r['raw']['accuracy_without_flip']:.2f}), "
                f"with class offsets {100 * r['class_bias']['accuracy_with_flip']:.2f} %")
        cmp = r.get("vs_" + args.baseline)
        if cmp:
            c = cmp["raw"]
            line += (f" | vs {args.baseline}: {100 * c['difference']:+.2f} points "
                     f"(95 % CI {100 * c['ci95'][0]:+.2f}..{100 * c['ci95'][1]:+.2f}, McNemar p={c['mcnemar_p']:.2g})")
        print(line)
    if args.ckplus:
        ck = result["ckplus"]
        print(f"{ck['split']}: {ck['faces']} faces, {ck['sequences']} sequences, {ck['subjects']} subjects ({ck['scoring']})")
        for name, r in ck["models"].items():
            line = f"{name:12s} {100 * r['accuracy']:.2f} %, macro recall {r['macro_recall']:.3f}, lowest {min(r['recall'], key=r['recall'].get)} {min(r['recall'].values()):.2f}"
            c = r.get("vs_" + args.baseline)
            if c:
                line += (f" | vs {args.baseline}: {100 * c['difference']:+.2f} points "
                         f"(95 % CI over sequences {100 * c['ci95'][0]:+.2f}..{100 * c['ci95'][1]:+.2f})")
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
