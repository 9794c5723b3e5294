"""batch.py: a collection of real photos, broken files and faceless images streamed into CSV rows,
on one process, on two worker processes, resumed after a kill, and on a local Ray instance."""
from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fusion_fer.__main__ import main
from fusion_fer.artifacts import load_config
from fusion_fer.batch import BatchError, FaceRows, header, iter_photos, run
from fusion_fer.samples import astronaut, grace_hopper

CLASSES = tuple(load_config()["classes"])  # the default model's classes

REQUIRE_RAY = bool(os.environ.get("FUSION_FER_REQUIRE_RAY"))


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    shutil.copy(grace_hopper(), d / "a_hopper.jpg")
    shutil.copy(astronaut(), d / "b_astronaut.png")
    Image.new("RGB", (320, 240), (200, 190, 180)).save(d / "c_wall.png")
    (d / "d_broken.jpg").write_bytes(grace_hopper().read_bytes()[:3000])
    (d / "e_text.jpg").write_text("not a picture")
    (d / "notes.txt").write_text("not a photo, and not named like one: skipped")
    (d / "sub").mkdir()
    Image.open(grace_hopper()).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(d / "sub" / "f_mirror.jpg")
    return d


def _read(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_photo_is_accounted_for(collection, tmp_path):
    out = tmp_path / "faces.csv"
    stats = run([collection], out, progress=False)
    rows = _read(out)
    assert list(rows[0]) == header(CLASSES)
    from fusion_fer.landmarks import blendshape_columns

    assert header(CLASSES)[-53:-1] == list(blendshape_columns()) and "bs_jawOpen" in rows[0]
    by_name = {os.path.basename(r["path"]): r for r in rows}
    assert sorted(by_name) == ["a_hopper.jpg", "b_astronaut.png", "c_wall.png", "d_broken.jpg", "e_text.jpg", "f_mirror.jpg"]
    for name in ("a_hopper.jpg", "b_astronaut.png", "f_mirror.jpg"):
        r = by_name[name]
        assert r["face"] == "0" and r["error"] == "" and r["label"] in CLASSES
        assert abs(sum(float(r[c]) for c in CLASSES) - 1) < 2e-3
        assert float(r["x2"]) > float(r["x1"]) and float(r["y2"]) > float(r["y1"])
        assert all(0 <= float(r[c]) <= 1 for c in blendshape_columns()) and float(r["bs_eyeBlinkLeft"]) < 0.5
    assert by_name["c_wall.png"]["error"] == "no face" and by_name["c_wall.png"]["label"] == ""
    assert by_name["c_wall.png"]["bs_jawOpen"] == ""
    assert "corrupt or truncated" in by_name["d_broken.jpg"]["error"]
    assert "not an image" in by_name["e_text.jpg"]["error"]
    assert (stats.photos, stats.faces, stats.no_face, stats.errors) == (6, 3, 1, 2)


def test_two_workers_write_the_same_rows_as_one(collection, tmp_path):
    run([collection], tmp_path / "one.csv", progress=False)
    run([collection], tmp_path / "two.csv", workers=2, chunk=1, progress=False)
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()  # same rows, same order


def test_resume_skips_finished_photos_and_mends_a_cut_line(collection, tmp_path):
    out = tmp_path / "faces.csv"
    photos = list(iter_photos([collection]))
    run(photos[:3], out, progress=False)
    with open(out, "a") as f:
        f.write(f"{photos[3]},0,12.0,")  # a job killed in the middle of a line
    with pytest.raises(BatchError, match="--resume"):
        run([collection], out, progress=False)  # never overwritten by accident
    stats = run([collection], out, resume=True, progress=False)
    assert stats.skipped == 3 and stats.photos == 3
    rows = _read(out)
    assert sorted(r["path"] for r in rows) == sorted(photos)  # each photo once, the cut line gone
    assert out.read_text().count("path,face") == 1


def test_face_rows_is_one_callable_for_local_workers_and_ray(tmp_path):
    rows = FaceRows(threads=None)
    cols = rows({"path": np.array([str(grace_hopper()), str(tmp_path / "missing.jpg")], dtype=object)})
    assert list(cols) == header(CLASSES)
    assert len(cols["path"]) == 2 and cols["face"].tolist() == [0, -1]
    assert "no such file" in cols["error"][1]
    # encoded bytes (as Ray's read_binary_files gives them) give the same answer as the path
    by_bytes = rows({"path": np.array(["x.jpg"], dtype=object), "bytes": np.array([grace_hopper().read_bytes()], dtype=object)})
    assert by_bytes["label"][0] == cols["label"][0] and abs(by_bytes["happy"][0] - cols["happy"][0]) < 1e-6


def test_command_line_csv(collection, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    assert main(["predict", str(collection), "--csv", str(out)]) == 1  # two photos could not be read
    err = capsys.readouterr().err
    assert "6 photos" in err and "2 unreadable" in err
    assert len(_read(out)) == 6
    slim = tmp_path / "slim.csv"
    assert main(["predict", str(collection), "--csv", str(slim), "--no-blendshapes"]) == 1
    assert list(_read(slim)[0]) == header(CLASSES, blendshapes=False) and not any(c.startswith("bs_") for c in _read(slim)[0])
    capsys.readouterr()
    assert main(["predict", str(collection), "--csv", str(slim), "--resume"]) == 2  # other columns: a clear refusal
    assert "blendshape" in capsys.readouterr().err
    assert main(["predict", str(collection), "--workers", "2"]) == 2  # --workers needs --csv
    assert "--csv" in capsys.readouterr().err


def test_ray_data_writes_the_same_rows(collection, tmp_path):
    if not REQUIRE_RAY:
        pytest.importorskip("ray", reason="Ray is an extra: pip install -r requirements-ray.txt")
    import ray

    try:
        stats = run([collection], tmp_path / "ray.csv", ray="local", workers=2, chunk=2, parquet=str(tmp_path / "pq"),
                    progress=False)
        run([collection], tmp_path / "local.csv", progress=False)
        assert (tmp_path / "ray.csv").read_text() == (tmp_path / "local.csv").read_text()
        assert stats.photos == 6 and stats.faces == 3
        import pyarrow.parquet as pq

        table = pq.read_table(str(tmp_path / "pq"))
        assert table.num_rows == 6 and set(header(CLASSES)) <= set(table.column_names)
    finally:
        ray.shutdown()
