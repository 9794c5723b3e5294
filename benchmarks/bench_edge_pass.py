"""The edge pass's settings: its cost alone and what it finds, per variant of `FaceConfig`.

    python benchmarks/bench_edge_pass.py                       # the shipped settings and the previous ones
    python benchmarks/bench_edge_pass.py '[{"edge_side": 160, "edge_min_face": 0.3}]'

For each variant: the edge pass alone on one thread (median ms) on the 720p photo and the 1080p group of
bench_pipeline.py and on ../shared's group selfie; how many faces it adds to that selfie; recall and false
positives on the assembled group photos of tests/test_faces.py (seeds 6-17) and the assembled selfie groups
(seeds 0-11). The first pass is the shipped one throughout.
"""
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from bench_pipeline import group_1080p, photo_720p  # noqa: E402

from fusion_fer.faces import FaceConfig, FaceDetector  # noqa: E402
from fusion_fer.imageio import read_rgb  # noqa: E402
from fusion_fer.stream import box_iou  # noqa: E402
from tests.helpers import group_photo  # noqa: E402

SELFIE = ROOT.parent / "shared" / "data" / "group_photos" / "selfie_seven.jpg"
torch.set_num_threads(1)
torch.set_grad_enabled(False)
variants = json.loads(sys.argv[1]) if len(sys.argv) > 1 else [{}, {"edge_side": 300, "edge_min_face": 0.15}]
imgs = {"720p": photo_720p(), "group": group_1080p()}
if SELFIE.exists():
    imgs["selfie"] = read_rgb(SELFIE)[0]
assembled = [(k, s, *group_photo(k, s)) for k in ("crowd", "edges", "closeup", "selfie") for s in range(6, 18)]
sg = [group_photo("selfie_group", s) for s in range(12)]
base = FaceDetector()
first = {k: base.detect(v, edge_pass=False) for k, v in imgs.items()}
first_a = [base.detect(rgb, edge_pass=False) for _, _, rgb, _ in assembled]
first_s = [base.detect(rgb, edge_pass=False) for rgb, _ in sg]
def med(f, n=11):
    ts=[]
    for _ in range(n):
        a=time.perf_counter(); f(); ts.append((time.perf_counter()-a)*1000)
    return float(np.median(ts))
def clip(fs, w, h): return [(max(0.0, f.box[0]), max(0.0, f.box[1]), min(w, f.box[2]), min(h, f.box[3])) for f in fs]
for kw in variants:
    d = FaceDetector(replace(FaceConfig(), **kw))
    cost = {k: round(med(lambda: d._edge_pass(v, first[k], False)), 1) for k, v in imgs.items()}
    selfie_new = len(d._edge_pass(imgs["selfie"], first["selfie"], False)) if "selfie" in imgs else None
    hit = n = false = 0
    for (kind, seed, rgb, truth), f0 in zip(assembled, first_a):
        h, w = rgb.shape[:2]
        boxes = clip(f0 + d._edge_pass(rgb, f0, False), w, h)
        used = set()
        for t in truth:
            if min(t[2]-t[0], t[3]-t[1]) < 40: continue
            n += 1
            m = [i for i, b in enumerate(boxes) if i not in used and box_iou(t, b) >= 0.4]
            if m: used.add(m[0]); hit += 1
        false += len(boxes) - len(used)
    sgh = 0
    for (rgb, truth), f0 in zip(sg, first_s):
        h, w = rgb.shape[:2]
        boxes = clip(f0 + d._edge_pass(rgb, f0, False), w, h)
        sgh += sum(max((box_iou(t, b) for b in boxes), default=0) >= 0.4 for t in truth)
    print(json.dumps({"variant": kw, "edge_ms": cost, "selfie_added": selfie_new, "assembled": f"{hit}/{n}", "fp": false, "selfie_group": f"{sgh}/84"}), flush=True)
