"""Photo sources: labelled faces other than FER2013, for training beside FER+ (`train.py --photos`).

A source is one of:

* a folder of `<class>/*.jpg` (each file its own person: no folds by person are possible);
* a CSV with a file, a label and a person column (the file paths relative to the CSV's folder), or a
  folder holding such a `labels.csv` (`taiwanese_dev/`, `ckplus48/`).

Column names accepted: file `file|path|image`; label `label|fer_name|class|expression|ck_class|fer_label`
(a class name, its common spellings, or a FER2013 index); person `person|subject|performer`.
`PATH@A` (or `@B`) keeps one half of the persons, sorted and alternated, as the suite splits CK+48.

Photos larger than a crop go through the product's own path when prepared: MTCNN, the calibrated crop and the
Face Landmarker on the 48 px grey crop, so the network learns from the crop it sees at inference.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..labels import FERPLUS_CLASSES
from .data import CLASS_ALIASES, DatasetError, FaceDataset, _images_in, _looks_uncropped, person_folds  # noqa: F401 (re-exported)

FILE_COLUMNS = ("file", "path", "image")
LABEL_COLUMNS = ("label", "fer_name", "class", "expression", "ck_class", "fer_label")
PERSON_COLUMNS = ("person", "subject", "performer")
CONTEMPT = FERPLUS_CLASSES.index("contempt")
NAME_TO_CLASS8 = {**CLASS_ALIASES, "contempt": CONTEMPT}


@dataclass
class PhotoSource:
    """Labelled photos (or crops) with the person in each.

    Attributes:
        name: a short name for logs (the folder's name, with its half).
        paths: image files.
        labels: (N,) int64 index into FERPLUS_CLASSES (contempt is 7; a 7-class model drops those faces).
        persons: (N,) str; faces of one person are never split between training and selection.
        needs_detection: uncropped photos: MTCNN finds and crops the face.
    """

    name: str
    paths: list[Path]
    labels: np.ndarray
    persons: np.ndarray
    needs_detection: bool
    source: str = ""
    counts: dict = field(default_factory=dict)

    def dataset(self) -> FaceDataset:
        """As a `FaceDataset` for `prepare` (every face in Training; folds come from the persons)."""
        return FaceDataset(labels=self.labels, splits=np.zeros(len(self.labels), np.int8), source=self.source,
                           paths=self.paths, needs_detection=self.needs_detection, persons=self.persons,
                           classes=FERPLUS_CLASSES)


def _label_of(text: str, where: str) -> int:
    t = text.strip().lower()
    if t.isdigit() and int(t) < len(FERPLUS_CLASSES):
        return int(t)
    if t in NAME_TO_CLASS8:
        return NAME_TO_CLASS8[t]
    raise DatasetError(f"{where}: unknown class {text!r}; expected one of {sorted(NAME_TO_CLASS8)} or 0-7")


def _column(header: list[str], names: tuple[str, ...], what: str, table: Path) -> str:
    found = next((n for n in names if n in header), None)
    if found is None:
        raise DatasetError(f"{table}: no {what} column; expected one of {', '.join(names)} (it has {', '.join(header)})")
    return found


def _read_table(table: Path) -> tuple[list[Path], list[int], list[str]]:
    with open(table, newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        rows = [{k.strip(): (v or "") for k, v in r.items() if k} for r in reader]
    file_col = _column(header, FILE_COLUMNS, "file", table)
    person_col = _column(header, PERSON_COLUMNS, "person", table)
    label_cols = [c for c in LABEL_COLUMNS if c in header]
    if not label_cols:
        raise DatasetError(f"{table}: no label column; expected one of {', '.join(LABEL_COLUMNS)}")
    paths, labels, persons = [], [], []
    for i, r in enumerate(rows, start=2):
        text = next((r[c] for c in label_cols if r[c].strip()), "")
        if not text:
            raise DatasetError(f"{table}, line {i}: no label")
        paths.append(table.parent / r[file_col])
        labels.append(_label_of(text, f"{table}, line {i}"))
        persons.append(r[person_col].strip() or f"line{i}")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{table}: {len(missing)} images it lists are missing, e.g. {missing[0]}")
    return paths, labels, persons


def _read_class_folders(root: Path) -> tuple[list[Path], list[int], list[str]]:
    paths, labels = [], []
    for cdir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cls = _label_of(cdir.name, str(cdir))
        files = _images_in(cdir)
        paths += files
        labels += [cls] * len(files)
    return paths, labels, [p.stem for p in paths]


def read_photo_source(spec: str | Path) -> PhotoSource:
    """Reads `PATH` or `PATH@A`/`PATH@B` (see the module's docstring).

    Raises:
        DatasetError: no such file or folder, no usable columns, an unknown class, a missing image, no images.
    """
    text = str(spec)
    half = None
    if len(text) > 2 and text[-2] == "@" and text[-1] in "AB":
        text, half = text[:-2], text[-1]
    path = Path(text)
    if path.is_file() and path.suffix.lower() == ".csv":
        table, root = path, path.parent
    elif path.is_dir() and (path / "labels.csv").is_file():
        table, root = path / "labels.csv", path
    elif path.is_dir():
        table, root = None, path
    else:
        raise DatasetError(f"{text}: no such folder or CSV file")
    paths, labels, persons = _read_table(table) if table else _read_class_folders(root)
    if not paths:
        raise DatasetError(f"{text}: no images (expected <class>/*.jpg folders or a CSV with file, label and person)")
    persons_arr = np.array(persons)
    if half is not None:
        keep = person_folds(persons_arr, 2) == "AB".index(half)
        paths = [p for p, k in zip(paths, keep) if k]
        labels, persons_arr = list(np.asarray(labels)[keep]), persons_arr[keep]
    labels_arr = np.asarray(labels, np.int64)
    name = root.resolve().name + (f"@{half}" if half else "")
    counts = {c: int((labels_arr == k).sum()) for k, c in enumerate(FERPLUS_CLASSES) if (labels_arr == k).any()}
    return PhotoSource(name=name, paths=paths, labels=labels_arr, persons=persons_arr,
                       needs_detection=_looks_uncropped(root), source=f"{root.resolve()}{'@' + half if half else ''}",
                       counts=counts)
