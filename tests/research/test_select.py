"""research/select.py: the default's rule on a tiny data folder (the `shared` fixture, posed photos included)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_fer.predict import load_predictor
from fusion_fer.research.select import (SelectConfig, accuracies, apply, candidates, choose, raw_log_probs, selection_sets,
                                        table)


def test_variants_are_scored_as_a_user_sees_them_and_the_winner_is_applied(shared, model8, tmp_path):
    predictor = load_predictor(model8)
    sets = selection_sets(predictor, shared)
    names = [fs.name for fs in sets]
    assert names == ["ferplus", "ckplus", "taiwanese"]
    posed = sets[2]
    assert posed.detected.tolist() == [True, True, False]  # the blank photo has no face: it will count as wrong
    config = SelectConfig(zoom_sets=((1.0,), (0.9, 1.0, 1.1)), softens=(0.0, 1.0), ferplus_floor=0.0)
    rows = candidates(predictor, sets, config)
    assert len(rows) == 2 * 2 * 2 and {r["offsets"] for r in rows} == {"exported", "refitted"}
    for r in rows:
        assert r["taiwanese"]["n"] == 3 and r["taiwanese"]["accuracy"] <= 2 / 3  # the missed face is wrong
        assert r["score"] == round(np.mean([r[k]["accuracy"] for k in ("ferplus", "ckplus", "taiwanese")]), 4)
        assert max(abs(b) for b in r["bias"]) <= config.max_offset and r["passes"] == 2 * len(r["zooms"])
    # refitted offsets keep FER+ within the guard of no offsets, and start where export left them
    exported, refitted = rows[0], rows[1]
    assert (exported["zooms"], exported["soften"], refitted["zooms"], refitted["soften"]) == ([1.0], 0.0, [1.0], 0.0)
    logps = {fs.name: raw_log_probs(predictor, fs, (1.0,), 0.0, 256) for fs in sets}
    floor = accuracies(logps, sets, predictor.classes, np.zeros(8))["ferplus"]["accuracy"] - config.ferplus_guard
    assert refitted["ferplus"]["accuracy"] >= floor
    gain = lambda r: r["ckplus"]["accuracy"] + r["taiwanese"]["accuracy"]  # noqa: E731
    if exported["ferplus"]["accuracy"] >= floor:
        assert gain(refitted) >= gain(exported)
    best = choose(rows)
    assert best["score"] == max(r["score"] for r in rows)
    assert choose([{**r, "admissible": False} for r in rows]) is None
    assert "| network | framings |" in table(rows)

    out = apply(best, sets, tmp_path / "chosen")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["zooms"] == best["zooms"] and cfg["soften"] == best["soften"] and cfg["class_bias"] == best["bias"]
    chosen = load_predictor(out)
    assert chosen.soften == best["soften"] and chosen.zooms == tuple(best["zooms"]) and 0.05 <= chosen.temperature <= 20
    assert json.loads((out / "metrics.json").read_text())["selection"]["score"] == best["score"]


def test_the_command_refuses_image_only_networks_and_shipped_folders(shared, tmp_path, capsys):
    from fusion_fer.artifacts import DEFAULT_DIR, save_artifacts
    from fusion_fer.landmarks import LandmarkStats
    from fusion_fer.model import FusionConfig, FusionNet
    from fusion_fer.research import select

    stats = LandmarkStats(np.zeros(1404, np.float32), np.ones(1404, np.float32))
    image_only = save_artifacts(tmp_path / "image", FusionNet(FusionConfig(num_classes=8, mode="image")).eval(), stats)
    assert select.main(["--data", str(shared), "--model", str(image_only)]) == 2  # a baseline, not a candidate
    assert "fused 8-class networks" in capsys.readouterr().err
    assert select.main(["--data", str(shared), "--model", "fer2013", "--apply", str(DEFAULT_DIR / "x")]) == 2
    assert "does not write shipped models" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        select.main(["--data", str(shared)])  # no candidate
