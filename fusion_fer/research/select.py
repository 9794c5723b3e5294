"""Choosing the default: fused candidates and their test-time variants, scored as a user sees them.

    python -m fusion_fer.research.select --data DATA --model runs/export/a --model runs/export/b [--json out.json]
    python -m fusion_fer.research.select ... --apply runs/export/default     # the winner's settings, into a copy

The rule (README, "How the default is chosen"), fixed before any candidate was scored:

* a variant is a network with framings (`zoom_sets`), a softening of the crop (`softens`) and class
  offsets, either as exported or refitted here (within +-`max_offset`, on CK+48 half A and the posed
  photos, keeping FER+ PublicTest accuracy within `ferplus_guard` of the same settings without offsets);
* its score is the mean accuracy over FER+ PublicTest (majority), CK+48 half A and the posed photos
  (Taiwanese half A, through detection; a missed face is wrong), each the argmax over all of the
  model's classes;
* admissible only with FER+ PublicTest accuracy >= `ferplus_floor`; the highest admissible score wins,
  and at equal score the variant with fewer network passes per face.

Only selection data is read: FER2013 PublicTest, CK+48 half A and taiwanese_dev (half A).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..fileio import write_json
from ..predict import Predictor, load_predictor, log_probs
from .data import CLASSES, FERPLUS_CLASSES, SPLITS, CKPlus, read_posed_photos
from .evaluate import apply_bias, fit_temperature, greedy_offsets
from .suite import SuiteData, score


@dataclass
class SelectConfig:
    """The candidates' test-time variants and the rule's thresholds."""

    zoom_sets: tuple[tuple[float, ...], ...] = ((1.0,), (0.8, 0.9, 1.0), (0.9, 1.0, 1.1))
    softens: tuple[float, ...] = (0.0, 0.5, 1.0)  # Gaussian sigma on the 48 px crop the network sees
    max_offset: float = 1.0  # refitted class offsets stay within +-this (log-probability units)
    offset_grid: tuple[float, ...] = (-0.2, -0.1, 0.1, 0.2)  # steps of the greedy coordinate search
    offset_rounds: int = 8
    ferplus_guard: float = 0.005  # refitted offsets may cost at most this much FER+ PublicTest accuracy
    ferplus_floor: float = 0.86  # admissible only above this FER+ PublicTest accuracy
    batch_size: int = 256


@dataclass
class FaceSet:
    """One selection set, ready for the network: crops, landmarks and labels into `classes`."""

    name: str
    crops: np.ndarray  # (N, 48, 48) uint8; zeros where no face was found
    points: np.ndarray  # (N, 468, 3)
    found: np.ndarray  # (N,) bool: the mesh found the face
    labels: np.ndarray  # (N,) into `classes`, -1 not scored
    classes: tuple[str, ...]
    detected: np.ndarray  # (N,) bool: False where detection missed the face (photos): wrong, whatever the network says


def selection_sets(predictor: Predictor, data_root: str | Path) -> list[FaceSet]:
    """FER+ PublicTest (majority over 8 classes), CK+48 half A and the posed photos (through detection)."""
    data = SuiteData.under(data_root)
    if data.posed is None:
        raise FileNotFoundError(f"{data_root}: the rule needs taiwanese_dev/ (the posed colour photos)")
    ds, major, ck = data.read()
    rows = np.flatnonzero(ds.splits == SPLITS.index("PublicTest"))
    half = ck.half == "A"
    sets = []
    for name, crops, labels, classes in (("ferplus", ds.images[rows], major[rows], FERPLUS_CLASSES),
                                         ("ckplus", ck.images[half], ck.labels[half], CKPlus.CLASSES)):
        points, found, _ = predictor.mesh_points(tqdm(crops, desc=f"{name}: Face Landmarker", leave=False, unit="face"))
        sets.append(FaceSet(name, crops, points, found, labels, classes, np.ones(len(crops), bool)))
    photos = read_posed_photos(data.posed)
    crops, detected = [], []
    for path in tqdm(photos.paths, desc="posed photos: detection", leave=False, unit="photo"):
        found = predictor.find_faces(path)
        detected.append(bool(found.faces))
        crops.append(found.crops[0] if found.faces else np.zeros((48, 48), np.uint8))  # the largest face, as predict() answers
    crops = np.stack(crops)
    points, found, _ = predictor.mesh_points(crops)
    sets.append(FaceSet("taiwanese", crops, points, found & np.array(detected), photos.labels, CLASSES, np.array(detected)))
    return sets


def raw_log_probs(predictor: Predictor, faces: FaceSet, zooms: tuple[float, ...], sigma: float, batch_size: int) -> np.ndarray:
    """(N, classes) log-probabilities before offsets and temperature; NaN rows where detection missed."""
    out = []
    for s in range(0, len(faces.crops), batch_size):
        b = slice(s, s + batch_size)
        out.append(log_probs(predictor.model, faces.crops[b], faces.points[b], faces.found[b], predictor.stats,
                             predictor.device, zooms=zooms, soften_sigma=sigma).numpy())
    logp = np.concatenate(out).astype(np.float64)
    logp[~faces.detected] = np.nan
    return logp


def accuracies(logps: dict[str, np.ndarray], sets: list[FaceSet], model_classes: tuple[str, ...], bias: np.ndarray) -> dict:
    """Each set's accuracy and recall as a user sees it, with `bias` added to the log-probabilities."""
    out = {}
    for fs in sets:
        r = score(logps[fs.name] + bias, fs.labels, fs.classes, model_classes, unfound_wrong=True, f1=False)
        out[fs.name] = {"accuracy": r["accuracy"], "recall": r["recall"], "n": r["n"]}
    return out


def fit_offsets(logps: dict[str, np.ndarray], sets: list[FaceSet], classes: tuple[str, ...], start: np.ndarray,
                config: SelectConfig) -> np.ndarray:
    """Greedy coordinate search on the mean accuracy of CK+48 half A and the posed photos, each offset within
    +-max_offset, keeping FER+ PublicTest accuracy within `ferplus_guard` of the same settings without offsets."""
    floor = accuracies(logps, sets, classes, np.zeros(len(classes)))["ferplus"]["accuracy"] - config.ferplus_guard

    def objective(b):
        a = accuracies(logps, sets, classes, b)
        return (a["ckplus"]["accuracy"] + a["taiwanese"]["accuracy"]) / 2 if a["ferplus"]["accuracy"] >= floor else -np.inf

    if objective(np.clip(start, -config.max_offset, config.max_offset)) == -np.inf:
        start = np.zeros(len(classes))  # export's offsets break the guard: start from none
    bias = greedy_offsets(objective, start, config.max_offset, config.offset_grid, config.offset_rounds)
    return np.round(bias, 4)


def candidates(predictor: Predictor, sets: list[FaceSet], config: SelectConfig) -> list[dict]:
    """Every variant of one network, scored by the rule."""
    rows = []
    exported = predictor.class_bias.numpy().astype(np.float64)
    grid = [(z, s) for z in config.zoom_sets for s in config.softens]
    for zooms, sigma in tqdm(grid, desc=f"{predictor.name}: variants", leave=False, unit="variant"):
        logps = {fs.name: raw_log_probs(predictor, fs, zooms, sigma, config.batch_size) for fs in sets}
        for kind, bias in (("exported", exported), ("refitted", fit_offsets(logps, sets, predictor.classes, exported, config))):
            acc = accuracies(logps, sets, predictor.classes, bias)
            value = float(np.mean([acc[k]["accuracy"] for k in ("ferplus", "ckplus", "taiwanese")]))
            rows.append({"model": predictor.config["folder"], "name": predictor.name, "zooms": list(zooms), "soften": sigma,
                         "offsets": kind, "bias": [float(b) for b in bias], "passes": 2 * len(zooms),
                         "score": round(value, 4), "admissible": acc["ferplus"]["accuracy"] >= config.ferplus_floor,
                         **{k: acc[k] for k in acc}})
    return rows


def choose(rows: list[dict]) -> dict | None:
    """The highest admissible score; at equal score, fewer network passes per face."""
    ok = [r for r in rows if r["admissible"]]
    return max(ok, key=lambda r: (r["score"], -r["passes"])) if ok else None


def table(rows: list[dict], top: int = 15) -> str:
    head = ["| network | framings | soften | offsets | score | FER+ PublicTest | CK+48 half A | posed photos | lowest posed recall | admissible |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    body = []
    for r in sorted(rows, key=lambda r: (-r["score"], r["passes"]))[:top]:
        low = min(r["taiwanese"]["recall"], key=r["taiwanese"]["recall"].get)
        body.append(f"| {r['name']} | {' '.join(map(str, r['zooms']))} | {r['soften']} | {r['offsets']} | {r['score']:.4f} | "
                    f"{r['ferplus']['accuracy']:.2%} | {r['ckplus']['accuracy']:.2%} | {r['taiwanese']['accuracy']:.2%} | "
                    f"{low} {r['taiwanese']['recall'][low]:.2f} | {'yes' if r['admissible'] else 'no'} |")
    return "\n".join(head + body) + "\n"


def apply(choice: dict, sets: list[FaceSet], out: str | Path) -> Path:
    """Copies the winning network's folder to `out` (an export folder, never a shipped one) with the
    winner's framings, softening and offsets, and a temperature refitted on FER+ PublicTest under them."""
    from ..artifacts import copy_model, update_model

    predictor = load_predictor(choice["model"])
    fer = next(fs for fs in sets if fs.name == "ferplus")
    logp = raw_log_probs(predictor, fer, tuple(choice["zooms"]), choice["soften"], 256)
    keep = fer.labels >= 0
    probs = apply_bias(np.exp(logp[keep]), np.asarray(choice["bias"]))
    t = fit_temperature(probs, fer.labels[keep])
    if Path(out).resolve() != Path(choice["model"]).resolve():
        copy_model(choice["model"], out)
    update_model(out, config={"zooms": choice["zooms"], "soften": choice["soften"], "class_bias": choice["bias"],
                              "temperature": round(float(t), 4),
                              "recipe": "research.select: framings, softening and offsets by the user's-protocol rule"},
                 metrics={"selection": {k: v for k, v in choice.items() if k != "model"}})
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the data folder (fer2013/, ckplus48/, taiwanese_dev/)")
    p.add_argument("--model", action="append", required=True, help="a candidate model folder (give each one)")
    p.add_argument("--json", default=None, help="write every variant's figures here")
    p.add_argument("--apply", default=None, metavar="OUT", help="write the winner, with its settings, to this export folder")
    args = p.parse_args(argv)
    from ..artifacts import ArtifactError, refuse_shipped
    from .data import DatasetError

    config = SelectConfig()
    rows: list[dict] = []
    try:
        if args.apply:
            refuse_shipped(args.apply, "select --apply")
            if Path(args.apply).exists() and any(Path(args.apply).iterdir()):
                raise ArtifactError(f"--apply {args.apply} exists: give a new folder (an old copy could mix two models' files)")
        sets = None
        for model in args.model:
            predictor = load_predictor(model)
            if predictor.model.config.mode != "fused" or predictor.classes != FERPLUS_CLASSES:
                raise ArtifactError(f"{model}: the default's candidates are fused 8-class networks, not "
                                    f"{predictor.model.config.mode} with {len(predictor.classes)} classes")
            sets = sets or selection_sets(predictor, args.data)  # detection and mesh do not depend on the network
            rows += candidates(predictor, sets, config)
    except (ArtifactError, DatasetError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table(rows))
    choice = choose(rows)
    record = {"config": asdict(config), "candidates": rows, "chosen": choice}
    if args.json:
        write_json(args.json, record)
    if choice is None:
        print("no admissible variant", file=sys.stderr)
        return 1
    print(f"chosen: {choice['name']}, framings {choice['zooms']}, soften {choice['soften']}, offsets {choice['offsets']} "
          f"(score {choice['score']:.4f})")
    if args.apply:
        print(f"written to {apply(choice, sets, args.apply)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
