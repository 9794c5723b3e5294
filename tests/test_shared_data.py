"""Readers on the real FER2013 / FER+ files in ../shared/data (run where present, as in CI)."""
from __future__ import annotations

import tarfile

import numpy as np

from fusion_fer.data import CLASSES, SPLITS, open_dataset, read_image_folder

from .conftest import FER_CSV, FER_TAR, FERPLUS_CSV, needs_shared_data

# Official per-split counts (../shared/data/README.md), in CLASSES order.
OFFICIAL = {
    "Training": [3995, 436, 4097, 7215, 4830, 3171, 4965],
    "PublicTest": [467, 56, 496, 895, 653, 415, 607],
    "PrivateTest": [491, 55, 528, 879, 594, 416, 626],
}


@needs_shared_data
def test_fer2013_csv_matches_the_official_counts():
    ds = open_dataset(FER_CSV, ferplus=FERPLUS_CSV)
    assert ds.images.shape == (35887, 48, 48)
    assert {s: list(c.values()) for s, c in ds.counts().items()} == OFFICIAL
    # FER+ drops contempt/unknown/not-a-face and no-majority rows, keeping the large majority.
    kept = (ds.ferplus_labels >= 0).mean()
    assert 0.85 < kept < 0.99
    # The 173 unnamed rows are all "not a face" and are dropped.
    assert np.all(ds.soft[ds.ferplus_labels >= 0].sum(1) > 0.99)


@needs_shared_data
def test_kaggle_image_release_keeps_the_official_split(tmp_path):
    wanted = {}
    with tarfile.open(FER_TAR) as tar:
        for m in tar:
            if not m.isfile():
                continue
            prefix = m.name.rsplit("/", 1)[-1].split("_")[0]
            if wanted.get(prefix, 0) < 20:
                wanted[prefix] = wanted.get(prefix, 0) + 1
                tar.extract(m, tmp_path, filter="data")
            if len(wanted) == 3 and all(v >= 20 for v in wanted.values()):
                break
    roots = [p for p in [tmp_path, *tmp_path.rglob("*")] if p.is_dir() and {c.name for c in p.iterdir()} >= {"train", "test"}]
    ds = read_image_folder(roots[0])
    assert sorted(np.unique(ds.splits).tolist()) == [0, 1, 2]
    for path, split in zip(ds.paths, ds.splits):
        assert path.name.startswith(SPLITS[split] + "_")
        assert path.parent.name in CLASSES
