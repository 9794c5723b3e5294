"""Choices on persons held out, and reports as users see them, for models that learn from photo sources.

    python -m fusion_fer.research.folds choose --runs runs/multi/fold0 runs/multi/fold1 runs/multi/fold2 \\
        --data cache/fer2013_v2 --baseline artifacts/ferplus --out reports/multi_folds
    python -m fusion_fer.research.folds report --models artifacts/ferplus runs/export/ferplus_multi \\
        --data cache/fer2013_v2 --photos cache/photos/ckplus48_b --out reports/multi_report

`choose` reads the fold runs' logs (`train.py --photos ... --fold k`): after each epoch, the run's score is the
mean of its FER+ PublicTest accuracy and its accuracy on each photo source's held-out persons. The epoch chosen
has the best mean over folds among epochs whose mean FER+ PublicTest accuracy reaches `min_public` (the rule in
docs/model-selection-log.md). A baseline model folder is scored the same way, fold by fold, with its own served
recipe.

`report` scores model folders on prepared caches: FER+ and FER2013 PrivateTest (or PublicTest, `--split`) and
whole photo caches (e.g. CK+48 half B); each model also gets a report folder (`<out>/<model>/`) that
`research.export --model M --report DIR` merges into the model folder. Every figure is the label a user sees: the argmax over all of the model's classes (a `neutral`
or `contempt` answer to a posed angry face is wrong), and a photo whose face was not found is wrong.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..fileio import atomic_path, write_json
from .data import CLASSES, FERPLUS_CLASSES, SPLITS, ferplus8
from .prepare import Cache, load_cache
from .training import photo_sets, run_config

MIN_PUBLIC = 0.86  # the rule's floor on FER+ PublicTest accuracy


@dataclass
class Scored:
    """Faces to score: a cache, the rows and their labels as class names."""

    name: str
    cache: Cache
    idx: np.ndarray
    names: np.ndarray  # (len(idx),) class names
    must_find: bool  # photo sources: a face that detection missed is wrong


def ferplus_rows(cache: Cache, split: str) -> Scored:
    """FER+ majority labels (8 classes, single votes dropped) of one split."""
    major = ferplus8(cache.ferplus_votes)[0]
    idx = np.flatnonzero((cache.splits == SPLITS.index(split)) & (major >= 0) & cache.face)
    return Scored(f"FER+ {split}", cache, idx, np.array(FERPLUS_CLASSES)[major[idx]], False)


def fer2013_rows(cache: Cache, split: str) -> Scored:
    idx = np.flatnonzero((cache.splits == SPLITS.index(split)) & (cache.labels >= 0) & cache.face)
    return Scored(f"FER2013 {split}", cache, idx, np.array(CLASSES)[cache.labels[idx]], False)


def photo_rows(cache: Cache, name: str, idx: np.ndarray | None = None) -> Scored:
    idx = np.arange(len(cache.labels)) if idx is None else idx
    return Scored(name, cache, idx, np.array(cache.meta["classes"])[cache.labels[idx]], True)


def predictions(predictor, s: Scored, memo: dict | None = None, batch_size: int = 256) -> np.ndarray:
    """Class names the user sees for the rows of `s` ('' where detection found no face). `memo` keeps each
    model's answers per cache row, so sets that share faces (FER+ and FER2013 of one split) are read once."""
    memo = {} if memo is None else memo
    known = memo.setdefault((id(predictor), id(s.cache)), {})
    todo = np.array([i for i in s.idx.tolist() if i not in known], np.int64)
    for a in tqdm(range(0, len(todo), batch_size), desc=s.name, unit="batch", leave=False, disable=len(todo) <= batch_size):
        b = todo[a:a + batch_size]
        probs = predictor.crop_probs(s.cache.images[b], s.cache.landmarks[b], s.cache.found[b])
        known.update(zip(b.tolist(), np.array(predictor.classes)[probs.argmax(1)]))
    pred = np.array([known[i] for i in s.idx.tolist()], dtype=object).astype(str) if len(s.idx) else np.array([], str)
    if s.must_find:
        pred = np.where(s.cache.face[s.idx], pred, "")
    return pred


def score(predictor, s: Scored, memo: dict | None = None) -> dict:
    pred = predictions(predictor, s, memo)
    recall = {c: round(float((pred[s.names == c] == c).mean()), 4) for c in FERPLUS_CLASSES if (s.names == c).any()}
    return {"n": int(len(s.idx)), "accuracy": round(float((pred == s.names).mean()), 4), "recall": recall}


def _runs_log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def fold_scores(runs: list[Path]) -> tuple[list[dict], list[str]]:
    """Per fold run: its epochs' FER+ PublicTest (mirror), held-out accuracies and score."""
    folds, sources = [], None
    for run in runs:
        rows = _runs_log(run)
        held = [k for k in rows[0] if k.startswith("heldout_")]
        if not held or "val_acc_mirror" not in rows[0]:
            raise ValueError(f"{run}: not a fold run (train.py --photos ... --fold K): its log has no held-out persons")
        sources = sources or held
        if held != sources:
            raise ValueError(f"{run}: held-out sources {held} differ from the other runs' {sources}")
        folds.append({"run": str(run), "fold": run_config(run).fold, "epochs": [
            {"epoch": int(r["epoch"]), "public": r["val_acc_mirror"], **{k[8:]: r[k] for k in held},
             "score": float(np.mean([r["val_acc_mirror"]] + [r[k] for k in held]))} for r in rows]})
    return folds, [k[8:] for k in sources]


def choose_epoch(folds: list[dict], min_public: float = MIN_PUBLIC) -> dict:
    """The rule: the epoch with the best mean score over folds, among epochs whose mean FER+ PublicTest reaches
    `min_public` (epochs that every fold has run)."""
    common = sorted(set.intersection(*[{e["epoch"] for e in f["epochs"]} for f in folds]))
    table = []
    for ep in common:
        rows = [next(e for e in f["epochs"] if e["epoch"] == ep) for f in folds]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "epoch"}
        table.append({"epoch": ep, **mean, "admissible": mean["public"] >= min_public})
    ok = [r for r in table if r["admissible"]]
    best = max(ok, key=lambda r: r["score"]) if ok else None
    return {"epochs": table, "chosen": best, "min_public": min_public}


def baseline_scores(predictor, runs: list[Path], data: Cache) -> list[dict]:
    """A model folder scored as the fold runs were: FER+ PublicTest and, per run, the very faces its
    held-out persons gave (`training.photo_sets`)."""
    public = score(predictor, ferplus_rows(data, "PublicTest"))["accuracy"]
    out = []
    for run in runs:
        config = run_config(run)
        row = {"fold": config.fold, "public": public}
        for ps in photo_sets(config):
            row[ps.name] = score(predictor, photo_rows(ps.cache, ps.name, ps.heldout_idx))["accuracy"]
        row["score"] = float(np.mean([v for k, v in row.items() if k != "fold"]))
        out.append(row)
    return out


def plot_folds(folds: list[dict], chosen: dict, baseline: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for f in folds:
        ax.plot([e["epoch"] for e in f["epochs"]], [e["score"] for e in f["epochs"]], alpha=0.5, label=f"fold {f['fold']}")
    ax.plot([r["epoch"] for r in chosen["epochs"]], [r["score"] for r in chosen["epochs"]], "k-o", label="mean over folds")
    if baseline is not None:
        ax.axhline(baseline, color="tab:red", linestyle="--", label="shipped model, same folds")
    if chosen["chosen"]:
        ax.axvline(chosen["chosen"]["epoch"], color="grey", linestyle=":", label=f"chosen: epoch {chosen['chosen']['epoch']}")
    ax.set_xlabel("epoch"), ax.set_ylabel("score (mean of FER+ PublicTest and held-out persons)")
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_report(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(report)
    sets = list(next(iter(report.values())))
    fig, ax = plt.subplots(figsize=(1.6 + 1.8 * len(sets), 3.8))
    w = 0.8 / len(models)
    for i, m in enumerate(models):
        vals = [100 * report[m][s]["accuracy"] for s in sets]
        bars = ax.bar(np.arange(len(sets)) + i * w, vals, w, label=m)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(np.arange(len(sets)) + w * (len(models) - 1) / 2, sets, fontsize=8)
    ax.set_ylabel("accuracy, % (the label a user sees)"), ax.legend(fontsize=8), ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_recall(report: dict, title: str, path: Path) -> None:
    """One model: recall per class on each set, as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = [c for c in FERPLUS_CLASSES if any(c in r["recall"] for r in report.values())]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    w = 0.8 / len(report)
    for i, (name, r) in enumerate(report.items()):
        ax.bar(np.arange(len(classes)) + i * w, [100 * r["recall"].get(c, np.nan) for c in classes], w,
               label=f"{name} ({100 * r['accuracy']:.1f} %)")
    ax.set_xticks(np.arange(len(classes)) + w * (len(report) - 1) / 2, classes)
    ax.set_ylabel("recall, %"), ax.set_ylim(0, 105), ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7), ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def write_model_report(name: str, report: dict, out: Path) -> Path:
    """A model folder's cross-dataset report (suite.md, suite.png, metrics.json's "suite"), for
    `research.export --model M --report DIR`."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"set": k, "n": v["n"], "accuracy": v["accuracy"],
             "recall per class": ", ".join(f"{c} {r:.2f}" for c, r in v["recall"].items())} for k, v in report.items()]
    text = (f"# {name}: cross-dataset report\n\nEvery figure is the label a user sees: the argmax over all of the model's "
            "classes, with its served recipe; a photo whose face was not found counts as wrong "
            "(`python -m fusion_fer.research.folds report`).\n\n" + _table(rows, ["set", "n", "accuracy", "recall per class"]))
    (out / "suite.md").write_text(text)
    plot_recall(report, f"{name}: recall per class", out / "suite.png")
    write_json(out / "metrics.json", {"suite": {"protocol": "research.folds report: argmax over all classes", "sets": report}})
    return out


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    fmt = lambda v: f"{100 * v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    from ..artifacts import ArtifactError
    from ..predict import Predictor
    from .data import DatasetError
    from .prepare import CacheError

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("choose", help="the epoch by the fold rule, and a baseline model scored the same way")
    c.add_argument("--runs", nargs="+", required=True, help="fold run folders (train.py --photos ... --fold K)")
    c.add_argument("--data", required=True, help="the main cache the runs trained on (its PublicTest is scored)")
    c.add_argument("--baseline", default=None, help="a model folder to score the same way (e.g. artifacts/ferplus)")
    c.add_argument("--min-public", type=float, default=MIN_PUBLIC)
    c.add_argument("--out", required=True)
    r = sub.add_parser("report", help="model folders on PrivateTest and whole photo caches, as users see them")
    r.add_argument("--models", nargs="+", required=True)
    r.add_argument("--data", required=True, help="a FER2013 cache prepared with --ferplus")
    r.add_argument("--photos", nargs="*", default=[], help="prepared photo caches scored whole (never trained on)")
    r.add_argument("--split", choices=["PublicTest", "PrivateTest"], default="PrivateTest",
                   help="the FER split: PrivateTest to report, PublicTest (with selection-half photo caches) to choose")
    r.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        data = load_cache(args.data)
        if args.command == "choose":
            runs = [Path(x) for x in args.runs]
            folds, sources = fold_scores(runs)
            chosen = choose_epoch(folds, args.min_public)
            base = baseline_scores(Predictor(args.baseline), runs, data) if args.baseline else None
            result = {"folds": folds, **chosen, "baseline": base,
                      "baseline_score": float(np.mean([b["score"] for b in base])) if base else None}
            write_json(out / "folds.json", result)
            plot_folds(folds, chosen, result["baseline_score"], out / "folds.png")
            cols = ["epoch", "public", *sources, "score", "admissible"]
            text = "## Mean over folds, per epoch\n\n" + _table(chosen["epochs"], cols)
            text += "\n## Each fold\n\n" + _table([{"fold": f["fold"], **e} for f in folds for e in f["epochs"]], ["fold", *cols[:-1]])
            if base:
                text += "\n## Baseline, same folds\n\n" + _table(base, ["fold", "public", *sources, "score"])
            (out / "folds.md").write_text(text)
            print(text)
            print(json.dumps({"chosen": chosen["chosen"], "baseline_score": result["baseline_score"]}, indent=2))
        else:
            sets = [ferplus_rows(data, args.split), fer2013_rows(data, args.split)]
            sets += [photo_rows(load_cache(x), Path(load_cache(x).meta["source"]).name) for x in args.photos]
            report = {}
            for m in args.models:
                pred = Predictor(m)
                memo: dict = {}
                report[m] = {s.name: score(pred, s, memo) for s in sets}
            write_json(out / "report.json", report)
            plot_report(report, out / "report.png")
            for m, r in report.items():
                write_model_report(Path(m).name, r, out / Path(m).name)
            rows = [{"set": s.name, "n": len(s.idx), **{m: report[m][s.name]["accuracy"] for m in report}} for s in sets]
            text = _table(rows, ["set", "n", *report])
            (out / "report.md").write_text(text)
            print(text)
    except (ArtifactError, CacheError, DatasetError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
