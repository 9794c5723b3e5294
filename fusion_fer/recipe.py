"""A model folder's inference recipe, chosen on the selection data: test-time framings and class offsets.

    python -m fusion_fer.recipe --model artifacts/ferplus --data ../shared/data            # the candidates' table
    python -m fusion_fer.recipe --model artifacts/ferplus --data ../shared/data --apply    # ... and write the winner

The default model is used on faces of every kind, so its recipe is chosen on both selection sets that
the project has: FER2013 PublicTest with the FER+ majority, and CK+48 half A (posed lab faces). The
rule (README, "Revisiting the default model's recipe"), fixed before any candidate was scored:

* candidates: each set of framings in `RecipeConfig.zoom_sets` (each framing with its mirror; at most
  `max_images` images through the network per face), with either kind of class offsets:
  `"publictest"` (`evaluate.fit_class_bias` on PublicTest: every recall >= 0.5, then accuracy) or
  `"both"` (greedy coordinate search on the score below, from the PublicTest offsets, never taking a
  step that breaks the accuracy floor);
* score: CK+48 half-A macro-F1 + FER+ PublicTest macro-F1 on the 7 classes every model has
  (`suite.selection_score(s, "default")`);
* a candidate replaces the folder's current recipe if it beats it by >= `min_gain` and its FER+
  PublicTest majority accuracy is at most `max_accuracy_drop` below the current one's; ties go to fewer
  images per face.

Nothing here reads PrivateTest or CK+48 half B; the report (`evaluate --suite`) does, afterwards.
Everything goes through `predict.log_probs`, the inference core that serving uses.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import CLASSES, FERPLUS_CLASSES, SPLITS, CKPlus
from .evaluate import _write_metrics, apply_bias, apply_temperature, fit_class_bias, fit_temperature
from .predict import Predictor, load_predictor, log_probs
from .suite import SuiteData, score


@dataclass(frozen=True)
class RecipeConfig:
    """The candidates and the rule."""

    zoom_sets: tuple[tuple[float, ...], ...] = ((1.0,), (0.9, 1.0), (1.0, 1.1), (0.9, 1.0, 1.1), (0.8, 0.9, 1.0),
                                                 (1.0, 1.1, 1.2), (0.8, 1.0, 1.2))
    max_images: int = 6  # framings x mirror per face: the model step stays <= 10 ms on a 2-core CPU
    min_gain: float = 0.01  # on the default score (a sum of two macro-F1s)
    max_accuracy_drop: float = 0.003  # FER+ PublicTest majority accuracy, against the current recipe
    offset_grid: tuple[float, ...] = tuple(np.round(np.linspace(-0.6, 0.6, 13), 2))
    offset_steps: int = 30
    batch_size: int = 512


@dataclass
class SelectionViews:
    """Raw (no offsets, no temperature) probabilities of the selection faces, one array per framing."""

    fer: dict[float, np.ndarray]  # zoom -> (N, classes), FER2013 PublicTest
    ck: dict[float, np.ndarray]  # zoom -> (M, classes), CK+48 half A
    ferplus: np.ndarray  # (N,) FER+ majority over 8 classes (-1: not scored)
    fer_own: np.ndarray  # (N,) the labels the model was trained on (FER+ majority or FER2013), for the PublicTest offsets
    ck_labels: np.ndarray  # (M,) into CKPlus.CLASSES

    @cached_property
    def ferplus7(self) -> np.ndarray:
        """The FER+ majority where it is one of the 7 classes every model has (-1 elsewhere): the score's labels."""
        return np.where(self.ferplus < len(CLASSES), self.ferplus, -1)

    def probs(self, zooms: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Averaged over the framings, as `log_probs(zooms=...)` averages them."""
        return np.mean([self.fer[z] for z in zooms], 0), np.mean([self.ck[z] for z in zooms], 0)


def _raw_probs(predictor: Predictor, crops: np.ndarray, zooms: tuple[float, ...], batch_size: int, desc: str) -> dict:
    points, found = predictor.mesh_points(tqdm(crops, desc=f"{desc}: Face Mesh", leave=False, unit="face"))
    out = {}
    for z in tqdm(zooms, desc=f"{desc}: framings", leave=False, unit="zoom"):
        parts = [log_probs(predictor.model, crops[s:s + batch_size], points[s:s + batch_size], found[s:s + batch_size],
                           predictor.stats, predictor.device, flip=predictor.flip, zooms=(z,)).exp().numpy()
                 for s in range(0, len(crops), batch_size)]
        out[z] = np.concatenate(parts).astype(np.float64)
    return out


def selection_views(predictor: Predictor, data_root: str | Path, config: RecipeConfig) -> SelectionViews:
    """Every framing of the candidates on FER2013 PublicTest and CK+48 half A (a few minutes on a CPU)."""
    ds, major_all, ck = SuiteData.under(data_root).read()
    rows = np.flatnonzero(ds.splits == SPLITS.index("PublicTest"))
    major = major_all[rows]
    ferplus_trained = str(predictor.config.get("training", {}).get("labels", "fer2013")).startswith("ferplus")
    half = ck.half == "A"
    zooms = tuple(sorted({z for s in config.zoom_sets for z in s} | set(predictor.zooms)))
    return SelectionViews(_raw_probs(predictor, ds.images[rows], zooms, config.batch_size, "PublicTest"),
                          _raw_probs(predictor, ck.images[half], zooms, config.batch_size, "CK+48 half A"),
                          major, major if ferplus_trained else ds.labels[rows], ck.labels[half])


def evaluate_recipe(views: SelectionViews, classes: tuple[str, ...], zooms: tuple[float, ...], bias: np.ndarray) -> dict:
    """The rule's figures for one recipe: the default score, FER+ PublicTest accuracy, CK+48 half A."""
    pf, pc = (apply_bias(p, bias) for p in views.probs(zooms))
    f7 = score(pf, views.ferplus7, CLASSES, classes)
    ckr = score(pc, views.ck_labels, CKPlus.CLASSES, classes)
    return {"score": round(f7["macro_f1"] + ckr["macro_f1"], 4),
            "ferplus_accuracy": score(pf, views.ferplus, FERPLUS_CLASSES, classes)["accuracy"],
            "ferplus7_macro_f1": f7["macro_f1"], "ckplus_macro_f1": ckr["macro_f1"],
            "ckplus_accuracy": ckr["accuracy"], "ckplus_recall": ckr["recall"]}


def fit_offsets_both(views: SelectionViews, classes: tuple[str, ...], zooms: tuple[float, ...], start: np.ndarray,
                     floor: float, config: RecipeConfig) -> np.ndarray:
    """Greedy coordinate search on the default score from `start`, keeping FER+ PublicTest accuracy >= floor."""
    bias = start.astype(np.float64).copy()
    first = evaluate_recipe(views, classes, zooms, bias)
    best = first["score"] if first["ferplus_accuracy"] >= floor else -np.inf
    for _ in range(config.offset_steps):
        improved = False
        for k in range(len(bias)):
            for d in config.offset_grid:
                if d == 0:
                    continue
                trial = bias.copy()
                trial[k] += d
                r = evaluate_recipe(views, classes, zooms, trial)
                if r["ferplus_accuracy"] >= floor and r["score"] > best + 1e-9:
                    best, bias, improved = r["score"], trial, True
        if not improved:
            break
    return bias


def current_recipe(views: SelectionViews, classes: tuple[str, ...], zooms: tuple[float, ...], bias: np.ndarray) -> dict:
    """The row of the recipe to beat (a folder's own, or a baseline folder's when another network competes)."""
    return {"zooms": list(zooms), "offsets": "current", "bias": [round(float(b), 3) for b in bias],
            "images": 2 * len(zooms), **evaluate_recipe(views, classes, tuple(zooms), bias)}


def choose_recipe(views: SelectionViews, classes: tuple[str, ...], current: dict, config: RecipeConfig | None = None) -> dict:
    """Scores every candidate and applies the rule against `current` (`current_recipe`).

    Returns:
        {"current": row, "candidates": [rows, best first], "chosen": row, "changed": bool, "rule": str};
        each row has zooms, offsets (kind and values), images per face and `evaluate_recipe`'s figures.
    """
    config = config or RecipeConfig()
    floor = current["ferplus_accuracy"] - config.max_accuracy_drop
    own = views.fer_own >= 0
    rows = []
    for zooms in tqdm([z for z in config.zoom_sets if 2 * len(z) <= config.max_images], desc="candidates", unit="framings"):
        pf, _ = views.probs(zooms)
        pub = fit_class_bias(pf[own], views.fer_own[own])
        for kind, bias in (("publictest", pub), ("both", fit_offsets_both(views, classes, zooms, pub, floor, config))):
            rows.append({"zooms": list(zooms), "offsets": kind, "bias": [round(float(b), 3) for b in bias],
                         "images": 2 * len(zooms), **evaluate_recipe(views, classes, zooms, bias)})
    rows.sort(key=lambda r: (-r["score"], r["images"]))
    allowed = [r for r in rows if r["ferplus_accuracy"] >= floor - 1e-9]
    best = allowed[0] if allowed else None
    changed = best is not None and best["score"] >= current["score"] + config.min_gain
    return {"current": current, "candidates": rows, "chosen": best if changed else current, "changed": changed,
            "rule": (f"highest CK+48 half-A macro-F1 + FER+ PublicTest macro-F1 (7 classes); replaces the current recipe "
                     f"if >= +{config.min_gain} and FER+ PublicTest accuracy >= current - {config.max_accuracy_drop:.1%}; "
                     "ties to fewer images per face")}


def apply_recipe(folder: Path, views: SelectionViews, choice: dict) -> dict:
    """Writes the chosen framings and offsets into config.json, with the temperature refitted on PublicTest
    (on the new recipe's probabilities, as the Predictor applies them: offsets, then temperature)."""
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    chosen = choice["chosen"]
    zooms, bias = tuple(chosen["zooms"]), np.asarray(chosen["bias"])
    own = views.fer_own >= 0
    pf = apply_bias(views.probs(zooms)[0][own], bias)
    t = fit_temperature(pf, views.fer_own[own])
    cfg.update(zooms=list(zooms), class_bias=[float(b) for b in bias], temperature=round(t, 4))
    tmp = cfg_path.with_name("config.json.tmp")
    tmp.write_text(json.dumps(cfg))
    tmp.replace(cfg_path)
    return {"temperature": round(t, 4), "calibrated_max_prob_mean": round(float(apply_temperature(pf, t).max(1).mean()), 4)}


def table(choice: dict, top: int = 10) -> str:
    """The README table of the candidates (best first) and the current recipe."""
    head = ["| framings (each with its mirror) | offsets | images/face | score | FER+ PublicTest acc. | "
            "CK+48 half A acc. | lowest CK+ half-A recall |", "|---|---|---|---|---|---|---|"]

    def line(r: dict, mark: str = "") -> str:
        low = min(r["ckplus_recall"], key=r["ckplus_recall"].get)
        return (f"| {' + '.join(map(str, r['zooms']))}{mark} | {r['offsets']} | {r['images']} | {r['score']:.4f} | "
                f"{r['ferplus_accuracy']:.2%} | {r['ckplus_accuracy']:.2%} | {low} {r['ckplus_recall'][low]:.2f} |")

    body = [line(r, " **(chosen)**" if choice["changed"] and r is choice["chosen"] else "") for r in choice["candidates"][:top]]
    return "\n".join(head + body + [line(choice["current"], " (current)")]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model folder or shipped name")
    p.add_argument("--data", required=True, help="../shared/data (fer2013/ and ckplus48/)")
    p.add_argument("--apply", action="store_true", help="write the chosen recipe into the folder's config.json")
    p.add_argument("--baseline", default=None,
                   help="the recipe to beat is this model's (name or folder; default: --model's own): a new network "
                        "for a shipped name competes with what ships")
    p.add_argument("--json", default=None, help="also write the candidates here")
    args = p.parse_args(argv)
    from .artifacts import ArtifactError, resolve_model
    from .data import DatasetError

    config = RecipeConfig()
    try:
        folder = resolve_model(args.model)
        predictor = load_predictor(folder)
        views = selection_views(predictor, args.data, config)
        base, base_views = predictor, views
        if args.baseline is not None:
            base = load_predictor(resolve_model(args.baseline))
            base_views = selection_views(base, args.data, RecipeConfig(zoom_sets=(base.zooms,)))
    except (ArtifactError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    current = current_recipe(base_views, base.classes, base.zooms, base.class_bias.numpy())
    if args.baseline is not None:
        current.update(offsets=f"current ({base.name})")
    choice = choose_recipe(views, predictor.classes, current, config)
    print(table(choice))
    verdict = "replaces the current recipe" if choice["changed"] else "no candidate passes the rule: the recipe stays"
    print(f"chosen: framings {choice['chosen']['zooms']}, offsets {choice['chosen']['offsets']} ({verdict})")
    record = {**choice, "config": asdict(config), "applied": False}
    if args.apply and choice["changed"]:
        record.update(applied=True, **apply_recipe(folder, views, choice))
        print(f"written to {folder / 'config.json'} (temperature {record['temperature']})")
    _write_metrics(folder / "metrics.json", {"recipe": record})
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
