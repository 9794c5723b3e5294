"""evaluate.py: calibration (temperature, ECE) and the per-class offsets do what they claim."""
from __future__ import annotations

import numpy as np

from fusion_fer.research.evaluate import (
    apply_bias, apply_temperature, expected_calibration_error, fit_class_bias, fit_temperature, summarize,
)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _noisy_logits(seed: int, n: int, margin: float, k: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Random logits whose true class is ahead by `margin` on average; returns (labels, logits)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), labels] += margin
    return labels, logits


def test_temperature_scaling_recovers_an_overconfident_model():
    rng = np.random.default_rng(0)
    k = 7
    _, logits = _noisy_logits(0, 4000, 1.5)
    true_probs = _softmax(logits)
    y = np.array([rng.choice(k, p=p) for p in true_probs])  # labels drawn from the true probabilities
    overconfident = _softmax(logits * 2.5)
    t = fit_temperature(overconfident, y)
    assert 2.1 < t < 2.9
    before = expected_calibration_error(overconfident, y)
    after = expected_calibration_error(apply_temperature(overconfident, t), y)
    assert after < before / 2
    # Temperature never changes the predicted class.
    assert np.array_equal(apply_temperature(overconfident, t).argmax(1), overconfident.argmax(1))


def test_class_bias_lifts_a_starved_class_above_the_recall_floor():
    labels, logits = _noisy_logits(1, 3000, 2.0)
    logits[:, 2] -= 1.5  # the model under-predicts class 2
    probs = _softmax(logits)
    before = summarize(probs, labels)["per_class"]
    bias = fit_class_bias(probs, labels, min_recall=0.5)
    after = summarize(apply_bias(probs, bias), labels)
    recalls = [r["recall"] for r in after["per_class"].values()]
    assert list(before.values())[2]["recall"] < 0.5 <= min(recalls)
    assert bias[2] - np.delete(bias, 2).mean() > 0.3  # only the offsets relative to the others matter


def test_summary_counts():
    probs = np.eye(7)[[0, 1, 2, 2]]
    s = summarize(probs, np.array([0, 1, 2, 3]))
    assert s["accuracy"] == 0.75 and s["confusion_matrix"][3][2] == 1
    assert s["per_class"]["happy"]["recall"] == 0.0 and s["per_class"]["angry"]["precision"] == 1.0


def test_paired_difference_separates_a_real_gain_from_noise():
    from fusion_fer.research.ablation import paired_difference

    rng = np.random.default_rng(0)
    base = rng.random(3589) < 0.70
    better = base.copy()
    better[np.flatnonzero(~base)[:60]] = True  # right on 60 more faces, wrong on none it had right
    r = paired_difference(base, better)
    assert r["difference"] == round(60 / 3589, 4) and r["only_model_right"] == 60 and r["only_baseline_right"] == 0
    assert 0 < r["ci95"][0] < r["difference"] < r["ci95"][1] and r["mcnemar_p"] < 1e-10
    # Same accuracy gain, but from swapping many answers both ways: no longer convincing.
    swapped = base.copy()
    swapped[np.flatnonzero(base)[:1000]] = False
    swapped[np.flatnonzero(~base)[:1060]] = True
    r = paired_difference(base, swapped)
    assert abs(r["difference"] - 60 / 3589) < 1e-4
    assert r["ci95"][0] < 0 < r["ci95"][1] and r["mcnemar_p"] > 0.01
    same = paired_difference(base, base)
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and same["mcnemar_p"] == 1.0


def test_paired_difference_over_sequences_is_wider_than_over_frames():
    from fusion_fer.research.ablation import paired_difference
    # 60 sequences of 3 near-identical frames: the frames are not 60 x 3 independent chances, so the
    # interval must come from resampling sequences, and it is wider than the frame-level one.
    rng = np.random.default_rng(1)
    seq_a, seq_b = rng.random(60) < 0.7, rng.random(60) < 0.8
    a, b, groups = np.repeat(seq_a, 3), np.repeat(seq_b, 3), np.repeat(np.arange(60), 3)
    by_frame = paired_difference(a, b)
    by_seq = paired_difference(a, b, groups=groups)
    assert by_seq["difference"] == by_frame["difference"]
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(by_seq) > 1.4 * width(by_frame)
    assert by_seq["mcnemar_p"] is None  # McNemar assumes independent items


def test_ckplus_halves_alternate_sorted_subjects_and_keep_contempt(tmp_path):
    from PIL import Image

    from fusion_fer.research.data import read_ckplus

    rows = ["file,subject,sequence,frame,ck_class,fer_label,fer_name,duplicate_of"]
    for subject in ("S010", "S005", "S022", "S011"):
        for ck_class, label in (("happy", "3"), ("contempt", "")):
            f = f"images/{ck_class}/{subject}_001_00000009.png"
            (tmp_path / "images" / ck_class).mkdir(parents=True, exist_ok=True)
            Image.new("L", (48, 48), 100).save(tmp_path / f)
            rows.append(f"{f},{subject},001,00000009,{ck_class},{label},{'happy' if label else ''},")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    ck = read_ckplus(tmp_path)
    assert len(ck.labels) == 8 and [ck.CLASSES[k] for k in sorted(set(ck.labels))] == ["happy", "contempt"]
    half = dict(zip(ck.subjects, ck.half))
    assert half == {"S005": "A", "S010": "B", "S011": "A", "S022": "B"}  # sorted, alternated
    assert ck.images.shape == (8, 48, 48)


def test_temperature_stays_finite_when_validation_is_all_right():
    # A tiny validation set that the model gets all right (a user's own few photos): the NLL falls
    # forever as T -> 0, which once gave T = 0 and NaN probabilities in the exported model.
    from fusion_fer.research.evaluate import TEMPERATURE_RANGE, apply_temperature, fit_temperature

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    t = fit_temperature(probs, np.array([0, 1]))
    assert TEMPERATURE_RANGE[0] <= t <= TEMPERATURE_RANGE[1]
    assert np.isfinite(apply_temperature(probs, t)).all()


def test_evaluating_a_model_folder_softens_its_crops_as_the_predictor_does(tiny_cache, tmp_path):
    """`evaluate --model` scores the folder's own recipe: its `soften` reaches the cache path too."""
    import json

    from fusion_fer.artifacts import update_model
    from fusion_fer.research import evaluate, export
    from fusion_fer.research.prepare import load_cache
    from fusion_fer.research.training import TrainConfig, predict_cache, train

    from .conftest import SMALL

    cache = load_cache(tiny_cache)
    train(cache, tmp_path / "run", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    assert export.main(["--run", str(tmp_path / "run"), "--data", str(tiny_cache), "--out", str(tmp_path / "m"), "--blind"]) == 0
    update_model(tmp_path / "m", config={"soften": 1.5})
    assert evaluate.main(["--model", str(tmp_path / "m"), "--data", str(tiny_cache), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["soften"] == 1.5
    import torch

    from fusion_fer.artifacts import load_artifacts

    model, stats, _ = load_artifacts(tmp_path / "m")
    idx, cpu = np.arange(len(cache.images)), torch.device("cpu")
    sharp = predict_cache(model, cache, idx, stats, cpu)
    assert not np.allclose(sharp, predict_cache(model, cache, idx, stats, cpu, soften_sigma=1.5))
