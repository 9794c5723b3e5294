"""research/suite.py: the cross-dataset report on a small data folder made here (the `shared` fixture)."""
from __future__ import annotations

import json

import numpy as np

from fusion_fer.research.data import CLASSES, FERPLUS_CLASSES
from fusion_fer.research.suite import SuiteConfig, read_jpeg_release, run_suite, score, selection_score


def test_score_is_what_a_user_sees_and_labels_the_kinder_figure():
    """The argmax over all of the model's classes: a neutral or contempt answer to a posed CK+ face is wrong.
    The restricted argmax (over the classes both have) is available, and says that it is."""
    probs = np.zeros((3, 8))
    probs[0, [6, 3]] = [0.9, 0.1]  # neutral first, then happy: wrong for a happy face
    probs[1, [7, 0]] = [0.8, 0.2]  # contempt first, then angry: wrong for an angry face
    probs[2, [1, 5]] = [0.6, 0.4]  # disgust: right
    y = np.array([3, 0, 1])
    r = score(probs, y, CLASSES[:6], FERPLUS_CLASSES)
    assert r["n"] == 3 and r["accuracy"] == round(1 / 3, 4) and r["recall"] == {"angry": 0.0, "disgust": 1.0, "happy": 0.0}
    assert r["argmax"] == "all of the model's classes"
    kind = score(probs, y, CLASSES[:6], FERPLUS_CLASSES, restricted=True)
    assert kind["accuracy"] == 1.0 and "restricted" in kind["argmax"]
    # a 7-class model on FER+ majority labels: contempt faces (7) and dropped rows (-1) are not scored
    p7 = np.eye(7)[[3, 3, 6, 0]]
    r = score(p7, np.array([3, 7, 6, -1]), FERPLUS_CLASSES, CLASSES)
    assert r["n"] == 2 and r["accuracy"] == 1.0 and "contempt" not in r["classes"]
    # faces the detector missed (NaN rows): left out for crops, wrong for photos
    p7[1] = np.nan
    assert score(p7, np.array([3, 3, 6, 0]), CLASSES, CLASSES)["n"] == 3
    photos = score(p7, np.array([3, 3, 6, 0]), CLASSES, CLASSES, unfound_wrong=True)
    assert photos["n"] == 4 and photos["accuracy"] == 0.75 and photos["recall"]["happy"] == 0.5


def test_jpeg_release_reader_takes_one_split_with_folder_labels(shared):
    images, labels = read_jpeg_release(shared / "fer2013" / "fer2013_images.tar.gz", "PrivateTest")
    assert images.shape == (3, 48, 48) and sorted(labels.tolist()) == [3, 6, 6]


def test_suite_scores_every_view_and_writes_the_report(shared, model8, capsys, tmp_path):
    from fusion_fer.research import evaluate

    suite = run_suite(model8, shared, SuiteConfig(detection_every_select=1))
    rep, sel = suite["report"], suite["select"]
    assert suite["model_classes"] == list(FERPLUS_CLASSES)
    assert rep["fer2013_csv"]["n"] == rep["fer2013_jpeg"]["n"] == 3 and sel["fer2013_csv"]["n"] == 2
    assert rep["ferplus"]["n"] == 3 and rep["ferplus_7"]["n"] == 3  # majority happy/neutral; the 2 contempt votes are outliers
    assert rep["detection"]["faces"] == 3 and rep["detection"]["found"] == 1.0  # 4x upscaled faces on a grey border
    assert rep["ckplus"]["n"] == 2 and sel["ckplus"]["n"] == 2 and rep["ckplus"]["subjects"] == 2  # halves by subject
    assert set(rep["ckplus"]["classes"]) == set(CLASSES[:6]) | {"contempt"}  # an 8-class model can name contempt
    assert rep["ckplus"]["restricted"]["accuracy"] is not None
    # the posed photos, through detection: the blank photo has no face, and counts as wrong
    posed = sel["taiwanese"]
    assert posed["n"] == 3 and posed["found"] == round(2 / 3, 4) and posed["recall"]["angry"] == 0.0
    cm = posed["confusion"]
    assert cm["columns"][-1] == "no face" and cm["counts"][cm["rows"].index("angry")][-1] == 1 and sum(map(sum, cm["counts"])) == 3
    assert "taiwanese" not in rep  # half A is selection data
    assert 0 <= selection_score(suite, "fer2013") <= 1 and 0 <= selection_score(suite, "default") <= 2
    assert 0 <= selection_score(suite, "user") <= 1

    # the command writes it into the model folder
    assert evaluate.main(["--model", str(model8), "--suite", str(shared), "--suite-parts", "report"]) == 0
    table = capsys.readouterr().out
    assert "| FER+ majority | PrivateTest | 3 |" in table and "CK+48 | half B | 2" in table
    metrics = json.loads((model8 / "metrics.json").read_text())
    assert "report" in metrics["suite"] and "select" not in metrics["suite"]
    assert (model8 / "suite.md").read_text() == table.rstrip("\n") + "\n" and (model8 / "suite.png").stat().st_size > 5000
    # with the selection part, the posed photos' row and their confusion matrix too
    assert evaluate.main(["--model", str(model8), "--suite", str(shared), "--out", str(tmp_path / "report")]) == 0
    assert "Posed colour photos, Taiwanese (detection) (found 66.7%) | half A | 3 |" in capsys.readouterr().out
    assert (tmp_path / "report" / "posed_confusion.png").stat().st_size > 5000


def test_suite_names_missing_files(tmp_path, model8, capsys):
    from fusion_fer.research import evaluate

    assert evaluate.main(["--model", str(model8), "--suite", str(tmp_path)]) == 2
    assert "fer2013_reconstructed.csv.gz" in capsys.readouterr().err
