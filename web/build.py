"""Builds the static web app into web/dist: the page, its two runtimes from npm, the shipped models.

    (cd web && npm ci) && python web/build.py [--out web/dist]

What goes in:
  * web/src/*                                  the page (index.html, app.js, fer.js, style.css)
  * vendor/ort/                                onnxruntime-web's WebAssembly build (node_modules, package-lock.json)
  * vendor/mediapipe/                          @mediapipe/tasks-vision's bundle and WebAssembly files
  * assets/face_landmarker.task, NOTICE        the same file the Python package ships (sha256-checked), its licence
  * assets/mesh.json                           the mesh's left/right permutation and eye contours
  * assets/mtcnn/{pnet,rnet,onet}.onnx         the Python app's face detector (facenet-pytorch's MTCNN, its
                                               weights from the facenet-pytorch wheel, sha256-checked, float16 as
                                               the models'), for photos; NOTICE and LICENSE.md beside them
  * models/NAME/config.json, model.onnx        every shipped model (artifacts/); the weights are stored as
                                               float16 with a cast to float32 at load: half the download
  * models/models.json, README.md              the names and the default; the static Space's card

Only web/src, package.json, package-lock.json, this script and the Space card's template are committed;
dist/ is built.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent
ROOT = WEB.parent
sys.path.insert(0, str(ROOT))

VENDOR = {
    "ort": ("onnxruntime-web/dist", ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]),
    "mediapipe": ("@mediapipe/tasks-vision", ["vision_bundle.mjs", "wasm/vision_wasm_internal.js",
                                              "wasm/vision_wasm_internal.wasm"]),
}

# facenet-pytorch 2.5.3's MTCNN weights (data/*.pt in its wheel): the page ships networks made from these files
MTCNN_SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}

MTCNN_NOTICE = """MTCNN (pnet.onnx, rnet.onnx, onet.onnx)
======================================

The face detector of "Joint Face Detection and Alignment using Multi-task Cascaded Convolutional Networks"
(Zhang et al., 2016), with the weights that facenet-pytorch 2.5.3 ships (data/*.pt; MIT licence, Copyright
(c) 2019 Timothy Esler, LICENSE.md here), exported to ONNX by fusion_fer's web/build.py, float16 weights.

The source files' sha256, checked before every export:
{sums}
"""

CARD = """---
title: fusion_fer in your browser
emoji: 🙂
colorFrom: indigo
colorTo: yellow
sdk: static
app_file: index.html
pinned: false
license: mit
short_description: Facial expressions, computed in your browser; nothing leaves it
---

# fusion_fer in your browser

Every face in a photo or your webcam, with its expression, computed on your own machine by ONNX Runtime
Web and MediaPipe's Face Landmarker. No image is sent anywhere. Models: {models}.

The code is MIT. The default model (`ferplus`) also learnt from photo sets released for research only
(the Taiwanese facial expression database, CK+), so its weights are for research and non-commercial use.
"""


def half_weights(src: Path, dst: Path) -> None:
    """model.onnx with its large float32 weights stored as float16, each cast back to float32 when the
    session loads: the same graph and arithmetic, half the bytes to download (the answers move by ~1e-3)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    keep, casts = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= 1024:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def check_mtcnn_weights(folder: Path) -> None:
    """Refuses MTCNN weight files that are not the pinned ones (MTCNN_SHA256)."""
    for name, want in MTCNN_SHA256.items():
        got = hashlib.sha256((folder / f"{name}.pt").read_bytes()).hexdigest()
        if got != want:
            raise SystemExit(f"{folder / name}.pt is not facenet-pytorch 2.5.3's MTCNN weights: sha256 {got}, expected {want}")


def export_mtcnn(dest: Path) -> None:
    """facenet-pytorch's three MTCNN networks as ONNX (the proposal network for any image size, the other two
    for any number of candidates): the page finds a photo's faces as the Python app does (web/src/mtcnn.js).
    Their licence and the source files' checksums go beside them."""
    import warnings
    from importlib.metadata import distribution

    import facenet_pytorch
    import torch
    from facenet_pytorch import MTCNN

    check_mtcnn_weights(Path(facenet_pytorch.__file__).parent / "data")
    mtcnn = MTCNN(device="cpu").eval()
    dest.mkdir(parents=True)
    (dest / "LICENSE.md").write_text(distribution("facenet-pytorch").read_text("LICENSE.md"))
    (dest / "NOTICE").write_text(MTCNN_NOTICE.format(sums="\n".join(f"  {n}.pt  {h}" for n, h in MTCNN_SHA256.items())))
    nets = {"pnet": (mtcnn.pnet, (1, 3, 48, 64), ["reg", "prob"]), "rnet": (mtcnn.rnet, (2, 3, 24, 24), ["reg", "prob"]),
            "onet": (mtcnn.onet, (2, 3, 48, 48), ["reg", "points", "prob"])}
    for name, (net, shape, outputs) in nets.items():
        axes = {0: "batch", 2: "height", 3: "width"} if name == "pnet" else {0: "batch"}
        out_axes = {0: "batch", 2: "rows", 3: "cols"} if name == "pnet" else {0: "batch"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as research.export uses it
            torch.onnx.export(net, torch.zeros(shape), str(dest / f"{name}.full.onnx"), input_names=["image"],
                              output_names=outputs, dynamic_axes={"image": axes, **{o: out_axes for o in outputs}},
                              opset_version=17, dynamo=False)
        half_weights(dest / f"{name}.full.onnx", dest / f"{name}.onnx")
        (dest / f"{name}.full.onnx").unlink()


def build(out: Path, models: Path | None = None) -> dict:
    from fusion_fer.artifacts import DEFAULT_DIR, collection
    from fusion_fer.landmarks import ASSETS, TASK_FILE, eye_indices, mirror_index, read_task_file

    modules = WEB / "node_modules"
    if not modules.is_dir():
        raise SystemExit(f"{modules} is missing: run `npm ci` in {WEB} first")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in (WEB / "src").iterdir():
        shutil.copy(f, out / f.name)
    for name, (folder, files) in VENDOR.items():
        for f in files:
            dest = out / "vendor" / name / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(modules / folder / f, dest)
    (out / "assets").mkdir()
    (out / "assets" / TASK_FILE.name).write_bytes(read_task_file())
    shutil.copy(ASSETS / "NOTICE", out / "assets" / "NOTICE")
    left, right = eye_indices()
    (out / "assets" / "mesh.json").write_text(json.dumps({
        "mirror_index": mirror_index().tolist(), "eye_left": left.tolist(), "eye_right": right.tolist()}))
    export_mtcnn(out / "assets" / "mtcnn")
    root = Path(models) if models else DEFAULT_DIR
    shipped = collection(root)
    for name in shipped["models"]:
        src, dest = root / name, out / "models" / name
        dest.mkdir(parents=True)
        config = json.loads((src / "config.json").read_text())
        if "onnx" not in config or "mesh_crop_scale" not in config["face"]:
            raise SystemExit(f"{src} has no model.onnx or no mesh-box calibration: export it again "
                             "(python -m fusion_fer.research.export)")
        shutil.copy(src / "config.json", dest / "config.json")
        half_weights(src / config["onnx"]["file"], dest / config["onnx"]["file"])
    (out / "models" / "models.json").write_text(json.dumps({"default": shipped["default"], "models": shipped["models"]}))
    (out / "README.md").write_text(CARD.replace("{models}", ", ".join(shipped["models"])))
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    return sizes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(WEB / "dist"))
    p.add_argument("--models", default=None, help="a collection folder with models.json (default: the shipped artifacts/)")
    args = p.parse_args()
    sizes = build(Path(args.out), args.models)
    print(f"built {args.out}: {len(sizes)} files, {sum(sizes.values()) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
