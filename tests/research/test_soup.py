"""research/soup.py: the weight average of fine-tunes of one start."""
from __future__ import annotations

import json

import torch

from fusion_fer.model import FusionConfig
from fusion_fer.research.prepare import load_cache
from fusion_fer.research.training import TrainConfig, train

from .conftest import SMALL


def test_soup_averages_fine_tunes_of_one_start_and_refuses_mismatches(tiny_cache, tmp_path, capsys):
    """python -m fusion_fer.research.soup: weights are the mean of the ingredients', the soup exports and predicts
    like any run, and runs that do not share a network and a starting point are refused."""
    from fusion_fer.research import soup
    from fusion_fer.research.export import main as export_main
    from fusion_fer.predict import load_predictor
    from fusion_fer.research.training import load_run_model

    cache = load_cache(tiny_cache)
    image = FusionConfig(**{**SMALL.to_dict(), "mode": "image"})
    base = dict(epochs=1, batch_size=4, lr=1e-2, warmup_epochs=0, device="cpu", bf16=False, model=image)
    train(cache, tmp_path / "start", TrainConfig(**base), progress=False)
    for seed in (0, 1):
        train(cache, tmp_path / f"s{seed}", TrainConfig(**base, seed=seed, init=str(tmp_path / "start")), progress=False)
    runs = [str(tmp_path / "s0"), str(tmp_path / "s1")]
    assert soup.main(["--run", runs[0], "--run", runs[1], "--out", str(tmp_path / "soup")]) == 0
    (a, _, _), (b, _, _), (c, _, cfg) = (load_run_model(r) for r in (*runs, tmp_path / "soup"))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    floats = [k for k in sc if sc[k].is_floating_point()]
    assert any(not torch.equal(sa[k], sb[k]) for k in floats)  # two seeds: two different networks
    assert all(torch.allclose(sc[k], (sa[k] + sb[k]) / 2) for k in floats)
    assert cfg.model.mode == "image" and json.loads((tmp_path / "soup" / "summary.json").read_text())["soup_of"] == runs
    assert export_main(["--run", str(tmp_path / "soup"), "--data", str(tiny_cache), "--out", str(tmp_path / "model")]) == 0
    faces = load_predictor(tmp_path / "model").predict_batch([cache.images[0]])
    assert abs(sum(faces[0][0].probs.values()) - 1) < 1e-4
    # Refused: one run; another network; another starting point.
    train(cache, tmp_path / "fused", TrainConfig(**{**base, "model": SMALL}, init=None), progress=False)
    train(cache, tmp_path / "scratch", TrainConfig(**base), progress=False)
    for bad, why in (([runs[0]], "at least two"), ([runs[0], str(tmp_path / "fused")], "network"),
                     ([runs[0], str(tmp_path / "scratch")], "starting point"), ([runs[0], str(tmp_path / "nope")], "not a finished")):
        assert soup.main([a for r in bad for a in ("--run", r)] + ["--out", str(tmp_path / "bad")]) == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
