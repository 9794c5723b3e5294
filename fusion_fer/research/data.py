"""Dataset readers: FER2013 CSV, FER+ labels, image folders of face crops, folders of photos.

Every reader returns a `FaceDataset`: how to get each image, its label and its split. The
preprocessing step (`fusion_fer.research.prepare`) turns any of them into the same cache.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..imageio import IMAGE_EXTENSIONS
from ..labels import CLASSES, FERPLUS_CLASSES

SPLITS = ("Training", "PublicTest", "PrivateTest")  # train / select + stop early / report

# Folder-name spellings seen in public FER releases; anything else is an error that lists these.
CLASS_ALIASES = {
    "angry": 0, "anger": 0, "disgust": 1, "disgusted": 1, "fear": 2, "fearful": 2, "scared": 2,
    "happy": 3, "happiness": 3, "sad": 4, "sadness": 4, "surprise": 5, "surprised": 5, "neutral": 6,
}
SPLIT_ALIASES = {
    "train": 0, "training": 0, "val": 1, "valid": 1, "validation": 1, "publictest": 1,
    "test": 2, "privatetest": 2,
}
# FER+ columns, in file order, and where each goes in FERPLUS_CLASSES (None: unknown, not a face).
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
FERPLUS_TO_CLASS8 = (6, 3, 5, 4, 0, 1, 2, 7, None, None)


class DatasetError(ValueError):
    """A dataset file or folder is not what its reader expects; the message names it and the problem."""


@dataclass
class FaceDataset:
    """Images with labels and splits, from any source.

    Attributes:
        labels: (N,) int64 class index into CLASSES; -1 where a sample has no usable label.
        splits: (N,) int8 index into SPLITS.
        ferplus_labels: (N,) FER+ majority labels (-1: dropped), or None.
        soft: (N, 7) float32 FER+ vote distribution, or None.
        ferplus_votes: (N, 10) float32 raw FER+ vote counts in `FERPLUS_COLUMNS` order (zeros: dropped row), or None.
        images: (N, H, W) uint8 pre-cropped faces held in memory, or None.
        paths: image files (when `images` is None).
        needs_detection: True for uncropped photos: MTCNN must find and crop the face.
        source: where it came from, for the cache's metadata.
        persons: (N,) str, the person in each face (photo sources), or None.
        classes: what `labels` index (photo sources label over FERPLUS_CLASSES: contempt is 7).
    """

    labels: np.ndarray
    splits: np.ndarray
    source: str
    images: np.ndarray | None = None
    paths: list[Path] = field(default_factory=list)
    ferplus_labels: np.ndarray | None = None
    soft: np.ndarray | None = None
    ferplus_votes: np.ndarray | None = None
    needs_detection: bool = False
    persons: np.ndarray | None = None
    classes: tuple[str, ...] = CLASSES

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per-split, per-class counts (labelled samples only)."""
        out = {}
        for s, name in enumerate(SPLITS):
            lab = self.labels[(self.splits == s) & (self.labels >= 0)]
            out[name] = {c: int((lab == k).sum()) for k, c in enumerate(CLASSES)}
        return out


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_fer2013_csv(path: str | os.PathLike) -> FaceDataset:
    """Reads Kaggle's `fer2013.csv` (plain or .csv.gz): columns emotion, pixels, Usage.

    Raises:
        DatasetError: missing file or columns, a malformed row (named by line), an unknown Usage,
            or a split with no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    images, labels, splits = [], [], []
    split_of = {s.lower(): i for i, s in enumerate(SPLITS)}
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DatasetError(f"{path}: empty file") from None
        except (OSError, UnicodeDecodeError, gzip.BadGzipFile) as err:
            raise DatasetError(f"{path}: not a readable CSV ({err})") from None
        missing = {"emotion", "pixels", "Usage"} - set(header)
        if missing:
            raise DatasetError(f"{path}: missing column(s) {sorted(missing)}; header is {header}")
        ie, ip, iu = header.index("emotion"), header.index("pixels"), header.index("Usage")
        for line, row in enumerate(reader, start=2):
            try:
                label = int(row[ie])
                pixels = np.array(row[ip].split(), dtype=np.int32)
                usage = row[iu].strip()
            except (IndexError, ValueError) as err:
                raise DatasetError(f"{path}, line {line}: malformed row ({err})") from None
            if not 0 <= label < len(CLASSES):
                raise DatasetError(f"{path}, line {line}: emotion {label} is not in 0..{len(CLASSES) - 1}")
            side = int(round(np.sqrt(pixels.size)))
            if pixels.size == 0 or side * side != pixels.size or pixels.min() < 0 or pixels.max() > 255:
                raise DatasetError(f"{path}, line {line}: pixels must be a square number of values in 0..255, got {pixels.size}")
            if usage.lower() not in split_of:
                raise DatasetError(f"{path}, line {line}: Usage '{usage}' is not one of {SPLITS}")
            if images and pixels.size != images[0].size:
                raise DatasetError(f"{path}, line {line}: {pixels.size} pixels, but earlier rows have {images[0].size}")
            images.append(pixels.astype(np.uint8))
            labels.append(label)
            splits.append(split_of[usage.lower()])
    if not images:
        raise DatasetError(f"{path}: no data rows")
    side = int(round(np.sqrt(images[0].size)))
    ds = FaceDataset(
        labels=np.array(labels, dtype=np.int64), splits=np.array(splits, dtype=np.int8),
        images=np.stack(images).reshape(-1, side, side), source=str(path.resolve()),
    )
    _check_splits(ds, path, required=("Training",))
    return ds


@dataclass
class FerPlusLabels:
    """FER+ relabelling, row-aligned with fer2013.csv.

    Attributes:
        labels: (N,) majority class in CLASSES, or -1 where the row is dropped (no clear majority,
            or the majority is contempt, unknown or not-a-face).
        soft: (N, 7) vote distribution over CLASSES (votes for contempt/unknown/NF left out), zeros
            for rows with no votes on our classes.
        splits: (N,) int8 index into SPLITS, from the file's Usage column.
        votes: (N, 10) raw vote counts in `FERPLUS_COLUMNS` order; zeros for `drop_rows`.
    """

    labels: np.ndarray
    soft: np.ndarray
    splits: np.ndarray
    votes: np.ndarray | None = None


def ferplus_majority(votes: np.ndarray) -> tuple[int, np.ndarray]:
    """FER+ majority vote for one row of 10 vote counts, as in Barsoum et al.'s reference code
    (the one-row form of `ferplus7`).

    Returns:
        (class index in CLASSES or -1, (7,) soft label over CLASSES).
    """
    labels, soft = ferplus7(np.asarray(votes)[None])
    return int(labels[0]), soft[0]


def ferplus7(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ labels for 7-class models from raw votes (N, 10): `ferplus8`'s majority, where a contempt
    majority (no FER2013 class) gives -1, and the vote distribution over our 7 classes (single votes
    dropped; contempt, unknown and not-a-face left out; zeros for rows with no votes on our classes).

    Returns:
        (labels (N,) in 0..6 or -1, soft (N, 7) float32)
    """
    major8 = ferplus8(votes)[0]
    labels = np.where(major8 == FERPLUS_CLASSES.index("contempt"), -1, major8)
    v = np.where(votes > 1, votes, 0).astype(np.float64)
    soft = np.zeros((len(v), len(CLASSES)))
    for col, cls in enumerate(FERPLUS_TO_CLASS8):
        if cls is not None and cls < len(CLASSES):
            soft[:, cls] += v[:, col]
    total = soft.sum(1, keepdims=True)
    soft = np.divide(soft, total, out=np.zeros_like(soft), where=total > 0)
    return labels, soft.astype(np.float32)


def ferplus8(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FER+ targets over `FERPLUS_CLASSES` (8 emotions) from raw votes (N, 10), as in the FER+ protocol.

    Single votes are dropped as outliers. A row is used for training when its top remaining
    column is an emotion (not unknown, not not-a-face); its soft target is the distribution of
    the remaining emotion votes. Its majority label (for evaluation) needs the top column to
    hold more than half of the remaining votes.

    Returns:
        (majority (N,) in 0..7 or -1, soft (N, 8) float32, usable (N,) bool: kept for soft-label training)
    """
    v = np.where(votes > 1, votes, 0).astype(np.float64)
    emo = np.zeros((len(v), len(FERPLUS_CLASSES)))
    for col, cls in enumerate(FERPLUS_TO_CLASS8):
        if cls is not None:
            emo[:, cls] += v[:, col]
    total = v.sum(1)
    top = v.argmax(1)
    usable = (total > 0) & np.array([FERPLUS_TO_CLASS8[t] is not None for t in top]) & (emo.sum(1) > 0)
    soft = np.where(usable[:, None], emo / np.maximum(emo.sum(1, keepdims=True), 1e-9), 0.0).astype(np.float32)
    top_class = np.array([-1 if FERPLUS_TO_CLASS8[t] is None else FERPLUS_TO_CLASS8[t] for t in top])
    majority = np.where(usable & (v[np.arange(len(v)), top] > 0.5 * total), top_class, -1).astype(np.int64)
    return majority, soft, usable


def read_ferplus(path: str | os.PathLike, expected_rows: int | None = None,
                 drop_rows: tuple[int, ...] = ()) -> FerPlusLabels:
    """Reads FER+'s `fer2013new.csv`, aligned by row with fer2013.csv.

    Args:
        path: the FER+ label file.
        expected_rows: raise if the file does not have this many data rows (the FER2013 CSV's).
        drop_rows: 0-based rows whose label is not trusted (set to -1).

    Raises:
        DatasetError: missing file or columns, a malformed row, or a row count that does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    split_of = {s.lower(): i for i, s in enumerate(SPLITS)}
    splits, all_votes = [], []
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = {"Usage", *FERPLUS_COLUMNS} - set(header)
        if missing:
            raise DatasetError(f"{path}: missing column(s) {sorted(missing)}; is this FER+'s fer2013new.csv?")
        cols = [header.index(c) for c in FERPLUS_COLUMNS]
        iu = header.index("Usage")
        for line, row in enumerate(reader, start=2):
            try:
                votes = np.array([float(row[c]) for c in cols])
                usage = row[iu].strip()
            except (IndexError, ValueError) as err:
                raise DatasetError(f"{path}, line {line}: malformed row ({err})") from None
            if usage.lower() not in split_of:
                raise DatasetError(f"{path}, line {line}: Usage '{usage}' is not one of {SPLITS}")
            splits.append(split_of[usage.lower()])
            all_votes.append(votes)
    if expected_rows is not None and len(all_votes) != expected_rows:
        raise DatasetError(
            f"{path}: {len(all_votes)} rows, but the FER2013 CSV has {expected_rows}; FER+ labels align by row, so both must be complete"
        )
    votes = np.stack(all_votes)
    labels, soft = ferplus7(votes)
    out = FerPlusLabels(labels.astype(np.int64), soft, np.array(splits, dtype=np.int8), votes.astype(np.float32))
    for r in drop_rows:
        out.labels[r] = -1
        out.votes[r] = 0
    return out


def _class_of(folder: Path) -> int:
    key = folder.name.lower()
    if key not in CLASS_ALIASES:
        raise DatasetError(
            f"{folder}: unknown class folder '{folder.name}'; expected one of {sorted(CLASS_ALIASES)}"
        )
    return CLASS_ALIASES[key]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _check_splits(ds: FaceDataset, where: Path, required: tuple[str, ...]) -> None:
    if len(ds) == 0:
        raise DatasetError(f"{where}: no images found (extensions {sorted(IMAGE_EXTENSIONS)})")
    for name in required:
        if not np.any(ds.splits == SPLITS.index(name)):
            raise DatasetError(f"{where}: the {name} split is empty")


_OFFICIAL_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)


def read_image_folder(root: str | os.PathLike, needs_detection: bool = False, seed: int = 0,
                      val_fraction: float = 0.1, test_fraction: float = 0.1) -> FaceDataset:
    """Reads `root/<split>/<class>/*` or `root/<class>/*`.

    The split of a file comes from, in order: a `Training_`/`PublicTest_`/`PrivateTest_` file-name
    prefix (the Kaggle image release keeps FER2013's official split that way), its split folder
    (train/training; val/validation/publictest; test/privatetest), or, when there are no split
    folders, a seeded stratified draw (`val_fraction` to PublicTest, `test_fraction` to PrivateTest).

    Args:
        root: the folder.
        needs_detection: the images are uncropped photos (MTCNN will crop the face).

    Raises:
        DatasetError: a missing folder, an unknown class or split folder, or no images / no training images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DatasetError(f"{root}: expected class folders ({', '.join(CLASSES)}) or split folders (train, test)")
    has_splits = all(p.name.lower() in SPLIT_ALIASES for p in subdirs)
    if not has_splits and any(p.name.lower() in SPLIT_ALIASES for p in subdirs):
        odd = [p.name for p in subdirs if p.name.lower() not in SPLIT_ALIASES]
        raise DatasetError(f"{root}: mixes split folders with other folders {odd}; expected only {sorted(SPLIT_ALIASES)}")
    paths, labels, splits = [], [], []
    groups = [(d, SPLIT_ALIASES[d.name.lower()]) for d in subdirs] if has_splits else [(root, None)]
    for split_dir, split in groups:
        class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        for cdir in class_dirs:
            cls = _class_of(cdir)
            for f in _images_in(cdir):
                m = _OFFICIAL_PREFIX.match(f.name)
                s = SPLITS.index(next(x for x in SPLITS if x.lower() == m.group(1).lower())) if m else split
                paths.append(f)
                labels.append(cls)
                splits.append(-1 if s is None else s)
    labels_arr = np.array(labels, dtype=np.int64)
    splits_arr = np.array(splits, dtype=np.int8)
    if np.any(splits_arr < 0):
        splits_arr = _stratified_splits(labels_arr, splits_arr, seed, val_fraction, test_fraction)
    ds = FaceDataset(labels=labels_arr, splits=splits_arr, paths=paths, source=str(root.resolve()),
                     needs_detection=needs_detection)
    _check_splits(ds, root, required=("Training",))
    return ds


def _stratified_splits(labels: np.ndarray, splits: np.ndarray, seed: int, val: float, test: float) -> np.ndarray:
    """Assigns unsplit samples (-1) per class: the first `test` share to PrivateTest, the next `val` to PublicTest."""
    out = splits.copy()
    rng = random.Random(seed)
    for cls in np.unique(labels):
        idx = [int(i) for i in np.flatnonzero((labels == cls) & (splits < 0))]
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test)) if len(idx) >= 3 else 0
        n_val = int(round(len(idx) * val)) if len(idx) >= 3 else 0
        for k, i in enumerate(idx):
            out[i] = 2 if k < n_test else 1 if k < n_test + n_val else 0
    return out


def open_dataset(path: str | os.PathLike, ferplus: str | os.PathLike | None = None,
                 detect: bool | None = None, drop_rows: tuple[int, ...] = ()) -> FaceDataset:
    """Opens any supported dataset.

    Args:
        path: a fer2013 CSV (.csv or .csv.gz) or an image folder.
        ferplus: FER+ `fer2013new.csv`, to attach soft labels and FER+ majority labels (CSV only).
            `labels` keep the FER2013 labels; `ferplus_labels` and `soft` get FER+'s.
        detect: run MTCNN on folder images. None decides from the first image: anything larger
            than 100 px is taken for an uncropped photo.
        drop_rows: with `ferplus`, CSV rows whose FER+ label is not trusted.
    """
    path = Path(path)
    if path.is_file() and (path.name.endswith(".csv") or path.name.endswith(".csv.gz")):
        ds = read_fer2013_csv(path)
        if ferplus is not None:
            fp = read_ferplus(ferplus, expected_rows=len(ds), drop_rows=drop_rows)
            if not np.array_equal(fp.splits, ds.splits):
                bad = int(np.flatnonzero(fp.splits != ds.splits)[0])
                raise DatasetError(f"{ferplus}: row {bad} has a different Usage than {path}; the files are not aligned")
            ds.ferplus_labels, ds.soft, ds.ferplus_votes = fp.labels, fp.soft, fp.votes
        return ds
    if path.is_dir():
        if ferplus is not None:
            raise DatasetError("--ferplus labels align with the rows of fer2013.csv; they cannot be used with an image folder")
        if detect is None:
            detect = _looks_uncropped(path)
        return read_image_folder(path, needs_detection=detect)
    if path.exists():
        raise DatasetError(f"{path}: expected a fer2013 .csv/.csv.gz file or an image folder")
    raise DatasetError(f"{path}: no such file or folder")


def _looks_uncropped(root: Path) -> bool:
    from PIL import Image

    for f in sorted(root.rglob("*")):
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
            try:
                with Image.open(f) as im:
                    return max(im.size) > 100
            except OSError:
                continue
    return False


def person_folds(persons: np.ndarray, folds: int) -> np.ndarray:
    """Fold of every face: persons sorted and dealt round-robin, so no person is in two folds. With 2 folds
    these are the halves A (0) and B (1) of CK+48 and of `research.sources`' `PATH@A`."""
    if folds < 2:
        raise ValueError(f"folds by person need at least 2 folds, not {folds}")
    order = {p: i % folds for i, p in enumerate(sorted(set(persons.tolist())))}
    return np.array([order[p] for p in persons.tolist()], np.int64)


@dataclass
class CKPlus:
    """CK+48 (posed lab faces, 48x48 grey crops) with FER labels, for cross-dataset evaluation only.

    Subjects (all of them, contempt's included) are sorted and alternated into halves: half A may guide
    choices, half B is for reporting. There is no neutral; contempt faces are kept (an 8-class model
    can name them; a 7-class model's scores leave them out).
    """

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64 index into CKPlus.CLASSES
    subjects: np.ndarray  # (N,) str
    sequences: np.ndarray  # (N,) str "subject/sequence": its 3 frames are near-duplicates
    half: np.ndarray  # (N,) "A" or "B"

    CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")  # CK+'s 7, named as ours


def read_ckplus(root: str | os.PathLike) -> CKPlus:
    """Reads `ckplus48/` (labels.csv + images/<class>/*.png).

    Raises:
        DatasetError: the folder or labels.csv is missing, or an image cannot be read.
    """
    from PIL import Image

    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        raise DatasetError(f"{root}: expected labels.csv and images/ (the ckplus48 folder)")
    rows = list(csv.DictReader(open(table, newline="")))
    images = []
    for r in rows:
        try:
            images.append(np.asarray(Image.open(root / r["file"]).convert("L").resize((48, 48))))
        except OSError as err:
            raise DatasetError(f"{root / r['file']}: {err}") from None
    labels = [CKPlus.CLASSES.index("contempt" if r["fer_label"] == "" else CLASSES[int(r["fer_label"])]) for r in rows]
    subjects = np.array([r["subject"] for r in rows])
    return CKPlus(np.stack(images), np.array(labels, np.int64), subjects,
                  np.array([f"{r['subject']}/{r['sequence']}" for r in rows]), np.array(list("AB"))[person_folds(subjects, 2)])


@dataclass
class PosedPhotos:
    """Photos of posed expressions (not face crops: they go through detection), for evaluation only."""

    paths: list[Path]
    labels: np.ndarray  # (N,) int64 index into CLASSES (the intended expression)
    subjects: np.ndarray  # (N,) str: the performer


def read_posed_photos(root: str | os.PathLike) -> PosedPhotos:
    """Reads a folder of posed photos with `labels.csv` (`file, subject, fer_name, ...`), such as taiwanese_dev.

    Raises:
        DatasetError: labels.csv or an image is missing, or a class name is not one of CLASSES.
    """
    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        raise DatasetError(f"{root}: expected labels.csv and images/ (the taiwanese_dev folder)")
    rows = list(csv.DictReader(open(table, newline="")))
    paths = [root / r["file"] for r in rows]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} images in labels.csv are missing, e.g. {missing[0]}")
    bad = sorted({r["fer_name"] for r in rows} - set(CLASSES))
    if bad:
        raise DatasetError(f"{table}: unknown classes {bad}; expected some of {list(CLASSES)}")
    return PosedPhotos(paths, np.array([CLASSES.index(r["fer_name"]) for r in rows], np.int64),
                       np.array([r["subject"] for r in rows]))

