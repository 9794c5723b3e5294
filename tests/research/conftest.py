"""Fixtures for the research package's tests: a tiny prepared cache of real faces, a small network, a tiny
../shared/data made of two real faces, an untrained 8-class model folder and a prepared photo source."""
from __future__ import annotations

import csv
import gzip
import io
import tarfile

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from fusion_fer.artifacts import save_artifacts
from fusion_fer.labels import CLASSES
from fusion_fer.landmarks import LandmarkStats
from fusion_fer.model import FusionConfig, FusionNet
from fusion_fer.research.data import open_dataset
from fusion_fer.research.prepare import PrepareConfig, prepare
from fusion_fer.research.sources import read_photo_source

from .test_data import write_fer_csv

SMALL = FusionConfig(widths=(16, 32), depths=(1, 1), mlp_widths=(32,), head_hidden=16, guide_stage=1)


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def shared(tmp_path_factory, detector, hopper_rgb, astronaut_rgb):
    """A tiny ../shared/data: FER2013 CSV (gz), FER+ votes, the JPEG release (tar.gz) and ckplus48, from two faces."""
    root = tmp_path_factory.mktemp("shared")
    crops = {}
    for label, rgb in ((6, hopper_rgb), (3, astronaut_rgb)):
        face = detector.detect(rgb)[0]
        crops[label] = cv2.cvtColor(detector.crop(rgb, face, 48), cv2.COLOR_RGB2GRAY)
    (root / "fer2013").mkdir()
    rows, votes, members = [], [], []
    for i, usage in enumerate(["Training", "PublicTest", "PublicTest", "PrivateTest", "PrivateTest", "PrivateTest"]):
        label = 6 if i % 2 else 3
        img = np.roll(crops[label], i - 3, axis=1)
        rows.append((label, " ".join(map(str, img.ravel())), usage))
        votes.append("9,1,0,0,0,0,0,0,0,0" if label == 6 else "0,8,0,0,0,0,0,2,0,0")
        members.append((f"{'train' if usage == 'Training' else 'test'}/{CLASSES[label]}/{usage}_{i}.jpg", img))
    with gzip.open(root / "fer2013" / "fer2013_reconstructed.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    (root / "fer2013" / "fer2013new.csv").write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        + "".join(f"{r[2]},fer{i:07d}.png,{v}\n" for i, (r, v) in enumerate(zip(rows, votes))))
    with tarfile.open(root / "fer2013" / "fer2013_images.tar.gz", "w:gz") as tar:
        for name, img in members:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "JPEG", quality=75)
            info = tarfile.TarInfo(name)
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
    ck = root / "ckplus48"
    lines = ["file,subject,sequence,frame,ck_class,fer_label,fer_name,duplicate_of"]
    for s, subject in enumerate(("S005", "S010", "S011", "S022")):
        f = f"images/happy/{subject}_001_0000000{s}.png"
        (ck / "images" / "happy").mkdir(parents=True, exist_ok=True)
        Image.fromarray(crops[3]).save(ck / f)
        lines.append(f"{f},{subject},001,0000000{s},happy,3,happy,")
    (ck / "labels.csv").write_text("\n".join(lines) + "\n")
    posed = root / "taiwanese_dev"  # two real portraits and a photo with no face
    (posed / "images").mkdir(parents=True)
    lines = ["file,subject,code,fer_label,fer_name,width,height,agreement,note"]
    for i, (rgb, label) in enumerate(((hopper_rgb, 6), (astronaut_rgb, 3), (np.full((256, 205, 3), 200, np.uint8), 0))):
        Image.fromarray(rgb).save(posed / "images" / f"{i:02d}.jpg", quality=95)
        lines.append(f"images/{i:02d}.jpg,{i:02d},x,{label},{CLASSES[label]},205,256,,")
    (posed / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def model8(tmp_path_factory):
    torch.manual_seed(0)
    stats = LandmarkStats(np.zeros(1404, np.float32), np.ones(1404, np.float32))
    return save_artifacts(tmp_path_factory.mktemp("m8"), FusionNet(FusionConfig(num_classes=8)).eval(), stats)


def write_photo_source(root, hopper_rgb, astronaut_rgb, persons=6, per_person=2):
    """Portrait photos of 6 'persons' (jittered copies of two real faces): Grace Hopper neutral, the astronaut happy."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    lines = ["file,subject,fer_name,note"]
    for p in range(persons):
        for i in range(per_person):
            rgb, label = (hopper_rgb, "neutral") if i % 2 == 0 else (astronaut_rgb, "happy")
            jitter = np.clip(rgb.astype(int) + rng.integers(-15, 15, rgb.shape), 0, 255).astype(np.uint8)
            name = f"images/p{p}_{i}.jpg"
            Image.fromarray(jitter).save(root / name, quality=90)
            lines.append(f"{name},P{p},{label},")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def photo_cache(tmp_path_factory, hopper_rgb, astronaut_rgb):
    root = write_photo_source(tmp_path_factory.mktemp("src") / "portraits", hopper_rgb, astronaut_rgb)
    out = tmp_path_factory.mktemp("photos") / "portraits"
    prepare(read_photo_source(root).dataset(), out, PrepareConfig(workers=1), progress=False)
    return out
