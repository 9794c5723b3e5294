"""research/training.py and train.py: checkpoints and resume, label sets, fine-tuning, the CLI on bad data."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fusion_fer.model import FusionConfig
from fusion_fer.research.augment import AugmentConfig
from fusion_fer.research.prepare import load_cache
from fusion_fer.research.training import TrainConfig, lr_at, sampler_weights, train

from .conftest import SMALL


def test_lr_schedule_warms_up_then_anneals():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] < lrs[5] < lrs[9] <= 1.0 and lrs[10] > lrs[50] > lrs[99]
    assert lrs[99] < 0.01


def test_sampler_balances_by_power():
    labels = np.array([0] * 90 + [1] * 10)
    w = sampler_weights(labels, 1.0)
    assert np.isclose(w[labels == 0].sum(), w[labels == 1].sum())  # fully balanced
    w = sampler_weights(labels, 0.0)
    assert np.isclose(w[labels == 0].sum(), 0.9)  # natural mix


@pytest.mark.parametrize("fusion", ["concat", "guided"])
def test_train_checkpoints_and_resumes(tiny_cache, tmp_path, fusion):
    cache = load_cache(tiny_cache)
    model = FusionConfig(**{**SMALL.to_dict(), "fusion": fusion})
    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-2, warmup_epochs=0, label_smoothing=0, device="cpu", bf16=False,
                      model=model, patience=10, augment=AugmentConfig(rotate=5, erase_p=0))
    out = tmp_path / "run"
    first = train(cache, out, TrainConfig(**{**cfg.__dict__, "max_minutes": 0.0}), progress=False)
    assert first["epochs_run"] == 1 and not first["finished"]  # stopped by the time budget after epoch 1
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 1
    resumed = train(cache, out, cfg, resume=True, progress=False)
    assert resumed["finished"] and resumed["last_epoch"] == 4
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]  # epoch 1 was not trained again
    assert (out / "curves.png").stat().st_size > 1000
    state = torch.load(out / "best.pt", weights_only=True)  # plain tensors, no pickled code
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    # It learns: both losses fall over four short epochs.
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]) - 0.3
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])


def test_ferplus_labels_train(tiny_cache, tmp_path):
    cache = load_cache(tiny_cache)
    assert cache.ferplus_labels.tolist()[:2] == [6, 6] and cache.ferplus_labels.tolist()[-1] == 3
    out = train(cache, tmp_path / "fp", TrainConfig(epochs=1, batch_size=4, labels="ferplus", bf16=False, model=SMALL), progress=False)
    assert out["train_faces"] == 16


def test_ferplus8_fine_tunes_from_a_7_class_run_and_exports_8_classes(tiny_cache, tmp_path):
    """Soft FER+ targets over 8 classes, started from a 7-class run: the old classes keep their head
    rows, contempt gets a fresh one, and the exported folder predicts all 8 through the Predictor."""
    from fusion_fer.research import export
    from fusion_fer.labels import FERPLUS_CLASSES
    from fusion_fer.model import FusionNet
    from fusion_fer.predict import load_predictor
    from fusion_fer.research.training import init_weights, load_init

    cache = load_cache(tiny_cache)
    train(cache, tmp_path / "seven", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    state, cfg7, _ = init_weights(tmp_path / "seven")
    eight = FusionNet(FusionConfig.from_dict({**cfg7.to_dict(), "num_classes": 8}))
    grown, fresh = load_init(eight, state)
    assert "classifier.1.weight" in grown and fresh == []
    w = eight.state_dict()["classifier.1.weight"]
    assert torch.equal(w[:7], state["classifier.1.weight"]) and w.shape == (8, SMALL.head_hidden)

    out = train(cache, tmp_path / "fp8", TrainConfig(epochs=1, batch_size=4, labels="ferplus8", bf16=False, lr=1e-3,
                                                      init=str(tmp_path / "seven"), model=SMALL), progress=False)
    assert out["train_faces"] == 16
    args = json.loads((tmp_path / "fp8" / "args.json").read_text())
    assert args["model"]["num_classes"] == 8 and args["init"] == str(tmp_path / "seven")
    assert export.main(["--run", str(tmp_path / "fp8"), "--data", str(tiny_cache), "--out", str(tmp_path / "model")]) == 0
    p = load_predictor(tmp_path / "model")
    assert p.classes == FERPLUS_CLASSES
    probs = p.predict(cache.images[0], detect=False)[0].probs
    assert set(probs) == set(FERPLUS_CLASSES) and abs(sum(probs.values()) - 1) < 1e-5


def test_retrain_on_own_photo_folder_end_to_end(tmp_path, hopper_rgb, astronaut_rgb):
    """train.py on root/<class>/*.jpg photos -> MTCNN crops -> model -> exported folder -> Predictor."""
    import train as train_cli

    from fusion_fer.research.export import main as export_main
    from fusion_fer.predict import load_predictor

    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for cls, rgb in (("neutral", hopper_rgb), ("happy", astronaut_rgb)):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            jitter = np.clip(rgb.astype(int) + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)
            Image.fromarray(jitter).save(root / cls / f"{i}.jpg")
    run = tmp_path / "run"
    args = train_cli.get_args_parser().parse_args(
        ["--data", str(root), "--out", str(run), "--epochs", "2", "--batch-size", "4", "--no-bf16", "--no-progress"])
    assert train_cli.main(args) == 0
    meta = json.loads((run / "cache" / "meta.json").read_text())
    assert meta["needs_detection"] and meta["report"]["Training"]["faces"] == 16
    assert export_main(["--run", str(run), "--data", str(run / "cache"), "--out", str(tmp_path / "model")]) == 0
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["faces"] == 2 and 0.0 <= metrics["with_flip"]["accuracy"] <= 1.0
    p = load_predictor(tmp_path / "model")
    faces = p.predict(hopper_rgb)
    assert len(faces) == 1 and abs(sum(faces[0].probs.values()) - 1) < 1e-4


def test_fer2013_weight_mixes_the_original_label_into_the_vote_targets():
    """(1-w) FER+ votes + w FER2013's label, at the label's own class: FER2013's 7 are the first 7 of FER+'s 8."""
    from types import SimpleNamespace

    from fusion_fer.labels import FERPLUS_CLASSES
    from fusion_fer.research.training import training_targets

    # Columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
    votes = np.array([[0, 4, 6, 0, 0, 0, 0, 0, 0, 0],   # raters: surprise 6 to 4; FER2013 said happy
                      [0, 0, 0, 0, 0, 0, 0, 0, 9, 1],   # raters: unknown; FER2013 said angry
                      [0, 0, 0, 0, 8, 2, 0, 0, 0, 0]])  # raters and FER2013 agree: angry
    cache = SimpleNamespace(ferplus_votes=votes, labels=np.array([3, 0, 0]))
    hard0, soft0 = training_targets(cache, "ferplus8")
    hard, soft = training_targets(cache, "ferplus8", fer2013_weight=0.5)
    assert FERPLUS_CLASSES[hard0[0]] == "surprise" and FERPLUS_CLASSES[hard[0]] == "happy"
    assert np.allclose(soft[0], 0.5 * soft0[0] + 0.5 * np.eye(8)[FERPLUS_CLASSES.index("happy")])
    assert hard[1] == -1 and not soft[1].any()  # not a usable FER+ face: FER2013's label does not bring it back
    assert np.allclose(soft[2], [0.9, 0.1, 0, 0, 0, 0, 0, 0]) and np.allclose(soft.sum(1), [1, 0, 1])
    with pytest.raises(ValueError, match="needs labels ferplus8"):
        TrainConfig(labels="fer2013", fer2013_weight=0.3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        TrainConfig(labels="ferplus8", fer2013_weight=1.5)


def test_sparing_contempt_keeps_the_raters_contempt_and_mixes_the_rest_as_before():
    """FER2013 has no contempt: with spare_contempt its label's weight is w x the share of votes that are not
    contempt. A face the raters call contempt 6 to 4 keeps that answer at w = 0.25, which the plain mix turns to
    FER2013's neutral; a face without contempt votes is mixed exactly as without it."""
    from types import SimpleNamespace

    from fusion_fer.labels import FERPLUS_CLASSES
    from fusion_fer.research.training import training_targets

    # Columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
    votes = np.array([[4, 0, 0, 0, 0, 0, 0, 6, 0, 0],   # raters: contempt 6 to neutral 4; FER2013 said neutral
                      [0, 4, 6, 0, 0, 0, 0, 0, 0, 0]])  # no contempt vote: surprise 6 to 4; FER2013 said happy
    cache = SimpleNamespace(ferplus_votes=votes, labels=np.array([6, 3]))
    contempt, neutral = FERPLUS_CLASSES.index("contempt"), FERPLUS_CLASSES.index("neutral")
    plain_hard, plain = training_targets(cache, "ferplus8", fer2013_weight=0.25)
    hard, soft = training_targets(cache, "ferplus8", fer2013_weight=0.25, spare_contempt=True)
    assert plain_hard[0] == neutral and hard[0] == contempt  # the plain mix overrules the raters' contempt
    assert np.isclose(soft[0, contempt], 0.6 * (1 - 0.25 * 0.4)) and np.isclose(soft[0].sum(), 1)
    assert np.allclose(soft[1], plain[1]) and hard[1] == plain_hard[1]
    with pytest.raises(ValueError, match="needs a fer2013_weight"):
        TrainConfig(labels="ferplus8", fer2013_spare_contempt=True)


def test_a_photo_run_logs_publictest_with_fer2013s_labels_too(tiny_cache, photo_cache, tmp_path):
    """The log's FER2013 column is the mirrored argmax over all 8 classes against FER2013's own labels."""
    from fusion_fer.research.training import load_run_model, predict_cache

    cache = load_cache(tiny_cache)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, warmup_epochs=0, labels="ferplus8", fer2013_weight=0.3, bf16=False,
                      device="cpu", model=SMALL, photos=(str(photo_cache),), photo_share=0.5, keep_epoch=1,
                      augment=AugmentConfig(rotate=5, erase_p=0))
    train(cache, tmp_path / "run", cfg, progress=False)
    row = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))[0]
    model, stats, _ = load_run_model(tmp_path / "run")
    public = np.flatnonzero((cache.splits == 1) & cache.face)
    pred = predict_cache(model, cache, public, stats, torch.device("cpu"), flip=True).argmax(1)
    assert float(row["val_acc_fer2013_mirror"]) == pytest.approx(float((pred == cache.labels[public]).mean()))
    assert json.loads((tmp_path / "run" / "args.json").read_text())["fer2013_weight"] == 0.3


def test_train_cli_reports_bad_data(tmp_path, capsys):
    import train as train_cli

    bad = tmp_path / "x.csv"
    bad.write_text("emotion,pixels,Usage\n1,2 3,Training\n")
    args = train_cli.get_args_parser().parse_args(["--data", str(bad), "--out", str(tmp_path / "r")])
    assert train_cli.main(args) == 2
    assert "line 2" in capsys.readouterr().err


def test_train_cli_jpeg_share(tmp_path, capsys):
    """--jpeg turns on JPEG re-encoding alone (or on top of --robust); a share outside [0, 1] is refused."""
    import train as train_cli

    from fusion_fer.research.augment import ROBUST, AugmentConfig

    parse = lambda *a: train_cli.get_args_parser().parse_args(["--data", "d", "--out", "o", *a])  # noqa: E731
    plain, jpeg, both = (train_cli.augment_config(parse(*a)) for a in ((), ("--jpeg", "0.5"), ("--robust", "--jpeg", "0.7")))
    assert plain == AugmentConfig() and plain.jpeg_p == 0
    assert jpeg.jpeg_p == 0.5 and jpeg.blur_p == 0 and jpeg.scale == AugmentConfig().scale
    assert both.jpeg_p == 0.7 and both.blur_p == ROBUST["blur_p"]
    sharp = train_cli.augment_config(parse("--sharpen", "0.5"))
    assert sharp.sharpen_p == 0.5 and sharp.jpeg_p == 0 and sharp.blur_p == 0
    csv = tmp_path / "x.csv"
    csv.write_text("emotion,pixels,Usage\n" + "".join(f"{i % 7},{' '.join(['128'] * 2304)},Training\n" for i in range(4)))
    assert train_cli.main(train_cli.get_args_parser().parse_args(
        ["--data", str(csv), "--out", str(tmp_path / "r"), "--jpeg", "1.5", "--no-progress"])) == 2
    assert "--jpeg is a probability" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before any preprocessing
