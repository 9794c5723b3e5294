"""One forward pass of the shipped model on a face and its flip (batch 2), on CPU.

    python benchmarks/bench_model.py [--repeats 300] [--model FOLDER | --fusion concat|guided]

Prints median and p95 in ms after warm-up (target: <= 10 ms on a 2-core CPU).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fusion_fer.artifacts import load_artifacts  # noqa: E402
from fusion_fer.model import FUSIONS, FusionConfig, FusionNet  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--flip-only", action="store_true",
                   help="one framing (face + flip, batch 2) whatever the model averages: the per-pass figure")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", default=None, help="a shipped model by name or a model folder (default: the default model)")
    src.add_argument("--fusion", choices=FUSIONS, default=None, help="time an untrained model of this design instead")
    args = p.parse_args()
    if args.fusion:
        model, zooms = FusionNet(FusionConfig(fusion=args.fusion)).eval(), [1.0]
    else:
        model, _, config = load_artifacts(args.model)
        zooms = [1.0] if args.flip_only else config.get("zooms", [1.0])  # each framing adds a face + flip pair
    model = model.to(memory_format=torch.channels_last)
    size, b = model.config.image_size, 2 * len(zooms)
    x = torch.randn(b, 1, size, size).contiguous(memory_format=torch.channels_last)
    z, f = torch.randn(b, 1404), torch.ones(b, dtype=torch.bool)
    g = torch.rand(b, len(model.config.guide_points), 2) * 1.6 - 0.8 if model.config.uses_points else None
    ms = []
    with torch.inference_mode():
        for i in range(args.repeats + 20):
            t0 = time.perf_counter()
            model(x, z, f, g)
            if i >= 20:
                ms.append((time.perf_counter() - t0) * 1e3)
    n = sum(p.numel() for p in model.parameters())
    design = model.config.mode if model.config.mode != "fused" else f"fused/{model.config.fusion}"
    print(f"FusionNet {design} ({n:,} parameters, {model.config.num_classes} classes), "
          f"batch {b} (face + flip x {len(zooms)} framing(s)), {torch.get_num_threads()} threads: "
          f"median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms over {len(ms)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
