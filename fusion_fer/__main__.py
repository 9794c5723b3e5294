"""Command line: `python -m fusion_fer detect PHOTO... [--json]`."""
from __future__ import annotations

import argparse
import json
import sys

from .imageio import ImageLoadError, load_image


def _detect(args: argparse.Namespace) -> int:
    import numpy as np

    from .faces import FaceDetector
    from .landmarks import FaceMesh
    from .samples import grace_hopper

    photos = list(args.photos) + ([str(grace_hopper())] if args.sample else [])
    if not photos:
        print("error: give one or more photos, or --sample", file=sys.stderr)
        return 2
    detector, mesh = FaceDetector(), FaceMesh()
    status, results = 0, []
    for photo in photos:
        try:
            rgb = np.asarray(load_image(photo))
        except ImageLoadError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
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
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_fer", description="fusion_fer command line")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("detect", help="find faces and their landmarks in photos")
    d.add_argument("photos", nargs="*", help="image files")
    d.add_argument("--sample", action="store_true", help="also run on a sample photo that ships with matplotlib")
    d.add_argument("--json", action="store_true", help="print JSON instead of one line per face")
    d.set_defaults(func=_detect)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
