"""training.py and train.py: a tiny run trains, checkpoints, resumes, exports; FER+ labels and photo folders work."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from fusion_fer.data import open_dataset
from fusion_fer.model import FusionConfig
from fusion_fer.prepare import PrepareConfig, load_cache, prepare
from fusion_fer.training import TrainConfig, lr_at, sampler_weights, train
from fusion_fer.transforms import AugmentConfig

from .test_data import write_fer_csv

SMALL = FusionConfig(widths=(16, 32), depths=(1, 1), mlp_widths=(32,), head_hidden=16, guide_stage=1)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory, detector, hopper_rgb, astronaut_rgb):
    """24 faces, 2 classes: Grace Hopper vs the astronaut, shifted a little each time."""
    tmp = tmp_path_factory.mktemp("tiny")
    rows = []
    for label, rgb in ((6, hopper_rgb), (3, astronaut_rgb)):
        face = detector.detect(rgb)[0]
        base = cv2.cvtColor(detector.crop(rgb, face, 48), cv2.COLOR_RGB2GRAY)
        for i in range(12):
            img = np.roll(base, (i % 3) - 1, axis=1)
            usage = "Training" if i < 8 else "PublicTest" if i < 10 else "PrivateTest"
            rows.append((label, " ".join(map(str, img.ravel())), usage))
    path = tmp / "fer.csv"
    write_fer_csv(path, rows)
    fp = tmp / "fer2013new.csv"
    lines = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for label, _, usage in rows:
        votes = "9,1,0,0,0,0,0,0,0,0" if label == 6 else "0,8,2,0,0,0,0,0,0,0"
        lines.append(f"{usage},x.png,{votes}")
    fp.write_text("\n".join(lines) + "\n")
    prepare(open_dataset(path, ferplus=fp), tmp / "cache", PrepareConfig(workers=1), progress=False)
    return tmp / "cache"


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


def test_ablation_compares_runs_on_the_same_faces(tiny_cache, tmp_path):
    """Two tiny runs (image-only, fused) through `python -m fusion_fer.ablation`: figures agree with evaluate's."""
    from fusion_fer import ablation
    from fusion_fer.evaluate import evaluate
    from fusion_fer.training import load_run_model

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


def test_ferplus_labels_train(tiny_cache, tmp_path):
    cache = load_cache(tiny_cache)
    assert cache.ferplus_labels.tolist()[:2] == [6, 6] and cache.ferplus_labels.tolist()[-1] == 3
    out = train(cache, tmp_path / "fp", TrainConfig(epochs=1, batch_size=4, labels="ferplus", bf16=False, model=SMALL), progress=False)
    assert out["train_faces"] == 16


def test_ferplus8_fine_tunes_from_a_7_class_run_and_exports_8_classes(tiny_cache, tmp_path):
    """Soft FER+ targets over 8 classes, started from a 7-class run: the old classes keep their head
    rows, contempt gets a fresh one, and the exported folder predicts all 8 through the Predictor."""
    from fusion_fer import evaluate
    from fusion_fer.data import FERPLUS_CLASSES
    from fusion_fer.model import FusionNet
    from fusion_fer.predict import load_predictor
    from fusion_fer.training import init_weights, load_init

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
    assert evaluate.main(["--run", str(tmp_path / "fp8"), "--data", str(tiny_cache), "--export", str(tmp_path / "model")]) == 0
    p = load_predictor(tmp_path / "model")
    assert p.classes == FERPLUS_CLASSES
    probs = p.predict(cache.images[0], detect=False)[0].probs
    assert set(probs) == set(FERPLUS_CLASSES) and abs(sum(probs.values()) - 1) < 1e-5


def test_test_time_framings_are_chosen_on_publictest_and_travel_with_the_model(tiny_cache, tmp_path, capsys):
    from fusion_fer import evaluate
    from fusion_fer.predict import load_predictor
    from fusion_fer.training import load_run_model

    cache = load_cache(tiny_cache)
    train(cache, tmp_path / "run", TrainConfig(epochs=1, batch_size=4, bf16=False, model=SMALL), progress=False)
    model, stats, _ = load_run_model(tmp_path / "run")
    choice = evaluate.select_zooms(model, stats, cache)
    acc = choice["public_test_accuracy"]
    assert set(acc) == {"1.0", "1.0 1.1", "0.9 1.0", "0.9 1.0 1.1"}
    best = max(acc, key=acc.get)
    assert choice["chosen"] == ([float(z) for z in best.split()] if acc[best] - acc["1.0"] >= evaluate.ZOOM_MIN_GAIN else [1.0])
    # a fixed set is stored in the exported config.json and the Predictor averages those framings
    # --blind: a candidate's export prints nothing about PrivateTest, but its metrics.json has the report
    capsys.readouterr()
    assert evaluate.main(["--run", str(tmp_path / "run"), "--data", str(tiny_cache), "--zooms", "0.9 1.0",
                          "--export", str(tmp_path / "model"), "--blind"]) == 0
    out = capsys.readouterr().out
    assert "PrivateTest" in out and "not printed" in out and "accuracy" not in out and "recall" not in out
    assert "accuracy" in json.loads((tmp_path / "model" / "metrics.json").read_text())["with_flip"]
    p = load_predictor(tmp_path / "model")
    assert p.zooms == (0.9, 1.0)
    two = p.predict(cache.images[0], detect=False)[0].probs
    p.zooms = (1.0,)
    one = p.predict(cache.images[0], detect=False)[0].probs
    assert max(abs(two[c] - one[c]) for c in one) > 1e-4  # the extra framing changes the answer


def test_retrain_on_own_photo_folder_end_to_end(tmp_path, hopper_rgb, astronaut_rgb):
    """train.py on root/<class>/*.jpg photos -> MTCNN crops -> model -> exported folder -> Predictor."""
    import train as train_cli

    from fusion_fer.evaluate import main as evaluate_main
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
    assert evaluate_main(["--run", str(run), "--data", str(run / "cache"), "--export", str(tmp_path / "model")]) == 0
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["faces"] == 2 and 0.0 <= metrics["with_flip"]["accuracy"] <= 1.0
    p = load_predictor(tmp_path / "model")
    faces = p.predict(hopper_rgb)
    assert len(faces) == 1 and abs(sum(faces[0].probs.values()) - 1) < 1e-4


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

    from fusion_fer.transforms import ROBUST, AugmentConfig

    parse = lambda *a: train_cli.get_args_parser().parse_args(["--data", "d", "--out", "o", *a])  # noqa: E731
    plain, jpeg, both = (train_cli.augment_config(parse(*a)) for a in ((), ("--jpeg", "0.5"), ("--robust", "--jpeg", "0.7")))
    assert plain == AugmentConfig() and plain.jpeg_p == 0
    assert jpeg.jpeg_p == 0.5 and jpeg.blur_p == 0 and jpeg.scale == AugmentConfig().scale
    assert both.jpeg_p == 0.7 and both.blur_p == ROBUST["blur_p"]
    csv = tmp_path / "x.csv"
    csv.write_text("emotion,pixels,Usage\n" + "".join(f"{i % 7},{' '.join(['128'] * 2304)},Training\n" for i in range(4)))
    assert train_cli.main(train_cli.get_args_parser().parse_args(
        ["--data", str(csv), "--out", str(tmp_path / "r"), "--jpeg", "1.5", "--no-progress"])) == 2
    assert "--jpeg is a probability" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before any preprocessing


def test_soup_averages_fine_tunes_of_one_start_and_refuses_mismatches(tiny_cache, tmp_path, capsys):
    """python -m fusion_fer.soup: weights are the mean of the ingredients', the soup exports and predicts
    like any run, and runs that do not share a network and a starting point are refused."""
    from fusion_fer import soup
    from fusion_fer.evaluate import main as evaluate_main
    from fusion_fer.predict import load_predictor
    from fusion_fer.training import load_run_model

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
    assert evaluate_main(["--run", str(tmp_path / "soup"), "--data", str(tiny_cache), "--export", str(tmp_path / "model")]) == 0
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
