"""artifacts.py: the shipped collection describes itself (cards, names, no local paths), and its writer
keeps a shipped folder out of reach of everything but export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_fer.artifacts import (DEFAULT_DIR, ArtifactError, collection, is_shipped, load_config, model_names, portable,
                                  refuse_shipped, save_artifacts, update_model)
from fusion_fer.landmarks import LandmarkStats
from fusion_fer.model import FusionConfig, FusionNet


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def test_shipped_models_have_a_card_names_and_no_local_paths():
    c = collection()
    assert set(c) == {"default", "models"} and c["default"] in c["models"]
    assert all(set(m) == {"summary"} and 0 < len(m["summary"]) < 200 for m in c["models"].values())  # one line each
    for name in model_names():
        folder = DEFAULT_DIR / name
        card = (folder / "README.md").read_text()
        assert card.startswith(f"# `{name}`")
        for part in ("What it is", "Good for", "Weak spots", "Figures", "Training data and its terms", "Intended use"):
            assert f"**{part}" in card, (name, part)
        for f in ("config.json", "metrics.json"):
            paths = [s for s in _strings(json.loads((folder / f).read_text())) if "/" in s or "\\" in s]
            assert not paths, (name, f, paths[:3])
        assert load_config(name)["classes"]


def test_portable_keeps_run_names_not_paths():
    t = portable({"init": "runs/a/b", "soup_of": ["runs/x", "/abs/y"], "epochs": 3, "labels": "ferplus8", "data": None})
    assert t == {"init": "b", "soup_of": ["x", "y"], "epochs": 3, "labels": "ferplus8", "data": None}


def test_update_model_merges_and_refuses_shipped_folders(tmp_path):
    stats = LandmarkStats(np.zeros(1404, np.float32), np.ones(1404, np.float32))
    folder = save_artifacts(tmp_path / "m", FusionNet(FusionConfig(widths=(8, 16), depths=(1, 1), guide_stage=1)).eval(), stats,
                            extra={"training": {"init": str(tmp_path / "runs" / "start"), "epochs": 2}})
    assert json.loads((folder / "config.json").read_text())["training"]["init"] == "start"
    update_model(folder, metrics={"a": 1})
    update_model(folder, metrics={"b": 2}, config={"zooms": [1.0, 1.1]})
    assert json.loads((folder / "metrics.json").read_text()) == {"a": 1, "b": 2}
    assert load_config(folder)["zooms"] == [1.0, 1.1]
    assert not is_shipped(folder) and is_shipped(DEFAULT_DIR / "ferplus") and is_shipped(DEFAULT_DIR)
    for target in ("ferplus", DEFAULT_DIR / "fer2013", DEFAULT_DIR / "not_yet"):
        with pytest.raises(ArtifactError, match="export"):
            refuse_shipped(target, "a research command")
    with pytest.raises(ArtifactError, match="not a model folder"):
        update_model(tmp_path / "empty", metrics={})
