"""prepare.py: the cache round-trips, resumes without redoing work, and never looks complete when it is not."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from fusion_fer.research.data import open_dataset
from fusion_fer.research.prepare import CacheError, PrepareConfig, load_cache, prepare

from .test_data import write_fer_csv


@pytest.fixture()
def tiny_csv(tmp_path, hopper_crop):
    """Six FER-style rows: Grace Hopper's crop (and its flip) among blank images."""
    grey = cv2.cvtColor(hopper_crop, cv2.COLOR_RGB2GRAY)
    faces = [grey, grey[:, ::-1], np.full((48, 48), 128, np.uint8)]
    rows = [(3, " ".join(map(str, faces[i % 3].ravel())), u)
            for i, u in enumerate(["Training", "Training", "Training", "Training", "PublicTest", "PrivateTest"])]
    path = tmp_path / "fer.csv"
    write_fer_csv(path, rows)
    return path


def test_cache_round_trip(tiny_csv, tmp_path):
    ds = open_dataset(tiny_csv)
    meta = prepare(ds, tmp_path / "cache", PrepareConfig(shard_size=2, workers=1), progress=False)
    cache = load_cache(tmp_path / "cache")
    assert np.array_equal(cache.images, ds.images)
    assert np.array_equal(cache.labels, ds.labels) and np.array_equal(cache.splits, ds.splits)
    # Landmarks on the faces, an explicit "not found" on the blank rows.
    assert cache.found.tolist() == [True, True, False, True, True, False]
    assert np.all(cache.landmarks[~cache.found] == 0)
    assert meta["report"]["Training"] == {"samples": 4, "faces": 4, "landmarks_found": 3, "landmark_rate": 0.75}


def test_interrupted_cache_resumes_and_is_never_taken_for_complete(tiny_csv, tmp_path):
    out = tmp_path / "cache"
    ds = open_dataset(tiny_csv)
    config = PrepareConfig(shard_size=2, workers=1)
    prepare(ds, out, config, progress=False)
    before = load_cache(out)
    # Simulate a run stopped after the first shard: no final files, later shards missing.
    (out / "meta.json").unlink()
    (out / "cache.npz").unlink()
    for shard in sorted((out / "shards").iterdir())[1:]:
        shard.unlink()
    with pytest.raises(CacheError, match="unfinished.*resume"):
        load_cache(out)
    meta = prepare(ds, out, config, progress=False)
    assert meta["images_this_run"] == 4  # shard 0 (2 images) was not redone
    after = load_cache(out)
    assert np.array_equal(after.images, before.images)
    assert np.allclose(after.landmarks, before.landmarks) and np.array_equal(after.found, before.found)
    assert not list(out.rglob("*.tmp"))
    # A finished cache is not rebuilt.
    assert prepare(ds, out, config, progress=False)["images_this_run"] == 4
    assert json.loads((out / "meta.json").read_text())["n"] == 6


def test_cache_of_other_data_is_refused(tiny_csv, tmp_path):
    out = tmp_path / "cache"
    prepare(open_dataset(tiny_csv), out, PrepareConfig(shard_size=4, workers=1), progress=False)
    with pytest.raises(CacheError, match="other settings"):
        prepare(open_dataset(tiny_csv), out, PrepareConfig(shard_size=4, workers=1, image_size=64), progress=False)
    with pytest.raises(CacheError, match="not a fusion_fer cache"):
        load_cache(tmp_path)


def test_photo_folder_is_cropped_by_mtcnn(tmp_path, hopper_rgb, astronaut_rgb):
    root = tmp_path / "photos"
    for cls, img in (("happy", astronaut_rgb), ("neutral", hopper_rgb)):
        for i in range(3):
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / cls / f"{i}.jpg")
    (root / "neutral" / "blank.jpg").write_bytes(b"not really a jpeg")
    ds = open_dataset(root)
    assert ds.needs_detection
    meta = prepare(ds, tmp_path / "cache", PrepareConfig(workers=1), progress=False)
    cache = load_cache(tmp_path / "cache")
    assert cache.face.sum() == 6 and cache.found.sum() == 6  # the broken file has neither
    assert meta["n_errors"] == 1 and "blank.jpg" in meta["errors"][0]
    assert cache.images.shape == (7, 48, 48)
