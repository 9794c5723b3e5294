"""A model folder's inference recipe, chosen on the selection data: test-time framings and class offsets.

    python -m fusion_fer.research.recipe --model artifacts/ferplus --data ../shared/data            # the candidates' table
    python -m fusion_fer.research.recipe --model artifacts/ferplus --data ../shared/data --apply    # ... and write the winner

The default model is used on faces of every kind, so its recipe is chosen on both selection sets that
the project has: FER2013 PublicTest with the FER+ majority, and CK+48 half A (posed lab faces). The
rule (docs/model-selection-log.md, "A fourth look"), fixed before any candidate was scored:

* PublicTest is split by position: even positions are the fitting half, odd positions the guard half;
* candidates: each set of framings in `RecipeConfig.zoom_sets` (each framing with its mirror; at most
  `max_images` images through the network per face), with three kinds of class offsets, each within
  +-`max_offset`: `"none"`; `"publictest"` (`evaluate.fit_class_bias` on the fitting half: every
  recall >= 0.5, then accuracy); `"both"` (greedy coordinate search from the `"publictest"` offsets on
  CK+48 half-A macro-F1 + FER+ fitting-half macro-F1, never letting FER+ fitting-half accuracy fall
  more than `max_accuracy_drop` below the plain inference's, below);
* admissible: FER+ guard-half accuracy at most `max_accuracy_drop` below the same network's plain
  inference (one framing, 1.0, with its mirror, no offsets) on the guard half: a recipe may cost that
  much FER+ accuracy on faces its offsets never saw, no more;
* score: CK+48 half-A macro-F1 + FER+ guard-half macro-F1 on the 7 classes every model has;
* the best admissible candidate replaces the current recipe if the current one is not admissible
  (offsets out of bounds, or not fitted on the fitting half: `config.json` says which) or if it scores
  at least `min_gain` more; ties go to fewer images per face.

Nothing here reads PrivateTest or CK+48 half B; the report (`evaluate --suite`) does, afterwards.
Everything goes through `predict.log_probs`, the inference core that serving uses.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..fileio import write_json
from ..predict import Predictor, load_predictor, log_probs
from .data import CLASSES, FERPLUS_CLASSES, SPLITS, CKPlus
from .evaluate import apply_bias, apply_temperature, fit_class_bias, fit_temperature, greedy_offsets
from .suite import SuiteData, score


@dataclass(frozen=True)
class RecipeConfig:
    """The candidates and the rule."""

    zoom_sets: tuple[tuple[float, ...], ...] = ((1.0,), (0.9, 1.0), (1.0, 1.1), (0.9, 1.0, 1.1), (0.8, 0.9, 1.0),
                                                 (1.0, 1.1, 1.2), (0.8, 1.0, 1.2))
    max_images: int = 6  # framings x mirror per face: the model step stays <= 10 ms on a 2-core CPU
    min_gain: float = 0.01  # on the default score (a sum of two macro-F1s)
    max_accuracy_drop: float = 0.003  # FER+ accuracy a recipe may cost, against the plain inference (below)
    max_offset: float = 0.6  # every class offset stays within +-this
    reference_zooms: tuple[float, ...] = (1.0,)  # the plain inference that the FER+ accuracy guard compares with
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
    def _halves(self) -> dict[str, np.ndarray]:
        even = np.arange(len(self.ferplus)) % 2 == 0
        return {"fit": even, "guard": ~even, "all": np.ones_like(even)}

    def half(self, part: str) -> np.ndarray:
        """PublicTest rows of one part: "fit" (even positions), "guard" (odd positions) or "all"."""
        return self._halves[part]

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
                           predictor.stats, predictor.device, flip=predictor.flip, zooms=(z,),
                           soften_sigma=predictor.soften).exp().numpy()
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
    zooms = tuple(sorted({z for s in config.zoom_sets for z in s} | set(predictor.zooms) | set(config.reference_zooms)))
    return SelectionViews(_raw_probs(predictor, ds.images[rows], zooms, config.batch_size, "PublicTest"),
                          _raw_probs(predictor, ck.images[half], zooms, config.batch_size, "CK+48 half A"),
                          major, major if ferplus_trained else ds.labels[rows], ck.labels[half])


RECIPE_PROVENANCE = {"offsets_fitted_on": "FER2013 PublicTest even positions + CK+48 half A",
                     "guard": "FER2013 PublicTest odd positions"}


def evaluate_recipe(views: SelectionViews, classes: tuple[str, ...], zooms: tuple[float, ...], bias: np.ndarray,
                    part: str = "guard") -> dict:
    """The rule's figures for one recipe on one part of PublicTest (`SelectionViews.half`) and CK+48 half A."""
    rows = views.half(part)
    pf, pc = views.probs(zooms)
    pf, pc = apply_bias(pf[rows], bias), apply_bias(pc, bias)
    f7 = score(pf, views.ferplus7[rows], CLASSES, classes)
    ckr = score(pc, views.ck_labels, CKPlus.CLASSES, classes)
    return {"score": round(f7["macro_f1"] + ckr["macro_f1"], 4),
            "ferplus_accuracy": score(pf, views.ferplus[rows], FERPLUS_CLASSES, classes)["accuracy"],
            "ferplus7_macro_f1": f7["macro_f1"], "ckplus_macro_f1": ckr["macro_f1"],
            "ckplus_accuracy": ckr["accuracy"], "ckplus_recall": ckr["recall"]}


def fit_offsets_both(views: SelectionViews, classes: tuple[str, ...], zooms: tuple[float, ...], start: np.ndarray,
                     floor: float, config: RecipeConfig) -> np.ndarray:
    """Greedy coordinate search on CK+48 half A + the fitting half's score from `start`, each offset within
    +-max_offset, keeping FER+ fitting-half accuracy >= floor."""
    def objective(bias):
        r = evaluate_recipe(views, classes, zooms, bias, "fit")
        return r["score"] if r["ferplus_accuracy"] >= floor else -np.inf

    return greedy_offsets(objective, start, config.max_offset, config.offset_grid, config.offset_steps)


def plain_accuracy(views: SelectionViews, classes: tuple[str, ...], config: RecipeConfig, part: str) -> float:
    """FER+ accuracy of the plain inference (`reference_zooms`, no offsets) on one part of PublicTest: the guard's reference."""
    return evaluate_recipe(views, classes, config.reference_zooms, np.zeros(len(classes)), part)["ferplus_accuracy"]


def _row(views: SelectionViews, classes: tuple[str, ...], zooms: tuple[float, ...], kind: str, bias: np.ndarray,
         plain: float, config: RecipeConfig, held_out: bool = True) -> dict:
    """A candidate's figures on the guard half, the plain inference's accuracy there (`plain`), and whether the rule
    admits it."""
    r = evaluate_recipe(views, classes, zooms, bias, "guard")
    inside = bool(np.all(np.abs(bias) <= config.max_offset + 1e-6))  # offsets read back from a model are float32
    return {"zooms": list(zooms), "offsets": kind, "bias": [round(float(b), 3) for b in bias], "images": 2 * len(zooms),
            **r, "ferplus_accuracy_plain": plain,
            "admissible": held_out and inside and r["ferplus_accuracy"] >= plain - config.max_accuracy_drop - 1e-9}


def current_recipe(views: SelectionViews, classes: tuple[str, ...], zooms: tuple[float, ...], bias: np.ndarray,
                   held_out: bool = False, config: RecipeConfig | None = None) -> dict:
    """The row of the recipe to beat (a folder's own, or a baseline folder's when another network competes).

    `held_out`: its offsets were fitted by this rule, on the fitting half only (`config.json`'s "recipe" says so);
    a recipe fitted on all of PublicTest has seen the guard half and is never admissible.
    """
    config = config or RecipeConfig()
    return {**_row(views, classes, tuple(zooms), "current", np.asarray(bias, np.float64),
                   plain_accuracy(views, classes, config, "guard"), config, held_out), "offsets": "current"}


def choose_recipe(views: SelectionViews, classes: tuple[str, ...], current: dict, config: RecipeConfig | None = None) -> dict:
    """Scores every candidate and applies the rule against `current` (`current_recipe`).

    Returns:
        {"current": row, "candidates": [rows, best first], "chosen": row, "changed": bool, "rule": str};
        each row has zooms, offsets (kind and values), images per face, `evaluate_recipe`'s guard-half
        figures, the plain inference's guard-half accuracy and whether the rule admits it.
    """
    config = config or RecipeConfig()
    fit = views.half("fit")
    own = (views.fer_own >= 0) & fit
    floor = plain_accuracy(views, classes, config, "fit") - config.max_accuracy_drop
    plain = plain_accuracy(views, classes, config, "guard")
    rows = []
    for zooms in tqdm([z for z in config.zoom_sets if 2 * len(z) <= config.max_images], desc="candidates", unit="framings"):
        pf, _ = views.probs(zooms)
        zero = np.zeros(pf.shape[1])
        pub = np.clip(fit_class_bias(pf[own], views.fer_own[own]), -config.max_offset, config.max_offset)
        for kind, bias in (("none", zero), ("publictest", pub),
                           ("both", fit_offsets_both(views, classes, zooms, pub, floor, config))):
            rows.append(_row(views, classes, zooms, kind, bias, plain, config))
    rows.sort(key=lambda r: (-r["score"], r["images"]))
    best = next((r for r in rows if r["admissible"]), None)  # the plain inference itself always is, when a candidate
    changed = best is not None and (not current["admissible"] or best["score"] >= current["score"] + config.min_gain)
    return {"current": current, "candidates": rows, "chosen": best if changed else current, "changed": changed,
            "rule": (f"highest CK+48 half-A macro-F1 + FER+ PublicTest guard-half macro-F1 (7 classes) among recipes whose "
                     f"offsets (within +-{config.max_offset}, fitted on the other half) cost at most "
                     f"{config.max_accuracy_drop:.1%} FER+ guard-half accuracy; replaces the current recipe if that one "
                     f"is not admissible or if >= +{config.min_gain}; ties to fewer images per face")}


def apply_recipe(views: SelectionViews, choice: dict) -> tuple[dict, dict]:
    """The chosen framings and offsets for config.json, with the temperature refitted on PublicTest
    (on the new recipe's probabilities, as the Predictor applies them: offsets, then temperature)."""
    chosen = choice["chosen"]
    zooms, bias = tuple(chosen["zooms"]), np.asarray(chosen["bias"])
    own = views.fer_own >= 0
    pf = apply_bias(views.probs(zooms)[0][own], bias)
    t = fit_temperature(pf, views.fer_own[own])
    config = dict(zooms=list(zooms), class_bias=[float(b) for b in bias], temperature=round(t, 4), recipe=RECIPE_PROVENANCE)
    return config, {"temperature": round(t, 4), "calibrated_max_prob_mean": round(float(apply_temperature(pf, t).max(1).mean()), 4)}


def table(choice: dict, top: int = 10) -> str:
    """The markdown table of the candidates (best first) and the current recipe; FER+ figures on the guard half."""
    head = ["| framings (each with its mirror) | offsets | images/face | score | FER+ guard-half acc. (plain) | "
            "admissible | CK+48 half A acc. | lowest CK+ half-A recall |", "|---|---|---|---|---|---|---|---|"]

    def line(r: dict, mark: str = "") -> str:
        low = min(r["ckplus_recall"], key=r["ckplus_recall"].get)
        return (f"| {' + '.join(map(str, r['zooms']))}{mark} | {r['offsets']} | {r['images']} | {r['score']:.4f} | "
                f"{r['ferplus_accuracy']:.2%} ({r['ferplus_accuracy_plain']:.2%}) | {'yes' if r['admissible'] else 'no'} | "
                f"{r['ckplus_accuracy']:.2%} | {low} {r['ckplus_recall'][low]:.2f} |")

    body = [line(r, " **(chosen)**" if choice["changed"] and r is choice["chosen"] else "") for r in choice["candidates"][:top]]
    return "\n".join(head + body + [line(choice["current"], " (current)")]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model folder or shipped name")
    p.add_argument("--data", required=True, help="../shared/data (fer2013/ and ckplus48/)")
    p.add_argument("--apply", action="store_true", help="write the chosen recipe into the folder's config.json (an export "
                   "folder, not a shipped model: export ships it)")
    p.add_argument("--baseline", default=None,
                   help="the recipe to beat is this model's (name or folder; default: --model's own): a new network "
                        "for a shipped name competes with what ships")
    p.add_argument("--json", default=None, help="also write the candidates here")
    args = p.parse_args(argv)
    from ..artifacts import ArtifactError, refuse_shipped, resolve_model, update_model
    from .data import DatasetError

    config = RecipeConfig()
    try:
        folder = resolve_model(args.model)
        if args.apply:
            refuse_shipped(args.model, "recipe --apply")
            refuse_shipped(folder, "recipe --apply")
        predictor = load_predictor(folder)
        views = selection_views(predictor, args.data, config)
        base, base_views = predictor, views
        if args.baseline is not None:
            base = load_predictor(resolve_model(args.baseline))
            base_views = selection_views(base, args.data, RecipeConfig(zoom_sets=(base.zooms,)))
    except (ArtifactError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    current = current_recipe(base_views, base.classes, base.zooms, base.class_bias.numpy(),
                             held_out=base.config.get("recipe") == RECIPE_PROVENANCE, config=config)
    if args.baseline is not None:
        current.update(offsets=f"current ({base.name})")
    choice = choose_recipe(views, predictor.classes, current, config)
    print(table(choice))
    verdict = ("replaces the current recipe" if choice["current"]["admissible"] else
               "replaces the current recipe, which the rule does not admit") if choice["changed"] else \
        "no admissible candidate beats it by the minimum gain: the recipe stays"
    print(f"chosen: framings {choice['chosen']['zooms']}, offsets {choice['chosen']['offsets']} ({verdict})")
    record = {**choice, "config": asdict(config), "applied": False}
    if args.apply:
        new_config = {}
        if choice["changed"]:
            new_config, fitted = apply_recipe(views, choice)
            record.update(applied=True, **fitted)
        update_model(folder, config=new_config, metrics={"recipe": record})
        print(f"written to {folder} (temperature {record.get('temperature', predictor.temperature)})")
    if args.json:
        write_json(Path(args.json), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
