"""research/ablation.py: runs compared on the same faces."""
from __future__ import annotations

import json

import pytest

from fusion_fer.model import FusionConfig
from fusion_fer.research.prepare import load_cache
from fusion_fer.research.training import TrainConfig, train

from .conftest import SMALL


def test_ablation_compares_runs_on_the_same_faces(tiny_cache, tmp_path):
    """Two tiny runs (image-only, fused) through `python -m fusion_fer.research.ablation`: figures agree with evaluate's."""
    from fusion_fer.research import ablation
    from fusion_fer.research.evaluate import evaluate
    from fusion_fer.research.training import load_run_model

    cache = load_cache(tiny_cache)
    for mode in ("image", "fused"):
        cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-2, warmup_epochs=0, device="cpu", bf16=False,
                          model=FusionConfig(**{**SMALL.to_dict(), "mode": mode}))
        train(cache, tmp_path / mode, cfg, progress=False)
    out, png = tmp_path / "ablation.json", tmp_path / "ablation.png"
    assert ablation.main(["--data", str(tiny_cache), "--run", f"image={tmp_path / 'image'}", "--run", f"fused={tmp_path / 'fused'}",
                          "--baseline", "image", "--json", str(out), "--plot", str(png)]) == 0
    res = json.loads(out.read_text())
    assert res["faces"] == 4 and set(res["models"]) == {"image", "fused"} and "vs_image" not in res["models"]["image"]
    for name in ("image", "fused"):
        model, stats, _ = load_run_model(tmp_path / name)
        ev = evaluate(model, stats, cache)
        assert res["models"][name]["raw"]["accuracy_with_flip"] == ev["before_class_bias"]["with_flip"]["accuracy"]
    d = res["models"]["fused"]["vs_image"]["raw"]
    assert abs(d["difference"] - (res["models"]["fused"]["raw"]["accuracy_with_flip"] - res["models"]["image"]["raw"]["accuracy_with_flip"])) < 1e-3
    assert png.stat().st_size > 5000
    with pytest.raises(SystemExit):
        ablation.main(["--data", str(tiny_cache), "--run", f"image={tmp_path / 'image'}", "--baseline", "fused"])
