"""Command line.

    python -m fusion_fer predict PHOTO... [--json] [--out annotated.jpg] [--landmarks] [--model DIR]
    python -m fusion_fer detect PHOTO... [--json]          # faces and landmarks only, no model
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .imageio import ImageLoadError, load_image


def _load_all(photos: list[str]) -> list[tuple[str, np.ndarray]]:
    """(photo, RGB array) for every readable photo; each unreadable one gets an error line on stderr."""
    out = []
    for photo in photos:
        try:
            out.append((photo, np.asarray(load_image(photo))))
        except ImageLoadError as err:
            print(f"error: {err}", file=sys.stderr)
    return out


def _detect(args: argparse.Namespace) -> int:
    from .faces import FaceDetector
    from .landmarks import FaceMesh
    from .samples import grace_hopper

    photos = list(args.photos) + ([str(grace_hopper())] if args.sample else [])
    if not photos:
        print("error: give one or more photos, or --sample", file=sys.stderr)
        return 2
    detector, mesh = FaceDetector(), FaceMesh()
    results = []
    loaded = _load_all(photos)
    for photo, rgb in loaded:
        faces = detector.detect(rgb)
        rows = []
        for face in faces:
            crop = detector.crop(rgb, face, size=48)
            pts = mesh(crop)
            rows.append({"box": [round(v, 1) for v in face.box], "prob": round(face.prob, 4),
                         "landmarks": 0 if pts is None else len(pts)})
        results.append({"photo": photo, "faces": rows})
        if not args.json:
            if not rows:
                print(f"{photo}: no face")
            for i, r in enumerate(rows):
                print(f"{photo}: face {i}: box={r['box']} prob={r['prob']:.3f} landmarks={r['landmarks']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if len(loaded) == len(photos) else 1


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from PIL import Image

    from .artifacts import ArtifactError
    from .predict import load_predictor
    from .viz import draw_faces

    try:
        predictor = load_predictor(args.model)
    except ArtifactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = []
    loaded = _load_all(args.photos)
    for k, (photo, rgb) in enumerate(loaded):
        faces = predictor.predict(rgb)
        results.append({"photo": photo, "faces": [f.to_dict(with_landmarks=args.landmarks) for f in faces]})
        if not args.json:
            if not faces:
                print(f"{photo}: no face")
            for i, f in enumerate(faces):
                top = sorted(f.probs.items(), key=lambda kv: -kv[1])[1:3]
                others = ", ".join(f"{c} {p:.0%}" for c, p in top)
                print(f"{photo}: face {i}: {f.label} {f.confidence:.0%} ({others}) box={[round(v) for v in f.box]}")
        if args.out:
            out = Path(args.out)
            if len(args.photos) > 1:
                out = out.with_name(f"{out.stem}_{k}{out.suffix}")
            Image.fromarray(draw_faces(rgb, faces, show_landmarks=args.landmarks)).save(out)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if len(loaded) == len(args.photos) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_fer", description="fusion_fer command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="predict the expression of every face in photos")
    p.add_argument("photos", nargs="+", help="image files")
    p.add_argument("--json", action="store_true", help="print JSON instead of one line per face")
    p.add_argument("--out", default=None, help="save the annotated image here (several photos: NAME_<n>.EXT)")
    p.add_argument("--landmarks", action="store_true", help="draw (and, with --json, print) the landmarks")
    p.add_argument("--model", default=None, help="model folder (default: the shipped artifacts/)")
    p.set_defaults(func=_predict)
    d = sub.add_parser("detect", help="find faces and their landmarks in photos")
    d.add_argument("photos", nargs="*", help="image files")
    d.add_argument("--sample", action="store_true", help="also run on a sample photo that ships with matplotlib")
    d.add_argument("--json", action="store_true", help="print JSON instead of one line per face")
    d.set_defaults(func=_detect)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
