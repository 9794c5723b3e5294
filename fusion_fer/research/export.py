"""Export: the one way a model folder is made or replaced (it writes through `fusion_fer.artifacts`).

    # a training run -> a model folder the app loads (evaluated on PrivateTest on the way)
    python -m fusion_fer.research.export --run runs/ferplus --data cache/fer2013 --out runs/export/ferplus [--blind]
    # a model folder (and a cross-dataset report from `evaluate --suite`) -> a shipped model
    python -m fusion_fer.research.export --model runs/export/ferplus --report reports/ferplus --out artifacts/ferplus --ship
    # the webcam's recipe: the framings a report of `evaluate --suite --zooms Z` scored become the live ones
    python -m fusion_fer.research.export --model ferplus --live-report runs/live/z0.9 --out artifacts/ferplus --ship

Every folder it writes gets `model.onnx` beside the weights (`write_onnx`): the fused network for other
runtimes (ONNX Runtime Web in a browser); its config.json describes the preprocessing for both.
Writing into `artifacts/` needs `--ship`. A shipped folder's card (README.md) is kept; its config.json
keeps the names of the runs it came from, not their paths.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import fields
from pathlib import Path

import torch

from ..artifacts import ArtifactError, copy_model, is_shipped, refuse_shipped, resolve_model, save_artifacts, update_model
from ..faces import FaceConfig
from .evaluate import metrics_for, parse_zooms, plot_confusion, print_metrics

# What a cross-dataset report folder adds to a model folder (metrics.json's "suite" section is merged).
REPORT_FILES = ("suite.md", "suite.png", "posed_confusion.png")
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17


class _OnnxGraph(torch.nn.Module):
    """The fused network as ONNX runtimes take it: a batch of views (faces, or faces and their mirrors) in,
    log-probabilities out. `found` is a float (1: landmarks found), which every runtime can make."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, images, landmarks, found, points):
        return torch.log_softmax(self.model(images, landmarks, found > 0.5, points).float(), dim=1)


def write_onnx(folder: str | Path, ship: bool = False) -> Path:
    """Writes `model.onnx` into a model folder, from its own weights, and describes it in config.json.

    Inputs (batch first, any batch size): `images` (B, 1, S, S) float, standardised with the folder's
    image_mean and image_std; `landmarks` (B, 1404) standardised landmarks (zeros where none); `found`
    (B,) float; `points` (B, K, 2) the guide points in grid coordinates. Output: `log_probs` (B, classes).
    Test-time framings, mirrors, offsets and the temperature are the caller's, as config.json says.
    """
    import tempfile
    from dataclasses import asdict

    from ..artifacts import load_artifacts
    from ..faces import FaceConfig
    from ..landmarks import MeshConfig

    folder = Path(folder)
    model, _, config = load_artifacts(folder, "cpu")
    c = model.config
    # every setting the browser reads is spelt out (a folder written before a setting existed takes its default)
    described = {"face": {**asdict(FaceConfig()), **config.get("face", {})},
                 "mesh": {**asdict(MeshConfig()), **config.get("mesh", {})}}
    k = max(1, len(c.guide_points))
    example = (torch.zeros(2, 1, c.image_size, c.image_size), torch.zeros(2, c.landmark_dim), torch.ones(2),
               torch.zeros(2, k, 2))
    names = ["images", "landmarks", "found", "points"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ONNX_FILE
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: its graph runs in every runtime
            torch.onnx.export(_OnnxGraph(model.eval()), example, str(path), input_names=names, output_names=["log_probs"],
                              dynamic_axes={n: {0: "batch"} for n in [*names, "log_probs"]}, opset_version=ONNX_OPSET,
                              dynamo=False)
        update_model(folder, files={ONNX_FILE: path}, ship=ship,
                     config={**described, "onnx": {"file": ONNX_FILE, "opset": ONNX_OPSET, "inputs": names,
                                                   "output": "log_probs", "guide_points": k}})
    return folder / ONNX_FILE


def export_run(run: str | Path, data: str | Path, out: str | Path, zooms=None, ship: bool = False, device: str = "cpu",
               offsets: bool = True) -> dict:
    """Evaluates a training run on PrivateTest and writes it as a model folder: weights, config.json
    (temperature and class offsets fitted on PublicTest), metrics.json, confusion matrix, training curves and log.
    `offsets` False ships none (for a model that also learnt from other sources than the cache's: offsets
    fitted on web faces alone would pull its decisions back towards them).

    Returns:
        the metrics.
    """
    from .prepare import load_cache
    from .training import load_run_model

    if not ship:
        refuse_shipped(out, "export without --ship")
    run, out = Path(run), Path(out)
    model, stats, tcfg = load_run_model(run, device)
    zooms = parse_zooms(zooms) if isinstance(zooms, str) else zooms
    metrics, zooms = metrics_for(model, stats, load_cache(data), tcfg.labels, zooms or (1.0,), device,
                                 class_bias=None if offsets else [0.0] * model.config.num_classes)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    metrics["training"] = {**summary, "log": "training_log.csv"}
    training = {**json.loads((run / "args.json").read_text()), **metrics["training"]}
    save_artifacts(out, model, stats, temperature=metrics["calibration"]["temperature"],
                   extra={"training": training, "class_bias": list(metrics["class_bias"]["values"].values()),
                          "zooms": list(zooms)})
    confusion = run / "confusion_matrix.png"  # drawn in the run folder, then copied in with the rest
    plot_confusion(metrics["with_flip"]["confusion_matrix"], confusion,
                   f"PrivateTest, flip-averaged: accuracy {metrics['with_flip']['accuracy']:.3f}")
    files = {"confusion_matrix.png": confusion}
    for name, dest in (("curves.png", "training_curves.png"), ("log.csv", "training_log.csv")):
        if (run / name).exists():
            files[dest] = run / name
    update_model(out, metrics=metrics, files=files, ship=ship)
    write_onnx(out, ship=ship)
    return metrics


def _report_suite(report: str | Path) -> dict:
    report = Path(report)
    suite = json.loads((report / "metrics.json").read_text()).get("suite") if (report / "metrics.json").is_file() else None
    if suite is None:
        raise ArtifactError(f"{report}: no cross-dataset report (run python -m fusion_fer.research.evaluate --suite)")
    return suite


def export_model(model: str | Path, out: str | Path, report: str | Path | None = None, ship: bool = False,
                 live_report: str | Path | None = None, face: dict | None = None) -> Path:
    """Copies a model folder to `out` (unless it is `out`), with a cross-dataset report folder merged in.

    `live_report`: a report of the model under other framings (`evaluate --suite --zooms Z`): those become
    its live (webcam) recipe, `live_zooms`, and the report goes into metrics.json as `live_suite`.
    A card already in `out` is kept (it is written by people); the source's card is copied otherwise.
    `face`: detection settings (`FaceConfig` fields) to set in the folder's config.json, e.g. the edge pass's.
    """
    if not ship:
        refuse_shipped(out, "export without --ship")
    src, out = resolve_model(model), Path(out)
    if src.resolve() != out.resolve():
        copy_model(src, out, ship=ship)
    else:  # in place: only what export adds (portable settings, a report)
        update_model(out, config={}, metrics={}, ship=ship)
    if report:
        report = Path(report)
        update_model(out, metrics={"suite": _report_suite(report)},
                     files={n: report / n for n in REPORT_FILES if (report / n).is_file()}, ship=ship)
    # the folder's detection settings are FaceConfig's fields: one the code no longer has is dropped (it would
    # stop the folder from loading), `face` sets others
    current = json.loads((out / "config.json").read_text()).get("face", {})
    known = {f.name for f in fields(FaceConfig)}
    settings = {k: v for k, v in {**current, **(face or {})}.items() if k in known}
    if settings != current:
        update_model(out, config={"face": settings}, ship=ship)
    if live_report:
        live = _report_suite(live_report)
        zooms = (live.get("config") or {}).get("zooms")
        if not zooms:
            raise ArtifactError(f"{live_report}: not scored with --zooms, so it names no live framings")
        update_model(out, config={"live_zooms": list(zooms)}, metrics={"live_suite": live}, ship=ship)
    write_onnx(out, ship=ship)
    return out


BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_face_settings(items: list[str]) -> dict:
    """`KEY=VALUE` pairs as FaceConfig settings, each checked against the field's type.

    Raises:
        ArtifactError: an unknown field or a value of the wrong type.
    """
    known = {f.name: f for f in fields(FaceConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in known or not value:
            raise ArtifactError(f"--face {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        default = getattr(FaceConfig(), key)
        kind = type(default)
        try:
            if kind is bool:
                if value.lower() not in BOOLEANS:
                    raise ValueError(value)
                out[key] = BOOLEANS[value.lower()]
            elif kind in (int, float):
                out[key] = kind(value)
            else:  # tuples, e.g. thresholds=[0.6,0.7,0.7]
                out[key] = json.loads(value)
        except (ValueError, json.JSONDecodeError):
            raise ArtifactError(f"--face {item!r}: {key} takes {'an' if kind is int else 'a'} {kind.__name__}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a training run folder (best.pt)")
    src.add_argument("--model", help="a model folder or a shipped name")
    p.add_argument("--out", required=True, help="the model folder to write (a folder in artifacts/ needs --ship)")
    p.add_argument("--data", help="with --run: the prepared cache it is evaluated on (PrivateTest)")
    p.add_argument("--report", help="with --model: a report folder from `evaluate --suite --out DIR`, merged in")
    p.add_argument("--live-report", help="with --model: a report of `evaluate --suite --zooms Z`: Z becomes the webcam's framings")
    p.add_argument("--ship", action="store_true", help="allow writing a shipped model in artifacts/")
    p.add_argument("--blind", action="store_true", help="print no PrivateTest figures (they are still written): for "
                   "exporting a candidate that a rule on the selection data has yet to choose")
    p.add_argument("--zooms", default=None, help="with --run: test-time framings, e.g. '1.0 1.1', or 'auto' (chosen on PublicTest)")
    p.add_argument("--face", action="append", default=[], metavar="KEY=VALUE",
                   help="with --model: set a detection setting (a FaceConfig field) in the folder, e.g. edge_side=200")
    p.add_argument("--no-offsets", dest="offsets", action="store_false",
                   help="with --run: no class offsets (a model that learnt from photo sources beside the cache)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.run and not args.data:
        p.error("--run needs --data (a prepared cache)")
    if args.ship and not is_shipped(args.out):
        p.error(f"--ship is for folders in artifacts/, and {args.out} is not one")
    try:
        face = parse_face_settings(args.face)
        if face and not args.model:
            p.error("--face goes with --model")
        if args.run:
            metrics = export_run(args.run, args.data, args.out, args.zooms, args.ship, args.device, offsets=args.offsets)
        else:
            export_model(args.model, args.out, args.report, args.ship, live_report=args.live_report, face=face)
    except ArtifactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.run and args.blind:
        print(f"{args.out}: PrivateTest figures written, not printed (--blind); "
              f"temperature {metrics['calibration']['temperature']:.3f}, "
              f"{'class offsets fitted on PublicTest' if args.offsets else 'no class offsets'}")
    elif args.run:
        print_metrics(metrics, metrics["labels"])
    print(f"model folder written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
