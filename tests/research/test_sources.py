"""research/sources.py and training beside FER+ on photo sources: reading sources, folds by person, the
domain-balanced draw, held-out persons scored every epoch, an epoch kept by choice, train.py --photos."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fusion_fer.labels import FERPLUS_CLASSES
from fusion_fer.research.augment import AugmentConfig
from fusion_fer.research.data import DatasetError
from fusion_fer.research.prepare import load_cache
from fusion_fer.research.sources import person_folds, read_photo_source
from fusion_fer.research.training import TrainConfig, draw_epoch, photo_sets, train

from .conftest import SMALL, write_photo_source


def test_csv_source_reads_labels_persons_and_halves(tmp_path):
    (tmp_path / "images").mkdir()
    rows = [("a.png", "S1", "anger"), ("b.png", "S2", "contempt"), ("c.png", "S3", "3"), ("d.png", "S4", "Surprised")]
    for f, _, _ in rows:
        Image.fromarray(np.full((48, 48), 90, np.uint8)).save(tmp_path / "images" / f)
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "subject", "ck_class"])
        w.writerows((f"images/{f}", s, c) for f, s, c in rows)
    src = read_photo_source(tmp_path)
    assert [FERPLUS_CLASSES[k] for k in src.labels] == ["angry", "contempt", "happy", "surprise"]
    assert src.persons.tolist() == ["S1", "S2", "S3", "S4"] and not src.needs_detection  # 48 px crops: no detection
    ds = src.dataset()
    assert ds.classes == FERPLUS_CLASSES and (ds.splits == 0).all() and ds.persons is src.persons
    # Halves: persons sorted and alternated, as the suite splits CK+48.
    assert read_photo_source(f"{tmp_path}@A").persons.tolist() == ["S1", "S3"]
    assert read_photo_source(f"{tmp_path}@B").persons.tolist() == ["S2", "S4"]


def test_class_folder_source_and_bad_sources(tmp_path):
    for cls in ("happy", "fearful"):
        (tmp_path / "f" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((160, 160, 3), np.uint8)).save(tmp_path / "f" / cls / f"{cls}.jpg")
    src = read_photo_source(tmp_path / "f")
    assert sorted(FERPLUS_CLASSES[k] for k in src.labels) == ["fear", "happy"] and src.needs_detection
    with pytest.raises(DatasetError, match="no such folder"):
        read_photo_source(tmp_path / "nope")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "labels.csv").write_text("file,label\nx.jpg,happy\n")
    with pytest.raises(DatasetError, match="no person column"):
        read_photo_source(tmp_path / "g")
    (tmp_path / "g" / "labels.csv").write_text("file,label,person\nx.jpg,grumpy,P1\n")
    with pytest.raises(DatasetError, match="unknown class 'grumpy'"):
        read_photo_source(tmp_path / "g")
    (tmp_path / "g" / "labels.csv").write_text("file,label,person\nx.jpg,happy,P1\n")
    with pytest.raises(DatasetError, match="missing"):
        read_photo_source(tmp_path / "g")


def test_person_folds_never_split_a_person():
    persons = np.array(["b", "a", "c", "a", "d", "b", "e", "f", "c"])
    folds = person_folds(persons, 3)
    for p in set(persons):
        assert len(set(folds[persons == p])) == 1
    assert sorted(set(folds.tolist())) == [0, 1, 2]
    with pytest.raises(ValueError):
        person_folds(persons, 1)


def test_fold_holds_persons_out_and_draw_is_domain_balanced(photo_cache, tiny_cache):
    cfg = TrainConfig(labels="ferplus8", photos=(str(photo_cache), str(photo_cache)), fold=1, folds=3, model=SMALL)
    a, b = photo_sets(cfg)
    cache = load_cache(photo_cache)
    held = set(cache.persons[a.heldout_idx])
    assert held and not held & set(cache.persons[a.train_idx])  # nobody on both sides
    assert len(a.train_idx) + len(a.heldout_idx) == len(cache.labels)
    gen = torch.Generator().manual_seed(0)
    order, per_step = draw_epoch(50, 6, 10, np.full(20, 1 / 20), [a, b], gen)
    assert order.shape == (300,) and len(per_step) == 50
    assert all(sum(len(r) for r in step) == 10 for step in per_step)  # exactly the share, every batch
    drawn = np.concatenate([r for step in per_step for r in step])
    assert set(drawn.tolist()) <= set(a.train_idx.tolist())  # never a held-out face
    from_a = sum(len(step[0]) for step in per_step)
    assert 0.4 < from_a / 500 < 0.6  # equal parts per source


def test_training_beside_photos_scores_the_held_out_fold_and_keeps_the_chosen_epoch(photo_cache, tiny_cache, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, warmup_epochs=0, labels="ferplus8", bf16=False, device="cpu",
                      model=SMALL, photos=(str(photo_cache),), photo_share=0.5, fold=0, keep_epoch=2,
                      augment=AugmentConfig(rotate=5, erase_p=0))
    summary = train(load_cache(tiny_cache), tmp_path / "run", cfg, progress=False)
    assert summary["kept_epoch"] == 2 and summary["last_epoch"] == 2 and summary["finished"]  # epoch 3 cannot change it
    assert summary["photo_sources"]["portraits"] == {"train_faces": 8, "heldout_faces": 4}
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert 0.0 <= float(r["heldout_portraits"]) <= 1.0 and 0.0 <= float(r["val_acc_mirror"]) <= 1.0
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(torch.equal(best[k], ckpt["model"][k]) for k in best)  # best.pt is epoch 2's weights
    args = json.loads((tmp_path / "run" / "args.json").read_text())
    assert args["photos"] == [str(photo_cache)] and args["fold"] == 0 and args["photo_augment"]["jpeg_p"] > 0
    # Exported without class offsets: offsets fitted on web faces alone would undo what the photos taught.
    from fusion_fer.research import export

    assert export.main(["--run", str(tmp_path / "run"), "--data", str(tiny_cache), "--out", str(tmp_path / "model"),
                        "--no-offsets", "--blind"]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["class_bias"] == [0.0] * 8 and config["training"]["photo_share"] == 0.5
    assert config["training"]["photos"] == ["portraits"]  # a model folder names its sources, no local paths


def test_train_cli_prepares_a_photo_folder_beside_the_main_data(tiny_cache, tmp_path, hopper_rgb, astronaut_rgb):
    import train as train_cli

    src = write_photo_source(tmp_path / "mine", hopper_rgb, astronaut_rgb, persons=3)
    args = train_cli.get_args_parser().parse_args(
        ["--data", str(tiny_cache), "--out", str(tmp_path / "run"), "--photos", str(src), "--epochs", "1",
         "--batch-size", "4", "--no-bf16", "--no-progress"])
    assert train_cli.main(args) == 0
    meta = json.loads((tmp_path / "run" / "photos" / "mine" / "meta.json").read_text())
    assert meta["needs_detection"] and meta["report"]["Training"]["faces"] == 6  # MTCNN found every face
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["photo_sources"]["mine"]["train_faces"] == 6
    bad = train_cli.get_args_parser().parse_args(["--data", str(tiny_cache), "--out", str(tmp_path / "r2"),
                                                  "--photos", str(tmp_path / "nope"), "--no-progress"])
    assert train_cli.main(bad) == 2
