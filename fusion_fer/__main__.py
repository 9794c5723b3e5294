"""Command line.

    python -m fusion_fer predict PHOTO_OR_DIR... [--json] [--out annotated.jpg] [--landmarks] [--model DIR]
    python -m fusion_fer predict PHOTO_OR_DIR... --csv faces.csv [--workers N] [--resume] [--ray auto|local|ADDRESS]
    python -m fusion_fer video IN --out annotated.mp4 --csv frames.csv [--every N] [--plot timeline.png]
    python -m fusion_fer detect PHOTO... [--json]          # faces and landmarks only, no model

MediaPipe and TF Lite log to the process's stderr from C++ on every run; the command hides those lines
unless --verbose is given. Python's own messages (errors, progress bars) always show.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


from .imageio import ImageLoadError, read_rgb


def _each_loaded(photos, failed: list[str]):
    """(photo, RGB array) for each readable photo, one at a time; unreadable ones go to `failed` and stderr."""
    for photo in photos:
        try:
            yield photo, read_rgb(photo)[0]
        except ImageLoadError as err:
            failed.append(photo)
            print(f"error: {err}", file=sys.stderr)


def _detect(args: argparse.Namespace) -> int:
    from .faces import FaceDetector
    from .landmarks import FaceMesh
    from .samples import grace_hopper

    photos = list(args.photos) + ([str(grace_hopper())] if args.sample else [])
    if not photos:
        print("error: give one or more photos, or --sample", file=sys.stderr)
        return 2
    detector, mesh = FaceDetector(), FaceMesh()
    results, failed = [], []
    for photo, rgb in _each_loaded(photos, failed):
        faces = detector.detect(rgb)
        rows = []
        for face in faces:
            crop = detector.crop(rgb, face, size=48)
            found = mesh(crop)
            rows.append({"box": [round(v, 1) for v in face.box], "prob": round(face.prob, 4),
                         "landmarks": 0 if found is None else len(found.points),
                         "blendshapes": 0 if found is None else len(found.blendshapes)})
        results.append({"photo": photo, "faces": rows})
        if not args.json:
            if not rows:
                print(f"{photo}: no face")
            for i, r in enumerate(rows):
                print(f"{photo}: face {i}: box={r['box']} prob={r['prob']:.3f} landmarks={r['landmarks']}")
    if args.json and (results or not failed):  # nothing on stdout when no photo could be read
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _predict(args: argparse.Namespace) -> int:
    from PIL import Image

    from .artifacts import ArtifactError
    from .batch import iter_photos
    from .predict import load_predictor
    from .viz import draw_faces

    if args.csv:
        return _predict_csv(args)
    if args.workers != 1 or args.resume or args.ray:
        print("error: --workers, --resume and --ray write a CSV: add --csv FILE", file=sys.stderr)
        return 2
    try:
        predictor = load_predictor(args.model)
    except ArtifactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results, failed = [], []
    photos = list(iter_photos(args.photos))
    for k, (photo, rgb) in enumerate(_each_loaded(photos, failed)):
        faces = predictor.predict(rgb)
        results.append({"photo": photo, "faces": [f.to_dict(with_landmarks=args.landmarks, with_blendshapes=args.blendshapes)
                                                  for f in faces]})
        if not args.json:
            if not faces:
                print(f"{photo}: no face")
            for i, f in enumerate(faces):
                top = sorted(f.probs.items(), key=lambda kv: -kv[1])[1:3]
                others = ", ".join(f"{c} {p:.0%}" for c, p in top)
                print(f"{photo}: face {i}: {f.label} {f.confidence:.0%} ({others}) box={[round(v) for v in f.box]}")
        if args.out:
            out = Path(args.out)
            if len(photos) > 1:
                out = out.with_name(f"{out.stem}_{k}{out.suffix}")
            Image.fromarray(draw_faces(rgb, faces, show_landmarks=args.landmarks)).save(out)
    if args.json and (results or not failed):  # nothing on stdout when no photo could be read: `[]` would read as "no faces"
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _predict_csv(args: argparse.Namespace) -> int:
    from .artifacts import ArtifactError
    from .batch import BatchError, run

    if args.out or args.json:
        print("error: --csv writes rows only; --out and --json are for a few photos", file=sys.stderr)
        return 2
    try:
        stats = run(args.photos, args.csv, model=args.model, workers=args.workers, resume=args.resume, ray=args.ray,
                    parquet=args.parquet, device=args.device, blendshapes=args.blendshapes)
    except (BatchError, ArtifactError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(stats.line(), file=sys.stderr)
    return 1 if stats.errors else 0


def _video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .artifacts import ArtifactError
    from .predict import load_predictor
    from .video import VideoConfig, VideoError, analyze_video, format_summary, probe, speed_note
    from .viz import plot_timeline

    try:
        probe(args.input)  # a file that is no video fails before the model loads
        given = {"smoothing": args.smoothing, "min_face_fraction": args.min_face}  # unset: VideoConfig's defaults
        config = VideoConfig(every=args.every, show_landmarks=args.landmarks, blendshapes=args.blendshapes, **{k: v for k, v in given.items() if v is not None})
        predictor = load_predictor(args.model)
    except (ValueError, ArtifactError) as err:  # VideoError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    bar = tqdm(unit="frame", file=sys.stderr, disable=args.no_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    code = 0
    try:
        result = analyze_video(predictor, args.input, out=args.out, csv_path=args.csv, config=config, progress=progress)
    except VideoError as err:
        bar.close()
        print(f"error: {err}", file=sys.stderr)
        if err.partial is None:
            return 2
        result, code = err.partial, 1
    bar.close()
    if args.plot:
        plot_timeline(result.tracks, result.classes, args.plot, title=f"{args.input} (every {args.every} frame(s))")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": result.frames, "processed": result.processed, "fps": result.fps,
                                               "duration_s": result.duration_s, "tracks": result.summary_rows()}, indent=2))
    print(format_summary(result))
    print(speed_note(result), file=sys.stderr)
    saved = [p for p in (result.out, result.csv_path, args.plot, args.json) if p]
    print("saved: " + ", ".join(saved) if saved else "(nothing saved: add --out, --csv, --plot or --json)", file=sys.stderr)
    return code


def _quiet_native_logs() -> None:
    """Sends what native libraries write to file descriptor 2 to /dev/null, while Python's sys.stderr keeps
    writing to the real stderr (a duplicate of it)."""
    sys.stderr.flush()
    real = os.dup(2)
    sys.stderr = os.fdopen(real, "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def main(argv: list[str] | None = None, quiet_native: bool = False) -> int:
    """Runs the command line; `quiet_native` hides the C++ libraries' log lines unless --verbose is given."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="also show MediaPipe's and TF Lite's own log lines")
    parser = argparse.ArgumentParser(prog="python -m fusion_fer", description="fusion_fer command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", parents=[common], help="predict the expression of every face in photos")
    p.add_argument("photos", nargs="+", help="image files and folders (searched recursively for images)")
    p.add_argument("--json", action="store_true", help="print JSON instead of one line per face")
    p.add_argument("--out", default=None, help="save the annotated image here (several photos: NAME_<n>.EXT)")
    p.add_argument("--landmarks", action="store_true", help="draw (and, with --json, print) the landmarks")
    p.add_argument("--model", default=None, help="a shipped model by name (ferplus, fer2013) or a model folder (default: the default model)")
    p.add_argument("--csv", default=None, help="write one row per face (and per photo without one) here, streaming")
    p.add_argument("--no-blendshapes", dest="blendshapes", action="store_false",
                   help="leave MediaPipe's 52 blendshape coefficients out of --json and --csv")
    p.add_argument("--workers", type=int, default=1, help="with --csv: worker processes (one core each), or Ray actors")
    p.add_argument("--resume", action="store_true", help="with --csv: append to it, skipping photos already in it")
    p.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                   help="with --csv: run on a Ray cluster (auto: the running one; local: start one here)")
    p.add_argument("--parquet", default=None, help="with --ray: also write the rows as Parquet into this folder")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="with --csv: where each worker runs the model")
    p.set_defaults(func=_predict)
    v = sub.add_parser("video", parents=[common], help="annotate a video and write per-frame predictions, a timeline and a summary")
    v.add_argument("input", help="video file (anything FFmpeg reads: mp4, mov, mkv, webm, avi...)")
    v.add_argument("--out", default=None, help="annotated copy, H.264 MP4 (browsers play it)")
    v.add_argument("--csv", default=None, help="one row per face per classified frame")
    v.add_argument("--plot", default=None, help="timeline PNG: each expression's probability over time, per face")
    v.add_argument("--json", default=None, help="summary per face track as JSON")
    v.add_argument("--no-blendshapes", dest="blendshapes", action="store_false",
                   help="leave MediaPipe's 52 blendshape coefficients out of the CSV")
    v.add_argument("--every", type=int, default=1, help="classify every Nth frame (faster); tracks carry over between")
    v.add_argument("--smoothing", type=float, default=None,
                   help="weight of the newest classified frame per face, 0-1 (1: no smoothing; default 0.35)")
    v.add_argument("--min-face", type=float, default=None,
                   help="smallest face as a share of the shorter side (default 0.12; smaller finds smaller faces, slower)")
    v.add_argument("--landmarks", action="store_true", help="draw the landmarks")
    v.add_argument("--model", default=None, help="a shipped model by name (ferplus, fer2013) or a model folder (default: the default model)")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(func=_video)
    d = sub.add_parser("detect", parents=[common], help="find faces and their landmarks in photos")
    d.add_argument("photos", nargs="*", help="image files")
    d.add_argument("--sample", action="store_true", help="also run on a sample photo that ships with matplotlib")
    d.add_argument("--json", action="store_true", help="print JSON instead of one line per face")
    d.set_defaults(func=_detect)
    args = parser.parse_args(argv)
    if quiet_native and not args.verbose:
        _quiet_native_logs()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main(quiet_native=True))
