"""research/data.py: each reader parses small data written here, and names the file and problem when it can't;
and, where ../shared/data is present (as in CI), the real FER2013 / FER+ files."""
from __future__ import annotations

import gzip
import tarfile

import numpy as np
import pytest
from PIL import Image

from fusion_fer.research.data import (
    CLASSES, SPLITS, DatasetError, ferplus_majority, open_dataset, read_fer2013_csv, read_ferplus, read_image_folder,
)

from ..conftest import FER_CSV, FER_TAR, FERPLUS_CSV, needs_shared_data


def _pixels(seed: int, side: int = 48) -> str:
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, side * side)))


def write_fer_csv(path, rows):
    text = "emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


ROWS = [(0, _pixels(0), "Training"), (3, _pixels(1), "Training"), (6, _pixels(2), "PublicTest"), (5, _pixels(3), "PrivateTest")]


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013.csv.gz"])
def test_fer2013_csv_plain_and_gzip(tmp_path, name):
    path = tmp_path / name
    write_fer_csv(path, ROWS)
    ds = read_fer2013_csv(path)
    assert ds.images.shape == (4, 48, 48) and ds.images.dtype == np.uint8
    assert ds.labels.tolist() == [0, 3, 6, 5]
    assert [SPLITS[s] for s in ds.splits] == ["Training", "Training", "PublicTest", "PrivateTest"]
    assert ds.images[1].ravel().tolist() == [int(v) for v in ROWS[1][1].split()]


def test_fer2013_csv_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    write_fer_csv(path, [ROWS[0], (2, "1 2 3", "Training")])
    with pytest.raises(DatasetError, match=r"bad.csv, line 3: pixels must be a square"):
        read_fer2013_csv(path)
    write_fer_csv(path, [ROWS[0], (9, _pixels(5), "Training")])
    with pytest.raises(DatasetError, match=r"line 3: emotion 9"):
        read_fer2013_csv(path)
    write_fer_csv(path, [ROWS[0], (1, _pixels(5), "Holdout")])
    with pytest.raises(DatasetError, match=r"line 3: Usage 'Holdout'"):
        read_fer2013_csv(path)
    write_fer_csv(path, [(1, _pixels(5), "PublicTest")])
    with pytest.raises(DatasetError, match="the Training split is empty"):
        read_fer2013_csv(path)
    path.write_text("label,image\n1,2\n")
    with pytest.raises(DatasetError, match="missing column"):
        read_fer2013_csv(path)


def test_ferplus_majority_rule():
    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    label, soft = ferplus_majority(np.array([0, 8, 2, 0, 0, 0, 0, 0, 0, 0]))
    assert CLASSES[label] == "happy" and np.isclose(soft[CLASSES.index("happy")], 0.8)
    assert ferplus_majority(np.array([0, 0, 0, 0, 0, 0, 0, 6, 4, 0]))[0] == -1  # contempt: not ours
    assert ferplus_majority(np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 10]))[0] == -1  # not a face
    assert ferplus_majority(np.array([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]))[0] == -1  # no majority
    # Single votes are outliers: 4 anger + 1 fear + 1 sad -> anger with 100 % of the kept votes.
    label, soft = ferplus_majority(np.array([0, 0, 0, 1, 4, 0, 1, 0, 0, 0]))
    assert CLASSES[label] == "angry" and soft[CLASSES.index("angry")] == 1.0


def test_ferplus_file_aligned_with_csv(tmp_path):
    fp = tmp_path / "fer2013new.csv"
    fp.write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        "Training,fer0000000.png,4,0,0,0,6,0,0,0,0,0\n"
        "Training,fer0000001.png,0,10,0,0,0,0,0,0,0,0\n"
        "PublicTest,fer0000002.png,2,0,0,0,0,0,0,8,0,0\n"
        "PrivateTest,,0,0,0,0,0,0,0,0,0,10\n"
    )
    labels = read_ferplus(fp, expected_rows=4)
    assert labels.labels.tolist() == [0, 3, -1, -1]
    assert np.allclose(labels.soft[0][[CLASSES.index("neutral"), CLASSES.index("angry")]], [0.4, 0.6])
    assert read_ferplus(fp, drop_rows=(1,)).labels.tolist() == [0, -1, -1, -1]
    with pytest.raises(DatasetError, match="4 rows, but the FER2013 CSV has 5"):
        read_ferplus(fp, expected_rows=5)
    csv = tmp_path / "fer2013.csv"
    write_fer_csv(csv, ROWS)
    ds = open_dataset(csv, ferplus=fp)
    assert ds.labels.tolist() == [0, 3, 6, 5]  # FER2013 labels kept
    assert ds.ferplus_labels.tolist() == [0, 3, -1, -1] and ds.soft.shape == (4, 7)


def _save(path, seed=0, size=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)).save(path)


def test_image_folder_kaggle_layout_keeps_official_split(tmp_path):
    # The Kaggle release: train/<class>/Training_*.jpg, test/<class>/{Public,Private}Test_*.jpg
    _save(tmp_path / "train" / "happy" / "Training_123.jpg")
    _save(tmp_path / "train" / "angry" / "Training_9.jpg")
    _save(tmp_path / "test" / "sad" / "PublicTest_55.jpg")
    _save(tmp_path / "test" / "sad" / "PrivateTest_56.jpg")
    _save(tmp_path / "test" / "neutral" / "other.jpg")  # no prefix: the folder says test -> PrivateTest
    (tmp_path / "train" / "happy" / "notes.txt").write_text("ignored: not an image")
    ds = read_image_folder(tmp_path)
    got = {p.name: (CLASSES[l], SPLITS[s]) for p, l, s in zip(ds.paths, ds.labels, ds.splits)}
    assert got == {
        "Training_123.jpg": ("happy", "Training"), "Training_9.jpg": ("angry", "Training"),
        "PublicTest_55.jpg": ("sad", "PublicTest"), "PrivateTest_56.jpg": ("sad", "PrivateTest"),
        "other.jpg": ("neutral", "PrivateTest"),
    }
    assert not ds.needs_detection and open_dataset(tmp_path).needs_detection is False


def test_image_folder_errors(tmp_path):
    _save(tmp_path / "train" / "happy" / "a.jpg")
    _save(tmp_path / "train" / "joyful" / "b.jpg")
    with pytest.raises(DatasetError, match="unknown class folder 'joyful'"):
        read_image_folder(tmp_path)
    empty = tmp_path / "empty"
    (empty / "test" / "happy").mkdir(parents=True)
    _save(empty / "test" / "happy" / "x.jpg")
    with pytest.raises(DatasetError, match="Training split is empty"):
        read_image_folder(empty)
    with pytest.raises(DatasetError, match="no such"):
        open_dataset(tmp_path / "nowhere")


def test_photo_folder_without_splits_is_split_by_class_and_needs_detection(tmp_path):
    for cls in ("happy", "sad"):
        for i in range(10):
            _save(tmp_path / cls / f"{i}.png", seed=i, size=160)
    ds = open_dataset(tmp_path)
    assert ds.needs_detection  # 160 px images are taken for photos
    for cls in (3, 4):
        s = ds.splits[ds.labels == cls]
        assert (s == 0).sum() == 8 and (s == 1).sum() == 1 and (s == 2).sum() == 1
    again = open_dataset(tmp_path)
    assert np.array_equal(again.splits, ds.splits)  # seeded: the same split every time


def test_ferplus8_keeps_contempt_and_drops_unknown_and_not_a_face():
    from fusion_fer.research.data import FERPLUS_CLASSES, ferplus8

    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    votes = np.array([
        [0, 0, 0, 0, 1, 0, 0, 8, 1, 0],   # contempt majority: class 7; the single anger vote is an outlier
        [5, 4, 1, 0, 0, 0, 0, 0, 0, 0],   # neutral 5 of 9 (the single surprise vote dropped): majority, soft 5/9 vs 4/9
        [3, 3, 0, 0, 0, 0, 0, 0, 4, 0],   # top column is "unknown": not used at all
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
        [4, 0, 0, 0, 0, 0, 3, 3, 0, 0],   # top emotion but no majority: trains on its distribution, no majority label
    ], float)
    major, soft, usable = ferplus8(votes)
    assert FERPLUS_CLASSES[major[0]] == "contempt" and soft[0, 7] == 1.0
    assert FERPLUS_CLASSES[major[1]] == "neutral" and np.allclose(soft[1, [6, 3]], [5 / 9, 4 / 9])
    assert usable.tolist() == [True, True, False, False, True]
    assert major[2] == major[3] == major[4] == -1
    assert np.allclose(soft[4, [6, 2, 7]], [0.4, 0.3, 0.3]) and not soft[2:4].any()


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
