"""Evaluation on PrivateTest: accuracy, macro-F1, per-class report, confusion matrix, calibration.

    python -m fusion_fer.research.evaluate --model ferplus --data cache/fer2013
    python -m fusion_fer.research.evaluate --run runs/fused_main --data cache/fer2013
    python -m fusion_fer.research.evaluate --model ferplus --suite ../shared/data   # cross-dataset report (suite.py)

A model folder is written by `fusion_fer.research.export` (through `fusion_fer.artifacts`), never here:
the report of a shipped model goes to reports/NAME.

Model selection and the temperature use PublicTest only; every reported figure is PrivateTest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ..fileio import write_json, write_text
from .data import FERPLUS_CLASSES, SPLITS
from .prepare import load_cache
from .training import cache_labels, predict_cache

ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


TEMPERATURE_RANGE = (0.05, 20.0)  # a validation set the model gets all right drives T to 0 (then 0/0 = NaN)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T minimising the NLL of softmax(log(probs) / T) (Guo et al. 2017), within `TEMPERATURE_RANGE`."""
    logp = torch.log(torch.as_tensor(probs, dtype=torch.float64).clamp_min(1e-12))
    y = torch.as_tensor(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logp / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return float(np.clip(t if np.isfinite(t) else 1.0, *TEMPERATURE_RANGE))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def apply_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    """softmax(log(probs) / t)."""
    return _softmax(np.log(np.clip(probs, 1e-12, None)) / t)


def apply_bias(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Shifts class log-probabilities by `bias` (7,) and renormalises."""
    return _softmax(np.log(np.clip(probs, 1e-12, None)) + bias)


def fit_class_bias(probs: np.ndarray, labels: np.ndarray, min_recall: float = 0.5, steps: int = 200) -> np.ndarray:
    """Per-class log-probability offsets, fitted on PublicTest, so that no class is starved.

    Class-balanced sampling alone leaves the hardest class (fear) under-predicted. Greedy
    coordinate search: while some class's recall is below `min_recall`, raise its offset by the
    smallest step that helps; the rest of the time, take any step that raises accuracy.

    Returns:
        (7,) offsets (zeros when nothing needed changing).
    """
    k = probs.shape[1]
    bias = np.zeros(k)
    grid = np.linspace(-0.6, 0.6, 25)

    def score(b: np.ndarray) -> tuple[float, float]:
        pred = apply_bias(probs, b).argmax(1)
        rec = [float((pred[labels == c] == c).mean()) for c in range(k) if np.any(labels == c)]
        return min(min(rec) - min_recall, 0.0), float((pred == labels).mean())  # constraint first, then accuracy

    best = score(bias)
    for _ in range(steps):
        improved = False
        for c in range(k):
            for d in grid:
                trial = bias.copy()
                trial[c] += d
                s = score(trial)
                if s > best:
                    best, bias, improved = s, trial, True
        if not improved:
            break
    return bias


def greedy_offsets(objective, start: np.ndarray, max_offset: float, grid: tuple[float, ...], rounds: int) -> np.ndarray:
    """Per-class log-probability offsets by greedy coordinate search: each round tries every step of `grid`
    on every class and keeps any change that raises `objective(offsets)` (-inf: not allowed), within
    +-`max_offset`, until a round changes nothing or `rounds` are done."""
    bias = np.clip(start.astype(np.float64), -max_offset, max_offset)
    best = objective(bias)
    for _ in range(rounds):
        improved = False
        for k in range(len(bias)):
            for d in grid:
                trial = bias.copy()
                trial[k] = np.clip(trial[k] + d, -max_offset, max_offset)
                if trial[k] == bias[k]:
                    continue
                value = objective(trial)
                if value > best + 1e-9:
                    best, bias, improved = value, trial, True
        if not improved:
            break
    return bias


def summarize(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (classes: the model's, by count)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    names = classes or FERPLUS_CLASSES[:probs.shape[1]]
    pred = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=range(len(names)), zero_division=0)
    return {
        "accuracy": round(float((pred == labels).mean()), 4),
        "macro_f1": round(float(f1_score(labels, pred, average="macro", labels=range(len(names)), zero_division=0)), 4),
        "per_class": {c: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "f1": round(float(f[i]), 4),
                          "support": int(s[i])} for i, c in enumerate(names)},
        "confusion_matrix": confusion_matrix(labels, pred, labels=range(len(names))).tolist(),
    }


ZOOM_CANDIDATES = ((1.0,), (1.0, 1.1), (0.9, 1.0), (0.9, 1.0, 1.1))
ZOOM_MIN_GAIN = 0.003  # a framing set is kept only if it beats flip-only by this much on PublicTest


def select_zooms(model, stats, cache, labels_kind: str = "fer2013", device: str = "cpu",
                 candidates: tuple[tuple[float, ...], ...] = ZOOM_CANDIDATES) -> dict:
    """Test-time framings, chosen on PublicTest: raw flip-averaged accuracy of each candidate set of zooms;
    the best one is kept if it beats flip-only (1.0,) by at least `ZOOM_MIN_GAIN`."""
    labels = cache_labels(cache, labels_kind)
    pub = np.flatnonzero((cache.splits == SPLITS.index("PublicTest")) & (labels >= 0))
    dev = torch.device(device)
    acc = {}
    for zooms in candidates:
        probs = predict_cache(model, cache, pub, stats, dev, flip=True, zooms=zooms)
        acc[zooms] = float((probs.argmax(1) == labels[pub]).mean())
    best = max(acc, key=acc.get)
    chosen = best if acc[best] - acc[(1.0,)] >= ZOOM_MIN_GAIN else (1.0,)
    return {"public_test_accuracy": {" ".join(map(str, z)): round(a, 4) for z, a in acc.items()},
            "chosen": list(chosen), "rule": f"best PublicTest accuracy, kept if >= {ZOOM_MIN_GAIN:.1%} over flip only"}


def split_probs(model, stats, cache, labels_kind: str = "fer2013", device: str = "cpu",
                zooms: tuple[float, ...] = (1.0,), soften: float = 0.0) -> dict[str, np.ndarray]:
    """Raw model probabilities on the labelled test faces: PublicTest and PrivateTest flip-averaged,
    PrivateTest also without flip; with the faces' cache indices and the cache's labels."""
    dev = torch.device(device)
    labels = cache_labels(cache, labels_kind)
    pub = np.flatnonzero((cache.splits == SPLITS.index("PublicTest")) & (labels >= 0))
    priv = np.flatnonzero((cache.splits == SPLITS.index("PrivateTest")) & (labels >= 0))
    return {"labels": labels, "public_index": pub, "private_index": priv,
            "public": predict_cache(model, cache, pub, stats, dev, flip=True, zooms=zooms, soften_sigma=soften),
            "private": predict_cache(model, cache, priv, stats, dev, flip=True, zooms=zooms, soften_sigma=soften),
            "private_no_flip": predict_cache(model, cache, priv, stats, dev, flip=False, zooms=zooms, soften_sigma=soften)}


def evaluate(model, stats, cache, labels_kind: str = "fer2013", device: str = "cpu",
             class_bias: list[float] | None = None, zooms: tuple[float, ...] = (1.0,), soften: float = 0.0) -> dict:
    """Every figure of metrics.json for one model on one cache.

    `class_bias` None fits the per-class offsets on PublicTest; a list reuses a model's own.
    `zooms`: the test-time framings averaged (each with its mirror); `soften`: the model folder's crop softening.
    """
    sp = split_probs(model, stats, cache, labels_kind, device, zooms, soften)
    pub, priv, labels = sp["public_index"], sp["private_index"], sp["labels"]
    pub_raw, priv_raw, priv_plain_raw = sp["public"], sp["private"], sp["private_no_flip"]
    out: dict = {"labels": labels_kind, "split": "PrivateTest", "zooms": list(zooms), "soften": soften}
    y = labels[priv]
    out["faces"] = int(len(priv))
    out["before_class_bias"] = {"with_flip": summarize(priv_raw, y), "without_flip": summarize(priv_plain_raw, y)}
    bias = fit_class_bias(pub_raw, labels[pub]) if class_bias is None else np.asarray(class_bias)
    out["class_bias"] = {"fitted_on": "PublicTest" if class_bias is None else "the model folder's own (config.json)",
                         "values": {c: round(float(b), 3) for c, b in zip(FERPLUS_CLASSES, bias)}}
    pub_probs, priv_flip, priv_plain = (apply_bias(p, bias) for p in (pub_raw, priv_raw, priv_plain_raw))
    out["with_flip"] = summarize(priv_flip, y)
    out["without_flip"] = summarize(priv_plain, y)
    out["public_test_accuracy_with_flip"] = round(float((pub_probs.argmax(1) == labels[pub]).mean()), 4)
    t = fit_temperature(pub_probs, labels[pub])
    out["calibration"] = {
        "temperature": round(t, 4),
        "fitted_on": "PublicTest",
        "ece_before": round(expected_calibration_error(priv_flip, y), 4),
        "ece_after": round(expected_calibration_error(apply_temperature(priv_flip, t), y), 4),
        "bins": ECE_BINS,
    }
    found = cache.found[priv]
    out["landmarks_found_share"] = round(float(found.mean()), 4)
    pred = priv_flip.argmax(1)
    out["accuracy_landmarks_found"] = round(float((pred[found] == y[found]).mean()), 4) if found.any() else None
    out["accuracy_landmarks_missing"] = round(float((pred[~found] == y[~found]).mean()), 4) if (~found).any() else None
    return out


def plot_confusion(cm: list[list[int]], path: Path, title: str, rows: list[str] | None = None,
                   columns: list[str] | None = None) -> None:
    """Row-normalised confusion matrix with counts, as a PNG (rows: true classes; columns: answers; both
    default to the model classes in order)."""
    rows = list(rows or FERPLUS_CLASSES[:len(cm)])
    columns = list(columns or FERPLUS_CLASSES[:len(cm[0])])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.8 * len(columns) + 1.4, 0.7 * len(rows) + 1.1))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title, fontsize=10)
    for i in range(len(rows)):
        for j in range(len(columns)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def metrics_for(model, stats, cache, labels_kind: str, zooms: str | tuple[float, ...] | None, device: str = "cpu",
                class_bias=None, soften: float = 0.0) -> tuple[dict, tuple[float, ...]]:
    """`evaluate` with the framings given as "auto" (chosen on PublicTest), explicit zooms, or None (as given by the caller)."""
    zoom_choice = None
    if zooms == "auto":
        zoom_choice = select_zooms(model, stats, cache, labels_kind, device)
        zooms = tuple(zoom_choice["chosen"])
        print(f"test-time framings, PublicTest accuracy: {zoom_choice['public_test_accuracy']} -> {zooms}")
    metrics = evaluate(model, stats, cache, labels_kind, device, class_bias=class_bias, zooms=zooms, soften=soften)
    if zoom_choice:
        metrics["zoom_selection"] = zoom_choice
    metrics["model"] = {"mode": model.config.mode, "parameters": sum(p.numel() for p in model.parameters())}
    return metrics, zooms


def print_metrics(metrics: dict, labels_kind: str) -> None:
    w, n = metrics["with_flip"], metrics["without_flip"]
    print(f"PrivateTest ({metrics['faces']} faces, labels {labels_kind}): accuracy {w['accuracy']:.4f} with flip, "
          f"{n['accuracy']:.4f} without; macro-F1 {w['macro_f1']:.4f}")
    for c, r in w["per_class"].items():
        print(f"  {c:9s} precision {r['precision']:.3f} recall {r['recall']:.3f} f1 {r['f1']:.3f} (n={r['support']})")
    cal = metrics["calibration"]
    print(f"temperature {cal['temperature']:.3f} (PublicTest): ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}")


def parse_zooms(text: str | None) -> str | tuple[float, ...] | None:
    return text if text in (None, "auto") else tuple(float(z) for z in text.split())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a model folder (config.json + model.safetensors) or a shipped name, e.g. ferplus")
    src.add_argument("--run", help="a training run folder (best.pt), e.g. runs/fused_main")
    p.add_argument("--data", help="a prepared cache folder (python -m fusion_fer.research.prepare)")
    p.add_argument("--suite", metavar="SHARED_DATA", help="the cross-dataset report (FER2013 CSV and JPEG, detection path, FER+, "
                   "CK+48) from this data folder, written to --out")
    p.add_argument("--suite-parts", nargs="+", choices=["select", "report"], default=["select", "report"],
                   help="select: PublicTest and CK+48 half A (for choices); report: PrivateTest and CK+48 half B")
    p.add_argument("--out", default=None, help="with --suite: the report's folder (default: the model folder, or "
                   "reports/NAME for a shipped model, which only export writes)")
    p.add_argument("--labels", choices=["fer2013", "ferplus", "ferplus8"], default=None, help="default: what the model was trained on")
    p.add_argument("--json", default=None, help="also write the metrics to this file")
    p.add_argument("--zooms", default=None, help="test-time framings to average, e.g. '1.0 1.1', or 'auto': chosen on "
                   "PublicTest (select_zooms); default: the model's own (a model folder) or flip only (a run); "
                   "with --suite: score these framings instead of the model's own (the webcam's live recipe, e.g. '0.9')")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.suite:
        return _suite_main(p, args)
    if not args.data:
        p.error("--data (a prepared cache) is needed, or --suite")

    from ..artifacts import load_artifacts
    from .training import load_run_model

    cache = load_cache(args.data)
    if args.run:
        model, stats, tcfg = load_run_model(args.run, args.device)
        labels_kind, zooms, bias, soften = args.labels or tcfg.labels, parse_zooms(args.zooms) or (1.0,), None, 0.0
    else:
        model, stats, cfg = load_artifacts(args.model, args.device)
        labels_kind = args.labels or cfg.get("training", {}).get("labels", "fer2013")
        zooms, bias = parse_zooms(args.zooms) or tuple(cfg.get("zooms", [1.0])), cfg.get("class_bias")
        soften = float(cfg.get("soften", 0.0))  # as the Predictor reads it: the figures are what users get
    metrics, _ = metrics_for(model, stats, cache, labels_kind, zooms, args.device, class_bias=bias, soften=soften)
    if args.json:
        write_json(Path(args.json), metrics)
    print_metrics(metrics, labels_kind)
    return 0


def _suite_main(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from ..artifacts import ArtifactError, is_shipped, resolve_model, update_model
    from .data import DatasetError
    from .suite import SuiteConfig, markdown, plot, run_suite

    if args.run:
        p.error("--suite evaluates a model folder: pass --model (export a run first: python -m fusion_fer.research.export)")
    try:
        folder = resolve_model(args.model)
        out = Path(args.out) if args.out else (Path("reports") / folder.name if is_shipped(folder) else folder)
        if is_shipped(out):
            raise ArtifactError(f"--out {out} is a shipped folder, which only export writes: write the report elsewhere "
                                f"(e.g. reports/{folder.name}) and export it in")
        zooms = parse_zooms(args.zooms)
        if zooms == "auto":
            p.error("--suite takes explicit --zooms (e.g. '1.0', a live recipe), not 'auto'")
        suite = run_suite(args.model, args.suite, SuiteConfig(parts=tuple(args.suite_parts), zooms=zooms))
    except (ArtifactError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = markdown(suite, title=f"{folder.name}: cross-dataset report")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "suite.md", table)
    if "report" in suite:
        plot(suite, out / "suite.png", title=f"{folder.name}: recall per class (report splits; posed photos: half A)")
    posed = suite.get("select", {}).get("taiwanese")
    if posed:
        cm = posed["confusion"]
        plot_confusion(cm["counts"], out / "posed_confusion.png", rows=cm["rows"], columns=cm["columns"],
                       title=f"{folder.name}: posed colour photos (Taiwanese half A), accuracy {posed['accuracy']:.1%}")
    if out.resolve() == folder.resolve():
        update_model(folder, metrics={"suite": suite})
    else:
        write_json(out / "metrics.json", {"suite": suite})
    if args.json:
        write_json(Path(args.json), suite)
    print(table)
    if is_shipped(folder):
        print(f"report written to {out}; to put it into the shipped folder: python -m fusion_fer.research.export "
              f"--model {folder.name} --report {out} --out {folder} --ship")
    return 0


if __name__ == "__main__":
    sys.exit(main())
