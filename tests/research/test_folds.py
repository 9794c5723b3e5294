"""research/folds.py: the fold rule picks the epoch it says it does, a baseline is scored on the same persons,
and the report's figures are the labels the Predictor gives a user."""
from __future__ import annotations

import json

import numpy as np

from fusion_fer.predict import load_predictor
from fusion_fer.research import folds
from fusion_fer.research.augment import AugmentConfig
from fusion_fer.research.prepare import load_cache
from fusion_fer.research.sources import person_folds
from fusion_fer.research.training import TrainConfig, train

from .conftest import SMALL


def _fold(k, public, held):
    return {"run": f"r{k}", "fold": k, "epochs": [{"epoch": e + 1, "public": p, "src": h, "score": (p + h) / 2}
                                                 for e, (p, h) in enumerate(zip(public, held))]}


def test_choose_epoch_takes_the_best_mean_among_admissible_epochs():
    runs = [_fold(0, [0.87, 0.86, 0.85], [0.50, 0.60, 0.90]), _fold(1, [0.87, 0.87, 0.86], [0.52, 0.58, 0.90])]
    out = folds.choose_epoch(runs, min_public=0.86)
    by_epoch = {r["epoch"]: r for r in out["epochs"]}
    assert np.isclose(by_epoch[2]["score"], np.mean([(0.86 + 0.60) / 2, (0.87 + 0.58) / 2]))
    assert not by_epoch[3]["admissible"]  # the best score, but mean PublicTest 85.5 % is under the floor
    assert out["chosen"]["epoch"] == 2
    assert folds.choose_epoch(runs, min_public=0.99)["chosen"] is None


def test_choose_and_report_commands(tiny_cache, photo_cache, model8, tmp_path):
    cache = load_cache(tiny_cache)
    runs = []
    for k in (0, 1):
        cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, warmup_epochs=0, labels="ferplus8", bf16=False, device="cpu",
                          model=SMALL, photos=(str(photo_cache),), photo_share=0.5, folds=2, fold=k,
                          augment=AugmentConfig(rotate=5, erase_p=0))
        train(cache, tmp_path / f"fold{k}", cfg, progress=False)
        runs.append(str(tmp_path / f"fold{k}"))
    assert folds.main(["choose", "--runs", *runs, "--data", str(tiny_cache), "--baseline", str(model8),
                       "--min-public", "0", "--out", str(tmp_path / "choice")]) == 0
    result = json.loads((tmp_path / "choice" / "folds.json").read_text())
    assert result["chosen"]["epoch"] in (1, 2) and (tmp_path / "choice" / "folds.png").stat().st_size > 1000
    # The baseline on fold k is scored on exactly fold k's persons, with the Predictor's own labels.
    photos = load_cache(photo_cache)
    p = load_predictor(model8)
    for row in result["baseline"]:
        held = np.flatnonzero(person_folds(photos.persons, 2) == row["fold"])
        seen = [p.predict(photos.images[i], detect=False)[0].label for i in held]
        truth = [photos.meta["classes"][photos.labels[i]] for i in held]
        assert np.isclose(row["portraits"], np.mean([a == b for a, b in zip(seen, truth)]))

    assert folds.main(["report", "--models", str(model8), "--data", str(tiny_cache), "--photos", str(photo_cache),
                       "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())[str(model8)]
    seen = [p.predict(img, detect=False)[0].label for img in photos.images]
    truth = [photos.meta["classes"][k] for k in photos.labels]
    assert report["portraits"]["n"] == len(truth)
    assert np.isclose(report["portraits"]["accuracy"], np.mean([a == b for a, b in zip(seen, truth)]), atol=1e-4)
    assert report["FER+ PrivateTest"]["n"] == int((cache.splits == 2).sum())
    # Each model's own report folder merges into a model folder through export.
    from fusion_fer.research import export

    own = tmp_path / "report" / model8.name
    assert "portraits" in (own / "suite.md").read_text() and (own / "suite.png").stat().st_size > 1000
    assert export.main(["--model", str(model8), "--report", str(own), "--out", str(tmp_path / "shipped")]) == 0
    merged = json.loads((tmp_path / "shipped" / "metrics.json").read_text())["suite"]["sets"]
    assert merged["portraits"] == report["portraits"] and (tmp_path / "shipped" / "suite.md").is_file()


def test_choose_refuses_runs_without_held_out_persons(tiny_cache, tmp_path, capsys):
    train(load_cache(tiny_cache), tmp_path / "plain", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    assert folds.main(["choose", "--runs", str(tmp_path / "plain"), "--data", str(tiny_cache), "--out", str(tmp_path / "o")]) == 2
    assert "not a fold run" in capsys.readouterr().err
