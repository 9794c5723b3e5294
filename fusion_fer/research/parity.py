"""The browser app's photo path, reproduced in Python, to choose where the page puts its crop.

    python -m fusion_fer.research.parity --data ../shared/data/taiwanese_dev --out reports/parity

The page has no MTCNN: it finds a face by the Face Landmarker's mesh on the whole photo and places the
crop's square around the mesh box with the model's calibration (config.json `face.mesh_crop_*`); the crop,
its mesh and the network are then the Python app's. This runs exactly that (the same landmarker in IMAGE
mode, the same square, then `Predictor.predict` on the 48 px crop) for a few ways of placing the square,
some averaging the answers of several squares ("views"), and scores each by how often its label is the
Python app's own (MTCNN's crop). The photos that the browser test checks (tests/test_web.py: every tenth
row of labels.csv, 60 of them) are reported only; the choice is made on the others.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..faces import Face, FaceConfig, crop_face, to_gray
from ..imageio import read_rgb
from ..fileio import atomic_path
from ..predict import load_predictor
from .calibrate import mesh_boxes

# Each variant: the squares the page reads, as (side factor, vertical shift in units of the mesh box) applied
# to the calibrated square (config.json `face.mesh_squares`); the answers of several squares are averaged.
VARIANTS = {
    "the calibrated square alone": ((1.0, 0.0),),
    "+ squares at side x0.97 and x1.03": ((1.0, 0.0), (0.97, 0.0), (1.03, 0.0)),
    "+ squares shifted by -0.02 and +0.02": ((1.0, 0.0), (1.0, -0.02), (1.0, 0.02)),
    "+ all four": ((1.0, 0.0), (0.97, 0.0), (1.03, 0.0), (1.0, -0.02), (1.0, 0.02)),
}


def checked_rows(rows: list[dict]) -> set[str]:
    """The photos the browser test checks: every tenth row, the first 60 of them."""
    return {r["file"] for r in rows[::10][:60]}


def page_square(box, face_config: FaceConfig, factor: float = 1.0, shift: float = 0.0) -> Face:
    """The page's crop square for a mesh box (fer.js `cropSquare`), as a Face that `crop_face` cuts with no
    calibration of its own."""
    x1, y1, x2, y2 = box
    size = float(np.sqrt((x2 - x1) * (y2 - y1)))
    cx = (x1 + x2) / 2 + face_config.mesh_crop_shift_x * size
    cy = (y1 + y2) / 2 + (face_config.mesh_crop_shift_y + shift) * size
    half = size * face_config.mesh_crop_scale * factor / 2
    return Face((cx - half, cy - half, cx + half, cy + half), 1.0, np.zeros((5, 2), np.float32))


def largest_mesh_box(rgb: np.ndarray, landmarker):
    """The mesh box of the largest face the Face Landmarker finds in a photo (the page's first face), or None."""
    boxes = mesh_boxes(rgb, landmarker)
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if boxes else None


def square_probs(predictor, rgb: np.ndarray, box, factor: float = 1.0, shift: float = 0.0) -> dict[str, float]:
    """The served probabilities for one of the page's squares around a mesh box: its 48 px grey crop, then the
    Python app's mesh and network on it."""
    config = predictor.detector.config
    plain = replace(config, crop_scale=1.0, crop_shift_y=0.0, align=False)
    gray = to_gray(crop_face(rgb, page_square(box, config, factor, shift), 48, plain))
    return predictor.predict(np.repeat(gray[..., None], 3, axis=2), detect=False)[0].probs


def average(per_square: list[dict[str, float]]) -> dict[str, float]:
    """The page's answer for several squares: their probabilities averaged, in order."""
    total: dict[str, float] = {}
    for probs in per_square:
        total = {c: total.get(c, 0.0) + p / len(per_square) for c, p in probs.items()}
    return total


def page_probs(predictor, rgb: np.ndarray, landmarker, squares) -> dict[str, float] | None:
    """The page's probabilities for the largest face of a photo, averaged over `squares`; None when the mesh
    finds no face (the page then shows none)."""
    box = largest_mesh_box(rgb, landmarker)
    if box is None:
        return None
    return average([square_probs(predictor, rgb, box, factor, shift) for factor, shift in squares])


def run(data: Path, model: str | None = None, limit: int | None = None) -> dict:
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions

    from ..landmarks import read_task_file

    predictor = load_predictor(model)
    options = FaceLandmarkerOptions(base_options=BaseOptions(model_asset_buffer=read_task_file()), num_faces=20)
    with FaceLandmarker.create_from_options(options) as landmarker:
        return _score(predictor, landmarker, data, limit)


def _score(predictor, landmarker, data: Path, limit: int | None) -> dict:
    rows = list(csv.DictReader(open(data / "labels.csv", newline="")))
    checked = checked_rows(rows)
    rows = rows[:limit] if limit else rows
    per = {name: {"checked": [], "other": []} for name in VARIANTS}
    for r in tqdm(rows, desc="photos", unit="photo"):
        rgb, _ = read_rgb(data / r["file"])
        faces = predictor.predict(rgb)
        python = faces[0].label if faces else None
        part = "checked" if r["file"] in checked else "other"
        # the photo's mesh box once, and each distinct square once: the variants share them
        box = largest_mesh_box(rgb, landmarker)
        squares = {sq for variant in VARIANTS.values() for sq in variant}
        seen = {sq: square_probs(predictor, rgb, box, *sq) for sq in squares} if box is not None else {}
        for name, variant in VARIANTS.items():
            probs = average([seen[sq] for sq in variant]) if seen else None
            page = max(probs, key=probs.get) if probs else None
            per[name][part].append({"file": r["file"], "truth": r["fer_name"], "python": python, "page": page})
    table = {}
    served = tuple(map(tuple, predictor.detector.config.mesh_squares))
    for name, parts in per.items():
        row = {}
        for part, items in parts.items():
            if items:
                row[part] = {"photos": len(items), "same_label": float(np.mean([i["python"] == i["page"] for i in items])),
                             "page_accuracy": float(np.mean([i["page"] == i["truth"] for i in items])),
                             "python_accuracy": float(np.mean([i["python"] == i["truth"] for i in items]))}
        table[name] = row
    # the best agreement on the other photos; a tie keeps the fewer squares (VARIANTS' order)
    chosen = max(table, key=lambda n: table[n].get("other", {}).get("same_label", -1))
    page = next((n for n, variant in VARIANTS.items() if variant == served), None)
    return {"model": predictor.name, "variants": table, "chosen": chosen, "page": page, "photos": per}


def write_report(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "parity.json").write_text(json.dumps(result, indent=1))
    lines = [f"# The page's square against the Python app's crop (`{result['model']}`)", "",
             "Agreement with the Python app's label; the choice (bold) is made on the other photos, the 60 the "
             "browser test checks are reported only.", "",
             "| the page reads | same label, other photos | same label, the 60 | page right, the 60 | Python right, the 60 |",
             "|---|---|---|---|---|"]
    for name, row in result["variants"].items():
        o, c = row.get("other", {}), row.get("checked", {})
        pct = lambda d, k: f"{100 * d[k]:.1f} %" if k in d else "-"  # noqa: E731
        mark = "**" if name == result["chosen"] else ""
        now = " (the page's config.json)" if name == result.get("page") else ""
        lines.append(f"| {mark}{name}{mark}{now} | {pct(o, 'same_label')} | {pct(c, 'same_label')} | {pct(c, 'page_accuracy')} "
                     f"| {pct(c, 'python_accuracy')} |")
    (out / "parity.md").write_text("\n".join(lines) + "\n")
    import matplotlib.pyplot as plt

    names = list(result["variants"])
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.2))
    for j, part in enumerate(("other", "checked")):
        vals = [100 * result["variants"][n].get(part, {}).get("same_label", 0) for n in names]
        ax.barh(np.arange(len(names)) + 0.2 * (1 - 2 * j), vals, height=0.4, label={"other": "other photos (the choice)",
                                                                                     "checked": "the 60 the test checks"}[part])
    ax.set_yticks(np.arange(len(names)), names)
    ax.set_xlabel("same label as the Python app (%)")
    ax.set_xlim(70, 100)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(out / "parity.png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a photo folder with labels.csv (file, fer_name), e.g. taiwanese_dev")
    p.add_argument("--out", required=True)
    p.add_argument("--model", default=None, help="a model folder or shipped name (default: the default model)")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos (a quick look)")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not (data / "labels.csv").is_file():
        print(f"error: {data} has no labels.csv", file=sys.stderr)
        return 2
    result = run(data, args.model, args.limit)
    write_report(result, Path(args.out))
    print((Path(args.out) / "parity.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
