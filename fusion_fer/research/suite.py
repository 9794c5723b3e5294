"""The cross-dataset report: one model folder, five views of "faces it was not tuned on", one command.

    python -m fusion_fer.research.evaluate --model artifacts/fer2013 --suite ../shared/data

Everything goes through the public `Predictor` (the served probabilities: class offsets and
temperature included), so the figures are what a user gets.

* `fer2013_csv`: FER2013 faces from the CSV pixels (lossless), FER2013 labels.
* `fer2013_jpeg`: the same splits from the JPEG image-folder release (`fer2013_images.tar.gz`).
* `detection`: each CSV face upscaled 4x (bicubic) on a grey border of 48 px, through MTCNN
  (`predict(detect=True)`, largest face); accuracy on the faces found, beside the crop accuracy of
  the same faces.
* `ferplus`: the CSV faces against the FER+ majority label (`data.ferplus8`: single votes
  dropped, the top emotion must hold more than half of the rest).
* `ckplus`: CK+48, subjects sorted and alternated into halves A and B (`data.read_ckplus`).

Each is scored for the selection split (PublicTest, CK+48 half A) and the report split
(PrivateTest, CK+48 half B). The argmax runs over the classes that both the data and the model
have: CK+48 has no neutral, FER2013 no contempt, and FER+ contempt faces are left out for a
7-class model (the count `n` says how many faces were scored).
"""
from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import (CLASS_ALIASES, CLASSES, FERPLUS_CLASSES, SPLITS, CKPlus, DatasetError, FaceDataset, ferplus8, read_ckplus,
                   read_fer2013_csv, read_ferplus, read_posed_photos)

# ../shared's reconstructed CSV: rows whose FER+ votes are not reliably aligned with their pixels (its README).
SHARED_FERPLUS_DROP_ROWS = (5274, 5348, 8423, 33200)
FER2013_ROWS = 35_887
SELECT, REPORT = "select", "report"
SPLIT_OF = {SELECT: "PublicTest", REPORT: "PrivateTest"}
CK_HALF = {SELECT: "A", REPORT: "B"}


@dataclass
class SuiteConfig:
    """What the suite runs."""

    parts: tuple[str, ...] = (SELECT, REPORT)  # select: PublicTest + CK+ half A; report: PrivateTest + CK+ half B
    detection_upscale: int = 4  # the detection path: face upscaled this much (bicubic) ...
    detection_border: int = 48  # ... on a grey border of this many pixels
    detection_every: int = 1  # report: score every n-th face on the detection path (1: all)
    detection_every_select: int = 3  # select: every 3rd face (1,197) is enough to rank models, in a third of the time
    batch_size: int = 256
    zooms: tuple[float, ...] | None = None  # test-time framings instead of the model's own (e.g. its live recipe)


@dataclass
class SuiteData:
    """The files of `../shared/data` that the suite reads."""

    csv: Path
    ferplus: Path
    jpeg_tar: Path
    ckplus: Path
    posed: Path | None = None  # taiwanese_dev: clear colour photos of posed expressions (selection data), if present

    @classmethod
    def under(cls, root: str | Path) -> SuiteData:
        root = Path(root)
        posed = root / "taiwanese_dev"
        d = cls(root / "fer2013" / "fer2013_reconstructed.csv.gz", root / "fer2013" / "fer2013new.csv",
                root / "fer2013" / "fer2013_images.tar.gz", root / "ckplus48", posed if posed.is_dir() else None)
        missing = [str(p) for p in (d.csv, d.ferplus, d.jpeg_tar, d.ckplus) if not p.exists()]
        if missing:
            raise DatasetError(f"{root}: the suite needs {', '.join(missing)} (the layout of ../shared/data)")
        return d

    def read(self) -> tuple[FaceDataset, np.ndarray, CKPlus]:
        """FER2013 (CSV), the FER+ majority of every row (`ferplus8`: over 8 classes, -1 not scored) and CK+48."""
        ds = read_fer2013_csv(self.csv)
        drop = SHARED_FERPLUS_DROP_ROWS if len(ds) == FER2013_ROWS else ()  # they belong to the full reconstruction
        major = ferplus8(read_ferplus(self.ferplus, expected_rows=len(ds), drop_rows=drop).votes)[0]
        return ds, major, read_ckplus(self.ckplus)


def read_jpeg_release(tar_path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The image-folder release's faces of one split (`test/<class>/PrivateTest_<id>.jpg`), sorted by name.

    Returns:
        images (N, 48, 48) uint8, labels (N,) index into CLASSES.
    """
    import io

    from PIL import Image

    pattern = re.compile(rf"(?:^|/)(?:train|test)/([^/]+)/{split}_[^/]+\.jpg$", re.IGNORECASE)
    found = []
    with tarfile.open(tar_path, "r:*") as tar:
        for m in tar:
            hit = pattern.search(m.name)
            if m.isfile() and hit:
                cls = CLASS_ALIASES.get(hit.group(1).lower())
                if cls is None:
                    raise DatasetError(f"{tar_path}: unknown class folder in {m.name}")
                data = tar.extractfile(m).read()
                found.append((m.name, cls, np.asarray(Image.open(io.BytesIO(data)).convert("L"))))
    if not found:
        raise DatasetError(f"{tar_path}: no {split}_*.jpg files")
    found.sort(key=lambda t: t[0])
    return np.stack([f[2] for f in found]), np.array([f[1] for f in found], np.int64)


def crop_probs(predictor, images: np.ndarray, batch_size: int = 256, desc: str = "") -> np.ndarray:
    """Served probabilities (N, classes) for face crops (the whole image is the face)."""
    out = []
    for s in tqdm(range(0, len(images), batch_size), desc=desc, leave=False, unit="batch"):
        res = predictor.predict_batch(list(images[s:s + batch_size]), detect=False)
        out += [[r[0].probs[c] for c in predictor.classes] for r in res]
    return np.asarray(out, np.float64).reshape(len(images), len(predictor.classes))


def detection_probs(predictor, images: np.ndarray, upscale: int, border: int, desc: str = "") -> np.ndarray:
    """Served probabilities through detection: each crop upscaled, framed by a grey border, then
    `predict(detect=True)`; the largest face's probabilities, NaN rows where no face was found."""
    import cv2

    out = np.full((len(images), len(predictor.classes)), np.nan)
    for i, img in enumerate(tqdm(images, desc=desc, leave=False, unit="face")):
        big = cv2.resize(img, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_CONSTANT, value=128)
        faces = predictor.predict(np.repeat(big[..., None], 3, axis=2), detect=True)
        if faces:
            out[i] = [faces[0].probs[c] for c in predictor.classes]
    return out


def score(probs: np.ndarray, labels: np.ndarray, data_classes: tuple[str, ...], model_classes: tuple[str, ...],
          restricted: bool = False, unfound_wrong: bool = False, f1: bool = True) -> dict:
    """Accuracy, macro-F1 and per-class recall of the label a user sees: the argmax over all of the model's
    classes, so an answer the data has no face of (neutral for a posed CK+ face) is wrong. Faces of a class
    the model does not have (contempt for a 7-class model) are left out.

    Args:
        probs: (N, len(model_classes)), NaN rows where no face was found; labels: (N,) index into
            `data_classes` (-1: not scored).
        restricted: take the argmax over the classes both have instead (kinder than what a user sees;
            reported beside the headline, labelled, and never used for a choice).
        unfound_wrong: a face detection missed counts as wrong (photos), instead of being left out (crops).
        f1: also the macro-F1 (the slow part, for searches that only need accuracy and recall).
    """
    from sklearn.metrics import f1_score

    shared = [c for c in data_classes if c in model_classes]
    y_name = np.array([data_classes[k] if k >= 0 else "" for k in labels])
    found = np.all(np.isfinite(probs), axis=1)
    keep = np.isin(y_name, shared) & (found | unfound_wrong)
    if not keep.any():
        return {"n": 0}
    y = np.array([model_classes.index(c) for c in y_name[keep]], np.int64)
    p = np.nan_to_num(probs[keep], nan=-1.0)
    cols = np.array([model_classes.index(c) for c in shared]) if restricted else np.arange(len(model_classes))
    pred = np.where(found[keep], cols[p[:, cols].argmax(1)], -1)  # -1: no face found
    present = sorted(set(y.tolist()))
    return {
        "n": int(len(y)),
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(float(f1_score(y, pred, labels=present, average="macro", zero_division=0)), 4) if f1 else None,
        "recall": {model_classes[k]: round(float((pred[y == k] == k).mean()), 4) for k in present},
        "classes": shared,
        "argmax": "shared classes (restricted)" if restricted else "all of the model's classes",
    }


def confusion(probs: np.ndarray, labels: np.ndarray, data_classes: tuple[str, ...], model_classes: tuple[str, ...]) -> dict:
    """Counts of (intended class, the answer a user sees), with "no face" for photos detection missed."""
    found = np.all(np.isfinite(probs), axis=1)
    answers = list(model_classes) + ["no face"]
    pred = np.where(found, np.nan_to_num(probs, nan=-1.0).argmax(1), len(model_classes))
    rows = [c for c in data_classes if (np.array([data_classes[k] for k in labels]) == c).any()]
    grid = [[int(((labels == data_classes.index(r)) & (pred == j)).sum()) for j in range(len(answers))] for r in rows]
    return {"rows": rows, "columns": answers, "counts": grid}


def posed_report(predictor, root: Path) -> dict:
    """Posed colour photos through the whole path (`predict(detect=True)`, the largest face), scored as a
    user sees them: a face detection misses is wrong, and so is a neutral answer to a posed expression."""
    photos = read_posed_photos(root)
    probs = np.full((len(photos.paths), len(predictor.classes)), np.nan)
    for i, path in enumerate(tqdm(photos.paths, desc="posed photos", leave=False, unit="photo")):
        faces = predictor.predict(path)
        if faces:
            probs[i] = [faces[0].probs[c] for c in predictor.classes]
    found = np.all(np.isfinite(probs), axis=1)
    restricted = score(probs, photos.labels, CLASSES, predictor.classes, restricted=True, unfound_wrong=True)
    return {**score(probs, photos.labels, CLASSES, predictor.classes, unfound_wrong=True),
            "found": round(float(found.mean()), 4), "subjects": int(len(np.unique(photos.subjects))),
            "confusion": confusion(probs, photos.labels, CLASSES, predictor.classes),
            "restricted": {k: restricted.get(k) for k in ("argmax", "accuracy", "macro_f1")}}


def selection_score(suite: dict, kind: str) -> float:
    """The rules fixed before any result was seen (docs/model-selection-log.md, "Choosing the shipped models"), on the select part.

    kind "fer2013": the mean accuracy over PublicTest CSV, PublicTest JPEG, the PublicTest detection path
    and CK+48 half A (picks the FER2013 model among candidates).
    kind "default": CK+48 half-A macro-F1 + FER+ PublicTest macro-F1 on the 7 shared classes (picks the default model).
    kind "user": the mean accuracy, as a user sees it, over FER+ PublicTest (majority), CK+48 half A and the
    posed photos (Taiwanese half A): the rule of docs/evaluation.md, "Choosing the default".
    """
    sel = suite[SELECT]
    if kind == "user":
        return float(np.mean([sel[k]["accuracy"] for k in ("ferplus", "ckplus", "taiwanese")]))
    if kind == "fer2013":
        return float(np.mean([sel[k]["accuracy"] for k in ("fer2013_csv", "fer2013_jpeg", "detection", "ckplus")]))
    if kind == "default":
        return float(sel["ckplus"]["macro_f1"] + sel["ferplus_7"]["macro_f1"])
    raise ValueError(f"unknown rule {kind!r}")


def run_suite(model: str | Path | None, data_root: str | Path, config: SuiteConfig | None = None) -> dict:
    """Every figure of the report for one model folder (None: the default model).

    Returns:
        {"select": {...}, "report": {...}}, each {fer2013_csv, fer2013_jpeg, detection, ferplus, ckplus}.
    """
    from ..predict import load_predictor

    config = config or SuiteConfig()
    data = SuiteData.under(data_root)
    predictor = load_predictor(model)
    if config.zooms is not None:
        predictor.zooms = tuple(config.zooms)
    mc = predictor.classes
    ds, fp_major, ck = data.read()
    out: dict = {"model_classes": list(mc), "config": {k: getattr(config, k) for k in config.__dataclass_fields__}}
    for part in config.parts:
        split = SPLITS.index(SPLIT_OF[part])
        rows = np.flatnonzero(ds.splits == split)
        res: dict = {"split": SPLIT_OF[part], "ckplus_half": CK_HALF[part]}
        p_csv = crop_probs(predictor, ds.images[rows], config.batch_size, desc=f"{SPLIT_OF[part]} CSV")
        res["fer2013_csv"] = score(p_csv, ds.labels[rows], CLASSES, mc)
        jpg, jpg_labels = read_jpeg_release(data.jpeg_tar, SPLIT_OF[part])
        res["fer2013_jpeg"] = score(crop_probs(predictor, jpg, config.batch_size, desc=f"{SPLIT_OF[part]} JPEG"),
                                    jpg_labels, CLASSES, mc)
        res["ferplus"] = score(p_csv, fp_major[rows], FERPLUS_CLASSES, mc)
        # The same faces on the 7 classes every model has (contempt faces left out): compares 7- and 8-class models.
        res["ferplus_7"] = score(p_csv, np.where(fp_major[rows] < len(CLASSES), fp_major[rows], -1), CLASSES, mc)
        sub = np.arange(0, len(rows), config.detection_every if part == REPORT else config.detection_every_select)
        p_det = detection_probs(predictor, ds.images[rows[sub]], config.detection_upscale, config.detection_border,
                                desc=f"{SPLIT_OF[part]} detection")
        found = np.all(np.isfinite(p_det), axis=1)
        det = score(p_det, ds.labels[rows[sub]], CLASSES, mc)
        same = score(p_csv[sub][found], ds.labels[rows[sub]][found], CLASSES, mc)
        res["detection"] = {**det, "faces": int(len(sub)), "found": round(float(found.mean()), 4),
                            "crop_accuracy_same_faces": same.get("accuracy"),
                            "gap": round(same["accuracy"] - det["accuracy"], 4) if det.get("n") else None}
        half = ck.half == CK_HALF[part]
        p_ck = crop_probs(predictor, ck.images[half], config.batch_size, desc=f"CK+48 half {CK_HALF[part]}")
        restricted = score(p_ck, ck.labels[half], CKPlus.CLASSES, mc, restricted=True)
        res["ckplus"] = {**score(p_ck, ck.labels[half], CKPlus.CLASSES, mc), "subjects": int(len(np.unique(ck.subjects[half]))),
                         "restricted": {k: restricted.get(k) for k in ("argmax", "accuracy", "macro_f1")}}
        if part == SELECT and data.posed is not None:
            res["taiwanese"] = posed_report(predictor, data.posed)
        res["jpeg_gap"] = round(res["fer2013_csv"]["accuracy"] - res["fer2013_jpeg"]["accuracy"], 4)
        out[part] = res
    return out


SHORT = {"fer2013_csv": "FER2013\nCSV", "fer2013_jpeg": "FER2013\nJPEG", "detection": "detection\npath",
         "ferplus": "FER+\nmajority", "ckplus": "CK+48\nhalf B", "taiwanese": "posed photos\nhalf A"}
NAMES = {"fer2013_csv": "FER2013 (CSV pixels)", "fer2013_jpeg": "FER2013 (JPEG release)",
         "detection": "Detection path (4x, grey border)", "ferplus": "FER+ majority", "ckplus": "CK+48",
         "taiwanese": "Posed colour photos, Taiwanese (detection)"}


def markdown(suite: dict, title: str = "") -> str:
    """The report as a markdown table: one row per dataset and part."""
    lines = [f"**{title}**" if title else "", "",
             "Accuracy as a user sees it: the argmax over all of the model's classes (a neutral answer to a posed "
             "face is wrong). CK+48 and the posed photos: restricted to the classes they have, in brackets "
             "(kinder; never used for a choice).", "",
             "| data | split | n | accuracy | macro-F1 | lowest recall |", "|---|---|---|---|---|---|"]
    for part in (REPORT, SELECT):
        if part not in suite:
            continue
        res = suite[part]
        for key, name in NAMES.items():
            r = res.get(key, {})
            if not r.get("n"):
                continue
            where = f"half {res['ckplus_half']}" if key in ("ckplus", "taiwanese") else res["split"]
            low = min(r["recall"], key=r["recall"].get)
            extra = ""
            if key == "detection":
                extra = f" (found {r['found']:.1%}; same faces as crops {r['crop_accuracy_same_faces']:.2%})"
            if key == "taiwanese":
                extra = f" (found {r['found']:.1%})"
            kinder = f" ({r['restricted']['accuracy']:.2%})" if r.get("restricted") else ""
            lines.append(f"| {name}{extra} | {where} | {r['n']} | {r['accuracy']:.2%}{kinder} | {r['macro_f1']:.3f} | "
                         f"{low} {r['recall'][low]:.2f} |")
    return "\n".join(lines).strip() + "\n"


def plot(suite: dict, path: str | Path, title: str = "") -> None:
    """Per-class recall on each report dataset, as a heat map (classes x datasets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = {**suite[REPORT], "taiwanese": suite.get(SELECT, {}).get("taiwanese", {})}  # posed photos: half A only
    keys = [k for k in NAMES if res.get(k, {}).get("n")]
    classes = suite["model_classes"]
    grid = np.full((len(classes), len(keys)), np.nan)
    for j, k in enumerate(keys):
        for i, c in enumerate(classes):
            grid[i, j] = res[k]["recall"].get(c, np.nan)
    fig, ax = plt.subplots(figsize=(1.1 * len(keys) + 2.6, 0.42 * len(classes) + 1.9))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(keys)), [f"{SHORT[k]}\n{res[k]['accuracy']:.1%}" for k in keys], fontsize=8)
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(keys)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title(title or "Recall per class (report splits)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
